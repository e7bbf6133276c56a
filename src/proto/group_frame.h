/* Native group data frames (docs/PROTOCOL.md, "Group frames") and the
 * receiving side's keys and replay windows.
 *
 *   0  version  0x01
 *   1  type     0x10 DATA, 0x11 DATA_SIGNED
 *   2  epoch    uint32 BE (a SLOTTED group: the slot number)
 *   6  sender   uint16 BE, 1..65535, assigned by the key server
 *   8  counter  uint64 BE, the sender's message counter under this key
 *  16  ciphertext || tag (16)
 *  DATA_SIGNED only: signature (64 bytes, ECDSA P-256 r || s) over
 *      SHA-256(uint16 BE len(topic) || topic || every byte before it)
 *
 * nonce = 0x0000 || sender || counter; associated data = the 16-byte header
 * || the topic. The key server never gives one sender index to two members
 * under one key, so no two frames share a nonce under a key. Overhead: 32
 * bytes (DATA), 96 (DATA_SIGNED). Pure functions over buffers. */
#ifndef STS_PROTO_GROUP_FRAME_H
#define STS_PROTO_GROUP_FRAME_H

#include "crypto/aead.h"
#include "crypto/sizes.h"
#include "proto/replay.h"
#include "proto/sts_frame.h"

#include <stddef.h>
#include <stdint.h>

#define STS_GROUP_FRAME_DATA 0x10
#define STS_GROUP_FRAME_DATA_SIGNED 0x11
#define STS_GROUP_HEADER_LEN 16
#define STS_GROUP_OVERHEAD (STS_GROUP_HEADER_LEN + STS_AEAD_TAG_LEN) /* 32 */
#define STS_GROUP_SIG_LEN 64
#define STS_GROUP_PAYLOAD_MAX 65000

struct sts_group_header {
    int type;          /* STS_GROUP_FRAME_DATA or _SIGNED */
    uint32_t epoch;
    uint16_t sender;
    uint64_t counter;
};

/* Parses the header and the layout (no cryptography). On 0, body/bodylen is
 * ciphertext || tag and sig is the signature (NULL for DATA). Otherwise the
 * reason: STS_REASON_TRUNCATED, _BAD_VERSION, _UNKNOWN_TYPE, _MALFORMED
 * (sender 0, counter 2^64-1), _TOO_BIG (payload over STS_GROUP_PAYLOAD_MAX). */
enum sts_reason sts_group_frame_parse(const uint8_t *frame, size_t len, struct sts_group_header *h,
                                      const uint8_t **body, size_t *bodylen, const uint8_t **sig);

/* Seals pt into out (cap bytes): header || ciphertext || tag, and for a
 * DATA_SIGNED header room for the signature, which the sender then fills
 * with its signature of sts_group_frame_digest. *outlen is the frame's full length. 0, STS_ERR_TOO_BIG (pt or
 * cap), STS_ERR_CRYPTO. */
int sts_group_frame_seal(enum sts_aead_alg alg, const uint8_t key[STS_KEY_LEN],
                         const struct sts_group_header *h, const char *topic,
                         const uint8_t *pt, size_t ptlen, uint8_t *out, size_t cap, size_t *outlen);

/* SHA-256 of what a DATA_SIGNED frame's signature covers (frame is the
 * whole frame, signature included). */
int sts_group_frame_digest(const uint8_t *frame, size_t len, const char *topic,
                           uint8_t digest[STS_SHA256_LEN]);

/* Opens body (from sts_group_frame_parse) into out (bodylen - 16 bytes).
 * 0 or STS_ERR_AUTH / STS_ERR_TRUNCATED. */
int sts_group_frame_open(enum sts_aead_alg alg, const uint8_t key[STS_KEY_LEN],
                         const uint8_t *frame, const char *topic, const uint8_t *body,
                         size_t bodylen, uint8_t *out);

/* --- a receiver's keys ------------------------------------------------------------
 * The keys a member can open frames with: the current epoch's, and the
 * previous ones for a grace period after a rekey (so frames in flight across
 * it still open), each with one replay window per sender. Bounded: at most
 * STS_GROUP_KEYRING_EPOCHS epochs, windows made on first use. */
#define STS_GROUP_KEYRING_EPOCHS 8

struct sts_group_epoch;
struct sts_group_keyring {
    struct sts_group_epoch *epochs; /* newest first */
    size_t count;
};

void sts_group_keyring_init(struct sts_group_keyring *r);
/* Installs the key of `epoch`; the epochs before it stay until
 * `retire_at` (each older epoch's deadline is set to it when it is still
 * later). A key for an epoch already held replaces it (with fresh windows)
 * only if it differs. 0, STS_ERR_NOMEM. */
int sts_group_keyring_add(struct sts_group_keyring *r, uint32_t epoch, const uint8_t key[STS_KEY_LEN],
                          double retire_at);
/* The key of epoch, NULL if not held (or retired by `now`). */
const uint8_t *sts_group_keyring_key(struct sts_group_keyring *r, uint32_t epoch, double now);
/* Drops (and wipes) epochs whose grace ended by now. */
void sts_group_keyring_expire(struct sts_group_keyring *r, double now);
/* Replay check and mark for (epoch, sender, counter): as sts_replay_check and
 * sts_replay_mark; STS_ERR_STATE when the epoch is not held, STS_ERR_NOMEM. */
int sts_group_keyring_check(struct sts_group_keyring *r, uint32_t epoch, uint16_t sender, uint64_t counter);
int sts_group_keyring_mark(struct sts_group_keyring *r, uint32_t epoch, uint16_t sender, uint64_t counter);
/* Wipes every key and frees everything. */
void sts_group_keyring_free(struct sts_group_keyring *r);
size_t sts_group_keyring_memory(const struct sts_group_keyring *r);

#endif
