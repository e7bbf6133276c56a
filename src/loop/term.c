#include "loop/term.h"
#include "util/log.h"

#include <dlfcn.h>
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

static struct reader {
    struct sts_source source;
    struct sts_loop *loop;
    sts_term_line_fn fn; /* NULL while stopped */
    void *ud;
    int editing;         /* libedit owns the terminal */
    int between_lines;   /* an edited line is done; the next prompt is not drawn yet */
    int skipping;        /* dropping the rest of an overlong line */
    unsigned starts;     /* tells a reader from one started again by fn */
    size_t len;
    char buf[STS_TERM_MAX_LINE];
} reader;

int sts_term_reading(void)
{
    return reader.fn != NULL;
}

int sts_term_editing(void)
{
    return sts_term_reading() && reader.editing;
}

/* --- libedit, loaded on first use ------------------------------------------------ */

/* libedit, with the libtinfo, libbsd and libmd it brings, is a third of a
 * megabyte of every process that maps it, and only the shell on a terminal
 * uses it: it is loaded (by its soname, from the build) the first time a
 * terminal is read. The pointers take their types from the header. */
static struct editline {
    __typeof__(&rl_callback_handler_install) handler_install;
    __typeof__(&rl_callback_handler_remove) handler_remove;
    __typeof__(&rl_callback_read_char) read_char;
    __typeof__(&rl_forced_update_display) redisplay;
    __typeof__(&add_history) add_history;
} el;

static int resolve(void *lib, void *fn_ptr, const char *name)
{
    void *sym = dlsym(lib, name);
    if (sym == NULL) return 0;
    memcpy(fn_ptr, &sym, sizeof sym); /* ISO C has no object-to-function cast */
    return 1;
}

/* True when libedit is loaded; else warns once, and lines are read plainly. */
static int load_editline(void)
{
    static int tried, loaded;
    void *lib;

    if (tried++) return loaded;
    lib = dlopen(STS_LIBEDIT_SONAME, RTLD_NOW | RTLD_LOCAL);
    loaded = lib != NULL && resolve(lib, &el.handler_install, "rl_callback_handler_install") &&
             resolve(lib, &el.handler_remove, "rl_callback_handler_remove") &&
             resolve(lib, &el.read_char, "rl_callback_read_char") &&
             resolve(lib, &el.redisplay, "rl_forced_update_display") &&
             resolve(lib, &el.add_history, "add_history");
    if (!loaded) {
        sts_warn("terminal: no line editing (%s)", dlerror());
        if (lib != NULL) dlclose(lib);
    }
    return loaded;
}

/* --- the terminal's modes ----------------------------------------------------- */

/* The modes before libedit changed them. */
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

/* --- delivering lines ----------------------------------------------------------- */

static void deliver(const char *line, size_t len)
{
    reader.fn(line, len, reader.editing, reader.ud);
}

void sts_term_stop(void)
{
    if (!sts_term_reading()) return;
    sts_loop_remove_source(reader.loop, &reader.source);
    if (reader.editing) {
        el.handler_remove();
        restore_modes();
    }
    reader.fn = NULL;
}

/* Stops reading, then tells fn: it may start reading again. */
static void deliver_eof(void)
{
    sts_term_line_fn fn = reader.fn;
    void *ud = reader.ud;

    sts_term_stop();
    if (reader.editing) fputc('\n', stdout); /* leave the prompt's line */
    fn(NULL, 0, reader.editing, ud);
}

/* --- a terminal: libedit -------------------------------------------------------- */

static void on_edited_line(char *line)
{
    if (line == NULL) {
        deliver_eof();
        return;
    }
    if (line[0] != '\0') el.add_history(line);
    reader.between_lines = 1;
    deliver(line, strlen(line));
    reader.between_lines = 0;
    free(line);
    /* libedit leaves character-at-a-time mode when it completes a line;
     * installing the handler again re-enters it with an empty line and a
     * fresh prompt (GNU readline does this by itself). */
    if (sts_term_reading()) el.handler_install(PROMPT, on_edited_line);
}

static void read_edited(short revents)
{
    if (revents & POLLIN) el.read_char();
    else deliver_eof(); /* hung up */
}

/* --- a pipe or a file: plain reads ---------------------------------------------- */

/* False once fn has stopped the reader, even if it started it again: the
 * new reader has a buffer of its own. */
static int still_reading(unsigned starts)
{
    return sts_term_reading() && reader.starts == starts;
}

/* Hands every complete line in the buffer to fn and keeps the rest. */
static void split_lines(void)
{
    unsigned starts = reader.starts;
    size_t start = 0;
    char *nl;

    while (still_reading(starts) && (nl = memchr(reader.buf + start, '\n', reader.len - start))) {
        size_t end = (size_t)(nl - reader.buf), n = end - start;
        if (n > 0 && reader.buf[end - 1] == '\r') n--;
        if (!reader.skipping) deliver(reader.buf + start, n);
        reader.skipping = 0;
        start = end + 1;
    }
    if (!still_reading(starts)) return;
    reader.len -= start;
    memmove(reader.buf, reader.buf + start, reader.len);
    if (reader.len == sizeof reader.buf) {
        if (!reader.skipping) sts_warn("stdin: line longer than %d bytes ignored", STS_TERM_MAX_LINE);
        reader.skipping = 1;
        reader.len = 0;
    }
}

static void read_plain(void)
{
    unsigned starts = reader.starts;
    ssize_t n = read(STDIN_FILENO, reader.buf + reader.len, sizeof reader.buf - reader.len);

    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) sts_warn("stdin: %s", strerror(errno));
    if (n > 0) {
        reader.len += (size_t)n;
        split_lines();
        return;
    }
    /* End of input: a last line without a newline still counts. */
    if (reader.len > 0 && !reader.skipping) deliver(reader.buf, reader.len);
    if (!still_reading(starts)) return; /* a new reader finds the EOF itself */
    reader.len = 0;
    reader.skipping = 0;
    deliver_eof();
}

/* --- the loop source ------------------------------------------------------------ */

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
    else read_plain();
}

int sts_term_start(struct sts_loop *loop, sts_term_line_fn fn, void *ud)
{
    reader.source = (struct sts_source){ .prepare = stdin_prepare, .dispatch = stdin_dispatch };
    reader.loop = loop;
    reader.fn = fn;
    reader.ud = ud;
    reader.starts++;
    reader.len = 0;
    reader.skipping = 0;
    reader.editing = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) && load_editline();
    if (reader.editing) {
        guard_terminal();
        el.handler_install(PROMPT, on_edited_line);
    }
    sts_loop_add_source(loop, &reader.source);
    return reader.editing;
}

void sts_term_print(const char *text, size_t len)
{
    int redraw = sts_term_editing() && !reader.between_lines;

    if (redraw) fputs("\r\033[K", stdout); /* the prompt and the typed text go */
    fwrite(text, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    if (redraw) el.redisplay();
}
