/* STS sessions wired back to back through in-memory queues (a broker that
 * we can make lose, duplicate, reorder, replay and forge frames): the three
 * patterns, every rejection with its counter, retransmission, timeouts,
 * restart, rekey epochs, KILL and RESYNC. Expected sizes are computed from
 * the Noise message layouts, not read back from the code. */
#include "crypto/random.h"
#include "crypto/x25519.h"
#include "proto/session.h"
#include "util/error.h"
#include "util/unit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- harness ------------------------------------------------------------ */

#define QMAX 4096
#define MSG_IDS 4096

struct frame {
    uint8_t *p;
    size_t len;
};

struct peer {
    struct sts_session *s;
    struct frame q[QMAX]; /* emitted, not yet delivered */
    size_t nq;
    const uint8_t *trusted[2];
    int established, closed, failed, rejected, messages;
    char reason[128];       /* of the last CLOSED / FAILED / REJECTED */
    uint8_t peer_key[32];
    size_t peer_key_len;
    int seen[MSG_IDS];      /* deliveries of message "m<id>" */
    int echo;               /* answer each message from inside the callback */
    int echo_back;          /* ...with the delivered bytes themselves */
    struct peer *nested[2]; /* a pair pumped from inside the next message's callback */
    uint32_t last_sum;      /* of the last message delivered */
    size_t last_len;
    double now;
};

static uint8_t i_priv[32], i_pub[32], r_priv[32], r_pub[32], m_priv[32], m_pub[32];
static const char *UP = "plant/s7/up", *DOWN = "plant/s7/down";
static double now;

static void on_emit(void *ctx, const uint8_t *frame, size_t len)
{
    struct peer *p = ctx;
    if (p->nq == QMAX)
        return;
    p->q[p->nq].p = malloc(len);
    memcpy(p->q[p->nq].p, frame, len);
    p->q[p->nq++].len = len;
}

/* FNV-1a, to compare a delivered message with the one sent. */
static uint32_t checksum(const uint8_t *p, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t k = 0; k < len; k++)
        h = (h ^ p[k]) * 16777619u;
    return h;
}

static void pump(struct peer *a, struct peer *b);

static void on_event(void *ctx, enum sts_session_event ev, const uint8_t *data, size_t len)
{
    struct peer *p = ctx;
    int id;
    switch (ev) {
    case STS_EVENT_ESTABLISHED:
        p->established++;
        p->peer_key_len = len;
        memcpy(p->peer_key, data, len);
        return;
    case STS_EVENT_MESSAGE:
        p->messages++;
        p->last_sum = checksum(data, len);
        p->last_len = len;
        if (len > 1 && len < 16 && data[0] == 'm') {
            char text[16];
            memcpy(text, data, len);
            text[len] = 0;
            id = atoi(text + 1);
            if (id >= 0 && id < MSG_IDS)
                p->seen[id]++;
        }
        if (p->echo)
            sts_session_send(p->s, now, (const uint8_t *)"echo", 4);
        if (p->echo_back)
            CHECK(sts_session_send(p->s, now, data, len) == 0);
        if (p->nested[0]) {
            struct peer *a = p->nested[0], *b = p->nested[1];
            uint32_t before = checksum(data, len);
            p->nested[0] = NULL;
            pump(a, b);
            CHECK(checksum(data, len) == before); /* not overwritten by the nested delivery */
        }
        return;
    case STS_EVENT_CLOSED: p->closed++; break;
    case STS_EVENT_FAILED: p->failed++; break;
    case STS_EVENT_REJECTED: p->rejected++; break;
    }
    len = len < sizeof p->reason - 1 ? len : sizeof p->reason - 1;
    memcpy(p->reason, data, len);
    p->reason[len] = 0;
}

static int trust(void *ctx, const uint8_t pub[32])
{
    struct peer *p = ctx;
    for (int i = 0; i < 2; i++)
        if (p->trusted[i] && memcmp(p->trusted[i], pub, 32) == 0)
            return 1;
    return 0;
}

/* A wall clock that only grows, across the "restarts" of a test too. */
static uint64_t wall_clock(void *ctx)
{
    static uint64_t t;
    (void)ctx;
    return ++t;
}

static struct sts_session_config config(struct peer *p, enum sts_role role, const uint8_t *priv)
{
    struct sts_session_config c = {
        .role = role,
        .static_priv = priv,
        .trust = trust,
        .topic_out = role == STS_ROLE_INITIATOR ? UP : DOWN,
        .topic_in = role == STS_ROLE_INITIATOR ? DOWN : UP,
        .emit = on_emit,
        .on_event = on_event,
        .ctx = p,
        .timestamp = wall_clock,
    };
    return c;
}

static void peer_open(struct peer *p, const struct sts_session_config *c)
{
    memset(p, 0, sizeof *p);
    CHECK(sts_session_new(&p->s, c) == 0);
}

static void peer_default(struct peer *p, enum sts_role role, const uint8_t *priv,
                         const uint8_t *trusted)
{
    struct sts_session_config c = config(p, role, priv);
    peer_open(p, &c);
    p->trusted[0] = trusted;
}

static void queue_clear(struct peer *p)
{
    for (size_t i = 0; i < p->nq; i++)
        free(p->q[i].p);
    p->nq = 0;
}

static void peer_close(struct peer *p)
{
    queue_clear(p);
    sts_session_free(p->s);
    p->s = NULL;
}

/* Removes and returns the i-th queued frame (the caller frees f.p). */
static struct frame take(struct peer *p, size_t i)
{
    struct frame f = p->q[i];
    memmove(p->q + i, p->q + i + 1, (p->nq - i - 1) * sizeof *p->q);
    p->nq--;
    return f;
}

static int deliver(struct peer *to, struct frame f)
{
    int rc = sts_session_receive(to->s, now, f.p, f.len);
    free(f.p);
    return rc;
}

/* Moves frames both ways until both queues are empty. */
static void pump(struct peer *a, struct peer *b)
{
    while (a->nq || b->nq) {
        while (a->nq)
            deliver(b, take(a, 0));
        while (b->nq)
            deliver(a, take(b, 0));
    }
}

static int frame_type(struct frame f)
{
    return f.len > 1 ? f.p[1] : -1;
}

static uint64_t frame_counter(struct frame f)
{
    uint64_t n = 0;
    for (int i = 2; i < 10; i++)
        n = n << 8 | f.p[i];
    return n;
}

static uint64_t rejected(const struct peer *p, enum sts_reason r)
{
    return sts_session_stats(p->s)->rejected[r];
}

static void send_text(struct peer *p, const char *text)
{
    CHECK(sts_session_send(p->s, now, (const uint8_t *)text, strlen(text)) == 0);
}

static void send_id(struct peer *p, int id)
{
    char text[16];
    snprintf(text, sizeof text, "m%d", id);
    send_text(p, text);
}

/* Both directions still carry a message. */
static int still_works(struct peer *a, struct peer *b)
{
    int ma = a->messages, mb = b->messages;
    send_text(a, "ping");
    send_text(b, "pong");
    pump(a, b);
    return a->messages == ma + 1 && b->messages == mb + 1;
}

/* An initiator config for a pattern (IK pins the responder's key). */
static struct sts_session_config initiator_config(struct peer *p, enum sts_pattern pattern)
{
    struct sts_session_config c = config(p, STS_ROLE_INITIATOR, i_priv);
    c.pattern = pattern;
    c.peer_static = pattern == STS_PATTERN_IK ? r_pub : NULL;
    return c;
}

/* Opens i and r, each trusting the other, and sends the INITREQ. */
static void open_pair(struct peer *i, struct peer *r, const struct sts_session_config *ci,
                      const struct sts_session_config *cr)
{
    peer_open(i, ci);
    peer_open(r, cr);
    i->trusted[0] = r_pub;
    r->trusted[0] = i_pub;
    CHECK(sts_session_start(i->s, now) == 0);
}

/* Both with default configs (XX, no pin), the INITREQ sent. */
static void open_default_pair(struct peer *i, struct peer *r)
{
    struct sts_session_config ci = config(i, STS_ROLE_INITIATOR, i_priv);
    struct sts_session_config cr = config(r, STS_ROLE_RESPONDER, r_priv);
    open_pair(i, r, &ci, &cr);
}

/* A fresh, established pair with the given initiator pattern. */
static void pair(struct peer *i, struct peer *r, enum sts_pattern pattern)
{
    struct sts_session_config ci = initiator_config(i, pattern);
    struct sts_session_config cr = config(r, STS_ROLE_RESPONDER, r_priv);
    cr.allowed_patterns = STS_ALLOW(pattern);
    open_pair(i, r, &ci, &cr);
    pump(i, r);
    CHECK(sts_session_state(i->s) == STS_STATE_ESTABLISHED);
    CHECK(sts_session_state(r->s) == STS_STATE_ESTABLISHED);
}

static void unpair(struct peer *i, struct peer *r)
{
    peer_close(i);
    peer_close(r);
}

/* ---- patterns ------------------------------------------------------------ */

/* Handshake bytes from the Noise layouts (empty payloads, 16-byte tags):
 * XX: -> e (32); <- e, ee, s, es (32 + 32+16 + 16); -> s, se (32+16 + 16).
 * IK: -> e, es, s, ss, timestamp (32 + 32+16 + 8+16); <- e, ee, se (32 + 16).
 * NN: -> e (32); <- e, ee (32 + 16).
 * Each frame adds version and type; INITREQ adds the suite byte. */
static size_t expected_handshake_bytes(enum sts_pattern p)
{
    switch (p) {
    case STS_PATTERN_XX: return (2 + 1 + 32) + (2 + 32 + 48 + 16) + (2 + 48 + 16);
    case STS_PATTERN_IK: return (2 + 1 + 32 + 48 + 8 + 16) + (2 + 32 + 16);
    case STS_PATTERN_NN: return (2 + 1 + 32) + (2 + 32 + 16);
    }
    return 0;
}

static void test_pattern(enum sts_pattern pattern, enum sts_suite suite)
{
    struct peer i, r;
    struct sts_session_config ci = initiator_config(&i, pattern);
    struct sts_session_config cr = config(&r, STS_ROLE_RESPONDER, r_priv);
    ci.suite = suite;
    cr.allowed_patterns = STS_ALLOW(STS_PATTERN_NN) | STS_ALLOW(STS_PATTERN_XX) |
                          STS_ALLOW(STS_PATTERN_IK);
    open_pair(&i, &r, &ci, &cr);

    size_t hs_bytes = 0, hs_frames = 0, confirm_len = 0;
    CHECK(sts_session_state(i.s) == STS_STATE_HANDSHAKE);
    CHECK(sts_session_state(r.s) == STS_STATE_IDLE);
    /* Deliver one frame at a time, measuring the handshake frames. */
    while (i.nq || r.nq) {
        struct peer *from = i.nq ? &i : &r, *to = i.nq ? &r : &i;
        struct frame f = take(from, 0);
        if (frame_type(f) <= STS_FRAME_AUTHREQ) {
            hs_bytes += f.len;
            hs_frames++;
        } else if (frame_type(f) == STS_FRAME_ENC) {
            confirm_len = f.len;
        }
        CHECK(deliver(to, f) == 0);
    }
    CHECK(hs_frames == (size_t)sts_frame_pattern_messages(pattern));
    CHECK(hs_bytes == expected_handshake_bytes(pattern));
    CHECK(confirm_len == 26); /* the empty ENC that confirms the keys */
    if (pattern == STS_PATTERN_XX && suite == STS_SUITE_CHACHAPOLY_SHA256) {
        printf("XX handshake: %zu bytes in %zu frames (+%zu confirmation)\n", hs_bytes,
               hs_frames, confirm_len);
        CHECK(hs_bytes <= 200);
    }
    CHECK(i.established == 1 && r.established == 1);
    CHECK(sts_session_state(i.s) == STS_STATE_ESTABLISHED);
    CHECK(sts_session_state(r.s) == STS_STATE_ESTABLISHED);

    uint8_t key[32];
    int authenticated = pattern != STS_PATTERN_NN;
    CHECK(sts_session_authenticated(i.s) == authenticated);
    CHECK(sts_session_authenticated(r.s) == authenticated);
    if (authenticated) {
        CHECK(i.peer_key_len == 32 && memcmp(i.peer_key, r_pub, 32) == 0);
        CHECK(r.peer_key_len == 32 && memcmp(r.peer_key, i_pub, 32) == 0);
        CHECK(sts_session_peer_static(r.s, key) == 0 && memcmp(key, i_pub, 32) == 0);
    } else {
        CHECK(i.peer_key_len == 0 && r.peer_key_len == 0);
        CHECK(sts_session_peer_static(r.s, key) == STS_ERR_STATE);
    }

    /* Messages both ways; the ENC overhead is exactly 26 bytes. */
    const char *text = "{\"temp\":21.5}";
    send_text(&i, text);
    CHECK(i.nq == 1 && i.q[0].len == strlen(text) + 26);
    send_text(&r, "ack");
    pump(&i, &r);
    CHECK(r.messages == 1 && i.messages == 1);
    CHECK(still_works(&i, &r));
    unpair(&i, &r);
}

static void test_patterns(void)
{
    for (enum sts_suite s = STS_SUITE_CHACHAPOLY_SHA256; s <= STS_SUITE_AESGCM_SHA512; s++) {
        test_pattern(STS_PATTERN_XX, s);
        test_pattern(STS_PATTERN_IK, s);
        test_pattern(STS_PATTERN_NN, s);
    }
}

/* Defaults: XX without a pin, IK with one; NN refused unless allowed. */
static void test_defaults(void)
{
    struct peer i, r;
    open_default_pair(&i, &r);
    CHECK(i.nq == 1 && i.q[0].p[2] == 0x21); /* XX, ChaChaPoly_SHA256 */
    pump(&i, &r);
    CHECK(i.established == 1 && r.established == 1);
    peer_close(&i);

    struct sts_session_config c = config(&i, STS_ROLE_INITIATOR, i_priv);
    c.peer_static = r_pub;
    peer_open(&i, &c);
    CHECK(sts_session_start(i.s, now) == 0);
    CHECK(i.nq == 1 && i.q[0].p[2] == 0x31); /* IK */
    peer_close(&i);

    c = config(&i, STS_ROLE_INITIATOR, NULL);
    c.pattern = STS_PATTERN_NN;
    peer_open(&i, &c);
    CHECK(sts_session_start(i.s, now) == 0);
    pump(&i, &r);
    CHECK(rejected(&r, STS_REASON_SUITE) == 1 && strcmp(r.reason, "suite") == 0);
    CHECK(r.established == 1); /* the XX session is untouched */

    /* Unknown pattern or suite codes are refused the same way. */
    const uint8_t bad[][3] = { { 1, 1, 0x41 }, { 1, 1, 0x25 }, { 1, 1, 0x20 }, { 1, 1, 0x01 } };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        CHECK(sts_session_receive(r.s, now, bad[k], 3) == STS_ERR_UNSUPPORTED);
    CHECK(rejected(&r, STS_REASON_SUITE) == 5);
    unpair(&i, &r);

    /* Inconsistent configs. */
    struct sts_session *s;
    c = config(&i, STS_ROLE_INITIATOR, NULL);
    CHECK(sts_session_new(&s, &c) == STS_ERR_INVALID && !s); /* XX needs a key */
    c = config(&i, STS_ROLE_INITIATOR, i_priv);
    c.pattern = STS_PATTERN_IK;
    CHECK(sts_session_new(&s, &c) == STS_ERR_INVALID);       /* IK needs a pin */
    c = config(&i, STS_ROLE_RESPONDER, NULL);
    CHECK(sts_session_new(&s, &c) == STS_ERR_INVALID);       /* XX/IK need a key */
    c.allowed_patterns = STS_ALLOW(STS_PATTERN_NN);
    CHECK(sts_session_new(&s, &c) == 0);
    CHECK(sts_session_start(s, now) == STS_ERR_STATE);       /* responders never start */
    CHECK(sts_session_send(s, now, (const uint8_t *)"x", 1) == STS_ERR_STATE);
    sts_session_free(s);
    c.emit = NULL;
    CHECK(sts_session_new(&s, &c) == STS_ERR_INVALID);
}

/* ---- rejected inputs ----------------------------------------------------- */

static struct frame copy_frame(struct frame f)
{
    struct frame c = { malloc(f.len), f.len };
    memcpy(c.p, f.p, f.len);
    return c;
}

static void test_replay_and_reorder(void)
{
    struct peer i, r;
    pair(&i, &r, STS_PATTERN_XX);

    /* A duplicate is delivered once. */
    send_id(&i, 1);
    struct frame f = take(&i, 0), dup = copy_frame(f);
    CHECK(deliver(&r, f) == 0);
    CHECK(deliver(&r, dup) == STS_ERR_REPLAY);
    CHECK(r.seen[1] == 1 && rejected(&r, STS_REASON_REPLAY) == 1);

    /* Reordered within the window: each once, the repeats refused. */
    for (int k = 10; k < 60; k++)
        send_id(&i, k);
    struct frame saved[50];
    for (int k = 0; k < 50; k++)
        saved[k] = copy_frame(i.q[k]);
    while (i.nq)
        CHECK(deliver(&r, take(&i, i.nq - 1)) == 0); /* newest first */
    int replays = 0;
    for (int k = 0; k < 50; k++)
        replays += deliver(&r, saved[k]) == STS_ERR_REPLAY;
    CHECK(replays == 50);
    int once = 1;
    for (int k = 10; k < 60; k++)
        once &= r.seen[k] == 1;
    CHECK(once);

    /* Too old: more than a window of newer counters arrived first. */
    for (int k = 100; k < 100 + 1030; k++)
        send_id(&i, k);
    struct frame oldest = take(&i, 0), second = take(&i, 0);
    pump(&i, &r);
    CHECK(deliver(&r, oldest) == STS_ERR_REPLAY);   /* 1028 newer: out of the window */
    CHECK(r.seen[100] == 0);
    CHECK(deliver(&r, second) == STS_ERR_REPLAY);   /* 1027 newer: still too old */
    CHECK(rejected(&r, STS_REASON_REPLAY) == 1 + 50 + 2);
    CHECK(still_works(&i, &r));
    unpair(&i, &r);
}

/* Every prefix of a frame, every single-bit flip, forged bodies: all refused
 * and counted, the genuine frame still accepted once afterwards. */
static void test_mutations(void)
{
    struct peer i, r;
    pair(&i, &r, STS_PATTERN_XX);
    send_text(&i, "genuine");
    struct frame f = take(&i, 0);

    uint64_t before = sts_session_stats(r.s)->frames_in;
    int refused = 0;
    for (size_t len = 0; len < f.len; len++)
        refused += sts_session_receive(r.s, now, f.p, len) < 0;
    CHECK(refused == (int)f.len);
    CHECK(rejected(&r, STS_REASON_TRUNCATED) == 26);          /* below version+type+counter+tag */
    CHECK(rejected(&r, STS_REASON_AUTH) == f.len - 26);       /* a shorter ciphertext */

    uint8_t *m = malloc(f.len);
    refused = 0;
    for (size_t bit = 0; bit < f.len * 8; bit++) {
        memcpy(m, f.p, f.len);
        m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        refused += sts_session_receive(r.s, now, m, f.len) < 0;
    }
    CHECK(refused == (int)(f.len * 8));
    CHECK(rejected(&r, STS_REASON_BAD_VERSION) == 8);
    CHECK(r.messages == 0);

    /* Forged: random ciphertext under a valid header, a KILL too. */
    for (int k = 0; k < 20; k++) {
        sts_random(m, f.len);
        sts_frame_put_sealed_header(m, k % 2 ? STS_FRAME_KILL : STS_FRAME_ENC, (uint64_t)k);
        CHECK(sts_session_receive(r.s, now, m, f.len) == STS_ERR_AUTH);
    }
    free(m);
    CHECK(sts_session_stats(r.s)->frames_in - before == f.len + f.len * 8 + 20);
    uint64_t total = 0;
    for (int k = 0; k < STS_REASON_COUNT; k++)
        total += rejected(&r, k);
    CHECK(total == f.len + f.len * 8 + 20);
    CHECK(r.rejected == (int)total);
    CHECK(rejected(&r, STS_REASON_INTERNAL) == 0); /* the peer's input is never our failure */

    CHECK(deliver(&r, f) == 0 && r.messages == 1);
    CHECK(sts_session_state(r.s) == STS_STATE_ESTABLISHED);
    CHECK(still_works(&i, &r));
    unpair(&i, &r);
}

/* Handshake messages replayed on established sessions. */
static void test_old_handshake_messages(void)
{
    struct peer i, r;
    struct frame hs[3];

    /* Record a handshake's three frames. */
    peer_default(&i, STS_ROLE_INITIATOR, i_priv, r_pub);
    peer_default(&r, STS_ROLE_RESPONDER, r_priv, i_pub);
    CHECK(sts_session_start(i.s, now) == 0);
    hs[0] = copy_frame(i.q[0]);
    deliver(&r, take(&i, 0));
    hs[1] = copy_frame(r.q[0]);
    deliver(&i, take(&r, 0));
    hs[2] = copy_frame(i.q[0]);
    pump(&i, &r);
    CHECK(i.established == 1 && r.established == 1);

    /* For a handshake timeout the responder answers a repeated AUTHREQ
     * with its cached confirmation (a replay for the initiator). */
    CHECK(sts_session_receive(r.s, now, hs[2].p, hs[2].len) == 0);
    CHECK(r.nq == 1 && deliver(&i, take(&r, 0)) == STS_ERR_REPLAY);
    now += STS_SESSION_HANDSHAKE_TIMEOUT;
    sts_session_tick(r.s, now);
    CHECK(rejected(&r, STS_REASON_TIMEOUT) == 0); /* the cache simply expires */

    /* Then INITACK and AUTHREQ: nothing expects them any more. */
    CHECK(sts_session_receive(i.s, now, hs[1].p, hs[1].len) == STS_ERR_STATE);
    CHECK(sts_session_receive(r.s, now, hs[2].p, hs[2].len) == STS_ERR_STATE);
    CHECK(sts_session_receive(i.s, now, hs[0].p, hs[0].len) == STS_ERR_STATE);
    CHECK(rejected(&i, STS_REASON_STATE) == 2 && rejected(&r, STS_REASON_STATE) == 1);

    /* An old INITREQ looks new: a parallel handshake that goes nowhere.
     * The AUTHREQ of the old run does not complete it (different e). */
    CHECK(sts_session_receive(r.s, now, hs[0].p, hs[0].len) == 0);
    queue_clear(&r); /* its INITACK would reach nobody */
    CHECK(sts_session_receive(r.s, now, hs[2].p, hs[2].len) == STS_ERR_AUTH);
    CHECK(r.established == 1 && still_works(&i, &r));
    now += 11;
    sts_session_tick(r.s, now);
    queue_clear(&r);
    CHECK(rejected(&r, STS_REASON_TIMEOUT) == 1 && strcmp(r.reason, "timeout") == 0);
    CHECK(r.failed == 0 && still_works(&i, &r));
    for (int k = 0; k < 3; k++)
        free(hs[k].p);
    unpair(&i, &r);
}

/* An imposter's INITACK is refused and the genuine one still completes the
 * same handshake (the attempt is rebuilt, not restarted). */
static void test_untrusted(void)
{
    struct peer i, r, m;
    peer_default(&i, STS_ROLE_INITIATOR, i_priv, r_pub);
    peer_default(&r, STS_ROLE_RESPONDER, r_priv, i_pub);
    peer_default(&m, STS_ROLE_RESPONDER, m_priv, i_pub);
    CHECK(sts_session_start(i.s, now) == 0);
    struct frame initreq = take(&i, 0);
    CHECK(sts_session_receive(m.s, now, initreq.p, initreq.len) == 0);
    CHECK(deliver(&r, initreq) == 0);
    CHECK(deliver(&i, take(&m, 0)) == STS_ERR_KEY); /* the imposter answers first */
    CHECK(rejected(&i, STS_REASON_UNTRUSTED) == 1 && i.established == 0);
    pump(&i, &r);
    CHECK(i.established == 1 && r.established == 1);
    CHECK(memcmp(i.peer_key, r_pub, 32) == 0);
    CHECK(i.nq == 0 && still_works(&i, &r));
    peer_close(&m);

    /* An untrusted initiator: refused at AUTHREQ (XX) or at INITREQ (IK);
     * the responder's live session is not disturbed. */
    peer_default(&m, STS_ROLE_INITIATOR, m_priv, r_pub);
    CHECK(sts_session_start(m.s, now) == 0);
    pump(&m, &r);
    CHECK(rejected(&r, STS_REASON_UNTRUSTED) == 1);
    CHECK(m.established == 1 && r.established == 1); /* m is optimistic... */
    now += 11;
    sts_session_tick(m.s, now);
    CHECK(m.failed == 1 && sts_session_state(m.s) == STS_STATE_FAILED); /* ...until unconfirmed */
    peer_close(&m);
    struct sts_session_config c = config(&m, STS_ROLE_INITIATOR, m_priv);
    c.peer_static = r_pub; /* IK */
    peer_open(&m, &c);
    CHECK(sts_session_start(m.s, now) == 0);
    CHECK(deliver(&r, take(&m, 0)) == STS_ERR_KEY);
    CHECK(rejected(&r, STS_REASON_UNTRUSTED) == 2 && r.nq == 0);
    sts_session_tick(r.s, now);
    CHECK(still_works(&i, &r));
    peer_close(&m);
    unpair(&i, &r);
}

/* A KILL sealed by another session's keys (same topics, other handshake)
 * is refused; only the genuine one closes. */
static void test_kill(void)
{
    struct peer i, r, i2, r2;
    pair(&i2, &r2, STS_PATTERN_XX);
    pair(&i, &r, STS_PATTERN_XX);
    sts_session_close(i2.s, now, "forged");
    CHECK(i2.nq == 1 && frame_type(i2.q[0]) == STS_FRAME_KILL);
    CHECK(deliver(&r, take(&i2, 0)) == STS_ERR_AUTH);
    CHECK(r.closed == 0 && still_works(&i, &r));
    unpair(&i2, &r2);

    send_id(&i, 7);
    struct frame late = take(&i, 0);
    CHECK(sts_session_close(i.s, now, "bye") == 0);
    CHECK(i.closed == 1 && sts_session_state(i.s) == STS_STATE_CLOSED);
    struct frame kill = copy_frame(i.q[0]);
    pump(&i, &r);
    CHECK(r.closed == 1 && strcmp(r.reason, "bye") == 0);
    CHECK(sts_session_state(r.s) == STS_STATE_IDLE); /* the responder listens again */
    CHECK(deliver(&r, late) == STS_ERR_STATE && r.seen[7] == 0); /* keys are gone */
    CHECK(deliver(&r, kill) == STS_ERR_STATE);
    CHECK(sts_session_send(i.s, now, (const uint8_t *)"x", 1) == STS_ERR_STATE);
    CHECK(sts_session_close(i.s, now, "again") == 0 && i.closed == 1);

    /* A closed initiator can start again. */
    CHECK(sts_session_start(i.s, now) == 0);
    queue_clear(&r);
    pump(&i, &r);
    CHECK(i.established == 2 && r.established == 2 && still_works(&i, &r));

    /* A long reason is cut at a character boundary: "é" is 2 bytes. */
    char longer[200] = "x";
    for (int k = 0; k < 50; k++)
        strcat(longer, "\xc3\xa9");
    sts_session_close(r.s, now, longer);
    pump(&i, &r);
    CHECK(strlen(i.reason) == STS_SESSION_KILL_REASON_MAX - 1);
    CHECK(sts_session_state(i.s) == STS_STATE_CLOSED && sts_session_state(r.s) == STS_STATE_CLOSED);
    unpair(&i, &r);
}

/* ---- loss, retransmission, timeout --------------------------------------- */

/* Drops the `lost`-th frame of the handshake (counting every frame, the
 * confirmation included), then ticks both sides until established. */
static void lose_one(enum sts_pattern pattern, int lost)
{
    struct peer i, r;
    struct sts_session_config ci = initiator_config(&i, pattern);
    struct sts_session_config cr = config(&r, STS_ROLE_RESPONDER, r_priv);
    double t0 = now;
    open_pair(&i, &r, &ci, &cr);
    int n = 0;
    for (int round = 0; round < 20 && (i.nq || r.nq || n <= lost); round++) {
        while (i.nq || r.nq) {
            struct peer *from = i.nq ? &i : &r, *to = i.nq ? &r : &i;
            struct frame f = take(from, 0);
            if (n++ == lost)
                free(f.p);
            else
                deliver(to, f);
        }
        now += 1;
        sts_session_tick(i.s, now);
        sts_session_tick(r.s, now);
    }
    /* A lost IK confirmation: the responder waits for a frame from a live
     * initiator (§ Replayed INITREQs), and the first message is one. */
    int confirmation_lost = pattern == STS_PATTERN_IK && lost == 2;
    CHECK(i.established == 1 && r.established == !confirmation_lost);
    if (confirmation_lost) {
        send_text(&i, "hello");
        pump(&i, &r);
        CHECK(r.established == 1 && r.messages == 1);
    } else {
        CHECK(sts_session_stats(i.s)->retransmits + sts_session_stats(r.s)->retransmits >= 1);
    }
    CHECK(still_works(&i, &r));
    /* Nothing is resent once both hold confirmed keys. */
    uint64_t re = sts_session_stats(i.s)->retransmits + sts_session_stats(r.s)->retransmits;
    for (int k = 0; k < 12; k++) {
        now += 1;
        sts_session_tick(i.s, now);
        sts_session_tick(r.s, now);
    }
    CHECK(i.nq == 0 && r.nq == 0);
    CHECK(re == sts_session_stats(i.s)->retransmits + sts_session_stats(r.s)->retransmits);
    CHECK(i.failed == 0 && r.failed == 0 && still_works(&i, &r));
    CHECK(now - t0 < 30);
    unpair(&i, &r);
}

static void test_loss(void)
{
    for (int lost = 0; lost < 4; lost++) /* INITREQ, INITACK, AUTHREQ, confirmation */
        lose_one(STS_PATTERN_XX, lost);
    for (int lost = 0; lost < 3; lost++) /* INITREQ, INITACK, confirmation */
        lose_one(STS_PATTERN_IK, lost);
}

/* Duplicates of every handshake frame (QoS 1) change nothing. */
static void test_duplicates(void)
{
    struct peer i, r;
    open_default_pair(&i, &r);
    int handshake_ok = 1, confirmations = 0, replays = 0;
    while (i.nq || r.nq) {
        struct peer *from = i.nq ? &i : &r, *to = i.nq ? &r : &i;
        struct frame f = take(from, 0), d = copy_frame(f);
        int type = frame_type(f);
        for (int k = 0; k < 2; k++) {
            int rc = deliver(to, k ? d : f);
            if (type != STS_FRAME_ENC)
                handshake_ok &= rc == 0; /* processed, or answered from the cache */
            else if (rc == 0)
                confirmations++;
            else
                replays += rc == STS_ERR_REPLAY;
        }
    }
    /* Every cached answer is the same confirmation frame: accepted once. */
    CHECK(handshake_ok && confirmations == 1 && replays == (int)rejected(&i, STS_REASON_REPLAY));
    CHECK(replays > 0);
    CHECK(i.established == 1 && r.established == 1);
    CHECK(i.failed == 0 && r.failed == 0 && still_works(&i, &r));
    unpair(&i, &r);
}

static void test_timeout(void)
{
    struct peer i;
    double t0 = now, deadline;
    peer_default(&i, STS_ROLE_INITIATOR, i_priv, r_pub);
    CHECK(sts_session_state(i.s) == STS_STATE_IDLE && isinf(sts_session_tick(i.s, now)));
    CHECK(sts_session_start(i.s, now) == 0);
    CHECK(sts_session_tick(i.s, now) == t0 + 1);
    /* Resent at 1, 3, 7 (delays 1, 2, 4); the next (15) is past the timeout. */
    double expect[] = { t0 + 3, t0 + 7, t0 + 10 };
    for (int k = 0; k < 3; k++) {
        now = k == 0 ? t0 + 1 : expect[k - 1];
        deadline = sts_session_tick(i.s, now);
        CHECK(deadline == expect[k]);
    }
    CHECK(i.nq == 4 && sts_session_stats(i.s)->retransmits == 3);
    int same = 1;
    for (size_t k = 1; k < i.nq; k++)
        same &= i.q[k].len == i.q[0].len && memcmp(i.q[k].p, i.q[0].p, i.q[0].len) == 0;
    CHECK(same); /* byte-identical retransmissions */
    now = t0 + 10;
    CHECK(isinf(sts_session_tick(i.s, now)));
    CHECK(i.failed == 1 && strcmp(i.reason, "timeout") == 0);
    CHECK(sts_session_state(i.s) == STS_STATE_FAILED);
    CHECK(rejected(&i, STS_REASON_TIMEOUT) == 1);
    /* The retransmission delay stops doubling at retransmit_max. */
    peer_close(&i);
    struct sts_session_config c = config(&i, STS_ROLE_INITIATOR, i_priv);
    c.handshake_timeout = 100;
    c.retransmit_max = 4;
    peer_open(&i, &c);
    t0 = now;
    CHECK(sts_session_start(i.s, now) == 0);
    double at = t0 + 1, delays[] = { 2, 4, 4, 4 };
    for (int k = 0; k < 4; k++) {
        now = at;
        deadline = sts_session_tick(i.s, now);
        CHECK(deadline == at + delays[k]);
        at = deadline;
    }
    peer_close(&i);
}

/* ---- restart ------------------------------------------------------------- */

static void test_restart(enum sts_pattern pattern)
{
    struct peer i, r, i2;
    pair(&i, &r, pattern);
    struct sts_session_config c = initiator_config(&i2, pattern);
    peer_open(&i2, &c);
    i2.trusted[0] = r_pub;

    /* i2 is i restarted: same static key, no memory of the session. */
    CHECK(sts_session_start(i2.s, now) == 0);
    CHECK(deliver(&r, take(&i2, 0)) == 0);
    struct frame initack = take(&r, 0);
    CHECK(r.established == 1 && still_works(&i, &r)); /* still the old session */
    CHECK(deliver(&i2, initack) == 0);
    if (pattern == STS_PATTERN_XX) {
        send_text(&r, "old");  /* before AUTHREQ: still on the old keys */
        CHECK(deliver(&i, take(&r, 0)) == 0 && i.messages == 2);
    }
    pump(&i2, &r);
    CHECK(i2.established == 1 && r.established == 2); /* replaced after authentication */
    CHECK(memcmp(r.peer_key, i_pub, 32) == 0);
    sts_session_tick(r.s, now + 1); /* the new keys are confirmed: nothing expires */
    sts_session_tick(i2.s, now + 1);
    CHECK(r.failed == 0 && i2.failed == 0 && still_works(&i2, &r));
    /* The old initiator's late frames are still read during the grace time. */
    send_id(&i, 5);
    CHECK(deliver(&r, take(&i, 0)) == 0 && r.seen[5] == 1);
    now += STS_SESSION_EPOCH_GRACE + 1;
    sts_session_tick(r.s, now);
    send_id(&i, 6);
    CHECK(deliver(&r, take(&i, 0)) < 0 && r.seen[6] == 0);
    peer_close(&i2);
    unpair(&i, &r);
}

/* A different identity, even a trusted one, cannot take a live session. */
static void test_other_identity(void)
{
    struct peer i, r, m;
    pair(&i, &r, STS_PATTERN_XX);
    r.trusted[1] = m_pub;
    peer_default(&m, STS_ROLE_INITIATOR, m_priv, r_pub);
    CHECK(sts_session_start(m.s, now) == 0);
    pump(&m, &r);
    CHECK(rejected(&r, STS_REASON_UNTRUSTED) == 1 && r.established == 1);
    CHECK(memcmp(r.peer_key, i_pub, 32) == 0 && still_works(&i, &r));
    peer_close(&m);
    unpair(&i, &r);

    /* Nor can an unauthenticated handshake, even where NN is allowed. */
    pair(&i, &r, STS_PATTERN_XX);
    struct sts_session_config c = config(&r, STS_ROLE_RESPONDER, r_priv);
    c.allowed_patterns = STS_ALLOW(STS_PATTERN_NN) | STS_ALLOW(STS_PATTERN_XX);
    peer_close(&r);
    peer_open(&r, &c);
    r.trusted[0] = i_pub;
    CHECK(sts_session_start(i.s, now) == 0); /* re-handshake on demand */
    pump(&i, &r);
    CHECK(i.established == 2 && r.established == 1);
    c = config(&m, STS_ROLE_INITIATOR, NULL);
    c.pattern = STS_PATTERN_NN;
    peer_open(&m, &c);
    CHECK(sts_session_start(m.s, now) == 0);
    CHECK(deliver(&r, take(&m, 0)) == STS_ERR_KEY);
    CHECK(rejected(&r, STS_REASON_UNTRUSTED) == 1 && r.nq == 0 && still_works(&i, &r));
    peer_close(&m);
    unpair(&i, &r);
}

/* A responder that lost its session asks for a new handshake; the
 * initiator acts on that only once its session is old enough. */
static void test_resync(void)
{
    struct peer i, r;
    pair(&i, &r, STS_PATTERN_XX);
    peer_close(&r);
    peer_default(&r, STS_ROLE_RESPONDER, r_priv, i_pub); /* restarted */

    send_id(&i, 1);
    CHECK(deliver(&r, take(&i, 0)) == STS_ERR_STATE);
    CHECK(r.nq == 1 && frame_type(r.q[0]) == STS_FRAME_RESYNC && r.q[0].len == 2);
    send_id(&i, 2);
    CHECK(deliver(&r, take(&i, 0)) == STS_ERR_STATE);
    CHECK(r.nq == 1); /* rate-limited */
    CHECK(deliver(&i, take(&r, 0)) == STS_ERR_STATE); /* too soon after the handshake */
    now += STS_SESSION_HANDSHAKE_TIMEOUT;
    send_id(&i, 3);
    CHECK(deliver(&r, take(&i, 0)) == STS_ERR_STATE);
    CHECK(deliver(&i, take(&r, 0)) == 0);
    CHECK(sts_session_stats(i.s)->resyncs_received == 1);
    CHECK(i.nq == 1 && frame_type(i.q[0]) == STS_FRAME_INITREQ);
    CHECK(sts_session_state(i.s) == STS_STATE_ESTABLISHED); /* old keys kept meanwhile */
    pump(&i, &r);
    sts_session_tick(i.s, now + 1); /* the new keys are confirmed: nothing expires */
    CHECK(i.failed == 0 && sts_session_state(i.s) == STS_STATE_ESTABLISHED);
    CHECK(i.established == 2 && r.established == 1 && still_works(&i, &r));
    /* RESYNC to a responder, or with a body, is refused. */
    const uint8_t resync[] = { 1, 7, 0 };
    CHECK(sts_session_receive(r.s, now, resync, 2) == STS_ERR_STATE);
    CHECK(sts_session_receive(i.s, now, resync, 3) == STS_ERR_INVALID);
    unpair(&i, &r);

    /* IK: a restarted responder fed a replayed INITREQ holds keys nobody
     * has (pending, never reported established: § Replayed INITREQs); the
     * initiator's frames fail on them and still get a RESYNC, and the real
     * handshake replaces the phantom. */
    struct sts_session_config ci = initiator_config(&i, STS_PATTERN_IK);
    struct sts_session_config cr = config(&r, STS_ROLE_RESPONDER, r_priv);
    open_pair(&i, &r, &ci, &cr);
    struct frame initreq = copy_frame(i.q[0]);
    pump(&i, &r);
    peer_close(&r);
    peer_default(&r, STS_ROLE_RESPONDER, r_priv, i_pub);
    now += STS_SESSION_HANDSHAKE_TIMEOUT; /* past the initiator's RESYNC hold-off */
    CHECK(deliver(&r, initreq) == 0 && r.established == 0);
    CHECK(sts_session_state(r.s) == STS_STATE_HANDSHAKE);
    CHECK(r.nq == 1); /* one INITACK, never retransmitted */
    queue_clear(&r);
    now += 2;
    sts_session_tick(r.s, now);
    CHECK(r.nq == 0 && r.established == 0);
    send_id(&i, 4);
    CHECK(deliver(&r, take(&i, 0)) == STS_ERR_AUTH);
    CHECK(r.nq == 1 && frame_type(r.q[0]) == STS_FRAME_RESYNC);
    CHECK(deliver(&i, take(&r, 0)) == 0);
    pump(&i, &r);
    CHECK(r.established == 1 && r.failed == 0 && still_works(&i, &r));
    now += STS_SESSION_HANDSHAKE_TIMEOUT;
    sts_session_tick(r.s, now);
    CHECK(r.failed == 0 && still_works(&i, &r));
    unpair(&i, &r);
}

/* ---- rekey ----------------------------------------------------------------- */

static void shuffle(struct frame *f, size_t n)
{
    for (size_t k = n - 1; k > 0; k--) {
        size_t j = (size_t)rand() % (k + 1);
        struct frame t = f[k];
        f[k] = f[j];
        f[j] = t;
    }
}

/* An established XX pair with these rekey settings on both sides. */
static void pair_rekeying(struct peer *i, struct peer *r, uint64_t messages, double seconds)
{
    struct sts_session_config ci = config(i, STS_ROLE_INITIATOR, i_priv);
    struct sts_session_config cr = config(r, STS_ROLE_RESPONDER, r_priv);
    ci.rekey_messages = cr.rekey_messages = messages;
    ci.rekey_seconds = cr.rekey_seconds = seconds;
    open_pair(i, r, &ci, &cr);
    pump(i, r);
}

static void test_rekey_by_count(void)
{
    struct peer i, r;
    pair_rekeying(&i, &r, 5, 0);

    /* 23 messages: epochs 0..4 of 5 messages each, counters jump to 2^32 k. */
    for (int k = 0; k < 23; k++)
        send_id(&i, k);
    int layout = 1;
    for (int k = 0; k < 23; k++)
        layout &= frame_counter(i.q[k]) == ((uint64_t)(k / 5) << 32 | (uint64_t)(k % 5));
    CHECK(layout);
    CHECK(sts_session_stats(i.s)->rekeys == 4);

    /* Shuffled within pairs of neighbouring epochs, then repeated. */
    struct frame f[23], copies[23];
    for (int k = 0; k < 23; k++) {
        f[k] = take(&i, 0);
        copies[k] = copy_frame(f[k]);
    }
    srand(34);
    for (int k = 0; k < 23; k += 10)
        shuffle(f + k, k + 10 <= 23 ? 10 : 23 - (size_t)k);
    int ok = 0;
    for (int k = 0; k < 23; k++)
        ok += deliver(&r, f[k]) == 0;
    CHECK(ok == 23);
    int once = 1;
    for (int k = 0; k < 23; k++)
        once &= r.seen[k] == 1;
    CHECK(once);
    int refused = 0;
    for (int k = 0; k < 23; k++)
        refused += deliver(&r, copies[k]) < 0;
    CHECK(refused == 23);
    CHECK(rejected(&r, STS_REASON_STALE_EPOCH) == 15); /* epochs 0-2: keys wiped */
    CHECK(rejected(&r, STS_REASON_REPLAY) == 8);        /* epochs 3-4: in the window */

    /* At most 4 epochs ahead: 5 skipped epochs are refused, 4 accepted. */
    for (int k = 0; k < 30; k++)
        send_id(&i, 100 + k);
    /* ids 100-101 end epoch 4, then 5 per epoch: 125 is in 9, 120 in 8 */
    struct frame e9 = take(&i, 25), e8 = take(&i, 20);
    queue_clear(&i);
    CHECK(deliver(&r, e9) == STS_ERR_EXPIRED && rejected(&r, STS_REASON_STALE_EPOCH) == 16);
    CHECK(deliver(&r, e8) == 0 && r.seen[120] == 1);
    CHECK(still_works(&i, &r));
    unpair(&i, &r);
}

static void test_rekey_by_time(void)
{
    struct peer i, r;
    pair_rekeying(&i, &r, 0, 10);

    double t0 = now;
    send_id(&i, 1);                       /* epoch 0 starts with its first message */
    CHECK(sts_session_tick(i.s, now) == t0 + 10);
    now = t0 + 5;
    send_id(&i, 2);
    now = t0 + 10;
    send_id(&i, 3);                       /* epoch 0 is over: this opens epoch 1 */
    now = t0 + 20;
    sts_session_tick(i.s, now);           /* epoch 1 over: rekey without sending */
    now = t0 + 25;
    send_id(&i, 4);
    CHECK(frame_counter(i.q[0]) >> 32 == 0 && frame_counter(i.q[1]) >> 32 == 0);
    CHECK(frame_counter(i.q[2]) >> 32 == 1 && frame_counter(i.q[3]) >> 32 == 2);
    /* An idle epoch is not skipped: ticks alone never move the sender on. */
    now = t0 + 200;
    sts_session_tick(i.s, now);
    sts_session_tick(i.s, now + 100);
    send_id(&i, 5);
    CHECK(frame_counter(i.q[4]) >> 32 == 3);

    /* Delivered late and out of order across the boundaries. */
    struct frame f0 = take(&i, 0);
    CHECK(deliver(&r, take(&i, 2)) == 0);  /* epoch 2 first */
    CHECK(deliver(&r, take(&i, 1)) == 0);  /* then epoch 1: the previous epoch */
    CHECK(deliver(&r, take(&i, 0)) == STS_ERR_EXPIRED); /* epoch 0: its key is gone */
    CHECK(deliver(&r, f0) == STS_ERR_EXPIRED);
    CHECK(r.seen[1] == 0 && r.seen[2] == 0 && r.seen[3] == 1 && r.seen[4] == 1);
    /* epoch 3 arrives; the key of epoch 2 stays for the grace time only. */
    CHECK(deliver(&r, take(&i, 0)) == 0 && r.seen[5] == 1);
    send_id(&r, 9);
    pump(&i, &r);
    CHECK(i.seen[9] == 1);
    unpair(&i, &r);
}

/* ---- the rest ------------------------------------------------------------ */

static void test_limits_and_echo(void)
{
    struct peer i, r;
    pair(&i, &r, STS_PATTERN_XX);
    uint8_t *big = calloc(1, STS_FRAME_PAYLOAD_MAX + 1);
    CHECK(sts_session_send(i.s, now, big, STS_FRAME_PAYLOAD_MAX + 1) == STS_ERR_TOO_BIG);
    CHECK(sts_session_send(i.s, now, big, STS_FRAME_PAYLOAD_MAX) == 0);
    CHECK(i.q[0].len == STS_FRAME_MAX_DEFAULT);
    pump(&i, &r);
    CHECK(r.messages == 1);
    free(big);

    /* An empty message is a keepalive: accepted, not delivered. */
    CHECK(sts_session_send(i.s, now, NULL, 0) == 0);
    pump(&i, &r);
    CHECK(r.messages == 1 && rejected(&r, STS_REASON_AUTH) == 0);

    /* A handler may send from inside the callback. */
    r.echo = 1;
    send_text(&i, "hello");
    pump(&i, &r);
    CHECK(i.messages == 1 && r.messages == 2);
    r.echo = 0;
    unpair(&i, &r);

    /* A smaller frame limit applies both ways. */
    struct sts_session_config ci = config(&i, STS_ROLE_INITIATOR, i_priv);
    struct sts_session_config cr = config(&r, STS_ROLE_RESPONDER, r_priv);
    ci.max_frame = cr.max_frame = 200;
    open_pair(&i, &r, &ci, &cr);
    pump(&i, &r);
    uint8_t buf[200] = { 0 };
    CHECK(sts_session_send(i.s, now, buf, 200 - 26) == 0);
    CHECK(sts_session_send(i.s, now, buf, 200 - 26) == 0);
    CHECK(sts_session_send(i.s, now, buf, 200 - 25) == STS_ERR_TOO_BIG);
    struct frame f = take(&i, 1);
    uint8_t longer[201] = { 0 };
    memcpy(longer, f.p, f.len);
    CHECK(sts_session_receive(r.s, now, longer, 201) == STS_ERR_TOO_BIG);
    CHECK(deliver(&r, f) == 0);
    unpair(&i, &r);
}

/* The prologue binds both topics: a broker that crosses topics breaks the
 * handshake instead of delivering. */
static void test_topics_bound(void)
{
    struct peer i, r;
    struct sts_session_config ci = config(&i, STS_ROLE_INITIATOR, i_priv);
    struct sts_session_config cr = config(&r, STS_ROLE_RESPONDER, r_priv);
    cr.topic_out = "plant/s8/down";
    open_pair(&i, &r, &ci, &cr);
    pump(&i, &r);
    CHECK(rejected(&i, STS_REASON_AUTH) == 1 && i.established == 0 && r.established == 0);
    unpair(&i, &r);
}

static void test_memory(void)
{
    struct peer i, r;
    pair(&i, &r, STS_PATTERN_XX);
    now += STS_SESSION_HANDSHAKE_TIMEOUT; /* the responder's reply cache expires */
    sts_session_tick(i.s, now);
    sts_session_tick(r.s, now);
    size_t mi = sts_session_memory(i.s), mr = sts_session_memory(r.s);
    printf("established session: %zu bytes (initiator), %zu bytes (responder), "
           "topics of %zu+%zu bytes included\n", mi, mr, strlen(UP), strlen(DOWN));
    CHECK(mi < 2048 && mr < 2048);

    /* Messages pass through the process's buffers: a session keeps none. */
    uint8_t *big = calloc(1, STS_FRAME_PAYLOAD_MAX);
    CHECK(sts_session_send(i.s, now, big, STS_FRAME_PAYLOAD_MAX) == 0);
    pump(&i, &r);
    CHECK(sts_session_send(r.s, now, big, STS_FRAME_PAYLOAD_MAX) == 0);
    pump(&i, &r);
    CHECK(sts_session_memory(i.s) == mi && sts_session_memory(r.s) == mr);
    free(big);

    CHECK(sts_session_start(i.s, now) == 0);
    printf("during a re-handshake: %zu bytes\n", sts_session_memory(i.s));
    pump(&i, &r);
    /* The previous keys' receive slot is kept for the grace time only. */
    size_t regrown = sts_session_memory(r.s);
    CHECK(regrown > mr);
    now += STS_SESSION_EPOCH_GRACE + STS_SESSION_HANDSHAKE_TIMEOUT;
    sts_session_tick(r.s, now);
    CHECK(sts_session_memory(r.s) == mr);
    printf("after a re-handshake: %zu bytes, %zu after the grace time\n", regrown, mr);
    unpair(&i, &r);
}

/* A message delivered while another is being delivered (its handler makes a
 * second session receive) gets a buffer of its own: both arrive intact. */
static void test_nested_delivery(void)
{
    struct peer i, r, i2, r2;
    pair(&i, &r, STS_PATTERN_XX);
    pair(&i2, &r2, STS_PATTERN_XX);
    CHECK(sts_session_send(i2.s, now, (const uint8_t *)"inner message", 13) == 0);
    r.nested[0] = &i2;
    r.nested[1] = &r2;
    CHECK(sts_session_send(i.s, now, (const uint8_t *)"outer message", 13) == 0);
    pump(&i, &r);
    CHECK(r.messages == 1 && r.last_sum == checksum((const uint8_t *)"outer message", 13));
    CHECK(r2.messages == 1 && r2.last_sum == checksum((const uint8_t *)"inner message", 13));
    /* The shared buffer is free again: the next message passes through it. */
    CHECK(sts_session_send(i.s, now, (const uint8_t *)"after", 5) == 0);
    pump(&i, &r);
    CHECK(r.messages == 2 && r.last_len == 5);
    unpair(&i, &r);
    unpair(&i2, &r2);
}

/* Responders made from one set of shared settings: each works on its own
 * topics, counts none of the settings' memory, and keeps them when the
 * maker drops its reference. */
static void test_shared(void)
{
    struct peer i[2], r[2];
    struct sts_session_config cr = config(&r[0], STS_ROLE_RESPONDER, r_priv);
    struct sts_session_shared *sh;
    static const char *const up[2] = { "plant/a/up", "plant/b/up" }, *const down[2] = { "plant/a/down", "plant/b/down" };
    cr.topic_in = cr.topic_out = NULL;
    CHECK(sts_session_shared_new(&sh, &cr) == 0);
    for (int k = 0; k < 2; k++) {
        struct sts_session_config ci = config(&i[k], STS_ROLE_INITIATOR, i_priv);
        ci.topic_out = up[k];
        ci.topic_in = down[k];
        peer_open(&i[k], &ci);
        memset(&r[k], 0, sizeof r[k]);
        CHECK(sts_session_new_shared(&r[k].s, sh, down[k], up[k], &r[k]) == 0);
        i[k].trusted[0] = r_pub;
        r[k].trusted[0] = i_pub;
    }
    struct sts_session *alone;
    cr.topic_in = up[0];
    cr.topic_out = down[0];
    CHECK(sts_session_new(&alone, &cr) == 0);
    CHECK(sts_session_memory(r[0].s) + sts_session_shared_memory() == sts_session_memory(alone));
    sts_session_free(alone);
    sts_session_shared_free(sh);
    for (int k = 0; k < 2; k++) {
        CHECK(sts_session_start(i[k].s, now) == 0);
        pump(&i[k], &r[k]);
        CHECK(r[k].established == 1 && i[k].established == 1);
        send_text(&i[k], "m1");
        pump(&i[k], &r[k]);
        CHECK(r[k].messages == 1);
    }
    unpair(&i[0], &r[0]);
    CHECK(sts_session_start(i[1].s, now) == 0); /* the keys still serve the other */
    pump(&i[1], &r[1]);
    CHECK(r[1].established == 2);
    unpair(&i[1], &r[1]);
}

/* Messages of growing and shrinking sizes arrive intact through the
 * session's reused buffers, also when a handler sends the very bytes it was
 * given (received plaintext and outgoing frame must not share a buffer). */
static void test_message_sizes(void)
{
    static const size_t sizes[] = { 1, 5, 100, 101, 4000, STS_FRAME_PAYLOAD_MAX, 3, 60000, 0, 7 };
    struct peer i, r;
    uint8_t *m = malloc(STS_FRAME_PAYLOAD_MAX);
    pair(&i, &r, STS_PATTERN_XX);
    r.echo_back = 1;
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t len = sizes[k];
        int ri = r.messages, ii = i.messages;
        CHECK(sts_random(m, STS_FRAME_PAYLOAD_MAX) == 0);
        CHECK(sts_session_send(i.s, now, m, len) == 0);
        pump(&i, &r);
        int delivered = len > 0; /* an empty message is a keepalive */
        CHECK(r.messages == ri + delivered && i.messages == ii + delivered);
        if (delivered) {
            CHECK(r.last_len == len && r.last_sum == checksum(m, len));
            CHECK(i.last_len == len && i.last_sum == checksum(m, len));
        }
    }
    CHECK(rejected(&i, STS_REASON_AUTH) == 0 && rejected(&r, STS_REASON_AUTH) == 0);
    free(m);
    unpair(&i, &r);
}

/* An INITREQ whose ephemeral key is a low-order point: Noise refuses the DH
 * when answering, and that is the peer's bad message (auth), not a failure
 * of ours nor a layout error. */
static void test_low_order_initreq(void)
{
    struct peer r;
    peer_default(&r, STS_ROLE_RESPONDER, r_priv, i_pub);
    uint8_t initreq[3 + 32] = { STS_FRAME_VERSION, STS_FRAME_INITREQ,
                                (uint8_t)(STS_PATTERN_XX << 4 | STS_SUITE_CHACHAPOLY_SHA256) };
    CHECK(sts_session_receive(r.s, now, initreq, sizeof initreq) == STS_ERR_AUTH);
    CHECK(rejected(&r, STS_REASON_AUTH) == 1 && strcmp(r.reason, "auth") == 0);
    CHECK(rejected(&r, STS_REASON_MALFORMED) == 0 && rejected(&r, STS_REASON_INTERNAL) == 0);
    CHECK(r.nq == 0 && sts_session_state(r.s) == STS_STATE_IDLE);
    peer_close(&r);
}

/* ---- replayed INITREQs and cookies ---------------------------------------------- */

/* An IK INITREQ captured earlier and replayed while the genuine initiator
 * re-handshakes is refused by its timestamp: it neither replaces the attempt
 * in flight nor the session. */
static void test_replayed_initreq(void)
{
    struct peer i, r;
    struct sts_session_config ci = initiator_config(&i, STS_PATTERN_IK);
    struct sts_session_config cr = config(&r, STS_ROLE_RESPONDER, r_priv);
    open_pair(&i, &r, &ci, &cr);
    struct frame old = copy_frame(i.q[0]);
    CHECK(deliver(&r, take(&i, 0)) == 0);
    CHECK(r.established == 0 && sts_session_state(r.s) == STS_STATE_HANDSHAKE); /* not before a live frame */
    pump(&i, &r);
    CHECK(r.established == 1 && still_works(&i, &r));
    CHECK(sts_session_start(i.s, now) == 0);
    CHECK(deliver(&r, take(&i, 0)) == 0);
    struct frame replay = copy_frame(old);
    CHECK(deliver(&r, old) == STS_ERR_REPLAY && rejected(&r, STS_REASON_REPLAY) == 1);
    pump(&i, &r);
    CHECK(i.established == 2 && r.established == 2 && still_works(&i, &r));
    /* With no attempt in flight it is only an attempt (a peer whose clock
     * went back looks the same): answered, never reported, and the live
     * session goes on; it times out. */
    CHECK(deliver(&r, replay) == 0 && r.nq == 1);
    CHECK(deliver(&i, take(&r, 0)) == STS_ERR_STATE); /* the live initiator has no attempt */
    CHECK(r.established == 2 && still_works(&i, &r));
    now += STS_SESSION_HANDSHAKE_TIMEOUT + 1;
    sts_session_tick(r.s, now);
    sts_session_tick(i.s, now);
    CHECK(r.established == 2 && r.failed == 0 && still_works(&i, &r));
    unpair(&i, &r);
}

/* A clock set back (no RTC, an NTP step back) and restarted. */
static uint64_t clock_set_back(void *ctx)
{
    (void)ctx;
    return 1;
}

/* An initiator restarted with its clock set back still gets a session on a
 * responder whose old session lives on (never idle), and re-handshakes. */
static void test_clock_set_back(void)
{
    struct peer i, r, i2;
    pair(&i, &r, STS_PATTERN_IK);
    struct sts_session_config c = initiator_config(&i2, STS_PATTERN_IK);
    c.timestamp = clock_set_back;
    peer_open(&i2, &c);
    i2.trusted[0] = r_pub;
    CHECK(sts_session_start(i2.s, now) == 0);
    CHECK(deliver(&r, take(&i2, 0)) == 0 && r.nq == 1);
    struct frame initack = take(&r, 0);
    CHECK(r.established == 1 && still_works(&i, &r)); /* the old session, untouched */
    CHECK(deliver(&i2, initack) == 0);
    pump(&i2, &r);
    CHECK(i2.established == 1 && r.established == 2 && still_works(&i2, &r));
    /* Its next handshake is above the stamp that session was confirmed with. */
    CHECK(sts_session_start(i2.s, now) == 0);
    pump(&i2, &r);
    CHECK(i2.established == 2 && r.established == 3 && rejected(&r, STS_REASON_REPLAY) == 0);
    CHECK(still_works(&i2, &r));
    peer_close(&i2);
    unpair(&i, &r);
}

/* Copies of a handshake frame get the cached reply at most once per half
 * retransmission interval. */
static void test_duplicate_answers_bounded(void)
{
    struct peer i, r;
    open_default_pair(&i, &r);
    struct frame initreq = take(&i, 0);
    CHECK(sts_session_receive(r.s, now, initreq.p, initreq.len) == 0 && r.nq == 1);
    for (int k = 0; k < 5; k++)
        CHECK(sts_session_receive(r.s, now, initreq.p, initreq.len) == 0);
    CHECK(r.nq == 2); /* one more INITACK for five copies */
    now += STS_SESSION_RETRANSMIT / 2;
    CHECK(sts_session_receive(r.s, now, initreq.p, initreq.len) == 0 && r.nq == 3);
    free(initreq.p);
    pump(&i, &r);
    CHECK(i.established == 1 && r.established == 1 && still_works(&i, &r));
    unpair(&i, &r);
}

/* A COOKIE makes the initiator send its INITREQ again at once with the
 * cookie after it, which the responder's engine ignores. */
static void test_cookie(enum sts_pattern pattern)
{
    struct peer i, r;
    struct sts_session_config ci = initiator_config(&i, pattern);
    struct sts_session_config cr = config(&r, STS_ROLE_RESPONDER, r_priv);
    open_pair(&i, &r, &ci, &cr);
    struct frame first = take(&i, 0);
    uint8_t cookie[2 + STS_FRAME_COOKIE_LEN] = { 1, STS_FRAME_COOKIE };
    for (int k = 0; k < STS_FRAME_COOKIE_LEN; k++)
        cookie[2 + k] = (uint8_t)(0xa0 + k);
    const uint8_t *in;
    CHECK(sts_initreq_cookie(first.p, first.len, &in) == first.len && in == NULL);
    CHECK(sts_session_receive(i.s, now, cookie, sizeof cookie) == 0 && i.nq == 1);
    CHECK(i.q[0].len == first.len + STS_FRAME_COOKIE_LEN && memcmp(i.q[0].p, first.p, first.len) == 0);
    CHECK(sts_initreq_cookie(i.q[0].p, i.q[0].len, &in) == first.len && in &&
          memcmp(in, cookie + 2, STS_FRAME_COOKIE_LEN) == 0);
    CHECK(sts_session_receive(i.s, now, cookie, sizeof cookie) == STS_ERR_STATE && i.nq == 1);
    /* Other cookies: taken, but resent at once only after half a retransmit. */
    cookie[2] ^= 1;
    CHECK(sts_session_receive(i.s, now, cookie, sizeof cookie) == 0 && i.nq == 1);
    now += STS_SESSION_RETRANSMIT / 2;
    cookie[2] ^= 2;
    CHECK(sts_session_receive(i.s, now, cookie, sizeof cookie) == 0 && i.nq == 2);
    CHECK(sts_initreq_cookie(i.q[1].p, i.q[1].len, &in) == first.len && in &&
          memcmp(in, cookie + 2, STS_FRAME_COOKIE_LEN) == 0);
    free(take(&i, 1).p);
    free(first.p);
    pump(&i, &r);
    CHECK(i.established == 1 && r.established == 1 && still_works(&i, &r));
    /* A responder never acts on one. */
    CHECK(sts_session_receive(r.s, now, cookie, sizeof cookie) == STS_ERR_STATE);
    unpair(&i, &r);
}

int main(void)
{
    if (sts_x25519_keypair(i_priv, i_pub) || sts_x25519_keypair(r_priv, r_pub) ||
        sts_x25519_keypair(m_priv, m_pub)) {
        printf("cannot make keys\n");
        return 1;
    }
    now = 1000;
    test_patterns();
    test_defaults();
    test_replay_and_reorder();
    test_mutations();
    test_old_handshake_messages();
    test_untrusted();
    test_kill();
    test_loss();
    test_duplicates();
    test_timeout();
    test_restart(STS_PATTERN_XX);
    test_restart(STS_PATTERN_IK);
    test_other_identity();
    test_resync();
    test_rekey_by_count();
    test_rekey_by_time();
    test_limits_and_echo();
    test_topics_bound();
    test_memory();
    test_nested_delivery();
    test_shared();
    test_message_sizes();
    test_low_order_initreq();
    test_replayed_initreq();
    test_clock_set_back();
    test_cookie(STS_PATTERN_IK);
    test_cookie(STS_PATTERN_XX);
    test_duplicate_answers_bounded();
    return unit_done();
}
