/*
 * recover.h: recovery of the intent journal (store.h) after a crash or a
 * restart, daemon-internal, on the loop's thread (reconcile.c calls it at
 * start and every reconciliation period):
 *   - a provisioning journaled as started: kept (provisioning -> booting);
 *   - any other journaled provisioning: rolled back (domain and volumes
 *     removed, instance ended); a journaled removal: finished;
 *   - an instance requested but never provisioned: ended; one
 *     provisioning, draining or deleting without a journal entry: whatever
 *     exists is removed and the instance ended.
 * An instance a worker is busy with is skipped; one whose host does not
 * answer waits for the next try.
 */
#ifndef VA_RECOVER_H
#define VA_RECOVER_H

struct daemon;
struct store_instance;

/* The journal's pending entries, each finished or rolled back. */
void recover_journal(struct daemon *d);
/* Instances whose action has no journal entry (died before it began). */
void recover_unjournaled(struct daemon *d);

/* Remove an instance's domain and volumes now (instance_remove(), no
 * drain) on the loop's own connection to host. 0, or -1 with err_set(). */
int recover_remove_now(struct daemon *d, const char *host, const char *domain,
		       const char *id);
/* Move an instance to gone through the legal path from where it is. */
void recover_end_instance(struct daemon *d, const struct store_instance *si);

#endif
