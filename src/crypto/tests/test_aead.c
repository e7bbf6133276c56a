/* AEADs: RFC 8439 §2.8.2 (ChaCha20-Poly1305), McGrew-Viega GCM test case 16
 * (AES-256-GCM), tampering, truncation, in-place use; prints the per-call
 * cost on 64 bytes. */
#include "crypto/aead.h"
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
};

struct decoded {
    uint8_t key[32], nonce[12], ad[64], pt[128], ct[144];
    size_t adlen, ptlen, ctlen;
};

static void decode(struct decoded *d, const struct aead_vector *v)
{
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

/* Every single-bit change of ciphertext, tag or associated data is caught. */
static void test_tamper(const struct aead_vector *v)
{
    struct decoded d;
    uint8_t buf[144];
    int caught = 1;

    decode(&d, v);
    for (size_t bit = 0; bit < d.ctlen * 8; bit++) {
        d.ct[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        caught &= sts_aead_open(v->alg, d.key, d.nonce, d.ad, d.adlen, d.ct, d.ctlen, buf)
                  == STS_ERR_AUTH;
        d.ct[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    CHECK(caught);
    d.ad[0] ^= 1;
    CHECK(sts_aead_open(v->alg, d.key, d.nonce, d.ad, d.adlen, d.ct, d.ctlen, buf) == STS_ERR_AUTH);
    d.ad[0] ^= 1;
    d.nonce[11] ^= 1;
    CHECK(sts_aead_open(v->alg, d.key, d.nonce, d.ad, d.adlen, d.ct, d.ctlen, buf) == STS_ERR_AUTH);
    d.nonce[11] ^= 1;
    CHECK(sts_aead_open(v->alg, d.key, d.nonce, d.ad, d.adlen, d.ct, d.ctlen - 1, buf) == STS_ERR_AUTH);
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
    printf("%s seal of 64 bytes, key setup included: %.2f us\n", name, (now() - t0) / N * 1e6);
}

int main(void)
{
    for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) {
        test_vector(&vectors[i]);
        test_tamper(&vectors[i]);
    }
    test_empty(STS_AEAD_CHACHAPOLY);
    test_empty(STS_AEAD_AESGCM);
    bench(STS_AEAD_CHACHAPOLY, "ChaCha20-Poly1305");
    bench(STS_AEAD_AESGCM, "AES-256-GCM");
    return unit_done();
}
