/* The key server's state file (docs/PROTOCOL.md, "Key server state"):
 *
 *   magic "STSKS" 0x00 0x01 0x00 (8) || body length (uint32 BE) || body
 *   || SHA-256 of every byte before it (32)
 *
 * The hash makes a truncated or damaged file fail as a whole, so a load
 * either restores everything or changes nothing. The body is read with a
 * check of every length and range before anything reaches the core. */
#include "crypto/hash.h"
#include "proto/group_state.h"
#include "util/error.h"
#include "util/wire.h"

#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t MAGIC[8] = { 'S', 'T', 'S', 'K', 'S', 0x00, 0x01, 0x00 };
#define MAGIC_NAME_LEN 6  /* "STSKS" 0x00; the two bytes after it are the version */
#define HEAD_LEN (sizeof MAGIC + 4)

/* ---- writing ------------------------------------------------------------------ */

static void put_config(struct sts_wire_writer *o, const struct sts_gks_group_config *gc)
{
    sts_wire_put_u8(o, gc->method);
    sts_wire_put_u8(o, gc->alg);
    sts_wire_put_u8(o, gc->sign);
    sts_wire_put_u16(o, gc->grace);
    sts_wire_put_u32(o, gc->slot_seconds);
    sts_wire_put_u8(o, gc->depth);
    sts_wire_put_u16(o, gc->skew);
    sts_wire_put_u32(o, gc->grant);
    sts_wire_put_u32(o, gc->max_grant);
}

static void put_member(struct sts_wire_writer *o, const struct gks_member *m)
{
    sts_wire_put(o, m->pub, STS_X25519_LEN);
    sts_wire_put_str8(o, m->name, sizeof m->name);
    sts_wire_put_u8(o, m->perm);
    sts_wire_put_u16(o, m->index);
    sts_wire_put_u8(o, m->has_sign_pub ? STS_ECDSA_PUB_LEN : 0);
    if (m->has_sign_pub) sts_wire_put(o, m->sign_pub, STS_ECDSA_PUB_LEN);
    sts_wire_put_str8(o, m->client_id, sizeof m->client_id);
    sts_wire_put_u32(o, m->first);
    sts_wire_put_u32(o, m->last);
}

static void put_group(struct sts_wire_writer *o, const struct gks_group *g)
{
    sts_wire_put_str8(o, g->name, sizeof g->name);
    put_config(o, &g->gc);
    sts_wire_put_u32(o, g->epoch);
    sts_wire_put(o, g->key, STS_KEY_LEN);
    sts_wire_put_u32(o, g->prev_epoch);
    sts_wire_put(o, g->prev_key, STS_KEY_LEN);
    sts_wire_put(o, g->root, STS_KEY_LEN);
    sts_wire_put_u64(o, g->origin_ms);
    sts_wire_put_u32(o, g->next_index);
    sts_wire_put_u32(o, g->mark);
    sts_wire_put_u32(o, g->nmembers);
    for (const struct gks_member *m = g->members; m; m = m->next) put_member(o, m);
}

static void put_body(struct sts_wire_writer *o, const struct sts_gks *ks)
{
    sts_wire_put_u32(o, ks->ngroups);
    for (const struct gks_group *g = ks->groups; g; g = g->next) put_group(o, g);
}

int sts_gks_save(const struct sts_gks *ks, uint8_t **out, size_t *len)
{
    struct sts_wire_writer sizing, o;
    uint8_t *buf;
    size_t total;
    int err;

    sts_wire_writer_init(&sizing, NULL, 0);
    put_body(&sizing, ks);
    if (sizing.len > UINT32_MAX) return STS_ERR_TOO_BIG;
    total = HEAD_LEN + sizing.len + STS_SHA256_LEN;
    buf = malloc(total);
    if (!buf) return STS_ERR_NOMEM;
    sts_wire_writer_init(&o, buf, total - STS_SHA256_LEN);
    sts_wire_put(&o, MAGIC, sizeof MAGIC);
    sts_wire_put_u32(&o, (uint32_t)sizing.len);
    put_body(&o, ks);
    err = sts_hash(STS_SHA256, buf, total - STS_SHA256_LEN, buf + total - STS_SHA256_LEN);
    if (err) {
        mbedtls_platform_zeroize(buf, total);
        free(buf);
        return err;
    }
    *out = buf;
    *len = total;
    return 0;
}

/* ---- reading -------------------------------------------------------------------- */

/* The reader keeps its first failure and gives zeros after it. A bad str8
 * is reported where it is read, so a failure found after a run of reads is
 * running out of bytes: "truncated". */

static const char *read_config(struct sts_wire_reader *r, struct sts_gks_group_config *gc)
{
    uint8_t method = sts_wire_get_u8(r), alg = sts_wire_get_u8(r);

    memset(gc, 0, sizeof *gc);
    gc->sign = sts_wire_get_u8(r);
    gc->grace = sts_wire_get_u16(r);
    gc->slot_seconds = sts_wire_get_u32(r);
    gc->depth = sts_wire_get_u8(r);
    gc->skew = sts_wire_get_u16(r);
    gc->grant = sts_wire_get_u32(r);
    gc->max_grant = sts_wire_get_u32(r);
    if (r->err) return "truncated";
    /* checked as numbers first: an enum must never hold a value it lacks */
    if (method < STS_GROUP_STATIC || method > STS_GROUP_SLOTTED) return "unknown group method";
    if (alg != STS_GROUP_CHACHAPOLY && alg != STS_GROUP_AESGCM) return "unknown group algorithm";
    gc->method = (enum sts_group_method)method;
    gc->alg = (enum sts_group_alg)alg;
    return gks_config_valid(gc) ? NULL : "group settings out of range";
}

/* Marks index as used in `seen` (8192 bytes); -1 when it already was. */
static int claim_index(uint8_t *seen, uint16_t index)
{
    uint8_t bit = (uint8_t)(1u << (index & 7));
    if (seen[index >> 3] & bit) return -1;
    seen[index >> 3] |= bit;
    return 0;
}

static const char *read_member(struct sts_wire_reader *r, const struct gks_group *g, struct gks_member *m,
                               uint8_t *seen)
{
    size_t sign_len;

    sts_wire_get(r, m->pub, STS_X25519_LEN);
    if (sts_wire_get_str8(r, m->name, sizeof m->name) != 0
        || (!r->err && !sts_group_name_valid(m->name, strlen(m->name))))
        return "bad member name";
    m->perm = sts_wire_get_u8(r);
    m->index = sts_wire_get_u16(r);
    sign_len = sts_wire_get_u8(r);
    if (sign_len != 0 && sign_len != STS_ECDSA_PUB_LEN) return r->err ? "truncated" : "bad signing key length";
    m->has_sign_pub = sign_len != 0;
    sts_wire_get(r, m->sign_pub, sign_len);
    if (sts_wire_get_str8(r, m->client_id, sizeof m->client_id) != 0) return "bad client id";
    m->first = sts_wire_get_u32(r);
    m->last = sts_wire_get_u32(r);
    if (r->err) return "truncated";
    if (m->perm < STS_ACL_READ || m->perm > (STS_ACL_READ | STS_ACL_WRITE)) return "bad member permissions";
    if ((m->perm & STS_ACL_WRITE) ? m->index == 0 || m->index >= g->next_index : m->index != 0)
        return "bad sender index";
    if (m->index && claim_index(seen, m->index) != 0) return "sender index given twice";
    if (g->gc.method == STS_GROUP_SLOTTED
        && (m->first > m->last || m->last > ((uint64_t)1 << g->gc.depth) - 1))
        return "grant out of range";
    return NULL;
}

static const char *read_members(struct sts_wire_reader *r, struct gks_group *g)
{
    uint32_t count = sts_wire_get_u32(r);
    uint8_t *seen = calloc(1, (GKS_INDEX_MAX + 1) / 8);
    const char *why = r->err ? "truncated" : NULL;

    if (!seen) return "out of memory";
    for (uint32_t i = 0; i < count && !why; i++) {
        struct gks_member *m = calloc(1, sizeof *m);
        if (!m) {
            why = "out of memory";
            break;
        }
        gks_append_member(g, m);
        why = read_member(r, g, m, seen);
    }
    free(seen);
    return why;
}

/* Whether a group before g in list has g's name. */
static int named_before(const struct gks_group *list, const struct gks_group *g)
{
    for (; list != g; list = list->next)
        if (strcmp(list->name, g->name) == 0) return 1;
    return 0;
}

static const char *read_group(struct sts_wire_reader *r, struct gks_group *g,
                              const struct gks_group *before)
{
    const char *why;

    if (sts_wire_get_str8(r, g->name, sizeof g->name) != 0
        || (!r->err && !sts_group_name_valid(g->name, strlen(g->name))))
        return "bad group name";
    if (!r->err && named_before(before, g)) return "group saved twice";
    if ((why = read_config(r, &g->gc)) != NULL) return why;
    g->epoch = sts_wire_get_u32(r);
    sts_wire_get(r, g->key, STS_KEY_LEN);
    g->prev_epoch = sts_wire_get_u32(r);
    sts_wire_get(r, g->prev_key, STS_KEY_LEN);
    sts_wire_get(r, g->root, STS_KEY_LEN);
    g->origin_ms = sts_wire_get_u64(r);
    g->next_index = sts_wire_get_u32(r);
    g->mark = sts_wire_get_u32(r);
    if (r->err) return "truncated";
    if (g->epoch == 0 || (g->prev_epoch != 0 && g->prev_epoch != g->epoch - 1)) return "bad epoch";
    if (g->next_index == 0 || g->next_index > g->mark || g->mark > GKS_INDEX_MAX + 1)
        return "bad sender index reservation";
    if (g->gc.method == STS_GROUP_SLOTTED && g->origin_ms % ((uint64_t)g->gc.slot_seconds * 1000u) != 0)
        return "slot origin not on a slot boundary";
    return read_members(r, g);
}

static void free_groups(struct gks_group *g)
{
    struct gks_group *next;
    for (; g; g = next) {
        next = g->next;
        gks_group_free(g);
    }
}

/* Reads the whole body into a list of groups (in file order) at *out. */
static const char *read_body(struct sts_wire_reader *r, struct gks_group **out)
{
    uint32_t count = sts_wire_get_u32(r);
    struct gks_group *head = NULL, **tail = &head;
    const char *why = r->err ? "truncated" : NULL;

    for (uint32_t i = 0; i < count && !why; i++) {
        struct gks_group *g = calloc(1, sizeof *g);
        if (!g) {
            why = "out of memory";
            break;
        }
        *tail = g;
        tail = &g->next;
        why = read_group(r, g, head);
    }
    if (!why && r->left != 0) why = "bytes after the last group";
    if (why) {
        free_groups(head);
        head = NULL;
    }
    *out = head;
    return why;
}

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (errlen == 0) return STS_ERR_PARSE;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return STS_ERR_PARSE;
}

/* Checks the envelope: magic, version, length and hash. */
static int check_envelope(const uint8_t *buf, size_t len, size_t *bodylen, char *err, size_t errlen)
{
    uint8_t digest[STS_SHA256_LEN];
    uint64_t n;

    if (memcmp(buf, MAGIC, len < MAGIC_NAME_LEN ? len : MAGIC_NAME_LEN) != 0)
        return fail(err, errlen, "not a key server state file");
    if (len < sizeof MAGIC) return fail(err, errlen, "state file is corrupt: truncated");
    if (memcmp(buf, MAGIC, sizeof MAGIC) != 0)
        return fail(err, errlen, "state file is corrupt: unknown version %u.%u", buf[6], buf[7]);
    if (len < HEAD_LEN) return fail(err, errlen, "state file is corrupt: truncated");
    n = (uint64_t)buf[8] << 24 | (uint64_t)buf[9] << 16 | (uint64_t)buf[10] << 8 | buf[11];
    if (len - HEAD_LEN < STS_SHA256_LEN || len - HEAD_LEN - STS_SHA256_LEN < n)
        return fail(err, errlen, "state file is corrupt: truncated");
    if (len - HEAD_LEN - STS_SHA256_LEN > n) return fail(err, errlen, "state file is corrupt: bytes after its end");
    if (sts_hash(STS_SHA256, buf, HEAD_LEN + (size_t)n, digest) != 0)
        return fail(err, errlen, "state file could not be checked: hash failed");
    if (mbedtls_ct_memcmp(digest, buf + HEAD_LEN + n, STS_SHA256_LEN) != 0)
        return fail(err, errlen, "state file is corrupt: checksum mismatch");
    *bodylen = (size_t)n;
    return 0;
}

/* Takes g out of the core's list (it has no members). */
static void drop_group(struct sts_gks *ks, struct gks_group *g)
{
    struct gks_group **p = &ks->groups, *before = NULL;
    while (*p != g) {
        before = *p;
        p = &(*p)->next;
    }
    *p = g->next;
    if (ks->last_group == g) ks->last_group = before;
    ks->ngroups--;
    gks_group_free(g);
}

/* Moves the loaded groups into the core: each replaces a group of its name
 * (defined, with no members); its members wait detached, and its next index
 * starts at the saved reservation, above any index possibly given out. */
static void install(struct sts_gks *ks, struct gks_group *loaded, double now)
{
    struct gks_group *g, *next;
    for (g = loaded; g; g = next) {
        next = g->next;
        for (struct gks_group *old = ks->groups; old; old = old->next) {
            if (strcmp(old->name, g->name) == 0) {
                drop_group(ks, old);
                break;
            }
        }
        g->next_index = g->mark;
        for (struct gks_member *m = g->members; m; m = m->next) {
            m->last_seen = now;
            m->resume_deadline = now + ks->cfg.resume;
        }
        ks->nmembers += g->nmembers;
        gks_append_group(ks, g);
    }
}

int sts_gks_load(struct sts_gks *ks, const uint8_t *buf, size_t len, double now, char *err, size_t errlen)
{
    struct sts_wire_reader r;
    struct gks_group *loaded;
    const char *why;
    size_t bodylen = 0;
    int rc;

    if (ks->nmembers != 0) return fail(err, errlen, "the key server already has members");
    rc = check_envelope(buf, len, &bodylen, err, errlen);
    if (rc) return rc;
    sts_wire_reader_init(&r, buf + HEAD_LEN, bodylen);
    why = read_body(&r, &loaded);
    if (why) return fail(err, errlen, "state file is corrupt: %s", why);
    install(ks, loaded, now);
    ks->now = now;
    return 0;
}
