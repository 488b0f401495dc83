/*
 * members.h: the loop's side of the load-balancer membership (issue 16):
 * which instances of each group are in service (ready) with which
 * address, published for GET /v1/groups/NAME/targets and rendered to the
 * groups' targets files on change (targets.h does the rendering and the
 * writing, on a thread per file).
 *
 * An instance's address is the static one the group gave it (the store's
 * address column), else the one its host's inventory pass read from
 * libvirt (inventory.h: leases, agent, ARP; cached, refreshed every few
 * minutes). The ready instances are listed from the store once every
 * MEMBERS_PERIOD_MS, one query for all groups: a check-in shows up in the
 * targets within about that long.
 *
 * Threads: the loop only; the targets writers are members.c's.
 */
#ifndef VA_MEMBERS_H
#define VA_MEMBERS_H

#include <stdint.h>

#include "control.h"
#include "inventory.h"

#define MEMBERS_PERIOD_MS 2000

struct daemon;
struct members;

/* Accepts NULL. Stops the writers (a reload POST in flight is aborted). */
void members_free(struct members *m);
/* A listed inventory pass of host `host`: its domains' addresses. */
void members_host_addresses(struct daemon *d, const char *host,
			    const struct inventory_result *res);
/* Every turn (the leader): list, compare, render and post on change. */
void members_tick(struct daemon *d, int64_t now_ms);
/* Fill the snapshot's targets and addresses. */
void members_publish(struct daemon *d, struct control_snapshot *s);

#endif
