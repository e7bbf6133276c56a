/* X25519 (RFC 7748) on raw little-endian keys of STS_X25519_LEN bytes, over
 * mbedtls ecp. */
#ifndef STS_CRYPTO_X25519_H
#define STS_CRYPTO_X25519_H

#include "crypto/sizes.h"

#include <stdint.h>

/* A fresh key pair from the process DRBG. Returns 0 or a negative sts_error. */
int sts_x25519_keypair(uint8_t priv[STS_X25519_LEN], uint8_t pub[STS_X25519_LEN]);

/* pub = X25519(priv, 9): the public key of a private key (clamped here). */
int sts_x25519_public(uint8_t pub[STS_X25519_LEN], const uint8_t priv[STS_X25519_LEN]);

/* out = X25519(priv, peer). STS_ERR_KEY when peer is a low-order point (the
 * result would be all zeros): such a peer contributes nothing secret. */
int sts_x25519_shared(uint8_t out[STS_X25519_LEN], const uint8_t priv[STS_X25519_LEN],
                      const uint8_t peer[STS_X25519_LEN]);

#endif
