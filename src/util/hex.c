#include "util/hex.h"
#include "util/error.h"

void sts_hex_encode(char *out, const uint8_t *in, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sts_hex_decode(uint8_t *out, size_t outmax, const char *hex, size_t hexlen)
{
    if (hexlen % 2) return STS_ERR_INVALID;
    if (hexlen / 2 > outmax) return STS_ERR_TOO_BIG;
    for (size_t i = 0; i < hexlen / 2; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return STS_ERR_INVALID;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (int)(hexlen / 2);
}
