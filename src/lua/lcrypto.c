/* Low-level cryptography for scripts: sts.random, sts.hkdf, sts.encrypt and
 * sts.decrypt (ChaCha20-Poly1305 with a random nonce), and identity keys:
 * sts.fingerprint, sts.public_key and reading keys (sts.key is in lkey.c). */
#include "lua/internal.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/keyfile.h"
#include "crypto/random.h"
#include "crypto/x25519.h"
#include "util/error.h"
#include "util/hex.h"

#include <mbedtls/platform_util.h>
#include <string.h>

#define NONCE_LEN 12
#define TAG_LEN 16
#define MAX_RANDOM (1024 * 1024)

static const uint8_t *check_key32(lua_State *L, int idx)
{
    size_t len;
    const char *key = luaL_checklstring(L, idx, &len);
    luaL_argcheck(L, len == 32, idx, "key must be 32 bytes");
    return (const uint8_t *)key;
}

static int l_random(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= MAX_RANDOM, 1, "must be from 0 to 1048576");
    luaL_Buffer b;
    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, (size_t)n);
    if (sts_random(out, (size_t)n) != 0) return luaL_error(L, "random generator failed");
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

/* sts.hkdf(ikm, salt, info, length [, "sha256"|"sha512"]) */
static int l_hkdf(lua_State *L)
{
    static const char *const hashes[] = { "sha256", "sha512", NULL };
    size_t ikmlen, saltlen = 0, infolen = 0;
    const char *ikm = luaL_checklstring(L, 1, &ikmlen);
    const char *salt = luaL_optlstring(L, 2, "", &saltlen);
    const char *info = luaL_optlstring(L, 3, "", &infolen);
    lua_Integer length = luaL_checkinteger(L, 4);
    enum sts_hash_alg alg = luaL_checkoption(L, 5, "sha256", hashes) == 0 ? STS_SHA256 : STS_SHA512;
    luaL_argcheck(L, length > 0 && (size_t)length <= 255 * sts_hash_len(alg), 4, "must be from 1 to 255 hash lengths");
    uint8_t out[255 * 64];
    if (sts_hkdf(alg, (const uint8_t *)salt, saltlen, (const uint8_t *)ikm, ikmlen,
                 (const uint8_t *)info, infolen, out, (size_t)length) != 0)
        return luaL_error(L, "hkdf failed");
    lua_pushlstring(L, (const char *)out, (size_t)length);
    mbedtls_platform_zeroize(out, (size_t)length);
    return 1;
}

/* sts.encrypt(key32, plaintext [, ad]) -> nonce || ciphertext || tag */
static int l_encrypt(lua_State *L)
{
    const uint8_t *key = check_key32(L, 1);
    size_t len, adlen = 0;
    const char *pt = luaL_checklstring(L, 2, &len);
    const char *ad = luaL_optlstring(L, 3, "", &adlen);
    luaL_Buffer b;
    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, NONCE_LEN + len + TAG_LEN);
    if (sts_random(out, NONCE_LEN) != 0 ||
        sts_aead_seal(STS_AEAD_CHACHAPOLY, key, out, (const uint8_t *)ad, adlen,
                      (const uint8_t *)pt, len, out + NONCE_LEN) != 0)
        return luaL_error(L, "encryption failed");
    luaL_pushresultsize(&b, NONCE_LEN + len + TAG_LEN);
    return 1;
}

/* sts.decrypt(key32, sealed [, ad]) -> plaintext | nil, message */
static int l_decrypt(lua_State *L)
{
    const uint8_t *key = check_key32(L, 1);
    size_t len, adlen = 0;
    const uint8_t *sealed = (const uint8_t *)luaL_checklstring(L, 2, &len);
    const char *ad = luaL_optlstring(L, 3, "", &adlen);
    if (len < NONCE_LEN + TAG_LEN) return stsl_fail(L, "sealed message too short");
    size_t ctlen = len - NONCE_LEN;
    luaL_Buffer b;
    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, ctlen - TAG_LEN);
    int rc = sts_aead_open(STS_AEAD_CHACHAPOLY, key, sealed, (const uint8_t *)ad, adlen,
                           sealed + NONCE_LEN, ctlen, out);
    if (rc != 0) return stsl_fail(L, "%s", sts_strerror(rc));
    luaL_pushresultsize(&b, ctlen - TAG_LEN);
    return 1;
}

int stsl_check_key(lua_State *L, int idx, uint8_t key[32], enum sts_key_kind kind, const char *what)
{
    size_t len;
    char err[512];
    const uint8_t *held = stsl_test_key(L, idx, what);
    if (held) {
        if (kind == STS_KEY_PUBLIC) return luaL_error(L, "%s: a private key where a public key belongs", what);
        memcpy(key, held, 32);
        return 1;
    }
    const char *s = luaL_checklstring(L, idx, &len);
    const char *head = kind == STS_KEY_PRIVATE ? STS_KEY_PRIVATE_HEADER : STS_KEY_PUBLIC_HEADER;
    /* A key text is taken as it is; anything else names a file. */
    if (strncmp(s, head, strlen(head)) == 0) {
        if (sts_key_parse(key, s, len, kind) == 0) return 1;
        lua_pushfstring(L, "%s: not a valid key text", what);
        return 0;
    }
    if (kind == STS_KEY_PUBLIC && strncmp(s, STS_KEY_PRIVATE_HEADER, strlen(STS_KEY_PRIVATE_HEADER)) == 0)
        return luaL_error(L, "%s: a private key where a public key belongs", what);
    if (sts_key_load(key, s, kind, err, sizeof err) == 0) return 1;
    lua_pushfstring(L, "%s: %s", what, err);
    return 0;
}

/* sts.fingerprint(public key text or file) -> "SHA256:..." */
static int l_fingerprint(lua_State *L)
{
    uint8_t pub[32];
    char fp[STS_FINGERPRINT_LEN + 1];
    if (!stsl_check_key(L, 1, pub, STS_KEY_PUBLIC, "fingerprint")) return stsl_fail(L, "%s", lua_tostring(L, -1));
    if (sts_key_fingerprint(fp, pub) != 0) return luaL_error(L, "fingerprint failed");
    lua_pushstring(L, fp);
    return 1;
}

/* sts.public_key(private key text or file) -> public key text */
static int l_public_key(lua_State *L)
{
    uint8_t priv[32], pub[32];
    char text[STS_KEY_TEXT_MAX];
    if (!stsl_check_key(L, 1, priv, STS_KEY_PRIVATE, "public_key")) return stsl_fail(L, "%s", lua_tostring(L, -1));
    int rc = sts_x25519_public(pub, priv);
    mbedtls_platform_zeroize(priv, sizeof priv);
    if (rc != 0) return luaL_error(L, "public key derivation failed");
    sts_key_format(text, pub, STS_KEY_PUBLIC);
    lua_pushstring(L, text);
    return 1;
}

/* sts.hex(bytes) -> lowercase hex digits */
static int l_hex(lua_State *L)
{
    size_t len;
    const char *bytes = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    sts_hex_encode(luaL_buffinitsize(L, &b, 2 * len + 1), (const uint8_t *)bytes, len);
    luaL_pushresultsize(&b, 2 * len);
    return 1;
}

/* sts.unhex(digits) -> bytes | nil, message (either case; an even count) */
static int l_unhex(lua_State *L)
{
    size_t len;
    const char *hex = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, len / 2 + 1);
    int n = sts_hex_decode(out, len / 2 + 1, hex, len);
    if (n < 0) return stsl_fail(L, "not hex digits");
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

void stsl_open_crypto(lua_State *L)
{
    static const luaL_Reg functions[] = {
        { "random", l_random }, { "hkdf", l_hkdf }, { "encrypt", l_encrypt }, { "decrypt", l_decrypt },
        { "fingerprint", l_fingerprint }, { "public_key", l_public_key }, { "hex", l_hex }, { "unhex", l_unhex },
        { NULL, NULL },
    };
    luaL_setfuncs(L, functions, 0);
}
