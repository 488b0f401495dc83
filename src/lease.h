/*
 * lease.h: the leader lease, kept by a thread of its own.
 *
 * The daemon acquires the lease (store_lease_acquire, _take_over) on its
 * main handle, then hands it to lease_start(): a thread renews it every
 * third of its ttl on a state-store handle of its own, independently of
 * the main loop. A loop step that blocks for longer than the lease (a
 * libvirt host that accepts the connection but does not answer, a slow
 * query on the main handle) therefore no longer lets the lease expire.
 *
 * The thread publishes "valid until": the monotonic time at which the last
 * successful renewal was *sent*, plus the ttl. The database computes the
 * expiry from its own clock when it executes the renewal, which is no
 * earlier, so while the monotonic clock is before "valid until" no other
 * daemon can have taken the lease. The loop asks lease_status() before
 * each step that acts on hosts or on the store; the store's epoch fence
 * still guards every write in the database.
 *
 * A renewal refused because the epoch moved on (another daemon took the
 * lease) marks it lost at once. A renewal that fails otherwise (database
 * unreachable) is retried every second; with give_up_at_expiry (HA) the
 * lease is lost once "valid until" passes without a successful renewal,
 * without it (a single daemon) the thread retries for as long as it runs.
 *
 * The thread proves that the process is alive, not that its loop is: with
 * stall_limit_ms, a loop that has not reported in (lease_loop_alive) for
 * that long is taken as blocked for good and the lease is let go, so that
 * a standby takes over instead of waiting behind a leader that no longer
 * acts.
 *
 * Threads: lease_start/lease_stop from one thread (the main one);
 * lease_status from any.
 */
#ifndef VA_LEASE_H
#define VA_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

struct lease;

struct lease_opts {
	const char *name;         /* STORE_LEASE_LEADER; copied */
	const char *holder;       /* our holder id; copied */
	int64_t epoch;            /* from the acquisition */
	int64_t ttl_ms;           /* as acquired; renewed every ttl_ms / 3 */
	/* monotonic ms: when the acquisition was sent, plus ttl_ms */
	int64_t valid_until_ms;
	bool give_up_at_expiry;   /* HA: failing renewals lose it at expiry */
	/*
	 * > 0: stop renewing once the loop has not called lease_loop_alive()
	 * for this long (a step blocked for good, e.g. on a libvirt host that
	 * never answers), so that the standby takes over when the lease runs
	 * out; the loop, should it come back, then finds the lease lost.
	 * 0: renew for as long as the thread runs (a single daemon).
	 */
	int64_t stall_limit_ms;
};

enum lease_status {
	LEASE_HELD,      /* valid: act */
	LEASE_EXPIRED,   /* not renewed in time (yet): do not act */
	LEASE_LOST,      /* another daemon holds it, or given up: stop */
	LEASE_LAST
};

/*
 * Start the renewal thread. Takes the handle s (a handle of its own, not
 * shared with other threads; lease_stop() closes it), also on failure.
 * NULL with err_set() if the thread cannot be started.
 */
struct lease *lease_start(struct store *s, const struct lease_opts *o);
/*
 * The lease's state at monotonic time now_ms; *valid_until_ms (may be
 * NULL) gets the published "valid until" (0 once lost).
 */
enum lease_status lease_status(struct lease *l, int64_t now_ms,
			       int64_t *valid_until_ms);
/* The main loop is alive at monotonic time now_ms (once per iteration). */
void lease_loop_alive(struct lease *l, int64_t now_ms);
/* Successful renewals so far (for logs and tests). */
uint64_t lease_renewals(struct lease *l);
/*
 * Stop and join the thread; then, if release and the lease is not lost,
 * give it up (store_lease_release) so that a standby takes over at once.
 * Closes the handle and frees l. Accepts NULL.
 */
void lease_stop(struct lease *l, bool release);

#endif
