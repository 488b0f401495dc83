/*
 * Unit tests for place.c: every strategy and every limit on host-capacity
 * fixtures (table-driven: a sequence of placements with each choice
 * committed before the next), the refusal message, the example plugin and
 * the ABI check, and one placement on capacity read from libvirt's test
 * driver (test:///default).
 *
 * argv[1]: path of the example plugin (va-weighted.so), argv[2]: path of
 * the bad-ABI test plugin; the meson test passes both.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "log.h"
#include "place.h"
#include "util.h"

#define GiB (UINT64_C(1) << 30)
#define MAXH 4
#define MAXSEQ 8

static const char *plugin_path;
static const char *badabi_path;

/* name, cpus, mem GiB, free GiB, vcpus alloc, mem alloc GiB, instances,
 * group instances, cpu oc, mem oc, reserved GiB, max instances */
#define H(nm, c, m, f, va, ma, in, gi, coc, moc, res, mx)                       \
	{                                                                     \
		.name = nm, .up = 1, .cpus = c, .mem_total = (m) * GiB,        \
		.mem_free = (uint64_t)((f) * (double)GiB), .cpu_use = -1,      \
		.vcpus_alloc = va, .mem_alloc = (uint64_t)((ma) * (double)GiB),\
		.instances = in, .group_instances = gi, .cpu_overcommit = coc, \
		.mem_overcommit = moc, .reserved_memory = (uint64_t)((res) * (double)GiB), \
		.max_instances = mx                                            \
	}
#define DOWN(nm) {.name = nm, .up = 0, .down_reason = "connection refused"}

struct place_case {
	const char *what;
	const char *strategy;
	bool spread;
	struct va_placement_host hosts[MAXH];
	size_t n;
	unsigned vcpus;
	uint64_t mem;
	/* expected host names for consecutive placements; NULL = full */
	const char *expect[MAXSEQ];
	size_t n_expect;
	const char *full_has[3]; /* substrings of the refusal (when full) */
};

static const struct place_case cases[] = {
	{"round-robin cycles in host order", "round-robin", false,
	 {H("a", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 0),
	  H("b", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 0),
	  H("c", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 0)}, 3, 1, GiB,
	 {"a", "b", "c", "a", "b"}, 5, {NULL}},
	{"round-robin skips a down host", "round-robin", false,
	 {H("a", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 0), DOWN("b"),
	  H("c", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 0)}, 3, 1, GiB,
	 {"a", "c", "a"}, 3, {NULL}},
	{"round-robin skips a host at max_instances", "round-robin", false,
	 {H("a", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 1),
	  H("b", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 0)}, 2, 1, GiB,
	 {"a", "b", "b", "b"}, 4, {NULL}},
	{"fill-first fills a host to its vCPU limit", "fill-first", false,
	 {H("a", 2, 64, 60, 0, 0, 0, 0, 2, 1, 1, 0),
	  H("b", 2, 64, 60, 0, 0, 0, 0, 2, 1, 1, 0)}, 2, 2, GiB,
	 {"a", "a", "b", "b", NULL}, 5,
	 {"a: vCPUs 4/4 allocated (2 CPUs x 2 overcommit), 2 requested",
	  "b: vCPUs 4/4", NULL}},
	{"fill-first fills a host to its memory limit", "fill-first", false,
	 {H("a", 64, 4, 3.5, 0, 0, 0, 0, 0, 1, 1, 0),
	  H("b", 64, 4, 3.5, 0, 0, 0, 0, 0, 1, 1, 0)}, 2, 1, GiB,
	 {"a", "a", "a", "b", "b", "b", NULL}, 7,
	 {"a: memory 3/3 GiB committed with 1 GiB reserved, 1 GiB requested",
	  NULL}},
	{"memory overcommit ratio", "fill-first", false,
	 {H("a", 64, 4, 3.5, 0, 0, 0, 0, 0, 2, 0, 0)}, 1, 1, 3 * GiB / 2,
	 {"a", "a", "a", "a", "a", NULL}, 6,
	 {"(x2 overcommit)", NULL}},
	{"cpu overcommit 0 means no vCPU limit", "fill-first", false,
	 {H("a", 1, 64, 60, 100, 0, 0, 0, 0, 0, 0, 0)}, 1, 16, GiB,
	 {"a", "a"}, 2, {NULL}},
	{"measured free memory below reserve refuses", "most-free", false,
	 {H("a", 8, 16, 0.5, 0, 0, 0, 0, 4, 0, 1, 0)}, 1, 1, GiB,
	 {NULL}, 1, {"a: free memory 0.5 GiB below the 1 GiB reserved", NULL}},
	{"most-free prefers free memory", "most-free", false,
	 {H("a", 8, 32, 4, 0, 0, 0, 0, 4, 1, 1, 0),
	  H("b", 8, 32, 20, 0, 0, 0, 0, 4, 1, 1, 0)}, 2, 1, GiB,
	 {"b", "b", "b"}, 3, {NULL}},
	{"most-free counts allocated vCPUs", "most-free", false,
	 {H("a", 4, 32, 20, 15, 0, 0, 0, 4, 0, 0, 0),
	  H("b", 4, 32, 20, 0, 0, 0, 0, 4, 0, 0, 0)}, 2, 1, GiB,
	 {"b"}, 1, {NULL}},
	{"most-free evens out as VMs land", "most-free", false,
	 {H("a", 8, 16, 10, 0, 0, 0, 0, 4, 1, 0, 0),
	  H("b", 8, 16, 8, 0, 0, 0, 0, 4, 1, 0, 0)}, 2, 1, 2 * GiB,
	 {"a", "b", "a", "b"}, 4, {NULL}},
	{"spread beats fill-first", "fill-first", true,
	 {H("a", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 0),
	  H("b", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 0),
	  H("c", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 0)}, 3, 1, GiB,
	 {"a", "b", "c", "a"}, 4, {NULL}},
	{"spread starts from existing group VMs", "most-free", true,
	 {H("a", 8, 32, 30, 0, 0, 2, 2, 4, 1, 1, 0),
	  H("b", 8, 32, 10, 0, 0, 0, 0, 4, 1, 1, 0)}, 2, 1, GiB,
	 {"b", "b", "a"}, 3, {NULL}},
	{"spread ignores full hosts", "round-robin", true,
	 {H("a", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 1),
	  H("b", 8, 32, 30, 0, 0, 3, 3, 4, 1, 1, 0)}, 2, 1, GiB,
	 {"a", "b"}, 2, {NULL}},
	{"every host refused: one reason each", "round-robin", false,
	 {H("kvm1", 8, 16, 2, 0, 15.5, 3, 0, 4, 1, 0.5, 0), DOWN("kvm2"),
	  H("kvm3", 8, 16, 8, 0, 0, 4, 0, 4, 1, 1, 4)}, 3, 2, GiB,
	 {NULL}, 1,
	 {"kvm1: memory 15.5/15.5 GiB committed with 0.5 GiB reserved",
	  "kvm2: down (connection refused)", "kvm3: max_instances 4/4 reached"}},
	{"capacity not measured", "round-robin", false,
	 {{.name = "x", .up = 1}}, 1, 1, GiB, {NULL}, 1,
	 {"x: capacity not measured yet", NULL}},
};

static void
run_case(const struct place_case *c, struct place_strategy *s)
{
	struct va_placement_host h[MAXH];
	struct va_placement_request req = {
		.group = "web", .vcpus = c->vcpus, .memory = c->mem};

	memcpy(h, c->hosts, sizeof(h));
	for (size_t k = 0; k < c->n_expect; k++) {
		size_t chosen = 99;
		enum place_result r;

		req.seq = (uint32_t)k;
		r = place_choose(s, &req, h, c->n, &chosen);
		if (c->expect[k]) {
			if (r != PLACE_OK)
				fail_msg("%s: step %zu: %s", c->what, k, err_msg());
			if (strcmp(h[chosen].name, c->expect[k]) != 0)
				fail_msg("%s: step %zu: chose %s, expected %s",
					 c->what, k, h[chosen].name, c->expect[k]);
			place_host_commit(&h[chosen], &req);
		} else {
			if (r != PLACE_FULL)
				fail_msg("%s: step %zu: expected full, got %d (%s)",
					 c->what, k, r,
					 r == PLACE_OK ? h[chosen].name : err_msg());
			for (size_t j = 0; j < 3 && c->full_has[j]; j++)
				if (!strstr(err_msg(), c->full_has[j]))
					fail_msg("%s: refusal '%s' lacks '%s'",
						 c->what, err_msg(), c->full_has[j]);
			assert_non_null(strstr(err_msg(),
					       "no host can take a VM of group web"));
		}
	}
}

static void
test_strategies(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct place_strategy *s =
			place_strategy_new(cases[i].strategy, cases[i].spread,
					   NULL, 0);

		assert_non_null(s);
		run_case(&cases[i], s);
		place_strategy_free(s);
	}
}

static void
test_score(void **state)
{
	struct va_placement_host h = H("a", 4, 16, 8, 2, 0, 0, 0, 2, 1, 0, 0);
	struct va_placement_request req = {.group = "g", .vcpus = 2,
					   .memory = 4 * GiB};

	(void)state;
	/* mem (8-0-4)/16 = .25; cpu unknown .5; vcpu 1-(4/8) = .5 */
	assert_true(place_most_free_score(&h, &req) > 0.375 - 1e-9);
	assert_true(place_most_free_score(&h, &req) < 0.375 + 1e-9);
	h.cpu_use = 0.9; /* cpu .1: .125 + .025 + .125 */
	assert_true(place_most_free_score(&h, &req) > 0.275 - 1e-9);
	assert_true(place_most_free_score(&h, &req) < 0.275 + 1e-9);
}

static void
test_bad_specs(void **state)
{
	static const struct {
		const char *spec, *msg;
	} bad[] = {
		{"random", "unknown placement strategy 'random'"},
		{"", "unknown placement strategy"},
		{"plugin:relative.so", "must be absolute"},
		{"plugin:/nonexistent/x.so", "cannot load placement plugin"},
		{"plugin:/lib/x86_64-linux-gnu/libc.so.6", "no symbol"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct place_strategy *s = place_strategy_new(bad[i].spec, false,
							      NULL, 0);

		assert_null(s);
		if (!strstr(err_msg(), bad[i].msg))
			fail_msg("'%s': '%s' lacks '%s'", bad[i].spec, err_msg(),
				 bad[i].msg);
	}
}

static void
test_plugin(void **state)
{
	struct va_placement_option opts[] = {
		{"weight.b", "3"}, {"weight.c", "0"}, {"default_weight", "1"}};
	struct va_placement_host h[] = {
		H("a", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 0),
		H("b", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 0),
		H("c", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 0),
		H("d", 8, 32, 30, 0, 0, 0, 0, 4, 1, 1, 0)};
	/*
	 * weight / (group VMs + 1): b 3, 1.5, then b = a = d = 1 (a sorts
	 * first), b 1 vs d 1, then d 1 vs b .75, then b .75 vs d .5.
	 */
	static const char *expect[] = {"b", "b", "a", "b", "d", "b"};
	struct va_placement_request req = {.group = "web", .vcpus = 1,
					   .memory = GiB};
	char *spec = xasprintf("plugin:%s", plugin_path);
	struct place_strategy *s;
	size_t chosen = 99;

	(void)state;
	s = place_strategy_new(spec, false, opts, ARRAY_SIZE(opts));
	if (!s)
		fail_msg("%s", err_msg());
	assert_int_equal(place_strategy_kind(s), PLACE_PLUGIN);
	assert_string_equal(place_strategy_name(s), "weighted");
	for (size_t k = 0; k < ARRAY_SIZE(expect); k++) {
		if (place_choose(s, &req, h, ARRAY_SIZE(h), &chosen) != PLACE_OK)
			fail_msg("step %zu: %s", k, err_msg());
		if (strcmp(h[chosen].name, expect[k]) != 0)
			fail_msg("step %zu: chose %s, expected %s", k,
				 h[chosen].name, expect[k]);
		place_host_commit(&h[chosen], &req);
	}
	/* The daemon's limits apply before the plugin: b is full now. */
	h[1].max_instances = h[1].instances;
	h[0].up = 0;
	h[3].up = 0;
	assert_int_equal(place_choose(s, &req, h, ARRAY_SIZE(h), &chosen),
			 PLACE_FULL); /* only c left, weight 0: plugin refuses */
	assert_non_null(strstr(err_msg(), "plugin weighted refused: every "
					  "offered host has weight 0"));
	place_strategy_free(s);

	/* Options the plugin refuses. */
	opts[0].value = "heavy";
	assert_null(place_strategy_new(spec, false, opts, 1));
	assert_non_null(strstr(err_msg(), "refused its options: weight.b: "
					  "'heavy' is not a whole number"));
	free(spec);

	/* A plugin built for another ABI version. */
	spec = xasprintf("plugin:%s", badabi_path);
	assert_null(place_strategy_new(spec, false, NULL, 0));
	assert_non_null(strstr(err_msg(), "built for placement ABI version 999, "
					  "this virt-autoscaler supports version 1"));
	free(spec);
}

/* Capacity read from libvirt's test driver, then placed. */
static void
test_test_driver(void **state)
{
	virConnectPtr conn = virConnectOpen("test:///default");
	struct va_placement_host h[2] = {
		/* The driver's own domain has 8 GiB on a 3 GiB "host": no
		 * memory overcommit limit here. */
		{.name = "t1", .cpu_use = -1, .cpu_overcommit = 1},
		{.name = "t2", .cpu_use = -1, .cpu_overcommit = 1}};
	struct va_placement_request req = {.group = "web", .vcpus = 2,
					   .memory = GiB};
	struct place_strategy *s = place_strategy_new("most-free", false, NULL, 0);
	size_t chosen = 9;

	(void)state;
	assert_non_null(conn);
	assert_non_null(s);
	if (place_host_measure(conn, "web", &h[0]) < 0)
		fail_msg("%s", err_msg());
	/* test driver: 16 CPUs, 3 GiB... whatever it reports, it is real */
	assert_true(h[0].cpus > 0);
	assert_true(h[0].mem_total > 0);
	assert_true(h[0].mem_free > 0);
	assert_true(h[0].vcpus_alloc >= 1); /* the driver's "test" domain */
	assert_int_equal(h[0].instances, 0);
	assert_int_equal(place_host_measure(conn, "web", &h[1]), 0);
	h[1].vcpus_alloc += 4; /* t2 is busier */
	assert_int_equal(place_choose(s, &req, h, 2, &chosen), PLACE_OK);
	assert_int_equal(chosen, 0);
	/* Fill t1's vCPUs to its real CPU count: the next VM goes to t2. */
	h[0].vcpus_alloc = h[0].cpus;
	assert_int_equal(place_choose(s, &req, h, 2, &chosen), PLACE_OK);
	assert_int_equal(chosen, 1);
	h[1].vcpus_alloc = h[1].cpus;
	assert_int_equal(place_choose(s, &req, h, 2, &chosen), PLACE_FULL);
	assert_non_null(strstr(err_msg(), "t1: vCPUs"));
	place_strategy_free(s);
	virConnectClose(conn);
}

static void
quiet(void *opaque, virErrorPtr e)
{
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strategies),
		cmocka_unit_test(test_score),
		cmocka_unit_test(test_bad_specs),
		cmocka_unit_test(test_plugin),
		cmocka_unit_test(test_test_driver),
	};

	if (argc < 3) {
		fprintf(stderr, "usage: test_place PLUGIN.so BADABI.so\n");
		return 2;
	}
	virSetErrorFunc(NULL, quiet); /* expected libvirt errors */
	plugin_path = argv[1];
	badabi_path = argv[2];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
