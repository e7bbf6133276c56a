/* sts.noise: the Noise engine (src/proto/noise.h) for scripts and test
 * vectors.
 *
 *   local hs = sts.noise.handshake{ protocol = "Noise_XX_25519_ChaChaPoly_SHA256",
 *                                   initiator = true, s = key, prologue = "..." }
 *   hs:action()  --> "write" | "read" | "split" | "failed"
 *   hs:write([payload]) --> message          hs:read(message) --> payload
 *   hs:hash(), hs:remote_static(), hs:split() --> send, recv
 *   send:encrypt(plaintext [, ad]) --> ciphertext
 *   recv:decrypt(ciphertext [, ad]) --> plaintext
 *
 * Keys are 32-byte binary strings (s, e: private; rs, re: public); psks a
 * list of 32-byte strings. Wrong argument types are errors; a handshake or
 * decryption that fails returns nil and a message. */
#include "lua/internal.h"
#include "proto/noise.h"
#include "util/error.h"

#include <string.h>

#define HANDSHAKE_MT "sts.noise.handshake"
#define CIPHER_MT "sts.noise.cipher"
#define MAX_PSKS 8

struct lhandshake {
    struct sts_noise_hs *hs;
};

static struct lhandshake *check_handshake(lua_State *L)
{
    struct lhandshake *h = luaL_checkudata(L, 1, HANDSHAKE_MT);
    if (!h->hs) luaL_error(L, "the handshake is closed");
    return h;
}

static struct sts_noise_cipher *check_cipher(lua_State *L)
{
    return luaL_checkudata(L, 1, CIPHER_MT);
}

static int fail(lua_State *L, int err)
{
    return stsl_fail(L, "%s", sts_strerror(err));
}

/* ---- sts.noise.handshake{...} ---- */

/* A string option with its length (any bytes), NULL when absent. The string
 * stays reachable from the options table. */
static const char *opt_lstring(lua_State *L, int idx, const char *key, size_t *len)
{
    const char *s = NULL;

    *len = 0;
    if (stsl_opt_string(L, idx, key, NULL)) { /* checks the type */
        lua_getfield(L, idx, key);
        s = lua_tolstring(L, -1, len);
        lua_pop(L, 1);
    }
    return s;
}

static const uint8_t *opt_key(lua_State *L, int idx, const char *key)
{
    size_t len;
    const char *s = opt_lstring(L, idx, key, &len);

    if (s && len != STS_NOISE_KEY_LEN) luaL_error(L, "option '%s' must be a 32-byte key", key);
    return (const uint8_t *)s;
}

/* The psks option, copied into psks; returns how many. */
static size_t opt_psks(lua_State *L, int idx, uint8_t psks[MAX_PSKS][32])
{
    size_t n = 0;

    if (!stsl_opt_table(L, idx, "psks")) return 0;
    for (n = 0; lua_rawgeti(L, -1, (lua_Integer)n + 1) != LUA_TNIL; n++) {
        size_t len = 0;
        const char *psk = lua_tolstring(L, -1, &len);
        if (!psk || len != 32 || n == MAX_PSKS)
            luaL_error(L, "option 'psks' must list at most %d 32-byte keys", MAX_PSKS);
        memcpy(psks[n], psk, 32);
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return n;
}

static int l_handshake(lua_State *L)
{
    static const char *const known[] = {
        "protocol", "initiator", "prologue", "s", "e", "rs", "re", "psks", NULL,
    };
    uint8_t psks[MAX_PSKS][32];
    struct sts_noise_keys keys = { 0 };
    struct lhandshake *h;
    const char *protocol, *prologue;
    size_t prologue_len = 0;
    int initiator, err;

    stsl_check_options(L, 1, "sts.noise.handshake", known);
    protocol = stsl_opt_string(L, 1, "protocol", NULL);
    initiator = stsl_opt_boolean(L, 1, "initiator", -1);
    if (!protocol || initiator < 0)
        return luaL_error(L, "sts.noise.handshake needs 'protocol' and 'initiator'");
    prologue = opt_lstring(L, 1, "prologue", &prologue_len);
    keys.s = opt_key(L, 1, "s");
    keys.e = opt_key(L, 1, "e");
    keys.rs = opt_key(L, 1, "rs");
    keys.re = opt_key(L, 1, "re");
    keys.npsks = opt_psks(L, 1, psks);
    keys.psks = (const uint8_t(*)[32])psks;

    h = lua_newuserdatauv(L, sizeof *h, 0);
    h->hs = NULL;
    luaL_setmetatable(L, HANDSHAKE_MT);
    err = sts_noise_hs_new(&h->hs, protocol, initiator, (const uint8_t *)prologue, prologue_len,
                           &keys);
    memset(psks, 0, sizeof psks); /* the engine has its own copy */
    if (err != 0) return stsl_fail(L, "%s: %s", protocol, sts_strerror(err));
    return 1;
}

static int hs_action(lua_State *L)
{
    static const char *const names[] = {
        [STS_NOISE_WRITE] = "write", [STS_NOISE_READ] = "read",
        [STS_NOISE_SPLIT] = "split", [STS_NOISE_FAILED] = "failed",
    };
    lua_pushstring(L, names[sts_noise_hs_action(check_handshake(L)->hs)]);
    return 1;
}

static int hs_write(lua_State *L)
{
    struct lhandshake *h = check_handshake(L);
    size_t len = 0, out_len = 0;
    const char *payload = luaL_optlstring(L, 2, "", &len);
    luaL_Buffer b;
    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, STS_NOISE_MAX_MSG);
    int err = sts_noise_hs_write(h->hs, (const uint8_t *)payload, len, out, STS_NOISE_MAX_MSG,
                                 &out_len);

    if (err != 0) return fail(L, err);
    luaL_pushresultsize(&b, out_len);
    return 1;
}

static int hs_read(lua_State *L)
{
    struct lhandshake *h = check_handshake(L);
    size_t len, out_len = 0;
    const char *msg = luaL_checklstring(L, 2, &len);
    luaL_Buffer b;
    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, len + 1);
    int err = sts_noise_hs_read(h->hs, (const uint8_t *)msg, len, out, len, &out_len);

    if (err != 0) return fail(L, err);
    luaL_pushresultsize(&b, out_len);
    return 1;
}

static int hs_hash(lua_State *L)
{
    size_t len;
    const uint8_t *hash = sts_noise_hs_hash(check_handshake(L)->hs, &len);
    lua_pushlstring(L, (const char *)hash, len);
    return 1;
}

static int hs_remote_static(lua_State *L)
{
    const uint8_t *rs = sts_noise_hs_remote_static(check_handshake(L)->hs);
    if (rs) lua_pushlstring(L, (const char *)rs, STS_NOISE_KEY_LEN);
    else lua_pushnil(L);
    return 1;
}

static int hs_split(lua_State *L)
{
    struct lhandshake *h = check_handshake(L);
    struct sts_noise_cipher *send = lua_newuserdatauv(L, sizeof *send, 0);
    struct sts_noise_cipher *recv = lua_newuserdatauv(L, sizeof *recv, 0);
    int err;

    memset(send, 0, sizeof *send);
    memset(recv, 0, sizeof *recv);
    luaL_setmetatable(L, CIPHER_MT);
    lua_pushvalue(L, -2);
    luaL_setmetatable(L, CIPHER_MT);
    lua_pop(L, 1);
    if ((err = sts_noise_hs_split(h->hs, send, recv)) != 0) return fail(L, err);
    return 2;
}

static int hs_close(lua_State *L)
{
    struct lhandshake *h = luaL_checkudata(L, 1, HANDSHAKE_MT);
    sts_noise_hs_free(h->hs); /* wipes */
    h->hs = NULL;
    return 0;
}

static int hs_tostring(lua_State *L)
{
    struct lhandshake *h = luaL_checkudata(L, 1, HANDSHAKE_MT);
    lua_pushfstring(L, "sts.noise.handshake (%s)", h->hs ? "open" : "closed");
    return 1;
}

/* ---- transport ciphers ---- */

/* encrypt (seal) or decrypt, with the cipher's own nonce. */
static int cipher_apply(lua_State *L, int seal)
{
    struct sts_noise_cipher *cs = check_cipher(L);
    size_t len, adlen = 0, outlen;
    const char *in = luaL_checklstring(L, 2, &len);
    const char *ad = luaL_optlstring(L, 3, "", &adlen);
    luaL_Buffer b;
    uint8_t *out;
    int err;

    if (len > STS_NOISE_MAX_MSG) return fail(L, STS_ERR_TOO_BIG);
    if (!seal && len < STS_NOISE_TAG_LEN) return fail(L, STS_ERR_TRUNCATED);
    outlen = seal ? len + STS_NOISE_TAG_LEN : len - STS_NOISE_TAG_LEN;
    out = (uint8_t *)luaL_buffinitsize(L, &b, outlen + 1);
    err = seal ? sts_noise_encrypt(cs, (const uint8_t *)ad, adlen, (const uint8_t *)in, len, out)
               : sts_noise_decrypt(cs, (const uint8_t *)ad, adlen, (const uint8_t *)in, len, out);
    if (err != 0) return fail(L, err);
    luaL_pushresultsize(&b, outlen);
    return 1;
}

static int cipher_encrypt(lua_State *L)
{
    return cipher_apply(L, 1);
}

static int cipher_decrypt(lua_State *L)
{
    return cipher_apply(L, 0);
}

static int cipher_rekey(lua_State *L)
{
    int err = sts_noise_rekey(check_cipher(L));
    if (err != 0) return fail(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

static int cipher_wipe(lua_State *L)
{
    sts_noise_cipher_wipe(check_cipher(L));
    return 0;
}

static int cipher_tostring(lua_State *L)
{
    struct sts_noise_cipher *cs = check_cipher(L);
    lua_pushfstring(L, "sts.noise.cipher (%s)", cs->has_key ? "keyed" : "no key");
    return 1;
}

void stsl_open_noise(lua_State *L)
{
    static const luaL_Reg hs_methods[] = {
        { "action", hs_action }, { "write", hs_write }, { "read", hs_read },
        { "hash", hs_hash }, { "remote_static", hs_remote_static }, { "split", hs_split },
        { "close", hs_close }, { NULL, NULL },
    };
    static const luaL_Reg hs_meta[] = {
        { "__gc", hs_close }, { "__close", hs_close }, { "__tostring", hs_tostring }, { NULL, NULL },
    };
    static const luaL_Reg cipher_methods[] = {
        { "encrypt", cipher_encrypt }, { "decrypt", cipher_decrypt }, { "rekey", cipher_rekey },
        { "wipe", cipher_wipe }, { NULL, NULL },
    };
    static const luaL_Reg cipher_meta[] = {
        { "__gc", cipher_wipe }, { "__close", cipher_wipe }, { "__tostring", cipher_tostring },
        { NULL, NULL },
    };
    static const luaL_Reg functions[] = { { "handshake", l_handshake }, { NULL, NULL } };

    stsl_new_class(L, HANDSHAKE_MT, hs_meta, hs_methods);
    stsl_new_class(L, CIPHER_MT, cipher_meta, cipher_methods);
    luaL_newlib(L, functions);
    lua_setfield(L, -2, "noise");
}
