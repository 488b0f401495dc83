/*
 * publish.c: what the loop publishes for the HTTP threads each turn
 * (daemon_publish: the snapshot of control.h) and the daemon's own part
 * of the Prometheus text behind /metrics.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_int.h"
#include "log.h"
#include "members.h"
#include "refresh.h"
#include "metrics.h"
#include "promsrc.h"
#include "rates.h"
#include "util.h"

static void
prom_header(struct strbuf *sb, const char *name, const char *type,
	    const char *help)
{
	strbuf_addf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/*
 * Each group's application metrics at its last decision: stat="value"
 * (the mean or the total the engine saw; absent while no ready instance
 * reported it recently), stat="target" (when it is a target) and
 * stat="reporting" (the instances it was computed over).
 */
/* The outside sources' queries and failures (scaling.target.app.source). */
static void
render_app_sources(struct daemon *d, struct strbuf *sb)
{
	static const char *const names[2] = {"va_app_source_queries_total",
					     "va_app_source_errors_total"};
	static const char *const helps[2] = {
		"queries made to an app metric's outside source (prometheus)",
		"of those, failed (no answer, HTTP error, not one usable number)"};

	for (int k = 0; k < 2; k++) {
		bool header = false;

		for (unsigned i = 0; i < d->n_groups; i++) {
			const struct dgroup *g = &d->groups[i];
			const struct policy_params *p = &g->cfg->policy;
			struct promsrc_state st;

			if (!g->src)
				continue;
			promsrc_get(g->src, &st);
			if (!header)
				prom_header(sb, names[k], "counter", helps[k]);
			header = true;
			for (unsigned a = 0; a < p->n_app && a < POLICY_APP_MAX; a++)
				if (p->app[a].source[0])
					strbuf_addf(sb, "%s{group=\"%s\",metric=\"%s\","
						    "source=\"%s\"} %lu\n", names[k],
						    g->cfg->name, p->app[a].name,
						    p->app[a].source,
						    k ? st.errors : st.queries);
		}
	}
}

static void
render_app_metrics(struct daemon *d, struct strbuf *sb)
{
	bool any = false;

	for (unsigned i = 0; i < d->n_groups; i++)
		any = any || d->groups[i].cfg->policy.n_app > 0;
	if (!any)
		return;
	prom_header(sb, "va_group_app_metric", "gauge",
		    "an application metric of the group (from heartbeats, or an "
		    "outside source): stat value (mean or total at the last "
		    "decision), target, reporting");
	for (unsigned i = 0; i < d->n_groups; i++) {
		const struct dgroup *g = &d->groups[i];
		const struct policy_params *p = &g->cfg->policy;

		for (unsigned a = 0; a < p->n_app && a < POLICY_APP_MAX; a++) {
			const char *name = p->app[a].name;

			if (g->have_last && g->last.app_present[a])
				strbuf_addf(sb, "va_group_app_metric{group=\"%s\","
					    "metric=\"%s\",stat=\"value\"} %.6g\n",
					    g->cfg->name, name, g->last.app[a]);
			if (p->app[a].target > 0)
				strbuf_addf(sb, "va_group_app_metric{group=\"%s\","
					    "metric=\"%s\",stat=\"target\"} %.6g\n",
					    g->cfg->name, name, p->app[a].target);
			strbuf_addf(sb, "va_group_app_metric{group=\"%s\","
				    "metric=\"%s\",stat=\"reporting\"} %d\n",
				    g->cfg->name, name,
				    g->have_last ? g->last.app_reporting[a] : 0);
		}
	}
	render_app_sources(d, sb);
}

/*
 * The daemon's own part of /metrics: group bounds and pause flags,
 * check-in and provisioning counters. The collected figures (instances,
 * hosts, group sizes and aggregates, the loop's tick) come from
 * metrics.c, rendered at request time.
 */
static char *
render_metrics(struct daemon *d)
{
	struct strbuf sb = STRBUF_INIT;
	static const struct {
		const char *name, *help;
		size_t off;
	} counters[] = {
		{"va_checkins_total", "guest check-ins accepted",
		 offsetof(struct daemon, checkins)},
		{"va_heartbeats_total", "guest heartbeats accepted",
		 offsetof(struct daemon, heartbeats)},
		{"va_heartbeats_invalid_total",
		 "heartbeats refused (400) for a metric value that is not a "
		 "finite number from 0 to 1e12",
		 offsetof(struct daemon, heartbeats_invalid)},
		{"va_auth_failures_total",
		 "check-ins and heartbeats refused for a wrong secret or an unknown instance",
		 offsetof(struct daemon, auth_failures)},
		{"va_provisioned_total", "instances provisioned",
		 offsetof(struct daemon, provisioned)},
		{"va_provision_errors_total", "provisioning attempts that failed",
		 offsetof(struct daemon, provision_errors)},
		{"va_removed_total", "instances removed",
		 offsetof(struct daemon, removed)},
	};

	prom_header(&sb, "va_group_min", "gauge", "minimum size");
	for (unsigned i = 0; i < d->n_groups; i++)
		strbuf_addf(&sb, "va_group_min{group=\"%s\"} %d\n",
			    d->groups[i].cfg->name, d->groups[i].cfg->min);
	prom_header(&sb, "va_group_max", "gauge", "maximum size");
	for (unsigned i = 0; i < d->n_groups; i++)
		strbuf_addf(&sb, "va_group_max{group=\"%s\"} %d\n",
			    d->groups[i].cfg->name, d->groups[i].cfg->max);
	prom_header(&sb, "va_group_paused", "gauge", "1 when scaling is paused");
	for (unsigned i = 0; i < d->n_groups; i++)
		strbuf_addf(&sb, "va_group_paused{group=\"%s\"} %d\n",
			    d->groups[i].cfg->name, d->groups[i].paused);
	for (size_t k = 0; k < ARRAY_SIZE(counters); k++) {
		prom_header(&sb, counters[k].name, "counter", counters[k].help);
		strbuf_addf(&sb, "%s %lu\n", counters[k].name,
			    __atomic_load_n((const unsigned long *)(const void *)((const char *)d +
										   counters[k].off),
					    __ATOMIC_RELAXED));
	}
	render_app_metrics(d, &sb);
	predict_prom(d, &sb);
	if (d->influx) {
		struct influx_counters ic;

		influx_get_counters(d->influx, &ic);
		prom_header(&sb, "va_influxdb_points_sent_total", "counter",
			    "points InfluxDB accepted");
		strbuf_addf(&sb, "va_influxdb_points_sent_total %lu\n", ic.sent);
		prom_header(&sb, "va_influxdb_points_dropped_total", "counter",
			    "points dropped (queue full while InfluxDB was unreachable, or rejected)");
		strbuf_addf(&sb, "va_influxdb_points_dropped_total %lu\n", ic.dropped);
		prom_header(&sb, "va_influxdb_points_queued", "gauge",
			    "points waiting to be sent");
		strbuf_addf(&sb, "va_influxdb_points_queued %lu\n", ic.queued);
	}
	return strbuf_detach(&sb);
}

/*
 * The group's outside source for GET /v1/groups(/NAME) and explain:
 * {"metric", "source", "url", "query", "target", "value", "age_s",
 * "error", "queries", "errors"}; NULL without one. Caller frees.
 */
static char *
app_source_json(const struct dgroup *g)
{
	const struct policy_params *p = &g->cfg->policy;
	struct strbuf sb = STRBUF_INIT;
	struct promsrc_state st;
	int64_t now = util_now_ms();

	if (!g->src)
		return NULL;
	promsrc_get(g->src, &st);
	for (unsigned a = 0; a < p->n_app && a < POLICY_APP_MAX; a++) {
		if (!p->app[a].source[0])
			continue;
		strbuf_adds(&sb, "{\"metric\":");
		http_json_string(&sb, p->app[a].name);
		strbuf_adds(&sb, ",\"source\":");
		http_json_string(&sb, p->app[a].source);
		strbuf_adds(&sb, ",\"url\":");
		http_json_string(&sb, promsrc_shown_url(g->src));
		strbuf_adds(&sb, ",\"query\":");
		http_json_string(&sb, g->cfg->app_source.query);
		strbuf_addf(&sb, ",\"target\":%.6g", p->app[a].target);
		if (st.have)
			strbuf_addf(&sb, ",\"value\":%.6g,\"age_s\":%.1f",
				    st.value, (double)(now - st.value_ms) / 1000);
		else
			strbuf_adds(&sb, ",\"value\":null,\"age_s\":null");
		strbuf_adds(&sb, ",\"error\":");
		if (st.failing)
			http_json_string(&sb, st.why);
		else
			strbuf_adds(&sb, "null");
		strbuf_addf(&sb, ",\"queries\":%lu,\"errors\":%lu}",
			    st.queries, st.errors);
		break;
	}
	return sb.len ? strbuf_detach(&sb) : (strbuf_release(&sb), NULL);
}

void
daemon_publish(struct daemon *d)
{
	struct control_snapshot *s = control_snapshot_new(d->n_groups);

	if (d->appm) {
		/* the names every group's policy names (config.c bounds them
		 * to APPM_NAMES); the same set changes nothing */
		const char *names[APPM_NAMES];
		unsigned nn = 0;

		for (unsigned i = 0; i < d->n_groups; i++) {
			const struct policy_params *p = &d->groups[i].cfg->policy;

			for (unsigned a = 0; a < p->n_app && nn < APPM_NAMES; a++) {
				unsigned k = 0;

				if (p->app[a].source[0])
					continue; /* not from heartbeats */
				while (k < nn && strcmp(names[k], p->app[a].name))
					k++;
				if (k == nn)
					names[nn++] = p->app[a].name;
			}
		}
		appm_set_names(d->appm, names, nn);
	}
	s->generation = d->config_gen;
	s->retention_ms = d->cfg->daemon.metrics.retention_ms;
	s->metrics_instances = d->cfg->daemon.metrics_instances;
	for (unsigned i = 0; i < d->n_groups; i++) {
		const struct dgroup *g = &d->groups[i];
		struct control_group *cg = &s->groups[i];

		cg->name = xstrdup(g->cfg->name);
		cg->min = g->cfg->min;
		cg->max = g->cfg->max;
		cg->desired = g->desired;
		cg->current = g->current;
		cg->ready = g->ready;
		cg->paused = g->paused;
		memcpy(cg->metric, g->metric, sizeof(cg->metric));
		memcpy(cg->metric_present, g->metric_present,
		       sizeof(cg->metric_present));
		cg->last_decision = g->have_last ? xstrdup(g->last.reason) : NULL;
		cg->app_source = app_source_json(g);
		cg->predictive = predict_json(g, util_wall_ms());
		cg->busy_held = g->busy_held;
		cg->waiting_for_hosts = g->waiting_for_hosts;
		cg->warm_pool = g->cfg->warm_pool.size > 0 || g->warming > 0 ||
				g->warm > 0;
		cg->warm_state = config_warm_state_name(g->cfg->warm_pool.state);
		cg->launch_hook = g->cfg->hooks.launch.present;
		cg->refresh = refresh_json(g);
		cg->warm_target = g->warm_target;
		cg->warming = g->warming;
		cg->warm = g->warm;
		cg->interval_ms = g->cfg->policy.interval_ms;
		memcpy(cg->target, g->cfg->policy.target, sizeof(cg->target));
		cg->history = g->hist ? history_ref(g->hist) : NULL;
	}
	s->hosts = xcalloc(d->n_hosts + 1, sizeof(*s->hosts));
	s->n_hosts = d->n_hosts;
	for (unsigned i = 0; i < d->n_hosts; i++) {
		const struct dhost *dh = &d->hosts[i];
		struct control_host *ch = &s->hosts[i];

		ch->name = xstrdup(dh->cfg->name);
		ch->state = dhost_state_name(dh->state);
		ch->since_ms = dh->state_since_ms;
		ch->why = dh->state == DHOST_DOWN && dh->why[0] ? xstrdup(dh->why)
							      : NULL;
		ch->measured = dh->cap_ok &&
			       (dh->cap.present & (1u << COLLECT_CAP_NODEINFO));
		ch->cpus = dh->cap.cpus;
		ch->mem_bytes = dh->cap.mem_kib * 1024;
		ch->free_bytes = (dh->cap.present & (1u << COLLECT_CAP_FREE))
					 ? dh->cap.free_kib * 1024
					 : 0;
		ch->domains = dh->cap.domains;
		ch->vcpus_alloc = dh->cap.vcpus_alloc;
		ch->mem_alloc_bytes = dh->cap.mem_alloc_kib * 1024;
	}
	s->prom = render_metrics(d);
	/* shared, not copied: 100 bytes an instance every turn */
	s->ready = xrc_ref(d->ready);
	s->n_ready = d->n_ready;
	members_publish(d, s);
	control_publish(d->ctl, s);
}
