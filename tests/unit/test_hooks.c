/*
 * test_hooks.c: the lifecycle hooks' signature (vectors computed with
 * Python's hmac module, as a receiver would) and the sender's retries
 * against a port that refuses, until the deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hooks.h"
#include "util.h"

static const char body[] = "{\"instance\":\"x\"}";

static void
test_sign_vector(void **state)
{
	char sig[65];

	(void)state;
	/* hmac.new(b'k3y-secret', b'1700000000.' + body, sha256).hexdigest() */
	assert_int_equal(hooks_sign("k3y-secret", 10, "1700000000", body,
				    strlen(body), sig), 0);
	assert_string_equal(sig, "83e9a2c30816b13af0714a905560924a53645d9f"
				 "b936a77ed9f481c0d4a28b7f");
	/* the timestamp is covered: another second, another signature */
	assert_int_equal(hooks_sign("k3y-secret", 10, "1700000001", body,
				    strlen(body), sig), 0);
	assert_string_equal(sig, "d5282cfb9e0988420318464adcbba82dbb23e92f"
				 "c426bb973ca6fb2700a6d105");
	/* and the key */
	assert_int_equal(hooks_sign("k3y-secreT", 10, "1700000000", body,
				    strlen(body), sig), 0);
	assert_string_not_equal(sig, "83e9a2c30816b13af0714a905560924a53645d9f"
				     "b936a77ed9f481c0d4a28b7f");
}

/* A receiver that refuses: failed attempts with backoff, then given up
 * at the deadline; the call stays known (not sent again) until forgotten. */
static void
test_refused_gives_up(void **state)
{
	struct hooks *h = hooks_new(2);
	struct hook_call c = {
		.id = "11111111-2222-4333-8444-555555555555",
		.group = "web",
		.hook = STORE_HOOK_LAUNCH,
		.url = "http://127.0.0.1:1/hook",
		.key = "k",
		.body = body,
		.deadline_ms = util_wall_ms() + 1500,
		.backoff_ms = 200,
		.backoff_max_ms = 400,
	};
	unsigned failed = 0, gave_up = 0;
	int64_t until = util_wall_ms() + 5000;

	(void)state;
	assert_non_null(h);
	hooks_send(h, &c);
	assert_true(hooks_known(h, c.id));
	while (!gave_up && util_wall_ms() < until) {
		struct hook_report *v;
		size_t n = hooks_reports(h, &v);

		for (size_t i = 0; i < n; i++) {
			assert_string_equal(v[i].id, c.id);
			assert_int_not_equal(v[i].outcome, HOOK_SENT);
			if (v[i].outcome == HOOK_FAILED)
				failed++;
			else
				gave_up++;
		}
		free(v);
		usleep(50000);
	}
	assert_int_equal(gave_up, 1);
	/* 200, 400, 400, 400 ms apart within 1.5 s: 4 or 5 attempts, the
	 * last reported as given up (fewer on a loaded machine, never more) */
	assert_true(failed >= 2 && failed <= 5);
	assert_true(hooks_known(h, c.id));
	hooks_forget(h, c.id);
	assert_false(hooks_known(h, c.id));
	hooks_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign_vector),
		cmocka_unit_test(test_refused_gives_up),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
