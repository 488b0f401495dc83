/*
 * rates.h: per-instance rates from two successive raw samples, and group
 * aggregates over a window. Pure functions: no I/O, no clock.
 *
 * A raw sample (struct rates_sample) holds the counters one bulk stats
 * call returned for one domain; every field is optional and flagged in
 * `present`. Rates (struct rates) are per interval between two samples:
 *
 *   cpu      % of the allotted vCPU time:
 *            delta(cpu.time ns) / (delta(wall ns) * vcpus) * 100
 *   memory   % of guest memory in use, from the balloon driver's guest
 *            statistics (a gauge, from the newer sample only):
 *            (available - usable) / available * 100   when usable exists
 *            (available - unused) / available * 100   otherwise
 *            where available = MemTotal as the guest sees it, usable =
 *            what the guest can still hand out without swapping
 *            (MemAvailable), unused = MemFree. Page cache counts as free
 *            with "usable", as used with "unused". Missing when the guest
 *            reports no balloon statistics (no virtio_balloon driver, or
 *            no stats period set: collect_set_stats_period()).
 *   disk     read/write bytes/s and operations/s summed over block devices
 *   net      rx/tx bytes/s summed over interfaces
 *
 * A counter that goes backwards (the domain restarted, a device was
 * unplugged) or a device count that changed makes that field missing for
 * this interval, never negative. Derived sums (disk bytes, disk IOPS, net
 * bytes) are present only when both parts are.
 */
#ifndef VA_RATES_H
#define VA_RATES_H

#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

enum rates_metric {
	RATES_CPU,           /* % of allotted vCPU time */
	RATES_MEM,           /* % of guest memory in use */
	RATES_DISK_RD_BPS,   /* bytes/s read */
	RATES_DISK_WR_BPS,   /* bytes/s written */
	RATES_DISK_RD_IOPS,  /* read operations/s */
	RATES_DISK_WR_IOPS,  /* write operations/s */
	RATES_NET_RX_BPS,    /* bytes/s received */
	RATES_NET_TX_BPS,    /* bytes/s sent */
	/* derived: sums of two of the above */
	RATES_DISK_BPS,      /* read + write bytes/s */
	RATES_DISK_IOPS,     /* read + write operations/s */
	RATES_NET_BPS,       /* rx + tx bytes/s */
	RATES_LAST
};
/* Metrics before this one are stored; the rest are derived from them. */
#define RATES_N_BASE RATES_DISK_BPS

/* "cpu", "memory", "disk_read_bps", ... (stable: used in output formats) */
const char *rates_metric_name(enum rates_metric m);
/* The rate that feeds a policy metric (cpu -> RATES_CPU, ...). */
enum rates_metric rates_from_policy(enum policy_metric m);

/* Per-interval rates of one instance. */
struct rates {
	uint32_t present; /* bit (1u << metric) */
	double v[RATES_LAST];
};

static inline bool
rates_has(const struct rates *r, enum rates_metric m)
{
	return (r->present >> m) & 1u;
}
void rates_set(struct rates *r, enum rates_metric m, double v);
/* Fill the derived metrics from the base ones. */
void rates_derive(struct rates *r);

/* Raw-sample fields; bit (1u << field) in rates_sample.present. */
enum rates_field {
	RATES_F_STATE,
	RATES_F_CPU_TIME,
	RATES_F_BAL_CURRENT,
	RATES_F_BAL_MAXIMUM,
	RATES_F_BAL_AVAILABLE,
	RATES_F_BAL_USABLE,
	RATES_F_BAL_UNUSED,
	RATES_F_BAL_LAST_UPDATE,
	RATES_F_BLOCK_COUNT,
	RATES_F_RD_BYTES,
	RATES_F_WR_BYTES,
	RATES_F_RD_REQS,
	RATES_F_WR_REQS,
	RATES_F_NET_COUNT,
	RATES_F_RX_BYTES,
	RATES_F_TX_BYTES,
	RATES_F_LAST
};

struct rates_sample {
	int64_t t_ms;        /* monotonic time of the stats call */
	uint32_t present;    /* bit (1u << enum rates_field) */
	int state;           /* virDomainState */
	unsigned vcpus;      /* from the domain XML (cached) */
	uint64_t cpu_time;   /* ns */
	uint64_t bal_current, bal_maximum; /* KiB */
	uint64_t bal_available, bal_usable, bal_unused; /* KiB */
	uint64_t bal_last_update; /* guest timestamp, s */
	unsigned block_count, net_count;
	uint64_t rd_bytes, wr_bytes, rd_reqs, wr_reqs; /* summed over disks */
	uint64_t rx_bytes, tx_bytes; /* summed over interfaces */
};

static inline bool
rates_sample_has(const struct rates_sample *s, enum rates_field f)
{
	return (s->present >> f) & 1u;
}

/* Memory in use % from one sample; false when it cannot be computed. */
bool rates_memory_pct(const struct rates_sample *s, double *pct);

/*
 * Rates over the interval prev -> cur. prev may be NULL (first sample:
 * only gauges such as memory are present). out is overwritten.
 */
void rates_compute(const struct rates_sample *prev,
		   const struct rates_sample *cur, struct rates *out);

/* Statistics of one instance's rates over a time window (mstore_query). */
struct rates_window {
	uint32_t present;       /* metric had at least one sample */
	unsigned n[RATES_LAST]; /* samples per metric */
	double mean[RATES_LAST];
	double max[RATES_LAST];
	double last[RATES_LAST];
	int64_t last_t_ms;      /* time of the newest sample (any metric) */
	unsigned samples;       /* samples in the window, with or without values */
};

/*
 * Group aggregate for the decision engine: over the instances added,
 * mean = mean of the instances' window means; max = max of their window
 * maxima; n = instances that had the metric. Metrics no instance had are
 * not present.
 */
struct rates_group {
	uint32_t present;
	unsigned n[RATES_LAST];
	double mean[RATES_LAST];
	double max[RATES_LAST];
};
void rates_group_init(struct rates_group *g);
void rates_group_add(struct rates_group *g, const struct rates_window *w);
/* Turn the sums into means; call once after the last rates_group_add. */
void rates_group_finish(struct rates_group *g);
/* The group's mean (or max) for a policy metric; false when missing. */
bool rates_group_get(const struct rates_group *g, enum policy_metric m,
		     bool max, double *out);

#endif
