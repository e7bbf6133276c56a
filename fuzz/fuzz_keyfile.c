/* Key texts and trust lists from arbitrary bytes: never a crash, and a key
 * that parses formats back to the same key. */
#include "crypto/keyfile.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count(void *ctx, const uint8_t key[32])
{
    (void)key;
    ++*(int *)ctx;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t key[32], again[32];
    char text[STS_KEY_TEXT_MAX];
    unsigned line = 0;
    int n = 0;

    for (int kind = STS_KEY_PRIVATE; kind <= STS_KEY_PUBLIC; kind++) {
        if (sts_key_parse(key, (const char *)data, size, kind) == 0) {
            sts_key_format(text, key, kind);
            if (sts_key_parse(again, text, strlen(text), kind) != 0 || memcmp(key, again, 32) != 0) abort();
        }
    }
    sts_trust_parse((const char *)data, size, count, &n, &line);
    return 0;
}
