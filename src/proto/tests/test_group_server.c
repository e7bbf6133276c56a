/* The key server core driven by fake peers: each peer's send callback
 * decodes what the core sends it (sts_gmsg_decode must accept every message)
 * into that peer's inbox, and the access list is real text parsed by
 * sts_acl_parse. Expected indexes, epochs, slots and covers are computed
 * here from the rules, and slot keys are checked against the tree's root. */
#include "crypto/hash.h"
#include "proto/acl.h"
#include "proto/group_msg.h"
#include "proto/group_server.h"
#include "proto/slot_tree.h"
#include "util/error.h"
#include "util/unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPEERS 300
#define ROSTER_CAP 1024
#define NAMES_CAP 16 /* names kept for the low indexes */

struct peer {
    uint8_t pub[STS_X25519_LEN];
    int nkey, nslots, nroster, nrefused, nremoved, npong, nping, ended;
    struct sts_gmsg_key key;       /* the last KEY */
    struct sts_gmsg_slots slots;   /* the last SLOTS */
    char reason[STS_GROUP_REASON_MAX + 1]; /* of the last REFUSED / REMOVED */
    char end_reason[128];
    uint32_t pong, ping;
    int in_roster[ROSTER_CAP];
    char roster_name[NAMES_CAP][STS_GROUP_NAME_MAX + 1];
};

static struct peer peers[NPEERS];
static struct sts_gks *ks;
static double now = 1700000000.5;
static int events[STS_GKS_REJECTED + 1];
static char last_text[256];
static int save_calls, save_fails, keys_at_save;
static uint8_t *saved;
static size_t saved_len;
static int keys_sent;
static struct sts_gmsg_roster_entry entries[STS_GMSG_ROSTER_MAX];

/* ---- harness --------------------------------------------------------------- */

static void apply_roster(struct peer *p, const struct sts_gmsg_roster *r)
{
    p->nroster++;
    if (r->flags & STS_GFLAG_REPLACE) memset(p->in_roster, 0, sizeof p->in_roster);
    for (size_t i = 0; i < r->count; i++) {
        const struct sts_gmsg_roster_entry *e = &r->entries[i];
        CHECK(e->index < ROSTER_CAP);
        if (e->index >= ROSTER_CAP) continue;
        p->in_roster[e->index] = e->op == STS_ROSTER_ADD;
        if (e->index < NAMES_CAP) snprintf(p->roster_name[e->index], sizeof p->roster_name[0], "%s", e->name);
    }
}

static int on_send(void *ud, void *to, const uint8_t *msg, size_t len)
{
    struct peer *p = to;
    struct sts_gmsg m;
    (void)ud;
    CHECK(sts_gmsg_decode(msg, len, &m, entries) == 0);
    switch (m.type) {
    case STS_GMSG_KEY: p->nkey++; p->key = m.u.key; keys_sent++; break;
    case STS_GMSG_SLOTS: p->nslots++; p->slots = m.u.slots; keys_sent++; break;
    case STS_GMSG_ROSTER: apply_roster(p, &m.u.roster); break;
    case STS_GMSG_REFUSED: p->nrefused++; memcpy(p->reason, m.u.text.reason, sizeof p->reason); break;
    case STS_GMSG_REMOVED: p->nremoved++; memcpy(p->reason, m.u.text.reason, sizeof p->reason); break;
    case STS_GMSG_PONG: p->npong++; p->pong = m.u.token; break;
    case STS_GMSG_PING: p->nping++; p->ping = m.u.token; break;
    default: CHECK(!"a member's message sent by the key server");
    }
    return 0;
}

static void on_end(void *ud, void *to, const char *reason)
{
    struct peer *p = to;
    (void)ud;
    p->ended++;
    snprintf(p->end_reason, sizeof p->end_reason, "%s", reason);
}

static int on_save(void *ud)
{
    (void)ud;
    save_calls++;
    keys_at_save = keys_sent;
    if (save_fails) return -1;
    if (saved) free(saved);
    saved = NULL;
    CHECK(sts_gks_save(ks, &saved, &saved_len) == 0);
    return 0;
}

static void on_event(void *ud, enum sts_gks_event ev, void *peer, const char *group, const char *member,
                     const char *text)
{
    (void)ud; (void)peer; (void)group; (void)member;
    events[ev]++;
    snprintf(last_text, sizeof last_text, "%s", text);
}

static const struct sts_gks_ops ops = { on_send, on_end, on_save, on_event };

static struct sts_gks *new_core(double idle)
{
    struct sts_gks_config cfg;
    struct sts_gks *k;
    sts_gks_config_defaults(&cfg);
    cfg.idle = idle;
    k = sts_gks_new(&cfg, &ops, NULL);
    CHECK(k != NULL);
    return k;
}

static void reset(void)
{
    memset(peers, 0, sizeof peers);
    for (int i = 0; i < NPEERS; i++) {
        memset(peers[i].pub, 0xa5, STS_X25519_LEN);
        peers[i].pub[0] = (uint8_t)i;
        peers[i].pub[1] = (uint8_t)(i >> 8);
    }
    memset(events, 0, sizeof events);
    save_calls = save_fails = keys_sent = 0;
    free(saved);
    saved = NULL;
    if (ks) sts_gks_free(ks);
    ks = new_core(0);
}

/* An ACL line for peer i named m<i>. */
static size_t acl_line(char *out, size_t cap, int i, const char *groups, const char *perm)
{
    size_t n = 0;
    for (int k = 0; k < STS_X25519_LEN; k++) n += (size_t)snprintf(out + n, cap - n, "%02x", peers[i].pub[k]);
    n += (size_t)snprintf(out + n, cap - n, " m%d %s %s\n", i, groups, perm);
    return n;
}

/* Sets the ACL from "i groups perm;..." triples. */
static void set_acl_on(struct sts_gks *k, const char *spec)
{
    static char text[NPEERS * 200];
    char err[256];
    struct sts_acl acl;
    size_t n = 0;
    const char *s = spec;
    while (*s) {
        int i, used = 0;
        char groups[128], perm[4];
        CHECK(sscanf(s, "%d %127s %3[rw];%n", &i, groups, perm, &used) == 3 && used > 0);
        if (used == 0) return;
        n += acl_line(text + n, sizeof text - n, i, groups, perm);
        s += used;
    }
    CHECK(sts_acl_parse(&acl, text, n, "acl", err, sizeof err) == 0);
    sts_gks_set_acl(k, &acl, now);
    CHECK(acl.count == 0);
}

static void deliver(struct sts_gks *k, int i, const struct sts_gmsg *m)
{
    uint8_t buf[STS_GMSG_MAX];
    size_t len;
    CHECK(sts_gmsg_encode(m, buf, sizeof buf, &len) == 0);
    sts_gks_receive(k, &peers[i], peers[i].pub, buf, len, now);
}

static void join_full(struct sts_gks *k, int i, const char *group, uint32_t grant, uint32_t resume_epoch,
                      uint16_t resume_index, int sign)
{
    struct sts_gmsg m;
    memset(&m, 0, sizeof m);
    m.type = STS_GMSG_JOIN;
    snprintf(m.u.join.group, sizeof m.u.join.group, "%s", group);
    snprintf(m.u.join.client_id, sizeof m.u.join.client_id, "c%d", i);
    if (sign) {
        m.u.join.has_sign_pub = 1;
        m.u.join.sign_pub[0] = 0x04;
        m.u.join.sign_pub[1] = (uint8_t)i;
    }
    m.u.join.grant = grant;
    m.u.join.resume_epoch = resume_epoch;
    m.u.join.resume_index = resume_index;
    deliver(k, i, &m);
}

static void join(int i, const char *group)
{
    join_full(ks, i, group, 0, 0, 0, 0);
}

static void send_text(int i, uint8_t type, const char *group)
{
    struct sts_gmsg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    snprintf(m.u.text.group, sizeof m.u.text.group, "%s", group);
    if (type != STS_GMSG_LEAVE) snprintf(m.u.text.reason, sizeof m.u.text.reason, "x");
    deliver(ks, i, &m);
}

static void send_token(int i, uint8_t type, uint32_t token)
{
    struct sts_gmsg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    m.u.token = token;
    deliver(ks, i, &m);
}

static struct sts_gks_stats stats_of(const struct sts_gks *k)
{
    struct sts_gks_stats st;
    sts_gks_stats(k, &st);
    return st;
}

static uint32_t epoch_of(const struct sts_gks *k, const char *group)
{
    uint32_t e = 0;
    size_t n = 0;
    CHECK(sts_gks_group_info(k, group, &e, &n) == 0);
    return e;
}

static struct sts_gks_group_config group_config(enum sts_group_method method)
{
    struct sts_gks_config c;
    sts_gks_config_defaults(&c);
    c.defaults.method = method;
    return c.defaults;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_refusals(void)
{
    struct sts_gks_group_config sg = group_config(STS_GROUP_STATIC);
    struct sts_gks_stats st;
    uint8_t junk[3] = { 0x01, 0x7f, 0x00 };

    reset();
    set_acl_on(ks, "0 g1,g3 rw;1 sg rw;2 sg r;");
    join(9, "g1");
    CHECK(peers[9].nrefused == 1 && strcmp(peers[9].reason, "not in the access list") == 0);
    join(0, "g2");
    CHECK(peers[0].nrefused == 1 && strcmp(peers[0].reason, "not a member of group g2") == 0);
    join(0, "g1");
    CHECK(peers[0].nkey == 1 && peers[0].key.index == 1);
    join(0, "g3");
    CHECK(peers[0].nrefused == 2 && strcmp(peers[0].reason, "one group per session") == 0);
    sg.sign = 1;
    CHECK(sts_gks_define(ks, "sg", &sg, now) == 0);
    join(1, "sg");
    CHECK(peers[1].nrefused == 1 && strcmp(peers[1].reason, "a signed group needs a signing key") == 0);
    join_full(ks, 1, "sg", 0, 0, 0, 1);
    CHECK(peers[1].nkey == 1 && peers[1].key.flags == (STS_GFLAG_READ | STS_GFLAG_WRITE | STS_GFLAG_SIGNED));
    join(2, "sg"); /* a reader needs no signing key */
    CHECK(peers[2].nkey == 1 && peers[2].key.index == 0 && peers[2].key.flags == (STS_GFLAG_READ | STS_GFLAG_SIGNED));
    st = stats_of(ks);
    CHECK(st.refusals == 4 && events[STS_GKS_REFUSED] == 4 && st.joins == 3);
    CHECK(st.members == 3 && st.peers == 3 && st.groups == 2);

    /* rejected: changes nothing and sends nothing */
    sts_gks_receive(ks, &peers[0], peers[0].pub, junk, sizeof junk, now);
    send_text(0, STS_GMSG_REFUSED, "g1");
    send_text(0, STS_GMSG_LEAVE, "g3");
    send_token(0, STS_GMSG_PONG, 7);
    st = stats_of(ks);
    CHECK(st.rejected == 4 && events[STS_GKS_REJECTED] == 4 && st.members == 3);
    CHECK(peers[0].nkey == 1 && peers[0].nrefused == 2 && peers[0].ended == 0);
    /* a renewal resends the key, without a new index */
    join(0, "g1");
    CHECK(peers[0].nkey == 2 && peers[0].key.index == 1 && stats_of(ks).members == 3);
    CHECK(sts_gks_define(ks, "bad/name", &sg, now) == STS_ERR_INVALID);
    sg.depth = 33;
    CHECK(sts_gks_define(ks, "x", &sg, now) == STS_ERR_INVALID);
    CHECK(sts_gks_rotate(ks, "nosuch", now) == STS_ERR_INVALID);
}

static void test_static(void)
{
    reset();
    set_acl_on(ks, "0 g rw;1 g rw;2 g rw;3 g r;");
    for (int i = 0; i < 4; i++) join(i, "g");
    for (int i = 0; i < 4; i++) {
        CHECK(peers[i].nkey == 1 && peers[i].key.epoch == 1 && peers[i].key.method == STS_GROUP_STATIC);
        CHECK_MEM(peers[i].key.key, peers[0].key.key, STS_KEY_LEN);
        CHECK(peers[i].key.grace == 30 && peers[i].key.alg == STS_GROUP_CHACHAPOLY);
        /* everyone ends up knowing the three senders, and only them */
        CHECK(peers[i].in_roster[1] && peers[i].in_roster[2] && peers[i].in_roster[3] && !peers[i].in_roster[0]);
        CHECK(strcmp(peers[i].roster_name[2], "m1") == 0 && strcmp(peers[i].roster_name[3], "m2") == 0);
    }
    CHECK(peers[0].key.index == 1 && peers[1].key.index == 2 && peers[2].key.index == 3);
    CHECK(peers[3].key.index == 0 && peers[3].key.flags == STS_GFLAG_READ);
    CHECK(peers[0].key.flags == (STS_GFLAG_READ | STS_GFLAG_WRITE));
    CHECK(peers[0].nroster == 3); /* its own full roster, then adds for 2 and 3, none for the reader */
    send_text(1, STS_GMSG_LEAVE, "g");
    CHECK(peers[1].ended == 1 && strcmp(peers[1].end_reason, "left the group") == 0);
    CHECK(events[STS_GKS_LEFT] == 1 && strcmp(last_text, "left") == 0);
    CHECK(!peers[0].in_roster[2] && !peers[3].in_roster[2] && peers[0].in_roster[3]);
    CHECK(epoch_of(ks, "g") == 1 && peers[0].nkey == 1 && stats_of(ks).rekeys == 0);
    /* PING is answered with its token */
    send_token(2, STS_GMSG_PING, 0xdeadbeef);
    CHECK(peers[2].npong == 1 && peers[2].pong == 0xdeadbeef);
    /* a leaver coming back gets a new index */
    join(1, "g");
    CHECK(peers[1].key.index == 4);
}

static void test_update(void)
{
    uint8_t k4[STS_KEY_LEN];

    reset();
    CHECK(sts_gks_define(ks, "u", &(struct sts_gks_group_config){ .method = STS_GROUP_UPDATE,
          .alg = STS_GROUP_AESGCM, .grace = 10, .slot_seconds = 60, .depth = 20, .grant = 3600,
          .max_grant = 86400 }, now) == 0);
    set_acl_on(ks, "0 u rw;1 u rw;2 u r;");
    join(0, "u");
    CHECK(peers[0].key.epoch == 2 && peers[0].key.alg == STS_GROUP_AESGCM && peers[0].key.grace == 10);
    join(1, "u");
    CHECK(peers[0].key.epoch == 3 && peers[1].key.epoch == 3 && peers[0].nkey == 2);
    join(2, "u");
    for (int i = 0; i < 3; i++) {
        CHECK(peers[i].key.epoch == 4);
        CHECK_MEM(peers[i].key.key, peers[0].key.key, STS_KEY_LEN);
    }
    CHECK(peers[2].nkey == 1); /* one KEY for a joiner, not two */
    memcpy(k4, peers[0].key.key, STS_KEY_LEN);
    send_text(1, STS_GMSG_LEAVE, "u");
    CHECK(peers[0].key.epoch == 5 && peers[2].key.epoch == 5 && peers[1].key.epoch == 4 && peers[1].nkey == 2);
    CHECK(memcmp(peers[0].key.key, k4, STS_KEY_LEN) != 0);
    CHECK_MEM(peers[0].key.key, peers[2].key.key, STS_KEY_LEN);
    sts_gks_detach(ks, &peers[2], "session failed", now);
    CHECK(peers[0].key.epoch == 6 && peers[2].key.epoch == 5 && peers[2].ended == 0);
    CHECK(stats_of(ks).rekeys == 5 && epoch_of(ks, "u") == 6);
    /* a rekey that cannot be saved: the join is refused, nothing sent */
    save_fails = 1;
    join(1, "u");
    CHECK(peers[1].nrefused == 1 && strcmp(peers[1].reason, "the key server could not save its state") == 0);
    CHECK(peers[0].key.epoch == 6 && epoch_of(ks, "u") == 6 && stats_of(ks).members == 1);
    /* and a leave whose rekey cannot be saved is rekeyed by tick once it can */
    send_text(0, STS_GMSG_LEAVE, "u");
    CHECK(epoch_of(ks, "u") == 6);
    CHECK(sts_gks_tick(ks, now) == now + 1);
    save_fails = 0;
    sts_gks_tick(ks, now + 1);
    CHECK(epoch_of(ks, "u") == 7);
}

static void test_revocation(void)
{
    struct sts_gks_stats before;
    reset();
    set_acl_on(ks, "0 r rw;1 r rw;2 r rw;3 q rw;");
    for (int i = 0; i < 3; i++) join(i, "r");
    join(3, "q");
    before = stats_of(ks);
    /* 2 is gone, 1 lost its write permission: both removed, one rekey */
    set_acl_on(ks, "0 r rw;1 r r;3 q rw;");
    for (int i = 1; i <= 2; i++) {
        CHECK(peers[i].nremoved == 1 && strcmp(peers[i].reason, "removed by the access list") == 0);
        CHECK(peers[i].ended == 1 && strcmp(peers[i].end_reason, "removed by the access list") == 0);
    }
    CHECK(peers[0].nkey == 2 && peers[0].key.epoch == 2 && !peers[0].in_roster[2] && !peers[0].in_roster[3]);
    CHECK(peers[1].key.epoch == 1 && peers[2].key.epoch == 1);
    CHECK(peers[3].nkey == 1 && peers[3].ended == 0 && epoch_of(ks, "q") == 1);
    CHECK(stats_of(ks).rekeys == before.rekeys + 1 && stats_of(ks).removals == 2 && events[STS_GKS_REMOVED] == 2);
    CHECK(stats_of(ks).members == 2);
    /* a message from an ended session joins anew under the new rules */
    join(1, "r");
    CHECK(peers[1].key.index == 0 && peers[1].key.epoch == 2);
}

static void test_idle_will_ping(void)
{
    double t0 = now;
    reset();
    sts_gks_free(ks);
    ks = new_core(90);
    set_acl_on(ks, "0 g rw;1 g rw;2 g rw;");
    join(0, "g");
    join(1, "g");
    join(2, "g");
    now = t0 + 50;
    send_token(1, STS_GMSG_PING, 1);
    send_token(2, STS_GMSG_PING, 2);
    CHECK(sts_gks_tick(ks, t0 + 90) == t0 + 90); /* 0 is due at 90 and leaves just after */
    CHECK(sts_gks_tick(ks, t0 + 91) == t0 + 140);
    CHECK(peers[0].ended == 1 && strcmp(peers[0].end_reason, "idle") == 0 && strcmp(last_text, "idle") == 0);
    CHECK(peers[1].ended == 0 && stats_of(ks).members == 2 && !peers[1].in_roster[1]);
    now = t0 + 100;
    sts_gks_will(ks, "c1", now);
    sts_gks_will(ks, "c2", now);
    CHECK(peers[1].nping == 1 && peers[2].nping == 1 && peers[0].nping == 0);
    CHECK(sts_gks_tick(ks, now + 4) == now + 5);
    send_token(2, STS_GMSG_PONG, peers[2].ping ^ 1); /* the wrong token */
    CHECK(stats_of(ks).rejected == 1);
    send_token(2, STS_GMSG_PONG, peers[2].ping);
    sts_gks_tick(ks, now + 5);
    CHECK(peers[1].ended == 1 && strcmp(last_text, "did not answer") == 0);
    CHECK(peers[2].ended == 0 && stats_of(ks).members == 1 && stats_of(ks).leaves == 2);
    now = t0;
}

/* Slot arithmetic as the rules state it, computed here. */
static void expect_grant(const struct peer *p, uint64_t origin_ms, double at, uint32_t seconds, uint32_t maxslot)
{
    uint64_t ms = (uint64_t)(at * 1000), first = (ms - origin_ms) / 60000, last = (ms + seconds * 1000ull - origin_ms) / 60000;
    if (last > maxslot) last = maxslot;
    CHECK(p->slots.origin_ms == origin_ms && p->slots.now_ms == ms);
    CHECK(p->slots.first == first && p->slots.last == last);
}

/* Every granted leaf derives from the cover as from the root; the slots
 * just outside do not. */
static void expect_cover(const struct peer *p, const struct sts_slot_node *root)
{
    uint8_t a[STS_KEY_LEN], b[STS_KEY_LEN];
    const struct sts_gmsg_slots *s = &p->slots;
    for (uint32_t slot = s->first; slot <= s->last; slot++) {
        CHECK(sts_slot_leaf(s->nodes, s->count, s->depth, slot, a) == 0);
        CHECK(sts_slot_leaf(root, 1, s->depth, slot, b) == 0);
        CHECK_MEM(a, b, STS_KEY_LEN);
    }
    if (s->first > 0) CHECK(sts_slot_leaf(s->nodes, s->count, s->depth, s->first - 1, a) == STS_ERR_STATE);
    if (s->last < ((1u << s->depth) - 1)) CHECK(sts_slot_leaf(s->nodes, s->count, s->depth, s->last + 1, a) == STS_ERR_STATE);
}

static void test_slotted(void)
{
    struct sts_gks_group_config gc = group_config(STS_GROUP_SLOTTED);
    struct sts_slot_node root;
    uint64_t origin;
    double t0 = now;

    reset();
    gc.max_grant = 7200;
    CHECK(sts_gks_define(ks, "s", &gc, now) == 0);
    gc.depth = 4;
    gc.max_grant = 100000;
    CHECK(sts_gks_define(ks, "tiny", &gc, now) == 0);
    set_acl_on(ks, "0 s rw;1 s r;2 tiny rw;3 tiny rw;4 tiny r;");
    origin = (uint64_t)(now * 1000) / 60000 * 60000;
    join(0, "s");
    CHECK(peers[0].nslots == 1 && peers[0].slots.index == 1 && peers[0].slots.depth == 20);
    CHECK(peers[0].slots.slot_seconds == 60 && peers[0].slots.skew == 30 && peers[0].slots.alg == STS_GROUP_CHACHAPOLY);
    expect_grant(&peers[0], origin, now, 3600, (1u << 20) - 1);
    now = t0 + 7000;
    join_full(ks, 1, "s", 100000, 0, 0, 0); /* capped at max_grant */
    expect_grant(&peers[1], origin, now, 7200, (1u << 20) - 1);
    CHECK(peers[1].slots.index == 0 && peers[1].slots.flags == STS_GFLAG_READ);
    join_full(ks, 0, "s", 60, 0, 0, 0); /* renewal: the next interval, the same index */
    expect_grant(&peers[0], origin, now, 60, (1u << 20) - 1);
    CHECK(peers[0].nslots == 2 && peers[0].slots.index == 1);

    /* depth 4: 16 slots from the group's creation at t0; a grant of the
     * whole tree is its root */
    now = t0;
    join_full(ks, 2, "tiny", 16 * 60, 0, 0, 0);
    CHECK(peers[2].slots.first == 0 && peers[2].slots.last == 15 && peers[2].slots.count == 1);
    CHECK(peers[2].slots.nodes[0].depth == 0 && peers[2].slots.nodes[0].pos == 0);
    root = peers[2].slots.nodes[0];
    now = t0 + 130;
    join_full(ks, 3, "tiny", 300, 0, 0, 0);
    expect_grant(&peers[3], origin, now, 300, 15);
    expect_cover(&peers[3], &root);
    now = t0 + 600;
    join_full(ks, 4, "tiny", 3600, 0, 0, 0);
    expect_grant(&peers[4], origin, now, 3600, 15); /* capped at the tree's last slot */
    expect_cover(&peers[4], &root);
    /* rotation: a new root, every grant again from it */
    CHECK(sts_gks_rotate(ks, "tiny", now) == 0);
    CHECK(peers[2].nslots == 2 && peers[3].nslots == 2 && peers[4].nslots == 2);
    CHECK(memcmp(peers[2].slots.nodes[0].key, root.key, STS_KEY_LEN) != 0);
    root = peers[2].slots.nodes[0];
    expect_cover(&peers[3], &root);
    expect_cover(&peers[4], &root);
    now = t0 + 16 * 60 + 1;
    join(4, "tiny");
    CHECK(peers[4].nrefused == 1 && strcmp(peers[4].reason, "the slot tree is exhausted") == 0);
    now = t0;
}

/* Two STATIC members, two UPDATE members and a SLOTTED one, saved. */
static void populate(void)
{
    reset();
    CHECK(sts_gks_define(ks, "b", &(struct sts_gks_group_config){ .method = STS_GROUP_UPDATE,
          .alg = STS_GROUP_CHACHAPOLY, .grace = 30, .slot_seconds = 60, .depth = 20, .grant = 3600,
          .max_grant = 86400 }, now) == 0);
    {
        struct sts_gks_group_config gc = group_config(STS_GROUP_SLOTTED);
        CHECK(sts_gks_define(ks, "c", &gc, now) == 0);
    }
    set_acl_on(ks, "0 a rw;1 a rw;2 b rw;3 b rw;4 c rw;5 a rw;6 a r;");
    join(0, "a");
    join(1, "a");
    join_full(ks, 2, "b", 0, 0, 0, 1);
    join(3, "b");
    join(4, "c");
    join(6, "a");
    CHECK(sts_gks_rotate(ks, "a", now) == 0); /* a has a previous key too */
    CHECK(sts_gks_rotate(ks, "a", now) == 0);
    free(saved);
    saved = NULL;
    CHECK(sts_gks_save(ks, &saved, &saved_len) == 0);
}

static void test_save_load(void)
{
    struct sts_gks *k2;
    struct peer before[7];
    char err[128];
    uint32_t ea, eb;

    populate();
    ea = epoch_of(ks, "a");
    eb = epoch_of(ks, "b");
    memcpy(before, peers, sizeof before);
    k2 = new_core(0);
    set_acl_on(k2, "0 a rw;1 a rw;2 b rw;3 b rw;4 c rw;5 a rw;6 a r;");
    CHECK(sts_gks_load(k2, saved, saved_len, now, err, sizeof err) == 0);
    CHECK(epoch_of(k2, "a") == ea && epoch_of(k2, "b") == eb && ea == 3 && eb == 3);
    CHECK(stats_of(k2).members == 6 && stats_of(k2).peers == 0 && stats_of(k2).groups == 3);
    /* resumes (0 holding the previous epoch): the same key and index, no rekey */
    join_full(k2, 0, "a", 0, ea - 1, 1, 0);
    CHECK(peers[0].key.epoch == ea && peers[0].key.index == 1 && strcmp(last_text, "resumed") == 0);
    CHECK_MEM(peers[0].key.key, before[0].key.key, STS_KEY_LEN);
    CHECK(peers[0].in_roster[1] && peers[0].in_roster[2]);
    join_full(k2, 2, "b", 0, eb, 1, 1);
    CHECK(peers[2].key.epoch == eb && peers[2].key.index == 1 && strcmp(last_text, "resumed") == 0);
    CHECK_MEM(peers[2].key.key, before[2].key.key, STS_KEY_LEN);
    join_full(k2, 4, "c", 0, 0, 1, 0);
    CHECK(peers[4].slots.index == 1 && peers[4].slots.origin_ms == before[4].slots.origin_ms);
    CHECK_MEM(peers[4].slots.nodes[0].key, before[4].slots.nodes[0].key, STS_KEY_LEN);
    CHECK(stats_of(k2).rekeys == 0 && stats_of(k2).peers == 3);
    /* not a resume: the epoch is two behind, so a new membership (new index) */
    join_full(k2, 1, "a", 0, ea - 2, 2, 0);
    CHECK(peers[1].key.index == 257 && peers[1].key.epoch == ea);
    /* a new member: the index after the reservation, never one given before */
    join_full(k2, 5, "a", 0, 0, 0, 0);
    CHECK(peers[5].key.index == 258);
    /* those not back in time leave: 1's old index and 3 (with a rekey of b) */
    sts_gks_tick(k2, now + 121);
    CHECK(stats_of(k2).members == 5 && !peers[0].in_roster[2] && peers[0].in_roster[257]);
    CHECK(epoch_of(k2, "b") == eb + 1 && peers[2].key.epoch == eb + 1);
    CHECK(sts_gks_load(k2, saved, saved_len, now, err, sizeof err) == STS_ERR_PARSE);
    sts_gks_free(k2);
}

static void test_corruption(void)
{
    struct sts_gks *k2 = new_core(0);
    uint8_t *copy;
    char err[128];
    int ok = 1;

    populate();
    copy = malloc(saved_len + 1);
    for (size_t n = 0; n < saved_len; n++) {
        err[0] = '\0';
        ok &= sts_gks_load(k2, saved, n, now, err, sizeof err) == STS_ERR_PARSE;
        ok &= strstr(err, "truncated") != NULL;
    }
    CHECK(ok);
    for (size_t i = 0; i < saved_len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, saved, saved_len);
            copy[i] ^= (uint8_t)(1u << bit);
            ok &= sts_gks_load(k2, copy, saved_len, now, err, sizeof err) == STS_ERR_PARSE;
        }
    }
    CHECK(ok);
    CHECK(stats_of(k2).groups == 0 && stats_of(k2).members == 0);
    memcpy(copy, saved, saved_len);
    copy[saved_len - 1] ^= 1;
    sts_gks_load(k2, copy, saved_len, now, err, sizeof err);
    CHECK(strcmp(err, "state file is corrupt: checksum mismatch") == 0);
    copy[saved_len - 1] ^= 1;
    copy[7] = 1;
    sts_gks_load(k2, copy, saved_len, now, err, sizeof err);
    CHECK(strcmp(err, "state file is corrupt: unknown version 1.1") == 0);
    copy[0] = 'X';
    sts_gks_load(k2, copy, saved_len, now, err, sizeof err);
    CHECK(strcmp(err, "not a key server state file") == 0);
    memcpy(copy, saved, saved_len);
    copy[saved_len] = 0;
    sts_gks_load(k2, copy, saved_len + 1, now, err, sizeof err);
    CHECK(strcmp(err, "state file is corrupt: bytes after its end") == 0);
    /* a body that is well hashed but wrong: the group count says one more */
    copy[15]++;
    CHECK(sts_hash(STS_SHA256, copy, saved_len - STS_SHA256_LEN, copy + saved_len - STS_SHA256_LEN) == 0);
    CHECK(sts_gks_load(k2, copy, saved_len, now, err, sizeof err) == STS_ERR_PARSE);
    CHECK(strcmp(err, "state file is corrupt: truncated") == 0);
    /* still usable: the real state loads */
    CHECK(sts_gks_load(k2, saved, saved_len, now, err, sizeof err) == 0);
    CHECK(stats_of(k2).groups == 3 && stats_of(k2).members == 6);
    free(copy);
    sts_gks_free(k2);
}

static void test_reservation(void)
{
    static char spec[NPEERS * 16];
    size_t n = 0, mem0, mem1;

    reset();
    for (int i = 0; i < 260; i++) n += (size_t)snprintf(spec + n, sizeof spec - n, "%d big rw;", i);
    set_acl_on(ks, spec);
    mem0 = sts_gks_memory(ks);
    join(0, "big");
    CHECK(save_calls == 1 && keys_at_save == 0 && peers[0].key.index == 1);
    for (int i = 1; i < 256; i++) join(i, "big");
    CHECK(save_calls == 1 && peers[255].key.index == 256);
    save_fails = 1;
    join(256, "big");
    CHECK(save_calls == 2 && peers[256].nrefused == 1 && peers[256].nkey == 0);
    CHECK(strcmp(peers[256].reason, "the key server could not save its state") == 0);
    save_fails = 0;
    join(256, "big");
    CHECK(save_calls == 3 && keys_at_save == 256 && peers[256].key.index == 257);
    mem1 = sts_gks_memory(ks);
    CHECK(mem1 > mem0 && (mem1 - mem0) / 257 < 1024);
    /* the state saved at the reservation already holds mark 513 */
    {
        struct sts_gks *k2 = new_core(0);
        char err[128];
        CHECK(sts_gks_load(k2, saved, saved_len, now, err, sizeof err) == 0);
        set_acl_on(k2, "257 big rw;");
        join_full(k2, 257, "big", 0, 0, 0, 0);
        sts_gks_free(k2);
    }
    CHECK(peers[257].key.index == 513);
}

static void test_define_rekeys(void)
{
    struct sts_gks_group_config gc = group_config(STS_GROUP_STATIC);
    reset();
    set_acl_on(ks, "0 d rw;");
    join(0, "d");
    gc.grace = 99; /* a setting that does not touch the keys */
    CHECK(sts_gks_define(ks, "d", &gc, now) == 0);
    CHECK(peers[0].nkey == 1);
    gc.alg = STS_GROUP_AESGCM;
    CHECK(sts_gks_define(ks, "d", &gc, now) == 0);
    CHECK(peers[0].nkey == 2 && peers[0].key.epoch == 2 && peers[0].key.alg == STS_GROUP_AESGCM);
    gc.method = STS_GROUP_SLOTTED;
    CHECK(sts_gks_define(ks, "d", &gc, now) == 0);
    CHECK(peers[0].nslots == 1 && peers[0].slots.first == 0 && peers[0].slots.index == 1);
}

int main(void)
{
    test_refusals();
    test_static();
    test_update();
    test_revocation();
    test_idle_will_ping();
    test_slotted();
    test_save_load();
    test_corruption();
    test_reservation();
    test_define_rekeys();
    sts_gks_free(ks);
    free(saved);
    return unit_done();
}
