/*
 * refresh.c: instance refresh in the daemon (refresh.h): the template
 * each group's configuration names, the refresh row, the operators'
 * commands. The planning is converge_refresh.c's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "http.h"
#include "log.h"
#include "refresh.h"
#include "template.h"
#include "util.h"

LOG_TAG("refresh");

int
refresh_setup(struct daemon *d, struct dgroup *g)
{
	struct store_refresh r;
	int rc;

	g->template_body = template_body(g->cfg, &g->files);
	template_hash(g->template_body, g->template_hash);
	if (store_template_put(d->store, g->cfg->name, g->template_hash,
			       g->template_body) != STORE_OK) {
		err_prefix("group %s: storing its template", g->cfg->name);
		return -1;
	}
	rc = store_refresh_get(d->store, g->cfg->name, &r);
	if (rc == STORE_OK) {
		g->refresh = xmalloc(sizeof(*g->refresh));
		*g->refresh = r;
	} else if (rc != STORE_E_NOTFOUND) {
		err_prefix("group %s: reading its refresh", g->cfg->name);
		return -1;
	}
	return 0;
}

void
refresh_release(struct dgroup *g)
{
	free(g->template_body);
	free(g->refresh);
	if (g->tcopy) {
		template_copy_release(g->tcopy);
		free(g->tcopy);
	}
	g->template_body = NULL;
	g->refresh = NULL;
	g->tcopy = NULL;
}

void
refresh_input(struct dgroup *g, struct converge_input *in)
{
	in->template = g->template_hash[0] ? g->template_hash : NULL;
	in->refresh = g->refresh;
	in->refresh_failed_starts = g->refresh_failed_starts;
}

bool
refresh_commit(struct daemon *d, struct dgroup *g,
	       const struct converge_plan *plan)
{
	if (!plan->refresh_changed) {
		g->refresh_failed_starts = 0;
		return true;
	}
	if (store_refresh_put(d->store, &plan->refresh) != STORE_OK) {
		log_error("group %s: cannot store its refresh (the plan's "
			  "starts and removals wait for the next plan): %s",
			  g->cfg->name, err_msg());
		return false;
	}
	if (!g->refresh)
		g->refresh = xmalloc(sizeof(*g->refresh));
	if (g->refresh->state != plan->refresh.state ||
	    g->refresh->started_ms != plan->refresh.started_ms)
		log_info("group %s: refresh %s: %s", g->cfg->name,
			 store_refresh_state_name(plan->refresh.state),
			 plan->refresh.message);
	*g->refresh = plan->refresh;
	g->refresh->updated_ms = util_wall_ms(); /* as the store set it */
	g->refresh_failed_starts = 0;
	return true;
}

int
refresh_template(struct daemon *d, struct dgroup *g, const char *hash,
		 const struct config_group **gc,
		 const struct provision_files **files)
{
	char *body = NULL;
	struct template_copy *c;

	if (!hash || !*hash || strcmp(hash, g->template_hash) == 0) {
		*gc = g->cfg;
		*files = &g->files;
		return 0;
	}
	if (!g->tcopy || strcmp(g->tcopy_hash, hash) != 0) {
		if (store_template_get(d->store, g->cfg->name, hash, &body) !=
		    STORE_OK)
			return -1;
		c = xcalloc(1, sizeof(*c));
		if (template_parse(body, g->cfg, c) != 0) {
			err_prefix("group %s: stored template %.12s", g->cfg->name,
				   hash);
			free(body);
			free(c);
			return -1;
		}
		free(body);
		if (g->tcopy) {
			template_copy_release(g->tcopy);
			free(g->tcopy);
		}
		g->tcopy = c;
		snprintf(g->tcopy_hash, sizeof(g->tcopy_hash), "%s", hash);
	}
	/* the stored template with the configuration's other settings as
	 * they are now (a reload replaced g->cfg) */
	{
		struct config_group keep = g->tcopy->gc;

		g->tcopy->gc = *g->cfg;
		g->tcopy->gc.template = keep.template;
		g->tcopy->gc.template.name_prefix = g->cfg->template.name_prefix;
		g->tcopy->gc.template.domain_xml = g->cfg->template.domain_xml;
		g->tcopy->gc.cloud_init.phone_home = keep.cloud_init.phone_home;
		g->tcopy->gc.cloud_init.agent = keep.cloud_init.agent;
	}
	*gc = &g->tcopy->gc;
	*files = &g->tcopy->files;
	return 0;
}

void
refresh_start_failed(struct dgroup *g)
{
	if (g->refresh && g->refresh->state == STORE_REFRESH_RUNNING)
		g->refresh_failed_starts++;
}

/* The live instances of g's refresh to replace: all of them (a refresh by
 * hand replaces every instance, whatever its template). */
static int
count_live(struct daemon *d, struct dgroup *g, int *n)
{
	struct store_instance_list l = {0};
	struct store_instance_filter f = {
		.group = g->cfg->name,
		.state_mask = STORE_STATES_NOT_GONE,
	};

	*n = 0;
	if (store_instance_list(d->store, &f, &l) != STORE_OK)
		return -1;
	for (size_t i = 0; i < l.n; i++)
		if (converge_state_live(l.v[i].state))
			(*n)++;
	store_instance_list_release(&l);
	return 0;
}

static void
command_start(struct daemon *d, struct dgroup *g, struct control_cmd *c)
{
	struct store_refresh r;
	int total = 0;

	if (g->refresh && store_refresh_active(g->refresh->state)) {
		snprintf(c->error, sizeof(c->error),
			 "group %s: a refresh is %s already (%d of %" PRId64
			 " instances still to replace): cancel it first "
			 "(`virt-autoscaler refresh %s --cancel`)", g->cfg->name,
			 store_refresh_state_name(g->refresh->state),
			 g->refresh_old, g->refresh->total, g->cfg->name);
		c->status = 409;
		return;
	}
	if (count_live(d, g, &total) != 0) {
		snprintf(c->error, sizeof(c->error), "state store: %s", err_msg());
		c->status = 503;
		return;
	}
	/* the group's settings, where the command (checked by http.c)
	 * gives none */
	converge_refresh_begin(g->cfg, g->template_hash, util_wall_ms(), &r);
	/* a group rolled back runs its previous template: that is what a
	 * failing new one rolls back to again */
	if (g->refresh && g->refresh->state == STORE_REFRESH_ROLLED_BACK)
		snprintf(r.previous, sizeof(r.previous), "%s",
			 g->refresh->target);
	r.all = true;
	if (c->max_unavailable[0])
		snprintf(r.max_unavailable, sizeof(r.max_unavailable), "%s",
			 c->max_unavailable);
	if (c->surge >= 0)
		r.surge = c->surge;
	if (c->min_healthy >= 0)
		r.min_healthy = c->min_healthy;
	if (c->checkpoints[0])
		snprintf(r.checkpoints, sizeof(r.checkpoints), "%s",
			 c->checkpoints);
	if ((strcmp(r.max_unavailable, "0") == 0 ||
	     strcmp(r.max_unavailable, "0%") == 0) && r.surge == 0) {
		snprintf(c->error, sizeof(c->error),
			 "max_unavailable and surge are both 0: the refresh "
			 "could never replace an instance");
		c->status = 400;
		return;
	}
	r.total = total;
	r.updated_ms = r.started_ms;
	snprintf(r.message, sizeof(r.message),
		 "refresh by an operator: replacing %d instance%s with template "
		 "%.12s, max_unavailable %s, surge %" PRId64
		 ", min_healthy %" PRId64 "%%", total, total == 1 ? "" : "s",
		 r.target, r.max_unavailable, r.surge, r.min_healthy);
	if (store_refresh_put(d->store, &r) != STORE_OK) {
		snprintf(c->error, sizeof(c->error), "state store: %s", err_msg());
		c->status = 503;
		return;
	}
	if (!g->refresh)
		g->refresh = xmalloc(sizeof(*g->refresh));
	*g->refresh = r;
	g->next_decide_ms = 0;
	event_record(d->store, g->cfg->name, NULL, "refresh_started", NULL,
		     "%s", r.message);
	snprintf(c->note, sizeof(c->note), "replacing %d instance%s", total,
		 total == 1 ? "" : "s");
	c->status = 200;
}

static void
command_change(struct daemon *d, struct dgroup *g, struct control_cmd *c,
	       bool cancel)
{
	struct store_refresh r;

	if (!g->refresh || !store_refresh_active(g->refresh->state) ||
	    (!cancel && g->refresh->state != STORE_REFRESH_PAUSED)) {
		snprintf(c->error, sizeof(c->error), "group %s: %s",
			 g->cfg->name,
			 !g->refresh || !store_refresh_active(g->refresh->state)
				 ? "no refresh is running"
				 : "the refresh is not paused at a checkpoint");
		c->status = 409;
		return;
	}
	r = *g->refresh;
	r.state = cancel ? STORE_REFRESH_CANCELLED : STORE_REFRESH_RUNNING;
	r.updated_ms = util_wall_ms();
	snprintf(r.message, sizeof(r.message), "%s by an operator",
		 cancel ? "refresh cancelled: the instances stay as they are"
			: "refresh resumed");
	if (store_refresh_put(d->store, &r) != STORE_OK) {
		snprintf(c->error, sizeof(c->error), "state store: %s", err_msg());
		c->status = 503;
		return;
	}
	*g->refresh = r;
	g->next_decide_ms = 0;
	event_record(d->store, g->cfg->name, NULL,
		     cancel ? "refresh_cancelled" : "refresh_resumed", NULL, "%s",
		     r.message);
	snprintf(c->note, sizeof(c->note), "%s",
		 cancel ? "cancelled" : "resumed");
	c->status = 200;
}

void
refresh_command(struct daemon *d, struct dgroup *g, struct control_cmd *c)
{
	if (strcmp(c->refresh_action, "start") == 0)
		command_start(d, g, c);
	else if (strcmp(c->refresh_action, "cancel") == 0)
		command_change(d, g, c, true);
	else if (strcmp(c->refresh_action, "resume") == 0)
		command_change(d, g, c, false);
	else {
		snprintf(c->error, sizeof(c->error),
			 "unknown refresh action '%s' (start, cancel, resume)",
			 c->refresh_action);
		c->status = 400;
	}
}

char *
refresh_json(const struct dgroup *g)
{
	const struct store_refresh *r = g->refresh;
	struct strbuf sb = STRBUF_INIT;

	if (!r)
		return NULL;
	strbuf_addf(&sb, "{\"state\":\"%s\",\"template\":\"%.12s\","
		    "\"target\":\"%.12s\",\"previous\":",
		    store_refresh_state_name(r->state), g->template_hash,
		    r->target);
	if (r->previous[0])
		strbuf_addf(&sb, "\"%.12s\"", r->previous);
	else
		strbuf_adds(&sb, "null");
	strbuf_addf(&sb, ",\"all\":%s,\"max_unavailable\":",
		    r->all ? "true" : "false");
	http_json_string(&sb, r->max_unavailable);
	strbuf_addf(&sb, ",\"surge\":%" PRId64 ",\"min_healthy\":%" PRId64
		    ",\"checkpoints\":[%s],\"checkpoint_done\":%" PRId64
		    ",\"total\":%" PRId64 ",\"remaining\":%d,\"failures\":%"
		    PRId64 ",\"batches\":%" PRId64 ",\"started\":%" PRId64
		    ",\"updated\":%" PRId64 ",\"message\":",
		    r->surge, r->min_healthy, r->checkpoints, r->checkpoint_done,
		    r->total, g->refresh_old, r->failures, r->batches,
		    r->started_ms, r->updated_ms);
	http_json_string(&sb, r->message);
	strbuf_adds(&sb, "}");
	return strbuf_detach(&sb);
}
