/* sts.listen: one responder for many initiators. The listener subscribes
 * one wildcard filter ("plant/+/up"); a frame on a topic it has no session
 * for makes a responder session for that topic, replying on the topic its
 * `pub` pattern gives ("plant/+/down"). Its sessions are found in C: they are
 * subscribers, by exact topic, of a registry of the listener's own, so a
 * frame reaches its session with one hash lookup and no Lua.
 *
 * A listener is a userdata with one user value: a table holding the client,
 * the trust list, the on_session handler and its sessions by topic (for
 * listener:sessions() and to keep them reachable). */
#include "lua/session.h"
#include "mqtt/registry.h"
#include "mqtt/topic.h"
#include "util/log.h"

#include <mbedtls/platform_util.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_SESSIONS 10000

struct llistener {
    struct lclient *client;
    struct sts_mqtt_sub *sub;     /* the wildcard filter on the client */
    struct sts_registry sessions; /* exact topic -> its session */
    char *filter, *pub;
    struct policy policy;         /* every session's settings */
    struct stsl_anchor anchor;
    int closing;
    size_t nsessions, max_sessions;
};

static struct llistener *check_listener(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, LISTENER_MT);
}

static void on_session_frame(void *ud, const struct sts_mqtt_message *msg)
{
    stsl_session_receive(ud, msg);
}

/* Makes the session for a frame on a topic not seen before; leaves the
 * stack as it found it. */
static void add_session(lua_State *L, struct llistener *li, const char *topic)
{
    char out[1024];
    if (li->nsessions >= li->max_sessions) {
        sts_warn("listener %s: refused a frame on %s: %zu sessions already (max_sessions)", li->filter, topic, li->nsessions);
        return;
    }
    if (sts_topic_reply(out, sizeof out, li->filter, li->pub, topic) < 0) {
        sts_warn("listener %s: refused a frame on %s: its reply topic is too long", li->filter, topic);
        return;
    }
    if (!stsl_anchor_push(L, &li->anchor)) return;
    int listener = lua_gettop(L);
    struct policy p = li->policy; /* the copy's key pointers must point into the copy */
    if (p.cfg.static_priv) p.cfg.static_priv = p.identity, p.cfg.static_pub = p.identity_pub;
    if (p.cfg.peer_static) p.cfg.peer_static = p.peer;
    stsl_get_uv(L, listener, "client");
    stsl_get_uv(L, listener, "trust");
    struct lsession *ls = stsl_session_new(L, listener + 1, listener + 2, &p, STS_ROLE_RESPONDER, topic, out);
    mbedtls_platform_zeroize(&p, sizeof p);
    if (!ls) {
        sts_warn("listener %s: no session for %s: %s", li->filter, topic, lua_tostring(L, -1));
    } else if (!(ls->sub = sts_registry_add(&li->sessions, topic, 0, on_session_frame, ls))) {
        sts_warn("listener %s: no session for %s: out of memory", li->filter, topic);
        stsl_session_close(L, -1, ls, "out of memory");
    } else {
        ls->listener = li;
        ls->give_up = sts_now() + 2 * li->policy.cfg.handshake_timeout;
        lua_pushvalue(L, listener);
        lua_setiuservalue(L, -2, UV_LISTENER);
        stsl_get_uv(L, listener, "sessions");
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, topic);
        li->nsessions++;
    }
    lua_settop(L, listener - 1);
}

/* The listener's subscriber: routes each frame to the session of its topic,
 * making one for a topic not seen before. */
static void on_frame(void *ud, const struct sts_mqtt_message *msg)
{
    struct llistener *li = ud;
    static const int go_on = 0;
    if (li->closing) return;
    if (sts_registry_deliver(&li->sessions, msg, &go_on) > 0) return;
    add_session(stsl_main(), li, msg->topic);
    sts_registry_deliver(&li->sessions, msg, &go_on);
}

void stsl_listener_established(lua_State *L, int session, struct lsession *ls)
{
    lua_getiuservalue(L, session, UV_LISTENER);
    int listener = lua_gettop(L);
    if (stsl_get_uv(L, listener, "on_session") == LUA_TFUNCTION && !ls->quiet) {
        lua_pushvalue(L, session);
        stsl_pcall(L, 1, 0, "listener session handler");
    } else {
        lua_pop(L, 1);
    }
    lua_settop(L, listener - 1);
}

/* A closed session leaves its listener, so that the next handshake on its
 * topic makes a new session rather than reach a closed one. */
void stsl_listener_forget(lua_State *L, int session, struct lsession *ls)
{
    struct llistener *li = ls->listener;
    struct sts_filter *f = ls->sub->filter;
    sts_registry_remove(ls->sub);
    sts_registry_collect(&li->sessions, f);
    li->nsessions--;
    lua_getiuservalue(L, session, UV_LISTENER);
    stsl_get_uv(L, -1, "sessions");
    lua_pushnil(L);
    lua_setfield(L, -2, ls->topic_in);
    lua_pop(L, 2);
}

static int listener_close(lua_State *L);

static int listener_client_closed(lua_State *L)
{
    return listener_close(L);
}

/* sts.listen(client, opts, on_session) -> listener | nil, message */
static int l_listen(lua_State *L)
{
    static const char *const known[] = {
        "pub", "sub", "identity", "peer", "trust", "pattern", "suite", "timeout", "qos", "rekey",
        "retransmit", "max_sessions", NULL,
    };
    struct policy p;
    int rc;
    struct lclient *client = stsl_check_client(L, 1);
    stsl_check_options(L, 2, "sts.listen", known);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    const char *pub = stsl_required_topic(L, 2, "pub");
    const char *sub = stsl_required_topic(L, 2, "sub");
    lua_Integer max_sessions = stsl_opt_integer(L, 2, "max_sessions", DEFAULT_MAX_SESSIONS);
    size_t plus_sub = sts_topic_count_plus(sub);
    if (strchr(sub, '#') || strchr(pub, '#') || plus_sub == 0 || sts_topic_count_plus(pub) > plus_sub)
        luaL_error(L, "sts.listen needs a 'sub' filter with + levels and a 'pub' with at most as many + (no #)");
    if (max_sessions < 1) luaL_error(L, "option 'max_sessions' must be positive");
    if (!stsl_read_policy(L, 2, &p, 1)) return stsl_fail(L, "%s", lua_tostring(L, -1)); /* 4: trust */

    struct llistener *li = lua_newuserdatauv(L, sizeof *li, 1); /* 5 */
    memset(li, 0, sizeof *li);
    stsl_anchor_init(&li->anchor);
    sts_registry_init(&li->sessions);
    li->client = client;
    li->max_sessions = (size_t)max_sessions;
    li->policy = p;
    mbedtls_platform_zeroize(&p, sizeof p);
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
    li->filter = strdup(sub);
    li->pub = strdup(pub);
    if (!li->filter || !li->pub) return luaL_error(L, "out of memory");
    li->sub = sts_mqtt_subscribe(stsl_client_mqtt(client), sub, li->policy.qos, on_frame, li, &rc);
    if (!li->sub) return stsl_fail(L, "subscribe: %s", mosquitto_strerror(rc));
    stsl_anchor_set(L, 5, &li->anchor);
    stsl_client_on_close(L, 1, 5, listener_client_closed);
    lua_settop(L, 5);
    return 1;
}

/* listener:sessions() -> { [topic] = session } of the established ones */
static int listener_sessions(lua_State *L)
{
    check_listener(L, 1);
    lua_newtable(L);
    stsl_get_uv(L, 1, "sessions");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (stsl_check_session(L, -1)->established) lua_setfield(L, -4, lua_tostring(L, -2));
        else lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 1;
}

static int listener_close(lua_State *L)
{
    struct llistener *li = check_listener(L, 1);
    if (li->closing || li->anchor.ref == LUA_NOREF) return 0;
    li->closing = 1;
    stsl_get_uv(L, 1, "sessions");
    int sessions = lua_gettop(L);
    lua_newtable(L); /* a copy: closing a session takes it out of the table */
    int copy = lua_gettop(L), n = 0;
    lua_pushnil(L);
    while (lua_next(L, sessions)) lua_rawseti(L, copy, ++n);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, copy, i);
        stsl_session_close(L, -1, stsl_check_session(L, -1), "listener closed");
        lua_pop(L, 1);
    }
    stsl_get_uv(L, 1, "client");
    stsl_client_on_close(L, lua_gettop(L), 1, NULL);
    struct sts_mqtt *m = stsl_client_mqtt(li->client);
    if (m) sts_mqtt_unsubscribe(m, li->sub);
    stsl_anchor_release(&li->anchor);
    return 0;
}

static int listener_gc(lua_State *L)
{
    struct llistener *li = check_listener(L, 1);
    sts_registry_free(&li->sessions);
    free(li->filter);
    free(li->pub);
    li->filter = li->pub = NULL;
    mbedtls_platform_zeroize(&li->policy, sizeof li->policy);
    return 0;
}

void stsl_open_listener(lua_State *L)
{
    static const luaL_Reg meta[] = { { "__close", listener_close }, { "__gc", listener_gc }, { NULL, NULL } };
    static const luaL_Reg methods[] = {
        { "sessions", listener_sessions }, { "close", listener_close }, { NULL, NULL },
    };
    stsl_new_class(L, LISTENER_MT, meta, methods);
    lua_pushcfunction(L, l_listen);
    lua_setfield(L, -2, "listen");
}
