/*
 * Fuzz the load-trace parser (trace_parse): any input either fails with
 * a FILE:LINE message or yields values that print back to text which
 * parses to the same values.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "trace.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace t, u;
	struct strbuf sb = STRBUF_INIT;

	if (trace_parse((const char *)data, size, "fuzz", &t) != 0) {
		if (strncmp(err_msg(), "fuzz:", 5) != 0)
			abort();
		return 0;
	}
	if (t.n == 0 || !t.v)
		abort();
	for (size_t i = 0; i < t.n; i++)
		strbuf_addf(&sb, "%u\n", (unsigned)t.v[i]);
	if (trace_parse(strbuf_str(&sb), sb.len, "again", &u) != 0)
		abort();
	if (u.n != t.n || memcmp(u.v, t.v, t.n * sizeof(*t.v)) != 0)
		abort();
	trace_release(&u);
	trace_release(&t);
	strbuf_release(&sb);
	return 0;
}
