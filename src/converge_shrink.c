/*
 * converge_shrink.c: the group planner's scale-in (converge.h, step 4):
 * which live instances go when there are more than desired (unhealthy
 * and booting ones first, then the group's order, busy ones spared up to
 * health.busy_max), returned to the warm pool or sent to their terminate
 * hook first; and the busy veto's events. Pure, like converge.c.
 */
#include <stdlib.h>

#include "converge_int.h"
#include "scalein.h"
#include "util.h"

static int
state_rank(enum store_instance_state st)
{
	/* who goes first on scale-in: not yet serving before serving */
	switch (st) {
	case STORE_INSTANCE_UNHEALTHY:
		return 0;
	case STORE_INSTANCE_BOOTING:
	case STORE_INSTANCE_RESUMING:
	case STORE_INSTANCE_LAUNCH_WAIT:
		return 1;
	default:
		return 2;
	}
}

void
plan_shrink(const struct converge_input *in, enum store_instance_state *state,
	    const bool *due, int surplus, struct converge_plan *plan)
{
	size_t m = in->n ? in->n : 1;
	struct scalein_instance *cand = xcalloc(m, sizeof(*cand));
	size_t *order = xcalloc(m, sizeof(*order));
	size_t *map = xcalloc(m, sizeof(*map));
	enum scalein_order how = (enum scalein_order)in->cfg->scale_in.order;
	/* with reuse_on_scale_in, ready ones go back to the pool while it
	 * has room (at the size after this plan) */
	int returns = in->cfg->warm_pool.reuse_on_scale_in
			      ? converge_warm_target(in->cfg, plan->desired) -
					count_pooled(in, state)
			      : 0;

	/* Instances still being created cannot be removed yet; they will
	 * be booting (and go first) at a later plan. Until then they stand
	 * for the surplus: a serving instance is not removed for them. */
	for (size_t i = 0; i < in->n; i++)
		if (state[i] == STORE_INSTANCE_REQUESTED ||
		    state[i] == STORE_INSTANCE_PROVISIONING)
			surplus--;
	/* Unhealthy and booting instances go first, then the group's order
	 * among ready ones (busy ones are protected by scalein_choose);
	 * during a refresh, old instances before new ones (pass 0). */
	for (int pr = 0; pr < 6 && surplus > 0; pr++) {
		int rank = pr % 3;
		bool old_pass = pr < 3;
		size_t n = 0, chosen;

		for (size_t i = 0; i < in->n; i++) {
			const struct converge_instance *ci = &in->v[i];

			if (due ? due[i] != old_pass : !old_pass)
				continue;
			if (!converge_state_live(state[i]) ||
			    state_rank(state[i]) != rank ||
			    state[i] == STORE_INSTANCE_REQUESTED ||
			    state[i] == STORE_INSTANCE_PROVISIONING || ci->job)
				continue;
			cand[n].id = ci->id;
			cand[n].host = ci->host;
			cand[n].created_ms = ci->created_ms;
			cand[n].busy = ci->busy;
			cand[n].busy_since_ms = ci->busy_since_ms;
			map[n++] = i;
		}
		if (!n)
			continue;
		chosen = scalein_choose(cand, n, how, (size_t)surplus, in->wall_ms,
					in->cfg->health.busy_max_ms, order);
		if (chosen < (size_t)surplus)
			for (size_t k = 0; k < n; k++)
				if (cand[k].busy &&
				    !(in->cfg->health.busy_max_ms > 0 &&
				      in->wall_ms - cand[k].busy_since_ms >
					      in->cfg->health.busy_max_ms))
					plan->busy_spared++;
		for (size_t k = 0; k < chosen; k++) {
			size_t i = map[order[k]];
			const struct converge_instance *ci = &in->v[i];
			struct converge_action *a;

			a = converge_add(plan, CONVERGE_REMOVE, i,
					 "removing %s from %s (order %s%s)",
					 ci->domain ? ci->domain : ci->id,
					 ci->host ? ci->host : "?", scalein_order_name(how),
					 ci->busy ? ", busy for too long" : "");
			a->state = state[i] == STORE_INSTANCE_READY
					   ? STORE_INSTANCE_DRAINING
					   : STORE_INSTANCE_DELETING;
			a->drain_ms = in->cfg->scale_in.drain_ms;
			if (a->state == STORE_INSTANCE_DRAINING && returns > 0) {
				char *ret = xasprintf("returning %s on %s to the "
						    "warm pool (order %s)",
						    ci->domain ? ci->domain : ci->id,
						    ci->host ? ci->host : "?",
						    scalein_order_name(how));

				free(a->message);
				a->message = ret;
				a->state = STORE_INSTANCE_WARMING;
				a->event = "warm_return";
				returns--;
			}
			state[i] = a->state;
			if (a->state == STORE_INSTANCE_DRAINING &&
			    in->cfg->hooks.terminate.present) {
				/* its terminate hook first (a may move) */
				hook_wait_terminate(in, i, a, plan);
				state[i] = STORE_INSTANCE_TERMINATE_WAIT;
			}
			surplus--;
		}
	}
	if (surplus > 0 && plan->busy_spared > 0)
		plan->busy_held = surplus;
	free(cand);
	free(order);
	free(map);
}

/*
 * Busy guests veto their removal (up to health.busy_max): while they do,
 * the group stays above its desired size with nothing else to show for
 * it. Say so once when the veto starts and once when it ends.
 */
void
plan_busy_veto(const struct converge_input *in, struct converge_state *st,
	       struct converge_plan *plan)
{
	struct converge_action *a;

	if (plan->busy_held > 0 && !st->busy_held) {
		char *max = util_format_duration(in->cfg->health.busy_max_ms);

		a = converge_add(plan, CONVERGE_EVENT, 0,
				 "scale-in held: %d live for a desired %d, but %d "
				 "instance%s that could go %s busy (spared %s%s)",
				 plan->live, plan->desired, plan->busy_spared,
				 plan->busy_spared == 1 ? "" : "s",
				 plan->busy_spared == 1 ? "is" : "are",
				 in->cfg->health.busy_max_ms > 0
					 ? "until busy for longer than health.busy_max "
					 : "as long as busy: health.busy_max is 0",
				 in->cfg->health.busy_max_ms > 0 ? max : "");
		free(max);
		a->event = "scale_in_blocked";
	} else if (plan->busy_held == 0 && st->busy_held) {
		int removing = 0;

		for (size_t k = 0; k < plan->n; k++)
			if (plan->v[k].kind == CONVERGE_REMOVE)
				removing++;
		a = removing ? converge_add(plan, CONVERGE_EVENT, 0,
					    "scale-in no longer held by busy instances: "
					    "removing %d", removing)
			     : converge_add(plan, CONVERGE_EVENT, 0,
					    "scale-in no longer held by busy instances "
					    "(%d live, desired %d)", plan->live, plan->desired);
		a->event = "scale_in_unblocked";
	}
	st->busy_held = plan->busy_held > 0;
}

