/* Group data frames against bytes built by hand from the layout (header,
 * nonce, associated data, signature input), every rejection with its
 * reason; the receiver's keyring: epochs, grace, per-sender replay windows,
 * the epoch limit and late keys. */
#include "crypto/aead.h"
#include "crypto/ecdsa.h"
#include "crypto/hash.h"
#include "proto/group_frame.h"
#include "util/error.h"
#include "util/unit.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t key[STS_KEY_LEN] = { 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
                                          0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
                                          0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77,
                                          0x78, 0x79, 0x7a, 0x7b, 0x7c, 0x7d, 0x7e, 0x7f };
static const char topic[] = "plant/line-1/telemetry";
static const uint8_t pt[] = "{\"temp\":21.5}";
#define PTLEN (sizeof pt - 1)

/* The header of every frame below, and its 16 bytes as the layout says. */
static const struct sts_group_header hdr = { STS_GROUP_FRAME_DATA, 0x01020304, 0xa1b2,
                                             0x1122334455667788ull };
static const uint8_t hdr_bytes[STS_GROUP_HEADER_LEN] = {
    0x01, 0x10, 0x01, 0x02, 0x03, 0x04, 0xa1, 0xb2,
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
};
static const uint8_t nonce_bytes[STS_AEAD_NONCE_LEN] = { 0x00, 0x00, 0xa1, 0xb2, 0x11, 0x22,
                                                         0x33, 0x44, 0x55, 0x66, 0x77, 0x88 };

static struct sts_group_header with_type(int type)
{
    struct sts_group_header h = hdr;
    h.type = type;
    return h;
}

static size_t seal(enum sts_aead_alg alg, int type, uint8_t *out, size_t cap)
{
    struct sts_group_header h = with_type(type);
    size_t len = 0;
    CHECK(sts_group_frame_seal(alg, key, &h, topic, pt, PTLEN, out, cap, &len) == 0);
    return len;
}

static enum sts_reason parse(const uint8_t *frame, size_t len, struct sts_group_header *h)
{
    const uint8_t *body, *sig;
    size_t bodylen;
    return sts_group_frame_parse(frame, len, h, &body, &bodylen, &sig);
}

/* Parses and opens a frame with the fixed key: 0 or the first failure. */
static int receive(enum sts_aead_alg alg, const uint8_t *frame, size_t len, const char *t,
                   uint8_t *out)
{
    struct sts_group_header h;
    const uint8_t *body, *sig;
    size_t bodylen;
    enum sts_reason why = sts_group_frame_parse(frame, len, &h, &body, &bodylen, &sig);
    if (why != STS_REASON_NONE)
        return sts_reason_error(why);
    return sts_group_frame_open(alg, key, frame, t, body, bodylen, out);
}

static void test_round_trip(enum sts_aead_alg alg, int type)
{
    uint8_t frame[256], out[256];
    struct sts_group_header h;
    const uint8_t *body, *sig;
    size_t bodylen, len = seal(alg, type, frame, sizeof frame);
    size_t overhead = type == STS_GROUP_FRAME_DATA ? 32 : 96;

    CHECK(len == PTLEN + overhead);
    CHECK(sts_group_frame_parse(frame, len, &h, &body, &bodylen, &sig) == STS_REASON_NONE);
    CHECK(h.type == type && h.epoch == hdr.epoch && h.sender == hdr.sender
          && h.counter == hdr.counter);
    CHECK(body == frame + 16 && bodylen == PTLEN + 16);
    CHECK(type == STS_GROUP_FRAME_DATA ? sig == NULL : sig == frame + len - 64);
    memset(out, 0, sizeof out);
    CHECK(sts_group_frame_open(alg, key, frame, topic, body, bodylen, out) == 0);
    CHECK_MEM(out, pt, PTLEN);

    /* An empty plaintext is a bare tag. */
    CHECK(sts_group_frame_seal(alg, key, &h, topic, pt, 0, frame, sizeof frame, &len) == 0);
    CHECK(len == overhead);
    CHECK(receive(alg, frame, len, topic, out) == 0);
}

/* The frame is exactly header || AEAD(key, 0000 || sender || counter,
 * header || topic, pt), as sealed here without the module. */
static void test_layout(enum sts_aead_alg alg)
{
    uint8_t frame[256], want[256], ad[16 + sizeof topic], out[64];
    size_t len = seal(alg, STS_GROUP_FRAME_DATA, frame, sizeof frame);

    CHECK_MEM(frame, hdr_bytes, 16);
    memcpy(ad, hdr_bytes, 16);
    memcpy(ad + 16, topic, sizeof topic - 1);
    CHECK(sts_aead_open(alg, key, nonce_bytes, ad, sizeof ad - 1, frame + 16, len - 16, out) == 0);
    CHECK_MEM(out, pt, PTLEN);
    memcpy(want, hdr_bytes, 16);
    CHECK(sts_aead_seal(alg, key, nonce_bytes, ad, sizeof ad - 1, pt, PTLEN, want + 16) == 0);
    CHECK(len == 16 + PTLEN + 16);
    CHECK_MEM(frame, want, len);

    /* A signed frame's header differs only in its type byte, and the
     * signature's room is zeroed until it is filled. */
    static const uint8_t zero[64];
    len = seal(alg, STS_GROUP_FRAME_DATA_SIGNED, frame, sizeof frame);
    CHECK(frame[1] == 0x11);
    CHECK_MEM(frame + 2, hdr_bytes + 2, 14);
    CHECK_MEM(frame + len - 64, zero, 64);
}

static void test_topics(enum sts_aead_alg alg)
{
    uint8_t frame[256], out[64];
    struct sts_group_header h = hdr;
    size_t len = seal(alg, STS_GROUP_FRAME_DATA, frame, sizeof frame);

    CHECK(receive(alg, frame, len, "plant/line-2/telemetry", out) == STS_ERR_AUTH);
    CHECK(receive(alg, frame, len, "plant/line-1/telemetr", out) == STS_ERR_AUTH);
    CHECK(receive(alg, frame, len, "", out) == STS_ERR_AUTH);

    CHECK(sts_group_frame_seal(alg, key, &h, "", pt, PTLEN, frame, sizeof frame, &len) == 0);
    CHECK(receive(alg, frame, len, "", out) == 0);
    CHECK(receive(alg, frame, len, topic, out) == STS_ERR_AUTH);

    /* Topics too long for the stack's room, and one over the MQTT limit. */
    char *big = malloc(65537);
    memset(big, 'a', 65536);
    big[65535] = '\0';
    CHECK(sts_group_frame_seal(alg, key, &h, big, pt, PTLEN, frame, sizeof frame, &len) == 0);
    CHECK(receive(alg, frame, len, big, out) == 0);
    big[1000] = 'b';
    CHECK(receive(alg, frame, len, big, out) == STS_ERR_AUTH);
    big[1000] = '\0';
    CHECK(sts_group_frame_seal(alg, key, &h, big, pt, PTLEN, frame, sizeof frame, &len) == 0);
    CHECK(receive(alg, frame, len, big, out) == 0);
    big[1000] = big[65535] = 'a';
    big[65536] = '\0';
    CHECK(sts_group_frame_seal(alg, key, &h, big, pt, PTLEN, frame, sizeof frame, &len)
          == STS_ERR_TOO_BIG);
    CHECK(sts_group_frame_digest(frame, 96, big, out) == STS_ERR_TOO_BIG);
    free(big);
}

/* Any single changed bit before the signature makes the frame refused:
 * by the parser, or by the tag. */
static void test_tamper(enum sts_aead_alg alg, int type)
{
    uint8_t frame[256], out[256];
    size_t len = seal(alg, type, frame, sizeof frame);
    size_t end = type == STS_GROUP_FRAME_DATA ? len : len - 64;
    int caught = 1;

    for (size_t bit = 0; bit < 8 * end; bit++) {
        frame[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        caught &= receive(alg, frame, len, topic, out) != 0;
        frame[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    CHECK(caught);
    CHECK(receive(alg, frame, len, topic, out) == 0);
    /* The wrong key, and the other AEAD. */
    struct sts_group_header h;
    const uint8_t *body, *sig;
    size_t bodylen;
    uint8_t other[STS_KEY_LEN];
    memcpy(other, key, sizeof other);
    other[31] ^= 0x80;
    CHECK(sts_group_frame_parse(frame, len, &h, &body, &bodylen, &sig) == STS_REASON_NONE);
    CHECK(sts_group_frame_open(alg, other, frame, topic, body, bodylen, out) == STS_ERR_AUTH);
    CHECK(sts_group_frame_open(alg == STS_AEAD_AESGCM ? STS_AEAD_CHACHAPOLY : STS_AEAD_AESGCM, key,
                               frame, topic, body, bodylen, out)
          == STS_ERR_AUTH);
    CHECK(sts_group_frame_open(alg, key, frame, topic, body, 15, out) == STS_ERR_TRUNCATED);
}

static void test_rejections(void)
{
    uint8_t frame[256];
    struct sts_group_header h;
    size_t len = seal(STS_AEAD_CHACHAPOLY, STS_GROUP_FRAME_DATA, frame, sizeof frame);
    int ok = 1;

    /* Shorter than the type's overhead, down to nothing. */
    for (size_t n = 0; n < 32; n++)
        ok &= parse(frame, n, &h) == STS_REASON_TRUNCATED;
    CHECK(ok);
    CHECK(parse(frame, 32, &h) == STS_REASON_NONE);
    frame[1] = 0x11;
    for (size_t n = 2; n < 96; n++)
        ok &= parse(frame, n, &h) == STS_REASON_TRUNCATED;
    CHECK(ok);
    CHECK(parse(frame, 96, &h) == STS_REASON_NONE);
    frame[1] = 0x10;

    frame[0] = 0x02;
    CHECK(parse(frame, len, &h) == STS_REASON_BAD_VERSION);
    frame[0] = 0x00;
    CHECK(parse(frame, 1, &h) == STS_REASON_TRUNCATED);
    CHECK(parse(frame, len, &h) == STS_REASON_BAD_VERSION);
    frame[0] = 0x01;

    for (int t = 0; t < 256; t++) {
        frame[1] = (uint8_t)t;
        if (t != 0x10 && t != 0x11)
            ok &= parse(frame, len, &h) == STS_REASON_UNKNOWN_TYPE;
    }
    CHECK(ok);
    frame[1] = 0x10;

    frame[6] = frame[7] = 0; /* sender 0 */
    CHECK(parse(frame, len, &h) == STS_REASON_MALFORMED);
    frame[7] = 1;
    CHECK(parse(frame, len, &h) == STS_REASON_NONE && h.sender == 1);
    memset(frame + 8, 0xff, 8); /* counter 2^64-1 */
    CHECK(parse(frame, len, &h) == STS_REASON_MALFORMED);
    frame[15] = 0xfe;
    CHECK(parse(frame, len, &h) == STS_REASON_NONE && h.counter == UINT64_MAX - 1);
}

/* 65000 bytes of payload pass, one more is too big, for both types and
 * for sealing. */
static void test_sizes(void)
{
    size_t big = 96 + STS_GROUP_PAYLOAD_MAX + 1, len;
    uint8_t *frame = calloc(1, big), *pt_big = calloc(1, STS_GROUP_PAYLOAD_MAX + 1);
    struct sts_group_header h = hdr;

    memcpy(frame, hdr_bytes, 16);
    CHECK(parse(frame, 32 + STS_GROUP_PAYLOAD_MAX, &h) == STS_REASON_NONE);
    CHECK(parse(frame, 32 + STS_GROUP_PAYLOAD_MAX + 1, &h) == STS_REASON_TOO_BIG);
    frame[1] = 0x11;
    CHECK(parse(frame, 96 + STS_GROUP_PAYLOAD_MAX, &h) == STS_REASON_NONE);
    CHECK(parse(frame, 96 + STS_GROUP_PAYLOAD_MAX + 1, &h) == STS_REASON_TOO_BIG);

    h = hdr;
    CHECK(sts_group_frame_seal(STS_AEAD_AESGCM, key, &h, topic, pt_big, STS_GROUP_PAYLOAD_MAX,
                               frame, big, &len) == 0);
    CHECK(len == STS_GROUP_PAYLOAD_MAX + 32);
    CHECK(sts_group_frame_seal(STS_AEAD_AESGCM, key, &h, topic, pt_big, STS_GROUP_PAYLOAD_MAX + 1,
                               frame, big, &len) == STS_ERR_TOO_BIG && len == 0);
    CHECK(sts_group_frame_seal(STS_AEAD_AESGCM, key, &h, topic, pt, PTLEN, frame, PTLEN + 31, &len)
          == STS_ERR_TOO_BIG);
    CHECK(sts_group_frame_seal(STS_AEAD_AESGCM, key, &h, topic, pt, PTLEN, frame, PTLEN + 32, &len)
          == 0);
    h.type = STS_GROUP_FRAME_DATA_SIGNED;
    CHECK(sts_group_frame_seal(STS_AEAD_AESGCM, key, &h, topic, pt, PTLEN, frame, PTLEN + 95, &len)
          == STS_ERR_TOO_BIG);

    /* Headers no sender may use. */
    h = hdr;
    h.sender = 0;
    CHECK(sts_group_frame_seal(STS_AEAD_AESGCM, key, &h, topic, pt, PTLEN, frame, big, &len)
          == STS_ERR_INVALID);
    h = hdr;
    h.counter = UINT64_MAX;
    CHECK(sts_group_frame_seal(STS_AEAD_AESGCM, key, &h, topic, pt, PTLEN, frame, big, &len)
          == STS_ERR_INVALID);
    h = hdr;
    h.type = 0x05;
    CHECK(sts_group_frame_seal(STS_AEAD_AESGCM, key, &h, topic, pt, PTLEN, frame, big, &len)
          == STS_ERR_INVALID);
    free(frame);
    free(pt_big);
}

/* SHA-256(u16 len(topic) || topic || frame without its signature), built
 * here byte by byte. */
static void expected_digest(const uint8_t *frame, size_t len, const char *t, uint8_t digest[32])
{
    size_t tlen = strlen(t), n = 0;
    uint8_t *in = malloc(2 + tlen + len);
    in[n++] = (uint8_t)(tlen >> 8);
    in[n++] = (uint8_t)tlen;
    memcpy(in + n, t, tlen);
    memcpy(in + n + tlen, frame, len - 64);
    CHECK(sts_hash(STS_SHA256, in, 2 + tlen + len - 64, digest) == 0);
    free(in);
}

static void test_signed(enum sts_aead_alg alg)
{
    uint8_t frame[256], out[64], digest[32], want[32], again[32], priv[32], pub[65];
    struct sts_group_header h;
    const uint8_t *body, *sig;
    size_t bodylen, len = seal(alg, STS_GROUP_FRAME_DATA_SIGNED, frame, sizeof frame);

    CHECK(sts_group_frame_digest(frame, len, topic, digest) == 0);
    expected_digest(frame, len, topic, want);
    CHECK_MEM(digest, want, 32);
    CHECK(sts_group_frame_digest(frame, len, "plant/line-2/telemetry", again) == 0);
    CHECK(memcmp(digest, again, 32) != 0);
    frame[20] ^= 1;
    CHECK(sts_group_frame_digest(frame, len, topic, again) == 0);
    CHECK(memcmp(digest, again, 32) != 0);
    frame[20] ^= 1;
    CHECK(sts_group_frame_digest(frame, 95, topic, again) == STS_ERR_TRUNCATED);

    /* Sign into the room seal left; the signature is not its own input. */
    CHECK(sts_p256_keygen(priv, pub) == 0);
    CHECK(sts_p256_sign(priv, digest, frame + len - 64) == 0);
    CHECK(sts_group_frame_digest(frame, len, topic, again) == 0);
    CHECK_MEM(again, digest, 32);
    CHECK(sts_group_frame_parse(frame, len, &h, &body, &bodylen, &sig) == STS_REASON_NONE);
    CHECK(sts_p256_verify(pub, again, sig) == 0);
    CHECK(sts_group_frame_open(alg, key, frame, topic, body, bodylen, out) == 0);
    CHECK_MEM(out, pt, PTLEN);

    /* The signature binds the ciphertext and the topic. */
    frame[16] ^= 0x40;
    CHECK(sts_group_frame_digest(frame, len, topic, again) == 0);
    CHECK(sts_p256_verify(pub, again, sig) == STS_ERR_AUTH);
    frame[16] ^= 0x40;
    CHECK(sts_group_frame_digest(frame, len, "plant/+/telemetry", again) == 0);
    CHECK(sts_p256_verify(pub, again, sig) == STS_ERR_AUTH);
}

/* --- keyring ---------------------------------------------------------------- */

static void key_of(uint8_t k[STS_KEY_LEN], uint32_t epoch)
{
    memset(k, (int)(epoch & 0xff) + 1, STS_KEY_LEN);
}

static void add(struct sts_group_keyring *r, uint32_t epoch, double retire_at)
{
    uint8_t k[STS_KEY_LEN];
    key_of(k, epoch);
    CHECK(sts_group_keyring_add(r, epoch, k, retire_at) == 0);
}

/* Whether the keyring gives epoch's own key at time now. */
static int holds(struct sts_group_keyring *r, uint32_t epoch, double now)
{
    uint8_t k[STS_KEY_LEN];
    const uint8_t *got = sts_group_keyring_key(r, epoch, now);
    key_of(k, epoch);
    return got != NULL && memcmp(got, k, STS_KEY_LEN) == 0;
}

static void test_epochs(void)
{
    struct sts_group_keyring r;

    sts_group_keyring_init(&r);
    CHECK(sts_group_keyring_key(&r, 1, 0) == NULL);
    CHECK(sts_group_keyring_check(&r, 1, 1, 0) == STS_ERR_STATE);
    CHECK(sts_group_keyring_mark(&r, 1, 1, 0) == STS_ERR_STATE);
    add(&r, 1, 0);
    CHECK(holds(&r, 1, 1e9));
    CHECK(sts_group_keyring_key(&r, 2, 0) == NULL);

    /* A rekey: epoch 2 is current, epoch 1 lives until 100. */
    add(&r, 2, 100);
    CHECK(holds(&r, 2, 1e9));
    CHECK(holds(&r, 1, 99.9));
    CHECK(sts_group_keyring_key(&r, 1, 100) == NULL);
    CHECK(r.count == 2);
    sts_group_keyring_expire(&r, 99.9);
    CHECK(r.count == 2);
    sts_group_keyring_expire(&r, 100);
    CHECK(r.count == 1);
    CHECK(sts_group_keyring_check(&r, 1, 1, 0) == STS_ERR_STATE);
    CHECK(holds(&r, 2, 1e9));

    /* An earlier deadline wins; a later one leaves an earlier in place. */
    add(&r, 3, 200);
    add(&r, 4, 150);
    CHECK(holds(&r, 2, 149) && !holds(&r, 2, 150));
    CHECK(holds(&r, 3, 149) && !holds(&r, 3, 150));
    add(&r, 5, 300);
    CHECK(holds(&r, 3, 149) && !holds(&r, 3, 150));
    CHECK(holds(&r, 4, 299) && !holds(&r, 4, 300));
    CHECK(holds(&r, 5, 1e9));

    /* A late key for an older epoch joins with its deadline and changes
     * no other. */
    sts_group_keyring_free(&r);
    add(&r, 5, 0);
    add(&r, 3, 500);
    CHECK(holds(&r, 5, 1e9));
    CHECK(holds(&r, 3, 499) && !holds(&r, 3, 500));
    add(&r, 4, 400);
    CHECK(holds(&r, 5, 1e9) && holds(&r, 4, 399) && !holds(&r, 4, 400));
    add(&r, 6, 450);
    CHECK(holds(&r, 6, 1e9));
    CHECK(holds(&r, 5, 449) && !holds(&r, 5, 450));
    CHECK(holds(&r, 4, 399) && !holds(&r, 4, 400));
    CHECK(holds(&r, 3, 449) && !holds(&r, 3, 450));
    sts_group_keyring_expire(&r, 450);
    CHECK(r.count == 1 && holds(&r, 6, 1e9));
    sts_group_keyring_free(&r);
    CHECK(r.count == 0 && r.epochs == NULL);
    CHECK(sts_group_keyring_memory(&r) == 0);
}

static void test_limit(void)
{
    struct sts_group_keyring r;
    int ok = 1;

    sts_group_keyring_init(&r);
    for (uint32_t e = 1; e <= 10; e++)
        add(&r, e, 1000);
    CHECK(r.count == STS_GROUP_KEYRING_EPOCHS);
    CHECK(sts_group_keyring_key(&r, 1, 0) == NULL && sts_group_keyring_key(&r, 2, 0) == NULL);
    for (uint32_t e = 3; e <= 10; e++)
        ok &= holds(&r, e, 999);
    CHECK(ok);
    CHECK(sts_group_keyring_check(&r, 2, 1, 0) == STS_ERR_STATE);
    /* Full: an epoch older than all is not kept; one in between drops the oldest. */
    add(&r, 1, 1000);
    CHECK(sts_group_keyring_key(&r, 1, 0) == NULL && holds(&r, 3, 0));
    sts_group_keyring_free(&r);
    for (uint32_t e = 10; e <= 17; e += 1)
        add(&r, e * 2, 1000); /* epochs 20, 22, ..., 34 */
    add(&r, 21, 1000);
    CHECK(r.count == STS_GROUP_KEYRING_EPOCHS);
    CHECK(holds(&r, 21, 0) && sts_group_keyring_key(&r, 20, 0) == NULL && holds(&r, 34, 1e9));
    sts_group_keyring_free(&r);
}

static void test_replace(void)
{
    struct sts_group_keyring r;
    uint8_t k[STS_KEY_LEN];

    sts_group_keyring_init(&r);
    add(&r, 7, 0);
    CHECK(sts_group_keyring_mark(&r, 7, 3, 10) == 0);
    add(&r, 7, 0); /* the same key again: windows kept */
    CHECK(sts_group_keyring_check(&r, 7, 3, 10) == STS_ERR_REPLAY);
    key_of(k, 8);
    CHECK(sts_group_keyring_add(&r, 7, k, 0) == 0); /* a different key: fresh windows */
    CHECK(r.count == 1);
    CHECK(sts_group_keyring_check(&r, 7, 3, 10) == 0);
    CHECK_MEM(sts_group_keyring_key(&r, 7, 0), k, STS_KEY_LEN);
    sts_group_keyring_free(&r);
}

static void test_replay(void)
{
    struct sts_group_keyring r;
    size_t before;

    sts_group_keyring_init(&r);
    add(&r, 1, 0);
    before = sts_group_keyring_memory(&r);
    CHECK(sts_group_keyring_check(&r, 1, 5, 7) == 0);
    CHECK(sts_group_keyring_memory(&r) == before); /* a check makes no window */
    CHECK(sts_group_keyring_mark(&r, 1, 5, 7) == 0);
    CHECK(sts_group_keyring_memory(&r) > before);
    CHECK(sts_group_keyring_check(&r, 1, 5, 7) == STS_ERR_REPLAY);
    CHECK(sts_group_keyring_mark(&r, 1, 5, 7) == STS_ERR_REPLAY);
    /* Another sender's counter 7 is its own. */
    CHECK(sts_group_keyring_check(&r, 1, 6, 7) == 0);
    CHECK(sts_group_keyring_mark(&r, 1, 6, 7) == 0);
    CHECK(sts_group_keyring_mark(&r, 1, 6, 7) == STS_ERR_REPLAY);
    /* Out of order within the window, then a slide past the old counters. */
    CHECK(sts_group_keyring_mark(&r, 1, 5, 3) == 0);
    CHECK(sts_group_keyring_mark(&r, 1, 5, 2000) == 0);
    CHECK(sts_group_keyring_check(&r, 1, 5, 976) == STS_ERR_REPLAY);
    CHECK(sts_group_keyring_check(&r, 1, 5, 977) == 0);
    CHECK(sts_group_keyring_check(&r, 1, 5, 8) == STS_ERR_REPLAY);
    CHECK(sts_group_keyring_check(&r, 1, 6, 8) == 0);
    CHECK(sts_group_keyring_check(&r, 1, 5, UINT64_MAX) == STS_ERR_REPLAY);
    CHECK(sts_group_keyring_check(&r, 1, 9, UINT64_MAX) == STS_ERR_REPLAY);
    CHECK(sts_group_keyring_mark(&r, 1, 9, UINT64_MAX) == STS_ERR_REPLAY);
    CHECK(sts_group_keyring_check(&r, 1, 0, 1) == STS_ERR_INVALID);
    /* Each epoch has its own windows. */
    add(&r, 2, 50);
    CHECK(sts_group_keyring_mark(&r, 2, 5, 7) == 0);
    CHECK(sts_group_keyring_check(&r, 1, 5, 7) == STS_ERR_REPLAY);
    sts_group_keyring_free(&r);
}

/* Every sender index at once: one window each, all found again, bounded. */
static void test_all_senders(void)
{
    struct sts_group_keyring r;
    int ok = 1;

    sts_group_keyring_init(&r);
    add(&r, 1, 0);
    for (uint32_t s = 1; s <= 65535; s++)
        ok &= sts_group_keyring_mark(&r, 1, (uint16_t)s, s) == 0;
    CHECK(ok);
    for (uint32_t s = 1; s <= 65535; s++) {
        ok &= sts_group_keyring_check(&r, 1, (uint16_t)s, s) == STS_ERR_REPLAY;
        ok &= sts_group_keyring_check(&r, 1, (uint16_t)s, s + 1) == 0;
    }
    CHECK(ok);
    size_t mem = sts_group_keyring_memory(&r);
    CHECK(mem >= 65535 * sizeof(struct sts_replay));
    CHECK(mem < 65535 * (sizeof(struct sts_replay) + 16) + (1u << 17) * 2 + 4096);
    sts_group_keyring_free(&r);
}

int main(void)
{
    static const enum sts_aead_alg algs[] = { STS_AEAD_CHACHAPOLY, STS_AEAD_AESGCM };
    for (size_t i = 0; i < 2; i++) {
        test_round_trip(algs[i], STS_GROUP_FRAME_DATA);
        test_round_trip(algs[i], STS_GROUP_FRAME_DATA_SIGNED);
        test_layout(algs[i]);
        test_topics(algs[i]);
        test_tamper(algs[i], STS_GROUP_FRAME_DATA);
        test_tamper(algs[i], STS_GROUP_FRAME_DATA_SIGNED);
        test_signed(algs[i]);
    }
    test_rejections();
    test_sizes();
    test_epochs();
    test_limit();
    test_replace();
    test_replay();
    test_all_senders();
    return unit_done();
}
