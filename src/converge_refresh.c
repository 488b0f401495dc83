/*
 * converge_refresh.c: instance refresh, the group planner's step before
 * convergence (converge.h, docs/operations.md). Pure: the group's
 * refresh row, its instances and the template the configuration names
 * in; the row after the plan, events and removals out.
 *
 * An instance is old ("due") when it was built from another template
 * than the refresh's target, or, for a refresh begun by hand (all), when
 * it was created before the refresh began. Each plan removes old
 * instances while the group keeps at least
 *   max(desired - max_unavailable, min_healthy% of desired)
 * ready (both rounded down), not-ready old ones at once, and lets
 * convergence start up to `surge` new ones beyond desired (within max)
 * while old ones remain: new ones first, then old ones go as new ones
 * become ready. Scale-in during a refresh takes old instances first.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge.h"
#include "converge_int.h"
#include "util.h"

static bool
pooled(enum store_instance_state st)
{
	return converge_state_pooled(st);
}

static const char *
short_hash(const char *h)
{
	return h && *h ? h : "?";
}

static void
event(struct converge_plan *plan, const char *kind, const char *msg)
{
	struct converge_action *a = converge_add(plan, CONVERGE_EVENT, 0, "%s",
						 msg);

	a->event = kind;
	snprintf(plan->refresh.message, sizeof(plan->refresh.message), "%s",
		 msg);
	plan->refresh_changed = true;
}

/* The template a refresh of the configuration's template rolls back to:
 * the newest ready instance's of another template, else the newest's. */
static const char *
previous_template(const struct converge_input *in,
		  const enum store_instance_state *state)
{
	const char *any = NULL;

	for (size_t i = in->n; i-- > 0;) {
		const struct converge_instance *ci = &in->v[i];

		if (!ci->template || strcmp(ci->template, in->template) == 0 ||
		    !converge_state_live(state[i]))
			continue;
		if (state[i] == STORE_INSTANCE_READY)
			return ci->template;
		if (!any)
			any = ci->template;
	}
	return any;
}

static bool
is_due(const struct store_refresh *r, const struct converge_instance *ci)
{
	if (ci->template && strcmp(ci->template, r->target) != 0)
		return true;
	return r->all && ci->created_ms < r->started_ms;
}

void
converge_refresh_begin(const struct config_group *gc, const char *template,
		       int64_t wall_ms, struct store_refresh *r)
{
	const struct config_refresh *cr = &gc->refresh;

	memset(r, 0, sizeof(*r));
	snprintf(r->group, sizeof(r->group), "%s", gc->name);
	r->state = STORE_REFRESH_RUNNING;
	snprintf(r->config_template, sizeof(r->config_template), "%s",
		 template);
	snprintf(r->target, sizeof(r->target), "%s", template);
	snprintf(r->max_unavailable, sizeof(r->max_unavailable), "%s",
		 cr->max_unavailable);
	r->surge = cr->surge;
	r->min_healthy = (int64_t)cr->min_healthy;
	r->rollback_after = cr->rollback_after;
	for (unsigned k = 0; k < cr->checkpoints.n; k++)
		snprintf(r->checkpoints + strlen(r->checkpoints),
			 sizeof(r->checkpoints) - strlen(r->checkpoints),
			 "%s%d", k ? "," : "", atoi(cr->checkpoints.v[k]));
	r->started_ms = wall_ms;
}

/* Begin a refresh because the template changed: 0, or -1 when there is
 * nothing to replace (or no automatic refresh). */
static int
begin_auto(const struct converge_input *in,
	   const enum store_instance_state *state, struct converge_plan *plan)
{
	struct store_refresh *r = &plan->refresh;
	const char *prev;
	int stale = 0;
	char *msg;

	if (!in->cfg->refresh.automatic)
		return -1;
	/* this template's refresh ran already (done, cancelled, rolled
	 * back or failed): not again until the template changes */
	if (in->refresh &&
	    strcmp(in->refresh->config_template, in->template) == 0)
		return -1;
	for (size_t i = 0; i < in->n; i++)
		if (converge_state_live(state[i]) && in->v[i].template &&
		    strcmp(in->v[i].template, in->template) != 0)
			stale++;
	if (!stale)
		return -1;
	prev = previous_template(in, state);
	converge_refresh_begin(in->cfg, in->template, in->wall_ms, r);
	snprintf(r->previous, sizeof(r->previous), "%s", prev ? prev : "");
	r->total = stale;
	msg = xasprintf("the template changed (%.12s -> %.12s): replacing %d "
			"instance%s, max_unavailable %s, surge %" PRId64
			", min_healthy %" PRId64 "%%",
			short_hash(prev), in->template, stale,
			stale == 1 ? "" : "s", r->max_unavailable, r->surge,
			r->min_healthy);
	event(plan, "refresh_started", msg);
	free(msg);
	return 0;
}

/* The next checkpoint (percent) after the one paused at; 0 none. */
static int
next_checkpoint(const struct store_refresh *r)
{
	const char *s = r->checkpoints;

	while (*s) {
		int v = atoi(s);

		if (v > r->checkpoint_done)
			return v;
		s += strcspn(s, ",");
		if (*s == ',')
			s++;
	}
	return 0;
}

static void
end(struct converge_plan *plan, enum store_refresh_state to, const char *kind,
    const char *msg)
{
	plan->refresh.state = to;
	event(plan, kind, msg);
}

/* Remove old instance i (the refresh's batch). */
static void
remove_old(const struct converge_input *in, enum store_instance_state *state,
	   size_t i, struct converge_plan *plan)
{
	const struct converge_instance *ci = &in->v[i];
	struct converge_action *a;

	a = converge_add(plan, CONVERGE_REMOVE, i,
			 "refresh: replacing %s on %s (template %.12s)",
			 ci->domain ? ci->domain : ci->id,
			 ci->host ? ci->host : "?", short_hash(ci->template));
	a->event = "refresh_replace";
	a->drain_ms = in->cfg->scale_in.drain_ms;
	a->state = state[i] == STORE_INSTANCE_READY ? STORE_INSTANCE_DRAINING
						    : STORE_INSTANCE_DELETING;
	state[i] = a->state;
	if (a->state == STORE_INSTANCE_DRAINING &&
	    in->cfg->hooks.terminate.present) {
		hook_wait_terminate(in, i, a, plan);
		state[i] = STORE_INSTANCE_TERMINATE_WAIT;
	}
}

int
converge_refresh(const struct converge_input *in,
		 enum store_instance_state *state, bool *due,
		 struct converge_plan *plan)
{
	struct store_refresh *r = &plan->refresh;
	int old_live = 0, old_ready = 0, old_pooled = 0, failed = 0;
	int maxu = 0, floor_ready, removable, extra, removed = 0, next;
	int64_t replaced;
	char *msg;

	if (!in->template)
		return 0;
	snprintf(plan->start_template, sizeof(plan->start_template), "%s",
		 in->template);
	if (in->refresh) {
		*r = *in->refresh;
		plan->have_refresh = true;
		/* rolled back: the previous template until the
		 * configuration's changes */
		if (r->state == STORE_REFRESH_ROLLED_BACK &&
		    strcmp(r->config_template, in->template) == 0)
			snprintf(plan->start_template,
				 sizeof(plan->start_template), "%s", r->target);
	}
	if (!in->refresh || !store_refresh_active(in->refresh->state)) {
		if (begin_auto(in, state, plan) < 0)
			return 0;
		plan->have_refresh = true;
	}
	snprintf(plan->start_template, sizeof(plan->start_template), "%s",
		 r->target);

	for (size_t i = 0; i < in->n; i++) {
		const struct converge_instance *ci = &in->v[i];
		bool d = (converge_state_live(state[i]) || pooled(state[i])) &&
			 is_due(r, ci);

		due[i] = d;
		if (d && converge_state_live(state[i]))
			old_live++;
		if (d && state[i] == STORE_INSTANCE_READY)
			old_ready++;
		if (d && pooled(state[i]))
			old_pooled++;
	}
	/* new instances that failed to become ready in this plan (health
	 * marked them), or whose provisioning failed since the last one */
	for (size_t k = 0; k < plan->n; k++) {
		const struct converge_action *a = &plan->v[k];

		if (a->kind == CONVERGE_MARK_UNHEALTHY && !due[a->inst] &&
		    in->v[a->inst].created_ms >= r->started_ms)
			failed++;
	}
	failed += in->refresh_failed_starts;
	if (failed && r->state == STORE_REFRESH_RUNNING) {
		r->failures += failed;
		plan->refresh_changed = true;
	}
	plan->refresh_old = old_live;
	replaced = r->total - old_live;
	if (replaced < 0)
		replaced = 0;

	if (!old_live && !old_pooled && plan->ready >= plan->desired) {
		if (r->state == STORE_REFRESH_ROLLING_BACK) {
			msg = xasprintf("rolled back to template %.12s; the "
					"group keeps it until the template "
					"changes again", r->target);
			end(plan, STORE_REFRESH_ROLLED_BACK,
			    "refresh_rolled_back", msg);
		} else {
			msg = xasprintf("refresh done: %" PRId64 " instance%s "
					"replaced in %" PRId64 " batch%s; "
					"every instance runs template %.12s",
					r->total, r->total == 1 ? "" : "s",
					r->batches, r->batches == 1 ? "" : "es",
					r->target);
			end(plan, STORE_REFRESH_DONE, "refresh_done", msg);
		}
		free(msg);
		return 0;
	}
	if (r->state == STORE_REFRESH_PAUSED)
		return 0;
	if (r->state == STORE_REFRESH_RUNNING && r->rollback_after > 0 &&
	    r->failures >= r->rollback_after) {
		if (r->previous[0] && strcmp(r->previous, r->target) != 0) {
			char failed_t[65];
			int back = 0;

			snprintf(failed_t, sizeof(failed_t), "%s", r->target);
			snprintf(r->target, sizeof(r->target), "%s", r->previous);
			snprintf(r->previous, sizeof(r->previous), "%s",
				 failed_t);
			r->all = false;
			for (size_t i = 0; i < in->n; i++)
				if (converge_state_live(state[i]) &&
				    is_due(r, &in->v[i]))
					back++;
			r->total = back;
			r->state = STORE_REFRESH_ROLLING_BACK;
			snprintf(plan->start_template,
				 sizeof(plan->start_template), "%s", r->target);
			msg = xasprintf("%" PRId64 " new instance%s of template "
					"%.12s failed to become ready "
					"(rollback_after %" PRId64 "): rolling "
					"back to template %.12s, replacing %d",
					r->failures, r->failures == 1 ? "" : "s",
					failed_t, r->rollback_after, r->target,
					back);
			event(plan, "refresh_rollback", msg);
			free(msg);
			/* the next plan replaces the new ones */
			for (size_t i = 0; i < in->n; i++)
				due[i] = false;
		} else {
			msg = xasprintf("%" PRId64 " new instance%s failed to "
					"become ready and there is no previous "
					"template to roll back to: the refresh "
					"stops", r->failures,
					r->failures == 1 ? "" : "s");
			end(plan, STORE_REFRESH_FAILED, "refresh_failed", msg);
			free(msg);
		}
		return 0;
	}
	next = next_checkpoint(r);
	if (r->state == STORE_REFRESH_RUNNING && next && r->total > 0 &&
	    replaced * 100 >= (int64_t)next * r->total) {
		r->state = STORE_REFRESH_PAUSED;
		r->checkpoint_done = next;
		msg = xasprintf("checkpoint %d%%: %" PRId64 " of %" PRId64
				" replaced; paused until `virt-autoscaler "
				"refresh %s --resume`", next, replaced,
				r->total, in->cfg->name);
		event(plan, "refresh_checkpoint", msg);
		free(msg);
		return 0;
	}

	/* the health gate */
	if (config_refresh_amount(r->max_unavailable, plan->desired, &maxu) < 0)
		maxu = 1;
	floor_ready = plan->desired - maxu;
	if ((int)(r->min_healthy * plan->desired / 100) > floor_ready)
		floor_ready = (int)(r->min_healthy * plan->desired / 100);
	extra = (int)r->surge;
	if (plan->desired + extra > in->cfg->max)
		extra = in->cfg->max - plan->desired;
	if (extra < 0)
		extra = 0;
	/* without room for a new one first, one old one must go first */
	if (extra == 0 && floor_ready >= plan->desired)
		floor_ready = plan->desired - 1;
	removable = plan->ready - floor_ready;

	for (size_t i = 0; i < in->n; i++) {
		const struct converge_instance *ci = &in->v[i];

		if (!due[i] || ci->job)
			continue;
		if (pooled(state[i])) {
			struct converge_action *a = converge_add(plan,
				CONVERGE_REMOVE, i, "refresh: removing %s "
				"from the warm pool (template %.12s)",
				ci->domain ? ci->domain : ci->id,
				short_hash(ci->template));

			a->state = STORE_INSTANCE_DELETING;
			a->event = "refresh_replace";
			state[i] = STORE_INSTANCE_DELETING;
			continue;
		}
		if (state[i] == STORE_INSTANCE_BOOTING ||
		    state[i] == STORE_INSTANCE_UNHEALTHY ||
		    state[i] == STORE_INSTANCE_RESUMING) {
			remove_old(in, state, i, plan);
			removed++;
			old_live--;
		}
	}
	for (size_t i = 0; i < in->n && removable > 0; i++) {
		if (!due[i] || in->v[i].job || state[i] != STORE_INSTANCE_READY)
			continue;
		remove_old(in, state, i, plan);
		removable--;
		removed++;
		old_live--;
		plan->ready--;
	}
	if (removed) {
		plan->live -= removed;
		r->batches++;
		msg = xasprintf("refresh batch %" PRId64 ": replacing %d "
				"instance%s (%" PRId64 " of %" PRId64 " done, "
				"%d ready, at least %d kept ready)", r->batches,
				removed, removed == 1 ? "" : "s", replaced,
				r->total, plan->ready, floor_ready);
		event(plan, "refresh_batch", msg);
		free(msg);
	}
	plan->refresh_old = old_live;
	if (extra > old_live)
		extra = old_live;
	return extra;
}
