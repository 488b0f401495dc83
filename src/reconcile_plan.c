/*
 * reconcile_plan.c: the pure reconcile planner (rules in reconcile_plan.h).
 *
 * Every lookup is a binary search in an array sorted once per plan: the
 * store rows by id, our domains by instance id (which also groups the
 * copies of one id), the foreign keys and ids, the configured groups and
 * the keys reported before. O(n log n) in all; the old reconcile.c
 * compared every instance with every domain seen.
 */
#include "reconcile_plan.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A lower-case UUID, as the store's instance ids are. */
static bool
is_uuid(const char *s, size_t n)
{
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return false;
		}
	}
	return true;
}

bool
reconcile_volume_instance(const char *name, char id[STORE_ID_LEN + 1])
{
	size_t n = strlen(name);

	if (n < 36 || !is_uuid(name, 36))
		return false;
	if (strcmp(name + 36, ".qcow2") != 0 &&
	    strcmp(name + 36, "-seed.iso") != 0)
		return false;
	memcpy(id, name, 36);
	id[36] = '\0';
	return true;
}

static const char *const act_names[] = {
	[RECONCILE_ADOPT] = "adopt",
	[RECONCILE_CLAIM] = "claim",
	[RECONCILE_REMOVE_DOMAIN] = "remove_domain",
	[RECONCILE_MARK_UNHEALTHY] = "mark_unhealthy",
	[RECONCILE_MARK_LOST] = "mark_lost",
	[RECONCILE_DELETE_VOLUME] = "delete_volume",
	[RECONCILE_REPORT_FOREIGN] = "report_foreign",
	[RECONCILE_WARN_UNKNOWN_GROUP] = "warn_unknown_group",
	[RECONCILE_WARN_UNKNOWN_VOLUMES] = "warn_unknown_volumes",
	[RECONCILE_WARN_DUPLICATE] = "warn_duplicate",
};

const char *
reconcile_act_name(enum reconcile_act k)
{
	return (unsigned)k < RECONCILE_ACT_LAST ? act_names[k] : NULL;
}

/* ---- the sorted views of the input ------------------------------------- */

struct rowref {
	const struct store_instance *si;
	size_t ord;   /* rows first, then more: the first of an id wins */
	bool listed;  /* from in->rows */
};

struct domref {
	const struct inventory_domain *d;
	size_t ord;   /* position in the inventory */
	bool legacy;  /* no owner= */
};

struct prep {
	struct rowref *rows;
	size_t n_rows;
	struct domref *ours;   /* by id, then inventory order */
	size_t n_ours;
	const struct inventory_domain **foreign; /* inventory order */
	size_t n_foreign;
	const char **foreign_ids;                /* sorted */
};

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
rowref_cmp(const void *a, const void *b)
{
	const struct rowref *x = a, *y = b;
	int c = strcmp(x->si->id, y->si->id);

	return c ? c : (x->ord > y->ord) - (x->ord < y->ord);
}

static int
domref_cmp(const void *a, const void *b)
{
	const struct domref *x = a, *y = b;
	int c = strcmp(x->d->meta->id, y->d->meta->id);

	return c ? c : (x->ord > y->ord) - (x->ord < y->ord);
}

static bool
in_sorted(const char *const *v, size_t n, const char *s)
{
	return n && bsearch(&s, v, n, sizeof(*v), str_cmp) != NULL;
}

static const char **
sorted_copy(const char *const *v, size_t n)
{
	const char **c = xcalloc(n + 1, sizeof(*c));

	if (n)
		memcpy(c, v, n * sizeof(*c));
	qsort(c, n, sizeof(*c), str_cmp);
	return c;
}

/* Sorted already (the reconciler lists both by id): no qsort. */
static bool
is_sorted(const void *v, size_t n, size_t size,
	  int (*cmp)(const void *, const void *))
{
	for (size_t i = 1; i < n; i++)
		if (cmp((const char *)v + (i - 1) * size,
			(const char *)v + i * size) > 0)
			return false;
	return true;
}

static void
prep_init(struct prep *p, const struct reconcile_input *in)
{
	const struct inventory_result *inv = in->inv;
	size_t n = 0;

	memset(p, 0, sizeof(*p));
	p->rows = xcalloc(in->n_rows + in->n_more + 1, sizeof(*p->rows));
	for (size_t i = 0; i < in->n_rows; i++, n++)
		p->rows[n] = (struct rowref){&in->rows[i], n, true};
	for (size_t i = 0; i < in->n_more; i++, n++)
		p->rows[n] = (struct rowref){&in->more[i], n, false};
	if (!is_sorted(p->rows, n, sizeof(*p->rows), rowref_cmp))
		qsort(p->rows, n, sizeof(*p->rows), rowref_cmp);
	for (size_t i = 0; i < n; i++) /* one row per id: the first */
		if (!p->n_rows ||
		    strcmp(p->rows[p->n_rows - 1].si->id, p->rows[i].si->id) != 0)
			p->rows[p->n_rows++] = p->rows[i];

	p->ours = xcalloc(inv->n_domains + 1, sizeof(*p->ours));
	p->foreign = xcalloc(inv->n_domains + 1, sizeof(*p->foreign));
	p->foreign_ids = xcalloc(inv->n_domains + 1, sizeof(*p->foreign_ids));
	for (size_t i = 0; i < inv->n_domains; i++) {
		const struct inventory_domain *d = &inv->domains[i];
		const struct domxml_meta *m = d->meta;

		if (!m || !is_uuid(m->id, strlen(m->id)))
			continue;
		switch (domxml_owns(m, in->owner)) {
		case DOMXML_OWNER_FOREIGN:
			p->foreign_ids[p->n_foreign] = m->id;
			p->foreign[p->n_foreign++] = d;
			break;
		case DOMXML_OWNER_OURS:
			p->ours[p->n_ours++] = (struct domref){d, i, false};
			break;
		case DOMXML_OWNER_LEGACY:
			p->ours[p->n_ours++] = (struct domref){d, i, true};
			break;
		default:
			break;
		}
	}
	if (!is_sorted(p->ours, p->n_ours, sizeof(*p->ours), domref_cmp))
		qsort(p->ours, p->n_ours, sizeof(*p->ours), domref_cmp);
	qsort(p->foreign_ids, p->n_foreign, sizeof(*p->foreign_ids), str_cmp);
}

static void
prep_release(struct prep *p)
{
	free(p->rows);
	free(p->ours);
	free(p->foreign);
	free(p->foreign_ids);
}

static const struct rowref *
find_row(const struct prep *p, const char *id)
{
	struct store_instance key = {.id = (char *)id};
	struct rowref k = {&key, 0, false};

	if (!p->n_rows)
		return NULL;
	/* unique ids: ord never decides */
	for (size_t lo = 0, hi = p->n_rows; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(k.si->id, p->rows[mid].si->id);

		if (c == 0)
			return &p->rows[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Is a domain of ours on the host carrying this id? */
static bool
seen(const struct prep *p, const char *id)
{
	for (size_t lo = 0, hi = p->n_ours; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(id, p->ours[mid].d->meta->id);

		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

static bool
busy(const struct reconcile_input *in, const char *id)
{
	return in->busy && in->busy(in->busy_arg, id);
}

/* ---- the plan ----------------------------------------------------------- */

static int
id_cmp(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

size_t
reconcile_plan_wanted(const struct reconcile_input *in,
		      char (**out)[STORE_ID_LEN + 1])
{
	const struct inventory_result *inv = in->inv;
	char (*v)[STORE_ID_LEN + 1];
	struct prep p;
	size_t n = 0, k = 0;

	prep_init(&p, in);
	v = xcalloc(p.n_ours + inv->n_volumes + 1, sizeof(*v));
	for (size_t i = 0; i < p.n_ours; i++)
		memcpy(v[n++], p.ours[i].d->meta->id, sizeof(*v)); /* is_uuid() */
	for (size_t i = 0; i < inv->n_volumes; i++)
		if (reconcile_volume_instance(inv->volumes[i], v[n]) &&
		    !in_sorted(p.foreign_ids, p.n_foreign, v[n]))
			n++;
	qsort(v, n, sizeof(*v), id_cmp);
	for (size_t i = 0; i < n; i++) {
		if (k && strcmp(v[k - 1], v[i]) == 0)
			continue;
		if (find_row(&p, v[i]) || busy(in, v[i]))
			continue;
		if (k != i)
			memcpy(v[k], v[i], sizeof(*v));
		k++;
	}
	prep_release(&p);
	*out = v;
	return k;
}

struct acts {
	struct reconcile_action *v;
	size_t n, alloc;
};

static struct reconcile_action *
push(struct acts *a, enum reconcile_act kind, const char *id)
{
	struct reconcile_action *x;

	if (a->n == a->alloc) {
		a->alloc = a->alloc ? 2 * a->alloc : 16;
		a->v = xreallocarray(a->v, a->alloc, sizeof(*a->v));
	}
	x = &a->v[a->n++];
	memset(x, 0, sizeof(*x));
	x->kind = kind;
	x->id = id;
	return x;
}

static bool
dead(enum store_instance_state st)
{
	return st == STORE_INSTANCE_GONE || st == STORE_INSTANCE_DELETING ||
	       st == STORE_INSTANCE_LOST;
}

/* The domains [a, b) of p->ours carry one instance id. */
static void
plan_id(const struct reconcile_input *in, const struct prep *p, size_t a,
	size_t b, const char *const *groups, struct acts *out)
{
	const char *id = p->ours[a].d->meta->id;
	const struct rowref *r;
	const struct store_instance *si;
	struct reconcile_action *x;
	size_t mine = a;

	if (busy(in, id))
		return;
	r = find_row(p, id);
	if (!r) {
		const struct inventory_domain *d;

		for (size_t k = a; k < b; k++)
			if (p->ours[k].d->active) {
				mine = k;
				break;
			}
		d = p->ours[mine].d;
		if (!in_sorted(groups, in->n_groups, d->meta->group)) {
			x = push(out, RECONCILE_WARN_UNKNOWN_GROUP, id);
		} else {
			x = push(out, RECONCILE_ADOPT, id);
			x->to = d->active ? STORE_INSTANCE_READY
					  : STORE_INSTANCE_UNHEALTHY;
			x->legacy = p->ours[mine].legacy;
		}
		x->dom = d;
		for (size_t k = a; k < b; k++)
			if (k != mine)
				push(out, RECONCILE_WARN_DUPLICATE, id)->dom =
					p->ours[k].d;
		return;
	}
	si = r->si;
	for (size_t k = a; k < b; k++)
		if (si->domain && strcmp(p->ours[k].d->name, si->domain) == 0) {
			mine = k;
			break;
		}
	for (size_t k = a; k < b; k++) {
		const struct inventory_domain *d = p->ours[k].d;

		if (dead(si->state)) {
			x = push(out, RECONCILE_REMOVE_DOMAIN, id);
		} else if (k != mine) {
			x = push(out, RECONCILE_WARN_DUPLICATE, id);
		} else if (p->ours[k].legacy &&
			   strcmp(si->group, d->meta->group) == 0) {
			x = push(out, RECONCILE_CLAIM, id);
		} else {
			continue;
		}
		x->dom = d;
		x->row = si;
	}
	if (si->state == STORE_INSTANCE_READY && !p->ours[mine].d->active &&
	    r->listed) {
		x = push(out, RECONCILE_MARK_UNHEALTHY, id);
		x->dom = p->ours[mine].d;
		x->row = si;
	}
}

static const char *
foreign_key(const struct inventory_domain *d)
{
	return d->uuid[0] ? d->uuid : d->name;
}

static void
plan_foreign(const struct reconcile_input *in, const struct prep *p,
	     struct acts *out, struct reconcile_plan *plan)
{
	const char **reported = sorted_copy(in->reported, in->n_reported);
	size_t n = 0, k = 0;

	plan->foreign = xcalloc(p->n_foreign + in->n_reported + 1,
				sizeof(*plan->foreign));
	for (size_t i = 0; i < p->n_foreign; i++) {
		const struct inventory_domain *d = p->foreign[i];
		const char *key = foreign_key(d);

		if (!in_sorted(reported, in->n_reported, key))
			push(out, RECONCILE_REPORT_FOREIGN, d->meta->id)->dom = d;
		plan->foreign[n++] = key;
	}
	/* a domain not seen this time may still be there: keep its key */
	if (!in->inv->complete)
		for (size_t i = 0; i < in->n_reported; i++)
			plan->foreign[n++] = reported[i];
	qsort(plan->foreign, n, sizeof(*plan->foreign), str_cmp);
	for (size_t i = 0; i < n; i++)
		if (!k || strcmp(plan->foreign[k - 1], plan->foreign[i]) != 0)
			plan->foreign[k++] = plan->foreign[i];
	plan->n_foreign = k;
	free(reported);
}

static void
plan_lost(const struct reconcile_input *in, const struct prep *p,
	  struct acts *out)
{
	const unsigned live = STORE_STATE_BIT(STORE_INSTANCE_BOOTING) |
			      STORE_STATE_BIT(STORE_INSTANCE_READY) |
			      STORE_STATE_BIT(STORE_INSTANCE_UNHEALTHY) |
			      STORE_STATE_BIT(STORE_INSTANCE_DRAINING) |
			      STORE_STATE_BIT(STORE_INSTANCE_WARMING) |
			      STORE_STATE_BIT(STORE_INSTANCE_WARM) |
			      STORE_STATE_BIT(STORE_INSTANCE_RESUMING) |
			      STORE_STATE_BIT(STORE_INSTANCE_LAUNCH_WAIT) |
			      STORE_STATE_BIT(STORE_INSTANCE_TERMINATE_WAIT);

	if (!in->inv->listed || !in->inv->complete)
		return;
	for (size_t i = 0; i < in->n_rows; i++) {
		const struct store_instance *si = &in->rows[i];

		if (!(live & STORE_STATE_BIT(si->state)) || !si->host ||
		    strcmp(si->host, in->host) != 0 || seen(p, si->id) ||
		    busy(in, si->id))
			continue;
		push(out, RECONCILE_MARK_LOST, si->id)->row = si;
	}
}

static void
plan_volumes(const struct reconcile_input *in, const struct prep *p,
	     struct acts *out)
{
	const struct inventory_result *inv = in->inv;
	bool warned = in->warned_unknown_volumes;

	for (size_t i = 0; i < inv->n_volumes; i++) {
		const char *name = inv->volumes[i];
		const struct rowref *r;
		char id[STORE_ID_LEN + 1];
		struct reconcile_action *x;

		/* never the volumes of another installation's instance, even
		 * should our store know that id (a copied store, a clash) */
		if (!reconcile_volume_instance(name, id) || busy(in, id) ||
		    in_sorted(p->foreign_ids, p->n_foreign, id))
			continue;
		r = find_row(p, id);
		if (!r && !warned) {
			warned = true;
			x = push(out, RECONCILE_WARN_UNKNOWN_VOLUMES, NULL);
			x->volume = name;
		} else if (r && r->si->state == STORE_INSTANCE_GONE) {
			x = push(out, RECONCILE_DELETE_VOLUME, r->si->id);
			x->volume = name;
			x->row = r->si;
		}
	}
}

void
reconcile_plan_make(const struct reconcile_input *in,
		    struct reconcile_plan *out)
{
	const char **groups = sorted_copy(in->groups, in->n_groups);
	struct acts a = {0};
	struct prep p;

	memset(out, 0, sizeof(*out));
	prep_init(&p, in);
	for (size_t i = 0, j; i < p.n_ours; i = j) {
		for (j = i + 1; j < p.n_ours &&
				strcmp(p.ours[i].d->meta->id,
				       p.ours[j].d->meta->id) == 0;
		     j++)
			;
		plan_id(in, &p, i, j, groups, &a);
	}
	plan_foreign(in, &p, &a, out);
	plan_lost(in, &p, &a);
	plan_volumes(in, &p, &a);
	prep_release(&p);
	free(groups);
	out->v = a.v;
	out->n = a.n;
}

void
reconcile_plan_release(struct reconcile_plan *p)
{
	if (!p)
		return;
	free(p->v);
	free(p->foreign);
	memset(p, 0, sizeof(*p));
}
