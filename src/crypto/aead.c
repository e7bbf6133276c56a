#include "crypto/aead.h"
#include "crypto/aead_backend.h"
#include "util/error.h"

/* The backend is chosen at build time (CMake option STS_AEAD_BACKEND):
 * libcrypto's EVP where it is found, mbedtls otherwise. This file holds what
 * they share: the layout ciphertext || tag and the truncation check. */
#ifdef STS_AEAD_OPENSSL
#define backend sts_aead_openssl
const char sts_aead_backend_name[] = "openssl";
#else
#define backend sts_aead_mbedtls
const char sts_aead_backend_name[] = "mbedtls";
#endif

/* The tag sits after the ptlen bytes of out (and the len bytes of ct), so
 * in-place calls never overwrite input not yet read. */
int sts_aead_seal(enum sts_aead_alg alg, const uint8_t key[STS_KEY_LEN],
                  const uint8_t nonce[STS_AEAD_NONCE_LEN], const uint8_t *ad, size_t adlen,
                  const uint8_t *pt, size_t ptlen, uint8_t *out)
{
    return backend(alg, 1, key, nonce, ad, adlen, pt, ptlen, out, NULL, out + ptlen);
}

int sts_aead_open(enum sts_aead_alg alg, const uint8_t key[STS_KEY_LEN],
                  const uint8_t nonce[STS_AEAD_NONCE_LEN], const uint8_t *ad, size_t adlen,
                  const uint8_t *ct, size_t ctlen, uint8_t *out)
{
    size_t len;

    if (ctlen < STS_AEAD_TAG_LEN) return STS_ERR_TRUNCATED;
    len = ctlen - STS_AEAD_TAG_LEN;
    return backend(alg, 0, key, nonce, ad, adlen, ct, len, out, ct + len, NULL);
}
