/*
 * scale_helper.c: the libvirt side of bench/scale/run.sh. Links libvirt
 * only (none of the daemon's code), so that the benchmark compares the
 * daemon with what a bare libvirt client costs on the same host.
 *
 *   scale_helper setup URI N DISK GROUP OWNER
 *       start N transient QEMU domains va-scale-NNNN paused (1 vCPU,
 *       32 MiB, a shared read-only raw disk, a user-mode NIC), each tagged
 *       with our <va:instance> metadata: group GROUP, id = the domain's
 *       UUID, owner OWNER (the store's installation id), generation 1, so
 *       that the daemon adopts them; 4 threads.
 *   scale_helper teardown URI
 *       destroy (and undefine, if persistent) every va-scale-* domain,
 *       8 threads.
 *   scale_helper bare URI GROUPS CALLS EVERY_MS [SERVER_PID]
 *       a bare libvirt client: connect, print its memory, then make CALLS
 *       virConnectGetAllDomainStats calls EVERY_MS apart with the stats
 *       GROUPS (a comma-separated list of state, cpu-total, balloon,
 *       interface, block, vcpu; "all" for the first five: run.sh passes
 *       the groups the daemon's collector asks for) and the collector's
 *       flags (ACTIVE | NOWAIT, without NOWAIT on a driver that refuses
 *       it), printing per call its wall time, this
 *       process's CPU time and, with SERVER_PID, libvirtd's, and this
 *       process's CPU time to free the records (free_cpu_ms, after the
 *       timed call); then its memory again. Lines start with "bare".
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

#define PREFIX "va-scale-"
#define VA_XMLNS_URI "https://virt-autoscaler.org/xmlns/1"
#define STATS_ALL                                                            \
	(VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL |               \
	 VIR_DOMAIN_STATS_BALLOON | VIR_DOMAIN_STATS_INTERFACE |             \
	 VIR_DOMAIN_STATS_BLOCK)

static void
die(const char *what)
{
	fprintf(stderr, "scale_helper: %s: %s\n", what,
		virGetLastErrorMessage());
	exit(1);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double
self_cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* CPU time of a process in ms, or -1: the sum of its threads' run time
 * in /proc/PID/task/TID/schedstat (ns; /proc/PID/stat counts in clock
 * ticks of 10 ms, too coarse for one call) */
static double
proc_cpu_ms(long pid)
{
	char path[64];
	struct dirent *e;
	double sum = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%ld/task", pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char p2[320];
		unsigned long long ns;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p2, sizeof(p2), "/proc/%ld/task/%s/schedstat", pid,
			 e->d_name);
		f = fopen(p2, "r");
		if (!f)
			continue;
		if (fscanf(f, "%llu", &ns) == 1)
			sum += (double)ns / 1e6;
		fclose(f);
	}
	closedir(d);
	return sum;
}

/* With VA_BARE_SMAPS=PREFIX, /proc/self/smaps goes to PREFIX.WHEN: where
 * the bare client's pages are, to compare with the daemon's mapping by
 * mapping (run.sh's OUT=). */
static void
copy_smaps(const char *when)
{
	const char *prefix = getenv("VA_BARE_SMAPS");
	char path[4096], buf[8192];
	FILE *in, *out;
	size_t n;

	if (!prefix || !*prefix)
		return;
	snprintf(path, sizeof(path), "%s.%s", prefix, when);
	in = fopen("/proc/self/smaps", "r");
	out = fopen(path, "w");
	while (in && out && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	if (in)
		fclose(in);
	if (out)
		fclose(out);
}

static void
print_mem(const char *when)
{
	char line[256];
	long rss = -1, anon = -1, file = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f)) {
		sscanf(line, "VmRSS: %ld", &rss);
		sscanf(line, "RssAnon: %ld", &anon);
		sscanf(line, "RssFile: %ld", &file);
	}
	if (f)
		fclose(f);
	printf("bare mem %s VmRSS %ld RssAnon %ld RssFile %ld\n", when, rss,
	       anon, file);
	fflush(stdout);
	copy_smaps(when);
}

/* "state,cpu-total" -> the virDomainStatsTypes bits; 0 when a name is
 * unknown. The names are libvirt's (virsh domstats), as the daemon logs
 * them; the table is this program's own, as it links none of the
 * daemon's code (bench_collect's names the same groups for its timings). */
static unsigned
parse_groups(const char *list)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {
		{"state", VIR_DOMAIN_STATS_STATE},
		{"cpu-total", VIR_DOMAIN_STATS_CPU_TOTAL},
		{"balloon", VIR_DOMAIN_STATS_BALLOON},
		{"interface", VIR_DOMAIN_STATS_INTERFACE},
		{"block", VIR_DOMAIN_STATS_BLOCK},
		{"vcpu", VIR_DOMAIN_STATS_VCPU},
	};
	unsigned bits = 0;
	const char *p = list;

	if (strcmp(list, "all") == 0)
		return STATS_ALL;
	while (*p) {
		size_t len = strcspn(p, ","), i;

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strlen(names[i].name) == len &&
			    strncmp(p, names[i].name, len) == 0)
				break;
		if (i == sizeof(names) / sizeof(names[0]))
			return 0;
		bits |= names[i].bit;
		p += len;
		if (*p == ',')
			p++;
	}
	return bits;
}

static int
cmd_bare(const char *uri, unsigned stats, int calls, int every_ms,
	 long server)
{
	unsigned flags = VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE |
			 VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT;
	virConnectPtr conn = virConnectOpen(uri);

	if (!conn)
		die("connect");
	/* a call the daemon never makes: watch.py tells this client's
	 * RPCs from the daemon's by it in libvirtd's log, as the calls may
	 * run during its window */
	{
		unsigned long lib;

		if (virConnectGetLibVersion(conn, &lib) < 0)
			die("virConnectGetLibVersion");
	}
	print_mem("connected");
	for (int i = 0; i < calls; i++) {
		virDomainStatsRecordPtr *recs = NULL;
		double w0, c0, s0, w1, c1, s1, c2;
		int n;

		if (i > 0)
			usleep((useconds_t)every_ms * 1000);
		w0 = now_ms();
		c0 = self_cpu_ms();
		s0 = server > 0 ? proc_cpu_ms(server) : -1;
		n = virConnectGetAllDomainStats(conn, stats, &recs, flags);
		if (n < 0 && virGetLastErrorCode() == VIR_ERR_INVALID_ARG &&
		    (flags & VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT)) {
			/* the test driver refuses NOWAIT, as the collector
			 * finds out on its first call */
			flags &= ~(unsigned)VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT;
			n = virConnectGetAllDomainStats(conn, stats, &recs, flags);
		}
		w1 = now_ms();
		c1 = self_cpu_ms();
		s1 = server > 0 ? proc_cpu_ms(server) : -1;
		if (n < 0)
			die("virConnectGetAllDomainStats");
		virDomainStatsRecordListFree(recs);
		/* freeing is the client's too: libvirt formats every
		 * domain's UUID twice for debug lines nobody reads */
		c2 = self_cpu_ms();
		printf("bare call %d domains %d wall_ms %.1f cpu_ms %.1f server_cpu_ms %.1f free_cpu_ms %.1f\n",
		       i + 1, n, w1 - w0, c1 - c0,
		       server > 0 ? s1 - s0 : -1.0, c2 - c1);
		fflush(stdout);
	}
	print_mem("after");
	virConnectClose(conn);
	return 0;
}

struct setup {
	const char *uri, *disk, *group, *owner;
	int n, next, started, failed;
	pthread_mutex_t lock;
};

static void
uuid_random(char out[37])
{
	unsigned char b[16];
	FILE *f = fopen("/dev/urandom", "r");

	if (!f || fread(b, 1, sizeof(b), f) != sizeof(b)) {
		fprintf(stderr, "scale_helper: cannot read /dev/urandom\n");
		exit(1);
	}
	fclose(f);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}

static void *
setup_worker(void *arg)
{
	struct setup *s = arg;
	virConnectPtr conn = virConnectOpen(s->uri);

	if (!conn)
		die("connect");
	for (;;) {
		char name[64], uuid[37], xml[2048];
		virDomainPtr dom;
		int i;

		pthread_mutex_lock(&s->lock);
		i = s->next++;
		pthread_mutex_unlock(&s->lock);
		if (i >= s->n)
			break;
		snprintf(name, sizeof(name), PREFIX "%04d", i);
		uuid_random(uuid);
		snprintf(xml, sizeof(xml),
			 "<domain type='qemu'><name>%s</name><uuid>%s</uuid>"
			 "<memory unit='MiB'>32</memory><vcpu>1</vcpu>"
			 "<metadata><va:instance xmlns:va='" VA_XMLNS_URI "'"
			 " group='%s' id='%s' generation='1' owner='%s'/></metadata>"
			 "<os><type arch='x86_64'>hvm</type></os>"
			 "<devices>"
			 "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
			 "<source file='%s'/><target dev='vda' bus='virtio'/>"
			 "<readonly/><shareable/></disk>"
			 "<interface type='user'><model type='virtio'/></interface>"
			 "<memballoon model='virtio'><stats period='10'/></memballoon>"
			 "</devices></domain>",
			 name, uuid, s->group, uuid, s->owner, s->disk);
		dom = virDomainCreateXML(conn, xml, VIR_DOMAIN_START_PAUSED);
		pthread_mutex_lock(&s->lock);
		if (dom)
			s->started++;
		else {
			s->failed++;
			fprintf(stderr, "scale_helper: %s: %s\n", name,
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
cmd_setup(struct setup *s)
{
	pthread_t t[4];
	double t0 = now_ms();

	pthread_mutex_init(&s->lock, NULL);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, setup_worker, s);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	fprintf(stderr, "setup: %d domains started paused in %.1f s (%d failed)\n",
		s->started, (now_ms() - t0) / 1000.0, s->failed);
	return s->failed ? 1 : 0;
}

struct teardown {
	const char *uri;
	virDomainPtr *doms;
	int n, next, gone;
	pthread_mutex_t lock;
};

static void *
teardown_worker(void *arg)
{
	struct teardown *t = arg;

	for (;;) {
		virDomainPtr dom;
		int i, persistent;

		pthread_mutex_lock(&t->lock);
		i = t->next++;
		pthread_mutex_unlock(&t->lock);
		if (i >= t->n)
			break;
		dom = t->doms[i];
		/* ask first: a transient domain is gone once destroyed */
		persistent = virDomainIsPersistent(dom);
		if (virDomainIsActive(dom) == 1 && virDomainDestroy(dom) < 0)
			fprintf(stderr, "scale_helper: destroy %s: %s\n",
				virDomainGetName(dom), virGetLastErrorMessage());
		if (persistent == 1)
			virDomainUndefine(dom);
		pthread_mutex_lock(&t->lock);
		t->gone++;
		pthread_mutex_unlock(&t->lock);
	}
	return NULL;
}

/* Destroy (and undefine) every va-scale-* domain, 8 at a time: QEMU
 * takes seconds to go on a busy host. */
static int
cmd_teardown(const char *uri)
{
	struct teardown t = {.uri = uri, .lock = PTHREAD_MUTEX_INITIALIZER};
	virConnectPtr conn = virConnectOpen(uri);
	virDomainPtr *all = NULL;
	pthread_t th[8];
	double t0 = now_ms();
	int n;

	if (!conn)
		die("connect");
	n = virConnectListAllDomains(conn, &all, 0);
	if (n < 0)
		die("list domains");
	t.doms = calloc((size_t)n + 1, sizeof(*t.doms));
	if (!t.doms)
		die("out of memory");
	for (int i = 0; i < n; i++) {
		const char *name = virDomainGetName(all[i]);

		if (name && strncmp(name, PREFIX, strlen(PREFIX)) == 0)
			t.doms[t.n++] = all[i];
		else
			virDomainFree(all[i]);
	}
	free(all);
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, teardown_worker, &t);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < t.n; i++)
		virDomainFree(t.doms[i]);
	free(t.doms);
	virConnectClose(conn);
	fprintf(stderr, "teardown: %d domains destroyed in %.1f s\n", t.gone,
		(now_ms() - t0) / 1000.0);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 7 && strcmp(argv[1], "setup") == 0) {
		struct setup s = {.uri = argv[2], .n = atoi(argv[3]),
				  .disk = argv[4], .group = argv[5],
				  .owner = argv[6]};

		return cmd_setup(&s);
	}
	if (argc == 3 && strcmp(argv[1], "teardown") == 0)
		return cmd_teardown(argv[2]);
	if ((argc == 6 || argc == 7) && strcmp(argv[1], "bare") == 0) {
		unsigned stats = parse_groups(argv[3]);

		if (!stats) {
			fprintf(stderr, "scale_helper: unknown stats groups "
					"'%s' (state, cpu-total, balloon, "
					"interface, block, vcpu or all)\n",
				argv[3]);
			return 2;
		}
		return cmd_bare(argv[2], stats, atoi(argv[4]), atoi(argv[5]),
				argc == 7 ? atol(argv[6]) : 0);
	}
	fprintf(stderr,
		"usage: scale_helper setup URI N DISK GROUP OWNER\n"
		"       scale_helper teardown URI\n"
		"       scale_helper bare URI GROUPS CALLS EVERY_MS [SERVER_PID]\n");
	return 2;
}
