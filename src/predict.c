/*
 * predict.c: predictive scaling in the daemon (see predict.h): each
 * group's load history and forecast, kept in the state store.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_int.h"
#include "forecast.h"
#include "log.h"
#include "predict.h"

LOG_TAG("predict");

struct predict_minute {
	int64_t minute;
	float load;
};

struct predict {
	struct forecast_history *h;    /* minutes on the wall clock */
	int64_t queued_to;             /* the last minute queued or stored */
	struct predict_minute pending[PREDICT_PENDING_MAX];
	size_t n_pending;
	bool dirty;                    /* a minute queued since the last flush */
	unsigned long dropped;         /* minutes the store never took */
	/* the last forecast */
	bool have;
	int floor;
	double peak;
	int64_t computed_ms;           /* wall clock; 0: never */
	char why[160];                 /* no forecast: why */
};

void
predict_free(struct predict *p)
{
	if (!p)
		return;
	forecast_history_free(p->h);
	free(p);
}

static int
minutes_up(int64_t ms)
{
	return (int)((ms + 59999) / 60000);
}

/* The forecast of the window ahead, as policy_decide() takes it. */
static void
recompute(struct predict *p, const struct policy_params *pp, int64_t wall_ms)
{
	struct forecast_result r;
	size_t len = forecast_history_len(p->h);

	p->computed_ms = wall_ms;
	if (forecast_compute(p->h, minutes_up(pp->predictive.buffer_ms),
			     minutes_up(pp->predictive.window_ms), &r) == 0) {
		p->have = true;
		p->peak = r.peak;
		p->floor = policy_forecast_floor(r.peak);
		p->why[0] = '\0';
		return;
	}
	p->have = false;
	if (len < FORECAST_DAY_MIN)
		snprintf(p->why, sizeof(p->why), "under a day of load history "
			 "(%zu of %d minutes)", len, FORECAST_DAY_MIN);
	else
		snprintf(p->why, sizeof(p->why), "no load recorded at the "
			 "window's times on earlier days");
}

int
predict_setup(struct store *s, const struct config_group *gc,
	      struct predict *prev, int64_t wall_ms, struct predict **out)
{
	const struct policy_params *pp = &gc->policy;
	int64_t now_min = wall_ms / 60000, next = -1;
	struct store_load_list l;
	struct predict *p;

	*out = NULL;
	if (pp->predictive.mode == POLICY_PREDICTIVE_OFF)
		return 0;
	if (prev) {
		/* the caller settles who owns it; a reload may have
		 * changed buffer or window */
		recompute(prev, pp, wall_ms);
		*out = prev;
		return 0;
	}
	if (store_load_get(s, gc->name, now_min - FORECAST_HISTORY_MIN, &l) !=
	    STORE_OK) {
		err_prefix("group %s: predictive scaling's load history", gc->name);
		return -1;
	}
	p = xcalloc(1, sizeof(*p));
	p->h = forecast_history_new();
	/* the stored minutes in place, gaps as gaps, up to the minute
	 * before this one (rows from a clock ahead of ours are left) */
	for (size_t i = 0; i < l.n && l.v[i].minute < now_min; i++) {
		if (next < 0)
			next = l.v[i].minute;
		while (next < l.v[i].minute) {
			forecast_history_push(p->h, NAN);
			next++;
		}
		forecast_history_push(p->h, (float)l.v[i].load);
		next++;
	}
	while (next >= 0 && next < now_min) {
		forecast_history_push(p->h, NAN);
		next++;
	}
	forecast_history_resume(p->h, wall_ms);
	p->queued_to = now_min - 1;
	recompute(p, pp, wall_ms);
	if (l.n)
		log_info("group %s: %zu minutes of load history loaded; %s%s",
			 gc->name, l.n, p->have ? "forecast ready" : "no forecast: ",
			 p->have ? "" : p->why);
	store_load_list_release(&l);
	*out = p;
	return 0;
}

static void
queue(struct predict *p, int64_t minute, float load)
{
	if (p->n_pending == PREDICT_PENDING_MAX) {
		memmove(p->pending, p->pending + 1,
			(PREDICT_PENDING_MAX - 1) * sizeof(*p->pending));
		p->n_pending--;
		p->dropped++;
	}
	p->pending[p->n_pending++] = (struct predict_minute){minute, load};
	p->dirty = true;
}

void
predict_note(struct predict *p, const struct policy_params *pp,
	     int64_t wall_ms, double load)
{
	int64_t cur, from;
	size_t len;

	if (!p || !forecast_history_add(p->h, wall_ms, load))
		return;
	/* the minutes just closed: those after the last one queued */
	cur = forecast_history_minute(p->h);
	len = forecast_history_len(p->h);
	from = cur - (int64_t)len;
	if (from < p->queued_to + 1)
		from = p->queued_to + 1;
	for (int64_t m = from; m < cur; m++) {
		float v = forecast_history_at(p->h, len - (size_t)(cur - m));

		if (!isnan(v))
			queue(p, m, v);
	}
	p->queued_to = cur - 1;
	recompute(p, pp, wall_ms);
}

bool
predict_floor(const struct predict *p, int *floor)
{
	if (!p || !p->have)
		return false;
	*floor = p->floor;
	return true;
}

void
predict_flush(struct daemon *d)
{
	struct store_load_minute *v;
	size_t n = 0, total = 0;
	bool dirty = false;

	for (unsigned i = 0; i < d->n_groups; i++) {
		const struct predict *p = d->groups[i].pred;

		if (p) {
			dirty = dirty || p->dirty;
			total += p->n_pending;
		}
	}
	if (!dirty || total == 0)
		return;
	v = xcalloc(total, sizeof(*v));
	for (unsigned i = 0; i < d->n_groups; i++) {
		struct predict *p = d->groups[i].pred;

		for (size_t k = 0; p && k < p->n_pending; k++)
			v[n++] = (struct store_load_minute){
				d->groups[i].cfg->name, p->pending[k].minute,
				p->pending[k].load};
		if (p)
			p->dirty = false;
	}
	if (store_load_put(d->store, v, n) != STORE_OK) {
		log_complain(&d->predict_complaint, LOG_LEVEL_WARN, log_tag,
			     "cannot write %zu minutes of load history (kept "
			     "for the next minute, at most %d per group): %s",
			     n, PREDICT_PENDING_MAX, err_msg());
	} else {
		for (unsigned i = 0; i < d->n_groups; i++)
			if (d->groups[i].pred)
				d->groups[i].pred->n_pending = 0;
		log_complain_clear(&d->predict_complaint, log_tag,
				   "load history written again");
	}
	free(v);
}

void
predict_prune(struct daemon *d)
{
	int64_t n = 0;

	if (store_load_prune(d->store, util_wall_ms() / 60000 -
					       FORECAST_HISTORY_MIN, &n) !=
	    STORE_OK)
		log_warn("cannot prune the load history (retried in an hour): %s",
			 err_msg());
	else if (n)
		log_debug("load history: %lld minutes older than two weeks "
			  "deleted", (long long)n);
}

char *
predict_json(const struct dgroup *g, int64_t wall_ms)
{
	const struct policy_params *pp = &g->cfg->policy;
	const struct predict *p = g->pred;
	struct strbuf sb = STRBUF_INIT;

	if (!p)
		return NULL;
	strbuf_addf(&sb, "{\"mode\":\"%s\",\"buffer_s\":%" PRId64
		    ",\"window_s\":%" PRId64 ",\"history_minutes\":%zu",
		    policy_predictive_mode_name(pp->predictive.mode),
		    (int64_t)minutes_up(pp->predictive.buffer_ms) * 60,
		    (int64_t)minutes_up(pp->predictive.window_ms) * 60,
		    forecast_history_len(p->h));
	if (p->have)
		strbuf_addf(&sb, ",\"forecast\":%d,\"peak\":%.3f", p->floor,
			    p->peak);
	else
		strbuf_adds(&sb, ",\"forecast\":null,\"peak\":null");
	if (p->computed_ms)
		strbuf_addf(&sb, ",\"updated_s\":%.0f",
			    (double)(wall_ms - p->computed_ms) / 1000);
	else
		strbuf_adds(&sb, ",\"updated_s\":null");
	strbuf_adds(&sb, ",\"why\":");
	if (p->have)
		strbuf_adds(&sb, "null");
	else
		http_json_string(&sb, p->why);
	strbuf_addf(&sb, ",\"unsaved_minutes\":%zu}", p->n_pending);
	return strbuf_detach(&sb);
}

void
predict_prom(struct daemon *d, struct strbuf *sb)
{
	static const struct {
		const char *name, *help;
	} g[2] = {
		{"va_group_forecast", "predictive scaling: the capacity floor "
		 "forecast for the window ahead (instances; absent while there "
		 "is no forecast)"},
		{"va_group_forecast_load", "predictive scaling: the peak load "
		 "forecast for the window ahead (instances, before rounding)"},
	};
	bool any = false;

	for (unsigned i = 0; i < d->n_groups; i++)
		any = any || (d->groups[i].pred && d->groups[i].pred->have);
	if (!any)
		return;
	for (int k = 0; k < 2; k++) {
		strbuf_addf(sb, "# HELP %s %s\n# TYPE %s gauge\n", g[k].name,
			    g[k].help, g[k].name);
		for (unsigned i = 0; i < d->n_groups; i++) {
			const struct predict *p = d->groups[i].pred;

			if (!p || !p->have)
				continue;
			if (k == 0)
				strbuf_addf(sb, "%s{group=\"%s\"} %d\n", g[k].name,
					    d->groups[i].cfg->name, p->floor);
			else
				strbuf_addf(sb, "%s{group=\"%s\"} %.3f\n",
					    g[k].name, d->groups[i].cfg->name,
					    p->peak);
		}
	}
}
