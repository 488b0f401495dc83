/*
 * Unit tests for sink.c: one collection result fed to the built-in store,
 * an InfluxDB writer (pointed at a closed loopback port: its queue is what
 * we look at) and the /metrics registry.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "event.h"
#include "log.h"
#include "metrics.h"
#include "sink.h"
#include "util.h"

static void
test_feed(void **state)
{
	struct host *h = host_new("kvm1", "test:///default");
	struct mstore *ms = mstore_new(600000, 10000);
	struct influx_opts io = {.url = "http://127.0.0.1:1", .database = "d"};
	struct influx *ix = influx_new(&io);
	struct sink sinks[2];
	struct collect_instance inst[2];
	unsigned char gone[1][VIR_UUID_BUFLEN];
	struct collect_host_result r;
	struct influx_counters cnt;
	struct rates_window w;
	struct strbuf sb = STRBUF_INIT;
	struct rates old = {0};

	assert_non_null(ix);
	sinks[0] = sink_mstore(ms);
	sinks[1] = sink_influx(ix);
	assert_string_equal(sinks[0].ops->name, "builtin");
	assert_string_equal(sinks[1].ops->name, "influxdb");
	metrics_reset();

	memset(inst, 0, sizeof(inst));
	memset(gone, 0x77, sizeof(gone));
	rates_set(&old, RATES_CPU, 1);
	mstore_put(ms, gone[0], 1000, &old);
	for (int i = 0; i < 2; i++) {
		memset(inst[i].uuid, i + 1, VIR_UUID_BUFLEN);
		inst[i].group = "web";
		inst[i].id = i ? "web-2" : "web-1";
		rates_set(&inst[i].rates, RATES_CPU, 10.0 * (i + 1));
	}
	memset(&r, 0, sizeof(r));
	r.host = h;
	r.ok = true;
	r.t_ms = 50000;
	r.inst = inst;
	r.n_inst = 2;
	r.gone = (const unsigned char (*)[VIR_UUID_BUFLEN])gone;
	r.n_gone = 1;
	sink_feed(sinks, 2, &r, 1795830000000, 51000);

	assert_int_equal(mstore_count(ms), 2);
	assert_int_equal(mstore_query(ms, gone[0], 0, 100000, &w), -1);
	assert_int_equal(mstore_query(ms, inst[1].uuid, 0, 100000, &w), 0);
	assert_float_equal(w.last[RATES_CPU], 20, 1e-6);
	assert_int_equal(w.last_t_ms, 50000);
	influx_get_counters(ix, &cnt);
	assert_int_equal(cnt.queued, 3); /* two instances and the host */
	metrics_render_prometheus(&sb, true);
	assert_non_null(strstr(strbuf_str(&sb), "instance_id=\"web-2\"} 0.2\n"));

	/* A failed round: only /metrics hears of it. */
	r.ok = false;
	sink_feed(sinks, 2, &r, 1795830010000, 61000);
	influx_get_counters(ix, &cnt);
	assert_int_equal(cnt.queued, 3);
	assert_int_equal(mstore_count(ms), 2);
	strbuf_reset(&sb);
	metrics_render_prometheus(&sb, true);
	assert_non_null(strstr(strbuf_str(&sb), "va_host_up{host=\"kvm1\"} 0\n"));

	sink_poll(sinks, 2, util_now_ms()); /* the connection fails: kept */
	influx_get_counters(ix, &cnt);
	assert_int_equal(cnt.dropped, 0);

	strbuf_release(&sb);
	metrics_reset();
	influx_free(ix);
	mstore_free(ms);
	host_free(h);
}

/* Group points and events reach the InfluxDB sink only: the store has no
 * use for them. Events come through the tap, bounded, from any thread. */
struct recorder {
	struct store *st;
	int n;
};

static void *
record_events(void *arg)
{
	struct recorder *r = arg;

	for (int i = 0; i < r->n; i++)
		event_record(r->st, "web", NULL, "decision", NULL, "event %d", i);
	return NULL;
}

static void
test_groups_and_events(void **state)
{
	struct mstore *ms = mstore_new(600000, 10000);
	struct influx_opts io = {.url = "http://127.0.0.1:1", .database = "d",
				 .max_points = 1000};
	struct influx *ix = influx_new(&io);
	struct sink sinks[2] = {sink_mstore(ms), sink_influx(ix)};
	struct influx_group_metric m[2] = {
		{.metric = "cpu", .have_value = true, .value = 50, .have_target = true,
		 .target = 60},
		{.metric = "memory"}, /* nothing known: no point */
	};
	struct influx_group g = {.name = "web", .desired = 2, .current = 2,
				 .ready = 1, .min = 1, .max = 4, .metrics = m,
				 .n_metrics = 2};
	struct influx_counters cnt;
	char dir[] = "/tmp/va-sink-XXXXXX", *url;
	struct store *st;
	struct recorder rec;
	pthread_t t[2];

	(void)state;
	assert_non_null(mkdtemp(dir));
	url = xasprintf("sqlite://%s/state.db", dir);
	st = store_open(url, NULL);
	assert_non_null(st);

	sink_group(sinks, 2, &g, 1795830000000);
	influx_get_counters(ix, &cnt);
	assert_int_equal(cnt.queued, 2); /* va_group, va_group_metric cpu */

	/* no tap: recording costs the sinks nothing */
	event_record(st, "web", NULL, "decision", NULL, "before the tap");
	assert_int_equal(sink_events_drain(sinks, 2), 0);
	influx_get_counters(ix, &cnt);
	assert_int_equal(cnt.queued, 2);

	event_tap_start(50);
	rec = (struct recorder){st, 40};
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, record_events, &rec), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	/* 80 recorded, 50 kept: the oldest 30 dropped and counted */
	assert_int_equal(sink_events_drain(sinks, 2), 30);
	influx_get_counters(ix, &cnt);
	assert_int_equal(cnt.queued, 52);
	assert_int_equal(sink_events_drain(sinks, 2), 0);
	event_record(st, NULL, NULL, "host_down", NULL, "host x is down");
	event_tap_stop();
	event_record(st, NULL, NULL, "host_up", NULL, "after the tap");
	assert_int_equal(sink_events_drain(sinks, 2), 0);
	influx_get_counters(ix, &cnt);
	assert_int_equal(cnt.queued, 52); /* stop freed the queued one */

	store_close(st);
	free(url);
	for (const char *const *f = (const char *const[]){"state.db", "state.db-wal",
							   "state.db-shm", NULL}; *f; f++) {
		char *path = xasprintf("%s/%s", dir, *f);

		unlink(path);
		free(path);
	}
	rmdir(dir);
	influx_free(ix);
	mstore_free(ms);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_feed),
		cmocka_unit_test(test_groups_and_events),
	};

	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
