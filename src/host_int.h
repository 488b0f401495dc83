/*
 * host_int.h: what the parts of the host module share: host.c (the
 * host: its state, the tick that reconnects with backoff, the
 * accessors), host_link.c (connection attempts, their connections and
 * callbacks) and host_events.c (libvirt's event loop). Nothing outside
 * them includes it: host.h is the module's interface.
 */
#ifndef VA_HOST_INT_H
#define VA_HOST_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "host.h"
#include "log.h"

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 60000

struct link_cb;

/*
 * A link is one connection attempt and, when it succeeded, the two
 * connections (the shared one and the owner thread's own, see host.h).
 * Its thread opens them, sets keepalive and registers, on own only (see
 * host_link.c, attempt_main()), the close and lifecycle callbacks, so
 * that nothing the host's owner calls ever waits for the remote side. It
 * is shared by the thread and the host; whoever drops the last reference
 * unregisters the callbacks and closes the connections (the host does so
 * in a thread: host_drop_link()).
 */
struct link {
	pthread_mutex_t lock; /* guards refs, done, conn, own, err */
	int refs;
	bool done;
	char *uri;
	virConnectPtr conn;   /* shared: host_conn() */
	virConnectPtr own;    /* the owner thread's: host_conn_own() */
	bool close_cb;        /* close callback registered on own */
	int lifecycle_id;     /* on own; -1: not registered */
	struct link_cb *cb;   /* the callbacks' opaque (host_link.c); one
				 ref is ours, one each registration's */
	char err[512];
};

struct host {
	char *name;
	char *uri;

	pthread_mutex_t lock; /* guards everything below; never held across
				 libvirt calls (on_close takes it from inside
				 libvirt) */
	virConnectPtr conn;   /* NULL while down */
	virConnectPtr own;    /* the owner thread's; set and cleared with conn */
	bool closed;          /* the close callback fired for conn or own */
	struct link *link;    /* of conn */
	struct link *attempt; /* in flight */
	bool attempt_due_now;
	int64_t next_attempt_ms;
	int64_t backoff_ms;
	char last_err[512];
	struct log_complain complain;
	struct host_counters counters;

	host_domain_event_fn ev_fn;
	void *ev_opaque;
};

/* host_events.c */
/* Whether the event loop's thread runs. */
bool host_events_running(void);

/* host_link.c */
/* Drop one reference of a link; the last one deregisters the callbacks
 * and closes the connections (calls to the remote side). */
void host_link_unref(struct link *a);
/* From now on the link's callbacks do not reach its host. */
void host_link_detach(struct link *a);
/* The host's reference goes, in a thread of its own when the link has
 * connections (accepts NULL). */
void host_drop_link(struct link *a);
/* Publish a fresh connection (no call to the remote side). */
void host_adopt(struct host *h, struct link *a, virConnectPtr conn,
		virConnectPtr own);
/* Start a connection attempt on a thread of its own (caller holds
 * h->lock). */
void host_start_attempt_locked(struct host *h);

#endif
