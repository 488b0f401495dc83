/*
 * Fuzz the parsers of outside XML in domxml.c: a user's domain XML
 * template filled for a fixed VM (domxml_from_template), and our metadata
 * read back from libvirt (domxml_meta_parse). Every template that is
 * accepted must produce XML that parses again and carries our metadata
 * (with our owner id, whatever stale metadata the template held).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domxml.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct domxml_spec spec = {
		.name = "fz-1", .type = DOMXML_TYPE_QEMU, .vcpus = 1,
		.memory = 64u << 20,
		.disk = {.pool = "p", .volume = "fz-1.qcow2"},
		.seed = {.pool = "p", .volume = "fz-1-seed.iso"},
		.net = DOMXML_NET_USER, .group = "g", .instance_id = "fz-1",
		.generation = 1, .owner = "7f0c9a51-3c1e-4d2b-8a6f-0e1d2c3b4a59"};
	struct domxml_meta m;
	char *xml = NULL;

	if (domxml_from_template((const char *)data, size, "fuzz", &spec,
				 &xml) == 0) {
		if (domxml_meta_parse(xml, strlen(xml), &m) != 0 ||
		    strcmp(m.id, "fz-1") != 0 || strcmp(m.owner, spec.owner) != 0)
			abort();
		free(xml);
	}
	(void)domxml_meta_parse((const char *)data, size, &m);
	return 0;
}
