/* The original STS shell's wire protocol (DESIGN.md §4), for interoperating
 * with it: one side (master or slave) as a small explicit state machine over
 * buffers, no sockets.
 *
 *   master                          slave
 *   INITREQ:request        ->
 *                          <-       INITACK:
 *   KEYREQ:X<hex>Y         ->
 *                          <-       KEYACK:
 *                          <-       KEYREQ:X<hex>Y
 *   KEYACK:                ->
 *   AES-256(ENC:... / KILL:) both ways, no length field, no integrity.
 *
 * The AES key is the raw X25519 shared secret. In CBC mode one IV chain is
 * shared by both directions: it starts at key[0:16] and then is the last
 * ciphertext block processed, sent or received.
 *
 * Where we differ from the original, on purpose:
 * - every shared secret works (the original used strlen on the key and hung
 *   when it contained a 0x00 byte);
 * - a rejected frame changes nothing: it never advances the CBC chain (the
 *   original advanced it on any frame, so one stray frame desynchronised it);
 * - the one trailing space the original appends to a message is removed on
 *   receipt, so send("a b") arrives as "a b";
 * - a KEYREQ with a non-empty Y (the older secp256k1 variant) is refused
 *   with STS_ERR_UNSUPPORTED: that variant is not implemented;
 * - a slave takes a new INITREQ in any state: a repeat while it waits for
 *   the KEYREQ is answered again, and one after its KEYREQ went out (or in
 *   a session) starts the handshake over with a fresh key pair, as from a
 *   restarted master; a master ignores a repeated INITACK. The INITREQ is
 *   plain text anyone on the topic can send, so a session is restarted at
 *   most once per STS_LEGACY_RESTART_INTERVAL (STS_LEGACY_RESTART_TOO_SOON);
 * - with the peer's topic set, a frame the original could not receive is
 *   refused (STS_LEGACY_PEER_LIMIT) instead of killing its session.
 * This keeps the original's weaknesses we cannot fix without breaking it:
 * no authentication of the peer, no integrity, no replay protection. */
#ifndef STS_PROTO_LEGACY_STS_H
#define STS_PROTO_LEGACY_STS_H

#include "crypto/sizes.h"

#include <stddef.h>
#include <stdint.h>

#define STS_LEGACY_MAX_FRAME 2048     /* the largest frame accepted or built */
#define STS_LEGACY_MAX_HANDSHAKE 80   /* room for "KEYREQ:X" + 64 digits + "Y" */
/* The longest message in one frame: "ENC:" + message + " " fills it. */
#define STS_LEGACY_MAX_MESSAGE (STS_LEGACY_MAX_FRAME - 5)

/* The longest payload the original receives on a topic of n bytes: 1019 -
 * n (observed; a longer frame ends its session, unannounced). That is its
 * 1024-byte packet buffer less the 5 bytes of the fixed header, a 2-byte
 * remaining length and the topic's length. */
#define STS_LEGACY_ORIGINAL_RECEIVE(n) (1019 - (n))

/* Seconds between two restarts of a slave's session by INITREQ: the
 * handshake timeout, so a master restarted twice still gets through. */
#define STS_LEGACY_RESTART_INTERVAL 3.0

enum sts_legacy_role { STS_LEGACY_MASTER, STS_LEGACY_SLAVE };

/* nosec: no handshake, messages travel as plain text (the config's
 * sts_mode = nosec). ecb, cbc: the config's aes = ecb / cbc. */
enum sts_legacy_mode { STS_LEGACY_NOSEC, STS_LEGACY_ECB, STS_LEGACY_CBC };

enum sts_legacy_state {
    STS_LEGACY_IDLE,         /* master, before sts_legacy_start */
    STS_LEGACY_WAIT_INITREQ, /* slave */
    STS_LEGACY_WAIT_INITACK, /* master */
    STS_LEGACY_WAIT_KEYACK,  /* either: our KEYREQ is out, its ack is due */
    STS_LEGACY_WAIT_KEYREQ,  /* either: the peer's public key is due */
    STS_LEGACY_ESTABLISHED,
    STS_LEGACY_CLOSED,       /* KILL sent or received; the keys are wiped */
};

/* Why the last call failed: each rejection has its own reason, so a log or
 * a test can tell them apart. sts_legacy_reason_text describes one. */
enum sts_legacy_reason {
    STS_LEGACY_OK,
    STS_LEGACY_FRAME_TOO_BIG,     /* over STS_LEGACY_MAX_FRAME */
    STS_LEGACY_NO_COLON,          /* handshake frame without "HEADER:" */
    STS_LEGACY_UNKNOWN_HEADER,
    STS_LEGACY_BAD_BODY,          /* e.g. INITREQ:other, KEYACK:x */
    STS_LEGACY_WRONG_STATE,       /* a known frame, out of order */
    STS_LEGACY_KEY_SYNTAX,        /* KEYREQ body not X<hex>Y */
    STS_LEGACY_KEY_LENGTH,        /* not 1 to 64 hex digits */
    STS_LEGACY_KEY_HEX,           /* a digit that is not hex */
    STS_LEGACY_KEY_Y,             /* non-empty Y: secp256k1 variant */
    STS_LEGACY_KEY_LOW_ORDER,     /* the peer's key gives no secret */
    STS_LEGACY_CIPHER_LENGTH,     /* not a non-zero multiple of 16 */
    STS_LEGACY_BAD_PLAINTEXT,     /* no ENC:/KILL: after decryption */
    STS_LEGACY_NOT_ESTABLISHED,   /* seal or kill before the handshake */
    STS_LEGACY_SESSION_CLOSED,    /* anything after KILL */
    STS_LEGACY_NOSEC_KILL,        /* nosec has no KILL */
    STS_LEGACY_MESSAGE_TOO_BIG,   /* over STS_LEGACY_MAX_MESSAGE, or out buffer */
    STS_LEGACY_MESSAGE_NUL,       /* a NUL would be lost in the zero padding */
    STS_LEGACY_PEER_LIMIT,        /* the frame is over what the original receives */
    STS_LEGACY_CRYPTO_FAILED,     /* the DRBG or AES failed */
    STS_LEGACY_RESTART_TOO_SOON,  /* INITREQ in a session restarted just before */
};

struct sts_legacy {
    enum sts_legacy_role role;
    enum sts_legacy_mode mode;
    enum sts_legacy_state state;
    enum sts_legacy_reason reason; /* why the last failing call failed */
    uint8_t priv[STS_X25519_LEN], pub[STS_X25519_LEN]; /* our X25519 key pair, RFC 7748 order */
    uint8_t key[STS_KEY_LEN];       /* AES-256 key = the raw shared secret */
    uint8_t iv[STS_AES_BLOCK_LEN];  /* CBC: the chain shared by both directions */
    size_t max_frame;               /* the longest frame the peer receives */
    size_t topic_len;               /* of the topic frames go out on; 0: not set */
    unsigned long restarts;         /* slave: sessions restarted by INITREQ */
    double restarted_at;            /* CLOCK_MONOTONIC seconds of the last one */
};

enum sts_legacy_event {
    STS_LEGACY_NONE,        /* nothing for the application */
    STS_LEGACY_READY,       /* the handshake just completed */
    STS_LEGACY_MESSAGE,     /* out->msg holds a message from the peer */
    STS_LEGACY_KILLED,      /* the peer closed the session */
    STS_LEGACY_RESTARTED,   /* slave: a new INITREQ dropped the keys; handshaking again */
};

/* What one step produced: frames to publish, in order, and an event. */
struct sts_legacy_output {
    enum sts_legacy_event event;
    unsigned nframes;
    struct {
        size_t len;
        uint8_t data[STS_LEGACY_MAX_HANDSHAKE];
    } frames[2];
    size_t msglen;
    char msg[STS_LEGACY_MAX_FRAME + 1]; /* NUL-terminated as well */
};

/* Sets up one side. priv is our X25519 private key, or NULL for a fresh one
 * from the DRBG (a fixed key is for tests and fuzzing). A master starts IDLE
 * (call sts_legacy_start), a slave waits for INITREQ, nosec is ESTABLISHED
 * at once. Returns 0 or a negative sts_error. */
int sts_legacy_init(struct sts_legacy *ctx, enum sts_legacy_role role,
                    enum sts_legacy_mode mode, const uint8_t priv[STS_X25519_LEN]);

/* The frames go out on a topic of topic_len bytes, which the original
 * receives: from now on no frame over its limit there is built, neither by
 * sts_legacy_seal nor sts_legacy_kill (STS_LEGACY_ORIGINAL_RECEIVE, in whole
 * AES blocks unless nosec). STS_ERR_TOO_BIG if even a handshake frame would
 * not fit. */
int sts_legacy_set_peer_topic(struct sts_legacy *ctx, size_t topic_len);

/* The longest message sts_legacy_seal takes: "ENC:", it and " " fill at
 * most the longest frame, in whole blocks. */
size_t sts_legacy_max_message(const struct sts_legacy *ctx);

/* Drops the session, if any, and starts the handshake over with a fresh key
 * pair from the DRBG (a handshake that stalled, say): a master emits
 * INITREQ and waits for INITACK, a slave waits for INITREQ. Nothing to do in
 * nosec. Returns 0 or a negative sts_error (the context then unchanged). */
int sts_legacy_restart(struct sts_legacy *ctx, struct sts_legacy_output *out);

/* Wipes every key; the context may then be initialised again. */
void sts_legacy_free(struct sts_legacy *ctx);

/* Master: emits INITREQ. Slave and nosec: nothing to do, returns 0 with no
 * frame. STS_ERR_STATE if already started. */
int sts_legacy_start(struct sts_legacy *ctx, struct sts_legacy_output *out);

/* One frame from the peer: fills out with the frames to send back (the
 * slave answers a KEYREQ with two) and an event. Returns 0, or a negative
 * sts_error with ctx->reason set; a rejected frame changes nothing else in
 * ctx (in CBC mode the chain stays where it was). */
int sts_legacy_receive(struct sts_legacy *ctx, const uint8_t *frame, size_t len,
                       struct sts_legacy_output *out);

/* Whether sts_legacy_seal would take msg now: the session is up, msg has
 * no NUL and fits (sts_legacy_max_message). Returns 0 or a negative
 * sts_error with ctx->reason set; changes nothing else. */
int sts_legacy_check(struct sts_legacy *ctx, const char *msg, size_t len);

/* Builds the frame carrying msg (len bytes, no NUL) into out (room for
 * outmax). Returns the frame length or a negative sts_error. */
int sts_legacy_seal(struct sts_legacy *ctx, const char *msg, size_t len,
                    uint8_t *out, size_t outmax);

/* Builds the KILL frame and closes the session (keys wiped). Returns the
 * frame length or a negative sts_error. */
int sts_legacy_kill(struct sts_legacy *ctx, uint8_t *out, size_t outmax);

const char *sts_legacy_reason_text(enum sts_legacy_reason reason);

/* The KEYREQ codec, exposed for tests. format writes "KEYREQ:X<hex>Y" and a
 * NUL (out has room for STS_LEGACY_MAX_HANDSHAKE) and returns its length.
 * parse reads such a frame into a little-endian public key; on failure it
 * returns a negative sts_error and, if why is not NULL, the reason. */
size_t sts_legacy_keyreq_format(char *out, const uint8_t pub[STS_X25519_LEN]);
int sts_legacy_keyreq_parse(uint8_t pub[STS_X25519_LEN], const uint8_t *frame, size_t len,
                            enum sts_legacy_reason *why);

#endif
