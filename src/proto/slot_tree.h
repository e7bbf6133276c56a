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
