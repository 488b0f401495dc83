/*
 * url.h: the http:// and https:// URLs virt-autoscaler is given
 * (daemon.public_url, influxdb.url, --url) read by libcurl's URL parser
 * (curl_url_*), and the ones it writes from a host and a port.
 */
#ifndef VA_URL_H
#define VA_URL_H

/*
 * 0 if s is an absolute http:// or https:// URL with a host, as libcurl
 * reads it: a host name or address (IPv6 in brackets), a port of 0-65535
 * if any, no spaces or control characters anywhere; user info, a path,
 * a query and a fragment are allowed. The scheme must be written in lower
 * case and followed by "//" and the host. -1 with err_set() quoting s and
 * saying what is wrong otherwise.
 */
int url_check_http(const char *s);

/*
 * "SCHEME://HOST:PORT" with an IPv6 host in brackets, and no path.
 * Caller frees.
 */
char *url_from_host_port(const char *scheme, const char *host, int port);

/*
 * The URL of an endpoint under a service's base URL (InfluxDB's /write,
 * Prometheus' /api/v1/query): base's path (trailing slashes dropped) +
 * "/" + path, its own query and fragment replaced by NAME=VALUE (VALUE
 * URL-encoded) and then raw, if not NULL, as given. *shown: base without
 * user info (a password may be in it), query or trailing slash, for
 * messages. 0 (both caller-freed), or -1 with err_set() when base is not
 * an http(s) URL (url_check_http()).
 */
int url_endpoint(const char *base, const char *path, const char *name,
		 const char *value, const char *raw, char **full, char **shown);

/*
 * One HTTP POST of body (len bytes; "" and 0 for an empty one) to url,
 * http:// or https:// only (certificates verified), with the extra
 * header lines of headers (NULL-terminated; may be NULL), the connection
 * and the whole exchange each bounded by timeout_ms; the answer's body is
 * discarded. stop(arg), when stop is not NULL, is asked while it runs:
 * true abandons the transfer. 0 on a 2xx answer; -1 with why filled
 * (libcurl's error, or "answered HTTP N"). Any thread (libcurl's global
 * setup done).
 */
#include <stdbool.h>
#include <stddef.h>

/* Room enough for url_post()'s why (libcurl's CURL_ERROR_SIZE and more). */
#define URL_POST_WHY_MAX 512
int url_post(const char *url, const char *body, size_t len,
	     const char *const *headers, long timeout_ms,
	     bool (*stop)(void *), void *arg, char *why, size_t whylen);

#endif
