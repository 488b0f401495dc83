/*
 * api_guest.c: what guests call (http.c calls these from its threads):
 * check-ins and heartbeats, and the loop's flush of the heartbeats.
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
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "daemon_int.h"
#include "log.h"
#include "metrics.h"
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
/*
 * A store error met by a guest request: logged with err_msg() at a
 * bounded rate shared by all HTTP threads (a client failing at speed
 * must not fill the log), saying how many were left out.
 */
static void __attribute__((format(printf, 2, 3)))
store_complain(struct daemon *d, const char *fmt, ...)
{
	unsigned long skipped = 0;
	char what[256];
	va_list ap;
	bool say;

	pthread_mutex_lock(&d->refuse_lock);
	say = ratelimit_take(&d->store_complaint, util_now_ms(), &skipped);
	pthread_mutex_unlock(&d->refuse_lock);
	if (!say)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_warn("%s: %s (%lu more such errors not logged)", what, err_msg(),
		 skipped);
}

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
		store_complain(d, "%s of %s", what, id);
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

	enum store_instance_state to = STORE_INSTANCE_READY;

	if (from != STORE_INSTANCE_BOOTING && from != STORE_INSTANCE_UNHEALTHY &&
	    from != STORE_INSTANCE_RESUMING)
		return 0;
	if (from == STORE_INSTANCE_BOOTING) {
		/* a new instance with a launch hook waits for it (the loop
		 * records the wait and sends the hook, hooks.h) */
		struct control_snapshot *s = control_snapshot_get(d->ctl);
		const struct control_group *cg =
			s ? control_snapshot_group(s, si->group) : NULL;

		if (cg && cg->launch_hook)
			to = STORE_INSTANCE_LAUNCH_WAIT;
		control_snapshot_put(s);
	}
	rc = store_instance_set_state(d->store_http, si->id, from, to);
	if (rc == STORE_E_CONFLICT || rc == STORE_E_NOTFOUND ||
	    rc == STORE_E_ILLEGAL) {
		log_debug("instance %s: not marked ready: %s", si->id, err_msg());
		return 0;
	}
	if (rc != STORE_OK) {
		store_complain(d, "instance %s: cannot mark it ready", si->id);
		return -1;
	}
	si->state = to;
	if (to == STORE_INSTANCE_LAUNCH_WAIT) {
		event_record(d->store_http, si->group, si->id, "launch_wait",
			     NULL, "%s %s %.1f s after its creation; waits for "
			     "its launch hook", si->domain ? si->domain : si->id,
			     how,
			     (double)(util_wall_ms() - si->created_ms) / 1000.0);
		api_plan_now(d, si->group); /* the hook goes out now */
		return 0;
	}
	if (from == STORE_INSTANCE_BOOTING && si->created_ms > 0)
		metrics_instance_ready(si->group,
				       (double)(util_wall_ms() - si->created_ms) / 1000.0);
	if (from == STORE_INSTANCE_RESUMING)
		/* updated_ms: the draw (warm -> resuming) */
		event_record(d->store_http, si->group, si->id, "ready",
			     NULL, "%s %s %.1f s after its draw from the "
			     "warm pool", si->domain ? si->domain : si->id, how,
			     (double)(util_wall_ms() - si->updated_ms) / 1000.0);
	else
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

unsigned
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

unsigned
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
