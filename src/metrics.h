/*
 * metrics.h: the numbers behind /metrics, rendered in Prometheus' text
 * exposition format (version 0.0.4).
 *
 * A process-wide registry: the daemon's loop feeds it (collection results,
 * group state, its own tick), the HTTP server renders it. Thread-safe.
 *
 * Families (all gauges unless the name ends in _total):
 *   va_instance_{cpu_percent,memory_percent,disk_read_bytes_per_second,
 *     disk_write_bytes_per_second,disk_read_iops,disk_write_iops,
 *     net_rx_bytes_per_second,net_tx_bytes_per_second}{group,host,instance}
 *       the instance's rates over its last collection interval (a missing
 *       rate is absent, not 0)
 *   va_group_{desired,current,ready}{group}
 *   va_group_metric{group,metric,stat="mean"|"max"}  the engine's input
 *   va_host_up{host}, va_host_{cpus,memory_bytes,free_memory_bytes,
 *     cpu_utilization_percent,domains,vcpus_allocated,
 *     memory_allocated_bytes}{host}
 *   va_host_collect_{rounds,errors}_total{host},
 *   va_host_libvirt_calls_total{host}, va_host_collect_duration_seconds{host}
 *   va_tick_duration_seconds, va_ticks_total
 */
#ifndef VA_METRICS_H
#define VA_METRICS_H

#include <stdbool.h>

#include "collect.h"
#include "rates.h"
#include "util.h"

/* Replace what is known about r->host with this round's result (copied). */
void metrics_update_host(const struct collect_host_result *r);
/* A host that is down (no round this tick). */
void metrics_host_down(const char *host);
/* A group's sizes and aggregated metrics (agg may be NULL). */
void metrics_set_group(const char *group, int desired, int current, int ready,
		       const struct rates_group *agg);
void metrics_remove_group(const char *group);
/* The daemon's own loop. */
void metrics_tick(double seconds);

/* Append the exposition text to out. */
void metrics_render_prometheus(struct strbuf *out);
/* Forget everything (tests). */
void metrics_reset(void);

#endif
