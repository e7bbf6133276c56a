/* STS sessions under arbitrary input: frames into a listening responder and
 * into both ends of an established pair, interleaved with genuine traffic
 * (delivered, mutated, replayed), time jumps, re-handshakes and closes.
 * Checked: nothing crashes, and every delivered message is one the peer
 * really sent, delivered at most once (each carries a unique sequence
 * number). */
#include "crypto/x25519.h"
#include "proto/session.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define QMAX 64
#define SEQ_MAX 4096

struct end {
    struct sts_session *s;
    struct end *other;
    uint8_t q[QMAX][300]; /* genuine frames waiting; longer ones are dropped */
    size_t qlen[QMAX], nq;
    uint32_t sent;         /* messages sent, the next sequence number */
    uint8_t seen[SEQ_MAX]; /* messages of the other end delivered here */
};

static uint8_t i_priv[32], i_pub[32], r_priv[32], r_pub[32];
static struct end ini, resp, listener;
static double now = 1;

static void on_emit(void *ctx, const uint8_t *frame, size_t len)
{
    struct end *e = ctx;
    if (e->nq == QMAX || len > sizeof e->q[0])
        return;
    memcpy(e->q[e->nq], frame, len);
    e->qlen[e->nq++] = len;
}

static void on_event(void *ctx, enum sts_session_event ev, const uint8_t *data, size_t len)
{
    struct end *e = ctx;
    if (ev != STS_EVENT_MESSAGE || e == &listener)
        return;
    uint32_t seq;
    if (len < sizeof seq)
        abort(); /* every genuine message carries its number */
    memcpy(&seq, data, sizeof seq);
    if (seq >= e->other->sent || seq >= SEQ_MAX || e->seen[seq]++)
        abort(); /* forged or delivered twice */
}

static int trust(void *ctx, const uint8_t pub[32])
{
    (void)ctx;
    return memcmp(pub, i_pub, 32) == 0;
}

static void open_end(struct end *e, enum sts_role role)
{
    struct sts_session_config c = {
        .role = role,
        .static_priv = role == STS_ROLE_INITIATOR ? i_priv : r_priv,
        .peer_static = role == STS_ROLE_INITIATOR ? r_pub : NULL,
        .pattern = STS_PATTERN_XX,
        .allowed_patterns = STS_ALLOW(STS_PATTERN_NN) | STS_ALLOW(STS_PATTERN_XX) |
                            STS_ALLOW(STS_PATTERN_IK),
        .trust = trust,
        .topic_out = role == STS_ROLE_INITIATOR ? "f/up" : "f/down",
        .topic_in = role == STS_ROLE_INITIATOR ? "f/down" : "f/up",
        .rekey_messages = 3, /* epochs change often */
        .emit = on_emit,
        .on_event = on_event,
        .ctx = e,
    };
    sts_session_free(e->s);
    memset(e, 0, sizeof *e);
    if (sts_session_new(&e->s, &c) != 0)
        abort();
}

/* Delivers every genuine frame queued at from to `to`; the first one with
 * byte `flip` (when set) xored with mask. */
static void deliver(struct end *from, struct end *to, size_t flip, uint8_t mask)
{
    for (size_t k = 0; k < from->nq; k++) {
        if (k == 0 && mask && flip < from->qlen[0])
            from->q[0][flip] ^= mask;
        sts_session_receive(to->s, now, from->q[k], from->qlen[k]);
    }
    from->nq = 0;
}

static void pump(size_t flip, uint8_t mask)
{
    for (int round = 0; round < 8 && (ini.nq || resp.nq); round++) {
        deliver(&ini, &resp, flip, mask);
        deliver(&resp, &ini, flip, mask);
        mask = 0;
    }
}

/* An established pair, made once and again whenever an input ended it. */
static void ensure_pair(void)
{
    if (ini.s && sts_session_state(ini.s) == STS_STATE_ESTABLISHED &&
        sts_session_state(resp.s) == STS_STATE_ESTABLISHED)
        return;
    open_end(&ini, STS_ROLE_INITIATOR);
    open_end(&resp, STS_ROLE_RESPONDER);
    ini.other = &resp;
    resp.other = &ini;
    sts_session_start(ini.s, now);
    pump(0, 0);
}

static void send_numbered(struct end *e, const uint8_t *text, size_t len)
{
    uint8_t msg[260];
    uint32_t seq = e->sent;
    if (seq >= SEQ_MAX)
        return;
    memcpy(msg, &seq, sizeof seq);
    memcpy(msg + sizeof seq, text, len);
    if (sts_session_send(e->s, now, msg, sizeof seq + len) == 0)
        e->sent++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int keys;
    static uint8_t saved[300];
    static size_t saved_len;
    if (!keys) {
        if (sts_x25519_keypair(i_priv, i_pub) || sts_x25519_keypair(r_priv, r_pub))
            abort();
        keys = 1;
    }
    ensure_pair();
    open_end(&listener, STS_ROLE_RESPONDER);

    /* Records: op, length, bytes; a bounded number, as handshakes are slow. */
    for (int records = 0; records < 24 && size >= 2; records++) {
        uint8_t op = data[0] & 7;
        size_t len = data[1] < size - 2 ? data[1] : size - 2;
        const uint8_t *arg = data + 2;
        data += 2 + len;
        size -= 2 + len;
        switch (op) {
        case 0: sts_session_receive(listener.s, now, arg, len); break;
        case 1: sts_session_receive(resp.s, now, arg, len); break;
        case 2: sts_session_receive(ini.s, now, arg, len); break;
        case 3:
            now += len ? arg[0] * 0.25 : 1;
            sts_session_tick(ini.s, now);
            sts_session_tick(resp.s, now);
            sts_session_tick(listener.s, now);
            break;
        case 4:
            if (ini.nq && ini.qlen[0] <= sizeof saved) { /* keep one for replays */
                memcpy(saved, ini.q[0], ini.qlen[0]);
                saved_len = ini.qlen[0];
            }
            send_numbered(len % 2 ? &ini : &resp, arg, len);
            break;
        case 5: pump(len ? arg[0] : 0, len > 1 ? arg[1] : 0); break;
        case 6: sts_session_receive(resp.s, now, saved, saved_len); break;
        case 7:
            if (len && arg[0] == 0xff)
                sts_session_close(len > 1 ? resp.s : ini.s, now, "fuzz");
            else
                sts_session_start(ini.s, now);
            break;
        }
        listener.nq = 0;
    }
    sts_session_free(listener.s);
    listener.s = NULL;
    return 0;
}
