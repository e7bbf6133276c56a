/* AEADs with 32-byte keys, 12-byte nonces and 16-byte tags:
 * ChaCha20-Poly1305 (RFC 8439) and AES-256-GCM. */
#ifndef STS_CRYPTO_AEAD_H
#define STS_CRYPTO_AEAD_H

#include <stddef.h>
#include <stdint.h>

enum sts_aead_alg { STS_AEAD_CHACHAPOLY, STS_AEAD_AESGCM };

#define STS_AEAD_KEY_LEN 32
#define STS_AEAD_NONCE_LEN 12
#define STS_AEAD_TAG_LEN 16

/* out (ptlen + 16 bytes) = ciphertext || tag. out may equal pt. */
int sts_aead_seal(enum sts_aead_alg alg, const uint8_t key[32], const uint8_t nonce[12],
                  const uint8_t *ad, size_t adlen, const uint8_t *pt, size_t ptlen,
                  uint8_t *out);

/* Verifies and decrypts ct (ctlen bytes, tag included) into out (ctlen - 16
 * bytes). STS_ERR_AUTH on a bad tag (out then holds no plaintext),
 * STS_ERR_TRUNCATED when ctlen < 16. out may equal ct. */
int sts_aead_open(enum sts_aead_alg alg, const uint8_t key[32], const uint8_t nonce[12],
                  const uint8_t *ad, size_t adlen, const uint8_t *ct, size_t ctlen,
                  uint8_t *out);

#endif
