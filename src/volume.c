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

#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "domxml.h"
#include "log.h"
#include "util.h"

LOG_TAG("volume");

#define MARKER_SUFFIX ".va-uploading"

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

/* Stream sources: a file descriptor, or a memory buffer. */
struct src {
	int fd;
	const unsigned char *mem;
	size_t len, off;
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

		if (n >= 0)
			return (int)n;
		if (errno != EINTR)
			return -1;
	}
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

static int
ensure_base_locked(virConnectPtr conn, const char *pool, const char *local_path,
		   const char *name, char **path_out, char **format_out,
		   bool *uploaded)
{
	virStoragePoolPtr p = NULL;
	virStorageVolPtr v = NULL, marker = NULL;
	char *marker_name = NULL, *xml = NULL;
	struct src s = {.fd = -1};
	struct stat stbuf;
	int64_t t0;
	int rc = -1;

	marker_name = xasprintf("%s" MARKER_SUFFIX, name);
	p = pool_open(conn, pool);
	if (!p)
		goto cleanup;
	/* Volumes put there by other means are seen after a refresh. */
	if (virStoragePoolRefresh(p, 0) < 0)
		log_warn("pool %s: refresh failed: %s", pool, lv_err());
	if (vol_lookup(p, pool, name, &v) < 0 ||
	    vol_lookup(p, pool, marker_name, &marker) < 0)
		goto cleanup;
	if (v && !marker)
		goto done; /* complete */
	if (marker) {
		log_warn("pool %s: %s was being uploaded when that was "
			 "interrupted: uploading it again", pool, name);
		virStorageVolFree(v);
		v = NULL;
		if (vol_delete(p, pool, name) < 0)
			goto cleanup;
	}

	/* Upload: marker first, base volume, data, marker deleted last. */
	s.fd = open(local_path, O_RDONLY | O_CLOEXEC);
	if (s.fd < 0 || fstat(s.fd, &stbuf) < 0) {
		err_set("base image %s: %s", local_path, strerror(errno));
		goto cleanup;
	}
	if (!S_ISREG(stbuf.st_mode) || stbuf.st_size == 0) {
		err_set("base image %s is not a non-empty regular file", local_path);
		goto cleanup;
	}
	if (!marker) {
		xml = vol_xml(marker_name, 4096, "raw", NULL, NULL);
		marker = vol_create(p, pool, xml, marker_name);
		free(xml);
		xml = NULL;
		if (!marker)
			goto cleanup;
	}
	t0 = util_now_ms();
	log_info("pool %s: uploading base image %s (%jd bytes)", pool,
		 local_path, (intmax_t)stbuf.st_size);
	xml = vol_xml(name, (uint64_t)stbuf.st_size, "raw", NULL, NULL);
	v = vol_create(p, pool, xml, name);
	if (!v)
		goto cleanup;
	if (upload(conn, v, pool, name, &s, (uint64_t)stbuf.st_size) < 0) {
		/* leave the marker: the next call cleans up */
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
	if (virStorageVolDelete(marker, 0) < 0) {
		err_set("pool %s: deleting upload marker %s: %s", pool,
			marker_name, lv_err());
		goto cleanup;
	}
	log_info("pool %s: uploaded %s in %" PRId64 " ms", pool, name,
		 util_now_ms() - t0);
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
	if (s.fd >= 0)
		close(s.fd);
	free(xml);
	free(marker_name);
	virStorageVolFree(v);
	virStorageVolFree(marker);
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
