/*
 * Unit test for inventory.c on libvirt's test driver (test:///default,
 * in-process): a pass lists every domain with its running state and our
 * metadata, and the pool's volumes; the metadata is read once per domain
 * (cache by UUID), again only after inventory_forget(), and entries of
 * domains that went are dropped. A steady pass costs 4 calls whatever the
 * number of domains. Plus: a pass that cannot list, a missing pool, a
 * second start while one runs, an abandoned pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "domxml.h"
#include "inventory.h"
#include "log.h"
#include "util.h"

#define POOL "default-pool"
#define OURS "7f0c9a51-3c1e-4d2b-8a6f-0e1d2c3b4a59"
#define OTHER "00000000-0000-4000-8000-000000000000"

static void
quiet(void *opaque, virErrorPtr e)
{
	(void)opaque;
	(void)e;
}

/* Define a domain (owner: OURS, OTHER, NULL = legacy; "none": no
 * metadata); its id (= its UUID) into id. */
static virDomainPtr
define(virConnectPtr conn, const char *owner, const char *name, char id[37])
{
	struct domxml_spec s = {
		.name = name, .type = DOMXML_TYPE_QEMU, .vcpus = 1,
		.memory = 64u << 20, .disk = {.path = "/var/lib/x/d.qcow2"},
		.net = DOMXML_NET_USER, .group = "web", .owner = owner};
	virDomainPtr dom;
	char *xml = NULL;

	domxml_uuid_generate(id);
	s.uuid = id;
	s.instance_id = id;
	if (owner && strcmp(owner, "none") == 0)
		xml = xasprintf("<domain type='test'><name>%s</name>"
				"<uuid>%s</uuid><memory>65536</memory>"
				"<vcpu>1</vcpu><os><type>hvm</type></os>"
				"</domain>", name, id);
	else if (domxml_build(&s, &xml) < 0)
		fail_msg("%s", err_msg());
	dom = virDomainDefineXML(conn, xml);
	if (!dom)
		fail_msg("define %s: %s", name, virGetLastErrorMessage());
	free(xml);
	return dom;
}

static void
make_volume(virConnectPtr conn, const char *name)
{
	virStoragePoolPtr pool = virStoragePoolLookupByName(conn, POOL);
	char *xml = xasprintf("<volume><name>%s</name><capacity>1048576"
			      "</capacity></volume>", name);
	virStorageVolPtr v;

	assert_non_null(pool);
	v = virStorageVolCreateXML(pool, xml, 0);
	if (!v)
		fail_msg("volume %s: %s", name, virGetLastErrorMessage());
	virStorageVolFree(v);
	virStoragePoolFree(pool);
	free(xml);
}

/* One pass to the end. */
static struct inventory_result *
pass(struct inventory *inv, const char *pool)
{
	struct inventory_result *r;

	assert_int_equal(inventory_start(inv, pool), 0);
	assert_true(inventory_running(inv));
	assert_int_equal(inventory_wait(inv, 10000), 0);
	r = inventory_take(inv);
	assert_non_null(r);
	assert_false(inventory_running(inv));
	return r;
}

static const struct inventory_domain *
lookup(const struct inventory_result *r, const char *name)
{
	for (size_t i = 0; i < r->n_domains; i++)
		if (strcmp(r->domains[i].name, name) == 0)
			return &r->domains[i];
	return NULL;
}

/* The domain called name, which must be there. */
static const struct inventory_domain *
find(const struct inventory_result *r, const char *name)
{
	const struct inventory_domain *d = lookup(r, name);

	if (!d) {
		fail_msg("domain %s not listed", name);
		abort();
	}
	return d;
}

/* Its metadata, which must be there. */
static const struct domxml_meta *
meta(const struct inventory_domain *d)
{
	if (!d->meta) {
		fail_msg("domain %s has no metadata", d->name);
		abort();
	}
	return d->meta;
}

static bool
has_volume(const struct inventory_result *r, const char *name)
{
	for (size_t i = 0; i < r->n_volumes; i++)
		if (strcmp(r->volumes[i], name) == 0)
			return true;
	return false;
}

static void
test_passes(void **state)
{
	virConnectPtr conn = virConnectOpen("test:///default");
	struct inventory *inv = inventory_new("test", "test:///default");
	struct inventory_result *r;
	const struct inventory_domain *d;
	virDomainPtr ours, legacy, foreign, plain, extra;
	char id_ours[37], id_legacy[37], id_foreign[37], id_plain[37],
		id_extra[37];
	char *vol;
	size_t before;

	(void)state;
	assert_non_null(conn);
	assert_null(inventory_take(inv)); /* none started */
	ours = define(conn, OURS, "inv-ours", id_ours);
	legacy = define(conn, NULL, "inv-legacy", id_legacy);
	foreign = define(conn, OTHER, "inv-foreign", id_foreign);
	plain = define(conn, "none", "inv-plain", id_plain);
	assert_int_equal(virDomainCreate(ours), 0);
	vol = xasprintf("%s.qcow2", id_ours);
	make_volume(conn, vol);

	/* first pass: it connects; every domain's metadata is read once */
	r = pass(inv, POOL);
	assert_true(r->connected);
	assert_true(r->listed);
	assert_true(r->complete);
	assert_true(r->volumes_listed);
	assert_false(r->call_failed);
	assert_null(r->error);
	before = r->n_domains; /* the driver's own "test" domain, and ours */
	assert_true(before >= 5);
	assert_int_equal(r->meta_calls, before);
	/* the running domain of ours: its address too (test driver: the
	 * leases source answers) */
	assert_int_equal(r->addr_calls, 1);
	assert_int_equal(r->calls, 1 + before + 3 + 1);
	d = find(r, "inv-ours");
	assert_non_null(d);
	assert_true(d->active);
	assert_string_equal(d->uuid, id_ours);
	assert_string_equal(meta(d)->id, id_ours);
	assert_string_equal(meta(d)->owner, OURS);
	assert_int_equal(domxml_owns(d->meta, OURS), DOMXML_OWNER_OURS);
	d = find(r, "inv-legacy");
	assert_false(d->active);
	assert_int_equal(domxml_owns(d->meta, OURS), DOMXML_OWNER_LEGACY);
	d = find(r, "inv-foreign");
	assert_int_equal(domxml_owns(d->meta, OURS), DOMXML_OWNER_FOREIGN);
	d = find(r, "inv-plain");
	assert_null(d->meta);
	assert_int_equal(domxml_owns(d->meta, OURS), DOMXML_OWNER_NONE);
	assert_true(has_volume(r, vol));
	inventory_result_free(r);
	assert_int_equal(inventory_cached(inv), before);

	/* steady state: 4 calls, no metadata read; a stop is seen at once */
	assert_int_equal(virDomainDestroy(ours), 0);
	r = pass(inv, POOL);
	assert_false(r->connected); /* kept from the first pass */
	fprintf(stderr, "steady pass over %zu domains: %u calls, %u for "
			"metadata\n", r->n_domains, r->calls, r->meta_calls);
	assert_int_equal(r->calls, 4);
	assert_int_equal(r->meta_calls, 0);
	assert_int_equal(r->n_domains, before);
	assert_false(find(r, "inv-ours")->active);
	meta(find(r, "inv-ours")); /* from the cache */
	inventory_result_free(r);

	/* a new domain: its metadata alone is read; one that went is
	 * dropped from the cache */
	extra = define(conn, OURS, "inv-extra", id_extra);
	assert_int_equal(virDomainUndefine(plain), 0);
	r = pass(inv, POOL);
	assert_int_equal(r->meta_calls, 1);
	find(r, "inv-extra");
	assert_null(lookup(r, "inv-plain"));
	inventory_result_free(r);
	assert_int_equal(inventory_cached(inv), before);

	/* we wrote the legacy domain's owner: forgotten, read again */
	{
		struct domxml_meta m = {0};
		char *el;

		snprintf(m.group, sizeof(m.group), "web");
		snprintf(m.id, sizeof(m.id), "%s", id_legacy);
		snprintf(m.owner, sizeof(m.owner), OURS);
		assert_int_equal(domxml_meta_format(&m, &el), 0);
		assert_int_equal(virDomainSetMetadata(legacy,
						      VIR_DOMAIN_METADATA_ELEMENT,
						      el, DOMXML_NS_PREFIX,
						      DOMXML_NS_URI,
						      VIR_DOMAIN_AFFECT_CONFIG),
				 0);
		free(el);
	}
	r = pass(inv, POOL);
	assert_int_equal(r->meta_calls, 0); /* not told: cached, still legacy */
	assert_int_equal(domxml_owns(find(r, "inv-legacy")->meta, OURS),
			 DOMXML_OWNER_LEGACY);
	inventory_result_free(r);
	inventory_forget(inv, id_legacy);
	r = pass(inv, POOL);
	assert_int_equal(r->meta_calls, 1);
	assert_int_equal(domxml_owns(find(r, "inv-legacy")->meta, OURS),
			 DOMXML_OWNER_OURS);
	inventory_result_free(r);

	/* forgotten while a pass runs: applied when it is taken */
	assert_int_equal(inventory_start(inv, POOL), 0);
	inventory_forget(inv, id_extra);
	assert_int_equal(inventory_wait(inv, 10000), 0);
	inventory_result_free(inventory_take(inv));
	r = pass(inv, POOL);
	assert_int_equal(r->meta_calls, 1);
	inventory_result_free(r);

	/* a pool that does not exist: domains listed, volumes not */
	r = pass(inv, "no-such-pool");
	assert_true(r->listed);
	assert_false(r->volumes_listed);
	assert_non_null(r->error);
	assert_non_null(strstr(r->error, "no-such-pool"));
	inventory_result_free(r);

	virDomainUndefine(ours);
	virDomainUndefine(legacy);
	virDomainUndefine(foreign);
	virDomainUndefine(extra);
	virDomainFree(ours);
	virDomainFree(legacy);
	virDomainFree(foreign);
	virDomainFree(plain);
	virDomainFree(extra);
	{
		virStoragePoolPtr p = virStoragePoolLookupByName(conn, POOL);
		virStorageVolPtr v = virStorageVolLookupByName(p, vol);

		virStorageVolDelete(v, 0);
		virStorageVolFree(v);
		virStoragePoolFree(p);
	}
	free(vol);
	inventory_free(inv);
	virConnectClose(conn);
}

/* A host that cannot be reached: nothing listed, nothing concluded. */
static void
test_failure(void **state)
{
	struct inventory *inv = inventory_new("nowhere",
					      "nosuchdriver:///system");
	struct inventory_result *r;

	(void)state;
	for (int i = 0; i < 2; i++) { /* each pass tries to connect again */
		r = pass(inv, POOL);
		assert_false(r->connected);
		assert_false(r->listed);
		assert_false(r->complete);
		assert_false(r->volumes_listed);
		assert_true(r->call_failed);
		assert_non_null(r->error);
		assert_non_null(strstr(r->error, "cannot connect"));
		assert_int_equal(r->n_domains, 0);
		assert_int_equal(r->calls, 0);
		inventory_result_free(r);
	}
	inventory_free(inv);
}

/*
 * Addresses: read for running domains of ours only, once, then from the
 * cache; at most INVENTORY_ADDR_DOMAINS_MAX domains a pass, the rest at
 * the next; a domain that stops forgets its address.
 */
#define N_ADDR (INVENTORY_ADDR_DOMAINS_MAX + 8)

static void
test_addresses(void **state)
{
	virConnectPtr conn = virConnectOpen("test:///default");
	struct inventory *inv = inventory_new("test", "test:///default");
	struct inventory_result *r;
	virDomainPtr doms[N_ADDR], other;
	char ids[N_ADDR][37], id_other[37];
	unsigned known = 0;

	(void)state;
	assert_non_null(conn);
	for (int i = 0; i < N_ADDR; i++) {
		char name[32];

		snprintf(name, sizeof(name), "addr-%02d", i);
		doms[i] = define(conn, OURS, name, ids[i]);
		assert_int_equal(virDomainCreate(doms[i]), 0);
	}
	other = define(conn, "none", "addr-not-ours", id_other);
	assert_int_equal(virDomainCreate(other), 0);

	r = pass(inv, POOL);
	fprintf(stderr, "first pass: %u address calls for %d running domains of ours\n",
		r->addr_calls, N_ADDR);
	assert_true(r->addr_calls >= INVENTORY_ADDR_DOMAINS_MAX);
	assert_true(r->addr_calls <= 3 * INVENTORY_ADDR_DOMAINS_MAX);
	for (size_t i = 0; i < r->n_domains; i++)
		if (strncmp(r->domains[i].name, "addr-", 5) == 0 &&
		    r->domains[i].address[0])
			known++;
	assert_int_equal(known, INVENTORY_ADDR_DOMAINS_MAX);
	assert_string_equal(find(r, "addr-not-ours")->address, "");
	inventory_result_free(r);

	/* the rest (8) now; the known ones come from the cache */
	r = pass(inv, POOL);
	assert_int_equal(r->addr_calls, 8);
	for (int i = 0; i < N_ADDR; i++) {
		char name[32];
		const struct inventory_domain *d;
		const char *v[1];

		snprintf(name, sizeof(name), "addr-%02d", i);
		d = find(r, name);
		v[0] = d->address;
		assert_non_null(inventory_pick_address(v, 1));
	}
	inventory_result_free(r);

	/* steady: no address call */
	assert_int_equal(virDomainDestroy(doms[0]), 0);
	r = pass(inv, POOL);
	assert_int_equal(r->addr_calls, 0);
	assert_string_equal(find(r, "addr-00")->address, "");
	inventory_result_free(r);
	/* started again: read again */
	assert_int_equal(virDomainCreate(doms[0]), 0);
	r = pass(inv, POOL);
	assert_int_equal(r->addr_calls, 1);
	assert_true(find(r, "addr-00")->address[0] != '\0');
	inventory_result_free(r);
	/* a host on user networking: never asked */
	inventory_free(inv);
	inv = inventory_new("test", "test:///default");
	inventory_set_addresses(inv, false);
	r = pass(inv, POOL);
	assert_int_equal(r->addr_calls, 0);
	assert_string_equal(find(r, "addr-01")->address, "");
	inventory_result_free(r);

	for (int i = 0; i < N_ADDR; i++) {
		virDomainDestroy(doms[i]);
		virDomainUndefine(doms[i]);
		virDomainFree(doms[i]);
	}
	virDomainDestroy(other);
	virDomainUndefine(other);
	virDomainFree(other);
	inventory_free(inv);
	virConnectClose(conn);
}

static void
test_pick_address(void **state)
{
	const char *a[] = {"127.0.0.1", "::1", "fe80::1", "169.254.3.4",
			   "2001:db8::5", "10.0.0.7", "not an address"};
	const char *b[] = {"::1", "fe80::1", "2001:db8::5"};
	const char *c[] = {"127.0.0.1", "fe80::2", "garbage\nserver x", NULL};

	(void)state;
	assert_string_equal(inventory_pick_address(a, 7), "10.0.0.7");
	assert_string_equal(inventory_pick_address(b, 3), "2001:db8::5");
	assert_null(inventory_pick_address(c, 4));
	assert_null(inventory_pick_address(c, 0));
}

/* One pass at a time; a pass given up on frees itself. */
static void
test_lifecycle(void **state)
{
	virConnectPtr conn = virConnectOpen("test:///default");
	struct inventory *inv = inventory_new("test", "test:///default");

	(void)state;
	assert_int_equal(inventory_start(inv, POOL), 0);
	assert_int_equal(inventory_start(inv, POOL), -1);
	assert_non_null(strstr(err_msg(), "still runs"));
	assert_true(inventory_started_ms(inv) > 0);
	/* abandoned, maybe still running: its thread frees it (ASan) */
	inventory_free(inv);
	inv = inventory_new("test", "test:///default");
	assert_int_equal(inventory_start(inv, POOL), 0);
	assert_int_equal(inventory_wait(inv, 10000), 0);
	inventory_free(inv); /* finished, not taken */
	usleep(200000);      /* let an abandoned thread end before exit */
	virConnectClose(conn);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_passes),
		cmocka_unit_test(test_failure),
		cmocka_unit_test(test_lifecycle),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_pick_address),
	};

	virSetErrorFunc(NULL, quiet);
	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
