/*
 * converge.h: what one group must do now, as a pure planner.
 *
 * The group's configuration, its instances as the state store has them,
 * what was last measured of them and of the hosts, and the clocks go in;
 * a list of actions comes out (mark unhealthy, replace, set the desired
 * size, start a new instance on a host, drain or remove one, record an
 * event). No I/O: no store, no libvirt, no clock reads, no globals. The
 * daemon's scaler (scaler.c) gathers the inputs and applies the actions;
 * the unit tests call the same function with tables (test_converge.c).
 *
 * The steps, in the order of the actions they emit:
 *   1. a manual `scale` applied since the last plan is entered into the
 *      policy state (so that the windows and the cooldown hold it and no
 *      decision undoes it at once);
 *   2. health: a booting instance that did not check in within
 *      health.ready_within, a ready one silent for health.heartbeat_timeout
 *      -> MARK_UNHEALTHY; then, with health.replace, unhealthy ones ->
 *      REPLACE, never more at once than health.max_replace and
 *      max_replace_share of the group (a network partition must not make
 *      us replace the whole group);
 *   3. the decision: policy_decide() (the engine `simulate` runs) on the
 *      ready instances' metrics -> SET_DESIRED when the size changes, an
 *      EVENT once when something wanted a change and damping held it;
 *   4. convergence: fewer live instances than desired -> START, at most
 *      CONVERGE_MAX_STARTS per plan, placed by the group's strategy (a
 *      static address from the group's range when it has one); more ->
 *      REMOVE, unhealthy and booting ones first, then the group's
 *      scale-in order among ready ones (busy ones are spared up to
 *      health.busy_max); instances still being created count against
 *      the surplus (they are removed once booting, rather than a
 *      serving one now). When busy ones hold the scale-in (busy veto),
 *      plan.busy_held says how many removals wait, and an EVENT
 *      scale_in_blocked is emitted once when that starts and
 *      scale_in_unblocked once when it ends.
 *   5. the warm pool (groups.*.warm_pool, docs/warm-pools.md): a
 *      scale-out draws warm instances first (DRAW: warm -> resuming, on
 *      the host the group's strategy chooses among those holding one) and
 *      starts new ones for the rest; scale-in returns ready instances to
 *      the pool when reuse_on_scale_in and the pool has room (REMOVE to
 *      warming); the pool is refilled (START with pool set: the new
 *      instance is warming) or trimmed to min(size, max - desired,
 *      max_prepared - desired); a warming instance that checked in is
 *      parked (PARK), a resuming one whose resume job this run has not
 *      seen end is resumed (RESUME: the jobs are idempotent, so after a
 *      crash this runs them again); a warming one that did not check in
 *      within health.ready_within, or a resuming one not ready within
 *      warm_pool.resume_within, is removed (the draw falls through to the
 *      next warm instance or a new one at the next plan).
 *   6. lifecycle hooks (groups.*.hooks, hooks.h), first of all: an
 *      instance in launch_wait (the check-in put it there) or
 *      terminate_wait (step 4 put it there instead of draining, with
 *      HOOK_WAIT at once) without a recorded wait -> HOOK_WAIT; with a
 *      result (completed through the API) or past its deadline (the
 *      hook's default_result) -> HOOK_END: launch continue -> ready,
 *      launch abandon -> deleting (replaced by the convergence), a
 *      terminate wait -> draining whatever the result; a wait whose
 *      call this run has not made (after a restart) -> HOOK_SEND. A
 *      wait whose hook was removed from the configuration ends as
 *      continue. launch_wait counts towards the size, not as ready.
 *   7. instance refresh (converge_refresh.c, docs/operations.md), between
 *      the decision and convergence: a refresh begins when the template
 *      changed (groups.*.refresh.auto), old instances are removed while
 *      max(desired - max_unavailable, min_healthy% of desired) stay
 *      ready, and convergence may start up to `surge` beyond desired
 *      while old ones remain (so new ones come first); scale-in takes
 *      old ones first; checkpoints pause it, rollback_after failed new
 *      instances roll it back to the previous template. The row it
 *      leaves in plan.refresh is written before the plan is applied.
 * A paused group gets no action: only its counts.
 *
 * Threads: none of its own; the caller owns everything it passes.
 */
#ifndef VA_CONVERGE_H
#define VA_CONVERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "place.h"
#include "policy.h"
#include "store.h"

/* At most this many new instances are started per group and plan. */
#define CONVERGE_MAX_STARTS 8

/* One instance of the group, as the store has it plus what is known of it. */
struct converge_instance {
	const char *id;
	const char *host;                /* NULL: not placed */
	const char *domain;              /* NULL: not named yet */
	const char *address;             /* static address, or NULL */
	enum store_instance_state state;
	int64_t created_ms, ready_ms, heartbeat_ms; /* wall clock; 0 = never */
	bool busy;                       /* the guest says it is busy ... */
	int64_t busy_since_ms;           /* ... since then (wall clock) */
	bool job;                        /* a worker job runs for it */
	int64_t updated_ms;              /* last state change (wall) */
	bool resumed;                    /* resuming: its resume job ended
					    well in this run */
	const char *template;            /* template hash it was built
					    from (template.h); NULL unknown */
	/* lifecycle hooks (launch_wait, terminate_wait): the wait's row in
	 * the store (store_hook_wait_*) exists, its deadline (wall) and
	 * result; this run has its call (queued, sent or given up) */
	bool hook_wait;
	int64_t hook_deadline_ms;
	enum store_hook_result hook_result;
	bool hook_sent;
	/* ready instances: the means over the last interval */
	double metric[POLICY_METRIC_LAST];
	bool metric_present[POLICY_METRIC_LAST];
	/* ready instances: the policy's app metrics (cfg->policy.app[i])
	 * reported recently (within two intervals), and when (wall) */
	double app[POLICY_APP_MAX];
	bool app_present[POLICY_APP_MAX];
	int64_t app_ms[POLICY_APP_MAX];
};

struct converge_input {
	const struct config_group *cfg;
	int64_t now_ms;                  /* monotonic */
	int64_t wall_ms;                 /* wall clock, as the store's times */
	struct tm local_time;            /* for schedules */
	bool have_local_time;
	int desired;                     /* the group's desired size now */
	bool paused;
	bool manual;                     /* `scale` set desired since the last plan ... */
	int manual_from;                 /* ... from this size */
	bool backoff;                    /* provisioning failed lately: no START */
	bool warm_backoff;               /* parking failed lately: no refill */
	const struct converge_instance *v; /* the group's instances */
	size_t n;
	/* the group's hosts (cfg->hosts order), as measured; START actions
	 * commit to them (place_host_commit), so the caller passes a copy */
	struct va_placement_host *hosts;
	size_t n_hosts;
	/* of those, connected or connecting for the first time but not
	 * measured yet (after a start): not "down", and no reason to say
	 * "hosts full" while placement waits for them */
	size_t n_hosts_pending;
	struct place_strategy *place;    /* the group's strategy */
	/* ids for new instances (minted by the caller, used in order): at
	 * most this many START actions */
	const char (*new_ids)[STORE_ID_LEN + 1];
	size_t n_new_ids;
	/* app metrics measured outside (cfg->policy.app[i].source[0]):
	 * the group figure when ext_present[i], else why it is unknown */
	double ext_app[POLICY_APP_MAX];
	bool ext_present[POLICY_APP_MAX];
	const char *ext_why[POLICY_APP_MAX];
	/* predictive scaling: the forecaster's capacity floor for the
	 * window ahead (policy_input.forecast), when have_forecast */
	bool have_forecast;
	int forecast;
	/* instance refresh (converge_refresh.c): the template the
	 * configuration names (template_hash(); NULL: none known, no
	 * refresh), the group's refresh row (NULL: none ever), and new
	 * instances of the refresh whose provisioning failed since the
	 * last plan (the scaler counts them as its jobs end) */
	const char *template;
	const struct store_refresh *refresh;
	int refresh_failed_starts;
};

/* What the planner remembers of a group between plans (the caller keeps it). */
struct converge_state {
	struct policy_state *pst;        /* the engine's windows and cooldown */
	int hold_key[4];                 /* the last held decision, recorded once */
	bool full;                       /* "hosts full" (or addresses) said */
	bool busy_held;                  /* "scale-in held" (busy veto) said */
	char why[512];                   /* ... and why, while it lasts */
};

/* Initialise: a new policy state, nothing said yet. */
void converge_state_init(struct converge_state *st);
void converge_state_release(struct converge_state *st);

enum converge_action_kind {
	CONVERGE_MARK_UNHEALTHY, /* inst: ready/booting -> unhealthy; message */
	CONVERGE_REPLACE,        /* inst: unhealthy -> deleting, remove it now */
	CONVERGE_SET_DESIRED,    /* desired -> to; message: the decision */
	CONVERGE_EVENT,          /* event kind, message */
	CONVERGE_START,          /* new_ids[inst] on hosts[host], address */
	CONVERGE_REMOVE,         /* inst -> state (draining/deleting, or
				    warming: back to the pool), drain_ms */
	CONVERGE_DRAW,           /* inst: warm -> resuming, resume it */
	CONVERGE_PARK,           /* inst: warming, checked in: park it */
	CONVERGE_RESUME,         /* inst: resuming: run its resume again */
	CONVERGE_HOOK_WAIT,      /* inst waits for hook: record the wait
				    (deadline = wall + drain_ms), send it */
	CONVERGE_HOOK_SEND,      /* inst's wait is recorded, but this run
				    has not sent it (a restart): send it */
	CONVERGE_HOOK_END,       /* inst's wait ends with result: -> state
				    (ready, deleting, draining: drain_ms);
				    event: hook_completed or hook_timeout */
	CONVERGE_LAST
};

struct converge_action {
	enum converge_action_kind kind;
	size_t inst;                     /* index into converge_input.v */
	size_t host;                     /* START: index into converge_input.hosts */
	int to;                          /* SET_DESIRED */
	enum store_instance_state state; /* REMOVE: the state it goes to */
	int64_t drain_ms;                /* REMOVE */
	char address[46];                /* START: "" when none */
	const char *event;               /* EVENT: its kind; REMOVE: the
					    event's kind when not scale_in
					    (static strings) */
	bool pool;                       /* START: for the warm pool */
	enum store_hook hook;            /* HOOK_*: which hook */
	enum store_hook_result result;   /* HOOK_END: continue or abandon */
	char *message;                   /* owned; "" when none */
};

struct converge_plan {
	struct converge_action *v;       /* in the order to apply them */
	size_t n, alloc;
	bool decided;                    /* the engine was consulted ... */
	struct policy_decision decision; /* ... and said this */
	int desired;                     /* after the plan */
	int live, ready;                 /* instances counting towards the size, serving */
	/* busy veto: removals the plan wanted but could not choose because
	 * the candidates are busy (0: none held), and how many busy ones
	 * were spared */
	int busy_held, busy_spared;
	/* a START waits for hosts not measured yet (n_hosts_pending) */
	bool waiting_for_hosts;
	/* the warm pool after the plan: warming (incl. checked in), warm,
	 * the pool's target, and this plan's draws and cold starts */
	int warming, warm, warm_target, draws, cold_starts;
	/* instance refresh: the group's refresh row after the plan, to be
	 * written first when refresh_changed (a refresh began, made a
	 * batch, paused, rolled back or ended); the template START actions
	 * build from (""; none known: the configuration's) */
	struct store_refresh refresh;
	bool refresh_changed, have_refresh;
	char start_template[65];
	int refresh_old;                 /* instances still to replace */
	/* the load the decision measured, in instances
	 * (policy_load_instances()): what predictive scaling records; NaN
	 * when none (no decision, no data) */
	double load;
};

/*
 * Plan the group's actions. Reads in, updates st (the engine's state, what
 * was said), fills plan (which the caller releases). in->hosts is updated
 * by the placements of START actions.
 */
void converge_group(const struct converge_input *in, struct converge_state *st,
		    struct converge_plan *plan);
void converge_plan_release(struct converge_plan *plan);

const char *converge_action_name(enum converge_action_kind k);

/* Live = counts towards the group's size. */
bool converge_state_live(enum store_instance_state st);
/* In the warm pool (warming or warm): not live, not serving. */
bool converge_state_pooled(enum store_instance_state st);
/*
 * Instance refresh, the planner's step before convergence (called by
 * converge_group(); here for the tests): begins a refresh when the
 * template changed (groups.*.refresh.auto), ends, pauses or rolls back
 * the group's refresh, and removes old instances as the health gate
 * allows (max_unavailable, min_healthy). due[] gets which instances are
 * old (scale-in takes them first). Returns how many instances beyond
 * desired convergence may start now (the surge).
 */
int converge_refresh(const struct converge_input *in,
		     enum store_instance_state *state, bool *due,
		     struct converge_plan *plan);

/* A running refresh of gc to template (the configuration's) from
 * wall_ms, with the group's groups.*.refresh settings, into *r (no
 * previous template, total 0: the caller's). */
void converge_refresh_begin(const struct config_group *gc,
			    const char *template, int64_t wall_ms,
			    struct store_refresh *r);

/* The pool's target size for a desired size: min(size, max - desired,
 * max_prepared - desired), 0 without a pool. */
int converge_warm_target(const struct config_group *cfg, int desired);

/*
 * The lowest address of the static range that no instance of v (other
 * than gone ones) and none of taken[] holds, into out. O((n + k) log
 * (n + k)). 0, or -1 when the range is exhausted.
 */
int converge_allocate_address(const struct config_static_addresses *sa,
			      const struct converge_instance *v, size_t n,
			      char (*taken)[46], size_t n_taken, char out[46]);

#endif
