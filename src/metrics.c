/*
 * metrics.c: the /metrics registry and its Prometheus text rendering.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "va_config.h"

struct minstance {
	char *group, *id;
	struct rates rates;
	struct rates_sample sample; /* the raw counters */
};

struct mhost {
	char *name;
	bool up;
	struct collect_capacity cap;
	bool have_cap;
	unsigned long rounds, errors, calls;
	double duration_s;
	struct minstance *inst; /* group and id point into strs */
	size_t n_inst, a_inst;
	char *strs;             /* the instances' strings, reused each round */
	size_t a_strs;
};

struct mgroup {
	char *name;
	int desired, current, ready;
	int warming, warm;                 /* the warm pool */
	int refresh_remaining;             /* instance refresh: still to replace */
	double data_age_s;                 /* at the last decision; < 0: none */
	bool have_agg;
	struct rates_group agg;
	double target[POLICY_METRIC_LAST]; /* the policy's; 0: not tracked */
};

/* Upper bounds (seconds) of va_instance_ready_seconds' buckets: a guest
 * that boots and checks in takes from seconds to a few minutes. */
static const double ready_buckets[] = {5, 10, 15, 20, 30, 45, 60, 90, 120,
				       180, 300, 600};
#define N_READY_BUCKETS (sizeof(ready_buckets) / sizeof(ready_buckets[0]))
/* Upper bounds (seconds) of va_tick_seconds' buckets: a turn of the loop
 * takes well under 10 ms when nothing is due and a few ms more per
 * thousand instances when a round is taken; above 100 ms it is a stall
 * that check-ins and /metrics notice. */
static const double tick_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025,
				      0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_TICK_BUCKETS (sizeof(tick_buckets) / sizeof(tick_buckets[0]))

/* Per group: counters and the time-to-ready histogram. They live apart
 * from struct mgroup because the HTTP threads observe readiness of a
 * group the loop may not have published yet. */
struct mcount {
	char *group;
	unsigned long up, down;              /* desired size changes */
	unsigned long bucket[N_READY_BUCKETS]; /* not cumulative */
	unsigned long ready_count;
	double ready_sum;
};
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct mhost *hosts;
static size_t n_hosts;
static struct mgroup *groups;
static size_t n_groups;
static struct mcount *counts;
static size_t n_counts;
static double tick_s, tick_sum_s;
static unsigned long ticks, tick_bucket[N_TICK_BUCKETS];
/* lifecycle hooks: [hook][result] (metrics_hook) */
#define HOOK_RESULTS 6
static const char *const hook_result_labels[HOOK_RESULTS] = {
	"sent", "failed", "gave_up", "continue", "abandon", "timeout",
};
static unsigned long hook_counts[2][HOOK_RESULTS];

static struct mcount *
count_get(const char *group)
{
	for (size_t i = 0; i < n_counts; i++)
		if (strcmp(counts[i].group, group) == 0)
			return &counts[i];
	counts = xreallocarray(counts, n_counts + 1, sizeof(*counts));
	memset(&counts[n_counts], 0, sizeof(*counts));
	counts[n_counts].group = xstrdup(group);
	return &counts[n_counts++];
}

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
	free(h->inst);
	free(h->strs);
	h->inst = NULL;
	h->strs = NULL;
	h->n_inst = h->a_inst = h->a_strs = 0;
}

/*
 * Copy a round's instances into h, reusing its arrays: one string buffer
 * for all ids and groups (a group's name is stored once per run of
 * instances of that group), no allocation per instance. Called every
 * round with every instance of the host.
 */
static void
host_set_instances(struct mhost *h, const struct collect_host_result *r)
{
	size_t need = 0, off = 0;
	const char *prev_group = NULL;

	for (size_t i = 0; i < r->n_inst; i++)
		need += strlen(r->inst[i].group) + strlen(r->inst[i].id) + 2;
	if (need > h->a_strs) {
		h->a_strs = need + need / 4;
		free(h->strs);
		h->strs = xmalloc(h->a_strs);
	}
	if (r->n_inst > h->a_inst) {
		h->a_inst = r->n_inst + r->n_inst / 4;
		free(h->inst);
		h->inst = xcalloc(h->a_inst, sizeof(*h->inst));
	}
	for (size_t i = 0; i < r->n_inst; i++) {
		const struct collect_instance *ci = &r->inst[i];
		struct minstance *mi = &h->inst[i];
		size_t n;

		if (prev_group && strcmp(prev_group, ci->group) == 0) {
			mi->group = h->inst[i - 1].group;
		} else {
			n = strlen(ci->group) + 1;
			memcpy(h->strs + off, ci->group, n);
			mi->group = h->strs + off;
			off += n;
		}
		prev_group = ci->group;
		n = strlen(ci->id) + 1;
		memcpy(h->strs + off, ci->id, n);
		mi->id = h->strs + off;
		off += n;
		mi->rates = ci->rates;
		mi->sample = ci->sample;
	}
	h->n_inst = r->n_inst;
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
		host_set_instances(h, r);
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
		g->data_age_s = -1;
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
metrics_set_group_warm(const char *group, int warming, int warm)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_groups; i++)
		if (strcmp(groups[i].name, group) == 0) {
			groups[i].warming = warming;
			groups[i].warm = warm;
		}
	pthread_mutex_unlock(&lock);
}

void
metrics_set_group_refresh(const char *group, int remaining)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_groups; i++)
		if (strcmp(groups[i].name, group) == 0)
			groups[i].refresh_remaining = remaining;
	pthread_mutex_unlock(&lock);
}

void
metrics_set_group_data_age(const char *group, double age_s)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_groups; i++)
		if (strcmp(groups[i].name, group) == 0)
			groups[i].data_age_s = age_s;
	pthread_mutex_unlock(&lock);
}

void
metrics_set_group_targets(const char *group, const double *target)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_groups; i++)
		if (strcmp(groups[i].name, group) == 0)
			memcpy(groups[i].target, target, sizeof(groups[i].target));
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
	for (size_t i = 0; i < n_counts; i++) {
		if (strcmp(counts[i].group, group) != 0)
			continue;
		free(counts[i].group);
		counts[i] = counts[--n_counts];
		break;
	}
	pthread_mutex_unlock(&lock);
}

void
metrics_scale_action(const char *group, int from, int to)
{
	struct mcount *c;

	if (from == to)
		return;
	pthread_mutex_lock(&lock);
	c = count_get(group);
	if (to > from)
		c->up++;
	else
		c->down++;
	pthread_mutex_unlock(&lock);
}

void
metrics_hook(const char *hook, const char *result)
{
	int h = strcmp(hook, "launch") == 0 ? 0 : 1;

	pthread_mutex_lock(&lock);
	for (int r = 0; r < HOOK_RESULTS; r++)
		if (strcmp(result, hook_result_labels[r]) == 0)
			hook_counts[h][r]++;
	pthread_mutex_unlock(&lock);
}

/* Count v in the first bucket whose upper bound holds it (none: only in
 * +Inf, which is the histogram's count). */
static void
observe(const double *bounds, unsigned long *bucket, size_t n, double v)
{
	for (size_t b = 0; b < n; b++)
		if (v <= bounds[b]) {
			bucket[b]++;
			return;
		}
}

void
metrics_instance_ready(const char *group, double seconds)
{
	struct mcount *c;

	if (!(seconds >= 0))
		seconds = 0;
	pthread_mutex_lock(&lock);
	c = count_get(group);
	observe(ready_buckets, c->bucket, N_READY_BUCKETS, seconds);
	c->ready_count++;
	c->ready_sum += seconds;
	pthread_mutex_unlock(&lock);
}

void
metrics_tick(double seconds)
{
	pthread_mutex_lock(&lock);
	tick_s = seconds;
	tick_sum_s += seconds;
	ticks++;
	observe(tick_buckets, tick_bucket, N_TICK_BUCKETS, seconds);
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
	for (size_t i = 0; i < n_counts; i++)
		free(counts[i].group);
	free(counts);
	counts = NULL;
	n_counts = 0;
	tick_s = 0;
	tick_sum_s = 0;
	ticks = 0;
	memset(tick_bucket, 0, sizeof(tick_bucket));
	memset(hook_counts, 0, sizeof(hook_counts));
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

/* One series of histogram name (its family line is the caller's): the
 * cumulative buckets (not cumulative in bucket[]), +Inf = count, the sum
 * and the count, each with the label key=val when key is not NULL. */
static void
histogram(struct strbuf *sb, const char *name, const char *key,
	  const char *val, const double *bounds, const unsigned long *bucket,
	  size_t n, unsigned long count, double sum)
{
	static const char *const part[] = {"_sum", "_count"};
	unsigned long cum = 0;

	for (size_t b = 0; b <= n; b++) {
		char le[32];

		cum = b < n ? cum + bucket[b] : count;
		if (b < n)
			snprintf(le, sizeof(le), "%g", bounds[b]);
		else
			snprintf(le, sizeof(le), "+Inf");
		strbuf_addf(sb, "%s_bucket{", name);
		if (key)
			label(sb, key, val, true);
		label(sb, "le", le, !key);
		strbuf_addc(sb, '}');
		value(sb, (double)cum);
	}
	for (size_t k = 0; k < 2; k++) {
		strbuf_addf(sb, "%s%s", name, part[k]);
		if (key) {
			strbuf_addc(sb, '{');
			label(sb, key, val, true);
			strbuf_addc(sb, '}');
		}
		value(sb, k ? (double)count : sum);
	}
}

/*
 * Per instance: the two ratios the decisions read (gauges over the last
 * collection interval) and the raw cumulative counters, from which
 * Prometheus computes any rate itself (rate(...[5m])). A domain that was
 * restarted starts its counters again at 0, which Prometheus reads as a
 * counter reset.
 */
static const struct {
	enum rates_metric m;
	const char *name, *help;
} instance_gauges[] = {
	{RATES_CPU, "va_instance_cpu_ratio",
	 "CPU time used over the last collection interval, as a share (0-1) "
	 "of the instance's allotted vCPU time."},
	{RATES_MEM, "va_instance_memory_used_ratio",
	 "Guest memory in use, share (0-1) of the guest's memory (balloon statistics)."},
};

enum instance_counter {
	IC_CPU, IC_RD_BYTES, IC_WR_BYTES, IC_RD_REQS, IC_WR_REQS, IC_RX, IC_TX,
	IC_LAST
};

static const struct {
	enum rates_field f;
	const char *name, *help;
} instance_counters[IC_LAST] = {
	[IC_CPU] = {RATES_F_CPU_TIME, "va_instance_cpu_seconds_total",
		    "CPU time the instance used (all vCPUs and QEMU's threads)."},
	[IC_RD_BYTES] = {RATES_F_RD_BYTES, "va_instance_disk_read_bytes_total",
			 "Bytes read from all disks."},
	[IC_WR_BYTES] = {RATES_F_WR_BYTES, "va_instance_disk_written_bytes_total",
			 "Bytes written to all disks."},
	[IC_RD_REQS] = {RATES_F_RD_REQS, "va_instance_disk_reads_total",
			"Read operations on all disks."},
	[IC_WR_REQS] = {RATES_F_WR_REQS, "va_instance_disk_writes_total",
			"Write operations on all disks."},
	[IC_RX] = {RATES_F_RX_BYTES, "va_instance_network_receive_bytes_total",
		   "Bytes received on all interfaces."},
	[IC_TX] = {RATES_F_TX_BYTES, "va_instance_network_transmit_bytes_total",
		   "Bytes sent on all interfaces."},
};

static double
counter_value(const struct rates_sample *s, enum instance_counter c)
{
	switch (c) {
	case IC_CPU:
		return (double)s->cpu_time / 1e9;
	case IC_RD_BYTES:
		return (double)s->rd_bytes;
	case IC_WR_BYTES:
		return (double)s->wr_bytes;
	case IC_RD_REQS:
		return (double)s->rd_reqs;
	case IC_WR_REQS:
		return (double)s->wr_reqs;
	case IC_RX:
		return (double)s->rx_bytes;
	case IC_TX:
		return (double)s->tx_bytes;
	default:
		return 0;
	}
}

static void
instance_labels(struct strbuf *sb, const struct mhost *h,
		const struct minstance *in)
{
	strbuf_addc(sb, '{');
	label(sb, "group", in->group, true);
	label(sb, "host", h->name, false);
	label(sb, "instance_id", in->id, false);
	strbuf_addc(sb, '}');
}

static void
render_instances(struct strbuf *sb)
{
	for (size_t f = 0; f < ARRAY_SIZE(instance_gauges); f++) {
		enum rates_metric m = instance_gauges[f].m;
		bool any = false;

		for (size_t h = 0; h < n_hosts; h++) {
			for (size_t i = 0; i < hosts[h].n_inst; i++) {
				const struct minstance *in = &hosts[h].inst[i];

				if (!rates_has(&in->rates, m))
					continue;
				if (!any)
					family(sb, instance_gauges[f].name, "gauge",
					       instance_gauges[f].help);
				any = true;
				strbuf_adds(sb, instance_gauges[f].name);
				instance_labels(sb, &hosts[h], in);
				value(sb, in->rates.v[m] / 100.0);
			}
		}
	}
	for (int c = 0; c < IC_LAST; c++) {
		bool any = false;

		for (size_t h = 0; h < n_hosts; h++) {
			for (size_t i = 0; i < hosts[h].n_inst; i++) {
				const struct minstance *in = &hosts[h].inst[i];

				if (!rates_sample_has(&in->sample,
						      instance_counters[c].f))
					continue;
				if (!any)
					family(sb, instance_counters[c].name, "counter",
					       instance_counters[c].help);
				any = true;
				strbuf_adds(sb, instance_counters[c].name);
				instance_labels(sb, &hosts[h], in);
				value(sb, counter_value(&in->sample,
							(enum instance_counter)c));
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
		{"va_group_warm", "Warm pool instances parked (saved, paused "
		 "or stopped), ready to be drawn.", offsetof(struct mgroup, warm)},
		{"va_group_warming", "Warm pool instances being prepared (not "
		 "parked yet).", offsetof(struct mgroup, warming)},
		{"va_group_refresh_remaining", "Instances an active instance "
		 "refresh still has to replace (0: none running).",
		 offsetof(struct mgroup, refresh_remaining)},
	};
	static const struct {
		const char *name, *help;
		double divisor;                  /* the engine's unit -> ours */
	} group_inputs[POLICY_METRIC_LAST] = {
		[POLICY_METRIC_CPU] = {"va_group_cpu_ratio",
				       "The decision engine's input: CPU use of the "
				       "group's ready instances over the scaling "
				       "interval, share (0-1) of their vCPU time; "
				       "stat mean or max over the instances, or target.", 100},
		[POLICY_METRIC_MEMORY] = {"va_group_memory_used_ratio",
					  "The decision engine's input: guest memory "
					  "in use, share (0-1); stat mean or max over "
					  "the instances, or target.", 100},
		[POLICY_METRIC_DISK_IOPS] = {"va_group_disk_operations_per_second",
					     "The decision engine's input: disk read + "
					     "write operations per second per instance "
					     "over the scaling interval; stat mean or "
					     "max over the instances, or target.", 1},
		[POLICY_METRIC_DISK_BYTES] = {"va_group_disk_bytes_per_second",
					      "The decision engine's input: disk bytes "
					      "read + written per second per instance; "
					      "stat mean or max over the instances, or target.", 1},
		[POLICY_METRIC_NET_BYTES] = {"va_group_network_bytes_per_second",
					     "The decision engine's input: network "
					     "bytes received + sent per second per "
					     "instance; stat mean or max over the "
					     "instances, or target.", 1},
	};

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
	for (size_t g = 0, any = 0; g < n_groups; g++) {
		if (groups[g].data_age_s < 0)
			continue;
		if (!any++)
			family(sb, "va_group_decision_data_age_seconds", "gauge",
			       "At the group's last decision: how old the newest "
			       "collector round of its hosts was.");
		strbuf_adds(sb, "va_group_decision_data_age_seconds{");
		label(sb, "group", groups[g].name, true);
		strbuf_addc(sb, '}');
		value(sb, groups[g].data_age_s);
	}
	/* the engine's input, one family per metric: one unit per name */
	for (int pm = 0; pm < POLICY_METRIC_LAST; pm++) {
		bool any = false;

		for (size_t g = 0; g < n_groups; g++) {
			for (int stat = 0; stat < 2 && groups[g].have_agg; stat++) {
				double v;

				if (!rates_group_get(&groups[g].agg, pm, stat == 1, &v))
					continue;
				if (!any)
					family(sb, group_inputs[pm].name, "gauge",
					       group_inputs[pm].help);
				any = true;
				strbuf_adds(sb, group_inputs[pm].name);
				strbuf_addc(sb, '{');
				label(sb, "group", groups[g].name, true);
				label(sb, "stat", stat ? "max" : "mean", false);
				strbuf_addc(sb, '}');
				value(sb, v / group_inputs[pm].divisor);
			}
			if (groups[g].target[pm] <= 0)
				continue;
			if (!any)
				family(sb, group_inputs[pm].name, "gauge",
				       group_inputs[pm].help);
			any = true;
			strbuf_adds(sb, group_inputs[pm].name);
			strbuf_addc(sb, '{');
			label(sb, "group", groups[g].name, true);
			label(sb, "stat", "target", false);
			strbuf_addc(sb, '}');
			value(sb, groups[g].target[pm] / group_inputs[pm].divisor);
		}
	}
}

static void
render_counts(struct strbuf *sb)
{
	bool any = false;

	if (n_groups || n_counts)
		family(sb, "va_scale_actions_total", "counter",
		       "Changes of the group's desired size (by the policy or by "
		       "hand), by direction.");
	for (size_t g = 0; g < n_groups; g++) {
		const struct mcount *c = NULL;

		for (size_t i = 0; i < n_counts && !c; i++)
			if (strcmp(counts[i].group, groups[g].name) == 0)
				c = &counts[i];
		for (int up = 1; up >= 0; up--) {
			strbuf_adds(sb, "va_scale_actions_total{");
			label(sb, "group", groups[g].name, true);
			label(sb, "direction", up ? "up" : "down", false);
			strbuf_addc(sb, '}');
			value(sb, c ? (double)(up ? c->up : c->down) : 0);
		}
	}
	for (size_t i = 0; i < n_counts; i++) {
		const struct mcount *c = &counts[i];

		if (!c->ready_count)
			continue;
		if (!any)
			family(sb, "va_instance_ready_seconds", "histogram",
			       "Time from an instance's creation to its first "
			       "check-in (ready).");
		any = true;
		histogram(sb, "va_instance_ready_seconds", "group", c->group,
			  ready_buckets, c->bucket, N_READY_BUCKETS,
			  c->ready_count, c->ready_sum);
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
	family(sb, "va_host_cpu_utilization_ratio", "gauge",
	       "Busy share (0-1) of all host CPUs over the last capacity period.");
	for (size_t h = 0; h < n_hosts; h++)
		if (hosts[h].have_cap &&
		    hosts[h].cap.present & (1u << COLLECT_CAP_CPU_UTIL))
			host_line(sb, "va_host_cpu_utilization_ratio", hosts[h].name,
				  hosts[h].cap.cpu_util_pct / 100.0);
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
metrics_render_prometheus(struct strbuf *out, bool instances)
{
	pthread_mutex_lock(&lock);
	family(out, "va_build_info", "gauge",
	       "Always 1; the version of the daemon in the label.");
	strbuf_adds(out, "va_build_info{");
	label(out, "version", VA_VERSION, true);
	strbuf_adds(out, "} 1\n");
	if (instances)
		render_instances(out);
	render_groups(out);
	render_counts(out);
	family(out, "va_hook_calls_total", "counter",
	       "Lifecycle hooks: POST attempts (sent, failed, gave_up) and "
	       "how the waits ended (continue, abandon: completed; timeout: "
	       "the default result applied).");
	for (int h = 0; h < 2; h++)
		for (int r = 0; r < HOOK_RESULTS; r++) {
			strbuf_adds(out, "va_hook_calls_total{");
			label(out, "hook", h ? "terminate" : "launch", true);
			label(out, "result", hook_result_labels[r], false);
			strbuf_addc(out, '}');
			value(out, (double)hook_counts[h][r]);
		}
	render_hosts(out);
	family(out, "va_tick_duration_seconds", "gauge",
	       "Wall time of the daemon's last tick.");
	strbuf_adds(out, "va_tick_duration_seconds");
	value(out, tick_s);
	family(out, "va_ticks_total", "counter", "Ticks of the daemon's loop.");
	strbuf_addf(out, "va_ticks_total %lu\n", ticks);
	family(out, "va_tick_seconds", "histogram",
	       "Wall time of the daemon's ticks: the sum is the loop's busy "
	       "time, the highest bucket its longest stall.");
	histogram(out, "va_tick_seconds", NULL, NULL, tick_buckets, tick_bucket,
		  N_TICK_BUCKETS, ticks, tick_sum_s);
	pthread_mutex_unlock(&lock);
}
