/* SMQTT data frames from arbitrary bytes, opened under each group key of the
 * captured runs (so the seed frames open): whatever opens must re-seal, with
 * its own IV and index, to exactly the same bytes. */
#include "proto/smqtt.h"
#include "util/hex.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* static, update, and the SLOTTED run's two slot keys */
static const char *const key_hex[] = {
    "a962a4db05b2b6c7f96479399cbdf55c",
    "2fc54b124d8e70b2c9cba8d539d3a265",
    "217809e0e1c7f348fb8f92e908c0bed7",
    "586b3a939e7d7827fcb6b0748f28b8b2",
};
#define NKEYS (sizeof key_hex / sizeof key_hex[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t keys[NKEYS][STS_SMQTT_KEY_LEN];
    static uint8_t pt[8192], again[8192 + STS_SMQTT_FRAME_OVERHEAD + 16];
    static int ready;
    size_t n, len;
    uint16_t index, peek;

    if (!ready) {
        for (size_t i = 0; i < NKEYS; i++)
            if (sts_hex_decode(keys[i], STS_SMQTT_KEY_LEN, key_hex[i], 32) != STS_SMQTT_KEY_LEN) abort();
        ready = 1;
    }
    if (size > sizeof pt) return 0;
    int has_index = sts_smqtt_frame_index(data, size, &peek) == 0;
    for (size_t i = 0; i < NKEYS; i++) {
        if (sts_smqtt_open(keys[i], data, size, pt, sizeof pt, &n, &index, NULL) != 0) continue;
        if (!has_index || index != peek) abort();
        if (sts_smqtt_seal(keys[i], index, pt, n, data + 2, again, sizeof again, &len) != 0 || len != size
            || memcmp(again, data, size) != 0)
            abort();
    }
    return 0;
}
