/* The process's one random generator: mbedtls_ctr_drbg, seeded once from the
 * platform entropy source on first use. */
#ifndef STS_CRYPTO_RANDOM_H
#define STS_CRYPTO_RANDOM_H

#include <stddef.h>
#include <stdint.h>

/* Fills buf with len random bytes. Returns 0 or STS_ERR_RNG. */
int sts_random(uint8_t *buf, size_t len);

/* The same generator in mbedtls's f_rng shape, for mbedtls calls that take
 * (f_rng, p_rng); p_rng is ignored. */
int sts_random_rng(void *p_rng, unsigned char *buf, size_t len);

#ifdef STS_FUZZ
/* Fuzz builds only (-DSTS_FUZZ=ON; absent from every other build): restarts
 * the generator on a fixed stream chosen by seed, so that a fuzz target makes
 * the same keys and nonces each time it runs an input and a crash found
 * replays. Targets call it at the start of each input. Returns 0 or
 * STS_ERR_RNG. */
int sts_random_fuzz_reset(uint64_t seed);
#endif

#endif
