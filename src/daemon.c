/*
 * daemon.c: `virt-autoscaler run`. After startup.c has set the pieces up
 * and recovered what a previous run left half done, one loop on
 * CLOCK_MONOTONIC with per-task periods (bgpd's timer.c, Redis's
 * serverCron): host connections, collection, operators' commands,
 * heartbeat flush, job results, decisions per group (scaler.c),
 * reconciliation, housekeeping, the snapshot for the HTTP threads,
 * systemd watchdog. The lease is renewed by a thread of its own
 * (lease.c); the loop checks that it is still valid before each step
 * that acts.
 *
 * Signals are blocked in every thread and taken synchronously by the loop
 * (sigtimedwait): SIGTERM/SIGINT stop, SIGHUP reloads the configuration,
 * SIGUSR1 wakes the loop for a command (control.h).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#include "commands.h"
#include "daemon_int.h"
#include "members.h"
#include "groups.h"
#include "leader.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "reconcile.h"
#include "startup.h"
#include "util.h"

LOG_TAG("daemon");

#define RECONCILE_PERIOD_MS 30000
#define HOUSEKEEPING_PERIOD_MS (60 * 60 * 1000)
#define PRUNE_PERIOD_MS 60000 /* the built-in store's prune (daemon_loop) */

static struct log_complain notify_complain = LOG_COMPLAIN_INIT;

/* Tell the service manager (main thread only). */
static void
notify(const char *state)
{
	if (notify_send(state) < 0)
		log_complain(&notify_complain, LOG_LEVEL_WARN, log_tag,
			     "cannot notify the service manager: %s",
			     err_msg());
}

struct dgroup *
daemon_group(struct daemon *d, const char *name)
{
	for (unsigned i = 0; i < d->n_groups; i++)
		if (strcmp(d->groups[i].cfg->name, name) == 0)
			return &d->groups[i];
	return NULL;
}

struct dhost *
daemon_host(struct daemon *d, const char *name)
{
	for (unsigned i = 0; i < d->n_hosts; i++)
		if (strcmp(d->hosts[i].cfg->name, name) == 0)
			return &d->hosts[i];
	return NULL;
}








/* A host still connecting for the first time after the start is "not
 * measured yet", not down, for at most this long. */
#define HOST_FIRST_CONTACT_MS 60000

const char *
dhost_state_name(enum dhost_state st)
{
	static const char *const names[DHOST_LAST] = {"unknown", "up", "down"};

	return st < DHOST_LAST ? names[st] : "?";
}

static void
host_set_state(struct dhost *dh, enum dhost_state st, const char *why)
{
	if (dh->state != st)
		dh->state_since_ms = util_wall_ms();
	dh->state = st;
	snprintf(dh->why, sizeof(dh->why), "%s", why ? why : "");
}

/* A round failed or the host is not connected: down, unless it is still
 * being reached for the first time since the start. */
static void
host_round_failed(struct daemon *d, struct dhost *dh)
{
	struct host_counters hc;
	char why[sizeof(dh->why)];

	host_get_counters(dh->h, &hc);
	if (dh->state == DHOST_UNKNOWN && !host_is_up(dh->h) && hc.errors == 0 &&
	    util_now_ms() - d->started_ms < HOST_FIRST_CONTACT_MS)
		return;
	host_last_error(dh->h, why, sizeof(why));
	if (host_is_up(dh->h))
		snprintf(why, sizeof(why), "the statistics call failed");
	else if (!why[0])
		snprintf(why, sizeof(why), "not connected");
	host_set_state(dh, DHOST_DOWN, why);
}

void
daemon_host_events(struct daemon *d)
{
	for (unsigned i = 0; i < d->n_hosts; i++) {
		struct dhost *dh = &d->hosts[i];

		if (dh->state == dh->said || dh->state == DHOST_UNKNOWN)
			continue;
		if (dh->state == DHOST_DOWN)
			event_record(d->store, NULL, NULL, "host_down", NULL,
				     "host %s is down: %s", dh->cfg->name, dh->why);
		else if (dh->said == DHOST_DOWN)
			event_record(d->store, NULL, NULL, "host_up", NULL,
				     "host %s is up again", dh->cfg->name);
		dh->said = dh->state;
	}
}

/* The collector's results: metrics into the store, capacity per host. */
static void
on_collect(const struct collect_host_result *r, void *opaque)
{
	struct daemon *d = opaque;
	struct dhost *dh = NULL;

	for (unsigned i = 0; i < d->n_hosts; i++)
		if (d->hosts[i].h == r->host)
			dh = &d->hosts[i];
	if (!dh)
		return;
	/* call and error counters live in metrics.c (metrics_update_host) */
	if (!r->ok) {
		metrics_host_down(dh->cfg->name);
		host_round_failed(d, dh);
		return;
	}
	host_set_state(dh, DHOST_UP, NULL);
	dh->collected_ms = r->t_ms;
	dh->cap = r->cap;
	dh->cap_ok = true;
	/* the built-in store, InfluxDB when configured, and /metrics */
	sink_feed(d->sinks, d->n_sinks, r, util_wall_ms(), util_now_ms());
}



/*
 * Delete history older than daemon.event_retention: events, and instances
 * removed (state gone) before then with their closed journal entries. Runs
 * right after start and then hourly; a failure is retried the next hour.
 * A removed instance's row is what lets reconciliation delete a volume it
 * left behind, so such a volume outliving the retention is left alone.
 */
static void
housekeeping(struct daemon *d)
{
	int64_t keep = d->cfg->daemon.event_retention_ms;
	int64_t before, events = 0, instances = 0;
	char *text;

	predict_prune(d);
	if (keep <= 0)
		return;
	before = util_wall_ms() - keep;
	if (store_event_prune(d->store, before, &events) != STORE_OK)
		log_warn("cannot prune old events (retried in an hour): %s",
			 err_msg());
	if (store_instance_purge(d->store, before, &instances) != STORE_OK)
		log_warn("cannot purge removed instances (retried in an hour): %s",
			 err_msg());
	if (events == 0 && instances == 0)
		return;
	text = util_format_duration(keep);
	log_info("history older than %s deleted: %lld events, %lld removed instances",
		 text, (long long)events, (long long)instances);
	free(text);
}


/* VA_TEST_STALL_MS: block the loop once, as a step waiting on a host that
 * does not answer would; the lease's thread must keep the lease. */
static void
test_stall(struct daemon *d)
{
	int64_t t0 = util_now_ms(), until;
	uint64_t renewals = lease_renewals(d->lease);
	struct timespec ts;

	log_warn("VA_TEST_STALL_MS=%" PRId64 ": the loop stalls", d->stall_ms);
	ts.tv_sec = d->stall_ms / 1000;
	ts.tv_nsec = (d->stall_ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	lease_status(d->lease, util_now_ms(), &until);
	log_warn("VA_TEST_STALL_MS: the loop stalled %" PRId64 " ms; the lease was renewed %" PRIu64 " times meanwhile and is valid for another %" PRId64 " ms",
		 util_now_ms() - t0, lease_renewals(d->lease) - renewals,
		 until - util_now_ms());
	d->stall_ms = 0;
}

/*
 * SIGHUP: swap in a new configuration if it is valid and reloadable. The
 * new groups are built beside the old ones (file reads, placement
 * plugins, store writes) and swapped in at once; what the loop knew of
 * each group carries over, so the API's snapshot never shows a group
 * afresh. No lock: no other thread reads the groups.
 */
/* The configuration's warnings (config.h), one log line each. */
static void
log_config_warnings(const struct config *cfg)
{
	const char *p = cfg->warnings;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);

		log_warn("%.*s", len, p);
		p += len + (nl ? 1 : 0);
	}
}

static void
daemon_reload(struct daemon *d)
{
	struct strbuf errors = STRBUF_INIT, why = STRBUF_INIT;
	struct config *ncfg, *ocfg = d->cfg;
	struct dgroup *old = d->groups, *groups;
	unsigned n_old = d->n_groups, n;
	char *token = NULL;
	int64_t gen;

	log_info("SIGHUP: reloading %s", global_opts.config_path);
	{
		/* Type=notify-reload wants the time of the reload request
		 * with it (sd_notify(3)) */
		char msg[64];

		snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRId64,
			 util_now_us());
		notify(msg);
	}
	ncfg = config_load(global_opts.config_path, &errors);
	if (!ncfg) {
		log_error("new configuration rejected, keeping the old one:\n%s",
			  strbuf_str(&errors));
		goto out;
	}
	log_config_warnings(ncfg);
	if (config_reload_check(ocfg, ncfg, &why) != 0) {
		log_error("new configuration changes settings that need a restart, keeping the old one:\n%s",
			  strbuf_str(&why));
		config_free(ncfg);
		goto out;
	}
	/* The admin token is read again: rotating it is a reload. */
	if (ncfg->daemon.admin_token.source != CONFIG_SECRET_NONE &&
	    config_secret_read(&ncfg->daemon.admin_token, &token) != 0) {
		log_error("new configuration rejected, keeping the old one: daemon.admin_token: %s",
			  err_msg());
		config_free(ncfg);
		goto out;
	}
	if (store_config_gen_bump(d->store, &gen) != STORE_OK) {
		log_error("new configuration not applied: %s", err_msg());
		config_free(ncfg);
		goto out;
	}
	if (groups_setup(d, ncfg, gen, old, n_old, &groups, &n) != 0) {
		log_error("new configuration rejected, keeping the old one: %s",
			  err_msg());
		config_free(ncfg);
		goto out;
	}
	d->cfg = ncfg;
	d->config_gen = gen;
	if (d->admin_token) {
		explicit_bzero(d->admin_token, strlen(d->admin_token));
		free(d->admin_token);
	}
	d->admin_token = token;
	token = NULL;
	http_set_admin_token(d->http, d->admin_token);
	d->groups = groups;
	collect_set_stats(d->collector, collect_stats_needed(ncfg));
	mstore_set_metrics(d->mstore,
			   collect_stats_metrics(collect_stats_needed(ncfg)));
	d->n_groups = n;
	/* Hosts cannot change on reload (config_reload_check): re-point. */
	for (unsigned i = 0; i < d->n_hosts; i++)
		d->hosts[i].cfg = config_host_find(ncfg, d->hosts[i].cfg->name);
	for (unsigned i = 0; i < n_old; i++)
		if (!daemon_group(d, old[i].cfg->name))
			log_warn("group %s is no longer configured: its instances are left as they are",
				 old[i].cfg->name);
	for (unsigned i = 0; i < n_old; i++)
		group_release(&old[i]);
	free(old);
	log_set_level(ncfg->daemon.log_level);
	log_set_format(ncfg->daemon.log_format);
	config_free(ocfg);
	daemon_publish(d);
	event_record(d->store, NULL, NULL, "reload", NULL,
		     "configuration reloaded (generation %" PRId64 ")",
		     d->config_gen);
out:
	if (token) {
		explicit_bzero(token, strlen(token));
		free(token);
	}
	notify("READY=1");
	strbuf_release(&errors);
	strbuf_release(&why);
}








/* The events recorded since the last turn, as InfluxDB annotations. */
static void
events_to_sinks(struct daemon *d)
{
	unsigned long dropped = sink_events_drain(d->sinks, d->n_sinks);

	if (dropped)
		log_warn("%lu events were not written to InfluxDB: more than %d "
			 "in one turn of the loop", dropped, EVENT_TAP_MAX);
}

void
daemon_wake(void *arg)
{
	const struct daemon *d = arg;

	pthread_kill(d->loop_thread, SIGUSR1);
}

static void
daemon_loop(struct daemon *d)
{
	sigset_t set;
	uint64_t watchdog_us = 0;
	int64_t next_watchdog = 0, next_prune = 0;

	watchdog_us = notify_watchdog_usec();
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	d->next_collect_ms = util_now_ms();
	d->next_reconcile_ms = util_now_ms() + d->reconcile_period_ms;
	notify("READY=1");
	event_record(d->store, NULL, NULL, "start", NULL,
		     "daemon started: %u hosts, %u groups, state %s, listening on %s",
		     d->n_hosts, d->n_groups, store_backend(d->store),
		     d->cfg->daemon.listen);

	while (!d->stop) {
		int64_t now = util_now_ms();
		int64_t start_us = util_now_us();
		int64_t wake;
		struct timespec ts;
		int sig;

		lease_loop_alive(d->lease, now);
		if (leader_check(d) < 0)
			break;
		for (unsigned i = 0; i < d->n_hosts; i++)
			host_tick(d->hosts[i].h, now);
		if (now >= d->next_collect_ms) {
			collect_tick(d->collector, now);
			d->next_collect_ms = now + d->cfg->daemon.interval_ms;
		}
		/* Instances without a sample for the whole retention leave
		 * the built-in store (those the collector saw go are removed
		 * at once, sink.c): a walk of every ring (a cache miss each,
		 * 1-2 ms at 5,000), so once a minute, not each round; such a
		 * ring outlives the retention by at most that minute. */
		if (now >= next_prune) {
			mstore_prune(d->mstore,
				     now - d->cfg->daemon.metrics.retention_ms);
			next_prune = now + PRUNE_PERIOD_MS;
		}
		collect_take(d->collector, on_collect, d);
		events_to_sinks(d);
		sink_poll(d->sinks, d->n_sinks, now);
		/* what acts on the store and the hosts asks the lease first:
		 * a step may have taken longer than the lease */
		if (leader_check(d) > 0) {
			scaler_commands(d, true);
			daemon_flush_heartbeats(d);
			scaler_reap(d);
			daemon_host_events(d);
			scaler_tick(d, now);
		} else {
			scaler_commands(d, false);
		}
		if (leader_check(d) > 0)
			reconciler_tick(d->reconciler, now);
		if (leader_check(d) > 0)
			members_tick(d, now);
		daemon_publish(d);
		if (now >= d->next_reconcile_ms && leader_check(d) > 0) {
			d->next_reconcile_ms = now + d->reconcile_period_ms;
			if (d->stall_ms)
				test_stall(d);
		}
		if (now >= d->next_housekeeping_ms && leader_check(d) > 0) {
			housekeeping(d);
			d->next_housekeeping_ms = now + HOUSEKEEPING_PERIOD_MS;
		}
		if (d->lease_lost)
			break;
		if (watchdog_us && now >= next_watchdog) {
			notify("WATCHDOG=1");
			next_watchdog = now + (int64_t)(watchdog_us / 2000);
		}
		metrics_tick((double)(util_now_us() - start_us) / 1e6);

		/* Sleep until the next task is due, at most a second (the
		 * collector's results and check-ins are picked up then). */
		wake = d->next_collect_ms;
		for (unsigned i = 0; i < d->n_groups; i++)
			if (d->groups[i].next_decide_ms < wake)
				wake = d->groups[i].next_decide_ms;
		wake -= util_now_ms();
		if (wake > 1000)
			wake = 1000;
		if (wake < 10)
			wake = 10;
		ts.tv_sec = wake / 1000;
		ts.tv_nsec = (wake % 1000) * 1000000;
		sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			log_info("%s: stopping after the actions in flight",
				 sig == SIGTERM ? "SIGTERM" : "SIGINT");
			d->stop = 1;
		} else if (sig == SIGHUP) {
			daemon_reload(d);
		}
		/* SIGUSR1: a command came (control.h) or a collector round
		 * finished; the next turn takes it */
	}
	notify("STOPPING=1");
	/* deposed: the fence would refuse these writes (warnings only) */
	if (d->lease_lost)
		return;
	daemon_flush_heartbeats(d);
	event_record(d->store, NULL, NULL, "stop", NULL, "daemon stopping");
}

int
cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct strbuf errors = STRBUF_INIT;
	struct daemon d;
	sigset_t set;
	int opt, rc = 1;

	while ((opt = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			global_opts.config_path = optarg;
			break;
		case 'h':
			printf("usage: virt-autoscaler run [-c FILE]\n");
			return 0;
		default:
			fprintf(stderr, "usage: virt-autoscaler run [-c FILE]\n");
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: virt-autoscaler run [-c FILE]\n");
		return 2;
	}
#ifdef __GLIBC__
	/* glibc gives each thread that allocates an arena of its own (up to
	 * 8 per core), and each keeps the pages it once needed: with a
	 * dozen threads that mostly sleep, that is a MiB or more of resident
	 * memory for no gain (bench/README.md, "Memory of the whole daemon").
	 * Two arenas: the collector's large per-round allocations do not
	 * contend with the loop, and small ones go through the per-thread
	 * cache anyway. MALLOC_ARENA_MAX in the environment still wins. */
	if (!getenv("MALLOC_ARENA_MAX"))
		mallopt(M_ARENA_MAX, 2);
#endif
	/* Block the signals the loop takes, before any thread starts. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&d, 0, sizeof(d));
	d.loop_thread = pthread_self();
	d.started_ms = util_now_ms();
	d.ctl = control_new(daemon_wake, &d);
	d.crash_at = getenv("VA_TEST_CRASH_AT");
	d.reconcile_period_ms = RECONCILE_PERIOD_MS;
	{
		const char *p = getenv("VA_TEST_RECONCILE_MS");
		int64_t v;

		if (p && util_parse_int64(p, 100, RECONCILE_PERIOD_MS, &v) == 0)
			d.reconcile_period_ms = v;
		p = getenv("VA_TEST_STALL_MS");
		if (p && util_parse_int64(p, 1, 600000, &v) == 0)
			d.stall_ms = v;
		/* a provisioning's deadline after its base image (jobs.h) */
		p = getenv("VA_TEST_PROVISION_DEADLINE_MS");
		if (p && util_parse_int64(p, 100, JOBS_DEADLINE_MS, &v) == 0) {
			d.provision_deadline_ms = v;
			log_warn("VA_TEST_PROVISION_DEADLINE_MS=%" PRId64 ": a provisioning stops after %" PRId64 " ms past its base image",
				 v, v);
		}
	}
	d.cfg = config_load(global_opts.config_path, &errors);
	if (!d.cfg) {
		fprintf(stderr, "%s", strbuf_str(&errors));
		strbuf_release(&errors);
		control_free(d.ctl);
		return 1;
	}
	strbuf_release(&errors);
	if (log_get_level() != LOG_LEVEL_DEBUG)
		log_set_level(d.cfg->daemon.log_level);
	log_set_format(d.cfg->daemon.log_format);
	log_config_warnings(d.cfg);
	if (daemon_setup(&d) != 0) {
		log_error("%s", err_msg());
		goto out;
	}
	if (!d.stop)
		daemon_loop(&d);
	/* Deposed: exit non-zero, so that a supervisor (Restart=on-failure)
	 * starts it again as the standby. */
	rc = d.lease_lost ? 1 : 0;
out:
	daemon_free(&d);
	return rc;
}
