#include "proto/noise_patterns.h"
#include "util/error.h"

#include <string.h>

/* Every pattern of revision 34 in the spec's own notation, so each entry can
 * be checked against the spec by eye: pre-messages, "...", then messages. */
static const struct {
    const char *name, *text;
} patterns[] = {
    /* §7.4 one-way patterns */
    { "N", "<- s\n...\n-> e, es" },
    { "K", "-> s\n<- s\n...\n-> e, es, ss" },
    { "X", "<- s\n...\n-> e, es, s, ss" },

    /* §7.5 fundamental interactive patterns */
    { "NN", "-> e\n<- e, ee" },
    { "NK", "<- s\n...\n-> e, es\n<- e, ee" },
    { "NX", "-> e\n<- e, ee, s, es" },
    { "KN", "-> s\n...\n-> e\n<- e, ee, se" },
    { "KK", "-> s\n<- s\n...\n-> e, es, ss\n<- e, ee, se" },
    { "KX", "-> s\n...\n-> e\n<- e, ee, se, s, es" },
    { "XN", "-> e\n<- e, ee\n-> s, se" },
    { "XK", "<- s\n...\n-> e, es\n<- e, ee\n-> s, se" },
    { "XX", "-> e\n<- e, ee, s, es\n-> s, se" },
    { "IN", "-> e, s\n<- e, ee, se" },
    { "IK", "<- s\n...\n-> e, es, s, ss\n<- e, ee, se" },
    { "IX", "-> e, s\n<- e, ee, se, s, es" },

    /* §18.1 deferred patterns */
    { "NK1", "<- s\n...\n-> e\n<- e, ee, es" },
    { "NX1", "-> e\n<- e, ee, s\n-> es" },
    { "X1N", "-> e\n<- e, ee\n-> s\n<- se" },
    { "X1K", "<- s\n...\n-> e, es\n<- e, ee\n-> s\n<- se" },
    { "XK1", "<- s\n...\n-> e\n<- e, ee, es\n-> s, se" },
    { "X1K1", "<- s\n...\n-> e\n<- e, ee, es\n-> s\n<- se" },
    { "X1X", "-> e\n<- e, ee, s, es\n-> s\n<- se" },
    { "XX1", "-> e\n<- e, ee, s\n-> es, s, se" },
    { "X1X1", "-> e\n<- e, ee, s\n-> es, s\n<- se" },
    { "K1N", "-> s\n...\n-> e\n<- e, ee\n-> se" },
    { "K1K", "-> s\n<- s\n...\n-> e, es\n<- e, ee\n-> se" },
    { "KK1", "-> s\n<- s\n...\n-> e\n<- e, ee, se, es" },
    { "K1K1", "-> s\n<- s\n...\n-> e\n<- e, ee, es\n-> se" },
    { "K1X", "-> s\n...\n-> e\n<- e, ee, s, es\n-> se" },
    { "KX1", "-> s\n...\n-> e\n<- e, ee, se, s\n-> es" },
    { "K1X1", "-> s\n...\n-> e\n<- e, ee, s\n-> se, es" },
    { "I1N", "-> e, s\n<- e, ee\n-> se" },
    { "I1K", "<- s\n...\n-> e, es, s\n<- e, ee\n-> se" },
    { "IK1", "<- s\n...\n-> e, s\n<- e, ee, se, es" },
    { "I1K1", "<- s\n...\n-> e, s\n<- e, ee, es\n-> se" },
    { "I1X", "-> e, s\n<- e, ee, s, es\n-> se" },
    { "IX1", "-> e, s\n<- e, ee, se, s\n-> es" },
    { "I1X1", "-> e, s\n<- e, ee, s\n-> se, es" },
};

static const char *const token_names[] = {
    [NOISE_E] = "e", [NOISE_S] = "s", [NOISE_EE] = "ee", [NOISE_ES] = "es",
    [NOISE_SE] = "se", [NOISE_SS] = "ss", [NOISE_PSK] = "psk",
};

const char *noise_pattern_name(size_t i)
{
    return i < sizeof patterns / sizeof *patterns ? patterns[i].name : NULL;
}

/* ---- the notation ---- */

static int parse_token(const char **p, uint8_t *tok)
{
    size_t n = strcspn(*p, ",\n");

    for (size_t i = 0; i < sizeof token_names / sizeof *token_names; i++) {
        if (strlen(token_names[i]) == n && memcmp(*p, token_names[i], n) == 0) {
            *tok = (uint8_t)i;
            *p += n;
            return 0;
        }
    }
    return STS_ERR_INVALID;
}

/* One line, "-> e, es" or "<- e, ee", into its sender and tokens. */
static int parse_line(const char **p, int *party, uint8_t *toks, size_t *ntoks)
{
    if (strncmp(*p, "-> ", 3) == 0) *party = 0;
    else if (strncmp(*p, "<- ", 3) == 0) *party = 1;
    else return STS_ERR_INVALID;
    *p += 3;
    for (*ntoks = 0;; (*p) += 2) {
        if (*ntoks == NOISE_MAX_TOKENS || parse_token(p, &toks[*ntoks]) != 0)
            return STS_ERR_INVALID;
        (*ntoks)++;
        if (strncmp(*p, ", ", 2) != 0) break;
    }
    if (**p == '\n') (*p)++;
    else if (**p != '\0') return STS_ERR_INVALID;
    return 0;
}

/* Pre-message lines up to "...": the initiator's first, keys only. */
static int parse_premessages(struct noise_pattern *pat, const char **p)
{
    uint8_t toks[NOISE_MAX_TOKENS];
    size_t ntoks;
    int party;

    while (strncmp(*p, "...\n", 4) != 0) {
        if (parse_line(p, &party, toks, &ntoks) != 0 || pat->pre[party] != 0
            || (party == 0 && pat->pre[1] != 0))
            return STS_ERR_INVALID;
        for (size_t i = 0; i < ntoks; i++) {
            unsigned key = toks[i] == NOISE_E ? NOISE_KEY_E : toks[i] == NOISE_S ? NOISE_KEY_S : 0;
            if (key == 0 || (pat->pre[party] & key)) return STS_ERR_INVALID;
            pat->pre[party] |= (uint8_t)key;
        }
    }
    *p += 4;
    return 0;
}

static int parse_pattern(struct noise_pattern *pat, const char *text)
{
    const char *p = text;
    int party;

    memset(pat, 0, sizeof *pat);
    if (strstr(text, "...\n") && parse_premessages(pat, &p) != 0) return STS_ERR_INVALID;
    while (*p) {
        size_t m = pat->nmsgs;
        if (m == NOISE_MAX_MSGS || parse_line(&p, &party, pat->tokens[m], &pat->ntokens[m]) != 0
            || party != (int)(m % 2)) /* turns alternate, the initiator first */
            return STS_ERR_INVALID;
        pat->nmsgs++;
    }
    return pat->nmsgs > 0 ? 0 : STS_ERR_INVALID;
}

/* ---- modifiers (§9.4): "psk0" opens the first message, "pskN" ends the Nth ---- */

static int add_psk(struct noise_pattern *pat, unsigned pos)
{
    size_t m = pos == 0 ? 0 : pos - 1;
    uint8_t *toks;

    if (pos > pat->nmsgs || pat->ntokens[m] == NOISE_MAX_TOKENS) return STS_ERR_INVALID;
    toks = pat->tokens[m];
    if (pos == 0) {
        memmove(toks + 1, toks, pat->ntokens[m]);
        toks[0] = NOISE_PSK;
    } else {
        toks[pat->ntokens[m]] = NOISE_PSK;
    }
    pat->ntokens[m]++;
    pat->npsks++;
    return 0;
}

/* "psk0+psk2": one name for one protocol, so positions must ascend. */
static int apply_modifiers(struct noise_pattern *pat, const char *p, const char *end)
{
    int last = -1;

    while (p < end) {
        int pos = 0;
        const char *digits;

        if (end - p < 3 || memcmp(p, "psk", 3) != 0) return STS_ERR_UNSUPPORTED;
        for (digits = p += 3; p < end && *p >= '0' && *p <= '9' && pos < 100; p++)
            pos = pos * 10 + (*p - '0');
        if (p == digits || (*digits == '0' && p - digits > 1) || pos <= last) return STS_ERR_INVALID;
        if (add_psk(pat, (unsigned)pos) != 0) return STS_ERR_INVALID;
        last = pos;
        if (p < end && (*p != '+' || ++p == end)) return STS_ERR_INVALID;
    }
    return 0;
}

/* ---- validity (§7.3 rules 1-4, §9.3), by walking the pattern ---- */

struct walk {
    unsigned sent[2]; /* NOISE_KEY_* each party has sent, pre-messages included */
    unsigned dh;      /* bit (1 << token) for each DH done */
    int psk;          /* a psk token has been processed */
};

static int done(const struct walk *w, enum noise_token t)
{
    return (w->dh >> t) & 1;
}

/* Whether party may call ENCRYPT now. Rule 4: a DH of its static key with a
 * remote key must be matched by a DH of its ephemeral with that key. §9.3:
 * after a psk, encrypted data needs the party's ephemeral to be out. */
static int may_encrypt(const struct walk *w, int party)
{
    if (party == 0 && ((done(w, NOISE_SE) && !done(w, NOISE_EE))
                       || (done(w, NOISE_SS) && !done(w, NOISE_ES))))
        return 0;
    if (party == 1 && ((done(w, NOISE_ES) && !done(w, NOISE_EE))
                       || (done(w, NOISE_SS) && !done(w, NOISE_SE))))
        return 0;
    return !w->psk || (w->sent[party] & NOISE_KEY_E);
}

static int walk_token(struct walk *w, int party, enum noise_token t)
{
    unsigned key, ikey, rkey;

    switch (t) {
    case NOISE_E:
    case NOISE_S:
        key = t == NOISE_E ? NOISE_KEY_E : NOISE_KEY_S;
        if (w->sent[party] & key) return 0;                  /* rule 2 */
        if (t == NOISE_S && !may_encrypt(w, party)) return 0; /* s may be encrypted */
        w->sent[party] |= key;
        return 1;
    case NOISE_PSK:
        w->psk = 1;
        return 1;
    default: /* a DH: first letter the initiator's key, second the responder's */
        ikey = t == NOISE_SE || t == NOISE_SS ? NOISE_KEY_S : NOISE_KEY_E;
        rkey = t == NOISE_ES || t == NOISE_SS ? NOISE_KEY_S : NOISE_KEY_E;
        if (!(w->sent[0] & ikey) || !(w->sent[1] & rkey) || done(w, t)) return 0; /* rules 1, 3 */
        w->dh |= 1u << t;
        return 1;
    }
}

static int check_validity(const struct noise_pattern *pat)
{
    struct walk w = { { pat->pre[0], pat->pre[1] }, 0, 0 };

    for (size_t m = 0; m < pat->nmsgs; m++) {
        int party = (int)(m % 2);
        for (size_t i = 0; i < pat->ntokens[m]; i++)
            if (!walk_token(&w, party, pat->tokens[m][i])) return STS_ERR_INVALID;
        if (!may_encrypt(&w, party)) return STS_ERR_INVALID; /* the payload */
    }
    /* Transport payloads: from both parties, or the initiator alone (one-way). */
    if (!may_encrypt(&w, 0) || (!noise_pattern_one_way(pat) && !may_encrypt(&w, 1)))
        return STS_ERR_INVALID;
    return 0;
}

/* ---- entry points ---- */

int noise_pattern_parse(struct noise_pattern *pat, const char *text)
{
    int err = parse_pattern(pat, text);
    return err != 0 ? err : check_validity(pat);
}

int noise_pattern_from_name(struct noise_pattern *pat, const char *name, size_t len)
{
    size_t base = 0;
    int err;

    while (base < len && ((name[base] >= 'A' && name[base] <= 'Z')
                          || (name[base] >= '0' && name[base] <= '9')))
        base++;
    if (base == 0) return STS_ERR_INVALID;
    for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++) {
        if (strlen(patterns[i].name) != base || memcmp(patterns[i].name, name, base) != 0)
            continue;
        if ((err = parse_pattern(pat, patterns[i].text)) != 0
            || (err = apply_modifiers(pat, name + base, name + len)) != 0)
            return err;
        return check_validity(pat);
    }
    return STS_ERR_UNSUPPORTED;
}

int noise_pattern_sends(const struct noise_pattern *pat, int party, enum noise_token tok)
{
    for (size_t m = (size_t)party; m < pat->nmsgs; m += 2)
        if (memchr(pat->tokens[m], tok, pat->ntokens[m])) return 1;
    return 0;
}
