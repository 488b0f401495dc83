/*
 * event.h: the activity history. Every decision and action is recorded
 * as an event in the state store (with its reason) and logged, one line
 * naming the group and the instance, at event_level(kind): failures
 * (provision_failed, placement_error) at error, trouble (unhealthy, lost,
 * replace, hosts_full, addresses_full, host_down) at warn, the rest at
 * info. Any thread may record, on the store handle it uses.
 */
#ifndef VA_EVENT_H
#define VA_EVENT_H

#include "log.h"
#include "store.h"

/* The level an event of this kind is logged at. */
enum log_level event_level(const char *kind);

/*
 * Record an event: group and instance may be NULL (daemon-wide), details
 * is an optional JSON text. A store that refuses is logged (warning), not
 * returned: the action the event describes happened anyway.
 */
void event_record(struct store *s, const char *group, const char *instance,
		  const char *kind, const char *details, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/*
 * The tap: while it is on, every event recorded (by any thread) is also
 * copied into a bounded queue, which one thread drains (the daemon's loop
 * hands them to the InfluxDB sink as annotations). Beyond max events the
 * oldest are dropped and counted. event_tap_start() and _stop() are for
 * the thread that drains; _stop() frees what is queued.
 */
struct event_tapped {
	int64_t wall_ms;
	char *group, *instance, *kind, *message; /* group, instance may be NULL */
};
#define EVENT_TAP_MAX 1000 /* the daemon's bound */
void event_tap_start(size_t max);
void event_tap_stop(void);
/* Call fn for each queued event, oldest first, outside the lock; returns
 * how many were dropped since the last call. */
unsigned long event_tap_drain(void (*fn)(const struct event_tapped *e, void *arg),
			      void *arg);

/*
 * VA_TEST_CRASH_AT (docs/testing.md): when crash_at names step, the
 * process kills itself with SIGKILL there, as a crash would.
 */
void event_crash_point(const char *crash_at, const char *step);

#endif
