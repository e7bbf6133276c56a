/* Sealed one-way readings (docs/PROTOCOL.md, "Sealed readings"): a reading
 * encrypted to the gateway's static key in one self-contained frame, with no
 * round trip: one message of a one-way Noise pattern (N, K or X) whose
 * payload is the reading.
 *
 *   0  version  0x01
 *   1  type     0x08 SEALED
 *   2  pattern  1 N (anonymous), 2 K (sender's key known to the gateway), 3 X (sender's key sent, encrypted)
 *   3  suite    as STS_SUITE_* (1 ChaChaPoly_SHA256, 2 AESGCM_SHA256, 3, 4 with SHA512)
 *   4  key id   8 bytes, K only: SHA-256(sender's static public key)[0:8], so the gateway finds the key
 *   .  counter  uint64 BE: the sender's reading counter, strictly increasing across its sleeps
 *   .  message  the Noise handshake message: e (32) [X: encrypted s (48)] and the encrypted reading (+16)
 *
 * The Noise prologue is "sts-lua sealed 1" || every header byte above ||
 * uint16 BE len(topic) || topic, so the header (counter included) and the
 * topic are authenticated by the message's tag. Overhead: N 60 bytes, K 68,
 * X 108. Replay protection (the counter against the sender's last) is the
 * receiver's, outside this module. Pure functions over buffers. */
#ifndef STS_PROTO_SEALED_H
#define STS_PROTO_SEALED_H

#include "crypto/sizes.h"
#include "proto/sts_frame.h"

#include <stddef.h>
#include <stdint.h>

#define STS_FRAME_SEALED 0x08
#define STS_SEALED_KEY_ID_LEN 8
#define STS_SEALED_PAYLOAD_MAX 65000

enum sts_sealed_pattern { STS_SEALED_N = 1, STS_SEALED_K = 2, STS_SEALED_X = 3 };

struct sts_sealed_header {
    uint8_t pattern;                        /* enum sts_sealed_pattern */
    uint8_t suite;                          /* enum sts_suite */
    uint8_t key_id[STS_SEALED_KEY_ID_LEN];  /* K only */
    uint64_t counter;
    size_t len;                             /* header bytes: 12 (N, X) or 20 (K) */
};

/* Overhead of a frame of pattern p: header, e, [s], tag. */
size_t sts_sealed_overhead(enum sts_sealed_pattern p);

/* The key id of a static public key. */
int sts_sealed_key_id(const uint8_t pub[STS_X25519_LEN], uint8_t id[STS_SEALED_KEY_ID_LEN]);

/* Parses the header and checks the layout (no cryptography). Returns
 * STS_REASON_NONE, or _TRUNCATED, _BAD_VERSION, _UNKNOWN_TYPE (not 0x08),
 * _SUITE (unknown pattern or suite), _MALFORMED (shorter than the pattern's
 * message, counter 2^64-1), _TOO_BIG (payload over STS_SEALED_PAYLOAD_MAX). */
enum sts_reason sts_sealed_parse(const uint8_t *frame, size_t len, struct sts_sealed_header *h);

/* Seals pt for topic into out (cap bytes, at least ptlen +
 * sts_sealed_overhead): s_priv is the sender's static key (NULL for N),
 * s_pub its public key (K: for the key id; may be NULL to compute it), rs the
 * gateway's static public key. A fresh ephemeral key from the DRBG. 0,
 * STS_ERR_TOO_BIG, STS_ERR_INVALID (a key missing for the pattern),
 * STS_ERR_CRYPTO, STS_ERR_RNG. */
int sts_sealed_seal(enum sts_sealed_pattern pattern, enum sts_suite suite, const uint8_t *s_priv,
                    const uint8_t *s_pub, const uint8_t rs_pub[STS_X25519_LEN], uint64_t counter,
                    const char *topic, const uint8_t *pt, size_t ptlen, uint8_t *out, size_t cap,
                    size_t *outlen);

/* Opens a parsed frame (h from sts_sealed_parse on the same bytes) with the
 * gateway's static key, into out (at least len bytes). sender_pub: K, the
 * sender's key the caller found by h->key_id (required); X, NULL, or a key
 * the sender must present. On STS_REASON_NONE, *ptlen is the reading's
 * length and sender_out (when not NULL) the sender's static public key (K,
 * X; zeros for N). Otherwise STS_REASON_AUTH (the tag, hence header, topic
 * or keys, did not verify), _MALFORMED, _INTERNAL. out holds nothing then. */
enum sts_reason sts_sealed_open(const uint8_t gw_priv[STS_X25519_LEN], const uint8_t *gw_pub,
                                const struct sts_sealed_header *h, const uint8_t *frame, size_t len,
                                const uint8_t *sender_pub, const char *topic, uint8_t *out,
                                size_t *ptlen, uint8_t sender_out[STS_X25519_LEN]);

#endif
