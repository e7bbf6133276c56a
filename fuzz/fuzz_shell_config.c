/* The shell's config rules, in Lua: fuzz/lua/shell_config.lua. */
#include "lua_harness.h"

FUZZ_LUA_TARGET("shell_config")
