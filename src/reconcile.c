/*
 * reconcile.c: make the state store and what libvirt runs agree.
 *
 * At start (reconcile_startup): journaled actions that a previous run
 * left half done are finished (a started domain becomes 'booting'; a
 * removal is completed) or rolled back (a provisioning that did not reach
 * the start is undone, volumes included); instances that were requested
 * but never provisioned end. Then the hosts are compared, as every
 * RECONCILE_PERIOD afterwards (reconcile_hosts):
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
 * Nothing here touches an instance that a worker is busy with.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "daemon_int.h"
#include "remove.h"
#include "domxml.h"
#include "log.h"
#include "util.h"
#include "volume.h"

LOG_TAG("reconcile");

static bool
is_uuid(const char *s, size_t n)
{
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return false;
		}
	}
	return true;
}

/* The instance id a volume of ours belongs to, or false. */
static bool
volume_instance(const char *name, char id[STORE_ID_LEN + 1])
{
	size_t n = strlen(name);

	if (n == 36 + 6 && strcmp(name + 36, ".qcow2") == 0 && is_uuid(name, 36)) {
		memcpy(id, name, 36);
		id[36] = '\0';
		return true;
	}
	if (n == 36 + 9 && strcmp(name + 36, "-seed.iso") == 0 &&
	    is_uuid(name, 36)) {
		memcpy(id, name, 36);
		id[36] = '\0';
		return true;
	}
	return false;
}

/* Remove domain and volumes of an instance now (recovery, no drain). */
static int
remove_now(struct daemon *d, const char *host, const char *domain,
	   const char *id)
{
	struct dhost *dh = daemon_host(d, host);
	virConnectPtr conn;
	int rc;

	if (!dh) {
		err_set("host %s is not configured", host);
		return -1;
	}
	conn = host_conn_own(dh->h);
	if (!conn) {
		err_set("host %s is not connected", host);
		return -1;
	}
	rc = instance_remove(conn, dh->cfg->pool, domain, id, d->owner, 0,
			     NULL);
	virConnectClose(conn);
	return rc;
}

/* Move an instance to gone through the legal path from where it is. */
static void
end_instance(struct daemon *d, const struct store_instance *si)
{
	enum store_instance_state st = si->state;

	if (st == STORE_INSTANCE_GONE)
		return;
	if (st == STORE_INSTANCE_READY) {
		store_instance_set_state(d->store, si->id, st,
					 STORE_INSTANCE_DRAINING);
		st = STORE_INSTANCE_DRAINING;
	}
	if (st != STORE_INSTANCE_DELETING) {
		if (store_instance_set_state(d->store, si->id, st,
					     STORE_INSTANCE_DELETING) != STORE_OK) {
			log_warn("instance %s: %s", si->id, err_msg());
			return;
		}
	}
	store_instance_set_state(d->store, si->id, STORE_INSTANCE_DELETING,
				 STORE_INSTANCE_GONE);
}

/* Recover one journaled action; false when it must wait (host down). */
static bool
recover_entry(struct daemon *d, const struct store_journal_entry *e)
{
	struct store_instance si;
	bool done = false;

	if (store_instance_get(d->store, e->instance, &si) != STORE_OK) {
		store_journal_fail(d->store, e->id, "instance no longer in the store");
		return true;
	}
	if (e->action == STORE_JOURNAL_PROVISION &&
	    e->step == STORE_STEP_STARTED) {
		/* Everything was done but the last bookkeeping. */
		if (si.state == STORE_INSTANCE_PROVISIONING)
			store_instance_set_state(d->store, si.id,
						 STORE_INSTANCE_PROVISIONING,
						 STORE_INSTANCE_BOOTING);
		store_journal_done(d->store, e->id);
		event_record(d->store, si.group, si.id, "recovered", NULL,
			     "provisioning of %s had finished before the restart: kept",
			     si.domain ? si.domain : si.id);
		done = true;
	} else if (!si.host || !si.domain) {
		end_instance(d, &si);
		store_journal_fail(d->store, e->id, "nothing was created");
		done = true;
	} else if (remove_now(d, si.host, si.domain, si.id) == 0) {
		end_instance(d, &si);
		if (e->action == STORE_JOURNAL_PROVISION) {
			store_journal_fail(d->store, e->id,
					   "interrupted by a restart; rolled back");
			event_record(d->store, si.group, si.id, "recovered", NULL,
				     "provisioning of %s was interrupted at step '%s': rolled back",
				     si.domain, store_journal_step_name(e->step));
		} else {
			store_journal_done(d->store, e->id);
			event_record(d->store, si.group, si.id, "recovered", NULL,
				     "removal of %s was interrupted: finished",
				     si.domain);
		}
		done = true;
	} else {
		log_warn("instance %s: recovery waits: %s", si.id, err_msg());
	}
	store_instance_release(&si);
	return done;
}

static void
recover_journal(struct daemon *d)
{
	struct store_journal_list l = {0};

	if (store_journal_pending(d->store, &l) != STORE_OK) {
		log_error("cannot read the journal: %s", err_msg());
		return;
	}
	for (size_t i = 0; i < l.n; i++) {
		if (jobs_busy_with(d->jobs, l.v[i].instance))
			continue;
		recover_entry(d, &l.v[i]);
	}
	store_journal_list_release(&l);
}

/* Instances whose action has no journal entry (died before it began). */
static void
recover_unjournaled(struct daemon *d)
{
	struct store_instance_filter f = {
		.state_mask = STORE_STATE_BIT(STORE_INSTANCE_REQUESTED) |
			      STORE_STATE_BIT(STORE_INSTANCE_PROVISIONING) |
			      STORE_STATE_BIT(STORE_INSTANCE_DRAINING) |
			      STORE_STATE_BIT(STORE_INSTANCE_DELETING),
	};
	struct store_instance_list l = {0};

	if (store_instance_list(d->store, &f, &l) != STORE_OK)
		return;
	for (size_t i = 0; i < l.n; i++) {
		struct store_instance *si = &l.v[i];

		if (jobs_busy_with(d->jobs, si->id))
			continue;
		if (si->state == STORE_INSTANCE_REQUESTED) {
			end_instance(d, si);
			event_record(d->store, si->group, si->id, "recovered", NULL,
				     "requested instance was never provisioned: dropped");
		} else if (si->host && si->domain) {
			/* provisioning without a journal entry, or a removal
			 * that had not begun: remove whatever exists */
			if (remove_now(d, si->host, si->domain, si->id) == 0) {
				end_instance(d, si);
				event_record(d->store, si->group, si->id, "recovered", NULL,
					     "%s: unfinished %s completed",
					     si->domain,
					     si->state == STORE_INSTANCE_PROVISIONING
						     ? "provisioning rolled back,"
						     : "removal");
			}
		} else {
			end_instance(d, si);
		}
	}
	store_instance_list_release(&l);
}

int
reconcile_startup(struct daemon *d)
{
	recover_journal(d);
	recover_unjournaled(d);
	reconcile_hosts(d, util_now_ms());
	return 0;
}

struct seen {
	char id[STORE_ID_LEN + 1];
	bool running;
};

/* Whether the store adopted the domain. */
static bool
adopt(struct daemon *d, struct dhost *dh, const struct domxml_meta *m,
      const char *domain, bool running)
{
	struct store_instance si;

	if (!daemon_group(d, m->group)) {
		log_warn("host %s: domain %s belongs to group '%s', which is not configured; left alone",
			 dh->cfg->name, domain, m->group);
		return false;
	}
	memset(&si, 0, sizeof(si));
	si.id = (char *)m->id;
	si.group = (char *)m->group;
	si.host = (char *)dh->cfg->name;
	si.domain = (char *)domain;
	si.state = running ? STORE_INSTANCE_READY : STORE_INSTANCE_UNHEALTHY;
	si.config_gen = (int64_t)m->generation;
	si.notes = m->owner[0]
			   ? (char *)"adopted: found on its host, unknown to the store"
			   : (char *)"adopted: found on its host, unknown to the "
				     "store, without an owner id (older version)";
	if (store_instance_put(d->store, &si) != STORE_OK) {
		log_warn("cannot adopt %s: %s", domain, err_msg());
		return false;
	}
	if (!m->owner[0])
		log_warn("host %s: domain %s (group '%s') has no owner id in its metadata: a virt-autoscaler older than installation ids made it; adopted as ours (if another installation shares this host with the same group name, check that it is not theirs)",
			 dh->cfg->name, domain, m->group);
	event_record(d->store, m->group, m->id, "adopted", NULL,
		     "%s found on %s with our metadata%s but not in the state store: adopted as %s",
		     domain, dh->cfg->name,
		     m->owner[0] ? "" : " (no owner id: made by an older version)",
		     running ? "ready" : "unhealthy");
	return true;
}

/*
 * Write our owner id into the metadata of a domain of ours that a version
 * before installation ids made, so that from now on no other installation
 * sharing the host takes it for one of its own old domains.
 */
static void
claim(struct daemon *d, struct dhost *dh, virDomainPtr dom, const char *name,
      const struct domxml_meta *m, bool active)
{
	struct domxml_meta mine = *m;
	unsigned flags = 0;
	char *el = NULL;

	snprintf(mine.owner, sizeof(mine.owner), "%s", d->owner);
	if (domxml_meta_format(&mine, &el) < 0) {
		log_complain(&dh->claim_complaint, LOG_LEVEL_WARN, log_tag,
			     "host %s: domain %s: %s", dh->cfg->name, name,
			     err_msg());
		return;
	}
	if (virDomainIsPersistent(dom) == 1)
		flags |= VIR_DOMAIN_AFFECT_CONFIG;
	if (active)
		flags |= VIR_DOMAIN_AFFECT_LIVE;
	if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, el,
				 DOMXML_NS_PREFIX, DOMXML_NS_URI, flags) < 0) {
		log_complain(&dh->claim_complaint, LOG_LEVEL_WARN, log_tag,
			     "host %s: cannot write our owner id into the metadata of domain %s: %s",
			     dh->cfg->name, name, virGetLastErrorMessage());
		virResetLastError();
	} else {
		log_info("host %s: domain %s: our owner id %s written into its metadata (a version before installation ids made it)",
			 dh->cfg->name, name, d->owner);
	}
	free(el);
}

/*
 * A domain of another installation: never ours to act on. Reported once
 * per domain (while it stays on the host), at info: it is normal when
 * installations share a host. Its key goes into keys[*n] for this pass.
 */
static void
note_foreign(struct dhost *dh, virDomainPtr dom, const char *name,
	     const struct domxml_meta *m, const char *ours,
	     char (*keys)[VIR_UUID_STRING_BUFLEN], size_t *n)
{
	char *key = keys[*n];

	if (virDomainGetUUIDString(dom, key) < 0) {
		virResetLastError();
		snprintf(key, VIR_UUID_STRING_BUFLEN, "%s", name);
	}
	(*n)++;
	for (size_t i = 0; i < dh->n_foreign; i++)
		if (strcmp(dh->foreign[i], key) == 0)
			return;
	log_info("host %s: domain %s (group '%s', instance %s) belongs to another virt-autoscaler installation (owner %s; ours is %s): left alone",
		 dh->cfg->name, name, m->group, m->id, m->owner, ours);
}

static void
reconcile_host(struct daemon *d, struct dhost *dh)
{
	virConnectPtr conn = host_conn_own(dh->h);
	virDomainPtr *doms = NULL;
	virStoragePoolPtr pool = NULL;
	virStorageVolPtr *vols = NULL;
	struct seen *seen = NULL;
	size_t n_seen = 0;
	struct store_instance_filter f = {.host = dh->cfg->name};
	struct store_instance_list l = {0};
	char (*foreign)[VIR_UUID_STRING_BUFLEN] = NULL;
	char (*foreign_ids)[STORE_ID_LEN + 1] = NULL;
	size_t n_foreign = 0;
	int n, nv = 0;

	if (!conn)
		return;
	n = virConnectListAllDomains(conn, &doms, 0);
	if (n < 0) {
		host_check_alive(dh->h);
		goto out;
	}
	seen = xcalloc((size_t)n + 1, sizeof(*seen));
	foreign = xcalloc((size_t)n + 1, sizeof(*foreign));
	foreign_ids = xcalloc((size_t)n + 1, sizeof(*foreign_ids));
	for (int i = 0; i < n; i++) {
		char *meta = virDomainGetMetadata(doms[i], VIR_DOMAIN_METADATA_ELEMENT,
						  DOMXML_NS_URI, 0);
		struct domxml_meta m;
		struct store_instance si;
		const char *name = virDomainGetName(doms[i]);
		int active = virDomainIsActive(doms[i]);
		int rc;

		if (!meta) {
			virResetLastError();
			continue;
		}
		rc = domxml_meta_parse(meta, strlen(meta), &m);
		free(meta);
		if (rc != 0 || !name || !is_uuid(m.id, strlen(m.id)))
			continue;
		if (m.owner[0] && strcmp(m.owner, d->owner) != 0) {
			/* Not in seen either: were the store to know this
			 * id, our instance's domain is not there. */
			memcpy(foreign_ids[n_foreign], m.id, STORE_ID_LEN + 1);
			note_foreign(dh, doms[i], name, &m, d->owner, foreign,
				     &n_foreign);
			continue;
		}
		memcpy(seen[n_seen].id, m.id, STORE_ID_LEN + 1);
		seen[n_seen].running = active == 1;
		n_seen++;
		if (jobs_busy_with(d->jobs, m.id))
			continue;
		rc = store_instance_get(d->store, m.id, &si);
		if (rc == STORE_E_NOTFOUND) {
			if (adopt(d, dh, &m, name, active == 1) && !m.owner[0])
				claim(d, dh, doms[i], name, &m, active == 1);
			continue;
		}
		if (rc != STORE_OK)
			continue;
		if (!m.owner[0] && si.state != STORE_INSTANCE_GONE &&
		    si.state != STORE_INSTANCE_DELETING &&
		    si.state != STORE_INSTANCE_LOST &&
		    strcmp(si.group, m.group) == 0)
			claim(d, dh, doms[i], name, &m, active == 1);
		if (si.state == STORE_INSTANCE_GONE ||
		    si.state == STORE_INSTANCE_DELETING ||
		    si.state == STORE_INSTANCE_LOST) {
			if (remove_now(d, dh->cfg->name, name, m.id) == 0) {
				end_instance(d, &si);
				event_record(d->store, si.group, si.id, "reconcile", NULL,
					     "%s was still on %s although the instance is %s: removed",
					     name, dh->cfg->name,
					     store_instance_state_name(si.state));
			}
		} else if (si.state == STORE_INSTANCE_READY && active != 1) {
			if (store_instance_set_state(d->store, si.id,
						     STORE_INSTANCE_READY,
						     STORE_INSTANCE_UNHEALTHY) == STORE_OK)
				event_record(d->store, si.group, si.id, "unhealthy", NULL,
					     "%s is not running on %s", name,
					     dh->cfg->name);
		}
		store_instance_release(&si);
	}
	/* Remember this pass's foreign domains: one that stays is not
	 * reported again; the list does not grow with ones that left. */
	free(dh->foreign);
	dh->foreign = foreign;
	dh->n_foreign = n_foreign;
	foreign = NULL;

	/* Instances whose domain vanished from this host. */
	f.state_mask = STORE_STATE_BIT(STORE_INSTANCE_BOOTING) |
		       STORE_STATE_BIT(STORE_INSTANCE_READY) |
		       STORE_STATE_BIT(STORE_INSTANCE_UNHEALTHY) |
		       STORE_STATE_BIT(STORE_INSTANCE_DRAINING);
	if (store_instance_list(d->store, &f, &l) == STORE_OK) {
		for (size_t i = 0; i < l.n; i++) {
			struct store_instance *si = &l.v[i];
			bool found = false;

			for (size_t k = 0; k < n_seen && !found; k++)
				found = strcmp(seen[k].id, si->id) == 0;
			if (found || jobs_busy_with(d->jobs, si->id))
				continue;
			if (store_instance_set_state(d->store, si->id, si->state,
						     STORE_INSTANCE_LOST) != STORE_OK)
				continue;
			event_record(d->store, si->group, si->id, "lost", NULL,
				     "%s is gone from %s; the group replaces it",
				     si->domain ? si->domain : si->id,
				     dh->cfg->name);
			si->state = STORE_INSTANCE_LOST;
			if (store_instance_set_state(d->store, si->id,
						     STORE_INSTANCE_LOST,
						     STORE_INSTANCE_DELETING) == STORE_OK)
				scaler_remove(d, si, 0);
		}
		store_instance_list_release(&l);
	}

	/* Volumes of ours that belong to no live instance. */
	pool = virStoragePoolLookupByName(conn, dh->cfg->pool);
	if (!pool) {
		virResetLastError();
		goto out;
	}
	virStoragePoolRefresh(pool, 0);
	nv = virStoragePoolListAllVolumes(pool, &vols, 0);
	for (int i = 0; i < nv; i++) {
		const char *vname = virStorageVolGetName(vols[i]);
		char id[STORE_ID_LEN + 1];
		struct store_instance si;
		int rc;
		bool orphan = false, theirs = false;

		if (!vname || !volume_instance(vname, id) ||
		    jobs_busy_with(d->jobs, id))
			continue;
		/* never the volumes of another installation's instance, even
		 * should our store know that id (a copied store, a clash) */
		for (size_t k = 0; k < n_foreign && !theirs; k++)
			theirs = strcmp(foreign_ids[k], id) == 0;
		if (theirs)
			continue;
		rc = store_instance_get(d->store, id, &si);
		if (rc == STORE_E_NOTFOUND) {
			/* Named like ours but unknown: it may belong to
			 * another daemon sharing this pool. Say so, once. */
			if (!dh->warned_unknown_volumes) {
				log_warn("host %s: pool %s holds volumes named like ours that this state store does not know (e.g. %s); left alone",
					 dh->cfg->name, dh->cfg->pool, vname);
				dh->warned_unknown_volumes = true;
			}
		} else if (rc == STORE_OK) {
			orphan = si.state == STORE_INSTANCE_GONE;
			store_instance_release(&si);
		}
		if (!orphan)
			continue;
		if (virStorageVolDelete(vols[i], 0) == 0)
			event_record(d->store, NULL, id, "reconcile", NULL,
				     "deleted orphaned volume %s from pool %s on %s",
				     vname, dh->cfg->pool, dh->cfg->name);
		else
			virResetLastError();
	}
out:
	for (int i = 0; i < nv; i++)
		virStorageVolFree(vols[i]);
	free(vols);
	if (pool)
		virStoragePoolFree(pool);
	for (int i = 0; i < n; i++)
		virDomainFree(doms[i]);
	free(doms);
	free(seen);
	free(foreign);
	free(foreign_ids);
	virConnectClose(conn);
}

void
reconcile_hosts(struct daemon *d, int64_t now_ms)
{
	(void)now_ms;
	recover_journal(d);
	for (unsigned i = 0; i < d->n_hosts; i++)
		if (host_is_up(d->hosts[i].h))
			reconcile_host(d, &d->hosts[i]);
}
