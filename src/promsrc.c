/*
 * promsrc.c: Prometheus instant queries on a worker thread per source,
 * and the parser of their answers (see promsrc.h).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "log.h"
#include "policy.h"
#include "promsrc.h"
#include "url.h"
#include "util.h"

LOG_TAG("promsrc");

/* Prometheus' own error text is quoted up to this many bytes. */
#define PROM_ERROR_QUOTE 160

/* A line for *why: formatted, cut at whylen, control characters as ' '. */
static void __attribute__((format(printf, 3, 4)))
why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	for (char *p = why; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
}

/* s shortened to max bytes (with "..." when cut), into buf. */
static const char *
shorten(const char *s, char *buf, size_t bufsize, size_t max)
{
	size_t n = strlen(s);

	if (n <= max) {
		snprintf(buf, bufsize, "%s", s);
		return buf;
	}
	/* do not cut a UTF-8 sequence in two */
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	snprintf(buf, bufsize, "%.*s...", (int)max, s);
	return buf;
}

static const char *
jstr_member(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* [TIME, "VALUE"]: the value, checked. */
static int
sample_value(struct json_object *pair, double *out, char *why, size_t whylen)
{
	struct json_object *v;
	const char *s;
	char *end;
	double x;

	if (!json_object_is_type(pair, json_type_array) ||
	    json_object_array_length(pair) != 2 ||
	    !(v = json_object_array_get_idx(pair, 1)) ||
	    !json_object_is_type(v, json_type_string)) {
		why_set(why, whylen, "not Prometheus' answer: a sample is not "
			"[time, \"value\"]");
		return -1;
	}
	s = json_object_get_string(v);
	errno = 0;
	x = strtod(s, &end);
	if (!*s || *end || isspace((unsigned char)*s) ||
	    (errno == ERANGE && !isinf(x) && x != 0)) {
		char q[48];

		why_set(why, whylen, "not Prometheus' answer: the value '%s' "
			"is not a number", shorten(s, q, sizeof(q), 32));
		return -1;
	}
	if (isnan(x)) {
		why_set(why, whylen, "the value is NaN (e.g. a rate over no "
			"samples, or 0/0)");
		return -1;
	}
	if (isinf(x)) {
		why_set(why, whylen, "the value is %sinfinite (e.g. a division "
			"by zero)", x < 0 ? "minus " : "");
		return -1;
	}
	if (x < 0) {
		why_set(why, whylen, "the value %.6g is negative", x);
		return -1;
	}
	if (x > POLICY_APP_VALUE_MAX) {
		why_set(why, whylen, "the value %.6g is above %g", x,
			POLICY_APP_VALUE_MAX);
		return -1;
	}
	*out = x + 0.0; /* no -0 */
	return 0;
}

static int
parse_root(struct json_object *root, double *out, char *why, size_t whylen)
{
	struct json_object *data, *res;
	const char *status, *rt;

	if (!json_object_is_type(root, json_type_object)) {
		why_set(why, whylen, "not Prometheus' answer: not a JSON object");
		return -1;
	}
	status = jstr_member(root, "status");
	if (status && strcmp(status, "error") == 0) {
		const char *type = jstr_member(root, "errorType");
		const char *text = jstr_member(root, "error");
		char q[PROM_ERROR_QUOTE + 8];

		why_set(why, whylen, "Prometheus answered an error: %s%s%s",
			type ? type : "", type ? ": " : "",
			text ? shorten(text, q, sizeof(q), PROM_ERROR_QUOTE)
			     : "(no text)");
		return -1;
	}
	if (!status || strcmp(status, "success") != 0) {
		why_set(why, whylen, "not Prometheus' answer: no \"status\": "
			"\"success\"");
		return -1;
	}
	if (!json_object_object_get_ex(root, "data", &data) ||
	    !json_object_is_type(data, json_type_object) ||
	    !(rt = jstr_member(data, "resultType")) ||
	    !json_object_object_get_ex(data, "result", &res)) {
		why_set(why, whylen, "not Prometheus' answer: no data.resultType "
			"and data.result");
		return -1;
	}
	if (strcmp(rt, "scalar") == 0)
		return sample_value(res, out, why, whylen);
	if (strcmp(rt, "vector") == 0) {
		struct json_object *one, *value;
		size_t n;

		if (!json_object_is_type(res, json_type_array)) {
			why_set(why, whylen, "not Prometheus' answer: a vector "
				"result that is not an array");
			return -1;
		}
		n = json_object_array_length(res);
		if (n == 0) {
			why_set(why, whylen, "the query returned no series "
				"(it matches nothing now)");
			return -1;
		}
		if (n > 1) {
			why_set(why, whylen, "the query returned %zu series, not "
				"one (aggregate them, e.g. with sum())", n);
			return -1;
		}
		one = json_object_array_get_idx(res, 0);
		if (!json_object_is_type(one, json_type_object) ||
		    !json_object_object_get_ex(one, "value", &value)) {
			why_set(why, whylen, "not Prometheus' answer: a series "
				"without a value");
			return -1;
		}
		return sample_value(value, out, why, whylen);
	}
	if (strcmp(rt, "matrix") == 0) {
		why_set(why, whylen, "the query returned a range vector "
			"(matrix), not one number (use e.g. sum(rate(...[1m])))");
		return -1;
	}
	if (strcmp(rt, "string") == 0) {
		why_set(why, whylen, "the query returned a string, not a number");
		return -1;
	}
	{
		char q[40];

		why_set(why, whylen, "not Prometheus' answer: unknown result type "
			"'%s'", shorten(rt, q, sizeof(q), 32));
	}
	return -1;
}

int
promsrc_parse(const char *body, size_t len, double *out, char *why,
	      size_t whylen)
{
	struct json_tokener *tok;
	struct json_object *root;
	enum json_tokener_error jerr;
	size_t end;
	int rc = -1;

	if (whylen)
		why[0] = '\0';
	if (len == 0) {
		why_set(why, whylen, "an empty answer, not JSON");
		return -1;
	}
	if (len > PROMSRC_BODY_MAX) {
		why_set(why, whylen, "an answer larger than %u bytes",
			PROMSRC_BODY_MAX);
		return -1;
	}
	tok = json_tokener_new_ex(32);
	if (!tok)
		fatal("out of memory");
	root = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (!root || jerr != json_tokener_success) {
		why_set(why, whylen, "the answer is not JSON (%s)",
			jerr == json_tokener_continue
				? "it ends too early"
				: json_tokener_error_desc(jerr));
		goto cleanup;
	}
	while (end < len && isspace((unsigned char)body[end]))
		end++;
	if (end < len) {
		why_set(why, whylen, "the answer is not JSON (text after the "
			"object)");
		goto cleanup;
	}
	rc = parse_root(root, out, why, whylen);
cleanup:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

int
promsrc_urls(const char *url, const char *query, char **query_url,
	     char **shown)
{
	if (url_endpoint(url, "api/v1/query", "query", query, NULL, query_url,
			 shown) != 0) {
		err_prefix("prometheus url");
		return -1;
	}
	return 0;
}

/* ---- the worker ----------------------------------------------------------- */

struct promsrc {
	char *label, *query_url, *shown, *token;
	int64_t timeout_ms, interval_ms;
	CURLM *multi;
	CURL *easy;
	struct strbuf body;     /* worker only */
	bool too_big;           /* worker only */
	char errbuf[CURL_ERROR_SIZE];
	struct log_complain complain; /* worker only */

	pthread_t thread;
	pthread_mutex_t m;
	pthread_cond_t cond;
	bool stop;              /* under m; the worker also reads it unlocked
				 * through stopping() */
	struct promsrc_state st; /* under m */
};

static size_t
keep_body(char *ptr, size_t size, size_t nmemb, void *opaque)
{
	struct promsrc *s = opaque;
	size_t n = size * nmemb;

	if (s->body.len + n > PROMSRC_BODY_MAX) {
		s->too_big = true;
		return 0; /* libcurl fails the transfer */
	}
	strbuf_add(&s->body, ptr, n);
	return n;
}

static bool
stopping(struct promsrc *s)
{
	bool stop;

	pthread_mutex_lock(&s->m);
	stop = s->stop;
	pthread_mutex_unlock(&s->m);
	return stop;
}

/* One query; 0 with *v, -1 with why. Returns 1 when told to stop. */
static int
query_once(struct promsrc *s, double *v, char *why, size_t whylen)
{
	CURLMsg *msg;
	CURLcode res = CURLE_OK;
	long code = 0;
	int running = 1, left;
	bool done = false;

	strbuf_reset(&s->body);
	s->too_big = false;
	s->errbuf[0] = '\0';
	curl_multi_add_handle(s->multi, s->easy);
	while (!done) {
		curl_multi_perform(s->multi, &running);
		while ((msg = curl_multi_info_read(s->multi, &left)))
			if (msg->msg == CURLMSG_DONE) {
				res = msg->data.result;
				done = true;
			}
		if (done || !running)
			break;
		if (stopping(s)) {
			curl_multi_remove_handle(s->multi, s->easy);
			return 1;
		}
		curl_multi_poll(s->multi, NULL, 0, 1000, NULL);
	}
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_multi_remove_handle(s->multi, s->easy);
	if (s->too_big) {
		why_set(why, whylen, "%s: an answer larger than %u bytes",
			s->shown, PROMSRC_BODY_MAX);
		return -1;
	}
	if (!done || res != CURLE_OK) {
		why_set(why, whylen, "%s: %s", s->shown,
			s->errbuf[0] ? s->errbuf
				     : curl_easy_strerror(done ? res
							       : CURLE_RECV_ERROR));
		return -1;
	}
	if (code < 200 || code > 299) {
		char inner[PROMSRC_WHY_MAX];
		double ignored;

		/* Prometheus explains a bad query (400, 422) in its body */
		if (promsrc_parse(s->body.buf, s->body.len, &ignored, inner,
				  sizeof(inner)) != 0 &&
		    strncmp(inner, "Prometheus answered", 19) == 0)
			why_set(why, whylen, "%s answered HTTP %ld: %s", s->shown,
				code, inner + 20);
		else
			why_set(why, whylen, "%s answered HTTP %ld", s->shown,
				code);
		return -1;
	}
	if (promsrc_parse(s->body.buf, s->body.len, v, why, whylen) != 0)
		return -1;
	return 0;
}

static void *
worker(void *arg)
{
	struct promsrc *s = arg;

	for (;;) {
		char why[PROMSRC_WHY_MAX];
		int64_t start = util_now_ms(), next;
		double v = 0;
		int rc;

		why[0] = '\0';
		rc = query_once(s, &v, why, sizeof(why));
		if (rc == 1)
			break;
		pthread_mutex_lock(&s->m);
		s->st.queries++;
		s->st.tried_ms = util_now_ms();
		if (rc == 0) {
			s->st.have = true;
			s->st.value = v;
			s->st.value_ms = s->st.tried_ms;
			s->st.failing = false;
			s->st.why[0] = '\0';
		} else {
			s->st.errors++;
			s->st.failing = true;
			snprintf(s->st.why, sizeof(s->st.why), "%s", why);
		}
		pthread_mutex_unlock(&s->m);
		if (rc == 0)
			log_complain_clear(&s->complain, log_tag,
					   "%s: prometheus answers again: %.6g",
					   s->label, v);
		else
			log_complain(&s->complain, LOG_LEVEL_WARN, log_tag,
				     "%s: %s", s->label, why);

		next = start + s->interval_ms;
		pthread_mutex_lock(&s->m);
		while (!s->stop && util_now_ms() < next) {
			struct timespec ts;

			util_mono_deadline(next - util_now_ms(), &ts);
			pthread_cond_timedwait(&s->cond, &s->m, &ts);
		}
		if (s->stop) {
			pthread_mutex_unlock(&s->m);
			break;
		}
		pthread_mutex_unlock(&s->m);
	}
	return NULL;
}

struct promsrc *
promsrc_new(const struct promsrc_opts *o)
{
	struct promsrc *s;
	char *query_url, *shown;
	pthread_condattr_t ca;

	if (!o->query || !*o->query) {
		err_set("prometheus: no query given");
		return NULL;
	}
	if (promsrc_urls(o->url, o->query, &query_url, &shown) != 0)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	s->label = xstrdup(o->label ? o->label : "prometheus");
	s->query_url = query_url;
	s->shown = shown;
	s->token = o->token ? xstrdup(o->token) : NULL;
	s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
	s->interval_ms = o->interval_ms > 0 ? o->interval_ms : 10000;
	strbuf_init(&s->body);
	s->multi = curl_multi_init();
	s->easy = curl_easy_init();
	if (!s->multi || !s->easy)
		fatal("prometheus: out of memory in libcurl");
	curl_easy_setopt(s->easy, CURLOPT_URL, s->query_url);
	curl_easy_setopt(s->easy, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
	curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)s->timeout_ms);
	curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, keep_body);
	curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(s->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(s->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(s->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(s->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(s->easy, CURLOPT_USERAGENT, "virt-autoscaler");
	if (s->token) {
		curl_easy_setopt(s->easy, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
		curl_easy_setopt(s->easy, CURLOPT_XOAUTH2_BEARER, s->token);
	}
	pthread_mutex_init(&s->m, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&s->thread, NULL, worker, s) != 0) {
		err_set("prometheus: cannot start a thread");
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->m);
		curl_easy_cleanup(s->easy);
		curl_multi_cleanup(s->multi);
		strbuf_release(&s->body);
		free(s->label);
		free(s->query_url);
		free(s->shown);
		free(s->token);
		free(s);
		return NULL;
	}
	return s;
}

void
promsrc_free(struct promsrc *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->m);
	s->stop = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->m);
	curl_multi_wakeup(s->multi);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->m);
	curl_easy_cleanup(s->easy);
	curl_multi_cleanup(s->multi);
	strbuf_release(&s->body);
	if (s->token) {
		explicit_bzero(s->token, strlen(s->token));
		free(s->token);
	}
	free(s->label);
	free(s->query_url);
	free(s->shown);
	free(s);
}

void
promsrc_get(struct promsrc *s, struct promsrc_state *out)
{
	pthread_mutex_lock(&s->m);
	*out = s->st;
	pthread_mutex_unlock(&s->m);
}

const char *
promsrc_shown_url(const struct promsrc *s)
{
	return s->shown;
}
