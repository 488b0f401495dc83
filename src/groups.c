/*
 * groups.c: the runtime of each configured group (struct dgroup): the
 * files it names, its placement strategy, the planner's memory, and what
 * the store says of its size. Built at start and on every reload, off any
 * lock (no other thread reads it: the HTTP threads read the snapshot).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "groups.h"
#include "refresh.h"
#include "log.h"
#include "util.h"

/* Read a file the group names (user-data, network-config, template). */
static int
read_group_file(const struct config *cfg, const char *path, char **out,
		size_t *len)
{
	char *abs;

	*out = NULL;
	*len = 0;
	if (!path)
		return 0;
	abs = config_resolve_path(cfg, path);
	*out = util_read_file(abs, 1 << 20, len);
	free(abs);
	return *out ? 0 : -1;
}

void
group_release(struct dgroup *g)
{
	converge_state_release(&g->cs);
	place_strategy_free(g->place);
	free(g->user_data);
	free(g->network_config);
	free(g->domain_template);
	history_put(g->hist);
	promsrc_free(g->src);
	free(g->resumed);
	predict_free(g->pred);
	refresh_release(g);
	for (int h = 0; h < STORE_HOOK_LAST; h++)
		if (g->hook_key[h]) {
			explicit_bzero(g->hook_key[h], strlen(g->hook_key[h]));
			free(g->hook_key[h]);
		}
	memset(g, 0, sizeof(*g));
}

/*
 * The worker of the app target's outside source: its first query at
 * once, then one per scaling interval. A new one at every reload (the
 * old group's stops when it is released); the token is read now.
 */
static int
app_source_start(struct dgroup *g, const struct config_group *gc)
{
	const struct config_app_source *as = &gc->app_source;
	const char *metric = "?";
	char *token = NULL, *label;
	struct promsrc_opts o = {0};

	for (unsigned a = 0; a < gc->policy.n_app && a < POLICY_APP_MAX; a++)
		if (gc->policy.app[a].source[0])
			metric = gc->policy.app[a].name;
	if (as->token.source != CONFIG_SECRET_NONE &&
	    config_secret_read(&as->token, &token) != 0) {
		err_prefix("group %s: app metric %s: prometheus token", gc->name,
			   metric);
		return -1;
	}
	label = xasprintf("group %s, app metric %s", gc->name, metric);
	o.label = label;
	o.url = as->prometheus;
	o.query = as->query;
	o.token = token;
	o.timeout_ms = as->timeout_ms;
	o.interval_ms = gc->policy.interval_ms;
	g->src = promsrc_new(&o);
	if (token) {
		explicit_bzero(token, strlen(token));
		free(token);
	}
	free(label);
	if (!g->src) {
		err_prefix("group %s: app metric %s", gc->name, metric);
		return -1;
	}
	return 0;
}

/*
 * Build the runtime of one group from its configuration; keeps the
 * policy state of `old` (a reload must not forget cooldowns and windows).
 */
static int
group_init(struct dgroup *g, const struct config *cfg,
	   const struct config_group *gc, struct dgroup *old)
{
	struct va_placement_option *opts = NULL;
	char spec[4200];
	size_t hcap = history_capacity_for(cfg->daemon.metrics.retention_ms,
					   gc->policy.interval_ms);

	memset(g, 0, sizeof(*g));
	g->cfg = gc;
	/* the status page's plots carry over a reload, like the counts */
	if (old && old->hist) {
		g->hist = history_ref(old->hist);
		history_resize(g->hist, hcap);
	} else {
		g->hist = history_new(hcap);
	}
	if (read_group_file(cfg, gc->cloud_init.user_data, &g->user_data,
			    &g->files.user_data_len) != 0 ||
	    read_group_file(cfg, gc->cloud_init.network_config,
			    &g->network_config, &g->files.network_config_len) != 0 ||
	    read_group_file(cfg, gc->template.domain_xml, &g->domain_template,
			    &g->files.domain_template_len) != 0) {
		err_prefix("group %s", gc->name);
		goto fail;
	}
	g->files.user_data = g->user_data;
	g->files.network_config = g->network_config;
	g->files.domain_template = g->domain_template;
	switch (gc->placement) {
	case CONFIG_PLACEMENT_ROUND_ROBIN:
		snprintf(spec, sizeof(spec), "round-robin");
		break;
	case CONFIG_PLACEMENT_MOST_FREE:
		snprintf(spec, sizeof(spec), "most-free");
		break;
	case CONFIG_PLACEMENT_FILL_FIRST:
		snprintf(spec, sizeof(spec), "fill-first");
		break;
	default:
		snprintf(spec, sizeof(spec), "plugin:%s", gc->placement_plugin);
	}
	if (gc->placement_options.n) {
		opts = xcalloc(gc->placement_options.n, sizeof(*opts));
		for (unsigned i = 0; i < gc->placement_options.n; i++) {
			opts[i].key = gc->placement_options.v[i].key;
			opts[i].value = gc->placement_options.v[i].value;
		}
	}
	g->place = place_strategy_new(spec, gc->spread, opts,
				      gc->placement_options.n);
	free(opts);
	if (!g->place) {
		err_prefix("group %s: placement", gc->name);
		goto fail;
	}
	if (gc->app_source.present && app_source_start(g, gc) != 0)
		goto fail;
	/* the lifecycle hooks' keys, read now (start and reload) */
	if (gc->hooks.launch.present &&
	    config_secret_read(&gc->hooks.launch.secret,
			       &g->hook_key[STORE_HOOK_LAUNCH]) != 0) {
		err_prefix("group %s: hooks.launch.secret", gc->name);
		goto fail;
	}
	if (gc->hooks.terminate.present &&
	    config_secret_read(&gc->hooks.terminate.secret,
			       &g->hook_key[STORE_HOOK_TERMINATE]) != 0) {
		err_prefix("group %s: hooks.terminate.secret", gc->name);
		goto fail;
	}
	if (old) {
		/* what the loop knows of the group carries over, so that
		 * neither the decisions nor what the API shows start afresh */
		g->cs = old->cs; /* shared until groups_setup() settles */
		g->desired = old->desired;
		g->paused = old->paused;
		g->manual = old->manual;
		g->manual_from = old->manual_from;
		g->current = old->current;
		g->ready = old->ready;
		g->last = old->last;
		g->have_last = old->have_last;
		g->agg = old->agg;
		memcpy(g->metric, old->metric, sizeof(g->metric));
		memcpy(g->metric_present, old->metric_present,
		       sizeof(g->metric_present));
		g->backoff_until_ms = old->backoff_until_ms;
		g->failures = old->failures;
		g->warming = old->warming;
		g->warm = old->warm;
		g->warm_target = old->warm_target;
		g->warm_backoff_until_ms = old->warm_backoff_until_ms;
		g->resumed = old->resumed; /* moved: see group_release */
		g->n_resumed = old->n_resumed;
		old->resumed = NULL;
		old->n_resumed = 0;
		g->next_decide_ms = old->next_decide_ms;
		g->decide_deferred = old->decide_deferred;
		g->refresh_failed_starts = old->refresh_failed_starts;
		g->refresh_old = old->refresh_old;
	} else {
		converge_state_init(&g->cs);
		g->desired = gc->desired;
	}
	return 0;
fail:
	group_release(g);
	return -1;
}

/* Groups from d->cfg; the store's desired size and pause flag win. */
int
groups_setup(struct daemon *d, const struct config *cfg, int64_t gen,
	     struct dgroup *old, unsigned n_old, struct dgroup **out,
	     unsigned *n_out)
{
	struct dgroup *groups = xcalloc(cfg->n_groups ? cfg->n_groups : 1,
					sizeof(*groups));
	int64_t now = util_now_ms();

	for (unsigned i = 0; i < cfg->n_groups; i++) {
		const struct config_group *gc = &cfg->groups[i];
		struct dgroup *prev = NULL;
		struct store_group sg;
		int rc;

		for (unsigned j = 0; j < n_old; j++)
			if (old[j].cfg && strcmp(old[j].cfg->name, gc->name) == 0)
				prev = &old[j];
		if (group_init(&groups[i], cfg, gc, prev) != 0)
			goto fail;
		/* the template it builds from, and its refresh */
		if (refresh_setup(d, &groups[i]) != 0)
			goto fail;
		/* predictive scaling's history: carried over, or loaded */
		if (predict_setup(d->store, gc, prev ? prev->pred : NULL,
				  util_wall_ms(), &groups[i].pred) != 0)
			goto fail;
		rc = store_group_get(d->store, gc->name, &sg);
		if (rc == STORE_OK) {
			if (!prev) {
				groups[i].desired = (int)sg.desired;
				groups[i].paused = sg.paused;
				/* A restart must not undo a recent scale-out at
				 * once: seed the windows with the stored size. */
				policy_state_note_change(groups[i].cs.pst, now,
							 (int)sg.desired,
							 (int)sg.desired);
			}
			store_group_release(&sg);
		} else if (rc != STORE_E_NOTFOUND) {
			goto fail;
		}
		if (groups[i].desired < gc->min)
			groups[i].desired = gc->min;
		if (groups[i].desired > gc->max)
			groups[i].desired = gc->max;
		{
			struct store_group put = {
				.name = gc->name,
				.desired = groups[i].desired,
				.paused = groups[i].paused,
				.config_gen = gen,
			};

			if (store_group_upsert(d->store, &put) != STORE_OK)
				goto fail;
		}
		if (!prev)
			groups[i].next_decide_ms = now + gc->policy.interval_ms;
	}
	/* the planner's memory now belongs to the new groups */
	for (unsigned i = 0; i < cfg->n_groups; i++)
		for (unsigned j = 0; j < n_old; j++) {
			if (old[j].cs.pst && old[j].cs.pst == groups[i].cs.pst)
				memset(&old[j].cs, 0, sizeof(old[j].cs));
			if (old[j].pred && old[j].pred == groups[i].pred)
				old[j].pred = NULL;
		}
	*out = groups;
	*n_out = cfg->n_groups;
	return 0;
fail:
	for (unsigned i = 0; i < cfg->n_groups; i++) {
		for (unsigned j = 0; j < n_old; j++) {
			if (groups[i].cs.pst && old[j].cs.pst == groups[i].cs.pst)
				memset(&groups[i].cs, 0, sizeof(groups[i].cs));
			if (groups[i].pred && old[j].pred == groups[i].pred)
				groups[i].pred = NULL;
		}
		group_release(&groups[i]);
	}
	free(groups);
	return -1;
}
