/* Signals as events on the loop, through a self-pipe.
 *
 * The handler installed for a watched signal only writes the signal's number
 * as one byte to a non-blocking, close-on-exec pipe; a loop source reads the
 * pipe and calls the watchers, on the loop, never from the handler. Not
 * signalfd: it needs the signals blocked, and a blocked mask is inherited by
 * every child the process spawns.
 *
 * Delivery: every signal that arrives is seen by the loop's next turn at
 * least once; several arrivals of the same signal before that turn coalesce
 * into one call (as for any Unix signal still pending). The calls of one
 * turn come in the order the signals first arrived.
 *
 * While any signal is watched the pipe's source is registered on the loop, so
 * it counts in sts_loop_pending: a process waiting for its SIGTERM keeps
 * running. Everything shares the one loop of the first watch.
 *
 * A signal may also have a default: what runs when it arrives while nothing
 * watches it (the host's clean shutdown on SIGTERM and SIGINT). A default
 * keeps nothing running (the pipe's source is weak while only defaults are
 * set), and serves only while sts_signal_serve_defaults is on (while the loop
 * runs): off, the signal does what it did before, so a process busy outside
 * the loop still dies of its SIGTERM. */
#ifndef STS_LOOP_SIGNALS_H
#define STS_LOOP_SIGNALS_H

#include "loop/loop.h"

typedef void (*sts_signal_fn)(int signo, void *ud);

/* True for the signals that can be watched: SIGHUP, SIGINT, SIGTERM, SIGUSR1,
 * SIGUSR2. */
int sts_signal_supported(int signo);

/* Calls fn(signo, ud) on the loop after each arrival of signo. Watching a
 * watched signal replaces its fn and ud. Returns 0, STS_ERR_INVALID for an
 * unsupported signal or a loop other than the one already used, or STS_ERR_IO
 * (errno says why) when the pipe or the handler could not be set up. */
int sts_signal_watch(struct sts_loop *loop, int signo, sts_signal_fn fn, void *ud);

/* Stops watching signo. With a default set, the default serves again;
 * otherwise the disposition from before the first watch or default comes back
 * (SIG_DFL for a process that set none) and an arrival the loop has not seen
 * yet is dropped, unless the signal is watched again before the loop's next
 * turn. Unwatching an unwatched signal does nothing. */
void sts_signal_unwatch(int signo);

int sts_signal_watched(int signo);

/* Sets fn(signo, ud) as signo's default (fn NULL removes it). Only over
 * SIG_DFL: a signal the process ignores (nohup, a background job's SIGINT)
 * or handles otherwise is left alone and 1 returned. Otherwise as
 * sts_signal_watch. */
int sts_signal_default(struct sts_loop *loop, int signo, sts_signal_fn fn, void *ud);

/* Defaults serve (on != 0) or not; returns the previous setting. Async-signal
 * safe to read: the handler looks at it. */
int sts_signal_serve_defaults(int on);

#endif
