/*
 * statsdump.h: a text dump of virConnectGetAllDomainStats results, used
 * to record real domains' statistics as test fixtures
 * (tests/fixtures/stats/) and to load them back as typed parameters, so
 * that the rate code is tested on what libvirt really returns.
 *
 * Format (one item per line; '#' starts a comment line):
 *   round T_MS                         a bulk call made at monotonic T_MS
 *   domain UUID VCPUS NAME             a record of that round
 *   FIELD TYPE VALUE                   a typed parameter of that record
 * TYPE is int, uint, llong, ullong, double, boolean or string; a string
 * VALUE is the rest of the line. Example:
 *   round 1000
 *   domain 3f0c...-... 2 web-1
 *   state.state int 1
 *   cpu.time ullong 21063634000
 *   block.0.name string vda
 */
#ifndef VA_STATSDUMP_H
#define VA_STATSDUMP_H

#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "util.h"

struct statsdump_domain {
	char uuid[VIR_UUID_STRING_BUFLEN];
	unsigned vcpus;
	char *name;
	virTypedParameterPtr params; /* strings owned */
	int nparams;
};

struct statsdump_round {
	int64_t t_ms;
	struct statsdump_domain *doms;
	size_t n_doms;
};

struct statsdump {
	struct statsdump_round *rounds;
	size_t n_rounds;
};

/*
 * Parse a dump (outside input: fuzzed). Returns 0, or -1 with err_set()
 * naming the line and the problem. Release with statsdump_release() in
 * both cases.
 */
int statsdump_parse(const char *text, size_t len, struct statsdump *out);
void statsdump_release(struct statsdump *d);

void statsdump_add_round(struct strbuf *sb, int64_t t_ms);
void statsdump_add_domain(struct strbuf *sb, const char *uuid, unsigned vcpus,
			  const char *name, const virTypedParameter *params,
			  int nparams);

#endif
