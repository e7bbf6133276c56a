/* The lab protocol, in Lua: fuzz/lua/lab.lua. */
#include "lua_harness.h"

FUZZ_LUA_TARGET("lab")
