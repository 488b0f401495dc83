/*
 * reconcile.c: make the state store and what libvirt runs agree.
 *
 * At start (reconcile_startup): journaled actions that a previous run
 * left half done are finished (a started domain becomes 'booting'; a
 * removal is completed) or rolled back (a provisioning that did not reach
 * the start is undone, volumes included); instances that were requested
 * but never provisioned end (recover.c). Then the hosts are compared, as every
 * reconciliation period afterwards (reconciler_tick):
 *   - a domain whose metadata names another installation (owner= is not
 *     this store's id, docs/state.md) is someone else's: it is reported
 *     once and never adopted, removed or otherwise touched;
 *   - a domain with our metadata that the store does not know is adopted
 *     (running: ready; not running: unhealthy, so health replaces it);
 *     one without owner= (made before installation ids) too, with a
 *     warning; one of a group that is not configured is reported and left
 *     alone;
 *   - a domain of ours without owner= (adopted, or known to the store) gets
 *     our owner id written into its metadata, once;
 *   - a domain whose instance the store says is gone or deleting is removed;
 *   - an instance whose domain is missing from its (reachable) host is
 *     marked lost and cleaned up, so the group replaces it;
 *   - a ready instance whose domain is not running becomes unhealthy;
 *   - volumes named like ours (<uuid>.qcow2, <uuid>-seed.iso) of an
 *     instance the store knows as gone are deleted; ones the store does not
 *     know are reported and left alone (another daemon may share the pool).
 * Nothing here touches an instance that a worker is busy with. The rules
 * are reconcile_plan.c's, a pure function with table tests; this file is
 * the shell that gathers its inputs and applies its actions.
 *
 * How a pass goes, per host (struct rhost):
 *   1. due (every reconcile period) and the host up: on the loop, the
 *      store's rows of the host (one query) and the ids a worker is busy
 *      with are noted, then inventory.c lists the host in a thread of its
 *      own, on a connection of its own: a few calls per host, our
 *      metadata from its cache. The loop goes on.
 *   2. finished (reconciler_tick() finds it, never waiting): on the loop,
 *      rows for the ids the pass found that the host's rows lack are read,
 *      the planner runs, and the actions are applied: store writes
 *      (compare-and-set from the state the plan saw; a removal or an
 *      adoption reads its row again first), events, removals (at once
 *      with recover_remove_now(), or a job with jobs_remove()), and the
 *      rare volume deletion and metadata write (claim) on the loop's own
 *      connection.
 * A host that does not answer holds its own pass only; a pass running
 * past a few periods is reported (rate-limited) and the next one waits
 * for it. Between the rows (step 1) and the actions (step 2), jobs may
 * have run: the planner uses the rows of step 1 for what it concludes from
 * absence, and the ids busy at step 1 or 2 count as busy.
 *
 * Threads: everything here runs on the daemon's loop but the inventory
 * passes, which share nothing with it but their result (inventory.h).
 */
#include "reconcile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "daemon_int.h"
#include "domxml.h"
#include "inventory.h"
#include "log.h"
#include "members.h"
#include "reconcile_plan.h"
#include "recover.h"
#include "util.h"
#include "volume.h"

LOG_TAG("reconcile");

/* How long reconcile_startup() waits for the first passes. */
#define STARTUP_WAIT_MS 30000
/* A pass running longer than this many periods is reported. */
#define STUCK_PERIODS 3
/* how long past its due time a pass waits for a collector round (reconciler_tick) */
#define PASS_WAIT_MS 2000

/* A host's reconciliation state. */
struct rhost {
	struct dhost *dh;                  /* in d->hosts (never moves) */
	struct inventory *inv;
	struct store_instance_list rows;   /* read when the pass started */
	char (*busy)[STORE_ID_LEN + 1];    /* busy then; sorted */
	size_t n_busy;
	char **reported;                   /* foreign keys said once */
	size_t n_reported;
	bool warned_unknown_volumes;
	/* the last pass planned nothing, from these: the same again plans
	 * nothing again (the planner is pure), so it is not run */
	bool settled;
	unsigned char settled_digest[32]; /* the inventory's */
	int64_t settled_gen;               /* the rows' (store generation) */
	int64_t settled_config_gen;
	struct log_complain claim_complaint; /* owner id not written */
	struct log_complain dup_complaint;   /* copies of one instance */
	struct log_complain pass_complaint;  /* listing failed or stuck */
};

struct reconciler {
	struct daemon *d;
	struct rhost *hosts;
	unsigned n_hosts;
	int64_t next_ms;
};

/* ---- the reconciler ---------------------------------------------------- */

/* Drop what was noted when the pass started (applied or given up). */
static void
pass_forget(struct rhost *rh)
{
	store_instance_list_release(&rh->rows);
	free(rh->busy);
	rh->busy = NULL;
	rh->n_busy = 0;
}

struct reconciler *
reconciler_new(struct daemon *d)
{
	struct reconciler *r = xcalloc(1, sizeof(*r));

	r->d = d;
	r->n_hosts = d->n_hosts;
	r->hosts = xcalloc(d->n_hosts + 1, sizeof(*r->hosts));
	for (unsigned i = 0; i < d->n_hosts; i++) {
		r->hosts[i].dh = &d->hosts[i];
		r->hosts[i].inv = inventory_new(d->hosts[i].cfg->name,
						d->hosts[i].cfg->uri);
		/* user networking: no address a load balancer could use */
		inventory_set_addresses(r->hosts[i].inv,
					!d->hosts[i].cfg->user_net);
	}
	return r;
}

void
reconciler_free(struct reconciler *r)
{
	if (!r)
		return;
	for (unsigned i = 0; i < r->n_hosts; i++) {
		struct rhost *rh = &r->hosts[i];

		inventory_free(rh->inv); /* a pass still running is abandoned */
		pass_forget(rh);
		for (size_t k = 0; k < rh->n_reported; k++)
			free(rh->reported[k]);
		free(rh->reported);
	}
	free(r->hosts);
	free(r);
}

/* ---- applying a plan --------------------------------------------------- */

/* Busy when the pass started, or now (both sorted lists of ids). */
struct busy_arg {
	const struct rhost *rh;
	char (*now)[STORE_ID_LEN + 1];
	size_t n_now;
};

static int
id_cmp(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static bool
busy_cb(void *arg, const char *id)
{
	const struct busy_arg *b = arg;

	if (b->rh->n_busy && bsearch(id, b->rh->busy, b->rh->n_busy,
				     sizeof(*b->rh->busy), id_cmp))
		return true;
	return b->n_now && bsearch(id, b->now, b->n_now, sizeof(*b->now), id_cmp);
}

/* Whether the store adopted the domain. */
static bool
adopt(struct daemon *d, struct rhost *rh, const struct reconcile_action *a)
{
	const struct inventory_domain *dom = a->dom;
	const char *host = rh->dh->cfg->name;
	struct store_instance si;
	bool legacy = a->legacy;
	int rc;

	/* a job may have created it since the pass: only the unknown */
	rc = store_instance_get(d->store, a->id, &si);
	if (rc != STORE_E_NOTFOUND) {
		if (rc == STORE_OK)
			store_instance_release(&si);
		return false;
	}
	memset(&si, 0, sizeof(si));
	si.id = (char *)a->id;
	si.group = (char *)dom->meta->group;
	si.host = (char *)host;
	si.domain = dom->name;
	si.state = a->to;
	si.config_gen = (int64_t)dom->meta->generation;
	si.notes = !legacy
			   ? (char *)"adopted: found on its host, unknown to the store"
			   : (char *)"adopted: found on its host, unknown to the "
				     "store, without an owner id (older version)";
	if (store_instance_put(d->store, &si) != STORE_OK) {
		log_warn("cannot adopt %s: %s", dom->name, err_msg());
		return false;
	}
	if (legacy)
		log_warn("host %s: domain %s (group '%s') has no owner id in its metadata: a virt-autoscaler older than installation ids made it; adopted as ours (if another installation shares this host with the same group name, check that it is not theirs)",
			 host, dom->name, dom->meta->group);
	event_record(d->store, dom->meta->group, a->id, "adopted", NULL,
		     "%s found on %s with our metadata%s but not in the state store: adopted as %s",
		     dom->name, host,
		     legacy ? " (no owner id: made by an older version)" : "",
		     a->to == STORE_INSTANCE_READY ? "ready" : "unhealthy");
	return true;
}

/*
 * Write our owner id into the metadata of a domain of ours that a version
 * before installation ids made, so that from now on no other installation
 * sharing the host takes it for one of its own old domains. On the loop's
 * own connection: three calls, once per such domain.
 */
static void
claim(struct daemon *d, struct rhost *rh, const struct inventory_domain *dom)
{
	const char *host = rh->dh->cfg->name;
	struct domxml_meta mine = *dom->meta;
	virConnectPtr conn = host_conn_own(rh->dh->h);
	virDomainPtr vd = NULL;
	unsigned flags = 0;
	char *el = NULL;

	snprintf(mine.owner, sizeof(mine.owner), "%s", d->owner);
	if (domxml_meta_format(&mine, &el) < 0) {
		log_complain(&rh->claim_complaint, LOG_LEVEL_WARN, log_tag,
			     "host %s: domain %s: %s", host, dom->name,
			     err_msg());
		goto cleanup;
	}
	if (!conn)
		goto cleanup;
	vd = dom->uuid[0] ? virDomainLookupByUUIDString(conn, dom->uuid)
			  : virDomainLookupByName(conn, dom->name);
	if (vd && virDomainIsPersistent(vd) == 1)
		flags |= VIR_DOMAIN_AFFECT_CONFIG;
	if (dom->active)
		flags |= VIR_DOMAIN_AFFECT_LIVE;
	if (!vd || virDomainSetMetadata(vd, VIR_DOMAIN_METADATA_ELEMENT, el,
					DOMXML_NS_PREFIX, DOMXML_NS_URI,
					flags) < 0) {
		log_complain(&rh->claim_complaint, LOG_LEVEL_WARN, log_tag,
			     "host %s: cannot write our owner id into the metadata of domain %s: %s",
			     host, dom->name, virGetLastErrorMessage());
		virResetLastError();
	} else {
		log_info("host %s: domain %s: our owner id %s written into its metadata (a version before installation ids made it)",
			 host, dom->name, d->owner);
		inventory_forget(rh->inv, dom->uuid); /* read it again */
	}
cleanup:
	if (vd)
		virDomainFree(vd);
	if (conn)
		virConnectClose(conn);
	free(el);
}

/* The domain of a gone, deleting or lost instance: remove it, end it. */
static void
remove_domain(struct daemon *d, struct rhost *rh,
	      const struct reconcile_action *a)
{
	const char *host = rh->dh->cfg->name;
	struct store_instance si;

	/* a job may have moved it on since the pass began */
	if (store_instance_get(d->store, a->id, &si) != STORE_OK)
		return;
	if (si.state == a->row->state &&
	    recover_remove_now(d, host, a->dom->name, a->id) == 0) {
		recover_end_instance(d, &si);
		event_record(d->store, si.group, si.id, "reconcile", NULL,
			     "%s was still on %s although the instance is %s: removed",
			     a->dom->name, host,
			     store_instance_state_name(si.state));
	}
	store_instance_release(&si);
}

static void
mark_lost(struct daemon *d, struct rhost *rh, const struct reconcile_action *a)
{
	struct store_instance si = *a->row; /* borrowed strings */

	if (store_instance_set_state(d->store, si.id, si.state,
				     STORE_INSTANCE_LOST) != STORE_OK)
		return;
	event_record(d->store, si.group, si.id, "lost", NULL,
		     "%s is gone from %s; the group replaces it",
		     si.domain ? si.domain : si.id, rh->dh->cfg->name);
	si.state = STORE_INSTANCE_LOST;
	if (store_instance_set_state(d->store, si.id, STORE_INSTANCE_LOST,
				     STORE_INSTANCE_DELETING) == STORE_OK)
		scaler_remove(d, &si, 0);
}

static void
delete_volume(struct daemon *d, struct rhost *rh,
	      const struct reconcile_action *a)
{
	const struct config_host *hc = rh->dh->cfg;
	virConnectPtr conn = host_conn_own(rh->dh->h);

	if (!conn)
		return;
	if (volume_delete(conn, hc->pool, a->volume) == 0)
		event_record(d->store, NULL, a->id, "reconcile", NULL,
			     "deleted orphaned volume %s from pool %s on %s",
			     a->volume, hc->pool, hc->name);
	else
		log_debug("%s", err_msg());
	virConnectClose(conn);
}

static void
apply(struct daemon *d, struct rhost *rh, const struct reconcile_action *a)
{
	const char *host = rh->dh->cfg->name;
	const struct inventory_domain *dom = a->dom;

	switch (a->kind) {
	case RECONCILE_ADOPT:
		if (adopt(d, rh, a) && a->legacy)
			claim(d, rh, dom);
		break;
	case RECONCILE_CLAIM:
		claim(d, rh, dom);
		break;
	case RECONCILE_REMOVE_DOMAIN:
		remove_domain(d, rh, a);
		break;
	case RECONCILE_MARK_UNHEALTHY:
		if (store_instance_set_state(d->store, a->id,
					     STORE_INSTANCE_READY,
					     STORE_INSTANCE_UNHEALTHY) == STORE_OK)
			event_record(d->store, a->row->group, a->id, "unhealthy", NULL,
				     "%s is not running on %s", dom->name, host);
		break;
	case RECONCILE_MARK_LOST:
		mark_lost(d, rh, a);
		break;
	case RECONCILE_DELETE_VOLUME:
		delete_volume(d, rh, a);
		break;
	case RECONCILE_REPORT_FOREIGN:
		/* at info: normal when installations share a host */
		log_info("host %s: domain %s (group '%s', instance %s) belongs to another virt-autoscaler installation (owner %s; ours is %s): left alone",
			 host, dom->name, dom->meta->group, dom->meta->id,
			 dom->meta->owner, d->owner);
		break;
	case RECONCILE_WARN_UNKNOWN_GROUP:
		log_warn("host %s: domain %s belongs to group '%s', which is not configured; left alone",
			 host, dom->name, dom->meta->group);
		break;
	case RECONCILE_WARN_UNKNOWN_VOLUMES:
		/* named like ours but unknown: another daemon's, maybe */
		log_warn("host %s: pool %s holds volumes named like ours that this state store does not know (e.g. %s); left alone",
			 host, rh->dh->cfg->pool, a->volume);
		rh->warned_unknown_volumes = true;
		break;
	case RECONCILE_WARN_DUPLICATE:
		log_complain(&rh->dup_complaint, LOG_LEVEL_WARN, log_tag,
			     "host %s: domain %s carries instance id %s like another domain on the host; left alone",
			     host, dom->name, a->id);
		break;
	default:
		break;
	}
}

/* Keep this pass's foreign keys: each stays reported once. */
static void
remember_foreign(struct rhost *rh, const struct reconcile_plan *plan)
{
	char **keys = xcalloc(plan->n_foreign + 1, sizeof(*keys));

	for (size_t i = 0; i < plan->n_foreign; i++)
		keys[i] = xstrdup(plan->foreign[i]);
	for (size_t i = 0; i < rh->n_reported; i++)
		free(rh->reported[i]);
	free(rh->reported);
	rh->reported = keys;
	rh->n_reported = plan->n_foreign;
}

/* A finished pass: plan the host and apply the plan. */
static void
reconcile_host(struct daemon *d, struct rhost *rh,
	       const struct inventory_result *res)
{
	struct busy_arg ba = {.rh = rh};
	struct store_instance_list more = {0};
	struct reconcile_input in = {
		.host = rh->dh->cfg->name,
		.owner = d->owner,
		.inv = res,
		.rows = rh->rows.v,
		.n_rows = rh->rows.n,
		.busy = busy_cb,
		.busy_arg = &ba,
		.reported = (const char *const *)rh->reported,
		.n_reported = rh->n_reported,
		.warned_unknown_volumes = rh->warned_unknown_volumes,
	};
	const char **groups = xcalloc(d->n_groups + 1, sizeof(*groups));
	char (*ids)[STORE_ID_LEN + 1] = NULL;
	struct reconcile_plan plan;
	size_t n_ids;
	int64_t gen;

	rh->settled = false; /* until this plan says otherwise */
	ba.n_now = jobs_busy(d->jobs, &ba.now);
	for (unsigned i = 0; i < d->n_groups; i++)
		groups[i] = d->groups[i].cfg->name;
	in.groups = groups;
	in.n_groups = d->n_groups;
	/* the rows of what the pass found that this host's rows lack:
	 * normally none, but for unknown domains and volumes */
	n_ids = reconcile_plan_wanted(&in, &ids);
	more.v = xcalloc(n_ids + 1, sizeof(*more.v));
	for (size_t i = 0; i < n_ids; i++) {
		int rc = store_instance_get(d->store, ids[i], &more.v[more.n]);

		if (rc == STORE_OK) {
			more.n++;
		} else if (rc != STORE_E_NOTFOUND) {
			/* unknown is not the same as unreadable */
			log_warn("host %s: cannot reconcile: %s", in.host,
				 err_msg());
			goto cleanup;
		}
	}
	in.more = more.v;
	in.n_more = more.n;

	reconcile_plan_make(&in, &plan);
	for (size_t i = 0; i < plan.n; i++)
		apply(d, rh, &plan.v[i]);
	remember_foreign(rh, &plan);
	/* the rows read after the pass (more) were those of the store at
	 * the pass's start too: its generation did not move meanwhile */
	rh->settled = res->have_digest && rh->rows.gen > 0 && plan.n == 0 &&
		      rh->n_busy == 0 && ba.n_now == 0 &&
		      store_instance_generation(d->store, &gen) == STORE_OK &&
		      gen == rh->rows.gen;
	if (rh->settled) {
		memcpy(rh->settled_digest, res->digest, sizeof(res->digest));
		rh->settled_gen = rh->rows.gen;
		rh->settled_config_gen = d->config_gen;
	}
	log_debug("host %s: reconciled: %zu domains, %zu volumes, %zu rows (+%zu), %zu actions; %u libvirt calls (%u for metadata) in %" PRId64 " ms",
		  in.host, res->n_domains, res->n_volumes, rh->rows.n, more.n,
		  plan.n, res->calls, res->meta_calls, res->duration_ms);
	reconcile_plan_release(&plan);
cleanup:
	store_instance_list_release(&more);
	free(ids);
	free(groups);
	free(ba.now);
}

/* ---- passes ------------------------------------------------------------ */

static int
row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_instance *)a)->id,
		      ((const struct store_instance *)b)->id);
}

/* Note the host's rows and busy ids, then start listing it. */
static void
pass_start(struct daemon *d, struct rhost *rh)
{
	/* not the gone ones: the store's copy in memory answers (a read of
	 * every row of the host every pass was 10 ms at 5,000); a domain or
	 * volume of a gone instance is found in the pass, and its row then
	 * read by id (reconcile_plan_wanted()) */
	struct store_instance_filter f = {.host = rh->dh->cfg->name,
					  .state_mask = STORE_STATES_NOT_GONE};

	if (inventory_running(rh->inv) || !host_is_up(rh->dh->h))
		return;
	if (store_instance_list(d->store, &f, &rh->rows) != STORE_OK) {
		log_warn("host %s: cannot reconcile: %s", f.host, err_msg());
		return;
	}
	if (rh->rows.n) /* no rows: v is NULL, which qsort must not get */
		qsort(rh->rows.v, rh->rows.n, sizeof(*rh->rows.v), row_cmp);
	rh->n_busy = jobs_busy(d->jobs, &rh->busy);
	if (inventory_start(rh->inv, rh->dh->cfg->pool) != 0) {
		log_complain(&rh->pass_complaint, LOG_LEVEL_WARN, log_tag,
			     "host %s: cannot reconcile: %s", f.host, err_msg());
		pass_forget(rh);
	}
}

/*
 * The pass found what the last one found, which planned nothing, and
 * nothing the plan reads changed since: the store (its generation: the
 * host's rows, and those of other ids the pass found), the
 * configuration, no job busy then or now. At 5,000
 * domains planning was about 8 ms of the loop a pass, for nothing.
 */
static bool
unchanged(struct daemon *d, struct rhost *rh,
	  const struct inventory_result *res)
{
	char (*now)[STORE_ID_LEN + 1] = NULL;
	size_t n_now;
	int64_t gen;

	if (!rh->settled || !res->have_digest || rh->rows.gen <= 0 ||
	    rh->rows.gen != rh->settled_gen ||
	    d->config_gen != rh->settled_config_gen || rh->n_busy ||
	    memcmp(res->digest, rh->settled_digest, sizeof(res->digest)) != 0)
		return false;
	/* nor since (the rows the plan would read by id) */
	if (store_instance_generation(d->store, &gen) != STORE_OK ||
	    gen != rh->settled_gen)
		return false;
	n_now = jobs_busy(d->jobs, &now);
	free(now);
	return n_now == 0;
}

/* Apply the passes that have finished; report those that hang. */
static void
take_finished(struct reconciler *r, int64_t now_ms)
{
	struct daemon *d = r->d;

	for (unsigned i = 0; i < r->n_hosts; i++) {
		struct rhost *rh = &r->hosts[i];
		struct inventory_result *res = inventory_take(rh->inv);
		int64_t since = inventory_started_ms(rh->inv);

		if (!res) {
			if (since && now_ms - since >
					     STUCK_PERIODS * d->reconcile_period_ms)
				log_complain(&rh->pass_complaint, LOG_LEVEL_WARN,
					     log_tag,
					     "host %s: listing the host has taken %" PRId64 " s so far; its reconciliation waits",
					     rh->dh->cfg->name,
					     (now_ms - since) / 1000);
			continue;
		}
		if (res->call_failed)
			host_check_alive(rh->dh->h);
		if (!res->listed) {
			log_complain(&rh->pass_complaint, LOG_LEVEL_WARN, log_tag,
				     "%s", res->error);
		} else if (unchanged(d, rh, res)) {
			members_host_addresses(d, rh->dh->cfg->name, res);
			log_debug("host %s: reconciled: %zu domains, %zu volumes, as the last pass found them, which needed nothing: not planned again; %u libvirt calls (%u for metadata) in %" PRId64 " ms",
				  rh->dh->cfg->name, res->n_domains,
				  res->n_volumes, res->calls, res->meta_calls,
				  res->duration_ms);
		} else {
			reconcile_host(d, rh, res);
			members_host_addresses(d, rh->dh->cfg->name, res);
			log_complain_clear(&rh->pass_complaint, log_tag,
					   "host %s: reconciling again",
					   rh->dh->cfg->name);
		}
		inventory_result_free(res);
		pass_forget(rh);
	}
}

void
reconciler_tick(struct reconciler *r, int64_t now_ms)
{
	take_finished(r, now_ms);
	if (now_ms < r->next_ms)
		return;
	/* not while a collector round is in flight: the inventory's calls
	 * and the bulk stats call would ask libvirtd at once (the collector
	 * wakes the loop when its round ends); at most PASS_WAIT_MS late, so
	 * a half-dead host does not hold the pass */
	if (now_ms - r->next_ms < PASS_WAIT_MS && collect_pending(r->d->collector))
		return;
	r->next_ms = now_ms + r->d->reconcile_period_ms;
	recover_journal(r->d);
	for (unsigned i = 0; i < r->n_hosts; i++)
		pass_start(r->d, &r->hosts[i]);
}

int
reconcile_startup(struct daemon *d)
{
	struct reconciler *r = d->reconciler;
	int64_t deadline;

	recover_journal(d);
	recover_unjournaled(d);
	/* a first comparison before the scaler decides anything (it would
	 * otherwise provision for domains about to be adopted); a host that
	 * does not answer is applied later by reconciler_tick() */
	for (unsigned i = 0; i < r->n_hosts; i++)
		pass_start(d, &r->hosts[i]);
	deadline = util_now_ms() + STARTUP_WAIT_MS;
	for (unsigned i = 0; i < r->n_hosts; i++) {
		int64_t left = deadline - util_now_ms();

		if (inventory_wait(r->hosts[i].inv, left > 0 ? left : 0) != 0)
			log_warn("host %s: not listed within %d s; its reconciliation follows when it answers",
				 r->hosts[i].dh->cfg->name,
				 STARTUP_WAIT_MS / 1000);
	}
	take_finished(r, util_now_ms());
	r->next_ms = util_now_ms() + d->reconcile_period_ms;
	return 0;
}
