/*
 * store.c: the state store's operations, written once over the driver
 * table of src/store/driver.h (SQLite and MariaDB backends). Every write
 * runs in one transaction that starts with the lease fence check; every
 * row read back is validated before it reaches the caller.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <unistd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "log.h"
#include "store.h"
#include "store/driver.h"
#include "util.h"

LOG_TAG("store");

/*
 * A handle is a small pool of connections ("lanes"). Each operation takes
 * a free lane for its whole duration (lock() .. unlock()), so up to
 * max_lanes operations of different threads run at once, each in its own
 * transaction; a lane is opened when every open one is busy, so a handle
 * that one thread uses keeps one connection. A lane is a struct store too
 * (drv, conn, pool): the helpers below work on the lane they are given.
 *
 * Fence and owner live in the handle. The fence changes only in exclusive
 * operations (lock_excl(): the lease calls and store_fence_set), which
 * wait until no other operation runs and hold new ones back, so the
 * shared operations read it without a lock, and every operation sees the
 * fence of one moment, as when the handle served one operation at a
 * time.
 */
#define MAX_LANES 8
#define OPEN_RETRY_MS 10000

struct store {
	const struct store_driver *drv;
	struct store_conn *conn;   /* lane: its connection */
	struct store *pool;        /* lane: the handle it belongs to */
	bool busy;                 /* lane: taken by an operation */

	/* Handle only. */
	char *rest, *password;     /* to open more lanes; password zeroed */
	pthread_mutex_t mu;        /* guards the fields down to owner */
	pthread_cond_t cond;       /* a lane became free, or excl ended */
	struct store *lanes[MAX_LANES];
	size_t n_lanes, max_lanes;
	size_t n_opening;          /* lanes being connected (mutex dropped) */
	int64_t open_retry_ms;     /* no new lane before (after a failure) */
	unsigned active;           /* operations running */
	unsigned excl_waiting;     /* exclusive operations waiting */
	bool excl;                 /* an exclusive operation runs */
	struct log_complain open_fail;
	char owner[STORE_ID_LEN + 1]; /* installation id, "" until read */
	char *fence_name;          /* NULL: unfenced; see above */
	int64_t fence_epoch;

	/* store_instance_cache(): every instance but the gone ones as of
	 * generation cache_gen of the instances table, read at cache_ms. */
	pthread_mutex_t cache_mu;  /* guards the fields below */
	int64_t cache_max_age_ms;  /* 0: no cache */
	bool cache_valid;
	int64_t cache_gen, cache_ms;
	struct store_instance_list cache;
	/* cache.v's rows sorted by id, for cache_follow(); built on first
	 * need after each refresh (NULL until then) */
	struct store_instance **cache_by_id;
};

/* ---- names and enums --------------------------------------------------- */

static const char *const rc_names[] = {
	"ok", "error", "not found", "conflict", "fenced",
	"illegal transition", "lease held", "exists",
};

const char *
store_rc_name(int rc)
{
	if (rc > 0 || rc <= STORE_E_LAST)
		return "unknown";
	return rc_names[-rc];
}

static const char *const state_names[STORE_INSTANCE_LAST] = {
	[STORE_INSTANCE_REQUESTED] = "requested",
	[STORE_INSTANCE_PROVISIONING] = "provisioning",
	[STORE_INSTANCE_BOOTING] = "booting",
	[STORE_INSTANCE_READY] = "ready",
	[STORE_INSTANCE_DRAINING] = "draining",
	[STORE_INSTANCE_DELETING] = "deleting",
	[STORE_INSTANCE_GONE] = "gone",
	[STORE_INSTANCE_UNHEALTHY] = "unhealthy",
	[STORE_INSTANCE_LOST] = "lost",
	[STORE_INSTANCE_WARMING] = "warming",
	[STORE_INSTANCE_WARM] = "warm",
	[STORE_INSTANCE_RESUMING] = "resuming",
	[STORE_INSTANCE_LAUNCH_WAIT] = "launch_wait",
	[STORE_INSTANCE_TERMINATE_WAIT] = "terminate_wait",
};

const char *
store_instance_state_name(enum store_instance_state st)
{
	if ((unsigned)st >= STORE_INSTANCE_LAST)
		return NULL;
	return state_names[st];
}

static int
parse_enum(const char *s, const char *const *names, size_t n, const char *what,
	   int *out)
{
	for (size_t i = 0; i < n; i++) {
		if (names[i] && strcmp(s, names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	err_set("unknown %s '%.64s'", what, s);
	return -1;
}

int
store_instance_state_parse(const char *s, enum store_instance_state *out)
{
	int v;

	if (parse_enum(s, state_names, STORE_INSTANCE_LAST, "instance state",
		       &v) < 0)
		return -1;
	*out = (enum store_instance_state)v;
	return 0;
}

#define B(st) STORE_STATE_BIT(STORE_INSTANCE_##st)
/* allowed[from] = the states `from` may move to. */
static const unsigned transitions[STORE_INSTANCE_LAST] = {
	[STORE_INSTANCE_REQUESTED] = B(PROVISIONING) | B(DELETING) | B(GONE),
	[STORE_INSTANCE_PROVISIONING] = B(BOOTING) | B(DELETING) | B(LOST),
	[STORE_INSTANCE_BOOTING] = B(READY) | B(UNHEALTHY) | B(DRAINING) |
				   B(DELETING) | B(LOST) | B(LAUNCH_WAIT),
	[STORE_INSTANCE_READY] = B(DRAINING) | B(UNHEALTHY) | B(DELETING) |
				 B(LOST) | B(WARMING) | B(TERMINATE_WAIT),
	[STORE_INSTANCE_UNHEALTHY] = B(READY) | B(DRAINING) | B(DELETING) |
				     B(LOST),
	[STORE_INSTANCE_DRAINING] = B(READY) | B(DELETING) | B(LOST),
	[STORE_INSTANCE_DELETING] = B(GONE),
	[STORE_INSTANCE_LOST] = B(READY) | B(UNHEALTHY) | B(DELETING) | B(GONE),
	[STORE_INSTANCE_GONE] = 0,
	[STORE_INSTANCE_WARMING] = B(WARM) | B(DELETING) | B(LOST),
	[STORE_INSTANCE_WARM] = B(RESUMING) | B(DELETING) | B(LOST),
	[STORE_INSTANCE_RESUMING] = B(READY) | B(UNHEALTHY) | B(DRAINING) |
				    B(DELETING) | B(LOST),
	/* lifecycle hooks (hooks.h): continue -> ready, abandon -> deleting;
	 * a terminate wait always ends in the removal */
	[STORE_INSTANCE_LAUNCH_WAIT] = B(READY) | B(DELETING) | B(LOST),
	[STORE_INSTANCE_TERMINATE_WAIT] = B(DRAINING) | B(DELETING) | B(LOST),
};
#undef B

bool
store_instance_transition_ok(enum store_instance_state from,
			     enum store_instance_state to)
{
	if ((unsigned)from >= STORE_INSTANCE_LAST ||
	    (unsigned)to >= STORE_INSTANCE_LAST)
		return false;
	return (transitions[from] & STORE_STATE_BIT(to)) != 0;
}

static const char *
state_or_q(enum store_instance_state st)
{
	const char *n = store_instance_state_name(st);

	return n ? n : "?";
}

/* States in which an instance must have a host. */
static bool
state_needs_host(enum store_instance_state st)
{
	return st != STORE_INSTANCE_REQUESTED && st != STORE_INSTANCE_GONE;
}

static const char *const action_names[STORE_JOURNAL_LAST] = {
	[STORE_JOURNAL_PROVISION] = "provision",
	[STORE_JOURNAL_REMOVE] = "remove",
};
static const char *const step_names[STORE_STEP_LAST] = {
	[STORE_STEP_NONE] = "none",
	[STORE_STEP_VOLUME_CREATED] = "volume_created",
	[STORE_STEP_SEED_CREATED] = "seed_created",
	[STORE_STEP_DOMAIN_DEFINED] = "domain_defined",
	[STORE_STEP_STARTED] = "started",
	[STORE_STEP_DOMAIN_STOPPED] = "domain_stopped",
	[STORE_STEP_DOMAIN_UNDEFINED] = "domain_undefined",
	[STORE_STEP_VOLUMES_DELETED] = "volumes_deleted",
};
static const char *const status_names[STORE_JOURNAL_STATUS_LAST] = {
	[STORE_JOURNAL_PENDING] = "pending",
	[STORE_JOURNAL_DONE] = "done",
	[STORE_JOURNAL_FAILED] = "failed",
};

const char *
store_journal_action_name(enum store_journal_action a)
{
	return (unsigned)a < STORE_JOURNAL_LAST ? action_names[a] : NULL;
}

int
store_journal_action_parse(const char *s, enum store_journal_action *out)
{
	int v;

	if (parse_enum(s, action_names, STORE_JOURNAL_LAST, "journal action",
		       &v) < 0)
		return -1;
	*out = (enum store_journal_action)v;
	return 0;
}

const char *
store_journal_step_name(enum store_journal_step st)
{
	return (unsigned)st < STORE_STEP_LAST ? step_names[st] : NULL;
}

int
store_journal_step_parse(const char *s, enum store_journal_step *out)
{
	int v;

	if (parse_enum(s, step_names, STORE_STEP_LAST, "journal step", &v) < 0)
		return -1;
	*out = (enum store_journal_step)v;
	return 0;
}

const char *
store_journal_status_name(enum store_journal_status st)
{
	return (unsigned)st < STORE_JOURNAL_STATUS_LAST ? status_names[st]
							 : NULL;
}

static int
journal_status_parse(const char *s, enum store_journal_status *out)
{
	int v;

	if (parse_enum(s, status_names, STORE_JOURNAL_STATUS_LAST,
		       "journal status", &v) < 0)
		return -1;
	*out = (enum store_journal_status)v;
	return 0;
}

bool
store_journal_step_valid(enum store_journal_action a, enum store_journal_step st)
{
	switch (a) {
	case STORE_JOURNAL_PROVISION:
		return st <= STORE_STEP_STARTED;
	case STORE_JOURNAL_REMOVE:
		return st == STORE_STEP_NONE ||
		       (st >= STORE_STEP_DOMAIN_STOPPED && st < STORE_STEP_LAST);
	case STORE_JOURNAL_LAST:
		break;
	}
	return false;
}

/* ---- input validation -------------------------------------------------- */

static bool
name_char(unsigned char c, bool lower_only)
{
	if (c >= 'a' && c <= 'z')
		return true;
	if (!lower_only && c >= 'A' && c <= 'Z')
		return true;
	return (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

/* Names: [A-Za-z0-9_.-]{1,63} (event kinds: lowercase only). */
static int
check_name_len(const char *s, size_t len, const char *what, bool lower_only)
{
	if (len == 0 || len > STORE_NAME_MAX) {
		err_set("%s must be 1 to %d characters, not %zu", what,
			STORE_NAME_MAX, len);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (!name_char((unsigned char)s[i], lower_only)) {
			err_set("%s '%.*s' has a character outside %s", what,
				(int)len, s,
				lower_only ? "[a-z0-9_.-]" : "[A-Za-z0-9_.-]");
			return -1;
		}
	}
	return 0;
}

static int
check_name(const char *s, const char *what)
{
	if (!s) {
		err_set("%s is missing", what);
		return -1;
	}
	return check_name_len(s, strlen(s), what, false);
}

/* Lowercase UUID text: 8-4-4-4-12 hex digits. */
static int
check_id_len(const char *s, size_t len)
{
	if (len != STORE_ID_LEN)
		goto bad;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				goto bad;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			goto bad;
		}
	}
	return 0;
bad:
	err_set("instance id '%.*s' is not a lowercase UUID", (int)(len > 64 ? 64 : len), s);
	return -1;
}

static int
check_id(const char *s)
{
	if (!s) {
		err_set("instance id is missing");
		return -1;
	}
	return check_id_len(s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence at s (len bytes left), or 0
 * (overlongs, surrogates and code points above U+10FFFF are malformed). */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 1;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 2;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len <= n)
		return 0;
	for (size_t k = 1; k <= n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[k] & 0x3f);
	}
	if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n + 1;
}

/* Whether s[0..len) is well-formed UTF-8. Both backends then store the
 * same text: MariaDB in strict mode refuses what SQLite would keep. */
static bool
utf8_valid(const unsigned char *s, size_t len)
{
	for (size_t i = 0, n; i < len; i += n)
		if ((n = utf8_seq(s + i, len - i)) == 0)
			return false;
	return true;
}

/*
 * Free text from outside (libvirt errors, guest host names) made storable:
 * malformed UTF-8 and control characters other than tab and newline become
 * '?', and it is cut to max bytes on a character boundary. Caller frees.
 */
static char *
text_sanitize(const char *in, size_t max)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t len = strlen(in), i = 0;
	struct strbuf sb = STRBUF_INIT;

	strbuf_add(&sb, "", 0);
	while (i < len) {
		size_t n = utf8_seq(s + i, len - i);

		if (n == 0 || (n == 1 && (s[i] == 0x7f || (s[i] < 0x20 &&
				s[i] != '\n' && s[i] != '\t')))) {
			if (sb.len + 1 > max)
				break;
			strbuf_addc(&sb, '?');
			i += n ? n : 1;
			continue;
		}
		if (sb.len + n > max)
			break;
		strbuf_add(&sb, s + i, n);
		i += n;
	}
	return strbuf_detach(&sb);
}

/* Free text: at most max bytes of UTF-8, no control characters but
 * tab/newline. */
static int
check_text_len(const char *s, size_t len, size_t max, const char *what,
	       bool allow_newlines)
{
	if (len > max) {
		err_set("%s is %zu bytes long, the limit is %zu", what, len, max);
		return -1;
	}
	if (!utf8_valid((const unsigned char *)s, len)) {
		err_set("%s is not valid UTF-8", what);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == 0x7f || (c < 0x20 && !(allow_newlines &&
						 (c == '\n' || c == '\t' ||
						  c == '\r')))) {
			err_set("%s contains a control character (0x%02x)",
				what, c);
			return -1;
		}
	}
	return 0;
}

static int
check_text(const char *s, size_t max, const char *what, bool nullable,
	   bool allow_newlines)
{
	if (!s) {
		if (nullable)
			return 0;
		err_set("%s is missing", what);
		return -1;
	}
	return check_text_len(s, strlen(s), max, what, allow_newlines);
}

static int
check_hash_len(const char *s, size_t len)
{
	if (len != STORE_HASH_LEN)
		goto bad;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			goto bad;
	return 0;
bad:
	err_set("secret hash is not %d lowercase hex digits", STORE_HASH_LEN);
	return -1;
}

/* ---- reading rows ------------------------------------------------------ */

/*
 * Column accessors for row callbacks: each validates what the database
 * handed back (NULLs, lengths, embedded NULs, numbers) and says which
 * column is wrong. Row callbacks prefix the table and key.
 */
/* Whether the backend gave column i as a number (store_row). */
static bool
col_typed_int(const struct store_row *r, size_t i)
{
	return i < r->ncols && r->is_int && r->is_int[i];
}

/* Whether column i is SQL NULL. */
static bool
col_null(const struct store_row *r, size_t i)
{
	return i < r->ncols && !r->vals[i] && !col_typed_int(r, i);
}

static int
col_raw(const struct store_row *r, size_t i, const char *col, bool nullable,
	const char **s, size_t *len)
{
	if (i >= r->ncols) {
		err_set("column %s is missing from the result", col);
		return -1;
	}
	if (col_typed_int(r, i)) {
		err_set("column %s is the number %" PRId64 ", not text", col,
			r->ints[i]);
		return -1;
	}
	*s = r->vals[i];
	*len = r->lens[i];
	if (!*s) {
		if (nullable)
			return 0;
		err_set("column %s is NULL", col);
		return -1;
	}
	if (memchr(*s, '\0', *len)) {
		err_set("column %s contains a NUL byte", col);
		return -1;
	}
	return 0;
}

static int
col_int(const struct store_row *r, size_t i, const char *col, int64_t min,
	int64_t max, int64_t *out)
{
	const char *s;
	size_t len;
	char buf[32];

	if (col_typed_int(r, i)) {
		/* the backend read a number: only its range to check */
		if (r->ints[i] < min || r->ints[i] > max) {
			err_set("column %s: %" PRId64 " is out of range (%" PRId64
				" to %" PRId64 ")", col, r->ints[i], min, max);
			return -1;
		}
		*out = r->ints[i];
		return 0;
	}
	if (col_raw(r, i, col, false, &s, &len) < 0)
		return -1;
	if (len == 0 || len >= sizeof(buf)) {
		err_set("column %s: '%.32s' is not a number", col, s);
		return -1;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (util_parse_int64(buf, min, max, out) < 0) {
		err_prefix("column %s", col);
		return -1;
	}
	return 0;
}

static int
col_bool(const struct store_row *r, size_t i, const char *col, bool *out)
{
	int64_t v;

	if (col_int(r, i, col, 0, 1, &v) < 0)
		return -1;
	*out = v != 0;
	return 0;
}

enum col_kind {
	COL_NAME,   /* check_name_len */
	COL_KIND,   /* lowercase name */
	COL_ID,     /* UUID */
	COL_HASH,   /* 64 hex */
	COL_LINE,   /* text without newlines, max */
	COL_TEXT,   /* text with newlines, max */
};

static char *arena_strndup(struct store_instance_arena **a, const char *s,
			   size_t len);

/* col_str(), the copy in *arena when arena is not NULL. */
static int
col_str_in(const struct store_row *r, size_t i, const char *col,
	   enum col_kind kind, size_t max, bool nullable,
	   struct store_instance_arena **arena, char **out)
{
	const char *s;
	size_t len;
	int rc = 0;

	*out = NULL;
	if (col_raw(r, i, col, nullable, &s, &len) < 0)
		return -1;
	if (!s)
		return 0;
	switch (kind) {
	case COL_NAME:
		rc = check_name_len(s, len, "value", false);
		break;
	case COL_KIND:
		rc = check_name_len(s, len, "value", true);
		break;
	case COL_ID:
		rc = check_id_len(s, len);
		break;
	case COL_HASH:
		rc = check_hash_len(s, len);
		break;
	case COL_LINE:
		rc = check_text_len(s, len, max, "value", false);
		break;
	case COL_TEXT:
		rc = check_text_len(s, len, max, "value", true);
		break;
	}
	if (rc < 0) {
		err_prefix("column %s", col);
		return -1;
	}
	*out = arena ? arena_strndup(arena, s, len) : xstrndup(s, len);
	return 0;
}

static int
col_str(const struct store_row *r, size_t i, const char *col,
	enum col_kind kind, size_t max, bool nullable, char **out)
{
	return col_str_in(r, i, col, kind, max, nullable, NULL, out);
}

/* A column holding the name of an enum value. */
static int
col_enum(const struct store_row *r, size_t i, const char *col,
	 int (*parse)(const char *, void *), void *out)
{
	const char *s;
	size_t len;
	char buf[STORE_NAME_MAX + 1];

	if (col_raw(r, i, col, false, &s, &len) < 0)
		return -1;
	if (len > STORE_NAME_MAX) {
		err_set("column %s: unknown value (%zu bytes long)", col, len);
		return -1;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (parse(buf, out) < 0) {
		err_prefix("column %s", col);
		return -1;
	}
	return 0;
}

static int
parse_state_cb(const char *s, void *out)
{
	return store_instance_state_parse(s, out);
}

static int
parse_action_cb(const char *s, void *out)
{
	return store_journal_action_parse(s, out);
}

static int
parse_step_cb(const char *s, void *out)
{
	return store_journal_step_parse(s, out);
}

static int
parse_status_cb(const char *s, void *out)
{
	return journal_status_parse(s, out);
}

/* A short printable form of a row's key for error messages. */
static void
row_key(const struct store_row *r, size_t i, char *buf, size_t size)
{
	size_t n = 0;

	if (col_typed_int(r, i)) {
		snprintf(buf, size, "%" PRId64, r->ints[i]);
		return;
	}
	if (i < r->ncols && r->vals[i]) {
		n = r->lens[i] < size - 1 ? r->lens[i] : size - 1;
		memcpy(buf, r->vals[i], n);
		for (size_t k = 0; k < n; k++)
			if ((unsigned char)buf[k] < 0x20 || buf[k] == 0x7f)
				buf[k] = '?';
	}
	buf[n] = '\0';
}

static int
corrupt(const struct store_row *r, const char *table, size_t keycol)
{
	char key[80];

	row_key(r, keycol, key, sizeof(key));
	err_prefix("state store: bad row in table %s (key '%s')", table, key);
	return -1;
}

struct count_ctx {
	size_t n;
};

static int
count_cb(void *ctx, const struct store_row *r)
{
	struct count_ctx *c = ctx;

	(void)r;
	c->n++;
	return 0;
}

/* ---- open, transactions, fencing --------------------------------------- */

static struct store *
lane_new(struct store *pool, struct store_conn *conn)
{
	struct store *l = xcalloc(1, sizeof(*l));

	l->drv = pool->drv;
	l->conn = conn;
	l->pool = pool;
	return l;
}

/* A free lane of handle p, opening one if all are busy and there is room
 * (the connection is made without holding the mutex); NULL if the caller
 * must wait. Called with p->mu held. */
static struct store *
lane_take(struct store *p)
{
	struct store_conn *conn;
	struct store *l;

	for (size_t i = 0; i < p->n_lanes; i++) {
		if (!p->lanes[i]->busy) {
			p->lanes[i]->busy = true;
			return p->lanes[i];
		}
	}
	if (p->n_lanes + p->n_opening >= p->max_lanes ||
	    util_now_ms() < p->open_retry_ms)
		return NULL;
	p->n_opening++;
	pthread_mutex_unlock(&p->mu);
	conn = p->drv->open(p->rest, p->password);
	if (!conn)
		err_prefix("state store %s: another connection", p->drv->name);
	pthread_mutex_lock(&p->mu);
	p->n_opening--;
	if (!conn) {
		/* Go on with the lanes we have (the server's connection
		 * limit, say) and try again in a while. */
		log_complain(&p->open_fail, LOG_LEVEL_WARN, log_tag,
			     "%s; going on with %zu", err_msg(), p->n_lanes);
		p->open_retry_ms = util_now_ms() + OPEN_RETRY_MS;
		pthread_cond_broadcast(&p->cond);
		return NULL;
	}
	log_complain_clear(&p->open_fail, log_tag,
			   "state store %s: opened another connection",
			   p->drv->name);
	l = lane_new(p, conn);
	l->busy = true;
	p->lanes[p->n_lanes++] = l;
	return l;
}

/* Begin an operation on handle p: returns the lane to run it on. */
static struct store *
lock(struct store *p)
{
	struct store *l;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		if (!p->excl && !p->excl_waiting) {
			/* Counted before lane_take(), which may drop the
			 * mutex to connect: an exclusive operation that
			 * starts meanwhile waits for us. */
			p->active++;
			if ((l = lane_take(p)))
				break;
			if (--p->active == 0)
				pthread_cond_broadcast(&p->cond);
		}
		pthread_cond_wait(&p->cond, &p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return l;
}

/* Begin an operation that changes the fence: alone on the handle. */
static struct store *
lock_excl(struct store *p)
{
	struct store *l;

	pthread_mutex_lock(&p->mu);
	p->excl_waiting++;
	while (p->excl || p->active > 0)
		pthread_cond_wait(&p->cond, &p->mu);
	p->excl_waiting--;
	p->excl = true;
	p->active++;
	l = p->lanes[0];
	l->busy = true;
	pthread_mutex_unlock(&p->mu);
	return l;
}

/* End the operation that runs on lane l. */
static void
unlock(struct store *l)
{
	struct store *p = l->pool;

	pthread_mutex_lock(&p->mu);
	l->busy = false;
	p->active--;
	p->excl = false;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->mu);
}

static int
q(struct store *s, const char *sql, const struct store_val *p, size_t n,
  store_row_fn fn, void *ctx)
{
	return s->drv->query(s->conn, sql, p, n, fn, ctx);
}

static int
x(struct store *s, const char *sql, const struct store_val *p, size_t n,
  int64_t *changes, int64_t *last_id)
{
	return s->drv->exec(s->conn, sql, p, n, changes, last_id);
}

/*
 * Begin a write transaction and, if the handle is fenced, check the lease
 * epoch inside it: the conditional UPDATE matches the lease row only while
 * it still carries our epoch, and it locks that row until we commit, so a
 * takeover (which updates the same row) is ordered before or after the
 * whole transaction, never in the middle.
 */
static int
tx_begin(struct store *s)
{
	int64_t changes = 0;
	int rc;

	if (s->drv->begin(s->conn, true) < 0)
		return STORE_E_ERROR;
	if (!s->pool->fence_name)
		return STORE_OK;
	rc = x(s, "UPDATE leases SET epoch = epoch WHERE name = ? AND epoch = ?",
	       (struct store_val[]){SV_TEXT(s->pool->fence_name),
				    SV_INT(s->pool->fence_epoch)},
	       2, &changes, NULL);
	if (rc < 0) {
		s->drv->rollback(s->conn);
		return STORE_E_ERROR;
	}
	if (changes != 1) {
		s->drv->rollback(s->conn);
		err_set("state store: fenced: lease '%s' is no longer at epoch "
			"%" PRId64 " (another daemon took over)",
			s->pool->fence_name, s->pool->fence_epoch);
		return STORE_E_FENCED;
	}
	return STORE_OK;
}

/* Commit if rc is STORE_OK, else roll back; returns the final rc. */
static int
tx_end(struct store *s, int rc)
{
	if (rc == STORE_OK) {
		if (s->drv->commit(s->conn) < 0)
			return STORE_E_ERROR;
		return STORE_OK;
	}
	s->drv->rollback(s->conn);
	return rc;
}

struct version_ctx {
	size_t rows;
	int64_t version;
};

static int
version_cb(void *ctx, const struct store_row *r)
{
	struct version_ctx *v = ctx;

	v->rows++;
	if (col_int(r, 0, "version", 0, INT32_MAX, &v->version) < 0)
		return corrupt(r, "schema_version", 0);
	return 0;
}

static int
read_version(struct store *s, int64_t *out)
{
	struct version_ctx v = {0, 0};
	bool exists = false;

	if (s->drv->table_exists(s->conn, "schema_version", &exists) < 0)
		return -1;
	if (!exists) {
		bool other = false;

		if (s->drv->table_exists(s->conn, "instances", &other) < 0)
			return -1;
		if (other) {
			err_set("the database has an 'instances' table but no "
				"schema_version: not a virt-autoscaler state "
				"store, or a damaged one");
			return -1;
		}
		*out = 0;
		return 0;
	}
	if (q(s, "SELECT version FROM schema_version", NULL, 0, version_cb,
	      &v) < 0)
		return -1;
	if (v.rows > 1) {
		err_set("table schema_version has %zu rows, expected one",
			v.rows);
		return -1;
	}
	*out = v.rows ? v.version : 0;
	return 0;
}

/*
 * Version 3 data step: the installation id, minted once. On MariaDB an
 * interrupted migration runs again: the single-row primary key keeps the
 * id the first run inserted (STORE_E_EXISTS), so it never changes.
 */
static int
owner_mint(struct store *s)
{
	char id[STORE_ID_LEN + 1];
	int64_t now = 0;
	int rc;

	if (store_instance_new_id(id) < 0 || s->drv->now_ms(s->conn, &now) < 0)
		return -1;
	rc = x(s, "INSERT INTO installation (singleton, id, created_ms) "
		  "VALUES (1, ?, ?)",
	       (struct store_val[]){SV_TEXT(id), SV_INT(now)}, 2, NULL, NULL);
	if (rc == STORE_E_EXISTS)
		return 0;
	return rc < 0 ? -1 : 0;
}

static int
max_gen_cb(void *ctx, const struct store_row *r)
{
	int64_t *max = ctx, v = 0;

	if (!col_null(r, 0) &&
	    col_int(r, 0, "config_gen", 0, INT64_MAX, &v) < 0)
		return corrupt(r, "config_gen", 0);
	if (v > *max)
		*max = v;
	return 0;
}

/*
 * Version 4 data step: the configuration generation starts where the
 * existing rows left it (the largest config_gen a group or an instance
 * carries; 0 in a new store, so the daemon's first bump gives 1), so that
 * a generation number never names two configurations. On MariaDB an
 * interrupted migration runs again: the single-row key keeps the first
 * run's row.
 */
static int
config_gen_init(struct store *s)
{
	int64_t max = 0, now = 0;
	int rc;

	if (q(s, "SELECT MAX(config_gen) FROM instance_groups", NULL, 0,
	      max_gen_cb, &max) < 0 ||
	    q(s, "SELECT MAX(config_gen) FROM instances", NULL, 0, max_gen_cb,
	      &max) < 0 ||
	    s->drv->now_ms(s->conn, &now) < 0)
		return -1;
	rc = x(s, "INSERT INTO config_generation (singleton, gen, updated_ms) "
		  "VALUES (1, ?, ?)",
	       (struct store_val[]){SV_INT(max), SV_INT(now)}, 2, NULL, NULL);
	if (rc == STORE_E_EXISTS)
		return 0;
	return rc < 0 ? -1 : 0;
}

/*
 * Steps a migration needs beyond its backend's DDL, written once here for
 * both backends; each runs right after the statements of its version.
 */
static const struct {
	int version;
	int (*fn)(struct store *s);
} data_steps[] = {
	{3, owner_mint},
	{4, config_gen_init},
};

static int
migrate(struct store *s)
{
	const struct store_driver *d = s->drv;
	int64_t version;
	bool ok = false;

	if (d->migrate_begin(s->conn) < 0)
		return -1;
	if (read_version(s, &version) < 0)
		goto cleanup;
	if (version > STORE_SCHEMA_VERSION) {
		err_set("the database schema is version %" PRId64 ", newer than "
			"this virt-autoscaler knows (%d): upgrade "
			"virt-autoscaler (a newer version migrated it)",
			version, STORE_SCHEMA_VERSION);
		goto cleanup;
	}
	for (size_t i = 0; i < d->nmigrations; i++) {
		const struct store_migration *m = &d->migrations[i];

		if (m->version <= version)
			continue;
		log_info("migrating the %s state store schema from version "
			 "%" PRId64 " to %d", d->name, version, m->version);
		for (const char *const *st = m->stmts; *st; st++) {
			if (x(s, *st, NULL, 0, NULL, NULL) < 0) {
				err_prefix("schema migration to version %d",
					   m->version);
				goto cleanup;
			}
		}
		for (size_t k = 0; k < ARRAY_SIZE(data_steps); k++) {
			if (data_steps[k].version == m->version &&
			    data_steps[k].fn(s) < 0) {
				err_prefix("schema migration to version %d",
					   m->version);
				goto cleanup;
			}
		}
		if (x(s, "DELETE FROM schema_version", NULL, 0, NULL, NULL) < 0 ||
		    x(s, "INSERT INTO schema_version (version) VALUES (?)",
		      (struct store_val[]){SV_INT(m->version)}, 1, NULL,
		      NULL) < 0) {
			err_prefix("schema migration to version %d",
				   m->version);
			goto cleanup;
		}
		version = m->version;
	}
	if (version != STORE_SCHEMA_VERSION)
		fatal("store: %s migrations end at version %" PRId64
		      ", expected %d", d->name, version, STORE_SCHEMA_VERSION);
	ok = true;
cleanup:
	if (d->migrate_end(s->conn, ok) < 0)
		ok = false;
	return ok ? 0 : -1;
}

/* The driver for url's scheme and the rest of the URL after it. */
static const struct store_driver *
driver_for(const char *url, const char **rest)
{
	static const struct {
		const char *prefix;
		const struct store_driver *drv;
	} schemes[] = {
		{"sqlite://", &store_driver_sqlite},
		{"mysql://", &store_driver_mysql},
		{"mariadb://", &store_driver_mysql},
	};

	if (!url || !*url) {
		err_set("state store URL is empty (expected sqlite:///PATH or "
			"mysql://USER@HOST:PORT/DB)");
		return NULL;
	}
	for (const char *p = url; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			err_set("state store URL contains a control character");
			return NULL;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++) {
		size_t n = strlen(schemes[i].prefix);

		if (strncmp(url, schemes[i].prefix, n) == 0) {
			*rest = url + n;
			return schemes[i].drv;
		}
	}
	err_set("state store URL '%.200s': unsupported scheme (expected "
		"sqlite:///PATH or mysql://USER@HOST:PORT/DB)", url);
	return NULL;
}

int
store_url_check(const char *url)
{
	const char *rest = NULL;
	const struct store_driver *drv = driver_for(url, &rest);

	if (!drv)
		return -1;
	if (drv->check_url(rest) < 0) {
		err_prefix("state store %s", drv->name);
		return -1;
	}
	return 0;
}

struct store *
store_open_pool(const char *url, const char *password, unsigned max_conns)
{
	const char *rest = NULL;
	const struct store_driver *drv = driver_for(url, &rest);
	struct store_conn *conn;
	struct store *s;

	if (!drv)
		return NULL;
	if (max_conns < 1) {
		err_set("state store: a handle needs at least one connection");
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->drv = drv;
	s->pool = s;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->cache_mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->max_lanes = max_conns < drv->max_conns ? max_conns : drv->max_conns;
	if (s->max_lanes > MAX_LANES)
		s->max_lanes = MAX_LANES;
	if (s->max_lanes > 1) {
		s->rest = xstrdup(rest);
		s->password = password ? xstrdup(password) : NULL;
	}
	conn = drv->open(rest, password);
	if (!conn) {
		err_prefix("state store %s", drv->name);
		goto fail;
	}
	s->lanes[0] = lane_new(s, conn);
	s->n_lanes = 1;
	if (migrate(s->lanes[0]) < 0) {
		err_prefix("state store %s", drv->name);
		goto fail;
	}
	return s;
fail:
	store_close(s);
	return NULL;
}

struct store *
store_open(const char *url, const char *password)
{
	return store_open_pool(url, password, STORE_POOL_DEFAULT);
}

void
store_close(struct store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_lanes; i++) {
		s->drv->close(s->lanes[i]->conn);
		free(s->lanes[i]);
	}
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->cache_mu);
	pthread_cond_destroy(&s->cond);
	store_instance_list_release(&s->cache);
	free(s->cache_by_id);
	if (s->password) {
		explicit_bzero(s->password, strlen(s->password));
		free(s->password);
	}
	free(s->rest);
	free(s->fence_name);
	free(s);
}

size_t
store_connections(struct store *s)
{
	size_t n;

	pthread_mutex_lock(&s->mu);
	n = s->n_lanes;
	pthread_mutex_unlock(&s->mu);
	return n;
}

const char *
store_backend(const struct store *s)
{
	return s->drv->name;
}

int
store_schema_version(struct store *s, int *version)
{
	int64_t v;
	int rc;

	s = lock(s);
	rc = read_version(s, &v) < 0 ? STORE_E_ERROR : STORE_OK;
	unlock(s);
	if (rc == STORE_OK)
		*version = (int)v;
	return rc;
}

struct owner_ctx {
	size_t rows;
	char id[STORE_ID_LEN + 1];
};

static int
owner_cb(void *ctx, const struct store_row *r)
{
	struct owner_ctx *o = ctx;
	char *id = NULL;

	if (++o->rows > 1)
		return 0;
	if (col_str(r, 0, "id", COL_ID, STORE_ID_LEN, false, &id) < 0)
		return corrupt(r, "installation", 0);
	snprintf(o->id, sizeof(o->id), "%s", id);
	free(id);
	return 0;
}

int
store_owner_id(struct store *s, char out[STORE_ID_LEN + 1])
{
	struct owner_ctx o = {0};
	int rc = STORE_OK;

	pthread_mutex_lock(&s->mu);
	memcpy(o.id, s->owner, sizeof(o.id));
	pthread_mutex_unlock(&s->mu);
	if (!o.id[0]) {
		struct store *l = lock(s);

		if (q(l, "SELECT id FROM installation", NULL, 0, owner_cb,
		      &o) < 0) {
			rc = STORE_E_ERROR;
		} else if (o.rows != 1) {
			err_set("state store: table installation has %zu rows, "
				"expected one (a damaged store: restore it "
				"from a backup)", o.rows);
			rc = STORE_E_ERROR;
		}
		unlock(l);
		if (rc == STORE_OK) {
			pthread_mutex_lock(&s->mu);
			memcpy(s->owner, o.id, sizeof(s->owner));
			pthread_mutex_unlock(&s->mu);
		}
	}
	if (rc == STORE_OK)
		memcpy(out, o.id, sizeof(o.id));
	return rc;
}

struct gen_ctx {
	size_t rows;
	int64_t gen;
};

static int
gen_cb(void *ctx, const struct store_row *r)
{
	struct gen_ctx *g = ctx;

	if (++g->rows > 1)
		return 0;
	if (col_int(r, 0, "gen", 0, INT64_MAX, &g->gen) < 0)
		return corrupt(r, "config_generation", 0);
	return 0;
}

/* Read the one row of config_generation into *gen (lock held). */
static int
gen_read(struct store *s, int64_t *gen)
{
	struct gen_ctx g = {0, 0};

	if (q(s, "SELECT gen FROM config_generation", NULL, 0, gen_cb, &g) < 0)
		return STORE_E_ERROR;
	if (g.rows != 1) {
		err_set("state store: table config_generation has %zu rows, "
			"expected one (a damaged store: restore it from a "
			"backup)", g.rows);
		return STORE_E_ERROR;
	}
	*gen = g.gen;
	return STORE_OK;
}

int
store_config_gen_get(struct store *s, int64_t *gen)
{
	int rc;

	s = lock(s);
	rc = gen_read(s, gen);
	unlock(s);
	return rc;
}

int
store_config_gen_bump(struct store *s, int64_t *gen)
{
	int64_t changes = 0, v = 0;
	int rc;

	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	/* The UPDATE locks the row until commit (InnoDB; SQLite's write
	 * lock is taken by BEGIN IMMEDIATE): two daemons or threads that
	 * bump together get two different numbers. */
	if (x(s, "UPDATE config_generation SET gen = gen + 1, updated_ms = ? "
		 "WHERE singleton = 1 AND gen < ?",
	      (struct store_val[]){SV_INT(util_wall_ms()), SV_INT(INT64_MAX)},
	      2, &changes, NULL) < 0) {
		rc = STORE_E_ERROR;
	} else if ((rc = gen_read(s, &v)) == STORE_OK && changes != 1) {
		err_set("state store: the configuration generation is at its "
			"limit (%" PRId64 ")", v);
		rc = STORE_E_ERROR;
	}
	rc = tx_end(s, rc);
	if (rc == STORE_OK)
		*gen = v;
cleanup:
	unlock(s);
	return rc;
}

void
store_fence_set(struct store *s, const char *name, int64_t epoch)
{
	struct store *l = lock_excl(s);

	free(s->fence_name);
	s->fence_name = NULL;
	s->fence_epoch = 0;
	if (name && epoch > 0) {
		s->fence_name = xstrdup(name);
		s->fence_epoch = epoch;
	}
	unlock(l);
}

/* ---- groups ------------------------------------------------------------ */

#define DESIRED_MAX 1000000

void
store_group_release(struct store_group *g)
{
	if (!g)
		return;
	free(g->name);
	memset(g, 0, sizeof(*g));
}

void
store_group_list_release(struct store_group_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		store_group_release(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

#define GROUP_COLS "name, desired, paused, config_gen, created_ms, updated_ms"

static int
group_from_row(const struct store_row *r, struct store_group *g)
{
	memset(g, 0, sizeof(*g));
	if (col_str(r, 0, "name", COL_NAME, 0, false, &g->name) < 0 ||
	    col_int(r, 1, "desired", 0, DESIRED_MAX, &g->desired) < 0 ||
	    col_bool(r, 2, "paused", &g->paused) < 0 ||
	    col_int(r, 3, "config_gen", 0, INT64_MAX, &g->config_gen) < 0 ||
	    col_int(r, 4, "created_ms", 0, INT64_MAX, &g->created_ms) < 0 ||
	    col_int(r, 5, "updated_ms", 0, INT64_MAX, &g->updated_ms) < 0) {
		store_group_release(g);
		return corrupt(r, "instance_groups", 0);
	}
	return 0;
}

static int
group_list_cb(void *ctx, const struct store_row *r)
{
	struct store_group_list *l = ctx;
	struct store_group g;

	if (group_from_row(r, &g) < 0)
		return -1;
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = g;
	return 0;
}

static int
check_group(const struct store_group *g)
{
	if (check_name(g->name, "group name") < 0)
		return -1;
	if (g->desired < 0 || g->desired > DESIRED_MAX) {
		err_set("group %s: desired size %" PRId64 " is outside 0..%d",
			g->name, g->desired, DESIRED_MAX);
		return -1;
	}
	if (g->config_gen < 0) {
		err_set("group %s: negative config generation", g->name);
		return -1;
	}
	return 0;
}

int
store_group_upsert(struct store *s, const struct store_group *g)
{
	int64_t now = util_wall_ms(), changes = 0;
	int rc;

	if (check_group(g) < 0)
		return STORE_E_ERROR;
	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	if (x(s, "UPDATE instance_groups SET desired = ?, paused = ?, "
		 "config_gen = ?, updated_ms = ? WHERE name = ?",
	      (struct store_val[]){SV_INT(g->desired), SV_INT(g->paused),
				   SV_INT(g->config_gen), SV_INT(now),
				   SV_TEXT(g->name)},
	      5, &changes, NULL) < 0) {
		rc = STORE_E_ERROR;
	} else if (changes == 0) {
		rc = x(s, "INSERT INTO instance_groups (" GROUP_COLS
			  ") VALUES (?, ?, ?, ?, ?, ?)",
		       (struct store_val[]){SV_TEXT(g->name), SV_INT(g->desired),
					    SV_INT(g->paused),
					    SV_INT(g->config_gen), SV_INT(now),
					    SV_INT(now)},
		       6, NULL, NULL);
		if (rc == STORE_E_EXISTS)
			err_set("group %s was created concurrently; retry",
				g->name);
	}
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	if (rc < 0)
		err_prefix("group %s", g->name);
	return rc;
}

int
store_group_get(struct store *s, const char *name, struct store_group *out)
{
	struct store_group_list l = {NULL, 0};
	int rc = STORE_OK;

	memset(out, 0, sizeof(*out));
	if (check_name(name, "group name") < 0)
		return STORE_E_ERROR;
	s = lock(s);
	if (q(s, "SELECT " GROUP_COLS " FROM instance_groups WHERE name = ?",
	      (struct store_val[]){SV_TEXT(name)}, 1, group_list_cb, &l) < 0)
		rc = STORE_E_ERROR;
	unlock(s);
	if (rc == STORE_OK && l.n == 0) {
		err_set("no group '%s' in the state store", name);
		rc = STORE_E_NOTFOUND;
	}
	if (rc == STORE_OK) {
		*out = l.v[0];
		l.n = 0;
	}
	store_group_list_release(&l);
	return rc;
}

int
store_group_list(struct store *s, struct store_group_list *out)
{
	int rc = STORE_OK;

	out->v = NULL;
	out->n = 0;
	s = lock(s);
	if (q(s, "SELECT " GROUP_COLS " FROM instance_groups ORDER BY name",
	      NULL, 0, group_list_cb, out) < 0)
		rc = STORE_E_ERROR;
	unlock(s);
	if (rc < 0)
		store_group_list_release(out);
	return rc;
}

/* UPDATE one group's column in a fenced transaction. */
static int
group_set(struct store *s, const char *name, const char *sql, int64_t v)
{
	int64_t changes = 0;
	int rc;

	if (check_name(name, "group name") < 0)
		return STORE_E_ERROR;
	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	if (x(s, sql,
	      (struct store_val[]){SV_INT(v), SV_INT(util_wall_ms()),
				   SV_TEXT(name)},
	      3, &changes, NULL) < 0) {
		rc = STORE_E_ERROR;
	} else if (changes == 0) {
		err_set("no group '%s' in the state store", name);
		rc = STORE_E_NOTFOUND;
	}
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	return rc;
}

int
store_group_set_desired(struct store *s, const char *name, int64_t desired)
{
	if (desired < 0 || desired > DESIRED_MAX) {
		err_set("desired size %" PRId64 " is outside 0..%d", desired,
			DESIRED_MAX);
		return STORE_E_ERROR;
	}
	return group_set(s, name,
			 "UPDATE instance_groups SET desired = ?, updated_ms = ? "
			 "WHERE name = ?",
			 desired);
}

int
store_group_set_paused(struct store *s, const char *name, bool paused)
{
	return group_set(s, name,
			 "UPDATE instance_groups SET paused = ?, updated_ms = ? "
			 "WHERE name = ?",
			 paused);
}

/* ---- instances --------------------------------------------------------- */

void
store_instance_release(struct store_instance *inst)
{
	if (!inst)
		return;
	free(inst->id);
	free(inst->group);
	free(inst->host);
	free(inst->domain);
	free(inst->secret_hash);
	free(inst->address);
	free(inst->notes);
	free(inst->template_hash);
	memset(inst, 0, sizeof(*inst));
}

/*
 * The strings of a listing, in blocks that never move (store.h). The
 * newest block (the list's `arena`) counts the lists that share the
 * blocks: the instance cache lends its strings to every listing it
 * answers (cache_copy()), which therefore copies no string; a block that
 * is shared is never written again (the cache is replaced, not updated).
 */
#define ARENA_BLOCK (32 * 1024)
struct store_instance_arena {
	struct store_instance_arena *next;
	size_t used, cap;
	unsigned refs; /* in the newest block: the lists sharing them */
	char data[];
};

/* A copy of s[0..len) with its NUL, in *a (a new block when full). */
static char *
arena_strndup(struct store_instance_arena **a, const char *s, size_t len)
{
	struct store_instance_arena *b = *a;
	char *p;

	if (!b || b->cap - b->used < len + 1) {
		size_t cap = len + 1 > ARENA_BLOCK ? len + 1 : ARENA_BLOCK;

		b = xmalloc(sizeof(*b) + cap);
		b->next = *a;
		b->used = 0;
		b->cap = cap;
		b->refs = 1;
		*a = b;
	}
	p = b->data + b->used;
	memcpy(p, s, len);
	p[len] = '\0';
	b->used += len + 1;
	return p;
}

void
store_instance_list_release(struct store_instance_list *l)
{
	if (!l)
		return;
	if (l->arena) {
		/* the last list that shares the blocks frees them */
		if (__atomic_sub_fetch(&l->arena->refs, 1, __ATOMIC_ACQ_REL) > 0)
			l->arena = NULL;
		while (l->arena) {
			struct store_instance_arena *next = l->arena->next;

			free(l->arena);
			l->arena = next;
		}
	} else {
		for (size_t i = 0; i < l->n; i++)
			store_instance_release(&l->v[i]);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
	l->alloc = 0;
}

int
store_instance_new_id(char out[STORE_ID_LEN + 1])
{
	unsigned char b[16];
	int rc;

	rc = gnutls_rnd(GNUTLS_RND_NONCE, b, sizeof(b));
	if (rc < 0) {
		err_set("random bytes for an instance id: %s",
			gnutls_strerror(rc));
		return -1;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, STORE_ID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

#define INST_COLS                                                          \
	"id, group_name, host, domain, state, secret_hash, created_ms, "   \
	"updated_ms, ready_ms, heartbeat_ms, busy, busy_since_ms, "        \
	"config_gen, address, notes, template_hash"

/* The instance of row r; its strings are allocated one by one, or in
 * *arena when arena is not NULL (a listing's). */
static int
instance_from_row(const struct store_row *r, struct store_instance *in,
		  struct store_instance_arena **arena)
{
	memset(in, 0, sizeof(*in));
	if (col_str_in(r, 0, "id", COL_ID, 0, false, arena, &in->id) < 0 ||
	    col_str_in(r, 1, "group_name", COL_NAME, 0, false, arena,
		       &in->group) < 0 ||
	    col_str_in(r, 2, "host", COL_NAME, 0, true, arena, &in->host) < 0 ||
	    col_str_in(r, 3, "domain", COL_LINE, STORE_DOMAIN_MAX, true, arena,
		       &in->domain) < 0 ||
	    col_enum(r, 4, "state", parse_state_cb, &in->state) < 0 ||
	    col_str_in(r, 5, "secret_hash", COL_HASH, 0, true, arena,
		       &in->secret_hash) < 0 ||
	    col_int(r, 6, "created_ms", 0, INT64_MAX, &in->created_ms) < 0 ||
	    col_int(r, 7, "updated_ms", 0, INT64_MAX, &in->updated_ms) < 0 ||
	    col_int(r, 8, "ready_ms", 0, INT64_MAX, &in->ready_ms) < 0 ||
	    col_int(r, 9, "heartbeat_ms", 0, INT64_MAX, &in->heartbeat_ms) < 0 ||
	    col_bool(r, 10, "busy", &in->busy) < 0 ||
	    col_int(r, 11, "busy_since_ms", 0, INT64_MAX,
		    &in->busy_since_ms) < 0 ||
	    col_int(r, 12, "config_gen", 0, INT64_MAX, &in->config_gen) < 0 ||
	    col_str_in(r, 13, "address", COL_LINE, STORE_ADDRESS_MAX, true,
		       arena, &in->address) < 0 ||
	    col_str_in(r, 14, "notes", COL_TEXT, STORE_TEXT_MAX, true, arena,
		       &in->notes) < 0 ||
	    col_str_in(r, 15, "template_hash", COL_HASH, 0, true, arena,
		       &in->template_hash) < 0)
		goto bad;
	if (!in->host && state_needs_host(in->state)) {
		err_set("column host is NULL but the instance is %s",
			state_names[in->state]);
		goto bad;
	}
	return 0;
bad:
	if (arena)
		memset(in, 0, sizeof(*in)); /* the list's release frees it */
	else
		store_instance_release(in);
	return corrupt(r, "instances", 0);
}

/* store_instance_get(): one instance that owns its strings. */
static int
instance_get_cb(void *ctx, const struct store_row *r)
{
	struct store_instance *out = ctx;

	if (out->id) {
		err_set("state store: two instances with id %s", out->id);
		return -1;
	}
	return instance_from_row(r, out, NULL);
}

static int
instance_list_cb(void *ctx, const struct store_row *r)
{
	struct store_instance_list *l = ctx;
	struct store_instance in;

	if (instance_from_row(r, &in, &l->arena) < 0)
		return -1;
	if (l->n == l->alloc) {
		/* doubling: one row at a time was a realloc per row, 5,000
		 * of them each tick at 5,000 instances */
		l->alloc = l->alloc ? 2 * l->alloc : 16;
		l->v = xreallocarray(l->v, l->alloc, sizeof(*l->v));
	}
	l->v[l->n++] = in;
	return 0;
}

static int
check_instance(const struct store_instance *in)
{
	if (check_id(in->id) < 0)
		return -1;
	if (check_name(in->group, "group name") < 0 ||
	    (in->host && check_name(in->host, "host name") < 0) ||
	    check_text(in->domain, STORE_DOMAIN_MAX, "domain name", true,
		       false) < 0 ||
	    check_text(in->address, STORE_ADDRESS_MAX, "address", true,
		       false) < 0 ||
	    check_text(in->notes, STORE_TEXT_MAX, "notes", true, true) < 0 ||
	    (in->secret_hash &&
	     check_hash_len(in->secret_hash, strlen(in->secret_hash)) < 0) ||
	    (in->template_hash &&
	     check_hash_len(in->template_hash, strlen(in->template_hash)) < 0))
		goto bad;
	if (in->domain && !*in->domain) {
		err_set("domain name is empty (use NULL for none)");
		goto bad;
	}
	if ((unsigned)in->state >= STORE_INSTANCE_LAST) {
		err_set("instance state %d is out of range", (int)in->state);
		goto bad;
	}
	if (!in->host && state_needs_host(in->state)) {
		err_set("an instance in state %s needs a host",
			state_names[in->state]);
		goto bad;
	}
	if (in->created_ms < 0 || in->ready_ms < 0 || in->heartbeat_ms < 0 ||
	    in->busy_since_ms < 0 || in->config_gen < 0) {
		err_set("negative timestamp or generation");
		goto bad;
	}
	return 0;
bad:
	err_prefix("instance %.40s", in->id ? in->id : "(no id)");
	return -1;
}

struct state_ctx {
	bool found;
	enum store_instance_state state;
	char *group;
	bool has_host;
};

static int
state_cb(void *ctx, const struct store_row *r)
{
	struct state_ctx *c = ctx;
	const char *h;
	size_t hl;

	if (col_enum(r, 0, "state", parse_state_cb, &c->state) < 0 ||
	    (r->ncols > 1 &&
	     col_str(r, 1, "group_name", COL_NAME, 0, false, &c->group) < 0) ||
	    (r->ncols > 2 && col_raw(r, 2, "host", true, &h, &hl) < 0))
		return corrupt(r, "instances", 0);
	if (r->ncols > 2)
		c->has_host = h != NULL;
	c->found = true;
	return 0;
}

int
store_instance_put(struct store *s, const struct store_instance *in)
{
	struct state_ctx cur = {false, 0, NULL, false};
	struct count_ctx grp = {0};
	int64_t now = util_wall_ms(), changes = 0;
	int rc;

	if (check_instance(in) < 0)
		return STORE_E_ERROR;
	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	if (q(s, "SELECT state, group_name FROM instances WHERE id = ?",
	      (struct store_val[]){SV_TEXT(in->id)}, 1, state_cb, &cur) < 0) {
		rc = STORE_E_ERROR;
		goto end;
	}
	if (cur.found) {
		if (cur.state != in->state) {
			err_set("it is %s, not %s (change states with "
				"store_instance_set_state)",
				state_names[cur.state], state_names[in->state]);
			rc = STORE_E_CONFLICT;
			goto end;
		}
		if (strcmp(cur.group, in->group) != 0) {
			err_set("it belongs to group %s, not %s", cur.group,
				in->group);
			rc = STORE_E_CONFLICT;
			goto end;
		}
		if (x(s, "UPDATE instances SET host = ?, domain = ?, "
			 "secret_hash = ?, config_gen = ?, address = ?, "
			 "notes = ?, template_hash = ?, updated_ms = ? "
			 "WHERE id = ? AND state = ?",
		      (struct store_val[]){
			      SV_OPT(in->host), SV_OPT(in->domain),
			      SV_OPT(in->secret_hash), SV_INT(in->config_gen),
			      SV_OPT(in->address), SV_OPT(in->notes),
			      SV_OPT(in->template_hash),
			      SV_INT(now), SV_TEXT(in->id),
			      SV_TEXT(state_names[in->state])},
		      10, &changes, NULL) < 0) {
			rc = STORE_E_ERROR;
		} else if (changes != 1) {
			err_set("its state changed meanwhile");
			rc = STORE_E_CONFLICT;
		}
		goto end;
	}
	if (q(s, "SELECT name FROM instance_groups WHERE name = ?",
	      (struct store_val[]){SV_TEXT(in->group)}, 1, count_cb,
	      &grp) < 0) {
		rc = STORE_E_ERROR;
		goto end;
	}
	if (grp.n == 0) {
		err_set("no group '%s' in the state store", in->group);
		rc = STORE_E_NOTFOUND;
		goto end;
	}
	rc = x(s, "INSERT INTO instances (" INST_COLS ") VALUES "
		  "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	       (struct store_val[]){
		       SV_TEXT(in->id), SV_TEXT(in->group), SV_OPT(in->host),
		       SV_OPT(in->domain), SV_TEXT(state_names[in->state]),
		       SV_OPT(in->secret_hash),
		       SV_INT(in->created_ms ? in->created_ms : now),
		       SV_INT(now), SV_INT(in->ready_ms),
		       SV_INT(in->heartbeat_ms), SV_INT(in->busy),
		       SV_INT(in->busy ? in->busy_since_ms : 0),
		       SV_INT(in->config_gen), SV_OPT(in->address),
		       SV_OPT(in->notes), SV_OPT(in->template_hash)},
	       16, NULL, NULL);
	if (rc == STORE_E_EXISTS)
		err_set("it was created concurrently");
end:
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	free(cur.group);
	if (rc < 0)
		err_prefix("instance %s", in->id);
	return rc;
}

int
store_instance_get(struct store *s, const char *id, struct store_instance *out)
{
	int rc = STORE_OK;

	memset(out, 0, sizeof(*out));
	if (check_id(id) < 0)
		return STORE_E_ERROR;
	s = lock(s);
	if (q(s, "SELECT " INST_COLS " FROM instances WHERE id = ?",
	      (struct store_val[]){SV_TEXT(id)}, 1, instance_get_cb, out) < 0)
		rc = STORE_E_ERROR;
	unlock(s);
	if (rc == STORE_OK && !out->id) {
		err_set("no instance %s in the state store", id);
		rc = STORE_E_NOTFOUND;
	}
	if (rc != STORE_OK)
		store_instance_release(out);
	return rc;
}

bool
store_instance_cache(struct store *s, int64_t max_age_ms)
{
	if (!s->drv->instances_gen || max_age_ms <= 0)
		return false;
	pthread_mutex_lock(&s->cache_mu);
	s->cache_max_age_ms = max_age_ms;
	s->cache_valid = false;
	pthread_mutex_unlock(&s->cache_mu);
	return true;
}

static int
instances_gen_cb(void *ctx, const struct store_row *r)
{
	struct version_ctx *v = ctx;

	v->rows++;
	if (col_int(r, 0, "gen", 0, INT64_MAX, &v->version) < 0)
		return corrupt(r, "instances_version", 0);
	return 0;
}

/* The generation of the instances table (store/driver.h, instances_gen). */
static int
instances_gen(struct store *s, int64_t *out)
{
	struct version_ctx v = {0, 0};

	if (q(s, "SELECT gen FROM instances_version WHERE singleton = 1", NULL,
	      0, instances_gen_cb, &v) < 0)
		return -1;
	if (v.rows != 1) {
		err_set("state store: table instances_version has %zu rows, "
			"not 1", v.rows);
		return -1;
	}
	*out = v.version;
	return 0;
}

int
store_instance_generation(struct store *s, int64_t *gen)
{
	struct store *l;
	int rc = STORE_OK;

	*gen = 0;
	if (!s->drv->instances_gen)
		return STORE_OK;
	l = lock(s);
	if (instances_gen(l, gen) < 0) {
		*gen = 0;
		rc = STORE_E_ERROR;
	}
	unlock(l);
	return rc;
}

static bool
instance_matches(const struct store_instance *in,
		 const struct store_instance_filter *f)
{
	return (!f->group || strcmp(in->group, f->group) == 0) &&
	       (!f->host || (in->host && strcmp(in->host, f->host) == 0)) &&
	       (f->state_mask & STORE_STATE_BIT(in->state));
}

/* Fill out from the cache (cache_mu held): the instances f matches, in
 * the cache's order (the listing's), their strings the cache's (shared,
 * counted in the arena: no copy). */
static void
cache_copy(struct store *s, const struct store_instance_filter *f,
	   struct store_instance_list *out)
{
	size_t n = 0;

	for (size_t i = 0; i < s->cache.n; i++)
		n += instance_matches(&s->cache.v[i], f);
	/* not zeroed: every row is a copy (a 120-byte memset per row
	 * showed in the loop's profile at 5,000), the spare one is */
	out->v = xreallocarray(NULL, n + 1, sizeof(*out->v));
	memset(&out->v[n], 0, sizeof(out->v[n]));
	out->alloc = n + 1;
	for (size_t i = 0; i < s->cache.n; i++) {
		const struct store_instance *c = &s->cache.v[i];
		struct store_instance *o = &out->v[out->n];

		if (!instance_matches(c, f))
			continue;
		*o = *c;
		out->n++;
	}
	if (s->cache.arena) {
		__atomic_add_fetch(&s->cache.arena->refs, 1, __ATOMIC_RELAXED);
		out->arena = s->cache.arena;
	}
	out->gen = s->cache_gen > 0 ? s->cache_gen : 0;
}

#define INST_NOT_GONE_SQL                                                  \
	"SELECT " INST_COLS " FROM instances WHERE state <> 'gone' "        \
	"ORDER BY created_ms, id"

/*
 * store_instance_list() from the cache: the table's generation first; when
 * it is the cache's and the cache is young enough, the cache answers, else
 * the generation and every instance but the gone ones are read again in
 * one read transaction (so the cache is exactly the table at that
 * generation). Returns 1 when the cache cannot serve f (gone instances),
 * else STORE_OK or STORE_E_ERROR.
 */
static int
cached_list(struct store *s, const struct store_instance_filter *f,
	    struct store_instance_list *out)
{
	struct store_instance_list fresh = {0};
	int64_t gen, now = util_now_ms();
	struct store *l;
	int rc = STORE_OK;

	if (!f->state_mask ||
	    (f->state_mask & STORE_STATE_BIT(STORE_INSTANCE_GONE)) ||
	    (f->state_mask & ~(unsigned)((1u << STORE_INSTANCE_LAST) - 1)))
		return 1;
	pthread_mutex_lock(&s->cache_mu);
	if (s->cache_max_age_ms <= 0) {
		pthread_mutex_unlock(&s->cache_mu);
		return 1;
	}
	l = lock(s);
	if (instances_gen(l, &gen) < 0) {
		rc = STORE_E_ERROR;
		goto done;
	}
	if (s->cache_valid && gen == s->cache_gen &&
	    now - s->cache_ms < s->cache_max_age_ms)
		goto copy;
	if (s->drv->begin(l->conn, false) < 0) {
		rc = STORE_E_ERROR;
		goto done;
	}
	if (instances_gen(l, &gen) < 0 ||
	    q(l, INST_NOT_GONE_SQL, NULL, 0, instance_list_cb, &fresh) < 0) {
		s->drv->rollback(l->conn);
		store_instance_list_release(&fresh);
		rc = STORE_E_ERROR;
		goto done;
	}
	if (s->drv->commit(l->conn) < 0) {
		store_instance_list_release(&fresh);
		rc = STORE_E_ERROR;
		goto done;
	}
	store_instance_list_release(&s->cache);
	free(s->cache_by_id);
	s->cache_by_id = NULL;
	s->cache = fresh;
	s->cache_gen = gen;
	s->cache_ms = now;
	s->cache_valid = true;
copy:
	cache_copy(s, f, out);
done:
	unlock(l);
	if (rc != STORE_OK)
		s->cache_valid = false;
	pthread_mutex_unlock(&s->cache_mu);
	return rc;
}

int
store_instance_list(struct store *s, const struct store_instance_filter *f,
		    struct store_instance_list *out)
{
	static const struct store_instance_filter all = {NULL, NULL, 0};
	struct strbuf sql = STRBUF_INIT;
	struct store_val p[2 + STORE_INSTANCE_LAST];
	size_t n = 0;
	int rc = STORE_OK;

	memset(out, 0, sizeof(*out));
	if (!f)
		f = &all;
	if ((f->group && check_name(f->group, "group name") < 0) ||
	    (f->host && check_name(f->host, "host name") < 0))
		return STORE_E_ERROR;
	if (s->drv->instances_gen && s->pool == s) {
		rc = cached_list(s, f, out);
		if (rc <= 0)
			return rc;
		rc = STORE_OK;
	}
	strbuf_adds(&sql, "SELECT " INST_COLS " FROM instances WHERE 1 = 1");
	if (f->group) {
		strbuf_adds(&sql, " AND group_name = ?");
		p[n++] = SV_TEXT(f->group);
	}
	if (f->host) {
		strbuf_adds(&sql, " AND host = ?");
		p[n++] = SV_TEXT(f->host);
	}
	if (f->state_mask) {
		const char *sep = " AND state IN (";

		for (int st = 0; st < STORE_INSTANCE_LAST; st++) {
			if (!(f->state_mask & STORE_STATE_BIT(st)))
				continue;
			strbuf_adds(&sql, sep);
			strbuf_adds(&sql, "?");
			sep = ", ";
			p[n++] = SV_TEXT(state_names[st]);
		}
		if (n == (size_t)(f->group != NULL) + (f->host != NULL)) {
			err_set("instance filter: state mask 0x%x has no known "
				"state", f->state_mask);
			strbuf_release(&sql);
			return STORE_E_ERROR;
		}
		strbuf_adds(&sql, ")");
	}
	strbuf_adds(&sql, " ORDER BY created_ms, id");
	s = lock(s);
	if (q(s, strbuf_str(&sql), p, n, instance_list_cb, out) < 0)
		rc = STORE_E_ERROR;
	unlock(s);
	strbuf_release(&sql);
	if (rc < 0)
		store_instance_list_release(out);
	return rc;
}

/* After a conditional UPDATE matched nothing: why? */
static int
instance_why_not(struct store *s, const char *id, struct state_ctx *cur)
{
	if (q(s, "SELECT state, group_name, host FROM instances WHERE id = ?",
	      (struct store_val[]){SV_TEXT(id)}, 1, state_cb, cur) < 0)
		return STORE_E_ERROR;
	if (!cur->found) {
		err_set("no instance %s in the state store", id);
		return STORE_E_NOTFOUND;
	}
	return STORE_OK;
}

int
store_instance_set_state(struct store *s, const char *id,
			 enum store_instance_state from,
			 enum store_instance_state to)
{
	struct state_ctx cur = {false, 0, NULL, false};
	int64_t now = util_wall_ms(), changes = 0;
	int rc;

	if (check_id(id) < 0)
		return STORE_E_ERROR;
	if (!store_instance_transition_ok(from, to)) {
		err_set("instance %s: %s -> %s is not a legal transition", id,
			state_or_q(from), state_or_q(to));
		return STORE_E_ILLEGAL;
	}
	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	if (x(s, "UPDATE instances SET state = ?, updated_ms = ?, "
		 "ready_ms = CASE WHEN ? = 1 AND ready_ms = 0 THEN ? "
		 "ELSE ready_ms END "
		 "WHERE id = ? AND state = ? AND (host IS NOT NULL OR ? = 0)",
	      (struct store_val[]){SV_TEXT(state_names[to]), SV_INT(now),
				   SV_INT(to == STORE_INSTANCE_READY),
				   SV_INT(now), SV_TEXT(id),
				   SV_TEXT(state_names[from]),
				   SV_INT(state_needs_host(to))},
	      7, &changes, NULL) < 0) {
		rc = STORE_E_ERROR;
		goto end;
	}
	if (changes == 1)
		goto end;
	rc = instance_why_not(s, id, &cur);
	if (rc < 0)
		goto end;
	if (cur.state != from) {
		err_set("instance %s is %s, not %s", id, state_names[cur.state],
			state_names[from]);
		rc = STORE_E_CONFLICT;
	} else if (!cur.has_host) {
		err_set("instance %s has no host; put one before it becomes %s",
			id, state_names[to]);
		rc = STORE_E_ILLEGAL;
	} else {
		err_set("instance %s: update matched %" PRId64 " rows", id,
			changes);
		rc = STORE_E_ERROR;
	}
end:
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	free(cur.group);
	return rc;
}

/*
 * One heartbeat inside the current transaction: the item's result, with
 * *fatal set for a database error (which aborts the transaction) as
 * opposed to a bad item.
 */
static int
heartbeat_one(struct store *s, const struct store_heartbeat *h,
	      int64_t now_wall, bool *fatal)
{
	struct state_ctx cur = {false, 0, NULL, false};
	int64_t changes = 0;
	int rc;

	if (check_id(h->id) < 0)
		return STORE_E_ERROR;
	if (h->time_ms <= 0) {
		err_set("heartbeat time %" PRId64 " is not a timestamp",
			h->time_ms);
		return STORE_E_ERROR;
	}
	/* busy_since_ms is assigned before busy: MariaDB evaluates SET
	 * left to right with new values, SQLite with old ones. */
	if (x(s, "UPDATE instances SET "
		 "busy_since_ms = CASE WHEN ? = 0 THEN 0 "
		 "WHEN busy = 1 THEN busy_since_ms ELSE ? END, "
		 "busy = ?, "
		 "heartbeat_ms = CASE WHEN heartbeat_ms > ? THEN heartbeat_ms "
		 "ELSE ? END, "
		 "updated_ms = ? "
		 "WHERE id = ? AND state NOT IN ('deleting', 'gone')",
	      (struct store_val[]){SV_INT(h->busy), SV_INT(h->time_ms),
				   SV_INT(h->busy), SV_INT(h->time_ms),
				   SV_INT(h->time_ms), SV_INT(now_wall),
				   SV_TEXT(h->id)},
	      7, &changes, NULL) < 0) {
		*fatal = true;
		return STORE_E_ERROR;
	}
	if (changes == 1)
		return STORE_OK;
	rc = instance_why_not(s, h->id, &cur);
	if (rc == STORE_OK) {
		err_set("instance %s is %s: heartbeat refused", h->id,
			state_names[cur.state]);
		rc = STORE_E_CONFLICT;
	} else if (rc == STORE_E_ERROR) {
		*fatal = true;
	}
	free(cur.group);
	return rc;
}

static int
by_id_cmp(const void *a, const void *b)
{
	return strcmp((*(struct store_instance *const *)a)->id,
		      (*(struct store_instance *const *)b)->id);
}

static int
id_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, (*(struct store_instance *const *)elem)->id);
}

/* The cache's row of id, or NULL (cache_mu held). */
static struct store_instance *
cache_row(struct store *s, const char *id)
{
	struct store_instance **found;

	if (!s->cache_by_id) {
		s->cache_by_id = xreallocarray(NULL, s->cache.n + 1,
					       sizeof(*s->cache_by_id));
		for (size_t i = 0; i < s->cache.n; i++)
			s->cache_by_id[i] = &s->cache.v[i];
		qsort(s->cache_by_id, s->cache.n, sizeof(*s->cache_by_id),
		      by_id_cmp);
	}
	found = s->cache.n == 0 ? NULL
		: bsearch(id, s->cache_by_id, s->cache.n,
			  sizeof(*s->cache_by_id), id_key_cmp);
	return found ? *found : NULL;
}

/*
 * The cache follows a heartbeat batch of its own handle: when it was the
 * table as of gen0, the generation the batch's transaction started from,
 * and the batch changed exactly one row per accepted heartbeat (gen1 =
 * gen0 + that many), it becomes the table as of gen1 by applying the same
 * changes as heartbeat_one()'s UPDATE. Otherwise nothing: the next
 * listing compares generations and reads the table again, as before.
 *
 * Why: heartbeats change instance rows every turn, so without this every
 * listing of a daemon whose guests send heartbeats read the whole table
 * again (bench/README.md, "Memory, fourth pass, and what the loop does
 * each turn").
 * Rows a listing already copied are its own (cache_copy()); the strings,
 * shared, do not change.
 */
static void
cache_follow(struct store *s, const struct store_heartbeat *v, size_t n,
	     int64_t now_wall, int64_t gen0, int64_t gen1)
{
	size_t ok = 0;

	for (size_t i = 0; i < n; i++)
		ok += v[i].rc == STORE_OK;
	pthread_mutex_lock(&s->cache_mu);
	if (!s->cache_valid || s->cache_gen != gen0)
		goto out;
	if (gen1 != gen0 + (int64_t)ok) {
		s->cache_valid = false;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct store_heartbeat *h = &v[i];
		struct store_instance *in;

		if (h->rc != STORE_OK)
			continue;
		in = cache_row(s, h->id);
		if (!in) {
			s->cache_valid = false; /* cannot be: read it again */
			goto out;
		}
		/* heartbeat_one()'s SET, from the old values */
		in->busy_since_ms = !h->busy ? 0
				    : in->busy ? in->busy_since_ms : h->time_ms;
		in->busy = h->busy;
		if (in->heartbeat_ms <= h->time_ms)
			in->heartbeat_ms = h->time_ms;
		in->updated_ms = now_wall;
	}
	s->cache_gen = gen1;
out:
	pthread_mutex_unlock(&s->cache_mu);
}

/* Whether s keeps a copy to follow (taken and dropped before the lane:
 * cached_list() takes cache_mu first). A hint; cache_follow() decides. */
static bool
cache_kept(struct store *s)
{
	bool kept;

	if (!s->drv->instances_gen || s->pool != s)
		return false;
	pthread_mutex_lock(&s->cache_mu);
	kept = s->cache_max_age_ms > 0 && s->cache_valid;
	pthread_mutex_unlock(&s->cache_mu);
	return kept;
}

int
store_instance_heartbeat_batch(struct store *s, struct store_heartbeat *v,
			       size_t n)
{
	struct store *l;
	int64_t now_wall = util_wall_ms(), gen0 = -1, gen1 = -1;
	bool follow = cache_kept(s);
	int rc;

	l = lock(s);
	rc = tx_begin(l);
	if (rc < 0)
		goto cleanup;
	/* the generations around the batch, for cache_follow(): a failed
	 * read only means the cache does not follow */
	if (follow && instances_gen(l, &gen0) < 0)
		follow = false;
	for (size_t i = 0; i < n; i++) {
		bool fatal = false;

		v[i].rc = heartbeat_one(l, &v[i], now_wall, &fatal);
		if (fatal) {
			rc = STORE_E_ERROR;
			break;
		}
	}
	if (rc == STORE_OK && follow && instances_gen(l, &gen1) < 0)
		follow = false;
	rc = tx_end(l, rc);
cleanup:
	unlock(l);
	/* after unlock(): cached_list() takes cache_mu before the lane */
	if (rc == STORE_OK && follow)
		cache_follow(s, v, n, now_wall, gen0, gen1);
	return rc;
}

int
store_instance_heartbeat(struct store *s, const char *id, int64_t time_ms,
			 bool busy)
{
	struct store_heartbeat h = {id, time_ms, busy, STORE_OK};
	int rc;

	rc = store_instance_heartbeat_batch(s, &h, 1);
	return rc == STORE_OK ? h.rc : rc;
}

/* ---- events ------------------------------------------------------------ */

#define LIST_LIMIT_MAX 100000

void
store_event_release(struct store_event *e)
{
	if (!e)
		return;
	free(e->group);
	free(e->instance);
	free(e->kind);
	free(e->message);
	free(e->details);
	memset(e, 0, sizeof(*e));
}

void
store_event_list_release(struct store_event_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		store_event_release(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

#define EVENT_COLS "id, time_ms, group_name, instance_id, kind, message, details"

static int
event_list_cb(void *ctx, const struct store_row *r)
{
	struct store_event_list *l = ctx;
	struct store_event e;

	memset(&e, 0, sizeof(e));
	if (col_int(r, 0, "id", 1, INT64_MAX, &e.id) < 0 ||
	    col_int(r, 1, "time_ms", 0, INT64_MAX, &e.time_ms) < 0 ||
	    col_str(r, 2, "group_name", COL_NAME, 0, true, &e.group) < 0 ||
	    col_str(r, 3, "instance_id", COL_ID, 0, true, &e.instance) < 0 ||
	    col_str(r, 4, "kind", COL_KIND, 0, false, &e.kind) < 0 ||
	    col_str(r, 5, "message", COL_TEXT, STORE_TEXT_MAX, false,
		    &e.message) < 0 ||
	    col_str(r, 6, "details", COL_TEXT, STORE_JSON_MAX, true,
		    &e.details) < 0) {
		store_event_release(&e);
		return corrupt(r, "events", 0);
	}
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = e;
	return 0;
}

int
store_event_append(struct store *s, const struct store_event *e,
		   int64_t *id_out)
{
	char *msg = NULL;
	int64_t id = 0;
	int rc;

	if ((e->group && check_name(e->group, "group name") < 0) ||
	    (e->instance && check_id(e->instance) < 0) ||
	    (!e->kind && (err_set("event kind is missing"), 1)) ||
	    (e->kind && check_name_len(e->kind, strlen(e->kind), "event kind",
				       true) < 0) ||
	    (!e->message && (err_set("event message is missing"), 1)) ||
	    check_text(e->details, STORE_JSON_MAX, "event details", true,
		       true) < 0 ||
	    (e->time_ms < 0 && (err_set("negative event time"), 1))) {
		err_prefix("event");
		return STORE_E_ERROR;
	}
	msg = text_sanitize(e->message, STORE_TEXT_MAX);
	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	if (x(s, "INSERT INTO events (time_ms, group_name, instance_id, kind, "
		 "message, details) VALUES (?, ?, ?, ?, ?, ?)",
	      (struct store_val[]){SV_INT(e->time_ms ? e->time_ms
						      : util_wall_ms()),
				   SV_OPT(e->group), SV_OPT(e->instance),
				   SV_TEXT(e->kind), SV_TEXT(msg),
				   SV_OPT(e->details)},
	      6, NULL, &id) < 0)
		rc = STORE_E_ERROR;
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	free(msg);
	if (rc == STORE_OK && id_out)
		*id_out = id;
	return rc;
}

static int
check_limit(size_t limit)
{
	if (limit == 0 || limit > LIST_LIMIT_MAX) {
		err_set("list limit %zu is outside 1..%d", limit,
			LIST_LIMIT_MAX);
		return -1;
	}
	return 0;
}

int
store_event_list_recent(struct store *s, const char *group, size_t limit,
			struct store_event_list *out)
{
	int rc = STORE_OK;

	out->v = NULL;
	out->n = 0;
	if ((group && check_name(group, "group name") < 0) ||
	    check_limit(limit) < 0)
		return STORE_E_ERROR;
	s = lock(s);
	if (group)
		rc = q(s, "SELECT " EVENT_COLS " FROM events WHERE "
			  "group_name = ? ORDER BY id DESC LIMIT ?",
		       (struct store_val[]){SV_TEXT(group),
					    SV_INT((int64_t)limit)},
		       2, event_list_cb, out);
	else
		rc = q(s, "SELECT " EVENT_COLS " FROM events "
			  "ORDER BY id DESC LIMIT ?",
		       (struct store_val[]){SV_INT((int64_t)limit)}, 1,
		       event_list_cb, out);
	unlock(s);
	if (rc < 0) {
		store_event_list_release(out);
		return STORE_E_ERROR;
	}
	return STORE_OK;
}

int
store_event_list_since(struct store *s, int64_t after_id, size_t limit,
		       struct store_event_list *out)
{
	int rc;

	out->v = NULL;
	out->n = 0;
	if (check_limit(limit) < 0)
		return STORE_E_ERROR;
	s = lock(s);
	rc = q(s, "SELECT " EVENT_COLS " FROM events WHERE id > ? "
		  "ORDER BY id LIMIT ?",
	       (struct store_val[]){SV_INT(after_id), SV_INT((int64_t)limit)},
	       2, event_list_cb, out);
	unlock(s);
	if (rc < 0) {
		store_event_list_release(out);
		return STORE_E_ERROR;
	}
	return STORE_OK;
}

/* ---- journal ----------------------------------------------------------- */

void
store_journal_entry_release(struct store_journal_entry *e)
{
	if (!e)
		return;
	free(e->instance);
	free(e->payload);
	free(e->error);
	memset(e, 0, sizeof(*e));
}

void
store_journal_list_release(struct store_journal_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		store_journal_entry_release(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

#define JOURNAL_COLS                                                       \
	"id, instance_id, action, step, status, payload, error, created_ms, " \
	"updated_ms"

static int
journal_list_cb(void *ctx, const struct store_row *r)
{
	struct store_journal_list *l = ctx;
	struct store_journal_entry e;

	memset(&e, 0, sizeof(e));
	if (col_int(r, 0, "id", 1, INT64_MAX, &e.id) < 0 ||
	    col_str(r, 1, "instance_id", COL_ID, 0, false, &e.instance) < 0 ||
	    col_enum(r, 2, "action", parse_action_cb, &e.action) < 0 ||
	    col_enum(r, 3, "step", parse_step_cb, &e.step) < 0 ||
	    col_enum(r, 4, "status", parse_status_cb, &e.status) < 0 ||
	    col_str(r, 5, "payload", COL_TEXT, STORE_JSON_MAX, true,
		    &e.payload) < 0 ||
	    col_str(r, 6, "error", COL_TEXT, STORE_TEXT_MAX, true, &e.error) < 0 ||
	    col_int(r, 7, "created_ms", 0, INT64_MAX, &e.created_ms) < 0 ||
	    col_int(r, 8, "updated_ms", 0, INT64_MAX, &e.updated_ms) < 0)
		goto bad;
	if (!store_journal_step_valid(e.action, e.step)) {
		err_set("step %s does not belong to action %s",
			step_names[e.step], action_names[e.action]);
		goto bad;
	}
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = e;
	return 0;
bad:
	store_journal_entry_release(&e);
	return corrupt(r, "journal", 0);
}

int
store_journal_begin(struct store *s, const char *instance,
		    enum store_journal_action action, const char *payload,
		    int64_t *id_out)
{
	struct count_ctx found = {0};
	int64_t now = util_wall_ms(), id = 0;
	int rc;

	if (check_id(instance) < 0 ||
	    check_text(payload, STORE_JSON_MAX, "journal payload", true,
		       true) < 0)
		return STORE_E_ERROR;
	if (!store_journal_action_name(action)) {
		err_set("journal action %d is out of range", (int)action);
		return STORE_E_ERROR;
	}
	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	if (q(s, "SELECT id FROM instances WHERE id = ?",
	      (struct store_val[]){SV_TEXT(instance)}, 1, count_cb,
	      &found) < 0) {
		rc = STORE_E_ERROR;
	} else if (found.n == 0) {
		err_set("no instance %s in the state store", instance);
		rc = STORE_E_NOTFOUND;
	} else {
		rc = x(s, "INSERT INTO journal (instance_id, action, step, "
			  "status, payload, error, created_ms, updated_ms, "
			  "pending_instance) "
			  "VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?)",
		       (struct store_val[]){
			       SV_TEXT(instance), SV_TEXT(action_names[action]),
			       SV_TEXT(step_names[STORE_STEP_NONE]),
			       SV_TEXT(status_names[STORE_JOURNAL_PENDING]),
			       SV_OPT(payload), SV_INT(now), SV_INT(now),
			       SV_TEXT(instance)},
		       8, NULL, &id);
		if (rc == STORE_E_EXISTS) {
			struct store_journal_list l = {NULL, 0};

			if (q(s, "SELECT " JOURNAL_COLS " FROM journal WHERE "
				 "pending_instance = ?",
			      (struct store_val[]){SV_TEXT(instance)}, 1,
			      journal_list_cb, &l) == 0 && l.n == 1)
				err_set("instance %s already has pending journal "
					"entry %" PRId64 " (%s, at step %s): "
					"resume it (store_journal_find_pending) "
					"or settle it (done/fail) first",
					instance, l.v[0].id,
					action_names[l.v[0].action],
					step_names[l.v[0].step]);
			else
				err_set("instance %s already has a pending "
					"journal entry", instance);
			store_journal_list_release(&l);
			rc = STORE_E_CONFLICT;
		}
	}
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	if (rc == STORE_OK && id_out)
		*id_out = id;
	if (rc < 0)
		err_prefix("journal %s for %s", action_names[action], instance);
	return rc;
}

/* Read one entry inside the current transaction. */
static int
journal_read(struct store *s, int64_t id, struct store_journal_entry *out)
{
	struct store_journal_list l = {NULL, 0};
	int rc = STORE_OK;

	memset(out, 0, sizeof(*out));
	if (q(s, "SELECT " JOURNAL_COLS " FROM journal WHERE id = ?",
	      (struct store_val[]){SV_INT(id)}, 1, journal_list_cb, &l) < 0) {
		rc = STORE_E_ERROR;
	} else if (l.n == 0) {
		err_set("no journal entry %" PRId64, id);
		rc = STORE_E_NOTFOUND;
	} else {
		*out = l.v[0];
		l.n = 0;
	}
	store_journal_list_release(&l);
	return rc;
}

int
store_journal_step(struct store *s, int64_t id, enum store_journal_step step,
		   const char *payload)
{
	struct store_journal_entry e;
	int64_t changes = 0;
	int rc;

	memset(&e, 0, sizeof(e));
	if (check_text(payload, STORE_JSON_MAX, "journal payload", true,
		       true) < 0)
		return STORE_E_ERROR;
	if (!store_journal_step_name(step)) {
		err_set("journal step %d is out of range", (int)step);
		return STORE_E_ERROR;
	}
	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	rc = journal_read(s, id, &e);
	if (rc < 0)
		goto end;
	if (e.status != STORE_JOURNAL_PENDING) {
		err_set("journal entry %" PRId64 " is already %s", id,
			status_names[e.status]);
		rc = STORE_E_CONFLICT;
	} else if (!store_journal_step_valid(e.action, step) ||
		   step <= e.step) {
		err_set("journal entry %" PRId64 " (%s, at %s): step %s is "
			"not a step forward",
			id, action_names[e.action], step_names[e.step],
			step_names[step]);
		rc = STORE_E_ILLEGAL;
	} else if (x(s, "UPDATE journal SET step = ?, "
			"payload = COALESCE(?, payload), updated_ms = ? "
			"WHERE id = ? AND step = ? AND status = 'pending'",
		     (struct store_val[]){SV_TEXT(step_names[step]),
					  SV_OPT(payload),
					  SV_INT(util_wall_ms()), SV_INT(id),
					  SV_TEXT(step_names[e.step])},
		     5, &changes, NULL) < 0) {
		rc = STORE_E_ERROR;
	} else if (changes != 1) {
		err_set("journal entry %" PRId64 " changed concurrently", id);
		rc = STORE_E_CONFLICT;
	}
end:
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	store_journal_entry_release(&e);
	return rc;
}

static int
journal_close(struct store *s, int64_t id, enum store_journal_status status,
	      const char *reason)
{
	struct store_journal_entry e;
	char *why = NULL;
	int64_t changes = 0;
	int rc;

	memset(&e, 0, sizeof(e));
	if (status == STORE_JOURNAL_FAILED) {
		if (!reason) {
			err_set("journal failure reason is missing");
			return STORE_E_ERROR;
		}
		why = text_sanitize(reason, STORE_TEXT_MAX);
	}
	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	if (x(s, "UPDATE journal SET status = ?, error = ?, updated_ms = ?, "
		 "pending_instance = NULL WHERE id = ? AND status = 'pending'",
	      (struct store_val[]){SV_TEXT(status_names[status]), SV_OPT(why),
				   SV_INT(util_wall_ms()), SV_INT(id)},
	      4, &changes, NULL) < 0) {
		rc = STORE_E_ERROR;
	} else if (changes != 1) {
		rc = journal_read(s, id, &e);
		if (rc == STORE_OK) {
			err_set("journal entry %" PRId64 " is already %s", id,
				status_names[e.status]);
			rc = STORE_E_CONFLICT;
		}
	}
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	store_journal_entry_release(&e);
	free(why);
	return rc;
}

int
store_journal_done(struct store *s, int64_t id)
{
	return journal_close(s, id, STORE_JOURNAL_DONE, NULL);
}

int
store_journal_fail(struct store *s, int64_t id, const char *why)
{
	return journal_close(s, id, STORE_JOURNAL_FAILED, why);
}

int
store_journal_get(struct store *s, int64_t id, struct store_journal_entry *out)
{
	int rc;

	s = lock(s);
	rc = journal_read(s, id, out);
	unlock(s);
	return rc;
}

int
store_journal_find_pending(struct store *s, const char *instance,
			   struct store_journal_entry *out)
{
	struct store_journal_list l = {NULL, 0};
	int rc = STORE_OK;

	memset(out, 0, sizeof(*out));
	if (check_id(instance) < 0)
		return STORE_E_ERROR;
	s = lock(s);
	if (q(s, "SELECT " JOURNAL_COLS " FROM journal WHERE instance_id = ? "
		 "AND status = 'pending' ORDER BY id",
	      (struct store_val[]){SV_TEXT(instance)}, 1, journal_list_cb,
	      &l) < 0)
		rc = STORE_E_ERROR;
	unlock(s);
	if (rc == STORE_OK && l.n == 0) {
		err_set("instance %s has no pending journal entry", instance);
		rc = STORE_E_NOTFOUND;
	}
	if (rc == STORE_OK) {
		*out = l.v[0];
		l.v[0] = (struct store_journal_entry){0};
	}
	store_journal_list_release(&l);
	return rc;
}

int
store_journal_pending(struct store *s, struct store_journal_list *out)
{
	int rc;

	out->v = NULL;
	out->n = 0;
	s = lock(s);
	rc = q(s, "SELECT " JOURNAL_COLS " FROM journal WHERE status = "
		  "'pending' ORDER BY id",
	       NULL, 0, journal_list_cb, out);
	unlock(s);
	if (rc < 0) {
		store_journal_list_release(out);
		return STORE_E_ERROR;
	}
	return STORE_OK;
}

/* ---- lease ------------------------------------------------------------- */

#define LEASE_TTL_MAX (24LL * 3600 * 1000)

void
store_lease_release_info(struct store_lease *l)
{
	if (!l)
		return;
	free(l->name);
	free(l->holder);
	memset(l, 0, sizeof(*l));
}

struct lease_ctx {
	bool found;
	struct store_lease l;
};

static int
lease_cb(void *ctx, const struct store_row *r)
{
	struct lease_ctx *c = ctx;

	if (col_str(r, 0, "name", COL_NAME, 0, false, &c->l.name) < 0 ||
	    col_str(r, 1, "holder", COL_LINE, STORE_HOLDER_MAX, false,
		    &c->l.holder) < 0 ||
	    col_int(r, 2, "epoch", 0, INT64_MAX, &c->l.epoch) < 0 ||
	    col_int(r, 3, "expires_ms", 0, INT64_MAX, &c->l.expires_ms) < 0) {
		store_lease_release_info(&c->l);
		return corrupt(r, "leases", 0);
	}
	c->found = true;
	return 0;
}

static int
check_lease_args(const char *name, const char *holder, int64_t ttl_ms)
{
	if (check_name(name, "lease name") < 0 ||
	    check_text(holder, STORE_HOLDER_MAX, "lease holder", false,
		       false) < 0)
		return -1;
	if (!*holder) {
		err_set("lease holder is empty");
		return -1;
	}
	if (ttl_ms < 1 || ttl_ms > LEASE_TTL_MAX) {
		err_set("lease ttl %" PRId64 " ms is outside 1 ms..24 h", ttl_ms);
		return -1;
	}
	return 0;
}

static int
lease_read(struct store *s, const char *name, struct lease_ctx *c)
{
	memset(c, 0, sizeof(*c));
	return q(s, "SELECT name, holder, epoch, expires_ms FROM leases "
		    "WHERE name = ?",
		 (struct store_val[]){SV_TEXT(name)}, 1, lease_cb, c);
}

/* One attempt; STORE_E_CONFLICT means we raced another acquirer: retry.
 * prev (may be NULL): a holder whose live lease we may take. */
static int
lease_try(struct store *s, const char *name, const char *holder,
	  const char *prev, int64_t ttl_ms, int64_t *epoch_out)
{
	struct lease_ctx c;
	int64_t now, changes = 0, epoch = 0;
	int rc;

	memset(&c, 0, sizeof(c));
	if (s->drv->now_ms(s->conn, &now) < 0)
		return STORE_E_ERROR;
	if (s->drv->begin(s->conn, true) < 0)
		return STORE_E_ERROR;
	if (lease_read(s, name, &c) < 0) {
		rc = STORE_E_ERROR;
		goto end;
	}
	if (!c.found) {
		rc = x(s, "INSERT INTO leases (name, holder, epoch, expires_ms, "
			  "acquired_ms) VALUES (?, ?, 1, ?, ?)",
		       (struct store_val[]){SV_TEXT(name), SV_TEXT(holder),
					    SV_INT(now + ttl_ms), SV_INT(now)},
		       4, NULL, NULL);
		if (rc == STORE_E_EXISTS)
			rc = STORE_E_CONFLICT;
		epoch = 1;
		goto end;
	}
	if (*c.l.holder && strcmp(c.l.holder, holder) != 0 &&
	    !(prev && strcmp(c.l.holder, prev) == 0) && c.l.expires_ms > now) {
		err_set("lease '%s' is held by '%s' for another %" PRId64
			" ms (epoch %" PRId64 ")",
			name, c.l.holder, c.l.expires_ms - now, c.l.epoch);
		rc = STORE_E_HELD;
		goto end;
	}
	if (c.l.epoch == INT64_MAX) {
		err_set("lease '%s': epoch overflow", name);
		rc = STORE_E_ERROR;
		goto end;
	}
	epoch = c.l.epoch + 1;
	/* The compare-and-set: only if nobody bumped the epoch since we read it. */
	if (x(s, "UPDATE leases SET holder = ?, epoch = ?, expires_ms = ?, "
		 "acquired_ms = ? WHERE name = ? AND epoch = ?",
	      (struct store_val[]){SV_TEXT(holder), SV_INT(epoch),
				   SV_INT(now + ttl_ms), SV_INT(now),
				   SV_TEXT(name), SV_INT(c.l.epoch)},
	      6, &changes, NULL) < 0)
		rc = STORE_E_ERROR;
	else
		rc = changes == 1 ? STORE_OK : STORE_E_CONFLICT;
end:
	rc = tx_end(s, rc);
	store_lease_release_info(&c.l);
	if (rc == STORE_OK)
		*epoch_out = epoch;
	return rc;
}

int
store_lease_acquire(struct store *s, const char *name, const char *holder,
		    int64_t ttl_ms, int64_t *epoch_out)
{
	return store_lease_take_over(s, name, holder, NULL, ttl_ms, epoch_out);
}

int
store_lease_take_over(struct store *s, const char *name, const char *holder,
		      const char *prev_holder, int64_t ttl_ms,
		      int64_t *epoch_out)
{
	int64_t epoch = 0;
	int rc = STORE_E_CONFLICT;

	if (check_lease_args(name, holder, ttl_ms) < 0 ||
	    (prev_holder && check_text(prev_holder, STORE_HOLDER_MAX,
				       "previous lease holder", false,
				       false) < 0))
		return STORE_E_ERROR;
	s = lock_excl(s); /* it arms the fence */
	for (int i = 0; i < 5 && rc == STORE_E_CONFLICT; i++)
		rc = lease_try(s, name, holder, prev_holder, ttl_ms, &epoch);
	if (rc == STORE_E_CONFLICT) {
		err_set("lease '%s': lost the race to acquire it 5 times", name);
		rc = STORE_E_HELD;
	}
	if (rc == STORE_OK) {
		free(s->pool->fence_name);
		s->pool->fence_name = xstrdup(name);
		s->pool->fence_epoch = epoch;
		*epoch_out = epoch;
		log_info("acquired lease '%s' as '%s', epoch %" PRId64, name,
			 holder, epoch);
	}
	unlock(s);
	return rc;
}

/* UPDATE the lease row if (name, holder, epoch) still match. */
static int
lease_update(struct store *s, const char *sql, const char *name,
	     const char *holder, int64_t epoch, int64_t expires)
{
	int64_t changes = 0;
	int rc = STORE_OK;

	if (s->drv->begin(s->conn, true) < 0)
		return STORE_E_ERROR;
	if (x(s, sql,
	      (struct store_val[]){SV_INT(expires), SV_TEXT(name),
				   SV_TEXT(holder), SV_INT(epoch)},
	      4, &changes, NULL) < 0) {
		rc = STORE_E_ERROR;
	} else if (changes != 1) {
		err_set("lease '%s' is no longer held by '%s' at epoch %" PRId64
			" (another daemon took over)",
			name, holder, epoch);
		rc = STORE_E_FENCED;
	}
	return tx_end(s, rc);
}

int
store_lease_renew(struct store *s, const char *name, const char *holder,
		  int64_t epoch, int64_t ttl_ms)
{
	int64_t now;
	int rc;

	if (check_lease_args(name, holder, ttl_ms) < 0)
		return STORE_E_ERROR;
	s = lock(s);
	rc = s->drv->now_ms(s->conn, &now) < 0 ? STORE_E_ERROR : STORE_OK;
	if (rc == STORE_OK)
		rc = lease_update(s, "UPDATE leases SET expires_ms = ? WHERE "
				     "name = ? AND holder = ? AND epoch = ?",
				  name, holder, epoch, now + ttl_ms);
	unlock(s);
	return rc;
}

int
store_lease_release(struct store *s, const char *name, const char *holder,
		    int64_t epoch)
{
	int rc;

	if (check_lease_args(name, holder, 1) < 0)
		return STORE_E_ERROR;
	s = lock_excl(s); /* it disarms the fence */
	rc = lease_update(s, "UPDATE leases SET holder = '', expires_ms = ? "
			     "WHERE name = ? AND holder = ? AND epoch = ?",
			  name, holder, epoch, 0);
	if (s->pool->fence_name && strcmp(s->pool->fence_name, name) == 0) {
		free(s->pool->fence_name);
		s->pool->fence_name = NULL;
		s->pool->fence_epoch = 0;
	}
	unlock(s);
	return rc;
}

int
store_lease_get(struct store *s, const char *name, struct store_lease *out)
{
	struct lease_ctx c;
	int64_t now = 0;
	int rc = STORE_OK;

	memset(out, 0, sizeof(*out));
	if (check_name(name, "lease name") < 0)
		return STORE_E_ERROR;
	s = lock(s);
	if (s->drv->now_ms(s->conn, &now) < 0 || lease_read(s, name, &c) < 0)
		rc = STORE_E_ERROR;
	unlock(s);
	if (rc < 0)
		return rc;
	if (!c.found) {
		err_set("lease '%s' was never acquired", name);
		return STORE_E_NOTFOUND;
	}
	*out = c.l;
	out->now_ms = now;
	return STORE_OK;
}

int
store_lease_holder_default(char *buf, size_t size)
{
	char host[256];
	int n;

	if (gethostname(host, sizeof(host)) < 0) {
		err_set("gethostname: %s", strerror(errno));
		return -1;
	}
	host[sizeof(host) - 1] = '\0';
	n = snprintf(buf, size, "%s:%ld", host, (long)getpid());
	if (n < 0 || (size_t)n >= size) {
		err_set("lease holder id does not fit in %zu bytes", size);
		return -1;
	}
	return 0;
}

/* ---- load history ------------------------------------------------------ */

#define LOAD_MILLI_MAX ((int64_t)(STORE_LOAD_MAX * 1000))
/* Rows per statement of store_load_put(): 3 parameters a row, within the
 * drivers' 32 (MAX_COLS); a rest smaller than a chunk goes row by row, so
 * that the statements' cache holds two texts of each kind, not one per
 * size. */
#define LOAD_CHUNK 10
/* Minutes up to about the year 9800: a minute beyond is no clock's. */
#define LOAD_MINUTE_MAX 4102444800LL

void
store_load_list_release(struct store_load_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->alloc = 0;
}

static int
check_load(const struct store_load_minute *m)
{
	if (check_name(m->group, "group name") < 0)
		return -1;
	if (m->minute < 0 || m->minute > LOAD_MINUTE_MAX) {
		err_set("group %s: load history minute %" PRId64 " is out of "
			"range (0..%lld)", m->group, m->minute,
			(long long)LOAD_MINUTE_MAX);
		return -1;
	}
	if (!isfinite(m->load) || m->load < 0 || m->load > STORE_LOAD_MAX) {
		err_set("group %s: load %g at minute %" PRId64 " is not a "
			"number from 0 to %g", m->group, m->load, m->minute,
			STORE_LOAD_MAX);
		return -1;
	}
	return 0;
}

int
store_load_put(struct store *s, const struct store_load_minute *v, size_t n)
{
	int rc;

	for (size_t i = 0; i < n; i++)
		if (check_load(&v[i]) < 0)
			return STORE_E_ERROR;
	if (n == 0)
		return STORE_OK;
	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	/* LOAD_CHUNK rows per statement: two round trips per chunk on
	 * MariaDB instead of two per row (a minute of 100 groups: 20 ms
	 * row by row) */
	for (size_t i = 0, k; i < n && rc == STORE_OK; i += k) {
		k = n - i >= LOAD_CHUNK ? LOAD_CHUNK : 1;
		struct strbuf del = STRBUF_INIT, ins = STRBUF_INIT;
		struct store_val *p = xcalloc(3 * k, sizeof(*p));

		/* replace: a minute written again (a clock set back, a
		 * takeover within the minute) keeps the newest mean */
		strbuf_adds(&del, "DELETE FROM load_history WHERE ");
		strbuf_adds(&ins, "INSERT INTO load_history (group_name, "
				  "minute, load_milli) VALUES ");
		for (size_t j = 0; j < k; j++) {
			strbuf_adds(&del, j ? " OR (group_name = ? AND minute = ?)"
					    : "(group_name = ? AND minute = ?)");
			strbuf_adds(&ins, j ? ", (?, ?, ?)" : "(?, ?, ?)");
			p[2 * j] = SV_TEXT(v[i + j].group);
			p[2 * j + 1] = SV_INT(v[i + j].minute);
		}
		if (x(s, strbuf_str(&del), p, 2 * k, NULL, NULL) < 0)
			rc = STORE_E_ERROR;
		for (size_t j = 0; j < k; j++) {
			p[3 * j] = SV_TEXT(v[i + j].group);
			p[3 * j + 1] = SV_INT(v[i + j].minute);
			p[3 * j + 2] = SV_INT(llround(v[i + j].load * 1000));
		}
		if (rc == STORE_OK &&
		    x(s, strbuf_str(&ins), p, 3 * k, NULL, NULL) < 0)
			rc = STORE_E_ERROR;
		strbuf_release(&del);
		strbuf_release(&ins);
		free(p);
	}
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	return rc;
}

struct load_ctx {
	struct store_load_list *out;
	const char *group;
};

static int
load_list_cb(void *ctx, const struct store_row *r)
{
	struct load_ctx *c = ctx;
	struct store_load_list *l = c->out;
	int64_t minute, milli;

	if (col_int(r, 0, "minute", 0, LOAD_MINUTE_MAX, &minute) < 0 ||
	    col_int(r, 1, "load_milli", 0, LOAD_MILLI_MAX, &milli) < 0) {
		err_prefix("state store: table load_history, group %s",
			   c->group);
		return -1;
	}
	if (l->n == l->alloc) {
		l->alloc = l->alloc ? 2 * l->alloc : 1024;
		l->v = xreallocarray(l->v, l->alloc, sizeof(*l->v));
	}
	l->v[l->n++] = (struct store_load_minute){NULL, minute,
						  (double)milli / 1000};
	return 0;
}

int
store_load_get(struct store *s, const char *group, int64_t from_minute,
	       struct store_load_list *out)
{
	struct load_ctx c = {out, group};
	int rc;

	memset(out, 0, sizeof(*out));
	if (check_name(group, "group name") < 0)
		return STORE_E_ERROR;
	s = lock(s);
	rc = q(s, "SELECT minute, load_milli FROM load_history WHERE "
		  "group_name = ? AND minute >= ? ORDER BY minute",
	       (struct store_val[]){SV_TEXT(group), SV_INT(from_minute)}, 2,
	       load_list_cb, &c);
	unlock(s);
	if (rc < 0) {
		store_load_list_release(out);
		return STORE_E_ERROR;
	}
	return STORE_OK;
}

int
store_load_prune(struct store *s, int64_t before_minute, int64_t *count)
{
	int64_t n = 0;
	int rc;

	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	if (x(s, "DELETE FROM load_history WHERE minute < ?",
	      (struct store_val[]){SV_INT(before_minute)}, 1, &n, NULL) < 0)
		rc = STORE_E_ERROR;
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	if (rc == STORE_OK && count)
		*count = n;
	return rc;
}

/* ---- housekeeping ------------------------------------------------------ */

int
store_instance_purge(struct store *s, int64_t before_ms, int64_t *count)
{
	int64_t n = 0;
	int rc;

	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	/* closed journal entries of those instances first (foreign key) */
	if (x(s, "DELETE FROM journal WHERE status <> 'pending' AND "
		 "instance_id IN (SELECT id FROM instances WHERE state = 'gone' "
		 "AND updated_ms < ?)",
	      (struct store_val[]){SV_INT(before_ms)}, 1, NULL, NULL) < 0 ||
	    x(s, "DELETE FROM instances WHERE state = 'gone' AND updated_ms < ? "
		 "AND id NOT IN (SELECT instance_id FROM journal)",
	      (struct store_val[]){SV_INT(before_ms)}, 1, &n, NULL) < 0)
		rc = STORE_E_ERROR;
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	if (rc == STORE_OK && count)
		*count = n;
	return rc;
}

int
store_event_prune(struct store *s, int64_t before_ms, int64_t *count)
{
	int64_t n = 0;
	int rc;

	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	if (x(s, "DELETE FROM events WHERE time_ms < ?",
	      (struct store_val[]){SV_INT(before_ms)}, 1, &n, NULL) < 0)
		rc = STORE_E_ERROR;
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	if (rc == STORE_OK && count)
		*count = n;
	return rc;
}

/* ---- lifecycle hook waits ---------------------------------------------- */

static const char *const hook_names[STORE_HOOK_LAST] = {
	[STORE_HOOK_LAUNCH] = "launch",
	[STORE_HOOK_TERMINATE] = "terminate",
};
static const char *const hook_result_names[STORE_HOOK_RESULT_LAST] = {
	[STORE_HOOK_PENDING] = "pending",
	[STORE_HOOK_CONTINUE] = "continue",
	[STORE_HOOK_ABANDON] = "abandon",
};

const char *
store_hook_name(enum store_hook h)
{
	return (unsigned)h < STORE_HOOK_LAST ? hook_names[h] : NULL;
}

const char *
store_hook_result_name(enum store_hook_result r)
{
	return (unsigned)r < STORE_HOOK_RESULT_LAST ? hook_result_names[r]
						     : NULL;
}

int
store_hook_result_parse(const char *s, enum store_hook_result *out)
{
	if (strcmp(s, "continue") == 0)
		*out = STORE_HOOK_CONTINUE;
	else if (strcmp(s, "abandon") == 0)
		*out = STORE_HOOK_ABANDON;
	else {
		err_set("unknown hook result '%.32s' (continue or abandon)", s);
		return -1;
	}
	return 0;
}

static int
hook_check_id(const char *id)
{
	if (!id || check_id_len(id, strlen(id)) < 0) {
		err_prefix("hook wait");
		return -1;
	}
	return 0;
}

int
store_hook_wait_begin(struct store *s, const struct store_hook_wait *w)
{
	int64_t now = util_wall_ms();
	int rc;

	if (hook_check_id(w->id) < 0 || (unsigned)w->hook >= STORE_HOOK_LAST ||
	    check_hash_len(w->token_hash, strlen(w->token_hash)) < 0)
		return STORE_E_ERROR;
	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	rc = x(s, "INSERT INTO hook_waits (instance_id, hook, deadline_ms, "
		  "token_hash, result, created_ms, updated_ms) "
		  "VALUES (?, ?, ?, ?, NULL, ?, ?)",
	       (struct store_val[]){SV_TEXT(w->id), SV_TEXT(hook_names[w->hook]),
				    SV_INT(w->deadline_ms),
				    SV_TEXT(w->token_hash), SV_INT(now),
				    SV_INT(now)},
	       6, NULL, NULL);
	if (rc == STORE_E_EXISTS)
		err_set("instance %s already waits for a hook", w->id);
	else if (rc < 0)
		rc = STORE_E_ERROR;
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	return rc;
}

int
store_hook_wait_token(struct store *s, const char *id, const char *token_hash)
{
	int64_t changes = 0;
	int rc;

	if (hook_check_id(id) < 0 ||
	    check_hash_len(token_hash, strlen(token_hash)) < 0)
		return STORE_E_ERROR;
	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	if (x(s, "UPDATE hook_waits SET token_hash = ?, updated_ms = ? "
		 "WHERE instance_id = ?",
	      (struct store_val[]){SV_TEXT(token_hash), SV_INT(util_wall_ms()),
				   SV_TEXT(id)},
	      3, &changes, NULL) < 0)
		rc = STORE_E_ERROR;
	else if (changes != 1) {
		err_set("instance %s waits for no hook", id);
		rc = STORE_E_NOTFOUND;
	}
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	return rc;
}

struct hook_ctx {
	struct store_hook_wait *v;
	size_t n, alloc;
};

#define HOOK_COLS \
	"instance_id, hook, deadline_ms, token_hash, result, created_ms, " \
	"updated_ms"

static int
hook_cb(void *ctx, const struct store_row *r)
{
	struct hook_ctx *c = ctx;
	struct store_hook_wait *w;
	char *id = NULL, *hook = NULL, *hash = NULL, *res = NULL;
	int rc = -1;

	if (c->n == c->alloc) {
		c->alloc = c->alloc ? c->alloc * 2 : 8;
		c->v = xreallocarray(c->v, c->alloc, sizeof(*c->v));
	}
	w = &c->v[c->n];
	memset(w, 0, sizeof(*w));
	if (col_str(r, 0, "instance_id", COL_ID, 0, false, &id) < 0 ||
	    col_str(r, 1, "hook", COL_KIND, 0, false, &hook) < 0 ||
	    col_int(r, 2, "deadline_ms", 0, INT64_MAX, &w->deadline_ms) < 0 ||
	    col_str(r, 3, "token_hash", COL_HASH, 0, false, &hash) < 0 ||
	    col_str(r, 4, "result", COL_KIND, 0, true, &res) < 0 ||
	    col_int(r, 5, "created_ms", 0, INT64_MAX, &w->created_ms) < 0 ||
	    col_int(r, 6, "updated_ms", 0, INT64_MAX, &w->updated_ms) < 0)
		goto cleanup;
	snprintf(w->id, sizeof(w->id), "%s", id);
	snprintf(w->token_hash, sizeof(w->token_hash), "%s", hash);
	if (strcmp(hook, "launch") == 0)
		w->hook = STORE_HOOK_LAUNCH;
	else if (strcmp(hook, "terminate") == 0)
		w->hook = STORE_HOOK_TERMINATE;
	else {
		err_set("column hook: unknown hook '%.32s'", hook);
		goto cleanup;
	}
	if (!res)
		w->result = STORE_HOOK_PENDING;
	else if (store_hook_result_parse(res, &w->result) < 0)
		goto cleanup;
	c->n++;
	rc = 0;
cleanup:
	free(id);
	free(hook);
	free(hash);
	free(res);
	return rc < 0 ? corrupt(r, "hook_waits", 0) : 0;
}

int
store_hook_wait_get(struct store *s, const char *id,
		    struct store_hook_wait *out)
{
	struct hook_ctx c = {NULL, 0, 0};
	int rc = STORE_OK;

	if (hook_check_id(id) < 0)
		return STORE_E_ERROR;
	s = lock(s);
	if (q(s, "SELECT " HOOK_COLS " FROM hook_waits WHERE instance_id = ?",
	      (struct store_val[]){SV_TEXT(id)}, 1, hook_cb, &c) < 0)
		rc = STORE_E_ERROR;
	unlock(s);
	if (rc == STORE_OK && !c.n) {
		err_set("instance %s waits for no hook", id);
		rc = STORE_E_NOTFOUND;
	}
	if (rc == STORE_OK)
		*out = c.v[0];
	free(c.v);
	return rc;
}

int
store_hook_wait_list(struct store *s, struct store_hook_wait **v, size_t *n)
{
	struct hook_ctx c = {NULL, 0, 0};
	int rc = STORE_OK;

	s = lock(s);
	if (q(s, "SELECT " HOOK_COLS " FROM hook_waits ORDER BY instance_id",
	      NULL, 0, hook_cb, &c) < 0)
		rc = STORE_E_ERROR;
	unlock(s);
	if (rc != STORE_OK) {
		free(c.v);
		return rc;
	}
	*v = c.v;
	*n = c.n;
	return STORE_OK;
}

int
store_hook_wait_complete(struct store *s, const char *id,
			 enum store_hook_result result)
{
	int64_t changes = 0;
	struct store_hook_wait w;
	struct store *l;
	int rc;

	if (hook_check_id(id) < 0 || (result != STORE_HOOK_CONTINUE &&
				      result != STORE_HOOK_ABANDON)) {
		err_set("hook result must be continue or abandon");
		return STORE_E_ERROR;
	}
	l = lock(s);
	rc = tx_begin(l);
	if (rc < 0)
		goto cleanup;
	if (x(l, "UPDATE hook_waits SET result = ?, updated_ms = ? "
		 "WHERE instance_id = ? AND result IS NULL",
	      (struct store_val[]){SV_TEXT(hook_result_names[result]),
				   SV_INT(util_wall_ms()), SV_TEXT(id)},
	      3, &changes, NULL) < 0)
		rc = STORE_E_ERROR;
	else if (changes != 1)
		rc = STORE_E_CONFLICT; /* told apart below */
	rc = tx_end(l, rc);
cleanup:
	unlock(l);
	if (rc == STORE_E_CONFLICT) {
		int g = store_hook_wait_get(s, id, &w);

		if (g == STORE_E_NOTFOUND)
			rc = STORE_E_NOTFOUND;
		else if (g == STORE_OK)
			err_set("the %s hook of instance %s was completed "
				"already (%s)", hook_names[w.hook], id,
				hook_result_names[w.result]);
		else
			rc = g;
	}
	return rc;
}

int
store_hook_wait_end(struct store *s, const char *id)
{
	int rc;

	if (hook_check_id(id) < 0)
		return STORE_E_ERROR;
	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	if (x(s, "DELETE FROM hook_waits WHERE instance_id = ?",
	      (struct store_val[]){SV_TEXT(id)}, 1, NULL, NULL) < 0)
		rc = STORE_E_ERROR;
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	return rc;
}

/* ---- instance refresh ------------------------------------------------------ */

static int
template_key_check(const char *group, const char *hash)
{
	if (check_name(group, "group name") < 0 || !hash ||
	    check_hash_len(hash, strlen(hash)) < 0) {
		err_prefix("template");
		return -1;
	}
	return 0;
}

int
store_template_put(struct store *s, const char *group, const char *hash,
		   const char *body)
{
	int rc;

	if (template_key_check(group, hash) < 0)
		return STORE_E_ERROR;
	if (!body || check_text(body, STORE_TEMPLATE_MAX, "template body",
				false, true) < 0)
		return STORE_E_ERROR;
	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	rc = x(s, "INSERT INTO group_templates (group_name, hash, body, "
		  "created_ms) VALUES (?, ?, ?, ?)",
	       (struct store_val[]){SV_TEXT(group), SV_TEXT(hash),
				    SV_TEXT(body), SV_INT(util_wall_ms())},
	       4, NULL, NULL);
	if (rc == STORE_E_EXISTS)
		rc = STORE_OK; /* the hash names the body */
	else if (rc < 0)
		rc = STORE_E_ERROR;
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	return rc;
}

static int
template_cb(void *ctx, const struct store_row *r)
{
	char **body = ctx;

	free(*body);
	*body = NULL;
	if (col_str(r, 0, "body", COL_TEXT, STORE_TEMPLATE_MAX, false,
		    body) < 0)
		return corrupt(r, "group_templates", 0);
	return 0;
}

int
store_template_get(struct store *s, const char *group, const char *hash,
		   char **body)
{
	char *b = NULL;
	int rc = STORE_OK;

	if (template_key_check(group, hash) < 0)
		return STORE_E_ERROR;
	s = lock(s);
	if (q(s, "SELECT body FROM group_templates WHERE group_name = ? "
		 "AND hash = ?",
	      (struct store_val[]){SV_TEXT(group), SV_TEXT(hash)}, 2,
	      template_cb, &b) < 0)
		rc = STORE_E_ERROR;
	unlock(s);
	if (rc == STORE_OK && !b) {
		err_set("group %s has no template %.12s in the state store",
			group, hash);
		rc = STORE_E_NOTFOUND;
	}
	if (rc == STORE_OK)
		*body = b;
	else
		free(b);
	return rc;
}

static const char *const refresh_state_names[STORE_REFRESH_LAST] = {
	[STORE_REFRESH_RUNNING] = "running",
	[STORE_REFRESH_PAUSED] = "paused",
	[STORE_REFRESH_ROLLING_BACK] = "rolling_back",
	[STORE_REFRESH_DONE] = "done",
	[STORE_REFRESH_CANCELLED] = "cancelled",
	[STORE_REFRESH_ROLLED_BACK] = "rolled_back",
	[STORE_REFRESH_FAILED] = "failed",
};

const char *
store_refresh_state_name(enum store_refresh_state st)
{
	return (unsigned)st < STORE_REFRESH_LAST ? refresh_state_names[st]
						   : NULL;
}

bool
store_refresh_active(enum store_refresh_state st)
{
	return st == STORE_REFRESH_RUNNING || st == STORE_REFRESH_PAUSED ||
	       st == STORE_REFRESH_ROLLING_BACK;
}

#define REFRESH_COLS                                                       \
	"group_name, state, config_template, target, previous, "           \
	"all_instances, max_unavailable, surge, min_healthy, "             \
	"rollback_after, checkpoints, checkpoint_done, total, failures, "  \
	"batches, started_ms, updated_ms, message"

/* "N" or "P%" (P <= 100), N <= 1000000 */
static bool
amount_valid(const char *s)
{
	size_t n = strspn(s, "0123456789");

	if (n == 0 || n > 7)
		return false;
	if (s[n] == '%')
		return s[n + 1] == '\0' && strtol(s, NULL, 10) <= 100;
	return s[n] == '\0';
}

/* "P,P,..." with 0 < P <= 100, or "" */
static bool
checkpoints_valid(const char *s)
{
	while (*s) {
		size_t n = strspn(s, "0123456789");
		long v = strtol(s, NULL, 10);

		if (n == 0 || n > 3 || v < 1 || v > 100)
			return false;
		s += n;
		if (*s == ',')
			s++;
		else if (*s)
			return false;
	}
	return true;
}

static int
refresh_check(const struct store_refresh *r)
{
	if (check_name(r->group, "group name") < 0)
		goto bad;
	if ((unsigned)r->state >= STORE_REFRESH_LAST) {
		err_set("state %d is out of range", (int)r->state);
		goto bad;
	}
	if (check_hash_len(r->config_template, strlen(r->config_template)) < 0 ||
	    check_hash_len(r->target, strlen(r->target)) < 0 ||
	    (r->previous[0] &&
	     check_hash_len(r->previous, strlen(r->previous)) < 0))
		goto bad;
	if (!amount_valid(r->max_unavailable)) {
		err_set("max_unavailable '%.16s' is not N or P%%",
			r->max_unavailable);
		goto bad;
	}
	if (!checkpoints_valid(r->checkpoints)) {
		err_set("checkpoints '%.64s' are not percentages 1-100",
			r->checkpoints);
		goto bad;
	}
	if (r->surge < 0 || r->surge > 1000 || r->min_healthy < 0 ||
	    r->min_healthy > 100 || r->rollback_after < 0 ||
	    r->rollback_after > 1000 || r->checkpoint_done < 0 ||
	    r->checkpoint_done > 100 || r->total < 0 || r->failures < 0 ||
	    r->batches < 0 || r->started_ms < 0) {
		err_set("a number is out of range");
		goto bad;
	}
	if (check_text(r->message, STORE_TEXT_MAX, "message", false, true) < 0)
		goto bad;
	return 0;
bad:
	err_prefix("refresh of group %s", r->group);
	return -1;
}

static void
copy_col(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

static int
refresh_cb(void *ctx, const struct store_row *r)
{
	struct store_refresh *o = ctx;
	char *group = NULL, *state = NULL, *cfg = NULL, *target = NULL,
	     *prev = NULL, *maxu = NULL, *cps = NULL, *msg = NULL;
	int rc = -1;

	memset(o, 0, sizeof(*o));
	if (col_str(r, 0, "group_name", COL_NAME, 0, false, &group) < 0 ||
	    col_str(r, 1, "state", COL_KIND, 0, false, &state) < 0 ||
	    col_str(r, 2, "config_template", COL_HASH, 0, false, &cfg) < 0 ||
	    col_str(r, 3, "target", COL_HASH, 0, false, &target) < 0 ||
	    col_str(r, 4, "previous", COL_HASH, 0, true, &prev) < 0 ||
	    col_bool(r, 5, "all_instances", &o->all) < 0 ||
	    col_str(r, 6, "max_unavailable", COL_LINE, 15, false, &maxu) < 0 ||
	    col_int(r, 7, "surge", 0, 1000, &o->surge) < 0 ||
	    col_int(r, 8, "min_healthy", 0, 100, &o->min_healthy) < 0 ||
	    col_int(r, 9, "rollback_after", 0, 1000, &o->rollback_after) < 0 ||
	    col_str(r, 10, "checkpoints", COL_LINE, 255, true, &cps) < 0 ||
	    col_int(r, 11, "checkpoint_done", 0, 100, &o->checkpoint_done) < 0 ||
	    col_int(r, 12, "total", 0, INT64_MAX, &o->total) < 0 ||
	    col_int(r, 13, "failures", 0, INT64_MAX, &o->failures) < 0 ||
	    col_int(r, 14, "batches", 0, INT64_MAX, &o->batches) < 0 ||
	    col_int(r, 15, "started_ms", 0, INT64_MAX, &o->started_ms) < 0 ||
	    col_int(r, 16, "updated_ms", 0, INT64_MAX, &o->updated_ms) < 0 ||
	    col_str(r, 17, "message", COL_TEXT, STORE_TEXT_MAX, true, &msg) < 0)
		goto cleanup;
	copy_col(o->group, sizeof(o->group), group);
	copy_col(o->config_template, sizeof(o->config_template), cfg);
	copy_col(o->target, sizeof(o->target), target);
	copy_col(o->previous, sizeof(o->previous), prev);
	copy_col(o->max_unavailable, sizeof(o->max_unavailable), maxu);
	copy_col(o->checkpoints, sizeof(o->checkpoints), cps);
	copy_col(o->message, sizeof(o->message), msg);
	o->state = STORE_REFRESH_LAST;
	for (int i = 0; i < STORE_REFRESH_LAST; i++)
		if (strcmp(state, refresh_state_names[i]) == 0)
			o->state = (enum store_refresh_state)i;
	if (o->state == STORE_REFRESH_LAST) {
		err_set("column state: unknown refresh state '%.32s'", state);
		goto cleanup;
	}
	if (!amount_valid(o->max_unavailable) ||
	    !checkpoints_valid(o->checkpoints)) {
		err_set("column max_unavailable or checkpoints is malformed");
		goto cleanup;
	}
	rc = 0;
cleanup:
	free(group);
	free(state);
	free(cfg);
	free(target);
	free(prev);
	free(maxu);
	free(cps);
	free(msg);
	return rc < 0 ? corrupt(r, "refreshes", 0) : 0;
}

int
store_refresh_get(struct store *s, const char *group, struct store_refresh *out)
{
	struct store_refresh *r = xcalloc(1, sizeof(*r));
	int rc = STORE_OK;

	if (check_name(group, "group name") < 0) {
		free(r);
		return STORE_E_ERROR;
	}
	r->group[0] = '\0';
	s = lock(s);
	if (q(s, "SELECT " REFRESH_COLS " FROM refreshes WHERE group_name = ?",
	      (struct store_val[]){SV_TEXT(group)}, 1, refresh_cb, r) < 0)
		rc = STORE_E_ERROR;
	unlock(s);
	if (rc == STORE_OK && !r->group[0]) {
		err_set("group %s has no refresh", group);
		rc = STORE_E_NOTFOUND;
	}
	if (rc == STORE_OK)
		*out = *r;
	free(r);
	return rc;
}

int
store_refresh_put(struct store *s, const struct store_refresh *r)
{
	struct store_val v[18] = {
		SV_TEXT(r->group),
		SV_TEXT(refresh_state_names[(unsigned)r->state < STORE_REFRESH_LAST
						    ? r->state
						    : 0]),
		SV_TEXT(r->config_template),
		SV_TEXT(r->target),
		SV_OPT(r->previous[0] ? r->previous : NULL),
		SV_INT(r->all),
		SV_TEXT(r->max_unavailable),
		SV_INT(r->surge),
		SV_INT(r->min_healthy),
		SV_INT(r->rollback_after),
		SV_TEXT(r->checkpoints),
		SV_INT(r->checkpoint_done),
		SV_INT(r->total),
		SV_INT(r->failures),
		SV_INT(r->batches),
		SV_INT(r->started_ms),
		SV_INT(util_wall_ms()),
		SV_TEXT(r->message),
	};
	int rc;

	if (refresh_check(r) < 0)
		return STORE_E_ERROR;
	s = lock(s);
	rc = tx_begin(s);
	if (rc < 0)
		goto cleanup;
	/* delete + insert: one statement for both backends' upsert */
	rc = x(s, "DELETE FROM refreshes WHERE group_name = ?",
	       (struct store_val[]){SV_TEXT(r->group)}, 1, NULL, NULL);
	if (rc >= 0)
		rc = x(s, "INSERT INTO refreshes (" REFRESH_COLS ") VALUES "
			  "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		       v, 18, NULL, NULL);
	if (rc < 0)
		rc = STORE_E_ERROR;
	rc = tx_end(s, rc);
cleanup:
	unlock(s);
	return rc;
}
