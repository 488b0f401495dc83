/*
 * warm.c: parking and resuming warm instances (warm.h), on a worker's own
 * connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/virterror.h>

#include "event.h"
#include "log.h"
#include "remove.h"
#include "util.h"
#include "warm.h"

LOG_TAG("warm");

const char *
warm_op_name(enum warm_op op)
{
	return op == WARM_PARK ? "park" : op == WARM_RESUME ? "resume" : "clock";
}

static void
libvirt_err(const char *what, const char *domain)
{
	const virError *e = virGetLastError();

	err_set("%s %s: %s", what, domain,
		e && e->message ? e->message : "libvirt error");
}

static const char *
dom_state_name(int st)
{
	switch (st) {
	case VIR_DOMAIN_RUNNING:
		return "running";
	case VIR_DOMAIN_PAUSED:
		return "paused";
	case VIR_DOMAIN_SHUTOFF:
		return "shut off";
	case VIR_DOMAIN_SHUTDOWN:
		return "shutting down";
	case VIR_DOMAIN_CRASHED:
		return "crashed";
	case VIR_DOMAIN_PMSUSPENDED:
		return "suspended by the guest";
	default:
		return "in an unknown state";
	}
}

/* Wait up to ms for the domain to be shut off; true when it is. */
static bool
wait_shutoff(virDomainPtr dom, int64_t ms)
{
	int64_t end = util_now_ms() + ms;

	for (;;) {
		int st, reason;

		if (virDomainGetState(dom, &st, &reason, 0) < 0)
			return false;
		if (st == VIR_DOMAIN_SHUTOFF)
			return true;
		if (util_now_ms() >= end)
			return false;
		nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
	}
}

/* Put the running or paused domain into state; 0 or -1 with err_set(). */
static int
park(virDomainPtr dom, const struct warm_spec *w, int st, const char **did)
{
	switch (w->state) {
	case CONFIG_WARM_SAVED:
		if (st == VIR_DOMAIN_SHUTOFF) {
			*did = virDomainHasManagedSaveImage(dom, 0) == 1
				       ? "already saved" : "already shut off";
			return 0;
		}
		if (virDomainManagedSave(dom, VIR_DOMAIN_SAVE_RUNNING) < 0) {
			libvirt_err("managed save of", w->domain);
			return -1;
		}
		*did = "saved";
		return 0;
	case CONFIG_WARM_PAUSED:
		if (st != VIR_DOMAIN_RUNNING) {
			*did = st == VIR_DOMAIN_PAUSED ? "already paused"
						       : "already shut off";
			return 0;
		}
		if (virDomainSuspend(dom) < 0) {
			libvirt_err("pause of", w->domain);
			return -1;
		}
		*did = "paused";
		return 0;
	case CONFIG_WARM_STOPPED:
	default:
		if (st == VIR_DOMAIN_SHUTOFF) {
			*did = "already shut off";
			return 0;
		}
		if (st == VIR_DOMAIN_PAUSED)
			virDomainResume(dom); /* ACPI needs a running guest */
		if (virDomainShutdown(dom) == 0 && wait_shutoff(dom, w->shutdown_ms)) {
			*did = "shut down";
			return 0;
		}
		virResetLastError();
		if (virDomainDestroy(dom) < 0) {
			libvirt_err("stop of", w->domain);
			return -1;
		}
		*did = "stopped (destroyed after the drain time)";
		return 0;
	}
}

/* Start, restore or unpause the domain; 0 or -1 with err_set(). */
static int
resume(virDomainPtr dom, const struct warm_spec *w, int st, const char **did)
{
	if (st == VIR_DOMAIN_RUNNING) {
		*did = "already running";
		return 0;
	}
	if (st == VIR_DOMAIN_PAUSED) {
		if (virDomainResume(dom) < 0) {
			libvirt_err("resume of", w->domain);
			return -1;
		}
		*did = "unpaused";
		return 0;
	}
	if (st != VIR_DOMAIN_SHUTOFF) {
		err_set("domain %s is %s", w->domain, dom_state_name(st));
		return -1;
	}
	*did = virDomainHasManagedSaveImage(dom, 0) == 1 ? "restored" : "booted";
	/* virDomainCreate restores the managed save image when there is one */
	if (virDomainCreate(dom) < 0) {
		libvirt_err("start of", w->domain);
		return -1;
	}
	return 0;
}

/*
 * The guest's clock stood still while it was saved or paused: set it
 * through the guest agent, which reconnects a moment after the resume, so
 * tried for a few seconds. Without one (not installed, not answering)
 * the guest's own time sync catches up: not an error.
 */
static void
set_clock(virDomainPtr dom, const struct warm_spec *w)
{
	int64_t end = util_now_ms() + WARM_CLOCK_WAIT_MS;

	for (;;) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		if (virDomainSetTime(dom, (long long)ts.tv_sec,
				     (unsigned)ts.tv_nsec, 0) == 0) {
			log_debug("instance %s: guest clock set", w->id);
			return;
		}
		if (util_now_ms() >= end) {
			log_debug("instance %s: guest clock not set (%s): the "
				  "guest's own time sync catches up", w->id,
				  virGetLastErrorMessage());
			virResetLastError();
			return;
		}
		virResetLastError();
		nanosleep(&(struct timespec){0, 250 * 1000 * 1000}, NULL);
	}
}

/* WARM_CLOCK: the drawn instance's domain, if it still runs. */
static enum warm_outcome
clock_run(virConnectPtr conn, const struct warm_spec *w)
{
	virDomainPtr dom;
	int st, reason;

	if (!conn || !(dom = virDomainLookupByName(conn, w->domain))) {
		virResetLastError();
		return WARM_DONE;
	}
	if (virDomainGetState(dom, &st, &reason, 0) == 0 &&
	    st == VIR_DOMAIN_RUNNING)
		set_clock(dom, w);
	virResetLastError();
	virDomainFree(dom);
	return WARM_DONE;
}

/* The permanent failure: the instance goes, with what it holds. */
static void
give_up(const struct jobs_env *env, virConnectPtr conn,
	const struct warm_spec *w, enum store_instance_state from,
	const char *why)
{
	event_record(env->store, w->group, w->id,
		     w->op == WARM_PARK ? "warm_park_failed" : "resume_failed",
		     NULL, "%s of %s on %s failed: %s; the instance is removed%s",
		     warm_op_name(w->op), w->domain, w->host_name, why,
		     w->op == WARM_PARK
			     ? " and the pool is not refilled for a while"
			     : ", the next warm instance or a new one takes "
			       "its place");
	bool removed;

	/*
	 * A drawn instance leaves the group's size at once (deleting), so
	 * that the next plan draws another or starts one. A warming one stays
	 * warming while it is removed: until the loop has this job's result
	 * (and stops refilling), a plan must not see the pool short and make
	 * another instance the host will refuse to park. A crash meanwhile
	 * leaves it warming and checked in: the next run parks it again, is
	 * refused again, and removes it.
	 */
	if (w->op == WARM_RESUME &&
	    store_instance_set_state(env->store, w->id, from,
				     STORE_INSTANCE_DELETING) != STORE_OK) {
		log_warn("instance %s: %s", w->id, err_msg());
		return;
	}
	removed = instance_remove(conn, w->pool, w->domain, w->id, env->owner,
				  0, NULL) == 0;
	if (!removed)
		/* deleting without a job: reconciliation finishes it */
		log_warn("instance %s: removal after a failed %s: %s", w->id,
			 warm_op_name(w->op), err_msg());
	if (w->op == WARM_PARK &&
	    store_instance_set_state(env->store, w->id, from,
				     STORE_INSTANCE_DELETING) != STORE_OK) {
		log_warn("instance %s: %s", w->id, err_msg());
		return;
	}
	if (removed)
		store_instance_set_state(env->store, w->id,
					 STORE_INSTANCE_DELETING,
					 STORE_INSTANCE_GONE);
}

enum warm_outcome
warm_run(const struct jobs_env *env, virConnectPtr conn,
	 const struct warm_spec *w, bool *clock_next)
{
	enum store_instance_state want = w->op == WARM_PARK
						 ? STORE_INSTANCE_WARMING
						 : STORE_INSTANCE_RESUMING;
	enum warm_outcome out = WARM_RETRY;
	struct store_instance si;
	enum domain_owner who;
	virDomainPtr dom = NULL;
	const char *did = "";
	char *why = NULL;
	int st = 0, reason = 0;
	int64_t t0 = util_now_ms();

	*clock_next = false;
	if (w->op == WARM_CLOCK)
		return clock_run(conn, w);
	if (store_instance_get(env->store, w->id, &si) != STORE_OK) {
		log_warn("instance %s: cannot %s: %s", w->id,
			 warm_op_name(w->op), err_msg());
		return WARM_RETRY;
	}
	if (si.state != want) {
		/* moved on meanwhile (removed, drawn): nothing to do */
		log_debug("instance %s: %s skipped: it is %s now", w->id,
			  warm_op_name(w->op), store_instance_state_name(si.state));
		store_instance_release(&si);
		return WARM_DONE;
	}
	store_instance_release(&si);
	event_crash_point(env->crash_at, w->op == WARM_PARK ? "park_begin"
							    : "resume_begin");
	if (!conn) {
		log_warn("instance %s: host %s is not connected; %s retried later",
			 w->id, w->host_name, warm_op_name(w->op));
		return WARM_RETRY;
	}
	if (domain_owner(conn, w->domain, w->id, env->owner, &who, &why) != 0) {
		log_warn("instance %s: %s: %s (retried later)", w->id,
			 warm_op_name(w->op), err_msg());
		goto out;
	}
	if (who != DOMAIN_OURS) {
		/* gone, or not ours: reconciliation's business */
		log_warn("instance %s: %s of %s skipped: %s", w->id,
			 warm_op_name(w->op), w->domain,
			 who == DOMAIN_ABSENT ? "no such domain" : why);
		goto out;
	}
	dom = virDomainLookupByName(conn, w->domain);
	if (!dom || virDomainGetState(dom, &st, &reason, 0) < 0) {
		libvirt_err("state of", w->domain);
		log_warn("instance %s: %s (retried later)", w->id, err_msg());
		goto out;
	}
	if ((w->op == WARM_PARK ? park(dom, w, st, &did)
				: resume(dom, w, st, &did)) != 0) {
		char msg[1024];

		snprintf(msg, sizeof(msg), "%s", err_msg());
		if (virConnectIsAlive(conn) != 1) {
			log_warn("instance %s: %s (connection lost; retried "
				 "later)", w->id, msg);
			goto out;
		}
		log_warn("instance %s: %s", w->id, msg);
		give_up(env, conn, w, want, msg);
		out = WARM_FAILED;
		goto out;
	}
	/* a boot reads the host's time from the RTC; a restored or unpaused
	 * guest needs its clock set */
	if (w->op == WARM_RESUME && st != VIR_DOMAIN_RUNNING &&
	    strcmp(did, "booted") != 0)
		*clock_next = true;
	event_crash_point(env->crash_at, w->op == WARM_PARK ? "parked" : "resumed");
	if (w->op == WARM_PARK &&
	    store_instance_set_state(env->store, w->id, STORE_INSTANCE_WARMING,
				     STORE_INSTANCE_WARM) != STORE_OK) {
		/* the next plan parks it again: already done, then recorded */
		log_warn("instance %s: parked but not recorded: %s", w->id,
			 err_msg());
		goto out;
	}
	event_record(env->store, w->group, w->id,
		     w->op == WARM_PARK ? "warm_parked" : "warm_resumed", NULL,
		     "%s on %s %s in %.1f s", w->domain, w->host_name, did,
		     (double)(util_now_ms() - t0) / 1000.0);
	out = WARM_DONE;
out:
	free(why);
	if (dom)
		virDomainFree(dom);
	return out;
}
