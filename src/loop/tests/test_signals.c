#include "loop/signals.h"
#include "util/error.h"
#include "util/unit.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static const int all[] = { SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2 };
#define NALL (sizeof all / sizeof all[0])

static int calls[64], order[16], ncalls;

static void record(int signo, void *ud)
{
    CHECK(ud == &calls);
    calls[signo]++;
    if (ncalls < 16) order[ncalls] = signo;
    ncalls++;
}

static void forget_calls(void)
{
    memset(calls, 0, sizeof calls);
    ncalls = 0;
}

static void (*handler_of(int signo))(int)
{
    struct sigaction sa;
    CHECK(sigaction(signo, NULL, &sa) == 0);
    return sa.sa_handler;
}

static void watch_all(struct sts_loop *loop)
{
    for (size_t i = 0; i < NALL; i++) CHECK(sts_signal_watch(loop, all[i], record, &calls) == 0);
}

static void unwatch_all(void)
{
    for (size_t i = 0; i < NALL; i++) sts_signal_unwatch(all[i]);
}

/* Each signal reaches its watcher once, on the loop: not from the handler. */
static void test_each_signal(struct sts_loop *loop)
{
    watch_all(loop);
    for (size_t i = 0; i < NALL; i++) {
        forget_calls();
        CHECK(raise(all[i]) == 0);
        CHECK(ncalls == 0);
        CHECK(sts_loop_once(loop, 0) == STS_LOOP_RAN);
        CHECK(ncalls == 1);
        CHECK(calls[all[i]] == 1);
    }
    unwatch_all();
}

/* Signals arriving before a turn each come once, in arrival order; the
 * repeats of one signal coalesce. */
static void test_several_before_a_turn(struct sts_loop *loop)
{
    static const int sent[] = { SIGUSR2, SIGHUP, SIGUSR2, SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
    static const int expected[] = { SIGUSR2, SIGHUP, SIGTERM, SIGINT, SIGUSR1 };

    watch_all(loop);
    forget_calls();
    for (size_t i = 0; i < sizeof sent / sizeof sent[0]; i++) CHECK(raise(sent[i]) == 0);
    CHECK(sts_loop_once(loop, 0) == STS_LOOP_RAN);
    CHECK(ncalls == 5);
    CHECK(memcmp(order, expected, sizeof expected) == 0);
    forget_calls();
    CHECK(sts_loop_once(loop, 0) == STS_LOOP_RAN);
    CHECK(ncalls == 0);
    unwatch_all();
}

/* A signal arriving while the pipe is full is not lost, and the handler
 * leaves errno as it found it even when its write fails. */
static void test_full_pipe(struct sts_loop *loop)
{
    watch_all(loop);
    forget_calls();
    for (int i = 0; i < 1 << 17; i++) raise(SIGHUP); /* more than a pipe holds */
    errno = ERANGE;
    CHECK(raise(SIGTERM) == 0);
    CHECK(errno == ERANGE);
    CHECK(sts_loop_once(loop, 0) == STS_LOOP_RAN);
    CHECK(ncalls == 2);
    CHECK(calls[SIGHUP] == 1 && calls[SIGTERM] == 1);
    unwatch_all();
}

/* Unwatching restores what was there before the first watch, even after a
 * second watch replaced the function. */
static void test_unwatch_restores(struct sts_loop *loop)
{
    struct sigaction sa;

    CHECK(handler_of(SIGHUP) == SIG_DFL);
    CHECK(sts_signal_watch(loop, SIGHUP, record, &calls) == 0);
    CHECK(sts_signal_watch(loop, SIGHUP, record, &calls) == 0);
    CHECK(sts_signal_watched(SIGHUP));
    CHECK(sigaction(SIGHUP, NULL, &sa) == 0);
    CHECK(sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
    CHECK(sa.sa_flags & SA_RESTART);
    sts_signal_unwatch(SIGHUP);
    CHECK(!sts_signal_watched(SIGHUP));
    CHECK(handler_of(SIGHUP) == SIG_DFL);
    sts_signal_unwatch(SIGHUP); /* twice: nothing */
    CHECK(handler_of(SIGHUP) == SIG_DFL);

    CHECK(signal(SIGUSR2, SIG_IGN) != SIG_ERR);
    CHECK(sts_signal_watch(loop, SIGUSR2, record, &calls) == 0);
    sts_signal_unwatch(SIGUSR2);
    CHECK(handler_of(SIGUSR2) == SIG_IGN);
    CHECK(signal(SIGUSR2, SIG_DFL) != SIG_ERR);
}

/* A watched signal counts as something to wait for; the last unwatch leaves
 * the loop empty. */
static void test_pending(struct sts_loop *loop)
{
    size_t before = sts_loop_pending(loop);
    CHECK(sts_signal_watch(loop, SIGUSR1, record, &calls) == 0);
    CHECK(sts_signal_watch(loop, SIGUSR2, record, &calls) == 0);
    CHECK(sts_loop_pending(loop) == before + 1);
    sts_signal_unwatch(SIGUSR1);
    CHECK(sts_loop_pending(loop) == before + 1);
    sts_signal_unwatch(SIGUSR2);
    CHECK(sts_loop_pending(loop) == before);
    CHECK(sts_loop_once(loop, -1) == STS_LOOP_EMPTY);
}

static void test_rejects(struct sts_loop *loop)
{
    CHECK(sts_signal_watch(loop, SIGKILL, record, &calls) == STS_ERR_INVALID);
    CHECK(sts_signal_watch(loop, SIGSEGV, record, &calls) == STS_ERR_INVALID);
    CHECK(sts_signal_watch(loop, 0, record, &calls) == STS_ERR_INVALID);
    CHECK(sts_signal_watch(loop, SIGHUP, NULL, NULL) == STS_ERR_INVALID);
    CHECK(!sts_signal_supported(SIGQUIT) && sts_signal_supported(SIGUSR2));
    CHECK(handler_of(SIGHUP) == SIG_DFL);
    CHECK(sts_loop_pending(loop) == 0);
}

/* A watcher may unwatch another signal that arrived in the same turn: that
 * one is then not called. */
static void unwatch_int(int signo, void *ud)
{
    record(signo, ud);
    sts_signal_unwatch(SIGINT);
}

static void test_unwatch_from_a_watcher(struct sts_loop *loop)
{
    CHECK(sts_signal_watch(loop, SIGHUP, unwatch_int, &calls) == 0);
    CHECK(sts_signal_watch(loop, SIGINT, record, &calls) == 0);
    forget_calls();
    CHECK(raise(SIGHUP) == 0);
    CHECK(raise(SIGINT) == 0);
    CHECK(sts_loop_once(loop, 0) == STS_LOOP_RAN);
    CHECK(ncalls == 1 && calls[SIGHUP] == 1);
    CHECK(handler_of(SIGINT) == SIG_DFL);
    sts_signal_unwatch(SIGHUP);
}

/* An arrival not yet seen at the unwatch is dropped, unless the signal is
 * watched again before the loop turns (as the header says). */
static void test_arrival_at_unwatch(struct sts_loop *loop)
{
    CHECK(sts_signal_watch(loop, SIGUSR1, record, &calls) == 0);
    CHECK(sts_signal_watch(loop, SIGUSR2, record, &calls) == 0);
    forget_calls();
    CHECK(raise(SIGUSR1) == 0);
    sts_signal_unwatch(SIGUSR1);
    CHECK(sts_loop_once(loop, 0) == STS_LOOP_RAN);
    CHECK(ncalls == 0);
    CHECK(sts_signal_watch(loop, SIGUSR1, record, &calls) == 0);
    CHECK(raise(SIGUSR1) == 0);
    sts_signal_unwatch(SIGUSR1);
    CHECK(sts_signal_watch(loop, SIGUSR1, record, &calls) == 0);
    CHECK(sts_loop_once(loop, 0) == STS_LOOP_RAN);
    CHECK(ncalls == 1 && calls[SIGUSR1] == 1);
    sts_signal_unwatch(SIGUSR1);
    sts_signal_unwatch(SIGUSR2);
}

static int defaults_called[64];

static void count_default(int signo, void *ud)
{
    CHECK(ud == defaults_called);
    defaults_called[signo]++;
}

/* A default runs while serving and nothing watches the signal; a watch takes
 * over and gives it back; alone it keeps the loop from nothing. */
static void test_default(struct sts_loop *loop)
{
    memset(defaults_called, 0, sizeof defaults_called);
    forget_calls();
    CHECK(sts_signal_default(loop, SIGTERM, count_default, defaults_called) == 0);
    CHECK(sts_loop_pending(loop) == 0);
    CHECK(sts_loop_once(loop, -1) == STS_LOOP_EMPTY);
    int was = sts_signal_serve_defaults(1);
    CHECK(raise(SIGTERM) == 0);
    CHECK(sts_loop_once(loop, 0) == STS_LOOP_RAN);
    CHECK(defaults_called[SIGTERM] == 1);

    CHECK(sts_signal_watch(loop, SIGTERM, record, &calls) == 0);
    CHECK(sts_loop_pending(loop) == 1);
    CHECK(raise(SIGTERM) == 0);
    CHECK(sts_loop_once(loop, 0) == STS_LOOP_RAN);
    CHECK(calls[SIGTERM] == 1 && defaults_called[SIGTERM] == 1);
    sts_signal_unwatch(SIGTERM);
    CHECK(handler_of(SIGTERM) != SIG_DFL);
    CHECK(raise(SIGTERM) == 0);
    CHECK(sts_loop_once(loop, 0) == STS_LOOP_RAN);
    CHECK(defaults_called[SIGTERM] == 2);

    CHECK(sts_signal_default(loop, SIGTERM, NULL, NULL) == 0);
    CHECK(handler_of(SIGTERM) == SIG_DFL);
    CHECK(sts_loop_pending(loop) == 0);
    sts_signal_serve_defaults(was);
}

/* Not serving, a default lets the signal do what it did: a child with only a
 * default on SIGTERM dies of it. An ignored signal gets no default. */
static void test_default_off_duty(struct sts_loop *loop)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        sts_signal_serve_defaults(0);
        if (sts_signal_default(loop, SIGTERM, count_default, defaults_called) != 0) _exit(2);
        raise(SIGTERM);
        _exit(3); /* not reached: SIGTERM ended the process */
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);

    CHECK(signal(SIGINT, SIG_IGN) != SIG_ERR);
    CHECK(sts_signal_default(loop, SIGINT, count_default, defaults_called) == 1);
    CHECK(handler_of(SIGINT) == SIG_IGN);
    CHECK(signal(SIGINT, SIG_DFL) != SIG_ERR);
}

int main(void)
{
    struct sts_loop *loop = sts_loop_default();

    test_rejects(loop);
    test_each_signal(loop);
    test_several_before_a_turn(loop);
    test_full_pipe(loop);
    test_unwatch_restores(loop);
    test_pending(loop);
    test_unwatch_from_a_watcher(loop);
    test_arrival_at_unwatch(loop);
    test_default(loop);
    test_default_off_duty(loop);
    return unit_done();
}
