/*
 * reconcile_plan.h: the reconciliation of one host as a pure function:
 * what the host holds (an inventory, inventory.h) and what the state store
 * says (its rows) in, a list of actions out. No I/O: no libvirt, no store,
 * no clock, no log. reconcile.c gathers the inputs and applies the actions;
 * the tests (tests/unit/test_reconcile_plan.c) call the same function.
 *
 * The rules (docs/state.md; tests/e2e/owner_test.py and the crash tests
 * assert them end to end):
 *   - a domain without valid metadata of ours, or whose id is not an
 *     instance id (a lower-case UUID), is not ours: nothing;
 *   - a domain whose metadata names another installation (owner= is not
 *     our id, domxml_owns()) is someone else's: REPORT_FOREIGN once while
 *     it stays on the host (keys of the last pass in, of this pass out),
 *     never adopted, removed or changed; its id does not count as seen and
 *     the volumes named after its id are never deleted;
 *   - an instance id a worker is busy with (in->busy) is left alone
 *     everywhere (domain, missing domain, volumes);
 *   - a domain of ours the store does not know: ADOPT (ready if it runs,
 *     else unhealthy, so health replaces it); `legacy` when it has no
 *     owner= (made before installation ids): the shell warns and then
 *     writes our owner id into it; WARN_UNKNOWN_GROUP instead when its
 *     group is not configured (left alone);
 *   - a domain of ours without owner= whose instance is known, alive and
 *     of the same group: CLAIM (our owner id into its metadata);
 *   - a domain whose instance is gone, deleting or lost: REMOVE_DOMAIN (the
 *     shell removes it, then ends the instance);
 *   - a ready instance whose domain does not run: MARK_UNHEALTHY (a
 *     warm one's domain is saved, paused or shut off: nothing);
 *   - a booting, ready, unhealthy or draining instance of this host, or
 *     one of the warm pool's (warming, warm, resuming), whose domain is
 *     not on the host: MARK_LOST (the shell then removes what is
 *     left and the group replaces it), but only when the inventory is
 *     complete (every domain listed and its metadata known);
 *   - requested and provisioning instances are the intent journal's
 *     (reconcile_startup()): no action, whatever the host holds;
 *   - a volume named like ours (<uuid>.qcow2, <uuid>-seed.iso) of an
 *     instance the store knows as gone: DELETE_VOLUME; of an id the store
 *     does not know: WARN_UNKNOWN_VOLUMES, once per host (another daemon
 *     may share the pool), left alone.
 *   - several domains on the host carrying one instance id (a copy): the
 *     one the store names (row's domain) is the instance's; the others get
 *     WARN_DUPLICATE and are left alone, unless the instance is gone,
 *     deleting or lost (then every copy is removed). An unknown id is
 *     adopted once, with the first running copy (else the first).
 *
 * Rows and time: `rows` are read before the inventory pass began and
 * `more` (for ids the pass found that `rows` lacks, reconcile_plan_wanted())
 * after it ended. The rules that conclude from what the host lacks or from
 * a stopped domain (MARK_LOST, MARK_UNHEALTHY) use `rows` only: an instance
 * a job created while the pass ran is in `more` and may not have had its
 * domain yet, or had it not started. `in->busy` must answer for any job
 * that ran since `rows` were read; the shell also re-checks each action's
 * row before it acts (compare-and-set in the store).
 *
 * Cost: O(n log n) in domains + rows + volumes (sorting and binary search).
 *
 * Threads and ownership: no state, no threads; any thread may plan (the
 * daemon plans on its loop). The input is borrowed and never changed;
 * every pointer in the output borrows from the input, which must outlive
 * the plan; the plan's arrays are the caller's (reconcile_plan_release()).
 */
#ifndef VA_RECONCILE_PLAN_H
#define VA_RECONCILE_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "inventory.h"
#include "store.h"

struct reconcile_input {
	const char *host;                   /* the host's name */
	const char *owner;                  /* our installation id */
	const struct inventory_result *inv; /* what the host holds */
	const struct store_instance *rows;  /* instances of this host, any
					       state, read before the pass */
	size_t n_rows;
	const struct store_instance *more;  /* other ids the pass found,
					       read after it */
	size_t n_more;
	/* is a worker busy with this instance? NULL: none is */
	bool (*busy)(void *arg, const char *id);
	void *busy_arg;
	const char *const *groups;          /* configured group names */
	size_t n_groups;
	const char *const *reported;        /* foreign keys reported before */
	size_t n_reported;
	bool warned_unknown_volumes;        /* said once already */
};

enum reconcile_act {
	RECONCILE_ADOPT,                /* dom, to; legacy: claim it after */
	RECONCILE_CLAIM,                /* dom, row */
	RECONCILE_REMOVE_DOMAIN,        /* dom, row */
	RECONCILE_MARK_UNHEALTHY,       /* row, dom */
	RECONCILE_MARK_LOST,            /* row */
	RECONCILE_DELETE_VOLUME,        /* volume, row */
	RECONCILE_REPORT_FOREIGN,       /* dom */
	RECONCILE_WARN_UNKNOWN_GROUP,   /* dom */
	RECONCILE_WARN_UNKNOWN_VOLUMES, /* volume (the first found) */
	RECONCILE_WARN_DUPLICATE,       /* dom, row (NULL if unknown) */
	RECONCILE_ACT_LAST
};

struct reconcile_action {
	enum reconcile_act kind;
	const char *id;                     /* the instance id */
	const struct inventory_domain *dom; /* or NULL */
	const struct store_instance *row;   /* planned from this row, or NULL */
	const char *volume;                 /* or NULL */
	enum store_instance_state to;       /* ADOPT: READY or UNHEALTHY */
	bool legacy;                        /* ADOPT: no owner= in it */
};

struct reconcile_plan {
	struct reconcile_action *v;
	size_t n;
	/* the foreign keys (domain UUID, else name) to pass as `reported`
	 * next time: this pass's, plus the old ones when the inventory was
	 * incomplete (a domain not seen this time may still be there);
	 * sorted, unique, borrowed from the input */
	const char **foreign;
	size_t n_foreign;
};

/*
 * The ids whose rows the plan needs beyond in->rows (in->more is not
 * read): ids of our domains and volumes that in->rows lacks, not busy, not
 * another installation's. Sorted, unique, into *out (caller frees).
 * Returns the count.
 */
size_t reconcile_plan_wanted(const struct reconcile_input *in,
			     char (**out)[STORE_ID_LEN + 1]);

/* Plan one host. *out: reconcile_plan_release(). */
void reconcile_plan_make(const struct reconcile_input *in,
			 struct reconcile_plan *out);
void reconcile_plan_release(struct reconcile_plan *p);

/* "adopt", "claim", ...; NULL out of range. */
const char *reconcile_act_name(enum reconcile_act k);

/* The instance id a volume of ours is named after, into id; false if the
 * name is not one of ours (<uuid>.qcow2, <uuid>-seed.iso). */
bool reconcile_volume_instance(const char *name, char id[STORE_ID_LEN + 1]);

#endif
