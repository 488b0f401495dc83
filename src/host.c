/*
 * host.c: persistent libvirt connections with keepalive, close
 * detection, non-blocking reconnection with backoff, and the libvirt
 * event loop thread. See host.h for the threading model.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/virterror.h>

#include "host.h"
#include "log.h"
#include "util.h"

LOG_TAG("host");

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 60000
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3

/* ---- libvirt event loop ------------------------------------------------ */

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static bool ev_registered;
static atomic_bool ev_running;
/* detached threads of this file still running (attempts, link drops) */
static atomic_int detached_running;
static atomic_bool ev_stop;
static pthread_t ev_thread;

static void
quiet_libvirt_errors(void *opaque, virErrorPtr err)
{
	/* Errors are reported by whoever made the call, through log.h. */
	(void)opaque;
	(void)err;
}

static void *
ev_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&ev_stop)) {
		if (virEventRunDefaultImpl() < 0) {
			log_error("libvirt event loop: %s",
				  virGetLastErrorMessage());
			struct timespec ts = {0, 100 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

static void
ev_wake(int timer, void *opaque)
{
	(void)timer;
	(void)opaque;
}

int
host_events_start(void)
{
	int rc = -1;

	pthread_mutex_lock(&ev_lock);
	if (!ev_registered) {
		virSetErrorFunc(NULL, quiet_libvirt_errors);
		if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
			err_set("cannot register the libvirt event loop: %s",
				virGetLastErrorMessage());
			goto cleanup;
		}
		ev_registered = true;
	}
	if (!ev_running) {
		atomic_store(&ev_stop, false);
		if (pthread_create(&ev_thread, NULL, ev_main, NULL) != 0) {
			err_set("cannot start the libvirt event loop thread");
			goto cleanup;
		}
		ev_running = true;
	}
	rc = 0;
cleanup:
	pthread_mutex_unlock(&ev_lock);
	return rc;
}

void
host_events_stop(void)
{
	int timer;

	pthread_mutex_lock(&ev_lock);
	if (!ev_running) {
		pthread_mutex_unlock(&ev_lock);
		return;
	}
	atomic_store(&ev_stop, true);
	/* A zero timeout makes virEventRunDefaultImpl() return at once. */
	timer = virEventAddTimeout(0, ev_wake, NULL, NULL);
	pthread_join(ev_thread, NULL);
	if (timer >= 0)
		virEventRemoveTimeout(timer);
	ev_running = false;
	pthread_mutex_unlock(&ev_lock);
}

/* ---- connection attempts ------------------------------------------------ */

struct host;
static void on_close(virConnectPtr conn, int reason, void *opaque);
static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event,
			int detail, void *opaque);

/*
 * A link is one connection attempt and, when it succeeded, the two
 * connections with their callbacks (the shared one and the owner
 * thread's own, see host.h). Its thread opens them, sets keepalive and
 * registers the close callbacks (opaque: the link) and, on the shared
 * one, the lifecycle callback, so that nothing the host's owner calls
 * ever waits for the remote side. It is shared by the thread and the
 * host; whoever drops the last reference unregisters the callbacks and
 * closes the connections (the host does so in a thread: drop_link()).
 *
 * The callbacks reach the host through link->host, read and cleared under
 * cb_lock: host_free() clears it, after which no callback touches the
 * host. Lock order: cb_lock, then host->lock.
 */
static pthread_mutex_t cb_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * The lifecycle callback's opaque. Deregistering a domain event callback
 * does not wait for a dispatch in flight on the event thread: libvirt
 * marks it deleted and calls its free function once that dispatch is
 * over. So the callback gets a context of its own, released through that
 * free function, rather than the link, which may be gone by then (found
 * by AddressSanitizer: on_lifecycle read a link that link_unref() had
 * just freed). The close callbacks keep the link: unregistering one waits
 * for it under libvirt's lock. refs and host: guarded by cb_lock.
 */
struct link_cb {
	int refs;
	struct host *host;
};

static void
link_cb_release(void *opaque)
{
	struct link_cb *c = opaque;
	bool last;

	pthread_mutex_lock(&cb_lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&cb_lock);
	if (last)
		free(c);
}

struct link {
	pthread_mutex_t lock; /* guards refs, done, conn, own, err */
	int refs;
	bool done;
	char *uri;
	virConnectPtr conn;   /* shared: host_conn() */
	virConnectPtr own;    /* the owner thread's: host_conn_own() */
	bool close_cb;        /* close callback registered on conn */
	bool own_close_cb;    /* ... on own */
	int lifecycle_id;     /* -1: not registered */
	struct host *host;    /* guarded by cb_lock */
	struct link_cb *cb;   /* the lifecycle callback's; one ref is ours */
	char err[512];
};

static void
link_unref(struct link *a)
{
	int left;

	pthread_mutex_lock(&a->lock);
	left = --a->refs;
	pthread_mutex_unlock(&a->lock);
	if (left > 0)
		return;
	if (a->conn) {
		if (a->lifecycle_id >= 0)
			virConnectDomainEventDeregisterAny(a->conn, a->lifecycle_id);
		if (a->close_cb)
			virConnectUnregisterCloseCallback(a->conn, on_close);
		virConnectClose(a->conn);
	}
	if (a->own) {
		if (a->own_close_cb)
			virConnectUnregisterCloseCallback(a->own, on_close);
		virConnectClose(a->own);
	}
	link_cb_release(a->cb);
	pthread_mutex_destroy(&a->lock);
	free(a->uri);
	free(a);
}

static void
link_detach(struct link *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&cb_lock);
	a->host = NULL;
	a->cb->host = NULL;
	pthread_mutex_unlock(&cb_lock);
}

/*
 * Open one connection with keepalive and the close callback. Keepalive
 * fails for drivers without it (local ones): fine.
 */
static virConnectPtr
open_conn(struct link *a, bool *close_cb, char *err, size_t err_size)
{
	virConnectPtr conn = virConnectOpen(a->uri);

	*close_cb = false;
	if (!conn) {
		snprintf(err, err_size, "%s", virGetLastErrorMessage());
		return NULL;
	}
	if (virConnectSetKeepAlive(conn, KEEPALIVE_INTERVAL_S,
				   KEEPALIVE_COUNT) < 0)
		log_debug("%s: no keepalive: %s", a->uri,
			  virGetLastErrorMessage());
	*close_cb = virConnectRegisterCloseCallback(conn, on_close, a,
						    NULL) == 0;
	if (!*close_cb)
		log_debug("%s: no close callback: %s", a->uri,
			  virGetLastErrorMessage());
	return conn;
}

static void *
attempt_main(void *arg)
{
	struct link *a = arg;
	virConnectPtr conn, own = NULL;
	bool close_cb = false, own_close_cb = false;
	int id = -1;
	char err[512] = "";

	conn = open_conn(a, &close_cb, err, sizeof(err));
	if (conn) {
		pthread_mutex_lock(&cb_lock);
		a->cb->refs++; /* the registration's, dropped by libvirt */
		pthread_mutex_unlock(&cb_lock);
		id = virConnectDomainEventRegisterAny(
			conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
			VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), a->cb,
			link_cb_release);
		if (id < 0)
			link_cb_release(a->cb);
		if (id < 0)
			log_warn("%s: cannot register for domain lifecycle "
				 "events: %s", a->uri, virGetLastErrorMessage());
		own = open_conn(a, &own_close_cb, err, sizeof(err));
	}
	pthread_mutex_lock(&a->lock);
	a->conn = conn;
	a->own = own;
	a->close_cb = close_cb;
	a->own_close_cb = own_close_cb;
	a->lifecycle_id = id;
	memcpy(a->err, err, sizeof(err));
	a->done = true;
	pthread_mutex_unlock(&a->lock);
	link_unref(a);
	atomic_fetch_sub(&detached_running, 1);
	return NULL;
}

/* ---- hosts -------------------------------------------------------------- */

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

struct host *
host_new(const char *name, const char *uri)
{
	struct host *h = xcalloc(1, sizeof(*h));

	h->name = xstrdup(name);
	h->uri = xstrdup(uri);
	pthread_mutex_init(&h->lock, NULL);
	h->attempt_due_now = true;
	h->backoff_ms = BACKOFF_FIRST_MS;
	return h;
}

const char *
host_name(const struct host *h)
{
	return h->name;
}

const char *
host_uri(const struct host *h)
{
	return h->uri;
}

/*
 * Under cb_lock too: the lifecycle callback runs fn under cb_lock (and
 * adopt() does as well), so when this returns no call of the previous fn
 * is in flight and the caller may free what its opaque points to. (Under
 * h->lock alone, notify() could have read the old fn just before and call
 * it after: collector_free() freed the collector's host while a lifecycle
 * event still wrote into it, found by ThreadSanitizer.)
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
	struct link *a = opaque;
	struct host *h;

	pthread_mutex_lock(&cb_lock);
	h = a->host;
	if (h) {
		pthread_mutex_lock(&h->lock);
		if (conn && (h->conn == conn || h->own == conn))
			h->closed = true;
		pthread_mutex_unlock(&h->lock);
		log_debug("%s: connection closed (reason %d)", h->name, reason);
	}
	pthread_mutex_unlock(&cb_lock);
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

/* Take the connection out of the host (caller holds the lock); the
 * caller drops the returned link after unlocking, which closes it. */
static struct link *
take_conn_locked(struct host *h)
{
	struct link *a = h->link;

	if (h->conn)
		h->counters.disconnects++;
	h->conn = NULL;
	h->own = NULL;
	h->closed = false;
	h->link = NULL;
	return a;
}

static void *
unref_main(void *arg)
{
	link_unref(arg);
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
static void
drop_link(struct link *a)
{
	pthread_attr_t attr;
	pthread_t t;
	bool has_conn;

	if (!a)
		return;
	link_detach(a);
	pthread_mutex_lock(&a->lock);
	has_conn = a->conn || a->own;
	pthread_mutex_unlock(&a->lock);
	if (!has_conn) {
		link_unref(a);
		return;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	atomic_fetch_add(&detached_running, 1);
	if (pthread_create(&t, &attr, unref_main, a) != 0) {
		atomic_fetch_sub(&detached_running, 1);
		link_unref(a);
	}
	pthread_attr_destroy(&attr);
}

static void
schedule_retry_locked(struct host *h, int64_t now_ms)
{
	h->next_attempt_ms = now_ms + h->backoff_ms;
	h->backoff_ms *= 2;
	if (h->backoff_ms > BACKOFF_MAX_MS)
		h->backoff_ms = BACKOFF_MAX_MS;
}

/* Publish a fresh connection (no call to the remote side). */
static void
adopt(struct host *h, struct link *a, virConnectPtr conn, virConnectPtr own)
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

static void
start_attempt_locked(struct host *h)
{
	struct link *a = xcalloc(1, sizeof(*a));
	pthread_attr_t attr;
	pthread_t t;

	pthread_mutex_init(&a->lock, NULL);
	a->refs = 2;
	a->uri = xstrdup(h->uri);
	a->lifecycle_id = -1;
	a->host = h; /* read by callbacks under cb_lock */
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

bool
host_tick(struct host *h, int64_t now_ms)
{
	struct link *dead = NULL, *finished = NULL;
	virConnectPtr fresh = NULL, fresh_own = NULL;
	bool up;

	if (!ev_running && host_events_start() < 0)
		log_error("%s", err_msg());

	pthread_mutex_lock(&h->lock);
	if (h->conn && h->closed) {
		dead = take_conn_locked(h);
		snprintf(h->last_err, sizeof(h->last_err),
			 "connection to %s lost", h->uri);
		h->next_attempt_ms = now_ms + h->backoff_ms;
	}
	if (h->attempt) {
		pthread_mutex_lock(&h->attempt->lock);
		if (h->attempt->done) {
			finished = h->attempt;
			fresh = finished->conn;
			fresh_own = finished->own;
			if (!fresh_own)
				fresh = NULL; /* the link closes conn */
			if (!fresh)
				snprintf(h->last_err, sizeof(h->last_err),
					 "%s", finished->err);
		}
		pthread_mutex_unlock(&h->attempt->lock);
		if (finished) {
			h->attempt = NULL;
			if (!fresh) {
				h->counters.errors++;
				schedule_retry_locked(h, now_ms);
			}
		}
	}
	pthread_mutex_unlock(&h->lock);

	if (dead) {
		log_complain(&h->complain, LOG_LEVEL_WARN, log_tag,
			     "%s: connection to %s lost; reconnecting",
			     h->name, h->uri);
		drop_link(dead);
	}
	if (finished) {
		if (fresh) {
			/* the host keeps its reference */
			adopt(h, finished, fresh, fresh_own);
		} else {
			log_complain(&h->complain, LOG_LEVEL_ERROR, log_tag,
				     "%s: cannot connect to %s: %s", h->name,
				     h->uri, h->last_err);
			drop_link(finished);
		}
	}

	pthread_mutex_lock(&h->lock);
	if (!h->conn && !h->attempt &&
	    (h->attempt_due_now || now_ms >= h->next_attempt_ms))
		start_attempt_locked(h);
	up = h->conn != NULL && !h->closed;
	pthread_mutex_unlock(&h->lock);
	return up;
}

int
host_connect(struct host *h)
{
	pthread_mutex_lock(&h->lock);
	h->attempt_due_now = true;
	h->backoff_ms = BACKOFF_FIRST_MS;
	pthread_mutex_unlock(&h->lock);
	host_tick(h, util_now_ms());
	return 0;
}

int
host_connect_wait(struct host *h, int64_t timeout_ms)
{
	int64_t end = util_now_ms() + timeout_ms;
	struct timespec ts = {0, 20 * 1000 * 1000};

	for (;;) {
		if (host_tick(h, util_now_ms()))
			return 0;
		if (util_now_ms() >= end)
			break;
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&h->lock);
	err_set("%s: not connected to %s: %s", h->name, h->uri,
		h->last_err[0] ? h->last_err : "connection attempt timed out");
	pthread_mutex_unlock(&h->lock);
	return -1;
}

void
host_disconnect(struct host *h)
{
	struct link *a;
	bool had;

	pthread_mutex_lock(&h->lock);
	had = h->conn != NULL;
	a = take_conn_locked(h);
	if (had)
		h->next_attempt_ms = util_now_ms() + h->backoff_ms;
	pthread_mutex_unlock(&h->lock);
	drop_link(a);
}

static virConnectPtr
conn_ref(struct host *h, bool own)
{
	virConnectPtr conn = NULL;

	pthread_mutex_lock(&h->lock);
	if (h->conn && !h->closed) {
		conn = own ? h->own : h->conn;
		virConnectRef(conn);
	}
	pthread_mutex_unlock(&h->lock);
	return conn;
}

virConnectPtr
host_conn(struct host *h)
{
	return conn_ref(h, false);
}

virConnectPtr
host_conn_own(struct host *h)
{
	return conn_ref(h, true);
}

bool
host_is_up(struct host *h)
{
	bool up;

	pthread_mutex_lock(&h->lock);
	up = h->conn && !h->closed;
	pthread_mutex_unlock(&h->lock);
	return up;
}

bool
host_check_alive(struct host *h)
{
	virConnectPtr conn = host_conn(h), own = host_conn_own(h);
	bool marked = false;

	if (!conn || !own)
		goto cleanup;
	/* Either dead: both go, and the next attempt opens both again. */
	if (virConnectIsAlive(conn) != 1 || virConnectIsAlive(own) != 1) {
		pthread_mutex_lock(&h->lock);
		if (h->conn == conn && !h->closed) {
			h->closed = true;
			marked = true;
		}
		pthread_mutex_unlock(&h->lock);
	}
cleanup:
	if (conn)
		virConnectClose(conn);
	if (own)
		virConnectClose(own);
	return marked;
}

int64_t
host_next_attempt_ms(struct host *h)
{
	int64_t t;

	pthread_mutex_lock(&h->lock);
	t = h->conn || h->attempt ? 0 : h->next_attempt_ms;
	pthread_mutex_unlock(&h->lock);
	return t;
}

bool
host_attempt_running(struct host *h)
{
	bool r = false;

	pthread_mutex_lock(&h->lock);
	if (h->attempt) {
		pthread_mutex_lock(&h->attempt->lock);
		r = !h->attempt->done;
		pthread_mutex_unlock(&h->attempt->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return r;
}

void
host_last_error(struct host *h, char *buf, size_t size)
{
	pthread_mutex_lock(&h->lock);
	snprintf(buf, size, "%s", h->last_err);
	pthread_mutex_unlock(&h->lock);
}

void
host_get_counters(struct host *h, struct host_counters *out)
{
	pthread_mutex_lock(&h->lock);
	*out = h->counters;
	pthread_mutex_unlock(&h->lock);
}

void
host_free(struct host *h)
{
	struct link *a, *conn;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	conn = take_conn_locked(h);
	a = h->attempt;
	h->attempt = NULL;
	pthread_mutex_unlock(&h->lock);
	/* Closed before returning, unlike drop_link(): the caller may stop
	 * the libvirtd next, or exit. */
	if (conn) {
		link_detach(conn);
		link_unref(conn);
	}
	/* The attempt's thread finishes on its own and closes what it
	 * opened; from now on its callbacks do not reach this host. */
	drop_link(a);
	pthread_mutex_destroy(&h->lock);
	free(h->name);
	free(h->uri);
	free(h);
}
