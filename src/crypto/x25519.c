#include "crypto/x25519.h"
#include "crypto/random.h"
#include "util/error.h"

#include <mbedtls/ecp.h>
#include <mbedtls/platform_util.h>

#include <string.h>

/* RFC 7748 §5 decodeScalar25519: clear the 3 low bits (a multiple of the
 * cofactor), clear bit 255 and set bit 254 (constant-time ladder length). */
static void clamp(uint8_t k[STS_X25519_LEN])
{
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
}

/* out = X25519(priv, u). mbedtls reads and writes Montgomery x-coordinates
 * little-endian and masks the top bit of u itself (RFC 7748 §5). */
static int scalar_mult(uint8_t out[STS_X25519_LEN], const uint8_t priv[STS_X25519_LEN],
                       const uint8_t u[STS_X25519_LEN])
{
    mbedtls_ecp_group grp;
    mbedtls_ecp_point P, R;
    mbedtls_mpi d;
    uint8_t k[STS_X25519_LEN];
    size_t olen;
    int ret, err = STS_ERR_CRYPTO;

    memcpy(k, priv, sizeof k);
    clamp(k);
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&P);
    mbedtls_ecp_point_init(&R);
    mbedtls_mpi_init(&d);

    if (mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_CURVE25519) != 0
        || mbedtls_mpi_read_binary_le(&d, k, sizeof k) != 0
        || mbedtls_ecp_point_read_binary(&grp, &P, u, STS_X25519_LEN) != 0)
        goto done;
    /* mbedtls refuses the known low-order points before multiplying. */
    ret = mbedtls_ecp_mul(&grp, &R, &d, &P, sts_random_rng, NULL);
    if (ret == MBEDTLS_ERR_ECP_INVALID_KEY) { err = STS_ERR_KEY; goto done; }
    if (ret != 0
        || mbedtls_ecp_point_write_binary(&grp, &R, MBEDTLS_ECP_PF_UNCOMPRESSED,
                                          &olen, out, STS_X25519_LEN) != 0
        || olen != STS_X25519_LEN)
        goto done;
    err = 0;
done:
    mbedtls_platform_zeroize(k, sizeof k);
    mbedtls_mpi_free(&d);
    mbedtls_ecp_point_free(&R);
    mbedtls_ecp_point_free(&P);
    mbedtls_ecp_group_free(&grp);
    if (err != 0) mbedtls_platform_zeroize(out, STS_X25519_LEN);
    return err;
}

int sts_x25519_public(uint8_t pub[STS_X25519_LEN], const uint8_t priv[STS_X25519_LEN])
{
    static const uint8_t base[STS_X25519_LEN] = { 9 };
    return scalar_mult(pub, priv, base);
}

int sts_x25519_keypair(uint8_t priv[STS_X25519_LEN], uint8_t pub[STS_X25519_LEN])
{
    int err = sts_random(priv, STS_X25519_LEN);
    if (err == 0) {
        clamp(priv);
        err = sts_x25519_public(pub, priv);
    }
    if (err != 0) mbedtls_platform_zeroize(priv, STS_X25519_LEN);
    return err;
}

int sts_x25519_shared(uint8_t out[STS_X25519_LEN], const uint8_t priv[STS_X25519_LEN],
                      const uint8_t peer[STS_X25519_LEN])
{
    uint8_t acc = 0;
    int err = scalar_mult(out, priv, peer);

    if (err != 0) return err;
    /* Belt and braces for any low-order point mbedtls does not list. */
    for (int i = 0; i < STS_X25519_LEN; i++) acc |= out[i];
    if (acc == 0) return STS_ERR_KEY;
    return 0;
}
