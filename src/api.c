/*
 * api.c: the daemon's answers to the operator's HTTP requests (http.c
 * calls these from its threads): groups, hosts, instances, events, the
 * status page's overview, load-balancer targets and /metrics; and the
 * table http.c dispatches through. The commands (posted to the loop,
 * control.h) and lifecycle hooks' completions are in api_command.c,
 * what guests call in api_guest.c, what the loop publishes in
 * publish.c. Everything here reads the loop's snapshot or the store's
 * HTTP handle; nothing writes group state.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "daemon_int.h"
#include "log.h"
#include "metrics.h"
#include "rates.h"
#include "util.h"


static void
group_json(const struct control_group *g, struct strbuf *sb)
{
	strbuf_adds(sb, "{\"name\":");
	http_json_string(sb, g->name);
	strbuf_addf(sb, ",\"min\":%d,\"max\":%d,\"desired\":%d,\"current\":%d,"
		    "\"ready\":%d,\"paused\":%s,\"metrics\":{",
		    g->min, g->max, g->desired, g->current, g->ready,
		    g->paused ? "true" : "false");
	for (int m = 0, first = 1; m < POLICY_METRIC_LAST; m++) {
		if (!g->metric_present[m])
			continue;
		strbuf_addf(sb, "%s\"%s\":%.3f", first ? "" : ",",
			    policy_metric_name((enum policy_metric)m), g->metric[m]);
		first = 0;
	}
	strbuf_adds(sb, "},\"last_decision\":");
	if (g->last_decision)
		http_json_string(sb, g->last_decision);
	else
		strbuf_adds(sb, "null");
	strbuf_addf(sb, ",\"busy_held\":%d,\"waiting_for_hosts\":%s",
		    g->busy_held, g->waiting_for_hosts ? "true" : "false");
	if (g->warm_pool)
		strbuf_addf(sb, ",\"warm_pool\":{\"state\":\"%s\",\"target\":%d,"
			    "\"warming\":%d,\"warm\":%d}", g->warm_state,
			    g->warm_target, g->warming, g->warm);
	if (g->app_source) {
		strbuf_adds(sb, ",\"app_source\":");
		strbuf_adds(sb, g->app_source);
	}
	if (g->predictive) {
		strbuf_adds(sb, ",\"predictive\":");
		strbuf_adds(sb, g->predictive);
	}
	if (g->refresh) {
		strbuf_adds(sb, ",\"refresh\":");
		strbuf_adds(sb, g->refresh);
	}
	strbuf_adds(sb, "}");
}

/* GET /v1/hosts: each configured host's state and last measurements. */
static unsigned
api_hosts(void *ctx, struct http_reply *out)
{
	struct daemon *d = ctx;
	struct control_snapshot *s = control_snapshot_get(d->ctl);

	strbuf_adds(&out->body, "{\"hosts\":[");
	for (size_t i = 0; s && i < s->n_hosts; i++) {
		const struct control_host *h = &s->hosts[i];

		strbuf_adds(&out->body, i ? ",{\"name\":" : "{\"name\":");
		http_json_string(&out->body, h->name);
		strbuf_adds(&out->body, ",\"state\":");
		http_json_string(&out->body, h->state);
		strbuf_addf(&out->body, ",\"since\":%" PRId64 ",\"reason\":",
			    h->since_ms);
		if (h->why)
			http_json_string(&out->body, h->why);
		else
			strbuf_adds(&out->body, "null");
		if (h->measured)
			strbuf_addf(&out->body,
				    ",\"cpus\":%u,\"memory_bytes\":%" PRIu64
				    ",\"free_memory_bytes\":%" PRIu64
				    ",\"domains\":%u,\"vcpus_allocated\":%u"
				    ",\"memory_allocated_bytes\":%" PRIu64,
				    h->cpus, h->mem_bytes, h->free_bytes, h->domains,
				    h->vcpus_alloc, h->mem_alloc_bytes);
		strbuf_adds(&out->body, "}");
	}
	strbuf_adds(&out->body, "]}\n");
	control_snapshot_put(s);
	return out->status = 200;
}

static unsigned
api_groups(void *ctx, struct http_reply *out)
{
	struct daemon *d = ctx;
	struct control_snapshot *s = control_snapshot_get(d->ctl);

	strbuf_adds(&out->body, "{\"groups\":[");
	for (size_t i = 0; s && i < s->n_groups; i++) {
		if (i)
			strbuf_addc(&out->body, ',');
		group_json(&s->groups[i], &out->body);
	}
	strbuf_adds(&out->body, "]}\n");
	control_snapshot_put(s);
	return out->status = 200;
}

static unsigned
api_group(void *ctx, const char *name, struct http_reply *out)
{
	struct daemon *d = ctx;
	struct control_snapshot *s = control_snapshot_get(d->ctl);
	const struct control_group *g = control_snapshot_group(s, name);

	if (g) {
		group_json(g, &out->body);
		strbuf_addc(&out->body, '\n');
	}
	control_snapshot_put(s);
	if (!g)
		return http_reply_error(out, 404, "no group '%s'", name);
	return out->status = 200;
}

/* A float series value: NaN (none) is null. */
static void
json_num(struct strbuf *sb, double v)
{
	if (isnan(v) || isinf(v))
		strbuf_adds(sb, "null");
	else
		strbuf_addf(sb, "%.6g", v);
}

/* One group of GET /v1/overview: its sizes and its plans' history. */
static void
overview_group(const struct control_group *g, int64_t retention_ms,
	       struct strbuf *sb)
{
	struct history_point *v = NULL;
	size_t n = g->history ? history_read(g->history, &v) : 0;
	int64_t window = retention_ms;
	bool shown[POLICY_METRIC_LAST], targeted[POLICY_METRIC_LAST];
	bool forecast = false;

	if (g->interval_ms > 0 &&
	    window > (int64_t)(HISTORY_MAX_POINTS - 1) * g->interval_ms)
		window = (int64_t)(HISTORY_MAX_POINTS - 1) * g->interval_ms;
	strbuf_adds(sb, "{\"name\":");
	http_json_string(sb, g->name);
	strbuf_addf(sb, ",\"min\":%d,\"max\":%d,\"desired\":%d,\"current\":%d,"
		    "\"ready\":%d,\"paused\":%s,\"interval_s\":%.15g,"
		    "\"window_s\":%.15g,\"metrics\":{",
		    g->min, g->max, g->desired, g->current, g->ready,
		    g->paused ? "true" : "false", (double)g->interval_ms / 1000.0,
		    (double)window / 1000.0);
	for (int m = 0, first = 1; m < POLICY_METRIC_LAST; m++) {
		if (!g->metric_present[m])
			continue;
		strbuf_addf(sb, "%s\"%s\":", first ? "" : ",",
			    policy_metric_name((enum policy_metric)m));
		json_num(sb, g->metric[m]);
		first = 0;
	}
	strbuf_adds(sb, "},\"targets\":{");
	for (int m = 0, first = 1; m < POLICY_METRIC_LAST; m++) {
		if (g->target[m] <= 0)
			continue;
		strbuf_addf(sb, "%s\"%s\":", first ? "" : ",",
			    policy_metric_name((enum policy_metric)m));
		json_num(sb, g->target[m]);
		first = 0;
	}
	/* a metric's series only when some plan read it or tracked it */
	for (int m = 0; m < POLICY_METRIC_LAST; m++) {
		shown[m] = targeted[m] = false;
		for (size_t i = 0; i < n; i++) {
			shown[m] |= !isnan(v[i].metric[m]) || v[i].target[m] > 0;
			targeted[m] |= v[i].target[m] > 0;
		}
	}
	strbuf_adds(sb, "},\"history\":{\"time\":[");
	for (size_t i = 0; i < n; i++)
		strbuf_addf(sb, "%s%" PRId64, i ? "," : "", v[i].t_ms);
	strbuf_adds(sb, "],\"desired\":[");
	for (size_t i = 0; i < n; i++)
		strbuf_addf(sb, "%s%d", i ? "," : "", (int)v[i].desired);
	strbuf_adds(sb, "],\"current\":[");
	for (size_t i = 0; i < n; i++)
		strbuf_addf(sb, "%s%d", i ? "," : "", (int)v[i].current);
	strbuf_adds(sb, "],\"ready\":[");
	for (size_t i = 0; i < n; i++)
		strbuf_addf(sb, "%s%d", i ? "," : "", (int)v[i].ready);
	/* predictive scaling's floor, when some plan had one */
	for (size_t i = 0; i < n; i++)
		forecast |= v[i].forecast >= 0;
	if (forecast) {
		strbuf_adds(sb, "],\"forecast\":[");
		for (size_t i = 0; i < n; i++) {
			if (i)
				strbuf_addc(sb, ',');
			if (v[i].forecast >= 0)
				strbuf_addf(sb, "%d", (int)v[i].forecast);
			else
				strbuf_adds(sb, "null");
		}
	}
	strbuf_adds(sb, "],\"metrics\":{");
	for (int m = 0, first = 1; m < POLICY_METRIC_LAST; m++) {
		if (!shown[m])
			continue;
		strbuf_addf(sb, "%s\"%s\":[", first ? "" : ",",
			    policy_metric_name((enum policy_metric)m));
		for (size_t i = 0; i < n; i++) {
			if (i)
				strbuf_addc(sb, ',');
			json_num(sb, v[i].metric[m]);
		}
		strbuf_addc(sb, ']');
		first = 0;
	}
	strbuf_adds(sb, "},\"targets\":{");
	for (int m = 0, first = 1; m < POLICY_METRIC_LAST; m++) {
		if (!targeted[m])
			continue;
		strbuf_addf(sb, "%s\"%s\":[", first ? "" : ",",
			    policy_metric_name((enum policy_metric)m));
		for (size_t i = 0; i < n; i++) {
			if (i)
				strbuf_addc(sb, ',');
			json_num(sb, v[i].target[m] > 0 ? v[i].target[m] : NAN);
		}
		strbuf_addc(sb, ']');
		first = 0;
	}
	strbuf_adds(sb, "}}}");
	free(v);
}

/*
 * GET /v1/overview: the status page's public data, from the snapshot and
 * the groups' rings only (no store, no metrics store): what /metrics
 * tells anyone (groups' sizes, bounds, pause flags and the engine's
 * inputs; hosts' state and capacity) and its history over the window.
 * No instance ids, no host's down reason, no decision text: those are
 * the admin API's (docs/http-api.md, "The status page").
 */
static unsigned
api_overview(void *ctx, struct http_reply *out)
{
	struct daemon *d = ctx;
	struct control_snapshot *s = control_snapshot_get(d->ctl);

	strbuf_addf(&out->body, "{\"time\":%" PRId64 ",\"groups\":[",
		    util_wall_ms());
	for (size_t i = 0; s && i < s->n_groups; i++) {
		if (i)
			strbuf_addc(&out->body, ',');
		overview_group(&s->groups[i], s->retention_ms, &out->body);
	}
	strbuf_adds(&out->body, "],\"hosts\":[");
	for (size_t i = 0; s && i < s->n_hosts; i++) {
		const struct control_host *h = &s->hosts[i];

		strbuf_adds(&out->body, i ? ",{\"name\":" : "{\"name\":");
		http_json_string(&out->body, h->name);
		strbuf_adds(&out->body, ",\"state\":");
		http_json_string(&out->body, h->state);
		strbuf_addf(&out->body, ",\"since\":%" PRId64, h->since_ms);
		if (h->measured)
			strbuf_addf(&out->body,
				    ",\"cpus\":%u,\"memory_bytes\":%" PRIu64
				    ",\"free_memory_bytes\":%" PRIu64
				    ",\"domains\":%u,\"vcpus_allocated\":%u"
				    ",\"memory_allocated_bytes\":%" PRIu64,
				    h->cpus, h->mem_bytes, h->free_bytes, h->domains,
				    h->vcpus_alloc, h->mem_alloc_bytes);
		strbuf_adds(&out->body, "}");
	}
	strbuf_adds(&out->body, "]}\n");
	control_snapshot_put(s);
	return out->status = 200;
}

/*
 * GET /v1/groups/NAME/targets: the group's in-service (ready) instances
 * with an address, as the loop last listed them (members.h), for a load
 * balancer; "pending": ready ones whose address is not known yet.
 */
static unsigned
api_targets(void *ctx, const char *name, struct http_reply *out)
{
	struct daemon *d = ctx;
	struct control_snapshot *s = control_snapshot_get(d->ctl);
	const struct control_group *g = control_snapshot_group(s, name);

	if (!g) {
		control_snapshot_put(s);
		return http_reply_error(out, 404, "no group '%s'", name);
	}
	if (!g->targets_known) {
		control_snapshot_put(s);
		return http_reply_error(out, 503, "the daemon has not listed the group's instances yet");
	}
	strbuf_adds(&out->body, "{\"group\":");
	http_json_string(&out->body, g->name);
	strbuf_adds(&out->body, ",\"port\":");
	if (g->targets_port)
		strbuf_addf(&out->body, "%d", g->targets_port);
	else
		strbuf_adds(&out->body, "null");
	strbuf_addf(&out->body, ",\"pending\":%zu,\"targets\":[", g->targets_pending);
	for (size_t i = 0; i < g->n_targets; i++) {
		strbuf_adds(&out->body, i ? ",{\"id\":" : "{\"id\":");
		http_json_string(&out->body, g->targets[i].id);
		strbuf_adds(&out->body, ",\"address\":");
		http_json_string(&out->body, g->targets[i].addr);
		strbuf_adds(&out->body, "}");
	}
	strbuf_adds(&out->body, "]}\n");
	control_snapshot_put(s);
	return out->status = 200;
}

static unsigned
api_instances(void *ctx, const char *group, struct http_reply *out)
{
	struct daemon *d = ctx;
	struct store_instance_filter f = {.group = group};
	struct store_instance_list l = {0};
	struct control_snapshot *s;

	for (int st = 0; st < STORE_INSTANCE_LAST; st++)
		if (st != STORE_INSTANCE_GONE)
			f.state_mask |= STORE_STATE_BIT(st);
	if (store_instance_list(d->store_http, &f, &l) != STORE_OK)
		return http_reply_error(out, 503, "state store: %s", err_msg());
	s = control_snapshot_get(d->ctl);
	strbuf_adds(&out->body, "{\"instances\":[");
	for (size_t i = 0; i < l.n; i++) {
		const struct store_instance *si = &l.v[i];

		strbuf_adds(&out->body, i ? ",{\"id\":" : "{\"id\":");
		http_json_string(&out->body, si->id);
		strbuf_adds(&out->body, ",\"group\":");
		http_json_string(&out->body, si->group);
		strbuf_adds(&out->body, ",\"host\":");
		http_json_string(&out->body, si->host ? si->host : "");
		strbuf_adds(&out->body, ",\"domain\":");
		http_json_string(&out->body, si->domain ? si->domain : "");
		strbuf_adds(&out->body, ",\"state\":");
		http_json_string(&out->body, store_instance_state_name(si->state));
		strbuf_addf(&out->body,
			    ",\"created\":%" PRId64 ",\"ready_at\":%" PRId64
			    ",\"last_heartbeat\":%" PRId64 ",\"busy\":%s",
			    si->created_ms, si->ready_ms, si->heartbeat_ms,
			    si->busy ? "true" : "false");
		{
			/* the static one, else what libvirt reported */
			const char *a = si->address ? si->address
						    : control_snapshot_address(s, si->id);

			strbuf_adds(&out->body, ",\"address\":");
			if (a)
				http_json_string(&out->body, a);
			else
				strbuf_adds(&out->body, "null");
		}
		/* the template it was built from (instance refresh) */
		if (si->template_hash)
			strbuf_addf(&out->body, ",\"template\":\"%.12s\"",
				    si->template_hash);
		else
			strbuf_adds(&out->body, ",\"template\":null");
		strbuf_addc(&out->body, '}');
	}
	strbuf_adds(&out->body, "]}\n");
	control_snapshot_put(s);
	store_instance_list_release(&l);
	return out->status = 200;
}

#define INSTANCE_METRICS_DEFAULT_WINDOW_MS (5 * 60 * 1000)
#define INSTANCE_ID_MAX 128 /* http.c accepts no longer path segment */

/*
 * GET /v1/instances/ID/metrics: the instance's figures in the built-in
 * store over the last window (docs/http-api.md). The store is keyed by
 * the domain's UUID, which provisioning makes the instance's id (the
 * scaler reads it the same way). The store has its own lock; the
 * retention is read from the snapshot. d->mstore itself is set before the
 * HTTP server starts and freed after it stops.
 */
static unsigned
api_instance_metrics(void *ctx, const char *id, int64_t window_ms,
		     struct http_reply *out)
{
	struct daemon *d = ctx;
	struct store_instance si;
	struct rates_window w;
	unsigned char uuid[MSTORE_UUID_LEN];
	char lid[INSTANCE_ID_MAX + 1];
	int64_t retention, now;
	unsigned samples = 0;
	size_t n;
	int rc;

	n = strlen(id);
	if (n > INSTANCE_ID_MAX)
		return http_reply_error(out, 404, "no instance '%s'", id);
	for (size_t i = 0; i <= n; i++)
		lid[i] = (id[i] >= 'A' && id[i] <= 'Z') ? (char)(id[i] - 'A' + 'a')
							: id[i];
	{
		struct control_snapshot *s = control_snapshot_get(d->ctl);

		retention = s ? s->retention_ms : 0;
		control_snapshot_put(s);
	}
	if (retention <= 0)
		return http_reply_error(out, 503, "the daemon is starting");
	if (!window_ms)
		window_ms = retention < INSTANCE_METRICS_DEFAULT_WINDOW_MS
				    ? retention
				    : INSTANCE_METRICS_DEFAULT_WINDOW_MS;
	if (window_ms > retention) {
		char *ws = util_format_duration(window_ms);
		char *rs = util_format_duration(retention);

		http_reply_error(out, 400,
				 "window %s is longer than daemon.metrics.retention (%s): the store keeps no older samples",
				 ws, rs);
		free(ws);
		free(rs);
		return out->status;
	}
	if (util_uuid_parse(lid, uuid) != 0)
		return http_reply_error(out, 404, "no instance '%s' (instance ids are UUIDs)",
					id);
	rc = store_instance_get(d->store_http, lid, &si);
	if (rc == STORE_E_NOTFOUND)
		return http_reply_error(out, 404, "no instance '%s'", id);
	if (rc != STORE_OK)
		return http_reply_error(out, 503, "state store: %s", err_msg());

	now = util_now_ms();
	/* An instance the built-in store does not hold (not collected yet,
	 * not running, removed) has no samples. */
	if (!d->mstore ||
	    mstore_query(d->mstore, uuid, now - window_ms, now, &w) != 0)
		memset(&w, 0, sizeof(w));
	samples = w.samples;

	strbuf_adds(&out->body, "{\"id\":");
	http_json_string(&out->body, si.id);
	strbuf_adds(&out->body, ",\"group\":");
	http_json_string(&out->body, si.group);
	strbuf_adds(&out->body, ",\"state\":");
	http_json_string(&out->body, store_instance_state_name(si.state));
	strbuf_addf(&out->body, ",\"window_s\":%.15g,\"samples\":%u,\"last_sample_age_s\":",
		    (double)window_ms / 1000.0, samples);
	if (w.last_t_ms)
		strbuf_addf(&out->body, "%.1f",
			    (double)(now - w.last_t_ms) / 1000.0);
	else
		strbuf_adds(&out->body, "null");
	strbuf_adds(&out->body, ",\"metrics\":{");
	for (int m = 0, first = 1; m < RATES_LAST; m++) {
		if (!w.n[m])
			continue;
		strbuf_addf(&out->body,
			    "%s\"%s\":{\"mean\":%.3f,\"max\":%.3f,\"last\":%.3f,\"samples\":%u}",
			    first ? "" : ",", rates_metric_name((enum rates_metric)m),
			    w.mean[m], w.max[m], w.last[m], w.n[m]);
		first = 0;
	}
	strbuf_adds(&out->body, "},\"app_metrics\":{");
	if (d->appm) {
		struct appm_value av[APPM_NAMES];
		unsigned na = appm_instance(d->appm, si.id, av);
		int64_t wall = util_wall_ms();

		for (unsigned i = 0; i < na; i++) {
			strbuf_addf(&out->body, "%s", i ? "," : "");
			http_json_string(&out->body, av[i].name);
			strbuf_addf(&out->body, ":{\"value\":%.6g,\"age_s\":%.1f}",
				    av[i].value,
				    (double)(wall - av[i].wall_ms) / 1000.0);
		}
	}
	strbuf_adds(&out->body, "}}\n");
	store_instance_release(&si);
	return out->status = 200;
}

static unsigned
api_events(void *ctx, const char *group, const char *kind, unsigned limit,
	   struct http_reply *out)
{
	struct daemon *d = ctx;
	struct store_event_list l = {0};
	size_t fetch = kind ? (size_t)limit * 20 : limit;
	size_t shown = 0, first;
	bool comma = false;

	if (fetch > 10000)
		fetch = 10000;
	if (store_event_list_recent(d->store_http, group, fetch, &l) != STORE_OK)
		return http_reply_error(out, 503, "state store: %s", err_msg());
	/* newest first from the store; print the newest `limit` matching,
	 * oldest first */
	first = l.n;
	for (size_t i = 0; i < l.n && shown < limit; i++) {
		if (kind && strcmp(l.v[i].kind, kind) != 0)
			continue;
		shown++;
		first = i;
	}
	strbuf_adds(&out->body, "{\"events\":[");
	for (size_t i = first + 1; i-- > 0;) {
		const struct store_event *e;

		if (i >= l.n)
			continue;
		e = &l.v[i];
		if (kind && strcmp(e->kind, kind) != 0)
			continue;
		strbuf_addf(&out->body, "%s{\"id\":%" PRId64 ",\"time\":%" PRId64
			    ",\"group\":", comma ? "," : "", e->id, e->time_ms);
		comma = true;
		if (e->group)
			http_json_string(&out->body, e->group);
		else
			strbuf_adds(&out->body, "null");
		strbuf_adds(&out->body, ",\"instance\":");
		if (e->instance)
			http_json_string(&out->body, e->instance);
		else
			strbuf_adds(&out->body, "null");
		strbuf_adds(&out->body, ",\"kind\":");
		http_json_string(&out->body, e->kind);
		strbuf_adds(&out->body, ",\"message\":");
		http_json_string(&out->body, e->message ? e->message : "");
		strbuf_adds(&out->body, "}");
	}
	strbuf_adds(&out->body, "]}\n");
	store_event_list_release(&l);
	return out->status = 200;
}

/*
 * /metrics is open (a scraper holds no token). The per-instance series
 * name every VM of the installation, so they are only shown with the
 * admin token or when daemon.metrics_instances says anyone may see them.
 */
static unsigned
api_metrics(void *ctx, bool admin, struct http_reply *out)
{
	struct daemon *d = ctx;
	struct control_snapshot *s = control_snapshot_get(d->ctl);

	metrics_render_prometheus(&out->body,
				  admin || (s && s->metrics_instances));
	if (s && s->prom)
		strbuf_adds(&out->body, s->prom);
	control_snapshot_put(s);
	return out->status = 200;
}

const struct http_api daemon_http_api = {
	.checkin = api_checkin,
	.heartbeat = api_heartbeat,
	.groups = api_groups,
	.hosts = api_hosts,
	.overview = api_overview,
	.group = api_group,
	.instances = api_instances,
	.instance_metrics = api_instance_metrics,
	.events = api_events,
	.set_desired = api_set_desired,
	.set_paused = api_set_paused,
	.refresh = api_refresh,
	.metrics = api_metrics,
	.targets = api_targets,
	.lifecycle = api_lifecycle,
};
