/*
 * daemon_int.h: what the daemon's own modules share (daemon.c: the loop,
 * signals, lease and reload; scaler.c: decisions, health and convergence
 * per group; provision.c: the worker pool that creates and removes VMs;
 * reconcile.c: recovery at start and the periodic comparison with
 * libvirt; api.c: the HTTP callbacks and /metrics). Not for other modules.
 *
 * Threads:
 *   main      owns everything below unless marked otherwise: it runs the
 *             loop, decides, converges, reconciles, flushes heartbeats
 *   workers   run jobs (struct job) of provision.c; a job carries copies of
 *             everything it needs from the configuration, so a reload can
 *             swap the configuration while jobs run
 *   http      libmicrohttpd's threads run api.c's callbacks; they use
 *             store_http and the fields marked "lock"
 *   libvirt   host.c's event loop thread
 *   lease     lease.c's renewal thread, on store_lease; the others ask
 *             lease_status() whether the lease is still valid
 */
#ifndef VA_DAEMON_INT_H
#define VA_DAEMON_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "collect.h"
#include "config.h"
#include "host.h"
#include "http.h"
#include "influx.h"
#include "lease.h"
#include "mstore.h"
#include "place.h"
#include "policy.h"
#include "sink.h"
#include "store.h"

struct job_queue;
struct reconciler;

/* A configured host and what was last measured of it. */
struct dhost {
	const struct config_host *cfg; /* in d->cfg */
	struct host *h;
	struct collect_capacity cap;   /* from the last collection round */
	bool cap_ok;
};

/* A configured group and its runtime state. */
struct dgroup {
	const struct config_group *cfg; /* in d->cfg */
	struct policy_state *pst;
	struct place_strategy *place;
	char *user_data;               /* the group's user-data file, or NULL */
	size_t user_data_len;
	char *network_config;          /* the group's network-config, or NULL */
	size_t network_config_len;
	char *domain_template;         /* the group's domain XML template, or NULL */
	size_t domain_template_len;

	int desired;                   /* lock: mirrors the store */
	bool paused;                   /* lock */
	int current, ready;            /* lock: live / ready instances, last tick */
	int64_t next_decide_ms;
	struct policy_decision last;   /* lock: the last decision */
	bool have_last;
	bool hosts_full;               /* "hosts full" reported */
	int last_hold_key[4];          /* to record a held decision once */
	int64_t provision_backoff_until_ms; /* after failures */
	unsigned provision_failures;   /* in a row */
	struct rates_group agg;        /* last window's aggregates */
	double metric[POLICY_METRIC_LAST];   /* lock: last averages */
	bool metric_present[POLICY_METRIC_LAST];
	struct log_complain full_complaint;  /* "hosts full" */
	bool manual_pending;           /* lock: `scale` set desired ... */
	int manual_from;               /* lock: ... from this size */
};

/* Heartbeats received by the HTTP threads, flushed by the main loop. */
struct pending_hb {
	char id[STORE_ID_LEN + 1];
	int64_t time_ms;
	bool busy;
};

struct daemon {
	struct config *cfg;
	int64_t config_gen;            /* bumped on every applied reload */
	char *admin_token;             /* read from its source at start */
	struct store *store;           /* main thread and workers */
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
	struct mstore *mstore;
	struct influx *influx;         /* NULL unless daemon.metrics.influxdb */
	struct sink sinks[2];          /* the built-in store, InfluxDB */
	size_t n_sinks;
	struct http_server *http;
	struct job_queue *jobs;
	struct reconciler *reconciler; /* reconcile.h */

	pthread_mutex_t lock;          /* fields marked "lock" */
	struct pending_hb *hb;         /* lock */
	size_t n_hb, alloc_hb;         /* lock */

	struct strbuf prom;            /* lock: the /metrics text */
	/* counters for /metrics (lock) */
	unsigned long checkins, heartbeats, auth_failures;
	unsigned long provisioned, removed, provision_errors;

	int64_t next_collect_ms;
	int64_t next_reconcile_ms;
	int64_t next_housekeeping_ms;  /* pruning of old history, hourly */
	volatile int stop;             /* set by SIGTERM/SIGINT */
	volatile int reload;           /* set by SIGHUP */
	bool lease_lost;               /* the loop stopped: another daemon leads */

	/* test switches from the environment (see docs/testing.md) */
	const char *crash_at;          /* VA_TEST_CRASH_AT: kill -9 self at a step */
	int64_t reconcile_period_ms;   /* VA_TEST_RECONCILE_MS, else 30 s */
	int64_t stall_ms;              /* VA_TEST_STALL_MS: one stall of the loop */
};

/* scaler.c */
void scaler_tick(struct daemon *d, int64_t now_ms);
/* A provisioning job ended (main thread): backoff after failures. */
void scaler_provision_result(struct daemon *d, const char *group, bool ok);
/*
 * The lowest address of the group's static range that no instance in l
 * (other than gone ones) and none of taken[] holds, into out. 0, or -1
 * when the range is exhausted.
 */
int scaler_allocate_address(const struct config_static_addresses *sa,
			    const struct store_instance_list *l, char **taken,
			    size_t n_taken, char out[46]);
/* Live = counts towards the group's size. */
bool scaler_state_live(enum store_instance_state st);
/* Record an event; logs it at info too. group/instance may be NULL. */
void daemon_event(struct daemon *d, const char *group, const char *instance,
		  const char *kind, const char *details, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
struct dgroup *daemon_group(struct daemon *d, const char *name);
struct dhost *daemon_host(struct daemon *d, const char *name);

/* provision.c: a pool of worker threads running provision/remove jobs. */
struct job_queue *jobs_start(struct daemon *d, unsigned threads);
/* Wait for running jobs, drop queued ones (they stay journaled). */
void jobs_stop(struct job_queue *q);
/* Jobs queued or running. */
unsigned jobs_pending(struct job_queue *q);
/* Create instance inst (already stored as 'requested') on host h;
 * address: its static address from the group's pool, or NULL. */
int jobs_provision(struct daemon *d, const struct dgroup *g,
		   const struct dhost *h, const char *instance_id,
		   const char *address);
/* Remove an instance (already 'deleting' in the store). */
int jobs_remove(struct daemon *d, const struct store_instance *inst,
		int64_t drain_ms);
/* Handle the results of finished jobs (main thread). */
void jobs_reap(struct daemon *d);
/* Is a job for this instance queued or running? */
bool jobs_busy_with(struct job_queue *q, const char *instance_id);
/*
 * Remove an instance's domain (graceful shutdown up to drain_ms, then
 * destroy and undefine) and its volumes; every step tolerates what is
 * already gone. The domain found under that name is touched only if its
 * metadata names instance id and either no owner (an older version made
 * it) or owner (our installation id); any other domain by that name
 * belongs to someone else and is left alone with a warning: only the
 * instance's own volumes (named after id) are deleted then, unless that
 * domain is instance id made by another installation (then nothing is
 * touched: the volumes are its). 0, or -1 with err_set().
 */
int instance_remove(virConnectPtr conn, const char *pool, const char *domain,
		    const char *id, const char *owner, int64_t drain_ms,
		    bool *graceful);
/* VA_TEST_CRASH_AT: die by SIGKILL when the named step is reached. */
void daemon_crash_point(const struct daemon *d, const char *step);

/* reconcile.c: see reconcile.h */

/* api.c */
extern const struct http_api daemon_http_api;
void daemon_flush_heartbeats(struct daemon *d);
/* Rebuild the /metrics text from the current state (main thread). */
void daemon_render_metrics(struct daemon *d);

#endif
