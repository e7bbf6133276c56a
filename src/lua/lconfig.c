/* sts.config: `key = value` files (src/proto/config.h) for Lua.
 *
 *   local cfg, lines = sts.config.load("configs/nosec")
 *   local cfg, lines = sts.config.parse(text, "name used in messages")
 *
 * cfg maps each key as written to its value, a string; lines maps each key
 * to the line it is on, for messages about a value (the shell's key rules in
 * lua/sts/shell/config.lua, an identity file that cannot be read). On a
 * syntax error both return nil and one line naming the file, the line and
 * the key: "configs/x:7: key 'port': expected '=' after the key, got '1'". */
#include "lua/internal.h"
#include "proto/config.h"

#include <errno.h>
#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A config holds at most 256 lines of 1024 bytes; comments and blank lines
 * aside, anything much larger is not a config file. */
#define MAX_FILE (1024 * 1024)

static void push_entries(lua_State *L, const struct sts_config *cfg)
{
    lua_createtable(L, 0, (int)cfg->count);
    lua_createtable(L, 0, (int)cfg->count);
    for (size_t i = 0; i < cfg->count; i++) {
        lua_pushstring(L, cfg->entries[i].value);
        lua_setfield(L, -3, cfg->entries[i].key);
        lua_pushinteger(L, cfg->entries[i].line);
        lua_setfield(L, -2, cfg->entries[i].key);
    }
}

/* Parses text; pushes (values, lines) or (nil, message). */
static int push_config(lua_State *L, const char *text, size_t len, const char *name)
{
    struct sts_config *cfg = malloc(sizeof *cfg); /* 6 KiB: not for the C stack */
    char err[512];
    int rc;

    if (cfg == NULL) return luaL_error(L, "out of memory");
    rc = sts_config_parse(cfg, name, text, len, err, sizeof err);
    if (rc == 0) push_entries(L, cfg);
    sts_config_free(cfg);
    free(cfg);
    return rc == 0 ? 2 : stsl_fail(L, "%s", err);
}

static int l_parse(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "config");
    return push_config(L, text, len, name);
}

/* Reads a whole file of at most MAX_FILE bytes into a malloc'd buffer. */
static char *read_file(FILE *f, size_t *len, const char **why)
{
    char *buf = malloc(MAX_FILE + 1);

    *why = "out of memory";
    if (buf == NULL) return NULL;
    *len = fread(buf, 1, MAX_FILE + 1, f);
    *why = ferror(f) ? strerror(errno) : "larger than 1 MiB: not a config file";
    if (!ferror(f) && *len <= MAX_FILE) return buf;
    mbedtls_platform_zeroize(buf, MAX_FILE + 1);
    free(buf);
    return NULL;
}

static int l_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *why;
    size_t len = 0;
    FILE *f = fopen(path, "rb");

    if (f == NULL) return stsl_fail(L, "%s: cannot open: %s", path, strerror(errno));
    char *text = read_file(f, &len, &why);
    fclose(f);
    if (text == NULL) return stsl_fail(L, "%s: cannot read: %s", path, why);
    int n = push_config(L, text, len, path);
    mbedtls_platform_zeroize(text, len); /* it holds the password */
    free(text);
    return n;
}

void stsl_open_config(lua_State *L)
{
    static const luaL_Reg functions[] = {
        { "load", l_load }, { "parse", l_parse }, { NULL, NULL },
    };
    luaL_newlib(L, functions);
    lua_setfield(L, -2, "config");
}
