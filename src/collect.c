/*
 * collect.c: one bulk stats call per host and tick, a per-UUID cache of
 * the facts from domain XML, rates from deltas, host capacity, and a
 * worker thread per host (see collect.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "collect.h"
#include "config.h"
#include "log.h"
#include "util.h"

LOG_TAG("collect");

/* ---- domain XML --------------------------------------------------------- */

void
collect_facts_release(struct collect_facts *f)
{
	if (!f)
		return;
	memset(f, 0, sizeof(*f));
}

static bool
name_is(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE &&
	       strcmp((const char *)n->name, name) == 0;
}

static bool
parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/* Text content of an element as an unsigned number. */
static bool
node_u64(xmlNode *n, uint64_t *out)
{
	xmlChar *t = xmlNodeGetContent(n);
	bool ok;

	if (!t)
		return false;
	ok = parse_u64((const char *)t, out);
	xmlFree(t);
	return ok;
}

static bool
node_attr_u64(xmlNode *n, const char *attr, uint64_t *out)
{
	xmlChar *t = xmlGetProp(n, (const xmlChar *)attr);
	bool ok;

	if (!t)
		return false;
	ok = parse_u64((const char *)t, out);
	xmlFree(t);
	return ok;
}

/* <memory unit='KiB'>N</memory> in KiB. */
static bool
node_mem_kib(xmlNode *n, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t mul, div;
	} units[] = {
		{"b", 1, 1024},      {"bytes", 1, 1024},
		{"k", 1, 1},         {"KiB", 1, 1},
		{"M", 1024, 1},      {"MiB", 1024, 1},
		{"G", 1048576, 1},   {"GiB", 1048576, 1},
	};
	xmlChar *unit = xmlGetProp(n, (const xmlChar *)"unit");
	uint64_t v, mul = 1, div = 1;
	bool ok = false;

	if (!node_u64(n, &v))
		goto cleanup;
	if (unit) {
		size_t i;

		for (i = 0; i < ARRAY_SIZE(units); i++)
			if (strcmp((const char *)unit, units[i].unit) == 0)
				break;
		if (i == ARRAY_SIZE(units))
			goto cleanup;
		mul = units[i].mul;
		div = units[i].div;
	}
	if (v > UINT64_MAX / mul)
		goto cleanup;
	*out = v * mul / div;
	ok = true;
cleanup:
	xmlFree(unit);
	return ok;
}

int
collect_parse_domain_xml(const char *xml, size_t len, struct collect_facts *out,
			 const char **why)
{
	xmlDoc *doc = NULL;
	xmlNode *root;
	uint64_t v;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (why)
		*why = NULL;
	if (len > INT32_MAX) {
		err_set("domain XML: too large");
		return -1;
	}
	doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR |
				    XML_PARSE_NOWARNING | XML_PARSE_NOBLANKS);
	if (!doc) {
		err_set("domain XML: not well-formed");
		goto cleanup;
	}
	root = xmlDocGetRootElement(doc);
	if (!root || !name_is(root, "domain")) {
		err_set("domain XML: root element is not <domain>");
		goto cleanup;
	}
	/* our <va:instance>: domxml.c's parser, the one every module uses */
	switch (domxml_meta_from_domain(root, &out->meta)) {
	case 1:
		out->ours = true;
		break;
	case -1:
		if (why)
			*why = err_msg();
		break;
	default:
		break;
	}
	for (xmlNode *n = root->children; n; n = n->next) {
		if (name_is(n, "vcpu")) {
			if (node_attr_u64(n, "current", &v) ||
			    node_u64(n, &v))
				out->vcpus = v > UINT32_MAX ? UINT32_MAX
							    : (unsigned)v;
		} else if (name_is(n, "currentMemory")) {
			node_mem_kib(n, &out->mem_kib);
		} else if (name_is(n, "memory")) {
			if (!out->mem_kib)
				node_mem_kib(n, &out->mem_kib);
		} else if (name_is(n, "devices")) {
			for (xmlNode *d = n->children; d; d = d->next) {
				xmlChar *dev;

				if (!name_is(d, "disk"))
					continue;
				dev = xmlGetProp(d, (const xmlChar *)"device");
				if (!dev || strcmp((const char *)dev, "disk") == 0)
					out->disks++;
				xmlFree(dev);
			}
		}
	}
	rc = 0;
cleanup:
	xmlFreeDoc(doc);
	return rc;
}

/* ---- typed parameters ------------------------------------------------- */

static bool
param_u64(const virTypedParameter *p, uint64_t *out)
{
	switch (p->type) {
	case VIR_TYPED_PARAM_INT:
		if (p->value.i < 0)
			return false;
		*out = (uint64_t)p->value.i;
		return true;
	case VIR_TYPED_PARAM_UINT:
		*out = p->value.ui;
		return true;
	case VIR_TYPED_PARAM_LLONG:
		if (p->value.l < 0)
			return false;
		*out = (uint64_t)p->value.l;
		return true;
	case VIR_TYPED_PARAM_ULLONG:
		*out = p->value.ul;
		return true;
	default:
		return false;
	}
}

static void
sample_set(struct rates_sample *s, enum rates_field f, uint64_t *dst,
	   uint64_t v)
{
	*dst = v;
	s->present |= 1u << f;
}

static void
sample_add(struct rates_sample *s, enum rates_field f, uint64_t *dst,
	   uint64_t v)
{
	*dst = (rates_sample_has(s, f) ? *dst : 0) + v;
	s->present |= 1u << f;
}

/* "block.3.rd.bytes" with prefix "block." -> suffix "rd.bytes"; false for
 * "block.count" and the like. */
static const char *
indexed_suffix(const char *field, const char *prefix)
{
	size_t n = strlen(prefix);
	const char *p;

	if (strncmp(field, prefix, n) != 0)
		return NULL;
	p = field + n;
	if (*p < '0' || *p > '9')
		return NULL;
	while (*p >= '0' && *p <= '9')
		p++;
	return *p == '.' ? p + 1 : NULL;
}

void
collect_parse_stats(const virTypedParameter *params, int nparams,
		    struct rates_sample *s)
{
	static const struct {
		const char *field;
		enum rates_field f;
		size_t off;
	} scalars[] = {
		{"cpu.time", RATES_F_CPU_TIME, offsetof(struct rates_sample, cpu_time)},
		{"balloon.current", RATES_F_BAL_CURRENT, offsetof(struct rates_sample, bal_current)},
		{"balloon.maximum", RATES_F_BAL_MAXIMUM, offsetof(struct rates_sample, bal_maximum)},
		{"balloon.available", RATES_F_BAL_AVAILABLE, offsetof(struct rates_sample, bal_available)},
		{"balloon.usable", RATES_F_BAL_USABLE, offsetof(struct rates_sample, bal_usable)},
		{"balloon.unused", RATES_F_BAL_UNUSED, offsetof(struct rates_sample, bal_unused)},
		{"balloon.last-update", RATES_F_BAL_LAST_UPDATE, offsetof(struct rates_sample, bal_last_update)},
	};
	static const struct {
		const char *suffix;
		enum rates_field f;
		size_t off;
	} blocks[] = {
		{"rd.bytes", RATES_F_RD_BYTES, offsetof(struct rates_sample, rd_bytes)},
		{"wr.bytes", RATES_F_WR_BYTES, offsetof(struct rates_sample, wr_bytes)},
		{"rd.reqs", RATES_F_RD_REQS, offsetof(struct rates_sample, rd_reqs)},
		{"wr.reqs", RATES_F_WR_REQS, offsetof(struct rates_sample, wr_reqs)},
	}, nets[] = {
		{"rx.bytes", RATES_F_RX_BYTES, offsetof(struct rates_sample, rx_bytes)},
		{"tx.bytes", RATES_F_TX_BYTES, offsetof(struct rates_sample, tx_bytes)},
	};

	memset(s, 0, sizeof(*s));
	s->state = -1;
	for (int i = 0; i < nparams; i++) {
		const virTypedParameter *p = &params[i];
		const char *field = p->field, *suf;
		uint64_t v;

		if (!param_u64(p, &v))
			continue;
		switch (field[0]) {
		case 's':
			if (strcmp(field, "state.state") == 0 && v <= INT32_MAX) {
				s->state = (int)v;
				s->present |= 1u << RATES_F_STATE;
			}
			break;
		case 'c':
		case 'b':
			if (strcmp(field, "block.count") == 0) {
				s->block_count = v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
				s->present |= 1u << RATES_F_BLOCK_COUNT;
				break;
			}
			if ((suf = indexed_suffix(field, "block."))) {
				for (size_t k = 0; k < ARRAY_SIZE(blocks); k++)
					if (strcmp(suf, blocks[k].suffix) == 0)
						sample_add(s, blocks[k].f,
							   (uint64_t *)((char *)s + blocks[k].off),
							   v);
				break;
			}
			for (size_t k = 0; k < ARRAY_SIZE(scalars); k++)
				if (strcmp(field, scalars[k].field) == 0)
					sample_set(s, scalars[k].f,
						   (uint64_t *)((char *)s + scalars[k].off),
						   v);
			break;
		case 'n':
			if (strcmp(field, "net.count") == 0) {
				s->net_count = v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
				s->present |= 1u << RATES_F_NET_COUNT;
				break;
			}
			if ((suf = indexed_suffix(field, "net.")))
				for (size_t k = 0; k < ARRAY_SIZE(nets); k++)
					if (strcmp(suf, nets[k].suffix) == 0)
						sample_add(s, nets[k].f,
							   (uint64_t *)((char *)s + nets[k].off),
							   v);
			break;
		default:
			break;
		}
	}
}

/* ---- the per-host cache --------------------------------------------------- */

struct centry {
	struct centry *next;
	unsigned char uuid[VIR_UUID_BUFLEN];
	bool stale;          /* re-read the XML next time */
	bool ours;
	bool period_set;     /* we set its stats period */
	bool told_no_balloon;
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

struct cache {
	struct centry **b;
	size_t n_b, count;
};

static size_t
uuid_hash(const unsigned char *u)
{
	uint64_t h = 1469598103934665603ull;

	for (int i = 0; i < VIR_UUID_BUFLEN; i++) {
		h ^= u[i];
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

static struct centry **
cache_slot(struct cache *c, const unsigned char *uuid)
{
	struct centry **p;

	if (!c->b) {
		c->n_b = 64;
		c->b = xcalloc(c->n_b, sizeof(*c->b));
	}
	p = &c->b[uuid_hash(uuid) & (c->n_b - 1)];
	while (*p && memcmp((*p)->uuid, uuid, VIR_UUID_BUFLEN) != 0)
		p = &(*p)->next;
	return p;
}

static struct centry *
cache_get(struct cache *c, const unsigned char *uuid)
{
	struct centry **p = cache_slot(c, uuid);

	if (!*p) {
		*p = xcalloc(1, sizeof(**p));
		memcpy((*p)->uuid, uuid, VIR_UUID_BUFLEN);
		(*p)->stale = true;
		if (++c->count > c->n_b) {
			size_t n = c->n_b * 2;
			struct centry **nb = xcalloc(n, sizeof(*nb));
			struct centry *e, *next;

			for (size_t i = 0; i < c->n_b; i++)
				for (e = c->b[i]; e; e = next) {
					size_t k = uuid_hash(e->uuid) & (n - 1);

					next = e->next;
					e->next = nb[k];
					nb[k] = e;
				}
			free(c->b);
			c->b = nb;
			c->n_b = n;
		}
		p = cache_slot(c, uuid);
	}
	return *p;
}

static void
cache_release(struct cache *c)
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

/* Instances whose strings live in an arena (offsets until published). */
struct result {
	struct collect_host_result pub;
	struct collect_instance *inst;
	size_t n_inst, a_inst;
	size_t *str_off;     /* 3 per instance: name, group, id */
	unsigned char (*gone)[VIR_UUID_BUFLEN];
	size_t n_gone, a_gone;
	struct strbuf arena;
};

static void
result_reset(struct result *r)
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
static void
result_finish(struct result *r)
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

static void
result_release(struct result *r)
{
	free(r->inst);
	free(r->str_off);
	free(r->gone);
	strbuf_release(&r->arena);
}

/* ---- per-host state and the collection round ---------------------------- */

struct chost {
	struct collector *c;
	struct host *h;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;     /* guards the fields down to `pub` */
	pthread_cond_t cond;
	bool kick, busy, stop;
	int64_t kick_ms;
	bool forget_all;          /* invalidations from the event thread */
	unsigned char (*inval)[VIR_UUID_BUFLEN];
	size_t n_inval, a_inval;
	struct result *pub;
	bool pub_new;

	/* Worker-owned. */
	struct result *work;
	struct cache cache;
	unsigned long round;
	unsigned long rounds, errors;
	unsigned long calls_total; /* this host's libvirt calls so far */
	unsigned stats;           /* groups asked for in this round */
	bool no_nowait;           /* the driver rejected NOWAIT */
	bool no_memstats;         /* the driver has no node memory stats */
	bool have_nodeinfo;
	unsigned cpus;
	uint64_t node_mem_kib;
	int64_t cap_next_ms;
	bool cap_have_free, cap_have_util;
	uint64_t free_kib;
	double cpu_util;
	int64_t cap_ms;
	bool have_cpu_prev;
	uint64_t cpu_busy_prev, cpu_total_prev;
	struct log_complain complain;
};

struct collector {
	struct collect_opts opts;
	char *name_prefix;
	char *owner;
	struct chost **hosts;
	size_t n_hosts;
	pthread_mutex_t lock;     /* guards total_calls and stats */
	pthread_cond_t done;      /* a round finished */
	unsigned long total_calls;
	unsigned stats;           /* groups of the bulk call (opts.stats) */
};

void
collect_opts_defaults(struct collect_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->capacity_period_ms = 60000;
	o->stats_period_s = 10;
	o->threads = true;
}

static void
on_domain_event(struct host *h, const unsigned char *uuid, int event,
		void *opaque)
{
	struct chost *ch = opaque;

	(void)h;
	pthread_mutex_lock(&ch->lock);
	if (event < 0) {
		ch->forget_all = true;
	} else {
		if (ch->n_inval == ch->a_inval) {
			ch->a_inval = ch->a_inval ? ch->a_inval * 2 : 16;
			ch->inval = xreallocarray(ch->inval, ch->a_inval,
						  sizeof(*ch->inval));
		}
		memcpy(ch->inval[ch->n_inval++], uuid, VIR_UUID_BUFLEN);
	}
	pthread_mutex_unlock(&ch->lock);
}

/* Mark the entries named by lifecycle events stale. */
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

	if (all) {
		for (size_t i = 0; i < ch->cache.n_b; i++)
			for (struct centry *e = ch->cache.b[i]; e; e = e->next)
				e->stale = true;
	}
	for (size_t k = 0; k < n; k++) {
		struct centry **p;

		if (!ch->cache.b)
			break;
		p = cache_slot(&ch->cache, inval[k]);
		if (*p)
			(*p)->stale = true;
	}
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
	unsigned char uuid[VIR_UUID_BUFLEN];
	struct rates_sample s;
	struct collect_instance *inst;
	struct centry *e;

	if (virDomainGetUUID(rec->dom, uuid) < 0)
		return;
	e = cache_get(&ch->cache, uuid);
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

static void
collect_round(struct chost *ch, int64_t now_ms)
{
	struct result *r = ch->work;
	struct collect_host_result *p;
	virDomainStatsRecordPtr *recs = NULL;
	virConnectPtr conn;
	int64_t t0, t1;
	unsigned flags;
	int n;

	result_reset(r);
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
	result_finish(r);

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

	/* The records are freed once the result is out: the loop decides
	 * meanwhile (a domain each: libvirt formats its UUID for a debug
	 * line even when nobody logs, a few ms at 5,000). */
	if (recs) {
		virDomainStatsRecordListFree(recs);
#ifdef __GLIBC__
		/* The reply (a few KiB per domain) was freed in small pieces;
		 * hand the whole pages back so that resident memory stays
		 * flat. */
		malloc_trim(0);
#endif
	}
}

static void *
worker_main(void *arg)
{
	struct chost *ch = arg;

	pthread_mutex_lock(&ch->lock);
	for (;;) {
		while (!ch->kick && !ch->stop)
			pthread_cond_wait(&ch->cond, &ch->lock);
		if (ch->stop)
			break;
		ch->kick = false;
		pthread_mutex_unlock(&ch->lock);
		collect_round(ch, ch->kick_ms);
		pthread_mutex_lock(&ch->lock);
	}
	pthread_mutex_unlock(&ch->lock);
	return NULL;
}

/* ---- the collector ---------------------------------------------------- */

/* opts.stats -> the groups of the bulk call */
static unsigned
stats_mask(unsigned stats)
{
	if (stats == 0)
		return COLLECT_STATS;
	return (stats & COLLECT_STATS) | VIR_DOMAIN_STATS_STATE;
}

void
collect_set_stats(struct collector *c, unsigned stats)
{
	pthread_mutex_lock(&c->lock);
	c->stats = stats_mask(stats);
	pthread_mutex_unlock(&c->lock);
}

static unsigned
stats_for_metric(enum policy_metric m)
{
	switch (m) {
	case POLICY_METRIC_CPU:
		return VIR_DOMAIN_STATS_CPU_TOTAL;
	case POLICY_METRIC_MEMORY:
		return VIR_DOMAIN_STATS_BALLOON;
	case POLICY_METRIC_DISK_IOPS:
	case POLICY_METRIC_DISK_BYTES:
		return VIR_DOMAIN_STATS_BLOCK;
	case POLICY_METRIC_NET_BYTES:
		return VIR_DOMAIN_STATS_INTERFACE;
	case POLICY_METRIC_LAST:
		break;
	}
	return 0;
}

unsigned
collect_stats_needed(const struct config *cfg)
{
	unsigned stats = VIR_DOMAIN_STATS_STATE;

	if (cfg->daemon.metrics.influxdb.present)
		return COLLECT_STATS;
	for (unsigned g = 0; g < cfg->n_groups; g++) {
		const struct policy_params *p = &cfg->groups[g].policy;

		for (int m = 0; m < POLICY_METRIC_LAST; m++)
			if (p->target[m] > 0)
				stats |= stats_for_metric((enum policy_metric)m);
		for (unsigned i = 0; i < p->n_steps; i++)
			stats |= stats_for_metric(p->steps[i].metric);
	}
	return stats;
}

unsigned
collect_stats_metrics(unsigned stats)
{
	unsigned groups = stats_mask(stats), m = 0;

	if (groups & VIR_DOMAIN_STATS_CPU_TOTAL)
		m |= 1u << RATES_CPU;
	if (groups & VIR_DOMAIN_STATS_BALLOON)
		m |= 1u << RATES_MEM;
	if (groups & VIR_DOMAIN_STATS_BLOCK)
		m |= 1u << RATES_DISK_RD_BPS | 1u << RATES_DISK_WR_BPS |
		     1u << RATES_DISK_RD_IOPS | 1u << RATES_DISK_WR_IOPS;
	if (groups & VIR_DOMAIN_STATS_INTERFACE)
		m |= 1u << RATES_NET_RX_BPS | 1u << RATES_NET_TX_BPS;
	return m;
}

struct collector *
collector_new(const struct collect_opts *opts)
{
	struct collector *c = xcalloc(1, sizeof(*c));

	if (opts)
		c->opts = *opts;
	else
		collect_opts_defaults(&c->opts);
	if (c->opts.name_prefix)
		c->name_prefix = xstrdup(c->opts.name_prefix);
	c->opts.name_prefix = c->name_prefix;
	if (c->opts.owner)
		c->owner = xstrdup(c->opts.owner);
	c->opts.owner = c->owner;
	if (c->opts.capacity_period_ms < 0)
		c->opts.capacity_period_ms = 0;
	c->stats = stats_mask(c->opts.stats);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->done, NULL);
	xmlInitParser();
	return c;
}

void
collector_add_host(struct collector *c, struct host *h)
{
	struct chost *ch = xcalloc(1, sizeof(*ch));

	ch->c = c;
	ch->h = h;
	pthread_mutex_init(&ch->lock, NULL);
	pthread_cond_init(&ch->cond, NULL);
	ch->work = xcalloc(1, sizeof(*ch->work));
	ch->pub = xcalloc(1, sizeof(*ch->pub));
	host_set_domain_event_cb(h, on_domain_event, ch);
	if (c->opts.threads) {
		if (pthread_create(&ch->thread, NULL, worker_main, ch) != 0)
			fatal("cannot start a collector thread");
		ch->thread_started = true;
	}
	c->hosts = xreallocarray(c->hosts, c->n_hosts + 1, sizeof(*c->hosts));
	c->hosts[c->n_hosts++] = ch;
}

/* A host that is down gets a result saying so (ok false, no instances),
 * unless a round is running or a result is still waiting to be taken. */
static void
publish_down(struct chost *ch, int64_t now_ms)
{
	pthread_mutex_lock(&ch->lock);
	if (!ch->busy && !ch->pub_new) {
		struct result *r = ch->pub;

		result_reset(r);
		r->pub.host = ch->h;
		r->pub.ok = false;
		r->pub.t_ms = now_ms;
		r->pub.rounds = ch->rounds;
		r->pub.errors = ch->errors;
		r->pub.calls_total = ch->calls_total;
		result_finish(r);
		ch->pub_new = true;
	}
	pthread_mutex_unlock(&ch->lock);
}

void
collect_tick(struct collector *c, int64_t now_ms)
{
	for (size_t i = 0; i < c->n_hosts; i++) {
		struct chost *ch = c->hosts[i];
		bool up = host_tick(ch->h, now_ms);

		if (!up) {
			publish_down(ch, now_ms);
			continue;
		}
		if (!c->opts.threads) {
			collect_round(ch, now_ms);
			continue;
		}
		pthread_mutex_lock(&ch->lock);
		if (!ch->busy) {
			ch->busy = true;
			ch->kick = true;
			ch->kick_ms = now_ms;
			pthread_cond_signal(&ch->cond);
		}
		pthread_mutex_unlock(&ch->lock);
	}
}

bool
collect_wait(struct collector *c, int64_t timeout_ms)
{
	int64_t end = util_now_ms() + timeout_ms;
	bool all = false;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		int64_t left;
		struct timespec ts;

		all = true;
		for (size_t i = 0; i < c->n_hosts && all; i++) {
			pthread_mutex_lock(&c->hosts[i]->lock);
			all = !c->hosts[i]->busy;
			pthread_mutex_unlock(&c->hosts[i]->lock);
		}
		left = end - util_now_ms();
		if (all || left <= 0)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		if (left > 100)
			left = 100; /* re-check even if a signal is missed */
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->done, &c->lock, &ts);
	}
	pthread_mutex_unlock(&c->lock);
	return all;
}

void
collect_take(struct collector *c,
	     void (*fn)(const struct collect_host_result *r, void *opaque),
	     void *opaque)
{
	for (size_t i = 0; i < c->n_hosts; i++) {
		struct chost *ch = c->hosts[i];

		pthread_mutex_lock(&ch->lock);
		if (ch->pub_new) {
			ch->pub_new = false;
			fn(&ch->pub->pub, opaque);
		}
		pthread_mutex_unlock(&ch->lock);
	}
}

unsigned long
collect_total_calls(struct collector *c)
{
	unsigned long n;

	pthread_mutex_lock(&c->lock);
	n = c->total_calls;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void
collector_free(struct collector *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_hosts; i++) {
		struct chost *ch = c->hosts[i];

		host_set_domain_event_cb(ch->h, NULL, NULL);
		if (ch->thread_started) {
			pthread_mutex_lock(&ch->lock);
			ch->stop = true;
			pthread_cond_signal(&ch->cond);
			pthread_mutex_unlock(&ch->lock);
			pthread_join(ch->thread, NULL);
		}
		cache_release(&ch->cache);
		result_release(ch->work);
		result_release(ch->pub);
		free(ch->work);
		free(ch->pub);
		free(ch->inval);
		pthread_mutex_destroy(&ch->lock);
		pthread_cond_destroy(&ch->cond);
		free(ch);
	}
	free(c->hosts);
	free(c->name_prefix);
	free(c->owner);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->done);
	free(c);
}

int
collect_set_stats_period(struct host *h, const unsigned char uuid[VIR_UUID_BUFLEN],
			 int period_s)
{
	virConnectPtr conn = host_conn(h);
	virDomainPtr dom = NULL;
	int rc = -1;

	if (!conn) {
		err_set("%s: not connected", host_name(h));
		return -1;
	}
	dom = virDomainLookupByUUID(conn, uuid);
	if (!dom) {
		err_set("%s: no such domain: %s", host_name(h),
			virGetLastErrorMessage());
		goto cleanup;
	}
	if (virDomainSetMemoryStatsPeriod(dom, period_s,
					  VIR_DOMAIN_AFFECT_LIVE) < 0) {
		err_set("%s: cannot set the memory stats period: %s",
			host_name(h), virGetLastErrorMessage());
		goto cleanup;
	}
	rc = 0;
cleanup:
	if (dom)
		virDomainFree(dom);
	virConnectClose(conn);
	return rc;
}
