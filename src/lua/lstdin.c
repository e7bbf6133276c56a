/* Standard input as lines, on the event loop, so a shell reads commands
 * while messages keep arriving.
 *
 *   sts.stdin(function(line) ... end)   -- line without its newline; nil at EOF;
 *                                       -- true if the line is edited (a terminal)
 *   sts.stdin(nil)                      -- stop reading
 *   sts.print_async(text)               -- a line of output that spares the prompt
 *
 * On a terminal (stdin and stdout both), libedit edits the line: the "> "
 * prompt, history, the usual keys; through its callback interface it reads
 * one character per readiness and never blocks the loop. print_async then
 * clears the line being typed, prints, and draws the prompt and the typed
 * text again. Anywhere else (a pipe, a file) the lines are read plainly,
 * with no prompt; a line longer than MAX_LINE is dropped with a warning, as
 * a truncated command could do the wrong thing. At EOF the reader removes
 * itself, then calls the handler with nil. */
#include "lua/internal.h"
#include "loop/loop.h"
#include "util/log.h"

#include <editline/readline.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define PROMPT "> "
#define MAX_LINE 16384

struct stdin_reader {
    struct sts_source source;
    int handler_ref;  /* LUA_NOREF while not reading */
    int editing;      /* libedit owns the terminal */
    int between_lines;/* an edited line is done; the next prompt is not drawn yet */
    int skipping;     /* dropping the rest of an overlong line */
    size_t len;
    char buf[MAX_LINE];
};

/* There is one stdin, so one reader. */
static struct stdin_reader reader = { .handler_ref = LUA_NOREF };

/* --- the terminal ---------------------------------------------------------- */

/* The terminal's modes before libedit changed them, restored on every way
 * out: stop, exit, and the signals that end the process. */
static struct termios saved_modes;
static int modes_saved;

static void restore_modes(void)
{
    if (modes_saved) tcsetattr(STDIN_FILENO, TCSANOW, &saved_modes);
}

static void die_restoring(int sig)
{
    restore_modes(); /* tcsetattr is async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void guard_terminal(void)
{
    static const int fatal[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
    static int guarded;

    if (tcgetattr(STDIN_FILENO, &saved_modes) == 0) modes_saved = 1;
    if (guarded++) return;
    atexit(restore_modes);
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) signal(fatal[i], die_restoring);
}

/* --- delivering lines ----------------------------------------------------- */

static int reading(void)
{
    return reader.handler_ref != LUA_NOREF;
}

/* Calls the handler with line (len bytes), or with nil if line is NULL. */
static void deliver(const char *line, size_t len)
{
    lua_State *L = stsl_main();
    lua_rawgeti(L, LUA_REGISTRYINDEX, reader.handler_ref);
    if (line) lua_pushlstring(L, line, len);
    else lua_pushnil(L);
    stsl_pcall(L, 1, 0, "stdin handler");
}

static void stop_reading(lua_State *L)
{
    if (!reading()) return;
    sts_loop_remove_source(sts_loop_default(), &reader.source);
    if (reader.editing) {
        rl_callback_handler_remove();
        restore_modes();
    }
    luaL_unref(L, LUA_REGISTRYINDEX, reader.handler_ref);
    reader.handler_ref = LUA_NOREF;
}

/* Stops reading, then tells the handler: it may start reading again. */
static void deliver_eof(void)
{
    lua_State *L = stsl_main();
    lua_rawgeti(L, LUA_REGISTRYINDEX, reader.handler_ref);
    stop_reading(L);
    if (reader.editing) fputc('\n', stdout); /* leave the prompt's line */
    lua_pushnil(L);
    stsl_pcall(L, 1, 0, "stdin handler");
}

/* --- a terminal: libedit ---------------------------------------------------- */

static void on_edited_line(char *line)
{
    if (line == NULL) {
        deliver_eof();
        return;
    }
    if (line[0] != '\0') add_history(line);
    reader.between_lines = 1;
    deliver(line, strlen(line));
    reader.between_lines = 0;
    free(line);
    /* libedit leaves character-at-a-time mode when it completes a line;
     * installing the handler again re-enters it with an empty line and a
     * fresh prompt (GNU readline does this by itself). */
    if (reading()) rl_callback_handler_install(PROMPT, on_edited_line);
}

static void read_edited(short revents)
{
    if (revents & POLLIN) rl_callback_read_char();
    else deliver_eof(); /* hung up */
}

/* --- a pipe or a file: plain reads --------------------------------------------- */

/* Hands every complete line in the buffer to the handler and keeps the rest. */
static void split_lines(void)
{
    size_t start = 0;
    char *nl;

    while (reading() && (nl = memchr(reader.buf + start, '\n', reader.len - start))) {
        size_t end = (size_t)(nl - reader.buf), n = end - start;
        if (n > 0 && reader.buf[end - 1] == '\r') n--;
        if (!reader.skipping) deliver(reader.buf + start, n);
        reader.skipping = 0;
        start = end + 1;
    }
    if (!reading()) return;
    reader.len -= start;
    memmove(reader.buf, reader.buf + start, reader.len);
    if (reader.len == sizeof reader.buf) {
        if (!reader.skipping) sts_warn("stdin: line longer than %d bytes ignored", MAX_LINE);
        reader.skipping = 1;
        reader.len = 0;
    }
}

static void read_plain(short revents)
{
    ssize_t n = read(STDIN_FILENO, reader.buf + reader.len, sizeof reader.buf - reader.len);
    (void)revents;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) sts_warn("stdin: %s", strerror(errno));
    if (n > 0) {
        reader.len += (size_t)n;
        split_lines();
        return;
    }
    /* End of input: a last line without a newline still counts. */
    if (reader.len > 0 && !reader.skipping) deliver(reader.buf, reader.len);
    reader.len = 0;
    reader.skipping = 0;
    if (reading()) deliver_eof();
}

/* --- the loop source ----------------------------------------------------------- */

static int stdin_prepare(struct sts_source *src, short *events)
{
    (void)src;
    *events = POLLIN;
    return STDIN_FILENO;
}

static void stdin_dispatch(struct sts_source *src, short revents)
{
    (void)src;
    if (reader.editing) read_edited(revents);
    else read_plain(revents);
}

static void start_reading(lua_State *L)
{
    reader.handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    reader.source.prepare = stdin_prepare;
    reader.source.dispatch = stdin_dispatch;
    reader.source.idle = NULL;
    reader.len = 0;
    reader.skipping = 0;
    reader.editing = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (reader.editing) {
        guard_terminal();
        rl_callback_handler_install(PROMPT, on_edited_line);
    }
    sts_loop_add_source(sts_loop_default(), &reader.source);
}

static int l_stdin(lua_State *L)
{
    if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    if (lua_isnil(L, 1)) {
        stop_reading(L);
    } else if (reading()) {
        /* A new handler for the same reader: the typed line is kept. */
        luaL_unref(L, LUA_REGISTRYINDEX, reader.handler_ref);
        reader.handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        start_reading(L);
    }
    lua_pushboolean(L, reading() && reader.editing);
    return 1;
}

static int l_print_async(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    int redraw = reading() && reader.editing && !reader.between_lines;

    if (redraw) fputs("\r\033[K", stdout); /* the prompt and the typed text go */
    fwrite(text, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    if (redraw) rl_forced_update_display();
    return 0;
}

void stsl_open_stdin(lua_State *L)
{
    lua_pushcfunction(L, l_stdin);
    lua_setfield(L, -2, "stdin");
    lua_pushcfunction(L, l_print_async);
    lua_setfield(L, -2, "print_async");
}
