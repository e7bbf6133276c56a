/* The replay window against an independent model: a plain list of every
 * counter accepted, and the rule "accept n iff it was never accepted and is
 * one of the STS_REPLAY_WINDOW counters ending at the highest accepted, or
 * above them". */
#include "proto/replay.h"
#include "util/error.h"
#include "util/unit.h"

#include <stdlib.h>

struct model {
    uint64_t *seen;
    size_t n, cap;
    uint64_t top; /* highest accepted + 1 */
};

static int model_accepts(const struct model *m, uint64_t n)
{
    if (n == UINT64_MAX || (n < m->top && m->top - n > STS_REPLAY_WINDOW))
        return 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->seen[i] == n)
            return 0;
    return 1;
}

/* Counters below the window are refused by the rule alone: forget them. */
static void model_prune(struct model *m)
{
    size_t kept = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->top - m->seen[i] <= STS_REPLAY_WINDOW)
            m->seen[kept++] = m->seen[i];
    m->n = kept;
}

static void model_mark(struct model *m, uint64_t n)
{
    if (m->n == m->cap)
        model_prune(m);
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 1024;
        m->seen = realloc(m->seen, m->cap * sizeof *m->seen);
    }
    m->seen[m->n++] = n;
    if (n >= m->top)
        m->top = n + 1;
}

/* Offers n to both; counts disagreements. */
static int offer(struct sts_replay *w, struct model *m, uint64_t n)
{
    int expect = model_accepts(m, n);
    int check = sts_replay_check(w, n) == 0;
    int mark = sts_replay_mark(w, n) == 0;
    if (expect)
        model_mark(m, n);
    return check == expect && mark == expect;
}

static uint64_t rnd64(void)
{
    uint64_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 16 | (uint64_t)(rand() & 0xffff);
    return v;
}

static void test_basics(void)
{
    struct sts_replay w;
    sts_replay_reset(&w);
    CHECK(sts_replay_check(&w, 0) == 0);     /* counter 0 is a valid first counter */
    CHECK(sts_replay_mark(&w, 0) == 0);
    CHECK(sts_replay_mark(&w, 0) == STS_ERR_REPLAY);
    for (uint64_t n = 1; n < 5000; n++)      /* in order */
        CHECK(sts_replay_mark(&w, n) == 0);
    CHECK(sts_replay_check(&w, 4999) == STS_ERR_REPLAY);
    CHECK(sts_replay_check(&w, 4999 - STS_REPLAY_WINDOW) == STS_ERR_REPLAY); /* seen */

    /* Reordered within the window: each accepted once. */
    sts_replay_reset(&w);
    CHECK(sts_replay_mark(&w, 2000) == 0);
    CHECK(sts_replay_check(&w, 2000 - STS_REPLAY_WINDOW + 1) == 0); /* oldest still inside */
    CHECK(sts_replay_check(&w, 2000 - STS_REPLAY_WINDOW) == STS_ERR_REPLAY); /* too old */
    CHECK(sts_replay_mark(&w, 1500) == 0);
    CHECK(sts_replay_mark(&w, 1500) == STS_ERR_REPLAY);
    CHECK(sts_replay_mark(&w, 1999) == 0);
    CHECK(sts_replay_mark(&w, 2001) == 0);
    CHECK(sts_replay_mark(&w, 1999) == STS_ERR_REPLAY);

    /* A check does not record anything. */
    CHECK(sts_replay_check(&w, 1800) == 0);
    CHECK(sts_replay_check(&w, 1800) == 0);

    /* A huge jump forgets everything below the new window. */
    CHECK(sts_replay_mark(&w, (uint64_t)7 << 32) == 0);
    CHECK(sts_replay_check(&w, 2001) == STS_ERR_REPLAY);
    CHECK(sts_replay_check(&w, ((uint64_t)7 << 32) - 1) == 0);
    CHECK(sts_replay_check(&w, ((uint64_t)7 << 32) - STS_REPLAY_WINDOW + 1) == 0);
    CHECK(sts_replay_check(&w, ((uint64_t)7 << 32) - STS_REPLAY_WINDOW) == STS_ERR_REPLAY);

    /* Top of the counter space: 2^64-2 is the last valid counter. */
    CHECK(sts_replay_check(&w, UINT64_MAX) == STS_ERR_REPLAY);
    CHECK(sts_replay_mark(&w, UINT64_MAX) == STS_ERR_REPLAY);
    CHECK(sts_replay_mark(&w, UINT64_MAX - 1) == 0);
    CHECK(sts_replay_mark(&w, UINT64_MAX - 1) == STS_ERR_REPLAY);
    CHECK(sts_replay_mark(&w, UINT64_MAX - 2) == 0);
    CHECK(sts_replay_mark(&w, UINT64_MAX - STS_REPLAY_WINDOW) == 0);
    CHECK(sts_replay_mark(&w, UINT64_MAX - 1 - STS_REPLAY_WINDOW) == STS_ERR_REPLAY);
}

/* Random walks: small steps both ways, word-boundary jumps, big jumps. */
static void test_against_model(void)
{
    srand(6479);
    int agree = 1;
    for (int run = 0; run < 20 && agree; run++) {
        struct sts_replay w;
        struct model m = { 0 };
        uint64_t base = run % 2 ? 0 : rnd64() >> 2;
        sts_replay_reset(&w);
        for (int i = 0; i < 20000 && agree; i++) {
            int kind = rand() % 100;
            uint64_t n;
            if (kind < 60)
                n = base + (uint64_t)(rand() % 1400);      /* around the window edge */
            else if (kind < 90)
                n = m.top ? m.top - 1 - (uint64_t)(rand() % 1100) + (uint64_t)(rand() % 70) : 0;
            else if (kind < 97)
                n = m.top + (uint64_t)(rand() % 64) * 64; /* whole words ahead */
            else
                n = m.top + (uint64_t)(rand() % 3000);
            if (kind < 60 && rand() % 50 == 0)
                base += 700;
            agree = offer(&w, &m, n);
        }
        free(m.seen);
    }
    CHECK(agree);
}

int main(void)
{
    test_basics();
    test_against_model();
    return unit_done();
}
