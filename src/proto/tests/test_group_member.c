/* The member core against the real key server core, wired together in
 * memory: joins, keys, rosters, frames, rekeys, slots, and what a member
 * must refuse. */
#include "crypto/x25519.h"
#include "proto/group_member.h"
#include "proto/group_server.h"
#include "util/error.h"
#include "util/hex.h"
#include "util/unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPEERS 4
static const char *const names[NPEERS] = { "alice", "bob", "carol", "dave" };
static const char *const topic = "t/data/g";

struct peer {
    uint8_t pub[STS_X25519_LEN];
    struct sts_gmember m;
    int ended;
};

static struct peer peers[NPEERS];
static struct sts_gks *ks;
static double now = 1.7e9;

static int op_send(void *ud, void *peer, const uint8_t *msg, size_t len)
{
    struct peer *p = peer;
    struct sts_gmember_change ch;
    (void)ud;
    int rc = sts_gmember_control(&p->m, msg, len, now, &ch);
    if (rc != 0) fprintf(stderr, "%s: control message refused: %s\n", names[p - peers], sts_strerror(rc));
    if (ch.replylen) sts_gks_receive(ks, p, p->pub, ch.reply, ch.replylen, now);
    return 0;
}

static void op_end(void *ud, void *peer, const char *reason)
{
    (void)ud, (void)reason;
    ((struct peer *)peer)->ended = 1;
}

static void op_event(void *ud, enum sts_gks_event ev, void *peer, const char *group, const char *member,
                     const char *text)
{
    (void)ud, (void)ev, (void)peer, (void)group, (void)member, (void)text;
}

static const struct sts_gks_ops ops = { op_send, op_end, NULL, op_event };

static void new_server(enum sts_group_method method, int sign)
{
    struct sts_gks_config cfg;
    sts_gks_config_defaults(&cfg);
    cfg.defaults.method = method;
    cfg.defaults.sign = sign;
    cfg.defaults.slot_seconds = 10;
    cfg.defaults.skew = 5;
    ks = sts_gks_new(&cfg, &ops, NULL);
}

/* The key server's ACL: the first n peers, each "rw" or, where perms says
 * 'r', read-only. */
static void give_acl(size_t n, const char *perms)
{
    char acl_text[4096] = "", err[256], hex[2 * STS_X25519_LEN + 1], line[256];
    for (size_t i = 0; i < n; i++) {
        sts_hex_encode(hex, peers[i].pub, sizeof peers[i].pub);
        snprintf(line, sizeof line, "%s %s g %s\n", hex, names[i], perms && perms[i] == 'r' ? "r" : "rw");
        strcat(acl_text, line);
    }
    struct sts_acl acl;
    CHECK(sts_acl_parse(&acl, acl_text, strlen(acl_text), "acl", err, sizeof err) == 0);
    sts_gks_set_acl(ks, &acl, now);
    sts_acl_free(&acl);
}

static void start(enum sts_group_method method, int sign, const char *perms)
{
    new_server(method, sign);
    for (int i = 0; i < NPEERS; i++) {
        uint8_t priv[STS_X25519_LEN];
        memset(priv, i + 1, sizeof priv);
        sts_x25519_public(peers[i].pub, priv);
        peers[i].ended = 0;
        CHECK(sts_gmember_init(&peers[i].m, "g", names[i], 0) == 0);
    }
    give_acl(NPEERS, perms);
}

static void stop(void)
{
    for (int i = 0; i < NPEERS; i++) sts_gmember_free(&peers[i].m);
    sts_gks_free(ks);
}

static void join(int i)
{
    uint8_t msg[STS_GMSG_MAX];
    size_t len;
    CHECK(sts_gmember_join(&peers[i].m, msg, sizeof msg, &len) == 0);
    sts_gks_receive(ks, &peers[i], peers[i].pub, msg, len, now);
}

/* Seals text as member i; returns the frame's length. */
static size_t seal(int i, const char *text, uint8_t *frame)
{
    size_t len = 0;
    int rc = sts_gmember_seal(&peers[i].m, topic, (const uint8_t *)text, strlen(text), now, frame, 512, &len);
    CHECK(rc == 0);
    return rc == 0 ? len : 0;
}

/* What member i makes of a frame: the reason, and the plaintext in out. */
static enum sts_reason open_as(int i, const uint8_t *frame, size_t len, char *out, const char **sender)
{
    uint8_t pt[512];
    size_t ptlen = 0;
    struct sts_gmember_info info;
    enum sts_reason why = sts_gmember_open(&peers[i].m, topic, frame, len, now, pt, &ptlen, &info);
    if (why == STS_REASON_NONE) {
        memcpy(out, pt, ptlen);
        out[ptlen] = 0;
        if (sender) *sender = info.sender;
    }
    return why;
}

static void test_static_group(void)
{
    uint8_t f[512];
    char text[512];
    const char *sender = NULL;
    start(STS_GROUP_STATIC, 0, NULL);
    for (int i = 0; i < 3; i++) join(i);
    for (int i = 0; i < 3; i++) CHECK(peers[i].m.state == STS_GMEMBER_JOINED);
    CHECK(peers[0].m.index != peers[1].m.index && peers[1].m.index != peers[2].m.index);
    size_t len = seal(0, "hello", f);
    CHECK(open_as(1, f, len, text, &sender) == STS_REASON_NONE);
    CHECK(strcmp(text, "hello") == 0 && sender && strcmp(sender, "alice") == 0);
    CHECK(open_as(2, f, len, text, NULL) == STS_REASON_NONE);
    CHECK(open_as(1, f, len, text, NULL) == STS_REASON_REPLAY);
    CHECK(sts_gmember_is_own(&peers[0].m, f, len));
    CHECK(!sts_gmember_is_own(&peers[1].m, f, len));
    /* dave never joined: no key */
    CHECK(open_as(3, f, len, text, NULL) == STS_REASON_STATE);
    /* The limit of unsigned groups: bob can claim to be alice. */
    uint16_t own = peers[1].m.index;
    peers[1].m.index = peers[0].m.index;
    peers[1].m.counter = 1000;
    len = seal(1, "I am alice", f);
    peers[1].m.index = own;
    CHECK(open_as(2, f, len, text, &sender) == STS_REASON_NONE);
    CHECK(sender && strcmp(sender, "alice") == 0);
    stop();
}

static void test_signed_group(void)
{
    uint8_t f[512];
    char text[512];
    const char *sender = NULL;
    start(STS_GROUP_STATIC, 1, NULL);
    for (int i = 0; i < 3; i++) join(i);
    CHECK(peers[0].m.flags & STS_GFLAG_SIGNED);
    size_t len = seal(0, "signed", f);
    CHECK(len == strlen("signed") + STS_GROUP_OVERHEAD + STS_GROUP_SIG_LEN);
    CHECK(open_as(2, f, len, text, &sender) == STS_REASON_NONE);
    /* bob forges a frame as alice: right key, his own signature */
    uint16_t own = peers[1].m.index;
    peers[1].m.index = peers[0].m.index;
    peers[1].m.counter = 1000;
    len = seal(1, "I am alice", f);
    peers[1].m.index = own;
    CHECK(open_as(2, f, len, text, NULL) == STS_REASON_AUTH);
    /* ... and the forged counter was not marked: alice's real 1000 still opens */
    peers[0].m.counter = 1000;
    len = seal(0, "really alice", f);
    CHECK(open_as(2, f, len, text, &sender) == STS_REASON_NONE);
    /* an unsigned frame in a signed group */
    f[1] = STS_GROUP_FRAME_DATA;
    CHECK(open_as(2, f, len - STS_GROUP_SIG_LEN, text, NULL) == STS_REASON_SUITE);
    stop();
}

static void test_update_group(void)
{
    uint8_t f[512], old[512];
    char text[512];
    start(STS_GROUP_UPDATE, 0, NULL);
    join(0);
    join(1);
    uint32_t e = peers[0].m.epoch;
    CHECK(peers[1].m.epoch == e && e >= 2);
    size_t oldlen = seal(0, "before carol", old);
    join(2);
    CHECK(peers[0].m.epoch == e + 1 && peers[1].m.epoch == e + 1 && peers[2].m.epoch == e + 1);
    /* backward secrecy: carol cannot open what came before */
    CHECK(open_as(2, old, oldlen, text, NULL) == STS_REASON_STALE_EPOCH);
    /* but bob still opens it during the grace period */
    CHECK(open_as(1, old, oldlen, text, NULL) == STS_REASON_NONE);
    /* carol's session ends: a new epoch for alice and bob only */
    sts_gks_detach(ks, &peers[2], "gone", now);
    CHECK(peers[0].m.epoch == e + 2 && peers[1].m.epoch == e + 2 && peers[2].m.epoch == e + 1);
    size_t len = seal(0, "after carol", f);
    CHECK(open_as(1, f, len, text, NULL) == STS_REASON_NONE);
    CHECK(open_as(2, f, len, text, NULL) == STS_REASON_STALE_EPOCH);
    /* after the grace period the old epoch is gone for bob too */
    now += 3600;
    CHECK(open_as(1, old, oldlen, text, NULL) == STS_REASON_STALE_EPOCH);
    stop();
}

static void test_read_only_and_revocation(void)
{
    uint8_t f[512];
    char text[512];
    start(STS_GROUP_STATIC, 0, "wrrw");
    for (int i = 0; i < 3; i++) join(i);
    size_t len;
    CHECK(sts_gmember_seal(&peers[1].m, topic, (const uint8_t *)"x", 1, now, f, sizeof f, &len) == STS_ERR_STATE);
    uint32_t e = peers[0].m.epoch;
    /* carol leaves the ACL: removed, her session ended, the group rekeyed */
    give_acl(2, "wr");
    CHECK(peers[2].m.state == STS_GMEMBER_REMOVED && peers[2].ended);
    CHECK(peers[0].m.epoch == e + 1 && peers[1].m.epoch == e + 1);
    len = seal(0, "without carol", f);
    CHECK(open_as(1, f, len, text, NULL) == STS_REASON_NONE);
    CHECK(open_as(2, f, len, text, NULL) == STS_REASON_STATE);
    stop();
}

static void test_slotted_group(void)
{
    uint8_t f[512];
    char text[512];
    start(STS_GROUP_SLOTTED, 0, NULL);
    peers[0].m.grant = 25;
    join(0);
    join(1);
    CHECK(peers[0].m.state == STS_GMEMBER_JOINED && peers[0].m.ncover >= 1);
    CHECK(peers[0].m.last - peers[0].m.first <= 3);
    size_t len = seal(0, "slot", f);
    CHECK(open_as(1, f, len, text, NULL) == STS_REASON_NONE);
    /* a frame moved to a slot far away is refused, before decryption */
    f[2] ^= 0x40;
    CHECK(open_as(1, f, len, text, NULL) == STS_REASON_STALE_EPOCH);
    /* alice's grant ends: she can no longer send, with no message needed */
    now += 60;
    CHECK(sts_gmember_seal(&peers[0].m, topic, (const uint8_t *)"x", 1, now, f, sizeof f, &len) == STS_ERR_STATE);
    /* bob (default grant, an hour) goes on */
    len = seal(1, "still here", f);
    CHECK(len > 0);
    CHECK(sts_gmember_renew_at(&peers[1].m) > now);
    stop();
}

/* A slotted group whose ACL drops a member gets a new tree: the others must
 * move to it at once, so that what they seal in the current slot is out of
 * the revoked member's reach. */
static void test_slotted_revocation(void)
{
    uint8_t f[512];
    char text[512];
    start(STS_GROUP_SLOTTED, 0, NULL);
    for (int i = 0; i < 3; i++) join(i);
    size_t len = seal(0, "before the revocation", f); /* alice derives the current slot's leaf */
    CHECK(open_as(1, f, len, text, NULL) == STS_REASON_NONE);
    struct sts_gmember old = peers[2].m; /* what carol holds, kept by a carol that will not forget */
    old.roster = NULL;
    sts_group_keyring_init(&old.keys);
    give_acl(2, NULL);
    len = seal(0, "after the revocation", f);
    CHECK(open_as(1, f, len, text, NULL) == STS_REASON_NONE);
    /* carol's old cover (with bob's roster entry) opens nothing sealed now */
    uint8_t leaf[STS_KEY_LEN], pt[512];
    uint32_t slot = (uint32_t)f[2] << 24 | (uint32_t)f[3] << 16 | (uint32_t)f[4] << 8 | f[5];
    CHECK(sts_slot_leaf(old.cover, old.ncover, old.depth, slot, leaf) == 0);
    struct sts_group_header h;
    const uint8_t *body, *sig;
    size_t bodylen;
    CHECK(sts_group_frame_parse(f, len, &h, &body, &bodylen, &sig) == STS_REASON_NONE);
    CHECK(sts_group_frame_open(STS_AEAD_CHACHAPOLY, leaf, f, topic, body, bodylen, pt) == STS_ERR_AUTH);
    stop();
}

/* The key server restarts without its state: every group starts again at
 * epoch 1 and indexes from 1. A member it takes back as new must never seal
 * under a key it held before with its new index: another member may have
 * used that (key, index, counter). */
static void test_restart_without_state(void)
{
    uint8_t before[512], after[512];
    start(STS_GROUP_UPDATE, 0, NULL);
    for (int i = 0; i < 3; i++) join(i);
    uint32_t old_epoch = peers[0].m.epoch;
    CHECK(old_epoch >= 3);
    size_t blen = seal(0, "before", before);
    sts_gks_free(ks);
    new_server(STS_GROUP_UPDATE, 0);
    give_acl(3, NULL);
    join(2); /* carol first: she gets alice's old index, 1 */
    CHECK(peers[2].m.index == peers[0].m.index);
    CHECK(peers[2].m.epoch < old_epoch); /* a lower epoch, and it is hers now */
    size_t alen = seal(2, "after", after);
    /* Not the same header as alice's frame: another key (epoch), or at
     * least another (index, counter) */
    CHECK(blen > 0 && alen > 0 && memcmp(before, after, STS_GROUP_HEADER_LEN) != 0);
    CHECK(((uint32_t)after[2] << 24 | (uint32_t)after[3] << 16 | (uint32_t)after[4] << 8 | after[5]) == peers[2].m.epoch);
    stop();
}

int main(void)
{
    test_static_group();
    test_signed_group();
    test_update_group();
    test_read_only_and_revocation();
    test_slotted_group();
    test_restart_without_state();
    test_slotted_revocation();
    return unit_done();
}
