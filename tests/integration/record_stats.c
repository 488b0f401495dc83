/*
 * record_stats: record bulk stats of real domains as a fixture for the
 * rate tests (tests/fixtures/stats/). Makes the collector's own bulk call
 * (COLLECT_STATS, COLLECT_FLAGS) ROUNDS times, INTERVAL_MS apart, and
 * prints the dump (statsdump.h) of the domains whose name starts with
 * PREFIX on stdout.
 *
 *   record_stats URI PREFIX ROUNDS INTERVAL_MS > fixture.txt
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "collect.h"
#include "statsdump.h"
#include "util.h"

int
main(int argc, char **argv)
{
	struct strbuf sb = STRBUF_INIT;
	virConnectPtr conn;
	long rounds, interval;

	if (argc != 5) {
		fprintf(stderr, "usage: record_stats URI PREFIX ROUNDS INTERVAL_MS\n");
		return 2;
	}
	rounds = atol(argv[3]);
	interval = atol(argv[4]);
	conn = virConnectOpen(argv[1]);
	if (!conn) {
		fprintf(stderr, "record_stats: %s\n", virGetLastErrorMessage());
		return 1;
	}
	strbuf_addf(&sb, "# recorded by tests/integration/record_stats from %s\n"
			 "# stats 0x%x flags 0x%x\n",
		    argv[1], (unsigned)COLLECT_STATS, (unsigned)COLLECT_FLAGS);
	for (long r = 0; r < rounds; r++) {
		virDomainStatsRecordPtr *recs = NULL;
		int64_t t0 = util_now_ms(), t1;
		int n = virConnectGetAllDomainStats(conn, COLLECT_STATS, &recs,
						    COLLECT_FLAGS);

		t1 = util_now_ms();
		if (n < 0) {
			fprintf(stderr, "record_stats: %s\n", virGetLastErrorMessage());
			return 1;
		}
		statsdump_add_round(&sb, t0 + (t1 - t0) / 2);
		for (int i = 0; i < n; i++) {
			const char *name = virDomainGetName(recs[i]->dom);
			char uuid[VIR_UUID_STRING_BUFLEN];
			struct collect_facts f;
			char *xml;

			if (strncmp(name, argv[2], strlen(argv[2])) != 0)
				continue;
			virDomainGetUUIDString(recs[i]->dom, uuid);
			xml = virDomainGetXMLDesc(recs[i]->dom, 0);
			if (!xml || collect_parse_domain_xml(xml, strlen(xml), &f, NULL) < 0) {
				fprintf(stderr, "record_stats: no XML for %s\n", name);
				return 1;
			}
			statsdump_add_domain(&sb, uuid, f.vcpus, name, recs[i]->params,
					     recs[i]->nparams);
			collect_facts_release(&f);
			free(xml);
		}
		virDomainStatsRecordListFree(recs);
		if (r + 1 < rounds) {
			struct timespec ts = {interval / 1000, (interval % 1000) * 1000000};
			nanosleep(&ts, NULL);
		}
	}
	fputs(strbuf_str(&sb), stdout);
	strbuf_release(&sb);
	virConnectClose(conn);
	return 0;
}
