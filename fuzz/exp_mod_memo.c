/* Modular exponentiation remembered, for the fuzz targets, as x25519_memo.c
 * remembers X25519: a 2048-bit mbedtls_mpi_exp_mod costs tens of
 * milliseconds under the sanitizers, and the lab protocol makes two for
 * every key exchange. Linked into every target with
 * -Wl,--wrap=mbedtls_mpi_exp_mod (only calls from the project's code are
 * redirected): arguments seen before give the result the real function gave
 * then; prec_RR, a cache the caller may pass, is left alone then. */
#include <mbedtls/bignum.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int __real_mbedtls_mpi_exp_mod(mbedtls_mpi *X, const mbedtls_mpi *A, const mbedtls_mpi *E,
                               const mbedtls_mpi *N, mbedtls_mpi *prec_RR);
int __wrap_mbedtls_mpi_exp_mod(mbedtls_mpi *X, const mbedtls_mpi *A, const mbedtls_mpi *E,
                               const mbedtls_mpi *N, mbedtls_mpi *prec_RR);

#define SLOTS 64
#define MAX_BYTES (MBEDTLS_MPI_MAX_BITS / 8)

struct slot {
    size_t len;                     /* of key: A, E and N, each MAX_BYTES */
    uint8_t *key;
    mbedtls_mpi X;
    int rc;
};

static struct slot slots[SLOTS];

/* A, E, N as one byte string (each big-endian, MAX_BYTES), or 0 when one
 * does not fit or is negative (those go to the real function). */
static size_t key_of(uint8_t *key, const mbedtls_mpi *A, const mbedtls_mpi *E, const mbedtls_mpi *N)
{
    const mbedtls_mpi *parts[] = { A, E, N };
    for (int i = 0; i < 3; i++) {
        if (parts[i]->s < 0 || mbedtls_mpi_write_binary(parts[i], key + i * MAX_BYTES, MAX_BYTES) != 0) return 0;
    }
    return 3 * MAX_BYTES;
}

int __wrap_mbedtls_mpi_exp_mod(mbedtls_mpi *X, const mbedtls_mpi *A, const mbedtls_mpi *E,
                               const mbedtls_mpi *N, mbedtls_mpi *prec_RR)
{
    static uint8_t key[3 * MAX_BYTES];
    size_t len = key_of(key, A, E, N);
    if (len == 0) return __real_mbedtls_mpi_exp_mod(X, A, E, N, prec_RR);
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ key[i]) * 16777619u;
    struct slot *s = &slots[h % SLOTS];
    if (!s->key || s->len != len || memcmp(s->key, key, len) != 0) {
        mbedtls_mpi result;
        mbedtls_mpi_init(&result);
        int rc = __real_mbedtls_mpi_exp_mod(&result, A, E, N, prec_RR);
        if (!s->key && !(s->key = malloc(sizeof key))) abort();
        mbedtls_mpi_free(&s->X);
        s->X = result; /* the slot takes it over */
        memcpy(s->key, key, len);
        s->len = len;
        s->rc = rc;
    }
    if (s->rc != 0) return s->rc;
    return mbedtls_mpi_copy(X, &s->X);
}
