/* The Noise engine reading arbitrary bytes where a peer's handshake message
 * belongs: as the responder's first read, or as the initiator's second read
 * after a genuine first message. Checked: a failed read leaves the handshake
 * FAILED; a successful one returns a payload no longer than the message.
 *
 * Input: byte 0 picks the protocol (bits 0-1) and the reader (bit 2); the
 * rest is the message. The keys that shape what is read are fixed, so runs
 * are reproducible and the seeds (genuine messages) take the full path. */
#include "crypto/x25519.h"
#include "proto/noise.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const protocols[] = {
    "Noise_XX_25519_ChaChaPoly_SHA256",
    "Noise_IK_25519_AESGCM_SHA512",
    "Noise_XXpsk3_25519_AESGCM_SHA256",
    "Noise_IKpsk2_25519_ChaChaPoly_SHA512",
};

static void read_fuzzed(struct sts_noise_hs *hs, const uint8_t *msg, size_t len)
{
    static uint8_t payload[STS_NOISE_MAX_MSG];
    size_t n = 0;

    if (sts_noise_hs_read(hs, msg, len, payload, sizeof payload, &n) != 0) {
        if (sts_noise_hs_action(hs) != STS_NOISE_FAILED) abort();
    } else if (n > len) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t is[32] = { 1 }, rsk[32] = { 2 }, ie[32] = { 3 };
    static const uint8_t psks[1][32] = { { 5 } };
    static uint8_t responder_public[32];
    const char *protocol;
    struct sts_noise_keys keys = { 0 };
    struct sts_noise_hs *hs;
    uint8_t first[256];
    size_t len;

    if (size < 1) return 0;
    if (responder_public[0] == 0 && sts_x25519_public(responder_public, rsk) != 0) abort();
    protocol = protocols[data[0] & 3];
    keys.psks = psks;
    keys.npsks = strstr(protocol, "psk") ? 1 : 0;
    if (data[0] & 4) {
        keys.s = is, keys.e = ie, keys.rs = responder_public;
        if (sts_noise_hs_new(&hs, protocol, 1, NULL, 0, &keys) != 0) abort();
        if (sts_noise_hs_write(hs, NULL, 0, first, sizeof first, &len) != 0) abort();
    } else {
        keys.s = rsk; /* its ephemeral would only be made when it writes */
        if (sts_noise_hs_new(&hs, protocol, 0, NULL, 0, &keys) != 0) abort();
    }
    read_fuzzed(hs, data + 1, size - 1);
    sts_noise_hs_free(hs);
    return 0;
}
