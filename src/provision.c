/*
 * provision.c: creating one VM on a host (provision.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "event.h"
#include "log.h"
#include "provision.h"
#include "remove.h"
#include "secret.h"
#include "util.h"
#include "volume.h"

LOG_TAG("provision");

/* A copy the spec owns (NULL stays NULL). */
static char *
own(struct provision_spec *s, const char *p, size_t len)
{
	char *c;

	if (!p)
		return NULL;
	c = xmalloc(len + 1);
	memcpy(c, p, len);
	c[len] = '\0';
	s->owned = xreallocarray(s->owned, s->n_owned + 1, sizeof(*s->owned));
	s->owned[s->n_owned++] = c;
	return c;
}

static char *
own_str(struct provision_spec *s, const char *p)
{
	return p ? own(s, p, strlen(p)) : NULL;
}

/* A path of the configuration, absolute (relative ones resolve against
 * the file's directory). */
static char *
own_path(struct provision_spec *s, const struct config *cfg, const char *p)
{
	char *abs, *c;

	if (!p)
		return NULL;
	abs = config_resolve_path(cfg, p);
	c = own_str(s, abs);
	free(abs);
	return c;
}

struct provision_spec *
provision_spec_new(const struct config *cfg, const struct config_group *gc,
		   const struct config_host *hc,
		   const struct provision_files *files, const char *id,
		   const char *address, int64_t generation, const char *owner)
{
	const struct config_template *t = &gc->template;
	const struct config_static_addresses *sa =
		&gc->cloud_init.static_addresses;
	struct provision_spec *s;
	struct domxml_spec *d;

	if (!t->image) {
		err_set("group %s has no template.image", gc->name);
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->id = own_str(s, id);
	s->group = own_str(s, gc->name);
	s->host_name = own_str(s, hc->name);
	s->uri = own_str(s, hc->uri);
	s->pool = own_str(s, hc->pool);
	/* a bare name is a volume in the host's pool */
	s->image = t->image[0] != '/' && !strchr(t->image, '/')
			   ? own_str(s, t->image)
			   : own_path(s, cfg, t->image);
	s->disk = t->disk;
	s->domain_template = own(s, files->domain_template,
				 files->domain_template_len);
	s->domain_template_len = files->domain_template_len;

	d = &s->dom;
	{
		char *name = xasprintf("%s-%.8s", t->name_prefix, id);

		d->name = own_str(s, name);
		free(name);
	}
	d->uuid = s->id;
	d->type = hc->domain_type == CONFIG_DOMAIN_QEMU ? DOMXML_TYPE_QEMU
							 : DOMXML_TYPE_KVM;
	d->vcpus = (unsigned)t->vcpus;
	d->memory = t->memory;
	d->kernel = own_path(s, cfg, t->kernel);
	d->initrd = own_path(s, cfg, t->initrd);
	d->cmdline = own_str(s, t->cmdline);
	switch (hc->net_kind) {
	case CONFIG_NET_BRIDGE:
		d->net = DOMXML_NET_BRIDGE;
		break;
	case CONFIG_NET_USER:
		d->net = DOMXML_NET_USER;
		break;
	default:
		d->net = DOMXML_NET_NETWORK;
	}
	d->net_source = own_str(s, hc->net_name);
	d->balloon_period = 5;
	d->guest_agent = true;
	d->group = s->group;
	d->instance_id = s->id;
	d->generation = (uint64_t)generation;
	d->owner = own_str(s, owner);

	s->seed.instance_id = s->id;
	s->seed.no_phone_home = !gc->cloud_init.phone_home;
	s->seed.no_agent = !gc->cloud_init.agent;
	s->seed.user_data = own(s, files->user_data, files->user_data_len);
	s->seed.user_data_len = files->user_data_len;
	s->seed.network_config = own(s, files->network_config,
				     files->network_config_len);
	s->seed.network_config_len = files->network_config_len;
	s->seed.public_url = own_str(s, cfg->daemon.public_url);
	s->seed.heartbeat_interval =
		gc->health.heartbeat_timeout_ms > 0
			? (unsigned)(gc->health.heartbeat_timeout_ms / 3000)
			: 30;
	if (s->seed.heartbeat_interval < 1)
		s->seed.heartbeat_interval = 1;
	if (address && sa->present) {
		char **dns = xcalloc(sa->dns.n ? sa->dns.n : 1, sizeof(*dns));

		for (unsigned i = 0; i < sa->dns.n; i++)
			dns[i] = own_str(s, sa->dns.v[i]);
		s->owned = xreallocarray(s->owned, s->n_owned + 1,
					 sizeof(*s->owned));
		s->owned[s->n_owned++] = (char *)dns;
		s->net.address = own_str(s, address);
		s->net.prefix = (unsigned)sa->prefix;
		s->net.gateway = own_str(s, sa->gateway);
		s->net.dns = (const char *const *)dns;
		s->net.n_dns = sa->dns.n;
		s->seed.net = &s->net;
	}
	return s;
}

void
provision_spec_free(struct provision_spec *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_owned; i++)
		free(s->owned[i]);
	free(s->owned);
	free(s);
}

static void
libvirt_err(const char *what)
{
	const virError *e = virGetLastError();

	err_set("%s: %s", what, e && e->message ? e->message : "libvirt error");
}

/* Roll back a provisioning that failed: nothing of it may stay. */
static void
provision_rollback(const struct jobs_env *env, const struct provision_spec *j, virConnectPtr conn,
		   int64_t jid, const char *why)
{
	struct store_instance si;
	bool cleaned = false;

	if (conn && instance_remove(conn, j->pool, j->dom.name, j->id, env->owner, 0,
				    NULL) == 0)
		cleaned = true;
	else if (conn)
		log_warn("instance %s: rollback incomplete: %s (reconciliation retries)",
			 j->id, err_msg());
	if (store_instance_get(env->store, j->id, &si) == STORE_OK) {
		if (si.state != STORE_INSTANCE_DELETING &&
		    si.state != STORE_INSTANCE_GONE)
			store_instance_set_state(env->store, j->id, si.state,
						 STORE_INSTANCE_DELETING);
		if (cleaned)
			store_instance_set_state(env->store, j->id,
						 STORE_INSTANCE_DELETING,
						 STORE_INSTANCE_GONE);
		store_instance_release(&si);
	}
	if (jid) {
		if (cleaned)
			store_journal_fail(env->store, jid, why);
		/* else: left pending, so that recovery finishes the rollback */
	}
	event_record(env->store, j->group, j->id, "provision_failed", NULL,
		     "%s on %s: %s%s", j->dom.name, j->host_name, why,
		     cleaned ? "; rolled back" : "; cleanup pending");
}

static int
base_image(virConnectPtr conn, const struct provision_spec *j, char **path,
	   char **format, const struct jobs_env *env)
{
	bool uploaded = false;

	*format = NULL;
	if (j->image[0] == '/') {
		if (volume_ensure_base(conn, j->pool, j->image, path, format,
				       &uploaded) != 0)
			return -1;
		if (uploaded)
			event_record(env->store, j->group, j->id, "image_upload", NULL,
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

/* Is the instance in state st now? false with err_set() if not. */
static bool
instance_is(const struct jobs_env *env, const char *id,
	    enum store_instance_state st)
{
	struct store_instance si;
	bool is;

	if (store_instance_get(env->store, id, &si) != STORE_OK)
		return false;
	is = si.state == st;
	if (!is)
		err_set("instance %s is %s, not %s", id,
			store_instance_state_name(si.state),
			store_instance_state_name(st));
	store_instance_release(&si);
	return is;
}

bool
provision_run(const struct jobs_env *env, virConnectPtr conn,
	      struct provision_spec *j)
{
	int64_t deadline_ms = 0;
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

	if (j->warm ? !instance_is(env, j->id, STORE_INSTANCE_WARMING)
		    : store_instance_set_state(env->store, j->id,
					       STORE_INSTANCE_REQUESTED,
					       STORE_INSTANCE_PROVISIONING) != STORE_OK) {
		log_warn("instance %s: cannot start provisioning: %s", j->id,
			 err_msg());
		return false;
	}
	payload = xasprintf("{\"host\":\"%s\",\"pool\":\"%s\",\"domain\":\"%s\"}",
			    j->host_name, j->pool, j->dom.name);
	if (store_journal_begin(env->store, j->id, STORE_JOURNAL_PROVISION,
				payload, &jid) != STORE_OK) {
		err_prefix("journal");
		goto fail;
	}
	event_crash_point(env->crash_at, "provision_begin");
	if (!conn) {
		err_set("host %s is not connected", j->host_name);
		goto fail;
	}
	if (base_image(conn, j, &base_path, &base_fmt, env) != 0)
		goto fail;
	/* The deadline counts from here: the first upload of a base image
	 * to a remote pool may rightly take long, and it is not repeated. */
	deadline_ms = util_now_ms() + env->deadline_ms;
	overlay = volume_overlay_name(j->id);
	seedvol = volume_seed_name(j->id);
	if (!overlay || !seedvol)
		goto fail;
	if (volume_create_overlay(conn, j->pool, overlay, base_path,
				  base_fmt ? base_fmt : "qcow2", j->disk,
				  &overlay_path) != 0)
		goto fail;
	if (jobs_journal_step(env, jid, STORE_STEP_VOLUME_CREATED, deadline_ms) != 0)
		goto fail;
	event_crash_point(env->crash_at, "volume_created");

	/* The secret: minted here, handed to the guest in its seed, stored
	 * only as a hash. */
	if (secret_mint(secret) != 0 ||
	    secret_hash(secret, strlen(secret), hash) != 0)
		goto fail;
	if (store_instance_get(env->store, j->id, &si) != STORE_OK)
		goto fail;
	free(si.secret_hash);
	si.secret_hash = xstrdup(hash);
	if (store_instance_put(env->store, &si) != STORE_OK) {
		store_instance_release(&si);
		goto fail;
	}
	store_instance_release(&si);
	instance_mac(j->id, mac);
	instance_hostname(j->dom.name, hostname);
	j->net.mac = mac;
	j->seed.hostname = hostname;
	j->seed.secret = secret;
	if (seed_build_iso(&j->seed, &iso, &iso_len) != 0)
		goto fail;
	j->seed.secret = NULL;
	explicit_bzero(secret, sizeof(secret));
	if (volume_upload_bytes(conn, j->pool, seedvol, iso, iso_len,
				&seed_path) != 0)
		goto fail;
	if (jobs_journal_step(env, jid, STORE_STEP_SEED_CREATED, deadline_ms) != 0)
		goto fail;
	event_crash_point(env->crash_at, "seed_created");
	{
		struct domxml_spec ds = j->dom;
		int rc;

		ds.disk = (struct domxml_disk){.pool = j->pool, .volume = overlay,
					       .path = overlay_path,
					       .format = "qcow2"};
		ds.seed = (struct domxml_disk){.pool = j->pool, .volume = seedvol,
					       .path = seed_path, .format = "raw"};
		ds.mac = mac;
		rc = j->domain_template
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
	if (jobs_journal_step(env, jid, STORE_STEP_DOMAIN_DEFINED, deadline_ms) != 0)
		goto fail;
	event_crash_point(env->crash_at, "domain_defined");
	if (virDomainCreate(dom) != 0) {
		libvirt_err("start domain");
		goto fail;
	}
	if (jobs_journal_step(env, jid, STORE_STEP_STARTED, deadline_ms) != 0)
		goto fail;
	event_crash_point(env->crash_at, "started");
	/* A warm pool instance stays warming: its check-in has it parked. */
	if (j->warm ? !instance_is(env, j->id, STORE_INSTANCE_WARMING)
		    : store_instance_set_state(env->store, j->id,
					       STORE_INSTANCE_PROVISIONING,
					       STORE_INSTANCE_BOOTING) != STORE_OK)
		goto fail;
	store_journal_done(env->store, jid);
	event_record(env->store, j->group, j->id, "booting", NULL,
		     "%s defined and started on %s in %.1f s", j->dom.name,
		     j->host_name, (double)(util_now_ms() - t0) / 1000.0);
	ok = true;
	goto out;
fail:
	{
		char why[1024];

		snprintf(why, sizeof(why), "%s", err_msg());
		log_warn("instance %s: provisioning on %s failed: %s", j->id,
			 j->host_name, why);
		provision_rollback(env, j, conn, jid, why);
	}
out:
	explicit_bzero(secret, sizeof(secret));
	if (dom)
		virDomainFree(dom);
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
