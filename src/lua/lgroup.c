/* A group member (the userdata behind sts.group.join): the member core of
 * proto/group_member.c on a client and a pairwise session with the key
 * server. The key server's messages reach it in C through the session's tap
 * (keys never become Lua strings); the group's frames reach it in C through
 * a subscriber on the group topic, and only plaintexts go up to the script.
 *
 * Frames that may just be early (an epoch newer than ours, a sender the
 * roster does not list yet: the key server's message to us can be a moment
 * behind the sender's frame) wait in a short backlog and are tried again
 * when our keys or roster change; what is still waiting after PENDING_SECONDS
 * is rejected as it would have been.
 *
 * The userdata's user value is a table: client, session, the event handlers
 * (on), the pending join (future) and the reconnect hook. */
#include "lua/group.h"
#include "crypto/random.h"
#include "mqtt/client.h"
#include "util/error.h"
#include "util/log.h"

#include <mbedtls/platform_util.h>
#include <stdlib.h>
#include <string.h>

#define PENDING_MAX 256
#define PENDING_SECONDS 2.0

struct lgroup {
    struct sts_gmember m;
    struct lclient *client;
    struct lsession *ls;          /* the session with the key server, NULL while lost */
    struct sts_mqtt_sub *sub;     /* the group topic */
    char *topic;
    int qos;
    double keepalive;
    struct sts_timer ping, renew, join_wait, pending_expiry;
    struct sts_backlog pending;   /* frames waiting for a key or a roster entry */
    struct stsl_anchor anchor;
    int closed;
    uint64_t sent, received, echoes, rekeys, rejections, rejected[STS_REASON_COUNT];
    uint8_t *buf;                 /* sealing and opening scratch */
    size_t bufcap;
};

static struct sts_loop *loop(void)
{
    return sts_loop_default();
}

static struct lgroup *check_group(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, GROUP_MT);
}

static int push_handler(lua_State *L, int group, const char *event)
{
    stsl_get_uv(L, group, "on");
    lua_getfield(L, -1, event);
    lua_remove(L, -2);
    if (lua_isfunction(L, -1)) return 1;
    lua_pop(L, 1);
    return 0;
}

static int ensure_buf(struct lgroup *g, size_t need)
{
    if (need <= g->bufcap) return 0;
    uint8_t *b = malloc(need);
    if (!b) return STS_ERR_NOMEM;
    if (g->buf) mbedtls_platform_zeroize(g->buf, g->bufcap);
    free(g->buf);
    g->buf = b, g->bufcap = need;
    return 0;
}

/* --- talking to the key server ------------------------------------------------- */

typedef int (*encode_fn)(struct sts_gmember *m, uint8_t *out, size_t cap, size_t *outlen);

static void tell_keyserver(struct lgroup *g, encode_fn encode, const char *what)
{
    uint8_t msg[STS_GMSG_MAX];
    size_t len;
    int rc = encode(&g->m, msg, sizeof msg, &len);
    if (rc == 0 && g->ls) rc = stsl_session_write(g->ls, msg, len);
    else if (rc == 0) rc = STS_ERR_STATE;
    if (rc != 0) sts_warn("group %s: could not send %s to the key server: %s", g->m.group, what, sts_strerror(rc));
}

static void on_ping(struct sts_timer *t, void *ud)
{
    struct lgroup *g = ud;
    uint8_t msg[16];
    size_t len;
    uint32_t token;
    (void)t;
    if (!g->ls || sts_random((uint8_t *)&token, sizeof token) != 0) return;
    if (sts_gmember_ping(token, msg, sizeof msg, &len) == 0) (void)stsl_session_write(g->ls, msg, len);
}

static void arm_renewal(struct lgroup *g)
{
    double at = sts_gmember_renew_at(&g->m);
    if (at > 0) sts_timer_start(loop(), &g->renew, at > sts_wall_now() ? at - sts_wall_now() : 0, 0);
    else sts_timer_stop(loop(), &g->renew);
}

static void on_renew(struct sts_timer *t, void *ud)
{
    struct lgroup *g = ud;
    (void)t;
    tell_keyserver(g, sts_gmember_join, "a renewal");
}

/* --- the join, as the script waits for it ------------------------------------- */

/* Resolves a pending join: the group (ok) or nil and why. */
static void settle_join(lua_State *L, int group, struct lgroup *g, int ok, const char *why)
{
    sts_timer_stop(loop(), &g->join_wait);
    if (stsl_get_uv(L, group, "pending") == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pushnil(L);
    stsl_set_uv(L, group, "pending");
    if (ok) lua_pushboolean(L, 1);
    else lua_pushnil(L);
    lua_pushstring(L, why);
    stsl_future_resolve(L, -3, 2);
    lua_pop(L, 1);
}

static void on_join_wait(struct sts_timer *t, void *ud)
{
    struct lgroup *g = ud;
    lua_State *L = stsl_main();
    (void)t;
    if (!stsl_anchor_push(L, &g->anchor)) return;
    settle_join(L, lua_gettop(L), g, 0, "timeout: no answer from the key server");
    lua_pop(L, 1);
}

/* --- frames ----------------------------------------------------------------------- */

static void count_rejection(struct lgroup *g, enum sts_reason why, const char *topic)
{
    g->rejected[why]++;
    uint64_t n = ++g->rejections;
    if ((n & (n - 1)) == 0)
        sts_warn("group %s: rejected a frame on %s: %s (%llu rejected so far)", g->m.group, topic,
                 sts_reason_name(why), (unsigned long long)n);
}

static void deliver(lua_State *L, int group, struct lgroup *g, const uint8_t *pt, size_t len,
                    const struct sts_gmember_info *info)
{
    g->received++;
    if (!push_handler(L, group, "message")) return;
    lua_pushlstring(L, (const char *)pt, len);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, info->sender);
    lua_setfield(L, -2, "sender");
    lua_pushinteger(L, info->epoch);
    lua_setfield(L, -2, g->m.method == STS_GROUP_SLOTTED ? "slot" : "epoch");
    lua_pushinteger(L, info->index);
    lua_setfield(L, -2, "index");
    lua_pushinteger(L, (lua_Integer)info->counter);
    lua_setfield(L, -2, "counter");
    lua_pushstring(L, g->topic);
    lua_setfield(L, -2, "topic");
    stsl_pcall(L, 2, 0, "group message handler");
}

/* Whether a refused frame may only be early, and is worth keeping a moment. */
static int may_be_early(const struct lgroup *g, enum sts_reason why, const uint8_t *frame, size_t len)
{
    if (why == STS_REASON_UNTRUSTED || why == STS_REASON_STATE) return 1;
    if (why != STS_REASON_STALE_EPOCH || len < STS_GROUP_HEADER_LEN || g->m.method == STS_GROUP_SLOTTED) return 0;
    uint32_t epoch = (uint32_t)frame[2] << 24 | (uint32_t)frame[3] << 16 | (uint32_t)frame[4] << 8 | frame[5];
    return epoch > g->m.epoch;
}

/* Opens one frame and delivers it. Returns why it was refused (NONE once
 * delivered, or for our own frame come back). */
static enum sts_reason open_frame(lua_State *L, int group, struct lgroup *g, const uint8_t *frame, size_t len)
{
    struct sts_gmember_info info;
    size_t ptlen;
    if (sts_gmember_is_own(&g->m, frame, len)) {
        g->echoes++;
        return STS_REASON_NONE;
    }
    if (ensure_buf(g, len) != 0) return STS_REASON_INTERNAL;
    enum sts_reason why = sts_gmember_open(&g->m, g->topic, frame, len, sts_wall_now(), g->buf, &ptlen, &info);
    if (why != STS_REASON_NONE) return why;
    deliver(L, group, g, g->buf, ptlen, &info);
    mbedtls_platform_zeroize(g->buf, ptlen);
    return STS_REASON_NONE;
}

static void keep_frame(struct lgroup *g, double at, const uint8_t *frame, size_t len)
{
    if (sts_backlog_push(&g->pending, at, NULL, 0, frame, len, NULL) != 0) {
        count_rejection(g, STS_REASON_TOO_BIG, g->topic);
        return;
    }
    if (!sts_timer_active(&g->pending_expiry)) sts_timer_start(loop(), &g->pending_expiry, PENDING_SECONDS, 0);
}

/* Tries the kept frames again (our keys or roster changed, or time is up);
 * those kept PENDING_SECONDS that still do not open are rejected. */
static void retry_pending(lua_State *L, int group, struct lgroup *g)
{
    double now = sts_now();
    for (struct sts_backlog_item *it = sts_backlog_take(&g->pending), *next; it; it = next) {
        next = it->next;
        if (g->closed) { /* a handler closed the group */
            sts_backlog_item_free(&g->pending, it);
            continue;
        }
        enum sts_reason why = open_frame(L, group, g, it->data, it->len);
        if (why != STS_REASON_NONE && now - it->at < PENDING_SECONDS && may_be_early(g, why, it->data, it->len)) {
            sts_backlog_requeue(&g->pending, it);
            continue;
        }
        if (why != STS_REASON_NONE) count_rejection(g, why, g->topic);
        sts_backlog_item_free(&g->pending, it);
    }
    if (g->pending.n) sts_timer_start(loop(), &g->pending_expiry, PENDING_SECONDS / 4, 0);
}

static void on_pending_expiry(struct sts_timer *t, void *ud)
{
    struct lgroup *g = ud;
    lua_State *L = stsl_main();
    (void)t;
    if (!stsl_anchor_push(L, &g->anchor)) return;
    retry_pending(L, lua_gettop(L), g);
    lua_pop(L, 1);
}

static void on_frame(void *ud, const struct sts_mqtt_message *msg)
{
    struct lgroup *g = ud;
    lua_State *L = stsl_main();
    if (g->closed || !stsl_anchor_push(L, &g->anchor)) return;
    enum sts_reason why = open_frame(L, lua_gettop(L), g, msg->payload, msg->len);
    if (why != STS_REASON_NONE && may_be_early(g, why, msg->payload, msg->len))
        keep_frame(g, sts_now(), msg->payload, msg->len);
    else if (why != STS_REASON_NONE)
        count_rejection(g, why, g->topic);
    lua_pop(L, 1);
}

/* --- the key server's messages, through the session's tap ----------------------- */

static void emit(lua_State *L, int group, const char *event, const char *arg)
{
    if (!push_handler(L, group, event)) return;
    lua_pushstring(L, arg);
    stsl_pcall(L, 1, 0, "group handler");
}

static void stop_timers(struct lgroup *g)
{
    sts_timer_stop(loop(), &g->ping);
    sts_timer_stop(loop(), &g->renew);
    sts_timer_stop(loop(), &g->join_wait);
    sts_timer_stop(loop(), &g->pending_expiry);
}

static void detach_session(lua_State *L, int group, struct lgroup *g, int close, const char *why)
{
    if (!g->ls) return;
    stsl_session_tap(g->ls, NULL);
    if (close && stsl_get_uv(L, group, "session") != LUA_TNIL) stsl_session_close(L, -1, g->ls, why);
    if (close) lua_pop(L, 1);
    g->ls = NULL;
    sts_timer_stop(loop(), &g->ping);
}

static void release(lua_State *L, int group, struct lgroup *g, int quiet);

static void apply_change(lua_State *L, int group, struct lgroup *g, const struct sts_gmember_change *ch)
{
    if (ch->replylen && g->ls) (void)stsl_session_write(g->ls, ch->reply, ch->replylen);
    if (ch->joined || ch->rekeyed) arm_renewal(g);
    if (ch->joined) {
        sts_info("group %s: joined (%s, sender index %u)", g->m.group,
                 g->m.method == STS_GROUP_SLOTTED ? "slotted" : g->m.method == STS_GROUP_UPDATE ? "update" : "static",
                 (unsigned)g->m.index);
        settle_join(L, group, g, 1, "joined");
    }
    if (ch->rekeyed) {
        g->rekeys++;
        if (push_handler(L, group, "rekey")) {
            lua_pushinteger(L, g->m.method == STS_GROUP_SLOTTED ? g->m.first : g->m.epoch);
            stsl_pcall(L, 1, 0, "group rekey handler");
        }
    }
    if (ch->refused) {
        sts_warn("group %s: the key server refused us: %s", g->m.group, g->m.reason);
        settle_join(L, group, g, 0, g->m.reason);
        detach_session(L, group, g, 1, "refused");
    }
    if (ch->removed) {
        sts_warn("group %s: removed by the key server: %s", g->m.group, g->m.reason);
        settle_join(L, group, g, 0, g->m.reason);
        emit(L, group, "removed", g->m.reason);
        release(L, group, g, 0); /* nothing is left to do: the session and the subscription go */
        return;
    }
    if ((ch->joined || ch->rekeyed || ch->roster) && g->pending.n) retry_pending(L, group, g);
}

static void tap_message(void *ud, struct lsession *ls, const uint8_t *data, size_t len)
{
    struct lgroup *g = ud;
    lua_State *L = stsl_main();
    struct sts_gmember_change ch;
    (void)ls;
    if (!stsl_anchor_push(L, &g->anchor)) return;
    int group = lua_gettop(L);
    int rc = sts_gmember_control(&g->m, data, len, sts_wall_now(), &ch);
    if (rc != 0) sts_warn("group %s: ignored a message from the key server: %s", g->m.group, sts_strerror(rc));
    else apply_change(L, group, g, &ch);
    lua_settop(L, group - 1);
}

/* The key server restarted and our session handshook again: tell it who we
 * are, so it takes us back with the index we hold. */
static void tap_rekeyed(void *ud, struct lsession *ls)
{
    struct lgroup *g = ud;
    (void)ls;
    tell_keyserver(g, sts_gmember_join, "a rejoin");
}

/* The session with the key server ended without our asking (not a removal):
 * the keys we hold keep working; the script's reconnect hook gets a new
 * session to us. */
static void tap_ended(void *ud, struct lsession *ls, const char *why, int quiet)
{
    struct lgroup *g = ud;
    lua_State *L = stsl_main();
    int ours = ls->closing; /* the script closed g.session itself: it left the key server */
    if (!stsl_anchor_push(L, &g->anchor)) return;
    int group = lua_gettop(L);
    detach_session(L, group, g, !ours, why); /* closed here too, so its topic is free for the next one */
    if (!quiet && !ours && !g->closed && g->m.state == STS_GMEMBER_JOINED) {
        sts_warn("group %s: lost the key server (%s); keeping the keys we hold", g->m.group, why);
        if (stsl_get_uv(L, group, "reconnect") == LUA_TFUNCTION) {
            lua_pushvalue(L, group);
            stsl_pcall(L, 1, 0, "group reconnect");
        } else {
            lua_pop(L, 1);
        }
    } else if (!quiet && g->m.state == STS_GMEMBER_JOINING) {
        settle_join(L, group, g, 0, why);
    }
    lua_settop(L, group - 1);
}

static const struct stsl_session_tap member_tap = { tap_message, tap_rekeyed, tap_ended, NULL };

/* --- the group object ------------------------------------------------------------ */

static int is_open(const struct lgroup *g)
{
    return !g->closed && g->m.state != STS_GMEMBER_LEFT;
}

/* Finalizes everything C holds; safe to call twice. */
static void release(lua_State *L, int group, struct lgroup *g, int quiet)
{
    if (g->closed) return;
    g->closed = 1;
    stop_timers(g);
    if (!quiet) detach_session(L, group, g, 1, "left the group");
    else if (g->ls) stsl_session_tap(g->ls, NULL), g->ls = NULL;
    struct sts_mqtt *mq = stsl_client_mqtt(g->client);
    if (mq && g->sub) sts_mqtt_unsubscribe(mq, g->sub);
    g->sub = NULL;
    stsl_get_uv(L, group, "client");
    if (!lua_isnil(L, -1)) stsl_client_on_close(L, lua_gettop(L), group, NULL);
    lua_pop(L, 1);
    sts_backlog_clear(&g->pending);
    stsl_anchor_release(&g->anchor);
}

/* The client is closing: so is the group. */
static int group_client_closed(lua_State *L)
{
    struct lgroup *g = check_group(L, 1);
    release(L, 1, g, lua_toboolean(L, 2));
    return 0;
}

/* core.member(client, { group, topic, client_id, grant, keepalive, qos }) -> member
 * A member not yet attached to a key server session. */
static int l_member(lua_State *L)
{
    static const char *const known[] = { "group", "topic", "client_id", "grant", "keepalive", "qos", NULL };
    struct lclient *client = stsl_check_client(L, 1);
    stsl_check_options(L, 2, "member", known);
    const char *name = stsl_opt_string(L, 2, "group", NULL);
    const char *topic = stsl_opt_string(L, 2, "topic", NULL);
    const char *client_id = stsl_opt_string(L, 2, "client_id", "");
    lua_Integer grant = stsl_opt_integer(L, 2, "grant", 0);
    double keepalive = stsl_opt_number(L, 2, "keepalive", 30);
    int qos = (int)stsl_opt_integer(L, 2, "qos", 1);
    if (!name || !sts_group_name_valid(name, strlen(name)))
        luaL_error(L, "option 'group' must be 1 to %d letters, digits, '_', '.' or '-'", STS_GROUP_NAME_MAX);
    if (!topic || !*topic || sts_topic_has_wildcard(topic)) luaL_error(L, "option 'topic' must be an exact topic");
    for (const char *c = client_id; *c; c++)
        if (*c < 0x21 || *c > 0x7e) luaL_error(L, "option 'client_id' must be printable ASCII without spaces");
    if (strlen(client_id) > 255) luaL_error(L, "option 'client_id' must be at most 255 bytes");
    if (grant < 0 || grant > UINT32_MAX) luaL_error(L, "option 'grant' must be seconds, 0 to 2^32-1");
    if (keepalive < 1) luaL_error(L, "option 'keepalive' must be at least 1 second");
    if (qos < 0 || qos > 2) luaL_error(L, "option 'qos' must be 0, 1 or 2");
    struct sts_mqtt *mq = stsl_client_mqtt(client);
    if (!mq) return stsl_fail(L, "the client is closed");

    struct lgroup *g = lua_newuserdatauv(L, sizeof *g, 1); /* 3 */
    memset(g, 0, sizeof *g);
    stsl_anchor_init(&g->anchor);
    sts_backlog_init(&g->pending, PENDING_MAX, NULL);
    sts_timer_init(&g->ping, on_ping, g);
    sts_timer_init(&g->renew, on_renew, g);
    sts_timer_init(&g->join_wait, on_join_wait, g);
    sts_timer_init(&g->pending_expiry, on_pending_expiry, g);
    g->closed = 1; /* until everything below is in place */
    luaL_setmetatable(L, GROUP_MT);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "client");
    lua_newtable(L);
    lua_setfield(L, -2, "on");
    lua_setiuservalue(L, 3, 1);
    g->client = client;
    g->qos = qos;
    g->keepalive = keepalive;
    int rc = sts_gmember_init(&g->m, name, client_id, (uint32_t)grant);
    if (rc != 0) return stsl_fail(L, "group %s: %s", name, sts_strerror(rc));
    if (!(g->topic = strdup(topic))) return stsl_fail(L, "out of memory");
    if (!(g->sub = sts_mqtt_subscribe(mq, topic, qos, on_frame, g, &rc)))
        return stsl_fail(L, "group %s: subscribe: %s", name, mosquitto_strerror(rc));
    g->closed = 0;
    stsl_anchor_set(L, 3, &g->anchor);
    stsl_client_on_close(L, 1, 3, group_client_closed);
    return 1;
}

/* member:attach(session [, timeout]) -> true | nil, why
 * Takes over an established session with the key server and sends our JOIN;
 * with a timeout, waits for the key server's answer. */
static int group_attach(lua_State *L)
{
    struct lgroup *g = check_group(L, 1);
    struct lsession *ls = stsl_check_session(L, 2);
    double timeout = luaL_optnumber(L, 3, -1);
    if (!is_open(g)) return stsl_fail(L, "the group is closed");
    if (g->ls) detach_session(L, 1, g, 1, "replaced");
    struct stsl_session_tap tap = member_tap;
    tap.ud = g;
    stsl_session_tap(ls, &tap);
    g->ls = ls;
    lua_pushvalue(L, 2);
    stsl_set_uv(L, 1, "session");
    sts_timer_start(loop(), &g->ping, g->keepalive, g->keepalive);
    tell_keyserver(g, sts_gmember_join, "our join");
    if (timeout < 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    stsl_future_new(L);
    lua_pushvalue(L, -1);
    stsl_set_uv(L, 1, "pending");
    sts_timer_start(loop(), &g->join_wait, timeout, 0);
    return stsl_future_await(L, lua_gettop(L), -1);
}

static int group_send(lua_State *L)
{
    struct lgroup *g = check_group(L, 1);
    size_t len, outlen;
    const char *text = luaL_checklstring(L, 2, &len);
    if (!is_open(g)) return stsl_fail(L, "the group is closed");
    if (g->m.state != STS_GMEMBER_JOINED) return stsl_fail(L, "group %s: not a member (%s)", g->m.group, g->m.reason);
    if (len > STS_GROUP_PAYLOAD_MAX) return stsl_fail(L, "send: the message is over %d bytes", STS_GROUP_PAYLOAD_MAX);
    struct sts_mqtt *mq = stsl_client_mqtt(g->client);
    if (!mq || (g->qos == 0 && sts_mqtt_state(mq) != STS_MQTT_CONNECTED))
        return stsl_fail(L, "send: the client is not connected");
    if (ensure_buf(g, len + STS_GROUP_OVERHEAD + STS_GROUP_SIG_LEN) != 0) return stsl_fail(L, "out of memory");
    int rc = sts_gmember_seal(&g->m, g->topic, (const uint8_t *)text, len, sts_wall_now(), g->buf, g->bufcap, &outlen);
    if (rc == STS_ERR_STATE)
        return stsl_fail(L, "group %s: %s", g->m.group, !(g->m.flags & STS_GFLAG_WRITE) ? "this member may not send"
                                                                                         : "no key for now (the grant ended)");
    if (rc != 0) return stsl_fail(L, "send: %s", sts_strerror(rc));
    rc = sts_mqtt_publish(mq, g->topic, g->buf, outlen, g->qos, 0, NULL);
    if (rc != MOSQ_ERR_SUCCESS) return stsl_fail(L, "send: %s", mosquitto_strerror(rc));
    g->sent++;
    lua_pushboolean(L, 1);
    return 1;
}

static int group_on(lua_State *L)
{
    static const char *const events[] = { "message", "rekey", "removed", NULL };
    check_group(L, 1);
    const char *event = events[luaL_checkoption(L, 2, NULL, events)];
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    stsl_get_uv(L, 1, "on");
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, event);
    lua_settop(L, 1);
    return 1;
}

/* member:_reconnect(fn): the hook that gets a new session when the key
 * server is lost (sts.group sets it). */
static int group_set_reconnect(lua_State *L)
{
    check_group(L, 1);
    lua_settop(L, 2);
    stsl_set_uv(L, 1, "reconnect");
    return 0;
}

static int group_leave(lua_State *L)
{
    struct lgroup *g = check_group(L, 1);
    if (g->closed) return 0;
    sts_gmember_stop(&g->m);
    release(L, 1, g, 0); /* the session's KILL tells the key server */
    return 0;
}

static int group_close_scope(lua_State *L)
{
    lua_settop(L, 1);
    return group_leave(L);
}

static int group_stats(lua_State *L)
{
    struct lgroup *g = check_group(L, 1);
    lua_createtable(L, 0, 10);
    stsl_set_count(L, "sent", g->sent);
    stsl_set_count(L, "received", g->received);
    stsl_set_count(L, "echoes", g->echoes);
    stsl_set_count(L, "rekeys", g->rekeys);
    stsl_set_count(L, "pending", g->pending.n);
    stsl_set_count(L, "rejected_total", g->rejections);
    stsl_set_count(L, "memory", sizeof *g + g->bufcap + sts_gmember_memory(&g->m));
    lua_createtable(L, 0, STS_REASON_COUNT);
    for (int r = 1; r < STS_REASON_COUNT; r++) stsl_set_count(L, sts_reason_name((enum sts_reason)r), g->rejected[r]);
    lua_setfield(L, -2, "rejected");
    return 1;
}

static int group_state(lua_State *L)
{
    static const char *const names[] = { "joining", "joined", "refused", "removed", "left" };
    struct lgroup *g = check_group(L, 1);
    lua_pushstring(L, g->closed && g->m.state == STS_GMEMBER_JOINED ? "closed" : names[g->m.state]);
    return 1;
}

/* Properties: g.name, g.topic, g.epoch, g.index, g.method, g.cipher,
 * g.signed, g.session. */
static int group_property(lua_State *L)
{
    static const char *const methods[] = { "?", "static", "update", "slotted" };
    struct lgroup *g = check_group(L, 1);
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "name") == 0) return lua_pushstring(L, g->m.group), 1;
    if (strcmp(key, "topic") == 0) return lua_pushstring(L, g->topic), 1;
    if (strcmp(key, "epoch") == 0) return lua_pushinteger(L, g->m.epoch), 1;
    if (strcmp(key, "index") == 0) return lua_pushinteger(L, g->m.index), 1;
    if (strcmp(key, "method") == 0) return lua_pushstring(L, methods[g->m.method <= 3 ? g->m.method : 0]), 1;
    if (strcmp(key, "cipher") == 0) return lua_pushstring(L, g->m.alg == STS_GROUP_AESGCM ? "aesgcm" : "chachapoly"), 1;
    if (strcmp(key, "signed") == 0) return lua_pushboolean(L, (g->m.flags & STS_GFLAG_SIGNED) != 0), 1;
    if (strcmp(key, "session") == 0) return stsl_get_uv(L, 1, "session"), 1;
    return 0;
}

static int group_gc(lua_State *L)
{
    struct lgroup *g = check_group(L, 1);
    /* Collected while open only at lua_close, where objects go in any
     * order: nothing may keep a pointer to us. */
    if (g->ls) stsl_session_tap(g->ls, NULL);
    struct sts_mqtt *mq = stsl_client_mqtt(g->client);
    if (mq && g->sub) sts_mqtt_unsubscribe(mq, g->sub);
    g->ls = NULL, g->sub = NULL, g->closed = 1;
    stop_timers(g);
    sts_backlog_clear(&g->pending);
    sts_gmember_free(&g->m);
    if (g->buf) mbedtls_platform_zeroize(g->buf, g->bufcap);
    free(g->buf);
    free(g->topic);
    g->buf = NULL, g->topic = NULL, g->bufcap = 0;
    return 0;
}

static int group_tostring(lua_State *L)
{
    struct lgroup *g = check_group(L, 1);
    lua_pushfstring(L, "sts.group (%s)", g->m.group);
    return 1;
}

void stsl_open_group_member(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "attach", group_attach }, { "send", group_send }, { "on", group_on },
        { "leave", group_leave }, { "close", group_leave }, { "stats", group_stats },
        { "state", group_state }, { "_reconnect", group_set_reconnect }, { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__index", group_property }, { "__gc", group_gc }, { "__close", group_close_scope },
        { "__tostring", group_tostring }, { NULL, NULL },
    };
    stsl_new_class(L, GROUP_MT, meta, methods);
    lua_pushcfunction(L, l_member);
    lua_setfield(L, -2, "member");
}

/* sts.group is lua/sts/group.lua, loaded on first use (it needs the sts
 * module finished); its C half is the module "sts.group.core". */
static int lazy_group(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "group") != 0) return 0;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "sts.group");
    lua_call(L, 1, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, "group");
    return 1;
}

void stsl_open_group(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_newtable(L);
    stsl_open_group_member(L);
    stsl_open_group_server(L);
    lua_setfield(L, -2, "sts.group.core");
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, lazy_group);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
}
