/*
 * config.h: autoscale.yaml, parsed and validated into a data model.
 *
 * The whole file is read and checked before anything uses it: every
 * problem becomes one line "FILE:LINE:COLUMN: what is wrong" (file-level
 * problems "FILE: what is wrong"), all problems are reported, and the
 * loader returns NULL if there was any. The accepted format is described
 * in autoscale.yaml(5); one table of options per section in config.c
 * (name, type, bounds, default, reloadable, doc) drives parsing, defaults,
 * printing and the man-page cross-check.
 *
 * The structs below are a transparent, read-only data model: after a
 * successful load every field holds its effective value (defaults filled
 * in). Everything is owned by the struct config; config_free() frees it.
 * Pointers handed out (groups, hosts, strings) stay valid until then.
 */
#ifndef VA_CONFIG_H
#define VA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "policy.h"
#include "util.h"

/* Files larger than this are refused (a configuration is a few KiB). */
#define CONFIG_MAX_FILE_SIZE (4u << 20)

/*
 * A secret (database password, admin token, InfluxDB password) is never
 * written in the configuration itself; the configuration says where it
 * comes from: { file: PATH } or { env: NAME }. Only the source is kept.
 */
enum config_secret_source {
	CONFIG_SECRET_NONE, /* not configured */
	CONFIG_SECRET_FILE, /* ref: path (relative: to the config's dir) */
	CONFIG_SECRET_ENV,  /* ref: environment variable name */
	CONFIG_SECRET_LAST
};

struct config_secret {
	enum config_secret_source source;
	char *ref; /* path or variable name as written; NULL when NONE */
	char *path; /* FILE: ref resolved against the config file's dir */
};

/*
 * Read a secret now. On success *out is a NUL-terminated string the
 * caller frees (trailing newlines of a file are removed) and 0 is
 * returned. -1 with err_set() if the source is NONE, the file cannot be
 * read or is empty, or the variable is unset or empty. A secret file
 * that other users may read is logged as a warning (the value never is).
 */
int config_secret_read(const struct config_secret *s, char **out);

/*
 * An estimate of the entropy of a token in bits (length times log2 of
 * the alphabet its characters use; 0 for fewer than 8 distinct
 * characters). Admin tokens under 128 bits are refused.
 */
double config_token_bits(const char *s);

/* daemon.state: where the daemon keeps its state. */
enum config_state_kind {
	CONFIG_STATE_SQLITE, /* sqlite:///ABS/PATH */
	CONFIG_STATE_MYSQL,  /* mysql://[USER@]HOST[:PORT]/DB[?socket=PATH] */
	CONFIG_STATE_LAST
};

struct config_state {
	char *url;       /* as written */
	enum config_state_kind kind;
	char *path;      /* SQLITE: database file */
	char *user;      /* MYSQL: user or NULL (then the client's default) */
	char *host;      /* MYSQL: host name or address ("localhost": socket) */
	int port;        /* MYSQL: 0 = default (3306) */
	char *database;  /* MYSQL: database name */
	char *socket;    /* MYSQL: unix socket path or NULL */
};

struct config_tls {
	bool present;  /* the tls block was given: serve HTTPS */
	char *cert;    /* PEM certificate chain (path as written) */
	char *key;     /* PEM private key (path as written) */
	char *ca;      /* client side: CA to verify the daemon with, or NULL */
};

struct config_http {
	uint64_t max_body;   /* largest accepted request body, bytes */
	int max_connections; /* concurrent connections */
	int64_t timeout_ms;  /* idle connection timeout */
	int max_per_address; /* concurrent connections per client address */
	int64_t request_timeout_ms; /* whole request, headers and body */
};

struct config_influxdb {
	bool present;        /* the influxdb block was given */
	char *url;           /* http(s)://HOST:PORT of the 1.x HTTP API */
	char *database;
	char *username;      /* NULL: no authentication */
	struct config_secret password;
	int batch;           /* points per write request */
	int buffer;          /* points kept while InfluxDB is unreachable */
	int64_t timeout_ms;  /* per write request */
};

struct config_metrics {
	int64_t retention_ms; /* built-in store keeps samples this long */
	struct config_influxdb influxdb;
};

struct config_ha {
	bool enabled;     /* active/standby through a lease in the state store */
	int64_t lease_ms; /* lease length; renewed at a third of it */
	char *node_id;    /* NULL: the host name at run time */
};

struct config_daemon {
	int64_t interval_ms;      /* collect + decide tick */
	char *listen;             /* "HOST:PORT" or "[V6]:PORT", as written */
	char *listen_host;        /* HOST without brackets */
	int listen_port;
	char *public_url;         /* URL guests use to check in (effective) */
	struct config_state state;
	struct config_secret state_password; /* MYSQL password */
	int64_t event_retention_ms; /* events older are pruned; 0: kept forever */
	struct config_secret admin_token;    /* bearer token of the admin API */
	enum log_level log_level;
	enum log_format log_format;
	bool metrics_instances;   /* va_instance_* on /metrics without the token */
	struct config_tls tls;
	struct config_http http;
	struct config_metrics metrics;
	struct config_ha ha;
};

enum config_net_kind {
	CONFIG_NET_NETWORK, /* libvirt network: net_name */
	CONFIG_NET_BRIDGE,  /* host bridge: net_name */
	CONFIG_NET_USER,    /* QEMU user networking (guest sees host at 10.0.2.2) */
	CONFIG_NET_LAST
};

enum config_domain_type {
	CONFIG_DOMAIN_KVM,
	CONFIG_DOMAIN_QEMU, /* TCG emulation, where KVM is unavailable */
	CONFIG_DOMAIN_LAST
};

struct config_host {
	char *name;               /* unique, [A-Za-z0-9][A-Za-z0-9._-]{0,62} */
	char *uri;                /* libvirt connection URI */
	char *pool;               /* storage pool for disks and seeds */
	char *network;            /* as written (NULL if not) */
	char *bridge;             /* as written (NULL if not) */
	bool user_net;            /* as written */
	enum config_net_kind net_kind; /* the effective choice ... */
	const char *net_name;     /* ... and its network or bridge name */
	enum config_domain_type domain_type;
	double cpu_overcommit;    /* vCPUs placed per host CPU */
	double memory_overcommit; /* guest memory placed per byte of host memory */
	uint64_t reserved_memory; /* host memory never given to guests */
	int max_instances;        /* 0 = unlimited */
	int line;                 /* where it is defined in the file */
};

/* A list of strings. */
struct config_strlist {
	char **v;
	unsigned n;
};

/* placement_options: a string -> string map in file order. */
struct config_kv {
	char *key;
	char *value;
};

struct config_kvlist {
	struct config_kv *v;
	unsigned n;
};

enum config_placement {
	CONFIG_PLACEMENT_ROUND_ROBIN,
	CONFIG_PLACEMENT_MOST_FREE,
	CONFIG_PLACEMENT_FILL_FIRST,
	CONFIG_PLACEMENT_PLUGIN, /* placement_plugin: absolute path of a .so */
	CONFIG_PLACEMENT_LAST
};

struct config_template {
	int vcpus;
	uint64_t memory;      /* bytes */
	char *image;          /* pool volume name, or absolute path */
	uint64_t disk;        /* size of the instance's disk, bytes */
	char *kernel;         /* direct kernel boot (paths on the host) or NULL */
	char *initrd;
	char *cmdline;
	char *domain_xml;     /* user domain XML template (local path) or NULL;
			       * then vcpus/memory/kernel/... come from it */
	char *name_prefix;    /* domain names are PREFIX-SUFFIX */
};

/*
 * The keys of groups.*.template that make the template (template.h):
 * every row of config.c's table but those marked as replacing no
 * instance (name_prefix; domain_xml, whose file contents count instead),
 * each with its kind and its place in struct config_template. Fills up
 * to max, returns how many there are.
 */
enum config_key_kind {
	CONFIG_KEY_INT,   /* int */
	CONFIG_KEY_SIZE,  /* uint64_t */
	CONFIG_KEY_STR,   /* char *, NULL when not set */
};
struct config_template_key {
	const char *name;
	enum config_key_kind kind;
	size_t off;
};
size_t config_template_keys(struct config_template_key *out, size_t max);

struct config_static_addresses {
	bool present;
	char *range;          /* "FIRST-LAST" as written */
	char *first, *last;   /* the two addresses */
	int family;           /* AF_INET or AF_INET6 */
	int prefix;           /* prefix length of the guests' subnet */
	char *gateway;        /* NULL: none */
	struct config_strlist dns;
	uint64_t count;       /* addresses in the range */
};

struct config_cloud_init {
	char *user_data;      /* path as written, or NULL: built-in user-data */
	char *network_config; /* path as written, or NULL */
	struct config_static_addresses static_addresses;
	bool phone_home;      /* add phone_home to user-data */
	bool agent;           /* install virt-autoscaler-agent (vendor-data) */
};

/* groups.*.targets: the load balancer's view of the group (targets.h). */
enum config_targets_format {
	CONFIG_TARGETS_PLAIN,   /* one address (ADDR or ADDR:PORT) a line */
	CONFIG_TARGETS_HAPROXY, /* server ID ADDR:PORT check */
	CONFIG_TARGETS_NGINX,   /* server ADDR:PORT; */
	CONFIG_TARGETS_LAST
};

struct config_targets {
	int port;             /* the service's port on each instance; 0: none */
	char *file;           /* absolute path rendered on change, or NULL */
	enum config_targets_format format;
	char *reload_url;     /* POSTed to after the file changed, or NULL */
};

/*
 * groups.*.warm_pool: prepared instances kept beyond desired, in a state
 * a scale-out resumes from (docs/warm-pools.md).
 */
enum config_warm_state {
	CONFIG_WARM_SAVED,   /* virDomainManagedSave: RAM on disk */
	CONFIG_WARM_PAUSED,  /* virDomainSuspend: RAM held */
	CONFIG_WARM_STOPPED, /* shut off: boots from its own disk */
	CONFIG_WARM_LAST
};

struct config_warm_pool {
	bool present;         /* the mapping was given */
	int size;             /* prepared instances beyond desired; 0: none */
	int max_prepared;     /* cap on desired + warm; 0: none */
	enum config_warm_state state;
	bool reuse_on_scale_in; /* scale-in returns instances to the pool */
	int64_t resume_within_ms; /* a drawn instance must be ready by then */
};
/* "saved", "paused", "stopped"; NULL out of range. */
const char *config_warm_state_name(enum config_warm_state st);

/*
 * groups.*.refresh: instance refresh (refresh.h, docs/operations.md): how
 * a changed template (template.h) is rolled through the group, and the
 * defaults of `virt-autoscaler refresh GROUP`.
 */
struct config_refresh {
	bool present;         /* the mapping was given */
	bool automatic;       /* `auto`: refresh when the template changes */
	char *max_unavailable;/* "N" or "P%" of desired, as written */
	int surge;            /* new instances beyond desired */
	double min_healthy;   /* percent of desired kept ready */
	struct config_strlist checkpoints; /* "P%" each, ascending */
	int rollback_after;   /* failed new instances that roll back; 0 never */
};

/* groups.*.refresh.max_unavailable and the like ("N" or "P%" of desired,
 * rounded down) as a count: 0, or -1 when s is neither. */
int config_refresh_amount(const char *s, int desired, int *out);

/*
 * groups.*.hooks: lifecycle hooks (hooks.h, docs/operations.md). An
 * HTTP POST of a signed JSON event when an instance checked in (launch)
 * or was chosen for removal (terminate); it waits until the receiver
 * completes the hook or the timeout applies default_result.
 */
enum config_hook_result {
	CONFIG_HOOK_CONTINUE,
	CONFIG_HOOK_ABANDON,
	CONFIG_HOOK_RESULT_LAST
};

struct config_hook {
	bool present;         /* the mapping was given */
	char *url;            /* http:// or https:// */
	struct config_secret secret; /* the HMAC-SHA256 key */
	int64_t timeout_ms;   /* how long the instance waits */
	enum config_hook_result default_result; /* applied at the timeout */
	int64_t backoff_ms;   /* first retry after this, doubling ... */
	int64_t backoff_max_ms; /* ... up to this */
};

struct config_hooks {
	struct config_hook launch, terminate;
};

struct config_health {
	int64_t ready_within_ms;      /* a new instance must check in by then */
	int64_t heartbeat_timeout_ms; /* 0 = heartbeats not required */
	bool replace;                 /* replace unhealthy instances */
	int max_replace;              /* at most this many at once ... */
	double max_replace_share;     /* ... and this share of the group (0..100) */
	int64_t busy_max_ms;          /* 'busy' protects from scale-in this long */
};

enum config_scale_in_order {
	CONFIG_SCALE_IN_NEWEST,
	CONFIG_SCALE_IN_OLDEST,
	CONFIG_SCALE_IN_BUSIEST_HOST_FIRST,
	CONFIG_SCALE_IN_LAST
};

struct config_scale_in {
	enum config_scale_in_order order;
	int64_t drain_ms;             /* graceful shutdown timeout */
};

/*
 * groups.*.scaling.target.app.source: the app target's figure measured
 * outside the VMs (promsrc.h) instead of reported in heartbeats.
 */
struct config_app_source {
	bool present;         /* a source was given */
	char *prometheus;     /* base URL of Prometheus' HTTP API */
	char *query;          /* PromQL instant query: one number */
	int64_t timeout_ms;   /* per query */
	struct config_secret token; /* bearer token, or NONE */
};

struct config_group {
	char *name;
	int min, max;                 /* also in policy.min / policy.max */
	int desired;                  /* initial size */
	struct config_strlist hosts;  /* host names (effective: all if unset) */
	const struct config_host **host_ptrs; /* the same, resolved (n = hosts.n) */
	enum config_placement placement;
	char *placement_plugin;       /* PLUGIN: absolute path */
	struct config_kvlist placement_options;
	bool spread;                  /* anti-affinity across hosts */
	struct config_template template;
	struct config_cloud_init cloud_init;
	/* scaling: everything the decision engine needs; interval_ms is the
	 * group's scaling.interval (default daemon.interval), min/max the
	 * group's; the rest defaults to policy_params_defaults(). */
	struct policy_params policy;
	struct config_health health;
	struct config_scale_in scale_in;
	struct config_targets targets;
	struct config_warm_pool warm_pool;
	struct config_refresh refresh;
	struct config_hooks hooks;
	int line;
	/* the app target's outside source (policy.app[i].source names it) */
	struct config_app_source app_source;
};

struct config {
	char *path;       /* as given to config_load (or the buffer's name) */
	char *base_dir;   /* relative paths in the file resolve against this */
	int version;
	struct config_daemon daemon;
	struct config_host *hosts;
	unsigned n_hosts;
	struct config_group *groups; /* in file order */
	unsigned n_groups;
	/* "FILE:LINE:COL: warning: ..." lines (each "\n"-terminated) of
	 * what the file allows but works only in some setups, or NULL. */
	char *warnings;
};

/*
 * Read and validate PATH. Returns a config the caller frees with
 * config_free(), or NULL if there was any problem; then every problem
 * has been appended to errors, one "\n"-terminated line each (and
 * warnings are not reported); on success cfg->warnings holds the
 * warnings, if any. Also
 * checks that local files the configuration names (cloud-init files,
 * domain XML template, TLS files, secret files) exist.
 */
struct config *config_load(const char *path, struct strbuf *errors);

/*
 * The same without the checks that depend on where the file is used:
 * the files it names, environment variables, the admin token's strength,
 * whether guests reach the default public_url. For `simulate`, which
 * needs only the groups, on any machine.
 */
struct config *config_load_offline(const char *path, struct strbuf *errors);

/*
 * For the command-line client, which needs only the daemon's address,
 * TLS settings and admin token: config_load_offline(), and when that
 * refuses the file (an operator's edit in progress, a SIGHUP the daemon
 * refused: it keeps serving its last good configuration), those keys of
 * the daemon section parsed on their own. Then the config holds only
 * daemon.listen, public_url, tls and admin_token (other keys: defaults),
 * and problems holds the file's problems for a warning. NULL with
 * problems when even those keys cannot be read. A non-empty problems
 * with a non-NULL result means: degraded.
 */
struct config *config_load_client(const char *path, struct strbuf *problems);

/* The same on a buffer (no file system access); name is used in messages. */
struct config *config_parse_buffer(const char *data, size_t len,
				   const char *name, struct strbuf *errors);

void config_free(struct config *cfg);

/* NULL if there is no such group / host. */
const struct config_group *config_group_find(const struct config *cfg,
					     const char *name);
const struct config_host *config_host_find(const struct config *cfg,
					   const char *name);

/*
 * A path from the file resolved against the file's directory (absolute
 * paths unchanged). Caller frees.
 */
char *config_resolve_path(const struct config *cfg, const char *path);

/*
 * Append the effective configuration as YAML to out; it parses back to
 * the same configuration (and prints identically). Secrets print as
 * their source, never their value. Returns 0.
 */
int config_print(const struct config *cfg, struct strbuf *out);

/*
 * For a SIGHUP reload: 0 if new only differs from old in keys that a
 * reload may change; otherwise -1, and one line per key that would need
 * a restart ("daemon.listen: ...") appended to why. Needing a restart:
 * the daemon keys not marked reloadable in autoscale.yaml(5), and the set
 * of hosts (names) and their uris; so after a successful check every
 * host of old is in new, under the same name and uri.
 */
int config_reload_check(const struct config *old_cfg,
			const struct config *new_cfg, struct strbuf *why);

/*
 * The schema, for documentation and tests. key is the dotted path with
 * "hosts[]", "groups.*", "steps[]", "schedules[]" for list elements and
 * group names; a section (a mapping of further keys) is reported too,
 * with type "mapping" or "sequence".
 */
struct config_key_info {
	const char *key;      /* "daemon.http.max_body" */
	const char *type;     /* "duration", "size", "integer", ... */
	const char *def;      /* default as written in the file, or NULL */
	const char *bounds;   /* "1s..1h" or NULL */
	bool required;
	bool reloadable;      /* a SIGHUP reload may change it */
	const char *doc;      /* one line */
};

typedef void (*config_schema_fn)(const struct config_key_info *k, void *arg);
void config_schema_walk(config_schema_fn fn, void *arg);

/* Reload flag of a key as in config_key_info.key; -1 if unknown. */
int config_key_reloadable(const char *key);

#endif
