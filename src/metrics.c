/*
 * metrics.c: the /metrics registry and its Prometheus text rendering.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

struct minstance {
	char *group, *id;
	struct rates rates;
};

struct mhost {
	char *name;
	bool up;
	struct collect_capacity cap;
	bool have_cap;
	unsigned long rounds, errors, calls;
	double duration_s;
	struct minstance *inst;
	size_t n_inst;
};

struct mgroup {
	char *name;
	int desired, current, ready;
	bool have_agg;
	struct rates_group agg;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct mhost *hosts;
static size_t n_hosts;
static struct mgroup *groups;
static size_t n_groups;
static double tick_s;
static unsigned long ticks;

static struct mhost *
host_get(const char *name)
{
	for (size_t i = 0; i < n_hosts; i++)
		if (strcmp(hosts[i].name, name) == 0)
			return &hosts[i];
	hosts = xreallocarray(hosts, n_hosts + 1, sizeof(*hosts));
	memset(&hosts[n_hosts], 0, sizeof(*hosts));
	hosts[n_hosts].name = xstrdup(name);
	return &hosts[n_hosts++];
}

static void
host_clear_instances(struct mhost *h)
{
	for (size_t i = 0; i < h->n_inst; i++) {
		free(h->inst[i].group);
		free(h->inst[i].id);
	}
	free(h->inst);
	h->inst = NULL;
	h->n_inst = 0;
}

void
metrics_update_host(const struct collect_host_result *r)
{
	struct mhost *h;

	pthread_mutex_lock(&lock);
	h = host_get(host_name(r->host));
	h->up = r->ok;
	h->rounds = r->rounds;
	h->errors = r->errors;
	/* Absolute counts only: the daemon hands each result to
	 * metrics_update_host() through sink_feed() and directly, and
	 * "h->calls += r->calls" counted every call twice. */
	h->calls = r->calls_total;
	h->duration_s = (double)r->duration_us / 1e6;
	if (r->ok) {
		h->cap = r->cap;
		h->have_cap = true;
		host_clear_instances(h);
		h->inst = xcalloc(r->n_inst ? r->n_inst : 1, sizeof(*h->inst));
		for (size_t i = 0; i < r->n_inst; i++) {
			h->inst[i].group = xstrdup(r->inst[i].group);
			h->inst[i].id = xstrdup(r->inst[i].id);
			h->inst[i].rates = r->inst[i].rates;
		}
		h->n_inst = r->n_inst;
	}
	pthread_mutex_unlock(&lock);
}

void
metrics_host_down(const char *host)
{
	pthread_mutex_lock(&lock);
	host_get(host)->up = false;
	pthread_mutex_unlock(&lock);
}

void
metrics_set_group(const char *group, int desired, int current, int ready,
		  const struct rates_group *agg)
{
	struct mgroup *g = NULL;

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_groups && !g; i++)
		if (strcmp(groups[i].name, group) == 0)
			g = &groups[i];
	if (!g) {
		groups = xreallocarray(groups, n_groups + 1, sizeof(*groups));
		g = &groups[n_groups++];
		memset(g, 0, sizeof(*g));
		g->name = xstrdup(group);
	}
	g->desired = desired;
	g->current = current;
	g->ready = ready;
	g->have_agg = agg != NULL;
	if (agg)
		g->agg = *agg;
	pthread_mutex_unlock(&lock);
}

void
metrics_remove_group(const char *group)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_groups; i++) {
		if (strcmp(groups[i].name, group) != 0)
			continue;
		free(groups[i].name);
		groups[i] = groups[--n_groups];
		break;
	}
	pthread_mutex_unlock(&lock);
}

void
metrics_tick(double seconds)
{
	pthread_mutex_lock(&lock);
	tick_s = seconds;
	ticks++;
	pthread_mutex_unlock(&lock);
}

void
metrics_reset(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_hosts; i++) {
		host_clear_instances(&hosts[i]);
		free(hosts[i].name);
	}
	free(hosts);
	hosts = NULL;
	n_hosts = 0;
	for (size_t i = 0; i < n_groups; i++)
		free(groups[i].name);
	free(groups);
	groups = NULL;
	n_groups = 0;
	tick_s = 0;
	ticks = 0;
	pthread_mutex_unlock(&lock);
}

/* ---- rendering ------------------------------------------------------------ */

/* A label value: backslash, double quote and newline escaped. */
static void
label(struct strbuf *sb, const char *key, const char *value, bool first)
{
	if (!first)
		strbuf_addc(sb, ',');
	strbuf_adds(sb, key);
	strbuf_adds(sb, "=\"");
	for (const char *p = value ? value : ""; *p; p++) {
		if (*p == '\\' || *p == '"')
			strbuf_addc(sb, '\\');
		if (*p == '\n')
			strbuf_adds(sb, "\\n");
		else
			strbuf_addc(sb, *p);
	}
	strbuf_addc(sb, '"');
}

static void
value(struct strbuf *sb, double v)
{
	if (isnan(v))
		strbuf_adds(sb, " NaN\n");
	else if (isinf(v))
		strbuf_adds(sb, v > 0 ? " +Inf\n" : " -Inf\n");
	else
		strbuf_addf(sb, " %.10g\n", v);
}

static void
family(struct strbuf *sb, const char *name, const char *type, const char *help)
{
	strbuf_addf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const struct {
	enum rates_metric m;
	const char *name, *help;
} instance_families[] = {
	{RATES_CPU, "va_instance_cpu_percent",
	 "CPU time used, percent of the instance's allotted vCPU time."},
	{RATES_MEM, "va_instance_memory_percent",
	 "Guest memory in use, percent (balloon statistics)."},
	{RATES_DISK_RD_BPS, "va_instance_disk_read_bytes_per_second",
	 "Bytes read from all disks per second."},
	{RATES_DISK_WR_BPS, "va_instance_disk_write_bytes_per_second",
	 "Bytes written to all disks per second."},
	{RATES_DISK_RD_IOPS, "va_instance_disk_read_iops",
	 "Read operations on all disks per second."},
	{RATES_DISK_WR_IOPS, "va_instance_disk_write_iops",
	 "Write operations on all disks per second."},
	{RATES_NET_RX_BPS, "va_instance_net_rx_bytes_per_second",
	 "Bytes received on all interfaces per second."},
	{RATES_NET_TX_BPS, "va_instance_net_tx_bytes_per_second",
	 "Bytes sent on all interfaces per second."},
};

static void
render_instances(struct strbuf *sb)
{
	for (size_t f = 0; f < ARRAY_SIZE(instance_families); f++) {
		enum rates_metric m = instance_families[f].m;
		bool any = false;

		for (size_t h = 0; h < n_hosts; h++) {
			for (size_t i = 0; i < hosts[h].n_inst; i++) {
				const struct minstance *in = &hosts[h].inst[i];

				if (!rates_has(&in->rates, m))
					continue;
				if (!any)
					family(sb, instance_families[f].name, "gauge",
					       instance_families[f].help);
				any = true;
				strbuf_adds(sb, instance_families[f].name);
				strbuf_addc(sb, '{');
				label(sb, "group", in->group, true);
				label(sb, "host", hosts[h].name, false);
				label(sb, "instance", in->id, false);
				strbuf_addc(sb, '}');
				value(sb, in->rates.v[m]);
			}
		}
	}
}

static void
render_groups(struct strbuf *sb)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} sizes[] = {
		{"va_group_desired", "Instances the group should have.",
		 offsetof(struct mgroup, desired)},
		{"va_group_current", "Instances the group has (not gone).",
		 offsetof(struct mgroup, current)},
		{"va_group_ready", "Instances that checked in and are healthy.",
		 offsetof(struct mgroup, ready)},
	};
	bool any = false;

	if (!n_groups)
		return;
	for (size_t f = 0; f < ARRAY_SIZE(sizes); f++) {
		family(sb, sizes[f].name, "gauge", sizes[f].help);
		for (size_t g = 0; g < n_groups; g++) {
			int v;

			memcpy(&v, (const char *)&groups[g] + sizes[f].off, sizeof(v));
			strbuf_adds(sb, sizes[f].name);
			strbuf_addc(sb, '{');
			label(sb, "group", groups[g].name, true);
			strbuf_addc(sb, '}');
			value(sb, v);
		}
	}
	for (size_t g = 0; g < n_groups; g++) {
		for (int pm = 0; pm < POLICY_METRIC_LAST && groups[g].have_agg; pm++) {
			for (int stat = 0; stat < 2; stat++) {
				double v;

				if (!rates_group_get(&groups[g].agg, pm, stat == 1, &v))
					continue;
				if (!any)
					family(sb, "va_group_metric", "gauge",
					       "The decision engine's input: the group's "
					       "mean or max over its window.");
				any = true;
				strbuf_adds(sb, "va_group_metric{");
				label(sb, "group", groups[g].name, true);
				label(sb, "metric", policy_metric_name(pm), false);
				label(sb, "stat", stat ? "max" : "mean", false);
				strbuf_addc(sb, '}');
				value(sb, v);
			}
		}
	}
}

static void
host_line(struct strbuf *sb, const char *name, const char *host, double v)
{
	strbuf_adds(sb, name);
	strbuf_addc(sb, '{');
	label(sb, "host", host, true);
	strbuf_addc(sb, '}');
	value(sb, v);
}

static void
render_hosts(struct strbuf *sb)
{
	if (!n_hosts)
		return;
	family(sb, "va_host_up", "gauge",
	       "1 when the last collection from the host succeeded.");
	for (size_t h = 0; h < n_hosts; h++)
		host_line(sb, "va_host_up", hosts[h].name, hosts[h].up);
	family(sb, "va_host_cpus", "gauge", "Logical CPUs of the host.");
	for (size_t h = 0; h < n_hosts; h++)
		if (hosts[h].have_cap &&
		    hosts[h].cap.present & (1u << COLLECT_CAP_NODEINFO))
			host_line(sb, "va_host_cpus", hosts[h].name, hosts[h].cap.cpus);
	family(sb, "va_host_memory_bytes", "gauge", "Physical memory of the host.");
	for (size_t h = 0; h < n_hosts; h++)
		if (hosts[h].have_cap &&
		    hosts[h].cap.present & (1u << COLLECT_CAP_NODEINFO))
			host_line(sb, "va_host_memory_bytes", hosts[h].name,
				  (double)hosts[h].cap.mem_kib * 1024);
	family(sb, "va_host_free_memory_bytes", "gauge",
	       "Free plus reclaimable (buffers, cache) memory of the host.");
	for (size_t h = 0; h < n_hosts; h++)
		if (hosts[h].have_cap &&
		    hosts[h].cap.present & (1u << COLLECT_CAP_FREE))
			host_line(sb, "va_host_free_memory_bytes", hosts[h].name,
				  (double)hosts[h].cap.free_kib * 1024);
	family(sb, "va_host_cpu_utilization_percent", "gauge",
	       "Busy share of all host CPUs over the last capacity period.");
	for (size_t h = 0; h < n_hosts; h++)
		if (hosts[h].have_cap &&
		    hosts[h].cap.present & (1u << COLLECT_CAP_CPU_UTIL))
			host_line(sb, "va_host_cpu_utilization_percent", hosts[h].name,
				  hosts[h].cap.cpu_util_pct);
	family(sb, "va_host_domains", "gauge", "Active domains on the host (all).");
	for (size_t h = 0; h < n_hosts; h++)
		if (hosts[h].have_cap)
			host_line(sb, "va_host_domains", hosts[h].name,
				  hosts[h].cap.domains);
	family(sb, "va_host_vcpus_allocated", "gauge",
	       "vCPUs of the active domains on the host.");
	for (size_t h = 0; h < n_hosts; h++)
		if (hosts[h].have_cap)
			host_line(sb, "va_host_vcpus_allocated", hosts[h].name,
				  hosts[h].cap.vcpus_alloc);
	family(sb, "va_host_memory_allocated_bytes", "gauge",
	       "Memory of the active domains on the host.");
	for (size_t h = 0; h < n_hosts; h++)
		if (hosts[h].have_cap)
			host_line(sb, "va_host_memory_allocated_bytes", hosts[h].name,
				  (double)hosts[h].cap.mem_alloc_kib * 1024);
	family(sb, "va_host_collect_rounds_total", "counter",
	       "Successful collection rounds.");
	for (size_t h = 0; h < n_hosts; h++)
		host_line(sb, "va_host_collect_rounds_total", hosts[h].name,
			  (double)hosts[h].rounds);
	family(sb, "va_host_collect_errors_total", "counter",
	       "Failed collection rounds.");
	for (size_t h = 0; h < n_hosts; h++)
		host_line(sb, "va_host_collect_errors_total", hosts[h].name,
			  (double)hosts[h].errors);
	family(sb, "va_host_libvirt_calls_total", "counter",
	       "libvirt calls made by the collector.");
	for (size_t h = 0; h < n_hosts; h++)
		host_line(sb, "va_host_libvirt_calls_total", hosts[h].name,
			  (double)hosts[h].calls);
	family(sb, "va_host_collect_duration_seconds", "gauge",
	       "Wall time of the last collection round.");
	for (size_t h = 0; h < n_hosts; h++)
		host_line(sb, "va_host_collect_duration_seconds", hosts[h].name,
			  hosts[h].duration_s);
}

void
metrics_render_prometheus(struct strbuf *out)
{
	pthread_mutex_lock(&lock);
	render_instances(out);
	render_groups(out);
	render_hosts(out);
	family(out, "va_tick_duration_seconds", "gauge",
	       "Wall time of the daemon's last tick.");
	strbuf_adds(out, "va_tick_duration_seconds");
	value(out, tick_s);
	family(out, "va_ticks_total", "counter", "Ticks of the daemon's loop.");
	strbuf_addf(out, "va_ticks_total %lu\n", ticks);
	pthread_mutex_unlock(&lock);
}
