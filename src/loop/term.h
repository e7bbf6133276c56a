/* Standard input as lines, a source on the event loop, so a shell reads
 * commands while messages keep arriving.
 *
 * On a terminal (stdin and stdout both), libedit edits the line: the "> "
 * prompt, history, the usual keys; through its callback interface it reads
 * one character per readiness and never blocks the loop. The terminal's
 * modes are restored on every way out: stop, exit, and the signals that end
 * the process. libedit is loaded then, not at startup; where it cannot be,
 * a warning says so and the terminal's lines are read plainly. Anywhere
 * else (a pipe, a file) the lines are read plainly,
 * with no prompt; a line longer than STS_TERM_MAX_LINE is dropped with a
 * warning, as a truncated command could do the wrong thing.
 *
 * There is one stdin, so one reader. */
#ifndef STS_LOOP_TERM_H
#define STS_LOOP_TERM_H

#include "loop/loop.h"

#include <stddef.h>

#define STS_TERM_MAX_LINE 16384

/* Called with each line (len bytes, without its end of line; edited when
 * libedit read it), and once with line NULL at EOF, after the reader has
 * stopped: fn may start it again. fn may stop the reader. */
typedef void (*sts_term_line_fn)(const char *line, size_t len, int edited, void *ud);

/* Starts reading stdin on loop; the reader must be stopped. Returns 1 if
 * the lines are edited (a terminal), 0 if they are read plainly. */
int sts_term_start(struct sts_loop *loop, sts_term_line_fn fn, void *ud);
/* Stops reading (nothing if stopped) and gives the terminal its modes back;
 * a line being typed is lost. */
void sts_term_stop(void);
int sts_term_reading(void);
/* True while reading a terminal through libedit. */
int sts_term_editing(void);

/* Prints text and a newline on stdout. While a line is being edited, the
 * prompt and the typed text are cleared first and drawn again after, so the
 * output appears above the line being typed. */
void sts_term_print(const char *text, size_t len);

#endif
