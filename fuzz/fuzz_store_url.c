/*
 * Fuzz the state-store URL parsers (daemon.state) through store_url_check(),
 * which parses like store_open() but creates no file and connects nowhere.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url;

	if (size > 8192)
		return 0;
	url = xmalloc(size + 1);
	memcpy(url, data, size);
	url[size] = '\0';
	(void)store_url_check(url);
	free(url);
	return 0;
}
