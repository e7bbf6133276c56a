/* The native STS session state machine: docs/PROTOCOL.md is its
 * specification, and the section names below (§) refer to it.
 *
 * A session holds at most two key sets: `cur`, the one it sends with, and,
 * inside a handshake attempt, `pending` keys that wait for proof that the
 * peer holds them too (its first valid ENC) before they replace `cur`. */
#include "proto/session.h"
#include "crypto/x25519.h"
#include "crypto/random.h"
#include "proto/noise.h"
#include "proto/replay.h"
#include "util/error.h"

#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The receive side of one key epoch. */
struct rx_slot {
    struct sts_noise_cipher key; /* has_key == 0: the slot is empty */
    uint32_t epoch;
    struct sts_replay window;
};

/* Transport keys of one handshake (§ Transport, § Key epochs). */
struct keyset {
    struct sts_noise_cipher tx;
    uint64_t tx_next;       /* the next counter to send */
    uint64_t tx_epoch_msgs; /* messages sent in the current epoch */
    double tx_epoch_start;  /* when its first message was sent */
    struct rx_slot rx;      /* the newest epoch received */
    /* The one before it (or the previous session's), until prev_until: on
     * the heap, as it lives only for a grace time after a change of keys
     * (NULL otherwise), and a listener holds thousands of sessions. */
    struct rx_slot *prev;
    double prev_until;
    double confirm_by;      /* !confirmed: dropped at this time */
    uint8_t peer[STS_X25519_LEN];
    uint8_t has_peer, live, confirmed;
};

/* Where a handshake attempt stands (§ State machines). */
enum phase {
    AWAIT_INITACK, /* initiator: INITREQ sent */
    AWAIT_AUTHREQ, /* XX responder: INITACK sent */
    AWAIT_CONFIRM, /* we sent the last handshake message: wait for a valid ENC */
    DONE,          /* we received the last one: only answer its duplicates */
};

struct attempt {
    struct sts_noise_hs *noise; /* NULL once split */
    enum phase phase;
    uint8_t suite;
    uint8_t promoted;      /* its keys became cur before confirmation */
    uint8_t e[STS_X25519_LEN]; /* our ephemeral private key, to rebuild the handshake */
    uint64_t stamp;        /* an IK INITREQ's timestamp (§ Replayed INITREQs) */
    uint8_t cookie[STS_FRAME_COOKIE_LEN]; /* initiator: the responder's, when it asked (§ Cookies) */
    uint8_t has_cookie;
    double expires, resend_at, interval;
    double answered_at;    /* a duplicate was last answered from the cache */
    double cookie_at;      /* initiator: a COOKIE last made us resend at once */
    enum sts_reason last_reject;
    uint8_t in[STS_FRAME_HANDSHAKE_MAX];  /* the last handshake frame taken in */
    size_t in_len;
    uint8_t out[STS_FRAME_HANDSHAKE_MAX]; /* our latest frame: resent while waiting */
    size_t out_len;
    struct keyset pending;
};

/* A topic, stored after room for a frame's sealed header: filling that room
 * makes the associated data of a frame on this topic (§ Transport). */
struct topic {
    uint8_t *ad;
    size_t len;
};

/* The buffers messages pass through: plaintexts being delivered (wiped
 * after) and frames being sent. The process has one of each, shared by all
 * its sessions (it is single-threaded: one loop), so that neither a message
 * nor one of a gateway's thousands of sessions needs memory of its own for
 * them. A buffer is lent for one call; a call nested in it (a message
 * handler that makes another session receive) gets one of its own for that
 * call. The shared ones keep up to SCRATCH_KEEP bytes between messages. */
#define SCRATCH_KEEP STS_FRAME_MAX_DEFAULT
struct scratch {
    uint8_t *p;
    size_t cap;
    unsigned lent : 1, shared : 1;
};
static struct scratch plaintexts = { .shared = 1 }, frames = { .shared = 1 };

/* What sessions made alike share (a listener's thousands): one copy of the
 * config and the keys, reference-counted. */
struct sts_session_shared {
    struct sts_session_config cfg; /* defaults filled; pointers to caller memory cleared */
    uint8_t static_priv[STS_X25519_LEN], static_pub[STS_X25519_LEN], pinned[STS_X25519_LEN];
    uint8_t has_static, has_pinned;
    unsigned refs;
};

struct sts_session {
    struct sts_session_shared *sh;
    void *ctx;                    /* the callbacks' */
    enum sts_session_state ended; /* CLOSED or FAILED; IDLE while not ended */
    struct topic out, in;         /* one allocation, at out.ad */
    struct keyset cur;
    struct attempt *hs;
    int failure; /* the sts_error behind the last STS_REASON_INTERNAL */
    double established_at, last_resync;
    /* Initiator: the last timestamp sent; responder: the greatest one of an
     * INITREQ that authenticated, or that of the last attempt a live frame
     * confirmed (a peer whose clock went back), below which an INITREQ may
     * not replace an attempt in flight. */
    uint64_t last_stamp;
    struct sts_session_stats stats;
};

static void report(struct sts_session *s, enum sts_session_event ev, const void *data, size_t len)
{
    if (s->sh->cfg.on_event)
        s->sh->cfg.on_event(s->ctx, ev, data, len);
}

static void report_reason(struct sts_session *s, enum sts_session_event ev, enum sts_reason r)
{
    const char *name = sts_reason_name(r);
    report(s, ev, name, strlen(name));
}

static void emit(struct sts_session *s, const uint8_t *frame, size_t len)
{
    s->stats.frames_out++;
    s->sh->cfg.emit(s->ctx, frame, len);
}

static int is_initiator(const struct sts_session *s)
{
    return s->sh->cfg.role == STS_ROLE_INITIATOR;
}

static int same_key(const uint8_t a[STS_X25519_LEN], const uint8_t b[STS_X25519_LEN])
{
    return mbedtls_ct_memcmp(a, b, STS_X25519_LEN) == 0;
}

/* Our own failure (memory, the random generator, a primitive), which must
 * not count as the input's: its code is kept for sts_session_receive. */
static int is_internal(int err)
{
    return err == STS_ERR_NOMEM || err == STS_ERR_RNG || err == STS_ERR_CRYPTO;
}

static enum sts_reason internal(struct sts_session *s, int err)
{
    s->failure = err;
    return STS_REASON_INTERNAL;
}

static void scratch_free(struct scratch *b)
{
    if (b->p)
        mbedtls_platform_zeroize(b->p, b->cap);
    free(b->p);
    b->p = NULL;
    b->cap = 0;
}

/* Lends room for len bytes: shared, or own (empty) when shared is lent.
 * A buffer that must grow is replaced, the old one wiped rather than
 * realloc'd, which could leave a copy behind. NULL when out of memory. */
static struct scratch *scratch_lend(struct scratch *shared, struct scratch *own, size_t len)
{
    struct scratch *b = shared->lent ? own : shared;
    if (len > b->cap) {
        uint8_t *p = malloc(len);
        if (!p)
            return NULL;
        scratch_free(b);
        b->p = p;
        b->cap = len;
    }
    b->lent = 1;
    return b;
}

/* Takes back a lent buffer whose first len bytes were used: wiped, and
 * freed if it is not a shared one or is over SCRATCH_KEEP. */
static void scratch_return(struct scratch *b, size_t len)
{
    if (len)
        mbedtls_platform_zeroize(b->p, len);
    b->lent = 0;
    if (!b->shared || b->cap > SCRATCH_KEEP)
        scratch_free(b);
}

/* ---- key sets ---------------------------------------------------------- */

static void slot_wipe(struct rx_slot *slot)
{
    mbedtls_platform_zeroize(slot, sizeof *slot);
}

static void prev_free(struct keyset *ks)
{
    if (ks->prev) {
        slot_wipe(ks->prev);
        free(ks->prev);
        ks->prev = NULL;
    }
}

/* An empty previous-epoch slot, or NULL when out of memory: the previous
 * epoch's late frames are then lost, nothing else. */
static struct rx_slot *prev_slot(struct keyset *ks)
{
    if (ks->prev)
        slot_wipe(ks->prev);
    else
        ks->prev = calloc(1, sizeof *ks->prev);
    return ks->prev;
}

static void keyset_wipe(struct keyset *ks)
{
    prev_free(ks);
    mbedtls_platform_zeroize(ks, sizeof *ks);
}

/* *to takes over from's keys (to holds none), leaving from empty. */
static void keyset_move(struct keyset *to, struct keyset *from)
{
    *to = *from;
    mbedtls_platform_zeroize(from, sizeof *from);
}

static void keyset_init(struct keyset *ks, const struct sts_noise_cipher *tx,
                        const struct sts_noise_cipher *rx, const uint8_t *peer)
{
    keyset_wipe(ks);
    ks->tx = *tx;
    ks->rx.key = *rx;
    if (peer) {
        memcpy(ks->peer, peer, sizeof ks->peer);
        ks->has_peer = 1;
    }
    ks->live = 1;
}

/* The previous receive key goes when its grace time is over, or when the
 * current epoch has seen more than a window of counters: an older frame
 * would then be out of the window anyway. */
static void expire_prev(struct keyset *ks, double now)
{
    uint64_t base = (uint64_t)ks->rx.epoch << 32;
    if (ks->prev && (now >= ks->prev_until || ks->rx.window.top > base + STS_REPLAY_WINDOW))
        prev_free(ks);
}

/* Moves the sender to the next epoch: REKEY, counter to the epoch's start. */
static int tx_next_epoch(struct sts_session *s, struct keyset *ks)
{
    uint64_t epoch = ks->tx_next >> 32;
    int err = sts_noise_rekey(&ks->tx);
    if (err)
        return err;
    ks->tx_next = (epoch + 1) << 32;
    ks->tx_epoch_msgs = 0;
    s->stats.rekeys++;
    return 0;
}

/* Whether the sending epoch is used up. The last epoch has no successor:
 * its counters simply run out. */
static int tx_epoch_due(const struct sts_session *s, const struct keyset *ks, double now)
{
    if (ks->tx_epoch_msgs == 0 || ks->tx_next >> 32 == UINT32_MAX)
        return 0;
    return ks->tx_epoch_msgs >= s->sh->cfg.rekey_messages ||
           now - ks->tx_epoch_start >= s->sh->cfg.rekey_seconds;
}

/* Seals pt as a frame of type (ENC or KILL) into out (len + 26 bytes). */
static int seal(struct sts_session *s, struct keyset *ks, double now, enum sts_frame_type type,
                const uint8_t *pt, size_t len, uint8_t *out, size_t *out_len)
{
    int err = tx_epoch_due(s, ks, now) ? tx_next_epoch(s, ks) : 0;
    if (err)
        return err;
    if (ks->tx_next == UINT64_MAX)
        return STS_ERR_EXPIRED;
    uint64_t n = ks->tx_next;
    sts_frame_put_sealed_header(out, type, n);
    memcpy(s->out.ad, out, STS_FRAME_SEALED_HEADER_LEN);
    err = sts_noise_encrypt_at(&ks->tx, n, s->out.ad, STS_FRAME_SEALED_HEADER_LEN + s->out.len,
                               pt, len, out + STS_FRAME_SEALED_HEADER_LEN);
    if (err)
        return err;
    if (ks->tx_epoch_msgs++ == 0)
        ks->tx_epoch_start = now;
    ks->tx_next = n + 1;
    *out_len = len + STS_FRAME_OVERHEAD;
    return 0;
}

/* Decrypts f with one slot's key, after the cheap replay check. */
static enum sts_reason slot_open(struct sts_session *s, const struct rx_slot *slot,
                                 const struct sts_frame *f, const uint8_t *frame, uint8_t *pt)
{
    if (sts_replay_check(&slot->window, f->counter))
        return STS_REASON_REPLAY;
    memcpy(s->in.ad, frame, STS_FRAME_SEALED_HEADER_LEN);
    int err = sts_noise_decrypt_at(&slot->key, f->counter, s->in.ad,
                                   STS_FRAME_SEALED_HEADER_LEN + s->in.len, f->body, f->body_len, pt);
    if (err)
        return is_internal(err) ? internal(s, err) : STS_REASON_AUTH;
    return STS_REASON_NONE;
}

/* A frame from a later epoch: derive its key forward on a copy, and keep it
 * only if the frame authenticates (forgeries must not move epochs). */
static enum sts_reason open_ahead(struct sts_session *s, struct keyset *ks, double now,
                                  const struct sts_frame *f, const uint8_t *frame, uint8_t *pt)
{
    uint32_t epoch = (uint32_t)(f->counter >> 32);
    struct rx_slot next = { .key = ks->rx.key, .epoch = epoch };
    struct sts_noise_cipher before = ks->rx.key; /* the key of epoch - 1 */
    enum sts_reason r = STS_REASON_NONE;

    for (uint32_t e = ks->rx.epoch; e < epoch && !r; e++) {
        before = next.key;
        int err = sts_noise_rekey(&next.key);
        if (err)
            r = internal(s, err);
    }
    if (!r)
        r = slot_open(s, &next, f, frame, pt);
    struct rx_slot *prev = r ? NULL : prev_slot(ks);
    if (prev && epoch == ks->rx.epoch + 1) {
        *prev = ks->rx;
    } else if (prev) {
        prev->key = before;
        prev->epoch = epoch - 1;
    }
    if (!r) {
        ks->rx = next;
        ks->prev_until = now + STS_SESSION_EPOCH_GRACE;
        s->stats.rekeys++;
    }
    mbedtls_platform_zeroize(&next, sizeof next);
    mbedtls_platform_zeroize(&before, sizeof before);
    return r;
}

/* Opens an ENC or KILL frame with a key set (§ Receiving). */
static enum sts_reason keyset_open(struct sts_session *s, struct keyset *ks, double now,
                                   const struct sts_frame *f, const uint8_t *frame, uint8_t *pt)
{
    uint32_t epoch = (uint32_t)(f->counter >> 32);
    enum sts_reason r = STS_REASON_STALE_EPOCH;

    expire_prev(ks, now);
    struct rx_slot *slots[2] = { &ks->rx, ks->prev };
    for (int i = 0; i < 2; i++) {
        struct rx_slot *slot = slots[i];
        if (!slot || !slot->key.has_key || slot->epoch != epoch)
            continue;
        enum sts_reason ri = slot_open(s, slot, f, frame, pt);
        if (!ri) {
            sts_replay_mark(&slot->window, f->counter);
            return STS_REASON_NONE;
        }
        if (ri == STS_REASON_INTERNAL) /* no other key's verdict may stand for it */
            return ri;
        if (r != STS_REASON_REPLAY)
            r = ri;
    }
    /* A later epoch (prev may hold the same number when it is the previous
     * session's key, hence tried after the slots). */
    if (epoch > ks->rx.epoch && epoch - ks->rx.epoch <= STS_SESSION_EPOCHS_AHEAD) {
        enum sts_reason ri = open_ahead(s, ks, now, f, frame, pt);
        if (!ri) {
            sts_replay_mark(&ks->rx.window, f->counter);
            return STS_REASON_NONE;
        }
        if (r == STS_REASON_STALE_EPOCH || ri == STS_REASON_INTERNAL)
            r = ri;
    }
    return r;
}

/* ---- the current session ------------------------------------------------ */

/* ks replaces cur. The old receive key stays as `prev` for the grace time,
 * so frames the peer sent before switching still arrive. The caller
 * announces it once done with its own state (callbacks may close). */
static void promote(struct sts_session *s, struct keyset *ks, double now)
{
    struct rx_slot *prev = s->cur.live ? prev_slot(ks) : NULL;
    if (prev) {
        *prev = s->cur.rx;
        ks->prev_until = now + STS_SESSION_EPOCH_GRACE;
    }
    keyset_wipe(&s->cur);
    keyset_move(&s->cur, ks);
    s->established_at = now;
    s->stats.handshakes++;
}

static void announce(struct sts_session *s)
{
    if (s->cur.live)
        report(s, STS_EVENT_ESTABLISHED, s->cur.peer, s->cur.has_peer ? sizeof s->cur.peer : 0);
}

static void attempt_free(struct attempt *a)
{
    if (!a)
        return;
    sts_noise_hs_free(a->noise);
    keyset_wipe(&a->pending);
    mbedtls_platform_zeroize(a, sizeof *a);
    free(a);
}

static void drop_attempt(struct sts_session *s)
{
    attempt_free(s->hs);
    s->hs = NULL;
}

/* The session has no keys left. A responder listens again unless closed
 * locally; an initiator ends in `initiator_state`. */
static void drop_keys(struct sts_session *s, enum sts_session_state initiator_state)
{
    drop_attempt(s);
    keyset_wipe(&s->cur);
    if (is_initiator(s))
        s->ended = initiator_state;
}

/* Whether a peer static key may be the other end (§ Identities): the same
 * identity as a live session's, then the pin, else the trust callback. */
static int peer_acceptable(struct sts_session *s, const uint8_t pub[STS_X25519_LEN])
{
    if (s->cur.live && s->cur.has_peer && !same_key(pub, s->cur.peer))
        return 0;
    if (s->sh->has_pinned)
        return same_key(pub, s->sh->pinned);
    return s->sh->cfg.trust && s->sh->cfg.trust(s->ctx, pub);
}

/* ---- handshake attempts ------------------------------------------------ */

/* Why a handshake message could not be read or answered: the peer's
 * message, unless the failure was ours. */
static enum sts_reason noise_reason(struct sts_session *s, int err)
{
    if (is_internal(err))
        return internal(s, err);
    switch (err) {
    case STS_ERR_AUTH:
    case STS_ERR_KEY: return STS_REASON_AUTH;
    case STS_ERR_TRUNCATED: return STS_REASON_TRUNCATED;
    default: return STS_REASON_MALFORMED;
    }
}

/* A Noise HandshakeState for the attempt's suite, with our ephemeral key
 * fixed so that the handshake can be rebuilt message for message. */
static int attempt_open_noise(struct sts_session *s, struct attempt *a)
{
    enum sts_pattern pattern;
    enum sts_suite suite;
    char name[48];
    int err = sts_frame_suite_parse(a->suite, &pattern, &suite);
    if (!err)
        err = sts_frame_protocol_name(a->suite, name, sizeof name);
    if (err)
        return err;

    const struct topic *i2r = is_initiator(s) ? &s->out : &s->in;
    const struct topic *r2i = is_initiator(s) ? &s->in : &s->out;
    size_t plen = sts_frame_prologue_len(i2r->len, r2i->len);
    uint8_t *prologue = malloc(plen);
    if (!prologue)
        return STS_ERR_NOMEM;
    err = sts_frame_prologue(prologue, i2r->ad + STS_FRAME_SEALED_HEADER_LEN, i2r->len,
                             r2i->ad + STS_FRAME_SEALED_HEADER_LEN, r2i->len, a->suite);

    struct sts_noise_keys keys = {
        .s = pattern != STS_PATTERN_NN ? s->sh->static_priv : NULL,
        .s_pub = pattern != STS_PATTERN_NN ? s->sh->static_pub : NULL,
        .e = a->e,
        .rs = is_initiator(s) && pattern == STS_PATTERN_IK ? s->sh->pinned : NULL,
    };
    if (!err)
        err = sts_noise_hs_new(&a->noise, name, is_initiator(s), prologue, plen, &keys);
    free(prologue);
    return err;
}

/* Only an IK INITREQ has a payload: its timestamp (§ Replayed INITREQs). */
static size_t payload_len(const struct attempt *a, enum sts_frame_type type)
{
    return type == STS_FRAME_INITREQ && a->suite >> 4 == STS_PATTERN_IK ? STS_SESSION_TIMESTAMP_LEN : 0;
}

/* The cookie, if the responder asked for one, follows the Noise message. */
static void attach_cookie(struct attempt *a)
{
    if (!a->has_cookie || a->out_len + STS_FRAME_COOKIE_LEN > sizeof a->out)
        return;
    memcpy(a->out + a->out_len, a->cookie, STS_FRAME_COOKIE_LEN);
    a->out_len += STS_FRAME_COOKIE_LEN;
}

/* Writes the next handshake message as a frame of type into a->out. */
static int attempt_write(struct attempt *a, enum sts_frame_type type)
{
    uint8_t payload[STS_SESSION_TIMESTAMP_LEN];
    size_t head = sts_frame_put_header(a->out, type), len, plen = payload_len(a, type);
    if (type == STS_FRAME_INITREQ)
        a->out[head++] = a->suite;
    for (size_t i = 0; i < plen; i++)
        payload[i] = (uint8_t)(a->stamp >> (56 - 8 * i));
    int err = sts_noise_hs_write(a->noise, payload, plen, a->out + head, sizeof a->out - head, &len);
    a->out_len = err ? 0 : head + len;
    if (!err && type == STS_FRAME_INITREQ)
        attach_cookie(a);
    return err;
}

/* Reads a handshake message; an IK INITREQ's timestamp goes to a->stamp. */
static int attempt_read(struct attempt *a, const struct sts_frame *f, enum sts_frame_type type)
{
    uint8_t payload[STS_SESSION_TIMESTAMP_LEN];
    size_t want = payload_len(a, type), plen;
    int err = sts_noise_hs_read(a->noise, f->body, f->body_len, payload, want, &plen);
    if (!err && plen != want)
        err = STS_ERR_INVALID;
    a->stamp = 0;
    for (size_t i = 0; !err && i < plen; i++)
        a->stamp = a->stamp << 8 | payload[i];
    mbedtls_platform_zeroize(payload, sizeof payload);
    return err;
}

/* A failed read leaves the HandshakeState unusable. Rebuild it to where it
 * stood: same ephemeral key, same messages, so the same bytes and hash; the
 * genuine message may still come. */
static int attempt_rebuild(struct sts_session *s, struct attempt *a)
{
    sts_noise_hs_free(a->noise);
    a->noise = NULL;
    int err = attempt_open_noise(s, a);
    if (err || is_initiator(s))
        return err ? err : attempt_write(a, STS_FRAME_INITREQ);
    struct sts_frame f;
    enum sts_reason why;
    err = sts_frame_decode(&f, a->in, a->in_len, 0, &why);
    if (!err)
        err = attempt_read(a, &f, STS_FRAME_INITREQ);
    return err ? err : attempt_write(a, STS_FRAME_INITACK);
}

static int attempt_new(struct attempt **out, struct sts_session *s, double now, uint8_t suite)
{
    struct attempt *a = calloc(1, sizeof *a);
    *out = NULL;
    if (!a)
        return STS_ERR_NOMEM;
    a->suite = suite;
    a->expires = now + s->sh->cfg.handshake_timeout;
    /* Random bytes make an X25519 private key (clamped when used). */
    int err = sts_random(a->e, sizeof a->e);
    if (!err)
        err = attempt_open_noise(s, a);
    if (err) {
        attempt_free(a);
        return err;
    }
    *out = a;
    return 0;
}

/* Sends a->out and schedules its retransmission. */
static void attempt_send(struct sts_session *s, struct attempt *a, double now)
{
    a->interval = s->sh->cfg.retransmit;
    a->resend_at = now + a->interval;
    emit(s, a->out, a->out_len);
}

static int attempt_waits(const struct attempt *a)
{
    return a->phase != DONE;
}

/* Only an initiator retransmits on its own: a responder answers each
 * (re-sent) message once, so that input it cannot authenticate yet never
 * costs it more than one reply (§ Retransmission). */
static int attempt_resends(const struct sts_session *s, const struct attempt *a)
{
    return is_initiator(s) && attempt_waits(a);
}

/* A DONE attempt only answers duplicates: it never blocks a new handshake. */
static int handshake_in_flight(const struct sts_session *s)
{
    return s->hs && attempt_waits(s->hs);
}

static void attempt_resend(struct sts_session *s, struct attempt *a)
{
    s->stats.retransmits++;
    emit(s, a->out, a->out_len);
}

static int is_duplicate(const struct attempt *a, const uint8_t *frame, size_t len)
{
    const uint8_t *cookie;
    len = sts_initreq_cookie(frame, len, &cookie);
    return a && a->in_len == len && memcmp(a->in, frame, len) == 0;
}

static void attempt_take_in(struct attempt *a, const uint8_t *frame, size_t len)
{
    const uint8_t *cookie;
    len = sts_initreq_cookie(frame, len, &cookie);
    memcpy(a->in, frame, len);
    a->in_len = len;
}

/* Splits the handshake into key set ks, with the peer's key when it has one. */
static int attempt_split(struct attempt *a, struct keyset *ks)
{
    struct sts_noise_cipher tx, rx;
    const uint8_t *peer = sts_noise_hs_remote_static(a->noise);
    uint8_t peer_copy[STS_X25519_LEN];
    if (peer)
        memcpy(peer_copy, peer, sizeof peer_copy);
    int err = sts_noise_hs_split(a->noise, &tx, &rx);
    if (!err)
        keyset_init(ks, &tx, &rx, peer ? peer_copy : NULL);
    sts_noise_cipher_wipe(&tx);
    sts_noise_cipher_wipe(&rx);
    sts_noise_hs_free(a->noise);
    a->noise = NULL;
    mbedtls_platform_zeroize(a->e, sizeof a->e);
    return err;
}

/* We sent the last handshake message, a->out (§ Confirmation): the keys
 * wait for the peer's first valid ENC, except that an initiator with no
 * session at all uses them at once (optimistically) and drops them if
 * unconfirmed by the deadline. A responder never does: an IK INITREQ may be
 * a replay, and only a frame under the new keys shows a live initiator. */
static void attempt_await_confirm(struct sts_session *s, struct attempt *a, double now)
{
    a->phase = AWAIT_CONFIRM;
    attempt_send(s, a, now);
    if (s->cur.live || !is_initiator(s))
        return;
    a->promoted = 1;
    a->pending.confirm_by = a->expires;
    promote(s, &a->pending, now);
    announce(s);
}

/* We received the last handshake message, which proves the peer holds the
 * keys: they become current, and an empty ENC tells the peer so. */
static int attempt_finish(struct sts_session *s, struct attempt *a, double now)
{
    size_t len;
    a->phase = DONE;
    a->expires = now + s->sh->cfg.handshake_timeout;
    a->pending.confirmed = 1;
    promote(s, &a->pending, now);
    int err = seal(s, &s->cur, now, STS_FRAME_ENC, NULL, 0, a->out, &len);
    a->out_len = err ? 0 : len;
    if (!err)
        emit(s, a->out, a->out_len);
    announce(s);
    return err;
}

/* ---- handshake messages ------------------------------------------------ */

/* A duplicate of the last handshake frame taken in gets the cached reply,
 * at most once per half retransmission interval: a peer's retransmissions
 * are further apart, and a flood of replayed copies gets no flood of
 * replies (§8). */
static enum sts_reason answer_duplicate(struct sts_session *s, double now, const uint8_t *frame, size_t len)
{
    struct attempt *a = s->hs;
    if (!is_duplicate(a, frame, len) || !a->out_len)
        return STS_REASON_STATE;
    if (a->answered_at > 0 && now - a->answered_at < s->sh->cfg.retransmit / 2)
        return STS_REASON_NONE;
    a->answered_at = now;
    attempt_resend(s, a);
    return STS_REASON_NONE;
}

static enum sts_reason check_initreq_suite(const struct sts_session *s, uint8_t suite)
{
    enum sts_pattern pattern;
    enum sts_suite cs;
    if (sts_frame_suite_parse(suite, &pattern, &cs) ||
        !(s->sh->cfg.allowed_patterns & STS_ALLOW(pattern)))
        return STS_REASON_SUITE;
    /* An authenticated session is never replaced by an unauthenticated one. */
    if (pattern == STS_PATTERN_NN && s->cur.live && s->cur.has_peer)
        return STS_REASON_UNTRUSTED;
    return STS_REASON_NONE;
}

/* Responder: reads message 1 into a new attempt and answers it. Only an
 * INITREQ that reads and passes the trust check replaces an attempt in
 * flight; the current session is never touched here. */
static enum sts_reason on_initreq(struct sts_session *s, double now, const struct sts_frame *f,
                                  const uint8_t *frame, size_t len)
{
    if (is_initiator(s) || s->ended == STS_STATE_CLOSED)
        return STS_REASON_STATE;
    if (is_duplicate(s->hs, frame, len))
        return answer_duplicate(s, now, frame, len);
    enum sts_reason r = check_initreq_suite(s, f->suite);
    if (r)
        return r;

    struct attempt *a;
    struct sts_frame body = *f;
    const uint8_t *cookie;
    body.body_len -= len - sts_initreq_cookie(frame, len, &cookie);
    int err = attempt_new(&a, s, now, f->suite);
    if (err)
        return internal(s, err);
    err = attempt_read(a, &body, STS_FRAME_INITREQ);
    const uint8_t *peer = err ? NULL : sts_noise_hs_remote_static(a->noise);
    if (err)
        r = noise_reason(s, err);
    else if (peer && !peer_acceptable(s, peer))
        r = STS_REASON_UNTRUSTED;
    else if (payload_len(a, STS_FRAME_INITREQ) && a->stamp <= s->last_stamp && handshake_in_flight(s))
        r = STS_REASON_REPLAY; /* an IK INITREQ older than one already taken */
    else if ((err = attempt_write(a, STS_FRAME_INITACK)) != 0)
        r = noise_reason(s, err); /* where a low-order e shows (KEY) */
    int two_messages = !r && sts_noise_hs_action(a->noise) == STS_NOISE_SPLIT;
    if (two_messages && (err = attempt_split(a, &a->pending)) != 0)
        r = internal(s, err);
    if (r) {
        attempt_free(a);
        return r;
    }
    attempt_take_in(a, frame, len);
    drop_attempt(s);
    s->hs = a;
    /* A stale one (a replay, or a peer whose clock went back) is only an
     * attempt: it replaces nothing until a live frame confirms it. */
    if (a->stamp > s->last_stamp)
        s->last_stamp = a->stamp;
    if (two_messages) {
        attempt_await_confirm(s, a, now);
    } else {
        a->phase = AWAIT_AUTHREQ;
        attempt_send(s, a, now);
    }
    return STS_REASON_NONE;
}

/* The attempt cannot go on (only our own failure gets here). */
static void attempt_abort(struct sts_session *s)
{
    drop_attempt(s);
    if (is_initiator(s) && !s->cur.live) {
        s->ended = STS_STATE_FAILED;
        report_reason(s, STS_EVENT_FAILED, STS_REASON_INTERNAL);
    }
}

/* A handshake message that failed: count it, rebuild, keep waiting. */
static enum sts_reason refuse_message(struct sts_session *s, struct attempt *a, enum sts_reason r)
{
    a->last_reject = r;
    if (attempt_rebuild(s, a))
        attempt_abort(s);
    return r;
}

/* After a successful read nothing but our own failure can stop the
 * attempt, and the transcript cannot be rebuilt (our ephemeral key may be
 * gone). */
static enum sts_reason internal_failure(struct sts_session *s, int err)
{
    attempt_abort(s);
    return internal(s, err);
}

/* Reads message 2 (initiator) or 3 (XX responder) and checks the identity
 * it carries. */
static enum sts_reason read_and_check(struct sts_session *s, struct attempt *a,
                                      const struct sts_frame *f)
{
    int err = attempt_read(a, f, f->type);
    if (err)
        return refuse_message(s, a, noise_reason(s, err));
    const uint8_t *peer = sts_noise_hs_remote_static(a->noise);
    /* IK's responder key is the pinned pre-message key: Noise checked it. */
    if (peer && !(is_initiator(s) && a->suite >> 4 == STS_PATTERN_IK) && !peer_acceptable(s, peer))
        return refuse_message(s, a, STS_REASON_UNTRUSTED);
    return STS_REASON_NONE;
}

/* INITACK (to the initiator) or AUTHREQ (to an XX responder): the message
 * an attempt waits for, or a duplicate of the one it already took. */
static enum sts_reason on_reply(struct sts_session *s, double now, const struct sts_frame *f,
                                const uint8_t *frame, size_t len)
{
    int initack = f->type == STS_FRAME_INITACK;
    struct attempt *a = s->hs;
    if (!a || is_initiator(s) != initack)
        return STS_REASON_STATE;
    if (a->phase != (initack ? AWAIT_INITACK : AWAIT_AUTHREQ))
        return answer_duplicate(s, now, frame, len);
    enum sts_reason r = read_and_check(s, a, f);
    if (r)
        return r;
    attempt_take_in(a, frame, len);
    int err;
    if (sts_noise_hs_action(a->noise) == STS_NOISE_WRITE) { /* XX initiator: message 3 */
        if ((err = attempt_write(a, STS_FRAME_AUTHREQ)) != 0 ||
            (err = attempt_split(a, &a->pending)) != 0)
            return internal_failure(s, err);
        attempt_await_confirm(s, a, now);
        return STS_REASON_NONE;
    }
    if ((err = attempt_split(a, &a->pending)) != 0 || (err = attempt_finish(s, a, now)) != 0)
        return internal_failure(s, err);
    return STS_REASON_NONE;
}

/* ---- transport frames --------------------------------------------------- */

/* A responder without a confirmed session tells the sender of an
 * unattributable frame to handshake again, at most once per retransmit
 * interval (§ RESYNC). */
static void maybe_resync(struct sts_session *s, double now)
{
    if (is_initiator(s) || s->ended == STS_STATE_CLOSED || (s->cur.live && s->cur.confirmed))
        return;
    if (s->stats.resyncs_sent && now - s->last_resync < s->sh->cfg.retransmit)
        return;
    uint8_t frame[STS_FRAME_HEADER_LEN];
    s->last_resync = now;
    s->stats.resyncs_sent++;
    emit(s, frame, sts_frame_put_header(frame, STS_FRAME_RESYNC));
}

/* The first valid frame under keys proves the peer holds them. Returns 1
 * when pending keys became current. */
static int confirmed_by_peer(struct sts_session *s, struct keyset *ks, double now)
{
    struct attempt *a = s->hs;
    if (a && ks == &a->pending) {
        if (!is_initiator(s) && a->stamp)
            s->last_stamp = a->stamp; /* the live peer's clock, even if it went back */
        ks->confirmed = 1;
        promote(s, ks, now);
        drop_attempt(s);
        return 1;
    }
    if (!s->cur.confirmed) {
        s->cur.confirmed = 1;
        if (a && a->promoted && a->phase == AWAIT_CONFIRM)
            drop_attempt(s);
    }
    return 0;
}

/* Opens an ENC or KILL frame into pt with the current or the pending keys,
 * setting *opened to the key set that took it. */
static enum sts_reason sealed_open(struct sts_session *s, double now, const struct sts_frame *f,
                                   const uint8_t *frame, uint8_t *pt, struct keyset **opened)
{
    struct keyset *ks[2] = { s->cur.live ? &s->cur : NULL,
                             s->hs && s->hs->pending.live ? &s->hs->pending : NULL };
    enum sts_reason r = STS_REASON_STATE;

    for (int i = 0; i < 2; i++) {
        if (!ks[i])
            continue;
        enum sts_reason ri = keyset_open(s, ks[i], now, f, frame, pt);
        if (!ri) {
            *opened = ks[i];
            return STS_REASON_NONE;
        }
        if (ri == STS_REASON_INTERNAL)
            return ri;
        if (r == STS_REASON_STATE || ri == STS_REASON_REPLAY)
            r = ri;
    }
    maybe_resync(s, now);
    return r;
}

/* The plaintext goes to a lent buffer, wiped once delivered; an empty one
 * (the first frame under new keys is often one) needs none. */
static enum sts_reason on_sealed(struct sts_session *s, double now, const struct sts_frame *f,
                                 const uint8_t *frame)
{
    size_t len = f->body_len - STS_FRAME_TAG_LEN;
    struct keyset *opened = NULL;
    uint8_t empty[1];
    struct scratch own = { 0 }, *buf = NULL;

    if (len && !(buf = scratch_lend(&plaintexts, &own, len)))
        return internal(s, STS_ERR_NOMEM);
    uint8_t *pt = buf ? buf->p : empty;
    enum sts_reason r = sealed_open(s, now, f, frame, pt, &opened);
    if (r) {
        if (buf)
            scratch_return(buf, len); /* a primitive may have failed midway */
        return r;
    }
    int replaced = confirmed_by_peer(s, opened, now);
    if (f->type == STS_FRAME_KILL)
        drop_keys(s, STS_STATE_CLOSED);
    else if (len > 0)
        s->stats.messages_in++;
    if (replaced)
        announce(s);
    if (f->type == STS_FRAME_KILL)
        report(s, STS_EVENT_CLOSED, pt, len);
    else if (len > 0)
        report(s, STS_EVENT_MESSAGE, pt, len);
    if (buf)
        scratch_return(buf, len);
    return STS_REASON_NONE;
}

/* Initiator: the responder lost its session; handshake again, keeping the
 * current keys meanwhile. Unauthenticated, so acted on at most once per
 * handshake timeout after the last session began. */
static enum sts_reason on_resync(struct sts_session *s, double now)
{
    if (!is_initiator(s) || !s->cur.live || handshake_in_flight(s) ||
        now - s->established_at < s->sh->cfg.handshake_timeout)
        return STS_REASON_STATE;
    s->stats.resyncs_received++;
    int err = sts_session_start(s, now); /* its preconditions were checked above */
    return err ? internal(s, err) : STS_REASON_NONE;
}

/* Initiator: a loaded responder asks that the INITREQ come back with a
 * cookie (§ Cookies). Unauthenticated: it changes only what the next INITREQ
 * carries, a cookie already held is not answered again, and a new one is
 * answered at once at most once per half retransmission interval (else it
 * rides on the next retransmission), so a flood of forged COOKIEs gets no
 * flood of INITREQs. */
static enum sts_reason on_cookie(struct sts_session *s, double now, const struct sts_frame *f)
{
    struct attempt *a = s->hs;
    if (!is_initiator(s) || !a || a->phase != AWAIT_INITACK)
        return STS_REASON_STATE;
    if (a->has_cookie && memcmp(a->cookie, f->body, STS_FRAME_COOKIE_LEN) == 0)
        return STS_REASON_STATE;
    if (a->has_cookie)
        a->out_len -= STS_FRAME_COOKIE_LEN;
    memcpy(a->cookie, f->body, STS_FRAME_COOKIE_LEN);
    a->has_cookie = 1;
    attach_cookie(a);
    if (a->cookie_at > 0 && now - a->cookie_at < s->sh->cfg.retransmit / 2)
        return STS_REASON_NONE;
    a->cookie_at = now;
    attempt_resend(s, a);
    return STS_REASON_NONE;
}

static enum sts_reason dispatch(struct sts_session *s, double now, const uint8_t *frame, size_t len)
{
    struct sts_frame f;
    enum sts_reason why;
    if (sts_frame_decode(&f, frame, len, s->sh->cfg.max_frame, &why))
        return why;
    switch (f.type) {
    case STS_FRAME_INITREQ: return on_initreq(s, now, &f, frame, len);
    case STS_FRAME_INITACK:
    case STS_FRAME_AUTHREQ: return on_reply(s, now, &f, frame, len);
    case STS_FRAME_ENC:
    case STS_FRAME_KILL: return on_sealed(s, now, &f, frame);
    case STS_FRAME_RESYNC: return on_resync(s, now);
    case STS_FRAME_COOKIE: return on_cookie(s, now, &f);
    case STS_FRAME_AUTHACK: break;
    }
    return STS_REASON_UNKNOWN_TYPE;
}

/* ---- timers ----------------------------------------------------------- */

/* A handshake attempt that ran out of time (§ Retransmission). */
static void attempt_expire(struct sts_session *s)
{
    struct attempt *a = s->hs;
    enum sts_reason r = a->last_reject ? a->last_reject : STS_REASON_TIMEOUT;
    int silent = a->phase == DONE || a->promoted;
    drop_attempt(s);
    if (silent) /* DONE needs no answer any more; promoted keys time out on their own */
        return;
    s->stats.rejected[STS_REASON_TIMEOUT]++;
    if (is_initiator(s) && !s->cur.live) {
        s->ended = STS_STATE_FAILED;
        report_reason(s, STS_EVENT_FAILED, r);
    } else {
        report_reason(s, STS_EVENT_REJECTED, STS_REASON_TIMEOUT);
    }
}

static void attempt_tick(struct sts_session *s, double now)
{
    struct attempt *a = s->hs;
    if (now >= a->expires) {
        attempt_expire(s);
    } else if (attempt_resends(s, a) && now >= a->resend_at) {
        a->interval = fmin(2 * a->interval, s->sh->cfg.retransmit_max);
        a->resend_at = now + a->interval;
        attempt_resend(s, a);
    }
}

static void cur_tick(struct sts_session *s, double now)
{
    struct keyset *ks = &s->cur;
    if (!ks->confirmed && now >= ks->confirm_by) {
        /* Its own attempt ended at the same time; a newer one may go on. */
        keyset_wipe(ks);
        if (is_initiator(s) && !s->hs)
            s->ended = STS_STATE_FAILED;
        s->stats.rejected[STS_REASON_TIMEOUT]++;
        report_reason(s, STS_EVENT_FAILED, STS_REASON_TIMEOUT);
        return;
    }
    /* A failure leaves the epoch due: the next send tries again and reports it. */
    if (tx_epoch_due(s, ks, now))
        (void)tx_next_epoch(s, ks);
    expire_prev(ks, now);
}

static double next_deadline(const struct sts_session *s)
{
    double t = INFINITY;
    const struct attempt *a = s->hs;
    const struct keyset *ks = &s->cur;
    if (a) {
        t = fmin(t, a->expires);
        if (attempt_resends(s, a))
            t = fmin(t, a->resend_at);
    }
    if (ks->live) {
        if (!ks->confirmed)
            t = fmin(t, ks->confirm_by);
        if (ks->tx_epoch_msgs > 0)
            t = fmin(t, ks->tx_epoch_start + s->sh->cfg.rekey_seconds);
        if (ks->prev)
            t = fmin(t, ks->prev_until);
    }
    return t;
}

/* ---- public API ---------------------------------------------------------- */

static void config_defaults(struct sts_session_config *c)
{
    if (c->role == STS_ROLE_INITIATOR && !c->pattern)
        c->pattern = c->peer_static ? STS_PATTERN_IK : STS_PATTERN_XX;
    if (!c->suite)
        c->suite = STS_SUITE_CHACHAPOLY_SHA256;
    if (!c->allowed_patterns)
        c->allowed_patterns = STS_ALLOW(STS_PATTERN_XX) | STS_ALLOW(STS_PATTERN_IK);
    if (!c->rekey_messages)
        c->rekey_messages = STS_SESSION_REKEY_MESSAGES;
    if (c->rekey_messages > (uint64_t)1 << 32) /* an epoch has 2^32 counters */
        c->rekey_messages = (uint64_t)1 << 32;
    if (!(c->rekey_seconds > 0))
        c->rekey_seconds = STS_SESSION_REKEY_SECONDS;
    if (!(c->retransmit > 0))
        c->retransmit = STS_SESSION_RETRANSMIT;
    if (!(c->retransmit_max > 0))
        c->retransmit_max = STS_SESSION_RETRANSMIT_MAX;
    if (!(c->handshake_timeout > 0))
        c->handshake_timeout = STS_SESSION_HANDSHAKE_TIMEOUT;
    if (!c->max_frame || c->max_frame > STS_FRAME_MAX_DEFAULT)
        c->max_frame = STS_FRAME_MAX_DEFAULT;
}

/* A config with its defaults applied: can every handshake it allows run? */
static int config_valid(const struct sts_session_config *c)
{
    uint8_t suite_byte = sts_frame_suite_byte(STS_PATTERN_NN, c->suite);
    enum sts_pattern p;
    enum sts_suite cs;
    if (!c->emit || c->max_frame < STS_FRAME_HANDSHAKE_MAX)
        return 0;
    if (c->role == STS_ROLE_RESPONDER) /* needs its static key for anything but NN */
        return c->static_priv || c->allowed_patterns == STS_ALLOW(STS_PATTERN_NN);
    if (c->role != STS_ROLE_INITIATOR || c->pattern < STS_PATTERN_NN ||
        c->pattern > STS_PATTERN_IK || sts_frame_suite_parse(suite_byte, &p, &cs))
        return 0;
    if (c->pattern == STS_PATTERN_IK && !c->peer_static)
        return 0;
    return c->pattern == STS_PATTERN_NN || c->static_priv;
}

/* Both topics in one allocation, each after its header room. */
static int topics_init(struct sts_session *s, const char *out, const char *in)
{
    s->out.len = strlen(out);
    s->in.len = strlen(in);
    s->out.ad = malloc(2 * STS_FRAME_SEALED_HEADER_LEN + s->out.len + s->in.len);
    if (!s->out.ad)
        return STS_ERR_NOMEM;
    s->in.ad = s->out.ad + STS_FRAME_SEALED_HEADER_LEN + s->out.len;
    memcpy(s->out.ad + STS_FRAME_SEALED_HEADER_LEN, out, s->out.len);
    memcpy(s->in.ad + STS_FRAME_SEALED_HEADER_LEN, in, s->in.len);
    return 0;
}

static void copy_key(uint8_t dst[STS_X25519_LEN], uint8_t *flag, const uint8_t *src)
{
    if (src) {
        memcpy(dst, src, STS_X25519_LEN);
        *flag = 1;
    }
}

int sts_session_shared_new(struct sts_session_shared **out, const struct sts_session_config *cfg)
{
    struct sts_session_config c = *cfg;
    *out = NULL;
    config_defaults(&c);
    if (!config_valid(&c))
        return STS_ERR_INVALID;
    struct sts_session_shared *sh = calloc(1, sizeof *sh);
    if (!sh)
        return STS_ERR_NOMEM;
    sh->refs = 1;
    copy_key(sh->static_priv, &sh->has_static, c.static_priv);
    copy_key(sh->pinned, &sh->has_pinned, c.peer_static);
    int err = 0;
    /* Once, not once per session or handshake attempt. */
    if (c.static_pub) memcpy(sh->static_pub, c.static_pub, sizeof sh->static_pub);
    else if (sh->has_static) err = sts_x25519_public(sh->static_pub, sh->static_priv);
    /* Keep no pointer into the caller's memory, nor another session's context. */
    c.static_priv = c.static_pub = c.peer_static = NULL;
    c.topic_out = c.topic_in = NULL;
    c.ctx = NULL;
    sh->cfg = c;
    if (err) {
        sts_session_shared_free(sh);
        return err;
    }
    *out = sh;
    return 0;
}

void sts_session_shared_free(struct sts_session_shared *sh)
{
    if (!sh || --sh->refs > 0)
        return;
    mbedtls_platform_zeroize(sh, sizeof *sh);
    free(sh);
}

size_t sts_session_shared_memory(void)
{
    return sizeof(struct sts_session_shared);
}

int sts_session_new_shared(struct sts_session **out, struct sts_session_shared *sh, const char *topic_out,
                           const char *topic_in, void *ctx)
{
    *out = NULL;
    if (!topic_out || !topic_in)
        return STS_ERR_INVALID;
    if (strlen(topic_out) > 0xffff || strlen(topic_in) > 0xffff)
        return STS_ERR_TOO_BIG;
    struct sts_session *s = calloc(1, sizeof *s);
    if (!s)
        return STS_ERR_NOMEM;
    int err = topics_init(s, topic_out, topic_in);
    if (err) {
        free(s);
        return err;
    }
    sh->refs++;
    s->sh = sh;
    s->ctx = ctx;
    *out = s;
    return 0;
}

int sts_session_new(struct sts_session **out, const struct sts_session_config *cfg)
{
    struct sts_session_shared *sh;
    *out = NULL;
    int err = sts_session_shared_new(&sh, cfg);
    if (!err)
        err = sts_session_new_shared(out, sh, cfg->topic_out, cfg->topic_in, cfg->ctx);
    sts_session_shared_free(sh); /* the session holds it now, or nothing does */
    return err;
}

/* Strictly greater than the last one sent, whatever the clock does. */
static uint64_t next_stamp(struct sts_session *s)
{
    uint64_t t = s->sh->cfg.timestamp ? s->sh->cfg.timestamp(s->ctx) : 0;
    s->last_stamp = t > s->last_stamp ? t : s->last_stamp + 1;
    return s->last_stamp;
}

int sts_session_start(struct sts_session *s, double now)
{
    if (!is_initiator(s) || handshake_in_flight(s))
        return STS_ERR_STATE;
    drop_attempt(s);
    struct attempt *a;
    int err = attempt_new(&a, s, now, sts_frame_suite_byte(s->sh->cfg.pattern, s->sh->cfg.suite));
    if (err)
        return err;
    a->stamp = next_stamp(s);
    err = attempt_write(a, STS_FRAME_INITREQ);
    if (err) {
        attempt_free(a);
        return err;
    }
    s->hs = a;
    s->ended = STS_STATE_IDLE;
    a->phase = AWAIT_INITACK;
    attempt_send(s, a, now);
    return 0;
}

int sts_session_receive(struct sts_session *s, double now, const uint8_t *frame, size_t len)
{
    s->stats.frames_in++;
    enum sts_reason r = dispatch(s, now, frame, len);
    if (!r)
        return 0;
    int err = r == STS_REASON_INTERNAL ? s->failure : sts_reason_error(r);
    s->stats.rejected[r]++;
    report_reason(s, STS_EVENT_REJECTED, r);
    return err;
}

int sts_session_is_retransmission(const struct sts_session *s, const uint8_t *frame, size_t len)
{
    return s->hs && s->hs->out_len && is_duplicate(s->hs, frame, len);
}

/* The length of an IK INITREQ's Noise message (e, s, timestamp, each
 * encrypted one with its tag) and of the others' (e). */
static size_t initreq_noise_len(uint8_t suite)
{
    if (suite >> 4 == STS_PATTERN_IK)
        return 2 * STS_X25519_LEN + 2 * STS_FRAME_TAG_LEN + STS_SESSION_TIMESTAMP_LEN;
    return STS_X25519_LEN;
}

size_t sts_initreq_cookie(const uint8_t *frame, size_t len, const uint8_t **cookie)
{
    size_t head = STS_FRAME_HEADER_LEN + 1;
    *cookie = NULL;
    if (len <= head || frame[1] != STS_FRAME_INITREQ ||
        len != head + initreq_noise_len(frame[head - 1]) + STS_FRAME_COOKIE_LEN)
        return len;
    *cookie = frame + len - STS_FRAME_COOKIE_LEN;
    return len - STS_FRAME_COOKIE_LEN;
}

int sts_session_send(struct sts_session *s, double now, const uint8_t *pt, size_t len)
{
    if (!s->cur.live)
        return STS_ERR_STATE;
    if (len > s->sh->cfg.max_frame - STS_FRAME_OVERHEAD)
        return STS_ERR_TOO_BIG;
    size_t flen;
    struct scratch own = { 0 }, *buf = scratch_lend(&frames, &own, len + STS_FRAME_OVERHEAD);
    if (!buf)
        return STS_ERR_NOMEM;
    int err = seal(s, &s->cur, now, STS_FRAME_ENC, pt, len, buf->p, &flen);
    if (!err) {
        s->stats.messages_out++;
        emit(s, buf->p, flen);
    }
    scratch_return(buf, 0); /* a frame is ciphertext: nothing to wipe */
    return err;
}

double sts_session_tick(struct sts_session *s, double now)
{
    if (s->hs)
        attempt_tick(s, now);
    if (s->cur.live) /* again: a callback may have closed the session */
        cur_tick(s, now);
    return next_deadline(s);
}

/* The longest prefix of reason within the limit that does not split a UTF-8
 * sequence. */
static size_t reason_len(const char *reason)
{
    size_t len = reason ? strlen(reason) : 0;
    if (len <= STS_SESSION_KILL_REASON_MAX)
        return len;
    len = STS_SESSION_KILL_REASON_MAX;
    while (len > 0 && ((uint8_t)reason[len] & 0xc0) == 0x80)
        len--;
    return len;
}

int sts_session_close(struct sts_session *s, double now, const char *reason)
{
    size_t len = reason_len(reason), flen;
    uint8_t frame[STS_SESSION_KILL_REASON_MAX + STS_FRAME_OVERHEAD];
    int err = 0;
    if (s->ended == STS_STATE_CLOSED)
        return 0;
    if (s->cur.live) {
        err = seal(s, &s->cur, now, STS_FRAME_KILL, (const uint8_t *)reason, len, frame, &flen);
        if (!err)
            emit(s, frame, flen);
    }
    drop_keys(s, STS_STATE_CLOSED);
    s->ended = STS_STATE_CLOSED;
    report(s, STS_EVENT_CLOSED, reason, len);
    return err;
}

enum sts_session_state sts_session_state(const struct sts_session *s)
{
    if (s->ended != STS_STATE_IDLE)
        return s->ended;
    if (s->cur.live)
        return STS_STATE_ESTABLISHED;
    return handshake_in_flight(s) ? STS_STATE_HANDSHAKE : STS_STATE_IDLE;
}

const struct sts_session_stats *sts_session_stats(const struct sts_session *s)
{
    return &s->stats;
}

int sts_session_peer_static(const struct sts_session *s, uint8_t out[STS_X25519_LEN])
{
    if (!s->cur.live || !s->cur.has_peer)
        return STS_ERR_STATE;
    memcpy(out, s->cur.peer, sizeof s->cur.peer);
    return 0;
}

int sts_session_authenticated(const struct sts_session *s)
{
    return s->cur.live && s->cur.has_peer;
}

size_t sts_session_memory(const struct sts_session *s)
{
    size_t n = sizeof *s + 2 * STS_FRAME_SEALED_HEADER_LEN + s->out.len + s->in.len;
    if (s->sh->refs == 1)
        n += sizeof *s->sh;
    if (s->cur.prev)
        n += sizeof *s->cur.prev;
    if (s->hs)
        n += sizeof *s->hs + (s->hs->pending.prev ? sizeof *s->hs->pending.prev : 0);
    return n;
}

void sts_session_free(struct sts_session *s)
{
    if (!s)
        return;
    drop_attempt(s);
    keyset_wipe(&s->cur);
    free(s->out.ad);
    sts_session_shared_free(s->sh);
    mbedtls_platform_zeroize(s, sizeof *s);
    free(s);
}
