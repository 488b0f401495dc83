/*
 * scaler_actions.c: a plan's actions applied by the scaler (scaler.c), in
 * order: store writes first, then events, then jobs (new instances,
 * removals, warm pool parks and resumes); lifecycle hooks' calls (the
 * wait recorded with a new token, the call's JSON body) and what the
 * hooks' workers report.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scaler_int.h"
#include "http.h"
#include "refresh.h"
#include "secret.h"
#include "log.h"
#include "metrics.h"
#include "util.h"
#include "warm.h"

LOG_TAG("scaler");

/* ---- actions ----------------------------------------------------------------- */

static void
start_instance(struct daemon *d, struct dgroup *g, const char *id,
	       const struct va_placement_host *ph, const char *address,
	       bool pool, const char *template)
{
	struct dhost *h = daemon_host(d, ph->name);
	const struct config_group *gc;
	const struct provision_files *files;
	struct provision_spec *spec;
	struct store_instance si;

	if (!h)
		return;
	/* the template the plan names: the configuration's, or a stored
	 * one (a refresh rolling back, a group rolled back) */
	if (refresh_template(d, g, template, &gc, &files) != 0) {
		log_error("group %s: %s", g->cfg->name, err_msg());
		return;
	}
	spec = provision_spec_new(d->cfg, gc, h->cfg, files, id,
				  address[0] ? address : NULL, d->config_gen,
				  d->owner);
	if (!spec) {
		log_error("group %s: %s", g->cfg->name, err_msg());
		return;
	}
	memset(&si, 0, sizeof(si));
	si.id = (char *)id;
	si.group = g->cfg->name;
	si.host = h->cfg->name;
	si.domain = (char *)spec->dom.name;
	si.state = pool ? STORE_INSTANCE_WARMING : STORE_INSTANCE_REQUESTED;
	si.config_gen = d->config_gen;
	si.address = address[0] ? (char *)address : NULL;
	si.template_hash = template && *template ? (char *)template
						 : g->template_hash;
	if (store_instance_put(d->store, &si) != STORE_OK) {
		log_error("group %s: cannot record a new instance: %s",
			  g->cfg->name, err_msg());
		provision_spec_free(spec);
		return;
	}
	event_record(d->store, g->cfg->name, id,
		     pool ? "warm_refill" : "provision", NULL,
		     "new instance %s placed on %s by %s%s", spec->dom.name,
		     h->cfg->name, place_strategy_name(g->place),
		     pool ? " for the warm pool" : "");
	spec->warm = pool;
	jobs_provision(d->jobs, spec);
}

/* Queue a park or a resume of si (warming, resuming) on its host. */
static void
warm_job(struct daemon *d, struct dgroup *g, const struct store_instance *si,
	 enum warm_op op)
{
	struct dhost *h = si->host ? daemon_host(d, si->host) : NULL;
	struct warm_spec w = {
		.op = op,
		.id = si->id,
		.group = si->group,
		.domain = si->domain,
		.state = g->cfg->warm_pool.state,
		.shutdown_ms = g->cfg->scale_in.drain_ms,
	};

	if (!h || !si->domain) {
		log_warn("instance %s: cannot %s it: host %s is not configured",
			 si->id, warm_op_name(op), si->host ? si->host : "(none)");
		return;
	}
	w.host_name = h->cfg->name;
	w.uri = h->cfg->uri;
	w.pool = h->cfg->pool;
	jobs_warm(d->jobs, &w);
}

/* inst's state from -> to in the store; false when refused. */
static bool
set_state(struct daemon *d, struct store_instance *si,
	  enum store_instance_state to, const char *what)
{
	if (store_instance_set_state(d->store, si->id, si->state, to) != STORE_OK) {
		log_warn("instance %s: cannot %s: %s", si->id, what, err_msg());
		return false;
	}
	si->state = to;
	return true;
}

/* ---- lifecycle hooks ----------------------------------------------------- */

/* The JSON event of a hook call (docs/operations.md); caller frees. */
static char *
hook_body(struct daemon *d, const struct store_instance *si,
	  enum store_hook hook, const char *token, int64_t deadline_ms)
{
	struct strbuf sb = STRBUF_INIT;
	const char *addr = si->address;
	char *url;

	if (!addr && d->ctl) {
		struct control_snapshot *snap = control_snapshot_get(d->ctl);
		const char *a = snap ? control_snapshot_address(snap, si->id) : NULL;

		url = a ? xstrdup(a) : NULL;
		control_snapshot_put(snap);
	} else {
		url = addr ? xstrdup(addr) : NULL;
	}
	strbuf_adds(&sb, "{\"event\":\"lifecycle_hook\",\"hook\":");
	http_json_string(&sb, store_hook_name(hook));
	strbuf_adds(&sb, ",\"transition\":");
	http_json_string(&sb, hook == STORE_HOOK_LAUNCH ? "launch_wait"
							: "terminate_wait");
	strbuf_adds(&sb, ",\"instance\":");
	http_json_string(&sb, si->id);
	strbuf_adds(&sb, ",\"group\":");
	http_json_string(&sb, si->group);
	strbuf_adds(&sb, ",\"host\":");
	if (si->host)
		http_json_string(&sb, si->host);
	else
		strbuf_adds(&sb, "null");
	strbuf_adds(&sb, ",\"domain\":");
	if (si->domain)
		http_json_string(&sb, si->domain);
	else
		strbuf_adds(&sb, "null");
	strbuf_adds(&sb, ",\"address\":");
	if (url)
		http_json_string(&sb, url);
	else
		strbuf_adds(&sb, "null");
	free(url);
	strbuf_addf(&sb, ",\"time_ms\":%" PRId64 ",\"deadline_ms\":%" PRId64,
		    util_wall_ms(), deadline_ms);
	strbuf_adds(&sb, ",\"token\":");
	http_json_string(&sb, token);
	url = xasprintf("%s/v1/instances/%s/lifecycle",
			d->cfg->daemon.public_url ? d->cfg->daemon.public_url : "",
			si->id);
	strbuf_adds(&sb, ",\"complete_url\":");
	http_json_string(&sb, url);
	free(url);
	strbuf_adds(&sb, "}");
	return strbuf_detach(&sb);
}

/*
 * Record (begin) or renew the wait of si for hook and send its call with
 * a new token (its hash in the store, the token only in the call).
 */
static void
hook_send(struct daemon *d, struct dgroup *g, const struct store_instance *si,
	  enum store_hook hook, bool begin, int64_t deadline_ms)
{
	const struct config_hook *hc = hook == STORE_HOOK_LAUNCH
					       ? &g->cfg->hooks.launch
					       : &g->cfg->hooks.terminate;
	char token[SECRET_LEN + 1], hash[SECRET_HASH_LEN + 1], *body;
	struct store_hook_wait w;
	int rc;

	if (!g->hook_key[hook] || secret_mint(token) != 0 ||
	    secret_hash(token, strlen(token), hash) != 0) {
		log_error("instance %s: cannot make a %s hook call: %s", si->id,
			  store_hook_name(hook), err_msg());
		return;
	}
	if (begin) {
		memset(&w, 0, sizeof(w));
		snprintf(w.id, sizeof(w.id), "%s", si->id);
		w.hook = hook;
		w.deadline_ms = deadline_ms;
		snprintf(w.token_hash, sizeof(w.token_hash), "%s", hash);
		rc = store_hook_wait_begin(d->store, &w);
	} else {
		rc = store_hook_wait_token(d->store, si->id, hash);
	}
	if (rc != STORE_OK) {
		/* the next plan tries again */
		log_warn("instance %s: cannot record its %s hook wait: %s",
			 si->id, store_hook_name(hook), err_msg());
		explicit_bzero(token, sizeof(token));
		return;
	}
	body = hook_body(d, si, hook, token, deadline_ms);
	hooks_send(d->hooks, &(struct hook_call){
				     .id = si->id,
				     .group = si->group,
				     .hook = hook,
				     .url = hc->url,
				     .key = g->hook_key[hook],
				     .body = body,
				     .deadline_ms = deadline_ms,
				     .backoff_ms = hc->backoff_ms,
				     .backoff_max_ms = hc->backoff_max_ms,
			     });
	explicit_bzero(body, strlen(body));
	free(body);
	explicit_bzero(token, sizeof(token));
}

/* The workers' reports: events (the first failure and then every
 * power-of-two attempt, not one per retry) and counters. */
void
hook_reports(struct daemon *d)
{
	struct hook_report *v;
	size_t n = hooks_reports(d->hooks, &v);

	for (size_t i = 0; i < n; i++) {
		const struct hook_report *r = &v[i];
		const char *hook = store_hook_name(r->hook);

		metrics_hook(hook, hook_outcome_name(r->outcome));
		if (r->outcome == HOOK_SENT)
			event_record(d->store, r->group, r->id, "hook_sent", NULL,
				     "%s hook sent (attempt %u); waiting for its "
				     "completion", hook, r->attempt);
		else if (r->outcome == HOOK_GAVE_UP ||
			 (r->attempt & (r->attempt - 1)) == 0)
			event_record(d->store, r->group, r->id, "hook_failed",
				     NULL, "%s hook: attempt %u failed: %s%s",
				     hook, r->attempt, r->why,
				     r->outcome == HOOK_GAVE_UP
					     ? "; no time left before the "
					       "timeout, not retried"
					     : "; retried with backoff");
	}
	free(v);
}

/* Waits whose instance left its wait state (removed, lost) end. */
void
hook_waits_prune(struct daemon *d, const struct tick *t)
{
	for (size_t k = 0; k < t->n_waits; k++) {
		bool waiting = false;

		for (size_t i = 0; i < t->all.n && !waiting; i++)
			waiting = strcmp(t->all.v[i].id, t->waits[k].id) == 0 &&
				  (t->all.v[i].state == STORE_INSTANCE_LAUNCH_WAIT ||
				   t->all.v[i].state == STORE_INSTANCE_TERMINATE_WAIT);
		if (waiting)
			continue;
		hooks_forget(d->hooks, t->waits[k].id);
		if (store_hook_wait_end(d->store, t->waits[k].id) != STORE_OK)
			log_warn("instance %s: cannot end its hook wait: %s",
				 t->waits[k].id, err_msg());
	}
}

void
scaler_apply(struct daemon *d, struct dgroup *g, struct tick *t, const size_t *rows,
	     const struct converge_input *in, const struct converge_plan *plan,
	     bool sized)
{
	/* sized: the store took the plan's refresh row, and (below) its
	 * desired size: else no start or removal */

	for (size_t k = 0; k < plan->n; k++) {
		const struct converge_action *a = &plan->v[k];
		struct store_instance *si =
			a->kind == CONVERGE_START || a->kind == CONVERGE_EVENT ||
					a->kind == CONVERGE_SET_DESIRED
				? NULL
				: &t->all.v[rows[a->inst]];
		const char *name = g->cfg->name;

		switch (a->kind) {
		case CONVERGE_MARK_UNHEALTHY:
			if (set_state(d, si, STORE_INSTANCE_UNHEALTHY, "mark unhealthy"))
				event_record(d->store, name, si->id, "unhealthy", NULL,
					     "%s", a->message);
			break;
		case CONVERGE_REPLACE:
			if (!set_state(d, si, STORE_INSTANCE_DELETING, "replace"))
				break;
			event_record(d->store, name, si->id, "replace", NULL, "%s",
				     a->message);
			if (scaler_remove(d, si, 0) != 0)
				log_warn("%s", err_msg());
			break;
		case CONVERGE_SET_DESIRED:
			if (store_group_set_desired(d->store, name, a->to) != STORE_OK) {
				log_error("group %s: cannot store the desired size: %s",
					  name, err_msg());
				sized = false;
				break;
			}
			metrics_scale_action(name, g->desired, a->to);
			g->desired = a->to;
			event_record(d->store, name, NULL, "decision", NULL, "%s",
				     a->message);
			break;
		case CONVERGE_EVENT:
			event_record(d->store, name, NULL, a->event, NULL, "%s",
				     a->message);
			break;
		case CONVERGE_START:
			if (sized)
				start_instance(d, g, in->new_ids[a->inst],
					       &in->hosts[a->host], a->address,
					       a->pool, plan->start_template);
			break;
		case CONVERGE_REMOVE:
			if (!sized || !set_state(d, si, a->state, "start removal"))
				break;
			event_record(d->store, name, si->id,
				     a->event ? a->event : "scale_in", NULL,
				     "%s", a->message);
			if (a->state == STORE_INSTANCE_WARMING)
				break; /* returned: parked at the next plan */
			if (a->state == STORE_INSTANCE_TERMINATE_WAIT)
				break; /* its hook first (HOOK_WAIT) */
			if (scaler_remove(d, si, a->drain_ms) != 0)
				log_warn("%s", err_msg());
			break;
		case CONVERGE_DRAW:
			if (!sized || !set_state(d, si, STORE_INSTANCE_RESUMING,
						 "draw it from the warm pool"))
				break;
			event_record(d->store, name, si->id, "warm_draw", NULL,
				     "%s", a->message);
			warm_job(d, g, si, WARM_RESUME);
			break;
		case CONVERGE_PARK:
			warm_job(d, g, si, WARM_PARK);
			break;
		case CONVERGE_RESUME:
			warm_job(d, g, si, WARM_RESUME);
			break;
		case CONVERGE_HOOK_WAIT:
			/* after a REMOVE to terminate_wait the store refused */
			if (si->state != a->state)
				break;
			hook_send(d, g, si, a->hook, true,
				  in->wall_ms + a->drain_ms);
			break;
		case CONVERGE_HOOK_SEND:
			hook_send(d, g, si, a->hook, false,
				  in->v[a->inst].hook_deadline_ms);
			break;
		case CONVERGE_HOOK_END:
			/* a timeout is a completion like the others: the
			 * first one wins, so a result posted at the same
			 * moment is either refused (409) or applied by the
			 * next plan, never answered 200 and then ignored */
			if (strcmp(a->event, "hook_timeout") == 0 &&
			    in->v[a->inst].hook_wait) {
				int rc = store_hook_wait_complete(d->store, si->id,
								  a->result);

				if (rc == STORE_E_CONFLICT)
					break; /* completed just now */
				if (rc != STORE_OK) {
					log_warn("instance %s: cannot time out its "
						 "hook wait: %s", si->id, err_msg());
					break;
				}
			}
			if (!set_state(d, si, a->state, "end its hook wait"))
				break;
			hooks_forget(d->hooks, si->id);
			if (store_hook_wait_end(d->store, si->id) != STORE_OK)
				log_warn("instance %s: cannot end its hook wait "
					 "(ended at the next plan): %s", si->id,
					 err_msg());
			metrics_hook(store_hook_name(a->hook),
				     strcmp(a->event, "hook_timeout") == 0
					     ? "timeout"
					     : store_hook_result_name(a->result));
			event_record(d->store, name, si->id, a->event, NULL, "%s",
				     a->message);
			if (a->state == STORE_INSTANCE_DELETING &&
			    scaler_remove(d, si, 0) != 0)
				log_warn("%s", err_msg());
			else if (a->state == STORE_INSTANCE_DRAINING &&
				 scaler_remove(d, si, a->drain_ms) != 0)
				log_warn("%s", err_msg());
			break;
		default:
			break;
		}
	}
}
