/* The slot key tree: children against HMAC-SHA256 computed here, derivation
 * along paths, covers of every interval of small trees against a brute-force
 * minimum, depth 32 edges, and leaves outside a grant. */
#include "crypto/hash.h"
#include "proto/slot_tree.h"
#include "util/error.h"
#include "util/unit.h"

#include <string.h>

static const uint8_t root[STS_KEY_LEN] = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
                                           0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
                                           0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
                                           0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf };

/* HMAC-SHA256(k, "sts-lua slot tree" || bit), spelled out byte by byte. */
static void reference_child(const uint8_t k[32], int bit, uint8_t out[32])
{
    const uint8_t msg[18] = { 's', 't', 's', '-', 'l', 'u', 'a', ' ', 's',
                              'l', 'o', 't', ' ', 't', 'r', 'e', 'e', (uint8_t)bit };
    CHECK(sts_hmac(STS_SHA256, k, 32, msg, sizeof msg, out) == 0);
}

/* Node (depth, pos) from the root by the reference, one level at a time. */
static void reference_node(unsigned depth, uint64_t pos, uint8_t out[32])
{
    uint8_t k[32];
    memcpy(k, root, 32);
    for (unsigned d = 0; d < depth; d++) {
        uint8_t next[32];
        reference_child(k, (int)(pos >> (depth - d - 1) & 1), next);
        memcpy(k, next, 32);
    }
    memcpy(out, k, 32);
}

static void test_child(void)
{
    uint8_t got[32], want[32], k[32];

    for (int bit = 0; bit <= 1; bit++) {
        reference_child(root, bit, want);
        CHECK(sts_slot_child(root, bit, got) == 0);
        CHECK_MEM(got, want, 32);
        memcpy(k, root, 32);
        CHECK(sts_slot_child(k, bit, k) == 0); /* in place */
        CHECK_MEM(k, want, 32);
    }
    reference_child(root, 0, k);
    CHECK(memcmp(k, want, 32) != 0); /* left and right differ */
    CHECK(sts_slot_child(root, 2, got) == STS_ERR_INVALID);
    CHECK(sts_slot_child(root, -1, got) == STS_ERR_INVALID);
}

static void test_derive(void)
{
    struct sts_slot_node top = { 0, 0, { 0 } }, mid = { 3, 5, { 0 } };
    uint8_t got[32], want[32];

    memcpy(top.key, root, 32);
    CHECK(sts_slot_derive(&top, 0, 0, got) == 0); /* a node is its own ancestor */
    CHECK_MEM(got, root, 32);
    CHECK(sts_slot_derive(&top, 6, 43, got) == 0);
    reference_node(6, 43, want);
    CHECK_MEM(got, want, 32);

    /* From an inner node: (3, 5) = 101b is an ancestor of (6, 101xxxb). */
    reference_node(3, 5, mid.key);
    for (uint32_t pos = 40; pos < 48; pos++) {
        CHECK(sts_slot_derive(&mid, 6, pos, got) == 0);
        reference_node(6, pos, want);
        CHECK_MEM(got, want, 32);
    }
    CHECK(sts_slot_derive(&mid, 6, 39, got) == STS_ERR_INVALID);
    CHECK(sts_slot_derive(&mid, 6, 48, got) == STS_ERR_INVALID);
    CHECK(sts_slot_derive(&mid, 2, 2, got) == STS_ERR_INVALID); /* above it */
    CHECK(sts_slot_derive(&mid, 3, 4, got) == STS_ERR_INVALID); /* beside it */
    CHECK(sts_slot_derive(&top, 3, 8, got) == STS_ERR_INVALID); /* no such position */
    CHECK(sts_slot_derive(&top, 33, 0, got) == STS_ERR_INVALID);
    mid.pos = 8; /* not a node of depth 3 */
    CHECK(sts_slot_derive(&mid, 6, 64 + 0, got) == STS_ERR_INVALID);

    /* Depth 32: the last leaf, from the root. */
    CHECK(sts_slot_derive(&top, 32, UINT32_MAX, got) == 0);
    reference_node(32, UINT32_MAX, want);
    CHECK_MEM(got, want, 32);
}

/* The fewest aligned subtrees whose union is exactly [a, b], for every
 * interval of a tree of depth <= 6, by search: one node when [a, b] is one,
 * else the best split into two intervals. */
static unsigned best[64][64];

static void brute_minima(unsigned depth)
{
    for (unsigned len = 1; len <= (1u << depth); len++)
        for (unsigned a = 0; a + len <= (1u << depth); a++) {
            unsigned b = a + len - 1, m = len;
            if ((len & (len - 1)) == 0 && a % len == 0)
                m = 1;
            for (unsigned s = a; s < b; s++)
                if (best[a][s] + best[s + 1][b] < m)
                    m = best[a][s] + best[s + 1][b];
            best[a][b] = m;
        }
}

/* The reference key of every leaf of a tree of depth <= 6. */
static uint8_t leaves[64][32];

static void reference_leaves(unsigned depth)
{
    for (unsigned leaf = 0; leaf < (1u << depth); leaf++)
        reference_node(depth, leaf, leaves[leaf]);
}

/* A cover of [first, last] is left to right, each node a real node with
 * its key, every granted leaf derivable from exactly one node with the
 * right key, none outside, and as small as the brute-force minimum. */
static int cover_correct(unsigned depth, unsigned first, unsigned last)
{
    struct sts_slot_node nodes[STS_SLOT_COVER_MAX];
    size_t count;
    uint8_t got[32], want[32];
    int ok = sts_slot_cover(root, (uint8_t)depth, first, last, nodes, &count) == 0;

    ok &= count >= 1 && count <= 2 * depth && count == best[first][last];
    for (size_t i = 0; ok && i < count; i++) {
        ok &= nodes[i].depth <= depth && nodes[i].pos < (1u << nodes[i].depth);
        reference_node(nodes[i].depth, nodes[i].pos, want);
        ok &= memcmp(nodes[i].key, want, 32) == 0;
        unsigned lo = nodes[i].pos << (depth - nodes[i].depth);
        ok &= i == 0 || lo > (nodes[i - 1].pos << (depth - nodes[i - 1].depth));
    }
    for (unsigned leaf = 0; ok && leaf < (1u << depth); leaf++) {
        unsigned owners = 0;
        for (size_t i = 0; i < count; i++)
            owners += (leaf >> (depth - nodes[i].depth)) == nodes[i].pos;
        int inside = leaf >= first && leaf <= last;
        ok &= owners == (inside ? 1u : 0u);
        int err = sts_slot_leaf(nodes, count, (uint8_t)depth, leaf, got);
        ok &= inside ? err == 0 && memcmp(got, leaves[leaf], 32) == 0 : err == STS_ERR_STATE;
    }
    return ok;
}

static void test_covers(void)
{
    for (unsigned depth = 1; depth <= 6; depth++) {
        int ok = 1;
        brute_minima(depth);
        reference_leaves(depth);
        for (unsigned first = 0; first < (1u << depth); first++)
            for (unsigned last = first; last < (1u << depth); last++)
                ok &= cover_correct(depth, first, last);
        CHECK(ok);
    }
}

static void test_cover_edges(void)
{
    struct sts_slot_node nodes[STS_SLOT_COVER_MAX];
    size_t count = 99;
    uint8_t got[32], want[32];

    /* The whole depth-32 tree is its root. */
    CHECK(sts_slot_cover(root, 32, 0, UINT32_MAX, nodes, &count) == 0);
    CHECK(count == 1 && nodes[0].depth == 0 && nodes[0].pos == 0);
    CHECK_MEM(nodes[0].key, root, 32);
    /* One leaf is itself. */
    CHECK(sts_slot_cover(root, 32, UINT32_MAX, UINT32_MAX, nodes, &count) == 0);
    CHECK(count == 1 && nodes[0].depth == 32 && nodes[0].pos == UINT32_MAX);
    reference_node(32, UINT32_MAX, want);
    CHECK_MEM(nodes[0].key, want, 32);
    /* The halves. */
    CHECK(sts_slot_cover(root, 32, 0x80000000u, UINT32_MAX, nodes, &count) == 0);
    CHECK(count == 1 && nodes[0].depth == 1 && nodes[0].pos == 1);
    CHECK(sts_slot_cover(root, 32, 0, 0x7fffffffu, nodes, &count) == 0);
    CHECK(count == 1 && nodes[0].depth == 1 && nodes[0].pos == 0);
    /* [1, 2^32 - 2]: the worst case, two nodes per level below the root. */
    CHECK(sts_slot_cover(root, 32, 1, UINT32_MAX - 1, nodes, &count) == 0);
    CHECK(count == 62);
    CHECK(sts_slot_leaf(nodes, count, 32, 0, got) == STS_ERR_STATE);
    CHECK(sts_slot_leaf(nodes, count, 32, UINT32_MAX, got) == STS_ERR_STATE);
    CHECK(sts_slot_leaf(nodes, count, 32, 1, got) == 0);
    reference_node(32, 1, want);
    CHECK_MEM(got, want, 32);
    CHECK(sts_slot_leaf(nodes, count, 32, 0x89abcdefu, got) == 0);
    reference_node(32, 0x89abcdefu, want);
    CHECK_MEM(got, want, 32);
    CHECK(sts_slot_leaf(nodes, count, 32, UINT32_MAX - 1, got) == 0);
    reference_node(32, UINT32_MAX - 1, want);
    CHECK_MEM(got, want, 32);

    /* Refused intervals and trees. */
    CHECK(sts_slot_cover(root, 0, 0, 0, nodes, &count) == STS_ERR_INVALID && count == 0);
    CHECK(sts_slot_cover(root, 33, 0, 0, nodes, &count) == STS_ERR_INVALID);
    CHECK(sts_slot_cover(root, 4, 5, 4, nodes, &count) == STS_ERR_INVALID);
    CHECK(sts_slot_cover(root, 4, 3, 16, nodes, &count) == STS_ERR_INVALID);
    CHECK(sts_slot_cover(root, 4, 16, 16, nodes, &count) == STS_ERR_INVALID);
    CHECK(sts_slot_cover(root, 4, 0, 15, nodes, &count) == 0 && count == 1);

    /* Leaves of another tree depth, or an empty cover. */
    CHECK(sts_slot_cover(root, 4, 4, 7, nodes, &count) == 0 && count == 1);
    CHECK(sts_slot_leaf(nodes, count, 4, 5, got) == 0);
    CHECK(sts_slot_leaf(nodes, count, 4, 16, got) == STS_ERR_INVALID);
    CHECK(sts_slot_leaf(nodes, count, 33, 5, got) == STS_ERR_INVALID);
    CHECK(sts_slot_leaf(nodes, 0, 4, 5, got) == STS_ERR_STATE);
}

int main(void)
{
    test_child();
    test_derive();
    test_covers();
    test_cover_edges();
    return unit_done();
}
