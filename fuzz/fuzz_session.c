/* STS sessions under arbitrary input: frames into a listening responder and
 * into both ends of an established pair, interleaved with genuine traffic
 * (delivered, mutated, replayed), time jumps, re-handshakes and closes.
 * Checked: nothing crashes, and every delivered message is one the peer
 * really sent, delivered at most once (each carries a unique sequence
 * number).
 *
 * Each input starts from the same state: fixed static keys, the generator
 * restarted on its fixed stream (sts_random_fuzz_reset), a fresh pair
 * handshaken at time 1, so the handshake's X25519s are remembered
 * (x25519_memo.c) and a crash replays from its input alone. With
 * STS_FUZZ_SEEDS=DIR the target writes its seeds into DIR and exits:
 * fuzz/corpus/session is made so. */
#include "crypto/random.h"
#include "crypto/x25519.h"
#include "proto/session.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
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

static const uint8_t i_priv[32] = { 6 }, r_priv[32] = { 7 };
static uint8_t i_pub[32], r_pub[32];
static struct end ini, resp, listener;
static double now;

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

/* A new established pair. */
static void new_pair(void)
{
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
    static uint8_t saved[300];
    size_t saved_len = 0;

    if (sts_random_fuzz_reset(1) != 0) abort();
    now = 1;
    new_pair();
    if (sts_session_state(ini.s) != STS_STATE_ESTABLISHED) abort();
    open_end(&listener, STS_ROLE_RESPONDER);

    /* Records: op, length, bytes. */
    for (int records = 0; records < 64 && size >= 2; records++) {
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
    struct end *ends[] = { &ini, &resp, &listener };
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        sts_session_free(ends[i]->s);
        ends[i]->s = NULL;
    }
    return 0;
}

/* A record: op, length, bytes. */
static size_t record(uint8_t *out, uint8_t op, const void *arg, size_t len)
{
    out[0] = op;
    out[1] = (uint8_t)len;
    memcpy(out + 2, arg, len);
    return 2 + len;
}

static void write_seed(const char *dir, const char *name, const uint8_t *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) abort();
}

/* Messages both ways; a replay; a rekey's worth of traffic; a close; time
 * passing over a re-handshake; and a stranger's genuine INITREQ for the
 * listener. */
static void write_seeds(const char *dir)
{
    uint8_t in[1024];
    size_t n = 0;
    n += record(in + n, 4, "hello", 5);
    n += record(in + n, 4, "hi", 2);
    n += record(in + n, 5, "", 0);
    write_seed(dir, "traffic", in, n);
    n += record(in + n, 6, "", 0);
    write_seed(dir, "replay", in, n);
    for (int i = 0; i < 8; i++) n += record(in + n, 4, "rekey!", 6 + (size_t)(i & 1));
    n += record(in + n, 5, "", 0);
    write_seed(dir, "rekeys", in, n);
    n += record(in + n, 7, "\xff", 1);
    n += record(in + n, 5, "", 0);
    write_seed(dir, "close", in, n);
    n = record(in, 7, "", 0);
    n += record(in + n, 3, "\x08", 1);
    n += record(in + n, 5, "\x03\x01", 2);
    n += record(in + n, 4, "after", 5);
    n += record(in + n, 5, "", 0);
    write_seed(dir, "rehandshake", in, n);

    struct end stranger = { 0 };
    if (sts_random_fuzz_reset(2) != 0) abort();
    open_end(&stranger, STS_ROLE_INITIATOR);
    if (sts_session_start(stranger.s, 1) != 0 || stranger.nq != 1 || stranger.qlen[0] > 255) abort();
    n = record(in, 0, stranger.q[0], stranger.qlen[0]);
    write_seed(dir, "initreq", in, n);
    sts_session_free(stranger.s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (sts_x25519_public(i_pub, i_priv) != 0 || sts_x25519_public(r_pub, r_priv) != 0) abort();
    const char *seeds = getenv("STS_FUZZ_SEEDS");
    if (seeds) {
        write_seeds(seeds);
        exit(0);
    }
    return 0;
}
