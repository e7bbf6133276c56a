#include "loop/loop.h"
#include "util/error.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

#define IDLE_SLOT ((size_t)-1)

struct sts_loop {
    struct sts_source *sources;
    size_t nsources;
    struct sts_timer **heap;    /* min-heap on `when` */
    size_t ntimers, cap;
    struct pollfd *fds;         /* scratch for one poll */
    struct sts_source **polled; /* which source each pollfd belongs to */
    size_t fds_cap, npolled;
    int dispatching;
};

struct sts_loop *sts_loop_default(void)
{
    static struct sts_loop loop;
    return &loop;
}

double sts_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sts_loop_add_source(struct sts_loop *loop, struct sts_source *src)
{
    src->prev = NULL;
    src->next = loop->sources;
    if (loop->sources) loop->sources->prev = src;
    loop->sources = src;
    loop->nsources++;
}

void sts_loop_remove_source(struct sts_loop *loop, struct sts_source *src)
{
    if (src->prev) src->prev->next = src->next;
    else loop->sources = src->next;
    if (src->next) src->next->prev = src->prev;
    src->next = src->prev = NULL;
    loop->nsources--;
    /* A source removed while its pollfd is pending must not be dispatched. */
    for (size_t i = 0; loop->dispatching && i < loop->npolled; i++)
        if (loop->polled[i] == src) loop->polled[i] = NULL;
}

/* --- timers: a binary min-heap keyed on the deadline --------------------- */

static void heap_set(struct sts_loop *loop, size_t i, struct sts_timer *t)
{
    loop->heap[i] = t;
    t->slot = i;
}

static void sift_up(struct sts_loop *loop, size_t i)
{
    struct sts_timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (loop->heap[parent]->when <= t->when) break;
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void sift_down(struct sts_loop *loop, size_t i)
{
    struct sts_timer *t = loop->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= loop->ntimers) break;
        if (child + 1 < loop->ntimers && loop->heap[child + 1]->when < loop->heap[child]->when)
            child++;
        if (t->when <= loop->heap[child]->when) break;
        heap_set(loop, i, loop->heap[child]);
        i = child;
    }
    heap_set(loop, i, t);
}

void sts_timer_init(struct sts_timer *t, sts_timer_fn fn, void *ud)
{
    t->when = 0;
    t->interval = 0;
    t->fn = fn;
    t->ud = ud;
    t->slot = IDLE_SLOT;
}

int sts_timer_active(const struct sts_timer *t)
{
    return t->slot != IDLE_SLOT;
}

void sts_timer_stop(struct sts_loop *loop, struct sts_timer *t)
{
    size_t i = t->slot;
    if (i == IDLE_SLOT) return;
    t->slot = IDLE_SLOT;
    struct sts_timer *last = loop->heap[--loop->ntimers];
    if (last == t) return;
    heap_set(loop, i, last);
    sift_up(loop, i);
    sift_down(loop, last->slot);
}

int sts_timer_start(struct sts_loop *loop, struct sts_timer *t, double delay, double interval)
{
    sts_timer_stop(loop, t);
    if (loop->ntimers == loop->cap) {
        size_t cap = loop->cap ? loop->cap * 2 : 16;
        struct sts_timer **heap = realloc(loop->heap, cap * sizeof *heap);
        if (!heap) return STS_ERR_NOMEM;
        loop->heap = heap;
        loop->cap = cap;
    }
    t->when = sts_now() + (delay > 0 ? delay : 0);
    t->interval = interval;
    heap_set(loop, loop->ntimers++, t);
    sift_up(loop, t->slot);
    return 0;
}

static void fire_due_timers(struct sts_loop *loop)
{
    double now = sts_now();
    /* Timers armed by a callback for "now" wait for the next iteration, so a
     * zero-interval repeat cannot starve I/O. */
    size_t budget = loop->ntimers;
    while (budget-- > 0 && loop->ntimers > 0 && loop->heap[0]->when <= now) {
        struct sts_timer *t = loop->heap[0];
        sts_timer_stop(loop, t);
        if (t->interval > 0) {
            /* Keep the cadence, but never schedule in the past after a stall. */
            double next = t->when + t->interval;
            sts_timer_start(loop, t, (next > now ? next : now + t->interval) - sts_now(), t->interval);
        }
        t->fn(t, t->ud);
    }
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
    if (loop->ntimers > 0) {
        double until_timer = loop->heap[0]->when - sts_now();
        if (until_timer < 0) until_timer = 0;
        if (wait < 0 || until_timer < wait) wait = until_timer;
    }
    if (wait < 0) return -1;
    /* Round up, so a timer is never polled for 0 ms repeatedly before it is due. */
    double ms = wait * 1000.0 + 0.999;
    return ms > 60000 ? 60000 : (int)ms;
}

int sts_loop_once(struct sts_loop *loop, double max_wait)
{
    size_t n = 0;

    if (max_wait < 0 && loop->nsources == 0 && loop->ntimers == 0) return -1;
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
    if (ready < 0 && errno != EINTR) return STS_ERR_IO;

    loop->dispatching++;
    for (size_t i = 0; ready > 0 && i < n; i++) {
        if (loop->fds[i].revents && loop->polled[i])
            loop->polled[i]->dispatch(loop->polled[i], loop->fds[i].revents);
    }
    loop->npolled = 0;
    fire_due_timers(loop);
    for (struct sts_source *s = loop->sources, *next; s; s = next) {
        next = s->next;
        if (s->idle) s->idle(s);
    }
    loop->dispatching--;
    return 0;
}

int sts_loop_dispatching(const struct sts_loop *loop)
{
    return loop->dispatching > 0;
}

size_t sts_loop_pending(const struct sts_loop *loop)
{
    return loop->nsources + loop->ntimers;
}
