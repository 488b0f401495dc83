/*
 * bench_policy.c: speed of the decision engine and of the simulator, and
 * the quality comparison of the shipped defaults against two baselines
 * (the plain HPA formula and a fixed fleet sized for the peak).
 *
 *   bench_policy [--trace FILE] [--capacity RPS] [--boot-delay SECONDS]
 *                [--scale X] [--decisions N]
 *
 * The trace defaults to $VA_SHARED_DIR/traces/twitter-rps.txt.gz
 * (VA_SHARED_DIR defaults to SRCDIR/../shared). Prints figures; asserts
 * nothing about time (see bench/README.md).
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static void
params_defaults_web(struct policy_params *p, int max)
{
	policy_params_defaults(p);
	p->min = 1;
	p->max = max;
	p->target[POLICY_METRIC_CPU] = 60;
}

/* The plain Kubernetes HPA formula: target, tolerance, 15 s, 5 m down. */
static void
params_hpa(struct policy_params *p, int max)
{
	memset(p, 0, sizeof(*p));
	p->min = 1;
	p->max = max;
	p->interval_ms = 15000;
	p->target[POLICY_METRIC_CPU] = 60;
	p->tolerance = 0.10;
	p->scale_down_window_ms = 300000;
}

static void
params_fixed(struct policy_params *p, int n)
{
	memset(p, 0, sizeof(*p));
	p->min = n;
	p->max = n;
	p->interval_ms = 15000;
	p->tolerance = 0.10;
}

static void
print_row(const char *name, const struct sim_result *r, double secs)
{
	printf("| %-22s | %10.1f | %8" PRIu64 " | %10" PRIu64 " | %6" PRIu64
	       " | %3d | %3d | %5.2f s |\n",
	       name, r->vm_hours, r->under_provisioned_seconds,
	       r->excess_requests, r->scale_actions, r->min_vms, r->max_vms,
	       secs);
}

static void
bench_decide(unsigned n)
{
	struct policy_params p;
	struct policy_state *st = policy_state_new();
	struct policy_decision d;
	struct policy_input in;
	double t0, t1;
	unsigned changes = 0;

	params_defaults_web(&p, 100);
	memset(&in, 0, sizeof(in));
	in.capacity_left = -1;
	in.desired = 10;
	in.ready = 10;
	in.instances = 10;
	in.metric_present[POLICY_METRIC_CPU] = true;
	t0 = now_s();
	for (unsigned i = 0; i < n; i++) {
		in.now_ms = (int64_t)i * 10000;
		/* a slow sine between 30 % and 90 % */
		in.metric[POLICY_METRIC_CPU] = 60 + 30 * sin(i / 50.0);
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
	       "changes)\n", (t1 - t0) * 1e6 / n, n, changes);
	policy_state_free(st);
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
		{NULL, 0, NULL, 0},
	};
	const char *shared = getenv("VA_SHARED_DIR");
	char *path = NULL;
	struct trace tr = {0};
	struct sim_options o;
	struct sim_result r;
	struct policy_params p;
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
		default:
			return 2;
		}
	}
	if (!path)
		path = shared ? xasprintf("%s/traces/twitter-rps.txt.gz", shared)
			      : xstrdup(SRCDIR "/../shared/traces/twitter-rps.txt.gz");
	if (ndec)
		bench_decide(ndec);

	t0 = now_s();
	if (trace_load(path, &tr) != 0) {
		fprintf(stderr, "bench_policy: %s\n", err_msg());
		return 1;
	}
	t1 = now_s();
	if (scale != 1)
		for (size_t i = 0; i < tr.n; i++)
			tr.v[i] = (uint32_t)llround(tr.v[i] * scale);
	for (size_t i = 0; i < tr.n; i++)
		if (tr.v[i] > peak)
			peak = tr.v[i];
	fleet = (int)ceil(peak / o.capacity);
	printf("trace: %s x%g, %zu seconds, peak %" PRIu32 " req/s, loaded in "
	       "%.2f s; capacity %g req/s per VM, boot delay %" PRId64 " s\n",
	       path, scale, tr.n, peak, t1 - t0, o.capacity,
	       o.boot_delay_ms / 1000);
	printf("| %-22s | %10s | %8s | %10s | %6s | %3s | %3s | %7s |\n",
	       "policy", "vm_hours", "under_s", "excess_req", "scale", "min",
	       "max", "sim");
	printf("|%s|\n", "------------------------|------------|----------|"
	       "------------|--------|-----|-----|---------");

	params_defaults_web(&p, fleet * 2);
	t0 = now_s();
	sim_run(&p, tr.v, tr.n, &o, &r);
	print_row("defaults (cpu 60%)", &r, now_s() - t0);
	params_hpa(&p, fleet * 2);
	t0 = now_s();
	sim_run(&p, tr.v, tr.n, &o, &r);
	print_row("HPA baseline", &r, now_s() - t0);
	params_fixed(&p, fleet);
	t0 = now_s();
	sim_run(&p, tr.v, tr.n, &o, &r);
	print_row("fixed fleet (peak)", &r, now_s() - t0);
	trace_release(&tr);
	free(path);
	return 0;
}
