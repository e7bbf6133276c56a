/* Hexadecimal encoding, for key files, vectors and the legacy wire format. */
#ifndef STS_UTIL_HEX_H
#define STS_UTIL_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2*len lowercase hex digits and a NUL to out (size 2*len+1). */
void sts_hex_encode(char *out, const uint8_t *in, size_t len);

/* Decodes exactly hexlen digits (even, either case) into out (room for
 * outmax bytes). Returns the number of bytes, or a negative sts_error. */
int sts_hex_decode(uint8_t *out, size_t outmax, const char *hex, size_t hexlen);

#endif
