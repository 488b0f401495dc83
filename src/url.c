/*
 * url.c: see url.h.
 */
#include "url.h"

#include <curl/curl.h>
#include <string.h>

#include "log.h"
#include "util.h"

int
url_check_http(const char *s)
{
	const char *rest = NULL;
	char *zone = NULL;
	CURLU *u;
	CURLUcode rc;

	/*
	 * curl_url() also takes "HTTP://h", "http:/h" and "http:///h", all
	 * as http://h/. Refused here, before it: the URL is used as written
	 * (in the guests' seed, in messages), so it must be written plainly.
	 */
	if (strncmp(s, "http://", 7) == 0)
		rest = s + 7;
	else if (strncmp(s, "https://", 8) == 0)
		rest = s + 8;
	if (!rest) {
		err_set("'%s' is not an http:// or https:// URL", s);
		return -1;
	}
	if (*rest == '\0' || *rest == '/') {
		err_set("'%s': no host after '%.*s'", s, (int)(rest - s), s);
		return -1;
	}
	u = curl_url();
	if (!u)
		fatal("out of memory");
	rc = curl_url_set(u, CURLUPART_URL, s, 0);
	/*
	 * An IPv6 zone is unreserved characters (RFC 6874). libcurl 7.88
	 * takes others: "[fe80::1%@x]" it writes back as "%25@x", which it
	 * then refuses or reads another host out of.
	 */
	if (rc == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK &&
	    strspn(zone, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789-._~") != strlen(zone))
		rc = CURLUE_BAD_IPV6;
	curl_free(zone);
	curl_url_cleanup(u);
	if (rc != CURLUE_OK) {
		err_set("'%s' is not a valid URL: %s", s,
			curl_url_strerror(rc));
		return -1;
	}
	return 0;
}

/*
 * Written by hand: curl_url_get(CURLUPART_URL) always adds a path ("/"),
 * which would change public_url as `check` prints it and every URL
 * built on it, and curl_url_set(CURLUPART_HOST) wants the brackets
 * around an IPv6 address anyway.
 */
char *
url_from_host_port(const char *scheme, const char *host, int port)
{
	if (strchr(host, ':'))
		return xasprintf("%s://[%s]:%d", scheme, host, port);
	return xasprintf("%s://%s:%d", scheme, host, port);
}
