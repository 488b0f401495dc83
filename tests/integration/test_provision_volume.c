/*
 * Integration test of volume.c on the real libvirt daemons of
 * scripts/services/libvirt.sh (pool $VA_TEST_POOL on both hosts):
 *   - a small base image is uploaded to host 2's pool, which lacks it,
 *     through a libvirt stream, and reused on the next call;
 *   - an interrupted upload (marker volume left behind) is redone;
 *   - a qcow2 overlay is created on it; its backing store is checked in
 *     virStorageVolGetXMLDesc;
 *   - a seed ISO is uploaded and downloaded back byte for byte;
 *   - everything is deleted (twice: deleting is idempotent) and nothing of
 *     ours is left in the pool;
 *   - a full pool (a dir pool on a tmpfs of 8 MiB this test mounts; root
 *     only): an image a little larger than the room fails with a clear
 *     error and leaves no volume (libvirt 9.0 reported such an upload as a
 *     success, truncated); one that fits is uploaded and verified; a
 *     truncated base volume left by an older version is replaced, one that
 *     backs an overlay is refused, a changed image is uploaded again.
 * Exits 77 (skip) without VA_TEST_LIBVIRT_URI / _URI2 / VA_TEST_POOL.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <cmocka.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "log.h"
#include "seed.h"
#include "util.h"
#include "volume.h"

#define MiB (UINT64_C(1) << 20)

static const char *uri1, *uri2, *pool;
static char base_file[256], base_name[128], prefix[64];

static void
quiet(void *opaque, virErrorPtr e)
{
}

static virConnectPtr
open_conn(const char *uri)
{
	virConnectPtr c = virConnectOpen(uri);

	if (!c)
		fail_msg("cannot connect to %s: %s", uri, virGetLastErrorMessage());
	return c;
}

/* Names of the volumes in the pool that start with our prefix. */
static int
count_ours(virConnectPtr c)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(c, pool);
	virStorageVolPtr *vols = NULL;
	int n, ours = 0;

	assert_non_null(p);
	assert_int_equal(virStoragePoolRefresh(p, 0), 0);
	n = virStoragePoolListAllVolumes(p, &vols, 0);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		if (strncmp(virStorageVolGetName(vols[i]), prefix,
			    strlen(prefix)) == 0) {
			print_message("left behind: %s\n",
				      virStorageVolGetName(vols[i]));
			ours++;
		}
		virStorageVolFree(vols[i]);
	}
	free(vols);
	virStoragePoolFree(p);
	return ours;
}

/* Download a volume (sizes up to a few MiB) into memory. */
struct sink {
	struct strbuf sb;
};

static int
sink_write(virStreamPtr st, const char *data, size_t n, void *opaque)
{
	struct sink *s = opaque;

	strbuf_add(&s->sb, data, n);
	return (int)n;
}

static char *
download(virConnectPtr c, const char *name, size_t *len)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(c, pool);
	virStorageVolPtr v = virStorageVolLookupByName(p, name);
	virStreamPtr st = virStreamNew(c, 0);
	struct sink s = {STRBUF_INIT};

	assert_non_null(v);
	assert_int_equal(virStorageVolDownload(v, st, 0, 0, 0), 0);
	assert_int_equal(virStreamRecvAll(st, sink_write, &s), 0);
	assert_int_equal(virStreamFinish(st), 0);
	virStreamFree(st);
	virStorageVolFree(v);
	virStoragePoolFree(p);
	*len = s.sb.len;
	return strbuf_detach(&s.sb);
}

static void
test_upload_overlay_seed(void **state)
{
	virConnectPtr c = open_conn(uri2);
	char *path = NULL, *fmt = NULL, *path2 = NULL, *opath = NULL, *xml;
	char *fmt2 = NULL;
	char *ov = xasprintf("%s-ov.qcow2", prefix);
	char *seedname = xasprintf("%s-seed.iso", prefix);
	char *marker = xasprintf("%s.va-uploading", base_name);
	struct seed_spec spec = {.instance_id = "vol-test", .hostname = "vol-test",
				 .public_url = "http://10.0.2.2:1", .secret = "x"};
	unsigned char *iso = NULL;
	size_t iso_len = 0, got_len = 0;
	char *got;
	bool uploaded = true;
	int64_t t0;

	(void)state;
	assert_int_equal(volume_exists(c, pool, base_name), 0);
	t0 = util_now_ms();
	if (volume_ensure_base(c, pool, base_file, &path, &fmt, &uploaded) < 0)
		fail_msg("%s", err_msg());
	print_message("uploaded %s to host 2 in %" PRId64 " ms\n", base_name,
		      util_now_ms() - t0);
	assert_true(uploaded);
	assert_string_equal(fmt, "qcow2");
	assert_non_null(strstr(path, base_name));
	assert_int_equal(volume_exists(c, pool, marker), 0);

	/* Reused, not uploaded again. */
	assert_int_equal(volume_ensure_base(c, pool, base_file, &path2, NULL,
					    &uploaded), 0);
	assert_false(uploaded);
	assert_string_equal(path, path2);
	free(path2);
	/* Found by name, as a base named by its pool volume would be. */
	assert_int_equal(volume_find(c, pool, base_name, &path2, &fmt2), 1);
	assert_string_equal(path, path2);
	assert_string_equal(fmt2, "qcow2");
	free(path2);
	free(fmt2);
	assert_int_equal(volume_find(c, pool, "no-such-base.qcow2", &path2, NULL),
			 0);

	/* An interrupted upload leaves the marker: the next call redoes it. */
	assert_int_equal(volume_upload_bytes(c, pool, marker, "x", 1, NULL), 0);
	assert_int_equal(volume_ensure_base(c, pool, base_file, &path2, NULL,
					    &uploaded), 0);
	assert_true(uploaded);
	assert_int_equal(volume_exists(c, pool, marker), 0);
	free(path2);

	/* Overlay: capacity raised to the base's 64 MiB when asked for less. */
	if (volume_create_overlay(c, pool, ov, path, fmt, 16 * MiB, &opath) < 0)
		fail_msg("%s", err_msg());
	{
		virStoragePoolPtr p = virStoragePoolLookupByName(c, pool);
		virStorageVolPtr v = virStorageVolLookupByName(p, ov);
		virStorageVolInfo info;
		char *want = xasprintf("<path>%s</path>", path);

		assert_non_null(v);
		xml = virStorageVolGetXMLDesc(v, 0);
		assert_non_null(xml);
		if (!strstr(xml, "<backingStore>") || !strstr(xml, want) ||
		    !strstr(xml, "<format type='qcow2'/>"))
			fail_msg("overlay XML lacks the backing store %s:\n%s",
				 path, xml);
		assert_int_equal(virStorageVolGetInfo(v, &info), 0);
		assert_true(info.capacity == 64 * MiB);
		free(want);
		free(xml);
		virStorageVolFree(v);
		virStoragePoolFree(p);
	}
	/* An overlay of that name exists already: refused. */
	assert_int_equal(volume_create_overlay(c, pool, ov, path, fmt, 0, NULL),
			 -1);
	assert_non_null(strstr(err_msg(), ov));

	/* Seed ISO, downloaded back byte for byte. */
	assert_int_equal(seed_build_iso(&spec, &iso, &iso_len), 0);
	if (volume_upload_bytes(c, pool, seedname, iso, iso_len, NULL) < 0)
		fail_msg("%s", err_msg());
	got = download(c, seedname, &got_len);
	assert_int_equal(got_len, iso_len);
	assert_memory_equal(got, iso, iso_len);
	free(got);

	/* Delete everything, twice. */
	for (int round = 0; round < 2; round++) {
		assert_int_equal(volume_delete(c, pool, ov), 0);
		assert_int_equal(volume_delete(c, pool, seedname), 0);
		assert_int_equal(volume_delete(c, pool, base_name), 0);
	}
	assert_int_equal(count_ours(c), 0);
	assert_int_equal(access(opath, F_OK), -1); /* host 2's pool is local */

	free(iso);
	free(opath);
	free(path);
	free(fmt);
	free(ov);
	free(seedname);
	free(marker);
	virConnectClose(c);
}

/* Several provisioning workers reach a fresh host at once: one uploads,
 * the others wait and reuse (none takes the upload in progress for an
 * interrupted one). */
struct racer {
	virConnectPtr conn;
	char *path;
	bool uploaded;
	int rc;
};

static void *
race(void *arg)
{
	struct racer *r = arg;

	r->rc = volume_ensure_base(r->conn, pool, base_file, &r->path, NULL,
				   &r->uploaded);
	return NULL;
}

static void
test_concurrent_ensure(void **state)
{
	virConnectPtr c = open_conn(uri2);
	struct racer r[4];
	pthread_t t[4];
	int uploads = 0;

	(void)state;
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 4; i++) {
		r[i].conn = c;
		assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (r[i].rc != 0)
			fail_msg("racer %d failed", i);
		uploads += r[i].uploaded;
		assert_string_equal(r[i].path, r[0].path);
	}
	assert_int_equal(uploads, 1);
	for (int i = 0; i < 4; i++)
		free(r[i].path);
	assert_int_equal(volume_delete(c, pool, base_name), 0);
	assert_int_equal(count_ours(c), 0);
	virConnectClose(c);
}

/* Host 1 (the system daemon): the same calls, and errors named. */
static void
test_host1_and_errors(void **state)
{
	virConnectPtr c = open_conn(uri1);
	char *path = NULL, *fmt = NULL;
	char *ov = xasprintf("%s-h1.qcow2", prefix);

	(void)state;
	assert_int_equal(volume_ensure_base(c, pool, base_file, &path, &fmt, NULL),
			 0);
	assert_int_equal(volume_create_overlay(c, pool, ov, path, fmt, 128 * MiB,
					       NULL), 0);
	assert_int_equal(volume_delete(c, pool, ov), 0);
	assert_int_equal(volume_delete(c, pool, base_name), 0);
	assert_int_equal(count_ours(c), 0);

	assert_int_equal(volume_ensure_base(c, "no-such-pool", base_file, &path,
					    NULL, NULL), -1);
	assert_non_null(strstr(err_msg(), "storage pool no-such-pool"));
	assert_int_equal(volume_ensure_base(c, pool, "/nonexistent/x.qcow2",
					    &path, NULL, NULL), -1);
	assert_non_null(strstr(err_msg(), "/nonexistent/x.qcow2"));
	assert_int_equal(volume_delete(c, pool, "no-such-volume"), 0);
	assert_int_equal(volume_delete(c, pool, "../etc"), -1);
	assert_null(volume_overlay_name("a/b"));
	free(path);
	free(fmt);
	free(ov);
	virConnectClose(c);
}

/* --- a full pool ------------------------------------------------------ */

static char full_dir[512], full_pool[96];
static char big[300], fits[300], trunc_file[300];

static void
write_random(const char *path, size_t len, unsigned seed)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	srand(seed);
	for (size_t i = 0; i < len; i++)
		fputc(rand() & 0xff, f);
	assert_int_equal(fclose(f), 0);
}

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	struct strbuf sb = STRBUF_INIT;
	char buf[65536];
	size_t n;

	assert_non_null(f);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_add(&sb, buf, n);
	fclose(f);
	*len = sb.len;
	return strbuf_detach(&sb);
}

/* Names of the volumes in the full pool, space-separated ("" if none). */
static char *
full_pool_volumes(virConnectPtr c)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(c, full_pool);
	virStorageVolPtr *vols = NULL;
	struct strbuf sb = STRBUF_INIT;
	int n;

	assert_non_null(p);
	assert_int_equal(virStoragePoolRefresh(p, 0), 0);
	n = virStoragePoolListAllVolumes(p, &vols, 0);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		strbuf_addf(&sb, "%s%s", sb.len ? " " : "",
			    virStorageVolGetName(vols[i]));
		virStorageVolFree(vols[i]);
	}
	free(vols);
	virStoragePoolFree(p);
	return strbuf_detach(&sb);
}

/* Upload only the first `part` bytes of a file into a new raw volume of
 * its full size: what an upload that ran out of room left behind. */
static void
make_truncated(virConnectPtr c, const char *name, const char *file, size_t part)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(c, full_pool);
	size_t len;
	char *data = read_file(file, &len);
	char *xml = xasprintf("<volume><name>%s</name><capacity unit='bytes'>%zu"
			      "</capacity><allocation>0</allocation><target>"
			      "<format type='raw'/></target></volume>", name, len);
	virStorageVolPtr v = virStorageVolCreateXML(p, xml, 0);
	virStreamPtr st = virStreamNew(c, 0);

	assert_non_null(v);
	assert_int_equal(virStorageVolUpload(v, st, 0, part, 0), 0);
	assert_int_equal(virStreamSend(st, data, part), (int)part);
	assert_int_equal(virStreamFinish(st), 0);
	virStreamFree(st);
	virStorageVolFree(v);
	virStoragePoolFree(p);
	free(xml);
	free(data);
}

static void
expect_volume_is(virConnectPtr c, const char *name, const char *file)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(c, full_pool);
	virStorageVolPtr v = virStorageVolLookupByName(p, name);
	virStreamPtr st = virStreamNew(c, 0);
	struct sink k = {STRBUF_INIT};
	size_t len;
	char *want = read_file(file, &len);

	assert_non_null(v);
	assert_int_equal(virStorageVolDownload(v, st, 0, 0, 0), 0);
	assert_int_equal(virStreamRecvAll(st, sink_write, &k), 0);
	assert_int_equal(virStreamFinish(st), 0);
	assert_int_equal(k.sb.len, len);
	assert_memory_equal(k.sb.buf, want, len);
	strbuf_release(&k.sb);
	virStreamFree(st);
	virStorageVolFree(v);
	virStoragePoolFree(p);
	free(want);
}

static void
test_full_pool(void **state)
{
	virConnectPtr c;
	virStoragePoolPtr p;
	struct statvfs vfs;
	char *path = NULL, *fmt = NULL;
	char *vols, *ov = NULL;
	const char *state_dir = getenv("VA_TEST_STATE_DIR");
	bool uploaded = false;
	size_t avail;

	(void)state;
	if (geteuid() != 0)
		skip(); /* mounts a tmpfs */
	snprintf(full_dir, sizeof(full_dir), "%s/%s-full",
		 state_dir ? state_dir : "/var/tmp", prefix);
	snprintf(full_pool, sizeof(full_pool), "%s-full", prefix);
	assert_int_equal(mkdir(full_dir, 0755), 0);
	if (mount("tmpfs", full_dir, "tmpfs", 0, "size=8m,mode=0755") < 0) {
		print_message("cannot mount a tmpfs on %s: %s\n", full_dir,
			      strerror(errno));
		rmdir(full_dir);
		full_dir[0] = '\0';
		skip();
	}
	c = open_conn(uri1);
	{
		char *xml = xasprintf("<pool type='dir'><name>%s</name><target>"
				      "<path>%s</path></target></pool>",
				      full_pool, full_dir);

		p = virStoragePoolCreateXML(c, xml, 0);
		free(xml);
		if (!p)
			fail_msg("pool: %s", virGetLastErrorMessage());
		virStoragePoolFree(p);
	}
	assert_int_equal(statvfs(full_dir, &vfs), 0);
	avail = (size_t)vfs.f_bavail * vfs.f_frsize;

	/* a little more than the room: libvirt 9.0 said "uploaded" for this */
	snprintf(big, sizeof(big), "/tmp/%s-big.raw", prefix);
	write_random(big, avail + 100000, 1);
	assert_int_equal(volume_ensure_base(c, full_pool, big, &path, &fmt,
					    &uploaded), -1);
	print_message("full pool: %s\n", err_msg());
	assert_non_null(strstr(err_msg(), full_pool));
	assert_non_null(strstr(err_msg(), "available"));
	assert_false(uploaded);
	vols = full_pool_volumes(c);
	assert_string_equal(vols, "");
	free(vols);

	/* with room: uploaded, verified, its checksum volume written */
	snprintf(fits, sizeof(fits), "/tmp/%s-fits.raw", prefix);
	write_random(fits, 3000000, 2);
	if (volume_ensure_base(c, full_pool, fits, &path, &fmt, &uploaded) < 0)
		fail_msg("%s", err_msg());
	assert_true(uploaded);
	expect_volume_is(c, strrchr(fits, '/') + 1, fits);
	free(path);
	free(fmt);
	path = fmt = NULL;
	if (volume_ensure_base(c, full_pool, fits, &path, &fmt, &uploaded) < 0)
		fail_msg("%s", err_msg());
	assert_false(uploaded);
	free(path);
	free(fmt);
	path = fmt = NULL;

	/* a truncated base volume from before verified uploads: replaced */
	snprintf(trunc_file, sizeof(trunc_file), "/tmp/%s-trunc_file.raw", prefix);
	write_random(trunc_file, 2000000, 3);
	make_truncated(c, strrchr(trunc_file, '/') + 1, trunc_file, 500000);
	if (volume_ensure_base(c, full_pool, trunc_file, &path, &fmt, &uploaded) < 0)
		fail_msg("%s", err_msg());
	assert_true(uploaded);
	expect_volume_is(c, strrchr(trunc_file, '/') + 1, trunc_file);

	/* the image changed (same name): the volume no longer is it; with an
	 * overlay on it, it is left alone ... */
	ov = xasprintf("%s-ov.qcow2", prefix);
	assert_int_equal(volume_create_overlay(c, full_pool, ov, path, fmt,
					       4 * MiB, NULL), 0);
	free(path);
	free(fmt);
	path = fmt = NULL;
	write_random(trunc_file, 2000000, 4);
	assert_int_equal(volume_ensure_base(c, full_pool, trunc_file, &path, &fmt,
					    &uploaded), -1);
	print_message("in use: %s\n", err_msg());
	assert_non_null(strstr(err_msg(), "is not the image"));
	assert_non_null(strstr(err_msg(), ov));
	/* ... and replaced once nothing is backed by it */
	assert_int_equal(volume_delete(c, full_pool, ov), 0);
	if (volume_ensure_base(c, full_pool, trunc_file, &path, &fmt, &uploaded) < 0)
		fail_msg("%s", err_msg());
	assert_true(uploaded);
	expect_volume_is(c, strrchr(trunc_file, '/') + 1, trunc_file);

	assert_int_equal(volume_delete(c, full_pool, strrchr(trunc_file, '/') + 1), 0);
	assert_int_equal(volume_delete(c, full_pool, strrchr(fits, '/') + 1), 0);
	vols = full_pool_volumes(c);
	assert_string_equal(vols, "");
	free(vols);
	free(path);
	free(fmt);
	free(ov);
	virConnectClose(c);
}

/* The full pool and the images go, pass or fail. */
static int
full_pool_teardown(void **state)
{
	(void)state;
	if (big[0])
		unlink(big);
	if (fits[0])
		unlink(fits);
	if (trunc_file[0])
		unlink(trunc_file);
	if (full_pool[0]) {
		virConnectPtr c = virConnectOpen(uri1);
		virStoragePoolPtr p = c ? virStoragePoolLookupByName(c, full_pool)
					: NULL;

		if (p) {
			virStoragePoolDestroy(p);
			virStoragePoolFree(p);
		}
		if (c)
			virConnectClose(c);
	}
	if (full_dir[0]) {
		umount2(full_dir, MNT_DETACH);
		rmdir(full_dir);
	}
	return 0;
}

/* After the tests, pass or fail: no volume of ours stays on either host. */
static int
group_teardown(void **state)
{
	const char *uris[2] = {uri1, uri2};

	(void)state;
	for (int h = 0; h < 2; h++) {
		virConnectPtr c = virConnectOpen(uris[h]);
		virStoragePoolPtr p = c ? virStoragePoolLookupByName(c, pool) : NULL;
		virStorageVolPtr *vols = NULL;
		int n = p ? virStoragePoolListAllVolumes(p, &vols, 0) : 0;

		for (int i = 0; i < n; i++) {
			if (strncmp(virStorageVolGetName(vols[i]), prefix,
				    strlen(prefix)) == 0) {
				fprintf(stderr, "teardown: deleting %s\n",
					virStorageVolGetName(vols[i]));
				virStorageVolDelete(vols[i], 0);
			}
			virStorageVolFree(vols[i]);
		}
		free(vols);
		if (p)
			virStoragePoolFree(p);
		if (c)
			virConnectClose(c);
	}
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_upload_overlay_seed),
		cmocka_unit_test(test_host1_and_errors),
		cmocka_unit_test(test_concurrent_ensure),
		cmocka_unit_test_teardown(test_full_pool, full_pool_teardown),
	};
	char *cmd;
	int rc;

	uri1 = getenv("VA_TEST_LIBVIRT_URI");
	uri2 = getenv("VA_TEST_LIBVIRT_URI2");
	pool = getenv("VA_TEST_POOL");
	if (!uri1 || !uri2 || !pool) {
		fprintf(stderr, "skip: VA_TEST_LIBVIRT_URI, VA_TEST_LIBVIRT_URI2 "
				"and VA_TEST_POOL unset: run eval \"$(scripts/"
				"services/libvirt.sh start)\"\n");
		return 77;
	}
	virSetErrorFunc(NULL, quiet);
	snprintf(prefix, sizeof(prefix), "va-voltest-%d", (int)getpid());
	snprintf(base_name, sizeof(base_name), "%s-base.qcow2", prefix);
	snprintf(base_file, sizeof(base_file), "/tmp/%s", base_name);
	cmd = xasprintf("qemu-img create -q -f qcow2 %s 64M", base_file);
	if (system(cmd) != 0) {
		fprintf(stderr, "qemu-img failed: run scripts/setup.sh --virt\n");
		return 1;
	}
	free(cmd);
	rc = cmocka_run_group_tests(tests, NULL, group_teardown);
	unlink(base_file);
	return rc;
}
