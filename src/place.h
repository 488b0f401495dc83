/*
 * place.h: choose the host for a new VM of a group.
 *
 * Strategies share one interface (a table of functions inside place.c):
 *   round-robin   the next acceptable host after the one chosen last, in
 *                 the group's host order, cycling.
 *   most-free     the acceptable host with the highest score (higher = more
 *                 room), computed by place_most_free_score():
 *                   mem  = (mem_free - reserved_memory - request.memory)
 *                          / mem_total                       clamped 0..1
 *                   cpu  = 1 - cpu_use         (0.5 when cpu_use unknown)
 *                   vcpu = 1 - (vcpus_alloc + request.vcpus)
 *                          / (cpus * max(cpu_overcommit, 1))  clamped 0..1
 *                   score = 0.5 * mem + 0.25 * cpu + 0.25 * vcpu
 *                 ties: fewer VMs of the group, then host order.
 *   fill-first    the first acceptable host in the group's host order: a
 *                 host is filled up to its limits before the next is used.
 *   plugin:/abs/path.so   a shared object implementing placement_plugin.h.
 *
 * Limits every strategy respects (place_host_check()); a host is refused
 * when it is down or capacity is unknown, or when placing the VM would
 * exceed: max_instances; vcpus_alloc + vcpus > cpus * cpu_overcommit;
 * mem_alloc + memory > (mem_total - reserved_memory) * mem_overcommit;
 * or when its measured free memory is already below reserved_memory.
 * A limit of 0 means "no limit".
 *
 * spread (anti-affinity): applied after the limits and before the strategy,
 * as the first priority: only the acceptable hosts with the fewest VMs of
 * the group are offered to the strategy (plugins included). So with spread
 * a group is balanced across hosts first, and the strategy decides among
 * equally loaded hosts.
 *
 * Host records are struct va_placement_host from placement_plugin.h, filled
 * by the daemon (or place_host_measure()). When placing several VMs in one
 * go, call place_host_commit() on the chosen record after each choice so the
 * next choice sees the VM.
 */
#ifndef VA_PLACE_H
#define VA_PLACE_H

#include <stdbool.h>
#include <stddef.h>

#include <libvirt/libvirt.h>

#include "placement_plugin.h"
#include "util.h"

enum place_kind {
	PLACE_ROUND_ROBIN,
	PLACE_MOST_FREE,
	PLACE_FILL_FIRST,
	PLACE_PLUGIN,
	PLACE_KIND_LAST
};

enum place_result {
	PLACE_OK,    /* *chosen is set */
	PLACE_FULL,  /* no host can take the VM; err_msg() gives each host's reason */
	PLACE_ERROR, /* a plugin misbehaved; err_msg() says how */
	PLACE_RESULT_LAST
};

struct place_strategy; /* opaque; one per group (holds round-robin cursor) */

/*
 * spec: "round-robin" | "most-free" | "fill-first" | "plugin:/abs/path.so".
 * options: the group's placement_options (copied as needed; plugins get
 * them in init). Returns NULL with err_set() on an unknown name, a relative
 * plugin path, a plugin that cannot be loaded, lacks the symbol, has another
 * ABI version, or whose init refuses the options. Free with
 * place_strategy_free().
 */
struct place_strategy *place_strategy_new(const char *spec, bool spread,
					  const struct va_placement_option *options,
					  size_t n_options);
void place_strategy_free(struct place_strategy *s);
enum place_kind place_strategy_kind(const struct place_strategy *s);
/* "round-robin", ..., or the plugin's own name. Borrowed. */
const char *place_strategy_name(const struct place_strategy *s);

/*
 * Choose a host among hosts[0..n) for req. On PLACE_OK *chosen is the index.
 * On PLACE_FULL err_msg() reads like
 *   "no host can take a VM of group web (2 vCPUs, 1 GiB): kvm1: memory
 *    15.5/16 GiB committed with 1 GiB reserved; kvm2: down"
 * and nothing must be attempted (the caller records "hosts full").
 */
enum place_result place_choose(struct place_strategy *s,
			       const struct va_placement_request *req,
			       const struct va_placement_host *hosts, size_t n,
			       size_t *chosen);

/*
 * Whether host h can take req under its limits. Returns true, or false and
 * appends the reason (without the host name) to why (may be NULL).
 */
bool place_host_check(const struct va_placement_host *h,
		      const struct va_placement_request *req, struct strbuf *why);

/* Account for a VM just placed on h (alloc, free memory, instance counts). */
void place_host_commit(struct va_placement_host *h,
		       const struct va_placement_request *req);

/* The most-free score documented above (higher = more room). */
double place_most_free_score(const struct va_placement_host *h,
			     const struct va_placement_request *req);

/*
 * Measure a host through libvirt: cpus and mem_total (virNodeGetInfo),
 * mem_free (virNodeGetFreeMemory), vcpus_alloc and mem_alloc summed over
 * the domains that are not shut off (virDomainGetInfo: nrVirtCpu, maxMem),
 * instances and group_instances counted over all defined domains from our
 * <metadata> (domxml.h; group may be NULL).
 * Sets up = 1; leaves name, cpu_use and the limits alone. Returns 0, or -1
 * with err_set() (the caller then marks the host down with that reason).
 */
int place_host_measure(virConnectPtr conn, const char *group,
		       struct va_placement_host *h);

#endif
