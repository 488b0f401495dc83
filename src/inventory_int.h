/*
 * inventory_int.h: what the parts of the inventory share: inventory.c
 * (the loop's side and the cache kept between passes) and
 * inventory_pass.c (a pass on its own thread). Nothing outside them
 * includes it: inventory.h is the module's interface.
 *
 * The pass (struct pass) is the only thing the loop and the pass thread
 * share: the loop fills it and starts the thread; the thread owns its
 * inputs (connection, old cache) and outputs (connection, result, new
 * cache) until it sets `done` under the mutex; from then on they are the
 * loop's. A reference count (the thread's and the inventory's) decides
 * who frees the pass when the inventory abandons it.
 */
#ifndef VA_INVENTORY_INT_H
#define VA_INVENTORY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "inventory.h"

/* A domain's metadata as last read: NULL when it has none of ours. */
struct centry {
	char uuid[VIR_UUID_STRING_BUFLEN];
	struct domxml_meta *meta;
	char addr[INVENTORY_ADDR_LEN];  /* "" unknown */
	int64_t addr_ms;                /* when last read (util_now_ms), 0 never */
};

/* Sorted by uuid, unique. */
struct cache {
	struct centry *v;
	size_t n;
};

struct pass {
	pthread_mutex_t m;
	pthread_cond_t cond;      /* done */
	unsigned refs;            /* the thread's and the inventory's */
	bool done;
	int64_t started_ms;
	/* inputs, the thread's until done */
	char *host, *uri, *pool;
	bool addresses;           /* read the addresses */
	struct cache old;
	/* in and out: the thread's until done, then the inventory's */
	virConnectPtr conn;       /* NULL: the pass opens one */
	/* outputs, the thread's until done, then the inventory's */
	struct cache cache;
	struct inventory_result *res;
};

/* inventory.c: the cache */
/* Free the entries (the struct itself is the caller's). */
void inventory_cache_release(struct cache *c);
/* Order of entries by uuid (qsort, bsearch). */
int inventory_centry_cmp(const void *a, const void *b);
/* The entry of uuid, or NULL. */
struct centry *inventory_cache_find(const struct cache *c, const char *uuid);

/* inventory_pass.c */
/* The pass's thread (arg: the pass; drops the thread's reference). */
void *inventory_pass_main(void *arg);
/* Free a pass and all it still holds. */
void inventory_pass_free(struct pass *p);
/* Drop one reference; the last frees. */
void inventory_pass_unref(struct pass *p);

#endif
