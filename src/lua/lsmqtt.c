/* sts.smqtt: the Java SMQTT group protocol's codec (src/proto/smqtt.h) for
 * the Lua key server and member of the compatibility mode (docs/SMQTT.md).
 * No I/O and no state: JSON join messages in and out, key material texts,
 * data frames, the SLOTTED tree.
 *
 *   json = smqtt.encode_request({ member, group, expires?, seq }, key)
 *   req, why = smqtt.decode_request(json)      smqtt.request_valid(req, key)
 *   json = smqtt.encode_leave({ member, group, seq }, key)
 *   t, why = smqtt.decode_leave(json)          smqtt.leave_valid(t, key)
 *   json = smqtt.encode_response({ member, group, expires?, slot?, depth?, time?, seq },
 *                                key, material [, iv])
 *   resp, material = smqtt.decode_response(json, key)   (or nil, why)
 *   smqtt.material_key(gk)  smqtt.material_slotted(k2, nodes)  smqtt.parse_material(text)
 *   frame = smqtt.seal(gk, index, plaintext [, iv])
 *   plaintext, index = smqtt.open(gk, frame)   (or nil, why)   smqtt.index(frame)
 *   smqtt.cover(root, depth, first, last)  smqtt.leaf(nodes, depth, slot)
 *   smqtt.child(key, bit)  smqtt.grant(elapsed_ms, slot_seconds, expires)
 *
 * Keys are 16-byte strings (this mode's keys are that short). A decoded
 * message is a table of its fields, integers as integers, auth as 32
 * lowercase hex digits; an optional field that is absent is nil. nodes are
 * lists of { depth =, pos =, key = } (positional { d, p, k } is accepted as
 * input). Bad arguments raise errors; input that does not decode, verify or
 * decrypt gives nil and a reason. */
#include "lua/internal.h"
#include "proto/smqtt.h"
#include "util/error.h"
#include "util/hex.h"

#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_OUT_MAX 8192 /* ids escaped at 6 bytes each, key material in base64 */

static void check_bytes(lua_State *L, int idx, uint8_t *out, size_t len, const char *what)
{
    size_t n;
    const char *s = luaL_checklstring(L, idx, &n);
    if (n != len) luaL_argerror(L, idx, lua_pushfstring(L, "%s must be %d bytes", what, (int)len));
    memcpy(out, s, len);
}

static void check_key(lua_State *L, int idx, uint8_t key[STS_SMQTT_KEY_LEN])
{
    check_bytes(L, idx, key, STS_SMQTT_KEY_LEN, "key");
}

/* An optional iv argument: 16 bytes into iv, or NULL when absent. */
static const uint8_t *opt_iv(lua_State *L, int idx, uint8_t iv[STS_SMQTT_IV_LEN])
{
    if (lua_isnoneornil(L, idx)) return NULL;
    check_bytes(L, idx, iv, STS_SMQTT_IV_LEN, "iv");
    return iv;
}

/* ---- Message tables ---- */

static void field_id(lua_State *L, int t, const char *name, struct sts_smqtt_id *id)
{
    size_t len = 0;
    const char *s = lua_getfield(L, t, name) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (s == NULL || sts_smqtt_id_set(id, s, len) != 0)
        luaL_error(L, "sts.smqtt: field '%s' must be a string of 1 to %d bytes", name, STS_SMQTT_ID_MAX);
    lua_pop(L, 1);
}

/* A non-negative integer field; -1 when an optional one is absent. */
static int64_t field_int(lua_State *L, int t, const char *name, int required)
{
    int type = lua_getfield(L, t, name);
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (type == LUA_TNIL && !required) return -1;
    if (type != LUA_TNUMBER || !ok || v < 0)
        luaL_error(L, "sts.smqtt: field '%s' must be a non-negative integer", name);
    return v;
}

static void field_auth(lua_State *L, int t, uint8_t auth[STS_SMQTT_MAC_LEN])
{
    size_t len = 0;
    const char *s = lua_getfield(L, t, "auth") == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (s == NULL || sts_hex_decode(auth, STS_SMQTT_MAC_LEN, s, len) != STS_SMQTT_MAC_LEN)
        luaL_error(L, "sts.smqtt: field 'auth' must be %d hex digits", 2 * STS_SMQTT_MAC_LEN);
    lua_pop(L, 1);
}

static void set_id(lua_State *L, const char *name, const struct sts_smqtt_id *id)
{
    lua_pushlstring(L, id->text, id->len);
    lua_setfield(L, -2, name);
}

/* t[name] = v for the table on top, nothing for an absent -1. */
static void set_int(lua_State *L, const char *name, int64_t v)
{
    if (v < 0) return;
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, name);
}

static void set_auth(lua_State *L, const uint8_t auth[STS_SMQTT_MAC_LEN])
{
    char hex[2 * STS_SMQTT_MAC_LEN + 1];
    sts_hex_encode(hex, auth, STS_SMQTT_MAC_LEN);
    lua_pushstring(L, hex);
    lua_setfield(L, -2, "auth");
}

static int push_json(lua_State *L, int err, const char *json, size_t len, const char *what)
{
    if (err != 0) return luaL_error(L, "sts.smqtt.%s: %s", what, sts_strerror(err));
    lua_pushlstring(L, json, len);
    return 1;
}

static const char *const request_fields[] = { "member", "group", "expires", "seq", "auth", NULL };
static const char *const leave_fields[] = { "member", "group", "seq", "auth", NULL };
static const char *const response_fields[] = { "member", "group", "expires", "slot", "depth",
                                               "time", "seq", "auth", NULL };

/* ---- Requests and leaves ----
 * The two messages a member signs have the same fields but expires (a
 * request's only) and each its own MAC and JSON. Both are held as a request
 * here, a leave's expires absent (-1); a kind says which one a function of
 * the table handles, and is its upvalue. */

struct kind {
    const char *name;    /* "request" or "leave", in the functions' names */
    const char *what;    /* in errors about its table */
    const char *const *fields;
    int has_expires;
    int (*sign)(struct sts_smqtt_request *r, const uint8_t key[STS_SMQTT_KEY_LEN]);
    int (*verify)(const struct sts_smqtt_request *r, const uint8_t key[STS_SMQTT_KEY_LEN]);
    int (*encode)(const struct sts_smqtt_request *r, char *out, size_t outmax, size_t *outlen);
    int (*decode)(struct sts_smqtt_request *r, const char *json, size_t len, char *why);
};

static struct sts_smqtt_leave leave_of(const struct sts_smqtt_request *r)
{
    struct sts_smqtt_leave l = { .member = r->member, .group = r->group, .seq = r->seq };
    memcpy(l.auth, r->auth, sizeof l.auth);
    return l;
}

static int leave_sign(struct sts_smqtt_request *r, const uint8_t key[STS_SMQTT_KEY_LEN])
{
    struct sts_smqtt_leave l = leave_of(r);
    int err = sts_smqtt_leave_sign(&l, key);
    memcpy(r->auth, l.auth, sizeof r->auth);
    return err;
}

static int leave_verify(const struct sts_smqtt_request *r, const uint8_t key[STS_SMQTT_KEY_LEN])
{
    struct sts_smqtt_leave l = leave_of(r);
    return sts_smqtt_leave_verify(&l, key);
}

static int leave_encode(const struct sts_smqtt_request *r, char *out, size_t outmax, size_t *outlen)
{
    struct sts_smqtt_leave l = leave_of(r);
    return sts_smqtt_leave_encode(&l, out, outmax, outlen);
}

static int leave_decode(struct sts_smqtt_request *r, const char *json, size_t len, char *why)
{
    struct sts_smqtt_leave l;
    int err = sts_smqtt_leave_decode(&l, json, len, why);
    if (err != 0) return err;
    *r = (struct sts_smqtt_request){ .member = l.member, .group = l.group, .expires = -1, .seq = l.seq };
    memcpy(r->auth, l.auth, sizeof r->auth);
    return 0;
}

static const struct kind request_kind = {
    "request", "sts.smqtt request", request_fields, 1, sts_smqtt_request_sign, sts_smqtt_request_verify,
    sts_smqtt_request_encode, sts_smqtt_request_decode,
};
static const struct kind leave_kind = {
    "leave", "sts.smqtt leave", leave_fields, 0, leave_sign, leave_verify, leave_encode, leave_decode,
};

static const struct kind *kind_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* A message of kind k from the table at t; auth only when with_auth. */
static void check_message(lua_State *L, int t, const struct kind *k, struct sts_smqtt_request *r,
                          int with_auth)
{
    stsl_check_options(L, t, k->what, k->fields);
    memset(r, 0, sizeof *r);
    field_id(L, t, "member", &r->member);
    field_id(L, t, "group", &r->group);
    r->expires = k->has_expires ? field_int(L, t, "expires", 0) : -1;
    r->seq = field_int(L, t, "seq", 1);
    if (with_auth) field_auth(L, t, r->auth);
}

/* smqtt.encode_request(t, key), smqtt.encode_leave(t, key) -> json */
static int l_encode(lua_State *L)
{
    const struct kind *k = kind_of(L);
    struct sts_smqtt_request r;
    uint8_t key[STS_SMQTT_KEY_LEN];
    char json[JSON_OUT_MAX], what[16];
    size_t len = 0;

    check_message(L, 1, k, &r, 0);
    check_key(L, 2, key);
    int err = k->sign(&r, key);
    mbedtls_platform_zeroize(key, sizeof key);
    if (err == 0) err = k->encode(&r, json, sizeof json, &len);
    snprintf(what, sizeof what, "encode_%s", k->name);
    return push_json(L, err, json, len, what);
}

/* smqtt.decode_request(json), smqtt.decode_leave(json) -> t | nil, why */
static int l_decode(lua_State *L)
{
    struct sts_smqtt_request r;
    char why[STS_SMQTT_WHY_LEN];
    size_t len;
    const char *json = luaL_checklstring(L, 1, &len);

    if (kind_of(L)->decode(&r, json, len, why) != 0) return stsl_fail(L, "%s", why);
    lua_createtable(L, 0, 5);
    set_id(L, "member", &r.member);
    set_id(L, "group", &r.group);
    set_int(L, "expires", r.expires);
    set_int(L, "seq", r.seq);
    set_auth(L, r.auth);
    return 1;
}

/* smqtt.request_valid(t, key), smqtt.leave_valid(t, key) -> boolean */
static int l_valid(lua_State *L)
{
    const struct kind *k = kind_of(L);
    struct sts_smqtt_request r;
    uint8_t key[STS_SMQTT_KEY_LEN];

    check_message(L, 1, k, &r, 1);
    check_key(L, 2, key);
    lua_pushboolean(L, k->verify(&r, key) == 0);
    mbedtls_platform_zeroize(key, sizeof key);
    return 1;
}

/* t.encode_K, t.decode_K and t.K_valid for kind k, the table on top. */
static void set_kind(lua_State *L, const struct kind *k)
{
    static const struct {
        const char *format;
        lua_CFunction f;
    } names[] = { { "encode_%s", l_encode }, { "decode_%s", l_decode }, { "%s_valid", l_valid } };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        lua_pushfstring(L, names[i].format, k->name);
        lua_pushlightuserdata(L, (void *)k);
        lua_pushcclosure(L, names[i].f, 1);
        lua_settable(L, -3);
    }
}

/* smqtt.encode_response(t, key, material [, iv]) -> json */
static int l_encode_response(lua_State *L)
{
    static struct sts_smqtt_response r; /* 2 KiB of key material: not on the C stack */
    uint8_t key[STS_SMQTT_KEY_LEN], iv[STS_SMQTT_IV_LEN];
    char json[JSON_OUT_MAX];
    size_t mlen, len = 0;

    stsl_check_options(L, 1, "sts.smqtt response", response_fields);
    memset(&r, 0, sizeof r);
    field_id(L, 1, "member", &r.member);
    field_id(L, 1, "group", &r.group);
    r.expires = field_int(L, 1, "expires", 0);
    r.slot = field_int(L, 1, "slot", 0);
    r.depth = field_int(L, 1, "depth", 0);
    r.time = field_int(L, 1, "time", 0);
    r.seq = field_int(L, 1, "seq", 1);
    check_key(L, 2, key);
    const char *material = luaL_checklstring(L, 3, &mlen);
    luaL_argcheck(L, mlen <= STS_SMQTT_MATERIAL_MAX, 3, "key material too long");
    const uint8_t *ivp = opt_iv(L, 4, iv);
    int err = sts_smqtt_response_seal(&r, key, material, mlen, ivp);
    mbedtls_platform_zeroize(key, sizeof key);
    if (err == 0) err = sts_smqtt_response_encode(&r, json, sizeof json, &len);
    return push_json(L, err, json, len, "encode_response");
}

/* smqtt.decode_response(json, key) -> t, material | nil, why */
static int l_decode_response(lua_State *L)
{
    static struct sts_smqtt_response r;
    uint8_t key[STS_SMQTT_KEY_LEN];
    char why[STS_SMQTT_WHY_LEN], material[STS_SMQTT_MATERIAL_MAX];
    size_t len, mlen = 0;
    const char *json = luaL_checklstring(L, 1, &len);

    check_key(L, 2, key);
    int err = sts_smqtt_response_decode(&r, json, len, why);
    if (err == 0) err = sts_smqtt_response_open(&r, key, material, sizeof material, &mlen, why);
    mbedtls_platform_zeroize(key, sizeof key);
    if (err != 0) return stsl_fail(L, "%s", why);
    lua_createtable(L, 0, 8);
    set_id(L, "member", &r.member);
    set_id(L, "group", &r.group);
    set_int(L, "expires", r.expires);
    set_int(L, "slot", r.slot);
    set_int(L, "depth", r.depth);
    set_int(L, "time", r.time);
    set_int(L, "seq", r.seq);
    set_auth(L, r.auth);
    lua_pushlstring(L, material, mlen);
    mbedtls_platform_zeroize(material, mlen);
    return 2;
}

/* ---- Tree nodes ---- */

/* A node entry's field, named or positional. */
static int node_field(lua_State *L, int t, const char *name, int pos)
{
    if (lua_getfield(L, t, name) != LUA_TNIL) return lua_type(L, -1);
    lua_pop(L, 1);
    return lua_rawgeti(L, t, pos);
}

static void check_node(lua_State *L, int t, struct sts_smqtt_node *node)
{
    int ok1, ok2;
    size_t klen = 0;

    if (lua_type(L, t) != LUA_TTABLE) luaL_error(L, "sts.smqtt: a node must be a table { depth, pos, key }");
    node_field(L, t, "depth", 1);
    node_field(L, t, "pos", 2);
    node_field(L, t, "key", 3);
    lua_Integer depth = lua_tointegerx(L, -3, &ok1), pos = lua_tointegerx(L, -2, &ok2);
    const char *key = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &klen) : NULL;
    if (!ok1 || !ok2 || depth < 0 || depth > STS_SMQTT_DEPTH_MAX || pos < 0 || pos >= (lua_Integer)1 << depth)
        luaL_error(L, "sts.smqtt: a node needs depth 0..%d and pos 0..2^depth-1", STS_SMQTT_DEPTH_MAX);
    if (key == NULL || klen != STS_SMQTT_KEY_LEN) luaL_error(L, "sts.smqtt: a node's key must be 16 bytes");
    node->depth = (uint8_t)depth;
    node->pos = (uint32_t)pos;
    memcpy(node->key, key, STS_SMQTT_KEY_LEN);
    lua_pop(L, 3);
}

/* The list of nodes at idx into nodes (room for STS_SMQTT_COVER_MAX). */
static size_t check_nodes(lua_State *L, int idx, struct sts_smqtt_node *nodes)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer n = luaL_len(L, idx);
    luaL_argcheck(L, n >= 0 && n <= STS_SMQTT_COVER_MAX, idx, "too many nodes");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        check_node(L, lua_gettop(L), &nodes[i - 1]);
        lua_pop(L, 1);
    }
    return (size_t)n;
}

static void push_nodes(lua_State *L, const struct sts_smqtt_node *nodes, size_t count)
{
    lua_createtable(L, (int)count, 0);
    for (size_t i = 0; i < count; i++) {
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, nodes[i].depth);
        lua_setfield(L, -2, "depth");
        lua_pushinteger(L, nodes[i].pos);
        lua_setfield(L, -2, "pos");
        lua_pushlstring(L, (const char *)nodes[i].key, STS_SMQTT_KEY_LEN);
        lua_setfield(L, -2, "key");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* ---- Key material texts ---- */

/* smqtt.material_key(gk) -> text */
static int l_material_key(lua_State *L)
{
    uint8_t gk[STS_SMQTT_KEY_LEN];
    char text[2 * STS_SMQTT_KEY_LEN + 1];

    check_key(L, 1, gk);
    sts_smqtt_material_key(text, gk);
    lua_pushstring(L, text);
    mbedtls_platform_zeroize(gk, sizeof gk);
    mbedtls_platform_zeroize(text, sizeof text);
    return 1;
}

/* smqtt.material_slotted(k2, nodes) -> text */
static int l_material_slotted(lua_State *L)
{
    struct sts_smqtt_node nodes[STS_SMQTT_COVER_MAX];
    uint8_t k2[STS_SMQTT_KEY_LEN];
    char text[STS_SMQTT_MATERIAL_MAX];
    size_t len;

    check_key(L, 1, k2);
    size_t count = check_nodes(L, 2, nodes);
    int err = sts_smqtt_material_slotted(text, sizeof text, &len, k2, nodes, count);
    mbedtls_platform_zeroize(k2, sizeof k2);
    mbedtls_platform_zeroize(nodes, sizeof nodes);
    if (err != 0) return luaL_error(L, "sts.smqtt.material_slotted: %s", sts_strerror(err));
    lua_pushlstring(L, text, len);
    mbedtls_platform_zeroize(text, len);
    return 1;
}

/* smqtt.parse_material(text) -> gk | k2, nodes | nil, why */
static int l_parse_material(lua_State *L)
{
    struct sts_smqtt_node nodes[STS_SMQTT_COVER_MAX];
    uint8_t key[STS_SMQTT_KEY_LEN];
    char why[STS_SMQTT_WHY_LEN];
    size_t len, count;
    const char *text = luaL_checklstring(L, 1, &len);

    if (sts_smqtt_material_parse(text, len, key, nodes, &count, why) != 0) return stsl_fail(L, "%s", why);
    lua_pushlstring(L, (const char *)key, sizeof key);
    if (count > 0) push_nodes(L, nodes, count);
    mbedtls_platform_zeroize(key, sizeof key);
    mbedtls_platform_zeroize(nodes, count * sizeof *nodes);
    return count > 0 ? 2 : 1;
}

/* ---- Data frames ---- */

/* smqtt.seal(gk, index, plaintext [, iv]) -> frame */
static int l_seal(lua_State *L)
{
    uint8_t gk[STS_SMQTT_KEY_LEN], iv[STS_SMQTT_IV_LEN];
    luaL_Buffer b;
    size_t len, n;

    check_key(L, 1, gk);
    lua_Integer index = luaL_checkinteger(L, 2);
    luaL_argcheck(L, index >= 0 && index <= 0xffff, 2, "index must be 0..65535");
    const char *pt = luaL_checklstring(L, 3, &len);
    luaL_argcheck(L, len <= STS_SMQTT_PLAINTEXT_MAX, 3, "plaintext too long");
    const uint8_t *ivp = opt_iv(L, 4, iv);
    size_t cap = len + STS_SMQTT_FRAME_OVERHEAD + STS_SMQTT_IV_LEN;
    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, cap);
    int err = sts_smqtt_seal(gk, (uint16_t)index, (const uint8_t *)pt, len, ivp, out, cap, &n);
    mbedtls_platform_zeroize(gk, sizeof gk);
    if (err != 0) return luaL_error(L, "sts.smqtt.seal: %s", sts_strerror(err));
    luaL_pushresultsize(&b, n);
    return 1;
}

/* smqtt.open(gk, frame) -> plaintext, index | nil, why */
static int l_open(lua_State *L)
{
    uint8_t gk[STS_SMQTT_KEY_LEN];
    char why[STS_SMQTT_WHY_LEN];
    size_t len, n;
    uint16_t index;

    check_key(L, 1, gk);
    const uint8_t *frame = (const uint8_t *)luaL_checklstring(L, 2, &len);
    uint8_t *pt = malloc(len > 0 ? len : 1);
    if (pt == NULL) {
        mbedtls_platform_zeroize(gk, sizeof gk);
        return luaL_error(L, "out of memory");
    }
    int err = sts_smqtt_open(gk, frame, len, pt, len, &n, &index, why);
    mbedtls_platform_zeroize(gk, sizeof gk);
    if (err == 0) {
        lua_pushlstring(L, (const char *)pt, n);
        lua_pushinteger(L, index);
    }
    mbedtls_platform_zeroize(pt, len > 0 ? len : 1);
    free(pt);
    return err == 0 ? 2 : stsl_fail(L, "%s", why);
}

/* smqtt.index(frame) -> index | nil */
static int l_index(lua_State *L)
{
    size_t len;
    const uint8_t *frame = (const uint8_t *)luaL_checklstring(L, 1, &len);
    uint16_t index;

    if (sts_smqtt_frame_index(frame, len, &index) != 0) lua_pushnil(L);
    else lua_pushinteger(L, index);
    return 1;
}

/* ---- The SLOTTED tree ---- */

static unsigned check_depth(lua_State *L, int idx)
{
    lua_Integer d = luaL_checkinteger(L, idx);
    luaL_argcheck(L, d >= 1 && d <= STS_SMQTT_DEPTH_MAX, idx, "depth must be 1..16");
    return (unsigned)d;
}

/* smqtt.cover(root, depth, first, last) -> nodes | nil, why */
static int l_cover(lua_State *L)
{
    struct sts_smqtt_node nodes[STS_SMQTT_COVER_MAX];
    uint8_t root[STS_SMQTT_KEY_LEN];
    size_t count;

    check_key(L, 1, root);
    unsigned depth = check_depth(L, 2);
    lua_Integer first = luaL_checkinteger(L, 3), last = luaL_checkinteger(L, 4);
    int in_range = first >= 0 && first <= last && last < (lua_Integer)1 << depth;
    int err = in_range ? sts_smqtt_cover(root, depth, (uint32_t)first, (uint32_t)last, nodes, &count)
                       : STS_ERR_INVALID;
    mbedtls_platform_zeroize(root, sizeof root);
    if (err == STS_ERR_INVALID) return stsl_fail(L, "slots [%I, %I] are not an interval of 0..%I", first, last,
                                                 ((lua_Integer)1 << depth) - 1);
    if (err != 0) return luaL_error(L, "sts.smqtt.cover: %s", sts_strerror(err));
    push_nodes(L, nodes, count);
    mbedtls_platform_zeroize(nodes, count * sizeof *nodes);
    return 1;
}

/* smqtt.leaf(nodes, depth, slot) -> key | nil */
static int l_leaf(lua_State *L)
{
    struct sts_smqtt_node nodes[STS_SMQTT_COVER_MAX];
    uint8_t key[STS_SMQTT_KEY_LEN];

    size_t count = check_nodes(L, 1, nodes);
    unsigned depth = check_depth(L, 2);
    lua_Integer slot = luaL_checkinteger(L, 3);
    int err = slot >= 0 && slot < (lua_Integer)1 << depth
                  ? sts_smqtt_leaf(nodes, count, depth, (uint32_t)slot, key) : STS_ERR_STATE;
    mbedtls_platform_zeroize(nodes, sizeof nodes);
    if (err == 0) lua_pushlstring(L, (const char *)key, sizeof key);
    else if (err == STS_ERR_STATE || err == STS_ERR_INVALID) lua_pushnil(L);
    mbedtls_platform_zeroize(key, sizeof key);
    if (err != 0 && err != STS_ERR_STATE && err != STS_ERR_INVALID)
        return luaL_error(L, "sts.smqtt.leaf: %s", sts_strerror(err));
    return 1;
}

/* smqtt.child(key, bit) -> key */
static int l_child(lua_State *L)
{
    uint8_t key[STS_SMQTT_KEY_LEN];

    check_key(L, 1, key);
    lua_Integer bit = luaL_checkinteger(L, 2);
    luaL_argcheck(L, bit == 0 || bit == 1, 2, "bit must be 0 or 1");
    int err = sts_smqtt_child(key, (int)bit, key);
    if (err == 0) lua_pushlstring(L, (const char *)key, sizeof key);
    mbedtls_platform_zeroize(key, sizeof key);
    if (err != 0) return luaL_error(L, "sts.smqtt.child: %s", sts_strerror(err));
    return 1;
}

/* smqtt.grant(elapsed_ms, slot_seconds, expires) -> first, last | nil */
static int l_grant(lua_State *L)
{
    lua_Integer e = luaL_checkinteger(L, 1), t = luaL_checkinteger(L, 2), x = luaL_checkinteger(L, 3);
    int64_t first, last;

    luaL_argcheck(L, e >= 0, 1, "elapsed_ms must not be negative");
    luaL_argcheck(L, t >= 1, 2, "slot_seconds must be at least 1");
    luaL_argcheck(L, x >= 0, 3, "expires must not be negative");
    if (sts_smqtt_grant(e, t, x, &first, &last) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, (lua_Integer)first);
    lua_pushinteger(L, (lua_Integer)last);
    return 2;
}

void stsl_open_smqtt(lua_State *L)
{
    static const luaL_Reg functions[] = {
        { "encode_response", l_encode_response }, { "decode_response", l_decode_response },
        { "material_key", l_material_key },       { "material_slotted", l_material_slotted },
        { "parse_material", l_parse_material },   { "seal", l_seal },
        { "open", l_open },                       { "index", l_index },
        { "cover", l_cover },                     { "leaf", l_leaf },
        { "child", l_child },                     { "grant", l_grant },
        { NULL, NULL },
    };
    luaL_newlib(L, functions);
    set_kind(L, &request_kind);
    set_kind(L, &leave_kind);
    lua_setfield(L, -2, "smqtt");
}
