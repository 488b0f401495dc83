/*
 * Unit tests for rates.c (and the stats parsing of collect.c and the
 * fixture loader statsdump.c): rates computed from bulk stats recorded
 * from real QEMU domains (tests/fixtures/stats/, recorded with
 * tests/integration/record_stats), then table-driven edge cases built by
 * altering those samples (counters going backwards, devices appearing,
 * fields missing), and group aggregates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "collect.h"
#include "log.h"
#include "rates.h"
#include "statsdump.h"
#include "util.h"

#define FIXTURES SRCDIR "/tests/fixtures/stats/"

static void
load(const char *name, struct statsdump *d)
{
	char *path = xasprintf("%s%s", FIXTURES, name);
	size_t len;
	char *text = util_read_file(path, 1 << 20, &len);

	if (!text)
		fail_msg("%s", err_msg());
	if (statsdump_parse(text, len, d) < 0)
		fail_msg("%s: %s", path, err_msg());
	free(text);
	free(path);
}

/* Raw sample of domain k of round r, as the collector builds it. */
static void
sample_of(const struct statsdump *d, size_t r, size_t k,
	  struct rates_sample *s)
{
	const struct statsdump_domain *dom;

	assert_true(r < d->n_rounds);
	assert_true(k < d->rounds[r].n_doms);
	dom = &d->rounds[r].doms[k];
	collect_parse_stats(dom->params, dom->nparams, s);
	s->t_ms = d->rounds[r].t_ms;
	s->vcpus = dom->vcpus;
}

/* Rates between round 0 and round 1 of a fixture. */
static void
fixture_rates(const char *name, struct rates_sample *a, struct rates_sample *b,
	      struct rates *out)
{
	struct statsdump d;

	load(name, &d);
	assert_int_equal(d.n_rounds, 2);
	sample_of(&d, 0, 0, a);
	sample_of(&d, 1, 0, b);
	rates_compute(a, b, out);
	statsdump_release(&d);
}

static void
test_fixture_burn(void **state)
{
	struct rates_sample a, b;
	struct rates r;
	double expect;

	/* A 2-vCPU guest with one vCPU in a busy loop, 64 MiB in tmpfs and
	 * a reader of its disk; QEMU user networking (no host-side stats). */
	fixture_rates("burn-2vcpu.txt", &a, &b, &r);
	assert_int_equal(b.vcpus, 2);
	assert_int_equal(b.state, 1);
	assert_true(rates_has(&r, RATES_CPU));
	expect = (double)(b.cpu_time - a.cpu_time) /
		 ((double)(b.t_ms - a.t_ms) * 1e6 * 2) * 100;
	assert_float_equal(r.v[RATES_CPU], expect, 1e-9);
	/* One of two vCPUs busy on a shared 2-core machine: at most 50 %,
	 * and well above idle. */
	assert_true(r.v[RATES_CPU] > 20 && r.v[RATES_CPU] < 55);

	assert_true(rates_has(&r, RATES_MEM));
	expect = (double)(b.bal_available - b.bal_usable) * 100 /
		 (double)b.bal_available;
	assert_float_equal(r.v[RATES_MEM], expect, 1e-9);
	assert_true(r.v[RATES_MEM] > 30 && r.v[RATES_MEM] < 80);

	assert_true(rates_has(&r, RATES_DISK_RD_BPS));
	assert_true(r.v[RATES_DISK_RD_BPS] > 1e6);
	assert_true(rates_has(&r, RATES_DISK_WR_BPS));
	assert_float_equal(r.v[RATES_DISK_WR_BPS], 0, 0);
	assert_true(rates_has(&r, RATES_DISK_RD_IOPS));
	assert_true(r.v[RATES_DISK_RD_IOPS] > 10);
	assert_true(rates_has(&r, RATES_DISK_BPS));
	assert_float_equal(r.v[RATES_DISK_BPS],
			   r.v[RATES_DISK_RD_BPS] + r.v[RATES_DISK_WR_BPS], 1e-6);
	assert_true(rates_has(&r, RATES_DISK_IOPS));

	/* net.count=1 but user networking has no tap: no counters. */
	assert_true(rates_sample_has(&b, RATES_F_NET_COUNT));
	assert_false(rates_has(&r, RATES_NET_RX_BPS));
	assert_false(rates_has(&r, RATES_NET_TX_BPS));
	assert_false(rates_has(&r, RATES_NET_BPS));
}

static void
test_fixture_no_balloon(void **state)
{
	struct rates_sample a, b;
	struct rates r;

	/* <memballoon model='none'/>, 1 vCPU burning, no disk. */
	fixture_rates("no-balloon.txt", &a, &b, &r);
	assert_false(rates_sample_has(&b, RATES_F_BAL_AVAILABLE));
	assert_false(rates_has(&r, RATES_MEM));
	assert_true(rates_has(&r, RATES_CPU));
	assert_true(r.v[RATES_CPU] > 50 && r.v[RATES_CPU] < 101);
	/* block.count=0: sums of nothing are not zeros. */
	assert_true(rates_sample_has(&b, RATES_F_BLOCK_COUNT));
	assert_int_equal(b.block_count, 0);
	assert_false(rates_has(&r, RATES_DISK_RD_BPS));
}

static void
test_fixture_paused(void **state)
{
	struct rates_sample a, b;
	struct rates r;

	/* Started paused: the guest never ran, QEMU's own threads did. */
	fixture_rates("paused.txt", &a, &b, &r);
	assert_int_equal(b.state, 3); /* VIR_DOMAIN_PAUSED */
	assert_true(rates_has(&r, RATES_CPU));
	assert_true(r.v[RATES_CPU] >= 0 && r.v[RATES_CPU] < 2);
	/* balloon.current but no guest statistics yet */
	assert_true(rates_sample_has(&b, RATES_F_BAL_CURRENT));
	assert_false(rates_has(&r, RATES_MEM));
}

static void
test_fixture_restart(void **state)
{
	struct rates_sample a, b;
	struct rates r;

	/* Destroyed and started again between the rounds: cpu.time went
	 * backwards, so no CPU rate for this interval (not a negative one). */
	fixture_rates("restart.txt", &a, &b, &r);
	assert_true(b.cpu_time < a.cpu_time);
	assert_false(rates_has(&r, RATES_CPU));
	assert_true(r.present == 0 || !rates_has(&r, RATES_CPU));
	/* The next interval is fine again. */
	a = b;
	b.t_ms += 1000;
	b.cpu_time += 500000000;
	rates_compute(&a, &b, &r);
	assert_true(rates_has(&r, RATES_CPU));
	assert_float_equal(r.v[RATES_CPU], 50.0, 1e-9);
}

/* Edge cases: alter the burn fixture's second sample. */
static void
test_edges(void **state)
{
	enum change {
		NONE, DISK_BACKWARDS, BLOCK_COUNT_CHANGED, NO_CPU_PREV,
		ZERO_VCPUS, SAME_TIME, NO_USABLE, NO_PREV, NET_COUNTERS,
		NET_BACKWARDS, FREE_ABOVE_TOTAL,
	};
	static const struct {
		const char *name;
		enum change change;
		uint32_t want;   /* metrics that must be present */
		uint32_t unwant; /* metrics that must be missing */
	} cases[] = {
		{"unchanged", NONE,
		 1u << RATES_CPU | 1u << RATES_MEM | 1u << RATES_DISK_RD_BPS, 0},
		{"disk counter backwards", DISK_BACKWARDS,
		 1u << RATES_CPU | 1u << RATES_DISK_WR_BPS,
		 1u << RATES_DISK_RD_BPS | 1u << RATES_DISK_BPS},
		{"disk added", BLOCK_COUNT_CHANGED, 1u << RATES_CPU,
		 1u << RATES_DISK_RD_BPS | 1u << RATES_DISK_WR_BPS |
			 1u << RATES_DISK_IOPS},
		{"cpu.time missing before", NO_CPU_PREV, 1u << RATES_DISK_RD_BPS,
		 1u << RATES_CPU},
		{"vcpus unknown", ZERO_VCPUS, 1u << RATES_MEM, 1u << RATES_CPU},
		{"same timestamp", SAME_TIME, 1u << RATES_MEM,
		 1u << RATES_CPU | 1u << RATES_DISK_RD_BPS},
		{"no usable: unused", NO_USABLE, 1u << RATES_MEM, 0},
		{"first sample", NO_PREV, 1u << RATES_MEM,
		 1u << RATES_CPU | 1u << RATES_DISK_RD_BPS},
		{"net counters", NET_COUNTERS,
		 1u << RATES_NET_RX_BPS | 1u << RATES_NET_TX_BPS | 1u << RATES_NET_BPS,
		 0},
		{"net backwards", NET_BACKWARDS, 1u << RATES_NET_TX_BPS,
		 1u << RATES_NET_RX_BPS | 1u << RATES_NET_BPS},
		{"free above total", FREE_ABOVE_TOTAL, 1u << RATES_MEM, 0},
	};
	struct statsdump d;
	struct rates_sample a0, b0;

	load("burn-2vcpu.txt", &d);
	sample_of(&d, 0, 0, &a0);
	sample_of(&d, 1, 0, &b0);
	statsdump_release(&d);

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct rates_sample a = a0, b = b0;
		struct rates r;
		bool no_prev = false;

		switch (cases[i].change) {
		case NONE:
			break;
		case DISK_BACKWARDS:
			b.rd_bytes = a.rd_bytes - 1;
			break;
		case BLOCK_COUNT_CHANGED:
			b.block_count++;
			b.rd_bytes += 1 << 30;
			break;
		case NO_CPU_PREV:
			a.present &= ~(1u << RATES_F_CPU_TIME);
			break;
		case ZERO_VCPUS:
			b.vcpus = 0;
			break;
		case SAME_TIME:
			b.t_ms = a.t_ms;
			break;
		case NO_USABLE:
			b.present &= ~(1u << RATES_F_BAL_USABLE);
			break;
		case NO_PREV:
			no_prev = true;
			break;
		case NET_COUNTERS:
		case NET_BACKWARDS:
			a.present |= 1u << RATES_F_RX_BYTES | 1u << RATES_F_TX_BYTES;
			b.present |= 1u << RATES_F_RX_BYTES | 1u << RATES_F_TX_BYTES;
			a.rx_bytes = 1000;
			a.tx_bytes = 1000;
			b.rx_bytes = cases[i].change == NET_BACKWARDS ? 10 : 2000;
			b.tx_bytes = 3000;
			break;
		case FREE_ABOVE_TOTAL:
			b.bal_usable = b.bal_available + 5;
			break;
		}
		rates_compute(no_prev ? NULL : &a, &b, &r);
		for (int m = 0; m < RATES_LAST; m++) {
			if ((cases[i].want >> m) & 1u && !rates_has(&r, m))
				fail_msg("%s: %s missing", cases[i].name,
					 rates_metric_name(m));
			if ((cases[i].unwant >> m) & 1u && rates_has(&r, m))
				fail_msg("%s: %s present", cases[i].name,
					 rates_metric_name(m));
			if (rates_has(&r, m) && r.v[m] < 0)
				fail_msg("%s: %s negative", cases[i].name,
					 rates_metric_name(m));
		}
		if (cases[i].change == NO_USABLE)
			assert_float_equal(r.v[RATES_MEM],
					   (double)(b.bal_available - b.bal_unused) *
						   100 / (double)b.bal_available,
					   1e-9);
		if (cases[i].change == FREE_ABOVE_TOTAL)
			assert_float_equal(r.v[RATES_MEM], 0, 0);
		if (cases[i].change == NET_COUNTERS) {
			double secs = (double)(b.t_ms - a.t_ms) / 1000;

			assert_float_equal(r.v[RATES_NET_RX_BPS], 1000 / secs, 1e-9);
			assert_float_equal(r.v[RATES_NET_BPS], 3000 / secs, 1e-9);
		}
	}
}

/* Parsing: any integer type, sums over devices, junk ignored. */
static void
test_parse_stats(void **state)
{
	virTypedParameter p[10];
	struct rates_sample s;

	memset(p, 0, sizeof(p));
	strcpy(p[0].field, "cpu.time");
	p[0].type = VIR_TYPED_PARAM_LLONG;
	p[0].value.l = 5;
	strcpy(p[1].field, "block.0.rd.bytes");
	p[1].type = VIR_TYPED_PARAM_ULLONG;
	p[1].value.ul = 100;
	strcpy(p[2].field, "block.1.rd.bytes");
	p[2].type = VIR_TYPED_PARAM_UINT;
	p[2].value.ui = 23;
	strcpy(p[3].field, "block.x.rd.bytes"); /* not an index */
	p[3].type = VIR_TYPED_PARAM_ULLONG;
	p[3].value.ul = 1000;
	strcpy(p[4].field, "net.0.rx.bytes");
	p[4].type = VIR_TYPED_PARAM_STRING; /* wrong type: ignored */
	p[4].value.s = (char *)"12";
	strcpy(p[5].field, "balloon.available");
	p[5].type = VIR_TYPED_PARAM_INT;
	p[5].value.i = -1; /* negative: ignored */
	strcpy(p[6].field, "state.state");
	p[6].type = VIR_TYPED_PARAM_INT;
	p[6].value.i = 1;
	strcpy(p[7].field, "net.1.tx.bytes");
	p[7].type = VIR_TYPED_PARAM_ULLONG;
	p[7].value.ul = 7;
	strcpy(p[8].field, "block.2.rd.bytes.extra");
	p[8].type = VIR_TYPED_PARAM_ULLONG;
	p[8].value.ul = 1;
	strcpy(p[9].field, "cpu.user");
	p[9].type = VIR_TYPED_PARAM_ULLONG;
	p[9].value.ul = 99;

	collect_parse_stats(p, 10, &s);
	assert_true(rates_sample_has(&s, RATES_F_CPU_TIME));
	assert_int_equal(s.cpu_time, 5);
	assert_true(rates_sample_has(&s, RATES_F_RD_BYTES));
	assert_int_equal(s.rd_bytes, 123);
	assert_false(rates_sample_has(&s, RATES_F_RX_BYTES));
	assert_true(rates_sample_has(&s, RATES_F_TX_BYTES));
	assert_int_equal(s.tx_bytes, 7);
	assert_false(rates_sample_has(&s, RATES_F_BAL_AVAILABLE));
	assert_int_equal(s.state, 1);
	assert_false(rates_sample_has(&s, RATES_F_BLOCK_COUNT));

	collect_parse_stats(p, 0, &s);
	assert_int_equal(s.present, 0);
	assert_int_equal(s.state, -1);
}

static void
test_group(void **state)
{
	struct rates_window w[3];
	struct rates_group g;
	double v;

	memset(w, 0, sizeof(w));
	/* Two instances with CPU, one of them with memory; a third with
	 * nothing (a new or silent instance) does not drag the mean down. */
	w[0].present = 1u << RATES_CPU | 1u << RATES_MEM;
	w[0].n[RATES_CPU] = 3;
	w[0].mean[RATES_CPU] = 40;
	w[0].max[RATES_CPU] = 70;
	w[0].n[RATES_MEM] = 3;
	w[0].mean[RATES_MEM] = 20;
	w[0].max[RATES_MEM] = 25;
	w[1].present = 1u << RATES_CPU | 1u << RATES_DISK_IOPS;
	w[1].n[RATES_CPU] = 2;
	w[1].mean[RATES_CPU] = 80;
	w[1].max[RATES_CPU] = 90;
	w[1].n[RATES_DISK_IOPS] = 2;
	w[1].mean[RATES_DISK_IOPS] = 100;
	w[1].max[RATES_DISK_IOPS] = 150;

	rates_group_init(&g);
	for (int i = 0; i < 3; i++)
		rates_group_add(&g, &w[i]);
	rates_group_finish(&g);

	assert_true(rates_group_get(&g, POLICY_METRIC_CPU, false, &v));
	assert_float_equal(v, 60, 1e-9);
	assert_int_equal(g.n[RATES_CPU], 2);
	assert_true(rates_group_get(&g, POLICY_METRIC_CPU, true, &v));
	assert_float_equal(v, 90, 1e-9);
	assert_true(rates_group_get(&g, POLICY_METRIC_MEMORY, false, &v));
	assert_float_equal(v, 20, 1e-9);
	assert_true(rates_group_get(&g, POLICY_METRIC_DISK_IOPS, true, &v));
	assert_float_equal(v, 150, 1e-9);
	assert_false(rates_group_get(&g, POLICY_METRIC_NET_BYTES, false, &v));
	assert_false(rates_group_get(&g, POLICY_METRIC_DISK_BYTES, false, &v));

	for (int m = 0; m < POLICY_METRIC_LAST; m++)
		assert_int_not_equal(rates_from_policy(m), RATES_LAST);
	for (int m = 0; m < RATES_LAST; m++)
		assert_string_not_equal(rates_metric_name(m), "?");
}

/* The loader rejects what it cannot read, naming the line. */
static void
test_dump_errors(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
	} cases[] = {
		{"domain 8f4d7bbc-4e12-40e7-89cc-6f8b36522e33 1 x\n", "line 1"},
		{"round 1\ncpu.time ullong 1\n", "line 2: field before any domain"},
		{"round x\n", "line 1"},
		{"round 1\ndomain nope 1 x\n", "bad UUID"},
		{"round 1\ndomain 8f4d7bbc-4e12-40e7-89cc-6f8b36522e33 1\n",
		 "expected"},
		{"round 1\ndomain 8f4d7bbc-4e12-40e7-89cc-6f8b36522e33 1 x\n"
		 "cpu.time ullong -1\n", "line 3: bad ullong"},
		{"round 1\ndomain 8f4d7bbc-4e12-40e7-89cc-6f8b36522e33 1 x\n"
		 "cpu.time float 1\n", "unknown type"},
		{"round 1\ndomain 8f4d7bbc-4e12-40e7-89cc-6f8b36522e33 1 x\n"
		 "a int 99999999999\n", "bad int"},
		{"round 1\ndomain 8f4d7bbc-4e12-40e7-89cc-6f8b36522e33 1 x\n"
		 "a boolean 2\n", "bad boolean"},
		{"round 1\ndomain 8f4d7bbc-4e12-40e7-89cc-6f8b36522e33 1 x\n"
		 "a double nan\n", "bad double"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct statsdump d;

		if (statsdump_parse(cases[i].text, strlen(cases[i].text), &d) == 0)
			fail_msg("case %zu parsed", i);
		if (!strstr(err_msg(), cases[i].msg))
			fail_msg("case %zu: '%s' lacks '%s'", i, err_msg(),
				 cases[i].msg);
		statsdump_release(&d);
	}
}

/* Dump -> parse gives back the same typed parameters. */
static void
test_dump_roundtrip(void **state)
{
	struct statsdump d, e;
	struct strbuf sb = STRBUF_INIT;

	load("burn-2vcpu.txt", &d);
	for (size_t r = 0; r < d.n_rounds; r++) {
		statsdump_add_round(&sb, d.rounds[r].t_ms);
		for (size_t k = 0; k < d.rounds[r].n_doms; k++) {
			const struct statsdump_domain *x = &d.rounds[r].doms[k];

			statsdump_add_domain(&sb, x->uuid, x->vcpus, x->name,
					     x->params, x->nparams);
		}
	}
	assert_int_equal(statsdump_parse(sb.buf, sb.len, &e), 0);
	assert_int_equal(e.n_rounds, d.n_rounds);
	for (size_t r = 0; r < d.n_rounds; r++) {
		const struct statsdump_domain *x = &d.rounds[r].doms[0];
		const struct statsdump_domain *y = &e.rounds[r].doms[0];

		assert_int_equal(x->nparams, y->nparams);
		assert_string_equal(x->uuid, y->uuid);
		for (int i = 0; i < x->nparams; i++) {
			assert_string_equal(x->params[i].field, y->params[i].field);
			assert_int_equal(x->params[i].type, y->params[i].type);
			if (x->params[i].type == VIR_TYPED_PARAM_STRING)
				assert_string_equal(x->params[i].value.s,
						    y->params[i].value.s);
			else
				assert_memory_equal(&x->params[i].value,
						    &y->params[i].value,
						    sizeof(x->params[i].value.ul));
		}
	}
	statsdump_release(&d);
	statsdump_release(&e);
	strbuf_release(&sb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_burn),
		cmocka_unit_test(test_fixture_no_balloon),
		cmocka_unit_test(test_fixture_paused),
		cmocka_unit_test(test_fixture_restart),
		cmocka_unit_test(test_edges),
		cmocka_unit_test(test_parse_stats),
		cmocka_unit_test(test_group),
		cmocka_unit_test(test_dump_errors),
		cmocka_unit_test(test_dump_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
