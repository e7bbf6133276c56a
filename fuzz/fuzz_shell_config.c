/* The shell's config rules, in Lua: fuzz/lua/shell_config.lua. */
#include "lua_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *L;
    if (!L) L = fuzz_lua_open("shell_config");
    fuzz_lua_run(L, data, size);
    return 0;
}
