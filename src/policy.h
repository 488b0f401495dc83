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

#include "util.h"

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
	unsigned app;        /* 0: on metric; i + 1: on the app metric p->app[i] */
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

/*
 * Application metrics: figures the guests report in their heartbeats
 * ("metrics": {"requests_per_s": 42}). A group's policy names at most
 * POLICY_APP_MAX of them (target, step rules); the daemon keeps only
 * named ones. Names: 1-63 of A-Za-z0-9_. (what a heartbeat accepts).
 *   average  each instance reports its own share (requests per second
 *            it serves): the group figure is the mean over the ready
 *            instances that reported recently; target tracking wants
 *            ceil(ready x mean / target), as for cpu
 *   total    the instances report one figure for the whole group (a
 *            queue's length): the group figure is the newest report;
 *            target tracking wants ceil(total / target) (target: what
 *            one instance handles)
 */
#define POLICY_APP_MAX 4
#define POLICY_APP_NAME_MAX 64
/* Different app metrics all groups together may name (the daemon keeps
 * each instance's last value of each). */
#define POLICY_APP_DAEMON_MAX 16
/* A heartbeat's metric values beyond this are refused (400). */
#define POLICY_APP_VALUE_MAX 1e12

enum policy_app_kind {
	POLICY_APP_AVERAGE,
	POLICY_APP_TOTAL,
	POLICY_APP_KIND_LAST
};

struct policy_app {
	char name[POLICY_APP_NAME_MAX];
	enum policy_app_kind kind;
	double target;       /* > 0: target tracking on it; 0: steps only */
	/* "": the figure comes from heartbeats; otherwise the kind of
	 * outside source that measures it ("prometheus"; kind total):
	 * the caller fills in->app[i] itself, and reasons name it */
	char source[16];
};

struct policy_params;
/* "average", "total" */
const char *policy_app_kind_name(enum policy_app_kind k);
/* Whether name is a valid app metric name (1-63 of A-Za-z0-9_.). */
bool policy_app_name_ok(const char *name);
/* The index of name in p->app, or -1. */
int policy_app_find(const struct policy_params *p, const char *name);

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
	/* application metrics the policy names (targets, steps) */
	struct policy_app app[POLICY_APP_MAX];
	unsigned n_app;
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

	/*
	 * Saturation (YAML: saturation: { above: 95%, scale_up: 100% }).
	 * A percentage metric (cpu, memory) whose average is at or above
	 * saturation.above_pct no longer measures demand: a CPU at 100 % may
	 * be short by 10 % or by 300 %. Target tracking then grows the ready
	 * capacity by at least saturation.scale_up_pct percent (instead of
	 * the formula's value, which is only a lower bound), and skips the
	 * scale-up window. above_pct 0 turns this off (the plain HPA
	 * formula); policy_params_defaults() turns it on.
	 */
	struct policy_saturation {
		double above_pct;    /* 0..100; 0 = off */
		double scale_up_pct; /* > 0, e.g. 100 = double */
	} saturation;

	/*
	 * The scale-up window filters small, noisy increases. An increase
	 * of more than this percent of the current desired size (or one
	 * from a saturated metric) is no noise and skips the window.
	 * 0 = the window applies to every increase (HPA). YAML:
	 * scale_up_window_skip: 20%.
	 */
	double scale_up_window_skip_pct;

	/*
	 * Predictive scaling (YAML: predictive: { mode: forecast_and_scale,
	 * buffer: 5m, window: 10m }). The forecaster (forecast.h) runs in
	 * the caller, which passes its capacity floor as in->forecast:
	 *   off                 no forecast (the default)
	 *   forecast_only       the forecast is shown in the decision
	 *                       (reason, JSON) but does not act
	 *   forecast_and_scale  the recommendation is the larger of target
	 *                       tracking/steps and the forecast floor
	 * buffer_ms: how far ahead the forecast window starts (at least the
	 * boot delay, so instances are ready when the load comes);
	 * window_ms: its length (the floor is the peak forecast within it).
	 */
	struct policy_predictive {
		int mode;            /* enum policy_predictive_mode */
		int64_t buffer_ms;
		int64_t window_ms;
	} predictive;
};

enum policy_predictive_mode {
	POLICY_PREDICTIVE_OFF,
	POLICY_PREDICTIVE_FORECAST_ONLY,
	POLICY_PREDICTIVE_FORECAST_AND_SCALE,
	POLICY_PREDICTIVE_LAST
};

/* "off", "forecast_only", "forecast_and_scale" */
const char *policy_predictive_mode_name(int mode);

/* Fill the shipped defaults (what autoscale.yaml(5) documents). */
void policy_params_defaults(struct policy_params *p);
/* Free what the params own (steps, schedules); not the struct itself. */
void policy_params_release(struct policy_params *p);
/* Deep copy; dst is overwritten. */
void policy_params_copy(struct policy_params *dst, const struct policy_params *src);

/* ---- the engine ------------------------------------------------------ */

/*
 * What the engine sees of a group at one decision. Counts:
 *   desired   the group's current desired size (what the last decision or
 *             `scale` set; instances still being placed or booting are in it)
 *   ready     instances that serve load (checked in) and did so through
 *             the last interval (the one the metrics describe), including
 *             those still in warm-up
 *   warming   instances whose metrics do not count yet: started but not
 *             ready, ready for less than an interval (they took no part
 *             in the measurement: capacity on the way, like a booting
 *             one), or ready for less than warmup_ms
 * The load estimate of metric m is metric[m] x ready: the average over
 * warm instances (ready and past warm-up) times the instances serving.
 * On scale-out the warming instances count as capacity (they are in
 * desired), so a burst is not answered twice while VMs boot.
 *
 * metric[m] is meaningful only when metric_present[m]; a tracked metric
 * that is absent blocks scale-in (missing data is not low load).
 * policy_input_from_instances() fills counts and averages from
 * per-instance samples, honouring warm-up.
 */
struct policy_input {
	int64_t now_ms;        /* monotonic clock, milliseconds */
	struct tm local_time;  /* broken-down local time, for schedules */
	bool have_local_time;  /* false: schedules are not evaluated */
	int desired;
	int ready;
	int warming;
	double metric[POLICY_METRIC_LAST];
	bool metric_present[POLICY_METRIC_LAST];
	/* p->app[i]'s group figure (mean or total), when app_present[i];
	 * app_reporting[i]: how many instances it is computed over */
	double app[POLICY_APP_MAX];
	bool app_present[POLICY_APP_MAX];
	int app_reporting[POLICY_APP_MAX];
	/* when !app_present[i], why (an outside source's error), or NULL */
	const char *app_why[POLICY_APP_MAX];
	int capacity_left;     /* instances placement can still add; -1 unknown */
	int instances;         /* instances that exist now (for capacity_left) */
	/* predictive scaling: the forecaster's capacity floor (instances)
	 * for the window ahead, when have_forecast (policy_forecast_floor()) */
	bool have_forecast;
	int forecast;
};

/* One instance's view, for policy_input_from_instances(). */
struct policy_instance_sample {
	bool ready;            /* checked in and serving */
	int64_t ready_ms;      /* monotonic time it became ready */
	double metric[POLICY_METRIC_LAST];
	bool metric_present[POLICY_METRIC_LAST];
	/* p->app[i]'s last reported value, when app_present[i] (the caller
	 * leaves out reports it considers stale); app_ms[i]: when it was
	 * reported (any clock, used only to find the newest of a total) */
	double app[POLICY_APP_MAX];
	bool app_present[POLICY_APP_MAX];
	int64_t app_ms[POLICY_APP_MAX];
};

/*
 * Fill in->ready, in->warming, in->instances, in->metric[] and
 * in->metric_present[] from n samples, as described above: averages over
 * instances ready for at least max(p->interval_ms, p->warmup_ms) at
 * in->now_ms, and in->app[] from the same instances: the mean over
 * those that reported (average), or the newest report (total). Other
 * fields are left alone.
 */
void policy_input_from_instances(struct policy_input *in,
				 const struct policy_params *p,
				 const struct policy_instance_sample *inst,
				 unsigned n);

/*
 * The group's load in instances, as target tracking measures it before
 * rounding: the maximum over tracked metrics with data of value x ready
 * / target (an app metric of kind total: total / target). NaN without
 * data. Predictive scaling records its one-minute means (forecast.h).
 */
double policy_load_instances(const struct policy_params *p,
			     const struct policy_input *in);
/* A forecast load (instances, as above) as a capacity floor: its
 * ceiling, within 0..1e9 (NaN or negative: 0). */
int policy_forecast_floor(double load);

/*
 * What the engine remembers between decisions of one group: recent
 * recommendations (stabilization windows), the time of the last change
 * (cooldown), when each step rule's condition began to hold, and recent
 * changes (rate limits). Opaque; one per group, kept by the caller.
 * A new state knows no history: the first decisions may scale in at once
 * (policy_state_note_change() can seed it, e.g. after a restart).
 */
struct policy_state;

struct policy_state *policy_state_new(void);
void policy_state_free(struct policy_state *st);
/*
 * Record a change of desired size made outside policy_decide() (manual
 * `scale`, a restart that restores the size): starts the cooldown, counts
 * towards rate limits, and enters `to` as a recommendation at now_ms so
 * the scale-down window holds it.
 */
void policy_state_note_change(struct policy_state *st, int64_t now_ms,
			      int from, int to);

enum policy_outcome {
	POLICY_OUTCOME_HOLD,      /* desired stays */
	POLICY_OUTCOME_SCALE_OUT, /* desired grows */
	POLICY_OUTCOME_SCALE_IN,  /* desired shrinks */
	POLICY_OUTCOME_LAST
};

#define POLICY_REASON_MAX 480

/*
 * A decision with everything needed to explain it later: the inputs, the
 * effective bounds and the steps from recommendation to result. Plain
 * data (no pointers), so a caller can copy and store it as an event.
 */
struct policy_decision {
	enum policy_outcome outcome;
	int from;              /* desired before */
	int to;                /* desired after (== from on HOLD) */
	int64_t now_ms;
	/* inputs */
	int ready, warming, instances, capacity_left;
	double metric[POLICY_METRIC_LAST];
	bool metric_present[POLICY_METRIC_LAST];
	double app[POLICY_APP_MAX];      /* named by the params' app[] */
	bool app_present[POLICY_APP_MAX];
	int app_reporting[POLICY_APP_MAX];
	/* effective bounds (schedules applied) */
	int min, max;
	int schedule;          /* index of the schedule that set a bound, -1 */
	/* the pipeline: -1 where a stage had nothing to say */
	int recommendation;    /* from target tracking and steps */
	int stabilized;        /* after the stabilization windows */
	int limited;           /* after cooldown and rate limits */
	int forecast;          /* predictive floor given, -1: none */
	/* human-readable: "cpu 87% > target 60% (±10%) over 3 ready -> want 5;
	 * ..." */
	char reason[POLICY_REASON_MAX];
};

/*
 * Decide. Pure: reads p and in, updates st, fills *d. The pipeline:
 *   bounds: min/max, replaced by the schedules whose window matches
 *   recommendation: target tracking (max over metrics) and step rules;
 *                   the largest wins; none without data
 *   stabilization: scale-up window (lowest recent), scale-down (highest)
 *   cooldown, then rate limits per period
 *   clamp to [min, max] (always, also during a cooldown), then to what
 *   placement can still add (capacity_left; never causes a scale-in)
 * With zero instances there are no metrics: the group follows its
 * effective min (schedules included) and step/target rules do nothing.
 */
void policy_decide(const struct policy_params *p,
		   const struct policy_input *in, struct policy_state *st,
		   struct policy_decision *d);

/*
 * Append one line explaining d: "5 -> 8 (scale out): REASON [inputs:
 * ready 3, warming 0, cpu 87%, ...]". p (may be NULL) names schedules.
 */
void policy_decision_format(const struct policy_decision *d,
			    const struct policy_params *p, struct strbuf *out);

const char *policy_outcome_name(enum policy_outcome o);

/*
 * Append d as one JSON object, for an event's details in the activity
 * history: {"outcome": "scale_out", "from": 3, "to": 5, "reason": "...",
 * "ready": 3, "warming": 0, "instances": 3, "capacity_left": -1,
 * "metrics": {"cpu": 87.0}, "min": 1, "max": 8, "schedule": "office" or
 * null, "recommendation": 5, "stabilized": 5, "limited": 5}. Outcomes are
 * "hold", "scale_out", "scale_in". p (may be NULL) names the schedule.
 */
void policy_decision_json(const struct policy_decision *d,
			  const struct policy_params *p, struct strbuf *out);

#endif
