/*
 * Unit tests for reconcile_plan.c, the pure reconcile planner: a case is a
 * host's inventory (domains with their metadata, volumes), the store's
 * rows, the busy ids and what was reported before; the plan must be the
 * expected actions (as text, in any order) and foreign keys. Then
 * reconcile_plan_wanted() and a large host (cost).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "log.h"
#include "reconcile_plan.h"
#include "util.h"

#define HOST "kvm1"
#define OURS "7f0c9a51-3c1e-4d2b-8a6f-0e1d2c3b4a59"
#define OTHER "00000000-0000-4000-8000-000000000000"
#define I1 "11111111-1111-4111-8111-111111111111"
#define I2 "22222222-2222-4222-8222-222222222222"
#define I3 "33333333-3333-4333-8333-333333333333"
#define I4 "44444444-4444-4444-8444-444444444444"
#define U1 "aaaaaaaa-0000-4000-8000-000000000001" /* domain UUIDs */
#define U2 "aaaaaaaa-0000-4000-8000-000000000002"
#define U3 "aaaaaaaa-0000-4000-8000-000000000003"

enum meta {
	M_NONE,    /* no metadata of ours (or malformed: the same to the plan) */
	M_OURS,    /* owner = OURS */
	M_LEGACY,  /* no owner= */
	M_FOREIGN, /* owner = OTHER */
};

struct dom {
	const char *name, *uuid;
	bool active;
	enum meta meta;
	const char *id, *group;   /* group NULL: "web" */
};

struct row {
	const char *id;
	enum store_instance_state state;
	const char *domain;       /* NULL: none */
	const char *group;        /* NULL: "web" */
	const char *host;         /* NULL: HOST */
};

#define MAXN 8

struct plan_case {
	const char *name;
	struct dom doms[MAXN];
	struct row rows[MAXN];    /* read before the pass */
	struct row more[MAXN];    /* read after it */
	const char *volumes[MAXN];
	const char *busy[MAXN];
	const char *reported[MAXN];
	bool incomplete;          /* a domain's metadata could not be read */
	bool warned;              /* unknown volumes said before */
	const char *want[MAXN];   /* actions, any order */
	const char *foreign[MAXN];/* NULL-terminated; checked when [0] set or
				     no_foreign */
	bool no_foreign;
};

#define READY STORE_INSTANCE_READY
#define GONE STORE_INSTANCE_GONE

static const struct plan_case cases[] = {
	{"a running domain of ours the store does not know: adopted ready",
	 .doms = {{"web-a", U1, true, M_OURS, I1}},
	 .want = {"adopt " I1 " ready dom=web-a"}},
	{"a stopped one: adopted unhealthy (health replaces it)",
	 .doms = {{"web-a", U1, false, M_OURS, I1}},
	 .want = {"adopt " I1 " unhealthy dom=web-a"}},
	{"one without owner= (older version): adopted, legacy (then claimed)",
	 .doms = {{"web-a", U1, false, M_LEGACY, I1}},
	 .want = {"adopt " I1 " unhealthy legacy dom=web-a"}},
	{"one of a group that is not configured: reported, left alone",
	 .doms = {{"db-a", U1, true, M_OURS, I1, "db"}},
	 .want = {"warn_unknown_group " I1 " dom=db-a"}},
	{"another installation's domain: reported, nothing else",
	 .doms = {{"web-x", U1, true, M_FOREIGN, I1}},
	 .want = {"report_foreign " I1 " dom=web-x"},
	 .foreign = {U1}},
	{"... once: reported before, still there, not again",
	 .doms = {{"web-x", U1, true, M_FOREIGN, I1}},
	 .reported = {U1},
	 .foreign = {U1}},
	{"... a foreign domain that left is forgotten (reported again if back)",
	 .reported = {U1},
	 .no_foreign = true},
	{"... but kept while the listing is incomplete",
	 .reported = {U1}, .incomplete = true,
	 .foreign = {U1}},
	{"a foreign instance id our store knows: its domain is not ours",
	 .doms = {{"web-x", U1, true, M_FOREIGN, I1}},
	 .rows = {{I1, READY, "web-x"}},
	 .reported = {U1},
	 .want = {"mark_lost " I1},
	 .foreign = {U1}},
	{"... and its volumes are never deleted, even if the store says gone",
	 .doms = {{"web-x", U1, false, M_FOREIGN, I1}},
	 .rows = {{I1, GONE, "web-x"}},
	 .volumes = {I1 ".qcow2", I1 "-seed.iso"},
	 .reported = {U1},
	 .foreign = {U1}},
	{"the domain of a gone instance still on the host: removed",
	 .doms = {{"web-a", U1, true, M_OURS, I1}},
	 .rows = {{I1, GONE, "web-a"}},
	 .want = {"remove_domain " I1 " dom=web-a"}},
	{"... of a deleting one, a lost one: removed",
	 .doms = {{"web-a", U1, true, M_OURS, I1},
		  {"web-b", U2, false, M_LEGACY, I2}},
	 .rows = {{I1, STORE_INSTANCE_DELETING, "web-a"},
		  {I2, STORE_INSTANCE_LOST, "web-b"}},
	 .want = {"remove_domain " I1 " dom=web-a",
		  "remove_domain " I2 " dom=web-b"}},
	{"a ready instance whose domain does not run: unhealthy",
	 .doms = {{"web-a", U1, false, M_OURS, I1},
		  {"web-b", U2, true, M_OURS, I2},
		  {"web-c", U3, false, M_OURS, I3}},
	 .rows = {{I1, READY, "web-a"}, {I2, READY, "web-b"},
		  {I3, STORE_INSTANCE_BOOTING, "web-c"}},
	 .want = {"mark_unhealthy " I1 " dom=web-a"}},
	{"instances whose domain is missing from the host: lost",
	 .rows = {{I1, STORE_INSTANCE_BOOTING, "web-a"},
		  {I2, READY, "web-b"},
		  {I3, STORE_INSTANCE_UNHEALTHY, "web-c"},
		  {I4, STORE_INSTANCE_DRAINING, "web-d"}},
	 .want = {"mark_lost " I1, "mark_lost " I2, "mark_lost " I3,
		  "mark_lost " I4}},
	{"... not one a worker is busy with",
	 .rows = {{I1, READY, "web-a"}, {I2, READY, "web-b"}},
	 .busy = {I1},
	 .want = {"mark_lost " I2}},
	{"... not while the inventory is incomplete",
	 .rows = {{I1, READY, "web-a"}},
	 .incomplete = true},
	{"... not one created while the pass ran (read after it)",
	 .more = {{I1, STORE_INSTANCE_BOOTING, "web-a"}},
	 .doms = {{"web-b", U2, false, M_OURS, I2}},
	 .rows = {{I2, STORE_INSTANCE_BOOTING, "web-b"}}},
	{"... nor unhealthy from a row read after the pass",
	 .doms = {{"web-a", U1, false, M_OURS, I1}},
	 .more = {{I1, READY, "web-a"}}},
	/* the warm pool (issue 13) */
	{"warm pool: parked domains (saved or shut off, paused) are fine",
	 .doms = {{"web-a", U1, false, M_OURS, I1},
		  {"web-b", U2, true, M_OURS, I2},
		  {"web-c", U3, false, M_OURS, I3}},
	 .rows = {{I1, STORE_INSTANCE_WARM, "web-a"},
		  {I2, STORE_INSTANCE_WARM, "web-b"},
		  {I3, STORE_INSTANCE_RESUMING, "web-c"}},
	 .volumes = {I1 ".qcow2", I1 "-seed.iso"}},
	{"warm pool: a warming one not started yet: nothing",
	 .doms = {{"web-a", U1, false, M_OURS, I1}},
	 .rows = {{I1, STORE_INSTANCE_WARMING, "web-a"}}},
	{"warm pool: domains gone from the host: lost",
	 .rows = {{I1, STORE_INSTANCE_WARMING, "web-a"},
		  {I2, STORE_INSTANCE_WARM, "web-b"},
		  {I3, STORE_INSTANCE_RESUMING, "web-c"}},
	 .busy = {I1},
	 .want = {"mark_lost " I2, "mark_lost " I3}},
	{"requested, provisioning: the journal's, whatever the host holds",
	 .doms = {{"web-a", U1, false, M_OURS, I1}},
	 .rows = {{I1, STORE_INSTANCE_PROVISIONING, "web-a"},
		  {I2, STORE_INSTANCE_REQUESTED},
		  {I3, STORE_INSTANCE_PROVISIONING, "web-c"}},
	 .volumes = {I3 ".qcow2"}},
	{"volumes of a gone instance: deleted; of a live one: kept",
	 .rows = {{I1, GONE, "web-a"}, {I2, STORE_INSTANCE_BOOTING, "web-b"}},
	 .doms = {{"web-b", U2, true, M_OURS, I2}},
	 .volumes = {I1 ".qcow2", I1 "-seed.iso", I2 ".qcow2", "base.qcow2"},
	 .want = {"delete_volume " I1 " vol=" I1 ".qcow2",
		  "delete_volume " I1 " vol=" I1 "-seed.iso"}},
	{"... of a gone instance of another host (read by id)",
	 .more = {{I1, GONE, "web-a", NULL, "kvm2"}},
	 .volumes = {I1 ".qcow2"},
	 .want = {"delete_volume " I1 " vol=" I1 ".qcow2"}},
	{"volumes the store does not know: said once, left alone",
	 .volumes = {I1 ".qcow2", I2 ".qcow2", I2 "-seed.iso"},
	 .want = {"warn_unknown_volumes vol=" I1 ".qcow2"}},
	{"... not again once said",
	 .volumes = {I1 ".qcow2"}, .warned = true},
	{"names that are not ours: nothing",
	 .volumes = {"base.qcow2", "1111.qcow2",
		     "11111111-1111-4111-8111-11111111111X.qcow2",
		     I1 ".raw", I1 ".qcow2.va-uploading"}},
	{"busy instances are skipped: domain, volumes",
	 .doms = {{"web-a", U1, false, M_OURS, I1},
		  {"web-b", U2, true, M_OURS, I2}},
	 .rows = {{I1, READY, "web-a"}, {I2, GONE, "web-b"}},
	 .volumes = {I2 ".qcow2", I3 ".qcow2"},
	 .busy = {I1, I2, I3}},
	{"an unknown busy domain is not adopted (a job is making it)",
	 .doms = {{"web-a", U1, false, M_OURS, I1}},
	 .busy = {I1}},
	{"a copy of a known instance: warned, the named one decides health",
	 .doms = {{"web-a", U1, true, M_OURS, I1},
		  {"web-a-clone", U2, false, M_OURS, I1}},
	 .rows = {{I1, READY, "web-a"}},
	 .want = {"warn_duplicate " I1 " dom=web-a-clone"}},
	{"... the named one stopped: unhealthy, though a copy runs",
	 .doms = {{"web-a-clone", U2, true, M_OURS, I1},
		  {"web-a", U1, false, M_OURS, I1}},
	 .rows = {{I1, READY, "web-a"}},
	 .want = {"warn_duplicate " I1 " dom=web-a-clone",
		  "mark_unhealthy " I1 " dom=web-a"}},
	{"an unknown id on two domains: adopted once, the running copy",
	 .doms = {{"web-a", U1, false, M_OURS, I1},
		  {"web-b", U2, true, M_OURS, I1}},
	 .want = {"adopt " I1 " ready dom=web-b",
		  "warn_duplicate " I1 " dom=web-a"}},
	{"every copy of a gone instance goes",
	 .doms = {{"web-a", U1, false, M_OURS, I1},
		  {"web-b", U2, true, M_LEGACY, I1}},
	 .rows = {{I1, GONE, "web-a"}},
	 .want = {"remove_domain " I1 " dom=web-a",
		  "remove_domain " I1 " dom=web-b"}},
	{"malformed metadata, an id that is no instance id: not ours",
	 .doms = {{"web-a", U1, true, M_NONE, I1},
		  {"web-b", U2, true, M_OURS, "web-0001"},
		  {"web-c", U3, true, M_OURS,
		   "11111111-1111-4111-8111-11111111111A"}}},
	{"without owner=, known, alive, same group: claimed",
	 .doms = {{"web-a", U1, true, M_LEGACY, I1},
		  {"web-b", U2, true, M_LEGACY, I2, "db"},
		  {"web-c", U3, false, M_LEGACY, I3}},
	 .rows = {{I1, READY, "web-a"}, {I2, READY, "web-b"},
		  {I3, READY, "web-c"}},
	 .want = {"claim " I1 " dom=web-a", "claim " I3 " dom=web-c",
		  "mark_unhealthy " I3 " dom=web-c"}},
	{"a domain without our metadata among ours: ignored, ours adopted",
	 .doms = {{"mail", U1, true, M_NONE}, {"web-b", U2, true, M_OURS, I2}},
	 .want = {"adopt " I2 " ready dom=web-b"}},
	{"the owner test's host: foreign, ours and legacy, none known",
	 .doms = {{"o-f", U1, false, M_FOREIGN, I1},
		  {"o-o", U2, false, M_OURS, I2},
		  {"o-l", U3, false, M_LEGACY, I3}},
	 .volumes = {I1 ".qcow2", I1 "-seed.iso", I2 ".qcow2", I3 ".qcow2"},
	 .want = {"report_foreign " I1 " dom=o-f",
		  "adopt " I2 " unhealthy dom=o-o",
		  "adopt " I3 " unhealthy legacy dom=o-l",
		  "warn_unknown_volumes vol=" I2 ".qcow2"},
	 .foreign = {U1}},
};

/* ---- building the input ------------------------------------------------ */

struct built {
	struct inventory_result inv;
	struct inventory_domain doms[MAXN];
	struct domxml_meta metas[MAXN];
	char *vols[MAXN];
	struct store_instance rows[MAXN], more[MAXN];
	const char *const *busy;
	struct reconcile_input in;
};

static const char *const groups[] = {"web", "batch"};

static bool
busy_in_list(void *arg, const char *id)
{
	const char *const *v = arg;

	for (; *v; v++)
		if (strcmp(*v, id) == 0)
			return true;
	return false;
}

static size_t
fill_rows(struct store_instance *out, const struct row *rows)
{
	size_t n = 0;

	for (; n < MAXN && rows[n].id; n++) {
		memset(&out[n], 0, sizeof(out[n]));
		out[n].id = (char *)rows[n].id;
		out[n].state = rows[n].state;
		out[n].domain = (char *)rows[n].domain;
		out[n].group = (char *)(rows[n].group ? rows[n].group : "web");
		out[n].host = (char *)(rows[n].host ? rows[n].host : HOST);
		if (rows[n].state == STORE_INSTANCE_REQUESTED)
			out[n].host = NULL;
	}
	return n;
}

static void
build(struct built *b, const struct plan_case *c)
{
	size_t n;

	memset(b, 0, sizeof(*b));
	for (n = 0; n < MAXN && c->doms[n].name; n++) {
		const struct dom *d = &c->doms[n];
		struct inventory_domain *id = &b->doms[n];

		snprintf(id->uuid, sizeof(id->uuid), "%s", d->uuid);
		id->name = (char *)d->name;
		id->active = d->active;
		if (d->meta == M_NONE)
			continue;
		snprintf(b->metas[n].id, sizeof(b->metas[n].id), "%s", d->id);
		snprintf(b->metas[n].group, sizeof(b->metas[n].group), "%s",
			 d->group ? d->group : "web");
		b->metas[n].generation = 1;
		if (d->meta != M_LEGACY)
			snprintf(b->metas[n].owner, sizeof(b->metas[n].owner),
				 "%s", d->meta == M_OURS ? OURS : OTHER);
		id->meta = &b->metas[n];
	}
	b->inv.domains = b->doms;
	b->inv.n_domains = n;
	for (n = 0; n < MAXN && c->volumes[n]; n++)
		b->vols[n] = (char *)c->volumes[n];
	b->inv.volumes = b->vols;
	b->inv.n_volumes = n;
	b->inv.listed = true;
	b->inv.complete = !c->incomplete;
	b->inv.volumes_listed = true;

	b->in.host = HOST;
	b->in.owner = OURS;
	b->in.inv = &b->inv;
	b->in.rows = b->rows;
	b->in.n_rows = fill_rows(b->rows, c->rows);
	b->in.more = b->more;
	b->in.n_more = fill_rows(b->more, c->more);
	b->in.busy = busy_in_list;
	b->in.busy_arg = (void *)c->busy;
	b->in.groups = groups;
	b->in.n_groups = ARRAY_SIZE(groups);
	b->in.reported = c->reported;
	for (n = 0; n < MAXN && c->reported[n]; n++)
		;
	b->in.n_reported = n;
	b->in.warned_unknown_volumes = c->warned;
}

/* An action as the tables write it. Caller frees. */
static char *
action_text(const struct reconcile_action *a)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_adds(&sb, reconcile_act_name(a->kind));
	if (a->id)
		strbuf_addf(&sb, " %s", a->id);
	if (a->kind == RECONCILE_ADOPT)
		strbuf_addf(&sb, " %s%s", store_instance_state_name(a->to),
			    a->legacy ? " legacy" : "");
	if (a->dom)
		strbuf_addf(&sb, " dom=%s", a->dom->name);
	if (a->volume)
		strbuf_addf(&sb, " vol=%s", a->volume);
	return strbuf_detach(&sb);
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
check_case(const struct plan_case *c)
{
	struct built b;
	struct reconcile_plan p;
	const char *want[MAXN];
	char **got;
	size_t n_want = 0;
	bool ok;

	build(&b, c);
	reconcile_plan_make(&b.in, &p);
	got = xcalloc(p.n + 1, sizeof(*got));
	for (size_t i = 0; i < p.n; i++)
		got[i] = action_text(&p.v[i]);
	for (; n_want < MAXN && c->want[n_want]; n_want++)
		want[n_want] = c->want[n_want];
	qsort(got, p.n, sizeof(*got), str_cmp);
	qsort(want, n_want, sizeof(*want), str_cmp);
	ok = p.n == n_want;
	for (size_t i = 0; ok && i < n_want; i++)
		ok = strcmp(got[i], want[i]) == 0;
	if (!ok) {
		fprintf(stderr, "case '%s':\n  want:\n", c->name);
		for (size_t i = 0; i < n_want; i++)
			fprintf(stderr, "    %s\n", want[i]);
		fprintf(stderr, "  got:\n");
		for (size_t i = 0; i < p.n; i++)
			fprintf(stderr, "    %s\n", got[i]);
		fail_msg("case '%s': wrong plan", c->name);
	}
	if (c->foreign[0] || c->no_foreign) {
		size_t n = 0;

		for (; n < MAXN && c->foreign[n]; n++)
			if (n >= p.n_foreign ||
			    strcmp(p.foreign[n], c->foreign[n]) != 0)
				fail_msg("case '%s': foreign key %zu", c->name, n);
		if (n != p.n_foreign)
			fail_msg("case '%s': %zu foreign keys, want %zu", c->name,
				 p.n_foreign, n);
	}
	for (size_t i = 0; i < p.n; i++)
		free(got[i]);
	free(got);
	reconcile_plan_release(&p);
}

static void
test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		check_case(&cases[i]);
}

/* The rows the shell must read beyond the host's: sorted, unique, not
 * busy, not another installation's, not already there. */
static void
test_wanted(void **state)
{
	static const struct plan_case c = {
		"wanted",
		.doms = {{"a", U1, true, M_OURS, I4},
			 {"b", U2, true, M_FOREIGN, I3},
			 {"c", U3, true, M_OURS, I1}},
		.rows = {{I1, READY, "c"}},
		.volumes = {I4 ".qcow2", I4 "-seed.iso", I2 "-seed.iso",
			    I3 ".qcow2", I1 ".qcow2", "base.qcow2",
			    "aaaaaaaa-0000-4000-8000-000000000009.qcow2"},
		.busy = {"aaaaaaaa-0000-4000-8000-000000000009"},
	};
	struct built b;
	char (*ids)[STORE_ID_LEN + 1];
	size_t n;

	(void)state;
	build(&b, &c);
	n = reconcile_plan_wanted(&b.in, &ids);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], I2);
	assert_string_equal(ids[1], I4);
	free(ids);
}

/* Every action kind has a name; out of range has none. */
static void
test_names(void **state)
{
	(void)state;
	for (int k = 0; k < RECONCILE_ACT_LAST; k++)
		assert_non_null(reconcile_act_name((enum reconcile_act)k));
	assert_null(reconcile_act_name(RECONCILE_ACT_LAST));
}

/* CPU time this thread has used, in milliseconds. */
static int64_t
thread_cpu_ms(void)
{
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A host of 20,000 domains, half of them known and running, a quarter
 * missing, many foreign, two volumes each: the plan is right, and its
 * cost is not quadratic. The old scans were: minutes of CPU here. A linear
 * plan takes about 30 ms on the gcc build and up to 2 s under TSan on a
 * busy 2-core machine, so the bound is on the thread's own CPU time (not
 * wall time, which a busy machine stretches) and set 10x above the
 * slowest build: it cannot flake, and a quadratic scan still fails it.
 * The figure is printed; bench/ measures the daemon's cost.
 */
static void
test_large(void **state)
{
	enum { N = 20000 };
	struct inventory_domain *doms = xcalloc(N, sizeof(*doms));
	struct domxml_meta *metas = xcalloc(N, sizeof(*metas));
	struct store_instance *rows = xcalloc(N, sizeof(*rows));
	char **vols = xcalloc(2 * N, sizeof(*vols));
	char (*ids)[STORE_ID_LEN + 1] = xcalloc(N, sizeof(*ids));
	char (*names)[32] = xcalloc(N, sizeof(*names));
	struct inventory_result inv = {0};
	struct reconcile_input in = {0};
	struct reconcile_plan p;
	size_t n_doms = 0, n_rows = 0, lost = 0, foreign = 0, other = 0;
	int64_t cpu_ms;

	(void)state;
	for (size_t i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%08zx-0000-4000-8000-%012zx",
			 i * 7919 % N, i);
		snprintf(names[i], sizeof(names[i]), "web-%zu", i);
		vols[2 * i] = xasprintf("%s.qcow2", ids[i]);
		vols[2 * i + 1] = xasprintf("%s-seed.iso", ids[i]);
		if (i % 4 != 3) {
			struct inventory_domain *d = &doms[n_doms];

			memcpy(d->uuid, ids[i], sizeof(ids[i]));
			d->name = names[i];
			d->active = true;
			snprintf(metas[n_doms].id, sizeof(metas[n_doms].id), "%s",
				 ids[i]);
			snprintf(metas[n_doms].group, sizeof(metas[n_doms].group),
				 "web");
			snprintf(metas[n_doms].owner, sizeof(metas[n_doms].owner),
				 "%s", i % 4 == 2 ? OTHER : OURS);
			d->meta = &metas[n_doms++];
		}
		if (i % 4 == 0 || i % 4 == 3) {
			rows[n_rows].id = ids[i];
			rows[n_rows].group = (char *)"web";
			rows[n_rows].host = (char *)HOST;
			rows[n_rows].domain = names[i];
			rows[n_rows++].state = READY;
		}
	}
	inv.domains = doms;
	inv.n_domains = n_doms;
	inv.volumes = vols;
	inv.n_volumes = 2 * N;
	inv.listed = inv.complete = inv.volumes_listed = true;
	in.host = HOST;
	in.owner = OURS;
	in.inv = &inv;
	in.rows = rows;
	in.n_rows = n_rows;
	in.groups = groups;
	in.n_groups = ARRAY_SIZE(groups);
	cpu_ms = thread_cpu_ms();
	reconcile_plan_make(&in, &p);
	cpu_ms = thread_cpu_ms() - cpu_ms;
	for (size_t i = 0; i < p.n; i++) {
		if (p.v[i].kind == RECONCILE_MARK_LOST)
			lost++;
		else if (p.v[i].kind == RECONCILE_REPORT_FOREIGN)
			foreign++;
		else
			other++; /* adoptions of i % 4 == 1, one volume warning */
	}
	fprintf(stderr, "20,000 domains, 40,000 volumes: %zu actions in %" PRId64
			" ms of CPU\n", p.n, cpu_ms);
	assert_int_equal(lost, N / 4);
	assert_int_equal(foreign, N / 4);
	assert_int_equal(p.n_foreign, N / 4);
	assert_int_equal(other, N / 4 + 1);
	assert_true(cpu_ms < 20000);
	reconcile_plan_release(&p);
	for (size_t i = 0; i < 2 * N; i++)
		free(vols[i]);
	free(vols);
	free(doms);
	free(metas);
	free(rows);
	free(ids);
	free(names);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_wanted),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_large),
	};

	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
