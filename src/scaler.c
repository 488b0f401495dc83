/*
 * scaler.c: the shell around the converge planner. Per tick: apply the
 * operators' commands, reap finished jobs, then for every group whose
 * decision is due gather its inputs (instances from the store, one list
 * for all groups; their metrics from the built-in store; the hosts'
 * measured capacity; which instances a job is busy with), run
 * converge_group() and apply its actions (store writes first, then
 * events, then jobs). Every per-tick path is O(n log n) in the instances.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon_int.h"
#include "refresh.h"
#include "http.h"
#include "secret.h"
#include "log.h"
#include "metrics.h"
#include "util.h"
#include "warm.h"

LOG_TAG("scaler");

/* After a failed provisioning, wait this long (doubling) before retrying. */
#define PROVISION_BACKOFF_MS 10000
#define PROVISION_BACKOFF_MAX_MS 300000

/* ---- commands ------------------------------------------------------------ */

static void
command_set_desired(struct daemon *d, struct dgroup *g, struct control_cmd *c)
{
	int to = c->desired;

	c->from = g->desired;
	if (to < g->cfg->min) {
		to = g->cfg->min;
		snprintf(c->note, sizeof(c->note), "raised to the group's min %d", to);
	}
	if (to > g->cfg->max) {
		to = g->cfg->max;
		snprintf(c->note, sizeof(c->note), "lowered to the group's max %d", to);
	}
	/* the store first: a size it refused is not applied */
	if (store_group_set_desired(d->store, g->cfg->name, to) != STORE_OK) {
		snprintf(c->error, sizeof(c->error), "state store: %s", err_msg());
		c->status = 503;
		return;
	}
	if (!g->manual)
		g->manual_from = g->desired;
	g->manual = true;
	metrics_scale_action(g->cfg->name, g->desired, to);
	g->desired = to;
	c->to = to;
	c->status = 200;
	event_record(d->store, g->cfg->name, NULL, "manual_scale", NULL,
		     "desired size set by hand: %d -> %d%s%s", c->from, to,
		     c->note[0] ? ", " : "", c->note);
}

static void
command_set_paused(struct daemon *d, struct dgroup *g, struct control_cmd *c)
{
	if (store_group_set_paused(d->store, g->cfg->name, c->paused) != STORE_OK) {
		snprintf(c->error, sizeof(c->error), "state store: %s", err_msg());
		c->status = 503;
		return;
	}
	g->paused = c->paused;
	c->status = 200;
	event_record(d->store, g->cfg->name, NULL, c->paused ? "pause" : "resume",
		     NULL, "group %s by an operator",
		     c->paused ? "paused" : "resumed");
}

void
scaler_commands(struct daemon *d, bool may_act)
{
	struct control_cmd *c;

	while ((c = control_next(d->ctl))) {
		struct dgroup *g = daemon_group(d, c->group);

		if (!may_act) {
			snprintf(c->error, sizeof(c->error),
				 "this daemon's lease is not valid now: not applied");
			c->status = 503;
		} else if (!g) {
			snprintf(c->error, sizeof(c->error), "no group '%s'", c->group);
			c->status = 404;
		} else if (c->kind == CONTROL_SET_DESIRED) {
			command_set_desired(d, g, c);
		} else if (c->kind == CONTROL_REFRESH) {
			refresh_command(d, g, c);
		} else if (c->kind == CONTROL_PLAN_NOW) {
			g->next_decide_ms = 0;
			c->status = 200;
		} else {
			command_set_paused(d, g, c);
		}
		control_complete(d->ctl, c);
	}
}

/* ---- job results ------------------------------------------------------------ */

/* How long the pool is not refilled after a park failed on a host that
 * cannot do it (managed save refused): scale-outs are cold meanwhile. */
#define WARM_BACKOFF_MS (10 * 60 * 1000)

static int
id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* A park or resume ended: what the next plans must know. */
static void
warm_result(struct dgroup *g, const struct job_result *r)
{
	if (r->op == WARM_RESUME && r->ok) {
		g->resumed = xreallocarray(g->resumed, g->n_resumed + 1,
					   sizeof(*g->resumed));
		memcpy(g->resumed[g->n_resumed++], r->id, sizeof(r->id));
		qsort(g->resumed, g->n_resumed, sizeof(*g->resumed), id_cmp);
	} else if (r->op == WARM_PARK && !r->ok && !r->retry) {
		g->warm_backoff_until_ms = util_now_ms() + WARM_BACKOFF_MS;
		log_warn("group %s: parking a warm instance failed (see the "
			 "events); the pool is not refilled for %d minutes: "
			 "scale-outs start new instances", g->cfg->name,
			 WARM_BACKOFF_MS / 60000);
	}
}

/* Keep only the ids of instances still resuming (t's list). */
static void
resumed_prune(struct dgroup *g, const struct converge_input *in)
{
	size_t n = 0;

	for (size_t k = 0; k < g->n_resumed; k++) {
		bool keep = false;

		for (size_t i = 0; i < in->n && !keep; i++)
			keep = in->v[i].state == STORE_INSTANCE_RESUMING &&
			       strcmp(in->v[i].id, g->resumed[k]) == 0;
		if (keep)
			memmove(g->resumed[n++], g->resumed[k],
				sizeof(g->resumed[0]));
	}
	g->n_resumed = n;
}

void
scaler_reap(struct daemon *d)
{
	struct job_result *r;
	size_t n = jobs_reap(d->jobs, &r);

	for (size_t i = 0; i < n; i++) {
		struct dgroup *g = daemon_group(d, r[i].group);
		int64_t wait = PROVISION_BACKOFF_MS;

		if (r[i].kind == JOB_REMOVE) {
			if (r[i].ok)
				d->removed++;
			continue;
		}
		if (r[i].kind == JOB_WARM) {
			if (g)
				warm_result(g, &r[i]);
			continue;
		}
		if (r[i].ok)
			d->provisioned++;
		else
			d->provision_errors++;
		if (!g)
			continue;
		if (r[i].ok) {
			g->failures = 0;
			g->backoff_until_ms = 0;
			continue;
		}
		g->failures++;
		refresh_start_failed(g);
		for (unsigned k = 1; k < g->failures && wait < PROVISION_BACKOFF_MAX_MS; k++)
			wait *= 2;
		if (wait > PROVISION_BACKOFF_MAX_MS)
			wait = PROVISION_BACKOFF_MAX_MS;
		g->backoff_until_ms = util_now_ms() + wait;
	}
	jobs_results_free(r, n);
}

int
scaler_remove(struct daemon *d, const struct store_instance *si, int64_t drain_ms)
{
	struct dhost *h = si->host ? daemon_host(d, si->host) : NULL;
	struct remove_spec r = {
		.id = si->id,
		.group = si->group,
		.domain = si->domain,
		.drain_ms = drain_ms,
	};

	if (!h) {
		err_set("instance %s: host %s is not configured", si->id,
			si->host ? si->host : "(none)");
		return -1;
	}
	/* The worker does not try to connect then (minutes for a dead
	 * remote host): the removal is journaled and retried later. */
	r.host_down = !host_is_up(h->h);
	r.host_name = h->cfg->name;
	r.uri = h->cfg->uri;
	r.pool = h->cfg->pool;
	jobs_remove(d->jobs, &r);
	return 0;
}

/* ---- inputs ------------------------------------------------------------------ */

/* What one pass over every instance tells about the hosts. */
struct tick {
	struct store_instance_list all;  /* live, draining and deleting ones */
	int *group_of;                   /* all.v[i]'s group index, -1 */
	int *host_of;                    /* all.v[i]'s host index, -1 */
	uint32_t *host_instances;        /* per host */
	uint32_t *group_host;            /* per group x host */
	uint32_t *pending_vcpus;         /* per host: not running yet */
	uint64_t *pending_mem;
	char (*busy)[STORE_ID_LEN + 1];  /* sorted */
	size_t n_busy;
	struct store_hook_wait *waits;   /* lifecycle hook waits, by id */
	size_t n_waits;
};

static int
index_of_host(struct daemon *d, const char *name)
{
	for (unsigned i = 0; name && i < d->n_hosts; i++)
		if (strcmp(d->hosts[i].cfg->name, name) == 0)
			return (int)i;
	return -1;
}

static int
ready_cmp(const void *a, const void *b)
{
	return strcmp(((const struct control_instance *)a)->id,
		      ((const struct control_instance *)b)->id);
}

/* The ready instances and their secrets' hashes, for the HTTP threads. */
static void
ready_table(struct daemon *d, const struct store_instance_list *all)
{
	size_t n = 0;

	d->ready = xreallocarray(d->ready, all->n + 1, sizeof(*d->ready));
	for (size_t i = 0; i < all->n; i++) {
		const struct store_instance *si = &all->v[i];

		if (si->state != STORE_INSTANCE_READY || !si->secret_hash ||
		    strlen(si->id) > STORE_ID_LEN ||
		    strlen(si->secret_hash) >= sizeof(d->ready[0].secret_hash))
			continue;
		memcpy(d->ready[n].id, si->id, strlen(si->id) + 1);
		memcpy(d->ready[n].secret_hash, si->secret_hash,
		       strlen(si->secret_hash) + 1);
		n++;
	}
	qsort(d->ready, n, sizeof(*d->ready), ready_cmp);
	d->n_ready = n;
}

static int
tick_gather(struct daemon *d, struct tick *t)
{
	struct store_instance_filter f = {0};

	memset(t, 0, sizeof(*t));
	for (int st = 0; st < STORE_INSTANCE_LAST; st++)
		if (converge_state_live((enum store_instance_state)st) ||
		    converge_state_pooled((enum store_instance_state)st) ||
		    st == STORE_INSTANCE_DRAINING || st == STORE_INSTANCE_DELETING ||
		    st == STORE_INSTANCE_TERMINATE_WAIT)
			f.state_mask |= STORE_STATE_BIT(st);
	if (store_instance_list(d->store, &f, &t->all) != STORE_OK) {
		log_error("cannot list instances: %s", err_msg());
		return -1;
	}
	if (store_hook_wait_list(d->store, &t->waits, &t->n_waits) != STORE_OK) {
		log_error("cannot list the lifecycle hooks' waits: %s", err_msg());
		store_instance_list_release(&t->all);
		return -1;
	}
	t->group_of = xcalloc(t->all.n + 1, sizeof(*t->group_of));
	t->host_of = xcalloc(t->all.n + 1, sizeof(*t->host_of));
	t->host_instances = xcalloc(d->n_hosts + 1, sizeof(*t->host_instances));
	t->pending_vcpus = xcalloc(d->n_hosts + 1, sizeof(*t->pending_vcpus));
	t->pending_mem = xcalloc(d->n_hosts + 1, sizeof(*t->pending_mem));
	t->group_host = xcalloc((size_t)d->n_groups * d->n_hosts + 1,
				sizeof(*t->group_host));
	for (size_t i = 0; i < t->all.n; i++) {
		const struct store_instance *si = &t->all.v[i];
		struct dgroup *g = daemon_group(d, si->group);
		int h = index_of_host(d, si->host);

		t->group_of[i] = g ? (int)(g - d->groups) : -1;
		t->host_of[i] = h;
		/* placement counts what occupies a host: not what is being
		 * deleted (the old code's list had no deleting ones) */
		if (h < 0 || si->state == STORE_INSTANCE_DELETING)
			continue;
		t->host_instances[h]++;
		if (g)
			t->group_host[(size_t)t->group_of[i] * d->n_hosts + (size_t)h]++;
		/* not running yet: the collector did not count it */
		if (g && (si->state == STORE_INSTANCE_REQUESTED ||
			  si->state == STORE_INSTANCE_PROVISIONING)) {
			t->pending_vcpus[h] += (uint32_t)g->cfg->template.vcpus;
			t->pending_mem[h] += g->cfg->template.memory;
		}
	}
	t->n_busy = jobs_busy(d->jobs, &t->busy);
	ready_table(d, &t->all);
	return 0;
}

static void
tick_release(struct tick *t)
{
	store_instance_list_release(&t->all);
	free(t->group_of);
	free(t->host_of);
	free(t->host_instances);
	free(t->group_host);
	free(t->pending_vcpus);
	free(t->pending_mem);
	free(t->busy);
	free(t->waits);
}

static int
busy_cmp(const void *key, const void *elem)
{
	return strcmp(key, elem);
}

/* Placement records of the group's hosts, from the last measurements. */
static struct va_placement_host *
placement_hosts(struct daemon *d, const struct dgroup *g, const struct tick *t,
		size_t *pending)
{
	const struct config_group *gc = g->cfg;
	struct va_placement_host *v = xcalloc(gc->hosts.n + 1, sizeof(*v));
	size_t gi = (size_t)(g - d->groups);

	for (unsigned i = 0; i < gc->hosts.n; i++) {
		const struct config_host *hc = gc->host_ptrs[i];
		int hi = index_of_host(d, hc->name);
		struct dhost *dh = hi >= 0 ? &d->hosts[hi] : NULL;
		struct va_placement_host *p = &v[i];

		p->name = hc->name;
		p->cpu_overcommit = hc->cpu_overcommit;
		p->mem_overcommit = hc->memory_overcommit;
		p->reserved_memory = hc->reserved_memory;
		p->max_instances = (uint32_t)hc->max_instances;
		p->cpu_use = -1;
		if (dh && dh->state == DHOST_UNKNOWN) {
			p->down_reason = "not measured yet";
			(*pending)++;
			continue;
		}
		if (!dh || !host_is_up(dh->h)) {
			p->down_reason = "not connected";
			continue;
		}
		if (!dh->cap_ok || !(dh->cap.present & (1u << COLLECT_CAP_NODEINFO))) {
			p->down_reason = dh->why[0] ? dh->why : "no capacity measured";
			continue;
		}
		p->up = 1;
		p->cpus = dh->cap.cpus;
		p->mem_total = dh->cap.mem_kib * 1024;
		p->mem_free = (dh->cap.present & (1u << COLLECT_CAP_FREE))
				      ? dh->cap.free_kib * 1024
				      : p->mem_total;
		if (dh->cap.present & (1u << COLLECT_CAP_CPU_UTIL))
			p->cpu_use = dh->cap.cpu_util_pct / 100.0;
		p->vcpus_alloc = dh->cap.vcpus_alloc + t->pending_vcpus[hi];
		p->mem_alloc = dh->cap.mem_alloc_kib * 1024 + t->pending_mem[hi];
		p->instances = t->host_instances[hi];
		p->group_instances = t->group_host[gi * d->n_hosts + (size_t)hi];
	}
	return v;
}

/*
 * The instance's last value of each app metric the policy names, if
 * reported within two intervals: an older one (the guest stopped
 * reporting it, or its heartbeats stopped) is unknown, not zero.
 */
static void
app_values(struct daemon *d, const struct policy_params *p, const char *id,
	   struct converge_instance *ci)
{
	int64_t wall = util_wall_ms();

	for (unsigned a = 0; a < p->n_app && a < POLICY_APP_MAX; a++) {
		double v;
		int64_t t;

		if (!appm_get(d->appm, id, p->app[a].name, &v, &t) ||
		    wall - t > 2 * p->interval_ms)
			continue;
		ci->app[a] = v;
		ci->app_present[a] = true;
		ci->app_ms[a] = t;
	}
}

/*
 * The instance's app metric values reported since the last decision to
 * the sinks that keep them (InfluxDB's va_instance_app), each at its
 * heartbeat's time: a value already written at an earlier decision (a
 * heartbeat older than *sent) is not written again.
 */
static void
app_to_sinks(struct daemon *d, const struct dgroup *g,
	     const struct converge_instance *ci, int64_t *sent)
{
	const struct policy_params *p = &g->cfg->policy;

	for (unsigned a = 0; a < p->n_app && a < POLICY_APP_MAX; a++) {
		struct influx_app_value v = {
			.group = g->cfg->name,
			.host = ci->host,
			.instance = ci->id,
			.metric = p->app[a].name,
			.value = ci->app[a],
			.wall_ms = ci->app_ms[a],
		};

		/* a figure from an outside source is the group's, not
		 * the instance's (va_group_metric has it) */
		if (p->app[a].source[0] || !ci->app_present[a] ||
		    ci->app_ms[a] <= g->app_sent_ms)
			continue;
		sink_instance_app(d->sinks, d->n_sinks, &v);
		if (ci->app_ms[a] > *sent)
			*sent = ci->app_ms[a];
	}
}

/*
 * The figure of an app metric measured outside (scaling.target.app.source),
 * into in->ext_*: the worker's last value if its last query succeeded and
 * is at most two intervals old; otherwise unknown, with why (in why[],
 * which must outlive the plan). An event when the source starts failing
 * and when it answers again; the worker logs (rate-limited).
 */
static void
source_values(struct daemon *d, struct dgroup *g, struct converge_input *in,
	      int64_t now, char *why, size_t whylen)
{
	const struct policy_params *p = &g->cfg->policy;

	for (unsigned a = 0; a < p->n_app && a < POLICY_APP_MAX; a++) {
		struct promsrc_state st;
		bool failing;

		if (!p->app[a].source[0])
			continue;
		in->ext_why[a] = why;
		if (!g->src) {
			snprintf(why, whylen, "the source is not running");
			continue;
		}
		promsrc_get(g->src, &st);
		if (st.failing)
			snprintf(why, whylen, "%s", st.why);
		else if (!st.have)
			snprintf(why, whylen, "no answer from %s yet",
				 promsrc_shown_url(g->src));
		else if (now - st.value_ms > 2 * p->interval_ms)
			snprintf(why, whylen, "the last value from %s is %" PRId64
				 " s old (more than two intervals)",
				 promsrc_shown_url(g->src),
				 (now - st.value_ms) / 1000);
		else {
			in->ext_app[a] = st.value;
			in->ext_present[a] = true;
			in->ext_why[a] = NULL;
		}
		failing = st.failing || (st.have && !in->ext_present[a]);
		if (failing && !g->src_failing)
			event_record(d->store, g->cfg->name, NULL,
				     "app_source_error", NULL,
				     "app metric %s from prometheus: %s",
				     p->app[a].name, why);
		else if (!failing && g->src_failing && in->ext_present[a])
			event_record(d->store, g->cfg->name, NULL,
				     "app_source_ok", NULL,
				     "app metric %s from prometheus %s "
				     "answers again: %.6g", p->app[a].name,
				     promsrc_shown_url(g->src), st.value);
		g->src_failing = failing;
	}
}

/* The group's instances as the planner sees them (pointing into t->all). */
static struct converge_instance *
group_instances(struct daemon *d, struct dgroup *g, const struct tick *t,
		size_t **rows, size_t *n_out, int64_t now)
{
	const struct policy_params *p = &g->cfg->policy;
	size_t gi = (size_t)(g - d->groups), n = 0, room = 0;
	struct converge_instance *v;
	int64_t app_sent = g->app_sent_ms;

	/* room for the group's instances, not for every group's */
	for (size_t i = 0; i < t->all.n; i++)
		room += t->group_of[i] == (int)gi;
	v = xcalloc(room + 1, sizeof(*v));
	*rows = xcalloc(room + 1, sizeof(**rows));
	rates_group_init(&g->agg);
	for (size_t i = 0; i < t->all.n; i++) {
		const struct store_instance *si = &t->all.v[i];
		struct converge_instance *ci = &v[n];
		unsigned char uuid[16];
		struct rates_window w;

		if (t->group_of[i] != (int)gi)
			continue;
		(*rows)[n++] = i;
		ci->id = si->id;
		ci->host = si->host;
		ci->domain = si->domain;
		ci->address = si->address;
		ci->state = si->state;
		ci->created_ms = si->created_ms;
		ci->ready_ms = si->ready_ms;
		ci->heartbeat_ms = si->heartbeat_ms;
		ci->busy = si->busy;
		ci->busy_since_ms = si->busy_since_ms;
		ci->job = bsearch(si->id, t->busy, t->n_busy, sizeof(*t->busy),
				  busy_cmp) != NULL;
		ci->updated_ms = si->updated_ms;
		ci->template = si->template_hash;
		ci->resumed = si->state == STORE_INSTANCE_RESUMING &&
			      g->n_resumed > 0 &&
			      bsearch(si->id, g->resumed, g->n_resumed,
				      sizeof(*g->resumed), busy_cmp) != NULL;
		if (si->state == STORE_INSTANCE_LAUNCH_WAIT ||
		    si->state == STORE_INSTANCE_TERMINATE_WAIT) {
			/* bsearch() must not be given NULL, even for 0 */
			const struct store_hook_wait *hw =
				t->n_waits == 0 ? NULL
				: bsearch(si->id, t->waits, t->n_waits,
					  sizeof(*t->waits), busy_cmp);

			ci->hook_wait = hw != NULL;
			ci->hook_deadline_ms = hw ? hw->deadline_ms : 0;
			ci->hook_result = hw ? hw->result : STORE_HOOK_PENDING;
			ci->hook_sent = hooks_known(d->hooks, si->id);
		}
		if (si->state == STORE_INSTANCE_READY && d->appm)
			app_values(d, p, si->id, ci);
		app_to_sinks(d, g, ci, &app_sent);
		if (si->state != STORE_INSTANCE_READY ||
		    util_uuid_parse(si->id, uuid) != 0 ||
		    mstore_query(d->mstore, uuid, now - p->interval_ms, now, &w) != 0)
			continue;
		rates_group_add(&g->agg, &w);
		for (int m = 0; m < POLICY_METRIC_LAST; m++) {
			enum rates_metric rm = rates_from_policy((enum policy_metric)m);

			if (w.present & (1u << rm)) {
				ci->metric[m] = w.mean[rm];
				ci->metric_present[m] = true;
			}
		}
	}
	rates_group_finish(&g->agg);
	g->app_sent_ms = app_sent;
	*n_out = n;
	return v;
}

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
static void
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
static void
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

static void
apply(struct daemon *d, struct dgroup *g, struct tick *t, const size_t *rows,
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

/* The group at this decision, for InfluxDB: sizes, and each metric the
 * policy uses (targets, step rules) with what the engine saw. */
static void
group_to_sinks(struct daemon *d, const struct dgroup *g,
	       const struct converge_plan *plan, int64_t wall)
{
	const struct policy_params *p = &g->cfg->policy;
	struct influx_group_metric m[POLICY_METRIC_LAST + POLICY_APP_MAX];
	bool used[POLICY_METRIC_LAST] = {false};
	struct influx_group ig = {
		.name = g->cfg->name,
		.desired = g->desired,
		.current = plan->live,
		.ready = plan->ready,
		.min = plan->decided ? plan->decision.min : g->cfg->min,
		.max = plan->decided ? plan->decision.max : g->cfg->max,
		.paused = g->paused,
		.warming = plan->warming,
		.warm = plan->warm,
		.metrics = m,
	};

	for (unsigned i = 0; i < p->n_steps; i++)
		used[p->steps[i].metric] = true;
	for (int k = 0; k < POLICY_METRIC_LAST; k++) {
		if (!used[k] && p->target[k] <= 0)
			continue;
		bool have = plan->decided && plan->decision.metric_present[k];

		m[ig.n_metrics] = (struct influx_group_metric){
			.metric = policy_metric_name((enum policy_metric)k),
			.have_value = have,
			.value = have ? plan->decision.metric[k] : 0,
			.have_target = p->target[k] > 0,
			.target = p->target[k],
		};
		ig.n_metrics++;
	}
	/* the app metrics, under their own names: the mean or total */
	for (unsigned a = 0; a < p->n_app && a < POLICY_APP_MAX; a++) {
		bool have = plan->decided && plan->decision.app_present[a];

		m[ig.n_metrics++] = (struct influx_group_metric){
			.metric = p->app[a].name,
			.have_value = have,
			.value = have ? plan->decision.app[a] : 0,
			.have_target = p->app[a].target > 0,
			.target = p->app[a].target,
		};
	}
	sink_group(d->sinks, d->n_sinks, &ig, wall);
}

/* The plan as a point of the status page's plots (history.h). */
static void
history_note(struct dgroup *g, const struct converge_plan *plan, int64_t wall)
{
	struct history_point p = {
		.t_ms = wall,
		.desired = g->desired,
		.current = plan->live,
		.ready = plan->ready,
		.forecast = plan->decided ? plan->decision.forecast : -1,
	};

	for (int m = 0; m < POLICY_METRIC_LAST; m++) {
		p.metric[m] = plan->decided && plan->decision.metric_present[m]
				      ? (float)plan->decision.metric[m]
				      : NAN;
		p.target[m] = (float)g->cfg->policy.target[m];
	}
	history_add(g->hist, &p);
}

static void
group_tick(struct daemon *d, struct dgroup *g, struct tick *t, int64_t now,
	   int64_t wall)
{
	struct converge_input in;
	struct converge_plan plan;
	char ids[CONVERGE_MAX_STARTS][STORE_ID_LEN + 1];
	char src_why[PROMSRC_WHY_MAX];
	size_t *rows = NULL, n_ids = 0;
	time_t secs = (time_t)(wall / 1000);

	memset(&in, 0, sizeof(in));
	in.cfg = g->cfg;
	in.now_ms = now;
	in.wall_ms = wall;
	in.have_local_time = localtime_r(&secs, &in.local_time) != NULL;
	in.desired = g->desired;
	in.paused = g->paused;
	in.manual = g->manual;
	in.manual_from = g->manual_from;
	in.backoff = now < g->backoff_until_ms;
	in.warm_backoff = now < g->warm_backoff_until_ms;
	in.v = group_instances(d, g, t, &rows, &in.n, now);
	in.hosts = placement_hosts(d, g, t, &in.n_hosts_pending);
	in.n_hosts = g->cfg->hosts.n;
	in.place = g->place;
	while (n_ids < CONVERGE_MAX_STARTS && store_instance_new_id(ids[n_ids]) == STORE_OK)
		n_ids++;
	in.new_ids = (const char (*)[STORE_ID_LEN + 1])ids;
	in.n_new_ids = n_ids;
	g->manual = false;
	source_values(d, g, &in, now, src_why, sizeof(src_why));
	in.have_forecast = predict_floor(g->pred, &in.forecast);
	refresh_input(g, &in);

	converge_group(&in, &g->cs, &plan);
	predict_note(g->pred, &g->cfg->policy, wall, plan.load);
	apply(d, g, t, rows, &in, &plan, refresh_commit(d, g, &plan));
	g->refresh_old = plan.refresh_old;
	if (g->cs.full)
		log_complain(&g->full_complaint, LOG_LEVEL_WARN, log_tag,
			     "group %s: cannot place a new instance: %s",
			     g->cfg->name, g->cs.why);
	else
		log_complain_clear(&g->full_complaint, log_tag,
				   "group %s: hosts have room again", g->cfg->name);
	if (plan.decided) {
		g->last = plan.decision;
		g->have_last = true;
		memcpy(g->metric, plan.decision.metric, sizeof(g->metric));
		memcpy(g->metric_present, plan.decision.metric_present,
		       sizeof(g->metric_present));
	}
	g->current = plan.live;
	g->ready = plan.ready;
	g->warming = plan.warming;
	g->warm = plan.warm;
	g->warm_target = plan.warm_target;
	resumed_prune(g, &in);
	if (!g->paused) {
		g->busy_held = plan.busy_held;
		g->waiting_for_hosts = plan.waiting_for_hosts;
	}
	metrics_set_group(g->cfg->name, g->desired, plan.live, plan.ready, &g->agg);
	metrics_set_group_warm(g->cfg->name, plan.warming, plan.warm);
	metrics_set_group_refresh(g->cfg->name,
				  g->refresh && store_refresh_active(g->refresh->state)
					  ? plan.refresh_old
					  : 0);
	metrics_set_group_targets(g->cfg->name, g->cfg->policy.target);
	group_to_sinks(d, g, &plan, wall);
	history_note(g, &plan, wall);
	converge_plan_release(&plan);
	free((void *)in.v);
	free(in.hosts);
	free(rows);
}

void
scaler_tick(struct daemon *d, int64_t now)
{
	struct tick t;
	int64_t wall = util_wall_ms();
	bool gathered = false;

	hook_reports(d);
	for (unsigned i = 0; i < d->n_groups; i++) {
		struct dgroup *g = &d->groups[i];

		if (now < g->next_decide_ms)
			continue;
		g->next_decide_ms = now + g->cfg->policy.interval_ms;
		/* one list for every group: placement needs all hosts' counts */
		if (!gathered && tick_gather(d, &t) != 0)
			return;
		if (!gathered)
			hook_waits_prune(d, &t);
		gathered = true;
		group_tick(d, g, &t, now, wall);
	}
	if (gathered) {
		tick_release(&t);
		predict_flush(d);
		if (d->appm) {
			/* values older than any group's two intervals
			 * count nowhere: removed or silent instances */
			int64_t keep = 60000;

			for (unsigned i = 0; i < d->n_groups; i++)
				if (2 * d->groups[i].cfg->policy.interval_ms > keep)
					keep = 2 * d->groups[i].cfg->policy.interval_ms;
			appm_forget_before(d->appm, wall - keep);
		}
	}
}
