/* Fernet token decryption under a fixed key, at a fixed time. Checked: a
 * token is refused with an error code and no output, or decrypts, and then
 * the message sealed again under the token's own IV and timestamp gives back
 * the very same token (the decoder accepts one text per token). */
#include "crypto/base64.h"
#include "crypto/fernet.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The seeds in fuzz/corpus/fernet are made with this key and time. */
static const uint8_t key[STS_FERNET_KEY_LEN] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
};
#define NOW 1700000000u

static void check_reseal(const char *token, size_t toklen, const uint8_t *pt, size_t len)
{
    uint8_t raw[64];
    uint64_t stamped = 0;
    size_t rawlen;
    char *again = NULL;
    size_t againlen;

    /* The first 25 bytes: version, timestamp and IV. */
    if (sts_base64url_decode(raw, sizeof raw, &rawlen, token, 36) != 0 || rawlen != 27) abort();
    for (int i = 1; i <= 8; i++) stamped = stamped << 8 | raw[i];
    if (sts_fernet_encrypt(key, pt, len, stamped, raw + 9, &again, &againlen) != 0) abort();
    if (againlen != toklen || memcmp(again, token, toklen) != 0) abort();
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int64_t ttls[] = { 0, 60 };
    const char *token = (const char *)data;

    for (size_t i = 0; i < sizeof ttls / sizeof ttls[0]; i++) {
        uint8_t *pt = NULL;
        size_t len = 0;
        int rc = sts_fernet_decrypt(key, token, size, ttls[i], NOW, &pt, &len);
        if (rc > 0 || (rc < 0) != (pt == NULL)) abort();
        if (rc == 0) check_reseal(token, size, pt, len);
        free(pt);
    }
    return 0;
}
