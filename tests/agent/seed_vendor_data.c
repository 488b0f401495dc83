/*
 * seed_vendor_data: print the vendor-data src/seed.c writes for one
 * instance, for tests/agent/agent_test.py.
 *
 *   seed_vendor_data PUBLIC_URL INSTANCE_ID SECRET INTERVAL [no-agent]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "seed.h"

int
main(int argc, char **argv)
{
	struct seed_spec spec = {0};
	char *v;

	if (argc < 5) {
		fprintf(stderr, "usage: seed_vendor_data PUBLIC_URL ID SECRET "
				"INTERVAL [no-agent]\n");
		return 2;
	}
	spec.public_url = argv[1];
	spec.instance_id = argv[2];
	spec.hostname = "h";
	spec.secret = argv[3];
	spec.heartbeat_interval = (unsigned)strtoul(argv[4], NULL, 10);
	spec.no_agent = argc > 5 && strcmp(argv[5], "no-agent") == 0;
	v = seed_vendor_data(&spec);
	if (!v) {
		fprintf(stderr, "seed_vendor_data: %s\n", err_msg());
		return 1;
	}
	fputs(v, stdout);
	free(v);
	return 0;
}
