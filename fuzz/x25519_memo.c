/* X25519 remembered, for the fuzz targets: mbedtls's ladder costs a few
 * milliseconds under the sanitizers, so a target that handshakes for every
 * input would run a few dozen inputs a second. Linked into every target with
 * -Wl,--wrap for the three functions of crypto/x25519.h: a call whose
 * arguments were seen before returns the result the real function gave then
 * (X25519 is a function of its arguments); any other call goes to the real
 * one. With fixed keys and sts_random_fuzz_reset, the same handshakes repeat
 * on every input, and only keys the fuzzer made up cost a multiplication.
 * The arguments are read in full either way, so ASan still sees every
 * out-of-bounds read. */
#include "crypto/random.h"
#include "crypto/x25519.h"

#include <stdint.h>
#include <string.h>

int __real_sts_x25519_public(uint8_t pub[STS_X25519_LEN], const uint8_t priv[STS_X25519_LEN]);
int __real_sts_x25519_shared(uint8_t out[STS_X25519_LEN], const uint8_t priv[STS_X25519_LEN],
                             const uint8_t peer[STS_X25519_LEN]);
int __wrap_sts_x25519_public(uint8_t pub[STS_X25519_LEN], const uint8_t priv[STS_X25519_LEN]);
int __wrap_sts_x25519_shared(uint8_t out[STS_X25519_LEN], const uint8_t priv[STS_X25519_LEN],
                             const uint8_t peer[STS_X25519_LEN]);
int __wrap_sts_x25519_keypair(uint8_t priv[STS_X25519_LEN], uint8_t pub[STS_X25519_LEN]);

#define SLOTS 8192 /* a power of two; a new result replaces the slot's old one */

struct slot {
    uint8_t used, public_only;
    uint8_t priv[STS_X25519_LEN], peer[STS_X25519_LEN], out[STS_X25519_LEN];
    int rc;
};

static struct slot slots[SLOTS];

static struct slot *slot_for(int public_only, const uint8_t *priv, const uint8_t *peer)
{
    uint32_t h = 2166136261u ^ (uint32_t)public_only; /* FNV-1a */
    for (int i = 0; i < STS_X25519_LEN; i++) h = (h ^ priv[i]) * 16777619u;
    for (int i = 0; i < STS_X25519_LEN; i++) h = (h ^ peer[i]) * 16777619u;
    return &slots[h & (SLOTS - 1)];
}

static int remembered(int public_only, uint8_t *out, const uint8_t *priv, const uint8_t *peer)
{
    static const uint8_t base[STS_X25519_LEN] = { 9 };
    const uint8_t *u = public_only ? base : peer;
    struct slot *s = slot_for(public_only, priv, u);

    if (!s->used || s->public_only != public_only || memcmp(s->priv, priv, STS_X25519_LEN) != 0 ||
        memcmp(s->peer, u, STS_X25519_LEN) != 0) {
        uint8_t result[STS_X25519_LEN];
        int rc = public_only ? __real_sts_x25519_public(result, priv) : __real_sts_x25519_shared(result, priv, u);
        *s = (struct slot){ .used = 1, .public_only = (uint8_t)public_only, .rc = rc };
        memcpy(s->priv, priv, STS_X25519_LEN);
        memcpy(s->peer, u, STS_X25519_LEN);
        memcpy(s->out, result, STS_X25519_LEN);
    }
    memcpy(out, s->out, STS_X25519_LEN);
    return s->rc;
}

int __wrap_sts_x25519_public(uint8_t pub[STS_X25519_LEN], const uint8_t priv[STS_X25519_LEN])
{
    return remembered(1, pub, priv, NULL);
}

int __wrap_sts_x25519_shared(uint8_t out[STS_X25519_LEN], const uint8_t priv[STS_X25519_LEN],
                             const uint8_t peer[STS_X25519_LEN])
{
    return remembered(0, out, priv, peer);
}

/* As crypto/x25519.c makes a key pair (random bytes, clamped as RFC 7748
 * says), with the public half remembered. */
int __wrap_sts_x25519_keypair(uint8_t priv[STS_X25519_LEN], uint8_t pub[STS_X25519_LEN])
{
    int err = sts_random(priv, STS_X25519_LEN);
    if (err != 0) return err;
    priv[0] &= 248;
    priv[31] &= 127;
    priv[31] |= 64;
    return __wrap_sts_x25519_public(pub, priv);
}
