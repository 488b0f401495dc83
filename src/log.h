/*
 * log.h: leveled, tagged logging to stderr, with rate limiting for
 * repeated complaints (a host that is down must not print a line a tick).
 *
 * Every message is one line: newlines and other control characters in
 * it are escaped (\n, \xNN), so that a message (an error text from
 * libvirt, a configuration error list) cannot split into several journal
 * entries or forge a line. Under systemd's journal (log_stderr_is_journal,
 * or daemon.log_format: journal) each line starts with the sd-daemon(3)
 * priority prefix (<3> error, <4> warn, <6> info, <7> debug), so that
 * `journalctl -p warning` finds the warnings, and carries no timestamp
 * (the journal has its own).
 *
 * Each .c file declares its tag once:  LOG_TAG("host");
 * then logs with log_error/log_warn/log_info/log_debug (printf formats).
 * The level is checked before anything is formatted.
 * Never pass a secret (token, password) to these functions.
 */
#ifndef VA_LOG_H
#define VA_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_LAST
};

/* daemon.log_format: how lines look on stderr. */
enum log_format {
	LOG_FORMAT_AUTO,    /* journal when log_stderr_is_journal(), else plain */
	LOG_FORMAT_JOURNAL, /* priority prefix, no timestamp */
	LOG_FORMAT_PLAIN,   /* timestamp, no priority prefix */
	LOG_FORMAT_LAST
};

/* Set the timestamps and the priority prefix for f. */
void log_set_format(enum log_format f);

/* Set the threshold: messages above it are dropped unformatted. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "error", "warn", "info", "debug". Returns 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);
/* Prefix lines with a timestamp (on by default; off under journald). */
void log_set_timestamps(bool on);
/* Start lines with the sd-daemon priority prefix "<N>" (off by default). */
void log_set_priority_prefix(bool on);
/*
 * True when stderr is connected to systemd's journal: $JOURNAL_STREAM
 * ("DEVICE:INODE", set by systemd for a service whose output goes to the
 * journal) names stderr's device and inode (systemd.exec(5)). A
 * JOURNAL_STREAM inherited by a process whose stderr was redirected
 * elsewhere does not match.
 */
bool log_stderr_is_journal(void);
/* The sd-daemon priority of a level (3, 4, 6, 7). */
int log_level_priority(enum log_level level);

/*
 * Format one log line into buf (size > 0) without the trailing newline:
 * "[<N>][TIMESTAMP ]LEVEL TAG: MESSAGE", with MESSAGE's control
 * characters escaped and trailing newlines dropped. Truncated to fit.
 * Returns the length written. (log_vmsg uses it; exported for tests.)
 */
size_t log_format_line(char *buf, size_t size, enum log_level level,
		       const char *tag, bool priority_prefix, bool timestamp,
		       const char *fmt, va_list ap)
	__attribute__((format(printf, 7, 0)));

static inline bool log_enabled(enum log_level level);
/* an enum log_level; atomic: a reload sets it while other threads log */
extern atomic_int log_threshold;
static inline bool
log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&log_threshold,
						  memory_order_relaxed);
}

void log_msg(enum log_level level, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const char *tag, const char *fmt,
	      va_list ap) __attribute__((format(printf, 3, 0)));

#define LOG_TAG(name) static const char *const log_tag = name

#define log_at_(lvl, ...)                                                    \
	do {                                                                 \
		if (log_enabled(lvl))                                        \
			log_msg(lvl, log_tag, __VA_ARGS__);                  \
	} while (0)
#define log_error(...) log_at_(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_at_(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_at_(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_at_(LOG_LEVEL_DEBUG, __VA_ARGS__)

/*
 * Rate-limited complaints (after collectd's utils_complain): the first
 * complaint is logged, repeats are suppressed with an interval that
 * doubles up to max_interval_ms; log_complain_clear() logs one line when
 * the problem goes away. Zero-initialise, or use LOG_COMPLAIN_INIT.
 */
struct log_complain {
	int64_t last_ms;     /* monotonic time of the last printed line */
	int64_t interval_ms; /* current suppression interval */
	unsigned suppressed; /* complaints not printed since then */
	bool active;
};
#define LOG_COMPLAIN_INIT {0, 0, 0, false}

void log_complain(struct log_complain *c, enum log_level level,
		  const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void log_complain_clear(struct log_complain *c, const char *tag,
			const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * The error recorded where a failure happened (libvirt's virReportError
 * idea): a function that fails calls err_set() once, returns -1/NULL, and
 * callers pass the failure up; whoever finally handles it reads err_msg().
 * Thread-local.
 */
void err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefix the recorded error with context: "ctx: old message". */
void err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *err_msg(void);
void err_clear(void);

#endif
