/*
 * Predictive scaling in the daemon (predict.c) on a real SQLite store in a
 * temporary directory: the history a group loads at setup (gaps kept in
 * place, rows of a clock ahead left), the minutes it closes queued and
 * written in one batch for every group, a store that refuses them (kept
 * for the next minute), a restart that finds what was written, the
 * forecast recomputed when a minute closes and carried over a reload,
 * and the JSON the API shows.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon_int.h"
#include "forecast.h"
#include "log.h"
#include "predict.h"
#include "store.h"
#include "util.h"

/* 2027-01-15 10:00:00 UTC, on a minute */
#define WALL 1800000000000LL
#define NOW_MIN (WALL / 60000)

static char dir[256];
static int counter;

static struct store *
fresh_store(void)
{
	char *url = xasprintf("sqlite://%s/s%d.db", dir, counter++);
	struct store *s = store_open(url, NULL);

	if (!s)
		fail_msg("store_open(%s): %s", url, err_msg());
	free(url);
	return s;
}

static void
group_cfg(struct config_group *gc, const char *name, int mode)
{
	memset(gc, 0, sizeof(*gc));
	gc->name = (char *)name;
	policy_params_defaults(&gc->policy);
	gc->policy.target[POLICY_METRIC_CPU] = 60;
	gc->policy.predictive.mode = mode;
	gc->policy.predictive.buffer_ms = 60000;
	gc->policy.predictive.window_ms = 120000;
}

/* A JSON number of predict_json()'s text, by key; NAN for null. */
static double
json_num(const char *json, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	assert_non_null(p);
	p += strlen(pat);
	if (strncmp(p, "null", 4) == 0)
		return NAN;
	return strtod(p, NULL);
}

static char *
json_of(struct predict *p, const struct config_group *gc, int64_t wall)
{
	struct dgroup g;

	memset(&g, 0, sizeof(g));
	g.cfg = gc;
	g.pred = p;
	return predict_json(&g, wall);
}

static void
test_off(void **state)
{
	struct store *s = fresh_store();
	struct config_group gc;
	struct predict *p = (struct predict *)1;
	int floor;

	(void)state;
	group_cfg(&gc, "web", POLICY_PREDICTIVE_OFF);
	assert_int_equal(predict_setup(s, &gc, NULL, WALL, &p), 0);
	assert_null(p);
	assert_false(predict_floor(NULL, &floor));
	predict_note(NULL, &gc.policy, WALL, 1); /* nothing to do */
	policy_params_release(&gc.policy);
	store_close(s);
}

/* Two days stored with a gap and a row from a clock ahead: loaded in
 * place, the forecast at once; the JSON says so. */
static void
test_restore(void **state)
{
	struct store *s = fresh_store();
	struct config_group gc;
	struct predict *p = NULL;
	struct store_load_minute *v = xcalloc(3000, sizeof(*v));
	size_t n = 0;
	int floor = -1;
	char *json;

	(void)state;
	group_cfg(&gc, "web", POLICY_PREDICTIVE_FORECAST_AND_SCALE);
	/* 2880 minutes before now: 2, 5 from 2 to 12 minutes ahead on each
	 * earlier day; minutes 100..199 missing (an outage); one row at the
	 * current minute and one ahead (another clock): not loaded */
	for (int64_t m = NOW_MIN - 2880; m <= NOW_MIN + 1; m++) {
		int64_t ahead = ((m - NOW_MIN) % 1440 + 1440) % 1440;

		if (m >= NOW_MIN - 2880 + 100 && m < NOW_MIN - 2880 + 200)
			continue;
		v[n++] = (struct store_load_minute){
			"web", m, ahead >= 2 && ahead < 12 ? 5 : 2};
	}
	assert_int_equal(store_load_put(s, v, n), STORE_OK);
	assert_int_equal(predict_setup(s, &gc, NULL, WALL + 5000, &p), 0);
	assert_non_null(p);
	assert_true(predict_floor(p, &floor));
	assert_int_equal(floor, 5);
	json = json_of(p, &gc, WALL + 5000);
	/* from the first stored minute up to the one before now */
	assert_int_equal((int)json_num(json, "history_minutes"), 2880);
	assert_int_equal((int)json_num(json, "forecast"), 5);
	assert_true(json_num(json, "peak") == 5);
	assert_non_null(strstr(json, "\"mode\":\"forecast_and_scale\""));
	assert_non_null(strstr(json, "\"why\":null"));
	assert_int_equal((int)json_num(json, "buffer_s"), 60);
	assert_int_equal((int)json_num(json, "window_s"), 120);
	free(json);

	/* a reload keeps the same state (no store read: a closed store
	 * would fail it), the forecast recomputed for a new window: the
	 * window 1m..2m ahead only reaches the minute before the peak */
	{
		struct predict *q = NULL;

		gc.policy.predictive.window_ms = 60000;
		assert_int_equal(predict_setup(NULL, &gc, p, WALL + 6000, &q), 0);
		assert_ptr_equal(q, p);
		assert_true(predict_floor(p, &floor));
		assert_int_equal(floor, 2);
	}
	predict_free(p);
	free(v);
	policy_params_release(&gc.policy);
	store_close(s);
}

/* The daemon's side: minutes closed by its decisions are queued, written
 * in one batch for every group, kept while the store refuses, and found
 * again by the next start. */
static void
test_note_flush_restart(void **state)
{
	struct store *s = fresh_store();
	struct config_group gc[2];
	struct dgroup groups[2];
	struct daemon d;
	struct store_load_list l;
	int floor;
	char *json;

	(void)state;
	group_cfg(&gc[0], "web", POLICY_PREDICTIVE_FORECAST_ONLY);
	group_cfg(&gc[1], "api", POLICY_PREDICTIVE_FORECAST_AND_SCALE);
	memset(groups, 0, sizeof(groups));
	memset(&d, 0, sizeof(d));
	d.store = s;
	d.groups = groups;
	d.n_groups = 2;
	for (int i = 0; i < 2; i++) {
		groups[i].cfg = &gc[i];
		assert_int_equal(predict_setup(s, &gc[i], NULL, WALL, &groups[i].pred),
				 0);
		assert_false(predict_floor(groups[i].pred, &floor));
	}
	json = json_of(groups[0].pred, &gc[0], WALL);
	assert_non_null(strstr(json, "under a day of load history (0 of 1440 "
				     "minutes)"));
	assert_true(isnan(json_num(json, "forecast")));
	free(json);

	/* minute 0: 1 and 3 (mean 2); minute 1: no data (a gap); minute 2:
	 * 4; minute 3 opens: 0..2 close */
	predict_note(groups[0].pred, &gc[0].policy, WALL + 1000, 1);
	predict_note(groups[0].pred, &gc[0].policy, WALL + 30000, 3);
	predict_note(groups[1].pred, &gc[1].policy, WALL + 1000, 7);
	predict_note(groups[0].pred, &gc[0].policy, WALL + 61000, NAN);
	predict_note(groups[0].pred, &gc[0].policy, WALL + 121000, 4);
	predict_flush(&d); /* "api" has not closed a minute yet: web only */
	assert_int_equal(store_load_get(s, "web", 0, &l), STORE_OK);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.v[0].minute, NOW_MIN);
	assert_true(l.v[0].load == 2);
	store_load_list_release(&l);
	predict_note(groups[0].pred, &gc[0].policy, WALL + 181000, 9);
	predict_note(groups[1].pred, &gc[1].policy, WALL + 181000, 9);
	predict_flush(&d);
	predict_flush(&d); /* nothing new: nothing written twice */
	assert_int_equal(store_load_get(s, "web", 0, &l), STORE_OK);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.v[1].minute, NOW_MIN + 2);
	assert_true(l.v[1].load == 4);
	store_load_list_release(&l);
	assert_int_equal(store_load_get(s, "api", 0, &l), STORE_OK);
	assert_int_equal(l.n, 1);
	assert_true(l.v[0].load == 7);
	store_load_list_release(&l);

	/* the store refuses (a trigger, as an outage would): the minute
	 * is kept and written with the next one */
	{
		/* refuse by fencing the handle with a lease it does not hold */
		int64_t epoch = 0;

		assert_int_equal(store_lease_acquire(s, STORE_LEASE_LEADER, "a:1",
						     60000, &epoch), STORE_OK);
		store_fence_set(s, STORE_LEASE_LEADER, epoch + 1);
	}
	predict_note(groups[0].pred, &gc[0].policy, WALL + 241000, 5);
	predict_flush(&d);
	json = json_of(groups[0].pred, &gc[0], WALL + 241000);
	assert_int_equal((int)json_num(json, "unsaved_minutes"), 1);
	free(json);
	store_fence_set(s, NULL, 0);
	predict_note(groups[0].pred, &gc[0].policy, WALL + 301000, 6);
	predict_flush(&d);
	json = json_of(groups[0].pred, &gc[0], WALL + 301000);
	assert_int_equal((int)json_num(json, "unsaved_minutes"), 0);
	free(json);
	assert_int_equal(store_load_get(s, "web", 0, &l), STORE_OK);
	assert_int_equal(l.n, 4);
	assert_int_equal(l.v[2].minute, NOW_MIN + 3);
	assert_true(l.v[2].load == 9);
	assert_int_equal(l.v[3].minute, NOW_MIN + 4);
	assert_true(l.v[3].load == 5);
	store_load_list_release(&l);

	/* a restart two minutes later finds the minutes in place */
	{
		struct predict *p2 = NULL;

		assert_int_equal(predict_setup(s, &gc[0], NULL, WALL + 420000, &p2),
				 0);
		json = json_of(p2, &gc[0], WALL + 420000);
		/* minutes NOW_MIN .. NOW_MIN + 6 */
		assert_int_equal((int)json_num(json, "history_minutes"), 7);
		free(json);
		predict_free(p2);
	}

	/* the hourly prune (on the real clock): rows older than two weeks
	 * go, whatever their group */
	{
		struct store_load_minute old = {"gone",
						util_wall_ms() / 60000 - 30000, 1};

		assert_int_equal(store_load_put(s, &old, 1), STORE_OK);
		predict_prune(&d);
		assert_int_equal(store_load_get(s, "gone", 0, &l), STORE_OK);
		assert_int_equal(l.n, 0);
		store_load_list_release(&l);
		assert_int_equal(store_load_get(s, "web", 0, &l), STORE_OK);
		assert_int_equal(l.n, 4);
		store_load_list_release(&l);
	}
	for (int i = 0; i < 2; i++) {
		predict_free(groups[i].pred);
		policy_params_release(&gc[i].policy);
	}
	store_close(s);
}

/* The forecast is recomputed when a minute closes, not at every note. */
static void
test_once_a_minute(void **state)
{
	struct store *s = fresh_store();
	struct config_group gc;
	struct predict *p = NULL;
	struct store_load_minute *v = xcalloc(1440, sizeof(*v));
	int floor = -1;
	char *json;

	(void)state;
	group_cfg(&gc, "web", POLICY_PREDICTIVE_FORECAST_AND_SCALE);
	for (int i = 0; i < 1440; i++)
		v[i] = (struct store_load_minute){"web", NOW_MIN - 1440 + i, 3};
	assert_int_equal(store_load_put(s, v, 1440), STORE_OK);
	assert_int_equal(predict_setup(s, &gc, NULL, WALL, &p), 0);
	assert_true(predict_floor(p, &floor));
	assert_int_equal(floor, 3);
	/* within the minute: the same forecast, computed at setup */
	for (int k = 1; k < 59; k++)
		predict_note(p, &gc.policy, WALL + k * 1000, 3);
	json = json_of(p, &gc, WALL + 59000);
	assert_int_equal((int)json_num(json, "updated_s"), 59);
	free(json);
	predict_note(p, &gc.policy, WALL + 60000, 3);
	json = json_of(p, &gc, WALL + 60000);
	assert_int_equal((int)json_num(json, "updated_s"), 0);
	free(json);
	predict_free(p);
	free(v);
	policy_params_release(&gc.policy);
	store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_off),
		cmocka_unit_test(test_restore),
		cmocka_unit_test(test_note_flush_restart),
		cmocka_unit_test(test_once_a_minute),
	};
	const char *t = getenv("TMPDIR");
	int rc;

	log_set_level(LOG_LEVEL_ERROR);
	snprintf(dir, sizeof(dir), "%s/test_predict.XXXXXX", t ? t : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	if (rc == 0) {
		char *cmd = xasprintf("rm -rf '%s'", dir);

		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
		free(cmd);
	}
	return rc;
}
