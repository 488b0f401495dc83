/*
 * store/mysql.c: the MariaDB/MySQL state-store backend (libmariadb), for
 * people who run several controllers against one database (HA).
 *
 * URLs:
 *   mysql://USER@HOST[:PORT]/DB                  TCP (PORT defaults to 3306)
 *   mysql://USER@localhost/DB?socket=/run/x.sock  unix socket
 * USER@ may be left out (the client library then uses the login name).
 * The password is passed to store_open() (read by the caller from a secret
 * file or the environment); a password inside the URL is refused. It is
 * kept in memory for reconnects, never logged, never put on a command line.
 *
 * Sessions run in READ COMMITTED with strict SQL mode and UTC; tables are
 * InnoDB with a binary collation (names compare like SQLite's). Affected
 * row counts are "found rows" (CLIENT_FOUND_ROWS), so a conditional
 * UPDATE that matches a row counts it even when no value changed: the
 * fence check and the compare-and-set updates rely on that, and on
 * InnoDB's row locks held until commit.
 *
 * Statements with parameters run as server-side prepared statements
 * (binary protocol), prepared once per connection and cached by their
 * text: the server then skips parsing and name resolution, which were
 * most of its work for the check-in server's point reads. Values come
 * back as text, as the driver table wants. Statements without
 * parameters (transactions, DDL) and those past a full cache are sent
 * as text.
 *
 * A dropped connection (server restart, idle timeout) is reopened: a
 * query outside a transaction and a transaction's BEGIN are retried once
 * on a fresh connection; inside a transaction the loss fails the
 * operation (the server rolled it back) and the next one reconnects.
 */
#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>

#include "log.h"
#include "store/driver.h"
#include "util.h"
#include "va_config.h"

LOG_TAG("store-mysql");

#define MAX_COLS 32
#define STMT_CACHE 64
#define MIN_COL_BUF 32
#define CONNECT_TIMEOUT_S 5
#define IO_TIMEOUT_S 30
#define LOCK_WAIT_TIMEOUT_S 10
#define MIGRATE_LOCK_TIMEOUT_S 60
#define IDLE_TX_TIMEOUT_S 3
#define STR_(x) #x
#define STR(x) STR_(x)

/* A server-side prepared statement, kept per connection by SQL text
 * (found by the text's hash first, as store/sqlite.c's). */
struct stmt_slot {
	uint64_t hash;
	char *sql;
	MYSQL_STMT *st;
};

struct store_conn {
	MYSQL *my;          /* NULL after a lost connection */
	struct stmt_slot cache[STMT_CACHE]; /* die with the connection */
	size_t ncache;
	char *user, *host, *db, *socket;
	unsigned port;
	char *password;     /* may be NULL; zeroed on close */
	char *where;        /* "user@host:port/db" for messages (no secret) */
	bool in_tx;
	struct strbuf sql;  /* the statement being built */
	struct log_complain lost;
};

/*
 * The client library is loaded when the first mysql:// store is opened,
 * not linked: a daemon on SQLite (the default) never maps libmariadb nor
 * the OpenSSL it brings, about 450 KiB resident (bench/README.md,
 * "Memory, fourth pass"). Every function is looked up at once, so a
 * library without one of them is refused whole, before any use.
 * VA_MARIADB_LIB (va_config.h) is the soname the build compiled against.
 */
#define MYSQL_SYMS(X) \
	X(mysql_affected_rows) \
	X(mysql_close) \
	X(mysql_errno) \
	X(mysql_error) \
	X(mysql_fetch_fields) \
	X(mysql_fetch_lengths) \
	X(mysql_fetch_row) \
	X(mysql_field_count) \
	X(mysql_free_result) \
	X(mysql_init) \
	X(mysql_insert_id) \
	X(mysql_num_fields) \
	X(mysql_options) \
	X(mysql_query) \
	X(mysql_real_connect) \
	X(mysql_real_escape_string) \
	X(mysql_real_query) \
	X(mysql_server_init) \
	X(mysql_stmt_affected_rows) \
	X(mysql_stmt_attr_set) \
	X(mysql_stmt_bind_param) \
	X(mysql_stmt_bind_result) \
	X(mysql_stmt_close) \
	X(mysql_stmt_errno) \
	X(mysql_stmt_error) \
	X(mysql_stmt_execute) \
	X(mysql_stmt_fetch) \
	X(mysql_stmt_fetch_column) \
	X(mysql_stmt_field_count) \
	X(mysql_stmt_free_result) \
	X(mysql_stmt_init) \
	X(mysql_stmt_insert_id) \
	X(mysql_stmt_param_count) \
	X(mysql_stmt_prepare) \
	X(mysql_stmt_result_metadata) \
	X(mysql_stmt_store_result) \
	X(mysql_store_result)

#define MYSQL_SYM_PTR(f) static __typeof__(f) *sym_##f;
MYSQL_SYMS(MYSQL_SYM_PTR)

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_rc = -1;
static char lib_error[512];

static void
lib_init(void)
{
	void *h = dlopen(VA_MARIADB_LIB, RTLD_NOW | RTLD_LOCAL);
	const char *missing = NULL;

	if (!h) {
		snprintf(lib_error, sizeof(lib_error),
			 "cannot load the MariaDB client library: %s "
			 "(Debian: apt install libmariadb3)", dlerror());
		return;
	}
#define MYSQL_SYM_GET(f) \
	if (!missing && !(*(void **)&sym_##f = dlsym(h, #f))) \
		missing = #f;
	MYSQL_SYMS(MYSQL_SYM_GET)
#undef MYSQL_SYM_GET
	if (missing) {
		snprintf(lib_error, sizeof(lib_error),
			 "%s has no function %s", VA_MARIADB_LIB, missing);
		dlclose(h);
		return;
	}
	/* kept loaded for the process's life: connections may be opened
	 * and closed at any time, and the library has its own threads'
	 * state to keep */
	if (sym_mysql_server_init(0, NULL, NULL) != 0) {
		snprintf(lib_error, sizeof(lib_error),
			 "cannot initialise the client library");
		return;
	}
	lib_rc = 0;
}

/* ---- URL --------------------------------------------------------------- */

static bool
span_ok(const char *s, size_t n, const char *extra)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr(extra, ch)))
			return false;
	}
	return true;
}

static int
parse_url(struct store_conn *c, const char *rest)
{
	const char *at, *slash, *hp, *he, *qm, *db_end;
	int64_t port = 3306;

	at = strchr(rest, '@');
	slash = strchr(rest, '/');
	if (at && (!slash || at < slash)) {
		size_t n = (size_t)(at - rest);

		if (memchr(rest, ':', n)) {
			err_set("mysql URL must not carry a password: put it in "
				"the state password file or environment "
				"variable");
			return -1;
		}
		if (!span_ok(rest, n, "_.-") || n > 80) {
			err_set("mysql URL: bad user name '%.*s'",
				(int)(n > 80 ? 80 : n), rest);
			return -1;
		}
		c->user = xstrndup(rest, n);
		hp = at + 1;
	} else {
		hp = rest; /* no user: the client library's default */
	}
	if (!slash) {
		err_set("mysql URL needs a database: mysql://USER@HOST:PORT/DB");
		return -1;
	}
	/* host, [v6], and an optional :port */
	if (*hp == '[') {
		const char *rb = memchr(hp, ']', (size_t)(slash - hp));

		if (!rb || !span_ok(hp + 1, (size_t)(rb - hp - 1), ":.")) {
			err_set("mysql URL: bad IPv6 host");
			return -1;
		}
		c->host = xstrndup(hp + 1, (size_t)(rb - hp - 1));
		he = rb + 1;
		if (he != slash && *he != ':') {
			err_set("mysql URL: junk after the IPv6 host");
			return -1;
		}
	} else {
		he = memchr(hp, ':', (size_t)(slash - hp));
		if (!he)
			he = slash;
		if (!span_ok(hp, (size_t)(he - hp), ".-") || he - hp > 255) {
			err_set("mysql URL: bad host name '%.*s'",
				(int)(he - hp > 255 ? 255 : he - hp), hp);
			return -1;
		}
		c->host = xstrndup(hp, (size_t)(he - hp));
	}
	if (*he == ':') {
		char buf[8];
		size_t n = (size_t)(slash - he - 1);

		if (n == 0 || n >= sizeof(buf)) {
			err_set("mysql URL: bad port");
			return -1;
		}
		memcpy(buf, he + 1, n);
		buf[n] = '\0';
		if (util_parse_int64(buf, 1, 65535, &port) < 0) {
			err_prefix("mysql URL: port");
			return -1;
		}
	}
	c->port = (unsigned)port;
	qm = strchr(slash, '?');
	db_end = qm ? qm : slash + strlen(slash);
	if (!span_ok(slash + 1, (size_t)(db_end - slash - 1), "_$") ||
	    db_end - slash - 1 > 64) {
		err_set("mysql URL: bad database name '%.*s' (letters, digits, "
			"_ and $; at most 64)",
			(int)(db_end - slash - 1 > 64 ? 64 : db_end - slash - 1),
			slash + 1);
		return -1;
	}
	c->db = xstrndup(slash + 1, (size_t)(db_end - slash - 1));
	if (qm) {
		const char *v = qm + 1;

		if (strncmp(v, "socket=", 7) != 0 || v[7] != '/' ||
		    strchr(v, '&') || strchr(v, '%') || strlen(v + 7) > 107) {
			err_set("mysql URL: the only option is ?socket=/abs/path "
				"(got '?%.80s')", v);
			return -1;
		}
		if (strcmp(c->host, "localhost") != 0) {
			err_set("mysql URL: a socket needs the host 'localhost', "
				"not '%s'", c->host);
			return -1;
		}
		c->socket = xstrdup(v + 7);
	}
	if (c->socket)
		c->where = xasprintf("%s%slocalhost/%s (socket %s)",
				     c->user ? c->user : "", c->user ? "@" : "",
				     c->db, c->socket);
	else
		c->where = xasprintf("%s%s%s:%u/%s", c->user ? c->user : "",
				     c->user ? "@" : "", c->host, c->port,
				     c->db);
	return 0;
}

/* ---- connection -------------------------------------------------------- */

static int
my_error(struct store_conn *c, MYSQL *my, const char *what)
{
	unsigned e = sym_mysql_errno(my);

	err_set("mysql %s: %s: %s (error %u)", c->where, what, sym_mysql_error(my),
		e);
	return e == ER_DUP_ENTRY ? STORE_E_EXISTS : STORE_E_ERROR;
}

static int
my_connect(struct store_conn *c)
{
	static const char *const session[] = {
		("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,"
		 "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"),
		"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
		"SET SESSION time_zone = '+00:00'",
		"SET SESSION innodb_lock_wait_timeout = 10",
	};
	unsigned connect_to = CONNECT_TIMEOUT_S, io_to = IO_TIMEOUT_S;
	MYSQL *my;

	my = sym_mysql_init(NULL);
	if (!my)
		fatal("mysql_init: out of memory");
	sym_mysql_options(my, MYSQL_OPT_CONNECT_TIMEOUT, &connect_to);
	sym_mysql_options(my, MYSQL_OPT_READ_TIMEOUT, &io_to);
	sym_mysql_options(my, MYSQL_OPT_WRITE_TIMEOUT, &io_to);
	sym_mysql_options(my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	if (c->socket) {
		unsigned proto = MYSQL_PROTOCOL_SOCKET;

		sym_mysql_options(my, MYSQL_OPT_PROTOCOL, &proto);
	} else {
		unsigned proto = MYSQL_PROTOCOL_TCP;

		sym_mysql_options(my, MYSQL_OPT_PROTOCOL, &proto);
	}
	if (!sym_mysql_real_connect(my, c->socket ? "localhost" : c->host, c->user,
				c->password, c->db, c->socket ? 0 : c->port,
				c->socket, CLIENT_FOUND_ROWS)) {
		my_error(c, my, "connect");
		sym_mysql_close(my);
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(session); i++) {
		if (sym_mysql_query(my, session[i]) != 0) {
			my_error(c, my, session[i]);
			sym_mysql_close(my);
			return -1;
		}
	}
	/*
	 * A daemon frozen inside a transaction (SIGSTOP, a paused VM) would
	 * keep the lease row locked, and no standby could take over, until
	 * wait_timeout (8 h). MariaDB ends such a transaction after this
	 * long; our transactions last milliseconds. MySQL lacks the
	 * variable: a takeover there waits for the connection to die.
	 */
	if (sym_mysql_query(my, "SET SESSION idle_transaction_timeout = "
			    STR(IDLE_TX_TIMEOUT_S)) != 0) {
		if (sym_mysql_errno(my) != ER_UNKNOWN_SYSTEM_VARIABLE) {
			my_error(c, my, "SET idle_transaction_timeout");
			sym_mysql_close(my);
			return -1;
		}
		log_debug("%s: no idle_transaction_timeout (not MariaDB)",
			  c->where);
	}
	c->my = my;
	c->in_tx = false;
	return 0;
}

static void
drop(struct store_conn *c)
{
	for (size_t i = 0; i < c->ncache; i++) {
		sym_mysql_stmt_close(c->cache[i].st);
		free(c->cache[i].sql);
	}
	c->ncache = 0;
	if (c->my)
		sym_mysql_close(c->my);
	c->my = NULL;
	c->in_tx = false;
}

static void my_close(struct store_conn *c);

static struct store_conn *
my_open(const char *rest, const char *password)
{
	struct store_conn *c;

	pthread_once(&lib_once, lib_init);
	if (lib_rc != 0) {
		err_set("%s", lib_error);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	strbuf_init(&c->sql);
	if (parse_url(c, rest) < 0) {
		err_prefix("'mysql://%.200s'", rest);
		goto fail;
	}
	if (password)
		c->password = xstrdup(password);
	if (my_connect(c) < 0)
		goto fail;
	log_debug("connected to %s", c->where);
	return c;
fail:
	my_close(c);
	return NULL;
}

static int
my_check_url(const char *rest)
{
	struct store_conn *c = xcalloc(1, sizeof(*c));
	int rc;

	strbuf_init(&c->sql);
	rc = parse_url(c, rest);
	if (rc < 0)
		err_prefix("'mysql://%.200s'", rest);
	my_close(c);
	return rc;
}

static void
my_close(struct store_conn *c)
{
	if (!c)
		return;
	drop(c);
	if (c->password) {
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	free(c->user);
	free(c->host);
	free(c->db);
	free(c->socket);
	free(c->where);
	strbuf_release(&c->sql);
	free(c);
}

/* ---- statements -------------------------------------------------------- */

/* Replace each ? with its parameter, escaped for this connection. */
static int
build(struct store_conn *c, const char *sql, const struct store_val *p,
      size_t n)
{
	size_t k = 0;

	strbuf_reset(&c->sql);
	for (const char *s = sql; *s; s++) {
		if (*s != '?') {
			strbuf_addc(&c->sql, *s);
			continue;
		}
		if (k >= n)
			goto mismatch;
		switch (p[k].type) {
		case STORE_VAL_NULL:
			strbuf_adds(&c->sql, "NULL");
			break;
		case STORE_VAL_INT:
			strbuf_addf(&c->sql, "%" PRId64, p[k].i);
			break;
		case STORE_VAL_TEXT: {
			size_t len = strlen(p[k].s);
			char *esc = xmalloc(2 * len + 1);
			unsigned long m;

			m = sym_mysql_real_escape_string(c->my, esc, p[k].s,
						     (unsigned long)len);
			strbuf_addc(&c->sql, '\'');
			strbuf_add(&c->sql, esc, m);
			strbuf_addc(&c->sql, '\'');
			free(esc);
			break;
		}
		}
		k++;
	}
	if (k == n)
		return 0;
mismatch:
	err_set("mysql: statement and parameters do not match (%zu given)", n);
	return -1;
}

static bool
lost_error(unsigned e)
{
	return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST;
}

/*
 * Send sql (with params) on a live connection; reconnect first if the
 * last one was lost. With retry, a lost connection is reopened and the
 * statement sent once more (only for statements that are safe to repeat:
 * reads outside transactions and BEGIN).
 */
static int
run(struct store_conn *c, const char *sql, const struct store_val *p,
    size_t n, bool retry)
{
	unsigned e;

	for (int attempt = 0;; attempt++) {
		if (!c->my && my_connect(c) < 0)
			return STORE_E_ERROR;
		if (build(c, sql, p, n) < 0)
			return STORE_E_ERROR;
		if (sym_mysql_real_query(c->my, c->sql.buf,
				     (unsigned long)c->sql.len) == 0) {
			log_complain_clear(&c->lost, log_tag,
					   "mysql %s: connected again", c->where);
			return 0;
		}
		e = sym_mysql_errno(c->my);
		if (!lost_error(e))
			return my_error(c, c->my, "query");
		my_error(c, c->my, "query");
		log_complain(&c->lost, LOG_LEVEL_WARN, log_tag,
			     "%s; reconnecting", err_msg());
		drop(c);
		if (!retry || attempt > 0)
			return STORE_E_ERROR;
	}
}

/* ---- prepared statements ---------------------------------------------- */

static void
stmt_evict(struct store_conn *c, MYSQL_STMT *st)
{
	for (size_t i = 0; i < c->ncache; i++) {
		if (c->cache[i].st != st)
			continue;
		sym_mysql_stmt_close(st);
		free(c->cache[i].sql);
		c->cache[i] = c->cache[--c->ncache];
		return;
	}
}

static int
stmt_error(struct store_conn *c, MYSQL_STMT *st, const char *what)
{
	unsigned e = sym_mysql_stmt_errno(st);

	err_set("mysql %s: %s: %s (error %u)", c->where, what,
		sym_mysql_stmt_error(st), e);
	return e == ER_DUP_ENTRY ? STORE_E_EXISTS : STORE_E_ERROR;
}

/*
 * The cached statement for sql, prepared now if new. NULL with *full set
 * when the cache is full (the caller sends text instead), or NULL and
 * STORE_E_ERROR in *rc (err_set(); *lost when the connection died).
 */
static MYSQL_STMT *
stmt_get(struct store_conn *c, const char *sql, bool *full, bool *lost,
	 int *rc)
{
	my_bool one = 1;
	MYSQL_STMT *st;
	uint64_t h = util_str_hash(sql);

	*full = *lost = false;
	for (size_t i = 0; i < c->ncache; i++)
		if (c->cache[i].hash == h && strcmp(c->cache[i].sql, sql) == 0)
			return c->cache[i].st;
	if (c->ncache == STMT_CACHE) {
		*full = true;
		return NULL;
	}
	st = sym_mysql_stmt_init(c->my);
	if (!st)
		fatal("mysql_stmt_init: out of memory");
	/* max_length of each column after store_result: buffer sizes */
	sym_mysql_stmt_attr_set(st, STMT_ATTR_UPDATE_MAX_LENGTH, &one);
	if (sym_mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)) != 0) {
		*rc = stmt_error(c, st, "prepare");
		err_prefix("%.120s", sql);
		*lost = lost_error(sym_mysql_stmt_errno(st));
		sym_mysql_stmt_close(st);
		return NULL;
	}
	c->cache[c->ncache].hash = h;
	c->cache[c->ncache].sql = xstrdup(sql);
	c->cache[c->ncache].st = st;
	c->ncache++;
	return st;
}

/*
 * Execute sql with params as a prepared statement; *out gets it (cached:
 * not to be closed). Reconnects and retries like run(). Returns 0, 1 when
 * the statement must go as text instead (cache full), or a store_rc.
 */
static int
prun(struct store_conn *c, const char *sql, const struct store_val *p,
     size_t n, bool retry, MYSQL_STMT **out)
{
	MYSQL_BIND b[MAX_COLS];
	unsigned long lens[MAX_COLS];
	bool full, lost;
	unsigned e;
	int rc = STORE_E_ERROR;

	if (n > MAX_COLS) {
		err_set("mysql: %zu parameters (at most %d)", n, MAX_COLS);
		return STORE_E_ERROR;
	}
	for (int attempt = 0;; attempt++) {
		MYSQL_STMT *st;

		if (!c->my && my_connect(c) < 0)
			return STORE_E_ERROR;
		st = stmt_get(c, sql, &full, &lost, &rc);
		if (full)
			return 1;
		if (!st) {
			if (!lost)
				return rc;
			goto lost;
		}
		if (sym_mysql_stmt_param_count(st) != n) {
			err_set("mysql: statement and parameters do not match "
				"(%zu given)", n);
			return STORE_E_ERROR;
		}
		memset(b, 0, n * sizeof(b[0]));
		for (size_t i = 0; i < n; i++) {
			switch (p[i].type) {
			case STORE_VAL_NULL:
				b[i].buffer_type = MYSQL_TYPE_NULL;
				break;
			case STORE_VAL_INT:
				b[i].buffer_type = MYSQL_TYPE_LONGLONG;
				b[i].buffer = (void *)&p[i].i;
				break;
			case STORE_VAL_TEXT:
				lens[i] = (unsigned long)strlen(p[i].s);
				b[i].buffer_type = MYSQL_TYPE_STRING;
				b[i].buffer = (void *)p[i].s;
				b[i].buffer_length = lens[i];
				b[i].length = &lens[i];
				break;
			}
		}
		if (sym_mysql_stmt_bind_param(st, b) != 0)
			return stmt_error(c, st, "bind");
		if (sym_mysql_stmt_execute(st) == 0) {
			log_complain_clear(&c->lost, log_tag,
					   "mysql %s: connected again", c->where);
			*out = st;
			return 0;
		}
		e = sym_mysql_stmt_errno(st);
		rc = stmt_error(c, st, "query");
		if (e == ER_NEED_REPREPARE && attempt == 0) {
			/* the table changed under the statement */
			stmt_evict(c, st);
			continue;
		}
		if (!lost_error(e))
			return rc;
lost:
		log_complain(&c->lost, LOG_LEVEL_WARN, log_tag,
			     "%s; reconnecting", err_msg());
		drop(c);
		if (!retry || attempt > 0)
			return STORE_E_ERROR;
	}
}

/* Whether a result column is a signed integer (read as one, not as text). */
static bool
field_int(const MYSQL_FIELD *f)
{
	switch (f->type) {
	case MYSQL_TYPE_TINY:
	case MYSQL_TYPE_SHORT:
	case MYSQL_TYPE_INT24:
	case MYSQL_TYPE_LONG:
	case MYSQL_TYPE_LONGLONG:
		return !(f->flags & UNSIGNED_FLAG);
	default:
		return false;
	}
}

/* Hand the rows of an executed statement to fn: signed integer columns
 * as numbers, the others as text. */
static int
stmt_rows(struct store_conn *c, MYSQL_STMT *st, store_row_fn fn, void *ctx)
{
	const char *vals[MAX_COLS];
	size_t lens[MAX_COLS];
	int64_t ints[MAX_COLS];
	bool is_int[MAX_COLS], typed[MAX_COLS];
	struct store_row row = {0, vals, lens, ints, is_int};
	MYSQL_BIND b[MAX_COLS];
	unsigned long len[MAX_COLS];
	my_bool null[MAX_COLS], trunc[MAX_COLS];
	char *big[MAX_COLS] = {NULL};
	MYSQL_FIELD *fields;
	MYSQL_RES *meta;
	char *buf = NULL;
	size_t total = 0, off = 0;
	int frc, ret = -1;

	meta = sym_mysql_stmt_result_metadata(st);
	if (!meta) {
		if (sym_mysql_stmt_field_count(st) == 0)
			return 0;
		stmt_error(c, st, "result");
		return -1;
	}
	row.ncols = sym_mysql_num_fields(meta);
	if (row.ncols > MAX_COLS)
		fatal("store-mysql: query with %zu columns", row.ncols);
	if (sym_mysql_stmt_store_result(st) != 0) {
		stmt_error(c, st, "result");
		if (lost_error(sym_mysql_stmt_errno(st)))
			drop(c);
		goto cleanup;
	}
	fields = sym_mysql_fetch_fields(meta);
	for (size_t i = 0; i < row.ncols; i++) {
		typed[i] = field_int(&fields[i]);
		if (!typed[i])
			total += (fields[i].max_length > MIN_COL_BUF
					  ? fields[i].max_length
					  : MIN_COL_BUF) + 1;
	}
	buf = xmalloc(total + 1);
	memset(b, 0, row.ncols * sizeof(b[0]));
	for (size_t i = 0; i < row.ncols; i++) {
		size_t cap = (fields[i].max_length > MIN_COL_BUF
				      ? fields[i].max_length
				      : MIN_COL_BUF) + 1;

		if (typed[i]) {
			b[i].buffer_type = MYSQL_TYPE_LONGLONG;
			b[i].buffer = &ints[i];
			b[i].buffer_length = sizeof(ints[i]);
			b[i].is_unsigned = 0;
			b[i].length = &len[i];
			b[i].is_null = &null[i];
			b[i].error = &trunc[i];
			continue;
		}
		b[i].buffer_type = MYSQL_TYPE_STRING;
		b[i].buffer = buf + off;
		b[i].buffer_length = (unsigned long)cap;
		b[i].length = &len[i];
		b[i].is_null = &null[i];
		b[i].error = &trunc[i];
		off += cap;
	}
	if (sym_mysql_stmt_bind_result(st, b) != 0) {
		stmt_error(c, st, "bind result");
		goto cleanup;
	}
	while ((frc = sym_mysql_stmt_fetch(st)) == 0 || frc == MYSQL_DATA_TRUNCATED) {
		for (size_t i = 0; i < row.ncols; i++) {
			char *v = b[i].buffer;

			is_int[i] = typed[i] && !null[i];
			if (null[i] || typed[i]) {
				vals[i] = NULL;
				lens[i] = 0;
				continue;
			}
			if (len[i] >= b[i].buffer_length) {
				/* longer than max_length said: fetch it whole */
				MYSQL_BIND one = b[i];

				big[i] = xreallocarray(big[i], len[i] + 1, 1);
				one.buffer = big[i];
				one.buffer_length = len[i] + 1;
				if (sym_mysql_stmt_fetch_column(st, &one, (unsigned)i,
							    0) != 0) {
					stmt_error(c, st, "fetch");
					goto cleanup;
				}
				v = big[i];
			}
			v[len[i]] = '\0';
			vals[i] = v;
			lens[i] = len[i];
		}
		if (fn(ctx, &row) < 0)
			goto cleanup;
	}
	if (frc != MYSQL_NO_DATA) {
		stmt_error(c, st, "fetch");
		if (lost_error(sym_mysql_stmt_errno(st)))
			drop(c);
		goto cleanup;
	}
	ret = 0;
cleanup:
	if (c->my)
		sym_mysql_stmt_free_result(st);
	sym_mysql_free_result(meta);
	for (size_t i = 0; i < row.ncols; i++)
		free(big[i]);
	free(buf);
	return ret;
}

static int
my_exec(struct store_conn *c, const char *sql, const struct store_val *p,
	size_t n, int64_t *changes, int64_t *last_id)
{
	MYSQL_RES *res;
	MYSQL_STMT *st;
	int rc;

	rc = n > 0 ? prun(c, sql, p, n, false, &st) : 1;
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if (sym_mysql_stmt_field_count(st) != 0 &&
		    (sym_mysql_stmt_store_result(st) != 0 ||
		     sym_mysql_stmt_free_result(st) != 0))
			return stmt_error(c, st, "result");
		if (changes)
			*changes = (int64_t)sym_mysql_stmt_affected_rows(st);
		if (last_id)
			*last_id = (int64_t)sym_mysql_stmt_insert_id(st);
		return 0;
	}
	rc = run(c, sql, p, n, false);
	if (rc < 0)
		return rc;
	/* A statement that returns rows (SELECT GET_LOCK) must be drained. */
	res = sym_mysql_store_result(c->my);
	if (res)
		sym_mysql_free_result(res);
	else if (sym_mysql_field_count(c->my) != 0)
		return my_error(c, c->my, "result");
	if (changes)
		*changes = (int64_t)sym_mysql_affected_rows(c->my);
	if (last_id)
		*last_id = (int64_t)sym_mysql_insert_id(c->my);
	return 0;
}

static int
my_query(struct store_conn *c, const char *sql, const struct store_val *p,
	 size_t n, store_row_fn fn, void *ctx)
{
	const char *vals[MAX_COLS];
	size_t lens[MAX_COLS];
	struct store_row row = {.vals = vals, .lens = lens};
	MYSQL_RES *res;
	MYSQL_STMT *st = NULL;
	MYSQL_ROW r;
	int ret = 0;

	ret = n > 0 ? prun(c, sql, p, n, !c->in_tx, &st) : 1;
	if (ret < 0)
		return -1;
	if (ret == 0)
		return stmt_rows(c, st, fn, ctx);
	ret = 0;
	if (run(c, sql, p, n, !c->in_tx) < 0)
		return -1;
	res = sym_mysql_store_result(c->my);
	if (!res) {
		if (sym_mysql_field_count(c->my) == 0)
			return 0;
		my_error(c, c->my, "result");
		if (lost_error(sym_mysql_errno(c->my)))
			drop(c);
		return -1;
	}
	row.ncols = sym_mysql_num_fields(res);
	if (row.ncols > MAX_COLS)
		fatal("store-mysql: query with %zu columns", row.ncols);
	while ((r = sym_mysql_fetch_row(res))) {
		unsigned long *l = sym_mysql_fetch_lengths(res);

		for (size_t i = 0; i < row.ncols; i++) {
			vals[i] = r[i];
			lens[i] = l[i];
		}
		if (fn(ctx, &row) < 0) {
			ret = -1;
			break;
		}
	}
	sym_mysql_free_result(res);
	return ret;
}

static int
my_begin(struct store_conn *c, bool write)
{
	(void)write; /* InnoDB: row locks taken by the statements */
	if (run(c, "START TRANSACTION", NULL, 0, true) < 0)
		return -1;
	c->in_tx = true;
	return 0;
}

static int
my_commit(struct store_conn *c)
{
	int rc = run(c, "COMMIT", NULL, 0, false);

	/* If the connection died during COMMIT the outcome is unknown;
	 * the caller reports an error and the next read shows the truth. */
	c->in_tx = false;
	return rc < 0 ? -1 : 0;
}

static void
my_rollback(struct store_conn *c)
{
	if (c->my && c->in_tx && sym_mysql_query(c->my, "ROLLBACK") != 0) {
		log_warn("mysql %s: ROLLBACK: %s", c->where, sym_mysql_error(c->my));
		if (lost_error(sym_mysql_errno(c->my)))
			drop(c);
	}
	c->in_tx = false;
}

static int
int_cb(void *ctx, const struct store_row *r)
{
	int64_t *out = ctx;
	char buf[32];

	if (r->ncols == 1 && r->is_int && r->is_int[0]) {
		*out = r->ints[0];
		return 0;
	}
	if (r->ncols != 1 || !r->vals[0] || r->lens[0] == 0 ||
	    r->lens[0] >= sizeof(buf)) {
		err_set("mysql: expected one number, got something else");
		return -1;
	}
	memcpy(buf, r->vals[0], r->lens[0]);
	buf[r->lens[0]] = '\0';
	return util_parse_int64(buf, INT64_MIN, INT64_MAX, out);
}

static int
my_now_ms(struct store_conn *c, int64_t *out)
{
	*out = -1;
	if (my_query(c, "SELECT CAST(FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000) "
			"AS SIGNED)",
		     NULL, 0, int_cb, out) < 0)
		return -1;
	if (*out <= 0) {
		err_set("mysql %s: the server clock gave no time", c->where);
		return -1;
	}
	return 0;
}

static int
my_migrate_begin(struct store_conn *c)
{
	int64_t got = -1;

	if (my_query(c, "SELECT GET_LOCK(CONCAT('virt_autoscaler_schema.', "
			"DATABASE()), ?)",
		     (struct store_val[]){SV_INT(MIGRATE_LOCK_TIMEOUT_S)}, 1,
		     int_cb, &got) < 0)
		return -1;
	if (got != 1) {
		err_set("mysql %s: another process holds the schema migration "
			"lock for more than %d s",
			c->where, MIGRATE_LOCK_TIMEOUT_S);
		return -1;
	}
	return 0;
}

static int
my_migrate_end(struct store_conn *c, bool ok)
{
	int64_t got = -1;

	(void)ok; /* DDL committed as it ran; statements are idempotent */
	if (c->my)
		my_query(c, "SELECT RELEASE_LOCK(CONCAT('virt_autoscaler_schema.', "
			    "DATABASE()))",
			 NULL, 0, int_cb, &got);
	return 0;
}

static int
exists_cb(void *ctx, const struct store_row *r)
{
	(void)r;
	*(bool *)ctx = true;
	return 0;
}

static int
my_table_exists(struct store_conn *c, const char *table, bool *out)
{
	*out = false;
	return my_query(c, "SELECT TABLE_NAME FROM information_schema.TABLES "
			   "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
			(struct store_val[]){SV_TEXT(table)}, 1, exists_cb, out);
}

/*
 * The schema (docs/state.md). DDL commits implicitly in MariaDB, so every
 * statement is idempotent: a migration cut short is simply run again.
 */
#define TABLE_OPTS " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

static const char *const v1[] = {
	"CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL)"
	TABLE_OPTS,
	"CREATE TABLE IF NOT EXISTS instance_groups ("
	" name VARCHAR(63) NOT NULL PRIMARY KEY,"
	" desired BIGINT NOT NULL,"
	" paused TINYINT NOT NULL DEFAULT 0,"
	" config_gen BIGINT NOT NULL DEFAULT 0,"
	" created_ms BIGINT NOT NULL,"
	" updated_ms BIGINT NOT NULL)" TABLE_OPTS,
	"CREATE TABLE IF NOT EXISTS instances ("
	" id VARCHAR(64) NOT NULL PRIMARY KEY,"
	" group_name VARCHAR(63) NOT NULL,"
	" host VARCHAR(255) NULL,"
	" domain VARCHAR(255) NULL,"
	" state VARCHAR(32) NOT NULL,"
	" secret_hash VARCHAR(128) NULL,"
	" created_ms BIGINT NOT NULL,"
	" updated_ms BIGINT NOT NULL,"
	" ready_ms BIGINT NOT NULL DEFAULT 0,"
	" heartbeat_ms BIGINT NOT NULL DEFAULT 0,"
	" busy TINYINT NOT NULL DEFAULT 0,"
	" busy_since_ms BIGINT NOT NULL DEFAULT 0,"
	" config_gen BIGINT NOT NULL DEFAULT 0,"
	" address VARCHAR(255) NULL,"
	" notes TEXT NULL,"
	" KEY instances_group_state (group_name, state),"
	" KEY instances_host (host),"
	" CONSTRAINT instances_group_fk FOREIGN KEY (group_name)"
	"  REFERENCES instance_groups (name))" TABLE_OPTS,
	"CREATE TABLE IF NOT EXISTS events ("
	" id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
	" time_ms BIGINT NOT NULL,"
	" group_name VARCHAR(63) NULL,"
	" instance_id VARCHAR(64) NULL,"
	" kind VARCHAR(63) NOT NULL,"
	" message TEXT NOT NULL,"
	" details MEDIUMTEXT NULL,"
	" KEY events_group (group_name, id))" TABLE_OPTS,
	NULL,
};

static const char *const v2[] = {
	"CREATE TABLE IF NOT EXISTS journal ("
	" id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
	" instance_id VARCHAR(64) NOT NULL,"
	" action VARCHAR(32) NOT NULL,"
	" step VARCHAR(32) NOT NULL,"
	" status VARCHAR(16) NOT NULL,"
	" payload MEDIUMTEXT NULL,"
	" error TEXT NULL,"
	" created_ms BIGINT NOT NULL,"
	" updated_ms BIGINT NOT NULL,"
	" pending_instance VARCHAR(64) NULL,"
	" KEY journal_status (status, id),"
	" UNIQUE KEY journal_pending_instance (pending_instance),"
	" CONSTRAINT journal_instance_fk FOREIGN KEY (instance_id)"
	"  REFERENCES instances (id))" TABLE_OPTS,
	"CREATE TABLE IF NOT EXISTS leases ("
	" name VARCHAR(63) NOT NULL PRIMARY KEY,"
	" holder VARCHAR(255) NOT NULL,"
	" epoch BIGINT NOT NULL,"
	" expires_ms BIGINT NOT NULL,"
	" acquired_ms BIGINT NOT NULL)" TABLE_OPTS,
	NULL,
};

/* The installation id (one row, minted by store.c right after this). */
static const char *const v3[] = {
	"CREATE TABLE IF NOT EXISTS installation ("
	" singleton TINYINT NOT NULL PRIMARY KEY CHECK (singleton = 1),"
	" id VARCHAR(64) NOT NULL,"
	" created_ms BIGINT NOT NULL)" TABLE_OPTS,
	NULL,
};

/* The configuration generation (one row, written by store.c right after
 * this from the generations groups and instances already carry). */
static const char *const v4[] = {
	"CREATE TABLE IF NOT EXISTS config_generation ("
	" singleton TINYINT NOT NULL PRIMARY KEY CHECK (singleton = 1),"
	" gen BIGINT NOT NULL,"
	" updated_ms BIGINT NOT NULL)" TABLE_OPTS,
	NULL,
};

/* Predictive scaling's load history (store_load_put()). */
static const char *const v5[] = {
	"CREATE TABLE IF NOT EXISTS load_history ("
	" group_name VARCHAR(63) NOT NULL,"
	" minute BIGINT NOT NULL,"
	" load_milli BIGINT NOT NULL,"
	" PRIMARY KEY (group_name, minute),"
	" KEY load_history_minute (minute))" TABLE_OPTS,
	NULL,
};

/* Lifecycle hook waits (store_hook_wait_*): one row per waiting instance. */
static const char *const v6[] = {
	"CREATE TABLE IF NOT EXISTS hook_waits ("
	" instance_id VARCHAR(64) NOT NULL PRIMARY KEY,"
	" hook VARCHAR(16) NOT NULL,"
	" deadline_ms BIGINT NOT NULL,"
	" token_hash VARCHAR(64) NOT NULL,"
	" result VARCHAR(16) NULL,"
	" created_ms BIGINT NOT NULL,"
	" updated_ms BIGINT NOT NULL)" TABLE_OPTS,
	NULL,
};

/* Instances in the order every listing returns them (ORDER BY created_ms,
 * id), for all groups (the scaler's listing each tick) and for one: the
 * listing reads them in order instead of sorting every row. Self-contained
 * (renumber it freely before it is released). */
static const char *const v7[] = {
	"CREATE INDEX IF NOT EXISTS instances_created ON instances (created_ms, id)",
	"CREATE INDEX IF NOT EXISTS instances_group_created ON instances (group_name, created_ms, id)",
	NULL,
};

/* Instance refresh (store_refresh_*, store_template_*): the template each
 * instance was built from, every template a group used (a rollback
 * builds from the previous one after a restart), and each group's last
 * refresh. */
static const char *const v8[] = {
	"ALTER TABLE instances ADD COLUMN IF NOT EXISTS template_hash VARCHAR(64) NULL",
	"CREATE TABLE IF NOT EXISTS group_templates ("
	" group_name VARCHAR(63) NOT NULL,"
	" hash VARCHAR(64) NOT NULL,"
	" body MEDIUMTEXT NOT NULL,"
	" created_ms BIGINT NOT NULL,"
	" PRIMARY KEY (group_name, hash))" TABLE_OPTS,
	"CREATE TABLE IF NOT EXISTS refreshes ("
	" group_name VARCHAR(63) NOT NULL PRIMARY KEY,"
	" state VARCHAR(16) NOT NULL,"
	" config_template VARCHAR(64) NOT NULL,"
	" target VARCHAR(64) NOT NULL,"
	" previous VARCHAR(64) NULL,"
	" all_instances TINYINT NOT NULL,"
	" max_unavailable VARCHAR(16) NOT NULL,"
	" surge INT NOT NULL,"
	" min_healthy INT NOT NULL,"
	" rollback_after INT NOT NULL,"
	" checkpoints VARCHAR(255) NOT NULL,"
	" checkpoint_done INT NOT NULL,"
	" total INT NOT NULL,"
	" failures INT NOT NULL,"
	" batches INT NOT NULL,"
	" started_ms BIGINT NOT NULL,"
	" updated_ms BIGINT NOT NULL,"
	" message TEXT NOT NULL)" TABLE_OPTS,
	NULL,
};

static const struct store_migration migrations[] = {
	{1, v1},
	{2, v2},
	{3, v3},
	{4, v4},
	{5, v5},
	{6, v6},
	{7, v7},
	{8, v8},
};

const struct store_driver store_driver_mysql = {
	.name = "mysql",
	/* A read costs a network round trip that a thread waits out: let a
	 * handle shared by threads (the HTTP server's) overlap a few. */
	.max_conns = 8,
	.open = my_open,
	.check_url = my_check_url,
	.close = my_close,
	.begin = my_begin,
	.commit = my_commit,
	.rollback = my_rollback,
	.exec = my_exec,
	.query = my_query,
	.now_ms = my_now_ms,
	.migrate_begin = my_migrate_begin,
	.migrate_end = my_migrate_end,
	.table_exists = my_table_exists,
	.migrations = migrations,
	.nmigrations = ARRAY_SIZE(migrations),
};
