/*
 * url.c: see url.h.
 */
#include "url.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
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

/* curl_url_set() or _get(); only out of memory fails on a checked URL. */
static void
url_part_ok(CURLUcode rc)
{
	if (rc != CURLUE_OK)
		fatal("libcurl URL API: %s", curl_url_strerror(rc));
}

int
url_endpoint(const char *base, const char *path, const char *name,
	     const char *value, const char *raw, char **full, char **shown)
{
	CURLU *u;
	char *bpath = NULL, *s = NULL;
	size_t n;

	if (url_check_http(base) != 0)
		return -1;
	u = curl_url();
	if (!u)
		fatal("out of memory");
	url_part_ok(curl_url_set(u, CURLUPART_URL, base, 0));
	url_part_ok(curl_url_set(u, CURLUPART_QUERY, NULL, 0));
	url_part_ok(curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0));
	url_part_ok(curl_url_get(u, CURLUPART_PATH, &bpath, 0));
	n = strlen(bpath);
	while (n && bpath[n - 1] == '/')
		n--;
	s = xasprintf("%.*s/%s", (int)n, bpath, path);
	url_part_ok(curl_url_set(u, CURLUPART_PATH, s, 0));
	free(s);
	s = xasprintf("%s=%s", name, value);
	url_part_ok(curl_url_set(u, CURLUPART_QUERY, s,
				 CURLU_APPENDQUERY | CURLU_URLENCODE));
	free(s);
	if (raw)
		url_part_ok(curl_url_set(u, CURLUPART_QUERY, raw,
					 CURLU_APPENDQUERY));
	url_part_ok(curl_url_get(u, CURLUPART_URL, &s, 0));
	*full = xstrdup(s);
	curl_free(s);

	url_part_ok(curl_url_set(u, CURLUPART_USER, NULL, 0));
	url_part_ok(curl_url_set(u, CURLUPART_PASSWORD, NULL, 0));
	url_part_ok(curl_url_set(u, CURLUPART_QUERY, NULL, 0));
	bpath[n] = '\0';
	url_part_ok(curl_url_set(u, CURLUPART_PATH, bpath, 0));
	url_part_ok(curl_url_get(u, CURLUPART_URL, &s, 0));
	n = strlen(s);
	if (n && s[n - 1] == '/')
		n--; /* curl writes "/" for an empty path */
	*shown = xstrndup(s, n);
	curl_free(s);
	curl_free(bpath);
	curl_url_cleanup(u);
	return 0;
}

static size_t
post_discard(char *ptr, size_t size, size_t nmemb, void *opaque)
{
	(void)ptr;
	(void)opaque;
	return size * nmemb;
}

struct post_stop {
	bool (*stop)(void *);
	void *arg;
};

static int
post_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c,
	      curl_off_t d)
{
	const struct post_stop *ps = arg;

	(void)a, (void)b, (void)c, (void)d;
	return ps->stop && ps->stop(ps->arg);
}

int
url_post(const char *url, const char *body, size_t len,
	 const char *const *headers, long timeout_ms, bool (*stop)(void *),
	 void *arg, char *why, size_t whylen)
{
	CURL *e = curl_easy_init();
	struct curl_slist *hdr = NULL;
	struct post_stop ps = {stop, arg};
	_Static_assert(URL_POST_WHY_MAX >= CURL_ERROR_SIZE, "room for libcurl's errors");
	char errbuf[CURL_ERROR_SIZE] = "";
	long code = 0;
	CURLcode rc;

	if (!e) {
		snprintf(why, whylen, "libcurl: cannot make a handle");
		return -1;
	}
	for (size_t i = 0; headers && headers[i]; i++)
		hdr = curl_slist_append(hdr, headers[i]);
	hdr = curl_slist_append(hdr, "Expect:");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, post_discard);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, post_progress);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, &ps);
	rc = curl_easy_perform(e);
	if (rc == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(e);
	curl_slist_free_all(hdr);
	if (rc != CURLE_OK) {
		snprintf(why, whylen, "%s",
			 errbuf[0] ? errbuf : curl_easy_strerror(rc));
		return -1;
	}
	if (code < 200 || code > 299) {
		snprintf(why, whylen, "answered HTTP %ld", code);
		return -1;
	}
	return 0;
}
