/* The native STS wire format (docs/PROTOCOL.md): every frame is
 * version (1 byte) || type (1 byte) || body. This module encodes and strictly
 * decodes the header and the body layouts, names the suites, and builds the
 * handshake prologue. It does no cryptography. */
#ifndef STS_PROTO_STS_FRAME_H
#define STS_PROTO_STS_FRAME_H

#include "crypto/sizes.h"

#include <stddef.h>
#include <stdint.h>

#define STS_FRAME_VERSION 0x01

enum sts_frame_type {
    STS_FRAME_INITREQ = 0x01, /* handshake message 1, initiator -> responder */
    STS_FRAME_INITACK = 0x02, /* handshake message 2 */
    STS_FRAME_AUTHREQ = 0x03, /* handshake message 3 (XX) */
    STS_FRAME_AUTHACK = 0x04, /* reserved for a 4-message pattern: never sent */
    STS_FRAME_ENC = 0x05,     /* transport data */
    STS_FRAME_KILL = 0x06,    /* authenticated close */
    STS_FRAME_RESYNC = 0x07,  /* unauthenticated "I have no session for you" */
    STS_FRAME_COOKIE = 0x09,  /* unauthenticated "retry with this cookie" (a loaded responder; 0x08 is SEALED) */
};

/* A COOKIE's body, and what an INITREQ that returns it carries after its
 * Noise message. */
#define STS_FRAME_COOKIE_LEN 16

#define STS_FRAME_HEADER_LEN 2
#define STS_FRAME_COUNTER_LEN 8
#define STS_FRAME_SEALED_HEADER_LEN (STS_FRAME_HEADER_LEN + STS_FRAME_COUNTER_LEN)
#define STS_FRAME_TAG_LEN STS_AEAD_TAG_LEN
#define STS_FRAME_OVERHEAD (STS_FRAME_SEALED_HEADER_LEN + STS_FRAME_TAG_LEN) /* 26 */
/* Handshake payloads are empty, so every handshake frame of NN, XX and IK
 * (the longest: 2 + 1 + 96 bytes) fits here; longer ones are refused. */
#define STS_FRAME_HANDSHAKE_MAX 128
/* Noise bounds a transport message (ciphertext and tag) to 65535 bytes, so
 * a plaintext holds at most 65519 bytes and a frame 65545. */
#define STS_FRAME_PAYLOAD_MAX (65535 - STS_FRAME_TAG_LEN)
#define STS_FRAME_MAX_DEFAULT (STS_FRAME_PAYLOAD_MAX + STS_FRAME_OVERHEAD)

/* Why an input was refused: the protocol's vocabulary for rejections, each
 * counted separately by a session. */
enum sts_reason {
    STS_REASON_NONE = 0,
    STS_REASON_MALFORMED,   /* layout wrong for its type */
    STS_REASON_BAD_VERSION, /* version byte is not 0x01 */
    STS_REASON_UNKNOWN_TYPE,
    STS_REASON_TRUNCATED,   /* shorter than its type requires */
    STS_REASON_TOO_BIG,     /* over the frame size limit */
    STS_REASON_REPLAY,      /* counter seen before or older than the window */
    STS_REASON_AUTH,        /* AEAD tag or handshake message did not verify */
    STS_REASON_STATE,       /* not expected in this state */
    STS_REASON_UNTRUSTED,   /* peer static key refused by the trust policy */
    STS_REASON_SUITE,       /* pattern or cipher suite refused */
    STS_REASON_STALE_EPOCH, /* key epoch too old (wiped) or too far ahead */
    STS_REASON_TIMEOUT,     /* a handshake did not complete in time */
    STS_REASON_INTERNAL,    /* not the input's fault: memory, the random generator or a
                               primitive failed here (sts_reason_error says STS_ERR_CRYPTO;
                               a session returns the failure's own code) */
    STS_REASON_COUNT
};

/* The reason's short name ("replay", "auth", ...), as used in events. */
const char *sts_reason_name(enum sts_reason r);

/* The sts_error a function returns for a rejection of this reason. */
int sts_reason_error(enum sts_reason r);

/* A decoded frame. body points into the decoded buffer:
 * INITREQ: the Noise message after the suite byte; INITACK, AUTHREQ: the
 * Noise message; ENC, KILL: ciphertext || tag; RESYNC: empty; COOKIE: the
 * cookie. */
struct sts_frame {
    enum sts_frame_type type;
    uint8_t suite;    /* INITREQ only */
    uint64_t counter; /* ENC and KILL only */
    const uint8_t *body;
    size_t body_len;
};

/* Decodes buf (len bytes), refusing frames over max_len bytes (0: the
 * default). Returns 0, or a negative sts_error with *why set to the reason. */
int sts_frame_decode(struct sts_frame *f, const uint8_t *buf, size_t len, size_t max_len,
                     enum sts_reason *why);

/* Writes version || type at out; returns STS_FRAME_HEADER_LEN. */
size_t sts_frame_put_header(uint8_t *out, enum sts_frame_type type);

/* Writes version || type || counter (big-endian) at out; returns
 * STS_FRAME_SEALED_HEADER_LEN. These 10 bytes start the AEAD's associated data. */
size_t sts_frame_put_sealed_header(uint8_t *out, enum sts_frame_type type, uint64_t counter);

/* Handshake patterns and cipher suites, by their wire codes. */
enum sts_pattern { STS_PATTERN_NN = 1, STS_PATTERN_XX = 2, STS_PATTERN_IK = 3 };
enum sts_suite {
    STS_SUITE_CHACHAPOLY_SHA256 = 1,
    STS_SUITE_AESGCM_SHA256 = 2,
    STS_SUITE_CHACHAPOLY_SHA512 = 3,
    STS_SUITE_AESGCM_SHA512 = 4,
};

/* The suite byte of an INITREQ: pattern << 4 | suite. */
uint8_t sts_frame_suite_byte(enum sts_pattern pattern, enum sts_suite suite);

/* Splits a suite byte; STS_ERR_UNSUPPORTED when either code is unknown. */
int sts_frame_suite_parse(uint8_t suite_byte, enum sts_pattern *pattern, enum sts_suite *suite);

/* Number of handshake messages of a pattern (2 or 3). */
int sts_frame_pattern_messages(enum sts_pattern pattern);

/* The Noise protocol name of a suite byte into out (a NUL-terminated string
 * such as "Noise_XX_25519_ChaChaPoly_SHA256"). STS_ERR_UNSUPPORTED for an
 * unknown code, STS_ERR_TOO_BIG when out is too small (48 bytes always fit). */
int sts_frame_protocol_name(uint8_t suite_byte, char *out, size_t out_max);

/* The prologue both sides feed to Noise:
 *   "sts/1" 0x00 || u16 len || topic_i2r || u16 len || topic_r2i || suite byte
 * Its length is sts_frame_prologue_len(); out must hold that many bytes.
 * STS_ERR_TOO_BIG when a topic is longer than 65535 bytes. */
size_t sts_frame_prologue_len(size_t i2r_len, size_t r2i_len);
int sts_frame_prologue(uint8_t *out, const uint8_t *topic_i2r, size_t i2r_len,
                       const uint8_t *topic_r2i, size_t r2i_len, uint8_t suite_byte);

#endif
