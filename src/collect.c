/*
 * collect.c: one bulk stats call per host and tick, a per-UUID cache of
 * the facts from domain XML, rates from deltas, host capacity, and a
 * worker thread per host (see collect.h). This file: the collector, its
 * threads and the stats groups to ask for; a host's round is in
 * collect_round.c, the parsing of libvirt's answers in collect_parse.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/virterror.h>
#include <libxml/parser.h>

#include "collect_int.h"
#include "config.h"
#include "log.h"
#include "util.h"

LOG_TAG("collect");

void
collect_opts_defaults(struct collect_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->capacity_period_ms = 60000;
	o->stats_period_s = 10;
	o->threads = true;
}

static void
on_domain_event(struct host *h, const unsigned char *uuid, int event,
		void *opaque)
{
	struct chost *ch = opaque;

	(void)h;
	pthread_mutex_lock(&ch->lock);
	if (event < 0) {
		ch->forget_all = true;
	} else {
		if (ch->n_inval == ch->a_inval) {
			ch->a_inval = ch->a_inval ? ch->a_inval * 2 : 16;
			ch->inval = xreallocarray(ch->inval, ch->a_inval,
						  sizeof(*ch->inval));
		}
		memcpy(ch->inval[ch->n_inval++], uuid, VIR_UUID_BUFLEN);
	}
	pthread_mutex_unlock(&ch->lock);
}

static void *
worker_main(void *arg)
{
	struct chost *ch = arg;

	pthread_mutex_lock(&ch->lock);
	for (;;) {
		while (!ch->kick && !ch->stop)
			pthread_cond_wait(&ch->cond, &ch->lock);
		if (ch->stop)
			break;
		ch->kick = false;
		pthread_mutex_unlock(&ch->lock);
		collect_host_round(ch, ch->kick_ms);
		pthread_mutex_lock(&ch->lock);
	}
	pthread_mutex_unlock(&ch->lock);
	return NULL;
}

/* ---- the collector ---------------------------------------------------- */

/* opts.stats -> the groups of the bulk call */
static unsigned
stats_mask(unsigned stats)
{
	if (stats == 0)
		return COLLECT_STATS;
	return (stats & COLLECT_STATS) | VIR_DOMAIN_STATS_STATE;
}

/* Log the groups of the bulk call by libvirt's names for them (as
 * `virsh domstats` takes them): what the collector costs libvirtd and
 * the QEMU processes depends on them (bench/scale/run.sh reads it). */
static void
log_stats(unsigned mask, const char *when)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{VIR_DOMAIN_STATS_STATE, "state"},
		{VIR_DOMAIN_STATS_CPU_TOTAL, "cpu-total"},
		{VIR_DOMAIN_STATS_BALLOON, "balloon"},
		{VIR_DOMAIN_STATS_INTERFACE, "interface"},
		{VIR_DOMAIN_STATS_BLOCK, "block"},
	};
	char buf[64] = "";

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (mask & names[i].bit)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
				 "%s%s", buf[0] ? "," : "", names[i].name);
	log_info("stats groups asked of libvirt%s: %s", when, buf);
}

void
collect_set_stats(struct collector *c, unsigned stats)
{
	unsigned mask = stats_mask(stats), was;

	pthread_mutex_lock(&c->lock);
	was = c->stats;
	c->stats = mask;
	pthread_mutex_unlock(&c->lock);
	if (mask != was)
		log_stats(mask, " from the next round on");
}

static unsigned
stats_for_metric(enum policy_metric m)
{
	switch (m) {
	case POLICY_METRIC_CPU:
		return VIR_DOMAIN_STATS_CPU_TOTAL;
	case POLICY_METRIC_MEMORY:
		return VIR_DOMAIN_STATS_BALLOON;
	case POLICY_METRIC_DISK_IOPS:
	case POLICY_METRIC_DISK_BYTES:
		return VIR_DOMAIN_STATS_BLOCK;
	case POLICY_METRIC_NET_BYTES:
		return VIR_DOMAIN_STATS_INTERFACE;
	case POLICY_METRIC_LAST:
		break;
	}
	return 0;
}

unsigned
collect_stats_needed(const struct config *cfg)
{
	unsigned stats = VIR_DOMAIN_STATS_STATE;

	if (cfg->daemon.metrics.influxdb.present)
		return COLLECT_STATS;
	for (unsigned g = 0; g < cfg->n_groups; g++) {
		const struct policy_params *p = &cfg->groups[g].policy;

		for (int m = 0; m < POLICY_METRIC_LAST; m++)
			if (p->target[m] > 0)
				stats |= stats_for_metric((enum policy_metric)m);
		for (unsigned i = 0; i < p->n_steps; i++)
			stats |= stats_for_metric(p->steps[i].metric);
	}
	return stats;
}

unsigned
collect_stats_metrics(unsigned stats)
{
	unsigned groups = stats_mask(stats), m = 0;

	if (groups & VIR_DOMAIN_STATS_CPU_TOTAL)
		m |= 1u << RATES_CPU;
	if (groups & VIR_DOMAIN_STATS_BALLOON)
		m |= 1u << RATES_MEM;
	if (groups & VIR_DOMAIN_STATS_BLOCK)
		m |= 1u << RATES_DISK_RD_BPS | 1u << RATES_DISK_WR_BPS |
		     1u << RATES_DISK_RD_IOPS | 1u << RATES_DISK_WR_IOPS;
	if (groups & VIR_DOMAIN_STATS_INTERFACE)
		m |= 1u << RATES_NET_RX_BPS | 1u << RATES_NET_TX_BPS;
	return m;
}

struct collector *
collector_new(const struct collect_opts *opts)
{
	struct collector *c = xcalloc(1, sizeof(*c));

	if (opts)
		c->opts = *opts;
	else
		collect_opts_defaults(&c->opts);
	if (c->opts.name_prefix)
		c->name_prefix = xstrdup(c->opts.name_prefix);
	c->opts.name_prefix = c->name_prefix;
	if (c->opts.owner)
		c->owner = xstrdup(c->opts.owner);
	c->opts.owner = c->owner;
	if (c->opts.capacity_period_ms < 0)
		c->opts.capacity_period_ms = 0;
	c->stats = stats_mask(c->opts.stats);
	log_stats(c->stats, "");
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->done, NULL);
	xmlInitParser();
	return c;
}

void
collector_add_host(struct collector *c, struct host *h)
{
	struct chost *ch = xcalloc(1, sizeof(*ch));

	ch->c = c;
	ch->h = h;
	pthread_mutex_init(&ch->lock, NULL);
	pthread_cond_init(&ch->cond, NULL);
	ch->work = xcalloc(1, sizeof(*ch->work));
	ch->pub = xcalloc(1, sizeof(*ch->pub));
	host_set_domain_event_cb(h, on_domain_event, ch);
	if (c->opts.threads) {
		if (pthread_create(&ch->thread, NULL, worker_main, ch) != 0)
			fatal("cannot start a collector thread");
		ch->thread_started = true;
	}
	c->hosts = xreallocarray(c->hosts, c->n_hosts + 1, sizeof(*c->hosts));
	c->hosts[c->n_hosts++] = ch;
}

/* A host that is down gets a result saying so (ok false, no instances),
 * unless a round is running or a result is still waiting to be taken. */
static void
publish_down(struct chost *ch, int64_t now_ms)
{
	pthread_mutex_lock(&ch->lock);
	if (!ch->busy && !ch->pub_new) {
		struct result *r = ch->pub;

		collect_result_reset(r);
		r->pub.host = ch->h;
		r->pub.ok = false;
		r->pub.t_ms = now_ms;
		r->pub.rounds = ch->rounds;
		r->pub.errors = ch->errors;
		r->pub.calls_total = ch->calls_total;
		collect_result_finish(r);
		ch->pub_new = true;
	}
	pthread_mutex_unlock(&ch->lock);
}

void
collect_tick(struct collector *c, int64_t now_ms)
{
	for (size_t i = 0; i < c->n_hosts; i++) {
		struct chost *ch = c->hosts[i];
		bool up = host_tick(ch->h, now_ms);

		if (!up) {
			publish_down(ch, now_ms);
			continue;
		}
		if (!c->opts.threads) {
			collect_host_round(ch, now_ms);
			continue;
		}
		pthread_mutex_lock(&ch->lock);
		if (!ch->busy) {
			ch->busy = true;
			ch->kick = true;
			ch->kick_ms = now_ms;
			pthread_cond_signal(&ch->cond);
		}
		pthread_mutex_unlock(&ch->lock);
	}
}

/* collect_int.h */
bool
collect_running(struct collector *c, bool or_untaken)
{
	bool busy = false;

	for (size_t i = 0; i < c->n_hosts && !busy; i++) {
		pthread_mutex_lock(&c->hosts[i]->lock);
		busy = c->hosts[i]->busy || (or_untaken && c->hosts[i]->pub_new);
		pthread_mutex_unlock(&c->hosts[i]->lock);
	}
	return busy;
}

bool
collect_pending(struct collector *c)
{
	return collect_running(c, true);
}

bool
collect_wait(struct collector *c, int64_t timeout_ms)
{
	int64_t end = util_now_ms() + timeout_ms;
	bool all = false;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		int64_t left;
		struct timespec ts;

		all = true;
		for (size_t i = 0; i < c->n_hosts && all; i++) {
			pthread_mutex_lock(&c->hosts[i]->lock);
			all = !c->hosts[i]->busy;
			pthread_mutex_unlock(&c->hosts[i]->lock);
		}
		left = end - util_now_ms();
		if (all || left <= 0)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		if (left > 100)
			left = 100; /* re-check even if a signal is missed */
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->done, &c->lock, &ts);
	}
	pthread_mutex_unlock(&c->lock);
	return all;
}

void
collect_take(struct collector *c,
	     void (*fn)(const struct collect_host_result *r, void *opaque),
	     void *opaque)
{
	for (size_t i = 0; i < c->n_hosts; i++) {
		struct chost *ch = c->hosts[i];

		pthread_mutex_lock(&ch->lock);
		if (ch->pub_new) {
			ch->pub_new = false;
			fn(&ch->pub->pub, opaque);
		}
		pthread_mutex_unlock(&ch->lock);
	}
}

unsigned long
collect_total_calls(struct collector *c)
{
	unsigned long n;

	pthread_mutex_lock(&c->lock);
	n = c->total_calls;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void
collector_free(struct collector *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_hosts; i++) {
		struct chost *ch = c->hosts[i];

		host_set_domain_event_cb(ch->h, NULL, NULL);
		if (ch->thread_started) {
			pthread_mutex_lock(&ch->lock);
			ch->stop = true;
			pthread_cond_signal(&ch->cond);
			pthread_mutex_unlock(&ch->lock);
			pthread_join(ch->thread, NULL);
		}
		collect_cache_release(&ch->cache);
		collect_result_release(ch->work);
		collect_result_release(ch->pub);
		free(ch->work);
		free(ch->pub);
		free(ch->inval);
		pthread_mutex_destroy(&ch->lock);
		pthread_cond_destroy(&ch->cond);
		free(ch);
	}
	free(c->hosts);
	free(c->name_prefix);
	free(c->owner);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->done);
	free(c);
}

int
collect_set_stats_period(struct host *h, const unsigned char uuid[VIR_UUID_BUFLEN],
			 int period_s)
{
	virConnectPtr conn = host_conn(h);
	virDomainPtr dom = NULL;
	int rc = -1;

	if (!conn) {
		err_set("%s: not connected", host_name(h));
		return -1;
	}
	dom = virDomainLookupByUUID(conn, uuid);
	if (!dom) {
		err_set("%s: no such domain: %s", host_name(h),
			virGetLastErrorMessage());
		goto cleanup;
	}
	if (virDomainSetMemoryStatsPeriod(dom, period_s,
					  VIR_DOMAIN_AFFECT_LIVE) < 0) {
		err_set("%s: cannot set the memory stats period: %s",
			host_name(h), virGetLastErrorMessage());
		goto cleanup;
	}
	rc = 0;
cleanup:
	if (dom)
		virDomainFree(dom);
	virConnectClose(conn);
	return rc;
}
