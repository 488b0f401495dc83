/*
 * converge.c: the pure planner of one group (converge.h). Data in,
 * actions out; the scaler (scaler.c) does the I/O.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge.h"
#include "converge_int.h"
#include "scalein.h"
#include "util.h"

bool
converge_state_live(enum store_instance_state st)
{
	switch (st) {
	case STORE_INSTANCE_REQUESTED:
	case STORE_INSTANCE_PROVISIONING:
	case STORE_INSTANCE_BOOTING:
	case STORE_INSTANCE_READY:
	case STORE_INSTANCE_UNHEALTHY:
	case STORE_INSTANCE_RESUMING:
	case STORE_INSTANCE_LAUNCH_WAIT:
		return true;
	default:
		return false;
	}
}

bool
converge_state_pooled(enum store_instance_state st)
{
	return st == STORE_INSTANCE_WARMING || st == STORE_INSTANCE_WARM;
}

int
converge_warm_target(const struct config_group *cfg, int desired)
{
	const struct config_warm_pool *w = &cfg->warm_pool;
	int t = w->size;

	/* a warm instance beyond max - desired could never be drawn */
	if (t > cfg->max - desired)
		t = cfg->max - desired;
	if (w->max_prepared > 0 && t > w->max_prepared - desired)
		t = w->max_prepared - desired;
	return t > 0 ? t : 0;
}

const char *
converge_action_name(enum converge_action_kind k)
{
	static const char *const names[CONVERGE_LAST] = {
		[CONVERGE_MARK_UNHEALTHY] = "mark_unhealthy",
		[CONVERGE_REPLACE] = "replace",
		[CONVERGE_SET_DESIRED] = "set_desired",
		[CONVERGE_EVENT] = "event",
		[CONVERGE_START] = "start",
		[CONVERGE_REMOVE] = "remove",
		[CONVERGE_DRAW] = "draw",
		[CONVERGE_PARK] = "park",
		[CONVERGE_RESUME] = "resume",
		[CONVERGE_HOOK_WAIT] = "hook_wait",
		[CONVERGE_HOOK_SEND] = "hook_send",
		[CONVERGE_HOOK_END] = "hook_end",
	};

	return (unsigned)k < CONVERGE_LAST ? names[k] : "?";
}

void
converge_state_init(struct converge_state *st)
{
	memset(st, 0, sizeof(*st));
	st->pst = policy_state_new();
	memset(st->hold_key, 0xff, sizeof(st->hold_key));
}

void
converge_state_release(struct converge_state *st)
{
	policy_state_free(st->pst);
	memset(st, 0, sizeof(*st));
}

void
converge_plan_release(struct converge_plan *plan)
{
	for (size_t i = 0; i < plan->n; i++)
		free(plan->v[i].message);
	free(plan->v);
	memset(plan, 0, sizeof(*plan));
}

#define add converge_add

struct converge_action *
converge_add(struct converge_plan *plan, enum converge_action_kind kind,
	     size_t inst, const char *fmt, ...)
{
	struct converge_action *a;
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	if (plan->n == plan->alloc) {
		plan->alloc = plan->alloc ? plan->alloc * 2 : 8;
		plan->v = xreallocarray(plan->v, plan->alloc, sizeof(*plan->v));
	}
	a = &plan->v[plan->n++];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->inst = inst;
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	a->message = strbuf_detach(&sb);
	return a;
}

/* ---- health ------------------------------------------------------------ */

static void
plan_health(const struct converge_input *in, enum store_instance_state *state,
	    struct converge_plan *plan)
{
	const struct config_health *h = &in->cfg->health;
	int live = 0, replacing = 0, budget, share;

	for (size_t i = 0; i < in->n; i++) {
		const struct converge_instance *ci = &in->v[i];
		int64_t last;

		if (converge_state_live(state[i]))
			live++;
		if (state[i] == STORE_INSTANCE_WARMING && !ci->job &&
		    !ci->heartbeat_ms &&
		    in->wall_ms - ci->created_ms > h->ready_within_ms) {
			struct converge_action *a = add(plan, CONVERGE_REMOVE, i,
				"warm pool: %s did not check in within %" PRId64
				" s of its creation; removed",
				ci->domain ? ci->domain : ci->id,
				h->ready_within_ms / 1000);

			a->state = STORE_INSTANCE_DELETING;
			a->event = "warm_failed";
			state[i] = STORE_INSTANCE_DELETING;
			continue;
		}
		if (state[i] == STORE_INSTANCE_RESUMING && !ci->job &&
		    in->wall_ms - ci->updated_ms >
			    in->cfg->warm_pool.resume_within_ms) {
			struct converge_action *a = add(plan, CONVERGE_REMOVE, i,
				"warm pool: %s was not ready within %" PRId64
				" s of its draw; removed, the next warm instance "
				"or a new one takes its place",
				ci->domain ? ci->domain : ci->id,
				in->cfg->warm_pool.resume_within_ms / 1000);

			a->state = STORE_INSTANCE_DELETING;
			a->event = "resume_failed";
			state[i] = STORE_INSTANCE_DELETING;
			live--;
			continue;
		}
		if (state[i] == STORE_INSTANCE_BOOTING &&
		    in->wall_ms - ci->created_ms > h->ready_within_ms) {
			add(plan, CONVERGE_MARK_UNHEALTHY, i,
			    "did not check in within %" PRId64 " s of its creation",
			    h->ready_within_ms / 1000);
			state[i] = STORE_INSTANCE_UNHEALTHY;
			continue;
		}
		last = ci->heartbeat_ms ? ci->heartbeat_ms : ci->ready_ms;
		if (state[i] == STORE_INSTANCE_READY &&
		    h->heartbeat_timeout_ms > 0 &&
		    in->wall_ms - last > h->heartbeat_timeout_ms) {
			add(plan, CONVERGE_MARK_UNHEALTHY, i,
			    "no heartbeat for more than %" PRId64 " s",
			    h->heartbeat_timeout_ms / 1000);
			state[i] = STORE_INSTANCE_UNHEALTHY;
		}
	}
	if (!h->replace)
		return;
	for (size_t i = 0; i < in->n; i++)
		if (state[i] == STORE_INSTANCE_DRAINING ||
		    state[i] == STORE_INSTANCE_DELETING)
			replacing++;
	budget = h->max_replace;
	share = (int)((double)(live > 0 ? live : 1) * h->max_replace_share / 100.0);
	if (share < 1)
		share = 1;
	if (share < budget)
		budget = share;
	for (size_t i = 0; i < in->n && replacing < budget; i++) {
		if (state[i] != STORE_INSTANCE_UNHEALTHY || in->v[i].job)
			continue;
		add(plan, CONVERGE_REPLACE, i,
		    "removing unhealthy instance; a new one takes its place");
		state[i] = STORE_INSTANCE_DELETING;
		replacing++;
	}
}

/* ---- the decision -------------------------------------------------------- */

/* How many more instances the hosts could take (bounded); -1 unknown. */
static int
capacity_left(const struct converge_input *in)
{
	struct va_placement_request req = {
		.group = in->cfg->name,
		.vcpus = (uint32_t)in->cfg->template.vcpus,
		.memory = in->cfg->template.memory,
	};
	int left = 0, measured = 0;

	/* hosts not measured yet: the room is not known, not small */
	if (in->n_hosts_pending > 0)
		return -1;
	for (size_t i = 0; i < in->n_hosts; i++) {
		struct va_placement_host tmp = in->hosts[i];

		if (!tmp.up)
			continue;
		measured++;
		while (left < in->cfg->max && place_host_check(&tmp, &req, NULL)) {
			place_host_commit(&tmp, &req);
			left++;
		}
	}
	return measured ? left : -1;
}

static void
plan_decision(const struct converge_input *in, const enum store_instance_state *state,
	      struct converge_state *st, struct converge_plan *plan)
{
	const struct policy_params *p = &in->cfg->policy;
	struct policy_instance_sample *samples;
	struct policy_input pin;
	struct policy_decision *dec = &plan->decision;
	unsigned n = 0;

	memset(&pin, 0, sizeof(pin));
	pin.now_ms = in->now_ms;
	pin.local_time = in->local_time;
	pin.have_local_time = in->have_local_time;
	pin.desired = plan->desired;
	samples = xcalloc(in->n ? in->n : 1, sizeof(*samples));
	for (size_t i = 0; i < in->n; i++) {
		const struct converge_instance *ci = &in->v[i];
		struct policy_instance_sample *s = &samples[n];

		if (!converge_state_live(state[i]))
			continue;
		n++;
		if (state[i] != STORE_INSTANCE_READY)
			continue;
		s->ready = true;
		/* the store's times are wall clock; the engine's monotonic */
		s->ready_ms = in->now_ms -
			      (in->wall_ms - (ci->ready_ms ? ci->ready_ms : in->wall_ms));
		memcpy(s->metric, ci->metric, sizeof(s->metric));
		memcpy(s->metric_present, ci->metric_present,
		       sizeof(s->metric_present));
		memcpy(s->app, ci->app, sizeof(s->app));
		memcpy(s->app_present, ci->app_present, sizeof(s->app_present));
		memcpy(s->app_ms, ci->app_ms, sizeof(s->app_ms));
	}
	pin.capacity_left = capacity_left(in);
	policy_input_from_instances(&pin, p, samples, n);
	free(samples);
	for (unsigned a = 0; a < p->n_app && a < POLICY_APP_MAX; a++) {
		if (!p->app[a].source[0])
			continue;
		pin.app[a] = in->ext_present[a] ? in->ext_app[a] : 0;
		pin.app_present[a] = in->ext_present[a];
		pin.app_reporting[a] = in->ext_present[a] ? 1 : 0;
		pin.app_why[a] = in->ext_why[a];
	}
	pin.have_forecast = in->have_forecast;
	pin.forecast = in->forecast;
	plan->load = policy_load_instances(p, &pin);
	policy_decide(p, &pin, st->pst, dec);
	plan->decided = true;

	if (dec->to != plan->desired) {
		struct strbuf msg = STRBUF_INIT;
		struct converge_action *a;

		policy_decision_format(dec, p, &msg);
		a = add(plan, CONVERGE_SET_DESIRED, 0, "%s", strbuf_str(&msg));
		a->to = dec->to;
		plan->desired = dec->to;
		memset(st->hold_key, 0xff, sizeof(st->hold_key));
		strbuf_release(&msg);
	} else if (dec->recommendation >= 0 && dec->recommendation != dec->from) {
		/* Something wanted a change and damping or capacity held it:
		 * worth recording once, not every interval while it lasts. */
		int key[4] = {dec->from, dec->recommendation, dec->stabilized,
			      dec->limited};

		if (memcmp(key, st->hold_key, sizeof(key)) != 0) {
			struct strbuf msg = STRBUF_INIT;
			struct converge_action *a;

			policy_decision_format(dec, p, &msg);
			a = add(plan, CONVERGE_EVENT, 0, "%s", strbuf_str(&msg));
			a->event = "decision";
			memcpy(st->hold_key, key, sizeof(key));
			strbuf_release(&msg);
		}
	} else {
		memset(st->hold_key, 0xff, sizeof(st->hold_key));
	}
}

/* ---- static addresses ------------------------------------------------------ */

struct addr {
	unsigned char b[16];
};

static int
addr_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct addr));
}

/* a + 1 for an address of len bytes (false on overflow) */
static bool
addr_next(unsigned char *a, size_t len)
{
	for (size_t i = len; i-- > 0;)
		if (++a[i] != 0)
			return true;
	return false;
}

int
converge_allocate_address(const struct config_static_addresses *sa,
			  const struct converge_instance *v, size_t n,
			  char (*taken)[46], size_t n_taken, char out[46])
{
	struct addr cur, last, *used;
	size_t len = sa->family == AF_INET6 ? 16 : 4, n_used = 0;
	int rc = -1;

	memset(&cur, 0, sizeof(cur));
	memset(&last, 0, sizeof(last));
	if (inet_pton(sa->family, sa->first, cur.b) != 1 ||
	    inet_pton(sa->family, sa->last, last.b) != 1)
		return -1;
	/* the addresses in use, sorted: one pass over the range's start */
	used = xcalloc(n + n_taken + 1, sizeof(*used));
	for (size_t i = 0; i < n + n_taken; i++) {
		const char *a = i < n ? v[i].address : taken[i - n];

		if (i < n && (v[i].state == STORE_INSTANCE_GONE || !a))
			continue;
		if (inet_pton(sa->family, a, used[n_used].b) == 1)
			n_used++;
	}
	qsort(used, n_used, sizeof(*used), addr_cmp);
	for (;;) {
		if (!bsearch(&cur, used, n_used, sizeof(*used), addr_cmp)) {
			inet_ntop(sa->family, cur.b, out, INET6_ADDRSTRLEN);
			rc = 0;
			break;
		}
		if (memcmp(cur.b, last.b, len) >= 0 || !addr_next(cur.b, len))
			break;
	}
	free(used);
	return rc;
}

/* ---- growing and shrinking ------------------------------------------------ */

/* START actions in the plan so far: the next new id's index. */
static size_t
starts_planned(const struct converge_plan *plan, char (*taken)[46],
	       size_t *n_taken)
{
	size_t n = 0;

	*n_taken = 0;
	for (size_t k = 0; k < plan->n; k++) {
		if (plan->v[k].kind != CONVERGE_START)
			continue;
		n++;
		if (plan->v[k].address[0])
			memcpy(taken[(*n_taken)++], plan->v[k].address, 46);
	}
	return n;
}

/* Start up to `missing` new instances (for the warm pool when pool). */
static void
plan_grow(const struct converge_input *in, struct converge_state *st,
	  int missing, bool pool, struct converge_plan *plan)
{
	const struct config_static_addresses *sa =
		&in->cfg->cloud_init.static_addresses;
	char taken[CONVERGE_MAX_STARTS][46];
	size_t n_taken = 0, first;

	if (in->backoff || missing <= 0)
		return;
	first = starts_planned(plan, taken, &n_taken);
	if ((size_t)missing + first > CONVERGE_MAX_STARTS)
		missing = CONVERGE_MAX_STARTS - (int)first;
	if ((size_t)missing + first > in->n_new_ids)
		missing = (int)in->n_new_ids - (int)first;
	for (int k = (int)first; k < (int)first + missing; k++) {
		struct va_placement_request req = {
			.group = in->cfg->name,
			.vcpus = (uint32_t)in->cfg->template.vcpus,
			.memory = in->cfg->template.memory,
			.seq = (uint32_t)k,
			.instance_id = in->new_ids[k],
		};
		char address[46] = "";
		struct converge_action *a;
		size_t chosen;
		enum place_result pr;

		if (sa->present &&
		    converge_allocate_address(sa, in->v, in->n, taken, n_taken,
					      address) != 0) {
			snprintf(st->why, sizeof(st->why),
				 "every address of %s is in use", sa->range);
			if (!st->full) {
				a = add(plan, CONVERGE_EVENT, 0, "%s", st->why);
				a->event = "addresses_full";
			}
			st->full = true;
			break;
		}
		pr = place_choose(in->place, &req, in->hosts, in->n_hosts, &chosen);
		if (pr == PLACE_FULL && in->n_hosts_pending > 0) {
			/* after a start: hosts not measured yet are not down
			 * and not full; wait for them, say nothing */
			plan->waiting_for_hosts = true;
			break;
		}
		if (pr != PLACE_OK) {
			/* once per episode (the scaler's log line repeats,
			 * rate-limited, while it lasts) */
			snprintf(st->why, sizeof(st->why), "%s", err_msg());
			if (!st->full) {
				a = add(plan, CONVERGE_EVENT, 0, "%s", st->why);
				a->event = pr == PLACE_FULL ? "hosts_full"
							    : "placement_error";
			}
			st->full = true;
			break;
		}
		st->full = false;
		st->why[0] = '\0';
		place_host_commit(&in->hosts[chosen], &req);
		a = add(plan, CONVERGE_START, (size_t)k, "placed on %s%s",
			in->hosts[chosen].name,
			pool ? " for the warm pool" : "");
		a->host = chosen;
		a->pool = pool;
		if (!pool)
			plan->cold_starts++;
		snprintf(a->address, sizeof(a->address), "%s", address);
		if (sa->present)
			snprintf(taken[n_taken++], sizeof(taken[0]), "%s", address);
	}
}

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
static int
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
		a = add(plan, CONVERGE_DRAW, (size_t)i,
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

static int
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
static void
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
			a = add(plan, CONVERGE_REMOVE, i,
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
			add(plan, CONVERGE_PARK, i, "parking %s (%s)",
			    ci->domain ? ci->domain : ci->id,
			    config_warm_state_name(in->cfg->warm_pool.state));
		else if (ci->state == STORE_INSTANCE_RESUMING &&
			 state[i] == STORE_INSTANCE_RESUMING && !ci->resumed)
			add(plan, CONVERGE_RESUME, i, "resuming %s again",
			    ci->domain ? ci->domain : ci->id);
	}
}

/* ---- lifecycle hooks ----------------------------------------------------- */

/*
 * Scale-in chose ready instance i (a: its REMOVE to draining): it waits
 * for the terminate hook first. a becomes a REMOVE to terminate_wait and
 * a HOOK_WAIT follows (a may move: the caller drops it).
 */
void
converge_hook_wait_terminate(const struct converge_input *in, size_t i,
			     struct converge_action *a,
			     struct converge_plan *plan)
{
	const struct config_hook *hc = &in->cfg->hooks.terminate;
	char *m = xasprintf("%s; its terminate hook runs first", a->message);
	char *t = util_format_duration(hc->timeout_ms);
	struct converge_action *w;

	free(a->message);
	a->message = m;
	a->state = STORE_INSTANCE_TERMINATE_WAIT;
	w = add(plan, CONVERGE_HOOK_WAIT, i, "waiting up to %s for the "
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
	a = add(plan, CONVERGE_HOOK_END, i, "%s hook of %s: %s (%s); %s",
		store_hook_name(hook), name, store_hook_result_name(result),
		why, then);
	a->hook = hook;
	a->result = result;
	a->state = to;
	a->event = event;
	a->drain_ms = in->cfg->scale_in.drain_ms;
	state[i] = to;
}

static void
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

			a = add(plan, CONVERGE_HOOK_WAIT, i, "waiting up to %s "
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
			a = add(plan, CONVERGE_HOOK_SEND, i, "sending the %s hook "
				"of %s again (its wait continues)",
				store_hook_name(hook),
				ci->domain ? ci->domain : ci->id);
			a->hook = hook;
			a->state = state[i];
		}
	}
}

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

static void
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

			if (due && due[i] != old_pass)
				continue;
			if (!due && !old_pass)
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

			a = add(plan, CONVERGE_REMOVE, i,
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
				converge_hook_wait_terminate(in, i, a, plan);
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
static void
plan_busy_veto(const struct converge_input *in, struct converge_state *st,
	       struct converge_plan *plan)
{
	struct converge_action *a;

	if (plan->busy_held > 0 && !st->busy_held) {
		char *max = util_format_duration(in->cfg->health.busy_max_ms);

		a = add(plan, CONVERGE_EVENT, 0,
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
		a = removing ? add(plan, CONVERGE_EVENT, 0,
				   "scale-in no longer held by busy instances: "
				   "removing %d", removing)
			     : add(plan, CONVERGE_EVENT, 0,
				   "scale-in no longer held by busy instances "
				   "(%d live, desired %d)", plan->live, plan->desired);
		a->event = "scale_in_unblocked";
	}
	st->busy_held = plan->busy_held > 0;
}

/*
 * With a warm pool, the decision says how its scale-out was served (what
 * `explain` shows): drawn warm, started cold, and why cold.
 */
static void
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
		dec = add(plan, CONVERGE_EVENT, 0, "%d more instance%s for the "
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

void
converge_group(const struct converge_input *in, struct converge_state *st,
	       struct converge_plan *plan)
{
	enum store_instance_state *state;
	bool *due;
	int extra = 0;

	memset(plan, 0, sizeof(*plan));
	plan->desired = in->desired;
	plan->load = NAN;
	/* the states as the plan changes them */
	state = xcalloc(in->n ? in->n : 1, sizeof(*state));
	due = xcalloc(in->n ? in->n : 1, sizeof(*due));
	for (size_t i = 0; i < in->n; i++)
		state[i] = in->v[i].state;
	if (in->manual)
		policy_state_note_change(st->pst, in->now_ms, in->manual_from,
					 in->desired);
	if (!in->paused) {
		plan_hooks(in, state, plan);
		plan_health(in, state, plan);
		plan_decision(in, state, st, plan);
	}
	for (size_t i = 0; i < in->n; i++) {
		if (converge_state_live(state[i]))
			plan->live++;
		if (state[i] == STORE_INSTANCE_READY)
			plan->ready++;
	}
	if (!in->paused) {
		extra = converge_refresh(in, state, due, plan);
		if (plan->live < plan->desired + extra) {
			int missing = plan->desired + extra - plan->live;

			missing -= plan_draw(in, state, missing, plan);
			plan_grow(in, st, missing, false, plan);
			note_served(in, state, plan);
		} else if (plan->live > plan->desired + extra) {
			plan_shrink(in, state, plan->have_refresh ? due : NULL,
				    plan->live - plan->desired - extra, plan);
		}
		plan_busy_veto(in, st, plan);
		plan_pool(in, st, state, plan);
	}
	for (size_t i = 0; i < in->n; i++) {
		if (state[i] == STORE_INSTANCE_WARMING)
			plan->warming++;
		else if (state[i] == STORE_INSTANCE_WARM)
			plan->warm++;
	}
	free(state);
	free(due);
}
