/* ECDSA over P-256 (FIPS 186-4) with mbedtls, for group sender signatures:
 * public keys as uncompressed points (0x04 || X || Y, 65 bytes), signatures
 * as r || s (64 bytes, each big-endian, zero-padded). Signing is
 * deterministic (RFC 6979) with SHA-256. */
#ifndef STS_CRYPTO_ECDSA_H
#define STS_CRYPTO_ECDSA_H

#include "crypto/sizes.h"

#include <stddef.h>
#include <stdint.h>

#define STS_P256_PRIV_LEN 32
#define STS_P256_PUB_LEN 65
#define STS_P256_SIG_LEN 64

/* A new key pair from the process's DRBG. 0, STS_ERR_RNG, STS_ERR_CRYPTO. */
int sts_p256_keygen(uint8_t priv[STS_P256_PRIV_LEN], uint8_t pub[STS_P256_PUB_LEN]);
/* Signs a SHA-256 digest. 0, STS_ERR_KEY (not a valid private key), STS_ERR_CRYPTO. */
int sts_p256_sign(const uint8_t priv[STS_P256_PRIV_LEN], const uint8_t digest[STS_SHA256_LEN],
                  uint8_t sig[STS_P256_SIG_LEN]);
/* 0 when sig is pub's signature of digest; STS_ERR_AUTH when not,
 * STS_ERR_KEY when pub is not a point on the curve. */
int sts_p256_verify(const uint8_t pub[STS_P256_PUB_LEN], const uint8_t digest[STS_SHA256_LEN],
                    const uint8_t sig[STS_P256_SIG_LEN]);
/* 0 when pub is a valid point on P-256, STS_ERR_KEY otherwise. */
int sts_p256_check_public(const uint8_t pub[STS_P256_PUB_LEN]);

#endif
