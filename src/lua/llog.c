/* sts.log: debug/info/warn/error(fmt-free message parts), sts.log.level
 * to read or set the level ("debug", "info", "warn", "error", "off"), and
 * sts.log.journal, true when the lines go to journald (src/util/log.h). */
#include "lua/internal.h"
#include "util/log.h"

#include <string.h>

static void log_parts(lua_State *L, enum sts_log_level level)
{
    if (level < sts_log_get_level()) return;
    luaL_Buffer b;
    int n = lua_gettop(L);
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    sts_log(level, "%s", lua_tostring(L, -1));
}

static int l_debug(lua_State *L) { log_parts(L, STS_LOG_DEBUG); return 0; }
static int l_info(lua_State *L) { log_parts(L, STS_LOG_INFO); return 0; }
static int l_warn(lua_State *L) { log_parts(L, STS_LOG_WARN); return 0; }
static int l_error(lua_State *L) { log_parts(L, STS_LOG_ERROR); return 0; }

static int log_index(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING) return 0;
    const char *key = lua_tostring(L, 2);
    if (strcmp(key, "level") == 0) {
        lua_pushstring(L, sts_log_level_name(sts_log_get_level()));
        return 1;
    }
    if (strcmp(key, "journal") == 0) {
        lua_pushboolean(L, sts_log_to_journal());
        return 1;
    }
    return 0;
}

static int log_newindex(lua_State *L)
{
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "level") != 0) return luaL_error(L, "sts.log has no field '%s' to set", key);
    int level = sts_log_parse_level(luaL_checkstring(L, 3));
    if (level < 0) return luaL_error(L, "sts.log.level must be debug, info, warn, error or off");
    sts_log_set_level((enum sts_log_level)level);
    return 0;
}

void stsl_open_log(lua_State *L)
{
    static const luaL_Reg functions[] = {
        { "debug", l_debug }, { "info", l_info }, { "warn", l_warn }, { "error", l_error },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__index", log_index }, { "__newindex", log_newindex }, { NULL, NULL },
    };
    /* Read now, so that a bad STS_LOG is told at require "sts", not at the first line. */
    (void)sts_log_get_level();
    luaL_newlib(L, functions);
    luaL_newlib(L, meta);
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "log");
}
