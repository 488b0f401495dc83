/*
 * Tests for http.c: the parsers (table-driven), and the real server on
 * 127.0.0.1 driven with libcurl: routing, authentication, rate limiting,
 * size limits and TLS. The daemon side is a small stub recording calls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "http.h"
#include "log.h"
#include "util.h"

#define GOOD_SECRET "s3cret-AbC_123"
#define ADMIN_TOKEN "admin-token-xyz"

struct stub {
	int checkins;
	char last_id[128];
	char last_form_id[128];
	char last_hostname[128];
	int heartbeats;
	bool last_busy;
	unsigned last_n_metrics;
	int desired;
	bool paused;
	char last_metrics_id[128];
	int64_t last_window_ms;
};

static unsigned
stub_checkin(void *ctx, const struct http_checkin *in, struct http_reply *out)
{
	struct stub *s = ctx;

	if (strcmp(in->secret, GOOD_SECRET) != 0)
		return http_reply_error(out, 401, "bad secret");
	s->checkins++;
	snprintf(s->last_id, sizeof(s->last_id), "%s", in->instance_id);
	snprintf(s->last_form_id, sizeof(s->last_form_id), "%s",
		 in->form_instance_id ? in->form_instance_id : "(null)");
	snprintf(s->last_hostname, sizeof(s->last_hostname), "%s",
		 in->hostname ? in->hostname : "(null)");
	strbuf_adds(&out->body, "{\"ok\":true}\n");
	return out->status = 200;
}

static unsigned
stub_heartbeat(void *ctx, const struct http_heartbeat *in,
	       struct http_reply *out)
{
	struct stub *s = ctx;

	if (strcmp(in->secret, GOOD_SECRET) != 0)
		return http_reply_error(out, 401, "bad secret");
	s->heartbeats++;
	s->last_busy = in->busy;
	s->last_n_metrics = in->n_metrics;
	strbuf_adds(&out->body, "{}\n");
	return out->status = 200;
}

static unsigned
stub_groups(void *ctx, struct http_reply *out)
{
	strbuf_adds(&out->body, "[\"web\"]\n");
	return out->status = 200;
}

static unsigned
stub_group(void *ctx, const char *name, struct http_reply *out)
{
	if (strcmp(name, "web") != 0)
		return http_reply_error(out, 404, "no group '%s'", name);
	strbuf_adds(&out->body, "{\"name\":\"web\"}\n");
	return out->status = 200;
}

static unsigned
stub_events(void *ctx, const char *group, const char *kind, unsigned limit,
	    struct http_reply *out)
{
	strbuf_addf(&out->body, "{\"group\":\"%s\",\"kind\":\"%s\",\"limit\":%u}\n",
		    group ? group : "", kind ? kind : "", limit);
	return out->status = 200;
}

static unsigned
stub_set_desired(void *ctx, const char *group, int desired,
		 struct http_reply *out)
{
	struct stub *s = ctx;

	s->desired = desired;
	return out->status = 200;
}

static unsigned
stub_set_paused(void *ctx, const char *group, bool paused,
		struct http_reply *out)
{
	struct stub *s = ctx;

	s->paused = paused;
	return out->status = 200;
}

static unsigned
stub_instance_metrics(void *ctx, const char *id, int64_t window_ms,
		      struct http_reply *out)
{
	struct stub *s = ctx;

	snprintf(s->last_metrics_id, sizeof(s->last_metrics_id), "%s", id);
	s->last_window_ms = window_ms;
	strbuf_adds(&out->body, "{}\n");
	return out->status = 200;
}

static unsigned
stub_metrics(void *ctx, bool admin, struct http_reply *out)
{
	strbuf_addf(&out->body, "va_up 1\nva_admin %d\n", admin);
	return out->status = 200;
}

static unsigned
stub_overview(void *ctx, struct http_reply *out)
{
	(void)ctx;
	strbuf_adds(&out->body, "{\"groups\":[]}\n");
	return out->status = 200;
}

static const struct http_api stub_api = {
	.overview = stub_overview,
	.checkin = stub_checkin,
	.heartbeat = stub_heartbeat,
	.groups = stub_groups,
	.group = stub_group,
	.events = stub_events,
	.set_desired = stub_set_desired,
	.set_paused = stub_set_paused,
	.instance_metrics = stub_instance_metrics,
	.metrics = stub_metrics,
};

struct fixture {
	struct stub stub;
	struct http_server *srv;
	char base[64];
};

static size_t
collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
	strbuf_add(ud, ptr, size * nmemb);
	return size * nmemb;
}

/* CURLOPT_SSLVERSION for the next requests (0: curl's default). */
static long tls_version;

/* Perform one request; returns the status, body into *body if given. */
static long
request(const char *base, const char *method, const char *path,
	const char *auth, const char *ctype, const char *data,
	struct strbuf *body)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct strbuf sink = STRBUF_INIT;
	char *url = xasprintf("%s%s", base, path);
	long code = -1;

	assert_non_null(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body ? body : &sink);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	if (tls_version)
		curl_easy_setopt(c, CURLOPT_SSLVERSION, tls_version);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	if (auth) {
		char *hdr = xasprintf("Authorization: %s", auth);

		h = curl_slist_append(h, hdr);
		free(hdr);
	}
	if (ctype) {
		char *hdr = xasprintf("Content-Type: %s", ctype);

		h = curl_slist_append(h, hdr);
		free(hdr);
	}
	if (h)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (data)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	strbuf_release(&sink);
	free(url);
	return code;
}

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct http_options o = {
		.listen = "127.0.0.1:0",
		.admin_token = ADMIN_TOKEN,
		.max_body = 1024,
		.auth_fail_limit = 3,
	};

	f->srv = http_start(&o, &stub_api, &f->stub);
	if (!f->srv)
		fail_msg("http_start: %s", err_msg());
	snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u",
		 http_port(f->srv));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	http_stop(f->srv);
	free(f);
	return 0;
}

static void
test_healthz_and_metrics(void **state)
{
	struct fixture *f = *state;
	struct strbuf b = STRBUF_INIT;

	assert_int_equal(request(f->base, "GET", "/healthz", NULL, NULL, NULL, &b), 200);
	assert_string_equal(strbuf_str(&b), "ok\n");
	strbuf_reset(&b);
	assert_int_equal(request(f->base, "GET", "/metrics", NULL, NULL, NULL, &b), 200);
	assert_string_equal(strbuf_str(&b), "va_up 1\nva_admin 0\n");
	/* the admin token, when presented, must be right, and is passed on
	 * (api.c then shows the per-instance series) */
	strbuf_reset(&b);
	assert_int_equal(request(f->base, "GET", "/metrics", "Bearer " ADMIN_TOKEN,
				 NULL, NULL, &b), 200);
	assert_string_equal(strbuf_str(&b), "va_up 1\nva_admin 1\n");
	assert_int_equal(request(f->base, "GET", "/metrics", "Bearer wrong", NULL,
				 NULL, NULL), 401);
	strbuf_release(&b);
	assert_int_equal(request(f->base, "GET", "/nope", NULL, NULL, NULL, NULL), 404);
	assert_int_equal(request(f->base, "GET", "/v1/checkin/a%2Fb/x", NULL, NULL, NULL, NULL), 404);
}

/* Headers of one GET, lower-cased, into *hdrs; the status. */
static size_t
collect_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
	for (size_t i = 0; i < size * nmemb; i++) {
		char c = ptr[i];

		strbuf_addc(ud, (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c);
	}
	return size * nmemb;
}

static long
get_headers(const char *base, const char *path, struct strbuf *hdrs,
	    struct strbuf *body)
{
	CURL *c = curl_easy_init();
	char *url = xasprintf("%s%s", base, path);
	long code = -1;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	free(url);
	return code;
}

/*
 * The status page (ui.h): GET / and /ui/NAME serve the files built into
 * the binary, and /v1/overview its public data, without a token; every
 * answer, JSON too, carries the headers that keep the page's data from
 * being sniffed, framed or run with anything but our own files. The
 * admin API still wants its token.
 */
static void
test_status_page(void **state)
{
	struct fixture *f = *state;
	static const char *const paths[] = {"/", "/ui/app.js", "/ui/style.css",
					    "/ui/index.html", "/v1/overview",
					    "/v1/groups", "/nope", "/ui/icon.svg"};
	static const long want[] = {200, 200, 200, 200, 200, 401, 404, 200};
	static const char *const type[] = {
		"content-type: text/html; charset=utf-8",
		"content-type: text/javascript; charset=utf-8",
		"content-type: text/css; charset=utf-8",
		"content-type: text/html; charset=utf-8",
		"content-type: application/json",
		"content-type: application/json",
		"content-type: application/json",
		"content-type: image/svg+xml",
	};

	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		struct strbuf h = STRBUF_INIT, b = STRBUF_INIT;

		assert_int_equal(get_headers(f->base, paths[i], &h, &b), want[i]);
		assert_non_null(strstr(strbuf_str(&h), type[i]));
		assert_non_null(strstr(strbuf_str(&h), "x-content-type-options: nosniff\r\n"));
		assert_non_null(strstr(strbuf_str(&h), "x-frame-options: deny\r\n"));
		assert_non_null(strstr(strbuf_str(&h),
				       "content-security-policy: default-src 'self'; "));
		assert_non_null(strstr(strbuf_str(&h), "frame-ancestors 'none'"));
		if (i == 0) {
			/* the page names its files; none from elsewhere */
			assert_non_null(strstr(strbuf_str(&b), "src=\"/ui/app.js\""));
			assert_null(strstr(strbuf_str(&b), "http"));
			assert_null(strstr(strbuf_str(&b), "<style"));
			assert_null(strstr(strbuf_str(&b), " on"));
		}
		if (i == 4)
			assert_string_equal(strbuf_str(&b), "{\"groups\":[]}\n");
		strbuf_release(&h);
		strbuf_release(&b);
	}
	/* read-only: the page's routes take nothing but GET (and HEAD) */
	assert_int_equal(request(f->base, "POST", "/", NULL, NULL, "x", NULL), 405);
	assert_int_equal(request(f->base, "PUT", "/v1/overview", NULL, NULL, "x", NULL), 405);
	assert_int_equal(request(f->base, "GET", "/ui/nope.js", NULL, NULL, NULL, NULL), 404);
	assert_int_equal(request(f->base, "GET", "/ui/", NULL, NULL, NULL, NULL), 404);
	assert_int_equal(request(f->base, "GET", "/ui/../v1/groups", NULL, NULL, NULL, NULL), 404);
}

static void
test_checkin(void **state)
{
	struct fixture *f = *state;

	/* cloud-init phone_home posts form fields */
	assert_int_equal(request(f->base, "POST", "/v1/checkin/i-0001/" GOOD_SECRET,
				 NULL, "application/x-www-form-urlencoded",
				 "instance_id=i-0001&hostname=web-1&pub_key_ed25519=ssh-ed25519+AAAA%2Bx",
				 NULL), 200);
	assert_int_equal(f->stub.checkins, 1);
	assert_string_equal(f->stub.last_id, "i-0001");
	assert_string_equal(f->stub.last_form_id, "i-0001");
	assert_string_equal(f->stub.last_hostname, "web-1");
	/* the fields arrive decoded: '+' and %XX */
	assert_int_equal(request(f->base, "POST", "/v1/checkin/i-0001/" GOOD_SECRET,
				 NULL, "application/x-www-form-urlencoded",
				 "hostname=web%2D2+x%2By&instance_id=i%2D0001",
				 NULL), 200);
	assert_string_equal(f->stub.last_form_id, "i-0001");
	assert_string_equal(f->stub.last_hostname, "web-2 x+y");
	assert_int_equal(request(f->base, "GET", "/v1/checkin/i-0001/" GOOD_SECRET,
				 NULL, NULL, NULL, NULL), 405);
}

/*
 * Failed authentications count per (address, instance) for guests and
 * per address for the admin API, apart: ten bad check-ins of one guest
 * behind 127.0.0.1 (QEMU user networking: every guest) must refuse
 * neither the other guests nor the operator.
 */
static void
test_auth_rate_limit(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < 3; i++)
		assert_int_equal(request(f->base, "POST", "/v1/checkin/i-1/wrong",
					 NULL, NULL, "x=1", NULL), 401);
	/* limit reached: even the right secret is refused for a while */
	assert_int_equal(request(f->base, "POST", "/v1/checkin/i-1/" GOOD_SECRET,
				 NULL, NULL, "x=1", NULL), 429);
	assert_int_equal(request(f->base, "POST", "/v1/heartbeat/i-1/" GOOD_SECRET,
				 NULL, NULL, "{}", NULL), 429);
	assert_int_equal(f->stub.checkins, 0);
	/* another guest from the same address, and the admin API: served */
	assert_int_equal(request(f->base, "POST", "/v1/checkin/i-2/" GOOD_SECRET,
				 NULL, NULL, "x=1", NULL), 200);
	assert_int_equal(request(f->base, "GET", "/v1/groups", "Bearer " ADMIN_TOKEN,
				 NULL, NULL, NULL), 200);
	/* the admin API's own limit leaves the guests alone */
	for (int i = 0; i < 3; i++)
		assert_int_equal(request(f->base, "GET", "/v1/groups", "Bearer nope",
					 NULL, NULL, NULL), 401);
	assert_int_equal(request(f->base, "GET", "/v1/groups", "Bearer " ADMIN_TOKEN,
				 NULL, NULL, NULL), 429);
	assert_int_equal(request(f->base, "POST", "/v1/heartbeat/i-2/" GOOD_SECRET,
				 NULL, NULL, "{}", NULL), 200);
}

/* Only the canonical path routes: "//v1/checkin/ID/SECRET" is a 404. */
static void
test_canonical_paths(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
		"//v1/checkin/i-1/" GOOD_SECRET,
		"/v1//checkin/i-1/" GOOD_SECRET,
		"/v1/checkin//i-1/" GOOD_SECRET,
		"/v1/checkin/i-1//" GOOD_SECRET,
		"/v1/checkin/i-1/" GOOD_SECRET "/",
		"/v1/heartbeat/i-1/" GOOD_SECRET "//",
		"//healthz",
		"/healthz/",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(request(f->base, "POST", bad[i], NULL, NULL,
					 "x=1", NULL), 404);
	assert_int_equal(f->stub.checkins, 0);
	assert_int_equal(f->stub.heartbeats, 0);
	assert_int_equal(request(f->base, "GET", "/healthz", NULL, NULL, NULL,
				 NULL), 200);
}

static void
test_redact(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"/v1/checkin/0b5a6c1e-8f0a-4c39-9d7e-2f1b8a3c4d5e/SECRET",
		 "/v1/checkin/0b5a6c1e-8f0a-4c39-9d7e-2f1b8a3c4d5e/***"},
		{"/v1/heartbeat/0B5A6C1E-8F0A-4C39-9D7E-2F1B8A3C4D5E/S/x",
		 "/v1/heartbeat/0B5A6C1E-8F0A-4C39-9D7E-2F1B8A3C4D5E/***"},
		/* not a UUID where the id goes: everything after is hidden */
		{"/v1/checkin/i-1/SECRET", "/v1/checkin/***"},
		{"//v1//checkin//0b5a6c1e-8f0a-4c39-9d7e-2f1b8a3c4d5e//SECRET",
		 "//v1//checkin/***"},
		{"/v1/CHECKIN/SECRET", "/v1/CHECKIN/***"},
		{"/prefix/v1/checkin/0b5a6c1e-8f0a-4c39-9d7e-2f1b8a3c4d5e/S",
		 "/prefix/v1/checkin/0b5a6c1e-8f0a-4c39-9d7e-2f1b8a3c4d5e/***"},
		{"/v1/checkin/0b5a6c1e-8f0a-4c39-9d7e-2f1b8a3c4d5e",
		 "/v1/checkin/0b5a6c1e-8f0a-4c39-9d7e-2f1b8a3c4d5e"},
		/* libmicrohttpd's messages quote the URL */
		{"Failed to send data in request for `/v1/heartbeat/x/SECRET'. Error: x",
		 "Failed to send data in request for `/v1/heartbeat/***'. Error: x"},
		{"/v1/groups/web/desired", "/v1/groups/web/desired"},
		{"/checkinx/SECRET", "/checkinx/SECRET"},
		{"/a\x01" "b\x7f", "/a?b?"},
	};
	char out[256], tiny[8];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		http_redact(cases[i].in, out, sizeof(out));
		assert_string_equal(out, cases[i].out);
	}
	http_redact("/v1/checkin/SECRETSECRET", tiny, sizeof(tiny));
	assert_string_equal(tiny, "/v1/che");
}

/* A raw connection to the server at base ("http://127.0.0.1:PORT"). */
static int
raw_connect(const char *base)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = {5, 0};

	assert_true(fd >= 0);
	sa.sin_port = htons((uint16_t)atoi(strrchr(base, ':') + 1));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Send a whole request, return the status of the answer (-1: none). */
static int
raw_request(const char *base, const char *text)
{
	int fd = raw_connect(base);
	char buf[512];
	ssize_t n;
	int status = -1;

	assert_int_equal(send(fd, text, strlen(text), MSG_NOSIGNAL),
			 (ssize_t)strlen(text));
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	if (n > 0) {
		buf[n] = '\0';
		if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
			status = -1;
	}
	close(fd);
	return status;
}

static void
test_content_length(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(raw_request(f->base,
		"POST /v1/checkin/i-1/" GOOD_SECRET " HTTP/1.1\r\nHost: x\r\n"
		"Content-Length: 3\r\nContent-Length: 30\r\n\r\nx=1"), 400);
	assert_int_equal(raw_request(f->base,
		"POST /v1/checkin/i-1/" GOOD_SECRET " HTTP/1.1\r\nHost: x\r\n"
		"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
		"3\r\nx=1\r\n0\r\n\r\n"), 400);
	assert_int_equal(f->stub.checkins, 0);
	/* one Content-Length, or the same twice over, is fine */
	assert_int_equal(raw_request(f->base,
		"POST /v1/checkin/i-1/" GOOD_SECRET " HTTP/1.1\r\nHost: x\r\n"
		"Content-Length: 3\r\n\r\nx=1"), 200);
	assert_int_equal(raw_request(f->base,
		"POST /v1/checkin/i-1/" GOOD_SECRET " HTTP/1.1\r\nHost: x\r\n"
		"Content-Length: 3\r\ncontent-length: 3\r\n\r\nx=1"), 200);
	assert_int_equal(f->stub.checkins, 2);
}

/*
 * Slow clients: a request must arrive whole within request_timeout (a
 * header line now and then does not extend it), and one address holding
 * every slot it may have with slow requests makes room for a new client.
 */
static void
test_slow_clients(void **state)
{
	struct http_options o = {
		.listen = "127.0.0.1:0",
		.admin_token = ADMIN_TOKEN,
		.max_per_address = 4,
		.request_timeout_ms = 1500,
	};
	struct stub stub = {0};
	struct http_server *srv = http_start(&o, &stub_api, &stub);
	char base[64];
	int fds[4], evicted = 0;
	int64_t t0, closed_at[4];

	(void)state;
	assert_non_null(srv);
	snprintf(base, sizeof(base), "http://127.0.0.1:%u", http_port(srv));
	t0 = util_now_ms();
	for (int i = 0; i < 4; i++) {
		fds[i] = raw_connect(base);
		static const char line[] = "POST /v1/checkin/i-1/x HTTP/1.1\r\n";

		assert_true(send(fds[i], line, strlen(line), MSG_NOSIGNAL) ==
			    (ssize_t)strlen(line));
	}
	/* every slot of 127.0.0.1 is held by a slow request; once they have
	 * waited a while, a new client still gets in */
	usleep(700 * 1000);
	for (int i = 0; i < 4; i++)
		assert_true(send(fds[i], "X-A: b\r\n", 8, MSG_NOSIGNAL) == 8);
	assert_int_equal(request(base, "POST", "/v1/checkin/i-2/" GOOD_SECRET,
				 NULL, NULL, "x=1", NULL), 200);
	/* one slow request (the longest waiting) was closed to make room,
	 * the others at their deadline although they keep sending */
	for (int i = 0; i < 4; i++)
		closed_at[i] = -1;
	while (util_now_ms() - t0 < 5000) {
		int open = 0;

		for (int i = 0; i < 4; i++) {
			char buf[256];
			ssize_t n;

			if (closed_at[i] >= 0)
				continue;
			n = recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN &&
				       errno != EWOULDBLOCK)) {
				closed_at[i] = util_now_ms() - t0;
				continue;
			}
			open++;
			(void)send(fds[i], "X-A: b\r\n", 8, MSG_NOSIGNAL);
		}
		if (!open)
			break;
		usleep(100 * 1000);
	}
	for (int i = 0; i < 4; i++) {
		print_message("slow request %d closed after %lld ms\n", i,
			      (long long)closed_at[i]);
		assert_true(closed_at[i] >= 0);
		if (closed_at[i] < 1400)
			evicted++;
		else
			assert_true(closed_at[i] < 2500);
		close(fds[i]);
	}
	assert_int_equal(evicted, 1);
	http_stop(srv);
}

static void
test_heartbeat(void **state)
{
	struct fixture *f = *state;
	struct strbuf b = STRBUF_INIT;

	assert_int_equal(request(f->base, "POST", "/v1/heartbeat/i-2/" GOOD_SECRET,
				 NULL, "application/json",
				 "{\"busy\": true, \"metrics\": {\"queue\": 12.5, \"conns\": 3}}",
				 NULL), 200);
	assert_int_equal(f->stub.heartbeats, 1);
	assert_true(f->stub.last_busy);
	assert_int_equal(f->stub.last_n_metrics, 2);
	assert_int_equal(request(f->base, "POST", "/v1/heartbeat/i-2/" GOOD_SECRET,
				 NULL, "application/json", "{\"busy\": \"yes\"}", &b),
			 400);
	assert_non_null(strstr(strbuf_str(&b), "busy"));
	strbuf_release(&b);
	assert_int_equal(request(f->base, "POST", "/v1/heartbeat/i-2/" GOOD_SECRET,
				 NULL, "application/json", "{not json", NULL), 400);
	/* an empty body is a plain heartbeat */
	assert_int_equal(request(f->base, "POST", "/v1/heartbeat/i-2/" GOOD_SECRET,
				 NULL, NULL, "", NULL), 200);
	assert_false(f->stub.last_busy);
}

static void
test_body_limit(void **state)
{
	struct fixture *f = *state;
	char *big = xmalloc(4096);

	memset(big, 'a', 4095);
	big[4095] = '\0';
	assert_int_equal(request(f->base, "POST", "/v1/heartbeat/i-3/" GOOD_SECRET,
				 NULL, "application/json", big, NULL), 413);
	assert_int_equal(f->stub.heartbeats, 0);
	free(big);
}

static void
test_admin(void **state)
{
	struct fixture *f = *state;
	struct strbuf b = STRBUF_INIT;

	assert_int_equal(request(f->base, "GET", "/v1/groups", NULL, NULL, NULL, NULL), 401);
	assert_int_equal(request(f->base, "GET", "/v1/groups", "Bearer nope",
				 NULL, NULL, NULL), 401);
	assert_int_equal(request(f->base, "GET", "/v1/groups", "Bearer " ADMIN_TOKEN,
				 NULL, NULL, &b), 200);
	assert_string_equal(strbuf_str(&b), "[\"web\"]\n");
	assert_int_equal(request(f->base, "GET", "/v1/groups/db", "Bearer " ADMIN_TOKEN,
				 NULL, NULL, NULL), 404);
	strbuf_reset(&b);
	assert_int_equal(request(f->base, "GET", "/v1/events?group=web&kind=decision&limit=5",
				 "Bearer " ADMIN_TOKEN, NULL, NULL, &b), 200);
	assert_string_equal(strbuf_str(&b), "{\"group\":\"web\",\"kind\":\"decision\",\"limit\":5}\n");
	assert_int_equal(request(f->base, "GET", "/v1/events?limit=0",
				 "Bearer " ADMIN_TOKEN, NULL, NULL, NULL), 400);
	assert_int_equal(request(f->base, "GET", "/v1/events?group=a%20b",
				 "Bearer " ADMIN_TOKEN, NULL, NULL, NULL), 400);
	assert_int_equal(request(f->base, "PUT", "/v1/groups/web/desired",
				 "Bearer " ADMIN_TOKEN, "application/json",
				 "{\"desired\": 4}", NULL), 200);
	assert_int_equal(f->stub.desired, 4);
	assert_int_equal(request(f->base, "PUT", "/v1/groups/web/desired",
				 "Bearer " ADMIN_TOKEN, "application/json",
				 "{\"desired\": -1}", NULL), 400);
	assert_int_equal(request(f->base, "PUT", "/v1/groups/web/desired",
				 "Bearer " ADMIN_TOKEN, "application/json",
				 "{\"desired\": \"4\"}", NULL), 400);
	assert_int_equal(request(f->base, "POST", "/v1/groups/web/pause",
				 "Bearer " ADMIN_TOKEN, NULL, "", NULL), 200);
	assert_true(f->stub.paused);
	assert_int_equal(request(f->base, "POST", "/v1/groups/web/resume",
				 "Bearer " ADMIN_TOKEN, NULL, "", NULL), 200);
	assert_false(f->stub.paused);
	/* no instances callback in the stub: 404, not a crash */
	assert_int_equal(request(f->base, "GET", "/v1/instances",
				 "Bearer " ADMIN_TOKEN, NULL, NULL, NULL), 404);
	strbuf_release(&b);
}

/* GET /v1/instances/ID/metrics: the window is parsed by http.c. */
static void
test_instance_metrics(void **state)
{
	static const struct {
		const char *method, *path, *auth;
		long status;
		int64_t window_ms; /* what the callback got, on 200 */
	} cases[] = {
		{"GET", "/v1/instances/abc/metrics", "Bearer " ADMIN_TOKEN, 200, 0},
		{"GET", "/v1/instances/abc/metrics?window=90s", "Bearer " ADMIN_TOKEN, 200, 90000},
		{"GET", "/v1/instances/abc/metrics?window=1h30m", "Bearer " ADMIN_TOKEN, 200, 5400000},
		{"GET", "/v1/instances/abc/metrics?window=250ms", "Bearer " ADMIN_TOKEN, 200, 250},
		{"GET", "/v1/instances/abc/metrics?window=0s", "Bearer " ADMIN_TOKEN, 400, 0},
		{"GET", "/v1/instances/abc/metrics?window=", "Bearer " ADMIN_TOKEN, 400, 0},
		{"GET", "/v1/instances/abc/metrics?window=5", "Bearer " ADMIN_TOKEN, 400, 0},
		{"GET", "/v1/instances/abc/metrics?window=-5m", "Bearer " ADMIN_TOKEN, 400, 0},
		{"GET", "/v1/instances/abc/metrics?window=99999999999999999d", "Bearer " ADMIN_TOKEN, 400, 0},
		{"POST", "/v1/instances/abc/metrics", "Bearer " ADMIN_TOKEN, 405, 0},
		{"GET", "/v1/instances/abc/metrics", NULL, 401, 0},
		{"GET", "/v1/instances/a%20b/metrics", "Bearer " ADMIN_TOKEN, 404, 0},
		{"GET", "/v1/instances/abc/metrics/x", "Bearer " ADMIN_TOKEN, 404, 0},
		{"GET", "/v1/instances/abc/metric", "Bearer " ADMIN_TOKEN, 404, 0},
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		long st;

		f->stub.last_metrics_id[0] = '\0';
		f->stub.last_window_ms = -1;
		st = request(f->base, cases[i].method, cases[i].path,
			     cases[i].auth, NULL,
			     strcmp(cases[i].method, "POST") == 0 ? "" : NULL, NULL);
		if (st != cases[i].status)
			fail_msg("%s %s: %ld, want %ld", cases[i].method,
				 cases[i].path, st, cases[i].status);
		if (st == 200) {
			assert_string_equal(f->stub.last_metrics_id, "abc");
			assert_int_equal(f->stub.last_window_ms, cases[i].window_ms);
		} else {
			assert_string_equal(f->stub.last_metrics_id, "");
		}
	}
}

static void
test_admin_disabled(void **state)
{
	struct stub stub = {0};
	struct http_options o = {.listen = "[::1]:0"};
	struct http_server *srv = http_start(&o, &stub_api, &stub);
	char base[64];

	if (!srv) {
		/* a machine without IPv6 loopback */
		o.listen = "127.0.0.1:0";
		srv = http_start(&o, &stub_api, &stub);
		assert_non_null(srv);
		snprintf(base, sizeof(base), "http://127.0.0.1:%u", http_port(srv));
	} else {
		snprintf(base, sizeof(base), "http://[::1]:%u", http_port(srv));
	}
	assert_int_equal(request(base, "GET", "/v1/groups", "Bearer x", NULL,
				 NULL, NULL), 403);
	http_stop(srv);
}

static void
test_start_errors(void **state)
{
	struct fixture *f = *state;
	struct stub stub = {0};
	char *listen = xasprintf("127.0.0.1:%u", http_port(f->srv));
	struct http_options o = {.listen = listen};

	assert_null(http_start(&o, &stub_api, &stub));
	assert_non_null(strstr(err_msg(), "cannot listen"));
	free(listen);
	o.listen = "127.0.0.1";
	assert_null(http_start(&o, &stub_api, &stub));
	o.listen = "127.0.0.1:99999";
	assert_null(http_start(&o, &stub_api, &stub));
	o.listen = "127.0.0.1:0";
	o.tls_cert_path = "/nonexistent.pem";
	o.tls_key_path = "/nonexistent.key";
	assert_null(http_start(&o, &stub_api, &stub));
	assert_non_null(strstr(err_msg(), "TLS certificate"));
}

static void
test_tls(void **state)
{
	char dir[] = "/tmp/va-http-tls-XXXXXX";
	char *cmd;
	struct http_options o = {.listen = "127.0.0.1:0"};
	struct stub stub = {0};
	struct http_server *srv;
	char base[64];

	assert_non_null(mkdtemp(dir));
	cmd = xasprintf("cd %s && printf 'cn = localhost\\nexpiration_days = 2\\ntls_www_server\\n' > tmpl && "
			"certtool --generate-privkey --key-type=ecdsa --outfile key.pem 2>/dev/null && "
			"certtool --generate-self-signed --load-privkey key.pem --template tmpl "
			"--outfile cert.pem >/dev/null 2>&1", dir);
	if (system(cmd) != 0) {
		free(cmd);
		fail_msg("certtool failed (package gnutls-bin, installed by scripts/setup.sh)");
	}
	free(cmd);
	o.tls_cert_path = cmd = xasprintf("%s/cert.pem", dir);
	o.tls_key_path = xasprintf("%s/key.pem", dir);
	/* a key others may read is refused, as ssh does */
	assert_int_equal(chmod(o.tls_key_path, 0640), 0);
	assert_null(http_start(&o, &stub_api, &stub));
	assert_non_null(strstr(err_msg(), "readable by its owner only"));
	assert_non_null(strstr(err_msg(), "0640"));
	assert_int_equal(chmod(o.tls_key_path, 0600), 0);
	srv = http_start(&o, &stub_api, &stub);
	if (!srv)
		fail_msg("http_start with TLS: %s", err_msg());
	snprintf(base, sizeof(base), "https://127.0.0.1:%u", http_port(srv));
	assert_int_equal(request(base, "GET", "/healthz", NULL, NULL, NULL, NULL), 200);
	/* TLS 1.2 and later only */
	tls_version = CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2;
	assert_int_equal(request(base, "GET", "/healthz", NULL, NULL, NULL, NULL), 200);
	tls_version = CURL_SSLVERSION_TLSv1_0 | CURL_SSLVERSION_MAX_TLSv1_1;
	assert_int_equal(request(base, "GET", "/healthz", NULL, NULL, NULL, NULL), -1);
	tls_version = 0;
	/* plain HTTP to a TLS port does not get an answer */
	snprintf(base, sizeof(base), "http://127.0.0.1:%u", http_port(srv));
	assert_int_not_equal(request(base, "GET", "/healthz", NULL, NULL, NULL, NULL), 200);
	http_stop(srv);
	free((char *)o.tls_key_path);
	free(cmd);
	cmd = xasprintf("rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static void
test_form_parse(void **state)
{
	static const struct {
		const char *body, *field, *want;
	} cases[] = {
		{"instance_id=i-1&hostname=h", "instance_id", "i-1"},
		{"instance_id=i-1&hostname=h", "hostname", "h"},
		{"a=1&b=hello+world%21", "b", "hello world!"},
		{"a=1&b=", "b", ""},
		{"a=1&b", "b", NULL},
		{"ab=1", "a", NULL},
		{"", "a", NULL},
		{"&&&=&a=%zz", "a", "%zz"},
		{"a=%00x", "a", ""},
		/* '+' is a space, %2B a plus; %XX in either case */
		{"hostname=a+b+%2B+c", "hostname", "a b + c"},
		{"hostname=%41%6a%2f%3A", "hostname", "Aj/:"},
		/* an encoded '&' or '=' does not split the body */
		{"a=x%26b%3Dy&b=z", "b", "z"},
		{"a=x%26b%3Dy&b=z", "a", "x&b=y"},
		/* UTF-8 arrives percent-encoded, bytes as they are */
		{"hostname=caf%C3%A9", "hostname", "caf\xc3\xa9"},
		/* incomplete escapes stay as they are */
		{"a=100%", "a", "100%"},
		{"a=%4", "a", "%4"},
		{"a=%+1", "a", "% 1"},
		/* the first occurrence wins; names are compared as sent */
		{"a=1&a=2", "a", "1"},
		{"instance%5Fid=x", "instance_id", NULL},
		{"x=1&instance_id=i-2&hostname=h", "instance_id", "i-2"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *v = http_form_get(cases[i].body, strlen(cases[i].body),
					cases[i].field);

		if (!cases[i].want) {
			assert_null(v);
		} else {
			assert_non_null(v);
			assert_string_equal(v, cases[i].want);
		}
		free(v);
	}
}

/* Error bodies are JSON whatever the message holds (json-c escapes). */
static void
test_reply_error_json(void **state)
{
	static const struct {
		const char *msg, *body;
	} cases[] = {
		{"plain", "{\"error\":\"plain\"}\n"},
		{"q\"b\\s /x", "{\"error\":\"q\\\"b\\\\s /x\"}\n"},
		{"nl\n cr\r tab\t bs\b ff\f", "{\"error\":\"nl\\n cr\\r tab\\t bs\\b ff\\f\"}\n"},
		{"c0 \x01\x1f del \x7f", "{\"error\":\"c0 \\u0001\\u001f del \x7f\"}\n"},
		{"caf\xc3\xa9 \xf0\x9f\x98\x80", "{\"error\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}\n"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct http_reply r = {0, STRBUF_INIT, NULL};

		assert_int_equal(http_reply_error(&r, 400, "%s", cases[i].msg), 400);
		assert_string_equal(strbuf_str(&r.body), cases[i].body);
		assert_string_equal(r.content_type, "application/json");
		strbuf_release(&r.body);
	}
}

static void
test_heartbeat_parse(void **state)
{
	static const struct {
		const char *body;
		int ok;
		bool busy;
		unsigned n;
	} cases[] = {
		{"", 1, false, 0},
		{"{}", 1, false, 0},
		{"{\"busy\":true}", 1, true, 0},
		{"{\"busy\":false,\"other\":[1,2]}", 1, false, 0},
		{"{\"metrics\":{\"a\":1,\"b.c\":2.5}}  \n", 1, false, 2},
		{"[]", 0, false, 0},
		{"{\"busy\":1}", 0, false, 0},
		{"{\"metrics\":[1]}", 0, false, 0},
		{"{\"metrics\":{\"a b\":1}}", 0, false, 0},
		{"{\"metrics\":{\"a\":\"1\"}}", 0, false, 0},
		{"{} {}", 0, false, 0},
		{"{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{}}}}}}}}}", 0, false, 0},
		{"{\"busy\":tru", 0, false, 0},
		{"{\"metrics\":{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1,\"f\":1,\"g\":1,\"h\":1,"
		 "\"i\":1,\"j\":1,\"k\":1,\"l\":1,\"m\":1,\"n\":1,\"o\":1,\"p\":1,\"q\":1}}", 0, false, 0},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct http_heartbeat hb;
		int rc;

		memset(&hb, 0, sizeof(hb));
		rc = http_heartbeat_parse(cases[i].body, strlen(cases[i].body), &hb);
		if (cases[i].ok) {
			if (rc != 0)
				fail_msg("case %zu: %s", i, err_msg());
			assert_int_equal(hb.busy, cases[i].busy);
			assert_int_equal(hb.n_metrics, cases[i].n);
		} else {
			if (rc != -1)
				fail_msg("case %zu accepted: %s", i, cases[i].body);
		}
	}
}

static void
test_listen_parse(void **state)
{
	static const struct {
		const char *in, *host;
		unsigned port;
	} cases[] = {
		{"127.0.0.1:8470", "127.0.0.1", 8470},
		{"[::1]:80", "::1", 80},
		{"localhost:0", "localhost", 0},
		{":8470", "", 8470},
		{"127.0.0.1", NULL, 0},
		{"::1:80", NULL, 0},
		{"[::1]80", NULL, 0},
		{"h:-1", NULL, 0},
		{"h:65536", NULL, 0},
		{"h:", NULL, 0},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *host = NULL;
		unsigned port = 0;
		int rc = http_listen_parse(cases[i].in, &host, &port);

		if (cases[i].host) {
			assert_int_equal(rc, 0);
			assert_string_equal(host, cases[i].host);
			assert_int_equal(port, cases[i].port);
		} else {
			assert_int_equal(rc, -1);
			assert_non_null(strstr(err_msg(), cases[i].in));
		}
		free(host);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_form_parse),
		cmocka_unit_test(test_reply_error_json),
		cmocka_unit_test(test_heartbeat_parse),
		cmocka_unit_test(test_listen_parse),
		cmocka_unit_test_setup_teardown(test_healthz_and_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_page, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_canonical_paths, setup, teardown),
		cmocka_unit_test(test_redact),
		cmocka_unit_test_setup_teardown(test_content_length, setup, teardown),
		cmocka_unit_test(test_slow_clients),
		cmocka_unit_test_setup_teardown(test_heartbeat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_instance_metrics, setup, teardown),
		cmocka_unit_test(test_admin_disabled),
		cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
		cmocka_unit_test(test_tls),
	};
	int rc;

	log_set_level(getenv("VA_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
