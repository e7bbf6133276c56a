/* The Noise engine reading arbitrary bytes where a peer's handshake message
 * belongs: as the responder's first read, or as the initiator's second read
 * after a genuine first message; after a read that succeeds, the reader goes
 * on as far as its side can (writes its next message, splits, encrypts).
 * Checked: a failed read leaves the handshake FAILED; a successful one
 * returns a payload no longer than the message; nothing crashes (ASan).
 *
 * Input: byte 0 picks the protocol (bits 0-1), the reader (bit 2) and whose
 * ephemeral key the message starts with (bits 3 and 4 set: the input's own;
 * else the genuine peer's, written over the first 32 bytes, so that most
 * mutations explore what follows without a fresh X25519 each); the rest is
 * the message. Every key is fixed, so runs are reproducible and X25519 results
 * repeat (x25519_memo.c). With STS_FUZZ_SEEDS=DIR the target writes its
 * seeds (genuine messages of each protocol, for each reader) into DIR and
 * exits: fuzz/corpus/noise is made so. */
#include "crypto/x25519.h"
#include "proto/noise.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define READER_INITIATOR 4
#define OWN_EPHEMERAL 0x18

static const char *const protocols[] = {
    "Noise_XX_25519_ChaChaPoly_SHA256",
    "Noise_IK_25519_AESGCM_SHA512",
    "Noise_XXpsk3_25519_AESGCM_SHA256",
    "Noise_IKpsk2_25519_ChaChaPoly_SHA512",
};

static const uint8_t initiator_s[32] = { 1 }, responder_s[32] = { 2 };
static const uint8_t initiator_e[32] = { 3 }, responder_e[32] = { 4 };
static const uint8_t psks[1][32] = { { 5 } };
static uint8_t responder_s_pub[32], initiator_e_pub[32], responder_e_pub[32];

static void fail_if(int bad)
{
    if (bad) abort();
}

static struct sts_noise_hs *new_hs(const char *protocol, int initiator)
{
    struct sts_noise_keys keys = { .psks = psks, .npsks = strstr(protocol, "psk") ? 1 : 0 };
    struct sts_noise_hs *hs;
    if (initiator) keys.s = initiator_s, keys.e = initiator_e, keys.rs = responder_s_pub;
    else keys.s = responder_s, keys.e = responder_e;
    fail_if(sts_noise_hs_new(&hs, protocol, initiator, NULL, 0, &keys) != 0);
    return hs;
}

/* The initiator after writing its genuine first message (into first). */
static struct sts_noise_hs *initiator_after_first(const char *protocol, uint8_t *first, size_t max, size_t *len)
{
    struct sts_noise_hs *hs = new_hs(protocol, 1);
    fail_if(sts_noise_hs_write(hs, (const uint8_t *)"hello", 5, first, max, len) != 0);
    return hs;
}

/* A successful reader goes on: writes while it is its turn (a write may
 * fail on a key read before, a low-order point say, and must then leave the
 * handshake FAILED), then splits and uses the transport keys. */
static void go_on(struct sts_noise_hs *hs)
{
    static uint8_t out[STS_NOISE_MAX_MSG];
    size_t len;
    while (sts_noise_hs_action(hs) == STS_NOISE_WRITE)
        if (sts_noise_hs_write(hs, (const uint8_t *)"more", 4, out, sizeof out, &len) != 0)
            fail_if(sts_noise_hs_action(hs) != STS_NOISE_FAILED);
    if (sts_noise_hs_action(hs) != STS_NOISE_SPLIT) return;
    struct sts_noise_cipher send, recv;
    uint8_t ct[8 + STS_NOISE_TAG_LEN], pt[8];
    fail_if(sts_noise_hs_split(hs, &send, &recv) != 0);
    if (!send.has_key || !recv.has_key) return;
    /* What one direction's key sealed does not open under the other's. */
    fail_if(sts_noise_encrypt(&send, NULL, 0, (const uint8_t *)"transpor", 8, ct) != 0);
    fail_if(sts_noise_decrypt(&recv, NULL, 0, ct, sizeof ct, pt) == 0);
}

static void read_fuzzed(struct sts_noise_hs *hs, const uint8_t *msg, size_t len)
{
    static uint8_t payload[STS_NOISE_MAX_MSG];
    size_t n = 0;

    if (sts_noise_hs_read(hs, msg, len, payload, sizeof payload, &n) != 0) {
        fail_if(sts_noise_hs_action(hs) != STS_NOISE_FAILED);
        return;
    }
    fail_if(n > len);
    go_on(hs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t msg[STS_NOISE_MAX_MSG];
    uint8_t first[256];
    size_t len;

    if (size < 1 || size - 1 > sizeof msg) return 0;
    const char *protocol = protocols[data[0] & 3];
    int initiator_reads = data[0] & READER_INITIATOR;
    memcpy(msg, data + 1, size - 1);
    if ((data[0] & OWN_EPHEMERAL) != OWN_EPHEMERAL && size - 1 >= 32)
        memcpy(msg, initiator_reads ? responder_e_pub : initiator_e_pub, 32);
    struct sts_noise_hs *hs = initiator_reads ? initiator_after_first(protocol, first, sizeof first, &len)
                                              : new_hs(protocol, 0);
    read_fuzzed(hs, msg, size - 1);
    sts_noise_hs_free(hs);
    return 0;
}

static void write_seed(const char *dir, const char *name, uint8_t flags, const uint8_t *msg, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fail_if(!f || fputc(flags, f) == EOF || fwrite(msg, 1, len, f) != len || fclose(f) != 0);
}

/* The genuine first and second messages of each protocol. */
static void write_seeds(const char *dir)
{
    uint8_t first[256], second[256], payload[256];
    size_t len, len2, n;
    char name[32];
    for (uint8_t p = 0; p < 4; p++) {
        struct sts_noise_hs *i = initiator_after_first(protocols[p], first, sizeof first, &len);
        struct sts_noise_hs *r = new_hs(protocols[p], 0);
        fail_if(sts_noise_hs_read(r, first, len, payload, sizeof payload, &n) != 0);
        fail_if(sts_noise_hs_write(r, (const uint8_t *)"world", 5, second, sizeof second, &len2) != 0);
        snprintf(name, sizeof name, "first-%u", p);
        write_seed(dir, name, p, first, len);
        snprintf(name, sizeof name, "second-%u", p);
        write_seed(dir, name, p | READER_INITIATOR, second, len2);
        sts_noise_hs_free(i);
        sts_noise_hs_free(r);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fail_if(sts_x25519_public(responder_s_pub, responder_s) != 0 ||
            sts_x25519_public(initiator_e_pub, initiator_e) != 0 ||
            sts_x25519_public(responder_e_pub, responder_e) != 0);
    const char *seeds = getenv("STS_FUZZ_SEEDS");
    if (seeds) {
        write_seeds(seeds);
        exit(0);
    }
    return 0;
}
