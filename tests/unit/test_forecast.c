/*
 * Unit tests for forecast.c: synthetic daily and weekly signals, gaps, a
 * level shift, a one-day burst, an idle group, and random input that must
 * never give a negative, NaN or infinite forecast.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "forecast.h"

#define DAY FORECAST_DAY_MIN

typedef double (*signal_fn)(int64_t minute);

static struct forecast_history *
fill(signal_fn f, int64_t minutes)
{
	struct forecast_history *h = forecast_history_new();

	for (int64_t i = 0; i < minutes; i++)
		forecast_history_push(h, (float)f(i));
	return h;
}

static double
daily(int64_t m)
{
	return 5 + 3 * sin(2 * M_PI * (double)m / DAY);
}

/* the true peak of f over the minutes [from, from + len) */
static double
peak_of(signal_fn f, int64_t from, int len)
{
	double p = -1;

	for (int64_t i = from; i < from + len; i++)
		if (f(i) > p)
			p = f(i);
	return p;
}

/* Under a day of history there is no forecast; bad windows neither. */
static void
test_too_short(void **state)
{
	struct forecast_history *h = fill(daily, DAY - 1);
	struct forecast_result r;

	(void)state;
	assert_int_equal(forecast_compute(h, 5, 15, &r), -1);
	forecast_history_push(h, 5);
	assert_int_equal(forecast_compute(h, 5, 15, &r), 0);
	assert_int_equal(forecast_compute(h, -1, 15, &r), -1);
	assert_int_equal(forecast_compute(h, 5, 0, &r), -1);
	assert_int_equal(forecast_compute(h, 600, 121, &r), -1);
	forecast_history_free(h);
}

/* A clean daily cycle: the forecast is the window's true peak, at every
 * time of day, with 1 to 16 days of history. */
static void
test_daily(void **state)
{
	(void)state;
	for (int64_t days = 1; days <= 16; days += 3) {
		for (int64_t at = 0; at < DAY; at += 97) {
			int64_t n = days * DAY + at;
			struct forecast_history *h = fill(daily, n);
			struct forecast_result r;

			assert_int_equal(forecast_compute(h, 5, 15, &r), 0);
			assert_float_equal(r.peak, peak_of(daily, n + 5, 15), 1e-3);
			assert_int_equal(r.minutes, 15);
			forecast_history_free(h);
		}
	}
}

/* Weekdays at 10, weekends at 2 (days 5 and 6 of each week). */
static double
weekly(int64_t m)
{
	return (m / DAY) % 7 >= 5 ? 2 : 10;
}

/* With two weeks of history, Saturday is forecast as a Saturday (the
 * same day one and two weeks ago outvote yesterday), and Monday as a
 * Monday. */
static void
test_weekly(void **state)
{
	struct forecast_history *h;
	struct forecast_result r;

	(void)state;
	h = fill(weekly, 19 * DAY); /* the next minute is a Saturday */
	assert_int_equal(forecast_compute(h, 5, 15, &r), 0);
	assert_float_equal(r.peak, 2, 1e-6);
	assert_int_equal(r.lags, 3);
	forecast_history_free(h);
	h = fill(weekly, 21 * DAY); /* Monday, after a weekend */
	assert_int_equal(forecast_compute(h, 5, 15, &r), 0);
	assert_float_equal(r.peak, 10, 1e-6);
	forecast_history_free(h);
}

static int64_t gap_from, gap_len;

static double
daily_with_gap(int64_t m)
{
	return m >= gap_from && m < gap_from + gap_len ? NAN : daily(m);
}

/* Gaps: a lag with no data at a minute is left out; a window whose every
 * lag is a gap has no forecast (not zero); the recent level missing
 * leaves the seasonal values unscaled. */
static void
test_gaps(void **state)
{
	struct forecast_history *h;
	struct forecast_result r;
	int64_t n = 4 * DAY + 300;

	(void)state;
	/* yesterday's window is missing: the other days answer */
	gap_from = n - DAY;
	gap_len = 60;
	h = fill(daily_with_gap, n);
	assert_int_equal(forecast_compute(h, 5, 15, &r), 0);
	assert_float_equal(r.peak, peak_of(daily, n + 5, 15), 1e-3);
	forecast_history_free(h);
	/* one day of history and its window missing: no forecast */
	n = DAY + 300;
	gap_from = 0;
	gap_len = 400;
	h = fill(daily_with_gap, n);
	assert_int_equal(forecast_compute(h, 5, 15, &r), -1);
	forecast_history_free(h);
	/* the last hour missing: no level, the days as they were */
	n = 3 * DAY + 300;
	gap_from = n - 60;
	gap_len = 60;
	h = fill(daily_with_gap, n);
	assert_int_equal(forecast_compute(h, 5, 15, &r), 0);
	assert_float_equal(r.ratio, 1, 1e-9);
	assert_float_equal(r.peak, peak_of(daily, n + 5, 15), 1e-3);
	forecast_history_free(h);
}

static int64_t shift_at;

static double
shifted(int64_t m)
{
	return m >= shift_at ? 5 : 4;
}

/* The level rose by a quarter two hours ago: the forecast follows the
 * recent level, not the days before. */
static void
test_level_shift(void **state)
{
	struct forecast_history *h;
	struct forecast_result r;
	int64_t n = 3 * DAY + 500;

	(void)state;
	shift_at = n - 120;
	h = fill(shifted, n);
	assert_int_equal(forecast_compute(h, 5, 15, &r), 0);
	assert_float_equal(r.ratio, (5 + 0.1) / (4 + 0.1), 1e-6);
	assert_float_equal(r.peak, 4 * (5 + 0.1) / (4 + 0.1), 1e-4);
	forecast_history_free(h);
	/* a tenfold jump is clamped to FORECAST_RATIO_MAX */
	shift_at = n - 120;
	h = forecast_history_new();
	for (int64_t i = 0; i < n; i++)
		forecast_history_push(h, i >= shift_at ? 100 : 2);
	assert_int_equal(forecast_compute(h, 5, 15, &r), 0);
	assert_float_equal(r.ratio, FORECAST_RATIO_MAX, 1e-9);
	assert_float_equal(r.peak, 2 * FORECAST_RATIO_MAX, 1e-4);
	forecast_history_free(h);
}

static int64_t burst_at;

static double
burst(int64_t m)
{
	return m >= burst_at && m < burst_at + 10 ? 50 : 4;
}

/* A burst on one earlier day is an accident, not a pattern: with five
 * days the median ignores it. */
static void
test_burst(void **state)
{
	struct forecast_history *h;
	struct forecast_result r;
	int64_t n = 5 * DAY + 200;

	(void)state;
	burst_at = n - DAY + 8; /* yesterday, inside the window */
	h = fill(burst, n);
	assert_int_equal(forecast_compute(h, 5, 15, &r), 0);
	assert_float_equal(r.peak, 4, 1e-6);
	assert_int_equal(r.lags, 5);
	forecast_history_free(h);
}

/* An idle group: zero, not NaN (the level epsilon). */
static void
test_idle(void **state)
{
	struct forecast_history *h = forecast_history_new();
	struct forecast_result r;

	(void)state;
	for (int i = 0; i < 2 * DAY; i++)
		forecast_history_push(h, 0);
	assert_int_equal(forecast_compute(h, 5, 15, &r), 0);
	assert_true(r.peak == 0);
	forecast_history_free(h);
}

/* Minute means from observations, gaps for silent minutes, a clock that
 * goes back is ignored, invalid values are no data, and the ring keeps
 * the last two weeks. */
static void
test_history_add(void **state)
{
	struct forecast_history *h = forecast_history_new();

	(void)state;
	assert_false(forecast_history_add(h, 0, 1));
	assert_false(forecast_history_add(h, 10000, 3));
	assert_false(forecast_history_add(h, 20000, NAN));
	assert_false(forecast_history_add(h, 30000, -5));
	assert_true(forecast_history_add(h, 60000, 6));     /* closes 0: 2 */
	assert_false(forecast_history_add(h, 50000, 100));  /* back: ignored */
	assert_true(forecast_history_add(h, 240000, INFINITY)); /* 1; 2, 3 gaps */
	assert_true(forecast_history_add(h, 300000, 1));    /* 4: no data */
	assert_int_equal(forecast_history_len(h), 5);
	assert_float_equal(forecast_history_at(h, 0), 2, 1e-6);
	assert_float_equal(forecast_history_at(h, 1), 6, 1e-6);
	assert_true(isnan(forecast_history_at(h, 2)));
	assert_true(isnan(forecast_history_at(h, 3)));
	assert_true(isnan(forecast_history_at(h, 4)));
	assert_true(isnan(forecast_history_at(h, 5)));
	for (int i = 0; i < FORECAST_HISTORY_MIN + 7; i++)
		forecast_history_push(h, (float)i);
	assert_int_equal(forecast_history_len(h), FORECAST_HISTORY_MIN);
	assert_float_equal(forecast_history_at(h, 0), 7, 1e-6);
	/* a day-long silence is a day of gaps, at most the ring */
	assert_true(forecast_history_add(h, 400000, 1));
	assert_true(forecast_history_add(h, 400000 + 86400000LL * 30, 1));
	assert_int_equal(forecast_history_len(h), FORECAST_HISTORY_MIN);
	assert_true(isnan(forecast_history_at(h, FORECAST_HISTORY_MIN - 1)));
	forecast_history_free(h);
}

/* Random values, gaps, huge numbers: never negative, NaN or infinite. */
static void
test_random(void **state)
{
	unsigned seed = 12345;

	(void)state;
	for (int round = 0; round < 40; round++) {
		struct forecast_history *h = forecast_history_new();
		int64_t n = DAY + (int64_t)(rand_r(&seed) % (15 * DAY));
		struct forecast_result r;

		for (int64_t i = 0; i < n; i++) {
			int k = rand_r(&seed) % 20;
			float v = k == 0 ? NAN : k == 1 ? 3e38f : k == 2 ? 0
				: (float)(rand_r(&seed) % 1000) / 7;

			forecast_history_push(h, v);
		}
		if (forecast_compute(h, rand_r(&seed) % 60,
				     1 + rand_r(&seed) % 60, &r) == 0) {
			assert_true(isfinite(r.peak));
			assert_true(r.peak >= 0);
		}
		forecast_history_free(h);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_too_short),
		cmocka_unit_test(test_daily),
		cmocka_unit_test(test_weekly),
		cmocka_unit_test(test_gaps),
		cmocka_unit_test(test_level_shift),
		cmocka_unit_test(test_burst),
		cmocka_unit_test(test_idle),
		cmocka_unit_test(test_history_add),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
