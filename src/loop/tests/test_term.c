/* The stdin reader on a pipe: lines split at \n (and \r\n), a last line
 * without one, an overlong line dropped, EOF once, a reader stopped and
 * started again from its own callback. */
#include "loop/term.h"
#include "util/unit.h"

#include <stdlib.h>
#include <unistd.h>

static char lines[8][32];
static int nlines, eofs, restart_after;

static void on_line(const char *line, size_t len, int edited, void *ud)
{
    CHECK(!edited && ud == &nlines);
    if (line == NULL) {
        CHECK(!sts_term_reading());
        eofs++;
        return;
    }
    CHECK(len < sizeof lines[0] && nlines < 8);
    memcpy(lines[nlines], line, len);
    lines[nlines++][len] = '\0';
    if (nlines == restart_after) {
        sts_term_stop();
        CHECK(sts_term_start(sts_loop_default(), on_line, ud) == 0);
    }
}

/* Makes text stdin, as a pipe closed after it. */
static void feed(const char *text, size_t len)
{
    int fds[2];

    CHECK(pipe(fds) == 0);
    CHECK(write(fds[1], text, len) == (ssize_t)len);
    close(fds[1]);
    CHECK(dup2(fds[0], STDIN_FILENO) == STDIN_FILENO);
    close(fds[0]);
}

static void read_all(void)
{
    CHECK(sts_term_start(sts_loop_default(), on_line, &nlines) == 0);
    CHECK(sts_term_reading() && !sts_term_editing());
    for (int i = 0; i < 100 && eofs == 0; i++) sts_loop_once(sts_loop_default(), 1.0);
    CHECK(eofs == 1 && !sts_term_reading());
}

int main(void)
{
    size_t long_len = STS_TERM_MAX_LINE + 100;
    char *text = malloc(long_len + 64);
    size_t n = 0;

    n += (size_t)sprintf(text, "one\r\n\ntwo\n");
    memset(text + n, 'x', long_len);
    n += long_len;
    n += (size_t)sprintf(text + n, "\nthree\nlast");
    feed(text, n);
    read_all();
    CHECK(nlines == 5);
    CHECK(strcmp(lines[0], "one") == 0 && strcmp(lines[1], "") == 0 && strcmp(lines[2], "two") == 0);
    CHECK(strcmp(lines[3], "three") == 0 && strcmp(lines[4], "last") == 0);

    /* A stop drops what was read and not yet delivered; the new reader
     * reads on from there. */
    nlines = eofs = 0;
    restart_after = 1;
    feed("one\ntwo\n", 8);
    read_all();
    CHECK(nlines == 1 && strcmp(lines[0], "one") == 0);

    sts_term_stop(); /* stopped already: nothing */
    CHECK(!sts_term_reading());
    free(text);
    return unit_done();
}
