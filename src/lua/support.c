/* Small helpers every binding file uses. */
#include "lua/internal.h"

#include <stdarg.h>
#include <stddef.h>

int stsl_fail(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    lua_pushnil(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return 2;
}

/* __index of a class with properties: a method, else property(self, key).
 * Lua gives a function __index the object itself, which a property needs and
 * a table __index never gets; so the methods are looked up here, first. */
static int index_method_or_property(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

void stsl_new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    int properties = lua_getfield(L, -1, "__index") == LUA_TFUNCTION;
    lua_newtable(L);
    lua_pushvalue(L, -3);
    luaL_setfuncs(L, methods, 1); /* each method's upvalue: the metatable, for stsl_check_self */
    if (properties) {
        lua_insert(L, -2);
        lua_pushcclosure(L, index_method_or_property, 2);
    } else {
        lua_remove(L, -2);
    }
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

void *stsl_check_self(lua_State *L, const char *name)
{
    void *p = lua_touserdata(L, 1);
    if (p && lua_getmetatable(L, 1)) {
        int same = lua_rawequal(L, -1, lua_upvalueindex(1));
        lua_pop(L, 1);
        if (same) return p;
    }
    return luaL_checkudata(L, 1, name); /* not one: its usual error */
}

void stsl_anchor_init(struct stsl_anchor *a)
{
    a->ref = a->held = LUA_NOREF;
}

void stsl_anchor_set(lua_State *L, int idx, struct stsl_anchor *a)
{
    lua_pushvalue(L, idx);
    a->ref = a->held = luaL_ref(L, LUA_REGISTRYINDEX);
}

int stsl_anchor_push(lua_State *L, const struct stsl_anchor *a)
{
    if (a->ref == LUA_NOREF) return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref);
    return 1;
}

static void drop_reference(struct sts_closing *c)
{
    struct stsl_anchor *a = (struct stsl_anchor *)((char *)c - offsetof(struct stsl_anchor, release));
    int ref = a->held;
    a->held = LUA_NOREF;
    luaL_unref(stsl_main(), LUA_REGISTRYINDEX, ref); /* a may be collected from here on */
}

void stsl_anchor_release(struct stsl_anchor *a)
{
    if (a->ref == LUA_NOREF) return;
    a->ref = LUA_NOREF;
    sts_loop_close(sts_loop_default(), &a->release, drop_reference);
}

int stsl_get_uv(lua_State *L, int idx, const char *name)
{
    lua_getiuservalue(L, idx, 1);
    int t = lua_getfield(L, -1, name);
    lua_remove(L, -2);
    return t;
}

void stsl_set_uv(lua_State *L, int idx, const char *name)
{
    idx = lua_absindex(L, idx);
    lua_getiuservalue(L, idx, 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

void stsl_set_count(lua_State *L, const char *name, uint64_t n)
{
    lua_pushinteger(L, (lua_Integer)n);
    lua_setfield(L, -2, name);
}

void stsl_at_lua_close(lua_State *L, const void *key, lua_CFunction fn)
{
    lua_newuserdatauv(L, 0, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}
