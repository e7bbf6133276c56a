#include "proto/group_member.h"
#include "crypto/hash.h"
#include "util/error.h"

#include <math.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>
#include <stdlib.h>
#include <string.h>

/* --- the roster: sender index -> who the key server says it is -------------------
 * Two levels of 256 so a lookup is two loads and a member of a small group
 * holds one page. */
struct roster_entry {
    char name[STS_GROUP_NAME_MAX + 1];
    uint8_t sign_pub[STS_ECDSA_PUB_LEN];
    uint8_t has_sign_pub;
};

struct sts_roster {
    struct roster_entry **pages[256]; /* each NULL or 256 entries */
    size_t count, npages;
};

static struct roster_entry *roster_get(const struct sts_roster *r, uint16_t index)
{
    struct roster_entry **page = r ? r->pages[index >> 8] : NULL;
    return page ? page[index & 0xff] : NULL;
}

static void roster_clear(struct sts_roster *r)
{
    for (size_t i = 0; i < 256; i++) {
        for (size_t j = 0; r->pages[i] && j < 256; j++) free(r->pages[i][j]);
        free(r->pages[i]);
        r->pages[i] = NULL;
    }
    r->count = r->npages = 0;
}

static int roster_apply(struct sts_gmember *m, const struct sts_gmsg_roster_entry *e)
{
    if (!m->roster && !(m->roster = calloc(1, sizeof *m->roster))) return STS_ERR_NOMEM;
    struct roster_entry ***page = &m->roster->pages[e->index >> 8];
    if (!*page && e->op == STS_ROSTER_REMOVE) return 0;
    if (!*page) {
        if (!(*page = calloc(256, sizeof **page))) return STS_ERR_NOMEM;
        m->roster->npages++;
    }
    struct roster_entry **slot = &(*page)[e->index & 0xff];
    if (e->op == STS_ROSTER_REMOVE) {
        if (*slot) m->roster->count--;
        free(*slot);
        *slot = NULL;
        return 0;
    }
    if (!*slot) {
        if (!(*slot = calloc(1, sizeof **slot))) return STS_ERR_NOMEM;
        m->roster->count++;
    }
    memcpy((*slot)->name, e->name, sizeof e->name);
    memcpy((*slot)->sign_pub, e->sign_pub, sizeof e->sign_pub);
    (*slot)->has_sign_pub = e->has_sign_pub;
    return 0;
}

/* --- setting up and tearing down ------------------------------------------------- */

int sts_gmember_init(struct sts_gmember *m, const char *group, const char *client_id, uint32_t grant)
{
    memset(m, 0, sizeof *m);
    size_t glen = strlen(group), clen = client_id ? strlen(client_id) : 0;
    if (!sts_group_name_valid(group, glen) || clen >= sizeof m->client_id) return STS_ERR_INVALID;
    memcpy(m->group, group, glen + 1);
    if (clen) memcpy(m->client_id, client_id, clen + 1);
    m->grant = grant;
    m->state = STS_GMEMBER_JOINING;
    sts_group_keyring_init(&m->keys);
    return sts_p256_keygen(m->sign_priv, m->sign_pub);
}

static void wipe_keys(struct sts_gmember *m)
{
    sts_group_keyring_free(&m->keys);
    sts_group_keyring_init(&m->keys);
    mbedtls_platform_zeroize(m->cover, sizeof m->cover);
    m->ncover = 0;
    m->slot_derived = 0;
}

void sts_gmember_free(struct sts_gmember *m)
{
    wipe_keys(m);
    if (m->roster) roster_clear(m->roster);
    free(m->roster);
    m->roster = NULL;
    mbedtls_platform_zeroize(m->sign_priv, sizeof m->sign_priv);
}

/* --- messages to the key server -------------------------------------------------- */

int sts_gmember_join(struct sts_gmember *m, uint8_t *out, size_t cap, size_t *outlen)
{
    struct sts_gmsg msg = { .type = STS_GMSG_JOIN };
    struct sts_gmsg_join *j = &msg.u.join;
    memcpy(j->group, m->group, sizeof j->group);
    memcpy(j->client_id, m->client_id, sizeof j->client_id);
    memcpy(j->sign_pub, m->sign_pub, sizeof j->sign_pub);
    j->has_sign_pub = 1;
    j->grant = m->grant;
    if (m->state == STS_GMEMBER_JOINED && m->index) {
        j->resume_index = m->index;
        j->resume_epoch = m->epoch;
    }
    return sts_gmsg_encode(&msg, out, cap, outlen);
}

void sts_gmember_stop(struct sts_gmember *m)
{
    m->state = STS_GMEMBER_LEFT;
    wipe_keys(m);
}

int sts_gmember_ping(uint32_t token, uint8_t *out, size_t cap, size_t *outlen)
{
    struct sts_gmsg msg = { .type = STS_GMSG_PING, .u.token = token };
    return sts_gmsg_encode(&msg, out, cap, outlen);
}

/* --- messages from the key server ------------------------------------------------ */

static int take_key(struct sts_gmember *m, const struct sts_gmsg_key *k, double now,
                    struct sts_gmember_change *ch)
{
    int fresh = m->state != STS_GMEMBER_JOINED;
    /* A KEY with another sender index is a new membership (the key server
     * took us back as new, perhaps after losing its state), and one with
     * another method a new group: the keys we hold came with another index,
     * and sealing under one of them with this index could repeat a nonce
     * another member used. Start over with this key alone, whatever its
     * epoch number. */
    int restart = !fresh && (k->index != m->index || k->method != m->method);
    if (restart) wipe_keys(m);
    int rc = sts_group_keyring_add(&m->keys, k->epoch, k->key, now + k->grace);
    if (rc != 0) return rc;
    if (fresh || restart || k->epoch > m->epoch) {
        if (!fresh) ch->rekeyed = 1;
        m->epoch = k->epoch;
    }
    if (restart || m->counter_epoch != m->epoch) {
        m->counter = 0;
        m->counter_epoch = m->epoch;
    }
    m->method = k->method, m->alg = k->alg, m->flags = k->flags;
    m->index = k->index, m->grace = k->grace;
    m->state = STS_GMEMBER_JOINED;
    ch->joined = fresh;
    return 0;
}

/* Whether a grant renews the one we hold: the same schedule, the same index,
 * and the same tree, which shows in a slot both grants cover having the
 * same leaf (a revocation gives the group a new root with the same slots). */
static int renews(const struct sts_gmember *m, const struct sts_gmsg_slots *s)
{
    if (m->method != STS_GROUP_SLOTTED || !m->ncover || s->origin_ms != m->origin_ms ||
        s->depth != m->depth || s->index != m->index)
        return 0;
    uint32_t lo = s->first > m->first ? s->first : m->first, hi = s->last < m->last ? s->last : m->last;
    uint8_t held[STS_KEY_LEN], given[STS_KEY_LEN];
    int same = lo <= hi && sts_slot_leaf(m->cover, m->ncover, m->depth, lo, held) == 0 &&
               sts_slot_leaf(s->nodes, s->count, s->depth, lo, given) == 0 &&
               mbedtls_ct_memcmp(held, given, sizeof held) == 0;
    mbedtls_platform_zeroize(held, sizeof held);
    mbedtls_platform_zeroize(given, sizeof given);
    return same;
}

static int take_slots(struct sts_gmember *m, const struct sts_gmsg_slots *s, double now,
                      struct sts_gmember_change *ch)
{
    int fresh = m->state != STS_GMEMBER_JOINED;
    /* Anything but a renewal (which keeps the slots held, with their
     * windows) starts over: keys derived from another root, or given with
     * another index, go. */
    if (!fresh && !renews(m, s)) {
        wipe_keys(m);
        ch->rekeyed = 1;
    }
    if (s->index != m->index) m->counter = 0;
    m->method = STS_GROUP_SLOTTED, m->alg = s->alg, m->flags = s->flags, m->index = s->index;
    m->slot_seconds = s->slot_seconds, m->depth = s->depth, m->skew = s->skew;
    m->origin_ms = s->origin_ms;
    m->first = s->first, m->last = s->last;
    m->ncover = s->count;
    memcpy(m->cover, s->nodes, s->count * sizeof s->nodes[0]);
    m->offset = (double)s->now_ms / 1000.0 - now;
    m->granted_at = now;
    m->state = STS_GMEMBER_JOINED;
    ch->joined = fresh;
    return 0;
}

static int take_roster(struct sts_gmember *m, const struct sts_gmsg_roster *r, struct sts_gmember_change *ch)
{
    if ((r->flags & STS_GFLAG_REPLACE) && m->roster) roster_clear(m->roster);
    for (size_t i = 0; i < r->count; i++) {
        int rc = roster_apply(m, &r->entries[i]);
        if (rc != 0) return rc;
    }
    ch->roster = 1;
    return 0;
}

static void take_reason(struct sts_gmember *m, const struct sts_gmsg_text *t, enum sts_gmember_state state)
{
    memcpy(m->reason, t->reason, sizeof m->reason);
    m->state = state;
    wipe_keys(m);
}

static const char *group_of(const struct sts_gmsg *msg)
{
    switch (msg->type) {
    case STS_GMSG_KEY: return msg->u.key.group;
    case STS_GMSG_SLOTS: return msg->u.slots.group;
    case STS_GMSG_ROSTER: return msg->u.roster.group;
    case STS_GMSG_REFUSED:
    case STS_GMSG_REMOVED: return msg->u.text.group;
    default: return NULL;
    }
}

static int dispatch(struct sts_gmember *m, const struct sts_gmsg *msg, double now, struct sts_gmember_change *ch)
{
    const char *group = group_of(msg);
    if (group && strcmp(group, m->group) != 0) return STS_ERR_STATE;
    if (m->state == STS_GMEMBER_LEFT || m->state == STS_GMEMBER_REMOVED) return STS_ERR_STATE;
    switch (msg->type) {
    case STS_GMSG_KEY: return take_key(m, &msg->u.key, now, ch);
    case STS_GMSG_SLOTS: return take_slots(m, &msg->u.slots, now, ch);
    case STS_GMSG_ROSTER: return take_roster(m, &msg->u.roster, ch);
    case STS_GMSG_REFUSED:
        if (m->state == STS_GMEMBER_JOINED) return STS_ERR_STATE;
        take_reason(m, &msg->u.text, STS_GMEMBER_REFUSED);
        ch->refused = 1;
        return 0;
    case STS_GMSG_REMOVED:
        take_reason(m, &msg->u.text, STS_GMEMBER_REMOVED);
        ch->removed = 1;
        return 0;
    case STS_GMSG_PING: {
        struct sts_gmsg pong = { .type = STS_GMSG_PONG, .u.token = msg->u.token };
        return sts_gmsg_encode(&pong, ch->reply, sizeof ch->reply, &ch->replylen);
    }
    case STS_GMSG_PONG: return 0;
    default: return STS_ERR_STATE; /* a member's message, sent to us */
    }
}

int sts_gmember_control(struct sts_gmember *m, const uint8_t *msg, size_t len, double now,
                        struct sts_gmember_change *ch)
{
    static struct sts_gmsg_roster_entry entries[STS_GMSG_ROSTER_MAX];
    struct sts_gmsg decoded;
    memset(ch, 0, sizeof *ch);
    int rc = sts_gmsg_decode(msg, len, &decoded, entries);
    if (rc == 0) rc = dispatch(m, &decoded, now, ch);
    mbedtls_platform_zeroize(&decoded, sizeof decoded);
    return rc;
}

double sts_gmember_renew_at(const struct sts_gmember *m)
{
    if (m->state != STS_GMEMBER_JOINED || m->method != STS_GROUP_SLOTTED) return 0;
    /* Renew when four fifths of the grant have passed. */
    double end = ((double)m->origin_ms / 1000.0 + (double)(m->last + 1) * m->slot_seconds) - m->offset;
    return m->granted_at + 0.8 * (end - m->granted_at);
}

/* --- slots ------------------------------------------------------------------------ */

/* The slot the key server's clock is in now. */
static int64_t slot_now(const struct sts_gmember *m, double now)
{
    double ks_now_ms = (now + m->offset) * 1000.0 - (double)m->origin_ms;
    return (int64_t)floor(ks_now_ms / (1000.0 * m->slot_seconds));
}

/* Whether slot s's interval comes within the skew allowance of now. */
static int slot_in_window(const struct sts_gmember *m, uint32_t s, double now)
{
    double t = now + m->offset - (double)m->origin_ms / 1000.0;
    double start = (double)s * m->slot_seconds, end = start + m->slot_seconds;
    return end + m->skew > t && start - m->skew <= t;
}

/* The key of slot s, derived from the grant once and then kept in the keyring
 * (with its replay windows) until it is well past. */
static const uint8_t *slot_key(struct sts_gmember *m, uint32_t s, double now)
{
    const uint8_t *key = sts_group_keyring_key(&m->keys, s, now);
    if (key) return key;
    if (s < m->first || s > m->last) return NULL;
    /* The keyring keeps the newest slots; one older than those may have been
     * dropped, and must not come back with fresh replay windows. */
    if (m->slot_derived && s + (STS_GROUP_KEYRING_EPOCHS - 1) <= m->newest_slot) return NULL;
    uint8_t leaf[STS_KEY_LEN];
    if (sts_slot_leaf(m->cover, m->ncover, m->depth, s, leaf) != 0) return NULL;
    double retire = (double)m->origin_ms / 1000.0 + (double)(s + 1) * m->slot_seconds + m->skew - m->offset;
    int rc = sts_group_keyring_add(&m->keys, s, leaf, retire);
    mbedtls_platform_zeroize(leaf, sizeof leaf);
    if (rc == 0 && (!m->slot_derived || s > m->newest_slot)) m->newest_slot = s;
    if (rc == 0) m->slot_derived = 1;
    return rc == 0 ? sts_group_keyring_key(&m->keys, s, now) : NULL;
}

/* --- frames ----------------------------------------------------------------------- */

static enum sts_aead_alg aead_of(const struct sts_gmember *m)
{
    return m->alg == STS_GROUP_AESGCM ? STS_AEAD_AESGCM : STS_AEAD_CHACHAPOLY;
}

static int sign_frame(const struct sts_gmember *m, uint8_t *frame, size_t len, const char *topic)
{
    uint8_t digest[STS_SHA256_LEN];
    int rc = sts_group_frame_digest(frame, len, topic, digest);
    if (rc == 0) rc = sts_p256_sign(m->sign_priv, digest, frame + len - STS_GROUP_SIG_LEN);
    return rc;
}

int sts_gmember_seal(struct sts_gmember *m, const char *topic, const uint8_t *pt, size_t ptlen,
                     double now, uint8_t *out, size_t cap, size_t *outlen)
{
    if (m->state != STS_GMEMBER_JOINED || !m->index || !(m->flags & STS_GFLAG_WRITE)) return STS_ERR_STATE;
    sts_group_keyring_expire(&m->keys, now);
    uint32_t epoch = m->epoch;
    const uint8_t *key;
    if (m->method == STS_GROUP_SLOTTED) {
        int64_t s = slot_now(m, now);
        if (s < 0 || s > UINT32_MAX || !(key = slot_key(m, (uint32_t)s, now))) return STS_ERR_STATE;
        epoch = (uint32_t)s;
    } else if (!(key = sts_group_keyring_key(&m->keys, epoch, now))) {
        return STS_ERR_STATE;
    }
    if (m->counter_epoch != epoch && m->method != STS_GROUP_SLOTTED) {
        m->counter = 0;
        m->counter_epoch = epoch;
    }
    if (m->counter == UINT64_MAX - 1) return STS_ERR_STATE;
    struct sts_group_header h = {
        .type = (m->flags & STS_GFLAG_SIGNED) ? STS_GROUP_FRAME_DATA_SIGNED : STS_GROUP_FRAME_DATA,
        .epoch = epoch, .sender = m->index, .counter = m->counter,
    };
    int rc = sts_group_frame_seal(aead_of(m), key, &h, topic, pt, ptlen, out, cap, outlen);
    if (rc == 0 && h.type == STS_GROUP_FRAME_DATA_SIGNED) rc = sign_frame(m, out, *outlen, topic);
    if (rc == 0) m->counter++;
    return rc;
}

int sts_gmember_is_own(const struct sts_gmember *m, const uint8_t *frame, size_t len)
{
    return m->index && len >= STS_GROUP_HEADER_LEN && frame[0] == STS_FRAME_VERSION &&
           (frame[1] == STS_GROUP_FRAME_DATA || frame[1] == STS_GROUP_FRAME_DATA_SIGNED) &&
           ((uint16_t)(frame[6] << 8 | frame[7])) == m->index;
}

static enum sts_reason check_signature(const struct roster_entry *who, const uint8_t *frame, size_t len,
                                       const char *topic, const uint8_t *sig)
{
    uint8_t digest[STS_SHA256_LEN];
    if (!who->has_sign_pub) return STS_REASON_UNTRUSTED;
    if (sts_group_frame_digest(frame, len, topic, digest) != 0) return STS_REASON_INTERNAL;
    return sts_p256_verify(who->sign_pub, digest, sig) == 0 ? STS_REASON_NONE : STS_REASON_AUTH;
}

static const uint8_t *key_for(struct sts_gmember *m, uint32_t epoch, double now)
{
    if (m->method != STS_GROUP_SLOTTED) return sts_group_keyring_key(&m->keys, epoch, now);
    return slot_in_window(m, epoch, now) ? slot_key(m, epoch, now) : NULL;
}

enum sts_reason sts_gmember_open(struct sts_gmember *m, const char *topic, const uint8_t *frame,
                                 size_t len, double now, uint8_t *out, size_t *ptlen,
                                 struct sts_gmember_info *info)
{
    struct sts_group_header h;
    const uint8_t *body, *sig;
    size_t bodylen;
    enum sts_reason why = sts_group_frame_parse(frame, len, &h, &body, &bodylen, &sig);
    if (why != STS_REASON_NONE) return why;
    if (m->state != STS_GMEMBER_JOINED) return STS_REASON_STATE;
    sts_group_keyring_expire(&m->keys, now); /* keys past their grace are wiped, not just unused */
    int signed_group = (m->flags & STS_GFLAG_SIGNED) != 0;
    if (signed_group && h.type != STS_GROUP_FRAME_DATA_SIGNED) return STS_REASON_SUITE;
    const struct roster_entry *who = roster_get(m->roster, h.sender);
    if (!who) return STS_REASON_UNTRUSTED;
    const uint8_t *key = key_for(m, h.epoch, now);
    if (!key) return STS_REASON_STALE_EPOCH;
    if (sts_group_keyring_check(&m->keys, h.epoch, h.sender, h.counter) != 0) return STS_REASON_REPLAY;
    /* The cheap check first: a frame that does not open is not worth a
     * signature verification. */
    if (sts_group_frame_open(aead_of(m), key, frame, topic, body, bodylen, out) != 0) return STS_REASON_AUTH;
    *ptlen = bodylen - STS_AEAD_TAG_LEN;
    if (signed_group && (why = check_signature(who, frame, len, topic, sig)) != STS_REASON_NONE) {
        mbedtls_platform_zeroize(out, *ptlen);
        return why;
    }
    if (sts_group_keyring_mark(&m->keys, h.epoch, h.sender, h.counter) != 0) {
        mbedtls_platform_zeroize(out, *ptlen);
        return STS_REASON_INTERNAL;
    }
    info->sender = who->name;
    info->epoch = h.epoch;
    info->index = h.sender;
    info->counter = h.counter;
    return STS_REASON_NONE;
}

size_t sts_gmember_memory(const struct sts_gmember *m)
{
    size_t n = sizeof *m + sts_group_keyring_memory(&m->keys);
    if (m->roster)
        n += sizeof *m->roster + m->roster->npages * 256 * sizeof(void *) +
             m->roster->count * sizeof(struct roster_entry);
    return n;
}
