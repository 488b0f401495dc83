/*
 * history.h: a group's recent plans, for the status page (GET
 * /v1/overview, docs/http-api.md): a bounded ring of points, one per plan
 * (the group's scaling.interval), each with the sizes after the plan and
 * the metrics the decision read against their targets.
 *
 * The loop adds a point at every plan; HTTP threads copy the ring out
 * (history_read) under its own lock, so a request never queries the
 * metrics store or the state store for it and never reads loop state.
 * Reference-counted: the loop's group holds one reference and every
 * snapshot that shows the group another (control.h), so a ring outlives
 * a reload that drops its group until the last reader lets go.
 */
#ifndef VA_HISTORY_H
#define VA_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/* At most this many points per group: the window the page shows is
 * daemon.metrics.retention, or HISTORY_MAX_POINTS plans when that is
 * shorter (4096 plans: 68 min at a 1 s interval). */
#define HISTORY_MAX_POINTS 4096

struct history_point {
	int64_t t_ms;                     /* wall clock of the plan */
	int32_t desired, current, ready;  /* after the plan */
	float metric[POLICY_METRIC_LAST]; /* the decision's input; NaN: none */
	float target[POLICY_METRIC_LAST]; /* target tracking; 0: not tracked */
	int32_t forecast;                 /* predictive floor shown; -1: none */
};

struct history;

/* The ring's size for a window of retention_ms at one point per
 * interval_ms: 2 .. HISTORY_MAX_POINTS. */
size_t history_capacity_for(int64_t retention_ms, int64_t interval_ms);

/* A new, empty ring of cap points (clamped as above), one reference. */
struct history *history_new(size_t cap);
/* Another reference to h (any thread); returns h. */
struct history *history_ref(struct history *h);
/* Drop a reference; the last frees. Accepts NULL. Any thread. */
void history_put(struct history *h);

/* The loop: change the size (a reload changed the interval or the
 * retention), keeping the newest points that fit. */
void history_resize(struct history *h, size_t cap);
/* The loop: append p, dropping the oldest point when full. */
void history_add(struct history *h, const struct history_point *p);

/* Any thread: a copy of the points, oldest first, into *out (the caller
 * frees it; NULL when there are none). Returns how many. */
size_t history_read(struct history *h, struct history_point **out);

#endif
