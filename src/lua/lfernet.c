/* sts.fernet: Fernet tokens (src/crypto/fernet.h), as Python's
 * cryptography.fernet makes and reads them.
 *
 *   local token = sts.fernet.encrypt(key, plaintext [, { time = t, iv = iv16 }])
 *   local text, err = sts.fernet.decrypt(key, token [, { ttl = s, now = t }])
 *
 * key: the 32 raw bytes (signing key then encryption key, as the lab
 * protocol's HKDF gives them) or the 44-character base64url text Python's
 * Fernet.generate_key() prints. A token that does not verify gives nil and
 * "invalid token: <why>", one past its ttl nil and "expired". */
#include "lua/internal.h"
#include "crypto/base64.h"
#include "crypto/fernet.h"
#include "util/error.h"

#include <mbedtls/platform_util.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_TEXT_LEN 44 /* base64url of 32 bytes, with its '=' */
#define IV_LEN 16

/* Copies the key argument at idx, raw or base64url, into key. */
static void check_key(lua_State *L, int idx, uint8_t key[STS_FERNET_KEY_LEN])
{
    size_t len, n = 0;
    const char *s = luaL_checklstring(L, idx, &len);
    uint8_t raw[STS_FERNET_KEY_LEN + 2];

    if (len == STS_FERNET_KEY_LEN) {
        memcpy(key, s, len);
        return;
    }
    int ok = len == KEY_TEXT_LEN && sts_base64url_decode(raw, sizeof raw, &n, s, len) == 0 &&
             n == STS_FERNET_KEY_LEN;
    if (ok) memcpy(key, raw, STS_FERNET_KEY_LEN);
    mbedtls_platform_zeroize(raw, sizeof raw);
    luaL_argcheck(L, ok, idx, "key must be 32 bytes or their 44-character base64url text");
}

/* A time option of the options table at idx (0: none): whole seconds since
 * the epoch, the clock's when absent. */
static uint64_t opt_time(lua_State *L, int idx, const char *name)
{
    int absent = idx == 0 || lua_getfield(L, idx, name) == LUA_TNIL;
    if (idx != 0) lua_pop(L, 1);
    if (absent) return (uint64_t)time(NULL);
    lua_Integer t = stsl_opt_integer(L, idx, name, 0);
    if (t < 0) luaL_error(L, "option '%s' must be a time in seconds since 1970", name);
    return (uint64_t)t;
}

/* The iv option: 16 bytes, or NULL when absent (a fresh random one). The
 * string stays reachable from the options table. */
static const char *opt_iv(lua_State *L, int idx)
{
    const char *iv = NULL;
    if (lua_getfield(L, idx, "iv") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) != IV_LEN)
            luaL_error(L, "option 'iv' must be a 16-byte string");
        iv = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    return iv;
}

/* sts.fernet.encrypt(key, plaintext [, { time, iv }]) -> token */
static int l_encrypt(lua_State *L)
{
    static const char *const known[] = { "time", "iv", NULL };
    uint8_t key[STS_FERNET_KEY_LEN];
    size_t len;
    const char *pt = luaL_checklstring(L, 2, &len);
    const char *iv = NULL;
    int opts = 0;

    if (!lua_isnoneornil(L, 3)) {
        stsl_check_options(L, 3, "sts.fernet.encrypt", known);
        opts = 3;
        iv = opt_iv(L, 3);
    }
    uint64_t now = opt_time(L, opts, "time");
    check_key(L, 1, key);
    char *token;
    size_t toklen;
    int err = sts_fernet_encrypt(key, (const uint8_t *)pt, len, now, (const uint8_t *)iv, &token, &toklen);
    mbedtls_platform_zeroize(key, sizeof key);
    if (err != 0) return luaL_error(L, "sts.fernet.encrypt: %s", sts_strerror(err));
    lua_pushlstring(L, token, toklen);
    free(token);
    return 1;
}

/* sts.fernet.decrypt(key, token [, { ttl, now }]) -> plaintext | nil, message */
static int l_decrypt(lua_State *L)
{
    static const char *const known[] = { "ttl", "now", NULL };
    uint8_t key[STS_FERNET_KEY_LEN];
    size_t toklen, len;
    const char *token = luaL_checklstring(L, 2, &toklen);
    lua_Integer ttl = 0;
    int opts = 0;

    if (!lua_isnoneornil(L, 3)) {
        stsl_check_options(L, 3, "sts.fernet.decrypt", known);
        opts = 3;
        ttl = stsl_opt_integer(L, 3, "ttl", 0);
        if (ttl < 0) luaL_error(L, "option 'ttl' must not be negative");
    }
    uint64_t now = opt_time(L, opts, "now");
    check_key(L, 1, key);
    uint8_t *pt;
    int err = sts_fernet_decrypt(key, token, toklen, ttl, now, &pt, &len);
    mbedtls_platform_zeroize(key, sizeof key);
    if (err == STS_ERR_EXPIRED) return stsl_fail(L, "expired");
    if (err == STS_ERR_NOMEM) return luaL_error(L, "out of memory");
    if (err != 0) return stsl_fail(L, "invalid token: %s", sts_strerror(err));
    lua_pushlstring(L, (const char *)pt, len);
    mbedtls_platform_zeroize(pt, len);
    free(pt);
    return 1;
}

void stsl_open_fernet(lua_State *L)
{
    static const luaL_Reg functions[] = {
        { "encrypt", l_encrypt }, { "decrypt", l_decrypt }, { NULL, NULL },
    };
    luaL_newlib(L, functions);
    lua_setfield(L, -2, "fernet");
}
