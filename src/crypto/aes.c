#include "crypto/aes.h"
#include "util/error.h"

#include <mbedtls/aes.h>
#include <string.h>

static int set_key(mbedtls_aes_context *ctx, int encrypt, const uint8_t *key, size_t keylen)
{
    /* AES-128, -192, -256 */
    if (keylen != 16 && keylen != 24 && keylen != 32) return STS_ERR_INVALID;
    int rc = encrypt ? mbedtls_aes_setkey_enc(ctx, key, (unsigned)keylen * 8)
                     : mbedtls_aes_setkey_dec(ctx, key, (unsigned)keylen * 8);
    return rc == 0 ? 0 : STS_ERR_CRYPTO;
}

/* One pass of AES over whole blocks: ECB when iv is NULL, else CBC with the
 * chained IV updated in place. */
static int crypt_blocks(int encrypt, const uint8_t *key, size_t keylen, uint8_t *iv,
                        const uint8_t *in, size_t len, uint8_t *out)
{
    mbedtls_aes_context ctx;
    int mode = encrypt ? MBEDTLS_AES_ENCRYPT : MBEDTLS_AES_DECRYPT;
    int rc;

    if (len % STS_AES_BLOCK_LEN) return STS_ERR_INVALID;
    mbedtls_aes_init(&ctx);
    rc = set_key(&ctx, encrypt, key, keylen);
    if (rc == 0 && iv) {
        if (mbedtls_aes_crypt_cbc(&ctx, mode, len, iv, in, out) != 0) rc = STS_ERR_CRYPTO;
    }
    for (size_t off = 0; rc == 0 && !iv && off < len; off += STS_AES_BLOCK_LEN) {
        if (mbedtls_aes_crypt_ecb(&ctx, mode, in + off, out + off) != 0) rc = STS_ERR_CRYPTO;
    }
    mbedtls_aes_free(&ctx);
    return rc;
}

int sts_aes_ecb(int encrypt, const uint8_t *key, size_t keylen,
                const uint8_t *in, size_t len, uint8_t *out)
{
    return crypt_blocks(encrypt, key, keylen, NULL, in, len, out);
}

int sts_aes_cbc(int encrypt, const uint8_t *key, size_t keylen, uint8_t iv[STS_AES_BLOCK_LEN],
                const uint8_t *in, size_t len, uint8_t *out)
{
    return crypt_blocks(encrypt, key, keylen, iv, in, len, out);
}

size_t sts_pkcs7_pad(uint8_t *out, const uint8_t *in, size_t len)
{
    size_t pad = STS_AES_BLOCK_LEN - len % STS_AES_BLOCK_LEN;
    memmove(out, in, len);
    memset(out + len, (int)pad, pad);
    return len + pad;
}

int sts_pkcs7_unpad(const uint8_t *buf, size_t len)
{
    if (len == 0 || len % STS_AES_BLOCK_LEN) return STS_ERR_INVALID;
    uint8_t pad = buf[len - 1];
    /* Fold every comparison in, so the check does not branch on the padding. */
    uint8_t bad = (uint8_t)(pad == 0) | (uint8_t)(pad > STS_AES_BLOCK_LEN);
    for (size_t i = 1; i <= STS_AES_BLOCK_LEN; i++)
        bad |= (uint8_t)(i <= pad) & (uint8_t)(buf[len - i] != pad);
    return bad ? STS_ERR_INVALID : (int)(len - pad);
}
