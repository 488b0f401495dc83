/*
 * bench_policy.c: speed of the decision engine and of the simulator, and
 * the quality comparison of the shipped defaults against two baselines,
 * all through the same engine and simulator:
 *   defaults  examples/web.yaml (the shipped defaults, target cpu 60 %)
 *   HPA       bench/hpa-baseline.yaml (the plain HPA formula)
 *   fixed     bench/fixed-peak.yaml, min = max = ceil(peak / capacity)
 *   app       bench/app-rps.yaml (app metric requests_per_s target)
 *   pred      bench/predictive.yaml (app target + predictive scaling)
 *   web+pred  bench/web-predictive.yaml (cpu 60 % + predictive)
 * and the oracle (simulate.h: fewest VM-hours never short, knowing the
 * future), as the ratio column.
 *
 *   bench_policy [--trace FILE] [--capacity RPS] [--boot-delay SECONDS]
 *                [--scale X] [--decisions N] [--label TEXT]
 *                [--report-from SECONDS] [--until SECONDS]
 *
 * --until cuts the trace there; --report-from counts the figures from
 * that second on (the policies and the forecaster's history warm up on
 * what comes before): the tuning half of the Twitter trace is --until
 * 950400, the test half --report-from 950400.
 *
 * The trace defaults to $VA_SHARED_DIR/traces/twitter-rps.txt.gz
 * (VA_SHARED_DIR defaults to SRCDIR/../shared). --scale multiplies every
 * value. When a policy's max is below twice the fixed fleet, the max of
 * both policies is raised to twice the fixed fleet, alike.
 * Prints figures; asserts nothing about time (see bench/README.md).
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "forecast.h"
#include "log.h"
#include "policy.h"
#include "simulate.h"
#include "trace.h"
#include "util.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The group's policy from a YAML file under the source tree. */
static int
load_policy(const char *rel, struct policy_params *p, int *initial)
{
	struct strbuf errors = STRBUF_INIT;
	char *path = xasprintf("%s/%s", SRCDIR, rel);
	/* the policy only: the files and addresses the daemon would need
	 * are not checked (as `simulate` does) */
	struct config *cfg = config_load_offline(path, &errors);
	int ret = -1;

	if (!cfg || cfg->n_groups != 1) {
		fprintf(stderr, "bench_policy: %s: %s\n", path,
			cfg ? "expected one group" : strbuf_str(&errors));
		goto cleanup;
	}
	policy_params_copy(p, &cfg->groups[0].policy);
	*initial = cfg->groups[0].desired;
	ret = 0;
cleanup:
	config_free(cfg);
	strbuf_release(&errors);
	free(path);
	return ret;
}

static void
print_row(const char *name, const struct sim_result *r, double secs)
{
	printf("| %-22s | %10.1f | %5.2f | %8" PRIu64 " | %10" PRIu64 " | %6"
	       PRIu64 " | %3d | %3d | %5.2f s |\n",
	       name, r->vm_hours, r->oracle_vm_hours > 0
	       ? r->vm_hours / r->oracle_vm_hours : 0,
	       r->under_provisioned_seconds,
	       r->excess_requests, r->scale_actions, r->min_vms, r->max_vms,
	       secs);
}

/*
 * The forecaster on a full history (14 days of one-minute means of a
 * noisy daily cycle): forecast_compute() time per call, and
 * policy_decide() with predictive scaling on.
 */
static void
bench_forecast(const struct policy_params *web, unsigned n)
{
	struct forecast_history *h = forecast_history_new();
	struct forecast_result fr;
	struct policy_params p = *web;
	struct policy_state *st = policy_state_new();
	struct policy_decision d;
	struct policy_input in;
	unsigned seed = 7, calls = n / 100 ? n / 100 : 1;
	double t0, t1, sink = 0;

	for (int i = 0; i < FORECAST_HISTORY_MIN; i++)
		forecast_history_push(h, (float)(5 + 3 * sin(i * 2 * M_PI /
					     FORECAST_DAY_MIN) +
					     (rand_r(&seed) % 100) / 100.0));
	t0 = now_s();
	for (unsigned i = 0; i < calls; i++) {
		forecast_history_push(h, (float)(rand_r(&seed) % 800) / 100);
		if (forecast_compute(h, 2, 2 + (int)(i % 3), &fr) == 0)
			sink += fr.peak;
	}
	t1 = now_s();
	printf("forecast: %.3f us per forecast_compute (%u calls on 14 days of "
	       "history, buffer 2m, window 2-4m; sum %.0f)\n",
	       (t1 - t0) * 1e6 / calls, calls, sink);
	t0 = now_s();
	for (unsigned i = 0; i < calls / 10 + 1; i++) {
		forecast_history_push(h, 4);
		if (forecast_compute(h, 60, 60, &fr) == 0)
			sink += fr.peak;
	}
	t1 = now_s();
	printf("forecast: %.3f us per forecast_compute with buffer 1h, window "
	       "1h\n", (t1 - t0) * 1e6 / (calls / 10 + 1));

	p.max = 100;
	p.predictive.mode = POLICY_PREDICTIVE_FORECAST_AND_SCALE;
	memset(&in, 0, sizeof(in));
	in.capacity_left = 50;
	in.desired = in.ready = in.instances = 10;
	in.metric_present[POLICY_METRIC_CPU] = true;
	in.have_forecast = true;
	t0 = now_s();
	for (unsigned i = 0; i < n; i++) {
		in.now_ms = (int64_t)i * 10000;
		in.metric[POLICY_METRIC_CPU] = 60 + 40 * sin(i / 50.0);
		in.forecast = 8 + (int)(i / 60 % 5);
		policy_decide(&p, &in, st, &d);
		if (d.to != d.from)
			in.desired = in.ready = in.instances = d.to;
	}
	t1 = now_s();
	printf("decision: %.3f us per policy_decide with predictive scaling "
	       "(forecast_and_scale, a floor every decision)\n",
	       (t1 - t0) * 1e6 / n);
	policy_state_free(st);
	forecast_history_free(h);
}

/*
 * policy_decide() on one group of about 10 VMs whose CPU wanders, with
 * the web.yaml policy plus two step rules and two schedules so that every
 * stage of the pipeline runs.
 */
static void
bench_decide(const struct policy_params *web, unsigned n)
{
	struct policy_params p;
	struct policy_step steps[2] = {
		{POLICY_METRIC_CPU, POLICY_STEP_ABOVE, 90, 60000, 2, 0, 0, 0},
		{POLICY_METRIC_CPU, POLICY_STEP_BELOW, 10, 300000, 0, -10, 1, 0},
	};
	struct policy_schedule sch[2] = {
		{(char *)"office", {0}, 4, -1},
		{(char *)"night", {0}, -1, 30},
	};
	struct policy_state *st = policy_state_new();
	struct policy_decision d;
	struct policy_input in;
	double t0, t1;
	unsigned changes = 0;

	p = *web;
	p.max = 100;
	p.steps = steps;
	p.n_steps = 2;
	if (policy_cron_parse("* 8-17 * * mon-fri", &sch[0].when) != 0 ||
	    policy_cron_parse("* 0-5 * * *", &sch[1].when) != 0)
		abort();
	p.schedules = sch;
	p.n_schedules = 2;
	p.scale_up_limit = (struct policy_rate_limit){4, 50, 60000};
	p.scale_down_limit = (struct policy_rate_limit){1, 10, 60000};
	memset(&in, 0, sizeof(in));
	in.capacity_left = 50;
	in.desired = 10;
	in.ready = 10;
	in.instances = 10;
	in.have_local_time = true;
	in.local_time.tm_wday = 1;
	in.local_time.tm_mday = 1;
	in.metric_present[POLICY_METRIC_CPU] = true;
	t0 = now_s();
	for (unsigned i = 0; i < n; i++) {
		in.now_ms = (int64_t)i * 10000;
		in.local_time.tm_hour = (int)(i / 360 % 24);
		in.local_time.tm_min = (int)(i / 6 % 60);
		/* a slow sine between 20 % and 100 % */
		in.metric[POLICY_METRIC_CPU] = 60 + 40 * sin(i / 50.0);
		policy_decide(&p, &in, st, &d);
		if (d.to != d.from) {
			changes++;
			in.desired = d.to;
			in.ready = d.to;
			in.instances = d.to;
		}
	}
	t1 = now_s();
	printf("decision: %.3f us per policy_decide (%u decisions, %u "
	       "changes; target tracking, 2 steps, 2 schedules, windows, "
	       "rate limits)\n", (t1 - t0) * 1e6 / n, n, changes);
	policy_state_free(st);

	/* the same with an app metric target too (issue 14) */
	st = policy_state_new();
	snprintf(p.app[0].name, sizeof(p.app[0].name), "requests_per_s");
	p.app[0].kind = POLICY_APP_AVERAGE;
	p.app[0].target = 30;
	p.n_app = 1;
	in.app_present[0] = true;
	in.app_reporting[0] = 10;
	in.desired = in.ready = in.instances = 10;
	changes = 0;
	t0 = now_s();
	for (unsigned i = 0; i < n; i++) {
		in.now_ms = (int64_t)i * 10000;
		in.local_time.tm_hour = (int)(i / 360 % 24);
		in.local_time.tm_min = (int)(i / 6 % 60);
		in.metric[POLICY_METRIC_CPU] = 60 + 40 * sin(i / 50.0);
		in.app[0] = 30 + 20 * sin(i / 70.0);
		policy_decide(&p, &in, st, &d);
		if (d.to != d.from) {
			changes++;
			in.desired = d.to;
			in.ready = d.to;
			in.instances = d.to;
		}
	}
	t1 = now_s();
	printf("decision: %.3f us per policy_decide (%u decisions, %u "
	       "changes; the same plus an app metric target)\n",
	       (t1 - t0) * 1e6 / n, n, changes);
	policy_state_free(st);
}

static void
run_row(const char *name, const struct policy_params *p, int initial,
	const struct trace *tr, struct sim_options *o)
{
	struct sim_result r;
	double t0 = now_s();

	o->initial = initial;
	if (sim_run(p, tr->v, tr->n, o, &r) != 0) {
		fprintf(stderr, "bench_policy: %s\n", err_msg());
		exit(1);
	}
	print_row(name, &r, now_s() - t0);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"trace", required_argument, NULL, 't'},
		{"capacity", required_argument, NULL, 'c'},
		{"boot-delay", required_argument, NULL, 'b'},
		{"scale", required_argument, NULL, 's'},
		{"decisions", required_argument, NULL, 'n'},
		{"label", required_argument, NULL, 'l'},
		{"report-from", required_argument, NULL, 'r'},
		{"until", required_argument, NULL, 'u'},
		{NULL, 0, NULL, 0},
	};
	const char *shared = getenv("VA_SHARED_DIR");
	char *path = NULL;
	struct trace tr = {0};
	struct sim_options o;
	struct policy_params web, hpa, fixed, app, pred, webpred;
	int web_init, hpa_init, fixed_init, app_init, pred_init, webpred_init;
	uint64_t until = 0;
	char fixed_name[64];
	const char *label = NULL;
	double scale = 1, t0, t1;
	unsigned ndec = 1000000;
	uint32_t peak = 0;
	int opt, fleet;

	sim_options_defaults(&o);
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			path = xstrdup(optarg);
			break;
		case 'c':
			o.capacity = atof(optarg);
			break;
		case 'b':
			o.boot_delay_ms = (int64_t)(atof(optarg) * 1000);
			break;
		case 's':
			scale = atof(optarg);
			break;
		case 'n':
			ndec = (unsigned)atol(optarg);
			break;
		case 'l':
			label = optarg;
			break;
		case 'r':
			o.report_from = (uint64_t)atoll(optarg);
			break;
		case 'u':
			until = (uint64_t)atoll(optarg);
			break;
		default:
			return 2;
		}
	}
	if (!path) {
		path = shared ? xasprintf("%s/traces/twitter-rps.txt.gz", shared)
			      : xstrdup(SRCDIR "/../shared/traces/twitter-rps.txt.gz");
		if (access(path, R_OK) != 0) {
			fprintf(stderr, "bench_policy: no trace at %s; set "
				"VA_SHARED_DIR or give --trace\n", path);
			return 77; /* meson: skipped */
		}
	}
	if (load_policy("examples/web.yaml", &web, &web_init) != 0 ||
	    load_policy("bench/hpa-baseline.yaml", &hpa, &hpa_init) != 0 ||
	    load_policy("bench/fixed-peak.yaml", &fixed, &fixed_init) != 0 ||
	    load_policy("bench/app-rps.yaml", &app, &app_init) != 0 ||
	    load_policy("bench/predictive.yaml", &pred, &pred_init) != 0 ||
	    load_policy("bench/web-predictive.yaml", &webpred,
			&webpred_init) != 0)
		return 1;
	if (ndec) {
		bench_decide(&web, ndec);
		bench_forecast(&web, ndec);
	}

	t0 = now_s();
	if (trace_load(path, &tr) != 0) {
		fprintf(stderr, "bench_policy: %s\n", err_msg());
		return 1;
	}
	t1 = now_s();
	if (until && until < tr.n)
		tr.n = (size_t)until;
	if (scale != 1)
		for (size_t i = 0; i < tr.n; i++)
			tr.v[i] = (uint32_t)llround(tr.v[i] * scale);
	for (size_t i = 0; i < tr.n; i++)
		if (tr.v[i] > peak)
			peak = tr.v[i];
	fleet = (int)ceil(peak / o.capacity);
	if (fleet < 1)
		fleet = 1;
	fixed.min = fixed.max = fleet;
	if (web.max < 2 * fleet || hpa.max < 2 * fleet)
		web.max = hpa.max = app.max = pred.max = webpred.max = 2 * fleet;
	if (label)
		printf("trace: %s", label);
	else
		printf("trace: %s x%g", path, scale);
	printf(", %zu s, peak %" PRIu32 " req/s, loaded in %.2f s; %g req/s "
	       "per VM, boot delay %" PRId64 " s\n", tr.n, peak, t1 - t0,
	       o.capacity, o.boot_delay_ms / 1000);
	if (o.report_from)
		printf("figures from second %" PRIu64 " on\n", o.report_from);
	printf("| %-22s | %10s | %5s | %8s | %10s | %6s | %3s | %3s | %7s |\n",
	       "policy", "vm_hours", "x orc", "under_s", "excess_req", "scale",
	       "min", "max", "sim");
	printf("|%s|\n", "------------------------|------------|-------|"
	       "----------|------------|--------|-----|-----|---------");
	run_row("defaults (web.yaml)", &web, web_init, &tr, &o);
	run_row("HPA baseline", &hpa, hpa_init, &tr, &o);
	snprintf(fixed_name, sizeof(fixed_name), "fixed fleet (%d VMs)", fleet);
	run_row(fixed_name, &fixed, fleet, &tr, &o);
	run_row("app metric (app-rps)", &app, app_init, &tr, &o);
	run_row("predictive + app", &pred, pred_init, &tr, &o);
	run_row("predictive + cpu 60%", &webpred, webpred_init, &tr, &o);
	policy_params_release(&app);
	policy_params_release(&pred);
	policy_params_release(&webpred);
	policy_params_release(&web);
	policy_params_release(&hpa);
	policy_params_release(&fixed);
	trace_release(&tr);
	free(path);
	return 0;
}
