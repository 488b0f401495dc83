/*
 * inventory.h: what one libvirt host holds (its domains, whether each
 * runs, our metadata in each, the volumes of one pool), gathered off the
 * daemon's loop at a cost of a few calls per host, not per domain.
 *
 * A pass makes these calls to the host:
 *   virConnectListAllDomains(conn, flags 0)  every domain, active or not,
 *                                            in one consistent listing
 *   virDomainGetMetadata(ELEMENT, our URI)   only for a UUID the cache
 *                                            does not know (see below)
 *   virStoragePoolLookupByName, virStoragePoolRefresh,
 *   virStoragePoolListAllVolumes             the pool's volumes
 * The UUID, the name and whether a domain runs come with the listing:
 * virDomainGetUUIDString(), virDomainGetName() and virDomainGetID() read
 * the virDomainPtr the listing returned, without a call to the host (an
 * inactive domain has no id). One listing rather than one for
 * VIR_CONNECT_LIST_DOMAINS_ACTIVE and one for ..._INACTIVE: a domain that
 * stops or starts between two listings would be in neither, and the
 * reconciler would take it for gone. In steady state a pass is 4 calls
 * however many domains the host has.
 *
 * The cache: our metadata is written when a domain is defined and not
 * changed afterwards (but for our owner id, which the reconciler writes
 * once into domains of older versions: it calls inventory_forget() then),
 * so each domain's metadata, or the fact that it has none of ours, is
 * kept by UUID and read again only for a UUID not seen at the previous
 * pass. Entries of domains that are no longer listed are dropped at each
 * pass, so the cache is as big as the host's domain list. A domain
 * undefined and defined again under the same UUID between two passes
 * keeps its old entry (the daemon never reuses a UUID).
 *
 * The connection: the inventory has one of its own to the host, opened
 * by the first pass (virConnectOpen on the host's URI, keepalive as
 * host_link.c sets it) and kept for the next ones; a pass that finds it dead
 * closes it and the next pass opens another. Only one pass runs at a
 * time, so no call on it ever waits behind another thread's call, and
 * keepalive bounds each call to about 20 s on a host that stops
 * answering. (A call on host_conn(), which the collector and the workers
 * share, can wait behind another thread's and then poll with no timeout,
 * host.h: a pass could hang there as long as the host stays half-dead.)
 *
 * Threads and ownership: a struct inventory belongs to one thread (the
 * daemon's loop). inventory_start() runs the pass in a thread of its own
 * and hands it the connection and the cache; nothing else is shared with
 * the pass thread but its completion flag. inventory_take() returns the
 * result when the pass has finished, without waiting, and takes the
 * connection and the cache back. A host that does not answer holds only
 * its own pass: no other host's, and not the caller, who simply finds
 * nothing to take. inventory_free() abandons a pass still running: its
 * thread frees what it holds (connection included) when its call returns.
 */
#ifndef VA_INVENTORY_H
#define VA_INVENTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "domxml.h"

/*
 * Addresses: a running domain of ours also gets its address, read with
 * virDomainInterfaceAddresses() from the DHCP leases of libvirt's
 * network, else the guest agent, else the host's ARP table (the first
 * source that answers with a usable address: IPv4 before IPv6, no
 * loopback or link-local). It is cached with the metadata and read
 * again only when older than INVENTORY_ADDR_REFRESH_MS, or, when no
 * source told one (a guest still booting, a bridge without agent), after
 * INVENTORY_ADDR_RETRY_MS; a domain that stops forgets it (read at its
 * next start). At most INVENTORY_ADDR_DOMAINS_MAX
 * domains a pass: never a call per domain per tick. Hosts on QEMU user
 * networking are not asked (inventory_set_addresses).
 */
#define INVENTORY_ADDR_LEN 46            /* INET6_ADDRSTRLEN */
#define INVENTORY_ADDR_REFRESH_MS (5 * 60 * 1000)
#define INVENTORY_ADDR_RETRY_MS (60 * 1000)
#define INVENTORY_ADDR_DOMAINS_MAX 32

/* One domain as listed. Strings owned by the result. */
struct inventory_domain {
	char uuid[VIR_UUID_STRING_BUFLEN]; /* "" if libvirt could not say */
	char *name;
	bool active;                       /* running or paused */
	struct domxml_meta *meta;          /* our metadata (valid), or NULL:
					      none, or malformed (not ours) */
	char address[INVENTORY_ADDR_LEN];  /* active and ours: its address
					      as last read, "" unknown */
};

/* What one pass found; inventory_result_free(). */
struct inventory_result {
	struct inventory_domain *domains; /* by meta->id, those without
					     metadata last, then by name */
	size_t n_domains;
	char **volumes;           /* names in the pool */
	size_t n_volumes;
	bool listed;              /* the domain listing succeeded */
	bool complete;            /* listed, and the metadata of every listed
				     domain is known: only then may a
				     reconciler conclude that a domain is
				     missing */
	bool volumes_listed;      /* the pool was found and listed */
	bool call_failed;         /* a call failed: the caller may want to
				     check the host's other connections */
	bool connected;           /* this pass opened the connection */
	/* SHA-256 of listed, complete, volumes_listed, every domain (but its
	 * address) and volume, in their order, when listed: two passes with
	 * the same digest found the same for the reconcile planner, which
	 * then plans nothing new (reconcile.c) */
	unsigned char digest[32];
	bool have_digest;
	char *error;              /* the first failure, NULL when none */
	unsigned calls;           /* libvirt calls that went to the host
				     (opening the connection not counted) */
	unsigned meta_calls;      /* of which metadata reads (cache misses) */
	unsigned addr_calls;      /* of which address reads */
	int64_t duration_ms;
};

void inventory_result_free(struct inventory_result *r);

struct inventory;

/* An inventory of host `host` (for messages) at libvirt URI uri (both
 * copied). Connects at the first pass. Never NULL. */
struct inventory *inventory_new(const char *host, const char *uri);
/* Free; a pass still running is abandoned (see above). Accepts NULL. */
void inventory_free(struct inventory *inv);

/*
 * Start a pass listing the domains and the volumes of pool `pool`
 * (copied). 0, or -1 with err_set() when a pass is still running or no
 * thread could be started.
 */
int inventory_start(struct inventory *inv, const char *pool);
/* A pass has been started and not taken yet. */
bool inventory_running(const struct inventory *inv);
/* Since when (util_now_ms()) the pass not taken yet runs; 0 if none. */
int64_t inventory_started_ms(const struct inventory *inv);
/* The finished pass's result (caller frees), or NULL while none has
 * finished. Never blocks. */
struct inventory_result *inventory_take(struct inventory *inv);
/* Block until the pass finishes or timeout_ms pass: 0 when it has
 * finished (or none runs), -1 on timeout. For the start and tests. */
int inventory_wait(struct inventory *inv, int64_t timeout_ms);

/* Whether passes read the running domains' addresses (default: yes). A
 * host whose guests are on QEMU user networking has none to read: no
 * call is made for them. */
void inventory_set_addresses(struct inventory *inv, bool read);

/* The domain's metadata changed (we wrote it): read it again at the next
 * pass. uuid as in struct inventory_domain. */
void inventory_forget(struct inventory *inv, const char *uuid);
/* The better of the addresses in v (n of them) for a load balancer:
 * the first IPv4 that is not loopback or link-local, else the first such
 * IPv6; NULL when none is usable. For the tests. */
const char *inventory_pick_address(const char *const *v, size_t n);

/* Domains in the cache (0 while a pass holds it). */
size_t inventory_cached(const struct inventory *inv);

#endif
