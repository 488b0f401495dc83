/*
 * sink.h: where collected metrics go. Each sink (the built-in store, the
 * InfluxDB writer) implements the same small table of functions, and
 * sink_feed() hands one host's collection result to all of them and to the
 * /metrics registry: the daemon calls it from its collect_take() callback.
 * The scaler gives each group's state at a decision (sink_group()), the
 * loop the events recorded since its last turn (sink_event()).
 */
#ifndef VA_SINK_H
#define VA_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "collect.h"
#include "influx.h"
#include "mstore.h"
#include "rates.h"

struct sink_ops {
	const char *name;
	/* One instance's rates over the interval ending at mono_ms/wall_ms. */
	void (*instance)(void *self, const struct collect_instance *inst,
			 const char *host, int64_t mono_ms, int64_t wall_ms);
	/* The instance is no longer active on its host. NULL: nothing to do. */
	void (*gone)(void *self, const unsigned char uuid[VIR_UUID_BUFLEN]);
	/* A host's capacity. NULL: not kept. */
	void (*host)(void *self, const char *host, int64_t wall_ms,
		     const struct collect_capacity *cap);
	/* A group at one of its decisions. NULL: not kept. */
	void (*group)(void *self, const struct influx_group *g, int64_t wall_ms);
	/* An event of the activity history. NULL: not kept. */
	void (*event)(void *self, const struct influx_event *e);
	/* An instance's application metric value. NULL: not kept. */
	void (*instance_app)(void *self, const struct influx_app_value *v);
	/* Make progress (network I/O). NULL: nothing to do. */
	void (*poll)(void *self, int64_t now_ms);
};

struct sink {
	const struct sink_ops *ops;
	void *self; /* borrowed: the store or the writer */
};

/* The built-in store (keyed by UUID, monotonic time) and InfluxDB. */
struct sink sink_mstore(struct mstore *s);
struct sink sink_influx(struct influx *ix);

/*
 * Give a result to every sink and to the /metrics registry. Times of a
 * result are monotonic (r->t_ms); wall_now_ms and mono_now_ms convert
 * them to wall-clock time for sinks that need it.
 */
void sink_feed(const struct sink *sinks, size_t n,
	       const struct collect_host_result *r, int64_t wall_now_ms,
	       int64_t mono_now_ms);
/* Give a group's state at a decision, or an event, to every sink that
 * keeps them (InfluxDB). */
void sink_group(const struct sink *sinks, size_t n, const struct influx_group *g,
		int64_t wall_ms);
void sink_event(const struct sink *sinks, size_t n, const struct influx_event *e);
/* An instance's application metric value to every sink that keeps them. */
void sink_instance_app(const struct sink *sinks, size_t n,
		       const struct influx_app_value *v);
/* The events recorded since the last call (event_tap_drain(): the tap is
 * started by whoever configures a sink that keeps events) to every sink
 * that keeps them; returns how many the tap had to drop. */
unsigned long sink_events_drain(const struct sink *sinks, size_t n);
/* Call every sink's poll. */
void sink_poll(const struct sink *sinks, size_t n, int64_t now_ms);

#endif
