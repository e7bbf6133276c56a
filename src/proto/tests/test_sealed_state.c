/* Sealed readings' state files: the exact bytes of a small sealer and replay
 * state written out here from the layout of docs/PROTOCOL.md 15.6 (their
 * SHA-256 computed apart, by another implementation), round trips, and every
 * refusal with its message: each truncation, each flipped byte, another
 * version, another kind, a wrong length, too many senders, a key twice. */
#include "proto/sealed_state.h"
#include "util/error.h"
#include "util/unit.h"

#include <mbedtls/sha256.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (44 + 4 * 176)

/* "STSSC" 0 1 0, bound 0x0123456789abcdef, SHA-256 of the 16 bytes before it. */
static const uint8_t SEALER_FILE[STS_SEALER_STATE_LEN] = {
    'S',  'T',  'S',  'S',  'C',  0x00, 0x01, 0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
    0xc0, 0xef, 0xe5, 0x09, 0x6c, 0xc2, 0xed, 0x8d, 0x5b, 0x71, 0xae, 0xbe, 0x36, 0xa4, 0xc2, 0xd8,
    0x37, 0xd3, 0xc7, 0xe8, 0x36, 0x0c, 0x74, 0x0e, 0x62, 0x08, 0xf7, 0x5e, 0x31, 0x1c, 0x6d, 0x7f,
};

/* SHA-256 of the replay state of one_sender() before its checksum. */
static const uint8_t ONE_SENDER_DIGEST[32] = {
    0x2f, 0xdf, 0x15, 0x7b, 0x39, 0x18, 0x1e, 0x9f, 0x53, 0x99, 0xbc, 0x0c, 0xef, 0x48, 0x89, 0x36,
    0x1a, 0x62, 0x57, 0x19, 0xf4, 0x6f, 0x43, 0x59, 0x63, 0xac, 0xb4, 0x24, 0xe3, 0x2a, 0x9a, 0x3a,
};

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

/* key 00 01 .. 1f, top 0x1122334455667788, word j = j x 0x0101010101010101 */
static void one_sender(struct sts_sealed_sender *s)
{
    for (int i = 0; i < 32; i++) s->pub[i] = (uint8_t)i;
    s->window.top = 0x1122334455667788u;
    for (int j = 0; j < STS_REPLAY_WORDS; j++) s->window.bits[j] = (uint64_t)j * 0x0101010101010101u;
}

/* The replay state of one_sender(), from the layout. */
static size_t one_sender_file(uint8_t *f)
{
    memcpy(f, "STSRW\0\1\0", 8);
    put_be(f + 8, 1, 4);
    for (int i = 0; i < 32; i++) f[12 + i] = (uint8_t)i;
    put_be(f + 44, 0x1122334455667788u, 8);
    for (int j = 0; j < 17; j++) put_be(f + 52 + 8 * j, (uint64_t)j * 0x0101010101010101u, 8);
    memcpy(f + 188, ONE_SENDER_DIGEST, 32);
    return 220;
}

/* Replaces the last 32 bytes of f with the SHA-256 of those before. */
static void rehash(uint8_t *f, size_t len)
{
    CHECK(mbedtls_sha256_ret(f, len - 32, f + len - 32, 0) == 0);
}

static void distinct_senders(struct sts_sealed_sender *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        memset(&s[i], 0, sizeof s[i]);
        for (int b = 0; b < 32; b++) s[i].pub[b] = (uint8_t)(7 * i + 3 * b + 1);
        s[i].window.top = UINT64_MAX - i;
        for (int j = 0; j < STS_REPLAY_WORDS; j++) s[i].window.bits[j] = ((uint64_t)i << 32) ^ (uint64_t)j << 7;
    }
}

static int sealer_refusal(const uint8_t *f, size_t len, const char *want)
{
    uint64_t bound = 42;
    const char *why = NULL;
    int rc = sts_sealer_state_decode(f, len, &bound, &why);
    return rc == STS_ERR_PARSE && bound == 42 && why && strcmp(why, want) == 0;
}

static int replay_refusal(const uint8_t *f, size_t len, size_t max, const char *want)
{
    struct sts_sealed_sender *s = (struct sts_sealed_sender *)1;
    size_t n = 9;
    const char *why = NULL;
    int rc = sts_replay_state_decode(f, len, max, &s, &n, &why);
    return rc == STS_ERR_PARSE && s == NULL && n == 0 && why && strcmp(why, want) == 0;
}

static void test_sealer_bytes(void)
{
    uint8_t f[STS_SEALER_STATE_LEN];
    uint64_t bound = 0;
    const char *why = NULL;
    CHECK(sts_sealer_state_encode(0x0123456789abcdefu, f) == 0);
    CHECK_MEM(f, SEALER_FILE, sizeof f);
    CHECK(sts_sealer_state_decode(SEALER_FILE, sizeof SEALER_FILE, &bound, &why) == 0);
    CHECK(bound == 0x0123456789abcdefu);

    static const uint64_t bounds[] = { 0, 1, 16, (uint64_t)1 << 63, UINT64_MAX };
    for (size_t i = 0; i < sizeof bounds / sizeof *bounds; i++) {
        CHECK(sts_sealer_state_encode(bounds[i], f) == 0);
        CHECK(sts_sealer_state_decode(f, sizeof f, &bound, &why) == 0 && bound == bounds[i]);
    }
}

static void test_sealer_refusals(void)
{
    uint8_t f[STS_SEALER_STATE_LEN + 1];
    for (size_t len = 0; len < STS_SEALER_STATE_LEN; len++)
        CHECK(sealer_refusal(SEALER_FILE, len, len < 40 ? "corrupt sealer state file: truncated"
                                                        : "corrupt sealer state file: checksum mismatch"));
    for (size_t i = 0; i < STS_SEALER_STATE_LEN; i++) {
        memcpy(f, SEALER_FILE, STS_SEALER_STATE_LEN);
        f[i] ^= 0xff;
        CHECK(sealer_refusal(f, STS_SEALER_STATE_LEN,
                             i < 6   ? "not a sealer state file"
                             : i < 8 ? "corrupt sealer state file: an unknown version"
                                     : "corrupt sealer state file: checksum mismatch"));
    }
    memcpy(f, SEALER_FILE, STS_SEALER_STATE_LEN);
    f[7] = 0x01; /* version 1.1, with a checksum that matches it */
    rehash(f, STS_SEALER_STATE_LEN);
    CHECK(sealer_refusal(f, STS_SEALER_STATE_LEN, "corrupt sealer state file: an unknown version"));

    /* longer than a sealer state, whatever it holds */
    memcpy(f, SEALER_FILE, STS_SEALER_STATE_LEN);
    f[STS_SEALER_STATE_LEN] = '\n';
    CHECK(sealer_refusal(f, sizeof f, "not a sealer state file"));

    /* a body of 0 or 7 bytes under a good checksum */
    memcpy(f, SEALER_FILE, 8);
    rehash(f, 40);
    CHECK(sealer_refusal(f, 40, "corrupt sealer state file: wrong length"));
    memcpy(f, SEALER_FILE, STS_SEALER_STATE_LEN);
    rehash(f, 47);
    CHECK(sealer_refusal(f, 47, "corrupt sealer state file: wrong length"));

    /* the other kind */
    uint8_t replay[MAX_FILE];
    size_t len = one_sender_file(replay);
    CHECK(sealer_refusal(replay, 44, "not a sealer state file"));
    CHECK(sealer_refusal(replay, len, "not a sealer state file"));
    CHECK(sealer_refusal((const uint8_t *)"STS", 3, "corrupt sealer state file: truncated"));
    CHECK(sealer_refusal((const uint8_t *)"STSR", 4, "not a sealer state file"));
}

static void test_replay_bytes(void)
{
    struct sts_sealed_sender s, *got;
    uint8_t want[MAX_FILE], f[MAX_FILE];
    size_t n, len = one_sender_file(want);
    const char *why = NULL;

    CHECK(sts_replay_state_len(0) == 44);
    CHECK(sts_replay_state_len(1) == 220);
    /* The largest count whose length fits in a size_t gets its length, the
     * next one SIZE_MAX. Where that edge lies depends on SIZE_MAX % 176: on
     * 64 bits SIZE_MAX / 176 senders do not fit, on 32 bits they do. */
    size_t most = (SIZE_MAX - 44) / 176;
    CHECK(sts_replay_state_len(most) == 44 + most * 176);
    CHECK(SIZE_MAX - sts_replay_state_len(most) < 176);
    CHECK(sts_replay_state_len(most + 1) == SIZE_MAX);
    CHECK(sts_replay_state_len(SIZE_MAX) == SIZE_MAX);
    one_sender(&s);
    CHECK(sts_replay_state_encode(&s, 1, f, sizeof f) == 0);
    CHECK_MEM(f, want, len);
    CHECK(sts_replay_state_encode(&s, 1, f, len - 1) == STS_ERR_TOO_BIG);
    CHECK(sts_replay_state_decode(want, len, 1, &got, &n, &why) == 0);
    CHECK(n == 1 && got && memcmp(got, &s, sizeof s) == 0);
    free(got);

    /* no sender: magic, n = 0, checksum */
    CHECK(sts_replay_state_encode(NULL, 0, f, sizeof f) == 0);
    CHECK_MEM(f, "STSRW\0\1\0\0\0\0\0", 12);
    memcpy(want, f, 12);
    rehash(want, 44);
    CHECK_MEM(f, want, 44);
    got = (struct sts_sealed_sender *)1;
    CHECK(sts_replay_state_decode(f, 44, 0, &got, &n, &why) == 0 && n == 0 && got == NULL);
}

static void test_replay_round_trip(void)
{
    struct sts_sealed_sender s[4], *got;
    uint8_t f[MAX_FILE], again[MAX_FILE];
    const char *why = NULL;
    size_t n;
    distinct_senders(s, 4);
    for (size_t count = 0; count <= 4; count++) {
        size_t len = sts_replay_state_len(count);
        CHECK(sts_replay_state_encode(s, count, f, sizeof f) == 0);
        CHECK(sts_replay_state_decode(f, len, count, &got, &n, &why) == 0 && n == count);
        CHECK(count == 0 || memcmp(got, s, count * sizeof *s) == 0);
        CHECK(sts_replay_state_encode(got, n, again, sizeof again) == 0);
        CHECK_MEM(again, f, len);
        free(got);
    }
}

static void test_replay_refusals(void)
{
    struct sts_sealed_sender s[3];
    uint8_t good[MAX_FILE], f[MAX_FILE + 1];
    size_t len = one_sender_file(good);

    for (size_t cut = 0; cut < len; cut++)
        CHECK(replay_refusal(good, cut, 1, cut < 40 ? "corrupt replay state file: truncated"
                                                    : "corrupt replay state file: checksum mismatch"));
    memcpy(f, good, len);
    f[len] = 0;
    CHECK(replay_refusal(f, len + 1, 1, "corrupt replay state file: checksum mismatch"));
    for (size_t i = 0; i < len; i++) {
        memcpy(f, good, len);
        f[i] ^= 0xff;
        CHECK(replay_refusal(f, len, 1,
                             i < 6   ? "not a replay state file"
                             : i < 8 ? "corrupt replay state file: an unknown version"
                                     : "corrupt replay state file: checksum mismatch"));
    }
    memcpy(f, good, len);
    f[6] = 0x02; /* version 2.0 */
    rehash(f, len);
    CHECK(replay_refusal(f, len, 1, "corrupt replay state file: an unknown version"));
    CHECK(replay_refusal(SEALER_FILE, sizeof SEALER_FILE, 1, "not a replay state file"));

    /* counts that do not match the records, under a good checksum */
    memcpy(f, good, len);
    put_be(f + 8, 2, 4);
    rehash(f, len);
    CHECK(replay_refusal(f, len, 5, "corrupt replay state file: wrong length"));
    put_be(f + 8, 0, 4);
    rehash(f, len);
    CHECK(replay_refusal(f, len, 5, "corrupt replay state file: wrong length"));
    memcpy(f, good, 11);
    rehash(f, 43);
    CHECK(replay_refusal(f, 43, 5, "corrupt replay state file: wrong length"));
    memcpy(f, good, len);
    rehash(f, len + 1);
    CHECK(replay_refusal(f, len + 1, 5, "corrupt replay state file: wrong length"));

    distinct_senders(s, 3);
    CHECK(sts_replay_state_encode(s, 3, f, sizeof f) == 0);
    CHECK(replay_refusal(f, sts_replay_state_len(3), 2, "corrupt replay state file: more senders than max_senders"));
    memcpy(s[2].pub, s[0].pub, sizeof s[0].pub); /* other windows, one key */
    CHECK(sts_replay_state_encode(s, 3, f, sizeof f) == 0);
    CHECK(replay_refusal(f, sts_replay_state_len(3), 3, "corrupt replay state file: a sender twice"));
}

int main(void)
{
    test_sealer_bytes();
    test_sealer_refusals();
    test_replay_bytes();
    test_replay_round_trip();
    test_replay_refusals();
    return unit_done();
}
