/*
 * Unit tests for secret.c: minting (length, alphabet, uniqueness), the
 * SHA-256 hash against known vectors, and verification.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "secret.h"
#include "util.h"

static void
test_mint(void **state)
{
	char a[SECRET_LEN + 1], b[SECRET_LEN + 1];

	(void)state;
	assert_int_equal(secret_mint(a), 0);
	assert_int_equal(secret_mint(b), 0);
	assert_int_equal(strlen(a), SECRET_LEN);
	assert_string_not_equal(a, b);
	for (size_t i = 0; i < SECRET_LEN; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "abcdefghijklmnopqrstuvwxyz0123456789-_",
				       a[i]));
	/* 256 bits: the last character carries 4 bits, so it is one of 16 */
	assert_non_null(strchr("AEIMQUYcgkosw048", a[SECRET_LEN - 1]));
}

static void
test_hash(void **state)
{
	static const struct {
		const char *in;
		const char *hex;
	} v[] = {
		/* FIPS 180-2 / NIST test vectors */
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	};
	char h[SECRET_HASH_LEN + 1];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		assert_int_equal(secret_hash(v[i].in, strlen(v[i].in), h), 0);
		assert_string_equal(h, v[i].hex);
	}
}

static void
test_verify(void **state)
{
	char s[SECRET_LEN + 1], other[SECRET_LEN + 1], h[SECRET_HASH_LEN + 1];
	char upper[SECRET_HASH_LEN + 1], longer[SECRET_PRESENTED_MAX + 2];

	(void)state;
	assert_int_equal(secret_mint(s), 0);
	assert_int_equal(secret_mint(other), 0);
	assert_int_equal(secret_hash(s, strlen(s), h), 0);
	assert_true(secret_verify(s, strlen(s), h));
	assert_false(secret_verify(other, strlen(other), h));
	assert_false(secret_verify(s, strlen(s) - 1, h));   /* prefix */
	assert_false(secret_verify(s, 0, h));
	assert_false(secret_verify(NULL, 5, h));
	assert_false(secret_verify(s, strlen(s), NULL));
	assert_false(secret_verify(s, strlen(s), "abc"));  /* bad stored hash */
	assert_false(secret_verify(s, strlen(s), ""));
	for (size_t i = 0; i <= SECRET_HASH_LEN; i++)
		upper[i] = (char)(h[i] >= 'a' && h[i] <= 'f' ? h[i] - 32 : h[i]);
	if (strcmp(upper, h) != 0)
		assert_false(secret_verify(s, strlen(s), upper));
	/* an overlong presented secret is refused before hashing */
	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	assert_int_equal(secret_hash(longer, strlen(longer), h), 0);
	assert_false(secret_verify(longer, strlen(longer), h));
	/* the maximum is accepted */
	assert_int_equal(secret_hash(longer, SECRET_PRESENTED_MAX, h), 0);
	assert_true(secret_verify(longer, SECRET_PRESENTED_MAX, h));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mint),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_verify),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
