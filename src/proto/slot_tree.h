/* The SLOTTED method's key tree (docs/PROTOCOL.md, "Slot keys"): a binary
 * tree of depth D whose leaves are the keys of slots 0 .. 2^D - 1. Node
 * (d, p) has children (d+1, 2p) = HMAC-SHA256(k, "sts-lua slot tree" || 0x00)
 * and (d+1, 2p+1) = HMAC-SHA256(k, "sts-lua slot tree" || 0x01); the root
 * (0, 0) is a random 32-byte key. A member granted slots [first, last] is
 * given the minimal set of subtree roots covering exactly that interval, so
 * it can derive those leaves and no others. */
#ifndef STS_PROTO_SLOT_TREE_H
#define STS_PROTO_SLOT_TREE_H

#include "crypto/sizes.h"

#include <stddef.h>
#include <stdint.h>

#define STS_SLOT_DEPTH_MAX 32
/* A cover of any interval has at most 2 nodes per level. */
#define STS_SLOT_COVER_MAX (2 * STS_SLOT_DEPTH_MAX)

/* ---- The tree's arithmetic, for any key size and child function ----
 * What the SLOTTED trees share, this one and SMQTT's (proto/smqtt.h, 16-byte
 * keys, SHA-256 children): which nodes cover an interval and how a node is
 * reached from its ancestor. */

/* Keys of up to this many bytes. */
#define STS_TREE_KEY_MAX STS_KEY_LEN

/* The key of child `bit` of node key k, k and out of the tree's key size;
 * out may equal k. sts_slot_child and sts_smqtt_child are such functions. */
typedef int (*sts_tree_child_fn)(const uint8_t *k, int bit, uint8_t *out);

struct sts_tree_pos {
    uint8_t depth;       /* 0 .. D */
    uint32_t pos;        /* 0 .. 2^depth - 1 */
};

/* Whether (adepth, apos) is an ancestor of (depth, pos), or the node itself,
 * both being nodes of a tree of depth STS_SLOT_DEPTH_MAX or less. */
int sts_tree_is_ancestor(unsigned adepth, uint64_t apos, unsigned depth, uint64_t pos);

/* The positions of the minimal cover of leaves [first, last] of a tree of
 * depth `depth` (1..STS_SLOT_DEPTH_MAX), left to right, into positions (room
 * for STS_SLOT_COVER_MAX); *count is how many. STS_ERR_INVALID for an empty
 * or out-of-range interval. */
int sts_tree_cover_positions(unsigned depth, uint32_t first, uint32_t last,
                             struct sts_tree_pos *positions, size_t *count);

/* The key of node (depth, pos) from the key of its ancestor (or itself)
 * (from_depth, from_pos), key_len bytes each (1..STS_TREE_KEY_MAX), going
 * down by `child`. STS_ERR_INVALID when it is no ancestor; out may equal
 * from_key. */
int sts_tree_derive(sts_tree_child_fn child, size_t key_len, const uint8_t *from_key,
                    unsigned from_depth, uint32_t from_pos, unsigned depth, uint32_t pos,
                    uint8_t *out);

/* ---- The native tree ---- */

struct sts_slot_node {
    uint8_t depth;       /* 0 .. D */
    uint32_t pos;        /* 0 .. 2^depth - 1 */
    uint8_t key[STS_KEY_LEN];
};

/* The key of child `bit` (0 left, 1 right) of a node. out may equal k. */
int sts_slot_child(const uint8_t k[STS_KEY_LEN], int bit, uint8_t out[STS_KEY_LEN]);

/* Derives node (depth, pos) from the node `from`, which must be one of its
 * ancestors (or itself). 0, STS_ERR_INVALID when it is not. */
int sts_slot_derive(const struct sts_slot_node *from, uint8_t depth, uint32_t pos,
                    uint8_t out[STS_KEY_LEN]);

/* The minimal cover of leaves [first, last] of a tree of depth `depth`
 * (1..32) with root `root`, left to right, into nodes (room for
 * STS_SLOT_COVER_MAX); *count is how many. STS_ERR_INVALID for an empty or
 * out-of-range interval. */
int sts_slot_cover(const uint8_t root[STS_KEY_LEN], uint8_t depth, uint32_t first, uint32_t last,
                   struct sts_slot_node *nodes, size_t *count);

/* The key of leaf `slot` from a cover (nodes as given by sts_slot_cover, or
 * as received): 0, or STS_ERR_STATE when no node of the cover is an ancestor
 * of it (the slot is outside what was granted). */
int sts_slot_leaf(const struct sts_slot_node *nodes, size_t count, uint8_t depth, uint32_t slot,
                  uint8_t out[STS_KEY_LEN]);

#endif
