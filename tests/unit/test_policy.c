/*
 * Unit tests for policy.c: every rule and damping mechanism of the
 * decision engine, table-driven (a case is a policy and a sequence of
 * decisions with the expected size and a piece of the reason), plus cron
 * windows, inputs from instances, params copy and the decision text.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"
#include "policy.h"
#include "util.h"

#define NONE (-1.0) /* metric missing */
#define NOTIME (-1) /* no local time */

/* One decision: inputs, then what must come out. */
struct step_in {
	int64_t t;       /* seconds */
	int desired;     /* -1: the previous decision's result */
	int ready;       /* -1: = desired */
	int warming;
	double cpu;      /* NONE: missing */
	double mem;      /* NONE: missing */
	int cap_left;    /* -1 unknown */
	int hour;        /* NOTIME: no local time; else Monday HH:00 */
	int want;        /* expected desired afterwards */
	const char *why; /* expected in the reason (NULL: not checked) */
};

struct policy_case {
	const char *name;
	void (*setup)(struct policy_params *p);
	struct step_in steps[10];
};

#define END {-1, 0, 0, 0, 0, 0, 0, 0, 0, NULL}

/* The base of every case: HPA-like, nothing but target tracking. */
static void
base(struct policy_params *p)
{
	memset(p, 0, sizeof(*p));
	p->min = 1;
	p->max = 20;
	p->interval_ms = 10000;
	p->target[POLICY_METRIC_CPU] = 60;
	p->tolerance = 0.10;
}

static void setup_plain(struct policy_params *p) { (void)p; }
static void
setup_min0(struct policy_params *p)
{
	p->min = 0;
}
static void
setup_min2(struct policy_params *p)
{
	p->min = 2;
}
static void
setup_mem(struct policy_params *p)
{
	p->target[POLICY_METRIC_MEMORY] = 60;
}
static void
setup_minmax4(struct policy_params *p)
{
	p->min = 4;
	p->max = 4;
}
static void
setup_sat(struct policy_params *p)
{
	p->saturation.above_pct = 95;
	p->saturation.scale_up_pct = 100;
}
static void
setup_upwin(struct policy_params *p)
{
	p->scale_up_window_ms = 60000;
}
static void
setup_upwin_skip(struct policy_params *p)
{
	p->scale_up_window_ms = 60000;
	p->scale_up_window_skip_pct = 20;
}
static void
setup_upwin_sat(struct policy_params *p)
{
	p->scale_up_window_ms = 60000;
	setup_sat(p);
}
static void
setup_downwin(struct policy_params *p)
{
	p->scale_down_window_ms = 60000;
}
static void
setup_cooldown(struct policy_params *p)
{
	p->cooldown_ms = 300000;
}
static void
setup_uplimit(struct policy_params *p)
{
	p->scale_up_limit = (struct policy_rate_limit){2, 0, 60000};
}
static void
setup_uplimit_pct(struct policy_params *p)
{
	p->scale_up_limit = (struct policy_rate_limit){0, 50, 60000};
}
static void
setup_uplimit_pct_small(struct policy_params *p)
{
	p->scale_up_limit = (struct policy_rate_limit){0, 10, 60000};
}
static void
setup_downlimit(struct policy_params *p)
{
	p->scale_down_limit = (struct policy_rate_limit){1, 10, 60000};
}

static struct policy_step step_above80 = {
	POLICY_METRIC_CPU, POLICY_STEP_ABOVE, 80, 60000, 2, 0, 0, 0};
static struct policy_step step_pct = {
	POLICY_METRIC_CPU, POLICY_STEP_ABOVE, 70, 0, 0, 10, 2, 0};
static struct policy_step step_below = {
	POLICY_METRIC_CPU, POLICY_STEP_BELOW, 20, 0, -1, 0, 0, 0};
static struct policy_step step_below_pct = {
	POLICY_METRIC_CPU, POLICY_STEP_BELOW, 20, 0, 0, -50, 1, 0};

static void
setup_steps_only(struct policy_params *p)
{
	p->target[POLICY_METRIC_CPU] = 0;
	p->steps = &step_above80;
	p->n_steps = 1;
}
static void
setup_step_pct(struct policy_params *p)
{
	p->target[POLICY_METRIC_CPU] = 0;
	p->steps = &step_pct;
	p->n_steps = 1;
}
static void
setup_step_below(struct policy_params *p)
{
	p->target[POLICY_METRIC_CPU] = 0;
	p->steps = &step_below;
	p->n_steps = 1;
}
static void
setup_step_below_pct(struct policy_params *p)
{
	p->target[POLICY_METRIC_CPU] = 0;
	p->steps = &step_below_pct;
	p->n_steps = 1;
}
static void
setup_step_and_target(struct policy_params *p)
{
	p->steps = &step_below;
	p->n_steps = 1;
}

/* Schedules: "office" weekdays 08:00-17:59 min 6; "night" 0-5 max 2. */
static struct policy_schedule scheds[2];
static void
setup_sched(struct policy_params *p)
{
	scheds[0].name = (char *)"office";
	assert_int_equal(policy_cron_parse("* 8-17 * * mon-fri",
					   &scheds[0].when), 0);
	scheds[0].min = 6;
	scheds[0].max = -1;
	scheds[1].name = (char *)"night";
	assert_int_equal(policy_cron_parse("* 0-5 * * *", &scheds[1].when), 0);
	scheds[1].min = -1;
	scheds[1].max = 2;
	p->schedules = scheds;
	p->n_schedules = 2;
	p->min = 3;
}
static void
setup_sched_min0(struct policy_params *p)
{
	setup_sched(p);
	p->min = 0;
}
/* Two overlapping windows: the highest min applies. */
static struct policy_schedule scheds2[2];
static void
setup_sched_overlap(struct policy_params *p)
{
	scheds2[0].name = (char *)"day";
	assert_int_equal(policy_cron_parse("* 8-20 * * *", &scheds2[0].when), 0);
	scheds2[0].min = 3;
	scheds2[0].max = -1;
	scheds2[1].name = (char *)"peak";
	assert_int_equal(policy_cron_parse("* 12-13 * * *", &scheds2[1].when),
			 0);
	scheds2[1].min = 5;
	scheds2[1].max = 8;
	p->schedules = scheds2;
	p->n_schedules = 2;
}
static void
setup_sched_cooldown(struct policy_params *p)
{
	setup_sched(p);
	p->min = 1;
	p->cooldown_ms = 300000;
}

static const struct policy_case cases[] = {
	/* ---- target tracking ---- */
	{"scale out: ceil(3 x 90 / 60)", setup_plain, {
		{0, 3, -1, 0, 90, NONE, -1, NOTIME, 5,
		 "cpu 90% > target 60% (±10%) over 3 ready -> want 5"},
		END}},
	{"tolerance band holds", setup_plain, {
		{0, 3, -1, 0, 65, NONE, -1, NOTIME, 3, "within target"},
		{10, 3, -1, 0, 55, NONE, -1, NOTIME, 3, "within target"},
		{20, 3, -1, 0, 66, NONE, -1, NOTIME, 3, "within target"},
		{30, 3, -1, 0, 66.5, NONE, -1, NOTIME, 4, "-> want 4"},
		END}},
	{"scale in (no window)", setup_plain, {
		{0, 6, -1, 0, 20, NONE, -1, NOTIME, 2, "< target 60%"},
		{10, 2, -1, 0, 0, NONE, -1, NOTIME, 1, "raised to min 1"},
		END}},
	{"max over metrics", setup_mem, {
		{0, 4, -1, 0, 30, 90, -1, NOTIME, 6, "memory 90% > target"},
		{10, 6, -1, 0, 70, 30, -1, NOTIME, 7, "cpu 70% > target"},
		END}},
	{"missing metric blocks scale-in", setup_mem, {
		{0, 4, -1, 0, 10, NONE, -1, NOTIME, 4,
		 "memory missing: no scale-in"},
		{10, 4, -1, 0, 90, NONE, -1, NOTIME, 6, "cpu 90%"},
		END}},
	{"all metrics missing: hold", setup_mem, {
		{0, 4, -1, 0, NONE, NONE, -1, NOTIME, 4,
		 "no metric data: target tracking holds"},
		END}},
	{"warming instances count as capacity", setup_plain, {
		/* 3 ready at 90 % = 4.5 instances; 5 desired cover it */
		{0, 5, 3, 2, 90, NONE, -1, NOTIME, 5, "covered by 5 desired"},
		/* 3 ready at 100 % = 5 instances: still covered */
		{10, 5, 3, 2, 100, NONE, -1, NOTIME, 5, "covered"},
		/* 5 ready (warm) at 100 %: now act */
		{20, 5, 5, 0, 100, NONE, -1, NOTIME, 9, "-> want 9"},
		END}},
	{"zero instances, min 0: nothing to measure", setup_min0, {
		{0, 0, 0, 0, NONE, NONE, -1, NOTIME, 0, "no ready instance"},
		END}},
	{"zero instances: min wins", setup_min2, {
		{0, 0, 0, 0, NONE, NONE, -1, NOTIME, 2, "raised to min 2"},
		/* booting, no data yet: hold */
		{10, 2, 0, 2, NONE, NONE, -1, NOTIME, 2, "no cpu data"},
		END}},
	{"scale from zero by schedule", setup_sched_min0, {
		{0, 0, 0, 0, NONE, NONE, -1, 7, 0, "no ready instance"},
		{60, 0, 0, 0, NONE, NONE, -1, 8, 6,
		 "raised to min 6 (schedule 'office')"},
		END}},
	{"min = max", setup_minmax4, {
		{0, 4, -1, 0, 99, NONE, -1, NOTIME, 4, "clamped to max 4"},
		{10, 6, -1, 0, 50, NONE, -1, NOTIME, 4, "clamped to max 4"},
		{20, 2, -1, 0, 10, NONE, -1, NOTIME, 4, "raised to min 4"},
		END}},
	{"capacity exhausted", setup_plain, {
		{0, 4, -1, 0, 90, NONE, 0, NOTIME, 4,
		 "placement has room for 0 more -> 4"},
		{10, 4, -1, 0, 90, NONE, 1, NOTIME, 5,
		 "placement has room for 1 more -> 5"},
		/* capacity never causes a scale-in */
		{20, 5, 4, 0, 50, NONE, 0, NOTIME, 4, "< target"},
		END}},
	/* ---- saturation ---- */
	{"saturated: at least double the ready capacity", setup_sat, {
		{0, 3, -1, 0, 98, NONE, -1, NOTIME, 6, "saturated (>= 95%)"},
		/* same reading while booting: no runaway */
		{10, 6, 3, 3, 100, NONE, -1, NOTIME, 6, "saturated"},
		END}},
	{"saturation off: plain formula", setup_plain, {
		{0, 3, -1, 0, 98, NONE, -1, NOTIME, 5, "-> want 5"},
		END}},
	/* ---- stabilization ---- */
	{"scale-up window: lowest recent", setup_upwin, {
		{0, 3, -1, 0, 62, NONE, -1, NOTIME, 3, "within"},
		{10, 3, -1, 0, 90, NONE, -1, NOTIME, 3,
		 "scale-up window 1m: lowest recent 3 -> 3"},
		{50, 3, -1, 0, 90, NONE, -1, NOTIME, 3, "scale-up window"},
		{60, 3, -1, 0, 90, NONE, -1, NOTIME, 5, "-> want 5"},
		END}},
	{"scale-up window skipped on a large increase", setup_upwin_skip, {
		{0, 10, -1, 0, 62, NONE, -1, NOTIME, 10, "within"},
		/* +2 of 10 = 20 %: not more, the window applies */
		{10, 10, -1, 0, 70, NONE, -1, NOTIME, 10, "scale-up window"},
		/* +5 of 10: skip */
		{20, 10, -1, 0, 90, NONE, -1, NOTIME, 15,
		 "scale-up window skipped"},
		END}},
	{"saturation skips the scale-up window", setup_upwin_sat, {
		{0, 3, -1, 0, 62, NONE, -1, NOTIME, 3, "within"},
		{10, 3, -1, 0, 97, NONE, -1, NOTIME, 6,
		 "saturated: scale-up window skipped"},
		END}},
	{"scale-down window: highest recent", setup_downwin, {
		{0, 6, -1, 0, 60, NONE, -1, NOTIME, 6, "within"},
		{10, 6, -1, 0, 20, NONE, -1, NOTIME, 6,
		 "scale-down window 1m: highest recent 6"},
		{50, 6, -1, 0, 20, NONE, -1, NOTIME, 6, "scale-down window"},
		{60, 6, -1, 0, 20, NONE, -1, NOTIME, 2, "-> want 2"},
		END}},
	{"scale-down window: partial step down", setup_downwin, {
		{0, 6, -1, 0, 60, NONE, -1, NOTIME, 6, "within"},
		{30, 6, -1, 0, 40, NONE, -1, NOTIME, 6, "highest recent 6"},
		/* the 6 expires; the 4 from t=30 is the highest now */
		{60, 6, -1, 0, 20, NONE, -1, NOTIME, 4, "highest recent 4"},
		END}},
	/* ---- cooldown ---- */
	{"cooldown after a change", setup_cooldown, {
		{0, 3, -1, 0, 90, NONE, -1, NOTIME, 5, "want 5"},
		{60, 5, -1, 0, 90, NONE, -1, NOTIME, 5,
		 "cooldown: last change 1m ago, 5m cooldown"},
		{300, 5, -1, 0, 90, NONE, -1, NOTIME, 8, "want 8"},
		END}},
	{"schedule window opens during a cooldown", setup_sched_cooldown, {
		{0, 2, -1, 0, 90, NONE, -1, 7, 3, "want 3"},
		{60, 3, -1, 0, 90, NONE, -1, 7, 3, "cooldown"},
		/* 08:00 Monday: min 6 applies at once */
		{120, 3, -1, 0, 90, NONE, -1, 8, 6,
		 "raised to min 6 (schedule 'office')"},
		END}},
	{"schedule max at night", setup_sched, {
		{0, 5, -1, 0, 90, NONE, -1, 3, 2,
		 "clamped to max 2 (schedule 'night')"},
		/* the group's min 3 yields to the schedule's max 2 */
		{10, 2, -1, 0, 10, NONE, -1, 3, 2, NULL},
		{20, 2, -1, 0, 50, NONE, -1, 12, 6, "raised to min 6"},
		{30, 6, -1, 0, 50, NONE, -1, 20, 5, "< target"},
		END}},
	{"overlapping schedules: the highest min", setup_sched_overlap, {
		{0, 1, -1, 0, 50, NONE, -1, 9, 3,
		 "raised to min 3 (schedule 'day')"},
		{10, 3, -1, 0, 50, NONE, -1, 12, 5,
		 "raised to min 5 (schedule 'peak')"},
		{20, 5, -1, 0, 99, NONE, -1, 12, 8,
		 "clamped to max 8 (schedule 'peak')"},
		/* windows close: the group's bounds 1..20 again */
		{30, 8, -1, 0, 20, NONE, -1, 22, 3, "< target"},
		END}},
	{"scale in while instances boot (HPA)", setup_plain, {
		/* 3 ready at 20 % = 1 instance: the booting ones go too */
		{0, 5, 3, 2, 20, NONE, -1, NOTIME, 1, "-> want 1"},
		END}},
	/* ---- rate limits ---- */
	{"scale-up limit +2 per minute", setup_uplimit, {
		{0, 4, -1, 0, 100, NONE, -1, NOTIME, 6,
		 "scale-up limited to +2 per 1m -> 6"},
		{10, 6, 4, 2, 100, NONE, -1, NOTIME, 6, "limited"},
		{61, 6, -1, 0, 100, NONE, -1, NOTIME, 8, "limited to +2"},
		END}},
	{"scale-up limit 50 % per minute", setup_uplimit_pct, {
		{0, 10, -1, 0, 100, NONE, -1, NOTIME, 15,
		 "scale-up limited to +5 per 1m -> 15"},
		END}},
	{"a percentage limit still allows one", setup_uplimit_pct_small, {
		/* 10 % of 2 rounds up to 1 */
		{0, 2, -1, 0, 100, NONE, -1, NOTIME, 3,
		 "scale-up limited to +1 per 1m -> 3"},
		END}},
	{"scale-down limit max(1, 10 %) per minute", setup_downlimit, {
		{0, 10, -1, 0, 12, NONE, -1, NOTIME, 9,
		 "scale-down limited to -1 per 1m -> 9"},
		{30, 9, -1, 0, 12, NONE, -1, NOTIME, 9, "limited"},
		{61, 9, -1, 0, 12, NONE, -1, NOTIME, 8, "limited"},
		END}},
	/* ---- step rules ---- */
	{"step: above 80 % for 1m -> +2", setup_steps_only, {
		{0, 3, -1, 0, 85, NONE, -1, NOTIME, 3,
		 "step 1: cpu 85% > 80% for 0s of 1m"},
		{30, 3, -1, 0, 85, NONE, -1, NOTIME, 3, "for 30s of 1m"},
		{60, 3, -1, 0, 85, NONE, -1, NOTIME, 5, "+2 -> want 5"},
		/* the timer restarted with the change */
		{70, 5, -1, 0, 85, NONE, -1, NOTIME, 5, "for 10s of 1m"},
		/* the condition breaks: timer reset */
		{80, 5, -1, 0, 50, NONE, -1, NOTIME, 5, "no step rule fires"},
		{90, 5, -1, 0, 90, NONE, -1, NOTIME, 5, "for 0s of 1m"},
		END}},
	{"step: warming instances answer the same step", setup_steps_only, {
		{0, 3, -1, 0, 85, NONE, -1, NOTIME, 3, NULL},
		{60, 5, 3, 2, 85, NONE, -1, NOTIME, 5,
		 "covered by 2 warming"},
		END}},
	{"step: +10 % with a minimum step of 2", setup_step_pct, {
		{0, 3, -1, 0, 75, NONE, -1, NOTIME, 5, "+2 -> want 5"},
		END}},
	{"step: below 20 % -> -1", setup_step_below, {
		{0, 4, -1, 0, 10, NONE, -1, NOTIME, 3, "-1 -> want 3"},
		END}},
	{"step: below 20 % -> -50 %", setup_step_below_pct, {
		{0, 10, -1, 0, 10, NONE, -1, NOTIME, 5, "-5 -> want 5"},
		END}},
	{"step and target: the largest wins", setup_step_and_target, {
		/* target tracking wants 1, the step 3: 3 */
		{0, 4, -1, 0, 15, NONE, -1, NOTIME, 3, "-1 -> want 3"},
		/* target tracking within its band keeps 4, the step is silent */
		{10, 4, -1, 0, 56, NONE, -1, NOTIME, 4, "within"},
		END}},
	{"steps without data do nothing", setup_steps_only, {
		{0, 3, -1, 0, NONE, NONE, -1, NOTIME, 3, "no step rule fires"},
		END}},
};

static void
run_case(const struct policy_case *c)
{
	struct policy_params p;
	struct policy_state *st = policy_state_new();
	int prev = 0;

	base(&p);
	c->setup(&p);
	for (unsigned i = 0; i < ARRAY_SIZE(c->steps) && c->steps[i].t >= 0;
	     i++) {
		const struct step_in *s = &c->steps[i];
		struct policy_input in;
		struct policy_decision d;

		memset(&in, 0, sizeof(in));
		in.now_ms = s->t * 1000;
		in.desired = s->desired >= 0 ? s->desired : prev;
		in.ready = s->ready >= 0 ? s->ready : in.desired;
		in.warming = s->warming;
		in.instances = in.desired;
		in.capacity_left = s->cap_left;
		if (s->cpu >= 0) {
			in.metric[POLICY_METRIC_CPU] = s->cpu;
			in.metric_present[POLICY_METRIC_CPU] = true;
		}
		if (s->mem >= 0) {
			in.metric[POLICY_METRIC_MEMORY] = s->mem;
			in.metric_present[POLICY_METRIC_MEMORY] = true;
		}
		if (s->hour != NOTIME) {
			in.have_local_time = true;
			/* Monday 2024-01-01 */
			in.local_time.tm_year = 124;
			in.local_time.tm_mon = 0;
			in.local_time.tm_mday = 1;
			in.local_time.tm_wday = 1;
			in.local_time.tm_hour = s->hour;
			in.local_time.tm_min = 0;
		}
		policy_decide(&p, &in, st, &d);
		if (d.to != s->want || (s->why && !strstr(d.reason, s->why)))
			fail_msg("case '%s', decision %u (t=%llds): got %d, "
				 "want %d; reason: %s; expected in it: %s",
				 c->name, i + 1, (long long)s->t, d.to, s->want,
				 d.reason, s->why ? s->why : "(any)");
		assert_int_equal(d.from, in.desired);
		assert_int_equal(d.outcome,
				 d.to > d.from ? POLICY_OUTCOME_SCALE_OUT
				 : d.to < d.from ? POLICY_OUTCOME_SCALE_IN
				 : POLICY_OUTCOME_HOLD);
		prev = d.to;
	}
	policy_state_free(st);
}


/* ---- application metrics (heartbeats) ---------------------------------- */

/* One decision of a group scaling on an app metric (p->app[0]). */
struct app_in {
	int64_t t;       /* seconds */
	int desired;     /* -1: the previous decision's result */
	int ready;       /* -1: = desired */
	double app;      /* NONE: no recent value */
	int reporting;
	double cpu;      /* NONE: missing */
	int want;
	const char *why;
};

struct app_case {
	const char *name;
	void (*setup)(struct policy_params *p);
	struct app_in steps[6];
};

static void
app_avg30(struct policy_params *p)
{
	p->target[POLICY_METRIC_CPU] = 0;
	snprintf(p->app[0].name, sizeof(p->app[0].name), "requests_per_s");
	p->app[0].kind = POLICY_APP_AVERAGE;
	p->app[0].target = 30;
	p->n_app = 1;
}
static void
app_avg30_cpu(struct policy_params *p)
{
	app_avg30(p);
	p->target[POLICY_METRIC_CPU] = 60;
}
static void
app_total100(struct policy_params *p)
{
	p->target[POLICY_METRIC_CPU] = 0;
	snprintf(p->app[0].name, sizeof(p->app[0].name), "queue_length");
	p->app[0].kind = POLICY_APP_TOTAL;
	p->app[0].target = 100;
	p->n_app = 1;
}
static struct policy_step app_step_above50 = {
	POLICY_METRIC_CPU, POLICY_STEP_ABOVE, 50, 0, 2, 0, 0, 1};
static void
app_step(struct policy_params *p)
{
	app_avg30(p);
	p->app[0].target = 0; /* named by the step only */
	p->steps = &app_step_above50;
	p->n_steps = 1;
}

#define APP_END {-1, 0, 0, 0, 0, 0, 0, NULL}

static const struct app_case app_cases[] = {
	{"app average: grow to ceil(3 x 45 / 30)", app_avg30, {
		{0, 3, -1, 45, 3, NONE, 5,
		 "requests_per_s 45 (mean of 3) > target 30 (±10%) over 3 "
		 "ready -> want 5"},
		APP_END}},
	{"app average: shrink", app_avg30, {
		{0, 6, -1, 10, 6, NONE, 2, "requests_per_s 10 (mean of 6) < "
		 "target 30"},
		APP_END}},
	{"app average: within the band", app_avg30, {
		{0, 4, -1, 32, 4, NONE, 4, "within target 30"},
		APP_END}},
	{"app average: mean of the reporting instances only", app_avg30, {
		/* 2 of 4 reported 60: the mean holds for all 4 ready */
		{0, 4, -1, 60, 2, NONE, 8, "(mean of 2) > target 30"},
		APP_END}},
	{"app: no recent value holds, never read as zero", app_avg30, {
		{0, 4, -1, NONE, 0, NONE, 4,
		 "no recent value of app metric requests_per_s; target "
		 "tracking holds"},
		APP_END}},
	{"app missing with cpu: scale-out yes, scale-in no", app_avg30_cpu, {
		{0, 4, -1, NONE, 0, 90, 6, "cpu 90%"},
		{10, 6, -1, NONE, 0, 10, 6,
		 "requests_per_s missing: no scale-in"},
		{20, 6, -1, 60, 6, 10, 12, "requests_per_s 60 (mean of 6)"},
		APP_END}},
	{"app total: ceil(total / per instance)", app_total100, {
		{0, 2, -1, 950, 2, NONE, 10,
		 "queue_length 950 (total) > target 100 per instance (±10%) "
		 "over 2 ready -> want 10"},
		{10, 10, -1, 420, 10, NONE, 5, "queue_length 420 (total) < "
		 "target 100 per instance"},
		{20, 5, -1, 0, 5, NONE, 1, "raised to min 1"},
		APP_END}},
	{"app total: none reported -> hold", app_total100, {
		{0, 3, -1, NONE, 0, NONE, 3,
		 "no recent value of app metric queue_length"},
		APP_END}},
	{"app step rule", app_step, {
		{0, 3, -1, 40, 3, NONE, 3, "no step rule fires"},
		{10, 3, -1, 55, 3, NONE, 5, "step 1: requests_per_s 55 > 50"},
		{20, 5, -1, NONE, 0, NONE, 5, "no step rule fires"},
		APP_END}},
};

static void
test_app_cases(void **state)
{
	(void)state;
	for (size_t c = 0; c < ARRAY_SIZE(app_cases); c++) {
		const struct app_case *ac = &app_cases[c];
		struct policy_params p;
		struct policy_state *st = policy_state_new();
		int prev = 0;

		base(&p);
		ac->setup(&p);
		for (unsigned i = 0; i < ARRAY_SIZE(ac->steps) &&
		     ac->steps[i].t >= 0; i++) {
			const struct app_in *s = &ac->steps[i];
			struct policy_input in;
			struct policy_decision d;
			struct strbuf sb = STRBUF_INIT;

			memset(&in, 0, sizeof(in));
			in.now_ms = s->t * 1000;
			in.desired = s->desired >= 0 ? s->desired : prev;
			in.ready = s->ready >= 0 ? s->ready : in.desired;
			in.instances = in.desired;
			in.capacity_left = -1;
			if (s->app >= 0) {
				in.app[0] = s->app;
				in.app_present[0] = true;
				in.app_reporting[0] = s->reporting;
			}
			if (s->cpu >= 0) {
				in.metric[POLICY_METRIC_CPU] = s->cpu;
				in.metric_present[POLICY_METRIC_CPU] = true;
			}
			policy_decide(&p, &in, st, &d);
			if (d.to != s->want || !strstr(d.reason, s->why))
				fail_msg("case '%s', decision %u: got %d, want "
					 "%d; reason: %s; expected in it: %s",
					 ac->name, i + 1, d.to, s->want,
					 d.reason, s->why);
			/* the explanation names the metric and its value */
			policy_decision_format(&d, &p, &sb);
			if (s->app >= 0) {
				char want[96];

				snprintf(want, sizeof(want), ", %s %.6g",
					 p.app[0].name, s->app);
				if (!strstr(strbuf_str(&sb), want))
					fail_msg("'%s' not in '%s'", want,
						 strbuf_str(&sb));
			}
			strbuf_release(&sb);
			policy_decision_json(&d, &p, &sb);
			if (!strstr(strbuf_str(&sb), "\"app_metrics\": {"))
				fail_msg("no app_metrics in %s", strbuf_str(&sb));
			strbuf_release(&sb);
			prev = d.to;
		}
		policy_state_free(st);
	}
}

static void
test_app_input_from_instances(void **state)
{
	struct policy_params p;
	struct policy_input in;
	struct policy_instance_sample s[4];

	(void)state;
	base(&p);
	p.warmup_ms = 60000;
	snprintf(p.app[0].name, sizeof(p.app[0].name), "rps");
	p.app[0].target = 30;
	snprintf(p.app[1].name, sizeof(p.app[1].name), "queue");
	p.app[1].kind = POLICY_APP_TOTAL;
	p.app[1].target = 100;
	p.n_app = 2;
	assert_int_equal(policy_app_find(&p, "queue"), 1);
	assert_int_equal(policy_app_find(&p, "nope"), -1);
	memset(s, 0, sizeof(s));
	memset(&in, 0, sizeof(in));
	in.now_ms = 1000000;
	s[0].ready = true;
	s[0].app[0] = 40;
	s[0].app_present[0] = true;
	s[0].app[1] = 500;
	s[0].app_ms[1] = 10;
	s[0].app_present[1] = true;
	s[1] = s[0];
	s[1].app[0] = 20;
	s[1].app[1] = 300;      /* newer report of the total */
	s[1].app_ms[1] = 20;
	s[2] = s[0];            /* no recent value (the caller says) */
	s[2].app_present[0] = s[2].app_present[1] = false;
	s[3] = s[0];            /* warming: left out */
	s[3].ready_ms = in.now_ms - 30000;
	s[3].app[0] = 1000;
	s[3].app[1] = 9999;
	s[3].app_ms[1] = 99;
	policy_input_from_instances(&in, &p, s, 4);
	assert_int_equal(in.ready, 4);
	assert_true(in.app_present[0]);
	assert_float_equal(in.app[0], 30, 1e-9);
	assert_int_equal(in.app_reporting[0], 2);
	assert_true(in.app_present[1]);
	assert_float_equal(in.app[1], 300, 1e-9);
	assert_false(in.app_present[2]);
	/* nobody reported */
	policy_input_from_instances(&in, &p, s + 2, 1);
	assert_false(in.app_present[0]);
	assert_int_equal(in.app_reporting[0], 0);

	assert_true(policy_app_name_ok("requests_per_s"));
	assert_true(policy_app_name_ok("app.latency_p99"));
	assert_false(policy_app_name_ok(""));
	assert_false(policy_app_name_ok("a-b"));
	assert_false(policy_app_name_ok("a b"));
}

static void
test_engine_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		run_case(&cases[i]);
}

/* ---- cron ------------------------------------------------------------- */

static void
test_cron_parse(void **state)
{
	static const struct {
		const char *expr;
		const char *err; /* NULL: valid */
	} cases_[] = {
		{"* * * * *", NULL},
		{"0 8 * * mon-fri", NULL},
		{"*/15 8-17 1,15 jan-mar,dec sun", NULL},
		{"0-30/10 * * * 7", NULL},
		{"5/20 * * * *", NULL},
		{"  0   8  *  *  MON ", NULL},
		{"", "0 fields, expected 5"},
		{"* * * *", "4 fields, expected 5"},
		{"* * * * * *", "too many fields"},
		{"60 * * * *", "minute field: 60 is out of range 0-59"},
		{"* 24 * * *", "hour field: 24 is out of range 0-23"},
		{"* * 0 * *", "day-of-month field: 0 is out of range 1-31"},
		{"* * 32 * *", "day-of-month field"},
		{"* * * 13 *", "month field: 13 is out of range 1-12"},
		{"* * * foo *", "month field: unknown name 'foo'"},
		{"* * * * 8", "day-of-week field: 8 is out of range 0-7"},
		{"* * * * funday", "day-of-week field: unknown name 'funday'"},
		{"* 17-8 * * *", "hour field: range '17-8' ends before it starts"},
		{"*/0 * * * *", "minute field: step 0 is out of range"},
		{"*/ * * * *", "minute field: missing step"},
		{"*/x * * * *", "minute field: step 'x' is not a number"},
		{"1,,2 * * * *", "minute field: empty list element"},
		{"1, * * * *", "minute field: empty list element"},
		{"- * * * *", "minute field: missing value"},
		{"1x * * * *", "minute field: '1x' is not a number"},
		{"* a * * *", "hour field: 'a' is not a number"},
		{"99999999999 * * * *", "minute field"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases_); i++) {
		struct policy_cron c;
		int rc = policy_cron_parse(cases_[i].expr, &c);

		if (!cases_[i].err) {
			if (rc != 0)
				fail_msg("'%s': %s", cases_[i].expr, err_msg());
		} else {
			if (rc != -1)
				fail_msg("'%s' parsed", cases_[i].expr);
			if (!strstr(err_msg(), cases_[i].err))
				fail_msg("'%s': got '%s', want '%s'",
					 cases_[i].expr, err_msg(), cases_[i].err);
		}
	}
}

static void
test_cron_match(void **state)
{
	static const struct {
		const char *expr;
		int mon, mday, wday, hour, min; /* mon 1-12 */
		bool match;
	} cases_[] = {
		{"* 8-17 * * mon-fri", 1, 1, 1, 8, 0, true},
		{"* 8-17 * * mon-fri", 1, 1, 1, 18, 0, false},
		{"* 8-17 * * mon-fri", 1, 6, 6, 9, 0, false},   /* Saturday */
		{"*/15 * * * *", 5, 5, 0, 3, 45, true},
		{"*/15 * * * *", 5, 5, 0, 3, 44, false},
		{"0-30/10 * * * *", 5, 5, 0, 3, 20, true},
		{"0-30/10 * * * *", 5, 5, 0, 3, 40, false},
		{"5/20 * * * *", 5, 5, 0, 3, 45, true},
		{"* * * * 7", 1, 7, 0, 0, 0, true},             /* 7 = Sunday */
		{"* * * * sun", 1, 7, 0, 0, 0, true},
		{"* * * jan,dec *", 12, 24, 2, 0, 0, true},
		{"* * * jan,dec *", 6, 24, 1, 0, 0, false},
		/* Vixie: both day fields restricted -> either matches */
		{"* * 1 * mon", 3, 1, 5, 0, 0, true},           /* the 1st, Fri */
		{"* * 1 * mon", 3, 4, 1, 0, 0, true},           /* a Monday */
		{"* * 1 * mon", 3, 5, 2, 0, 0, false},
		/* one restricted -> it alone decides */
		{"* * 1 * *", 3, 5, 2, 0, 0, false},
		{"* * * * mon", 3, 1, 5, 0, 0, false},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases_); i++) {
		struct policy_cron c;
		struct tm tm;

		memset(&tm, 0, sizeof(tm));
		tm.tm_mon = cases_[i].mon - 1;
		tm.tm_mday = cases_[i].mday;
		tm.tm_wday = cases_[i].wday;
		tm.tm_hour = cases_[i].hour;
		tm.tm_min = cases_[i].min;
		assert_int_equal(policy_cron_parse(cases_[i].expr, &c), 0);
		if (policy_cron_match(&c, &tm) != cases_[i].match)
			fail_msg("'%s' case %zu: expected %s", cases_[i].expr, i,
				 cases_[i].match ? "a match" : "no match");
	}
}

/* ---- the rest -------------------------------------------------------- */

static void
test_metric_names(void **state)
{
	(void)state;
	for (unsigned i = 0; i < POLICY_METRIC_LAST; i++) {
		enum policy_metric m;

		assert_int_equal(policy_metric_from_name(
			policy_metric_name((enum policy_metric)i), &m), 0);
		assert_int_equal(m, i);
	}
	assert_int_equal(policy_metric_from_name("cpus", &(enum policy_metric){0}),
			 -1);
	assert_non_null(strstr(err_msg(), "unknown metric 'cpus'"));
	assert_true(policy_metric_is_percent(POLICY_METRIC_CPU));
	assert_true(policy_metric_is_percent(POLICY_METRIC_MEMORY));
	assert_false(policy_metric_is_percent(POLICY_METRIC_NET_BYTES));
}

static void
test_input_from_instances(void **state)
{
	struct policy_params p;
	struct policy_input in;
	struct policy_instance_sample s[4];

	(void)state;
	base(&p);
	p.warmup_ms = 60000;
	memset(s, 0, sizeof(s));
	memset(&in, 0, sizeof(in));
	in.now_ms = 1000000;
	/* warm, 80 % */
	s[0].ready = true;
	s[0].ready_ms = 0;
	s[0].metric[POLICY_METRIC_CPU] = 80;
	s[0].metric_present[POLICY_METRIC_CPU] = true;
	/* warm, 40 %, memory too */
	s[1] = s[0];
	s[1].metric[POLICY_METRIC_CPU] = 40;
	s[1].metric[POLICY_METRIC_MEMORY] = 50;
	s[1].metric_present[POLICY_METRIC_MEMORY] = true;
	/* ready 30 s ago: warming, its 100 % is left out */
	s[2] = s[0];
	s[2].ready_ms = in.now_ms - 30000;
	s[2].metric[POLICY_METRIC_CPU] = 100;
	/* booting */
	s[3].ready = false;
	policy_input_from_instances(&in, &p, s, 4);
	assert_int_equal(in.instances, 4);
	assert_int_equal(in.ready, 3);
	assert_int_equal(in.warming, 2);
	assert_true(in.metric_present[POLICY_METRIC_CPU]);
	assert_float_equal(in.metric[POLICY_METRIC_CPU], 60, 1e-9);
	assert_true(in.metric_present[POLICY_METRIC_MEMORY]);
	assert_float_equal(in.metric[POLICY_METRIC_MEMORY], 50, 1e-9);
	assert_false(in.metric_present[POLICY_METRIC_DISK_IOPS]);

	/* ready for less than an interval: capacity on the way, not load */
	s[2].ready_ms = in.now_ms - 5000;
	policy_input_from_instances(&in, &p, s, 4);
	assert_int_equal(in.ready, 2);
	assert_int_equal(in.warming, 2);
	assert_float_equal(in.metric[POLICY_METRIC_CPU], 60, 1e-9);
	s[2].ready_ms = in.now_ms - 30000;

	/* only warming instances: no data */
	policy_input_from_instances(&in, &p, s + 2, 2);
	assert_int_equal(in.ready, 1);
	assert_int_equal(in.warming, 2);
	assert_false(in.metric_present[POLICY_METRIC_CPU]);
}

static void
test_params(void **state)
{
	struct policy_params p, q;
	struct policy_step steps[2] = {step_above80, step_below};

	(void)state;
	policy_params_defaults(&p);
	assert_true(p.min <= p.max);
	assert_true(p.interval_ms > 0);
	assert_float_equal(p.tolerance, 0.10, 1e-9);
	assert_int_equal(p.cooldown_ms, 0);
	assert_true(p.scale_down_window_ms > p.scale_up_window_ms);
	assert_true(p.saturation.above_pct > 0);
	/* no metric is tracked unless the configuration says so */
	for (unsigned m = 0; m < POLICY_METRIC_LAST; m++)
		assert_float_equal(p.target[m], 0, 0);

	p.steps = xcalloc(2, sizeof(*p.steps));
	memcpy(p.steps, steps, sizeof(steps));
	p.n_steps = 2;
	p.schedules = xcalloc(1, sizeof(*p.schedules));
	p.schedules[0].name = xstrdup("office");
	p.schedules[0].min = 4;
	p.n_schedules = 1;
	policy_params_copy(&q, &p);
	policy_params_release(&p);
	assert_null(p.steps);
	assert_int_equal(p.n_schedules, 0);
	assert_int_equal(q.n_steps, 2);
	assert_int_equal(q.steps[1].dir, POLICY_STEP_BELOW);
	assert_string_equal(q.schedules[0].name, "office");
	assert_int_equal(q.schedules[0].min, 4);
	policy_params_release(&q);
	policy_params_release(NULL);
}

static void
test_format_and_note(void **state)
{
	struct policy_params p;
	struct policy_state *st = policy_state_new();
	struct policy_input in;
	struct policy_decision d;
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	base(&p);
	p.max = 8;
	p.cooldown_ms = 60000;
	memset(&in, 0, sizeof(in));
	in.desired = 3;
	in.ready = 3;
	in.instances = 3;
	in.capacity_left = 5;
	in.metric[POLICY_METRIC_CPU] = 87;
	in.metric_present[POLICY_METRIC_CPU] = true;
	in.now_ms = 100000;
	policy_decide(&p, &in, st, &d);
	assert_int_equal(d.to, 5);
	policy_decision_format(&d, &p, &sb);
	assert_non_null(strstr(strbuf_str(&sb), "3 -> 5 (scale out): cpu 87% > "
				"target 60% (±10%) over 3 ready -> want 5"));
	assert_non_null(strstr(strbuf_str(&sb), "[ready 3, warming 0, cpu 87%, "
				"bounds 1..8, room 5]"));
	strbuf_reset(&sb);
	policy_decision_json(&d, &p, &sb);
	assert_string_equal(strbuf_str(&sb),
		"{\"outcome\": \"scale_out\", \"from\": 3, \"to\": 5, "
		"\"reason\": \"cpu 87% > target 60% (±10%) over 3 ready -> want "
		"5\", \"ready\": 3, \"warming\": 0, \"instances\": 3, "
		"\"capacity_left\": 5, \"metrics\": {\"cpu\": 87}, \"min\": 1, "
		"\"max\": 8, \"schedule\": null, \"recommendation\": 5, "
		"\"stabilized\": 5, \"limited\": 5}");
	strbuf_reset(&sb);

	/* A manual change starts the cooldown too. */
	policy_state_note_change(st, 200000, 5, 2);
	in.now_ms = 230000;
	in.desired = 2;
	in.ready = 2;
	policy_decide(&p, &in, st, &d);
	assert_int_equal(d.to, 2);
	assert_non_null(strstr(d.reason, "cooldown: last change 30s ago"));
	policy_decision_format(&d, &p, &sb);
	assert_non_null(strstr(strbuf_str(&sb), "2 (hold): "));
	strbuf_release(&sb);
	policy_state_free(st);
	policy_state_free(NULL);
}

/* Predictive scaling: the forecast floor raises, never lowers; only in
 * forecast_and_scale; skips the scale-up window; shown in the bracket
 * and the JSON. */
static void
run_forecast(const struct policy_params *p, struct policy_state *st,
	     int64_t t, int desired, int ready, double cpu, int forecast,
	     struct policy_decision *d)
{
	struct policy_input in;

	memset(&in, 0, sizeof(in));
	in.now_ms = t * 1000;
	in.desired = desired;
	in.ready = ready;
	in.instances = desired;
	in.capacity_left = -1;
	if (cpu >= 0) {
		in.metric[POLICY_METRIC_CPU] = cpu;
		in.metric_present[POLICY_METRIC_CPU] = true;
	}
	if (forecast >= 0) {
		in.have_forecast = true;
		in.forecast = forecast;
	}
	policy_decide(p, &in, st, d);
}

static void
test_predictive(void **state)
{
	struct policy_params p;
	struct policy_state *st;
	struct policy_decision d;
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	base(&p);
	p.scale_up_window_ms = 60000;
	p.scale_down_window_ms = 60000;
	p.scale_up_window_skip_pct = 30;
	p.predictive.mode = POLICY_PREDICTIVE_FORECAST_AND_SCALE;
	p.predictive.buffer_ms = 300000;
	p.predictive.window_ms = 600000;

	/* the forecast wins over "within target", no scale-up window */
	st = policy_state_new();
	run_forecast(&p, st, 0, 3, 3, 60, -1, &d);
	assert_int_equal(d.forecast, -1);
	run_forecast(&p, st, 10, 3, 3, 60, 6, &d);
	assert_int_equal(d.to, 6);
	assert_int_equal(d.forecast, 6);
	assert_non_null(strstr(d.reason, "forecast: 6 needed in 5m..15m -> "
			       "want 6"));
	assert_non_null(strstr(d.reason, "forecast: scale-up window skipped"));
	policy_decision_format(&d, &p, &sb);
	assert_non_null(strstr(strbuf_str(&sb), ", forecast 6]"));
	strbuf_reset(&sb);
	policy_decision_json(&d, &p, &sb);
	assert_non_null(strstr(strbuf_str(&sb), "\"predictive\": "
			       "\"forecast_and_scale\", \"forecast\": 6}"));
	/* target tracking above the floor wins */
	run_forecast(&p, st, 20, 6, 6, 90, 4, &d);
	assert_int_equal(d.to, 9);
	assert_null(strstr(d.reason, "forecast:"));
	/* a low forecast never scales in: the usual scale-down window */
	run_forecast(&p, st, 30, 9, 9, 60, 1, &d);
	assert_int_equal(d.to, 9);
	policy_state_free(st);

	/* without data (nothing ready), the floor still raises */
	st = policy_state_new();
	run_forecast(&p, st, 0, 1, 0, -1, 4, &d);
	assert_int_equal(d.to, 4);
	/* clamped to max like anything else */
	run_forecast(&p, st, 10, 4, 0, -1, 50, &d);
	assert_int_equal(d.to, 20);
	policy_state_free(st);

	/* forecast_only: shown, not acted on */
	p.predictive.mode = POLICY_PREDICTIVE_FORECAST_ONLY;
	st = policy_state_new();
	run_forecast(&p, st, 0, 3, 3, 60, 6, &d);
	assert_int_equal(d.to, 3);
	assert_int_equal(d.forecast, 6);
	assert_non_null(strstr(d.reason, "(forecast_only: not acting)"));
	strbuf_reset(&sb);
	policy_decision_json(&d, &p, &sb);
	assert_non_null(strstr(strbuf_str(&sb), "\"predictive\": "
			       "\"forecast_only\", \"forecast\": 6}"));
	policy_state_free(st);

	/* off: ignored, not shown */
	p.predictive.mode = POLICY_PREDICTIVE_OFF;
	st = policy_state_new();
	run_forecast(&p, st, 0, 3, 3, 60, 6, &d);
	assert_int_equal(d.to, 3);
	assert_int_equal(d.forecast, -1);
	strbuf_reset(&sb);
	policy_decision_format(&d, &p, &sb);
	assert_null(strstr(strbuf_str(&sb), "forecast"));
	strbuf_reset(&sb);
	policy_decision_json(&d, &p, &sb);
	assert_null(strstr(strbuf_str(&sb), "forecast"));
	policy_state_free(st);
	strbuf_release(&sb);
}

/* The load predictive scaling records, and the floor from a forecast. */
static void
test_load_instances(void **state)
{
	struct policy_params p;
	struct policy_input in;

	(void)state;
	base(&p);
	memset(&in, 0, sizeof(in));
	in.ready = 3;
	assert_true(isnan(policy_load_instances(&p, &in)));
	in.metric[POLICY_METRIC_CPU] = 90;
	in.metric_present[POLICY_METRIC_CPU] = true;
	assert_float_equal(policy_load_instances(&p, &in), 4.5, 1e-9);
	snprintf(p.app[0].name, sizeof(p.app[0].name), "requests_per_s");
	p.app[0].target = 20;
	p.n_app = 1;
	in.app[0] = 40;
	in.app_present[0] = true;
	assert_float_equal(policy_load_instances(&p, &in), 6, 1e-9);
	p.app[0].kind = POLICY_APP_TOTAL;
	in.app[0] = 200;
	assert_float_equal(policy_load_instances(&p, &in), 10, 1e-9);
	in.ready = 0;
	assert_true(isnan(policy_load_instances(&p, &in)));
	assert_int_equal(policy_forecast_floor(4.0000000001), 4);
	assert_int_equal(policy_forecast_floor(4.2), 5);
	assert_int_equal(policy_forecast_floor(NAN), 0);
	assert_int_equal(policy_forecast_floor(-3), 0);
	assert_int_equal(policy_forecast_floor(1e300), 1000000000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_engine_cases),
		cmocka_unit_test(test_app_cases),
		cmocka_unit_test(test_app_input_from_instances),
		cmocka_unit_test(test_cron_parse),
		cmocka_unit_test(test_cron_match),
		cmocka_unit_test(test_metric_names),
		cmocka_unit_test(test_input_from_instances),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_format_and_note),
		cmocka_unit_test(test_predictive),
		cmocka_unit_test(test_load_instances),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
