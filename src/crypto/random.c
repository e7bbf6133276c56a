#include "crypto/random.h"
#include "util/error.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>

#include <string.h>

static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;
static int seeded;

static int seed_once(void)
{
    static const char personalization[] = "sts-lua drbg";

    if (seeded) return 0;
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
                              (const unsigned char *)personalization,
                              sizeof personalization - 1) != 0) {
        mbedtls_ctr_drbg_free(&drbg);
        mbedtls_entropy_free(&entropy);
        return STS_ERR_RNG;
    }
    /* Reseed from entropy now and then, so a long-lived gateway does not
     * run one seed forever. */
    mbedtls_ctr_drbg_set_prediction_resistance(&drbg, MBEDTLS_CTR_DRBG_PR_OFF);
    mbedtls_ctr_drbg_set_reseed_interval(&drbg, 10000);
    seeded = 1;
    return 0;
}

int sts_random(uint8_t *buf, size_t len)
{
    if (seed_once() != 0) return STS_ERR_RNG;
    while (len > 0) {
        size_t chunk = len < MBEDTLS_CTR_DRBG_MAX_REQUEST ? len : MBEDTLS_CTR_DRBG_MAX_REQUEST;
        if (mbedtls_ctr_drbg_random(&drbg, buf, chunk) != 0) return STS_ERR_RNG;
        buf += chunk;
        len -= chunk;
    }
    return 0;
}

int sts_random_rng(void *p_rng, unsigned char *buf, size_t len)
{
    (void)p_rng;
    return sts_random(buf, len) == 0 ? 0 : MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
}

#ifdef STS_FUZZ
static uint64_t fuzz_seed;

/* The "entropy" of a fuzz build's generator: the seed, then zeros. */
static int fuzz_entropy(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    memset(out, 0, len);
    memcpy(out, &fuzz_seed, len < sizeof fuzz_seed ? len : sizeof fuzz_seed);
    return 0;
}

int sts_random_fuzz_reset(uint64_t seed)
{
    static const char personalization[] = "sts-lua fuzz drbg";

    if (seeded) mbedtls_ctr_drbg_free(&drbg);
    seeded = 0;
    fuzz_seed = seed;
    mbedtls_ctr_drbg_init(&drbg);
    if (mbedtls_ctr_drbg_seed(&drbg, fuzz_entropy, NULL, (const unsigned char *)personalization,
                              sizeof personalization - 1) != 0) {
        mbedtls_ctr_drbg_free(&drbg);
        return STS_ERR_RNG;
    }
    seeded = 1;
    return 0;
}
#endif
