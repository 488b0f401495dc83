/*
 * Unit tests for history.c: the status page's ring of a group's plans.
 * Points come back oldest first; a full ring drops its oldest; a resize
 * keeps the newest that fit; the size follows retention / interval
 * within its bounds; a reference outlives the group that made it.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "history.h"

static struct history_point
point(int64_t t)
{
	struct history_point p = {.t_ms = t, .desired = (int32_t)t,
				  .current = (int32_t)t + 1, .ready = (int32_t)t + 2};

	for (int m = 0; m < POLICY_METRIC_LAST; m++) {
		p.metric[m] = NAN;
		p.target[m] = 0;
	}
	p.metric[POLICY_METRIC_CPU] = (float)t / 2;
	p.target[POLICY_METRIC_CPU] = 60;
	return p;
}

/* The ring holds exactly the times first..last, in order. */
static void
expect(struct history *h, int64_t first, int64_t last)
{
	struct history_point *v;
	size_t n = history_read(h, &v);

	assert_int_equal(n, (size_t)(last - first + 1));
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(v[i].t_ms, first + (int64_t)i);
		assert_int_equal(v[i].desired, (int32_t)(first + (int64_t)i));
		assert_int_equal(v[i].ready, (int32_t)(first + (int64_t)i) + 2);
		assert_true(v[i].metric[POLICY_METRIC_CPU] == (float)(first + (int64_t)i) / 2);
		assert_true(isnan(v[i].metric[POLICY_METRIC_MEMORY]));
	}
	free(v);
}

static void
test_ring(void **state)
{
	struct history *h = history_new(4);
	struct history_point *v;

	(void)state;
	assert_int_equal(history_read(h, &v), 0);
	assert_null(v);
	for (int64_t t = 1; t <= 3; t++) {
		struct history_point p = point(t);

		history_add(h, &p);
	}
	expect(h, 1, 3);
	for (int64_t t = 4; t <= 10; t++) {
		struct history_point p = point(t);

		history_add(h, &p);
	}
	expect(h, 7, 10); /* full: the oldest went */
	history_resize(h, 2);
	expect(h, 9, 10); /* the newest that fit */
	history_resize(h, 6);
	expect(h, 9, 10);
	for (int64_t t = 11; t <= 20; t++) {
		struct history_point p = point(t);

		history_add(h, &p);
	}
	expect(h, 15, 20);
	history_put(h);
}

static void
test_capacity(void **state)
{
	(void)state;
	/* 15 minutes at 10 s: both ends */
	assert_int_equal(history_capacity_for(15 * 60000, 10000), 91);
	assert_int_equal(history_capacity_for(1000, 1000), 2);
	assert_int_equal(history_capacity_for(0, 1000), 2);
	assert_int_equal(history_capacity_for(30LL * 86400000, 1000), HISTORY_MAX_POINTS);
	assert_int_equal(history_capacity_for((int64_t)HISTORY_MAX_POINTS * 1000, 1000),
			 HISTORY_MAX_POINTS);
	{
		struct history *h = history_new(1000000);
		struct history_point *v;

		for (int64_t t = 0; t < HISTORY_MAX_POINTS + 10; t++) {
			struct history_point p = point(t);

			history_add(h, &p);
		}
		assert_int_equal(history_read(h, &v), HISTORY_MAX_POINTS);
		assert_int_equal(v[0].t_ms, 10);
		free(v);
		history_put(h);
	}
}

/* A snapshot's reference keeps the ring when its group goes (reload). */
static void
test_refs(void **state)
{
	struct history *h = history_new(4);
	struct history *snap = history_ref(h);
	struct history_point p = point(1);

	(void)state;
	history_add(h, &p);
	history_put(h);       /* the group is gone */
	expect(snap, 1, 1);   /* a reader still sees it (ASan: no use after free) */
	history_put(snap);
	history_put(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_refs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
