/*
 * host_link.c: a host's connection attempts and the connections they
 * open (links): the attempt's thread opens both connections with
 * keepalive and registers the close and lifecycle callbacks; the
 * callbacks reach the host until it lets go of the link; a fresh
 * connection is adopted by the host, and a link the host drops is
 * closed in a thread of its own. See host.h for the threading model.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/virterror.h>

#include "host.h"
#include "host_int.h"
#include "log.h"
#include "util.h"

LOG_TAG("host");

#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3

/* detached threads of this file still running (attempts, link drops) */
static atomic_int detached_running;

/* ---- connection attempts ------------------------------------------------ */

static void on_close(virConnectPtr conn, int reason, void *opaque);
static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event,
			int detail, void *opaque);

/*
 * A link (host_int.h) is shared by its attempt's thread and the host.
 * The callbacks reach the host through link->cb->host, read and cleared
 * under cb_lock: host_link_detach() clears it, after which no callback
 * touches the host. Lock order: cb_lock, then host->lock.
 */
static pthread_mutex_t cb_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * The callbacks' opaque: never the link, which libvirt may call back
 * after host_link_unref() freed it. Every registration holds a reference:
 * - a lifecycle callback's is dropped by libvirt through the free
 *   function: deregistering does not wait for a dispatch in flight on the
 *   event thread; libvirt marks it deleted and calls the free function
 *   once that dispatch is over (found by AddressSanitizer: on_lifecycle
 *   read a link that host_link_unref() had just freed);
 * - the close callback's is dropped here, because libvirt cannot be
 *   relied on for it: drivers without close callbacks (the test driver)
 *   accept the registration and never call the free function, and the
 *   remote driver's unregistration, a call to the remote side, fails at
 *   once ("client socket is closed") once keepalive has given up on the
 *   connection but the thread that holds its socket has not closed it
 *   yet, which on a stopped host lasts until the host answers again: the
 *   callback then stays armed and fires at that close, after the host
 *   has dropped the link (found by reading libvirt). So the reference
 *   goes when the unregistration succeeded or the callback has fired
 *   (it fires at most once); after a failed one, the callback drops it
 *   itself when it fires (close_orphaned).
 * All fields: guarded by cb_lock.
 */
struct link_cb {
	int refs;
	struct host *host;
	bool close_fired;    /* on_close() ran */
	bool close_orphaned; /* unregistering failed: on_close() drops the
				registration's reference */
};

/* Drop one reference with cb_lock held; true when it was the last (the
 * caller frees c after unlocking). */
static bool
link_cb_put_locked(struct link_cb *c)
{
	return --c->refs == 0;
}

static void
link_cb_release(void *opaque)
{
	struct link_cb *c = opaque;
	bool last;

	pthread_mutex_lock(&cb_lock);
	last = link_cb_put_locked(c);
	pthread_mutex_unlock(&cb_lock);
	if (last)
		free(c);
}

static void
link_cb_ref(struct link_cb *c)
{
	pthread_mutex_lock(&cb_lock);
	c->refs++;
	pthread_mutex_unlock(&cb_lock);
}

/* Unregister the close callback from own and settle its reference
 * (struct link_cb). */
static void
close_cb_unregister(struct link *a)
{
	struct link_cb *c = a->cb;
	bool ok = virConnectUnregisterCloseCallback(a->own, on_close) == 0;
	bool last = false;

	if (!ok) {
		log_debug("%s: the close callback stays registered until the "
			  "connection closes: %s", a->uri,
			  virGetLastErrorMessage());
		virResetLastError();
	}
	pthread_mutex_lock(&cb_lock);
	if (ok || c->close_fired)
		last = link_cb_put_locked(c);
	else
		c->close_orphaned = true;
	pthread_mutex_unlock(&cb_lock);
	if (last)
		free(c);
}

void
host_link_unref(struct link *a)
{
	int left;

	pthread_mutex_lock(&a->lock);
	left = --a->refs;
	pthread_mutex_unlock(&a->lock);
	if (left > 0)
		return;
	/*
	 * The callbacks are on own (see attempt_main()): the shared
	 * connection only loses this reference, which makes no call on it
	 * unless it is the last one, and then no other thread is in a call
	 * on it. Deregistering may fail on a connection whose close is
	 * pending (see struct link_cb): the callback then keeps its own
	 * reference, and finds the host gone when it fires.
	 */
	if (a->conn)
		virConnectClose(a->conn);
	if (a->own) {
		if (a->lifecycle_id >= 0 &&
		    virConnectDomainEventDeregisterAny(a->own,
						       a->lifecycle_id) < 0)
			virResetLastError();
		if (a->close_cb)
			close_cb_unregister(a);
		virConnectClose(a->own);
	}
	link_cb_release(a->cb);
	pthread_mutex_destroy(&a->lock);
	free(a->uri);
	free(a);
}

void
host_link_detach(struct link *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&cb_lock);
	a->cb->host = NULL;
	pthread_mutex_unlock(&cb_lock);
}

/*
 * Open one connection with keepalive. Keepalive fails for drivers without
 * it (local ones): fine.
 */
static virConnectPtr
open_conn(struct link *a, char *err, size_t err_size)
{
	virConnectPtr conn = virConnectOpen(a->uri);

	if (!conn) {
		snprintf(err, err_size, "%s", virGetLastErrorMessage());
		return NULL;
	}
	if (virConnectSetKeepAlive(conn, KEEPALIVE_INTERVAL_S,
				   KEEPALIVE_COUNT) < 0)
		log_debug("%s: no keepalive: %s", a->uri,
			  virGetLastErrorMessage());
	return conn;
}

/*
 * Both connections, and the close and lifecycle callbacks on own only.
 *
 * Not on the shared connection, because deregistering them when the link
 * is dropped is a call to the remote side from the thread that drops it,
 * and the collector may be in its bulk call on the shared connection
 * then. In libvirt 9.0's RPC client (virNetClientIOEventLoop()) the
 * thread doing a connection's I/O watches the socket with a GSource
 * whose data is on its stack, and leaves that source attached to the
 * connection's GLib context when another thread's call or keepalive
 * wakes it before the socket was ready. If its call then fails
 * (keepalive gave up) while a second thread waits to make a call, the
 * second thread inherits the connection and the stale sources: when the
 * host answers again, GLib dispatches them with the first thread's dead
 * stack frame as their data. AddressSanitizer showed it: a SEGV in
 * libvirt under virConnectDomainEventDeregisterAny() in the thread that
 * dropped the link, as the stopped host resumed (host_outage_test.py,
 * both rounds of two runs). On own, only the owner thread makes calls,
 * and it does not while it drops the link (host_tick()), so no second
 * thread ever waits on a connection this module makes calls on.
 */
static void *
attempt_main(void *arg)
{
	struct link *a = arg;
	virConnectPtr conn, own = NULL;
	bool close_cb = false;
	int id = -1;
	char err[512] = "";

	conn = open_conn(a, err, sizeof(err));
	if (conn)
		own = open_conn(a, err, sizeof(err));
	if (own) {
		link_cb_ref(a->cb); /* the registration's (struct link_cb) */
		close_cb = virConnectRegisterCloseCallback(own, on_close, a->cb,
							   NULL) == 0;
		if (!close_cb) {
			link_cb_release(a->cb);
			log_debug("%s: no close callback: %s", a->uri,
				  virGetLastErrorMessage());
		}
		link_cb_ref(a->cb);
		id = virConnectDomainEventRegisterAny(
			own, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
			VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), a->cb,
			link_cb_release);
		if (id < 0) {
			link_cb_release(a->cb);
			log_warn("%s: cannot register for domain lifecycle "
				 "events: %s", a->uri, virGetLastErrorMessage());
		}
	}
	pthread_mutex_lock(&a->lock);
	a->conn = conn;
	a->own = own;
	a->close_cb = close_cb;
	a->lifecycle_id = id;
	memcpy(a->err, err, sizeof(err));
	a->done = true;
	pthread_mutex_unlock(&a->lock);
	host_link_unref(a);
	atomic_fetch_sub(&detached_running, 1);
	return NULL;
}

/* ---- callbacks ---------------------------------------------------------- */

/*
 * Under cb_lock too: the lifecycle callback runs fn under cb_lock (and
 * host_adopt() does as well), so when this returns no call of the
 * previous fn is in flight and the caller may free what its opaque
 * points to. (Under h->lock alone, notify() could have read the old fn
 * just before and call it after: collector_free() freed the collector's
 * host while a lifecycle event still wrote into it, found by
 * ThreadSanitizer.)
 */
void
host_set_domain_event_cb(struct host *h, host_domain_event_fn fn,
			 void *opaque)
{
	pthread_mutex_lock(&cb_lock);
	pthread_mutex_lock(&h->lock);
	h->ev_fn = fn;
	h->ev_opaque = opaque;
	pthread_mutex_unlock(&h->lock);
	pthread_mutex_unlock(&cb_lock);
}

static void
on_close(virConnectPtr conn, int reason, void *opaque)
{
	struct link_cb *c = opaque;
	struct host *h;
	bool last = false;

	pthread_mutex_lock(&cb_lock);
	c->close_fired = true;
	h = c->host;
	if (h) {
		pthread_mutex_lock(&h->lock);
		if (conn && (h->conn == conn || h->own == conn))
			h->closed = true;
		pthread_mutex_unlock(&h->lock);
		log_debug("%s: connection closed (reason %d)", h->name, reason);
	}
	/* the link let go of its callback when unregistering failed: its
	 * reference is ours to drop (it fires at most once) */
	if (c->close_orphaned)
		last = link_cb_put_locked(c);
	pthread_mutex_unlock(&cb_lock);
	if (last)
		free(c);
}

static void
notify(struct host *h, const unsigned char *uuid, int event)
{
	static const unsigned char zero[VIR_UUID_BUFLEN];
	host_domain_event_fn fn;
	void *opaque;

	pthread_mutex_lock(&h->lock);
	fn = h->ev_fn;
	opaque = h->ev_opaque;
	if (event >= 0)
		h->counters.events++;
	pthread_mutex_unlock(&h->lock);
	if (fn)
		fn(h, uuid ? uuid : zero, event, opaque);
}

static int
on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
	     void *opaque)
{
	struct link_cb *c = opaque;
	unsigned char uuid[VIR_UUID_BUFLEN];

	(void)conn;
	(void)detail;
	if (virDomainGetUUID(dom, uuid) < 0)
		return 0;
	pthread_mutex_lock(&cb_lock);
	if (c->host)
		notify(c->host, uuid, event);
	pthread_mutex_unlock(&cb_lock);
	return 0;
}

/* ---- links let go, a fresh one adopted, an attempt started ------------ */

static void *
unref_main(void *arg)
{
	host_link_unref(arg);
	atomic_fetch_sub(&detached_running, 1);
	return NULL;
}

bool
host_threads_wait(int64_t timeout_ms)
{
	int64_t end = util_now_ms() + timeout_ms;

	while (atomic_load(&detached_running) > 0) {
		if (util_now_ms() >= end)
			return false;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	return true;
}

/*
 * The host's reference goes. Dropping the last one deregisters the
 * callbacks and closes the connections, which are calls to the remote
 * side: on a half-dead host they block like any other, and on the shared
 * connection they wait behind other threads' calls (see host.h), possibly
 * for good. So a link with connections is let go in a thread of its own,
 * and the owner thread never waits for it.
 */
void
host_drop_link(struct link *a)
{
	pthread_attr_t attr;
	pthread_t t;
	bool has_conn;

	if (!a)
		return;
	host_link_detach(a);
	pthread_mutex_lock(&a->lock);
	has_conn = a->conn || a->own;
	pthread_mutex_unlock(&a->lock);
	if (!has_conn) {
		host_link_unref(a);
		return;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	atomic_fetch_add(&detached_running, 1);
	if (pthread_create(&t, &attr, unref_main, a) != 0) {
		atomic_fetch_sub(&detached_running, 1);
		host_link_unref(a);
	}
	pthread_attr_destroy(&attr);
}

/* Publish a fresh connection (no call to the remote side). */
void
host_adopt(struct host *h, struct link *a, virConnectPtr conn,
	   virConnectPtr own)
{
	/* It may have died before its close callback could tell. Asked
	 * without h->lock: libvirt may run on_close (which takes it) while
	 * holding the driver lock that virConnectIsAlive() wants. */
	bool dead = virConnectIsAlive(conn) != 1 || virConnectIsAlive(own) != 1;

	pthread_mutex_lock(&h->lock);
	h->conn = conn;
	h->own = own;
	h->link = a;
	h->closed = dead;
	h->backoff_ms = BACKOFF_FIRST_MS;
	h->next_attempt_ms = 0;
	h->last_err[0] = '\0';
	h->counters.connects++;
	pthread_mutex_unlock(&h->lock);

	log_complain_clear(&h->complain, log_tag, "%s: connected to %s",
			   h->name, h->uri);
	log_debug("%s: connected to %s", h->name, h->uri);
	/* Whatever was cached for this host may be stale now. */
	pthread_mutex_lock(&cb_lock);
	notify(h, NULL, -1);
	pthread_mutex_unlock(&cb_lock);
}

void
host_start_attempt_locked(struct host *h)
{
	struct link *a = xcalloc(1, sizeof(*a));
	pthread_attr_t attr;
	pthread_t t;

	pthread_mutex_init(&a->lock, NULL);
	a->refs = 2;
	a->uri = xstrdup(h->uri);
	a->lifecycle_id = -1;
	a->cb = xcalloc(1, sizeof(*a->cb));
	a->cb->refs = 1;
	a->cb->host = h;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	atomic_fetch_add(&detached_running, 1);
	if (pthread_create(&t, &attr, attempt_main, a) != 0) {
		atomic_fetch_sub(&detached_running, 1);
		a->refs = 1;
		snprintf(a->err, sizeof(a->err), "cannot start a thread");
		a->done = true;
	}
	pthread_attr_destroy(&attr);
	h->attempt = a;
	h->attempt_due_now = false;
	h->counters.attempts++;
}
