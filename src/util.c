/*
 * util.c: see util.h.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

_Noreturn void
fatal(const char *fmt, ...)
{
	va_list ap;

	fputs("fatal: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

void *
xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (!p)
		fatal("out of memory allocating %zu bytes", size);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (!p)
		fatal("out of memory allocating %zu x %zu bytes", nmemb, size);
	return p;
}

/* The count before a counted block, aligned as malloc() aligns. */
union rc_head {
	int refs;
	max_align_t align;
};

void *
xrc_calloc(size_t nmemb, size_t size)
{
	union rc_head *h;

	if (size && nmemb > (SIZE_MAX - sizeof(*h)) / size)
		fatal("allocation overflow: %zu x %zu", nmemb, size);
	h = xcalloc(1, sizeof(*h) + (nmemb && size ? nmemb * size : 1));
	h->refs = 1;
	return h + 1;
}

void *
xrc_ref(void *p)
{
	if (p)
		__atomic_add_fetch(&((union rc_head *)p - 1)->refs, 1,
				   __ATOMIC_ACQ_REL);
	return p;
}

void
xrc_put(void *p)
{
	union rc_head *h = p ? (union rc_head *)p - 1 : NULL;

	if (h && __atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(h);
}

void *
xreallocarray(void *ptr, size_t nmemb, size_t size)
{
	void *p;

	if (size && nmemb > SIZE_MAX / size)
		fatal("allocation overflow: %zu x %zu", nmemb, size);
	p = realloc(ptr, (nmemb && size) ? nmemb * size : 1);
	if (!p)
		fatal("out of memory reallocating %zu x %zu bytes", nmemb, size);
	return p;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		fatal("out of memory duplicating a string");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (!p)
		fatal("out of memory duplicating a string");
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	return strbuf_detach(&sb);
}

static void
strbuf_grow(struct strbuf *sb, size_t extra)
{
	size_t need;

	if (extra > SIZE_MAX - sb->len - 1)
		fatal("string buffer overflow");
	need = sb->len + extra + 1;
	if (need <= sb->alloc)
		return;
	if (sb->alloc < 64)
		sb->alloc = 64;
	while (sb->alloc < need)
		sb->alloc = sb->alloc > SIZE_MAX / 2 ? need : sb->alloc * 2;
	sb->buf = xreallocarray(sb->buf, sb->alloc, 1);
}

void
strbuf_init(struct strbuf *sb)
{
	sb->buf = NULL;
	sb->len = 0;
	sb->alloc = 0;
}

void
strbuf_release(struct strbuf *sb)
{
	free(sb->buf);
	strbuf_init(sb);
}

char *
strbuf_detach(struct strbuf *sb)
{
	char *s;

	strbuf_grow(sb, 0);
	sb->buf[sb->len] = '\0'; /* a buffer never written to, too */
	s = sb->buf;
	strbuf_init(sb);
	return s;
}

void
strbuf_add(struct strbuf *sb, const void *data, size_t len)
{
	strbuf_grow(sb, len);
	memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
}

void
strbuf_adds(struct strbuf *sb, const char *s)
{
	strbuf_add(sb, s, strlen(s));
}

void
strbuf_addc(struct strbuf *sb, char c)
{
	strbuf_add(sb, &c, 1);
}

void
strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
{
	char small[256];
	va_list cp;
	int n;

	/* Most strings fit the stack buffer: format once. */
	va_copy(cp, ap);
	n = vsnprintf(small, sizeof(small), fmt, cp);
	va_end(cp);
	if (n < 0)
		fatal("bad format string");
	strbuf_grow(sb, (size_t)n);
	if ((size_t)n < sizeof(small))
		memcpy(sb->buf + sb->len, small, (size_t)n + 1);
	else
		vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
}

void
strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(sb, fmt, ap);
	va_end(ap);
}

void
strbuf_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

const char *
strbuf_str(const struct strbuf *sb)
{
	return sb->buf ? sb->buf : "";
}

static int64_t
clock_ms(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) != 0)
		fatal("clock_gettime: %s", strerror(errno));
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
util_now_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int64_t
util_now_us(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		fatal("clock_gettime: %s", strerror(errno));
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
util_wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

void
util_mono_deadline(int64_t ms, struct timespec *out)
{
	clock_gettime(CLOCK_MONOTONIC, out);
	out->tv_sec += ms / 1000;
	out->tv_nsec += (ms % 1000) * 1000000;
	if (out->tv_nsec >= 1000000000) {
		out->tv_sec++;
		out->tv_nsec -= 1000000000;
	}
}

/* Parse an unsigned decimal (digits only); returns chars consumed or 0. */
static size_t
parse_digits(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	while (s[i] >= '0' && s[i] <= '9') {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return (size_t)-1;
		v = v * 10 + d;
		i++;
	}
	*out = v;
	return i;
}

int
util_parse_duration_ms(const char *s, int64_t *out)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {
		{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
		{"d", 86400000},
	};
	const char *p = s;
	int64_t total = 0;

	if (!*p) {
		err_set("empty duration; write it like 30s, 5m or 1h");
		return -1;
	}
	while (*p) {
		uint64_t n;
		size_t len = parse_digits(p, &n);
		size_t best = 0, ulen = 0;

		if (len == (size_t)-1) {
			err_set("duration '%s' is too large", s);
			return -1;
		}
		if (len == 0) {
			err_set("'%s' is not a duration; write it like 30s, 5m or 1h",
				s);
			return -1;
		}
		p += len;
		for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
			size_t l = strlen(units[i].unit);

			if (strncmp(p, units[i].unit, l) == 0 && l > ulen) {
				/* "m" must not swallow the "m" of "ms" */
				best = i;
				ulen = l;
			}
		}
		if (ulen == 0) {
			err_set("'%s' is not a duration: a unit (ms, s, m, h, d) must follow each number",
				s);
			return -1;
		}
		if (n > (uint64_t)(INT64_MAX - total) / (uint64_t)units[best].ms) {
			err_set("duration '%s' is too large", s);
			return -1;
		}
		total += (int64_t)n * units[best].ms;
		p += ulen;
	}
	*out = total;
	return 0;
}

int
util_parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {
		{"", 1}, {"B", 1},
		{"KiB", 1ULL << 10}, {"MiB", 1ULL << 20},
		{"GiB", 1ULL << 30}, {"TiB", 1ULL << 40},
		{"KB", 1000ULL}, {"MB", 1000000ULL},
		{"GB", 1000000000ULL}, {"TB", 1000000000000ULL},
		{"K", 1ULL << 10}, {"M", 1ULL << 20}, {"G", 1ULL << 30},
		{"T", 1ULL << 40},
	};
	uint64_t n;
	size_t len = parse_digits(s, &n);

	if (len == (size_t)-1) {
		err_set("size '%s' is too large", s);
		return -1;
	}
	if (len == 0) {
		err_set("'%s' is not a size; write it like 512MiB or 20GiB", s);
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(s + len, units[i].unit) == 0) {
			if (n > UINT64_MAX / units[i].mult) {
				err_set("size '%s' is too large", s);
				return -1;
			}
			*out = n * units[i].mult;
			return 0;
		}
	}
	err_set("'%s' is not a size: unknown unit '%s' (use B, KiB, MiB, GiB, TiB)",
		s, s + len);
	return -1;
}

int
util_parse_percent(const char *s, double *out)
{
	char *end;
	double v;
	size_t len = strlen(s);

	if (len < 2 || s[len - 1] != '%' || !((s[0] >= '0' && s[0] <= '9') ||
					      s[0] == '.')) {
		err_set("'%s' is not a percentage; write it like 60%%", s);
		return -1;
	}
	errno = 0;
	v = strtod(s, &end);
	if (errno || end != s + len - 1 || !isfinite(v)) {
		err_set("'%s' is not a percentage; write it like 60%%", s);
		return -1;
	}
	*out = v;
	return 0;
}

int
util_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno == ERANGE || (s[0] == ' ') ||
	    (s[0] == '\t')) {
		err_set("'%s' is not a whole number", s);
		return -1;
	}
	if (v < min || v > max) {
		err_set("%lld is out of range (%" PRId64 " to %" PRId64 ")", v,
			min, max);
		return -1;
	}
	*out = v;
	return 0;
}

char *
util_format_duration(int64_t ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {
		{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000},
		{"ms", 1},
	};
	struct strbuf sb = STRBUF_INIT;

	if (ms <= 0)
		return xstrdup("0s");
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (ms >= units[i].ms) {
			strbuf_addf(&sb, "%" PRId64 "%s", ms / units[i].ms,
				    units[i].unit);
			ms %= units[i].ms;
		}
	}
	return strbuf_detach(&sb);
}

char *
util_format_size(uint64_t bytes)
{
	static const char *const units[] = {"TiB", "GiB", "MiB", "KiB"};

	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		uint64_t mult = 1ULL << (10 * (4 - i));

		if (bytes && bytes % mult == 0)
			return xasprintf("%" PRIu64 "%s", bytes / mult, units[i]);
	}
	return xasprintf("%" PRIu64 "B", bytes);
}

char *
util_format_percent(double pct)
{
	return xasprintf("%g%%", pct);
}

uint64_t
util_str_hash(const char *s)
{
	uint64_t h = 14695981039346656037ull; /* FNV's offset basis */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

bool
util_secret_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const volatile unsigned char *x = a;
	const volatile unsigned char *y = b;
	unsigned char diff = alen != blen;
	size_t n = alen < blen ? alen : blen;

	/* Always walk the shorter length in full; never exit early. */
	for (size_t i = 0; i < n; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

char *
util_read_file(const char *path, size_t max, size_t *len_out)
{
	struct strbuf sb = STRBUF_INIT;
	struct stat st;
	char chunk[65536];
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err_set("%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		err_set("%s: is a directory, not a file", path);
		close(fd);
		return NULL;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err_set("%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		if (sb.len + (size_t)n > max) {
			err_set("%s: larger than %zu bytes", path, max);
			goto fail;
		}
		strbuf_add(&sb, chunk, (size_t)n);
	}
	close(fd);
	if (len_out)
		*len_out = sb.len;
	return strbuf_detach(&sb);
fail:
	close(fd);
	strbuf_release(&sb);
	return NULL;
}

/* "xxxxxxxx-xxxx-..." (36 characters, any case) into 16 bytes. */
int
util_uuid_parse(const char *s, unsigned char out[16])
{
	/* hex digit values + 1 (0: not a digit); the loop parses every
	 * instance's id at every decision (5,000 at a time) */
	static const unsigned char hex[256] = {
		['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5,
		['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
		['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15,
		['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14,
		['E'] = 15, ['F'] = 16,
	};
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0, k = 0; i < 36; i += 2, k++) {
		unsigned char hi, lo;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (p[i] != '-')
				return -1;
			i++;
		}
		hi = hex[p[i]];
		if (!hi)
			return -1; /* also the NUL of a short string */
		lo = hex[p[i + 1]];
		if (!lo)
			return -1;
		out[k] = (unsigned char)(((hi - 1) << 4) | (lo - 1));
	}
	return p[36] == '\0' ? 0 : -1;
}
