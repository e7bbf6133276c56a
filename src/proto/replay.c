#include "proto/replay.h"
#include "util/error.h"

#include <string.h>

static size_t word_of(uint64_t n)
{
    return (size_t)((n >> 6) % STS_REPLAY_WORDS);
}

static uint64_t bit_of(uint64_t n)
{
    return (uint64_t)1 << (n & 63);
}

void sts_replay_reset(struct sts_replay *w)
{
    memset(w, 0, sizeof *w);
}

int sts_replay_check(const struct sts_replay *w, uint64_t n)
{
    if (n == UINT64_MAX)
        return STS_ERR_REPLAY;
    if (n >= w->top)
        return 0;
    if (w->top - n > STS_REPLAY_WINDOW)
        return STS_ERR_REPLAY;
    return (w->bits[word_of(n)] & bit_of(n)) ? STS_ERR_REPLAY : 0;
}

/* Moves the highest counter to n: the words between the old highest word and
 * n's word now describe counters never seen, so they are cleared. */
static void slide_to(struct sts_replay *w, uint64_t n)
{
    uint64_t from = w->top ? (w->top - 1) >> 6 : 0;
    uint64_t to = n >> 6;
    if (w->top == 0 || to - from >= STS_REPLAY_WORDS) {
        memset(w->bits, 0, sizeof w->bits);
    } else {
        for (uint64_t i = from + 1; i <= to; i++)
            w->bits[i % STS_REPLAY_WORDS] = 0;
    }
    w->top = n + 1;
}

int sts_replay_mark(struct sts_replay *w, uint64_t n)
{
    int err = sts_replay_check(w, n);
    if (err)
        return err;
    if (n >= w->top)
        slide_to(w, n);
    w->bits[word_of(n)] |= bit_of(n);
    return 0;
}
