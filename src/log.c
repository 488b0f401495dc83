/*
 * log.c: see log.h.
 */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

atomic_int log_threshold = LOG_LEVEL_INFO;
/* Read by every thread that logs, set by the loop on reload: atomics. */
static bool log_timestamps = true;
static bool log_priority_prefix;

#define COMPLAIN_FIRST_MS 60000
#define COMPLAIN_MAX_MS (60 * 60000)

static const char *const level_names[LOG_LEVEL_LAST] = {
	"error", "warn", "info", "debug"
};

void
log_set_level(enum log_level level)
{
	if (level < LOG_LEVEL_LAST)
		atomic_store_explicit(&log_threshold, (int)level,
				      memory_order_relaxed);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&log_threshold,
						    memory_order_relaxed);
}

int
log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i < LOG_LEVEL_LAST; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_LEVEL_WARN;
		return 0;
	}
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	return level < LOG_LEVEL_LAST ? level_names[level] : "?";
}

void
log_set_timestamps(bool on)
{
	__atomic_store_n(&log_timestamps, on, __ATOMIC_RELAXED);
}

void
log_set_format(enum log_format f)
{
	bool journal = f == LOG_FORMAT_JOURNAL ||
		       (f == LOG_FORMAT_AUTO && log_stderr_is_journal());

	__atomic_store_n(&log_timestamps, !journal, __ATOMIC_RELAXED);
	__atomic_store_n(&log_priority_prefix, journal, __ATOMIC_RELAXED);
}

void
log_set_priority_prefix(bool on)
{
	__atomic_store_n(&log_priority_prefix, on, __ATOMIC_RELAXED);
}

int
log_level_priority(enum log_level level)
{
	static const int prio[LOG_LEVEL_LAST] = {3, 4, 6, 7};

	return level < LOG_LEVEL_LAST ? prio[level] : 6;
}

bool
log_stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int end = 0;

	if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &end) != 2 ||
	    e[end] != '\0')
		return false;
	if (fstat(STDERR_FILENO, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

/* Copy msg into buf from n on, one line: control characters escaped. */
static size_t
add_escaped(char *buf, size_t size, size_t n, const char *msg)
{
	size_t len = strlen(msg);

	while (len && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
		len--;
	for (size_t i = 0; i < len && n + 1 < size; i++) {
		unsigned char c = (unsigned char)msg[i];
		char esc[5];
		size_t k;

		if (c == '\n')
			k = (size_t)snprintf(esc, sizeof(esc), "\\n");
		else if (c == '\r')
			k = (size_t)snprintf(esc, sizeof(esc), "\\r");
		else if ((c < 0x20 && c != '\t') || c == 0x7f)
			k = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", c);
		else {
			buf[n++] = (char)c;
			continue;
		}
		if (n + k >= size)
			break;
		memcpy(buf + n, esc, k);
		n += k;
	}
	buf[n] = '\0';
	return n;
}

size_t
log_format_line(char *buf, size_t size, enum log_level level, const char *tag,
		bool priority_prefix, bool timestamp, const char *fmt,
		va_list ap)
{
	char msg[2048];
	size_t n = 0;
	int k;

	buf[0] = '\0';
	if (priority_prefix) {
		k = snprintf(buf, size, "<%d>", log_level_priority(level));
		n = k > 0 && (size_t)k < size ? (size_t)k : 0;
	}
	if (timestamp && n < size) {
		struct timespec ts;
		struct tm tm;
		size_t w;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		w = strftime(buf + n, size - n, "%Y-%m-%dT%H:%M:%S", &tm);
		n += w;
		if (w) {
			k = snprintf(buf + n, size - n, ".%03ldZ ",
				     ts.tv_nsec / 1000000);
			if (k > 0)
				n += (size_t)k < size - n ? (size_t)k : size - n - 1;
		}
	}
	if (n < size) {
		k = snprintf(buf + n, size - n, "%s %s: ",
			     level < LOG_LEVEL_LAST ? level_names[level] : "?",
			     tag ? tag : "-");
		if (k > 0)
			n += (size_t)k < size - n ? (size_t)k : size - n - 1;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	return add_escaped(buf, size, n, msg);
}

void
log_vmsg(enum log_level level, const char *tag, const char *fmt, va_list ap)
{
	char line[4096];
	size_t n;

	if (!log_enabled(level))
		return;
	n = log_format_line(line, sizeof(line) - 1, level, tag,
			    __atomic_load_n(&log_priority_prefix, __ATOMIC_RELAXED),
			    __atomic_load_n(&log_timestamps, __ATOMIC_RELAXED),
			    fmt, ap);
	/* One write per line so that concurrent threads do not interleave. */
	line[n] = '\n';
	fwrite(line, 1, n + 1, stderr);
}

void
log_msg(enum log_level level, const char *tag, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, tag, fmt, ap);
	va_end(ap);
}

void
log_complain(struct log_complain *c, enum log_level level, const char *tag,
	     const char *fmt, ...)
{
	int64_t now = util_now_ms();
	va_list ap;

	if (c->active && now - c->last_ms < c->interval_ms) {
		c->suppressed++;
		return;
	}
	if (!c->active) {
		c->active = true;
		c->interval_ms = COMPLAIN_FIRST_MS;
	} else {
		c->interval_ms *= 2;
		if (c->interval_ms > COMPLAIN_MAX_MS)
			c->interval_ms = COMPLAIN_MAX_MS;
	}
	c->last_ms = now;
	if (c->suppressed && log_enabled(level))
		log_msg(level, tag, "(%u similar messages suppressed)",
			c->suppressed);
	c->suppressed = 0;
	va_start(ap, fmt);
	log_vmsg(level, tag, fmt, ap);
	va_end(ap);
}

void
log_complain_clear(struct log_complain *c, const char *tag, const char *fmt,
		   ...)
{
	va_list ap;

	if (!c->active)
		return;
	c->active = false;
	c->suppressed = 0;
	c->interval_ms = 0;
	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_INFO, tag, fmt, ap);
	va_end(ap);
}

static _Thread_local char err_buf[2048];

void
err_set(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
}

void
err_prefix(const char *fmt, ...)
{
	char old[sizeof(err_buf)];
	size_t n;
	va_list ap;

	memcpy(old, err_buf, sizeof(old));
	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
	n = strlen(err_buf);
	if (n + 2 < sizeof(err_buf)) {
		memcpy(err_buf + n, ": ", 2);
		n += 2;
		/* truncation of a very long chain is fine */
		memcpy(err_buf + n, old,
		       strnlen(old, sizeof(err_buf) - n - 1));
		err_buf[n + strnlen(old, sizeof(err_buf) - n - 1)] = '\0';
	}
}

const char *
err_msg(void)
{
	return err_buf[0] ? err_buf : "unknown error";
}

void
err_clear(void)
{
	err_buf[0] = '\0';
}
