/*
 * http.c: see http.h.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "quote.h"

LOG_TAG("http");

#define RATE_SLOTS 256
#define SEGMENT_MAX 128

struct rate_slot {
	char client[INET6_ADDRSTRLEN];
	int64_t window_start_ms;
	unsigned failures;
};

struct http_server {
	struct MHD_Daemon *mhd;
	struct http_options opts;
	char *admin_token; /* owned copy; under token_lock */
	size_t admin_token_len;
	pthread_mutex_t token_lock; /* http_set_admin_token() vs. requests */
	const struct http_api *api;
	void *ctx;
	char *tls_cert;
	char *tls_key;
	unsigned port;

	pthread_mutex_t rate_lock;
	struct rate_slot rate[RATE_SLOTS];
};

/* Per-request state kept by libmicrohttpd between calls. */
struct request {
	struct strbuf body;
	bool too_large;
	char client[INET6_ADDRSTRLEN];
};

void
http_options_defaults(struct http_options *o)
{
	if (!o->max_body)
		o->max_body = 64 * 1024;
	if (!o->max_header)
		o->max_header = 32 * 1024;
	if (!o->max_connections)
		o->max_connections = 256;
	if (!o->timeout_s)
		o->timeout_s = 10;
	if (!o->threads)
		o->threads = 2;
	if (!o->auth_fail_limit)
		o->auth_fail_limit = 10;
	if (!o->auth_fail_window_ms)
		o->auth_fail_window_ms = 60000;
}

void
http_json_string(struct strbuf *sb, const char *s)
{
	quote_json(sb, s);
}

unsigned
http_reply_error(struct http_reply *r, unsigned status, const char *fmt, ...)
{
	struct strbuf msg = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&msg, fmt, ap);
	va_end(ap);
	strbuf_reset(&r->body);
	strbuf_adds(&r->body, "{\"error\":");
	http_json_string(&r->body, strbuf_str(&msg));
	strbuf_adds(&r->body, "}\n");
	strbuf_release(&msg);
	r->status = status;
	r->content_type = "application/json";
	return status;
}

/*
 * By hand, not with curl_url() on "http://" + listen: a listen address is
 * no URL. curl would take user info, a path and a missing or empty port,
 * and refuse the empty host that means "every address" here (":8470"),
 * so there would be more checks around the call than parsing saved.
 */
int
http_listen_parse(const char *listen, char **host, unsigned *port)
{
	const char *colon;
	char *h;
	int64_t p;

	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');

		if (!close || close[1] != ':') {
			err_set("listen address '%s': write IPv6 as [ADDR]:PORT",
				listen);
			return -1;
		}
		h = xstrndup(listen + 1, (size_t)(close - listen - 1));
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon) {
			err_set("listen address '%s': expected HOST:PORT", listen);
			return -1;
		}
		if (memchr(listen, ':', (size_t)(colon - listen))) {
			err_set("listen address '%s': write IPv6 as [ADDR]:PORT",
				listen);
			return -1;
		}
		h = xstrndup(listen, (size_t)(colon - listen));
	}
	if (util_parse_int64(colon + 1, 0, 65535, &p) != 0) {
		err_prefix("listen address '%s': port", listen);
		free(h);
		return -1;
	}
	*host = h;
	*port = (unsigned)p;
	return 0;
}

/*
 * Phone-home forms (application/x-www-form-urlencoded) are split here by
 * hand; the decoding of each value is libmicrohttpd's (MHD_http_unescape).
 * Not with libmicrohttpd's post processor (MHD_create_post_processor),
 * although it is made for form bodies, because it would make this less
 * clear and less tested:
 *   - it needs the request's live MHD_Connection and its Content-Type
 *     header, so http_form_get() could no longer be table-tested
 *     (tests/unit/test_http.c) or fuzzed (fuzz/fuzz_http.c) on a body
 *     alone, as every parser of outside input here is;
 *   - it hands each value over in pieces (of at most 512 decoded bytes)
 *     through a callback, to be put together again by offset, for two
 *     short fields of a body we already hold whole (at most max_body);
 *   - it also accepts multipart/form-data, which no guest sends.
 */

/* Decode '+' and %XX in place (form encoding). */
static void
form_unescape(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '+')
			*p = ' ';
	MHD_http_unescape(s);
}

char *
http_form_get(const char *body, size_t len, const char *field)
{
	size_t flen = strlen(field);
	const char *p = body;
	const char *end = body + len;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));

		if (eq && (size_t)(eq - p) == flen && memcmp(p, field, flen) == 0) {
			char *v = xstrndup(eq + 1, (size_t)(stop - eq - 1));

			form_unescape(v);
			return v;
		}
		p = stop + 1;
	}
	return NULL;
}

static bool
metric_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.'))
			return false;
	}
	return true;
}

int
http_heartbeat_parse(const char *body, size_t len, struct http_heartbeat *hb)
{
	struct json_tokener *tok;
	struct json_object *root = NULL, *v;
	int rc = -1;

	hb->busy = false;
	hb->n_metrics = 0;
	if (len == 0)
		return 0;
	if (len > INT_MAX) {
		err_set("heartbeat body too large");
		return -1;
	}
	tok = json_tokener_new_ex(8);
	if (!tok)
		fatal("out of memory");
	root = json_tokener_parse_ex(tok, body, (int)len);
	if (!root) {
		enum json_tokener_error e = json_tokener_get_error(tok);

		err_set("heartbeat is not valid JSON: %s",
			e == json_tokener_continue ? "unexpected end of input"
						   : json_tokener_error_desc(e));
		goto cleanup;
	}
	if (json_tokener_get_parse_end(tok) < len) {
		size_t i = json_tokener_get_parse_end(tok);

		for (; i < len; i++)
			if (body[i] != ' ' && body[i] != '\n' && body[i] != '\r' &&
			    body[i] != '\t')
				break;
		if (i < len) {
			err_set("heartbeat: trailing data after the JSON object");
			goto cleanup;
		}
	}
	if (!json_object_is_type(root, json_type_object)) {
		err_set("heartbeat must be a JSON object");
		goto cleanup;
	}
	if (json_object_object_get_ex(root, "busy", &v)) {
		if (!json_object_is_type(v, json_type_boolean)) {
			err_set("heartbeat: \"busy\" must be true or false");
			goto cleanup;
		}
		hb->busy = json_object_get_boolean(v);
	}
	if (json_object_object_get_ex(root, "metrics", &v)) {
		if (!json_object_is_type(v, json_type_object)) {
			err_set("heartbeat: \"metrics\" must be an object of numbers");
			goto cleanup;
		}
		json_object_object_foreach(v, key, val) {
			if (!metric_name_ok(key)) {
				err_set("heartbeat: bad metric name (use 1-63 of A-Za-z0-9_.)");
				goto cleanup;
			}
			if (!json_object_is_type(val, json_type_int) &&
			    !json_object_is_type(val, json_type_double)) {
				err_set("heartbeat: metric '%s' is not a number", key);
				goto cleanup;
			}
			if (hb->n_metrics >= HTTP_HEARTBEAT_MAX_METRICS) {
				err_set("heartbeat: more than %d metrics",
					HTTP_HEARTBEAT_MAX_METRICS);
				goto cleanup;
			}
			snprintf(hb->metric_names[hb->n_metrics],
				 sizeof(hb->metric_names[0]), "%s", key);
			hb->metric_values[hb->n_metrics] = json_object_get_double(val);
			hb->n_metrics++;
		}
	}
	rc = 0;
cleanup:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

/* Rate limiting of authentication failures, per client address. */
static struct rate_slot *
rate_find(struct http_server *srv, const char *client, bool create)
{
	struct rate_slot *oldest = &srv->rate[0];

	for (size_t i = 0; i < RATE_SLOTS; i++) {
		struct rate_slot *s = &srv->rate[i];

		if (strcmp(s->client, client) == 0)
			return s;
		if (s->window_start_ms < oldest->window_start_ms)
			oldest = s;
	}
	if (!create)
		return NULL;
	snprintf(oldest->client, sizeof(oldest->client), "%s", client);
	oldest->failures = 0;
	oldest->window_start_ms = util_now_ms();
	return oldest;
}

static bool
rate_blocked(struct http_server *srv, const char *client)
{
	struct rate_slot *s;
	bool blocked = false;

	pthread_mutex_lock(&srv->rate_lock);
	s = rate_find(srv, client, false);
	if (s) {
		if (util_now_ms() - s->window_start_ms >
		    srv->opts.auth_fail_window_ms) {
			s->failures = 0;
			s->window_start_ms = util_now_ms();
		}
		blocked = s->failures >= srv->opts.auth_fail_limit;
	}
	pthread_mutex_unlock(&srv->rate_lock);
	return blocked;
}

static void
rate_fail(struct http_server *srv, const char *client)
{
	struct rate_slot *s;

	pthread_mutex_lock(&srv->rate_lock);
	s = rate_find(srv, client, true);
	if (util_now_ms() - s->window_start_ms > srv->opts.auth_fail_window_ms) {
		s->failures = 0;
		s->window_start_ms = util_now_ms();
	}
	s->failures++;
	if (s->failures == srv->opts.auth_fail_limit)
		log_warn("client %s failed authentication %u times; refusing it for up to %" PRId64 " s",
			 client, s->failures,
			 srv->opts.auth_fail_window_ms / 1000);
	pthread_mutex_unlock(&srv->rate_lock);
}

/* A path segment we accept as an id, a secret or a group name. */
static bool
segment_ok(const char *s, size_t n)
{
	if (n == 0 || n > SEGMENT_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		      c == '.'))
			return false;
	}
	return true;
}

/* Split "/a/b/c" into at most max segments (copied into segs). */
static int
split_path(const char *url, char segs[][SEGMENT_MAX + 1], int max)
{
	int n = 0;
	const char *p = url;

	if (*p != '/')
		return -1;
	while (*p == '/')
		p++;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (n == max || !segment_ok(p, len))
			return -1;
		memcpy(segs[n], p, len);
		segs[n][len] = '\0';
		n++;
		p += len;
		while (*p == '/')
			p++;
	}
	return n;
}

static bool
admin_ok(struct http_server *srv, struct MHD_Connection *c,
	 const struct request *rq, struct http_reply *r)
{
	const char *auth;
	const char *tok;
	bool equal, configured;

	pthread_mutex_lock(&srv->token_lock);
	configured = srv->admin_token != NULL;
	pthread_mutex_unlock(&srv->token_lock);
	if (!configured) {
		http_reply_error(r, 403, "admin API disabled: no admin_token configured");
		return false;
	}
	auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					   MHD_HTTP_HEADER_AUTHORIZATION);
	if (!auth || strncmp(auth, "Bearer ", 7) != 0) {
		rate_fail(srv, rq->client);
		http_reply_error(r, 401, "missing 'Authorization: Bearer TOKEN'");
		return false;
	}
	tok = auth + 7;
	pthread_mutex_lock(&srv->token_lock);
	equal = srv->admin_token &&
		util_secret_equal(tok, strlen(tok), srv->admin_token,
				  srv->admin_token_len);
	pthread_mutex_unlock(&srv->token_lock);
	if (!equal) {
		rate_fail(srv, rq->client);
		http_reply_error(r, 401, "wrong admin token");
		return false;
	}
	return true;
}

static unsigned
handle_guest(struct http_server *srv, struct request *rq, bool checkin,
	     const char *id, const char *secret, struct http_reply *r)
{
	unsigned status;

	if (checkin) {
		struct http_checkin in = {
			.instance_id = id,
			.secret = secret,
			.client = rq->client,
		};
		char *form_id, *hostname;

		if (!srv->api->checkin)
			return http_reply_error(r, 404, "no such endpoint");
		form_id = http_form_get(strbuf_str(&rq->body), rq->body.len,
					"instance_id");
		hostname = http_form_get(strbuf_str(&rq->body), rq->body.len,
					 "hostname");
		in.form_instance_id = form_id;
		in.hostname = hostname;
		status = srv->api->checkin(srv->ctx, &in, r);
		free(form_id);
		free(hostname);
	} else {
		struct http_heartbeat hb;

		if (!srv->api->heartbeat)
			return http_reply_error(r, 404, "no such endpoint");
		memset(&hb, 0, sizeof(hb));
		if (http_heartbeat_parse(strbuf_str(&rq->body), rq->body.len,
					 &hb) != 0)
			return http_reply_error(r, 400, "%s", err_msg());
		hb.instance_id = id;
		hb.secret = secret;
		hb.client = rq->client;
		status = srv->api->heartbeat(srv->ctx, &hb, r);
	}
	if (status == 401)
		rate_fail(srv, rq->client);
	return status;
}

static unsigned
parse_desired(const struct request *rq, int *out, struct http_reply *r)
{
	struct json_object *root, *v;
	int rc;

	root = json_tokener_parse(strbuf_str(&rq->body));
	if (!root || !json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "desired", &v) ||
	    !json_object_is_type(v, json_type_int)) {
		json_object_put(root);
		return http_reply_error(r, 400, "body must be {\"desired\": N}");
	}
	errno = 0;
	int64_t d = json_object_get_int64(v);
	rc = d < 0 || d > 100000;
	json_object_put(root);
	if (rc)
		return http_reply_error(r, 400, "desired must be between 0 and 100000");
	*out = (int)d;
	return 0;
}

static unsigned
route(struct http_server *srv, struct MHD_Connection *c, const char *url,
      const char *method, struct request *rq, struct http_reply *r)
{
	char segs[5][SEGMENT_MAX + 1];
	int n = split_path(url, segs, 5);
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool post = strcmp(method, "POST") == 0;
	bool put = strcmp(method, "PUT") == 0;
	const char *group, *kind;

	if (n < 0)
		return http_reply_error(r, 404, "no such endpoint");
	if (n == 1 && strcmp(segs[0], "healthz") == 0 && get) {
		r->content_type = "text/plain";
		strbuf_adds(&r->body, "ok\n");
		return r->status = 200;
	}
	if (n == 1 && strcmp(segs[0], "metrics") == 0 && get) {
		bool admin = false;

		if (!srv->api->metrics)
			return http_reply_error(r, 404, "no such endpoint");
		/* Open to anyone; the admin token, when presented (and then
		 * it must be right), also shows what names every VM. */
		if (MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						MHD_HTTP_HEADER_AUTHORIZATION)) {
			if (rate_blocked(srv, rq->client))
				return http_reply_error(r, 429, "too many failed authentications");
			if (!admin_ok(srv, c, rq, r))
				return r->status;
			admin = true;
		}
		r->status = srv->api->metrics(srv->ctx, admin, r);
		r->content_type = "text/plain; version=0.0.4";
		return r->status;
	}
	if (n < 2 || strcmp(segs[0], "v1") != 0)
		return http_reply_error(r, 404, "no such endpoint");
	if (strcmp(segs[1], "checkin") == 0 ||
	    strcmp(segs[1], "heartbeat") == 0) {
		if (n != 4)
			return http_reply_error(r, 404, "no such endpoint");
		if (!post)
			return http_reply_error(r, 405, "use POST");
		if (rate_blocked(srv, rq->client))
			return http_reply_error(r, 429, "too many failed authentications");
		return handle_guest(srv, rq, segs[1][0] == 'c', segs[2],
				    segs[3], r);
	}

	/* Everything else is the admin API. */
	if (rate_blocked(srv, rq->client))
		return http_reply_error(r, 429, "too many failed authentications");
	if (!admin_ok(srv, c, rq, r))
		return r->status;
	group = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "group");
	if (group && !segment_ok(group, strlen(group)))
		return http_reply_error(r, 400, "bad group name");
	kind = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "kind");
	if (kind && !segment_ok(kind, strlen(kind)))
		return http_reply_error(r, 400, "bad event kind");
	if (n == 2 && strcmp(segs[1], "hosts") == 0 && get && srv->api->hosts)
		return srv->api->hosts(srv->ctx, r);
	if (n == 2 && strcmp(segs[1], "groups") == 0 && get && srv->api->groups)
		return srv->api->groups(srv->ctx, r);
	if (n == 3 && strcmp(segs[1], "groups") == 0 && get && srv->api->group)
		return srv->api->group(srv->ctx, segs[2], r);
	if (n == 2 && strcmp(segs[1], "instances") == 0 && get &&
	    srv->api->instances)
		return srv->api->instances(srv->ctx, group, r);
	if (n == 4 && strcmp(segs[1], "instances") == 0 &&
	    strcmp(segs[3], "metrics") == 0 && srv->api->instance_metrics) {
		const char *ws = MHD_lookup_connection_value(
			c, MHD_GET_ARGUMENT_KIND, "window");
		int64_t window = 0;

		if (!get)
			return http_reply_error(r, 405, "use GET");
		if (ws && util_parse_duration_ms(ws, &window) != 0)
			return http_reply_error(r, 400, "window: %s", err_msg());
		if (ws && window <= 0)
			return http_reply_error(r, 400,
						"window: must be longer than 0s");
		return srv->api->instance_metrics(srv->ctx, segs[2], window, r);
	}
	if (n == 2 && strcmp(segs[1], "events") == 0 && get && srv->api->events) {
		const char *ls = MHD_lookup_connection_value(
			c, MHD_GET_ARGUMENT_KIND, "limit");
		int64_t limit = 50;

		if (ls && util_parse_int64(ls, 1, 10000, &limit) != 0)
			return http_reply_error(r, 400, "limit: %s", err_msg());
		return srv->api->events(srv->ctx, group, kind, (unsigned)limit, r);
	}
	if (n == 4 && strcmp(segs[1], "groups") == 0 &&
	    strcmp(segs[3], "desired") == 0 && srv->api->set_desired) {
		int desired = 0;
		unsigned bad;

		if (!put && !post)
			return http_reply_error(r, 405, "use PUT");
		bad = parse_desired(rq, &desired, r);
		if (bad)
			return bad;
		return srv->api->set_desired(srv->ctx, segs[2], desired, r);
	}
	if (n == 4 && strcmp(segs[1], "groups") == 0 &&
	    (strcmp(segs[3], "pause") == 0 || strcmp(segs[3], "resume") == 0) &&
	    srv->api->set_paused) {
		if (!post)
			return http_reply_error(r, 405, "use POST");
		return srv->api->set_paused(srv->ctx, segs[2],
					    segs[3][0] == 'p', r);
	}
	return http_reply_error(r, 404, "no such endpoint");
}

/* The path with any secret replaced, for logs. */
static void
redacted_path(const char *url, char *out, size_t outlen)
{
	const char *p = NULL;

	if (strncmp(url, "/v1/checkin/", 12) == 0)
		p = url + 12;
	else if (strncmp(url, "/v1/heartbeat/", 14) == 0)
		p = url + 14;
	if (p) {
		const char *slash = strchr(p, '/');

		if (slash) {
			snprintf(out, outlen, "%.*s/***", (int)(slash - url), url);
			return;
		}
	}
	snprintf(out, outlen, "%s", url);
}

static enum MHD_Result
queue_reply(struct MHD_Connection *c, struct http_reply *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	size_t len = r->body.len;
	char *body = strbuf_detach(&r->body);

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				r->content_type ? r->content_type
						: "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	ret = MHD_queue_response(c, r->status ? r->status : 500, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void
client_address(struct MHD_Connection *c, char *out, size_t outlen)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	snprintf(out, outlen, "?");
	if (!ci || !ci->client_addr)
		return;
	if (ci->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET,
			  &((const struct sockaddr_in *)(const void *)ci->client_addr)->sin_addr,
			  out, (socklen_t)outlen);
	else if (ci->client_addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)(const void *)ci->client_addr)->sin6_addr,
			  out, (socklen_t)outlen);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
	   const char *method, const char *version, const char *upload_data,
	   size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct request *rq = *con_cls;
	struct http_reply r = {0, STRBUF_INIT, NULL};
	enum MHD_Result ret;
	char logpath[256];

	if (!rq) {
		const char *cl;

		rq = xcalloc(1, sizeof(*rq));
		client_address(c, rq->client, sizeof(rq->client));
		*con_cls = rq;
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl) {
			int64_t n;

			if (util_parse_int64(cl, 0, INT64_MAX, &n) != 0 ||
			    (uint64_t)n > srv->opts.max_body)
				rq->too_large = true;
		}
		if (rq->too_large) {
			http_reply_error(&r, 413, "request body larger than %zu bytes",
					 srv->opts.max_body);
			return queue_reply(c, &r);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!rq->too_large) {
			if (rq->body.len + *upload_data_size > srv->opts.max_body) {
				rq->too_large = true;
				strbuf_release(&rq->body);
			} else {
				strbuf_add(&rq->body, upload_data,
					   *upload_data_size);
			}
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->too_large)
		http_reply_error(&r, 413, "request body larger than %zu bytes",
				 srv->opts.max_body);
	else
		route(srv, c, url, method, rq, &r);
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		redacted_path(url, logpath, sizeof(logpath));
		log_debug("%s %s %s -> %u", rq->client, method, logpath,
			  r.status);
	}
	ret = queue_reply(c, &r);
	strbuf_release(&r.body);
	return ret;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;

	if (rq) {
		strbuf_release(&rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	log_debug("libmicrohttpd: %s", line);
}

struct http_server *
http_start(const struct http_options *opts, const struct http_api *api,
	   void *ctx)
{
	struct http_server *srv = xcalloc(1, sizeof(*srv));
	struct addrinfo hints, *ai = NULL;
	char *host = NULL;
	char portstr[8];
	unsigned port;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_USE_ERROR_LOG;
	int gai;

	srv->opts = *opts;
	http_options_defaults(&srv->opts);
	srv->opts.listen = NULL; /* not kept: borrowed */
	srv->api = api;
	srv->ctx = ctx;
	pthread_mutex_init(&srv->rate_lock, NULL);
	pthread_mutex_init(&srv->token_lock, NULL);
	if (opts->admin_token && *opts->admin_token) {
		srv->admin_token = xstrdup(opts->admin_token);
		srv->admin_token_len = strlen(srv->admin_token);
	}
	srv->opts.admin_token = NULL;
	srv->opts.tls_cert_path = NULL;
	srv->opts.tls_key_path = NULL;

	if (!opts->listen || http_listen_parse(opts->listen, &host, &port) != 0) {
		if (!opts->listen)
			err_set("no listen address");
		goto fail;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(portstr, sizeof(portstr), "%u", port);
	gai = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &ai);
	if (gai != 0) {
		err_set("listen address '%s': %s", opts->listen, gai_strerror(gai));
		goto fail;
	}
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (opts->tls_cert_path || opts->tls_key_path) {
		if (!opts->tls_cert_path || !opts->tls_key_path) {
			err_set("TLS needs both a certificate and a key");
			goto fail;
		}
		srv->tls_cert = util_read_file(opts->tls_cert_path, 1 << 20, NULL);
		if (!srv->tls_cert) {
			err_prefix("TLS certificate");
			goto fail;
		}
		srv->tls_key = util_read_file(opts->tls_key_path, 1 << 20, NULL);
		if (!srv->tls_key) {
			err_prefix("TLS key");
			goto fail;
		}
		flags |= MHD_USE_TLS;
	}

	{
		struct MHD_OptionItem tls_opts[] = {
			{MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert},
			{MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key},
			{MHD_OPTION_END, 0, NULL},
		};
		struct MHD_OptionItem no_opts[] = {
			{MHD_OPTION_END, 0, NULL},
		};

		srv->mhd = MHD_start_daemon(
			flags, (uint16_t)port, NULL, NULL, on_request, srv,
			MHD_OPTION_SOCK_ADDR, ai->ai_addr,
			MHD_OPTION_THREAD_POOL_SIZE, srv->opts.threads,
			MHD_OPTION_CONNECTION_LIMIT, srv->opts.max_connections,
			MHD_OPTION_CONNECTION_MEMORY_LIMIT, srv->opts.max_header,
			MHD_OPTION_CONNECTION_TIMEOUT, srv->opts.timeout_s,
			MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
			MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
			MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
			MHD_OPTION_ARRAY, srv->tls_cert ? tls_opts : no_opts,
			MHD_OPTION_END);
	}
	if (!srv->mhd) {
		err_set("cannot listen on %s (address in use, not local, or TLS files invalid)",
			opts->listen);
		goto fail;
	}
	{
		const union MHD_DaemonInfo *di =
			MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);

		srv->port = di ? di->port : port;
	}
	log_info("listening on %s (port %u)%s", opts->listen, srv->port,
		 srv->tls_cert ? " with TLS" : "");
	freeaddrinfo(ai);
	free(host);
	return srv;
fail:
	if (ai)
		freeaddrinfo(ai);
	free(host);
	http_stop(srv);
	return NULL;
}

unsigned
http_port(const struct http_server *srv)
{
	return srv->port;
}

void
http_set_admin_token(struct http_server *srv, const char *token)
{
	char *n = token && *token ? xstrdup(token) : NULL;
	char *o;
	size_t olen;

	pthread_mutex_lock(&srv->token_lock);
	o = srv->admin_token;
	olen = srv->admin_token_len;
	srv->admin_token = n;
	srv->admin_token_len = n ? strlen(n) : 0;
	pthread_mutex_unlock(&srv->token_lock);
	if (o) {
		explicit_bzero(o, olen);
		free(o);
	}
}

void
http_stop(struct http_server *srv)
{
	if (!srv)
		return;
	if (srv->mhd)
		MHD_stop_daemon(srv->mhd);
	pthread_mutex_destroy(&srv->rate_lock);
	pthread_mutex_destroy(&srv->token_lock);
	if (srv->admin_token) {
		explicit_bzero(srv->admin_token, srv->admin_token_len);
		free(srv->admin_token);
	}
	if (srv->tls_key) {
		explicit_bzero(srv->tls_key, strlen(srv->tls_key));
		free(srv->tls_key);
	}
	free(srv->tls_cert);
	free(srv);
}
