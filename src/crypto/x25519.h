/* X25519 (RFC 7748) on raw 32-byte little-endian keys, over mbedtls ecp. */
#ifndef STS_CRYPTO_X25519_H
#define STS_CRYPTO_X25519_H

#include <stdint.h>

#define STS_X25519_LEN 32

/* A fresh key pair from the process DRBG. Returns 0 or a negative sts_error. */
int sts_x25519_keypair(uint8_t priv[32], uint8_t pub[32]);

/* pub = X25519(priv, 9): the public key of a private key (clamped here). */
int sts_x25519_public(uint8_t pub[32], const uint8_t priv[32]);

/* out = X25519(priv, peer). STS_ERR_KEY when peer is a low-order point (the
 * result would be all zeros): such a peer contributes nothing secret. */
int sts_x25519_shared(uint8_t out[32], const uint8_t priv[32], const uint8_t peer[32]);

#endif
