/*
 * Unit tests for the stats groups the collector asks libvirt for:
 * collect_stats_needed() from configurations (table-driven), and the
 * collector on libvirt's test driver with a CPU-only mask. The test
 * driver's bulk stats carry only the state group, so this program wraps
 * virConnectGetAllDomainStats(): it records the groups asked for and, when
 * CPU_TOTAL is among them, adds a cpu.time to every record (one of two
 * vCPUs busy), the way QEMU's driver would.
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "collect.h"
#include "config.h"
#include "host.h"
#include "log.h"
#include "util.h"

/* ---- the wrapped bulk call ----------------------------------------------- */

static unsigned last_stats;  /* groups of the last bulk call */

typedef int (*all_stats_fn)(virConnectPtr, unsigned int,
			    virDomainStatsRecordPtr **, unsigned int);

/* Defined here, it takes the place of libvirt's for the collector linked
 * into this program; the real one is called underneath. */
int
virConnectGetAllDomainStats(virConnectPtr conn, unsigned int stats,
			    virDomainStatsRecordPtr **ret, unsigned int flags)
{
	static all_stats_fn real;
	int n;

	if (!real)
		real = (all_stats_fn)dlsym(RTLD_NEXT,
					   "virConnectGetAllDomainStats");
	assert_non_null(real);
	last_stats = stats;
	n = real(conn, stats, ret, flags);
	if (n <= 0 || !(stats & VIR_DOMAIN_STATS_CPU_TOTAL))
		return n;
	for (int i = 0; i < n; i++) {
		virDomainStatsRecordPtr r = (*ret)[i];
		int max = r->nparams;

		/* one vCPU of two busy: cpu.time grows with the wall clock */
		if (virTypedParamsAddULLong(&r->params, &r->nparams, &max,
					    "cpu.time",
					    (unsigned long long)util_now_us() *
						    1000ULL) < 0)
			fail_msg("virTypedParamsAddULLong failed");
	}
	return n;
}

/* ---- collect_stats_needed() ---------------------------------------------- */

#define HEAD                                                                 \
	"version: 1\n"                                                       \
	"hosts:\n"                                                           \
	"  - { name: kvm1, uri: \"test:///default\", pool: default }\n"

#define GROUP(name, scaling)                                                 \
	"  " name ":\n"                                                      \
	"    min: 1\n"                                                       \
	"    max: 4\n"                                                       \
	"    template: { image: base.qcow2 }\n" scaling

#define ST_STATE VIR_DOMAIN_STATS_STATE
#define ST_CPU VIR_DOMAIN_STATS_CPU_TOTAL
#define ST_MEM VIR_DOMAIN_STATS_BALLOON
#define ST_BLOCK VIR_DOMAIN_STATS_BLOCK
#define ST_NET VIR_DOMAIN_STATS_INTERFACE

static void
test_stats_needed(void **state)
{
	static const struct {
		const char *what, *yaml;
		unsigned want;
	} cases[] = {
		{"no policy: state only", HEAD "groups:\n" GROUP("web", ""),
		 ST_STATE},
		{"target cpu", HEAD "groups:\n"
			GROUP("web", "    scaling:\n      target: { cpu: 60% }\n"),
		 ST_STATE | ST_CPU},
		{"target memory", HEAD "groups:\n"
			GROUP("web", "    scaling:\n      target: { memory: 70% }\n"),
		 ST_STATE | ST_MEM},
		{"target cpu and memory", HEAD "groups:\n"
			GROUP("web", "    scaling:\n"
				     "      target: { cpu: 60%, memory: 70% }\n"),
		 ST_STATE | ST_CPU | ST_MEM},
		{"step rules only: disk and network", HEAD "groups:\n"
			GROUP("web", "    scaling:\n      steps:\n"
				     "        - { metric: disk_iops, above: 500, change: +1 }\n"
				     "        - { metric: net_bytes, above: 100MiB, change: +1 }\n"),
		 ST_STATE | ST_BLOCK | ST_NET},
		{"disk bytes as a target", HEAD "groups:\n"
			GROUP("web", "    scaling:\n      target: { disk_bytes: 50MiB }\n"),
		 ST_STATE | ST_BLOCK},
		{"two groups: the union", HEAD "groups:\n"
			GROUP("web", "    scaling:\n      target: { cpu: 60% }\n")
			GROUP("db", "    scaling:\n      steps:\n"
				    "        - { metric: memory, above: 90%, change: +1 }\n"),
		 ST_STATE | ST_CPU | ST_MEM},
		{"InfluxDB stores every figure",
		 "version: 1\n"
		 "daemon:\n"
		 "  metrics:\n"
		 "    influxdb: { url: \"http://127.0.0.1:8086\", database: va }\n"
		 "hosts:\n"
		 "  - { name: kvm1, uri: \"test:///default\", pool: default }\n"
		 "groups:\n"
			GROUP("web", "    scaling:\n      target: { cpu: 60% }\n"),
		 COLLECT_STATS},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct strbuf errors = STRBUF_INIT;
		struct config *cfg = config_parse_buffer(cases[i].yaml,
							 strlen(cases[i].yaml),
							 cases[i].what, &errors);
		unsigned got;

		if (!cfg)
			fail_msg("%s: %s", cases[i].what, strbuf_str(&errors));
		got = collect_stats_needed(cfg);
		if (got != cases[i].want)
			fail_msg("%s: groups 0x%x, expected 0x%x", cases[i].what,
				 got, cases[i].want);
		config_free(cfg);
		strbuf_release(&errors);
	}
}

/* ---- the collector with a mask ------------------------------------------- */

static const char our_xml[] =
	"<domain type='test'><name>mask-1</name>"
	"<uuid>5b0e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5c</uuid>"
	"<memory>131072</memory><vcpu>2</vcpu><os><type>hvm</type></os>"
	"<metadata><va:instance xmlns:va='https://virt-autoscaler.org/xmlns/1'"
	" group='web' id='web-0001' generation='1'/></metadata></domain>";

struct seen {
	int results;
	size_t n_inst;
	struct rates rates;
	uint64_t mem_kib;
	unsigned calls_other;
};

static void
take_cb(const struct collect_host_result *r, void *opaque)
{
	struct seen *s = opaque;

	s->results++;
	s->n_inst = r->n_inst;
	s->calls_other = r->calls_other;
	if (r->n_inst) {
		s->rates = r->inst[0].rates;
		s->mem_kib = r->inst[0].mem_kib;
	}
}

static void
round_of(struct collector *c, struct seen *s)
{
	memset(s, 0, sizeof(*s));
	collect_tick(c, util_now_ms());
	assert_true(collect_wait(c, 10000));
	collect_take(c, take_cb, s);
	assert_int_equal(s->results, 1);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* A CPU-only mask asks for state and CPU, nothing else, and still yields
 * the CPU figure; memory falls back to the XML, and no balloon stats
 * period is set (stats_period_s is on) since balloon stats were not
 * asked for. Then all five groups again, from the next round on. */
static void
test_cpu_only(void **state)
{
	struct host *h = host_new("test", "test:///default");
	struct collect_opts o;
	struct collector *c;
	struct seen s;
	virConnectPtr conn;
	virDomainPtr dom;

	(void)state;
	collect_opts_defaults(&o);
	o.threads = false;
	o.stats = VIR_DOMAIN_STATS_CPU_TOTAL; /* STATE is added */
	assert_int_equal(o.stats_period_s, 10);
	c = collector_new(&o);
	collector_add_host(c, h);
	assert_int_equal(host_connect_wait(h, 10000), 0);
	conn = host_conn(h);
	dom = virDomainCreateXML(conn, our_xml, 0);
	assert_non_null(dom);
	sleep_ms(100); /* the lifecycle event */

	round_of(c, &s);
	assert_int_equal(last_stats, VIR_DOMAIN_STATS_STATE |
					     VIR_DOMAIN_STATS_CPU_TOTAL);
	assert_int_equal(s.n_inst, 1);
	sleep_ms(500);
	round_of(c, &s);
	assert_int_equal(last_stats, VIR_DOMAIN_STATS_STATE |
					     VIR_DOMAIN_STATS_CPU_TOTAL);
	assert_int_equal(s.n_inst, 1);
	assert_true(rates_has(&s.rates, RATES_CPU));
	/* one vCPU of two: 50 %, give or take the call's own time */
	if (s.rates.v[RATES_CPU] < 35 || s.rates.v[RATES_CPU] > 65)
		fail_msg("cpu %.1f %%, expected about 50", s.rates.v[RATES_CPU]);
	assert_false(rates_has(&s.rates, RATES_MEM));
	assert_false(rates_has(&s.rates, RATES_DISK_RD_BPS));
	assert_false(rates_has(&s.rates, RATES_NET_RX_BPS));
	assert_int_equal(s.mem_kib, 131072);
	assert_int_equal(s.calls_other, 0);

	/* all five from the next round on */
	collect_set_stats(c, 0);
	round_of(c, &s);
	assert_int_equal(last_stats, COLLECT_STATS);
	/* masks outside COLLECT_STATS are dropped, STATE always kept */
	collect_set_stats(c, VIR_DOMAIN_STATS_VCPU | VIR_DOMAIN_STATS_BALLOON);
	round_of(c, &s);
	assert_int_equal(last_stats, VIR_DOMAIN_STATS_STATE |
					     VIR_DOMAIN_STATS_BALLOON);

	assert_int_equal(virDomainDestroy(dom), 0);
	virDomainFree(dom);
	virConnectClose(conn);
	collector_free(c);
	host_free(h);
}

/* The defaults ask for all five groups, as before. */
static void
test_default_all(void **state)
{
	struct host *h = host_new("test", "test:///default");
	struct collect_opts o;
	struct collector *c;
	struct seen s;

	(void)state;
	collect_opts_defaults(&o);
	o.threads = false;
	c = collector_new(&o);
	collector_add_host(c, h);
	assert_int_equal(host_connect_wait(h, 10000), 0);
	round_of(c, &s);
	assert_int_equal(last_stats, COLLECT_STATS);
	collector_free(c);
	host_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stats_needed),
		cmocka_unit_test(test_cpu_only),
		cmocka_unit_test(test_default_all),
	};

	log_set_level(LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
