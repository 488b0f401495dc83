/*
 * Fuzz the stats dump loader (statsdump.c) and what consumes its output:
 * typed parameters -> raw samples (collect_parse_stats) -> rates between
 * successive rounds (rates_compute).
 */
#include <stddef.h>
#include <stdint.h>

#include "collect.h"
#include "rates.h"
#include "statsdump.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct statsdump d;
	struct rates_sample prev, cur;
	struct rates r;
	bool have_prev = false;

	if (statsdump_parse((const char *)data, size, &d) == 0) {
		for (size_t k = 0; k < d.n_rounds; k++) {
			for (size_t i = 0; i < d.rounds[k].n_doms; i++) {
				const struct statsdump_domain *dom = &d.rounds[k].doms[i];

				collect_parse_stats(dom->params, dom->nparams, &cur);
				cur.t_ms = d.rounds[k].t_ms;
				cur.vcpus = dom->vcpus;
				rates_compute(have_prev ? &prev : NULL, &cur, &r);
				prev = cur;
				have_prev = true;
			}
		}
	}
	statsdump_release(&d);
	return 0;
}
