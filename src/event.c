/*
 * event.c: the activity history (event.h).
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdlib.h>
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
	{"app_source_error", LOG_LEVEL_WARN},
	{"hook_failed", LOG_LEVEL_WARN},
	{"hook_timeout", LOG_LEVEL_WARN},
};

enum log_level
event_level(const char *kind)
{
	for (size_t i = 0; kind && i < ARRAY_SIZE(event_levels); i++)
		if (strcmp(event_levels[i].kind, kind) == 0)
			return event_levels[i].level;
	return LOG_LEVEL_INFO;
}

/* The tap (event.h): a ring of copies under a lock. */
static pthread_mutex_t tap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct event_tapped *tap;
static size_t tap_cap, tap_head, tap_len;
static unsigned long tap_dropped;
static bool tap_on; /* read without the lock: no copies while off */

static void
tapped_release(struct event_tapped *e)
{
	free(e->group);
	free(e->instance);
	free(e->kind);
	free(e->message);
}

static void
tap_put(const char *group, const char *instance, const char *kind,
	const char *message)
{
	struct event_tapped e;

	if (!__atomic_load_n(&tap_on, __ATOMIC_RELAXED))
		return;
	e = (struct event_tapped){
		.wall_ms = util_wall_ms(),
		.group = group ? xstrdup(group) : NULL,
		.instance = instance ? xstrdup(instance) : NULL,
		.kind = xstrdup(kind ? kind : ""),
		.message = xstrdup(message),
	};

	pthread_mutex_lock(&tap_lock);
	if (!tap) {
		pthread_mutex_unlock(&tap_lock);
		tapped_release(&e);
		return;
	}
	if (tap_len == tap_cap) {
		tapped_release(&tap[tap_head]);
		tap_head = (tap_head + 1) % tap_cap;
		tap_len--;
		tap_dropped++;
	}
	tap[(tap_head + tap_len) % tap_cap] = e;
	tap_len++;
	pthread_mutex_unlock(&tap_lock);
}

void
event_tap_start(size_t max)
{
	pthread_mutex_lock(&tap_lock);
	if (!tap) {
		tap_cap = max ? max : 1;
		tap = xcalloc(tap_cap, sizeof(*tap));
		tap_head = tap_len = 0;
		tap_dropped = 0;
	}
	__atomic_store_n(&tap_on, true, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&tap_lock);
}

void
event_tap_stop(void)
{
	struct event_tapped *v;
	size_t cap, head, len;

	pthread_mutex_lock(&tap_lock);
	__atomic_store_n(&tap_on, false, __ATOMIC_RELAXED);
	v = tap;
	cap = tap_cap;
	head = tap_head;
	len = tap_len;
	tap = NULL;
	tap_cap = tap_head = tap_len = 0;
	pthread_mutex_unlock(&tap_lock);
	for (size_t i = 0; i < len; i++)
		tapped_release(&v[(head + i) % cap]);
	free(v);
}

unsigned long
event_tap_drain(void (*fn)(const struct event_tapped *e, void *arg), void *arg)
{
	struct event_tapped *v;
	size_t n = 0;
	unsigned long dropped;

	pthread_mutex_lock(&tap_lock);
	if (!tap || !tap_len) {
		dropped = tap_dropped;
		tap_dropped = 0;
		pthread_mutex_unlock(&tap_lock);
		return dropped;
	}
	/* moved out in order, so fn runs without the lock */
	v = xcalloc(tap_len, sizeof(*v));
	for (; n < tap_len; n++)
		v[n] = tap[(tap_head + n) % tap_cap];
	tap_head = tap_len = 0;
	dropped = tap_dropped;
	tap_dropped = 0;
	pthread_mutex_unlock(&tap_lock);
	for (size_t i = 0; i < n; i++) {
		fn(&v[i], arg);
		tapped_release(&v[i]);
	}
	free(v);
	return dropped;
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
	tap_put(group, instance, kind, strbuf_str(&msg));
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
