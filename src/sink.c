/*
 * sink.c: the metric sinks' table of functions and the feed of a
 * collection result to all of them (see sink.h).
 */
#include "event.h"
#include "metrics.h"
#include "sink.h"

static void
mstore_instance(void *self, const struct collect_instance *inst,
		const char *host, int64_t mono_ms, int64_t wall_ms)
{
	(void)host;
	(void)wall_ms;
	mstore_put(self, inst->uuid, mono_ms, &inst->rates);
}

static void
mstore_gone(void *self, const unsigned char uuid[VIR_UUID_BUFLEN])
{
	mstore_remove(self, uuid);
}

static const struct sink_ops mstore_ops = {
	.name = "builtin",
	.instance = mstore_instance,
	.gone = mstore_gone,
};

struct sink
sink_mstore(struct mstore *s)
{
	return (struct sink){&mstore_ops, s};
}

static void
influx_instance(void *self, const struct collect_instance *inst,
		const char *host, int64_t mono_ms, int64_t wall_ms)
{
	(void)mono_ms;
	influx_add_instance(self, inst->group, host, inst->id, wall_ms,
			    &inst->rates);
}

static void
influx_host(void *self, const char *host, int64_t wall_ms,
	    const struct collect_capacity *cap)
{
	influx_add_host(self, host, wall_ms, cap);
}

static void
influx_group(void *self, const struct influx_group *g, int64_t wall_ms)
{
	influx_add_group(self, wall_ms, g);
}

static void
influx_event(void *self, const struct influx_event *e)
{
	influx_add_event(self, e);
}

static void
influx_instance_app(void *self, const struct influx_app_value *v)
{
	influx_add_instance_app(self, v);
}

static void
influx_poll_op(void *self, int64_t now_ms)
{
	influx_poll(self, now_ms);
}

static const struct sink_ops influx_ops = {
	.name = "influxdb",
	.instance = influx_instance,
	.host = influx_host,
	.group = influx_group,
	.event = influx_event,
	.instance_app = influx_instance_app,
	.poll = influx_poll_op,
};

struct sink
sink_influx(struct influx *ix)
{
	return (struct sink){&influx_ops, ix};
}

void
sink_feed(const struct sink *sinks, size_t n,
	  const struct collect_host_result *r, int64_t wall_now_ms,
	  int64_t mono_now_ms)
{
	const char *host = host_name(r->host);
	int64_t wall = wall_now_ms - (mono_now_ms - r->t_ms);

	metrics_update_host(r);
	if (!r->ok)
		return;
	for (size_t s = 0; s < n; s++) {
		const struct sink_ops *ops = sinks[s].ops;

		for (size_t i = 0; i < r->n_inst; i++)
			ops->instance(sinks[s].self, &r->inst[i], host, r->t_ms,
				      wall);
		if (ops->gone)
			for (size_t i = 0; i < r->n_gone; i++)
				ops->gone(sinks[s].self, r->gone[i]);
		if (ops->host)
			ops->host(sinks[s].self, host, wall, &r->cap);
	}
}

void
sink_group(const struct sink *sinks, size_t n, const struct influx_group *g,
	   int64_t wall_ms)
{
	for (size_t s = 0; s < n; s++)
		if (sinks[s].ops->group)
			sinks[s].ops->group(sinks[s].self, g, wall_ms);
}

void
sink_instance_app(const struct sink *sinks, size_t n,
		  const struct influx_app_value *v)
{
	for (size_t s = 0; s < n; s++)
		if (sinks[s].ops->instance_app)
			sinks[s].ops->instance_app(sinks[s].self, v);
}

void
sink_event(const struct sink *sinks, size_t n, const struct influx_event *e)
{
	for (size_t s = 0; s < n; s++)
		if (sinks[s].ops->event)
			sinks[s].ops->event(sinks[s].self, e);
}

struct drain_ctx {
	const struct sink *sinks;
	size_t n;
};

static void
drain_one(const struct event_tapped *t, void *arg)
{
	const struct drain_ctx *c = arg;
	struct influx_event e = {
		.wall_ms = t->wall_ms,
		.group = t->group,
		.instance = t->instance,
		.kind = t->kind,
		.level = log_level_name(event_level(t->kind)),
		.text = t->message,
	};

	sink_event(c->sinks, c->n, &e);
}

unsigned long
sink_events_drain(const struct sink *sinks, size_t n)
{
	struct drain_ctx c = {sinks, n};

	return event_tap_drain(drain_one, &c);
}

void
sink_poll(const struct sink *sinks, size_t n, int64_t now_ms)
{
	for (size_t s = 0; s < n; s++)
		if (sinks[s].ops->poll)
			sinks[s].ops->poll(sinks[s].self, now_ms);
}
