/*
 * appmetric.c: the last value of each named application metric per
 * instance (appmetric.h). A sorted array searched by id: heartbeats come
 * in sorted per flush, instances are few thousands at most.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appmetric.h"
#include "store.h"
#include "util.h"

struct appm_entry {
	char id[STORE_ID_LEN + 1];
	double v[APPM_NAMES];
	int64_t t[APPM_NAMES];   /* 0: no value */
	int64_t newest;
};

struct appm {
	pthread_mutex_t m;
	char names[APPM_NAMES][POLICY_APP_NAME_MAX];
	unsigned n_names;
	uint32_t gen;
	struct appm_entry *e;
	size_t n, alloc;
};

struct appm *
appm_new(void)
{
	struct appm *a = xcalloc(1, sizeof(*a));

	pthread_mutex_init(&a->m, NULL);
	return a;
}

void
appm_free(struct appm *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->m);
	free(a->e);
	free(a);
}

static int
find_name(const struct appm *a, const char *name)
{
	for (unsigned i = 0; i < a->n_names; i++)
		if (strcmp(a->names[i], name) == 0)
			return (int)i;
	return -1;
}

void
appm_set_names(struct appm *a, const char *const *names, unsigned n)
{
	char nn[APPM_NAMES][POLICY_APP_NAME_MAX];
	int map[APPM_NAMES];
	unsigned k = 0;
	bool same;

	for (unsigned i = 0; i < n && k < APPM_NAMES; i++) {
		bool dup = false;

		for (unsigned j = 0; j < k; j++)
			dup = dup || strcmp(nn[j], names[i]) == 0;
		if (!dup)
			snprintf(nn[k++], sizeof(nn[0]), "%s", names[i]);
	}
	pthread_mutex_lock(&a->m);
	same = k == a->n_names;
	for (unsigned i = 0; same && i < k; i++)
		same = strcmp(nn[i], a->names[i]) == 0;
	if (same) {
		pthread_mutex_unlock(&a->m);
		return;
	}
	/* keep the values of names still named, at their new index */
	for (unsigned i = 0; i < k; i++)
		map[i] = find_name(a, nn[i]);
	for (size_t e = 0; e < a->n; e++) {
		struct appm_entry *x = &a->e[e];
		double v[APPM_NAMES];
		int64_t t[APPM_NAMES];

		for (unsigned i = 0; i < k; i++) {
			v[i] = map[i] >= 0 ? x->v[map[i]] : 0;
			t[i] = map[i] >= 0 ? x->t[map[i]] : 0;
		}
		memset(x->v, 0, sizeof(x->v));
		memset(x->t, 0, sizeof(x->t));
		memcpy(x->v, v, k * sizeof(v[0]));
		memcpy(x->t, t, k * sizeof(t[0]));
	}
	memcpy(a->names, nn, sizeof(nn));
	a->n_names = k;
	a->gen++;
	pthread_mutex_unlock(&a->m);
}

int
appm_index(struct appm *a, const char *name, uint32_t *gen)
{
	int i;

	pthread_mutex_lock(&a->m);
	i = find_name(a, name);
	*gen = a->gen;
	pthread_mutex_unlock(&a->m);
	return i;
}

/* Binary search; *at is where id is or would go. */
static bool
lookup(const struct appm *a, const char *id, size_t *at)
{
	size_t lo = 0, hi = a->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(a->e[mid].id, id);

		if (c == 0) {
			*at = mid;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*at = lo;
	return false;
}

void
appm_put(struct appm *a, const char *id, uint32_t gen, unsigned idx, double v,
	 int64_t wall_ms)
{
	size_t at;
	struct appm_entry *x;

	if (strlen(id) > STORE_ID_LEN)
		return;
	pthread_mutex_lock(&a->m);
	if (gen != a->gen || idx >= a->n_names) {
		pthread_mutex_unlock(&a->m);
		return;
	}
	if (!lookup(a, id, &at)) {
		if (a->n == a->alloc) {
			a->alloc = a->alloc ? 2 * a->alloc : 64;
			a->e = xreallocarray(a->e, a->alloc, sizeof(*a->e));
		}
		memmove(&a->e[at + 1], &a->e[at], (a->n - at) * sizeof(*a->e));
		a->n++;
		memset(&a->e[at], 0, sizeof(a->e[at]));
		snprintf(a->e[at].id, sizeof(a->e[at].id), "%s", id);
	}
	x = &a->e[at];
	if (wall_ms >= x->t[idx]) {
		x->v[idx] = v;
		x->t[idx] = wall_ms;
	}
	if (wall_ms > x->newest)
		x->newest = wall_ms;
	pthread_mutex_unlock(&a->m);
}

bool
appm_get(struct appm *a, const char *id, const char *name, double *v,
	 int64_t *wall_ms)
{
	size_t at;
	int i;
	bool ok = false;

	pthread_mutex_lock(&a->m);
	i = find_name(a, name);
	if (i >= 0 && lookup(a, id, &at) && a->e[at].t[i]) {
		*v = a->e[at].v[i];
		*wall_ms = a->e[at].t[i];
		ok = true;
	}
	pthread_mutex_unlock(&a->m);
	return ok;
}

unsigned
appm_instance(struct appm *a, const char *id, struct appm_value out[APPM_NAMES])
{
	size_t at;
	unsigned n = 0;

	pthread_mutex_lock(&a->m);
	if (lookup(a, id, &at)) {
		for (unsigned i = 0; i < a->n_names; i++) {
			if (!a->e[at].t[i])
				continue;
			snprintf(out[n].name, sizeof(out[n].name), "%s",
				 a->names[i]);
			out[n].value = a->e[at].v[i];
			out[n].wall_ms = a->e[at].t[i];
			n++;
		}
	}
	pthread_mutex_unlock(&a->m);
	return n;
}

void
appm_forget_before(struct appm *a, int64_t wall_ms)
{
	size_t m = 0;

	pthread_mutex_lock(&a->m);
	for (size_t i = 0; i < a->n; i++)
		if (a->e[i].newest >= wall_ms)
			a->e[m++] = a->e[i];
	a->n = m;
	pthread_mutex_unlock(&a->m);
}

unsigned
appm_count(struct appm *a)
{
	unsigned n;

	pthread_mutex_lock(&a->m);
	n = (unsigned)a->n;
	pthread_mutex_unlock(&a->m);
	return n;
}
