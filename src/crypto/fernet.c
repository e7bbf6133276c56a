#include "crypto/fernet.h"
#include "crypto/aes.h"
#include "crypto/base64.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "util/error.h"

#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>
#include <stdlib.h>
#include <string.h>

/* Offsets and sizes in a decoded token. */
enum {
    VERSION = 0x80,
    TIMESTAMP_AT = 1,
    IV_AT = 9,
    BODY_AT = 25,
    BLOCK = STS_AES_BLOCK_LEN,
    MAC_LEN = STS_SHA256_LEN,
    HALF_KEY = STS_FERNET_KEY_LEN / 2, /* the HMAC key, then the AES-128 key */
};

static const uint8_t *signing_key(const uint8_t key[STS_FERNET_KEY_LEN]) { return key; }
static const uint8_t *encryption_key(const uint8_t key[STS_FERNET_KEY_LEN]) { return key + HALF_KEY; }

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static size_t raw_len(size_t len)
{
    return BODY_AT + (len / BLOCK + 1) * BLOCK + MAC_LEN;
}

size_t sts_fernet_token_len(size_t len)
{
    return sts_base64_encoded_len(raw_len(len));
}

/* Fills raw (raw_len(len) bytes) with the token's bytes. */
static int seal(const uint8_t key[STS_FERNET_KEY_LEN], const uint8_t *pt, size_t len,
                uint64_t now, const uint8_t *iv, uint8_t *raw)
{
    uint8_t chain[BLOCK];
    int rc;

    raw[0] = VERSION;
    put_be64(raw + TIMESTAMP_AT, now);
    if (iv) memcpy(raw + IV_AT, iv, BLOCK);
    else if ((rc = sts_random(raw + IV_AT, BLOCK)) != 0) return rc;
    memcpy(chain, raw + IV_AT, BLOCK);
    size_t padded = sts_pkcs7_pad(raw + BODY_AT, pt, len);
    rc = sts_aes_cbc(1, encryption_key(key), HALF_KEY, chain, raw + BODY_AT, padded, raw + BODY_AT);
    if (rc == 0)
        rc = sts_hmac(STS_SHA256, signing_key(key), HALF_KEY, raw, BODY_AT + padded,
                      raw + BODY_AT + padded);
    return rc;
}

static int encode_token(const uint8_t *raw, size_t rawlen, char **token, size_t *toklen)
{
    size_t room = sts_base64_encoded_len(rawlen) + 1, n;
    char *text = malloc(room);

    if (!text) return STS_ERR_NOMEM;
    int rc = sts_base64url_encode(text, room, &n, raw, rawlen);
    if (rc != 0) {
        free(text);
        return rc;
    }
    *token = text;
    if (toklen) *toklen = n;
    return 0;
}

int sts_fernet_encrypt(const uint8_t key[STS_FERNET_KEY_LEN], const uint8_t *pt, size_t len,
                       uint64_t now, const uint8_t *iv, char **token, size_t *toklen)
{
    *token = NULL;
    if (len > STS_FERNET_MAX_MESSAGE) return STS_ERR_TOO_BIG;
    if (len == 0) pt = (const uint8_t *)""; /* memmove may not be given NULL */
    size_t rawlen = raw_len(len);
    uint8_t *raw = malloc(rawlen);
    if (!raw) return STS_ERR_NOMEM;
    int rc = seal(key, pt, len, now, iv, raw);
    if (rc == 0) rc = encode_token(raw, rawlen, token, toklen);
    /* On a failed encryption raw still holds the padded plaintext. */
    mbedtls_platform_zeroize(raw, rawlen);
    free(raw);
    return rc;
}

static int check_layout(const uint8_t *raw, size_t rawlen)
{
    if (rawlen < BODY_AT + MAC_LEN) return STS_ERR_TRUNCATED;
    size_t bodylen = rawlen - BODY_AT - MAC_LEN;
    if (bodylen % BLOCK) return STS_ERR_INVALID;
    if (bodylen == 0) return STS_ERR_TRUNCATED; /* padding makes at least one block */
    if (raw[0] != VERSION) return STS_ERR_UNSUPPORTED;
    return 0;
}

static int check_mac(const uint8_t key[STS_FERNET_KEY_LEN], const uint8_t *raw, size_t rawlen)
{
    uint8_t mac[MAC_LEN];
    size_t signed_len = rawlen - MAC_LEN;
    int rc = sts_hmac(STS_SHA256, signing_key(key), HALF_KEY, raw, signed_len, mac);

    if (rc == 0 && mbedtls_ct_memcmp(mac, raw + signed_len, MAC_LEN) != 0) rc = STS_ERR_AUTH;
    mbedtls_platform_zeroize(mac, sizeof mac);
    return rc;
}

/* Python's rule, written without overflow: expired when stamped + ttl < now,
 * refused when now + skew < stamped. */
static int check_time(uint64_t stamped, int64_t ttl, uint64_t now)
{
    if (now > stamped && now - stamped > (uint64_t)ttl) return STS_ERR_EXPIRED;
    if (stamped > now && stamped - now > STS_FERNET_MAX_CLOCK_SKEW) return STS_ERR_INVALID;
    return 0;
}

/* Decrypts the ciphertext in place and copies the message out. */
static int open_body(const uint8_t key[STS_FERNET_KEY_LEN], uint8_t *raw, size_t rawlen,
                     uint8_t **pt, size_t *len)
{
    uint8_t chain[BLOCK], *body = raw + BODY_AT;
    size_t bodylen = rawlen - BODY_AT - MAC_LEN;

    memcpy(chain, raw + IV_AT, BLOCK);
    int n = sts_aes_cbc(0, encryption_key(key), HALF_KEY, chain, body, bodylen, body);
    if (n == 0) n = sts_pkcs7_unpad(body, bodylen);
    if (n < 0) return n;
    *pt = malloc((size_t)n + 1); /* + 1: an empty message still gets a buffer */
    if (!*pt) return STS_ERR_NOMEM;
    memcpy(*pt, body, (size_t)n);
    *len = (size_t)n;
    return 0;
}

int sts_fernet_decrypt(const uint8_t key[STS_FERNET_KEY_LEN], const char *token, size_t toklen,
                       int64_t ttl, uint64_t now, uint8_t **pt, size_t *len)
{
    *pt = NULL;
    *len = 0;
    if (toklen > sts_fernet_token_len(STS_FERNET_MAX_MESSAGE)) return STS_ERR_TOO_BIG;
    size_t max = sts_base64_decoded_max(toklen), rawlen = 0;
    uint8_t *raw = malloc(max + 1);
    if (!raw) return STS_ERR_NOMEM;
    int rc = sts_base64url_decode(raw, max, &rawlen, token, toklen);
    if (rc == 0) rc = check_layout(raw, rawlen);
    if (rc == 0) rc = check_mac(key, raw, rawlen);
    if (rc == 0 && ttl > 0) rc = check_time(get_be64(raw + TIMESTAMP_AT), ttl, now);
    if (rc == 0) rc = open_body(key, raw, rawlen, pt, len);
    mbedtls_platform_zeroize(raw, rawlen); /* the decrypted message */
    free(raw);
    return rc;
}
