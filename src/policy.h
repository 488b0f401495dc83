/*
 * policy.h: the scaling decision engine. Pure: a group's policy, its
 * current state and recent metrics, and the clock go in; a decision with
 * a reason a person can read comes out. No I/O, no clock reads, no
 * globals: the daemon, `simulate` and the tests call the same function.
 *
 * This header is the contract between the configuration parser (which
 * fills struct policy_params from autoscale.yaml), the daemon, the
 * simulator and the engine in policy.c.
 */
#ifndef VA_POLICY_H
#define VA_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Metrics a policy may scale on; per-instance values, averaged per group. */
enum policy_metric {
	POLICY_METRIC_CPU,        /* % of the instance's allotted vCPU time */
	POLICY_METRIC_MEMORY,     /* % of guest memory in use (balloon stats) */
	POLICY_METRIC_DISK_IOPS,  /* read + write operations per second */
	POLICY_METRIC_DISK_BYTES, /* read + write bytes per second */
	POLICY_METRIC_NET_BYTES,  /* rx + tx bytes per second */
	POLICY_METRIC_LAST
};

/* "cpu", "memory", "disk_iops", "disk_bytes", "net_bytes" */
const char *policy_metric_name(enum policy_metric m);
int policy_metric_from_name(const char *name, enum policy_metric *out);
/* True for metrics written as percentages (cpu, memory). */
bool policy_metric_is_percent(enum policy_metric m);

/* Step rule: "metric above/below threshold for duration -> change". */
enum policy_step_dir {
	POLICY_STEP_ABOVE,
	POLICY_STEP_BELOW,
	POLICY_STEP_LAST
};

struct policy_step {
	enum policy_metric metric;
	enum policy_step_dir dir;
	double threshold;    /* in the metric's unit (percent as 0..100) */
	int64_t for_ms;      /* condition must hold this long; 0 = at once */
	int change;          /* +N / -N instances (0 when percent is used) */
	double change_pct;   /* +P / -P percent of current size (0 if unused) */
	int min_step;        /* with change_pct: at least this many (>= 1) */
};

/*
 * Schedule: while the current local time matches the cron-like window
 * (minute hour day-of-month month day-of-week, each field "*", "N",
 * "N-M", "a,b,c", "*\/S", days also "mon-fri"), min and/or max of the
 * group are replaced. Bit sets are filled by policy_cron_parse().
 */
struct policy_cron {
	uint64_t minutes;  /* bit i: minute i (0-59) */
	uint32_t hours;    /* bit i: hour i (0-23) */
	uint32_t mdays;    /* bit i: day i (1-31) */
	uint16_t months;   /* bit i: month i (1-12) */
	uint8_t wdays;     /* bit i: weekday i (0 = Sunday .. 6) */
	bool mday_any;     /* day-of-month was "*" */
	bool wday_any;     /* day-of-week was "*" */
};

/* Parse "* 8-17 * * mon-fri". Returns 0, or -1 with err_set(). */
int policy_cron_parse(const char *expr, struct policy_cron *out);
bool policy_cron_match(const struct policy_cron *c, const struct tm *tm);

struct policy_schedule {
	char *name;             /* for reasons and logs; owned */
	struct policy_cron when;
	int min;                /* -1: leave the group's min */
	int max;                /* -1: leave the group's max */
};

/* Rate limit on changes: at most max(instances, percent of current) per period. */
struct policy_rate_limit {
	int instances;   /* 0 = no absolute allowance */
	double percent;  /* 0 = no percentage allowance */
	int64_t period_ms;
};

/*
 * Everything about a group's scaling that the configuration decides.
 * target[m] > 0 enables target tracking on metric m.
 */
struct policy_params {
	int min;
	int max;
	int64_t interval_ms;              /* how often the engine is consulted */

	double target[POLICY_METRIC_LAST]; /* 0 = not tracked */
	double tolerance;                 /* fraction, 0.10 = 10 % */

	struct policy_step *steps;        /* owned array */
	unsigned n_steps;

	struct policy_schedule *schedules; /* owned array */
	unsigned n_schedules;

	int64_t cooldown_ms;              /* after any change, no further change */
	int64_t warmup_ms;                /* a new instance's metrics are ignored */
	int64_t scale_up_window_ms;       /* stabilization: lowest recent rec. */
	int64_t scale_down_window_ms;     /* stabilization: highest recent rec. */
	struct policy_rate_limit scale_up_limit;
	struct policy_rate_limit scale_down_limit;
};

/* Fill the shipped defaults (what autoscale.yaml(5) documents). */
void policy_params_defaults(struct policy_params *p);
/* Free what the params own (steps, schedules); not the struct itself. */
void policy_params_release(struct policy_params *p);
/* Deep copy; dst is overwritten. */
void policy_params_copy(struct policy_params *dst, const struct policy_params *src);

#endif
