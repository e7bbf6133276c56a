/* sts.connect and the MQTT client object.
 *
 * A client is a userdata over src/mqtt with one user value, a table of its
 * event handlers, the pending connect or flush, and what depends on it (its
 * sessions and listeners). Each client:subscribe adds one subscriber to the
 * MQTT layer's registry, which matches topics in C and calls it with the
 * message; several handlers may share a filter, and sessions subscribe
 * beside them without touching this table. While open, a client is anchored
 * in the registry, so a script need not keep a reference for its handlers
 * to keep running. */
#include "lua/internal.h"
#include "lua/properties.h"
#include "mqtt/client.h"
#include "util/log.h"

#include <mqtt_protocol.h>
#include <stdlib.h>
#include <string.h>

#define CLIENT_MT "sts.client"
#define DEFAULT_MAX_PAYLOAD (1024 * 1024)

/* One Lua handler subscribed to a filter. */
struct handler {
    struct lclient *c;
    struct sts_mqtt_sub *sub;
    int fn_ref;
    struct handler *next;
};

struct lclient {
    struct sts_mqtt *m;       /* NULL once closed */
    struct stsl_anchor anchor;
    int protocol;
    struct handler *handlers;
};

static struct lclient *open_client(lua_State *L, struct lclient *c)
{
    if (!c->m) luaL_error(L, "the client is closed");
    return c;
}

static struct lclient *check_client(lua_State *L, int idx)
{
    return open_client(L, luaL_checkudata(L, idx, CLIENT_MT));
}

struct lclient *stsl_check_client(lua_State *L, int idx)
{
    return check_client(L, idx);
}

struct sts_mqtt *stsl_client_mqtt(const struct lclient *c)
{
    return c->m;
}

/* Pushes the client's userdata; returns 0 if it is closed. */
static int push_client(lua_State *L, struct lclient *c)
{
    return stsl_anchor_push(L, &c->anchor);
}

/* Pushes the event handler `name` of the client at idx; returns 0 if none. */
static int push_event_handler(lua_State *L, int idx, const char *name)
{
    lua_getiuservalue(L, idx, 1);
    lua_getfield(L, -1, "on");
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    lua_remove(L, -2);
    if (lua_isfunction(L, -1)) return 1;
    lua_pop(L, 1);
    return 0;
}

/* --- callbacks from the MQTT layer (always from the loop) ----------------- */

static void on_connect(void *ud, int rc, int session_present, const char *reason)
{
    lua_State *L = stsl_main();
    struct lclient *c = ud;
    if (!push_client(L, c)) return;
    int idx = lua_gettop(L);
    lua_getiuservalue(L, idx, 1);
    int pending = lua_getfield(L, -1, "connecting") != LUA_TNIL;
    if (pending) {
        /* The first connect: sts.connect is waiting on this future. */
        lua_pushnil(L);
        lua_setfield(L, -3, "connecting");
        if (rc == 0) lua_pushvalue(L, idx);
        else lua_pushnil(L);
        lua_pushstring(L, reason ? reason : "connected");
        stsl_future_resolve(L, -3, 2);
    } else if (push_event_handler(L, idx, rc == 0 ? "connect" : "error")) {
        if (rc == 0) lua_pushboolean(L, session_present);
        else lua_pushstring(L, reason);
        stsl_pcall(L, 1, 0, rc == 0 ? "connect handler" : "error handler");
    }
    lua_settop(L, idx - 1);
}

static void on_disconnect(void *ud, int rc, int reconnecting, const char *reason)
{
    lua_State *L = stsl_main();
    struct lclient *c = ud;
    (void)rc;
    if (!push_client(L, c)) return;
    int idx = lua_gettop(L);
    if (push_event_handler(L, idx, "disconnect")) {
        lua_pushstring(L, reason);
        lua_pushboolean(L, reconnecting);
        stsl_pcall(L, 2, 0, "disconnect handler");
    }
    lua_settop(L, idx - 1);
}

static void push_info(lua_State *L, const struct lclient *c, const struct sts_mqtt_message *msg)
{
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, msg->qos);
    lua_setfield(L, -2, "qos");
    lua_pushboolean(L, msg->retain);
    lua_setfield(L, -2, "retain");
    if (c->protocol == MQTT_PROTOCOL_V5) {
        stsl_push_properties(L, msg->props);
        lua_setfield(L, -2, "properties");
    }
}

/* A Lua handler's subscriber: handler(topic, payload, info). */
static void on_message(void *ud, const struct sts_mqtt_message *msg)
{
    struct handler *h = ud;
    lua_State *L = stsl_main();
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->fn_ref);
    lua_pushstring(L, msg->topic);
    lua_pushlstring(L, msg->payload, msg->len);
    push_info(L, h->c, msg);
    stsl_pcall(L, 3, 0, "message handler"); /* h may be gone now */
}

static void on_drained(void *ud)
{
    lua_State *L = stsl_main();
    struct lclient *c = ud;
    if (!push_client(L, c)) return;
    int client = lua_gettop(L);
    lua_getiuservalue(L, client, 1);
    if (lua_getfield(L, -1, "flushing") != LUA_TNIL) {
        lua_pushnil(L);
        lua_setfield(L, -3, "flushing");
        lua_pushboolean(L, 1);
        stsl_future_resolve(L, -2, 1);
    }
    lua_settop(L, client - 1);
}

/* --- sts.connect ------------------------------------------------------------- */

static int parse_protocol(lua_State *L, int idx)
{
    const char *p = stsl_opt_string(L, idx, "protocol", "3.1.1");
    if (strcmp(p, "3.1") == 0) return MQTT_PROTOCOL_V31;
    if (strcmp(p, "3.1.1") == 0) return MQTT_PROTOCOL_V311;
    if (strcmp(p, "5") == 0 || strcmp(p, "5.0") == 0) return MQTT_PROTOCOL_V5;
    return luaL_error(L, "option 'protocol' must be \"3.1\", \"3.1.1\" or \"5\", got \"%s\"", p);
}

static void read_will(lua_State *L, int idx, struct sts_mqtt_options *o)
{
    static const char *const known[] = { "topic", "payload", "qos", "retain", NULL };
    if (!stsl_opt_table(L, idx, "will")) return;
    int w = lua_gettop(L);
    stsl_check_options(L, w, "will", known);
    o->will.topic = stsl_opt_string(L, w, "topic", NULL);
    if (!o->will.topic) luaL_error(L, "option 'will' needs a topic");
    o->will.payload = stsl_opt_string(L, w, "payload", "");
    lua_getfield(L, w, "payload");
    o->will.len = lua_type(L, -1) == LUA_TSTRING ? lua_rawlen(L, -1) : 0; /* binary-safe */
    lua_pop(L, 1);
    o->will.qos = (int)stsl_opt_integer(L, w, "qos", 0);
    o->will.retain = stsl_opt_boolean(L, w, "retain", 0);
    if (o->will.qos < 0 || o->will.qos > 2) luaL_error(L, "option 'will.qos' must be 0, 1 or 2");
    lua_pop(L, 1); /* the will table stays referenced by the options */
}

static void read_tls(lua_State *L, int idx, struct sts_mqtt_options *o)
{
    static const char *const known[] = {
        "cafile", "capath", "certfile", "keyfile", "insecure", "version", "psk", "psk_identity", NULL,
    };
    if (!stsl_opt_table(L, idx, "tls")) return;
    int t = lua_gettop(L);
    stsl_check_options(L, t, "tls", known);
    o->tls.enabled = 1;
    o->tls.cafile = stsl_opt_string(L, t, "cafile", NULL);
    o->tls.capath = stsl_opt_string(L, t, "capath", NULL);
    o->tls.certfile = stsl_opt_string(L, t, "certfile", NULL);
    o->tls.keyfile = stsl_opt_string(L, t, "keyfile", NULL);
    o->tls.version = stsl_opt_string(L, t, "version", NULL);
    o->tls.psk = stsl_opt_string(L, t, "psk", NULL);
    o->tls.psk_identity = stsl_opt_string(L, t, "psk_identity", NULL);
    o->tls.insecure = stsl_opt_boolean(L, t, "insecure", 0);
    if (!o->tls.psk && !o->tls.cafile && !o->tls.capath)
        luaL_error(L, "option 'tls' needs cafile or capath (or psk)");
    if ((o->tls.certfile == NULL) != (o->tls.keyfile == NULL))
        luaL_error(L, "option 'tls' needs both certfile and keyfile, or neither");
    lua_pop(L, 1);
}

static void read_reconnect(lua_State *L, int idx, struct sts_mqtt_options *o)
{
    static const char *const known[] = { "min_delay", "max_delay", NULL };
    o->reconnect = 1;
    o->reconnect_min = 1;
    o->reconnect_max = 30;
    lua_getfield(L, idx, "reconnect");
    if (lua_isboolean(L, -1)) {
        o->reconnect = lua_toboolean(L, -1);
    } else if (lua_istable(L, -1)) {
        int r = lua_gettop(L);
        stsl_check_options(L, r, "reconnect", known);
        o->reconnect_min = stsl_opt_number(L, r, "min_delay", o->reconnect_min);
        o->reconnect_max = stsl_opt_number(L, r, "max_delay", o->reconnect_max);
        if (o->reconnect_min <= 0 || o->reconnect_max < o->reconnect_min)
            luaL_error(L, "option 'reconnect' needs 0 < min_delay <= max_delay");
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "option 'reconnect' must be a boolean or a table, got %s", luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

static void read_options(lua_State *L, int idx, struct sts_mqtt_options *o)
{
    static const char *const known[] = {
        "host", "port", "client_id", "username", "password", "keepalive", "clean_session",
        "protocol", "will", "tls", "reconnect", "timeout", "max_payload", NULL,
    };
    stsl_check_options(L, idx, "sts.connect", known);
    memset(o, 0, sizeof *o);
    o->host = stsl_opt_string(L, idx, "host", "localhost");
    o->port = (int)stsl_opt_integer(L, idx, "port", 1883);
    o->client_id = stsl_opt_string(L, idx, "client_id", NULL);
    o->username = stsl_opt_string(L, idx, "username", NULL);
    o->password = stsl_opt_string(L, idx, "password", NULL);
    o->keepalive = (int)stsl_opt_integer(L, idx, "keepalive", 60);
    o->clean_session = stsl_opt_boolean(L, idx, "clean_session", 1);
    o->protocol = parse_protocol(L, idx);
    o->timeout = stsl_opt_number(L, idx, "timeout", 10);
    lua_Integer max_payload = stsl_opt_integer(L, idx, "max_payload", DEFAULT_MAX_PAYLOAD);
    if (o->port < 1 || o->port > 65535) luaL_error(L, "option 'port' must be from 1 to 65535");
    if (o->keepalive < 5 || o->keepalive > 65535) luaL_error(L, "option 'keepalive' must be from 5 to 65535 seconds");
    if (o->timeout <= 0) luaL_error(L, "option 'timeout' must be positive");
    if (max_payload < 0 || max_payload > MQTT_MAX_PAYLOAD)
        luaL_error(L, "option 'max_payload' must be from 0 to %d", MQTT_MAX_PAYLOAD);
    o->max_payload = (size_t)max_payload;
    if (o->password && !o->username) luaL_error(L, "option 'password' needs 'username'");
    if (!o->clean_session && !o->client_id)
        luaL_error(L, "a persistent session (clean_session = false) needs a client_id");
    read_will(L, idx, o);
    read_tls(L, idx, o);
    read_reconnect(L, idx, o);
}

static int l_connect(lua_State *L)
{
    struct sts_mqtt_options o;
    char err[256];

    lua_settop(L, 1);
    if (lua_isnil(L, 1)) {
        lua_newtable(L);
        lua_replace(L, 1);
    }
    read_options(L, 1, &o);

    struct lclient *c = lua_newuserdatauv(L, sizeof *c, 1); /* 2 */
    *c = (struct lclient){ .protocol = o.protocol };
    stsl_anchor_init(&c->anchor);
    luaL_setmetatable(L, CLIENT_MT);
    lua_newtable(L);
    lua_newtable(L);
    lua_setfield(L, -2, "on");
    stsl_future_new(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "connecting");
    lua_insert(L, -2);
    lua_setiuservalue(L, 2, 1);            /* 3: the future */

    struct sts_mqtt_handlers handlers = {
        .on_connect = on_connect, .on_disconnect = on_disconnect, .on_drained = on_drained, .ud = c,
    };
    c->m = sts_mqtt_new(sts_loop_default(), &o, &handlers, err, sizeof err);
    if (!c->m) return stsl_fail(L, "%s", err);
    stsl_anchor_set(L, 2, &c->anchor);
    /* The future resolves to (client, msg) or (nil, reason); the layer below
     * bounds the wait with its own timeout, this one is a safety net. */
    return stsl_future_await(L, 3, o.timeout + 1);
}

/* --- client methods ------------------------------------------------------------ */

void stsl_client_on_close(lua_State *L, int client, int obj, lua_CFunction fn)
{
    obj = lua_absindex(L, obj);
    lua_getiuservalue(L, client, 1);
    if (lua_getfield(L, -1, "dependents") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "dependents");
    }
    lua_pushvalue(L, obj);
    if (fn) lua_pushcfunction(L, fn);
    else lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 2);
}

/* Tells what depends on the client (its sessions) that it is closing, while
 * it can still publish their goodbyes: fn(obj, finalizing). */
static void notify_dependents(lua_State *L, int client, int finalizing)
{
    lua_getiuservalue(L, client, 1);
    if (lua_getfield(L, -1, "dependents") != LUA_TTABLE) {
        lua_pop(L, 2);
        return;
    }
    lua_newtable(L); /* a copy: the callbacks unregister themselves */
    int copy = lua_gettop(L), n = 0;
    lua_pushnil(L);
    while (lua_next(L, copy - 1)) {
        lua_rawseti(L, copy, ++n);      /* the function */
        lua_pushvalue(L, -1);
        lua_rawseti(L, copy, ++n);      /* the object, kept as the key for lua_next */
    }
    for (int i = 1; i < n; i += 2) {
        lua_rawgeti(L, copy, i);
        lua_rawgeti(L, copy, i + 1);
        lua_pushboolean(L, finalizing);
        stsl_pcall(L, 2, 0, "client close notification");
    }
    lua_pop(L, 3);
}

static void forget_handler(lua_State *L, struct lclient *c, struct handler **link)
{
    struct handler *h = *link;
    *link = h->next;
    if (c->m) sts_mqtt_unsubscribe(c->m, h->sub);
    luaL_unref(L, LUA_REGISTRYINDEX, h->fn_ref);
    free(h);
}

/* Closes the client. From __gc (finalizing) no script code runs: at exit the
 * objects it would see may be finalized already. */
static void close_client(lua_State *L, int idx, struct lclient *c, int finalizing)
{
    if (!c->m) return;
    notify_dependents(L, idx, finalizing);
    if (sts_mqtt_stats(c->m)->unacked > 0)
        sts_warn("mqtt %s: closing with %lu QoS 1/2 messages not yet acknowledged (client:flush() waits for them)",
                 sts_mqtt_client_id(c->m), sts_mqtt_stats(c->m)->unacked);
    sts_mqtt_close(c->m);
    c->m = NULL;
    while (c->handlers) forget_handler(L, c, &c->handlers);
    stsl_anchor_release(&c->anchor);
}

static int mqtt_fail(lua_State *L, const char *what, int rc)
{
    return stsl_fail(L, "%s: %s", what, mosquitto_strerror(rc));
}

static int check_qos(lua_State *L, int idx)
{
    lua_Integer qos = stsl_opt_integer(L, idx, "qos", 0);
    if (qos < 0 || qos > 2) luaL_error(L, "option 'qos' must be 0, 1 or 2");
    return (int)qos;
}

/* Is h the handler `fn` (at idx) on `filter`? */
static int is_handler(lua_State *L, const struct handler *h, const char *filter, int fn)
{
    if (strcmp(h->sub->filter->text, filter) != 0) return 0;
    if (fn == 0) return 1;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->fn_ref);
    int same = lua_rawequal(L, -1, fn);
    lua_pop(L, 1);
    return same;
}

/* Removes the handlers of `filter` (only `fn`, at that index, if not 0);
 * returns how many. */
static int remove_handlers(lua_State *L, struct lclient *c, const char *filter, int fn)
{
    int n = 0;
    for (struct handler **link = &c->handlers; *link;) {
        if (is_handler(L, *link, filter, fn)) {
            forget_handler(L, c, link);
            n++;
        } else {
            link = &(*link)->next;
        }
    }
    return n;
}

/* client:subscribe(filter, fn[, {qos=}]): fn(topic, payload, info) for each
 * message. Several handlers may share a filter; the same fn again replaces
 * itself (with the new QoS). */
static int client_subscribe(lua_State *L)
{
    static const char *const known[] = { "qos", NULL };
    struct lclient *c = check_client(L, 1);
    const char *filter = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    int qos = 0, rc;
    if (!lua_isnoneornil(L, 4)) {
        stsl_check_options(L, 4, "subscribe", known);
        qos = check_qos(L, 4);
    }
    if (mosquitto_sub_topic_check(filter) != MOSQ_ERR_SUCCESS)
        return stsl_fail(L, "subscribe: invalid topic filter '%s'", filter);
    struct handler *h = malloc(sizeof *h);
    if (!h) return luaL_error(L, "out of memory");
    h->c = c;
    h->sub = sts_mqtt_subscribe(c->m, filter, qos, on_message, h, &rc);
    if (!h->sub) {
        free(h);
        return mqtt_fail(L, "subscribe", rc);
    }
    remove_handlers(L, c, filter, 3); /* after: the broker subscription stays */
    lua_pushvalue(L, 3);
    h->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    h->next = c->handlers;
    c->handlers = h;
    lua_pushboolean(L, 1);
    return 1;
}

/* client:unsubscribe(filter[, fn]): removes fn, or every handler of filter. */
static int client_unsubscribe(lua_State *L)
{
    struct lclient *c = check_client(L, 1);
    const char *filter = luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TFUNCTION);
    if (remove_handlers(L, c, filter, lua_isnoneornil(L, 3) ? 0 : 3) == 0)
        return stsl_fail(L, "unsubscribe: not subscribed to '%s'", filter);
    lua_pushboolean(L, 1);
    return 1;
}

static int client_publish(lua_State *L)
{
    static const char *const known[] = {
        "qos", "retain", "content_type", "response_topic", "correlation_data",
        "message_expiry", "user_properties", NULL,
    };
    static const char *const v5_only[] = {
        "content_type", "response_topic", "correlation_data", "message_expiry", "user_properties", NULL,
    };
    struct lclient *c = open_client(L, stsl_check_self(L, CLIENT_MT));
    const char *topic = luaL_checkstring(L, 2);
    size_t len;
    const char *payload = luaL_checklstring(L, 3, &len);
    int qos = 0, retain = 0;
    mosquitto_property *props = NULL;

    if (!lua_isnoneornil(L, 4)) {
        stsl_check_options(L, 4, "publish", known);
        qos = check_qos(L, 4);
        retain = stsl_opt_boolean(L, 4, "retain", 0);
        for (int i = 0; v5_only[i]; i++) {
            if (lua_getfield(L, 4, v5_only[i]) != LUA_TNIL && c->protocol != MQTT_PROTOCOL_V5)
                luaL_error(L, "publish: option '%s' needs protocol = \"5\"", v5_only[i]);
            lua_pop(L, 1);
        }
        if (c->protocol == MQTT_PROTOCOL_V5 && stsl_build_properties(L, 4, &props) != MOSQ_ERR_SUCCESS) {
            mosquitto_property_free_all(&props);
            return stsl_fail(L, "publish: invalid MQTT 5 properties");
        }
    }
    if (mosquitto_pub_topic_check(topic) != MOSQ_ERR_SUCCESS) {
        mosquitto_property_free_all(&props);
        return stsl_fail(L, "publish: invalid topic '%s'", topic);
    }
    int rc = sts_mqtt_publish(c->m, topic, payload, len, qos, retain, props);
    mosquitto_property_free_all(&props);
    if (rc == MOSQ_ERR_PAYLOAD_SIZE) return stsl_fail(L, "publish: payload of %d bytes is over max_payload", (int)len);
    if (rc != MOSQ_ERR_SUCCESS) return mqtt_fail(L, "publish", rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int client_on(lua_State *L)
{
    static const char *const events[] = { "connect", "disconnect", "error", NULL };
    check_client(L, 1);
    int e = luaL_checkoption(L, 2, NULL, events);
    if (!lua_isnil(L, 3)) luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    lua_getiuservalue(L, 1, 1);
    lua_getfield(L, -1, "on");
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, events[e]);
    lua_settop(L, 1);
    return 1;
}

static int client_disconnect(lua_State *L)
{
    close_client(L, 1, luaL_checkudata(L, 1, CLIENT_MT), 0);
    return 0;
}

static int client_gc(lua_State *L)
{
    close_client(L, 1, luaL_checkudata(L, 1, CLIENT_MT), 1);
    return 0;
}

/* client:flush([timeout]): waits until every message published so far is
 * written out and, at QoS 1/2, acknowledged; true, or nil and "timeout". */
static int client_flush(lua_State *L)
{
    struct lclient *c = check_client(L, 1);
    double timeout = luaL_optnumber(L, 2, -1);
    lua_settop(L, 1);
    if (sts_mqtt_drained(c->m)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    sts_mqtt_watch_drain(c->m);
    lua_getiuservalue(L, 1, 1);
    if (lua_getfield(L, -1, "flushing") == LUA_TNIL) {
        lua_pop(L, 1);
        stsl_future_new(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "flushing");
    }
    return stsl_future_await(L, -1, timeout);
}

static int client_connected(lua_State *L)
{
    struct lclient *c = luaL_checkudata(L, 1, CLIENT_MT);
    lua_pushboolean(L, c->m && sts_mqtt_state(c->m) == STS_MQTT_CONNECTED);
    return 1;
}

static int client_id(lua_State *L)
{
    lua_pushstring(L, sts_mqtt_client_id(check_client(L, 1)->m));
    return 1;
}

static int client_stats(lua_State *L)
{
    struct lclient *c = check_client(L, 1);
    const struct sts_mqtt_stats *s = sts_mqtt_stats(c->m);
    lua_createtable(L, 0, 7);
    lua_pushinteger(L, (lua_Integer)s->connects);
    lua_setfield(L, -2, "connects");
    lua_pushinteger(L, (lua_Integer)s->disconnects);
    lua_setfield(L, -2, "disconnects");
    lua_pushinteger(L, (lua_Integer)s->messages_in);
    lua_setfield(L, -2, "messages_in");
    lua_pushinteger(L, (lua_Integer)s->messages_out);
    lua_setfield(L, -2, "messages_out");
    lua_pushinteger(L, (lua_Integer)s->oversize_in);
    lua_setfield(L, -2, "oversize_in");
    lua_pushinteger(L, (lua_Integer)s->unclaimed_dropped);
    lua_setfield(L, -2, "unclaimed_dropped");
    lua_pushinteger(L, (lua_Integer)s->unacked);
    lua_setfield(L, -2, "unacked");
    lua_pushinteger(L, (lua_Integer)s->redeliveries_dropped);
    lua_setfield(L, -2, "redeliveries_dropped");
    return 1;
}

static int client_tostring(lua_State *L)
{
    struct lclient *c = luaL_checkudata(L, 1, CLIENT_MT);
    if (c->m) lua_pushfstring(L, "sts.client (%s)", sts_mqtt_client_id(c->m));
    else lua_pushliteral(L, "sts.client (closed)");
    return 1;
}

void stsl_open_mqtt(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "subscribe", client_subscribe }, { "unsubscribe", client_unsubscribe },
        { "publish", client_publish }, { "on", client_on }, { "disconnect", client_disconnect },
        { "close", client_disconnect }, { "connected", client_connected }, { "id", client_id },
        { "stats", client_stats }, { "flush", client_flush }, { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", client_gc }, { "__close", client_disconnect },
        { "__tostring", client_tostring }, { NULL, NULL },
    };
    stsl_new_class(L, CLIENT_MT, meta, methods);
    lua_pushcfunction(L, l_connect);
    lua_setfield(L, -2, "connect");
}
