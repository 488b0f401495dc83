/*
 * Fuzz the reading of Prometheus' answers to an instant query (the
 * external metric source, promsrc.c): promsrc_parse() on arbitrary
 * bytes. It must never crash, must say why when it refuses, and what it
 * accepts must be a value the policy may use: finite, 0..1e12.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "log.h"
#include "policy.h"
#include "promsrc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[PROMSRC_WHY_MAX];
	double v = -1;

	if (promsrc_parse((const char *)data, size, &v, why, sizeof(why)) == 0) {
		if (!isfinite(v) || v < 0 || v > POLICY_APP_VALUE_MAX)
			fatal("promsrc_parse accepted the value %g", v);
	} else {
		if (!why[0] || strlen(why) >= sizeof(why))
			fatal("promsrc_parse refused without saying why");
		for (const char *p = why; *p; p++)
			if ((unsigned char)*p < 0x20)
				fatal("a control character in '%s'", why);
	}
	return 0;
}
