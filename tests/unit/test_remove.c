/*
 * Unit test for instance_remove() (src/remove.c), the one removal path
 * of scale-in, rollback, recovery and reconciliation, on libvirt's test
 * driver (test:///default, in-process): it removes a domain only when the
 * domain's metadata names the instance and our installation id (or no
 * owner: older versions), and never touches another installation's domain
 * or a domain that merely holds the instance's domain name. Table-driven:
 * each case defines a domain (or none) and the instance's volumes, removes
 * the instance, and checks what is left.
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

#include "commands.h"
#include "remove.h"
#include "domxml.h"
#include "log.h"
#include "util.h"

/* main.c is not linked; the daemon modules reference its options. */
struct global_opts global_opts;

#define POOL "default-pool"
#define OURS "7f0c9a51-3c1e-4d2b-8a6f-0e1d2c3b4a59"
#define OTHER "00000000-0000-4000-8000-000000000000"

enum meta {
	META_OURS,    /* id = the instance, owner = OURS */
	META_LEGACY,  /* id = the instance, no owner */
	META_FOREIGN, /* id = the instance, owner = OTHER */
	META_OTHER_ID,/* another instance's domain under that name, owner OURS */
	META_NONE,    /* no metadata at all */
	META_ABSENT,  /* no domain */
};

static const struct {
	const char *what;
	enum meta meta;
	bool running;
	bool domain_left;   /* the domain is still there afterwards */
	bool volumes_left;  /* the instance's volumes are still there */
} cases[] = {
	{"ours, running", META_OURS, true, false, false},
	{"ours, shut off", META_OURS, false, false, false},
	{"legacy (no owner)", META_LEGACY, false, false, false},
	{"another installation's, running", META_FOREIGN, true, true, true},
	{"another installation's, shut off", META_FOREIGN, false, true, true},
	{"another instance under the name", META_OTHER_ID, true, true, false},
	{"a domain without our metadata", META_NONE, false, true, false},
	{"no domain", META_ABSENT, false, false, false},
};

static void
quiet(void *opaque, virErrorPtr e)
{
	(void)opaque;
	(void)e;
}

static void
make_volume(virStoragePoolPtr pool, const char *name)
{
	char *xml = xasprintf("<volume><name>%s</name><capacity>1048576"
			      "</capacity></volume>", name);
	virStorageVolPtr v = virStorageVolCreateXML(pool, xml, 0);

	if (!v)
		fail_msg("volume %s: %s", name, virGetLastErrorMessage());
	virStorageVolFree(v);
	free(xml);
}

static bool
volume_there(virStoragePoolPtr pool, const char *name)
{
	virStorageVolPtr v = virStorageVolLookupByName(pool, name);

	virResetLastError();
	virStorageVolFree(v);
	return v != NULL;
}

/* The domain XML for a case; NULL for META_ABSENT. */
static char *
case_xml(enum meta meta, const char *name, const char *id)
{
	char other_id[37];
	struct domxml_spec s = {
		.name = name, .uuid = id, .type = DOMXML_TYPE_QEMU, .vcpus = 1,
		.memory = 64u << 20, .disk = {.path = "/var/lib/x/d.qcow2"},
		.net = DOMXML_NET_USER, .group = "web", .instance_id = id,
		.owner = OURS};
	char *xml = NULL;

	switch (meta) {
	case META_OURS:
		break;
	case META_LEGACY:
		s.owner = NULL;
		break;
	case META_FOREIGN:
		s.owner = OTHER;
		break;
	case META_OTHER_ID:
		domxml_uuid_generate(other_id);
		s.uuid = other_id;
		s.instance_id = other_id;
		break;
	case META_NONE:
		return xasprintf("<domain type='test'><name>%s</name>"
				 "<memory>65536</memory><vcpu>1</vcpu>"
				 "<os><type>hvm</type></os></domain>", name);
	case META_ABSENT:
		return NULL;
	}
	if (domxml_build(&s, &xml) < 0)
		fail_msg("%s", err_msg());
	return xml;
}

static void
test_remove_guard(void **state)
{
	virConnectPtr conn = virConnectOpen("test:///default");
	virStoragePoolPtr pool;

	(void)state;
	assert_non_null(conn);
	pool = virStoragePoolLookupByName(conn, POOL);
	assert_non_null(pool);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char id[37], name[16], *xml;
		char *vols[2];
		virDomainPtr dom;
		bool graceful = true;

		domxml_uuid_generate(id);
		snprintf(name, sizeof(name), "t-%.8s", id);
		vols[0] = xasprintf("%s.qcow2", id);
		vols[1] = xasprintf("%s-seed.iso", id);
		make_volume(pool, vols[0]);
		make_volume(pool, vols[1]);
		xml = case_xml(cases[i].meta, name, id);
		if (xml) {
			dom = virDomainDefineXML(conn, xml);
			if (!dom)
				fail_msg("%s: define: %s", cases[i].what,
					 virGetLastErrorMessage());
			if (cases[i].running)
				assert_int_equal(virDomainCreate(dom), 0);
			virDomainFree(dom);
		}

		if (instance_remove(conn, POOL, name, id, OURS, 0, &graceful) != 0)
			fail_msg("%s: %s", cases[i].what, err_msg());
		assert_false(graceful);

		dom = virDomainLookupByName(conn, name);
		virResetLastError();
		if ((dom != NULL) != cases[i].domain_left)
			fail_msg("%s: the domain is %s", cases[i].what,
				 dom ? "still there" : "gone");
		if (dom && cases[i].running && virDomainIsActive(dom) != 1)
			fail_msg("%s: the domain was stopped", cases[i].what);
		for (size_t k = 0; k < 2; k++)
			if (volume_there(pool, vols[k]) != cases[i].volumes_left)
				fail_msg("%s: volume %s is %s", cases[i].what,
					 vols[k], cases[i].volumes_left
							  ? "gone" : "still there");
		/* clean up what the case left */
		if (dom) {
			virDomainDestroy(dom);
			virDomainUndefine(dom);
			virResetLastError();
			virDomainFree(dom);
		}
		for (size_t k = 0; k < 2; k++) {
			virStorageVolPtr v = virStorageVolLookupByName(pool, vols[k]);

			virResetLastError();
			if (v) {
				virStorageVolDelete(v, 0);
				virStorageVolFree(v);
			}
			free(vols[k]);
		}
		free(xml);
	}
	virStoragePoolFree(pool);
	virConnectClose(conn);
}

/* Without an owner to compare (NULL), another installation's domain that
 * is the instance is treated as ours: the guard is the owner id. */
static void
test_remove_no_owner_given(void **state)
{
	virConnectPtr conn = virConnectOpen("test:///default");
	char id[37], name[16], *xml;
	virDomainPtr dom;

	(void)state;
	assert_non_null(conn);
	domxml_uuid_generate(id);
	snprintf(name, sizeof(name), "t-%.8s", id);
	xml = case_xml(META_FOREIGN, name, id);
	dom = virDomainDefineXML(conn, xml);
	assert_non_null(dom);
	virDomainFree(dom);
	assert_int_equal(instance_remove(conn, POOL, name, id, NULL, 0, NULL), 0);
	assert_null(virDomainLookupByName(conn, name));
	virResetLastError();
	free(xml);
	virConnectClose(conn);
}

/* The host's pool changed since the instance was made (hosts[].pool is
 * restart-only): its volumes are deleted from the pool its domain's disk
 * is in, not looked for in the configured one (issue 12: they stayed). */
static void
test_remove_volumes_in_old_pool(void **state)
{
	virConnectPtr conn = virConnectOpen("test:///default");
	virStoragePoolPtr old;
	virStorageVolPtr ov;
	char id[37], name[16], *vols[2], *xml = NULL, *path;
	struct domxml_spec s = {
		.type = DOMXML_TYPE_QEMU, .vcpus = 1, .memory = 64u << 20,
		.net = DOMXML_NET_USER, .group = "web", .owner = OURS};
	virDomainPtr dom;

	(void)state;
	assert_non_null(conn);
	old = virStoragePoolDefineXML(conn,
				      "<pool type='dir'><name>old-pool</name>"
				      "<target><path>/old-pool</path></target></pool>", 0);
	assert_non_null(old);
	assert_int_equal(virStoragePoolCreate(old, 0), 0);
	domxml_uuid_generate(id);
	snprintf(name, sizeof(name), "t-%.8s", id);
	vols[0] = xasprintf("%s.qcow2", id);
	vols[1] = xasprintf("%s-seed.iso", id);
	make_volume(old, vols[0]);
	make_volume(old, vols[1]);
	ov = virStorageVolLookupByName(old, vols[0]);
	assert_non_null(ov);
	path = virStorageVolGetPath(ov);
	assert_non_null(path);
	s.name = name;
	s.uuid = id;
	s.instance_id = id;
	s.disk.path = path;
	if (domxml_build(&s, &xml) < 0)
		fail_msg("%s", err_msg());
	dom = virDomainDefineXML(conn, xml);
	assert_non_null(dom);
	assert_int_equal(virDomainCreate(dom), 0);
	virDomainFree(dom);

	/* the configured pool is another one now */
	assert_int_equal(instance_remove(conn, POOL, name, id, OURS, 0, NULL), 0);
	assert_null(virDomainLookupByName(conn, name));
	virResetLastError();
	for (size_t k = 0; k < 2; k++) {
		if (volume_there(old, vols[k]))
			fail_msg("volume %s stayed in the old pool", vols[k]);
		free(vols[k]);
	}
	virStorageVolFree(ov);
	free(path);
	free(xml);
	virStoragePoolDestroy(old);
	virStoragePoolUndefine(old);
	virStoragePoolFree(old);
	virConnectClose(conn);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_remove_guard),
		cmocka_unit_test(test_remove_no_owner_given),
		cmocka_unit_test(test_remove_volumes_in_old_pool),
	};

	log_set_level(LOG_LEVEL_ERROR);
	virSetErrorFunc(NULL, quiet);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
