/* luaopen_sts: the `sts` module, assembled from the binding files. The same
 * code is linked into the sts-lua host and built as sts.so for plain lua5.4. */
#include "lua/internal.h"

#include <stdarg.h>

int luaopen_sts(lua_State *L);

int stsl_fail(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    lua_pushnil(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return 2;
}

void stsl_new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

int luaopen_sts(lua_State *L)
{
    lua_newtable(L);
    lua_pushliteral(L, STS_VERSION_STRING);
    lua_setfield(L, -2, "version");
    stsl_open_log(L);
    stsl_open_loop(L);
    stsl_open_mqtt(L);
    stsl_open_crypto(L);
    stsl_open_session(L);
    stsl_open_noise(L);
    stsl_open_config(L);
    stsl_open_legacy(L);
    stsl_open_stdin(L);
    stsl_open_dh(L);
    stsl_open_fernet(L);
    return 1;
}
