/*
 * scaler_int.h: what the parts of the scaler share: scaler.c (the tick,
 * the operators' commands, job results), scaler_inputs.c (the planner's
 * inputs) and scaler_actions.c (the plan's actions applied). Nothing
 * outside them includes it: daemon_int.h has the scaler's interface.
 */
#ifndef VA_SCALER_INT_H
#define VA_SCALER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "daemon_int.h"

/* What one pass over every instance tells about the hosts. */
struct tick {
	struct store_instance_list all;  /* live, draining and deleting ones */
	int *group_of;                   /* all.v[i]'s group index, -1 */
	int *host_of;                    /* all.v[i]'s host index, -1 */
	uint32_t *host_instances;        /* per host */
	uint32_t *group_host;            /* per group x host */
	uint32_t *pending_vcpus;         /* per host: not running yet */
	uint64_t *pending_mem;
	char (*busy)[STORE_ID_LEN + 1];  /* sorted */
	size_t n_busy;
	struct store_hook_wait *waits;   /* lifecycle hook waits, by id */
	size_t n_waits;
};

/* scaler_inputs.c */
/* List every instance and what it tells about the hosts into t (then
 * tick_release()); -1 when the store did not answer (logged). */
int tick_gather(struct daemon *d, struct tick *t);
void tick_release(struct tick *t);
/* Placement records of the group's hosts, from the last measurements
 * (caller frees); *pending counts those not measured yet. */
struct va_placement_host *
placement_hosts(struct daemon *d, const struct dgroup *g, const struct tick *t,
		size_t *pending);
/* The group's app metrics measured outside into in->ext_*. */
void source_values(struct daemon *d, struct dgroup *g, struct converge_input *in,
		   int64_t now, char *why, size_t whylen);
/* The group's instances as the planner sees them (caller frees; *rows:
 * each one's row in t->all, caller frees). */
struct converge_instance *
group_instances(struct daemon *d, struct dgroup *g, const struct tick *t,
		size_t **rows, size_t *n_out, int64_t now);

/* scaler_actions.c */
/* Apply the plan's actions in order (rows: group_instances()'s). */
/* sized: the store took the plan's refresh row (refresh_commit()); if
 * not, the plan's starts and removals are skipped. */
void scaler_apply(struct daemon *d, struct dgroup *g, struct tick *t, const size_t *rows,
		  const struct converge_input *in, const struct converge_plan *plan,
		  bool sized);
/* The lifecycle hooks' workers' reports: events and counters. */
void hook_reports(struct daemon *d);
/* Waits whose instance left its wait state end. */
void hook_waits_prune(struct daemon *d, const struct tick *t);

#endif
