/*
 * Unit tests for sink.c: one collection result fed to the built-in store,
 * an InfluxDB writer (pointed at a closed loopback port: its queue is what
 * we look at) and the /metrics registry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_feed),
	};

	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
