#include "lua_harness.h"
#include "crypto/random.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int luaopen_sts(lua_State *L);

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Calls the function below nargs arguments; any error is fatal. */
static void call_or_abort(lua_State *L, int nargs, int nresults, const char *what)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    if (lua_pcall(L, nargs, nresults, base) != LUA_OK) {
        fprintf(stderr, "fuzz: %s: %s\n", what, lua_tostring(L, -1));
        abort();
    }
    lua_remove(L, base);
}

/* fuzz_file(text) -> the path of a file (a memfd, mode 0600) holding
 * text, for code that reads files: the same file each call. */
static int fuzz_file(lua_State *L)
{
    static int fd = -1;
    static char path[64];
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    if (fd < 0) {
        fd = memfd_create("fuzz", MFD_CLOEXEC);
        if (fd < 0 || fchmod(fd, 0600) != 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, len, 0) != (ssize_t)len) abort();
    lua_pushstring(L, path);
    return 1;
}

/* fuzz_random_reset(seed): the generator restarted on its fixed stream
 * (sts_random_fuzz_reset), so keys made from here on are the same each run. */
static int fuzz_random_reset(lua_State *L)
{
    if (sts_random_fuzz_reset((uint64_t)luaL_checkinteger(L, 1)) != 0) abort();
    return 0;
}

lua_State *fuzz_lua_open(const char *driver)
{
    lua_State *L = luaL_newstate();
    if (!L) abort();
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushstring(L, FUZZ_SOURCE_LUA_DIR "/?.lua;" FUZZ_DRIVER_DIR "/?.lua");
    lua_setfield(L, -2, "path");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_sts);
    lua_setfield(L, -2, "sts");
    lua_pop(L, 2);
    lua_register(L, "fuzz_file", fuzz_file);
    lua_register(L, "fuzz_random_reset", fuzz_random_reset);
    lua_getglobal(L, "require");
    lua_pushstring(L, driver);
    call_or_abort(L, 1, 1, driver);
    if (!lua_isfunction(L, -1)) {
        fprintf(stderr, "fuzz: %s returned no function\n", driver);
        abort();
    }
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.input");
    return L;
}

void fuzz_lua_run(lua_State *L, const uint8_t *data, size_t size)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.input");
    lua_pushlstring(L, (const char *)data, size);
    call_or_abort(L, 1, 0, "input");
    lua_settop(L, 0);
    /* What the input made is freed now: libFuzzer takes an input that
     * allocates more than it frees for a leak, and runs LeakSanitizer. */
    lua_gc(L, LUA_GCCOLLECT);
}
