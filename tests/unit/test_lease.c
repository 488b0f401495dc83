/*
 * The lease's renewal thread (lease.c) on a real SQLite state store:
 *   - it renews on its own, every third of the ttl, while the "main
 *     thread" (this test) does nothing with the lease: the row's expiry
 *     moves on, the epoch and holder stay, the status stays HELD
 *   - another holder taking the lease over (epoch bump) makes it LOST;
 *     lease_stop() then does not touch the new holder's lease
 *   - renewals that fail (the leases table renamed away with raw SQL):
 *     with give_up_at_expiry the lease is LOST once "valid until" passes;
 *     without, it is EXPIRED (do not act) and HELD again once the
 *     database answers
 *   - with a stall limit, a loop that stops calling lease_loop_alive()
 *     lets the lease run out (LOST; another holder acquires it plainly)
 *   - lease_stop(release) gives the lease up (another holder acquires it
 *     at once), lease_stop(no release) leaves it held
 * Waits poll a condition with a generous deadline; nothing asserts on how
 * long a step took.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "lease.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define TTL_MS 300
#define DEADLINE_MS 10000
#define HOLDER "test-node:1"

static char tmpdir[256];
static int db_counter;

struct fixture {
	char *path;             /* the SQLite file */
	char url[512];
	struct store *main;     /* the "main thread's" handle: acquires */
	int64_t epoch;
	int64_t sent;           /* monotonic time the acquisition was sent */
};

static void
raw_exec(const struct fixture *f, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("raw SQL failed: %s: %s", sql, msg);
	sqlite3_close(db);
}

static struct store *
open_ok(const struct fixture *f)
{
	struct store *s = store_open(f->url, NULL);

	if (!s)
		fail_msg("store_open(%s): %s", f->url, err_msg());
	return s;
}

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char *dir = xasprintf("%s/t%d", tmpdir, db_counter++);

	assert_int_equal(mkdir(dir, 0700), 0);
	f->path = xasprintf("%s/state.db", dir);
	free(dir);
	snprintf(f->url, sizeof(f->url), "sqlite://%s", f->path);
	f->main = open_ok(f);
	f->sent = util_now_ms();
	assert_int_equal(store_lease_acquire(f->main, STORE_LEASE_LEADER,
					     HOLDER, TTL_MS, &f->epoch),
			 STORE_OK);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->main);
	free(f->path);
	free(f);
	return 0;
}

static struct lease *
start(struct fixture *f, bool give_up)
{
	struct lease_opts o = {
		.name = STORE_LEASE_LEADER,
		.holder = HOLDER,
		.epoch = f->epoch,
		.ttl_ms = TTL_MS,
		.valid_until_ms = f->sent + TTL_MS,
		.give_up_at_expiry = give_up,
	};
	struct lease *l = lease_start(open_ok(f), &o);

	if (!l)
		fail_msg("lease_start: %s", err_msg());
	return l;
}

static void
get_lease(struct fixture *f, struct store_lease *out)
{
	assert_int_equal(store_lease_get(f->main, STORE_LEASE_LEADER, out),
			 STORE_OK);
}

/* Poll until the lease's status is `want`; fail after DEADLINE_MS. */
static void
wait_status(struct lease *l, enum lease_status want)
{
	int64_t deadline = util_now_ms() + DEADLINE_MS;
	enum lease_status st;

	while ((st = lease_status(l, util_now_ms(), NULL)) != want) {
		if (util_now_ms() > deadline)
			fail_msg("lease status %d, expected %d after %d ms", st,
				 want, DEADLINE_MS);
		usleep(10000);
	}
}

static void
wait_renewals(struct lease *l, uint64_t n)
{
	int64_t deadline = util_now_ms() + DEADLINE_MS;

	while (lease_renewals(l) < n) {
		if (util_now_ms() > deadline)
			fail_msg("%" PRIu64 " renewals, expected %" PRIu64,
				 lease_renewals(l), n);
		usleep(10000);
	}
}

/* The thread renews alone: expiry moves on, epoch and holder stay. */
static void
test_renews_alone(void **state)
{
	struct fixture *f = *state;
	struct store_lease before, after;
	struct lease *l;
	int64_t until;

	get_lease(f, &before);
	l = start(f, true);
	/* many ttls' worth: without renewals it would have expired */
	wait_renewals(l, 10);
	assert_int_equal(lease_status(l, util_now_ms(), &until), LEASE_HELD);
	assert_true(until > f->sent + TTL_MS);
	get_lease(f, &after);
	assert_string_equal(after.holder, HOLDER);
	assert_int_equal(after.epoch, f->epoch);
	assert_true(after.expires_ms > before.expires_ms);
	/* a standby would find it held */
	{
		struct store *other = open_ok(f);
		int64_t e = 0;

		assert_int_equal(store_lease_acquire(other, STORE_LEASE_LEADER,
						     "other:2", TTL_MS, &e),
				 STORE_E_HELD);
		store_close(other);
	}
	lease_stop(l, false);
	store_lease_release_info(&before);
	store_lease_release_info(&after);
}

/*
 * A stall limit: while the loop reports in, the lease stays held past the
 * limit; once it stops reporting, the thread lets the lease run out: LOST,
 * and another holder acquires it without a take-over.
 */
static void
test_loop_stalls(void **state)
{
	struct fixture *f = *state;
	struct lease_opts o = {
		.name = STORE_LEASE_LEADER,
		.holder = HOLDER,
		.epoch = f->epoch,
		.ttl_ms = TTL_MS,
		.valid_until_ms = f->sent + TTL_MS,
		.give_up_at_expiry = true,
		.stall_limit_ms = 4 * TTL_MS,
	};
	struct lease *l = lease_start(open_ok(f), &o);
	struct store *other = open_ok(f);
	int64_t t0 = util_now_ms(), e = 0;

	if (!l)
		fail_msg("lease_start: %s", err_msg());
	/* an alive loop: three stall limits' worth of renewals */
	while (util_now_ms() - t0 < 3 * o.stall_limit_ms) {
		lease_loop_alive(l, util_now_ms());
		assert_int_not_equal(lease_status(l, util_now_ms(), NULL),
				     LEASE_LOST);
		usleep(50000);
	}
	assert_true(lease_renewals(l) >= 3);
	/* the loop goes silent */
	wait_status(l, LEASE_LOST);
	assert_int_equal(store_lease_acquire(other, STORE_LEASE_LEADER,
					     "other:2", TTL_MS, &e),
			 STORE_OK);
	assert_true(e > f->epoch);
	lease_stop(l, true);
	store_close(other);
}

/* Another holder takes over: LOST, and lease_stop leaves its lease be. */
static void
test_taken_over(void **state)
{
	struct fixture *f = *state;
	struct store *other = open_ok(f);
	struct store_lease cur;
	struct lease *l = start(f, true);
	int64_t e = 0, until = -1;

	wait_renewals(l, 1);
	assert_int_equal(store_lease_take_over(other, STORE_LEASE_LEADER,
					       "other:2", HOLDER, TTL_MS, &e),
			 STORE_OK);
	assert_true(e > f->epoch);
	wait_status(l, LEASE_LOST);
	assert_int_equal(lease_status(l, util_now_ms(), &until), LEASE_LOST);
	assert_int_equal(until, 0);
	lease_stop(l, true);
	get_lease(f, &cur);
	assert_string_equal(cur.holder, "other:2");
	assert_int_equal(cur.epoch, e);
	store_lease_release_info(&cur);
	store_close(other);
}

/*
 * Renewals fail (the table is away). Table-driven: with give_up the lease
 * is lost at expiry; without, it is expired until the database is back.
 */
static void
test_renewals_fail(void **state)
{
	static const struct {
		bool give_up;
		enum lease_status while_failing;
		enum lease_status after;
	} cases[] = {
		{true, LEASE_LOST, LEASE_LOST},
		{false, LEASE_EXPIRED, LEASE_HELD},
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct lease *l;

		if (i > 0) {
			/* a fresh lease on the same file */
			assert_int_equal(store_lease_release(f->main,
							     STORE_LEASE_LEADER,
							     HOLDER, f->epoch),
					 STORE_OK);
			f->sent = util_now_ms();
			assert_int_equal(store_lease_acquire(f->main,
							     STORE_LEASE_LEADER,
							     HOLDER, TTL_MS,
							     &f->epoch),
					 STORE_OK);
		}
		l = start(f, cases[i].give_up);
		wait_renewals(l, 1);
		raw_exec(f, "ALTER TABLE leases RENAME TO leases_away");
		wait_status(l, cases[i].while_failing);
		/* still so a few ttls later */
		usleep(3 * TTL_MS * 1000);
		assert_int_equal(lease_status(l, util_now_ms(), NULL),
				 cases[i].while_failing);
		raw_exec(f, "ALTER TABLE leases_away RENAME TO leases");
		wait_status(l, cases[i].after);
		lease_stop(l, false);
	}
}

/* A clean stop releases: another holder acquires at once. */
static void
test_release(void **state)
{
	static const struct {
		bool release;
		int expect_rc;
	} cases[] = {
		{false, STORE_E_HELD},
		{true, STORE_OK},
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct store *other = open_ok(f);
		struct lease *l;
		int64_t e = 0;

		f->sent = util_now_ms();
		assert_int_equal(store_lease_acquire(f->main, STORE_LEASE_LEADER,
						     HOLDER, TTL_MS, &f->epoch),
				 STORE_OK);
		l = start(f, true);
		wait_renewals(l, 1);
		lease_stop(l, cases[i].release);
		assert_int_equal(store_lease_acquire(other, STORE_LEASE_LEADER,
						     "other:2", TTL_MS, &e),
				 cases[i].expect_rc);
		if (cases[i].expect_rc == STORE_OK)
			assert_true(e > f->epoch);
		store_close(other);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_renews_alone, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_loop_stalls, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_taken_over, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_renewals_fail, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_release, setup, teardown),
	};
	const char *base = getenv("TMPDIR");
	char cmd[300];
	int rc;

	snprintf(tmpdir, sizeof(tmpdir), "%s/va-test-lease-XXXXXX",
		 base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	log_set_level(LOG_LEVEL_ERROR);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	return rc;
}
