/* The state files of sealed readings: magic, body, SHA-256 of what precedes
 * it. A buffer is checked in the order the messages promise: its kind (the
 * first 6 bytes, as far as it has them), its length, its version, its hash,
 * and only then the body's layout. */
#include "proto/sealed_state.h"
#include "crypto/hash.h"
#include "util/error.h"
#include "util/wire.h"

#include <mbedtls/constant_time.h>

#include <stdlib.h>
#include <string.h>

#define MAGIC_LEN 8  /* 6 bytes naming the kind, then the version */
#define VERSION_AT 6
#define ENVELOPE_LEN (MAGIC_LEN + STS_SHA256_LEN)
#define REPLAY_HEAD_LEN (MAGIC_LEN + 4)

/* A kind of state file: its magic and its refusals, each naming it. */
struct kind {
    uint8_t magic[MAGIC_LEN];
    const char *foreign, *truncated, *version, *unhashed, *mismatch, *length;
};

#define REFUSALS(name)                                                                              \
    "not a " name " state file", "corrupt " name " state file: truncated",                          \
        "corrupt " name " state file: an unknown version",                                          \
        "corrupt " name " state file: its checksum could not be computed",                          \
        "corrupt " name " state file: checksum mismatch", "corrupt " name " state file: wrong length"

static const struct kind SEALER = { { 'S', 'T', 'S', 'S', 'C', 0x00, 0x01, 0x00 }, REFUSALS("sealer") };
static const struct kind REPLAY = { { 'S', 'T', 'S', 'R', 'W', 0x00, 0x01, 0x00 }, REFUSALS("replay") };

/* ---- writing ---------------------------------------------------------------------- */

/* Appends the hash of everything written so far, which must have fitted. */
static int put_checksum(struct sts_wire_writer *w)
{
    uint8_t digest[STS_SHA256_LEN];
    if (w->overflow || sts_hash(STS_SHA256, w->out, w->len, digest) != 0) return STS_ERR_CRYPTO;
    sts_wire_put(w, digest, sizeof digest);
    return w->overflow ? STS_ERR_CRYPTO : 0;
}

int sts_sealer_state_encode(uint64_t bound, uint8_t out[STS_SEALER_STATE_LEN])
{
    struct sts_wire_writer w;
    sts_wire_writer_init(&w, out, STS_SEALER_STATE_LEN);
    sts_wire_put(&w, SEALER.magic, MAGIC_LEN);
    sts_wire_put_u64(&w, bound);
    return put_checksum(&w);
}

size_t sts_replay_state_len(size_t n)
{
    if (n > (SIZE_MAX - REPLAY_HEAD_LEN - STS_SHA256_LEN) / STS_SEALED_SENDER_LEN) return SIZE_MAX;
    return REPLAY_HEAD_LEN + n * STS_SEALED_SENDER_LEN + STS_SHA256_LEN;
}

static void put_sender(struct sts_wire_writer *w, const struct sts_sealed_sender *s)
{
    sts_wire_put(w, s->pub, sizeof s->pub);
    sts_wire_put_u64(w, s->window.top);
    for (int j = 0; j < STS_REPLAY_WORDS; j++) sts_wire_put_u64(w, s->window.bits[j]);
}

int sts_replay_state_encode(const struct sts_sealed_sender *senders, size_t n, uint8_t *out, size_t cap)
{
    struct sts_wire_writer w;
    if (n > UINT32_MAX || cap < sts_replay_state_len(n)) return STS_ERR_TOO_BIG;
    sts_wire_writer_init(&w, out, cap);
    sts_wire_put(&w, REPLAY.magic, MAGIC_LEN);
    sts_wire_put_u32(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) put_sender(&w, &senders[i]);
    return put_checksum(&w);
}

/* ---- reading ---------------------------------------------------------------------- */

static int refuse(const char **why, const char *reason)
{
    *why = reason;
    return STS_ERR_PARSE;
}

/* Checks kind, length, version and hash; the body is what lies between the
 * magic and the hash. */
static int open_envelope(const struct kind *k, const uint8_t *buf, size_t len, struct sts_wire_reader *body,
                         const char **why)
{
    uint8_t digest[STS_SHA256_LEN];
    if (len && memcmp(buf, k->magic, len < VERSION_AT ? len : VERSION_AT) != 0) return refuse(why, k->foreign);
    if (len < ENVELOPE_LEN) return refuse(why, k->truncated);
    if (memcmp(buf, k->magic, MAGIC_LEN) != 0) return refuse(why, k->version);
    if (sts_hash(STS_SHA256, buf, len - STS_SHA256_LEN, digest) != 0) {
        *why = k->unhashed;
        return STS_ERR_CRYPTO;
    }
    if (mbedtls_ct_memcmp(digest, buf + len - STS_SHA256_LEN, STS_SHA256_LEN) != 0) return refuse(why, k->mismatch);
    sts_wire_reader_init(body, buf + MAGIC_LEN, len - ENVELOPE_LEN);
    return 0;
}

int sts_sealer_state_decode(const uint8_t *buf, size_t len, uint64_t *bound, const char **why)
{
    struct sts_wire_reader body;
    if (len > STS_SEALER_STATE_LEN) return refuse(why, SEALER.foreign);
    int rc = open_envelope(&SEALER, buf, len, &body, why);
    if (rc != 0) return rc;
    uint64_t v = sts_wire_get_u64(&body);
    if (body.err || body.left) return refuse(why, SEALER.length);
    *bound = v;
    return 0;
}

static void get_sender(struct sts_wire_reader *r, struct sts_sealed_sender *s)
{
    sts_wire_get(r, s->pub, sizeof s->pub);
    s->window.top = sts_wire_get_u64(r);
    for (int j = 0; j < STS_REPLAY_WORDS; j++) s->window.bits[j] = sts_wire_get_u64(r);
}

static int by_key(const void *a, const void *b)
{
    const struct sts_sealed_sender *const *x = a, *const *y = b;
    return memcmp((*x)->pub, (*y)->pub, STS_X25519_LEN);
}

/* Whether two of the n senders have one key: each key has one window. */
static int key_repeats(const struct sts_sealed_sender *s, size_t n, int *repeats)
{
    const struct sts_sealed_sender **sorted;
    *repeats = 0;
    if (n < 2) return 0;
    if (!(sorted = malloc(n * sizeof *sorted))) return STS_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) sorted[i] = &s[i];
    qsort(sorted, n, sizeof *sorted, by_key);
    for (size_t i = 1; i < n && !*repeats; i++) *repeats = by_key(&sorted[i - 1], &sorted[i]) == 0;
    free(sorted);
    return 0;
}

/* The records of a body whose length is already known to be right. */
static int get_senders(struct sts_wire_reader *body, size_t n, struct sts_sealed_sender **out, const char **why)
{
    int repeats;
    struct sts_sealed_sender *s = malloc(n * sizeof *s);
    if (!s) {
        *why = "corrupt replay state file: out of memory";
        return STS_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) get_sender(body, &s[i]);
    int rc = key_repeats(s, n, &repeats);
    if (rc != 0) *why = "corrupt replay state file: out of memory";
    else if (repeats) rc = refuse(why, "corrupt replay state file: a sender twice");
    if (rc != 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int sts_replay_state_decode(const uint8_t *buf, size_t len, size_t max_senders, struct sts_sealed_sender **senders,
                            size_t *n, const char **why)
{
    struct sts_wire_reader body;
    *senders = NULL;
    *n = 0;
    int rc = open_envelope(&REPLAY, buf, len, &body, why);
    if (rc != 0) return rc;
    uint32_t count = sts_wire_get_u32(&body);
    if (body.err || body.left != (uint64_t)count * STS_SEALED_SENDER_LEN) return refuse(why, REPLAY.length);
    if (count > max_senders) return refuse(why, "corrupt replay state file: more senders than max_senders");
    if (count == 0) return 0;
    if ((rc = get_senders(&body, count, senders, why)) == 0) *n = count;
    return rc;
}
