/*
 * volume.c: see volume.h.
 */
#include "volume.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "domxml.h"
#include "log.h"
#include "util.h"

LOG_TAG("volume");

#define MARKER_SUFFIX ".va-uploading"
#define SUM_SUFFIX ".va-sha256"
#define SHA256_LEN 32
#define SUM_TEXT_MAX 128

static const char *
lv_err(void)
{
	const char *m = virGetLastErrorMessage();

	return m ? m : "unknown libvirt error";
}

char *
volume_overlay_name(const char *id)
{
	if (domxml_name_valid("instance id", id) < 0)
		return NULL;
	return xasprintf("%s.qcow2", id);
}

char *
volume_seed_name(const char *id)
{
	if (domxml_name_valid("instance id", id) < 0)
		return NULL;
	return xasprintf("%s-seed.iso", id);
}

static virStoragePoolPtr
pool_open(virConnectPtr conn, const char *pool)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(conn, pool);
	int active;

	if (!p) {
		err_set("storage pool %s: %s", pool, lv_err());
		return NULL;
	}
	active = virStoragePoolIsActive(p);
	if (active != 1) {
		err_set("storage pool %s is not active%s", pool,
			active < 0 ? ": cannot query it" : " (virsh pool-start it)");
		virStoragePoolFree(p);
		return NULL;
	}
	return p;
}

/* Look a volume up: *out NULL when absent. Returns 0, or -1 on error. */
static int
vol_lookup(virStoragePoolPtr p, const char *pool, const char *name,
	   virStorageVolPtr *out)
{
	virErrorPtr e;

	*out = virStorageVolLookupByName(p, name);
	if (*out)
		return 0;
	e = virGetLastError();
	if (e && e->code == VIR_ERR_NO_STORAGE_VOL) {
		virResetLastError();
		return 0;
	}
	err_set("pool %s: looking up volume %s: %s", pool, name, lv_err());
	return -1;
}

static int
vol_delete(virStoragePoolPtr p, const char *pool, const char *name)
{
	virStorageVolPtr v = NULL;
	int rc = -1;

	if (vol_lookup(p, pool, name, &v) < 0)
		return -1;
	if (!v)
		return 0;
	if (virStorageVolDelete(v, 0) < 0) {
		virErrorPtr e = virGetLastError();

		/* gone in between: fine */
		if (e && e->code == VIR_ERR_NO_STORAGE_VOL) {
			rc = 0;
			goto cleanup;
		}
		err_set("pool %s: deleting volume %s: %s", pool, name, lv_err());
		goto cleanup;
	}
	log_debug("pool %s: deleted volume %s", pool, name);
	rc = 0;
cleanup:
	virStorageVolFree(v);
	return rc;
}

int
volume_delete(virConnectPtr conn, const char *pool, const char *name)
{
	virStoragePoolPtr p;
	int rc;

	if (domxml_name_valid("volume name", name) < 0)
		return -1;
	p = pool_open(conn, pool);
	if (!p)
		return -1;
	rc = vol_delete(p, pool, name);
	if (rc == 0) {
		/* a base image's companions: its checksum, then its marker */
		char *sum = xasprintf("%s" SUM_SUFFIX, name);
		char *marker = xasprintf("%s" MARKER_SUFFIX, name);

		if (vol_delete(p, pool, sum) < 0 ||
		    vol_delete(p, pool, marker) < 0)
			rc = -1;
		free(sum);
		free(marker);
	}
	virStoragePoolFree(p);
	return rc;
}

int
volume_exists(virConnectPtr conn, const char *pool, const char *name)
{
	virStoragePoolPtr p = pool_open(conn, pool);
	virStorageVolPtr v = NULL;
	int rc = -1;

	if (!p)
		return -1;
	if (vol_lookup(p, pool, name, &v) == 0)
		rc = v ? 1 : 0;
	virStorageVolFree(v);
	virStoragePoolFree(p);
	return rc;
}

/* <volume> XML built with libxml2 (names escaped). Caller frees. */
static char *
vol_xml(const char *name, uint64_t capacity, const char *format,
	const char *backing_path, const char *backing_format)
{
	xmlDocPtr doc = xmlNewDoc((const xmlChar *)"1.0");
	xmlNodePtr v = xmlNewNode(NULL, (const xmlChar *)"volume"), n, t;
	xmlChar *mem = NULL;
	char buf[32];
	int size = 0;
	char *ret;

	if (!doc || !v)
		fatal("libxml2: out of memory");
	xmlDocSetRootElement(doc, v);
	xmlNewTextChild(v, NULL, (const xmlChar *)"name", (const xmlChar *)name);
	snprintf(buf, sizeof(buf), "%" PRIu64, capacity);
	n = xmlNewTextChild(v, NULL, (const xmlChar *)"capacity",
			    (const xmlChar *)buf);
	xmlSetProp(n, (const xmlChar *)"unit", (const xmlChar *)"bytes");
	xmlNewTextChild(v, NULL, (const xmlChar *)"allocation",
			(const xmlChar *)"0");
	t = xmlNewChild(v, NULL, (const xmlChar *)"target", NULL);
	n = xmlNewChild(t, NULL, (const xmlChar *)"format", NULL);
	xmlSetProp(n, (const xmlChar *)"type", (const xmlChar *)format);
	if (backing_path) {
		xmlNodePtr b = xmlNewChild(v, NULL, (const xmlChar *)"backingStore",
					   NULL);

		xmlNewTextChild(b, NULL, (const xmlChar *)"path",
				(const xmlChar *)backing_path);
		n = xmlNewChild(b, NULL, (const xmlChar *)"format", NULL);
		xmlSetProp(n, (const xmlChar *)"type",
			   (const xmlChar *)backing_format);
	}
	xmlDocDumpMemory(doc, &mem, &size);
	if (!mem)
		fatal("libxml2: out of memory");
	ret = xstrndup((const char *)mem, (size_t)size);
	xmlFree(mem);
	xmlFreeDoc(doc);
	return ret;
}

/* The text of an XPath string expression over a volume's XML. */
static char *
xml_string(const char *xml, const char *expr)
{
	xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), NULL, NULL,
				      XML_PARSE_NONET | XML_PARSE_NOERROR |
					      XML_PARSE_NOWARNING);
	xmlXPathContextPtr ctx = NULL;
	xmlXPathObjectPtr o = NULL;
	char *ret = NULL;

	if (!doc)
		return NULL;
	ctx = xmlXPathNewContext(doc);
	if (ctx)
		o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
	if (o && o->type == XPATH_STRING && o->stringval && o->stringval[0])
		ret = xstrdup((const char *)o->stringval);
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	return ret;
}

static char *
vol_format(virStorageVolPtr v)
{
	char *xml = virStorageVolGetXMLDesc(v, 0);
	char *f;

	if (!xml)
		return NULL;
	f = xml_string(xml, "string(/volume/target/format/@type)");
	free(xml);
	return f;
}

static char *
vol_path(virStorageVolPtr v, const char *pool, const char *name)
{
	char *path = virStorageVolGetPath(v);

	if (!path)
		err_set("pool %s: volume %s has no path: %s", pool, name, lv_err());
	return path;
}

static virStorageVolPtr
vol_create(virStoragePoolPtr p, const char *pool, const char *xml,
	   const char *name)
{
	virStorageVolPtr v = virStorageVolCreateXML(p, xml, 0);

	if (!v)
		err_set("pool %s: creating volume %s: %s", pool, name, lv_err());
	return v;
}

/* Stream sources: a file descriptor, or a memory buffer. What was read
 * is hashed when hash is set (the digest of what was sent). */
struct src {
	int fd;
	const unsigned char *mem;
	size_t len, off;
	gnutls_hash_hd_t hash;
	uint64_t sent;
};

static int
src_read(virStreamPtr st, char *data, size_t nbytes, void *opaque)
{
	struct src *s = opaque;

	if (s->mem) {
		size_t n = s->len - s->off;

		if (n > nbytes)
			n = nbytes;
		memcpy(data, s->mem + s->off, n);
		s->off += n;
		return (int)n;
	}
	for (;;) {
		ssize_t n = read(s->fd, data, nbytes);

		if (n >= 0) {
			if (s->hash && n > 0)
				gnutls_hash(s->hash, data, (size_t)n);
			s->sent += (uint64_t)n;
			return (int)n;
		}
		if (errno != EINTR)
			return -1;
	}
}

/* --- verification -------------------------------------------------------- */

static void
hex(const unsigned char *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* Where a download goes: hashed, or compared with memory, and counted. */
struct sink {
	gnutls_hash_hd_t hash;
	const unsigned char *want;
	size_t want_len;
	bool differs;
	uint64_t got;
};

static int
sink_write(virStreamPtr st, const char *data, size_t n, void *opaque)
{
	struct sink *k = opaque;

	(void)st;
	if (k->hash)
		gnutls_hash(k->hash, data, n);
	if (k->want) {
		if (k->got + n > k->want_len ||
		    memcmp(k->want + k->got, data, n) != 0)
			k->differs = true;
	}
	k->got += n;
	return (int)n;
}

/*
 * Read len bytes of a volume back through a stream into k. 0, or -1 with
 * err_set(). libvirt 9.0 reports success for an upload whose last writes
 * failed with ENOSPC on the host (the stream's finish does not wait for
 * them): reading back is the only check that holds for every pool type.
 */
static int
download(virConnectPtr conn, virStorageVolPtr v, const char *pool,
	 const char *name, uint64_t len, struct sink *k)
{
	virStreamPtr st = virStreamNew(conn, 0);
	int rc = -1;

	if (!st) {
		err_set("pool %s: volume %s: cannot open a stream: %s", pool, name,
			lv_err());
		return -1;
	}
	if (virStorageVolDownload(v, st, 0, len, 0) < 0 ||
	    virStreamRecvAll(st, sink_write, k) < 0) {
		err_set("pool %s: reading volume %s back: %s", pool, name,
			lv_err());
		virStreamAbort(st);
		goto cleanup;
	}
	if (virStreamFinish(st) < 0) {
		err_set("pool %s: reading volume %s back: %s", pool, name,
			lv_err());
		goto cleanup;
	}
	rc = 0;
cleanup:
	virStreamFree(st);
	return rc;
}

/* The volume's size on the host's storage (a file's length); 0 unknown. */
static uint64_t
vol_physical(virStorageVolPtr v)
{
	virStorageVolInfo info;

	if (virStorageVolGetInfoFlags(v, &info, VIR_STORAGE_VOL_GET_PHYSICAL) < 0) {
		virResetLastError();
		return 0;
	}
	return info.allocation;
}

/*
 * Does volume v hold exactly size bytes with this SHA-256? 1 yes, 0 no
 * (*why says what differs), -1 error.
 */
static int
vol_matches(virConnectPtr conn, virStorageVolPtr v, const char *pool,
	    const char *name, uint64_t size, const unsigned char *sha,
	    char *why, size_t whylen)
{
	struct sink k = {0};
	unsigned char got[SHA256_LEN];
	uint64_t phys = vol_physical(v);
	int r;

	/* (a block device may be larger: its first size bytes count) */
	if (phys && phys < size) {
		snprintf(why, whylen, "it has %" PRIu64 " bytes, not %" PRIu64,
			 phys, size);
		return 0;
	}
	r = gnutls_hash_init(&k.hash, GNUTLS_DIG_SHA256);
	if (r < 0) {
		err_set("SHA-256: %s", gnutls_strerror(r));
		return -1;
	}
	if (download(conn, v, pool, name, size, &k) < 0) {
		gnutls_hash_deinit(k.hash, got);
		return -1;
	}
	gnutls_hash_deinit(k.hash, got);
	if (k.got != size) {
		snprintf(why, whylen, "%" PRIu64 " bytes read back, not %" PRIu64,
			 k.got, size);
		return 0;
	}
	if (memcmp(got, sha, SHA256_LEN) != 0) {
		snprintf(why, whylen, "its content differs (SHA-256)");
		return 0;
	}
	return 1;
}

/*
 * The SHA-256 of a local file, cached per (device, inode, size, mtime):
 * provisioning asks for the same base image for every VM.
 */
struct file_sum {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	unsigned char sha[SHA256_LEN];
};

static pthread_mutex_t sum_mu = PTHREAD_MUTEX_INITIALIZER;
static struct file_sum sum_cache[16];
static size_t sum_next;

static bool
same_file(const struct file_sum *c, const struct stat *st)
{
	return c->dev == st->st_dev && c->ino == st->st_ino &&
	       c->size == st->st_size &&
	       c->mtime.tv_sec == st->st_mtim.tv_sec &&
	       c->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static int
file_sha256(int fd, const char *path, const struct stat *st,
	    unsigned char *sha)
{
	gnutls_hash_hd_t h;
	char buf[1 << 16];
	int r;

	pthread_mutex_lock(&sum_mu);
	for (size_t i = 0; i < ARRAY_SIZE(sum_cache); i++) {
		if (sum_cache[i].size && same_file(&sum_cache[i], st)) {
			memcpy(sha, sum_cache[i].sha, SHA256_LEN);
			pthread_mutex_unlock(&sum_mu);
			return 0;
		}
	}
	pthread_mutex_unlock(&sum_mu);
	r = gnutls_hash_init(&h, GNUTLS_DIG_SHA256);
	if (r < 0) {
		err_set("SHA-256: %s", gnutls_strerror(r));
		return -1;
	}
	for (off_t off = 0;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set("base image %s: %s", path, strerror(errno));
			gnutls_hash_deinit(h, sha);
			return -1;
		}
		if (n == 0)
			break;
		gnutls_hash(h, buf, (size_t)n);
		off += n;
	}
	gnutls_hash_deinit(h, sha);
	pthread_mutex_lock(&sum_mu);
	sum_cache[sum_next] = (struct file_sum){
		.dev = st->st_dev, .ino = st->st_ino, .size = st->st_size,
		.mtime = st->st_mtim};
	memcpy(sum_cache[sum_next].sha, sha, SHA256_LEN);
	sum_next = (sum_next + 1) % ARRAY_SIZE(sum_cache);
	pthread_mutex_unlock(&sum_mu);
	return 0;
}

/* "sha256:HEX size:N\n", the content of a base image's checksum volume. */
static void
sum_text(const unsigned char *sha, uint64_t size, char *out, size_t outlen)
{
	char h[2 * SHA256_LEN + 1];

	hex(sha, SHA256_LEN, h);
	snprintf(out, outlen, "sha256:%s size:%" PRIu64 "\n", h, size);
}

/*
 * Does the checksum volume sv say the base image is this one? 1 yes, 0 no
 * (or unreadable: then the base volume itself is checked), -1 error.
 */
static int
sum_matches(virConnectPtr conn, virStorageVolPtr sv, const char *pool,
	    const char *name, const char *want)
{
	size_t n = strlen(want);
	struct sink k = {.want = (const unsigned char *)want, .want_len = n};

	if (download(conn, sv, pool, name, n, &k) < 0) {
		log_warn("%s", err_msg());
		return 0;
	}
	return !k.differs && k.got == n;
}

static int
upload(virConnectPtr conn, virStorageVolPtr v, const char *pool,
       const char *name, struct src *s, uint64_t len)
{
	virStreamPtr st = virStreamNew(conn, 0);
	int rc = -1;

	if (!st) {
		err_set("pool %s: volume %s: cannot open a stream: %s", pool, name,
			lv_err());
		return -1;
	}
	if (virStorageVolUpload(v, st, 0, len, 0) < 0) {
		err_set("pool %s: uploading volume %s: %s", pool, name, lv_err());
		goto cleanup;
	}
	if (virStreamSendAll(st, src_read, s) < 0) {
		err_set("pool %s: uploading volume %s: %s", pool, name, lv_err());
		virStreamAbort(st);
		goto cleanup;
	}
	if (virStreamFinish(st) < 0) {
		err_set("pool %s: finishing upload of %s: %s", pool, name, lv_err());
		goto cleanup;
	}
	rc = 0;
cleanup:
	virStreamFree(st);
	return rc;
}

/*
 * Within one process, one volume_ensure_base() at a time per (host URI,
 * pool, image): a second caller would otherwise take the first one's
 * upload in progress (base volume next to its marker) for an interrupted
 * one and delete it. Other images and hosts go on in parallel.
 */
static pthread_mutex_t ensure_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ensure_cv = PTHREAD_COND_INITIALIZER;
static char **ensure_keys;
static size_t ensure_n;

static char *
ensure_lock(virConnectPtr conn, const char *pool, const char *name)
{
	char *uri = virConnectGetURI(conn);
	char *key = xasprintf("%s\n%s\n%s", uri ? uri : "?", pool, name);
	bool busy;

	free(uri);
	pthread_mutex_lock(&ensure_mu);
	do {
		busy = false;
		for (size_t i = 0; i < ensure_n; i++)
			if (strcmp(ensure_keys[i], key) == 0)
				busy = true;
		if (busy)
			pthread_cond_wait(&ensure_cv, &ensure_mu);
	} while (busy);
	ensure_keys = xreallocarray(ensure_keys, ensure_n + 1,
				    sizeof(*ensure_keys));
	ensure_keys[ensure_n++] = key;
	pthread_mutex_unlock(&ensure_mu);
	return key;
}

static void
ensure_unlock(char *key)
{
	pthread_mutex_lock(&ensure_mu);
	for (size_t i = 0; i < ensure_n; i++) {
		if (ensure_keys[i] == key) {
			ensure_keys[i] = ensure_keys[--ensure_n];
			break;
		}
	}
	if (ensure_n == 0) {
		free(ensure_keys);
		ensure_keys = NULL;
	}
	pthread_cond_broadcast(&ensure_cv);
	pthread_mutex_unlock(&ensure_mu);
	free(key);
}

static int ensure_base_locked(virConnectPtr conn, const char *pool,
			      const char *local_path, const char *name,
			      char **path_out, char **format_out,
			      bool *uploaded);

int
volume_ensure_base(virConnectPtr conn, const char *pool, const char *local_path,
		   char **path_out, char **format_out, bool *uploaded)
{
	const char *slash = strrchr(local_path, '/');
	const char *name = slash ? slash + 1 : local_path;
	char *key;
	int rc;

	if (uploaded)
		*uploaded = false;
	if (domxml_name_valid("base image name", name) < 0)
		return -1;
	key = ensure_lock(conn, pool, name);
	rc = ensure_base_locked(conn, pool, local_path, name, path_out,
				format_out, uploaded);
	ensure_unlock(key);
	return rc;
}

/*
 * Volumes in pool whose backing store is path (overlays of VMs): how many,
 * and the name of one in *example (caller frees). -1 on error.
 */
static int
backed_by(virStoragePoolPtr p, const char *pool, const char *path,
	  char **example)
{
	virStorageVolPtr *vols = NULL;
	int n = virStoragePoolListAllVolumes(p, &vols, 0), found = 0;

	if (n < 0) {
		err_set("pool %s: listing volumes: %s", pool, lv_err());
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char *xml = virStorageVolGetXMLDesc(vols[i], 0), *b = NULL;

		if (xml)
			b = xml_string(xml, "string(/volume/backingStore/path)");
		if (b && strcmp(b, path) == 0) {
			if (!found++ && example)
				*example = xstrdup(virStorageVolGetName(vols[i]));
		}
		free(b);
		free(xml);
		virStorageVolFree(vols[i]);
	}
	free(vols);
	return found;
}

/* Free bytes of the pool, or UINT64_MAX when the pool does not say. */
static uint64_t
pool_available(virStoragePoolPtr p)
{
	virStoragePoolInfo info;

	if (virStoragePoolGetInfo(p, &info) < 0) {
		virResetLastError();
		return UINT64_MAX;
	}
	return info.capacity ? info.available : UINT64_MAX;
}

/*
 * An existing base volume v (no upload marker): is it the local image?
 * The checksum volume written after a verified upload answers cheaply;
 * without one (a volume of an older version, or put there by other
 * means) the volume is read back once, and the checksum volume written
 * when it matches. 1 yes, 0 no (*why), -1 error.
 */
static int
base_is_current(virConnectPtr conn, virStorageVolPtr v, virStorageVolPtr sumvol, const char *pool, const char *name,
		const char *sum_name, uint64_t size, const unsigned char *sha,
		char *why, size_t whylen)
{
	char want[SUM_TEXT_MAX];
	int r;

	sum_text(sha, size, want, sizeof(want));
	if (sumvol && sum_matches(conn, sumvol, pool, sum_name, want))
		return 1;
	r = vol_matches(conn, v, pool, name, size, sha, why, whylen);
	if (r != 1)
		return r;
	log_info("pool %s: base volume %s verified against the image "
		 "(read back)", pool, name);
	if (volume_upload_bytes(conn, pool, sum_name, want, strlen(want),
				NULL) < 0)
		log_warn("%s", err_msg());
	return 1;
}

static int
ensure_base_locked(virConnectPtr conn, const char *pool, const char *local_path,
		   const char *name, char **path_out, char **format_out,
		   bool *uploaded)
{
	virStoragePoolPtr p = NULL;
	virStorageVolPtr v = NULL, marker = NULL, sumvol = NULL;
	char *marker_name = NULL, *sum_name = NULL, *xml = NULL, *vpath = NULL;
	char *example = NULL;
	struct src s = {.fd = -1};
	struct stat stbuf;
	unsigned char sha[SHA256_LEN], sent[SHA256_LEN];
	char why[160] = "", sumtxt[SUM_TEXT_MAX];
	uint64_t avail;
	int64_t t0;
	int rc = -1, r;
	bool created = false;

	marker_name = xasprintf("%s" MARKER_SUFFIX, name);
	sum_name = xasprintf("%s" SUM_SUFFIX, name);
	s.fd = open(local_path, O_RDONLY | O_CLOEXEC);
	if (s.fd < 0 || fstat(s.fd, &stbuf) < 0) {
		err_set("base image %s: %s", local_path, strerror(errno));
		goto cleanup;
	}
	if (!S_ISREG(stbuf.st_mode) || stbuf.st_size == 0) {
		err_set("base image %s is not a non-empty regular file", local_path);
		goto cleanup;
	}
	if (file_sha256(s.fd, local_path, &stbuf, sha) < 0)
		goto cleanup;
	p = pool_open(conn, pool);
	if (!p)
		goto cleanup;
	/* Volumes put there by other means are seen after a refresh. */
	if (virStoragePoolRefresh(p, 0) < 0)
		log_warn("pool %s: refresh failed: %s", pool, lv_err());
	if (vol_lookup(p, pool, name, &v) < 0 ||
	    vol_lookup(p, pool, marker_name, &marker) < 0 ||
	    vol_lookup(p, pool, sum_name, &sumvol) < 0)
		goto cleanup;
	if (v && !marker) {
		r = base_is_current(conn, v, sumvol, pool, name, sum_name,
				    (uint64_t)stbuf.st_size, sha, why,
				    sizeof(why));
		if (r < 0)
			goto cleanup;
		if (r == 1)
			goto done;
		/*
		 * Not the image: truncated by a full pool (before uploads were
		 * verified), or another image of the same name. Replacing it
		 * under VMs whose overlays it backs would corrupt them.
		 */
		vpath = vol_path(v, pool, name);
		if (!vpath)
			goto cleanup;
		r = backed_by(p, pool, vpath, &example);
		if (r < 0)
			goto cleanup;
		if (r > 0) {
			err_set("pool %s: base volume %s is not the image %s (%s) "
				"and backs %d volume(s), e.g. %s: not replaced; "
				"give a changed image a new file name, or delete "
				"the volume once those VMs are gone", pool, name,
				local_path, why, r, example);
			goto cleanup;
		}
		log_warn("pool %s: base volume %s is not the image %s (%s): "
			 "uploading it again", pool, name, local_path, why);
	} else if (marker) {
		log_warn("pool %s: %s was being uploaded when that was "
			 "interrupted: uploading it again", pool, name);
	}
	if (v) {
		virStorageVolFree(v);
		v = NULL;
		if (vol_delete(p, pool, name) < 0)
			goto cleanup;
	}
	/* from here on, a failure leaves nothing behind */
	created = true;

	/* Room for it? (a pool that does not say is tried anyway) */
	avail = pool_available(p);
	if (avail < (uint64_t)stbuf.st_size) {
		err_set("pool %s: base image %s needs %jd bytes, the pool has "
			"%" PRIu64 " available", pool, local_path,
			(intmax_t)stbuf.st_size, avail);
		goto cleanup;
	}

	/*
	 * Upload: marker first, then the base volume and its data, read back
	 * and compared, then the checksum volume; the marker is deleted last.
	 */
	if (!marker) {
		xml = vol_xml(marker_name, 4096, "raw", NULL, NULL);
		marker = vol_create(p, pool, xml, marker_name);
		free(xml);
		xml = NULL;
		if (!marker)
			goto cleanup;
	}
	if (vol_delete(p, pool, sum_name) < 0)
		goto cleanup;
	t0 = util_now_ms();
	log_info("pool %s: uploading base image %s (%jd bytes)", pool,
		 local_path, (intmax_t)stbuf.st_size);
	xml = vol_xml(name, (uint64_t)stbuf.st_size, "raw", NULL, NULL);
	v = vol_create(p, pool, xml, name);
	if (!v)
		goto cleanup;
	r = gnutls_hash_init(&s.hash, GNUTLS_DIG_SHA256);
	if (r < 0) {
		err_set("SHA-256: %s", gnutls_strerror(r));
		goto cleanup;
	}
	r = upload(conn, v, pool, name, &s, (uint64_t)stbuf.st_size);
	gnutls_hash_deinit(s.hash, sent);
	s.hash = NULL;
	if (r < 0)
		goto cleanup;
	if (s.sent != (uint64_t)stbuf.st_size ||
	    memcmp(sent, sha, SHA256_LEN) != 0) {
		err_set("base image %s changed while it was uploaded to pool %s",
			local_path, pool);
		goto cleanup;
	}
	/* Let libvirt probe the uploaded bytes (qcow2 header, sizes). */
	if (virStoragePoolRefresh(p, 0) < 0)
		log_warn("pool %s: refresh failed: %s", pool, lv_err());
	virStorageVolFree(v);
	v = NULL;
	if (vol_lookup(p, pool, name, &v) < 0)
		goto cleanup;
	if (!v) {
		err_set("pool %s: volume %s vanished after its upload", pool, name);
		goto cleanup;
	}
	r = vol_matches(conn, v, pool, name, (uint64_t)stbuf.st_size, sha, why,
			sizeof(why));
	if (r < 0)
		goto cleanup;
	if (r == 0) {
		avail = pool_available(p);
		if (avail != UINT64_MAX)
			err_set("pool %s: upload of base image %s failed "
				"although libvirt reported success: %s (the "
				"pool has %" PRIu64 " bytes available: full?)",
				pool, local_path, why, avail);
		else
			err_set("pool %s: upload of base image %s failed "
				"although libvirt reported success: %s", pool,
				local_path, why);
		goto cleanup;
	}
	sum_text(sha, (uint64_t)stbuf.st_size, sumtxt, sizeof(sumtxt));
	if (volume_upload_bytes(conn, pool, sum_name, sumtxt, strlen(sumtxt),
				NULL) < 0)
		goto cleanup;
	if (virStorageVolDelete(marker, 0) < 0) {
		err_set("pool %s: deleting upload marker %s: %s", pool,
			marker_name, lv_err());
		goto cleanup;
	}
	created = false;
	log_info("pool %s: uploaded %s in %" PRId64 " ms (verified)", pool,
		 name, util_now_ms() - t0);
	if (uploaded)
		*uploaded = true;
done:
	*path_out = vol_path(v, pool, name);
	if (!*path_out)
		goto cleanup;
	if (format_out) {
		*format_out = vol_format(v);
		if (!*format_out)
			*format_out = xstrdup("raw");
	}
	rc = 0;
cleanup:
	if (rc < 0 && created) {
		/*
		 * A failed upload leaves nothing: the partial volume first, the
		 * marker last (if this fails too, the marker makes the next
		 * call start over).
		 */
		char *msg = xstrdup(err_msg());

		if (p && vol_delete(p, pool, name) == 0 &&
		    vol_delete(p, pool, sum_name) == 0 && marker &&
		    virStorageVolDelete(marker, 0) < 0)
			log_warn("pool %s: deleting upload marker %s: %s", pool,
				 marker_name, lv_err());
		err_set("%s", msg);
		free(msg);
	}
	if (s.hash)
		gnutls_hash_deinit(s.hash, sent);
	if (s.fd >= 0)
		close(s.fd);
	free(xml);
	free(marker_name);
	free(sum_name);
	free(vpath);
	free(example);
	virStorageVolFree(v);
	virStorageVolFree(marker);
	virStorageVolFree(sumvol);
	virStoragePoolFree(p);
	return rc;
}

int
volume_find(virConnectPtr conn, const char *pool, const char *name,
	    char **path_out, char **format_out)
{
	virStoragePoolPtr p;
	virStorageVolPtr v = NULL;
	int rc = -1;

	if (domxml_name_valid("volume name", name) < 0)
		return -1;
	p = pool_open(conn, pool);
	if (!p)
		return -1;
	if (virStoragePoolRefresh(p, 0) < 0)
		log_warn("pool %s: refresh failed: %s", pool, lv_err());
	if (vol_lookup(p, pool, name, &v) < 0)
		goto cleanup;
	if (!v) {
		rc = 0;
		goto cleanup;
	}
	*path_out = vol_path(v, pool, name);
	if (!*path_out)
		goto cleanup;
	if (format_out) {
		*format_out = vol_format(v);
		if (!*format_out)
			*format_out = xstrdup("raw");
	}
	rc = 1;
cleanup:
	virStorageVolFree(v);
	virStoragePoolFree(p);
	return rc;
}

int
volume_create_overlay(virConnectPtr conn, const char *pool, const char *name,
		      const char *backing_path, const char *backing_format,
		      uint64_t capacity, char **path_out)
{
	virStoragePoolPtr p = NULL;
	virStorageVolPtr v = NULL, base;
	char *xml = NULL;
	int rc = -1;

	if (domxml_name_valid("volume name", name) < 0 ||
	    domxml_name_valid("backing format", backing_format) < 0)
		return -1;
	p = pool_open(conn, pool);
	if (!p)
		goto cleanup;
	/* Never below the backing image's virtual size. */
	base = virStorageVolLookupByPath(conn, backing_path);
	if (base) {
		virStorageVolInfo info;

		if (virStorageVolGetInfo(base, &info) == 0 &&
		    info.capacity > capacity)
			capacity = info.capacity;
		virStorageVolFree(base);
	} else {
		virResetLastError();
		if (capacity == 0) {
			err_set("pool %s: overlay %s: backing %s is not a known "
				"volume and no capacity was given", pool, name,
				backing_path);
			goto cleanup;
		}
	}
	xml = vol_xml(name, capacity, "qcow2", backing_path, backing_format);
	v = vol_create(p, pool, xml, name);
	if (!v)
		goto cleanup;
	if (path_out) {
		*path_out = vol_path(v, pool, name);
		if (!*path_out)
			goto cleanup;
	}
	log_debug("pool %s: overlay %s on %s, %" PRIu64 " bytes", pool, name,
		  backing_path, capacity);
	rc = 0;
cleanup:
	free(xml);
	virStorageVolFree(v);
	virStoragePoolFree(p);
	return rc;
}

int
volume_upload_bytes(virConnectPtr conn, const char *pool, const char *name,
		    const void *data, size_t len, char **path_out)
{
	virStoragePoolPtr p = NULL;
	virStorageVolPtr v = NULL;
	struct src s = {.fd = -1, .mem = data, .len = len};
	char *xml = NULL;
	int rc = -1;

	if (domxml_name_valid("volume name", name) < 0)
		return -1;
	if (len == 0) {
		err_set("pool %s: volume %s: nothing to upload", pool, name);
		return -1;
	}
	p = pool_open(conn, pool);
	if (!p)
		goto cleanup;
	if (vol_delete(p, pool, name) < 0)
		goto cleanup;
	xml = vol_xml(name, len, "raw", NULL, NULL);
	v = vol_create(p, pool, xml, name);
	if (!v)
		goto cleanup;
	if (upload(conn, v, pool, name, &s, len) < 0) {
		virStorageVolDelete(v, 0);
		goto cleanup;
	}
	/* read back: libvirt may report success for a failed write */
	{
		struct sink k = {.want = data, .want_len = len};

		if (download(conn, v, pool, name, len, &k) < 0 || k.differs ||
		    k.got != len) {
			if (k.differs || k.got != len)
				err_set("pool %s: upload of volume %s failed "
					"although libvirt reported success "
					"(%" PRIu64 " of %zu bytes read back%s; "
					"is the pool full?)", pool, name,
					k.got, len,
					k.differs ? ", different" : "");
			virStorageVolDelete(v, 0);
			goto cleanup;
		}
	}
	if (path_out) {
		*path_out = vol_path(v, pool, name);
		if (!*path_out)
			goto cleanup;
	}
	rc = 0;
cleanup:
	free(xml);
	virStorageVolFree(v);
	virStoragePoolFree(p);
	return rc;
}
