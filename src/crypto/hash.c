#include "crypto/hash.h"
#include "util/error.h"

#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>

static const mbedtls_md_info_t *md_info(enum sts_hash_alg alg)
{
    switch (alg) {
    case STS_SHA256: return mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    case STS_SHA512: return mbedtls_md_info_from_type(MBEDTLS_MD_SHA512);
    }
    return NULL;
}

size_t sts_hash_len(enum sts_hash_alg alg)
{
    const mbedtls_md_info_t *md = md_info(alg);
    return md ? mbedtls_md_get_size(md) : 0;
}

int sts_hash(enum sts_hash_alg alg, const uint8_t *data, size_t len, uint8_t *out)
{
    const mbedtls_md_info_t *md = md_info(alg);
    if (!md) return STS_ERR_UNSUPPORTED;
    return mbedtls_md(md, data, len, out) == 0 ? 0 : STS_ERR_CRYPTO;
}

int sts_hash2(enum sts_hash_alg alg, const uint8_t *a, size_t alen,
              const uint8_t *b, size_t blen, uint8_t *out)
{
    const mbedtls_md_info_t *md = md_info(alg);
    mbedtls_md_context_t ctx;
    int ok;

    if (!md) return STS_ERR_UNSUPPORTED;
    mbedtls_md_init(&ctx);
    ok = mbedtls_md_setup(&ctx, md, 0) == 0
         && mbedtls_md_starts(&ctx) == 0
         && mbedtls_md_update(&ctx, a, alen) == 0
         && mbedtls_md_update(&ctx, b, blen) == 0
         && mbedtls_md_finish(&ctx, out) == 0;
    mbedtls_md_free(&ctx); /* zeroizes the hash state */
    return ok ? 0 : STS_ERR_CRYPTO;
}

int sts_hmac(enum sts_hash_alg alg, const uint8_t *key, size_t keylen,
             const uint8_t *data, size_t len, uint8_t *out)
{
    const mbedtls_md_info_t *md = md_info(alg);
    if (!md) return STS_ERR_UNSUPPORTED;
    return mbedtls_md_hmac(md, key, keylen, data, len, out) == 0 ? 0 : STS_ERR_CRYPTO;
}

int sts_hkdf(enum sts_hash_alg alg, const uint8_t *salt, size_t saltlen,
             const uint8_t *ikm, size_t ikmlen, const uint8_t *info, size_t infolen,
             uint8_t *out, size_t outlen)
{
    const mbedtls_md_info_t *md = md_info(alg);
    static const uint8_t empty[1];

    if (!md) return STS_ERR_UNSUPPORTED;
    if (outlen > 255 * (size_t)mbedtls_md_get_size(md)) return STS_ERR_TOO_BIG;
    /* mbedtls refuses NULL pointers even with a zero length. */
    if (!salt) salt = empty;
    if (!ikm) ikm = empty;
    if (!info) info = empty;
    return mbedtls_hkdf(md, salt, saltlen, ikm, ikmlen, info, infolen, out, outlen) == 0
           ? 0 : STS_ERR_CRYPTO;
}
