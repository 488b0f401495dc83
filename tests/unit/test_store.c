/*
 * The state-store test suite, run against every backend:
 *   test_store sqlite    SQLite on a temporary file (suite 'unit')
 *   test_store mariadb   the MariaDB of scripts/services/mariadb.sh, found
 *                        through VA_TEST_MARIADB_URL and
 *                        VA_TEST_MARIADB_PASSWORD_FILE (or _PASSWORD),
 *                        VA_TEST_MARIADB_SOCKET (suite 'integration');
 *                        exits 77 (skip) when they are not set.
 * The same cases run on both: CRUD, compare-and-set conflicts, illegal
 * transitions, journal recovery, events, the lease and its fencing,
 * migrations from hand-made v1, v2 and v3 schemas, the configuration
 * generation, corrupted rows written with raw SQL, concurrent handles, one
 * handle shared by threads (its connection pool on MariaDB), and
 * (MariaDB) a dropped connection.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <mysql.h>
#include <sqlite3.h>

#include "log.h"
#include "store.h"
#include "util.h"

#define STORE_TEST_DB "va_test_store"

static bool mariadb;
static char *base_url;     /* the backend's URL for this run */
static char *password;     /* MariaDB only */
static const char *socket_path;
static char tmpdir[256];
static int db_counter;
static char *sqlite_path;  /* current test's file (SQLite) */
static MYSQL *raw_my;      /* raw connection for hand-written SQL */
static char cur_url[512];  /* the URL of the current test's database */

/* ---- raw SQL, bypassing the store ------------------------------------ */

static void
raw_exec(const char *sql)
{
	if (mariadb) {
		if (mysql_query(raw_my, sql) != 0)
			fail_msg("raw SQL failed: %s: %s", sql,
				 mysql_error(raw_my));
		MYSQL_RES *res = mysql_store_result(raw_my);
		if (res)
			mysql_free_result(res);
	} else {
		sqlite3 *db = NULL;
		char *msg = NULL;

		assert_int_equal(sqlite3_open(sqlite_path, &db), SQLITE_OK);
		sqlite3_busy_timeout(db, 5000);
		if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
			fail_msg("raw SQL failed: %s: %s", sql, msg);
		sqlite3_close(db);
	}
}

static void
raw_connect(void)
{
	char user[64], host[128], db[64];
	unsigned port = 3306;

	if (sscanf(base_url, "mysql://%63[^@]@%127[^:/]:%u/%63s", user, host,
		   &port, db) != 4 &&
	    sscanf(base_url, "mysql://%63[^@]@%127[^:/]/%63s", user, host,
		   db) != 3)
		fail_msg("cannot parse VA_TEST_MARIADB_URL '%s'", base_url);
	raw_my = mysql_init(NULL);
	assert_non_null(raw_my);
	if (!mysql_real_connect(raw_my, host, user, password, db, port, NULL, 0))
		fail_msg("raw connection to %s: %s", base_url,
			 mysql_error(raw_my));
}

/* A fresh, empty database for each test; returns the URL to open. */
static const char *
fresh_db(void)
{
	char *url = cur_url;

	if (mariadb) {
		raw_exec("SET FOREIGN_KEY_CHECKS = 0");
		raw_exec("DROP TABLE IF EXISTS journal, events, instances, "
			 "instance_groups, leases, schema_version, "
			 "installation, config_generation, load_history, hook_waits, "
			 "group_templates, refreshes");
		raw_exec("SET FOREIGN_KEY_CHECKS = 1");
		snprintf(url, sizeof(cur_url), "%s", base_url);
	} else {
		free(sqlite_path);
		sqlite_path = xasprintf("%s/t%d/state.db", tmpdir, db_counter++);
		snprintf(url, sizeof(cur_url), "sqlite://%s", sqlite_path);
	}
	return url;
}

static struct store *
open_ok(const char *url)
{
	struct store *s = store_open(url, password);

	if (!s)
		fail_msg("store_open(%s): %s", url, err_msg());
	return s;
}

static int
setup(void **state)
{
	*state = open_ok(fresh_db());
	return 0;
}

/* Child processes of the HA test, killed whatever way a test ends. */
static pid_t children[2];

static int
teardown(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(children); i++) {
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
			children[i] = 0;
		}
	}
	store_close(*state);
	return 0;
}

static void
expect_msg(const char *needle)
{
	if (!strstr(err_msg(), needle))
		fail_msg("expected '%s' in the error, got: %s", needle,
			 err_msg());
}

static void
put_group(struct store *s, const char *name, int64_t desired)
{
	struct store_group g = {(char *)name, desired, false, 1, 0, 0};

	assert_int_equal(store_group_upsert(s, &g), STORE_OK);
}

/* An instance in `state` on host kvm1 (NULL host for requested). */
static void
put_instance(struct store *s, const char *group,
	     enum store_instance_state state, char id[STORE_ID_LEN + 1])
{
	struct store_instance in;

	memset(&in, 0, sizeof(in));
	assert_int_equal(store_instance_new_id(id), 0);
	in.id = id;
	in.group = (char *)group;
	in.state = state;
	in.host = state == STORE_INSTANCE_REQUESTED ? NULL : (char *)"kvm1";
	if (store_instance_put(s, &in) != STORE_OK)
		fail_msg("put: %s", err_msg());
}

/* ---- URL handling ----------------------------------------------------- */

static void
test_bad_urls(void **state)
{
	static const struct {
		const char *url;
		const char *msg;
	} cases[] = {
		{"", "empty"},
		{"postgres://u@h/db", "unsupported scheme"},
		{"/var/lib/state.db", "unsupported scheme"},
		{"sqlite://relative.db", "absolute"},
		{"sqlite://", "absolute"},
		{"sqlite:///", "absolute"},
		{"sqlite:///tmp/x.db?mode=ro", "query"},
		{"sqlite:///tmp/dir/", "directory"},
		{"mysql://@host/db", "bad user"},
		{"mysql://host/db;x", "bad database name"},
		{"mysql://va:secret@host/db", "must not carry a password"},
		{"mysql://va@host", "needs a database"},
		{"mysql://va@host:0/db", "port"},
		{"mysql://va@host:99999/db", "port"},
		{"mysql://va@host:x/db", "port"},
		{"mysql://va@host/", "bad database name"},
		{"mysql://va@host/db;drop", "bad database name"},
		{"mysql://va@ho st/db", "bad host"},
		{"mysql://va@host/db?ssl=1", "only option"},
		{"mysql://va@127.0.0.1/db?socket=/tmp/s", "needs the host"},
		{"mysql://va@localhost/db?socket=rel", "only option"},
		{"sqlite:///tmp/a\nb.db", "control character"},
		{"mysql://va@[::1/db", "IPv6"},
		{"mysql://va@[::1]x/db", "junk"},
		{"mysql://va@host:/db", "port"},
	};

	static const char *const good[] = {
		"sqlite:///var/lib/virt-autoscaler/state.db",
		"mysql://va@127.0.0.1:3307/va_test",
		"mysql://va@db.example.net/autoscaler",
		"mysql://db.example.net/autoscaler",
		"mysql://va@[::1]:3306/x",
		"mysql://va@localhost/db?socket=/run/mysqld/mysqld.sock",
		"mariadb://va@h/db",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct store *s = store_open(cases[i].url, NULL);

		if (s)
			fail_msg("store_open('%s') succeeded", cases[i].url);
		expect_msg(cases[i].msg);
		assert_int_equal(store_url_check(cases[i].url), -1);
		expect_msg(cases[i].msg);
	}
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (store_url_check(good[i]) != 0)
			fail_msg("store_url_check('%s'): %s", good[i], err_msg());
	assert_int_equal(store_url_check(NULL), -1);
}

static void
test_sqlite_file(void **state)
{
	struct store *s;
	struct stat st;
	char *path, *url, *wal;

	(void)state;
	if (mariadb)
		skip();
	path = xasprintf("%s/new/deeper/state.db", tmpdir);
	url = xasprintf("sqlite://%s", path);
	s = open_ok(url);
	put_group(s, "web", 1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	wal = xasprintf("%s-wal", path);
	assert_int_equal(stat(wal, &st), 0); /* WAL mode */
	assert_int_equal(st.st_mode & 0777, 0600);
	{
		/* A second handle on the file must leave the first one's
		 * locks alone (closing any descriptor of the file drops them
		 * all, fcntl(2)); without them, another process that opens
		 * and closes the database takes itself for the last user and
		 * deletes the -wal and -shm files under both. */
		struct store *s2 = open_ok(url);
		pid_t pid;
		int status;

		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			/* a process of its own: a forked child would share
			 * SQLite's knowledge of our locks */
			execl("/proc/self/exe", "test_store", "--touch", path,
			      (char *)NULL);
			_exit(127);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		assert_int_equal(stat(wal, &st), 0);
		store_close(s2);
	}
	*strrchr(path, '/') = '\0';
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_string_equal(store_backend(s), "sqlite");
	store_close(s);
	/* Not a database at all. */
	free(path);
	path = xasprintf("%s/junk.db", tmpdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("this is not an SQLite database, just some text........"
	      "..........................................................",
	      f);
	fclose(f);
	free(url);
	url = xasprintf("sqlite://%s", path);
	assert_null(store_open(url, NULL));
	expect_msg("not a database");
	free(path);
	free(url);
	free(wal);
}

/* ---- names and the lifecycle table ------------------------------------ */

static void
test_names(void **state)
{
	static const struct {
		enum store_instance_state from, to;
		bool ok;
	} t[] = {
		{STORE_INSTANCE_REQUESTED, STORE_INSTANCE_PROVISIONING, true},
		{STORE_INSTANCE_PROVISIONING, STORE_INSTANCE_BOOTING, true},
		{STORE_INSTANCE_BOOTING, STORE_INSTANCE_READY, true},
		{STORE_INSTANCE_READY, STORE_INSTANCE_DRAINING, true},
		{STORE_INSTANCE_DRAINING, STORE_INSTANCE_DELETING, true},
		{STORE_INSTANCE_DELETING, STORE_INSTANCE_GONE, true},
		{STORE_INSTANCE_READY, STORE_INSTANCE_UNHEALTHY, true},
		{STORE_INSTANCE_UNHEALTHY, STORE_INSTANCE_READY, true},
		{STORE_INSTANCE_READY, STORE_INSTANCE_LOST, true},
		{STORE_INSTANCE_LOST, STORE_INSTANCE_READY, true},
		{STORE_INSTANCE_REQUESTED, STORE_INSTANCE_READY, false},
		{STORE_INSTANCE_GONE, STORE_INSTANCE_REQUESTED, false},
		{STORE_INSTANCE_GONE, STORE_INSTANCE_READY, false},
		{STORE_INSTANCE_DELETING, STORE_INSTANCE_READY, false},
		{STORE_INSTANCE_READY, STORE_INSTANCE_READY, false},
		{STORE_INSTANCE_READY, STORE_INSTANCE_BOOTING, false},
		{STORE_INSTANCE_READY, STORE_INSTANCE_LAST, false},
		{STORE_INSTANCE_LAST, STORE_INSTANCE_READY, false},
	};
	enum store_instance_state st;

	(void)state;
	for (int i = 0; i < STORE_INSTANCE_LAST; i++) {
		const char *n = store_instance_state_name(i);

		assert_non_null(n);
		assert_int_equal(store_instance_state_parse(n, &st), 0);
		assert_int_equal(st, i);
	}
	assert_null(store_instance_state_name(STORE_INSTANCE_LAST));
	assert_int_equal(store_instance_state_parse("Ready", &st), -1);
	assert_int_equal(store_instance_state_parse("", &st), -1);
	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		assert_int_equal(store_instance_transition_ok(t[i].from, t[i].to),
				 t[i].ok);
	/* gone is terminal */
	for (int i = 0; i < STORE_INSTANCE_LAST; i++)
		assert_false(store_instance_transition_ok(STORE_INSTANCE_GONE, i));
	for (int i = 0; i < STORE_STEP_LAST; i++) {
		enum store_journal_step s;

		assert_int_equal(store_journal_step_parse(
					 store_journal_step_name(i), &s), 0);
		assert_int_equal(s, i);
	}
	assert_true(store_journal_step_valid(STORE_JOURNAL_PROVISION,
					     STORE_STEP_STARTED));
	assert_false(store_journal_step_valid(STORE_JOURNAL_PROVISION,
					      STORE_STEP_DOMAIN_UNDEFINED));
	assert_false(store_journal_step_valid(STORE_JOURNAL_REMOVE,
					      STORE_STEP_VOLUME_CREATED));
	assert_string_equal(store_rc_name(STORE_E_FENCED), "fenced");
	assert_string_equal(store_rc_name(42), "unknown");
}

/* ---- groups ----------------------------------------------------------- */

static void
test_groups(void **state)
{
	struct store *s = *state;
	struct store_group g;
	struct store_group_list l;
	int v = 0;

	assert_int_equal(store_schema_version(s, &v), STORE_OK);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	put_group(s, "web", 3);
	put_group(s, "db", 1);
	put_group(s, "Web", 2); /* names are case-sensitive on both backends */
	assert_int_equal(store_group_get(s, "web", &g), STORE_OK);
	assert_string_equal(g.name, "web");
	assert_int_equal(g.desired, 3);
	assert_false(g.paused);
	assert_int_equal(g.config_gen, 1);
	assert_true(g.created_ms > 0);
	store_group_release(&g);

	/* upsert overwrites */
	struct store_group up = {(char *)"web", 5, true, 7, 0, 0};
	assert_int_equal(store_group_upsert(s, &up), STORE_OK);
	assert_int_equal(store_group_set_desired(s, "web", 4), STORE_OK);
	assert_int_equal(store_group_set_paused(s, "web", false), STORE_OK);
	assert_int_equal(store_group_get(s, "web", &g), STORE_OK);
	assert_int_equal(g.desired, 4);
	assert_false(g.paused);
	assert_int_equal(g.config_gen, 7);
	store_group_release(&g);
	assert_int_equal(store_group_set_paused(s, "db", true), STORE_OK);

	assert_int_equal(store_group_list(s, &l), STORE_OK);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0].name, "Web");
	assert_string_equal(l.v[1].name, "db");
	assert_true(l.v[1].paused);
	assert_string_equal(l.v[2].name, "web");
	store_group_list_release(&l);

	assert_int_equal(store_group_get(s, "nope", &g), STORE_E_NOTFOUND);
	expect_msg("nope");
	assert_int_equal(store_group_set_desired(s, "nope", 1), STORE_E_NOTFOUND);
	assert_int_equal(store_group_set_desired(s, "web", -1), STORE_E_ERROR);
	assert_int_equal(store_group_set_desired(s, "web", 2000000), STORE_E_ERROR);
	struct store_group bad = {(char *)"we b", 1, false, 0, 0, 0};
	assert_int_equal(store_group_upsert(s, &bad), STORE_E_ERROR);
	expect_msg("character");
	bad.name = (char *)"0123456789012345678901234567890123456789012345678901234567890123";
	assert_int_equal(store_group_upsert(s, &bad), STORE_E_ERROR);
	bad.name = (char *)"x'; DROP TABLE instances; --";
	assert_int_equal(store_group_get(s, bad.name, &g), STORE_E_ERROR);
}

/* ---- instances -------------------------------------------------------- */

static void
test_instances(void **state)
{
	struct store *s = *state;
	struct store_instance in, got;
	struct store_instance_list l;
	char id[STORE_ID_LEN + 1], id2[STORE_ID_LEN + 1], id3[STORE_ID_LEN + 1];
	static const char hash[] =
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

	put_group(s, "web", 2);
	put_group(s, "db", 1);
	memset(&in, 0, sizeof(in));
	assert_int_equal(store_instance_new_id(id), 0);
	in.id = id;
	in.group = (char *)"web";
	in.host = (char *)"kvm1";
	in.domain = (char *)"va-web-1";
	in.state = STORE_INSTANCE_BOOTING;
	in.secret_hash = (char *)hash;
	in.created_ms = 1000;
	in.config_gen = 3;
	in.address = (char *)"192.0.2.10";
	in.notes = (char *)"adopted\nfrom kvm1 with 'quotes', \\ backslash, "
			   "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x96\xa5";
	assert_int_equal(store_instance_put(s, &in), STORE_OK);
	assert_int_equal(store_instance_get(s, id, &got), STORE_OK);
	assert_string_equal(got.id, id);
	assert_string_equal(got.group, "web");
	assert_string_equal(got.host, "kvm1");
	assert_string_equal(got.domain, "va-web-1");
	assert_int_equal(got.state, STORE_INSTANCE_BOOTING);
	assert_string_equal(got.secret_hash, hash);
	assert_int_equal(got.created_ms, 1000);
	assert_true(got.updated_ms > 1000);
	assert_int_equal(got.ready_ms, 0);
	assert_int_equal(got.config_gen, 3);
	assert_string_equal(got.address, "192.0.2.10");
	assert_string_equal(got.notes, in.notes);
	store_instance_release(&got);

	/* put again: attributes change, state may not */
	in.address = NULL;
	in.host = (char *)"kvm2";
	assert_int_equal(store_instance_put(s, &in), STORE_OK);
	assert_int_equal(store_instance_get(s, id, &got), STORE_OK);
	assert_null(got.address);
	assert_string_equal(got.host, "kvm2");
	store_instance_release(&got);
	in.state = STORE_INSTANCE_READY;
	assert_int_equal(store_instance_put(s, &in), STORE_E_CONFLICT);
	expect_msg("set_state");
	in.state = STORE_INSTANCE_BOOTING;
	in.group = (char *)"db";
	assert_int_equal(store_instance_put(s, &in), STORE_E_CONFLICT);
	in.group = (char *)"web";

	/* validation */
	in.group = (char *)"nogroup";
	char idx[STORE_ID_LEN + 1];
	assert_int_equal(store_instance_new_id(idx), 0);
	in.id = idx;
	assert_int_equal(store_instance_put(s, &in), STORE_E_NOTFOUND);
	in.group = (char *)"web";
	in.host = NULL;
	assert_int_equal(store_instance_put(s, &in), STORE_E_ERROR);
	expect_msg("needs a host");
	in.host = (char *)"kvm1";
	in.id = (char *)"ABCDEF00-0000-4000-8000-000000000000";
	assert_int_equal(store_instance_put(s, &in), STORE_E_ERROR);
	expect_msg("UUID");
	in.id = idx;
	in.secret_hash = (char *)"short";
	assert_int_equal(store_instance_put(s, &in), STORE_E_ERROR);
	in.secret_hash = NULL;
	in.domain = (char *)"bad\001name";
	assert_int_equal(store_instance_put(s, &in), STORE_E_ERROR);
	expect_msg("control character");
	in.domain = NULL;
	static const char *const bad_utf8[] = {
		"caf\xe9",              /* Latin-1 */
		"\xc0\xaf",             /* overlong '/' */
		"\xed\xa0\x80",         /* surrogate */
		"\xf4\x90\x80\x80",     /* above U+10FFFF */
		"\xe2\x82",             /* truncated */
	};
	for (size_t k = 0; k < ARRAY_SIZE(bad_utf8); k++) {
		in.notes = (char *)bad_utf8[k];
		assert_int_equal(store_instance_put(s, &in), STORE_E_ERROR);
		expect_msg("UTF-8");
	}
	in.notes = NULL;
	in.domain = NULL;
	assert_int_equal(store_instance_get(s, idx, &got), STORE_E_NOTFOUND);

	put_instance(s, "web", STORE_INSTANCE_REQUESTED, id2);
	put_instance(s, "db", STORE_INSTANCE_READY, id3);

	struct store_instance_filter f = {"web", NULL, 0};
	assert_int_equal(store_instance_list(s, &f, &l), STORE_OK);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0].id, id); /* created_ms 1000: oldest */
	assert_string_equal(l.v[1].id, id2);
	assert_null(l.v[1].host);
	store_instance_list_release(&l);
	f = (struct store_instance_filter){NULL, NULL,
		STORE_STATE_BIT(STORE_INSTANCE_READY) |
		STORE_STATE_BIT(STORE_INSTANCE_REQUESTED)};
	assert_int_equal(store_instance_list(s, &f, &l), STORE_OK);
	assert_int_equal(l.n, 2);
	store_instance_list_release(&l);
	f = (struct store_instance_filter){"db", "kvm1",
		STORE_STATE_BIT(STORE_INSTANCE_READY)};
	assert_int_equal(store_instance_list(s, &f, &l), STORE_OK);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].id, id3);
	store_instance_list_release(&l);
	f = (struct store_instance_filter){NULL, "kvm2", 0};
	assert_int_equal(store_instance_list(s, &f, &l), STORE_OK);
	assert_int_equal(l.n, 1);
	store_instance_list_release(&l);
	assert_int_equal(store_instance_list(s, NULL, &l), STORE_OK);
	assert_int_equal(l.n, 3);
	store_instance_list_release(&l);
	f = (struct store_instance_filter){NULL, NULL, STORE_STATES_NOT_GONE};
	assert_int_equal(store_instance_list(s, &f, &l), STORE_OK);
	assert_int_equal(l.n, 3);
	store_instance_list_release(&l);
	f = (struct store_instance_filter){NULL, NULL, 1u << 30};
	assert_int_equal(store_instance_list(s, &f, &l), STORE_E_ERROR);
}

static void
test_cas(void **state)
{
	struct store *s = *state;
	struct store_instance got;
	char id[STORE_ID_LEN + 1], id2[STORE_ID_LEN + 1];

	put_group(s, "web", 1);
	put_instance(s, "web", STORE_INSTANCE_REQUESTED, id);
	/* no host yet: cannot leave requested for provisioning */
	assert_int_equal(store_instance_set_state(s, id, STORE_INSTANCE_REQUESTED,
						  STORE_INSTANCE_PROVISIONING),
			 STORE_E_ILLEGAL);
	expect_msg("no host");
	assert_int_equal(store_instance_get(s, id, &got), STORE_OK);
	got.host = xstrdup("kvm1");
	assert_int_equal(store_instance_put(s, &got), STORE_OK);
	store_instance_release(&got);

	assert_int_equal(store_instance_set_state(s, id, STORE_INSTANCE_REQUESTED,
						  STORE_INSTANCE_PROVISIONING),
			 STORE_OK);
	/* a second actor with the same expectation loses */
	assert_int_equal(store_instance_set_state(s, id, STORE_INSTANCE_REQUESTED,
						  STORE_INSTANCE_PROVISIONING),
			 STORE_E_CONFLICT);
	expect_msg("is provisioning, not requested");
	/* illegal transitions are refused before touching the database */
	assert_int_equal(store_instance_set_state(s, id,
						  STORE_INSTANCE_PROVISIONING,
						  STORE_INSTANCE_READY),
			 STORE_E_ILLEGAL);
	assert_int_equal(store_instance_set_state(s, id, STORE_INSTANCE_GONE,
						  STORE_INSTANCE_READY),
			 STORE_E_ILLEGAL);
	assert_int_equal(store_instance_get(s, id, &got), STORE_OK);
	assert_int_equal(got.state, STORE_INSTANCE_PROVISIONING);
	assert_int_equal(got.ready_ms, 0);
	store_instance_release(&got);

	assert_int_equal(store_instance_set_state(s, id,
						  STORE_INSTANCE_PROVISIONING,
						  STORE_INSTANCE_BOOTING), STORE_OK);
	assert_int_equal(store_instance_set_state(s, id, STORE_INSTANCE_BOOTING,
						  STORE_INSTANCE_READY), STORE_OK);
	assert_int_equal(store_instance_get(s, id, &got), STORE_OK);
	int64_t ready = got.ready_ms;
	assert_true(ready > 0);
	store_instance_release(&got);
	assert_int_equal(store_instance_set_state(s, id, STORE_INSTANCE_READY,
						  STORE_INSTANCE_UNHEALTHY), STORE_OK);
	assert_int_equal(store_instance_set_state(s, id, STORE_INSTANCE_UNHEALTHY,
						  STORE_INSTANCE_READY), STORE_OK);
	assert_int_equal(store_instance_get(s, id, &got), STORE_OK);
	assert_int_equal(got.ready_ms, ready); /* the first time only */
	store_instance_release(&got);
	assert_int_equal(store_instance_set_state(s, id, STORE_INSTANCE_READY,
						  STORE_INSTANCE_DRAINING), STORE_OK);
	assert_int_equal(store_instance_set_state(s, id, STORE_INSTANCE_DRAINING,
						  STORE_INSTANCE_DELETING), STORE_OK);
	assert_int_equal(store_instance_set_state(s, id, STORE_INSTANCE_DELETING,
						  STORE_INSTANCE_GONE), STORE_OK);
	assert_int_equal(store_instance_set_state(s, id, STORE_INSTANCE_GONE,
						  STORE_INSTANCE_DELETING),
			 STORE_E_ILLEGAL);

	assert_int_equal(store_instance_new_id(id2), 0);
	assert_int_equal(store_instance_set_state(s, id2, STORE_INSTANCE_READY,
						  STORE_INSTANCE_DRAINING),
			 STORE_E_NOTFOUND);
	/* requested -> gone needs no host */
	put_instance(s, "web", STORE_INSTANCE_REQUESTED, id2);
	assert_int_equal(store_instance_set_state(s, id2, STORE_INSTANCE_REQUESTED,
						  STORE_INSTANCE_GONE), STORE_OK);
}

static void
test_heartbeat(void **state)
{
	struct store *s = *state;
	struct store_instance got;
	char id[STORE_ID_LEN + 1], id2[STORE_ID_LEN + 1];

	put_group(s, "web", 1);
	put_instance(s, "web", STORE_INSTANCE_READY, id);
	assert_int_equal(store_instance_heartbeat(s, id, 5000, false), STORE_OK);
	assert_int_equal(store_instance_heartbeat(s, id, 6000, true), STORE_OK);
	assert_int_equal(store_instance_heartbeat(s, id, 7000, true), STORE_OK);
	assert_int_equal(store_instance_get(s, id, &got), STORE_OK);
	assert_int_equal(got.heartbeat_ms, 7000);
	assert_true(got.busy);
	assert_int_equal(got.busy_since_ms, 6000); /* since it became busy */
	store_instance_release(&got);
	/* a late heartbeat does not move the clock back */
	assert_int_equal(store_instance_heartbeat(s, id, 6500, false), STORE_OK);
	assert_int_equal(store_instance_get(s, id, &got), STORE_OK);
	assert_int_equal(got.heartbeat_ms, 7000);
	assert_false(got.busy);
	assert_int_equal(got.busy_since_ms, 0);
	store_instance_release(&got);

	put_instance(s, "web", STORE_INSTANCE_DELETING, id2);
	assert_int_equal(store_instance_heartbeat(s, id2, 8000, false),
			 STORE_E_CONFLICT);
	expect_msg("deleting");
	assert_int_equal(store_instance_new_id(id2), 0);
	assert_int_equal(store_instance_heartbeat(s, id2, 8000, false),
			 STORE_E_NOTFOUND);
	assert_int_equal(store_instance_heartbeat(s, id, 0, false), STORE_E_ERROR);

	/* a batch: per-item results, one transaction */
	char deleting[STORE_ID_LEN + 1];
	put_instance(s, "web", STORE_INSTANCE_DELETING, deleting);
	struct store_heartbeat hb[] = {
		{id, 9000, true, 99},
		{deleting, 9000, false, 99},
		{id2, 9000, false, 99},      /* not in the store */
		{"garbage", 9000, false, 99},
		{id, 9500, true, 99},
	};
	assert_int_equal(store_instance_heartbeat_batch(s, hb, ARRAY_SIZE(hb)),
			 STORE_OK);
	assert_int_equal(hb[0].rc, STORE_OK);
	assert_int_equal(hb[1].rc, STORE_E_CONFLICT);
	assert_int_equal(hb[2].rc, STORE_E_NOTFOUND);
	assert_int_equal(hb[3].rc, STORE_E_ERROR);
	assert_int_equal(hb[4].rc, STORE_OK);
	assert_int_equal(store_instance_get(s, id, &got), STORE_OK);
	assert_int_equal(got.heartbeat_ms, 9500);
	assert_int_equal(got.busy_since_ms, 9000);
	store_instance_release(&got);
	assert_int_equal(store_instance_heartbeat_batch(s, hb, 0), STORE_OK);
}

/* ---- events ----------------------------------------------------------- */

static void
test_events(void **state)
{
	struct store *s = *state;
	struct store_event_list l;
	char id[STORE_ID_LEN + 1];
	int64_t ids[10];

	put_group(s, "web", 1);
	put_instance(s, "web", STORE_INSTANCE_READY, id);
	for (int i = 0; i < 9; i++) {
		char msg[64];
		struct store_event e = {0, 1000 + i,
			(char *)(i < 5 ? "web" : i < 8 ? "db" : NULL),
			(char *)(i == 2 ? id : NULL),
			(char *)(i < 5 ? "scale_out" : "checkin"), msg,
			(char *)(i == 2 ? "{\"from\": 1, \"to\": 2}" : NULL)};

		snprintf(msg, sizeof(msg), "event %d: cpu 'high'", i);
		assert_int_equal(store_event_append(s, &e, &ids[i]), STORE_OK);
		if (i > 0)
			assert_true(ids[i] > ids[i - 1]);
	}
	assert_int_equal(store_event_list_recent(s, "web", 3, &l), STORE_OK);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.v[0].id, ids[4]); /* newest first */
	assert_int_equal(l.v[2].id, ids[2]);
	assert_string_equal(l.v[2].instance, id);
	assert_string_equal(l.v[2].details, "{\"from\": 1, \"to\": 2}");
	assert_string_equal(l.v[2].message, "event 2: cpu 'high'");
	assert_string_equal(l.v[2].kind, "scale_out");
	assert_int_equal(l.v[2].time_ms, 1002);
	assert_null(l.v[0].details);
	store_event_list_release(&l);
	assert_int_equal(store_event_list_recent(s, NULL, 100, &l), STORE_OK);
	assert_int_equal(l.n, 9);
	assert_null(l.v[0].group);
	store_event_list_release(&l);
	assert_int_equal(store_event_list_since(s, ids[3], 4, &l), STORE_OK);
	assert_int_equal(l.n, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(l.v[i].id, ids[4 + i]); /* oldest first */
	store_event_list_release(&l);
	assert_int_equal(store_event_list_since(s, ids[8], 10, &l), STORE_OK);
	assert_int_equal(l.n, 0);
	store_event_list_release(&l);

	/* outside text is stored sanitized, not refused */
	char *longmsg = xmalloc(STORE_TEXT_MAX + 10);
	memset(longmsg, 'x', STORE_TEXT_MAX + 9);
	memcpy(longmsg + STORE_TEXT_MAX - 1, "\xc3\xa9", 2); /* é across the limit */
	longmsg[STORE_TEXT_MAX + 9] = '\0';
	static const struct {
		const char *in, *out;
	} san[] = {
		{"caf\xe9 \x1b[31mred\x1b[0m\r\n\tok \xe2\x82\xac",
		 "caf? ?[31mred?[0m?\n\tok \xe2\x82\xac"},
		{"", ""},
		{"\xed\xa0\x80", "???"},
	};
	for (size_t k = 0; k < ARRAY_SIZE(san) + 1; k++) {
		struct store_event ev = {0, 0, NULL, NULL, (char *)"san",
			(char *)(k < ARRAY_SIZE(san) ? san[k].in : longmsg), NULL};
		int64_t eid;

		assert_int_equal(store_event_append(s, &ev, &eid), STORE_OK);
		assert_int_equal(store_event_list_since(s, eid - 1, 1, &l),
				 STORE_OK);
		assert_int_equal(l.n, 1);
		if (k < ARRAY_SIZE(san)) {
			assert_string_equal(l.v[0].message, san[k].out);
		} else {
			assert_int_equal(strlen(l.v[0].message), STORE_TEXT_MAX - 1);
			assert_int_equal(l.v[0].message[STORE_TEXT_MAX - 2], 'x');
		}
		store_event_list_release(&l);
	}
	free(longmsg);

	struct store_event bad = {0, 0, NULL, NULL, (char *)"Scale Out",
				  (char *)"x", NULL};
	assert_int_equal(store_event_append(s, &bad, NULL), STORE_E_ERROR);
	bad.kind = (char *)"ok";
	bad.message = NULL;
	assert_int_equal(store_event_append(s, &bad, NULL), STORE_E_ERROR);
	assert_int_equal(store_event_list_recent(s, NULL, 0, &l), STORE_E_ERROR);
}

/* ---- journal ---------------------------------------------------------- */

static void
test_journal(void **state)
{
	struct store *s = *state;
	struct store_journal_list l;
	struct store_journal_entry e;
	char id[STORE_ID_LEN + 1], id2[STORE_ID_LEN + 1];
	int64_t j1, j2, j3;

	put_group(s, "web", 1);
	put_instance(s, "web", STORE_INSTANCE_PROVISIONING, id);
	put_instance(s, "web", STORE_INSTANCE_DELETING, id2);
	assert_int_equal(store_journal_begin(s, id, STORE_JOURNAL_PROVISION,
					     "{\"host\":\"kvm1\"}", &j1), STORE_OK);
	assert_int_equal(store_journal_begin(s, id2, STORE_JOURNAL_REMOVE, NULL,
					     &j2), STORE_OK);
	/* one action in flight per instance */
	assert_int_equal(store_journal_begin(s, id, STORE_JOURNAL_REMOVE,
					     NULL, &j3), STORE_E_CONFLICT);
	expect_msg("pending journal entry");
	expect_msg("provision, at step none");
	assert_int_equal(store_journal_find_pending(s, id, &e), STORE_OK);
	assert_int_equal(e.id, j1);
	assert_int_equal(e.action, STORE_JOURNAL_PROVISION);
	store_journal_entry_release(&e);
	char id3[STORE_ID_LEN + 1];
	put_instance(s, "web", STORE_INSTANCE_PROVISIONING, id3);
	assert_int_equal(store_journal_begin(s, id3, STORE_JOURNAL_PROVISION,
					     NULL, &j3), STORE_OK);
	assert_true(j1 < j2 && j2 < j3);

	assert_int_equal(store_journal_step(s, j1, STORE_STEP_VOLUME_CREATED,
					    "{\"host\":\"kvm1\",\"volume\":\"v1\"}"),
			 STORE_OK);
	assert_int_equal(store_journal_step(s, j1, STORE_STEP_SEED_CREATED, NULL),
			 STORE_OK);
	/* backwards, repeated, or another action's step */
	assert_int_equal(store_journal_step(s, j1, STORE_STEP_VOLUME_CREATED, NULL),
			 STORE_E_ILLEGAL);
	assert_int_equal(store_journal_step(s, j1, STORE_STEP_SEED_CREATED, NULL),
			 STORE_E_ILLEGAL);
	assert_int_equal(store_journal_step(s, j1, STORE_STEP_DOMAIN_UNDEFINED,
					    NULL), STORE_E_ILLEGAL);
	assert_int_equal(store_journal_step(s, j2, STORE_STEP_DOMAIN_STOPPED, NULL),
			 STORE_OK);
	assert_int_equal(store_journal_step(s, 999999, STORE_STEP_DOMAIN_STOPPED,
					    NULL), STORE_E_NOTFOUND);

	assert_int_equal(store_journal_done(s, j3), STORE_OK);
	assert_int_equal(store_journal_done(s, j3), STORE_E_CONFLICT);
	assert_int_equal(store_journal_step(s, j3, STORE_STEP_STARTED, NULL),
			 STORE_E_CONFLICT);
	assert_int_equal(store_journal_fail(s, j3, "late"), STORE_E_CONFLICT);
	assert_int_equal(store_journal_done(s, 999999), STORE_E_NOTFOUND);

	/* "crash": close the handle with j1 and j2 pending, open another */
	store_close(s);
	s = *state = open_ok(cur_url);
	assert_int_equal(store_journal_pending(s, &l), STORE_OK);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.v[0].id, j1);
	assert_string_equal(l.v[0].instance, id);
	assert_int_equal(l.v[0].action, STORE_JOURNAL_PROVISION);
	assert_int_equal(l.v[0].step, STORE_STEP_SEED_CREATED);
	assert_int_equal(l.v[0].status, STORE_JOURNAL_PENDING);
	assert_string_equal(l.v[0].payload, "{\"host\":\"kvm1\",\"volume\":\"v1\"}");
	assert_int_equal(l.v[1].id, j2);
	assert_int_equal(l.v[1].action, STORE_JOURNAL_REMOVE);
	assert_int_equal(l.v[1].step, STORE_STEP_DOMAIN_STOPPED);
	assert_null(l.v[1].payload);
	store_journal_list_release(&l);

	/* recovery rolls j1 back and finishes j2 */
	assert_int_equal(store_journal_fail(s, j1, "daemon restarted at seed_created; "
					    "rolled back"), STORE_OK);
	assert_int_equal(store_journal_step(s, j2, STORE_STEP_VOLUMES_DELETED, NULL),
			 STORE_OK);
	assert_int_equal(store_journal_done(s, j2), STORE_OK);
	assert_int_equal(store_journal_pending(s, &l), STORE_OK);
	assert_int_equal(l.n, 0);
	store_journal_list_release(&l);
	assert_int_equal(store_journal_find_pending(s, id, &e), STORE_E_NOTFOUND);
	assert_int_equal(store_journal_get(s, j1, &e), STORE_OK);
	assert_int_equal(e.status, STORE_JOURNAL_FAILED);
	assert_non_null(strstr(e.error, "rolled back"));
	store_journal_entry_release(&e);
	assert_int_equal(store_journal_fail(s, j2, NULL), STORE_E_ERROR);
	/* settled: the instance may get its next action */
	assert_int_equal(store_journal_begin(s, id, STORE_JOURNAL_REMOVE, NULL,
					     &j3), STORE_OK);
	assert_int_equal(store_journal_begin(s, id3, STORE_JOURNAL_REMOVE, NULL,
					     &j3), STORE_OK);

	char nope[STORE_ID_LEN + 1];
	assert_int_equal(store_instance_new_id(nope), 0);
	assert_int_equal(store_journal_begin(s, nope, STORE_JOURNAL_REMOVE, NULL,
					     &j3), STORE_E_NOTFOUND);
}

/* ---- lease and fencing ------------------------------------------------ */

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void
test_lease(void **state)
{
	struct store *a = *state, *b;
	struct store_lease info;
	struct store_group g;
	int64_t ea = 0, eb = 0;

	b = open_ok(cur_url);
	put_group(a, "web", 1);
	assert_int_equal(store_lease_get(a, STORE_LEASE_LEADER, &info),
			 STORE_E_NOTFOUND);

	assert_int_equal(store_lease_acquire(a, STORE_LEASE_LEADER, "node-a:1",
					     60000, &ea), STORE_OK);
	assert_int_equal(ea, 1);
	/* a second daemon is refused while the lease is live */
	assert_int_equal(store_lease_acquire(b, STORE_LEASE_LEADER, "node-b:2",
					     60000, &eb), STORE_E_HELD);
	expect_msg("node-a:1");
	assert_int_equal(store_lease_get(b, STORE_LEASE_LEADER, &info), STORE_OK);
	assert_string_equal(info.holder, "node-a:1");
	assert_int_equal(info.epoch, 1);
	assert_true(info.expires_ms > info.now_ms);
	store_lease_release_info(&info);
	assert_int_equal(store_lease_renew(a, STORE_LEASE_LEADER, "node-a:1", ea,
					   60000), STORE_OK);
	assert_int_equal(store_group_set_desired(a, "web", 2), STORE_OK);

	/* A lets it lapse (short ttl); B takes over with a new epoch */
	assert_int_equal(store_lease_renew(a, STORE_LEASE_LEADER, "node-a:1", ea,
					   50), STORE_OK);
	sleep_ms(300);
	assert_int_equal(store_lease_acquire(b, STORE_LEASE_LEADER, "node-b:2",
					     60000, &eb), STORE_OK);
	assert_int_equal(eb, 2);

	/* every write of the old leader is fenced and changes nothing */
	assert_int_equal(store_group_set_desired(a, "web", 7), STORE_E_FENCED);
	expect_msg("fenced");
	char id[STORE_ID_LEN + 1];
	assert_int_equal(store_instance_new_id(id), 0);
	struct store_instance in = {.id = id, .group = (char *)"web",
				    .state = STORE_INSTANCE_REQUESTED};
	assert_int_equal(store_instance_put(a, &in), STORE_E_FENCED);
	struct store_event ev = {0, 0, NULL, NULL, (char *)"x", (char *)"y", NULL};
	assert_int_equal(store_event_append(a, &ev, NULL), STORE_E_FENCED);
	struct store_heartbeat hb = {id, 1000, false, 99};
	assert_int_equal(store_instance_heartbeat_batch(a, &hb, 1),
			 STORE_E_FENCED);
	struct store_load_minute lm = {"web", 1000, 1.5};
	assert_int_equal(store_load_put(a, &lm, 1), STORE_E_FENCED);
	assert_int_equal(store_lease_renew(a, STORE_LEASE_LEADER, "node-a:1", ea,
					   60000), STORE_E_FENCED);
	assert_int_equal(store_lease_release(a, STORE_LEASE_LEADER, "node-a:1",
					     ea), STORE_E_FENCED);
	/* reads still work for the fenced handle */
	assert_int_equal(store_group_get(a, "web", &g), STORE_OK);
	assert_int_equal(g.desired, 2);
	store_group_release(&g);
	assert_int_equal(store_instance_get(b, id, &in), STORE_E_NOTFOUND);

	/* the new leader writes */
	assert_int_equal(store_group_set_desired(b, "web", 3), STORE_OK);
	put_instance(b, "web", STORE_INSTANCE_REQUESTED, id);

	/* release: the next acquire (by anyone) bumps the epoch again */
	assert_int_equal(store_lease_release(b, STORE_LEASE_LEADER, "node-b:2", eb),
			 STORE_OK);
	assert_int_equal(store_group_set_desired(b, "web", 4), STORE_OK); /* unfenced */
	assert_int_equal(store_lease_acquire(a, STORE_LEASE_LEADER, "node-a:1",
					     60000, &ea), STORE_OK);
	assert_int_equal(ea, 3);
	assert_int_equal(store_group_set_desired(a, "web", 5), STORE_OK);
	/* the same holder (a restarted daemon) takes its lease back at once */
	int64_t ea2 = 0;
	assert_int_equal(store_lease_acquire(b, STORE_LEASE_LEADER, "node-a:1",
					     60000, &ea2), STORE_OK);
	assert_int_equal(ea2, 4);
	assert_int_equal(store_group_set_desired(a, "web", 6), STORE_E_FENCED);
	assert_int_equal(store_group_get(b, "web", &g), STORE_OK);
	assert_int_equal(g.desired, 5);
	store_group_release(&g);

	/* taking over from a holder known to be dead, before expiry */
	assert_int_equal(store_lease_take_over(a, STORE_LEASE_LEADER, "node-c:3",
					       "node-x:9", 60000, &ea),
			 STORE_E_HELD);
	assert_int_equal(store_lease_take_over(a, STORE_LEASE_LEADER, "node-c:3",
					       "node-a:1", 60000, &ea), STORE_OK);
	assert_int_equal(ea, 5);
	assert_int_equal(store_group_set_desired(b, "web", 6), STORE_E_FENCED);
	assert_int_equal(store_group_set_desired(a, "web", 6), STORE_OK);
	char holder[300];
	assert_int_equal(store_lease_holder_default(holder, sizeof(holder)), 0);
	assert_non_null(strchr(holder, ':'));
	assert_int_equal(store_lease_holder_default(holder, 3), -1);

	/* other leases are independent; bad arguments */
	assert_int_equal(store_lease_acquire(a, "other", "node-a:1", 1000, &ea),
			 STORE_OK);
	assert_int_equal(ea, 1);
	assert_int_equal(store_lease_acquire(a, "other", "", 1000, &ea),
			 STORE_E_ERROR);
	assert_int_equal(store_lease_acquire(a, "other", "x", 0, &ea),
			 STORE_E_ERROR);
	store_fence_set(a, NULL, 0);
	assert_int_equal(store_group_set_desired(a, "web", 1), STORE_OK);
	store_close(b);
}

static void
test_purge(void **state)
{
	struct store *s = *state;
	struct store_instance_list l;
	struct store_event_list el;
	char gone1[STORE_ID_LEN + 1], gone2[STORE_ID_LEN + 1];
	char live[STORE_ID_LEN + 1];
	int64_t j1, j2, n = -1;

	put_group(s, "web", 1);
	put_instance(s, "web", STORE_INSTANCE_DELETING, gone1);
	put_instance(s, "web", STORE_INSTANCE_DELETING, gone2);
	put_instance(s, "web", STORE_INSTANCE_READY, live);
	assert_int_equal(store_journal_begin(s, gone1, STORE_JOURNAL_REMOVE, NULL,
					     &j1), STORE_OK);
	assert_int_equal(store_journal_done(s, j1), STORE_OK);
	assert_int_equal(store_journal_begin(s, gone2, STORE_JOURNAL_REMOVE, NULL,
					     &j2), STORE_OK);
	assert_int_equal(store_instance_set_state(s, gone1, STORE_INSTANCE_DELETING,
						  STORE_INSTANCE_GONE), STORE_OK);
	assert_int_equal(store_instance_set_state(s, gone2, STORE_INSTANCE_DELETING,
						  STORE_INSTANCE_GONE), STORE_OK);
	/* nothing is old enough yet */
	assert_int_equal(store_instance_purge(s, 1000, &n), STORE_OK);
	assert_int_equal(n, 0);
	assert_int_equal(store_instance_purge(s, util_wall_ms() + 60000, &n),
			 STORE_OK);
	assert_int_equal(n, 1); /* gone2 keeps its pending journal entry */
	assert_int_equal(store_instance_list(s, NULL, &l), STORE_OK);
	assert_int_equal(l.n, 2);
	assert_true(strcmp(l.v[0].id, gone1) != 0 && strcmp(l.v[1].id, gone1) != 0);
	store_instance_list_release(&l);

	for (int i = 0; i < 10; i++) {
		struct store_event e = {0, 1000 + i, (char *)"web", NULL,
					(char *)"k", (char *)"m", NULL};
		assert_int_equal(store_event_append(s, &e, NULL), STORE_OK);
	}
	assert_int_equal(store_event_prune(s, 1005, &n), STORE_OK);
	assert_int_equal(n, 5);
	assert_int_equal(store_event_list_recent(s, NULL, 100, &el), STORE_OK);
	assert_int_equal(el.n, 5);
	assert_int_equal(el.v[4].time_ms, 1005);
	store_event_list_release(&el);
}

/* Predictive scaling's load history: one row per group and minute. */
static void
test_load_history(void **state)
{
	struct store *s = *state;
	struct store_load_list l;
	int64_t n = -1;
	const struct store_load_minute v[] = {
		{"web", 29000000, 2.5},
		{"web", 29000001, 0},
		{"web", 29000003, 123456.789},
		{"api", 29000001, 7},
	};

	assert_int_equal(store_load_put(s, v, ARRAY_SIZE(v)), STORE_OK);
	assert_int_equal(store_load_put(s, v, 0), STORE_OK);
	assert_int_equal(store_load_get(s, "web", 0, &l), STORE_OK);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.v[0].minute, 29000000);
	assert_true(l.v[0].load == 2.5);
	assert_true(l.v[1].load == 0);
	assert_int_equal(l.v[2].minute, 29000003);
	assert_true(fabs(l.v[2].load - 123456.789) < 1e-9);
	store_load_list_release(&l);
	/* from a minute on */
	assert_int_equal(store_load_get(s, "web", 29000001, &l), STORE_OK);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.v[0].minute, 29000001);
	store_load_list_release(&l);
	assert_int_equal(store_load_get(s, "none", 0, &l), STORE_OK);
	assert_int_equal(l.n, 0);
	store_load_list_release(&l);

	/* a minute written again keeps the newest value */
	struct store_load_minute again = {"web", 29000001, 4.25};
	assert_int_equal(store_load_put(s, &again, 1), STORE_OK);
	assert_int_equal(store_load_get(s, "web", 0, &l), STORE_OK);
	assert_int_equal(l.n, 3);
	assert_true(l.v[1].load == 4.25);
	store_load_list_release(&l);

	/* a malformed item refuses the whole batch */
	const struct {
		struct store_load_minute m;
		const char *why;
	} bad[] = {
		{{"web", 29000010, NAN}, "is not a number from 0"},
		{{"web", 29000010, INFINITY}, "is not a number from 0"},
		{{"web", 29000010, -0.5}, "is not a number from 0"},
		{{"web", 29000010, 2e9}, "is not a number from 0"},
		{{"web", -1, 1}, "out of range"},
		{{"we b", 29000010, 1}, "group name"},
		{{NULL, 29000010, 1}, "group name"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct store_load_minute two[2] = {
			{"web", 29000009, 1}, bad[i].m};

		assert_int_equal(store_load_put(s, two, 2), STORE_E_ERROR);
		expect_msg(bad[i].why);
	}
	assert_int_equal(store_load_get(s, "web", 29000004, &l), STORE_OK);
	assert_int_equal(l.n, 0);
	store_load_list_release(&l);
	assert_int_equal(store_load_get(s, "we b", 0, &l), STORE_E_ERROR);

	/* prune: every group's rows before the minute */
	assert_int_equal(store_load_prune(s, 29000002, &n), STORE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(store_load_get(s, "web", 0, &l), STORE_OK);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.v[0].minute, 29000003);
	store_load_list_release(&l);
	assert_int_equal(store_load_get(s, "api", 0, &l), STORE_OK);
	assert_int_equal(l.n, 0);
	store_load_list_release(&l);

	/* a batch larger than one statement's chunk (200 rows), with
	 * minutes already stored: every row written once, the newest wins */
	{
		struct store_load_minute big[450];
		char names[3][8] = {"g0", "g1", "g2"};

		for (size_t i = 0; i < ARRAY_SIZE(big); i++)
			big[i] = (struct store_load_minute){
				names[i % 3], 29100000 + (int64_t)(i / 3),
				(double)i / 4};
		assert_int_equal(store_load_put(s, big, 300), STORE_OK);
		for (size_t i = 0; i < ARRAY_SIZE(big); i++)
			big[i].load += 1000;
		assert_int_equal(store_load_put(s, big, ARRAY_SIZE(big)),
				 STORE_OK);
		for (int g = 0; g < 3; g++) {
			assert_int_equal(store_load_get(s, names[g], 0, &l),
					 STORE_OK);
			assert_int_equal(l.n, 150);
			for (size_t i = 0; i < l.n; i++) {
				assert_int_equal(l.v[i].minute,
						 29100000 + (int64_t)i);
				assert_true(l.v[i].load ==
					    (double)(3 * i + (size_t)g) / 4 + 1000);
			}
			store_load_list_release(&l);
		}
	}

	/* a damaged row is an error naming the table and the group */
	raw_exec("INSERT INTO load_history (group_name, minute, load_milli) "
		 "VALUES ('web', 29000005, -3)");
	assert_int_equal(store_load_get(s, "web", 0, &l), STORE_E_ERROR);
	expect_msg("load_history, group web");
	expect_msg("load_milli");
	assert_null(l.v);
}

/* ---- schema versions -------------------------------------------------- */

/* The version-1 schema exactly as the first release created it. */
static const char *const v1_sqlite[] = {
	"CREATE TABLE schema_version (version INTEGER NOT NULL)",
	"CREATE TABLE instance_groups (name TEXT NOT NULL PRIMARY KEY, desired "
	"INTEGER NOT NULL, paused INTEGER NOT NULL DEFAULT 0, config_gen INTEGER "
	"NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT "
	"NULL)",
	"CREATE TABLE instances (id TEXT NOT NULL PRIMARY KEY, group_name TEXT "
	"NOT NULL REFERENCES instance_groups(name), host TEXT, domain TEXT, "
	"state TEXT NOT NULL, secret_hash TEXT, created_ms INTEGER NOT NULL, "
	"updated_ms INTEGER NOT NULL, ready_ms INTEGER NOT NULL DEFAULT 0, "
	"heartbeat_ms INTEGER NOT NULL DEFAULT 0, busy INTEGER NOT NULL DEFAULT "
	"0, busy_since_ms INTEGER NOT NULL DEFAULT 0, config_gen INTEGER NOT NULL "
	"DEFAULT 0, address TEXT, notes TEXT)",
	"CREATE INDEX instances_group_state ON instances (group_name, state)",
	"CREATE INDEX instances_host ON instances (host)",
	"CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms "
	"INTEGER NOT NULL, group_name TEXT, instance_id TEXT, kind TEXT NOT NULL, "
	"message TEXT NOT NULL, details TEXT)",
	"CREATE INDEX events_group ON events (group_name, id)",
	NULL,
};

#define MY_OPTS " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
static const char *const v1_mysql[] = {
	"CREATE TABLE schema_version (version INT NOT NULL)" MY_OPTS,
	"CREATE TABLE instance_groups (name VARCHAR(63) NOT NULL PRIMARY KEY, "
	"desired BIGINT NOT NULL, paused TINYINT NOT NULL DEFAULT 0, config_gen "
	"BIGINT NOT NULL DEFAULT 0, created_ms BIGINT NOT NULL, updated_ms BIGINT "
	"NOT NULL)" MY_OPTS,
	"CREATE TABLE instances (id VARCHAR(64) NOT NULL PRIMARY KEY, group_name "
	"VARCHAR(63) NOT NULL, host VARCHAR(255) NULL, domain VARCHAR(255) NULL, "
	"state VARCHAR(32) NOT NULL, secret_hash VARCHAR(128) NULL, created_ms "
	"BIGINT NOT NULL, updated_ms BIGINT NOT NULL, ready_ms BIGINT NOT NULL "
	"DEFAULT 0, heartbeat_ms BIGINT NOT NULL DEFAULT 0, busy TINYINT NOT NULL "
	"DEFAULT 0, busy_since_ms BIGINT NOT NULL DEFAULT 0, config_gen BIGINT "
	"NOT NULL DEFAULT 0, address VARCHAR(255) NULL, notes TEXT NULL, KEY "
	"instances_group_state (group_name, state), KEY instances_host (host), "
	"CONSTRAINT instances_group_fk FOREIGN KEY (group_name) REFERENCES "
	"instance_groups (name))" MY_OPTS,
	"CREATE TABLE events (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
	"time_ms BIGINT NOT NULL, group_name VARCHAR(63) NULL, instance_id "
	"VARCHAR(64) NULL, kind VARCHAR(63) NOT NULL, message TEXT NOT NULL, "
	"details MEDIUMTEXT NULL, KEY events_group (group_name, id))" MY_OPTS,
	NULL,
};

#define ID1 "11111111-2222-4333-8444-555555555555"

static void
test_migrate_v1(void **state)
{
	const char *url = fresh_db();
	const char *const *v1 = mariadb ? v1_mysql : v1_sqlite;
	struct store *s;
	struct store_instance in;
	struct store_event_list l;
	int64_t j;
	int v = 0;

	(void)state;
	if (!mariadb) { /* the directory of a fresh SQLite file */
		char *dir = xstrdup(sqlite_path);

		*strrchr(dir, '/') = '\0';
		mkdir(dir, 0700);
		free(dir);
	}
	for (const char *const *st = v1; *st; st++)
		raw_exec(*st);
	raw_exec("INSERT INTO schema_version (version) VALUES (1)");
	raw_exec("INSERT INTO instance_groups VALUES ('web', 2, 0, 1, 10, 10)");
	raw_exec("INSERT INTO instances (id, group_name, host, domain, state, "
		 "created_ms, updated_ms) VALUES ('" ID1 "', 'web', 'kvm1', "
		 "'va-web-1', 'ready', 10, 10)");
	raw_exec("INSERT INTO events (time_ms, group_name, kind, message) "
		 "VALUES (10, 'web', 'scale_out', 'from v1')");

	s = open_ok(url);
	assert_int_equal(store_schema_version(s, &v), STORE_OK);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	assert_int_equal(store_instance_get(s, ID1, &in), STORE_OK);
	assert_string_equal(in.domain, "va-web-1");
	assert_int_equal(in.state, STORE_INSTANCE_READY);
	store_instance_release(&in);
	assert_int_equal(store_event_list_recent(s, "web", 10, &l), STORE_OK);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].message, "from v1");
	store_event_list_release(&l);
	/* the v2 tables work */
	assert_int_equal(store_journal_begin(s, ID1, STORE_JOURNAL_REMOVE, NULL,
					     &j), STORE_OK);
	int64_t epoch;
	assert_int_equal(store_lease_acquire(s, STORE_LEASE_LEADER, "me", 1000,
					     &epoch), STORE_OK);
	store_close(s);
	/* opening again changes nothing */
	s = open_ok(url);
	assert_int_equal(store_schema_version(s, &v), STORE_OK);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	store_close(s);
}

/* MariaDB runs DDL outside transactions: a migration cut short (crash,
 * lost connection) leaves some tables; the next start finishes it. */
static void
test_migrate_partial(void **state)
{
	const char *url;
	struct store *s;
	int v = 0;

	(void)state;
	if (!mariadb)
		skip(); /* SQLite migrates in one transaction */
	url = fresh_db();
	raw_exec(v1_mysql[0]); /* schema_version, still empty */
	raw_exec(v1_mysql[1]); /* instance_groups */
	s = open_ok(url);
	assert_int_equal(store_schema_version(s, &v), STORE_OK);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	put_group(s, "web", 1);
	store_close(s);
}

/* The version-2 additions exactly as that release created them. */
static const char *const v2_sqlite[] = {
	"CREATE TABLE journal (id INTEGER PRIMARY KEY AUTOINCREMENT, instance_id "
	"TEXT NOT NULL REFERENCES instances(id), action TEXT NOT NULL, step TEXT "
	"NOT NULL, status TEXT NOT NULL, payload TEXT, error TEXT, created_ms "
	"INTEGER NOT NULL, updated_ms INTEGER NOT NULL, pending_instance TEXT "
	"UNIQUE)",
	"CREATE INDEX journal_status ON journal (status, id)",
	"CREATE INDEX journal_instance ON journal (instance_id)",
	"CREATE TABLE leases (name TEXT NOT NULL PRIMARY KEY, holder TEXT NOT "
	"NULL, epoch INTEGER NOT NULL, expires_ms INTEGER NOT NULL, acquired_ms "
	"INTEGER NOT NULL)",
	NULL,
};

static const char *const v2_mysql[] = {
	"CREATE TABLE journal (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
	"instance_id VARCHAR(64) NOT NULL, action VARCHAR(32) NOT NULL, step "
	"VARCHAR(32) NOT NULL, status VARCHAR(16) NOT NULL, payload MEDIUMTEXT "
	"NULL, error TEXT NULL, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT "
	"NULL, pending_instance VARCHAR(64) NULL, KEY journal_status (status, "
	"id), UNIQUE KEY journal_pending_instance (pending_instance), CONSTRAINT "
	"journal_instance_fk FOREIGN KEY (instance_id) REFERENCES instances "
	"(id))" MY_OPTS,
	"CREATE TABLE leases (name VARCHAR(63) NOT NULL PRIMARY KEY, holder "
	"VARCHAR(255) NOT NULL, epoch BIGINT NOT NULL, expires_ms BIGINT NOT "
	"NULL, acquired_ms BIGINT NOT NULL)" MY_OPTS,
	NULL,
};

/* A database as the version-2 release left it, with one instance. */
static const char *
make_v2_db(void)
{
	const char *url = fresh_db();

	if (!mariadb) { /* the directory of a fresh SQLite file */
		char *dir = xstrdup(sqlite_path);

		*strrchr(dir, '/') = '\0';
		mkdir(dir, 0700);
		free(dir);
	}
	for (const char *const *st = mariadb ? v1_mysql : v1_sqlite; *st; st++)
		raw_exec(*st);
	for (const char *const *st = mariadb ? v2_mysql : v2_sqlite; *st; st++)
		raw_exec(*st);
	raw_exec("INSERT INTO schema_version (version) VALUES (2)");
	raw_exec("INSERT INTO instance_groups VALUES ('web', 2, 0, 1, 10, 10)");
	raw_exec("INSERT INTO instances (id, group_name, host, domain, state, "
		 "created_ms, updated_ms) VALUES ('" ID1 "', 'web', 'kvm1', "
		 "'va-web-1', 'ready', 10, 10)");
	return url;
}

static void
assert_uuid_v4(const char *id)
{
	assert_int_equal(strlen(id), STORE_ID_LEN);
	for (size_t i = 0; i < STORE_ID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(id[i], '-');
		else
			assert_non_null(strchr("0123456789abcdef", id[i]));
	}
	assert_int_equal(id[14], '4');
}

/* A new store gets an installation id; it stays the same on every open,
 * and another store gets another one. */
static void
test_owner_id(void **state)
{
	struct store *s = *state, *s2;
	char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1], c[STORE_ID_LEN + 1];
	char *first_url = xstrdup(cur_url);

	assert_int_equal(store_owner_id(s, a), STORE_OK);
	assert_uuid_v4(a);
	assert_int_equal(store_owner_id(s, b), STORE_OK); /* cached */
	assert_string_equal(a, b);
	s2 = open_ok(cur_url); /* a second handle reads the same row */
	assert_int_equal(store_owner_id(s2, b), STORE_OK);
	assert_string_equal(a, b);
	store_close(s2);
	if (!mariadb) { /* another database, another installation */
		s2 = open_ok(fresh_db());
		assert_int_equal(store_owner_id(s2, c), STORE_OK);
		assert_uuid_v4(c);
		assert_string_not_equal(a, c);
		store_close(s2);
		/* the first one, reopened, has kept its id */
		s2 = open_ok(first_url);
		assert_int_equal(store_owner_id(s2, b), STORE_OK);
		assert_string_equal(a, b);
		store_close(s2);
	}
	free(first_url);
}

/* A version-2 database gets its id from the migration, once. */
static void
test_migrate_v2(void **state)
{
	const char *url = make_v2_db();
	char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1];
	struct store_instance in;
	struct store *s;
	int v = 0;

	(void)state;
	s = open_ok(url);
	assert_int_equal(store_schema_version(s, &v), STORE_OK);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	assert_int_equal(store_owner_id(s, a), STORE_OK);
	assert_uuid_v4(a);
	assert_int_equal(store_instance_get(s, ID1, &in), STORE_OK);
	assert_string_equal(in.domain, "va-web-1");
	store_instance_release(&in);
	store_close(s);
	for (int i = 0; i < 2; i++) {
		s = open_ok(url);
		assert_int_equal(store_owner_id(s, b), STORE_OK);
		assert_string_equal(a, b);
		store_close(s);
	}
}

#define OWNER1 "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"

/* MariaDB: a migration to version 3 cut short after the table, or after
 * the id, is finished by the next open without changing a minted id. */
static void
test_migrate_v3_partial(void **state)
{
	const char *url;
	char a[STORE_ID_LEN + 1];
	struct store *s;
	int v = 0;

	(void)state;
	if (!mariadb)
		skip(); /* SQLite migrates in one transaction */
	/* cut after CREATE TABLE: the id is minted now */
	url = make_v2_db();
	raw_exec("CREATE TABLE installation (singleton TINYINT NOT NULL "
		 "PRIMARY KEY, id VARCHAR(64) NOT NULL, created_ms BIGINT NOT "
		 "NULL)" MY_OPTS);
	s = open_ok(url);
	assert_int_equal(store_owner_id(s, a), STORE_OK);
	assert_uuid_v4(a);
	store_close(s);
	/* cut after the INSERT, before the version: the id is kept */
	url = make_v2_db();
	raw_exec("CREATE TABLE installation (singleton TINYINT NOT NULL "
		 "PRIMARY KEY, id VARCHAR(64) NOT NULL, created_ms BIGINT NOT "
		 "NULL)" MY_OPTS);
	raw_exec("INSERT INTO installation VALUES (1, '" OWNER1 "', 10)");
	s = open_ok(url);
	assert_int_equal(store_schema_version(s, &v), STORE_OK);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	assert_int_equal(store_owner_id(s, a), STORE_OK);
	assert_string_equal(a, OWNER1);
	store_close(s);
}

/* A lost or mangled id is an error, never silently replaced. */
static void
test_owner_damaged(void **state)
{
	const char *url = fresh_db();
	char a[STORE_ID_LEN + 1];
	struct store *s = open_ok(url);

	(void)state;
	store_close(s);
	raw_exec("UPDATE installation SET id = 'not-a-uuid'");
	s = open_ok(url);
	assert_int_equal(store_owner_id(s, a), STORE_E_ERROR);
	expect_msg("installation");
	store_close(s);
	raw_exec("DELETE FROM installation");
	s = open_ok(url);
	assert_int_equal(store_owner_id(s, a), STORE_E_ERROR);
	expect_msg("0 rows");
	store_close(s);
}

/* ---- configuration generation ----------------------------------------- */

/* It starts at 0, each bump adds one, every handle sees it, and it
 * survives closing the store (a restart). */
static void
test_config_gen(void **state)
{
	struct store *s = *state, *s2;
	int64_t g = -1;

	assert_int_equal(store_config_gen_get(s, &g), STORE_OK);
	assert_int_equal(g, 0);
	assert_int_equal(store_config_gen_bump(s, &g), STORE_OK);
	assert_int_equal(g, 1);
	assert_int_equal(store_config_gen_bump(s, &g), STORE_OK);
	assert_int_equal(g, 2);
	s2 = open_ok(cur_url);
	assert_int_equal(store_config_gen_get(s2, &g), STORE_OK);
	assert_int_equal(g, 2);
	assert_int_equal(store_config_gen_bump(s2, &g), STORE_OK);
	assert_int_equal(g, 3);
	store_close(s2);
	assert_int_equal(store_config_gen_get(s, &g), STORE_OK);
	assert_int_equal(g, 3);
	store_close(s);
	*state = s = open_ok(cur_url); /* a restart */
	assert_int_equal(store_config_gen_get(s, &g), STORE_OK);
	assert_int_equal(g, 3);
	assert_int_equal(store_config_gen_bump(s, &g), STORE_OK);
	assert_int_equal(g, 4);
}

/* A bump is a write like any other: fenced once another daemon has the
 * lease, and then it changes nothing. */
static void
test_config_gen_fenced(void **state)
{
	struct store *s = *state, *s2 = open_ok(cur_url);
	int64_t e1 = 0, e2 = 0, g = -1;

	assert_int_equal(store_lease_acquire(s, STORE_LEASE_LEADER, "a", 60000,
					     &e1), STORE_OK);
	assert_int_equal(store_config_gen_bump(s, &g), STORE_OK);
	assert_int_equal(g, 1);
	assert_int_equal(store_lease_take_over(s2, STORE_LEASE_LEADER, "b", "a",
					       60000, &e2), STORE_OK);
	g = -1;
	assert_int_equal(store_config_gen_bump(s, &g), STORE_E_FENCED);
	assert_int_equal(g, -1);
	assert_int_equal(store_config_gen_bump(s2, &g), STORE_OK);
	assert_int_equal(g, 2);
	store_close(s2);
}

#define GEN_THREADS 4
#define GEN_BUMPS 25

struct gen_worker {
	struct store *s;
	int64_t got[GEN_BUMPS];
	int errors;
	pthread_t th;
};

static void *
gen_worker_main(void *arg)
{
	struct gen_worker *w = arg;

	for (int i = 0; i < GEN_BUMPS; i++)
		if (store_config_gen_bump(w->s, &w->got[i]) != STORE_OK)
			w->errors++;
	return NULL;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Bumps on several handles at once (threads; processes behave alike):
 * every caller gets a number of its own, and none is lost. */
static void
test_config_gen_concurrent(void **state)
{
	struct gen_worker w[GEN_THREADS];
	int64_t all[GEN_THREADS * GEN_BUMPS], g = 0;

	(void)state;
	memset(w, 0, sizeof(w));
	for (int i = 0; i < GEN_THREADS; i++) {
		w[i].s = open_ok(cur_url);
		assert_int_equal(pthread_create(&w[i].th, NULL, gen_worker_main,
						&w[i]), 0);
	}
	for (int i = 0; i < GEN_THREADS; i++) {
		pthread_join(w[i].th, NULL);
		assert_int_equal(w[i].errors, 0);
		memcpy(&all[i * GEN_BUMPS], w[i].got, sizeof(w[i].got));
		store_close(w[i].s);
	}
	qsort(all, ARRAY_SIZE(all), sizeof(all[0]), cmp_i64);
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		assert_int_equal(all[i], (int64_t)i + 1);
	assert_int_equal(store_config_gen_get(*state, &g), STORE_OK);
	assert_int_equal(g, GEN_THREADS * GEN_BUMPS);
}

/* A database as the version-3 release left it: a group and instances
 * built from generations up to 7 (the daemon restarted at 1 then). */
static const char *
make_v3_db(void)
{
	const char *url = make_v2_db();

	raw_exec(mariadb ? "CREATE TABLE installation (singleton TINYINT NOT "
			   "NULL PRIMARY KEY CHECK (singleton = 1), id "
			   "VARCHAR(64) NOT NULL, created_ms BIGINT NOT NULL)"
			   MY_OPTS
			 : "CREATE TABLE installation (singleton INTEGER NOT "
			   "NULL PRIMARY KEY CHECK (singleton = 1), id TEXT NOT "
			   "NULL, created_ms INTEGER NOT NULL)");
	raw_exec("INSERT INTO installation VALUES (1, '" OWNER1 "', 10)");
	raw_exec("UPDATE schema_version SET version = 3");
	raw_exec("UPDATE instance_groups SET config_gen = 4");
	raw_exec("INSERT INTO instances (id, group_name, host, domain, state, "
		 "created_ms, updated_ms, config_gen) VALUES "
		 "('" OWNER1 "', 'web', 'kvm1', 'va-web-2', 'gone', 11, 11, 7)");
	return url;
}

/* Version 3 -> 4 keeps every row and starts the generation after the
 * largest one the rows carry. */
static void
test_migrate_v3(void **state)
{
	const char *url = make_v3_db();
	char a[STORE_ID_LEN + 1];
	struct store_instance in;
	struct store_group gr;
	struct store *s;
	int64_t g = -1;
	int v = 0;

	(void)state;
	s = open_ok(url);
	assert_int_equal(store_schema_version(s, &v), STORE_OK);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	assert_int_equal(store_owner_id(s, a), STORE_OK);
	assert_string_equal(a, OWNER1);
	assert_int_equal(store_instance_get(s, ID1, &in), STORE_OK);
	assert_string_equal(in.domain, "va-web-1");
	store_instance_release(&in);
	assert_int_equal(store_group_get(s, "web", &gr), STORE_OK);
	assert_int_equal(gr.desired, 2);
	assert_int_equal(gr.config_gen, 4);
	store_group_release(&gr);
	assert_int_equal(store_config_gen_get(s, &g), STORE_OK);
	assert_int_equal(g, 7);
	assert_int_equal(store_config_gen_bump(s, &g), STORE_OK);
	assert_int_equal(g, 8);
	store_close(s);
	s = open_ok(url); /* migrated once: the next open keeps the value */
	assert_int_equal(store_config_gen_get(s, &g), STORE_OK);
	assert_int_equal(g, 8);
	store_close(s);
}

/* MariaDB: a migration to version 4 cut short after the table (the row
 * is written by the next open) or after the row (kept, not reset). */
static void
test_migrate_v4_partial(void **state)
{
	static const char table[] =
		"CREATE TABLE config_generation (singleton TINYINT NOT NULL "
		"PRIMARY KEY, gen BIGINT NOT NULL, updated_ms BIGINT NOT NULL)"
		MY_OPTS;
	const char *url;
	struct store *s;
	int64_t g = -1;
	int v = 0;

	(void)state;
	if (!mariadb)
		skip(); /* SQLite migrates in one transaction */
	url = make_v3_db();
	raw_exec(table);
	s = open_ok(url);
	assert_int_equal(store_config_gen_get(s, &g), STORE_OK);
	assert_int_equal(g, 7);
	store_close(s);
	url = make_v3_db();
	raw_exec(table);
	raw_exec("INSERT INTO config_generation VALUES (1, 12, 10)");
	s = open_ok(url);
	assert_int_equal(store_schema_version(s, &v), STORE_OK);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	assert_int_equal(store_config_gen_get(s, &g), STORE_OK);
	assert_int_equal(g, 12);
	store_close(s);
}

/* A lost generation row is an error, never a restart from 0. */
static void
test_config_gen_damaged(void **state)
{
	const char *url = fresh_db();
	struct store *s = open_ok(url);
	int64_t g = -1;

	(void)state;
	store_close(s);
	raw_exec("DELETE FROM config_generation");
	s = open_ok(url);
	assert_int_equal(store_config_gen_get(s, &g), STORE_E_ERROR);
	expect_msg("0 rows");
	assert_int_equal(store_config_gen_bump(s, &g), STORE_E_ERROR);
	expect_msg("config_generation");
	assert_int_equal(g, -1);
	store_close(s);
	raw_exec("INSERT INTO config_generation VALUES (1, -5, 10)");
	s = open_ok(url);
	assert_int_equal(store_config_gen_get(s, &g), STORE_E_ERROR);
	expect_msg("config_generation");
	store_close(s);
}

static void
test_newer_schema(void **state)
{
	const char *url = fresh_db();
	struct store *s = open_ok(url);

	(void)state;
	store_close(s);
	raw_exec("UPDATE schema_version SET version = 99");
	assert_null(store_open(url, password));
	expect_msg("newer than this virt-autoscaler");
	expect_msg("99");
	raw_exec("INSERT INTO schema_version (version) VALUES (2)");
	assert_null(store_open(url, password));
	expect_msg("2 rows");
}

static void
test_foreign_db(void **state)
{
	const char *url = fresh_db();

	(void)state;
	if (!mariadb) {
		char *dir = xstrdup(sqlite_path);

		*strrchr(dir, '/') = '\0';
		mkdir(dir, 0700);
		free(dir);
	}
	raw_exec("CREATE TABLE instances (x INT)");
	assert_null(store_open(url, password));
	expect_msg("not a virt-autoscaler");
}

/* ---- corrupted rows --------------------------------------------------- */

/* ---- the loop's listing from memory (store_instance_cache) ------------- */

/* The address store_instance_list(s, f) gives instance id ("" for none,
 * "(absent)" when id is not listed). */
static const char *
listed_address(struct store *s, const struct store_instance_filter *f,
	       const char *id, char *buf, size_t size)
{
	struct store_instance_list l;

	if (store_instance_list(s, f, &l) != STORE_OK)
		fail_msg("list: %s", err_msg());
	snprintf(buf, size, "(absent)");
	for (size_t i = 0; i < l.n; i++)
		if (strcmp(l.v[i].id, id) == 0)
			snprintf(buf, size, "%s",
				 l.v[i].address ? l.v[i].address : "");
	store_instance_list_release(&l);
	return buf;
}

/* Both listings alike: ids in the same order, every field equal. */
static void
same_listing(struct store *a, struct store *b,
	     const struct store_instance_filter *f)
{
	struct store_instance_list la, lb;

	assert_int_equal(store_instance_list(a, f, &la), STORE_OK);
	assert_int_equal(store_instance_list(b, f, &lb), STORE_OK);
	assert_int_equal(la.n, lb.n);
	for (size_t i = 0; i < la.n; i++) {
		const struct store_instance *x = &la.v[i], *y = &lb.v[i];

		assert_string_equal(x->id, y->id);
		assert_string_equal(x->group, y->group);
		assert_true((!x->host && !y->host) ||
			    (x->host && y->host && !strcmp(x->host, y->host)));
		assert_true((!x->address && !y->address) ||
			    (x->address && y->address &&
			     !strcmp(x->address, y->address)));
		assert_int_equal(x->state, y->state);
		assert_int_equal(x->created_ms, y->created_ms);
		assert_int_equal(x->heartbeat_ms, y->heartbeat_ms);
		assert_int_equal(x->busy, y->busy);
		assert_int_equal(x->busy_since_ms, y->busy_since_ms);
		assert_int_equal(x->updated_ms, y->updated_ms);
	}
	store_instance_list_release(&la);
	store_instance_list_release(&lb);
}

static void
test_instance_cache(void **state)
{
	struct store *s = *state, *b;
	struct store_instance_filter live = {NULL, NULL, STORE_STATES_NOT_GONE};
	struct store_instance_filter web_ready = {
		"web", NULL, STORE_STATE_BIT(STORE_INSTANCE_READY)};
	struct store_instance_filter on_kvm1 = {NULL, "kvm1",
						STORE_STATES_NOT_GONE};
	struct store_instance_filter all = {NULL, NULL, 0};
	struct store_instance_list l;
	struct store_instance in;
	char id[STORE_ID_LEN + 1], id2[STORE_ID_LEN + 1], id3[STORE_ID_LEN + 1];
	char buf[64];

	put_group(s, "web", 2);
	put_group(s, "db", 1);
	put_instance(s, "web", STORE_INSTANCE_READY, id);
	put_instance(s, "db", STORE_INSTANCE_BOOTING, id2);
	put_instance(s, "web", STORE_INSTANCE_REQUESTED, id3);
	raw_exec("INSERT INTO instances (id, group_name, host, state, created_ms, "
		 "updated_ms) VALUES ('" ID1 "', 'web', 'kvm1', 'gone', 1, 1)");
	b = open_ok(cur_url); /* another handle: no cache */
	if (mariadb) {
		int64_t g = -1;

		/* no generation to tell a change: every listing reads */
		assert_int_equal(store_instance_generation(s, &g), STORE_OK);
		assert_int_equal(g, 0);
		assert_false(store_instance_cache(s, 60000));
		same_listing(s, b, &live);
		store_close(b);
		return;
	}
	assert_true(store_instance_cache(s, 60000));
	same_listing(s, b, &live);
	same_listing(s, b, &web_ready);
	same_listing(s, b, &on_kvm1);
	/* gone ones are not kept: such a listing reads the table */
	assert_int_equal(store_instance_list(s, &all, &l), STORE_OK);
	assert_int_equal(l.n, 4);
	store_instance_list_release(&l);
	assert_int_equal(store_instance_list(s, &live, &l), STORE_OK);
	assert_int_equal(l.n, 3);
	store_instance_list_release(&l);

	/* a listing shares the cache's strings: it outlives the copy in
	 * memory it came from (replaced after a change), and a second one
	 * taken meanwhile stays whole when the first is released (ASan) */
	{
		struct store_instance_list l1, l2;

		assert_int_equal(store_instance_list(s, &live, &l1), STORE_OK);
		assert_int_equal(store_instance_list(s, &web_ready, &l2),
				 STORE_OK);
		raw_exec("UPDATE instances SET notes = 'moved' WHERE id = '" ID1 "'");
		assert_int_equal(store_instance_list(s, &live, &l), STORE_OK);
		store_instance_list_release(&l);
		assert_int_equal(l1.n, 3);
		assert_int_equal(l2.n, 1);
		store_instance_list_release(&l1);
		assert_string_equal(l2.v[0].id, id);
		assert_string_equal(l2.v[0].group, "web");
		store_instance_list_release(&l2);
	}

	/* the generation a listing carries is the table's now, and moves
	 * with any change (here through another handle) */
	{
		int64_t g0, g1;

		assert_int_equal(store_instance_list(s, &live, &l), STORE_OK);
		assert_int_equal(store_instance_generation(s, &g0), STORE_OK);
		assert_true(g0 > 0);
		assert_int_equal(l.gen, g0);
		store_instance_list_release(&l);
		assert_int_equal(store_instance_heartbeat(b, id, 777, false),
				 STORE_OK);
		assert_int_equal(store_instance_generation(s, &g1), STORE_OK);
		assert_true(g1 > g0);
		assert_int_equal(store_instance_list(s, &live, &l), STORE_OK);
		assert_int_equal(l.gen, g1);
		store_instance_list_release(&l);
	}

	/* a change through another handle */
	assert_int_equal(store_instance_set_state(b, id, STORE_INSTANCE_READY,
						  STORE_INSTANCE_UNHEALTHY),
			 STORE_OK);
	same_listing(s, b, &live);
	assert_string_equal(listed_address(s, &web_ready, id, buf, sizeof(buf)),
			    "(absent)");
	/* through this handle */
	assert_int_equal(store_instance_heartbeat(s, id2, 12345, true),
			 STORE_OK);
	same_listing(s, b, &live);
	/* by anyone else, bypassing the store's code: the triggers */
	raw_exec("UPDATE instances SET address = '192.0.2.7'");
	assert_string_equal(listed_address(s, &live, id2, buf, sizeof(buf)),
			    "192.0.2.7");
	raw_exec("DELETE FROM instances WHERE state = 'requested'");
	assert_string_equal(listed_address(s, &live, id3, buf, sizeof(buf)),
			    "(absent)");
	put_instance(b, "db", STORE_INSTANCE_READY, id3);
	same_listing(s, b, &live);

	/* while the generation stays the listing is the copy in memory:
	 * without the trigger, a change is not seen until it moves */
	raw_exec("DROP TRIGGER instances_gen_update");
	raw_exec("UPDATE instances SET address = '192.0.2.8'");
	assert_string_equal(listed_address(s, &live, id2, buf, sizeof(buf)),
			    "192.0.2.7");
	assert_string_equal(listed_address(b, &live, id2, buf, sizeof(buf)),
			    "192.0.2.8");
	raw_exec("UPDATE instances_version SET gen = gen + 1");
	assert_string_equal(listed_address(s, &live, id2, buf, sizeof(buf)),
			    "192.0.2.8");
	/* and no older than max_age_ms */
	assert_true(store_instance_cache(s, 1));
	assert_string_equal(listed_address(s, &live, id2, buf, sizeof(buf)),
			    "192.0.2.8");
	raw_exec("UPDATE instances SET address = '192.0.2.9'");
	usleep(5000);
	assert_string_equal(listed_address(s, &live, id2, buf, sizeof(buf)),
			    "192.0.2.9");

	/* a damaged generation is an error that names it, not a stale list */
	raw_exec("DELETE FROM instances_version");
	assert_int_equal(store_instance_list(s, &live, &l), STORE_E_ERROR);
	expect_msg("instances_version");
	assert_null(l.v);
	/* and a bad row one that names the row and the column */
	raw_exec("INSERT INTO instances_version VALUES (1, 100)");
	raw_exec("UPDATE instances SET created_ms = 'soon' WHERE id = '" ID1 "'");
	raw_exec("UPDATE instances SET state = 'ready' WHERE id = '" ID1 "'");
	raw_exec("UPDATE instances_version SET gen = gen + 1");
	assert_int_equal(store_instance_list(s, &live, &l), STORE_E_ERROR);
	expect_msg("created_ms");
	expect_msg("soon");
	expect_msg(ID1);
	assert_int_equal(store_instance_get(s, ID1, &in), STORE_E_ERROR);
	expect_msg("created_ms");
	raw_exec("UPDATE instances SET created_ms = 2.5 WHERE id = '" ID1 "'");
	assert_int_equal(store_instance_get(s, ID1, &in), STORE_E_ERROR);
	expect_msg("created_ms");
	store_close(b);
}

/*
 * The cache follows its own handle's heartbeat batches (store.c,
 * cache_follow()): the listing after one is the table's, field by field,
 * without reading the table again; a batch after someone else's change,
 * or one that changed what it should not have, leaves the cache to be
 * read again.
 */
static void
test_cache_follows_heartbeats(void **state)
{
	struct store *s = *state, *b;
	struct store_instance_filter live = {NULL, NULL, STORE_STATES_NOT_GONE};
	char id1[STORE_ID_LEN + 1], id2[STORE_ID_LEN + 1], id3[STORE_ID_LEN + 1];
	char buf[64];
	int64_t g0, g1;

	if (mariadb)
		skip(); /* no cache (test_instance_cache) */
	put_group(s, "web", 3);
	put_instance(s, "web", STORE_INSTANCE_READY, id1);
	put_instance(s, "web", STORE_INSTANCE_BOOTING, id2);
	put_instance(s, "web", STORE_INSTANCE_DELETING, id3);
	b = open_ok(cur_url);
	assert_true(store_instance_cache(s, 60000));
	same_listing(s, b, &live);
	{
		struct store_heartbeat hb[] = {
			{id1, 1000, true, -1},
			{id2, 2000, false, -1},
			{id1, 900, true, -1},  /* older: heartbeat_ms stays */
			{id3, 3000, false, -1}, /* deleting: refused */
			{ID1, 4000, false, -1}, /* unknown */
			{id2, 2500, true, -1},  /* busy from 2500 */
			{id1, 1600, false, -1}, /* no longer busy */
		};

		assert_int_equal(store_instance_generation(s, &g0), STORE_OK);
		assert_int_equal(store_instance_heartbeat_batch(s, hb, 7), STORE_OK);
		assert_int_equal(hb[0].rc, STORE_OK);
		assert_int_equal(hb[3].rc, STORE_E_CONFLICT);
		assert_int_equal(hb[4].rc, STORE_E_NOTFOUND);
		assert_int_equal(store_instance_generation(s, &g1), STORE_OK);
		assert_int_equal(g1, g0 + 5);
	}
	/* The listing now is the cache, not a new read of the table: a
	 * change that does not move the generation is not in it (an
	 * address here), and the heartbeats' fields are the table's, one
	 * by one, with the values the batch meant. */
	raw_exec("DROP TRIGGER instances_gen_update");
	raw_exec("UPDATE instances SET address = '192.0.2.60'");
	{
		struct store_instance_list la, lb;

		assert_int_equal(store_instance_list(s, &live, &la), STORE_OK);
		assert_int_equal(store_instance_list(b, &live, &lb), STORE_OK);
		assert_int_equal(la.gen, g1);
		assert_int_equal(la.n, 3);
		assert_int_equal(lb.n, 3);
		for (size_t i = 0; i < la.n; i++) {
			const struct store_instance *x = &la.v[i], *y = &lb.v[i];

			assert_string_equal(x->id, y->id);
			assert_null(x->address);
			assert_string_equal(y->address, "192.0.2.60");
			assert_int_equal(x->heartbeat_ms, y->heartbeat_ms);
			assert_int_equal(x->busy, y->busy);
			assert_int_equal(x->busy_since_ms, y->busy_since_ms);
			assert_int_equal(x->updated_ms, y->updated_ms);
			if (!strcmp(x->id, id1)) {
				assert_int_equal(x->heartbeat_ms, 1600);
				assert_false(x->busy);
				assert_int_equal(x->busy_since_ms, 0);
			} else if (!strcmp(x->id, id2)) {
				assert_int_equal(x->heartbeat_ms, 2500);
				assert_true(x->busy);
				assert_int_equal(x->busy_since_ms, 2500);
			} else {
				assert_int_equal(x->heartbeat_ms, 0);
			}
		}
		store_instance_list_release(&la);
		store_instance_list_release(&lb);
	}
	raw_exec("CREATE TRIGGER instances_gen_update AFTER UPDATE ON instances "
		 "BEGIN UPDATE instances_version SET gen = gen + 1; END");
	raw_exec("UPDATE instances_version SET gen = gen + 1");
	same_listing(s, b, &live);

	/* someone else's change first: the batch does not make the cache
	 * current (it would keep the old address under the new generation) */
	raw_exec("UPDATE instances SET address = '192.0.2.61'"); /* trigger */
	{
		struct store_heartbeat hb = {id1, 5000, false, -1};

		assert_int_equal(store_instance_heartbeat_batch(s, &hb, 1), STORE_OK);
	}
	assert_string_equal(listed_address(s, &live, id1, buf, sizeof(buf)),
			    "192.0.2.61");
	same_listing(s, b, &live);

	/* a batch whose rows moved the generation more than one each (a
	 * trigger of someone's own here): not followed */
	raw_exec("CREATE TRIGGER extra AFTER UPDATE OF heartbeat_ms ON instances "
		 "BEGIN UPDATE instances SET notes = 'x' WHERE id = NEW.id; END");
	{
		struct store_heartbeat hb = {id2, 6000, false, -1};

		assert_int_equal(store_instance_heartbeat_batch(s, &hb, 1), STORE_OK);
	}
	same_listing(s, b, &live);
	{
		struct store_instance_list l;

		assert_int_equal(store_instance_list(s, &live, &l), STORE_OK);
		for (size_t i = 0; i < l.n; i++)
			if (!strcmp(l.v[i].id, id2))
				assert_string_equal(l.v[i].notes, "x");
		store_instance_list_release(&l);
	}
	store_close(b);
}

static void
test_corrupt_rows(void **state)
{
	struct store *s = *state;
	struct store_instance in;
	struct store_instance_list il;
	struct store_event_list el;
	struct store_journal_list jl;
	struct store_group_list gl;
	char *big, *sql;

	put_group(s, "web", 1);
	raw_exec("INSERT INTO instances (id, group_name, host, state, created_ms, "
		 "updated_ms) VALUES ('" ID1 "', 'web', 'kvm1', 'bogus', 1, 1)");
	assert_int_equal(store_instance_get(s, ID1, &in), STORE_E_ERROR);
	expect_msg("column state");
	expect_msg("bogus");
	expect_msg(ID1);
	assert_int_equal(store_instance_list(s, NULL, &il), STORE_E_ERROR);
	assert_int_equal(il.n, 0);
	assert_null(il.v);

	/* a NULL where a value is needed: a ready instance without a host */
	raw_exec("UPDATE instances SET state = 'ready', host = NULL");
	assert_int_equal(store_instance_get(s, ID1, &in), STORE_E_ERROR);
	expect_msg("host is NULL");
	/* an overlong field */
	big = xmalloc(STORE_TEXT_MAX + 100);
	memset(big, 'n', STORE_TEXT_MAX + 99);
	big[STORE_TEXT_MAX + 99] = '\0';
	sql = xasprintf("UPDATE instances SET host = 'kvm1', notes = '%s'", big);
	raw_exec(sql);
	assert_int_equal(store_instance_get(s, ID1, &in), STORE_E_ERROR);
	expect_msg("column notes");
	expect_msg("limit");
	free(sql);
	free(big);
	raw_exec("UPDATE instances SET notes = NULL, secret_hash = 'zz'");
	assert_int_equal(store_instance_get(s, ID1, &in), STORE_E_ERROR);
	expect_msg("secret_hash");
	raw_exec("UPDATE instances SET secret_hash = NULL, created_ms = -5");
	assert_int_equal(store_instance_get(s, ID1, &in), STORE_E_ERROR);
	expect_msg("created_ms");
	raw_exec("UPDATE instances SET created_ms = 1, busy = 7");
	assert_int_equal(store_instance_get(s, ID1, &in), STORE_E_ERROR);
	expect_msg("busy");
	raw_exec("UPDATE instances SET busy = 0");
	assert_int_equal(store_instance_get(s, ID1, &in), STORE_OK);
	store_instance_release(&in);

	/* a bad id in the key column */
	raw_exec("INSERT INTO instances (id, group_name, host, state, created_ms, "
		 "updated_ms) VALUES ('not-a-uuid', 'web', 'kvm1', 'ready', 1, 1)");
	assert_int_equal(store_instance_list(s, NULL, &il), STORE_E_ERROR);
	expect_msg("not-a-uuid");

	raw_exec("INSERT INTO events (time_ms, group_name, kind, message) VALUES "
		 "(1, 'web', 'Bad Kind', 'm')");
	assert_int_equal(store_event_list_recent(s, "web", 10, &el), STORE_E_ERROR);
	expect_msg("column kind");
	raw_exec("INSERT INTO journal (instance_id, action, step, status, "
		 "created_ms, updated_ms) VALUES ('" ID1 "', 'remove', 'started', "
		 "'pending', 1, 1)");
	assert_int_equal(store_journal_pending(s, &jl), STORE_E_ERROR);
	expect_msg("does not belong");
	raw_exec("UPDATE journal SET step = 'none', status = 'maybe'");
	assert_int_equal(store_journal_pending(s, &jl), STORE_OK);
	assert_int_equal(jl.n, 0); /* not 'pending' */
	store_journal_list_release(&jl);
	raw_exec("UPDATE journal SET status = 'pending', action = 'explode'");
	assert_int_equal(store_journal_pending(s, &jl), STORE_E_ERROR);
	expect_msg("explode");
	raw_exec("UPDATE instance_groups SET desired = -3");
	assert_int_equal(store_group_list(s, &gl), STORE_E_ERROR);
	expect_msg("desired");
	if (!mariadb) {
		/* SQLite keeps whatever bytes it is given */
		raw_exec("UPDATE instances SET notes = CAST(X'636166e9' AS TEXT) "
			 "WHERE id = '" ID1 "'");
		assert_int_equal(store_instance_get(s, ID1, &in), STORE_E_ERROR);
		expect_msg("UTF-8");
		raw_exec("UPDATE instances SET notes = 'a' || char(0) || 'b' "
			 "WHERE id = '" ID1 "'");
		assert_int_equal(store_instance_get(s, ID1, &in), STORE_E_ERROR);
		expect_msg("NUL");
		/* SQLite's type affinity lets text into an integer column */
		raw_exec("UPDATE instance_groups SET desired = 'many'");
		assert_int_equal(store_group_list(s, &gl), STORE_E_ERROR);
		expect_msg("desired");
		raw_exec("UPDATE instance_groups SET desired = 1, name = "
			 "'web' || char(10) || 'x'");
		assert_int_equal(store_group_list(s, &gl), STORE_E_ERROR);
		raw_exec("INSERT INTO leases VALUES ('leader', 'x', 'two', 0, 0)");
	} else {
		raw_exec("INSERT INTO leases VALUES ('leader', 'x', -1, 0, 0)");
	}
	struct store_lease li;
	int64_t e;
	assert_int_equal(store_lease_get(s, "leader", &li), STORE_E_ERROR);
	expect_msg("epoch");
	assert_int_equal(store_lease_acquire(s, "leader", "me", 1000, &e),
			 STORE_E_ERROR);
}

/* ---- concurrency ------------------------------------------------------ */

#define CONC_INSTANCES 20
#define CONC_EVENTS 40

struct worker {
	struct store *s;
	char (*ids)[STORE_ID_LEN + 1];
	int wins, conflicts, errors;
	pthread_t th;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < CONC_INSTANCES; i++) {
		int rc = store_instance_set_state(w->s, w->ids[i],
						  STORE_INSTANCE_REQUESTED,
						  STORE_INSTANCE_GONE);
		if (rc == STORE_OK)
			w->wins++;
		else if (rc == STORE_E_CONFLICT)
			w->conflicts++;
		else
			w->errors++;
		struct store_event e = {0, 0, (char *)"web", w->ids[i],
					(char *)"race", (char *)"x", NULL};
		if (store_event_append(w->s, &e, NULL) != STORE_OK)
			w->errors++;
	}
	for (int i = 0; i < CONC_EVENTS - CONC_INSTANCES; i++) {
		struct store_event e = {0, 0, (char *)"web", NULL,
					(char *)"more", (char *)"y", NULL};
		if (store_event_append(w->s, &e, NULL) != STORE_OK)
			w->errors++;
	}
	return NULL;
}

#define SHARE_THREADS 4
#define SHARE_OPS 300

struct share_worker {
	struct store *s;
	const char *id;
	int errors, fenced;
	pthread_t th;
};

static void *
share_main(void *arg)
{
	struct share_worker *w = arg;

	for (int i = 0; i < SHARE_OPS; i++) {
		struct store_instance in;
		int rc = store_instance_get(w->s, w->id, &in);

		if (rc == STORE_OK)
			store_instance_release(&in);
		else
			w->errors++;
		if (i % 10 == 0) {
			rc = store_instance_heartbeat(w->s, w->id,
						      util_wall_ms(), false);
			if (rc == STORE_E_FENCED)
				w->fenced++;
			else if (rc != STORE_OK)
				w->errors++;
		}
	}
	return NULL;
}

/* One handle shared by threads (the HTTP server's): on MariaDB it opens
 * more connections to overlap their round trips; fenced writes keep
 * their fence while the lease is taken again meanwhile (the lease calls
 * run alone on the handle), so no thread sees a spurious "fenced". */
static void
test_shared_handle(void **state)
{
	struct store *s = *state;
	struct share_worker w[SHARE_THREADS];
	char id[STORE_ID_LEN + 1];
	int64_t epoch = 0;
	struct store *one;

	put_group(s, "web", 1);
	put_instance(s, "web", STORE_INSTANCE_READY, id);
	assert_int_equal(store_lease_acquire(s, STORE_LEASE_LEADER, "me", 60000,
					     &epoch), STORE_OK);
	assert_int_equal(store_connections(s), 1);
	memset(w, 0, sizeof(w));
	for (int i = 0; i < SHARE_THREADS; i++) {
		w[i].s = s;
		w[i].id = id;
		assert_int_equal(pthread_create(&w[i].th, NULL, share_main,
						&w[i]), 0);
	}
	for (int i = 0; i < 5; i++) {
		assert_int_equal(store_lease_acquire(s, STORE_LEASE_LEADER, "me",
						     60000, &epoch), STORE_OK);
		assert_int_equal(store_lease_renew(s, STORE_LEASE_LEADER, "me",
						   epoch, 60000), STORE_OK);
	}
	for (int i = 0; i < SHARE_THREADS; i++) {
		pthread_join(w[i].th, NULL);
		assert_int_equal(w[i].errors, 0);
		assert_int_equal(w[i].fenced, 0);
	}
	if (mariadb)
		assert_true(store_connections(s) > 1);
	else
		assert_int_equal(store_connections(s), 1);
	assert_true(store_connections(s) <= STORE_POOL_DEFAULT);
	/* store_open_pool(.., 1): one connection whatever the threads do */
	one = store_open_pool(cur_url, password, 1);
	assert_non_null(one);
	for (int i = 0; i < SHARE_THREADS; i++) {
		w[i].s = one;
		assert_int_equal(pthread_create(&w[i].th, NULL, share_main,
						&w[i]), 0);
	}
	for (int i = 0; i < SHARE_THREADS; i++) {
		pthread_join(w[i].th, NULL);
		assert_int_equal(w[i].errors, 0);
	}
	assert_int_equal(store_connections(one), 1);
	assert_null(store_open_pool(cur_url, password, 0));
	store_close(one);
}

static void
test_concurrent(void **state)
{
	struct store *a = *state;
	char ids[CONC_INSTANCES][STORE_ID_LEN + 1];
	struct worker w[2];
	struct store_event_list l;
	const char *url = cur_url;

	put_group(a, "web", 1);
	for (int i = 0; i < CONC_INSTANCES; i++)
		put_instance(a, "web", STORE_INSTANCE_REQUESTED, ids[i]);
	for (int i = 0; i < 2; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].s = open_ok(url);
		w[i].ids = ids;
		assert_int_equal(pthread_create(&w[i].th, NULL, worker_main,
						&w[i]), 0);
	}
	/* the main thread reads meanwhile, on a shared handle */
	for (int i = 0; i < 10; i++) {
		struct store_instance_list il;

		assert_int_equal(store_instance_list(a, NULL, &il), STORE_OK);
		assert_int_equal(il.n, CONC_INSTANCES);
		store_instance_list_release(&il);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(w[i].th, NULL);
	if (w[0].errors || w[1].errors)
		fail_msg("errors in workers: %d, %d (last: %s)", w[0].errors,
			 w[1].errors, err_msg());
	/* every instance moved exactly once */
	assert_int_equal(w[0].wins + w[1].wins, CONC_INSTANCES);
	assert_int_equal(w[0].conflicts + w[1].conflicts, CONC_INSTANCES);
	assert_int_equal(store_event_list_recent(a, "web", 1000, &l), STORE_OK);
	assert_int_equal(l.n, 2 * CONC_EVENTS);
	for (size_t i = 1; i < l.n; i++)
		assert_true(l.v[i - 1].id > l.v[i].id);
	store_event_list_release(&l);
	for (int i = 0; i < 2; i++)
		store_close(w[i].s);
}

/* ---- two daemons, one lease (processes) -------------------------------- */

#define HA_TTL_MS 400

/* A minimal daemon: stand by until it gets the lease, then write ticks
 * (fenced) and renew every third of the lease; fenced -> stand by again. */
static _Noreturn void
ha_child(const char *holder)
{
	struct store *s;
	bool leader = false;
	int64_t epoch = 0, last_renew = 0;

	/* never outlive the test (a timeout kills the parent) */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(4);
	s = store_open(cur_url, password);
	if (!s)
		_exit(3);
	for (;;) {
		int64_t now = util_now_ms();
		char msg[128];
		int rc;

		if (!leader) {
			if (store_lease_acquire(s, STORE_LEASE_LEADER, holder,
						HA_TTL_MS, &epoch) == STORE_OK) {
				leader = true;
				last_renew = now;
			} else {
				sleep_ms(HA_TTL_MS / 4);
			}
			continue;
		}
		snprintf(msg, sizeof(msg), "epoch=%" PRId64 " holder=%s", epoch,
			 holder);
		struct store_event e = {0, 0, NULL, NULL, (char *)"tick", msg,
					NULL};
		rc = store_event_append(s, &e, NULL);
		if (rc == STORE_E_FENCED) {
			leader = false;
			continue;
		}
		if (now - last_renew >= HA_TTL_MS / 3) {
			rc = store_lease_renew(s, STORE_LEASE_LEADER, holder, epoch,
					       HA_TTL_MS);
			if (rc == STORE_E_FENCED)
				leader = false;
			else if (rc == STORE_OK)
				last_renew = now;
		}
		sleep_ms(10);
	}
}

/* Poll until a live holder other than not_this has the lease. */
static char *
wait_leader(struct store *s, const char *not_this, int64_t *waited_ms)
{
	int64_t start = util_now_ms();

	while (util_now_ms() - start < 30000) {
		struct store_lease l;

		if (store_lease_get(s, STORE_LEASE_LEADER, &l) == STORE_OK) {
			if (*l.holder && l.expires_ms > l.now_ms &&
			    (!not_this || strcmp(l.holder, not_this) != 0)) {
				char *h = xstrdup(l.holder);

				store_lease_release_info(&l);
				*waited_ms = util_now_ms() - start;
				return h;
			}
			store_lease_release_info(&l);
		}
		sleep_ms(10);
	}
	fail_msg("no new lease holder (other than %s) within 30 s",
		 not_this ? not_this : "none");
	return NULL;
}

static void
test_ha_processes(void **state)
{
	struct store *s = *state;
	static const char *const names[2] = {"ha-a", "ha-b"};
	struct store_event_list l;
	pid_t pid[2];
	char *l1, *l2, *l3;
	int64_t waited, last_epoch = 0, epochs = 0;
	int i1, i2;

	fflush(NULL);
	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0)
			ha_child(names[i]);
		children[i] = pid[i];
	}
	l1 = wait_leader(s, NULL, &waited);
	i1 = strcmp(l1, names[0]) == 0 ? 0 : 1;
	sleep_ms(300);
	if (mariadb) {
		/* the leader freezes (GC pause, paused VM): the other takes
		 * over; when it wakes up, its writes are fenced */
		kill(pid[i1], SIGSTOP);
		l2 = wait_leader(s, l1, &waited);
		print_message("leader %s stopped: %s took over after %" PRId64
			      " ms (lease %d ms)\n", l1, l2, waited, HA_TTL_MS);
		sleep_ms(300);
		kill(pid[i1], SIGCONT);
		sleep_ms(500);
	} else {
		l2 = xstrdup(l1);
	}
	/* the (current) leader dies */
	i2 = strcmp(l2, names[0]) == 0 ? 0 : 1;
	kill(pid[i2], SIGKILL);
	l3 = wait_leader(s, l2, &waited);
	print_message("leader %s killed: %s took over after %" PRId64
		      " ms (lease %d ms)\n", l2, l3, waited, HA_TTL_MS);
	sleep_ms(300);
	for (int i = 0; i < 2; i++) {
		kill(pid[i], SIGKILL);
		waitpid(pid[i], NULL, 0);
		children[i] = 0;
	}

	/* Fencing's promise: in commit order, the epochs of the writes
	 * never go back, and each epoch belongs to one holder. */
	assert_int_equal(store_event_list_since(s, 0, 100000, &l), STORE_OK);
	char holder_of_last[64] = "";
	for (size_t k = 0; k < l.n; k++) {
		long long ep;
		char h[64];

		assert_int_equal(sscanf(l.v[k].message, "epoch=%lld holder=%63s",
					&ep, h), 2);
		if (ep < last_epoch)
			fail_msg("event %" PRId64 " of %s has epoch %lld after "
				 "epoch %" PRId64 " wrote", l.v[k].id, h, ep,
				 last_epoch);
		if (ep == last_epoch)
			assert_string_equal(h, holder_of_last);
		else
			epochs++;
		last_epoch = ep;
		snprintf(holder_of_last, sizeof(holder_of_last), "%s", h);
	}
	assert_true(epochs >= (mariadb ? 3 : 2));
	assert_true(l.n > 10);
	store_event_list_release(&l);
	free(l1);
	free(l2);
	free(l3);
}

/* ---- MariaDB specifics ------------------------------------------------ */

/* Kill every other connection of our user to our database. */
static int
kill_store_connections(void)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	int killed = 0;

	assert_int_equal(mysql_query(raw_my, "SELECT ID FROM "
				     "information_schema.PROCESSLIST WHERE "
				     "ID <> CONNECTION_ID() AND DB = '"
				     STORE_TEST_DB "' AND USER = "
				     "SUBSTRING_INDEX(CURRENT_USER(), '@', 1)"),
			 0);
	res = mysql_store_result(raw_my);
	assert_non_null(res);
	while ((row = mysql_fetch_row(res))) {
		char *sql = xasprintf("KILL CONNECTION %s", row[0]);

		if (mysql_query(raw_my, sql) == 0)
			killed++;
		free(sql);
	}
	mysql_free_result(res);
	return killed;
}

static void
test_reconnect(void **state)
{
	struct store *s = *state;
	struct store_group_list l;
	struct store_group g;
	int64_t epoch;

	if (!mariadb)
		skip();
	put_group(s, "web", 1);
	assert_int_equal(store_lease_acquire(s, STORE_LEASE_LEADER, "me", 60000,
					     &epoch), STORE_OK);
	assert_true(kill_store_connections() >= 1);
	/* a read retries on a new connection */
	assert_int_equal(store_group_list(s, &l), STORE_OK);
	assert_int_equal(l.n, 1);
	store_group_list_release(&l);
	/* so does a write (its BEGIN), still fenced by the same lease */
	assert_true(kill_store_connections() >= 1);
	assert_int_equal(store_group_set_desired(s, "web", 2), STORE_OK);
	assert_int_equal(store_lease_renew(s, STORE_LEASE_LEADER, "me", epoch,
					   60000), STORE_OK);
	assert_int_equal(store_group_get(s, "web", &g), STORE_OK);
	assert_int_equal(g.desired, 2);
	store_group_release(&g);
}

static void
test_mariadb_auth(void **state)
{
	struct store *s;
	char *url;

	(void)state;
	if (!mariadb)
		skip();
	s = store_open(base_url, "wrong-password-xyzzy");
	assert_null(s);
	expect_msg("Access denied");
	assert_null(strstr(err_msg(), "xyzzy"));
	if (socket_path) {
		url = xasprintf("mysql://va@localhost/" STORE_TEST_DB
				"?socket=%s", socket_path);
		s = open_ok(url);
		assert_string_equal(store_backend(s), "mysql");
		put_group(s, "via-socket", 1);
		store_close(s);
		free(url);
		if (getuid() == 0) {
			/* no user: the login name (root, socket auth) */
			url = xasprintf("mysql://localhost/" STORE_TEST_DB
					"?socket=%s", socket_path);
			s = store_open(url, NULL);
			if (!s)
				fail_msg("%s: %s", url, err_msg());
			store_close(s);
			free(url);
		}
	}
	url = xasprintf("mysql://va@127.0.0.1:1/va_test");
	assert_null(store_open(url, password));
	expect_msg("connect");
	free(url);
}

/* ---- main ------------------------------------------------------------- */

static char *
read_password(void)
{
	const char *f = getenv("VA_TEST_MARIADB_PASSWORD_FILE");
	const char *p = getenv("VA_TEST_MARIADB_PASSWORD");
	char *s;
	size_t len;

	if (p)
		return xstrdup(p);
	if (!f)
		return NULL;
	s = util_read_file(f, 4096, &len);
	if (!s) {
		fprintf(stderr, "test_store: %s\n", err_msg());
		exit(1);
	}
	while (len && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		s[--len] = '\0';
	return s;
}

/* Lifecycle hook waits: begin once, read back, a new token, the first
 * completion wins (a second is a conflict, a missing wait not found), end. */
static void
test_hook_waits(void **state)
{
	struct store *s = *state, *s2;
	const char *id = "0b1e6c3a-2f4d-4e5a-9b8c-7d6e5f4a3b21";
	const char *id2 = "5b0c6e1e-8f0a-4c39-9d7e-2f1b8a3c4d5e";
	struct store_hook_wait w = {0}, got, *v = NULL;
	enum store_hook_result r;
	char h1[65], h2[65];
	size_t n = 0;

	memset(h1, 'a', 64);
	h1[64] = '\0';
	memset(h2, 'b', 64);
	h2[64] = '\0';
	assert_int_equal(store_hook_wait_get(s, id, &got), STORE_E_NOTFOUND);
	snprintf(w.id, sizeof(w.id), "%s", id);
	w.hook = STORE_HOOK_LAUNCH;
	w.deadline_ms = 1800000000000LL;
	snprintf(w.token_hash, sizeof(w.token_hash), "%s", h1);
	assert_int_equal(store_hook_wait_begin(s, &w), STORE_OK);
	assert_int_equal(store_hook_wait_begin(s, &w), STORE_E_EXISTS);
	snprintf(w.id, sizeof(w.id), "%s", id2);
	w.hook = STORE_HOOK_TERMINATE;
	assert_int_equal(store_hook_wait_begin(s, &w), STORE_OK);
	assert_int_equal(store_hook_wait_get(s, id, &got), STORE_OK);
	assert_string_equal(got.id, id);
	assert_int_equal(got.hook, STORE_HOOK_LAUNCH);
	assert_int_equal(got.deadline_ms, 1800000000000LL);
	assert_string_equal(got.token_hash, h1);
	assert_int_equal(got.result, STORE_HOOK_PENDING);
	/* a new call's token (after a restart) */
	assert_int_equal(store_hook_wait_token(s, id, h2), STORE_OK);
	assert_int_equal(store_hook_wait_token(s, "7b0c6e1e-8f0a-4c39-9d7e-2f1b8a3c4d5e",
					       h2), STORE_E_NOTFOUND);
	/* another handle (the HTTP threads') completes it, once */
	s2 = open_ok(cur_url);
	assert_int_equal(store_hook_wait_complete(s2, id, STORE_HOOK_ABANDON),
			 STORE_OK);
	assert_int_equal(store_hook_wait_complete(s2, id, STORE_HOOK_CONTINUE),
			 STORE_E_CONFLICT);
	assert_non_null(strstr(err_msg(), "completed already (abandon)"));
	assert_int_equal(store_hook_wait_complete(s2, "7b0c6e1e-8f0a-4c39-9d7e-2f1b8a3c4d5e",
						  STORE_HOOK_CONTINUE),
			 STORE_E_NOTFOUND);
	assert_int_equal(store_hook_wait_complete(s2, id2, STORE_HOOK_PENDING),
			 STORE_E_ERROR);
	store_close(s2);
	assert_int_equal(store_hook_wait_list(s, &v, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, id); /* by id */
	assert_string_equal(v[0].token_hash, h2);
	assert_int_equal(v[0].result, STORE_HOOK_ABANDON);
	assert_string_equal(v[1].id, id2);
	assert_int_equal(v[1].hook, STORE_HOOK_TERMINATE);
	assert_int_equal(v[1].result, STORE_HOOK_PENDING);
	free(v);
	assert_int_equal(store_hook_wait_end(s, id), STORE_OK);
	assert_int_equal(store_hook_wait_end(s, id), STORE_OK);
	assert_int_equal(store_hook_wait_get(s, id, &got), STORE_E_NOTFOUND);
	/* kept across a restart */
	store_close(s);
	*state = s = open_ok(cur_url);
	assert_int_equal(store_hook_wait_get(s, id2, &got), STORE_OK);
	assert_int_equal(got.deadline_ms, 1800000000000LL);
	assert_int_equal(store_hook_result_parse("maybe", &r), -1);
	assert_string_equal(store_instance_state_name(STORE_INSTANCE_LAUNCH_WAIT),
			    "launch_wait");
	assert_true(store_instance_transition_ok(STORE_INSTANCE_BOOTING,
						 STORE_INSTANCE_LAUNCH_WAIT));
	assert_true(store_instance_transition_ok(STORE_INSTANCE_READY,
						 STORE_INSTANCE_TERMINATE_WAIT));
	assert_false(store_instance_transition_ok(STORE_INSTANCE_TERMINATE_WAIT,
						  STORE_INSTANCE_READY));
}

/* Instance refresh: templates by hash (kept, never replaced), the
 * refresh row (upsert, validated both ways), an instance's template. */
static void
test_refresh(void **state)
{
	struct store *s = *state;
	struct store_refresh r, got;
	struct store_group g = {.name = (char *)"web", .desired = 2};
	struct store_instance in = {0}, out;
	char h1[65], h2[65], *body = NULL;

	memset(h1, 'a', 64);
	h1[64] = '\0';
	memset(h2, 'b', 64);
	h2[64] = '\0';
	assert_int_equal(store_template_get(s, "web", h1, &body),
			 STORE_E_NOTFOUND);
	assert_int_equal(store_template_put(s, "web", h1, "{\"v\":1}"), STORE_OK);
	/* the hash names the body: a second put keeps the first */
	assert_int_equal(store_template_put(s, "web", h1, "{\"v\":2}"), STORE_OK);
	assert_int_equal(store_template_get(s, "web", h1, &body), STORE_OK);
	assert_string_equal(body, "{\"v\":1}");
	free(body);
	assert_int_equal(store_template_put(s, "web", "nothex", "{}"),
			 STORE_E_ERROR);

	assert_int_equal(store_refresh_get(s, "web", &got), STORE_E_NOTFOUND);
	memset(&r, 0, sizeof(r));
	snprintf(r.group, sizeof(r.group), "web");
	r.state = STORE_REFRESH_RUNNING;
	snprintf(r.config_template, sizeof(r.config_template), "%s", h2);
	snprintf(r.target, sizeof(r.target), "%s", h2);
	snprintf(r.previous, sizeof(r.previous), "%s", h1);
	snprintf(r.max_unavailable, sizeof(r.max_unavailable), "25%%");
	r.surge = 2;
	r.min_healthy = 90;
	r.rollback_after = 1;
	snprintf(r.checkpoints, sizeof(r.checkpoints), "50,100");
	r.total = 6;
	r.started_ms = 1800000000000LL;
	snprintf(r.message, sizeof(r.message), "began");
	assert_int_equal(store_refresh_put(s, &r), STORE_OK);
	r.state = STORE_REFRESH_PAUSED;
	r.checkpoint_done = 50;
	r.batches = 3;
	assert_int_equal(store_refresh_put(s, &r), STORE_OK);
	assert_int_equal(store_refresh_get(s, "web", &got), STORE_OK);
	assert_int_equal(got.state, STORE_REFRESH_PAUSED);
	assert_string_equal(got.previous, h1);
	assert_string_equal(got.max_unavailable, "25%");
	assert_string_equal(got.checkpoints, "50,100");
	assert_int_equal(got.checkpoint_done, 50);
	assert_int_equal(got.batches, 3);
	assert_int_equal(got.started_ms, 1800000000000LL);
	assert_true(got.updated_ms > 0);
	assert_true(store_refresh_active(got.state));
	assert_false(store_refresh_active(STORE_REFRESH_ROLLED_BACK));
	/* malformed rows are refused on write */
	snprintf(r.max_unavailable, sizeof(r.max_unavailable), "lots");
	assert_int_equal(store_refresh_put(s, &r), STORE_E_ERROR);
	snprintf(r.max_unavailable, sizeof(r.max_unavailable), "1");
	snprintf(r.checkpoints, sizeof(r.checkpoints), "50,x");
	assert_int_equal(store_refresh_put(s, &r), STORE_E_ERROR);
	snprintf(r.checkpoints, sizeof(r.checkpoints), "%s", "");
	r.previous[0] = '\0';
	r.state = STORE_REFRESH_DONE;
	assert_int_equal(store_refresh_put(s, &r), STORE_OK);
	assert_int_equal(store_refresh_get(s, "web", &got), STORE_OK);
	assert_string_equal(got.previous, "");
	assert_int_equal(got.state, STORE_REFRESH_DONE);

	/* an instance's template hash round-trips; NULL stays NULL */
	assert_int_equal(store_group_upsert(s, &g), STORE_OK);
	in.id = (char *)"0b1e6c3a-2f4d-4e5a-9b8c-7d6e5f4a3b21";
	in.group = (char *)"web";
	in.state = STORE_INSTANCE_REQUESTED;
	in.template_hash = h1;
	assert_int_equal(store_instance_put(s, &in), STORE_OK);
	assert_int_equal(store_instance_get(s, in.id, &out), STORE_OK);
	assert_string_equal(out.template_hash, h1);
	store_instance_release(&out);
	in.template_hash = (char *)"short";
	assert_int_equal(store_instance_put(s, &in), STORE_E_ERROR);
	in.id = (char *)"5b0c6e1e-8f0a-4c39-9d7e-2f1b8a3c4d5e";
	in.template_hash = NULL;
	assert_int_equal(store_instance_put(s, &in), STORE_OK);
	assert_int_equal(store_instance_get(s, in.id, &out), STORE_OK);
	assert_null(out.template_hash);
	store_instance_release(&out);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_urls),
		cmocka_unit_test(test_sqlite_file),
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_instances, setup, teardown),
		cmocka_unit_test_setup_teardown(test_instance_cache, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cache_follows_heartbeats,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_cas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_history, setup,
						teardown),
		cmocka_unit_test(test_migrate_v1),
		cmocka_unit_test(test_migrate_partial),
		cmocka_unit_test_setup_teardown(test_owner_id, setup, teardown),
		cmocka_unit_test(test_migrate_v2),
		cmocka_unit_test(test_migrate_v3_partial),
		cmocka_unit_test(test_owner_damaged),
		cmocka_unit_test_setup_teardown(test_config_gen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hook_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_gen_fenced, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_config_gen_concurrent, setup,
						teardown),
		cmocka_unit_test(test_migrate_v3),
		cmocka_unit_test(test_migrate_v4_partial),
		cmocka_unit_test(test_config_gen_damaged),
		cmocka_unit_test(test_newer_schema),
		cmocka_unit_test(test_foreign_db),
		cmocka_unit_test_setup_teardown(test_corrupt_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_handle, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ha_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
		cmocka_unit_test(test_mariadb_auth),
		cmocka_unit_test_setup_teardown(test_refresh, setup, teardown),
	};
	int rc;

	log_set_level(LOG_LEVEL_ERROR);
	if (argc == 3 && strcmp(argv[1], "--touch") == 0) {
		/* test_sqlite_file: another process reads the database */
		sqlite3 *db = NULL;

		if (sqlite3_open_v2(argv[2], &db, SQLITE_OPEN_READWRITE, NULL) !=
			    SQLITE_OK ||
		    sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL,
				 NULL, NULL) != SQLITE_OK)
			return 1;
		return sqlite3_close(db) == SQLITE_OK ? 0 : 1;
	}
	if (argc != 2 || (strcmp(argv[1], "sqlite") && strcmp(argv[1], "mariadb"))) {
		fprintf(stderr, "usage: test_store sqlite|mariadb\n");
		return 2;
	}
	if (strcmp(argv[1], "mariadb") == 0) {
		const char *u = getenv("VA_TEST_MARIADB_URL");

		if (!u || !*u) {
			printf("SKIP: VA_TEST_MARIADB_URL is not set; run "
			       "eval \"$(scripts/services/mariadb.sh start)\"\n");
			return 77;
		}
		mariadb = true;
		base_url = xstrdup(u);
		password = read_password();
		socket_path = getenv("VA_TEST_MARIADB_SOCKET");
		raw_connect();
		/* Our own database (the user may create va_test*): other
		 * integration tests use va_test at the same time, and this
		 * suite drops every table between cases. */
		raw_exec("CREATE DATABASE IF NOT EXISTS " STORE_TEST_DB);
		if (mysql_select_db(raw_my, STORE_TEST_DB) != 0) {
			fprintf(stderr, "test_store: %s\n", mysql_error(raw_my));
			return 1;
		}
		char *slash = strrchr(base_url, '/');
		char *nu = xasprintf("%.*s/" STORE_TEST_DB,
				     (int)(slash - base_url), base_url);
		free(base_url);
		base_url = nu;
	} else {
		const char *t = getenv("TMPDIR");

		snprintf(tmpdir, sizeof(tmpdir), "%s/test_store.XXXXXX",
			 t ? t : "/tmp");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			return 1;
		}
	}
	rc = cmocka_run_group_tests_name(mariadb ? "store-mariadb"
						 : "store-sqlite",
					 tests, NULL, NULL);
	if (raw_my)
		mysql_close(raw_my);
	mysql_library_end();
	if (!mariadb && rc == 0) {
		char *cmd = xasprintf("rm -rf '%s'", tmpdir);

		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
		free(cmd);
	}
	free(base_url);
	free(password);
	free(sqlite_path);
	return rc;
}
