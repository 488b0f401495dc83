/*
 * daemon.c: `virt-autoscaler run`. Sets up the pieces (state store and
 * lease, hosts, collector, metrics store, HTTP API, worker pool), recovers
 * what a previous run left half done, then runs one loop on
 * CLOCK_MONOTONIC with per-task periods (bgpd's timer.c, Redis's
 * serverCron): host connections, collection, heartbeat flush, decisions
 * per group, reconciliation, systemd watchdog. The lease is renewed by a
 * thread of its own (lease.c); the loop checks that it is still valid
 * before each step that acts.
 *
 * Signals are blocked in every thread and taken synchronously by the loop
 * (sigtimedwait): SIGTERM/SIGINT stop, SIGHUP reloads the configuration.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "commands.h"
#include "daemon_int.h"
#include "log.h"
#include "metrics.h"
#include "reconcile.h"
#include "util.h"

LOG_TAG("daemon");

#define RECONCILE_PERIOD_MS 30000
#define HOUSEKEEPING_PERIOD_MS (60 * 60 * 1000)
/* HA: a loop silent this long (or 4 leases) lets the lease go (lease.h) */
#define LOOP_STALL_LIMIT_MS 60000
#define SOLO_LEASE_MS 20000
#define WORKER_THREADS 4

static void
notify(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
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

void
daemon_event(struct daemon *d, const char *group, const char *instance,
	     const char *kind, const char *details, const char *fmt, ...)
{
	struct strbuf msg = STRBUF_INIT;
	struct store_event e;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&msg, fmt, ap);
	va_end(ap);
	if (msg.len > STORE_TEXT_MAX) {
		msg.len = STORE_TEXT_MAX;
		msg.buf[msg.len] = '\0';
	}
	memset(&e, 0, sizeof(e));
	e.group = (char *)group;
	e.instance = (char *)instance;
	e.kind = (char *)kind;
	e.message = msg.buf;
	e.details = (char *)details;
	log_info("%s%s%s: %s%s%s", group ? "group " : "", group ? group : "",
		 group ? "" : "daemon", kind, msg.len ? ": " : "",
		 strbuf_str(&msg));
	if (store_event_append(d->store, &e, NULL) != STORE_OK)
		log_warn("cannot record event %s: %s", kind, err_msg());
	strbuf_release(&msg);
}

void
daemon_crash_point(const struct daemon *d, const char *step)
{
	if (d->crash_at && strcmp(d->crash_at, step) == 0) {
		log_warn("VA_TEST_CRASH_AT=%s: killing myself", step);
		raise(SIGKILL);
	}
}

/* Read a file the group names (user-data, network-config, template). */
static int
read_group_file(const struct config *cfg, const char *path, char **out,
		size_t *len)
{
	char *abs;

	*out = NULL;
	*len = 0;
	if (!path)
		return 0;
	abs = config_resolve_path(cfg, path);
	*out = util_read_file(abs, 1 << 20, len);
	free(abs);
	return *out ? 0 : -1;
}

static void
group_release(struct dgroup *g)
{
	policy_state_free(g->pst);
	place_strategy_free(g->place);
	free(g->user_data);
	free(g->network_config);
	free(g->domain_template);
	memset(g, 0, sizeof(*g));
}

/*
 * Build the runtime of one group from its configuration; keeps the
 * policy state of `old` (a reload must not forget cooldowns and windows).
 */
static int
group_init(struct dgroup *g, const struct config *cfg,
	   const struct config_group *gc, struct dgroup *old)
{
	struct va_placement_option *opts = NULL;
	char spec[4200];

	memset(g, 0, sizeof(*g));
	g->cfg = gc;
	if (read_group_file(cfg, gc->cloud_init.user_data, &g->user_data,
			    &g->user_data_len) != 0 ||
	    read_group_file(cfg, gc->cloud_init.network_config,
			    &g->network_config, &g->network_config_len) != 0 ||
	    read_group_file(cfg, gc->template.domain_xml, &g->domain_template,
			    &g->domain_template_len) != 0) {
		err_prefix("group %s", gc->name);
		goto fail;
	}
	switch (gc->placement) {
	case CONFIG_PLACEMENT_ROUND_ROBIN:
		snprintf(spec, sizeof(spec), "round-robin");
		break;
	case CONFIG_PLACEMENT_MOST_FREE:
		snprintf(spec, sizeof(spec), "most-free");
		break;
	case CONFIG_PLACEMENT_FILL_FIRST:
		snprintf(spec, sizeof(spec), "fill-first");
		break;
	default:
		snprintf(spec, sizeof(spec), "plugin:%s", gc->placement_plugin);
	}
	if (gc->placement_options.n) {
		opts = xcalloc(gc->placement_options.n, sizeof(*opts));
		for (unsigned i = 0; i < gc->placement_options.n; i++) {
			opts[i].key = gc->placement_options.v[i].key;
			opts[i].value = gc->placement_options.v[i].value;
		}
	}
	g->place = place_strategy_new(spec, gc->spread, opts,
				      gc->placement_options.n);
	free(opts);
	if (!g->place) {
		err_prefix("group %s: placement", gc->name);
		goto fail;
	}
	if (old) {
		g->pst = old->pst;
		old->pst = NULL;
		g->desired = old->desired;
		g->paused = old->paused;
		g->last = old->last;
		g->have_last = old->have_last;
	} else {
		g->pst = policy_state_new();
		g->desired = gc->desired;
	}
	return 0;
fail:
	group_release(g);
	return -1;
}

/* Groups from d->cfg; the store's desired size and pause flag win. */
static int
groups_setup(struct daemon *d, struct dgroup *old, unsigned n_old)
{
	struct dgroup *groups = xcalloc(d->cfg->n_groups ? d->cfg->n_groups : 1,
					sizeof(*groups));
	int64_t now = util_now_ms();

	for (unsigned i = 0; i < d->cfg->n_groups; i++) {
		const struct config_group *gc = &d->cfg->groups[i];
		struct dgroup *prev = NULL;
		struct store_group sg;
		int rc;

		for (unsigned j = 0; j < n_old; j++)
			if (old[j].cfg && strcmp(old[j].cfg->name, gc->name) == 0)
				prev = &old[j];
		if (group_init(&groups[i], d->cfg, gc, prev) != 0)
			goto fail;
		rc = store_group_get(d->store, gc->name, &sg);
		if (rc == STORE_OK) {
			if (!prev) {
				groups[i].desired = (int)sg.desired;
				groups[i].paused = sg.paused;
				/* A restart must not undo a recent scale-out at
				 * once: seed the windows with the stored size. */
				policy_state_note_change(groups[i].pst, now,
							 (int)sg.desired,
							 (int)sg.desired);
			}
			store_group_release(&sg);
		} else if (rc != STORE_E_NOTFOUND) {
			goto fail;
		}
		if (groups[i].desired < gc->min)
			groups[i].desired = gc->min;
		if (groups[i].desired > gc->max)
			groups[i].desired = gc->max;
		{
			struct store_group put = {
				.name = gc->name,
				.desired = groups[i].desired,
				.paused = groups[i].paused,
				.config_gen = d->config_gen,
			};

			if (store_group_upsert(d->store, &put) != STORE_OK)
				goto fail;
		}
		groups[i].next_decide_ms = now + gc->policy.interval_ms;
	}
	d->groups = groups;
	d->n_groups = d->cfg->n_groups;
	return 0;
fail:
	for (unsigned i = 0; i < d->cfg->n_groups; i++)
		group_release(&groups[i]);
	free(groups);
	return -1;
}

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
		return;
	}
	dh->cap = r->cap;
	dh->cap_ok = true;
	/* the built-in store, InfluxDB when configured, and /metrics */
	sink_feed(d->sinks, d->n_sinks, r, util_wall_ms(), util_now_ms());
	metrics_update_host(r);
}

/* Whether pid runs (a zombie does not: it is dead, merely not reaped). */
static bool
process_alive(pid_t pid)
{
	char path[64], buf[512];
	FILE *f;
	bool alive = true;

	if (kill(pid, 0) != 0 && errno == ESRCH)
		return false;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	if (fgets(buf, sizeof(buf), f)) {
		const char *paren = strrchr(buf, ')');

		if (paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'))
			alive = false;
	}
	fclose(f);
	return alive;
}

static int
lease_take(struct daemon *d, bool *standby)
{
	const struct config_ha *ha = &d->cfg->daemon.ha;
	int64_t ttl = ha->enabled ? ha->lease_ms : SOLO_LEASE_MS;
	struct store_lease l;
	struct lease_opts lo;
	int64_t sent = util_now_ms();
	int rc;

	*standby = false;
	rc = store_lease_acquire(d->store, STORE_LEASE_LEADER, d->holder, ttl,
				 &d->epoch);
	if (rc == STORE_E_HELD &&
	    store_lease_get(d->store, STORE_LEASE_LEADER, &l) == STORE_OK) {
		/* The holder may be a previous run of ours that crashed. */
		char me[256], *colon;
		const char *hc = strrchr(l.holder, ':');

		snprintf(me, sizeof(me), "%s", d->holder);
		colon = strrchr(me, ':');
		if (hc && colon && (size_t)(hc - l.holder) == (size_t)(colon - me) &&
		    strncmp(l.holder, me, (size_t)(colon - me)) == 0) {
			long pid = strtol(hc + 1, NULL, 10);

			if (pid > 0 && pid != (long)getpid() && !process_alive((pid_t)pid)) {
				log_info("lease held by %s, a process of this machine that no longer runs: taking over",
					 l.holder);
				rc = store_lease_take_over(d->store,
							   STORE_LEASE_LEADER,
							   d->holder, l.holder,
							   ttl, &d->epoch);
			}
		}
		if (rc == STORE_E_HELD && !ha->enabled) {
			err_set("the state store is in use by another daemon (%s; its lease expires in %" PRId64 " s unless renewed); stop it, or enable daemon.ha to run several daemons",
				l.holder,
				l.expires_ms > l.now_ms ? (l.expires_ms - l.now_ms + 999) / 1000 : 0);
		}
		store_lease_release_info(&l);
	}
	if (rc == STORE_E_HELD && ha->enabled) {
		*standby = true;
		return 0;
	}
	if (rc != STORE_OK)
		return -1;
	store_fence_set(d->store_http, STORE_LEASE_LEADER, d->epoch);
	/* From here on a thread of its own renews the lease, whatever the
	 * loop does (lease.h). Valid from when the acquisition was sent. */
	memset(&lo, 0, sizeof(lo));
	lo.name = STORE_LEASE_LEADER;
	lo.holder = d->holder;
	lo.epoch = d->epoch;
	lo.ttl_ms = ttl;
	lo.valid_until_ms = sent + ttl;
	lo.give_up_at_expiry = ha->enabled;
	/* With a standby to take over, a loop blocked for good (a libvirt
	 * call that never returns) must not keep the lease alive forever. */
	if (ha->enabled)
		lo.stall_limit_ms = 4 * ttl > LOOP_STALL_LIMIT_MS ? 4 * ttl
								: LOOP_STALL_LIMIT_MS;
	d->lease = lease_start(d->store_lease, &lo);
	d->store_lease = NULL; /* the lease's (closed) even on failure */
	if (!d->lease) {
		store_lease_release(d->store, STORE_LEASE_LEADER, d->holder,
				    d->epoch);
		return -1;
	}
	return 0;
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

/*
 * May the loop act (on hosts, on the store) now? 1 yes: the lease is
 * valid; 0 not now: its thread has not renewed it in time and is still
 * trying; -1 it is lost (the thread said why): the loop stops.
 */
static int
lease_check(struct daemon *d)
{
	int64_t now = util_now_ms(), until;

	switch (lease_status(d->lease, now, &until)) {
	case LEASE_HELD:
		if (d->lease_expired_said) {
			log_info("the lease is valid again: acting again");
			d->lease_expired_said = false;
		}
		return 1;
	case LEASE_EXPIRED:
		if (!d->lease_expired_said) {
			log_warn("the lease expired %" PRId64 " ms ago and is not renewed yet: not acting until it is",
				 now - until);
			d->lease_expired_said = true;
		}
		return 0;
	default:
		d->lease_lost = true;
		return -1;
	}
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

/* SIGHUP: swap in a new configuration if it is valid and reloadable. */
static void
daemon_reload(struct daemon *d)
{
	struct strbuf errors = STRBUF_INIT, why = STRBUF_INIT;
	struct config *ncfg, *ocfg = d->cfg;
	struct dgroup *old = d->groups;
	unsigned n_old = d->n_groups;

	log_info("SIGHUP: reloading %s", global_opts.config_path);
	notify("RELOADING=1");
	ncfg = config_load(global_opts.config_path, &errors);
	if (!ncfg) {
		log_error("new configuration rejected, keeping the old one:\n%s",
			  strbuf_str(&errors));
		goto out;
	}
	if (config_reload_check(ocfg, ncfg, &why) != 0) {
		log_error("new configuration changes settings that need a restart, keeping the old one:\n%s",
			  strbuf_str(&why));
		config_free(ncfg);
		goto out;
	}
	pthread_mutex_lock(&d->lock);
	d->cfg = ncfg;
	d->config_gen++;
	if (groups_setup(d, old, n_old) != 0) {
		d->cfg = ocfg;
		d->config_gen--;
		d->groups = old;
		d->n_groups = n_old;
		pthread_mutex_unlock(&d->lock);
		log_error("new configuration rejected, keeping the old one: %s",
			  err_msg());
		config_free(ncfg);
		goto out;
	}
	/* Hosts cannot change on reload (config_reload_check): re-point. */
	for (unsigned i = 0; i < d->n_hosts; i++)
		d->hosts[i].cfg = config_host_find(ncfg, d->hosts[i].cfg->name);
	pthread_mutex_unlock(&d->lock);
	for (unsigned i = 0; i < n_old; i++)
		if (!daemon_group(d, old[i].cfg->name))
			log_warn("group %s is no longer configured: its instances are left as they are",
				 old[i].cfg->name);
	for (unsigned i = 0; i < n_old; i++)
		group_release(&old[i]);
	free(old);
	log_set_level(ncfg->daemon.log_level);
	config_free(ocfg);
	daemon_event(d, NULL, NULL, "reload", NULL,
		     "configuration reloaded (generation %" PRId64 ")",
		     d->config_gen);
out:
	notify("READY=1");
	strbuf_release(&errors);
	strbuf_release(&why);
}

static void
daemon_free(struct daemon *d)
{
	if (d->jobs)
		jobs_stop(d->jobs);
	reconciler_free(d->reconciler);
	http_stop(d->http);
	if (d->collector)
		collector_free(d->collector);
	for (unsigned i = 0; i < d->n_hosts; i++) {
		host_free(d->hosts[i].h);
	}
	free(d->hosts);
	for (unsigned i = 0; i < d->n_groups; i++)
		group_release(&d->groups[i]);
	free(d->groups);
	if (d->influx) {
		influx_flush(d->influx, 2000);
		influx_free(d->influx);
	}
	mstore_free(d->mstore);
	/* the lease last: the workers and HTTP threads have stopped acting */
	lease_stop(d->lease, !d->lease_lost);
	store_close(d->store_lease);
	store_close(d->store_http);
	store_close(d->store);
	if (d->admin_token) {
		explicit_bzero(d->admin_token, strlen(d->admin_token));
		free(d->admin_token);
	}
	free(d->hb);
	strbuf_release(&d->prom);
	config_free(d->cfg);
	pthread_mutex_destroy(&d->lock);
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
	o.admin_token = d->admin_token;
	d->http = http_start(&o, &daemon_http_api, d);
	free((char *)o.tls_cert_path);
	free((char *)o.tls_key_path);
	return d->http ? 0 : -1;
}

/* Everything up to the first tick. */
static int
daemon_setup(struct daemon *d)
{
	const struct config_daemon *dc = &d->cfg->daemon;
	char *password = NULL;
	struct collect_opts co;
	bool standby = false;

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
	if (dc->ha.node_id)
		snprintf(d->holder, sizeof(d->holder), "%s:%ld", dc->ha.node_id,
			 (long)getpid());
	else
		store_lease_holder_default(d->holder, sizeof(d->holder));
	if (lease_take(d, &standby) != 0)
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
		if (lease_take(d, &standby) != 0)
			return -1;
	}
	log_info("holding the lease as %s (epoch %" PRId64 ")", d->holder,
		 d->epoch);

	if (host_events_start() != 0)
		return -1;
	collect_opts_defaults(&co);
	co.threads = true;
	co.stats_period_s = 5;
	co.owner = d->owner;
	d->collector = collector_new(&co);
	d->mstore = mstore_new(dc->metrics.retention_ms, dc->interval_ms);
	d->sinks[d->n_sinks++] = sink_mstore(d->mstore);
	if (dc->metrics.influxdb.present && influx_setup(d) != 0)
		return -1;
	hosts_setup(d);
	if (groups_setup(d, NULL, 0) != 0)
		return -1;
	d->jobs = jobs_start(d, WORKER_THREADS);
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
	if (lease_check(d) <= 0) {
		err_set("the lease was %s while starting: another daemon may lead",
			d->lease_lost ? "lost" : "not renewed in time");
		return -1;
	}
	d->reconciler = reconciler_new(d);
	if (reconcile_startup(d) != 0)
		return -1;
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

static void
daemon_loop(struct daemon *d)
{
	sigset_t set;
	uint64_t watchdog_us = 0;
	int64_t next_watchdog = 0;

#ifdef HAVE_LIBSYSTEMD
	if (sd_watchdog_enabled(0, &watchdog_us) <= 0)
		watchdog_us = 0;
#endif
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	d->next_collect_ms = util_now_ms();
	d->next_reconcile_ms = util_now_ms() + d->reconcile_period_ms;
	notify("READY=1");
	daemon_event(d, NULL, NULL, "start", NULL,
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
		if (lease_check(d) < 0)
			break;
		for (unsigned i = 0; i < d->n_hosts; i++)
			host_tick(d->hosts[i].h, now);
		if (now >= d->next_collect_ms) {
			collect_tick(d->collector, now);
			d->next_collect_ms = now + d->cfg->daemon.interval_ms;
		}
		collect_take(d->collector, on_collect, d);
		sink_poll(d->sinks, d->n_sinks, now);
		mstore_prune(d->mstore, now - d->cfg->daemon.metrics.retention_ms);
		/* what acts on the store and the hosts asks the lease first:
		 * a step may have taken longer than the lease */
		if (lease_check(d) > 0) {
			daemon_flush_heartbeats(d);
			jobs_reap(d);
			scaler_tick(d, now);
		}
		daemon_render_metrics(d);
		if (lease_check(d) > 0)
			reconciler_tick(d->reconciler, now);
		if (now >= d->next_reconcile_ms && lease_check(d) > 0) {
			d->next_reconcile_ms = now + d->reconcile_period_ms;
			if (d->stall_ms)
				test_stall(d);
		}
		if (now >= d->next_housekeeping_ms && lease_check(d) > 0) {
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
	}
	notify("STOPPING=1");
	/* deposed: the fence would refuse these writes (warnings only) */
	if (d->lease_lost)
		return;
	daemon_flush_heartbeats(d);
	daemon_event(d, NULL, NULL, "stop", NULL, "daemon stopping");
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
	/* Block the signals the loop takes, before any thread starts. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&d, 0, sizeof(d));
	pthread_mutex_init(&d.lock, NULL);
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
	}
	d.cfg = config_load(global_opts.config_path, &errors);
	if (!d.cfg) {
		fprintf(stderr, "%s", strbuf_str(&errors));
		strbuf_release(&errors);
		pthread_mutex_destroy(&d.lock);
		return 1;
	}
	strbuf_release(&errors);
	if (log_get_level() != LOG_LEVEL_DEBUG)
		log_set_level(d.cfg->daemon.log_level);
	if (getenv("JOURNAL_STREAM"))
		log_set_timestamps(false);
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
