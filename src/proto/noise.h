/* The Noise Protocol Framework, revision 34: a generic handshake engine.
 *
 * A protocol is named as in the spec, Noise_<pattern>_<dh>_<cipher>_<hash>:
 * any one-way, fundamental or deferred pattern of the spec, with psk
 * modifiers ("XXpsk3", "NNpsk0+psk2"); DH 25519; ciphers ChaChaPoly and
 * AESGCM; hashes SHA256 and SHA512. Other names fail with
 * STS_ERR_UNSUPPORTED, malformed ones with STS_ERR_INVALID.
 *
 * Usage: create a HandshakeState, then while sts_noise_hs_action() says
 * WRITE or READ call sts_noise_hs_write / sts_noise_hs_read with the next
 * message; at SPLIT, take the two transport CipherStates. A write or read
 * that fails (other than out of turn, STS_ERR_STATE) leaves the handshake
 * FAILED, its secrets wiped: there is no retry on a half-updated state. */
#ifndef STS_PROTO_NOISE_H
#define STS_PROTO_NOISE_H

#include "crypto/sizes.h"

#include <stddef.h>
#include <stdint.h>

#define STS_NOISE_MAX_MSG 65535 /* the spec's bound on every Noise message */
/* The DH key and AEAD tag lengths under their Noise names (crypto/sizes.h
 * defines them). */
#define STS_NOISE_KEY_LEN STS_X25519_LEN
#define STS_NOISE_TAG_LEN STS_AEAD_TAG_LEN

struct sts_noise_hs; /* opaque HandshakeState */

/* Keys for a handshake; all optional (NULL when absent). The engine checks
 * at creation that the pattern's needs are met (STS_ERR_INVALID otherwise). */
struct sts_noise_keys {
    const uint8_t *s;  /* local static private key, STS_X25519_LEN bytes */
    const uint8_t *e;  /* local ephemeral private key, instead of a fresh
                          one: for test vectors, or to rebuild a handshake
                          that writes the very same messages again */
    const uint8_t *rs; /* remote static public key: a pre-message key, or,
                          when the pattern transmits it, the key the peer
                          must present (pinned: else the read fails, AUTH) */
    const uint8_t *re; /* remote ephemeral public key (pre-message) */
    const uint8_t (*psks)[STS_KEY_LEN]; /* one per psk token, in order of use */
    size_t npsks;
    const uint8_t *s_pub; /* the public key of s, when the caller has it:
                             saves an X25519 per handshake (it must match s) */
};

/* A CipherState: key, next nonce, and the AEAD (enum sts_aead_alg). */
struct sts_noise_cipher {
    uint8_t k[STS_KEY_LEN];
    uint64_t n;
    int has_key;
    int alg;
};

enum sts_noise_action { STS_NOISE_WRITE, STS_NOISE_READ, STS_NOISE_SPLIT, STS_NOISE_FAILED };

/* A new HandshakeState for protocol_name as the initiator (1) or responder
 * (0). Returns 0 or a negative sts_error; *out is NULL on failure. */
int sts_noise_hs_new(struct sts_noise_hs **out, const char *protocol_name, int initiator,
                     const uint8_t *prologue, size_t prologue_len,
                     const struct sts_noise_keys *keys);

/* What the handshake expects next; SPLIT once every message is processed. */
enum sts_noise_action sts_noise_hs_action(const struct sts_noise_hs *hs);

/* Writes the next handshake message carrying payload into out (room for
 * out_max bytes; the two must not overlap). STS_ERR_STATE when it is not our
 * turn (nothing changes then), STS_ERR_TOO_BIG when out is too small or the
 * message would exceed 65535 bytes. */
int sts_noise_hs_write(struct sts_noise_hs *hs, const uint8_t *payload, size_t payload_len,
                       uint8_t *out, size_t out_max, size_t *out_len);

/* Reads the peer's next handshake message; its payload goes to payload (room
 * for payload_max bytes, at most msg_len are needed; not overlapping msg).
 * STS_ERR_AUTH on a bad tag or an unexpected pinned key, STS_ERR_KEY on a
 * low-order DH key, STS_ERR_TRUNCATED on a short message, STS_ERR_STATE when
 * it is our turn to write (nothing changes then). */
int sts_noise_hs_read(struct sts_noise_hs *hs, const uint8_t *msg, size_t msg_len,
                      uint8_t *payload, size_t payload_max, size_t *payload_len);

/* At SPLIT: the transport CipherStates for sending and receiving, once
 * (STS_ERR_STATE before the handshake ends or on a second call). The
 * handshake's remaining secrets are wiped. In a one-way pattern the
 * direction that may not be used comes back without a key. */
int sts_noise_hs_split(struct sts_noise_hs *hs, struct sts_noise_cipher *send,
                       struct sts_noise_cipher *recv);

/* The handshake hash h (*len set to its length), for channel binding; final
 * once the handshake has ended. */
const uint8_t *sts_noise_hs_hash(const struct sts_noise_hs *hs, size_t *len);

/* The peer's static public key, NULL until known. */
const uint8_t *sts_noise_hs_remote_static(const struct sts_noise_hs *hs);

/* Our ephemeral public key, NULL until generated. */
const uint8_t *sts_noise_hs_local_ephemeral_public(const struct sts_noise_hs *hs);

/* Frees hs (NULL is fine), wiping every secret. */
void sts_noise_hs_free(struct sts_noise_hs *hs);

/* Transport. out has room for len + STS_NOISE_TAG_LEN bytes (encrypt) or
 * len - STS_NOISE_TAG_LEN bytes (decrypt, len including the tag); out may
 * equal the input. Messages are bounded by STS_NOISE_MAX_MSG
 * (STS_ERR_TOO_BIG), nonce 2^64-1 is reserved (STS_ERR_TOO_BIG), a keyless
 * cipher gives STS_ERR_STATE, a bad tag STS_ERR_AUTH.
 *
 * The implicit forms use and increment cs->n, as the spec does; a failed
 * decryption leaves it unchanged. The _at forms take the nonce from the
 * caller (the STS session layer's 64-bit frame counter) and leave cs->n
 * alone: the caller must never reuse a nonce with one key. */
int sts_noise_encrypt(struct sts_noise_cipher *cs, const uint8_t *ad, size_t adlen,
                      const uint8_t *pt, size_t len, uint8_t *out);
int sts_noise_decrypt(struct sts_noise_cipher *cs, const uint8_t *ad, size_t adlen,
                      const uint8_t *ct, size_t len, uint8_t *out);
int sts_noise_encrypt_at(const struct sts_noise_cipher *cs, uint64_t n,
                         const uint8_t *ad, size_t adlen,
                         const uint8_t *pt, size_t len, uint8_t *out);
int sts_noise_decrypt_at(const struct sts_noise_cipher *cs, uint64_t n,
                         const uint8_t *ad, size_t adlen,
                         const uint8_t *ct, size_t len, uint8_t *out);

/* Spec §11.3 REKEY: k = the first STS_KEY_LEN bytes of ENCRYPT(k, 2^64-1, "",
 * STS_KEY_LEN zero bytes). The nonce is left as it is. */
int sts_noise_rekey(struct sts_noise_cipher *cs);

/* Wipes a CipherState (keys included). */
void sts_noise_cipher_wipe(struct sts_noise_cipher *cs);

#endif
