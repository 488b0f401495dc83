/*
 * bench_store: state-store operation rates on a real backend, printed as
 * figures (never asserted). One thread, one handle holding the leader
 * lease, so every write pays for the fence check like the daemon's do.
 *
 *   bench_store                      SQLite on a temporary file
 *   bench_store mysql://va@127.0.0.1:3307/va_test_bench
 *                                    MariaDB; password from
 *                                    VA_TEST_MARIADB_PASSWORD_FILE
 * Each figure runs for about BENCH_SECONDS (default 2); BENCH_ONLY=TEXT
 * runs only the figures whose name contains TEXT (for a profiler).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "converge.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define NINST 100
/* The scaler's listing: every live, draining and deleting instance of
 * every group, as scaler_tick() asks for it once per decision. */
#define NLIST 5000

static double seconds = 2.0;

typedef int (*op_fn)(struct store *s, char (*ids)[STORE_ID_LEN + 1], long i);

static int
op_heartbeat(struct store *s, char (*ids)[STORE_ID_LEN + 1], long i)
{
	return store_instance_heartbeat(s, ids[i % NINST], util_wall_ms(),
					(i / NINST) % 2);
}

/* A batch of NINST heartbeats in one transaction; counts as NINST ops. */
static int
op_heartbeat_batch(struct store *s, char (*ids)[STORE_ID_LEN + 1], long i)
{
	struct store_heartbeat hb[NINST];

	if (i % NINST != 0)
		return STORE_OK;
	for (int k = 0; k < NINST; k++)
		hb[k] = (struct store_heartbeat){ids[k], util_wall_ms(),
						 (i / NINST) % 2, 0};
	return store_instance_heartbeat_batch(s, hb, NINST);
}

static int
op_cas(struct store *s, char (*ids)[STORE_ID_LEN + 1], long i)
{
	bool odd = (i / NINST) % 2;

	return store_instance_set_state(s, ids[i % NINST],
					odd ? STORE_INSTANCE_UNHEALTHY
					    : STORE_INSTANCE_READY,
					odd ? STORE_INSTANCE_READY
					    : STORE_INSTANCE_UNHEALTHY);
}

static int
op_event(struct store *s, char (*ids)[STORE_ID_LEN + 1], long i)
{
	struct store_event e = {0, 0, (char *)"bench", ids[i % NINST],
				(char *)"checkin", (char *)"bench event", NULL};

	return store_event_append(s, &e, NULL);
}

static int
op_get(struct store *s, char (*ids)[STORE_ID_LEN + 1], long i)
{
	struct store_instance in;
	int rc = store_instance_get(s, ids[i % NINST], &in);

	store_instance_release(&in);
	return rc;
}

static int
op_list(struct store *s, char (*ids)[STORE_ID_LEN + 1], long i)
{
	struct store_instance_filter f = {"bench", NULL, 0};
	struct store_instance_list l;
	int rc = store_instance_list(s, &f, &l);

	(void)ids;
	(void)i;
	store_instance_list_release(&l);
	return rc;
}

static int
op_list_all(struct store *s, char (*ids)[STORE_ID_LEN + 1], long i)
{
	struct store_instance_filter f = {NULL, NULL, 0};
	struct store_instance_list l;
	int rc;

	(void)ids;
	(void)i;
	for (int st = 0; st < STORE_INSTANCE_LAST; st++)
		if (converge_state_live((enum store_instance_state)st) ||
		    st == STORE_INSTANCE_DRAINING || st == STORE_INSTANCE_DELETING)
			f.state_mask |= STORE_STATE_BIT(st);
	rc = store_instance_list(s, &f, &l);
	if (rc == STORE_OK && l.n != NLIST) {
		fprintf(stderr, "bench_store: listed %zu instances, not %d\n",
			l.n, NLIST);
		rc = STORE_E_ERROR;
	}
	store_instance_list_release(&l);
	return rc;
}

/* One turn of a daemon whose guests send heartbeats: the turn's batch of
 * NINST heartbeats through the loop's handle, then the scaler's listing;
 * counts as one op. The cache follows its own handle's batches (store.c,
 * cache_follow()); before that, each listing read the table again. */
static int
op_batch_list_all(struct store *s, char (*ids)[STORE_ID_LEN + 1], long i)
{
	int rc = STORE_OK;

	for (long k = 0; k < NINST && rc == STORE_OK; k++)
		rc = op_heartbeat_batch(s, ids, i * NINST + k);
	return rc == STORE_OK ? op_list_all(s, ids, i) : rc;
}

/* NLIST - NINST more instances, in five groups, with what adopted ones
 * carry (host, domain, secret hash, address), created in a shuffled
 * order of created_ms like adoption's. */
static void
fill(struct store *s)
{
	char id[STORE_ID_LEN + 1], dom[32], addr[32];
	char hash[STORE_HASH_LEN + 1];

	for (int k = 0; k < 5; k++) {
		char name[16];
		struct store_group g = {name, 1000, false, 1, 0, 0};

		snprintf(name, sizeof(name), "bench%d", k);
		if (store_group_upsert(s, &g) != STORE_OK)
			goto fail;
	}
	memset(hash, 'a', STORE_HASH_LEN);
	hash[STORE_HASH_LEN] = '\0';
	for (int i = NINST; i < NLIST; i++) {
		char group[16];
		struct store_instance in = {0};

		snprintf(group, sizeof(group), "bench%d", i / 1000);
		snprintf(dom, sizeof(dom), "va-scale-%04d", i);
		snprintf(addr, sizeof(addr), "10.0.%d.%d", i / 256, i % 256);
		store_instance_new_id(id);
		in.id = id;
		in.group = group;
		in.host = (char *)"kvm1";
		in.domain = dom;
		in.secret_hash = hash;
		in.address = addr;
		in.state = STORE_INSTANCE_READY;
		in.config_gen = 1;
		in.created_ms = 1700000000000 + (int64_t)((i * 7919) % NLIST);
		if (store_instance_put(s, &in) != STORE_OK)
			goto fail;
	}
	return;
fail:
	fprintf(stderr, "bench_store: %s\n", err_msg());
	exit(1);
}

static void
run(struct store *s, char (*ids)[STORE_ID_LEN + 1], const char *name,
    op_fn fn)
{
	int64_t start = util_now_ms(), end = start + (int64_t)(seconds * 1000);
	const char *only = getenv("BENCH_ONLY");
	long n = 0;

	if (only && !strstr(name, only))
		return;

	/* the state machine op needs an even count per instance: go on in
	 * whole rounds of NINST */
	while (util_now_ms() < end || n % (2 * NINST) != 0) {
		if (fn(s, ids, n) != STORE_OK) {
			fprintf(stderr, "bench_store: %s: %s\n", name, err_msg());
			exit(1);
		}
		n++;
	}
	double el = (double)(util_now_ms() - start) / 1000.0;
	printf("%-34s %9.0f ops/s  (%ld in %.1f s, %.3f ms each)\n", name,
	       (double)n / el, n, el, el * 1000.0 / (double)n);
}

int
main(int argc, char **argv)
{
	char tmp[] = "/var/tmp/bench_store.XXXXXX";
	char *url, *password = NULL;
	char ids[NINST][STORE_ID_LEN + 1];
	struct store *s;
	int64_t epoch;
	const char *e = getenv("BENCH_SECONDS");

	if (e)
		seconds = atof(e);
	if (argc > 1) {
		const char *pf = getenv("VA_TEST_MARIADB_PASSWORD_FILE");
		size_t len = 0;

		url = xstrdup(argv[1]);
		if (pf) {
			password = util_read_file(pf, 4096, &len);
			while (password && len && password[len - 1] == '\n')
				password[--len] = '\0';
		}
	} else {
		if (!mkdtemp(tmp)) {
			perror("mkdtemp");
			return 1;
		}
		url = xasprintf("sqlite://%s/state.db", tmp);
	}
	s = store_open(url, password);
	if (!s) {
		fprintf(stderr, "bench_store: %s\n", err_msg());
		return 1;
	}
	if (store_lease_acquire(s, STORE_LEASE_LEADER, "bench", 600000,
				&epoch) != STORE_OK) {
		fprintf(stderr, "bench_store: %s\n", err_msg());
		return 1;
	}
	struct store_group g = {(char *)"bench", NINST, false, 1, 0, 0};
	if (store_group_upsert(s, &g) != STORE_OK) {
		fprintf(stderr, "bench_store: %s\n", err_msg());
		return 1;
	}
	for (int i = 0; i < NINST; i++) {
		struct store_instance in = {0};

		store_instance_new_id(ids[i]);
		in.id = ids[i];
		in.group = (char *)"bench";
		in.host = (char *)"kvm1";
		in.state = STORE_INSTANCE_READY;
		if (store_instance_put(s, &in) != STORE_OK) {
			fprintf(stderr, "bench_store: %s\n", err_msg());
			return 1;
		}
	}
	printf("state store %s (%s), %d instances, 1 thread, fenced writes\n",
	       store_backend(s), argc > 1 ? argv[1] : "temporary file", NINST);
	run(s, ids, "instance heartbeat (write)", op_heartbeat);
	run(s, ids, "heartbeats, 100 per transaction", op_heartbeat_batch);
	run(s, ids, "instance state CAS (write)", op_cas);
	run(s, ids, "event append (write)", op_event);
	run(s, ids, "instance get (read)", op_get);
	run(s, ids, "instance list, 100 rows (read)", op_list);
	fill(s);
	run(s, ids, "instance list, 5,000 rows, all groups", op_list_all);
	/* the loop's handle: from memory while no instance changed */
	if (store_instance_cache(s, 60000)) {
		run(s, ids, "... the same, unchanged, cached", op_list_all);
		run(s, ids, "100 heartbeats, then that listing", op_batch_list_all);
	}
	store_close(s);
	if (argc == 1) {
		char *cmd = xasprintf("rm -rf '%s'", tmp);

		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmp);
		free(cmd);
	}
	free(url);
	free(password);
	return 0;
}
