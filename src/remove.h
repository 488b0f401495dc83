/*
 * remove.h: removing an instance's VM from its host, and the one rule
 * that decides whether a domain found under an instance's name is ours to
 * remove. libvirt only: no state store, no daemon.
 */
#ifndef VA_REMOVE_H
#define VA_REMOVE_H

#include <stdbool.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "jobs.h"

enum domain_owner {
	DOMAIN_ABSENT,    /* no domain by that name */
	DOMAIN_OURS,      /* instance id's, owner ours or none (older version) */
	DOMAIN_NOT_OURS,  /* someone else's: never touch it */
	DOMAIN_FOREIGN_INSTANCE, /* instance id's, made by another
				    installation: its volumes are theirs too */
};

/*
 * Whose is the domain called `domain` (instance id, our installation id
 * owner)? *why says why it is not ours for DOMAIN_NOT_OURS and
 * DOMAIN_FOREIGN_INSTANCE (caller frees). 0, or -1 with err_set() when
 * libvirt cannot tell.
 */
int domain_owner(virConnectPtr conn, const char *domain, const char *id,
		 const char *owner, enum domain_owner *out, char **why);

/*
 * Remove an instance's domain (graceful shutdown up to drain_ms, then
 * destroy and undefine) and its volumes; every step tolerates what is
 * already gone. The domain found under that name is touched only if its
 * metadata names instance id and either no owner (an older version made
 * it) or owner (our installation id); any other domain by that name
 * belongs to someone else and is left alone with a warning: only the
 * instance's own volumes (named after id) are deleted then, unless that
 * domain is instance id made by another installation (then nothing is
 * touched: the volumes are its). 0, or -1 with err_set().
 */
int instance_remove(virConnectPtr conn, const char *pool, const char *domain,
		    const char *id, const char *owner, int64_t drain_ms,
		    bool *graceful);

/*
 * A removal job (jobs.c): journaled, instance_remove() on conn (NULL: the
 * host cannot be reached; retried later), then the instance is gone. True
 * when it is.
 */
bool remove_run(const struct jobs_env *env, virConnectPtr conn,
		const struct remove_spec *r);

#endif
