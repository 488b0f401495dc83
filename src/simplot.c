/*
 * simplot.c: the simulator's SVG chart (see simplot.h).
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simplot.h"
#include "util.h"

#define PLOT_COLUMNS 1000 /* points across; one per bucket of seconds */

struct bucket {
	double demand_sum, cap_sum, ready_sum, warm_sum, warm_cap_sum;
	uint32_t demand_max;
	int vms_max, warm_max;
	uint32_t count;
};

struct sim_plot {
	uint64_t n, per;   /* seconds, seconds per bucket */
	bool warm;         /* a warm instance was seen: draw the series */
	double capacity;
	size_t nb;
	struct bucket *b;
};

struct sim_plot *
sim_plot_new(uint64_t n, double capacity)
{
	struct sim_plot *pl = xcalloc(1, sizeof(*pl));

	pl->n = n ? n : 1;
	pl->per = (pl->n + PLOT_COLUMNS - 1) / PLOT_COLUMNS;
	pl->nb = (size_t)((pl->n + pl->per - 1) / pl->per);
	pl->capacity = capacity;
	pl->b = xcalloc(pl->nb, sizeof(*pl->b));
	return pl;
}

void
sim_plot_free(struct sim_plot *pl)
{
	if (!pl)
		return;
	free(pl->b);
	free(pl);
}

void
sim_plot_second(void *arg, uint64_t t, uint32_t demand, int ready, int vms,
		int warm)
{
	struct sim_plot *pl = arg;
	size_t i = (size_t)(t / pl->per);
	struct bucket *b;

	if (i >= pl->nb)
		return;
	b = &pl->b[i];
	b->demand_sum += demand;
	b->cap_sum += ready * pl->capacity;
	b->ready_sum += ready;
	if (demand > b->demand_max)
		b->demand_max = demand;
	if (vms > b->vms_max)
		b->vms_max = vms;
	b->warm_sum += warm;
	b->warm_cap_sum += (ready + warm) * pl->capacity;
	if (warm > b->warm_max)
		b->warm_max = warm;
	if (warm > 0)
		pl->warm = true;
	b->count++;
}

/* A "nice" tick step (1, 2 or 5 x 10^k) for about 5 ticks up to max. */
static double
nice_step(double max)
{
	double raw = max / 5, mag, f;

	if (!(raw > 0))
		return 1;
	mag = pow(10, floor(log10(raw)));
	f = raw / mag;
	return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static const int64_t time_steps[] = {
	10, 30, 60, 300, 600, 1800, 3600, 2 * 3600, 6 * 3600, 12 * 3600,
	86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400,
};

static void
time_label(char *buf, size_t len, int64_t s, int64_t step)
{
	if (step % 86400 == 0)
		snprintf(buf, len, "%" PRId64 "d", s / 86400);
	else if (step % 3600 == 0 && s % 86400 != 0 && s >= 86400)
		snprintf(buf, len, "%" PRId64 "d%" PRId64 "h", s / 86400,
			 s % 86400 / 3600);
	else if (step % 3600 == 0)
		snprintf(buf, len, "%" PRId64 "%s", s >= 86400 ? s / 86400 : s / 3600,
			 s >= 86400 ? "d" : "h");
	else if (step % 60 == 0)
		snprintf(buf, len, "%" PRId64 "m", s / 60);
	else
		snprintf(buf, len, "%" PRId64 "s", s);
}

static void
xml_escape(struct strbuf *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<':
			strbuf_adds(out, "&lt;");
			break;
		case '>':
			strbuf_adds(out, "&gt;");
			break;
		case '&':
			strbuf_adds(out, "&amp;");
			break;
		case '"':
			strbuf_adds(out, "&quot;");
			break;
		default:
			if ((unsigned char)*s >= 0x20 || *s == '\t')
				strbuf_addc(out, *s);
		}
	}
}

/* Geometry of a panel: plot area x0..x0+w, y0..y0+h (y grows down). */
struct panel {
	double x0, y0, w, h, ymax;
};

static double
px(const struct sim_plot *pl, const struct panel *p, size_t i)
{
	return p->x0 + p->w * ((double)i + 0.5) / (double)pl->nb;
}

static double
py(const struct panel *p, double v)
{
	return p->y0 + p->h - p->h * (v / p->ymax);
}

static void
axes(const struct sim_plot *pl, const struct panel *p, const char *ylabel,
     bool integer, struct strbuf *out)
{
	double step = nice_step(p->ymax);
	int64_t tstep = time_steps[ARRAY_SIZE(time_steps) - 1];
	char lab[32];

	if (integer && step < 1)
		step = 1;
	strbuf_addf(out, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' "
		    "fill='none' stroke='#444'/>\n", p->x0, p->y0, p->w, p->h);
	for (double v = 0; v <= p->ymax + 1e-9; v += step) {
		double y = py(p, v);

		strbuf_addf(out, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' "
			    "stroke='#ddd'/>\n", p->x0, y, p->x0 + p->w, y);
		strbuf_addf(out, "<text x='%.1f' y='%.1f' text-anchor='end' "
			    "font-size='11'>%g</text>\n", p->x0 - 6, y + 4, v);
	}
	for (size_t i = 0; i < ARRAY_SIZE(time_steps); i++) {
		if ((double)pl->n / (double)time_steps[i] <= 12) {
			tstep = time_steps[i];
			break;
		}
	}
	for (int64_t s = 0; s <= (int64_t)pl->n; s += tstep) {
		double x = p->x0 + p->w * (double)s / (double)(pl->nb * pl->per);

		time_label(lab, sizeof(lab), s, tstep);
		strbuf_addf(out, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' "
			    "stroke='#444'/>\n", x, p->y0 + p->h, x,
			    p->y0 + p->h + 5);
		strbuf_addf(out, "<text x='%.1f' y='%.1f' text-anchor='middle' "
			    "font-size='11'>%s</text>\n", x, p->y0 + p->h + 18,
			    lab);
	}
	strbuf_addf(out, "<text transform='translate(%.1f,%.1f) rotate(-90)' "
		    "text-anchor='middle' font-size='12'>%s</text>\n",
		    p->x0 - 48, p->y0 + p->h / 2, ylabel);
}

enum series { S_DEMAND_MAX, S_DEMAND, S_CAPACITY, S_VMS, S_READY, S_WARM,
	      S_WARM_CAP };

static double
value(const struct bucket *b, enum series s)
{
	double c = b->count ? b->count : 1;

	switch (s) {
	case S_DEMAND_MAX:
		return b->demand_max;
	case S_DEMAND:
		return b->demand_sum / c;
	case S_CAPACITY:
		return b->cap_sum / c;
	case S_VMS:
		return b->vms_max;
	case S_READY:
		return b->ready_sum / c;
	case S_WARM:
		return b->warm_sum / c;
	case S_WARM_CAP:
		/* what the ready and the prepared warm VMs could serve */
		return b->warm_cap_sum / c;
	}
	return 0;
}

static void
polyline(const struct sim_plot *pl, const struct panel *p, enum series s,
	 const char *style, struct strbuf *out)
{
	strbuf_addf(out, "<polyline fill='none' %s points='", style);
	for (size_t i = 0; i < pl->nb; i++) {
		if (!pl->b[i].count)
			continue;
		strbuf_addf(out, "%.1f,%.1f ", px(pl, p, i),
			    py(p, value(&pl->b[i], s)));
	}
	strbuf_adds(out, "'/>\n");
}

static void
legend(double x, double y, const char *style, const char *text,
       struct strbuf *out)
{
	strbuf_addf(out, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' %s/>\n",
		    x, y - 4, x + 24, y - 4, style);
	strbuf_addf(out, "<text x='%.1f' y='%.1f' font-size='12'>%s</text>\n",
		    x + 30, y, text);
}

void
sim_plot_svg(const struct sim_plot *pl, const char *title, struct strbuf *out)
{
	const double W = 1120, H = 640;
	struct panel top = {70, 50, PLOT_COLUMNS, 330, 1};
	struct panel bot = {70, 440, PLOT_COLUMNS, 150, 1};
	static const char *const st_dmax =
		"stroke='#9ecae1' stroke-width='0.8'";
	static const char *const st_dem = "stroke='#1f77b4' stroke-width='1.2'";
	static const char *const st_cap = "stroke='#ff7f0e' stroke-width='1.2'";
	static const char *const st_vms = "stroke='#2ca02c' stroke-width='1.2'";
	static const char *const st_rdy =
		"stroke='#98df8a' stroke-width='1' stroke-dasharray='4,2'";
	static const char *const st_warm = "stroke='#9467bd' stroke-width='1.2'";
	static const char *const st_wcap =
		"stroke='#9467bd' stroke-width='1' stroke-dasharray='4,2'";
	char lab[96];

	for (size_t i = 0; i < pl->nb; i++) {
		const struct bucket *b = &pl->b[i];

		if (b->demand_max > top.ymax)
			top.ymax = b->demand_max;
		if (value(b, S_CAPACITY) > top.ymax)
			top.ymax = value(b, S_CAPACITY);
		if (b->vms_max > bot.ymax)
			bot.ymax = b->vms_max;
		if (b->warm_max > bot.ymax)
			bot.ymax = b->warm_max;
		if (pl->warm && value(b, S_WARM_CAP) > top.ymax)
			top.ymax = value(b, S_WARM_CAP);
	}
	top.ymax = ceil(top.ymax / nice_step(top.ymax)) * nice_step(top.ymax);
	bot.ymax = ceil(bot.ymax / fmax(1, nice_step(bot.ymax))) *
		   fmax(1, nice_step(bot.ymax));

	strbuf_addf(out, "<?xml version='1.0' encoding='UTF-8'?>\n"
		    "<svg xmlns='http://www.w3.org/2000/svg' width='%g' "
		    "height='%g' viewBox='0 0 %g %g' font-family='sans-serif'>\n"
		    "<rect width='100%%' height='100%%' fill='white'/>\n",
		    W, H, W, H);
	strbuf_addf(out, "<text x='%g' y='24' text-anchor='middle' "
		    "font-size='15'>", W / 2);
	xml_escape(out, title);
	strbuf_adds(out, "</text>\n");
	axes(pl, &top, "requests/s", false, out);
	axes(pl, &bot, "VMs", true, out);
	strbuf_addf(out, "<text x='%.1f' y='%g' text-anchor='middle' "
		    "font-size='12'>time since the start of the trace (one "
		    "point per %" PRIu64 " s)</text>\n", top.x0 + top.w / 2,
		    H - 12, pl->per);
	polyline(pl, &top, S_DEMAND_MAX, st_dmax, out);
	polyline(pl, &top, S_DEMAND, st_dem, out);
	polyline(pl, &top, S_CAPACITY, st_cap, out);
	polyline(pl, &bot, S_READY, st_rdy, out);
	polyline(pl, &bot, S_VMS, st_vms, out);
	if (pl->warm) {
		polyline(pl, &top, S_WARM_CAP, st_wcap, out);
		polyline(pl, &bot, S_WARM, st_warm, out);
	}
	legend(top.x0 + 10, top.y0 - 10, st_dem, "demand (mean)", out);
	legend(top.x0 + 170, top.y0 - 10, st_dmax, "demand (peak second)", out);
	snprintf(lab, sizeof(lab), "ready capacity (ready VMs x %g req/s)",
		 pl->capacity);
	legend(top.x0 + 370, top.y0 - 10, st_cap, lab, out);
	legend(bot.x0 + 10, bot.y0 - 10, st_vms, "VMs (started, most)", out);
	legend(bot.x0 + 200, bot.y0 - 10, st_rdy, "ready VMs (mean)", out);
	if (pl->warm) {
		legend(top.x0 + 700, top.y0 - 10, st_wcap,
		       "ready + prepared warm capacity", out);
		legend(bot.x0 + 370, bot.y0 - 10, st_warm,
		       "prepared warm VMs (mean)", out);
	}
	strbuf_adds(out, "</svg>\n");
}
