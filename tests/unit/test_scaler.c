/*
 * Unit tests for the daemon's static address allocation (scaler.c):
 * lowest free address of the range, addresses of gone instances reused,
 * ones handed out in the same pass skipped, IPv6, exhaustion.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "commands.h"
#include "daemon_int.h"

/* main.c is not linked; the daemon modules reference its options. */
struct global_opts global_opts;

static struct config_static_addresses
range(int family, const char *first, const char *last)
{
	struct config_static_addresses sa;

	memset(&sa, 0, sizeof(sa));
	sa.present = true;
	sa.family = family;
	sa.first = (char *)first;
	sa.last = (char *)last;
	sa.prefix = family == AF_INET ? 24 : 64;
	return sa;
}

static void
test_ipv4(void **state)
{
	struct config_static_addresses sa = range(AF_INET, "10.0.0.254", "10.0.1.1");
	struct store_instance v[3];
	struct store_instance_list l = {v, 3};
	char *taken[1] = {(char *)"10.0.0.255"};
	char out[46];

	(void)state;
	memset(v, 0, sizeof(v));
	v[0].address = (char *)"10.0.0.254";
	v[0].state = STORE_INSTANCE_READY;
	v[1].address = (char *)"10.0.1.0";
	v[1].state = STORE_INSTANCE_GONE; /* gives its address back */
	v[2].address = NULL;
	v[2].state = STORE_INSTANCE_BOOTING;
	/* .254 held, .255 taken this pass: the next one crosses the octet */
	assert_int_equal(scaler_allocate_address(&sa, &l, taken, 1, out), 0);
	assert_string_equal(out, "10.0.1.0");
	v[1].state = STORE_INSTANCE_DRAINING;
	assert_int_equal(scaler_allocate_address(&sa, &l, taken, 1, out), 0);
	assert_string_equal(out, "10.0.1.1");
	v[2].address = (char *)"10.0.1.1";
	assert_int_equal(scaler_allocate_address(&sa, &l, taken, 1, out), -1);
}

static void
test_ipv6(void **state)
{
	struct config_static_addresses sa = range(AF_INET6, "2001:db8::ffff", "2001:db8::1:1");
	struct store_instance v[1];
	struct store_instance_list l = {v, 1};
	char out[46];

	(void)state;
	memset(v, 0, sizeof(v));
	v[0].address = (char *)"2001:db8::ffff";
	v[0].state = STORE_INSTANCE_READY;
	assert_int_equal(scaler_allocate_address(&sa, &l, NULL, 0, out), 0);
	assert_string_equal(out, "2001:db8::1:0");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4),
		cmocka_unit_test(test_ipv6),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
