/* Native STS sessions for scripts: sts.handshake, sts.listen and the session
 * object, over the pure session engine (src/proto/session.h) and an MQTT
 * client.
 *
 * A session is a userdata with one user value, a table holding the client it
 * publishes through, its trust list, its handlers ("message", "close",
 * "established"), messages waiting for a message handler, the pending
 * handshake future and the peer's fingerprint. While open it is anchored in
 * the registry: a script need not keep a reference for it to keep running.
 * Frames reach the engine from a subscription handler; what the engine emits
 * is published on the session's outgoing topic; a loop timer calls the
 * engine's tick at the deadline it asks for. */
#include "lua/internal.h"
#include "crypto/keyfile.h"
#include "crypto/x25519.h"
#include "loop/loop.h"
#include "mqtt/client.h"
#include "proto/session.h"
#include "util/error.h"
#include "util/log.h"

#include <math.h>
#include <mbedtls/platform_util.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_MT "sts.session"
#define LISTENER_MT "sts.listener"
#define TRUST_MT "sts.trust"
#define MAX_BACKLOG 1000          /* messages kept until a message handler is set */
#define DEFAULT_MAX_SESSIONS 10000

/* Accepted peer keys, shared by every session of a listener. */
struct trust {
    uint8_t (*keys)[32];
    size_t n;
};

struct lsession {
    struct sts_session *s;
    struct lclient *client;
    struct trust *trust;
    char *topic_in, *topic_out;
    int qos;
    struct sts_timer timer;     /* the engine's next deadline */
    struct sts_timer backlog;   /* hands early messages to a new message handler */
    int self_ref;               /* LUA_NOREF once closed */
    int established;            /* ESTABLISHED was reported once */
    int listened;               /* created by a listener (no subscription of its own) */
    double give_up;             /* a listener session not established by then is reaped */
    uint64_t rejections;
};

struct policy {
    struct sts_session_config cfg;
    uint8_t identity[32], identity_pub[32], peer[32];
    int qos;
    double wait;                /* responder: how long to wait for an initiator */
};

struct llistener {
    struct lclient *client;
    char *sub, *pub;
    struct policy policy;       /* every session's settings; its trust list is a user value */
    int self_ref;
    size_t nsessions, max_sessions;
};

static struct sts_loop *loop(void)
{
    return sts_loop_default();
}

/* --- trust lists ------------------------------------------------------------- */

static int trust_add(void *ctx, const uint8_t key[32])
{
    struct trust *t = ctx;
    if (t->n >= STS_TRUST_MAX_KEYS) return -1;
    uint8_t (*keys)[32] = realloc(t->keys, (t->n + 1) * sizeof *keys);
    if (!keys) return -1;
    t->keys = keys;
    memcpy(t->keys[t->n++], key, 32);
    return 0;
}

static int trust_gc(lua_State *L)
{
    struct trust *t = luaL_checkudata(L, 1, TRUST_MT);
    free(t->keys);
    t->keys = NULL;
    t->n = 0;
    return 0;
}

/* Pushes a trust userdata read from the file at `path` and returns 1, or
 * returns 0 with an error message pushed (as read_policy does). */
static int push_trust_file(lua_State *L, const char *path)
{
    struct trust *t = lua_newuserdatauv(L, sizeof *t, 0);
    t->keys = NULL;
    t->n = 0;
    luaL_setmetatable(L, TRUST_MT);
    FILE *f = fopen(path, "r");
    if (!f) {
        lua_pushfstring(L, "trust: cannot open %s", path);
        return 0;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) luaL_addlstring(&b, chunk, got);
    fclose(f);
    luaL_pushresult(&b);
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    unsigned line = 0;
    if (sts_trust_parse(text, len, trust_add, t, &line) != 0) {
        lua_pushfstring(L, "%s:%d: not a public key (64 hex digits, then an optional comment)", path, (int)line);
        return 0;
    }
    lua_pop(L, 1);
    return 1;
}

static int trust_check(void *ctx, const uint8_t pub[32])
{
    const struct lsession *ls = ctx;
    for (size_t i = 0; ls->trust && i < ls->trust->n; i++)
        if (memcmp(ls->trust->keys[i], pub, 32) == 0) return 1;
    return 0;
}

/* --- options shared by sts.handshake and sts.listen -------------------------- */



static enum sts_pattern parse_pattern(lua_State *L, const char *name)
{
    if (strcmp(name, "XX") == 0) return STS_PATTERN_XX;
    if (strcmp(name, "IK") == 0) return STS_PATTERN_IK;
    if (strcmp(name, "NN") == 0) return STS_PATTERN_NN;
    return luaL_error(L, "option 'pattern' must be \"XX\", \"IK\" or \"NN\", got \"%s\"", name);
}

static enum sts_suite parse_suite(lua_State *L, const char *name)
{
    static const char *const names[] = {
        "25519_ChaChaPoly_SHA256", "25519_AESGCM_SHA256", "25519_ChaChaPoly_SHA512", "25519_AESGCM_SHA512", NULL,
    };
    for (int i = 0; names[i]; i++)
        if (strcmp(name, names[i]) == 0) return (enum sts_suite)(i + 1);
    return luaL_error(L, "option 'suite' must be one of 25519_ChaChaPoly_SHA256, 25519_AESGCM_SHA256, "
                         "25519_ChaChaPoly_SHA512, 25519_AESGCM_SHA512");
}

static void read_rekey(lua_State *L, int idx, struct sts_session_config *cfg)
{
    static const char *const known[] = { "messages", "seconds", NULL };
    if (!stsl_opt_table(L, idx, "rekey")) return;
    int t = lua_gettop(L);
    stsl_check_options(L, t, "rekey", known);
    lua_Integer messages = stsl_opt_integer(L, t, "messages", 0);
    double seconds = stsl_opt_number(L, t, "seconds", 0);
    if (messages < 0 || (uint64_t)messages > ((uint64_t)1 << 32)) luaL_error(L, "option 'rekey.messages' must be from 1 to 2^32");
    if (seconds < 0) luaL_error(L, "option 'rekey.seconds' must be positive");
    cfg->rekey_messages = (uint64_t)messages;
    cfg->rekey_seconds = seconds;
    lua_pop(L, 1);
}

/* Reads the options table at idx into p. Pushes the trust userdata (or nil).
 * Returns 1, or 0 with an error message pushed (a key file that cannot be
 * used is an expected failure, like a broker that is down). */
static int read_policy(lua_State *L, int idx, struct policy *p, int responder)
{
    memset(p, 0, sizeof *p);
    const char *pattern = stsl_opt_string(L, idx, "pattern", NULL);
    const char *suite = stsl_opt_string(L, idx, "suite", NULL);
    const char *trust = stsl_opt_string(L, idx, "trust", NULL);
    p->qos = (int)stsl_opt_integer(L, idx, "qos", 1);
    p->wait = stsl_opt_number(L, idx, "wait", -1);
    p->cfg.handshake_timeout = stsl_opt_number(L, idx, "timeout", STS_SESSION_HANDSHAKE_TIMEOUT);
    p->cfg.retransmit = stsl_opt_number(L, idx, "retransmit", 0);
    if (p->qos < 0 || p->qos > 2) luaL_error(L, "option 'qos' must be 0, 1 or 2");
    if (p->cfg.handshake_timeout <= 0) luaL_error(L, "option 'timeout' must be positive");
    if (p->cfg.retransmit < 0) luaL_error(L, "option 'retransmit' must be positive");
    read_rekey(L, idx, &p->cfg);

    enum sts_pattern chosen = pattern ? parse_pattern(L, pattern) : 0;
    if (suite) p->cfg.suite = parse_suite(L, suite);
    if (responder) p->cfg.allowed_patterns = chosen ? STS_ALLOW(chosen) : 0;
    else p->cfg.pattern = chosen;

    lua_getfield(L, idx, "identity");
    if (!lua_isnil(L, -1)) {
        if (!stsl_check_key(L, -1, p->identity, STS_KEY_PRIVATE, "identity")) return 0;
        if (sts_x25519_public(p->identity_pub, p->identity) != 0) luaL_error(L, "identity: unusable key");
        p->cfg.static_priv = p->identity;
        p->cfg.static_pub = p->identity_pub;
    } else if (chosen != STS_PATTERN_NN) {
        luaL_error(L, "option 'identity' is required (a private key file or text), unless pattern = \"NN\"");
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "peer");
    if (!lua_isnil(L, -1)) {
        if (!stsl_check_key(L, -1, p->peer, STS_KEY_PUBLIC, "peer")) return 0;
        p->cfg.peer_static = p->peer;
    }
    lua_pop(L, 1);
    if (chosen == STS_PATTERN_NN) {
        sts_warn("pattern NN: the session is encrypted but NOT authenticated; anyone on the path can impersonate the peer");
    } else if (!p->cfg.peer_static && !trust) {
        luaL_error(L, "an authenticated session needs option 'peer' (a pinned public key) or 'trust' (a file of accepted keys)");
    }
    if (trust) {
        if (!push_trust_file(L, trust)) return 0;
    } else {
        lua_pushnil(L);
    }
    return 1;
}

static const char *const session_options[] = {
    "role", "pub", "sub", "identity", "peer", "trust", "pattern", "suite", "timeout", "qos",
    "rekey", "retransmit", "wait", NULL,
};

/* --- the session's links to the loop and the client --------------------------- */

static void rearm(struct lsession *ls)
{
    if (!ls->s) return;
    double now = sts_now();
    double next = sts_session_tick(ls->s, now);
    if (ls->listened && !ls->established && ls->give_up < next) next = ls->give_up;
    if (isfinite(next)) sts_timer_start(loop(), &ls->timer, next - now, 0);
    else sts_timer_stop(loop(), &ls->timer);
}

static void emit_frame(void *ctx, const uint8_t *frame, size_t len)
{
    struct lsession *ls = ctx;
    struct sts_mqtt *m = stsl_client_mqtt(ls->client);
    if (!m) {
        sts_warn("session %s: the client is closed; a frame was not sent", ls->topic_out);
        return;
    }
    int rc = sts_mqtt_publish(m, ls->topic_out, frame, len, ls->qos, 0, NULL);
    if (rc != MOSQ_ERR_SUCCESS)
        sts_warn("session %s: publishing a frame failed: %s", ls->topic_out, mosquitto_strerror(rc));
}

/* Pushes the session's userdata; returns 0 when it is no longer anchored. */
static int push_session(lua_State *L, const struct lsession *ls)
{
    if (ls->self_ref == LUA_NOREF) return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ls->self_ref);
    return 1;
}

/* Pushes field `name` of the user value table of the userdata at idx. */
static int get_uv(lua_State *L, int idx, const char *name)
{
    lua_getiuservalue(L, idx, 1);
    int t = lua_getfield(L, -1, name);
    lua_remove(L, -2);
    return t;
}

static void set_uv(lua_State *L, int idx, const char *name)
{
    idx = lua_absindex(L, idx);
    lua_getiuservalue(L, idx, 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

static int push_handler(lua_State *L, int idx, const char *event)
{
    get_uv(L, idx, "on");
    int t = lua_getfield(L, -1, event);
    lua_remove(L, -2);
    if (t == LUA_TFUNCTION) return 1;
    lua_pop(L, 1);
    return 0;
}

static void unanchor(lua_State *L, struct lsession *ls)
{
    sts_timer_stop(loop(), &ls->timer);
    sts_timer_stop(loop(), &ls->backlog);
    luaL_unref(L, LUA_REGISTRYINDEX, ls->self_ref);
    ls->self_ref = LUA_NOREF;
}

/* The pending sts.handshake gets its answer: the session, or nil and why. */
static void settle(lua_State *L, int session, int ok, const char *reason)
{
    if (get_uv(L, session, "pending") == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pushnil(L);
    set_uv(L, session, "pending");
    if (ok) lua_pushvalue(L, session);
    else lua_pushnil(L);
    lua_pushstring(L, reason);
    stsl_future_resolve(L, -3, 2);
    lua_pop(L, 1);
}

static void call_listener(lua_State *L, int session);
static int session_client_closed(lua_State *L);
static int listener_close(lua_State *L);
static void deliver_backlog(struct sts_timer *t, void *ud);
static void close_session(lua_State *L, int idx, struct lsession *ls, const char *reason);
static void leave_listener(lua_State *L, int session, const struct lsession *ls);

static void push_info(lua_State *L, const struct lsession *ls)
{
    lua_createtable(L, 0, 1);
    lua_pushstring(L, ls->topic_in);
    lua_setfield(L, -2, "topic");
}

static void deliver_message(lua_State *L, int session, struct lsession *ls, const uint8_t *data, size_t len)
{
    if (push_handler(L, session, "message")) {
        lua_pushlstring(L, (const char *)data, len);
        push_info(L, ls);
        stsl_pcall(L, 2, 0, "session message handler");
        return;
    }
    /* No handler yet (the peer spoke first, before the script set one). */
    get_uv(L, session, "backlog");
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    if (n < MAX_BACKLOG) {
        lua_pushlstring(L, (const char *)data, len);
        lua_rawseti(L, -2, n + 1);
    } else {
        sts_warn("session %s: dropped a message: no message handler, backlog full", ls->topic_in);
    }
    lua_pop(L, 1);
}

static void on_established(lua_State *L, int session, struct lsession *ls, const uint8_t *peer, size_t len)
{
    char fp[STS_FINGERPRINT_LEN + 1];
    if (len == 32 && sts_key_fingerprint(fp, peer) == 0) lua_pushstring(L, fp);
    else lua_pushnil(L);
    set_uv(L, session, "peer");
    if (!ls->established) {
        ls->established = 1;
        sts_info("session %s: established%s", ls->topic_in, sts_session_authenticated(ls->s) ? "" : " (unauthenticated)");
        settle(L, session, 1, "established");
        if (ls->listened) call_listener(L, session);
    } else if (push_handler(L, session, "established")) {
        get_uv(L, session, "peer");
        stsl_pcall(L, 1, 0, "session established handler");
    }
}

static void log_rejection(struct lsession *ls, const uint8_t *why, size_t len)
{
    /* A flood of bad frames must not flood the log: 1st, 2nd, 4th, 8th... */
    uint64_t n = ++ls->rejections;
    if ((n & (n - 1)) == 0)
        sts_warn("session %s: rejected input: %.*s (%llu rejected so far)", ls->topic_in, (int)len,
                 (const char *)why, (unsigned long long)n);
}

static void on_event(void *ctx, enum sts_session_event ev, const uint8_t *data, size_t len)
{
    struct lsession *ls = ctx;
    lua_State *L = stsl_main();
    if (!push_session(L, ls)) return;
    int session = lua_gettop(L);
    switch (ev) {
    case STS_EVENT_ESTABLISHED:
        on_established(L, session, ls, data, len);
        break;
    case STS_EVENT_MESSAGE:
        deliver_message(L, session, ls, data, len);
        break;
    case STS_EVENT_REJECTED:
        log_rejection(ls, data, len);
        break;
    case STS_EVENT_FAILED:
    case STS_EVENT_CLOSED:
        lua_pushlstring(L, (const char *)data, len);
        if (ev == STS_EVENT_FAILED) sts_warn("session %s: handshake failed: %s", ls->topic_in, lua_tostring(L, -1));
        else sts_info("session %s: closed: %s", ls->topic_in, lua_tostring(L, -1));
        if (!ls->established) {
            settle(L, session, 0, lua_tostring(L, -1));
            if (!ls->listened) close_session(L, session, ls, "handshake failed");
        } else if (push_handler(L, session, "close")) {
            lua_pushvalue(L, -2);
            stsl_pcall(L, 1, 0, "session close handler");
        }
        lua_pop(L, 1);
        break;
    }
    lua_settop(L, session - 1);
}

/* Timer: the engine's deadline (retransmit, timeout, rekey), and for a
 * listener's session that never got established, giving up on it. */
static void on_timer(struct sts_timer *t, void *ud)
{
    struct lsession *ls = ud;
    lua_State *L = stsl_main();
    (void)t;
    if (ls->listened && !ls->established && sts_now() >= ls->give_up) {
        if (push_session(L, ls)) {
            close_session(L, lua_gettop(L), ls, "dropped");
            lua_pop(L, 1);
        }
        return;
    }
    rearm(ls);
}

static void receive_frame(struct lsession *ls, const char *frame, size_t len)
{
    if (!ls->s) return;
    sts_session_receive(ls->s, sts_now(), (const uint8_t *)frame, len);
    rearm(ls);
}

/* The subscription handler of a session of its own: (topic, payload, info). */
static int session_frame(lua_State *L)
{
    struct lsession *ls = lua_touserdata(L, lua_upvalueindex(1));
    size_t len;
    const char *frame = luaL_checklstring(L, 2, &len);
    receive_frame(ls, frame, len);
    return 0;
}

/* --- creating sessions ------------------------------------------------------------ */

static struct lsession *check_session(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, SESSION_MT);
}

/* Pushes a new session publishing through the client at client_idx, with
 * the trust userdata (or nil) on top of the stack (popped). Returns it, or
 * NULL with an error message pushed. */
static struct lsession *new_session(lua_State *L, int client_idx, struct policy *p,
                                    enum sts_role role, const char *topic_in, const char *topic_out)
{
    int trust = lua_gettop(L);
    struct lsession *ls = lua_newuserdatauv(L, sizeof *ls, 1);
    memset(ls, 0, sizeof *ls);
    ls->self_ref = LUA_NOREF;
    ls->qos = p->qos;
    ls->client = stsl_check_client(L, client_idx);
    ls->trust = lua_isnil(L, trust) ? NULL : lua_touserdata(L, trust);
    sts_timer_init(&ls->timer, on_timer, ls);
    sts_timer_init(&ls->backlog, deliver_backlog, ls);
    luaL_setmetatable(L, SESSION_MT);
    lua_createtable(L, 0, 6);
    lua_pushvalue(L, client_idx);
    lua_setfield(L, -2, "client");
    lua_pushvalue(L, trust);
    lua_setfield(L, -2, "trust");
    lua_newtable(L);
    lua_setfield(L, -2, "on");
    lua_newtable(L);
    lua_setfield(L, -2, "backlog");
    lua_setiuservalue(L, -2, 1);
    lua_remove(L, trust);

    ls->topic_in = strdup(topic_in);
    ls->topic_out = strdup(topic_out);
    if (!ls->topic_in || !ls->topic_out) {
        lua_pushliteral(L, "out of memory");
        return NULL;
    }
    p->cfg.role = role;
    p->cfg.topic_in = topic_in;
    p->cfg.topic_out = topic_out;
    p->cfg.trust = trust_check;
    p->cfg.emit = emit_frame;
    p->cfg.on_event = on_event;
    p->cfg.ctx = ls;
    int rc = sts_session_new(&ls->s, &p->cfg);
    mbedtls_platform_zeroize(p->identity, sizeof p->identity);
    if (rc != 0) {
        lua_pushfstring(L, "session: %s", sts_strerror(rc));
        return NULL;
    }
    lua_pushvalue(L, -1);
    ls->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    stsl_client_on_close(L, client_idx, -1, session_client_closed);
    return ls;
}

/* Subscribes the client at client_idx to `filter`, calling fn with the
 * value on top of the stack as its upvalue (popped). */
static int subscribe_closure(lua_State *L, int client_idx, const char *filter, lua_CFunction fn, int qos)
{
    int up = lua_gettop(L);
    lua_getfield(L, client_idx, "subscribe");
    lua_pushvalue(L, client_idx);
    lua_pushstring(L, filter);
    lua_pushvalue(L, up);
    lua_pushcclosure(L, fn, 1);
    lua_createtable(L, 0, 1);
    lua_pushinteger(L, qos);
    lua_setfield(L, -2, "qos");
    lua_call(L, 4, 2);
    int ok = lua_toboolean(L, -2);
    if (!ok) {
        lua_remove(L, -2);
        lua_remove(L, up);
        return 0;
    }
    lua_pop(L, 2);
    lua_remove(L, up);
    return 1;
}

static void unsubscribe(lua_State *L, int client_idx, const char *filter)
{
    if (!stsl_client_mqtt(luaL_checkudata(L, client_idx, "sts.client"))) return;
    lua_getfield(L, client_idx, "unsubscribe");
    lua_pushvalue(L, client_idx);
    lua_pushstring(L, filter);
    lua_call(L, 2, 0);
}

static enum sts_role parse_role(lua_State *L, const char *role)
{
    if (strcmp(role, "initiator") == 0 || strcmp(role, "master") == 0) return STS_ROLE_INITIATOR;
    if (strcmp(role, "responder") == 0 || strcmp(role, "slave") == 0) return STS_ROLE_RESPONDER;
    return luaL_error(L, "option 'role' must be \"initiator\" or \"responder\" (or \"master\"/\"slave\"), got \"%s\"", role);
}

static const char *required_topic(lua_State *L, int idx, const char *key)
{
    const char *topic = stsl_opt_string(L, idx, key, NULL);
    if (!topic || !*topic) luaL_error(L, "option '%s' (a topic) is required", key);
    return topic;
}

/* The waiting part of sts.handshake: a timer that gives up on a responder
 * nobody comes to. */
static void wait_expired(struct sts_timer *t, void *ud);

struct wait_timer {
    struct sts_timer timer;
    struct lsession *ls;
};

static int wait_timer_gc(lua_State *L)
{
    struct wait_timer *w = lua_touserdata(L, 1);
    sts_timer_stop(loop(), &w->timer);
    return 0;
}

/* sts.handshake(client, opts) -> session | nil, message */
static int l_handshake(lua_State *L)
{
    struct policy p;
    stsl_check_client(L, 1);
    stsl_check_options(L, 2, "sts.handshake", session_options);
    lua_settop(L, 2);
    enum sts_role role = parse_role(L, stsl_opt_string(L, 2, "role", "?"));
    const char *pub = required_topic(L, 2, "pub");
    const char *sub = required_topic(L, 2, "sub");
    if (strpbrk(pub, "+#") || strpbrk(sub, "+#"))
        luaL_error(L, "sts.handshake needs exact topics; a responder for many peers is sts.listen");
    if (!read_policy(L, 2, &p, role == STS_ROLE_RESPONDER)) return stsl_fail(L, "%s", lua_tostring(L, -1));
    struct lsession *ls = new_session(L, 1, &p, role, sub, pub); /* 3 */
    if (!ls) return stsl_fail(L, "%s", lua_tostring(L, -1));

    lua_pushvalue(L, 3);
    if (!subscribe_closure(L, 1, sub, session_frame, p.qos)) {
        unanchor(L, ls);
        return stsl_fail(L, "%s", lua_tostring(L, -1));
    }
    stsl_future_new(L); /* 4 */
    lua_pushvalue(L, 4);
    set_uv(L, 3, "pending");
    if (role == STS_ROLE_INITIATOR) sts_session_start(ls->s, sts_now());
    rearm(ls);
    /* A responder waits for its initiator as long as `wait` says (default:
     * for ever); the engine bounds the handshake itself once it starts. */
    if (role == STS_ROLE_RESPONDER && p.wait >= 0) {
        struct wait_timer *w = lua_newuserdatauv(L, sizeof *w, 0);
        w->ls = ls;
        sts_timer_init(&w->timer, wait_expired, w);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, wait_timer_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        set_uv(L, 3, "wait_timer");
        sts_timer_start(loop(), &w->timer, p.wait, 0);
        lua_pop(L, 1);
    }
    return stsl_future_await(L, 4, -1);
}

static void close_session(lua_State *L, int idx, struct lsession *ls, const char *reason)
{
    /* Already closed, or already finalized (lua_close finalizes in any order). */
    if (ls->self_ref == LUA_NOREF || !ls->s) return;
    if (get_uv(L, idx, "wait_timer") != LUA_TNIL) sts_timer_stop(loop(), lua_touserdata(L, -1));
    lua_pop(L, 1);
    get_uv(L, idx, "client");
    stsl_client_on_close(L, lua_gettop(L), idx, NULL);
    lua_pop(L, 1);
    if (ls->s) sts_session_close(ls->s, sts_now(), reason);
    if (ls->listened) {
        leave_listener(L, idx, ls);
    } else {
        get_uv(L, idx, "client");
        unsubscribe(L, lua_gettop(L), ls->topic_in);
        lua_pop(L, 1);
    }
    unanchor(L, ls);
}

/* Why a responder's wait ended. An initiator it refused (an untrusted key, a
 * pattern not allowed) gets no answer, so the reasons are told here. */
static void push_wait_failure(lua_State *L, const struct lsession *ls)
{
    const struct sts_session_stats *st = sts_session_stats(ls->s);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int r = 1; r < STS_REASON_COUNT; r++) {
        if (r == STS_REASON_TIMEOUT || !st->rejected[r]) continue;
        luaL_addstring(&b, luaL_bufflen(&b) ? ", " : "timeout: no handshake completed; refused: ");
        luaL_addstring(&b, sts_reason_name((enum sts_reason)r));
    }
    if (luaL_bufflen(&b) == 0) luaL_addstring(&b, "timeout: no initiator came");
    luaL_pushresult(&b);
}

static void wait_expired(struct sts_timer *t, void *ud)
{
    struct wait_timer *w = ud;
    lua_State *L = stsl_main();
    (void)t;
    if (w->ls->established || !push_session(L, w->ls)) return;
    int session = lua_gettop(L);
    push_wait_failure(L, w->ls);
    settle(L, session, 0, lua_tostring(L, -1));
    close_session(L, session, w->ls, "timeout");
    lua_pop(L, 2);
}

/* --- sts.listen: one responder for many initiators --------------------------------- */

static struct llistener *check_listener(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, LISTENER_MT);
}

/* The outgoing topic for an incoming one: each + of pub takes the level the
 * matching + of sub matched. */
static int reply_topic(luaL_Buffer *b, const char *sub, const char *pub, const char *topic)
{
    const char *levels[64];
    size_t lens[64], n = 0;
    for (const char *f = sub, *t = topic;;) {
        size_t flen = strcspn(f, "/"), tlen = strcspn(t, "/");
        if (flen == 1 && *f == '+') {
            if (n == 64) return 0;
            levels[n] = t;
            lens[n++] = tlen;
        }
        if (!f[flen] || !t[tlen]) break;
        f += flen + 1;
        t += tlen + 1;
    }
    size_t k = 0;
    for (const char *p = pub; *p;) {
        size_t plen = strcspn(p, "/");
        if (plen == 1 && *p == '+' && k < n) luaL_addlstring(b, levels[k], lens[k]), k++;
        else luaL_addlstring(b, p, plen);
        p += plen;
        if (*p == '/') luaL_addchar(b, '/'), p++;
    }
    return 1;
}

static void call_listener(lua_State *L, int session)
{
    get_uv(L, session, "listener");
    int listener = lua_gettop(L);
    if (!lua_isnil(L, listener) && get_uv(L, listener, "on_session") == LUA_TFUNCTION) {
        lua_pushvalue(L, session);
        stsl_pcall(L, 1, 0, "listener session handler");
    } else {
        lua_pop(L, 1);
    }
    lua_settop(L, listener - 1);
}

/* A closed session leaves its listener's table, so that the next handshake
 * on its topic makes a new session rather than reach a closed one. */
static void leave_listener(lua_State *L, int session, const struct lsession *ls)
{
    get_uv(L, session, "listener");
    if (!lua_isnil(L, -1)) {
        struct llistener *li = check_listener(L, -1);
        get_uv(L, -1, "sessions");
        lua_pushnil(L);
        lua_setfield(L, -2, ls->topic_in);
        lua_pop(L, 1);
        li->nsessions--;
    }
    lua_pop(L, 1);
}

/* The listener's subscription handler: routes each frame to the session of
 * its topic, making one for a topic not seen before. */
static int listener_frame(lua_State *L)
{
    struct llistener *li = lua_touserdata(L, lua_upvalueindex(1));
    int listener = lua_upvalueindex(1);
    const char *topic = luaL_checkstring(L, 1);
    size_t len;
    const char *frame = luaL_checklstring(L, 2, &len);

    get_uv(L, listener, "sessions");
    int sessions = lua_gettop(L);
    if (lua_getfield(L, sessions, topic) == LUA_TNIL) {
        lua_pop(L, 1);
        if (li->self_ref == LUA_NOREF) return 0;
        if (li->nsessions >= li->max_sessions) {
            sts_warn("listener %s: refused a frame on %s: %zu sessions already (max_sessions)", li->sub, topic, li->nsessions);
            return 0;
        }
        struct policy p = li->policy;
        if (p.cfg.static_priv) p.cfg.static_priv = p.identity, p.cfg.static_pub = p.identity_pub;
        if (p.cfg.peer_static) p.cfg.peer_static = p.peer;
        get_uv(L, listener, "trust");
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        reply_topic(&b, li->sub, li->pub, topic);
        luaL_pushresult(&b);
        const char *out = lua_tostring(L, -1);
        lua_insert(L, -2); /* the trust value back on top for new_session */
        get_uv(L, listener, "client");
        lua_insert(L, -2);
        struct lsession *ls = new_session(L, lua_gettop(L) - 1, &p, STS_ROLE_RESPONDER, topic, out);
        if (!ls) return luaL_error(L, "%s", lua_tostring(L, -1));
        ls->listened = 1;
        ls->give_up = sts_now() + 2 * p.cfg.handshake_timeout;
        lua_pushvalue(L, listener);
        set_uv(L, -2, "listener");
        lua_pushvalue(L, -1);
        lua_setfield(L, sessions, topic);
        li->nsessions++;
    }
    receive_frame(check_session(L, -1), frame, len);
    return 0;
}

/* sts.listen(client, opts, on_session) -> listener | nil, message */
static int l_listen(lua_State *L)
{
    static const char *const known[] = {
        "pub", "sub", "identity", "peer", "trust", "pattern", "suite", "timeout", "qos", "rekey",
        "retransmit", "max_sessions", NULL,
    };
    struct policy p;
    stsl_check_client(L, 1);
    stsl_check_options(L, 2, "sts.listen", known);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    const char *pub = required_topic(L, 2, "pub");
    const char *sub = required_topic(L, 2, "sub");
    lua_Integer max_sessions = stsl_opt_integer(L, 2, "max_sessions", DEFAULT_MAX_SESSIONS);
    int plus_sub = 0, plus_pub = 0;
    for (const char *c = sub; *c; c++) plus_sub += *c == '+';
    for (const char *c = pub; *c; c++) plus_pub += *c == '+';
    if (strchr(sub, '#') || strchr(pub, '#') || plus_sub == 0 || plus_pub > plus_sub)
        luaL_error(L, "sts.listen needs a 'sub' filter with + levels and a 'pub' with at most as many + (no #)");
    if (max_sessions < 1) luaL_error(L, "option 'max_sessions' must be positive");
    if (!read_policy(L, 2, &p, 1)) return stsl_fail(L, "%s", lua_tostring(L, -1)); /* 4: trust */

    struct llistener *li = lua_newuserdatauv(L, sizeof *li, 1); /* 5 */
    memset(li, 0, sizeof *li);
    li->self_ref = LUA_NOREF;
    li->client = stsl_check_client(L, 1);
    li->max_sessions = (size_t)max_sessions;
    li->policy = p;
    mbedtls_platform_zeroize(p.identity, sizeof p.identity);
    luaL_setmetatable(L, LISTENER_MT);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "client");
    lua_pushvalue(L, 4);
    lua_setfield(L, -2, "trust");
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "on_session");
    lua_newtable(L);
    lua_setfield(L, -2, "sessions");
    lua_setiuservalue(L, 5, 1);
    li->sub = strdup(sub);
    li->pub = strdup(pub);
    if (!li->sub || !li->pub) return luaL_error(L, "out of memory");
    lua_pushvalue(L, 5);
    if (!subscribe_closure(L, 1, sub, listener_frame, li->policy.qos)) return stsl_fail(L, "%s", lua_tostring(L, -1));
    lua_pushvalue(L, 5);
    li->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    stsl_client_on_close(L, 1, 5, listener_close);
    lua_settop(L, 5);
    return 1;
}

static int listener_sessions(lua_State *L)
{
    check_listener(L, 1);
    lua_newtable(L);
    get_uv(L, 1, "sessions");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        struct lsession *ls = check_session(L, -1);
        if (ls->established) lua_setfield(L, -4, lua_tostring(L, -2));
        else lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 1;
}

static int listener_close(lua_State *L)
{
    struct llistener *li = check_listener(L, 1);
    if (li->self_ref == LUA_NOREF || !li->sub) return 0;
    luaL_unref(L, LUA_REGISTRYINDEX, li->self_ref);
    li->self_ref = LUA_NOREF;
    get_uv(L, 1, "sessions");
    int sessions = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, sessions)) {
        close_session(L, lua_gettop(L), check_session(L, -1), "listener closed");
        lua_pop(L, 1);
    }
    get_uv(L, 1, "client");
    stsl_client_on_close(L, lua_gettop(L), 1, NULL);
    unsubscribe(L, lua_gettop(L), li->sub);
    return 0;
}

static int listener_gc(lua_State *L)
{
    struct llistener *li = check_listener(L, 1);
    free(li->sub);
    free(li->pub);
    li->sub = li->pub = NULL;
    mbedtls_platform_zeroize(&li->policy, sizeof li->policy);
    return 0;
}

/* --- session methods ------------------------------------------------------------------ */

static int session_send(lua_State *L)
{
    struct lsession *ls = check_session(L, 1);
    size_t len;
    const char *payload = luaL_checklstring(L, 2, &len);
    if (!ls->s || ls->self_ref == LUA_NOREF) return stsl_fail(L, "the session is closed");
    /* At QoS 0 a frame published while disconnected is lost: say so now, as
     * client:publish does, rather than spend a counter on it. */
    struct sts_mqtt *m = stsl_client_mqtt(ls->client);
    if (!m || (ls->qos == 0 && sts_mqtt_state(m) != STS_MQTT_CONNECTED))
        return stsl_fail(L, "send: the client is not connected");
    int rc = sts_session_send(ls->s, sts_now(), (const uint8_t *)payload, len);
    rearm(ls);
    if (rc == STS_ERR_STATE) return stsl_fail(L, "the session is not established");
    if (rc != 0) return stsl_fail(L, "send: %s", sts_strerror(rc));
    lua_pushboolean(L, 1);
    return 1;
}

/* Hands messages that came before the handler was set to it, from the loop. */
static void flush_backlog(lua_State *L, int session)
{
    get_uv(L, session, "backlog");
    int backlog = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, backlog);
    if (n == 0) {
        lua_pop(L, 1);
        return;
    }
    lua_newtable(L);
    set_uv(L, session, "backlog");
    struct lsession *ls = check_session(L, session);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, backlog, i);
        size_t len;
        const char *data = lua_tolstring(L, -1, &len);
        deliver_message(L, session, ls, (const uint8_t *)data, len);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static void deliver_backlog(struct sts_timer *t, void *ud)
{
    lua_State *L = stsl_main();
    (void)t;
    if (!push_session(L, ud)) return;
    flush_backlog(L, lua_gettop(L));
    lua_pop(L, 1);
}

static int session_on(lua_State *L)
{
    static const char *const events[] = { "message", "close", "established", NULL };
    struct lsession *ls = check_session(L, 1);
    int e = luaL_checkoption(L, 2, NULL, events);
    if (!lua_isnil(L, 3)) luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    get_uv(L, 1, "on");
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, events[e]);
    if (e == 0 && !lua_isnil(L, 3)) {
        /* Not inside this call: the handler runs from the loop, like any other. */
        get_uv(L, 1, "backlog");
        if (lua_rawlen(L, -1) > 0) sts_timer_start(loop(), &ls->backlog, 0, 0);
    }
    lua_settop(L, 1);
    return 1;
}

/* The client a session publishes through is closing: the session ends
 * with it (its KILL still goes out), and a pending sts.handshake returns. */
static int session_client_closed(lua_State *L)
{
    struct lsession *ls = check_session(L, 1);
    if (!ls->established) {
        settle(L, 1, 0, "client closed");
    } else if (ls->self_ref != LUA_NOREF && push_handler(L, 1, "close")) {
        lua_pushliteral(L, "client closed");
        stsl_pcall(L, 1, 0, "session close handler");
    }
    close_session(L, 1, ls, "client closed");
    return 0;
}

static int session_close(lua_State *L)
{
    struct lsession *ls = check_session(L, 1);
    close_session(L, 1, ls, luaL_optstring(L, 2, "closed"));
    return 0;
}

/* __close gets the error that ended the scope, if any, not a reason. */
static int session_close_scope(lua_State *L)
{
    close_session(L, 1, check_session(L, 1), "closed");
    return 0;
}

static int session_rehandshake(lua_State *L)
{
    struct lsession *ls = check_session(L, 1);
    if (!ls->s || ls->self_ref == LUA_NOREF) return stsl_fail(L, "the session is closed");
    int rc = sts_session_start(ls->s, sts_now());
    rearm(ls);
    if (rc != 0) return stsl_fail(L, "rehandshake: %s", rc == STS_ERR_STATE ? "only an idle or established initiator can" : sts_strerror(rc));
    lua_pushboolean(L, 1);
    return 1;
}

static void set_count(lua_State *L, const char *name, uint64_t n)
{
    lua_pushinteger(L, (lua_Integer)n);
    lua_setfield(L, -2, name);
}

static int session_stats(lua_State *L)
{
    struct lsession *ls = check_session(L, 1);
    lua_createtable(L, 0, 12);
    if (!ls->s) return 1;
    const struct sts_session_stats *st = sts_session_stats(ls->s);
    set_count(L, "sent", st->messages_out);
    set_count(L, "received", st->messages_in);
    set_count(L, "frames_in", st->frames_in);
    set_count(L, "frames_out", st->frames_out);
    set_count(L, "handshakes", st->handshakes);
    set_count(L, "retransmits", st->retransmits);
    set_count(L, "rekeys", st->rekeys);
    set_count(L, "resyncs_sent", st->resyncs_sent);
    set_count(L, "resyncs_received", st->resyncs_received);
    set_count(L, "memory", sts_session_memory(ls->s) + sizeof *ls);
    lua_newtable(L);
    uint64_t total = 0;
    for (int r = 1; r < STS_REASON_COUNT; r++) {
        total += st->rejected[r];
        if (st->rejected[r]) set_count(L, sts_reason_name((enum sts_reason)r), st->rejected[r]);
    }
    lua_setfield(L, -2, "rejected");
    set_count(L, "rejected_total", total);
    return 1;
}

static int session_state(lua_State *L)
{
    static const char *const names[] = { "idle", "handshake", "established", "closed", "failed" };
    struct lsession *ls = check_session(L, 1);
    if (!ls->s || ls->self_ref == LUA_NOREF) lua_pushliteral(L, "closed");
    else lua_pushstring(L, names[sts_session_state(ls->s)]);
    return 1;
}

static int session_index(lua_State *L)
{
    struct lsession *ls = check_session(L, 1);
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "peer") == 0) return get_uv(L, 1, "peer"), 1;
    if (strcmp(key, "topic") == 0) return lua_pushstring(L, ls->topic_in), 1;
    if (strcmp(key, "pub") == 0) return lua_pushstring(L, ls->topic_out), 1;
    if (strcmp(key, "authenticated") == 0) return lua_pushboolean(L, ls->s && sts_session_authenticated(ls->s)), 1;
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, key);
    return 1;
}

static int session_gc(lua_State *L)
{
    struct lsession *ls = check_session(L, 1);
    sts_timer_stop(loop(), &ls->timer);
    sts_timer_stop(loop(), &ls->backlog);
    sts_session_free(ls->s);
    ls->s = NULL;
    free(ls->topic_in);
    free(ls->topic_out);
    ls->topic_in = ls->topic_out = NULL;
    return 0;
}

static int session_tostring(lua_State *L)
{
    struct lsession *ls = check_session(L, 1);
    lua_pushfstring(L, "sts.session (%s)", ls->topic_in ? ls->topic_in : "?");
    return 1;
}

void stsl_open_session(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "send", session_send }, { "on", session_on }, { "close", session_close },
        { "stats", session_stats }, { "state", session_state }, { "rehandshake", session_rehandshake },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__index", session_index }, { "__gc", session_gc }, { "__close", session_close_scope },
        { "__tostring", session_tostring }, { NULL, NULL },
    };
    static const luaL_Reg listener_meta[] = {
        { "__close", listener_close }, { "__gc", listener_gc }, { NULL, NULL },
    };
    static const luaL_Reg listener_methods[] = {
        { "sessions", listener_sessions }, { "close", listener_close }, { NULL, NULL },
    };
    static const luaL_Reg functions[] = {
        { "handshake", l_handshake }, { "listen", l_listen }, { NULL, NULL },
    };
    luaL_newmetatable(L, SESSION_MT);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
    stsl_new_class(L, LISTENER_MT, listener_meta, listener_methods);
    luaL_newmetatable(L, TRUST_MT);
    lua_pushcfunction(L, trust_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_setfuncs(L, functions, 0);
}
