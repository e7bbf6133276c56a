/* The key server's core (proto/group_server.c) as a userdata: the sessions
 * its listener accepts are attached to it in C (their messages never pass
 * through Lua, so keys never become Lua strings), its state is written with
 * sts_write_atomic, and its deadlines run on a loop timer. lua/sts/group.lua
 * (sts.group.serve) wires the listener, the ACL file and the signals to it.
 *
 * The userdata's user value is a table: the attached sessions (so they stay
 * reachable) and the event handler. */
#include "lua/group.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/log.h"

#include <mbedtls/platform_util.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATE_MAX (64u << 20)

struct lkeyserver {
    struct sts_gks *ks;
    char *state_path;           /* NULL: no persistence */
    struct sts_timer tick;
    struct sts_timer deliver;   /* hands queued events to the script */
    struct stsl_anchor anchor;
    uint64_t save_failures, complaints;
};

static struct sts_loop *loop(void)
{
    return sts_loop_default();
}

static struct lkeyserver *check_keyserver(lua_State *L, int idx)
{
    struct lkeyserver *k = luaL_checkudata(L, idx, KEYSERVER_MT);
    if (!k->ks) luaL_error(L, "attempt to use a closed key server");
    return k;
}

static void push_sessions(lua_State *L, int idx)
{
    lua_getiuservalue(L, idx, 1);
    lua_getfield(L, -1, "sessions");
    lua_remove(L, -2);
}

/* Runs the core's deadlines and arms the timer for the next one. */
static void rearm(struct lkeyserver *k)
{
    double next = sts_gks_tick(k->ks, sts_wall_now());
    if (next > 0) {
        double in = next - sts_wall_now();
        sts_timer_start(loop(), &k->tick, in > 0.01 ? in : 0.01, 0);
    } else {
        sts_timer_stop(loop(), &k->tick);
    }
}

static void on_tick(struct sts_timer *t, void *ud)
{
    (void)t;
    rearm(ud);
}

/* --- the core's operations --------------------------------------------------------- */

static int op_send(void *ud, void *peer, const uint8_t *msg, size_t len)
{
    (void)ud;
    return stsl_session_write(peer, msg, len);
}

/* Closes a session (one the peer closed sends no second KILL) so that its
 * listener forgets it, and lets go of it. */
static void end_session(struct lkeyserver *k, struct lsession *ls, const char *reason)
{
    lua_State *L = stsl_main();
    stsl_session_tap(ls, NULL);
    if (!stsl_anchor_push(L, &k->anchor)) return;
    int server = lua_gettop(L);
    push_sessions(L, server);
    lua_pushlightuserdata(L, ls);
    if (lua_rawget(L, -2) != LUA_TNIL) stsl_session_close(L, -1, ls, reason);
    lua_pop(L, 1);
    lua_pushlightuserdata(L, ls);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_settop(L, server - 1);
}

static void op_end(void *ud, void *peer, const char *reason)
{
    end_session(ud, peer, reason);
}

static int save_state(struct lkeyserver *k, char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len;
    int rc = sts_gks_save(k->ks, &buf, &len);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", k->state_path, sts_strerror(rc));
        return rc;
    }
    rc = sts_write_atomic(k->state_path, buf, len, 0600, err, errlen);
    mbedtls_platform_zeroize(buf, len);
    free(buf);
    return rc;
}

static int op_save(void *ud)
{
    struct lkeyserver *k = ud;
    char err[512];
    if (!k->state_path) return 0;
    int rc = save_state(k, err, sizeof err);
    if (rc != 0) {
        k->save_failures++;
        sts_error("key server: could not save the state: %s", err);
    }
    return rc;
}

/* The core reports from inside its own work (a rekey's loop over members, a
 * membership ending): the script's handler, which may close or reload the
 * key server, must not run there. Events are queued and handed to it from
 * the loop. */
static void op_event(void *ud, enum sts_gks_event ev, void *peer, const char *group, const char *member,
                     const char *text)
{
    static const char *const names[] = { "joined", "refused", "left", "removed", "rekeyed", "rejected" };
    struct lkeyserver *k = ud;
    lua_State *L = stsl_main();
    const char *g = group ? group : "-", *m = member ? member : "-", *t = text ? text : "";
    (void)peer;
    if (ev == STS_GKS_REFUSED || ev == STS_GKS_REJECTED) {
        uint64_t n = ++k->complaints; /* a flood must not flood the log: 1st, 2nd, 4th... */
        if ((n & (n - 1)) == 0)
            sts_warn("key server: %s %s in %s: %s (%llu refused or rejected so far)", names[ev], m, g, t,
                     (unsigned long long)n);
    } else {
        sts_info("key server: %s %s in %s%s%s", names[ev], m, g, *t ? ": " : "", t);
    }
    if (!stsl_anchor_push(L, &k->anchor)) return;
    int server = lua_gettop(L);
    lua_getiuservalue(L, server, 1);
    if (lua_getfield(L, -1, "on_event") == LUA_TFUNCTION) {
        lua_getfield(L, -2, "events");
        lua_createtable(L, 4, 0);
        const char *fields[] = { names[ev], group, member, text };
        for (int i = 0; i < 4; i++) {
            lua_pushstring(L, fields[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
        if (!sts_timer_active(&k->deliver)) sts_timer_start(loop(), &k->deliver, 0, 0);
    }
    lua_settop(L, server - 1);
}

/* Hands the queued events to the script's handler. */
static void on_deliver(struct sts_timer *t, void *ud)
{
    struct lkeyserver *k = ud;
    lua_State *L = stsl_main();
    (void)t;
    if (!stsl_anchor_push(L, &k->anchor)) return;
    int server = lua_gettop(L);
    lua_getiuservalue(L, server, 1);
    lua_getfield(L, -1, "events"); /* taken whole: the handler may queue more */
    lua_newtable(L);
    lua_setfield(L, -3, "events");
    int events = lua_gettop(L);
    for (lua_Integer i = 1; i <= (lua_Integer)luaL_len(L, events); i++) {
        if (lua_getfield(L, server + 1, "on_event") != LUA_TFUNCTION) break;
        lua_rawgeti(L, events, i);
        for (int f = 1; f <= 4; f++) lua_rawgeti(L, -f, f);
        lua_remove(L, -5);
        stsl_pcall(L, 4, 0, "key server event handler");
    }
    lua_settop(L, server - 1);
}

static const struct sts_gks_ops ops = { op_send, op_end, op_save, op_event };

/* --- sessions, through their taps ---------------------------------------------------- */

static void tap_message(void *ud, struct lsession *ls, const uint8_t *data, size_t len)
{
    struct lkeyserver *k = ud;
    if (!ls->has_peer_key) return; /* attach refuses NN sessions; nothing else comes here */
    sts_gks_receive(k->ks, ls, ls->peer_key, data, len, sts_wall_now());
    rearm(k);
}

static void tap_ended(void *ud, struct lsession *ls, const char *why, int quiet)
{
    struct lkeyserver *k = ud;
    stsl_session_tap(ls, NULL);
    if (!k->ks || quiet) return; /* quiet: the process is finalizing */
    sts_gks_detach(k->ks, ls, why, sts_wall_now());
    rearm(k);
    end_session(k, ls, why);
}

static const struct stsl_session_tap keyserver_tap = { tap_message, NULL, tap_ended, NULL };

/* --- options ---------------------------------------------------------------------- */

static int parse_method(lua_State *L, const char *s, const char *what)
{
    if (strcmp(s, "static") == 0) return STS_GROUP_STATIC;
    if (strcmp(s, "update") == 0) return STS_GROUP_UPDATE;
    if (strcmp(s, "slotted") == 0) return STS_GROUP_SLOTTED;
    return luaL_error(L, "option '%s' must be \"static\", \"update\" or \"slotted\", got \"%s\"", what, s);
}

static lua_Integer opt_range(lua_State *L, int idx, const char *key, lua_Integer def, lua_Integer lo, lua_Integer hi)
{
    lua_Integer v = stsl_opt_integer(L, idx, key, def);
    if (v < lo || v > hi) luaL_error(L, "option '%s' must be from %I to %I", key, lo, hi);
    return v;
}

/* Reads a group's settings from the table at idx over the defaults in gc. */
static void read_group_config(lua_State *L, int idx, struct sts_gks_group_config *gc)
{
    const char *method = stsl_opt_string(L, idx, "method", NULL);
    const char *cipher = stsl_opt_string(L, idx, "cipher", NULL);
    if (method) gc->method = (enum sts_group_method)parse_method(L, method, "method");
    if (cipher && strcmp(cipher, "chachapoly") == 0) gc->alg = STS_GROUP_CHACHAPOLY;
    else if (cipher && strcmp(cipher, "aesgcm") == 0) gc->alg = STS_GROUP_AESGCM;
    else if (cipher) luaL_error(L, "option 'cipher' must be \"chachapoly\" or \"aesgcm\"");
    gc->sign = stsl_opt_boolean(L, idx, "signed", gc->sign);
    gc->grace = (uint16_t)opt_range(L, idx, "grace", gc->grace, 0, 3600);
    gc->slot_seconds = (uint32_t)opt_range(L, idx, "slot", gc->slot_seconds, 1, 86400 * 366);
    gc->depth = (uint8_t)opt_range(L, idx, "depth", gc->depth, 1, STS_SLOT_DEPTH_MAX);
    gc->skew = (uint16_t)opt_range(L, idx, "skew", gc->skew, 0, 65535);
    gc->grant = (uint32_t)opt_range(L, idx, "grant", gc->grant, 1, UINT32_MAX);
    gc->max_grant = (uint32_t)opt_range(L, idx, "max_grant", gc->max_grant, 1, UINT32_MAX);
    if (gc->grant > gc->max_grant) luaL_error(L, "option 'grant' must not be over 'max_grant'");
}

static int load_state(lua_State *L, struct lkeyserver *k)
{
    char err[512];
    uint8_t *buf;
    size_t len;
    int rc = sts_read_file(k->state_path, STATE_MAX, &buf, &len, err, sizeof err);
    if (rc == STS_ERR_IO && access(k->state_path, F_OK) != 0) return 1; /* a first start */
    if (rc != 0) return stsl_fail(L, "%s", err), 0;
    rc = sts_gks_load(k->ks, buf, len, sts_wall_now(), err, sizeof err);
    mbedtls_platform_zeroize(buf, len);
    free(buf);
    if (rc != 0) return stsl_fail(L, "%s: %s (the file is kept as it is)", k->state_path, err), 0;
    return 1;
}

/* core.server(opts) -> key server | nil, why */
static int l_server(lua_State *L)
{
    struct sts_gks_config cfg;
    static const char *const known[] = { "method", "cipher", "signed", "grace", "slot", "depth", "skew",
                                          "grant", "max_grant", "idle", "resume", "state", "groups", NULL };
    static const char *const per_group[] = { "method", "cipher", "signed", "grace", "slot", "depth", "skew",
                                              "grant", "max_grant", NULL };
    stsl_check_options(L, 1, "key server", known);
    lua_settop(L, 1);
    sts_gks_config_defaults(&cfg);
    read_group_config(L, 1, &cfg.defaults);
    cfg.idle = stsl_opt_number(L, 1, "idle", cfg.idle);
    cfg.resume = stsl_opt_number(L, 1, "resume", cfg.resume);
    if (cfg.idle < 0 || cfg.resume <= 0) luaL_error(L, "options 'idle' and 'resume' must be positive seconds");
    const char *state = stsl_opt_string(L, 1, "state", NULL);

    struct lkeyserver *k = lua_newuserdatauv(L, sizeof *k, 1); /* 2 */
    memset(k, 0, sizeof *k);
    stsl_anchor_init(&k->anchor);
    sts_timer_init(&k->tick, on_tick, k);
    sts_timer_init(&k->deliver, on_deliver, k);
    luaL_setmetatable(L, KEYSERVER_MT);
    lua_createtable(L, 0, 3);
    lua_newtable(L);
    lua_setfield(L, -2, "sessions");
    lua_newtable(L);
    lua_setfield(L, -2, "events");
    lua_setiuservalue(L, 2, 1);
    if (!(k->ks = sts_gks_new(&cfg, &ops, k)) || (state && !(k->state_path = strdup(state))))
        return stsl_fail(L, "out of memory");

    /* The state first, then the settings: what the operator configures wins
     * over what was saved (a changed setting rekeys the group). */
    if (k->state_path && !load_state(L, k)) return 2;
    if (!stsl_opt_table(L, 1, "groups")) lua_newtable(L); /* 3: per group settings */
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        struct sts_gks_group_config gc = cfg.defaults;
        const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (!name || !lua_istable(L, -1)) luaL_error(L, "option 'groups' maps group names to tables of settings");
        stsl_check_options(L, lua_gettop(L), name, per_group);
        read_group_config(L, lua_gettop(L), &gc);
        if (sts_gks_define(k->ks, name, &gc, sts_wall_now()) != 0) luaL_error(L, "option 'groups': bad group '%s'", name);
        lua_pop(L, 1);
    }
    const char *restored;
    for (size_t i = 0; (restored = sts_gks_group_name(k->ks, i)); i++) {
        if (lua_getfield(L, 3, restored) == LUA_TNIL) sts_gks_define(k->ks, restored, &cfg.defaults, sts_wall_now());
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    stsl_anchor_set(L, 2, &k->anchor);
    rearm(k);
    lua_settop(L, 2);
    return 1;
}

/* --- methods ------------------------------------------------------------------------ */

/* server:acl(path) -> true | nil, why: (re)reads the access list; members it no
 * longer allows are removed at once. */
static int ks_acl(lua_State *L)
{
    struct lkeyserver *k = check_keyserver(L, 1);
    const char *path = luaL_checkstring(L, 2);
    char err[512];
    struct sts_acl acl;
    if (sts_acl_load(&acl, path, err, sizeof err) != 0) return stsl_fail(L, "%s", err);
    sts_gks_set_acl(k->ks, &acl, sts_wall_now());
    sts_acl_free(&acl);
    rearm(k);
    lua_pushboolean(L, 1);
    return 1;
}

/* server:attach(session): the session's messages go to the key server. */
static int ks_attach(lua_State *L)
{
    struct lkeyserver *k = check_keyserver(L, 1);
    struct lsession *ls = stsl_check_session(L, 2);
    if (!ls->has_peer_key) return stsl_fail(L, "the session is not authenticated");
    struct stsl_session_tap tap = keyserver_tap;
    tap.ud = k;
    stsl_session_tap(ls, &tap);
    push_sessions(L, 1);
    lua_pushlightuserdata(L, ls);
    lua_pushvalue(L, 2);
    lua_rawset(L, -3);
    lua_pushboolean(L, 1);
    return 1;
}

static int ks_will(lua_State *L)
{
    struct lkeyserver *k = check_keyserver(L, 1);
    sts_gks_will(k->ks, luaL_checkstring(L, 2), sts_wall_now());
    rearm(k);
    return 0;
}

static int ks_rotate(lua_State *L)
{
    struct lkeyserver *k = check_keyserver(L, 1);
    const char *group = luaL_checkstring(L, 2);
    if (sts_gks_rotate(k->ks, group, sts_wall_now()) != 0) return stsl_fail(L, "no group '%s'", group);
    rearm(k);
    lua_pushboolean(L, 1);
    return 1;
}

/* server:groups() -> { name, ... } */
static int ks_groups(lua_State *L)
{
    struct lkeyserver *k = check_keyserver(L, 1);
    const char *name;
    lua_newtable(L);
    for (size_t i = 0; (name = sts_gks_group_name(k->ks, i)); i++) {
        lua_pushstring(L, name);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int ks_save(lua_State *L)
{
    struct lkeyserver *k = check_keyserver(L, 1);
    char err[512];
    if (!k->state_path) return stsl_fail(L, "the key server has no state file");
    if (save_state(k, err, sizeof err) != 0) return stsl_fail(L, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

static int ks_on_event(lua_State *L)
{
    check_keyserver(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "on_event");
    return 0;
}

static int ks_stats(lua_State *L)
{
    struct lkeyserver *k = check_keyserver(L, 1);
    struct sts_gks_stats st;
    sts_gks_stats(k->ks, &st);
    lua_createtable(L, 0, 12);
    stsl_set_count(L, "joins", st.joins);
    stsl_set_count(L, "refusals", st.refusals);
    stsl_set_count(L, "leaves", st.leaves);
    stsl_set_count(L, "removals", st.removals);
    stsl_set_count(L, "rekeys", st.rekeys);
    stsl_set_count(L, "rejected", st.rejected);
    stsl_set_count(L, "messages_out", st.messages_out);
    stsl_set_count(L, "groups", st.groups);
    stsl_set_count(L, "members", st.members);
    stsl_set_count(L, "sessions", st.peers);
    stsl_set_count(L, "save_failures", k->save_failures);
    stsl_set_count(L, "memory", sts_gks_memory(k->ks));
    return 1;
}

/* server:group(name) -> { epoch, members } | nil */
static int ks_group(lua_State *L)
{
    struct lkeyserver *k = check_keyserver(L, 1);
    uint32_t epoch;
    size_t members;
    if (sts_gks_group_info(k->ks, luaL_checkstring(L, 2), &epoch, &members) != 0) return 0;
    lua_createtable(L, 0, 2);
    stsl_set_count(L, "epoch", epoch);
    stsl_set_count(L, "members", members);
    return 1;
}

/* Untaps every attached session (they stay open: whoever owns them closes
 * them) and frees the core. */
static void release(lua_State *L, int idx, struct lkeyserver *k)
{
    if (!k->ks) return;
    sts_timer_stop(loop(), &k->tick);
    sts_timer_stop(loop(), &k->deliver);
    push_sessions(L, idx);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        stsl_session_tap(lua_touserdata(L, -2), NULL);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    sts_gks_free(k->ks);
    k->ks = NULL;
    free(k->state_path);
    k->state_path = NULL;
    stsl_anchor_release(&k->anchor);
}

static int ks_close(lua_State *L)
{
    struct lkeyserver *k = luaL_checkudata(L, 1, KEYSERVER_MT);
    release(L, 1, k);
    return 0;
}

static int ks_tostring(lua_State *L)
{
    struct lkeyserver *k = luaL_checkudata(L, 1, KEYSERVER_MT);
    lua_pushstring(L, k->ks ? "sts.keyserver" : "sts.keyserver (closed)");
    return 1;
}

void stsl_open_group_server(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "acl", ks_acl }, { "attach", ks_attach }, { "will", ks_will }, { "rotate", ks_rotate },
        { "save", ks_save }, { "on_event", ks_on_event }, { "stats", ks_stats }, { "group", ks_group }, { "groups", ks_groups },
        { "close", ks_close }, { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", ks_close }, { "__close", ks_close }, { "__tostring", ks_tostring }, { NULL, NULL },
    };
    stsl_new_class(L, KEYSERVER_MT, meta, methods);
    lua_pushcfunction(L, l_server);
    lua_setfield(L, -2, "server");
}
