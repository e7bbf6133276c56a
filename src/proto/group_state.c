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

/* Bytes written to p, or only counted when p is NULL (the sizing pass). */
struct out {
    uint8_t *p;
    size_t len;
};

static void put(struct out *o, const void *b, size_t n)
{
    if (o->p) memcpy(o->p + o->len, b, n);
    o->len += n;
}

static void put_uint(struct out *o, uint64_t v, size_t n)
{
    uint8_t b[8];
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    put(o, b, n);
}

static void put_str8(struct out *o, const char *s)
{
    size_t n = strlen(s);
    put_uint(o, n, 1);
    put(o, s, n);
}

static void put_config(struct out *o, const struct sts_gks_group_config *gc)
{
    put_uint(o, (uint64_t)gc->method, 1);
    put_uint(o, (uint64_t)gc->alg, 1);
    put_uint(o, (uint64_t)gc->sign, 1);
    put_uint(o, gc->grace, 2);
    put_uint(o, gc->slot_seconds, 4);
    put_uint(o, gc->depth, 1);
    put_uint(o, gc->skew, 2);
    put_uint(o, gc->grant, 4);
    put_uint(o, gc->max_grant, 4);
}

static void put_member(struct out *o, const struct gks_member *m)
{
    put(o, m->pub, STS_X25519_LEN);
    put_str8(o, m->name);
    put_uint(o, m->perm, 1);
    put_uint(o, m->index, 2);
    put_uint(o, m->has_sign_pub ? STS_ECDSA_PUB_LEN : 0, 1);
    if (m->has_sign_pub) put(o, m->sign_pub, STS_ECDSA_PUB_LEN);
    put_str8(o, m->client_id);
    put_uint(o, m->first, 4);
    put_uint(o, m->last, 4);
}

static void put_group(struct out *o, const struct gks_group *g)
{
    put_str8(o, g->name);
    put_config(o, &g->gc);
    put_uint(o, g->epoch, 4);
    put(o, g->key, STS_KEY_LEN);
    put_uint(o, g->prev_epoch, 4);
    put(o, g->prev_key, STS_KEY_LEN);
    put(o, g->root, STS_KEY_LEN);
    put_uint(o, g->origin_ms, 8);
    put_uint(o, g->next_index, 4);
    put_uint(o, g->mark, 4);
    put_uint(o, g->nmembers, 4);
    for (const struct gks_member *m = g->members; m; m = m->next) put_member(o, m);
}

static void put_body(struct out *o, const struct sts_gks *ks)
{
    put_uint(o, ks->ngroups, 4);
    for (const struct gks_group *g = ks->groups; g; g = g->next) put_group(o, g);
}

int sts_gks_save(const struct sts_gks *ks, uint8_t **out, size_t *len)
{
    struct out sizing = { NULL, 0 }, o;
    size_t total;
    int err;

    put_body(&sizing, ks);
    if (sizing.len > UINT32_MAX) return STS_ERR_TOO_BIG;
    total = HEAD_LEN + sizing.len + STS_SHA256_LEN;
    o.p = malloc(total);
    o.len = 0;
    if (!o.p) return STS_ERR_NOMEM;
    put(&o, MAGIC, sizeof MAGIC);
    put_uint(&o, sizing.len, 4);
    put_body(&o, ks);
    err = sts_hash(STS_SHA256, o.p, o.len, o.p + o.len);
    if (err) {
        mbedtls_platform_zeroize(o.p, total);
        free(o.p);
        return err;
    }
    *out = o.p;
    *len = total;
    return 0;
}

/* ---- reading -------------------------------------------------------------------- */

/* A reader over the body: once a read runs past the end, `bad` is set and
 * every later read gives zeros. */
struct in {
    const uint8_t *p;
    size_t len, off;
    int bad;
};

static const uint8_t *take(struct in *r, size_t n)
{
    const uint8_t *b;
    if (r->bad || r->len - r->off < n) {
        r->bad = 1;
        return NULL;
    }
    b = r->p + r->off;
    r->off += n;
    return b;
}

static uint64_t get_uint(struct in *r, size_t n)
{
    const uint8_t *b = take(r, n);
    uint64_t v = 0;
    for (size_t i = 0; b && i < n; i++) v = v << 8 | b[i];
    return v;
}

static void get_bytes(struct in *r, void *dst, size_t n)
{
    const uint8_t *b = take(r, n);
    if (b) memcpy(dst, b, n);
}

/* A str8 into dst (cap bytes with its terminator). 0, or -1 when it is too
 * long or holds a NUL. */
static int get_str8(struct in *r, char *dst, size_t cap)
{
    size_t n = (size_t)get_uint(r, 1);
    const uint8_t *b = take(r, n);
    dst[0] = '\0';
    if (!b) return 0;
    if (n >= cap || memchr(b, 0, n)) return -1;
    memcpy(dst, b, n);
    dst[n] = '\0';
    return 0;
}

static const char *read_config(struct in *r, struct sts_gks_group_config *gc)
{
    uint8_t method = (uint8_t)get_uint(r, 1), alg = (uint8_t)get_uint(r, 1);

    memset(gc, 0, sizeof *gc);
    gc->sign = (int)get_uint(r, 1);
    gc->grace = (uint16_t)get_uint(r, 2);
    gc->slot_seconds = (uint32_t)get_uint(r, 4);
    gc->depth = (uint8_t)get_uint(r, 1);
    gc->skew = (uint16_t)get_uint(r, 2);
    gc->grant = (uint32_t)get_uint(r, 4);
    gc->max_grant = (uint32_t)get_uint(r, 4);
    if (r->bad) return "truncated";
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

static const char *read_member(struct in *r, const struct gks_group *g, struct gks_member *m, uint8_t *seen)
{
    size_t sign_len;

    get_bytes(r, m->pub, STS_X25519_LEN);
    if (get_str8(r, m->name, sizeof m->name) != 0 || (!r->bad && !sts_group_name_valid(m->name, strlen(m->name))))
        return "bad member name";
    m->perm = (uint8_t)get_uint(r, 1);
    m->index = (uint16_t)get_uint(r, 2);
    sign_len = (size_t)get_uint(r, 1);
    if (sign_len != 0 && sign_len != STS_ECDSA_PUB_LEN) return r->bad ? "truncated" : "bad signing key length";
    m->has_sign_pub = sign_len != 0;
    get_bytes(r, m->sign_pub, sign_len);
    if (get_str8(r, m->client_id, sizeof m->client_id) != 0) return "bad client id";
    m->first = (uint32_t)get_uint(r, 4);
    m->last = (uint32_t)get_uint(r, 4);
    if (r->bad) return "truncated";
    if (m->perm < STS_ACL_READ || m->perm > (STS_ACL_READ | STS_ACL_WRITE)) return "bad member permissions";
    if ((m->perm & STS_ACL_WRITE) ? m->index == 0 || m->index >= g->next_index : m->index != 0)
        return "bad sender index";
    if (m->index && claim_index(seen, m->index) != 0) return "sender index given twice";
    if (g->gc.method == STS_GROUP_SLOTTED
        && (m->first > m->last || m->last > ((uint64_t)1 << g->gc.depth) - 1))
        return "grant out of range";
    return NULL;
}

static const char *read_members(struct in *r, struct gks_group *g)
{
    uint32_t count = (uint32_t)get_uint(r, 4);
    uint8_t *seen = calloc(1, (GKS_INDEX_MAX + 1) / 8);
    const char *why = r->bad ? "truncated" : NULL;

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

static const char *read_group(struct in *r, struct gks_group *g, const struct gks_group *before)
{
    const char *why;

    if (get_str8(r, g->name, sizeof g->name) != 0 || (!r->bad && !sts_group_name_valid(g->name, strlen(g->name))))
        return "bad group name";
    if (!r->bad && named_before(before, g)) return "group saved twice";
    if ((why = read_config(r, &g->gc)) != NULL) return why;
    g->epoch = (uint32_t)get_uint(r, 4);
    get_bytes(r, g->key, STS_KEY_LEN);
    g->prev_epoch = (uint32_t)get_uint(r, 4);
    get_bytes(r, g->prev_key, STS_KEY_LEN);
    get_bytes(r, g->root, STS_KEY_LEN);
    g->origin_ms = get_uint(r, 8);
    g->next_index = (uint32_t)get_uint(r, 4);
    g->mark = (uint32_t)get_uint(r, 4);
    if (r->bad) return "truncated";
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
static const char *read_body(struct in *r, struct gks_group **out)
{
    uint32_t count = (uint32_t)get_uint(r, 4);
    struct gks_group *head = NULL, **tail = &head;
    const char *why = r->bad ? "truncated" : NULL;

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
    if (!why && r->off != r->len) why = "bytes after the last group";
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
    struct in r = { NULL, 0, 0, 0 };
    struct gks_group *loaded;
    const char *why;
    size_t bodylen;
    int rc;

    if (ks->nmembers != 0) return fail(err, errlen, "the key server already has members");
    rc = check_envelope(buf, len, &bodylen, err, errlen);
    if (rc) return rc;
    r.p = buf + HEAD_LEN;
    r.len = bodylen;
    why = read_body(&r, &loaded);
    if (why) return fail(err, errlen, "state file is corrupt: %s", why);
    install(ks, loaded, now);
    ks->now = now;
    return 0;
}
