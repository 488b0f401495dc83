/*
 * util.h: memory helpers that never return NULL, a growable string buffer,
 * clocks, and parsers for values written the way people write them
 * (durations "90s", sizes "512MiB", percentages "60%").
 */
#ifndef VA_UTIL_H
#define VA_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Print a message and abort: broken invariants and out-of-memory only. */
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Allocation that aborts on failure; the caller frees with free(). */
void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Counted memory, for tables one thread builds and others then only read
 * (the loop's ready table and members' addresses, carried by every
 * snapshot it publishes, control.h). xrc_calloc() returns zeroed room
 * for nmemb x size (at least one byte) holding one reference;
 * xrc_ref() adds one and returns p; xrc_put() drops one and frees on the
 * last. The count is atomic; both accept NULL. Never free() such a block.
 */
void *xrc_calloc(size_t nmemb, size_t size);
void *xrc_ref(void *p);
void xrc_put(void *p);

/*
 * Growable NUL-terminated buffer (git's strbuf). STRBUF_INIT or
 * strbuf_init(); strbuf_release() frees the contents; strbuf_detach()
 * hands the string to the caller (who frees it) and resets the buffer.
 */
struct strbuf {
	char *buf;
	size_t len;
	size_t alloc;
};
#define STRBUF_INIT {NULL, 0, 0}
void strbuf_init(struct strbuf *sb);
void strbuf_release(struct strbuf *sb);
char *strbuf_detach(struct strbuf *sb);
void strbuf_add(struct strbuf *sb, const void *data, size_t len);
void strbuf_adds(struct strbuf *sb, const char *s);
void strbuf_addc(struct strbuf *sb, char c);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
void strbuf_reset(struct strbuf *sb);
/* Always a valid string, "" when empty. */
const char *strbuf_str(const struct strbuf *sb);

/* Monotonic and wall clocks in milliseconds. */
int64_t util_now_ms(void);
int64_t util_now_us(void);
int64_t util_wall_ms(void);
/* CLOCK_MONOTONIC now + ms, for pthread_cond_timedwait() on a condition
 * whose clock attribute is CLOCK_MONOTONIC. */
struct timespec;
void util_mono_deadline(int64_t ms, struct timespec *out);

/*
 * Parsers. Each returns 0 and stores the value, or -1 with err_set()
 * saying what is wrong with the text.
 *   duration: "250ms", "90s", "5m", "1h", "2d", combined "1h30m";
 *             a bare number is rejected (units are required)
 *   size:     "512", "512B", "64KiB", "1MiB", "20GiB", "1TiB", and the
 *             decimal "1KB/MB/GB/TB" (powers of 1000)
 *   percent:  "60%", "12.5%"; stores 60.0, 12.5
 * Overflow and negative values are rejected.
 */
int util_parse_duration_ms(const char *s, int64_t *out);
int util_parse_size(const char *s, uint64_t *out);
int util_parse_percent(const char *s, double *out);
/* Whole decimal number with optional sign, range checked. */
int util_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);
/* A UUID "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (36 characters, either
 * case) into its 16 bytes. 0, or -1 when s is not one. */
int util_uuid_parse(const char *s, unsigned char out[16]);

/* Format back the way people write them ("5m", "1GiB", "60%"). Caller frees. */
char *util_format_duration(int64_t ms);
char *util_format_size(uint64_t bytes);
char *util_format_percent(double pct);

/* FNV-1a over a string: a cheap key for caches (not against attackers). */
uint64_t util_str_hash(const char *s);

/* Compare secrets without leaking where they differ; lengths may differ. */
bool util_secret_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Read a whole file (at most max bytes); caller frees. NULL + err_set(). */
char *util_read_file(const char *path, size_t max, size_t *len_out);

#endif
