#include "crypto/ecdsa.h"
#include "crypto/random.h"
#include "util/error.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/platform_util.h>

/* One group, scalar and point per call, as in x25519.c: loading P-256 is
 * cheap next to a scalar multiplication, and no state outlives a call. */
struct p256 {
    mbedtls_ecp_group grp;
    mbedtls_mpi d, r, s;
    mbedtls_ecp_point Q;
};

static int p256_init(struct p256 *c)
{
    mbedtls_ecp_group_init(&c->grp);
    mbedtls_mpi_init(&c->d);
    mbedtls_mpi_init(&c->r);
    mbedtls_mpi_init(&c->s);
    mbedtls_ecp_point_init(&c->Q);
    return mbedtls_ecp_group_load(&c->grp, MBEDTLS_ECP_DP_SECP256R1) == 0 ? 0 : STS_ERR_CRYPTO;
}

/* mbedtls_mpi_free zeroizes the limbs, so the private scalar goes with it. */
static void p256_free(struct p256 *c)
{
    mbedtls_ecp_point_free(&c->Q);
    mbedtls_mpi_free(&c->s);
    mbedtls_mpi_free(&c->r);
    mbedtls_mpi_free(&c->d);
    mbedtls_ecp_group_free(&c->grp);
}

/* A generator failure reaches us as the code sts_random_rng returns. */
static int mbedtls_error(int ret)
{
    return ret == MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED ? STS_ERR_RNG : STS_ERR_CRYPTO;
}

/* Q from its uncompressed encoding, refused unless it is a point of the
 * group other than infinity (mbedtls reads only 0x04 || X || Y at 65 bytes). */
static int read_public(struct p256 *c, const uint8_t pub[STS_P256_PUB_LEN])
{
    if (pub[0] != 0x04
        || mbedtls_ecp_point_read_binary(&c->grp, &c->Q, pub, STS_P256_PUB_LEN) != 0
        || mbedtls_ecp_check_pubkey(&c->grp, &c->Q) != 0)
        return STS_ERR_KEY;
    return 0;
}

static int write_public(struct p256 *c, uint8_t pub[STS_P256_PUB_LEN])
{
    size_t olen;
    if (mbedtls_ecp_point_write_binary(&c->grp, &c->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, pub,
                                       STS_P256_PUB_LEN) != 0
        || olen != STS_P256_PUB_LEN)
        return STS_ERR_CRYPTO;
    return 0;
}

int sts_p256_keygen(uint8_t priv[STS_P256_PRIV_LEN], uint8_t pub[STS_P256_PUB_LEN])
{
    struct p256 c;
    int ret, err = p256_init(&c);

    if (err == 0) {
        ret = mbedtls_ecp_gen_keypair(&c.grp, &c.d, &c.Q, sts_random_rng, NULL);
        if (ret != 0)
            err = mbedtls_error(ret);
        else if (mbedtls_mpi_write_binary(&c.d, priv, STS_P256_PRIV_LEN) != 0)
            err = STS_ERR_CRYPTO;
        else
            err = write_public(&c, pub);
    }
    p256_free(&c);
    if (err != 0)
        mbedtls_platform_zeroize(priv, STS_P256_PRIV_LEN);
    return err;
}

int sts_p256_sign(const uint8_t priv[STS_P256_PRIV_LEN], const uint8_t digest[STS_SHA256_LEN],
                  uint8_t sig[STS_P256_SIG_LEN])
{
    struct p256 c;
    int ret, err = p256_init(&c);

    if (err == 0) {
        if (mbedtls_mpi_read_binary(&c.d, priv, STS_P256_PRIV_LEN) != 0
            || mbedtls_ecp_check_privkey(&c.grp, &c.d) != 0) {
            err = STS_ERR_KEY;
        } else {
            /* RFC 6979 picks the nonce; the generator only blinds the
             * scalar multiplication, so signatures stay deterministic. */
            ret = mbedtls_ecdsa_sign_det_ext(&c.grp, &c.r, &c.s, &c.d, digest, STS_SHA256_LEN,
                                             MBEDTLS_MD_SHA256, sts_random_rng, NULL);
            if (ret != 0)
                err = mbedtls_error(ret);
            else if (mbedtls_mpi_write_binary(&c.r, sig, STS_P256_SIG_LEN / 2) != 0
                     || mbedtls_mpi_write_binary(&c.s, sig + STS_P256_SIG_LEN / 2,
                                                 STS_P256_SIG_LEN / 2) != 0)
                err = STS_ERR_CRYPTO;
        }
    }
    p256_free(&c);
    if (err != 0)
        mbedtls_platform_zeroize(sig, STS_P256_SIG_LEN);
    return err;
}

int sts_p256_verify(const uint8_t pub[STS_P256_PUB_LEN], const uint8_t digest[STS_SHA256_LEN],
                    const uint8_t sig[STS_P256_SIG_LEN])
{
    struct p256 c;
    int ret, err = p256_init(&c);

    if (err == 0)
        err = read_public(&c, pub);
    if (err == 0) {
        if (mbedtls_mpi_read_binary(&c.r, sig, STS_P256_SIG_LEN / 2) != 0
            || mbedtls_mpi_read_binary(&c.s, sig + STS_P256_SIG_LEN / 2, STS_P256_SIG_LEN / 2) != 0) {
            err = STS_ERR_CRYPTO;
        } else {
            /* r or s of 0 or >= n is refused as a failed verification too. */
            ret = mbedtls_ecdsa_verify(&c.grp, digest, STS_SHA256_LEN, &c.Q, &c.r, &c.s);
            if (ret == MBEDTLS_ERR_ECP_VERIFY_FAILED)
                err = STS_ERR_AUTH;
            else if (ret != 0)
                err = STS_ERR_CRYPTO;
        }
    }
    p256_free(&c);
    return err;
}

int sts_p256_check_public(const uint8_t pub[STS_P256_PUB_LEN])
{
    struct p256 c;
    int err = p256_init(&c);

    if (err == 0)
        err = read_public(&c, pub);
    p256_free(&c);
    return err;
}
