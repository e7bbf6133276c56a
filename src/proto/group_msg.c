#include "proto/group_msg.h"
#include "util/error.h"
#include "util/wire.h"

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

/* Encoding: one check at the end tells whether the message fitted. */

static void put_pub(struct sts_wire_writer *w, const uint8_t pub[STS_ECDSA_PUB_LEN], uint8_t has)
{
    sts_wire_put_u8(w, has ? STS_ECDSA_PUB_LEN : 0);
    if (has) sts_wire_put(w, pub, STS_ECDSA_PUB_LEN);
}

static void put_join(struct sts_wire_writer *w, const struct sts_gmsg_join *j)
{
    sts_wire_put_str8(w, j->group, sizeof j->group);
    sts_wire_put_str8(w, j->client_id, sizeof j->client_id);
    put_pub(w, j->sign_pub, j->has_sign_pub);
    sts_wire_put_u32(w, j->grant);
    sts_wire_put_u32(w, j->resume_epoch);
    sts_wire_put_u16(w, j->resume_index);
}

static void put_key(struct sts_wire_writer *w, const struct sts_gmsg_key *k)
{
    sts_wire_put_str8(w, k->group, sizeof k->group);
    sts_wire_put_u8(w, k->method);
    sts_wire_put_u8(w, k->alg);
    sts_wire_put_u8(w, k->flags);
    sts_wire_put_u32(w, k->epoch);
    sts_wire_put_u16(w, k->index);
    sts_wire_put_u16(w, k->grace);
    sts_wire_put(w, k->key, STS_KEY_LEN);
}

static void put_slots(struct sts_wire_writer *w, const struct sts_gmsg_slots *s)
{
    sts_wire_put_str8(w, s->group, sizeof s->group);
    sts_wire_put_u8(w, s->alg);
    sts_wire_put_u8(w, s->flags);
    sts_wire_put_u16(w, s->index);
    sts_wire_put_u32(w, s->slot_seconds);
    sts_wire_put_u8(w, s->depth);
    sts_wire_put_u16(w, s->skew);
    sts_wire_put_u64(w, s->origin_ms);
    sts_wire_put_u64(w, s->now_ms);
    sts_wire_put_u32(w, s->first);
    sts_wire_put_u32(w, s->last);
    sts_wire_put_u8(w, s->count);
    for (size_t i = 0; i < s->count; i++) {
        sts_wire_put_u8(w, s->nodes[i].depth);
        sts_wire_put_u32(w, s->nodes[i].pos);
        sts_wire_put(w, s->nodes[i].key, STS_KEY_LEN);
    }
}

static void put_roster(struct sts_wire_writer *w, const struct sts_gmsg_roster *r)
{
    sts_wire_put_str8(w, r->group, sizeof r->group);
    sts_wire_put_u8(w, r->flags);
    sts_wire_put_u16(w, r->count);
    for (size_t i = 0; i < r->count; i++) {
        const struct sts_gmsg_roster_entry *e = &r->entries[i];
        sts_wire_put_u16(w, e->index);
        sts_wire_put_u8(w, e->op);
        sts_wire_put_str8(w, e->name, sizeof e->name);
        put_pub(w, e->sign_pub, e->has_sign_pub);
    }
}

static void put_body(struct sts_wire_writer *w, const struct sts_gmsg *m)
{
    switch (m->type) {
    case STS_GMSG_JOIN: put_join(w, &m->u.join); break;
    case STS_GMSG_LEAVE: sts_wire_put_str8(w, m->u.text.group, sizeof m->u.text.group); break;
    case STS_GMSG_PING:
    case STS_GMSG_PONG: sts_wire_put_u32(w, m->u.token); break;
    case STS_GMSG_KEY: put_key(w, &m->u.key); break;
    case STS_GMSG_SLOTS: put_slots(w, &m->u.slots); break;
    case STS_GMSG_ROSTER: put_roster(w, &m->u.roster); break;
    case STS_GMSG_REFUSED:
    case STS_GMSG_REMOVED:
        sts_wire_put_str8(w, m->u.text.group, sizeof m->u.text.group);
        sts_wire_put_str8(w, m->u.text.reason, sizeof m->u.text.reason);
        break;
    }
}

int sts_gmsg_encode(const struct sts_gmsg *m, uint8_t *out, size_t cap, size_t *outlen)
{
    struct sts_wire_writer w;

    if (!message_ok(m)) return STS_ERR_INVALID;
    sts_wire_writer_init(&w, out, cap);
    sts_wire_put_u8(&w, STS_GMSG_VERSION);
    sts_wire_put_u8(&w, m->type);
    put_body(&w, m);
    if (w.overflow) {
        mbedtls_platform_zeroize(out, cap); /* key bytes written before the end ran out */
        return STS_ERR_TOO_BIG;
    }
    *outlen = w.len;
    return 0;
}

/* Decoding. The reader keeps its first error and reads nothing after it, so
 * the field readers need no checks of their own; a prefix of a valid message
 * fails only by running out, as STS_ERR_TRUNCATED. */

static void get_pub(struct sts_wire_reader *r, uint8_t pub[STS_ECDSA_PUB_LEN], uint8_t *has)
{
    size_t n = sts_wire_get_u8(r);

    if (n != 0 && n != STS_ECDSA_PUB_LEN) sts_wire_fail(r, STS_ERR_INVALID);
    sts_wire_get(r, pub, n);
    *has = n != 0;
}

static void get_join(struct sts_wire_reader *r, struct sts_gmsg_join *j)
{
    sts_wire_get_str8(r, j->group, sizeof j->group);
    sts_wire_get_str8(r, j->client_id, sizeof j->client_id);
    get_pub(r, j->sign_pub, &j->has_sign_pub);
    j->grant = sts_wire_get_u32(r);
    j->resume_epoch = sts_wire_get_u32(r);
    j->resume_index = sts_wire_get_u16(r);
}

static void get_key(struct sts_wire_reader *r, struct sts_gmsg_key *k)
{
    sts_wire_get_str8(r, k->group, sizeof k->group);
    k->method = sts_wire_get_u8(r);
    k->alg = sts_wire_get_u8(r);
    k->flags = sts_wire_get_u8(r);
    k->epoch = sts_wire_get_u32(r);
    k->index = sts_wire_get_u16(r);
    k->grace = sts_wire_get_u16(r);
    sts_wire_get(r, k->key, STS_KEY_LEN);
}

static void get_slots(struct sts_wire_reader *r, struct sts_gmsg_slots *s)
{
    sts_wire_get_str8(r, s->group, sizeof s->group);
    s->alg = sts_wire_get_u8(r);
    s->flags = sts_wire_get_u8(r);
    s->index = sts_wire_get_u16(r);
    s->slot_seconds = sts_wire_get_u32(r);
    s->depth = sts_wire_get_u8(r);
    s->skew = sts_wire_get_u16(r);
    s->origin_ms = sts_wire_get_u64(r);
    s->now_ms = sts_wire_get_u64(r);
    s->first = sts_wire_get_u32(r);
    s->last = sts_wire_get_u32(r);
    s->count = sts_wire_get_u8(r);
    if (s->count > STS_SLOT_COVER_MAX) {
        sts_wire_fail(r, STS_ERR_INVALID);
        return;
    }
    for (size_t i = 0; i < s->count; i++) {
        s->nodes[i].depth = sts_wire_get_u8(r);
        s->nodes[i].pos = sts_wire_get_u32(r);
        sts_wire_get(r, s->nodes[i].key, STS_KEY_LEN);
    }
}

static void get_roster(struct sts_wire_reader *r, struct sts_gmsg_roster *ro,
                       struct sts_gmsg_roster_entry *entries)
{
    sts_wire_get_str8(r, ro->group, sizeof ro->group);
    ro->flags = sts_wire_get_u8(r);
    ro->count = sts_wire_get_u16(r);
    ro->entries = entries;
    if (ro->count > STS_GMSG_ROSTER_MAX || (ro->count > 0 && entries == NULL)) {
        sts_wire_fail(r, STS_ERR_INVALID);
        return;
    }
    for (size_t i = 0; i < ro->count; i++) {
        struct sts_gmsg_roster_entry *e = &entries[i];
        memset(e, 0, sizeof *e);
        e->index = sts_wire_get_u16(r);
        e->op = sts_wire_get_u8(r);
        sts_wire_get_str8(r, e->name, sizeof e->name);
        get_pub(r, e->sign_pub, &e->has_sign_pub);
    }
}

static void get_body(struct sts_wire_reader *r, struct sts_gmsg *m,
                     struct sts_gmsg_roster_entry *entries)
{
    switch (m->type) {
    case STS_GMSG_JOIN: get_join(r, &m->u.join); return;
    case STS_GMSG_LEAVE: sts_wire_get_str8(r, m->u.text.group, sizeof m->u.text.group); return;
    case STS_GMSG_PING:
    case STS_GMSG_PONG: m->u.token = sts_wire_get_u32(r); return;
    case STS_GMSG_KEY: get_key(r, &m->u.key); return;
    case STS_GMSG_SLOTS: get_slots(r, &m->u.slots); return;
    case STS_GMSG_ROSTER: get_roster(r, &m->u.roster, entries); return;
    case STS_GMSG_REFUSED:
    case STS_GMSG_REMOVED:
        sts_wire_get_str8(r, m->u.text.group, sizeof m->u.text.group);
        sts_wire_get_str8(r, m->u.text.reason, sizeof m->u.text.reason);
        return;
    }
    sts_wire_fail(r, STS_ERR_INVALID);
}

int sts_gmsg_decode(const uint8_t *msg, size_t len, struct sts_gmsg *m,
                    struct sts_gmsg_roster_entry *entries)
{
    struct sts_wire_reader r;
    uint8_t version;

    sts_wire_reader_init(&r, msg, len);
    memset(m, 0, sizeof *m);
    version = sts_wire_get_u8(&r);
    if (r.err == 0 && version != STS_GMSG_VERSION) return STS_ERR_UNSUPPORTED;
    m->type = sts_wire_get_u8(&r);
    if (r.err == 0) get_body(&r, m, entries);
    if (r.err == 0 && r.left > 0) sts_wire_fail(&r, STS_ERR_INVALID);
    if (r.err == 0 && !message_ok(m)) sts_wire_fail(&r, STS_ERR_INVALID);
    if (r.err != 0) mbedtls_platform_zeroize(m, sizeof *m); /* half a message is no message */
    return r.err;
}
