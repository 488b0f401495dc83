/*
 * groups.h: building the runtime of the configured groups (groups.c).
 * The loop's thread only.
 */
#ifndef VA_GROUPS_H
#define VA_GROUPS_H

#include "daemon_int.h"

/*
 * The groups of cfg, into *out (n_out of them). A group also in old[]
 * (same name) keeps what the loop knew of it (the planner's windows and
 * cooldown, desired, pause, last counts and decision), and the store's
 * desired size and pause flag win for the others; each size is clamped
 * into the group's bounds and written back to the store with generation
 * gen. File reads and placement plugins happen here. 0, or -1 with
 * err_set() (nothing is changed then; old[] is intact).
 */
int groups_setup(struct daemon *d, const struct config *cfg, int64_t gen,
		 struct dgroup *old, unsigned n_old, struct dgroup **out,
		 unsigned *n_out);
/* Free what a group holds. */
void group_release(struct dgroup *g);

#endif
