/*
 * converge.c: the pure planner of one group (converge.h). Data in,
 * actions out; the scaler (scaler.c) does the I/O. This file has the
 * plan's steps in order (converge_group()), health, the decision and
 * growing; scale-in is in converge_shrink.c, the warm pool in
 * converge_warm.c, lifecycle hooks in converge_hooks.c (converge_int.h).
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge_int.h"
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

struct converge_action *
converge_add(struct converge_plan *plan, enum converge_action_kind kind, size_t inst,
	     const char *fmt, ...)
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
			struct converge_action *a = converge_add(plan, CONVERGE_REMOVE, i,
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
			struct converge_action *a = converge_add(plan, CONVERGE_REMOVE, i,
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
			converge_add(plan, CONVERGE_MARK_UNHEALTHY, i,
				     "did not check in within %" PRId64 " s of its creation",
				     h->ready_within_ms / 1000);
			state[i] = STORE_INSTANCE_UNHEALTHY;
			continue;
		}
		last = ci->heartbeat_ms ? ci->heartbeat_ms : ci->ready_ms;
		if (state[i] == STORE_INSTANCE_READY &&
		    h->heartbeat_timeout_ms > 0 &&
		    in->wall_ms - last > h->heartbeat_timeout_ms) {
			converge_add(plan, CONVERGE_MARK_UNHEALTHY, i,
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
		converge_add(plan, CONVERGE_REPLACE, i,
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
		a = converge_add(plan, CONVERGE_SET_DESIRED, 0, "%s", strbuf_str(&msg));
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
			a = converge_add(plan, CONVERGE_EVENT, 0, "%s", strbuf_str(&msg));
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

/* ---- growing ------------------------------------------------------------- */

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
void
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
				a = converge_add(plan, CONVERGE_EVENT, 0, "%s", st->why);
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
				a = converge_add(plan, CONVERGE_EVENT, 0, "%s", st->why);
				a->event = pr == PLACE_FULL ? "hosts_full"
							    : "placement_error";
			}
			st->full = true;
			break;
		}
		st->full = false;
		st->why[0] = '\0';
		place_host_commit(&in->hosts[chosen], &req);
		a = converge_add(plan, CONVERGE_START, (size_t)k, "placed on %s%s",
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
