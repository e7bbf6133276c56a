#include "crypto/base64.h"
#include "util/error.h"

#include <mbedtls/base64.h>
#include <mbedtls/platform_util.h>
#include <stdint.h>
#include <string.h>

/* The alphabets differ only in the characters for 62 and 63. */
static const char standard_extra[2] = { '+', '/' };
static const char url_extra[2] = { '-', '_' };

size_t sts_base64_encoded_len(size_t len)
{
    return len / 3 * 4 + (len % 3 ? 4 : 0);
}

size_t sts_base64_decoded_max(size_t len)
{
    return len / 4 * 3;
}

static int encode(char *out, size_t outmax, size_t *outlen,
                  const uint8_t *in, size_t len, const char extra[2])
{
    if (len > SIZE_MAX / 4 * 3 - 3 || outmax < sts_base64_encoded_len(len) + 1)
        return STS_ERR_TOO_BIG;
    *outlen = 0;
    out[0] = '\0'; /* mbedtls writes nothing at all for empty input */
    if (len > 0 && mbedtls_base64_encode((unsigned char *)out, outmax, outlen, in, len) != 0)
        return STS_ERR_CRYPTO;
    for (size_t i = 0; i < *outlen; i++) {
        if (out[i] == '+') out[i] = extra[0];
        else if (out[i] == '/') out[i] = extra[1];
    }
    return 0;
}

/* Rewrites one quad of text into the standard alphabet for mbedtls, refusing
 * what mbedtls_base64_decode would let through: whitespace (it skips it),
 * the other alphabet's characters, and padding before the final quad. */
static int standard_quad(char quad[4], const char *in, const char extra[2], int final)
{
    for (int i = 0; i < 4; i++) {
        char c = in[i];
        if (c == extra[0]) c = '+';
        else if (c == extra[1]) c = '/';
        else if (c == '+' || c == '/' || c == ' ' || c == '\r' || c == '\n') return STS_ERR_INVALID;
        else if (c == '=' && !(final && i >= 2)) return STS_ERR_INVALID;
        quad[i] = c;
    }
    return 0;
}

/* A final quad is canonical when the bits after the last byte are zero, that
 * is when its bytes encode back to it: then every byte string has exactly one
 * encoding. */
static int check_canonical(const char quad[4], const unsigned char *bytes, size_t got)
{
    unsigned char again[5];
    size_t n;
    int rc = mbedtls_base64_encode(again, sizeof again, &n, bytes, got) != 0 || n != 4
             ? STS_ERR_CRYPTO
             : memcmp(again, quad, 4) == 0 ? 0 : STS_ERR_INVALID;
    mbedtls_platform_zeroize(again, sizeof again);
    return rc;
}

static int decode(uint8_t *out, size_t outmax, size_t *outlen,
                  const char *in, size_t len, const char extra[2])
{
    char quad[4];
    unsigned char bytes[3];
    size_t n = 0, got = 0;
    int rc = len % 4 ? STS_ERR_INVALID : 0;

    for (size_t i = 0; rc == 0 && i < len; i += 4) {
        rc = standard_quad(quad, in + i, extra, i + 4 == len);
        if (rc == 0 && mbedtls_base64_decode(bytes, sizeof bytes, &got,
                                             (const unsigned char *)quad, 4) != 0)
            rc = STS_ERR_INVALID;
        if (rc == 0 && got < 3) rc = check_canonical(quad, bytes, got);
        if (rc == 0 && got > outmax - n) rc = STS_ERR_TOO_BIG;
        if (rc == 0) {
            memcpy(out + n, bytes, got);
            n += got;
        }
    }
    /* The text may have been a key: leave none of it behind. */
    mbedtls_platform_zeroize(quad, sizeof quad);
    mbedtls_platform_zeroize(bytes, sizeof bytes);
    if (rc != 0) {
        mbedtls_platform_zeroize(out, n);
        return rc;
    }
    *outlen = n;
    return 0;
}

int sts_base64_encode(char *out, size_t outmax, size_t *outlen, const uint8_t *in, size_t len)
{
    return encode(out, outmax, outlen, in, len, standard_extra);
}

int sts_base64url_encode(char *out, size_t outmax, size_t *outlen, const uint8_t *in, size_t len)
{
    return encode(out, outmax, outlen, in, len, url_extra);
}

int sts_base64_decode(uint8_t *out, size_t outmax, size_t *outlen, const char *in, size_t len)
{
    return decode(out, outmax, outlen, in, len, standard_extra);
}

int sts_base64url_decode(uint8_t *out, size_t outmax, size_t *outlen, const char *in, size_t len)
{
    return decode(out, outmax, outlen, in, len, url_extra);
}
