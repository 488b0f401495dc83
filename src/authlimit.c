/*
 * authlimit.c: see authlimit.h.
 *
 * A flat array scanned in full: a few thousand slots, a 64-bit hash
 * compared before the key, a few microseconds a request. A hash table
 * would be faster but its buckets could be filled one at a time by a
 * client who guesses the hash; the scan has no such weak spot.
 *
 * Slots are taken in order and the array grows (doubling) as they are:
 * a scan reads the slots ever taken, not the table's capacity. The HTTP
 * server's tables hold 6,145 slots of 152 bytes; allocated and scanned
 * in full, every request read 900 KiB and kept it resident, though
 * most daemons never see a failed authentication (bench/README.md,
 * "Memory, fourth pass").
 */
#include "authlimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define KEY_MAX 128

struct slot {
	uint64_t hash;
	int64_t start_ms; /* first failure of the window */
	unsigned failures; /* 0: free */
	char key[KEY_MAX];
};

struct authlimit {
	pthread_mutex_t lock;
	size_t n;     /* capacity */
	size_t used;  /* slots ever taken: v[0..used) */
	size_t alloc; /* room in v */
	unsigned limit;
	int64_t window_ms;
	struct slot *v;
};

static uint64_t
key_hash(const char *key)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (size_t i = 0; key[i] && i < KEY_MAX - 1; i++) {
		h ^= (unsigned char)key[i];
		h *= 1099511628211ull;
	}
	return h;
}

struct authlimit *
authlimit_new(size_t slots, unsigned limit, int64_t window_ms)
{
	struct authlimit *t = xcalloc(1, sizeof(*t));

	pthread_mutex_init(&t->lock, NULL);
	t->n = slots ? slots : 1;
	t->limit = limit ? limit : 1;
	t->window_ms = window_ms > 0 ? window_ms : 1;
	return t;
}

void
authlimit_free(struct authlimit *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->v);
	free(t);
}

static bool
live(const struct authlimit *t, const struct slot *s, int64_t now_ms)
{
	return s->failures && now_ms - s->start_ms < t->window_ms;
}

/* The slot of key, live or expired (a key has at most one), or NULL. */
static struct slot *
find(struct authlimit *t, const char *key, uint64_t h)
{
	for (size_t i = 0; i < t->used; i++) {
		struct slot *s = &t->v[i];

		if (s->hash == h && s->failures &&
		    strncmp(s->key, key, KEY_MAX - 1) == 0)
			return s;
	}
	return NULL;
}

/* A slot for a new entry: an expired one, else one never taken, else
 * NULL (every slot holds a live entry). */
static struct slot *
take(struct authlimit *t, int64_t now_ms)
{
	for (size_t i = 0; i < t->used; i++)
		if (!live(t, &t->v[i], now_ms))
			return &t->v[i];
	if (t->used == t->n)
		return NULL;
	if (t->used == t->alloc) {
		size_t room = t->alloc ? t->alloc * 2 : 16;

		if (room > t->n)
			room = t->n;
		t->v = xreallocarray(t->v, room, sizeof(*t->v));
		t->alloc = room;
	}
	return &t->v[t->used++];
}

enum authlimit_state
authlimit_check(struct authlimit *t, const char *key, int64_t now_ms)
{
	uint64_t h = key_hash(key);
	enum authlimit_state st = AUTHLIMIT_ABSENT;
	struct slot *s;

	pthread_mutex_lock(&t->lock);
	s = find(t, key, h);
	if (s && live(t, s, now_ms))
		st = s->failures >= t->limit ? AUTHLIMIT_BLOCKED
					     : AUTHLIMIT_COUNTING;
	pthread_mutex_unlock(&t->lock);
	return st;
}

enum authlimit_result
authlimit_fail(struct authlimit *t, const char *key, int64_t now_ms)
{
	uint64_t h = key_hash(key);
	enum authlimit_result r;
	struct slot *s;

	pthread_mutex_lock(&t->lock);
	s = find(t, key, h);
	if (s && !live(t, s, now_ms)) {
		s->failures = 0; /* its window is over: a new one */
		s->start_ms = now_ms;
	}
	if (!s) {
		/* a free or expired slot; never a live one (authlimit.h) */
		s = take(t, now_ms);
		if (!s) {
			pthread_mutex_unlock(&t->lock);
			return AUTHLIMIT_FULL;
		}
		memset(s, 0, sizeof(*s));
		s->hash = h;
		s->start_ms = now_ms;
		for (size_t i = 0; key[i] && i < KEY_MAX - 1; i++)
			s->key[i] = key[i];
	}
	if (s->failures >= t->limit) {
		r = AUTHLIMIT_OVER;
	} else {
		s->failures++;
		r = s->failures == t->limit ? AUTHLIMIT_REACHED
					    : AUTHLIMIT_COUNTED;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

size_t
authlimit_live(struct authlimit *t, int64_t now_ms)
{
	size_t n = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->used; i++)
		n += live(t, &t->v[i], now_ms);
	pthread_mutex_unlock(&t->lock);
	return n;
}

bool
ratelimit_take(struct ratelimit *r, int64_t now_ms, unsigned long *skipped)
{
	if (!r->started) {
		r->started = true;
		r->tokens = r->burst;
		r->last_ms = now_ms;
	} else if (now_ms > r->last_ms && r->period_ms > 0) {
		r->tokens += (double)(now_ms - r->last_ms) / (double)r->period_ms;
		if (r->tokens > r->burst)
			r->tokens = r->burst;
		r->last_ms = now_ms;
	}
	if (r->tokens < 1.0) {
		r->skipped++;
		return false;
	}
	r->tokens -= 1.0;
	if (skipped)
		*skipped = r->skipped;
	r->skipped = 0;
	return true;
}
