/* Sealed readings: arbitrary bytes as a frame. Whatever parses is opened
 * with fixed keys (the gateway's; the sender's, found for K, pinned for X)
 * on a fixed topic. Checked: a refusal leaves nothing in out; a frame that
 * opens must be one sealed with those keys: the same header when parsed
 * again, the fixed sender reported (K, X), the reading as long as the frame
 * less its overhead.
 *
 * The seeds (corpus/sealed) are genuine frames sealed with these keys, so
 * runs start on the full path of the cryptography. */
#include "crypto/x25519.h"
#include "proto/sealed.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t gw_priv[32] = { 1 }, sender_priv[32] = { 2 };
static const char topic[] = "fuzz/sealed/up";

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

static int same_header(const struct sts_sealed_header *a, const struct sts_sealed_header *b)
{
    return a->pattern == b->pattern && a->suite == b->suite && a->counter == b->counter &&
           a->len == b->len && memcmp(a->key_id, b->key_id, sizeof a->key_id) == 0;
}

static void check_opened(const struct sts_sealed_header *h, const uint8_t *data, size_t size,
                         size_t ptlen, const uint8_t sender[32], const uint8_t sender_pub[32])
{
    struct sts_sealed_header again;
    if (sts_sealed_parse(data, size, &again) != STS_REASON_NONE || !same_header(h, &again))
        abort();
    if (ptlen != size - sts_sealed_overhead((enum sts_sealed_pattern)h->pattern))
        abort();
    if (h->pattern == STS_SEALED_N ? !all_zero(sender, 32) : memcmp(sender, sender_pub, 32) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t gw_pub[32], sender_pub[32], out[4096];
    uint8_t sender[32];
    struct sts_sealed_header h;
    size_t ptlen = 0;

    if (gw_pub[0] == 0 && (sts_x25519_public(gw_pub, gw_priv) != 0 ||
                           sts_x25519_public(sender_pub, sender_priv) != 0))
        abort();
    if (size > sizeof out || sts_sealed_parse(data, size, &h) != STS_REASON_NONE)
        return 0;
    memset(out, 0xa5, size);
    enum sts_reason r = sts_sealed_open(gw_priv, gw_pub, &h, data, size, sender_pub, topic, out,
                                        &ptlen, sender);
    if (r == STS_REASON_NONE)
        check_opened(&h, data, size, ptlen, sender, sender_pub);
    else if (ptlen != 0 || !all_zero(out, size - h.len) || !all_zero(sender, 32))
        abort();
    return 0;
}
