/*
 * hooks.h: sending lifecycle hooks (groups.*.hooks, docs/operations.md).
 *
 * The loop decides (converge.c: an instance waits in launch_wait or
 * terminate_wait) and hands each call here; worker threads of this
 * module POST the signed JSON event, retrying with exponential backoff
 * until the call's deadline, and post what happened (sent, failed,
 * given up) for the loop to take (events, /metrics). Nothing here
 * touches the loop's state or the store: the wait itself, its deadline
 * and its result are in the store (store_hook_wait_*), written by the
 * loop and, for the result, by the HTTP API.
 *
 * The signature: X-VA-Timestamp is the Unix time (seconds) of the
 * attempt, X-VA-Signature is "sha256=" and the lowercase hex
 * HMAC-SHA256, keyed with the hook's secret, of TIMESTAMP "." BODY. A
 * receiver recomputes it, compares in constant time and refuses a
 * timestamp more than a few minutes from its clock (a replayed request).
 *
 * Threads: hooks_* calls other than hooks_sign() come from the loop; the
 * workers are this module's own.
 */
#ifndef VA_HOOKS_H
#define VA_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* One call: everything is copied by hooks_send(). */
struct hook_call {
	const char *id;              /* the instance */
	const char *group;
	enum store_hook hook;
	const char *url;
	const char *key;             /* the HMAC key (the secret's bytes) */
	const char *body;            /* the JSON event */
	int64_t deadline_ms;         /* wall clock: no attempt after it */
	int64_t backoff_ms, backoff_max_ms;
};

enum hook_outcome {
	HOOK_SENT,    /* answered 2xx */
	HOOK_FAILED,  /* an attempt failed; retried later */
	HOOK_GAVE_UP, /* failed, and the deadline leaves no room for another */
	HOOK_OUTCOME_LAST
};

/* What a worker reports to the loop. */
struct hook_report {
	char id[STORE_ID_LEN + 1];
	char group[256];
	enum store_hook hook;
	enum hook_outcome outcome;
	unsigned attempt;            /* 1 for the first */
	char why[256];               /* HOOK_FAILED, HOOK_GAVE_UP */
};

struct hooks;

/* Start n worker threads; NULL with err_set() on failure. */
struct hooks *hooks_new(unsigned n);
/* Stop the workers (a transfer in flight is aborted) and free; accepts NULL. */
void hooks_free(struct hooks *h);

/* Queue a call (replacing one queued for the same instance). */
void hooks_send(struct hooks *h, const struct hook_call *c);
/* Whether this run has a call for id: queued, in flight, delivered or
 * given up (a wait whose call is known is not sent again). */
bool hooks_known(struct hooks *h, const char *id);
/* The wait of id ended: drop its call (a queued retry is not made). */
void hooks_forget(struct hooks *h, const char *id);
/* Take the reports so far; *v (freed by the caller) holds the count returned. */
size_t hooks_reports(struct hooks *h, struct hook_report **v);

/*
 * The signature of body at timestamp (decimal Unix seconds): lowercase
 * hex HMAC-SHA256 of TIMESTAMP "." BODY with key, into out[65]. 0, or -1
 * with err_set().
 */
int hooks_sign(const char *key, size_t key_len, const char *timestamp,
	       const char *body, size_t body_len, char out[65]);

/* "sent", "failed", "gave_up" */
const char *hook_outcome_name(enum hook_outcome o);

#endif
