/*
 * converge_warm.c: the group planner's warm pool (converge.h, step 5):
 * draws on scale-out, the pool kept at its target (refill, trim, park,
 * resume again), and how a scale-out was served. Pure, like converge.c.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "converge_int.h"
#include "util.h"

/* ---- the warm pool ---------------------------------------------------------- */

static int
host_index(const struct converge_input *in, const char *name)
{
	for (size_t h = 0; name && h < in->n_hosts; h++)
		if (strcmp(in->hosts[h].name, name) == 0)
			return (int)h;
	return -1;
}

/* A warm instance (not busy with a job) on host h, the oldest; or -1. */
static ssize_t
warm_on(const struct converge_input *in, const enum store_instance_state *state,
	int h)
{
	ssize_t best = -1;

	for (size_t i = 0; i < in->n; i++) {
		if (state[i] != STORE_INSTANCE_WARM || in->v[i].job ||
		    host_index(in, in->v[i].host) != h)
			continue;
		if (best < 0 || in->v[i].created_ms < in->v[best].created_ms)
			best = (ssize_t)i;
	}
	return best;
}

/*
 * Scale-out draws warm instances first: the group's strategy chooses
 * among the connected hosts that hold one (a host whose free memory the
 * strategy finds short still gets its warm instance drawn when no other
 * holds one: the VM is there already, and resuming it is the quickest
 * capacity there is). Returns how many were drawn.
 */
int
plan_draw(const struct converge_input *in, enum store_instance_state *state,
	  int missing, struct converge_plan *plan)
{
	struct va_placement_host *cand;
	int drawn = 0;

	if (missing <= 0)
		return 0;
	cand = xcalloc(in->n_hosts + 1, sizeof(*cand));
	while (drawn < missing) {
		struct va_placement_request req = {
			.group = in->cfg->name,
			.vcpus = (uint32_t)in->cfg->template.vcpus,
			.memory = in->cfg->template.memory,
			.seq = (uint32_t)drawn,
		};
		struct converge_action *a;
		size_t chosen = 0;
		ssize_t i = -1;
		bool any = false;

		memcpy(cand, in->hosts, in->n_hosts * sizeof(*cand));
		for (size_t h = 0; h < in->n_hosts; h++) {
			cand[h].up = cand[h].up && warm_on(in, state, (int)h) >= 0;
			any = any || cand[h].up;
		}
		if (!any)
			break;
		if (place_choose(in->place, &req, cand, in->n_hosts, &chosen) !=
			    PLACE_OK || !cand[chosen].up)
			for (chosen = 0; !cand[chosen].up; chosen++)
				;
		i = warm_on(in, state, (int)chosen);
		a = converge_add(plan, CONVERGE_DRAW, (size_t)i,
				 "drawing %s from the warm pool on %s",
				 in->v[i].domain ? in->v[i].domain : in->v[i].id,
				 in->hosts[chosen].name);
		a->host = chosen;
		/* a paused VM holds its memory already; a saved or stopped
		 * one takes it back */
		if (in->cfg->warm_pool.state != CONFIG_WARM_PAUSED)
			place_host_commit(&in->hosts[chosen], &req);
		state[i] = STORE_INSTANCE_RESUMING;
		drawn++;
		plan->draws++;
	}
	free(cand);
	return drawn;
}

int
count_pooled(const struct converge_input *in,
	     const enum store_instance_state *state)
{
	int n = 0;

	for (size_t i = 0; i < in->n; i++)
		if (converge_state_pooled(state[i]))
			n++;
	return n;
}

/*
 * Keep the pool at its target: refill (new instances for the pool) or
 * trim (not checked in first, then the newest); then park the warming
 * ones that checked in, and run again the resume of resuming ones whose
 * job this run has not seen end.
 */
void
plan_pool(const struct converge_input *in, struct converge_state *st,
	  enum store_instance_state *state, struct converge_plan *plan)
{
	int target = converge_warm_target(in->cfg, plan->desired);
	int have = count_pooled(in, state);

	plan->warm_target = target;
	if (have < target && !in->warm_backoff && !plan->waiting_for_hosts)
		plan_grow(in, st, target - have, true, plan);
	for (int pass = 0; pass < 3 && have > target; pass++) {
		for (size_t i = in->n; i-- > 0 && have > target;) {
			const struct converge_instance *ci = &in->v[i];
			struct converge_action *a;
			bool pick = pass == 0 ? state[i] == STORE_INSTANCE_WARMING &&
						       !ci->heartbeat_ms
				  : pass == 1 ? state[i] == STORE_INSTANCE_WARMING
					      : state[i] == STORE_INSTANCE_WARM;

			if (!pick || ci->job)
				continue;
			a = converge_add(plan, CONVERGE_REMOVE, i,
					 "warm pool: %d prepared for a target of %d; "
					 "removing %s", have, target,
					 ci->domain ? ci->domain : ci->id);
			a->state = STORE_INSTANCE_DELETING;
			a->event = "warm_trim";
			state[i] = STORE_INSTANCE_DELETING;
			have--;
		}
	}
	for (size_t i = 0; i < in->n; i++) {
		const struct converge_instance *ci = &in->v[i];

		if (ci->job || !ci->host)
			continue;
		if (state[i] == STORE_INSTANCE_WARMING && ci->heartbeat_ms)
			converge_add(plan, CONVERGE_PARK, i, "parking %s (%s)",
				     ci->domain ? ci->domain : ci->id,
				     config_warm_state_name(in->cfg->warm_pool.state));
		else if (ci->state == STORE_INSTANCE_RESUMING &&
			 state[i] == STORE_INSTANCE_RESUMING && !ci->resumed)
			converge_add(plan, CONVERGE_RESUME, i, "resuming %s again",
				     ci->domain ? ci->domain : ci->id);
	}
}


/*
 * With a warm pool, the decision says how its scale-out was served (what
 * `explain` shows): drawn warm, started cold, and why cold.
 */
void
note_served(const struct converge_input *in,
	    const enum store_instance_state *state, struct converge_plan *plan)
{
	struct converge_action *dec = NULL;
	int warming = 0;
	char *m;

	if (!in->cfg->warm_pool.size && !plan->draws)
		return;
	if (!plan->draws && !plan->cold_starts)
		return;
	for (size_t k = 0; k < plan->n && !dec; k++)
		if (plan->v[k].kind == CONVERGE_SET_DESIRED)
			dec = &plan->v[k];
	if (!dec) {
		/* a manual scale, or instances to replace: said on its own */
		dec = converge_add(plan, CONVERGE_EVENT, 0, "%d more instance%s for the "
				   "desired %d", plan->draws + plan->cold_starts,
				   plan->draws + plan->cold_starts == 1 ? "" : "s",
				   plan->desired);
		dec->event = "decision";
	}
	for (size_t i = 0; i < in->n; i++)
		if (state[i] == STORE_INSTANCE_WARMING)
			warming++;
	if (!plan->cold_starts)
		m = xasprintf("%s; served warm: %d drawn from the warm pool",
			      dec->message, plan->draws);
	else
		m = xasprintf("%s; served %d warm, %d cold: %s", dec->message,
			      plan->draws, plan->cold_starts,
			      warming ? "the rest of the pool is still being "
					"prepared"
			      : in->warm_backoff ? "the pool is not refilled "
						   "after a failed park"
			      : "the warm pool is empty");
	free(dec->message);
	dec->message = m;
}

