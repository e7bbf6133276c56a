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

int main(void)
{
    struct sts_loop *loop = sts_loop_default();
    struct sts_timer a, b, c, d;

    /* Timers fire in deadline order, whatever order they were armed in. */
    sts_timer_init(&a, record, (void *)3);
    sts_timer_init(&b, record, (void *)1);
    sts_timer_init(&c, record, (void *)2);
    sts_timer_init(&d, record, (void *)9);
    sts_timer_start(loop, &a, 0.03, 0);
    sts_timer_start(loop, &b, 0.01, 0);
    sts_timer_start(loop, &c, 0.02, 0);
    sts_timer_start(loop, &d, 0.025, 0);
    sts_timer_stop(loop, &d); /* a stopped timer never fires */
    double start = sts_now();
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
    sts_loop_remove_source(loop, &p.src);
    CHECK(sts_loop_pending(loop) == 0);
    return unit_done();
}
