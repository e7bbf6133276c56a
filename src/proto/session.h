/* One native STS session (docs/PROTOCOL.md): the Noise handshake over STS
 * frames, then authenticated transport with replay protection, key epochs,
 * handshake retransmission and re-handshake without disrupting a live
 * session.
 *
 * Pure: no sockets, no clock. The caller passes the monotonic time `now`
 * (seconds) into every call, hands in every frame received on the session's
 * incoming topic, calls sts_session_tick() by the deadline it returns, and
 * publishes what the emit callback gives it on the outgoing topic.
 *
 * Callbacks run inside the call that caused them. on_event may call
 * sts_session_send and sts_session_close, never sts_session_free; emit must
 * only hand the frame on (queue or publish it), never feed this session. */
#ifndef STS_PROTO_SESSION_H
#define STS_PROTO_SESSION_H

#include "proto/sts_frame.h"

#include <stddef.h>
#include <stdint.h>

enum sts_role { STS_ROLE_INITIATOR = 1, STS_ROLE_RESPONDER = 2 };

enum sts_session_event {
    STS_EVENT_ESTABLISHED, /* data: the peer's static key (STS_X25519_LEN
                              bytes); empty for NN.
                              Reported again when a re-handshake replaces the keys. */
    STS_EVENT_MESSAGE,     /* data: a plaintext, delivered once */
    STS_EVENT_CLOSED,      /* data: the reason text of the peer's KILL, or ours */
    STS_EVENT_FAILED,      /* data: a reason name; no session is left */
    STS_EVENT_REJECTED,    /* data: a reason name; an input or a parallel
                              handshake was refused, the session goes on */
};

enum sts_session_state {
    STS_STATE_IDLE,        /* initiator not started, responder listening */
    STS_STATE_HANDSHAKE,   /* first handshake in flight, no keys yet */
    STS_STATE_ESTABLISHED, /* transport keys (a re-handshake may run alongside) */
    STS_STATE_CLOSED,      /* closed locally, or the initiator got a KILL */
    STS_STATE_FAILED,      /* the initiator's handshake failed */
};

/* Pattern bits for allowed_patterns. */
#define STS_ALLOW(pattern) (1u << (pattern))

/* Defaults, used where a config field is 0. */
#define STS_SESSION_REKEY_MESSAGES ((uint64_t)1 << 20)
#define STS_SESSION_REKEY_SECONDS 3600.0
#define STS_SESSION_RETRANSMIT 1.0
#define STS_SESSION_RETRANSMIT_MAX 8.0
#define STS_SESSION_HANDSHAKE_TIMEOUT 10.0

/* Fixed protocol limits. */
#define STS_SESSION_TIMESTAMP_LEN 8    /* the payload of an IK INITREQ */
#define STS_SESSION_EPOCHS_AHEAD 4     /* receivers derive at most this many epochs forward */
#define STS_SESSION_EPOCH_GRACE 60.0   /* seconds the previous receive key is kept */
#define STS_SESSION_KILL_REASON_MAX 64 /* bytes of a KILL's reason text */

struct sts_session_config {
    enum sts_role role;
    /* Initiator: the pattern (0: IK when peer_static is set, else XX) and
     * the cipher suite (0: ChaChaPoly_SHA256). Ignored by a responder. */
    enum sts_pattern pattern;
    enum sts_suite suite;
    /* Responder: patterns it accepts (STS_ALLOW bits; 0: XX and IK). */
    unsigned allowed_patterns;
    const uint8_t *static_priv; /* our X25519 private key (copied);
                                   NULL only when every pattern used is NN */
    const uint8_t *static_pub;  /* its public key if the caller has it (copied),
                                   else computed once here */
    const uint8_t *peer_static; /* a pinned peer key (copied): only it is
                                   accepted; NULL to ask trust() */
    /* Accepts (non-zero) or refuses a peer static key; NULL refuses all. */
    int (*trust)(void *ctx, const uint8_t pub[STS_X25519_LEN]);
    /* Topics (copied): bound into the prologue and every frame's AD. */
    const char *topic_out, *topic_in;
    uint64_t rekey_messages; /* messages per key epoch (0: 2^20; at most 2^32) */
    double rekey_seconds;    /* epoch lifetime after its first message (0: 3600) */
    double retransmit;       /* first handshake retransmission delay (0: 1 s) */
    double retransmit_max;   /* the doubling stops here (0: 8 s) */
    double handshake_timeout;/* whole handshake (0: 10 s) */
    size_t max_frame;        /* largest frame accepted or sent (0: STS_FRAME_MAX_DEFAULT) */
    /* Initiator: the wall clock for the timestamp an IK INITREQ carries
     * (§ Replayed INITREQs), in any unit that only grows across restarts
     * (nanoseconds since 1970); NULL: a count from 1 in this session. */
    uint64_t (*timestamp)(void *ctx);
    /* Publishes a frame on topic_out. Required. */
    void (*emit)(void *ctx, const uint8_t *frame, size_t len);
    /* Reports an event; may be NULL. */
    void (*on_event)(void *ctx, enum sts_session_event ev, const uint8_t *data, size_t len);
    void *ctx;
};

/* Counters, per reason for rejections (rejected[STS_REASON_TIMEOUT] counts
 * handshakes that timed out). */
struct sts_session_stats {
    uint64_t rejected[STS_REASON_COUNT];
    uint64_t frames_in, frames_out;
    uint64_t messages_in, messages_out;
    uint64_t handshakes;   /* key sets that became current */
    uint64_t retransmits;  /* handshake frames re-sent, on tick or for a duplicate */
    uint64_t rekeys;       /* epoch changes, both directions */
    uint64_t resyncs_sent, resyncs_received;
};

struct sts_session; /* opaque */

/* A new session from cfg (nothing is sent yet). STS_ERR_INVALID for an
 * inconsistent config (missing callback, topic or key), STS_ERR_TOO_BIG for
 * a topic over 65535 bytes. */
int sts_session_new(struct sts_session **out, const struct sts_session_config *cfg);

/* Settings many sessions share (a listener's): one copy of cfg, its defaults
 * filled and its keys copied, instead of one per session. cfg's topics and
 * ctx are not used. Reference-counted: each session made from it holds it,
 * and sts_session_shared_free drops the caller's reference (the last one
 * wipes the keys). STS_ERR_INVALID as sts_session_new. */
struct sts_session_shared;
int sts_session_shared_new(struct sts_session_shared **out, const struct sts_session_config *cfg);
void sts_session_shared_free(struct sts_session_shared *sh);
size_t sts_session_shared_memory(void);
/* A new session with sh's settings on these topics (copied), its callbacks
 * called with ctx. Errors as sts_session_new. */
int sts_session_new_shared(struct sts_session **out, struct sts_session_shared *sh, const char *topic_out,
                           const char *topic_in, void *ctx);

/* Initiator: sends INITREQ. On an established session this starts a
 * re-handshake (fresh DH); the current keys serve until it completes.
 * STS_ERR_STATE for a responder or while a handshake is in flight;
 * STS_ERR_NOMEM, STS_ERR_RNG or STS_ERR_CRYPTO when we fail ourselves. */
int sts_session_start(struct sts_session *s, double now);

/* Takes one frame received on topic_in. Returns 0 when it was accepted
 * (including a duplicate handshake message answered from the cache), else
 * the negative sts_error of the reason, which is counted and reported as
 * STS_EVENT_REJECTED. For STS_REASON_INTERNAL (the frame was dropped
 * because we failed, not because of its content) that is the failure's own
 * code: STS_ERR_NOMEM, STS_ERR_RNG or STS_ERR_CRYPTO. No input ends a
 * session except an authentic KILL. */
int sts_session_receive(struct sts_session *s, double now, const uint8_t *frame, size_t len);

/* Whether frame is a retransmission of the handshake message the session
 * took last, which it answers from its cache (no DH). */
int sts_session_is_retransmission(const struct sts_session *s, const uint8_t *frame, size_t len);

/* An INITREQ's length without the cookie a loaded responder asked it to
 * return (§ Cookies), setting *cookie to it (STS_FRAME_COOKIE_LEN bytes), or
 * len and *cookie NULL when it carries none. Any other frame: len, NULL. */
size_t sts_initreq_cookie(const uint8_t *frame, size_t len, const uint8_t **cookie);

/* Encrypts and emits one message (an empty one is a keepalive: the peer does
 * not deliver it). STS_ERR_STATE without transport keys, STS_ERR_TOO_BIG over
 * the frame limit, STS_ERR_EXPIRED when the counter space is used up,
 * STS_ERR_NOMEM when the session's frame buffer cannot grow to this size
 * (it is kept: messages up to the largest sent so far allocate nothing). */
int sts_session_send(struct sts_session *s, double now, const uint8_t *pt, size_t len);

/* Retransmissions, timeouts, time-based rekey and key expiry due by now.
 * Returns the time of the next deadline (INFINITY when none). */
double sts_session_tick(struct sts_session *s, double now);

/* Sends an authenticated KILL carrying reason (truncated to
 * STS_SESSION_KILL_REASON_MAX bytes) when keys exist, wipes every key and
 * enters STS_STATE_CLOSED. A closed initiator may start again. */
int sts_session_close(struct sts_session *s, double now, const char *reason);

enum sts_session_state sts_session_state(const struct sts_session *s);
const struct sts_session_stats *sts_session_stats(const struct sts_session *s);

/* The current peer's static key: 0, or STS_ERR_STATE when there is none
 * (no session, or NN). */
int sts_session_peer_static(const struct sts_session *s, uint8_t out[STS_X25519_LEN]);

/* 1 when the current keys come from a handshake that authenticated the
 * peer (XX, IK), 0 for NN or without keys. */
int sts_session_authenticated(const struct sts_session *s);

/* Bytes this session occupies: the struct plus its heap (topics, the
 * message buffers, the previous epoch's key while kept, any handshake in
 * flight), and its settings unless other sessions share them. */
size_t sts_session_memory(const struct sts_session *s);

/* Wipes every secret and frees s (NULL is fine). */
void sts_session_free(struct sts_session *s);

#endif
