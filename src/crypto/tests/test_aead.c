/* AEADs: published vectors (RFC 8439 §2.8.2 and BoringSSL's Poly1305 padding
 * cases for ChaCha20-Poly1305; McGrew-Viega GCM test cases 13-16 and a NIST
 * CAVS GCMVS case for AES-256-GCM), tampering (out wiped), truncation,
 * in-place use; with both backends linked, each against the other on random
 * inputs. Prints the per-call cost on 64 bytes. */
#include "crypto/aead.h"
#include "crypto/aead_backend.h"
#include "crypto/random.h"
#include "crypto/tests/hexvec.h"
#include "util/error.h"
#include "util/unit.h"

#include <time.h>

struct aead_vector {
    enum sts_aead_alg alg;
    const char *key, *nonce, *ad, *pt, *ct; /* ct includes the tag */
};

static const struct aead_vector vectors[] = {
    { STS_AEAD_CHACHAPOLY,
      "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
      "070000004041424344454647",
      "50515253c0c1c2c3c4c5c6c7",
      /* "Ladies and Gentlemen of the class of '99: If I could offer you only
       * one tip for the future, sunscreen would be it." */
      "4c616469657320616e642047656e746c656d656e206f662074686520636c617373206f66"
      "202739393a204966204920636f756c64206f6666657220796f75206f6e6c79206f6e6520"
      "74697020666f7220746865206675747572652c2073756e73637265656e20776f756c6420"
      "62652069742e",
      "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e"
      "8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c"
      "9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d265"
      "86cec64b6116"
      "1ae10b594f09e26a7e902ecbd0600691" },
    { STS_AEAD_AESGCM,
      "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
      "cafebabefacedbaddecaf888",
      "feedfacedeadbeeffeedfacedeadbeefabaddad2",
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95"
      "956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48"
      "590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
      "76fc6ece0f4e1768cddf8853bb2d551b" },
    /* BoringSSL chacha20_poly1305_tests.txt: "Test padding IN with 15 zeros",
     * "Test padding IN with 1 zero" (AD "123456789abcdef0"). */
    { STS_AEAD_CHACHAPOLY,
      "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
      "070000004041424344454647", "31323334353637383961626364656630",
      "31", "ae" "3ed2f824f901a8994052f852127c196a" },
    { STS_AEAD_CHACHAPOLY,
      "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
      "070000004041424344454647", "31323334353637383961626364656630",
      "313233343536373839616263646566",
      "ae49da6934cb77822c83ed9852e46c" "05b2937f8bbc64fed21f0fb74cd7147c" },
    /* GCM test cases 13 (a bare tag), 14 (one zero block) and 15 (no AD). */
    { STS_AEAD_AESGCM,
      "0000000000000000000000000000000000000000000000000000000000000000",
      "000000000000000000000000", "", "", "530f8afbc74536b9a963b4f1c4cb738b" },
    { STS_AEAD_AESGCM,
      "0000000000000000000000000000000000000000000000000000000000000000",
      "000000000000000000000000", "", "00000000000000000000000000000000",
      "cea7403d4d606b6e074ec5d3baf39d18" "d0d1c8a799996bf0265b98b5d48ab919" },
    { STS_AEAD_AESGCM,
      "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
      "cafebabefacedbaddecaf888", "",
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95"
      "956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48"
      "590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
      "b094dac5d93471bdec1a502270e3cc6c" },
    /* NIST CAVS gcmEncryptExtIV256.rsp, [PTlen = 408] [AADlen = 160]
     * [Taglen = 128], Count 0: 51 bytes, no whole last block. */
    { STS_AEAD_AESGCM,
      "24501ad384e473963d476edcfe08205237acfd49b5b8f33857f8114e863fec7f",
      "9ff18563b978ec281b3f2794", "adb5ec720ccf9898500028bf34afccbcaca126ef",
      "27f348f9cdc0c5bd5e66b1ccb63ad920ff2219d14e8d631b3872265cf117ee86757accb1"
      "58bd9abb3868fdc0d0b074b5f01b2c",
      "eb7cb754c824e8d96f7c6d9b76c7d26fb874ffbf1d65c6f64a698d839b0b06145dae8205"
      "7ad55994cf59ad7f67c0fa5e85fab8" "bc95c532fecc594c36d1550286a7a3f0" },
};

struct decoded {
    uint8_t key[32], nonce[12], ad[64], pt[128], ct[144];
    size_t adlen, ptlen, ctlen;
};

static void decode(struct decoded *d, const struct aead_vector *v)
{
    memset(d, 0, sizeof *d);
    unhex(d->key, sizeof d->key, v->key);
    unhex(d->nonce, sizeof d->nonce, v->nonce);
    d->adlen = unhex(d->ad, sizeof d->ad, v->ad);
    d->ptlen = unhex(d->pt, sizeof d->pt, v->pt);
    d->ctlen = unhex(d->ct, sizeof d->ct, v->ct);
}

static void test_vector(const struct aead_vector *v)
{
    struct decoded d;
    uint8_t buf[144];

    decode(&d, v);
    CHECK(d.ctlen == d.ptlen + STS_AEAD_TAG_LEN);
    CHECK(sts_aead_seal(v->alg, d.key, d.nonce, d.ad, d.adlen, d.pt, d.ptlen, buf) == 0);
    CHECK_MEM(buf, d.ct, d.ctlen);
    CHECK(sts_aead_open(v->alg, d.key, d.nonce, d.ad, d.adlen, d.ct, d.ctlen, buf) == 0);
    CHECK_MEM(buf, d.pt, d.ptlen);

    /* In place, both ways. */
    memcpy(buf, d.pt, d.ptlen);
    CHECK(sts_aead_seal(v->alg, d.key, d.nonce, d.ad, d.adlen, buf, d.ptlen, buf) == 0);
    CHECK_MEM(buf, d.ct, d.ctlen);
    CHECK(sts_aead_open(v->alg, d.key, d.nonce, d.ad, d.adlen, buf, d.ctlen, buf) == 0);
    CHECK_MEM(buf, d.pt, d.ptlen);
}

static int zeroed(const uint8_t *p, size_t len)
{
    uint8_t any = 0;
    for (size_t i = 0; i < len; i++) any |= p[i];
    return any == 0;
}

/* A rejected open with out prefilled: STS_ERR_AUTH and out wiped. */
static int rejected(enum sts_aead_alg alg, const struct decoded *d, const uint8_t *ad,
                    size_t adlen, const uint8_t *nonce, const uint8_t *ct)
{
    uint8_t buf[144];

    memset(buf, 0xa5, sizeof buf);
    return sts_aead_open(alg, d->key, nonce, ad, adlen, ct, d->ctlen, buf) == STS_ERR_AUTH
           && zeroed(buf, d->ptlen);
}

/* Every single-bit change of ciphertext, tag, associated data (or AD where
 * there was none) and nonce is caught, and the output wiped. */
static void test_tamper(const struct aead_vector *v)
{
    struct decoded d;
    uint8_t buf[144];
    int caught = 1;

    decode(&d, v);
    for (size_t bit = 0; bit < d.ctlen * 8; bit++) {
        d.ct[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        caught &= rejected(v->alg, &d, d.ad, d.adlen, d.nonce, d.ct);
        d.ct[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    CHECK(caught);
    d.ad[0] ^= 1;
    CHECK(rejected(v->alg, &d, d.ad, d.adlen ? d.adlen : 1, d.nonce, d.ct));
    d.ad[0] ^= 1;
    d.nonce[11] ^= 1;
    CHECK(rejected(v->alg, &d, d.ad, d.adlen, d.nonce, d.ct));
    d.nonce[11] ^= 1;
    CHECK(sts_aead_open(v->alg, d.key, d.nonce, d.ad, d.adlen, d.ct, d.ctlen - 1, buf)
          == (d.ctlen > STS_AEAD_TAG_LEN ? STS_ERR_AUTH : STS_ERR_TRUNCATED));
    CHECK(sts_aead_open(v->alg, d.key, d.nonce, d.ad, d.adlen, d.ct, 15, buf) == STS_ERR_TRUNCATED);
}

/* An empty plaintext with no associated data is a bare tag that still verifies. */
static void test_empty(enum sts_aead_alg alg)
{
    uint8_t key[32] = { 1 }, nonce[12] = { 2 }, tag[16], out[1];

    CHECK(sts_aead_seal(alg, key, nonce, NULL, 0, NULL, 0, tag) == 0);
    CHECK(sts_aead_open(alg, key, nonce, NULL, 0, tag, 16, out) == 0);
    key[0] ^= 1;
    CHECK(sts_aead_open(alg, key, nonce, NULL, 0, tag, 16, out) == STS_ERR_AUTH);
}

static void test_unsupported(void)
{
    uint8_t key[32] = { 0 }, nonce[12] = { 0 }, buf[16 + 16] = { 0 };

    CHECK(sts_aead_seal(99, key, nonce, NULL, 0, buf, 16, buf) == STS_ERR_UNSUPPORTED);
    CHECK(sts_aead_open(99, key, nonce, NULL, 0, buf, 32, buf) == STS_ERR_UNSUPPORTED);
}

#ifdef STS_AEAD_CROSSCHECK
enum { CROSS_MAX = 4096 };

struct random_case {
    uint8_t key[32], nonce[12], ad[64], pt[CROSS_MAX];
    size_t adlen, len;
};

static int draw(struct random_case *c, size_t len)
{
    uint8_t n;

    c->len = len;
    if (sts_random(c->key, sizeof c->key) != 0 || sts_random(c->nonce, sizeof c->nonce) != 0
        || sts_random(c->ad, sizeof c->ad) != 0 || sts_random(c->pt, len) != 0
        || sts_random(&n, 1) != 0)
        return 0;
    c->adlen = n % (sizeof c->ad + 1);
    return 1;
}

/* first seals out of place and second in place, to the same bytes; each
 * opens what the other sealed (second in place); one flipped bit fails both,
 * their outputs wiped. */
static int agree(enum sts_aead_alg alg, const struct random_case *c,
                 sts_aead_backend_fn *first, sts_aead_backend_fn *second)
{
    static uint8_t a[CROSS_MAX + 16], b[CROSS_MAX + 16], out[CROSS_MAX];
    const size_t len = c->len;
    uint16_t r;

    memcpy(b, c->pt, len);
    if (first(alg, 1, c->key, c->nonce, c->ad, c->adlen, c->pt, len, a, NULL, a + len) != 0
        || second(alg, 1, c->key, c->nonce, c->ad, c->adlen, b, len, b, NULL, b + len) != 0
        || memcmp(a, b, len + 16) != 0)
        return 0;
    if (first(alg, 0, c->key, c->nonce, c->ad, c->adlen, b, len, out, b + len, NULL) != 0
        || memcmp(out, c->pt, len) != 0
        || second(alg, 0, c->key, c->nonce, c->ad, c->adlen, a, len, a, a + len, NULL) != 0
        || memcmp(a, c->pt, len) != 0)
        return 0;

    if (sts_random((uint8_t *)&r, sizeof r) != 0) return 0;
    b[r % (len + 16)] ^= (uint8_t)(1u << (r >> 13));
    memcpy(a, b, len + 16);
    memset(out, 0xa5, len);
    return first(alg, 0, c->key, c->nonce, c->ad, c->adlen, b, len, out, b + len, NULL) == STS_ERR_AUTH
           && zeroed(out, len)
           && second(alg, 0, c->key, c->nonce, c->ad, c->adlen, a, len, a, a + len, NULL) == STS_ERR_AUTH
           && zeroed(a, len);
}

/* mbedtls and libcrypto on random inputs: the block and Poly1305 edges
 * first, then random lengths up to 4 KiB, each backend first in turn. */
static void test_crosscheck(enum sts_aead_alg alg)
{
    static const size_t edges[] = { 0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 1023, 1024, 4095, 4096 };
    static struct random_case c;
    enum { ROUNDS = 400 };
    int ok = 1;

    for (int i = 0; i < ROUNDS; i++) {
        uint16_t r = 0;
        size_t n = sizeof edges / sizeof *edges;

        ok &= sts_random((uint8_t *)&r, sizeof r) == 0;
        ok &= draw(&c, (size_t)i < n ? edges[i] : r % (CROSS_MAX + 1));
        ok &= i % 2 ? agree(alg, &c, sts_aead_openssl, sts_aead_mbedtls)
                    : agree(alg, &c, sts_aead_mbedtls, sts_aead_openssl);
    }
    CHECK(ok);
}
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void bench(enum sts_aead_alg alg, const char *name)
{
    enum { N = 20000 };
    uint8_t key[32] = { 3 }, nonce[12] = { 0 }, buf[64 + 16] = { 0 };
    double t0 = now();
    int ok = 1;

    for (int i = 0; i < N; i++) {
        nonce[0] = (uint8_t)i;
        ok &= sts_aead_seal(alg, key, nonce, NULL, 0, buf, 64, buf) == 0;
    }
    CHECK(ok);
    printf("%s (%s) seal of 64 bytes, key setup included: %.2f us\n", name,
           sts_aead_backend_name, (now() - t0) / N * 1e6);
}

int main(void)
{
    for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) {
        test_vector(&vectors[i]);
        test_tamper(&vectors[i]);
    }
    test_empty(STS_AEAD_CHACHAPOLY);
    test_empty(STS_AEAD_AESGCM);
    test_unsupported();
#ifdef STS_AEAD_CROSSCHECK
    test_crosscheck(STS_AEAD_CHACHAPOLY);
    test_crosscheck(STS_AEAD_AESGCM);
#else
    printf("cross-check skipped: this build has no libcrypto\n");
#endif
    bench(STS_AEAD_CHACHAPOLY, "ChaCha20-Poly1305");
    bench(STS_AEAD_AESGCM, "AES-256-GCM");
    return unit_done();
}
