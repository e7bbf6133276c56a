/* The shell's command line, in Lua: fuzz/lua/shell_command.lua. */
#include "lua_harness.h"

FUZZ_LUA_TARGET("shell_command")
