/* Options tables as the API takes them: `{ host = "x", port = 1883 }`. Every
 * key is checked against the list the caller knows, so a misspelt option is
 * an error rather than a silently ignored default. */
#include "lua/internal.h"

#include <string.h>

void stsl_check_options(lua_State *L, int idx, const char *what, const char *const known[])
{
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: option names must be strings", what);
        const char *key = lua_tostring(L, -1);
        int found = 0;
        for (int i = 0; known[i] && !found; i++) found = strcmp(key, known[i]) == 0;
        if (!found) luaL_error(L, "%s: unknown option '%s'", what, key);
    }
}

static int field(lua_State *L, int idx, const char *key, int type, const char *expected)
{
    int t = lua_getfield(L, idx, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t != type && !(type == LUA_TNUMBER && t == LUA_TSTRING && lua_isnumber(L, -1)))
        luaL_error(L, "option '%s' must be %s, got %s", key, expected, luaL_typename(L, -1));
    return 1;
}

const char *stsl_opt_string(lua_State *L, int idx, const char *key, const char *def)
{
    if (!field(L, idx, key, LUA_TSTRING, "a string")) return def;
    /* The string stays reachable from the options table the caller holds. */
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
}

lua_Number stsl_opt_number(lua_State *L, int idx, const char *key, lua_Number def)
{
    if (!field(L, idx, key, LUA_TNUMBER, "a number")) return def;
    lua_Number n = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return n;
}

lua_Integer stsl_opt_integer(lua_State *L, int idx, const char *key, lua_Integer def)
{
    if (!field(L, idx, key, LUA_TNUMBER, "an integer")) return def;
    int isint = 0;
    lua_Integer n = lua_tointegerx(L, -1, &isint);
    if (!isint) luaL_error(L, "option '%s' must be an integer", key);
    lua_pop(L, 1);
    return n;
}

int stsl_opt_boolean(lua_State *L, int idx, const char *key, int def)
{
    if (!field(L, idx, key, LUA_TBOOLEAN, "a boolean")) return def;
    int b = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return b;
}

int stsl_opt_table(lua_State *L, int idx, const char *key)
{
    return field(L, idx, key, LUA_TTABLE, "a table");
}
