/*
 * inventory.c: the loop's side of a host's inventory (see inventory.h
 * for the calls, the cache and who owns what): a pass started on a
 * thread of its own (inventory_pass.c), its result taken when done, and
 * the metadata cache keyed by UUID kept between passes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inventory.h"
#include "inventory_int.h"
#include "log.h"
#include "util.h"

struct inventory {
	char *host, *uri;
	virConnectPtr conn;       /* ours, home while no pass holds it */
	struct cache cache;       /* home while no pass holds it */
	struct pass *pass;        /* started, not taken yet */
	bool no_addresses;        /* inventory_set_addresses(false) */
	char **forget;            /* inventory_forget() while a pass ran */
	size_t n_forget;
};

/* ---- the cache ---------------------------------------------------------- */

void
inventory_cache_release(struct cache *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].meta);
	free(c->v);
	c->v = NULL;
	c->n = 0;
}

int
inventory_centry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct centry *)a)->uuid,
		      ((const struct centry *)b)->uuid);
}

struct centry *
inventory_cache_find(const struct cache *c, const char *uuid)
{
	struct centry key;

	if (!c->n)
		return NULL;
	snprintf(key.uuid, sizeof(key.uuid), "%s", uuid);
	return bsearch(&key, c->v, c->n, sizeof(*c->v), inventory_centry_cmp);
}

static void
cache_drop(struct cache *c, const char *uuid)
{
	struct centry *e = inventory_cache_find(c, uuid);

	if (!e)
		return;
	free(e->meta);
	memmove(e, e + 1, (size_t)(c->v + c->n - (e + 1)) * sizeof(*e));
	c->n--;
}

/* ---- the inventory (the loop's) ---------------------------------------- */

static void *
close_main(void *arg)
{
	virConnectClose(arg);
	return NULL;
}

/*
 * Close a connection without waiting for the host: closing a remote
 * connection is a call that a stopped host answers only when keepalive
 * gives up (15 s and more), and the daemon's stop must not wait that
 * long (SIGTERM within 5 s while a host is half-dead). A thread of its
 * own closes it; if none can be made, close it here.
 */
static void
close_detached(virConnectPtr conn)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, close_main, conn);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		virConnectClose(conn);
}

struct inventory *
inventory_new(const char *host, const char *uri)
{
	struct inventory *inv = xcalloc(1, sizeof(*inv));

	inv->host = xstrdup(host);
	inv->uri = xstrdup(uri);
	return inv;
}

void
inventory_free(struct inventory *inv)
{
	if (!inv)
		return;
	if (inv->pass)
		/* abandoned if still running */
		inventory_pass_unref(inv->pass);
	if (inv->conn)
		close_detached(inv->conn);
	inventory_cache_release(&inv->cache);
	for (size_t i = 0; i < inv->n_forget; i++)
		free(inv->forget[i]);
	free(inv->forget);
	free(inv->host);
	free(inv->uri);
	free(inv);
}

int
inventory_start(struct inventory *inv, const char *pool)
{
	pthread_condattr_t ca;
	pthread_attr_t attr;
	pthread_t t;
	struct pass *p;
	int rc;

	if (inv->pass) {
		err_set("host %s: the previous inventory pass still runs",
			inv->host);
		return -1;
	}
	p = xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->m, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	p->refs = 2;
	p->started_ms = util_now_ms();
	p->host = xstrdup(inv->host);
	p->uri = xstrdup(inv->uri);
	p->pool = xstrdup(pool);
	p->addresses = !inv->no_addresses;
	p->res = xcalloc(1, sizeof(*p->res));
	/* the pass's until it is taken */
	p->conn = inv->conn;
	inv->conn = NULL;
	p->old = inv->cache;
	memset(&inv->cache, 0, sizeof(inv->cache));

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, inventory_pass_main, p);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		inv->conn = p->conn;
		p->conn = NULL;
		inv->cache = p->old;
		memset(&p->old, 0, sizeof(p->old));
		inventory_pass_free(p);
		err_set("host %s: cannot start an inventory thread: %s",
			inv->host, strerror(rc));
		return -1;
	}
	inv->pass = p;
	return 0;
}

bool
inventory_running(const struct inventory *inv)
{
	return inv->pass != NULL;
}

int64_t
inventory_started_ms(const struct inventory *inv)
{
	return inv->pass ? inv->pass->started_ms : 0;
}

struct inventory_result *
inventory_take(struct inventory *inv)
{
	struct pass *p = inv->pass;
	struct inventory_result *r;
	bool done;

	if (!p)
		return NULL;
	pthread_mutex_lock(&p->m);
	done = p->done;
	pthread_mutex_unlock(&p->m);
	if (!done)
		return NULL;
	r = p->res;
	p->res = NULL;
	inv->cache = p->cache;
	memset(&p->cache, 0, sizeof(p->cache));
	inv->conn = p->conn;
	p->conn = NULL;
	inv->pass = NULL;
	inventory_pass_unref(p);
	for (size_t i = 0; i < inv->n_forget; i++) {
		cache_drop(&inv->cache, inv->forget[i]);
		free(inv->forget[i]);
	}
	inv->n_forget = 0;
	return r;
}

int
inventory_wait(struct inventory *inv, int64_t timeout_ms)
{
	struct pass *p = inv->pass;
	struct timespec ts;
	int rc = 0;

	if (!p)
		return 0;
	util_mono_deadline(timeout_ms, &ts);
	pthread_mutex_lock(&p->m);
	while (!p->done && rc == 0)
		rc = pthread_cond_timedwait(&p->cond, &p->m, &ts);
	rc = p->done ? 0 : -1;
	pthread_mutex_unlock(&p->m);
	return rc;
}

void
inventory_set_addresses(struct inventory *inv, bool read)
{
	inv->no_addresses = !read;
}

void
inventory_forget(struct inventory *inv, const char *uuid)
{
	if (!uuid || !uuid[0])
		return;
	if (!inv->pass) {
		cache_drop(&inv->cache, uuid);
		return;
	}
	inv->forget = xreallocarray(inv->forget, inv->n_forget + 1,
				    sizeof(*inv->forget));
	inv->forget[inv->n_forget++] = xstrdup(uuid);
}

size_t
inventory_cached(const struct inventory *inv)
{
	return inv->cache.n;
}
