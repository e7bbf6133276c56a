/* The legacy STS machines under a script of operations: a master and a slave
 * exchange their genuine frames while arbitrary frames, messages and KILLs
 * are thrown at either, so every state sees every kind of input.
 *
 * Input: byte 0 picks the mode, then operations, each one byte:
 *   0 deliver the next frame in flight   1 / 2  frame to master / slave
 *   3 / 4 master / slave seals a message 5 / 6  master / slave sends KILL
 *   7 master starts
 * 1 to 4 are followed by a 2-byte little-endian length and that many bytes.
 * Checked: a rejected frame leaves its context exactly as it was. */
#include "proto/legacy_sts.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct link {
    size_t n;
    struct {
        int to_slave;
        size_t len;
        uint8_t data[STS_LEGACY_MAX_FRAME];
    } f[8];
};

static void queue(struct link *net, int to_slave, const uint8_t *data, size_t len)
{
    if (net->n == sizeof net->f / sizeof net->f[0]) return; /* a full broker drops */
    net->f[net->n].to_slave = to_slave;
    net->f[net->n].len = len;
    memcpy(net->f[net->n++].data, data, len);
}

/* ctx (the slave if is_slave) gets a frame; its answers go on the link. */
static void receive(struct sts_legacy *ctx, int is_slave, const uint8_t *data, size_t len,
                    struct link *net)
{
    static struct sts_legacy_output out;
    struct sts_legacy before = *ctx;

    if (sts_legacy_receive(ctx, data, len, &out) < 0) {
        before.reason = ctx->reason;
        if (memcmp(&before, ctx, sizeof before) != 0 || out.nframes != 0) abort();
        return;
    }
    if (out.msglen > STS_LEGACY_MAX_FRAME || out.msg[out.msglen] != '\0') abort();
    for (unsigned i = 0; i < out.nframes; i++)
        queue(net, !is_slave, out.frames[i].data, out.frames[i].len);
}

static void deliver(struct sts_legacy *master, struct sts_legacy *slave, struct link *net)
{
    static uint8_t frame[STS_LEGACY_MAX_FRAME];
    size_t len;
    int to_slave;

    if (net->n == 0) return;
    to_slave = net->f[0].to_slave;
    len = net->f[0].len;
    memcpy(frame, net->f[0].data, len);
    memmove(&net->f[0], &net->f[1], (net->n - 1) * sizeof net->f[0]);
    net->n--;
    receive(to_slave ? slave : master, to_slave, frame, len, net);
}

static void seal(struct sts_legacy *ctx, int to_slave, const uint8_t *msg, size_t len,
                 struct link *net)
{
    static uint8_t frame[STS_LEGACY_MAX_FRAME];
    int n = sts_legacy_seal(ctx, (const char *)msg, len, frame, sizeof frame);
    if (n >= 0) queue(net, to_slave, frame, (size_t)n);
}

static void kill_from(struct sts_legacy *ctx, int to_slave, struct link *net)
{
    uint8_t frame[64];
    int n = sts_legacy_kill(ctx, frame, sizeof frame);
    if (n >= 0) queue(net, to_slave, frame, (size_t)n);
}

/* Key pairs cost two scalar multiplications: made once per mode, copied. */
static void fresh_pair(enum sts_legacy_mode mode, struct sts_legacy *master, struct sts_legacy *slave)
{
    static struct sts_legacy masters[3], slaves[3];
    static int ready[3];
    static const uint8_t mpriv[32] = { 1, 2, 3 }, spriv[32] = { 4, 5, 6 };

    if (!ready[mode]) {
        if (sts_legacy_init(&masters[mode], STS_LEGACY_MASTER, mode, mpriv) != 0
            || sts_legacy_init(&slaves[mode], STS_LEGACY_SLAVE, mode, spriv) != 0)
            abort();
        ready[mode] = 1;
    }
    *master = masters[mode];
    *slave = slaves[mode];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct link net;
    static struct sts_legacy_output out;
    struct sts_legacy master, slave;
    size_t pos = 1;

    if (size == 0) return 0;
    fresh_pair((enum sts_legacy_mode)(data[0] % 3), &master, &slave);
    net.n = 0;
    while (pos < size) {
        uint8_t op = data[pos++] % 8;
        size_t len = 0;
        const uint8_t *arg = data + pos;

        if (op >= 1 && op <= 4) {
            if (size - pos < 2) break;
            len = (size_t)(data[pos] | data[pos + 1] << 8);
            pos += 2;
            arg = data + pos;
            if (len > size - pos) len = size - pos;
            pos += len;
        }
        switch (op) {
        case 0: deliver(&master, &slave, &net); break;
        case 1: receive(&master, 0, arg, len, &net); break;
        case 2: receive(&slave, 1, arg, len, &net); break;
        case 3: seal(&master, 1, arg, len, &net); break;
        case 4: seal(&slave, 0, arg, len, &net); break;
        case 5: kill_from(&master, 1, &net); break;
        case 6: kill_from(&slave, 0, &net); break;
        case 7:
            if (sts_legacy_start(&master, &out) == 0 && out.nframes == 1)
                queue(&net, 1, out.frames[0].data, out.frames[0].len);
            break;
        }
        if (op == 1 || op == 2) {
            uint8_t pub[32];
            (void)sts_legacy_keyreq_parse(pub, arg, len, NULL);
        }
    }
    sts_legacy_free(&master);
    sts_legacy_free(&slave);
    return 0;
}
