#include "crypto/aead_backend.h"
#include "util/error.h"

#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>

/* The portable backend. A context per call: key setup costs well under a
 * microsecond for both ciphers, and nothing keyed outlives the call. */

static int chachapoly(int seal, const uint8_t key[STS_KEY_LEN],
                      const uint8_t nonce[STS_AEAD_NONCE_LEN], const uint8_t *ad, size_t adlen,
                      const uint8_t *in, size_t len,
                      uint8_t *out, const uint8_t *tag_in, uint8_t *tag_out)
{
    mbedtls_chachapoly_context ctx;
    int ret;

    mbedtls_chachapoly_init(&ctx);
    ret = mbedtls_chachapoly_setkey(&ctx, key);
    if (ret == 0)
        ret = seal ? mbedtls_chachapoly_encrypt_and_tag(&ctx, len, nonce, ad, adlen, in, out, tag_out)
                   : mbedtls_chachapoly_auth_decrypt(&ctx, len, nonce, ad, adlen, tag_in, in, out);
    mbedtls_chachapoly_free(&ctx);
    if (ret == MBEDTLS_ERR_CHACHAPOLY_AUTH_FAILED) return STS_ERR_AUTH;
    return ret == 0 ? 0 : STS_ERR_CRYPTO;
}

static int aesgcm(int seal, const uint8_t key[STS_KEY_LEN],
                  const uint8_t nonce[STS_AEAD_NONCE_LEN], const uint8_t *ad, size_t adlen,
                  const uint8_t *in, size_t len,
                  uint8_t *out, const uint8_t *tag_in, uint8_t *tag_out)
{
    mbedtls_gcm_context ctx;
    int ret;

    mbedtls_gcm_init(&ctx);
    ret = mbedtls_gcm_setkey(&ctx, MBEDTLS_CIPHER_ID_AES, key, 8 * STS_KEY_LEN);
    if (ret == 0)
        ret = seal ? mbedtls_gcm_crypt_and_tag(&ctx, MBEDTLS_GCM_ENCRYPT, len, nonce,
                                               STS_AEAD_NONCE_LEN, ad, adlen, in, out,
                                               STS_AEAD_TAG_LEN, tag_out)
                   : mbedtls_gcm_auth_decrypt(&ctx, len, nonce, STS_AEAD_NONCE_LEN, ad, adlen,
                                              tag_in, STS_AEAD_TAG_LEN, in, out);
    mbedtls_gcm_free(&ctx);
    if (ret == MBEDTLS_ERR_GCM_AUTH_FAILED) return STS_ERR_AUTH;
    return ret == 0 ? 0 : STS_ERR_CRYPTO;
}

/* Both mbedtls decryptors compare the tag in constant time and wipe out on a
 * mismatch. */
int sts_aead_mbedtls(enum sts_aead_alg alg, int seal, const uint8_t key[STS_KEY_LEN],
                     const uint8_t nonce[STS_AEAD_NONCE_LEN], const uint8_t *ad, size_t adlen,
                     const uint8_t *in, size_t len,
                     uint8_t *out, const uint8_t *tag_in, uint8_t *tag_out)
{
    static const uint8_t empty[1];

    if (!ad) ad = empty; /* mbedtls wants non-NULL pointers even for zero lengths */
    if (!in) in = empty;
    switch (alg) {
    case STS_AEAD_CHACHAPOLY: return chachapoly(seal, key, nonce, ad, adlen, in, len, out, tag_in, tag_out);
    case STS_AEAD_AESGCM: return aesgcm(seal, key, nonce, ad, adlen, in, len, out, tag_in, tag_out);
    }
    return STS_ERR_UNSUPPORTED;
}
