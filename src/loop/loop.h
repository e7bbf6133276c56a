/* The one event loop: poll() over a set of sources (sockets, stdin) and a
 * heap of timers, all on the calling thread. Small on purpose, in the spirit
 * of Redis's ae.c.
 *
 * A source is asked before every poll which fd it wants watched and for what
 * (an MQTT client's socket changes on reconnect, and it wants POLLOUT only
 * while it has output queued), then told what happened.
 *
 * Objects that callbacks may close (a client closed from its own message
 * handler) are finalized in a closing phase, as libuv's uv_close does: while
 * any callback may be on the stack, sts_loop_close queues the finalizer and
 * the loop runs it after dispatch, so no callback ever returns into freed
 * memory. */
#ifndef STS_LOOP_LOOP_H
#define STS_LOOP_LOOP_H

#include <stddef.h>

struct sts_loop;

struct sts_source {
    /* Returns the fd to watch (or -1 for none this round) and sets *events. */
    int (*prepare)(struct sts_source *src, short *events);
    /* Called with the poll revents for the fd prepare returned. */
    void (*dispatch)(struct sts_source *src, short revents);
    struct sts_source *next, *prev; /* owned by the loop */
    int weak;                       /* owned by the loop: see sts_loop_source_weak */
};

struct sts_timer;
typedef void (*sts_timer_fn)(struct sts_timer *timer, void *ud);

/* Intrusive: the heap links live in the timer, so arming one never allocates
 * and cannot fail. */
struct sts_timer {
    double when;      /* monotonic deadline */
    double interval;  /* > 0: repeats */
    sts_timer_fn fn;
    void *ud;
    unsigned long order;                    /* arming order: ties fire first-armed first */
    struct sts_timer *child, *sibling, *prev; /* pairing-heap links, owned by the loop */
    int active;
};

struct sts_closing;
typedef void (*sts_close_fn)(struct sts_closing *c);

struct sts_closing {
    sts_close_fn fn;
    struct sts_closing *next; /* owned by the loop */
};

/* The process's loop. Everything shares it, as there is one thread. */
struct sts_loop *sts_loop_default(void);

/* Monotonic seconds. */
double sts_now(void);
/* Unix time in seconds, for what is defined by the wall clock (group slots). */
double sts_wall_now(void);

void sts_loop_add_source(struct sts_loop *loop, struct sts_source *src);
void sts_loop_remove_source(struct sts_loop *loop, struct sts_source *src);
/* A weak source is polled like any other but does not keep the loop running,
 * as libuv's uv_unref: it counts neither in sts_loop_pending nor against
 * STS_LOOP_EMPTY (the signal pipe while only a built-in default watches it).
 * Sources start strong. */
void sts_loop_source_weak(struct sts_loop *loop, struct sts_source *src, int weak);

void sts_timer_init(struct sts_timer *t, sts_timer_fn fn, void *ud);
/* Arms t to fire after `delay` seconds, then every `interval` seconds if
 * interval > 0. Re-arming an armed timer moves it. */
void sts_timer_start(struct sts_loop *loop, struct sts_timer *t, double delay, double interval);
void sts_timer_stop(struct sts_loop *loop, struct sts_timer *t);
int sts_timer_active(const struct sts_timer *t);

/* What one iteration found. */
enum sts_loop_result {
    STS_LOOP_RAN = 0,     /* waited, dispatched what was ready */
    STS_LOOP_EMPTY = 1,   /* nothing left to wait for: no source, no timer */
};

/* Runs one iteration: waits at most `max_wait` seconds (< 0: until the next
 * timer or I/O) for I/O, dispatches it, fires due timers, then runs the
 * closing phase. Returns STS_LOOP_RAN, STS_LOOP_EMPTY (only when
 * max_wait < 0), or STS_ERR_IO when poll() failed (errno says why). */
int sts_loop_once(struct sts_loop *loop, double max_wait);

/* Iterations begun so far: a consumer that budgets its work per turn (a
 * listener under a flood) tells a new turn by it. */
unsigned long sts_loop_turns(const struct sts_loop *loop);

/* True while the loop dispatches (callbacks may be on the stack): code that
 * would nest a loop checks it to refuse, and sts_loop_close defers. */
int sts_loop_dispatching(const struct sts_loop *loop);

/* Finalizes an object: fn(c) runs now when no callback can be on the stack,
 * otherwise in the loop's closing phase, in the order asked. c must stay
 * valid until then (it is usually embedded in the object). */
void sts_loop_close(struct sts_loop *loop, struct sts_closing *c, sts_close_fn fn);
/* Runs every queued finalizer now (at shutdown). */
void sts_loop_run_closing(struct sts_loop *loop);

/* Number of armed timers and registered strong sources (for "is anything left?"). */
size_t sts_loop_pending(const struct sts_loop *loop);

#endif
