/*
 * test_log.c: log lines for systemd's journal (log.c) and the level of
 * each event kind (event.c).
 *
 * Issue 12: under journald every line was logged at the journal's default
 * priority (no "<N>" prefix, so `journalctl -p err` found nothing), a
 * message with a newline became two journal entries, and every event
 * (unhealthy, provision_failed included) was logged at info.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "event.h"
#include "log.h"

static size_t
fmt(char *buf, size_t size, enum log_level level, bool prio, bool ts,
    const char *f, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, f);
	n = log_format_line(buf, size, level, "tag", prio, ts, f, ap);
	va_end(ap);
	return n;
}

static void
test_priority_prefix(void **state)
{
	static const struct {
		enum log_level level;
		const char *want;
	} cases[] = {
		{LOG_LEVEL_ERROR, "<3>error tag: x"},
		{LOG_LEVEL_WARN, "<4>warn tag: x"},
		{LOG_LEVEL_INFO, "<6>info tag: x"},
		{LOG_LEVEL_DEBUG, "<7>debug tag: x"},
	};
	char buf[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = fmt(buf, sizeof(buf), cases[i].level, true, false, "%s", "x");

		assert_string_equal(buf, cases[i].want);
		assert_int_equal(n, strlen(cases[i].want));
	}
	/* plain: no prefix; with a timestamp "YYYY-MM-DDTHH:MM:SS.mmmZ " */
	fmt(buf, sizeof(buf), LOG_LEVEL_WARN, false, false, "x");
	assert_string_equal(buf, "warn tag: x");
	fmt(buf, sizeof(buf), LOG_LEVEL_WARN, false, true, "x");
	assert_int_equal(strlen(buf), 25 + strlen("warn tag: x"));
	assert_memory_equal(buf + 19, ".", 1);
	assert_string_equal(buf + 25, "warn tag: x");
	fmt(buf, sizeof(buf), LOG_LEVEL_ERROR, true, true, "x");
	assert_memory_equal(buf, "<3>", 3);
	assert_string_equal(buf + 28, "error tag: x");
}

static void
test_one_line(void **state)
{
	char buf[256];

	(void)state;
	/* a configuration error list, a libvirt message with a newline */
	fmt(buf, sizeof(buf), LOG_LEVEL_ERROR, true, false,
	    "rejected:\n%s\n", "a.yaml:3: bad\r\na.yaml:5: worse\n\n");
	assert_string_equal(buf,
			    "<3>error tag: rejected:\\na.yaml:3: bad\\r\\na.yaml:5: worse");
	assert_null(strchr(buf, '\n'));
	/* other control characters cannot forge anything either; tabs stay */
	fmt(buf, sizeof(buf), LOG_LEVEL_INFO, false, false, "a\033[1mb\tc\x7f");
	assert_string_equal(buf, "info tag: a\\x1b[1mb\tc\\x7f");
}

static void
test_truncated(void **state)
{
	char buf[24];
	size_t n;

	(void)state;
	n = fmt(buf, sizeof(buf), LOG_LEVEL_INFO, true, false, "%s",
		"0123456789\n0123456789\n0123456789");
	assert_int_equal(n, strlen(buf));
	assert_true(n < sizeof(buf));
	assert_null(strchr(buf, '\n'));
	assert_memory_equal(buf, "<6>info tag: 0123456789", 23);
	/* an escape that does not fit is left out whole */
	n = fmt(buf, sizeof(buf), LOG_LEVEL_INFO, true, false, "%s", "012345678\nx");
	assert_string_equal(buf, "<6>info tag: 012345678");
	n = fmt(buf, sizeof(buf), LOG_LEVEL_INFO, true, false, "%s", "01234567\nx");
	assert_string_equal(buf, "<6>info tag: 01234567\\n");
	(void)n;
}

static void
test_journal_stream(void **state)
{
	struct stat st;
	char v[64];

	(void)state;
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	unsetenv("JOURNAL_STREAM");
	assert_false(log_stderr_is_journal());
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
	assert_true(log_stderr_is_journal());
	/* inherited by a process whose stderr went elsewhere */
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", v, 1);
	assert_false(log_stderr_is_journal());
	setenv("JOURNAL_STREAM", "1", 1);
	assert_false(log_stderr_is_journal());
	snprintf(v, sizeof(v), "%llu:%llux", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
	assert_false(log_stderr_is_journal());
	unsetenv("JOURNAL_STREAM");
}

/* What log_msg writes to stderr under log_format journal: one line. */
static void
test_written_line(void **state)
{
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);
	char buf[512];
	size_t n;

	(void)state;
	assert_non_null(f);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
	log_set_format(LOG_FORMAT_JOURNAL);
	log_msg(LOG_LEVEL_WARN, "t", "first\nsecond");
	log_set_format(LOG_FORMAT_PLAIN);
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	assert_string_equal(buf, "<4>warn t: first\\nsecond\n");
}

static void
test_event_levels(void **state)
{
	(void)state;
	assert_int_equal(event_level("provision_failed"), LOG_LEVEL_ERROR);
	assert_int_equal(event_level("placement_error"), LOG_LEVEL_ERROR);
	assert_int_equal(event_level("unhealthy"), LOG_LEVEL_WARN);
	assert_int_equal(event_level("lost"), LOG_LEVEL_WARN);
	assert_int_equal(event_level("replace"), LOG_LEVEL_WARN);
	assert_int_equal(event_level("hosts_full"), LOG_LEVEL_WARN);
	assert_int_equal(event_level("host_down"), LOG_LEVEL_WARN);
	assert_int_equal(event_level("hook_failed"), LOG_LEVEL_WARN);
	assert_int_equal(event_level("hook_timeout"), LOG_LEVEL_WARN);
	assert_int_equal(event_level("hook_sent"), LOG_LEVEL_INFO);
	assert_int_equal(event_level("decision"), LOG_LEVEL_INFO);
	assert_int_equal(event_level("ready"), LOG_LEVEL_INFO);
	assert_int_equal(event_level(NULL), LOG_LEVEL_INFO);
}

/* The event's log line names its instance, at the event's level. */
static void
test_event_line(void **state)
{
	char dir[] = "/tmp/va-test-log-XXXXXX";
	char url[128], buf[1024];
	struct store *st;
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(url, sizeof(url), "sqlite://%s/state.db", dir);
	st = store_open(url, NULL);
	assert_non_null(st);
	assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
	log_set_format(LOG_FORMAT_JOURNAL);
	event_record(st, "web", "5b0c6e1e-8f0a-4c39-9d7e-2f1b8a3c4d5e",
		     "unhealthy", NULL, "no heartbeat for %d s", 30);
	event_record(st, NULL, NULL, "start", NULL, "daemon started");
	log_set_format(LOG_FORMAT_PLAIN);
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	store_close(st);
	snprintf(url, sizeof(url), "rm -rf '%s'", dir);
	assert_int_equal(system(url), 0);
	assert_string_equal(buf,
			    "<4>warn event: group web instance 5b0c6e1e-8f0a-4c39-9d7e-2f1b8a3c4d5e: "
			    "unhealthy: no heartbeat for 30 s\n"
			    "<6>info event: daemon: start: daemon started\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_priority_prefix),
		cmocka_unit_test(test_one_line),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_journal_stream),
		cmocka_unit_test(test_written_line),
		cmocka_unit_test(test_event_levels),
		cmocka_unit_test(test_event_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
