/*
 * weighted.c: an example placement plugin for virt-autoscaler.
 *
 * Strategy "weighted": every host has a weight (placement_options
 * `weight.<host>: N`, N a whole number 0..1000; `default_weight: N` for the
 * hosts not named, default 1). A VM goes to the host with the highest
 * weight / (VMs of the group on it + 1), so the group's VMs end up on the
 * hosts in proportion to their weights. Ties go to the host whose name
 * sorts first. A host of weight 0 is never chosen; when all offered hosts
 * weigh 0 the plugin refuses.
 *
 *   groups:
 *     web:
 *       placement: plugin:/usr/lib/virt-autoscaler/va-weighted.so
 *       placement_options: { weight.kvm1: "3", weight.kvm2: "1" }
 *
 * It includes only placement_plugin.h and the C library, as any plugin must.
 * Build: cc -shared -fPIC -I/path/to/virt-autoscaler/src -o va-weighted.so
 *        weighted.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "placement_plugin.h"

struct weight {
	char *host;
	long weight;
};

struct state {
	struct weight *w;
	size_t n;
	long default_weight;
};

static int
parse_weight(const char *key, const char *s, long *out, char *err, size_t errlen)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!s[0] || *end || v < 0 || v > 1000) {
		snprintf(err, errlen, "%s: '%s' is not a whole number 0..1000",
			 key, s);
		return -1;
	}
	*out = v;
	return 0;
}

static void
weighted_free(void *p)
{
	struct state *st = p;

	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++)
		free(st->w[i].host);
	free(st->w);
	free(st);
}

static int
weighted_init(const struct va_placement_option *opt, size_t n, void **out,
	      char *err, size_t errlen)
{
	struct state *st = calloc(1, sizeof(*st));

	if (!st || !(st->w = calloc(n ? n : 1, sizeof(*st->w)))) {
		snprintf(err, errlen, "out of memory");
		free(st);
		return -1;
	}
	st->default_weight = 1;
	for (size_t i = 0; i < n; i++) {
		const char *k = opt[i].key;

		if (strcmp(k, "default_weight") == 0) {
			if (parse_weight(k, opt[i].value, &st->default_weight,
					 err, errlen) < 0)
				goto fail;
		} else if (strncmp(k, "weight.", 7) == 0 && k[7]) {
			struct weight *w = &st->w[st->n];

			if (parse_weight(k, opt[i].value, &w->weight, err,
					 errlen) < 0)
				goto fail;
			w->host = strdup(k + 7);
			if (!w->host) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			st->n++;
		} else {
			snprintf(err, errlen, "unknown option '%s' (weight.<host>, "
				 "default_weight)", k);
			goto fail;
		}
	}
	*out = st;
	return 0;
fail:
	weighted_free(st);
	return -1;
}

static long
weight_of(const struct state *st, const char *host)
{
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->w[i].host, host) == 0)
			return st->w[i].weight;
	return st->default_weight;
}

static int
weighted_choose(void *p, const struct va_placement_request *req,
		const struct va_placement_host *hosts, size_t n, char *err,
		size_t errlen)
{
	const struct state *st = p;
	int best = -1;
	double best_score = 0;

	(void)req;
	for (size_t i = 0; i < n; i++) {
		long w = weight_of(st, hosts[i].name);
		double score = (double)w / (hosts[i].group_instances + 1.0);

		if (w == 0)
			continue;
		if (best < 0 || score > best_score ||
		    (score == best_score &&
		     strcmp(hosts[i].name, hosts[best].name) < 0)) {
			best = (int)i;
			best_score = score;
		}
	}
	if (best < 0)
		snprintf(err, errlen, "every offered host has weight 0");
	return best;
}

const struct va_placement_plugin va_placement_plugin = {
	.abi_version = VA_PLACEMENT_ABI_VERSION,
	.name = "weighted",
	.init = weighted_init,
	.choose = weighted_choose,
	.free = weighted_free,
};
