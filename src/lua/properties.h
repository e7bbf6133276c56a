/* MQTT 5 PUBLISH properties and their Lua form (docs/API.md: publish's
 * options and a message's info.properties). Kept apart from the client so
 * the conversion can be fuzzed (fuzz/fuzz_mqtt_properties.c). */
#ifndef STS_LUA_PROPERTIES_H
#define STS_LUA_PROPERTIES_H

#include <lua.h>
#include <mosquitto.h>

/* Builds the properties that the publish options table at idx asks for
 * (content_type, response_topic, correlation_data, message_expiry,
 * user_properties) into *props (NULL on entry). A value of the wrong type
 * is an error raised before anything is allocated; a value the protocol
 * cannot carry (not UTF-8, a NUL in a string, correlation data over 65535
 * bytes) returns a mosquitto error code, with whatever was built in *props
 * for the caller to free. */
int stsl_build_properties(lua_State *L, int idx, mosquitto_property **props);

/* Pushes a received message's properties as a table: content_type,
 * response_topic, correlation_data, message_expiry, payload_format (each
 * when present) and user_properties, a list of {name, value} in the order
 * received. */
void stsl_push_properties(lua_State *L, const mosquitto_property *props);

#endif
