/*
 * Unit tests for simulate.c on small synthetic traces whose figures were
 * worked out by hand (the derivations are in the comments).
 */
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
#include "simulate.h"
#include "util.h"

static void
hpa(struct policy_params *p)
{
	memset(p, 0, sizeof(*p));
	p->min = 1;
	p->max = 10;
	p->interval_ms = 10000;
	p->target[POLICY_METRIC_CPU] = 60;
	p->tolerance = 0.10;
}

static uint32_t *
make_trace(size_t n, size_t step_at, uint32_t before, uint32_t after)
{
	uint32_t *v = xcalloc(n, sizeof(*v));

	for (size_t i = 0; i < n; i++)
		v[i] = i < step_at ? before : after;
	return v;
}

struct expect {
	double vm_seconds;
	uint64_t under, excess, actions;
	int min_vms, max_vms;
};

static void
check(const struct sim_result *r, const struct expect *e)
{
	assert_float_equal(r->vm_hours, e->vm_seconds / 3600.0, 1e-9);
	assert_int_equal(r->under_provisioned_seconds, e->under);
	assert_int_equal(r->excess_requests, e->excess);
	assert_int_equal(r->scale_actions, e->actions);
	assert_int_equal(r->min_vms, e->min_vms);
	assert_int_equal(r->max_vms, e->max_vms);
}

/* A fixed fleet of 2 under 50 req/s: 80 req/s of capacity, never short. */
static void
test_constant_enough(void **state)
{
	struct policy_params p;
	struct sim_options o;
	struct sim_result r;
	uint32_t *t = make_trace(100, 0, 50, 50);
	struct expect e = {200, 0, 0, 0, 2, 2};

	(void)state;
	hpa(&p);
	p.min = p.max = 2;
	sim_options_defaults(&o);
	assert_int_equal(sim_run(&p, t, 100, &o, &r), 0);
	check(&r, &e);
	assert_int_equal(r.decisions, 9); /* t = 10, 20, ..., 90 */
	free(t);
}

/* A fixed fleet of 1 under 50 req/s: short every second by 10 req/s. */
static void
test_constant_saturated(void **state)
{
	struct policy_params p;
	struct sim_options o;
	struct sim_result r;
	uint32_t *t = make_trace(100, 0, 50, 50);
	struct expect e = {100, 100, 1000, 0, 1, 1};

	(void)state;
	hpa(&p);
	p.max = 1;
	sim_options_defaults(&o);
	assert_int_equal(sim_run(&p, t, 100, &o, &r), 0);
	check(&r, &e);
	free(t);
}

/*
 * A step from 20 to 100 req/s at t=60, capacity 40, boot 30 s, HPA rules.
 * A VM ready for less than an interval took no part in the last
 * measurement: it counts as capacity on the way, not as load.
 *   t<60:  1 VM at 50 % -> hold.
 *   60-69: 100 % (saturated); t=70: ceil(1 x 100/60) = 2, ready at 100.
 *   t=80..100: 1.67 instances are covered by the 2 desired (at t=100 the
 *          new VM has just become ready: not measured yet).
 *   t=110: 2 ready at 100 % -> ceil(3.33) = 4, ready at 140.
 *   t=120..140: covered; from t=150: 4 at 62.5 %, within 10 % -> hold.
 * Short: 60..99 by 60 (40 s), 100..139 by 20 (40 s): 80 s, 3200 requests.
 * VM-seconds: 70x1 + 40x2 + 190x4 = 910.
 */
static void
test_step_hpa(void **state)
{
	struct policy_params p;
	struct sim_options o;
	struct sim_result r;
	uint32_t *t = make_trace(300, 60, 20, 100);
	struct expect e = {910, 80, 3200, 2, 1, 4};

	(void)state;
	hpa(&p);
	sim_options_defaults(&o);
	o.boot_delay_ms = 30000;
	assert_int_equal(sim_run(&p, t, 300, &o, &r), 0);
	check(&r, &e);
	free(t);
}

/*
 * A bigger step, 20 to 200 req/s at t=60 (boot 30 s), with and without
 * saturation handling (>= 95 % -> at least double the ready VMs).
 * HPA: t=70 -> 2; t=110: 2 at 100 % -> 4; t=150: 4 at 100 % -> 7;
 *   t=190: 7 at 71.4 % -> ceil(8.33) = 9; t=230: 9 at 55.6 % -> hold.
 *   Short: 60..99 by 160, 100..139 by 120, 140..179 by 40: 120 s, 12800.
 *   VM-seconds: 70 + 40x2 + 40x4 + 40x7 + 110x9 = 1580; 4 actions.
 * Saturation: the same until t=150: 4 at 100 % -> max(7, 2 x 4) = 8;
 *   t=190: 8 at 62.5 % -> hold. The same shortfall with one action less:
 *   VM-seconds 70 + 80 + 160 + 150x8 = 1510; 3 actions.
 */
static void
test_step_saturation(void **state)
{
	struct policy_params p;
	struct sim_options o;
	struct sim_result r;
	uint32_t *t = make_trace(300, 60, 20, 200);
	struct expect e_hpa = {1580, 120, 12800, 4, 1, 9};
	struct expect e_sat = {1510, 120, 12800, 3, 1, 8};

	(void)state;
	hpa(&p);
	sim_options_defaults(&o);
	o.boot_delay_ms = 30000;
	assert_int_equal(sim_run(&p, t, 300, &o, &r), 0);
	check(&r, &e_hpa);
	p.saturation.above_pct = 95;
	p.saturation.scale_up_pct = 100;
	assert_int_equal(sim_run(&p, t, 300, &o, &r), 0);
	check(&r, &e_sat);
	free(t);
}

/*
 * Load drops from 100 to 20 req/s at t=60 on 5 VMs (50 %), with a 60 s
 * scale-down window: t=70 recommends ceil(5 x 10/60) = 1 but t=60's 5 is
 * in the window until t=120 (recommendations at t <= now - 60 drop out);
 * the 1 applies at t=120. VM-seconds 120 x 5 + 180 x 1 = 780.
 */
static void
test_drop_window(void **state)
{
	struct policy_params p;
	struct sim_options o;
	struct sim_result r;
	uint32_t *t = make_trace(300, 60, 100, 20);
	struct expect e = {780, 0, 0, 1, 1, 5};

	(void)state;
	hpa(&p);
	p.scale_down_window_ms = 60000;
	sim_options_defaults(&o);
	o.initial = 5;
	assert_int_equal(sim_run(&p, t, 300, &o, &r), 0);
	check(&r, &e);
	free(t);
}

struct count {
	unsigned decisions, changes, seconds;
	uint64_t last_t;
};

static void
on_decision(void *arg, uint64_t t, const struct policy_decision *d,
	    const struct policy_params *p)
{
	struct count *c = arg;

	(void)p;
	c->decisions++;
	c->changes += d->to != d->from;
	assert_true(d->reason[0] != '\0');
	c->last_t = t;
}

static void
on_second(void *arg, uint64_t t, uint32_t demand, int ready, int vms,
	  int warm)
{
	struct count *c = arg;

	assert_int_equal(t, c->seconds);
	assert_true(ready <= vms);
	assert_int_equal(warm, 0); /* no pool */
	(void)demand;
	c->seconds++;
}

static void
test_observers_and_errors(void **state)
{
	struct policy_params p;
	struct sim_options o;
	struct sim_result r;
	uint32_t *t = make_trace(300, 60, 20, 100);
	struct count c = {0, 0, 0, 0};

	(void)state;
	hpa(&p);
	sim_options_defaults(&o);
	o.on_decision = on_decision;
	o.on_second = on_second;
	o.arg = &c;
	assert_int_equal(sim_run(&p, t, 300, &o, &r), 0);
	assert_int_equal(c.decisions, r.decisions);
	assert_int_equal(c.changes, r.scale_actions);
	assert_int_equal(c.seconds, 300);
	assert_int_equal(c.last_t, 290);

	o.capacity = 0;
	assert_int_equal(sim_run(&p, t, 300, &o, &r), -1);
	assert_non_null(strstr(err_msg(), "capacity"));
	sim_options_defaults(&o);
	o.boot_delay_ms = -1;
	assert_int_equal(sim_run(&p, t, 300, &o, &r), -1);
	sim_options_defaults(&o);
	assert_int_equal(sim_run(&p, t, 0, &o, &r), -1);
	p.interval_ms = 0;
	assert_int_equal(sim_run(&p, t, 300, &o, &r), -1);
	free(t);
}

/* The oracle, by hand: capacity 10, boot 60 s; 5 s needing 2 VMs, 100 s
 * needing 1, 5 s needing 2. The first VM: 110 s. The second: there for
 * the first 5 s, then a 100 s lull (longer than the boot: stop it) and
 * a restart booting 60 s before its 5 s: 5 + 60 + 5 = 70 s. From second
 * 5 on: the first VM 105 s; the second boots 60 s for its 5 s. */
static void
test_oracle(void **state)
{
	uint32_t v[110];

	(void)state;
	for (int i = 0; i < 110; i++)
		v[i] = i < 5 || i >= 105 ? 15 : 5;
	assert_float_equal(sim_oracle_vm_hours(v, 110, 0, 10, 60000),
			   180 / 3600.0, 1e-12);
	assert_float_equal(sim_oracle_vm_hours(v, 110, 5, 10, 60000),
			   (105 + 65) / 3600.0, 1e-12);
	/* a lull shorter than the boot: keep the VM (30 s < 60 s) */
	for (int i = 0; i < 110; i++)
		v[i] = i < 40 || i >= 70 ? 15 : 5;
	assert_float_equal(sim_oracle_vm_hours(v, 110, 0, 10, 60000),
			   220 / 3600.0, 1e-12);
}

/* The app metric requests_per_s is the trace per ready VM: 100 req/s on
 * one VM, target 20 per VM -> 5 VMs (cpu would be saturated at 100 %
 * and only give ceil(1 x 100 / 60) = 2 with the plain formula). */
static void
test_app_metric(void **state)
{
	struct policy_params p;
	struct sim_options o;
	struct sim_result r;
	uint32_t *v = make_trace(200, 0, 100, 100);

	(void)state;
	hpa(&p);
	p.target[POLICY_METRIC_CPU] = 0;
	snprintf(p.app[0].name, sizeof(p.app[0].name), "requests_per_s");
	p.app[0].target = 20;
	p.n_app = 1;
	sim_options_defaults(&o);
	o.initial = 1;
	assert_int_equal(sim_run(&p, v, 200, &o, &r), 0);
	assert_int_equal(r.max_vms, 5);
	/* kind total: the same figure for the whole group */
	p.app[0].kind = POLICY_APP_TOTAL;
	assert_int_equal(sim_run(&p, v, 200, &o, &r), 0);
	assert_int_equal(r.max_vms, 5);
	/* another name: no data, the group holds */
	snprintf(p.app[0].name, sizeof(p.app[0].name), "queue_length");
	assert_int_equal(sim_run(&p, v, 200, &o, &r), 0);
	assert_int_equal(r.max_vms, 1);
	free(v);
}

/* Predictive scaling on a daily step (20 req/s, 400 from 12:00 to
 * 13:00): from the second day on the VMs are ready before the step;
 * reactive scaling is short every day for about a boot delay. Figures
 * on the third day only (report_from). */
static void
test_predictive(void **state)
{
	struct policy_params p;
	struct sim_options o;
	struct sim_result off, on;
	size_t n = 3 * 86400;
	uint32_t *v = xcalloc(n, sizeof(*v));

	(void)state;
	for (size_t t = 0; t < n; t++)
		v[t] = t % 86400 >= 43200 && t % 86400 < 46800 ? 400 : 20;
	hpa(&p);
	p.max = 30;
	p.target[POLICY_METRIC_CPU] = 0;
	snprintf(p.app[0].name, sizeof(p.app[0].name), "requests_per_s");
	p.app[0].target = 30;
	p.n_app = 1;
	p.scale_down_window_ms = 180000;
	sim_options_defaults(&o);
	o.report_from = 2 * 86400;
	assert_int_equal(sim_run(&p, v, n, &o, &off), 0);
	assert_true(off.under_provisioned_seconds >= 60);
	assert_int_equal(off.forecasts, 0);
	p.predictive.mode = POLICY_PREDICTIVE_FORECAST_AND_SCALE;
	p.predictive.buffer_ms = 120000;
	p.predictive.window_ms = 120000;
	assert_int_equal(sim_run(&p, v, n, &o, &on), 0);
	assert_int_equal(on.under_provisioned_seconds, 0);
	assert_true(on.forecasts > 8000);
	/* the price: a few minutes of 14 VMs ahead of the step */
	assert_true(on.vm_hours > off.vm_hours);
	assert_true(on.vm_hours < off.vm_hours + 14 * 6 / 60.0);
	/* forecast_only changes nothing */
	p.predictive.mode = POLICY_PREDICTIVE_FORECAST_ONLY;
	assert_int_equal(sim_run(&p, v, n, &o, &on), 0);
	assert_int_equal(on.under_provisioned_seconds,
			 off.under_provisioned_seconds);
	assert_float_equal(on.vm_hours, off.vm_hours, 1e-9);
	/* report_from past the end is an error */
	o.report_from = n;
	assert_int_equal(sim_run(&p, v, n, &o, &on), -1);
	free(v);
}

/*
 * Warm pools. The policy scales on the app metric requests_per_s of kind
 * total with a target of 20 per VM: desired = ceil(mean demand of the
 * last interval / 20), whatever is ready, so the decisions can be worked
 * out by hand. Capacity 40 req/s, boot 30 s, warm boot 2 s.
 */
static void
demand_policy(struct policy_params *p)
{
	hpa(p);
	p->target[POLICY_METRIC_CPU] = 0;
	snprintf(p->app[0].name, sizeof(p->app[0].name), "requests_per_s");
	p->app[0].target = 20;
	p->app[0].kind = POLICY_APP_TOTAL;
	p->n_app = 1;
}

static void
warm_options(struct sim_options *o, int size)
{
	sim_options_defaults(o);
	o->boot_delay_ms = 30000;
	o->warm_boot_delay_ms = 2000;
	o->warm.size = size;
}

struct warm_seen {
	int warm_at[400];
	int ready_at[400];
};

static void
on_second_warm(void *arg, uint64_t t, uint32_t demand, int ready, int vms,
	       int warm)
{
	struct warm_seen *s = arg;

	(void)demand;
	(void)vms;
	if (t < 400) {
		s->warm_at[t] = warm;
		s->ready_at[t] = ready;
	}
}

/*
 * 20 req/s, 100 from t=60. t=70: 1 -> 5. Cold only: ready at 100, short
 * 60..99 (40 s by 60). With a pool of 2: 2 drawn, ready at 72, 3 cold
 * ready at 100; 3 ready VMs serve 120 >= 100: short 60..71 (12 s, 720
 * requests). The pool refills 2 at t=70, prepared at 100.
 * VM-seconds: 70 x 1 + 230 x 5 active, + 2 x 30 refills being prepared
 * = 1280; saved: warm 2 x 70 (0..69) + 2 x 200 (100..299) = 540.
 * Paused: the 540 prepared warm seconds count in vm_hours (1820).
 */
static void
test_warm_draws(void **state)
{
	struct policy_params p;
	struct sim_options o;
	struct sim_result r;
	struct warm_seen seen;
	uint32_t *t = make_trace(300, 60, 20, 100);

	(void)state;
	demand_policy(&p);
	warm_options(&o, 0);
	assert_int_equal(sim_run(&p, t, 300, &o, &r), 0);
	assert_int_equal(r.under_provisioned_seconds, 40);
	assert_int_equal(r.warm_draws, 0);
	assert_float_equal(r.warm_vm_hours, 0, 1e-12);
	assert_float_equal(r.vm_hours, 1220 / 3600.0, 1e-9);

	warm_options(&o, 2);
	memset(&seen, 0, sizeof(seen));
	o.on_second = on_second_warm;
	o.arg = &seen;
	assert_int_equal(sim_run(&p, t, 300, &o, &r), 0);
	assert_int_equal(r.under_provisioned_seconds, 12);
	assert_int_equal(r.excess_requests, 720);
	assert_int_equal(r.warm_draws, 2);
	assert_int_equal(r.scale_actions, 1);
	assert_int_equal(r.max_vms, 5);
	assert_float_equal(r.vm_hours, 1280 / 3600.0, 1e-9);
	assert_float_equal(r.warm_vm_hours, 540 / 3600.0, 1e-9);
	/* what the observer (and the plot) sees */
	assert_int_equal(seen.warm_at[69], 2);
	assert_int_equal(seen.warm_at[70], 0);
	assert_int_equal(seen.warm_at[99], 0);
	assert_int_equal(seen.warm_at[100], 2);
	assert_int_equal(seen.ready_at[71], 1);
	assert_int_equal(seen.ready_at[72], 3);
	assert_int_equal(seen.ready_at[100], 5);

	/* paused: RAM held, in vm_hours */
	o.warm.holds_ram = true;
	assert_int_equal(sim_run(&p, t, 300, &o, &r), 0);
	assert_int_equal(r.under_provisioned_seconds, 12);
	assert_float_equal(r.vm_hours, 1820 / 3600.0, 1e-9);
	assert_float_equal(r.warm_vm_hours, 0, 1e-12);

	/* the warm boot delay is what the drawn ones take: 10 s -> short
	 * 60..79 (20 s) */
	o.warm.holds_ram = false;
	o.warm_boot_delay_ms = 10000;
	assert_int_equal(sim_run(&p, t, 300, &o, &r), 0);
	assert_int_equal(r.under_provisioned_seconds, 20);

	/* figures from second 80 on: the draw at 70 is not counted */
	o.warm_boot_delay_ms = 2000;
	o.report_from = 80;
	assert_int_equal(sim_run(&p, t, 300, &o, &r), 0);
	assert_int_equal(r.warm_draws, 0);
	assert_float_equal(r.warm_vm_hours, 400 / 3600.0, 1e-9);

	/* bad options */
	o.report_from = 0;
	o.warm_boot_delay_ms = -1;
	assert_int_equal(sim_run(&p, t, 300, &o, &r), -1);
	assert_non_null(strstr(err_msg(), "warm boot delay"));
	o.warm_boot_delay_ms = 2000;
	o.warm.size = -1;
	assert_int_equal(sim_run(&p, t, 300, &o, &r), -1);
	free(t);
}

/*
 * Refills take the cold boot delay and only prepared instances are
 * drawn. 20 req/s, 100 from t=60, 180 from t=80 (5 VMs of 40 serve it).
 * t=70: 1 -> 5, draws 2 (ready 72), 3 cold; the pool refills 2.
 * t=90: 5 -> 9.
 *  - boot 30 s: the refills are prepared at 100, not yet at 90: 4 cold,
 *    2 draws in all. Short 60..71 (1 ready) and 80..99 (3 ready: the
 *    cold ones of t=70 are ready at 100): 12 + 20 = 32 s.
 *  - boot 20 s: the refills are prepared at 90: 2 drawn (ready 92) and 2
 *    cold, 4 draws. Short 60..71 and 80..89 (the cold ones of t=70 are
 *    ready at 90; at 90 and 91: 2 warm + 3 cold = 200): 22 s.
 */
static void
test_warm_refill(void **state)
{
	struct policy_params p;
	struct sim_options o;
	struct sim_result r;
	uint32_t *t = make_trace(200, 60, 20, 100);

	(void)state;
	for (size_t i = 80; i < 200; i++)
		t[i] = 180;
	demand_policy(&p);
	warm_options(&o, 2);
	assert_int_equal(sim_run(&p, t, 200, &o, &r), 0);
	assert_int_equal(r.warm_draws, 2);
	assert_int_equal(r.under_provisioned_seconds, 32);
	assert_int_equal(r.max_vms, 9);
	o.boot_delay_ms = 20000;
	assert_int_equal(sim_run(&p, t, 200, &o, &r), 0);
	assert_int_equal(r.warm_draws, 4);
	assert_int_equal(r.under_provisioned_seconds, 22);
	free(t);
}

/*
 * Reuse on scale-in and the cap, max 5: 20 req/s, 100 from t=60 to 199,
 * 20 after; t=70: 1 -> 5, t=210: 5 -> 1 (no scale-down window).
 * Pool size 2, max_prepared 6 (desired + warm): at 5 desired the pool
 * may hold 1, so t=70 draws 2 and refills only 1 (prepared at 100).
 *   - reuse: at t=210 the newest removed VM (cold, ready at 100) goes
 *     back prepared; the pool is full (2), no refill. Warm seconds:
 *     2 x 70 + 1 x 110 (100..209) + 2 x 190 (210..399) = 630; VM
 *     seconds 70 + 140 x 5 + 190 x 1 + 30 (the refill) = 990.
 *   - no reuse: a refill at 210, prepared at 240: warm 2 x 70 + 110 +
 *     190 + 160 = 600, VM seconds 990 + 30 = 1020.
 *   - no cap: t=70 refills 2: warm 2 x 70 + 2 x 300 = 740, VM 1020.
 */
static void
test_warm_reuse_cap(void **state)
{
	struct policy_params p;
	struct sim_options o;
	struct sim_result r;
	uint32_t *t = make_trace(400, 60, 20, 100);

	(void)state;
	for (size_t i = 200; i < 400; i++)
		t[i] = 20;
	demand_policy(&p);
	p.max = 5;
	warm_options(&o, 2);
	o.warm.max_prepared = 6;
	o.warm.reuse = true;
	assert_int_equal(sim_run(&p, t, 400, &o, &r), 0);
	assert_int_equal(r.scale_actions, 2);
	assert_int_equal(r.warm_draws, 2);
	assert_float_equal(r.warm_vm_hours, 630 / 3600.0, 1e-9);
	assert_float_equal(r.vm_hours, 990 / 3600.0, 1e-9);
	o.warm.reuse = false;
	assert_int_equal(sim_run(&p, t, 400, &o, &r), 0);
	assert_float_equal(r.warm_vm_hours, 600 / 3600.0, 1e-9);
	assert_float_equal(r.vm_hours, 1020 / 3600.0, 1e-9);
	o.warm.max_prepared = 0;
	assert_int_equal(sim_run(&p, t, 400, &o, &r), 0);
	assert_float_equal(r.warm_vm_hours, 740 / 3600.0, 1e-9);
	assert_float_equal(r.vm_hours, 1020 / 3600.0, 1e-9);
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_constant_enough),
		cmocka_unit_test(test_constant_saturated),
		cmocka_unit_test(test_step_hpa),
		cmocka_unit_test(test_step_saturation),
		cmocka_unit_test(test_drop_window),
		cmocka_unit_test(test_observers_and_errors),
		cmocka_unit_test(test_oracle),
		cmocka_unit_test(test_app_metric),
		cmocka_unit_test(test_predictive),
		cmocka_unit_test(test_warm_draws),
		cmocka_unit_test(test_warm_refill),
		cmocka_unit_test(test_warm_reuse_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
