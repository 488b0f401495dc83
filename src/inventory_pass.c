/*
 * inventory_pass.c: one inventory pass, on a thread of its own: the
 * inventory's own connection (opened when there is none, with
 * keepalive), the domains with our metadata (read only for domains the
 * cache does not know) and their addresses, the pool's volumes; the
 * pass's result and its new cache. See inventory.h and inventory_int.h.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <libvirt/virterror.h>

#include "inventory.h"
#include "inventory_int.h"
#include "log.h"
#include "util.h"

LOG_TAG("inventory");

/* Keepalive of our connection: as host_link.c's (5 s, 3 missed: ~20 s). */
#define INVENTORY_KEEPALIVE_INTERVAL_S 5
#define INVENTORY_KEEPALIVE_COUNT 3

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

/* By our metadata's id, those without it last; then by name. */
static int
domain_cmp(const void *a, const void *b)
{
	const struct inventory_domain *x = a, *y = b;
	int c;

	if (!x->meta != !y->meta)
		return x->meta ? -1 : 1;
	if (x->meta && (c = strcmp(x->meta->id, y->meta->id)) != 0)
		return c;
	return strcmp(x->name ? x->name : "", y->name ? y->name : "");
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
			hit = inventory_cache_find(&p->old, d->uuid);
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
	inventory_cache_release(&p->old);
	qsort(p->cache.v, p->cache.n, sizeof(*p->cache.v),
	      inventory_centry_cmp);
	/* here, off the loop: the reconcile planner wants them by id */
	qsort(r->domains, r->n_domains, sizeof(*r->domains), domain_cmp);
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

void
inventory_pass_free(struct pass *p)
{
	if (p->conn)
		virConnectClose(p->conn);
	inventory_cache_release(&p->old);
	inventory_cache_release(&p->cache);
	inventory_result_free(p->res);
	free(p->host);
	free(p->uri);
	free(p->pool);
	pthread_mutex_destroy(&p->m);
	pthread_cond_destroy(&p->cond);
	free(p);
}

/* Drop one reference; the last frees. */
void
inventory_pass_unref(struct pass *p)
{
	bool last;

	pthread_mutex_lock(&p->m);
	last = --p->refs == 0;
	pthread_mutex_unlock(&p->m);
	if (last)
		inventory_pass_free(p);
}

/*
 * The inventory's own connection, opened by the pass that finds none:
 * its calls never wait behind another thread's, so keepalive (as
 * host_link.c sets it) bounds each to about 20 s on a host that stops
 * answering.
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

static void
digest_add(gnutls_hash_hd_t h, const void *v, size_t len)
{
	uint64_t n = len;

	/* the length first: no two lists of fields hash alike */
	gnutls_hash(h, &n, sizeof(n));
	if (len)
		gnutls_hash(h, v, len);
}

static void
digest_str(gnutls_hash_hd_t h, const char *s)
{
	digest_add(h, s ? s : "", s ? strlen(s) + 1 : 0);
}

/* r->digest: what was found, but the addresses (inventory.h). */
static void
digest(struct inventory_result *r)
{
	gnutls_hash_hd_t h;
	unsigned char flags[3] = {r->listed, r->complete, r->volumes_listed};

	if (!r->listed || gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		return;
	digest_add(h, flags, sizeof(flags));
	digest_add(h, &r->n_domains, sizeof(r->n_domains));
	for (size_t i = 0; i < r->n_domains; i++) {
		const struct inventory_domain *d = &r->domains[i];
		unsigned char active = d->active, meta = d->meta != NULL;

		digest_str(h, d->uuid);
		digest_str(h, d->name);
		digest_add(h, &active, 1);
		/* not the address: the planner does not read it, and it is
		 * read for 32 domains a pass, so it changes while domains
		 * are discovered (members.c compares the addresses itself) */
		digest_add(h, &meta, 1);
		if (d->meta) {
			digest_str(h, d->meta->group);
			digest_str(h, d->meta->id);
			digest_str(h, d->meta->owner);
			digest_add(h, &d->meta->generation,
				   sizeof(d->meta->generation));
		}
	}
	digest_add(h, &r->n_volumes, sizeof(r->n_volumes));
	for (size_t i = 0; i < r->n_volumes; i++)
		digest_str(h, r->volumes[i]);
	gnutls_hash_deinit(h, r->digest);
	r->have_digest = true;
}

void *
inventory_pass_main(void *arg)
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
	digest(p->res);
	p->res->duration_ms = util_now_ms() - t0;
	if (p->res->error)
		log_debug("%s", p->res->error);

	pthread_mutex_lock(&p->m);
	p->done = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->m);
	inventory_pass_unref(p);
	return NULL;
}
