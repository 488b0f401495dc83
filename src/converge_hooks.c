/*
 * converge_hooks.c: the group planner's lifecycle hooks (converge.h,
 * step 6): waits begun, calls sent again after a restart, waits ended by
 * their result or their deadline; and the terminate hook's wait of an
 * instance that scale-in chose. Pure, like converge.c.
 */
#include <stdlib.h>

#include "converge_int.h"
#include "util.h"

/* ---- lifecycle hooks ----------------------------------------------------- */

/*
 * Scale-in chose ready instance i (a: its REMOVE to draining): it waits
 * for the terminate hook first. a becomes a REMOVE to terminate_wait and
 * a HOOK_WAIT follows (a may move: the caller drops it).
 */
void
hook_wait_terminate(const struct converge_input *in, size_t i,
		    struct converge_action *a, struct converge_plan *plan)
{
	const struct config_hook *hc = &in->cfg->hooks.terminate;
	char *m = xasprintf("%s; its terminate hook runs first", a->message);
	char *t = util_format_duration(hc->timeout_ms);
	struct converge_action *w;

	free(a->message);
	a->message = m;
	a->state = STORE_INSTANCE_TERMINATE_WAIT;
	w = converge_add(plan, CONVERGE_HOOK_WAIT, i, "waiting up to %s for the "
			 "terminate hook", t);
	w->hook = STORE_HOOK_TERMINATE;
	w->drain_ms = hc->timeout_ms;
	w->state = STORE_INSTANCE_TERMINATE_WAIT;
	free(t);
}

static void
hook_end(const struct converge_input *in, enum store_instance_state *state,
	 size_t i, enum store_hook hook, enum store_hook_result result,
	 const char *event, const char *why, struct converge_plan *plan)
{
	const struct converge_instance *ci = &in->v[i];
	const char *name = ci->domain ? ci->domain : ci->id;
	struct converge_action *a;
	enum store_instance_state to;
	const char *then;

	if (hook == STORE_HOOK_LAUNCH) {
		to = result == STORE_HOOK_CONTINUE ? STORE_INSTANCE_READY
						   : STORE_INSTANCE_DELETING;
		then = result == STORE_HOOK_CONTINUE
			       ? "it is in service"
			       : "it is removed and replaced";
	} else {
		to = STORE_INSTANCE_DRAINING;
		then = "its removal proceeds";
	}
	a = converge_add(plan, CONVERGE_HOOK_END, i, "%s hook of %s: %s (%s); %s",
			 store_hook_name(hook), name, store_hook_result_name(result),
			 why, then);
	a->hook = hook;
	a->result = result;
	a->state = to;
	a->event = event;
	a->drain_ms = in->cfg->scale_in.drain_ms;
	state[i] = to;
}

void
plan_hooks(const struct converge_input *in, enum store_instance_state *state,
	   struct converge_plan *plan)
{
	for (size_t i = 0; i < in->n; i++) {
		const struct converge_instance *ci = &in->v[i];
		enum store_hook hook;
		const struct config_hook *hc;
		struct converge_action *a;

		if (state[i] == STORE_INSTANCE_LAUNCH_WAIT)
			hook = STORE_HOOK_LAUNCH;
		else if (state[i] == STORE_INSTANCE_TERMINATE_WAIT)
			hook = STORE_HOOK_TERMINATE;
		else
			continue;
		if (ci->job)
			continue;
		hc = hook == STORE_HOOK_LAUNCH ? &in->cfg->hooks.launch
					       : &in->cfg->hooks.terminate;
		if (!hc->present) {
			hook_end(in, state, i, hook, STORE_HOOK_CONTINUE,
				 "hook_completed",
				 "the group has no such hook any more", plan);
		} else if (!ci->hook_wait) {
			char *t = util_format_duration(hc->timeout_ms);

			a = converge_add(plan, CONVERGE_HOOK_WAIT, i, "waiting up to %s "
					 "for the %s hook", t, store_hook_name(hook));
			a->hook = hook;
			a->drain_ms = hc->timeout_ms;
			a->state = state[i];
			free(t);
		} else if (ci->hook_result != STORE_HOOK_PENDING) {
			hook_end(in, state, i, hook, ci->hook_result,
				 "hook_completed", "completed", plan);
		} else if (in->wall_ms >= ci->hook_deadline_ms) {
			char *t = util_format_duration(hc->timeout_ms);
			char *why = xasprintf("not completed within %s: the "
					      "default result", t);

			hook_end(in, state, i, hook,
				 hc->default_result == CONFIG_HOOK_CONTINUE
					 ? STORE_HOOK_CONTINUE
					 : STORE_HOOK_ABANDON,
				 "hook_timeout", why, plan);
			free(why);
			free(t);
		} else if (!ci->hook_sent) {
			a = converge_add(plan, CONVERGE_HOOK_SEND, i, "sending the %s hook "
					 "of %s again (its wait continues)",
					 store_hook_name(hook),
					 ci->domain ? ci->domain : ci->id);
			a->hook = hook;
			a->state = state[i];
		}
	}
}
