#include "proto/sts_frame.h"
#include "util/error.h"

#include <stdio.h>
#include <string.h>

/* Each reason's name and the sts_error a function returns for it. */
static const struct {
    const char *name;
    int error;
} reasons[STS_REASON_COUNT] = {
    [STS_REASON_NONE] = { "none", STS_OK },
    [STS_REASON_MALFORMED] = { "malformed", STS_ERR_INVALID },
    [STS_REASON_BAD_VERSION] = { "bad_version", STS_ERR_UNSUPPORTED },
    [STS_REASON_UNKNOWN_TYPE] = { "unknown_type", STS_ERR_INVALID },
    [STS_REASON_TRUNCATED] = { "truncated", STS_ERR_TRUNCATED },
    [STS_REASON_TOO_BIG] = { "too_big", STS_ERR_TOO_BIG },
    [STS_REASON_REPLAY] = { "replay", STS_ERR_REPLAY },
    [STS_REASON_AUTH] = { "auth", STS_ERR_AUTH },
    [STS_REASON_STATE] = { "state", STS_ERR_STATE },
    [STS_REASON_UNTRUSTED] = { "untrusted", STS_ERR_KEY },
    [STS_REASON_SUITE] = { "suite", STS_ERR_UNSUPPORTED },
    [STS_REASON_STALE_EPOCH] = { "stale_epoch", STS_ERR_EXPIRED },
    [STS_REASON_TIMEOUT] = { "timeout", STS_ERR_EXPIRED },
    [STS_REASON_INTERNAL] = { "internal", STS_ERR_CRYPTO },
};

const char *sts_reason_name(enum sts_reason r)
{
    return (unsigned)r < STS_REASON_COUNT ? reasons[r].name : "unknown";
}

int sts_reason_error(enum sts_reason r)
{
    return (unsigned)r < STS_REASON_COUNT ? reasons[r].error : STS_ERR_INVALID;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static int refuse(enum sts_reason *why, enum sts_reason r)
{
    *why = r;
    return sts_reason_error(r);
}

/* The body rules per type: the shortest body, and whether the handshake
 * size limit applies. */
static int decode_body(struct sts_frame *f, const uint8_t *body, size_t len, enum sts_reason *why)
{
    switch (f->type) {
    case STS_FRAME_INITREQ:
        if (len < 1)
            return refuse(why, STS_REASON_TRUNCATED);
        f->suite = body[0];
        f->body = body + 1;
        f->body_len = len - 1;
        return 0;
    case STS_FRAME_INITACK:
    case STS_FRAME_AUTHREQ:
        if (len < 1)
            return refuse(why, STS_REASON_TRUNCATED);
        return 0;
    case STS_FRAME_ENC:
    case STS_FRAME_KILL:
        if (len < STS_FRAME_COUNTER_LEN + STS_FRAME_TAG_LEN)
            return refuse(why, STS_REASON_TRUNCATED);
        f->counter = get_be64(body);
        f->body = body + STS_FRAME_COUNTER_LEN;
        f->body_len = len - STS_FRAME_COUNTER_LEN;
        return 0;
    case STS_FRAME_RESYNC:
        return len == 0 ? 0 : refuse(why, STS_REASON_MALFORMED);
    case STS_FRAME_COOKIE:
        return len == STS_FRAME_COOKIE_LEN ? 0 : refuse(why, STS_REASON_MALFORMED);
    case STS_FRAME_AUTHACK:
        break;
    }
    return refuse(why, STS_REASON_UNKNOWN_TYPE);
}

static int is_handshake(enum sts_frame_type t)
{
    return t == STS_FRAME_INITREQ || t == STS_FRAME_INITACK || t == STS_FRAME_AUTHREQ;
}

int sts_frame_decode(struct sts_frame *f, const uint8_t *buf, size_t len, size_t max_len,
                     enum sts_reason *why)
{
    memset(f, 0, sizeof *f);
    *why = STS_REASON_NONE;
    if (max_len == 0)
        max_len = STS_FRAME_MAX_DEFAULT;
    if (len > max_len)
        return refuse(why, STS_REASON_TOO_BIG);
    if (len < STS_FRAME_HEADER_LEN)
        return refuse(why, STS_REASON_TRUNCATED);
    if (buf[0] != STS_FRAME_VERSION)
        return refuse(why, STS_REASON_BAD_VERSION);
    f->type = (enum sts_frame_type)buf[1];
    if (is_handshake(f->type) && len > STS_FRAME_HANDSHAKE_MAX)
        return refuse(why, STS_REASON_TOO_BIG);
    f->body = buf + STS_FRAME_HEADER_LEN;
    f->body_len = len - STS_FRAME_HEADER_LEN;
    return decode_body(f, f->body, f->body_len, why);
}

size_t sts_frame_put_header(uint8_t *out, enum sts_frame_type type)
{
    out[0] = STS_FRAME_VERSION;
    out[1] = (uint8_t)type;
    return STS_FRAME_HEADER_LEN;
}

size_t sts_frame_put_sealed_header(uint8_t *out, enum sts_frame_type type, uint64_t counter)
{
    sts_frame_put_header(out, type);
    for (int i = 0; i < 8; i++)
        out[STS_FRAME_HEADER_LEN + i] = (uint8_t)(counter >> (56 - 8 * i));
    return STS_FRAME_SEALED_HEADER_LEN;
}

static const char *const pattern_names[] = { [STS_PATTERN_NN] = "NN", [STS_PATTERN_XX] = "XX",
                                             [STS_PATTERN_IK] = "IK" };
static const char *const suite_names[] = {
    [STS_SUITE_CHACHAPOLY_SHA256] = "ChaChaPoly_SHA256",
    [STS_SUITE_AESGCM_SHA256] = "AESGCM_SHA256",
    [STS_SUITE_CHACHAPOLY_SHA512] = "ChaChaPoly_SHA512",
    [STS_SUITE_AESGCM_SHA512] = "AESGCM_SHA512",
};

uint8_t sts_frame_suite_byte(enum sts_pattern pattern, enum sts_suite suite)
{
    return (uint8_t)((unsigned)pattern << 4 | (unsigned)suite);
}

int sts_frame_suite_parse(uint8_t suite_byte, enum sts_pattern *pattern, enum sts_suite *suite)
{
    unsigned p = suite_byte >> 4, s = suite_byte & 0x0f;
    if (p < STS_PATTERN_NN || p > STS_PATTERN_IK || s < STS_SUITE_CHACHAPOLY_SHA256 ||
        s > STS_SUITE_AESGCM_SHA512)
        return STS_ERR_UNSUPPORTED;
    *pattern = (enum sts_pattern)p;
    *suite = (enum sts_suite)s;
    return 0;
}

int sts_frame_pattern_messages(enum sts_pattern pattern)
{
    return pattern == STS_PATTERN_XX ? 3 : 2;
}

int sts_frame_protocol_name(uint8_t suite_byte, char *out, size_t out_max)
{
    enum sts_pattern p;
    enum sts_suite s;
    if (sts_frame_suite_parse(suite_byte, &p, &s))
        return STS_ERR_UNSUPPORTED;
    int n = snprintf(out, out_max, "Noise_%s_25519_%s", pattern_names[p], suite_names[s]);
    return n < 0 || (size_t)n >= out_max ? STS_ERR_TOO_BIG : 0;
}

static const uint8_t prologue_label[6] = { 's', 't', 's', '/', '1', 0x00 };

size_t sts_frame_prologue_len(size_t i2r_len, size_t r2i_len)
{
    return sizeof prologue_label + 2 + i2r_len + 2 + r2i_len + 1;
}

static uint8_t *put_topic(uint8_t *p, const uint8_t *topic, size_t len)
{
    *p++ = (uint8_t)(len >> 8);
    *p++ = (uint8_t)len;
    if (len)
        memcpy(p, topic, len);
    return p + len;
}

int sts_frame_prologue(uint8_t *out, const uint8_t *topic_i2r, size_t i2r_len,
                       const uint8_t *topic_r2i, size_t r2i_len, uint8_t suite_byte)
{
    if (i2r_len > 0xffff || r2i_len > 0xffff)
        return STS_ERR_TOO_BIG;
    memcpy(out, prologue_label, sizeof prologue_label);
    uint8_t *p = put_topic(out + sizeof prologue_label, topic_i2r, i2r_len);
    p = put_topic(p, topic_r2i, r2i_len);
    *p = suite_byte;
    return 0;
}
