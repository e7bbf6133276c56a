/* Fernet tokens, version 0x80 (https://github.com/fernet/spec), as Python's
 * cryptography.fernet writes them: the payloads of the lab protocol.
 *
 *   token = base64url(0x80 ‖ timestamp (64-bit BE) ‖ IV (16) ‖
 *                     AES-128-CBC-PKCS#7(encryption key, message) ‖
 *                     HMAC-SHA256(signing key, everything before))
 *
 * The 32-byte key is the signing key (first 16 bytes) then the encryption
 * key (last 16); the base64url form of the key is the caller's business. */
#ifndef STS_CRYPTO_FERNET_H
#define STS_CRYPTO_FERNET_H

#include <stddef.h>
#include <stdint.h>

#define STS_FERNET_KEY_LEN 32
/* How far in the future a token's timestamp may be (seconds), as in the
 * spec's test vectors and Python's implementation. */
#define STS_FERNET_MAX_CLOCK_SKEW 60
/* The largest message: MQTT's largest payload, more than any token needs. */
#define STS_FERNET_MAX_MESSAGE 268435455u

/* Length of the token for a len-byte message, without the NUL. */
size_t sts_fernet_token_len(size_t len);

/* Encrypts len bytes of pt (NULL is fine when len is 0) stamped with now
 * (seconds since the epoch) under iv (16 bytes), or a fresh random IV when
 * iv is NULL (always, outside tests). On success *token is a malloc'd
 * NUL-terminated string of *toklen (= sts_fernet_token_len(len)) chars,
 * freed by the caller; toklen may be NULL. Returns 0, STS_ERR_TOO_BIG (len
 * over STS_FERNET_MAX_MESSAGE), STS_ERR_NOMEM or STS_ERR_CRYPTO. */
int sts_fernet_encrypt(const uint8_t key[STS_FERNET_KEY_LEN], const uint8_t *pt, size_t len,
                       uint64_t now, const uint8_t *iv, char **token, size_t *toklen);

/* Verifies and decrypts toklen chars of token. The HMAC is checked (in
 * constant time) before any time check or decryption. With ttl > 0, as in
 * Python's decrypt(token, ttl): a token older than ttl seconds at now is
 * STS_ERR_EXPIRED, and one stamped more than STS_FERNET_MAX_CLOCK_SKEW
 * seconds after now is STS_ERR_INVALID (a clock problem, not an expiry);
 * with ttl <= 0 the timestamp is not checked at all.
 * Other errors: STS_ERR_INVALID (bad base64, length not whole blocks, bad
 * padding), STS_ERR_TRUNCATED (too short), STS_ERR_UNSUPPORTED (version is
 * not 0x80), STS_ERR_AUTH (HMAC), STS_ERR_TOO_BIG, STS_ERR_NOMEM.
 * On success *pt is a malloc'd buffer of *len bytes (never NULL, even for an
 * empty message) that the caller frees, and should wipe if it is secret. */
int sts_fernet_decrypt(const uint8_t key[STS_FERNET_KEY_LEN], const char *token, size_t toklen,
                       int64_t ttl, uint64_t now, uint8_t **pt, size_t *len);

#endif
