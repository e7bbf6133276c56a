/* Sealed one-way readings: the header layout, and one message of a one-way
 * Noise pattern under a prologue that binds the header and the topic. */
#include "proto/sealed.h"
#include "crypto/hash.h"
#include "crypto/x25519.h"
#include "proto/noise.h"
#include "util/error.h"

#include <mbedtls/platform_util.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABEL "sts-lua sealed 1"
#define LABEL_LEN (sizeof LABEL - 1)
#define OFF_PATTERN 2
#define OFF_SUITE 3
#define OFF_KEY_ID 4
#define HEADER_LEN_NX (OFF_KEY_ID + STS_FRAME_COUNTER_LEN)
#define HEADER_LEN_K (HEADER_LEN_NX + STS_SEALED_KEY_ID_LEN)
#define TOPIC_MAX 0xffff
#define NAME_MAX_LEN 48

static int known_pattern(unsigned p)
{
    return p == STS_SEALED_N || p == STS_SEALED_K || p == STS_SEALED_X;
}

static int known_suite(unsigned s)
{
    return s >= STS_SUITE_CHACHAPOLY_SHA256 && s <= STS_SUITE_AESGCM_SHA512;
}

static size_t header_len(enum sts_sealed_pattern p)
{
    return p == STS_SEALED_K ? HEADER_LEN_K : HEADER_LEN_NX;
}

/* The Noise message: e, in X the encrypted s, and the payload's tag. */
static size_t message_overhead(enum sts_sealed_pattern p)
{
    size_t s = p == STS_SEALED_X ? STS_NOISE_KEY_LEN + STS_NOISE_TAG_LEN : 0;
    return STS_NOISE_KEY_LEN + s + STS_NOISE_TAG_LEN;
}

size_t sts_sealed_overhead(enum sts_sealed_pattern p)
{
    return known_pattern(p) ? header_len(p) + message_overhead(p) : 0;
}

int sts_sealed_key_id(const uint8_t pub[STS_X25519_LEN], uint8_t id[STS_SEALED_KEY_ID_LEN])
{
    uint8_t digest[STS_SHA256_LEN];
    int err = sts_hash(STS_SHA256, pub, STS_X25519_LEN, digest);
    if (!err)
        memcpy(id, digest, STS_SEALED_KEY_ID_LEN);
    mbedtls_platform_zeroize(digest, sizeof digest);
    return err;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

enum sts_reason sts_sealed_parse(const uint8_t *frame, size_t len, struct sts_sealed_header *h)
{
    memset(h, 0, sizeof *h);
    if (len < STS_FRAME_HEADER_LEN)
        return STS_REASON_TRUNCATED;
    if (frame[0] != STS_FRAME_VERSION)
        return STS_REASON_BAD_VERSION;
    if (frame[1] != STS_FRAME_SEALED)
        return STS_REASON_UNKNOWN_TYPE;
    if (len < OFF_KEY_ID)
        return STS_REASON_TRUNCATED;
    if (!known_pattern(frame[OFF_PATTERN]) || !known_suite(frame[OFF_SUITE]))
        return STS_REASON_SUITE;
    enum sts_sealed_pattern p = (enum sts_sealed_pattern)frame[OFF_PATTERN];
    size_t hlen = header_len(p);
    if (len < hlen)
        return STS_REASON_TRUNCATED;
    uint64_t counter = get_be64(frame + hlen - STS_FRAME_COUNTER_LEN);
    if (counter == UINT64_MAX || len - hlen < message_overhead(p))
        return STS_REASON_MALFORMED;
    if (len - hlen - message_overhead(p) > STS_SEALED_PAYLOAD_MAX)
        return STS_REASON_TOO_BIG;
    h->pattern = (uint8_t)p;
    h->suite = frame[OFF_SUITE];
    if (p == STS_SEALED_K)
        memcpy(h->key_id, frame + OFF_KEY_ID, STS_SEALED_KEY_ID_LEN);
    h->counter = counter;
    h->len = hlen;
    return STS_REASON_NONE;
}

/* Writes the header of h at out; h->len bytes. */
static void put_header(uint8_t *out, const struct sts_sealed_header *h)
{
    sts_frame_put_header(out, (enum sts_frame_type)STS_FRAME_SEALED);
    out[OFF_PATTERN] = h->pattern;
    out[OFF_SUITE] = h->suite;
    if (h->pattern == STS_SEALED_K)
        memcpy(out + OFF_KEY_ID, h->key_id, STS_SEALED_KEY_ID_LEN);
    put_be64(out + h->len - STS_FRAME_COUNTER_LEN, h->counter);
}

/* "Noise_<N|K|X>_25519_<cipher>_<hash>". The suite's part is sts_frame's
 * (its name for NN with this suite), so the suite names live in one place. */
static int protocol_name(enum sts_sealed_pattern p, enum sts_suite s, char out[NAME_MAX_LEN])
{
    static const char letters[] = { [STS_SEALED_N] = 'N', [STS_SEALED_K] = 'K',
                                    [STS_SEALED_X] = 'X' };
    static const char nn_prefix[] = "Noise_NN_";
    char nn[NAME_MAX_LEN];
    int err = sts_frame_protocol_name(sts_frame_suite_byte(STS_PATTERN_NN, s), nn, sizeof nn);
    if (err)
        return err;
    int n = snprintf(out, NAME_MAX_LEN, "Noise_%c_%s", letters[p], nn + sizeof nn_prefix - 1);
    return n < 0 || n >= NAME_MAX_LEN ? STS_ERR_TOO_BIG : 0;
}

/* A HandshakeState for the frame whose header is at header (h->len bytes):
 * its prologue is LABEL || header || u16 len(topic) || topic. */
static int open_noise(struct sts_noise_hs **hs, const struct sts_sealed_header *h,
                      const uint8_t *header, const char *topic, int initiator,
                      const struct sts_noise_keys *keys)
{
    char name[NAME_MAX_LEN];
    size_t tlen = strlen(topic);
    *hs = NULL;
    if (tlen > TOPIC_MAX)
        return STS_ERR_TOO_BIG;
    int err = protocol_name((enum sts_sealed_pattern)h->pattern, (enum sts_suite)h->suite, name);
    if (err)
        return err;
    size_t plen = LABEL_LEN + h->len + 2 + tlen;
    uint8_t *prologue = malloc(plen);
    if (!prologue)
        return STS_ERR_NOMEM;
    uint8_t *p = prologue;
    memcpy(p, LABEL, LABEL_LEN);
    p += LABEL_LEN;
    memcpy(p, header, h->len);
    p += h->len;
    *p++ = (uint8_t)(tlen >> 8);
    *p++ = (uint8_t)tlen;
    memcpy(p, topic, tlen);
    err = sts_noise_hs_new(hs, name, initiator, prologue, plen, keys);
    free(prologue);
    return err;
}

/* The sender's header: its key id (K) from s_pub, or from s_priv when s_pub
 * is NULL; *pub_out then holds the key computed. */
static int sender_header(struct sts_sealed_header *h, enum sts_sealed_pattern pattern,
                         enum sts_suite suite, const uint8_t *s_priv, const uint8_t *s_pub,
                         uint64_t counter)
{
    uint8_t pub[STS_X25519_LEN];
    int err = 0;
    memset(h, 0, sizeof *h);
    h->pattern = (uint8_t)pattern;
    h->suite = (uint8_t)suite;
    h->counter = counter;
    h->len = header_len(pattern);
    if (pattern != STS_SEALED_K)
        return 0;
    if (!s_pub) {
        err = sts_x25519_public(pub, s_priv);
        s_pub = pub;
    }
    if (!err)
        err = sts_sealed_key_id(s_pub, h->key_id);
    mbedtls_platform_zeroize(pub, sizeof pub);
    return err;
}

static int seal_args_ok(enum sts_sealed_pattern pattern, enum sts_suite suite,
                        const uint8_t *s_priv, const uint8_t *rs_pub, uint64_t counter,
                        const char *topic, const uint8_t *pt, size_t ptlen)
{
    return known_pattern(pattern) && known_suite(suite) && rs_pub && topic &&
           (pattern == STS_SEALED_N || s_priv) && counter != UINT64_MAX && (pt || ptlen == 0);
}

int sts_sealed_seal(enum sts_sealed_pattern pattern, enum sts_suite suite, const uint8_t *s_priv,
                    const uint8_t *s_pub, const uint8_t rs_pub[STS_X25519_LEN], uint64_t counter,
                    const char *topic, const uint8_t *pt, size_t ptlen, uint8_t *out, size_t cap,
                    size_t *outlen)
{
    *outlen = 0;
    if (!seal_args_ok(pattern, suite, s_priv, rs_pub, counter, topic, pt, ptlen))
        return STS_ERR_INVALID;
    if (ptlen > STS_SEALED_PAYLOAD_MAX || cap < ptlen + sts_sealed_overhead(pattern))
        return STS_ERR_TOO_BIG;

    struct sts_sealed_header h;
    int err = sender_header(&h, pattern, suite, s_priv, s_pub, counter);
    if (err)
        return err;
    put_header(out, &h);
    struct sts_noise_keys keys = {
        .s = pattern == STS_SEALED_N ? NULL : s_priv,
        .s_pub = pattern == STS_SEALED_N ? NULL : s_pub,
        .rs = rs_pub,
    };
    struct sts_noise_hs *hs;
    size_t mlen = 0;
    err = open_noise(&hs, &h, out, topic, 1, &keys);
    if (!err)
        err = sts_noise_hs_write(hs, pt, ptlen, out + h.len, cap - h.len, &mlen);
    sts_noise_hs_free(hs);
    if (err) {
        mbedtls_platform_zeroize(out, cap);
        return err;
    }
    *outlen = h.len + mlen;
    return 0;
}

static int same_header(const struct sts_sealed_header *a, const struct sts_sealed_header *b)
{
    return a->pattern == b->pattern && a->suite == b->suite && a->counter == b->counter &&
           a->len == b->len && memcmp(a->key_id, b->key_id, sizeof a->key_id) == 0;
}

/* The reason for a failed Noise read: a bad tag or key is the input's
 * forgery; our own failures are internal. */
static enum sts_reason read_reason(int err)
{
    switch (err) {
    case STS_ERR_AUTH:
    case STS_ERR_KEY: return STS_REASON_AUTH;
    case STS_ERR_NOMEM:
    case STS_ERR_CRYPTO:
    case STS_ERR_RNG: return STS_REASON_INTERNAL;
    default: return STS_REASON_MALFORMED;
    }
}

/* Reads the frame's Noise message into out; 0 or the sts_error. */
static int read_message(const uint8_t *gw_priv, const uint8_t *gw_pub,
                        const struct sts_sealed_header *h, const uint8_t *frame, size_t len,
                        const uint8_t *sender_pub, const char *topic, uint8_t *out,
                        size_t *ptlen, uint8_t sender_out[STS_X25519_LEN])
{
    struct sts_noise_keys keys = {
        .s = gw_priv,
        .s_pub = gw_pub,
        .rs = h->pattern == STS_SEALED_N ? NULL : sender_pub,
    };
    struct sts_noise_hs *hs;
    int err = open_noise(&hs, h, frame, topic, 0, &keys);
    if (!err)
        err = sts_noise_hs_read(hs, frame + h->len, len - h->len, out, len - h->len, ptlen);
    if (!err && sts_noise_hs_action(hs) != STS_NOISE_SPLIT)
        err = STS_ERR_STATE; /* not one-way: cannot happen for N, K, X */
    const uint8_t *rs = err ? NULL : sts_noise_hs_remote_static(hs);
    if (sender_out) {
        if (rs && h->pattern != STS_SEALED_N)
            memcpy(sender_out, rs, STS_X25519_LEN);
        else
            memset(sender_out, 0, STS_X25519_LEN);
    }
    sts_noise_hs_free(hs);
    return err;
}

enum sts_reason sts_sealed_open(const uint8_t gw_priv[STS_X25519_LEN], const uint8_t *gw_pub,
                                const struct sts_sealed_header *h, const uint8_t *frame, size_t len,
                                const uint8_t *sender_pub, const char *topic, uint8_t *out,
                                size_t *ptlen, uint8_t sender_out[STS_X25519_LEN])
{
    struct sts_sealed_header mine;
    *ptlen = 0;
    if (sender_out)
        memset(sender_out, 0, STS_X25519_LEN);
    /* The layout is checked again on these very bytes: h is trusted for nothing. */
    if (sts_sealed_parse(frame, len, &mine) != STS_REASON_NONE || !same_header(&mine, h) ||
        !topic || strlen(topic) > TOPIC_MAX)
        return STS_REASON_MALFORMED;
    if (!gw_priv || (mine.pattern == STS_SEALED_K && !sender_pub))
        return STS_REASON_INTERNAL;
    int err = read_message(gw_priv, gw_pub, &mine, frame, len, sender_pub, topic, out, ptlen,
                           sender_out);
    if (!err)
        return STS_REASON_NONE;
    mbedtls_platform_zeroize(out, len - mine.len);
    *ptlen = 0;
    return read_reason(err);
}
