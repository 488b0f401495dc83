/*
 * Fuzz the domain XML reader of the collector (collect_parse_domain_xml):
 * our <va:instance> metadata, vCPUs, memory and disks.
 */
#include <stddef.h>
#include <stdint.h>

#include "collect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct collect_facts f;
	const char *why;

	if (collect_parse_domain_xml((const char *)data, size, &f, &why) == 0)
		collect_facts_release(&f);
	return 0;
}
