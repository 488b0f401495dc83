/*
 * Unit tests for host.c on libvirt's test driver (test:///default, no
 * daemon): connecting, the backoff schedule of a host that cannot be
 * reached, dropping and re-establishing a connection, lifecycle events.
 * Reconnection to a real daemon that dies and comes back is tested in
 * tests/integration/test_collect_libvirt.c.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "host.h"
#include "log.h"
#include "util.h"

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* Wait (real time) for the attempt in flight to end, then tick at now. */
static bool
settle(struct host *h, int64_t now)
{
	for (int i = 0; i < 500 && host_attempt_running(h); i++)
		sleep_ms(10);
	assert_false(host_attempt_running(h));
	return host_tick(h, now);
}

static void
test_connect(void **state)
{
	struct host *h = host_new("t1", "test:///default");
	struct host_counters c;
	virConnectPtr conn;

	assert_string_equal(host_name(h), "t1");
	assert_string_equal(host_uri(h), "test:///default");
	assert_false(host_is_up(h));
	assert_null(host_conn(h));
	assert_int_equal(host_connect_wait(h, 10000), 0);
	assert_true(host_is_up(h));
	conn = host_conn(h);
	assert_non_null(conn);
	/* The test driver's default node has one running domain "test". */
	assert_int_equal(virConnectNumOfDomains(conn), 1);
	virConnectClose(conn);
	assert_false(host_check_alive(h));
	host_get_counters(h, &c);
	assert_int_equal(c.attempts, 1);
	assert_int_equal(c.connects, 1);
	assert_int_equal(c.errors, 0);
	host_free(h);
}

static void
test_backoff(void **state)
{
	/* A test driver file that does not exist: every attempt fails. */
	struct host *h = host_new("bad", "test:///nonexistent/va-node.xml");
	static const int64_t waits[] = {1000, 2000, 4000, 8000, 16000, 32000,
					60000, 60000};
	struct host_counters c;
	char err[256];
	int64_t now = 1000000;

	assert_false(host_tick(h, now)); /* first attempt at once */
	assert_false(settle(h, now));
	host_last_error(h, err, sizeof(err));
	assert_true(strlen(err) > 0);
	for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
		int64_t next = host_next_attempt_ms(h);

		assert_int_equal(next - now, waits[i]);
		/* Not due yet: no attempt. */
		assert_false(host_tick(h, next - 1));
		assert_false(host_attempt_running(h));
		now = next;
		assert_false(host_tick(h, now));
		assert_false(settle(h, now));
	}
	host_get_counters(h, &c);
	assert_int_equal(c.attempts, 9);
	assert_int_equal(c.errors, 9);
	assert_int_equal(c.connects, 0);

	/* host_connect() resets the backoff and tries at once. */
	host_connect(h);
	assert_false(settle(h, now));
	assert_int_equal(host_next_attempt_ms(h) - now, 1000);
	assert_int_equal(host_connect_wait(h, 50), -1);
	assert_non_null(strstr(err_msg(), "bad"));
	host_free(h);
}

static void
test_disconnect_reconnect(void **state)
{
	struct host *h = host_new("t2", "test:///default");
	struct host_counters c;
	int64_t now;

	assert_int_equal(host_connect_wait(h, 10000), 0);
	host_disconnect(h);
	assert_false(host_is_up(h));
	assert_null(host_conn(h));
	now = util_now_ms();
	/* The next attempt follows the backoff (1 s), not at once. */
	assert_false(host_tick(h, now));
	assert_false(host_attempt_running(h));
	assert_false(host_tick(h, now + 1000));
	assert_true(settle(h, now + 1000));
	host_get_counters(h, &c);
	assert_int_equal(c.connects, 2);
	assert_int_equal(c.disconnects, 1);
	host_free(h);
}

struct events {
	pthread_mutex_t lock;
	unsigned resets;
	unsigned started, stopped;
	unsigned char uuid[VIR_UUID_BUFLEN];
};

static void
on_event(struct host *h, const unsigned char uuid[VIR_UUID_BUFLEN], int event,
	 void *opaque)
{
	struct events *e = opaque;

	(void)h;
	pthread_mutex_lock(&e->lock);
	if (event < 0)
		e->resets++;
	else if (event == VIR_DOMAIN_EVENT_STARTED) {
		e->started++;
		memcpy(e->uuid, uuid, VIR_UUID_BUFLEN);
	} else if (event == VIR_DOMAIN_EVENT_STOPPED)
		e->stopped++;
	pthread_mutex_unlock(&e->lock);
}

static bool
wait_for(struct events *e, unsigned *field, unsigned want)
{
	for (int i = 0; i < 500; i++) {
		bool ok;

		pthread_mutex_lock(&e->lock);
		ok = *field >= want;
		pthread_mutex_unlock(&e->lock);
		if (ok)
			return true;
		sleep_ms(10);
	}
	return false;
}

static void
test_lifecycle_events(void **state)
{
	static const char xml[] =
		"<domain type='test'><name>va-ev</name>"
		"<uuid>6b3c0f4e-5a41-4f7e-9d0c-2f1e8a7b6c5d</uuid>"
		"<memory>65536</memory><vcpu>1</vcpu>"
		"<os><type>hvm</type></os></domain>";
	struct events e = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct host *h = host_new("t3", "test:///default");
	unsigned char want[VIR_UUID_BUFLEN];
	virConnectPtr conn;
	virDomainPtr dom;

	assert_int_equal(host_events_start(), 0);
	host_set_domain_event_cb(h, on_event, &e);
	assert_int_equal(host_connect_wait(h, 10000), 0);
	assert_true(wait_for(&e, &e.resets, 1));

	conn = host_conn(h);
	dom = virDomainCreateXML(conn, xml, 0);
	assert_non_null(dom);
	assert_true(wait_for(&e, &e.started, 1));
	virDomainGetUUID(dom, want);
	pthread_mutex_lock(&e.lock);
	assert_memory_equal(e.uuid, want, VIR_UUID_BUFLEN);
	pthread_mutex_unlock(&e.lock);
	assert_int_equal(virDomainDestroy(dom), 0);
	assert_true(wait_for(&e, &e.stopped, 1));
	virDomainFree(dom);
	virConnectClose(conn);

	/* A new connection tells the listener to forget what it cached. */
	host_disconnect(h);
	assert_false(host_tick(h, util_now_ms() + 1000));
	assert_true(settle(h, util_now_ms() + 1000));
	assert_true(wait_for(&e, &e.resets, 2));
	host_free(h);
}

/* Freeing a host while its attempt is still running must not wait. */
static void
test_free_during_attempt(void **state)
{
	for (int i = 0; i < 20; i++) {
		struct host *h = host_new("t4", "test:///default");

		host_tick(h, util_now_ms());
		host_free(h);
	}
	/* the attempts go on by themselves; none may outlive the process's
	 * libxml2 (ThreadSanitizer: a destroyed mutex at exit) */
	assert_true(host_threads_wait(30000));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_disconnect_reconnect),
		cmocka_unit_test(test_lifecycle_events),
		cmocka_unit_test(test_free_during_attempt),
	};
	int rc;

	log_set_level(LOG_LEVEL_WARN);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	host_events_stop();
	return rc;
}
