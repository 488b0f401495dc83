/*
 * Fuzz the stored template reader (template_parse: a row of the state
 * store's group_templates, outside input): any input either fails with a
 * message or yields a template whose body reads back to the same body.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "template.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_group gc;
	struct template_copy a, b;
	char *text, *body, *again;

	memset(&gc, 0, sizeof(gc));
	gc.name = (char *)"web";
	text = xmalloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	if (template_parse(text, &gc, &a) != 0) {
		if (!*err_msg())
			abort();
		free(text);
		return 0;
	}
	body = template_body(&a.gc, &a.files);
	if (template_parse(body, &gc, &b) != 0)
		abort();
	again = template_body(&b.gc, &b.files);
	if (strcmp(body, again) != 0)
		abort();
	free(again);
	free(body);
	template_copy_release(&a);
	template_copy_release(&b);
	free(text);
	return 0;
}
