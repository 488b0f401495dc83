/*
 * store.h: the state store. Everything a restarted daemon needs to carry on
 * lives here: groups (desired size, paused), instances and their lifecycle,
 * the event history, the intent journal that makes actions crash-safe, and
 * the lease that lets exactly one of several daemons act (HA).
 *
 * Backends, picked by the URL scheme given to store_open():
 *   sqlite:///abs/path/state.db                  (default; file mode 0600)
 *   mysql://user@host:port/db                    (MariaDB/MySQL over TCP)
 *   mysql://user@localhost/db?socket=/path.sock  (over a unix socket)
 *   (user@ may be left out: the client library's default, the login name;
 *   :port defaults to 3306; mariadb:// is accepted as well)
 * Both backends sit behind one driver table of SQL primitives
 * (src/store/driver.h); every operation below is written once in store.c,
 * so both backends have the same semantics and the same row validation.
 *
 * Return values: every int-returning function returns STORE_OK (0) or a
 * negative enum store_rc. The detail is recorded with err_set() (log.h)
 * where the failure happened; read it with err_msg().
 *
 * Fencing: store_lease_acquire() arms the handle's fence with the lease
 * name and the new epoch. From then on every mutating operation on that
 * handle checks, in its own database transaction, that the lease still has
 * that epoch (a conditional UPDATE of the lease row that also locks it);
 * if another daemon took the lease meanwhile, the operation changes
 * nothing and returns STORE_E_FENCED. A handle without a fence (tools,
 * tests) writes unfenced.
 *
 * Threads: a struct store may be shared between threads. Each operation
 * runs whole on one connection of the handle; on MariaDB a handle opens up
 * to STORE_POOL_DEFAULT connections (store_open_pool(): its max_conns),
 * one more each time an operation finds all of them busy, so threads that
 * share a handle overlap their round trips while a handle used by one
 * thread keeps one connection. SQLite serializes the operations of a
 * handle. The lease calls and store_fence_set() run alone on their handle
 * (they wait for the operations in progress, and hold new ones back), so
 * every operation sees one fence from start to end.
 *
 * Times are milliseconds since the Unix epoch (util_wall_ms()); lease
 * expiry uses the database's clock (the server's for MariaDB) so daemons
 * on different machines agree on it.
 */
#ifndef VA_STORE_H
#define VA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

enum store_rc {
	STORE_OK = 0,
	STORE_E_ERROR = -1,    /* database, I/O or validation error */
	STORE_E_NOTFOUND = -2, /* no such group/instance/journal entry/lease */
	STORE_E_CONFLICT = -3, /* compare-and-set lost: state is not `from` */
	STORE_E_FENCED = -4,   /* our lease epoch moved on: stop acting */
	STORE_E_ILLEGAL = -5,  /* lifecycle transition not allowed */
	STORE_E_HELD = -6,     /* lease held by another holder, not expired */
	STORE_E_EXISTS = -7,   /* a row with that key already exists */
	STORE_E_LAST = -8
};
/* "ok", "error", "not found", "conflict", "fenced", ... */
const char *store_rc_name(int rc);

/* Field limits (bytes, excluding the NUL). Text must be UTF-8 without
 * control characters (tab/newline allowed in free text); longer or
 * malformed input is refused on write (event messages and journal failure
 * reasons are sanitized instead), and such a value read back from the
 * database is an error. */
#define STORE_NAME_MAX 63       /* group names, event kinds, hosts */
#define STORE_ID_LEN 36         /* instance ids: lowercase UUID text */
#define STORE_DOMAIN_MAX 255    /* libvirt domain names */
#define STORE_HASH_LEN 64       /* secret hashes: SHA-256 in hex */
#define STORE_ADDRESS_MAX 255   /* an IP address or host name */
#define STORE_TEXT_MAX 4095     /* notes, event messages, journal errors */
#define STORE_JSON_MAX 65535    /* event details, journal payloads */
#define STORE_HOLDER_MAX 255    /* lease holder ids */

/* Newest schema version this binary knows (see docs/state.md). */
#define STORE_SCHEMA_VERSION 8

/* ---- opening ---------------------------------------------------------- */

/*
 * Open the store at url (see above), create or migrate the schema, and
 * return a handle (free with store_close()). password is used for MySQL
 * only (may be NULL); it is never logged. For SQLite the file and its
 * directory are created if missing (mode 0600 / 0700).
 * Errors: a malformed or unsupported URL, an unreachable server, a schema
 * newer than STORE_SCHEMA_VERSION ("upgrade virt-autoscaler"). NULL +
 * err_set().
 */
struct store *store_open(const char *url, const char *password);
/*
 * Like store_open(), with at most max_conns (>= 1) connections on MariaDB
 * (capped at 8; SQLite: always 1). store_open() gives STORE_POOL_DEFAULT.
 * With more than one, operations of different threads on the handle run
 * in parallel, each in its own transaction: two events appended at once
 * may commit in either order of their ids (see store_event_list_since()).
 */
#define STORE_POOL_DEFAULT 4
struct store *store_open_pool(const char *url, const char *password,
			      unsigned max_conns);
/* Connections the handle has open now (1 .. max_conns). */
size_t store_connections(struct store *s);
void store_close(struct store *s);
/* Check the URL's syntax as store_open() would, without creating a file or
 * connecting (for `check`). 0, or -1 + err_set(). */
int store_url_check(const char *url);
/* Backend name: "sqlite" or "mysql". */
const char *store_backend(const struct store *s);
/* The schema version found in the database after open (== STORE_SCHEMA_VERSION). */
int store_schema_version(struct store *s, int *version);
/*
 * The installation id of this store: a random version 4 UUID minted once,
 * when the schema is created (or migrated to version 3), and never changed
 * afterwards; copies and backups of the database carry the same id. The
 * daemon writes it into the metadata of every domain it creates (owner=)
 * and acts only on domains whose owner is this id (docs/state.md). Read
 * once and cached in the handle. STORE_OK, or STORE_E_ERROR when the row
 * is missing or malformed (a damaged store).
 */
int store_owner_id(struct store *s, char out[STORE_ID_LEN + 1]);

/*
 * The configuration generation: a per-installation counter that the
 * daemon bumps each time it applies a configuration (at start and on
 * each accepted reload) and records in the groups and instances it
 * writes (config_gen) and in domain metadata (generation=). It lives in
 * the store so that it survives restarts and takeovers: a number never
 * names two configurations. It starts at 0 in a new store; the
 * migration to schema version 4 starts it at the largest config_gen the
 * existing groups and instances carry.
 *
 * get: the current value into *gen. bump: add one atomically (two
 * handles or daemons bumping together get different numbers) and store
 * the new value in *gen; a write, fenced like every write
 * (STORE_E_FENCED: another daemon took the lease, *gen is untouched).
 * A reload that fails after its bump simply leaves a gap: generations
 * only grow, they need not be dense. STORE_OK, or STORE_E_ERROR when
 * the row is missing or malformed (a damaged store).
 */
int store_config_gen_get(struct store *s, int64_t *gen);
int store_config_gen_bump(struct store *s, int64_t *gen);

/* ---- groups ----------------------------------------------------------- */

struct store_group {
	char *name;          /* [A-Za-z0-9_.-]{1,63} */
	int64_t desired;     /* 0 .. 1000000 */
	bool paused;         /* a paused group is neither scaled nor repaired */
	int64_t config_gen;  /* generation of the config that wrote it, >= 0 */
	int64_t created_ms;  /* filled by the store */
	int64_t updated_ms;  /* filled by the store */
};
void store_group_release(struct store_group *g);

struct store_group_list {
	struct store_group *v;
	size_t n;
};
void store_group_list_release(struct store_group_list *l);

/* Insert the group or overwrite desired, paused and config_gen. */
int store_group_upsert(struct store *s, const struct store_group *g);
/* *out is filled (release with store_group_release()); STORE_E_NOTFOUND. */
int store_group_get(struct store *s, const char *name, struct store_group *out);
/* All groups by name; release with store_group_list_release(). */
int store_group_list(struct store *s, struct store_group_list *out);
int store_group_set_desired(struct store *s, const char *name, int64_t desired);
int store_group_set_paused(struct store *s, const char *name, bool paused);

/* ---- instances and their lifecycle ------------------------------------ */

/*
 *   requested -> provisioning -> booting -> ready <-> draining -> deleting -> gone
 * with side paths to unhealthy (missed heartbeats; may recover), lost (the
 * domain vanished; may come back or be cleaned up) and deleting (removal
 * or rollback from any live state). The warm pool's path (warm.h):
 *   warming -> warm -> resuming -> ready, and ready -> warming (returned) store_instance_transition_ok() is the
 * authoritative table; docs/state.md draws it.
 */
enum store_instance_state {
	STORE_INSTANCE_REQUESTED,
	STORE_INSTANCE_PROVISIONING,
	STORE_INSTANCE_BOOTING,
	STORE_INSTANCE_READY,
	STORE_INSTANCE_DRAINING,
	STORE_INSTANCE_DELETING,
	STORE_INSTANCE_GONE,
	STORE_INSTANCE_UNHEALTHY,
	STORE_INSTANCE_LOST,
	STORE_INSTANCE_WARMING,  /* for the warm pool: created, booting, or
				    checked in and waiting to be parked */
	STORE_INSTANCE_WARM,     /* in the pool: saved, paused or stopped */
	STORE_INSTANCE_RESUMING, /* drawn from the pool: ready on its first
				    heartbeat or check-in after the resume */
	STORE_INSTANCE_LAUNCH_WAIT,    /* checked in; its launch hook runs
					  (hooks.h): live, not serving */
	STORE_INSTANCE_TERMINATE_WAIT, /* chosen for removal; its terminate
					  hook runs before the drain */
	STORE_INSTANCE_LAST
};
/* "requested", "provisioning", ...; NULL for an out-of-range value. */
const char *store_instance_state_name(enum store_instance_state st);
/* Parse a name; 0 or -1 with err_set(). */
int store_instance_state_parse(const char *s, enum store_instance_state *out);
/* Whether the lifecycle allows from -> to (from == to is not a transition). */
bool store_instance_transition_ok(enum store_instance_state from,
				  enum store_instance_state to);
/* Bit for a state filter mask. */
#define STORE_STATE_BIT(st) (1u << (st))
/* Every state but gone: the instances that exist or may exist. */
#define STORE_STATES_NOT_GONE                                              \
	(((1u << STORE_INSTANCE_LAST) - 1) & ~STORE_STATE_BIT(STORE_INSTANCE_GONE))

struct store_instance {
	char *id;            /* lowercase UUID, 36 chars */
	char *group;         /* an existing group's name */
	char *host;          /* host name; NULL only while requested/gone */
	char *domain;        /* libvirt domain name, or NULL */
	enum store_instance_state state;
	char *secret_hash;   /* secret_hash() output (64 hex), or NULL */
	int64_t created_ms;  /* put: 0 = now */
	int64_t updated_ms;  /* filled by the store on every change */
	int64_t ready_ms;    /* first time it became ready, 0 = never */
	int64_t heartbeat_ms;/* last check-in or heartbeat, 0 = never */
	bool busy;           /* the guest said it is busy */
	int64_t busy_since_ms; /* when busy became true, 0 when not busy */
	int64_t config_gen;  /* config generation it was built from */
	char *address;       /* reported address, or NULL */
	char *notes;         /* free text, or NULL */
	char *template_hash; /* the template it was built from
				(template.h: 64 hex), or NULL: unknown
				(built before schema version 8) */
};
void store_instance_release(struct store_instance *inst);

struct store_instance_arena;
/*
 * A list store_instance_list() filled: its strings live in one arena
 * (a few blocks, not seven allocations per instance), possibly shared with
 * the store's instance cache and other listings, so they must not be
 * written, freed or replaced one by one; copy what outlives the list. A list built
 * by hand (arena NULL) owns each element's strings, which
 * store_instance_list_release() frees.
 */
struct store_instance_list {
	struct store_instance *v;
	size_t n;
	size_t alloc; /* room in v (the store's business) */
	struct store_instance_arena *arena; /* the store's business */
	/* > 0 when the instance cache answered (store_instance_cache()):
	 * the instances table's generation it is. Two listings with the same
	 * filter and the same gen > 0 are alike; 0 tells nothing. */
	int64_t gen;
};
void store_instance_list_release(struct store_instance_list *l);

/* Mint a random (version 4) UUID string into out[STORE_ID_LEN + 1]. */
int store_instance_new_id(char out[STORE_ID_LEN + 1]);

/*
 * Put an instance: insert it, or, if the id exists, overwrite its
 * attributes (host, domain, secret_hash, config_gen, address, notes,
 * template_hash; NULL
 * clears one) with inst's, typically after store_instance_get(). The
 * state of an existing instance only changes with store_instance_set_state();
 * a put whose state differs from the stored one is STORE_E_CONFLICT.
 * ready_ms/heartbeat_ms/busy are taken from inst on insert only.
 */
int store_instance_put(struct store *s, const struct store_instance *inst);
int store_instance_get(struct store *s, const char *id,
		       struct store_instance *out);

/* NULL/0 fields match everything. Results ordered by created_ms, id. */
struct store_instance_filter {
	const char *group;
	const char *host;
	unsigned state_mask; /* OR of STORE_STATE_BIT(); 0 = all states */
};
int store_instance_list(struct store *s, const struct store_instance_filter *f,
			struct store_instance_list *out);

/*
 * Let s answer store_instance_list() from memory (SQLite; false, and
 * nothing changes, on a backend without it): every instance but the gone
 * ones is kept as last listed, with the instances table's generation,
 * which the schema's triggers bump in the transaction of every change to
 * the table, by any handle or process. A listing reads the generation
 * (one row) and copies from memory while it is the same and the copy is
 * younger than max_age_ms; otherwise it reads the table again. So a
 * listing is never older than the table at the time of the call, exactly
 * as without the cache. Listings of gone instances (state_mask 0 or with
 * STORE_STATE_BIT(STORE_INSTANCE_GONE)) always read the table. For the
 * daemon's loop, which lists every instance every few seconds.
 */
bool store_instance_cache(struct store *s, int64_t max_age_ms);
/*
 * The instances table's generation now (one row), into *gen: what a
 * listing from the cache would carry (store_instance_list.gen), so that a
 * caller that keeps what it made of the last listing can tell whether to
 * list again. 0 on a backend without a generation (MariaDB: list again).
 * STORE_E_ERROR (and 0) when it cannot be read.
 */
int store_instance_generation(struct store *s, int64_t *gen);

/*
 * Compare-and-set the state: succeeds only if the instance is in `from`
 * now (so two actors cannot both move it). STORE_E_ILLEGAL if the
 * lifecycle forbids from -> to (nothing is read or written),
 * STORE_E_CONFLICT if the current state is not `from`, STORE_E_NOTFOUND.
 * Entering READY sets ready_ms the first time.
 */
int store_instance_set_state(struct store *s, const char *id,
			     enum store_instance_state from,
			     enum store_instance_state to);
/*
 * Record a check-in/heartbeat at time_ms with the guest's busy flag:
 * busy_since_ms is set when busy goes false -> true and cleared when it
 * goes back. Refused with STORE_E_CONFLICT for deleting/gone instances.
 */
int store_instance_heartbeat(struct store *s, const char *id, int64_t time_ms,
			     bool busy);
/*
 * Many heartbeats in one transaction (the check-in server collects them
 * and flushes every second or so: on MariaDB a write transaction costs a
 * few round trips and a log flush, see bench/README.md). Each v[i].rc gets
 * that item's result (STORE_OK, STORE_E_NOTFOUND, STORE_E_CONFLICT, or
 * STORE_E_ERROR for a malformed item). Returns STORE_OK when the batch
 * was committed, else STORE_E_FENCED/STORE_E_ERROR and nothing was written.
 */
struct store_heartbeat {
	const char *id;
	int64_t time_ms;
	bool busy;
	int rc; /* out */
};
int store_instance_heartbeat_batch(struct store *s, struct store_heartbeat *v,
				   size_t n);

/* ---- events: the activity history ------------------------------------- */

struct store_event {
	int64_t id;          /* increasing; assigned by the store */
	int64_t time_ms;     /* append: 0 = now */
	char *group;         /* or NULL for daemon-wide events */
	char *instance;      /* instance id or NULL */
	char *kind;          /* [a-z0-9_.-]{1,63}, e.g. "scale_out" */
	char *message;       /* human-readable reason; stored sanitized: cut
			      * to STORE_TEXT_MAX bytes on a character
			      * boundary, malformed UTF-8 and control
			      * characters but tab/newline become '?' */
	char *details;       /* optional JSON text, or NULL */
};
void store_event_release(struct store_event *e);

struct store_event_list {
	struct store_event *v;
	size_t n;
};
void store_event_list_release(struct store_event_list *l);

/* Append; *id_out (may be NULL) gets the new id. */
int store_event_append(struct store *s, const struct store_event *e,
		       int64_t *id_out);
/* The newest `limit` events of group (NULL = all), newest first. */
int store_event_list_recent(struct store *s, const char *group, size_t limit,
			    struct store_event_list *out);
/* Events with id > after_id, oldest first, at most limit. Exact when
 * events are written by one thread at a time through one handle, or a
 * handle opened with store_open_pool(..., 1); with several concurrent
 * writers on MariaDB an id can commit after a larger one was already
 * read. */
int store_event_list_since(struct store *s, int64_t after_id, size_t limit,
			   struct store_event_list *out);

/* ---- intent journal ---------------------------------------------------- */

/*
 * Write the intent before acting, record each step right after it is
 * done, and close the entry. A daemon that starts lists the pending
 * entries and, for each, finishes or rolls back the action: the recorded
 * step is the last one known complete; the next one may or may not have
 * happened (the crash can fall between doing it and recording it), so
 * recovery checks libvirt for it. See docs/state.md.
 */
enum store_journal_action {
	STORE_JOURNAL_PROVISION,
	STORE_JOURNAL_REMOVE,
	STORE_JOURNAL_LAST
};
/* Steps in the order they happen; each belongs to one action. */
enum store_journal_step {
	STORE_STEP_NONE,              /* intent recorded, nothing done yet */
	/* provision */
	STORE_STEP_VOLUME_CREATED,    /* disk overlay exists */
	STORE_STEP_SEED_CREATED,      /* cloud-init seed volume exists */
	STORE_STEP_DOMAIN_DEFINED,    /* domain defined (persistent) */
	STORE_STEP_STARTED,           /* domain started */
	/* remove */
	STORE_STEP_DOMAIN_STOPPED,    /* domain destroyed */
	STORE_STEP_DOMAIN_UNDEFINED,  /* domain undefined */
	STORE_STEP_VOLUMES_DELETED,   /* disk and seed volumes deleted */
	STORE_STEP_LAST
};
enum store_journal_status {
	STORE_JOURNAL_PENDING,
	STORE_JOURNAL_DONE,
	STORE_JOURNAL_FAILED,
	STORE_JOURNAL_STATUS_LAST
};
const char *store_journal_action_name(enum store_journal_action a);
int store_journal_action_parse(const char *s, enum store_journal_action *out);
const char *store_journal_step_name(enum store_journal_step st);
int store_journal_step_parse(const char *s, enum store_journal_step *out);
const char *store_journal_status_name(enum store_journal_status st);
/* Whether step belongs to action (NONE belongs to both). */
bool store_journal_step_valid(enum store_journal_action a,
			      enum store_journal_step st);

struct store_journal_entry {
	int64_t id;
	char *instance;      /* instance id */
	enum store_journal_action action;
	enum store_journal_step step;
	enum store_journal_status status;
	char *payload;       /* JSON text the actor needs to resume, or NULL */
	char *error;         /* why it failed, or NULL */
	int64_t created_ms;
	int64_t updated_ms;
};
void store_journal_entry_release(struct store_journal_entry *e);

struct store_journal_list {
	struct store_journal_entry *v;
	size_t n;
};
void store_journal_list_release(struct store_journal_list *l);

/* Record the intent (step NONE); *id_out gets its id. The instance must
 * exist and have no other pending entry (one action in flight per
 * instance, enforced by a unique key): STORE_E_CONFLICT otherwise. */
int store_journal_begin(struct store *s, const char *instance,
			enum store_journal_action action, const char *payload,
			int64_t *id_out);
/*
 * Record that `step` is done; steps only move forward and must belong to
 * the entry's action (STORE_E_ILLEGAL otherwise). payload, if not NULL,
 * replaces the stored payload (e.g. to add the volume name just created).
 * STORE_E_CONFLICT if the entry is no longer pending.
 */
int store_journal_step(struct store *s, int64_t id, enum store_journal_step step,
		       const char *payload);
int store_journal_done(struct store *s, int64_t id);
/* why is required; stored sanitized like an event message. */
int store_journal_fail(struct store *s, int64_t id, const char *why);
int store_journal_get(struct store *s, int64_t id,
		      struct store_journal_entry *out);
/* The pending entry of an instance (at most one), to resume an action
 * that failed half-way instead of beginning a new one; STORE_E_NOTFOUND. */
int store_journal_find_pending(struct store *s, const char *instance,
			       struct store_journal_entry *out);
/* Every pending entry, oldest first: what recovery must finish or undo. */
int store_journal_pending(struct store *s, struct store_journal_list *out);

/* ---- lease: one active daemon per state ------------------------------- */

/*
 * A named lease (the daemon uses STORE_LEASE_LEADER) with a holder id, an
 * expiry and an epoch that grows by one each time the lease is acquired.
 *
 * acquire: succeeds if the lease is free, expired, or already held by the
 * same holder; bumps the epoch, sets the expiry to now + ttl_ms, stores
 * the new epoch in *epoch_out and arms this handle's fence with it.
 * STORE_E_HELD when another holder has it (store_lease_get() tells who
 * and until when). Holder ids must be unique per running daemon (e.g.
 * "hostname:pid"): two processes with one holder id would steal the lease
 * from each other.
 *
 * A daemon that opened several handles (one per thread) arms the others
 * with store_fence_set(name, epoch) after each acquisition.
 *
 * A daemon without HA acquires the lease too and refuses to start on
 * STORE_E_HELD ("state in use by HOLDER"); with HA it stays standby and
 * retries every ttl/3 or so. The leader renews every ttl/3; a renew that
 * returns STORE_E_FENCED means another daemon took over: stop acting.
 */
#define STORE_LEASE_LEADER "leader"

struct store_lease {
	char *name;
	char *holder;        /* "" when released */
	int64_t epoch;       /* 0 = never acquired */
	int64_t expires_ms;  /* database clock */
	int64_t now_ms;      /* the database clock when read */
};
void store_lease_release_info(struct store_lease *l);

int store_lease_acquire(struct store *s, const char *name, const char *holder,
			int64_t ttl_ms, int64_t *epoch_out);
/*
 * Like acquire, but also take the lease while prev_holder still holds it:
 * for a daemon that knows that holder is dead (same host name in
 * "host:pid" and no such process), so a restart after a crash need not
 * wait for the lease to expire. The epoch bump fences the dead holder.
 */
int store_lease_take_over(struct store *s, const char *name, const char *holder,
			  const char *prev_holder, int64_t ttl_ms,
			  int64_t *epoch_out);
/* "hostname:pid" into buf: a holder id unique per running daemon. */
int store_lease_holder_default(char *buf, size_t size);
/* Extend to now + ttl_ms; STORE_E_FENCED if the epoch moved on. */
int store_lease_renew(struct store *s, const char *name, const char *holder,
		      int64_t epoch, int64_t ttl_ms);
/* Give it up (keeps the epoch, so the next acquire bumps it); disarms the
 * fence. STORE_E_FENCED if it was no longer ours. */
int store_lease_release(struct store *s, const char *name, const char *holder,
			int64_t epoch);
/* Read the lease; STORE_E_NOTFOUND if never acquired. */
int store_lease_get(struct store *s, const char *name, struct store_lease *out);
/* Arm (epoch > 0) or disarm (epoch 0, name may be NULL) the fence by hand. */
void store_fence_set(struct store *s, const char *name, int64_t epoch);

/* ---- load history: predictive scaling's one-minute means -------------- */

/*
 * Each group's load as predictive scaling records it (forecast.h): one
 * row per group and wall-clock minute (minutes since the Unix epoch),
 * the mean of that minute's decisions in instances, stored to 1/1000 of
 * an instance (schema version 5, docs/state.md). A minute without data
 * has no row. The daemon writes the minutes of all groups once a minute
 * in one transaction, loads a group's last two weeks at start, and
 * prunes older rows hourly.
 */
#define STORE_LOAD_MAX 1e9    /* instances */

struct store_load_minute {
	const char *group;   /* put: the group; lists: NULL (one group) */
	int64_t minute;      /* minutes since the epoch, >= 0 */
	double load;         /* finite, 0 .. STORE_LOAD_MAX */
};

struct store_load_list {
	struct store_load_minute *v; /* by minute, oldest first */
	size_t n;
	size_t alloc;
};
void store_load_list_release(struct store_load_list *l);

/* Write v[0..n) in one transaction, replacing rows of the same group and
 * minute; a malformed item (name, minute, load) refuses the whole batch
 * (STORE_E_ERROR, nothing written). Fenced like every write. */
int store_load_put(struct store *s, const struct store_load_minute *v,
		   size_t n);
/* The group's rows with minute >= from_minute, oldest first. */
int store_load_get(struct store *s, const char *group, int64_t from_minute,
		   struct store_load_list *out);
/* Delete every group's rows older than before_minute (groups no longer
 * configured too); *count (may be NULL) how many. */
int store_load_prune(struct store *s, int64_t before_minute, int64_t *count);

/* ---- housekeeping ------------------------------------------------------ */

/* Delete instances that are gone since before before_ms, with their closed
 * journal entries (never one with a pending entry). *count (may be NULL)
 * gets the number of instances deleted. Fenced like every write. */
int store_instance_purge(struct store *s, int64_t before_ms, int64_t *count);
/* Delete events older than before_ms; *count (may be NULL) how many. */
int store_event_prune(struct store *s, int64_t before_ms, int64_t *count);

/*
 * Lifecycle hook waits (hooks.h, docs/state.md): one row per instance in
 * launch_wait or terminate_wait, written by the loop when the wait
 * begins: which hook, the wall-clock deadline at which the default
 * result applies, the SHA-256 (hex) of the current call's token, and the
 * result once someone completed it (an HTTP thread, conditionally: only
 * the first completion counts). The loop deletes the row when the wait
 * ends. Schema version 5.
 */
enum store_hook {
	STORE_HOOK_LAUNCH,
	STORE_HOOK_TERMINATE,
	STORE_HOOK_LAST
};
enum store_hook_result {
	STORE_HOOK_PENDING,  /* not completed yet */
	STORE_HOOK_CONTINUE,
	STORE_HOOK_ABANDON,
	STORE_HOOK_RESULT_LAST
};
/* "launch", "terminate"; "pending", "continue", "abandon"; NULL out of range */
const char *store_hook_name(enum store_hook h);
const char *store_hook_result_name(enum store_hook_result r);
/* "continue" or "abandon" (not "pending"); 0 or -1 with err_set() */
int store_hook_result_parse(const char *s, enum store_hook_result *out);

struct store_hook_wait {
	char id[STORE_ID_LEN + 1];
	enum store_hook hook;
	int64_t deadline_ms;          /* wall clock */
	char token_hash[65];          /* secret_hash() of the call's token */
	enum store_hook_result result;
	int64_t created_ms, updated_ms;
};
/* Begin a wait: insert the row (STORE_E_EXISTS if the instance has one). */
int store_hook_wait_begin(struct store *s, const struct store_hook_wait *w);
/* A new call's token for the wait of id (a re-send after a restart). */
int store_hook_wait_token(struct store *s, const char *id,
			  const char *token_hash);
/* The wait of id; STORE_E_NOTFOUND when it has none. */
int store_hook_wait_get(struct store *s, const char *id,
			struct store_hook_wait *out);
/* Every wait (ordered by id); *v freed by the caller. */
int store_hook_wait_list(struct store *s, struct store_hook_wait **v,
			 size_t *n);
/* Record the result of a pending wait: STORE_E_NOTFOUND without a
 * wait, STORE_E_CONFLICT when it was completed already. */
int store_hook_wait_complete(struct store *s, const char *id,
			     enum store_hook_result result);
/* End the wait of id (delete its row; no row is fine). */
int store_hook_wait_end(struct store *s, const char *id);

/* ---- instance refresh ------------------------------------------------------ */

/*
 * Templates (template.h): every template a group's instances were built
 * from, by its hash, so that a rollback after a restart can build from
 * the previous one although the configuration names the new one. body is
 * the template's canonical JSON (at most STORE_TEMPLATE_MAX bytes).
 * put: insert; a row that exists already is kept (same hash, same body).
 * get: *body (free it), or STORE_E_NOTFOUND. Schema version 8.
 */
#define STORE_TEMPLATE_MAX (4 * 1024 * 1024)
int store_template_put(struct store *s, const char *group, const char *hash,
		       const char *body);
int store_template_get(struct store *s, const char *group, const char *hash,
		       char **body);

/*
 * A group's instance refresh (refresh.h, docs/operations.md): one row per
 * group, its last refresh, active or ended. Written only by the leader's
 * loop. Schema version 8.
 */
enum store_refresh_state {
	STORE_REFRESH_RUNNING,      /* replacing */
	STORE_REFRESH_PAUSED,       /* at a checkpoint: `refresh --resume` */
	STORE_REFRESH_ROLLING_BACK, /* new instances failed: back to previous */
	STORE_REFRESH_DONE,
	STORE_REFRESH_CANCELLED,
	STORE_REFRESH_ROLLED_BACK,  /* the group runs the previous template
				       until the configuration's changes */
	STORE_REFRESH_FAILED,       /* failed with nothing to roll back to */
	STORE_REFRESH_LAST
};
/* "running", "paused", ...; NULL out of range */
const char *store_refresh_state_name(enum store_refresh_state st);
/* running, paused or rolling_back */
bool store_refresh_active(enum store_refresh_state st);

struct store_refresh {
	char group[STORE_NAME_MAX + 1];
	enum store_refresh_state state;
	char config_template[65]; /* the configuration's template at the start */
	char target[65];          /* the template new instances get */
	char previous[65];        /* the one to roll back to; "" none */
	bool all;                 /* replace every instance created before
				     started_ms (a manual refresh), not only
				     those of another template */
	char max_unavailable[16]; /* "N" or "P%" of desired */
	int64_t surge;            /* new instances beyond desired, >= 0 */
	int64_t min_healthy;      /* percent of desired kept ready */
	int64_t rollback_after;   /* failed new instances that roll back; 0 never */
	char checkpoints[256];    /* "P,P,..." percentages, "" none */
	int64_t checkpoint_done;  /* the last checkpoint paused at, percent */
	int64_t total;            /* instances to replace when it began */
	int64_t failures;         /* new instances that failed so far */
	int64_t batches;          /* batches begun */
	int64_t started_ms, updated_ms;
	char message[STORE_TEXT_MAX + 1]; /* what it did last, or why it ended */
};
/* The group's refresh into *out, or STORE_E_NOTFOUND. */
int store_refresh_get(struct store *s, const char *group,
		      struct store_refresh *out);
/* Insert or overwrite the group's row (updated_ms is set to now). */
int store_refresh_put(struct store *s, const struct store_refresh *r);

#endif
