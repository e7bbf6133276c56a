/* SHA-256/512, HMAC (RFC 2104) and HKDF (RFC 5869) over mbedtls. */
#ifndef STS_CRYPTO_HASH_H
#define STS_CRYPTO_HASH_H

#include "crypto/sizes.h"

#include <stddef.h>
#include <stdint.h>

enum sts_hash_alg { STS_SHA256, STS_SHA512 };

/* Digest length in bytes: STS_SHA256_LEN or STS_SHA512_LEN (0 for an
 * unknown alg). */
size_t sts_hash_len(enum sts_hash_alg alg);

/* out (sts_hash_len bytes) = HASH(data). Returns 0 or a negative sts_error. */
int sts_hash(enum sts_hash_alg alg, const uint8_t *data, size_t len, uint8_t *out);

/* out = HASH(a || b): the two-part hash Noise's MixHash needs, without a copy. */
int sts_hash2(enum sts_hash_alg alg, const uint8_t *a, size_t alen,
              const uint8_t *b, size_t blen, uint8_t *out);

/* out (sts_hash_len bytes) = HMAC-HASH(key, data). */
int sts_hmac(enum sts_hash_alg alg, const uint8_t *key, size_t keylen,
             const uint8_t *data, size_t len, uint8_t *out);

/* RFC 5869 HKDF (extract then expand) into outlen bytes of out
 * (outlen <= 255 * sts_hash_len). salt may be NULL with saltlen 0. */
int sts_hkdf(enum sts_hash_alg alg, const uint8_t *salt, size_t saltlen,
             const uint8_t *ikm, size_t ikmlen, const uint8_t *info, size_t infolen,
             uint8_t *out, size_t outlen);

#endif
