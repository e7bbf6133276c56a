/* AEADs with STS_KEY_LEN keys, STS_AEAD_NONCE_LEN nonces and STS_AEAD_TAG_LEN tags:
 * ChaCha20-Poly1305 (RFC 8439) and AES-256-GCM. */
#ifndef STS_CRYPTO_AEAD_H
#define STS_CRYPTO_AEAD_H

#include "crypto/sizes.h"

#include <stddef.h>
#include <stdint.h>

enum sts_aead_alg { STS_AEAD_CHACHAPOLY, STS_AEAD_AESGCM };

/* out (ptlen + STS_AEAD_TAG_LEN bytes) = ciphertext || tag. out may equal pt. */
int sts_aead_seal(enum sts_aead_alg alg, const uint8_t key[STS_KEY_LEN],
                  const uint8_t nonce[STS_AEAD_NONCE_LEN], const uint8_t *ad, size_t adlen,
                  const uint8_t *pt, size_t ptlen, uint8_t *out);

/* Verifies and decrypts ct (ctlen bytes, tag included) into out (ctlen -
 * STS_AEAD_TAG_LEN bytes). STS_ERR_AUTH on a bad tag (out then holds no
 * plaintext), STS_ERR_TRUNCATED when ctlen < STS_AEAD_TAG_LEN. out may equal ct. */
int sts_aead_open(enum sts_aead_alg alg, const uint8_t key[STS_KEY_LEN],
                  const uint8_t nonce[STS_AEAD_NONCE_LEN], const uint8_t *ad, size_t adlen,
                  const uint8_t *ct, size_t ctlen, uint8_t *out);

#endif
