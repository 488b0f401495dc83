/*
 * host.h: one persistent libvirt connection per configured host.
 *
 * A host is a name and a libvirt URI (qemu:///system, qemu+ssh://...,
 * qemu+tls://..., test:///default: the same code for all). The module
 * keeps the connection (two, see below) open, detects a dead connection (keepalive and
 * the close callback), and reconnects with exponential backoff (1 s
 * doubling to 60 s), driven by the caller's tick.
 *
 * Nothing here blocks the caller. virConnectOpen() to a dead or
 * firewalled remote host can block for the TCP or SSH timeout (minutes),
 * so each connection attempt runs in a short-lived thread of its own,
 * which also sets keepalive and registers the close and lifecycle
 * callbacks (calls to the remote side too); host_tick() starts attempts
 * when they are due and adopts their result when they finish, without
 * any call to the remote side. A host whose attempt hangs keeps that one
 * thread busy and delays nobody else. An attempt still running when the
 * host is freed is abandoned: its thread closes what it opened and exits.
 * Operations on an open connection (stats calls, provisioning) can still
 * block while a peer silently dies. Keepalive (5 s interval, 3 missed
 * replies) bounds that to about 20 s, but only for the call that is
 * doing the connection's I/O: libvirt's RPC client lets one thread at a
 * time poll a connection, and a call made meanwhile from another thread
 * waits behind it. When keepalive ends the first call, the waiting one
 * inherits the connection and, in libvirt 9.0, polls it with no timeout
 * and no keepalive: it blocks until the socket closes or a byte arrives,
 * which from a half-dead host may be never (measured: > 2 minutes while
 * the first call failed after 19 s). So each host has two connections,
 * opened, kept alive, watched and reconnected together: host_conn(),
 * on which the daemon makes calls from the collector's thread of the
 * host only, and host_conn_own(), on which only the owner thread (the
 * daemon's loop) makes calls, one at a time, so that its calls are
 * always the ones keepalive bounds. Callers that must not wait even that
 * long run per-host work in a thread of their own (collect.c does;
 * provisioning workers open connections of their own). Two threads
 * calling on one connection are not only slow when it dies: in libvirt
 * 9.0 the one that inherits it may crash (host_link.c, attempt_main()).
 *
 * Connection errors are logged once, then rate-limited (log_complain);
 * the recovery is logged once.
 *
 * libvirt needs an event loop for keepalive, close callbacks and domain
 * events: host_events_start() registers libvirt's default implementation
 * (once per process, before any connection is opened) and runs it in a
 * dedicated thread. host_tick() starts it if the caller has not.
 *
 * Threads: host_tick()/host_connect()/host_disconnect()/host_free() from
 * one owner thread; host_conn(), host_is_up() and the accessors from any
 * thread. Domain event callbacks run in the event loop thread.
 */
#ifndef VA_HOST_H
#define VA_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

struct host;

/*
 * Register libvirt's default event loop implementation (first call only)
 * and start the thread that runs it. Also installs a libvirt error
 * handler that keeps libvirt from printing errors on its own (we report
 * them through log.h). Idempotent. Returns 0, or -1 with err_set().
 */
int host_events_start(void);
/* Stop and join the event loop thread (connections stay registered). */
void host_events_stop(void);

/*
 * Wait up to timeout_ms for the threads host_free() and failed
 * connections leave behind (attempts still connecting, connections being
 * closed) to end: before the process exits, so that none is inside
 * libvirt or libxml2 while their global state is torn down. True when
 * none is left.
 */
bool host_threads_wait(int64_t timeout_ms);

/* A host that is not yet connected. Copies name and uri. Never NULL. */
struct host *host_new(const char *name, const char *uri);
/* Close the connection (if any) and free. Accepts NULL. */
void host_free(struct host *h);

const char *host_name(const struct host *h);
const char *host_uri(const struct host *h);

/*
 * Drive the connection; call it every tick. Adopts a finished attempt,
 * tears down a connection that was found dead, and starts a new attempt
 * when one is due (at once for a new host, then after 1, 2, 4 ... 60 s of
 * backoff). Never blocks. Returns true when the host is connected.
 */
bool host_tick(struct host *h, int64_t now_ms);

/*
 * Ask for a connection attempt now (backoff reset), without waiting.
 * Returns 0; the attempt's outcome is seen by host_tick().
 */
int host_connect(struct host *h);

/*
 * Convenience for tools and tests: host_tick() until the host is up or
 * timeout_ms has passed. Blocks. Returns 0 when up, -1 with err_set()
 * (the last connection error) otherwise.
 */
int host_connect_wait(struct host *h, int64_t timeout_ms);

/* Drop the connection now (e.g. after an unrecoverable error); the next
 * attempt follows the backoff schedule. */
void host_disconnect(struct host *h);

/*
 * The open connection as a new reference (the caller releases it with
 * virConnectClose()), or NULL while the host is down. The reference stays
 * valid after a reconnect replaced it, but calls on it then fail.
 */
virConnectPtr host_conn(struct host *h);

/*
 * Like host_conn(), but the owner thread's own connection to the host:
 * only the thread that calls host_tick() may make calls on it (never
 * hand it to another thread), so no call on it waits behind another
 * thread's, and keepalive bounds each to about 20 s on a host that stops
 * answering (see above). Same host, same lifetime as host_conn().
 */
virConnectPtr host_conn_own(struct host *h);

bool host_is_up(struct host *h);

/*
 * A libvirt call on host_conn() failed: if the connection is no longer
 * alive, mark the host down so that the next host_tick() reconnects.
 * Returns true when the host was marked down.
 */
bool host_check_alive(struct host *h);

/* Monotonic time of the next connection attempt (0 when none is due). */
int64_t host_next_attempt_ms(struct host *h);
/* True while a connection attempt runs in its thread. */
bool host_attempt_running(struct host *h);
/* The last connection error ("" when none); copied into buf. */
void host_last_error(struct host *h, char *buf, size_t size);

/*
 * Domain lifecycle events (VIR_DOMAIN_EVENT_ID_LIFECYCLE): fn is called
 * from the event loop thread with the domain's raw UUID and the event
 * (virDomainEventType), for every connection the host will have.
 * event == -1 means "the connection was (re)opened: forget everything".
 * Set before the first host_tick(). fn must be quick and thread-safe, and
 * must not call into this module. Once host_set_domain_event_cb() has
 * returned, the previous fn is not running and will not run again.
 */
typedef void (*host_domain_event_fn)(struct host *h,
				     const unsigned char uuid[VIR_UUID_BUFLEN],
				     int event, void *opaque);
void host_set_domain_event_cb(struct host *h, host_domain_event_fn fn,
			      void *opaque);

struct host_counters {
	unsigned attempts;     /* connection attempts started */
	unsigned connects;     /* successful connections */
	unsigned disconnects;  /* connections lost or dropped */
	unsigned errors;       /* failed attempts */
	unsigned long events;  /* lifecycle events received */
};
void host_get_counters(struct host *h, struct host_counters *out);

#endif
