/*
 * cmd_simulate.c: `virt-autoscaler simulate -c FILE --trace FILE
 * [--group NAME] [--capacity RPS] [--boot-delay DURATION]
 * [--warm-boot-delay DURATION] [--json] [--plot OUT.svg] [--explain]
 * [--report-from DURATION]`.
 *
 * Replays a request-rate trace through the real decision engine with the
 * group's policy from the configuration (see simulate.h for the model)
 * and prints vm_hours, under_provisioned_seconds, excess_requests,
 * scale_actions, min_vms, max_vms, oracle_vm_hours, warm_vm_hours and
 * warm_draws: as a table, or with --json as one JSON object with exactly
 * these fields. The group's warm_pool is simulated (simulate.h).
 * --explain prints every decision with its reason (on stderr when --json
 * keeps stdout for the object).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "log.h"
#include "policy.h"
#include "simplot.h"
#include "simulate.h"
#include "trace.h"
#include "util.h"

static const char usage_text[] =
	"usage: virt-autoscaler simulate [-c FILE] --trace FILE [--group NAME]\n"
	"         [--capacity RPS] [--boot-delay DURATION]\n"
	"         [--warm-boot-delay DURATION] [--json] [--plot OUT.svg]\n"
	"         [--explain] [--report-from DURATION]\n"
	"Replay a request-rate trace (one non-negative integer a line: requests\n"
	"in that second; gzip accepted) through the group's scaling policy.\n"
	"  -c, --config FILE      configuration (default: the global -c)\n"
	"  -t, --trace FILE       the trace\n"
	"  -g, --group NAME       the group (default: the only one)\n"
	"      --capacity RPS     requests/s one VM serves at 100 %% CPU "
	"(default 40)\n"
	"      --boot-delay DUR   decision to ready (default 60s); also what\n"
	"                         refilling the warm pool takes\n"
	"      --warm-boot-delay DUR\n"
	"                         draw of a warm instance to ready (default 2s)\n"
	"      --json             print one JSON object\n"
	"      --plot OUT.svg     chart demand, ready capacity and VMs over time\n"
	"      --explain          print every decision and its reason\n"
	"      --report-from DUR  count the figures from this second of the "
	"trace on\n"
	"                         (what comes before warms the policy up)\n";

/* What the observers share: the --explain output and the --plot data. */
struct observe_ctx {
	FILE *out;
	struct strbuf line;
	struct sim_plot *plot;
};

static void
observe_second(void *arg, uint64_t t, uint32_t demand, int ready, int vms,
	       int warm)
{
	struct observe_ctx *x = arg;

	sim_plot_second(x->plot, t, demand, ready, vms, warm);
}

/* groups.*.warm_pool as the simulator models it. */
static void
warm_from_config(const struct config_warm_pool *c, struct sim_warm_pool *w)
{
	memset(w, 0, sizeof(*w));
	if (!c->present)
		return;
	w->size = c->size;
	w->max_prepared = c->max_prepared;
	w->holds_ram = c->state == CONFIG_WARM_PAUSED;
	w->reuse = c->reuse_on_scale_in;
}

static void
explain_decision(void *arg, uint64_t t, const struct policy_decision *d,
		 const struct policy_params *p)
{
	struct observe_ctx *x = arg;

	strbuf_reset(&x->line);
	policy_decision_format(d, p, &x->line);
	fprintf(x->out, "[%" PRIu64 "d %02" PRIu64 ":%02" PRIu64 ":%02" PRIu64
		"] %s\n", t / 86400, t % 86400 / 3600, t % 3600 / 60, t % 60,
		strbuf_str(&x->line));
}

static const struct config_group *
pick_group(const struct config *cfg, const char *name)
{
	const struct config_group *g;
	struct strbuf names = STRBUF_INIT;

	if (name) {
		g = config_group_find(cfg, name);
		if (!g) {
			for (unsigned i = 0; i < cfg->n_groups; i++)
				strbuf_addf(&names, "%s%s", i ? ", " : "",
					    cfg->groups[i].name);
			err_set("%s: no group '%s' (groups: %s)", cfg->path,
				name, cfg->n_groups ? strbuf_str(&names)
						    : "none");
		}
		strbuf_release(&names);
		return g;
	}
	if (cfg->n_groups == 1)
		return &cfg->groups[0];
	if (cfg->n_groups == 0) {
		err_set("%s: no groups to simulate", cfg->path);
		return NULL;
	}
	for (unsigned i = 0; i < cfg->n_groups; i++)
		strbuf_addf(&names, "%s%s", i ? ", " : "", cfg->groups[i].name);
	err_set("%s: %u groups (%s): choose one with --group", cfg->path,
		cfg->n_groups, strbuf_str(&names));
	strbuf_release(&names);
	return NULL;
}

static int
write_file(const char *path, const struct strbuf *sb)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		err_set("%s: cannot create: %s", path, strerror(errno));
		return -1;
	}
	if (fwrite(sb->buf, 1, sb->len, f) != sb->len) {
		err_set("%s: cannot write: %s", path, strerror(errno));
		fclose(f);
		return -1;
	}
	if (fclose(f) != 0) {
		err_set("%s: cannot write: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
cmd_simulate(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"trace", required_argument, NULL, 't'},
		{"group", required_argument, NULL, 'g'},
		{"capacity", required_argument, NULL, 'C'},
		{"boot-delay", required_argument, NULL, 'B'},
		{"warm-boot-delay", required_argument, NULL, 'W'},
		{"json", no_argument, NULL, 'j'},
		{"plot", required_argument, NULL, 'p'},
		{"explain", no_argument, NULL, 'e'},
		{"report-from", required_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *trace_path = NULL, *group = NULL, *plot_path = NULL;
	bool json = false, explain = false;
	struct strbuf errors = STRBUF_INIT, svg = STRBUF_INIT;
	struct observe_ctx x = {stdout, STRBUF_INIT, NULL};
	struct config *cfg = NULL;
	const struct config_group *g;
	struct trace tr = {0};
	struct sim_options o;
	struct sim_result r;
	char *end, *title = NULL;
	int opt, rc = 1;

	sim_options_defaults(&o);
	while ((opt = getopt_long(argc, argv, "c:t:g:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			global_opts.config_path = optarg;
			break;
		case 't':
			trace_path = optarg;
			break;
		case 'g':
			group = optarg;
			break;
		case 'C':
			errno = 0;
			o.capacity = strtod(optarg, &end);
			if (errno || end == optarg || *end ||
			    !(o.capacity > 0) || !isfinite(o.capacity)) {
				fprintf(stderr, "virt-autoscaler simulate: "
					"--capacity: '%s' is not a positive "
					"number of requests/s\n", optarg);
				return 2;
			}
			break;
		case 'B':
			if (util_parse_duration_ms(optarg, &o.boot_delay_ms) != 0) {
				fprintf(stderr, "virt-autoscaler simulate: "
					"--boot-delay: %s\n", err_msg());
				return 2;
			}
			break;
		case 'W':
			if (util_parse_duration_ms(optarg,
						   &o.warm_boot_delay_ms) != 0) {
				fprintf(stderr, "virt-autoscaler simulate: "
					"--warm-boot-delay: %s\n", err_msg());
				return 2;
			}
			break;
		case 'j':
			json = true;
			break;
		case 'p':
			plot_path = optarg;
			break;
		case 'e':
			explain = true;
			break;
		case 'R': {
			int64_t ms;

			if (util_parse_duration_ms(optarg, &ms) != 0) {
				fprintf(stderr, "virt-autoscaler simulate: "
					"--report-from: %s\n", err_msg());
				return 2;
			}
			o.report_from = (uint64_t)(ms / 1000);
			break;
		}
		case 'h':
			printf(usage_text);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "virt-autoscaler simulate: unexpected argument "
			"'%s'\n", argv[optind]);
		return 2;
	}
	if (!trace_path) {
		fprintf(stderr, "virt-autoscaler simulate: --trace FILE is "
			"required\n");
		fputs(usage_text, stderr);
		return 2;
	}

	/* the groups only: not the files, secrets or network it names */
	cfg = config_load_offline(global_opts.config_path, &errors);
	if (!cfg) {
		fputs(strbuf_str(&errors), stderr);
		goto cleanup;
	}
	g = pick_group(cfg, group);
	if (!g) {
		fprintf(stderr, "virt-autoscaler simulate: %s\n", err_msg());
		goto cleanup;
	}
	if (trace_load(trace_path, &tr) != 0) {
		fprintf(stderr, "virt-autoscaler simulate: %s\n", err_msg());
		goto cleanup;
	}
	o.initial = g->desired;
	warm_from_config(&g->warm_pool, &o.warm);
	o.arg = &x;
	if (explain) {
		x.out = json ? stderr : stdout;
		o.on_decision = explain_decision;
	}
	if (plot_path) {
		x.plot = sim_plot_new(tr.n, o.capacity);
		o.on_second = observe_second;
	}
	if (sim_run(&g->policy, tr.v, tr.n, &o, &r) != 0) {
		fprintf(stderr, "virt-autoscaler simulate: %s\n", err_msg());
		goto cleanup;
	}
	if (x.plot) {
		if (o.warm.size > 0)
			title = xasprintf("group %s: %s, %g req/s per VM, boot "
					  "delay %" PRId64 " s, warm pool %d "
					  "%s (%" PRId64 " s)", g->name,
					  trace_path, o.capacity,
					  o.boot_delay_ms / 1000, o.warm.size,
					  config_warm_state_name(
						  g->warm_pool.state),
					  o.warm_boot_delay_ms / 1000);
		else
			title = xasprintf("group %s: %s, %g req/s per VM, boot "
					  "delay %" PRId64 " s", g->name,
					  trace_path, o.capacity,
					  o.boot_delay_ms / 1000);
		sim_plot_svg(x.plot, title, &svg);
		if (write_file(plot_path, &svg) != 0) {
			fprintf(stderr, "virt-autoscaler simulate: %s\n",
				err_msg());
			goto cleanup;
		}
	}
	if (json) {
		printf("{\"vm_hours\": %.3f, \"under_provisioned_seconds\": %"
		       PRIu64 ", \"excess_requests\": %" PRIu64 ", "
		       "\"scale_actions\": %" PRIu64 ", \"min_vms\": %d, "
		       "\"max_vms\": %d, \"oracle_vm_hours\": %.3f, "
		       "\"warm_vm_hours\": %.3f, \"warm_draws\": %" PRIu64
		       "}\n",
		       r.vm_hours, r.under_provisioned_seconds,
		       r.excess_requests, r.scale_actions, r.min_vms,
		       r.max_vms, r.oracle_vm_hours, r.warm_vm_hours,
		       r.warm_draws);
	} else {
		printf("group %s, %zu s of trace, %g req/s per VM, boot delay "
		       "%" PRId64 " s, decisions every %" PRId64 " ms\n",
		       g->name, tr.n, o.capacity, o.boot_delay_ms / 1000,
		       g->policy.interval_ms);
		printf("vm_hours                   %.3f\n", r.vm_hours);
		printf("under_provisioned_seconds  %" PRIu64 "\n",
		       r.under_provisioned_seconds);
		printf("excess_requests            %" PRIu64 "\n",
		       r.excess_requests);
		printf("scale_actions              %" PRIu64 "\n",
		       r.scale_actions);
		printf("min_vms                    %d\n", r.min_vms);
		printf("max_vms                    %d\n", r.max_vms);
		printf("oracle_vm_hours            %.3f (%.2fx)\n",
		       r.oracle_vm_hours, r.oracle_vm_hours > 0
		       ? r.vm_hours / r.oracle_vm_hours : 0);
		if (o.warm.size > 0) {
			printf("warm pool                  %d %s, warm boot "
			       "delay %.3g s%s\n", o.warm.size,
			       config_warm_state_name(g->warm_pool.state),
			       o.warm_boot_delay_ms / 1000.0,
			       o.warm.reuse ? ", reuse on scale-in" : "");
			printf("warm_vm_hours              %.3f%s\n",
			       r.warm_vm_hours, o.warm.holds_ram
			       ? " (paused: in vm_hours)" : "");
			printf("warm_draws                 %" PRIu64 "\n",
			       r.warm_draws);
		}
		if (g->policy.predictive.mode != POLICY_PREDICTIVE_OFF)
			printf("forecasts                  %" PRIu64 " of %"
			       PRIu64 " decisions\n", r.forecasts,
			       r.decisions);
	}
	rc = fflush(stdout) == 0 ? 0 : 1;
cleanup:
	free(title);
	sim_plot_free(x.plot);
	trace_release(&tr);
	config_free(cfg);
	strbuf_release(&errors);
	strbuf_release(&svg);
	strbuf_release(&x.line);
	return rc;
}
