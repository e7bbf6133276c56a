/* luaopen_sts: the `sts` module, assembled from the binding files. The same
 * code is linked into the sts-lua host and built as sts.so for plain lua5.4. */
#include "lua/internal.h"

int luaopen_sts(lua_State *L);

int luaopen_sts(lua_State *L)
{
    lua_newtable(L);
    lua_pushliteral(L, STS_VERSION_STRING);
    lua_setfield(L, -2, "version");
    stsl_open_log(L);
    stsl_open_loop(L);
    stsl_open_mqtt(L);
    stsl_open_crypto(L);
    stsl_open_key(L);
    stsl_open_session(L);
    stsl_open_noise(L);
    stsl_open_config(L);
    stsl_open_legacy(L);
    stsl_open_stdin(L);
    stsl_open_dh(L);
    stsl_open_fernet(L);
    stsl_open_group(L);
    stsl_open_signal(L);
    stsl_open_smqtt(L);
    stsl_open_sealed(L);
    stsl_open_file(L);
    return 1;
}
