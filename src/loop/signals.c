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
    sts_signal_fn fn;            /* the watch, NULL while none */
    void *ud;
    sts_signal_fn dflt;          /* the default, NULL while none */
    void *dflt_ud;
    struct sigaction previous;   /* restored once neither is set */
};

static struct watcher watchers[NSUPPORTED];
/* Set by the handler when the pipe is full: that byte is lost, the flag is not. */
static volatile sig_atomic_t missed[NSUPPORTED];
/* What the handler may read: a watch is set; defaults serve. */
static volatile sig_atomic_t watched[NSUPPORTED];
static volatile sig_atomic_t serving;

/* Made at the first watch and kept for the process's lifetime: a handler may
 * run at any moment, so it must never find the write end closed. */
static int pipe_fds[2] = { -1, -1 };
static struct sts_source source;
static struct sts_loop *source_loop; /* the loop the source is on, while any signal is watched */

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
    int slot = slot_of(signo);
    unsigned char byte = (unsigned char)signo;

    if (!watched[slot] && !serving) {
        /* Only a default, off duty: the signal does what it did before us
         * (SIG_DFL, as defaults are set over nothing else). */
        (void)sigaction(signo, &watchers[slot].previous, NULL);
        (void)raise(signo);
    } else if (write(pipe_fds[1], &byte, 1) != 1) {
        /* A full pipe wakes the loop already; the flag names this signal instead. */
        missed[slot] = 1;
    }
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
        else if (w->dflt) w->dflt(supported[a.slots[i]], w->dflt_ud);
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

static int active(const struct watcher *w)
{
    return w->fn || w->dflt;
}

/* The pipe's source is on the loop while any signal is watched or has a
 * default, and keeps the loop running only while one is watched. */
static void settle_source(struct sts_loop *loop)
{
    size_t nactive = 0, nwatches = 0;
    for (size_t i = 0; i < NSUPPORTED; i++) {
        nactive += active(&watchers[i]);
        nwatches += watchers[i].fn != NULL;
    }
    if (nactive && !source_loop) {
        source = (struct sts_source){ .prepare = pipe_prepare, .dispatch = pipe_dispatch };
        sts_loop_add_source(loop, &source);
        source_loop = loop;
    } else if (!nactive && source_loop) {
        sts_loop_remove_source(source_loop, &source);
        source_loop = NULL;
    }
    if (source_loop) sts_loop_source_weak(source_loop, &source, nwatches == 0);
}

/* Our handler in place of the disposition, saved to restore: only the first
 * of a watch and a default saves it (a second would save our own handler). */
static int take_over(int slot)
{
    struct watcher *w = &watchers[slot];
    if (active(w)) return 0;
    int rc = open_pipe();
    return rc == 0 ? install_handler(supported[slot], &w->previous) : rc;
}

static void give_back(int slot)
{
    struct watcher *w = &watchers[slot];
    if (active(w)) return;
    /* Cannot fail: signo is valid and the saved action came from sigaction. */
    (void)sigaction(supported[slot], &w->previous, NULL);
    missed[slot] = 0;
}

static int check_watch(struct sts_loop *loop, int signo)
{
    int slot = slot_of(signo);
    return slot < 0 || (source_loop && source_loop != loop) ? -1 : slot;
}

int sts_signal_watch(struct sts_loop *loop, int signo, sts_signal_fn fn, void *ud)
{
    int slot = check_watch(loop, signo);
    if (slot < 0 || fn == NULL) return STS_ERR_INVALID;
    int rc = take_over(slot);
    if (rc != 0) return rc;
    watchers[slot].fn = fn;
    watchers[slot].ud = ud;
    watched[slot] = 1;
    settle_source(loop);
    return 0;
}

void sts_signal_unwatch(int signo)
{
    int slot = slot_of(signo);
    if (slot < 0 || !watchers[slot].fn) return;
    watchers[slot].fn = NULL;
    watchers[slot].ud = NULL;
    watched[slot] = 0;
    give_back(slot);
    settle_source(source_loop);
}

static int is_sig_dfl(const struct sigaction *sa)
{
    return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == SIG_DFL;
}

int sts_signal_default(struct sts_loop *loop, int signo, sts_signal_fn fn, void *ud)
{
    int slot = check_watch(loop, signo);
    if (slot < 0) return STS_ERR_INVALID;
    struct watcher *w = &watchers[slot];
    if (fn == NULL) {
        if (!w->dflt) return 0;
        w->dflt = NULL;
        w->dflt_ud = NULL;
        give_back(slot);
        settle_source(source_loop);
        return 0;
    }
    struct sigaction now;
    if (sigaction(signo, NULL, &now) != 0) return STS_ERR_IO;
    if (!is_sig_dfl(active(w) ? &w->previous : &now)) return 1;
    int rc = take_over(slot);
    if (rc != 0) return rc;
    w->dflt = fn;
    w->dflt_ud = ud;
    settle_source(loop);
    return 0;
}

int sts_signal_serve_defaults(int on)
{
    int was = serving;
    serving = on != 0;
    return was;
}
