/*
 * trace.h: load traces for the simulator: one non-negative integer a
 * line (requests in that second, consecutive seconds), plain text or
 * gzip-compressed.
 */
#ifndef VA_TRACE_H
#define VA_TRACE_H

#include <stddef.h>
#include <stdint.h>

/* Files decompressing to more than this are refused. */
#define TRACE_MAX_BYTES ((size_t)1 << 30)

struct trace {
	uint32_t *v; /* v[i]: requests in second i; owned */
	size_t n;
};

/*
 * Parse text already in memory. Lines end with "\n" (a "\r" before it is
 * accepted); the last line may lack its newline. Every line must be a
 * decimal integer 0..4294967295 with nothing else on it. Returns 0, or -1
 * with err_set("NAME:LINE: what is wrong") for the first bad line; an
 * input without any line is an error too. On success the caller releases
 * out with trace_release().
 */
int trace_parse(const char *data, size_t len, const char *name,
		struct trace *out);

/* Read PATH (gzip or plain, detected by content) and parse it. */
int trace_load(const char *path, struct trace *out);

/* Free what t holds; t is left empty. */
void trace_release(struct trace *t);

#endif
