/*
 * Table tests of the converge planner (converge.c): one row per case,
 * the group and its instances written compactly, the actions counted and
 * checked. The same function the daemon's scaler applies; no store, no
 * libvirt. Also the static address allocation.
 *
 * An instance is a token: its state letter, then modifiers:
 *   r requested  p provisioning  B booting  R ready  U unhealthy
 *   D draining   X deleting      G gone
 *   m warming (created for the warm pool)  W warm  Z resuming (drawn 5 s ago)
 *   L launch_wait  T terminate_wait (lifecycle hooks)
 *   NN   its CPU % (ready ones; none: no metrics)
 *   !    busy (heartbeat said so, just now)   ~ busy for an hour
 *   j    a worker job runs for it
 *   s    silent: last heartbeat 10 minutes ago
 *   o    old: created an hour ago (booting past ready_within); a
 *        resuming one drawn an hour ago
 *   h    warming: checked in (a heartbeat; warming ones have none else)
 *   k    resuming: its resume job ended in this run
 *   w    warming: ready for 5 s only
 *   q    hook wait recorded (deadline in 4 minutes)  x its deadline passed
 *   n    its hook call is known in this run (sent)
 *   c    completed: continue   a completed: abandon
 *   +    built from the new template (rows with .refresh; else old)
 *   @N   on host N (default host 0)
 *   =A   its static address, the range's A-th (0-based)
 */
#include <arpa/inet.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "converge.h"
#include "util.h"

#define WALL 1800000000000LL   /* 2027-01-15 */
#define NOW 5000000000LL       /* monotonic */
#define MAX_INST 32
#define GIB (1024ULL * 1024 * 1024)

struct row {
	const char *name;
	/* the group */
	int min, max, desired;
	const char *inst;
	double cpu_target;          /* 0: no target tracking */
	bool paused, backoff;
	bool manual;                /* `scale` set desired from manual_from */
	int manual_from;
	bool no_replace;
	int max_replace;            /* 0: 2 */
	int64_t heartbeat_timeout_ms; /* 0: 60 s; -1: off */
	unsigned hosts;             /* 0: 1 */
	int hosts_down;             /* bit i: host i is not connected */
	int hosts_pending;          /* bit i: host i is not measured yet */
	uint32_t host_max;          /* instances per host; 0: no limit */
	const char *range;          /* static addresses "FIRST-LAST" */
	int scale_in_order;         /* config_scale_in_order */
	/* the warm pool */
	int warm_size;              /* 0: none */
	int max_prepared;
	bool reuse, warm_backoff;
	/* what must come out */
	int want_desired;           /* after the plan */
	int starts, removes, unhealthy, replaces;
	const char *event;          /* an EVENT of this kind, or NULL: none */
	const char *removed;        /* the instances REMOVE names, in order,
				       as their indexes: "2 0" */
	const char *start_hosts;    /* the hosts START uses, "0 1 0" */
	const char *address;        /* the first START's address */
	/* the warm pool: pool starts are not in `starts`, returns (REMOVE to
	 * warming) not in `removes` */
	int draws, pool_starts, returns, parks, resumes;
	const char *draw_hosts;     /* the hosts DRAW uses, "1 0" */
	const char *decision_has;   /* in the SET_DESIRED message */
	/* lifecycle hooks: configured (1 launch, 2 terminate), launch's
	 * default result continue (else abandon); HOOK_WAIT, HOOK_SEND,
	 * HOOK_END actions, the state the first HOOK_END goes to; the
	 * plan's ready count when check_ready */
	int hooks;
	bool launch_continue;
	int hook_waits, hook_sends, hook_ends;
	const char *hook_end_to;
	bool check_ready;
	int want_ready;
	/* instance refresh: the configuration names template "new", the
	 * instances are "old" unless marked +. refresh_state: the group's
	 * row (NULL: none); rolled: its target is "old", previous "new" (a
	 * rollback); no_previous: nothing to roll back to; all: begun by
	 * hand a second ago. max_unavail NULL: "1"; min_healthy -1: 0 */
	bool refresh, auto_off, all, rolled, no_previous;
	const char *refresh_state;
	int surge, min_healthy, rollback_after, total, failures, failed_starts;
	const char *max_unavail, *checkpoints;
	const char *refresh_to;     /* the row's state after (NULL: unchanged) */
	const char *start_tmpl;     /* "old"/"new": what STARTs build from */
};

#define TMPL_OLD "0ld0000000000000000000000000000000000000000000000000000000000000"
#define TMPL_NEW "0e00000000000000000000000000000000000000000000000000000000000000"

static const struct row rows[] = {
	/* steady state */
	{"steady at target", 1, 8, 2, "R60 R60", 60, .want_desired = 2},
	{"no metrics: hold", 1, 8, 2, "R R", 60, .want_desired = 2},
	{"no policy: follow desired", 1, 8, 3, "R R R", 0, .want_desired = 3},
	/* growing */
	{"grow on load", 1, 8, 2, "R90 R90", 60, .want_desired = 3, .starts = 1,
	 .start_hosts = "0"},
	{"grow bounded by max", 1, 3, 2, "R100 R100", 60, .want_desired = 3,
	 .starts = 1},
	{"missing instances started", 1, 8, 4, "R60 R60", 0, .want_desired = 4,
	 .starts = 2},
	{"starts counted with booting", 1, 8, 4, "R60 B p r", 0,
	 .want_desired = 4},
	{"at most 8 starts per plan", 10, 20, 10, "", 0, .want_desired = 10,
	 .starts = 8},
	{"empty group goes to min", 2, 8, 0, "", 60, .want_desired = 2,
	 .starts = 2},
	{"backoff: no start", 1, 8, 3, "R60", 0, .backoff = true,
	 .want_desired = 3},
	{"spread over two hosts", 1, 8, 4, "R@0 R@0", 0, .hosts = 2,
	 .want_desired = 4, .starts = 2, .start_hosts = "1 1"},
	{"host down: placed on the other", 1, 8, 3, "R R", 0, .hosts = 2,
	 .hosts_down = 1, .want_desired = 3, .starts = 1, .start_hosts = "1"},
	{"hosts full: event once", 1, 8, 3, "R R", 0, .host_max = 2,
	 .want_desired = 3, .event = "hosts_full"},
	{"every host down: placement error", 1, 8, 3, "R R", 0,
	 .hosts_down = 1, .want_desired = 3, .event = "hosts_full"},
	/* issue 12: after a restart the first plan said "hosts_full: down
	 * (not measured yet)"; a host not measured yet is neither */
	{"host not measured yet: wait, no event", 1, 8, 3, "R R", 0,
	 .hosts_pending = 1, .want_desired = 3},
	{"other host not measured yet: placed on the measured", 1, 8, 3, "R R", 0,
	 .hosts = 2, .hosts_pending = 2, .want_desired = 3, .starts = 1,
	 .start_hosts = "0"},
	{"one full, the other not measured yet: wait", 1, 8, 3, "R R", 0,
	 .hosts = 2, .hosts_pending = 2, .host_max = 2, .want_desired = 3},
	{"not measured yet: the decision is not capped", 1, 8, 2, "R100 R100", 60,
	 .hosts = 2, .hosts_pending = 2, .host_max = 2, .want_desired = 4},
	{"capacity caps the decision", 1, 8, 2, "R100 R100", 60, .host_max = 3,
	 .want_desired = 3, .starts = 1},
	/* shrinking */
	{"shrink on low load", 1, 8, 4, "R10 R10 R10 R10", 60, .want_desired = 1,
	 .removes = 3},
	{"shrink bounded by min", 2, 8, 4, "R5 R5 R5 R5", 60, .want_desired = 2,
	 .removes = 2},
	{"surplus removed, newest first", 1, 8, 1, "R R R", 0, .want_desired = 1,
	 .removes = 2, .removed = "2 1"},
	{"surplus removed, oldest first", 1, 8, 1, "R R R", 0, .want_desired = 1,
	 .removes = 2, .removed = "0 1", .scale_in_order = CONFIG_SCALE_IN_OLDEST},
	{"unhealthy and booting go first", 1, 8, 2, "R R U B", 0,
	 .no_replace = true, .want_desired = 2, .removes = 2, .removed = "2 3"},
	{"busy spared", 1, 8, 1, "R R R!", 0, .want_desired = 1, .removes = 2,
	 .removed = "1 0"},
	{"busy veto: fewer removed", 1, 8, 1, "R R! R!", 0, .want_desired = 1,
	 .removes = 1, .removed = "0", .event = "scale_in_blocked"},
	{"busy veto: every candidate busy", 1, 8, 1, "R! R! R!", 0,
	 .want_desired = 1, .event = "scale_in_blocked"},
	{"busy with a job: no veto", 1, 8, 1, "R Rj!", 0,
	 .want_desired = 1, .removes = 1, .removed = "0"},
	{"busy too long is not spared", 1, 8, 1, "R R~", 0, .want_desired = 1,
	 .removes = 1, .removed = "1"},
	{"instance with a job is not chosen", 1, 8, 1, "R Rj", 0,
	 .want_desired = 1, .removes = 1, .removed = "0"},
	{"requested and provisioning not removed", 1, 8, 1, "R r p", 0,
	 .want_desired = 1},
	{"draining ones do not count", 1, 8, 2, "R R D X", 0, .want_desired = 2},
	/* paused */
	{"paused: nothing happens", 1, 8, 2, "R100 R100 Bo", 60, .paused = true,
	 .want_desired = 2},
	{"paused: no surplus removed", 1, 8, 1, "R R R", 0, .paused = true,
	 .want_desired = 1},
	/* health */
	{"booting too long: unhealthy, replaced", 1, 8, 2, "R Bo", 0,
	 .want_desired = 2, .unhealthy = 1, .replaces = 1, .starts = 1},
	{"silent: unhealthy, replaced", 1, 8, 2, "R Rs", 0, .want_desired = 2,
	 .unhealthy = 1, .replaces = 1, .starts = 1},
	{"heartbeats off: silent is fine", 1, 8, 2, "R Rs", 0,
	 .heartbeat_timeout_ms = -1, .want_desired = 2},
	{"replace off: unhealthy stays", 1, 8, 2, "R Rs", 0, .no_replace = true,
	 .want_desired = 2, .unhealthy = 1},
	{"replacements bounded", 1, 8, 4, "Rs Rs Rs Rs", 0, .max_replace = 1,
	 .want_desired = 4, .unhealthy = 4, .replaces = 1, .starts = 1},
	{"replacements under way count", 1, 8, 2, "U U X X", 0,
	 .want_desired = 2},
	{"unhealthy with a job waits", 1, 8, 2, "R Uj", 0, .want_desired = 2},
	/* manual scale and the decision */
	{"manual scale-out held against low load", 1, 8, 5,
	 "R10 R10 R10 R10 R10", 60, .manual = true, .manual_from = 2,
	 .want_desired = 5},
	{"the same without it: shrinks", 1, 8, 5, "R10 R10 R10 R10 R10", 60,
	 .want_desired = 1, .removes = 4},
	/* scale-out is never held by a cooldown (policy.h): the engine
	 * answers the load at once, from the manual size */
	{"manual scale-in under load: scaled out from it", 1, 8, 2,
	 "R80 R80 R80", 60, .manual = true, .manual_from = 3,
	 .want_desired = 4, .starts = 1},
	/* warm-up */
	{"warming instances not measured", 1, 8, 2, "R90w R90w", 60,
	 .want_desired = 2},
	/* static addresses */
	{"lowest free address", 1, 8, 3, "R=0 R=2", 0,
	 .range = "192.0.2.10-192.0.2.20", .want_desired = 3, .starts = 1,
	 .address = "192.0.2.11"},
	{"addresses exhausted", 1, 8, 3, "R=0 R=1", 0,
	 .range = "192.0.2.10-192.0.2.11", .want_desired = 3,
	 .event = "addresses_full"},
	{"gone instances give theirs back", 1, 8, 2, "R=0 G=1", 0,
	 .range = "192.0.2.10-192.0.2.11", .want_desired = 2, .starts = 1,
	 .address = "192.0.2.11"},
	/* the warm pool (issue 13) */
	{"warm pool: drawn before any start, then refilled", 1, 8, 3, "R W W",
	 0, .warm_size = 2, .want_desired = 3, .draws = 2, .pool_starts = 2},
	{"warm pool: draws first, new ones for the rest", 1, 8, 4, "R W", 0,
	 .warm_size = 1, .want_desired = 4, .draws = 1, .starts = 2,
	 .pool_starts = 1,
	 .decision_has = "3 more instances for the desired 4; served 1 warm, "
			 "2 cold: the warm pool is empty"},
	{"warm pool: scale-out on load drawn", 1, 8, 2, "R90 R90 W", 60,
	 .warm_size = 1, .want_desired = 3, .draws = 1, .pool_starts = 1,
	 .decision_has = "; served warm: 1 drawn from the warm pool"},
	{"warm pool: more than the pool holds: warm, then cold", 1, 8, 3,
	 "R90 R90 R90 W", 60, .warm_size = 1, .want_desired = 5, .draws = 1,
	 .starts = 1, .pool_starts = 1,
	 .decision_has = "; served 1 warm, 1 cold: the warm pool is empty"},
	{"warm pool: still being prepared: cold, and said why", 1, 8, 2,
	 "R90 R90 m", 60, .warm_size = 1, .want_desired = 3, .starts = 1,
	 .decision_has = "; served 0 warm, 1 cold: the rest of the pool is "
			 "still being prepared"},
	{"warm pool: filled at start", 1, 8, 1, "R", 0, .warm_size = 2,
	 .want_desired = 1, .pool_starts = 2},
	{"warm pool: warming ones count", 1, 8, 1, "R m m", 0, .warm_size = 2,
	 .want_desired = 1},
	{"warm pool: warming ones are not drawn", 1, 8, 2, "R m", 0,
	 .warm_size = 1, .want_desired = 2, .starts = 1},
	{"warm pool: checked in, parked", 1, 8, 1, "R mh", 0, .warm_size = 1,
	 .want_desired = 1, .parks = 1},
	{"warm pool: a job runs, not parked again", 1, 8, 1, "R mhj", 0,
	 .warm_size = 1, .want_desired = 1},
	{"warm pool: never checked in, removed and refilled", 1, 8, 1, "R mo",
	 0, .warm_size = 1, .want_desired = 1, .removes = 1, .pool_starts = 1},
	{"warm pool: not ready after its draw, the next one drawn", 1, 8, 2,
	 "R Zo W", 0, .warm_size = 1, .want_desired = 2, .removes = 1,
	 .draws = 1, .pool_starts = 1},
	{"warm pool: resuming after a restart: resumed again", 1, 8, 2, "R Z",
	 0, .want_desired = 2, .resumes = 1},
	{"warm pool: resumed, waiting for its heartbeat", 1, 8, 2, "R Zk", 0,
	 .want_desired = 2},
	{"warm pool: resuming counts towards the size", 1, 8, 2, "R Z", 0,
	 .warm_size = 1, .want_desired = 2, .resumes = 1, .pool_starts = 1},
	{"warm pool: scale-in returns to the pool, parked at once", 1, 8, 1,
	 "R R R", 0, .warm_size = 2, .reuse = true, .want_desired = 1,
	 .returns = 2, .parks = 2},
	{"warm pool: returns up to its size, removes the rest", 1, 8, 1,
	 "R R R W", 0, .warm_size = 2, .reuse = true, .want_desired = 1,
	 .returns = 1, .removes = 1, .parks = 1},
	{"warm pool: without reuse, removed", 1, 8, 1, "R R W", 0,
	 .warm_size = 1, .want_desired = 1, .removes = 1},
	{"warm pool: trimmed at max (could never be drawn)", 1, 4, 4,
	 "R R R R W W", 0, .warm_size = 2, .want_desired = 4, .removes = 2},
	{"warm pool: max_prepared caps desired + warm", 1, 8, 3, "R R R", 0,
	 .warm_size = 3, .max_prepared = 5, .want_desired = 3, .pool_starts = 2},
	{"warm pool: paused group, nothing", 1, 8, 3, "R W", 0,
	 .warm_size = 1, .paused = true, .want_desired = 3},
	{"warm pool: provisioning backoff: drawn, not refilled", 1, 8, 2,
	 "R W", 0, .warm_size = 1, .backoff = true, .want_desired = 2,
	 .draws = 1},
	{"warm pool: park failed lately: not refilled", 1, 8, 1, "R", 0,
	 .warm_size = 1, .warm_backoff = true, .want_desired = 1},
	{"warm pool: the strategy chooses among hosts holding one", 1, 8, 2,
	 "R@0 W@0 W@1", 0, .hosts = 2, .warm_size = 1, .want_desired = 2,
	 .draws = 1,
	 .draw_hosts = "1"},
	{"warm pool: a down host's warm one is not drawn", 1, 8, 2, "R@0 W@1",
	 0, .hosts = 2, .hosts_down = 2, .warm_size = 1, .want_desired = 2,
	 .starts = 1, .start_hosts = "0"},
	{"warm pool: size 0 now, the warm ones go", 1, 8, 1, "R W W", 0,
	 .want_desired = 1, .removes = 2},
	{"warm pool: warm ones are not removed for the surplus", 1, 8, 1,
	 "R R W", 0, .warm_size = 1, .want_desired = 1, .removes = 1,
	 .removed = "1"},
	/* lifecycle hooks (issue 16) */
	{"hooks: a new launch wait is recorded and sent; live, not ready", 1, 8,
	 2, "R L", 0, .hooks = 1, .want_desired = 2, .hook_waits = 1,
	 .check_ready = true, .want_ready = 1},
	{"hooks: waiting, its call made: nothing", 1, 8, 2, "R Lqn", 0,
	 .hooks = 1, .want_desired = 2},
	{"hooks: waiting after a restart: sent again", 1, 8, 2, "R Lq", 0,
	 .hooks = 1, .want_desired = 2, .hook_sends = 1},
	{"hooks: launch continue: ready", 1, 8, 2, "R Lqnc", 0, .hooks = 1,
	 .want_desired = 2, .hook_ends = 1, .hook_end_to = "ready",
	 .check_ready = true, .want_ready = 2},
	{"hooks: launch abandon: removed and replaced", 1, 8, 2, "R Lqna", 0,
	 .hooks = 1, .want_desired = 2, .hook_ends = 1,
	 .hook_end_to = "deleting", .starts = 1},
	{"hooks: launch timeout: default abandon, replaced", 1, 8, 2, "R Lqnx",
	 0, .hooks = 1, .want_desired = 2, .hook_ends = 1,
	 .hook_end_to = "deleting", .starts = 1},
	{"hooks: launch timeout: default continue, ready", 1, 8, 2, "R Lqx", 0,
	 .hooks = 1, .launch_continue = true, .want_desired = 2,
	 .hook_ends = 1, .hook_end_to = "ready"},
	{"hooks: the hook left the configuration: continue", 1, 8, 2, "R Lq", 0,
	 .want_desired = 2, .hook_ends = 1, .hook_end_to = "ready"},
	{"hooks: scale-in waits for the terminate hook", 1, 8, 1, "R R R", 0,
	 .hooks = 2, .want_desired = 1, .removes = 2, .hook_waits = 2},
	{"hooks: terminate abandon: the removal proceeds", 1, 8, 1, "R Tqna", 0,
	 .hooks = 2, .want_desired = 1, .hook_ends = 1,
	 .hook_end_to = "draining"},
	{"hooks: terminate timeout: the removal proceeds", 1, 8, 1, "R Tqnx", 0,
	 .hooks = 2, .want_desired = 1, .hook_ends = 1,
	 .hook_end_to = "draining"},
	{"hooks: terminate_wait is not live: no start, no removal", 1, 8, 1,
	 "R Tqn", 0, .hooks = 2, .want_desired = 1},
	{"hooks: scale-in takes launch_wait first, no terminate hook", 1, 8, 2,
	 "R R Lqn", 0, .hooks = 3, .want_desired = 2, .removes = 1,
	 .removed = "2"},
	{"hooks: paused group: nothing, not even a timeout", 1, 8, 2, "R Lqx",
	 0, .hooks = 1, .paused = true, .want_desired = 2},
	/* instance refresh (converge_refresh.c) */
	{"refresh: template changed: begins, first batch", 1, 8, 3, "R R R", 0,
	 .refresh = true, .surge = 1, .min_healthy = 90, .want_desired = 3,
	 .removes = 1, .removed = "0", .starts = 2, .event = "refresh_batch",
	 .refresh_to = "running", .start_tmpl = "new"},
	{"refresh: auto off: nothing", 1, 8, 3, "R R R", 0, .refresh = true,
	 .auto_off = true, .surge = 1, .want_desired = 3, .start_tmpl = "new"},
	{"refresh: every instance current: nothing", 1, 8, 3, "R+ R+ R+", 0,
	 .refresh = true, .surge = 1, .want_desired = 3},
	{"refresh: new ones ready: next batch, no double start", 1, 8, 3,
	 "R R R+ B+", 0, .refresh = true, .refresh_state = "running",
	 .total = 3, .surge = 1, .want_desired = 3, .removes = 1,
	 .removed = "0", .starts = 1, .event = "refresh_batch",
	 .refresh_to = "running"},
	{"refresh: the health gate holds while new ones boot", 1, 8, 3,
	 "R R B+ B+", 0, .refresh = true, .refresh_state = "running",
	 .total = 3, .surge = 1, .want_desired = 3},
	{"refresh: max_unavailable 0: new ones first", 1, 8, 2, "R R", 0,
	 .refresh = true, .surge = 2, .max_unavail = "0", .want_desired = 2,
	 .starts = 2, .event = "refresh_started", .refresh_to = "running"},
	{"refresh: old ones not ready go at once", 1, 8, 3, "R B U", 0,
	 .refresh = true, .refresh_state = "running", .total = 3, .surge = 1,
	 .want_desired = 3, .removes = 1, .removed = "1", .replaces = 1,
	 .starts = 3, .event = "refresh_batch"},
	{"refresh: done when all new are ready", 1, 8, 3, "R+ R+ R+", 0,
	 .refresh = true, .refresh_state = "running", .total = 3,
	 .want_desired = 3, .event = "refresh_done", .refresh_to = "done"},
	{"refresh: not done while a new one boots", 1, 8, 3, "R+ R+ B+", 0,
	 .refresh = true, .refresh_state = "running", .total = 3,
	 .want_desired = 3},
	{"refresh: paused at a checkpoint: nothing", 1, 8, 3, "R R R+", 0,
	 .refresh = true, .refresh_state = "paused", .total = 3, .surge = 1,
	 .checkpoints = "30", .want_desired = 3},
	{"refresh: checkpoint reached: pauses", 1, 8, 4, "R R R+ R+", 0,
	 .refresh = true, .refresh_state = "running", .total = 4, .surge = 1,
	 .checkpoints = "50,100", .want_desired = 4,
	 .event = "refresh_checkpoint", .refresh_to = "paused"},
	{"refresh: a new one never checks in: rolls back", 1, 8, 3, "R R B+o", 0,
	 .refresh = true, .refresh_state = "running", .total = 3, .surge = 1,
	 .rollback_after = 1, .want_desired = 3, .unhealthy = 1,
	 .replaces = 1, .starts = 1, .event = "refresh_rollback",
	 .refresh_to = "rolling_back", .start_tmpl = "old"},
	{"refresh: failed provisionings count: rolls back", 1, 8, 3, "R R R", 0,
	 .refresh = true, .refresh_state = "running", .total = 3, .surge = 1,
	 .rollback_after = 2, .failures = 1, .failed_starts = 1,
	 .want_desired = 3, .event = "refresh_rollback",
	 .refresh_to = "rolling_back"},
	{"refresh: nothing to roll back to: fails", 1, 8, 3, "R R B+o", 0,
	 .refresh = true, .refresh_state = "running", .total = 3, .surge = 1,
	 .rollback_after = 1, .no_previous = true, .want_desired = 3,
	 .unhealthy = 1, .replaces = 1, .starts = 1, .event = "refresh_failed",
	 .refresh_to = "failed"},
	{"refresh: rolling back replaces the new ones", 1, 8, 3, "R R B+", 0,
	 .refresh = true, .refresh_state = "rolling_back", .rolled = true,
	 .total = 1, .surge = 1, .want_desired = 3, .removes = 1,
	 .removed = "2", .starts = 1, .event = "refresh_batch",
	 .start_tmpl = "old"},
	{"refresh: rolled back: starts build from the old template", 1, 8, 3,
	 "R R", 0, .refresh = true, .refresh_state = "rolled_back",
	 .rolled = true, .want_desired = 3, .starts = 1, .start_tmpl = "old"},
	{"refresh: cancelled: not begun again for the same template", 1, 8, 3,
	 "R R R", 0, .refresh = true, .refresh_state = "cancelled", .total = 3,
	 .want_desired = 3, .start_tmpl = "new"},
	{"refresh: paused: scale-in takes old ones first", 1, 8, 2,
	 "R R+ R R+", 0, .refresh = true, .refresh_state = "paused",
	 .total = 4, .checkpoints = "50", .want_desired = 2, .removes = 2,
	 .removed = "2 0"},
	{"refresh: warm pool: old warm ones removed, refilled", 1, 8, 2,
	 "R+ R+ W", 0, .refresh = true, .refresh_state = "running", .total = 2,
	 .warm_size = 1, .want_desired = 2, .removes = 1, .removed = "2",
	 .pool_starts = 1},
	{"refresh: by hand: current ones replaced too", 1, 8, 2, "R+ R+", 0,
	 .refresh = true, .refresh_state = "running", .all = true, .total = 2,
	 .surge = 1, .want_desired = 2, .removes = 1, .removed = "0",
	 .starts = 2, .event = "refresh_batch"},
	{"refresh: surge bounded by max: one out, one in", 1, 3, 3, "R R R", 0,
	 .refresh = true, .surge = 1, .want_desired = 3, .removes = 1,
	 .starts = 1, .event = "refresh_batch", .refresh_to = "running"},
	{"refresh: max_unavailable 50%: half at once", 1, 8, 4, "R R R R", 0,
	 .refresh = true, .max_unavail = "50%", .want_desired = 4,
	 .removes = 2, .removed = "0 1", .starts = 2, .event = "refresh_batch",
	 .refresh_to = "running"},
	{"refresh: scaling out during a refresh builds new ones", 1, 8, 3,
	 "R90 R90 R+90", 60, .refresh = true, .refresh_state = "paused",
	 .total = 3, .checkpoints = "30", .want_desired = 5, .starts = 2,
	 .start_tmpl = "new"},
};

struct fixture {
	struct config_group gc;
	struct config_host hosts[4];
	const struct config_host *host_ptrs[4];
	char *host_names[4];
	char ids[MAX_INST][STORE_ID_LEN + 1];
	char new_ids[CONVERGE_MAX_STARTS][STORE_ID_LEN + 1];
	char addrs[MAX_INST][46];
	struct converge_instance v[MAX_INST];
	size_t n;
	struct va_placement_host ph[4];
	struct place_strategy *place;
};

static void
address_at(const char *range, int k, char out[46])
{
	char first[46];
	const char *dash = strchr(range, '-');
	unsigned char b[4];

	snprintf(first, sizeof(first), "%.*s", (int)(dash - range), range);
	assert_int_equal(inet_pton(AF_INET, first, b), 1);
	b[3] = (unsigned char)(b[3] + k);
	inet_ntop(AF_INET, b, out, 46);
}

static void
parse_instances(struct fixture *f, const struct row *r)
{
	const char *p = r->inst;

	while (*p) {
		struct converge_instance *ci;
		size_t i = f->n;

		while (*p == ' ')
			p++;
		if (!*p)
			break;
		assert_true(i < MAX_INST);
		ci = &f->v[i];
		memset(ci, 0, sizeof(*ci));
		snprintf(f->ids[i], sizeof(f->ids[i]),
			 "00000000-0000-4000-8000-%012zu", i);
		ci->id = f->ids[i];
		ci->host = f->host_names[0];
		ci->domain = ci->id;
		/* later tokens are newer */
		ci->created_ms = WALL - 1800000 + (int64_t)i * 1000;
		switch (*p++) {
		case 'r': ci->state = STORE_INSTANCE_REQUESTED; break;
		case 'p': ci->state = STORE_INSTANCE_PROVISIONING; break;
		case 'B': ci->state = STORE_INSTANCE_BOOTING; break;
		case 'R': ci->state = STORE_INSTANCE_READY; break;
		case 'U': ci->state = STORE_INSTANCE_UNHEALTHY; break;
		case 'D': ci->state = STORE_INSTANCE_DRAINING; break;
		case 'X': ci->state = STORE_INSTANCE_DELETING; break;
		case 'G': ci->state = STORE_INSTANCE_GONE; break;
		case 'm': ci->state = STORE_INSTANCE_WARMING; break;
		case 'W': ci->state = STORE_INSTANCE_WARM; break;
		case 'Z': ci->state = STORE_INSTANCE_RESUMING; break;
		case 'L': ci->state = STORE_INSTANCE_LAUNCH_WAIT; break;
		case 'T': ci->state = STORE_INSTANCE_TERMINATE_WAIT; break;
		default: fail_msg("bad state in '%s'", r->inst);
		}
		if (ci->state == STORE_INSTANCE_BOOTING)
			ci->created_ms = WALL - 60000 + (int64_t)i * 1000;
		if (r->refresh)
			ci->template = TMPL_OLD;
		ci->ready_ms = WALL - 600000;
		ci->heartbeat_ms = WALL - 1000;
		ci->updated_ms = WALL - 5000;
		if (ci->state == STORE_INSTANCE_WARMING) {
			ci->created_ms = WALL - 60000 + (int64_t)i * 1000;
			ci->ready_ms = ci->heartbeat_ms = 0;
		}
		while (*p && *p != ' ') {
			char c = *p++;

			if (c >= '0' && c <= '9') {
				double v = c - '0';

				while (*p >= '0' && *p <= '9')
					v = v * 10 + (*p++ - '0');
				ci->metric[POLICY_METRIC_CPU] = v;
				ci->metric_present[POLICY_METRIC_CPU] = true;
			} else if (c == '!') {
				ci->busy = true;
				ci->busy_since_ms = WALL - 1000;
			} else if (c == '~') {
				ci->busy = true;
				ci->busy_since_ms = WALL - 3600000;
			} else if (c == 'j') {
				ci->job = true;
			} else if (c == 's') {
				ci->heartbeat_ms = WALL - 600000;
			} else if (c == 'o') {
				ci->created_ms = WALL - 3600000;
				ci->updated_ms = WALL - 3600000;
			} else if (c == 'h') {
				ci->heartbeat_ms = WALL - 1000;
			} else if (c == 'k') {
				ci->resumed = true;
			} else if (c == 'q') {
				ci->hook_wait = true;
				ci->hook_deadline_ms = WALL + 240000;
			} else if (c == 'x') {
				ci->hook_deadline_ms = WALL - 1;
			} else if (c == 'n') {
				ci->hook_sent = true;
			} else if (c == 'c') {
				ci->hook_result = STORE_HOOK_CONTINUE;
			} else if (c == 'a') {
				ci->hook_result = STORE_HOOK_ABANDON;
			} else if (c == 'w') {
				ci->ready_ms = WALL - 5000;
			} else if (c == '+') {
				ci->template = TMPL_NEW;
			} else if (c == '@') {
				ci->host = f->host_names[*p++ - '0'];
			} else if (c == '=') {
				address_at(r->range, *p++ - '0', f->addrs[i]);
				ci->address = f->addrs[i];
			} else {
				fail_msg("bad modifier '%c' in '%s'", c, r->inst);
			}
		}
		f->n++;
	}
}

static void
setup_fixture(struct fixture *f, const struct row *r)
{
	unsigned hosts = r->hosts ? r->hosts : 1;

	memset(f, 0, sizeof(*f));
	f->gc.name = (char *)"web";
	f->gc.min = r->min;
	f->gc.max = r->max;
	f->gc.template.vcpus = 1;
	f->gc.template.memory = GIB;
	f->gc.template.name_prefix = (char *)"web";
	policy_params_defaults(&f->gc.policy);
	f->gc.policy.min = r->min;
	f->gc.policy.max = r->max;
	f->gc.policy.interval_ms = 10000;
	f->gc.policy.target[POLICY_METRIC_CPU] = r->cpu_target;
	f->gc.health.ready_within_ms = 300000;
	f->gc.health.heartbeat_timeout_ms =
		r->heartbeat_timeout_ms < 0 ? 0
		: r->heartbeat_timeout_ms ? r->heartbeat_timeout_ms : 60000;
	f->gc.health.replace = !r->no_replace;
	f->gc.health.max_replace = r->max_replace ? r->max_replace : 2;
	f->gc.health.max_replace_share = 100;
	f->gc.health.busy_max_ms = 1800000;
	f->gc.scale_in.order = (enum config_scale_in_order)r->scale_in_order;
	f->gc.scale_in.drain_ms = 60000;
	f->gc.warm_pool.present = r->warm_size > 0;
	f->gc.warm_pool.size = r->warm_size;
	f->gc.warm_pool.max_prepared = r->max_prepared;
	f->gc.warm_pool.reuse_on_scale_in = r->reuse;
	f->gc.warm_pool.resume_within_ms = 120000;
	f->gc.hooks.launch.present = r->hooks & 1;
	f->gc.hooks.launch.timeout_ms = 300000;
	f->gc.hooks.launch.default_result = r->launch_continue
						    ? CONFIG_HOOK_CONTINUE
						    : CONFIG_HOOK_ABANDON;
	f->gc.hooks.terminate.present = (r->hooks & 2) != 0;
	f->gc.hooks.terminate.timeout_ms = 300000;
	f->gc.hooks.terminate.default_result = CONFIG_HOOK_CONTINUE;
	if (r->range) {
		static char first[46], last[46];
		const char *dash = strchr(r->range, '-');

		snprintf(first, sizeof(first), "%.*s", (int)(dash - r->range), r->range);
		snprintf(last, sizeof(last), "%s", dash + 1);
		f->gc.cloud_init.static_addresses.present = true;
		f->gc.cloud_init.static_addresses.range = (char *)r->range;
		f->gc.cloud_init.static_addresses.first = first;
		f->gc.cloud_init.static_addresses.last = last;
		f->gc.cloud_init.static_addresses.family = AF_INET;
		f->gc.cloud_init.static_addresses.prefix = 24;
	}
	for (unsigned i = 0; i < hosts; i++) {
		f->host_names[i] = xasprintf("h%u", i);
		f->hosts[i].name = f->host_names[i];
		f->host_ptrs[i] = &f->hosts[i];
		f->ph[i].name = f->host_names[i];
		f->ph[i].up = !((r->hosts_down | r->hosts_pending) & (1 << i));
		f->ph[i].down_reason = f->ph[i].up ? NULL
				       : (r->hosts_pending & (1 << i)) ? "not measured yet"
				       : "not connected";
		f->ph[i].cpus = 64;
		f->ph[i].mem_total = 256 * GIB;
		f->ph[i].mem_free = 200 * GIB;
		f->ph[i].cpu_use = 0.1;
		f->ph[i].max_instances = r->host_max;
	}
	f->gc.hosts.n = hosts;
	f->gc.host_ptrs = f->host_ptrs;
	parse_instances(f, r);
	/* what the hosts hold: every live instance of the group */
	for (size_t i = 0; i < f->n; i++) {
		for (unsigned h = 0; h < hosts; h++) {
			if (strcmp(f->v[i].host, f->host_names[h]) != 0 ||
			    !converge_state_live(f->v[i].state))
				continue;
			f->ph[h].instances++;
			f->ph[h].group_instances++;
			f->ph[h].vcpus_alloc++;
			f->ph[h].mem_alloc += GIB;
		}
	}
	for (unsigned k = 0; k < CONVERGE_MAX_STARTS; k++)
		snprintf(f->new_ids[k], sizeof(f->new_ids[k]),
			 "11111111-0000-4000-8000-%012u", k);
	f->place = place_strategy_new("round-robin", true, NULL, 0);
	assert_non_null(f->place);
}

static void
release_fixture(struct fixture *f)
{
	for (unsigned i = 0; i < 4; i++)
		free(f->host_names[i]);
	place_strategy_free(f->place);
	policy_params_release(&f->gc.policy);
}

static void
refresh_row(const struct row *r, struct config_group *gc,
	    struct store_refresh *rr, struct converge_input *in)
{
	static struct config_strlist none;
	const char *state = r->refresh_state;

	gc->refresh.automatic = !r->auto_off;
	gc->refresh.max_unavailable = (char *)(r->max_unavail ? r->max_unavail
							      : "1");
	gc->refresh.surge = r->surge;
	gc->refresh.min_healthy = r->min_healthy;
	gc->refresh.rollback_after = r->rollback_after;
	gc->refresh.checkpoints = none;
	in->template = TMPL_NEW;
	in->refresh_failed_starts = r->failed_starts;
	if (!state)
		return;
	memset(rr, 0, sizeof(*rr));
	snprintf(rr->group, sizeof(rr->group), "web");
	for (int k = 0; k < STORE_REFRESH_LAST; k++)
		if (strcmp(store_refresh_state_name((enum store_refresh_state)k),
			   state) == 0)
			rr->state = (enum store_refresh_state)k;
	snprintf(rr->config_template, sizeof(rr->config_template), TMPL_NEW);
	snprintf(rr->target, sizeof(rr->target), "%s",
		 r->rolled ? TMPL_OLD : TMPL_NEW);
	snprintf(rr->previous, sizeof(rr->previous), "%s",
		 r->no_previous ? "" : r->rolled ? TMPL_NEW : TMPL_OLD);
	rr->all = r->all;
	snprintf(rr->max_unavailable, sizeof(rr->max_unavailable), "%s",
		 r->max_unavail ? r->max_unavail : "1");
	rr->surge = r->surge;
	rr->min_healthy = r->min_healthy;
	rr->rollback_after = r->rollback_after;
	snprintf(rr->checkpoints, sizeof(rr->checkpoints), "%s",
		 r->checkpoints ? r->checkpoints : "");
	rr->checkpoint_done = strcmp(state, "paused") == 0 && r->checkpoints
				      ? atoi(r->checkpoints)
				      : 0;
	rr->total = r->total;
	rr->failures = r->failures;
	/* a refresh by hand began a second ago: every instance is older */
	rr->started_ms = r->all ? WALL - 1000 : WALL - 3600000;
	in->refresh = rr;
}

static void
plan_row(struct fixture *f, const struct row *r, struct converge_state *st,
	 struct converge_plan *plan)
{
	struct converge_input in;
	static struct store_refresh rr;

	memset(&in, 0, sizeof(in));
	if (r->refresh)
		refresh_row(r, &f->gc, &rr, &in);
	in.cfg = &f->gc;
	in.now_ms = NOW;
	in.wall_ms = WALL;
	in.desired = r->desired;
	in.paused = r->paused;
	in.manual = r->manual;
	in.manual_from = r->manual_from;
	in.backoff = r->backoff;
	in.warm_backoff = r->warm_backoff;
	in.v = f->v;
	in.n = f->n;
	in.hosts = f->ph;
	in.n_hosts = f->gc.hosts.n;
	in.place = f->place;
	for (unsigned h = 0; h < in.n_hosts; h++)
		in.n_hosts_pending += (r->hosts_pending >> h) & 1;
	in.new_ids = (const char (*)[STORE_ID_LEN + 1])f->new_ids;
	in.n_new_ids = CONVERGE_MAX_STARTS;
	converge_group(&in, st, plan);
}

static void
check_row(const struct row *r)
{
	struct fixture f;
	struct converge_state st;
	struct converge_plan plan;
	int count[CONVERGE_LAST] = {0}, pool_starts = 0, returns = 0;
	char removed[128] = "", hosts[128] = "", draw_hosts[128] = "";
	const char *address = NULL, *event = NULL, *hook_end_to = NULL;

	setup_fixture(&f, r);
	converge_state_init(&st);
	plan_row(&f, r, &st, &plan);
	for (size_t k = 0; k < plan.n; k++) {
		const struct converge_action *a = &plan.v[k];
		size_t len;

		count[a->kind]++;
		switch (a->kind) {
		case CONVERGE_REMOVE:
			if (a->state == STORE_INSTANCE_WARMING) {
				assert_int_equal(f.v[a->inst].state,
						 STORE_INSTANCE_READY);
				count[a->kind]--;
				returns++;
				break;
			}
			len = strlen(removed);
			snprintf(removed + len, sizeof(removed) - len, "%s%zu",
				 len ? " " : "", a->inst);
			assert_true(a->state == STORE_INSTANCE_DRAINING ||
				    a->state == STORE_INSTANCE_DELETING ||
				    a->state == STORE_INSTANCE_TERMINATE_WAIT);
			/* a terminate hook: only for ready ones, and then
			 * always (the wait follows at once) */
			if (a->state == STORE_INSTANCE_TERMINATE_WAIT ||
			    ((r->hooks & 2) && a->state == STORE_INSTANCE_DRAINING))
				assert_true(k + 1 < plan.n &&
					    plan.v[k + 1].kind == CONVERGE_HOOK_WAIT &&
					    plan.v[k + 1].inst == a->inst &&
					    f.v[a->inst].state == STORE_INSTANCE_READY);
			break;
		case CONVERGE_HOOK_END:
			if (!hook_end_to)
				hook_end_to = store_instance_state_name(a->state);
			break;
		case CONVERGE_DRAW:
			assert_int_equal(f.v[a->inst].state, STORE_INSTANCE_WARM);
			len = strlen(draw_hosts);
			snprintf(draw_hosts + len, sizeof(draw_hosts) - len,
				 "%s%zu", len ? " " : "", a->host);
			break;
		case CONVERGE_PARK:
			/* warming, or ready and returned by this plan */
			assert_true(f.v[a->inst].state == STORE_INSTANCE_WARMING ||
				    f.v[a->inst].state == STORE_INSTANCE_READY);
			break;
		case CONVERGE_RESUME:
			assert_int_equal(f.v[a->inst].state,
					 STORE_INSTANCE_RESUMING);
			break;
		case CONVERGE_START:
			if (a->pool) {
				pool_starts++;
				assert_string_equal(f.new_ids[a->inst],
						    f.new_ids[count[a->kind] - 1]);
				break;
			}
			len = strlen(hosts);
			snprintf(hosts + len, sizeof(hosts) - len, "%s%zu",
				 len ? " " : "", a->host);
			if (!address)
				address = a->address;
			assert_string_equal(f.new_ids[a->inst], f.new_ids[count[a->kind] - 1]);
			break;
		case CONVERGE_EVENT:
			if (strcmp(a->event, "decision") != 0)
				event = a->event;
			else if (r->decision_has && !strstr(a->message, r->decision_has))
				fail_msg("case '%s': decision event '%s' lacks '%s'",
					 r->name, a->message, r->decision_has);
			break;
		case CONVERGE_SET_DESIRED:
			assert_int_equal(a->to, plan.desired);
			if (r->decision_has && !strstr(a->message, r->decision_has))
				fail_msg("case '%s': decision '%s' lacks '%s'",
					 r->name, a->message, r->decision_has);
			break;
		default:
			break;
		}
	}
	count[CONVERGE_START] -= pool_starts;
	if (count[CONVERGE_DRAW] != r->draws || pool_starts != r->pool_starts ||
	    returns != r->returns || count[CONVERGE_PARK] != r->parks ||
	    count[CONVERGE_RESUME] != r->resumes)
		fail_msg("case '%s': draw %d (want %d), pool start %d (%d), "
			 "return %d (%d), park %d (%d), resume %d (%d)", r->name,
			 count[CONVERGE_DRAW], r->draws, pool_starts,
			 r->pool_starts, returns, r->returns,
			 count[CONVERGE_PARK], r->parks, count[CONVERGE_RESUME],
			 r->resumes);
	if (count[CONVERGE_HOOK_WAIT] != r->hook_waits ||
	    count[CONVERGE_HOOK_SEND] != r->hook_sends ||
	    count[CONVERGE_HOOK_END] != r->hook_ends ||
	    (r->hook_end_to && (!hook_end_to ||
				strcmp(hook_end_to, r->hook_end_to) != 0)) ||
	    (r->check_ready && plan.ready != r->want_ready))
		fail_msg("case '%s': hook wait %d (want %d), send %d (%d), "
			 "end %d (%d) to %s (%s), ready %d (%d)", r->name,
			 count[CONVERGE_HOOK_WAIT], r->hook_waits,
			 count[CONVERGE_HOOK_SEND], r->hook_sends,
			 count[CONVERGE_HOOK_END], r->hook_ends,
			 hook_end_to ? hook_end_to : "-",
			 r->hook_end_to ? r->hook_end_to : "-", plan.ready,
			 r->want_ready);
	if (r->draw_hosts && strcmp(draw_hosts, r->draw_hosts) != 0)
		fail_msg("case '%s': drawn on '%s', want '%s'", r->name,
			 draw_hosts, r->draw_hosts);
	if (plan.desired != r->want_desired || count[CONVERGE_START] != r->starts ||
	    count[CONVERGE_REMOVE] != r->removes ||
	    count[CONVERGE_MARK_UNHEALTHY] != r->unhealthy ||
	    count[CONVERGE_REPLACE] != r->replaces) {
		print_error("case '%s': desired %d (want %d), start %d (%d), remove %d (%d), unhealthy %d (%d), replace %d (%d)\n",
			    r->name, plan.desired, r->want_desired,
			    count[CONVERGE_START], r->starts, count[CONVERGE_REMOVE],
			    r->removes, count[CONVERGE_MARK_UNHEALTHY], r->unhealthy,
			    count[CONVERGE_REPLACE], r->replaces);
		if (plan.decided)
			print_error("  decision: %s\n", plan.decision.reason);
		fail();
	}
	if (r->event) {
		if (!event || strcmp(event, r->event) != 0)
			fail_msg("case '%s': event %s, want %s", r->name,
				 event ? event : "none", r->event);
	} else if (event) {
		fail_msg("case '%s': unexpected event %s", r->name, event);
	}
	if (r->refresh_to &&
	    (!plan.refresh_changed ||
	     strcmp(store_refresh_state_name(plan.refresh.state),
		    r->refresh_to) != 0))
		fail_msg("case '%s': refresh %s, want %s", r->name,
			 plan.refresh_changed
				 ? store_refresh_state_name(plan.refresh.state)
				 : "unchanged", r->refresh_to);
	if (!r->refresh_to && plan.refresh_changed &&
	    (!r->refresh_state ||
	     strcmp(store_refresh_state_name(plan.refresh.state),
		    r->refresh_state) != 0))
		fail_msg("case '%s': refresh became %s", r->name,
			 store_refresh_state_name(plan.refresh.state));
	if (r->start_tmpl &&
	    strcmp(plan.start_template,
		   strcmp(r->start_tmpl, "old") == 0 ? TMPL_OLD : TMPL_NEW) != 0)
		fail_msg("case '%s': starts build from %.4s, want %s", r->name,
			 plan.start_template, r->start_tmpl);
	if (r->removed && strcmp(removed, r->removed) != 0)
		fail_msg("case '%s': removed '%s', want '%s'", r->name, removed,
			 r->removed);
	if (r->start_hosts && strcmp(hosts, r->start_hosts) != 0)
		fail_msg("case '%s': started on '%s', want '%s'", r->name, hosts,
			 r->start_hosts);
	if (r->address && strcmp(address ? address : "", r->address) != 0)
		fail_msg("case '%s': address '%s', want '%s'", r->name,
			 address ? address : "", r->address);
	/* a plan changes nothing twice: no instance in two actions */
	for (size_t a = 0; a < plan.n; a++)
		for (size_t b = a + 1; b < plan.n; b++)
			if (plan.v[a].kind == CONVERGE_REMOVE &&
			    plan.v[b].kind == CONVERGE_REMOVE)
				assert_true(plan.v[a].inst != plan.v[b].inst);
	converge_plan_release(&plan);
	converge_state_release(&st);
	release_fixture(&f);
}

static void
test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		check_row(&rows[i]);
}

/* "hosts full" is an event once per episode, not every plan. */
static void
test_hosts_full_once(void **state)
{
	const struct row r = {"full", 1, 8, 3, "R R", 0, .host_max = 2};
	struct fixture f;
	struct converge_state st;
	struct converge_plan plan;

	(void)state;
	setup_fixture(&f, &r);
	converge_state_init(&st);
	plan_row(&f, &r, &st, &plan);
	assert_int_equal(plan.n, 1);
	assert_string_equal(plan.v[0].event, "hosts_full");
	assert_true(st.full);
	converge_plan_release(&plan);
	plan_row(&f, &r, &st, &plan);
	assert_int_equal(plan.n, 0);
	converge_plan_release(&plan);
	/* room again: placed, and the episode ends */
	f.ph[0].max_instances = 0;
	plan_row(&f, &r, &st, &plan);
	assert_int_equal(plan.n, 1);
	assert_int_equal(plan.v[0].kind, CONVERGE_START);
	assert_false(st.full);
	converge_plan_release(&plan);
	converge_state_release(&st);
	release_fixture(&f);
}

/* A held decision is recorded once while it lasts. */
static void
test_held_decision_once(void **state)
{
	/* wants 2 (10 % on 4 at target 60) but a manual scale holds 4 */
	const struct row r = {"held", 1, 8, 4, "R10 R10 R10 R10", 60,
			      .manual = true, .manual_from = 1};
	struct row r2 = r;
	struct fixture f;
	struct converge_state st;
	struct converge_plan plan;
	int events = 0;

	(void)state;
	r2.manual = false;
	setup_fixture(&f, &r);
	converge_state_init(&st);
	plan_row(&f, &r, &st, &plan);
	for (size_t k = 0; k < plan.n; k++)
		events += plan.v[k].kind == CONVERGE_EVENT;
	assert_int_equal(plan.desired, 4);
	assert_int_equal(events, 1);
	converge_plan_release(&plan);
	plan_row(&f, &r2, &st, &plan);
	assert_int_equal(plan.desired, 4);
	assert_int_equal(plan.n, 0);
	converge_plan_release(&plan);
	converge_state_release(&st);
	release_fixture(&f);
}

/*
 * Issue 14: an app metric measured outside (a Prometheus query) is the
 * caller's figure (ext_*), not the instances' heartbeats; unknown, it
 * holds with the source's own reason.
 */
static void
test_app_source(void **state)
{
	static const struct {
		bool present;
		double value;
		const char *why;
		double heartbeat;    /* what the instances report under the
				      * same name: never used; <0: nothing */
		int want;
		const char *reason;
	} cases[] = {
		{true, 95, NULL, -1, 4, "lb_rps 95 (total from prometheus) > "
		 "target 30 per instance (±10%) over 2 ready -> want 4"},
		{true, 20, NULL, 900, 1, "lb_rps 20 (total from prometheus) < "
		 "target 30 per instance"},
		{false, 0, "the query returned 2 series, not one", 900, 2,
		 "no value of app metric lb_rps from prometheus: the query "
		 "returned 2 series"},
		{false, 0, NULL, -1, 2,
		 "no value of app metric lb_rps from prometheus: none yet"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct row r = {.name = "source", .min = 1, .max = 10,
				      .desired = 2, .inst = "R R"};
		struct fixture f;
		struct converge_state st;
		struct converge_plan plan;
		struct converge_input in;

		setup_fixture(&f, &r);
		f.gc.policy.scale_down_window_ms = 0;
		snprintf(f.gc.policy.app[0].name, sizeof(f.gc.policy.app[0].name),
			 "lb_rps");
		f.gc.policy.app[0].kind = POLICY_APP_TOTAL;
		f.gc.policy.app[0].target = 30;
		snprintf(f.gc.policy.app[0].source,
			 sizeof(f.gc.policy.app[0].source), "prometheus");
		f.gc.policy.n_app = 1;
		for (size_t k = 0; k < f.n && cases[i].heartbeat >= 0; k++) {
			f.v[k].app[0] = cases[i].heartbeat;
			f.v[k].app_present[0] = true;
			f.v[k].app_ms[0] = WALL;
		}
		converge_state_init(&st);
		memset(&in, 0, sizeof(in));
		in.cfg = &f.gc;
		in.now_ms = NOW;
		in.wall_ms = WALL;
		in.desired = r.desired;
		in.v = f.v;
		in.n = f.n;
		in.hosts = f.ph;
		in.n_hosts = f.gc.hosts.n;
		in.place = f.place;
		in.new_ids = (const char (*)[STORE_ID_LEN + 1])f.new_ids;
		in.n_new_ids = CONVERGE_MAX_STARTS;
		in.ext_present[0] = cases[i].present;
		in.ext_app[0] = cases[i].value;
		in.ext_why[0] = cases[i].why;
		converge_group(&in, &st, &plan);
		assert_true(plan.decided);
		if (plan.desired != cases[i].want ||
		    !strstr(plan.decision.reason, cases[i].reason))
			fail_msg("case %zu: desired %d (want %d), reason '%s' "
				 "(want '%s' in it)", i, plan.desired,
				 cases[i].want, plan.decision.reason,
				 cases[i].reason);
		assert_int_equal(plan.decision.app_reporting[0],
				 cases[i].present ? 1 : 0);
		converge_plan_release(&plan);
		converge_state_release(&st);
		release_fixture(&f);
	}
}

/*
 * Predictive scaling (issue 14): the forecaster's floor reaches the
 * engine through converge_input and combines with target tracking by
 * taking the larger; forecast_only shows it without acting; the plan
 * gives back the load the decision measured, which the daemon records.
 */
static void
test_forecast_floor(void **state)
{
	static const struct {
		int mode;
		bool have;
		int floor;
		const char *inst;  /* cpu target 60 % */
		int want;
		const char *reason; /* in the decision's reason, or NULL */
		double load;       /* plan.load; <0: NaN */
	} cases[] = {
		/* at target: tracking wants 2, the floor 5 wins */
		{POLICY_PREDICTIVE_FORECAST_AND_SCALE, true, 5, "R60 R60", 5,
		 "forecast: 5 needed in 5m..15m -> want 5", 2},
		/* tracking wants more than the floor: tracking wins */
		{POLICY_PREDICTIVE_FORECAST_AND_SCALE, true, 3, "R90 R90 R90",
		 5, "cpu 90% > target 60%", 4.5},
		/* a floor below the size never shrinks the group */
		{POLICY_PREDICTIVE_FORECAST_AND_SCALE, true, 1, "R60 R60", 2,
		 NULL, 2},
		/* forecast only: shown, not acted on */
		{POLICY_PREDICTIVE_FORECAST_ONLY, true, 5, "R60 R60", 2,
		 "forecast: 5 needed in 5m..15m (forecast_only: not acting)",
		 2},
		/* no forecast (under a day of history): as with off */
		{POLICY_PREDICTIVE_FORECAST_AND_SCALE, false, 0, "R60 R60", 2,
		 NULL, 2},
		/* off: a floor passed by mistake is ignored */
		{POLICY_PREDICTIVE_OFF, true, 5, "R60 R60", 2, NULL, 2},
		/* no data: no load to record, and the floor still acts */
		{POLICY_PREDICTIVE_FORECAST_AND_SCALE, true, 4, "R R", 4,
		 "forecast: 4 needed", -1},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct row r = {.name = "forecast", .min = 1, .max = 10,
				      .desired = 2, .inst = cases[i].inst,
				      .cpu_target = 60};
		struct fixture f;
		struct converge_state st;
		struct converge_plan plan;
		struct converge_input in;

		setup_fixture(&f, &r);
		f.gc.policy.predictive.mode = cases[i].mode;
		converge_state_init(&st);
		memset(&in, 0, sizeof(in));
		in.cfg = &f.gc;
		in.now_ms = NOW;
		in.wall_ms = WALL;
		in.desired = r.desired;
		in.v = f.v;
		in.n = f.n;
		in.hosts = f.ph;
		in.n_hosts = f.gc.hosts.n;
		in.place = f.place;
		in.new_ids = (const char (*)[STORE_ID_LEN + 1])f.new_ids;
		in.n_new_ids = CONVERGE_MAX_STARTS;
		in.have_forecast = cases[i].have;
		in.forecast = cases[i].floor;
		converge_group(&in, &st, &plan);
		assert_true(plan.decided);
		if (plan.desired != cases[i].want ||
		    (cases[i].reason &&
		     !strstr(plan.decision.reason, cases[i].reason)))
			fail_msg("case %zu: desired %d (want %d), reason '%s' "
				 "(want '%s' in it)", i, plan.desired,
				 cases[i].want, plan.decision.reason,
				 cases[i].reason ? cases[i].reason : "");
		/* the decision carries the floor whenever it was given */
		assert_int_equal(plan.decision.forecast,
				 cases[i].mode != POLICY_PREDICTIVE_OFF &&
				 cases[i].have ? cases[i].floor : -1);
		if (cases[i].load < 0)
			assert_true(isnan(plan.load));
		else if (fabs(plan.load - cases[i].load) > 1e-9)
			fail_msg("case %zu: load %g, want %g", i, plan.load,
				 cases[i].load);
		converge_plan_release(&plan);
		converge_state_release(&st);
		release_fixture(&f);
	}
}

/*
 * Issue 12: while busy guests vetoed their removal the group sat above
 * its desired size with no event at all. The veto is an event when it
 * starts (once, not every plan) and when it ends; the plan says how many
 * removals it holds.
 */
static void
test_busy_veto_once(void **state)
{
	const struct row r = {"veto", 1, 8, 1, "R! R! R!", 0, .want_desired = 1};
	struct fixture f;
	struct converge_state st;
	struct converge_plan plan;
	int removes = 0;

	(void)state;
	setup_fixture(&f, &r);
	converge_state_init(&st);
	plan_row(&f, &r, &st, &plan);
	assert_int_equal(plan.n, 1);
	assert_int_equal(plan.v[0].kind, CONVERGE_EVENT);
	assert_string_equal(plan.v[0].event, "scale_in_blocked");
	assert_non_null(strstr(plan.v[0].message, "3 live for a desired 1"));
	assert_non_null(strstr(plan.v[0].message, "3 instances that could go are busy"));
	assert_int_equal(plan.busy_held, 2);
	assert_int_equal(plan.busy_spared, 3);
	assert_true(st.busy_held);
	converge_plan_release(&plan);
	/* the next plans: still held, nothing said */
	for (int k = 0; k < 3; k++) {
		plan_row(&f, &r, &st, &plan);
		assert_int_equal(plan.n, 0);
		assert_int_equal(plan.busy_held, 2);
		converge_plan_release(&plan);
	}
	/* the guests are done: removed, and the veto's end is said */
	for (size_t i = 0; i < f.n; i++)
		f.v[i].busy = false;
	plan_row(&f, &r, &st, &plan);
	assert_int_equal(plan.busy_held, 0);
	for (size_t k = 0; k < plan.n; k++)
		removes += plan.v[k].kind == CONVERGE_REMOVE;
	assert_int_equal(removes, 2);
	assert_int_equal(plan.v[plan.n - 1].kind, CONVERGE_EVENT);
	assert_string_equal(plan.v[plan.n - 1].event, "scale_in_unblocked");
	assert_false(st.busy_held);
	converge_plan_release(&plan);
	converge_state_release(&st);
	release_fixture(&f);
}

static void
test_addresses(void **state)
{
	struct config_static_addresses sa;
	struct converge_instance v[3];
	char taken[1][46] = {"10.0.0.255"};
	char out[46];

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.present = true;
	sa.family = AF_INET;
	sa.first = (char *)"10.0.0.254";
	sa.last = (char *)"10.0.1.1";
	memset(v, 0, sizeof(v));
	v[0].address = "10.0.0.254";
	v[0].state = STORE_INSTANCE_READY;
	v[1].address = "10.0.1.0";
	v[1].state = STORE_INSTANCE_GONE; /* gives its address back */
	v[2].state = STORE_INSTANCE_BOOTING;
	/* .254 held, .255 taken this pass: the next one crosses the octet */
	assert_int_equal(converge_allocate_address(&sa, v, 3, taken, 1, out), 0);
	assert_string_equal(out, "10.0.1.0");
	v[1].state = STORE_INSTANCE_DRAINING;
	assert_int_equal(converge_allocate_address(&sa, v, 3, taken, 1, out), 0);
	assert_string_equal(out, "10.0.1.1");
	v[2].address = "10.0.1.1";
	assert_int_equal(converge_allocate_address(&sa, v, 3, taken, 1, out), -1);

	sa.family = AF_INET6;
	sa.first = (char *)"2001:db8::ffff";
	sa.last = (char *)"2001:db8::1:1";
	v[0].address = "2001:db8::ffff";
	assert_int_equal(converge_allocate_address(&sa, v, 1, NULL, 0, out), 0);
	assert_string_equal(out, "2001:db8::1:0");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_hosts_full_once),
		cmocka_unit_test(test_held_decision_once),
		cmocka_unit_test(test_busy_veto_once),
		cmocka_unit_test(test_app_source),
		cmocka_unit_test(test_forecast_floor),
		cmocka_unit_test(test_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
