/*
 * simulate.h: replay a request-rate trace through the real decision
 * engine (policy_decide) with a simple VM model, as `virt-autoscaler
 * simulate`, the unit tests and the benchmarks do. The model:
 *   - each second, demand = the trace value; a VM handles `capacity`
 *     requests/s at 100 % CPU;
 *   - a ready VM's CPU that second = min(100 %, demand / (ready x
 *     capacity)); the engine sees, per VM, the average over the seconds
 *     it was ready since the previous decision (as the daemon measures
 *     CPU time over its collection interval), warm-up applied;
 *   - a VM becomes ready boot_delay after the decision that started it;
 *     removal is immediate, newest first;
 *   - the engine is consulted every p->interval_ms (first at that time).
 * Seconds are simulated from 0 to n-1; the group starts with `initial`
 * VMs already ready.
 */
#ifndef VA_SIMULATE_H
#define VA_SIMULATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "policy.h"

struct sim_options {
	double capacity;       /* requests/s per VM at 100 % CPU (> 0) */
	int64_t boot_delay_ms; /* decision -> ready */
	time_t start;          /* UTC time of the trace's first second, for
				* schedules (default Monday 2024-01-01 00:00) */
	int initial;           /* VMs ready at second 0; -1: the policy's min */
	/* Optional observers (NULL: none). t is the second of the trace. */
	void (*on_decision)(void *arg, uint64_t t,
			    const struct policy_decision *d,
			    const struct policy_params *p);
	void (*on_second)(void *arg, uint64_t t, uint32_t demand, int ready,
			  int vms);
	void *arg;
};

struct sim_result {
	double vm_hours;                    /* VM existence, start to removal */
	uint64_t under_provisioned_seconds; /* demand > ready x capacity */
	uint64_t excess_requests;           /* sum of demand - ready capacity */
	uint64_t scale_actions;             /* decisions that changed the size */
	int min_vms, max_vms;               /* VMs existing, over all seconds */
	uint64_t decisions;                 /* engine consultations */
};

/* capacity 40 req/s, boot delay 60 s, start 2024-01-01, initial -1. */
void sim_options_defaults(struct sim_options *o);

/*
 * Run trace[0..n-1] through p. Returns 0 and fills *r, or -1 with
 * err_set() on invalid options (capacity <= 0, negative boot delay,
 * interval <= 0, n == 0).
 */
int sim_run(const struct policy_params *p, const uint32_t *trace, size_t n,
	    const struct sim_options *o, struct sim_result *r);

#endif
