/*
 * collect.h: per-host bulk collection of domain statistics and host
 * capacity, turned into per-instance rates.
 *
 * Per host and tick the collector makes ONE libvirt call,
 * virConnectGetAllDomainStats(groups, ACTIVE | NOWAIT), asking for the
 * stats groups the configuration needs (collect_stats_needed(): STATE,
 * plus CPU_TOTAL, BALLOON, BLOCK, INTERFACE for the metrics the policies
 * use; all five when InfluxDB stores every figure). Each group costs
 * libvirtd a round of queries to every QEMU process, so a CPU-only policy
 * collects at a fraction of the cost of all five (bench/README.md). The vCPU count and our metadata come from the
 * domain XML, read once per domain (virDomainGetXMLDesc, one call) and
 * cached by UUID; the cache entry is re-read after a lifecycle event for
 * that domain or a reconnection. Domains without our metadata are cached
 * as "not ours" and skipped (their vCPUs and memory still count as
 * allocated on the host). Host capacity (virNodeGetInfo once per
 * connection; virNodeGetMemoryStats and virNodeGetCPUStats every
 * capacity period, default 60 s) adds two calls per period.
 *
 * Hosts are collected independently: each host has a worker thread that
 * makes its calls, so a slow or dead host delays nobody; collect_tick()
 * never blocks, collect_wait() waits at most its timeout, and
 * collect_take() hands over the results of the hosts that finished.
 *
 * Our metadata, written by provisioning into the domain XML:
 *   <metadata>
 *     <va:instance xmlns:va="https://virt-autoscaler.org/xmlns/1"
 *                  group="web" id="web-0001" generation="3" owner="..."/>
 *   </metadata>
 * With opts.owner set, a domain whose owner is another installation's id
 * is not ours (not collected, its stats period never set); one without an
 * owner (made before installation ids) still is.
 */
#ifndef VA_COLLECT_H
#define VA_COLLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "domxml.h"
#include "host.h"
#include "rates.h"

/* Our metadata element (domxml.h writes it). */
#define VA_XMLNS_URI DOMXML_NS_URI
#define VA_XMLNS_ELEMENT "instance"

/* Every stats group the collector understands, and the flags of the one
 * bulk call per host and tick. */
#define COLLECT_STATS                                                        \
	(VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL |               \
	 VIR_DOMAIN_STATS_BALLOON | VIR_DOMAIN_STATS_INTERFACE |             \
	 VIR_DOMAIN_STATS_BLOCK)
#define COLLECT_FLAGS                                                        \
	(VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE |                          \
	 VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT)

/* Facts from a domain's XML; collect_facts_release(). */
struct collect_facts {
	bool ours;          /* has our valid <va:instance> metadata (whose
			       owner it names is domxml_owns()'s to judge) */
	struct domxml_meta meta; /* when ours: group, id, generation, owner
				    ("" when absent); zero otherwise */
	unsigned vcpus;     /* current vCPUs */
	uint64_t mem_kib;   /* <currentMemory>, else <memory> */
	unsigned disks;     /* <disk device='disk'> elements */
};

/*
 * Parse domain XML (outside input: fuzzed). Returns 0, or -1 with
 * err_set() when the text is not a domain's XML. Our <va:instance> is read
 * by domxml_meta_from_domain() (the one parser of our element): a
 * malformed one (missing group or id, a bad name, generation or owner)
 * leaves ours false and says why in *why when why is not NULL (err_msg()'s
 * text: valid until the next err_set() in this thread); else *why = NULL.
 */
int collect_parse_domain_xml(const char *xml, size_t len,
			     struct collect_facts *out, const char **why);
void collect_facts_release(struct collect_facts *f);

/*
 * One domain's typed parameters from the bulk call -> raw sample
 * (counters summed over disks and interfaces). Every field optional;
 * any integer type accepted. t_ms and vcpus are left to the caller.
 */
void collect_parse_stats(const virTypedParameter *params, int nparams,
			 struct rates_sample *out);

/* One instance in a host's result. Strings belong to the result. */
struct collect_instance {
	unsigned char uuid[VIR_UUID_BUFLEN];
	char uuid_str[VIR_UUID_STRING_BUFLEN];
	const char *name;
	const char *group;
	const char *id;
	uint64_t generation;
	int state;            /* virDomainState, -1 when unknown */
	unsigned vcpus;
	uint64_t mem_kib;     /* balloon.current, else from the XML */
	struct rates rates;   /* over the interval that ended at t_ms */
	struct rates_sample sample; /* the raw counters (/metrics' _total) */
};

enum collect_cap_field {
	COLLECT_CAP_NODEINFO,   /* cpus, mem_kib */
	COLLECT_CAP_FREE,       /* free_kib */
	COLLECT_CAP_CPU_UTIL,   /* cpu_util_pct */
	COLLECT_CAP_LAST
};

struct collect_capacity {
	uint32_t present;       /* bit (1u << enum collect_cap_field) */
	unsigned cpus;          /* logical CPUs */
	uint64_t mem_kib;       /* physical memory */
	uint64_t free_kib;      /* free + buffers + cached (reclaimable) */
	double cpu_util_pct;    /* busy share of all CPUs over the period */
	int64_t refreshed_ms;   /* when free_kib/cpu_util were measured */
	/* From the bulk stats call, every active domain (ours or not): */
	unsigned domains;       /* active domains */
	unsigned vcpus_alloc;   /* their vCPUs */
	uint64_t mem_alloc_kib; /* their balloon.current (else XML memory) */
};

struct collect_host_result {
	struct host *host;
	bool ok;                /* the bulk call succeeded; false also for a
				   host that is down (no call was made) */
	int64_t t_ms;           /* monotonic time of the bulk call */
	const struct collect_instance *inst; /* ours (or the bench prefix) */
	size_t n_inst;
	/* Raw UUIDs of our instances that were in the previous result but
	 * are not active any more. */
	const unsigned char (*gone)[VIR_UUID_BUFLEN];
	size_t n_gone;
	struct collect_capacity cap;
	unsigned calls;         /* libvirt calls this round */
	unsigned calls_stats;   /* of which bulk stats calls */
	unsigned calls_xml;     /* of which domain XML reads */
	unsigned calls_node;    /* of which node capacity calls */
	unsigned calls_other;   /* stats period settings */
	/* libvirt calls made on this host so far, this round included:
	 * an absolute count like rounds and errors, so that a consumer fed
	 * the same result twice counts it once (metrics.c) */
	unsigned long calls_total;
	int64_t duration_us;    /* wall time of the round */
	unsigned long rounds;   /* rounds completed on this host */
	unsigned long errors;   /* failed rounds on this host */
};

struct collect_opts {
	/* Also collect domains whose name starts with this, with
	 * group "bench" (the benchmark). NULL: only ours. */
	const char *name_prefix;
	/* Period of the two node capacity calls; 0 = every tick. Default
	 * (collect_opts_defaults) 60 s. */
	int64_t capacity_period_ms;
	/* When an instance of ours first shows no balloon stats, set its
	 * stats period to this many seconds (one call); 0 = never. */
	int stats_period_s;
	/* false: collect_tick() collects each host inline (tests). */
	bool threads;
	/* Our installation id (store_owner_id(); copied): domains with
	 * another owner are not ours. NULL: the owner is not checked. */
	const char *owner;
	/* Stats groups to ask for (virDomainStatsTypes within
	 * COLLECT_STATS; STATE is always added); 0 = all of COLLECT_STATS.
	 * Metrics of groups not asked for are absent from the rates, not 0.
	 * Without BALLOON, memory comes from the domain XML and no stats
	 * period is set. */
	unsigned stats;
	/* Called (from a host's thread, no lock held) when a host's round
	 * ended and no other host's is in flight: the results are ready for
	 * collect_take(). Two hosts ending at once may both call it. NULL:
	 * nobody is told. */
	void (*on_result)(void *arg);
	void *on_result_arg;
};
void collect_opts_defaults(struct collect_opts *o);

struct config;
/*
 * The stats groups cfg needs (for collect_opts.stats): STATE always;
 * CPU_TOTAL, BALLOON, BLOCK or INTERFACE for each metric a group's policy
 * tracks (target) or has a step rule on (cpu, memory, disk_*, net_*); all
 * of COLLECT_STATS when the InfluxDB sink is on, since it stores every
 * figure. cfg is borrowed.
 */
unsigned collect_stats_needed(const struct config *cfg);

struct collector;

struct collector *collector_new(const struct collect_opts *opts);
/* Stops the workers (waiting for rounds in flight). Accepts NULL. */
void collector_free(struct collector *c);

/*
 * Collect from h (borrowed: it must outlive the collector). collect_tick()
 * calls host_tick() (the caller may too, from the same thread), and the
 * collector takes h's domain event callback (host_set_domain_event_cb).
 */
void collector_add_host(struct collector *c, struct host *h);

/* Drive connections and start a round on every connected host whose
 * previous round is done. Never blocks (unless opts.threads is false). */
void collect_tick(struct collector *c, int64_t now_ms);
/* Wait until every round started by collect_tick() finished, at most
 * timeout_ms. Returns true when all finished. */
bool collect_wait(struct collector *c, int64_t timeout_ms);
/* Whether a round collect_tick() started is still running on some host,
 * or its result waits for collect_take() (never, without opts.threads). */
bool collect_pending(struct collector *c);
/*
 * Call fn once per host that finished a round since the last
 * collect_take(), or that was down at the last collect_tick() (ok false,
 * no instances), with its result (valid only during the call; fn must
 * not call collector functions).
 */
void collect_take(struct collector *c,
		  void (*fn)(const struct collect_host_result *r, void *opaque),
		  void *opaque);

/* libvirt calls made so far on all hosts. */
unsigned long collect_total_calls(struct collector *c);
/* Change the stats groups (as collect_opts.stats) from the next round on,
 * e.g. after a reload changed the policies. */
void collect_set_stats(struct collector *c, unsigned stats);
/* The base rates (bit (1u << enum rates_metric)) that the stats groups
 * stats (as collect_opts.stats) can yield: what the metrics store keeps. */
unsigned collect_stats_metrics(unsigned stats);

/*
 * Set the balloon statistics period (seconds) of a running domain (live
 * only: provisioning also writes <stats period='N'/> into the XML).
 * Two calls: lookup by UUID and the setting. 0 or -1 with err_set().
 */
int collect_set_stats_period(struct host *h,
			     const unsigned char uuid[VIR_UUID_BUFLEN],
			     int period_s);

#endif
