/*
 * Unit tests for metrics.c: the Prometheus text of instances, groups,
 * hosts and the daemon, with label escaping and missing values left out;
 * every sample line is checked against the exposition format's grammar.
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "collect.h"
#include "host.h"
#include "metrics.h"
#include "sink.h"
#include "util.h"

/* Every line a comment (# HELP / # TYPE) or "name{labels} value". */
static void
check_grammar(const char *text)
{
	regex_t sample, comment;
	char *copy = xstrdup(text), *line, *save = NULL;

	assert_int_equal(regcomp(&sample,
				 "^[a-zA-Z_:][a-zA-Z0-9_:]*"
				 "(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\""
				 "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\")*\\})?"
				 " (-?[0-9.e+-]+|NaN|[+-]Inf)$",
				 REG_EXTENDED | REG_NOSUB), 0);
	assert_int_equal(regcomp(&comment,
				 "^# (HELP [a-z_]+ .+|TYPE [a-z_]+ (gauge|counter|histogram))$",
				 REG_EXTENDED | REG_NOSUB), 0);
	for (line = strtok_r(copy, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		if (regexec(&sample, line, 0, NULL, 0) != 0 &&
		    regexec(&comment, line, 0, NULL, 0) != 0)
			fail_msg("not exposition format: '%s'", line);
	regfree(&sample);
	regfree(&comment);
	free(copy);
}

static void
test_render(void **state)
{
	struct host *h = host_new("kvm1", "test:///default");
	struct collect_instance inst[2];
	struct collect_host_result r;
	struct rates_group g;
	struct rates_window w;
	struct strbuf sb = STRBUF_INIT;
	const char *t;

	metrics_reset();
	memset(inst, 0, sizeof(inst));
	inst[0].group = "web";
	inst[0].id = "web-0001";
	rates_set(&inst[0].rates, RATES_CPU, 42.5);
	rates_set(&inst[0].rates, RATES_DISK_RD_BPS, 2048);
	inst[0].sample.present = 1u << RATES_F_CPU_TIME | 1u << RATES_F_RD_BYTES |
				 1u << RATES_F_TX_BYTES;
	inst[0].sample.cpu_time = 1500000000;
	inst[0].sample.rd_bytes = 4096;
	inst[0].sample.tx_bytes = 77;
	inst[1].group = "we\"ird";
	inst[1].id = "a\\b\nc";
	rates_set(&inst[1].rates, RATES_MEM, 10);
	memset(&r, 0, sizeof(r));
	r.host = h;
	r.ok = true;
	r.inst = inst;
	r.n_inst = 2;
	r.calls = 3;
	r.calls_total = 3;
	r.rounds = 7;
	r.duration_us = 250000;
	r.cap.present = 1u << COLLECT_CAP_NODEINFO | 1u << COLLECT_CAP_FREE;
	r.cap.cpu_util_pct = 0;
	r.cap.cpus = 8;
	r.cap.mem_kib = 1024;
	r.cap.free_kib = 512;
	r.cap.domains = 2;
	metrics_update_host(&r);
	r.calls = 1;
	r.calls_total = 4;
	r.rounds = 8;
	metrics_update_host(&r);
	metrics_update_host(&r); /* the same result again: counted once */

	memset(&w, 0, sizeof(w));
	w.present = 1u << RATES_CPU;
	w.n[RATES_CPU] = 1;
	w.mean[RATES_CPU] = 55;
	w.max[RATES_CPU] = 80;
	rates_group_init(&g);
	rates_group_add(&g, &w);
	rates_group_finish(&g);
	metrics_set_group("web", 3, 2, 1, &g);
	metrics_set_group("gone", 1, 1, 1, NULL);
	/* the policy's targets, in the engine's unit: cpu 60 %, net 1 MB/s */
	{
		double target[POLICY_METRIC_LAST] = {0};

		target[POLICY_METRIC_CPU] = 60;
		target[POLICY_METRIC_NET_BYTES] = 1e6;
		metrics_set_group_targets("web", target);
	}
	metrics_remove_group("gone");
	metrics_tick(0.125);

	metrics_scale_action("web", 1, 3);
	metrics_scale_action("web", 3, 2);
	metrics_scale_action("web", 2, 4);
	metrics_scale_action("web", 4, 4); /* no change: not an action */
	metrics_instance_ready("web", 12.5);
	metrics_instance_ready("web", 4);
	metrics_instance_ready("web", 900);

	/* Without the per-instance series (an unauthenticated scrape):
	 * nothing that names a VM. */
	metrics_render_prometheus(&sb, false);
	t = strbuf_str(&sb);
	check_grammar(t);
	assert_null(strstr(t, "va_instance_cpu"));
	assert_null(strstr(t, "web-0001"));
	assert_non_null(strstr(t, "va_group_desired{group=\"web\"} 3\n"));
	strbuf_reset(&sb);

	metrics_render_prometheus(&sb, true);
	t = strbuf_str(&sb);
	check_grammar(t);
	assert_non_null(strstr(t, "va_build_info{version=\""));
	/* percentages are ratios; the id is not in the label Prometheus
	 * keeps for the scrape target */
	assert_null(strstr(t, "percent"));
	assert_null(strstr(t, "instance=\""));
	assert_non_null(strstr(t, "# TYPE va_instance_cpu_ratio gauge\n"));
	assert_non_null(strstr(t, "va_instance_cpu_ratio{group=\"web\",host=\"kvm1\","
				  "instance_id=\"web-0001\"} 0.425\n"));
	/* rates computed by the daemon are not gauges on /metrics: the raw
	 * counters are, for Prometheus' own rate() */
	assert_null(strstr(t, "per_second{group=\"web\",host"));
	assert_null(strstr(t, "_iops"));
	assert_non_null(strstr(t, "# TYPE va_instance_cpu_seconds_total counter\n"));
	assert_non_null(strstr(t, "va_instance_cpu_seconds_total{group=\"web\",host=\"kvm1\","
				  "instance_id=\"web-0001\"} 1.5\n"));
	assert_non_null(strstr(t, "va_instance_disk_read_bytes_total{group=\"web\","
				  "host=\"kvm1\",instance_id=\"web-0001\"} 4096\n"));
	assert_non_null(strstr(t, "va_instance_network_transmit_bytes_total{group=\"web\","
				  "host=\"kvm1\",instance_id=\"web-0001\"} 77\n"));
	/* escaped labels; a figure the instance lacks is absent, not 0 */
	assert_non_null(strstr(t, "va_instance_memory_used_ratio{group=\"we\\\"ird\","
				  "host=\"kvm1\",instance_id=\"a\\\\b\\nc\"} 0.1\n"));
	assert_null(strstr(t, "instance_id=\"web-0001\"} 0\n"));
	assert_null(strstr(t, "va_instance_network_receive_bytes_total"));
	assert_null(strstr(t, "va_instance_disk_written_bytes_total{group=\"we"));
	assert_non_null(strstr(t, "va_group_desired{group=\"web\"} 3\n"));
	assert_non_null(strstr(t, "va_group_ready{group=\"web\"} 1\n"));
	assert_null(strstr(t, "group=\"gone\""));
	/* one unit per name: the engine's CPU input as a ratio */
	assert_null(strstr(t, "va_group_metric"));
	assert_non_null(strstr(t, "# TYPE va_group_cpu_ratio gauge\n"));
	assert_non_null(strstr(t, "va_group_cpu_ratio{group=\"web\",stat=\"mean\"} 0.55\n"));
	assert_non_null(strstr(t, "va_group_cpu_ratio{group=\"web\",stat=\"max\"} 0.8\n"));
	assert_non_null(strstr(t, "va_group_cpu_ratio{group=\"web\",stat=\"target\"} 0.6\n"));
	/* a target without measurements still has its family */
	assert_non_null(strstr(t, "# TYPE va_group_network_bytes_per_second gauge\n"
				  "va_group_network_bytes_per_second{group=\"web\","
				  "stat=\"target\"} 1000000\n"));
	assert_null(strstr(t, "va_group_memory_used_ratio"));
	assert_non_null(strstr(t, "# TYPE va_scale_actions_total counter\n"));
	assert_non_null(strstr(t, "va_scale_actions_total{group=\"web\",direction=\"up\"} 2\n"));
	assert_non_null(strstr(t, "va_scale_actions_total{group=\"web\",direction=\"down\"} 1\n"));
	assert_non_null(strstr(t, "# TYPE va_instance_ready_seconds histogram\n"));
	assert_non_null(strstr(t, "va_instance_ready_seconds_bucket{group=\"web\",le=\"5\"} 1\n"));
	assert_non_null(strstr(t, "va_instance_ready_seconds_bucket{group=\"web\",le=\"10\"} 1\n"));
	assert_non_null(strstr(t, "va_instance_ready_seconds_bucket{group=\"web\",le=\"15\"} 2\n"));
	assert_non_null(strstr(t, "va_instance_ready_seconds_bucket{group=\"web\",le=\"600\"} 2\n"));
	assert_non_null(strstr(t, "va_instance_ready_seconds_bucket{group=\"web\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(t, "va_instance_ready_seconds_sum{group=\"web\"} 916.5\n"));
	assert_non_null(strstr(t, "va_instance_ready_seconds_count{group=\"web\"} 3\n"));
	assert_non_null(strstr(t, "va_host_up{host=\"kvm1\"} 1\n"));
	assert_non_null(strstr(t, "va_host_memory_bytes{host=\"kvm1\"} 1048576\n"));
	assert_non_null(strstr(t, "va_host_libvirt_calls_total{host=\"kvm1\"} 4\n"));
	assert_non_null(strstr(t, "va_host_collect_duration_seconds{host=\"kvm1\"} 0.25\n"));
	assert_null(strstr(t, "va_host_cpu_utilization_ratio{"));
	assert_non_null(strstr(t, "va_tick_duration_seconds 0.125\n"));
	assert_non_null(strstr(t, "va_ticks_total 1\n"));
	assert_non_null(strstr(t, "va_tick_seconds_bucket{le=\"0.1\"} 0\n"));
	assert_non_null(strstr(t, "va_tick_seconds_bucket{le=\"0.25\"} 1\n"));
	assert_non_null(strstr(t, "va_tick_seconds_bucket{le=\"+Inf\"} 1\n"));
	assert_non_null(strstr(t, "va_tick_seconds_sum 0.125\n"));
	assert_non_null(strstr(t, "va_tick_seconds_count 1\n"));

	/* A failed round keeps the last capacity and instances but says down. */
	r.ok = false;
	r.errors = 1;
	metrics_update_host(&r);
	strbuf_reset(&sb);
	metrics_render_prometheus(&sb, true);
	t = strbuf_str(&sb);
	check_grammar(t);
	assert_non_null(strstr(t, "va_host_up{host=\"kvm1\"} 0\n"));
	assert_non_null(strstr(t, "va_host_collect_errors_total{host=\"kvm1\"} 1\n"));
	assert_non_null(strstr(t, "instance_id=\"web-0001\"} 0.425\n"));

	metrics_reset();
	strbuf_reset(&sb);
	metrics_render_prometheus(&sb, true);
	check_grammar(strbuf_str(&sb));
	assert_null(strstr(strbuf_str(&sb), "va_instance"));
	strbuf_release(&sb);
	host_free(h);
}

/* What the daemon does with each result (daemon.c, on_collect). */
static void
feed_like_daemon(const struct collect_host_result *r, void *opaque)
{
	int *results = opaque;

	(*results)++;
	if (!r->ok) {
		metrics_host_down(host_name(r->host));
		return;
	}
	sink_feed(NULL, 0, r, util_wall_ms(), util_now_ms());
	metrics_update_host(r);
}

static unsigned long
rendered_calls(const char *host)
{
	struct strbuf sb = STRBUF_INIT;
	char *key = xasprintf("va_host_libvirt_calls_total{host=\"%s\"} ", host);
	const char *p;
	unsigned long v = 0;

	metrics_render_prometheus(&sb, false);
	p = strstr(strbuf_str(&sb), key);
	assert_non_null(p);
	v = strtoul(p + strlen(key), NULL, 10);
	free(key);
	strbuf_release(&sb);
	return v;
}

/*
 * va_host_libvirt_calls_total is the number of libvirt calls the
 * collector made on the host: the collector's own count, however many
 * ways the daemon hands a result to the registry (it used to count every
 * call twice: once through sink_feed(), once directly).
 */
static void
test_calls_counted_once(void **state)
{
	struct host *h = host_new("test", "test:///default");
	struct collect_opts o;
	struct collector *c;
	int results = 0;

	(void)state;
	metrics_reset();
	collect_opts_defaults(&o);
	o.threads = false;
	o.stats_period_s = 0;
	c = collector_new(&o);
	collector_add_host(c, h);
	assert_int_equal(host_connect_wait(h, 10000), 0);
	for (int i = 0; i < 4; i++) {
		collect_tick(c, util_now_ms());
		assert_true(collect_wait(c, 10000));
		collect_take(c, feed_like_daemon, &results);
	}
	assert_int_equal(results, 4);
	/* warm-up (stats, XML, node capacity) plus one call per later tick */
	assert_true(collect_total_calls(c) >= 5);
	assert_int_equal(rendered_calls("test"), collect_total_calls(c));
	collector_free(c);
	host_free(h);
	metrics_reset();
}

/* Count the lines of text that contain needle. */
static int
count_lines(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/*
 * Rounds of different sizes and group orders on one host: metrics.c keeps
 * the instances' strings in one buffer reused from round to round, and a
 * group's name once per run of instances of that group. Each round's
 * labels must be exactly that round's, whatever came before.
 */
static void
test_rounds_reuse(void **state)
{
	static const size_t sizes[] = {3, 40, 1, 0, 25, 40};
	struct host *h = host_new("kvm1", "test:///default");
	struct collect_instance inst[40];
	char ids[40][32], groups[40][32];
	struct collect_host_result r;
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	metrics_reset();
	for (size_t round = 0; round < ARRAY_SIZE(sizes); round++) {
		size_t n = sizes[round];
		const char *t;

		memset(inst, 0, sizeof(inst));
		for (size_t i = 0; i < n; i++) {
			/* runs of 1-3 instances per group, groups recurring,
			 * names of different lengths every round */
			snprintf(groups[i], sizeof(groups[i]), "g%zu%.*s",
				 (i / (1 + round % 3)) % 4, (int)(round % 5),
				 "xxxxx");
			snprintf(ids[i], sizeof(ids[i]), "r%zu-i%zu", round, i);
			inst[i].group = groups[i];
			inst[i].id = ids[i];
			rates_set(&inst[i].rates, RATES_CPU, (double)i);
		}
		memset(&r, 0, sizeof(r));
		r.host = h;
		r.ok = true;
		r.inst = inst;
		r.n_inst = n;
		r.rounds = round + 1;
		metrics_update_host(&r);
		/* the caller's strings may go once the call returned */
		memset(groups, 'z', sizeof(groups));
		memset(ids, 'z', sizeof(ids));

		strbuf_reset(&sb);
		metrics_render_prometheus(&sb, true);
		t = strbuf_str(&sb);
		check_grammar(t);
		assert_int_equal(count_lines(t, "va_instance_cpu_ratio{"),
				 (int)n);
		for (size_t i = 0; i < n; i++) {
			char want[160];

			snprintf(want, sizeof(want),
				 "va_instance_cpu_ratio{group=\"g%zu%.*s\","
				 "host=\"kvm1\",instance_id=\"r%zu-i%zu\"} ",
				 (i / (1 + round % 3)) % 4, (int)(round % 5),
				 "xxxxx", round, i);
			if (!strstr(t, want))
				fail_msg("round %zu: no '%s'", round, want);
		}
	}
	metrics_reset();
	strbuf_release(&sb);
	host_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_rounds_reuse),
		cmocka_unit_test(test_calls_counted_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
