/*
 * fuzz_config.c: autoscale.yaml parser (config_parse_buffer) on arbitrary
 * bytes. A parse that succeeds is also printed and parsed again: the
 * printed form must parse, and print identically (the round trip `check`
 * promises).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strbuf errors = STRBUF_INIT, a = STRBUF_INIT, b = STRBUF_INIT;
	struct config *cfg, *again;

	log_set_level(LOG_LEVEL_ERROR);
	cfg = config_parse_buffer((const char *)data, size, "fuzz.yaml",
				  &errors);
	if (!cfg) {
		if (errors.len == 0)
			fatal("config rejected without a message");
		goto cleanup;
	}
	config_print(cfg, &a);
	again = config_parse_buffer(a.buf, a.len, "printed.yaml", &errors);
	if (!again)
		fatal("printed config does not parse:\n%s\n--- printed:\n%s",
		      strbuf_str(&errors), a.buf);
	config_print(again, &b);
	if (strcmp(a.buf, b.buf) != 0)
		fatal("round trip differs:\n%s\n--- second:\n%s", a.buf, b.buf);
	config_free(again);
cleanup:
	config_free(cfg);
	strbuf_release(&errors);
	strbuf_release(&a);
	strbuf_release(&b);
	return 0;
}
