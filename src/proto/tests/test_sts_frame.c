/* The STS frame codec: header and body layouts against hand-built bytes
 * from docs/PROTOCOL.md, every truncation, every type byte, the limits,
 * suite bytes, protocol names and the prologue. */
#include "proto/sts_frame.h"
#include "util/error.h"
#include "util/unit.h"

#include <string.h>

static int decode(struct sts_frame *f, const uint8_t *buf, size_t len, enum sts_reason *why)
{
    return sts_frame_decode(f, buf, len, 0, why);
}

static void test_layouts(void)
{
    struct sts_frame f;
    enum sts_reason why;

    /* INITREQ: 01 01 suite msg */
    const uint8_t initreq[] = { 0x01, 0x01, 0x21, 0xaa, 0xbb };
    CHECK(decode(&f, initreq, sizeof initreq, &why) == 0 && why == STS_REASON_NONE);
    CHECK(f.type == STS_FRAME_INITREQ && f.suite == 0x21);
    CHECK(f.body == initreq + 3 && f.body_len == 2);

    /* INITACK / AUTHREQ: the body is the Noise message */
    const uint8_t initack[] = { 0x01, 0x02, 0xcc };
    CHECK(decode(&f, initack, sizeof initack, &why) == 0 && f.type == STS_FRAME_INITACK);
    CHECK(f.body == initack + 2 && f.body_len == 1);

    /* ENC: counter big-endian, then ciphertext || tag */
    uint8_t enc[2 + 8 + 16 + 3] = { 0x01, 0x05, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };
    CHECK(decode(&f, enc, sizeof enc, &why) == 0 && f.type == STS_FRAME_ENC);
    CHECK(f.counter == 0x0102030405060708ull);
    CHECK(f.body == enc + 10 && f.body_len == 19);
    enc[1] = 0x06;
    CHECK(decode(&f, enc, sizeof enc, &why) == 0 && f.type == STS_FRAME_KILL);

    /* RESYNC: no body at all */
    const uint8_t resync[] = { 0x01, 0x07, 0x00 };
    CHECK(decode(&f, resync, 2, &why) == 0 && f.type == STS_FRAME_RESYNC);
    CHECK(decode(&f, resync, 3, &why) == STS_ERR_INVALID && why == STS_REASON_MALFORMED);
}

static void test_rejections(void)
{
    struct sts_frame f;
    enum sts_reason why;
    uint8_t buf[STS_FRAME_HANDSHAKE_MAX + 1] = { 0x01, 0x05 };

    /* Every length short of the minimum, for every type. */
    const size_t min_len[] = { [STS_FRAME_INITREQ] = 3, [STS_FRAME_INITACK] = 3,
                               [STS_FRAME_AUTHREQ] = 3, [STS_FRAME_ENC] = 26,
                               [STS_FRAME_KILL] = 26, [STS_FRAME_RESYNC] = 2 };
    for (int t = STS_FRAME_INITREQ; t <= STS_FRAME_RESYNC; t++) {
        if (t == STS_FRAME_AUTHACK)
            continue;
        buf[1] = (uint8_t)t;
        for (size_t len = 0; len < min_len[t]; len++)
            CHECK(decode(&f, buf, len, &why) == STS_ERR_TRUNCATED && why == STS_REASON_TRUNCATED);
        CHECK(decode(&f, buf, min_len[t], &why) == 0);
    }

    /* Every type byte outside the table, and the reserved AUTHACK. */
    int unknown = 0;
    for (int t = 0; t < 256; t++) {
        buf[1] = (uint8_t)t;
        if (decode(&f, buf, 40, &why) == STS_ERR_INVALID && why == STS_REASON_UNKNOWN_TYPE)
            unknown++;
    }
    CHECK(unknown == 256 - 7);

    /* COOKIE: exactly its cookie. */
    buf[1] = STS_FRAME_COOKIE;
    CHECK(decode(&f, buf, 2 + STS_FRAME_COOKIE_LEN, &why) == 0 && f.body_len == STS_FRAME_COOKIE_LEN);
    CHECK(decode(&f, buf, 1 + STS_FRAME_COOKIE_LEN, &why) != 0 && why == STS_REASON_MALFORMED);

    /* Every version but 1. */
    int bad_version = 0;
    buf[1] = STS_FRAME_ENC;
    for (int v = 0; v < 256; v++) {
        buf[0] = (uint8_t)v;
        if (decode(&f, buf, 40, &why) == STS_ERR_UNSUPPORTED && why == STS_REASON_BAD_VERSION)
            bad_version++;
    }
    CHECK(bad_version == 255);
    buf[0] = STS_FRAME_VERSION;

    /* Size limits: the caller's, the default, and the handshake bound. */
    CHECK(sts_frame_decode(&f, buf, 40, 39, &why) == STS_ERR_TOO_BIG && why == STS_REASON_TOO_BIG);
    CHECK(sts_frame_decode(&f, buf, 40, 40, &why) == 0);
    CHECK(sts_frame_decode(&f, buf, STS_FRAME_MAX_DEFAULT + 1, 0, &why) == STS_ERR_TOO_BIG);
    buf[1] = STS_FRAME_INITACK;
    CHECK(decode(&f, buf, STS_FRAME_HANDSHAKE_MAX, &why) == 0);
    CHECK(decode(&f, buf, STS_FRAME_HANDSHAKE_MAX + 1, &why) == STS_ERR_TOO_BIG);
}

static void test_encoders(void)
{
    uint8_t out[STS_FRAME_SEALED_HEADER_LEN];
    const uint8_t expect[] = { 0x01, 0x06, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10 };
    CHECK(sts_frame_put_header(out, STS_FRAME_RESYNC) == 2 && out[0] == 1 && out[1] == 7);
    CHECK(sts_frame_put_sealed_header(out, STS_FRAME_KILL, 0xfedcba9876543210ull) == 10);
    CHECK_MEM(out, expect, sizeof expect);
    CHECK(STS_FRAME_OVERHEAD == 26);
    /* The default limit lets a whole Noise transport message through. */
    CHECK(STS_FRAME_MAX_DEFAULT - STS_FRAME_SEALED_HEADER_LEN == 65535);
}

static void test_suites(void)
{
    enum sts_pattern p;
    enum sts_suite s;
    char name[48];
    CHECK(sts_frame_suite_byte(STS_PATTERN_XX, STS_SUITE_CHACHAPOLY_SHA256) == 0x21);
    CHECK(sts_frame_suite_byte(STS_PATTERN_IK, STS_SUITE_AESGCM_SHA512) == 0x34);
    CHECK(sts_frame_suite_parse(0x12, &p, &s) == 0 && p == STS_PATTERN_NN &&
          s == STS_SUITE_AESGCM_SHA256);
    int valid = 0;
    for (int b = 0; b < 256; b++)
        valid += sts_frame_suite_parse((uint8_t)b, &p, &s) == 0;
    CHECK(valid == 3 * 4);
    CHECK(sts_frame_protocol_name(0x21, name, sizeof name) == 0);
    CHECK(strcmp(name, "Noise_XX_25519_ChaChaPoly_SHA256") == 0);
    CHECK(sts_frame_protocol_name(0x13, name, sizeof name) == 0);
    CHECK(strcmp(name, "Noise_NN_25519_ChaChaPoly_SHA512") == 0);
    CHECK(sts_frame_protocol_name(0x34, name, sizeof name) == 0);
    CHECK(strcmp(name, "Noise_IK_25519_AESGCM_SHA512") == 0);
    CHECK(sts_frame_protocol_name(0x41, name, sizeof name) == STS_ERR_UNSUPPORTED);
    CHECK(sts_frame_protocol_name(0x21, name, 10) == STS_ERR_TOO_BIG);
    CHECK(sts_frame_pattern_messages(STS_PATTERN_XX) == 3);
    CHECK(sts_frame_pattern_messages(STS_PATTERN_IK) == 2);
}

static void test_prologue(void)
{
    const uint8_t expect[] = { 's', 't', 's', '/', '1', 0, 0, 4, 'u', 'p', '/', '1',
                               0, 6, 'd', 'o', 'w', 'n', '/', '1', 0x31 };
    uint8_t out[sizeof expect];
    CHECK(sts_frame_prologue_len(4, 6) == sizeof expect);
    CHECK(sts_frame_prologue(out, (const uint8_t *)"up/1", 4, (const uint8_t *)"down/1", 6,
                             0x31) == 0);
    CHECK_MEM(out, expect, sizeof expect);
    CHECK(sts_frame_prologue(out, out, 0x10000, out, 0, 0x21) == STS_ERR_TOO_BIG);
}

static void test_reason_names(void)
{
    CHECK(strcmp(sts_reason_name(STS_REASON_REPLAY), "replay") == 0);
    CHECK(strcmp(sts_reason_name(STS_REASON_STALE_EPOCH), "stale_epoch") == 0);
    CHECK(strcmp(sts_reason_name(STS_REASON_COUNT), "unknown") == 0);
    CHECK(sts_reason_error(STS_REASON_AUTH) == STS_ERR_AUTH);
    CHECK(sts_reason_error(STS_REASON_NONE) == 0);
    CHECK(strcmp(sts_reason_name(STS_REASON_INTERNAL), "internal") == 0);
    /* Every reason has a name of its own and a failure code (stats and
     * events are keyed by the name). */
    for (int r = 1; r < STS_REASON_COUNT; r++) {
        const char *name = sts_reason_name((enum sts_reason)r);
        CHECK(name && strcmp(name, "unknown") != 0);
        CHECK(sts_reason_error((enum sts_reason)r) < 0);
        for (int q = 0; q < r; q++)
            CHECK(strcmp(name, sts_reason_name((enum sts_reason)q)) != 0);
    }
}

int main(void)
{
    test_layouts();
    test_rejections();
    test_encoders();
    test_suites();
    test_prologue();
    test_reason_names();
    return unit_done();
}
