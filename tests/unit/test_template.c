/*
 * template.c: what changes a group's template (and so its hash), what
 * does not, and a stored body read back into the group it builds from.
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
#include "template.h"
#include "util.h"

static void
group(struct config_group *gc, struct provision_files *f)
{
	memset(gc, 0, sizeof(*gc));
	memset(f, 0, sizeof(*f));
	gc->name = (char *)"web";
	gc->template.vcpus = 2;
	gc->template.memory = 1ULL << 30;
	gc->template.image = (char *)"debian-12.qcow2";
	gc->template.disk = 10ULL << 30;
	gc->template.name_prefix = (char *)"web";
	gc->cloud_init.phone_home = true;
	f->user_data = "#cloud-config\n# v1\n";
	f->user_data_len = strlen(f->user_data);
}

static void
hash_of(const struct config_group *gc, const struct provision_files *f,
	char out[65])
{
	char *b = template_body(gc, f);

	template_hash(b, out);
	assert_int_equal(strlen(out), 64);
	free(b);
}

static void
test_what_changes_it(void **state)
{
	struct config_group gc;
	struct provision_files f;
	char h0[65], h[65];

	(void)state;
	group(&gc, &f);
	hash_of(&gc, &f, h0);
	hash_of(&gc, &f, h);
	assert_string_equal(h0, h); /* the same template, the same hash */
	f.user_data = "#cloud-config\n# v2\n";
	hash_of(&gc, &f, h);
	assert_string_not_equal(h0, h);
	group(&gc, &f);
	gc.template.vcpus = 4;
	hash_of(&gc, &f, h);
	assert_string_not_equal(h0, h);
	group(&gc, &f);
	gc.template.image = (char *)"debian-13.qcow2";
	hash_of(&gc, &f, h);
	assert_string_not_equal(h0, h);
	group(&gc, &f);
	f.network_config = "version: 2\n";
	f.network_config_len = strlen(f.network_config);
	hash_of(&gc, &f, h);
	assert_string_not_equal(h0, h);
	/* not the template: the name prefix, the domain XML's path (its
	 * contents are), the bounds, the policy */
	group(&gc, &f);
	gc.template.name_prefix = (char *)"other";
	gc.template.domain_xml = (char *)"/etc/autoscaler/web.xml";
	gc.min = 3;
	gc.max = 9;
	hash_of(&gc, &f, h);
	assert_string_equal(h0, h);
}

static void
test_round_trip(void **state)
{
	struct config_group gc, now;
	struct provision_files f;
	struct template_copy c;
	char *body;

	(void)state;
	group(&gc, &f);
	gc.template.kernel = (char *)"/boot/vmlinuz";
	f.domain_template = "<domain/>";
	f.domain_template_len = 9;
	body = template_body(&gc, &f);
	/* read back into the configuration as it is now */
	group(&now, &f);
	now.template.vcpus = 8;
	now.max = 7;
	now.cloud_init.phone_home = false;
	assert_int_equal(template_parse(body, &now, &c), 0);
	assert_int_equal(c.gc.template.vcpus, 2);
	assert_int_equal(c.gc.max, 7);
	assert_true(c.gc.cloud_init.phone_home);
	assert_string_equal(c.gc.template.image, "debian-12.qcow2");
	assert_string_equal(c.gc.template.kernel, "/boot/vmlinuz");
	assert_null(c.gc.template.initrd);
	assert_int_equal(c.files.user_data_len, strlen("#cloud-config\n# v1\n"));
	assert_memory_equal(c.files.domain_template, "<domain/>", 9);
	assert_null(c.files.network_config);
	template_copy_release(&c);
	free(body);
}

static void
test_damaged(void **state)
{
	static const char *const bad[] = {
		"", "[]", "{", "{\"version\":1}", "{\"version\":2}",
		"{\"version\":2,\"template\":[]}",
		/* a key missing, of the wrong type, out of range */
		"{\"version\":2,\"template\":{\"vcpus\":1,\"memory\":0,"
		"\"image\":\"i\",\"disk\":0,\"kernel\":null,\"initrd\":null},"
		"\"phone_home\":true,\"agent\":true}",
		"{\"version\":2,\"template\":{\"vcpus\":1,\"memory\":0,"
		"\"image\":3,\"disk\":0,\"kernel\":null,\"initrd\":null,"
		"\"cmdline\":null},\"phone_home\":true,\"agent\":true}",
		"{\"version\":2,\"template\":{\"vcpus\":1,\"memory\":-1,"
		"\"image\":\"i\",\"disk\":0,\"kernel\":null,\"initrd\":null,"
		"\"cmdline\":null},\"phone_home\":true,\"agent\":true}",
		"{\"version\":2,\"template\":{\"vcpus\":0,\"memory\":0,"
		"\"image\":\"i\",\"disk\":0,\"kernel\":null,\"initrd\":null,"
		"\"cmdline\":null},\"phone_home\":true,\"agent\":true}",
		"{\"version\":2,\"template\":{\"vcpus\":1,\"memory\":0,"
		"\"image\":\"i\",\"disk\":0,\"kernel\":null,\"initrd\":null,"
		"\"cmdline\":null},\"phone_home\":1,\"agent\":true}",
	};

	struct config_group gc;
	struct provision_files f;
	struct template_copy c;

	(void)state;
	group(&gc, &f);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err_clear();
		if (template_parse(bad[i], &gc, &c) == 0)
			fail_msg("accepted: %s", bad[i]);
		assert_true(strlen(err_msg()) > 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_what_changes_it),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_damaged),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
