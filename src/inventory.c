/*
 * inventory.c: a host's domains, our metadata in them and a pool's
 * volumes, gathered by a thread per pass with a metadata cache keyed by
 * UUID (see inventory.h for the calls, the cache and who owns what).
 *
 * The pass (struct pass) is the only thing the loop and the pass thread
 * share: the loop fills it and starts the thread; the thread owns its
 * inputs (connection, old cache) and outputs (connection, result, new
 * cache) until it sets `done` under the mutex; from then on they are the
 * loop's. A
 * reference count (the thread's and the inventory's) decides who frees the
 * pass when the inventory abandons it.
 */
#include "inventory.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/virterror.h>

#include "log.h"
#include "util.h"

LOG_TAG("inventory");

/* Keepalive of our connection: as host.c's (5 s, 3 missed: ~20 s). */
#define INVENTORY_KEEPALIVE_INTERVAL_S 5
#define INVENTORY_KEEPALIVE_COUNT 3

/* A domain's metadata as last read: NULL when it has none of ours. */
struct centry {
	char uuid[VIR_UUID_STRING_BUFLEN];
	struct domxml_meta *meta;
	char addr[INVENTORY_ADDR_LEN];  /* "" unknown */
	int64_t addr_ms;                /* when last read (util_now_ms), 0 never */
};

/* Sorted by uuid, unique. */
struct cache {
	struct centry *v;
	size_t n;
};

struct pass {
	pthread_mutex_t m;
	pthread_cond_t cond;      /* done */
	unsigned refs;            /* the thread's and the inventory's */
	bool done;
	int64_t started_ms;
	/* inputs, the thread's until done */
	char *host, *uri, *pool;
	bool addresses;           /* read the addresses */
	struct cache old;
	/* in and out: the thread's until done, then the inventory's */
	virConnectPtr conn;       /* NULL: the pass opens one */
	/* outputs, the thread's until done, then the inventory's */
	struct cache cache;
	struct inventory_result *res;
};

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

static void
cache_release(struct cache *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].meta);
	free(c->v);
	c->v = NULL;
	c->n = 0;
}

static int
centry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct centry *)a)->uuid,
		      ((const struct centry *)b)->uuid);
}

static struct centry *
cache_find(const struct cache *c, const char *uuid)
{
	struct centry key;

	if (!c->n)
		return NULL;
	snprintf(key.uuid, sizeof(key.uuid), "%s", uuid);
	return bsearch(&key, c->v, c->n, sizeof(*c->v), centry_cmp);
}

static void
cache_drop(struct cache *c, const char *uuid)
{
	struct centry *e = cache_find(c, uuid);

	if (!e)
		return;
	free(e->meta);
	memmove(e, e + 1, (size_t)(c->v + c->n - (e + 1)) * sizeof(*e));
	c->n--;
}

static struct domxml_meta *
meta_dup(const struct domxml_meta *m)
{
	struct domxml_meta *c;

	if (!m)
		return NULL;
	c = xmalloc(sizeof(*c));
	*c = *m;
	return c;
}

/* ---- a pass (its own thread) ------------------------------------------- */

void
inventory_result_free(struct inventory_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_domains; i++) {
		free(r->domains[i].name);
		free(r->domains[i].meta);
	}
	free(r->domains);
	for (size_t i = 0; i < r->n_volumes; i++)
		free(r->volumes[i]);
	free(r->volumes);
	free(r->error);
	free(r);
}

/* Record the first failure; libvirt's message is read before any other
 * call resets it. */
static void
failed(struct inventory_result *r, const char *host, const char *what)
{
	r->call_failed = true;
	if (!r->error)
		r->error = xasprintf("host %s: %s: %s", host, what,
				     virGetLastErrorMessage());
	virResetLastError();
}

/*
 * Our metadata of dom into *meta (NULL: none of ours). 0; 1 when the domain
 * went away meanwhile; -1 when libvirt could not say (recorded in r).
 */
static int
read_meta(struct pass *p, virDomainPtr dom, const char *name,
	  struct domxml_meta **meta)
{
	struct inventory_result *r = p->res;
	struct domxml_meta m;
	char *xml;

	*meta = NULL;
	r->calls++;
	r->meta_calls++;
	xml = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
				   DOMXML_NS_URI, 0);
	if (!xml) {
		int code = virGetLastErrorCode();

		if (code == VIR_ERR_NO_DOMAIN_METADATA) {
			virResetLastError();
			return 0;
		}
		if (code == VIR_ERR_NO_DOMAIN) {
			virResetLastError();
			return 1;
		}
		failed(r, p->host, name);
		return -1;
	}
	if (domxml_meta_parse(xml, strlen(xml), &m) == 0)
		*meta = meta_dup(&m);
	else
		log_debug("host %s: domain %s: %s; not ours", p->host, name,
			  err_msg());
	free(xml);
	return 0;
}

const char *
inventory_pick_address(const char *const *v, size_t n)
{
	const char *v6 = NULL;

	for (size_t i = 0; i < n; i++) {
		unsigned char b[16];

		if (!v[i])
			continue;
		if (inet_pton(AF_INET, v[i], b) == 1) {
			if (b[0] == 127 || b[0] == 0 || (b[0] == 169 && b[1] == 254))
				continue;
			return v[i];
		}
		if (inet_pton(AF_INET6, v[i], b) == 1 && !v6) {
			static const unsigned char lo[16] = {[15] = 1};

			if (memcmp(b, lo, 16) == 0 ||
			    (b[0] == 0xfe && (b[1] & 0xc0) == 0x80))
				continue;
			v6 = v[i];
		}
	}
	return v6;
}

/*
 * The domain's address into out ("" when no source told one): the DHCP
 * leases of libvirt's network, else the guest agent, else ARP. A source
 * the host or the guest does not offer fails fast and the next is asked.
 */
static void
read_address(struct pass *p, virDomainPtr dom, char out[INVENTORY_ADDR_LEN])
{
	static const unsigned sources[] = {
		VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
		VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
		VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
	};
	struct inventory_result *r = p->res;

	out[0] = '\0';
	for (size_t s = 0; s < ARRAY_SIZE(sources) && !out[0]; s++) {
		virDomainInterfacePtr *ifs = NULL;
		const char **addrs;
		size_t na = 0;
		const char *best;
		int n;

		r->calls++;
		r->addr_calls++;
		n = virDomainInterfaceAddresses(dom, &ifs, sources[s], 0);
		if (n < 0) {
			virResetLastError();
			continue;
		}
		addrs = xcalloc(1, sizeof(*addrs));
		for (int i = 0; i < n; i++) {
			addrs = xreallocarray(addrs, na + ifs[i]->naddrs + 1,
					      sizeof(*addrs));
			for (unsigned j = 0; j < ifs[i]->naddrs; j++)
				addrs[na++] = ifs[i]->addrs[j].addr;
		}
		best = inventory_pick_address(addrs, na);
		if (best)
			snprintf(out, INVENTORY_ADDR_LEN, "%s", best);
		free(addrs);
		for (int i = 0; i < n; i++)
			virDomainInterfaceFree(ifs[i]);
		free(ifs);
	}
}

static void
list_domains(struct pass *p)
{
	unsigned addr_domains = 0;
	int64_t now = util_now_ms();
	struct inventory_result *r = p->res;
	virDomainPtr *doms = NULL;
	int n;

	r->calls++;
	n = virConnectListAllDomains(p->conn, &doms, 0);
	if (n < 0) {
		failed(r, p->host, "cannot list the domains");
		p->cache = p->old; /* unchanged */
		memset(&p->old, 0, sizeof(p->old));
		return;
	}
	r->listed = true;
	r->complete = true;
	r->domains = xcalloc((size_t)n + 1, sizeof(*r->domains));
	p->cache.v = xcalloc((size_t)n + 1, sizeof(*p->cache.v));
	for (int i = 0; i < n; i++) {
		struct inventory_domain *d = &r->domains[r->n_domains];
		const char *name = virDomainGetName(doms[i]); /* local */
		struct centry *hit = NULL;
		struct domxml_meta *meta;
		char addr[INVENTORY_ADDR_LEN] = "";
		int64_t addr_ms = 0;

		if (virDomainGetUUIDString(doms[i], d->uuid) < 0) { /* local */
			virResetLastError();
			d->uuid[0] = '\0';
		}
		if (d->uuid[0])
			hit = cache_find(&p->old, d->uuid);
		if (hit) {
			meta = hit->meta; /* moves to the new cache */
			hit->meta = NULL;
			memcpy(addr, hit->addr, sizeof(addr));
			addr_ms = hit->addr_ms;
		} else {
			int rc = read_meta(p, doms[i], name ? name : d->uuid,
					   &meta);

			if (rc != 0) {
				/* gone meanwhile (1), or unknown this time:
				 * whether it is ours cannot be told, so nothing
				 * may be concluded from what is missing */
				if (rc < 0)
					r->complete = false;
				memset(d, 0, sizeof(*d));
				continue;
			}
		}
		d->name = xstrdup(name ? name : d->uuid);
		/* the listing's id: -1 for a domain that does not run */
		d->active = virDomainGetID(doms[i]) != (unsigned int)-1;
		d->meta = meta_dup(meta);
		if (!d->active) {
			addr[0] = '\0'; /* a new boot may get another lease */
			addr_ms = 0;
		} else if (p->addresses && meta &&
			   addr_domains < INVENTORY_ADDR_DOMAINS_MAX &&
			   (!addr_ms ||
			    now - addr_ms >= (addr[0] ? INVENTORY_ADDR_REFRESH_MS
						      : INVENTORY_ADDR_RETRY_MS))) {
			addr_domains++;
			read_address(p, doms[i], addr);
			addr_ms = now;
		}
		memcpy(d->address, addr, sizeof(d->address));
		r->n_domains++;
		if (d->uuid[0]) {
			struct centry *e = &p->cache.v[p->cache.n++];

			memcpy(e->uuid, d->uuid, sizeof(e->uuid));
			e->meta = meta;
			memcpy(e->addr, addr, sizeof(e->addr));
			e->addr_ms = addr_ms;
		} else {
			free(meta);
		}
	}
	/* entries of domains no longer listed go with the old cache */
	cache_release(&p->old);
	qsort(p->cache.v, p->cache.n, sizeof(*p->cache.v), centry_cmp);
	for (int i = 0; i < n; i++)
		virDomainFree(doms[i]);
	free(doms);
}

static void
list_volumes(struct pass *p)
{
	struct inventory_result *r = p->res;
	virStoragePoolPtr pool;
	virStorageVolPtr *vols = NULL;
	int n;

	r->calls++;
	pool = virStoragePoolLookupByName(p->conn, p->pool);
	if (!pool) {
		if (virGetLastErrorCode() == VIR_ERR_NO_STORAGE_POOL) {
			if (!r->error)
				r->error = xasprintf("host %s: no storage pool %s",
						     p->host, p->pool);
			virResetLastError();
		} else {
			failed(r, p->host, "storage pool lookup");
		}
		return;
	}
	/* volumes made behind libvirt's back (another daemon, by hand) */
	r->calls++;
	if (virStoragePoolRefresh(pool, 0) < 0)
		failed(r, p->host, "storage pool refresh");
	r->calls++;
	n = virStoragePoolListAllVolumes(pool, &vols, 0);
	if (n < 0) {
		failed(r, p->host, "cannot list the volumes");
	} else {
		r->volumes_listed = true;
		r->volumes = xcalloc((size_t)n + 1, sizeof(*r->volumes));
		for (int i = 0; i < n; i++) {
			const char *name = virStorageVolGetName(vols[i]); /* local */

			if (name)
				r->volumes[r->n_volumes++] = xstrdup(name);
			virStorageVolFree(vols[i]);
		}
		free(vols);
	}
	virStoragePoolFree(pool);
}

static void
pass_free(struct pass *p)
{
	if (p->conn)
		virConnectClose(p->conn);
	cache_release(&p->old);
	cache_release(&p->cache);
	inventory_result_free(p->res);
	free(p->host);
	free(p->uri);
	free(p->pool);
	pthread_mutex_destroy(&p->m);
	pthread_cond_destroy(&p->cond);
	free(p);
}

/* Drop one reference; the last frees. */
static void
pass_unref(struct pass *p)
{
	bool last;

	pthread_mutex_lock(&p->m);
	last = --p->refs == 0;
	pthread_mutex_unlock(&p->m);
	if (last)
		pass_free(p);
}

/*
 * The inventory's own connection, opened by the pass that finds none:
 * its calls never wait behind another thread's, so keepalive (as host.c
 * sets it) bounds each to about 20 s on a host that stops answering.
 */
static bool
connect_host(struct pass *p)
{
	struct inventory_result *r = p->res;

	if (p->conn)
		return true;
	p->conn = virConnectOpen(p->uri);
	if (!p->conn) {
		failed(r, p->host, "cannot connect");
		return false;
	}
	r->connected = true;
	if (virConnectSetKeepAlive(p->conn, INVENTORY_KEEPALIVE_INTERVAL_S,
				   INVENTORY_KEEPALIVE_COUNT) < 0) {
		/* local drivers have none: fine */
		log_debug("host %s: no keepalive: %s", p->host,
			  virGetLastErrorMessage());
		virResetLastError();
	}
	return true;
}

static void *
pass_main(void *arg)
{
	struct pass *p = arg;
	int64_t t0 = util_now_ms();

	if (connect_host(p)) {
		list_domains(p);
		if (p->res->listed)
			list_volumes(p);
		/* dead (keepalive, the peer closed): the next pass reopens */
		if (p->res->call_failed && virConnectIsAlive(p->conn) != 1) {
			virConnectClose(p->conn);
			p->conn = NULL;
		}
	} else {
		p->cache = p->old; /* unchanged */
		memset(&p->old, 0, sizeof(p->old));
	}
	p->res->duration_ms = util_now_ms() - t0;
	if (p->res->error)
		log_debug("%s", p->res->error);

	pthread_mutex_lock(&p->m);
	p->done = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->m);
	pass_unref(p);
	return NULL;
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
		pass_unref(inv->pass); /* abandoned if still running */
	if (inv->conn)
		close_detached(inv->conn);
	cache_release(&inv->cache);
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
	rc = pthread_create(&t, &attr, pass_main, p);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		inv->conn = p->conn;
		p->conn = NULL;
		inv->cache = p->old;
		memset(&p->old, 0, sizeof(p->old));
		pass_free(p);
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
	pass_unref(p);
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
