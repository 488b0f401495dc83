/*
 * daemon_int.h: what the daemon's shell shares (daemon.c: setup, the loop,
 * signals, lease and reload; scaler.c, with scaler_inputs.c and
 * scaler_actions.c: gathers each group's inputs, runs the converge
 * planner, applies its actions and the operators' commands;
 * reconcile.c: recovery at start and the periodic comparison with
 * libvirt; api.c: the HTTP callbacks and the snapshot they read). The
 * decisions themselves are pure planners (converge.h, policy.h); the
 * workers are jobs.h; what crosses to the HTTP threads is control.h.
 *
 * Threads and ownership (docs/architecture.md):
 *   main      the loop: owns struct daemon and everything in it, and is
 *             the only thread that reads or writes it, with the exceptions
 *             marked below
 *   workers   jobs.c: run jobs with their own store handle use (the
 *             thread-safe d->store) and their own libvirt connections;
 *             results are reaped by the loop
 *   http      libmicrohttpd's threads run api.c's callbacks: they read the
 *             snapshot and post commands and heartbeats (d->ctl), use
 *             d->store_http, and touch only the fields marked "http"
 *   libvirt   host_events.c's event loop thread; collect.c's per-host threads
 *   lease     lease.c's renewal thread, on its own store handle
 */
#ifndef VA_DAEMON_INT_H
#define VA_DAEMON_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "collect.h"
#include "config.h"
#include "control.h"
#include "converge.h"
#include "event.h"
#include "history.h"
#include "host.h"
#include "http.h"
#include "influx.h"
#include "authlimit.h"
#include "jobs.h"
#include "lease.h"
#include "appmetric.h"
#include "mstore.h"
#include "place.h"
#include "policy.h"
#include "predict.h"
#include "promsrc.h"
#include "provision.h"
#include "rates.h"
#include "sink.h"
#include "hooks.h"
#include "store.h"

struct reconciler;
struct members;

/* What the daemon knows of a host (status, events, placement). */
enum dhost_state {
	DHOST_UNKNOWN, /* not measured yet: connecting or collecting the first time */
	DHOST_UP,      /* the last collection round succeeded */
	DHOST_DOWN,    /* the last round failed, or the host is not connected */
	DHOST_LAST
};
const char *dhost_state_name(enum dhost_state st);

/* A configured host and what was last measured of it. */
struct dhost {
	const struct config_host *cfg; /* in d->cfg */
	struct host *h;
	struct collect_capacity cap;   /* from the last collection round */
	bool cap_ok;
	int64_t collected_ms;          /* when the last round's call was made
					  (monotonic); 0: none yet */
	enum dhost_state state;
	int64_t state_since_ms;        /* wall clock; 0: since the start */
	char why[256];                 /* DOWN: why */
	enum dhost_state said;         /* what the last host_down/host_up event said */
};

/* A configured group and its runtime state. */
struct dgroup {
	const struct config_group *cfg; /* in d->cfg */
	struct converge_state cs;      /* the planner's memory */
	struct place_strategy *place;
	char *user_data, *network_config, *domain_template; /* the group's files */
	struct provision_files files;  /* pointing at them */

	int desired;                   /* as the store has it */
	bool paused;                   /* as the store has it */
	bool manual;                   /* `scale` set desired ... */
	int manual_from;               /* ... from this size, since the last plan */
	int current, ready;            /* at the last plan */
	int busy_held;                 /* removals held by busy instances (plan.busy_held) */
	bool waiting_for_hosts;        /* placement waits for hosts not measured yet */
	int64_t next_decide_ms;        /* or, while decide_deferred, the
					  latest it waits to (scaler_tick) */
	bool decide_deferred;          /* due, waiting for the round in flight */
	struct policy_decision last;   /* the last decision */
	bool have_last;
	struct rates_group agg;        /* last window's aggregates */
	double metric[POLICY_METRIC_LAST]; /* last averages */
	bool metric_present[POLICY_METRIC_LAST];
	int64_t backoff_until_ms;      /* provisioning failed: wait */
	unsigned failures;             /* provisioning failures in a row */
	struct log_complain full_complaint;  /* "hosts full" */
	struct history *hist;          /* a point per plan, for the status page */
	/* the app target's outside source (promsrc.h), or NULL */
	struct promsrc *src;
	bool src_failing;              /* an app_source_error event said so */
	/* the warm pool: sizes at the last plan; parking failed lately (no
	 * refill until then); the resuming instances whose resume job ended
	 * well in this run (sorted ids; pruned at each plan) */
	int warming, warm, warm_target;
	int64_t warm_backoff_until_ms;
	char (*resumed)[STORE_ID_LEN + 1];
	size_t n_resumed;
	/* predictive scaling's history and forecast (predict.h), or NULL
	 * when scaling.predictive is off */
	struct predict *pred;
	/* app metric values reported up to then went to the sinks */
	int64_t app_sent_ms;
	/* the lifecycle hooks' HMAC keys (groups.*.hooks.*.secret), read at
	 * start and reload; NULL without the hook */
	char *hook_key[STORE_HOOK_LAST];
	/* instance refresh (refresh.h): the configuration's template and
	 * its hash; the group's refresh row (NULL: never had one); failed
	 * provisionings since the last plan; the stored template last built
	 * from (a rollback), by hash */
	char *template_body;
	char template_hash[65];
	struct store_refresh *refresh;
	int refresh_failed_starts;
	int refresh_old;               /* instances still to replace (last plan) */
	struct template_copy *tcopy;
	char tcopy_hash[65];
};

struct daemon {
	struct config *cfg;
	int64_t config_gen;            /* bumped on every applied reload */
	char *admin_token;             /* read from its source at start */
	struct store *store;           /* the loop and the workers */
	struct store *store_http;      /* http threads */
	/* the store's installation id (store_owner_id), written as owner= into
	 * the metadata of every domain we create; read-only after setup */
	char owner[STORE_ID_LEN + 1];
	char holder[256];              /* lease holder id */
	int64_t epoch;                 /* our lease epoch */
	/* the lease's renewal thread (lease.c), from the moment we lead; it
	 * owns store_lease then */
	struct lease *lease;
	struct store *store_lease;     /* opened at start, for the lease */
	bool lease_expired_said;       /* "not renewed in time" logged */

	struct dhost *hosts;
	unsigned n_hosts;
	struct dgroup *groups;
	unsigned n_groups;

	struct collector *collector;
	struct mstore *mstore;         /* has its own lock: http reads it */
	struct appm *appm;             /* app metrics; own lock (appmetric.h) */
	struct influx *influx;         /* NULL unless daemon.metrics.influxdb */
	struct sink sinks[2];          /* the built-in store, InfluxDB */
	size_t n_sinks;
	struct http_server *http;
	struct job_queue *jobs;
	struct hooks *hooks;           /* lifecycle hooks' sender (hooks.h) */
	struct reconciler *reconciler; /* reconcile.h */
	struct members *members;       /* members.h: load-balancer members */
	struct control *ctl;           /* http: the snapshot, commands */
	/* ready instances with their secret hashes, sorted by id, as the
	 * scaler last listed them: published for heartbeats (control.h) */
	struct control_instance *ready;
	size_t n_ready;
	pthread_t loop_thread;         /* woken by SIGUSR1 when a command comes */

	/* counters for /metrics; http ones with __atomic builtins */
	unsigned long checkins, heartbeats, auth_failures; /* http */
	unsigned long heartbeats_invalid; /* http: a metric value refused */
	/* http: refused guests and store errors are said at a bounded rate
	 * (api.c), under refuse_lock */
	pthread_mutex_t refuse_lock;
	struct ratelimit refuse_known, refuse_unknown, refuse_lines;
	struct ratelimit store_complaint;
	unsigned long provisioned, removed, provision_errors;

	int64_t started_ms;            /* monotonic, when run began */
	int64_t next_collect_ms;
	int64_t next_reconcile_ms;
	int64_t next_housekeeping_ms;  /* pruning of old history, hourly */
	struct log_complain predict_complaint; /* load history not written */
	bool stop;                     /* SIGTERM/SIGINT */
	bool lease_lost;               /* the loop stopped: another daemon leads */

	/* test switches from the environment (see docs/testing.md) */
	const char *crash_at;          /* VA_TEST_CRASH_AT: kill -9 self at a step */
	int64_t reconcile_period_ms;   /* VA_TEST_RECONCILE_MS, else 30 s */
	int64_t stall_ms;              /* VA_TEST_STALL_MS: one stall of the loop */
	int64_t provision_deadline_ms; /* VA_TEST_PROVISION_DEADLINE_MS, else
					  0: JOBS_DEADLINE_MS (10 min) */
};

struct dgroup *daemon_group(struct daemon *d, const char *name);
struct dhost *daemon_host(struct daemon *d, const char *name);

/* scaler.c */
/* Apply the operators' commands (set desired, pause, resume); refuse
 * them when the loop may not act (lease not valid). */
void scaler_commands(struct daemon *d, bool may_act);
/* Reap finished jobs: counters, provisioning backoff. */
void scaler_reap(struct daemon *d);
/* Plan and act for every group whose decision is due. */
void scaler_tick(struct daemon *d, int64_t now_ms);
/* Remove an instance (already draining or deleting in the store) on a
 * worker; -1 with err_set() when its host is not configured. */
int scaler_remove(struct daemon *d, const struct store_instance *si,
		  int64_t drain_ms);

/* reconcile.c, recover.c: see reconcile.h */

/* daemon.c: record host_down / host_up events for changes of the hosts'
 * states (the leader only). */
void daemon_host_events(struct daemon *d);
/* daemon.c: wake the loop from its wait (any thread; arg: the daemon):
 * a command was posted, a collector round finished. */
void daemon_wake(void *arg);

/* api.c */
extern const struct http_api daemon_http_api;
void daemon_flush_heartbeats(struct daemon *d);
/* Publish the loop's state for the HTTP threads (once per tick). */
void daemon_publish(struct daemon *d);

#endif
