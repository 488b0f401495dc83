/*
 * policy.c: the scaling decision engine (pure: no I/O, no clock reads)
 * and the helpers the configuration parser needs: metric names, cron
 * windows, the shipped defaults.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "policy.h"
#include "quote.h"
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

const char *
policy_app_kind_name(enum policy_app_kind k)
{
	return k == POLICY_APP_TOTAL ? "total" : "average";
}

bool
policy_app_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n >= POLICY_APP_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.'))
			return false;
	}
	return true;
}

int
policy_app_find(const struct policy_params *p, const char *name)
{
	for (unsigned i = 0; i < p->n_app && i < POLICY_APP_MAX; i++)
		if (strcmp(p->app[i].name, name) == 0)
			return (int)i;
	return -1;
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
	p->scale_up_window_ms = 20000;
	p->scale_up_window_skip_pct = 30;
	p->scale_down_window_ms = 180000;
	p->scale_up_limit.instances = 0;
	p->scale_up_limit.percent = 0;
	p->scale_up_limit.period_ms = 0;
	p->scale_down_limit.instances = 0;
	p->scale_down_limit.percent = 0;
	p->scale_down_limit.period_ms = 0;
	p->saturation.above_pct = 95;
	p->saturation.scale_up_pct = 100;
	p->predictive.mode = POLICY_PREDICTIVE_OFF;
	p->predictive.buffer_ms = 5 * 60000;
	p->predictive.window_ms = 10 * 60000;
}

const char *
policy_predictive_mode_name(int mode)
{
	switch (mode) {
	case POLICY_PREDICTIVE_FORECAST_ONLY:
		return "forecast_only";
	case POLICY_PREDICTIVE_FORECAST_AND_SCALE:
		return "forecast_and_scale";
	default:
		return "off";
	}
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

static int ceil_int(double x);

/* ---- predictive scaling's inputs ------------------------------------- */

double
policy_load_instances(const struct policy_params *p,
		      const struct policy_input *in)
{
	double load = NAN;

	if (in->ready <= 0)
		return NAN;
	for (unsigned m = 0; m < POLICY_METRIC_LAST; m++) {
		double v;

		if (!(p->target[m] > 0) || !in->metric_present[m] ||
		    !isfinite(in->metric[m]))
			continue;
		v = (in->metric[m] < 0 ? 0 : in->metric[m]) * in->ready /
		    p->target[m];
		if (isnan(load) || v > load)
			load = v;
	}
	for (unsigned a = 0; a < p->n_app && a < POLICY_APP_MAX; a++) {
		const struct policy_app *ap = &p->app[a];
		double v;

		if (!(ap->target > 0) || !in->app_present[a] ||
		    !isfinite(in->app[a]))
			continue;
		v = in->app[a] < 0 ? 0 : in->app[a];
		v = ap->kind == POLICY_APP_TOTAL ? v / ap->target
						 : v * in->ready / ap->target;
		if (isnan(load) || v > load)
			load = v;
	}
	return load;
}

int
policy_forecast_floor(double load)
{
	if (!(load > 0))
		return 0;
	return ceil_int(load);
}

/* ---- engine state ----------------------------------------------------- */

#define NO_TIME INT64_MIN

struct rec {
	int64_t t;
	int v;
};

/* A growable ring of (time, value), oldest first. */
struct ring {
	struct rec *v;
	unsigned head, len, cap;
};

static struct rec *
ring_at(struct ring *r, unsigned i)
{
	return &r->v[(r->head + i) % r->cap];
}

static void
ring_push(struct ring *r, int64_t t, int v)
{
	if (r->len == r->cap) {
		unsigned ncap = r->cap ? r->cap * 2 : 16;
		struct rec *nv = xcalloc(ncap, sizeof(*nv));

		for (unsigned i = 0; i < r->len; i++)
			nv[i] = *ring_at(r, i);
		free(r->v);
		r->v = nv;
		r->cap = ncap;
		r->head = 0;
	}
	r->v[(r->head + r->len) % r->cap] = (struct rec){t, v};
	r->len++;
}

static void
ring_pop_front(struct ring *r)
{
	r->head = (r->head + 1) % r->cap;
	r->len--;
}

static void
ring_pop_back(struct ring *r)
{
	r->len--;
}

struct policy_state {
	/* Monotonic deques over the recommendations: values increase from
	 * front to back in `up` (front = lowest in the scale-up window) and
	 * decrease in `down` (front = highest in the scale-down window). */
	struct ring up, down;
	struct ring changes;      /* (time, delta) of each change */
	bool have_change;
	int64_t last_change_ms;
	int64_t *step_since;      /* per step rule: condition holds since */
	unsigned n_step_since;
};

struct policy_state *
policy_state_new(void)
{
	struct policy_state *st = xcalloc(1, sizeof(*st));

	st->last_change_ms = NO_TIME;
	return st;
}

void
policy_state_free(struct policy_state *st)
{
	if (!st)
		return;
	free(st->up.v);
	free(st->down.v);
	free(st->changes.v);
	free(st->step_since);
	free(st);
}

static void
state_add_rec(struct policy_state *st, int64_t now, int v)
{
	while (st->up.len && ring_at(&st->up, st->up.len - 1)->v >= v)
		ring_pop_back(&st->up);
	ring_push(&st->up, now, v);
	while (st->down.len && ring_at(&st->down, st->down.len - 1)->v <= v)
		ring_pop_back(&st->down);
	ring_push(&st->down, now, v);
}

/* Drop all but the newest entry older than the window (t <= now - w). */
static void
ring_prune(struct ring *r, int64_t now, int64_t window)
{
	while (r->len > 1 && ring_at(r, 0)->t <= now - window)
		ring_pop_front(r);
}

static void
state_add_change(struct policy_state *st, int64_t now, int from, int to)
{
	if (from == to)
		return;
	ring_push(&st->changes, now, to - from);
	st->have_change = true;
	st->last_change_ms = now;
}

void
policy_state_note_change(struct policy_state *st, int64_t now_ms, int from,
			 int to)
{
	state_add_change(st, now_ms, from, to);
	state_add_rec(st, now_ms, to);
}

/* ---- inputs ------------------------------------------------------------ */

void
policy_input_from_instances(struct policy_input *in,
			    const struct policy_params *p,
			    const struct policy_instance_sample *inst,
			    unsigned n)
{
	double sum[POLICY_METRIC_LAST] = {0};
	unsigned cnt[POLICY_METRIC_LAST] = {0};
	double asum[POLICY_APP_MAX] = {0};
	int64_t anew[POLICY_APP_MAX] = {0};
	int acnt[POLICY_APP_MAX] = {0};
	unsigned n_app = p->n_app < POLICY_APP_MAX ? p->n_app : POLICY_APP_MAX;

	in->ready = 0;
	in->warming = 0;
	in->instances = (int)n;
	for (unsigned i = 0; i < n; i++) {
		const struct policy_instance_sample *s = &inst[i];

		/* Metrics describe the last interval: an instance that did
		 * not serve through all of it took no part in them and is
		 * capacity on the way, like a booting one. */
		if (!s->ready || in->now_ms - s->ready_ms < p->interval_ms) {
			in->warming++;
			continue;
		}
		in->ready++;
		if (in->now_ms - s->ready_ms < p->warmup_ms) {
			in->warming++;
			continue;
		}
		for (unsigned m = 0; m < POLICY_METRIC_LAST; m++) {
			if (s->metric_present[m] && isfinite(s->metric[m])) {
				sum[m] += s->metric[m];
				cnt[m]++;
			}
		}
		for (unsigned a = 0; a < n_app; a++) {
			if (!s->app_present[a] || !isfinite(s->app[a]))
				continue;
			if (p->app[a].kind == POLICY_APP_TOTAL) {
				/* one figure for the group: the newest */
				if (!acnt[a] || s->app_ms[a] > anew[a]) {
					asum[a] = s->app[a];
					anew[a] = s->app_ms[a];
				}
			} else {
				asum[a] += s->app[a];
			}
			acnt[a]++;
		}
	}
	for (unsigned m = 0; m < POLICY_METRIC_LAST; m++) {
		in->metric_present[m] = cnt[m] > 0;
		in->metric[m] = cnt[m] ? sum[m] / cnt[m] : 0;
	}
	for (unsigned a = 0; a < POLICY_APP_MAX; a++) {
		in->app_present[a] = a < n_app && acnt[a] > 0;
		in->app_reporting[a] = a < n_app ? acnt[a] : 0;
		in->app[a] = !in->app_present[a] ? 0
			: p->app[a].kind == POLICY_APP_TOTAL ? asum[a]
			: asum[a] / acnt[a];
	}
}

/* ---- decisions ------------------------------------------------------- */

const char *
policy_outcome_name(enum policy_outcome o)
{
	switch (o) {
	case POLICY_OUTCOME_HOLD:
		return "hold";
	case POLICY_OUTCOME_SCALE_OUT:
		return "scale out";
	case POLICY_OUTCOME_SCALE_IN:
		return "scale in";
	case POLICY_OUTCOME_LAST:
		break;
	}
	return "?";
}

/* The reason, built in the decision's fixed buffer ("; " between parts). */
struct reason {
	char *buf;
	size_t len;
};

static void reason_add(struct reason *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
reason_add(struct reason *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->len + 1 >= POLICY_REASON_MAX)
		return;
	if (r->len) {
		n = snprintf(r->buf + r->len, POLICY_REASON_MAX - r->len, "; ");
		r->len += (size_t)n;
		if (r->len >= POLICY_REASON_MAX) {
			r->len = POLICY_REASON_MAX - 1;
			return;
		}
	}
	va_start(ap, fmt);
	n = vsnprintf(r->buf + r->len, POLICY_REASON_MAX - r->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->len += (size_t)n;
	if (r->len >= POLICY_REASON_MAX)
		r->len = POLICY_REASON_MAX - 1;
}

/* "87%" or "1250" in the metric's unit, into buf. */
static const char *
fmt_value(char *buf, size_t len, enum policy_metric m, double v)
{
	if (policy_metric_is_percent(m))
		snprintf(buf, len, "%.0f%%", v);
	else
		snprintf(buf, len, "%.6g/s", v);
	return buf;
}

/* "90s", "5m", "1h30m" (small, no allocation) */
static const char *
fmt_dur(char *buf, size_t len, int64_t ms)
{
	if (ms % 60000 == 0 && ms >= 60000)
		snprintf(buf, len, "%" PRId64 "m", ms / 60000);
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%" PRId64 "s", ms / 1000);
	else
		snprintf(buf, len, "%" PRId64 "ms", ms);
	return buf;
}

/* ceil() that ignores floating-point dust: 3.0000000001 -> 3. */
static int
ceil_int(double x)
{
	double c = ceil(x - 1e-9);

	if (c < 0)
		return 0;
	if (c > 1e9)
		return 1000000000;
	return (int)c;
}

static void
effective_bounds(const struct policy_params *p, const struct policy_input *in,
		 struct policy_decision *d)
{
	bool smin_set = false, smax_set = false;
	int smin = 0, smax = 0;

	d->min = p->min;
	d->max = p->max;
	d->schedule = -1;
	if (in->have_local_time) {
		for (unsigned i = 0; i < p->n_schedules; i++) {
			const struct policy_schedule *s = &p->schedules[i];

			if (!policy_cron_match(&s->when, &in->local_time))
				continue;
			if (s->min >= 0 && (!smin_set || s->min > smin)) {
				smin = s->min;
				smin_set = true;
				d->schedule = (int)i;
			}
			if (s->max >= 0 && (!smax_set || s->max > smax)) {
				smax = s->max;
				smax_set = true;
				if (d->schedule < 0)
					d->schedule = (int)i;
			}
		}
	}
	if (smin_set)
		d->min = smin;
	if (smax_set)
		d->max = smax;
	if (d->min > d->max) {
		/* A schedule's bound beats the group's; otherwise min wins. */
		if (smax_set && !smin_set)
			d->min = d->max;
		else
			d->max = d->min;
	}
	if (d->min < 0)
		d->min = 0;
}

/*
 * The tolerance band and the formula: ratio is value / target, raw the
 * instances the value asks for; vb and tb are the value and the target
 * as the reason shows them.
 */
static int
track_ratio(const struct policy_params *p, const struct policy_input *in,
	    int cur, const char *name, const char *vb, const char *tb,
	    double ratio, double raw, struct reason *r)
{
	int w;

	if (ratio > 1 + p->tolerance) {
		w = ceil_int(raw);
		if (raw <= cur * (1 + p->tolerance)) {
			w = cur;
			reason_add(r, "%s %s > target %s (±%.0f%%) over %d "
				   "ready -> %.1f instances, covered by "
				   "%d desired (%d warming)",
				   name, vb, tb,
				   p->tolerance * 100, in->ready, raw,
				   cur, in->warming);
		} else {
			if (w < cur)
				w = cur;
			reason_add(r, "%s %s > target %s (±%.0f%%) over %d "
				   "ready -> want %d",
				   name, vb, tb,
				   p->tolerance * 100, in->ready, w);
		}
	} else if (ratio < 1 - p->tolerance) {
		w = ceil_int(raw);
		if (w > cur)
			w = cur;
		reason_add(r, "%s %s < target %s (±%.0f%%) over %d ready "
			   "-> want %d", name, vb, tb,
			   p->tolerance * 100, in->ready, w);
	} else {
		w = cur;
		reason_add(r, "%s %s within target %s ±%.0f%% -> keep %d",
			   name, vb, tb,
			   p->tolerance * 100, cur);
	}
	return w;
}

/* Target tracking: the maximum over tracked metrics, or -1 without data. */
static int
target_tracking(const struct policy_params *p, const struct policy_input *in,
		int cur, bool *saturated, struct reason *r)
{
	int want = -1;
	unsigned tracked = 0, missing = 0, missing_app = 0;
	const char *missing_name = NULL;
	char vb[48], tb[48];

	for (unsigned i = 0; i < POLICY_METRIC_LAST; i++) {
		enum policy_metric m = (enum policy_metric)i;
		double target = p->target[m], v, ratio, raw;
		int w;

		if (!(target > 0))
			continue;
		tracked++;
		if (!in->metric_present[m] || in->ready <= 0 ||
		    !isfinite(in->metric[m])) {
			missing++;
			missing_name = policy_metric_name(m);
			continue;
		}
		v = in->metric[m] < 0 ? 0 : in->metric[m];
		ratio = v / target;
		raw = ratio * in->ready;
		fmt_value(vb, sizeof(vb), m, v);
		fmt_value(tb, sizeof(tb), m, target);
		if (p->saturation.above_pct > 0 && policy_metric_is_percent(m) &&
		    v >= p->saturation.above_pct) {
			int sat = ceil_int(in->ready *
					   (1 + p->saturation.scale_up_pct / 100));

			w = ceil_int(raw);
			if (sat > w)
				w = sat;
			if (w < cur)
				w = cur;
			*saturated = true;
			reason_add(r, "%s %s saturated (>= %.0f%%) over %d ready "
				   "-> want %d (+%.0f%% of ready)",
				   policy_metric_name(m), vb, p->saturation.above_pct,
				   in->ready, w, p->saturation.scale_up_pct);
		} else {
			w = track_ratio(p, in, cur, policy_metric_name(m), vb,
					tb, ratio, raw, r);
		}
		if (w > want)
			want = w;
	}
	for (unsigned a = 0; a < p->n_app && a < POLICY_APP_MAX; a++) {
		const struct policy_app *ap = &p->app[a];
		double v, ratio, raw;
		int w;

		if (!(ap->target > 0))
			continue;
		tracked++;
		if (!in->app_present[a] || in->ready <= 0 ||
		    !isfinite(in->app[a])) {
			/* never read as zero: nobody said the load is low */
			missing++;
			missing_app++;
			missing_name = ap->name;
			if (ap->source[0] && in->ready > 0)
				reason_add(r, "no value of app metric %s from "
					   "%s: %s", ap->name, ap->source,
					   in->app_why[a] ? in->app_why[a]
							  : "none yet");
			else
				reason_add(r, "no recent value of app metric %s%s",
					   ap->name, in->ready <= 0
					   ? " (no ready instance)" : "");
			continue;
		}
		v = in->app[a] < 0 ? 0 : in->app[a];
		if (ap->kind == POLICY_APP_TOTAL) {
			raw = v / ap->target;
			ratio = raw / in->ready;
			if (ap->source[0])
				snprintf(vb, sizeof(vb), "%.6g (total from %s)",
					 v, ap->source);
			else
				snprintf(vb, sizeof(vb), "%.6g (total)", v);
			snprintf(tb, sizeof(tb), "%.6g per instance", ap->target);
		} else {
			ratio = v / ap->target;
			raw = ratio * in->ready;
			snprintf(vb, sizeof(vb), "%.6g (mean of %d)", v,
				 in->app_reporting[a]);
			snprintf(tb, sizeof(tb), "%.6g", ap->target);
		}
		w = track_ratio(p, in, cur, ap->name, vb, tb, ratio, raw, r);
		if (w > want)
			want = w;
	}
	if (!tracked)
		return -1;
	if (missing == tracked) {
		if (missing_app == missing)
			reason_add(r, "target tracking holds");
		else
			reason_add(r, "no %s data%s: target tracking holds",
				   missing == 1 ? missing_name : "metric",
				   in->ready <= 0 ? " (no ready instance)" : "");
		return -1;
	}
	if (missing && want < cur) {
		reason_add(r, "%s missing: no scale-in -> keep %d", missing_name,
			   cur);
		want = cur;
	}
	return want;
}

static void
state_fit_steps(struct policy_state *st, unsigned n)
{
	if (st->n_step_since == n)
		return;
	free(st->step_since);
	st->step_since = n ? xcalloc(n, sizeof(*st->step_since)) : NULL;
	for (unsigned i = 0; i < n; i++)
		st->step_since[i] = NO_TIME;
	st->n_step_since = n;
}

/* Step rules: the largest wanted size among rules that fire, or -1. */
static int
step_rules(const struct policy_params *p, const struct policy_input *in,
	   struct policy_state *st, int cur, struct reason *r)
{
	int want = -1;
	char vb[32], tb[32], db[32], fb[32];

	state_fit_steps(st, p->n_steps);
	for (unsigned i = 0; i < p->n_steps; i++) {
		const struct policy_step *s = &p->steps[i];
		enum policy_metric m = s->metric;
		bool above = s->dir == POLICY_STEP_ABOVE;
		unsigned a = s->app - 1;  /* s->app > 0: an app metric */
		const char *name;
		double v;
		int delta, base, w;

		if (s->app ? (a >= p->n_app || a >= POLICY_APP_MAX ||
			      !in->app_present[a])
			   : ((unsigned)m >= POLICY_METRIC_LAST ||
			      !in->metric_present[m]) ||
		    in->ready <= 0) {
			st->step_since[i] = NO_TIME;
			continue;
		}
		v = s->app ? in->app[a] : in->metric[m];
		if (above ? !(v > s->threshold) : !(v < s->threshold)) {
			st->step_since[i] = NO_TIME;
			continue;
		}
		if (st->step_since[i] == NO_TIME)
			st->step_since[i] = in->now_ms;
		if (s->app) {
			name = p->app[a].name;
			snprintf(vb, sizeof(vb), "%.6g", v);
			snprintf(tb, sizeof(tb), "%.6g", s->threshold);
		} else {
			name = policy_metric_name(m);
			fmt_value(vb, sizeof(vb), m, v);
			fmt_value(tb, sizeof(tb), m, s->threshold);
		}
		if (in->now_ms - st->step_since[i] < s->for_ms) {
			reason_add(r, "step %u: %s %s %s %s for %s of %s", i + 1,
				   name, vb,
				   above ? ">" : "<", tb,
				   fmt_dur(db, sizeof(db),
					   in->now_ms - st->step_since[i]),
				   fmt_dur(fb, sizeof(fb), s->for_ms));
			continue;
		}
		if (s->change_pct != 0) {
			double pct = fabs(s->change_pct);
			int sign = s->change_pct > 0 ? 1 : -1;

			base = sign > 0 ? cur - in->warming : cur;
			if (base < 0)
				base = 0;
			delta = ceil_int(base * pct / 100);
			if (delta < s->min_step)
				delta = s->min_step;
			if (delta < 1)
				delta = 1;
			delta *= sign;
		} else {
			delta = s->change;
		}
		/* Scale-out applies to warm capacity: instances still warming
		 * already answer an earlier firing of the same condition. */
		base = delta > 0 ? cur - in->warming : cur;
		if (base < 0)
			base = 0;
		w = base + delta;
		if (w < 0)
			w = 0;
		if (delta > 0 && w < cur)
			w = cur;
		if (w != cur)
			st->step_since[i] = in->now_ms;
		if (delta > 0 && in->warming && w == cur)
			reason_add(r, "step %u: %s %s %s %s -> %+d on %d warm, "
				   "covered by %d warming", i + 1,
				   name, vb, above ? ">" : "<",
				   tb, delta, base, in->warming);
		else
			reason_add(r, "step %u: %s %s %s %s for %s -> %+d -> want "
				   "%d", i + 1, name, vb,
				   above ? ">" : "<", tb,
				   fmt_dur(db, sizeof(db), s->for_ms), delta, w);
		if (w > want)
			want = w;
	}
	return want;
}

/* Period start size and the allowance of one rate limit, or -1 if none. */
static int
rate_limit(const struct policy_rate_limit *l, struct policy_state *st,
	   int64_t now, int cur, int *start_out)
{
	int added = 0, deleted = 0, start, allow;

	if (l->period_ms <= 0 || (l->instances <= 0 && l->percent <= 0))
		return -1;
	for (unsigned i = 0; i < st->changes.len; i++) {
		struct rec *c = ring_at(&st->changes, i);

		if (c->t <= now - l->period_ms)
			continue;
		if (c->v > 0)
			added += c->v;
		else
			deleted -= c->v;
	}
	start = cur - added + deleted;
	if (start < 0)
		start = 0;
	allow = l->instances > 0 ? l->instances : 0;
	if (l->percent > 0 && ceil_int(start * l->percent / 100) > allow)
		allow = ceil_int(start * l->percent / 100);
	if (allow < 1)
		allow = 1;
	*start_out = start;
	return allow;
}

void
policy_decide(const struct policy_params *p, const struct policy_input *in,
	      struct policy_state *st, struct policy_decision *d)
{
	struct reason r = {d->reason, 0};
	int cur = in->desired < 0 ? 0 : in->desired;
	int rec, tt, steps, v;
	bool saturated = false, forecast_won = false;
	int64_t now = in->now_ms, maxper;
	char db[32], db2[32];

	memset(d, 0, sizeof(*d));
	d->reason[0] = '\0';
	d->from = cur;
	d->now_ms = now;
	d->ready = in->ready;
	d->warming = in->warming;
	d->instances = in->instances;
	d->capacity_left = in->capacity_left;
	for (unsigned m = 0; m < POLICY_METRIC_LAST; m++) {
		d->metric[m] = in->metric[m];
		d->metric_present[m] = in->metric_present[m];
	}
	for (unsigned a = 0; a < p->n_app && a < POLICY_APP_MAX; a++) {
		d->app[a] = in->app[a];
		d->app_present[a] = in->app_present[a];
		d->app_reporting[a] = in->app_reporting[a];
	}
	effective_bounds(p, in, d);

	/* 1. recommendation */
	tt = target_tracking(p, in, cur, &saturated, &r);
	steps = step_rules(p, in, st, cur, &r);
	rec = tt > steps ? tt : steps;
	/* 1b. predictive scaling: the forecast floor only ever raises */
	d->forecast = -1;
	if (p->predictive.mode != POLICY_PREDICTIVE_OFF && in->have_forecast) {
		int f = in->forecast < 0 ? 0 : in->forecast;
		int base = rec >= 0 ? rec : cur;

		d->forecast = f;
		if (f > base && p->predictive.mode ==
		    POLICY_PREDICTIVE_FORECAST_AND_SCALE) {
			reason_add(&r, "forecast: %d needed in %s..%s -> want %d",
				   f, fmt_dur(db, sizeof(db),
					      p->predictive.buffer_ms),
				   fmt_dur(db2, sizeof(db2),
					   p->predictive.buffer_ms +
					   p->predictive.window_ms), f);
			rec = f;
			forecast_won = true;
		} else if (f > base) {
			reason_add(&r, "forecast: %d needed in %s..%s "
				   "(forecast_only: not acting)", f,
				   fmt_dur(db, sizeof(db),
					   p->predictive.buffer_ms),
				   fmt_dur(db2, sizeof(db2),
					   p->predictive.buffer_ms +
					   p->predictive.window_ms));
		}
	}
	d->recommendation = rec;
	if (rec < 0 && p->n_steps == 0 && !r.len)
		reason_add(&r, "no scaling rule");
	else if (rec < 0 && !r.len)
		reason_add(&r, "no step rule fires");

	/* 2. stabilization windows */
	v = cur;
	ring_prune(&st->up, now, p->scale_up_window_ms);
	ring_prune(&st->down, now, p->scale_down_window_ms);
	if (rec >= 0) {
		int lo, hi;

		state_add_rec(st, now, rec);
		ring_prune(&st->up, now, p->scale_up_window_ms);
		ring_prune(&st->down, now, p->scale_down_window_ms);
		lo = ring_at(&st->up, 0)->v;
		hi = ring_at(&st->down, 0)->v;
		/* Saturated: demand is unknown and above capacity now;
		 * waiting for confirmation only adds under-provisioning. */
		if (lo < rec && rec > cur) {
			if (saturated && tt == rec) {
				reason_add(&r, "saturated: scale-up window "
					   "skipped");
				lo = rec;
			} else if (forecast_won) {
				/* planned ahead, already smoothed: no noise */
				reason_add(&r, "forecast: scale-up window "
					   "skipped");
				lo = rec;
			} else if (p->scale_up_window_skip_pct > 0 &&
				   rec > cur * (1 + p->scale_up_window_skip_pct /
						100) + 1e-9) {
				reason_add(&r, "+%d is over %.0f%% of %d: "
					   "scale-up window skipped", rec - cur,
					   p->scale_up_window_skip_pct, cur);
				lo = rec;
			}
		}
		if (v < lo)
			v = lo;
		if (v > hi)
			v = hi;
		if (rec > cur && v < rec)
			reason_add(&r, "scale-up window %s: lowest recent %d -> %d",
				   fmt_dur(db, sizeof(db), p->scale_up_window_ms),
				   lo, v);
		else if (rec < cur && v > rec)
			reason_add(&r, "scale-down window %s: highest recent %d "
				   "(%s ago) -> %d",
				   fmt_dur(db, sizeof(db), p->scale_down_window_ms),
				   hi, fmt_dur(db2, sizeof(db2),
					       now - ring_at(&st->down, 0)->t),
				   v);
	}
	d->stabilized = v;

	/* 3. cooldown and rate limits */
	if (v != cur && st->have_change && p->cooldown_ms > 0 &&
	    now - st->last_change_ms < p->cooldown_ms) {
		reason_add(&r, "cooldown: last change %s ago, %s cooldown -> "
			   "keep %d",
			   fmt_dur(db, sizeof(db), now - st->last_change_ms),
			   fmt_dur(db2, sizeof(db2), p->cooldown_ms), cur);
		v = cur;
	}
	maxper = p->scale_up_limit.period_ms > p->scale_down_limit.period_ms
		? p->scale_up_limit.period_ms : p->scale_down_limit.period_ms;
	while (st->changes.len > 0 &&
	       ring_at(&st->changes, 0)->t <= now - maxper)
		ring_pop_front(&st->changes);
	if (v > cur) {
		int start, allow = rate_limit(&p->scale_up_limit, st, now, cur,
					      &start);

		if (allow >= 0 && v > start + allow) {
			int lim = start + allow > cur ? start + allow : cur;

			reason_add(&r, "scale-up limited to +%d per %s -> %d",
				   allow,
				   fmt_dur(db, sizeof(db),
					   p->scale_up_limit.period_ms), lim);
			v = lim;
		}
	} else if (v < cur) {
		int start, allow = rate_limit(&p->scale_down_limit, st, now,
					      cur, &start);

		if (allow >= 0 && v < start - allow) {
			int lim = start - allow < cur ? start - allow : cur;

			reason_add(&r, "scale-down limited to -%d per %s -> %d",
				   allow,
				   fmt_dur(db, sizeof(db),
					   p->scale_down_limit.period_ms), lim);
			v = lim;
		}
	}
	d->limited = v;

	/* 4. bounds, then what placement can still add */
	if (v > d->max) {
		v = d->max;
		reason_add(&r, "clamped to max %d%s%s%s", v,
			   d->schedule >= 0 ? " (schedule '" : "",
			   d->schedule >= 0 && p->schedules[d->schedule].name
				   ? p->schedules[d->schedule].name : "",
			   d->schedule >= 0 ? "')" : "");
	}
	if (v < d->min) {
		v = d->min;
		reason_add(&r, "raised to min %d%s%s%s", v,
			   d->schedule >= 0 ? " (schedule '" : "",
			   d->schedule >= 0 && p->schedules[d->schedule].name
				   ? p->schedules[d->schedule].name : "",
			   d->schedule >= 0 ? "')" : "");
	}
	if (v > cur && in->capacity_left >= 0) {
		int64_t room = (int64_t)in->instances + in->capacity_left;

		if (room < cur)
			room = cur;
		if (v > room) {
			reason_add(&r, "placement has room for %d more -> %d",
				   in->capacity_left, (int)room);
			v = (int)room;
		}
	}
	d->to = v;
	d->outcome = v > cur ? POLICY_OUTCOME_SCALE_OUT
		: v < cur ? POLICY_OUTCOME_SCALE_IN : POLICY_OUTCOME_HOLD;
	if (v != cur)
		state_add_change(st, now, cur, v);
}

void
policy_decision_format(const struct policy_decision *d,
		       const struct policy_params *p, struct strbuf *out)
{
	char vb[32];
	bool any = false;

	if (d->outcome == POLICY_OUTCOME_HOLD)
		strbuf_addf(out, "%d (hold): ", d->from);
	else
		strbuf_addf(out, "%d -> %d (%s): ", d->from, d->to,
			    policy_outcome_name(d->outcome));
	strbuf_adds(out, d->reason[0] ? d->reason : "-");
	strbuf_addf(out, " [ready %d, warming %d", d->ready, d->warming);
	for (unsigned m = 0; m < POLICY_METRIC_LAST; m++) {
		if (!d->metric_present[m])
			continue;
		strbuf_addf(out, ", %s %s", policy_metric_name(m),
			    fmt_value(vb, sizeof(vb), (enum policy_metric)m,
				      d->metric[m]));
		any = true;
	}
	for (unsigned a = 0; p && a < p->n_app && a < POLICY_APP_MAX; a++) {
		if (!d->app_present[a])
			continue;
		strbuf_addf(out, ", %s %.6g", p->app[a].name, d->app[a]);
		any = true;
	}
	if (!any)
		strbuf_adds(out, ", no metrics");
	strbuf_addf(out, ", bounds %d..%d", d->min, d->max);
	if (d->capacity_left >= 0)
		strbuf_addf(out, ", room %d", d->capacity_left);
	if (d->forecast >= 0)
		strbuf_addf(out, ", forecast %d", d->forecast);
	strbuf_adds(out, "]");
}

void
policy_decision_json(const struct policy_decision *d,
		     const struct policy_params *p, struct strbuf *out)
{
	static const char *const kinds[POLICY_OUTCOME_LAST] = {
		"hold", "scale_out", "scale_in"};
	bool first = true;

	strbuf_addf(out, "{\"outcome\": \"%s\", \"from\": %d, \"to\": %d, "
		    "\"reason\": ", (unsigned)d->outcome < POLICY_OUTCOME_LAST
		    ? kinds[d->outcome] : "?", d->from, d->to);
	quote_json(out, d->reason);
	strbuf_addf(out, ", \"ready\": %d, \"warming\": %d, \"instances\": %d, "
		    "\"capacity_left\": %d, \"metrics\": {", d->ready,
		    d->warming, d->instances, d->capacity_left);
	for (unsigned m = 0; m < POLICY_METRIC_LAST; m++) {
		if (!d->metric_present[m] || !isfinite(d->metric[m]))
			continue;
		strbuf_addf(out, "%s\"%s\": %.6g", first ? "" : ", ",
			    policy_metric_name((enum policy_metric)m),
			    d->metric[m]);
		first = false;
	}
	strbuf_adds(out, "}");
	if (p && p->n_app)
		strbuf_adds(out, ", \"app_metrics\": {");
	first = true;
	for (unsigned a = 0; p && a < p->n_app && a < POLICY_APP_MAX; a++) {
		strbuf_addf(out, "%s", first ? "" : ", ");
		quote_json(out, p->app[a].name);
		strbuf_addf(out, ": {\"kind\": \"%s\", \"value\": ",
			    policy_app_kind_name(p->app[a].kind));
		if (d->app_present[a] && isfinite(d->app[a]))
			strbuf_addf(out, "%.6g", d->app[a]);
		else
			strbuf_adds(out, "null");
		strbuf_addf(out, ", \"reporting\": %d, \"target\": ",
			    d->app_reporting[a]);
		if (p->app[a].target > 0)
			strbuf_addf(out, "%.6g", p->app[a].target);
		else
			strbuf_adds(out, "null");
		if (p->app[a].source[0])
			strbuf_addf(out, ", \"source\": \"%s\"", p->app[a].source);
		strbuf_adds(out, "}");
		first = false;
	}
	if (p && p->n_app)
		strbuf_adds(out, "}");
	strbuf_addf(out, ", \"min\": %d, \"max\": %d, \"schedule\": ",
		    d->min, d->max);
	if (p && d->schedule >= 0 && (unsigned)d->schedule < p->n_schedules &&
	    p->schedules[d->schedule].name)
		quote_json(out, p->schedules[d->schedule].name);
	else if (d->schedule >= 0)
		strbuf_addf(out, "%d", d->schedule);
	else
		strbuf_adds(out, "null");
	strbuf_addf(out, ", \"recommendation\": %d, \"stabilized\": %d, "
		    "\"limited\": %d", d->recommendation, d->stabilized,
		    d->limited);
	if (p && p->predictive.mode != POLICY_PREDICTIVE_OFF) {
		strbuf_addf(out, ", \"predictive\": \"%s\", \"forecast\": ",
			    policy_predictive_mode_name(p->predictive.mode));
		if (d->forecast >= 0)
			strbuf_addf(out, "%d", d->forecast);
		else
			strbuf_adds(out, "null");
	}
	strbuf_adds(out, "}");
}
