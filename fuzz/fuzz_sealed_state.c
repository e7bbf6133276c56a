/* Sealed readings' state files: any bytes are decoded as a sealer state and
 * as a replay state. A refusal gives a reason and no senders; whatever
 * decodes encodes again to exactly the input bytes (the format has one
 * encoding of each state). Each input is tried as given and, so that
 * mutations reach the body, with its trailing SHA-256 recomputed.
 *
 * The seeds (corpus/sealed_state) are a sealer state and replay states of
 * 0, 1 and 2 senders. */
#include "crypto/hash.h"
#include "proto/sealed_state.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SENDERS 16

static void try_sealer(const uint8_t *buf, size_t len)
{
    uint8_t again[STS_SEALER_STATE_LEN];
    uint64_t bound;
    const char *why = NULL;
    if (sts_sealer_state_decode(buf, len, &bound, &why) != 0) {
        if (!why) abort();
        return;
    }
    if (len != sizeof again || sts_sealer_state_encode(bound, again) != 0 || memcmp(again, buf, len) != 0) abort();
}

static void try_replay(const uint8_t *buf, size_t len)
{
    struct sts_sealed_sender *senders;
    size_t n;
    const char *why = NULL;
    if (sts_replay_state_decode(buf, len, MAX_SENDERS, &senders, &n, &why) != 0) {
        if (!why || senders || n) abort();
        return;
    }
    if (n > MAX_SENDERS || (n == 0) != (senders == NULL) || sts_replay_state_len(n) != len) abort();
    uint8_t *again = malloc(len);
    if (!again) abort();
    if (sts_replay_state_encode(senders, n, again, len) != 0 || memcmp(again, buf, len) != 0) abort();
    free(again);
    free(senders);
}

static void try_both(const uint8_t *buf, size_t len)
{
    try_sealer(buf, len);
    try_replay(buf, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_both(data, size);
    if (size < STS_SHA256_LEN) return 0;
    uint8_t *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    if (sts_hash(STS_SHA256, copy, size - STS_SHA256_LEN, copy + size - STS_SHA256_LEN) == 0) try_both(copy, size);
    free(copy);
    return 0;
}
