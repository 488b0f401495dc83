/*
 * The InfluxDB sink against a real influxd (scripts/services/influxdb.sh,
 * VA_TEST_INFLUXDB_URL; skipped without it):
 *   - points written, then queried back with the right measurement, tags
 *     (group, host, instance) and values;
 *   - while the database is missing (InfluxDB answers 404) batches are
 *     retried, not lost, and go through once it exists;
 *   - with InfluxDB unreachable the queue stays bounded: the points beyond
 *     it are dropped and counted, and polling goes on;
 *   - line protocol escaping.
 */
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
	influx_poll(ix, util_now_ms());
	assert_int_equal(influx_flush(ix, 15000), 0);
	influx_get_counters(ix, &cnt);
	/* The point without any field is not a point. */
	assert_int_equal(cnt.sent, 3);
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
		{"back\\slash", "back\\\\slash"},
		{"line\nbreak", "line_break"},
		{"", ""},
	};
	struct influx_opts o = {.url = "ftp://x", .database = "d"};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct strbuf sb = STRBUF_INIT;

		influx_escape(&sb, cases[i].in);
		assert_string_equal(strbuf_str(&sb), cases[i].out);
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
