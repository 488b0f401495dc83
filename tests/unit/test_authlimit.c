/*
 * Tests for authlimit.c: the failed-authentication table (limit, window,
 * an eviction that cannot be cycled) and the token bucket, on a clock of
 * the test's own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "authlimit.h"

static void
key(char *out, size_t n, unsigned i)
{
	snprintf(out, n, "10.0.%u.%u i-%u", i / 256, i % 256, i);
}

static void
test_limit_and_window(void **state)
{
	struct authlimit *t = authlimit_new(8, 3, 60000);

	(void)state;
	assert_int_equal(authlimit_check(t, "a", 0), AUTHLIMIT_ABSENT);
	assert_int_equal(authlimit_fail(t, "a", 0), AUTHLIMIT_COUNTED);
	assert_int_equal(authlimit_fail(t, "a", 10), AUTHLIMIT_COUNTED);
	assert_int_equal(authlimit_check(t, "a", 10), AUTHLIMIT_COUNTING);
	assert_int_equal(authlimit_fail(t, "a", 20), AUTHLIMIT_REACHED);
	assert_int_equal(authlimit_check(t, "a", 20), AUTHLIMIT_BLOCKED);
	assert_int_equal(authlimit_fail(t, "a", 30), AUTHLIMIT_OVER);
	/* other keys are not touched */
	assert_int_equal(authlimit_check(t, "b", 30), AUTHLIMIT_ABSENT);
	/* blocked for the window from the first failure, then free */
	assert_int_equal(authlimit_check(t, "a", 59999), AUTHLIMIT_BLOCKED);
	assert_int_equal(authlimit_check(t, "a", 60000), AUTHLIMIT_ABSENT);
	/* a new window starts from scratch */
	assert_int_equal(authlimit_fail(t, "a", 60001), AUTHLIMIT_COUNTED);
	assert_int_equal(authlimit_check(t, "a", 60001), AUTHLIMIT_COUNTING);
	assert_int_equal(authlimit_live(t, 60001), 1);
	authlimit_free(t);
}

/*
 * The old table evicted its oldest entry: failing round-robin with one
 * key more than it had slots, every key was forgotten before its next
 * turn and none was ever limited. Now live entries stay: the first
 * `slots` keys are limited, the others are not recorded (FULL), and the
 * caller charges them elsewhere.
 */
static void
test_cycling_cannot_evict(void **state)
{
	enum { SLOTS = 16, LIMIT = 3 };
	struct authlimit *t = authlimit_new(SLOTS, LIMIT, 60000);
	char k[64];
	unsigned full = 0;

	(void)state;
	for (unsigned round = 0; round < LIMIT; round++)
		for (unsigned i = 0; i < SLOTS + 1; i++) {
			key(k, sizeof(k), i);
			if (authlimit_fail(t, k, 1000 + round * 100 + i) ==
			    AUTHLIMIT_FULL)
				full++;
		}
	for (unsigned i = 0; i < SLOTS; i++) {
		key(k, sizeof(k), i);
		assert_int_equal(authlimit_check(t, k, 2000), AUTHLIMIT_BLOCKED);
	}
	key(k, sizeof(k), SLOTS);
	assert_int_equal(authlimit_check(t, k, 2000), AUTHLIMIT_ABSENT);
	assert_int_equal(full, LIMIT);
	/* many more keys do not free a blocked one either */
	for (unsigned i = 100; i < 1100; i++) {
		key(k, sizeof(k), i);
		assert_int_equal(authlimit_fail(t, k, 3000), AUTHLIMIT_FULL);
	}
	key(k, sizeof(k), 0);
	assert_int_equal(authlimit_check(t, k, 3000), AUTHLIMIT_BLOCKED);
	/* a key still counting is not evicted either */
	authlimit_free(t);
	t = authlimit_new(2, LIMIT, 60000);
	assert_int_equal(authlimit_fail(t, "target", 0), AUTHLIMIT_COUNTED);
	assert_int_equal(authlimit_fail(t, "junk-0", 1), AUTHLIMIT_COUNTED);
	for (unsigned i = 1; i < 100; i++) {
		key(k, sizeof(k), i);
		assert_int_equal(authlimit_fail(t, k, 2), AUTHLIMIT_FULL);
	}
	assert_int_equal(authlimit_fail(t, "target", 3), AUTHLIMIT_COUNTED);
	assert_int_equal(authlimit_fail(t, "target", 4), AUTHLIMIT_REACHED);
	/* expired entries are reused */
	assert_int_equal(authlimit_fail(t, "late", 60001), AUTHLIMIT_COUNTED);
	assert_int_equal(authlimit_check(t, "late", 60001), AUTHLIMIT_COUNTING);
	assert_int_equal(authlimit_live(t, 60001), 1);
	authlimit_free(t);
}

/*
 * The table grows as keys fail (16, 32, 64, then its capacity): every
 * entry must survive each growth, the capacity is still the limit, and
 * expired entries are reused before the table grows again.
 */
static void
test_grows_to_capacity(void **state)
{
	enum { SLOTS = 100 };
	struct authlimit *t = authlimit_new(SLOTS, 2, 1000);
	char k[64];

	(void)state;
	for (unsigned i = 0; i < SLOTS; i++) {
		key(k, sizeof(k), i);
		assert_int_equal(authlimit_fail(t, k, 0), AUTHLIMIT_COUNTED);
	}
	key(k, sizeof(k), SLOTS);
	assert_int_equal(authlimit_fail(t, k, 0), AUTHLIMIT_FULL);
	for (unsigned i = 0; i < SLOTS; i++) {
		key(k, sizeof(k), i);
		assert_int_equal(authlimit_check(t, k, 1), AUTHLIMIT_COUNTING);
		assert_int_equal(authlimit_fail(t, k, 1), AUTHLIMIT_REACHED);
		assert_int_equal(authlimit_check(t, k, 2), AUTHLIMIT_BLOCKED);
	}
	assert_int_equal(authlimit_live(t, 2), SLOTS);
	/* all expired: new keys take the old slots, and there is room for
	 * as many as the capacity again, no more */
	for (unsigned i = 0; i < SLOTS; i++) {
		key(k, sizeof(k), 1000 + i);
		assert_int_equal(authlimit_fail(t, k, 1000), AUTHLIMIT_COUNTED);
	}
	key(k, sizeof(k), 5000);
	assert_int_equal(authlimit_fail(t, k, 1000), AUTHLIMIT_FULL);
	key(k, sizeof(k), 3);
	assert_int_equal(authlimit_check(t, k, 1000), AUTHLIMIT_ABSENT);
	assert_int_equal(authlimit_live(t, 1000), SLOTS);
	authlimit_free(t);
}

static void
test_long_keys(void **state)
{
	struct authlimit *t = authlimit_new(4, 1, 1000);
	char a[300], b[300];

	(void)state;
	memset(a, 'x', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[200] = 'y'; /* differs after the cut: the same key */
	assert_int_equal(authlimit_fail(t, a, 0), AUTHLIMIT_REACHED);
	assert_int_equal(authlimit_check(t, b, 0), AUTHLIMIT_BLOCKED);
	b[10] = 'y';
	assert_int_equal(authlimit_check(t, b, 0), AUTHLIMIT_ABSENT);
	authlimit_free(t);
}

static void
test_ratelimit(void **state)
{
	struct ratelimit r = RATELIMIT_INIT(3, 1000);
	unsigned long skipped = 99;

	(void)state;
	for (int i = 0; i < 3; i++) {
		assert_true(ratelimit_take(&r, 0, &skipped));
		assert_int_equal(skipped, 0);
	}
	for (int i = 0; i < 5; i++)
		assert_false(ratelimit_take(&r, 500, &skipped));
	assert_true(ratelimit_take(&r, 1000, &skipped));
	assert_int_equal(skipped, 5);
	assert_false(ratelimit_take(&r, 1500, &skipped));
	/* refills up to the burst, not beyond */
	for (int i = 0; i < 3; i++)
		assert_true(ratelimit_take(&r, 100000, NULL));
	assert_false(ratelimit_take(&r, 100000, NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit_and_window),
		cmocka_unit_test(test_cycling_cannot_evict),
		cmocka_unit_test(test_grows_to_capacity),
		cmocka_unit_test(test_long_keys),
		cmocka_unit_test(test_ratelimit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
