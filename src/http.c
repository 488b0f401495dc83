/*
 * http.c: see http.h.
 */
#include "config.h"
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
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "authlimit.h"
#include "log.h"
#include "quote.h"
#include "ui.h"

LOG_TAG("http");

#define SEGMENT_MAX 128
/* Failed-authentication tables (authlimit.h, docs/http-api.md "Limits"). */
#define GUEST_KEY_SLOTS 4096  /* (address, instance) of guest requests */
#define GUEST_ADDR_SLOTS 1024 /* addresses whose new keys found no slot */
#define ADMIN_ADDR_SLOTS 1024 /* addresses on the admin API */
/* A connection waiting this long for its request may be closed to make
 * room for a new one; a younger one never is (a request on loopback or a
 * LAN arrives within a few ms of the connection). */
#define EVICT_MIN_AGE_MS 100
#define REAPER_PERIOD_MS 250
/* Only TLS 1.2 and 1.3 (GnuTLS priority string). */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/*
 * A connection, from accept to close (MHD_OPTION_NOTIFY_CONNECTION): its
 * peer and whether it is still waiting for a whole request. Linked in
 * srv->conns under conn_lock. MHD closes the socket only after it told
 * us the connection closed (and we unlinked it), so shutdown() on fd
 * under the lock never hits a socket number reused by another.
 */
struct conn {
	struct conn *prev, *next;
	int fd;
	char client[INET6_ADDRSTRLEN];
	int64_t since_ms; /* waiting for a request since (accept, or the
			     end of the previous request) */
	bool waiting;     /* the request has not fully arrived */
	bool closing;     /* shut down by us; MHD will close it */
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

	/* failed authentications: guests by address and instance, then by
	 * address when that table is full; the admin API by address, then
	 * all addresses together when that one is full */
	struct authlimit *guest_keys, *guest_addrs;
	struct authlimit *admin_addrs, *admin_all;

	pthread_mutex_t conn_lock;
	pthread_cond_t reaper_cond;
	struct conn *conns;
	bool reaper_started, reaper_stop;
	pthread_t reaper;
	/* complaints, under conn_lock */
	struct ratelimit say_conn, say_auth;
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
	if (!o->max_per_address)
		o->max_per_address = 64;
	if (!o->timeout_s)
		o->timeout_s = 10;
	if (!o->request_timeout_ms)
		o->request_timeout_ms = 10000;
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

/*
 * Failed authentications (docs/http-api.md, "Limits"). A guest request
 * is keyed by its address and instance id, so a guest that fails (or an
 * attacker posing as one) refuses only itself, not the other guests
 * behind the same address (QEMU user networking: all of them) nor the
 * admin API, which has its own table keyed by address. A key that finds
 * no free slot (authlimit.h: live entries are never evicted) is charged
 * to the coarser table: the guest's address, or for the admin API every
 * address together, which then refuses every key of its own that has no
 * entry.
 */
static void
auth_key(char *out, size_t outlen, const char *client, const char *id)
{
	snprintf(out, outlen, "%s %s", client, id);
}

/* Whether a guest request (id NULL: an admin request) must be refused. */
static bool
auth_blocked(struct http_server *srv, const char *client, const char *id)
{
	int64_t now = util_now_ms();
	char key[INET6_ADDRSTRLEN + SEGMENT_MAX + 2];
	enum authlimit_state st;

	if (!id) {
		st = authlimit_check(srv->admin_addrs, client, now);
		if (st == AUTHLIMIT_ABSENT)
			st = authlimit_check(srv->admin_all, "*", now);
		return st == AUTHLIMIT_BLOCKED;
	}
	auth_key(key, sizeof(key), client, id);
	st = authlimit_check(srv->guest_keys, key, now);
	if (st == AUTHLIMIT_ABSENT)
		st = authlimit_check(srv->guest_addrs, client, now);
	return st == AUTHLIMIT_BLOCKED;
}

static void
auth_fail(struct http_server *srv, const char *client, const char *id)
{
	int64_t now = util_now_ms();
	char key[INET6_ADDRSTRLEN + SEGMENT_MAX + 2];
	enum authlimit_result r;
	const char *what = id ? "guest" : "admin";
	unsigned long skipped = 0;

	if (id) {
		auth_key(key, sizeof(key), client, id);
		r = authlimit_fail(srv->guest_keys, key, now);
		if (r == AUTHLIMIT_FULL) {
			what = "guest (table full: by address)";
			r = authlimit_fail(srv->guest_addrs, client, now);
		}
	} else {
		r = authlimit_fail(srv->admin_addrs, client, now);
		if (r == AUTHLIMIT_FULL) {
			what = "admin (table full: all addresses)";
			r = authlimit_fail(srv->admin_all, "*", now);
		}
	}
	if (r != AUTHLIMIT_REACHED && r != AUTHLIMIT_FULL)
		return;
	pthread_mutex_lock(&srv->conn_lock);
	if (ratelimit_take(&srv->say_auth, now, &skipped)) {
		if (r == AUTHLIMIT_FULL)
			log_warn("client %s failed %s authentication; not counted: every table is full",
				 client, what);
		else
			log_warn("client %s failed %s authentication %u times%s%s; refusing it for up to %" PRId64 " s",
				 client, what, srv->opts.auth_fail_limit,
				 id ? " for instance " : "", id ? id : "",
				 srv->opts.auth_fail_window_ms / 1000);
		if (skipped)
			log_warn("(%lu more such lines suppressed)", skipped);
	}
	pthread_mutex_unlock(&srv->conn_lock);
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

/*
 * Split "/a/b/c" into at most max segments (copied into segs). Only the
 * canonical form: "//a", "/a//b" and "/a/" are no path of ours (404), so
 * that a path routes only one way and what a log redacts is what routes
 * (docs/http-api.md).
 */
static int
split_path(const char *url, char segs[][SEGMENT_MAX + 1], int max)
{
	int n = 0;
	const char *p = url;

	if (*p != '/')
		return -1;
	p++;
	if (!*p)
		return 0; /* "/" */
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (n == max || !segment_ok(p, len))
			return -1; /* also an empty segment */
		memcpy(segs[n], p, len);
		segs[n][len] = '\0';
		n++;
		if (!slash)
			return n;
		p = slash + 1;
	}
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
		auth_fail(srv, rq->client, NULL);
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
		auth_fail(srv, rq->client, NULL);
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
		auth_fail(srv, rq->client, id);
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

/* One of the status page's files (ui.h); the headers are queue_reply's. */
static unsigned
serve_asset(const char *name, struct http_reply *r)
{
	const struct ui_asset *a = ui_asset_find(name);

	if (!a)
		return http_reply_error(r, 404, "no such file");
	strbuf_add(&r->body, a->data, a->len);
	r->content_type = a->content_type;
	return r->status = 200;
}

/* POST /v1/groups/NAME/refresh: the body, checked (http.h) */
static unsigned
route_refresh(struct http_server *srv, struct request *rq, const char *group,
	      bool post, struct http_reply *r)
{
	struct http_refresh h = {.surge = -1, .min_healthy = -1};
	struct json_object *root;
	const char *bad = NULL;
	unsigned st;

	if (!post)
		return http_reply_error(r, 405, "use POST");
	root = json_tokener_parse(strbuf_str(&rq->body));
	if (!root || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return http_reply_error(r, 400, "body must be a JSON object: "
					"{\"action\": \"start\", \"cancel\" "
					"or \"resume\", ...}");
	}
	json_object_object_foreach(root, key, val) {
		if (strcmp(key, "action") == 0) {
			const char *a = json_object_is_type(val, json_type_string)
						? json_object_get_string(val)
						: "";

			if (strcmp(a, "start") && strcmp(a, "cancel") &&
			    strcmp(a, "resume"))
				bad = "action must be \"start\", \"cancel\" or "
				      "\"resume\"";
			else
				snprintf(h.action, sizeof(h.action), "%s", a);
		} else if (strcmp(key, "max_unavailable") == 0) {
			const char *m = json_object_is_type(val, json_type_string)
						? json_object_get_string(val)
						: NULL;
			char buf[16];
			int n;

			if (json_object_is_type(val, json_type_int)) {
				snprintf(buf, sizeof(buf), "%d",
					 json_object_get_int(val));
				m = buf;
			}
			if (!m || strlen(m) >= sizeof(h.max_unavailable) ||
			    config_refresh_amount(m, 100, &n) != 0)
				bad = "max_unavailable must be a number of "
				      "instances or a percentage like \"25%\"";
			else
				snprintf(h.max_unavailable,
					 sizeof(h.max_unavailable), "%s", m);
		} else if (strcmp(key, "surge") == 0 ||
			   strcmp(key, "min_healthy") == 0) {
			bool surge = key[0] == 's';
			int64_t n = json_object_is_type(val, json_type_int)
					    ? json_object_get_int64(val)
					    : -1;

			if (n < 0 || n > (surge ? 1000 : 100))
				bad = surge ? "surge must be a whole number "
					      "0-1000"
					    : "min_healthy must be a percentage "
					      "0-100";
			else if (surge)
				h.surge = (int)n;
			else
				h.min_healthy = (int)n;
		} else if (strcmp(key, "checkpoints") == 0) {
			size_t n = json_object_is_type(val, json_type_array)
					   ? json_object_array_length(val)
					   : 0;
			int last = 0;

			if (!json_object_is_type(val, json_type_array) || n > 20)
				bad = "checkpoints must be a list of at most "
				      "20 percentages";
			for (size_t i = 0; !bad && i < n; i++) {
				struct json_object *e =
					json_object_array_get_idx(val, i);
				int p = json_object_is_type(e, json_type_int)
						? json_object_get_int(e)
						: -1;

				if (p <= last || p > 100) {
					bad = "checkpoints must be ascending "
					      "percentages 1-100";
					break;
				}
				last = p;
				snprintf(h.checkpoints + strlen(h.checkpoints),
					 sizeof(h.checkpoints) -
						 strlen(h.checkpoints),
					 "%s%d", i ? "," : "", p);
			}
		} else {
			bad = "unknown field (action, max_unavailable, surge, "
			      "min_healthy, checkpoints)";
		}
		if (bad)
			break;
	}
	json_object_put(root);
	if (!bad && !h.action[0])
		bad = "action is missing (\"start\", \"cancel\" or "
		      "\"resume\")";
	if (bad)
		return http_reply_error(r, 400, "%s", bad);
	st = srv->api->refresh(srv->ctx, group, &h, r);
	return st;
}

/* POST /v1/instances/ID/lifecycle {"result": ..., "token": ...} */
static unsigned
route_lifecycle(struct http_server *srv, struct MHD_Connection *c,
		struct request *rq, const char *id, bool post,
		struct http_reply *r)
{
	struct json_object *root, *res = NULL, *tok = NULL;
	bool admin = false;
	unsigned st;

	if (!post)
		return http_reply_error(r, 405, "use POST");
	if (MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_AUTHORIZATION)) {
		if (auth_blocked(srv, rq->client, NULL))
			return http_reply_error(r, 429, "too many failed authentications");
		if (!admin_ok(srv, c, rq, r))
			return r->status;
		admin = true;
	} else if (auth_blocked(srv, rq->client, id)) {
		return http_reply_error(r, 429, "too many failed authentications");
	}
	root = json_tokener_parse(strbuf_str(&rq->body));
	if (!root || !json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "result", &res) ||
	    !json_object_is_type(res, json_type_string) ||
	    (json_object_object_get_ex(root, "token", &tok) &&
	     !json_object_is_type(tok, json_type_string))) {
		json_object_put(root);
		return http_reply_error(r, 400, "body must be {\"result\": "
					"\"continue\" or \"abandon\", \"token\": "
					"\"...\"} (the token unless the admin "
					"token is presented)");
	}
	st = srv->api->lifecycle(srv->ctx, id, json_object_get_string(res),
				 tok ? json_object_get_string(tok) : NULL,
				 admin, r);
	json_object_put(root);
	if (st == 403)
		auth_fail(srv, rq->client, id);
	return st;
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
	/* the status page and its public data: no token (docs/http-api.md) */
	if (n == 0 || (n == 2 && strcmp(segs[0], "ui") == 0) ||
	    (n == 2 && strcmp(segs[0], "v1") == 0 &&
	     strcmp(segs[1], "overview") == 0)) {
		if (!get)
			return http_reply_error(r, 405, "use GET");
		if (n == 0)
			return serve_asset("index.html", r);
		if (strcmp(segs[0], "ui") == 0)
			return serve_asset(segs[1], r);
		if (!srv->api->overview)
			return http_reply_error(r, 404, "no such endpoint");
		return srv->api->overview(srv->ctx, r);
	}
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
			if (auth_blocked(srv, rq->client, NULL))
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
		if (auth_blocked(srv, rq->client, segs[2]))
			return http_reply_error(r, 429, "too many failed authentications");
		return handle_guest(srv, rq, segs[1][0] == 'c', segs[2],
				    segs[3], r);
	}

	/* Completing a lifecycle hook: the admin token, or the hook call's
	 * token in the body (docs/http-api.md). */
	if (n == 4 && strcmp(segs[1], "instances") == 0 &&
	    strcmp(segs[3], "lifecycle") == 0 && srv->api->lifecycle)
		return route_lifecycle(srv, c, rq, segs[2], post, r);

	/* Everything else is the admin API. */
	if (auth_blocked(srv, rq->client, NULL))
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
	if (n == 4 && strcmp(segs[1], "groups") == 0 &&
	    strcmp(segs[3], "targets") == 0 && srv->api->targets) {
		if (!get)
			return http_reply_error(r, 405, "use GET");
		return srv->api->targets(srv->ctx, segs[2], r);
	}
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
	    strcmp(segs[3], "refresh") == 0 && srv->api->refresh)
		return route_refresh(srv, rq, segs[2], post, r);
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

static bool
redact_stop(char c)
{
	return c == '\0' || c == ' ' || c == '\t' || c == '\'' || c == '"' ||
	       c == '`';
}

/* A UUID (either case) ending at a '/' or a stop character. */
static bool
redact_uuid(const char *p)
{
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		char c = p[i];

		if (dash ? c != '-'
			 : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			     (c >= 'A' && c <= 'F')))
			return false;
	}
	return p[36] == '/' || redact_stop(p[36]);
}

/*
 * Whatever follows a "/checkin/" or "/heartbeat/" segment (any case,
 * anywhere in the text) up to a blank or a quote becomes "***", but for
 * an instance id right after it that is a UUID; non-printable bytes
 * become '?'. Applied to every path the server logs and to every line of
 * libmicrohttpd's, which quote the URL: a secret is never a UUID.
 */
void
http_redact(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	if (!outlen)
		return;
	for (const char *p = in; *p && o + 1 < outlen;) {
		size_t kw = 0;

		if (*p == '/' && strncasecmp(p + 1, "checkin/", 8) == 0)
			kw = 9;
		else if (*p == '/' && strncasecmp(p + 1, "heartbeat/", 10) == 0)
			kw = 11;
		if (!kw) {
			unsigned char c = (unsigned char)*p++;

			out[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
			continue;
		}
		/* copy "/checkin/" */
		for (size_t i = 0; i < kw && o + 1 < outlen; i++)
			out[o++] = *p++;
		if (redact_uuid(p)) {
			for (int i = 0; i < 36 && o + 1 < outlen; i++)
				out[o++] = *p++;
			if (*p == '/' && o + 1 < outlen)
				out[o++] = *p++;
		}
		if (!redact_stop(*p)) {
			for (const char *r = "***"; *r && o + 1 < outlen; r++)
				out[o++] = *r;
			while (!redact_stop(*p))
				p++;
		}
	}
	out[o] = '\0';
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
	/* Every answer, not only the status page's: nothing of ours is to
	 * be sniffed into another type, framed, or run with anything but
	 * our own files (no inline script or style, no other origin). */
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Content-Security-Policy",
				"default-src 'self'; base-uri 'none'; "
				"form-action 'none'; frame-ancestors 'none'");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
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

/* --- connections ---------------------------------------------------- */

static struct conn *
conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

/* Under conn_lock. */
static void
conn_close(struct conn *k)
{
	if (k->fd >= 0)
		shutdown(k->fd, SHUT_RDWR);
	k->closing = true;
}

/* Under conn_lock: the connection waiting longest for its request, of
 * client (or of anyone: NULL), if it has waited EVICT_MIN_AGE_MS. */
static struct conn *
conn_oldest_waiting(struct http_server *srv, const char *client,
		    const struct conn *except, int64_t now)
{
	struct conn *best = NULL;

	for (struct conn *k = srv->conns; k; k = k->next) {
		if (k == except || k->closing || !k->waiting ||
		    now - k->since_ms < EVICT_MIN_AGE_MS ||
		    (client && strcmp(k->client, client) != 0))
			continue;
		if (!best || k->since_ms < best->since_ms)
			best = k;
	}
	return best;
}

/*
 * Under conn_lock: a new connection k (already linked) over a limit,
 * per address or overall, closes the connection that has waited longest
 * for its request (a slow client's, or an idle keep-alive), or else
 * itself. A request that arrives at once is never the one closed: a
 * slow client holding every slot makes room for it (docs/http-api.md).
 */
static void
conn_admit(struct http_server *srv, struct conn *k, int64_t now)
{
	unsigned total = 0, same = 0;
	struct conn *victim;
	const char *which;
	unsigned long skipped = 0;

	for (struct conn *o = srv->conns; o; o = o->next) {
		if (o->closing)
			continue;
		total++;
		same += strcmp(o->client, k->client) == 0;
	}
	if (same > srv->opts.max_per_address) {
		victim = conn_oldest_waiting(srv, k->client, k, now);
		which = "from this address";
	} else if (total > srv->opts.max_connections) {
		victim = conn_oldest_waiting(srv, NULL, k, now);
		which = "in all";
	} else {
		return;
	}
	if (ratelimit_take(&srv->say_conn, now, &skipped)) {
		if (victim)
			log_warn("client %s: more than %u connections %s; closing the one of %s waiting %.1f s for its request",
				 k->client, same > srv->opts.max_per_address
						    ? srv->opts.max_per_address
						    : srv->opts.max_connections,
				 which, victim->client,
				 (double)(now - victim->since_ms) / 1000.0);
		else
			log_warn("client %s: more than %u connections %s, none waiting long; refusing the new one",
				 k->client, same > srv->opts.max_per_address
						    ? srv->opts.max_per_address
						    : srv->opts.max_connections,
				 which);
		if (skipped)
			log_warn("(%lu more such lines suppressed)", skipped);
	}
	conn_close(victim ? victim : k);
}

static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
	      enum MHD_ConnectionNotificationCode toe)
{
	struct http_server *srv = cls;
	struct conn *k = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			c, MHD_CONNECTION_INFO_CONNECTION_FD);

		k = xcalloc(1, sizeof(*k));
		k->fd = ci ? ci->connect_fd : -1;
		client_address(c, k->client, sizeof(k->client));
		k->waiting = true;
		*socket_context = k;
		pthread_mutex_lock(&srv->conn_lock);
		k->since_ms = util_now_ms();
		k->next = srv->conns;
		if (srv->conns)
			srv->conns->prev = k;
		srv->conns = k;
		conn_admit(srv, k, k->since_ms);
		pthread_mutex_unlock(&srv->conn_lock);
		return;
	}
	if (!k)
		return;
	pthread_mutex_lock(&srv->conn_lock);
	if (k->prev)
		k->prev->next = k->next;
	else
		srv->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	pthread_mutex_unlock(&srv->conn_lock);
	free(k);
	*socket_context = NULL;
}

/* The request has fully arrived (waiting false) or a new one may begin. */
static void
conn_set_waiting(struct http_server *srv, struct MHD_Connection *c,
		 bool waiting)
{
	struct conn *k = conn_of(c);

	if (!k)
		return;
	pthread_mutex_lock(&srv->conn_lock);
	k->waiting = waiting;
	k->since_ms = util_now_ms();
	pthread_mutex_unlock(&srv->conn_lock);
}

/*
 * The deadline of a request: request_timeout_ms from the accept (or the
 * end of the previous request on the connection) to the last byte of its
 * body. libmicrohttpd's own timeout (timeout_s) restarts with every byte,
 * so a client sending a header line every few seconds would hold its
 * connection forever.
 */
static void *
reaper_main(void *arg)
{
	struct http_server *srv = arg;

	pthread_mutex_lock(&srv->conn_lock);
	while (!srv->reaper_stop) {
		int64_t now = util_now_ms();
		unsigned n = 0;
		unsigned long skipped = 0;
		struct timespec ts;
		const char *first = NULL;

		for (struct conn *k = srv->conns; k; k = k->next) {
			if (k->closing || !k->waiting ||
			    now - k->since_ms < srv->opts.request_timeout_ms)
				continue;
			conn_close(k);
			if (!first)
				first = k->client;
			n++;
		}
		if (n && ratelimit_take(&srv->say_conn, now, &skipped)) {
			log_warn("closed %u connection%s (%s%s) that sent no whole request within %.1f s",
				 n, n == 1 ? "" : "s", first,
				 n > 1 ? " and others" : "",
				 (double)srv->opts.request_timeout_ms / 1000.0);
			if (skipped)
				log_warn("(%lu more such lines suppressed)", skipped);
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += REAPER_PERIOD_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&srv->reaper_cond, &srv->conn_lock, &ts);
	}
	pthread_mutex_unlock(&srv->conn_lock);
	return NULL;
}

/* --- requests ------------------------------------------------------- */

struct header_count {
	unsigned content_length;
	bool conflicting;
	const char *first;
	bool transfer_encoding;
};

static enum MHD_Result
count_header(void *cls, enum MHD_ValueKind kind, const char *key,
	     const char *value)
{
	struct header_count *h = cls;

	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		if (h->content_length++ && strcmp(h->first, value) != 0)
			h->conflicting = true;
		else
			h->first = value;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		h->transfer_encoding = true;
	}
	return MHD_YES;
}

/*
 * The framing of the body must be unambiguous: libmicrohttpd reads the
 * first Content-Length and prefers Transfer-Encoding, a proxy in front
 * may read another (request smuggling). 0, or the status to answer.
 */
static unsigned
check_framing(struct MHD_Connection *c, struct http_reply *r)
{
	struct header_count h = {0, false, NULL, false};

	MHD_get_connection_values(c, MHD_HEADER_KIND, count_header, &h);
	if (h.conflicting)
		return http_reply_error(r, 400, "conflicting Content-Length headers");
	if (h.content_length && h.transfer_encoding)
		return http_reply_error(r, 400, "both Content-Length and Transfer-Encoding");
	return 0;
}

static enum MHD_Result
queue_final(struct http_server *srv, struct MHD_Connection *c,
	    struct http_reply *r)
{
	enum MHD_Result ret;

	conn_set_waiting(srv, c, false);
	ret = queue_reply(c, r);
	strbuf_release(&r->body);
	return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
	   const char *method, const char *version, const char *upload_data,
	   size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct request *rq = *con_cls;
	struct http_reply r = {0, STRBUF_INIT, NULL};
	char logpath[256];

	if (!rq) {
		const char *cl;

		rq = xcalloc(1, sizeof(*rq));
		client_address(c, rq->client, sizeof(rq->client));
		*con_cls = rq;
		if (check_framing(c, &r))
			return queue_final(srv, c, &r);
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
			return queue_final(srv, c, &r);
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
	conn_set_waiting(srv, c, false);
	if (rq->too_large)
		http_reply_error(&r, 413, "request body larger than %zu bytes",
				 srv->opts.max_body);
	else
		route(srv, c, url, method, rq, &r);
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		http_redact(url, logpath, sizeof(logpath));
		log_debug("%s %s %s -> %u", rq->client, method, logpath,
			  r.status);
	}
	return queue_final(srv, c, &r);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;

	/* the next request on this connection has its own deadline */
	conn_set_waiting(cls, c, true);
	if (rq) {
		strbuf_release(&rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* libmicrohttpd's messages quote URLs: redacted like ours. */
static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512], clean[512];
	size_t n;

	if (!log_enabled(LOG_LEVEL_DEBUG))
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	http_redact(line, clean, sizeof(clean));
	log_debug("libmicrohttpd: %s", clean);
}

/* Like ssh with its keys: a private key others may read is refused. */
static int
check_key_mode(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		err_set("%s: %s", path, strerror(errno));
		return -1;
	}
	if (st.st_mode & 077) {
		err_set("%s is accessible by group or others (mode %04o): "
			"a private key must be readable by its owner only "
			"(chmod 600 %s)",
			path, (unsigned)(st.st_mode & 07777), path);
		return -1;
	}
	return 0;
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
	pthread_mutex_init(&srv->token_lock, NULL);
	pthread_mutex_init(&srv->conn_lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&srv->reaper_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	srv->guest_keys = authlimit_new(GUEST_KEY_SLOTS, srv->opts.auth_fail_limit,
					srv->opts.auth_fail_window_ms);
	srv->guest_addrs = authlimit_new(GUEST_ADDR_SLOTS, srv->opts.auth_fail_limit,
					 srv->opts.auth_fail_window_ms);
	srv->admin_addrs = authlimit_new(ADMIN_ADDR_SLOTS, srv->opts.auth_fail_limit,
					 srv->opts.auth_fail_window_ms);
	srv->admin_all = authlimit_new(1, srv->opts.auth_fail_limit,
				       srv->opts.auth_fail_window_ms);
	srv->say_conn = (struct ratelimit)RATELIMIT_INIT(5, 10000);
	srv->say_auth = (struct ratelimit)RATELIMIT_INIT(5, 10000);
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
		if (check_key_mode(opts->tls_key_path) != 0) {
			err_prefix("TLS key");
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
			{MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES},
			{MHD_OPTION_END, 0, NULL},
		};
		struct MHD_OptionItem no_opts[] = {
			{MHD_OPTION_END, 0, NULL},
		};

		srv->mhd = MHD_start_daemon(
			flags, (uint16_t)port, NULL, NULL, on_request, srv,
			MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
			MHD_OPTION_SOCK_ADDR, ai->ai_addr,
			MHD_OPTION_THREAD_POOL_SIZE, srv->opts.threads,
			/* above ours: conn_admit() decides whom to close
			 * before libmicrohttpd refuses anyone */
			MHD_OPTION_CONNECTION_LIMIT,
			srv->opts.max_connections + srv->opts.max_per_address + 16,
			MHD_OPTION_CONNECTION_MEMORY_LIMIT, srv->opts.max_header,
			MHD_OPTION_CONNECTION_TIMEOUT, srv->opts.timeout_s,
			MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
			MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
			MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
			MHD_OPTION_ARRAY, srv->tls_cert ? tls_opts : no_opts,
			MHD_OPTION_END);
	}
	if (!srv->mhd) {
		err_set("cannot listen on %s (address in use, not local, or TLS files invalid)",
			opts->listen);
		goto fail;
	}
	if (pthread_create(&srv->reaper, NULL, reaper_main, srv) != 0) {
		err_set("cannot start the HTTP request deadline thread");
		goto fail;
	}
	srv->reaper_started = true;
	{
		const union MHD_DaemonInfo *di =
			MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);

		srv->port = di ? di->port : port;
	}
	log_info("listening on %s (port %u)%s; at most %u connections, %u per address, a request within %.1f s",
		 opts->listen, srv->port, srv->tls_cert ? " with TLS 1.2+" : "",
		 srv->opts.max_connections, srv->opts.max_per_address,
		 (double)srv->opts.request_timeout_ms / 1000.0);
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
	if (srv->reaper_started) {
		pthread_mutex_lock(&srv->conn_lock);
		srv->reaper_stop = true;
		pthread_cond_signal(&srv->reaper_cond);
		pthread_mutex_unlock(&srv->conn_lock);
		pthread_join(srv->reaper, NULL);
	}
	if (srv->mhd)
		MHD_stop_daemon(srv->mhd);
	pthread_mutex_destroy(&srv->token_lock);
	pthread_cond_destroy(&srv->reaper_cond);
	pthread_mutex_destroy(&srv->conn_lock);
	authlimit_free(srv->guest_keys);
	authlimit_free(srv->guest_addrs);
	authlimit_free(srv->admin_addrs);
	authlimit_free(srv->admin_all);
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
