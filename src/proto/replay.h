/* A sliding anti-replay window over 64-bit counters, in the style of
 * RFC 6479: a ring of 64-bit words holding one bit per counter, slid forward
 * by the highest counter seen. Checking and marking are separate calls so
 * a receiver can reject duplicates and stale counters before spending an
 * AEAD decryption on them, and record a counter only once its tag verified
 * (a forged frame must not move the window). */
#ifndef STS_PROTO_REPLAY_H
#define STS_PROTO_REPLAY_H

#include <stdint.h>

/* 16 words of history plus the word being filled: the STS_REPLAY_WINDOW
 * counters ending at the highest one seen are remembered; older ones are
 * refused outright. */
#define STS_REPLAY_WORDS 17
#define STS_REPLAY_WINDOW ((STS_REPLAY_WORDS - 1) * 64) /* 1024 counters */

struct sts_replay {
    uint64_t top; /* highest counter seen + 1; 0 while nothing is seen */
    uint64_t bits[STS_REPLAY_WORDS];
};

/* Empties the window: every counter is acceptable again. */
void sts_replay_reset(struct sts_replay *w);

/* 0 when counter n may be new, STS_ERR_REPLAY when it was seen, is older than
 * the window, or is 2^64-1 (never sent: senders stop before it). */
int sts_replay_check(const struct sts_replay *w, uint64_t n);

/* Records counter n as seen, sliding the window forward if n is the new
 * highest. Same result as sts_replay_check; the window changes only on 0. */
int sts_replay_mark(struct sts_replay *w, uint64_t n);

#endif
