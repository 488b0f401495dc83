/*
 * The provisioning pieces together on real guests (suite 'guest'), on the
 * two libvirt hosts of scripts/services/libvirt.sh with the images of
 * scripts/services/images.sh:
 *
 *   tiny   a group of 3 tiny guests placed round-robin over host 1 and
 *          host 2 with capacity measured there (place.c); per VM a qcow2
 *          overlay on a base image uploaded to each host's pool (volume.c),
 *          a cidata seed (seed.c) uploaded as a volume, a domain XML
 *          (domxml.c) defined and started; each guest phones home to a
 *          loopback listener of this test (the guest reaches it at
 *          10.0.2.2:PORT) with its instance id and secret; then scale-in
 *          to 1 (scalein.c: victims, graceful shutdown, destroy, undefine,
 *          volumes) leaves no domain and no volume of the removed VMs.
 *   cloud  one Debian cloud-init guest on host 2, whose pool lacks the base
 *          image (uploaded through a stream), with a static address in our
 *          network-config (v2, matched by MAC): cloud-init applies it, runs
 *          the group's user-data (a runcmd that posts its rendered network
 *          configuration to the listener) and its own phone_home from our
 *          vendor-data reaches the listener.
 *
 * It prints the define-and-start time per VM and the time from start to
 * phone-home (bench/README.md, "Provisioning"); nothing asserts on time.
 * Exits 77 without the VA_TEST_* variables of those two scripts.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <microhttpd.h>

#include "domxml.h"
#include "log.h"
#include "place.h"
#include "scalein.h"
#include "seed.h"
#include "util.h"
#include "volume.h"

#define MiB (UINT64_C(1) << 20)

/* ---- a loopback listener that records what guests post ---- */

#define MAX_REQS 256

struct req {
	char *url;
	char *body;
	int64_t at_ms;
};

static struct {
	struct MHD_Daemon *d;
	unsigned port;
	pthread_mutex_t lock;
	struct req reqs[MAX_REQS];
	int n;
} L = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void
done_cb(void *cls, struct MHD_Connection *c, void **con_cls,
	enum MHD_RequestTerminationCode toe)
{
	struct strbuf *b = *con_cls;

	if (b) {
		strbuf_release(b);
		free(b);
		*con_cls = NULL;
	}
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url,
       const char *method, const char *version, const char *data,
       size_t *data_size, void **con_cls)
{
	struct strbuf *b = *con_cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (!b) {
		b = xcalloc(1, sizeof(*b));
		*con_cls = b;
		return MHD_YES;
	}
	if (*data_size) {
		if (b->len < 65536)
			strbuf_add(b, data, *data_size);
		*data_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&L.lock);
	if (L.n < MAX_REQS) {
		L.reqs[L.n].url = xasprintf("%s %s", method, url);
		L.reqs[L.n].body = xstrdup(strbuf_str(b));
		L.reqs[L.n].at_ms = util_now_ms();
		L.n++;
	}
	pthread_mutex_unlock(&L.lock);
	resp = MHD_create_response_from_buffer(3, (void *)"{}\n",
					       MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void
listener_start(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	const union MHD_DaemonInfo *info;

	L.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
			       handle, NULL, MHD_OPTION_SOCK_ADDR,
			       (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED,
			       done_cb, NULL, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
			       MHD_OPTION_END);
	assert_non_null(L.d);
	info = MHD_get_daemon_info(L.d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	L.port = info->port;
}

static void
listener_stop(void)
{
	MHD_stop_daemon(L.d);
	for (int i = 0; i < L.n; i++) {
		free(L.reqs[i].url);
		free(L.reqs[i].body);
	}
	L.n = 0;
}

/* Time a request "METHOD URL" with body containing `has` arrived, or -1. */
static int64_t
listener_seen(const char *method_url, const char *has)
{
	int64_t at = -1;

	pthread_mutex_lock(&L.lock);
	for (int i = 0; i < L.n && at < 0; i++)
		if (strcmp(L.reqs[i].url, method_url) == 0 &&
		    (!has || strstr(L.reqs[i].body, has)))
			at = L.reqs[i].at_ms;
	pthread_mutex_unlock(&L.lock);
	return at;
}

/* ---- hosts and VMs ---- */

struct thost {
	const char *name, *uri;
	virConnectPtr conn;
	struct va_placement_host rec;
	char *base_path, *base_fmt;
	bool base_uploaded;
};

struct vm {
	char id[64], secret[40];
	size_t host;
	char *ov, *seed, *log;
	int64_t created_ms, started_ms, define_ms, checkin_ms;
	bool removed;
};

static const char *pool;
static char logdir[256];
static char group[32]; /* unique per run: leftovers of a killed run do not
			  count as VMs of this group */
static struct thost hosts[2];

/*
 * What a failed test must not leave behind: the VMs it started and the
 * base volumes it uploaded (teardown() removes them).
 */
static struct vm *live[8];
static size_t n_live;
static char uploaded_base[2][256];

static void
quiet(void *opaque, virErrorPtr e)
{
}

static void
random_token(char *out, size_t bytes)
{
	unsigned char b[32];

	assert_true(bytes <= sizeof(b));
	assert_int_equal(getrandom(b, bytes, 0), (ssize_t)bytes);
	for (size_t i = 0; i < bytes; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

struct kind {
	const char *kernel, *initrd, *cmdline, *base;
	const char *user_data;
	unsigned vcpus;
	uint64_t memory;
	bool agent;
	const struct seed_net *net; /* static address (network-config v2) */
};

static void
provision(struct vm *vm, const struct kind *k)
{
	struct thost *h = &hosts[vm->host];
	struct seed_spec ss = {0};
	struct domxml_spec ds = {0};
	char *public_url = xasprintf("http://10.0.2.2:%u", L.port);
	unsigned char *iso = NULL;
	size_t iso_len = 0;
	char uuid[37], *xml = NULL;
	virDomainPtr dom;
	int64_t t0;

	vm->ov = volume_overlay_name(vm->id);
	vm->seed = volume_seed_name(vm->id);
	vm->log = xasprintf("%s/%s.log", logdir, vm->id);
	if (n_live < ARRAY_SIZE(live))
		live[n_live++] = vm; /* from now on, teardown cleans up */
	if (volume_create_overlay(h->conn, pool, vm->ov, h->base_path,
				  h->base_fmt, 0, NULL) < 0)
		fail_msg("%s", err_msg());
	ss.instance_id = vm->id;
	ss.hostname = vm->id;
	ss.user_data = k->user_data;
	ss.user_data_len = k->user_data ? strlen(k->user_data) : 0;
	ss.public_url = public_url;
	ss.secret = vm->secret;
	ss.heartbeat_interval = 30;
	ss.net = k->net;
	if (seed_build_iso(&ss, &iso, &iso_len) < 0 ||
	    volume_upload_bytes(h->conn, pool, vm->seed, iso, iso_len, NULL) < 0)
		fail_msg("%s", err_msg());
	domxml_uuid_generate(uuid);
	ds.name = vm->id;
	ds.uuid = uuid;
	ds.type = DOMXML_TYPE_QEMU;
	ds.vcpus = k->vcpus;
	ds.memory = k->memory;
	ds.disk = (struct domxml_disk){.pool = pool, .volume = vm->ov};
	ds.seed = (struct domxml_disk){.pool = pool, .volume = vm->seed};
	ds.kernel = k->kernel;
	ds.initrd = k->initrd;
	ds.cmdline = k->cmdline;
	ds.net = DOMXML_NET_USER;
	ds.mac = k->net ? k->net->mac : NULL;
	ds.console_log = vm->log;
	ds.balloon_period = 10;
	ds.guest_agent = k->agent;
	ds.group = group;
	ds.instance_id = vm->id;
	ds.generation = 1;
	if (domxml_build(&ds, &xml) < 0)
		fail_msg("%s", err_msg());
	t0 = util_now_ms();
	dom = virDomainDefineXML(h->conn, xml);
	if (!dom)
		fail_msg("%s: define: %s", h->name, virGetLastErrorMessage());
	if (virDomainCreate(dom) < 0)
		fail_msg("%s: start %s: %s", h->name, vm->id,
			 virGetLastErrorMessage());
	vm->started_ms = util_now_ms();
	vm->define_ms = vm->started_ms - t0;
	vm->created_ms = util_wall_ms();
	print_message("%s on %s: define+start %" PRId64 " ms\n", vm->id, h->name,
		      vm->define_ms);
	virDomainFree(dom);
	free(xml);
	free(iso);
	free(public_url);
}

/* Wait until every VM has phoned home (or the deadline). */
static void
wait_checkins(struct vm *vms, size_t n, int64_t timeout_ms)
{
	int64_t deadline = util_now_ms() + timeout_ms;
	size_t left = n;

	while (left > 0 && util_now_ms() < deadline) {
		struct timespec ts = {0, 200 * 1000000L};

		left = 0;
		for (size_t i = 0; i < n; i++) {
			char *url, *body;
			int64_t at;

			if (vms[i].checkin_ms)
				continue;
			url = xasprintf("POST /v1/checkin/%s/%s", vms[i].id,
					vms[i].secret);
			body = xasprintf("instance_id=%s", vms[i].id);
			at = listener_seen(url, body);
			if (at >= 0) {
				vms[i].checkin_ms = at - vms[i].started_ms;
				print_message("%s: start to phone-home %" PRId64
					      " ms\n", vms[i].id,
					      vms[i].checkin_ms);
			} else {
				left++;
			}
			free(url);
			free(body);
		}
		nanosleep(&ts, NULL);
	}
	for (size_t i = 0; i < n; i++) {
		if (!vms[i].checkin_ms) {
			char *log = util_read_file(vms[i].log, 1 << 20, NULL);

			fail_msg("%s never phoned home; console:\n%s", vms[i].id,
				 log ? log : "(no console log)");
		}
	}
}

static void
remove_vm(struct vm *vm, bool expect_graceful)
{
	struct thost *h = &hosts[vm->host];
	const char *vols[2] = {vm->ov, vm->seed};
	struct scalein_remove_spec rs = {.domain = vm->id, .pool = pool,
					 .volumes = vols, .n_volumes = 2,
					 .shutdown_timeout_ms = 30000};
	bool graceful = false;
	virDomainPtr dom;
	int64_t t0 = util_now_ms();

	if (scalein_remove(h->conn, &rs, &graceful) < 0)
		fail_msg("%s", err_msg());
	print_message("%s removed in %" PRId64 " ms (%s)\n", vm->id,
		      util_now_ms() - t0, graceful ? "shut down" : "destroyed");
	if (expect_graceful)
		assert_true(graceful);
	dom = virDomainLookupByName(h->conn, vm->id);
	assert_null(dom);
	assert_int_equal(volume_exists(h->conn, pool, vm->ov), 0);
	assert_int_equal(volume_exists(h->conn, pool, vm->seed), 0);
	unlink(vm->log); /* the test's console log on this machine */
	assert_int_equal(access(vm->log, F_OK), -1);
	vm->removed = true;
}

/* Nothing of prefix left on a host: no domain, no volume. */
static void
assert_clean(struct thost *h, const char *prefix)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(h->conn, pool);
	virStorageVolPtr *vols = NULL;
	virDomainPtr *doms = NULL;
	int n;

	assert_non_null(p);
	assert_int_equal(virStoragePoolRefresh(p, 0), 0);
	n = virStoragePoolListAllVolumes(p, &vols, 0);
	for (int i = 0; i < n; i++) {
		if (strncmp(virStorageVolGetName(vols[i]), prefix,
			    strlen(prefix)) == 0)
			fail_msg("%s: volume %s left behind", h->name,
				 virStorageVolGetName(vols[i]));
		virStorageVolFree(vols[i]);
	}
	free(vols);
	virStoragePoolFree(p);
	n = virConnectListAllDomains(h->conn, &doms, 0);
	for (int i = 0; i < n; i++) {
		if (strncmp(virDomainGetName(doms[i]), prefix, strlen(prefix)) == 0)
			fail_msg("%s: domain %s left behind", h->name,
				 virDomainGetName(doms[i]));
		virDomainFree(doms[i]);
	}
	free(doms);
}

static int
teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_live; i++) {
		struct vm *vm = live[i];
		const char *vols[2] = {vm->ov, vm->seed};
		struct scalein_remove_spec rs = {.domain = vm->id, .pool = pool,
						 .volumes = vols, .n_volumes = 2};

		if (vm->removed || !hosts[vm->host].conn)
			continue;
		fprintf(stderr, "teardown: removing %s\n", vm->id);
		if (scalein_remove(hosts[vm->host].conn, &rs, NULL) < 0)
			fprintf(stderr, "teardown: %s\n", err_msg());
		vm->removed = true;
	}
	n_live = 0;
	for (size_t i = 0; i < 2; i++) {
		if (uploaded_base[i][0] && hosts[i].conn) {
			fprintf(stderr, "teardown: deleting %s\n", uploaded_base[i]);
			volume_delete(hosts[i].conn, pool, uploaded_base[i]);
		}
		uploaded_base[i][0] = '\0';
		if (hosts[i].conn) {
			virConnectClose(hosts[i].conn);
			hosts[i].conn = NULL;
		}
	}
	if (L.d) {
		listener_stop();
		L.d = NULL;
	}
	return 0;
}

static void
hosts_open(void)
{
	hosts[0] = (struct thost){.name = "host1",
				  .uri = getenv("VA_TEST_LIBVIRT_URI")};
	hosts[1] = (struct thost){.name = "host2",
				  .uri = getenv("VA_TEST_LIBVIRT_URI2")};
	for (size_t i = 0; i < 2; i++) {
		hosts[i].conn = virConnectOpen(hosts[i].uri);
		if (!hosts[i].conn)
			fail_msg("%s: %s", hosts[i].uri, virGetLastErrorMessage());
		/*
		 * No limits: the hosts are shared with other tests whose
		 * domains count too (limits are unit-tested in test_place).
		 */
		hosts[i].rec = (struct va_placement_host){
			.name = hosts[i].name, .cpu_use = -1};
	}
}

static void
hosts_close(void)
{
	for (size_t i = 0; i < 2; i++) {
		free(hosts[i].base_path);
		free(hosts[i].base_fmt);
		virConnectClose(hosts[i].conn);
		hosts[i].conn = NULL;
	}
}

static void
test_tiny_group(void **state)
{
	const struct kind k = {
		.kernel = getenv("VA_TEST_TINY_KERNEL"),
		.initrd = getenv("VA_TEST_TINY_INITRD"),
		.cmdline = "console=ttyS0 panic=-1",
		.user_data = "#cloud-config\n#tiny: heartbeat=30\n",
		.vcpus = 1, .memory = 192 * MiB};
	struct place_strategy *s = place_strategy_new("round-robin", true, NULL, 0);
	static struct vm vms[3]; /* static: teardown reads them after a failure */
	struct scalein_instance inst[3];
	char prefix[32], base[512], *cmd;
	size_t victims[3], nv;

	(void)state;
	memset(vms, 0, sizeof(vms));
	snprintf(prefix, sizeof(prefix), "va-prov-%d", (int)getpid());
	/* the tiny guest ignores its disk: a small base image does */
	snprintf(base, sizeof(base), "%s/%s-base.qcow2", logdir, prefix);
	cmd = xasprintf("qemu-img create -q -f qcow2 %s 256M", base);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	hosts_open();
	listener_start();
	for (size_t i = 0; i < 2; i++) {
		if (place_host_measure(hosts[i].conn, group, &hosts[i].rec) < 0)
			fail_msg("%s", err_msg());
		print_message("%s: %u CPUs, %" PRIu64 " MiB, %" PRIu64 " MiB free, "
			      "%u vCPUs and %" PRIu64 " MiB committed, %u of our "
			      "VMs (%u of this group)\n", hosts[i].name,
			      hosts[i].rec.cpus, hosts[i].rec.mem_total / MiB,
			      hosts[i].rec.mem_free / MiB, hosts[i].rec.vcpus_alloc,
			      hosts[i].rec.mem_alloc / MiB, hosts[i].rec.instances,
			      hosts[i].rec.group_instances);
		if (volume_ensure_base(hosts[i].conn, pool, base,
				       &hosts[i].base_path, &hosts[i].base_fmt,
				       &hosts[i].base_uploaded) < 0)
			fail_msg("%s", err_msg());
		if (hosts[i].base_uploaded)
			snprintf(uploaded_base[i], sizeof(uploaded_base[i]), "%s",
				 strrchr(base, '/') + 1);
	}
	for (size_t i = 0; i < 3; i++) {
		struct va_placement_request req = {.group = group,
						   .vcpus = k.vcpus,
						   .memory = k.memory,
						   .seq = (uint32_t)i};
		struct va_placement_host recs[2] = {hosts[0].rec, hosts[1].rec};
		size_t chosen;

		snprintf(vms[i].id, sizeof(vms[i].id), "%s-%zu", prefix, i + 1);
		random_token(vms[i].secret, 16);
		if (place_choose(s, &req, recs, 2, &chosen) != PLACE_OK)
			fail_msg("%s", err_msg());
		place_host_commit(&hosts[chosen].rec, &req);
		vms[i].host = chosen;
		provision(&vms[i], &k);
	}
	/* round-robin with spread over two hosts: 1, 2, 1 */
	assert_int_equal(vms[0].host, 0);
	assert_int_equal(vms[1].host, 1);
	assert_int_equal(vms[2].host, 0);
	wait_checkins(vms, 3, 240000);

	/* Scale in to 1: two victims, newest first. */
	for (size_t i = 0; i < 3; i++)
		inst[i] = (struct scalein_instance){.id = vms[i].id,
						    .host = hosts[vms[i].host].name,
						    .created_ms = vms[i].created_ms};
	nv = scalein_choose(inst, 3, SCALEIN_NEWEST, 2, util_wall_ms(), 0,
			    victims);
	assert_int_equal(nv, 2);
	assert_int_equal(victims[0], 2);
	assert_int_equal(victims[1], 1);
	for (size_t i = 0; i < nv; i++)
		remove_vm(&vms[victims[i]], true);
	/* the survivor still runs */
	{
		virDomainPtr d = virDomainLookupByName(hosts[0].conn, vms[0].id);

		assert_non_null(d);
		assert_int_equal(virDomainIsActive(d), 1);
		virDomainFree(d);
	}
	assert_clean(&hosts[vms[1].host], vms[1].id);
	assert_clean(&hosts[vms[2].host], vms[2].id);

	/* Clean up the rest; then nothing of this test is left anywhere. */
	remove_vm(&vms[0], true);
	for (size_t i = 0; i < 2; i++) {
		const char *slash = strrchr(base, '/');

		assert_int_equal(volume_delete(hosts[i].conn, pool, slash + 1), 0);
		assert_clean(&hosts[i], prefix);
	}
	unlink(base);
	for (size_t i = 0; i < 3; i++) {
		free(vms[i].ov);
		free(vms[i].seed);
		free(vms[i].log);
	}
	print_message("bench: tiny define+start ms: %" PRId64 " %" PRId64
		      " %" PRId64 "; start->phone-home ms: %" PRId64 " %" PRId64
		      " %" PRId64 "\n", vms[0].define_ms, vms[1].define_ms,
		      vms[2].define_ms, vms[0].checkin_ms, vms[1].checkin_ms,
		      vms[2].checkin_ms);
	n_live = 0;
	uploaded_base[0][0] = uploaded_base[1][0] = '\0';
	listener_stop();
	L.d = NULL;
	hosts_close();
	place_strategy_free(s);
}

static void
test_cloud_guest(void **state)
{
	char user_data[1024], prefix[32];
	static const char *const dns[] = {"10.0.2.3"};
	const struct seed_net net = {.address = "10.0.2.15", .prefix = 24,
				     .gateway = "10.0.2.2", .dns = dns, .n_dns = 1,
				     .mac = "52:54:00:7a:00:01"};
	struct kind k = {
		.kernel = getenv("VA_TEST_CLOUD_KERNEL"),
		.initrd = getenv("VA_TEST_CLOUD_INITRD"),
		.cmdline = "root=LABEL=rootfs rw console=ttyS0 net.ifnames=0",
		.user_data = user_data, .vcpus = 2, .memory = 1024 * MiB,
		/* no agent channel: see the note on names below */
		.agent = false, .net = &net};
	static struct vm vm; /* static: teardown reads it after a failure */
	int64_t t0, ud;
	char *url;

	(void)state;
	memset(&vm, 0, sizeof(vm));
	hosts_open();
	listener_start();
	/*
	 * A session daemon (host 2) puts a guest agent channel's socket under
	 * its config dir, .../channel/target/domain-ID-NAME/
	 * org.qemu.guest_agent.0, and a UNIX socket path has at most 107
	 * bytes: with /run/va-test-host2 that leaves about 12 characters for
	 * "ID-NAME", too few to be reliable. So this guest has no agent
	 * channel (nothing here uses it), and a short name anyway.
	 */
	snprintf(prefix, sizeof(prefix), "vpc%d", (int)getpid());
	/*
	 * The group's user-data: runs in the guest and posts its instance id
	 * and the network configuration cloud-init rendered from our
	 * network-config (a static address on QEMU's user network).
	 */
	snprintf(user_data, sizeof(user_data),
		 "#cloud-config\n"
		 "# group user-data of the provisioning test\n"
		 "write_files:\n"
		 "  - path: /run/va-user-data\n"
		 "    content: \"ran\\n\"\n"
		 "runcmd:\n"
		 "  - [sh, -c, 'cat /etc/network/interfaces.d/* > /run/va-net 2>&1; "
		 "ip -4 addr show eth0 >> /run/va-net 2>&1; "
		 "curl -fsS -X POST --data-urlencode "
		 "\"iid@/var/lib/cloud/data/instance-id\" "
		 "--data-urlencode \"net@/run/va-net\" "
		 "http://10.0.2.2:%u/user-data-ran']\n", L.port);
	t0 = util_now_ms();
	if (volume_ensure_base(hosts[1].conn, pool, getenv("VA_TEST_CLOUD_IMAGE"),
			       &hosts[1].base_path, &hosts[1].base_fmt,
			       &hosts[1].base_uploaded) < 0)
		fail_msg("%s", err_msg());
	if (hosts[1].base_uploaded)
		snprintf(uploaded_base[1], sizeof(uploaded_base[1]), "%s",
			 strrchr(getenv("VA_TEST_CLOUD_IMAGE"), '/') + 1);
	print_message("cloud base image on host2: %s in %" PRId64 " ms\n",
		      hosts[1].base_uploaded ? "uploaded" : "present",
		      util_now_ms() - t0);
	snprintf(vm.id, sizeof(vm.id), "%s-1", prefix);
	random_token(vm.secret, 16);
	vm.host = 1;
	provision(&vm, &k);
	wait_checkins(&vm, 1, 600000);
	url = xasprintf("iid=%s", vm.id);
	ud = listener_seen("POST /user-data-ran", url);
	free(url);
	if (ud < 0)
		fail_msg("the group's user-data did not run (phone-home did)");
	/* our network-config was applied: static, with the address given */
	if (listener_seen("POST /user-data-ran", "inet+static") < 0 ||
	    listener_seen("POST /user-data-ran", "address+10.0.2.15") < 0) {
		pthread_mutex_lock(&L.lock);
		for (int i = 0; i < L.n; i++)
			print_message("%s: %s\n", L.reqs[i].url, L.reqs[i].body);
		pthread_mutex_unlock(&L.lock);
		fail_msg("the guest did not apply the static network-config");
	}
	print_message("bench: cloud define+start %" PRId64
		      " ms; start->user-data %" PRId64
		      " ms; start->phone-home %" PRId64 " ms\n", vm.define_ms,
		      ud - vm.started_ms, vm.checkin_ms);
	remove_vm(&vm, false);
	if (hosts[1].base_uploaded) {
		const char *b = strrchr(getenv("VA_TEST_CLOUD_IMAGE"), '/') + 1;

		assert_int_equal(volume_delete(hosts[1].conn, pool, b), 0);
	}
	assert_clean(&hosts[1], prefix);
	free(vm.ov);
	free(vm.seed);
	free(vm.log);
	n_live = 0;
	uploaded_base[1][0] = '\0';
	listener_stop();
	L.d = NULL;
	hosts_close();
}

int
main(int argc, char **argv)
{
	const char *need_tiny[] = {"VA_TEST_LIBVIRT_URI", "VA_TEST_LIBVIRT_URI2",
				   "VA_TEST_POOL", "VA_TEST_TINY_KERNEL",
				   "VA_TEST_TINY_INITRD"};
	const char *need_cloud[] = {"VA_TEST_CLOUD_IMAGE", "VA_TEST_CLOUD_KERNEL",
				    "VA_TEST_CLOUD_INITRD"};
	const char *state_dir = getenv("VA_TEST_STATE_DIR");
	bool cloud = argc > 1 && strcmp(argv[1], "cloud") == 0;
	const struct CMUnitTest tiny_tests[] = {
		cmocka_unit_test_teardown(test_tiny_group, teardown)};
	const struct CMUnitTest cloud_tests[] = {
		cmocka_unit_test_teardown(test_cloud_guest, teardown)};

	for (size_t i = 0; i < ARRAY_SIZE(need_tiny); i++) {
		if (!getenv(need_tiny[i])) {
			fprintf(stderr, "skip: %s unset: run eval \"$(scripts/"
					"services/libvirt.sh start)\" and eval "
					"\"$(scripts/services/images.sh start)\"\n",
				need_tiny[i]);
			return 77;
		}
	}
	for (size_t i = 0; cloud && i < ARRAY_SIZE(need_cloud); i++) {
		if (!getenv(need_cloud[i])) {
			fprintf(stderr, "skip: %s unset: run eval \"$(scripts/"
					"services/images.sh start)\"\n",
				need_cloud[i]);
			return 77;
		}
	}
	pool = getenv("VA_TEST_POOL");
	snprintf(group, sizeof(group), "provtest-%d", (int)getpid());
	virSetErrorFunc(NULL, quiet);
	/* Console logs: written by each host's virtlogd (host 2 runs as
	 * nobody), read by this test. */
	snprintf(logdir, sizeof(logdir), "%s/provision-logs",
		 state_dir ? state_dir : "/var/tmp/virt-autoscaler-test");
	mkdir(logdir, 01777);
	chmod(logdir, 01777);
	if (cloud)
		return cmocka_run_group_tests(cloud_tests, NULL, NULL);
	return cmocka_run_group_tests(tiny_tests, NULL, NULL);
}
