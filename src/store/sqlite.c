/*
 * store/sqlite.c: the SQLite state-store backend (the default).
 *
 * URL: sqlite:///abs/path/state.db. The file is created with mode 0600 and
 * its missing directories with 0700; WAL journal (readers do not block the
 * writer), synchronous=FULL (a committed intent survives a power cut,
 * which the journal's crash safety relies on), foreign keys on, a busy
 * timeout so two handles or processes wait for each other instead of
 * failing, and prepared statements cached per SQL text.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "store/driver.h"
#include "util.h"

LOG_TAG("store-sqlite");

#define BUSY_TIMEOUT_MS 10000
#define STMT_CACHE 64
#define MAX_COLS 32

/* A cached statement, found by its text's hash first: a strcmp() of
 * every cached text, which share long prefixes, was most of a one-row
 * query's client time. */
struct stmt_slot {
	uint64_t hash;
	char *sql;
	sqlite3_stmt *st;
};

struct store_conn {
	sqlite3 *db;
	char *path;
	struct stmt_slot cache[STMT_CACHE];
	size_t ncache;
};

static int
sq_error(struct store_conn *c, const char *what)
{
	err_set("%s: %s: %s", c->path, what, sqlite3_errmsg(c->db));
	return STORE_E_ERROR;
}

/* mkdir -p for the parent directories of path (mode 0700). */
static int
make_parents(const char *path)
{
	char *dir = xstrdup(path);
	int rc = -1;

	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			err_set("cannot create directory %s: %s", dir,
				strerror(errno));
			goto cleanup;
		}
		*p = '/';
	}
	rc = 0;
cleanup:
	free(dir);
	return rc;
}

static int
exec_simple(struct store_conn *c, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		err_set("%s: %s: %s", c->path, sql, msg ? msg : "error");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static void sq_close(struct store_conn *c);

static int
sq_check_url(const char *rest)
{
	if (rest[0] != '/' || rest[1] == '\0') {
		err_set("sqlite URL needs an absolute file path: "
			"sqlite:///abs/path/state.db, not 'sqlite://%.200s'",
			rest);
		return -1;
	}
	if (strchr(rest, '?') || strchr(rest, '#')) {
		err_set("sqlite URL 'sqlite://%.200s': query strings are not "
			"supported", rest);
		return -1;
	}
	if (rest[strlen(rest) - 1] == '/') {
		err_set("sqlite URL 'sqlite://%.200s' names a directory, not a "
			"file", rest);
		return -1;
	}
	if (strlen(rest) > 4000) {
		err_set("sqlite URL: the path is longer than 4000 bytes");
		return -1;
	}
	return 0;
}

static struct store_conn *
sq_open(const char *rest, const char *password)
{
	struct store_conn *c;
	const char *mode = NULL;
	sqlite3_stmt *st = NULL;
	struct stat sb;
	int fd;

	(void)password;
	if (sq_check_url(rest) < 0)
		return NULL;
	if (make_parents(rest) < 0)
		return NULL;
	/* Create it ourselves so the mode is 0600 whatever the umask;
	 * SQLite gives the -wal and -shm files the same mode. Never open an
	 * existing one: closing any descriptor of the file drops every POSIX
	 * lock this process holds on it (fcntl(2)), those of the store's
	 * connections already open included; another process (the sqlite3
	 * shell, a backup, a test) then takes itself for the last user and
	 * deletes the -wal and -shm files under them, and what they commit
	 * afterwards goes to a deleted file. */
	fd = open(rest, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
	} else if (errno != EEXIST) {
		err_set("cannot create %s: %s", rest, strerror(errno));
		return NULL;
	}
	if (stat(rest, &sb) == 0 && (sb.st_mode & 077))
		log_warn("%s is readable by other users (mode %04o); it holds "
			 "secret hashes: chmod 600 it", rest,
			 (unsigned)(sb.st_mode & 07777));

	c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(rest);
	if (sqlite3_open_v2(rest, &c->db, SQLITE_OPEN_READWRITE |
				     SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		if (c->db)
			sq_error(c, "open");
		else
			err_set("%s: cannot open (out of memory)", rest);
		goto fail;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
	if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st,
			       NULL) != SQLITE_OK) {
		sq_error(c, "PRAGMA journal_mode");
		goto fail;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		mode = (const char *)sqlite3_column_text(st, 0);
	if (!mode || strcmp(mode, "wal") != 0) {
		if (mode)
			err_set("%s: cannot switch to WAL mode (got '%s')", rest,
				mode);
		else
			sq_error(c, "PRAGMA journal_mode");
		sqlite3_finalize(st);
		goto fail;
	}
	sqlite3_finalize(st);
	if (exec_simple(c, "PRAGMA foreign_keys = ON") < 0 ||
	    exec_simple(c, "PRAGMA synchronous = FULL") < 0)
		goto fail;
	/* Check that this really is a database (a random file fails here). */
	if (exec_simple(c, "SELECT count(*) FROM sqlite_master") < 0)
		goto fail;
	return c;
fail:
	sq_close(c);
	return NULL;
}

static void
sq_close(struct store_conn *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->ncache; i++) {
		sqlite3_finalize(c->cache[i].st);
		free(c->cache[i].sql);
	}
	if (c->db && sqlite3_close(c->db) != SQLITE_OK)
		log_warn("%s: close: %s", c->path, sqlite3_errmsg(c->db));
	free(c->path);
	free(c);
}

/*
 * A prepared statement for sql, from the cache when possible. *owned is
 * set when the statement is not cached (cache full) and must be finalized
 * by the caller.
 */
static sqlite3_stmt *
prepare(struct store_conn *c, const char *sql, bool *owned)
{
	sqlite3_stmt *st = NULL;
	uint64_t h = util_str_hash(sql);

	*owned = false;
	for (size_t i = 0; i < c->ncache; i++)
		if (c->cache[i].hash == h && strcmp(c->cache[i].sql, sql) == 0)
			return c->cache[i].st;
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		sq_error(c, "prepare");
		err_prefix("%.120s", sql);
		return NULL;
	}
	if (c->ncache < STMT_CACHE) {
		c->cache[c->ncache].hash = h;
		c->cache[c->ncache].sql = xstrdup(sql);
		c->cache[c->ncache].st = st;
		c->ncache++;
	} else {
		*owned = true;
	}
	return st;
}

static void
done_with(sqlite3_stmt *st, bool owned)
{
	if (owned) {
		sqlite3_finalize(st);
	} else {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

static int
bind(struct store_conn *c, sqlite3_stmt *st, const struct store_val *p,
     size_t n)
{
	if ((size_t)sqlite3_bind_parameter_count(st) != n) {
		err_set("%s: statement has %d parameters, %zu given", c->path,
			sqlite3_bind_parameter_count(st), n);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		int rc = SQLITE_OK, k = (int)i + 1;

		switch (p[i].type) {
		case STORE_VAL_NULL:
			rc = sqlite3_bind_null(st, k);
			break;
		case STORE_VAL_INT:
			rc = sqlite3_bind_int64(st, k, p[i].i);
			break;
		case STORE_VAL_TEXT:
			rc = sqlite3_bind_text(st, k, p[i].s, -1,
					       SQLITE_TRANSIENT);
			break;
		}
		if (rc != SQLITE_OK)
			return sq_error(c, "bind");
	}
	return 0;
}

static int
step_error(struct store_conn *c, int rc, const char *sql)
{
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
		err_set("%s: %s", c->path, sqlite3_errmsg(c->db));
		return STORE_E_EXISTS;
	}
	sq_error(c, "statement");
	err_prefix("%.80s", sql);
	return STORE_E_ERROR;
}

static int
sq_exec(struct store_conn *c, const char *sql, const struct store_val *p,
	size_t n, int64_t *changes, int64_t *last_id)
{
	sqlite3_stmt *st;
	bool owned;
	int rc, ret = 0;

	st = prepare(c, sql, &owned);
	if (!st)
		return STORE_E_ERROR;
	if (bind(c, st, p, n) < 0) {
		ret = STORE_E_ERROR;
		goto cleanup;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE) {
		ret = step_error(c, rc, sql);
		goto cleanup;
	}
	if (changes)
		*changes = sqlite3_changes64(c->db);
	if (last_id)
		*last_id = sqlite3_last_insert_rowid(c->db);
cleanup:
	done_with(st, owned);
	return ret;
}

static int
sq_query(struct store_conn *c, const char *sql, const struct store_val *p,
	 size_t n, store_row_fn fn, void *ctx)
{
	const char *vals[MAX_COLS];
	size_t lens[MAX_COLS];
	int64_t ints[MAX_COLS];
	bool is_int[MAX_COLS];
	struct store_row row = {0, vals, lens, ints, is_int};
	sqlite3_stmt *st;
	bool owned;
	int rc, ret = 0;

	st = prepare(c, sql, &owned);
	if (!st)
		return -1;
	if (bind(c, st, p, n) < 0) {
		ret = -1;
		goto cleanup;
	}
	row.ncols = (size_t)sqlite3_column_count(st);
	if (row.ncols > MAX_COLS)
		fatal("store-sqlite: query with %zu columns", row.ncols);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (size_t i = 0; i < row.ncols; i++) {
			int type = sqlite3_column_type(st, (int)i);

			/* an INTEGER value as it is: text would be made
			 * (and allocated) only for store.c to parse it */
			is_int[i] = type == SQLITE_INTEGER;
			if (is_int[i]) {
				ints[i] = sqlite3_column_int64(st, (int)i);
				vals[i] = NULL;
				lens[i] = 0;
				continue;
			}
			/* text first, then its length (SQLite's rule) */
			vals[i] = (const char *)sqlite3_column_text(st, (int)i);
			lens[i] = (size_t)sqlite3_column_bytes(st, (int)i);
			if (!vals[i] && type != SQLITE_NULL) {
				ret = sq_error(c, "reading a column");
				goto cleanup;
			}
		}
		if (fn(ctx, &row) < 0) {
			ret = -1;
			goto cleanup;
		}
	}
	if (rc != SQLITE_DONE) {
		step_error(c, rc, sql);
		ret = -1;
	}
cleanup:
	done_with(st, owned);
	return ret;
}

static int
sq_begin(struct store_conn *c, bool write)
{
	return sq_exec(c, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL, 0, NULL,
		       NULL) < 0 ? -1 : 0;
}

static int
sq_commit(struct store_conn *c)
{
	if (sq_exec(c, "COMMIT", NULL, 0, NULL, NULL) < 0) {
		if (!sqlite3_get_autocommit(c->db))
			sq_exec(c, "ROLLBACK", NULL, 0, NULL, NULL);
		return -1;
	}
	return 0;
}

static void
sq_rollback(struct store_conn *c)
{
	if (sqlite3_get_autocommit(c->db))
		return; /* SQLite already rolled back (e.g. after SQLITE_FULL) */
	if (exec_simple(c, "ROLLBACK") < 0)
		log_warn("%s", err_msg());
}

static int
sq_now_ms(struct store_conn *c, int64_t *out)
{
	(void)c;
	*out = util_wall_ms();
	return 0;
}

static int
sq_migrate_begin(struct store_conn *c)
{
	return sq_begin(c, true);
}

static int
sq_migrate_end(struct store_conn *c, bool ok)
{
	if (ok)
		return sq_commit(c);
	sq_rollback(c);
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
sq_table_exists(struct store_conn *c, const char *table, bool *out)
{
	*out = false;
	return sq_query(c, "SELECT name FROM sqlite_master WHERE type = 'table' "
			   "AND name = ?",
			(struct store_val[]){SV_TEXT(table)}, 1, exists_cb, out);
}

/*
 * The schema, version by version (docs/state.md describes it). Never edit a
 * released version: add the next one.
 */
static const char *const v1[] = {
	"CREATE TABLE schema_version (version INTEGER NOT NULL)",
	"CREATE TABLE instance_groups ("
	" name TEXT NOT NULL PRIMARY KEY,"
	" desired INTEGER NOT NULL,"
	" paused INTEGER NOT NULL DEFAULT 0,"
	" config_gen INTEGER NOT NULL DEFAULT 0,"
	" created_ms INTEGER NOT NULL,"
	" updated_ms INTEGER NOT NULL)",
	"CREATE TABLE instances ("
	" id TEXT NOT NULL PRIMARY KEY,"
	" group_name TEXT NOT NULL REFERENCES instance_groups(name),"
	" host TEXT,"
	" domain TEXT,"
	" state TEXT NOT NULL,"
	" secret_hash TEXT,"
	" created_ms INTEGER NOT NULL,"
	" updated_ms INTEGER NOT NULL,"
	" ready_ms INTEGER NOT NULL DEFAULT 0,"
	" heartbeat_ms INTEGER NOT NULL DEFAULT 0,"
	" busy INTEGER NOT NULL DEFAULT 0,"
	" busy_since_ms INTEGER NOT NULL DEFAULT 0,"
	" config_gen INTEGER NOT NULL DEFAULT 0,"
	" address TEXT,"
	" notes TEXT)",
	"CREATE INDEX instances_group_state ON instances (group_name, state)",
	"CREATE INDEX instances_host ON instances (host)",
	"CREATE TABLE events ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" time_ms INTEGER NOT NULL,"
	" group_name TEXT,"
	" instance_id TEXT,"
	" kind TEXT NOT NULL,"
	" message TEXT NOT NULL,"
	" details TEXT)",
	"CREATE INDEX events_group ON events (group_name, id)",
	NULL,
};

static const char *const v2[] = {
	"CREATE TABLE journal ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" instance_id TEXT NOT NULL REFERENCES instances(id),"
	" action TEXT NOT NULL,"
	" step TEXT NOT NULL,"
	" status TEXT NOT NULL,"
	" payload TEXT,"
	" error TEXT,"
	" created_ms INTEGER NOT NULL,"
	" updated_ms INTEGER NOT NULL,"
	/* = instance_id while pending, else NULL: one action in flight */
	" pending_instance TEXT UNIQUE)",
	"CREATE INDEX journal_status ON journal (status, id)",
	"CREATE INDEX journal_instance ON journal (instance_id)",
	"CREATE TABLE leases ("
	" name TEXT NOT NULL PRIMARY KEY,"
	" holder TEXT NOT NULL,"
	" epoch INTEGER NOT NULL,"
	" expires_ms INTEGER NOT NULL,"
	" acquired_ms INTEGER NOT NULL)",
	NULL,
};

/* The installation id (one row, minted by store.c right after this). */
static const char *const v3[] = {
	"CREATE TABLE installation ("
	" singleton INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),"
	" id TEXT NOT NULL,"
	" created_ms INTEGER NOT NULL)",
	NULL,
};

/* The configuration generation (one row, written by store.c right after
 * this from the generations groups and instances already carry). */
static const char *const v4[] = {
	"CREATE TABLE config_generation ("
	" singleton INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),"
	" gen INTEGER NOT NULL,"
	" updated_ms INTEGER NOT NULL)",
	NULL,
};

/* Predictive scaling's load history (store_load_put()). */
static const char *const v5[] = {
	"CREATE TABLE load_history ("
	" group_name TEXT NOT NULL,"
	" minute INTEGER NOT NULL,"
	" load_milli INTEGER NOT NULL,"
	" PRIMARY KEY (group_name, minute))",
	"CREATE INDEX load_history_minute ON load_history (minute)",
	NULL,
};

/* Lifecycle hook waits (store_hook_wait_*): one row per waiting instance. */
static const char *const v6[] = {
	"CREATE TABLE hook_waits ("
	" instance_id TEXT NOT NULL PRIMARY KEY,"
	" hook TEXT NOT NULL,"
	" deadline_ms INTEGER NOT NULL,"
	" token_hash TEXT NOT NULL,"
	" result TEXT NULL,"
	" created_ms INTEGER NOT NULL,"
	" updated_ms INTEGER NOT NULL)",
	NULL,
};

/* Instances in the order every listing returns them (ORDER BY created_ms,
 * id), for all groups (the scaler's listing each tick) and for one: the
 * listing reads them in order instead of sorting every row. And the
 * instances table's generation, bumped by triggers in the transaction of
 * every change to it by any connection or process, so that a handle can
 * keep its last listing while the generation stays (store_instance_cache).
 * Self-contained (renumber it freely before it is released). */
static const char *const v7[] = {
	"CREATE INDEX IF NOT EXISTS instances_created ON instances (created_ms, id)",
	"CREATE INDEX IF NOT EXISTS instances_group_created ON instances (group_name, created_ms, id)",
	"CREATE TABLE instances_version ("
	" singleton INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),"
	" gen INTEGER NOT NULL)",
	"INSERT INTO instances_version (singleton, gen) VALUES (1, 0)",
	"CREATE TRIGGER instances_gen_insert AFTER INSERT ON instances "
	"BEGIN UPDATE instances_version SET gen = gen + 1; END",
	"CREATE TRIGGER instances_gen_update AFTER UPDATE ON instances "
	"BEGIN UPDATE instances_version SET gen = gen + 1; END",
	"CREATE TRIGGER instances_gen_delete AFTER DELETE ON instances "
	"BEGIN UPDATE instances_version SET gen = gen + 1; END",
	NULL,
};

/* Instance refresh (store_refresh_*, store_template_*): the template each
 * instance was built from, every template a group used (a rollback
 * builds from the previous one after a restart), and each group's last
 * refresh. */
static const char *const v8[] = {
	"ALTER TABLE instances ADD COLUMN template_hash TEXT NULL",
	"CREATE TABLE group_templates ("
	" group_name TEXT NOT NULL,"
	" hash TEXT NOT NULL,"
	" body TEXT NOT NULL,"
	" created_ms INTEGER NOT NULL,"
	" PRIMARY KEY (group_name, hash))",
	"CREATE TABLE refreshes ("
	" group_name TEXT NOT NULL PRIMARY KEY,"
	" state TEXT NOT NULL,"
	" config_template TEXT NOT NULL,"
	" target TEXT NOT NULL,"
	" previous TEXT NULL,"
	" all_instances INTEGER NOT NULL,"
	" max_unavailable TEXT NOT NULL,"
	" surge INTEGER NOT NULL,"
	" min_healthy INTEGER NOT NULL,"
	" rollback_after INTEGER NOT NULL,"
	" checkpoints TEXT NOT NULL,"
	" checkpoint_done INTEGER NOT NULL,"
	" total INTEGER NOT NULL,"
	" failures INTEGER NOT NULL,"
	" batches INTEGER NOT NULL,"
	" started_ms INTEGER NOT NULL,"
	" updated_ms INTEGER NOT NULL,"
	" message TEXT NOT NULL)",
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

const struct store_driver store_driver_sqlite = {
	.name = "sqlite",
	/* One: writers of one process would otherwise wait for each other
	 * in SQLite's busy handler (sleeps of 1-100 ms) instead of a mutex,
	 * and reads take microseconds anyway. */
	.max_conns = 1,
	.open = sq_open,
	.check_url = sq_check_url,
	.close = sq_close,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.exec = sq_exec,
	.query = sq_query,
	.now_ms = sq_now_ms,
	.migrate_begin = sq_migrate_begin,
	.migrate_end = sq_migrate_end,
	.table_exists = sq_table_exists,
	.instances_gen = true,
	.migrations = migrations,
	.nmigrations = ARRAY_SIZE(migrations),
};
