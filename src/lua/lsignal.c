/* Signals on the event loop (src/loop/signals.h), for Lua.
 *
 *   sts.signal("HUP", function(name) ... end)  -- also "SIGHUP"; INT, TERM, USR1, USR2;
 *                                              -- name is the short one, "HUP"
 *   sts.signal("HUP", nil)                     -- the disposition from before again
 *
 * Handlers run on the loop through stsl_pcall, never from the signal handler.
 * While one is registered, sts.run waits for it, as for a timer: a daemon's
 * `sts.signal("TERM", sts.stop); sts.run()` runs until its SIGTERM. A handler
 * for TERM or INT takes the place of the clean shutdown (lloop.c), one for
 * HUP that of the listeners' trust reload; sts.signal(name, nil) brings them
 * back. */
#include "lua/internal.h"
#include "loop/signals.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

static const struct {
    const char *name;
    int signo;
    const char *what; /* for error reports */
} signals[] = {
    { "HUP", SIGHUP, "SIGHUP handler" },
    { "INT", SIGINT, "SIGINT handler" },
    { "TERM", SIGTERM, "SIGTERM handler" },
    { "USR1", SIGUSR1, "SIGUSR1 handler" },
    { "USR2", SIGUSR2, "SIGUSR2 handler" },
};
#define NSIGNALS (sizeof signals / sizeof signals[0])

/* The handler of each signal, LUA_NOREF while none. */
static int handler_refs[NSIGNALS];

static size_t check_signal(lua_State *L, int idx)
{
    const char *name = luaL_checkstring(L, idx);
    const char *bare = strncmp(name, "SIG", 3) == 0 ? name + 3 : name;

    for (size_t i = 0; i < NSIGNALS; i++)
        if (strcmp(bare, signals[i].name) == 0) return i;
    return (size_t)luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s' (HUP, INT, TERM, USR1 or USR2)", name));
}

static void on_signal(int signo, void *ud)
{
    size_t i = (size_t)((int *)ud - handler_refs);
    lua_State *L = stsl_main();

    (void)signo;
    lua_rawgeti(L, LUA_REGISTRYINDEX, handler_refs[i]);
    lua_pushstring(L, signals[i].name);
    stsl_pcall(L, 1, 0, signals[i].what);
}

static void forget_handler(lua_State *L, size_t i)
{
    sts_signal_unwatch(signals[i].signo);
    luaL_unref(L, LUA_REGISTRYINDEX, handler_refs[i]);
    handler_refs[i] = LUA_NOREF;
}

static int l_signal(lua_State *L)
{
    size_t i = check_signal(L, 1);
    luaL_checkany(L, 2); /* nil must be said: a forgotten handler is not a removal */
    if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    if (lua_isnil(L, 2)) {
        forget_handler(L, i);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (sts_signal_watch(sts_loop_default(), signals[i].signo, on_signal, &handler_refs[i]) != 0)
        return stsl_fail(L, "sts.signal: cannot watch SIG%s: %s", signals[i].name, strerror(errno));
    luaL_unref(L, LUA_REGISTRYINDEX, handler_refs[i]);
    handler_refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 1);
    return 1;
}

/* At lua_close the handlers go, and with them the dispositions they replaced:
 * a SIGTERM after the state is gone must end the process, not wake a loop
 * nobody runs. */
static int forget_all(lua_State *L)
{
    for (size_t i = 0; i < NSIGNALS; i++) forget_handler(L, i);
    return 0;
}

void stsl_open_signal(lua_State *L)
{
    static const char SHUTDOWN = 's';

    for (size_t i = 0; i < NSIGNALS; i++) handler_refs[i] = LUA_NOREF;
    stsl_at_lua_close(L, &SHUTDOWN, forget_all);
    lua_pushcfunction(L, l_signal);
    lua_setfield(L, -2, "signal");
}
