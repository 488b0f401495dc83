/*
 * remove.c: removing an instance's VM (remove.h). Used by the removal
 * jobs (remove_run, on a worker's own connection) and by recovery
 * (instance_remove, on the loop's connection).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "domxml.h"
#include "event.h"
#include "log.h"
#include "remove.h"
#include "scalein.h"
#include "util.h"
#include "volume.h"

LOG_TAG("remove");

static void
libvirt_err(const char *what)
{
	const virError *e = virGetLastError();

	err_set("%s: %s", what, e && e->message ? e->message : "libvirt error");
}

int
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

static bool
node_is(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0;
}

/*
 * The pool that holds the domain's disk named `volume` (the instance's
 * overlay), found from the domain's own XML: the host's pool may have
 * changed since the instance was made (a restart with another
 * hosts[].pool), and its volumes are where they were created. NULL when
 * the domain has no such disk or libvirt does not know the path (the
 * caller then uses the configured pool). Caller frees.
 */
static char *
pool_of_volume(virConnectPtr conn, const char *domain, const char *volume)
{
	virDomainPtr dom = virDomainLookupByName(conn, domain);
	char *xml = dom ? virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE) : NULL;
	xmlDoc *doc = NULL;
	xmlNode *root, *devs = NULL;
	char *out = NULL;

	if (!xml)
		goto cleanup;
	doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	root = doc ? xmlDocGetRootElement(doc) : NULL;
	for (xmlNode *n = root ? root->children : NULL; n; n = n->next)
		if (node_is(n, "devices"))
			devs = n;
	for (xmlNode *disk = devs ? devs->children : NULL; disk && !out;
	     disk = disk->next) {
		if (!node_is(disk, "disk"))
			continue;
		for (xmlNode *src = disk->children; src && !out; src = src->next) {
			xmlChar *file;
			const char *base;
			virStorageVolPtr vol;
			virStoragePoolPtr p;

			if (!node_is(src, "source"))
				continue;
			file = xmlGetProp(src, BAD_CAST "file");
			base = file ? strrchr((const char *)file, '/') : NULL;
			if (base && strcmp(base + 1, volume) == 0 &&
			    (vol = virStorageVolLookupByPath(conn, (const char *)file))) {
				p = virStoragePoolLookupByVolume(vol);
				if (p && virStoragePoolGetName(p))
					out = xstrdup(virStoragePoolGetName(p));
				virStoragePoolFree(p);
				virStorageVolFree(vol);
			}
			xmlFree(file);
		}
	}
cleanup:
	virResetLastError();
	xmlFreeDoc(doc);
	free(xml);
	virDomainFree(dom);
	return out;
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
	char *why = NULL, *actual = NULL;
	int rc = -1;

	if (graceful)
		*graceful = false;
	if (!overlay || !seedvol)
		goto cleanup;
	if (domain_owner(conn, domain, id, owner, &who, &why) != 0)
		goto cleanup;
	if (who == DOMAIN_OURS) {
		actual = pool_of_volume(conn, domain, overlay);
		if (actual && strcmp(actual, pool) != 0) {
			log_info("instance %s: its volumes are in pool %s, not in "
				 "the host's pool %s (changed since it was made): "
				 "deleted from %s", id, actual, pool, actual);
			rs.pool = actual;
		}
	}
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
	free(actual);
	free(overlay);
	free(seedvol);
	return rc;
}

bool
remove_run(const struct jobs_env *env, virConnectPtr conn,
	   const struct remove_spec *r)
{
	struct store_instance si;
	const char *domain = r->domain;
	char *payload;
	int64_t jid = 0;
	bool graceful = false, ok = false;

	if (store_instance_get(env->store, r->id, &si) != STORE_OK) {
		log_warn("instance %s: cannot remove: %s", r->id, err_msg());
		goto out_nosi;
	}
	payload = xasprintf("{\"host\":\"%s\",\"pool\":\"%s\",\"domain\":\"%s\"}",
			    r->host_name, r->pool, domain);
	{
		struct store_journal_entry e;

		/* A removal that failed before (host down) resumes its entry. */
		if (store_journal_find_pending(env->store, r->id, &e) == STORE_OK) {
			jid = e.id;
			store_journal_entry_release(&e);
		} else if (store_journal_begin(env->store, r->id,
					       STORE_JOURNAL_REMOVE, payload,
					       &jid) != STORE_OK) {
			free(payload);
			log_warn("instance %s: cannot journal removal: %s",
				 r->id, err_msg());
			goto out;
		}
	}
	free(payload);
	event_crash_point(env->crash_at, "remove_begin");
	if (!conn) {
		log_warn("instance %s: host %s is not connected; removal retried later",
			 r->id, r->host_name);
		goto out;
	}
	if (instance_remove(conn, r->pool, domain, r->id, env->owner,
			    r->drain_ms, &graceful) != 0) {
		log_error("instance %s: removal of %s from %s failed: %s (retried later)",
			  r->id, domain, r->host_name, err_msg());
		goto out;
	}
	if (jobs_journal_step(env, jid, STORE_STEP_VOLUMES_DELETED, 0) != 0) {
		log_warn("instance %s: %s", r->id, err_msg());
		goto out;
	}
	event_crash_point(env->crash_at, "removed");
	if (si.state == STORE_INSTANCE_DRAINING)
		store_instance_set_state(env->store, r->id, STORE_INSTANCE_DRAINING,
					 STORE_INSTANCE_DELETING);
	store_instance_set_state(env->store, r->id, STORE_INSTANCE_DELETING,
				 STORE_INSTANCE_GONE);
	store_journal_done(env->store, jid);
	event_record(env->store, r->group, r->id, "removed", NULL,
		     "%s removed from %s (%s)", domain, r->host_name,
		     graceful ? "shut down gracefully" : "destroyed");
	ok = true;
out:
	store_instance_release(&si);
out_nosi:
	return ok;
}
