/*
 * mstore.c: bounded per-instance rings of compact samples (see mstore.h).
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mstore.h"
#include "util.h"

/*
 * One sample: a 32-bit time in deciseconds since the store's base time, a
 * presence byte (bit per base metric) and the kept metrics' values as
 * 16-bit floats of our own, in metric order, packed without padding (read
 * and written with memcpy): 5 + 2 * kept bytes, 7 for a CPU-only store,
 * 21 with every base metric. Values: an 11-bit mantissa m and a 5-bit
 * exponent e, value = m * 2^(e - 8): steps of 1/256 near zero (0.004 %
 * for percentages), a relative error of at most 1/2048 (0.05 %) above 8,
 * and up to 2047 * 2^23 (1.7e10, e.g. 17 GB/s). Rates are never
 * negative; larger values saturate.
 */
#define SLOT_T 0        /* int32_t t_ds */
#define SLOT_PRESENT 4  /* uint8_t */
#define SLOT_V 5        /* uint16_t values of the kept metrics */
_Static_assert(RATES_N_BASE <= 8, "presence bits fit in 8 bits");

#define MF_BIAS 8
#define MF_MAX_E 31
#define MF_MAX_M 2047

uint16_t
mstore_encode(double v)
{
	int e = 0;
	double m;

	if (!(v > 0)) /* also NaN */
		return 0;
	m = ldexp(v, MF_BIAS);
	while (m >= MF_MAX_M + 0.5 && e < MF_MAX_E) {
		m /= 2;
		e++;
	}
	m = floor(m + 0.5);
	if (m > MF_MAX_M)
		m = MF_MAX_M; /* saturated */
	return (uint16_t)((unsigned)e << 11 | (unsigned)m);
}

/* 2^(e - MF_BIAS) for every exponent e: m * 2^k is exact in a double, so
 * this is ldexp()'s result, without its call on every decoded value. */
static const double mf_scale[MF_MAX_E + 1] = {
	0x1p-8, 0x1p-7, 0x1p-6, 0x1p-5, 0x1p-4, 0x1p-3, 0x1p-2, 0x1p-1,
	0x1p0, 0x1p1, 0x1p2, 0x1p3, 0x1p4, 0x1p5, 0x1p6, 0x1p7, 0x1p8, 0x1p9,
	0x1p10, 0x1p11, 0x1p12, 0x1p13, 0x1p14, 0x1p15, 0x1p16, 0x1p17,
	0x1p18, 0x1p19, 0x1p20, 0x1p21, 0x1p22, 0x1p23
};

double
mstore_decode(uint16_t x)
{
	return (double)(x & 0x7ff) * mf_scale[x >> 11];
}

struct minst {
	struct minst *next; /* hash chain */
	unsigned char uuid[MSTORE_UUID_LEN];
	uint32_t head;      /* index of the next slot to write */
	uint32_t count;     /* valid samples */
	unsigned char ring[]; /* cap slots of slot_size bytes */
};

struct mstore {
	pthread_rwlock_t lock;
	size_t cap;          /* samples per ring */
	unsigned keep;       /* base metrics kept: bit (1u << metric) */
	size_t slot_size;    /* SLOT_V + 2 * popcount(keep) */
	bool have_base;
	int64_t base_ms;
	struct minst **buckets;
	size_t n_buckets;    /* power of two */
	size_t count;
};

struct mstore *
mstore_new(int64_t retention_ms, int64_t interval_ms)
{
	struct mstore *s = xcalloc(1, sizeof(*s));

	if (interval_ms <= 0)
		interval_ms = 1000;
	if (retention_ms < interval_ms)
		retention_ms = interval_ms;
	s->cap = (size_t)(retention_ms / interval_ms) + 2;
	s->keep = MSTORE_ALL;
	s->slot_size = SLOT_V + 2 * RATES_N_BASE;
	pthread_rwlock_init(&s->lock, NULL);
	s->n_buckets = 64;
	s->buckets = xcalloc(s->n_buckets, sizeof(*s->buckets));
	return s;
}

void
mstore_free(struct mstore *s)
{
	if (!s)
		return;
	for (size_t b = 0; b < s->n_buckets; b++) {
		struct minst *i = s->buckets[b], *next;

		for (; i; i = next) {
			next = i->next;
			free(i);
		}
	}
	free(s->buckets);
	pthread_rwlock_destroy(&s->lock);
	free(s);
}

static size_t
hash_uuid(const unsigned char *u)
{
	uint64_t h = 1469598103934665603ull;

	for (int i = 0; i < MSTORE_UUID_LEN; i++) {
		h ^= u[i];
		h *= 1099511628211ull;
	}
	return (size_t)h;
}

static struct minst **
find_slot(struct mstore *s, const unsigned char *uuid)
{
	struct minst **p = &s->buckets[hash_uuid(uuid) & (s->n_buckets - 1)];

	while (*p && memcmp((*p)->uuid, uuid, MSTORE_UUID_LEN) != 0)
		p = &(*p)->next;
	return p;
}

static void
grow(struct mstore *s)
{
	size_t n = s->n_buckets * 2;
	struct minst **nb = xcalloc(n, sizeof(*nb));

	for (size_t b = 0; b < s->n_buckets; b++) {
		struct minst *i = s->buckets[b], *next;

		for (; i; i = next) {
			size_t k = hash_uuid(i->uuid) & (n - 1);

			next = i->next;
			i->next = nb[k];
			nb[k] = i;
		}
	}
	free(s->buckets);
	s->buckets = nb;
	s->n_buckets = n;
}

static int32_t
to_ds(const struct mstore *s, int64_t t_ms)
{
	int64_t d = t_ms - s->base_ms;

	/* Floor division so that negative offsets order correctly. */
	d = d >= 0 ? d / 100 : -((-d + 99) / 100);
	if (d > INT32_MAX)
		d = INT32_MAX;
	if (d < INT32_MIN)
		d = INT32_MIN;
	return (int32_t)d;
}

static unsigned char *
slot_at(const struct mstore *s, struct minst *i, uint32_t idx)
{
	return i->ring + (size_t)idx * s->slot_size;
}

static int32_t
slot_t(const unsigned char *sl)
{
	int32_t t;

	memcpy(&t, sl + SLOT_T, sizeof(t));
	return t;
}

static uint32_t
newest_idx(const struct mstore *s, const struct minst *i)
{
	return (i->head + (uint32_t)s->cap - 1) % (uint32_t)s->cap;
}

/* Encode the kept metrics of r into slot sl. */
static void
slot_write(const struct mstore *s, unsigned char *sl, int32_t t,
	   const struct rates *r)
{
	uint8_t present = 0;
	size_t k = 0;

	memset(sl, 0, s->slot_size);
	memcpy(sl + SLOT_T, &t, sizeof(t));
	for (int m = 0; m < RATES_N_BASE; m++) {
		if (!((s->keep >> m) & 1u))
			continue;
		if (rates_has(r, m)) {
			uint16_t v = mstore_encode(r->v[m]);

			present |= (uint8_t)(1u << m);
			memcpy(sl + SLOT_V + 2 * k, &v, sizeof(v));
		}
		k++;
	}
	sl[SLOT_PRESENT] = present;
}

/* Decode slot sl (of a store whose kept metrics are keep) into r. */
static void
slot_read(unsigned keep, const unsigned char *sl, struct rates *r)
{
	size_t k = 0;

	memset(r, 0, sizeof(*r));
	for (int m = 0; m < RATES_N_BASE; m++) {
		uint16_t v;

		if (!((keep >> m) & 1u))
			continue;
		if ((sl[SLOT_PRESENT] >> m) & 1u) {
			memcpy(&v, sl + SLOT_V + 2 * k, sizeof(v));
			rates_set(r, m, mstore_decode(v));
		}
		k++;
	}
}

void
mstore_put(struct mstore *s, const unsigned char uuid[MSTORE_UUID_LEN],
	   int64_t t_ms, const struct rates *r)
{
	struct minst **p, *i;
	int32_t t;

	pthread_rwlock_wrlock(&s->lock);
	if (!s->have_base) {
		s->base_ms = t_ms;
		s->have_base = true;
	}
	t = to_ds(s, t_ms);
	p = find_slot(s, uuid);
	i = *p;
	if (!i) {
		/* grow() moves the links, not the entries: i stays valid */
		i = xcalloc(1, sizeof(*i) + s->cap * s->slot_size);
		memcpy(i->uuid, uuid, MSTORE_UUID_LEN);
		*p = i;
		if (++s->count > s->n_buckets)
			grow(s);
	}
	if (i->count > 0 && t <= slot_t(slot_at(s, i, newest_idx(s, i))))
		goto cleanup;
	slot_write(s, slot_at(s, i, i->head), t, r);
	i->head = (i->head + 1) % (uint32_t)s->cap;
	if (i->count < s->cap)
		i->count++;
cleanup:
	pthread_rwlock_unlock(&s->lock);
}

static void
window_add(struct rates_window *w, enum rates_metric m, double v, bool newest)
{
	if (!w->n[m] || v > w->max[m])
		w->max[m] = v;
	if (newest || !w->n[m])
		w->last[m] = v;
	w->mean[m] += v;
	w->n[m]++;
	w->present |= 1u << m;
}

/* Add one sample's value of the derived metric sum = a + b to w when
 * both parts are in it (as rates_derive() does). */
static void
window_add_sum(struct rates_window *w, unsigned have, const double *v,
	       enum rates_metric sum, enum rates_metric a, enum rates_metric b)
{
	if (((have >> a) & 1u) && ((have >> b) & 1u))
		window_add(w, sum, v[a] + v[b], false);
}

int
mstore_query(struct mstore *s, const unsigned char uuid[MSTORE_UUID_LEN],
	     int64_t from_ms, int64_t to_ms, struct rates_window *out)
{
	struct minst *i;
	int rc = -1;
	int32_t from, to;
	size_t pos[RATES_N_BASE], k = 0;

	memset(out, 0, sizeof(*out));
	/* Where each kept metric's value sits in a slot. */
	for (int m = 0; m < RATES_N_BASE; m++)
		if ((s->keep >> m) & 1u)
			pos[m] = SLOT_V + 2 * k++;
	pthread_rwlock_rdlock(&s->lock);
	i = *find_slot(s, uuid);
	if (!i)
		goto cleanup;
	rc = 0;
	from = to_ds(s, from_ms);
	to = to_ds(s, to_ms);
	/*
	 * Newest first; stop at the first sample older than the window. Runs
	 * for every instance at every decision: only the metrics present in
	 * a slot are decoded (slot_read() and rates_derive() do the same
	 * work for all of them); decoded values are always finite.
	 */
	for (uint32_t n = 0; n < i->count; n++) {
		uint32_t idx = (i->head + (uint32_t)s->cap - 1 - n) % (uint32_t)s->cap;
		const unsigned char *sl = slot_at(s, i, idx);
		int32_t t = slot_t(sl);
		unsigned have = sl[SLOT_PRESENT] & s->keep & ((1u << RATES_N_BASE) - 1);
		double v[RATES_N_BASE] = {0};

		if (t < from)
			break;
		if (t > to)
			continue;
		out->samples++;
		if (!out->last_t_ms)
			out->last_t_ms = s->base_ms + (int64_t)t * 100;
		for (unsigned b = have; b; b &= b - 1) {
			int m = __builtin_ctz(b);
			uint16_t x;

			memcpy(&x, sl + pos[m], sizeof(x));
			v[m] = mstore_decode(x);
			window_add(out, (enum rates_metric)m, v[m], false);
		}
		window_add_sum(out, have, v, RATES_DISK_BPS, RATES_DISK_RD_BPS,
			       RATES_DISK_WR_BPS);
		window_add_sum(out, have, v, RATES_DISK_IOPS, RATES_DISK_RD_IOPS,
			       RATES_DISK_WR_IOPS);
		window_add_sum(out, have, v, RATES_NET_BPS, RATES_NET_RX_BPS,
			       RATES_NET_TX_BPS);
	}
	for (int m = 0; m < RATES_LAST; m++)
		if (out->n[m])
			out->mean[m] /= out->n[m];
cleanup:
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

size_t
mstore_query_group(struct mstore *s,
		   const unsigned char (*uuids)[MSTORE_UUID_LEN], size_t n,
		   int64_t from_ms, int64_t to_ms, struct rates_group *out)
{
	size_t found = 0;

	rates_group_init(out);
	for (size_t i = 0; i < n; i++) {
		struct rates_window w;

		if (mstore_query(s, uuids[i], from_ms, to_ms, &w) < 0)
			continue;
		found++;
		rates_group_add(out, &w);
	}
	rates_group_finish(out);
	return found;
}

void
mstore_remove(struct mstore *s, const unsigned char uuid[MSTORE_UUID_LEN])
{
	struct minst **p, *i;

	pthread_rwlock_wrlock(&s->lock);
	p = find_slot(s, uuid);
	i = *p;
	if (i) {
		*p = i->next;
		free(i);
		s->count--;
	}
	pthread_rwlock_unlock(&s->lock);
}

size_t
mstore_prune(struct mstore *s, int64_t before_ms)
{
	size_t removed = 0;
	int32_t before;

	pthread_rwlock_wrlock(&s->lock);
	before = to_ds(s, before_ms);
	for (size_t b = 0; b < s->n_buckets; b++) {
		struct minst **p = &s->buckets[b];

		while (*p) {
			struct minst *i = *p;

			if (i->count == 0 ||
			    slot_t(slot_at(s, i, newest_idx(s, i))) < before) {
				*p = i->next;
				free(i);
				s->count--;
				removed++;
			} else {
				p = &i->next;
			}
		}
	}
	pthread_rwlock_unlock(&s->lock);
	return removed;
}

size_t
mstore_count(struct mstore *s)
{
	size_t n;

	pthread_rwlock_rdlock(&s->lock);
	n = s->count;
	pthread_rwlock_unlock(&s->lock);
	return n;
}

size_t
mstore_capacity(const struct mstore *s)
{
	return s->cap;
}

size_t
mstore_bytes_per_instance(const struct mstore *s)
{
	/* The hash table keeps about one bucket pointer per instance. */
	return sizeof(struct minst) + s->cap * s->slot_size +
	       sizeof(struct minst *);
}

void
mstore_foreach(struct mstore *s,
	       void (*fn)(const unsigned char uuid[MSTORE_UUID_LEN], void *),
	       void *opaque)
{
	pthread_rwlock_rdlock(&s->lock);
	for (size_t b = 0; b < s->n_buckets; b++)
		for (struct minst *i = s->buckets[b]; i; i = i->next)
			fn(i->uuid, opaque);
	pthread_rwlock_unlock(&s->lock);
}

void
mstore_set_metrics(struct mstore *s, unsigned keep)
{
	size_t nkeep = 0, size;

	keep &= MSTORE_ALL;
	for (int m = 0; m < RATES_N_BASE; m++)
		nkeep += (keep >> m) & 1u;
	size = SLOT_V + 2 * nkeep;
	pthread_rwlock_wrlock(&s->lock);
	if (keep == s->keep)
		goto cleanup;
	/* Re-encode every ring in the new layout: the metrics kept by both
	 * layouts keep their samples, the others start empty. */
	for (size_t b = 0; b < s->n_buckets; b++) {
		struct minst **p = &s->buckets[b];

		while (*p) {
			struct minst *old = *p;
			struct minst *i = xcalloc(1, sizeof(*i) + s->cap * size);
			struct mstore to = {.keep = keep, .slot_size = size};

			memcpy(i->uuid, old->uuid, MSTORE_UUID_LEN);
			i->head = old->head;
			i->count = old->count;
			i->next = old->next;
			for (uint32_t k = 0; k < (uint32_t)s->cap; k++) {
				const unsigned char *sl = slot_at(s, old, k);
				struct rates r;

				slot_read(s->keep, sl, &r);
				slot_write(&to, slot_at(&to, i, k), slot_t(sl), &r);
			}
			*p = i;
			p = &i->next;
			free(old);
		}
	}
	s->keep = keep;
	s->slot_size = size;
cleanup:
	pthread_rwlock_unlock(&s->lock);
}

unsigned
mstore_metrics(struct mstore *s)
{
	unsigned keep;

	pthread_rwlock_rdlock(&s->lock);
	keep = s->keep;
	pthread_rwlock_unlock(&s->lock);
	return keep;
}
