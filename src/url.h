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

#endif
