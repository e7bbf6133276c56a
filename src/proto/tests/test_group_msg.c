/* Key server messages: one byte string per type written out from the layout
 * in docs/PROTOCOL.md, every truncation, every range rule refused by both
 * the encoder and the decoder, and the largest ROSTER. */
#include "proto/group_msg.h"
#include "util/error.h"
#include "util/unit.h"

#include <stdlib.h>

#define R4(b) b, b, b, b
#define R16(b) R4(b), R4(b), R4(b), R4(b)
#define R32(b) R16(b), R16(b)
#define R64(b) R32(b), R32(b)

static uint8_t buf[STS_GMSG_MAX + 300];
static struct sts_gmsg_roster_entry decoded_entries[STS_GMSG_ROSTER_MAX];

/* ---- the vectors: bytes written from the layout, and the struct they mean ---- */

static const uint8_t join_bytes[] = {
    0x01, 0x20,
    0x02, 'g', '1',                     /* 2: group */
    0x05, 'd', 'e', 'v', '-', '7',      /* 5: client_id */
    0x41, 0x04, R64(0xa5),              /* 11: sign_pub */
    0x00, 0x00, 0x0e, 0x10,             /* 77: grant 3600 */
    0x01, 0x02, 0x03, 0x04,             /* 81: resume_epoch */
    0x05, 0x06,                         /* 85: resume_index */
};

static struct sts_gmsg join_msg(void)
{
    struct sts_gmsg m = { .type = STS_GMSG_JOIN };
    strcpy(m.u.join.group, "g1");
    strcpy(m.u.join.client_id, "dev-7");
    m.u.join.has_sign_pub = 1;
    m.u.join.sign_pub[0] = 0x04;
    memset(m.u.join.sign_pub + 1, 0xa5, 64);
    m.u.join.grant = 3600;
    m.u.join.resume_epoch = 0x01020304;
    m.u.join.resume_index = 0x0506;
    return m;
}

static const uint8_t join_bare_bytes[] = {
    0x01, 0x20, 0x01, 'x', 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static struct sts_gmsg join_bare_msg(void)
{
    struct sts_gmsg m = { .type = STS_GMSG_JOIN };
    strcpy(m.u.join.group, "x");
    return m;
}

static const uint8_t leave_bytes[] = { 0x01, 0x21, 0x03, 'a', '.', 'b' };

static struct sts_gmsg leave_msg(void)
{
    struct sts_gmsg m = { .type = STS_GMSG_LEAVE };
    strcpy(m.u.text.group, "a.b");
    return m;
}

static const uint8_t ping_bytes[] = { 0x01, 0x22, 0xde, 0xad, 0xbe, 0xef };
static const uint8_t pong_bytes[] = { 0x01, 0x23, 0x00, 0x00, 0x00, 0x01 };

static struct sts_gmsg token_msg(uint8_t type, uint32_t token)
{
    struct sts_gmsg m = { .type = type };
    m.u.token = token;
    return m;
}

static const uint8_t key_bytes[] = {
    0x01, 0x30,
    0x02, 'g', '1',                     /* 2: group */
    0x02,                               /* 5: method UPDATE */
    0x01,                               /* 6: alg CHACHAPOLY */
    0x07,                               /* 7: flags SIGNED | WRITE | READ */
    0x00, 0x00, 0x00, 0x2a,             /* 8: epoch 42 */
    0x00, 0x03,                         /* 12: index */
    0x00, 0x1e,                         /* 14: grace 30 */
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

static struct sts_gmsg key_msg(void)
{
    struct sts_gmsg m = { .type = STS_GMSG_KEY };
    strcpy(m.u.key.group, "g1");
    m.u.key.method = STS_GROUP_UPDATE;
    m.u.key.alg = STS_GROUP_CHACHAPOLY;
    m.u.key.flags = STS_GFLAG_SIGNED | STS_GFLAG_WRITE | STS_GFLAG_READ;
    m.u.key.epoch = 42;
    m.u.key.index = 3;
    m.u.key.grace = 30;
    for (int i = 0; i < STS_KEY_LEN; i++) m.u.key.key[i] = (uint8_t)i;
    return m;
}

/* Slots [5, 10] of a depth-20 tree: leaf 5, (19, 3) = 6..7, (19, 4) = 8..9, leaf 10. */
static const uint8_t slots_bytes[] = {
    0x01, 0x31,
    0x02, 'g', '2',                                 /* 2: group */
    0x02,                                           /* 5: alg AESGCM */
    0x06,                                           /* 6: flags WRITE | READ */
    0x00, 0x09,                                     /* 7: index */
    0x00, 0x00, 0x00, 0x3c,                         /* 9: slot_seconds 60 */
    0x14,                                           /* 13: depth 20 */
    0x00, 0x1e,                                     /* 14: skew */
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, /* 16: origin_ms */
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0xa0, 0x40, /* 24: now_ms */
    0x00, 0x00, 0x00, 0x05,                         /* 32: first */
    0x00, 0x00, 0x00, 0x0a,                         /* 36: last */
    0x04,                                           /* 40: count */
    0x14, 0x00, 0x00, 0x00, 0x05, R32(0x11),        /* 41: node (20, 5) */
    0x13, 0x00, 0x00, 0x00, 0x03, R32(0x22),        /* 78: node (19, 3) */
    0x13, 0x00, 0x00, 0x00, 0x04, R32(0x33),        /* 115: node (19, 4) */
    0x14, 0x00, 0x00, 0x00, 0x0a, R32(0x44),        /* 152: node (20, 10) */
};

static struct sts_gmsg slots_msg(void)
{
    static const struct { uint8_t depth; uint32_t pos; uint8_t fill; } nodes[] = {
        { 20, 5, 0x11 }, { 19, 3, 0x22 }, { 19, 4, 0x33 }, { 20, 10, 0x44 },
    };
    struct sts_gmsg m = { .type = STS_GMSG_SLOTS };
    struct sts_gmsg_slots *s = &m.u.slots;

    strcpy(s->group, "g2");
    s->alg = STS_GROUP_AESGCM;
    s->flags = STS_GFLAG_WRITE | STS_GFLAG_READ;
    s->index = 9;
    s->slot_seconds = 60;
    s->depth = 20;
    s->skew = 30;
    s->origin_ms = 0x0000018bcfe56800u;
    s->now_ms = 0x0000018bcfe5a040u;
    s->first = 5;
    s->last = 10;
    s->count = 4;
    for (int i = 0; i < 4; i++) {
        s->nodes[i].depth = nodes[i].depth;
        s->nodes[i].pos = nodes[i].pos;
        memset(s->nodes[i].key, nodes[i].fill, STS_KEY_LEN);
    }
    return m;
}

static const uint8_t roster_bytes[] = {
    0x01, 0x32,
    0x02, 'g', '1',                             /* 2: group */
    0x01,                                       /* 5: flags REPLACE */
    0x00, 0x03,                                 /* 6: count */
    0x00, 0x01, 0x01, 0x05, 'a', 'l', 'i', 'c', 'e', 0x41, 0x04, R64(0x5a), /* 8: add 1 */
    0x00, 0x02, 0x02, 0x00, 0x00,               /* 83: remove 2 */
    0x00, 0x07, 0x01, 0x03, 'b', 'o', 'b', 0x00, /* 88: add 7, no signing key */
};

static struct sts_gmsg_roster_entry roster_entries[3];

/* Refills roster_entries too, so each caller starts from the vector. */
static struct sts_gmsg roster_msg(void)
{
    struct sts_gmsg m = { .type = STS_GMSG_ROSTER };

    memset(roster_entries, 0, sizeof roster_entries);
    roster_entries[0] = (struct sts_gmsg_roster_entry){ .index = 1, .op = STS_ROSTER_ADD,
                                                        .name = "alice", .has_sign_pub = 1 };
    roster_entries[0].sign_pub[0] = 0x04;
    memset(roster_entries[0].sign_pub + 1, 0x5a, 64);
    roster_entries[1] = (struct sts_gmsg_roster_entry){ .index = 2, .op = STS_ROSTER_REMOVE };
    roster_entries[2] = (struct sts_gmsg_roster_entry){ .index = 7, .op = STS_ROSTER_ADD, .name = "bob" };
    strcpy(m.u.roster.group, "g1");
    m.u.roster.flags = STS_GFLAG_REPLACE;
    m.u.roster.count = 3;
    m.u.roster.entries = roster_entries;
    return m;
}

static const uint8_t refused_bytes[] = {
    0x01, 0x33, 0x02, 'g', '1',
    0x0e, 'n', 'o', 't', ' ', 'i', 'n', ' ', 't', 'h', 'e', ' ', 'A', 'C', 'L', /* 5: reason */
};
static const uint8_t removed_bytes[] = {
    0x01, 0x34, 0x02, 'g', '1',
    0x0e, 'k', 'e', 'y', ' ', 'r', 'e', 'v', 'o', 'k', 'e', 'd', ' ', '~', '!',
};

static struct sts_gmsg text_msg(uint8_t type, const char *reason)
{
    struct sts_gmsg m = { .type = type };
    strcpy(m.u.text.group, "g1");
    strcpy(m.u.text.reason, reason);
    return m;
}

/* ---- comparisons, field by field ---- */

static int same_pub(const uint8_t *a, uint8_t ha, const uint8_t *b, uint8_t hb)
{
    return ha == hb && (!ha || memcmp(a, b, STS_ECDSA_PUB_LEN) == 0);
}

static int same_join(const struct sts_gmsg_join *a, const struct sts_gmsg_join *b)
{
    return strcmp(a->group, b->group) == 0 && strcmp(a->client_id, b->client_id) == 0
           && same_pub(a->sign_pub, a->has_sign_pub, b->sign_pub, b->has_sign_pub)
           && a->grant == b->grant && a->resume_epoch == b->resume_epoch
           && a->resume_index == b->resume_index;
}

static int same_key(const struct sts_gmsg_key *a, const struct sts_gmsg_key *b)
{
    return strcmp(a->group, b->group) == 0 && a->method == b->method && a->alg == b->alg
           && a->flags == b->flags && a->epoch == b->epoch && a->index == b->index
           && a->grace == b->grace && memcmp(a->key, b->key, STS_KEY_LEN) == 0;
}

static int same_slots(const struct sts_gmsg_slots *a, const struct sts_gmsg_slots *b)
{
    if (strcmp(a->group, b->group) != 0 || a->alg != b->alg || a->flags != b->flags
        || a->index != b->index || a->slot_seconds != b->slot_seconds || a->depth != b->depth
        || a->skew != b->skew || a->origin_ms != b->origin_ms || a->now_ms != b->now_ms
        || a->first != b->first || a->last != b->last || a->count != b->count)
        return 0;
    for (size_t i = 0; i < a->count; i++)
        if (a->nodes[i].depth != b->nodes[i].depth || a->nodes[i].pos != b->nodes[i].pos
            || memcmp(a->nodes[i].key, b->nodes[i].key, STS_KEY_LEN) != 0)
            return 0;
    return 1;
}

static int same_roster(const struct sts_gmsg_roster *a, const struct sts_gmsg_roster *b)
{
    if (strcmp(a->group, b->group) != 0 || a->flags != b->flags || a->count != b->count)
        return 0;
    for (size_t i = 0; i < a->count; i++) {
        const struct sts_gmsg_roster_entry *x = &a->entries[i], *y = &b->entries[i];
        if (x->index != y->index || x->op != y->op || strcmp(x->name, y->name) != 0
            || !same_pub(x->sign_pub, x->has_sign_pub, y->sign_pub, y->has_sign_pub))
            return 0;
    }
    return 1;
}

static int same_message(const struct sts_gmsg *a, const struct sts_gmsg *b)
{
    if (a->type != b->type) return 0;
    switch (a->type) {
    case STS_GMSG_JOIN: return same_join(&a->u.join, &b->u.join);
    case STS_GMSG_PING:
    case STS_GMSG_PONG: return a->u.token == b->u.token;
    case STS_GMSG_KEY: return same_key(&a->u.key, &b->u.key);
    case STS_GMSG_SLOTS: return same_slots(&a->u.slots, &b->u.slots);
    case STS_GMSG_ROSTER: return same_roster(&a->u.roster, &b->u.roster);
    default:
        return strcmp(a->u.text.group, b->u.text.group) == 0
               && strcmp(a->u.text.reason, b->u.text.reason) == 0;
    }
}

/* ---- helpers ---- */

static int encode_code(const struct sts_gmsg *m)
{
    size_t len = 0;
    return sts_gmsg_encode(m, buf, sizeof buf, &len);
}

static int decode_code(const uint8_t *msg, size_t len)
{
    struct sts_gmsg m;
    return sts_gmsg_decode(msg, len, &m, decoded_entries);
}

/* Decodes msg with bytes [off, off + cut) replaced by ins. */
static int decode_spliced(const uint8_t *msg, size_t len, size_t off, size_t cut,
                          const uint8_t *ins, size_t inslen)
{
    uint8_t *copy = malloc(len - cut + inslen + 1);
    int rc;

    memcpy(copy, msg, off);
    memcpy(copy + off, ins, inslen);
    memcpy(copy + off + inslen, msg + off + cut, len - off - cut);
    rc = decode_code(copy, len - cut + inslen);
    free(copy);
    return rc;
}

/* A change to the struct the encoder refuses, and the same change to the
 * bytes (the listed bytes written at off) the decoder refuses. */
#define REJECTED(base, vec, change, off, ...) do { \
    struct sts_gmsg m_ = (base); \
    static const uint8_t b_[] = { __VA_ARGS__ }; \
    change; \
    CHECK(encode_code(&m_) == STS_ERR_INVALID); \
    CHECK(decode_spliced(vec, sizeof vec, off, sizeof b_, b_, sizeof b_) == STS_ERR_INVALID); \
} while (0)

/* A changed struct still encodes and decodes to itself. */
static void accepted(const struct sts_gmsg *m)
{
    struct sts_gmsg d;
    size_t len = 0;

    CHECK(sts_gmsg_encode(m, buf, sizeof buf, &len) == 0);
    CHECK(sts_gmsg_decode(buf, len, &d, decoded_entries) == 0);
    CHECK(same_message(m, &d));
}

/* m encodes to exactly want, want decodes to m, and want is strict. */
static void check_vector(const struct sts_gmsg *m, const uint8_t *want, size_t n)
{
    uint8_t copy[256];
    struct sts_gmsg d;
    size_t len = 0, bad = 0;

    CHECK(sts_gmsg_encode(m, buf, sizeof buf, &len) == 0);
    CHECK(len == n && memcmp(buf, want, n) == 0);
    CHECK(sts_gmsg_decode(want, n, &d, decoded_entries) == 0);
    CHECK(same_message(m, &d));
    if (d.type == STS_GMSG_ROSTER) CHECK(d.u.roster.entries == decoded_entries);

    for (size_t k = 0; k < n; k++)
        bad += decode_code(want, k) != STS_ERR_TRUNCATED;
    CHECK(bad == 0);
    CHECK(n < sizeof copy);
    memcpy(copy, want, n);
    copy[n] = 0x00;
    CHECK(decode_code(copy, n + 1) == STS_ERR_INVALID);
    copy[0] = 0x02;
    CHECK(decode_code(copy, n) == STS_ERR_UNSUPPORTED);
    copy[0] = 0x00;
    CHECK(decode_code(copy, n) == STS_ERR_UNSUPPORTED);

    CHECK(sts_gmsg_encode(m, buf, n - 1, &len) == STS_ERR_TOO_BIG);
    CHECK(sts_gmsg_encode(m, buf, n, &len) == 0 && len == n);
}

/* ---- the tests ---- */

static void test_vectors(void)
{
    struct sts_gmsg m;

    m = join_msg();
    check_vector(&m, join_bytes, sizeof join_bytes);
    m = join_bare_msg();
    check_vector(&m, join_bare_bytes, sizeof join_bare_bytes);
    m = leave_msg();
    check_vector(&m, leave_bytes, sizeof leave_bytes);
    m = token_msg(STS_GMSG_PING, 0xdeadbeef);
    check_vector(&m, ping_bytes, sizeof ping_bytes);
    m = token_msg(STS_GMSG_PONG, 1);
    check_vector(&m, pong_bytes, sizeof pong_bytes);
    m = key_msg();
    check_vector(&m, key_bytes, sizeof key_bytes);
    m = slots_msg();
    check_vector(&m, slots_bytes, sizeof slots_bytes);
    m = roster_msg();
    check_vector(&m, roster_bytes, sizeof roster_bytes);
    m = text_msg(STS_GMSG_REFUSED, "not in the ACL");
    check_vector(&m, refused_bytes, sizeof refused_bytes);
    m = text_msg(STS_GMSG_REMOVED, "key revoked ~!");
    check_vector(&m, removed_bytes, sizeof removed_bytes);
}

static void test_header(void)
{
    static const uint8_t types[] = { 0x00, 0x01, 0x1f, 0x24, 0x2f, 0x35, 0xff };
    struct sts_gmsg m = token_msg(STS_GMSG_PING, 7);

    CHECK(decode_code(ping_bytes, 0) == STS_ERR_TRUNCATED);
    CHECK(decode_code((const uint8_t *)"\x02", 1) == STS_ERR_UNSUPPORTED);
    for (size_t i = 0; i < sizeof types; i++) {
        uint8_t msg[6] = { 0x01, types[i], 0, 0, 0, 0 };
        CHECK(decode_code(msg, 2) == STS_ERR_INVALID);
        CHECK(decode_code(msg, sizeof msg) == STS_ERR_INVALID);
        m.type = types[i];
        CHECK(encode_code(&m) == STS_ERR_INVALID);
    }
}

/* A group name as the only field that changes: every message checks it the same way. */
static void test_names(void)
{
    static const char *const good[] = { "a", "A-Z_a.z-09", "..", "-" };
    static const char *const bad[] = { "", "a/b", "a b", "é", "a\tb", "a,b", "a#", "a\x7f" };
    char longest[STS_GROUP_NAME_MAX + 2];
    struct sts_gmsg m;

    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        CHECK(sts_group_name_valid(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(!sts_group_name_valid(bad[i], strlen(bad[i])));
    CHECK(!sts_group_name_valid("a\0b", 3));
    memset(longest, 'n', sizeof longest);
    CHECK(sts_group_name_valid(longest, STS_GROUP_NAME_MAX));
    CHECK(!sts_group_name_valid(longest, STS_GROUP_NAME_MAX + 1));

    /* 64 bytes go through; 65 (no NUL in the array) do not. */
    m = key_msg();
    memcpy(m.u.key.group, longest, STS_GROUP_NAME_MAX);
    m.u.key.group[STS_GROUP_NAME_MAX] = '\0';
    accepted(&m);
    memset(m.u.key.group, 'n', sizeof m.u.key.group);
    CHECK(encode_code(&m) == STS_ERR_INVALID);
    {
        uint8_t ins[1 + STS_GROUP_NAME_MAX + 1];
        ins[0] = STS_GROUP_NAME_MAX + 1;
        memset(ins + 1, 'n', STS_GROUP_NAME_MAX + 1);
        CHECK(decode_spliced(key_bytes, sizeof key_bytes, 2, 3, ins, sizeof ins) == STS_ERR_INVALID);
        ins[0] = 0;
        CHECK(decode_spliced(key_bytes, sizeof key_bytes, 2, 3, ins, 1) == STS_ERR_INVALID);
    }
    /* a NUL would cut the string short */
    REJECTED(key_msg(), key_bytes, m_.u.key.group[0] = '/', 3, '/');
    CHECK(decode_spliced(key_bytes, sizeof key_bytes, 4, 1, (const uint8_t *)"", 1) == STS_ERR_INVALID);

    REJECTED(join_msg(), join_bytes, m_.u.join.group[1] = ' ', 4, ' ');
    REJECTED(leave_msg(), leave_bytes, m_.u.text.group[1] = '/', 4, '/');
    REJECTED(slots_msg(), slots_bytes, m_.u.slots.group[0] = ',', 3, ',');
    REJECTED(roster_msg(), roster_bytes, m_.u.roster.group[0] = ':', 3, ':');
    REJECTED(text_msg(STS_GMSG_REFUSED, "not in the ACL"), refused_bytes, m_.u.text.group[0] = '*', 3, '*');
}

static void test_join_rules(void)
{
    struct sts_gmsg m = join_msg();
    uint8_t ins[1 + 255];

    REJECTED(join_msg(), join_bytes, m_.u.join.client_id[0] = ' ', 6, ' ');
    REJECTED(join_msg(), join_bytes, m_.u.join.client_id[4] = 0x7f, 10, 0x7f);
    REJECTED(join_msg(), join_bytes, m_.u.join.client_id[2] = '\n', 8, '\n');
    REJECTED(join_msg(), join_bytes, m_.u.join.sign_pub[0] = 0x03, 12, 0x03);
    CHECK(decode_spliced(join_bytes, sizeof join_bytes, 7, 1, (const uint8_t *)"", 1) == STS_ERR_INVALID);
    /* sign_pub is 0 or 65 bytes */
    CHECK(decode_spliced(join_bytes, sizeof join_bytes, 11, 1, (const uint8_t[]){ 0x40 }, 1) == STS_ERR_INVALID);
    CHECK(decode_spliced(join_bytes, sizeof join_bytes, 11, 1, (const uint8_t[]){ 0x01 }, 1) == STS_ERR_INVALID);
    CHECK(decode_spliced(join_bytes, sizeof join_bytes, 11, 1, (const uint8_t[]){ 0x42 }, 1) == STS_ERR_INVALID);

    /* client_id: '!' .. '~', up to 255 bytes */
    strcpy(m.u.join.client_id, "!~");
    accepted(&m);
    memset(m.u.join.client_id, 'c', 255);
    m.u.join.client_id[255] = '\0';
    accepted(&m);
    ins[0] = 255;
    memset(ins + 1, 'c', 255);
    CHECK(decode_spliced(join_bytes, sizeof join_bytes, 5, 6, ins, sizeof ins) == 0);
    m.u.join.client_id[255] = 'c';
    CHECK(encode_code(&m) == STS_ERR_INVALID);

    /* any grant and resume point is representable */
    m = join_msg();
    m.u.join.grant = UINT32_MAX;
    m.u.join.resume_epoch = UINT32_MAX;
    m.u.join.resume_index = 0;
    accepted(&m);
}

static void test_key_rules(void)
{
    struct sts_gmsg m;

    REJECTED(key_msg(), key_bytes, m_.u.key.method = 0, 5, 0x00);
    REJECTED(key_msg(), key_bytes, m_.u.key.method = STS_GROUP_SLOTTED, 5, 0x03);
    REJECTED(key_msg(), key_bytes, m_.u.key.method = 4, 5, 0x04);
    REJECTED(key_msg(), key_bytes, m_.u.key.alg = 0, 6, 0x00);
    REJECTED(key_msg(), key_bytes, m_.u.key.alg = 3, 6, 0x03);
    REJECTED(key_msg(), key_bytes, m_.u.key.flags = 0x0f, 7, 0x0f);
    REJECTED(key_msg(), key_bytes, m_.u.key.flags = 0x84, 7, 0x84);
    REJECTED(key_msg(), key_bytes, m_.u.key.flags = STS_GFLAG_WRITE | STS_GFLAG_SIGNED, 7, 0x03);
    REJECTED(key_msg(), key_bytes, m_.u.key.flags = 0, 7, 0x00);
    REJECTED(key_msg(), key_bytes, m_.u.key.index = 0, 12, 0x00, 0x00);

    m = key_msg();
    m.u.key.method = STS_GROUP_STATIC;
    m.u.key.alg = STS_GROUP_AESGCM;
    m.u.key.flags = STS_GFLAG_READ;
    m.u.key.index = 0;
    accepted(&m);
    m.u.key.flags = STS_GFLAG_READ | STS_GFLAG_SIGNED;
    m.u.key.index = UINT16_MAX;
    accepted(&m);
    CHECK(decode_spliced(key_bytes, sizeof key_bytes, 7, 7,
                         (const uint8_t[]){ 0x04, 0, 0, 0, 0x2a, 0, 0 }, 7) == 0);
}

static void test_slots_rules(void)
{
    struct sts_gmsg m;
    uint8_t bare[41];

    REJECTED(slots_msg(), slots_bytes, m_.u.slots.alg = 0, 5, 0x00);
    REJECTED(slots_msg(), slots_bytes, m_.u.slots.alg = 3, 5, 0x03);
    REJECTED(slots_msg(), slots_bytes, m_.u.slots.flags = 0x0e, 6, 0x0e);
    REJECTED(slots_msg(), slots_bytes, m_.u.slots.flags = STS_GFLAG_WRITE, 6, 0x02);
    REJECTED(slots_msg(), slots_bytes, m_.u.slots.index = 0, 7, 0x00, 0x00);
    REJECTED(slots_msg(), slots_bytes, m_.u.slots.slot_seconds = 0, 9, 0, 0, 0, 0);
    REJECTED(slots_msg(), slots_bytes, m_.u.slots.depth = 0, 13, 0x00);
    REJECTED(slots_msg(), slots_bytes, m_.u.slots.depth = 33, 13, 0x21);
    REJECTED(slots_msg(), slots_bytes, m_.u.slots.first = 11, 32, 0, 0, 0, 0x0b);
    REJECTED(slots_msg(), slots_bytes, m_.u.slots.last = 1u << 20, 36, 0, 0x10, 0, 0);
    REJECTED(slots_msg(), slots_bytes, m_.u.slots.count = STS_SLOT_COVER_MAX + 1, 40, 0x41);
    REJECTED(slots_msg(), slots_bytes, m_.u.slots.nodes[0].depth = 21, 41, 0x15);
    REJECTED(slots_msg(), slots_bytes, m_.u.slots.nodes[1].pos = 1u << 19, 79, 0, 0x08, 0, 0);
    REJECTED(slots_msg(), slots_bytes, m_.u.slots.nodes[3].pos = UINT32_MAX, 153, 0xff, 0xff, 0xff, 0xff);
    /* count 0: no nodes */
    m = slots_msg();
    m.u.slots.count = 0;
    CHECK(encode_code(&m) == STS_ERR_INVALID);
    memcpy(bare, slots_bytes, 40);
    bare[40] = 0;
    CHECK(decode_code(bare, sizeof bare) == STS_ERR_INVALID);

    /* the extremes that are allowed */
    m = slots_msg();
    m.u.slots.slot_seconds = 1;
    m.u.slots.depth = 32;
    m.u.slots.first = 0;
    m.u.slots.last = UINT32_MAX;
    m.u.slots.count = STS_SLOT_COVER_MAX;
    for (int i = 0; i < STS_SLOT_COVER_MAX; i++) {
        m.u.slots.nodes[i].depth = (uint8_t)(i % 33);
        m.u.slots.nodes[i].pos = (uint32_t)(((uint64_t)1 << (i % 33)) - 1);
    }
    m.u.slots.flags = STS_GFLAG_READ;
    m.u.slots.index = 0;
    accepted(&m);
    m.u.slots.count = 1;
    m.u.slots.first = m.u.slots.last = 0;
    m.u.slots.depth = 1;
    accepted(&m);
}

static void test_roster_rules(void)
{
    static const uint8_t with_pub[] = { 0x41, 0x04, R64(0x01) };
    struct sts_gmsg m;

    REJECTED(roster_msg(), roster_bytes, m_.u.roster.flags = 0x02, 5, 0x02);
    REJECTED(roster_msg(), roster_bytes, m_.u.roster.flags = 0x81, 5, 0x81);
    REJECTED(roster_msg(), roster_bytes, m_.u.roster.entries[0].index = 0, 8, 0x00, 0x00);
    REJECTED(roster_msg(), roster_bytes, m_.u.roster.entries[2].index = 0, 88, 0x00, 0x00);
    REJECTED(roster_msg(), roster_bytes, m_.u.roster.entries[0].op = 0, 10, 0x00);
    REJECTED(roster_msg(), roster_bytes, m_.u.roster.entries[1].op = 3, 85, 0x03);
    REJECTED(roster_msg(), roster_bytes, m_.u.roster.entries[0].name[0] = '/', 12, '/');
    REJECTED(roster_msg(), roster_bytes, m_.u.roster.entries[0].sign_pub[0] = 0x02, 18, 0x02);
    /* an add needs a name; a remove has neither name nor key */
    m = roster_msg();
    roster_entries[2].name[0] = '\0';
    CHECK(encode_code(&m) == STS_ERR_INVALID);
    CHECK(decode_spliced(roster_bytes, sizeof roster_bytes, 91, 4, (const uint8_t[]){ 0 }, 1) == STS_ERR_INVALID);
    m = roster_msg();
    strcpy(roster_entries[1].name, "x");
    CHECK(encode_code(&m) == STS_ERR_INVALID);
    CHECK(decode_spliced(roster_bytes, sizeof roster_bytes, 86, 1, (const uint8_t *)"\x01x", 2) == STS_ERR_INVALID);
    m = roster_msg();
    roster_entries[1].has_sign_pub = 1;
    roster_entries[1].sign_pub[0] = 0x04;
    CHECK(encode_code(&m) == STS_ERR_INVALID);
    CHECK(decode_spliced(roster_bytes, sizeof roster_bytes, 87, 1, with_pub, sizeof with_pub) == STS_ERR_INVALID);
    CHECK(decode_spliced(roster_bytes, sizeof roster_bytes, 17, 1, (const uint8_t[]){ 0x01 }, 1) == STS_ERR_INVALID);
    /* count: at most STS_GMSG_ROSTER_MAX, and entries to hold them */
    m = roster_msg();
    m.u.roster.count = STS_GMSG_ROSTER_MAX + 1;
    CHECK(encode_code(&m) == STS_ERR_INVALID);
    CHECK(decode_spliced(roster_bytes, sizeof roster_bytes, 6, 2, (const uint8_t[]){ 0x01, 0x91 }, 2) == STS_ERR_INVALID);
    m = roster_msg();
    m.u.roster.entries = NULL;
    CHECK(encode_code(&m) == STS_ERR_INVALID);
    {
        struct sts_gmsg d;
        CHECK(sts_gmsg_decode(roster_bytes, sizeof roster_bytes, &d, NULL) == STS_ERR_INVALID);
    }
    /* an empty roster, and one that only adds without REPLACE */
    m = roster_msg();
    m.u.roster.count = 0;
    m.u.roster.flags = 0;
    accepted(&m);
    m.u.roster.entries = NULL;
    accepted(&m);
}

static void test_text_rules(void)
{
    static const uint8_t empty[] = { 0x00 };
    uint8_t ins[1 + STS_GROUP_REASON_MAX + 1];
    struct sts_gmsg m;

    REJECTED(text_msg(STS_GMSG_REFUSED, "not in the ACL"), refused_bytes, m_.u.text.reason[0] = 0x1f, 6, 0x1f);
    REJECTED(text_msg(STS_GMSG_REMOVED, "key revoked ~!"), removed_bytes, m_.u.text.reason[13] = 0x7f, 19, 0x7f);
    REJECTED(text_msg(STS_GMSG_REMOVED, "key revoked ~!"), removed_bytes, m_.u.text.reason[3] = (char)0xa0, 9, 0xa0);
    CHECK(decode_spliced(refused_bytes, sizeof refused_bytes, 7, 1, (const uint8_t *)"", 1) == STS_ERR_INVALID);
    /* 1 .. 200 bytes */
    m = text_msg(STS_GMSG_REFUSED, "");
    CHECK(encode_code(&m) == STS_ERR_INVALID);
    CHECK(decode_spliced(refused_bytes, sizeof refused_bytes, 5, 15, empty, 1) == STS_ERR_INVALID);
    memset(m.u.text.reason, ' ', STS_GROUP_REASON_MAX);
    accepted(&m);
    memset(m.u.text.reason, 'r', sizeof m.u.text.reason);
    CHECK(encode_code(&m) == STS_ERR_INVALID);
    ins[0] = STS_GROUP_REASON_MAX + 1;
    memset(ins + 1, 'r', STS_GROUP_REASON_MAX + 1);
    CHECK(decode_spliced(refused_bytes, sizeof refused_bytes, 5, 15, ins, sizeof ins) == STS_ERR_INVALID);
    ins[0] = STS_GROUP_REASON_MAX;
    CHECK(decode_spliced(refused_bytes, sizeof refused_bytes, 5, 15, ins, sizeof ins - 1) == 0);
    /* LEAVE has no reason to carry */
    m = leave_msg();
    strcpy(m.u.text.reason, "x");
    CHECK(encode_code(&m) == STS_ERR_INVALID);
}

/* The largest ROSTER: every entry with the longest name and a signing key. */
static void test_largest_roster(void)
{
    static struct sts_gmsg_roster_entry entries[STS_GMSG_ROSTER_MAX];
    struct sts_gmsg m = { .type = STS_GMSG_ROSTER }, d;
    size_t len = 0;

    memset(m.u.roster.group, 'G', STS_GROUP_NAME_MAX);
    m.u.roster.count = STS_GMSG_ROSTER_MAX;
    m.u.roster.entries = entries;
    for (int i = 0; i < STS_GMSG_ROSTER_MAX; i++) {
        entries[i].index = (uint16_t)(i + 1);
        entries[i].op = STS_ROSTER_ADD;
        memset(entries[i].name, 'm', STS_GROUP_NAME_MAX);
        snprintf(entries[i].name + STS_GROUP_NAME_MAX - 3, 4, "%03d", i);
        entries[i].has_sign_pub = 1;
        entries[i].sign_pub[0] = 0x04;
        memset(entries[i].sign_pub + 1, i, STS_ECDSA_PUB_LEN - 1);
    }
    CHECK(sts_gmsg_encode(&m, buf, STS_GMSG_MAX, &len) == 0);
    CHECK(len == 2 + 65 + 1 + 2 + STS_GMSG_ROSTER_MAX * (2 + 1 + 65 + 66));
    CHECK(len <= STS_GMSG_MAX);
    CHECK(sts_gmsg_decode(buf, len, &d, decoded_entries) == 0);
    CHECK(same_message(&m, &d));
    CHECK(strcmp(d.u.roster.entries[399].name + 61, "399") == 0);
}

int main(void)
{
    test_vectors();
    test_header();
    test_names();
    test_join_rules();
    test_key_rules();
    test_slots_rules();
    test_roster_rules();
    test_text_rules();
    test_largest_roster();
    return unit_done();
}
