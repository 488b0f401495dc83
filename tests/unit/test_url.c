/*
 * Unit tests for url.c: which http:// and https:// URLs libcurl's URL
 * parser and our own rules take, and URLs made from a host and a port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"
#include "url.h"
#include "util.h"

static void
test_check_http(void **state)
{
	static const char *const good[] = {
		"http://h", "https://h", "http://10.0.2.2:8470",
		"http://10.0.2.2:8470/", "https://autoscaler.example:9000/prefix",
		"http://[::1]", "http://[::1]:8470", "http://[2001:db8::10]:1/x",
		"http://[fe80::1%25eth0]:8470", "http://user@h",
		"http://user:pass@h:8086", "http://h:0", "http://h:65535",
		"http://h/p?q=1#frag", "http://h/caf\xc3\xa9",
	};
	static const struct {
		const char *url, *msg;
	} bad[] = {
		{"", "is not an http:// or https:// URL"},
		{"ftp://h", "is not an http:// or https:// URL"},
		{"HTTP://h", "is not an http:// or https:// URL"},
		{"http:/h", "is not an http:// or https:// URL"},
		{"h:80", "is not an http:// or https:// URL"},
		{"http://", "no host"},
		{"http:///path", "no host"},
		{"https:///", "no host"},
		{"http://:8470", "not a valid URL"},
		{"http://h:65536", "not a valid URL"},
		{"http://h:99999", "not a valid URL"},
		{"http://h:-1", "not a valid URL"},
		{"http://h:80x", "not a valid URL"},
		{"http://[::1", "not a valid URL"},
		{"http://[zz]:1", "not a valid URL"},
		{"http://::1:80", "not a valid URL"},
		{"http://a b", "not a valid URL"},
		{"http://h/a b", "not a valid URL"},
		{"http://h/?a b", "not a valid URL"},
		{"http://h/#a b", "not a valid URL"},
		{"http://ho^st", "not a valid URL"},
		{"http://h\t/", "not a valid URL"},
		{"http://h/\n", "not a valid URL"},
		{"http://h/\x7f", "not a valid URL"},
		/* libcurl reads it, but not what it writes back ("%25@x") */
		{"http://[fe80::1%@x]:1", "not a valid URL"},
		{"https://va:pw@[fe80::1%@25eth0]:808/", "not a valid URL"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (url_check_http(good[i]) != 0)
			fail_msg("'%s' refused: %s", good[i], err_msg());
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (url_check_http(bad[i].url) == 0)
			fail_msg("case %zu '%s' accepted", i, bad[i].url);
		if (!strstr(err_msg(), bad[i].msg))
			fail_msg("case %zu: '%s' lacks '%s'", i, err_msg(),
				 bad[i].msg);
	}
}

static void
test_from_host_port(void **state)
{
	static const struct {
		const char *scheme, *host;
		int port;
		const char *want;
	} cases[] = {
		{"http", "10.0.2.2", 8470, "http://10.0.2.2:8470"},
		{"https", "autoscaler.example", 443, "https://autoscaler.example:443"},
		{"http", "::1", 8470, "http://[::1]:8470"},
		{"https", "2001:db8::10", 1, "https://[2001:db8::10]:1"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *u = url_from_host_port(cases[i].scheme, cases[i].host,
					     cases[i].port);

		assert_string_equal(u, cases[i].want);
		assert_int_equal(url_check_http(u), 0);
		free(u);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_http),
		cmocka_unit_test(test_from_host_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
