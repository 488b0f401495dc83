/*
 * reconcile.h: recovery at start and the periodic comparison of the state
 * store with what the hosts hold (reconcile.c; the rules are
 * reconcile_plan.h's). Daemon-internal: the loop's thread only.
 */
#ifndef VA_RECONCILE_H
#define VA_RECONCILE_H

#include <stdint.h>

struct daemon;
struct reconciler;

/* The reconciler of d's hosts (d->hosts must not move afterwards). */
struct reconciler *reconciler_new(struct daemon *d);
/* Free; passes still running are abandoned. Accepts NULL. */
void reconciler_free(struct reconciler *r);

/*
 * At start, d->reconciler set: finish or roll back journaled actions, end
 * instances that never began, then reconcile every reachable host (waits
 * up to 30 s for their listings). Returns 0.
 */
int reconcile_startup(struct daemon *d);

/*
 * Every loop iteration, while we hold the lease: applies the passes that
 * have finished, and every d->reconcile_period_ms retries the journal and
 * starts a pass on each reachable host that has none running. Never waits
 * for a host.
 */
void reconciler_tick(struct reconciler *r, int64_t now_ms);

#endif
