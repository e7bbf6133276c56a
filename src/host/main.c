/* sts-lua: a Lua 5.4 interpreter with the sts module built in.
 *
 * It takes the command line of the `lua` interpreter (script and `arg`, -e,
 * -l, -i, -v, -, --), so `sts-lua /usr/bin/busted` runs specs inside the host;
 * with no arguments it opens the Secure Telemetry Shell. */
#include "lua/internal.h"

#include <lualib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int luaopen_sts(lua_State *L);

static const char *progname = "sts-lua";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [options] [script [args]]\n"
            "A Lua 5.4 interpreter with the sts module (MQTT, end-to-end encrypted\n"
            "sessions, groups) built in. With no arguments, opens the Secure Telemetry Shell.\n"
            "\n"
            "Options (as the lua interpreter's):\n"
            "  -e stat    execute the string 'stat'\n"
            "  -i         enter interactive mode after running 'script'\n"
            "  -l mod     require library 'mod' into global 'mod'\n"
            "  -l g=mod   require library 'mod' into global 'g'\n"
            "  -v         show version information\n"
            "  -E         ignore the environment variables LUA_INIT, LUA_PATH and LUA_CPATH\n"
            "  -W         turn Lua warnings on\n"
            "  --         stop handling options\n"
            "  -          stop handling options and run stdin as a script\n"
            "  --shell    open the Secure Telemetry Shell (commands from stdin; see sts-lua-shell(1))\n"
            "  --help     show this help and exit\n"
            "  --version  show version information and exit\n"
            "Options run in order: -e and -l before the script, which gets the\n"
            "arguments after it in the global 'arg' (arg[0] the script).\n"
            "\n"
            "Environment:\n"
            "  STS_LOG       log level: debug, info (the default; the shell's is warn),\n"
            "                warn, error or off; log lines go to stderr\n"
            "  LUA_INIT_5_4, LUA_INIT\n"
            "                Lua code, or @file, run before the options and the script\n"
            "  LUA_PATH_5_4, LUA_PATH, LUA_CPATH_5_4, LUA_CPATH\n"
            "                the module search paths, as for lua (';;' is the default);\n"
            "                sts's own modules are always found first, in %s\n"
            "                relative to this executable\n"
            "  JOURNAL_STREAM\n"
            "                set by systemd: while stderr is that stream, log lines are\n"
            "                '<N>message' (syslog priority, journald adds the time)\n"
            "  NOTIFY_SOCKET set by systemd (Type=notify): READY=1 when the script first\n"
            "                calls sts.run(), STOPPING=1 when the clean shutdown begins\n"
            "  STS_LUA       for sts.test: the sts-lua that specs spawn (default: this one)\n"
            "  STS_BUILD_DIR for sts.test: the build tree holding evil_relay\n"
            "\n"
            "Exit status: 0 on success (or what the script gives os.exit), also on\n"
            "SIGTERM or SIGINT while the loop runs (the clean shutdown); 1 when a\n"
            "script, -e, -l or LUA_INIT raises an error (message and traceback on\n"
            "stderr) or an option is not understood; 127 when libmosquitto or\n"
            "libcrypto, loaded when first needed, cannot be loaded.\n"
            "\n"
            "Commands installed with it: sts-keygen, sts-keyserver, sts-group-chat,\n"
            "sts-lab-client, sts-lab-responder (see sts-lua-commands(1)).\n"
            "Man pages: sts-lua(1), sts-lua-shell(1), sts-lua-api(7) (the Lua API);\n"
            "e.g. 'man sts-lua'.\n",
            progname, STS_REL_LUA_DIR);
}

static void print_version(void)
{
    printf("sts-lua %s (%s)\n", STS_VERSION_STRING, LUA_RELEASE);
}

/* --- running chunks with a traceback ------------------------------------- */

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}

static int docall(lua_State *L, int nargs, int nres)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int status = lua_pcall(L, nargs, nres, base);
    lua_remove(L, base);
    return status;
}

static int dochunk(lua_State *L, int status)
{
    if (status == LUA_OK) status = docall(L, 0, 0);
    return report(L, status);
}

static int dostring(lua_State *L, const char *s, const char *name)
{
    return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l mod or -l g=mod: global g (default mod) = require(mod) */
static int dolibrary(lua_State *L, char *spec)
{
    char *eq = strchr(spec, '=');
    const char *global = spec, *mod = spec;
    if (eq) {
        *eq = '\0';
        mod = eq + 1;
    }
    lua_getglobal(L, "require");
    lua_pushstring(L, mod);
    int status = docall(L, 1, 1);
    if (status == LUA_OK) lua_setglobal(L, global);
    return report(L, status);
}

static int pushargs(lua_State *L)
{
    if (lua_getglobal(L, "arg") != LUA_TTABLE) luaL_error(L, "'arg' is not a table");
    int n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1);
    return n;
}

static int doscript(lua_State *L, const char *fname)
{
    if (strcmp(fname, "-") == 0) fname = NULL; /* stdin */
    int status = luaL_loadfile(L, fname);
    if (status == LUA_OK) {
        int n = pushargs(L);
        status = docall(L, n, 0);
    }
    return report(L, status);
}

/* --- the interactive loop (-i) ---------------------------------------------- */

static int incomplete(lua_State *L, int status)
{
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    return status == LUA_ERRSYNTAX && len >= 5 && strcmp(msg + len - 5, "<eof>") == 0;
}

static void print_results(lua_State *L)
{
    int n = lua_gettop(L);
    if (n == 0) return;
    lua_getglobal(L, "print");
    lua_insert(L, 1);
    if (lua_pcall(L, n, 0, 0) != LUA_OK)
        fprintf(stderr, "%s: error calling 'print' (%s)\n", progname, lua_tostring(L, -1));
}

static void repl(lua_State *L)
{
    char line[4096];
    int interactive = isatty(STDIN_FILENO);

    lua_settop(L, 0); /* holds the text of an unfinished statement, if any */
    for (;;) {
        if (interactive) {
            fputs(lua_gettop(L) ? ">> " : "> ", stdout);
            fflush(stdout);
        }
        if (!fgets(line, sizeof line, stdin)) {
            if (interactive) fputc('\n', stdout);
            return;
        }
        lua_pushstring(L, line);
        lua_concat(L, lua_gettop(L));
        const char *code = lua_tostring(L, 1);
        /* An expression prints its value, as in lua's own REPL. */
        lua_pushfstring(L, "return %s", code);
        int status = luaL_loadbuffer(L, lua_tostring(L, 2), lua_rawlen(L, 2), "=stdin");
        lua_remove(L, 2);
        if (status != LUA_OK) {
            lua_pop(L, 1);
            status = luaL_loadbuffer(L, code, strlen(code), "=stdin");
        }
        if (incomplete(L, status)) {
            lua_pop(L, 1); /* keep the text, read more */
            continue;
        }
        lua_remove(L, 1);
        if (status == LUA_OK) status = docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK) print_results(L);
        else report(L, status);
        lua_settop(L, 0);
    }
}

/* --- start-up ------------------------------------------------------------------ */

/* The directory of this executable, from /proc/self/exe (symbolic links
 * resolved), into buf; NULL if it cannot be read. */
static const char *exe_dir(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0) return NULL;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash) return NULL;
    *slash = '\0';
    return buf;
}

/* package[field] = prefix .. ";" .. package[field], package at index pkg */
static void prepend_path(lua_State *L, int pkg, const char *field, const char *prefix)
{
    lua_getfield(L, pkg, field);
    lua_pushfstring(L, "%s;%s", prefix, lua_tostring(L, -1));
    lua_setfield(L, pkg, field);
    lua_pop(L, 1);
}

/* Puts the project's Lua modules first on package.path (and its C modules on
 * package.cpath), before what LUA_PATH and LUA_CPATH say: the source tree's
 * lua/ when running from the build tree, else the installed ones, found
 * relative to the executable so that any install prefix works. */
static void set_module_path(lua_State *L)
{
    char exe[PATH_MAX];
    const char *bin = exe_dir(exe, sizeof exe);
    lua_getglobal(L, "package");
    int pkg = lua_gettop(L);
    if (bin && strcmp(bin, STS_BUILD_DIR) == 0) {
        prepend_path(L, pkg, "path", STS_SOURCE_LUA_DIR "/?.lua;" STS_SOURCE_LUA_DIR "/?/init.lua");
    } else if (bin) {
        prepend_path(L, pkg, "path", lua_pushfstring(L, "%s/" STS_REL_LUA_DIR "/?.lua;%s/" STS_REL_LUA_DIR "/?/init.lua", bin, bin));
        prepend_path(L, pkg, "cpath", lua_pushfstring(L, "%s/" STS_REL_CMOD_DIR "/?.so", bin));
        lua_pop(L, 2);
    } else { /* no /proc: where the build was configured to install */
        prepend_path(L, pkg, "path", STS_INSTALL_LUA_DIR "/?.lua;" STS_INSTALL_LUA_DIR "/?/init.lua");
    }
    /* require "sts" finds the built-in module, never a stray sts.so. */
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_sts);
    lua_setfield(L, -2, "sts");
    lua_pop(L, 2);
}

static int handle_luainit(lua_State *L)
{
    const char *name = "=LUA_INIT_5_4";
    const char *init = getenv("LUA_INIT_5_4");
    if (!init) {
        name = "=LUA_INIT";
        init = getenv("LUA_INIT");
    }
    if (!init) return LUA_OK;
    if (init[0] == '@') return dochunk(L, luaL_loadfile(L, init + 1));
    return dostring(L, init, name);
}

/* arg[0] is the script, arg[1..] its arguments, arg[-1..] what came before. */
static void create_arg_table(lua_State *L, int argc, char **argv, int script)
{
    int narg = argc - (script + 1);
    lua_createtable(L, narg, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

struct options {
    int script;      /* index of the script in argv, or 0 */
    int interactive, version, shell, has_exec, no_env, warnings;
};

/* Checks the options; returns 0, or -1 for a bad option (reported). */
static int scan_options(int argc, char **argv, struct options *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            o->script = i;
            return 0;
        }
        if (strcmp(a, "--") == 0) {
            if (i + 1 < argc) o->script = i + 1;
            return 0;
        }
        if (strcmp(a, "-i") == 0) o->interactive = o->version = 1;
        else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) o->version = 1;
        else if (strcmp(a, "--shell") == 0) o->shell = 1;
        else if (strcmp(a, "-E") == 0) o->no_env = 1;
        else if (strcmp(a, "-W") == 0) o->warnings = 1;
        else if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
            if (++i >= argc) {
                fprintf(stderr, "%s: '%s' needs argument\n", progname, a);
                return -1;
            }
            o->has_exec = 1;
        } else if ((strncmp(a, "-e", 2) == 0 || strncmp(a, "-l", 2) == 0) && a[2]) {
            o->has_exec = 1;
        } else {
            fprintf(stderr, "%s: unrecognized option '%s'\n", progname, a);
            return -1;
        }
    }
    return 0;
}

static int run_exec_options(lua_State *L, char **argv, int stop)
{
    for (int i = 1; i < stop; i++) {
        char *a = argv[i];
        if (a[0] != '-' || (a[1] != 'e' && a[1] != 'l')) continue;
        char *value = a[2] ? a + 2 : argv[++i];
        int status = a[1] == 'e' ? dostring(L, value, "=(command line)") : dolibrary(L, value);
        if (status != LUA_OK) return status;
    }
    return LUA_OK;
}

static int open_shell(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "sts.shell");
    int status = docall(L, 1, 1);
    if (status != LUA_OK) return report(L, status);
    lua_getfield(L, -1, "main");
    lua_remove(L, -2);
    return report(L, docall(L, 0, 0));
}

static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    struct options o;

    if (argv[0] && argv[0][0]) progname = argv[0];
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (scan_options(argc, argv, &o) != 0) {
        usage(stderr);
        return 0;
    }
    if (o.no_env) { /* the package library then ignores LUA_PATH and LUA_CPATH */
        lua_pushboolean(L, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    }
    luaL_openlibs(L);
    set_module_path(L);
    if (o.warnings) lua_warning(L, "@on", 0);
    create_arg_table(L, argc, argv, o.script);
    lua_gc(L, LUA_GCGEN, 0, 0);
    if (o.version) print_version();
    if (!o.no_env && handle_luainit(L) != LUA_OK) return 0;
    if (run_exec_options(L, argv, o.script ? o.script : argc) != LUA_OK) return 0;
    if (o.script && doscript(L, argv[o.script]) != LUA_OK) return 0;
    if (o.shell || argc == 1) {
        if (open_shell(L) != LUA_OK) return 0;
    } else if (o.interactive) {
        repl(L);
    }
    lua_pushboolean(L, 1);
    return 1;
}

int main(int argc, char **argv)
{
    /* Line-buffered even into a file or pipe: a long-running script's output
     * should show up as it happens, not when a buffer fills. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "%s: cannot create state: not enough memory\n", argv[0]);
        return EXIT_FAILURE;
    }
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int ok = status == LUA_OK && lua_toboolean(L, -1);
    if (status != LUA_OK) report(L, status);
    lua_close(L);
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
