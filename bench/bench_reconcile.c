/*
 * bench_reconcile: what a reconciliation pass over one host costs, on
 * libvirt's test driver (test:///default, in-process: the wall times are
 * the client's own work, not network round trips; the call counts are
 * what a remote host would answer).
 *
 *   bench_reconcile [N...]   for each N (default 1000 5000): N domains of
 *                            ours (half running) with two volumes each
 *
 * Compared, per pass: the way reconcile.c listed a host before (one
 * listing, then virDomainGetMetadata and virDomainIsActive per domain,
 * then the pool), inventory.c's first pass (metadata read once per
 * domain) and its steady pass (from the cache), and the planner over the
 * result with one store row per domain. Figures only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "domxml.h"
#include "inventory.h"
#include "log.h"
#include "reconcile_plan.h"
#include "util.h"

#define POOL "default-pool"
#define OURS "7f0c9a51-3c1e-4d2b-8a6f-0e1d2c3b4a59"

static void
quiet(void *opaque, virErrorPtr e)
{
	(void)opaque;
	(void)e;
}

static void
setup(virConnectPtr conn, int n)
{
	virStoragePoolPtr pool = virStoragePoolLookupByName(conn, POOL);

	for (int i = 0; i < n; i++) {
		char id[37], name[32], *xml = NULL;
		struct domxml_spec s = {
			.name = name, .uuid = id, .type = DOMXML_TYPE_QEMU,
			.vcpus = 1, .memory = 64u << 20,
			.disk = {.path = "/var/lib/x/d.qcow2"},
			.net = DOMXML_NET_USER, .group = "web",
			.instance_id = id, .owner = OURS};
		virDomainPtr dom;

		domxml_uuid_generate(id);
		snprintf(name, sizeof(name), "va-bench-%05d", i);
		if (domxml_build(&s, &xml) < 0)
			fatal("%s", err_msg());
		dom = virDomainDefineXML(conn, xml);
		if (!dom)
			fatal("define: %s", virGetLastErrorMessage());
		if (i % 2 == 0 && virDomainCreate(dom) < 0)
			fatal("start: %s", virGetLastErrorMessage());
		virDomainFree(dom);
		free(xml);
		for (int k = 0; k < 2; k++) {
			char *v = xasprintf("<volume><name>%s%s</name><capacity>"
					    "1048576</capacity></volume>", id,
					    k ? "-seed.iso" : ".qcow2");
			virStorageVolFree(virStorageVolCreateXML(pool, v, 0));
			free(v);
		}
	}
	virStoragePoolFree(pool);
}

static void
teardown(virConnectPtr conn)
{
	virDomainPtr *doms = NULL;
	int n = virConnectListAllDomains(conn, &doms, 0);

	for (int i = 0; i < n; i++) {
		if (strncmp(virDomainGetName(doms[i]), "va-bench-", 9) == 0) {
			virDomainDestroy(doms[i]);
			virDomainUndefine(doms[i]);
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	virResetLastError();
}

/* reconcile.c before: per domain, its metadata and whether it runs. */
static void
old_way(virConnectPtr conn, unsigned *calls, int64_t *us)
{
	int64_t t0 = util_now_us();
	virDomainPtr *doms = NULL;
	virStoragePoolPtr pool;
	virStorageVolPtr *vols = NULL;
	int n, nv;

	*calls = 1;
	n = virConnectListAllDomains(conn, &doms, 0);
	for (int i = 0; i < n; i++) {
		char *meta = virDomainGetMetadata(doms[i],
						  VIR_DOMAIN_METADATA_ELEMENT,
						  DOMXML_NS_URI, 0);
		struct domxml_meta m;

		if (meta)
			domxml_meta_parse(meta, strlen(meta), &m);
		free(meta);
		virResetLastError();
		(void)virDomainIsActive(doms[i]);
		*calls += 2;
		virDomainFree(doms[i]);
	}
	free(doms);
	pool = virStoragePoolLookupByName(conn, POOL);
	virStoragePoolRefresh(pool, 0);
	nv = virStoragePoolListAllVolumes(pool, &vols, 0);
	for (int i = 0; i < nv; i++)
		virStorageVolFree(vols[i]);
	free(vols);
	virStoragePoolFree(pool);
	*calls += 3;
	*us = util_now_us() - t0;
}

static void
run(int n)
{
	virConnectPtr conn = virConnectOpen("test:///default");
	struct inventory *inv = inventory_new("bench", "test:///default");
	struct inventory_result *r = NULL;
	unsigned old_calls;
	int64_t old_us, t0;

	if (!conn)
		fatal("test:///default: %s", virGetLastErrorMessage());
	setup(conn, n);
	old_way(conn, &old_calls, &old_us);
	printf("%6d domains  before (per domain)     %6u calls  %8.1f ms\n", n,
	       old_calls, (double)old_us / 1000);
	for (int pass = 0; pass < 2; pass++) {
		inventory_result_free(r);
		t0 = util_now_us();
		if (inventory_start(inv, POOL) != 0)
			fatal("%s", err_msg());
		inventory_wait(inv, 600000);
		r = inventory_take(inv);
		printf("%6d domains  inventory, %-12s %6u calls  %8.1f ms"
		       "  (%u for metadata)\n", n,
		       pass ? "steady" : "first pass", r->calls,
		       (double)(util_now_us() - t0) / 1000, r->meta_calls);
	}
	{
		struct store_instance *rows = xcalloc(r->n_domains + 1,
						      sizeof(*rows));
		const char *groups[] = {"web"};
		struct reconcile_input in = {
			.host = "bench", .owner = OURS, .inv = r, .rows = rows,
			.groups = groups, .n_groups = 1};
		struct reconcile_plan p;

		for (size_t i = 0; i < r->n_domains; i++) {
			if (!r->domains[i].meta)
				continue;
			rows[in.n_rows].id = r->domains[i].meta->id;
			rows[in.n_rows].group = (char *)"web";
			rows[in.n_rows].host = (char *)"bench";
			rows[in.n_rows].domain = r->domains[i].name;
			rows[in.n_rows++].state = STORE_INSTANCE_READY;
		}
		t0 = util_now_us();
		reconcile_plan_make(&in, &p);
		printf("%6d domains  planner                %6s        %8.1f ms"
		       "  (%zu actions: the stopped ones turn unhealthy)\n", n,
		       "-", (double)(util_now_us() - t0) / 1000, p.n);
		reconcile_plan_release(&p);
		free(rows);
	}
	inventory_result_free(r);
	inventory_free(inv);
	teardown(conn);
	virConnectClose(conn);
}

int
main(int argc, char **argv)
{
	virSetErrorFunc(NULL, quiet);
	log_set_level(LOG_LEVEL_ERROR);
	if (argc < 2) {
		run(1000);
		run(5000);
	}
	for (int i = 1; i < argc; i++)
		run(atoi(argv[i]));
	return 0;
}
