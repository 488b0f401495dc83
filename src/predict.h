/*
 * predict.h: predictive scaling in the daemon (docs/scaling.md,
 * "Predictive scaling"). A group with scaling.predictive (mode
 * forecast_only or forecast_and_scale) keeps its load history (forecast.h:
 * one-minute means of the load its decisions measured, two weeks) and its
 * last forecast, recomputed when a minute closes: at most once a minute.
 *
 * The history survives restarts in the state store (store_load_*()): a
 * group's last two weeks are loaded when the group is set up (at start,
 * or when a reload turns predictive on); the minutes closed since are
 * written for every group in one transaction when a minute closes; a
 * write the store refuses is kept (up to PREDICT_PENDING_MAX minutes per
 * group) and retried with the next; rows older than two weeks are pruned
 * hourly (housekeeping). The forecaster itself is pure (forecast.c); the
 * floor reaches the pure planner through converge_input.forecast.
 *
 * Threads: the loop's only, like struct dgroup that holds it.
 */
#ifndef VA_PREDICT_H
#define VA_PREDICT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "policy.h"
#include "store.h"
#include "util.h"

/* Minutes a group keeps for the store while it refuses them. */
#define PREDICT_PENDING_MAX 120

struct predict;
struct daemon;
struct dgroup;

/* Free what p holds; accepts NULL. */
void predict_free(struct predict *p);

/*
 * The group's predictive state for a setup (groups.c): NULL when its
 * mode is off; prev's (the same group before a reload) when it had one,
 * its forecast recomputed for the new buffer and window; else a new one
 * with the stored history of its last two weeks loaded.
 * 0 and *out, or -1 + err_set() when the store cannot be read.
 */
int predict_setup(struct store *s, const struct config_group *gc,
		  struct predict *prev, int64_t wall_ms, struct predict **out);

/* A decision measured load (instances, converge_plan.load; NaN: none)
 * at wall_ms: into the minute's mean; when a minute closes, the minute
 * is queued for the store and the forecast recomputed. */
void predict_note(struct predict *p, const struct policy_params *pp,
		  int64_t wall_ms, double load);

/* The last forecast as a capacity floor (instances): true and *floor,
 * or false when there is none (under a day of history, no data). */
bool predict_floor(const struct predict *p, int *floor);

/* Write the minutes every group closed since the last write, in one
 * transaction (nothing to do most turns); a refusal is logged
 * (rate-limited) and the minutes kept for the next. */
void predict_flush(struct daemon *d);

/* Housekeeping: delete every group's rows older than two weeks. */
void predict_prune(struct daemon *d);

/*
 * The group's forecast for GET /v1/groups(/NAME), `status` and
 * `explain`: {"mode", "buffer_s", "window_s", "history_minutes",
 * "forecast" (the floor, or null), "peak" (instances, or null),
 * "updated_s" (seconds since it was computed, or null), "why" (why
 * there is none, or null), "unsaved_minutes"}; NULL without predictive.
 * Caller frees.
 */
char *predict_json(const struct dgroup *g, int64_t wall_ms);

/* /metrics: va_group_forecast{group} (the floor, while there is one) and
 * va_group_forecast_load{group} (the peak load forecast, instances). */
void predict_prom(struct daemon *d, struct strbuf *sb);

#endif
