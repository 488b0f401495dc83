/*
 * Unit tests for trace.c: the load-trace parser (table-driven: good
 * input, and every kind of bad line with its FILE:LINE message) and the
 * loader on plain, gzip, truncated gzip and missing files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "log.h"
#include "trace.h"
#include "util.h"

static void
test_parse(void **state)
{
	static const struct {
		const char *in;
		size_t len;       /* 0: strlen */
		const char *err;  /* NULL: valid */
		size_t n;
		uint32_t last;
	} cases[] = {
		{"1\n2\n3\n", 0, NULL, 3, 3},
		{"1\n2\n3", 0, NULL, 3, 3},
		{"0\r\n17\r\n", 0, NULL, 2, 17},
		{"4294967295\n", 0, NULL, 1, 4294967295u},
		{"007\n", 0, NULL, 1, 7},
		{"", 0, "t.txt: empty trace", 0, 0},
		{"\n", 0, "t.txt:1: empty line", 0, 0},
		{"1\n\n2\n", 0, "t.txt:2: empty line", 0, 0},
		{"1\n-5\n", 0, "t.txt:2: negative value '-5'", 0, 0},
		{"1\n2\nabc\n", 0, "t.txt:3: 'abc' is not a non-negative integer",
		 0, 0},
		{"1 \n", 0, "t.txt:1: '1 ' is not a non-negative integer", 0, 0},
		{" 1\n", 0, "t.txt:1:", 0, 0},
		{"+1\n", 0, "t.txt:1: '+1'", 0, 0},
		{"1.5\n", 0, "t.txt:1: '1.5'", 0, 0},
		{"1e3\n", 0, "t.txt:1:", 0, 0},
		{"4294967296\n", 0, "t.txt:1: value too large", 0, 0},
		{"99999999999999999999999\n", 0, "t.txt:1: value too large", 0, 0},
		{"1\n2\0\n", 5, "t.txt:2: unexpected byte 0x00", 0, 0},
		{"1\n\xff\n", 0, "t.txt:2: unexpected byte 0xff", 0, 0},
		{"5\n6\n7\r\r\n", 0, "t.txt:3:", 0, 0},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct trace t;
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
		int rc = trace_parse(cases[i].in, len, "t.txt", &t);

		if (!cases[i].err) {
			if (rc != 0)
				fail_msg("case %zu: %s", i, err_msg());
			assert_int_equal(t.n, cases[i].n);
			assert_int_equal(t.v[t.n - 1], cases[i].last);
			trace_release(&t);
		} else {
			if (rc != -1)
				fail_msg("case %zu parsed", i);
			if (!strstr(err_msg(), cases[i].err))
				fail_msg("case %zu: got '%s', want '%s'", i,
					 err_msg(), cases[i].err);
			assert_null(t.v);
		}
	}
	trace_release(NULL);
}

static char *
tmp_path(const char *suffix)
{
	char *p = xasprintf("/tmp/va-test-trace-%d%s", (int)getpid(), suffix);

	return p;
}

static void
write_file(const char *path, const char *data)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, strlen(data), f), strlen(data));
	assert_int_equal(fclose(f), 0);
}

static void
write_gz(const char *path, const char *data)
{
	gzFile gz = gzopen(path, "wb");

	assert_non_null(gz);
	assert_int_equal(gzwrite(gz, data, (unsigned)strlen(data)),
			 (int)strlen(data));
	assert_int_equal(gzclose(gz), Z_OK);
}

static void
test_load(void **state)
{
	char *plain = tmp_path(".txt"), *gz = tmp_path(".txt.gz");
	char *bad = tmp_path("-bad.gz"), *trunc = tmp_path("-trunc.gz");
	struct strbuf big = STRBUF_INIT;
	struct trace t;
	char *data, *msg;
	size_t len;

	(void)state;
	write_file(plain, "3\n1\n4\n1\n5\n");
	assert_int_equal(trace_load(plain, &t), 0);
	assert_int_equal(t.n, 5);
	assert_int_equal(t.v[4], 5);
	trace_release(&t);

	for (int i = 0; i < 100000; i++)
		strbuf_addf(&big, "%d\n", i % 977);
	write_gz(gz, strbuf_str(&big));
	assert_int_equal(trace_load(gz, &t), 0);
	assert_int_equal(t.n, 100000);
	assert_int_equal(t.v[99999], 99999 % 977);
	trace_release(&t);

	/* the error names the file and the line, inside gzip too */
	write_gz(bad, "1\n2\nthree\n");
	assert_int_equal(trace_load(bad, &t), -1);
	msg = xasprintf("%s:3: 'three' is not a non-negative integer", bad);
	assert_string_equal(err_msg(), msg);
	free(msg);

	/* a truncated gzip file is an error, not a shorter trace */
	data = util_read_file(gz, 1 << 24, &len);
	assert_non_null(data);
	{
		FILE *f = fopen(trunc, "wb");

		assert_non_null(f);
		assert_int_equal(fwrite(data, 1, len / 2, f), len / 2);
		assert_int_equal(fclose(f), 0);
	}
	free(data);
	assert_int_equal(trace_load(trunc, &t), -1);
	assert_non_null(strstr(err_msg(), trunc));

	assert_int_equal(trace_load("/nonexistent/trace.txt", &t), -1);
	assert_non_null(strstr(err_msg(), "/nonexistent/trace.txt: cannot open"));

	unlink(plain);
	unlink(gz);
	unlink(bad);
	unlink(trunc);
	free(plain);
	free(gz);
	free(bad);
	free(trunc);
	strbuf_release(&big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
