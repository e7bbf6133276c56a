/* Sealed one-way readings: round trips of N, K and X under every suite, the
 * header bytes and overheads against the layout of proto/sealed.h written
 * out here by hand, every refusal with its reason and no plaintext left
 * behind, and an independent check that a frame is a Noise message: a raw
 * sts_noise responder opens it under a prologue built here. */
#include "crypto/x25519.h"
#include "proto/noise.h"
#include "proto/sealed.h"
#include "util/error.h"
#include "util/unit.h"

#include <mbedtls/sha256.h>

#include <stdlib.h>
#include <string.h>

#define FRAME_MAX (STS_SEALED_PAYLOAD_MAX + 128)

static uint8_t gw_priv[32], gw_pub[32], s_priv[32], s_pub[32], other_priv[32], other_pub[32];
static const char *TOPIC = "plant/s7/temp";
static const uint8_t READING[] = "{\"t\":21.5,\"rh\":40}";
static const enum sts_sealed_pattern patterns[] = { STS_SEALED_N, STS_SEALED_K, STS_SEALED_X };
static const enum sts_suite suites[] = { STS_SUITE_CHACHAPOLY_SHA256, STS_SUITE_AESGCM_SHA256,
                                         STS_SUITE_CHACHAPOLY_SHA512, STS_SUITE_AESGCM_SHA512 };
static uint8_t frame[FRAME_MAX], out[FRAME_MAX];

/* The layout, from the header's comment: header 12 bytes (K: 20), e 32,
 * X's encrypted s 48, the tag 16. */
static size_t want_header(enum sts_sealed_pattern p)
{
    return p == STS_SEALED_K ? 20 : 12;
}

static size_t want_overhead(enum sts_sealed_pattern p)
{
    return p == STS_SEALED_N ? 60 : p == STS_SEALED_K ? 68 : 108;
}

static void keys_init(void)
{
    for (int i = 0; i < 32; i++) {
        gw_priv[i] = (uint8_t)(0x40 + i);
        s_priv[i] = (uint8_t)(0x90 + i);
        other_priv[i] = (uint8_t)(0xd0 ^ i);
    }
    CHECK(sts_x25519_public(gw_pub, gw_priv) == 0);
    CHECK(sts_x25519_public(s_pub, s_priv) == 0);
    CHECK(sts_x25519_public(other_pub, other_priv) == 0);
}

static size_t seal(enum sts_sealed_pattern p, enum sts_suite s, uint64_t counter,
                   const uint8_t *pt, size_t ptlen)
{
    size_t len = 0;
    int err = sts_sealed_seal(p, s, p == STS_SEALED_N ? NULL : s_priv, s_pub, gw_pub, counter,
                              TOPIC, pt, ptlen, frame, sizeof frame, &len);
    CHECK(err == 0);
    return len;
}

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

/* Parses and opens f with the given keys and topic. On a refusal, checks
 * that nothing was left in out or the reported sender. */
static enum sts_reason try_open(const uint8_t *f, size_t len, const uint8_t *gw,
                                const uint8_t *sender, const char *topic, size_t *ptlen,
                                uint8_t got_sender[32])
{
    struct sts_sealed_header h;
    enum sts_reason r = sts_sealed_parse(f, len, &h);
    if (r != STS_REASON_NONE)
        return r;
    memset(out, 0xaa, len);
    memset(got_sender, 0xaa, 32);
    r = sts_sealed_open(gw, NULL, &h, f, len, sender, topic, out, ptlen, got_sender);
    if (r != STS_REASON_NONE) {
        CHECK(*ptlen == 0);
        CHECK(all_zero(out, len - h.len));
        CHECK(all_zero(got_sender, 32));
    }
    return r;
}

static enum sts_reason refusal(const uint8_t *f, size_t len, const uint8_t *gw,
                               const uint8_t *sender, const char *topic)
{
    size_t ptlen = 1;
    uint8_t got[32];
    return try_open(f, len, gw, sender, topic, &ptlen, got);
}

static void test_overheads(void)
{
    for (size_t i = 0; i < 3; i++)
        CHECK(sts_sealed_overhead(patterns[i]) == want_overhead(patterns[i]));
    CHECK(sts_sealed_overhead((enum sts_sealed_pattern)0) == 0);
    CHECK(sts_sealed_overhead((enum sts_sealed_pattern)4) == 0);
}

/* Every pattern and suite, with a reading, an empty one and the largest. */
static void test_round_trips(void)
{
    static uint8_t big[STS_SEALED_PAYLOAD_MAX];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    const struct { const uint8_t *pt; size_t len; } readings[] = {
        { READING, sizeof READING - 1 }, { NULL, 0 }, { big, sizeof big },
    };
    for (size_t pi = 0; pi < 3; pi++) {
        for (size_t si = 0; si < 4; si++) {
            for (size_t ri = 0; ri < 3; ri++) {
                enum sts_sealed_pattern p = patterns[pi];
                size_t len = seal(p, suites[si], 41 + ri, readings[ri].pt, readings[ri].len);
                CHECK(len == readings[ri].len + want_overhead(p));
                size_t ptlen = 0;
                uint8_t sender[32];
                CHECK(try_open(frame, len, gw_priv, s_pub, TOPIC, &ptlen, sender) ==
                      STS_REASON_NONE);
                CHECK(ptlen == readings[ri].len);
                CHECK(ptlen == 0 || memcmp(out, readings[ri].pt, ptlen) == 0);
                if (p == STS_SEALED_N)
                    CHECK(all_zero(sender, 32));
                else
                    CHECK_MEM(sender, s_pub, 32);
            }
        }
    }
}

static void sha256_id(const uint8_t pub[32], uint8_t id[8])
{
    uint8_t d[32];
    CHECK(mbedtls_sha256_ret(pub, 32, d, 0) == 0);
    memcpy(id, d, 8);
}

/* The header, byte for byte, against the layout written out here. */
static void test_header_bytes(void)
{
    const uint64_t counter = 0x0102030405060708u;
    const uint8_t be[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    uint8_t id[8], got_id[8];
    sha256_id(s_pub, id);
    CHECK(sts_sealed_key_id(s_pub, got_id) == 0);
    CHECK_MEM(got_id, id, 8);

    for (size_t pi = 0; pi < 3; pi++) {
        enum sts_sealed_pattern p = patterns[pi];
        size_t len = seal(p, STS_SUITE_AESGCM_SHA512, counter, READING, sizeof READING - 1);
        uint8_t want[20] = { 0x01, 0x08, (uint8_t)p, 4 };
        if (p == STS_SEALED_K) {
            memcpy(want + 4, id, 8);
            memcpy(want + 12, be, 8);
        } else {
            memcpy(want + 4, be, 8);
        }
        CHECK(len > want_header(p));
        CHECK_MEM(frame, want, want_header(p));

        struct sts_sealed_header h;
        CHECK(sts_sealed_parse(frame, len, &h) == STS_REASON_NONE);
        CHECK(h.pattern == p && h.suite == 4 && h.counter == counter && h.len == want_header(p));
        if (p == STS_SEALED_K)
            CHECK_MEM(h.key_id, id, 8);
        else
            CHECK(all_zero(h.key_id, 8));
    }

    /* K computes the key id itself when s_pub is not given. */
    size_t len = 0;
    CHECK(sts_sealed_seal(STS_SEALED_K, STS_SUITE_CHACHAPOLY_SHA256, s_priv, NULL, gw_pub, 9,
                          TOPIC, READING, 3, frame, sizeof frame, &len) == 0);
    CHECK_MEM(frame + 4, id, 8);
}

/* A raw Noise responder, with the prologue built here, reads the frame's
 * message: the frame is one message of the named Noise protocol. */
static void test_is_noise_message(void)
{
    static const char *const names[3][4] = {
        { "Noise_N_25519_ChaChaPoly_SHA256", "Noise_N_25519_AESGCM_SHA256",
          "Noise_N_25519_ChaChaPoly_SHA512", "Noise_N_25519_AESGCM_SHA512" },
        { "Noise_K_25519_ChaChaPoly_SHA256", "Noise_K_25519_AESGCM_SHA256",
          "Noise_K_25519_ChaChaPoly_SHA512", "Noise_K_25519_AESGCM_SHA512" },
        { "Noise_X_25519_ChaChaPoly_SHA256", "Noise_X_25519_AESGCM_SHA256",
          "Noise_X_25519_ChaChaPoly_SHA512", "Noise_X_25519_AESGCM_SHA512" },
    };
    for (size_t pi = 0; pi < 3; pi++) {
        for (size_t si = 0; si < 4; si++) {
            enum sts_sealed_pattern p = patterns[pi];
            size_t len = seal(p, suites[si], 77, READING, sizeof READING - 1);
            size_t hl = want_header(p), tl = strlen(TOPIC);
            uint8_t prologue[128];
            memcpy(prologue, "sts-lua sealed 1", 16);
            memcpy(prologue + 16, frame, hl);
            prologue[16 + hl] = (uint8_t)(tl >> 8);
            prologue[17 + hl] = (uint8_t)tl;
            memcpy(prologue + 18 + hl, TOPIC, tl);
            struct sts_noise_keys keys = { .s = gw_priv, .rs = p == STS_SEALED_K ? s_pub : NULL };
            struct sts_noise_hs *hs = NULL;
            CHECK(sts_noise_hs_new(&hs, names[pi][si], 0, prologue, 18 + hl + tl, &keys) == 0);
            uint8_t payload[64];
            size_t plen = 0;
            CHECK(hs && sts_noise_hs_read(hs, frame + hl, len - hl, payload, sizeof payload,
                                          &plen) == 0);
            CHECK(plen == sizeof READING - 1 && memcmp(payload, READING, plen) == 0);
            CHECK(hs && sts_noise_hs_action(hs) == STS_NOISE_SPLIT);
            const uint8_t *rs = hs ? sts_noise_hs_remote_static(hs) : NULL;
            if (p == STS_SEALED_X)
                CHECK(rs && memcmp(rs, s_pub, 32) == 0);
            sts_noise_hs_free(hs);
        }
    }
}

static void test_wrong_keys_and_topic(void)
{
    for (size_t pi = 0; pi < 3; pi++) {
        enum sts_sealed_pattern p = patterns[pi];
        size_t len = seal(p, STS_SUITE_CHACHAPOLY_SHA256, 5, READING, sizeof READING - 1);
        CHECK(refusal(frame, len, gw_priv, s_pub, "plant/s8/temp") == STS_REASON_AUTH);
        CHECK(refusal(frame, len, gw_priv, s_pub, "") == STS_REASON_AUTH);
        CHECK(refusal(frame, len, other_priv, s_pub, TOPIC) == STS_REASON_AUTH);
        if (p != STS_SEALED_N) /* K: the wrong key found; X: the wrong key pinned */
            CHECK(refusal(frame, len, gw_priv, other_pub, TOPIC) == STS_REASON_AUTH);
    }
    /* X without a pinned key takes whichever key the sender presents. */
    size_t len = seal(STS_SEALED_X, STS_SUITE_AESGCM_SHA256, 5, READING, sizeof READING - 1);
    CHECK(refusal(frame, len, gw_priv, NULL, TOPIC) == STS_REASON_NONE);
}

/* The reason a frame altered only in its pattern byte gets: the parser's
 * refusal, or the tag's when the layout still fits. */
static enum sts_reason flipped_pattern_reason(uint8_t p, size_t len)
{
    if (p < STS_SEALED_N || p > STS_SEALED_X)
        return STS_REASON_SUITE;
    return len < want_overhead((enum sts_sealed_pattern)p) ? STS_REASON_MALFORMED : STS_REASON_AUTH;
}

static enum sts_reason flip_reason(size_t byte, uint8_t flipped, size_t len)
{
    switch (byte) {
    case 0: return STS_REASON_BAD_VERSION;
    case 1: return STS_REASON_UNKNOWN_TYPE;
    case 2: return flipped_pattern_reason(flipped, len);
    case 3: return flipped >= 1 && flipped <= 4 ? STS_REASON_AUTH : STS_REASON_SUITE;
    default: return STS_REASON_AUTH; /* key id, counter, e, s, ciphertext, tag */
    }
}

/* Every bit of every byte, one at a time. */
static void test_bit_flips(void)
{
    static uint8_t copy[256];
    for (size_t pi = 0; pi < 3; pi++) {
        enum sts_sealed_pattern p = patterns[pi];
        size_t len = seal(p, STS_SUITE_CHACHAPOLY_SHA256, 1000, READING, sizeof READING - 1);
        int wrong = 0;
        for (size_t i = 0; i < len; i++) {
            for (int b = 0; b < 8; b++) {
                memcpy(copy, frame, len);
                copy[i] ^= (uint8_t)(1u << b);
                enum sts_reason r = refusal(copy, len, gw_priv, s_pub, TOPIC);
                if (r != flip_reason(i, copy[i], len)) {
                    wrong++;
                    fprintf(stderr, "pattern %d byte %zu bit %d: %s\n", p, i, b, sts_reason_name(r));
                }
            }
        }
        CHECK(wrong == 0);
    }
}

/* Every prefix: the header's are truncated, the message's malformed, and a
 * frame whose message is long enough but cut fails its tag. */
static void test_truncations(void)
{
    for (size_t pi = 0; pi < 3; pi++) {
        enum sts_sealed_pattern p = patterns[pi];
        size_t len = seal(p, STS_SUITE_AESGCM_SHA256, 3, READING, sizeof READING - 1);
        int wrong = 0;
        for (size_t n = 0; n < len; n++) {
            enum sts_reason want = n < want_header(p)     ? STS_REASON_TRUNCATED
                                   : n < want_overhead(p) ? STS_REASON_MALFORMED
                                                          : STS_REASON_AUTH;
            enum sts_reason r = refusal(frame, n, gw_priv, s_pub, TOPIC);
            if (r != want) {
                wrong++;
                fprintf(stderr, "pattern %d length %zu: %s\n", p, n, sts_reason_name(r));
            }
        }
        CHECK(wrong == 0);
    }
}

/* Frames built by hand that the parser refuses before any cryptography. */
static void test_parse_refusals(void)
{
    static uint8_t f[12 + 48 + 16 + STS_SEALED_PAYLOAD_MAX + 1];
    struct sts_sealed_header h;
    const uint8_t x[] = { 0x01, 0x08, 0x03, 0x01, 0, 0, 0, 0, 0, 0, 0, 9 };
    memset(f, 0x5a, sizeof f);
    memcpy(f, x, sizeof x);

    size_t full = 108 + STS_SEALED_PAYLOAD_MAX;
    CHECK(sts_sealed_parse(f, full, &h) == STS_REASON_NONE && h.counter == 9);
    CHECK(sts_sealed_parse(f, full + 1, &h) == STS_REASON_TOO_BIG);
    f[0] = 0x02;
    CHECK(sts_sealed_parse(f, 108, &h) == STS_REASON_BAD_VERSION);
    f[0] = 0x01;
    f[1] = STS_FRAME_ENC;
    CHECK(sts_sealed_parse(f, 108, &h) == STS_REASON_UNKNOWN_TYPE);
    f[1] = 0x08;
    const uint8_t bad[][2] = { { 0, 1 }, { 4, 1 }, { 0xff, 1 }, { 3, 0 }, { 3, 5 }, { 1, 0x21 } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f[2] = bad[i][0];
        f[3] = bad[i][1];
        CHECK(sts_sealed_parse(f, 108, &h) == STS_REASON_SUITE);
    }
    f[2] = 3;
    f[3] = 1;
    memset(f + 4, 0xff, 8);
    CHECK(sts_sealed_parse(f, 108, &h) == STS_REASON_MALFORMED);
    CHECK(h.len == 0); /* nothing reported from a refused frame */

    /* open checks the layout again: a header from another frame is refused. */
    size_t len = seal(STS_SEALED_N, STS_SUITE_CHACHAPOLY_SHA256, 4, READING, sizeof READING - 1);
    CHECK(sts_sealed_parse(frame, len, &h) == STS_REASON_NONE);
    h.counter = 5;
    size_t ptlen = 1;
    CHECK(sts_sealed_open(gw_priv, gw_pub, &h, frame, len, NULL, TOPIC, out, &ptlen, NULL) ==
          STS_REASON_MALFORMED);
    CHECK(ptlen == 0);
    /* K needs the sender's key from the caller. */
    len = seal(STS_SEALED_K, STS_SUITE_CHACHAPOLY_SHA256, 4, READING, sizeof READING - 1);
    CHECK(sts_sealed_parse(frame, len, &h) == STS_REASON_NONE);
    CHECK(sts_sealed_open(gw_priv, gw_pub, &h, frame, len, NULL, TOPIC, out, &ptlen, NULL) ==
          STS_REASON_INTERNAL);
}

static void test_seal_refusals(void)
{
    static uint8_t big[STS_SEALED_PAYLOAD_MAX + 1];
    uint8_t zero[32] = { 0 };
    size_t len = 7;
    const enum sts_sealed_pattern K = STS_SEALED_K, X = STS_SEALED_X, N = STS_SEALED_N;
    const enum sts_suite C = STS_SUITE_CHACHAPOLY_SHA256;
    CHECK(sts_sealed_seal(N, C, NULL, NULL, NULL, 1, TOPIC, READING, 3, frame, sizeof frame, &len) ==
          STS_ERR_INVALID);
    CHECK(len == 0);
    CHECK(sts_sealed_seal(K, C, NULL, s_pub, gw_pub, 1, TOPIC, READING, 3, frame, sizeof frame,
                          &len) == STS_ERR_INVALID);
    CHECK(sts_sealed_seal(X, C, NULL, NULL, gw_pub, 1, TOPIC, READING, 3, frame, sizeof frame,
                          &len) == STS_ERR_INVALID);
    CHECK(sts_sealed_seal((enum sts_sealed_pattern)4, C, s_priv, s_pub, gw_pub, 1, TOPIC, READING,
                          3, frame, sizeof frame, &len) == STS_ERR_INVALID);
    CHECK(sts_sealed_seal(N, (enum sts_suite)5, NULL, NULL, gw_pub, 1, TOPIC, READING, 3, frame,
                          sizeof frame, &len) == STS_ERR_INVALID);
    CHECK(sts_sealed_seal(N, C, NULL, NULL, gw_pub, UINT64_MAX, TOPIC, READING, 3, frame,
                          sizeof frame, &len) == STS_ERR_INVALID);
    CHECK(sts_sealed_seal(X, C, s_priv, s_pub, gw_pub, 1, TOPIC, READING, 3, frame, 3 + 107,
                          &len) == STS_ERR_TOO_BIG);
    CHECK(sts_sealed_seal(X, C, s_priv, s_pub, gw_pub, 1, TOPIC, READING, 3, frame, 3 + 108,
                          &len) == 0 && len == 111);
    CHECK(sts_sealed_seal(N, C, NULL, NULL, gw_pub, 1, TOPIC, big, sizeof big, frame, sizeof frame,
                          &len) == STS_ERR_TOO_BIG);
    /* A low-order gateway key contributes no secret: refused, nothing left. */
    CHECK(sts_sealed_seal(N, C, NULL, NULL, zero, 1, TOPIC, READING, 3, frame, sizeof frame,
                          &len) == STS_ERR_KEY);
    CHECK(len == 0 && all_zero(frame, 64));
}

/* Each frame has a fresh ephemeral key: the same reading seals differently. */
static void test_fresh_ephemeral(void)
{
    static uint8_t first[128];
    size_t len = seal(STS_SEALED_K, STS_SUITE_CHACHAPOLY_SHA256, 8, READING, sizeof READING - 1);
    memcpy(first, frame, len);
    CHECK(seal(STS_SEALED_K, STS_SUITE_CHACHAPOLY_SHA256, 8, READING, sizeof READING - 1) == len);
    CHECK_MEM(first, frame, 20);
    CHECK(memcmp(first + 20, frame + 20, 32) != 0);
}

int main(void)
{
    keys_init();
    test_overheads();
    test_round_trips();
    test_header_bytes();
    test_is_noise_message();
    test_wrong_keys_and_topic();
    test_bit_flips();
    test_truncations();
    test_parse_refusals();
    test_seal_refusals();
    test_fresh_ephemeral();
    return unit_done();
}
