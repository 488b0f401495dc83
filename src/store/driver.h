/*
 * store/driver.h: the table of SQL primitives a state-store backend
 * implements (libvirt's driver tables). Private to store.c and the
 * backends in src/store/; the rest of the program uses store.h.
 *
 * SQL text uses `?` placeholders and only syntax that SQLite and MariaDB
 * share; dialect-specific DDL lives in each backend's migration list.
 */
#ifndef VA_STORE_DRIVER_H
#define VA_STORE_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

enum store_val_type {
	STORE_VAL_NULL,
	STORE_VAL_INT,
	STORE_VAL_TEXT,
};

/* One bound parameter; text is borrowed for the duration of the call. */
struct store_val {
	enum store_val_type type;
	int64_t i;
	const char *s;
};
#define SV_INT(x) ((struct store_val){.type = STORE_VAL_INT, .i = (x)})
#define SV_TEXT(x) ((struct store_val){.type = STORE_VAL_TEXT, .s = (x)})
#define SV_NULL ((struct store_val){.type = STORE_VAL_NULL})
/* Text, or NULL when x is NULL. */
#define SV_OPT(x) ((x) ? SV_TEXT(x) : SV_NULL)

/*
 * One result row: vals[i] is the column as text (NULL for SQL NULL),
 * lens[i] its length in bytes. A backend that reads integers as such
 * (SQLite's INTEGER values, MariaDB's integer columns) gives them in
 * ints[i] with is_int[i] set, and vals[i] NULL: a number is then not
 * turned into text and parsed back (at 5,000 instances that was a good
 * part of the scaler's listing each tick). ints and is_int are NULL when
 * the backend gives only text. store.c's column readers accept both.
 * Valid only during the callback.
 */
struct store_row {
	size_t ncols;
	const char *const *vals;
	const size_t *lens;
	const int64_t *ints;
	const bool *is_int;
};
/* Return 0 to go on, -1 (after err_set()) to stop the query with an error. */
typedef int (*store_row_fn)(void *ctx, const struct store_row *row);

/* A schema migration: the statements that take version-1 to version.
 * Data a migration must create (version 3's installation id) is written
 * by store.c after the statements (data_steps[]), once for both backends;
 * such a step must tolerate running again after an interrupted MariaDB
 * migration. */
struct store_migration {
	int version;
	const char *const *stmts; /* NULL-terminated */
};

struct store_conn;

struct store_driver {
	const char *name; /* "sqlite", "mysql" */
	/* Connections one handle may open to run operations in parallel
	 * (store_open_pool()): 1 serializes them in the handle. */
	unsigned max_conns;
	/*
	 * Open a connection from the URL without its "scheme://" prefix.
	 * The password is not kept longer than needed by the backend and
	 * never logged.
	 */
	struct store_conn *(*open)(const char *rest, const char *password);
	/* Check the URL (without its scheme) as open would, touching
	 * nothing: 0, or -1 + err_set(). */
	int (*check_url)(const char *rest);
	void (*close)(struct store_conn *c);
	/* Transactions. write=true takes the write lock up front (SQLite's
	 * BEGIN IMMEDIATE); MariaDB relies on row locks. rollback never fails
	 * the caller (it logs). */
	int (*begin)(struct store_conn *c, bool write);
	int (*commit)(struct store_conn *c);
	void (*rollback)(struct store_conn *c);
	/* Run a statement. *changes (may be NULL) gets the rows it matched;
	 * *last_id (may be NULL) the id an INSERT generated. Returns 0,
	 * STORE_E_EXISTS for a unique/primary key violation, or STORE_E_ERROR. */
	int (*exec)(struct store_conn *c, const char *sql,
		    const struct store_val *params, size_t nparams,
		    int64_t *changes, int64_t *last_id);
	/* Run a query and call fn for each row. 0 or -1. */
	int (*query)(struct store_conn *c, const char *sql,
		     const struct store_val *params, size_t nparams,
		     store_row_fn fn, void *ctx);
	/* The database's clock in ms since the epoch. */
	int (*now_ms)(struct store_conn *c, int64_t *out);
	/* Serialize migrations between processes: SQLite runs them in one
	 * transaction; MariaDB (whose DDL commits implicitly) takes a named
	 * lock, and its migration statements are idempotent. */
	int (*migrate_begin)(struct store_conn *c);
	int (*migrate_end)(struct store_conn *c, bool ok);
	/* Whether a table exists (to tell an empty database from a v0 one). */
	int (*table_exists)(struct store_conn *c, const char *table, bool *out);
	/* The schema keeps instances_version.gen, bumped (by triggers) in
	 * the transaction of every change to the instances table, whoever
	 * makes it: store_instance_cache() relies on it. */
	bool instances_gen;
	const struct store_migration *migrations; /* in version order */
	size_t nmigrations;
};

extern const struct store_driver store_driver_sqlite;
extern const struct store_driver store_driver_mysql;

#endif
