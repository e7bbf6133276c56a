/* Lua 5.4 embedded in a fuzz target, for the parsers written in Lua (the
 * shell's commands and config rules, the lab protocol) and the bindings
 * between C and Lua (MQTT 5 properties).
 *
 * fuzz_lua_open loads fuzz/lua/<driver>.lua in a state with the standard
 * libraries and the sts module (its C part linked in, its Lua part from the
 * source tree's lua/); the driver returns the function that takes one input.
 * fuzz_lua_run calls it with the input as a string: the driver itself
 * catches the errors its input may cause (a refused config, a bad command)
 * and raises any other, and every error that reaches C is a bug: it is
 * printed with its traceback and the target aborts. Drivers also get a
 * global fuzz_file(text), which writes text to a file (a memfd) and returns
 * its path, for code that reads files, and fuzz_random_reset(seed), which
 * restarts the random generator on a fixed stream (sts_random_fuzz_reset). */
#ifndef STS_FUZZ_LUA_HARNESS_H
#define STS_FUZZ_LUA_HARNESS_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

lua_State *fuzz_lua_open(const char *driver);
void fuzz_lua_run(lua_State *L, const uint8_t *data, size_t size);

/* A whole target over one driver: FUZZ_LUA_TARGET("lab"). The state is made
 * before the first input (a driver may write seeds and exit then). */
#define FUZZ_LUA_TARGET(driver)                                          \
    int LLVMFuzzerInitialize(int *argc, char ***argv);                   \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);        \
    static lua_State *fuzz_state;                                        \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                    \
    {                                                                    \
        (void)argc, (void)argv;                                          \
        fuzz_state = fuzz_lua_open(driver);                              \
        return 0;                                                        \
    }                                                                    \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)         \
    {                                                                    \
        fuzz_lua_run(fuzz_state, data, size);                            \
        return 0;                                                        \
    }

#endif
