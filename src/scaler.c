/*
 * scaler.c: per group and per decision interval: health checks, the
 * decision (policy_decide, the same engine `simulate` runs), and
 * convergence of the group's instances towards the desired size (new
 * instances placed and handed to the workers; surplus ones drained).
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon_int.h"
#include "log.h"
#include "metrics.h"
#include "rates.h"
#include "scalein.h"
#include "util.h"

LOG_TAG("scaler");

/* At most this many new instances are started per group and tick. */
#define MAX_STARTS_PER_TICK 8
/* After a failed provisioning, wait this long (doubling) before retrying. */
#define PROVISION_BACKOFF_MS 10000
#define PROVISION_BACKOFF_MAX_MS 300000

bool
scaler_state_live(enum store_instance_state st)
{
	switch (st) {
	case STORE_INSTANCE_REQUESTED:
	case STORE_INSTANCE_PROVISIONING:
	case STORE_INSTANCE_BOOTING:
	case STORE_INSTANCE_READY:
	case STORE_INSTANCE_UNHEALTHY:
		return true;
	default:
		return false;
	}
}

/* Placement records of the group's hosts, from the last measurements. */
static struct va_placement_host *
placement_hosts(struct daemon *d, const struct dgroup *g,
		const struct store_instance_list *all, size_t *n_out)
{
	const struct config_group *gc = g->cfg;
	struct va_placement_host *v = xcalloc(gc->hosts.n ? gc->hosts.n : 1,
					      sizeof(*v));

	for (unsigned i = 0; i < gc->hosts.n; i++) {
		const struct config_host *hc = gc->host_ptrs[i];
		struct dhost *dh = daemon_host(d, hc->name);
		struct va_placement_host *p = &v[i];

		p->name = hc->name;
		p->cpu_overcommit = hc->cpu_overcommit;
		p->mem_overcommit = hc->memory_overcommit;
		p->reserved_memory = hc->reserved_memory;
		p->max_instances = (uint32_t)hc->max_instances;
		p->cpu_use = -1;
		if (!dh || !host_is_up(dh->h)) {
			p->up = 0;
			p->down_reason = "not connected";
			continue;
		}
		if (!dh->cap_ok ||
		    !(dh->cap.present & (1u << COLLECT_CAP_NODEINFO))) {
			p->up = 0;
			p->down_reason = "not measured yet";
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
		p->vcpus_alloc = dh->cap.vcpus_alloc;
		p->mem_alloc = dh->cap.mem_alloc_kib * 1024;
		for (size_t k = 0; k < all->n; k++) {
			const struct store_instance *in = &all->v[k];

			if (!in->host || strcmp(in->host, hc->name) != 0)
				continue;
			p->instances++;
			if (strcmp(in->group, gc->name) == 0)
				p->group_instances++;
			/* Not running yet: the collector did not count it. */
			if (in->state == STORE_INSTANCE_REQUESTED ||
			    in->state == STORE_INSTANCE_PROVISIONING) {
				p->vcpus_alloc += (uint32_t)gc->template.vcpus;
				p->mem_alloc += gc->template.memory;
			}
		}
	}
	*n_out = gc->hosts.n;
	return v;
}

static struct va_placement_request
placement_request(const struct dgroup *g, uint32_t seq)
{
	struct va_placement_request r = {
		.group = g->cfg->name,
		.vcpus = (uint32_t)g->cfg->template.vcpus,
		.memory = g->cfg->template.memory,
		.seq = seq,
	};

	return r;
}

/* How many more instances the hosts could take (bounded); -1 unknown. */
static int
capacity_left(const struct dgroup *g, const struct va_placement_host *hosts,
	      size_t n)
{
	struct va_placement_request req = placement_request(g, 0);
	struct va_placement_host *tmp;
	int left = 0, measured = 0;

	tmp = xcalloc(n ? n : 1, sizeof(*tmp));
	memcpy(tmp, hosts, n * sizeof(*tmp));
	for (size_t i = 0; i < n; i++) {
		if (!tmp[i].up)
			continue;
		measured++;
		while (left < g->cfg->max && place_host_check(&tmp[i], &req, NULL)) {
			place_host_commit(&tmp[i], &req);
			left++;
		}
	}
	free(tmp);
	return measured ? left : -1;
}

/* Health: instances that never checked in, or stopped heartbeating. */
static void
health_check(struct daemon *d, struct dgroup *g, struct store_instance_list *l,
	     int64_t wall)
{
	const struct config_health *h = &g->cfg->health;
	int live = 0, replacing = 0, budget;

	for (size_t i = 0; i < l->n; i++) {
		struct store_instance *in = &l->v[i];
		const char *why = NULL;
		char buf[160];

		if (scaler_state_live(in->state))
			live++;
		if (in->state == STORE_INSTANCE_BOOTING &&
		    wall - in->created_ms > h->ready_within_ms) {
			snprintf(buf, sizeof(buf),
				 "did not check in within %" PRId64 " s of its creation",
				 h->ready_within_ms / 1000);
			why = buf;
		} else if (in->state == STORE_INSTANCE_READY &&
			   h->heartbeat_timeout_ms > 0 &&
			   wall - (in->heartbeat_ms ? in->heartbeat_ms : in->ready_ms) >
				   h->heartbeat_timeout_ms) {
			snprintf(buf, sizeof(buf),
				 "no heartbeat for more than %" PRId64 " s",
				 h->heartbeat_timeout_ms / 1000);
			why = buf;
		}
		if (!why)
			continue;
		if (store_instance_set_state(d->store, in->id, in->state,
					     STORE_INSTANCE_UNHEALTHY) != STORE_OK) {
			log_warn("instance %s: cannot mark unhealthy: %s", in->id,
				 err_msg());
			continue;
		}
		in->state = STORE_INSTANCE_UNHEALTHY;
		daemon_event(d, g->cfg->name, in->id, "unhealthy", NULL, "%s",
			     why);
	}
	if (!h->replace)
		return;
	/* Replace unhealthy instances, but never too many at once: a
	 * network partition must not make us replace the whole group. */
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].state == STORE_INSTANCE_DRAINING ||
		    l->v[i].state == STORE_INSTANCE_DELETING)
			replacing++;
	budget = h->max_replace;
	{
		int share = (int)((double)(live > 0 ? live : 1) *
				  h->max_replace_share / 100.0);

		if (share < 1)
			share = 1;
		if (share < budget)
			budget = share;
	}
	for (size_t i = 0; i < l->n; i++) {
		struct store_instance *in = &l->v[i];

		if (in->state != STORE_INSTANCE_UNHEALTHY ||
		    jobs_busy_with(d->jobs, in->id))
			continue;
		if (replacing >= budget) {
			log_debug("group %s: %d replacements under way, the limit is %d",
				  g->cfg->name, replacing, budget);
			break;
		}
		if (store_instance_set_state(d->store, in->id,
					     STORE_INSTANCE_UNHEALTHY,
					     STORE_INSTANCE_DELETING) != STORE_OK)
			continue;
		in->state = STORE_INSTANCE_DELETING;
		daemon_event(d, g->cfg->name, in->id, "replace", NULL,
			     "removing unhealthy instance; a new one takes its place");
		jobs_remove(d, in, 0);
		replacing++;
	}
}

static void
decide(struct daemon *d, struct dgroup *g, const struct store_instance_list *l,
       const struct va_placement_host *hosts, size_t n_hosts, int64_t now,
       int64_t wall)
{
	const struct policy_params *p = &g->cfg->policy;
	struct policy_instance_sample *samples;
	struct policy_input in;
	struct policy_decision dec;
	struct rates_group agg;
	unsigned n = 0;
	time_t t = (time_t)(wall / 1000);

	memset(&in, 0, sizeof(in));
	in.now_ms = now;
	in.have_local_time = localtime_r(&t, &in.local_time) != NULL;
	in.desired = g->desired;
	samples = xcalloc(l->n ? l->n : 1, sizeof(*samples));
	rates_group_init(&agg);
	for (size_t i = 0; i < l->n; i++) {
		const struct store_instance *si = &l->v[i];
		struct policy_instance_sample *s = &samples[n];
		unsigned char uuid[16];
		struct rates_window w;

		if (!scaler_state_live(si->state))
			continue;
		n++;
		if (si->state != STORE_INSTANCE_READY)
			continue;
		s->ready = true;
		/* store times are wall clock; the engine's are monotonic */
		s->ready_ms = now - (wall - (si->ready_ms ? si->ready_ms : wall));
		if (util_uuid_parse(si->id, uuid) != 0 ||
		    mstore_query(d->mstore, uuid, now - p->interval_ms, now, &w) != 0)
			continue;
		rates_group_add(&agg, &w);
		for (int m = 0; m < POLICY_METRIC_LAST; m++) {
			enum rates_metric rm = rates_from_policy((enum policy_metric)m);

			if (w.present & (1u << rm)) {
				s->metric[m] = w.mean[rm];
				s->metric_present[m] = true;
			}
		}
	}
	in.capacity_left = capacity_left(g, hosts, n_hosts);
	rates_group_finish(&agg);
	g->agg = agg;
	policy_input_from_instances(&in, p, samples, n);
	free(samples);
	policy_decide(p, &in, g->pst, &dec);

	pthread_mutex_lock(&d->lock);
	g->last = dec;
	g->have_last = true;
	memcpy(g->metric, in.metric, sizeof(g->metric));
	memcpy(g->metric_present, in.metric_present, sizeof(g->metric_present));
	pthread_mutex_unlock(&d->lock);

	if (dec.to != g->desired) {
		struct strbuf msg = STRBUF_INIT;

		policy_decision_format(&dec, p, &msg);
		if (store_group_set_desired(d->store, g->cfg->name, dec.to) !=
		    STORE_OK) {
			log_error("group %s: cannot store the desired size: %s",
				  g->cfg->name, err_msg());
			strbuf_release(&msg);
			return;
		}
		pthread_mutex_lock(&d->lock);
		g->desired = dec.to;
		pthread_mutex_unlock(&d->lock);
		daemon_event(d, g->cfg->name, NULL, "decision", NULL, "%s",
			     strbuf_str(&msg));
		memset(g->last_hold_key, 0xff, sizeof(g->last_hold_key));
		strbuf_release(&msg);
	} else if (dec.recommendation >= 0 && dec.recommendation != dec.from) {
		/* Something wanted a change and damping or capacity held it:
		 * worth recording once, not every interval while it lasts. */
		int key[4] = {dec.from, dec.recommendation, dec.stabilized,
			      dec.limited};

		if (memcmp(key, g->last_hold_key, sizeof(key)) != 0) {
			struct strbuf msg = STRBUF_INIT;

			policy_decision_format(&dec, p, &msg);
			daemon_event(d, g->cfg->name, NULL, "decision", NULL,
				     "%s", strbuf_str(&msg));
			memcpy(g->last_hold_key, key, sizeof(key));
			strbuf_release(&msg);
		}
	} else {
		memset(g->last_hold_key, 0xff, sizeof(g->last_hold_key));
	}
}

/* a + 1 for an address of 4 or 16 bytes (false on overflow) */
static bool
addr_next(unsigned char *a, size_t len)
{
	for (size_t i = len; i-- > 0;)
		if (++a[i] != 0)
			return true;
	return false;
}

static bool
address_used(const struct store_instance_list *l, char **taken, size_t n_taken,
	     const char *addr)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].state != STORE_INSTANCE_GONE && l->v[i].address &&
		    strcmp(l->v[i].address, addr) == 0)
			return true;
	for (size_t i = 0; i < n_taken; i++)
		if (strcmp(taken[i], addr) == 0)
			return true;
	return false;
}

/*
 * The lowest address of the group's static range that no instance of the
 * group holds (instances that are gone give theirs back). 0, or -1 when
 * the range is exhausted.
 */
int
scaler_allocate_address(const struct config_static_addresses *sa,
		 const struct store_instance_list *l, char **taken,
		 size_t n_taken, char out[46])
{
	unsigned char cur[16], last[16];
	size_t len = sa->family == AF_INET6 ? 16 : 4;

	if (inet_pton(sa->family, sa->first, cur) != 1 ||
	    inet_pton(sa->family, sa->last, last) != 1)
		return -1;
	for (;;) {
		inet_ntop(sa->family, cur, out, INET6_ADDRSTRLEN);
		if (!address_used(l, taken, n_taken, out))
			return 0;
		if (memcmp(cur, last, len) >= 0 || !addr_next(cur, len))
			return -1;
	}
}

/* Start new instances up to the desired size. */
static void
grow(struct daemon *d, struct dgroup *g, int missing,
     struct va_placement_host *hosts, size_t n_hosts, int64_t now,
     const struct store_instance_list *l)
{
	const struct config_static_addresses *sa = &g->cfg->cloud_init.static_addresses;
	char *taken[MAX_STARTS_PER_TICK];
	size_t n_taken = 0;

	if (now < g->provision_backoff_until_ms)
		return;
	if (missing > MAX_STARTS_PER_TICK)
		missing = MAX_STARTS_PER_TICK;
	for (int k = 0; k < missing; k++) {
		struct va_placement_request req = placement_request(g, (uint32_t)k);
		struct store_instance si;
		char id[STORE_ID_LEN + 1];
		char domain[STORE_DOMAIN_MAX + 1];
		char address[INET6_ADDRSTRLEN] = "";
		size_t chosen;
		enum place_result pr;

		if (store_instance_new_id(id) != STORE_OK) {
			log_error("cannot mint an instance id: %s", err_msg());
			break;
		}
		req.instance_id = id;
		if (sa->present &&
		    scaler_allocate_address(sa, l, taken, n_taken, address) != 0) {
			if (!g->hosts_full)
				daemon_event(d, g->cfg->name, NULL, "addresses_full",
					     NULL, "every address of %s is in use",
					     sa->range);
			g->hosts_full = true;
			break;
		}
		pr = place_choose(g->place, &req, hosts, n_hosts, &chosen);
		if (pr != PLACE_OK) {
			char msg[1024];

			snprintf(msg, sizeof(msg), "%s", err_msg());
			log_complain(&g->full_complaint, LOG_LEVEL_WARN, "scaler",
				     "group %s: cannot place a new instance: %s",
				     g->cfg->name, msg);
			if (!g->hosts_full) {
				/* once per episode; the log line repeats,
				 * rate-limited, while it lasts */
				daemon_event(d, g->cfg->name, NULL,
					     pr == PLACE_FULL ? "hosts_full"
							      : "placement_error",
					     NULL, "%s", msg);
				g->hosts_full = true;
			}
			break;
		}
		log_complain_clear(&g->full_complaint, "scaler",
				   "group %s: hosts have room again", g->cfg->name);
		g->hosts_full = false;
		snprintf(domain, sizeof(domain), "%s-%.8s",
			 g->cfg->template.name_prefix, id);
		memset(&si, 0, sizeof(si));
		si.id = id;
		si.group = g->cfg->name;
		si.host = (char *)hosts[chosen].name;
		si.domain = domain;
		si.state = STORE_INSTANCE_REQUESTED;
		si.config_gen = d->config_gen;
		si.address = sa->present ? address : NULL;
		if (store_instance_put(d->store, &si) != STORE_OK) {
			log_error("group %s: cannot record a new instance: %s",
				  g->cfg->name, err_msg());
			break;
		}
		if (sa->present)
			taken[n_taken++] = xstrdup(address);
		place_host_commit(&hosts[chosen], &req);
		daemon_event(d, g->cfg->name, id, "provision", NULL,
			     "new instance %s placed on %s by %s", domain,
			     hosts[chosen].name, place_strategy_name(g->place));
		jobs_provision(d, g, daemon_host(d, hosts[chosen].name), id,
			       sa->present ? address : NULL);
	}
	for (size_t i = 0; i < n_taken; i++)
		free(taken[i]);
}

static int
state_rank(enum store_instance_state st)
{
	/* who goes first on scale-in: not yet serving before serving */
	switch (st) {
	case STORE_INSTANCE_UNHEALTHY:
		return 0;
	case STORE_INSTANCE_BOOTING:
		return 1;
	default:
		return 2;
	}
}

/* Remove instances above the desired size. */
static void
shrink(struct daemon *d, struct dgroup *g, struct store_instance_list *l,
       int surplus, int64_t wall)
{
	struct scalein_instance *cand = xcalloc(l->n ? l->n : 1, sizeof(*cand));
	size_t *order = xcalloc(l->n ? l->n : 1, sizeof(*order));
	size_t *map = xcalloc(l->n ? l->n : 1, sizeof(*map));
	size_t n = 0, chosen;

	/* Unhealthy and booting instances go first, then the group's order
	 * among ready ones (busy ones are protected by scalein_choose). */
	for (int rank = 0; rank <= 2 && surplus > 0; rank++) {
		n = 0;
		for (size_t i = 0; i < l->n; i++) {
			struct store_instance *in = &l->v[i];

			if (!scaler_state_live(in->state) ||
			    state_rank(in->state) != rank ||
			    in->state == STORE_INSTANCE_REQUESTED ||
			    in->state == STORE_INSTANCE_PROVISIONING ||
			    jobs_busy_with(d->jobs, in->id))
				continue;
			cand[n].id = in->id;
			cand[n].host = in->host;
			cand[n].created_ms = in->created_ms;
			cand[n].busy = in->busy;
			cand[n].busy_since_ms = in->busy_since_ms;
			map[n] = i;
			n++;
		}
		if (!n)
			continue;
		chosen = scalein_choose(cand, n,
					(enum scalein_order)g->cfg->scale_in.order,
					(size_t)surplus, wall,
					g->cfg->health.busy_max_ms, order);
		for (size_t k = 0; k < chosen; k++) {
			struct store_instance *in = &l->v[map[order[k]]];
			enum store_instance_state to =
				in->state == STORE_INSTANCE_READY
					? STORE_INSTANCE_DRAINING
					: STORE_INSTANCE_DELETING;

			if (store_instance_set_state(d->store, in->id, in->state,
						     to) != STORE_OK) {
				log_warn("instance %s: cannot start removal: %s",
					 in->id, err_msg());
				continue;
			}
			in->state = to;
			surplus--;
			daemon_event(d, g->cfg->name, in->id, "scale_in", NULL,
				     "removing %s from %s (order %s%s)",
				     in->domain ? in->domain : in->id,
				     in->host ? in->host : "?",
				     scalein_order_name((enum scalein_order)g->cfg->scale_in.order),
				     in->busy ? ", busy for too long" : "");
			jobs_remove(d, in, g->cfg->scale_in.drain_ms);
		}
	}
	if (surplus > 0)
		log_debug("group %s: %d more to remove once busy instances are free",
			  g->cfg->name, surplus);
	free(cand);
	free(order);
	free(map);
}

static void
group_tick(struct daemon *d, struct dgroup *g,
	   const struct store_instance_list *all, int64_t now, int64_t wall)
{
	struct store_instance_filter f = {.group = g->cfg->name};
	struct store_instance_list l = {0};
	struct va_placement_host *hosts;
	size_t n_hosts;
	int live = 0, ready = 0;
	bool paused;

	if (store_instance_list(d->store, &f, &l) != STORE_OK) {
		log_error("group %s: cannot list instances: %s", g->cfg->name,
			  err_msg());
		return;
	}
	pthread_mutex_lock(&d->lock);
	paused = g->paused;
	if (g->manual_pending) {
		/* `scale` changed the size: the windows and the cooldown
		 * must hold it, or the next decision would undo it. */
		policy_state_note_change(g->pst, now, g->manual_from, g->desired);
		g->manual_pending = false;
	}
	pthread_mutex_unlock(&d->lock);
	hosts = placement_hosts(d, g, all, &n_hosts);
	if (!paused) {
		health_check(d, g, &l, wall);
		decide(d, g, &l, hosts, n_hosts, now, wall);
	}
	for (size_t i = 0; i < l.n; i++) {
		if (scaler_state_live(l.v[i].state))
			live++;
		if (l.v[i].state == STORE_INSTANCE_READY)
			ready++;
	}
	if (!paused) {
		if (live < g->desired)
			grow(d, g, g->desired - live, hosts, n_hosts, now, &l);
		else if (live > g->desired)
			shrink(d, g, &l, live - g->desired, wall);
	}
	pthread_mutex_lock(&d->lock);
	g->current = live;
	g->ready = ready;
	pthread_mutex_unlock(&d->lock);
	metrics_set_group(g->cfg->name, g->desired, live, ready, &g->agg);
	free(hosts);
	store_instance_list_release(&l);
}

void
scaler_tick(struct daemon *d, int64_t now)
{
	struct store_instance_list all = {0};
	struct store_instance_filter f = {0};
	int64_t wall = util_wall_ms();
	bool listed = false;

	for (unsigned i = 0; i < d->n_groups; i++) {
		struct dgroup *g = &d->groups[i];

		if (now < g->next_decide_ms)
			continue;
		g->next_decide_ms = now + g->cfg->policy.interval_ms;
		if (!listed) {
			/* every group's placement needs all hosts' counts */
			f.state_mask = 0;
			for (int st = 0; st < STORE_INSTANCE_LAST; st++)
				if (scaler_state_live((enum store_instance_state)st) ||
				    st == STORE_INSTANCE_DRAINING)
					f.state_mask |= STORE_STATE_BIT(st);
			if (store_instance_list(d->store, &f, &all) != STORE_OK) {
				log_error("cannot list instances: %s", err_msg());
				return;
			}
			listed = true;
		}
		group_tick(d, g, &all, now, wall);
	}
	store_instance_list_release(&all);
}

void
scaler_provision_result(struct daemon *d, const char *group, bool ok)
{
	struct dgroup *g = daemon_group(d, group);
	int64_t wait;

	if (!g)
		return;
	if (ok) {
		g->provision_failures = 0;
		g->provision_backoff_until_ms = 0;
		return;
	}
	g->provision_failures++;
	wait = PROVISION_BACKOFF_MS;
	for (unsigned i = 1; i < g->provision_failures && wait < PROVISION_BACKOFF_MAX_MS; i++)
		wait *= 2;
	if (wait > PROVISION_BACKOFF_MAX_MS)
		wait = PROVISION_BACKOFF_MAX_MS;
	g->provision_backoff_until_ms = util_now_ms() + wait;
}
