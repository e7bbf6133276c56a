#include "loop/signals.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

static const int supported[] = { SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2 };
#define NSUPPORTED (sizeof supported / sizeof supported[0])

struct watcher {
    sts_signal_fn fn;            /* NULL while not watched */
    void *ud;
    struct sigaction previous;   /* restored by the unwatch */
};

static struct watcher watchers[NSUPPORTED];
/* Set by the handler when the pipe is full: that byte is lost, the flag is not. */
static volatile sig_atomic_t missed[NSUPPORTED];

/* Made at the first watch and kept for the process's lifetime: a handler may
 * run at any moment, so it must never find the write end closed. */
static int pipe_fds[2] = { -1, -1 };
static struct sts_source source;
static struct sts_loop *source_loop; /* the loop the source is on, while any signal is watched */
static size_t nwatched;

static int slot_of(int signo)
{
    for (size_t i = 0; i < NSUPPORTED; i++)
        if (supported[i] == signo) return (int)i;
    return -1;
}

int sts_signal_supported(int signo)
{
    return slot_of(signo) >= 0;
}

int sts_signal_watched(int signo)
{
    int slot = slot_of(signo);
    return slot >= 0 && watchers[slot].fn != NULL;
}

/* --- the handler: async-signal-safe, nothing but a byte -------------------- */

static void on_signal(int signo)
{
    int saved = errno;
    unsigned char byte = (unsigned char)signo;

    /* A full pipe wakes the loop already; the flag names this signal instead. */
    if (write(pipe_fds[1], &byte, 1) != 1) missed[slot_of(signo)] = 1;
    errno = saved;
}

/* --- the loop source --------------------------------------------------------- */

/* The watched slots that arrived, each once, in the order they first came. */
struct arrivals {
    int slots[NSUPPORTED];
    size_t n;
};

static void note_arrival(struct arrivals *a, int slot)
{
    if (slot < 0) return;
    for (size_t i = 0; i < a->n; i++)
        if (a->slots[i] == slot) return;
    a->slots[a->n++] = slot;
}

static void read_arrivals(struct arrivals *a)
{
    unsigned char buf[256];

    for (;;) {
        ssize_t got = read(pipe_fds[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break; /* EAGAIN: empty */
        for (ssize_t i = 0; i < got; i++) note_arrival(a, slot_of(buf[i]));
    }
    /* Looked at once the pipe is empty: a write failing from now on finds it
     * full again, and that wakes the next turn, which sees the flag. */
    for (size_t i = 0; i < NSUPPORTED; i++) {
        if (!missed[i]) continue;
        missed[i] = 0;
        note_arrival(a, (int)i);
    }
}

static int pipe_prepare(struct sts_source *src, short *events)
{
    (void)src;
    *events = POLLIN;
    return pipe_fds[0];
}

static void pipe_dispatch(struct sts_source *src, short revents)
{
    struct arrivals a = { .n = 0 };

    (void)src;
    (void)revents;
    read_arrivals(&a);
    for (size_t i = 0; i < a.n; i++) {
        struct watcher *w = &watchers[a.slots[i]];
        /* An earlier call of this turn may have unwatched it. */
        if (w->fn) w->fn(supported[a.slots[i]], w->ud);
    }
}

/* --- watching ------------------------------------------------------------------ */

static int open_pipe(void)
{
    if (pipe_fds[0] >= 0) return 0;
    return pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) == 0 ? 0 : STS_ERR_IO;
}

static int install_handler(int signo, struct sigaction *previous)
{
    /* SA_RESTART: a signal must not make the I/O of unrelated code fail with
     * EINTR; poll() still returns early, and finds the pipe readable. */
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    return sigaction(signo, &sa, previous) == 0 ? 0 : STS_ERR_IO;
}

int sts_signal_watch(struct sts_loop *loop, int signo, sts_signal_fn fn, void *ud)
{
    int slot = slot_of(signo);
    if (slot < 0 || fn == NULL || (source_loop && source_loop != loop)) return STS_ERR_INVALID;
    struct watcher *w = &watchers[slot];
    if (w->fn == NULL) {
        /* Only the first watch saves the disposition: a second would save our own handler. */
        int rc = open_pipe();
        if (rc == 0) rc = install_handler(signo, &w->previous);
        if (rc != 0) return rc;
        if (nwatched++ == 0) {
            source = (struct sts_source){ .prepare = pipe_prepare, .dispatch = pipe_dispatch };
            sts_loop_add_source(loop, &source);
            source_loop = loop;
        }
    }
    w->fn = fn;
    w->ud = ud;
    return 0;
}

void sts_signal_unwatch(int signo)
{
    int slot = slot_of(signo);
    if (slot < 0 || !watchers[slot].fn) return;
    struct watcher *w = &watchers[slot];
    /* Cannot fail: signo is valid and the saved action came from sigaction. */
    (void)sigaction(signo, &w->previous, NULL);
    w->fn = NULL;
    w->ud = NULL;
    missed[slot] = 0;
    if (--nwatched == 0) {
        sts_loop_remove_source(source_loop, &source);
        source_loop = NULL;
    }
}
