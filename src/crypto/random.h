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

#endif
