#include "proto/group_frame.h"
#include "util/error.h"

#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include <stdlib.h>
#include <string.h>

#define GROUP_VERSION 0x01
#define TOPIC_MAX 0xffff /* an MQTT topic; also what the signature's u16 length can say */

/* --- frames ------------------------------------------------------------------ */

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static size_t overhead_of(int type)
{
    return STS_GROUP_OVERHEAD + (type == STS_GROUP_FRAME_DATA_SIGNED ? STS_GROUP_SIG_LEN : 0);
}

static int is_type(int type)
{
    return type == STS_GROUP_FRAME_DATA || type == STS_GROUP_FRAME_DATA_SIGNED;
}

/* Fields a sender never puts in a frame: sender 0 is nobody, and a counter
 * of 2^64-1 is one the replay window refuses anyway. */
static int header_valid(const struct sts_group_header *h)
{
    return is_type(h->type) && h->sender != 0 && h->counter != UINT64_MAX;
}

enum sts_reason sts_group_frame_parse(const uint8_t *frame, size_t len, struct sts_group_header *h,
                                      const uint8_t **body, size_t *bodylen, const uint8_t **sig)
{
    memset(h, 0, sizeof *h);
    *body = *sig = NULL;
    *bodylen = 0;
    if (len < 2)
        return STS_REASON_TRUNCATED;
    if (frame[0] != GROUP_VERSION)
        return STS_REASON_BAD_VERSION;
    if (!is_type(frame[1]))
        return STS_REASON_UNKNOWN_TYPE;
    h->type = frame[1];
    if (len < overhead_of(h->type))
        return STS_REASON_TRUNCATED;
    if (len - overhead_of(h->type) > STS_GROUP_PAYLOAD_MAX)
        return STS_REASON_TOO_BIG;
    h->epoch = (uint32_t)get_be(frame + 2, 4);
    h->sender = (uint16_t)get_be(frame + 6, 2);
    h->counter = get_be(frame + 8, 8);
    if (!header_valid(h))
        return STS_REASON_MALFORMED;
    *body = frame + STS_GROUP_HEADER_LEN;
    *bodylen = len - overhead_of(h->type) + STS_AEAD_TAG_LEN;
    if (h->type == STS_GROUP_FRAME_DATA_SIGNED)
        *sig = frame + len - STS_GROUP_SIG_LEN;
    return STS_REASON_NONE;
}

static void put_header(uint8_t out[STS_GROUP_HEADER_LEN], const struct sts_group_header *h)
{
    out[0] = GROUP_VERSION;
    out[1] = (uint8_t)h->type;
    put_be(out + 2, h->epoch, 4);
    put_be(out + 6, h->sender, 2);
    put_be(out + 8, h->counter, 8);
}

/* 0x0000 || sender || counter: the header's last ten bytes. */
static void nonce_of(const uint8_t header[STS_GROUP_HEADER_LEN], uint8_t nonce[STS_AEAD_NONCE_LEN])
{
    nonce[0] = nonce[1] = 0;
    memcpy(nonce + 2, header + 6, STS_AEAD_NONCE_LEN - 2);
}

/* The associated data header || topic, contiguous as the AEADs want it: on
 * the stack for the topics telemetry uses, on the heap beyond that. */
#define AD_LOCAL_TOPIC 240
struct ad {
    uint8_t local[STS_GROUP_HEADER_LEN + AD_LOCAL_TOPIC];
    uint8_t *bytes;
    size_t len;
};

static int ad_make(struct ad *a, const uint8_t header[STS_GROUP_HEADER_LEN], const char *topic)
{
    size_t tlen = strlen(topic);
    if (tlen > TOPIC_MAX)
        return STS_ERR_TOO_BIG;
    a->len = STS_GROUP_HEADER_LEN + tlen;
    a->bytes = tlen <= AD_LOCAL_TOPIC ? a->local : malloc(a->len);
    if (!a->bytes)
        return STS_ERR_NOMEM;
    memcpy(a->bytes, header, STS_GROUP_HEADER_LEN);
    memcpy(a->bytes + STS_GROUP_HEADER_LEN, topic, tlen);
    return 0;
}

static void ad_free(struct ad *a)
{
    if (a->bytes != a->local)
        free(a->bytes);
}

/* Seal or open body with the frame's nonce and associated data. */
static int frame_aead(int seal, enum sts_aead_alg alg, const uint8_t key[STS_KEY_LEN],
                      const uint8_t header[STS_GROUP_HEADER_LEN], const char *topic, const uint8_t *in,
                      size_t inlen, uint8_t *out)
{
    uint8_t nonce[STS_AEAD_NONCE_LEN];
    struct ad ad;
    int err = ad_make(&ad, header, topic);

    if (err)
        return err;
    nonce_of(header, nonce);
    err = seal ? sts_aead_seal(alg, key, nonce, ad.bytes, ad.len, in, inlen, out)
               : sts_aead_open(alg, key, nonce, ad.bytes, ad.len, in, inlen, out);
    ad_free(&ad);
    return err;
}

int sts_group_frame_seal(enum sts_aead_alg alg, const uint8_t key[STS_KEY_LEN],
                         const struct sts_group_header *h, const char *topic,
                         const uint8_t *pt, size_t ptlen, uint8_t *out, size_t cap, size_t *outlen)
{
    int err;

    *outlen = 0;
    if (!header_valid(h))
        return STS_ERR_INVALID;
    if (ptlen > STS_GROUP_PAYLOAD_MAX || cap < ptlen + overhead_of(h->type))
        return STS_ERR_TOO_BIG;
    put_header(out, h);
    err = frame_aead(1, alg, key, out, topic, pt, ptlen, out + STS_GROUP_HEADER_LEN);
    if (err)
        return err;
    *outlen = ptlen + overhead_of(h->type);
    /* The signature's room holds no stale bytes until it is filled. */
    if (h->type == STS_GROUP_FRAME_DATA_SIGNED)
        memset(out + *outlen - STS_GROUP_SIG_LEN, 0, STS_GROUP_SIG_LEN);
    return 0;
}

int sts_group_frame_digest(const uint8_t *frame, size_t len, const char *topic,
                           uint8_t digest[STS_SHA256_LEN])
{
    size_t tlen = strlen(topic);
    uint8_t prefix[2];
    mbedtls_md_context_t ctx;
    int ok;

    if (len < STS_GROUP_OVERHEAD + STS_GROUP_SIG_LEN)
        return STS_ERR_TRUNCATED;
    if (tlen > TOPIC_MAX)
        return STS_ERR_TOO_BIG;
    put_be(prefix, tlen, 2);
    mbedtls_md_init(&ctx);
    ok = mbedtls_md_setup(&ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 0) == 0
         && mbedtls_md_starts(&ctx) == 0
         && mbedtls_md_update(&ctx, prefix, sizeof prefix) == 0
         && mbedtls_md_update(&ctx, (const uint8_t *)topic, tlen) == 0
         && mbedtls_md_update(&ctx, frame, len - STS_GROUP_SIG_LEN) == 0
         && mbedtls_md_finish(&ctx, digest) == 0;
    mbedtls_md_free(&ctx);
    return ok ? 0 : STS_ERR_CRYPTO;
}

int sts_group_frame_open(enum sts_aead_alg alg, const uint8_t key[STS_KEY_LEN],
                         const uint8_t *frame, const char *topic, const uint8_t *body,
                         size_t bodylen, uint8_t *out)
{
    return frame_aead(0, alg, key, frame, topic, body, bodylen, out);
}

/* --- the keyring ---------------------------------------------------------------- */

/* A sender's window, in an epoch's dense array. */
struct sender_window {
    uint16_t sender;
    struct sts_replay w;
};

/* Windows by sender: a dense array, and an open-addressing index into it
 * (slot value = entry + 1, 0 = empty, linear probing) of 2^index_bits
 * slots, at most 3/4 full: 65535 senders need 2^17. */
struct sts_group_epoch {
    uint32_t epoch;
    uint8_t key[STS_KEY_LEN];
    double retire_at; /* 0: the current epoch, no deadline */
    struct sender_window *windows;
    size_t nwindows, cap_windows;
    uint16_t *index;
    unsigned index_bits;
};

#define SENDERS_MAX 65535
#define INDEX_BITS_MIN 4

static size_t index_size(unsigned bits)
{
    return (size_t)1 << bits;
}

/* Fibonacci hashing: the top bits of sender * 2^32/phi, so sequential
 * sender indices spread over the index. */
static size_t slot_of(uint16_t sender, unsigned bits)
{
    return (size_t)(((uint32_t)sender * 2654435769u) >> (32 - bits));
}

static struct sender_window *window_find(const struct sts_group_epoch *e, uint16_t sender)
{
    if (!e->index)
        return NULL;
    size_t mask = index_size(e->index_bits) - 1;
    for (size_t i = slot_of(sender, e->index_bits);; i = (i + 1) & mask) {
        uint16_t at = e->index[i];
        if (at == 0)
            return NULL;
        if (e->windows[at - 1].sender == sender)
            return &e->windows[at - 1];
    }
}

static void index_put(uint16_t *index, unsigned bits, uint16_t sender, size_t entry)
{
    size_t i = slot_of(sender, bits);
    while (index[i] != 0)
        i = (i + 1) & (index_size(bits) - 1);
    index[i] = (uint16_t)(entry + 1);
}

/* Room for one more window: the dense array doubles, and the index doubles
 * (and is rebuilt) before it passes 3/4 full. */
static int window_reserve(struct sts_group_epoch *e)
{
    if (e->nwindows == e->cap_windows) {
        size_t cap = e->cap_windows ? 2 * e->cap_windows : index_size(INDEX_BITS_MIN) / 2;
        if (cap > SENDERS_MAX)
            cap = SENDERS_MAX;
        struct sender_window *w = realloc(e->windows, cap * sizeof *w);
        if (!w)
            return STS_ERR_NOMEM;
        e->windows = w;
        e->cap_windows = cap;
    }
    if (!e->index || 4 * (e->nwindows + 1) > 3 * index_size(e->index_bits)) {
        unsigned bits = e->index ? e->index_bits + 1 : INDEX_BITS_MIN;
        uint16_t *index = calloc(index_size(bits), sizeof *index);
        if (!index)
            return STS_ERR_NOMEM;
        for (size_t i = 0; i < e->nwindows; i++)
            index_put(index, bits, e->windows[i].sender, i);
        free(e->index);
        e->index = index;
        e->index_bits = bits;
    }
    return 0;
}

static int window_get(struct sts_group_epoch *e, uint16_t sender, struct sender_window **out)
{
    int err;

    *out = window_find(e, sender);
    if (*out)
        return 0;
    err = window_reserve(e);
    if (err)
        return err;
    *out = &e->windows[e->nwindows];
    (*out)->sender = sender;
    sts_replay_reset(&(*out)->w);
    index_put(e->index, e->index_bits, sender, e->nwindows++);
    return 0;
}

static void epoch_wipe(struct sts_group_epoch *e)
{
    free(e->windows);
    free(e->index);
    mbedtls_platform_zeroize(e, sizeof *e);
}

static int retired(const struct sts_group_epoch *e, double now)
{
    return e->retire_at != 0 && e->retire_at <= now;
}

static struct sts_group_epoch *epoch_find(const struct sts_group_keyring *r, uint32_t epoch)
{
    for (size_t i = 0; i < r->count; i++)
        if (r->epochs[i].epoch == epoch)
            return &r->epochs[i];
    return NULL;
}

/* Removes entry i, keeping the others in order. */
static void epoch_remove(struct sts_group_keyring *r, size_t i)
{
    epoch_wipe(&r->epochs[i]);
    memmove(&r->epochs[i], &r->epochs[i + 1], (r->count - i - 1) * sizeof *r->epochs);
    r->count--;
    mbedtls_platform_zeroize(&r->epochs[r->count], sizeof *r->epochs);
}

void sts_group_keyring_init(struct sts_group_keyring *r)
{
    r->epochs = NULL;
    r->count = 0;
}

/* A newer epoch than any held becomes current, and starts every older
 * epoch's grace (keeping an earlier deadline); an older one (a late KEY)
 * only joins, already retiring. */
static void set_deadlines(struct sts_group_keyring *r, struct sts_group_epoch *added, double retire_at)
{
    if (added != &r->epochs[0]) {
        added->retire_at = retire_at;
        return;
    }
    added->retire_at = 0;
    for (size_t i = 1; i < r->count; i++)
        if (r->epochs[i].retire_at == 0 || r->epochs[i].retire_at > retire_at)
            r->epochs[i].retire_at = retire_at;
}

int sts_group_keyring_add(struct sts_group_keyring *r, uint32_t epoch, const uint8_t key[STS_KEY_LEN],
                          double retire_at)
{
    struct sts_group_epoch *held = epoch_find(r, epoch);
    size_t at = 0;

    if (held && mbedtls_ct_memcmp(held->key, key, STS_KEY_LEN) == 0)
        return 0;
    if (held)
        epoch_remove(r, (size_t)(held - r->epochs));
    if (!r->epochs) {
        r->epochs = calloc(STS_GROUP_KEYRING_EPOCHS, sizeof *r->epochs);
        if (!r->epochs)
            return STS_ERR_NOMEM;
    }
    while (at < r->count && r->epochs[at].epoch > epoch)
        at++;
    if (r->count == STS_GROUP_KEYRING_EPOCHS) {
        if (at == r->count)
            return 0; /* older than every epoch kept: it would be the one dropped */
        epoch_remove(r, r->count - 1);
    }
    memmove(&r->epochs[at + 1], &r->epochs[at], (r->count - at) * sizeof *r->epochs);
    r->count++;
    memset(&r->epochs[at], 0, sizeof *r->epochs);
    r->epochs[at].epoch = epoch;
    memcpy(r->epochs[at].key, key, STS_KEY_LEN);
    set_deadlines(r, &r->epochs[at], retire_at);
    return 0;
}

const uint8_t *sts_group_keyring_key(struct sts_group_keyring *r, uint32_t epoch, double now)
{
    const struct sts_group_epoch *e = epoch_find(r, epoch);
    return e && !retired(e, now) ? e->key : NULL;
}

void sts_group_keyring_expire(struct sts_group_keyring *r, double now)
{
    for (size_t i = r->count; i-- > 0;)
        if (retired(&r->epochs[i], now))
            epoch_remove(r, i);
}

int sts_group_keyring_check(struct sts_group_keyring *r, uint32_t epoch, uint16_t sender, uint64_t counter)
{
    static const struct sts_replay empty;
    const struct sts_group_epoch *e = epoch_find(r, epoch);
    const struct sender_window *w;

    if (!e)
        return STS_ERR_STATE;
    if (sender == 0)
        return STS_ERR_INVALID;
    /* A sender not heard from yet has an empty window; checking makes none. */
    w = window_find(e, sender);
    return sts_replay_check(w ? &w->w : &empty, counter);
}

int sts_group_keyring_mark(struct sts_group_keyring *r, uint32_t epoch, uint16_t sender, uint64_t counter)
{
    struct sender_window *w;
    int err = sts_group_keyring_check(r, epoch, sender, counter);

    if (err == 0)
        err = window_get(epoch_find(r, epoch), sender, &w);
    return err ? err : sts_replay_mark(&w->w, counter);
}

void sts_group_keyring_free(struct sts_group_keyring *r)
{
    while (r->count > 0)
        epoch_remove(r, r->count - 1);
    free(r->epochs);
    sts_group_keyring_init(r);
}

size_t sts_group_keyring_memory(const struct sts_group_keyring *r)
{
    size_t n = r->epochs ? STS_GROUP_KEYRING_EPOCHS * sizeof *r->epochs : 0;
    for (size_t i = 0; i < r->count; i++)
        n += r->epochs[i].cap_windows * sizeof(struct sender_window)
             + (r->epochs[i].index ? index_size(r->epochs[i].index_bits) * sizeof(uint16_t) : 0);
    return n;
}
