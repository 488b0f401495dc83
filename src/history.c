/*
 * history.c: see history.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "util.h"

struct history {
	int refs;                   /* __atomic */
	pthread_mutex_t m;          /* everything below */
	struct history_point *v;    /* ring of cap */
	size_t cap, n, head;        /* head: index of the oldest */
};

static size_t
clamp_cap(size_t cap)
{
	if (cap < 2)
		return 2;
	return cap > HISTORY_MAX_POINTS ? HISTORY_MAX_POINTS : cap;
}

size_t
history_capacity_for(int64_t retention_ms, int64_t interval_ms)
{
	if (retention_ms <= 0 || interval_ms <= 0)
		return 2;
	if (retention_ms / interval_ms >= HISTORY_MAX_POINTS)
		return HISTORY_MAX_POINTS;
	/* both ends of the window */
	return clamp_cap((size_t)(retention_ms / interval_ms) + 1);
}

struct history *
history_new(size_t cap)
{
	struct history *h = xcalloc(1, sizeof(*h));

	h->refs = 1;
	pthread_mutex_init(&h->m, NULL);
	h->cap = clamp_cap(cap);
	h->v = xcalloc(h->cap, sizeof(*h->v));
	return h;
}

struct history *
history_ref(struct history *h)
{
	__atomic_add_fetch(&h->refs, 1, __ATOMIC_ACQ_REL);
	return h;
}

void
history_put(struct history *h)
{
	if (!h || __atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	pthread_mutex_destroy(&h->m);
	free(h->v);
	free(h);
}

/* Under h->m: the points oldest first into out (room for h->n). */
static void
copy_out(const struct history *h, struct history_point *out)
{
	size_t first = h->cap - h->head;

	if (first > h->n)
		first = h->n;
	memcpy(out, h->v + h->head, first * sizeof(*out));
	memcpy(out + first, h->v, (h->n - first) * sizeof(*out));
}

void
history_resize(struct history *h, size_t cap)
{
	struct history_point *v;
	size_t n;

	cap = clamp_cap(cap);
	pthread_mutex_lock(&h->m);
	if (cap == h->cap) {
		pthread_mutex_unlock(&h->m);
		return;
	}
	v = xcalloc(h->n ? h->n : 1, sizeof(*v));
	copy_out(h, v);
	n = h->n < cap ? h->n : cap;
	free(h->v);
	h->v = xcalloc(cap, sizeof(*h->v));
	/* the newest n */
	memcpy(h->v, v + (h->n - n), n * sizeof(*v));
	h->cap = cap;
	h->n = n;
	h->head = 0;
	pthread_mutex_unlock(&h->m);
	free(v);
}

void
history_add(struct history *h, const struct history_point *p)
{
	pthread_mutex_lock(&h->m);
	if (h->n < h->cap) {
		h->v[(h->head + h->n) % h->cap] = *p;
		h->n++;
	} else {
		h->v[h->head] = *p;
		h->head = (h->head + 1) % h->cap;
	}
	pthread_mutex_unlock(&h->m);
}

size_t
history_read(struct history *h, struct history_point **out)
{
	size_t n;

	*out = NULL;
	pthread_mutex_lock(&h->m);
	n = h->n;
	if (n) {
		*out = xreallocarray(NULL, n, sizeof(**out));
		copy_out(h, *out);
	}
	pthread_mutex_unlock(&h->m);
	return n;
}
