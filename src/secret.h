/*
 * secret.h: per-instance secrets for guest check-in.
 *
 * At provisioning the daemon mints a secret, hands it to the guest (in its
 * cloud-init data) and stores only its hash (store_instance.secret_hash).
 * A check-in presents the secret; secret_verify() hashes it and compares
 * the hashes in constant time.
 */
#ifndef VA_SECRET_H
#define VA_SECRET_H

#include <stdbool.h>
#include <stddef.h>

/* 32 random bytes, base64url without padding: 43 characters [A-Za-z0-9_-]. */
#define SECRET_LEN 43
/* SHA-256 in lowercase hex. */
#define SECRET_HASH_LEN 64
/* Longest presented secret secret_verify() will look at. */
#define SECRET_PRESENTED_MAX 256

/* Mint a new secret into out (NUL-terminated). 0, or -1 + err_set(). */
int secret_mint(char out[SECRET_LEN + 1]);
/* Hash a secret of len bytes for storage. 0, or -1 + err_set(). */
int secret_hash(const char *secret, size_t len, char out[SECRET_HASH_LEN + 1]);
/*
 * Whether the presented secret (len bytes, from the network) matches the
 * stored hash. False for a malformed hash, an empty or overlong secret.
 * Takes the same time wherever the hashes differ.
 */
bool secret_verify(const char *presented, size_t len, const char *stored_hash);

#endif
