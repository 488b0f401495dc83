/*
 * converge_int.h: what the parts of the group planner share: converge.c
 * (the steps in order, health, the decision, growing), converge_shrink.c
 * (scale-in), converge_warm.c (the warm pool), converge_hooks.c
 * (lifecycle hooks), converge_refresh.c (instance refresh). Nothing
 * outside them includes it: converge.h is the planner's interface.
 */
#ifndef VA_CONVERGE_INT_H
#define VA_CONVERGE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "converge.h"

/* converge.c */
/* Append an action to the plan, its message formatted; the pointer is
 * valid until the next converge_add() to the same plan. */
struct converge_action *
converge_add(struct converge_plan *plan, enum converge_action_kind kind, size_t inst,
	     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Start up to `missing` new instances (for the warm pool when pool). */
void plan_grow(const struct converge_input *in, struct converge_state *st,
	       int missing, bool pool, struct converge_plan *plan);

/* converge_shrink.c */
/* Remove `surplus` live instances (state: the states as the plan
 * changes them, updated); during a refresh (due: which instances are
 * old, else NULL) old ones first. */
void plan_shrink(const struct converge_input *in, enum store_instance_state *state,
		 const bool *due, int surplus, struct converge_plan *plan);
/* The busy veto's events, once when it starts and once when it ends. */
void plan_busy_veto(const struct converge_input *in, struct converge_state *st,
		    struct converge_plan *plan);

/* converge_warm.c */
/* Draw up to `missing` warm instances; how many were drawn. */
int plan_draw(const struct converge_input *in, enum store_instance_state *state,
	      int missing, struct converge_plan *plan);
/* Warming and warm instances, in the plan's states. */
int count_pooled(const struct converge_input *in,
		 const enum store_instance_state *state);
/* Keep the pool at its target (refill, trim, park, resume again). */
void plan_pool(const struct converge_input *in, struct converge_state *st,
	       enum store_instance_state *state, struct converge_plan *plan);
/* Say in the decision how a scale-out was served (warm, cold, why). */
void note_served(const struct converge_input *in,
		 const enum store_instance_state *state, struct converge_plan *plan);

/* converge_hooks.c */
/* Lifecycle hooks' waits: begin, send again, end (step 6). */
void plan_hooks(const struct converge_input *in, enum store_instance_state *state,
		struct converge_plan *plan);
/* Scale-in's REMOVE a of ready instance i waits for the terminate hook
 * first (a may move: the caller drops it). */
void hook_wait_terminate(const struct converge_input *in, size_t i,
			 struct converge_action *a, struct converge_plan *plan);

#endif
