/*
 * Unit tests for mstore.c: windows over a ring that wrapped, presence per
 * metric, derived sums, removal and pruning, out-of-order samples.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mstore.h"
#include "util.h"

static void
uuid_of(unsigned n, unsigned char u[MSTORE_UUID_LEN])
{
	memset(u, 0, MSTORE_UUID_LEN);
	memcpy(u, &n, sizeof(n));
	u[15] = 0xa5;
}

static void
test_ring_window(void **state)
{
	/* 60 s at 10 s: 6 + 2 slots. */
	struct mstore *s = mstore_new(60000, 10000);
	unsigned char u[MSTORE_UUID_LEN];
	struct rates_window w;

	assert_int_equal(mstore_capacity(s), 8);
	uuid_of(1, u);
	/* 20 samples: cpu = 1..20 at t = 10 s .. 200 s; memory only on even. */
	for (int i = 1; i <= 20; i++) {
		struct rates r = {0};

		rates_set(&r, RATES_CPU, i);
		if (i % 2 == 0)
			rates_set(&r, RATES_MEM, 100 - i);
		mstore_put(s, u, (int64_t)i * 10000, &r);
	}
	/* The last 30 s: samples 18, 19, 20. */
	assert_int_equal(mstore_query(s, u, 180000, 200000, &w), 0);
	assert_int_equal(w.n[RATES_CPU], 3);
	assert_float_equal(w.mean[RATES_CPU], 19, 1e-6);
	assert_float_equal(w.max[RATES_CPU], 20, 1e-6);
	assert_float_equal(w.last[RATES_CPU], 20, 1e-6);
	assert_int_equal(w.n[RATES_MEM], 2);
	assert_float_equal(w.mean[RATES_MEM], 81, 1e-6);
	assert_float_equal(w.last[RATES_MEM], 80, 1e-6);
	assert_int_equal(w.last_t_ms, 200000);
	assert_int_equal(w.samples, 3);
	assert_false(w.present & (1u << RATES_DISK_RD_BPS));

	/* A window reaching past the retention sees only what the ring kept. */
	assert_int_equal(mstore_query(s, u, 0, 1000000, &w), 0);
	assert_int_equal(w.n[RATES_CPU], 8);
	assert_int_equal(w.samples, 8);
	assert_float_equal(w.max[RATES_CPU], 20, 1e-6);
	assert_float_equal(w.mean[RATES_CPU], 16.5, 1e-6);

	/* A window in the future or the distant past is empty. */
	assert_int_equal(mstore_query(s, u, 300000, 400000, &w), 0);
	assert_int_equal(w.present, 0);
	assert_int_equal(w.samples, 0);
	assert_int_equal(mstore_query(s, u, 0, 5000, &w), 0);
	assert_int_equal(w.present, 0);

	/* Older or equal timestamps are ignored. */
	{
		struct rates r = {0};

		rates_set(&r, RATES_CPU, 1000);
		mstore_put(s, u, 200000, &r);
		mstore_put(s, u, 150000, &r);
	}
	assert_int_equal(mstore_query(s, u, 0, 1000000, &w), 0);
	assert_float_equal(w.max[RATES_CPU], 20, 1e-6);

	/* A sample without values (a host that reports only the state)
	 * counts as a sample, with no metric. */
	{
		struct rates r = {0};

		mstore_put(s, u, 210000, &r);
	}
	assert_int_equal(mstore_query(s, u, 205000, 215000, &w), 0);
	assert_int_equal(w.samples, 1);
	assert_int_equal(w.present, 0);
	assert_int_equal(w.last_t_ms, 210000);

	uuid_of(2, u);
	assert_int_equal(mstore_query(s, u, 0, 1000000, &w), -1);
	mstore_free(s);
}

static void
test_derived(void **state)
{
	struct mstore *s = mstore_new(3600000, 10000);
	unsigned char u[MSTORE_UUID_LEN];
	struct rates r = {0};
	struct rates_window w;

	uuid_of(7, u);
	rates_set(&r, RATES_DISK_RD_BPS, 100);
	rates_set(&r, RATES_DISK_WR_BPS, 50);
	rates_set(&r, RATES_NET_RX_BPS, 10);
	mstore_put(s, u, 1000, &r);
	memset(&r, 0, sizeof(r));
	rates_set(&r, RATES_DISK_RD_BPS, 10);
	rates_set(&r, RATES_DISK_WR_BPS, 300);
	rates_set(&r, RATES_NET_RX_BPS, 20);
	rates_set(&r, RATES_NET_TX_BPS, 5);
	mstore_put(s, u, 11000, &r);

	assert_int_equal(mstore_query(s, u, 0, 20000, &w), 0);
	/* max of the per-sample sums (310), not the sum of maxima (400) */
	assert_float_equal(w.max[RATES_DISK_BPS], 310, 1e-6);
	assert_float_equal(w.mean[RATES_DISK_BPS], 230, 1e-6);
	/* net total only where both directions were measured */
	assert_int_equal(w.n[RATES_NET_BPS], 1);
	assert_float_equal(w.last[RATES_NET_BPS], 25, 1e-6);
	assert_int_equal(w.n[RATES_NET_RX_BPS], 2);
	mstore_free(s);
}

static void
test_remove_prune(void **state)
{
	struct mstore *s = mstore_new(600000, 10000);
	unsigned char u[MSTORE_UUID_LEN];
	struct rates r = {0};
	struct rates_window w;
	const unsigned n = 1000;

	rates_set(&r, RATES_CPU, 5);
	/* Many instances: the table grows. Half stop reporting at 100 s. */
	for (unsigned i = 0; i < n; i++) {
		uuid_of(i, u);
		mstore_put(s, u, 100000, &r);
		if (i % 2 == 0)
			mstore_put(s, u, 200000, &r);
	}
	assert_int_equal(mstore_count(s), n);
	uuid_of(4, u);
	mstore_remove(s, u);
	mstore_remove(s, u);
	assert_int_equal(mstore_count(s), n - 1);
	assert_int_equal(mstore_query(s, u, 0, 300000, &w), -1);

	assert_int_equal(mstore_prune(s, 150000), n / 2);
	assert_int_equal(mstore_count(s), n / 2 - 1);
	uuid_of(3, u);
	assert_int_equal(mstore_query(s, u, 0, 300000, &w), -1);
	uuid_of(6, u);
	assert_int_equal(mstore_query(s, u, 0, 300000, &w), 0);
	assert_int_equal(w.n[RATES_CPU], 2);

	/* 1 h at 10 s: 362 samples of 21 bytes (every base metric), 7 when
	 * only CPU is kept, plus the header. */
	{
		struct mstore *h = mstore_new(3600000, 10000);

		assert_int_equal(mstore_capacity(h), 362);
		assert_true(mstore_bytes_per_instance(h) >= 362 * 21);
		assert_true(mstore_bytes_per_instance(h) < 362 * 21 + 128);
		mstore_set_metrics(h, 1u << RATES_CPU);
		assert_true(mstore_bytes_per_instance(h) >= 362 * 7);
		assert_true(mstore_bytes_per_instance(h) < 362 * 7 + 128);
		mstore_free(h);
	}
	mstore_free(s);
	mstore_free(NULL);
}

/* A store keeps only the metrics it is told to; changing the set keeps
 * the samples of the metrics kept before and after. */
static void
test_kept_metrics(void **state)
{
	struct mstore *s = mstore_new(60000, 10000);
	unsigned char u[MSTORE_UUID_LEN], v[MSTORE_UUID_LEN];
	struct rates_window w;

	(void)state;
	assert_int_equal(mstore_metrics(s), MSTORE_ALL);
	mstore_set_metrics(s, 1u << RATES_CPU | 1u << RATES_NET_BPS);
	/* derived bits are not stored */
	assert_int_equal(mstore_metrics(s), 1u << RATES_CPU);
	uuid_of(1, u);
	uuid_of(2, v);
	for (int i = 1; i <= 10; i++) {
		struct rates r = {0};

		rates_set(&r, RATES_CPU, i);
		rates_set(&r, RATES_MEM, 50);
		rates_set(&r, RATES_NET_RX_BPS, 1000);
		rates_set(&r, RATES_NET_TX_BPS, 3000);
		mstore_put(s, u, (int64_t)i * 10000, &r);
		if (i > 5)
			mstore_put(s, v, (int64_t)i * 10000, &r);
	}
	assert_int_equal(mstore_query(s, u, 0, 100000, &w), 0);
	assert_int_equal(w.n[RATES_CPU], 8);
	assert_float_equal(w.mean[RATES_CPU], 6.5, 1e-6);
	assert_false(w.present & (1u << RATES_MEM));
	assert_false(w.present & (1u << RATES_NET_BPS));

	/* Add memory and net, keep CPU: CPU's history stays, the others
	 * start now. */
	mstore_set_metrics(s, 1u << RATES_CPU | 1u << RATES_MEM |
				      1u << RATES_NET_RX_BPS |
				      1u << RATES_NET_TX_BPS);
	assert_int_equal(mstore_query(s, u, 0, 100000, &w), 0);
	assert_int_equal(w.n[RATES_CPU], 8);
	assert_float_equal(w.last[RATES_CPU], 10, 1e-6);
	assert_int_equal(w.n[RATES_MEM], 0);
	assert_int_equal(mstore_query(s, v, 0, 100000, &w), 0);
	assert_int_equal(w.n[RATES_CPU], 5);
	{
		struct rates r = {0};

		rates_set(&r, RATES_CPU, 40);
		rates_set(&r, RATES_MEM, 60);
		rates_set(&r, RATES_NET_RX_BPS, 1000);
		rates_set(&r, RATES_NET_TX_BPS, 3000);
		mstore_put(s, u, 110000, &r);
		/* not newer than the newest: ignored in any layout */
		mstore_put(s, u, 110000, &r);
	}
	assert_int_equal(mstore_query(s, u, 100000, 110000, &w), 0);
	assert_int_equal(w.n[RATES_CPU], 2);
	assert_float_equal(w.last[RATES_CPU], 40, 1e-6);
	assert_int_equal(w.n[RATES_MEM], 1);
	assert_float_equal(w.last[RATES_MEM], 60, 0.05);
	assert_float_equal(w.last[RATES_NET_BPS], 4000, 4);

	/* Drop CPU: only memory and net remain; the ring's order holds. */
	mstore_set_metrics(s, 1u << RATES_MEM);
	assert_int_equal(mstore_query(s, u, 0, 110000, &w), 0);
	assert_int_equal(w.n[RATES_CPU], 0);
	assert_int_equal(w.n[RATES_MEM], 1);
	assert_int_equal(w.samples, 8);
	assert_int_equal(w.last_t_ms, 110000);
	assert_int_equal(mstore_count(s), 2);
	mstore_free(s);
}

static void
count_cb(const unsigned char uuid[MSTORE_UUID_LEN], void *opaque)
{
	(void)uuid;
	(*(unsigned *)opaque)++;
}

static void
test_foreach_negative_time(void **state)
{
	struct mstore *s = mstore_new(60000, 1000);
	unsigned char u[MSTORE_UUID_LEN];
	struct rates r = {0};
	struct rates_window w;
	unsigned count = 0;

	/* The base is the first put; a second instance may start earlier. */
	uuid_of(1, u);
	rates_set(&r, RATES_CPU, 1);
	mstore_put(s, u, 50000, &r);
	uuid_of(2, u);
	mstore_put(s, u, 20000, &r);
	rates_set(&r, RATES_CPU, 3);
	mstore_put(s, u, 21000, &r);
	assert_int_equal(mstore_query(s, u, 19900, 20500, &w), 0);
	assert_int_equal(w.n[RATES_CPU], 1);
	assert_int_equal(mstore_query(s, u, 19900, 21500, &w), 0);
	assert_int_equal(w.n[RATES_CPU], 2);
	assert_float_equal(w.mean[RATES_CPU], 2, 1e-6);
	mstore_foreach(s, count_cb, &count);
	assert_int_equal(count, 2);
	mstore_free(s);
}

static void
test_group(void **state)
{
	struct mstore *s = mstore_new(600000, 10000);
	unsigned char u[3][MSTORE_UUID_LEN];
	struct rates_group g;
	double v;

	/* Instance 0: cpu 10 then 30; instance 1: cpu 50 and memory 40;
	 * instance 2 is listed but unknown to the store. */
	for (unsigned i = 0; i < 3; i++)
		uuid_of(100 + i, u[i]);
	{
		struct rates r = {0};

		rates_set(&r, RATES_CPU, 10);
		mstore_put(s, u[0], 10000, &r);
		rates_set(&r, RATES_CPU, 30);
		mstore_put(s, u[0], 20000, &r);
		memset(&r, 0, sizeof(r));
		rates_set(&r, RATES_CPU, 50);
		rates_set(&r, RATES_MEM, 40);
		mstore_put(s, u[1], 20000, &r);
	}
	assert_int_equal(mstore_query_group(s, (const unsigned char (*)[16])u, 3,
					    0, 30000, &g), 2);
	assert_true(rates_group_get(&g, POLICY_METRIC_CPU, false, &v));
	assert_float_equal(v, 35, 1e-6); /* mean of 20 and 50 */
	assert_true(rates_group_get(&g, POLICY_METRIC_CPU, true, &v));
	assert_float_equal(v, 50, 1e-6);
	assert_true(rates_group_get(&g, POLICY_METRIC_MEMORY, false, &v));
	assert_float_equal(v, 40, 1e-6);
	assert_int_equal(g.n[RATES_MEM], 1);
	/* A window that holds only instance 0's second sample. */
	assert_int_equal(mstore_query_group(s, (const unsigned char (*)[16])u, 1,
					    15000, 30000, &g), 1);
	assert_true(rates_group_get(&g, POLICY_METRIC_CPU, false, &v));
	assert_float_equal(v, 30, 1e-6);
	mstore_free(s);
}

static void
test_encoding(void **state)
{
	static const double values[] = {
		0, 1.0 / 256, 0.01, 0.5, 1, 7.99, 8, 42.5, 99.99, 100, 123.456,
		2047, 2048, 4095, 65535, 1e6, 123456789, 3.3e9, 1.7e10,
	};
	double prev = -1;

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		double v = values[i], d = mstore_decode(mstore_encode(v));
		double tol = v > 8 ? v / 2048 : 1.0 / 512;

		if (d < v - tol || d > v + tol)
			fail_msg("%g decoded as %g", v, d);
		/* order is kept */
		assert_true(d >= prev);
		prev = d;
	}
	/* Exact for the small integers the tests use. */
	assert_true(mstore_decode(mstore_encode(20)) == 20);
	assert_true(mstore_decode(mstore_encode(310)) == 310);
	/* Never negative, NaN is 0, beyond the range saturates. */
	assert_int_equal(mstore_encode(-5), 0);
	assert_int_equal(mstore_encode(NAN), 0);
	assert_true(mstore_decode(mstore_encode(1e15)) > 1.7e10);
	assert_true(mstore_decode(mstore_encode(1e15)) < 1.8e10);
	assert_int_equal(mstore_encode(1e15), mstore_encode(1e20));
}

/* Every one of the 65,536 codes decodes to m * 2^(e - 8) exactly (the
 * decoder multiplies by a table of powers of two instead of calling
 * ldexp()), and encoding that value gives the code back unless another
 * code is the value's canonical form (m < 1024 with e > 0). */
static void
test_decode_all(void **state)
{
	(void)state;
	for (unsigned x = 0; x <= 0xffff; x++) {
		double m = (double)(x & 0x7ff), d = mstore_decode((uint16_t)x);
		int e = (int)(x >> 11);

		if (d != ldexp(m, e - 8))
			fail_msg("code %#x decoded as %a, not %a", x, d,
				 ldexp(m, e - 8));
		if (x != 0 && ((x & 0x7ff) >= 1024 || e == 0) &&
		    mstore_encode(d) != x)
			fail_msg("code %#x: %a encodes as %#x", x, d,
				 mstore_encode(d));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_window),
		cmocka_unit_test(test_derived),
		cmocka_unit_test(test_remove_prune),
		cmocka_unit_test(test_kept_metrics),
		cmocka_unit_test(test_foreach_negative_time),
		cmocka_unit_test(test_encoding),
		cmocka_unit_test(test_decode_all),
		cmocka_unit_test(test_group),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
