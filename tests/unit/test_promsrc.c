/*
 * Unit tests for promsrc.c: Prometheus' answers to an instant query
 * (a table of bodies: what is one number, and what each refusal says),
 * and the query URL built from the base URL and the PromQL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"
#include "promsrc.h"
#include "util.h"

#define V(x) "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\"," \
	     "\"result\":[{\"metric\":{\"job\":\"lb\"},\"value\":[1700000000.5,\"" x "\"]}]}}"

static void
test_parse(void **state)
{
	static const struct {
		const char *body;
		int rc;
		double v;           /* rc 0 */
		const char *why;    /* rc -1: a part of the reason */
	} cases[] = {
		/* one number */
		{V("42.5"), 0, 42.5, NULL},
		{V("0"), 0, 0, NULL},
		{V("-0"), 0, 0, NULL},
		{V("1e12"), 0, 1e12, NULL},
		{V("1.5e+03"), 0, 1500, NULL},
		{"{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
		 "\"result\":[1700000000,\"7\"]}}", 0, 7, NULL},
		{"  \n" V("3") " \n", 0, 3, NULL},
		{"{\"status\":\"success\",\"warnings\":[\"w\"],\"data\":{"
		 "\"resultType\":\"vector\",\"result\":[{\"value\":[1,\"9\"]}]}}",
		 0, 9, NULL},
		/* values the policy must not see */
		{V("NaN"), -1, 0, "the value is NaN"},
		{V("+Inf"), -1, 0, "the value is infinite"},
		{V("-Inf"), -1, 0, "minus infinite"},
		{V("-3"), -1, 0, "the value -3 is negative"},
		{V("1e300"), -1, 0, "is above 1e+12"},
		{V("1e12000"), -1, 0, "infinite"},
		{V("12abc"), -1, 0, "the value '12abc' is not a number"},
		{V(""), -1, 0, "is not a number"},
		{V(" 5"), -1, 0, "is not a number"},
		/* results that are not one number */
		{"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\","
		 "\"result\":[]}}", -1, 0, "no series"},
		{"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\","
		 "\"result\":[{\"metric\":{\"b\":\"x\"},\"value\":[1,\"1\"]},"
		 "{\"metric\":{\"b\":\"y\"},\"value\":[1,\"2\"]}]}}", -1, 0,
		 "returned 2 series"},
		{"{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\","
		 "\"result\":[{\"metric\":{},\"values\":[[1,\"1\"]]}]}}", -1, 0,
		 "range vector (matrix)"},
		{"{\"status\":\"success\",\"data\":{\"resultType\":\"string\","
		 "\"result\":[1,\"s\"]}}", -1, 0, "a string, not a number"},
		{"{\"status\":\"success\",\"data\":{\"resultType\":\"histo\","
		 "\"result\":[]}}", -1, 0, "unknown result type 'histo'"},
		/* Prometheus says no */
		{"{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":"
		 "\"1:5: parse error: unexpected <op:*>\"}", -1, 0,
		 "Prometheus answered an error: bad_data: 1:5: parse error"},
		{"{\"status\":\"error\"}", -1, 0,
		 "Prometheus answered an error: (no text)"},
		{"{\"status\":\"error\",\"error\":\"a\\nb\"}", -1, 0, "error: a b"},
		/* not Prometheus' shape */
		{"", -1, 0, "an empty answer, not JSON"},
		{"<html>502 Bad Gateway</html>", -1, 0, "not JSON"},
		{"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\"",
		 -1, 0, "ends too early"},
		{V("1") "x", -1, 0, "text after the object"},
		{"[1,2]", -1, 0, "not a JSON object"},
		{"{\"status\":\"ok\"}", -1, 0, "no \"status\": \"success\""},
		{"{\"status\":\"success\"}", -1, 0, "no data.resultType"},
		{"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\","
		 "\"result\":{}}}", -1, 0, "not an array"},
		{"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\","
		 "\"result\":[{\"metric\":{}}]}}", -1, 0, "without a value"},
		{"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\","
		 "\"result\":[{\"value\":[1,2]}]}}", -1, 0,
		 "not [time, \"value\"]"},
		{"{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
		 "\"result\":[1]}}", -1, 0, "not [time, \"value\"]"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char why[PROMSRC_WHY_MAX];
		double v = -1;
		int rc = promsrc_parse(cases[i].body, strlen(cases[i].body), &v,
				       why, sizeof(why));

		if (rc != cases[i].rc)
			fail_msg("case %zu (%s): rc %d, why '%s'", i,
				 cases[i].body, rc, why);
		if (rc == 0) {
			assert_true(v == cases[i].v);
			continue;
		}
		if (!strstr(why, cases[i].why))
			fail_msg("case %zu (%s): why '%s', wanted '%s'", i,
				 cases[i].body, why, cases[i].why);
	}
}

/* Not NUL-terminated, and the reason is bounded however long the
 * error text Prometheus sends. */
static void
test_parse_bounds(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	char why[PROMSRC_WHY_MAX], small[16];
	const char *one = V("5");
	char *copy = xstrndup(one, strlen(one));
	double v = 0;

	(void)state;
	/* exactly len bytes: what follows in memory is not read */
	copy = realloc(copy, strlen(one) + 8);
	memcpy(copy + strlen(one), "garbage", 8);
	assert_int_equal(promsrc_parse(copy, strlen(one), &v, why, sizeof(why)), 0);
	assert_true(v == 5);
	free(copy);

	strbuf_adds(&sb, "{\"status\":\"error\",\"errorType\":\"execution\",\"error\":\"");
	for (int i = 0; i < 2000; i++)
		strbuf_adds(&sb, "x");
	strbuf_adds(&sb, "\"}");
	assert_int_equal(promsrc_parse(sb.buf, sb.len, &v, why, sizeof(why)), -1);
	assert_true(strlen(why) < sizeof(why));
	assert_non_null(strstr(why, "xxx..."));
	assert_int_equal(promsrc_parse(sb.buf, sb.len, &v, small, sizeof(small)), -1);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	strbuf_release(&sb);

	/* deeper than json-c's limit: refused, not a crash */
	for (int i = 0; i < 100; i++)
		strbuf_adds(&sb, "[");
	assert_int_equal(promsrc_parse(sb.buf, sb.len, &v, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not JSON"));
	strbuf_release(&sb);
}

static void
test_urls(void **state)
{
	static const struct {
		const char *url, *query, *want, *shown;
	} cases[] = {
		{"http://127.0.0.1:9090", "up", "http://127.0.0.1:9090/api/v1/query?query=up",
		 "http://127.0.0.1:9090"},
		{"http://127.0.0.1:9090/", "up", "http://127.0.0.1:9090/api/v1/query?query=up",
		 "http://127.0.0.1:9090"},
		{"https://prom.example/prefix/?x=1#f", "sum(rate(a{b=\"c d\"}[1m]))",
		 "https://prom.example/prefix/api/v1/query?query=sum%28rate%28a%7bb%3d%22c+d%22%7d%5b1m%5d%29%29",
		 "https://prom.example/prefix"},
		{"http://user:pw@[::1]:9090", "a&b=c",
		 "http://user:pw@[::1]:9090/api/v1/query?query=a%26b%3dc",
		 "http://[::1]:9090"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *q, *shown;

		assert_int_equal(promsrc_urls(cases[i].url, cases[i].query, &q,
					      &shown), 0);
		assert_string_equal(q, cases[i].want);
		assert_string_equal(shown, cases[i].shown);
		free(q);
		free(shown);
	}
	{
		char *q = NULL, *shown = NULL;

		assert_int_equal(promsrc_urls("ftp://h", "up", &q, &shown), -1);
		assert_non_null(strstr(err_msg(), "prometheus url"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_bounds),
		cmocka_unit_test(test_urls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
