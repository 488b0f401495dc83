/*
 * Unit tests for scalein.c: victim choice for every order on instance
 * fixtures (table-driven, busy flags and their max age included), and the
 * idempotent removal sequence on libvirt's test driver.
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

#include "domxml.h"
#include "log.h"
#include "scalein.h"
#include "util.h"

#define NOW 1000000
#define MAXI 8

struct case_ {
	const char *what;
	const char *order;
	struct scalein_instance inst[MAXI];
	size_t n;
	size_t count;
	int64_t busy_max;
	const char *expect; /* chosen ids, space separated, in order */
};

/* id, host, created, busy, busy since */
#define I(id, h, c) {id, h, c, false, 0}
#define B(id, h, c, since) {id, h, c, true, since}

static const struct case_ cases[] = {
	{"newest first", "newest",
	 {I("a", "h1", 10), I("b", "h1", 30), I("c", "h2", 20)}, 3, 2, 0, "b c"},
	{"oldest first", "oldest",
	 {I("a", "h1", 10), I("b", "h1", 30), I("c", "h2", 20)}, 3, 2, 0, "a c"},
	{"ties broken by id", "newest",
	 {I("a", "h1", 10), I("c", "h1", 10), I("b", "h2", 10)}, 3, 3, 0, "c b a"},
	{"ties broken by id (oldest)", "oldest",
	 {I("c", "h1", 10), I("a", "h1", 10), I("b", "h2", 10)}, 3, 3, 0, "a b c"},
	{"busy skipped", "newest",
	 {I("a", "h1", 10), B("b", "h1", 30, NOW - 10), I("c", "h2", 20)}, 3, 2,
	 60000, "c a"},
	{"busy too long is not protected", "newest",
	 {I("a", "h1", 10), B("b", "h1", 30, NOW - 120000), I("c", "h2", 20)}, 3,
	 1, 60000, "b"},
	{"busy without max age stays protected", "newest",
	 {B("a", "h1", 10, 0), B("b", "h1", 30, 0)}, 2, 2, 0, ""},
	{"fewer than asked when busy", "oldest",
	 {I("a", "h1", 10), B("b", "h1", 5, NOW)}, 2, 2, 60000, "a"},
	{"count larger than the group", "newest",
	 {I("a", "h1", 10)}, 1, 5, 0, "a"},
	{"busiest host first, rebalancing", "busiest-host-first",
	 {I("a", "h1", 10), I("b", "h1", 20), I("c", "h1", 30), I("d", "h2", 40),
	  I("e", "h2", 50), I("f", "h3", 60)}, 6, 4, 0, "c e b f"},
	{"busiest host counts busy VMs for load", "busiest-host-first",
	 {B("a", "h1", 10, NOW), B("b", "h1", 20, NOW), I("c", "h1", 5),
	  I("d", "h2", 40), I("e", "h2", 50)}, 5, 2, 60000, "c e"},
	{"busiest host: tie goes to the newest candidate", "busiest-host-first",
	 {I("a", "h1", 10), I("b", "h2", 20)}, 2, 1, 0, "b"},
	{"nothing to choose from", "oldest", {{0}}, 0, 3, 0, ""},
};

static void
test_choose(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct case_ *c = &cases[i];
		enum scalein_order order;
		size_t out[MAXI], k;
		struct strbuf got = STRBUF_INIT;

		assert_int_equal(scalein_order_parse(c->order, &order), 0);
		assert_string_equal(scalein_order_name(order), c->order);
		k = scalein_choose(c->inst, c->n, order, c->count, NOW, c->busy_max,
				   out);
		for (size_t j = 0; j < k; j++)
			strbuf_addf(&got, "%s%s", j ? " " : "", c->inst[out[j]].id);
		if (strcmp(strbuf_str(&got), c->expect) != 0)
			fail_msg("%s: chose '%s', expected '%s'", c->what,
				 strbuf_str(&got), c->expect);
		strbuf_release(&got);
	}
}

static void
test_order_parse(void **state)
{
	enum scalein_order o;

	(void)state;
	assert_int_equal(scalein_order_parse("random", &o), -1);
	assert_non_null(strstr(err_msg(), "unknown scale-in order 'random'"));
	assert_int_equal(scalein_order_parse(NULL, &o), -1);
}

static void
quiet(void *opaque, virErrorPtr e)
{
}

/* The removal sequence on the test driver, run twice (idempotent). */
static void
test_remove(void **state)
{
	virConnectPtr conn = virConnectOpen("test:///default");
	struct domxml_spec spec = {
		.name = "rm-1", .type = DOMXML_TYPE_QEMU, .vcpus = 1,
		.memory = 64u << 20, .disk = {.path = "/var/lib/x/rm-1.qcow2"},
		.net = DOMXML_NET_USER, .group = "g", .instance_id = "rm-1"};
	const char *vols[] = {"rm-1.qcow2", "rm-1-seed.iso"};
	struct scalein_remove_spec rs = {
		.domain = "rm-1", .pool = "default-pool", .volumes = vols,
		.n_volumes = 2, .shutdown_timeout_ms = 5000};
	virStoragePoolPtr pool;
	virDomainPtr dom;
	char *xml = NULL;
	bool graceful = false;

	(void)state;
	assert_non_null(conn);
	pool = virStoragePoolLookupByName(conn, "default-pool");
	assert_non_null(pool);
	for (size_t i = 0; i < 2; i++) {
		char *vx = xasprintf("<volume><name>%s</name><capacity>1048576"
				     "</capacity></volume>", vols[i]);
		virStorageVolPtr v = virStorageVolCreateXML(pool, vx, 0);

		assert_non_null(v);
		virStorageVolFree(v);
		free(vx);
	}
	assert_int_equal(domxml_build(&spec, &xml), 0);
	dom = virDomainDefineXML(conn, xml);
	assert_non_null(dom);
	assert_int_equal(virDomainCreate(dom), 0);
	virDomainFree(dom);

	if (scalein_remove(conn, &rs, &graceful) < 0)
		fail_msg("%s", err_msg());
	assert_true(graceful); /* the test driver shuts down at once */
	assert_null(virDomainLookupByName(conn, "rm-1"));
	for (size_t i = 0; i < 2; i++) {
		virStorageVolPtr v = virStorageVolLookupByName(pool, vols[i]);

		assert_null(v);
	}
	/* Again: everything is gone already, which is fine. */
	assert_int_equal(scalein_remove(conn, &rs, &graceful), 0);
	assert_false(graceful);

	/* Defined but not running, no timeout: straight to undefine. */
	dom = virDomainDefineXML(conn, xml);
	assert_non_null(dom);
	virDomainFree(dom);
	rs.shutdown_timeout_ms = 0;
	assert_int_equal(scalein_remove(conn, &rs, NULL), 0);
	assert_null(virDomainLookupByName(conn, "rm-1"));

	/* Running, no timeout: destroyed. */
	dom = virDomainDefineXML(conn, xml);
	assert_int_equal(virDomainCreate(dom), 0);
	virDomainFree(dom);
	assert_int_equal(scalein_remove(conn, &rs, &graceful), 0);
	assert_false(graceful);
	assert_null(virDomainLookupByName(conn, "rm-1"));

	free(xml);
	virStoragePoolFree(pool);
	virConnectClose(conn);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_choose),
		cmocka_unit_test(test_order_parse),
		cmocka_unit_test(test_remove),
	};

	virSetErrorFunc(NULL, quiet);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
