#include "loop/loop.h"
#include "util/error.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

struct sts_loop {
    struct sts_source *sources;
    size_t nsources;
    size_t nweak;               /* of them weak: they keep nothing running */
    struct sts_timer *timers;   /* root of a pairing heap on (when, order) */
    size_t ntimers;
    unsigned long armed;        /* timers armed so far: the next one's order */
    struct pollfd *fds;         /* scratch for one poll */
    struct sts_source **polled; /* which source each pollfd belongs to */
    size_t fds_cap, npolled;
    int depth;                  /* callbacks that may be on the stack */
    struct sts_closing *closing, **closing_tail;
    unsigned long turns;        /* iterations begun */
};

struct sts_loop *sts_loop_default(void)
{
    static struct sts_loop loop = { .closing_tail = &loop.closing };
    return &loop;
}

static double clock_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double sts_now(void)
{
    return clock_seconds(CLOCK_MONOTONIC);
}

double sts_wall_now(void)
{
    return clock_seconds(CLOCK_REALTIME);
}

void sts_loop_add_source(struct sts_loop *loop, struct sts_source *src)
{
    src->prev = NULL;
    src->next = loop->sources;
    if (loop->sources) loop->sources->prev = src;
    loop->sources = src;
    loop->nsources++;
    src->weak = 0;
}

void sts_loop_source_weak(struct sts_loop *loop, struct sts_source *src, int weak)
{
    if (!src->weak == !weak) return;
    src->weak = weak != 0;
    if (weak) loop->nweak++;
    else loop->nweak--;
}

void sts_loop_remove_source(struct sts_loop *loop, struct sts_source *src)
{
    if (src->prev) src->prev->next = src->next;
    else loop->sources = src->next;
    if (src->next) src->next->prev = src->prev;
    src->next = src->prev = NULL;
    loop->nsources--;
    if (src->weak) loop->nweak--;
    src->weak = 0;
    /* A source removed while its pollfd is pending must not be dispatched. */
    for (size_t i = 0; i < loop->npolled; i++)
        if (loop->polled[i] == src) loop->polled[i] = NULL;
}

/* --- timers: a pairing heap, linked through the timers themselves ---------- */

static int fires_before(const struct sts_timer *a, const struct sts_timer *b)
{
    return a->when < b->when || (a->when == b->when && a->order < b->order);
}

/* Melds two heap roots (each with no siblings) into one. */
static struct sts_timer *meld(struct sts_timer *a, struct sts_timer *b)
{
    if (!a) return b;
    if (!b) return a;
    if (fires_before(b, a)) {
        struct sts_timer *t = a;
        a = b;
        b = t;
    }
    b->prev = a;
    b->sibling = a->child;
    if (a->child) a->child->prev = b;
    a->child = b;
    return a;
}

/* The standard two-pass merge of a list of siblings: pair them left to
 * right, then meld the pairs right to left. */
static struct sts_timer *merge_siblings(struct sts_timer *first)
{
    struct sts_timer *pairs = NULL; /* a stack, linked through sibling */
    while (first) {
        struct sts_timer *a = first, *b = first->sibling;
        first = b ? b->sibling : NULL;
        a->sibling = a->prev = NULL;
        if (b) b->sibling = b->prev = NULL;
        a = meld(a, b);
        a->sibling = pairs;
        pairs = a;
    }
    struct sts_timer *root = NULL;
    while (pairs) {
        struct sts_timer *next = pairs->sibling;
        pairs->sibling = NULL;
        root = meld(root, pairs);
        pairs = next;
    }
    return root;
}

void sts_timer_init(struct sts_timer *t, sts_timer_fn fn, void *ud)
{
    *t = (struct sts_timer){ .fn = fn, .ud = ud };
}

int sts_timer_active(const struct sts_timer *t)
{
    return t->active;
}

void sts_timer_stop(struct sts_loop *loop, struct sts_timer *t)
{
    if (!t->active) return;
    t->active = 0;
    loop->ntimers--;
    struct sts_timer *children = merge_siblings(t->child);
    if (t == loop->timers) {
        loop->timers = children;
    } else {
        /* Cut t out of its parent's list of children, then meld its own. */
        if (t->prev->child == t) t->prev->child = t->sibling;
        else t->prev->sibling = t->sibling;
        if (t->sibling) t->sibling->prev = t->prev;
        loop->timers = meld(loop->timers, children);
    }
    t->child = t->sibling = t->prev = NULL;
}

void sts_timer_start(struct sts_loop *loop, struct sts_timer *t, double delay, double interval)
{
    sts_timer_stop(loop, t);
    t->when = sts_now() + (delay > 0 ? delay : 0);
    t->interval = interval;
    t->order = loop->armed++;
    t->active = 1;
    loop->ntimers++;
    loop->timers = meld(loop->timers, t);
}

static void fire_due_timers(struct sts_loop *loop)
{
    double now = sts_now();
    /* Timers armed by a callback for "now" wait for the next iteration, so a
     * zero-interval repeat cannot starve I/O. */
    size_t budget = loop->ntimers;
    while (budget-- > 0 && loop->timers && loop->timers->when <= now) {
        struct sts_timer *t = loop->timers;
        sts_timer_stop(loop, t);
        if (t->interval > 0) {
            /* Keep the cadence, but never schedule in the past after a stall. */
            double next = t->when + t->interval;
            sts_timer_start(loop, t, (next > now ? next : now + t->interval) - sts_now(), t->interval);
        }
        t->fn(t, t->ud);
    }
}

/* --- the closing phase ----------------------------------------------------- */

int sts_loop_dispatching(const struct sts_loop *loop)
{
    return loop->depth > 0;
}

void sts_loop_close(struct sts_loop *loop, struct sts_closing *c, sts_close_fn fn)
{
    c->fn = fn;
    c->next = NULL;
    *loop->closing_tail = c;
    loop->closing_tail = &c->next;
    /* Outside every callback: now, with whatever the finalizer closes in turn. */
    if (loop->depth == 0) sts_loop_run_closing(loop);
}

void sts_loop_run_closing(struct sts_loop *loop)
{
    /* A finalizer may close more objects: they join the end of the queue. */
    loop->depth++;
    while (loop->closing) {
        struct sts_closing *c = loop->closing;
        loop->closing = c->next;
        if (!loop->closing) loop->closing_tail = &loop->closing;
        c->fn(c);
    }
    loop->depth--;
}

/* --- the iteration -------------------------------------------------------- */

static int grow_pollfds(struct sts_loop *loop)
{
    if (loop->fds_cap >= loop->nsources) return 0;
    size_t cap = loop->nsources * 2;
    struct pollfd *fds = realloc(loop->fds, cap * sizeof *fds);
    if (!fds) return STS_ERR_NOMEM;
    loop->fds = fds;
    struct sts_source **polled = realloc(loop->polled, cap * sizeof *polled);
    if (!polled) return STS_ERR_NOMEM;
    loop->polled = polled;
    loop->fds_cap = cap;
    return 0;
}

static int poll_timeout_ms(const struct sts_loop *loop, double max_wait)
{
    double wait = max_wait;
    if (loop->timers) {
        double until_timer = loop->timers->when - sts_now();
        if (until_timer < 0) until_timer = 0;
        if (wait < 0 || until_timer < wait) wait = until_timer;
    }
    if (wait < 0) return -1;
    /* Round up, so a timer is never polled for 0 ms repeatedly before it is due. */
    double ms = wait * 1000.0 + 0.999;
    return ms > 60000 ? 60000 : (int)ms;
}

static void dispatch_ready(struct sts_loop *loop, int ready)
{
    for (size_t i = 0; ready > 0 && i < loop->npolled; i++) {
        if (loop->fds[i].revents && loop->polled[i])
            loop->polled[i]->dispatch(loop->polled[i], loop->fds[i].revents);
    }
    loop->npolled = 0;
}

unsigned long sts_loop_turns(const struct sts_loop *loop)
{
    return loop->turns;
}

int sts_loop_once(struct sts_loop *loop, double max_wait)
{
    size_t n = 0;

    loop->turns++;
    sts_loop_run_closing(loop);
    if (max_wait < 0 && sts_loop_pending(loop) == 0) return STS_LOOP_EMPTY;
    if (grow_pollfds(loop) != 0) return STS_ERR_NOMEM;
    for (struct sts_source *s = loop->sources; s; s = s->next) {
        short events = 0;
        int fd = s->prepare(s, &events);
        if (fd < 0) continue;
        loop->fds[n] = (struct pollfd){ .fd = fd, .events = events };
        loop->polled[n++] = s;
    }

    loop->npolled = n;
    int ready = poll(loop->fds, n, poll_timeout_ms(loop, max_wait));
    if (ready < 0 && errno != EINTR) {
        loop->npolled = 0;
        return STS_ERR_IO;
    }

    loop->depth++;
    dispatch_ready(loop, ready);
    fire_due_timers(loop);
    loop->depth--;
    sts_loop_run_closing(loop);
    return STS_LOOP_RAN;
}

size_t sts_loop_pending(const struct sts_loop *loop)
{
    return loop->nsources - loop->nweak + loop->ntimers;
}
