#include "loop/loop.h"
#include "util/unit.h"

#include <poll.h>
#include <unistd.h>

static int order[8], nfired;

static void record(struct sts_timer *t, void *ud)
{
    (void)t;
    order[nfired++] = (int)(long)ud;
}

struct pipe_source {
    struct sts_source src;
    int fd;
    char got;
};

static int pipe_prepare(struct sts_source *src, short *events)
{
    *events = POLLIN;
    return ((struct pipe_source *)src)->fd;
}

static void pipe_dispatch(struct sts_source *src, short revents)
{
    struct pipe_source *p = (struct pipe_source *)src;
    if (revents & POLLIN) CHECK(read(p->fd, &p->got, 1) == 1);
}

/* Many timers armed in a scrambled order, some stopped or moved: the rest
 * fire in deadline order, ties in the order they were armed. */
static double fired_at[200];
static int nfired_many;

static void note(struct sts_timer *t, void *ud)
{
    (void)ud;
    fired_at[nfired_many++] = t->when;
}

static void test_many_timers(struct sts_loop *loop)
{
    static struct sts_timer t[200];
    for (int i = 0; i < 200; i++) {
        sts_timer_init(&t[i], note, NULL);
        sts_timer_start(loop, &t[i], 0.001 * ((i * 37) % 50), 0);
    }
    for (int i = 0; i < 200; i += 7) sts_timer_stop(loop, &t[i]);
    for (int i = 3; i < 200; i += 11) sts_timer_start(loop, &t[i], 0.06, 0); /* moved */
    while (sts_loop_once(loop, -1) == STS_LOOP_RAN) {}
    int expected = 0;
    for (int i = 0; i < 200; i++) expected += i % 7 != 0 || (i >= 3 && (i - 3) % 11 == 0);
    CHECK(nfired_many == expected);
    int ordered = 1;
    for (int i = 1; i < nfired_many; i++) ordered &= fired_at[i - 1] <= fired_at[i];
    CHECK(ordered);
}

static int tie_order[3], nties;
static void tie(struct sts_timer *t, void *ud)
{
    (void)t;
    tie_order[nties++] = (int)(long)ud;
}

/* The closing phase: finalizers asked for inside a callback run after it. */
struct closable {
    struct sts_closing closing;
    int finalized;
};

static struct closable victim;
static int finalized_inside;

static void finalize(struct sts_closing *c)
{
    ((struct closable *)c)->finalized++;
}

static void close_inside(struct sts_timer *t, void *ud)
{
    (void)t;
    (void)ud;
    sts_loop_close(sts_loop_default(), &victim.closing, finalize);
    finalized_inside = victim.finalized;
}

int main(void)
{
    struct sts_loop *loop = sts_loop_default();
    struct sts_timer a, b, c, d;

    /* Timers fire in deadline order, whatever order they were armed in. The
     * start is read first: arming takes time on a slow (emulated) CPU. */
    double start = sts_now();
    sts_timer_init(&a, record, (void *)3);
    sts_timer_init(&b, record, (void *)1);
    sts_timer_init(&c, record, (void *)2);
    sts_timer_init(&d, record, (void *)9);
    sts_timer_start(loop, &a, 0.03, 0);
    sts_timer_start(loop, &b, 0.01, 0);
    sts_timer_start(loop, &c, 0.02, 0);
    sts_timer_start(loop, &d, 0.025, 0);
    sts_timer_stop(loop, &d); /* a stopped timer never fires */
    while (sts_loop_once(loop, -1) == 0) {}
    CHECK(nfired == 3);
    CHECK(order[0] == 1 && order[1] == 2 && order[2] == 3);
    CHECK(sts_now() - start >= 0.03);
    CHECK(!sts_timer_active(&a) && sts_loop_pending(loop) == 0);

    /* A repeating timer keeps firing until stopped. */
    nfired = 0;
    sts_timer_start(loop, &a, 0, 0.005);
    while (nfired < 4) sts_loop_once(loop, -1);
    CHECK(sts_timer_active(&a));
    sts_timer_stop(loop, &a);

    /* A source is polled and dispatched when its fd is readable. */
    int fds[2];
    CHECK(pipe(fds) == 0);
    struct pipe_source p = { .src = { .prepare = pipe_prepare, .dispatch = pipe_dispatch }, .fd = fds[0] };
    sts_loop_add_source(loop, &p.src);
    CHECK(sts_loop_once(loop, 0.01) == 0 && p.got == 0); /* nothing to read yet */
    CHECK(write(fds[1], "x", 1) == 1);
    CHECK(sts_loop_once(loop, 1.0) == 0 && p.got == 'x');

    /* A weak source is still polled, but alone it leaves the loop empty. */
    sts_loop_source_weak(loop, &p.src, 1);
    CHECK(sts_loop_pending(loop) == 0);
    CHECK(sts_loop_once(loop, -1) == STS_LOOP_EMPTY);
    CHECK(write(fds[1], "y", 1) == 1);
    CHECK(sts_loop_once(loop, 1.0) == 0 && p.got == 'y');
    sts_loop_source_weak(loop, &p.src, 0);
    CHECK(sts_loop_pending(loop) == 1);
    sts_loop_source_weak(loop, &p.src, 1);
    sts_loop_remove_source(loop, &p.src);
    sts_loop_add_source(loop, &p.src); /* removal forgot it was weak */
    CHECK(sts_loop_pending(loop) == 1);
    sts_loop_remove_source(loop, &p.src);
    CHECK(sts_loop_pending(loop) == 0);
    CHECK(sts_loop_once(loop, -1) == STS_LOOP_EMPTY);

    test_many_timers(loop);

    /* Equal deadlines: first armed, first fired. */
    struct sts_timer t1, t2, t3;
    sts_timer_init(&t1, tie, (void *)1);
    sts_timer_init(&t2, tie, (void *)2);
    sts_timer_init(&t3, tie, (void *)3);
    sts_timer_start(loop, &t2, 0, 0);
    sts_timer_start(loop, &t3, 0, 0);
    sts_timer_start(loop, &t1, 0, 0);
    t2.when = t3.when = t1.when; /* ties now, in the same order as before: the heap stays valid */
    while (sts_loop_once(loop, -1) == STS_LOOP_RAN) {}
    CHECK(nties == 3 && tie_order[0] == 2 && tie_order[1] == 3 && tie_order[2] == 1);

    /* Closed inside a callback: finalized after it, once. Outside: at once. */
    struct sts_timer closer;
    sts_timer_init(&closer, close_inside, NULL);
    sts_timer_start(loop, &closer, 0, 0);
    sts_loop_once(loop, -1);
    CHECK(finalized_inside == 0 && victim.finalized == 1);
    sts_loop_close(loop, &victim.closing, finalize);
    CHECK(victim.finalized == 2 && !sts_loop_dispatching(loop));
    return unit_done();
}
