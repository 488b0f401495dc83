/*
 * warm.h: the warm pool's two jobs, run by the workers (jobs.h).
 *
 *   park    a warming instance that checked in goes into its pool state:
 *           saved (virDomainManagedSave: its RAM written to the host's
 *           disk), paused (virDomainSuspend: RAM held) or stopped (a
 *           graceful shutdown, destroyed after the group's drain time);
 *           then warming -> warm in the store.
 *   resume  a drawn (resuming) instance is started from its managed save
 *           image or its disk (virDomainCreate) or unpaused
 *           (virDomainResume). It becomes ready on its first heartbeat or
 *           check-in after that (api_guest.c), not here.
 *   clock   after a restore or an unpause (not a boot), the guest's clock
 *           is set through the QEMU guest agent (virDomainSetTime): tried
 *           for up to WARM_CLOCK_WAIT_MS, since the agent reconnects a
 *           moment after the resume. A job of its own, queued behind the
 *           resume, so that a guest without an agent never delays a draw.
 *
 * Both look at the domain's state first and do only what is left, so
 * running one again (after a crash, a lost connection) never does a step
 * twice. Their intent is the instance's state, written by the loop before
 * the job is queued (warming with a check-in: park; resuming: resume):
 * that is how a restart finds them again, and why they need no journal
 * entry of their own. The domain must be ours (owner= our installation
 * id, domain_owner()): another's is never touched.
 *
 * A host that cannot do it (managed save refused: a host device, a
 * driver without it) or a domain that will not resume is a permanent
 * failure: the job removes the instance (domain, managed save image,
 * volumes), records an event, and the result says so (the loop stops
 * refilling the pool for a while; a draw falls through to the next warm
 * instance or a new one). A host not connected is not: the result says
 * retry, and the next plan runs the job again.
 */
#ifndef VA_WARM_H
#define VA_WARM_H

#include <stdbool.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "config.h"
#include "jobs.h"

enum warm_op {
	WARM_PARK,
	WARM_RESUME,
	WARM_CLOCK,
};

#define WARM_CLOCK_WAIT_MS 5000

struct warm_spec {
	enum warm_op op;
	const char *id, *group;
	const char *host_name, *uri, *pool;
	const char *domain;
	enum config_warm_state state; /* park: into which state */
	int64_t shutdown_ms;          /* park stopped: graceful wait */
};

enum warm_outcome {
	WARM_DONE,      /* done, or nothing was left to do */
	WARM_RETRY,     /* the host is not connected: the next plan retries */
	WARM_FAILED,    /* the host cannot: the instance was removed */
};

/* Run it on conn (the worker's own connection; NULL: host not connected).
 * *clock_next: a resume that restored or unpaused: queue WARM_CLOCK. */
enum warm_outcome warm_run(const struct jobs_env *env, virConnectPtr conn,
			   const struct warm_spec *w, bool *clock_next);

/* "park", "resume", "clock". */
const char *warm_op_name(enum warm_op op);

#endif
