/*
 * Unit tests for control.c: what crosses between the daemon's loop and
 * the HTTP threads. A command is answered by the loop, withdrawn when the
 * loop does not take it in time (and then never applied), answered "not
 * applied" when the daemon stops; snapshots outlive their replacement
 * while read; heartbeats keep the newest per instance.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "control.h"
#include "util.h"

struct loop {
	struct control *c;
	int applied;
	int stop;
};

/* A loop that applies every command (doubles the size). */
static void *
loop_main(void *arg)
{
	struct loop *l = arg;

	while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE)) {
		struct control_cmd *cmd;

		while ((cmd = control_next(l->c))) {
			cmd->to = cmd->desired * 2;
			cmd->status = 200;
			l->applied++;
			control_complete(l->c, cmd);
		}
		usleep(1000);
	}
	return NULL;
}

static void
test_answered(void **state)
{
	struct loop l = {.c = control_new(NULL, NULL)};
	struct control_cmd cmd = {.kind = CONTROL_SET_DESIRED, .group = "web",
				  .desired = 3};
	pthread_t t;

	(void)state;
	pthread_create(&t, NULL, loop_main, &l);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(control_submit(l.c, &cmd, 5000), 0);
		assert_int_equal(cmd.status, 200);
		assert_int_equal(cmd.to, 6);
	}
	__atomic_store_n(&l.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	assert_int_equal(l.applied, 100);
	control_free(l.c);
}

static void
test_withdrawn(void **state)
{
	struct control *c = control_new(NULL, NULL);
	struct control_cmd cmd = {.kind = CONTROL_SET_PAUSED, .group = "web",
				  .paused = true};

	(void)state;
	/* no loop: not taken within 50 ms, withdrawn, never seen */
	assert_int_equal(control_submit(c, &cmd, 50), -1);
	assert_int_equal(cmd.status, 503);
	assert_non_null(strstr(cmd.error, "not applied"));
	assert_null(control_next(c));
	control_free(c);
}

static void
test_closed(void **state)
{
	struct control *c = control_new(NULL, NULL);
	struct control_cmd cmd = {.kind = CONTROL_SET_DESIRED, .group = "web"};

	(void)state;
	control_close(c);
	assert_int_equal(control_submit(c, &cmd, 1000), -1);
	assert_int_equal(cmd.status, 503);
	assert_null(control_next(c));
	control_free(c);
}

static int woken;

static void
wake(void *arg)
{
	(void)arg;
	woken++;
}

/* A command the loop took is answered, however long it takes. */
static void *
slow_loop(void *arg)
{
	struct control *c = arg;
	struct control_cmd *cmd;

	while (!(cmd = control_next(c)))
		usleep(1000);
	usleep(200000); /* longer than the submitter's timeout */
	cmd->status = 200;
	control_complete(c, cmd);
	return NULL;
}

static void
test_taken_waits(void **state)
{
	struct control *c = control_new(wake, NULL);
	struct control_cmd cmd = {.kind = CONTROL_SET_DESIRED, .group = "web"};
	pthread_t t;

	(void)state;
	woken = 0;
	pthread_create(&t, NULL, slow_loop, c);
	assert_int_equal(control_submit(c, &cmd, 100), 0);
	assert_int_equal(cmd.status, 200);
	assert_int_equal(woken, 1);
	pthread_join(t, NULL);
	control_free(c);
}

static void
test_snapshot(void **state)
{
	struct control *c = control_new(NULL, NULL);
	struct control_snapshot *s = control_snapshot_new(1), *r1, *r2;

	(void)state;
	assert_null(control_snapshot_get(c));
	s->groups[0].name = xstrdup("web");
	s->groups[0].desired = 3;
	control_publish(c, s);
	r1 = control_snapshot_get(c);
	assert_ptr_equal(r1, s);
	s = control_snapshot_new(1);
	s->groups[0].name = xstrdup("web");
	s->groups[0].desired = 4;
	control_publish(c, s);
	/* the old one is still readable by who holds it */
	assert_int_equal(control_snapshot_group(r1, "web")->desired, 3);
	assert_null(control_snapshot_group(r1, "db"));
	r2 = control_snapshot_get(c);
	assert_int_equal(control_snapshot_group(r2, "web")->desired, 4);
	control_snapshot_put(r1);
	control_snapshot_put(r2);
	control_free(c);
}

/* The ready instances' table the heartbeats are checked against. */
static void
test_ready_table(void **state)
{
	struct control_snapshot *s = control_snapshot_new(0), *s2;
	static const char *ids[] = {"0000000a", "0000000b", "0000000c"};

	(void)state;
	assert_null(control_snapshot_ready(s, "0000000a")); /* empty */
	s->ready = xrc_calloc(3, sizeof(*s->ready)); /* counted, as the loop's */
	s->n_ready = 3;
	for (int i = 0; i < 3; i++) {
		snprintf(s->ready[i].id, sizeof(s->ready[i].id), "%s", ids[i]);
		snprintf(s->ready[i].secret_hash, sizeof(s->ready[i].secret_hash),
			 "hash-%d", i);
	}
	for (int i = 0; i < 3; i++)
		assert_string_equal(control_snapshot_ready(s, ids[i])->secret_hash,
				    s->ready[i].secret_hash);
	assert_null(control_snapshot_ready(s, "00000009"));
	assert_null(control_snapshot_ready(s, "0000000d"));
	assert_null(control_snapshot_ready(NULL, "0000000a"));
	/* the next turn's snapshot shares the table (publish.c): it
	 * outlives the snapshot it came with */
	s2 = control_snapshot_new(0);
	s2->ready = xrc_ref(s->ready);
	s2->n_ready = s->n_ready;
	control_snapshot_put(s);
	for (int i = 0; i < 3; i++)
		assert_non_null(control_snapshot_ready(s2, ids[i]));
	control_snapshot_put(s2);
}

static void
test_heartbeats(void **state)
{
	struct control *c = control_new(NULL, NULL);
	struct control_hb *v;
	size_t n;

	(void)state;
	control_heartbeat(c, "b", 10, false);
	control_heartbeat(c, "a", 30, true);
	control_heartbeat(c, "b", 20, true);
	control_heartbeat(c, "a", 5, false);
	n = control_heartbeats_take(c, &v);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, "a");
	assert_int_equal(v[0].time_ms, 30);
	assert_true(v[0].busy);
	assert_string_equal(v[1].id, "b");
	assert_int_equal(v[1].time_ms, 20);
	free(v);
	n = control_heartbeats_take(c, &v);
	assert_int_equal(n, 0);
	free(v);
	control_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answered),
		cmocka_unit_test(test_withdrawn),
		cmocka_unit_test(test_closed),
		cmocka_unit_test(test_taken_waits),
		cmocka_unit_test(test_snapshot),
		cmocka_unit_test(test_ready_table),
		cmocka_unit_test(test_heartbeats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
