/*
 * mstore.h: the built-in metrics store (the default sink).
 *
 * One bounded ring per instance, keyed by the domain's raw UUID, holding
 * fixed-size samples of the base metrics the store keeps (5 + 2 * kept
 * bytes: a 100 ms-resolution timestamp, presence bits and each kept base
 * rate as a 16-bit float, 0.05 % relative precision, see
 * mstore_encode()): 7 bytes when only CPU is collected, 21 with every
 * base metric. The ring has room for
 * retention / interval samples (+2 for jitter); older samples are
 * overwritten. Queries return mean, max and last per metric over a time
 * window, derived sums (disk/net totals) computed per sample.
 *
 * Times are whatever clock the caller uses consistently (the daemon uses
 * the monotonic clock in ms). Samples must arrive in increasing time per
 * instance; an older or equal one is ignored.
 *
 * Thread-safe (a read-write lock): the daemon writes, the HTTP server
 * reads.
 */
#ifndef VA_MSTORE_H
#define VA_MSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "rates.h"

#define MSTORE_UUID_LEN 16

struct mstore;

/*
 * retention_ms: how far back samples are kept; interval_ms: the expected
 * time between samples (the collection tick). Both > 0. Never NULL.
 */
struct mstore *mstore_new(int64_t retention_ms, int64_t interval_ms);
void mstore_free(struct mstore *s); /* accepts NULL */

/* Every base metric (bits 0 .. RATES_N_BASE - 1 of enum rates_metric). */
#define MSTORE_ALL ((1u << RATES_N_BASE) - 1)

/*
 * Keep only these base metrics (bit (1u << enum rates_metric); bits of
 * derived metrics are ignored): what the collector is asked for, so that
 * a CPU-only daemon does not keep room for metrics it never sees. A new
 * store keeps MSTORE_ALL. Changing the set re-encodes every ring (the
 * samples of metrics kept before and after stay; a metric newly kept
 * starts empty). mstore_metrics() returns the set.
 */
void mstore_set_metrics(struct mstore *s, unsigned keep);
unsigned mstore_metrics(struct mstore *s);

/* Append a sample for an instance (created on first use). */
void mstore_put(struct mstore *s, const unsigned char uuid[MSTORE_UUID_LEN],
		int64_t t_ms, const struct rates *r);

/*
 * Statistics over samples with from_ms <= t <= to_ms. Returns 0 (out
 * filled; out->present may be 0 when no sample fell in the window), or -1
 * when the store knows no such instance.
 */
int mstore_query(struct mstore *s, const unsigned char uuid[MSTORE_UUID_LEN],
		 int64_t from_ms, int64_t to_ms, struct rates_window *out);

/*
 * The decision engine's input for a group: rates_group over the window of
 * each listed instance (the caller lists the group's instances past their
 * warm-up). Unknown instances are skipped. Returns how many were found.
 */
size_t mstore_query_group(struct mstore *s,
			  const unsigned char (*uuids)[MSTORE_UUID_LEN], size_t n,
			  int64_t from_ms, int64_t to_ms, struct rates_group *out);

/* Forget an instance (no-op when unknown). */
void mstore_remove(struct mstore *s, const unsigned char uuid[MSTORE_UUID_LEN]);
/* Forget instances whose newest sample is older than before_ms. Returns
 * how many were removed. */
size_t mstore_prune(struct mstore *s, int64_t before_ms);

size_t mstore_count(struct mstore *s);
/* Samples a ring holds. */
size_t mstore_capacity(const struct mstore *s);
/* Bytes one instance costs: its ring, its header and its hash slot. */
size_t mstore_bytes_per_instance(const struct mstore *s);

/* The 16-bit value encoding (exposed for tests): v >= 0, relative error
 * <= 1/2048 above 8, absolute <= 1/512 below; saturates at 1.7e10. */
uint16_t mstore_encode(double v);
double mstore_decode(uint16_t x);

/* Call fn for every instance (under the read lock: fn must not call
 * mstore functions that write). */
void mstore_foreach(struct mstore *s,
		    void (*fn)(const unsigned char uuid[MSTORE_UUID_LEN],
			       void *opaque),
		    void *opaque);

#endif
