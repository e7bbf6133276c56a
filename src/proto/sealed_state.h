/* The state files of sealed readings (docs/PROTOCOL.md, 15.6 "State files"):
 * the sealer's counter bound and the listener's replay windows, encoded and
 * strictly decoded over buffers (the caller reads and writes the files).
 * Integers are big-endian.
 *
 *   sealer:  "STSSC" 0x00 0x01 0x00 (8) || bound (u64)                         || SHA-256 (32)
 *   replay:  "STSRW" 0x00 0x01 0x00 (8) || n (u32) || n x sender record (176)  || SHA-256 (32)
 *   sender record: static public key (32) || top (u64) || the window's words (17 x u64)
 *
 * The first 6 bytes name the kind, the next 2 are the version (1.0); the
 * SHA-256 covers every byte before it, so a truncated, damaged or foreign
 * buffer is refused as a whole. A decoder refuses with *why set to a static
 * message naming the kind: "not a sealer state file", "corrupt replay state
 * file: checksum mismatch", and so on (the reasons are those of 15.6). */
#ifndef STS_PROTO_SEALED_STATE_H
#define STS_PROTO_SEALED_STATE_H

#include "crypto/sizes.h"
#include "proto/replay.h"

#include <stddef.h>
#include <stdint.h>

#define STS_SEALER_STATE_LEN 48
#define STS_SEALED_SENDER_LEN (STS_X25519_LEN + 8 + 8 * STS_REPLAY_WORDS) /* 176 */

/* A sender's replay window, by its static public key. */
struct sts_sealed_sender {
    uint8_t pub[STS_X25519_LEN];
    struct sts_replay window;
};

/* The sealer's state: bound is the first counter not handed out. Returns 0
 * or STS_ERR_CRYPTO (the hash failed). */
int sts_sealer_state_encode(uint64_t bound, uint8_t out[STS_SEALER_STATE_LEN]);

/* Returns 0 with *bound set, or STS_ERR_PARSE (foreign, truncated, unknown
 * version, checksum mismatch, wrong length; anything longer than
 * STS_SEALER_STATE_LEN is not a sealer state) or STS_ERR_CRYPTO, with *why. */
int sts_sealer_state_decode(const uint8_t *buf, size_t len, uint64_t *bound, const char **why);

/* The length of a replay state of n senders; SIZE_MAX if it would not fit. */
size_t sts_replay_state_len(size_t n);

/* Writes the replay state of the n senders (in that order) into out, which
 * holds cap >= sts_replay_state_len(n) bytes. Returns 0, STS_ERR_TOO_BIG (cap
 * too small, or n over UINT32_MAX) or STS_ERR_CRYPTO. */
int sts_replay_state_encode(const struct sts_sealed_sender *senders, size_t n, uint8_t *out, size_t cap);

/* Decodes a replay state of at most max_senders senders into *senders (n of
 * them, in file order, to free(); NULL when n is 0). A key saved twice is
 * refused. Returns 0, STS_ERR_PARSE, STS_ERR_NOMEM or STS_ERR_CRYPTO, with
 * *why; *senders is NULL and *n 0 on failure. */
int sts_replay_state_decode(const uint8_t *buf, size_t len, size_t max_senders, struct sts_sealed_sender **senders,
                            size_t *n, const char **why);

#endif
