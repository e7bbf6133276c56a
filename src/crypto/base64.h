/* Base64 (RFC 4648 §4) and base64url (§5), both with '=' padding, for PEM
 * bodies and Fernet tokens. Decoding is strict: whole quads only, no
 * whitespace, padding only at the end, no character of the other alphabet
 * and no stray bits after the last byte, so a byte string has exactly one
 * accepted text. */
#ifndef STS_CRYPTO_BASE64_H
#define STS_CRYPTO_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters that encoding len bytes produces, without the NUL. */
size_t sts_base64_encoded_len(size_t len);

/* Most bytes that decoding len characters can produce. */
size_t sts_base64_decoded_max(size_t len);

/* Encode len bytes of in as NUL-terminated text into out (room for outmax
 * chars, at least sts_base64_encoded_len(len) + 1); *outlen is the text
 * length without the NUL. Returns 0 or STS_ERR_TOO_BIG. */
int sts_base64_encode(char *out, size_t outmax, size_t *outlen,
                      const uint8_t *in, size_t len);
int sts_base64url_encode(char *out, size_t outmax, size_t *outlen,
                         const uint8_t *in, size_t len);

/* Decode len characters of in into out (room for outmax bytes; enough is
 * sts_base64_decoded_max(len)); *outlen is the byte count. Returns 0,
 * STS_ERR_INVALID for malformed text or STS_ERR_TOO_BIG if out is short. */
int sts_base64_decode(uint8_t *out, size_t outmax, size_t *outlen,
                      const char *in, size_t len);
int sts_base64url_decode(uint8_t *out, size_t outmax, size_t *outlen,
                         const char *in, size_t len);

#endif
