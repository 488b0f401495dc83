/*
 * plugin_badabi.c: a placement plugin built for an ABI version this
 * virt-autoscaler does not speak; test_place checks it is refused clearly.
 */
#include <stddef.h>

#include "placement_plugin.h"

static int
never(void *state, const struct va_placement_request *req,
      const struct va_placement_host *hosts, size_t n, char *err,
      size_t errlen)
{
	return 0;
}

const struct va_placement_plugin va_placement_plugin = {
	.abi_version = 999,
	.name = "badabi",
	.choose = never,
};
