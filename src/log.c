/*
 * log.c: see log.h.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"

atomic_int log_threshold = LOG_LEVEL_INFO;
static bool log_timestamps = true;

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
	log_timestamps = on;
}

void
log_vmsg(enum log_level level, const char *tag, const char *fmt, va_list ap)
{
	char line[2048];
	size_t n = 0;

	if (!log_enabled(level))
		return;
	if (log_timestamps) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n += strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ ",
				      ts.tv_nsec / 1000000);
	}
	n += (size_t)snprintf(line + n, sizeof(line) - n, "%s %s: ",
			      level_names[level], tag ? tag : "-");
	if (n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	/* One write per line so that concurrent threads do not interleave. */
	fprintf(stderr, "%s\n", line);
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
