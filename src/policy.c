/*
 * policy.c: the scaling decision engine (pure: no I/O, no clock reads)
 * and the helpers the configuration parser needs: metric names, cron
 * windows, the shipped defaults.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "policy.h"
#include "util.h"

/* ---- metrics ---------------------------------------------------------- */

static const char *const metric_names[POLICY_METRIC_LAST] = {
	[POLICY_METRIC_CPU] = "cpu",
	[POLICY_METRIC_MEMORY] = "memory",
	[POLICY_METRIC_DISK_IOPS] = "disk_iops",
	[POLICY_METRIC_DISK_BYTES] = "disk_bytes",
	[POLICY_METRIC_NET_BYTES] = "net_bytes",
};

const char *
policy_metric_name(enum policy_metric m)
{
	if ((unsigned)m >= POLICY_METRIC_LAST)
		return "?";
	return metric_names[m];
}

int
policy_metric_from_name(const char *name, enum policy_metric *out)
{
	for (unsigned i = 0; i < POLICY_METRIC_LAST; i++) {
		if (name && strcmp(name, metric_names[i]) == 0) {
			*out = (enum policy_metric)i;
			return 0;
		}
	}
	err_set("unknown metric '%s' (expected cpu, memory, disk_iops, "
		"disk_bytes or net_bytes)", name ? name : "");
	return -1;
}

bool
policy_metric_is_percent(enum policy_metric m)
{
	return m == POLICY_METRIC_CPU || m == POLICY_METRIC_MEMORY;
}

/* ---- cron windows ----------------------------------------------------- */

struct cron_field {
	const char *name;
	int lo, hi;
	const char *const *names; /* names[i] is value names_base + i */
	int names_base;
	unsigned n_names;
};

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec",
};
static const char *const wday_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat",
};

enum { CRON_MIN, CRON_HOUR, CRON_MDAY, CRON_MONTH, CRON_WDAY, CRON_NFIELDS };

static const struct cron_field cron_fields[CRON_NFIELDS] = {
	{"minute", 0, 59, NULL, 0, 0},
	{"hour", 0, 23, NULL, 0, 0},
	{"day-of-month", 1, 31, NULL, 0, 0},
	{"month", 1, 12, month_names, 1, 12},
	/* 7 is accepted as Sunday, as in every cron. */
	{"day-of-week", 0, 7, wday_names, 0, 7},
};

/* One value: a number or (for months and weekdays) a 3-letter name. */
static int
cron_value(const struct cron_field *f, const char *s, size_t len, int *out)
{
	if (len == 0) {
		err_set("%s field: missing value", f->name);
		return -1;
	}
	if (isdigit((unsigned char)s[0])) {
		long v = 0;

		for (size_t i = 0; i < len; i++) {
			if (!isdigit((unsigned char)s[i])) {
				err_set("%s field: '%.*s' is not a number",
					f->name, (int)len, s);
				return -1;
			}
			v = v * 10 + (s[i] - '0');
			if (v > 1000)
				break;
		}
		if (v < f->lo || v > f->hi) {
			err_set("%s field: %.*s is out of range %d-%d", f->name,
				(int)len, s, f->lo, f->hi);
			return -1;
		}
		*out = (int)v;
		return 0;
	}
	for (unsigned i = 0; i < f->n_names; i++) {
		if (len == 3 && strncasecmp(s, f->names[i], 3) == 0) {
			*out = f->names_base + (int)i;
			return 0;
		}
	}
	if (f->names)
		err_set("%s field: unknown name '%.*s' (expected a number or %s..%s)",
			f->name, (int)len, s, f->names[0],
			f->names[f->n_names - 1]);
	else
		err_set("%s field: '%.*s' is not a number", f->name, (int)len, s);
	return -1;
}

/*
 * One comma-separated element: "*", "*\/S", "N", "N-M", "N-M/S", "N/S"
 * (N/S means N-max/S, as in Vixie cron). Sets bits in *bits.
 */
static int
cron_element(const struct cron_field *f, const char *s, size_t len,
	     uint64_t *bits)
{
	const char *slash = memchr(s, '/', len);
	size_t range_len = slash ? (size_t)(slash - s) : len;
	int lo, hi, step = 1;

	if (range_len == 1 && s[0] == '*') {
		lo = f->lo;
		hi = f->hi;
		if (f == &cron_fields[CRON_WDAY])
			hi = 6;
	} else {
		const char *dash = memchr(s, '-', range_len);

		if (dash) {
			if (cron_value(f, s, (size_t)(dash - s), &lo) != 0 ||
			    cron_value(f, dash + 1,
				       range_len - (size_t)(dash - s) - 1,
				       &hi) != 0)
				return -1;
			if (hi < lo) {
				err_set("%s field: range '%.*s' ends before it "
					"starts", f->name, (int)range_len, s);
				return -1;
			}
		} else {
			if (cron_value(f, s, range_len, &lo) != 0)
				return -1;
			hi = lo;
			if (slash)
				hi = f == &cron_fields[CRON_WDAY] ? 6 : f->hi;
		}
	}
	if (slash) {
		const char *st = slash + 1;
		size_t st_len = len - range_len - 1;
		long v = 0;

		if (st_len == 0) {
			err_set("%s field: missing step after '/'", f->name);
			return -1;
		}
		for (size_t i = 0; i < st_len; i++) {
			if (!isdigit((unsigned char)st[i])) {
				err_set("%s field: step '%.*s' is not a number",
					f->name, (int)st_len, st);
				return -1;
			}
			v = v * 10 + (st[i] - '0');
			if (v > 1000)
				break;
		}
		if (v < 1 || v > f->hi) {
			err_set("%s field: step %.*s is out of range 1-%d",
				f->name, (int)st_len, st, f->hi);
			return -1;
		}
		step = (int)v;
	}
	for (int v = lo; v <= hi; v += step)
		*bits |= (uint64_t)1 << v;
	return 0;
}

int
policy_cron_parse(const char *expr, struct policy_cron *out)
{
	uint64_t bits[CRON_NFIELDS] = {0};
	bool star[CRON_NFIELDS] = {false};
	const char *p = expr ? expr : "";
	unsigned nf = 0;

	while (*p) {
		const char *start;
		size_t flen;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		start = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		flen = (size_t)(p - start);
		if (nf == CRON_NFIELDS) {
			err_set("cron '%s': too many fields (expected 5: minute "
				"hour day-of-month month day-of-week)", expr);
			return -1;
		}
		star[nf] = flen == 1 && start[0] == '*';
		for (const char *e = start; e < start + flen;) {
			const char *comma = memchr(e, ',', (size_t)(start + flen - e));
			size_t elen = comma ? (size_t)(comma - e)
					    : (size_t)(start + flen - e);

			if (elen == 0) {
				err_set("cron '%s': %s field: empty list element",
					expr, cron_fields[nf].name);
				return -1;
			}
			if (cron_element(&cron_fields[nf], e, elen, &bits[nf]) != 0) {
				err_prefix("cron '%s'", expr);
				return -1;
			}
			e += elen + (comma ? 1 : 0);
			if (comma && e == start + flen) {
				err_set("cron '%s': %s field: empty list element",
					expr, cron_fields[nf].name);
				return -1;
			}
		}
		nf++;
	}
	if (nf != CRON_NFIELDS) {
		err_set("cron '%s': %u field%s, expected 5 (minute hour "
			"day-of-month month day-of-week)", expr ? expr : "", nf,
			nf == 1 ? "" : "s");
		return -1;
	}
	/* Weekday 7 is Sunday. */
	if (bits[CRON_WDAY] & (1u << 7))
		bits[CRON_WDAY] = (bits[CRON_WDAY] | 1u) & 0x7f;
	memset(out, 0, sizeof(*out));
	out->minutes = bits[CRON_MIN];
	out->hours = (uint32_t)bits[CRON_HOUR];
	out->mdays = (uint32_t)bits[CRON_MDAY];
	out->months = (uint16_t)bits[CRON_MONTH];
	out->wdays = (uint8_t)bits[CRON_WDAY];
	out->mday_any = star[CRON_MDAY];
	out->wday_any = star[CRON_WDAY];
	return 0;
}

bool
policy_cron_match(const struct policy_cron *c, const struct tm *tm)
{
	bool mday, wday, day;

	if (tm->tm_min < 0 || tm->tm_min > 59 || tm->tm_hour < 0 ||
	    tm->tm_hour > 23 || tm->tm_mday < 1 || tm->tm_mday > 31 ||
	    tm->tm_mon < 0 || tm->tm_mon > 11 || tm->tm_wday < 0 ||
	    tm->tm_wday > 6)
		return false;
	if (!(c->minutes & ((uint64_t)1 << tm->tm_min)))
		return false;
	if (!(c->hours & (1u << tm->tm_hour)))
		return false;
	if (!(c->months & (1u << (tm->tm_mon + 1))))
		return false;
	mday = c->mdays & (1u << tm->tm_mday);
	wday = c->wdays & (1u << tm->tm_wday);
	/* Vixie cron: when both day fields are restricted, either matches. */
	if (!c->mday_any && !c->wday_any)
		day = mday || wday;
	else
		day = mday && wday;
	return day;
}

/* ---- params ----------------------------------------------------------- */

void
policy_params_defaults(struct policy_params *p)
{
	memset(p, 0, sizeof(*p));
	p->min = 1;
	p->max = 10;
	p->interval_ms = 10000;
	p->tolerance = 0.10;
	p->cooldown_ms = 0;
	p->warmup_ms = 60000;
	p->scale_up_window_ms = 0;
	p->scale_down_window_ms = 300000;
	p->scale_up_limit.instances = 0;
	p->scale_up_limit.percent = 0;
	p->scale_up_limit.period_ms = 0;
	p->scale_down_limit.instances = 0;
	p->scale_down_limit.percent = 0;
	p->scale_down_limit.period_ms = 0;
}

void
policy_params_release(struct policy_params *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->n_schedules; i++)
		free(p->schedules[i].name);
	free(p->schedules);
	free(p->steps);
	p->schedules = NULL;
	p->n_schedules = 0;
	p->steps = NULL;
	p->n_steps = 0;
}

void
policy_params_copy(struct policy_params *dst, const struct policy_params *src)
{
	*dst = *src;
	dst->steps = NULL;
	dst->schedules = NULL;
	if (src->n_steps) {
		dst->steps = xcalloc(src->n_steps, sizeof(*dst->steps));
		memcpy(dst->steps, src->steps,
		       src->n_steps * sizeof(*dst->steps));
	}
	if (src->n_schedules) {
		dst->schedules = xcalloc(src->n_schedules,
					 sizeof(*dst->schedules));
		for (unsigned i = 0; i < src->n_schedules; i++) {
			dst->schedules[i] = src->schedules[i];
			dst->schedules[i].name = src->schedules[i].name
				? xstrdup(src->schedules[i].name) : NULL;
		}
	}
}
