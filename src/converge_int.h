/*
 * converge_int.h: what the parts of the group planner (converge*.c)
 * share. Not an interface: converge.h is.
 */
#ifndef VA_CONVERGE_INT_H
#define VA_CONVERGE_INT_H

#include "converge.h"

/* Append an action to the plan, its message formatted. */
struct converge_action *converge_add(struct converge_plan *plan,
				     enum converge_action_kind kind,
				     size_t inst, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Ready instance i was chosen for removal (a: its REMOVE to draining): it
 * waits for its terminate hook first (a may move). */
void converge_hook_wait_terminate(const struct converge_input *in, size_t i,
				  struct converge_action *a,
				  struct converge_plan *plan);

#endif
