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
	log_info("%s%s%s: %s%s%s", group ? "group " : "", group ? group : "",
		 group ? "" : "daemon", kind, msg.len ? ": " : "",
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
