/*
 * event.c: the activity history (event.h).
 */
#include <signal.h>
#include <stdarg.h>
#include <string.h>

#include "event.h"
#include "log.h"
#include "util.h"

LOG_TAG("event");

/* Events that say something went wrong are logged at the level that
 * says so (journalctl -p warning finds them); the rest at info. */
static const struct {
	const char *kind;
	enum log_level level;
} event_levels[] = {
	{"provision_failed", LOG_LEVEL_ERROR},
	{"placement_error", LOG_LEVEL_ERROR},
	{"unhealthy", LOG_LEVEL_WARN},
	{"lost", LOG_LEVEL_WARN},
	{"replace", LOG_LEVEL_WARN},
	{"hosts_full", LOG_LEVEL_WARN},
	{"addresses_full", LOG_LEVEL_WARN},
	{"host_down", LOG_LEVEL_WARN},
};

enum log_level
event_level(const char *kind)
{
	for (size_t i = 0; kind && i < ARRAY_SIZE(event_levels); i++)
		if (strcmp(event_levels[i].kind, kind) == 0)
			return event_levels[i].level;
	return LOG_LEVEL_INFO;
}

void
event_record(struct store *s, const char *group, const char *instance,
	     const char *kind, const char *details, const char *fmt, ...)
{
	struct strbuf msg = STRBUF_INIT;
	struct store_event e;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&msg, fmt, ap);
	va_end(ap);
	if (msg.len > STORE_TEXT_MAX) {
		msg.len = STORE_TEXT_MAX;
		msg.buf[msg.len] = '\0';
	}
	memset(&e, 0, sizeof(e));
	e.group = (char *)group;
	e.instance = (char *)instance;
	e.kind = (char *)kind;
	e.message = msg.buf;
	e.details = (char *)details;
	log_at_(event_level(kind), "%s%s%s%s%s: %s%s%s",
		group ? "group " : "", group ? group : "",
		group ? "" : "daemon", instance ? " instance " : "",
		instance ? instance : "", kind, msg.len ? ": " : "",
		strbuf_str(&msg));
	if (store_event_append(s, &e, NULL) != STORE_OK)
		log_warn("cannot record event %s: %s", kind, err_msg());
	strbuf_release(&msg);
}

void
event_crash_point(const char *crash_at, const char *step)
{
	if (crash_at && strcmp(crash_at, step) == 0) {
		log_warn("VA_TEST_CRASH_AT=%s: killing myself", step);
		raise(SIGKILL);
	}
}
