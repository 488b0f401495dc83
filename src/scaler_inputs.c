/*
 * scaler_inputs.c: what the scaler (scaler.c) gathers for the planner. Once
 * per tick, one pass over every instance (struct tick: the store's list,
 * each host's counts, which instances a job is busy with, the lifecycle
 * hooks' waits; the ready table for the HTTP threads); then per group
 * its instances with their metrics (the built-in store, app metrics from
 * guests and from outside sources), and its hosts' measured capacity.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scaler_int.h"
#include "log.h"
#include "util.h"

LOG_TAG("scaler");

/* ---- inputs ------------------------------------------------------------------ */

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

static bool
ready_entry(const struct store_instance *si)
{
	return si->state == STORE_INSTANCE_READY && si->secret_hash &&
	       strlen(si->id) <= STORE_ID_LEN &&
	       strlen(si->secret_hash) <
		       sizeof(((struct control_instance *)0)->secret_hash);
}

/*
 * The ready instances and their secrets' hashes, for the HTTP threads:
 * a new counted table each time (xrc_calloc()), never changed once
 * built, so that the snapshots of every turn share it (publish.c).
 */
static void
ready_table(struct daemon *d, const struct store_instance_list *all)
{
	struct control_instance *v;
	size_t n = 0;

	for (size_t i = 0; i < all->n; i++)
		n += ready_entry(&all->v[i]);
	v = xrc_calloc(n + 1, sizeof(*v));
	n = 0;
	for (size_t i = 0; i < all->n; i++) {
		const struct store_instance *si = &all->v[i];

		if (!ready_entry(si))
			continue;
		memcpy(v[n].id, si->id, strlen(si->id) + 1);
		memcpy(v[n].secret_hash, si->secret_hash,
		       strlen(si->secret_hash) + 1);
		n++;
	}
	qsort(v, n, sizeof(*v), ready_cmp);
	xrc_put(d->ready);
	d->ready = v;
	d->n_ready = n;
}

int
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

void
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
struct va_placement_host *
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
void
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
struct converge_instance *
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
