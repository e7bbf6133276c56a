/* Native STS sessions for scripts: sts.handshake and the session object, over
 * the pure session engine (src/proto/session.h) and an MQTT client.
 *
 * A session is a userdata whose user values (enum stsl_session_uv) hold the
 * client it publishes through, its trust list, the pending handshake future,
 * the listener that made it, its handlers and the info table every message
 * is handed with: each a slot of its own rather than a field of a table, as
 * a table would cost a listener of 10,000 sessions 10,000 tables, and a
 * lookup by name per message. While open it is anchored: a script need not
 * keep a reference for it to keep running. Frames reach the engine straight
 * from the MQTT layer's registry (a subscriber in C); what the engine emits
 * is published on the session's outgoing topic; a loop timer calls the
 * engine's tick at the deadline it asks for. Lua is entered only to hand a
 * message, an event or an answer to the script. */
#include "lua/session.h"
#include "mqtt/topic.h"
#include "util/error.h"
#include "util/log.h"

#include <math.h>
#include <mbedtls/platform_util.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_KEPT 1000 /* messages kept until a message handler is set */

static struct sts_loop *loop(void)
{
    return sts_loop_default();
}

struct lsession *stsl_check_session(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, SESSION_MT);
}

static int is_open(const struct lsession *ls)
{
    return ls->s && !ls->closing && ls->anchor.ref != LUA_NOREF;
}

/* Pushes the script's handler (UV_ON_*); returns 0 (nothing pushed) if
 * there is none or no script code may run. */
static int push_handler(lua_State *L, int idx, const struct lsession *ls, enum stsl_session_uv handler)
{
    if (ls->quiet) return 0;
    if (lua_getiuservalue(L, idx, handler) == LUA_TFUNCTION) return 1;
    lua_pop(L, 1);
    return 0;
}

/* The peer's fingerprint, or nil (NN, or not established yet). */
static void push_peer(lua_State *L, const struct lsession *ls)
{
    char fp[STS_FINGERPRINT_LEN + 1];
    if (ls->has_peer_key && sts_key_fingerprint(fp, ls->peer_key) == 0) lua_pushstring(L, fp);
    else lua_pushnil(L);
}

/* --- the session's links to the loop and the client --------------------------- */

/* Sets the timer to the engine's next deadline after a call made at `now`
 * (or to the give-up time, or to now for kept messages). A frame seldom
 * moves the deadline: the timer is left alone then, as moving it in the
 * loop's heap is most of the cost. */
static void rearm(struct lsession *ls, double now)
{
    if (!ls->s || ls->closing) return;
    double next = sts_session_tick(ls->s, now);
    if (!ls->established && ls->give_up > 0 && ls->give_up < next) next = ls->give_up;
    if (ls->kept_due) next = now;
    if (!isfinite(next)) {
        sts_timer_stop(loop(), &ls->timer);
    } else if (next != ls->deadline || !sts_timer_active(&ls->timer)) {
        ls->deadline = next;
        sts_timer_start(loop(), &ls->timer, next - now, 0);
    }
}

static void emit_frame(void *ctx, const uint8_t *frame, size_t len)
{
    struct lsession *ls = ctx;
    struct sts_mqtt *m = stsl_client_mqtt(ls->client);
    /* A listener bounds its answers to input it cannot authenticate. */
    if (ls->listener && frame[1] == STS_FRAME_RESYNC && !stsl_listener_may_resync(ls->listener)) return;
    ls->bytes_out += len;
    if (!m) {
        sts_warn("session %s: the client is closed; a frame was not sent", ls->topic_out);
        return;
    }
    int rc = sts_mqtt_publish(m, ls->topic_out, frame, len, ls->qos, 0, NULL);
    if (rc != MOSQ_ERR_SUCCESS)
        sts_warn("session %s: publishing a frame failed: %s", ls->topic_out, mosquitto_strerror(rc));
}

/* A key is accepted when trusted and, when its trust line binds it, on its
 * topics (docs/PROTOCOL.md § Identities bound to topics). */
static int trust_check(void *ctx, const uint8_t pub[STS_X25519_LEN])
{
    struct lsession *ls = ctx;
    memcpy(ls->seen_key, pub, STS_X25519_LEN);
    ls->has_seen_key = 1;
    if (ls->trust_any) return 1;
    const struct sts_trust_entry *e = ls->trust ? sts_trust_find(ls->trust, pub) : NULL;
    ls->refusal = stsl_listener_refusal(ls->listener, ls->topic_in, e);
    return ls->refusal == STSL_REFUSAL_NONE;
}

/* The IK INITREQ's timestamp: nanoseconds of the wall clock, which a restart
 * does not set back (the engine keeps it growing within a session). */
static uint64_t wall_stamp(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The pending sts.handshake gets its answer: the session, or nil and why. */
static void settle(lua_State *L, int session, int ok, const char *reason)
{
    session = lua_absindex(L, session);
    /* None (a listener's session has no such value) or nil: no one waits. */
    if (lua_getiuservalue(L, session, UV_PENDING) <= LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pushnil(L);
    lua_setiuservalue(L, session, UV_PENDING);
    if (ok) lua_pushvalue(L, session);
    else lua_pushnil(L);
    lua_pushstring(L, reason);
    stsl_future_resolve(L, -3, 2);
    lua_pop(L, 1);
}

/* --- events from the engine ------------------------------------------------------- */

static void keep_message(struct lsession *ls, const uint8_t *data, size_t len)
{
    if (!ls->kept && (ls->kept = malloc(sizeof *ls->kept)) != NULL) sts_backlog_init(ls->kept, MAX_KEPT, NULL);
    int rc = ls->kept ? sts_backlog_push(ls->kept, sts_now(), NULL, 0, data, len, NULL) : STS_ERR_NOMEM;
    if (rc != 0)
        sts_warn("session %s: dropped a message: no message handler, %s", ls->topic_in,
                 rc == STS_ERR_TOO_BIG ? "backlog full" : sts_strerror(rc));
}

/* The info table: one per session, made with its first message and handed
 * with every message (docs/API.md: the handler must not keep it). */
static void push_info(lua_State *L, int session, const struct lsession *ls)
{
    if (lua_getiuservalue(L, session, UV_INFO) == LUA_TTABLE) return;
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushstring(L, ls->topic_in);
    lua_setfield(L, -2, "topic");
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, session, UV_INFO);
}

static void deliver_message(lua_State *L, int session, struct lsession *ls, const uint8_t *data, size_t len)
{
    if (ls->tap.message) {
        ls->tap.message(ls->tap.ud, ls, data, len);
        return;
    }
    if (ls->quiet) return;
    /* No handler yet (the peer spoke first, before the script set one), or
     * messages kept before it still wait for the loop to hand them over:
     * this one goes behind them, in the order the peer sent them. */
    if ((ls->kept && ls->kept->head) || !push_handler(L, session, ls, UV_ON_MESSAGE)) {
        keep_message(ls, data, len);
        return;
    }
    lua_pushlstring(L, (const char *)data, len);
    push_info(L, session, ls);
    stsl_pcall(L, 2, 0, "session message handler");
}

static void on_established(lua_State *L, int session, struct lsession *ls, const uint8_t *peer, size_t len)
{
    ls->has_peer_key = len == STS_X25519_LEN;
    if (ls->has_peer_key) memcpy(ls->peer_key, peer, STS_X25519_LEN);
    if (!ls->established) {
        ls->established = 1; /* the wait is over */
        sts_info("session %s: established%s", ls->topic_in, sts_session_authenticated(ls->s) ? "" : " (unauthenticated)");
        settle(L, session, 1, "established");
        if (ls->listener) stsl_listener_established(L, session, ls);
    } else if (ls->tap.rekeyed) {
        ls->tap.rekeyed(ls->tap.ud, ls);
    } else if (push_handler(L, session, ls, UV_ON_ESTABLISHED)) {
        push_peer(L, ls);
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

static void on_ended(lua_State *L, int session, struct lsession *ls, enum sts_session_event ev,
                     const uint8_t *data, size_t len)
{
    if (ls->told_end) return; /* closing after a KILL reports the end again */
    ls->told_end = ls->established;
    lua_pushlstring(L, (const char *)data, len);
    const char *why = lua_tostring(L, -1);
    if (ev == STS_EVENT_FAILED) sts_warn("session %s: handshake failed: %s", ls->topic_in, why);
    else sts_info("session %s: closed: %s", ls->topic_in, why);
    if (!ls->established) {
        settle(L, session, 0, why);
        if (!ls->listener) stsl_session_close(L, session, ls, "handshake failed");
    } else if (ls->tap.ended) {
        ls->tap.ended(ls->tap.ud, ls, why, 0);
    } else if (push_handler(L, session, ls, UV_ON_CLOSE)) {
        lua_pushvalue(L, -2);
        stsl_pcall(L, 1, 0, "session close handler");
    }
    /* A listener's session that ended leaves it at once: the next handshake
     * on its topic makes a new session. */
    if (ls->established && ls->listener) stsl_session_close(L, session, ls, lua_tostring(L, -1));
    lua_pop(L, 1);
}

static void on_event(void *ctx, enum sts_session_event ev, const uint8_t *data, size_t len)
{
    struct lsession *ls = ctx;
    lua_State *L = stsl_main();
    if (ls->finalizing) return;
    if (ev == STS_EVENT_REJECTED) {
        char reason[32];
        snprintf(reason, sizeof reason, "%.*s", (int)len, (const char *)data);
        if (ls->listener) stsl_listener_rejected(ls, reason);
        else log_rejection(ls, data, len);
        return;
    }
    if (!stsl_anchor_push(L, &ls->anchor)) return;
    int session = lua_gettop(L);
    switch (ev) {
    case STS_EVENT_ESTABLISHED: on_established(L, session, ls, data, len); break;
    case STS_EVENT_MESSAGE: deliver_message(L, session, ls, data, len); break;
    case STS_EVENT_FAILED:
    case STS_EVENT_CLOSED: on_ended(L, session, ls, ev, data, len); break;
    case STS_EVENT_REJECTED: break;
    }
    lua_settop(L, session - 1);
}

static void free_kept(struct lsession *ls)
{
    if (!ls->kept) return;
    sts_backlog_clear(ls->kept);
    free(ls->kept);
    ls->kept = NULL;
}

/* A listener's session holds no engine once closed: its memory goes now,
 * not when Lua collects the userdata, and never under the engine's own call. */
static void free_engine(struct lsession *ls)
{
    if (ls->busy || !ls->closing || !ls->listener) return;
    sts_session_free(ls->s);
    ls->s = NULL;
    free_kept(ls);
}

static void engine_done(struct lsession *ls)
{
    ls->busy--;
    free_engine(ls);
}

void stsl_session_receive(struct lsession *ls, const struct sts_mqtt_message *msg)
{
    if (!is_open(ls)) return;
    double now = sts_now();
    ls->busy++;
    ls->has_seen_key = 0;
    ls->refusal = STSL_REFUSAL_NONE;
    ls->bytes_in += (uint64_t)msg->len;
    if (sts_session_receive(ls->s, now, msg->payload, msg->len) == 0) ls->last_seen = now;
    rearm(ls, now);
    engine_done(ls);
}

/* The subscriber of a session of its own. */
static void on_frame(void *ud, const struct sts_mqtt_message *msg)
{
    stsl_session_receive(ud, msg);
}

/* Hands messages that came before the handler was set to it, from the loop. */
static void replay_kept(lua_State *L, int session, struct lsession *ls)
{
    struct sts_backlog *kept = ls->kept;
    ls->kept = NULL; /* a handler that closes the session must not free it under us */
    for (struct sts_backlog_item *it = kept ? sts_backlog_take(kept) : NULL, *next; it; it = next) {
        next = it->next;
        deliver_message(L, session, ls, it->data, it->len);
        sts_backlog_item_free(kept, it);
    }
    free(kept); /* emptied */
}

/* --- creating and closing sessions ---------------------------------------------- */

static void set_callbacks(struct sts_session_config *cfg, enum sts_role role)
{
    cfg->role = role;
    cfg->trust = trust_check;
    cfg->emit = emit_frame;
    cfg->on_event = on_event;
    cfg->timestamp = wall_stamp;
}

static void on_timer(struct sts_timer *t, void *ud);

/* Pushes a session userdata with nuv user values, its engine not made yet.
 * Returns NULL (an error message pushed) when out of memory. */
static struct lsession *push_session(lua_State *L, int nuv, struct lclient *client, const struct sts_trust *trust,
                                     const struct policy *p, const char *topic_in, const char *topic_out)
{
    struct lsession *ls = lua_newuserdatauv(L, sizeof *ls, nuv);
    memset(ls, 0, sizeof *ls);
    stsl_anchor_init(&ls->anchor);
    ls->qos = (unsigned)p->qos;
    ls->client = client;
    ls->trust = trust;
    ls->trust_any = !!p->trust_any;
    sts_timer_init(&ls->timer, on_timer, ls);
    luaL_setmetatable(L, SESSION_MT);
    size_t in_len = strlen(topic_in) + 1, out_len = strlen(topic_out) + 1;
    if (!(ls->topic_in = malloc(in_len + out_len))) {
        lua_pushliteral(L, "out of memory");
        return NULL;
    }
    ls->topic_out = memcpy(ls->topic_in + in_len, topic_out, out_len);
    memcpy(ls->topic_in, topic_in, in_len);
    return ls;
}

/* The engine made (rc), the session runs. */
static struct lsession *session_made(lua_State *L, struct lsession *ls, int rc)
{
    if (rc != 0) {
        lua_pushfstring(L, "session: %s", sts_strerror(rc));
        return NULL;
    }
    stsl_anchor_set(L, -1, &ls->anchor);
    return ls;
}

static int session_client_closed(lua_State *L);

struct lsession *stsl_session_new(lua_State *L, int client, int trust, struct policy *p,
                                  enum sts_role role, const char *topic_in, const char *topic_out)
{
    client = lua_absindex(L, client);
    trust = lua_absindex(L, trust);
    struct lsession *ls = push_session(L, UV_COUNT, stsl_check_client(L, client),
                                       lua_isnil(L, trust) ? NULL : lua_touserdata(L, trust), p, topic_in, topic_out);
    if (!ls) {
        mbedtls_platform_zeroize(p->identity, sizeof p->identity);
        return NULL;
    }
    lua_pushvalue(L, client);
    lua_setiuservalue(L, -2, UV_OWNER);
    lua_pushvalue(L, trust);
    lua_setiuservalue(L, -2, UV_TRUST);
    set_callbacks(&p->cfg, role);
    p->cfg.topic_in = topic_in;
    p->cfg.topic_out = topic_out;
    p->cfg.ctx = ls;
    int rc = sts_session_new(&ls->s, &p->cfg);
    mbedtls_platform_zeroize(p->identity, sizeof p->identity);
    if (!session_made(L, ls, rc)) return NULL;
    stsl_client_on_close(L, client, -1, session_client_closed);
    return ls;
}

int stsl_session_shared(const struct policy *p, struct sts_session_shared **out)
{
    struct sts_session_config cfg = p->cfg;
    set_callbacks(&cfg, STS_ROLE_RESPONDER);
    return sts_session_shared_new(out, &cfg);
}

/* The listener holds the client (closing its sessions when the client
 * closes) and the trust list: its sessions refer to neither. */
struct lsession *stsl_listener_session_new(lua_State *L, int listener, struct llistener *li, struct lclient *client,
                                           const struct sts_trust *trust, const struct policy *p,
                                           struct sts_session_shared *sh, const char *topic_in,
                                           const char *topic_out)
{
    listener = lua_absindex(L, listener);
    struct lsession *ls = push_session(L, UV_LISTENER_COUNT, client, trust, p, topic_in, topic_out);
    if (!ls) return NULL;
    ls->listener = li;
    lua_pushvalue(L, listener);
    lua_setiuservalue(L, -2, UV_OWNER);
    return session_made(L, ls, sts_session_new_shared(&ls->s, sh, topic_out, topic_in, ls));
}

void stsl_session_close(lua_State *L, int idx, struct lsession *ls, const char *reason)
{
    if (!is_open(ls)) return; /* already closed, or finalized (lua_close goes in any order) */
    ls->closing = 1;
    idx = lua_absindex(L, idx);
    if (!ls->listener) {
        lua_getiuservalue(L, idx, UV_OWNER);
        stsl_client_on_close(L, lua_gettop(L), idx, NULL);
        lua_pop(L, 1);
    }
    sts_session_close(ls->s, sts_now(), reason);
    if (ls->listener) {
        stsl_listener_forget(ls);
    } else {
        struct sts_mqtt *m = stsl_client_mqtt(ls->client);
        if (m && ls->sub) sts_mqtt_unsubscribe(m, ls->sub);
    }
    ls->sub = NULL;
    sts_timer_stop(loop(), &ls->timer);
    stsl_anchor_release(&ls->anchor);
    free_engine(ls);
}

/* The session ends with its client (its KILL still goes out), and a pending
 * sts.handshake returns. When the client is being finalized, no script code
 * runs. */
void stsl_session_client_closed(lua_State *L, int idx, int finalizing)
{
    struct lsession *ls = stsl_check_session(L, idx);
    idx = lua_absindex(L, idx);
    if (!is_open(ls)) return;
    ls->quiet = !!finalizing;
    ls->told_end = 1;
    if (!ls->established) {
        settle(L, idx, 0, "client closed");
    } else if (ls->tap.ended) {
        ls->tap.ended(ls->tap.ud, ls, "client closed", ls->quiet);
    } else if (push_handler(L, idx, ls, UV_ON_CLOSE)) {
        lua_pushliteral(L, "client closed");
        stsl_pcall(L, 1, 0, "session close handler");
    }
    ls->quiet = 1; /* the close handler has had its say */
    stsl_session_close(L, idx, ls, "client closed");
}

static int session_client_closed(lua_State *L)
{
    stsl_session_client_closed(L, 1, lua_toboolean(L, 2));
    return 0;
}

/* --- sts.handshake ---------------------------------------------------------------- */

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

/* Not established by its give-up time: a listener drops the session, a
 * responder's sts.handshake returns. */
static void give_up(lua_State *L, int session, struct lsession *ls)
{
    if (ls->listener) {
        stsl_session_close(L, session, ls, "dropped");
        return;
    }
    push_wait_failure(L, ls);
    settle(L, session, 0, lua_tostring(L, -1));
    stsl_session_close(L, session, ls, "timeout");
    lua_pop(L, 1);
}

/* Timer: the engine's deadline (retransmit, timeout, rekey), giving up on a
 * session never established, and kept messages for a new handler. */
static void on_timer(struct sts_timer *t, void *ud)
{
    struct lsession *ls = ud;
    lua_State *L = stsl_main();
    double now = sts_now();
    (void)t;
    if ((!ls->established && ls->give_up > 0 && now >= ls->give_up) || ls->kept_due) {
        if (!stsl_anchor_push(L, &ls->anchor)) return;
        int session = lua_gettop(L);
        if (ls->kept_due) {
            ls->kept_due = 0;
            replay_kept(L, session, ls);
        } else {
            give_up(L, session, ls);
        }
        lua_settop(L, session - 1);
    }
    ls->busy++;
    rearm(ls, now);
    engine_done(ls);
}

/* sts.handshake(client, opts) -> session | nil, message */
static int l_handshake(lua_State *L)
{
    struct policy p;
    int rc;
    stsl_check_client(L, 1);
    stsl_check_options(L, 2, "sts.handshake", stsl_session_options);
    lua_settop(L, 2);
    enum sts_role role = stsl_parse_role(L, stsl_opt_string(L, 2, "role", "?"));
    const char *pub = stsl_required_topic(L, 2, "pub");
    const char *sub = stsl_required_topic(L, 2, "sub");
    if (sts_topic_has_wildcard(pub) || sts_topic_has_wildcard(sub))
        luaL_error(L, "sts.handshake needs exact topics; a responder for many peers is sts.listen");
    if (!stsl_read_policy(L, 2, &p, role == STS_ROLE_RESPONDER)) return stsl_fail(L, "%s", lua_tostring(L, -1));
    struct lsession *ls = stsl_session_new(L, 1, 3, &p, role, sub, pub); /* 4 */
    if (!ls) return stsl_fail(L, "%s", lua_tostring(L, -1));
    ls->sub = sts_mqtt_subscribe(stsl_client_mqtt(ls->client), sub, p.qos, on_frame, ls, &rc);
    if (!ls->sub) {
        stsl_session_close(L, 4, ls, "subscribe failed");
        return stsl_fail(L, "subscribe: %s", mosquitto_strerror(rc));
    }
    stsl_future_new(L); /* 5 */
    lua_pushvalue(L, 5);
    lua_setiuservalue(L, 4, UV_PENDING);
    double now = sts_now();
    if (role == STS_ROLE_INITIATOR) sts_session_start(ls->s, now);
    /* A responder waits for its initiator as long as `wait` says (default:
     * for ever); the engine bounds the handshake itself once it starts. */
    if (role == STS_ROLE_RESPONDER && p.wait >= 0) ls->give_up = now + p.wait;
    rearm(ls, now);
    return stsl_future_await(L, 5, -1);
}

/* --- session methods ------------------------------------------------------------------ */

int stsl_session_write(struct lsession *ls, const uint8_t *data, size_t len)
{
    if (!is_open(ls)) return STS_ERR_STATE;
    /* At QoS 0 a frame published while disconnected is lost: say so now, as
     * client:publish does, rather than spend a counter on it. */
    struct sts_mqtt *m = stsl_client_mqtt(ls->client);
    if (!m || (ls->qos == 0 && sts_mqtt_state(m) != STS_MQTT_CONNECTED)) return STS_ERR_IO;
    double now = sts_now();
    int rc = sts_session_send(ls->s, now, data, len);
    rearm(ls, now);
    return rc;
}

void stsl_session_tap(struct lsession *ls, const struct stsl_session_tap *tap)
{
    if (tap) ls->tap = *tap;
    else memset(&ls->tap, 0, sizeof ls->tap);
}

static int session_send(lua_State *L)
{
    struct lsession *ls = stsl_check_self(L, SESSION_MT);
    size_t len;
    const char *payload = luaL_checklstring(L, 2, &len);
    if (!is_open(ls)) return stsl_fail(L, "the session is closed");
    int rc = stsl_session_write(ls, (const uint8_t *)payload, len);
    if (rc == STS_ERR_IO) return stsl_fail(L, "send: the client is not connected");
    if (rc == STS_ERR_STATE) return stsl_fail(L, "the session is not established");
    if (rc != 0) return stsl_fail(L, "send: %s", sts_strerror(rc));
    lua_pushboolean(L, 1);
    return 1;
}

static int session_on(lua_State *L)
{
    static const char *const events[] = { "message", "close", "established", "idle", NULL };
    struct lsession *ls = stsl_check_session(L, 1);
    int e = luaL_checkoption(L, 2, NULL, events);
    if (!lua_isnil(L, 3)) luaL_checktype(L, 3, LUA_TFUNCTION);
    static const enum stsl_session_uv handlers[] = { UV_ON_MESSAGE, UV_ON_CLOSE, UV_ON_ESTABLISHED, UV_ON_IDLE };
    int set = !lua_isnil(L, 3);
    lua_settop(L, 3);
    lua_setiuservalue(L, 1, handlers[e]);
    /* Kept messages go to a new message handler from the loop, like any other. */
    if (e == 0 && set && ls->kept && ls->kept->head && is_open(ls)) {
        ls->kept_due = 1;
        rearm(ls, sts_now());
    }
    lua_settop(L, 1);
    return 1;
}

static int session_close(lua_State *L)
{
    stsl_session_close(L, 1, stsl_check_session(L, 1), luaL_optstring(L, 2, "closed"));
    return 0;
}

/* __close gets the error that ended the scope, if any, not a reason. */
static int session_close_scope(lua_State *L)
{
    stsl_session_close(L, 1, stsl_check_session(L, 1), "closed");
    return 0;
}

static int session_rehandshake(lua_State *L)
{
    struct lsession *ls = stsl_check_session(L, 1);
    if (!is_open(ls)) return stsl_fail(L, "the session is closed");
    double now = sts_now();
    int rc = sts_session_start(ls->s, now);
    rearm(ls, now);
    if (rc != 0) return stsl_fail(L, "rehandshake: %s", rc == STS_ERR_STATE ? "only an idle or established initiator can" : sts_strerror(rc));
    lua_pushboolean(L, 1);
    return 1;
}

static int session_stats(lua_State *L)
{
    struct lsession *ls = stsl_check_session(L, 1);
    lua_createtable(L, 0, 15);
    stsl_set_count(L, "bytes_in", ls->bytes_in);
    stsl_set_count(L, "bytes_out", ls->bytes_out);
    if (ls->last_seen > 0) stsl_set_count(L, "last_seen_ms", (uint64_t)((sts_now() - ls->last_seen) * 1000));
    if (!ls->s) return 1;
    const struct sts_session_stats *st = sts_session_stats(ls->s);
    stsl_set_count(L, "sent", st->messages_out);
    stsl_set_count(L, "received", st->messages_in);
    stsl_set_count(L, "frames_in", st->frames_in);
    stsl_set_count(L, "frames_out", st->frames_out);
    stsl_set_count(L, "handshakes", st->handshakes);
    stsl_set_count(L, "retransmits", st->retransmits);
    stsl_set_count(L, "rekeys", st->rekeys);
    stsl_set_count(L, "resyncs_sent", st->resyncs_sent);
    stsl_set_count(L, "resyncs_received", st->resyncs_received);
    stsl_set_count(L, "memory", sts_session_memory(ls->s) + sizeof *ls);
    lua_newtable(L);
    uint64_t total = 0;
    for (int r = 1; r < STS_REASON_COUNT; r++) {
        total += st->rejected[r];
        if (st->rejected[r]) stsl_set_count(L, sts_reason_name((enum sts_reason)r), st->rejected[r]);
    }
    lua_setfield(L, -2, "rejected");
    stsl_set_count(L, "rejected_total", total);
    return 1;
}

static int session_state(lua_State *L)
{
    static const char *const names[] = { "idle", "handshake", "established", "closed", "failed" };
    struct lsession *ls = stsl_check_session(L, 1);
    if (!is_open(ls)) lua_pushliteral(L, "closed");
    else lua_pushstring(L, names[sts_session_state(ls->s)]);
    return 1;
}

/* Properties, after the methods: s.peer, s.topic, s.pub, s.authenticated. */
static int session_property(lua_State *L)
{
    struct lsession *ls = stsl_check_session(L, 1);
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "peer") == 0) return push_peer(L, ls), 1;
    if (strcmp(key, "topic") == 0) return lua_pushstring(L, ls->topic_in), 1;
    if (strcmp(key, "pub") == 0) return lua_pushstring(L, ls->topic_out), 1;
    if (strcmp(key, "authenticated") == 0) return lua_pushboolean(L, ls->s && sts_session_authenticated(ls->s)), 1;
    return 0;
}

static int session_gc(lua_State *L)
{
    struct lsession *ls = stsl_check_session(L, 1);
    /* Collected while open happens only at lua_close (an open session is
     * anchored): the peer still gets an authenticated goodbye if the client
     * can send it, and nothing else runs. */
    ls->finalizing = 1;
    if (is_open(ls) && stsl_client_mqtt(ls->client)) sts_session_close(ls->s, sts_now(), "exit");
    sts_timer_stop(loop(), &ls->timer);
    free_kept(ls);
    sts_session_free(ls->s);
    ls->s = NULL;
    mbedtls_platform_zeroize(ls->peer_key, sizeof ls->peer_key);
    free(ls->topic_in);
    ls->topic_in = ls->topic_out = NULL;
    return 0;
}

static int session_tostring(lua_State *L)
{
    struct lsession *ls = stsl_check_session(L, 1);
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
        { "__index", session_property }, { "__gc", session_gc }, { "__close", session_close_scope },
        { "__tostring", session_tostring }, { NULL, NULL },
    };
    static const luaL_Reg functions[] = { { "handshake", l_handshake }, { NULL, NULL } };
    stsl_new_class(L, SESSION_MT, meta, methods);
    stsl_open_trust(L);
    stsl_open_listener(L);
    luaL_setfuncs(L, functions, 0);
}
