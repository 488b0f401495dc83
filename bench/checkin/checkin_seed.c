/*
 * checkin_seed: put N instances with fresh secrets into a state store, for
 * the check-in benchmark (bench/checkin/run.sh). Goes through the store's
 * own API (store_group_upsert, store_instance_put), so every row passes the
 * same validation as the daemon's, and stores only the secrets' hashes
 * (secret_hash), as provisioning does. Prints "ID SECRET" per line on
 * stdout for the load generator.
 *
 *   checkin_seed STATE_URL GROUP HOST N [booting|ready]
 *
 * A MariaDB URL's password is read from the file named by
 * $VA_BENCH_STATE_PASSWORD_FILE (first line).
 * The instances are on HOST in GROUP: pick a group and a host the daemon
 * does not manage, so that neither the scaler nor reconciliation touches
 * them. 'ready' (the default) measures steady heartbeats; 'booting'
 * instances make their first check-in, which records the transition to
 * ready and an event (two durable writes) on the request's thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "secret.h"
#include "store.h"
#include "util.h"

int
main(int argc, char **argv)
{
	struct store *s;
	struct store_group g;
	char password[256] = "";
	enum store_instance_state state = STORE_INSTANCE_READY;
	long n;
	int rc = 1;

	if (argc < 5 || argc > 6 || (n = strtol(argv[4], NULL, 10)) <= 0 ||
	    (argc == 6 && store_instance_state_parse(argv[5], &state) != 0)) {
		fprintf(stderr, "usage: checkin_seed STATE_URL GROUP HOST N [booting|ready]\n");
		return 2;
	}
	if (getenv("VA_BENCH_STATE_PASSWORD_FILE")) {
		FILE *f = fopen(getenv("VA_BENCH_STATE_PASSWORD_FILE"), "r");

		if (!f || !fgets(password, sizeof(password), f)) {
			fprintf(stderr, "checkin_seed: cannot read the password file\n");
			return 1;
		}
		fclose(f);
		password[strcspn(password, "\r\n")] = '\0';
	}
	s = store_open(argv[1], password[0] ? password : NULL);
	explicit_bzero(password, sizeof(password));
	if (!s) {
		fprintf(stderr, "checkin_seed: %s\n", err_msg());
		return 1;
	}
	memset(&g, 0, sizeof(g));
	g.name = argv[2];
	if (store_group_upsert(s, &g) != STORE_OK)
		goto fail;
	for (long i = 0; i < n; i++) {
		char id[STORE_ID_LEN + 1], secret[SECRET_LEN + 1];
		char hash[SECRET_HASH_LEN + 1], domain[64];
		struct store_instance si;

		if (store_instance_new_id(id) != STORE_OK ||
		    secret_mint(secret) != 0 ||
		    secret_hash(secret, strlen(secret), hash) != 0)
			goto fail;
		snprintf(domain, sizeof(domain), "bench-%06ld", i);
		memset(&si, 0, sizeof(si));
		si.id = id;
		si.group = argv[2];
		si.host = argv[3];
		si.domain = domain;
		si.state = state;
		if (state == STORE_INSTANCE_READY)
			si.ready_ms = si.heartbeat_ms = util_wall_ms();
		si.secret_hash = hash;
		if (store_instance_put(s, &si) != STORE_OK)
			goto fail;
		printf("%s %s\n", id, secret);
		explicit_bzero(secret, sizeof(secret));
	}
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "checkin_seed: %s\n", err_msg());
out:
	store_close(s);
	return rc;
}
