/*
 * metrics.h: the numbers behind /metrics, rendered in Prometheus' text
 * exposition format (version 0.0.4).
 *
 * A process-wide registry: the daemon's loop feeds it (collection results,
 * group state, its own tick), the HTTP server renders it. Thread-safe.
 *
 * Families (docs/metrics.md has the table; counters end in _total;
 * ratios are 0-1, never percent; one unit per name):
 *   va_build_info{version}  1
 *   va_instance_{cpu_ratio,memory_used_ratio}{group,host,instance_id}
 *     gauges over the last collection interval, and the raw counters
 *     va_instance_{cpu_seconds,disk_read_bytes,disk_written_bytes,
 *     disk_reads,disk_writes,network_receive_bytes,
 *     network_transmit_bytes}_total: only when asked for (they name every
 *     VM: /metrics shows them with the admin token, or to anyone with
 *     daemon.metrics_instances). A missing figure is absent, not 0.
 *   va_group_{desired,current,ready}{group}
 *   va_group_{cpu_ratio,memory_used_ratio,disk_operations_per_second,
 *     disk_bytes_per_second,network_bytes_per_second}{group,stat}
 *     the engine's input (stat "mean" or "max" over the instances)
 *   va_scale_actions_total{group,direction="up"|"down"}
 *   va_instance_ready_seconds{group} histogram: creation to first check-in
 *   va_host_up{host}, va_host_{cpus,memory_bytes,free_memory_bytes,
 *     cpu_utilization_ratio,domains,vcpus_allocated,
 *     memory_allocated_bytes}{host}
 *   va_host_collect_{rounds,errors}_total{host},
 *   va_host_libvirt_calls_total{host}, va_host_collect_duration_seconds{host}
 *   va_tick_duration_seconds, va_ticks_total, va_tick_seconds (histogram)
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
/* The group's warm pool: instances being prepared, and parked. */
/* Instances the group's active refresh still has to replace (0: none). */
void metrics_set_group_refresh(const char *group, int remaining);
void metrics_set_group_warm(const char *group, int warming, int warm);
void metrics_set_group(const char *group, int desired, int current, int ready,
		       const struct rates_group *agg);
/* The policy's targets of an existing group, per policy metric in the
 * engine's unit (0: not tracked): shown as stat="target". */
void metrics_set_group_targets(const char *group, const double *target);
/* How old the newest collector round of the group's hosts was at its last
 * decision (va_group_decision_data_age_seconds). */
void metrics_set_group_data_age(const char *group, double age_s);
void metrics_remove_group(const char *group);
/* The group's desired size changed from -> to (the policy or by hand). */
void metrics_scale_action(const char *group, int from, int to);
/* An instance of the group became ready this long after its creation
 * (any thread). */
/* A lifecycle hook's attempt or end: hook "launch"/"terminate", result
 * "sent", "failed", "gave_up", "continue", "abandon" or "timeout". */
void metrics_hook(const char *hook, const char *result);
void metrics_instance_ready(const char *group, double seconds);
/* The daemon's own loop. */
void metrics_tick(double seconds);

/* Append the exposition text to out; the per-instance series only with
 * instances. */
void metrics_render_prometheus(struct strbuf *out, bool instances);
/* Forget everything (tests). */
void metrics_reset(void);

#endif
