/* Group data frames and the receiver keyring under arbitrary input. The
 * input is parsed as a frame on a fixed topic and, if it parses, opened
 * with a fixed key under both AEADs; then its bytes drive a keyring
 * (add, check and mark, expire, time). Checked: nothing crashes; a parsed
 * frame's fields describe its bytes; whatever opens re-seals to the same
 * bytes (the signature aside); a marked counter is refused after; the
 * keyring never holds more than its limit, and holds an epoch exactly when
 * it gives its key. */
#include "proto/group_frame.h"
#include "util/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOPIC "fuzz/group"
#define FRAME_MAX 4096

/* The key the seed corpus is sealed with: 00 01 02 ... 1f. */
static void fixed_key(uint8_t key[STS_KEY_LEN])
{
    for (int i = 0; i < STS_KEY_LEN; i++)
        key[i] = (uint8_t)i;
}

static void check_parsed(const uint8_t *data, size_t size, const struct sts_group_header *h,
                         const uint8_t *body, size_t bodylen, const uint8_t *sig)
{
    size_t siglen = h->type == STS_GROUP_FRAME_DATA_SIGNED ? STS_GROUP_SIG_LEN : 0;
    if (h->type != STS_GROUP_FRAME_DATA && h->type != STS_GROUP_FRAME_DATA_SIGNED)
        abort();
    if (h->sender == 0 || h->counter == UINT64_MAX)
        abort();
    if (body != data + STS_GROUP_HEADER_LEN || STS_GROUP_HEADER_LEN + bodylen + siglen != size)
        abort();
    if (bodylen < STS_AEAD_TAG_LEN || bodylen - STS_AEAD_TAG_LEN > STS_GROUP_PAYLOAD_MAX)
        abort();
    if (siglen ? sig != data + size - siglen : sig != NULL)
        abort();
}

/* What opened must be what sealing the parsed header and plaintext gives. */
static void check_reseal(enum sts_aead_alg alg, const uint8_t key[STS_KEY_LEN], const uint8_t *data,
                         size_t size, const struct sts_group_header *h, const uint8_t *pt,
                         size_t ptlen)
{
    static uint8_t again[FRAME_MAX];
    size_t len, siglen = h->type == STS_GROUP_FRAME_DATA_SIGNED ? STS_GROUP_SIG_LEN : 0;

    if (sts_group_frame_seal(alg, key, h, TOPIC, pt, ptlen, again, sizeof again, &len) != 0)
        abort();
    if (len != size || memcmp(again, data, size - siglen) != 0)
        abort();
}

/* A fresh keyring holding the frame's epoch: an opened frame's counter is
 * new once and refused after it is marked. */
static void check_replay(const uint8_t key[STS_KEY_LEN], const struct sts_group_header *h)
{
    struct sts_group_keyring r;

    sts_group_keyring_init(&r);
    if (sts_group_keyring_add(&r, h->epoch, key, 0) != 0
        || sts_group_keyring_check(&r, h->epoch, h->sender, h->counter) != 0
        || sts_group_keyring_mark(&r, h->epoch, h->sender, h->counter) != 0
        || sts_group_keyring_check(&r, h->epoch, h->sender, h->counter) != STS_ERR_REPLAY
        || sts_group_keyring_mark(&r, h->epoch, h->sender, h->counter) != STS_ERR_REPLAY
        || sts_group_keyring_check(&r, h->epoch + 1, h->sender, h->counter) != STS_ERR_STATE)
        abort();
    sts_group_keyring_free(&r);
}

static void fuzz_frame(const uint8_t *data, size_t size)
{
    static const enum sts_aead_alg algs[] = { STS_AEAD_CHACHAPOLY, STS_AEAD_AESGCM };
    static uint8_t pt[FRAME_MAX];
    uint8_t key[STS_KEY_LEN], digest[STS_SHA256_LEN];
    struct sts_group_header h;
    const uint8_t *body, *sig;
    size_t bodylen;

    if (sts_group_frame_parse(data, size, &h, &body, &bodylen, &sig) != STS_REASON_NONE) {
        if (body != NULL || sig != NULL || bodylen != 0)
            abort();
        return;
    }
    check_parsed(data, size, &h, body, bodylen, sig);
    if (sig && sts_group_frame_digest(data, size, TOPIC, digest) != 0)
        abort();
    fixed_key(key);
    for (size_t i = 0; i < sizeof algs / sizeof *algs; i++) {
        int err = sts_group_frame_open(algs[i], key, data, TOPIC, body, bodylen, pt);
        if (err == STS_ERR_AUTH)
            continue;
        if (err != 0)
            abort();
        check_reseal(algs[i], key, data, size, &h, pt, bodylen - STS_AEAD_TAG_LEN);
        check_replay(key, &h);
    }
}

/* After expiry, an epoch is held (its windows answer) exactly when its key
 * is given. */
static void check_held(struct sts_group_keyring *r, double now)
{
    if (r->count > STS_GROUP_KEYRING_EPOCHS)
        abort();
    for (uint32_t e = 0; e < 16; e++) {
        int held = sts_group_keyring_check(r, e, 1, 0) != STS_ERR_STATE;
        if (held != (sts_group_keyring_key(r, e, now) != NULL))
            abort();
    }
}

/* Each 8 bytes are one operation on a keyring: op, epoch, sender (2),
 * counter or time (4). Epochs and counters are small so they collide. */
static void fuzz_keyring(const uint8_t *data, size_t size)
{
    struct sts_group_keyring r;
    uint8_t key[STS_KEY_LEN];
    double now = 1;

    sts_group_keyring_init(&r);
    for (; size >= 8; data += 8, size -= 8) {
        uint32_t epoch = data[1] % 16;
        uint16_t sender = (uint16_t)(data[2] << 8 | data[3]);
        uint64_t n = (uint64_t)data[4] << 24 | (uint64_t)data[5] << 16 | data[6] << 8 | data[7];
        switch (data[0] % 4) {
        case 0:
            memset(key, data[2], sizeof key);
            if (sts_group_keyring_add(&r, epoch, key, now + data[4] % 8) != 0)
                abort();
            break;
        case 1: {
            int err = sts_group_keyring_check(&r, epoch, sender, n);
            if (err == 0 && sts_group_keyring_mark(&r, epoch, sender, n) != 0)
                abort();
            if (err == 0 && sts_group_keyring_check(&r, epoch, sender, n) != STS_ERR_REPLAY)
                abort();
            if (err != 0 && sts_group_keyring_mark(&r, epoch, sender, n) != err)
                abort();
            break;
        }
        case 2:
            sts_group_keyring_expire(&r, now);
            check_held(&r, now);
            break;
        case 3:
            now += data[4] % 4;
            break;
        }
        if (r.count > STS_GROUP_KEYRING_EPOCHS)
            abort();
    }
    sts_group_keyring_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FRAME_MAX)
        return 0;
    fuzz_frame(data, size);
    fuzz_keyring(data, size);
    return 0;
}
