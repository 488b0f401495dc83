/*
 * collect_round.c: one host's collection round: the bulk stats call, the
 * per-domain cache of the facts from domain XML, rates from deltas, host
 * capacity, and the result handed to the loop (see collect_int.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "collect_int.h"
#include "log.h"
#include "util.h"

LOG_TAG("collect");

/* ---- the per-host cache --------------------------------------------------- */

/*
 * Keyed by domain name, which is unique on a host at any moment and which
 * virDomainGetName() returns as it is, where virDomainGetUUID() formats
 * the UUID for a debug line whether or not anything logs (2.5 ms a round
 * at 5,000 domains, on the round's wall time). The UUID is still what
 * identifies a domain: it is read for a new entry, for one a lifecycle
 * event named (by UUID), and for every entry once in CACHE_VERIFY_EVERY
 * rounds; when it changed, the name now belongs to another domain and the
 * entry starts again (ours reported gone). The round asks only for active
 * domains, and an entry not seen in a round is dropped: a name can only
 * come back with another UUID unseen if a domain was stopped, undefined,
 * defined again under its name and started within one interval, and
 * its lifecycle events were not taken in the round before; then the
 * entry is wrong for at most CACHE_VERIFY_EVERY rounds.
 */
#define CACHE_VERIFY_EVERY 16

struct centry {
	struct centry *next;
	size_t hash;         /* of name */
	unsigned char uuid[VIR_UUID_BUFLEN];
	bool stale;          /* re-read the XML next time */
	bool ours;
	bool period_set;     /* we set its stats period */
	bool told_no_balloon;
	unsigned verify;     /* its UUID is read when round % EVERY is this */
	unsigned no_balloon; /* consecutive samples without balloon stats */
	unsigned long seen;  /* round it was last seen in */
	char *name, *group, *id;
	size_t name_len, group_len, id_len; /* copied every round */
	uint64_t generation;
	unsigned vcpus;
	uint64_t mem_kib;
	bool have_prev;
	struct rates_sample prev;
};

static size_t
name_hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return (size_t)h;
}

static void
centry_free(struct centry *e)
{
	free(e->name);
	free(e->group);
	free(e->id);
	free(e);
}

/* Forget what e knew of the domain it named (another one has its name). */
static void
centry_reset(struct centry *e)
{
	free(e->group);
	free(e->id);
	e->group = e->id = NULL;
	e->group_len = e->id_len = 0;
	e->stale = true;
	e->ours = e->period_set = e->told_no_balloon = e->have_prev = false;
	e->no_balloon = 0;
	e->generation = 0;
	e->vcpus = 0;
	e->mem_kib = 0;
}

static struct centry **
cache_slot(struct cache *c, const char *name, size_t len, size_t hash)
{
	struct centry **p;

	if (!c->b) {
		c->n_b = 64;
		c->b = xcalloc(c->n_b, sizeof(*c->b));
	}
	p = &c->b[hash & (c->n_b - 1)];
	while (*p && ((*p)->hash != hash || (*p)->name_len != len ||
		      memcmp((*p)->name, name, len) != 0))
		p = &(*p)->next;
	return p;
}

/* The entry of domain `name` (len bytes); *fresh when it was made now. */
static struct centry *
cache_get(struct cache *c, const char *name, size_t len, bool *fresh)
{
	size_t hash = name_hash(name, len);
	struct centry **p = cache_slot(c, name, len, hash);

	*fresh = !*p;
	if (!*p) {
		struct centry *e = xcalloc(1, sizeof(*e));

		e->hash = hash;
		e->name = xstrndup(name, len);
		e->name_len = len;
		e->stale = true;
		e->verify = c->seq++ % CACHE_VERIFY_EVERY;
		*p = e;
		if (++c->count > c->n_b) {
			size_t n = c->n_b * 2;
			struct centry **nb = xcalloc(n, sizeof(*nb));
			struct centry *next;

			for (size_t i = 0; i < c->n_b; i++)
				for (struct centry *x = c->b[i]; x; x = next) {
					size_t k = x->hash & (n - 1);

					next = x->next;
					x->next = nb[k];
					nb[k] = x;
				}
			free(c->b);
			c->b = nb;
			c->n_b = n;
		}
		return e;
	}
	return *p;
}

void
collect_cache_release(struct cache *c)
{
	for (size_t i = 0; i < c->n_b; i++) {
		struct centry *e = c->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			centry_free(e);
		}
	}
	free(c->b);
	memset(c, 0, sizeof(*c));
}

/* ---- results ---------------------------------------------------------- */

void
collect_result_reset(struct result *r)
{
	r->n_inst = 0;
	r->n_gone = 0;
	strbuf_reset(&r->arena);
	memset(&r->pub, 0, sizeof(r->pub));
}

/* Copy s (len bytes, or NULL) with its NUL into the arena. */
static size_t
arena_add(struct result *r, const char *s, size_t len)
{
	size_t off = r->arena.len;

	strbuf_add(&r->arena, s ? s : "", s ? len + 1 : 1);
	return off;
}

static void
uuid_format(const unsigned char *u, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t k = 0;

	for (int i = 0; i < VIR_UUID_BUFLEN; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[k++] = '-';
		out[k++] = hex[u[i] >> 4];
		out[k++] = hex[u[i] & 15];
	}
	out[k] = '\0';
}

static struct collect_instance *
result_add(struct result *r, const struct centry *e)
{
	struct collect_instance *i;

	if (r->n_inst == r->a_inst) {
		r->a_inst = r->a_inst ? r->a_inst * 2 : 16;
		r->inst = xreallocarray(r->inst, r->a_inst, sizeof(*r->inst));
		r->str_off = xreallocarray(r->str_off, r->a_inst * 3,
					   sizeof(*r->str_off));
	}
	i = &r->inst[r->n_inst];
	memset(i, 0, sizeof(*i));
	memcpy(i->uuid, e->uuid, VIR_UUID_BUFLEN);
	uuid_format(e->uuid, i->uuid_str);
	r->str_off[r->n_inst * 3] = arena_add(r, e->name, e->name_len);
	r->str_off[r->n_inst * 3 + 1] = arena_add(r, e->group, e->group_len);
	r->str_off[r->n_inst * 3 + 2] = arena_add(r, e->id, e->id_len);
	i->generation = e->generation;
	i->vcpus = e->vcpus;
	r->n_inst++;
	return i;
}

static void
result_gone(struct result *r, const unsigned char *uuid)
{
	if (r->n_gone == r->a_gone) {
		r->a_gone = r->a_gone ? r->a_gone * 2 : 8;
		r->gone = xreallocarray(r->gone, r->a_gone, sizeof(*r->gone));
	}
	memcpy(r->gone[r->n_gone++], uuid, VIR_UUID_BUFLEN);
}

/* Turn arena offsets into pointers (the arena no longer grows). */
void
collect_result_finish(struct result *r)
{
	for (size_t k = 0; k < r->n_inst; k++) {
		r->inst[k].name = r->arena.buf + r->str_off[k * 3];
		r->inst[k].group = r->arena.buf + r->str_off[k * 3 + 1];
		r->inst[k].id = r->arena.buf + r->str_off[k * 3 + 2];
	}
	r->pub.inst = r->inst;
	r->pub.n_inst = r->n_inst;
	r->pub.gone = (const unsigned char (*)[VIR_UUID_BUFLEN])r->gone;
	r->pub.n_gone = r->n_gone;
}

void
collect_result_release(struct result *r)
{
	free(r->inst);
	free(r->str_off);
	free(r->gone);
	strbuf_release(&r->arena);
}

static int
uuid_cmp(const void *a, const void *b)
{
	return memcmp(a, b, VIR_UUID_BUFLEN);
}

/* Mark the entries named by lifecycle events stale (by UUID: one walk of
 * the cache, a binary search each). */
static void
apply_invalidations(struct chost *ch)
{
	unsigned char (*inval)[VIR_UUID_BUFLEN];
	size_t n;
	bool all;

	pthread_mutex_lock(&ch->lock);
	inval = ch->inval;
	n = ch->n_inval;
	all = ch->forget_all;
	ch->inval = NULL;
	ch->n_inval = ch->a_inval = 0;
	ch->forget_all = false;
	if (all)
		ch->have_nodeinfo = false;
	pthread_mutex_unlock(&ch->lock);

	if (n > 1)
		qsort(inval, n, sizeof(*inval), uuid_cmp);
	if (all || n > 0)
		for (size_t i = 0; i < ch->cache.n_b; i++)
			for (struct centry *e = ch->cache.b[i]; e; e = e->next)
				if (all || (n > 0 && bsearch(e->uuid, inval, n,
							     sizeof(*inval),
							     uuid_cmp)))
					e->stale = true;
	free(inval);
}

/* Read the domain XML of a new or invalidated cache entry. */
static int
refresh_facts(struct chost *ch, struct centry *e, virDomainPtr dom,
	      unsigned *calls)
{
	struct collect_facts f;
	const char *why = NULL, *name;
	char *xml;
	int rc = -1;

	name = virDomainGetName(dom); /* local: no call to the daemon */
	(*calls)++;
	xml = virDomainGetXMLDesc(dom, 0);
	if (!xml) {
		/* Copy the message before any other libvirt call resets it. */
		err_set("cannot read the XML of domain %s: %s", name ? name : "?",
			virGetLastErrorMessage());
		return virGetLastErrorCode() == VIR_ERR_NO_DOMAIN ? -2 : -1;
	}
	if (collect_parse_domain_xml(xml, strlen(xml), &f, &why) < 0) {
		err_prefix("domain %s", virDomainGetName(dom));
		goto cleanup;
	}
	if (why)
		log_warn("%s: domain %s: %s; not collected", host_name(ch->h),
			 name, why);
	free(e->name);
	free(e->group);
	free(e->id);
	e->name = xstrdup(name ? name : "");
	e->group = e->id = NULL;
	e->ours = false;
	switch (domxml_owns(f.ours ? &f.meta : NULL, ch->c->owner)) {
	case DOMXML_OWNER_OURS:
	case DOMXML_OWNER_LEGACY:
		e->ours = true;
		e->group = xstrdup(f.meta.group);
		e->id = xstrdup(f.meta.id);
		e->generation = f.meta.generation;
		break;
	case DOMXML_OWNER_FOREIGN:
		/* reconcile.c reports it (once, at info) */
		log_debug("%s: domain %s belongs to another installation "
			  "(owner %s); not collected", host_name(ch->h), e->name,
			  f.meta.owner);
		break;
	default:
		break;
	}
	if (!e->ours && ch->c->name_prefix &&
	    strncmp(e->name, ch->c->name_prefix, strlen(ch->c->name_prefix)) == 0) {
		e->ours = true;
		e->group = xstrdup("bench");
		e->id = xstrdup(e->name);
	}
	e->name_len = strlen(e->name);
	e->group_len = e->group ? strlen(e->group) : 0;
	e->id_len = e->id ? strlen(e->id) : 0;
	e->vcpus = f.vcpus;
	e->mem_kib = f.mem_kib;
	e->stale = false;
	rc = 0;
cleanup:
	collect_facts_release(&f);
	free(xml);
	return rc;
}

static void
node_capacity(struct chost *ch, virConnectPtr conn, int64_t now_ms,
	      struct result *r)
{
	virNodeInfo info;
	virNodeMemoryStatsPtr mem = NULL;
	virNodeCPUStatsPtr cpu = NULL;
	int n;
	struct collect_host_result *p = &r->pub;

	if (!ch->have_nodeinfo) {
		p->calls++;
		p->calls_node++;
		if (virNodeGetInfo(conn, &info) == 0) {
			ch->have_nodeinfo = true;
			ch->cpus = info.cpus;
			ch->node_mem_kib = info.memory;
		}
	}
	if (ch->c->opts.capacity_period_ms == 0 || now_ms >= ch->cap_next_ms) {
		uint64_t total = 0, freek = 0, busy = 0, all = 0;
		bool have_total = false;

		ch->cap_next_ms = now_ms + ch->c->opts.capacity_period_ms;
		n = 4;
		mem = xcalloc((size_t)n, sizeof(*mem));
		if (!ch->no_memstats) {
			p->calls++;
			p->calls_node++;
		}
		if (!ch->no_memstats &&
		    virNodeGetMemoryStats(conn, VIR_NODE_MEMORY_STATS_ALL_CELLS,
					  mem, &n, 0) == 0) {
			for (int i = 0; i < n; i++) {
				if (strcmp(mem[i].field, VIR_NODE_MEMORY_STATS_TOTAL) == 0) {
					total = mem[i].value;
					have_total = true;
				} else if (strcmp(mem[i].field, VIR_NODE_MEMORY_STATS_FREE) == 0 ||
					   strcmp(mem[i].field, VIR_NODE_MEMORY_STATS_BUFFERS) == 0 ||
					   strcmp(mem[i].field, VIR_NODE_MEMORY_STATS_CACHED) == 0) {
					freek += mem[i].value;
				}
			}
			ch->free_kib = freek;
			ch->cap_have_free = true;
			/* The kernel's MemTotal; virNodeGetInfo sums NUMA
			 * nodes, which some machines under-report. */
			if (have_total)
				ch->node_mem_kib = total;
		} else {
			unsigned long long bytes;

			/* Drivers without memory stats (the test driver). */
			if (!ch->no_memstats)
				log_debug("%s: node memory stats: %s",
					  host_name(ch->h),
					  virGetLastErrorMessage());
			ch->no_memstats = true;
			p->calls++;
			p->calls_node++;
			bytes = virNodeGetFreeMemory(conn);
			if (bytes > 0) {
				ch->free_kib = bytes / 1024;
				ch->cap_have_free = true;
			}
		}
		n = 4;
		cpu = xcalloc((size_t)n, sizeof(*cpu));
		p->calls++;
		p->calls_node++;
		if (virNodeGetCPUStats(conn, VIR_NODE_CPU_STATS_ALL_CPUS, cpu, &n,
				       0) == 0) {
			for (int i = 0; i < n; i++) {
				if (strcmp(cpu[i].field, VIR_NODE_CPU_STATS_KERNEL) == 0 ||
				    strcmp(cpu[i].field, VIR_NODE_CPU_STATS_USER) == 0)
					busy += cpu[i].value;
				if (strcmp(cpu[i].field, VIR_NODE_CPU_STATS_KERNEL) == 0 ||
				    strcmp(cpu[i].field, VIR_NODE_CPU_STATS_USER) == 0 ||
				    strcmp(cpu[i].field, VIR_NODE_CPU_STATS_IDLE) == 0 ||
				    strcmp(cpu[i].field, VIR_NODE_CPU_STATS_IOWAIT) == 0)
					all += cpu[i].value;
			}
			if (ch->have_cpu_prev && all > ch->cpu_total_prev &&
			    busy >= ch->cpu_busy_prev) {
				ch->cpu_util = (double)(busy - ch->cpu_busy_prev) * 100.0 /
					       (double)(all - ch->cpu_total_prev);
				ch->cap_have_util = true;
			}
			ch->have_cpu_prev = true;
			ch->cpu_busy_prev = busy;
			ch->cpu_total_prev = all;
		} else {
			log_debug("%s: node CPU stats: %s", host_name(ch->h),
				  virGetLastErrorMessage());
		}
		ch->cap_ms = now_ms;
		free(mem);
		free(cpu);
	}
	if (ch->have_nodeinfo) {
		p->cap.present |= 1u << COLLECT_CAP_NODEINFO;
		p->cap.cpus = ch->cpus;
		p->cap.mem_kib = ch->node_mem_kib;
	}
	if (ch->cap_have_free) {
		p->cap.present |= 1u << COLLECT_CAP_FREE;
		p->cap.free_kib = ch->free_kib;
	}
	if (ch->cap_have_util) {
		p->cap.present |= 1u << COLLECT_CAP_CPU_UTIL;
		p->cap.cpu_util_pct = ch->cpu_util;
	}
	p->cap.refreshed_ms = ch->cap_ms;
}

/* Process one record of the bulk call. */
static void
one_record(struct chost *ch, virDomainStatsRecordPtr rec, int64_t t_ms,
	   struct result *r)
{
	struct collect_host_result *p = &r->pub;
	const char *name = virDomainGetName(rec->dom);
	struct rates_sample s;
	struct collect_instance *inst;
	struct centry *e;
	bool fresh;

	if (!name)
		return;
	e = cache_get(&ch->cache, name, strlen(name), &fresh);
	if (fresh || e->stale ||
	    e->verify == ch->round % CACHE_VERIFY_EVERY) {
		unsigned char uuid[VIR_UUID_BUFLEN];

		if (virDomainGetUUID(rec->dom, uuid) < 0) {
			e->seen = ch->round; /* kept, read again next round */
			e->stale = true;
			return;
		}
		if (!fresh && memcmp(uuid, e->uuid, VIR_UUID_BUFLEN) != 0) {
			/* the name is another domain's now */
			if (e->ours)
				result_gone(r, e->uuid);
			centry_reset(e);
		}
		memcpy(e->uuid, uuid, VIR_UUID_BUFLEN);
	}
	if (e->stale) {
		unsigned xml_calls = 0;

		int rc = refresh_facts(ch, e, rec->dom, &xml_calls);

		/* -2: the domain went away since the stats call. */
		if (rc == -1)
			log_complain(&ch->complain, LOG_LEVEL_WARN, log_tag,
				     "%s: %s", host_name(ch->h), err_msg());
		else if (rc == -2)
			log_debug("%s: %s", host_name(ch->h), err_msg());
		p->calls += xml_calls;
		p->calls_xml += xml_calls;
	}
	e->seen = ch->round;
	collect_parse_stats(rec->params, rec->nparams, &s);
	s.t_ms = t_ms;
	s.vcpus = e->vcpus;

	p->cap.domains++;
	p->cap.vcpus_alloc += e->vcpus;
	p->cap.mem_alloc_kib += rates_sample_has(&s, RATES_F_BAL_CURRENT)
					? s.bal_current
					: e->mem_kib;
	if (!e->ours)
		return;

	if (!(ch->stats & VIR_DOMAIN_STATS_BALLOON)) {
		/* not asked for: nothing to set up, nothing to tell */
	} else if (!rates_sample_has(&s, RATES_F_BAL_AVAILABLE)) {
		if (ch->c->opts.stats_period_s > 0 && !e->period_set) {
			e->period_set = true;
			p->calls++;
			p->calls_other++;
			if (virDomainSetMemoryStatsPeriod(
				    rec->dom, ch->c->opts.stats_period_s,
				    VIR_DOMAIN_AFFECT_LIVE) < 0)
				log_debug("%s: %s: cannot set the stats period: %s",
					  host_name(ch->h), e->name,
					  virGetLastErrorMessage());
		}
		/* A few samples of grace: the guest may still be booting. */
		if (++e->no_balloon >= 6 && !e->told_no_balloon &&
		    s.state == VIR_DOMAIN_RUNNING) {
			e->told_no_balloon = true;
			log_info("%s: instance %s (%s): the guest reports no "
				 "memory statistics (no virtio balloon driver?); "
				 "its memory use stays unknown",
				 host_name(ch->h), e->id, e->name);
		}
	} else {
		e->no_balloon = 0;
		e->told_no_balloon = false;
	}

	inst = result_add(r, e);
	inst->state = s.state;
	inst->mem_kib = rates_sample_has(&s, RATES_F_BAL_CURRENT) ? s.bal_current
								   : e->mem_kib;
	rates_compute(e->have_prev ? &e->prev : NULL, &s, &inst->rates);
	inst->sample = s;
	e->prev = s;
	e->have_prev = true;
}

/* Drop the entries not seen this round; report ours as gone. */
static void
sweep(struct chost *ch, struct result *r)
{
	for (size_t i = 0; i < ch->cache.n_b; i++) {
		struct centry **p = &ch->cache.b[i];

		while (*p) {
			struct centry *e = *p;

			if (e->seen == ch->round) {
				p = &e->next;
				continue;
			}
			if (e->ours)
				result_gone(r, e->uuid);
			*p = e->next;
			ch->cache.count--;
			centry_free(e);
		}
	}
}

void
collect_host_round(struct chost *ch, int64_t now_ms)
{
	struct result *r = ch->work;
	struct collect_host_result *p;
	virDomainStatsRecordPtr *recs = NULL;
	virConnectPtr conn;
	int64_t t0, t1;
	unsigned flags;
	int n;

	collect_result_reset(r);
	p = &r->pub;
	p->host = ch->h;
	t0 = util_now_ms();
	ch->round++;
	apply_invalidations(ch);

	conn = host_conn(ch->h);
	if (!conn)
		goto failed_quiet;

	pthread_mutex_lock(&ch->c->lock);
	ch->stats = ch->c->stats;
	pthread_mutex_unlock(&ch->c->lock);
	flags = COLLECT_FLAGS;
	if (ch->no_nowait)
		flags &= ~(unsigned)VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT;
	p->calls++;
	p->calls_stats++;
	n = virConnectGetAllDomainStats(conn, ch->stats, &recs, flags);
	if (n < 0 && !ch->no_nowait &&
	    virGetLastErrorCode() == VIR_ERR_INVALID_ARG) {
		/* Drivers without NOWAIT (the test driver). */
		ch->no_nowait = true;
		flags &= ~(unsigned)VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT;
		p->calls++;
		p->calls_stats++;
		n = virConnectGetAllDomainStats(conn, ch->stats, &recs, flags);
	}
	t1 = util_now_ms();
	if (n < 0) {
		err_set("%s: cannot get domain statistics: %s", host_name(ch->h),
			virGetLastErrorMessage());
		virConnectClose(conn);
		host_check_alive(ch->h);
		goto failed;
	}
	/* Each domain was sampled somewhere inside the call. */
	p->t_ms = t0 + (t1 - t0) / 2;
	for (int i = 0; i < n; i++)
		one_record(ch, recs[i], p->t_ms, r);
	sweep(ch, r);
	node_capacity(ch, conn, now_ms, r);
	virConnectClose(conn);
	p->ok = true;
	ch->rounds++;
	log_complain_clear(&ch->complain, log_tag, "%s: collecting again",
			   host_name(ch->h));
	goto done;

failed:
	log_complain(&ch->complain, LOG_LEVEL_WARN, log_tag, "%s", err_msg());
failed_quiet:
	ch->errors++;
done:
	p->duration_us = (util_now_ms() - t0) * 1000;
	p->rounds = ch->rounds;
	p->errors = ch->errors;
	ch->calls_total += p->calls;
	p->calls_total = ch->calls_total;
	collect_result_finish(r);

	pthread_mutex_lock(&ch->c->lock);
	ch->c->total_calls += p->calls;
	pthread_mutex_unlock(&ch->c->lock);

	pthread_mutex_lock(&ch->lock);
	ch->work = ch->pub;
	ch->pub = r;
	ch->pub_new = true;
	ch->busy = false;
	pthread_mutex_unlock(&ch->lock);

	pthread_mutex_lock(&ch->c->lock);
	pthread_cond_broadcast(&ch->c->done);
	pthread_mutex_unlock(&ch->c->lock);

	/*
	 * The records are freed once the result is out, not counted in the
	 * round's duration (a domain each: libvirt formats its UUID for a
	 * debug line even when nobody logs, a few ms at 5,000).
	 * The reply's memory is not handed back (malloc_trim()): the next
	 * round needs as much again, and faulting it in again cost a
	 * quarter of the bulk call at 5,000 domains (about 6 ms of a
	 * 22-29 ms call at the 10 s interval). Resident memory stays flat
	 * all the same, about 1 KiB per domain higher (bench/README.md,
	 * "The loop and the collector, third pass").
	 */
	if (recs)
		virDomainStatsRecordListFree(recs);
	/* the last round in flight: the loop may take every result. Told
	 * after the free, so that what it then does (the decision waiting
	 * for this round) does not compete with the free for the CPU. */
	if (ch->c->opts.on_result && !collect_running(ch->c, false))
		ch->c->opts.on_result(ch->c->opts.on_result_arg);
}
