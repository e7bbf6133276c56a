/* MQTT 5 properties between libmosquitto and Lua (src/lua/lproperties.c).
 * Byte 0 chooses the direction:
 *  - received (even): the rest is a list of properties added with
 *    libmosquitto's own functions (any identifier with any type; those it
 *    refuses are left out), pushed as the Lua table a handler gets: it holds
 *    the first value of each property it names, and every user property in
 *    order.
 *  - sent (odd): the rest is a publish options table (strings of any bytes,
 *    integers of any size, floats, booleans, user properties as a map or a
 *    list with entries of any type) built into properties: a misuse is an
 *    error raised before anything is allocated (nothing leaks), and what
 *    builds reads back as the options said.
 * Nothing crashes or leaks (ASan, LeakSanitizer). */
#include "input.h"
#include "lua/properties.h"

#include <lauxlib.h>
#include <lualib.h>
#include <mqtt_protocol.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t take_u64(struct fuzz_input *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | fuzz_take_byte(in);
    return v;
}

static void fail_if(int bad)
{
    if (bad) abort();
}

/* Field key of the table at t equals (s, len); s NULL: absent. */
static void check_field(lua_State *L, int t, const char *key, const char *s, size_t len)
{
    size_t got_len;
    lua_getfield(L, t, key);
    const char *got = lua_tolstring(L, -1, &got_len);
    fail_if((s == NULL) != (got == NULL));
    fail_if(s && (got_len != len || memcmp(got, s, len) != 0));
    lua_pop(L, 1);
}

static void check_integer(lua_State *L, int t, const char *key, int present, lua_Integer want)
{
    lua_getfield(L, t, key);
    fail_if(present != !lua_isnil(L, -1));
    fail_if(present && lua_tointeger(L, -1) != want);
    lua_pop(L, 1);
}

static int push(lua_State *L)
{
    stsl_push_properties(L, lua_touserdata(L, 1));
    return 1;
}

/* What the received properties should show: first values, user pairs. */
struct expected {
    char *strings[2]; /* content type, response topic */
    char *correlation;
    size_t correlation_len;
    int has_expiry, has_format;
    uint32_t expiry;
    uint8_t format;
    size_t users;
};

static char *text_of(const char *s, size_t len)
{
    char *t = malloc(len + 1);
    fail_if(!t);
    memcpy(t, s, len);
    t[len] = '\0';
    return t;
}

static void add_received(struct fuzz_input *in, mosquitto_property **props, struct expected *e)
{
    uint8_t kind = fuzz_take_byte(in) % 7, id = fuzz_take_byte(in);
    size_t len, len2;
    const char *s, *s2;
    int rc;
    switch (kind) {
    case 0: {
        uint8_t v = fuzz_take_byte(in);
        rc = mosquitto_property_add_byte(props, id, v);
        if (rc == 0 && id == MQTT_PROP_PAYLOAD_FORMAT_INDICATOR && !e->has_format) e->has_format = 1, e->format = v;
        break;
    }
    case 1: (void)mosquitto_property_add_int16(props, id, (uint16_t)take_u64(in)); break;
    case 2: {
        uint32_t v = (uint32_t)take_u64(in);
        rc = mosquitto_property_add_int32(props, id, v);
        if (rc == 0 && id == MQTT_PROP_MESSAGE_EXPIRY_INTERVAL && !e->has_expiry) e->has_expiry = 1, e->expiry = v;
        break;
    }
    case 3: (void)mosquitto_property_add_varint(props, id, (uint32_t)take_u64(in)); break;
    case 4:
        s = (const char *)fuzz_take_bytes(in, &len);
        rc = mosquitto_property_add_binary(props, id, s, (uint16_t)len);
        if (rc == 0 && id == MQTT_PROP_CORRELATION_DATA && !e->correlation)
            e->correlation = text_of(s, len), e->correlation_len = len;
        break;
    case 5: {
        s = (const char *)fuzz_take_bytes(in, &len);
        char *t = text_of(s, len);
        rc = mosquitto_property_add_string(props, id, t);
        int which = id == MQTT_PROP_CONTENT_TYPE ? 0 : id == MQTT_PROP_RESPONSE_TOPIC ? 1 : -1;
        if (rc == 0 && which >= 0 && !e->strings[which]) e->strings[which] = t, t = NULL;
        free(t);
        break;
    }
    default: {
        s = (const char *)fuzz_take_bytes(in, &len);
        s2 = (const char *)fuzz_take_bytes(in, &len2);
        char *name = text_of(s, len), *value = text_of(s2, len2);
        if (mosquitto_property_add_string_pair(props, id, name, value) == 0) e->users++;
        free(name);
        free(value);
    }
    }
}

static void received(lua_State *L, struct fuzz_input *in)
{
    mosquitto_property *props = NULL;
    struct expected e = { 0 };
    while (in->n > 0) add_received(in, &props, &e);

    lua_pushcfunction(L, push);
    lua_pushlightuserdata(L, props);
    fail_if(lua_pcall(L, 1, 1, 0) != LUA_OK);
    int got = lua_gettop(L);
    check_field(L, got, "content_type", e.strings[0], e.strings[0] ? strlen(e.strings[0]) : 0);
    check_field(L, got, "response_topic", e.strings[1], e.strings[1] ? strlen(e.strings[1]) : 0);
    check_field(L, got, "correlation_data", e.correlation, e.correlation_len);
    check_integer(L, got, "message_expiry", e.has_expiry, e.expiry);
    check_integer(L, got, "payload_format", e.has_format, e.format);
    lua_getfield(L, -1, "user_properties");
    fail_if(lua_rawlen(L, -1) != e.users);
    /* In order: the i-th pushed pair is the i-th one read back. */
    char *name, *value;
    size_t i = 0;
    for (const mosquitto_property *p = mosquitto_property_read_string_pair(props, MQTT_PROP_USER_PROPERTY, &name, &value, false);
         p; p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, true)) {
        lua_rawgeti(L, -1, (lua_Integer)++i);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        fail_if(strcmp(lua_tostring(L, -2), name) != 0 || strcmp(lua_tostring(L, -1), value) != 0);
        lua_pop(L, 3);
        free(name);
        free(value);
    }
    mosquitto_property_free_all(&props);
    free(e.strings[0]);
    free(e.strings[1]);
    free(e.correlation);
}

/* A Lua value of any type the options may hold (tables one level deep). */
static void push_value(lua_State *L, struct fuzz_input *in, int depth)
{
    size_t len;
    const char *s;
    switch (fuzz_take_byte(in) % 6) {
    case 0:
    case 1: s = (const char *)fuzz_take_bytes(in, &len); lua_pushlstring(L, s, len); break;
    case 2: lua_pushinteger(L, (lua_Integer)take_u64(in)); break;
    case 3: lua_pushnumber(L, (lua_Number)(int64_t)take_u64(in) / 7.0); break;
    case 4: lua_pushboolean(L, fuzz_take_byte(in) & 1); break;
    default:
        lua_newtable(L);
        for (int n = fuzz_take_byte(in) % 8; depth < 2 && n > 0 && in->n > 0; n--) {
            if (fuzz_take_byte(in) & 1) {
                s = (const char *)fuzz_take_bytes(in, &len);
                lua_pushlstring(L, s, len); /* {name = value} */
            } else {
                lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1) + 1); /* {name, value} */
            }
            push_value(L, in, depth + 1);
            lua_rawset(L, -3);
        }
    }
}

static mosquitto_property *built;

static int build(lua_State *L)
{
    lua_pushinteger(L, stsl_build_properties(L, 1, &built));
    return 1;
}

/* Does the options' user_properties hold the pair (name, value), as a map
 * entry or a {name, value} entry? Its index is at the top. */
static int has_pair(lua_State *L, const char *name, const char *value)
{
    int found = 0;
    lua_pushnil(L);
    while (!found && lua_next(L, -2)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
            found = strcmp(lua_tostring(L, -2), name) == 0 && strcmp(lua_tostring(L, -1), value) == 0;
        } else {
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
            found = strcmp(lua_tostring(L, -2), name) == 0 && strcmp(lua_tostring(L, -1), value) == 0;
            lua_pop(L, 2);
        }
        lua_pop(L, found ? 2 : 1);
    }
    return found;
}

static void check_built(lua_State *L, int options)
{
    lua_pushcfunction(L, push);
    lua_pushlightuserdata(L, built);
    fail_if(lua_pcall(L, 1, 1, 0) != LUA_OK);
    int got = lua_gettop(L);
    static const char *const texts[] = { "content_type", "response_topic", "correlation_data" };
    for (int i = 0; i < 3; i++) {
        size_t len;
        lua_getfield(L, options, texts[i]);
        const char *s = lua_tolstring(L, -1, &len);
        check_field(L, got, texts[i], s, len);
        lua_pop(L, 1);
    }
    lua_getfield(L, options, "message_expiry");
    check_integer(L, got, "message_expiry", !lua_isnil(L, -1) && lua_tointeger(L, -1) >= 0, lua_tointeger(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, got, "user_properties");
    lua_getfield(L, options, "user_properties");
    size_t pairs = 0;
    if (lua_istable(L, -1)) {
        for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) pairs++;
        for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -2); i++) {
            lua_rawgeti(L, -2, i);
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
            char *name = strdup(lua_tostring(L, -2)), *value = strdup(lua_tostring(L, -1));
            lua_pop(L, 3);
            fail_if(!name || !value || !has_pair(L, name, value));
            free(name);
            free(value);
        }
    }
    fail_if(lua_rawlen(L, -2) != pairs);
    lua_settop(L, options);
}

static void sent(lua_State *L, struct fuzz_input *in)
{
    static const char *const keys[] = {
        "content_type", "response_topic", "correlation_data", "message_expiry", "user_properties",
    };
    lua_newtable(L);
    int options = lua_gettop(L);
    while (in->n > 0) {
        const char *key = keys[fuzz_take_byte(in) % 5];
        push_value(L, in, 0);
        lua_setfield(L, options, key);
    }
    lua_pushcfunction(L, build);
    lua_pushvalue(L, options);
    built = NULL;
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fail_if(!lua_isstring(L, -1) || built != NULL); /* an error after allocating leaks */
    } else if (lua_tointeger(L, -1) == MOSQ_ERR_SUCCESS) {
        lua_pop(L, 1);
        check_built(L, options);
    }
    mosquitto_property_free_all(&built);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *L;
    if (!L) {
        L = luaL_newstate();
        fail_if(!L);
        luaL_openlibs(L);
    }
    struct fuzz_input in = { data, size };
    if (fuzz_take_byte(&in) & 1) sent(L, &in);
    else received(L, &in);
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT); /* else LeakSanitizer takes Lua's garbage for leaks, and scans */
    return 0;
}
