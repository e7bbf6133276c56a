/* Shared pieces of the Lua binding layer: the only layer that touches
 * lua_State. Each binding file exports stsl_open_NAME(L), which sets its
 * functions on the `sts` table at the top of the stack. */
#ifndef STS_LUA_INTERNAL_H
#define STS_LUA_INTERNAL_H

#include "crypto/keyfile.h"
#include "loop/loop.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>

#define STS_VERSION_STRING "0.1.0"

void stsl_open_loop(lua_State *L);
void stsl_open_log(lua_State *L);
void stsl_open_mqtt(lua_State *L);
void stsl_open_crypto(lua_State *L);
void stsl_open_key(lua_State *L);
void stsl_open_session(lua_State *L);
void stsl_open_noise(lua_State *L);
void stsl_open_config(lua_State *L);
void stsl_open_legacy(lua_State *L);
void stsl_open_stdin(lua_State *L);
void stsl_open_dh(lua_State *L);
void stsl_open_fernet(lua_State *L);
void stsl_open_group(lua_State *L);
void stsl_open_signal(lua_State *L);
void stsl_open_smqtt(lua_State *L);
void stsl_open_sealed(lua_State *L);
void stsl_open_file(lua_State *L);

/* The main Lua thread, where every callback from the loop runs. */
lua_State *stsl_main(void);

/* Calls the function below `nargs` arguments on top of L's stack in protected
 * mode. On error, logs the message with a traceback, names it as coming from
 * `what`, counts it and returns 0 (the stack then holds nothing of the call);
 * on success returns 1 with `nresults` results pushed. */
int stsl_pcall(lua_State *L, int nargs, int nresults, const char *what);

/* Waiting for an operation to complete. A wait is a future: C code makes one,
 * keeps its reference, and later resolves it with values; a script's call
 * "waits" on it. From the main chunk that runs the loop until it is resolved
 * or the timeout passes; inside an sts.task it yields to the loop; inside a
 * handler it is an error that says to use a task.
 *
 * stsl_future_new pushes a new future. stsl_future_resolve pops `n` values and
 * resolves the future with them. stsl_future_await must be the last call of a
 * C function: `return stsl_future_await(L, idx, timeout);` returns the
 * future's values, or nil and "timeout". */
void stsl_future_new(lua_State *L);
void stsl_future_resolve(lua_State *L, int idx, int n);
int stsl_future_await(lua_State *L, int idx, double timeout);

/* Options tables: every key must be known; typos are errors. */
void stsl_check_options(lua_State *L, int idx, const char *what, const char *const known[]);
const char *stsl_opt_string(lua_State *L, int idx, const char *key, const char *def);
lua_Number stsl_opt_number(lua_State *L, int idx, const char *key, lua_Number def);
lua_Integer stsl_opt_integer(lua_State *L, int idx, const char *key, lua_Integer def);
int stsl_opt_boolean(lua_State *L, int idx, const char *key, int def);
/* Pushes t[key] if it is a table (returns 1), nothing if absent (returns 0). */
int stsl_opt_table(lua_State *L, int idx, const char *key);

/* MQTT clients, for the layers that publish through one. The client's
 * userdata must be kept reachable (a user value) by whoever holds the
 * pointer; stsl_client_mqtt gives NULL once the client is closed. */
struct lclient;
struct sts_mqtt;
struct lclient *stsl_check_client(lua_State *L, int idx);
struct sts_mqtt *stsl_client_mqtt(const struct lclient *c);
/* Registers fn(obj, finalizing) to run when the client at index `client`
 * closes, before its connection goes; fn NULL forgets obj. finalizing is true
 * when the client is being collected: fn must then run no script code. */
void stsl_client_on_close(lua_State *L, int client, int obj, lua_CFunction fn);

/* Reads a key given as an sts.key (private keys only), a key text or a file
 * path. Returns 1, or 0 with an error message pushed (naming `what`). */
int stsl_check_key(lua_State *L, int idx, uint8_t key[32], enum sts_key_kind kind, const char *what);
/* The private key of the sts.key at idx, NULL if idx holds no sts.key; a closed one is an error naming `what`. */
const uint8_t *stsl_test_key(lua_State *L, int idx, const char *what);

/* A userdata that C code holds on to (a client, a session, a listener) is
 * anchored in the registry while open, so that a script need not keep a
 * reference for it to keep working. Releasing it takes effect at once for
 * stsl_anchor_push, but the reference itself goes in the loop's closing
 * phase: a callback still on the stack never finds its object collected. */
struct stsl_anchor {
    int ref;                  /* LUA_NOREF once released */
    int held;                 /* the reference still to drop */
    struct sts_closing release;
};
void stsl_anchor_init(struct stsl_anchor *a);
void stsl_anchor_set(lua_State *L, int idx, struct stsl_anchor *a);
/* Pushes the anchored userdata and returns 1; 0 (nothing pushed) once released. */
int stsl_anchor_push(lua_State *L, const struct stsl_anchor *a);
void stsl_anchor_release(struct stsl_anchor *a);

/* A userdata's first user value is a table of the Lua values it holds:
 * stsl_get_uv pushes field `name` of it (returning its type), stsl_set_uv
 * sets the field to the value on top of the stack (popped). */
int stsl_get_uv(lua_State *L, int idx, const char *name);
void stsl_set_uv(lua_State *L, int idx, const char *name);
/* t[name] = n for the table on top of the stack (stats tables). */
void stsl_set_count(lua_State *L, const char *name, uint64_t n);

/* Runs fn when the Lua state closes: a userdata with fn as its __gc, kept in
 * the registry under key. Lua finalizes in the reverse order of creation, so
 * the one made first runs last. */
void stsl_at_lua_close(lua_State *L, const void *key, lua_CFunction fn);

/* Expected failures: pushes nil and a formatted message, returns 2. */
int stsl_fail(lua_State *L, const char *fmt, ...);

/* Registers metatable `name` with the metamethods `meta` and, as __index, a
 * table of `methods`. If meta has an __index function, it serves what is not
 * a method: property(self, key). */
void stsl_new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods);
/* A method's self (argument 1), checked as luaL_checkudata(L, 1, name) but
 * against the metatable stsl_new_class gives each method as its upvalue: a
 * pointer compare, not a registry lookup by name. Methods only (not
 * metamethods, which have no upvalue and take the slower check). */
void *stsl_check_self(lua_State *L, const char *name);

#endif
