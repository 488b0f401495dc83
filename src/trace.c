/*
 * trace.c: the simulator's load traces (see trace.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "log.h"
#include "trace.h"
#include "util.h"

int
trace_parse(const char *data, size_t len, const char *name,
	    struct trace *out)
{
	size_t cap = 0, n = 0, line = 0, pos = 0;
	uint32_t *v = NULL;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	while (pos < len) {
		const char *s = data + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - s) : len - pos;
		uint64_t x = 0;

		line++;
		pos += l + (nl ? 1 : 0);
		if (l > 0 && s[l - 1] == '\r')
			l--;
		if (l == 0) {
			err_set("%s:%zu: empty line (expected a non-negative "
				"integer: requests in that second)", name, line);
			goto cleanup;
		}
		for (size_t i = 0; i < l; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c < '0' || c > '9') {
				if (c == '-' && i == 0)
					err_set("%s:%zu: negative value '%.*s'",
						name, line, (int)(l > 40 ? 40 : l),
						s);
				else if (c >= 0x20 && c < 0x7f)
					err_set("%s:%zu: '%.*s' is not a "
						"non-negative integer", name,
						line, (int)(l > 40 ? 40 : l), s);
				else
					err_set("%s:%zu: unexpected byte 0x%02x "
						"(expected a non-negative "
						"integer)", name, line, c);
				goto cleanup;
			}
			x = x * 10 + (uint64_t)(c - '0');
			if (x > UINT32_MAX) {
				err_set("%s:%zu: value too large (at most "
					"4294967295 requests a second)", name,
					line);
				goto cleanup;
			}
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[n++] = (uint32_t)x;
	}
	if (n == 0) {
		err_set("%s: empty trace (expected one non-negative integer a "
			"line)", name);
		goto cleanup;
	}
	out->v = v;
	out->n = n;
	v = NULL;
	ret = 0;
cleanup:
	free(v);
	return ret;
}

int
trace_load(const char *path, struct trace *out)
{
	struct strbuf sb = STRBUF_INIT;
	gzFile gz = NULL;
	char buf[1 << 16];
	int ret = -1, r;

	memset(out, 0, sizeof(*out));
	/* gzread reads plain files as they are. */
	gz = gzopen(path, "rb");
	if (!gz) {
		err_set("%s: cannot open: %s", path,
			errno ? strerror(errno) : "out of memory");
		goto cleanup;
	}
	while ((r = gzread(gz, buf, sizeof(buf))) > 0) {
		if (sb.len + (size_t)r > TRACE_MAX_BYTES) {
			err_set("%s: larger than %zu MiB", path,
				TRACE_MAX_BYTES >> 20);
			goto cleanup;
		}
		strbuf_add(&sb, buf, (size_t)r);
	}
	{
		int zerr;
		const char *msg = gzerror(gz, &zerr);

		/* A truncated gzip stream ends with Z_BUF_ERROR, not r < 0. */
		if (r < 0 || (zerr != Z_OK && zerr != Z_STREAM_END)) {
			err_set("%s: cannot read: %s", path,
				zerr == Z_ERRNO ? strerror(errno)
				: zerr == Z_BUF_ERROR ? "truncated gzip data"
				: msg);
			goto cleanup;
		}
	}
	ret = trace_parse(strbuf_str(&sb), sb.len, path, out);
cleanup:
	if (gz)
		gzclose(gz);
	strbuf_release(&sb);
	return ret;
}

void
trace_release(struct trace *t)
{
	if (!t)
		return;
	free(t->v);
	t->v = NULL;
	t->n = 0;
}
