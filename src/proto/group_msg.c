#include "proto/group_msg.h"
#include "util/error.h"

#include <mbedtls/platform_util.h>
#include <string.h>

#define KEY_FLAGS (STS_GFLAG_SIGNED | STS_GFLAG_WRITE | STS_GFLAG_READ)
#define CLIENT_ID_MAX 255 /* what a str8 holds */

/* The rules on field values. Encoding checks them before writing a byte and
 * decoding after reading the last one, so whatever one side accepts the
 * other does too, and a decoded message encodes back to the same bytes. */

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '_' || c == '.' || c == '-';
}

int sts_group_name_valid(const char *s, size_t len)
{
    if (len < 1 || len > STS_GROUP_NAME_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_name_char(s[i])) return 0;
    return 1;
}

/* A NUL-terminated name in an array of cap bytes. */
static int name_ok(const char *s, size_t cap)
{
    return sts_group_name_valid(s, strnlen(s, cap));
}

/* min..max bytes, each from lowest to '~'. */
static int text_ok(const char *s, size_t cap, size_t min, size_t max, unsigned char lowest)
{
    size_t n = strnlen(s, cap);

    if (n < min || n > max) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < lowest || (unsigned char)s[i] > '~') return 0;
    return 1;
}

static int pub_ok(const uint8_t pub[STS_ECDSA_PUB_LEN], uint8_t has)
{
    return !has || pub[0] == 0x04;
}

static int alg_ok(uint8_t alg)
{
    return alg == STS_GROUP_CHACHAPOLY || alg == STS_GROUP_AESGCM;
}

/* A key comes with READ; a sender has an index, 0 being no sender's. */
static int access_ok(uint8_t flags, uint16_t index)
{
    return (flags & ~KEY_FLAGS) == 0 && (flags & STS_GFLAG_READ)
           && (index != 0 || !(flags & STS_GFLAG_WRITE));
}

static int key_ok(const struct sts_gmsg_key *k)
{
    /* SLOTTED keys travel in SLOTS. */
    return name_ok(k->group, sizeof k->group)
           && (k->method == STS_GROUP_STATIC || k->method == STS_GROUP_UPDATE)
           && alg_ok(k->alg) && access_ok(k->flags, k->index);
}

static int node_ok(const struct sts_slot_node *n, uint8_t depth)
{
    return n->depth <= depth && n->pos < (uint64_t)1 << n->depth;
}

static int slots_ok(const struct sts_gmsg_slots *s)
{
    if (!name_ok(s->group, sizeof s->group) || !alg_ok(s->alg) || !access_ok(s->flags, s->index)
        || s->slot_seconds < 1 || s->depth < 1 || s->depth > STS_SLOT_DEPTH_MAX
        || s->first > s->last || s->last >= (uint64_t)1 << s->depth
        || s->count < 1 || s->count > STS_SLOT_COVER_MAX)
        return 0;
    for (size_t i = 0; i < s->count; i++)
        if (!node_ok(&s->nodes[i], s->depth)) return 0;
    return 1;
}

static int roster_entry_ok(const struct sts_gmsg_roster_entry *e)
{
    if (e->index < 1) return 0;
    if (e->op == STS_ROSTER_ADD)
        return name_ok(e->name, sizeof e->name) && pub_ok(e->sign_pub, e->has_sign_pub);
    return e->op == STS_ROSTER_REMOVE && e->name[0] == '\0' && !e->has_sign_pub;
}

static int roster_ok(const struct sts_gmsg_roster *r)
{
    if (!name_ok(r->group, sizeof r->group) || (r->flags & ~STS_GFLAG_REPLACE) != 0
        || r->count > STS_GMSG_ROSTER_MAX || (r->count > 0 && r->entries == NULL))
        return 0;
    for (size_t i = 0; i < r->count; i++)
        if (!roster_entry_ok(&r->entries[i])) return 0;
    return 1;
}

static int join_ok(const struct sts_gmsg_join *j)
{
    return name_ok(j->group, sizeof j->group)
           && text_ok(j->client_id, sizeof j->client_id, 0, CLIENT_ID_MAX, 0x21)
           && pub_ok(j->sign_pub, j->has_sign_pub);
}

static int message_ok(const struct sts_gmsg *m)
{
    const struct sts_gmsg_text *t = &m->u.text;

    switch (m->type) {
    case STS_GMSG_JOIN: return join_ok(&m->u.join);
    case STS_GMSG_LEAVE: return name_ok(t->group, sizeof t->group) && t->reason[0] == '\0';
    case STS_GMSG_PING:
    case STS_GMSG_PONG: return 1;
    case STS_GMSG_KEY: return key_ok(&m->u.key);
    case STS_GMSG_SLOTS: return slots_ok(&m->u.slots);
    case STS_GMSG_ROSTER: return roster_ok(&m->u.roster);
    case STS_GMSG_REFUSED:
    case STS_GMSG_REMOVED:
        return name_ok(t->group, sizeof t->group)
               && text_ok(t->reason, sizeof t->reason, 1, STS_GROUP_REASON_MAX, 0x20);
    }
    return 0;
}

/* Encoding. The writer counts every byte but stores only what fits, so one
 * check at the end tells whether the message did. */

struct writer {
    uint8_t *out;
    size_t cap, len;
};

static void put(struct writer *w, const void *src, size_t n)
{
    if (n > 0 && w->len <= w->cap && n <= w->cap - w->len) memcpy(w->out + w->len, src, n);
    w->len += n;
}

static void put_uint(struct writer *w, uint64_t v, size_t n)
{
    uint8_t b[8];

    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    put(w, b, n);
}

static void put_str8(struct writer *w, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    put_uint(w, n, 1);
    put(w, s, n);
}

static void put_pub(struct writer *w, const uint8_t pub[STS_ECDSA_PUB_LEN], uint8_t has)
{
    put_uint(w, has ? STS_ECDSA_PUB_LEN : 0, 1);
    if (has) put(w, pub, STS_ECDSA_PUB_LEN);
}

static void put_join(struct writer *w, const struct sts_gmsg_join *j)
{
    put_str8(w, j->group, sizeof j->group);
    put_str8(w, j->client_id, sizeof j->client_id);
    put_pub(w, j->sign_pub, j->has_sign_pub);
    put_uint(w, j->grant, 4);
    put_uint(w, j->resume_epoch, 4);
    put_uint(w, j->resume_index, 2);
}

static void put_key(struct writer *w, const struct sts_gmsg_key *k)
{
    put_str8(w, k->group, sizeof k->group);
    put_uint(w, k->method, 1);
    put_uint(w, k->alg, 1);
    put_uint(w, k->flags, 1);
    put_uint(w, k->epoch, 4);
    put_uint(w, k->index, 2);
    put_uint(w, k->grace, 2);
    put(w, k->key, STS_KEY_LEN);
}

static void put_slots(struct writer *w, const struct sts_gmsg_slots *s)
{
    put_str8(w, s->group, sizeof s->group);
    put_uint(w, s->alg, 1);
    put_uint(w, s->flags, 1);
    put_uint(w, s->index, 2);
    put_uint(w, s->slot_seconds, 4);
    put_uint(w, s->depth, 1);
    put_uint(w, s->skew, 2);
    put_uint(w, s->origin_ms, 8);
    put_uint(w, s->now_ms, 8);
    put_uint(w, s->first, 4);
    put_uint(w, s->last, 4);
    put_uint(w, s->count, 1);
    for (size_t i = 0; i < s->count; i++) {
        put_uint(w, s->nodes[i].depth, 1);
        put_uint(w, s->nodes[i].pos, 4);
        put(w, s->nodes[i].key, STS_KEY_LEN);
    }
}

static void put_roster(struct writer *w, const struct sts_gmsg_roster *r)
{
    put_str8(w, r->group, sizeof r->group);
    put_uint(w, r->flags, 1);
    put_uint(w, r->count, 2);
    for (size_t i = 0; i < r->count; i++) {
        const struct sts_gmsg_roster_entry *e = &r->entries[i];
        put_uint(w, e->index, 2);
        put_uint(w, e->op, 1);
        put_str8(w, e->name, sizeof e->name);
        put_pub(w, e->sign_pub, e->has_sign_pub);
    }
}

static void put_body(struct writer *w, const struct sts_gmsg *m)
{
    switch (m->type) {
    case STS_GMSG_JOIN: put_join(w, &m->u.join); break;
    case STS_GMSG_LEAVE: put_str8(w, m->u.text.group, sizeof m->u.text.group); break;
    case STS_GMSG_PING:
    case STS_GMSG_PONG: put_uint(w, m->u.token, 4); break;
    case STS_GMSG_KEY: put_key(w, &m->u.key); break;
    case STS_GMSG_SLOTS: put_slots(w, &m->u.slots); break;
    case STS_GMSG_ROSTER: put_roster(w, &m->u.roster); break;
    case STS_GMSG_REFUSED:
    case STS_GMSG_REMOVED:
        put_str8(w, m->u.text.group, sizeof m->u.text.group);
        put_str8(w, m->u.text.reason, sizeof m->u.text.reason);
        break;
    }
}

int sts_gmsg_encode(const struct sts_gmsg *m, uint8_t *out, size_t cap, size_t *outlen)
{
    struct writer w = { .out = out, .cap = cap };

    if (!message_ok(m)) return STS_ERR_INVALID;
    put_uint(&w, STS_GMSG_VERSION, 1);
    put_uint(&w, m->type, 1);
    put_body(&w, m);
    if (w.len > cap) {
        mbedtls_platform_zeroize(out, cap); /* key bytes written before the end ran out */
        return STS_ERR_TOO_BIG;
    }
    *outlen = w.len;
    return 0;
}

/* Decoding. The reader keeps its first error and reads nothing after it, so
 * the field readers need no checks of their own; a prefix of a valid message
 * fails only by running out, as STS_ERR_TRUNCATED. */

struct reader {
    const uint8_t *in;
    size_t left;
    int err;
};

static void refuse(struct reader *r, int err)
{
    if (r->err == 0) r->err = err;
}

static const uint8_t *take(struct reader *r, size_t n)
{
    const uint8_t *p = r->in;

    if (r->err != 0) return NULL;
    if (r->left < n) {
        refuse(r, STS_ERR_TRUNCATED);
        return NULL;
    }
    r->in += n;
    r->left -= n;
    return p;
}

static uint64_t get_uint(struct reader *r, size_t n)
{
    const uint8_t *p = take(r, n);
    uint64_t v = 0;

    for (size_t i = 0; p != NULL && i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void get_bytes(struct reader *r, void *out, size_t n)
{
    const uint8_t *p = take(r, n);
    if (p != NULL) memcpy(out, p, n);
}

/* Into out (cap bytes, NUL-terminated); a NUL inside would cut the string
 * short and re-encode differently. */
static void get_str8(struct reader *r, char *out, size_t cap)
{
    size_t n = (size_t)get_uint(r, 1);
    const uint8_t *p;

    if (n >= cap) refuse(r, STS_ERR_INVALID);
    p = take(r, n);
    if (p == NULL) return;
    if (memchr(p, '\0', n) != NULL) refuse(r, STS_ERR_INVALID);
    memcpy(out, p, n);
    out[n] = '\0';
}

static void get_pub(struct reader *r, uint8_t pub[STS_ECDSA_PUB_LEN], uint8_t *has)
{
    size_t n = (size_t)get_uint(r, 1);

    if (n != 0 && n != STS_ECDSA_PUB_LEN) refuse(r, STS_ERR_INVALID);
    get_bytes(r, pub, n);
    *has = n != 0;
}

static void get_join(struct reader *r, struct sts_gmsg_join *j)
{
    get_str8(r, j->group, sizeof j->group);
    get_str8(r, j->client_id, sizeof j->client_id);
    get_pub(r, j->sign_pub, &j->has_sign_pub);
    j->grant = (uint32_t)get_uint(r, 4);
    j->resume_epoch = (uint32_t)get_uint(r, 4);
    j->resume_index = (uint16_t)get_uint(r, 2);
}

static void get_key(struct reader *r, struct sts_gmsg_key *k)
{
    get_str8(r, k->group, sizeof k->group);
    k->method = (uint8_t)get_uint(r, 1);
    k->alg = (uint8_t)get_uint(r, 1);
    k->flags = (uint8_t)get_uint(r, 1);
    k->epoch = (uint32_t)get_uint(r, 4);
    k->index = (uint16_t)get_uint(r, 2);
    k->grace = (uint16_t)get_uint(r, 2);
    get_bytes(r, k->key, STS_KEY_LEN);
}

static void get_slots(struct reader *r, struct sts_gmsg_slots *s)
{
    get_str8(r, s->group, sizeof s->group);
    s->alg = (uint8_t)get_uint(r, 1);
    s->flags = (uint8_t)get_uint(r, 1);
    s->index = (uint16_t)get_uint(r, 2);
    s->slot_seconds = (uint32_t)get_uint(r, 4);
    s->depth = (uint8_t)get_uint(r, 1);
    s->skew = (uint16_t)get_uint(r, 2);
    s->origin_ms = get_uint(r, 8);
    s->now_ms = get_uint(r, 8);
    s->first = (uint32_t)get_uint(r, 4);
    s->last = (uint32_t)get_uint(r, 4);
    s->count = (uint8_t)get_uint(r, 1);
    if (s->count > STS_SLOT_COVER_MAX) {
        refuse(r, STS_ERR_INVALID);
        return;
    }
    for (size_t i = 0; i < s->count; i++) {
        s->nodes[i].depth = (uint8_t)get_uint(r, 1);
        s->nodes[i].pos = (uint32_t)get_uint(r, 4);
        get_bytes(r, s->nodes[i].key, STS_KEY_LEN);
    }
}

static void get_roster(struct reader *r, struct sts_gmsg_roster *ro,
                       struct sts_gmsg_roster_entry *entries)
{
    get_str8(r, ro->group, sizeof ro->group);
    ro->flags = (uint8_t)get_uint(r, 1);
    ro->count = (uint16_t)get_uint(r, 2);
    ro->entries = entries;
    if (ro->count > STS_GMSG_ROSTER_MAX || (ro->count > 0 && entries == NULL)) {
        refuse(r, STS_ERR_INVALID);
        return;
    }
    for (size_t i = 0; i < ro->count; i++) {
        struct sts_gmsg_roster_entry *e = &entries[i];
        memset(e, 0, sizeof *e);
        e->index = (uint16_t)get_uint(r, 2);
        e->op = (uint8_t)get_uint(r, 1);
        get_str8(r, e->name, sizeof e->name);
        get_pub(r, e->sign_pub, &e->has_sign_pub);
    }
}

static void get_body(struct reader *r, struct sts_gmsg *m, struct sts_gmsg_roster_entry *entries)
{
    switch (m->type) {
    case STS_GMSG_JOIN: get_join(r, &m->u.join); return;
    case STS_GMSG_LEAVE: get_str8(r, m->u.text.group, sizeof m->u.text.group); return;
    case STS_GMSG_PING:
    case STS_GMSG_PONG: m->u.token = (uint32_t)get_uint(r, 4); return;
    case STS_GMSG_KEY: get_key(r, &m->u.key); return;
    case STS_GMSG_SLOTS: get_slots(r, &m->u.slots); return;
    case STS_GMSG_ROSTER: get_roster(r, &m->u.roster, entries); return;
    case STS_GMSG_REFUSED:
    case STS_GMSG_REMOVED:
        get_str8(r, m->u.text.group, sizeof m->u.text.group);
        get_str8(r, m->u.text.reason, sizeof m->u.text.reason);
        return;
    }
    refuse(r, STS_ERR_INVALID);
}

int sts_gmsg_decode(const uint8_t *msg, size_t len, struct sts_gmsg *m,
                    struct sts_gmsg_roster_entry *entries)
{
    struct reader r = { .in = msg, .left = len };
    uint8_t version;

    memset(m, 0, sizeof *m);
    version = (uint8_t)get_uint(&r, 1);
    if (r.err == 0 && version != STS_GMSG_VERSION) return STS_ERR_UNSUPPORTED;
    m->type = (uint8_t)get_uint(&r, 1);
    if (r.err == 0) get_body(&r, m, entries);
    if (r.err == 0 && r.left > 0) refuse(&r, STS_ERR_INVALID);
    if (r.err == 0 && !message_ok(m)) refuse(&r, STS_ERR_INVALID);
    if (r.err != 0) mbedtls_platform_zeroize(m, sizeof *m); /* half a message is no message */
    return r.err;
}
