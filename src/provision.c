/*
 * provision.c: the workers that create and remove VMs, so that a slow
 * host (an image upload, a guest that takes its time to shut down) never
 * stalls the loop or the other hosts.
 *
 * Every action is journaled in the state store before it starts and after
 * each step (store_journal_*), so that a daemon killed at any point can
 * finish or roll back what it was doing (reconcile.c). A job carries
 * copies of everything it needs from the configuration: a reload may
 * replace the configuration while it runs.
 *
 * Provisioning: requested -> provisioning -> (overlay volume, seed volume,
 * domain defined, started) -> booting. The guest's check-in makes it
 * ready (api.c). A failure rolls back whatever was created and ends the
 * instance (deleting -> gone); the group then asks for another one after a
 * backoff.
 * Removal: draining/deleting -> (graceful shutdown up to the drain time,
 * destroy, undefine, volumes deleted) -> gone.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "daemon_int.h"
#include "domxml.h"
#include "log.h"
#include "scalein.h"
#include "secret.h"
#include "seed.h"
#include "util.h"
#include "volume.h"

LOG_TAG("provision");

enum job_kind {
	JOB_PROVISION,
	JOB_REMOVE,
	JOB_KIND_LAST
};

struct job {
	enum job_kind kind;
	char *id;
	char *group;
	char *host_name;
	struct host *host;     /* lives as long as the daemon */
	char *pool;
	char *domain;
	/* provision */
	enum domxml_type type;
	unsigned vcpus;
	uint64_t memory;
	char *image;           /* absolute local path, or a volume in the pool */
	uint64_t disk;
	char *kernel, *initrd, *cmdline;
	enum domxml_net net;
	char *net_source;
	char *user_data;
	size_t user_data_len;
	char *network_config;
	size_t network_config_len;
	char *domain_template;
	size_t domain_template_len;
	char *public_url;
	unsigned heartbeat_interval;
	bool no_phone_home;
	/* static address from the group's pool (NULL: DHCP or the user's
	 * network-config) */
	char *address;
	unsigned prefix;
	char *gateway;
	char **dns;
	size_t n_dns;
	int64_t generation;
	/* remove */
	int64_t drain_ms;

	struct job *next;
};

/* What the main thread learns when a job ends. */
struct job_result {
	char *group;
	bool provision;
	bool ok;
	struct job_result *next;
};

struct job_queue {
	struct daemon *d;
	pthread_mutex_t m;
	pthread_cond_t cond;
	struct job *head, *tail;
	char **running;        /* ids of running jobs (n_threads slots) */
	pthread_t *threads;
	unsigned n_threads;
	unsigned queued;
	bool stop;
	struct job_result *results;
};

static void
job_free(struct job *j)
{
	if (!j)
		return;
	free(j->id);
	free(j->group);
	free(j->host_name);
	free(j->pool);
	free(j->domain);
	free(j->image);
	free(j->kernel);
	free(j->initrd);
	free(j->cmdline);
	free(j->net_source);
	free(j->user_data);
	free(j->network_config);
	free(j->domain_template);
	free(j->public_url);
	free(j->address);
	free(j->gateway);
	for (size_t i = 0; i < j->n_dns; i++)
		free(j->dns[i]);
	free(j->dns);
	free(j);
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static char *
dup_bytes(const char *p, size_t len)
{
	char *s;

	if (!p)
		return NULL;
	s = xmalloc(len + 1);
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

static void
libvirt_err(const char *what)
{
	const virError *e = virGetLastError();

	err_set("%s: %s", what, e && e->message ? e->message : "libvirt error");
}

static void
post_result(struct job_queue *q, const struct job *j, bool ok)
{
	struct job_result *r = xcalloc(1, sizeof(*r));

	r->group = xstrdup(j->group);
	r->provision = j->kind == JOB_PROVISION;
	r->ok = ok;
	pthread_mutex_lock(&q->m);
	r->next = q->results;
	q->results = r;
	pthread_mutex_unlock(&q->m);
}

enum domain_owner {
	DOMAIN_ABSENT,    /* no domain by that name */
	DOMAIN_OURS,      /* instance id's, owner ours or none (older version) */
	DOMAIN_NOT_OURS,  /* someone else's: never touch it */
	DOMAIN_FOREIGN_INSTANCE, /* instance id's, made by another
				    installation: its volumes are theirs too */
};

/*
 * Whose is the domain called `domain`? *why says why it is not ours for
 * DOMAIN_NOT_OURS and DOMAIN_FOREIGN_INSTANCE (caller frees). 0, or -1
 * with err_set() when libvirt cannot tell.
 */
static int
domain_owner(virConnectPtr conn, const char *domain, const char *id,
	     const char *owner, enum domain_owner *out, char **why)
{
	virDomainPtr dom = virDomainLookupByName(conn, domain);
	struct domxml_meta m;
	char *meta = NULL;
	int rc = -1;

	*why = NULL;
	*out = DOMAIN_NOT_OURS;
	if (!dom) {
		if (virGetLastErrorCode() != VIR_ERR_NO_DOMAIN) {
			libvirt_err(domain);
			return -1;
		}
		virResetLastError();
		*out = DOMAIN_ABSENT;
		return 0;
	}
	meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
				    DOMXML_NS_URI, 0);
	if (!meta) {
		int code = virGetLastErrorCode();

		if (code == VIR_ERR_NO_DOMAIN) {
			*out = DOMAIN_ABSENT;
		} else if (code == VIR_ERR_NO_DOMAIN_METADATA) {
			*why = xstrdup("it carries no virt-autoscaler metadata");
		} else {
			libvirt_err(domain);
			goto cleanup;
		}
		virResetLastError();
	} else if (domxml_meta_parse(meta, strlen(meta), &m) != 0) {
		*why = xasprintf("its virt-autoscaler metadata is unreadable (%s)",
				 err_msg());
	} else if (strcmp(m.id, id) != 0) {
		*why = xasprintf("its metadata names instance %s", m.id);
	} else if (domxml_owns(&m, owner) == DOMXML_OWNER_FOREIGN) {
		*why = xasprintf("it belongs to another virt-autoscaler "
				 "installation (owner %s)", m.owner);
		*out = DOMAIN_FOREIGN_INSTANCE;
	} else {
		*out = DOMAIN_OURS;
	}
	rc = 0;
cleanup:
	free(meta);
	virDomainFree(dom);
	return rc;
}

int
instance_remove(virConnectPtr conn, const char *pool, const char *domain,
		const char *id, const char *owner, int64_t drain_ms,
		bool *graceful)
{
	char *overlay = volume_overlay_name(id);
	char *seedvol = volume_seed_name(id);
	const char *vols[2] = {overlay, seedvol};
	struct scalein_remove_spec rs = {
		.domain = domain,
		.pool = pool,
		.volumes = vols,
		.n_volumes = 2,
		.shutdown_timeout_ms = drain_ms,
	};
	enum domain_owner who;
	char *why = NULL;
	int rc = -1;

	if (graceful)
		*graceful = false;
	if (!overlay || !seedvol)
		goto cleanup;
	if (domain_owner(conn, domain, id, owner, &who, &why) != 0)
		goto cleanup;
	if (who == DOMAIN_ABSENT || who == DOMAIN_OURS) {
		rc = scalein_remove(conn, &rs, graceful);
		goto cleanup;
	}
	if (who == DOMAIN_FOREIGN_INSTANCE) {
		/* The instance itself is another installation's (its id is in
		 * our store by mistake: a copied store, an id clash): so are
		 * the volumes named after it. Nothing of ours is there. */
		log_warn("domain %s (instance %s): %s; left alone with its "
			 "volumes", domain, id, why);
		rc = 0;
		goto cleanup;
	}
	/* Our domain is not there (the name is someone else's now): the
	 * instance's own volumes are all there is to remove. */
	log_warn("domain %s is not instance %s's: %s; left alone, only the "
		 "instance's volumes are deleted", domain, id, why);
	for (size_t i = 0; i < ARRAY_SIZE(vols); i++)
		if (volume_delete(conn, pool, vols[i]) < 0) {
			err_prefix("instance %s", id);
			goto cleanup;
		}
	rc = 0;
cleanup:
	free(why);
	free(overlay);
	free(seedvol);
	return rc;
}

/* Roll back a provisioning that failed: nothing of it may stay. */
static void
provision_rollback(struct daemon *d, const struct job *j, virConnectPtr conn,
		   int64_t jid, const char *why)
{
	struct store_instance si;
	bool cleaned = false;

	if (conn && instance_remove(conn, j->pool, j->domain, j->id, d->owner, 0,
				    NULL) == 0)
		cleaned = true;
	else if (conn)
		log_warn("instance %s: rollback incomplete: %s (reconciliation retries)",
			 j->id, err_msg());
	if (store_instance_get(d->store, j->id, &si) == STORE_OK) {
		if (si.state != STORE_INSTANCE_DELETING &&
		    si.state != STORE_INSTANCE_GONE)
			store_instance_set_state(d->store, j->id, si.state,
						 STORE_INSTANCE_DELETING);
		if (cleaned)
			store_instance_set_state(d->store, j->id,
						 STORE_INSTANCE_DELETING,
						 STORE_INSTANCE_GONE);
		store_instance_release(&si);
	}
	if (jid) {
		if (cleaned)
			store_journal_fail(d->store, jid, why);
		/* else: left pending, so that recovery finishes the rollback */
	}
	daemon_event(d, j->group, j->id, "provision_failed", NULL,
		     "%s on %s: %s%s", j->domain, j->host_name, why,
		     cleaned ? "; rolled back" : "; cleanup pending");
}

/*
 * Record a step. A fenced store means another daemon leads now: what we
 * were doing is its business (it recovers it from the journal), so stop.
 */
static int
journal_step(struct daemon *d, int64_t jid, enum store_journal_step step)
{
	int rc = store_journal_step(d->store, jid, step, NULL);

	if (rc == STORE_E_FENCED) {
		err_set("fenced: another daemon holds the lease now");
		return -1;
	}
	if (rc != STORE_OK)
		log_warn("journal step %s: %s", store_journal_step_name(step),
			 err_msg());
	return 0;
}

static int
base_image(virConnectPtr conn, const struct job *j, char **path,
	   char **format, struct daemon *d)
{
	bool uploaded = false;

	*format = NULL;
	if (j->image[0] == '/') {
		if (volume_ensure_base(conn, j->pool, j->image, path, format,
				       &uploaded) != 0)
			return -1;
		if (uploaded)
			daemon_event(d, j->group, j->id, "image_upload", NULL,
				     "uploaded base image %s to pool %s on %s",
				     j->image, j->pool, j->host_name);
		return 0;
	} else {
		int rc = volume_find(conn, j->pool, j->image, path, format);

		if (rc == 0)
			err_set("base image volume '%s' is not in pool %s on %s",
				j->image, j->pool, j->host_name);
		return rc == 1 ? 0 : -1;
	}
}

/* A MAC address derived from the instance id (stable across retries). */
static void
instance_mac(const char *id, char out[18])
{
	unsigned b[3] = {0, 0, 0};
	unsigned n = 0;

	for (const char *p = id; *p && n < 6; p++) {
		int v;

		if (*p >= '0' && *p <= '9')
			v = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			v = *p - 'a' + 10;
		else
			continue;
		b[n / 2] = (b[n / 2] << 4) | (unsigned)v;
		n++;
	}
	snprintf(out, 18, "52:54:00:%02x:%02x:%02x", b[0] & 0xff, b[1] & 0xff,
		 b[2] & 0xff);
}

/* The guest's host name: the domain name as an RFC 1123 label. */
static void
instance_hostname(const char *domain, char out[64])
{
	size_t n = 0;

	for (const char *p = domain; *p && n < 63; p++)
		out[n++] = (*p == '_' || *p == '.') ? '-' : *p;
	out[n] = '\0';
}

static bool
run_provision(struct daemon *d, struct job *j)
{
	virConnectPtr conn = NULL;
	virDomainPtr dom = NULL;
	char *base_path = NULL, *base_fmt = NULL, *overlay = NULL;
	char *overlay_path = NULL, *seedvol = NULL, *seed_path = NULL;
	char *xml = NULL, *payload = NULL;
	unsigned char *iso = NULL;
	size_t iso_len = 0;
	char secret[SECRET_LEN + 1] = "";
	char hash[SECRET_HASH_LEN + 1];
	char mac[18], hostname[64];
	int64_t jid = 0;
	struct store_instance si;
	bool ok = false;
	int64_t t0 = util_now_ms();

	if (store_instance_set_state(d->store, j->id, STORE_INSTANCE_REQUESTED,
				     STORE_INSTANCE_PROVISIONING) != STORE_OK) {
		log_warn("instance %s: cannot start provisioning: %s", j->id,
			 err_msg());
		return false;
	}
	payload = xasprintf("{\"host\":\"%s\",\"pool\":\"%s\",\"domain\":\"%s\"}",
			    j->host_name, j->pool, j->domain);
	if (store_journal_begin(d->store, j->id, STORE_JOURNAL_PROVISION,
				payload, &jid) != STORE_OK) {
		err_prefix("journal");
		goto fail;
	}
	daemon_crash_point(d, "provision_begin");
	conn = host_conn(j->host);
	if (!conn) {
		err_set("host %s is not connected", j->host_name);
		goto fail;
	}
	if (base_image(conn, j, &base_path, &base_fmt, d) != 0)
		goto fail;
	overlay = volume_overlay_name(j->id);
	seedvol = volume_seed_name(j->id);
	if (!overlay || !seedvol)
		goto fail;
	if (volume_create_overlay(conn, j->pool, overlay, base_path,
				  base_fmt ? base_fmt : "qcow2", j->disk,
				  &overlay_path) != 0)
		goto fail;
	if (journal_step(d, jid, STORE_STEP_VOLUME_CREATED) != 0)
		goto fail;
	daemon_crash_point(d, "volume_created");

	/* The secret: minted here, handed to the guest in its seed, stored
	 * only as a hash. */
	if (secret_mint(secret) != 0 ||
	    secret_hash(secret, strlen(secret), hash) != 0)
		goto fail;
	if (store_instance_get(d->store, j->id, &si) != STORE_OK)
		goto fail;
	free(si.secret_hash);
	si.secret_hash = xstrdup(hash);
	if (store_instance_put(d->store, &si) != STORE_OK) {
		store_instance_release(&si);
		goto fail;
	}
	store_instance_release(&si);
	instance_mac(j->id, mac);
	instance_hostname(j->domain, hostname);
	{
		struct seed_net net = {
			.address = j->address,
			.prefix = j->prefix,
			.gateway = j->gateway,
			.dns = (const char *const *)j->dns,
			.n_dns = j->n_dns,
			.mac = mac,
		};
		struct seed_spec ss = {
			.instance_id = j->id,
			.hostname = hostname,
			.no_phone_home = j->no_phone_home,
			.net = j->address ? &net : NULL,
			.user_data = j->user_data,
			.user_data_len = j->user_data_len,
			.public_url = j->public_url,
			.secret = secret,
			.heartbeat_interval = j->heartbeat_interval,
			.network_config = j->network_config,
			.network_config_len = j->network_config_len,
		};

		if (seed_build_iso(&ss, &iso, &iso_len) != 0)
			goto fail;
	}
	explicit_bzero(secret, sizeof(secret));
	if (volume_upload_bytes(conn, j->pool, seedvol, iso, iso_len,
				&seed_path) != 0)
		goto fail;
	if (journal_step(d, jid, STORE_STEP_SEED_CREATED) != 0)
		goto fail;
	daemon_crash_point(d, "seed_created");
	{
		struct domxml_spec ds = {
			.name = j->domain,
			.uuid = j->id,
			.type = j->type,
			.vcpus = j->vcpus,
			.memory = j->memory,
			.disk = {.pool = j->pool, .volume = overlay,
				 .path = overlay_path, .format = "qcow2"},
			.seed = {.pool = j->pool, .volume = seedvol,
				 .path = seed_path, .format = "raw"},
			.kernel = j->kernel,
			.initrd = j->initrd,
			.cmdline = j->cmdline,
			.net = j->net,
			.net_source = j->net_source,
			.mac = mac,
			.balloon_period = 5,
			.guest_agent = true,
			.group = j->group,
			.instance_id = j->id,
			.generation = (uint64_t)j->generation,
			.owner = d->owner,
		};
		int rc = j->domain_template
				 ? domxml_from_template(j->domain_template,
							j->domain_template_len,
							"domain template", &ds, &xml)
				 : domxml_build(&ds, &xml);

		if (rc != 0)
			goto fail;
	}
	dom = virDomainDefineXML(conn, xml);
	if (!dom) {
		libvirt_err("define domain");
		goto fail;
	}
	if (journal_step(d, jid, STORE_STEP_DOMAIN_DEFINED) != 0)
		goto fail;
	daemon_crash_point(d, "domain_defined");
	if (virDomainCreate(dom) != 0) {
		libvirt_err("start domain");
		goto fail;
	}
	if (journal_step(d, jid, STORE_STEP_STARTED) != 0)
		goto fail;
	daemon_crash_point(d, "started");
	if (store_instance_set_state(d->store, j->id, STORE_INSTANCE_PROVISIONING,
				     STORE_INSTANCE_BOOTING) != STORE_OK)
		goto fail;
	store_journal_done(d->store, jid);
	daemon_event(d, j->group, j->id, "booting", NULL,
		     "%s defined and started on %s in %.1f s", j->domain,
		     j->host_name, (double)(util_now_ms() - t0) / 1000.0);
	ok = true;
	goto out;
fail:
	{
		char why[1024];

		snprintf(why, sizeof(why), "%s", err_msg());
		log_warn("instance %s: provisioning on %s failed: %s", j->id,
			 j->host_name, why);
		provision_rollback(d, j, conn, jid, why);
	}
out:
	explicit_bzero(secret, sizeof(secret));
	if (dom)
		virDomainFree(dom);
	if (conn)
		virConnectClose(conn);
	free(base_path);
	free(base_fmt);
	free(overlay);
	free(overlay_path);
	free(seedvol);
	free(seed_path);
	free(iso);
	free(xml);
	free(payload);
	return ok;
}

static bool
run_remove(struct daemon *d, struct job *j)
{
	virConnectPtr conn = NULL;
	struct store_instance si;
	char *payload;
	int64_t jid = 0;
	bool graceful = false, ok = false;

	if (store_instance_get(d->store, j->id, &si) != STORE_OK) {
		log_warn("instance %s: cannot remove: %s", j->id, err_msg());
		goto out_nosi;
	}
	payload = xasprintf("{\"host\":\"%s\",\"pool\":\"%s\",\"domain\":\"%s\"}",
			    j->host_name, j->pool, j->domain);
	{
		struct store_journal_entry e;

		/* A removal that failed before (host down) resumes its entry. */
		if (store_journal_find_pending(d->store, j->id, &e) == STORE_OK) {
			jid = e.id;
			store_journal_entry_release(&e);
		} else if (store_journal_begin(d->store, j->id,
					       STORE_JOURNAL_REMOVE, payload,
					       &jid) != STORE_OK) {
			free(payload);
			log_warn("instance %s: cannot journal removal: %s",
				 j->id, err_msg());
			goto out;
		}
	}
	free(payload);
	daemon_crash_point(d, "remove_begin");
	conn = host_conn(j->host);
	if (!conn) {
		log_warn("instance %s: host %s is not connected; removal retried later",
			 j->id, j->host_name);
		goto out;
	}
	if (instance_remove(conn, j->pool, j->domain, j->id, d->owner,
			    j->drain_ms, &graceful) != 0) {
		log_warn("instance %s: removal failed: %s (retried later)", j->id,
			 err_msg());
		goto out;
	}
	if (journal_step(d, jid, STORE_STEP_VOLUMES_DELETED) != 0) {
		log_warn("instance %s: %s", j->id, err_msg());
		goto out;
	}
	daemon_crash_point(d, "removed");
	if (si.state == STORE_INSTANCE_DRAINING)
		store_instance_set_state(d->store, j->id, STORE_INSTANCE_DRAINING,
					 STORE_INSTANCE_DELETING);
	store_instance_set_state(d->store, j->id, STORE_INSTANCE_DELETING,
				 STORE_INSTANCE_GONE);
	store_journal_done(d->store, jid);
	daemon_event(d, j->group, j->id, "removed", NULL,
		     "%s removed from %s (%s)", j->domain, j->host_name,
		     graceful ? "shut down gracefully" : "destroyed");
	ok = true;
out:
	store_instance_release(&si);
out_nosi:
	if (conn)
		virConnectClose(conn);
	return ok;
}

static void *
worker(void *arg)
{
	struct job_queue *q = arg;
	unsigned slot;

	pthread_mutex_lock(&q->m);
	for (slot = 0; slot < q->n_threads; slot++)
		if (!q->running[slot])
			break;
	q->running[slot] = (char *)""; /* claimed, idle */
	for (;;) {
		struct job *j;
		bool ok;

		while (!q->head && !q->stop)
			pthread_cond_wait(&q->cond, &q->m);
		if (q->stop)
			break;
		j = q->head;
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
		q->queued--;
		q->running[slot] = j->id;
		pthread_mutex_unlock(&q->m);

		ok = j->kind == JOB_PROVISION ? run_provision(q->d, j)
					      : run_remove(q->d, j);
		post_result(q, j, ok);

		pthread_mutex_lock(&q->m);
		q->running[slot] = (char *)"";
		pthread_mutex_unlock(&q->m);
		job_free(j);
		pthread_mutex_lock(&q->m);
	}
	pthread_mutex_unlock(&q->m);
	return NULL;
}

struct job_queue *
jobs_start(struct daemon *d, unsigned threads)
{
	struct job_queue *q = xcalloc(1, sizeof(*q));

	q->d = d;
	pthread_mutex_init(&q->m, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->n_threads = threads;
	q->threads = xcalloc(threads, sizeof(*q->threads));
	q->running = xcalloc(threads, sizeof(*q->running));
	for (unsigned i = 0; i < threads; i++)
		if (pthread_create(&q->threads[i], NULL, worker, q) != 0)
			fatal("cannot start a worker thread");
	return q;
}

void
jobs_stop(struct job_queue *q)
{
	struct job_result *r;

	if (!q)
		return;
	pthread_mutex_lock(&q->m);
	q->stop = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->m);
	for (unsigned i = 0; i < q->n_threads; i++)
		pthread_join(q->threads[i], NULL);
	while (q->head) {
		struct job *j = q->head;

		q->head = j->next;
		job_free(j);
	}
	while ((r = q->results)) {
		q->results = r->next;
		free(r->group);
		free(r);
	}
	pthread_mutex_destroy(&q->m);
	pthread_cond_destroy(&q->cond);
	free(q->threads);
	free(q->running);
	free(q);
}

unsigned
jobs_pending(struct job_queue *q)
{
	unsigned n;

	pthread_mutex_lock(&q->m);
	n = q->queued;
	for (unsigned i = 0; i < q->n_threads; i++)
		if (q->running[i] && q->running[i][0])
			n++;
	pthread_mutex_unlock(&q->m);
	return n;
}

bool
jobs_busy_with(struct job_queue *q, const char *id)
{
	bool busy = false;

	pthread_mutex_lock(&q->m);
	for (struct job *j = q->head; j && !busy; j = j->next)
		busy = strcmp(j->id, id) == 0;
	for (unsigned i = 0; i < q->n_threads && !busy; i++)
		busy = q->running[i] && strcmp(q->running[i], id) == 0;
	pthread_mutex_unlock(&q->m);
	return busy;
}

static void
enqueue(struct job_queue *q, struct job *j)
{
	pthread_mutex_lock(&q->m);
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->queued++;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->m);
}

int
jobs_provision(struct daemon *d, const struct dgroup *g, const struct dhost *h,
	       const char *instance_id, const char *address)
{
	const struct config_group *gc = g->cfg;
	const struct config_host *hc = h->cfg;
	struct job *j = xcalloc(1, sizeof(*j));

	j->kind = JOB_PROVISION;
	j->id = xstrdup(instance_id);
	j->group = xstrdup(gc->name);
	j->host_name = xstrdup(hc->name);
	j->host = h->h;
	j->pool = xstrdup(hc->pool);
	j->domain = xasprintf("%s-%.8s", gc->template.name_prefix, instance_id);
	j->type = hc->domain_type == CONFIG_DOMAIN_QEMU ? DOMXML_TYPE_QEMU
							 : DOMXML_TYPE_KVM;
	j->vcpus = (unsigned)gc->template.vcpus;
	j->memory = gc->template.memory;
	j->image = gc->template.image ? config_resolve_path(d->cfg, gc->template.image)
				      : NULL;
	if (gc->template.image && gc->template.image[0] != '/' &&
	    !strchr(gc->template.image, '/')) {
		/* a bare name is a volume in the host's pool */
		free(j->image);
		j->image = xstrdup(gc->template.image);
	}
	j->disk = gc->template.disk;
	j->kernel = gc->template.kernel ? config_resolve_path(d->cfg, gc->template.kernel) : NULL;
	j->initrd = gc->template.initrd ? config_resolve_path(d->cfg, gc->template.initrd) : NULL;
	j->cmdline = dup_or_null(gc->template.cmdline);
	switch (hc->net_kind) {
	case CONFIG_NET_BRIDGE:
		j->net = DOMXML_NET_BRIDGE;
		break;
	case CONFIG_NET_USER:
		j->net = DOMXML_NET_USER;
		break;
	default:
		j->net = DOMXML_NET_NETWORK;
	}
	j->net_source = dup_or_null(hc->net_name);
	j->user_data = dup_bytes(g->user_data, g->user_data_len);
	j->user_data_len = g->user_data_len;
	j->network_config = dup_bytes(g->network_config, g->network_config_len);
	j->network_config_len = g->network_config_len;
	j->domain_template = dup_bytes(g->domain_template, g->domain_template_len);
	j->domain_template_len = g->domain_template_len;
	j->public_url = xstrdup(d->cfg->daemon.public_url);
	j->heartbeat_interval = gc->health.heartbeat_timeout_ms > 0
					? (unsigned)(gc->health.heartbeat_timeout_ms / 3000)
					: 30;
	if (j->heartbeat_interval < 1)
		j->heartbeat_interval = 1;
	j->generation = d->config_gen;
	j->no_phone_home = !gc->cloud_init.phone_home;
	if (address && gc->cloud_init.static_addresses.present) {
		const struct config_static_addresses *sa =
			&gc->cloud_init.static_addresses;

		j->address = xstrdup(address);
		j->prefix = (unsigned)sa->prefix;
		j->gateway = dup_or_null(sa->gateway);
		j->n_dns = sa->dns.n;
		j->dns = xcalloc(sa->dns.n ? sa->dns.n : 1, sizeof(*j->dns));
		for (unsigned i = 0; i < sa->dns.n; i++)
			j->dns[i] = xstrdup(sa->dns.v[i]);
	}
	if (!j->image) {
		err_set("group %s has no template.image", gc->name);
		job_free(j);
		return -1;
	}
	enqueue(d->jobs, j);
	return 0;
}

int
jobs_remove(struct daemon *d, const struct store_instance *inst,
	    int64_t drain_ms)
{
	struct dhost *h = inst->host ? daemon_host(d, inst->host) : NULL;
	struct job *j;

	if (!h) {
		err_set("instance %s: host %s is not configured", inst->id,
			inst->host ? inst->host : "(none)");
		return -1;
	}
	j = xcalloc(1, sizeof(*j));
	j->kind = JOB_REMOVE;
	j->id = xstrdup(inst->id);
	j->group = xstrdup(inst->group);
	j->host_name = xstrdup(h->cfg->name);
	j->host = h->h;
	j->pool = xstrdup(h->cfg->pool);
	j->domain = inst->domain ? xstrdup(inst->domain)
				 : xasprintf("unknown-%s", inst->id);
	j->drain_ms = drain_ms;
	enqueue(d->jobs, j);
	return 0;
}

void
jobs_reap(struct daemon *d)
{
	struct job_result *r, *next;

	pthread_mutex_lock(&d->jobs->m);
	r = d->jobs->results;
	d->jobs->results = NULL;
	pthread_mutex_unlock(&d->jobs->m);
	for (; r; r = next) {
		next = r->next;
		if (r->provision) {
			pthread_mutex_lock(&d->lock);
			if (r->ok)
				d->provisioned++;
			else
				d->provision_errors++;
			pthread_mutex_unlock(&d->lock);
			scaler_provision_result(d, r->group, r->ok);
		} else if (r->ok) {
			pthread_mutex_lock(&d->lock);
			d->removed++;
			pthread_mutex_unlock(&d->lock);
		}
		free(r->group);
		free(r);
	}
}
