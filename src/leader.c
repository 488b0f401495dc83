/*
 * leader.c: taking the state store's leader lease at start (with the
 * takeover of a lease our own crashed process left), and asking before
 * each step that acts whether it is still ours. The lease's renewal
 * thread is lease.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leader.h"
#include "log.h"
#include "util.h"

LOG_TAG("daemon");

/* HA: a loop silent this long (or 4 leases) lets the lease go (lease.h) */
#define LOOP_STALL_LIMIT_MS 60000
#define SOLO_LEASE_MS 20000

/* Whether pid runs (a zombie does not: it is dead, merely not reaped). */
static bool
process_alive(pid_t pid)
{
	char path[64], buf[512];
	FILE *f;
	bool alive = true;

	if (kill(pid, 0) != 0 && errno == ESRCH)
		return false;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	if (fgets(buf, sizeof(buf), f)) {
		const char *paren = strrchr(buf, ')');

		if (paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'))
			alive = false;
	}
	fclose(f);
	return alive;
}

int
leader_take(struct daemon *d, bool *standby)
{
	const struct config_ha *ha = &d->cfg->daemon.ha;
	int64_t ttl = ha->enabled ? ha->lease_ms : SOLO_LEASE_MS;
	struct store_lease l;
	struct lease_opts lo;
	int64_t sent = util_now_ms();
	int rc;

	*standby = false;
	rc = store_lease_acquire(d->store, STORE_LEASE_LEADER, d->holder, ttl,
				 &d->epoch);
	if (rc == STORE_E_HELD &&
	    store_lease_get(d->store, STORE_LEASE_LEADER, &l) == STORE_OK) {
		/* The holder may be a previous run of ours that crashed. */
		char me[256], *colon;
		const char *hc = strrchr(l.holder, ':');

		snprintf(me, sizeof(me), "%s", d->holder);
		colon = strrchr(me, ':');
		if (hc && colon && (size_t)(hc - l.holder) == (size_t)(colon - me) &&
		    strncmp(l.holder, me, (size_t)(colon - me)) == 0) {
			long pid = strtol(hc + 1, NULL, 10);

			if (pid > 0 && pid != (long)getpid() && !process_alive((pid_t)pid)) {
				log_info("lease held by %s, a process of this machine that no longer runs: taking over",
					 l.holder);
				rc = store_lease_take_over(d->store,
							   STORE_LEASE_LEADER,
							   d->holder, l.holder,
							   ttl, &d->epoch);
			}
		}
		if (rc == STORE_E_HELD && !ha->enabled) {
			err_set("the state store is in use by another daemon (%s; its lease expires in %" PRId64 " s unless renewed); stop it, or enable daemon.ha to run several daemons",
				l.holder,
				l.expires_ms > l.now_ms ? (l.expires_ms - l.now_ms + 999) / 1000 : 0);
		}
		store_lease_release_info(&l);
	}
	if (rc == STORE_E_HELD && ha->enabled) {
		*standby = true;
		return 0;
	}
	if (rc != STORE_OK)
		return -1;
	store_fence_set(d->store_http, STORE_LEASE_LEADER, d->epoch);
	/* From here on a thread of its own renews the lease, whatever the
	 * loop does (lease.h). Valid from when the acquisition was sent. */
	memset(&lo, 0, sizeof(lo));
	lo.name = STORE_LEASE_LEADER;
	lo.holder = d->holder;
	lo.epoch = d->epoch;
	lo.ttl_ms = ttl;
	lo.valid_until_ms = sent + ttl;
	lo.give_up_at_expiry = ha->enabled;
	/* With a standby to take over, a loop blocked for good (a libvirt
	 * call that never returns) must not keep the lease alive forever. */
	if (ha->enabled)
		lo.stall_limit_ms = 4 * ttl > LOOP_STALL_LIMIT_MS ? 4 * ttl
								: LOOP_STALL_LIMIT_MS;
	d->lease = lease_start(d->store_lease, &lo);
	d->store_lease = NULL; /* the lease's (closed) even on failure */
	if (!d->lease) {
		store_lease_release(d->store, STORE_LEASE_LEADER, d->holder,
				    d->epoch);
		return -1;
	}
	return 0;
}

/*
 * May the loop act (on hosts, on the store) now? 1 yes: the lease is
 * valid; 0 not now: its thread has not renewed it in time and is still
 * trying; -1 it is lost (the thread said why): the loop stops.
 */
int
leader_check(struct daemon *d)
{
	int64_t now = util_now_ms(), until;

	switch (lease_status(d->lease, now, &until)) {
	case LEASE_HELD:
		if (d->lease_expired_said) {
			log_info("the lease is valid again: acting again");
			d->lease_expired_said = false;
		}
		return 1;
	case LEASE_EXPIRED:
		if (!d->lease_expired_said) {
			log_warn("the lease expired %" PRId64 " ms ago and is not renewed yet: not acting until it is",
				 now - until);
			d->lease_expired_said = true;
		}
		return 0;
	default:
		d->lease_lost = true;
		return -1;
	}
}
