/*
 * appmetric.h: each instance's last value of the application metrics
 * the groups' policies name (docs/scaling.md, "Application metrics").
 *
 * Guests report metrics in their heartbeats; the HTTP thread keeps only
 * those some policy names (appm_index: at most POLICY_APP_DAEMON_MAX
 * names) and posts them with the heartbeat; the loop stores them here
 * when it flushes heartbeats (appm_put), the scaler reads them for each
 * decision, and GET /v1/instances/ID/metrics shows them. Memory: one
 * entry per instance that reported within the retention, each with a
 * value and a time per name. Thread-safe (one lock): the loop writes,
 * HTTP threads read.
 */
#ifndef VA_APPMETRIC_H
#define VA_APPMETRIC_H

#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

#define APPM_NAMES POLICY_APP_DAEMON_MAX

struct appm;

struct appm *appm_new(void);
void appm_free(struct appm *a);

/*
 * Loop: the names the policies name now (deduplicated by the caller is
 * not needed). When they change, the generation changes, and values of
 * names no longer named are dropped; values posted with an older
 * generation are ignored by appm_put.
 */
void appm_set_names(struct appm *a, const char *const *names, unsigned n);
/* Any thread: the index of name and the generation it belongs to, or -1. */
int appm_index(struct appm *a, const char *name, uint32_t *gen);
/* Loop: instance id reported v for index idx at wall_ms (of generation
 * gen; ignored if the names changed since). */
void appm_put(struct appm *a, const char *id, uint32_t gen, unsigned idx,
	      double v, int64_t wall_ms);
/* Any thread: id's last value of name and when it came; false if none. */
bool appm_get(struct appm *a, const char *id, const char *name, double *v,
	      int64_t *wall_ms);

struct appm_value {
	char name[POLICY_APP_NAME_MAX];
	double value;
	int64_t wall_ms;
};
/* Any thread: every value id has, into out; how many. */
unsigned appm_instance(struct appm *a, const char *id,
		       struct appm_value out[APPM_NAMES]);
/* Loop: forget instances whose newest report is older than wall_ms. */
void appm_forget_before(struct appm *a, int64_t wall_ms);
/* How many instances are kept (for tests). */
unsigned appm_count(struct appm *a);

#endif
