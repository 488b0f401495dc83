/*
 * forecast.h: predictive scaling's forecaster. Pure: a group's recent
 * history of load (one-minute means, up to two weeks) goes in, the peak
 * load expected in a window a little ahead comes out. No I/O, no clock:
 * the daemon, `simulate` and the tests call the same functions.
 *
 * The load is measured in instances: what target tracking computes at a
 * decision before rounding (policy_load_instances(): value x ready /
 * target, the maximum over tracked metrics), so the forecast is directly
 * a capacity floor once rounded up.
 *
 * The method (docs/scaling.md, "Predictive scaling"), a seasonal-naive
 * blend: for each minute of the window, the value at the same minute on
 * earlier days (under a week of history: each of the last days; from a
 * week on: a week ago, two weeks ago and yesterday), each scaled by the
 * ratio of the recent level (mean of the last FORECAST_LEVEL_MIN
 * minutes) to the level at that time of its day, then the median of
 * these candidates; the forecast is the maximum over the window.
 */
#ifndef VA_FORECAST_H
#define VA_FORECAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FORECAST_DAY_MIN 1440
#define FORECAST_WEEK_MIN (7 * FORECAST_DAY_MIN)
/* The history keeps this many minutes (two weeks, 80 KiB of floats). */
#define FORECAST_HISTORY_MIN (2 * FORECAST_WEEK_MIN)
/* The recent level: the mean of the last this many minutes. */
#define FORECAST_LEVEL_MIN 15
/* The level ratio is clamped to [1 / this, this]. */
#define FORECAST_RATIO_MAX 1.5
/* buffer + window may not exceed this (a forecast reaches into the
 * future only as far as the shortest seasonal lag allows). */
#define FORECAST_HORIZON_MAX_MIN (12 * 60)

/*
 * One group's history of one-minute means, oldest first. Values are
 * accumulated per minute of a caller's clock (any monotonic
 * milliseconds); a minute with no value is a gap (NaN). Opaque.
 */
struct forecast_history;

struct forecast_history *forecast_history_new(void);
void forecast_history_free(struct forecast_history *h);
/*
 * Add one observation (load in instances) at now_ms; NaN, infinite or
 * negative values are ignored (no data is not zero). Returns true when
 * this closed one or more minutes (a new forecast may be computed:
 * forecasts change at most once a minute).
 */
bool forecast_history_add(struct forecast_history *h, int64_t now_ms,
			  double value);
/* Complete minutes held (at most FORECAST_HISTORY_MIN). */
size_t forecast_history_len(const struct forecast_history *h);
/* Minute i (0 = oldest); NaN for a gap or out of range. */
float forecast_history_at(const struct forecast_history *h, size_t i);
/* Append a complete minute (restoring a stored history); NaN = gap. */
void forecast_history_push(struct forecast_history *h, float value);
/*
 * After a restore: the minute of now_ms is the one being accumulated and
 * the history pushed so far ends with the minute before it; the next add
 * in a later minute closes it (a gap unless values came) and fills gaps.
 */
void forecast_history_resume(struct forecast_history *h, int64_t now_ms);
/* The minute being accumulated (now_ms / 60000 of the last add or
 * resume), INT64_MIN before any: the last complete minute held is the
 * one before it, minute i of the history is this - len + i. */
int64_t forecast_history_minute(const struct forecast_history *h);

struct forecast_result {
	double peak;      /* load expected at most (instances, >= 0) */
	double ratio;     /* recent level / its level a lag ago (the shortest) */
	unsigned lags;    /* seasonal lags that contributed */
	unsigned minutes; /* minutes of the window with a forecast */
};

/*
 * Forecast the window [now + buffer_min, now + buffer_min + window_min)
 * (minutes after the last complete one). Returns 0 and fills *r, or -1
 * when there is no forecast: under a day of history, buffer/window out
 * of range (window_min < 1, buffer_min < 0, buffer + window above
 * FORECAST_HORIZON_MAX_MIN), or no data at any of the window's lags.
 * r->peak is never negative, NaN or infinite.
 */
int forecast_compute(const struct forecast_history *h, int buffer_min,
		     int window_min, struct forecast_result *r);

#endif
