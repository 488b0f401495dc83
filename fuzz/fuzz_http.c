/*
 * Fuzz the HTTP API's parsers of guest and client input: phone-home form
 * bodies, JSON heartbeats and listen addresses (and the redaction of the
 * same text for logs). The first byte picks one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data + 1;
	size_t len = size ? size - 1 : 0;

	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0: {
		static const char *const fields[] = {"instance_id", "hostname",
						     "pub_key_ed25519", ""};

		for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
			free(http_form_get(body, len, fields[i]));
		break;
	}
	case 1: {
		struct http_heartbeat hb;

		memset(&hb, 0, sizeof(hb));
		http_heartbeat_parse(body, len, &hb);
		break;
	}
	default: {
		char *s = xstrndup(body, len);
		char *host = NULL;
		unsigned port;

		char out[64];

		if (http_listen_parse(s, &host, &port) == 0)
			free(host);
		http_redact(s, out, sizeof(out));
		if (strlen(out) >= sizeof(out))
			abort();
		free(s);
	}
	}
	return 0;
}
