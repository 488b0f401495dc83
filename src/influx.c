/*
 * influx.c: batched, non-blocking line-protocol writes to InfluxDB 1.x
 * with a bounded queue (see influx.h).
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "influx.h"
#include "log.h"
#include "url.h"

LOG_TAG("influx");

#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 30000

struct influx {
	CURLM *multi;
	CURL *easy;
	bool inflight;
	char *url;            /* for messages: no user info or query */
	char *write_url;
	size_t max_points, batch_points;

	char **q;             /* ring of formatted lines */
	size_t q_cap, q_head, q_len;

	struct strbuf body;   /* the batch in flight or waiting for a retry */
	size_t body_points;
	bool have_batch;
	int64_t retry_at_ms;
	int64_t backoff_ms;

	int64_t last_event_ms; /* events never share a timestamp */

	struct influx_counters c;
	struct log_complain complain;
	char errbuf[CURL_ERROR_SIZE];
};

static size_t
discard_body(char *ptr, size_t size, size_t nmemb, void *opaque)
{
	(void)ptr;
	(void)opaque;
	return size * nmemb;
}

int
influx_urls(const char *url, const char *database, char **write_url,
	    char **shown_url)
{
	if (url_endpoint(url, "write", "db", database, "precision=ms",
			 write_url, shown_url) != 0) {
		err_prefix("influxdb url");
		return -1;
	}
	return 0;
}

struct influx *
influx_new(const struct influx_opts *o)
{
	static bool curl_ready;
	struct influx *ix;
	char *write_url, *shown_url;

	if (!o->url) {
		err_set("influxdb: no url given");
		return NULL;
	}
	if (!o->database || !*o->database) {
		err_set("influxdb: no database given");
		return NULL;
	}
	if (influx_urls(o->url, o->database, &write_url, &shown_url) != 0)
		return NULL;
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
			free(write_url);
			free(shown_url);
			err_set("influxdb: cannot initialise libcurl");
			return NULL;
		}
		curl_ready = true;
	}
	ix = xcalloc(1, sizeof(*ix));
	ix->max_points = o->max_points ? o->max_points : 100000;
	ix->batch_points = o->batch_points ? o->batch_points : 5000;
	if (ix->batch_points > ix->max_points)
		ix->batch_points = ix->max_points;
	ix->q_cap = ix->max_points;
	ix->q = xcalloc(ix->q_cap, sizeof(*ix->q));
	ix->backoff_ms = RETRY_FIRST_MS;
	ix->url = shown_url;
	ix->write_url = write_url;
	ix->multi = curl_multi_init();
	ix->easy = curl_easy_init();
	if (!ix->multi || !ix->easy)
		fatal("influxdb: out of memory in libcurl");
	strbuf_init(&ix->body);

	curl_easy_setopt(ix->easy, CURLOPT_URL, ix->write_url);
	curl_easy_setopt(ix->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(ix->easy, CURLOPT_TIMEOUT_MS,
			 (long)(o->timeout_ms > 0 ? o->timeout_ms : 10000));
	curl_easy_setopt(ix->easy, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	curl_easy_setopt(ix->easy, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(ix->easy, CURLOPT_ERRORBUFFER, ix->errbuf);
	curl_easy_setopt(ix->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	if (o->username) {
		curl_easy_setopt(ix->easy, CURLOPT_USERNAME, o->username);
		curl_easy_setopt(ix->easy, CURLOPT_PASSWORD,
				 o->password ? o->password : "");
	}
	return ix;
}

void
influx_free(struct influx *ix)
{
	if (!ix)
		return;
	if (ix->inflight)
		curl_multi_remove_handle(ix->multi, ix->easy);
	curl_easy_cleanup(ix->easy);
	curl_multi_cleanup(ix->multi);
	for (size_t i = 0; i < ix->q_len; i++)
		free(ix->q[(ix->q_head + i) % ix->q_cap]);
	free(ix->q);
	strbuf_release(&ix->body);
	free(ix->url);
	free(ix->write_url);
	free(ix);
}

static bool
lp_special(char c)
{
	return c == ',' || c == '=' || c == ' ';
}

void
influx_escape(struct strbuf *sb, const char *s)
{
	while (*s) {
		/*
		 * A backslash escapes nothing in InfluxDB 1.x unless a ',', '='
		 * or ' ' follows (which it then unescapes), so a run of them is
		 * written as it is. Before an escaped character a run must be
		 * even, and a value must not end in one (influxd refuses the
		 * line): there the run's last backslash becomes '_'.
		 */
		if (*s == '\\') {
			size_t k = strspn(s, "\\");

			if (s[k] == '\0' || (lp_special(s[k]) && k % 2 == 1)) {
				strbuf_add(sb, s, k - 1);
				strbuf_addc(sb, '_');
			} else {
				strbuf_add(sb, s, k);
			}
			s += k;
			continue;
		}
		if (lp_special(*s))
			strbuf_addc(sb, '\\');
		/* A line cannot hold a newline or other control characters. */
		strbuf_addc(sb, (unsigned char)*s < 0x20 || *s == 0x7f ? '_' : *s);
		s++;
	}
}

void
influx_escape_string(struct strbuf *sb, const char *s)
{
	strbuf_addc(sb, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			strbuf_addc(sb, '\\');
		strbuf_addc(sb, (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
	}
	strbuf_addc(sb, '"');
}

/* Queue one formatted line (ownership taken). */
static void
enqueue(struct influx *ix, char *line)
{
	if (ix->q_len + ix->body_points >= ix->max_points) {
		ix->c.dropped++;
		if (ix->q_len == 0) {
			free(line); /* everything queued is in flight */
			return;
		}
		free(ix->q[ix->q_head]);
		ix->q_head = (ix->q_head + 1) % ix->q_cap;
		ix->q_len--;
	}
	ix->q[(ix->q_head + ix->q_len) % ix->q_cap] = line;
	ix->q_len++;
}

static void
add_float(struct strbuf *sb, bool *first, const char *key, double v)
{
	strbuf_addc(sb, *first ? ' ' : ',');
	*first = false;
	influx_escape(sb, key);
	strbuf_addf(sb, "=%.10g", v);
}

static void
add_int(struct strbuf *sb, bool *first, const char *key, uint64_t v)
{
	strbuf_addc(sb, *first ? ' ' : ',');
	*first = false;
	influx_escape(sb, key);
	strbuf_addf(sb, "=%" PRIu64 "i", v);
}

static void
add_tag(struct strbuf *sb, const char *key, const char *value)
{
	if (!value || !*value)
		return; /* empty tag values are not allowed */
	strbuf_addc(sb, ',');
	influx_escape(sb, key);
	strbuf_addc(sb, '=');
	influx_escape(sb, value);
}

void
influx_add_instance(struct influx *ix, const char *group, const char *host,
		    const char *instance, int64_t wall_ms, const struct rates *r)
{
	struct strbuf sb = STRBUF_INIT;
	bool first = true;

	strbuf_adds(&sb, "va_instance");
	add_tag(&sb, "group", group);
	add_tag(&sb, "host", host);
	add_tag(&sb, "instance", instance);
	for (int m = 0; m < RATES_LAST; m++)
		if (rates_has(r, m))
			add_float(&sb, &first, rates_metric_name(m), r->v[m]);
	if (first) {
		strbuf_release(&sb); /* a point needs a field */
		return;
	}
	strbuf_addf(&sb, " %" PRId64, wall_ms);
	enqueue(ix, strbuf_detach(&sb));
}

void
influx_add_host(struct influx *ix, const char *host, int64_t wall_ms,
		const struct collect_capacity *cap)
{
	struct strbuf sb = STRBUF_INIT;
	bool first = true;

	strbuf_adds(&sb, "va_host");
	add_tag(&sb, "host", host);
	if (cap->present & (1u << COLLECT_CAP_NODEINFO)) {
		add_int(&sb, &first, "cpus", cap->cpus);
		add_int(&sb, &first, "mem_kib", cap->mem_kib);
	}
	if (cap->present & (1u << COLLECT_CAP_FREE))
		add_int(&sb, &first, "free_kib", cap->free_kib);
	if (cap->present & (1u << COLLECT_CAP_CPU_UTIL))
		add_float(&sb, &first, "cpu_util", cap->cpu_util_pct);
	add_int(&sb, &first, "domains", cap->domains);
	add_int(&sb, &first, "vcpus_alloc", cap->vcpus_alloc);
	add_int(&sb, &first, "mem_alloc_kib", cap->mem_alloc_kib);
	strbuf_addf(&sb, " %" PRId64, wall_ms);
	enqueue(ix, strbuf_detach(&sb));
}

static void
add_string(struct strbuf *sb, bool *first, const char *key, const char *v)
{
	strbuf_addc(sb, *first ? ' ' : ',');
	*first = false;
	influx_escape(sb, key);
	strbuf_addc(sb, '=');
	influx_escape_string(sb, v);
}

void
influx_add_group(struct influx *ix, int64_t wall_ms, const struct influx_group *g)
{
	struct strbuf sb = STRBUF_INIT;
	bool first = true;

	strbuf_adds(&sb, "va_group");
	add_tag(&sb, "group", g->name);
	add_int(&sb, &first, "desired", (uint64_t)(g->desired > 0 ? g->desired : 0));
	add_int(&sb, &first, "current", (uint64_t)(g->current > 0 ? g->current : 0));
	add_int(&sb, &first, "ready", (uint64_t)(g->ready > 0 ? g->ready : 0));
	add_int(&sb, &first, "min", (uint64_t)(g->min > 0 ? g->min : 0));
	add_int(&sb, &first, "max", (uint64_t)(g->max > 0 ? g->max : 0));
	add_int(&sb, &first, "warming", (uint64_t)(g->warming > 0 ? g->warming : 0));
	add_int(&sb, &first, "warm", (uint64_t)(g->warm > 0 ? g->warm : 0));
	strbuf_addf(&sb, ",paused=%s %" PRId64, g->paused ? "true" : "false",
		    wall_ms);
	enqueue(ix, strbuf_detach(&sb));

	for (size_t i = 0; i < g->n_metrics; i++) {
		const struct influx_group_metric *m = &g->metrics[i];

		first = true;
		strbuf_adds(&sb, "va_group_metric");
		add_tag(&sb, "group", g->name);
		add_tag(&sb, "metric", m->metric);
		if (m->have_value)
			add_float(&sb, &first, "value", m->value);
		if (m->have_target)
			add_float(&sb, &first, "target", m->target);
		if (first) {
			strbuf_release(&sb); /* a point needs a field */
			continue;
		}
		strbuf_addf(&sb, " %" PRId64, wall_ms);
		enqueue(ix, strbuf_detach(&sb));
	}
}

void
influx_add_event(struct influx *ix, const struct influx_event *e)
{
	struct strbuf sb = STRBUF_INIT;
	bool first = true;
	int64_t t = e->wall_ms;

	/* same series and time: InfluxDB would keep only the later point */
	if (t <= ix->last_event_ms)
		t = ix->last_event_ms + 1;
	ix->last_event_ms = t;
	strbuf_adds(&sb, "va_event");
	add_tag(&sb, "group", e->group);
	add_tag(&sb, "kind", e->kind);
	add_tag(&sb, "level", e->level);
	add_string(&sb, &first, "text", e->text ? e->text : "");
	if (e->instance && *e->instance)
		add_string(&sb, &first, "instance", e->instance);
	strbuf_addf(&sb, " %" PRId64, t);
	enqueue(ix, strbuf_detach(&sb));
}

void
influx_add_instance_app(struct influx *ix, const struct influx_app_value *v)
{
	struct strbuf sb = STRBUF_INIT;
	bool first = true;

	if (!isfinite(v->value))
		return;
	strbuf_adds(&sb, "va_instance_app");
	add_tag(&sb, "group", v->group);
	add_tag(&sb, "host", v->host);
	add_tag(&sb, "instance", v->instance);
	add_tag(&sb, "metric", v->metric);
	add_float(&sb, &first, "value", v->value);
	strbuf_addf(&sb, " %" PRId64, v->wall_ms);
	enqueue(ix, strbuf_detach(&sb));
}

/* Move up to batch_points queued lines into the request body. */
static void
make_batch(struct influx *ix)
{
	strbuf_reset(&ix->body);
	ix->body_points = 0;
	while (ix->q_len && ix->body_points < ix->batch_points) {
		char *line = ix->q[ix->q_head];

		strbuf_adds(&ix->body, line);
		strbuf_addc(&ix->body, '\n');
		free(line);
		ix->q_head = (ix->q_head + 1) % ix->q_cap;
		ix->q_len--;
		ix->body_points++;
	}
	ix->have_batch = ix->body_points > 0;
}

static void
finish(struct influx *ix, CURLcode res, int64_t now_ms)
{
	long code = 0;

	curl_easy_getinfo(ix->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_multi_remove_handle(ix->multi, ix->easy);
	ix->inflight = false;
	if (res == CURLE_OK && code >= 200 && code < 300) {
		ix->c.sent += ix->body_points;
		ix->have_batch = false;
		ix->body_points = 0;
		ix->backoff_ms = RETRY_FIRST_MS;
		log_complain_clear(&ix->complain, log_tag,
				   "writing to %s again", ix->url);
		return;
	}
	ix->c.errors++;
	if (res == CURLE_OK && (code == 400 || code == 413)) {
		/* InfluxDB will never take this batch: drop it. */
		log_complain(&ix->complain, LOG_LEVEL_WARN, log_tag,
			     "%s refused %zu points (HTTP %ld); dropped", ix->url,
			     ix->body_points, code);
		ix->c.dropped += ix->body_points;
		ix->have_batch = false;
		ix->body_points = 0;
		return;
	}
	if (res != CURLE_OK)
		log_complain(&ix->complain, LOG_LEVEL_WARN, log_tag,
			     "cannot write to %s: %s; retrying in %" PRId64 " ms",
			     ix->url, ix->errbuf[0] ? ix->errbuf
						    : curl_easy_strerror(res),
			     ix->backoff_ms);
	else
		log_complain(&ix->complain, LOG_LEVEL_WARN, log_tag,
			     "%s answered HTTP %ld; retrying in %" PRId64 " ms",
			     ix->url, code, ix->backoff_ms);
	ix->retry_at_ms = now_ms + ix->backoff_ms;
	ix->backoff_ms *= 2;
	if (ix->backoff_ms > RETRY_MAX_MS)
		ix->backoff_ms = RETRY_MAX_MS;
}

void
influx_poll(struct influx *ix, int64_t now_ms)
{
	int running = 0, left;
	CURLMsg *msg;

	if (ix->inflight) {
		curl_multi_perform(ix->multi, &running);
		while ((msg = curl_multi_info_read(ix->multi, &left)))
			if (msg->msg == CURLMSG_DONE)
				finish(ix, msg->data.result, now_ms);
	}
	if (ix->inflight)
		return;
	if (!ix->have_batch)
		make_batch(ix);
	if (!ix->have_batch || now_ms < ix->retry_at_ms)
		return;
	ix->errbuf[0] = '\0';
	curl_easy_setopt(ix->easy, CURLOPT_POSTFIELDS, ix->body.buf);
	curl_easy_setopt(ix->easy, CURLOPT_POSTFIELDSIZE, (long)ix->body.len);
	curl_multi_add_handle(ix->multi, ix->easy);
	ix->inflight = true;
	ix->c.requests++;
	curl_multi_perform(ix->multi, &running);
}

int
influx_flush(struct influx *ix, int64_t timeout_ms)
{
	int64_t end = util_now_ms() + timeout_ms;

	for (;;) {
		int64_t now = util_now_ms();

		influx_poll(ix, now);
		if (!ix->inflight && !ix->have_batch && ix->q_len == 0)
			return 0;
		if (now >= end)
			return -1;
		if (ix->inflight)
			curl_multi_poll(ix->multi, NULL, 0, 50, NULL);
		else {
			struct timespec ts = {0, 20 * 1000 * 1000};

			nanosleep(&ts, NULL);
		}
	}
}

void
influx_get_counters(struct influx *ix, struct influx_counters *out)
{
	*out = ix->c;
	out->queued = ix->q_len + ix->body_points;
}
