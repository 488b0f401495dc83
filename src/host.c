/*
 * host.c: a configured host's persistent libvirt connections: its state,
 * the tick that watches them and reconnects with backoff (the attempts
 * themselves are host_link.c's), and the accessors. See host.h for the
 * threading model.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"
#include "host_int.h"
#include "log.h"
#include "util.h"

LOG_TAG("host");

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

static void
schedule_retry_locked(struct host *h, int64_t now_ms)
{
	h->next_attempt_ms = now_ms + h->backoff_ms;
	h->backoff_ms *= 2;
	if (h->backoff_ms > BACKOFF_MAX_MS)
		h->backoff_ms = BACKOFF_MAX_MS;
}

bool
host_tick(struct host *h, int64_t now_ms)
{
	struct link *dead = NULL, *finished = NULL;
	virConnectPtr fresh = NULL, fresh_own = NULL;
	bool up;

	if (!host_events_running() && host_events_start() < 0)
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
		host_drop_link(dead);
	}
	if (finished) {
		if (fresh) {
			/* the host keeps its reference */
			host_adopt(h, finished, fresh, fresh_own);
		} else {
			log_complain(&h->complain, LOG_LEVEL_ERROR, log_tag,
				     "%s: cannot connect to %s: %s", h->name,
				     h->uri, h->last_err);
			host_drop_link(finished);
		}
	}

	pthread_mutex_lock(&h->lock);
	if (!h->conn && !h->attempt &&
	    (h->attempt_due_now || now_ms >= h->next_attempt_ms))
		host_start_attempt_locked(h);
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
	host_drop_link(a);
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
	/* Closed before returning, unlike host_drop_link(): the caller may
	 * stop the libvirtd next, or exit. */
	if (conn) {
		host_link_detach(conn);
		host_link_unref(conn);
	}
	/* The attempt's thread finishes on its own and closes what it
	 * opened; from now on its callbacks do not reach this host. */
	host_drop_link(a);
	pthread_mutex_destroy(&h->lock);
	free(h->name);
	free(h->uri);
	free(h);
}
