/* Raw AES block modes for the compatibility protocols (legacy STS, SMQTT,
 * Fernet). These give confidentiality only: callers add integrity where their
 * protocol has any. */
#ifndef STS_CRYPTO_AES_H
#define STS_CRYPTO_AES_H

#include "crypto/sizes.h"

#include <stddef.h>
#include <stdint.h>

/* AES-ECB over len bytes (a multiple of STS_AES_BLOCK_LEN); keylen 16, 24 or
 * 32 (AES-128, -192, -256). */
int sts_aes_ecb(int encrypt, const uint8_t *key, size_t keylen,
                const uint8_t *in, size_t len, uint8_t *out);

/* AES-CBC over len bytes (a multiple of STS_AES_BLOCK_LEN); iv is updated in place to the
 * last ciphertext block, so calls chain as one stream. */
int sts_aes_cbc(int encrypt, const uint8_t *key, size_t keylen, uint8_t iv[STS_AES_BLOCK_LEN],
                const uint8_t *in, size_t len, uint8_t *out);

/* PKCS#7 padding to whole blocks: pad writes len + 1..STS_AES_BLOCK_LEN bytes
 * into out (room for len + STS_AES_BLOCK_LEN) and returns the padded length.
 * unpad checks the padding and returns the unpadded length, or a negative
 * sts_error. */
size_t sts_pkcs7_pad(uint8_t *out, const uint8_t *in, size_t len);
int sts_pkcs7_unpad(const uint8_t *buf, size_t len);

#endif
