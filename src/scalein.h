/*
 * scalein.h: which VMs of a group go when it shrinks, and removing a VM
 * from its host without leaving anything behind.
 *
 * Victim order (scale_in.order in the configuration):
 *   newest              the most recently created first (they have the
 *                       least warm state; AWS's "NewestInstance")
 *   oldest              the longest running first (rolls the group onto
 *                       fresh VMs over time)
 *   busiest-host-first  one at a time from the host that has the most VMs
 *                       of the group at that moment (counting every VM of
 *                       the group, busy or not), the newest there first;
 *                       ties between hosts go to the host whose candidate
 *                       is newest. Rebalances a group while it shrinks.
 * Ties in creation time are broken by id (newest: greater id first;
 * oldest: smaller id first) so the choice is deterministic.
 *
 * Busy VMs (a guest heartbeat said {"busy": true}) are skipped, unless
 * they have been busy for longer than busy_max_age_ms (> 0): a stuck flag
 * must not pin a group at its size forever. When too many are busy, fewer
 * victims than asked are returned; the daemon tries again on a later tick.
 */
#ifndef VA_SCALEIN_H
#define VA_SCALEIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

enum scalein_order {
	SCALEIN_NEWEST,
	SCALEIN_OLDEST,
	SCALEIN_BUSIEST_HOST_FIRST,
	SCALEIN_ORDER_LAST
};

/* "newest", "oldest", "busiest-host-first". 0, or -1 with err_set(). */
int scalein_order_parse(const char *s, enum scalein_order *out);
const char *scalein_order_name(enum scalein_order order);

struct scalein_instance {
	const char *id;
	const char *host;
	int64_t created_ms;     /* creation time (any consistent clock) */
	bool busy;
	int64_t busy_since_ms;  /* since when busy (same clock as now_ms) */
};

/*
 * Choose up to count victims among inst[0..n) in the given order; writes
 * their indexes to out[] (room for count) in removal order and returns how
 * many were chosen.
 */
size_t scalein_choose(const struct scalein_instance *inst, size_t n,
		      enum scalein_order order, size_t count, int64_t now_ms,
		      int64_t busy_max_age_ms, size_t *out);

/* What to remove for one VM. */
struct scalein_remove_spec {
	const char *domain;            /* domain name */
	const char *pool;              /* pool holding its volumes */
	const char *const *volumes;    /* volume names (overlay, seed) */
	size_t n_volumes;
	int64_t shutdown_timeout_ms;   /* graceful shutdown (ACPI) wait;
					  0: destroy at once */
};

/*
 * Remove a VM: graceful virDomainShutdown and wait up to the timeout, then
 * virDomainDestroy, undefine (with managed save, snapshot and checkpoint
 * metadata and NVRAM), delete its volumes. Idempotent: every step
 * tolerates the thing being gone already, so an interrupted removal can be
 * run again. Blocks up to shutdown_timeout_ms (plus libvirt calls): run it
 * where a slow host does not stall others. *graceful (may be NULL) tells
 * whether the guest shut down by itself. Returns 0, or -1 with err_set()
 * (later steps are not attempted, so nothing is deleted under a domain
 * that could not be stopped).
 */
int scalein_remove(virConnectPtr conn, const struct scalein_remove_spec *spec,
		   bool *graceful);

#endif
