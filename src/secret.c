/*
 * secret.c: mint, hash and verify per-instance check-in secrets (GnuTLS).
 *
 * The hash is a plain SHA-256 with no salt and no key stretching, on
 * purpose: the secrets are 256 bits from the CSPRNG, not passwords a person
 * chose, so there is no dictionary to precompute and brute force is out of
 * reach; a salt or a slow hash would add nothing but cost on every
 * check-in. What matters is that the database holds no usable secret.
 */
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "log.h"
#include "secret.h"
#include "util.h"

#define SECRET_BYTES 32

int
secret_mint(char out[SECRET_LEN + 1])
{
	static const char b64url[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char raw[SECRET_BYTES + 1]; /* padded to a multiple of 3 */
	size_t o = 0;
	int rc;

	rc = gnutls_rnd(GNUTLS_RND_KEY, raw, SECRET_BYTES);
	if (rc < 0) {
		err_set("minting a secret: gnutls_rnd: %s", gnutls_strerror(rc));
		return -1;
	}
	raw[SECRET_BYTES] = 0;
	for (size_t i = 0; i < SECRET_BYTES; i += 3) {
		unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 |
			     raw[i + 2];

		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
		if (i + 2 < SECRET_BYTES)
			out[o++] = b64url[v & 63];
	}
	out[o] = '\0';
	explicit_bzero(raw, sizeof(raw));
	if (o != SECRET_LEN)
		fatal("secret_mint: encoded %zu characters", o);
	return 0;
}

int
secret_hash(const char *secret, size_t len, char out[SECRET_HASH_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char digest[32];
	int rc;

	rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, secret, len, digest);
	if (rc < 0) {
		err_set("hashing a secret: %s", gnutls_strerror(rc));
		return -1;
	}
	for (size_t i = 0; i < sizeof(digest); i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 15];
	}
	out[SECRET_HASH_LEN] = '\0';
	return 0;
}

bool
secret_verify(const char *presented, size_t len, const char *stored_hash)
{
	char h[SECRET_HASH_LEN + 1];
	bool ok;

	if (!presented || !stored_hash || len == 0 ||
	    len > SECRET_PRESENTED_MAX ||
	    strlen(stored_hash) != SECRET_HASH_LEN)
		return false;
	if (secret_hash(presented, len, h) < 0)
		return false;
	ok = util_secret_equal(h, SECRET_HASH_LEN, stored_hash,
			       SECRET_HASH_LEN);
	explicit_bzero(h, sizeof(h));
	return ok;
}
