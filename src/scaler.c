/*
 * scaler.c: the shell around the converge planner. Per tick: apply the
 * operators' commands, reap finished jobs, then for every group whose
 * decision is due gather its inputs (instances from the store, one list
 * for all groups; their metrics from the built-in store; the hosts'
 * measured capacity; which instances a job is busy with), run
 * converge_group() and apply its actions (store writes first, then
 * events, then jobs). Every per-tick path is O(n log n) in the instances.
 * The inputs are gathered in scaler_inputs.c, the actions applied in
 * scaler_actions.c (scaler_int.h: what they share).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scaler_int.h"
#include "refresh.h"
#include "log.h"
#include "metrics.h"
#include "util.h"
#include "warm.h"

LOG_TAG("scaler");

/* After a failed provisioning, wait this long (doubling) before retrying. */
#define PROVISION_BACKOFF_MS 10000
#define PROVISION_BACKOFF_MAX_MS 300000
/* how long past its due time a decision waits for a collector round in
 * flight (scaler_tick) */
#define DECIDE_WAIT_MS 2000
/* a collector round due within this long is waited for as well */
#define BEAT_SLACK_MS 250

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

/* When the newest collector round of the group's hosts made its call
 * (monotonic); 0: none yet. */
static int64_t
newest_round(struct daemon *d, const struct dgroup *g)
{
	int64_t newest = 0;

	for (unsigned i = 0; i < g->cfg->hosts.n; i++) {
		const struct dhost *dh = daemon_host(d, g->cfg->host_ptrs[i]->name);

		if (dh && dh->collected_ms > newest)
			newest = dh->collected_ms;
	}
	return newest;
}

/* How old the figures behind this decision were
 * (va_group_decision_data_age_seconds): now, not the turn's start, which
 * may come before a round the turn took. */
static void
data_age(struct daemon *d, const struct dgroup *g)
{
	int64_t newest = newest_round(d, g), now = util_now_ms();

	if (newest > 0)
		metrics_set_group_data_age(g->cfg->name,
					   newest < now ? (double)(now - newest) / 1000.0
							: 0.0);
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
	scaler_apply(d, g, t, rows, &in, &plan, refresh_commit(d, g, &plan));
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
	data_age(d, g);
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

	int collecting = -1; /* collect_pending(), asked once when needed */

	hook_reports(d);
	for (unsigned i = 0; i < d->n_groups; i++) {
		struct dgroup *g = &d->groups[i];

		if (now < g->next_decide_ms && !g->decide_deferred)
			continue;
		/*
		 * Decisions keep the collector's beat. One that falls due
		 * while a round is in flight (or its result not taken yet)
		 * waits for that result, at most DECIDE_WAIT_MS (a half-dead
		 * host must not hold it): it decides on figures one round
		 * fresher, and does not compete for the CPU with the bulk
		 * call and libvirtd's answer to it. The collector wakes the
		 * loop when a round ends (daemon_wake). The next one falls
		 * due an interval after the round it decided on, so just
		 * after a round starts when both intervals are equal (the
		 * default). A decision forced now (next_decide_ms 0) does
		 * not wait.
		 */
		/* a round about to start counts too: the loop's turns come
		 * a little late, so the collector's beat drifts behind the
		 * rounds a decision is anchored on */
		if (collecting < 0)
			collecting = collect_pending(d->collector) ||
				     (d->next_collect_ms >= now &&
				      d->next_collect_ms - now <= BEAT_SLACK_MS);
		if (g->decide_deferred) {
			if (collecting && now < g->next_decide_ms)
				continue;
			g->decide_deferred = false;
		} else if (collecting && g->next_decide_ms > 0) {
			g->decide_deferred = true;
			g->next_decide_ms = now + DECIDE_WAIT_MS;
			continue;
		}
		{
			int64_t iv = g->cfg->policy.interval_ms;
			int64_t newest = newest_round(d, g);

			/* on the rounds' beat: an interval after the round
			 * decided on, this one stretched or shortened by at
			 * most half an interval to get there (a round the
			 * turn took may be newer than its start, now) */
			if (newest > 0 && now - newest < iv)
				g->next_decide_ms = newest + (now - newest <= iv / 2
							      ? iv : 2 * iv);
			else
				g->next_decide_ms = now + iv;
		}
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
