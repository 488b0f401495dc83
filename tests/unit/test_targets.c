/*
 * Unit tests for targets.c: the load-balancer file formats, with hostile
 * ids and addresses that must not reach a file (a newline, a ';', a
 * second directive), the address check, and the atomic file write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "targets.h"
#include "util.h"

#define ID1 "0b1e6c3a-2f4d-4e5a-9b8c-7d6e5f4a3b21"
#define ID2 "5b0c6e1e-8f0a-4c39-9d7e-2f1b8a3c4d5e"

static void
test_addr_valid(void **state)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{"10.0.0.1", true},
		{"192.168.122.254", true},
		{"2001:db8::1", true},
		{"::1", true},
		{"", false},
		{"10.0.0.1\nserver evil 6.6.6.6:80", false},
		{"10.0.0.1;", false},
		{"10.0.0.1 backup", false},
		{"010.0.0.1", false},          /* not canonical */
		{"2001:DB8::1", false},        /* not canonical (inet_ntop: lower) */
		{"2001:db8:0:0:0:0:0:1", false},
		{"fe80::1%eth0", false},
		{"host.example", false},
		{"256.0.0.1", false},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (targets_addr_valid(cases[i].s) != cases[i].ok)
			fail_msg("'%s': want %s", cases[i].s,
				 cases[i].ok ? "valid" : "invalid");
	}
	assert_true(targets_id_valid(ID1));
	assert_false(targets_id_valid("0B1E6C3A-2F4D-4E5A-9B8C-7D6E5F4A3B21"));
	assert_false(targets_id_valid(ID1 "\nserver"));
	assert_false(targets_id_valid("web-1"));
}

/* The two good entries, and hostile ones between them. */
static const struct targets_entry entries[] = {
	{ID1, "10.0.0.5"},
	{ID1, "10.0.0.6\nserver evil 6.6.6.6:80 check"},
	{"x\ny", "10.0.0.7"},
	{ID2, "10.0.0.8;include /etc/passwd"},
	{ID2, "2001:db8::7"},
};

static char *
render(enum config_targets_format f, int port, size_t *bad)
{
	struct strbuf sb = STRBUF_INIT;

	*bad = targets_render(f, "web", port, entries, ARRAY_SIZE(entries), &sb);
	return strbuf_detach(&sb);
}

static void
test_formats(void **state)
{
	size_t bad;
	char *s;

	(void)state;
	s = render(CONFIG_TARGETS_HAPROXY, 8080, &bad);
	assert_int_equal(bad, 3);
	assert_string_equal(s,
		"# virt-autoscaler: the ready instances of group web (haproxy), rewritten on every change\n"
		"backend web\n"
		"    server " ID1 " 10.0.0.5:8080 check\n"
		"    server " ID2 " [2001:db8::7]:8080 check\n");
	free(s);
	s = render(CONFIG_TARGETS_NGINX, 80, &bad);
	assert_int_equal(bad, 3);
	assert_string_equal(s,
		"# virt-autoscaler: the ready instances of group web (nginx), rewritten on every change\n"
		"server 10.0.0.5:80;\n"
		"server [2001:db8::7]:80;\n");
	free(s);
	s = render(CONFIG_TARGETS_PLAIN, 0, &bad);
	assert_int_equal(bad, 3);
	assert_string_equal(s,
		"# virt-autoscaler: the ready instances of group web (plain), rewritten on every change\n"
		"10.0.0.5\n"
		"2001:db8::7\n");
	free(s);
	s = render(CONFIG_TARGETS_PLAIN, 443, &bad);
	assert_non_null(strstr(s, "\n10.0.0.5:443\n[2001:db8::7]:443\n"));
	free(s);
	/* no members: the comment alone (a backend with no server) */
	{
		struct strbuf sb = STRBUF_INIT;

		assert_int_equal(targets_render(CONFIG_TARGETS_NGINX, "web", 80,
						NULL, 0, &sb), 0);
		s = strbuf_detach(&sb);
		assert_null(strchr(s, ';'));
		free(s);
	}
}

static void
test_write_file(void **state)
{
	char dir[] = "/tmp/va-targets-XXXXXX";
	char *path, *bad;
	char buf[64] = "";
	struct stat st;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/web.cfg", dir);
	assert_int_equal(targets_write_file(path, "one\n", 4), 0);
	assert_int_equal(targets_write_file(path, "two\n", 4), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "two\n");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	/* no temporary file left beside it */
	{
		char *cmd = xasprintf("test $(ls -A %s | wc -l) -eq 1", dir);

		assert_int_equal(system(cmd), 0);
		free(cmd);
	}
	/* a directory that does not exist: an error naming the file */
	bad = xasprintf("%s/nope/web.cfg", dir);
	assert_int_equal(targets_write_file(bad, "x", 1), -1);
	assert_non_null(strstr(err_msg(), bad));
	unlink(path);
	rmdir(dir);
	free(path);
	free(bad);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_valid),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_write_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
