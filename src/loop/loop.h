/* The one event loop: poll() over a set of sources (sockets, stdin) and a
 * heap of timers, all on the calling thread. Small on purpose, in the spirit
 * of Redis's ae.c.
 *
 * A source is asked before every poll which fd it wants watched and for what
 * (an MQTT client's socket changes on reconnect, and it wants POLLOUT only
 * while it has output queued), then told what happened. */
#ifndef STS_LOOP_LOOP_H
#define STS_LOOP_LOOP_H

#include <stddef.h>

struct sts_loop;

struct sts_source {
    /* Returns the fd to watch (or -1 for none this round) and sets *events. */
    int (*prepare)(struct sts_source *src, short *events);
    /* Called with the poll revents for the fd prepare returned. */
    void (*dispatch)(struct sts_source *src, short revents);
    /* Called once per loop iteration after I/O and timers, if set: work that
     * must not wait for an fd (libmosquitto's keepalive bookkeeping). */
    void (*idle)(struct sts_source *src);
    struct sts_source *next, *prev; /* owned by the loop */
};

struct sts_timer;
typedef void (*sts_timer_fn)(struct sts_timer *timer, void *ud);

struct sts_timer {
    double when;      /* monotonic deadline */
    double interval;  /* > 0: repeats */
    sts_timer_fn fn;
    void *ud;
    size_t slot;      /* position in the heap, or (size_t)-1 when idle */
};

/* The process's loop. Everything shares it, as there is one thread. */
struct sts_loop *sts_loop_default(void);

/* Monotonic seconds. */
double sts_now(void);

void sts_loop_add_source(struct sts_loop *loop, struct sts_source *src);
void sts_loop_remove_source(struct sts_loop *loop, struct sts_source *src);

void sts_timer_init(struct sts_timer *t, sts_timer_fn fn, void *ud);
/* Arms t to fire after `delay` seconds, then every `interval` seconds if
 * interval > 0. Re-arming an armed timer moves it. */
int sts_timer_start(struct sts_loop *loop, struct sts_timer *t, double delay, double interval);
void sts_timer_stop(struct sts_loop *loop, struct sts_timer *t);
int sts_timer_active(const struct sts_timer *t);

/* Runs one iteration: waits at most `max_wait` seconds (< 0: until the next
 * timer or I/O) for I/O, dispatches it, fires due timers, runs idle hooks.
 * Returns 0, or -1 when there is nothing left to wait for (no source, no
 * timer) and max_wait < 0. */
int sts_loop_once(struct sts_loop *loop, double max_wait);

/* True while sts_loop_once is dispatching: code that would nest a loop
 * checks it to refuse. */
int sts_loop_dispatching(const struct sts_loop *loop);

/* Number of armed timers and registered sources (for "is anything left?"). */
size_t sts_loop_pending(const struct sts_loop *loop);

#endif
