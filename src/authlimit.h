/*
 * authlimit.h: limits on failed authentications, and a token bucket for
 * rate-limited complaints. Pure logic with its own lock: the HTTP server
 * keeps one table per key space (guests by address and instance, the
 * admin API by address) and tests drive it with a clock of their own.
 *
 * A table has a fixed number of slots. A key's entry counts failures
 * for `window_ms` from its first failure; once it holds `limit` failures
 * the key is blocked until the window is over.
 *
 * Eviction (why it cannot be cycled): only an expired entry is ever
 * replaced. A full table does not forget live entries to make room, so
 * a client cannot clear its own record (or a key it is guessing) by
 * failing with many other keys; the failure of a key that finds no free
 * slot is not recorded, and authlimit_fail() says so (AUTHLIMIT_FULL):
 * the caller charges it to a coarser key in another table (http.c: the
 * address), whose block then covers every key of that address that has
 * no entry of its own. See docs/http-api.md, "Limits".
 */
#ifndef VA_AUTHLIMIT_H
#define VA_AUTHLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct authlimit;

enum authlimit_state {
	AUTHLIMIT_ABSENT,   /* no live entry for the key */
	AUTHLIMIT_COUNTING, /* failures below the limit */
	AUTHLIMIT_BLOCKED,  /* limit reached: refuse until the window ends */
};

enum authlimit_result {
	AUTHLIMIT_COUNTED,   /* recorded, still below the limit */
	AUTHLIMIT_REACHED,   /* recorded, and this failure reached the limit */
	AUTHLIMIT_OVER,      /* recorded on a key already blocked */
	AUTHLIMIT_FULL,      /* not recorded: every slot holds a live entry */
};

/* slots >= 1, limit >= 1, window_ms > 0. Free with authlimit_free(). */
struct authlimit *authlimit_new(size_t slots, unsigned limit,
				int64_t window_ms);
void authlimit_free(struct authlimit *t); /* accepts NULL */

/* The key's state at now_ms (monotonic). Keys longer than 127 bytes are
 * cut there. */
enum authlimit_state authlimit_check(struct authlimit *t, const char *key,
				     int64_t now_ms);
/* Record one failed authentication of key at now_ms. */
enum authlimit_result authlimit_fail(struct authlimit *t, const char *key,
				     int64_t now_ms);
/* Live entries at now_ms (for tests and diagnostics). */
size_t authlimit_live(struct authlimit *t, int64_t now_ms);

/*
 * A token bucket: up to `burst` events at once, then one per
 * `period_ms`. ratelimit_take() says whether one may happen now and
 * counts the ones refused since the last allowed (*skipped, then reset).
 * Not locked: the caller's lock protects it. Zero-initialise, then set
 * burst and period_ms (RATELIMIT_INIT).
 */
struct ratelimit {
	unsigned burst;
	int64_t period_ms;
	double tokens;
	int64_t last_ms;
	bool started;
	unsigned long skipped;
};
#define RATELIMIT_INIT(b, p) {(b), (p), 0, 0, false, 0}

bool ratelimit_take(struct ratelimit *r, int64_t now_ms,
		    unsigned long *skipped);

#endif
