/*
 * test_guest: boot the test guest images (scripts/images.sh) under a real
 * libvirt daemon and check the guest contract of docs/images.md end to end.
 *
 *   test_guest tiny     the busybox guest on host 1 and on host 2
 *   test_guest cloud    the Debian 12 cloud-init guest on host 1
 *
 * Each case: a NoCloud seed ISO (genisoimage here; the product has its own
 * builder) is uploaded as a volume into the host's test pool, a transient
 * domain (type 'qemu', user networking, direct kernel boot, serial console
 * to a file) is started, and a loopback HTTP listener of this test waits for
 * the guest's phone-home with the right instance id and secret path. The tiny
 * guest must then follow a load instruction and report it in its heartbeat;
 * the cloud guest must run the user's user-data. Finally an ACPI shutdown
 * (the power button) must stop the guest, and the volumes are deleted. The
 * domains carry a guest-agent channel as the daemon's do (on host 2 its
 * socket path must fit in 107 bytes).
 *
 * Needs scripts/services/libvirt.sh and scripts/services/images.sh; exits
 * 77 (skip) when their VA_TEST_* variables are missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include "util.h"

extern char **environ;

/* ---- a loopback HTTP listener that records what guests send ---- */

#define MAX_REQS 512

struct req {
	char *method;
	char *url;
	char *ctype;
	char *body;
};

struct listener {
	struct MHD_Daemon *d;
	unsigned port;
	pthread_mutex_t lock;
	struct req reqs[MAX_REQS];
	int n;
	const char *load_reply; /* body served for GET .../load/... */
};

struct upload {
	struct strbuf body;
};

static void
upload_done(void *cls, struct MHD_Connection *c, void **con_cls,
	    enum MHD_RequestTerminationCode toe)
{
	struct upload *u = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (u) {
		strbuf_release(&u->body);
		free(u);
		*con_cls = NULL;
	}
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url,
       const char *method, const char *version, const char *data,
       size_t *data_size, void **con_cls)
{
	struct listener *l = cls;
	struct upload *u = *con_cls;
	struct MHD_Response *resp;
	const char *reply = "ok\n", *ctype;
	enum MHD_Result ret;

	(void)version;
	if (!u) {
		u = xcalloc(1, sizeof(*u));
		strbuf_init(&u->body);
		*con_cls = u;
		return MHD_YES;
	}
	if (*data_size) {
		strbuf_add(&u->body, data, *data_size);
		*data_size = 0;
		return MHD_YES;
	}
	ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					    MHD_HTTP_HEADER_CONTENT_TYPE);
	pthread_mutex_lock(&l->lock);
	if (l->n < MAX_REQS) {
		struct req *r = &l->reqs[l->n++];

		r->method = xstrdup(method);
		r->url = xstrdup(url);
		r->ctype = xstrdup(ctype ? ctype : "");
		r->body = xstrdup(strbuf_str(&u->body));
	}
	if (strcmp(method, "GET") == 0 && strstr(url, "/load/") && l->load_reply)
		reply = l->load_reply;
	pthread_mutex_unlock(&l->lock);
	resp = MHD_create_response_from_buffer(strlen(reply), (void *)reply,
					       MHD_RESPMEM_MUST_COPY);
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void
listener_start(struct listener *l)
{
	const union MHD_DaemonInfo *info;
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = 0,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};

	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
	l->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
				0, NULL, NULL, handle, l,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				MHD_OPTION_NOTIFY_COMPLETED, upload_done, NULL,
				MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				MHD_OPTION_END);
	assert_non_null(l->d);
	info = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	l->port = info->port;
	assert_true(l->port > 0);
}

static void
listener_stop(struct listener *l)
{
	if (l->d)
		MHD_stop_daemon(l->d);
	for (int i = 0; i < l->n; i++) {
		free(l->reqs[i].method);
		free(l->reqs[i].url);
		free(l->reqs[i].ctype);
		free(l->reqs[i].body);
	}
	pthread_mutex_destroy(&l->lock);
	memset(l, 0, sizeof(*l));
}

/* Index of the first request from index FROM on with METHOD whose URL is
 * URL and whose body contains BODY (NULL: any), or -1. */
static int
listener_find(struct listener *l, int from, const char *method,
	      const char *url, const char *body)
{
	int found = -1;

	pthread_mutex_lock(&l->lock);
	for (int i = from; i < l->n && found < 0; i++) {
		struct req *r = &l->reqs[i];

		if (strcmp(r->method, method) == 0 && strcmp(r->url, url) == 0 &&
		    (!body || strstr(r->body, body)))
			found = i;
	}
	pthread_mutex_unlock(&l->lock);
	return found;
}

/* ---- helpers ---- */

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static char *
random_hex(size_t bytes)
{
	unsigned char buf[32];
	char *out = xmalloc(bytes * 2 + 1);
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	assert_true(bytes <= sizeof(buf));
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, bytes), (ssize_t)bytes);
	close(fd);
	for (size_t i = 0; i < bytes; i++)
		sprintf(out + 2 * i, "%02x", buf[i]);
	return out;
}

static void
write_file(const char *dir, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	free(path);
}

static void
run(char *const argv[])
{
	pid_t pid;
	int status;

	assert_int_equal(posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("%s failed (status 0x%x)", argv[0], status);
}

static void
mkdir_mode(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		fail_msg("mkdir %s: %s", path, strerror(errno));
	assert_int_equal(chmod(path, mode), 0);
}

static void
print_tail(const char *path, size_t max)
{
	size_t len = 0;
	char *text = util_read_file(path, 4 << 20, &len);

	if (!text) {
		fprintf(stderr, "(no console log at %s)\n", path);
		return;
	}
	fprintf(stderr, "---- last of %s ----\n%s\n----\n",
		path, len > max ? text + len - max : text);
	free(text);
}

static int
send_file(virStreamPtr st, char *data, size_t nbytes, void *opaque)
{
	(void)st;
	return (int)read(*(int *)opaque, data, nbytes);
}

/* Create volume NAME in POOL from the XML and upload the file at SRC into
 * it (SRC NULL: no upload). Returns the volume; *path_out its path. */
static virStorageVolPtr
volume_create(virStoragePoolPtr pool, const char *xml, const char *src,
	      char **path_out)
{
	virStorageVolPtr vol = virStorageVolCreateXML(pool, xml, 0);

	if (!vol)
		fail_msg("virStorageVolCreateXML: %s", virGetLastErrorMessage());
	if (src) {
		virStreamPtr st = virStreamNew(virStoragePoolGetConnect(pool), 0);
		struct stat sb;
		int fd = open(src, O_RDONLY | O_CLOEXEC);

		assert_non_null(st);
		assert_true(fd >= 0);
		assert_int_equal(fstat(fd, &sb), 0);
		if (virStorageVolUpload(vol, st, 0, sb.st_size, 0) < 0 ||
		    virStreamSendAll(st, send_file, &fd) < 0 ||
		    virStreamFinish(st) < 0)
			fail_msg("uploading %s: %s", src, virGetLastErrorMessage());
		virStreamFree(st);
		close(fd);
	}
	*path_out = virStorageVolGetPath(vol);
	assert_non_null(*path_out);
	return vol;
}

static void
volume_delete(virStorageVolPtr vol)
{
	if (!vol)
		return;
	if (virStorageVolDelete(vol, 0) < 0)
		fprintf(stderr, "deleting a volume: %s\n", virGetLastErrorMessage());
	virStorageVolFree(vol);
}

/* libvirt prints every error by default; the test reports its own. */
static void
quiet_errors(void *opaque, virErrorPtr err)
{
	(void)opaque;
	(void)err;
}

/* ---- the cases ---- */

enum image { IMAGE_TINY, IMAGE_CLOUD };

struct gcase {
	const char *name;
	enum image image;
	const char *uri_env;   /* which host */
	unsigned memory_mib, vcpus;
	int boot_timeout_s;    /* start -> phone-home */
	int stop_timeout_s;    /* ACPI shutdown -> off */
};

static const struct gcase cases[] = {
	{ "tiny-host1", IMAGE_TINY, "VA_TEST_LIBVIRT_URI", 256, 1, 240, 90 },
	{ "tiny-host2", IMAGE_TINY, "VA_TEST_LIBVIRT_URI2", 256, 1, 240, 90 },
	{ "cloud-host1", IMAGE_CLOUD, "VA_TEST_LIBVIRT_URI", 1024, 2, 600, 180 },
};

static enum image selected = IMAGE_TINY;

/* Everything a case holds, released in one place. */
struct run {
	virConnectPtr conn;
	virStoragePoolPtr pool;
	virStorageVolPtr seed_vol, disk_vol;
	virDomainPtr dom;
	struct listener l;
	char *iid, *token, *host, *workdir, *console, *seed_path, *disk_path;
	int passed; /* keep the console log of a failed case only */
};

static void
remove_in(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);

	unlink(path);
	free(path);
}

static void
run_release(struct run *r)
{
	if (r->dom) {
		if (virDomainIsActive(r->dom) == 1)
			virDomainDestroy(r->dom);
		virDomainFree(r->dom);
	}
	volume_delete(r->seed_vol);
	volume_delete(r->disk_vol);
	if (r->pool)
		virStoragePoolFree(r->pool);
	if (r->conn)
		virConnectClose(r->conn);
	listener_stop(&r->l);
	if (r->workdir) {
		char *seed = xasprintf("%s/seed", r->workdir);

		remove_in(seed, "meta-data");
		remove_in(seed, "user-data");
		remove_in(seed, "vendor-data");
		rmdir(seed);
		free(seed);
		remove_in(r->workdir, "seed.iso");
		rmdir(r->workdir);
	}
	if (r->console && r->passed)
		unlink(r->console);
	else if (r->console)
		fprintf(stderr, "console log kept: %s\n", r->console);
	free(r->iid);
	free(r->token);
	free(r->host);
	free(r->workdir);
	free(r->console);
	free(r->seed_path);
	free(r->disk_path);
}

static void
build_seed(const struct gcase *gc, struct run *r, const char *seeddir,
	   const char *iso)
{
	char *meta, *user, *vendor;
	unsigned p = r->l.port;

	meta = xasprintf("instance-id: %s\nlocal-hostname: %s\n", r->iid, r->host);
	/* The daemon's part: phone-home (and heartbeat) with the secret. */
	vendor = xasprintf("#cloud-config\n"
			   "#va: heartbeat_url=http://10.0.2.2:%u/hb/$INSTANCE_ID/%s\n"
			   "phone_home: {url: \"http://10.0.2.2:%u/ph/$INSTANCE_ID/%s\", "
			   "post: [instance_id, hostname]}\n",
			   p, r->token, p, r->token);
	if (gc->image == IMAGE_TINY)
		user = xasprintf("#cloud-config\n"
				 "#tiny: heartbeat=2\n"
				 "#tiny: load_url=http://10.0.2.2:%u/load/%s\n"
				 "#tiny: busy=load\n", p, r->token);
	else
		user = xasprintf("#cloud-config\n"
				 "runcmd:\n"
				 "  - [curl, -fsS, -X, POST, -d, ran=yes, "
				 "\"http://10.0.2.2:%u/ud/%s\"]\n", p, r->token);
	write_file(seeddir, "meta-data", meta);
	write_file(seeddir, "user-data", user);
	write_file(seeddir, "vendor-data", vendor);
	{
		char *md = xasprintf("%s/meta-data", seeddir);
		char *ud = xasprintf("%s/user-data", seeddir);
		char *vd = xasprintf("%s/vendor-data", seeddir);
		char *argv[] = { "genisoimage", "-quiet", "-output", (char *)iso,
				 "-volid", "cidata", "-joliet", "-rock",
				 md, ud, vd, NULL };

		run(argv);
		free(md);
		free(ud);
		free(vd);
	}
	free(meta);
	free(user);
	free(vendor);
}

static char *
domain_xml(const struct gcase *gc, const struct run *r, const char *name)
{
	const char *kernel, *initrd, *cmdline;
	struct strbuf sb = STRBUF_INIT;
	char seed_dev = 'a';

	if (gc->image == IMAGE_TINY) {
		kernel = env("VA_TEST_TINY_KERNEL");
		initrd = env("VA_TEST_TINY_INITRD");
		cmdline = "console=ttyS0 panic=-1";
	} else {
		kernel = env("VA_TEST_CLOUD_KERNEL");
		initrd = env("VA_TEST_CLOUD_INITRD");
		cmdline = "root=LABEL=rootfs rw console=ttyS0 net.ifnames=0 panic=-1";
	}
	strbuf_addf(&sb,
		    "<domain type='qemu'>\n"
		    "  <name>%s</name>\n"
		    "  <memory unit='MiB'>%u</memory>\n"
		    "  <vcpu>%u</vcpu>\n"
		    "  <os>\n"
		    "    <type arch='x86_64'>hvm</type>\n"
		    "    <kernel>%s</kernel>\n"
		    "    <initrd>%s</initrd>\n"
		    "    <cmdline>%s</cmdline>\n"
		    "  </os>\n"
		    "  <features><acpi/></features>\n"
		    "  <on_poweroff>destroy</on_poweroff>\n"
		    "  <on_reboot>destroy</on_reboot>\n"
		    "  <on_crash>destroy</on_crash>\n"
		    "  <devices>\n",
		    name, gc->memory_mib, gc->vcpus, kernel, initrd, cmdline);
	if (r->disk_path) {
		strbuf_addf(&sb,
			    "    <disk type='file' device='disk'>\n"
			    "      <driver name='qemu' type='qcow2'/>\n"
			    "      <source file='%s'/>\n"
			    "      <target dev='vda' bus='virtio'/>\n"
			    "    </disk>\n", r->disk_path);
		seed_dev = 'b';
	}
	strbuf_addf(&sb,
		    "    <disk type='file' device='disk'>\n"
		    "      <driver name='qemu' type='raw'/>\n"
		    "      <source file='%s'/>\n"
		    "      <target dev='vd%c' bus='virtio'/>\n"
		    "      <readonly/>\n"
		    "    </disk>\n"
		    "    <interface type='user'><model type='virtio'/></interface>\n"
		    "    <serial type='file'>\n"
		    "      <source path='%s'/>\n"
		    "      <target port='0'/>\n"
		    "    </serial>\n"
		    "    <channel type='unix'>\n"
		    "      <target type='virtio' name='org.qemu.guest_agent.0'/>\n"
		    "    </channel>\n"
		    "    <memballoon model='virtio'/>\n"
		    "  </devices>\n"
		    "</domain>\n",
		    r->seed_path, seed_dev, r->console);
	return strbuf_detach(&sb);
}

/* Wait up to TIMEOUT_S for request METHOD URL (body containing BODY);
 * returns its index, or -1 after printing the console log. */
static int
wait_request(struct run *r, int from, const char *method, const char *url,
	     const char *body, int timeout_s)
{
	int64_t deadline = util_now_ms() + (int64_t)timeout_s * 1000;
	int i;

	while ((i = listener_find(&r->l, from, method, url, body)) < 0) {
		if (util_now_ms() > deadline) {
			print_tail(r->console, 3000);
			return -1;
		}
		if (r->dom && virDomainIsActive(r->dom) != 1) {
			print_tail(r->console, 3000);
			fprintf(stderr, "the guest stopped\n");
			return -1;
		}
		usleep(200 * 1000);
	}
	return i;
}

struct fixture {
	const struct gcase *gc;
	struct run r;
};

static int
fixture_setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));

	fx->gc = *state;
	*state = fx;
	return 0;
}

/* Runs after a failure too: no domain or volume outlives the test. */
static int
fixture_teardown(void **state)
{
	struct fixture *fx = *state;

	run_release(&fx->r);
	free(fx);
	return 0;
}

static void
test_boot(void **state)
{
	struct fixture *fx = *state;
	const struct gcase *gc = fx->gc;
	const char *uri = env(gc->uri_env);
	const char *pool = env("VA_TEST_POOL");
	const char *sdir = env("VA_TEST_STATE_DIR");
	struct run *rp = &fx->r;
	char *dir, *seeddir, *iso, *xml, *url, *want, *name, *volxml, *hex;
	int64_t t0, t_ph;
	int i, state_now, reason;

	if (!uri || !pool) {
		fprintf(stderr, "%s unset: run scripts/services/libvirt.sh start\n",
			gc->uri_env);
		skip();
	}
	if (!sdir)
		sdir = "/var/tmp/virt-autoscaler-test";

	hex = random_hex(4);
	rp->iid = xasprintf("iid-%s-%s", gc->name, hex);
	free(hex);
	rp->token = random_hex(16);
	rp->host = xasprintf("va-%s", gc->name);
	name = xasprintf("va-guest-test-%s-%ld", gc->name, (long)getpid());

	/* Files the test writes; consoles are written by the host's virtlogd
	 * (root for host 1, nobody for host 2): a sticky world-writable dir. */
	dir = xasprintf("%s/guest-test", sdir);
	mkdir_mode(dir, 0755);
	rp->workdir = xasprintf("%s/%s-%ld", dir, gc->name, (long)getpid());
	mkdir_mode(rp->workdir, 0755);
	seeddir = xasprintf("%s/seed", rp->workdir);
	mkdir_mode(seeddir, 0755);
	free(dir);
	dir = xasprintf("%s/guest-test/consoles", sdir);
	mkdir_mode(dir, 01777);
	rp->console = xasprintf("%s/%s.log", dir, name);
	unlink(rp->console);
	free(dir);

	listener_start(&rp->l);
	rp->l.load_reply = "1\n";
	iso = xasprintf("%s/seed.iso", rp->workdir);
	build_seed(gc, rp, seeddir, iso);

	rp->conn = virConnectOpen(uri);
	if (!rp->conn)
		fail_msg("connecting to %s: %s", uri, virGetLastErrorMessage());
	rp->pool = virStoragePoolLookupByName(rp->conn, pool);
	if (!rp->pool)
		fail_msg("pool %s on %s: %s", pool, uri, virGetLastErrorMessage());
	virStoragePoolRefresh(rp->pool, 0);

	{
		struct stat sb;

		assert_int_equal(stat(iso, &sb), 0);
		volxml = xasprintf("<volume><name>%s-seed.iso</name>"
				   "<capacity unit='bytes'>%lld</capacity>"
				   "<target><format type='raw'/></target></volume>",
				   name, (long long)sb.st_size);
		rp->seed_vol = volume_create(rp->pool, volxml, iso, &rp->seed_path);
		free(volxml);
	}
	if (gc->image == IMAGE_CLOUD) {
		volxml = xasprintf("<volume><name>%s.qcow2</name>"
				   "<capacity unit='GiB'>4</capacity>"
				   "<target><format type='qcow2'/></target>"
				   "<backingStore><path>%s</path>"
				   "<format type='qcow2'/></backingStore></volume>",
				   name, env("VA_TEST_CLOUD_IMAGE"));
		rp->disk_vol = volume_create(rp->pool, volxml, NULL, &rp->disk_path);
		free(volxml);
	}

	xml = domain_xml(gc, rp, name);
	t0 = util_now_ms();
	rp->dom = virDomainCreateXML(rp->conn, xml, 0);
	free(xml);
	if (!rp->dom)
		fail_msg("starting %s on %s: %s", name, uri, virGetLastErrorMessage());
	printf("%s: virDomainCreateXML %.2f s\n", gc->name,
	       (util_now_ms() - t0) / 1000.0);

	/* Phone-home: cloud-init's form fields, on the secret URL. */
	url = xasprintf("/ph/%s/%s", rp->iid, rp->token);
	want = xasprintf("instance_id=%s", rp->iid);
	i = wait_request(rp, 0, "POST", url, want, gc->boot_timeout_s);
	free(want);
	free(url);
	if (i < 0)
		fail_msg("%s: no phone-home within %d s", gc->name, gc->boot_timeout_s);
	t_ph = util_now_ms();
	want = xasprintf("hostname=%s", rp->host);
	assert_non_null(strstr(rp->l.reqs[i].body, want));
	free(want);
	assert_non_null(strstr(rp->l.reqs[i].ctype, "application/x-www-form-urlencoded"));
	printf("%s: start to phone-home %.1f s\n", gc->name, (t_ph - t0) / 1000.0);

	if (gc->image == IMAGE_TINY) {
		/* The load instruction ("1" worker) shows in the heartbeat. */
		url = xasprintf("/load/%s", rp->token);
		assert_true(wait_request(rp, 0, "GET", url, NULL, 60) >= 0);
		free(url);
		url = xasprintf("/hb/%s/%s", rp->iid, rp->token);
		i = wait_request(rp, 0, "POST", url, "\"busy\": true", 60);
		free(url);
		assert_true(i >= 0);
		assert_non_null(strstr(rp->l.reqs[i].ctype, "application/json"));
	} else {
		/* The user's user-data ran (runcmd). */
		url = xasprintf("/ud/%s", rp->token);
		assert_true(wait_request(rp, 0, "POST", url, "ran=yes", 60) >= 0);
		free(url);
	}

	/* ACPI shutdown (the power button, not the guest agent, which the
	 * cloud guest runs): the guest must power itself off. */
	t0 = util_now_ms();
	if (virDomainShutdownFlags(rp->dom, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN) < 0)
		fail_msg("virDomainShutdownFlags: %s", virGetLastErrorMessage());
	for (;;) {
		if (virDomainGetState(rp->dom, &state_now, &reason, 0) < 0) {
			/* A transient domain disappears when it stops. */
			assert_int_equal(virGetLastErrorCode(), VIR_ERR_NO_DOMAIN);
			break;
		}
		if (state_now == VIR_DOMAIN_SHUTOFF)
			break;
		if (util_now_ms() - t0 > (int64_t)gc->stop_timeout_s * 1000) {
			print_tail(rp->console, 3000);
			fail_msg("%s: still running %d s after ACPI shutdown",
				 gc->name, gc->stop_timeout_s);
		}
		usleep(200 * 1000);
	}
	printf("%s: ACPI shutdown to off %.1f s\n", gc->name,
	       (util_now_ms() - t0) / 1000.0);
	rp->passed = 1;

	free(seeddir);
	free(iso);
	free(name);
}

int
main(int argc, char **argv)
{
	struct CMUnitTest tests[ARRAY_SIZE(cases)];
	const char *want = argc > 1 ? argv[1] : "tiny";
	size_t n = 0;

	if (strcmp(want, "cloud") == 0)
		selected = IMAGE_CLOUD;
	else if (strcmp(want, "tiny") != 0) {
		fprintf(stderr, "usage: test_guest [tiny|cloud]\n");
		return 2;
	}
	if (selected == IMAGE_TINY &&
	    (!env("VA_TEST_TINY_KERNEL") || !env("VA_TEST_TINY_INITRD"))) {
		fprintf(stderr, "VA_TEST_TINY_* unset: run scripts/services/images.sh start\n");
		return 77;
	}
	if (selected == IMAGE_CLOUD &&
	    (!env("VA_TEST_CLOUD_IMAGE") || !env("VA_TEST_CLOUD_KERNEL") ||
	     !env("VA_TEST_CLOUD_INITRD"))) {
		fprintf(stderr, "VA_TEST_CLOUD_* unset: run scripts/services/images.sh start\n");
		return 77;
	}
	if (!env("VA_TEST_LIBVIRT_URI")) {
		fprintf(stderr, "VA_TEST_LIBVIRT_URI unset: run scripts/services/libvirt.sh start\n");
		return 77;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (cases[i].image != selected)
			continue;
		tests[n] = (struct CMUnitTest){
			.name = cases[i].name,
			.test_func = test_boot,
			.setup_func = fixture_setup,
			.teardown_func = fixture_teardown,
			.initial_state = (void *)&cases[i],
		};
		n++;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	virSetErrorFunc(NULL, quiet_errors);
	return _cmocka_run_group_tests(selected == IMAGE_TINY ? "guest-tiny" : "guest-cloud",
				       tests, n, NULL, NULL);
}
