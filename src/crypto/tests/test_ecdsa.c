/* ECDSA P-256: RFC 6979 §A.2.5 (SHA-256) vectors byte for byte, fresh key
 * pairs, every tampering path with its error, invalid points and scalars. */
#include "crypto/ecdsa.h"
#include "crypto/hash.h"
#include "crypto/tests/hexvec.h"
#include "util/error.h"
#include "util/unit.h"

/* RFC 6979 §A.2.5: the key, then r || s for SHA-256 of "sample" and "test". */
static const char rfc_priv[] = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
static const char rfc_pub[] = "04"
                              "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
                              "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
static const struct {
    const char *msg, *sig;
} rfc_sigs[] = {
    { "sample", "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
                "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8" },
    { "test", "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367"
              "019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083" },
};
/* The group order n and the field prime p. */
static const char order_n[] = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
static const char prime_p[] = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";

static void digest_of(const char *msg, uint8_t digest[STS_SHA256_LEN])
{
    CHECK(sts_hash(STS_SHA256, (const uint8_t *)msg, strlen(msg), digest) == 0);
}

static void test_rfc6979(void)
{
    uint8_t priv[32], pub[65], want[64], sig[64], again[64], digest[32];

    unhex(priv, sizeof priv, rfc_priv);
    unhex(pub, sizeof pub, rfc_pub);
    CHECK(sts_p256_check_public(pub) == 0);
    for (size_t i = 0; i < sizeof rfc_sigs / sizeof *rfc_sigs; i++) {
        digest_of(rfc_sigs[i].msg, digest);
        unhex(want, sizeof want, rfc_sigs[i].sig);
        CHECK(sts_p256_sign(priv, digest, sig) == 0);
        CHECK_MEM(sig, want, 64);
        CHECK(sts_p256_sign(priv, digest, again) == 0);
        CHECK_MEM(again, want, 64);
        CHECK(sts_p256_verify(pub, digest, want) == 0);
    }
}

/* Flipping one bit of each byte of sig, digest or pub: a signature or
 * digest change fails verification, a point change leaves the curve. */
static void test_tamper(const uint8_t pub[65], const uint8_t digest[32], const uint8_t sig[64])
{
    uint8_t p[65], d[32], s[64];
    int sig_caught = 1, digest_caught = 1, pub_caught = 1;

    memcpy(p, pub, 65);
    memcpy(d, digest, 32);
    memcpy(s, sig, 64);
    for (size_t i = 0; i < 64; i++) {
        s[i] ^= (uint8_t)(1u << (i % 8));
        sig_caught &= sts_p256_verify(p, d, s) == STS_ERR_AUTH;
        s[i] ^= (uint8_t)(1u << (i % 8));
    }
    for (size_t i = 0; i < 32; i++) {
        d[i] ^= (uint8_t)(0x80u >> (i % 8));
        digest_caught &= sts_p256_verify(p, d, s) == STS_ERR_AUTH;
        d[i] ^= (uint8_t)(0x80u >> (i % 8));
    }
    for (size_t i = 0; i < 65; i++) {
        p[i] ^= (uint8_t)(1u << (i % 8));
        pub_caught &= sts_p256_verify(p, d, s) == STS_ERR_KEY;
        p[i] ^= (uint8_t)(1u << (i % 8));
    }
    CHECK(sig_caught);
    CHECK(digest_caught);
    CHECK(pub_caught);
    CHECK(sts_p256_verify(p, d, s) == 0);
}

static void test_round_trip(void)
{
    uint8_t priv[32], pub[65], priv2[32], pub2[65], digest[32], sig[64];

    CHECK(sts_p256_keygen(priv, pub) == 0);
    CHECK(sts_p256_keygen(priv2, pub2) == 0);
    CHECK(memcmp(priv, priv2, 32) != 0);
    CHECK(pub[0] == 0x04);
    CHECK(sts_p256_check_public(pub) == 0);
    CHECK(sts_p256_check_public(pub2) == 0);
    digest_of("group frame", digest);
    CHECK(sts_p256_sign(priv, digest, sig) == 0);
    CHECK(sts_p256_verify(pub, digest, sig) == 0);
    CHECK(sts_p256_verify(pub2, digest, sig) == STS_ERR_AUTH);
    test_tamper(pub, digest, sig);
}

/* Points that are not on the curve, or not in the uncompressed encoding. */
static void test_bad_points(void)
{
    uint8_t pub[65], digest[32], sig[64];

    unhex(pub, sizeof pub, rfc_pub);
    unhex(sig, sizeof sig, rfc_sigs[0].sig);
    digest_of("sample", digest);

    pub[64] ^= 1; /* y + 1: off the curve */
    CHECK(sts_p256_check_public(pub) == STS_ERR_KEY);
    CHECK(sts_p256_verify(pub, digest, sig) == STS_ERR_KEY);
    pub[64] ^= 1;

    pub[0] = 0x02; /* compressed prefix with 64 bytes after it */
    CHECK(sts_p256_check_public(pub) == STS_ERR_KEY);
    pub[0] = 0x00;
    CHECK(sts_p256_check_public(pub) == STS_ERR_KEY);
    pub[0] = 0x04;
    CHECK(sts_p256_check_public(pub) == 0);

    unhex(pub + 1, 32, prime_p); /* x = p: out of the field */
    CHECK(sts_p256_check_public(pub) == STS_ERR_KEY);
    memset(pub + 1, 0, 64); /* (0, 0) */
    CHECK(sts_p256_check_public(pub) == STS_ERR_KEY);
}

/* r or s of 0 or n are refused by the verifier, not treated as values. */
static void test_bad_signatures(void)
{
    uint8_t pub[65], digest[32], sig[64];

    unhex(pub, sizeof pub, rfc_pub);
    digest_of("sample", digest);
    unhex(sig, sizeof sig, rfc_sigs[0].sig);
    memset(sig, 0, 32);
    CHECK(sts_p256_verify(pub, digest, sig) == STS_ERR_AUTH);
    unhex(sig, sizeof sig, rfc_sigs[0].sig);
    memset(sig + 32, 0, 32);
    CHECK(sts_p256_verify(pub, digest, sig) == STS_ERR_AUTH);
    unhex(sig, 32, order_n);
    CHECK(sts_p256_verify(pub, digest, sig) == STS_ERR_AUTH);
}

/* A private key of 0 or n is no key; the output is left zeroed. */
static void test_bad_private(void)
{
    static const uint8_t zero[64];
    uint8_t priv[32], digest[32], sig[64];

    digest_of("sample", digest);
    memset(priv, 0, sizeof priv);
    memset(sig, 0xaa, sizeof sig);
    CHECK(sts_p256_sign(priv, digest, sig) == STS_ERR_KEY);
    CHECK_MEM(sig, zero, 64);
    unhex(priv, sizeof priv, order_n);
    memset(sig, 0xaa, sizeof sig);
    CHECK(sts_p256_sign(priv, digest, sig) == STS_ERR_KEY);
    CHECK_MEM(sig, zero, 64);
}

int main(void)
{
    test_rfc6979();
    test_round_trip();
    test_bad_points();
    test_bad_signatures();
    test_bad_private();
    return unit_done();
}
