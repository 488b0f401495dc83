/*
 * control.h: everything that crosses between the daemon's loop and the
 * HTTP threads, so that no HTTP thread reads or writes the loop's state
 * (bgpd's RDE and SE, which share no memory and talk by messages, are the
 * model).
 *
 *   loop -> HTTP  a snapshot: an immutable, reference-counted picture of
 *                 the groups (sizes, counts, metrics, last decision) and
 *                 the daemon's part of /metrics, published once per tick
 *                 (control_publish). Readers take a reference and read it
 *                 without any lock held; a reload or a slow tick never
 *                 shows them a half-built state.
 *   HTTP -> loop  commands (set a group's desired size, pause, resume):
 *                 the HTTP thread posts one and waits for the loop's
 *                 answer (control_submit); the loop takes them at the
 *                 start of its next step, writes the store first and
 *                 changes its own state only if the store accepted
 *                 (control_next, control_complete). A command the loop
 *                 did not take in time is withdrawn and answered "not
 *                 applied"; one it took is always answered.
 *                 Heartbeats: posted (control_heartbeat), flushed by the
 *                 loop in one batch per tick (control_heartbeats_take).
 *
 * Threads: control_publish, control_next, control_complete,
 * control_heartbeats_take and control_close from the loop; the rest from
 * any thread.
 */
#ifndef VA_CONTROL_H
#define VA_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "history.h"
#include "policy.h"
#include "store.h"
#include "targets.h"

struct control;

/* What the HTTP threads see of a group. */
struct control_group {
	char *name;
	int min, max, desired, current, ready;
	bool paused;
	double metric[POLICY_METRIC_LAST];
	bool metric_present[POLICY_METRIC_LAST];
	char *last_decision;             /* the last decision's reason, or NULL */
	char *app_source;                /* JSON of the app target's outside
					  * source (api.c), or NULL */
	char *predictive;                /* JSON of the forecast
					  * (predict_json()), or NULL */
	int busy_held;                   /* removals held by busy instances */
	bool waiting_for_hosts;          /* placement waits for hosts not measured yet */
	/* the warm pool: configured (size > 0 or instances left in it),
	 * its state, target, and instances being prepared and parked */
	bool warm_pool;
	const char *warm_state;          /* static */
	int warm_target, warming, warm;
	int64_t interval_ms;             /* scaling.interval: a plan this often */
	double target[POLICY_METRIC_LAST]; /* target tracking; 0: not tracked */
	struct history *history;         /* a reference: the plans (history.h) */
	/* load-balancer members (members.h): ready instances with an
	 * address, sorted by id; how many ready ones have none yet */
	struct targets_entry *targets;
	size_t n_targets, targets_pending;
	int targets_port;                /* groups.*.targets.port, 0: none */
	bool targets_known;              /* listed at least once */
	bool launch_hook;                /* groups.*.hooks.launch: a check-in
					    goes to launch_wait, not ready */
	char *refresh;                   /* JSON of the group's instance
					    refresh (refresh_json()), or NULL */
};

/* What the HTTP threads see of a host. */
struct control_host {
	char *name;
	const char *state;               /* static: "up", "down", "unknown" */
	int64_t since_ms;                /* wall clock; 0: since the start */
	char *why;                       /* down: why; else NULL */
	bool measured;                   /* the figures below are known */
	unsigned cpus, domains, vcpus_alloc;
	uint64_t mem_bytes, free_bytes, mem_alloc_bytes;
};

/*
 * A ready instance and its secret's hash, so that a heartbeat of a
 * ready instance is authenticated without the state store (api.c); any
 * other instance (booting, unknown) is looked up in the store.
 */
struct control_instance {
	char id[STORE_ID_LEN + 1];
	char secret_hash[65];            /* secret_hash() output */
};

struct control_snapshot {
	int refs;                        /* control.c's */
	int64_t generation;              /* the configuration generation */
	int64_t retention_ms;            /* daemon.metrics.retention */
	bool metrics_instances;          /* daemon.metrics_instances */
	struct control_group *groups;
	size_t n_groups;
	char *prom;                      /* the daemon's part of /metrics */
	struct control_instance *ready;  /* sorted by id */
	size_t n_ready;
	struct control_host *hosts;      /* configuration order */
	size_t n_hosts;
	/* addresses the hosts' inventories found, every instance's (not
	 * only the ready ones), sorted by id */
	struct targets_entry *addrs;
	size_t n_addrs;
};

/* The address libvirt reported for instance id, or NULL. */
const char *control_snapshot_address(const struct control_snapshot *s,
				     const char *id);

/* A new snapshot with room for n groups (all zero); the loop fills it. */
struct control_snapshot *control_snapshot_new(size_t n_groups);
/* The group called name, or NULL. */
const struct control_group *control_snapshot_group(const struct control_snapshot *s,
						   const char *name);

/* The ready instance id, or NULL. */
const struct control_instance *control_snapshot_ready(const struct control_snapshot *s,
						      const char *id);

/* wake: called (any thread) when a command is posted, so the loop looks
 * at once; may be NULL. */
struct control *control_new(void (*wake)(void *), void *wake_arg);
/* Frees; answers what is still queued. Accepts NULL. */
void control_free(struct control *c);

/* Loop: the new snapshot replaces the old (ownership passes). */
void control_publish(struct control *c, struct control_snapshot *s);
/* Any thread: a reference to the current snapshot (NULL before the
 * first), released with control_snapshot_put(). */
struct control_snapshot *control_snapshot_get(struct control *c);
void control_snapshot_put(struct control_snapshot *s);

enum control_cmd_kind {
	CONTROL_SET_DESIRED,
	CONTROL_SET_PAUSED,
	CONTROL_PLAN_NOW,                /* plan the group at the loop's next
					    turn (a lifecycle hook's wait
					    began or was completed) */
	CONTROL_REFRESH,                 /* instance refresh: start, cancel
					    or resume (refresh.h) */
	CONTROL_CMD_LAST
};

struct control_cmd {
	enum control_cmd_kind kind;
	const char *group;               /* borrowed for the call */
	int desired;                     /* SET_DESIRED */
	bool paused;                     /* SET_PAUSED */
	/* REFRESH: "start", "cancel" or "resume"; start's settings ("" or
	 * -1: the group's groups.*.refresh) */
	char refresh_action[8];
	char max_unavailable[16];
	int surge, min_healthy;
	char checkpoints[256];
	/* the loop's answer */
	unsigned status;                 /* 200, 404, 409, 503 */
	int from, to;                    /* SET_DESIRED: sizes before, after */
	char note[128];                  /* e.g. "raised to the group's min 1" */
	char error[512];                 /* when status != 200 */
	/* control.c's */
	bool taken, done;
	struct control_cmd *next;
};

/*
 * HTTP thread: post cmd and wait for the loop's answer, at most
 * timeout_ms for the loop to take it (once taken, until it is done).
 * 0 with cmd->status set; -1 when the loop did not take it in time or
 * the daemon is stopping (nothing was applied; cmd->error says so).
 */
int control_submit(struct control *c, struct control_cmd *cmd,
		   int64_t timeout_ms);
/* Loop: the next command to apply, or NULL. */
struct control_cmd *control_next(struct control *c);
/* Loop: cmd's answer is filled in; its submitter may return. */
void control_complete(struct control *c, struct control_cmd *cmd);
/* Loop, when stopping: refuse new commands, answer queued ones. */
void control_close(struct control *c);

/* A guest's heartbeat (or check-in), for the loop's next flush. */
void control_heartbeat(struct control *c, const char *id, int64_t time_ms,
		       bool busy);
struct control_hb {
	char id[STORE_ID_LEN + 1];
	int64_t time_ms;
	bool busy;
	/* application metrics a policy names (appmetric.h): app[i] for
	 * each bit i of app_mask, indices of generation app_gen */
	uint32_t app_gen;
	uint32_t app_mask;
	double app[POLICY_APP_DAEMON_MAX];
};
/* The same with the heartbeat's application metrics (hb->id, time_ms
 * and busy too). */
void control_heartbeat_app(struct control *c, const struct control_hb *hb);
/* Loop: the heartbeats posted since the last call, the newest per
 * instance, into *out (caller frees). Returns how many. */
size_t control_heartbeats_take(struct control *c, struct control_hb **out);

#endif
