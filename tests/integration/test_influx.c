/*
 * The InfluxDB sink against a real influxd (scripts/services/influxdb.sh,
 * VA_TEST_INFLUXDB_URL; skipped without it):
 *   - points written, then queried back with the right measurement, tags
 *     (group, host, instance) and values;
 *   - while the database is missing (InfluxDB answers 404) batches are
 *     retried, not lost, and go through once it exists;
 *   - with InfluxDB unreachable the queue stays bounded: the points beyond
 *     it are dropped and counted, and polling goes on;
 *   - line protocol escaping: group points and events with hostile
 *     names and texts read back exactly as written (or as influx.h says
 *     they are changed), and two events of one series in the same
 *     millisecond both kept.
 */
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "influx.h"
#include "log.h"
#include "util.h"

static const char *base_url;

static size_t
collect_body(char *ptr, size_t size, size_t nmemb, void *opaque)
{
	strbuf_add(opaque, ptr, size * nmemb);
	return size * nmemb;
}

/* InfluxQL through /query (POST); returns the JSON answer (caller frees). */
static char *
influxql(const char *db, const char *q)
{
	CURL *c = curl_easy_init();
	struct strbuf body = STRBUF_INIT;
	char *eq = curl_easy_escape(c, q, 0);
	char *url = xasprintf("%s/query?%s%s%sq=%s", base_url, db ? "db=" : "",
			      db ? db : "", db ? "&" : "", eq);
	long code = 0;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	assert_int_equal(code, 200);
	curl_free(eq);
	free(url);
	curl_easy_cleanup(c);
	return strbuf_detach(&body);
}

static void
test_write_and_query(void **state)
{
	char *db = xasprintf("va_test_influx_%d", (int)getpid());
	char *q;
	struct influx_opts o = {.url = base_url, .database = db};
	struct influx *ix;
	struct influx_counters cnt;
	struct rates r1 = {0}, r2 = {0};
	struct collect_capacity cap = {0};
	int64_t now = util_wall_ms();
	char *json;

	free(influxql(NULL, (q = xasprintf("CREATE DATABASE %s", db))));
	free(q);
	ix = influx_new(&o);
	assert_non_null(ix);
	rates_set(&r1, RATES_CPU, 42.5);
	rates_set(&r1, RATES_MEM, 61.25);
	rates_set(&r1, RATES_DISK_RD_BPS, 1000);
	rates_set(&r1, RATES_DISK_WR_BPS, 24);
	rates_derive(&r1);
	rates_set(&r2, RATES_CPU, 7);
	influx_add_instance(ix, "web", "kvm1", "web-0001", now - 1000, &r1);
	influx_add_instance(ix, "web", "kvm1", "web-0002", now - 1000, &r2);
	influx_add_instance(ix, "web", "kvm1", "web-0003", now, &(struct rates){0});
	cap.present = 1u << COLLECT_CAP_NODEINFO | 1u << COLLECT_CAP_CPU_UTIL;
	cap.cpus = 16;
	cap.mem_kib = 65536;
	cap.cpu_util_pct = 12.5;
	cap.domains = 2;
	cap.vcpus_alloc = 4;
	influx_add_host(ix, "kvm1", now, &cap);
	/* application metrics of instances (issue 14): one point per value,
	 * at the heartbeat's time; one that is not a number is not written */
	influx_add_instance_app(ix, &(struct influx_app_value){
		"web", "kvm1", "web-0001", "requests_per_s", 42.5, now - 2000});
	influx_add_instance_app(ix, &(struct influx_app_value){
		"web", "kvm1", "web-0001", "requests_per_s", 40, now - 1000});
	influx_add_instance_app(ix, &(struct influx_app_value){
		"web", NULL, "web-0002", "queue_length", 7, now - 1000});
	influx_add_instance_app(ix, &(struct influx_app_value){
		"web", "kvm1", "web-0002", "requests_per_s", NAN, now});
	influx_poll(ix, util_now_ms());
	assert_int_equal(influx_flush(ix, 15000), 0);
	influx_get_counters(ix, &cnt);
	/* The point without any field is not a point. */
	assert_int_equal(cnt.sent, 6);
	assert_int_equal(cnt.dropped, 0);
	assert_int_equal(cnt.queued, 0);
	assert_int_equal(cnt.errors, 0);

	json = influxql(db, "SELECT \"group\",host,instance,cpu,memory,disk_bps "
			    "FROM va_instance WHERE instance='web-0001'");
	fprintf(stderr, "influx: %s\n", json);
	assert_non_null(strstr(json, "\"name\":\"va_instance\""));
	assert_non_null(strstr(json, "\"web\",\"kvm1\",\"web-0001\",42.5,61.25,1024"));
	free(json);
	json = influxql(db, "SELECT count(cpu) FROM va_instance");
	assert_non_null(strstr(json, ",2]"));
	free(json);
	json = influxql(db, "SELECT cpus,mem_kib,cpu_util,vcpus_alloc FROM va_host "
			    "WHERE host='kvm1'");
	assert_non_null(strstr(json, "16,65536,12.5,4]"));
	free(json);
	json = influxql(db, "SELECT \"group\",host,instance,metric,value FROM "
			    "va_instance_app WHERE metric='requests_per_s'");
	fprintf(stderr, "influx: %s\n", json);
	assert_non_null(strstr(json, "\"name\":\"va_instance_app\""));
	assert_non_null(strstr(json, "\"web\",\"kvm1\",\"web-0001\","
				     "\"requests_per_s\",42.5]"));
	assert_non_null(strstr(json, "\"web\",\"kvm1\",\"web-0001\","
				     "\"requests_per_s\",40]"));
	assert_null(strstr(json, "web-0002"));
	free(json);
	json = influxql(db, "SELECT instance,value FROM va_instance_app WHERE "
			    "metric='queue_length'");
	assert_non_null(strstr(json, "\"web-0002\",7]"));
	free(json);

	free(influxql(NULL, (q = xasprintf("DROP DATABASE %s", db))));
	free(q);
	influx_free(ix);
	free(db);
}

/* The values of column col in the answer's first series, in order. */
static size_t
column(const char *json, const char *col, const char **out, size_t max,
       struct json_object **root)
{
	struct json_object *series, *cols, *vals, *o;
	size_t n = 0, k;

	*root = json_tokener_parse(json);
	assert_non_null(*root);
	if (!json_object_object_get_ex(*root, "results", &o) ||
	    !(o = json_object_array_get_idx(o, 0)) ||
	    !json_object_object_get_ex(o, "series", &series) ||
	    !(series = json_object_array_get_idx(series, 0)) ||
	    !json_object_object_get_ex(series, "columns", &cols) ||
	    !json_object_object_get_ex(series, "values", &vals))
		fail_msg("no series in %s", json);
	for (k = 0; k < json_object_array_length(cols); k++)
		if (strcmp(json_object_get_string(json_object_array_get_idx(cols, k)),
			   col) == 0)
			break;
	if (k == json_object_array_length(cols))
		fail_msg("no column %s in %s", col, json);
	for (size_t i = 0; i < json_object_array_length(vals) && n < max; i++) {
		struct json_object *row = json_object_array_get_idx(vals, i);
		struct json_object *v = json_object_array_get_idx(row, k);

		out[n++] = v ? json_object_get_string(v) : NULL;
	}
	return n;
}

/* Group points and events with hostile names: what goes in comes out. */
static void
test_hostile_roundtrip(void **state)
{
	static const struct {
		const char *name, *stored;
	} groups[] = {
		{"web", "web"},
		{"a b,c=d", "a b,c=d"},
		{"q\"uote\\back\\\\two", "q\"uote\\back\\\\two"},
		{"caf\u00e9 \u2603", "caf\u00e9 \u2603"},
		{"end\\", "end_"},
		{"odd\\,run", "odd_,run"},
		{"nl\nx", "nl_x"},
	};
	static const char *const texts[] = {
		"plain",
		"desired 3 -> 5: cpu 87% > target 60% (\u00b110%)",
		"quotes \" and \\ backslashes \\\" mixed, = signs, commas",
		"trailing backslash \\",
		"",
	};
	char *db = xasprintf("va_test_influx_hostile_%d", (int)getpid());
	char *q, *json;
	struct influx_opts o = {.url = base_url, .database = db};
	struct influx *ix;
	struct influx_counters cnt;
	int64_t now = util_wall_ms() - 60000;
	struct json_object *root;
	const char *vals[64];
	size_t n;

	(void)state;
	free(influxql(NULL, (q = xasprintf("CREATE DATABASE %s", db))));
	free(q);
	ix = influx_new(&o);
	assert_non_null(ix);
	for (size_t i = 0; i < ARRAY_SIZE(groups); i++) {
		struct influx_group_metric m[2] = {
			{.metric = "cpu", .have_value = true, .value = 42.5,
			 .have_target = true, .target = 60},
			{.metric = "net_bytes", .have_value = true, .value = 1e6},
		};
		struct influx_group g = {
			.name = groups[i].name, .desired = 5, .current = 4,
			.ready = 3, .min = 1, .max = 10, .paused = i == 1,
			.warming = 1, .warm = 2,
			.metrics = m, .n_metrics = 2,
		};

		influx_add_group(ix, now + (int64_t)i, &g);
	}
	/* every text on one series and in one millisecond: none is lost */
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		struct influx_event e = {
			.wall_ms = now, .group = groups[2].name,
			.instance = i == 0 ? "5b0c6e1e-8f0a-4c39-9d7e-2f1b8a3c4d5e" : NULL,
			.kind = "decision", .level = "info", .text = texts[i],
		};

		influx_add_event(ix, &e);
	}
	influx_add_event(ix, &(struct influx_event){
		.wall_ms = now, .kind = "host_down", .level = "warn",
		.text = "host kvm1 is down"});
	assert_int_equal(influx_flush(ix, 15000), 0);
	influx_get_counters(ix, &cnt);
	assert_int_equal(cnt.dropped, 0);
	assert_int_equal(cnt.sent, 3 * ARRAY_SIZE(groups) + ARRAY_SIZE(texts) + 1);

	json = influxql(db, "SELECT \"group\",desired,current,ready,\"min\",\"max\","
			    "paused FROM va_group");
	n = column(json, "group", vals, 64, &root);
	assert_int_equal(n, ARRAY_SIZE(groups));
	for (size_t i = 0; i < n; i++)
		assert_string_equal(vals[i], groups[i].stored);
	json_object_put(root);
	n = column(json, "paused", vals, 64, &root);
	assert_string_equal(vals[0], "false");
	assert_string_equal(vals[1], "true");
	json_object_put(root);
	free(json);
	/* the warm pool's sizes (issue 13) */
	json = influxql(db, "SELECT warming,warm FROM va_group");
	n = column(json, "warm", vals, 64, &root);
	assert_int_equal(n, ARRAY_SIZE(groups));
	assert_string_equal(vals[0], "2");
	json_object_put(root);
	free(json);

	json = influxql(db, "SELECT \"group\",metric,value,target FROM va_group_metric "
			    "WHERE metric = 'cpu'");
	n = column(json, "target", vals, 64, &root);
	assert_int_equal(n, ARRAY_SIZE(groups));
	assert_string_equal(vals[0], "60");
	json_object_put(root);
	free(json);
	json = influxql(db, "SELECT count(value) FROM va_group_metric WHERE "
			    "metric = 'net_bytes'");
	assert_non_null(strstr(json, ",7]"));
	free(json);

	json = influxql(db, "SELECT \"text\",\"group\",kind,level,instance FROM va_event "
			    "WHERE kind = 'decision'");
	n = column(json, "text", vals, 64, &root);
	assert_int_equal(n, ARRAY_SIZE(texts));
	for (size_t i = 0; i < n; i++)
		assert_string_equal(vals[i], texts[i]);
	json_object_put(root);
	n = column(json, "group", vals, 64, &root);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(vals[i], groups[2].stored);
	json_object_put(root);
	n = column(json, "instance", vals, 64, &root);
	assert_string_equal(vals[0], "5b0c6e1e-8f0a-4c39-9d7e-2f1b8a3c4d5e");
	assert_null(vals[1]);
	json_object_put(root);
	free(json);
	/* a daemon-wide event has no group: '' matches it */
	json = influxql(db, "SELECT \"text\",level FROM va_event WHERE \"group\" = ''");
	n = column(json, "text", vals, 64, &root);
	assert_int_equal(n, 1);
	assert_string_equal(vals[0], "host kvm1 is down");
	json_object_put(root);
	free(json);

	free(influxql(NULL, (q = xasprintf("DROP DATABASE %s", db))));
	free(q);
	influx_free(ix);
	free(db);
}

/* 404 (no such database) is retried until the database exists. */
static void
test_retry(void **state)
{
	char *db = xasprintf("va_test_influx_retry_%d", (int)getpid());
	char *q, *json;
	struct influx_opts o = {.url = base_url, .database = db};
	struct influx *ix = influx_new(&o);
	struct influx_counters cnt;
	struct rates r = {0};

	rates_set(&r, RATES_CPU, 3);
	for (int i = 0; i < 5; i++)
		influx_add_instance(ix, "g", "h", "i", util_wall_ms() - 5000 + i, &r);
	assert_int_equal(influx_flush(ix, 500), -1);
	influx_get_counters(ix, &cnt);
	assert_true(cnt.errors >= 1);
	assert_int_equal(cnt.sent, 0);
	assert_int_equal(cnt.queued, 5);
	assert_int_equal(cnt.dropped, 0);

	free(influxql(NULL, (q = xasprintf("CREATE DATABASE %s", db))));
	free(q);
	/* The retry is due within the backoff (1-2 s by now). */
	assert_int_equal(influx_flush(ix, 20000), 0);
	influx_get_counters(ix, &cnt);
	assert_int_equal(cnt.sent, 5);
	json = influxql(db, "SELECT count(cpu) FROM va_instance");
	assert_non_null(strstr(json, ",5]"));
	free(json);
	free(influxql(NULL, (q = xasprintf("DROP DATABASE %s", db))));
	free(q);
	influx_free(ix);
	free(db);
}

/* Nothing listens: the queue holds max_points, the rest is dropped. */
static void
test_down_bounded(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char *url;
	struct influx_opts o = {.database = "x", .max_points = 10,
				.batch_points = 4};
	struct influx *ix;
	struct influx_counters cnt;
	struct rates r = {0};

	/* A loopback port that was free a moment ago: connection refused. */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	url = xasprintf("http://127.0.0.1:%d", ntohs(sa.sin_port));
	o.url = url;
	ix = influx_new(&o);
	assert_non_null(ix);
	rates_set(&r, RATES_CPU, 1);
	for (int i = 0; i < 25; i++) {
		influx_add_instance(ix, "g", "h", "i", 1000 + i, &r);
		influx_poll(ix, util_now_ms());
	}
	assert_int_equal(influx_flush(ix, 300), -1);
	influx_get_counters(ix, &cnt);
	assert_int_equal(cnt.queued, 10);
	assert_int_equal(cnt.dropped, 15);
	assert_int_equal(cnt.sent, 0);
	assert_true(cnt.errors >= 1);
	influx_free(ix);
	free(url);
}

/* The write URL and the URL messages show, built with libcurl's URL API. */
static void
test_urls(void **state)
{
	static const struct {
		const char *url, *db, *write, *shown;
	} cases[] = {
		{"http://127.0.0.1:8086", "va",
		 "http://127.0.0.1:8086/write?db=va&precision=ms",
		 "http://127.0.0.1:8086"},
		{"http://127.0.0.1:8086/", "va",
		 "http://127.0.0.1:8086/write?db=va&precision=ms",
		 "http://127.0.0.1:8086"},
		{"https://h:8086/influx//?u=x#top", "va",
		 "https://h:8086/influx/write?db=va&precision=ms",
		 "https://h:8086/influx"},
		/* user info: kept for libcurl to send, never shown */
		{"http://va:s3cret@[::1]:8086", "va",
		 "http://va:s3cret@[::1]:8086/write?db=va&precision=ms",
		 "http://[::1]:8086"},
		{"http://[fe80::1%25eth0]:8086", "va",
		 "http://[fe80::1%25eth0]:8086/write?db=va&precision=ms",
		 "http://[fe80::1%25eth0]:8086"},
		/* the database name is encoded into the query */
		{"http://h", "a&b=c d",
		 "http://h/write?db=a%26b%3dc+d&precision=ms", "http://h"},
	};
	static const char *const bad[] = {
		"ftp://x", "http://", "http://h:99999", "http://[::1", "http://a b",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *w = NULL, *s = NULL;

		if (influx_urls(cases[i].url, cases[i].db, &w, &s) != 0)
			fail_msg("case %zu: %s", i, err_msg());
		assert_string_equal(w, cases[i].write);
		assert_string_equal(s, cases[i].shown);
		free(w);
		free(s);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *w = NULL, *s = NULL;

		if (influx_urls(bad[i], "va", &w, &s) == 0)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(strstr(err_msg(), "influxdb url: "));
		assert_null(w);
		assert_null(s);
	}
}

static void
test_escape_and_options(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"web", "web"},
		{"a b", "a\\ b"},
		{"a,b=c", "a\\,b\\=c"},
		/* a backslash escapes nothing before other characters */
		{"back\\slash", "back\\slash"},
		{"two\\\\x", "two\\\\x"},
		/* an even run before an escaped character stays, an odd one
		 * loses its last backslash (InfluxDB would pair it) */
		{"a\\\\,b", "a\\\\\\,b"},
		{"a\\,b", "a_\\,b"},
		{"a\\ b", "a_\\ b"},
		{"a\\=b", "a_\\=b"},
		/* a trailing backslash is refused by influxd */
		{"end\\", "end_"},
		{"end\\\\", "end\\_"},
		{"q\"uote", "q\"uote"},
		{"line\nbreak", "line_break"},
		{"tab\tbell\a", "tab_bell_"},
		{"", ""},
	};
	static const struct {
		const char *in, *out;
	} strings[] = {
		{"plain", "\"plain\""},
		{"say \"hi\"", "\"say \\\"hi\\\"\""},
		{"c:\\dir\\", "\"c:\\\\dir\\\\\""},
		{"two\nlines\r", "\"two lines \""},
		{"a,b=c d", "\"a,b=c d\""},
	};
	struct influx_opts o = {.url = "ftp://x", .database = "d"};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct strbuf sb = STRBUF_INIT;

		influx_escape(&sb, cases[i].in);
		assert_string_equal(strbuf_str(&sb), cases[i].out);
		strbuf_release(&sb);
	}
	for (size_t i = 0; i < ARRAY_SIZE(strings); i++) {
		struct strbuf sb = STRBUF_INIT;

		influx_escape_string(&sb, strings[i].in);
		assert_string_equal(strbuf_str(&sb), strings[i].out);
		strbuf_release(&sb);
	}
	assert_null(influx_new(&o));
	assert_non_null(strstr(err_msg(), "http://"));
	o.url = "http://127.0.0.1:8086";
	o.database = "";
	assert_null(influx_new(&o));
	assert_non_null(strstr(err_msg(), "database"));
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest offline[] = {
		cmocka_unit_test(test_escape_and_options),
		cmocka_unit_test(test_urls),
		cmocka_unit_test(test_down_bounded),
	};
	const struct CMUnitTest online[] = {
		cmocka_unit_test(test_write_and_query),
		cmocka_unit_test(test_retry),
		cmocka_unit_test(test_hostile_roundtrip),
	};

	log_set_level(LOG_LEVEL_ERROR);
	if (argc > 1 && strcmp(argv[1], "offline") == 0)
		return cmocka_run_group_tests(offline, NULL, NULL);
	base_url = getenv("VA_TEST_INFLUXDB_URL");
	if (!base_url || !*base_url) {
		fprintf(stderr, "skip: VA_TEST_INFLUXDB_URL is not set: run "
				"scripts/services/influxdb.sh start\n");
		return 77;
	}
	return cmocka_run_group_tests(online, NULL, NULL);
}
