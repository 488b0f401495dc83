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
 *
 * Application metrics: an app metric named `requests_per_s` in the policy
 * is the trace's demand as the guests would report it: kind average,
 * each ready VM's mean of demand / ready VMs over the seconds it was
 * ready since the previous decision (uncapped: the requests that reach
 * it, served or not); kind total, the demand's mean over the interval.
 * Other app metric names have no data.
 *
 * Warm pool (o->warm.size > 0; docs/warm-pools.md): the group keeps up to
 * `size` prepared instances beyond desired (fewer when desired + warm
 * would pass `max_prepared`). At second 0 the pool is full and prepared.
 *   - a scale-out draws prepared warm instances first, each ready
 *     warm_boot_delay after the decision; the rest are cold provisions,
 *     ready boot_delay after it;
 *   - after every decision the pool is refilled to its size: a refill is
 *     a cold provision, prepared (drawable) boot_delay later; one still
 *     being prepared is not drawn; a pool above its size (the cap bit) is
 *     trimmed, the least prepared first;
 *   - with reuse, a scale-in returns removed instances (newest first) to
 *     the pool while it holds fewer than its size (refills under way
 *     count), prepared once the instance would have been ready;
 *   - accounting: an instance being prepared runs, and counts in
 *     vm_hours; a prepared one counts in warm_vm_hours when it holds
 *     only disk (saved, stopped), in vm_hours when it holds RAM (paused).
 *
 * Predictive scaling (p->predictive.mode not off): the simulator keeps
 * the group's history as the daemon does (policy_load_instances() at
 * every decision, one-minute means, forecast.h) and, once a minute,
 * passes forecast_compute()'s floor to policy_decide().
 */
#ifndef VA_SIMULATE_H
#define VA_SIMULATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "policy.h"

/* The group's warm pool as the simulator sees it (cmd_simulate.c maps
 * groups.*.warm_pool onto it). size 0: no pool. */
struct sim_warm_pool {
	int size;          /* prepared instances kept beyond desired */
	int max_prepared;  /* cap on desired + warm; 0: none */
	bool holds_ram;    /* paused: a prepared instance counts in vm_hours */
	bool reuse;        /* scale-in returns instances to the pool */
};

struct sim_options {
	double capacity;       /* requests/s per VM at 100 % CPU (> 0) */
	int64_t boot_delay_ms; /* decision -> ready */
	int64_t warm_boot_delay_ms; /* draw of a warm instance -> ready */
	struct sim_warm_pool warm;  /* size 0: none */
	time_t start;          /* UTC time of the trace's first second, for
				* schedules (default Monday 2024-01-01 00:00) */
	int initial;           /* VMs ready at second 0; -1: the policy's min */
	/* Figures count seconds from here on (the run still starts at 0:
	 * the policy, its state and the forecaster's history warm up on
	 * what comes before). 0: all. */
	uint64_t report_from;
	/* Optional observers (NULL: none). t is the second of the trace. */
	void (*on_decision)(void *arg, uint64_t t,
			    const struct policy_decision *d,
			    const struct policy_params *p);
	/* warm: the prepared warm instances that second */
	void (*on_second)(void *arg, uint64_t t, uint32_t demand, int ready,
			  int vms, int warm);
	void *arg;
};

struct sim_result {
	double vm_hours;                    /* VM existence, start to removal
					     * (warm ones being prepared or
					     * paused included) */
	double warm_vm_hours;               /* prepared warm instances that
					     * hold only disk (saved, stopped) */
	uint64_t warm_draws;                /* warm instances a scale-out took */
	uint64_t under_provisioned_seconds; /* demand > ready x capacity */
	uint64_t excess_requests;           /* sum of demand - ready capacity */
	uint64_t scale_actions;             /* decisions that changed the size */
	int min_vms, max_vms;               /* VMs existing, over all seconds */
	uint64_t decisions;                 /* engine consultations */
	uint64_t forecasts;                 /* decisions given a forecast */
	/*
	 * The oracle: the fewest VM-hours with no under-provisioned second,
	 * knowing the future. Each second needs max(1, ceil(demand /
	 * capacity)) VMs at 100 % CPU; a VM is started boot delay before
	 * it is needed (that time counts) and kept through a lull shorter
	 * than the boot delay; the VMs of the first second are there.
	 */
	double oracle_vm_hours;
};

/* capacity 40 req/s, boot delay 60 s, warm boot delay 2 s, no warm pool,
 * start 2024-01-01, initial -1. */
void sim_options_defaults(struct sim_options *o);

/*
 * Run trace[0..n-1] through p. Returns 0 and fills *r, or -1 with
 * err_set() on invalid options (capacity <= 0, negative boot delay or
 * warm boot delay, a negative pool size or cap, interval <= 0, n == 0).
 */
int sim_run(const struct policy_params *p, const uint32_t *trace, size_t n,
	    const struct sim_options *o, struct sim_result *r);

/* The oracle's VM-hours (above) over trace[from..n-1]. */
double sim_oracle_vm_hours(const uint32_t *trace, size_t n, size_t from,
			   double capacity, int64_t boot_delay_ms);

#endif
