/*
 * rates.c: rates from counter deltas and group aggregates (see rates.h).
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "rates.h"

static const char *const metric_names[RATES_LAST] = {
	[RATES_CPU] = "cpu",
	[RATES_MEM] = "memory",
	[RATES_DISK_RD_BPS] = "disk_read_bps",
	[RATES_DISK_WR_BPS] = "disk_write_bps",
	[RATES_DISK_RD_IOPS] = "disk_read_iops",
	[RATES_DISK_WR_IOPS] = "disk_write_iops",
	[RATES_NET_RX_BPS] = "net_rx_bps",
	[RATES_NET_TX_BPS] = "net_tx_bps",
	[RATES_DISK_BPS] = "disk_bps",
	[RATES_DISK_IOPS] = "disk_iops",
	[RATES_NET_BPS] = "net_bps",
};

const char *
rates_metric_name(enum rates_metric m)
{
	return (unsigned)m < RATES_LAST ? metric_names[m] : "?";
}

enum rates_metric
rates_from_policy(enum policy_metric m)
{
	switch (m) {
	case POLICY_METRIC_CPU:
		return RATES_CPU;
	case POLICY_METRIC_MEMORY:
		return RATES_MEM;
	case POLICY_METRIC_DISK_IOPS:
		return RATES_DISK_IOPS;
	case POLICY_METRIC_DISK_BYTES:
		return RATES_DISK_BPS;
	case POLICY_METRIC_NET_BYTES:
		return RATES_NET_BPS;
	case POLICY_METRIC_LAST:
		break;
	}
	return RATES_LAST;
}

void
rates_set(struct rates *r, enum rates_metric m, double v)
{
	if (!isfinite(v))
		return;
	r->v[m] = v;
	r->present |= 1u << m;
}

static void
derive_sum(struct rates *r, enum rates_metric sum, enum rates_metric a,
	   enum rates_metric b)
{
	if (rates_has(r, a) && rates_has(r, b))
		rates_set(r, sum, r->v[a] + r->v[b]);
	else
		r->present &= ~(1u << sum);
}

void
rates_derive(struct rates *r)
{
	derive_sum(r, RATES_DISK_BPS, RATES_DISK_RD_BPS, RATES_DISK_WR_BPS);
	derive_sum(r, RATES_DISK_IOPS, RATES_DISK_RD_IOPS, RATES_DISK_WR_IOPS);
	derive_sum(r, RATES_NET_BPS, RATES_NET_RX_BPS, RATES_NET_TX_BPS);
}

bool
rates_memory_pct(const struct rates_sample *s, double *pct)
{
	uint64_t avail, free_kib;

	if (!rates_sample_has(s, RATES_F_BAL_AVAILABLE) || s->bal_available == 0)
		return false;
	avail = s->bal_available;
	if (rates_sample_has(s, RATES_F_BAL_USABLE))
		free_kib = s->bal_usable;
	else if (rates_sample_has(s, RATES_F_BAL_UNUSED))
		free_kib = s->bal_unused;
	else
		return false;
	if (free_kib > avail)
		free_kib = avail;
	*pct = (double)(avail - free_kib) * 100.0 / (double)avail;
	return true;
}

/*
 * Per-second rate of a counter, or false when either sample lacks it,
 * the counter went backwards, or the device count (count_field) changed.
 */
static bool
counter_rate(const struct rates_sample *prev, const struct rates_sample *cur,
	     enum rates_field f, uint64_t pv, uint64_t cv,
	     enum rates_field count_field, double secs, double *out)
{
	if (!rates_sample_has(prev, f) || !rates_sample_has(cur, f))
		return false;
	if (rates_sample_has(prev, count_field) !=
		    rates_sample_has(cur, count_field))
		return false;
	if (count_field == RATES_F_BLOCK_COUNT &&
	    prev->block_count != cur->block_count)
		return false;
	if (count_field == RATES_F_NET_COUNT && prev->net_count != cur->net_count)
		return false;
	if (cv < pv)
		return false;
	*out = (double)(cv - pv) / secs;
	return true;
}

void
rates_compute(const struct rates_sample *prev, const struct rates_sample *cur,
	      struct rates *out)
{
	static const struct {
		enum rates_metric m;
		enum rates_field f;
		enum rates_field count;
		size_t off;
	} counters[] = {
		{RATES_DISK_RD_BPS, RATES_F_RD_BYTES, RATES_F_BLOCK_COUNT,
		 offsetof(struct rates_sample, rd_bytes)},
		{RATES_DISK_WR_BPS, RATES_F_WR_BYTES, RATES_F_BLOCK_COUNT,
		 offsetof(struct rates_sample, wr_bytes)},
		{RATES_DISK_RD_IOPS, RATES_F_RD_REQS, RATES_F_BLOCK_COUNT,
		 offsetof(struct rates_sample, rd_reqs)},
		{RATES_DISK_WR_IOPS, RATES_F_WR_REQS, RATES_F_BLOCK_COUNT,
		 offsetof(struct rates_sample, wr_reqs)},
		{RATES_NET_RX_BPS, RATES_F_RX_BYTES, RATES_F_NET_COUNT,
		 offsetof(struct rates_sample, rx_bytes)},
		{RATES_NET_TX_BPS, RATES_F_TX_BYTES, RATES_F_NET_COUNT,
		 offsetof(struct rates_sample, tx_bytes)},
	};
	double pct, secs, v;

	memset(out, 0, sizeof(*out));
	if (rates_memory_pct(cur, &pct))
		rates_set(out, RATES_MEM, pct);
	if (!prev || cur->t_ms <= prev->t_ms)
		goto derive;
	secs = (double)(cur->t_ms - prev->t_ms) / 1000.0;

	if (rates_sample_has(prev, RATES_F_CPU_TIME) &&
	    rates_sample_has(cur, RATES_F_CPU_TIME) &&
	    cur->cpu_time >= prev->cpu_time && cur->vcpus > 0) {
		v = (double)(cur->cpu_time - prev->cpu_time) /
		    (secs * 1e9 * (double)cur->vcpus) * 100.0;
		rates_set(out, RATES_CPU, v);
	}
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		uint64_t pv, cv;

		memcpy(&pv, (const char *)prev + counters[i].off, sizeof(pv));
		memcpy(&cv, (const char *)cur + counters[i].off, sizeof(cv));
		if (counter_rate(prev, cur, counters[i].f, pv, cv,
				 counters[i].count, secs, &v))
			rates_set(out, counters[i].m, v);
	}
derive:
	rates_derive(out);
}

void
rates_group_init(struct rates_group *g)
{
	memset(g, 0, sizeof(*g));
}

void
rates_group_add(struct rates_group *g, const struct rates_window *w)
{
	for (int m = 0; m < RATES_LAST; m++) {
		if (!((w->present >> m) & 1u) || w->n[m] == 0)
			continue;
		if (!g->n[m] || w->max[m] > g->max[m])
			g->max[m] = w->max[m];
		g->mean[m] += w->mean[m];
		g->n[m]++;
		g->present |= 1u << m;
	}
}

void
rates_group_finish(struct rates_group *g)
{
	for (int m = 0; m < RATES_LAST; m++)
		if (g->n[m])
			g->mean[m] /= g->n[m];
}

bool
rates_group_get(const struct rates_group *g, enum policy_metric m, bool max,
		double *out)
{
	enum rates_metric r = rates_from_policy(m);

	if (r == RATES_LAST || !((g->present >> r) & 1u))
		return false;
	*out = max ? g->max[r] : g->mean[r];
	return true;
}
