/*
 * Unit tests for util.c: value parsers (table-driven), strbuf, and the
 * constant-time secret comparison.
 */
#include <setjmp.h>
#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"
#include "util.h"

static void
test_duration(void **state)
{
	static const struct {
		const char *in;
		int ok;
		int64_t ms;
	} cases[] = {
		{"90s", 1, 90000},
		{"5m", 1, 300000},
		{"1h", 1, 3600000},
		{"2d", 1, 172800000},
		{"250ms", 1, 250},
		{"1h30m", 1, 5400000},
		{"1m30s500ms", 1, 90500},
		{"0s", 1, 0},
		{"", 0, 0},
		{"10", 0, 0},
		{"-5s", 0, 0},
		{"5 m", 0, 0},
		{"5x", 0, 0},
		{"s", 0, 0},
		{"1.5h", 0, 0},
		{"99999999999999999999s", 0, 0},
		{"9999999999999999d", 0, 0},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int64_t v = -1;
		int rc = util_parse_duration_ms(cases[i].in, &v);

		if (cases[i].ok) {
			assert_int_equal(rc, 0);
			assert_int_equal(v, cases[i].ms);
		} else {
			assert_int_equal(rc, -1);
			assert_non_null(strstr(err_msg(), "duration"));
		}
	}
}

static void
test_size(void **state)
{
	static const struct {
		const char *in;
		int ok;
		uint64_t v;
	} cases[] = {
		{"512", 1, 512},
		{"512B", 1, 512},
		{"64KiB", 1, 65536},
		{"1MiB", 1, 1048576},
		{"20GiB", 1, 20ULL << 30},
		{"1TiB", 1, 1ULL << 40},
		{"1GB", 1, 1000000000ULL},
		{"2G", 1, 2ULL << 30},
		{"", 0, 0},
		{"GiB", 0, 0},
		{"1.5GiB", 0, 0},
		{"-1GiB", 0, 0},
		{"10 GiB", 0, 0},
		{"10gib", 0, 0},
		{"99999999999TiB", 0, 0},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t v = 0;
		int rc = util_parse_size(cases[i].in, &v);

		assert_int_equal(rc, cases[i].ok ? 0 : -1);
		if (cases[i].ok)
			assert_true(v == cases[i].v);
	}
}

static void
test_percent(void **state)
{
	double v;

	(void)state;
	assert_int_equal(util_parse_percent("60%", &v), 0);
	assert_true(v == 60.0);
	assert_int_equal(util_parse_percent("12.5%", &v), 0);
	assert_true(v == 12.5);
	assert_int_equal(util_parse_percent("60", &v), -1);
	assert_int_equal(util_parse_percent("%", &v), -1);
	assert_int_equal(util_parse_percent("-5%", &v), -1);
	assert_int_equal(util_parse_percent("abc%", &v), -1);
	assert_int_equal(util_parse_percent("nan%", &v), -1);
	assert_int_equal(util_parse_percent("1e999%", &v), -1);
}

static void
test_int64(void **state)
{
	int64_t v;

	(void)state;
	assert_int_equal(util_parse_int64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(util_parse_int64("-1", 0, 100, &v), -1);
	assert_non_null(strstr(err_msg(), "out of range"));
	assert_int_equal(util_parse_int64("4x", 0, 100, &v), -1);
	assert_int_equal(util_parse_int64("", 0, 100, &v), -1);
	assert_int_equal(util_parse_int64("99999999999999999999", 0, INT64_MAX, &v), -1);
}

static void
test_format_roundtrip(void **state)
{
	static const int64_t durations[] = {0, 250, 1000, 90000, 300000,
					    5400000, 86400000, 90061001};
	static const uint64_t sizes[] = {1, 512, 1024, 1048576, 3ULL << 30,
					 1500, 1ULL << 40};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(durations); i++) {
		char *s = util_format_duration(durations[i]);
		int64_t back;

		assert_int_equal(util_parse_duration_ms(s, &back), 0);
		assert_int_equal(back, durations[i]);
		free(s);
	}
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		char *s = util_format_size(sizes[i]);
		uint64_t back;

		assert_int_equal(util_parse_size(s, &back), 0);
		assert_true(back == sizes[i]);
		free(s);
	}
	char *p = util_format_percent(62.5);
	assert_string_equal(p, "62.5%");
	free(p);
}

static void
test_strbuf(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	char *s;

	(void)state;
	assert_string_equal(strbuf_str(&sb), "");
	for (int i = 0; i < 1000; i++)
		strbuf_addf(&sb, "%d,", i);
	assert_int_equal(sb.len, strlen(sb.buf));
	strbuf_reset(&sb);
	strbuf_adds(&sb, "ab");
	strbuf_addc(&sb, 'c');
	s = strbuf_detach(&sb);
	assert_string_equal(s, "abc");
	assert_null(sb.buf);
	free(s);
	/* never written to: still an empty string, not uninitialised bytes */
	s = strbuf_detach(&sb);
	assert_string_equal(s, "");
	free(s);
	strbuf_release(&sb);
}

static void
test_secret_equal(void **state)
{
	(void)state;
	assert_true(util_secret_equal("abc", 3, "abc", 3));
	assert_false(util_secret_equal("abc", 3, "abd", 3));
	assert_false(util_secret_equal("abc", 3, "abcd", 4));
	assert_false(util_secret_equal("", 0, "a", 1));
	assert_true(util_secret_equal("", 0, "", 0));
}

static void
test_read_file(void **state)
{
	size_t len;
	char *s;

	(void)state;
	assert_null(util_read_file("/nonexistent/file", 100, &len));
	assert_non_null(strstr(err_msg(), "No such file"));
	assert_null(util_read_file("/", 100, &len));
	assert_non_null(strstr(err_msg(), "directory"));
	s = util_read_file(SRCDIR "/meson.build", 1 << 20, &len);
	assert_non_null(s);
	assert_true(len > 0);
	free(s);
	assert_null(util_read_file(SRCDIR "/meson.build", 10, &len));
	assert_non_null(strstr(err_msg(), "larger than"));
}

static void
test_err_prefix(void **state)
{
	(void)state;
	err_set("inner %d", 1);
	err_prefix("outer");
	assert_string_equal(err_msg(), "outer: inner 1");
	err_clear();
	assert_string_equal(err_msg(), "unknown error");
}

/*
 * Counted blocks: zeroed, aligned as malloc's, freed on the last put
 * and not before (under ASan a use after the wrong put, or a block left
 * over, fails the run); NULL is accepted.
 */
static void
test_counted(void **state)
{
	uint64_t *a = xrc_calloc(1000, sizeof(*a)), *b;
	long double *e = xrc_calloc(0, sizeof(*e));

	(void)state;
	assert_int_equal((uintptr_t)a % _Alignof(max_align_t), 0);
	assert_int_equal((uintptr_t)e % _Alignof(max_align_t), 0);
	for (size_t i = 0; i < 1000; i++)
		assert_int_equal(a[i], 0);
	a[999] = 42;
	b = xrc_ref(a);
	assert_ptr_equal(a, b);
	xrc_put(a);          /* b still holds it */
	assert_int_equal(b[999], 42);
	b[0] = 1;
	xrc_put(b);          /* freed */
	xrc_put(e);
	assert_null(xrc_ref(NULL));
	xrc_put(NULL);
}

/* FNV-1a's published 64-bit values; the statement caches key on it. */
static void
test_str_hash(void **state)
{
	(void)state;
	assert_true(util_str_hash("") == 0xcbf29ce484222325ull);
	assert_true(util_str_hash("a") == 0xaf63dc4c8601ec8cull);
	assert_true(util_str_hash("foobar") == 0x85944171f73967e8ull);
	assert_true(util_str_hash("SELECT 1") != util_str_hash("SELECT 2"));
}

static void
test_uuid_parse(void **state)
{
	static const unsigned char want[16] = {
		0x82, 0x5c, 0xb7, 0x2c, 0x59, 0xc2, 0x4e, 0xae,
		0x9b, 0x01, 0x84, 0x52, 0xac, 0x59, 0x4c, 0x3f};
	static const char *const bad[] = {
		"", "825cb72c", "825cb72c59c24eae9b018452ac594c3f",
		"825cb72c-59c2-4eae-9b01-8452ac594c3", /* 35 */
		"825cb72c-59c2-4eae-9b01-8452ac594c3ff", /* 37 */
		"825cb72c-59c2-4eae-9b01+8452ac594c3f",
		"825cb72c-59c2-4eae-9b0g-8452ac594c3f",
		"825cb72c559c2-4eae-9b01-8452ac594c3f",
	};
	unsigned char out[16];

	(void)state;
	assert_int_equal(util_uuid_parse("825cb72c-59c2-4eae-9b01-8452ac594c3f", out), 0);
	assert_memory_equal(out, want, 16);
	assert_int_equal(util_uuid_parse("825CB72C-59C2-4EAE-9B01-8452AC594C3F", out), 0);
	assert_memory_equal(out, want, 16);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(util_uuid_parse(bad[i], out), -1);
	/* every byte value at every place, and every character at every
	 * place of the text: only hex digits, and '-' where it belongs */
	for (int pos = 0; pos < 16; pos++)
		for (int b = 0; b < 256; b++) {
			unsigned char u[16], back[16];
			char text[40];

			memcpy(u, want, 16);
			u[pos] = (unsigned char)b;
			snprintf(text, sizeof(text),
				 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
				 "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3],
				 u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
				 u[12], u[13], u[14], u[15]);
			assert_int_equal(util_uuid_parse(text, back), 0);
			assert_memory_equal(back, u, 16);
		}
	for (int pos = 0; pos < 36; pos++)
		for (int c = 1; c < 256; c++) {
			char text[] = "825cb72c-59c2-4eae-9b01-8452ac594c3f";
			bool dash = pos == 8 || pos == 13 || pos == 18 || pos == 23;
			bool ok = dash ? c == '-' : isxdigit(c) != 0;

			text[pos] = (char)c;
			assert_int_equal(util_uuid_parse(text, out), ok ? 0 : -1);
		}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_percent),
		cmocka_unit_test(test_int64),
		cmocka_unit_test(test_format_roundtrip),
		cmocka_unit_test(test_strbuf),
		cmocka_unit_test(test_secret_equal),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_err_prefix),
		cmocka_unit_test(test_uuid_parse),
		cmocka_unit_test(test_counted),
		cmocka_unit_test(test_str_hash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
