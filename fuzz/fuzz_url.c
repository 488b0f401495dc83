/*
 * Fuzz the reading of http:// and https:// URLs from outside (the
 * configuration's public_url and influxdb.url, --url): url_check_http()
 * on arbitrary bytes. A URL it accepts must be usable by everything that
 * builds on it: influx_urls() (which treats any libcurl URL API failure
 * on a checked URL as a broken invariant) and, when its bytes pass the
 * seed's rules too, seed_checkin_url() whose result is checked again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "influx.h"
#include "log.h"
#include "seed.h"
#include "url.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xstrndup((const char *)data, size);
	char *w = NULL, *shown = NULL, *u;

	if (url_check_http(s) != 0)
		goto cleanup;
	if (influx_urls(s, "va", &w, &shown) != 0)
		fatal("checked URL '%s' refused by influx_urls: %s", s,
		      err_msg());
	if (url_check_http(w) != 0 || url_check_http(shown) != 0)
		fatal("influx_urls('%s') gave '%s', '%s': %s", s, w, shown,
		      err_msg());
	u = seed_checkin_url(s, "i-1", "secret");
	if (u && url_check_http(u) != 0)
		fatal("check-in URL '%s' of '%s' refused: %s", u, s, err_msg());
	free(u);
cleanup:
	free(w);
	free(shown);
	free(s);
	return 0;
}
