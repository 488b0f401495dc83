/*
 * http.h: the daemon's HTTP API (libmicrohttpd): guest check-in and
 * heartbeat, the admin endpoints, /metrics and /healthz.
 *
 * http.c does the transport work: listening (optionally TLS), limits on
 * connections, header and body sizes and time, routing, parsing of
 * phone-home forms and JSON heartbeats, admin-token checks in constant
 * time, and limits on clients that fail authentication (authlimit.h). What a
 * request means is decided by the callbacks in struct http_api, which the
 * daemon supplies.
 *
 * Routes (see docs/http-api.md):
 *   POST /v1/checkin/ID/SECRET     cloud-init phone_home (form fields)
 *   POST /v1/heartbeat/ID/SECRET   JSON {"busy": bool, "metrics": {..}}
 *   GET  /healthz                  200 "ok"
 *   GET  /metrics                  Prometheus text format
 *   GET  /                         the status page (GET /ui/NAME: its
 *                                  script and style), embedded (ui.h)
 *   GET  /v1/overview              the page's public data
 *   admin, with "Authorization: Bearer TOKEN":
 *   GET  /v1/groups                GET /v1/groups/NAME
 *   GET  /v1/instances[?group=G]   GET /v1/events[?group=G&kind=K&limit=N]
 *   GET  /v1/instances/ID/metrics[?window=DURATION]
 *   GET  /v1/hosts
 *   PUT  /v1/groups/NAME/desired   {"desired": N}
 *   POST /v1/groups/NAME/pause     POST /v1/groups/NAME/resume
 */
#ifndef VA_HTTP_H
#define VA_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct http_server;

struct http_options {
	const char *listen;         /* "127.0.0.1:8470", "[::1]:8470"; port 0 = any */
	const char *tls_cert_path;  /* PEM; NULL for plain HTTP */
	const char *tls_key_path;
	size_t max_body;            /* bytes; default 64 KiB */
	size_t max_header;          /* per-connection memory; default 32 KiB */
	unsigned max_connections;   /* default 256 */
	unsigned max_per_address;   /* connections per client address; default 64 */
	unsigned timeout_s;         /* idle connection timeout; default 10 */
	/* from accept (or the previous request) to the request's last byte;
	 * default 10 s */
	int64_t request_timeout_ms;
	unsigned threads;           /* worker threads; default 2 */
	const char *admin_token;    /* NULL or "": admin endpoints answer 403 */
	unsigned auth_fail_limit;   /* failures per client per window; default 10 */
	int64_t auth_fail_window_ms; /* default 60 s */
};

/* A reply: status, body (the callee fills it) and content type. */
struct http_reply {
	unsigned status;
	struct strbuf body;
	const char *content_type; /* static string; default application/json */
};

/* Set status and a JSON error body {"error": "..."}. Returns status. */
unsigned http_reply_error(struct http_reply *r, unsigned status,
			  const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Append s to sb as a JSON string literal, quotes included: quote_json()
 * (json-c), under the name api.c knows. */
void http_json_string(struct strbuf *sb, const char *s);

/* A guest's phone-home. Strings are borrowed for the call. */
struct http_checkin {
	const char *instance_id; /* from the URL */
	const char *secret;      /* from the URL */
	const char *form_instance_id; /* phone_home's instance_id field, or NULL */
	const char *hostname;    /* phone_home's hostname field, or NULL */
	const char *client;      /* peer address */
};

#define HTTP_HEARTBEAT_MAX_METRICS 16

struct http_heartbeat {
	const char *instance_id;
	const char *secret;
	bool busy;
	unsigned n_metrics;
	char metric_names[HTTP_HEARTBEAT_MAX_METRICS][64];
	double metric_values[HTTP_HEARTBEAT_MAX_METRICS];
	const char *client;
};

/*
 * The daemon's side. Every callback may run on any of the server's
 * threads at the same time: the daemon locks what it shares. A callback
 * returns the HTTP status it put into the reply; 401 from checkin or
 * heartbeat counts as an authentication failure for rate limiting.
 * A NULL callback answers 404.
 */
/* An instance refresh command (http_api.refresh); "" or -1: not given. */
struct http_refresh {
	char action[8];
	char max_unavailable[16];
	int surge, min_healthy;
	char checkpoints[256];
};

struct http_api {
	unsigned (*checkin)(void *ctx, const struct http_checkin *in,
			    struct http_reply *out);
	unsigned (*heartbeat)(void *ctx, const struct http_heartbeat *in,
			      struct http_reply *out);
	unsigned (*groups)(void *ctx, struct http_reply *out);
	unsigned (*hosts)(void *ctx, struct http_reply *out);
	/* GET /v1/overview: the status page's public data (no token) */
	unsigned (*overview)(void *ctx, struct http_reply *out);
	unsigned (*group)(void *ctx, const char *name, struct http_reply *out);
	unsigned (*instances)(void *ctx, const char *group /* or NULL */,
			      struct http_reply *out);
	/* An instance's figures from the built-in metrics store over the
	 * last window_ms (> 0: "?window=" was parsed by http.c; 0: not
	 * given, the callback picks its default). */
	unsigned (*instance_metrics)(void *ctx, const char *id,
				     int64_t window_ms, struct http_reply *out);
	unsigned (*events)(void *ctx, const char *group /* or NULL */,
			   const char *kind /* or NULL */, unsigned limit,
			   struct http_reply *out);
	unsigned (*set_desired)(void *ctx, const char *group, int desired,
				struct http_reply *out);
	unsigned (*set_paused)(void *ctx, const char *group, bool paused,
			       struct http_reply *out);
	/* POST /v1/groups/NAME/refresh {"action": "start"|"cancel"|"resume",
	 * "max_unavailable": "N"|"P%", "surge": N, "min_healthy": P,
	 * "checkpoints": [P, ...]}: parsed and checked by http.c */
	unsigned (*refresh)(void *ctx, const char *group,
			    const struct http_refresh *rq,
			    struct http_reply *out);
	/* Prometheus text into out->body; content type is set by http.c.
	 * admin: the request carried the right admin token (one with a wrong
	 * token is refused before). */
	unsigned (*metrics)(void *ctx, bool admin, struct http_reply *out);
	/* GET /v1/groups/NAME/targets: the group's load-balancer members */
	unsigned (*targets)(void *ctx, const char *group, struct http_reply *out);
	/* POST /v1/instances/ID/lifecycle: complete a lifecycle hook with
	 * result ("continue"/"abandon", as sent: the callback checks it);
	 * admin: the admin token was presented and right; otherwise token
	 * (may be NULL) is the hook call's. 403 counts as an authentication
	 * failure. */
	unsigned (*lifecycle)(void *ctx, const char *id, const char *result,
			      const char *token, bool admin,
			      struct http_reply *out);
};

/* Fill defaults into every zero field. */
void http_options_defaults(struct http_options *o);

/*
 * Start listening. api and ctx are borrowed and must outlive the server.
 * NULL with err_set() when the address is bad, in use, or TLS files fail.
 */
struct http_server *http_start(const struct http_options *opts,
			       const struct http_api *api, void *ctx);
/* The bound port (useful with port 0). */
unsigned http_port(const struct http_server *srv);
/*
 * Replace the admin token (a SIGHUP reload): requests from now on are
 * checked against token (copied; NULL or "": the admin API answers 403).
 * Any thread.
 */
void http_set_admin_token(struct http_server *srv, const char *token);
/* Stop accepting, finish in-flight requests, free. Accepts NULL. */
void http_stop(struct http_server *srv);

/*
 * Parsers of outside input, exported for tests and fuzzing.
 * http_form_get: find a field in an application/x-www-form-urlencoded
 *   body; returns a newly allocated decoded value (caller frees) or NULL.
 * http_heartbeat_parse: fill busy and metrics from a JSON body; an empty
 *   body means {} (busy false). -1 with err_set() on malformed input.
 * http_listen_parse: "host:port" / "[v6]:port" into host (caller frees)
 *   and port.
 */
char *http_form_get(const char *body, size_t len, const char *field);
int http_heartbeat_parse(const char *body, size_t len,
			 struct http_heartbeat *hb);
int http_listen_parse(const char *listen, char **host, unsigned *port);
/*
 * Copy in to out (NUL-terminated, cut to outlen) for a log: whatever
 * follows a "/checkin/" or "/heartbeat/" segment, in any case and
 * anywhere in the text, becomes "***" up to a blank or a quote, except
 * a UUID right after it (the instance id); non-printable bytes become
 * '?'. Every path and libmicrohttpd message logged goes through it.
 */
void http_redact(const char *in, char *out, size_t outlen);

#endif
