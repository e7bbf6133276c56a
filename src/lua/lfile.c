/* sts.write_file_atomic(path, data) -> true | nil, message: replaces path as
 * sts_write_atomic does (src/util/atomic_file.h): a mkstemp temporary beside
 * it (never through a symbolic link), synced and renamed over it, so a reader
 * sees the old content or the new, never a mix. The file is mode 0644. */
#include "lua/internal.h"
#include "util/atomic_file.h"

static int l_write_file_atomic(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    char err[512];

    if (sts_write_atomic(path, (const uint8_t *)data, len, 0644, err, sizeof err) != 0)
        return stsl_fail(L, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

void stsl_open_file(lua_State *L)
{
    static const luaL_Reg functions[] = { { "write_file_atomic", l_write_file_atomic }, { NULL, NULL } };
    luaL_setfuncs(L, functions, 0);
}
