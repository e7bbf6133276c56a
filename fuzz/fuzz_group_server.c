/* The key server core under a sequence of events from four fake peers with
 * a fixed access list: messages (JOIN, LEAVE, PING, PONG built from input
 * bytes, or raw bytes), detaches, ticks, wills, rotations, an ACL change
 * and a restart through the state file. Each peer follows what the core
 * sends it (KEY, SLOTS, REMOVED, an ended session). After every step:
 * no two live members of a group share a sender index, and every live
 * member of the UPDATE group holds its current epoch.
 *
 * Input: records of one byte `op` (low 2 bits the peer, the rest the
 * action) and the bytes that action reads; reads past the end give zeros. */
#include "proto/acl.h"
#include "proto/group_msg.h"
#include "proto/group_server.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NPEERS 4
static const char *const groups[4] = { "s", "u", "l", "g" }; /* STATIC, UPDATE, SLOTTED, signed */

struct peer {
    uint8_t pub[STS_X25519_LEN];
    int live;
    char group[STS_GROUP_NAME_MAX + 1];
    uint16_t index;
    uint32_t epoch, ping;
};

static struct peer peers[NPEERS];
static struct sts_gks *ks;
static uint8_t *state;
static size_t state_len;
static struct sts_gmsg_roster_entry entries[STS_GMSG_ROSTER_MAX];

struct input {
    const uint8_t *p;
    size_t len, off;
};

static uint8_t next_byte(struct input *in)
{
    return in->off < in->len ? in->p[in->off++] : 0;
}

static int on_send(void *ud, void *to, const uint8_t *msg, size_t len)
{
    struct peer *p = to;
    struct sts_gmsg m;
    (void)ud;
    if (sts_gmsg_decode(msg, len, &m, entries) != 0) abort(); /* the core sends only valid messages */
    switch (m.type) {
    case STS_GMSG_KEY:
        p->live = 1;
        memcpy(p->group, m.u.key.group, sizeof p->group);
        p->index = m.u.key.index;
        p->epoch = m.u.key.epoch;
        break;
    case STS_GMSG_SLOTS:
        p->live = 1;
        memcpy(p->group, m.u.slots.group, sizeof p->group);
        p->index = m.u.slots.index;
        break;
    case STS_GMSG_REMOVED: p->live = 0; break;
    case STS_GMSG_PING: p->ping = m.u.token; break;
    default: break;
    }
    return 0;
}

static void on_end(void *ud, void *to, const char *reason)
{
    struct peer *p = to;
    (void)ud; (void)reason;
    p->live = 0;
}

static int on_save(void *ud)
{
    (void)ud;
    free(state);
    state = NULL;
    if (sts_gks_save(ks, &state, &state_len) != 0) abort();
    return 0;
}

static const struct sts_gks_ops ops = { on_send, on_end, on_save, NULL };

static void set_acl(int without_last, double now)
{
    static const char *const lines[NPEERS] = { "s,u,l,g rw", "s,u,l r", "u,l,g w", "s,u rw" };
    char text[1024], err[256];
    size_t n = 0;
    struct sts_acl acl;

    for (int i = 0; i < NPEERS - without_last; i++) {
        for (int k = 0; k < STS_X25519_LEN; k++) n += (size_t)snprintf(text + n, sizeof text - n, "%02x", peers[i].pub[k]);
        n += (size_t)snprintf(text + n, sizeof text - n, " p%d %s\n", i, lines[i]);
    }
    if (sts_acl_parse(&acl, text, n, "acl", err, sizeof err) != 0) abort();
    sts_gks_set_acl(ks, &acl, now);
}

static struct sts_gks *new_core(double now)
{
    struct sts_gks_config cfg;
    struct sts_gks_group_config gc;
    sts_gks_config_defaults(&cfg);
    cfg.idle = 60;
    cfg.resume = 30;
    ks = sts_gks_new(&cfg, &ops, NULL);
    if (!ks) abort();
    gc = cfg.defaults;
    gc.method = STS_GROUP_UPDATE;
    if (sts_gks_define(ks, "u", &gc, now) != 0) abort();
    gc.method = STS_GROUP_SLOTTED;
    gc.depth = 6;
    gc.max_grant = 600;
    if (sts_gks_define(ks, "l", &gc, now) != 0) abort();
    gc = cfg.defaults;
    gc.sign = 1;
    if (sts_gks_define(ks, "g", &gc, now) != 0) abort();
    return ks;
}

static void check_invariants(void)
{
    uint32_t epoch = 0;
    size_t members;
    if (sts_gks_group_info(ks, "u", &epoch, &members) != 0) abort();
    for (int i = 0; i < NPEERS; i++) {
        const struct peer *p = &peers[i];
        if (!p->live) continue;
        if (strcmp(p->group, "u") == 0 && p->epoch != epoch) abort();
        for (int j = 0; j < i; j++)
            if (peers[j].live && p->index != 0 && peers[j].index == p->index && strcmp(peers[j].group, p->group) == 0)
                abort();
    }
}

static void deliver(struct peer *p, const struct sts_gmsg *m, double now)
{
    uint8_t buf[STS_GMSG_MAX];
    size_t len;
    if (sts_gmsg_encode(m, buf, sizeof buf, &len) != 0) abort();
    sts_gks_receive(ks, p, p->pub, buf, len, now);
}

/* A message from p, built from the input or taken raw from it. */
static void message(struct input *in, struct peer *p, double now)
{
    uint8_t kind = next_byte(in), a = next_byte(in);
    struct sts_gmsg m;

    memset(&m, 0, sizeof m);
    switch (kind % 5) {
    case 0:
        m.type = STS_GMSG_JOIN;
        snprintf(m.u.join.group, sizeof m.u.join.group, "%s", groups[a & 3]);
        snprintf(m.u.join.client_id, sizeof m.u.join.client_id, "c%d", (int)(p - peers));
        m.u.join.has_sign_pub = (a >> 2) & 1;
        m.u.join.sign_pub[0] = 0x04;
        m.u.join.grant = (uint32_t)next_byte(in) * 60;
        m.u.join.resume_index = (uint16_t)((a >> 3) & 3);
        m.u.join.resume_epoch = p->epoch - ((a >> 5) & 1);
        break;
    case 1:
        m.type = STS_GMSG_LEAVE;
        snprintf(m.u.text.group, sizeof m.u.text.group, "%s", groups[a & 3]);
        break;
    case 2:
        m.type = STS_GMSG_PING;
        m.u.token = a;
        break;
    case 3:
        m.type = STS_GMSG_PONG;
        m.u.token = p->ping ^ (a & 1);
        break;
    default: {
        uint8_t raw[256];
        for (uint8_t k = 0; k < a; k++) raw[k] = next_byte(in);
        sts_gks_receive(ks, p, p->pub, raw, a, now);
        return;
    }
    }
    deliver(p, &m, now);
}

/* The key server restarts from its last saved state: every session is gone. */
static void restart(double now)
{
    char err[256];
    uint8_t *copy = NULL;
    size_t len = state_len;

    if (state) {
        copy = malloc(len);
        if (!copy) abort();
        memcpy(copy, state, len);
    }
    sts_gks_free(ks);
    new_core(now);
    set_acl(0, now);
    for (int i = 0; i < NPEERS; i++) peers[i].live = 0;
    if (copy && sts_gks_load(ks, copy, len, now, err, sizeof err) != 0) abort();
    free(copy);
}

static void step(struct input *in, double *now)
{
    uint8_t op = next_byte(in);
    struct peer *p = &peers[op & 3];

    switch ((op >> 2) % 8) {
    case 0: case 1: case 2: message(in, p, *now); break;
    case 3:
        sts_gks_detach(ks, p, "gone", *now);
        p->live = 0;
        break;
    case 4: *now += next_byte(in); sts_gks_tick(ks, *now); break;
    case 5: sts_gks_will(ks, (op & 0x20) ? "c1" : "c0", *now); break;
    case 6: sts_gks_rotate(ks, groups[next_byte(in) & 3], *now); break;
    default:
        if (op & 0x80) restart(*now);
        else set_acl((op >> 6) & 1, *now);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = { data, size, 0 };
    double now = 1700000000.25;

    memset(peers, 0, sizeof peers);
    for (int i = 0; i < NPEERS; i++) memset(peers[i].pub, 0x11 * (i + 1), STS_X25519_LEN);
    new_core(now);
    set_acl(0, now);
    while (in.off < in.len) {
        step(&in, &now);
        check_invariants();
    }
    sts_gks_free(ks);
    ks = NULL;
    free(state);
    state = NULL;
    return 0;
}
