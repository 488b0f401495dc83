/*
 * recover.c: what a previous run left half done (see recover.h), and the
 * two steps that recovery and reconciliation share: removing an
 * instance's domain and volumes at once, and ending the instance.
 */
#include "recover.h"

#include <stdbool.h>
#include <stdlib.h>

#include "daemon_int.h"
#include "log.h"
#include "remove.h"

LOG_TAG("recover");

/* Remove domain and volumes of an instance now (recovery, no drain). */
int
recover_remove_now(struct daemon *d, const char *host, const char *domain,
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
void
recover_end_instance(struct daemon *d, const struct store_instance *si)
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
		recover_end_instance(d, &si);
		store_journal_fail(d->store, e->id, "nothing was created");
		done = true;
	} else if (recover_remove_now(d, si.host, si.domain, si.id) == 0) {
		recover_end_instance(d, &si);
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

void
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
void
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
			recover_end_instance(d, si);
			event_record(d->store, si->group, si->id, "recovered", NULL,
				     "requested instance was never provisioned: dropped");
		} else if (si->host && si->domain) {
			/* provisioning without a journal entry, or a removal
			 * that had not begun: remove whatever exists */
			if (recover_remove_now(d, si->host, si->domain,
					       si->id) == 0) {
				recover_end_instance(d, si);
				event_record(d->store, si->group, si->id, "recovered", NULL,
					     "%s: unfinished %s completed",
					     si->domain,
					     si->state == STORE_INSTANCE_PROVISIONING
						     ? "provisioning rolled back,"
						     : "removal");
			}
		} else {
			recover_end_instance(d, si);
		}
	}
	store_instance_list_release(&l);
}

