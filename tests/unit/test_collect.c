/*
 * Unit tests for collect.c: the domain XML facts (table-driven), and the
 * collector on libvirt's test driver (test:///default, no daemon): only
 * our domains are reported (not another installation's), one libvirt
 * call per host per tick after warm-up, lifecycle events re-read a
 * domain's XML, gone domains are reported, host capacity. (The test driver's bulk stats carry only the
 * state group; rates on real stats are in test_rates.c.)
 */
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
#include "host.h"
#include "log.h"
#include "util.h"

static void
test_domain_xml(void **state)
{
	static const struct {
		const char *xml;
		int rc;
		bool ours;
		const char *group, *id;
		uint64_t gen;
		unsigned vcpus;
		uint64_t mem_kib;
		unsigned disks;
		const char *why;
	} cases[] = {
		{"<domain type='kvm'><name>a</name><memory unit='KiB'>1048576</memory>"
		 "<currentMemory unit='KiB'>524288</currentMemory>"
		 "<vcpu placement='static' current='2'>4</vcpu>"
		 "<metadata><va:instance xmlns:va='https://virt-autoscaler.org/xmlns/1'"
		 " group='web' id='web-0001' generation='3'/></metadata>"
		 "<devices><disk type='file' device='disk'/><disk device='cdrom'/>"
		 "<disk type='file' device='disk'/></devices></domain>",
		 0, true, "web", "web-0001", 3, 2, 524288, 2, NULL},
		/* other namespaces and elements in <metadata> are not ours */
		{"<domain><vcpu>1</vcpu><memory unit='MiB'>512</memory><metadata>"
		 "<x:instance xmlns:x='https://example.org/other' group='g' id='i'/>"
		 "<va:other xmlns:va='https://virt-autoscaler.org/xmlns/1'/>"
		 "</metadata></domain>",
		 0, false, NULL, NULL, 0, 1, 524288, 0, NULL},
		/* any prefix works: the namespace URI decides */
		{"<domain><vcpu>8</vcpu><memory>2048</memory><metadata>"
		 "<q:instance xmlns:q='https://virt-autoscaler.org/xmlns/1' "
		 "group='db' id='db-7'/></metadata></domain>",
		 0, true, "db", "db-7", 0, 8, 2048, 0, NULL},
		{"<domain><metadata><va:instance "
		 "xmlns:va='https://virt-autoscaler.org/xmlns/1' id='x'/>"
		 "</metadata></domain>",
		 0, false, NULL, NULL, 0, 0, 0, 0, "lacks the attribute 'group'"},
		{"<domain><metadata><va:instance "
		 "xmlns:va='https://virt-autoscaler.org/xmlns/1' group='g' id='x' "
		 "generation='-1'/></metadata></domain>",
		 0, false, NULL, NULL, 0, 0, 0, 0, "bad generation"},
		/* one parser for our element (domxml.c's): names are checked
		 * as at provisioning, a generation has no sign */
		{"<domain><metadata><va:instance "
		 "xmlns:va='https://virt-autoscaler.org/xmlns/1' group='a b' "
		 "id='x'/></metadata></domain>",
		 0, false, NULL, NULL, 0, 0, 0, 0, "group 'a b'"},
		{"<domain><metadata><va:instance "
		 "xmlns:va='https://virt-autoscaler.org/xmlns/1' group='g' id='x' "
		 "generation='+3'/></metadata></domain>",
		 0, false, NULL, NULL, 0, 0, 0, 0, "bad generation"},
		{"<domain><memory unit='parsecs'>5</memory></domain>",
		 0, false, NULL, NULL, 0, 0, 0, 0, NULL},
		{"<network/>", -1, false, NULL, NULL, 0, 0, 0, 0, NULL},
		{"<domain>", -1, false, NULL, NULL, 0, 0, 0, 0, NULL},
		{"", -1, false, NULL, NULL, 0, 0, 0, 0, NULL},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct collect_facts f;
		const char *why;
		int rc = collect_parse_domain_xml(cases[i].xml,
						  strlen(cases[i].xml), &f, &why);

		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d", i, rc);
		if (rc == 0) {
			assert_int_equal(f.ours, cases[i].ours);
			if (cases[i].group) {
				assert_string_equal(f.meta.group, cases[i].group);
				assert_string_equal(f.meta.id, cases[i].id);
			} else {
				assert_string_equal(f.meta.group, "");
			}
			assert_int_equal(f.meta.generation, cases[i].gen);
			assert_int_equal(f.vcpus, cases[i].vcpus);
			assert_int_equal(f.mem_kib, cases[i].mem_kib);
			assert_int_equal(f.disks, cases[i].disks);
			if (cases[i].why)
				assert_non_null(why && strstr(why, cases[i].why));
			else
				assert_null(why);
		}
		collect_facts_release(&f);
	}
}

struct seen {
	unsigned results;
	bool ok;
	size_t n_inst, n_gone;
	char group[32], id[32], name[32];
	unsigned vcpus;
	int state;
	struct collect_host_result r;
};

static void
take_cb(const struct collect_host_result *r, void *opaque)
{
	struct seen *s = opaque;

	s->results++;
	s->ok = r->ok;
	s->n_inst = r->n_inst;
	s->n_gone = r->n_gone;
	s->r = *r;
	s->group[0] = s->id[0] = s->name[0] = '\0';
	if (r->n_inst) {
		snprintf(s->group, sizeof(s->group), "%s", r->inst[0].group);
		snprintf(s->id, sizeof(s->id), "%s", r->inst[0].id);
		snprintf(s->name, sizeof(s->name), "%s", r->inst[0].name);
		s->vcpus = r->inst[0].vcpus;
		s->state = r->inst[0].state;
	}
}

/* A collector of host h (test driver, connected), threads or not, with
 * no capacity calls and no stats period to set. */
static struct collector *
test_collector(struct host *h, bool threads)
{
	struct collect_opts o;
	struct collector *c;

	collect_opts_defaults(&o);
	o.threads = threads;
	o.capacity_period_ms = 3600000;
	o.stats_period_s = 0;
	c = collector_new(&o);
	collector_add_host(c, h);
	assert_int_equal(host_connect_wait(h, 10000), 0);
	return c;
}

/* Stop the running domain of that name (test driver: it goes). */
static void
destroy_named(virConnectPtr conn, const char *name)
{
	virDomainPtr dom = virDomainLookupByName(conn, name);

	assert_non_null(dom);
	assert_int_equal(virDomainDestroy(dom), 0);
	virDomainFree(dom);
}

/* One round of c, its result given to cb. */
static void
round_with(struct collector *c,
	   void (*cb)(const struct collect_host_result *, void *), void *arg)
{
	collect_tick(c, util_now_ms());
	assert_true(collect_wait(c, 10000));
	collect_take(c, cb, arg);
}

static void
round_of(struct collector *c, struct seen *s)
{
	memset(s, 0, sizeof(*s));
	round_with(c, take_cb, s);
}

static const char our_xml[] =
	"<domain type='test'><name>web-1</name>"
	"<uuid>0f6e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b</uuid>"
	"<memory>131072</memory><vcpu>2</vcpu><os><type>hvm</type></os>"
	"<metadata><va:instance xmlns:va='https://virt-autoscaler.org/xmlns/1'"
	" group='web' id='web-0001' generation='1'/></metadata></domain>";

static unsigned long
host_events(struct host *h)
{
	struct host_counters hc;

	host_get_counters(h, &hc);
	return hc.events;
}

/* Wait (up to 10 s) for a lifecycle event after the first `before`: a
 * fixed sleep is too short under ThreadSanitizer. */
static void
wait_event(struct host *h, unsigned long before)
{
	struct timespec ts = {0, 10 * 1000 * 1000};

	for (int i = 0; i < 1000 && host_events(h) <= before; i++)
		nanosleep(&ts, NULL);
	assert_true(host_events(h) > before);
}

static void
run_collector(bool threads)
{
	struct host *h = host_new("test", "test:///default");
	struct collector *c = test_collector(h, threads);
	struct seen s;
	virConnectPtr conn;
	virDomainPtr dom;
	unsigned long events;

	/* Round 1: the default "test" domain is not ours. */
	round_of(c, &s);
	assert_int_equal(s.results, 1);
	assert_true(s.ok);
	assert_int_equal(s.n_inst, 0);
	assert_int_equal(s.r.calls_stats, 1);
	assert_int_equal(s.r.calls_xml, 1);
	assert_int_equal(s.r.cap.domains, 1);
	assert_true(s.r.cap.present & (1u << COLLECT_CAP_NODEINFO));
	assert_true(s.r.cap.cpus > 0);

	/* Start one of ours: its XML is read once. */
	conn = host_conn(h);
	events = host_events(h);
	dom = virDomainCreateXML(conn, our_xml, 0);
	assert_non_null(dom);
	/* Let the lifecycle event arrive before the round. */
	wait_event(h, events);
	round_of(c, &s);
	assert_int_equal(s.n_inst, 1);
	assert_string_equal(s.group, "web");
	assert_string_equal(s.id, "web-0001");
	assert_string_equal(s.name, "web-1");
	assert_int_equal(s.vcpus, 2);
	assert_int_equal(s.state, VIR_DOMAIN_RUNNING);
	assert_int_equal(s.r.calls_xml, 1);
	assert_int_equal(s.r.cap.domains, 2);
	assert_true(s.r.cap.vcpus_alloc >= 3);

	/* Warmed up: exactly one libvirt call per host per tick. */
	for (int i = 0; i < 3; i++) {
		round_of(c, &s);
		assert_int_equal(s.n_inst, 1);
		assert_int_equal(s.r.calls, 1);
	}

	/* A lifecycle event (suspend) invalidates that domain's facts. */
	events = host_events(h);
	assert_int_equal(virDomainSuspend(dom), 0);
	wait_event(h, events);
	round_of(c, &s);
	assert_int_equal(s.r.calls_xml, 1);
	assert_int_equal(s.state, VIR_DOMAIN_PAUSED);
	round_of(c, &s);
	assert_int_equal(s.r.calls, 1);

	/* The test driver cannot set a stats period: a clear error. */
	{
		unsigned char uuid[VIR_UUID_BUFLEN], none[VIR_UUID_BUFLEN] = {0};

		virDomainGetUUID(dom, uuid);
		if (collect_set_stats_period(h, uuid, 5) < 0)
			assert_non_null(strstr(err_msg(), "test"));
		assert_int_equal(collect_set_stats_period(h, none, 5), -1);
		assert_non_null(strstr(err_msg(), "no such domain"));
	}

	/* Gone: reported once, then forgotten. */
	assert_int_equal(virDomainDestroy(dom), 0);
	virDomainFree(dom);
	virConnectClose(conn);
	round_of(c, &s);
	assert_int_equal(s.n_inst, 0);
	assert_int_equal(s.n_gone, 1);
	round_of(c, &s);
	assert_int_equal(s.n_gone, 0);
	assert_true(collect_total_calls(c) >= 9);

	/* Nothing new since the last take: no callback. */
	memset(&s, 0, sizeof(s));
	collect_take(c, take_cb, &s);
	assert_int_equal(s.results, 0);

	collector_free(c);
	host_free(h);
}

static void
test_collector_threads(void **state)
{
	run_collector(true);
}

static void
count_result(void *arg)
{
	__atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
}

/* The daemon's loop is told when a round's result is ready
 * (opts.on_result) and can ask whether one is in flight or not taken yet
 * (collect_pending):
 * a decision waits for the round in flight (scaler.c). */
static void
test_collector_on_result(void **state)
{
	struct host *h = host_new("test", "test:///default");
	struct collect_opts o;
	struct collector *c;
	struct timespec ts = {0, 5 * 1000 * 1000};
	struct seen s;
	int told = 0;

	collect_opts_defaults(&o);
	o.threads = true;
	o.capacity_period_ms = 3600000;
	o.stats_period_s = 0;
	o.on_result = count_result;
	o.on_result_arg = &told;
	c = collector_new(&o);
	collector_add_host(c, h);
	assert_int_equal(host_connect_wait(h, 10000), 0);
	assert_false(collect_pending(c));
	for (int round = 1; round <= 2; round++) {
		collect_tick(c, util_now_ms());
		for (int i = 0; i < 2000 && __atomic_load_n(&told, __ATOMIC_SEQ_CST) < round; i++)
			nanosleep(&ts, NULL);
		assert_int_equal(__atomic_load_n(&told, __ATOMIC_SEQ_CST), round);
		/* told once the result is out: pending until it is taken */
		assert_true(collect_pending(c));
		memset(&s, 0, sizeof(s));
		collect_take(c, take_cb, &s);
		assert_int_equal(s.results, 1);
		assert_true(s.ok);
		assert_false(collect_pending(c));
	}
	collector_free(c);
	host_free(h);
}

static void
test_collector_inline(void **state)
{
	run_collector(false);
}

/* The benchmark's mode: domains named with a prefix count as ours. */
static void
test_name_prefix(void **state)
{
	struct collect_opts o;
	struct collector *c;
	struct host *h = host_new("test", "test:///default");
	struct seen s;

	collect_opts_defaults(&o);
	o.name_prefix = "te";
	o.capacity_period_ms = 0;
	c = collector_new(&o);
	collector_add_host(c, h);
	assert_int_equal(host_connect_wait(h, 10000), 0);
	round_of(c, &s);
	assert_int_equal(s.n_inst, 1);
	assert_string_equal(s.group, "bench");
	assert_string_equal(s.name, "test");
	/* capacity every tick: node memory and CPU calls each round */
	round_of(c, &s);
	assert_int_equal(s.r.calls_node, 2);
	assert_true(s.r.cap.present & (1u << COLLECT_CAP_FREE));
	collector_free(c);
	host_free(h);
}

#define OWNER_A "7f0c9a51-3c1e-4d2b-8a6f-0e1d2c3b4a59"
#define OWNER_B "00000000-0000-4000-8000-000000000000"

/* owner= is read; an empty one makes the element malformed. */
static void
test_owner_facts(void **state)
{
	static const char with[] =
		"<domain><metadata><va:instance xmlns:va="
		"'https://virt-autoscaler.org/xmlns/1' group='web' id='w-1' "
		"owner='" OWNER_A "'/></metadata></domain>";
	static const char empty[] =
		"<domain><metadata><va:instance xmlns:va="
		"'https://virt-autoscaler.org/xmlns/1' group='web' id='w-1' "
		"owner=''/></metadata></domain>";
	struct collect_facts f;
	const char *why;

	(void)state;
	assert_int_equal(collect_parse_domain_xml(with, strlen(with), &f, &why), 0);
	assert_true(f.ours);
	assert_string_equal(f.meta.owner, OWNER_A);
	collect_facts_release(&f);
	assert_int_equal(collect_parse_domain_xml(our_xml, strlen(our_xml), &f,
						  &why), 0);
	assert_true(f.ours);
	assert_string_equal(f.meta.owner, ""); /* made before installation ids */
	collect_facts_release(&f);
	assert_int_equal(collect_parse_domain_xml(empty, strlen(empty), &f, &why),
			 0);
	assert_false(f.ours);
	assert_non_null(why && strstr(why, "owner is empty"));
	collect_facts_release(&f);
}

struct ids {
	size_t n;
	char id[8][32];
};

static void
ids_cb(const struct collect_host_result *r, void *opaque)
{
	struct ids *s = opaque;

	for (size_t i = 0; i < r->n_inst && s->n < 8; i++)
		snprintf(s->id[s->n++], sizeof(s->id[0]), "%s", r->inst[i].id);
}

static bool
has_id(const struct ids *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->id[i], id) == 0)
			return true;
	return false;
}

/* With opts.owner, another installation's domains are not collected;
 * ours and those without an owner (older versions) are. */
static void
test_owner(void **state)
{
	static const char *const xml[] = {
		"<domain type='test'><name>own-1</name><memory>131072</memory>"
		"<vcpu>1</vcpu><os><type>hvm</type></os><metadata><va:instance "
		"xmlns:va='https://virt-autoscaler.org/xmlns/1' group='web' "
		"id='own-1' owner='" OWNER_A "'/></metadata></domain>",
		"<domain type='test'><name>foreign-1</name><memory>131072</memory>"
		"<vcpu>1</vcpu><os><type>hvm</type></os><metadata><va:instance "
		"xmlns:va='https://virt-autoscaler.org/xmlns/1' group='web' "
		"id='foreign-1' owner='" OWNER_B "'/></metadata></domain>",
		"<domain type='test'><name>legacy-1</name><memory>131072</memory>"
		"<vcpu>1</vcpu><os><type>hvm</type></os><metadata><va:instance "
		"xmlns:va='https://virt-autoscaler.org/xmlns/1' group='web' "
		"id='legacy-1'/></metadata></domain>",
	};
	struct collect_opts o;
	struct collector *c;
	struct host *h = host_new("test", "test:///default");
	virConnectPtr conn;
	struct ids s;
	char owner[] = OWNER_A;

	(void)state;
	collect_opts_defaults(&o);
	o.threads = false;
	o.stats_period_s = 0;
	o.owner = owner;
	c = collector_new(&o);
	owner[0] = 'x'; /* the collector keeps its own copy */
	collector_add_host(c, h);
	assert_int_equal(host_connect_wait(h, 10000), 0);
	conn = host_conn(h);
	for (size_t i = 0; i < ARRAY_SIZE(xml); i++) {
		virDomainPtr dom = virDomainCreateXML(conn, xml[i], 0);

		assert_non_null(dom);
		virDomainFree(dom);
	}
	memset(&s, 0, sizeof(s));
	collect_tick(c, util_now_ms());
	assert_true(collect_wait(c, 10000));
	collect_take(c, ids_cb, &s);
	assert_int_equal(s.n, 2);
	assert_true(has_id(&s, "own-1"));
	assert_true(has_id(&s, "legacy-1"));
	assert_false(has_id(&s, "foreign-1"));
	for (size_t i = 0; i < ARRAY_SIZE(xml); i++) {
		static const char *const names[] = {"own-1", "foreign-1",
						    "legacy-1"};

		destroy_named(conn, names[i]);
	}
	virConnectClose(conn);
	collector_free(c);
	host_free(h);
}

struct renamed {
	size_t n_inst, n_gone;
	char id[32];
	unsigned char gone[VIR_UUID_BUFLEN];
};

static void
renamed_cb(const struct collect_host_result *r, void *opaque)
{
	struct renamed *s = opaque;

	s->n_inst = r->n_inst;
	s->n_gone = r->n_gone;
	s->id[0] = '\0';
	if (r->n_inst)
		snprintf(s->id, sizeof(s->id), "%s", r->inst[0].id);
	if (r->n_gone)
		memcpy(s->gone, r->gone[0], VIR_UUID_BUFLEN);
}

static void
renamed_round(struct collector *c, struct renamed *s)
{
	memset(s, 0, sizeof(*s));
	round_with(c, renamed_cb, s);
}

/*
 * The cache is keyed by name: a domain stopped and another started under
 * its name between two rounds is a new domain (the old one reported gone
 * once), at once when its lifecycle events came first, else within the
 * rounds that check every entry's UUID.
 */
static void
test_name_reused(void **state)
{
	static const char *const uuids[] = {
		"0f6e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b",
		"1f6e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5c",
		"2f6e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5d",
	};
	struct host *h = host_new("test", "test:///default");
	struct collector *c = test_collector(h, false);
	virConnectPtr conn;
	struct renamed s;

	(void)state;
	conn = host_conn(h);
	for (int k = 0; k < 3; k++) {
		char xml[1024], id[32];
		unsigned char old[VIR_UUID_BUFLEN];
		unsigned long events = host_events(h);
		virDomainPtr dom;
		int rounds = 0;

		snprintf(id, sizeof(id), "web-000%d", k + 1);
		snprintf(xml, sizeof(xml),
			 "<domain type='test'><name>web-1</name><uuid>%s</uuid>"
			 "<memory>131072</memory><vcpu>1</vcpu><os><type>hvm"
			 "</type></os><metadata><va:instance xmlns:va="
			 "'https://virt-autoscaler.org/xmlns/1' group='web' "
			 "id='%s' generation='1'/></metadata></domain>",
			 uuids[k], id);
		if (k > 0) {
			dom = virDomainLookupByName(conn, "web-1");
			assert_non_null(dom);
			assert_int_equal(virDomainGetUUID(dom, old), 0);
			assert_int_equal(virDomainDestroy(dom), 0);
			virDomainFree(dom);
		}
		dom = virDomainCreateXML(conn, xml, 0);
		assert_non_null(dom);
		virDomainFree(dom);
		/* the second time the round may come before the events */
		if (k != 2)
			wait_event(h, events);
		do {
			renamed_round(c, &s);
			assert_int_equal(s.n_inst, 1);
			if (k > 0 && strcmp(s.id, id) == 0) {
				assert_int_equal(s.n_gone, 1);
				assert_memory_equal(s.gone, old, VIR_UUID_BUFLEN);
			} else {
				assert_int_equal(s.n_gone, 0);
			}
			rounds++;
		} while (strcmp(s.id, id) != 0 && rounds <= 16);
		assert_string_equal(s.id, id);
		if (k < 2)
			assert_int_equal(rounds, 1);
		renamed_round(c, &s);
		assert_string_equal(s.id, id);
		assert_int_equal(s.n_gone, 0);
	}
	destroy_named(conn, "web-1");
	virConnectClose(conn);
	collector_free(c);
	host_free(h);
}

struct updown {
	unsigned results, up, down;
};

static void
count_cb(const struct collect_host_result *r, void *opaque)
{
	struct updown *s = opaque;

	s->results++;
	if (r->ok) {
		assert_string_equal(host_name(r->host), "good");
		s->up++;
	} else {
		assert_string_equal(host_name(r->host), "bad");
		assert_int_equal(r->n_inst, 0);
		s->down++;
	}
}

/* A host that cannot be reached is reported down and delays nothing. */
static void
test_dead_host(void **state)
{
	struct collect_opts o;
	struct collector *c;
	struct host *bad = host_new("bad", "test:///nonexistent/node.xml");
	struct host *good = host_new("good", "test:///default");
	struct updown s;

	collect_opts_defaults(&o);
	c = collector_new(&o);
	collector_add_host(c, bad);
	collector_add_host(c, good);
	assert_int_equal(host_connect_wait(good, 10000), 0);
	memset(&s, 0, sizeof(s));
	collect_tick(c, util_now_ms());
	assert_true(collect_wait(c, 10000));
	collect_take(c, count_cb, &s);
	/* Both report: the dead one as down, the good one with its round. */
	assert_int_equal(s.results, 2);
	assert_int_equal(s.down, 1);
	assert_int_equal(s.up, 1);
	collector_free(c);
	host_free(bad);
	host_free(good);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_domain_xml),
		cmocka_unit_test(test_collector_threads),
		cmocka_unit_test(test_collector_on_result),
		cmocka_unit_test(test_collector_inline),
		cmocka_unit_test(test_name_prefix),
		cmocka_unit_test(test_dead_host),
		cmocka_unit_test(test_owner_facts),
		cmocka_unit_test(test_owner),
		cmocka_unit_test(test_name_reused),
	};
	int rc;

	log_set_level(LOG_LEVEL_ERROR);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	host_events_stop();
	return rc;
}
