/*
 * collect_int.h: what the parts of the collector share: collect.c (the
 * collector, its worker threads and its interface), collect_round.c (one
 * host's round: the bulk call, the per-domain cache, rates, capacity and the
 * result). collect_parse.c needs only collect.h. Nothing outside them
 * includes it.
 */
#ifndef VA_COLLECT_INT_H
#define VA_COLLECT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collect.h"
#include "log.h"
#include "util.h"

struct centry;

struct cache {
	struct centry **b;
	size_t n_b, count;
	unsigned seq; /* entries made so far (spreads the UUID checks) */
};

/* Instances whose strings live in an arena (offsets until published). */
struct result {
	struct collect_host_result pub;
	struct collect_instance *inst;
	size_t n_inst, a_inst;
	size_t *str_off;     /* 3 per instance: name, group, id */
	unsigned char (*gone)[VIR_UUID_BUFLEN];
	size_t n_gone, a_gone;
	struct strbuf arena;
};

struct chost {
	struct collector *c;
	struct host *h;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;     /* guards the fields down to `pub` */
	pthread_cond_t cond;
	bool kick, busy, stop;
	int64_t kick_ms;
	bool forget_all;          /* invalidations from the event thread */
	unsigned char (*inval)[VIR_UUID_BUFLEN];
	size_t n_inval, a_inval;
	struct result *pub;
	bool pub_new;

	/* Worker-owned. */
	struct result *work;
	struct cache cache;
	unsigned long round;
	unsigned long rounds, errors;
	unsigned long calls_total; /* this host's libvirt calls so far */
	unsigned stats;           /* groups asked for in this round */
	bool no_nowait;           /* the driver rejected NOWAIT */
	bool no_memstats;         /* the driver has no node memory stats */
	bool have_nodeinfo;
	unsigned cpus;
	uint64_t node_mem_kib;
	int64_t cap_next_ms;
	bool cap_have_free, cap_have_util;
	uint64_t free_kib;
	double cpu_util;
	int64_t cap_ms;
	bool have_cpu_prev;
	uint64_t cpu_busy_prev, cpu_total_prev;
	struct log_complain complain;
};

struct collector {
	struct collect_opts opts;
	char *name_prefix;
	char *owner;
	struct chost **hosts;
	size_t n_hosts;
	pthread_mutex_t lock;     /* guards total_calls and stats */
	pthread_cond_t done;      /* a round finished */
	unsigned long total_calls;
	unsigned stats;           /* groups of the bulk call (opts.stats) */
};

/* collect_round.c */
/* One round of host ch: the bulk call, the result published in ch->pub. */
void collect_host_round(struct chost *ch, int64_t now_ms);
/* Whether a host's round is running (or, with or_untaken, its result not
 * taken yet); collect_pending() is (c, true). */
bool collect_running(struct collector *c, bool or_untaken);
void collect_cache_release(struct cache *c);
void collect_result_reset(struct result *r);
/* Turn arena offsets into pointers (the arena no longer grows). */
void collect_result_finish(struct result *r);
void collect_result_release(struct result *r);

#endif
