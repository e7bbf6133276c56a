#include "lua/properties.h"
#include "lua/internal.h"

#include <lauxlib.h>
#include <mqtt_protocol.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXPIRY 4294967295 /* the property is a four-byte integer */

void stsl_push_properties(lua_State *L, const mosquitto_property *props)
{
    char *name = NULL, *value = NULL;
    void *bin = NULL;
    uint16_t binlen = 0;
    uint32_t expiry = 0;
    uint8_t format = 0;

    lua_newtable(L);
    if (mosquitto_property_read_string(props, MQTT_PROP_CONTENT_TYPE, &value, false)) {
        lua_pushstring(L, value);
        lua_setfield(L, -2, "content_type");
        free(value);
    }
    if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &value, false)) {
        lua_pushstring(L, value);
        lua_setfield(L, -2, "response_topic");
        free(value);
    }
    if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &bin, &binlen, false)) {
        lua_pushlstring(L, bin, binlen);
        lua_setfield(L, -2, "correlation_data");
        free(bin);
    }
    if (mosquitto_property_read_int32(props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &expiry, false)) {
        lua_pushinteger(L, expiry);
        lua_setfield(L, -2, "message_expiry");
    }
    if (mosquitto_property_read_byte(props, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, &format, false)) {
        lua_pushinteger(L, format);
        lua_setfield(L, -2, "payload_format");
    }
    /* User properties keep their order and may repeat: a list of {name, value}. */
    lua_newtable(L);
    int n = 0;
    for (const mosquitto_property *p = mosquitto_property_read_string_pair(props, MQTT_PROP_USER_PROPERTY, &name, &value, false);
         p; p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, true)) {
        lua_createtable(L, 2, 0);
        lua_pushstring(L, name);
        lua_rawseti(L, -2, 1);
        lua_pushstring(L, value);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, ++n);
        free(name);
        free(value);
    }
    lua_setfield(L, -2, "user_properties");
}

/* Options of the wrong type are errors raised here, before the properties
 * are built: an error while building would leak what was built. */
static void check_user_properties(lua_State *L, int t)
{
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
            /* {name = value} */
        } else if (lua_istable(L, -1)) {
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
            if (!lua_isstring(L, -2) || !lua_isstring(L, -1)) luaL_error(L, "user_properties entries must be strings");
            lua_pop(L, 2);
        } else {
            luaL_error(L, "user_properties must map names to strings or list {name, value} pairs");
        }
        lua_pop(L, 1);
    }
}

/* The text of a string for a property, or NULL when it holds a NUL, which
 * would cut it short (MQTT strings may not contain U+0000). */
static const char *property_text(const char *s, size_t len)
{
    return s && strlen(s) == len ? s : NULL;
}

/* The string option key of the table at idx (NULL when absent), and its
 * length; of the wrong type, an error. */
static const char *opt_lstring(lua_State *L, int idx, const char *key, size_t *len)
{
    int type = lua_getfield(L, idx, key);
    if (type != LUA_TNIL && type != LUA_TSTRING) luaL_error(L, "option '%s' must be a string", key);
    const char *s = lua_tolstring(L, -1, len);
    lua_pop(L, 1); /* the string stays reachable from the options table */
    return s;
}

static int add_string(mosquitto_property **props, int identifier, const char *s, size_t len)
{
    if (!s) return MOSQ_ERR_SUCCESS;
    if (!property_text(s, len)) return MOSQ_ERR_MALFORMED_UTF8;
    return mosquitto_property_add_string(props, identifier, s);
}

/* The {name, value} at the top two slots of the stack. */
static int add_pair(lua_State *L, mosquitto_property **props)
{
    size_t nlen, vlen;
    const char *n = lua_tolstring(L, -2, &nlen), *v = lua_tolstring(L, -1, &vlen);
    if (!property_text(n, nlen) || !property_text(v, vlen)) return MOSQ_ERR_MALFORMED_UTF8;
    return mosquitto_property_add_string_pair(props, MQTT_PROP_USER_PROPERTY, n, v);
}

static int add_user_properties(lua_State *L, int t, mosquitto_property **props)
{
    int rc = MOSQ_ERR_SUCCESS;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
            lua_pushvalue(L, -2);
            lua_pushvalue(L, -2);
        } else {
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
        }
        rc = add_pair(L, props);
        lua_pop(L, 3);
        if (rc != MOSQ_ERR_SUCCESS) {
            lua_pop(L, 1); /* the key */
            break;
        }
    }
    return rc;
}

int stsl_build_properties(lua_State *L, int idx, mosquitto_property **props)
{
    size_t content_len = 0, response_len = 0, correlation_len = 0;
    int rc = MOSQ_ERR_SUCCESS;

    idx = lua_absindex(L, idx);
    const char *content_type = opt_lstring(L, idx, "content_type", &content_len);
    const char *response_topic = opt_lstring(L, idx, "response_topic", &response_len);
    const char *correlation = opt_lstring(L, idx, "correlation_data", &correlation_len);
    lua_Integer expiry = stsl_opt_integer(L, idx, "message_expiry", -1);
    if (expiry < -1 || expiry > MAX_EXPIRY) luaL_error(L, "option 'message_expiry' must be from 0 to 4294967295");
    int users = stsl_opt_table(L, idx, "user_properties") ? lua_gettop(L) : 0;
    if (users) check_user_properties(L, users);

    rc = add_string(props, MQTT_PROP_CONTENT_TYPE, content_type, content_len);
    if (rc == MOSQ_ERR_SUCCESS) rc = add_string(props, MQTT_PROP_RESPONSE_TOPIC, response_topic, response_len);
    if (rc == MOSQ_ERR_SUCCESS && correlation)
        rc = correlation_len > 65535 ? MOSQ_ERR_INVAL
                                     : mosquitto_property_add_binary(props, MQTT_PROP_CORRELATION_DATA, correlation,
                                                                     (uint16_t)correlation_len);
    if (rc == MOSQ_ERR_SUCCESS && expiry >= 0)
        rc = mosquitto_property_add_int32(props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, (uint32_t)expiry);
    if (rc == MOSQ_ERR_SUCCESS && users) rc = add_user_properties(L, users, props);
    if (users) lua_pop(L, 1);
    return rc;
}
