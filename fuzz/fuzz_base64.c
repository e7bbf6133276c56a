/* Base64 and base64url decoding. Checked: what decodes encodes back to the
 * same text, so the decoder accepts exactly one text per byte string. */
#include "crypto/base64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int codec(uint8_t *, size_t, size_t *, const char *, size_t);
typedef int encoder(char *, size_t, size_t *, const uint8_t *, size_t);

static void check(codec *decode, encoder *encode, const char *text, size_t size)
{
    size_t max = sts_base64_decoded_max(size), n, m;
    uint8_t *bin = malloc(max + 1);
    char *again = malloc(size + 1);
    if (!bin || !again) abort();
    if (decode(bin, max, &n, text, size) == 0) {
        if (encode(again, size + 1, &m, bin, n) != 0 || m != size || memcmp(again, text, size) != 0)
            abort();
    }
    free(again);
    free(bin);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(sts_base64_decode, sts_base64_encode, (const char *)data, size);
    check(sts_base64url_decode, sts_base64url_encode, (const char *)data, size);
    return 0;
}
