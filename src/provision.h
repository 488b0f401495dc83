/*
 * provision.h: creating one VM on a host, step by step, journaled.
 *
 * Everything a provisioning needs is built once, from the configuration,
 * into a struct provision_spec (provision_spec_new): the domain as
 * domxml.h describes it, the cloud-init seed as seed.h does, and where it
 * goes. The worker (jobs.c) runs it with provision_run().
 *
 * Steps: requested -> provisioning -> (overlay volume, seed volume,
 * domain defined, started) -> booting; each step journaled, so that a
 * daemon killed at any point finishes or rolls back (reconcile.c). The
 * guest's check-in makes it ready (api.c). A failure rolls back whatever
 * was created and ends the instance (deleting -> gone); the group asks for
 * another one after a backoff.
 *
 * Adding a key to the VM template takes three edits: its row in config.c's
 * table (and field in config.h), its field in struct domxml_spec (and the
 * XML domxml_build writes for it), and one line in provision_spec_new()
 * that copies it. docs/architecture.md shows an example.
 */
#ifndef VA_PROVISION_H
#define VA_PROVISION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "config.h"
#include "domxml.h"
#include "jobs.h"
#include "seed.h"

/* The group's files, read when the configuration was loaded. */
struct provision_files {
	const char *user_data;
	size_t user_data_len;
	const char *network_config;
	size_t network_config_len;
	const char *domain_template;
	size_t domain_template_len;
};

struct provision_spec {
	char *id, *group;
	char *host_name, *uri, *pool;
	char *image;          /* absolute local path, or a volume in the pool */
	uint64_t disk;        /* root disk size */
	/* the domain: everything but the disks' paths and the MAC, which
	 * provision_run() fills in */
	struct domxml_spec dom;
	char *domain_template;    /* the group's domain XML template, or NULL */
	size_t domain_template_len;
	/* the seed: everything but the secret and the MAC */
	struct seed_spec seed;
	struct seed_net net;      /* seed.net points here with a static address */
	bool warm;                /* for the warm pool: the instance is
				     warming from the start and stays so */
	/* the strings the spec points to */
	char **owned;
	size_t n_owned;
};

/*
 * Build the spec of instance id of group gc on host hc; address is its
 * static address from the group's range, or NULL. The spec copies what
 * it needs: the configuration may go away. NULL with err_set() when the
 * group cannot be provisioned (no image).
 */
struct provision_spec *provision_spec_new(const struct config *cfg,
					  const struct config_group *gc,
					  const struct config_host *hc,
					  const struct provision_files *files,
					  const char *id, const char *address,
					  int64_t generation, const char *owner);
void provision_spec_free(struct provision_spec *spec);

/*
 * Run it on conn (the worker's own connection, or NULL when the host
 * cannot be reached: the instance then fails and ends). Once the base
 * image is in the pool, no step starts after env->deadline_ms. True when
 * the domain runs (instance booting).
 */
bool provision_run(const struct jobs_env *env, virConnectPtr conn,
		   struct provision_spec *spec);

#endif
