#include "proto/slot_tree.h"
#include "crypto/hash.h"
#include "util/error.h"

#include <mbedtls/platform_util.h>

#include <string.h>

static const char child_label[] = "sts-lua slot tree"; /* 17 bytes, no NUL on the wire */
#define LABEL_LEN (sizeof child_label - 1)

int sts_slot_child(const uint8_t k[STS_KEY_LEN], int bit, uint8_t out[STS_KEY_LEN])
{
    uint8_t msg[LABEL_LEN + 1], child[STS_SHA256_LEN];
    int err;

    if (bit != 0 && bit != 1)
        return STS_ERR_INVALID;
    memcpy(msg, child_label, LABEL_LEN);
    msg[LABEL_LEN] = (uint8_t)bit;
    /* Through a copy, so out may be k. */
    err = sts_hmac(STS_SHA256, k, STS_KEY_LEN, msg, sizeof msg, child);
    if (err == 0)
        memcpy(out, child, STS_KEY_LEN);
    mbedtls_platform_zeroize(child, sizeof child);
    return err;
}

/* (depth, pos) names a node of a tree of depth 32 or less. Positions are
 * compared as 64-bit values: 2^32 and shifts by 32 are in range. */
static int is_node(unsigned depth, uint64_t pos)
{
    return depth <= STS_SLOT_DEPTH_MAX && pos < (uint64_t)1 << depth;
}

int sts_tree_is_ancestor(unsigned adepth, uint64_t apos, unsigned depth, uint64_t pos)
{
    return is_node(adepth, apos) && is_node(depth, pos) && adepth <= depth
           && pos >> (depth - adepth) == apos;
}

int sts_tree_derive(sts_tree_child_fn child, size_t key_len, const uint8_t *from_key,
                    unsigned from_depth, uint32_t from_pos, unsigned depth, uint32_t pos,
                    uint8_t *out)
{
    uint8_t k[STS_TREE_KEY_MAX];
    int err = 0;

    if (key_len < 1 || key_len > sizeof k || !sts_tree_is_ancestor(from_depth, from_pos, depth, pos))
        return STS_ERR_INVALID;
    memcpy(k, from_key, key_len);
    /* Down one level per bit of pos below the ancestor, highest bit first. */
    for (unsigned d = from_depth; d < depth && err == 0; d++)
        err = child(k, (int)(pos >> (depth - d - 1) & 1), k);
    if (err == 0)
        memcpy(out, k, key_len);
    mbedtls_platform_zeroize(k, sizeof k);
    return err;
}

/* The height of the largest subtree that starts at leaf x (aligned to its
 * size) and ends at or before leaf last. */
static unsigned largest_block(uint64_t x, uint64_t last, unsigned depth)
{
    unsigned h = 0;
    while (h < depth && x % ((uint64_t)2 << h) == 0 && x + ((uint64_t)2 << h) - 1 <= last)
        h++;
    return h;
}

int sts_tree_cover_positions(unsigned depth, uint32_t first, uint32_t last,
                             struct sts_tree_pos *positions, size_t *count)
{
    size_t n = 0;

    *count = 0;
    if (depth < 1 || depth > STS_SLOT_DEPTH_MAX || first > last || !is_node(depth, last))
        return STS_ERR_INVALID;
    /* Greedy from the left: each block is the largest aligned one that fits,
     * which gives at most two blocks per level, and no cover is smaller. */
    for (uint64_t x = first; x <= last; n++) {
        unsigned h = largest_block(x, last, depth);
        positions[n].depth = (uint8_t)(depth - h);
        positions[n].pos = (uint32_t)(x >> h);
        x += (uint64_t)1 << h;
    }
    *count = n;
    return 0;
}

int sts_slot_derive(const struct sts_slot_node *from, uint8_t depth, uint32_t pos,
                    uint8_t out[STS_KEY_LEN])
{
    return sts_tree_derive(sts_slot_child, STS_KEY_LEN, from->key, from->depth, from->pos, depth, pos,
                           out);
}

int sts_slot_cover(const uint8_t root[STS_KEY_LEN], uint8_t depth, uint32_t first, uint32_t last,
                   struct sts_slot_node *nodes, size_t *count)
{
    struct sts_tree_pos at[STS_SLOT_COVER_MAX];
    size_t n, i;
    int err = sts_tree_cover_positions(depth, first, last, at, &n);

    *count = 0;
    for (i = 0; err == 0 && i < n; i++) {
        nodes[i].depth = at[i].depth;
        nodes[i].pos = at[i].pos;
        err = sts_tree_derive(sts_slot_child, STS_KEY_LEN, root, 0, 0, at[i].depth, at[i].pos,
                              nodes[i].key);
    }
    if (err) {
        mbedtls_platform_zeroize(nodes, i * sizeof *nodes);
        return err;
    }
    *count = n;
    return 0;
}

int sts_slot_leaf(const struct sts_slot_node *nodes, size_t count, uint8_t depth, uint32_t slot,
                  uint8_t out[STS_KEY_LEN])
{
    if (depth < 1 || !is_node(depth, slot))
        return STS_ERR_INVALID;
    for (size_t i = 0; i < count; i++)
        if (sts_tree_is_ancestor(nodes[i].depth, nodes[i].pos, depth, slot))
            return sts_slot_derive(&nodes[i], depth, slot, out);
    return STS_ERR_STATE;
}
