/*
 * startup.c: everything up to the daemon's first tick (state store and
 * lease, hosts, collector, metrics stores, groups, workers, recovery, the
 * HTTP API) and the teardown after its last.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
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
#include "reconcile.h"
#include "startup.h"
#include "util.h"

LOG_TAG("daemon");

#define WORKER_THREADS 4
/* SIGTERM: the jobs in flight get this long, then the journal has them */
#define STOP_WAIT_MS 1000

static void
hosts_setup(struct daemon *d)
{
	d->hosts = xcalloc(d->cfg->n_hosts, sizeof(*d->hosts));
	d->n_hosts = d->cfg->n_hosts;
	for (unsigned i = 0; i < d->cfg->n_hosts; i++) {
		d->hosts[i].cfg = &d->cfg->hosts[i];
		d->hosts[i].h = host_new(d->cfg->hosts[i].name,
					 d->cfg->hosts[i].uri);
		collector_add_host(d->collector, d->hosts[i].h);
		host_connect(d->hosts[i].h);
	}
}

/* The libvirt side of a stop, in a thread of its own (see daemon_free);
 * owns what it is given. */
struct teardown {
	struct collector *collector;
	struct host **hosts;
	unsigned n_hosts;
};

static void *
hosts_teardown(void *arg)
{
	struct teardown *t = arg;

	if (t->collector)
		collector_free(t->collector);
	for (unsigned i = 0; i < t->n_hosts; i++)
		host_free(t->hosts[i]);
	free(t->hosts);
	free(t);
	return NULL;
}

/*
 * Closing a connection is a call to its host: one that stopped answering
 * holds it until keepalive gives up (about 20 s) or for good. So the
 * hosts are let go in a thread, given STOP_WAIT_MS, and otherwise left to
 * the process's exit. True when they were closed.
 */
static bool
hosts_release(struct daemon *d)
{
	struct teardown *td = xcalloc(1, sizeof(*td));
	struct timespec until;
	pthread_t t;
	int rc;

	td->collector = d->collector;
	td->hosts = xcalloc(d->n_hosts + 1, sizeof(*td->hosts));
	for (unsigned i = 0; i < d->n_hosts; i++)
		td->hosts[i] = d->hosts[i].h;
	td->n_hosts = d->n_hosts;
	d->collector = NULL;
	if (pthread_create(&t, NULL, hosts_teardown, td) != 0) {
		hosts_teardown(td);
		return true;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += STOP_WAIT_MS / 1000 + 1;
	rc = pthread_timedjoin_np(t, NULL, &until);
	if (rc == 0)
		return true;
	log_warn("a host does not answer: not waiting for its connections to close");
	pthread_detach(t);
	return false;
}

static int
influx_setup(struct daemon *d)
{
	const struct config_influxdb *ic = &d->cfg->daemon.metrics.influxdb;
	struct influx_opts o;
	char *password = NULL;

	memset(&o, 0, sizeof(o));
	if (ic->password.source != CONFIG_SECRET_NONE &&
	    config_secret_read(&ic->password, &password) != 0) {
		err_prefix("daemon.metrics.influxdb.password");
		return -1;
	}
	o.url = ic->url;
	o.database = ic->database;
	o.username = ic->username;
	o.password = password;
	o.max_points = (size_t)ic->buffer;
	o.batch_points = (size_t)ic->batch;
	o.timeout_ms = ic->timeout_ms;
	d->influx = influx_new(&o);
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	if (!d->influx) {
		err_prefix("InfluxDB %s", ic->url);
		return -1;
	}
	d->sinks[d->n_sinks++] = sink_influx(d->influx);
	event_tap_start(EVENT_TAP_MAX); /* events as annotations */
	log_info("metrics also go to InfluxDB at %s, database %s", ic->url,
		 ic->database);
	return 0;
}

static int
http_setup(struct daemon *d)
{
	const struct config_daemon *dc = &d->cfg->daemon;
	struct http_options o;

	memset(&o, 0, sizeof(o));
	o.listen = dc->listen;
	if (dc->tls.present) {
		o.tls_cert_path = config_resolve_path(d->cfg, dc->tls.cert);
		o.tls_key_path = config_resolve_path(d->cfg, dc->tls.key);
	}
	o.max_body = dc->http.max_body;
	o.max_connections = (unsigned)dc->http.max_connections;
	o.timeout_s = (unsigned)((dc->http.timeout_ms + 999) / 1000);
	o.max_per_address = (unsigned)dc->http.max_per_address;
	o.request_timeout_ms = dc->http.request_timeout_ms;
	o.admin_token = d->admin_token;
	d->http = http_start(&o, &daemon_http_api, d);
	free((char *)o.tls_cert_path);
	free((char *)o.tls_key_path);
	return d->http ? 0 : -1;
}

/* Everything up to the first tick. */
int
daemon_setup(struct daemon *d)
{
	const struct config_daemon *dc = &d->cfg->daemon;
	char *password = NULL;
	struct collect_opts co;
	bool standby = false;

	/* api.c's bounds on what refused guests cost (daemon_int.h) */
	pthread_mutex_init(&d->refuse_lock, NULL);
	d->refuse_known = (struct ratelimit)RATELIMIT_INIT(5, 60000);
	d->refuse_unknown = (struct ratelimit)RATELIMIT_INIT(5, 60000);
	d->refuse_lines = (struct ratelimit)RATELIMIT_INIT(10, 6000);
	d->store_complaint = (struct ratelimit)RATELIMIT_INIT(3, 30000);

	if (dc->state_password.source != CONFIG_SECRET_NONE &&
	    config_secret_read(&dc->state_password, &password) != 0) {
		err_prefix("daemon.state_password");
		return -1;
	}
	if (dc->admin_token.source != CONFIG_SECRET_NONE &&
	    config_secret_read(&dc->admin_token, &d->admin_token) != 0) {
		err_prefix("daemon.admin_token");
		goto fail;
	}
	d->store = store_open(dc->state.url, password);
	if (d->store)
		d->store_http = store_open(dc->state.url, password);
	if (d->store_http)
		d->store_lease = store_open(dc->state.url, password);
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
		password = NULL;
	}
	if (!d->store || !d->store_http || !d->store_lease) {
		err_prefix("state store %s", dc->state.url);
		return -1;
	}
	/* which domains are ours (docs/state.md, "Installation id") */
	if (store_owner_id(d->store, d->owner) != STORE_OK) {
		err_prefix("state store %s", dc->state.url);
		return -1;
	}
	log_info("state store %s: installation id %s", store_backend(d->store),
		 d->owner);
	/* the loop lists every instance every few seconds (scaler, members):
	 * from memory while no instance changed (store.h: the triggers bump
	 * the generation with every change, from any process), and from the
	 * table at least every 10 minutes, a safety net only (at 5,000 a
	 * full read is about 9 ms of the loop: once a minute, it was a tenth
	 * of the loop's busy time); MariaDB: always from the table */
	store_instance_cache(d->store, 10 * 60000);
	if (dc->ha.node_id)
		snprintf(d->holder, sizeof(d->holder), "%s:%ld", dc->ha.node_id,
			 (long)getpid());
	else
		store_lease_holder_default(d->holder, sizeof(d->holder));
	if (leader_take(d, &standby) != 0)
		return -1;
	for (unsigned tries = 0; standby && !d->stop; tries++) {
		sigset_t set;
		struct timespec ts = {0, 0};
		int64_t wait = dc->ha.lease_ms / 3;

		/* once, not every retry for as long as the leader lives */
		if (tries == 0)
			log_info("standby: the lease is held by another daemon; retrying every %" PRId64 " ms",
				 wait);
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		ts.tv_sec = wait / 1000;
		ts.tv_nsec = (wait % 1000) * 1000000;
		if (sigtimedwait(&set, NULL, &ts) > 0) {
			d->stop = 1;
			return 0;
		}
		if (leader_take(d, &standby) != 0)
			return -1;
	}
	log_info("holding the lease as %s (epoch %" PRId64 ")", d->holder,
		 d->epoch);
	/* a new configuration generation for this start (docs/state.md) */
	if (store_config_gen_bump(d->store, &d->config_gen) != STORE_OK) {
		err_prefix("state store %s", dc->state.url);
		return -1;
	}

	if (host_events_start() != 0)
		return -1;
	collect_opts_defaults(&co);
	co.threads = true;
	co.stats_period_s = 5;
	co.owner = d->owner;
	co.stats = collect_stats_needed(d->cfg);
	/* a decision waiting for the round in flight (scaler_tick) is
	 * taken as soon as its result is */
	co.on_result = daemon_wake;
	co.on_result_arg = d;
	d->collector = collector_new(&co);
	d->mstore = mstore_new(dc->metrics.retention_ms, dc->interval_ms);
	d->appm = appm_new();
	mstore_set_metrics(d->mstore, collect_stats_metrics(co.stats));
	d->sinks[d->n_sinks++] = sink_mstore(d->mstore);
	if (dc->metrics.influxdb.present && influx_setup(d) != 0)
		return -1;
	hosts_setup(d);
	if (groups_setup(d, d->cfg, d->config_gen, NULL, 0, &d->groups,
			 &d->n_groups) != 0)
		return -1;
	{
		struct jobs_env env = {
			.store = d->store,
			.owner = d->owner,
			.crash_at = d->crash_at,
			.deadline_ms = d->provision_deadline_ms,
		};

		d->jobs = jobs_start(&env, WORKER_THREADS);
	}
	d->hooks = hooks_new(2);
	if (!d->hooks)
		return -1;
	/* Give the hosts a moment to connect, so that recovery sees them;
	 * a host that refuses at once is not waited for. */
	for (int64_t deadline = util_now_ms() + 10000; util_now_ms() < deadline;) {
		bool settled = true;

		for (unsigned i = 0; i < d->n_hosts; i++) {
			struct host_counters hc;

			host_tick(d->hosts[i].h, util_now_ms());
			host_get_counters(d->hosts[i].h, &hc);
			if (!host_is_up(d->hosts[i].h) && hc.errors == 0)
				settled = false;
		}
		if (settled)
			break;
		usleep(50000);
	}
	for (unsigned i = 0; i < d->n_hosts; i++) {
		if (!host_is_up(d->hosts[i].h)) {
			char why[512];

			host_last_error(d->hosts[i].h, why, sizeof(why));
			log_warn("host %s is not reachable yet (%s); recovery on it waits",
				 d->hosts[i].cfg->name, why);
		}
	}
	/* starting took a while (hosts): still ours? */
	if (leader_check(d) <= 0) {
		err_set("the lease was %s while starting: another daemon may lead",
			d->lease_lost ? "lost" : "not renewed in time");
		return -1;
	}
	d->reconciler = reconciler_new(d);
	if (reconcile_startup(d) != 0)
		return -1;
	daemon_publish(d);
	if (http_setup(d) != 0)
		return -1;
	return 0;
fail:
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	return -1;
}

void
daemon_free(struct daemon *d)
{
	bool jobs_done = true;

	/* no command or heartbeat is taken from now on */
	if (d->ctl)
		control_close(d->ctl);
	if (d->jobs)
		jobs_done = jobs_stop(d->jobs, STOP_WAIT_MS);
	hooks_free(d->hooks); /* aborts a POST in flight */
	d->hooks = NULL;
	reconciler_free(d->reconciler);
	http_stop(d->http);
	/* threads that close connections or still connect may outlive the
	 * hosts: a moment for them, so that none is inside libvirt while
	 * the process exits (a half-dead host is not waited for) */
	if (hosts_release(d))
		host_threads_wait(1000);
	free(d->hosts);
	for (unsigned i = 0; i < d->n_groups; i++)
		group_release(&d->groups[i]);
	free(d->groups);
	if (d->influx) {
		sink_events_drain(d->sinks, d->n_sinks);
		event_tap_stop();
		influx_flush(d->influx, 1000);
		influx_free(d->influx);
	}
	mstore_free(d->mstore);
	appm_free(d->appm);
	d->appm = NULL;
	/* the lease last: the workers and HTTP threads have stopped acting.
	 * Jobs still running keep it until it expires: whoever takes over
	 * must not act beside them. */
	lease_stop(d->lease, !d->lease_lost && jobs_done);
	store_close(d->store_lease);
	store_close(d->store_http);
	if (jobs_done)
		store_close(d->store);
	if (d->admin_token) {
		explicit_bzero(d->admin_token, strlen(d->admin_token));
		free(d->admin_token);
	}
	members_free(d->members);
	control_free(d->ctl);
	xrc_put(d->ready);
	config_free(d->cfg);
}
