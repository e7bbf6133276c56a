/* X25519: RFC 7748 §5.2 and §6.1 vectors, low-order peers, fresh key pairs. */
#include "crypto/tests/hexvec.h"
#include "crypto/x25519.h"
#include "util/error.h"
#include "util/unit.h"

static void check_mult(const char *scalar, const char *u, const char *want_hex)
{
    uint8_t k[32], pt[32], want[32], got[32];

    unhex(k, 32, scalar);
    unhex(pt, 32, u);
    unhex(want, 32, want_hex);
    CHECK(sts_x25519_shared(got, k, pt) == 0);
    CHECK_MEM(got, want, 32);
}

static void test_rfc7748_5_2(void)
{
    check_mult("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
               "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
               "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
    /* The u of this one has bit 255 set, which must be ignored. */
    check_mult("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
               "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
               "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957");
}

/* k = u = 9, then (k, u) = (X25519(k, u), k), 1000 times. */
static void test_rfc7748_iterated(void)
{
    uint8_t k[32] = { 9 }, u[32] = { 9 }, r[32], want[32];
    int ok = 1;

    for (int i = 1; i <= 1000 && ok; i++) {
        ok = sts_x25519_shared(r, k, u) == 0;
        memcpy(u, k, 32);
        memcpy(k, r, 32);
        if (i == 1) {
            unhex(want, 32, "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
            CHECK_MEM(k, want, 32);
        }
    }
    CHECK(ok);
    unhex(want, 32, "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
    CHECK_MEM(k, want, 32);
}

static void test_rfc7748_6_1(void)
{
    uint8_t a[32], b[32], apub[32], bpub[32], want[32], k1[32], k2[32];

    unhex(a, 32, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    unhex(b, 32, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    CHECK(sts_x25519_public(apub, a) == 0);
    CHECK_MEM(apub, want, unhex(want, 32, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"));
    CHECK(sts_x25519_public(bpub, b) == 0);
    CHECK_MEM(bpub, want, unhex(want, 32, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"));
    unhex(want, 32, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    CHECK(sts_x25519_shared(k1, a, bpub) == 0);
    CHECK(sts_x25519_shared(k2, b, apub) == 0);
    CHECK_MEM(k1, want, 32);
    CHECK_MEM(k2, want, 32);
}

/* Points of order 1, 2, 4 and 8, and 0 and 1 encoded non-canonically as p and
 * p + 1 (RFC 7748 reads u modulo p). */
static void test_low_order(void)
{
    static const char *const points[] = {
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    };
    uint8_t priv[32], pub[32], pt[32], out[32];

    CHECK(sts_x25519_keypair(priv, pub) == 0);
    for (size_t i = 0; i < sizeof points / sizeof *points; i++) {
        unhex(pt, 32, points[i]);
        memset(out, 0xa5, sizeof out);
        CHECK(sts_x25519_shared(out, priv, pt) == STS_ERR_KEY);
    }
}

static void test_keypair(void)
{
    uint8_t a[32], apub[32], b[32], bpub[32], pub[32], k1[32], k2[32];

    CHECK(sts_x25519_keypair(a, apub) == 0);
    CHECK(sts_x25519_keypair(b, bpub) == 0);
    CHECK(memcmp(a, b, 32) != 0);
    CHECK(sts_x25519_public(pub, a) == 0);
    CHECK_MEM(pub, apub, 32);
    CHECK(sts_x25519_shared(k1, a, bpub) == 0);
    CHECK(sts_x25519_shared(k2, b, apub) == 0);
    CHECK_MEM(k1, k2, 32);
}

int main(void)
{
    test_rfc7748_5_2();
    test_rfc7748_iterated();
    test_rfc7748_6_1();
    test_low_order();
    test_keypair();
    return unit_done();
}
