/* Standard input as lines on the event loop (src/loop/term.h), for Lua.
 *
 *   sts.stdin(function(line, edited) ... end)
 *                                       -- line without its newline, edited
 *                                       -- true if libedit read it; nil at EOF;
 *                                       -- returns true if lines are edited (a terminal)
 *   sts.stdin(nil)                      -- stop reading
 *   sts.print_async(text)               -- a line of output that spares the prompt
 *
 * At EOF the reader stops, then the handler gets nil: it may start reading
 * again. */
#include "lua/internal.h"
#include "loop/loop.h"
#include "loop/term.h"

/* The handler while reading, else LUA_NOREF: there is one stdin. */
static int handler_ref = LUA_NOREF;

static void on_line(const char *line, size_t len, int edited, void *ud)
{
    lua_State *L = stsl_main();

    (void)ud;
    lua_rawgeti(L, LUA_REGISTRYINDEX, handler_ref);
    if (line != NULL) {
        lua_pushlstring(L, line, len);
    } else { /* the reader has stopped: the handler goes */
        luaL_unref(L, LUA_REGISTRYINDEX, handler_ref);
        handler_ref = LUA_NOREF;
        lua_pushnil(L);
    }
    lua_pushboolean(L, edited);
    stsl_pcall(L, 2, 0, "stdin handler");
}

static int l_stdin(lua_State *L)
{
    if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, handler_ref);
    handler_ref = LUA_NOREF;
    if (lua_isnil(L, 1)) {
        sts_term_stop();
    } else {
        handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        /* A new handler for a running reader: the typed line is kept. */
        if (!sts_term_reading()) sts_term_start(sts_loop_default(), on_line, NULL);
    }
    lua_pushboolean(L, sts_term_editing());
    return 1;
}

static int l_print_async(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    sts_term_print(text, len);
    return 0;
}

void stsl_open_stdin(lua_State *L)
{
    lua_pushcfunction(L, l_stdin);
    lua_setfield(L, -2, "stdin");
    lua_pushcfunction(L, l_print_async);
    lua_setfield(L, -2, "print_async");
}
