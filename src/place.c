/*
 * place.c: see place.h. Built-in strategies and plugins share one table
 * of functions (struct place_ops); limits and spread are applied here,
 * before any strategy sees the hosts.
 */
#include "place.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "domxml.h"
#include "log.h"

LOG_TAG("place");

#define GIB (1024.0 * 1024.0 * 1024.0)

struct place_strategy;

/*
 * A strategy: choose among hosts[0..n), all acceptable (limits and spread
 * already applied, n >= 1). Returns an index, or -1 with err_set() when it
 * refuses (PLACE_FULL), or -2 with err_set() on its own failure.
 */
struct place_ops {
	const char *name;
	enum place_kind kind;
	long (*choose)(struct place_strategy *s,
		       const struct va_placement_request *req,
		       const struct va_placement_host *hosts, size_t n);
};

struct place_strategy {
	const struct place_ops *ops;
	bool spread;
	char *last;           /* round-robin: name of the host chosen last */
	/* plugin */
	void *dl;
	const struct va_placement_plugin *plugin;
	void *plugin_state;
	char *plugin_name;
};

/*
 * Round-robin keeps its cursor (the name of the host chosen last) in the
 * strategy; place_choose() resumes after that host's position in the full
 * host list, so a host filtered out (full, down) does not reset the cycle.
 * Without a cursor, the first acceptable host.
 */
static long
rr_choose(struct place_strategy *s, const struct va_placement_request *req,
	  const struct va_placement_host *hosts, size_t n)
{
	return 0;
}

static long
ff_choose(struct place_strategy *s, const struct va_placement_request *req,
	  const struct va_placement_host *hosts, size_t n)
{
	return 0;
}

double
place_most_free_score(const struct va_placement_host *h,
		      const struct va_placement_request *req)
{
	double mem = 0, cpu, vcpu = 0;
	double ratio = h->cpu_overcommit > 1 ? h->cpu_overcommit : 1;

	if (h->mem_total > 0) {
		double left = (double)h->mem_free - (double)h->reserved_memory -
			      (double)req->memory;
		mem = left / (double)h->mem_total;
	}
	if (mem < 0)
		mem = 0;
	if (mem > 1)
		mem = 1;
	cpu = h->cpu_use < 0 ? 0.5 : 1.0 - h->cpu_use;
	if (cpu < 0)
		cpu = 0;
	if (cpu > 1)
		cpu = 1;
	if (h->cpus > 0)
		vcpu = 1.0 - ((double)h->vcpus_alloc + req->vcpus) /
				     ((double)h->cpus * ratio);
	if (vcpu < 0)
		vcpu = 0;
	if (vcpu > 1)
		vcpu = 1;
	return 0.5 * mem + 0.25 * cpu + 0.25 * vcpu;
}

static long
mf_choose(struct place_strategy *s, const struct va_placement_request *req,
	  const struct va_placement_host *hosts, size_t n)
{
	long best = 0;
	double best_score = place_most_free_score(&hosts[0], req);

	for (size_t i = 1; i < n; i++) {
		double sc = place_most_free_score(&hosts[i], req);

		if (sc > best_score + 1e-9 ||
		    (fabs(sc - best_score) <= 1e-9 &&
		     hosts[i].group_instances < hosts[best].group_instances)) {
			best = (long)i;
			best_score = sc;
		}
	}
	return best;
}

static long
plugin_choose(struct place_strategy *s, const struct va_placement_request *req,
	      const struct va_placement_host *hosts, size_t n)
{
	char err[512] = "";
	int rc = s->plugin->choose(s->plugin_state, req, hosts, n, err,
				   sizeof(err));

	err[sizeof(err) - 1] = '\0';
	if (rc == -1) {
		err_set("plugin %s refused: %s", s->plugin_name,
			err[0] ? err : "no reason given");
		return -1;
	}
	if (rc < 0 || (size_t)rc >= n) {
		err_set("plugin %s returned host index %d, outside 0..%zu",
			s->plugin_name, rc, n - 1);
		return -2;
	}
	return rc;
}

static const struct place_ops builtin_ops[] = {
	{"round-robin", PLACE_ROUND_ROBIN, rr_choose},
	{"most-free", PLACE_MOST_FREE, mf_choose},
	{"fill-first", PLACE_FILL_FIRST, ff_choose},
};
static const struct place_ops plugin_ops = {"plugin", PLACE_PLUGIN,
					    plugin_choose};

static int
plugin_load(struct place_strategy *s, const char *path,
	    const struct va_placement_option *options, size_t n_options)
{
	const struct va_placement_plugin *p;
	char err[512] = "";

	if (path[0] != '/') {
		err_set("placement plugin path must be absolute: '%s'", path);
		return -1;
	}
	s->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!s->dl) {
		const char *e = dlerror();

		err_set("cannot load placement plugin %s: %s", path,
			e ? e : "unknown dlopen error");
		return -1;
	}
	p = dlsym(s->dl, VA_PLACEMENT_PLUGIN_SYMBOL);
	if (!p) {
		err_set("placement plugin %s has no symbol '%s' (see "
			"placement_plugin.h)", path, VA_PLACEMENT_PLUGIN_SYMBOL);
		return -1;
	}
	if (p->abi_version != VA_PLACEMENT_ABI_VERSION) {
		err_set("placement plugin %s was built for placement ABI version "
			"%u, this virt-autoscaler supports version %u: rebuild it "
			"against this placement_plugin.h", path, p->abi_version,
			VA_PLACEMENT_ABI_VERSION);
		return -1;
	}
	if (!p->choose) {
		err_set("placement plugin %s has no choose callback", path);
		return -1;
	}
	s->plugin = p;
	if (p->name && p->name[0]) {
		s->plugin_name = xstrdup(p->name);
	} else {
		const char *slash = strrchr(path, '/');

		s->plugin_name = xstrdup(slash + 1);
	}
	if (p->init) {
		int rc = p->init(options, n_options, &s->plugin_state, err,
				 sizeof(err));

		err[sizeof(err) - 1] = '\0';
		if (rc != 0) {
			s->plugin = NULL; /* init failed: do not call free */
			err_set("placement plugin %s refused its options: %s",
				s->plugin_name, err[0] ? err : "no reason given");
			return -1;
		}
	}
	return 0;
}

struct place_strategy *
place_strategy_new(const char *spec, bool spread,
		   const struct va_placement_option *options, size_t n_options)
{
	struct place_strategy *s = xcalloc(1, sizeof(*s));

	s->spread = spread;
	if (!spec) {
		err_set("no placement strategy given");
		goto fail;
	}
	if (strncmp(spec, "plugin:", 7) == 0) {
		s->ops = &plugin_ops;
		if (plugin_load(s, spec + 7, options, n_options) < 0)
			goto fail;
		return s;
	}
	for (size_t i = 0; i < ARRAY_SIZE(builtin_ops); i++) {
		if (strcmp(spec, builtin_ops[i].name) == 0) {
			s->ops = &builtin_ops[i];
			return s;
		}
	}
	err_set("unknown placement strategy '%s' (round-robin, most-free, "
		"fill-first or plugin:/path/to/plugin.so)", spec);
fail:
	place_strategy_free(s);
	return NULL;
}

void
place_strategy_free(struct place_strategy *s)
{
	if (!s)
		return;
	if (s->plugin && s->plugin->free)
		s->plugin->free(s->plugin_state);
	if (s->dl)
		dlclose(s->dl);
	free(s->plugin_name);
	free(s->last);
	free(s);
}

enum place_kind
place_strategy_kind(const struct place_strategy *s)
{
	return s->ops->kind;
}

const char *
place_strategy_name(const struct place_strategy *s)
{
	return s->plugin_name ? s->plugin_name : s->ops->name;
}

static void
add_gib(struct strbuf *sb, uint64_t bytes)
{
	strbuf_addf(sb, "%.4g", (double)bytes / GIB);
}

bool
place_host_check(const struct va_placement_host *h,
		 const struct va_placement_request *req, struct strbuf *why)
{
	struct strbuf tmp = STRBUF_INIT;
	struct strbuf *w = why ? why : &tmp;
	bool ok = false;

	if (!h->up) {
		strbuf_adds(w, "down");
		if (h->down_reason && h->down_reason[0])
			strbuf_addf(w, " (%s)", h->down_reason);
		goto cleanup;
	}
	if (h->cpus == 0 || h->mem_total == 0) {
		strbuf_adds(w, "capacity not measured yet");
		goto cleanup;
	}
	if (h->max_instances > 0 && h->instances + 1 > h->max_instances) {
		strbuf_addf(w, "max_instances %u/%u reached", h->instances,
			    h->max_instances);
		goto cleanup;
	}
	if (h->cpu_overcommit > 0) {
		double allowed = (double)h->cpus * h->cpu_overcommit;

		if ((double)h->vcpus_alloc + req->vcpus > allowed + 1e-9) {
			strbuf_addf(w, "vCPUs %u/%.4g allocated (%u CPUs x %.4g "
				       "overcommit), %u requested",
				    h->vcpus_alloc, allowed, h->cpus,
				    h->cpu_overcommit, req->vcpus);
			goto cleanup;
		}
	}
	if (h->mem_overcommit > 0) {
		double usable = h->mem_total > h->reserved_memory
					? (double)(h->mem_total - h->reserved_memory)
					: 0;
		double allowed = usable * h->mem_overcommit;

		if ((double)h->mem_alloc + (double)req->memory > allowed) {
			strbuf_adds(w, "memory ");
			add_gib(w, h->mem_alloc);
			strbuf_adds(w, "/");
			add_gib(w, (uint64_t)allowed);
			strbuf_adds(w, " GiB committed");
			if (h->reserved_memory) {
				strbuf_adds(w, " with ");
				add_gib(w, h->reserved_memory);
				strbuf_adds(w, " GiB reserved");
			}
			if (h->mem_overcommit != 1.0)
				strbuf_addf(w, " (x%.4g overcommit)",
					    h->mem_overcommit);
			strbuf_adds(w, ", ");
			add_gib(w, req->memory);
			strbuf_adds(w, " GiB requested");
			goto cleanup;
		}
	}
	if (h->reserved_memory > 0 && h->mem_free < h->reserved_memory) {
		strbuf_adds(w, "free memory ");
		add_gib(w, h->mem_free);
		strbuf_adds(w, " GiB below the ");
		add_gib(w, h->reserved_memory);
		strbuf_adds(w, " GiB reserved");
		goto cleanup;
	}
	ok = true;
cleanup:
	strbuf_release(&tmp);
	return ok;
}

void
place_host_commit(struct va_placement_host *h,
		  const struct va_placement_request *req)
{
	h->vcpus_alloc += req->vcpus;
	h->mem_alloc += req->memory;
	h->mem_free = h->mem_free > req->memory ? h->mem_free - req->memory : 0;
	h->instances++;
	h->group_instances++;
}

enum place_result
place_choose(struct place_strategy *s, const struct va_placement_request *req,
	     const struct va_placement_host *hosts, size_t n, size_t *chosen)
{
	struct strbuf why = STRBUF_INIT;
	struct va_placement_host *ok = NULL;
	size_t *map = NULL, n_ok = 0, n_keep = 0;
	uint32_t min_group = UINT32_MAX;
	enum place_result res = PLACE_ERROR;
	long pick;

	if (n == 0) {
		err_set("no host can take a VM of group %s: the group has no "
			"hosts", req->group ? req->group : "?");
		res = PLACE_FULL;
		goto cleanup;
	}
	ok = xcalloc(n, sizeof(*ok));
	map = xcalloc(n, sizeof(*map));
	for (size_t i = 0; i < n; i++) {
		struct strbuf r = STRBUF_INIT;

		if (place_host_check(&hosts[i], req, &r)) {
			ok[n_ok] = hosts[i];
			map[n_ok++] = i;
		} else {
			if (why.len)
				strbuf_adds(&why, "; ");
			strbuf_addf(&why, "%s: %s", hosts[i].name, strbuf_str(&r));
		}
		strbuf_release(&r);
	}
	if (n_ok == 0) {
		err_set("no host can take a VM of group %s (%u vCPUs, %.4g GiB): "
			"%s", req->group ? req->group : "?", req->vcpus,
			(double)req->memory / GIB, strbuf_str(&why));
		res = PLACE_FULL;
		goto cleanup;
	}

	/* Spread: keep only the hosts with the fewest VMs of the group. */
	if (s->spread) {
		for (size_t i = 0; i < n_ok; i++)
			if (ok[i].group_instances < min_group)
				min_group = ok[i].group_instances;
		for (size_t i = 0; i < n_ok; i++) {
			if (ok[i].group_instances == min_group) {
				ok[n_keep] = ok[i];
				map[n_keep++] = map[i];
			}
		}
		n_ok = n_keep;
	}

	/*
	 * Round-robin: rotate so the subset starts after the last chosen
	 * host's position in the caller's full order, even when that host is
	 * not in the subset any more.
	 */
	if (s->ops->kind == PLACE_ROUND_ROBIN && s->last) {
		size_t last_pos = n; /* not found: start at the beginning */

		for (size_t i = 0; i < n; i++) {
			if (strcmp(hosts[i].name, s->last) == 0) {
				last_pos = i;
				break;
			}
		}
		pick = 0;
		if (last_pos < n) {
			for (size_t i = 0; i < n_ok; i++) {
				if (map[i] > last_pos) {
					pick = (long)i;
					break;
				}
			}
		}
	} else {
		pick = s->ops->choose(s, req, ok, n_ok);
	}
	if (pick == -1) {
		err_prefix("no host can take a VM of group %s",
			   req->group ? req->group : "?");
		res = PLACE_FULL;
		goto cleanup;
	}
	if (pick < 0)
		goto cleanup;
	*chosen = map[pick];
	if (s->ops->kind == PLACE_ROUND_ROBIN) {
		free(s->last);
		s->last = xstrdup(hosts[*chosen].name);
	}
	log_debug("group %s: %s chose %s", req->group ? req->group : "?",
		  place_strategy_name(s), hosts[*chosen].name);
	res = PLACE_OK;
cleanup:
	strbuf_release(&why);
	free(ok);
	free(map);
	return res;
}

int
place_host_measure(virConnectPtr conn, const char *group,
		   struct va_placement_host *h)
{
	virNodeInfo info;
	virDomainPtr *doms = NULL;
	unsigned long long freemem;
	int n = -1, rc = -1;

	if (virNodeGetInfo(conn, &info) < 0) {
		err_set("virNodeGetInfo: %s", virGetLastErrorMessage());
		goto cleanup;
	}
	freemem = virNodeGetFreeMemory(conn);
	if (freemem == 0) {
		err_set("virNodeGetFreeMemory: %s", virGetLastErrorMessage());
		goto cleanup;
	}
	n = virConnectListAllDomains(conn, &doms, 0);
	if (n < 0) {
		err_set("listing domains: %s", virGetLastErrorMessage());
		goto cleanup;
	}
	h->cpus = info.cpus;
	h->mem_total = (uint64_t)info.memory * 1024;
	h->mem_free = freemem;
	h->vcpus_alloc = 0;
	h->mem_alloc = 0;
	h->instances = 0;
	h->group_instances = 0;
	for (int i = 0; i < n; i++) {
		virDomainInfo di;
		char *meta;

		/* a shut-off domain commits nothing on the host */
		if (virDomainGetInfo(doms[i], &di) == 0 &&
		    di.state != VIR_DOMAIN_SHUTOFF) {
			h->vcpus_alloc += di.nrVirtCpu;
			h->mem_alloc += (uint64_t)di.maxMem * 1024;
		}
		meta = virDomainGetMetadata(doms[i], VIR_DOMAIN_METADATA_ELEMENT,
					    DOMXML_NS_URI,
					    VIR_DOMAIN_AFFECT_CONFIG);
		if (meta) {
			struct domxml_meta m;

			if (domxml_meta_parse(meta, strlen(meta), &m) == 0) {
				h->instances++;
				if (group && strcmp(m.group, group) == 0)
					h->group_instances++;
			}
			free(meta);
		}
	}
	h->up = 1;
	h->down_reason = NULL;
	rc = 0;
cleanup:
	for (int i = 0; i < n; i++)
		virDomainFree(doms[i]);
	free(doms);
	return rc;
}
