/*
 * api.c: the daemon's answers to HTTP requests (http.c calls these from
 * its threads), and the Prometheus text behind /metrics.
 *
 * Guest check-in: the instance is looked up in the store, the presented
 * secret is hashed and compared with the stored hash in constant time
 * (secret_verify); an unknown instance and a wrong secret get the same
 * 401, so ids cannot be probed. A heartbeat of a ready instance is checked
 * against the hash in the loop's snapshot instead, without the store. The
 * first check-in (or heartbeat) makes a booting instance ready.
 * Heartbeats are posted to the loop, which writes them in one batch per
 * tick (daemon_flush_heartbeats).
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authlimit.h"
#include "daemon_int.h"
#include "log.h"
#include "members.h"
#include "metrics.h"
#include "rates.h"
#include "secret.h"
#include "util.h"

LOG_TAG("api");

/* A lowercase UUID, as the store keeps instance ids (store.h). */
static bool
instance_id_valid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-'
			 : !((s[i] >= '0' && s[i] <= '9') ||
			     (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return s[36] == '\0';
}

/*
 * A refused check-in or heartbeat, for the operator (docs/provisioning.md,
 * "Was the check-in refused?"): an event, of kind checkin_refused, for the
 * first few and then at most one a minute (for instances the store knows,
 * and apart for unknown ids), so that a client failing at speed cannot
 * fill the events table; when there is no event to spare, a
 * warning, at most one every 6 s; the rest are counted and the count is
 * in the next line. si is the instance when the store knows it (its group
 * is the event's). Never the secret.
 */
static void
refused(struct daemon *d, const char *what, const char *id,
	const char *client, const struct store_instance *si, const char *why)
{
	int64_t now = util_now_ms();
	unsigned long skipped = 0;
	bool event, line = false;

	pthread_mutex_lock(&d->refuse_lock);
	/* refusals of known instances have a bucket of their own: garbage
	 * ids at speed do not hide a real instance's refusal */
	event = ratelimit_take(si ? &d->refuse_known : &d->refuse_unknown,
			       now, &skipped);
	if (!event)
		line = ratelimit_take(&d->refuse_lines, now, &skipped);
	pthread_mutex_unlock(&d->refuse_lock);
	if (event) {
		char more[80] = "";

		if (skipped)
			snprintf(more, sizeof(more),
				 " (%lu more refused since the last such event)",
				 skipped);
		event_record(d->store_http, si ? si->group : NULL,
			     si ? si->id : NULL, "checkin_refused", NULL,
			     "%s of instance %s from %s refused: %s%s", what,
			     id, client, why, more);
	} else if (line)
		log_warn("%s of instance %s from %s refused: %s (%lu more refused since the last such line)",
			 what, id, client, why, skipped);
}

/*
 * Look up and authenticate an instance; 0, or the HTTP status to answer.
 * An id that is not a UUID, an unknown instance, a wrong secret and a
 * removed instance (deleting or gone: its secret died with it) all get
 * the same 401; only the log and the event say which.
 */
static unsigned
authenticate(struct daemon *d, const char *what, const char *id,
	     const char *secret, const char *client, struct store_instance *si,
	     struct http_reply *out)
{
	const char *why;
	int rc;

	memset(si, 0, sizeof(*si));
	if (!instance_id_valid(id)) {
		/* no store, no hash: no instance has such an id */
		refused(d, what, id, client, NULL,
			"no such instance (the id is not a lowercase UUID)");
		goto refuse;
	}
	rc = store_instance_get(d->store_http, id, si);
	if (rc == STORE_OK) {
		bool ok = si->secret_hash &&
			  secret_verify(secret, strlen(secret), si->secret_hash);

		if (ok && si->state != STORE_INSTANCE_DELETING &&
		    si->state != STORE_INSTANCE_GONE)
			return 0;
		why = ok ? "the instance was removed"
			 : si->secret_hash ? "wrong secret"
					   : "the instance has no secret (adopted)";
		refused(d, what, id, client, si, why);
		store_instance_release(si);
		goto refuse;
	}
	if (rc != STORE_E_NOTFOUND) {
		int64_t now = util_now_ms();
		unsigned long skipped = 0;
		bool say;

		pthread_mutex_lock(&d->refuse_lock);
		say = ratelimit_take(&d->store_complaint, now, &skipped);
		pthread_mutex_unlock(&d->refuse_lock);
		if (say)
			log_warn("%s of %s: %s (%lu more such errors not logged)",
				 what, id, err_msg(), skipped);
		return http_reply_error(out, 503, "state store unavailable");
	}
	/* Hash anyway: an unknown id costs what a wrong secret does. */
	secret_verify(secret, strlen(secret),
		      "0000000000000000000000000000000000000000000000000000000000000000");
	refused(d, what, id, client, NULL, "unknown instance");
refuse:
	__atomic_add_fetch(&d->auth_failures, 1, __ATOMIC_RELAXED);
	return http_reply_error(out, 401, "unknown instance or wrong secret");
}

/*
 * A ready instance is in the snapshot with its secret's hash (the loop
 * lists them anyway): its heartbeats need no store. 1 accepted, -1 wrong
 * secret, 0 not there (booting, new, unknown: ask the store).
 */
static int
authenticate_ready(struct daemon *d, const char *id, const char *secret)
{
	struct control_snapshot *s = control_snapshot_get(d->ctl);
	const struct control_instance *ci = control_snapshot_ready(s, id);
	int rc = 0;

	if (ci)
		rc = secret_verify(secret, strlen(secret), ci->secret_hash) ? 1 : -1;
	control_snapshot_put(s);
	return rc;
}

static void
queue_heartbeat(struct daemon *d, const char *id, bool busy)
{
	control_heartbeat(d->ctl, id, util_wall_ms(), busy);
	__atomic_add_fetch(&d->heartbeats, 1, __ATOMIC_RELAXED);
}

/* A heartbeat with its application metrics: only those a policy names
 * travel to the loop (appmetric.h), the others are dropped here. */
static void
queue_heartbeat_app(struct daemon *d, const char *id,
		    const struct http_heartbeat *in)
{
	struct control_hb hb;

	if (!in->n_metrics || !d->appm) {
		queue_heartbeat(d, id, in->busy);
		return;
	}
	memset(&hb, 0, sizeof(hb));
	snprintf(hb.id, sizeof(hb.id), "%s", id);
	hb.time_ms = util_wall_ms();
	hb.busy = in->busy;
	for (unsigned i = 0; i < in->n_metrics; i++) {
		uint32_t gen;
		int k = appm_index(d->appm, in->metric_names[i], &gen);

		if (k < 0 || k >= POLICY_APP_DAEMON_MAX)
			continue;
		if (hb.app_mask && gen != hb.app_gen)
			continue; /* a reload between two lookups: rare */
		hb.app_gen = gen;
		hb.app_mask |= 1u << k;
		hb.app[k] = in->metric_values[i];
	}
	control_heartbeat_app(d->ctl, &hb);
	__atomic_add_fetch(&d->heartbeats, 1, __ATOMIC_RELAXED);
}

/*
 * A heartbeat's metric values must be finite numbers from 0 to
 * POLICY_APP_VALUE_MAX: a NaN, an infinity (1e999), a negative or an
 * absurd value is a broken guest, refused with 400 before anything is
 * looked up, and counted (va_heartbeats_invalid_total).
 */
static unsigned
check_heartbeat_metrics(struct daemon *d, const struct http_heartbeat *in,
			struct http_reply *out)
{
	for (unsigned i = 0; i < in->n_metrics; i++) {
		double v = in->metric_values[i];
		const char *what = isnan(v) ? "not a number"
			: isinf(v) ? "infinite"
			: v < 0 ? "negative"
			: v > POLICY_APP_VALUE_MAX ? "over 1e12" : NULL;

		if (!what)
			continue;
		__atomic_add_fetch(&d->heartbeats_invalid, 1, __ATOMIC_RELAXED);
		return http_reply_error(out, 400, "heartbeat: metric '%s' is %s "
					"(metrics are numbers from 0 to 1e12)",
					in->metric_names[i], what);
	}
	return 0;
}

/*
 * booting/unhealthy -> ready on the first sign of life. 0 when done or
 * nothing to do (also when the state moved on meanwhile: the
 * compare-and-set lost); -1 when the store refused the write: the caller
 * answers 503, so that the guest tries again (cloud-init's phone_home
 * retries an error, not a 200), instead of a 200 that loses the
 * check-in while reads still work (a locked SQLite, a connection lost
 * between the read and the write).
 */
static int
mark_ready(struct daemon *d, struct store_instance *si, const char *how)
{
	enum store_instance_state from = si->state;
	int rc;

	if (from != STORE_INSTANCE_BOOTING && from != STORE_INSTANCE_UNHEALTHY)
		return 0;
	rc = store_instance_set_state(d->store_http, si->id, from,
				      STORE_INSTANCE_READY);
	if (rc == STORE_E_CONFLICT || rc == STORE_E_NOTFOUND ||
	    rc == STORE_E_ILLEGAL) {
		log_debug("instance %s: not marked ready: %s", si->id, err_msg());
		return 0;
	}
	if (rc != STORE_OK) {
		int64_t now = util_now_ms();
		unsigned long skipped = 0;
		bool say;

		pthread_mutex_lock(&d->refuse_lock);
		say = ratelimit_take(&d->store_complaint, now, &skipped);
		pthread_mutex_unlock(&d->refuse_lock);
		if (say)
			log_warn("instance %s: cannot mark it ready: %s "
				 "(%lu more such errors not logged)",
				 si->id, err_msg(), skipped);
		return -1;
	}
	si->state = STORE_INSTANCE_READY;
	if (from == STORE_INSTANCE_BOOTING && si->created_ms > 0)
		metrics_instance_ready(si->group,
				       (double)(util_wall_ms() - si->created_ms) / 1000.0);
	event_record(d->store_http, si->group, si->id, "ready",
		     NULL, "%s %s %.1f s after its creation",
		     si->domain ? si->domain : si->id, how,
		     (double)(util_wall_ms() - si->created_ms) / 1000.0);
	return 0;
}

static void
reply_state(struct http_reply *out, const struct store_instance *si)
{
	strbuf_adds(&out->body, "{\"instance\":");
	http_json_string(&out->body, si->id);
	strbuf_adds(&out->body, ",\"state\":");
	http_json_string(&out->body, store_instance_state_name(si->state));
	strbuf_adds(&out->body, "}\n");
	out->status = 200;
}

static unsigned
api_checkin(void *ctx, const struct http_checkin *in, struct http_reply *out)
{
	struct daemon *d = ctx;
	struct store_instance si;
	unsigned st = authenticate(d, "check-in", in->instance_id, in->secret,
				   in->client, &si, out);

	if (st)
		return st;
	if (in->form_instance_id && *in->form_instance_id &&
	    strcmp(in->form_instance_id, in->instance_id) != 0) {
		store_instance_release(&si);
		return http_reply_error(out, 400,
					"instance_id field does not match the URL");
	}
	if (mark_ready(d, &si, "checked in") < 0) {
		store_instance_release(&si);
		return http_reply_error(out, 503, "state store unavailable");
	}
	__atomic_add_fetch(&d->checkins, 1, __ATOMIC_RELAXED);
	queue_heartbeat(d, si.id, false);
	reply_state(out, &si);
	store_instance_release(&si);
	return out->status;
}

static unsigned
api_heartbeat(void *ctx, const struct http_heartbeat *in,
	      struct http_reply *out)
{
	struct daemon *d = ctx;
	struct store_instance si;
	unsigned st;

	if ((st = check_heartbeat_metrics(d, in, out)) != 0)
		return st;
	switch (authenticate_ready(d, in->instance_id, in->secret)) {
	case 1:
		queue_heartbeat_app(d, in->instance_id, in);
		strbuf_adds(&out->body, "{\"instance\":");
		http_json_string(&out->body, in->instance_id);
		strbuf_adds(&out->body, ",\"state\":\"ready\"}\n");
		return out->status = 200;
	default:
		/* -1 (wrong secret) too: the store names its group for the
		 * refusal; the limiter in http.c bounds how often */
		break;
	}
	st = authenticate(d, "heartbeat", in->instance_id, in->secret,
			  in->client, &si, out);
	if (st)
		return st;
	if (mark_ready(d, &si, "sent its first heartbeat") < 0) {
		store_instance_release(&si);
		return http_reply_error(out, 503, "state store unavailable");
	}
	queue_heartbeat_app(d, si.id, in);
	reply_state(out, &si);
	store_instance_release(&si);
	return out->status;
}

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
	if (g->app_source) {
		strbuf_adds(sb, ",\"app_source\":");
		strbuf_adds(sb, g->app_source);
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

/* Commands are applied by the loop (control.h): give it this long to
 * take one; a loop that does not is stuck, and the command is withdrawn. */
#define COMMAND_TIMEOUT_MS 10000

static unsigned
command_reply_error(const struct control_cmd *c, struct http_reply *out)
{
	return http_reply_error(out, c->status ? c->status : 503, "%s", c->error);
}

static unsigned
api_set_desired(void *ctx, const char *name, int desired,
		struct http_reply *out)
{
	struct daemon *d = ctx;
	struct control_cmd c = {
		.kind = CONTROL_SET_DESIRED,
		.group = name,
		.desired = desired,
	};

	if (control_submit(d->ctl, &c, COMMAND_TIMEOUT_MS) != 0 || c.status != 200)
		return command_reply_error(&c, out);
	strbuf_addf(&out->body, "{\"group\":");
	http_json_string(&out->body, name);
	strbuf_addf(&out->body, ",\"desired\":%d,\"note\":", c.to);
	http_json_string(&out->body, c.note[0] ? c.note : "ok");
	strbuf_adds(&out->body, "}\n");
	return out->status = 200;
}

static unsigned
api_set_paused(void *ctx, const char *name, bool paused, struct http_reply *out)
{
	struct daemon *d = ctx;
	struct control_cmd c = {
		.kind = CONTROL_SET_PAUSED,
		.group = name,
		.paused = paused,
	};

	if (control_submit(d->ctl, &c, COMMAND_TIMEOUT_MS) != 0 || c.status != 200)
		return command_reply_error(&c, out);
	strbuf_addf(&out->body, "{\"paused\":%s}\n", paused ? "true" : "false");
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
	.metrics = api_metrics,
	.targets = api_targets,
};

void
daemon_flush_heartbeats(struct daemon *d)
{
	struct control_hb *v;
	struct store_heartbeat *batch;
	size_t n = control_heartbeats_take(d->ctl, &v);

	if (!n) {
		free(v);
		return;
	}
	batch = xcalloc(n, sizeof(*batch));
	for (size_t i = 0; i < n; i++) {
		/* app metrics now: the store does not keep them, and a batch
		 * kept for the next try below goes without them */
		for (unsigned k = 0; d->appm && k < POLICY_APP_DAEMON_MAX; k++)
			if (v[i].app_mask & (1u << k))
				appm_put(d->appm, v[i].id, v[i].app_gen, k,
					 v[i].app[k], v[i].time_ms);
		batch[i].id = v[i].id;
		batch[i].time_ms = v[i].time_ms;
		batch[i].busy = v[i].busy;
	}
	if (store_instance_heartbeat_batch(d->store, batch, n) != STORE_OK) {
		/* Kept for the next flush, not dropped: a heartbeat answered
		 * 200 during a store outage (the ready table needs no store)
		 * must reach the store once it is back, or the health check
		 * judges the instance by an older time. The next take keeps
		 * the newest per instance, so this stays one per instance. */
		log_warn("cannot record %zu heartbeats (kept for the next try): %s",
			 n, err_msg());
		for (size_t i = 0; i < n; i++)
			control_heartbeat(d->ctl, v[i].id, v[i].time_ms, v[i].busy);
	}
	free(batch);
	free(v);
}

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
		cg->busy_held = g->busy_held;
		cg->waiting_for_hosts = g->waiting_for_hosts;
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
	if (d->n_ready) {
		s->ready = xcalloc(d->n_ready, sizeof(*s->ready));
		memcpy(s->ready, d->ready, d->n_ready * sizeof(*s->ready));
		s->n_ready = d->n_ready;
	}
	members_publish(d, s);
	control_publish(d->ctl, s);
}
