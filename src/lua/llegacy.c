/* sts.legacy: one side of the original STS shell's wire protocol
 * (src/proto/legacy_sts.h) for Lua. No I/O: the caller publishes the frames.
 *
 *   local side = sts.legacy.new{ role = "master", mode = "cbc" }
 *   for _, frame in ipairs(side:start()) do publish(frame) end
 *   local r, why = side:receive(frame)
 *     --> { frames = { ... }, event = "ready" | "message" | "killed" | nil,
 *           message = "text" }                    or nil, reason
 *   side:seal("text") --> frame     side:kill() --> frame     (or nil, reason)
 *   side:check("text") --> true     (or nil, reason: what seal would say)
 *   side:restart()    --> frames    (a fresh key pair; a master's INITREQ)
 *   side:max_message() --> bytes    side:state() --> "wait_initreq", ..., "closed"
 *
 * Events: "ready", "message", "killed", "restarted" (a slave: a new INITREQ
 * dropped the session or the handshake so far).
 * Options: role = "master" | "slave", mode = "nosec" | "ecb" | "cbc";
 * pub = the topic the frames go out on, where the original receives them:
 * no frame over its limit there is built (STS_LEGACY_ORIGINAL_RECEIVE);
 * priv = a 32-byte X25519 private key instead of a fresh one (tests);
 * key = a 32-byte session key: the side starts established, as after a
 * handshake made elsewhere (replaying a recorded session). A rejected frame
 * returns nil and why, and changes nothing. The keys live in the userdata
 * and are wiped by :close(), by __close and by __gc. */
#include "lua/internal.h"
#include "proto/legacy_sts.h"

#include <mbedtls/platform_util.h>
#include <string.h>

#define LEGACY_MT "sts.legacy"

static struct sts_legacy *check_legacy(lua_State *L)
{
    return luaL_checkudata(L, 1, LEGACY_MT);
}

/* nil and why; a message over the original's limit is told the limit. */
static int fail(lua_State *L, const struct sts_legacy *ctx)
{
    if (ctx->reason != STS_LEGACY_PEER_LIMIT) return stsl_fail(L, "%s", sts_legacy_reason_text(ctx->reason));
    int blocks = ctx->mode != STS_LEGACY_NOSEC;
    return stsl_fail(L,
                     "message too long for the original: on this topic it receives frames of at most %d bytes "
                     "(1019 - %d topic bytes%s), so at most %d bytes of message",
                     (int)ctx->max_frame, (int)ctx->topic_len, blocks ? ", in whole 16-byte blocks" : "",
                     (int)sts_legacy_max_message(ctx));
}

/* An optional option of exactly 32 bytes, or NULL. */
static const uint8_t *opt_key(lua_State *L, int idx, const char *key)
{
    size_t len = 0;
    if (!stsl_opt_string(L, idx, key, NULL)) return NULL;
    lua_getfield(L, idx, key);
    const char *s = lua_tolstring(L, -1, &len);
    lua_pop(L, 1); /* still referenced by the options table */
    if (len != 32) luaL_error(L, "option '%s' must be a 32-byte string", key);
    return (const uint8_t *)s;
}

static int opt_choice(lua_State *L, int idx, const char *key, const char *const choices[])
{
    const char *value = stsl_opt_string(L, idx, key, NULL);
    for (int i = 0; value && choices[i]; i++)
        if (strcmp(value, choices[i]) == 0) return i;
    return luaL_error(L, "sts.legacy.new: option '%s' must be %s or %s", key, choices[0],
                      choices[1]);
}

/* The side holds this session key already, as the peer agreed it before. */
static void resume_session(struct sts_legacy *ctx, const uint8_t key[32])
{
    mbedtls_platform_zeroize(ctx->priv, sizeof ctx->priv);
    memcpy(ctx->key, key, 32);
    memcpy(ctx->iv, key, 16); /* CBC: where the chain starts */
    ctx->state = STS_LEGACY_ESTABLISHED;
}

static int l_new(lua_State *L)
{
    static const char *const known[] = { "role", "mode", "priv", "key", "pub", NULL };
    static const char *const roles[] = { "master", "slave", NULL };
    static const char *const modes[] = { "nosec", "ecb", "cbc", NULL };
    static const enum sts_legacy_role role_of[] = { STS_LEGACY_MASTER, STS_LEGACY_SLAVE };
    static const enum sts_legacy_mode mode_of[] = { STS_LEGACY_NOSEC, STS_LEGACY_ECB, STS_LEGACY_CBC };

    stsl_check_options(L, 1, "sts.legacy.new", known);
    int role = opt_choice(L, 1, "role", roles);
    int mode = opt_choice(L, 1, "mode", modes);
    const uint8_t *priv = opt_key(L, 1, "priv");
    const uint8_t *key = opt_key(L, 1, "key");
    const char *pub = stsl_opt_string(L, 1, "pub", NULL);
    if (key && mode_of[mode] == STS_LEGACY_NOSEC) luaL_error(L, "option 'key' needs mode ecb or cbc");

    struct sts_legacy *ctx = lua_newuserdatauv(L, sizeof *ctx, 0);
    luaL_setmetatable(L, LEGACY_MT);
    if (sts_legacy_init(ctx, role_of[role], mode_of[mode], priv) != 0) return fail(L, ctx);
    if (pub && sts_legacy_set_peer_topic(ctx, strlen(pub)) != 0)
        luaL_error(L, "sts.legacy.new: option 'pub': the original receives no handshake frame on a topic of %d bytes",
                   (int)strlen(pub));
    if (key) resume_session(ctx, key);
    return 1;
}

/* Pushes the list of frames in out. */
static void push_frames(lua_State *L, const struct sts_legacy_output *out)
{
    lua_createtable(L, (int)out->nframes, 0);
    for (unsigned i = 0; i < out->nframes; i++) {
        lua_pushlstring(L, (const char *)out->frames[i].data, out->frames[i].len);
        lua_rawseti(L, -2, i + 1);
    }
}

static int legacy_start(lua_State *L)
{
    struct sts_legacy *ctx = check_legacy(L);
    struct sts_legacy_output out;

    if (sts_legacy_start(ctx, &out) != 0) return fail(L, ctx);
    push_frames(L, &out);
    return 1;
}

/* side:restart() -> frames (a master's INITREQ) | nil, why */
static int legacy_restart(lua_State *L)
{
    struct sts_legacy *ctx = check_legacy(L);
    struct sts_legacy_output out;

    if (sts_legacy_restart(ctx, &out) != 0) return fail(L, ctx);
    push_frames(L, &out);
    return 1;
}

static void push_result(lua_State *L, const struct sts_legacy_output *out)
{
    static const char *const events[] = {
        [STS_LEGACY_NONE] = NULL, [STS_LEGACY_READY] = "ready",
        [STS_LEGACY_MESSAGE] = "message", [STS_LEGACY_KILLED] = "killed",
        [STS_LEGACY_RESTARTED] = "restarted",
    };
    lua_createtable(L, 0, 3);
    push_frames(L, out);
    lua_setfield(L, -2, "frames");
    if (events[out->event]) {
        lua_pushstring(L, events[out->event]);
        lua_setfield(L, -2, "event");
    }
    if (out->event == STS_LEGACY_MESSAGE) {
        lua_pushlstring(L, out->msg, out->msglen);
        lua_setfield(L, -2, "message");
    }
}

static int legacy_receive(lua_State *L)
{
    struct sts_legacy *ctx = check_legacy(L);
    size_t len;
    const char *frame = luaL_checklstring(L, 2, &len);
    struct sts_legacy_output out;

    int rc = sts_legacy_receive(ctx, (const uint8_t *)frame, len, &out);
    if (rc == 0) push_result(L, &out);
    mbedtls_platform_zeroize(out.msg, sizeof out.msg); /* the plaintext */
    return rc == 0 ? 1 : fail(L, ctx);
}

/* Pushes the n bytes of a frame built into buf, or nil and why. */
static int push_frame(lua_State *L, const struct sts_legacy *ctx, const uint8_t *buf, int n)
{
    if (n < 0) return fail(L, ctx);
    lua_pushlstring(L, (const char *)buf, (size_t)n);
    return 1;
}

static int legacy_seal(lua_State *L)
{
    struct sts_legacy *ctx = check_legacy(L);
    size_t len;
    const char *msg = luaL_checklstring(L, 2, &len);
    uint8_t buf[STS_LEGACY_MAX_FRAME];

    return push_frame(L, ctx, buf, sts_legacy_seal(ctx, msg, len, buf, sizeof buf));
}

/* side:check(text) -> true | nil, why: whether seal would take it now. */
static int legacy_check(lua_State *L)
{
    struct sts_legacy *ctx = check_legacy(L);
    size_t len;
    const char *msg = luaL_checklstring(L, 2, &len);

    if (sts_legacy_check(ctx, msg, len) != 0) return fail(L, ctx);
    lua_pushboolean(L, 1);
    return 1;
}

static int legacy_max_message(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)sts_legacy_max_message(check_legacy(L)));
    return 1;
}

static int legacy_kill(lua_State *L)
{
    struct sts_legacy *ctx = check_legacy(L);
    uint8_t buf[16];

    return push_frame(L, ctx, buf, sts_legacy_kill(ctx, buf, sizeof buf));
}

static int legacy_state(lua_State *L)
{
    static const char *const names[] = {
        [STS_LEGACY_IDLE] = "idle", [STS_LEGACY_WAIT_INITREQ] = "wait_initreq",
        [STS_LEGACY_WAIT_INITACK] = "wait_initack", [STS_LEGACY_WAIT_KEYACK] = "wait_keyack",
        [STS_LEGACY_WAIT_KEYREQ] = "wait_keyreq", [STS_LEGACY_ESTABLISHED] = "established",
        [STS_LEGACY_CLOSED] = "closed",
    };
    lua_pushstring(L, names[check_legacy(L)->state]);
    return 1;
}

static int legacy_close(lua_State *L)
{
    sts_legacy_free(check_legacy(L));
    return 0;
}

static int legacy_tostring(lua_State *L)
{
    static const char *const roles[] = { [STS_LEGACY_MASTER] = "master", [STS_LEGACY_SLAVE] = "slave" };
    static const char *const modes[] = {
        [STS_LEGACY_NOSEC] = "nosec", [STS_LEGACY_ECB] = "ecb", [STS_LEGACY_CBC] = "cbc",
    };
    struct sts_legacy *ctx = check_legacy(L);
    lua_pushfstring(L, "sts.legacy (%s, %s)", roles[ctx->role], modes[ctx->mode]);
    return 1;
}

void stsl_open_legacy(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "start", legacy_start }, { "receive", legacy_receive }, { "seal", legacy_seal },
        { "check", legacy_check }, { "kill", legacy_kill }, { "restart", legacy_restart },
        { "max_message", legacy_max_message }, { "state", legacy_state }, { "close", legacy_close },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", legacy_close }, { "__close", legacy_close }, { "__tostring", legacy_tostring },
        { NULL, NULL },
    };
    static const luaL_Reg functions[] = { { "new", l_new }, { NULL, NULL } };

    stsl_new_class(L, LEGACY_MT, meta, methods);
    luaL_newlib(L, functions);
    lua_setfield(L, -2, "legacy");
}
