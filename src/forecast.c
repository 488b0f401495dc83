/*
 * forecast.c: the forecaster of predictive scaling (see forecast.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forecast.h"
#include "util.h"

#define NO_MINUTE INT64_MIN

struct forecast_history {
	float v[FORECAST_HISTORY_MIN]; /* ring, oldest at head */
	size_t head, len;
	int64_t cur_min;               /* the minute being accumulated */
	double sum;
	unsigned count;
};

struct forecast_history *
forecast_history_new(void)
{
	struct forecast_history *h = xcalloc(1, sizeof(*h));

	h->cur_min = NO_MINUTE;
	return h;
}

void
forecast_history_free(struct forecast_history *h)
{
	free(h);
}

void
forecast_history_push(struct forecast_history *h, float value)
{
	if (!isfinite(value) || value < 0)
		value = NAN;
	else if (value > 1e9f)
		value = 1e9f;
	if (h->len < FORECAST_HISTORY_MIN) {
		h->v[(h->head + h->len) % FORECAST_HISTORY_MIN] = value;
		h->len++;
	} else {
		h->v[h->head] = value;
		h->head = (h->head + 1) % FORECAST_HISTORY_MIN;
	}
}

size_t
forecast_history_len(const struct forecast_history *h)
{
	return h->len;
}

float
forecast_history_at(const struct forecast_history *h, size_t i)
{
	if (i >= h->len)
		return NAN;
	return h->v[(h->head + i) % FORECAST_HISTORY_MIN];
}

static int64_t
minute_of(int64_t ms)
{
	return ms >= 0 ? ms / 60000 : -((-ms + 59999) / 60000);
}

void
forecast_history_resume(struct forecast_history *h, int64_t now_ms)
{
	h->cur_min = minute_of(now_ms);
	h->sum = 0;
	h->count = 0;
}

int64_t
forecast_history_minute(const struct forecast_history *h)
{
	return h->cur_min;
}

bool
forecast_history_add(struct forecast_history *h, int64_t now_ms,
		     double value)
{
	int64_t m = minute_of(now_ms);
	bool closed = false;

	if (h->cur_min == NO_MINUTE) {
		h->cur_min = m;
	} else if (m > h->cur_min) {
		int64_t gap = m - h->cur_min - 1;

		forecast_history_push(h, h->count ? (float)(h->sum / h->count)
						  : NAN);
		if (gap > FORECAST_HISTORY_MIN)
			gap = FORECAST_HISTORY_MIN;
		for (int64_t i = 0; i < gap; i++)
			forecast_history_push(h, NAN);
		h->cur_min = m;
		h->sum = 0;
		h->count = 0;
		closed = true;
	} else if (m < h->cur_min) {
		return false; /* the clock went back: ignore */
	}
	if (isfinite(value) && value >= 0) {
		h->sum += value > 1e9 ? 1e9 : value;
		h->count++;
	}
	return closed;
}

/* Mean of minutes [from, to) that have data; NaN if none. */
static double
mean_range(const struct forecast_history *h, int64_t from, int64_t to)
{
	double s = 0;
	unsigned c = 0;

	if (from < 0)
		from = 0;
	for (int64_t i = from; i < to; i++) {
		float v = forecast_history_at(h, (size_t)i);

		if (!isnan(v)) {
			s += v;
			c++;
		}
	}
	return c ? s / c : NAN;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Below this (instances), levels are compared with this added: an idle
 * group's ratio stays near 1 instead of dividing by zero. */
#define LEVEL_EPS 0.1

int
forecast_compute(const struct forecast_history *h, int buffer_min,
		 int window_min, struct forecast_result *r)
{
	int64_t n = (int64_t)h->len, lags[8];
	double ratios[8], now_level, cand[8], peak = -1;
	unsigned nlags = 0, used = 0;

	memset(r, 0, sizeof(*r));
	if (buffer_min < 0 || window_min < 1 ||
	    buffer_min + window_min > FORECAST_HORIZON_MAX_MIN ||
	    n < FORECAST_DAY_MIN)
		return -1;
	/* Under a week: every earlier day (a robust median of the days).
	 * From a week on: the same day last week (and two weeks ago), and
	 * yesterday: weekly patterns count, one odd day does not. */
	if (n >= FORECAST_WEEK_MIN) {
		lags[nlags++] = FORECAST_WEEK_MIN;
		if (n >= 2 * FORECAST_WEEK_MIN)
			lags[nlags++] = 2 * FORECAST_WEEK_MIN;
		lags[nlags++] = FORECAST_DAY_MIN;
	} else {
		for (int64_t d = 1; d * FORECAST_DAY_MIN <= n && d < 7; d++)
			lags[nlags++] = d * FORECAST_DAY_MIN;
	}
	now_level = mean_range(h, n - FORECAST_LEVEL_MIN, n);
	for (unsigned l = 0; l < nlags; l++) {
		double then = mean_range(h, n - FORECAST_LEVEL_MIN - lags[l],
					 n - lags[l]);
		double q;

		if (isnan(now_level) || isnan(then)) {
			ratios[l] = 1; /* no level to compare: as it was */
			continue;
		}
		q = (now_level + LEVEL_EPS) / (then + LEVEL_EPS);
		if (q > FORECAST_RATIO_MAX)
			q = FORECAST_RATIO_MAX;
		if (q < 1 / FORECAST_RATIO_MAX)
			q = 1 / FORECAST_RATIO_MAX;
		ratios[l] = q;
	}
	for (unsigned l = 0; l < nlags; l++)
		if (lags[l] == FORECAST_DAY_MIN)
			r->ratio = ratios[l];
	for (int w = 0; w < window_min; w++) {
		int64_t j = n + buffer_min + w; /* the minute forecast */
		unsigned c = 0;
		double s;

		for (unsigned l = 0; l < nlags; l++) {
			float v = forecast_history_at(h, (size_t)(j - lags[l]));

			if (j - lags[l] < 0 || j - lags[l] >= n || isnan(v))
				continue;
			cand[c++] = v * ratios[l];
		}
		if (c > used)
			used = c;
		if (!c)
			continue;
		qsort(cand, c, sizeof(*cand), cmp_double);
		s = c % 2 ? cand[c / 2] : (cand[c / 2 - 1] + cand[c / 2]) / 2;
		r->minutes++;
		if (s > peak)
			peak = s;
	}
	if (!r->minutes || !isfinite(peak) || peak < 0)
		return -1;
	r->peak = peak;
	r->lags = used;
	return 0;
}
