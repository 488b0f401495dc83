/*
 * bench_collect: metrics collection from a real libvirtd with many real
 * QEMU domains (started paused: cheap, and they answer stats calls).
 * bench/collect/run.sh drives it; see bench/README.md "Metrics collection".
 *
 *   bench_collect setup URI N DISK    start domains va-bench-0000.. until N
 *                                     run (paused, tagged with our metadata,
 *                                     1 vCPU, 1 disk DISK, 1 NIC)
 *   bench_collect bulk URI TICKS [cpu]
 *                                     our collector (collect.c): per tick
 *                                     wall time, libvirt calls, RSS; with
 *                                     "cpu" it asks for state + CPU only
 *                                     (a CPU-only policy, built-in store:
 *                                     collect_stats_needed()), printed as
 *                                     mode "bulk-cpu"
 *   bench_collect perdomain URI TICKS the way collectd's virt plugin reads:
 *                                     per domain virDomainGetInfo,
 *                                     virDomainGetVcpus, virDomainMemoryStats,
 *                                     virDomainBlockStats per disk,
 *                                     virDomainInterfaceStats per NIC with a
 *                                     host device; the domain list and XML
 *                                     refreshed on the first tick (collectd:
 *                                     every refresh_interval, 60 s)
 *   bench_collect groups URI REPS     time the bulk call per stats group
 *   bench_collect qemu-rss             resident memory of the QEMU processes
 *   bench_collect teardown URI [N]    destroy the va-bench-* domains (those
 *                                     numbered N and above)
 *
 *   bench_collect mstore RET_S INT_S  bytes per instance of the store
 *
 * Each mode runs in a fresh process so that its resident memory is its own.
 * Figures only: nothing here asserts on time.
 */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "collect.h"
#include "host.h"
#include "log.h"
#include "mstore.h"
#include "util.h"

#define PREFIX "va-bench-"

/* Resident memory of this process in KiB: all of it (VmRSS: includes the
 * pages of shared libraries it touched) or only its private anonymous
 * memory (RssAnon: heap, stacks). */
static long
status_kib(const char *field)
{
	char *s = util_read_file("/proc/self/status", 1 << 16, NULL), *p;
	long kib = -1;

	if (s && (p = strstr(s, field)))
		kib = strtol(p + strlen(field), NULL, 10);
	free(s);
	return kib;
}

static long
rss_kib(void)
{
	return status_kib("VmRSS:");
}

static long
anon_kib(void)
{
	return status_kib("RssAnon:");
}

static void
die(const char *what)
{
	fprintf(stderr, "bench_collect: %s: %s\n", what, virGetLastErrorMessage());
	exit(1);
}

/* ---- setup / teardown ------------------------------------------------ */

struct setup {
	const char *uri, *disk;
	pthread_mutex_t lock;
	int next, n;
	int started, failed;
};

static void *
setup_worker(void *arg)
{
	struct setup *s = arg;
	virConnectPtr conn = virConnectOpen(s->uri);

	if (!conn)
		die("connect");
	for (;;) {
		char name[64];
		char *xml;
		virDomainPtr dom;
		int i;

		pthread_mutex_lock(&s->lock);
		i = s->next++;
		pthread_mutex_unlock(&s->lock);
		if (i >= s->n)
			break;
		snprintf(name, sizeof(name), PREFIX "%04d", i);
		dom = virDomainLookupByName(conn, name);
		if (dom) {
			virDomainFree(dom);
			continue;
		}
		xml = xasprintf(
			"<domain type='qemu'><name>%s</name>"
			"<memory unit='MiB'>32</memory><vcpu>1</vcpu>"
			"<metadata><va:instance xmlns:va='" VA_XMLNS_URI "'"
			" group='bench' id='%s' generation='1'/></metadata>"
			"<os><type arch='x86_64'>hvm</type></os>"
			"<devices>"
			"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
			"<source file='%s'/><target dev='vda' bus='virtio'/>"
			"<readonly/><shareable/></disk>"
			"<interface type='user'><model type='virtio'/></interface>"
			"<memballoon model='virtio'><stats period='10'/></memballoon>"
			"</devices></domain>",
			name, name, s->disk);
		dom = virDomainCreateXML(conn, xml, VIR_DOMAIN_START_PAUSED);
		free(xml);
		pthread_mutex_lock(&s->lock);
		if (dom)
			s->started++;
		else {
			s->failed++;
			fprintf(stderr, "bench_collect: %s: %s\n", name,
				virGetLastErrorMessage());
		}
		pthread_mutex_unlock(&s->lock);
		if (dom)
			virDomainFree(dom);
	}
	virConnectClose(conn);
	return NULL;
}

static int
cmd_setup(const char *uri, int n, const char *disk)
{
	struct setup s = {.uri = uri, .disk = disk, .n = n,
			  .lock = PTHREAD_MUTEX_INITIALIZER};
	pthread_t t[4];
	int64_t t0 = util_now_ms();

	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, setup_worker, &s);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	fprintf(stderr, "setup: %d domains started paused in %.1f s (%d failed)\n",
		s.started, (double)(util_now_ms() - t0) / 1000.0, s.failed);
	return s.failed ? 1 : 0;
}

/* Destroy the va-bench-NNNN domains with NNNN >= keep. */
static int
cmd_teardown(const char *uri, int keep)
{
	virConnectPtr conn = virConnectOpen(uri);
	virDomainPtr *doms = NULL;
	int n, gone = 0;

	if (!conn)
		die("connect");
	n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	for (int i = 0; i < n; i++) {
		const char *name = virDomainGetName(doms[i]);

		if (strncmp(name, PREFIX, strlen(PREFIX)) == 0 &&
		    atoi(name + strlen(PREFIX)) >= keep &&
		    virDomainDestroy(doms[i]) == 0)
			gone++;
		virDomainFree(doms[i]);
	}
	free(doms);
	virConnectClose(conn);
	fprintf(stderr, "teardown: %d domains destroyed\n", gone);
	return 0;
}

/* ---- our collector ------------------------------------------------------ */

struct bulk_tick {
	unsigned calls, n_inst;
	int64_t us;
};

static void
bulk_take(const struct collect_host_result *r, void *opaque)
{
	struct bulk_tick *t = opaque;

	t->calls = r->calls;
	t->n_inst = (unsigned)r->n_inst;
	t->us = r->duration_us;
}

/* CPU time (user + system) of this process, ms. */
static double
self_cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

/* CPU time of libvirtd (utime + stime from /proc), ms; -1 if unknown. */
static double
libvirtd_cpu_ms(void)
{
	char *pid = util_read_file("/run/libvirtd.pid", 64, NULL), *path, *st, *p;
	unsigned long long ut, stt;
	double ms = -1;

	if (!pid)
		return -1;
	path = xasprintf("/proc/%d/stat", atoi(pid));
	st = util_read_file(path, 4096, NULL);
	if (st && (p = strrchr(st, ')')) &&
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		   &ut, &stt) == 2)
		ms = (double)(ut + stt) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
	free(st);
	free(path);
	free(pid);
	return ms;
}

static double tick_cpu0, tick_lvd0;

static void
tick_start(void)
{
	tick_cpu0 = self_cpu_ms();
	tick_lvd0 = libvirtd_cpu_ms();
}

static void
print_tick(const char *mode, int tick, unsigned n, unsigned calls, double ms,
	   long rss)
{
	double lvd = libvirtd_cpu_ms();

	printf("%-9s tick %2d  domains %4u  libvirt calls %5u  wall %8.1f ms"
	       "  RSS %6ld KiB (anon %6ld KiB)  CPU %6.1f ms  libvirtd CPU %6.0f ms\n",
	       mode, tick, n, calls, ms, rss, anon_kib(), self_cpu_ms() - tick_cpu0,
	       lvd >= 0 && tick_lvd0 >= 0 ? lvd - tick_lvd0 : -1.0);
	fflush(stdout);
}

static int
cmd_bulk(const char *uri, int ticks, bool cpu_only)
{
	const char *mode = cpu_only ? "bulk-cpu" : "bulk";
	struct collect_opts o;
	struct collector *c;
	struct host *h = host_new("bench", uri);
	long rss0 = rss_kib();

	log_set_level(LOG_LEVEL_WARN);
	collect_opts_defaults(&o);
	o.stats_period_s = 0; /* paused guests never report balloon stats */
	if (cpu_only)
		o.stats = VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL;
	c = collector_new(&o);
	collector_add_host(c, h);
	if (host_connect_wait(h, 30000) < 0) {
		fprintf(stderr, "bench_collect: %s\n", err_msg());
		return 1;
	}
	printf("%-9s RSS before connecting %ld KiB, after %ld KiB (anon %ld KiB)\n",
	       mode, rss0, rss_kib(), anon_kib());
	for (int i = 0; i < ticks; i++) {
		struct bulk_tick t = {0};
		int64_t t0 = util_now_ms();

		tick_start();
		collect_tick(c, t0);
		collect_wait(c, 120000);
		collect_take(c, bulk_take, &t);
		print_tick(mode, i + 1, t.n_inst, t.calls,
			   (double)(util_now_ms() - t0), rss_kib());
		sleep(1);
	}
	collector_free(c);
	host_free(h);
	host_events_stop();
	return 0;
}

/* ---- a per-domain collector, the way collectd's virt plugin reads ------ */

struct pd_dom {
	virDomainPtr dom;
	char **disks, **nics;
	int n_disks, n_nics;
};

static void
pd_devices(struct pd_dom *d, const char *xml)
{
	xmlDoc *doc = xmlReadMemory(xml, (int)strlen(xml), "d.xml", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR |
					    XML_PARSE_NOWARNING);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;

	for (xmlNode *n = root ? root->children : NULL; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE ||
		    strcmp((const char *)n->name, "devices") != 0)
			continue;
		for (xmlNode *dev = n->children; dev; dev = dev->next) {
			bool disk;

			if (dev->type != XML_ELEMENT_NODE)
				continue;
			disk = strcmp((const char *)dev->name, "disk") == 0;
			if (!disk && strcmp((const char *)dev->name, "interface") != 0)
				continue;
			for (xmlNode *t = dev->children; t; t = t->next) {
				xmlChar *v;

				if (t->type != XML_ELEMENT_NODE ||
				    strcmp((const char *)t->name, "target") != 0)
					continue;
				v = xmlGetProp(t, (const xmlChar *)(disk ? "dev" : "dev"));
				if (v) {
					if (disk) {
						d->disks = xreallocarray(d->disks, d->n_disks + 1,
									 sizeof(char *));
						d->disks[d->n_disks++] = xstrdup((const char *)v);
					} else {
						d->nics = xreallocarray(d->nics, d->n_nics + 1,
									sizeof(char *));
						d->nics[d->n_nics++] = xstrdup((const char *)v);
					}
					xmlFree(v);
				}
			}
		}
	}
	xmlFreeDoc(doc);
}

static void
quiet(void *opaque, virErrorPtr err)
{
	(void)opaque;
	(void)err;
}

static int
cmd_perdomain(const char *uri, int ticks)
{
	virConnectPtr conn;
	struct pd_dom *doms = NULL;
	int n = 0;
	long rss0 = rss_kib();

	conn = virConnectOpen(uri);
	if (!conn)
		die("connect");
	printf("perdomain RSS before connecting %ld KiB, after %ld KiB (anon %ld KiB)\n",
	       rss0, rss_kib(), anon_kib());
	for (int tick = 0; tick < ticks; tick++) {
		int64_t t0 = util_now_ms();
		unsigned calls = 0, ours = 0;

		tick_start();
		if (tick == 0) {
			/* Refresh: list domains, read each one's XML for its
			 * devices (collectd: every refresh_interval). */
			virDomainPtr *list = NULL;
			int m;

			calls++;
			m = virConnectListAllDomains(conn, &list,
						     VIR_CONNECT_LIST_DOMAINS_ACTIVE);
			if (m < 0)
				die("list");
			for (int i = 0; i < m; i++) {
				char *xml;

				if (strncmp(virDomainGetName(list[i]), PREFIX,
					    strlen(PREFIX)) != 0) {
					virDomainFree(list[i]);
					continue;
				}
				doms = xreallocarray(doms, n + 1, sizeof(*doms));
				memset(&doms[n], 0, sizeof(doms[n]));
				doms[n].dom = list[i];
				calls++;
				xml = virDomainGetXMLDesc(list[i], 0);
				if (xml)
					pd_devices(&doms[n], xml);
				free(xml);
				n++;
			}
			free(list);
		}
		for (int i = 0; i < n; i++) {
			struct pd_dom *d = &doms[i];
			virDomainInfo info;
			virVcpuInfoPtr vinfo;
			virDomainMemoryStatStruct mem[VIR_DOMAIN_MEMORY_STAT_NR];
			virDomainBlockStatsStruct bs;
			virDomainInterfaceStatsStruct is;

			calls++;
			if (virDomainGetInfo(d->dom, &info) < 0)
				continue;
			ours++;
			vinfo = xcalloc(info.nrVirtCpu ? info.nrVirtCpu : 1, sizeof(*vinfo));
			calls++;
			virDomainGetVcpus(d->dom, vinfo, (int)info.nrVirtCpu, NULL, 0);
			free(vinfo);
			calls++;
			virDomainMemoryStats(d->dom, mem, VIR_DOMAIN_MEMORY_STAT_NR, 0);
			for (int k = 0; k < d->n_disks; k++) {
				calls++;
				virDomainBlockStats(d->dom, d->disks[k], &bs, sizeof(bs));
			}
			for (int k = 0; k < d->n_nics; k++) {
				calls++;
				virDomainInterfaceStats(d->dom, d->nics[k], &is, sizeof(is));
			}
		}
		print_tick("perdomain", tick + 1, ours, calls,
			   (double)(util_now_ms() - t0), rss_kib());
		sleep(1);
	}
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < doms[i].n_disks; k++)
			free(doms[i].disks[k]);
		for (int k = 0; k < doms[i].n_nics; k++)
			free(doms[i].nics[k]);
		free(doms[i].disks);
		free(doms[i].nics);
		virDomainFree(doms[i].dom);
	}
	free(doms);
	virConnectClose(conn);
	return 0;
}

/* ---- cost of each stats group -------------------------------------------- */

static int
cmd_groups(const char *uri, int reps)
{
	static const struct {
		const char *name;
		unsigned stats;
	} groups[] = {
		{"state", VIR_DOMAIN_STATS_STATE},
		{"cpu-total", VIR_DOMAIN_STATS_CPU_TOTAL},
		{"balloon", VIR_DOMAIN_STATS_BALLOON},
		{"interface", VIR_DOMAIN_STATS_INTERFACE},
		{"block", VIR_DOMAIN_STATS_BLOCK},
		{"vcpu", VIR_DOMAIN_STATS_VCPU},
		{"state + cpu-total", VIR_DOMAIN_STATS_STATE |
					      VIR_DOMAIN_STATS_CPU_TOTAL},
		{"ours (all five)", COLLECT_STATS},
	};
	virConnectPtr conn = virConnectOpen(uri);

	if (!conn)
		die("connect");
	for (size_t g = 0; g < ARRAY_SIZE(groups); g++) {
		int64_t best = INT64_MAX, sum = 0;
		int n = 0;

		for (int r = 0; r < reps; r++) {
			virDomainStatsRecordPtr *recs = NULL;
			int64_t t0 = util_now_ms(), dt;

			n = virConnectGetAllDomainStats(conn, groups[g].stats, &recs,
							COLLECT_FLAGS);
			dt = util_now_ms() - t0;
			if (n < 0)
				die("stats");
			virDomainStatsRecordListFree(recs);
			sum += dt;
			if (dt < best)
				best = dt;
		}
		printf("groups    %-17s %4d domains: best %6" PRId64 " ms, mean %6" PRId64
		       " ms over %d calls\n", groups[g].name, n, best, sum / reps, reps);
	}
	virConnectClose(conn);
	return 0;
}

/* ---- QEMU memory --------------------------------------------------------- */

static int
cmd_qemu_rss(void)
{
	DIR *d = opendir("/run/libvirt/qemu");
	struct dirent *e;
	long total = 0;
	int n = 0;

	if (!d)
		return 1;
	while ((e = readdir(d))) {
		char *path, *text, *st, *p;

		if (strncmp(e->d_name, PREFIX, strlen(PREFIX)) != 0 ||
		    !strstr(e->d_name, ".pid"))
			continue;
		path = xasprintf("/run/libvirt/qemu/%s", e->d_name);
		text = util_read_file(path, 64, NULL);
		free(path);
		if (!text)
			continue;
		path = xasprintf("/proc/%d/status", atoi(text));
		st = util_read_file(path, 1 << 16, NULL);
		if (st && (p = strstr(st, "VmRSS:"))) {
			total += strtol(p + 6, NULL, 10);
			n++;
		}
		free(st);
		free(path);
		free(text);
	}
	closedir(d);
	printf("qemu      %d paused domains: RSS %ld MiB in all, %ld MiB each\n", n,
	       total / 1024, n ? total / 1024 / n : 0);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench_collect setup URI N DISK | bulk URI TICKS |"
			" perdomain URI TICKS | qemu-rss | teardown URI |"
			" mstore RETENTION_S INTERVAL_S\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	virSetErrorFunc(NULL, quiet);
	if (strcmp(argv[1], "setup") == 0 && argc == 5)
		return cmd_setup(argv[2], atoi(argv[3]), argv[4]);
	if (strcmp(argv[1], "bulk") == 0 &&
	    (argc == 4 || (argc == 5 && strcmp(argv[4], "cpu") == 0)))
		return cmd_bulk(argv[2], atoi(argv[3]), argc == 5);
	if (strcmp(argv[1], "perdomain") == 0 && argc == 4)
		return cmd_perdomain(argv[2], atoi(argv[3]));
	if (strcmp(argv[1], "groups") == 0 && argc == 4)
		return cmd_groups(argv[2], atoi(argv[3]));
	if (strcmp(argv[1], "qemu-rss") == 0)
		return cmd_qemu_rss();
	if (strcmp(argv[1], "teardown") == 0 && (argc == 3 || argc == 4))
		return cmd_teardown(argv[2], argc == 4 ? atoi(argv[3]) : 0);
	if (strcmp(argv[1], "mstore") == 0 && argc == 4) {
		struct mstore *s = mstore_new(atol(argv[2]) * 1000, atol(argv[3]) * 1000);

		printf("mstore    retention %s s, interval %s s: %zu samples, "
		       "%zu bytes per instance\n", argv[2], argv[3],
		       mstore_capacity(s), mstore_bytes_per_instance(s));
		mstore_free(s);
		return 0;
	}
	usage();
	return 2;
}
