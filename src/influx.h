/*
 * influx.h: the InfluxDB sink (1.x HTTP API, line protocol), used when
 * the configuration names an InfluxDB.
 *
 * Points are formatted at once into a bounded queue; influx_poll() (call
 * it every tick, or more often) sends them in batches with libcurl's multi
 * interface and never blocks. While InfluxDB is down or refuses a batch,
 * the batch is retried with backoff (1 s doubling to 30 s) and new points
 * keep queueing up to max_points; beyond that the oldest queued points are
 * dropped and counted. Errors are logged once, then rate-limited.
 *
 * Measurements (timestamps in ms, precision=ms):
 *   va_instance,group=G,host=H,instance=I cpu=..,memory=..,disk_read_bps=..,...
 *       (only the rates present; names as rates_metric_name())
 *   va_host,host=H cpus=Ni,mem_kib=Ni,free_kib=Ni,cpu_util=..,domains=Ni,
 *       vcpus_alloc=Ni,mem_alloc_kib=Ni (only the fields present)
 *   va_group,group=G desired=Ni,current=Ni,ready=Ni,min=Ni,max=Ni,
 *       paused=true|false                        (one per decision)
 *   va_group_metric,group=G,metric=M value=..,target=..
 *       (per metric the policy uses, with the decision; each field only
 *       when known; percentages as 0..100 like va_instance)
 *   va_event,group=G,kind=K,level=L text="...",instance="..."
 *       (an event of the activity history; group and instance absent
 *       for daemon-wide ones; a timestamp already used by an earlier
 *       event is moved 1 ms on, so two events never overwrite each
 *       other)
 *
 * Not thread-safe: one owner thread (the daemon's loop).
 */
#ifndef VA_INFLUX_H
#define VA_INFLUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collect.h"
#include "rates.h"
#include "util.h"

struct influx_opts {
	const char *url;        /* http://127.0.0.1:8086 (no trailing path) */
	const char *database;   /* autoscaler */
	const char *username;   /* NULL: no authentication */
	const char *password;   /* never logged */
	size_t max_points;      /* queue bound; 0: 100000 */
	size_t batch_points;    /* points per request; 0: 5000 */
	int64_t timeout_ms;     /* per request; 0: 10 s */
};

struct influx_counters {
	unsigned long queued;   /* points waiting (including in flight) */
	unsigned long sent;     /* points InfluxDB accepted */
	unsigned long dropped;  /* points dropped: queue full or rejected */
	unsigned long errors;   /* failed requests */
	unsigned long requests; /* requests made */
};

struct influx;

/* A group at one decision (va_group, va_group_metric). */
struct influx_group_metric {
	const char *metric;     /* policy_metric_name() */
	bool have_value;
	double value;           /* what the decision saw */
	bool have_target;
	double target;          /* the policy's target, when it tracks one */
};

struct influx_group {
	const char *name;
	int desired, current, ready;
	int min, max;           /* in force (schedules applied) */
	bool paused;
	int warming, warm;      /* the warm pool (0 without one) */
	const struct influx_group_metric *metrics;
	size_t n_metrics;
};

/* An application metric an instance reported in a heartbeat
 * (va_instance_app): one value of one metric at the report's time. */
struct influx_app_value {
	const char *group;
	const char *host;       /* may be NULL */
	const char *instance;   /* its id */
	const char *metric;     /* the name the guest reported */
	double value;           /* finite, 0 .. 1e12 (api_guest.c) */
	int64_t wall_ms;        /* when the heartbeat came */
};

/* An event of the activity history (va_event). */
struct influx_event {
	int64_t wall_ms;
	const char *group;      /* NULL: daemon-wide */
	const char *instance;   /* may be NULL */
	const char *kind;
	const char *level;      /* "info", "warn", "error" */
	const char *text;
};

/*
 * The URLs influx_new() uses, exported for tests: write_url is
 * URL/write?db=DATABASE&precision=ms on url's path (query, fragment and
 * trailing '/' dropped; user info kept: libcurl sends it), shown_url is
 * url without user info, query, fragment or trailing '/', for messages.
 * Both built with libcurl's URL API; the caller frees both. -1 with
 * err_set() when url is not an http:// or https:// URL (url_check_http).
 */
int influx_urls(const char *url, const char *database, char **write_url,
		char **shown_url);

/* NULL with err_set() when the URL or database is unusable. */
struct influx *influx_new(const struct influx_opts *opts);
void influx_free(struct influx *ix); /* unsent points are lost; accepts NULL */

/* Append points (wall clock ms). Never blocks, never fails: a full queue
 * drops its oldest point. */
void influx_add_instance(struct influx *ix, const char *group,
			 const char *host, const char *instance,
			 int64_t wall_ms, const struct rates *r);
void influx_add_host(struct influx *ix, const char *host, int64_t wall_ms,
		     const struct collect_capacity *cap);
/* One va_group point and one va_group_metric point per metric. */
void influx_add_group(struct influx *ix, int64_t wall_ms,
		      const struct influx_group *g);
void influx_add_event(struct influx *ix, const struct influx_event *e);
/* One va_instance_app point: tags group, host, instance, metric; field
 * value. A value that is not finite is not written. */
void influx_add_instance_app(struct influx *ix,
			     const struct influx_app_value *v);

/* Make progress: finish/start requests. Never blocks. */
void influx_poll(struct influx *ix, int64_t now_ms);
/* Block until the queue is empty or timeout_ms passed (shutdown, tests).
 * Returns 0 when everything was sent. */
int influx_flush(struct influx *ix, int64_t timeout_ms);

void influx_get_counters(struct influx *ix, struct influx_counters *out);

/*
 * Line protocol escaping (exposed for tests). influx_escape(): a tag key
 * or value or a field key, with ',', '=' and ' ' escaped; what InfluxDB
 * 1.x cannot hold there becomes '_': control characters (a newline would
 * end the line), a backslash that ends the text, and the last of an odd
 * run of backslashes before ',', '=' or ' ' (InfluxDB would pair it with
 * the escape's own). Everything else reads back as it was. influx_escape_string(): a string field value,
 * quoted, with '"' and '\\' escaped and control characters as spaces.
 */
void influx_escape(struct strbuf *sb, const char *s);
void influx_escape_string(struct strbuf *sb, const char *s);

#endif
