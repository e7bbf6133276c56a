/* The key server core: docs/PROTOCOL.md, "Key server", is its
 * specification. Groups hold their members in a list; attached memberships
 * are also found by their peer handle through a small hash table, since
 * every message arrives by peer. */
#include "proto/group_server.h"
#include "crypto/random.h"
#include "proto/group_state.h"
#include "util/error.h"

#include <mbedtls/platform_util.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PING_TIMEOUT 5.0
#define REKEY_RETRY 1.0
#define INITIAL_BUCKETS 64

void sts_gks_config_defaults(struct sts_gks_config *c)
{
    memset(c, 0, sizeof *c);
    c->defaults.method = STS_GROUP_STATIC;
    c->defaults.alg = STS_GROUP_CHACHAPOLY;
    c->defaults.grace = 30;
    c->defaults.slot_seconds = 60;
    c->defaults.depth = 20;
    c->defaults.skew = 30;
    c->defaults.grant = 3600;
    c->defaults.max_grant = 86400;
    c->idle = 90;
    c->resume = 120;
}

/* T/2 rounded up, at least 5: the skew a group gets when it names none. */
static uint16_t default_skew(uint32_t slot_seconds)
{
    uint32_t s = slot_seconds / 2 + slot_seconds % 2;
    if (s < 5) s = 5;
    return s > UINT16_MAX ? UINT16_MAX : (uint16_t)s;
}

int gks_config_valid(const struct sts_gks_group_config *gc)
{
    return gc->method >= STS_GROUP_STATIC && gc->method <= STS_GROUP_SLOTTED
           && (gc->alg == STS_GROUP_CHACHAPOLY || gc->alg == STS_GROUP_AESGCM)
           && (gc->sign == 0 || gc->sign == 1) && gc->slot_seconds >= 1 && gc->depth >= 1
           && gc->depth <= STS_SLOT_DEPTH_MAX && gc->grant >= 1 && gc->max_grant >= 1;
}

/* ---- time and slots ------------------------------------------------------ */

/* now as Unix milliseconds, clamped into what the arithmetic below handles. */
static uint64_t to_ms(double now)
{
    if (!(now > 0)) return 0;
    if (now > 1e13) return (uint64_t)1e16;
    return (uint64_t)(now * 1000.0);
}

static uint64_t slot_ms(const struct gks_group *g)
{
    return (uint64_t)g->gc.slot_seconds * 1000u;
}

static uint64_t last_slot(const struct gks_group *g)
{
    return ((uint64_t)1 << g->gc.depth) - 1;
}

/* The slots [first, last] a grant of `asked` seconds (0: the group's
 * default; at most its max_grant) made now covers. STS_ERR_TOO_BIG when the
 * tree has no slot left for now, STS_ERR_STATE when now is before the
 * tree's origin. */
static int compute_grant(const struct gks_group *g, uint32_t asked, double now, uint32_t *first,
                         uint32_t *last)
{
    uint64_t ms = to_ms(now), t = slot_ms(g), f, l;
    if (asked == 0) asked = g->gc.grant;
    if (asked > g->gc.max_grant) asked = g->gc.max_grant;
    if (ms < g->origin_ms) return STS_ERR_STATE;
    f = (ms - g->origin_ms) / t;
    if (f > last_slot(g)) return STS_ERR_TOO_BIG;
    l = (ms + (uint64_t)asked * 1000u - g->origin_ms) / t;
    if (l > last_slot(g)) l = last_slot(g);
    *first = (uint32_t)f;
    *last = (uint32_t)l;
    return 0;
}

/* ---- groups --------------------------------------------------------------- */

static struct gks_group *find_group(const struct sts_gks *ks, const char *name)
{
    for (struct gks_group *g = ks->groups; g; g = g->next)
        if (strcmp(g->name, name) == 0) return g;
    return NULL;
}

/* A SLOTTED group's schedule starts at the slot boundary before now. */
static void reset_origin(struct gks_group *g, double now)
{
    uint64_t t = slot_ms(g);
    g->origin_ms = to_ms(now) / t * t;
}

/* The secret the group's method uses, fresh from the generator. */
static int fresh_secret(struct gks_group *g)
{
    return sts_random(g->gc.method == STS_GROUP_SLOTTED ? g->root : g->key, STS_KEY_LEN);
}

static struct gks_group *group_new(const char *name, const struct sts_gks_group_config *gc, double now)
{
    struct gks_group *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    snprintf(g->name, sizeof g->name, "%s", name);
    g->gc = *gc;
    g->epoch = 1;
    g->next_index = 1;
    g->mark = 1;
    reset_origin(g, now);
    if (fresh_secret(g) != 0) {
        gks_group_free(g);
        return NULL;
    }
    return g;
}

void gks_append_group(struct sts_gks *ks, struct gks_group *g)
{
    g->next = NULL;
    if (ks->last_group) ks->last_group->next = g;
    else ks->groups = g;
    ks->last_group = g;
    ks->ngroups++;
}

static void member_free(struct gks_member *m)
{
    mbedtls_platform_zeroize(m, sizeof *m);
    free(m);
}

void gks_group_free(struct gks_group *g)
{
    struct gks_member *m = g->members, *next;
    for (; m; m = next) {
        next = m->next;
        member_free(m);
    }
    mbedtls_platform_zeroize(g, sizeof *g);
    free(g);
}

/* ---- the peer table ---------------------------------------------------------- */

static size_t bucket_of(const struct sts_gks *ks, const void *peer)
{
    uint64_t h = (uint64_t)(uintptr_t)peer * 0x9E3779B97F4A7C15u;
    return (size_t)(h >> 32) % ks->nbuckets;
}

static struct gks_member *find_peer(const struct sts_gks *ks, const void *peer)
{
    struct gks_member *m = ks->table[bucket_of(ks, peer)];
    while (m && m->peer != peer) m = m->peer_next;
    return m;
}

/* Doubles the table when it holds more memberships than buckets; without
 * memory for that the old table serves on, only slower. */
static void grow_table(struct sts_gks *ks)
{
    size_t old = ks->nbuckets;
    struct gks_member **was = ks->table, **t;
    if (ks->npeers <= old || old > SIZE_MAX / 2 / sizeof *t) return;
    t = calloc(old * 2, sizeof *t);
    if (!t) return;
    ks->table = t;
    ks->nbuckets = old * 2;
    for (size_t i = 0; i < old; i++) {
        struct gks_member *m = was[i], *next;
        for (; m; m = next) {
            size_t b = bucket_of(ks, m->peer);
            next = m->peer_next;
            m->peer_next = t[b];
            t[b] = m;
        }
    }
    free(was);
}

static void attach(struct sts_gks *ks, struct gks_member *m, void *peer)
{
    size_t b;
    m->peer = peer;
    ks->npeers++;
    grow_table(ks);
    b = bucket_of(ks, peer);
    m->peer_next = ks->table[b];
    ks->table[b] = m;
}

static void detach_peer(struct sts_gks *ks, struct gks_member *m)
{
    struct gks_member **p = &ks->table[bucket_of(ks, m->peer)];
    while (*p != m) p = &(*p)->peer_next;
    *p = m->peer_next;
    m->peer_next = NULL;
    m->peer = NULL;
    ks->npeers--;
}

/* ---- memberships ----------------------------------------------------------------- */

void gks_append_member(struct gks_group *g, struct gks_member *m)
{
    m->group = g;
    m->next = NULL;
    m->prev = g->last_member;
    if (g->last_member) g->last_member->next = m;
    else g->members = m;
    g->last_member = m;
    g->nmembers++;
}

/* Takes m out of its group and the peer table (m itself stays for the caller). */
static void unlink_member(struct sts_gks *ks, struct gks_member *m)
{
    struct gks_group *g = m->group;
    if (m->peer) detach_peer(ks, m);
    if (m->prev) m->prev->next = m->next;
    else g->members = m->next;
    if (m->next) m->next->prev = m->prev;
    else g->last_member = m->prev;
    g->nmembers--;
    ks->nmembers--;
}

/* ---- sending ----------------------------------------------------------------------- */

static void report(struct sts_gks *ks, enum sts_gks_event ev, void *peer, const char *group,
                   const char *member, const char *text)
{
    if (ks->ops.event) ks->ops.event(ks->ud, ev, peer, group, member, text);
}

/* Encodes msg and sends it to peer; the encoding is wiped after, since it
 * may carry a key. */
static int send_msg(struct sts_gks *ks, void *peer, const struct sts_gmsg *msg)
{
    size_t len = 0;
    int err = sts_gmsg_encode(msg, ks->buf, STS_GMSG_MAX, &len);
    if (err == 0 && ks->ops.send(ks->ud, peer, ks->buf, len) != 0) err = STS_ERR_IO;
    if (err == 0) ks->stats.messages_out++;
    mbedtls_platform_zeroize(ks->buf, len);
    return err;
}

static uint8_t flags_of(const struct gks_member *m)
{
    return (uint8_t)(STS_GFLAG_READ | (m->index ? STS_GFLAG_WRITE : 0)
                     | (m->group->gc.sign ? STS_GFLAG_SIGNED : 0));
}

static int send_key(struct sts_gks *ks, const struct gks_member *m)
{
    const struct gks_group *g = m->group;
    struct sts_gmsg msg;
    int err;

    memset(&msg, 0, sizeof msg);
    msg.type = STS_GMSG_KEY;
    memcpy(msg.u.key.group, g->name, sizeof g->name);
    msg.u.key.method = (uint8_t)g->gc.method;
    msg.u.key.alg = (uint8_t)g->gc.alg;
    msg.u.key.flags = flags_of(m);
    msg.u.key.epoch = g->epoch;
    msg.u.key.index = m->index;
    msg.u.key.grace = g->gc.grace;
    memcpy(msg.u.key.key, g->key, STS_KEY_LEN);
    err = send_msg(ks, m->peer, &msg);
    mbedtls_platform_zeroize(&msg, sizeof msg);
    return err;
}

static int send_slots(struct sts_gks *ks, const struct gks_member *m, double now)
{
    const struct gks_group *g = m->group;
    struct sts_gmsg msg;
    size_t count = 0;
    int err;

    memset(&msg, 0, sizeof msg);
    msg.type = STS_GMSG_SLOTS;
    memcpy(msg.u.slots.group, g->name, sizeof g->name);
    msg.u.slots.alg = (uint8_t)g->gc.alg;
    msg.u.slots.flags = flags_of(m);
    msg.u.slots.index = m->index;
    msg.u.slots.slot_seconds = g->gc.slot_seconds;
    msg.u.slots.depth = g->gc.depth;
    msg.u.slots.skew = g->gc.skew;
    msg.u.slots.origin_ms = g->origin_ms;
    msg.u.slots.now_ms = to_ms(now);
    msg.u.slots.first = m->first;
    msg.u.slots.last = m->last;
    err = sts_slot_cover(g->root, g->gc.depth, m->first, m->last, msg.u.slots.nodes, &count);
    msg.u.slots.count = (uint8_t)count;
    if (err == 0) err = send_msg(ks, m->peer, &msg);
    mbedtls_platform_zeroize(&msg, sizeof msg);
    return err;
}

/* What the member's method gives it: the epoch key or its slot grant. */
static int send_access(struct sts_gks *ks, const struct gks_member *m, double now)
{
    return m->group->gc.method == STS_GROUP_SLOTTED ? send_slots(ks, m, now) : send_key(ks, m);
}

static void send_text(struct sts_gks *ks, void *peer, uint8_t type, const char *group, const char *reason)
{
    struct sts_gmsg msg;
    memset(&msg, 0, sizeof msg);
    msg.type = type;
    snprintf(msg.u.text.group, sizeof msg.u.text.group, "%s", group);
    snprintf(msg.u.text.reason, sizeof msg.u.text.reason, "%s", reason);
    send_msg(ks, peer, &msg);
}

static void fill_entry(struct sts_gmsg_roster_entry *e, const struct gks_member *m, uint8_t op)
{
    memset(e, 0, sizeof *e);
    e->index = m->index;
    e->op = op;
    if (op != STS_ROSTER_ADD) return; /* a removal names only the index */
    memcpy(e->name, m->name, sizeof m->name);
    e->has_sign_pub = m->has_sign_pub && m->group->gc.sign; /* only signed groups need them */
    if (e->has_sign_pub) memcpy(e->sign_pub, m->sign_pub, STS_ECDSA_PUB_LEN);
}

static int send_roster(struct sts_gks *ks, void *peer, const char *group, uint8_t flags, uint16_t count)
{
    struct sts_gmsg msg;
    memset(&msg, 0, sizeof msg);
    msg.type = STS_GMSG_ROSTER;
    snprintf(msg.u.roster.group, sizeof msg.u.roster.group, "%s", group);
    msg.u.roster.flags = flags;
    msg.u.roster.count = count;
    msg.u.roster.entries = ks->entries;
    return send_msg(ks, peer, &msg);
}

/* The whole roster (the group's senders) to m: the first message replaces
 * what m knew, the others add to it. */
static void send_full_roster(struct sts_gks *ks, const struct gks_member *to)
{
    const struct gks_group *g = to->group;
    uint8_t flags = STS_GFLAG_REPLACE;
    uint16_t n = 0;

    for (const struct gks_member *m = g->members; m; m = m->next) {
        if (m->index == 0) continue;
        fill_entry(&ks->entries[n++], m, STS_ROSTER_ADD);
        if (n == STS_GMSG_ROSTER_MAX) {
            send_roster(ks, to->peer, g->name, flags, n);
            flags = 0;
            n = 0;
        }
    }
    if (n > 0 || flags) send_roster(ks, to->peer, g->name, flags, n);
}

/* One roster change (m added or removed) to every attached member but m. */
static void announce(struct sts_gks *ks, const struct gks_member *m, uint8_t op)
{
    fill_entry(&ks->entries[0], m, op);
    for (const struct gks_member *o = m->group->members; o; o = o->next)
        if (o != m && o->peer) send_roster(ks, o->peer, m->group->name, 0, 1);
}

/* ---- rekeying ---------------------------------------------------------------------- */

/* Moves g to a new secret, saves it, then sends it to every attached member:
 * STATIC/UPDATE a new epoch key (the previous one kept for the state file),
 * SLOTTED a new tree root and every member's grant again from it. When the
 * save fails nothing changes and the error is returned. */
static int rekey(struct sts_gks *ks, struct gks_group *g, const char *why, double now)
{
    uint8_t old_key[STS_KEY_LEN], old_prev[STS_KEY_LEN], old_root[STS_KEY_LEN];
    uint32_t old_epoch = g->epoch, old_prev_epoch = g->prev_epoch;
    int err;

    if (g->gc.method != STS_GROUP_SLOTTED && g->epoch == UINT32_MAX) return STS_ERR_TOO_BIG;
    memcpy(old_key, g->key, STS_KEY_LEN);
    memcpy(old_prev, g->prev_key, STS_KEY_LEN);
    memcpy(old_root, g->root, STS_KEY_LEN);
    if (g->gc.method != STS_GROUP_SLOTTED) {
        g->prev_epoch = g->epoch;
        memcpy(g->prev_key, g->key, STS_KEY_LEN);
        g->epoch++;
    }
    err = fresh_secret(g);
    if (err == 0 && ks->ops.save && ks->ops.save(ks->ud) != 0) err = STS_ERR_IO;
    if (err) {
        g->epoch = old_epoch;
        g->prev_epoch = old_prev_epoch;
        memcpy(g->key, old_key, STS_KEY_LEN);
        memcpy(g->prev_key, old_prev, STS_KEY_LEN);
        memcpy(g->root, old_root, STS_KEY_LEN);
    } else {
        g->rekey_due = 0;
        ks->stats.rekeys++;
        report(ks, STS_GKS_REKEYED, NULL, g->name, NULL, why);
        for (struct gks_member *m = g->members; m; m = m->next)
            if (m->peer) send_access(ks, m, now);
    }
    mbedtls_platform_zeroize(old_key, sizeof old_key);
    mbedtls_platform_zeroize(old_prev, sizeof old_prev);
    mbedtls_platform_zeroize(old_root, sizeof old_root);
    return err;
}

/* A rekey that must happen (a member is gone): one that cannot be saved now
 * is retried by sts_gks_tick. */
static void rekey_or_retry(struct sts_gks *ks, struct gks_group *g, const char *why, double now)
{
    if (rekey(ks, g, why, now) != 0) g->rekey_due = 1;
}

/* ---- ending memberships ---------------------------------------------------------------- */

/* m's membership ends: the other members drop its index from their rosters,
 * an UPDATE group moves to a key m never had (when `rekey_now`), and its
 * session, if it has one and `kill` is given, is ended. */
static void end_membership(struct sts_gks *ks, struct gks_member *m, enum sts_gks_event ev,
                           const char *text, const char *kill, int rekey_now, double now)
{
    struct gks_group *g = m->group;
    void *peer = m->peer;

    unlink_member(ks, m);
    if (m->index) announce(ks, m, STS_ROSTER_REMOVE);
    if (ev == STS_GKS_REMOVED) ks->stats.removals++;
    else ks->stats.leaves++;
    report(ks, ev, peer, g->name, m->name, text);
    if (rekey_now && g->gc.method == STS_GROUP_UPDATE) rekey_or_retry(ks, g, "a member left", now);
    if (peer && kill && ks->ops.end) ks->ops.end(ks->ud, peer, kill);
    member_free(m);
}

/* ---- the core --------------------------------------------------------------------------- */

struct sts_gks *sts_gks_new(const struct sts_gks_config *cfg, const struct sts_gks_ops *ops, void *ud)
{
    struct sts_gks *ks;
    if (!ops->send || !gks_config_valid(&cfg->defaults)) return NULL;
    ks = calloc(1, sizeof *ks);
    if (!ks) return NULL;
    ks->cfg = *cfg;
    if (ks->cfg.defaults.skew == 0) ks->cfg.defaults.skew = default_skew(cfg->defaults.slot_seconds);
    ks->ops = *ops;
    ks->ud = ud;
    ks->nbuckets = INITIAL_BUCKETS;
    ks->table = calloc(ks->nbuckets, sizeof *ks->table);
    ks->buf = malloc(STS_GMSG_MAX);
    ks->entries = calloc(STS_GMSG_ROSTER_MAX, sizeof *ks->entries);
    if (!ks->table || !ks->buf || !ks->entries) {
        sts_gks_free(ks);
        return NULL;
    }
    return ks;
}

void sts_gks_free(struct sts_gks *ks)
{
    struct gks_group *g, *next;
    if (!ks) return;
    for (g = ks->groups; g; g = next) {
        next = g->next;
        gks_group_free(g);
    }
    sts_acl_free(&ks->acl);
    free(ks->table);
    if (ks->buf) mbedtls_platform_zeroize(ks->buf, STS_GMSG_MAX);
    free(ks->buf);
    free(ks->entries);
    free(ks);
}

/* Whether a change of settings makes the keys members hold wrong. */
static int needs_rekey(const struct sts_gks_group_config *a, const struct sts_gks_group_config *b)
{
    return a->method != b->method || a->alg != b->alg || a->sign != b->sign
           || (b->method == STS_GROUP_SLOTTED
               && (a->slot_seconds != b->slot_seconds || a->depth != b->depth));
}

/* A new slot schedule (method now SLOTTED, or another T or D): it starts at
 * now and every member is granted the group's default from there. */
static void restart_schedule(struct gks_group *g, double now)
{
    reset_origin(g, now);
    for (struct gks_member *m = g->members; m; m = m->next)
        if (compute_grant(g, 0, now, &m->first, &m->last) != 0) m->first = m->last = 0;
}

int sts_gks_define(struct sts_gks *ks, const char *group, const struct sts_gks_group_config *gc, double now)
{
    struct sts_gks_group_config c = *gc;
    struct sts_gks_group_config was;
    struct gks_group *g;

    ks->now = now;
    if (!group || !sts_group_name_valid(group, strlen(group)) || !gks_config_valid(&c))
        return STS_ERR_INVALID;
    if (c.skew == 0) c.skew = default_skew(c.slot_seconds);
    g = find_group(ks, group);
    if (!g) {
        g = group_new(group, &c, now);
        if (!g) return STS_ERR_NOMEM;
        gks_append_group(ks, g);
        return 0;
    }
    was = g->gc;
    g->gc = c;
    if (!needs_rekey(&was, &c)) return 0;
    if (c.method == STS_GROUP_SLOTTED
        && (was.method != c.method || was.slot_seconds != c.slot_seconds || was.depth != c.depth))
        restart_schedule(g, now);
    rekey_or_retry(ks, g, "settings changed", now);
    return 0;
}

/* Whether m may stay under the ACL: still listed, with the group on its
 * line and the same permissions. */
static int still_allowed(const struct sts_acl *acl, const struct gks_member *m)
{
    const struct sts_acl_entry *e = sts_acl_find(acl, m->pub);
    return e && sts_acl_perm(e, m->group->name) == m->perm;
}

void sts_gks_set_acl(struct sts_gks *ks, struct sts_acl *acl, double now)
{
    static const char why[] = "removed by the access list";
    struct sts_acl old = ks->acl;

    ks->now = now;
    ks->acl = *acl;
    memset(acl, 0, sizeof *acl);
    sts_acl_free(&old);
    for (struct gks_group *g = ks->groups; g; g = g->next) {
        struct gks_member *m = g->members, *next;
        for (; m; m = next) {
            next = m->next;
            if (still_allowed(&ks->acl, m)) continue;
            if (m->peer) send_text(ks, m->peer, STS_GMSG_REMOVED, g->name, why);
            g->affected = 1;
            end_membership(ks, m, STS_GKS_REMOVED, why, why, 0, now);
        }
    }
    /* One rekey per group that lost members, whatever its method: a
     * revoked member must not read what follows, even in a STATIC group. */
    for (struct gks_group *g = ks->groups; g; g = g->next) {
        if (!g->affected) continue;
        g->affected = 0;
        rekey_or_retry(ks, g, why, now);
    }
}

/* ---- messages from members ---------------------------------------------------------------- */

/* A message turned down: REJECTED only counts and reports it, REFUSED also
 * tells the peer why. */
__attribute__((format(printf, 6, 0)))
static void turn_down(struct sts_gks *ks, enum sts_gks_event ev, void *peer, const char *group,
                      const char *member, const char *fmt, va_list ap)
{
    char text[STS_GROUP_REASON_MAX + 1];

    vsnprintf(text, sizeof text, fmt, ap);
    if (ev == STS_GKS_REFUSED) {
        send_text(ks, peer, STS_GMSG_REFUSED, group, text);
        ks->stats.refusals++;
    } else {
        ks->stats.rejected++;
    }
    report(ks, ev, peer, group, member, text);
}

__attribute__((format(printf, 5, 6)))
static void reject(struct sts_gks *ks, void *peer, const struct gks_member *m, const char *group,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    turn_down(ks, STS_GKS_REJECTED, peer, m ? m->group->name : group, m ? m->name : NULL, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 5, 6)))
static void refuse(struct sts_gks *ks, void *peer, const char *group, const char *member,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    turn_down(ks, STS_GKS_REFUSED, peer, group, member, fmt, ap);
    va_end(ap);
}

/* The next sender index of g, reserving (and saving) a new block first
 * when the saved reservation does not cover it. STS_ERR_TOO_BIG when none
 * is left, STS_ERR_IO when the reservation could not be saved. */
static int take_index(struct sts_gks *ks, struct gks_group *g, uint16_t *index)
{
    if (g->next_index > GKS_INDEX_MAX) return STS_ERR_TOO_BIG;
    if (g->next_index >= g->mark) {
        uint32_t was = g->mark;
        g->mark = g->mark + GKS_INDEX_BLOCK > GKS_INDEX_MAX + 1 ? GKS_INDEX_MAX + 1 : g->mark + GKS_INDEX_BLOCK;
        if (ks->ops.save && ks->ops.save(ks->ud) != 0) {
            g->mark = was;
            return STS_ERR_IO;
        }
    }
    *index = (uint16_t)g->next_index++;
    return 0;
}

static void refuse_grant(struct sts_gks *ks, void *peer, const struct gks_group *g, const char *member,
                         int err)
{
    if (err == STS_ERR_TOO_BIG) refuse(ks, peer, g->name, member, "the slot tree is exhausted");
    else refuse(ks, peer, g->name, member, "the key server's clock is before the slot tree's origin");
}

/* A JOIN for the group the session already holds: a SLOTTED member gets
 * the next interval, the others their key again. */
static void renew(struct sts_gks *ks, struct gks_member *m, const struct sts_gmsg_join *j, double now)
{
    struct gks_group *g = m->group;
    if (g->gc.method == STS_GROUP_SLOTTED) {
        int err = compute_grant(g, j->grant, now, &m->first, &m->last);
        if (err) {
            refuse_grant(ks, m->peer, g, m->name, err);
            return;
        }
    }
    send_access(ks, m, now);
    report(ks, STS_GKS_JOINED, m->peer, g->name, m->name, "renewed");
}

static int same_signing_key(const struct gks_member *m, const struct sts_gmsg_join *j)
{
    return m->has_sign_pub == j->has_sign_pub
           && (!m->has_sign_pub || memcmp(m->sign_pub, j->sign_pub, STS_ECDSA_PUB_LEN) == 0);
}

/* The restored membership this JOIN comes back for, if any: same key,
 * group, index, permissions and signing key, and for an epoch method an
 * epoch whose key it may still hold. */
static struct gks_member *find_resumable(struct gks_group *g, const uint8_t pub[STS_X25519_LEN],
                                         int perm, const struct sts_gmsg_join *j)
{
    if (j->resume_index == 0) return NULL;
    if (g->gc.method != STS_GROUP_SLOTTED && j->resume_epoch != g->epoch
        && !(j->resume_epoch != 0 && j->resume_epoch == g->epoch - 1))
        return NULL;
    for (struct gks_member *m = g->members; m; m = m->next)
        if (!m->peer && m->index == j->resume_index && m->perm == perm
            && memcmp(m->pub, pub, STS_X25519_LEN) == 0 && same_signing_key(m, j))
            return m;
    return NULL;
}

static void set_client_id(struct gks_member *m, const char *client_id)
{
    size_t n = strlen(client_id);
    if (n > GKS_CLIENT_ID_MAX) n = GKS_CLIENT_ID_MAX;
    memcpy(m->client_id, client_id, n);
    m->client_id[n] = '\0';
}

/* Sends a member (new or resumed) what it needs to take part. */
static void welcome(struct sts_gks *ks, struct gks_member *m, const char *text)
{
    ks->stats.joins++;
    report(ks, STS_GKS_JOINED, m->peer, m->group->name, m->name, text);
    send_full_roster(ks, m);
}

static void resume(struct sts_gks *ks, struct gks_member *m, void *peer, const struct sts_gmsg_join *j,
                   double now)
{
    struct gks_group *g = m->group;
    if (g->gc.method == STS_GROUP_SLOTTED) {
        int err = compute_grant(g, j->grant, now, &m->first, &m->last);
        if (err) {
            refuse_grant(ks, peer, g, m->name, err);
            return;
        }
    }
    attach(ks, m, peer);
    set_client_id(m, j->client_id);
    m->last_seen = now;
    m->resume_deadline = 0;
    send_access(ks, m, now);
    welcome(ks, m, "resumed");
}

static void add_member(struct sts_gks *ks, struct gks_group *g, void *peer, const struct sts_acl_entry *e,
                       int perm, const struct sts_gmsg_join *j, double now)
{
    struct gks_member *m;
    uint32_t first = 0, last = 0;
    uint16_t index = 0;
    int err;

    if (g->gc.method == STS_GROUP_SLOTTED && (err = compute_grant(g, j->grant, now, &first, &last)) != 0) {
        refuse_grant(ks, peer, g, e->name, err);
        return;
    }
    if ((perm & STS_ACL_WRITE) && (err = take_index(ks, g, &index)) != 0) {
        if (err == STS_ERR_TOO_BIG) refuse(ks, peer, g->name, e->name, "no sender index is left in group %s", g->name);
        else refuse(ks, peer, g->name, e->name, "the key server could not save its state");
        return;
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        refuse(ks, peer, g->name, e->name, "the key server is out of memory");
        return;
    }
    memcpy(m->pub, e->pub, STS_X25519_LEN);
    snprintf(m->name, sizeof m->name, "%s", e->name);
    m->perm = (uint8_t)perm;
    m->index = index;
    m->has_sign_pub = j->has_sign_pub;
    memcpy(m->sign_pub, j->sign_pub, STS_ECDSA_PUB_LEN);
    set_client_id(m, j->client_id);
    m->first = first;
    m->last = last;
    m->last_seen = now;
    gks_append_member(g, m);
    ks->nmembers++;
    attach(ks, m, peer);
    if (g->gc.method == STS_GROUP_UPDATE) {
        /* The joiner must not read what was sent before it came: a new
         * epoch, which reaches it with everyone else. */
        if (rekey(ks, g, "a member joined", now) != 0) {
            unlink_member(ks, m);
            member_free(m);
            refuse(ks, peer, g->name, e->name, "the key server could not save its state");
            return;
        }
    } else {
        send_access(ks, m, now);
    }
    welcome(ks, m, "joined");
    if (m->index) announce(ks, m, STS_ROSTER_ADD);
}

static void on_join(struct sts_gks *ks, void *peer, const uint8_t pub[STS_X25519_LEN],
                    struct gks_member *m, const struct sts_gmsg_join *j, double now)
{
    const struct sts_acl_entry *e = sts_acl_find(&ks->acl, pub);
    struct gks_group *g;
    struct gks_member *back;
    int perm;

    if (!e) {
        refuse(ks, peer, j->group, NULL, "not in the access list");
        return;
    }
    perm = sts_acl_perm(e, j->group);
    if (perm == 0) {
        refuse(ks, peer, j->group, e->name, "not a member of group %s", j->group);
        return;
    }
    if (m) {
        if (strcmp(m->group->name, j->group) == 0) renew(ks, m, j, now);
        else refuse(ks, peer, j->group, e->name, "one group per session");
        return;
    }
    g = find_group(ks, j->group);
    if (!g && (g = group_new(j->group, &ks->cfg.defaults, now)) != NULL) gks_append_group(ks, g);
    if (!g) {
        refuse(ks, peer, j->group, e->name, "the key server could not create the group");
        return;
    }
    if ((perm & STS_ACL_WRITE) && g->gc.sign && !j->has_sign_pub) {
        refuse(ks, peer, j->group, e->name, "a signed group needs a signing key");
        return;
    }
    back = find_resumable(g, pub, perm, j);
    if (back) resume(ks, back, peer, j, now);
    else add_member(ks, g, peer, e, perm, j, now);
}

static void on_leave(struct sts_gks *ks, void *peer, struct gks_member *m, const struct sts_gmsg_text *t,
                     double now)
{
    if (!m || strcmp(m->group->name, t->group) != 0) {
        reject(ks, peer, m, t->group, "LEAVE for a group it does not hold");
        return;
    }
    end_membership(ks, m, STS_GKS_LEFT, "left", "left the group", 1, now);
}

static void on_pong(struct sts_gks *ks, void *peer, struct gks_member *m, uint32_t token, double now)
{
    if (!m || m->ping_deadline == 0 || m->ping_token != token) {
        reject(ks, peer, m, NULL, "a PONG for no PING");
        return;
    }
    m->ping_deadline = 0;
    m->last_seen = now;
}

static void answer_ping(struct sts_gks *ks, void *peer, uint32_t token)
{
    struct sts_gmsg msg;
    memset(&msg, 0, sizeof msg);
    msg.type = STS_GMSG_PONG;
    msg.u.token = token;
    send_msg(ks, peer, &msg);
}

void sts_gks_receive(struct sts_gks *ks, void *peer, const uint8_t pub[STS_X25519_LEN],
                     const uint8_t *msg, size_t len, double now)
{
    struct gks_member *m = find_peer(ks, peer);
    struct sts_gmsg in;
    int err = sts_gmsg_decode(msg, len, &in, ks->entries);

    ks->now = now;
    if (err) {
        reject(ks, peer, m, NULL, "malformed message: %s", sts_strerror(err));
    } else if (m && memcmp(m->pub, pub, STS_X25519_LEN) != 0) {
        reject(ks, peer, m, NULL, "the session's key does not match its membership");
    } else {
        switch (in.type) {
        case STS_GMSG_JOIN:
            if (m) m->last_seen = now;
            on_join(ks, peer, pub, m, &in.u.join, now);
            break;
        case STS_GMSG_LEAVE:
            on_leave(ks, peer, m, &in.u.text, now);
            break;
        case STS_GMSG_PING:
            if (m) m->last_seen = now;
            answer_ping(ks, peer, in.u.token);
            break;
        case STS_GMSG_PONG:
            on_pong(ks, peer, m, in.u.token, now);
            break;
        default:
            reject(ks, peer, m, NULL, "a key server's message (type 0x%02x) from a member", in.type);
            break;
        }
    }
    mbedtls_platform_zeroize(&in, sizeof in);
}

void sts_gks_detach(struct sts_gks *ks, void *peer, const char *why, double now)
{
    struct gks_member *m = find_peer(ks, peer);
    ks->now = now;
    if (m) end_membership(ks, m, STS_GKS_LEFT, why ? why : "session ended", NULL, 1, now);
}

void sts_gks_will(struct sts_gks *ks, const char *client_id, double now)
{
    ks->now = now;
    if (!client_id || client_id[0] == '\0') return;
    for (struct gks_group *g = ks->groups; g; g = g->next) {
        for (struct gks_member *m = g->members; m; m = m->next) {
            struct sts_gmsg msg;
            if (!m->peer || m->ping_deadline != 0 || strcmp(m->client_id, client_id) != 0) continue;
            if (sts_random((uint8_t *)&m->ping_token, sizeof m->ping_token) != 0) m->ping_token = 0;
            m->ping_deadline = now + PING_TIMEOUT;
            memset(&msg, 0, sizeof msg);
            msg.type = STS_GMSG_PING;
            msg.u.token = m->ping_token;
            send_msg(ks, m->peer, &msg);
        }
    }
}

int sts_gks_rotate(struct sts_gks *ks, const char *group, double now)
{
    struct gks_group *g = find_group(ks, group);
    int err;
    ks->now = now;
    if (!g) return STS_ERR_INVALID;
    err = rekey(ks, g, "rotation", now);
    if (err) g->rekey_due = 1;
    return err;
}

static double earlier(double next, double t)
{
    return next == 0 || t < next ? t : next;
}

/* Ends m if one of its deadlines passed; otherwise returns the earliest of
 * them (0 when it has none). */
static double tick_member(struct sts_gks *ks, struct gks_member *m, double now)
{
    double next = 0;
    if (!m->peer) {
        if (now >= m->resume_deadline) {
            end_membership(ks, m, STS_GKS_LEFT, "did not come back", NULL, 1, now);
            return 0;
        }
        return m->resume_deadline;
    }
    if (m->ping_deadline != 0) {
        if (now >= m->ping_deadline) {
            end_membership(ks, m, STS_GKS_LEFT, "did not answer", "did not answer a ping", 1, now);
            return 0;
        }
        next = m->ping_deadline;
    }
    if (ks->cfg.idle > 0) {
        if (now - m->last_seen > ks->cfg.idle) {
            end_membership(ks, m, STS_GKS_LEFT, "idle", "idle", 1, now);
            return 0;
        }
        next = earlier(next, m->last_seen + ks->cfg.idle);
    }
    return next;
}

double sts_gks_tick(struct sts_gks *ks, double now)
{
    double next = 0;
    ks->now = now;
    for (struct gks_group *g = ks->groups; g; g = g->next) {
        struct gks_member *m = g->members, *after;
        for (; m; m = after) {
            double t;
            after = m->next;
            t = tick_member(ks, m, now);
            if (t != 0) next = earlier(next, t);
        }
        if (g->rekey_due) rekey_or_retry(ks, g, "retrying a rekey", now);
        if (g->rekey_due) next = earlier(next, now + REKEY_RETRY);
    }
    return next;
}

void sts_gks_stats(const struct sts_gks *ks, struct sts_gks_stats *st)
{
    *st = ks->stats;
    st->groups = ks->ngroups;
    st->members = ks->nmembers;
    st->peers = ks->npeers;
}

int sts_gks_group_info(const struct sts_gks *ks, const char *group, uint32_t *epoch, size_t *members)
{
    const struct gks_group *g = find_group(ks, group);
    uint32_t first = 0, last = 0;
    if (!g) return STS_ERR_INVALID;
    *epoch = g->epoch;
    if (g->gc.method == STS_GROUP_SLOTTED && compute_grant(g, 1, ks->now, &first, &last) == 0)
        *epoch = first;
    *members = g->nmembers;
    return 0;
}

const char *sts_gks_group_name(const struct sts_gks *ks, size_t i)
{
    const struct gks_group *g = ks->groups;
    while (g && i--) g = g->next;
    return g ? g->name : NULL;
}

/* The core's own memory; the ACL's is the caller's to count. */
size_t sts_gks_memory(const struct sts_gks *ks)
{
    return sizeof *ks + STS_GMSG_MAX + STS_GMSG_ROSTER_MAX * sizeof *ks->entries
           + ks->nbuckets * sizeof *ks->table + ks->ngroups * sizeof(struct gks_group)
           + ks->nmembers * sizeof(struct gks_member);
}
