/* sts.dh: finite-field Diffie-Hellman for the lab protocol
 * (src/crypto/dh.h), with public keys as PEM text, as Python writes them.
 *
 *   local params = assert(sts.dh.params(pem_text))   -- "BEGIN DH PARAMETERS"
 *   params:bits()                                     --> 4096
 *   local key = params:keypair()
 *   key.public                                        --> "-----BEGIN PUBLIC KEY-----..."
 *   key:derive(peer)          --> the 32-byte lab key | nil, message
 *   key:secret(peer)          --> the padded shared secret | nil, message
 *   local peer = assert(sts.dh.public(pem_text))      -- a peer's key, parsed once
 *   peer:params(), peer:bits(), peer:pem()
 *
 * `peer` is a PEM text or a parsed public key. Bad input from outside (a
 * PEM that does not parse, a peer value out of range, another group) gives
 * nil and a message; private values are wiped on close, __gc and __close. */
#include "lua/internal.h"
#include "crypto/dh.h"
#include "util/error.h"

#include <mbedtls/platform_util.h>
#include <stdlib.h>
#include <string.h>

#define PARAMS_MT "sts.dh.params"
#define KEY_MT "sts.dh.key"
#define PUBLIC_MT "sts.dh.public"

struct lkey {
    struct sts_dh_key key;
    int closed;
};

static struct sts_dh_params *check_params(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, PARAMS_MT);
}

static struct sts_dh_public *check_public(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, PUBLIC_MT);
}

static struct lkey *check_key(lua_State *L, int idx)
{
    struct lkey *k = luaL_checkudata(L, idx, KEY_MT);
    if (k->closed) luaL_error(L, "the key is closed");
    return k;
}

static int same_group(const struct sts_dh_params *a, const struct sts_dh_params *b)
{
    return mbedtls_mpi_cmp_mpi(&a->p, &b->p) == 0 && mbedtls_mpi_cmp_mpi(&a->g, &b->g) == 0;
}

static int push_bits(lua_State *L, const struct sts_dh_params *params)
{
    lua_pushinteger(L, (lua_Integer)mbedtls_mpi_bitlen(&params->p));
    return 1;
}

/* Pushes a new, empty params userdata. */
static struct sts_dh_params *push_params(lua_State *L)
{
    struct sts_dh_params *params = lua_newuserdatauv(L, sizeof *params, 0);
    sts_dh_params_init(params);
    luaL_setmetatable(L, PARAMS_MT);
    return params;
}

static void copy_params(lua_State *L, struct sts_dh_params *dst, const struct sts_dh_params *src)
{
    if (mbedtls_mpi_copy(&dst->p, &src->p) != 0 || mbedtls_mpi_copy(&dst->g, &src->g) != 0)
        luaL_error(L, "out of memory");
}

/* ---- parameters ---- */

/* sts.dh.params(pem) -> params | nil, message */
static int l_params(lua_State *L)
{
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    struct sts_dh_params *params = push_params(L);
    int err = sts_dh_params_parse_pem(params, pem, len);
    if (err != 0) return stsl_fail(L, "DH parameters: %s", sts_strerror(err));
    return 1;
}

static int params_bits(lua_State *L)
{
    return push_bits(L, check_params(L, 1));
}

/* params:keypair() -> key, with key.public its PEM text */
static int params_keypair(lua_State *L)
{
    const struct sts_dh_params *params = check_params(L, 1);
    struct lkey *k = lua_newuserdatauv(L, sizeof *k, 1);
    char *pem;
    size_t len;

    sts_dh_key_init(&k->key);
    k->closed = 0;
    luaL_setmetatable(L, KEY_MT);
    int err = sts_dh_key_generate(&k->key, params);
    if (err == 0) err = sts_dh_public_write_pem(&k->key.pub, &pem, &len);
    if (err != 0) return luaL_error(L, "DH key generation: %s", sts_strerror(err));
    lua_pushlstring(L, pem, len);
    free(pem);
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static int params_eq(lua_State *L)
{
    const struct sts_dh_params *other = luaL_testudata(L, 2, PARAMS_MT);
    lua_pushboolean(L, other && same_group(check_params(L, 1), other));
    return 1;
}

static int params_gc(lua_State *L)
{
    sts_dh_params_free(check_params(L, 1));
    return 0;
}

static int params_tostring(lua_State *L)
{
    const struct sts_dh_params *params = check_params(L, 1);
    lua_pushfstring(L, "sts.dh.params (%d bits)", (int)mbedtls_mpi_bitlen(&params->p));
    return 1;
}

/* ---- public keys ---- */

/* Pushes a parsed public key from the PEM text at idx; returns it, or NULL
 * with nil and a message pushed instead. */
static struct sts_dh_public *parse_public(lua_State *L, int idx)
{
    size_t len;
    const char *pem = luaL_checklstring(L, idx, &len);
    struct sts_dh_public *pub = lua_newuserdatauv(L, sizeof *pub, 0);
    sts_dh_public_init(pub);
    luaL_setmetatable(L, PUBLIC_MT);
    int err = sts_dh_public_parse_pem(pub, pem, len);
    if (err == 0) return pub;
    lua_pop(L, 1);
    stsl_fail(L, "DH public key: %s", sts_strerror(err));
    return NULL;
}

/* sts.dh.public(pem) -> public key | nil, message */
static int l_public(lua_State *L)
{
    return parse_public(L, 1) ? 1 : 2;
}

static int public_bits(lua_State *L)
{
    return push_bits(L, &check_public(L, 1)->params);
}

/* peer:params() -> the group the key belongs to, to make a key pair in it */
static int public_params(lua_State *L)
{
    const struct sts_dh_public *pub = check_public(L, 1);
    copy_params(L, push_params(L), &pub->params);
    return 1;
}

/* peer:pem() -> the key as PEM in the PKCS#3 form, whatever form it came in */
static int public_pem(lua_State *L)
{
    char *pem;
    size_t len;
    int err = sts_dh_public_write_pem(check_public(L, 1), &pem, &len);
    if (err != 0) return luaL_error(L, "DH public key: %s", sts_strerror(err));
    lua_pushlstring(L, pem, len);
    free(pem);
    return 1;
}

static int public_gc(lua_State *L)
{
    sts_dh_public_free(check_public(L, 1));
    return 0;
}

static int public_tostring(lua_State *L)
{
    const struct sts_dh_public *pub = check_public(L, 1);
    lua_pushfstring(L, "sts.dh.public (%d bits)", (int)mbedtls_mpi_bitlen(&pub->params.p));
    return 1;
}

/* ---- key pairs ---- */

/* The peer argument at idx: a parsed key, or a PEM text parsed here (the
 * result is pushed). NULL with nil and a message pushed if it does not
 * parse or is in another group than key. */
static const struct sts_dh_public *check_peer(lua_State *L, int idx, const struct lkey *k)
{
    const struct sts_dh_public *peer = luaL_testudata(L, idx, PUBLIC_MT);
    if (!peer && !(peer = parse_public(L, idx))) return NULL;
    if (same_group(&k->key.pub.params, &peer->params)) return peer;
    stsl_fail(L, "DH public key: not in this key's group");
    return NULL;
}

/* key:secret(peer) -> the shared secret, left-padded to the length of p */
static int key_secret(lua_State *L)
{
    const struct lkey *k = check_key(L, 1);
    const struct sts_dh_public *peer = check_peer(L, 2, k);
    uint8_t secret[STS_DH_MAX_LEN];
    size_t len = sts_dh_params_len(&k->key.pub.params);

    if (!peer) return 2;
    int err = sts_dh_derive(&k->key, peer, secret, len);
    if (err == 0) lua_pushlstring(L, (const char *)secret, len);
    mbedtls_platform_zeroize(secret, len);
    return err == 0 ? 1 : stsl_fail(L, "DH agreement: %s", sts_strerror(err));
}

/* key:derive(peer) -> HKDF-SHA256(salt 00, secret, info 00): the Fernet key */
static int key_derive(lua_State *L)
{
    const struct lkey *k = check_key(L, 1);
    const struct sts_dh_public *peer = check_peer(L, 2, k);
    uint8_t out[STS_DH_LAB_KEY_LEN];

    if (!peer) return 2;
    int err = sts_dh_derive_lab_key(&k->key, peer, out);
    if (err == 0) lua_pushlstring(L, (const char *)out, sizeof out);
    mbedtls_platform_zeroize(out, sizeof out);
    return err == 0 ? 1 : stsl_fail(L, "DH agreement: %s", sts_strerror(err));
}

static int key_public_pem(lua_State *L)
{
    check_key(L, 1);
    lua_getiuservalue(L, 1, 1);
    return 1;
}

static int key_params(lua_State *L)
{
    const struct lkey *k = check_key(L, 1);
    copy_params(L, push_params(L), &k->key.pub.params);
    return 1;
}

static int key_bits(lua_State *L)
{
    return push_bits(L, &check_key(L, 1)->key.pub.params);
}

static int key_close(lua_State *L)
{
    struct lkey *k = luaL_checkudata(L, 1, KEY_MT);
    if (!k->closed) sts_dh_key_free(&k->key); /* wipes x */
    k->closed = 1;
    return 0;
}

/* key.public is the PEM text; other names are methods. */
static int key_index(lua_State *L)
{
    const char *name = luaL_checkstring(L, 2);
    if (strcmp(name, "public") == 0) return key_public_pem(L);
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

static int key_tostring(lua_State *L)
{
    struct lkey *k = luaL_checkudata(L, 1, KEY_MT);
    if (k->closed) lua_pushliteral(L, "sts.dh.key (closed)");
    else lua_pushfstring(L, "sts.dh.key (%d bits)", (int)mbedtls_mpi_bitlen(&k->key.pub.params.p));
    return 1;
}

void stsl_open_dh(lua_State *L)
{
    static const luaL_Reg params_methods[] = {
        { "bits", params_bits }, { "keypair", params_keypair }, { NULL, NULL },
    };
    static const luaL_Reg params_meta[] = {
        { "__eq", params_eq }, { "__gc", params_gc }, { "__tostring", params_tostring },
        { NULL, NULL },
    };
    static const luaL_Reg public_methods[] = {
        { "bits", public_bits }, { "params", public_params }, { "pem", public_pem }, { NULL, NULL },
    };
    static const luaL_Reg public_meta[] = {
        { "__gc", public_gc }, { "__tostring", public_tostring }, { NULL, NULL },
    };
    static const luaL_Reg key_methods[] = {
        { "derive", key_derive }, { "secret", key_secret }, { "public_pem", key_public_pem },
        { "params", key_params }, { "bits", key_bits }, { "close", key_close }, { NULL, NULL },
    };
    static const luaL_Reg key_meta[] = {
        { "__gc", key_close }, { "__close", key_close }, { "__tostring", key_tostring },
        { NULL, NULL },
    };
    static const luaL_Reg functions[] = {
        { "params", l_params }, { "public", l_public }, { NULL, NULL },
    };

    stsl_new_class(L, PARAMS_MT, params_meta, params_methods);
    stsl_new_class(L, PUBLIC_MT, public_meta, public_methods);
    luaL_newmetatable(L, KEY_MT);
    luaL_setfuncs(L, key_meta, 0);
    luaL_newlib(L, key_methods);
    lua_pushcclosure(L, key_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, functions);
    lua_setfield(L, -2, "dh");
}
