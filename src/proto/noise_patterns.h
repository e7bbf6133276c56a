/* Noise handshake patterns as data (internal to the Noise engine): the
 * spec's pattern notation, parsed into token arrays, with psk modifiers
 * applied and the validity rules of spec §7.3 and §9.3 checked. */
#ifndef STS_PROTO_NOISE_PATTERNS_H
#define STS_PROTO_NOISE_PATTERNS_H

#include <stddef.h>
#include <stdint.h>

enum noise_token { NOISE_E, NOISE_S, NOISE_EE, NOISE_ES, NOISE_SE, NOISE_SS, NOISE_PSK };

/* Key bits for pre-messages and sent keys. */
#define NOISE_KEY_E 1u
#define NOISE_KEY_S 2u

#define NOISE_MAX_MSGS 4   /* the longest spec patterns (X1K, X1X1, ...) have 4 */
#define NOISE_MAX_TOKENS 8 /* 5 in the longest message, plus psk tokens */
#define NOISE_MAX_PSKS (NOISE_MAX_MSGS + 1) /* psk0 .. psk4 */

/* Party 0 is the initiator, party 1 the responder; message i is sent by
 * party i % 2. */
struct noise_pattern {
    uint8_t pre[2]; /* pre-message keys of each party: NOISE_KEY_* bits */
    size_t nmsgs;
    size_t ntokens[NOISE_MAX_MSGS];
    uint8_t tokens[NOISE_MAX_MSGS][NOISE_MAX_TOKENS]; /* enum noise_token */
    size_t npsks; /* psk tokens in the whole pattern */
};

/* Fills pat from a pattern in the spec's notation, lines separated by "\n":
 * "<- s\n...\n-> e, es\n<- e, ee". STS_ERR_INVALID when it is malformed or
 * breaks a validity rule. */
int noise_pattern_parse(struct noise_pattern *pat, const char *text);

/* Fills pat from the pattern section of a protocol name (len bytes at name,
 * e.g. "XX", "NK1", "NNpsk0+psk2"). STS_ERR_UNSUPPORTED for a pattern or
 * modifier we do not know, STS_ERR_INVALID for a malformed or invalid one. */
int noise_pattern_from_name(struct noise_pattern *pat, const char *name, size_t len);

/* Whether party (0 or 1) sends token tok in some message. */
int noise_pattern_sends(const struct noise_pattern *pat, int party, enum noise_token tok);

/* A one-way pattern has one message; only the initiator sends transport data. */
static inline int noise_pattern_one_way(const struct noise_pattern *pat)
{
    return pat->nmsgs == 1;
}

/* The name of the i-th pattern of the table, NULL past the end (for tests). */
const char *noise_pattern_name(size_t i);

#endif
