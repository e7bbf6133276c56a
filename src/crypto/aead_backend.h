/* The AEAD implementations behind sts_aead_seal and sts_aead_open (aead.c):
 * libcrypto's EVP (aead_openssl.c) and mbedtls (aead_mbedtls.c). The build
 * links one of them into the core (CMake option STS_AEAD_BACKEND); the AEAD
 * unit test links both and checks each against the other. */
#ifndef STS_CRYPTO_AEAD_BACKEND_H
#define STS_CRYPTO_AEAD_BACKEND_H

#include "crypto/aead.h"

/* Seals (seal = 1: in to out, the tag to tag_out) or opens (seal = 0: checks
 * tag_in in constant time, decrypts in to out, wipes out on a mismatch) len
 * bytes. out may equal in; ad and in may be NULL when their length is 0.
 * Returns 0, STS_ERR_AUTH, STS_ERR_UNSUPPORTED or STS_ERR_CRYPTO. */
typedef int sts_aead_backend_fn(enum sts_aead_alg alg, int seal, const uint8_t key[STS_KEY_LEN],
                                const uint8_t nonce[STS_AEAD_NONCE_LEN],
                                const uint8_t *ad, size_t adlen, const uint8_t *in, size_t len,
                                uint8_t *out, const uint8_t *tag_in, uint8_t *tag_out);

sts_aead_backend_fn sts_aead_openssl;
sts_aead_backend_fn sts_aead_mbedtls;

/* "openssl" or "mbedtls": the backend this build uses, for benchmarks. */
extern const char sts_aead_backend_name[];

#endif
