/*
 * placement_plugin.h: the public, versioned C ABI for placement plugins of
 * virt-autoscaler. Self-contained: a plugin includes only this header (and
 * the C library); it must not include any other virt-autoscaler header.
 *
 * A plugin is a shared object named in a group's configuration as
 *     placement: plugin:/absolute/path/to/strategy.so
 *     placement_options: { key: value, ... }      # strings, passed through
 * The daemon dlopen()s it (RTLD_NOW | RTLD_LOCAL) and looks up ONE data symbol:
 *
 *     const struct va_placement_plugin va_placement_plugin = {
 *         .abi_version = VA_PLACEMENT_ABI_VERSION,
 *         .name = "weighted",
 *         .init = my_init,       // may be NULL
 *         .choose = my_choose,   // required
 *         .free = my_free,       // may be NULL
 *     };
 *
 * abi_version is checked before anything else is read: a plugin built for
 * another version is refused with an error naming both versions.
 *
 * Calling sequence (all calls from one thread at a time, per group):
 *   init(options, n_options, &state, err, errlen)   once, when the group's
 *       configuration is loaded; return 0, or -1 with a message in err
 *       (NUL-terminated, at most errlen bytes) to refuse the options.
 *   choose(state, request, hosts, n_hosts, err, errlen)   for every new VM.
 *       The daemon has ALREADY removed the hosts that cannot take the VM
 *       (host down, CPU/memory overcommit limits, reserved memory,
 *       max_instances) and, when the group has `spread: true`, kept only the
 *       hosts with the fewest VMs of the group. So n_hosts >= 1 and every
 *       host offered is acceptable. Return the index (0..n_hosts-1) of the
 *       chosen host, or -1 with a message in err to refuse (the daemon
 *       records "hosts full: <your message>" and retries on a later tick).
 *       Any other value is an error of the plugin.
 *   free(state)   when the group is removed or the configuration reloaded.
 *
 * Everything passed in is borrowed and valid only during the call; the
 * plugin must copy what it keeps. It must not block for long (it runs in
 * the daemon's decision loop) and must not call exit() or install signal
 * handlers.
 *
 * Version history:
 *   1  initial version.
 * Any change to the structures below (new field, new callback) raises
 * VA_PLACEMENT_ABI_VERSION.
 */
#ifndef VA_PLACEMENT_PLUGIN_H
#define VA_PLACEMENT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VA_PLACEMENT_ABI_VERSION 1u

/* The name of the symbol the daemon looks up. */
#define VA_PLACEMENT_PLUGIN_SYMBOL "va_placement_plugin"

/* One host as the daemon sees it when placing a VM. */
struct va_placement_host {
	const char *name;          /* host name from the configuration */
	int up;                    /* 1: connected and measured; 0: down */
	const char *down_reason;   /* when !up, why (may be NULL) */

	/* Measured on the host. */
	uint32_t cpus;             /* logical CPUs (virNodeGetInfo) */
	uint64_t mem_total;        /* bytes of RAM (virNodeGetInfo) */
	uint64_t mem_free;         /* bytes free now (virNodeGetFreeMemory) */
	double cpu_use;            /* host CPU use 0.0..1.0; < 0 if unknown */

	/* Committed on the host by its running (or paused) domains, ours or
	 * not. */
	uint32_t vcpus_alloc;      /* vCPUs */
	uint64_t mem_alloc;        /* bytes of (maximum) guest memory */
	uint32_t instances;        /* virt-autoscaler's VMs, all groups */
	uint32_t group_instances;  /* VMs of the group being placed */

	/* Limits from the configuration (0 means "no limit" for each). */
	double cpu_overcommit;     /* vCPUs allowed per host CPU */
	double mem_overcommit;     /* committed guest memory per usable byte */
	uint64_t reserved_memory;  /* bytes kept for the host itself */
	uint32_t max_instances;    /* virt-autoscaler VMs on this host */
};

/* The VM to place. */
struct va_placement_request {
	const char *group;         /* group name */
	const char *instance_id;   /* id the new VM will get (may be NULL) */
	uint32_t vcpus;
	uint64_t memory;           /* bytes */
	uint32_t seq;              /* 0 for the first VM of a scale-out, 1.. */
};

/* One `placement_options` entry of the group, both as strings. */
struct va_placement_option {
	const char *key;
	const char *value;
};

struct va_placement_plugin {
	uint32_t abi_version;      /* VA_PLACEMENT_ABI_VERSION; checked first */
	const char *name;          /* short name for logs and events */
	int (*init)(const struct va_placement_option *options, size_t n_options,
		    void **state, char *err, size_t errlen);
	int (*choose)(void *state, const struct va_placement_request *request,
		      const struct va_placement_host *hosts, size_t n_hosts,
		      char *err, size_t errlen);
	void (*free)(void *state);
};

#ifdef __cplusplus
}
#endif

#endif
