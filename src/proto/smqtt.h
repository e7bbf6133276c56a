/* The SMQTT group protocol (DESIGN.md §4, docs/SMQTT.md), for interoperating
 * with its Java reference: the JSON join messages and their MACs, the
 * encrypted key material, the data frames and the SLOTTED key tree. Pure
 * functions over buffers, no sockets, no state.
 *
 * The protocol is insecure by design (one pre-shared client key, a MAC over
 * the plaintext only, no replay or time checks); this is an opt-in
 * compatibility mode. We keep its wire format exactly but not its bugs:
 * every input is bounded, every MAC is compared in constant time over its
 * exact length, and our IVs come from sts_random.
 *
 * Failing functions return a negative sts_error and, where they take a
 * `why` buffer (STS_SMQTT_WHY_LEN bytes, or NULL), a NUL-terminated reason
 * such as "missing field 'seq'" or "bad padding". */
#ifndef STS_PROTO_SMQTT_H
#define STS_PROTO_SMQTT_H

#include <stddef.h>
#include <stdint.h>

#define STS_SMQTT_KEY_LEN 16          /* client key, group key, tree node key */
#define STS_SMQTT_IV_LEN 16
#define STS_SMQTT_MAC_LEN 16          /* HMAC-SHA256 truncated */
#define STS_SMQTT_JSON_MAX 65536      /* longest join message accepted */
#define STS_SMQTT_ID_MAX 255          /* member and group: 1..255 bytes */
#define STS_SMQTT_WHY_LEN 96
/* The frame index is 16 bits, so no slot beyond 2^16 - 1 can be sent. */
#define STS_SMQTT_DEPTH_MAX 16
#define STS_SMQTT_COVER_MAX (2 * STS_SMQTT_DEPTH_MAX)
/* Key material: hex(k2) and at most a full cover of "&[dd,ppppp,hex]". */
#define STS_SMQTT_MATERIAL_MAX 2048
/* encryptedKeyMaterial decoded: IV and the padded material. */
#define STS_SMQTT_EKM_MAX (STS_SMQTT_IV_LEN + STS_SMQTT_MATERIAL_MAX + 16)
/* index || IV || ciphertext (at least one block) || MAC */
#define STS_SMQTT_FRAME_OVERHEAD (2 + STS_SMQTT_IV_LEN + STS_SMQTT_MAC_LEN)
#define STS_SMQTT_FRAME_MIN (STS_SMQTT_FRAME_OVERHEAD + 16)
#define STS_SMQTT_PLAINTEXT_MAX (1u << 20)

/* A member or group id: len bytes of text (NUL-terminated as well, but
 * may hold a NUL of its own). */
struct sts_smqtt_id {
    size_t len;
    char text[STS_SMQTT_ID_MAX + 1];
};

/* Integers are int64; an optional one is -1 when absent. */
struct sts_smqtt_request {
    struct sts_smqtt_id member, group;
    int64_t expires; /* SLOTTED only */
    int64_t seq;
    uint8_t auth[STS_SMQTT_MAC_LEN];
};

/* encryptedKeyMaterial, base64-decoded: IV || AES-CBC(client key, material). */
struct sts_smqtt_ekm {
    size_t len;
    uint8_t bytes[STS_SMQTT_EKM_MAX];
};

struct sts_smqtt_response {
    struct sts_smqtt_id member, group;
    int64_t expires, slot, depth, time; /* optional */
    int64_t seq;
    struct sts_smqtt_ekm ekm;
    uint8_t auth[STS_SMQTT_MAC_LEN];
};

/* Our own message, not in the reference. */
struct sts_smqtt_leave {
    struct sts_smqtt_id member, group;
    int64_t seq;
    uint8_t auth[STS_SMQTT_MAC_LEN];
};

struct sts_smqtt_node {
    uint8_t depth;
    uint32_t pos;
    uint8_t key[STS_SMQTT_KEY_LEN];
};

/* Sets an id from len bytes: STS_ERR_INVALID unless 1..STS_SMQTT_ID_MAX. */
int sts_smqtt_id_set(struct sts_smqtt_id *id, const char *text, size_t len);

/* ---- Join messages ----
 * sign computes auth from the other fields under the client key; verify
 * recomputes it and compares (0 or STS_ERR_AUTH). encode writes the JSON
 * the reference writes, with a NUL, into out (room for outmax) and sets
 * *outlen; STS_ERR_TOO_BIG if it does not fit, STS_ERR_INVALID for a field
 * out of range (an empty id, a negative seq). decode parses leniently as the
 * reference does (any order, whitespace, unknown fields) but bounded; it
 * does not check the MAC. */
int sts_smqtt_request_sign(struct sts_smqtt_request *r, const uint8_t key[STS_SMQTT_KEY_LEN]);
int sts_smqtt_request_verify(const struct sts_smqtt_request *r, const uint8_t key[STS_SMQTT_KEY_LEN]);
int sts_smqtt_request_encode(const struct sts_smqtt_request *r, char *out, size_t outmax, size_t *outlen);
int sts_smqtt_request_decode(struct sts_smqtt_request *r, const char *json, size_t len, char *why);

/* The leave MAC is over "leave" || member || group || dec(seq), so that no
 * join request's MAC is ever a valid leave. */
int sts_smqtt_leave_sign(struct sts_smqtt_leave *l, const uint8_t key[STS_SMQTT_KEY_LEN]);
int sts_smqtt_leave_verify(const struct sts_smqtt_leave *l, const uint8_t key[STS_SMQTT_KEY_LEN]);
int sts_smqtt_leave_encode(const struct sts_smqtt_leave *l, char *out, size_t outmax, size_t *outlen);
int sts_smqtt_leave_decode(struct sts_smqtt_leave *l, const char *json, size_t len, char *why);

/* seal encrypts the key material text (len bytes, at most
 * STS_SMQTT_MATERIAL_MAX) into r->ekm under the client key with iv (NULL: a
 * fresh random one; a fixed one is for tests) and signs r. open verifies
 * the MAC, decrypts and unpads into out (room for STS_SMQTT_MATERIAL_MAX;
 * outmax), setting *outlen; the reasons are "bad MAC", "bad length of
 * 'encryptedKeyMaterial'", "bad padding in 'encryptedKeyMaterial'". */
int sts_smqtt_response_seal(struct sts_smqtt_response *r, const uint8_t key[STS_SMQTT_KEY_LEN],
                            const char *material, size_t len, const uint8_t iv[STS_SMQTT_IV_LEN]);
/* Signs r as it is (its ekm already set): for tests and for relaying. */
int sts_smqtt_response_sign(struct sts_smqtt_response *r, const uint8_t key[STS_SMQTT_KEY_LEN]);
int sts_smqtt_response_verify(const struct sts_smqtt_response *r, const uint8_t key[STS_SMQTT_KEY_LEN]);
int sts_smqtt_response_open(const struct sts_smqtt_response *r, const uint8_t key[STS_SMQTT_KEY_LEN],
                            char *out, size_t outmax, size_t *outlen, char *why);
int sts_smqtt_response_encode(const struct sts_smqtt_response *r, char *out, size_t outmax, size_t *outlen);
int sts_smqtt_response_decode(struct sts_smqtt_response *r, const char *json, size_t len, char *why);

/* ---- Key material texts ----
 * STATIC and UPDATE: the group key as 32 lowercase hex digits (out has room
 * for 33). SLOTTED: hex(k2) then "&[depth,pos,hexkey]" per node, into out
 * (room for outmax, NUL added). parse reads either (hex in either case):
 * *count = 0 and the key in key for the plain form, else k2 in key and the
 * nodes (room for STS_SMQTT_COVER_MAX). */
void sts_smqtt_material_key(char out[2 * STS_SMQTT_KEY_LEN + 1], const uint8_t gk[STS_SMQTT_KEY_LEN]);
int sts_smqtt_material_slotted(char *out, size_t outmax, size_t *outlen,
                               const uint8_t k2[STS_SMQTT_KEY_LEN],
                               const struct sts_smqtt_node *nodes, size_t count);
int sts_smqtt_material_parse(const char *text, size_t len, uint8_t key[STS_SMQTT_KEY_LEN],
                             struct sts_smqtt_node *nodes, size_t *count, char *why);

/* ---- Data frames ----
 * index (u16 BE) || IV || AES-128-CBC-PKCS#7(gk, plaintext) || HMAC-SHA256(gk,
 * plaintext)[0:16]. seal writes len + 16 - len % 16 + STS_SMQTT_FRAME_OVERHEAD
 * bytes into out (iv NULL: a fresh random one). open checks the length
 * ("truncated frame", "bad length"), decrypts ("bad padding") and checks the
 * MAC ("bad MAC") into out (room for outmax: the frame length is enough). */
int sts_smqtt_seal(const uint8_t gk[STS_SMQTT_KEY_LEN], uint16_t index, const uint8_t *pt, size_t len,
                   const uint8_t iv[STS_SMQTT_IV_LEN], uint8_t *out, size_t outmax, size_t *outlen);
int sts_smqtt_open(const uint8_t gk[STS_SMQTT_KEY_LEN], const uint8_t *frame, size_t len,
                   uint8_t *out, size_t outmax, size_t *outlen, uint16_t *index, char *why);
/* The index of a frame long enough to be one: 0, or STS_ERR_TRUNCATED. */
int sts_smqtt_frame_index(const uint8_t *frame, size_t len, uint16_t *index);

/* ---- The SLOTTED tree ----
 * child: (d+1, 2p) = SHA-256(k)[0:16] for bit 0, (d+1, 2p+1) = SHA-256(k with
 * its last byte xor 0x01)[0:16] for bit 1; out may equal k. cover: the
 * minimal set of subtree roots covering leaves [first, last] of a tree of
 * depth 1..STS_SMQTT_DEPTH_MAX, left to right, as the reference selects them
 * (nodes has room for STS_SMQTT_COVER_MAX). leaf: slot's key from a cover,
 * STS_ERR_STATE when no node covers it. */
int sts_smqtt_child(const uint8_t k[STS_SMQTT_KEY_LEN], int bit, uint8_t out[STS_SMQTT_KEY_LEN]);
int sts_smqtt_cover(const uint8_t root[STS_SMQTT_KEY_LEN], unsigned depth, uint32_t first, uint32_t last,
                    struct sts_smqtt_node *nodes, size_t *count);
int sts_smqtt_leaf(const struct sts_smqtt_node *nodes, size_t count, unsigned depth, uint32_t slot,
                   uint8_t out[STS_SMQTT_KEY_LEN]);

/* The slots a SLOTTED join is granted: with e = elapsed_ms since the key
 * server started, T = slot_seconds and E = expires (seconds),
 * [e/T/1000, (e+E*1000)/T/1000 - 1] in integer division. 0, or
 * STS_ERR_INVALID for an empty range or arguments out of range (negative,
 * T = 0, overflow). */
int sts_smqtt_grant(int64_t elapsed_ms, int64_t slot_seconds, int64_t expires,
                    int64_t *first, int64_t *last);

#endif
