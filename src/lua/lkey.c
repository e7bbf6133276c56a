/* sts.key: a private key held in C, so the secret never becomes a Lua string
 * (which could not be wiped). sts.keygen() and sts.load_key() make one; it
 * is accepted wherever a private key is (stsl_check_key); :close(), a
 * to-be-closed variable or the collector wipe it.
 *
 *   local key, public = sts.keygen()
 *   assert(key:save("me.key"))                      -- mode 0600, a new file
 *   assert(sts.write_public_key("me.pub", public))
 *   print(key, key:fingerprint())                   -- never the secret
 *   key:close()
 */
#include "lua/internal.h"
#include "crypto/keyfile.h"
#include "crypto/x25519.h"

#include <mbedtls/platform_util.h>
#include <string.h>

#define KEY_MT "sts.key"

struct lkey {
    uint8_t priv[32], pub[32];
    int open;
};

static void wipe(struct lkey *k)
{
    mbedtls_platform_zeroize(k, sizeof *k);
}

/* Pushes a new key, not yet open: its maker fills it in place, so the secret
 * is never copied through the C stack. */
static struct lkey *new_key(lua_State *L)
{
    struct lkey *k = lua_newuserdatauv(L, sizeof *k, 0);
    memset(k, 0, sizeof *k);
    luaL_setmetatable(L, KEY_MT);
    return k;
}

static struct lkey *check_open(lua_State *L, int idx)
{
    struct lkey *k = luaL_checkudata(L, idx, KEY_MT);
    if (!k->open) luaL_error(L, "attempt to use a closed key");
    return k;
}

const uint8_t *stsl_test_key(lua_State *L, int idx, const char *what)
{
    const struct lkey *k = luaL_testudata(L, idx, KEY_MT);
    if (k && !k->open) luaL_error(L, "%s: attempt to use a closed key", what);
    return k ? k->priv : NULL;
}

/* The options of the calls that write files: { force = true } or nothing. */
static int opt_force(lua_State *L, int idx, const char *what)
{
    static const char *const known[] = { "force", NULL };
    if (lua_isnoneornil(L, idx)) return 0;
    stsl_check_options(L, idx, what, known);
    return stsl_opt_boolean(L, idx, "force", 0);
}

static int save(lua_State *L, const char *path, const uint8_t key[32], enum sts_key_kind kind, int force)
{
    char err[512];
    if (sts_key_save(path, key, kind, force, err, sizeof err) != 0) return stsl_fail(L, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

static void push_public(lua_State *L, const struct lkey *k)
{
    char text[STS_KEY_TEXT_MAX];
    sts_key_format(text, k->pub, STS_KEY_PUBLIC);
    lua_pushstring(L, text);
}

/* key:public() -> public key text */
static int key_public(lua_State *L)
{
    push_public(L, check_open(L, 1));
    return 1;
}

static void push_fingerprint(lua_State *L, const struct lkey *k)
{
    char fp[STS_FINGERPRINT_LEN + 1];
    if (sts_key_fingerprint(fp, k->pub) != 0) luaL_error(L, "fingerprint failed");
    lua_pushstring(L, fp);
}

/* key:fingerprint() -> "SHA256:..." of the public key */
static int key_fingerprint(lua_State *L)
{
    push_fingerprint(L, check_open(L, 1));
    return 1;
}

/* key:save(path [, { force = true }]) -> true | nil, message */
static int key_save(lua_State *L)
{
    struct lkey *k = check_open(L, 1);
    const char *path = luaL_checkstring(L, 2);
    return save(L, path, k->priv, STS_KEY_PRIVATE, opt_force(L, 3, "key:save"));
}

/* key:close(), also __gc and __close: wipes the key; closing twice is harmless. */
static int key_close(lua_State *L)
{
    wipe(luaL_checkudata(L, 1, KEY_MT));
    return 0;
}

static int key_tostring(lua_State *L)
{
    const struct lkey *k = luaL_checkudata(L, 1, KEY_MT);
    if (!k->open) {
        lua_pushliteral(L, "sts.key (closed)");
        return 1;
    }
    push_fingerprint(L, k);
    lua_pushfstring(L, "sts.key (%s)", lua_tostring(L, -1));
    return 1;
}

/* sts.keygen() -> key, public key text */
static int l_keygen(lua_State *L)
{
    struct lkey *k = new_key(L);
    if (sts_x25519_keypair(k->priv, k->pub) != 0) return luaL_error(L, "key generation failed");
    k->open = 1;
    push_public(L, k);
    return 2;
}

/* sts.load_key(path or text) -> key | nil, message */
static int l_load_key(lua_State *L)
{
    struct lkey *k = new_key(L);
    if (!stsl_check_key(L, 1, k->priv, STS_KEY_PRIVATE, "load_key")) {
        wipe(k);
        return stsl_fail(L, "%s", lua_tostring(L, -1));
    }
    if (sts_x25519_public(k->pub, k->priv) != 0) {
        wipe(k);
        return luaL_error(L, "load_key: public key derivation failed");
    }
    k->open = 1;
    return 1;
}

/* sts.write_public_key(path, public [, { force = true }]) -> true | nil, message */
static int l_write_public_key(lua_State *L)
{
    uint8_t pub[32];
    const char *path = luaL_checkstring(L, 1);
    int force = opt_force(L, 3, "write_public_key");
    if (!stsl_check_key(L, 2, pub, STS_KEY_PUBLIC, "write_public_key")) return stsl_fail(L, "%s", lua_tostring(L, -1));
    return save(L, path, pub, STS_KEY_PUBLIC, force);
}

/* sts.check_trust(path) -> number of keys | nil, message: the file read as
 * every trust option reads it, for a config check that must not open it
 * with io.open (which waits forever on a FIFO). */
static int l_check_trust(lua_State *L)
{
    struct sts_trust t;
    char err[512];
    if (sts_trust_load(&t, luaL_checkstring(L, 1), err, sizeof err) != 0) return stsl_fail(L, "%s", err);
    lua_pushinteger(L, (lua_Integer)t.n);
    sts_trust_free(&t);
    return 1;
}

void stsl_open_key(lua_State *L)
{
    static const luaL_Reg meta[] = {
        { "__gc", key_close }, { "__close", key_close }, { "__tostring", key_tostring }, { NULL, NULL },
    };
    static const luaL_Reg methods[] = {
        { "public", key_public }, { "fingerprint", key_fingerprint }, { "save", key_save },
        { "close", key_close }, { NULL, NULL },
    };
    static const luaL_Reg functions[] = {
        { "keygen", l_keygen }, { "load_key", l_load_key }, { "write_public_key", l_write_public_key },
        { "check_trust", l_check_trust }, { NULL, NULL },
    };
    stsl_new_class(L, KEY_MT, meta, methods);
    luaL_setfuncs(L, functions, 0);
}
