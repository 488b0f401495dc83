/*
 * simulate.c: the trace simulator's core (see simulate.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forecast.h"
#include "log.h"
#include "simulate.h"
#include "util.h"

void
sim_options_defaults(struct sim_options *o)
{
	memset(o, 0, sizeof(*o));
	o->capacity = 40;
	o->boot_delay_ms = 60000;
	o->warm_boot_delay_ms = 2000;
	o->start = 1704067200; /* 2024-01-01 00:00:00 UTC, a Monday */
	o->initial = -1;
}

/* A VM: started at second `start`, serves from second `ready`. The
 * initial VMs have been ready "for a long time" (past any warm-up). */
struct vm {
	int64_t start, ready;
};
#define SIM_LONG_AGO (-((int64_t)1 << 40))
#define SIM_NEVER INT64_MAX

/* The pool's size with `desired` instances: size, less what passes
 * max_prepared. */
static size_t
pool_target(const struct sim_warm_pool *w, size_t desired)
{
	int64_t tgt = w->size;

	if (w->max_prepared > 0 && (int64_t)w->max_prepared -
	    (int64_t)desired < tgt)
		tgt = (int64_t)w->max_prepared - (int64_t)desired;
	return tgt > 0 ? (size_t)tgt : 0;
}

/* How many of vms[0..n-1] are ready at t; *next: the next ready time
 * after t (SIM_NEVER: none). */
static size_t
count_ready(const struct vm *vms, size_t n, int64_t t, int64_t *next)
{
	size_t c = 0;

	*next = SIM_NEVER;
	for (size_t i = 0; i < n; i++) {
		if (vms[i].ready <= t)
			c++;
		else if (vms[i].ready < *next)
			*next = vms[i].ready;
	}
	return c;
}

/* The warm pool: avail[i] is the second its instance is (or was)
 * prepared; it can be drawn from then on. */
struct pool {
	int64_t *avail;
	size_t n, cap;
};

static void
pool_add(struct pool *pl, int64_t avail)
{
	if (pl->n == pl->cap) {
		pl->cap = pl->cap ? pl->cap * 2 : 8;
		pl->avail = xreallocarray(pl->avail, pl->cap,
					  sizeof(*pl->avail));
	}
	pl->avail[pl->n++] = avail;
}

/* The prepared instances at t; *next as count_ready(). */
static size_t
pool_prepared(const struct pool *pl, int64_t t, int64_t *next)
{
	size_t c = 0;

	*next = SIM_NEVER;
	for (size_t i = 0; i < pl->n; i++) {
		if (pl->avail[i] <= t)
			c++;
		else if (pl->avail[i] < *next)
			*next = pl->avail[i];
	}
	return c;
}

/* Take a prepared instance (avail <= t); false when there is none. */
static bool
pool_draw(struct pool *pl, int64_t t)
{
	for (size_t i = 0; i < pl->n; i++) {
		if (pl->avail[i] <= t) {
			pl->avail[i] = pl->avail[--pl->n];
			return true;
		}
	}
	return false;
}

/* Drop the least prepared instance (the latest avail). */
static void
pool_trim(struct pool *pl)
{
	size_t worst = 0;

	for (size_t i = 1; i < pl->n; i++)
		if (pl->avail[i] > pl->avail[worst])
			worst = i;
	pl->avail[worst] = pl->avail[--pl->n];
}

int
sim_run(const struct policy_params *p, const uint32_t *trace, size_t n,
	const struct sim_options *o, struct sim_result *r)
{
	struct policy_state *st = NULL;
	struct policy_instance_sample *samples = NULL;
	struct vm *vms = NULL;
	double *cpu_sum = NULL; /* cpu_sum[k]: sum of per-second CPU (%) of
				 * seconds interval_start .. interval_start+k-1 */
	double *rps_sum = NULL; /* the same of demand / ready VMs */
	double *dem_sum = NULL; /* the same of demand */
	struct forecast_history *hist = NULL;
	struct pool pool = {NULL, 0, 0};
	const struct sim_warm_pool *w = &o->warm;
	size_t npool_ready = 0;
	int64_t next_ready = 0, next_pool = 0; /* count again from then on */
	uint64_t warm_s, warm_seconds = 0;
	bool fc_have = false;   /* the last forecast, a floor */
	int fc_floor = 0;
	int app_rps = -1;       /* p->app[] index of requests_per_s */
	int buffer_min = 0, window_min = 0;
	size_t nvms = 0, cap_vms = 0, cap_win = 0, nready = 0;
	uint64_t boot_s, interval_start = 0, vm_seconds = 0;
	int64_t next_ms;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	if (!(o->capacity > 0)) {
		err_set("capacity must be above 0 requests/s");
		goto cleanup;
	}
	if (o->boot_delay_ms < 0) {
		err_set("boot delay must not be negative");
		goto cleanup;
	}
	if (o->warm_boot_delay_ms < 0) {
		err_set("warm boot delay must not be negative");
		goto cleanup;
	}
	if (w->size < 0 || w->max_prepared < 0) {
		err_set("the warm pool's size and max_prepared must not be "
			"negative");
		goto cleanup;
	}
	if (p->interval_ms <= 0) {
		err_set("the policy's interval must be above 0");
		goto cleanup;
	}
	if (n == 0) {
		err_set("empty trace");
		goto cleanup;
	}
	if (o->report_from >= n) {
		err_set("the trace has %zu s: nothing to report from second %llu",
			n, (unsigned long long)o->report_from);
		goto cleanup;
	}
	boot_s = (uint64_t)((o->boot_delay_ms + 999) / 1000);
	warm_s = (uint64_t)((o->warm_boot_delay_ms + 999) / 1000);
	st = policy_state_new();
	{
		int init = o->initial >= 0 ? o->initial : p->min;

		if (init < 0)
			init = 0;
		cap_vms = (size_t)init + 16;
		vms = xcalloc(cap_vms, sizeof(*vms));
		samples = xcalloc(cap_vms, sizeof(*samples));
		for (int i = 0; i < init; i++)
			vms[nvms++] = (struct vm){SIM_LONG_AGO, SIM_LONG_AGO};
		/* the pool is full and prepared at the start */
		for (size_t i = pool_target(w, nvms); i > 0; i--)
			pool_add(&pool, SIM_LONG_AGO);
	}
	cap_win = (size_t)(p->interval_ms / 1000) + 2;
	cpu_sum = xcalloc(cap_win + 1, sizeof(*cpu_sum));
	rps_sum = xcalloc(cap_win + 1, sizeof(*rps_sum));
	dem_sum = xcalloc(cap_win + 1, sizeof(*dem_sum));
	app_rps = policy_app_find(p, "requests_per_s");
	if (p->predictive.mode != POLICY_PREDICTIVE_OFF) {
		hist = forecast_history_new();
		buffer_min = (int)((p->predictive.buffer_ms + 59999) / 60000);
		window_min = (int)((p->predictive.window_ms + 59999) / 60000);
	}
	r->min_vms = INT32_MAX;
	next_ms = p->interval_ms;

	for (uint64_t t = 0; t < n; t++) {
		uint32_t demand = trace[t];
		double capacity;
		size_t k;

		/* The engine runs at the start of second t on what it saw. */
		if ((int64_t)t * 1000 >= next_ms) {
			struct policy_input in;
			struct policy_decision d;
			time_t wall = o->start + (time_t)t;
			size_t len = (size_t)(t - interval_start);

			memset(&in, 0, sizeof(in));
			in.now_ms = (int64_t)t * 1000;
			in.have_local_time = gmtime_r(&wall, &in.local_time) != NULL;
			in.desired = (int)nvms;
			in.capacity_left = -1;
			for (size_t i = 0; i < nvms; i++) {
				struct policy_instance_sample *s = &samples[i];
				uint64_t from = vms[i].ready > (int64_t)interval_start
					? (uint64_t)vms[i].ready : interval_start;

				memset(s, 0, sizeof(*s));
				s->ready = vms[i].ready <= (int64_t)t;
				s->ready_ms = (int64_t)vms[i].ready * 1000;
				if (s->ready && from < t) {
					size_t a = (size_t)(from - interval_start);

					s->metric[POLICY_METRIC_CPU] =
						(cpu_sum[len] - cpu_sum[a]) /
						(double)(len - a);
					s->metric_present[POLICY_METRIC_CPU] = true;
					if (app_rps >= 0 && p->app[app_rps].kind ==
					    POLICY_APP_AVERAGE) {
						s->app[app_rps] =
							(rps_sum[len] - rps_sum[a]) /
							(double)(len - a);
						s->app_present[app_rps] = true;
					} else if (app_rps >= 0) {
						s->app[app_rps] = dem_sum[len] /
								  (double)len;
						s->app_present[app_rps] = true;
						s->app_ms[app_rps] = in.now_ms;
					}
				}
			}
			policy_input_from_instances(&in, p, samples,
						    (unsigned)nvms);
			if (hist) {
				struct forecast_result fr;

				/* once a minute, as the daemon */
				if (forecast_history_add(hist, in.now_ms,
						policy_load_instances(p, &in))) {
					fc_have = forecast_compute(hist, buffer_min,
								   window_min,
								   &fr) == 0;
					fc_floor = fc_have
						? policy_forecast_floor(fr.peak)
						: 0;
				}
				in.have_forecast = fc_have;
				in.forecast = fc_floor;
				if (in.have_forecast && t >= o->report_from)
					r->forecasts++;
			}
			policy_decide(p, &in, st, &d);
			r->decisions++;
			if (o->on_decision)
				o->on_decision(o->arg, t, &d, p);
			if (d.to != d.from) {
				if (t >= o->report_from)
					r->scale_actions++;
				/* newest first; with reuse back to the pool,
				 * prepared once it would have been ready */
				while (nvms > (size_t)d.to) {
					nvms--;
					if (w->reuse && pool.n <
					    pool_target(w, (size_t)d.to))
						pool_add(&pool, vms[nvms].ready >
							 (int64_t)t
							 ? vms[nvms].ready
							 : (int64_t)t);
				}
				if ((size_t)d.to > cap_vms) {
					cap_vms = (size_t)d.to * 2;
					vms = xreallocarray(vms, cap_vms,
							    sizeof(*vms));
					samples = xreallocarray(samples, cap_vms,
								sizeof(*samples));
				}
				/* warm instances first, cold for the rest */
				while (nvms < (size_t)d.to) {
					bool warm = pool_draw(&pool, (int64_t)t);

					if (warm && t >= o->report_from)
						r->warm_draws++;
					vms[nvms++] = (struct vm){(int64_t)t,
						(int64_t)(t + (warm ? warm_s
								    : boot_s))};
				}
			}
			/* refill (a cold provision each) or trim the pool */
			{
				size_t tgt = pool_target(w, nvms);

				while (pool.n > tgt)
					pool_trim(&pool);
				while (pool.n < tgt)
					pool_add(&pool, (int64_t)(t + boot_s));
			}
			next_ready = next_pool = (int64_t)t;
			interval_start = t;
			next_ms += p->interval_ms;
			if (next_ms <= (int64_t)t * 1000)
				next_ms = (int64_t)t * 1000 + p->interval_ms;
		}

		/* Warm draws leave ready times out of order: count again
		 * when one is due and after every decision. */
		if ((int64_t)t >= next_ready)
			nready = count_ready(vms, nvms, (int64_t)t, &next_ready);
		if ((int64_t)t >= next_pool)
			npool_ready = pool_prepared(&pool, (int64_t)t,
						    &next_pool);
		capacity = (double)nready * o->capacity;
		if ((double)demand > capacity && t >= o->report_from) {
			r->under_provisioned_seconds++;
			r->excess_requests += (uint64_t)ceil((double)demand - capacity);
		}
		k = (size_t)(t - interval_start);
		if (k + 1 > cap_win) {
			cap_win = (k + 1) * 2;
			cpu_sum = xreallocarray(cpu_sum, cap_win + 1,
						sizeof(*cpu_sum));
			rps_sum = xreallocarray(rps_sum, cap_win + 1,
						sizeof(*rps_sum));
			dem_sum = xreallocarray(dem_sum, cap_win + 1,
						sizeof(*dem_sum));
		}
		if (k == 0)
			cpu_sum[0] = rps_sum[0] = dem_sum[0] = 0;
		cpu_sum[k + 1] = cpu_sum[k] +
			(nready ? fmin(100.0, 100.0 * demand / capacity) : 0);
		rps_sum[k + 1] = rps_sum[k] +
			(nready ? (double)demand / (double)nready : 0);
		dem_sum[k + 1] = dem_sum[k] + demand;
		if (t < o->report_from)
			goto observe;
		/* instances being prepared run; prepared ones hold RAM
		 * (paused) or only disk (saved, stopped) */
		vm_seconds += nvms + (pool.n - npool_ready);
		if (w->holds_ram)
			vm_seconds += npool_ready;
		else
			warm_seconds += npool_ready;
		if ((int)nvms < r->min_vms)
			r->min_vms = (int)nvms;
		if ((int)nvms > r->max_vms)
			r->max_vms = (int)nvms;
observe:
		if (o->on_second)
			o->on_second(o->arg, t, demand, (int)nready, (int)nvms,
				     (int)npool_ready);
	}
	if (r->min_vms == INT32_MAX)
		r->min_vms = 0;
	r->vm_hours = (double)vm_seconds / 3600.0;
	r->warm_vm_hours = (double)warm_seconds / 3600.0;
	r->oracle_vm_hours = sim_oracle_vm_hours(trace, n,
						 (size_t)o->report_from,
						 o->capacity, o->boot_delay_ms);
	ret = 0;
cleanup:
	forecast_history_free(hist);
	free(pool.avail);
	free(rps_sum);
	free(dem_sum);
	policy_state_free(st);
	free(samples);
	free(vms);
	free(cpu_sum);
	return ret;
}

double
sim_oracle_vm_hours(const uint32_t *trace, size_t n, size_t from,
		    double capacity, int64_t boot_delay_ms)
{
	/* last[j]: the last second layer j (the j+1-th VM) was needed */
	int64_t *last = NULL, boot = (boot_delay_ms + 999) / 1000;
	size_t nlast = 0;
	double secs = 0;

	if (!(capacity > 0))
		return 0;
	for (size_t t = from; t < n; t++) {
		double q = ceil((double)trace[t] / capacity - 1e-9);
		size_t need = q < 1 ? 1 : (size_t)q;

		if (need > nlast) {
			last = xreallocarray(last, need, sizeof(*last));
			for (size_t j = nlast; j < need; j++)
				last[j] = -1;
			nlast = need;
		}
		for (size_t j = 0; j < need; j++) {
			int64_t gap;

			if (last[j] < 0) {
				/* the first second's VMs are there */
				secs += t == from ? 1 : (double)boot + 1;
			} else {
				gap = (int64_t)t - last[j] - 1;
				secs += (double)(gap < boot ? gap : boot) + 1;
			}
			last[j] = (int64_t)t;
		}
	}
	free(last);
	return secs / 3600.0;
}
