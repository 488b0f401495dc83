/*
 * simulate.c: the trace simulator's core (see simulate.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "simulate.h"
#include "util.h"

void
sim_options_defaults(struct sim_options *o)
{
	memset(o, 0, sizeof(*o));
	o->capacity = 40;
	o->boot_delay_ms = 60000;
	o->start = 1704067200; /* 2024-01-01 00:00:00 UTC, a Monday */
	o->initial = -1;
}

/* A VM: started at second `start`, serves from second `ready`. The
 * initial VMs have been ready "for a long time" (past any warm-up). */
struct vm {
	int64_t start, ready;
};
#define SIM_LONG_AGO (-((int64_t)1 << 40))

int
sim_run(const struct policy_params *p, const uint32_t *trace, size_t n,
	const struct sim_options *o, struct sim_result *r)
{
	struct policy_state *st = NULL;
	struct policy_instance_sample *samples = NULL;
	struct vm *vms = NULL;
	double *cpu_sum = NULL; /* cpu_sum[k]: sum of per-second CPU (%) of
				 * seconds interval_start .. interval_start+k-1 */
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
	if (p->interval_ms <= 0) {
		err_set("the policy's interval must be above 0");
		goto cleanup;
	}
	if (n == 0) {
		err_set("empty trace");
		goto cleanup;
	}
	boot_s = (uint64_t)((o->boot_delay_ms + 999) / 1000);
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
	}
	cap_win = (size_t)(p->interval_ms / 1000) + 2;
	cpu_sum = xcalloc(cap_win + 1, sizeof(*cpu_sum));
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
				}
			}
			policy_input_from_instances(&in, p, samples,
						    (unsigned)nvms);
			policy_decide(p, &in, st, &d);
			r->decisions++;
			if (o->on_decision)
				o->on_decision(o->arg, t, &d, p);
			if (d.to != d.from) {
				r->scale_actions++;
				while (nvms > (size_t)d.to)
					nvms--;
				if ((size_t)d.to > cap_vms) {
					cap_vms = (size_t)d.to * 2;
					vms = xreallocarray(vms, cap_vms,
							    sizeof(*vms));
					samples = xreallocarray(samples, cap_vms,
								sizeof(*samples));
				}
				while (nvms < (size_t)d.to)
					vms[nvms++] = (struct vm){
						(int64_t)t, (int64_t)(t + boot_s)};
			}
			if (nready > nvms)
				nready = nvms;
			interval_start = t;
			next_ms += p->interval_ms;
			if (next_ms <= (int64_t)t * 1000)
				next_ms = (int64_t)t * 1000 + p->interval_ms;
		}

		/* VMs are sorted by ready time: the ready ones are a prefix. */
		while (nready < nvms && vms[nready].ready <= (int64_t)t)
			nready++;
		capacity = (double)nready * o->capacity;
		if ((double)demand > capacity) {
			r->under_provisioned_seconds++;
			r->excess_requests += (uint64_t)ceil((double)demand - capacity);
		}
		k = (size_t)(t - interval_start);
		if (k + 1 > cap_win) {
			cap_win = (k + 1) * 2;
			cpu_sum = xreallocarray(cpu_sum, cap_win + 1,
						sizeof(*cpu_sum));
		}
		if (k == 0)
			cpu_sum[0] = 0;
		cpu_sum[k + 1] = cpu_sum[k] +
			(nready ? fmin(100.0, 100.0 * demand / capacity) : 0);
		vm_seconds += nvms;
		if ((int)nvms < r->min_vms)
			r->min_vms = (int)nvms;
		if ((int)nvms > r->max_vms)
			r->max_vms = (int)nvms;
		if (o->on_second)
			o->on_second(o->arg, t, demand, (int)nready, (int)nvms);
	}
	r->vm_hours = (double)vm_seconds / 3600.0;
	ret = 0;
cleanup:
	policy_state_free(st);
	free(samples);
	free(vms);
	free(cpu_sum);
	return ret;
}
