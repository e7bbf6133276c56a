/* The Noise engine: published vectors byte for byte (cacophony), every
 * pattern of the spec between two engines, and the failure paths. */
#include "crypto/aead.h"
#include "crypto/random.h"
#include "crypto/tests/hexvec.h"
#include "crypto/x25519.h"
#include "proto/noise.h"
#include "proto/noise_patterns.h"
#include "util/error.h"
#include "util/unit.h"

#include <stdint.h>

struct vector {
    const char *protocol, *prologue;
    const char *init_static, *init_ephemeral, *init_remote_static;
    const char *resp_static, *resp_ephemeral, *resp_remote_static;
    const char *psk, *handshake_hash;
    struct { const char *payload, *ciphertext; } messages[6];
};

/* From the cacophony test vectors (public domain): the first four as in
 * ../shared/vectors/noise/cacophony-subset.json; the SHA512 one from
 * cacophony.txt as shipped in mcginty/snow, with its handshake hash
 * recomputed independently (SHA-512 over the public transcript, in
 * Python), since that copy's hashes come from an older cacophony. */
static const struct vector vectors[] = {
    { "Noise_XX_25519_ChaChaPoly_SHA256",
      .prologue = "4a6f686e2047616c74",
      .init_static = "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
      .init_ephemeral = "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
      .resp_static = "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
      .resp_ephemeral = "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
      .handshake_hash = "c8e5f64e846193be2a834104c2a009868d6c9f3bd3c186299888b488b2f1f58e",
      .messages = {
          { "4c756477696720766f6e204d69736573",
            "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944"
            "4c756477696720766f6e204d69736573" },
          { "4d757272617920526f746862617264",
            "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843"
            "81cbad1f276e038c48378ffce2b65285e08d6b68aaa3629a5a8639392490e5b9"
            "bd5269c2f1e4f488ed8831161f19b7815528f8982ffe09be9b5c412f8a0db50f"
            "8814c7194e83f23dbd8d162c9326ad" },
          { "462e20412e20486179656b",
            "c7195ffacac1307ff99046f219750fc47693e23c3cb08b89c2af808b444850a8"
            "0ae475b9df0f169ae80a89be0865b57f58c9fea0d4ec82a286427402f113e4b6"
            "ae769a1d95941d49b25030" },
          { "4361726c204d656e676572",
            "96763ed773f8e47bb3712f0e29b3060ffc956ffc146cee53d5e1df" },
          { "4a65616e2d426170746973746520536179",
            "3e40f15f6f3a46ae446b253bf8b1d9ffb6ed9b174d272328ff91a7e2e5c79c07"
            "f5" },
          { "457567656e2042f6686d20766f6e2042617765726b",
            "eb3f3515110702e047a6c9da4478b6ead94873c11c0f2d710ddb3f09fce024b3"
            "a58502ae3f" },
      } },
    { "Noise_NNpsk0_25519_ChaChaPoly_SHA256",
      .prologue = "4a6f686e2047616c74",
      .init_ephemeral = "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
      .resp_ephemeral = "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
      .psk = "54686973206973206d7920417573747269616e20706572737065637469766521",
      .handshake_hash = "f4d03dc34495c95729ea6de9e1b59004b59733102488b3e24bc441e0be208eaf",
      .messages = {
          { "4c756477696720766f6e204d69736573",
            "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944"
            "79b962b8aff8485742ac32f905ba45369e2465fb59e138a93d67a0d1266b6a54" },
          { "4d757272617920526f746862617264",
            "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843"
            "d6062704d5a9c422a8e834423f8c1feada7e8d0d910a1a2cd030fb584221e3" },
          { "462e20412e20486179656b",
            "e632c3763d7669067383433197a3baddf146e9e70ad4b4e9e59e0f" },
          { "4361726c204d656e676572",
            "64c6bee32ea91c8474bb4c21d7a700109ad45af77b29764ba5eb1e" },
          { "4a65616e2d426170746973746520536179",
            "e2fa0bed0603b62d3ccac2ecabbf3fe33f3e86514909b323361626266cb2471c"
            "c8" },
          { "457567656e2042f6686d20766f6e2042617765726b",
            "0c01dc9cec1fe4ddd692e8dd32188aa351088dc91183639a53b57aa4692b5ebd"
            "ef8b8ca111" },
      } },
    { "Noise_XXpsk3_25519_AESGCM_SHA256",
      .prologue = "4a6f686e2047616c74",
      .init_static = "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
      .init_ephemeral = "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
      .resp_static = "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
      .resp_ephemeral = "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
      .psk = "54686973206973206d7920417573747269616e20706572737065637469766521",
      .handshake_hash = "033c8317037cb66a83308d5ae57ebbbea254e7ef2267f296c40baa4beaae4fcc",
      .messages = {
          { "4c756477696720766f6e204d69736573",
            "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944"
            "ad6766e442bec99c94ff573cd5316da008cbcc1ebcf47fbe43991ed633bcbb75" },
          { "4d757272617920526f746862617264",
            "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843"
            "36a2439b0bafb5e97fee2c19b6f9f741125f810ad98e7e9659c48ca3e19652d3"
            "16d1121073a281e0402b7bc1acb476caa1e7308faad7f75337b30f12435c9830"
            "3cac63cac1d69ac11f2e1971e138ac" },
          { "462e20412e20486179656b",
            "2504a7905dbd6a56820581eb314085df196fda55aa5e77745d61c0b526355733"
            "d5ee67b9a4f345be7dc7c6583d3807626eb0f42c69388955ff0c9f35b0395112"
            "9db18848a76f6a4d270022" },
          { "4361726c204d656e676572",
            "b20ca762013411bc55d65fc7137a2e719d432cd549cb037f5e9c84" },
          { "4a65616e2d426170746973746520536179",
            "6b10e774950e93bc7cc50f225a105e656eb418310c00c374a81c1452b48cb120"
            "00" },
          { "457567656e2042f6686d20766f6e2042617765726b",
            "6d617e8fd817a630755b8dffdee52ad3c39964bdca895a56847fd5f1edb49d14"
            "f555cc314b" },
      } },
    { "Noise_IK_25519_AESGCM_SHA256",
      .prologue = "4a6f686e2047616c74",
      .init_static = "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
      .init_ephemeral = "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
      .init_remote_static = "31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62",
      .resp_static = "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
      .resp_ephemeral = "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
      .handshake_hash = "669c8640d9e42a3cda2f232f78597ceefb01daa6e3df81181ccce6fc6b5026bf",
      .messages = {
          { "4c756477696720766f6e204d69736573",
            "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944"
            "4e417bc55c7a8166c993356c1be41ef67818a292426f301556c7f26b21d25ddb"
            "097153891a9a956cff47b83e63ad8d701c1342c209cff1ca5ecd43402762ac24"
            "9e3bd3a4c0a145fe07cb5dae28ea13a3" },
          { "4d757272617920526f746862617264",
            "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843"
            "af2ccf9972e22afc67aeafcd25162f7f98c363b7762e3e4cb7d272e39f27a5" },
          { "462e20412e20486179656b",
            "66acfc92e3197de166809e6d4d5d003dcc819a84bc3522ca53c9d9" },
          { "4361726c204d656e676572",
            "71f89aa6533a6de70b0826864dd75f60806ee40170c16290189eb3" },
          { "4a65616e2d426170746973746520536179",
            "4795a3423550c8bf00386bd496a3e2c76c10669d2a75ab8f79b5094c5412a257"
            "05" },
          { "457567656e2042f6686d20766f6e2042617765726b",
            "aa0bb39097555c918e40be82abc2b909eb79d9eb87adb07e268fc37323a6cf90"
            "4fd01fb391" },
      } },
    { "Noise_NN_25519_AESGCM_SHA512",
      .prologue = "4a6f686e2047616c74",
      .init_ephemeral = "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
      .resp_ephemeral = "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
      .handshake_hash = "1c85fe89bed0615e1caa7bb64d6495e9fb5fcdcd1e9934a656dfcf9d0c2c93df"
                        "d42ca5a7ce89ed1fdd944e39314057d63a1848a54c8879df7d9bab3d826e3c68",
      .messages = {
          { "4c756477696720766f6e204d69736573",
            "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944"
            "4c756477696720766f6e204d69736573" },
          { "4d757272617920526f746862617264",
            "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843"
            "f01eddcfafa2580bf4b9670208b19eea75586d8b0352dd82aae394a668e50f" },
          { "462e20412e20486179656b",
            "a267e88b70a00fbc099d3bd4438073cea04835321f89f028f421bd" },
          { "4361726c204d656e676572",
            "d0dce53724a6e38d5c0ee4bcb19bdc896c8e62d7a26fe71f7c3424" },
          { "4a65616e2d426170746973746520536179",
            "91ab3b07fd6cd6cc8877ffcf12cef8aeb0c2f8c8d58cd52398899a29b8b92dc8"
            "c4" },
          { "457567656e2042f6686d20766f6e2042617765726b",
            "ff76c3fc888707743dac49d4629f8009264aa4123b8e0818a396ef4c2ca48f2b"
            "eb7c9215bb" },
      } },
};

/* One side of a conversation: its handshake, then its transport ciphers. */
struct peer {
    struct sts_noise_hs *hs;
    struct sts_noise_cipher send, recv;
    int split;
};

static void peer_free(struct peer *p)
{
    sts_noise_hs_free(p->hs);
    sts_noise_cipher_wipe(&p->send);
    sts_noise_cipher_wipe(&p->recv);
}

/* Splits both sides once the handshake is over. */
static void split_if_done(struct peer *a, struct peer *b)
{
    if (a->split || sts_noise_hs_action(a->hs) != STS_NOISE_SPLIT) return;
    CHECK(sts_noise_hs_action(b->hs) == STS_NOISE_SPLIT);
    CHECK(sts_noise_hs_split(a->hs, &a->send, &a->recv) == 0);
    CHECK(sts_noise_hs_split(b->hs, &b->send, &b->recv) == 0);
    a->split = b->split = 1;
}

/* Sends one message from `from` to `to`, a handshake message until the
 * handshake ends and a transport message after it; checks that `to` gets
 * the payload back. The wire bytes go to wire (*wirelen). */
static void exchange(struct peer *from, struct peer *to, const uint8_t *payload, size_t len,
                     uint8_t *wire, size_t *wirelen)
{
    uint8_t got[1024];
    size_t gotlen = 0;

    if (!from->split) {
        CHECK(sts_noise_hs_action(from->hs) == STS_NOISE_WRITE);
        CHECK(sts_noise_hs_action(to->hs) == STS_NOISE_READ);
        CHECK(sts_noise_hs_write(from->hs, payload, len, wire, 1024, wirelen) == 0);
        CHECK(sts_noise_hs_read(to->hs, wire, *wirelen, got, sizeof got, &gotlen) == 0);
    } else {
        *wirelen = len + STS_NOISE_TAG_LEN;
        CHECK(sts_noise_encrypt(&from->send, NULL, 0, payload, len, wire) == 0);
        CHECK(sts_noise_decrypt(&to->recv, NULL, 0, wire, *wirelen, got) == 0);
        gotlen = *wirelen - STS_NOISE_TAG_LEN;
    }
    CHECK(gotlen == len);
    CHECK(len == 0 || memcmp(got, payload, len) == 0);
}

/* ---- published vectors ---- */

struct vector_keys {
    uint8_t s[32], e[32], rs[32], psk[1][32];
    struct sts_noise_keys k;
};

static void vector_keys(struct vector_keys *vk, const char *s, const char *e, const char *rs,
                        const char *psk)
{
    memset(vk, 0, sizeof *vk);
    if (s) vk->k.s = vk->s, unhex(vk->s, 32, s);
    if (e) vk->k.e = vk->e, unhex(vk->e, 32, e);
    if (rs) vk->k.rs = vk->rs, unhex(vk->rs, 32, rs);
    if (psk) vk->k.psks = vk->psk, vk->k.npsks = 1, unhex(vk->psk[0], 32, psk);
}

static void test_vector(const struct vector *v)
{
    struct vector_keys ik, rk;
    struct peer ini = { 0 }, res = { 0 };
    uint8_t prologue[64], want[64], wire[1024], expect[512], payload[256];
    size_t prologue_len = unhex(prologue, sizeof prologue, v->prologue), len, hlen, rhlen, wirelen;
    int failed_before = unit_failed;

    vector_keys(&ik, v->init_static, v->init_ephemeral, v->init_remote_static, v->psk);
    vector_keys(&rk, v->resp_static, v->resp_ephemeral, v->resp_remote_static, v->psk);
    CHECK(sts_noise_hs_new(&ini.hs, v->protocol, 1, prologue, prologue_len, &ik.k) == 0);
    CHECK(sts_noise_hs_new(&res.hs, v->protocol, 0, prologue, prologue_len, &rk.k) == 0);
    if (!ini.hs || !res.hs) goto done;

    for (size_t i = 0; i < 6; i++) {
        /* Transport messages continue the alternation of the handshake. */
        int from_initiator = i % 2 == 0;
        len = unhex(payload, sizeof payload, v->messages[i].payload);
        exchange(from_initiator ? &ini : &res, from_initiator ? &res : &ini, payload, len,
                 wire, &wirelen);
        CHECK(wirelen == unhex(expect, sizeof expect, v->messages[i].ciphertext));
        CHECK_MEM(wire, expect, wirelen);
        if (!ini.split) {
            split_if_done(&ini, &res);
            if (ini.split) {
                const uint8_t *h = sts_noise_hs_hash(ini.hs, &hlen);
                CHECK(hlen == unhex(want, sizeof want, v->handshake_hash));
                CHECK_MEM(h, want, hlen);
                CHECK_MEM(sts_noise_hs_hash(res.hs, &rhlen), want, hlen);
                CHECK(rhlen == hlen);
            }
        }
    }
    CHECK(ini.split);
done:
    if (unit_failed != failed_before) fprintf(stderr, "  in vector %s\n", v->protocol);
    peer_free(&ini);
    peer_free(&res);
}

/* ---- every pattern of the spec, between two engines ---- */

static const char *const suites[] = {
    "25519_ChaChaPoly_SHA256", "25519_AESGCM_SHA256", "25519_ChaChaPoly_SHA512", "25519_AESGCM_SHA512",
};

/* Whether party (0 initiator, 1 responder) has a static key the peer learns. */
static int has_static(const struct noise_pattern *pat, int party)
{
    return (pat->pre[party] & NOISE_KEY_S) || noise_pattern_sends(pat, party, NOISE_S);
}

/* A handshake with fresh keys, then transport both ways (one way for the
 * one-way patterns). Static keys are given to both sides, the peer's as a
 * pre-message key or pinned. */
static void test_pattern(const char *protocol)
{
    struct noise_pattern pat;
    uint8_t is[32], ipub[32], rsk[32], rpub[32], psks[NOISE_MAX_PSKS][32], wire[1024];
    uint8_t msg[40];
    struct sts_noise_keys ik = { 0 }, rk = { 0 };
    struct peer ini = { 0 }, res = { 0 };
    const char *pattern = protocol + 6;
    const uint8_t *hash;
    size_t hlen, rhlen, wirelen;
    int failed_before = unit_failed;

    CHECK(noise_pattern_from_name(&pat, pattern, strcspn(pattern, "_")) == 0);
    CHECK(sts_x25519_keypair(is, ipub) == 0);
    CHECK(sts_x25519_keypair(rsk, rpub) == 0);
    CHECK(sts_random(psks[0], sizeof psks) == 0);
    CHECK(sts_random(msg, sizeof msg) == 0);
    ik.s = is;
    rk.s = rsk;
    ik.rs = has_static(&pat, 1) ? rpub : NULL;
    rk.rs = has_static(&pat, 0) ? ipub : NULL;
    ik.psks = rk.psks = (const uint8_t(*)[32])psks;
    ik.npsks = rk.npsks = pat.npsks;
    CHECK(sts_noise_hs_new(&ini.hs, protocol, 1, msg, 7, &ik) == 0);
    CHECK(sts_noise_hs_new(&res.hs, protocol, 0, msg, 7, &rk) == 0);
    if (!ini.hs || !res.hs) goto done;

    for (size_t i = 0; i < pat.nmsgs; i++) {
        exchange(i % 2 == 0 ? &ini : &res, i % 2 == 0 ? &res : &ini, msg, i * 5, wire, &wirelen);
        if (unit_failed != failed_before) goto done;
    }
    CHECK(sts_noise_hs_action(ini.hs) == STS_NOISE_SPLIT);
    hash = sts_noise_hs_hash(ini.hs, &hlen);
    CHECK(hlen == (strstr(protocol, "SHA512") ? 64u : 32u));
    CHECK_MEM(hash, sts_noise_hs_hash(res.hs, &rhlen), hlen);
    CHECK(rhlen == hlen);
    if (has_static(&pat, 1)) CHECK(sts_noise_hs_remote_static(ini.hs) && memcmp(sts_noise_hs_remote_static(ini.hs), rpub, 32) == 0);
    if (has_static(&pat, 0)) CHECK(sts_noise_hs_remote_static(res.hs) && memcmp(sts_noise_hs_remote_static(res.hs), ipub, 32) == 0);
    split_if_done(&ini, &res);
    exchange(&ini, &res, msg, sizeof msg, wire, &wirelen);
    exchange(&ini, &res, msg, 0, wire, &wirelen);
    if (noise_pattern_one_way(&pat)) {
        CHECK(!res.send.has_key && !ini.recv.has_key);
        CHECK(sts_noise_encrypt(&res.send, NULL, 0, msg, 1, wire) == STS_ERR_STATE);
    } else {
        exchange(&res, &ini, msg, sizeof msg, wire, &wirelen);
    }
done:
    if (unit_failed != failed_before) fprintf(stderr, "  in pattern %s\n", protocol);
    peer_free(&ini);
    peer_free(&res);
}

/* Each pattern plain, with psk0, and with a psk after its last message;
 * the interactive ones also with psk0+psk2. Suites rotate. */
static void test_all_patterns(void)
{
    char protocol[96];
    const char *name;
    size_t count = 0, i;

    for (i = 0; (name = noise_pattern_name(i)) != NULL; i++) {
        struct noise_pattern pat;
        char last[8];

        CHECK(noise_pattern_from_name(&pat, name, strlen(name)) == 0);
        snprintf(last, sizeof last, "psk%zu", pat.nmsgs);
        const char *mods[] = { "", "psk0", last, pat.nmsgs > 1 ? "psk0+psk2" : NULL };
        for (size_t m = 0; m < sizeof mods / sizeof *mods && mods[m]; m++) {
            snprintf(protocol, sizeof protocol, "Noise_%s%s_%s", name, mods[m], suites[count++ % 4]);
            test_pattern(protocol);
        }
    }
    CHECK(i == 3 + 12 + 23); /* one-way, fundamental, deferred */
    printf("%zu protocols completed a handshake\n", count);
}

/* ---- failures ---- */

/* Two fresh XX (or other) engines with random static keys. */
static void new_pair(struct peer *ini, struct peer *res, const char *protocol,
                     const uint8_t (*psks)[32], size_t npsks)
{
    uint8_t is[32], ipub[32], rsk[32], rpub[32];
    /* The initiator hands in its public key, the responder has it computed:
     * both ways must give the same handshake. */
    struct sts_noise_keys ik = { .s = is, .s_pub = ipub, .psks = psks, .npsks = npsks };
    struct sts_noise_keys rk = { .s = rsk, .psks = psks, .npsks = npsks };

    memset(ini, 0, sizeof *ini);
    memset(res, 0, sizeof *res);
    CHECK(sts_x25519_keypair(is, ipub) == 0);
    CHECK(sts_x25519_keypair(rsk, rpub) == 0);
    CHECK(sts_noise_hs_new(&ini->hs, protocol, 1, NULL, 0, &ik) == 0);
    CHECK(sts_noise_hs_new(&res->hs, protocol, 0, NULL, 0, &rk) == 0);
}

static void test_tampered(void)
{
    struct peer ini, res;
    uint8_t wire[1024], out[1024];
    size_t len, outlen;

    new_pair(&ini, &res, "Noise_XX_25519_ChaChaPoly_SHA256", NULL, 0);
    exchange(&ini, &res, NULL, 0, wire, &len);
    CHECK(sts_noise_hs_write(res.hs, (const uint8_t *)"hi", 2, wire, sizeof wire, &len) == 0);
    wire[40] ^= 0x10; /* in the encrypted static key */
    CHECK(sts_noise_hs_read(ini.hs, wire, len, out, sizeof out, &outlen) == STS_ERR_AUTH);
    CHECK(sts_noise_hs_action(ini.hs) == STS_NOISE_FAILED);
    /* No second try on a half-updated state, even with the right bytes. */
    wire[40] ^= 0x10;
    CHECK(sts_noise_hs_read(ini.hs, wire, len, out, sizeof out, &outlen) == STS_ERR_STATE);
    CHECK(sts_noise_hs_write(ini.hs, NULL, 0, out, sizeof out, &outlen) == STS_ERR_STATE);
    CHECK(sts_noise_hs_split(ini.hs, &ini.send, &ini.recv) == STS_ERR_STATE);
    peer_free(&ini);
    peer_free(&res);

    /* The last byte: the payload's tag. */
    new_pair(&ini, &res, "Noise_XX_25519_AESGCM_SHA512", NULL, 0);
    exchange(&ini, &res, NULL, 0, wire, &len);
    CHECK(sts_noise_hs_write(res.hs, NULL, 0, wire, sizeof wire, &len) == 0);
    wire[len - 1] ^= 1;
    CHECK(sts_noise_hs_read(ini.hs, wire, len, out, sizeof out, &outlen) == STS_ERR_AUTH);
    CHECK(sts_noise_hs_action(ini.hs) == STS_NOISE_FAILED);
    peer_free(&ini);
    peer_free(&res);
}

static void test_truncated(void)
{
    struct peer ini, res;
    uint8_t wire[1024], out[1024];
    size_t len, outlen;

    new_pair(&ini, &res, "Noise_XX_25519_ChaChaPoly_SHA256", NULL, 0);
    CHECK(sts_noise_hs_write(ini.hs, NULL, 0, wire, sizeof wire, &len) == 0);
    CHECK(sts_noise_hs_read(res.hs, wire, 31, out, sizeof out, &outlen) == STS_ERR_TRUNCATED);
    CHECK(sts_noise_hs_action(res.hs) == STS_NOISE_FAILED);
    peer_free(&ini);
    peer_free(&res);

    /* Message 2 of XX is e (32), encrypted s (48), a tag (16): 95 bytes is short. */
    new_pair(&ini, &res, "Noise_XX_25519_ChaChaPoly_SHA256", NULL, 0);
    exchange(&ini, &res, NULL, 0, wire, &len);
    CHECK(sts_noise_hs_write(res.hs, NULL, 0, wire, sizeof wire, &len) == 0);
    CHECK(len == 96);
    CHECK(sts_noise_hs_read(ini.hs, wire, 95, out, sizeof out, &outlen) == STS_ERR_TRUNCATED);
    CHECK(sts_noise_hs_action(ini.hs) == STS_NOISE_FAILED);
    peer_free(&ini);
    peer_free(&res);
}

static void test_wrong_psk(void)
{
    uint8_t psk1[1][32] = { { 1 } }, psk2[1][32] = { { 2 } }, wire[256], out[256];
    struct sts_noise_keys k1 = { .psks = (const uint8_t(*)[32])psk1, .npsks = 1 };
    struct sts_noise_keys k2 = { .psks = (const uint8_t(*)[32])psk2, .npsks = 1 };
    struct sts_noise_hs *ini, *res;
    size_t len, outlen;

    CHECK(sts_noise_hs_new(&ini, "Noise_NNpsk0_25519_ChaChaPoly_SHA256", 1, NULL, 0, &k1) == 0);
    CHECK(sts_noise_hs_new(&res, "Noise_NNpsk0_25519_ChaChaPoly_SHA256", 0, NULL, 0, &k2) == 0);
    CHECK(sts_noise_hs_write(ini, NULL, 0, wire, sizeof wire, &len) == 0);
    CHECK(len == 48); /* psk0: the first payload is already encrypted */
    CHECK(sts_noise_hs_read(res, wire, len, out, sizeof out, &outlen) == STS_ERR_AUTH);
    sts_noise_hs_free(ini);
    sts_noise_hs_free(res);
}

/* A pinned responder key that is not the one the responder sends. */
static void test_pinned(void)
{
    uint8_t is[32], ipub[32], rsk[32], rpub[32], other[32], wire[256], out[256];
    struct sts_noise_keys ik = { .s = is, .rs = other }, rk = { .s = rsk };
    struct peer ini = { 0 }, res = { 0 };
    size_t len, outlen;

    CHECK(sts_x25519_keypair(is, ipub) == 0);
    CHECK(sts_x25519_keypair(rsk, rpub) == 0);
    memcpy(other, rpub, 32);
    other[5] ^= 1;
    CHECK(sts_noise_hs_new(&ini.hs, "Noise_XX_25519_ChaChaPoly_SHA256", 1, NULL, 0, &ik) == 0);
    CHECK(sts_noise_hs_new(&res.hs, "Noise_XX_25519_ChaChaPoly_SHA256", 0, NULL, 0, &rk) == 0);
    exchange(&ini, &res, NULL, 0, wire, &len);
    CHECK(sts_noise_hs_write(res.hs, NULL, 0, wire, sizeof wire, &len) == 0);
    CHECK(sts_noise_hs_read(ini.hs, wire, len, out, sizeof out, &outlen) == STS_ERR_AUTH);
    CHECK(sts_noise_hs_remote_static(ini.hs) == NULL);
    peer_free(&ini);
    peer_free(&res);
}

/* A low-order ephemeral key from the peer: the DH it enters fails. */
static void test_low_order(void)
{
    uint8_t wire[256], out[256];
    struct sts_noise_hs *ini;
    size_t len, outlen;

    CHECK(sts_noise_hs_new(&ini, "Noise_NN_25519_ChaChaPoly_SHA256", 1, NULL, 0, NULL) == 0);
    CHECK(sts_noise_hs_write(ini, NULL, 0, wire, sizeof wire, &len) == 0);
    memset(wire, 0, 48); /* e = 0, then a 16-byte "tag" */
    CHECK(sts_noise_hs_read(ini, wire, 48, out, sizeof out, &outlen) == STS_ERR_KEY);
    CHECK(sts_noise_hs_action(ini) == STS_NOISE_FAILED);
    sts_noise_hs_free(ini);
}

static void test_turns(void)
{
    uint8_t wire[256], out[256];
    struct sts_noise_hs *ini;
    size_t len, outlen;

    CHECK(sts_noise_hs_new(&ini, "Noise_NN_25519_ChaChaPoly_SHA256", 1, NULL, 0, NULL) == 0);
    /* Out of turn changes nothing: the handshake goes on. */
    CHECK(sts_noise_hs_read(ini, wire, 48, out, sizeof out, &outlen) == STS_ERR_STATE);
    CHECK(sts_noise_hs_split(ini, NULL, NULL) == STS_ERR_STATE);
    CHECK(sts_noise_hs_action(ini) == STS_NOISE_WRITE);
    CHECK(sts_noise_hs_local_ephemeral_public(ini) == NULL);
    /* An output buffer too small is a failure like any other. */
    CHECK(sts_noise_hs_write(ini, NULL, 0, wire, 31, &len) == STS_ERR_TOO_BIG);
    CHECK(sts_noise_hs_action(ini) == STS_NOISE_FAILED);
    sts_noise_hs_free(ini);
    sts_noise_hs_free(NULL);
}

static void test_names(void)
{
    static const struct { const char *name; int err; } cases[] = {
        { "Noise_XX_448_ChaChaPoly_SHA256", STS_ERR_UNSUPPORTED },
        { "Noise_XX_25519_ChaChaPoly_BLAKE2s", STS_ERR_UNSUPPORTED },
        { "Noise_XX_25519_ChaChaPoly_BLAKE2b", STS_ERR_UNSUPPORTED },
        { "Noise_XX_25519_AESGCM_SHA384", STS_ERR_UNSUPPORTED },
        { "Noise_XX_25519_Salsa_SHA256", STS_ERR_UNSUPPORTED },
        { "Noise_ZZ_25519_ChaChaPoly_SHA256", STS_ERR_UNSUPPORTED },
        { "Noise_XXfallback_25519_ChaChaPoly_SHA256", STS_ERR_UNSUPPORTED },
        { "Noise_XXhfs_25519+Kyber1024_ChaChaPoly_SHA256", STS_ERR_UNSUPPORTED },
        { "Noise_NNpsk3_25519_ChaChaPoly_SHA256", STS_ERR_INVALID },   /* NN has 2 messages */
        { "Noise_Npsk2_25519_ChaChaPoly_SHA256", STS_ERR_INVALID },    /* N has 1 */
        { "Noise_NNpsk2+psk0_25519_ChaChaPoly_SHA256", STS_ERR_INVALID },
        { "Noise_NNpsk0+psk0_25519_ChaChaPoly_SHA256", STS_ERR_INVALID },
        { "Noise_NNpsk0+_25519_ChaChaPoly_SHA256", STS_ERR_INVALID },
        { "Noise_NNpsk_25519_ChaChaPoly_SHA256", STS_ERR_INVALID },
        { "Noise_NNpsk01_25519_ChaChaPoly_SHA256", STS_ERR_INVALID },
        { "Noise_NNpsk99999999999_25519_ChaChaPoly_SHA256", STS_ERR_INVALID },
        { "Noise_XX_25519_ChaChaPoly", STS_ERR_INVALID },
        { "Noise_XX_25519_ChaChaPoly_SHA256_", STS_ERR_INVALID },
        { "Noise_XX_25519_ChaChaPoly_SHA256_x", STS_ERR_INVALID },
        { "Noise__25519_ChaChaPoly_SHA256", STS_ERR_INVALID },
        { "Noise_xx_25519_ChaChaPoly_SHA256", STS_ERR_INVALID },
        { "NoisePSK_XX_25519_ChaChaPoly_SHA256", STS_ERR_INVALID },
        { "", STS_ERR_INVALID },
    };
    uint8_t s[32] = { 1 };
    struct sts_noise_keys keys = { .s = s };

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct sts_noise_hs *hs = (struct sts_noise_hs *)1;
        int err = sts_noise_hs_new(&hs, cases[i].name, 1, NULL, 0, &keys);
        if (err != cases[i].err) fprintf(stderr, "  %s: %d\n", cases[i].name, err);
        CHECK(err == cases[i].err);
        CHECK(hs == NULL);
    }
}

/* The notation and the validity rules of §7.3 and §9.3, on patterns that are
 * not in the spec. */
static void test_validity(void)
{
    static const char *const bad[] = {
        "",                                  /* no message */
        "<- e\n-> e, ee",                    /* the initiator speaks first */
        "-> e\n-> e, ee",                    /* turns alternate */
        "-> e\n<- e, ee\n-> s, se\n<- s\n-> ss", /* more messages than we hold */
        "-> e, x",                           /* no such token */
        "-> e,es",                           /* tokens are separated by ", " */
        "-> e, \n<- e",
        "->e",
        "<- ee\n...\n-> e",                  /* pre-messages hold keys only */
        "<- s\n-> s\n...\n-> e, es, ss",      /* the initiator's pre-message first */
        "-> e, e",                           /* rule 2: a key sent twice */
        "-> s\n...\n-> e, s",
        "-> e, es",                          /* rule 1: no responder static */
        "-> e\n<- e, ee, ee",                /* rule 3: a DH done twice */
        "-> s\n<- s\n...\n-> e, ss",          /* rule 4: ss without es */
        "-> e\n<- e, se, s, es",             /* rule 4: es without ee, responder */
        "<- s\n...\n-> psk, s, e, es",        /* §9.3: encrypting before sending e */
        "-> psk\n<- e, ee",                  /* §9.3: the initiator never sends e */
    };
    static const char *const good[] = {
        "-> e\n<- e, ee",
        "<- s\n...\n-> e, psk, es, s, ss",
        "-> s\n<- s\n...\n-> e, es, ss\n<- e, ee, se",
        "-> e\n<- e, ee, s, es\n-> s, se\n<- psk",
    };
    struct noise_pattern pat;

    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int err = noise_pattern_parse(&pat, bad[i]);
        if (err != STS_ERR_INVALID) fprintf(stderr, "  accepted: %s\n", bad[i]);
        CHECK(err == STS_ERR_INVALID);
    }
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) CHECK(noise_pattern_parse(&pat, good[i]) == 0);
    CHECK(pat.nmsgs == 4 && pat.ntokens[3] == 1 && pat.tokens[3][0] == NOISE_PSK);
}

/* The keys a pattern needs must be there, and only checkable pins given. */
static void test_missing_keys(void)
{
    uint8_t s[32] = { 1 }, rs[32] = { 9 }, psk[2][32] = { { 0 } };
    struct sts_noise_hs *hs = NULL;
    struct sts_noise_keys none = { 0 }, only_s = { .s = s }, only_rs = { .rs = rs };
    struct sts_noise_keys pin_nn = { .rs = rs }, two_psks = { .psks = (const uint8_t(*)[32])psk, .npsks = 2 };
    struct sts_noise_keys null_psks = { .npsks = 1 };

    CHECK(sts_noise_hs_new(&hs, "Noise_XX_25519_ChaChaPoly_SHA256", 1, NULL, 0, &none) == STS_ERR_INVALID);
    CHECK(sts_noise_hs_new(&hs, "Noise_NK_25519_ChaChaPoly_SHA256", 1, NULL, 0, &none) == STS_ERR_INVALID);
    CHECK(sts_noise_hs_new(&hs, "Noise_NK_25519_ChaChaPoly_SHA256", 0, NULL, 0, &none) == STS_ERR_INVALID);
    CHECK(sts_noise_hs_new(&hs, "Noise_KK_25519_ChaChaPoly_SHA256", 1, NULL, 0, &only_s) == STS_ERR_INVALID);
    CHECK(sts_noise_hs_new(&hs, "Noise_KK_25519_ChaChaPoly_SHA256", 1, NULL, 0, &only_rs) == STS_ERR_INVALID);
    CHECK(sts_noise_hs_new(&hs, "Noise_NN_25519_ChaChaPoly_SHA256", 1, NULL, 0, &pin_nn) == STS_ERR_INVALID);
    CHECK(sts_noise_hs_new(&hs, "Noise_NNpsk0_25519_ChaChaPoly_SHA256", 1, NULL, 0, &none) == STS_ERR_INVALID);
    CHECK(sts_noise_hs_new(&hs, "Noise_NNpsk0_25519_ChaChaPoly_SHA256", 1, NULL, 0, &two_psks) == STS_ERR_INVALID);
    CHECK(sts_noise_hs_new(&hs, "Noise_NNpsk0_25519_ChaChaPoly_SHA256", 1, NULL, 0, &null_psks) == STS_ERR_INVALID);
    CHECK(sts_noise_hs_new(&hs, "Noise_NNpsk0+psk2_25519_ChaChaPoly_SHA256", 1, NULL, 0, &two_psks) == 0);
    sts_noise_hs_free(hs);
    CHECK(sts_noise_hs_new(&hs, "Noise_NK_25519_ChaChaPoly_SHA256", 1, NULL, 0, &only_rs) == 0);
    CHECK(sts_noise_hs_remote_static(hs) != NULL && sts_noise_hs_remote_static(hs)[0] == 9);
    sts_noise_hs_free(hs);
}

/* ---- transport ---- */

/* Noise's nonce is 32 zero bits then the 64-bit counter: little-endian for
 * ChaChaPoly, big-endian for AESGCM (§12.3, §12.4). */
static void test_nonce_encoding(void)
{
    const uint64_t n = 0x0102030405060708u;
    uint8_t le[12] = { 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1 };
    uint8_t be[12] = { 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8 };
    struct sts_noise_cipher cs = { { 7 }, 0, 1, STS_AEAD_CHACHAPOLY };
    uint8_t a[32], b[32];

    CHECK(sts_noise_encrypt_at(&cs, n, (const uint8_t *)"ad", 2, (const uint8_t *)"0123456789abcdef", 16, a) == 0);
    CHECK(sts_aead_seal(STS_AEAD_CHACHAPOLY, cs.k, le, (const uint8_t *)"ad", 2, (const uint8_t *)"0123456789abcdef", 16, b) == 0);
    CHECK_MEM(a, b, 32);
    CHECK(sts_noise_decrypt_at(&cs, n, (const uint8_t *)"ad", 2, a, 32, b) == 0);
    CHECK_MEM(b, "0123456789abcdef", 16);
    cs.alg = STS_AEAD_AESGCM;
    CHECK(sts_noise_encrypt_at(&cs, n, NULL, 0, (const uint8_t *)"0123456789abcdef", 16, a) == 0);
    CHECK(sts_aead_seal(STS_AEAD_AESGCM, cs.k, be, NULL, 0, (const uint8_t *)"0123456789abcdef", 16, b) == 0);
    CHECK_MEM(a, b, 32);
    CHECK(cs.n == 0);
}

static void test_transport(void)
{
    struct sts_noise_cipher tx = { { 3 }, 0, 1, STS_AEAD_CHACHAPOLY }, rx = tx, none = { { 0 }, 0, 0, 0 };
    uint8_t a[64], b[64], c[64];
    static uint8_t big[STS_NOISE_MAX_MSG + 1];

    /* The implicit nonce counts from 0, like the explicit one. */
    CHECK(sts_noise_encrypt(&tx, NULL, 0, (const uint8_t *)"one", 3, a) == 0);
    CHECK(sts_noise_encrypt(&tx, NULL, 0, (const uint8_t *)"two", 3, a) == 0);
    CHECK(tx.n == 2);
    CHECK(sts_noise_encrypt_at(&tx, 1, NULL, 0, (const uint8_t *)"two", 3, b) == 0);
    CHECK_MEM(a, b, 19);
    /* A failed decryption leaves the counter where it was. */
    CHECK(sts_noise_decrypt(&rx, NULL, 0, a, 19, c) == STS_ERR_AUTH);
    CHECK(rx.n == 0);
    CHECK(sts_noise_decrypt_at(&rx, 1, (const uint8_t *)"x", 1, a, 19, c) == STS_ERR_AUTH);
    CHECK(sts_noise_decrypt_at(&rx, 1, NULL, 0, a, 19, c) == 0);
    CHECK_MEM(c, "two", 3);
    CHECK(sts_noise_decrypt_at(&rx, 1, NULL, 0, a, 15, c) == STS_ERR_TRUNCATED);
    /* Limits: the reserved nonce, the message size, a keyless cipher. */
    CHECK(sts_noise_encrypt_at(&tx, UINT64_MAX, NULL, 0, a, 1, b) == STS_ERR_TOO_BIG);
    tx.n = UINT64_MAX;
    CHECK(sts_noise_encrypt(&tx, NULL, 0, a, 1, b) == STS_ERR_TOO_BIG);
    CHECK(sts_noise_encrypt_at(&rx, 0, NULL, 0, big, STS_NOISE_MAX_MSG - 15, big) == STS_ERR_TOO_BIG);
    CHECK(sts_noise_decrypt_at(&rx, 0, NULL, 0, big, STS_NOISE_MAX_MSG + 1, big) == STS_ERR_TOO_BIG);
    CHECK(sts_noise_encrypt_at(&rx, 0, NULL, 0, big, STS_NOISE_MAX_MSG - 16, big) == 0);
    CHECK(sts_noise_encrypt(&none, NULL, 0, a, 1, b) == STS_ERR_STATE);
    CHECK(sts_noise_decrypt(&none, NULL, 0, a, 17, b) == STS_ERR_STATE);
    CHECK(sts_noise_rekey(&none) == STS_ERR_STATE);
}

/* REKEY(k) = the first 32 bytes of ENCRYPT(k, 2^64-1, "", 32 zeros). */
static void test_rekey(void)
{
    static const uint8_t zeros[32], max_nonce[12] = { 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
                                                      0xff, 0xff, 0xff, 0xff };
    for (int alg = STS_AEAD_CHACHAPOLY; alg <= STS_AEAD_AESGCM; alg++) {
        struct sts_noise_cipher cs = { { 5, 6 }, 9, 1, alg };
        uint8_t want[48];

        CHECK(sts_aead_seal((enum sts_aead_alg)alg, cs.k, max_nonce, NULL, 0, zeros, 32, want) == 0);
        CHECK(sts_noise_rekey(&cs) == 0);
        CHECK_MEM(cs.k, want, 32);
        CHECK(cs.n == 9);
        sts_noise_cipher_wipe(&cs);
        CHECK(!cs.has_key && cs.k[0] == 0);
    }
}

static void test_split_once(void)
{
    struct peer ini, res;
    uint8_t wire[256];
    size_t len;

    new_pair(&ini, &res, "Noise_NN_25519_ChaChaPoly_SHA256", NULL, 0);
    exchange(&ini, &res, NULL, 0, wire, &len);
    exchange(&res, &ini, NULL, 0, wire, &len);
    CHECK(sts_noise_hs_local_ephemeral_public(ini.hs) != NULL);
    split_if_done(&ini, &res);
    CHECK(sts_noise_hs_split(ini.hs, &ini.send, &ini.recv) == STS_ERR_STATE);
    /* Each side's send key is the other's receive key, and they differ. */
    CHECK_MEM(ini.send.k, res.recv.k, 32);
    CHECK_MEM(ini.recv.k, res.send.k, 32);
    CHECK(memcmp(ini.send.k, ini.recv.k, 32) != 0);
    peer_free(&ini);
    peer_free(&res);
}

int main(void)
{
    for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) test_vector(&vectors[i]);
    test_all_patterns();
    test_tampered();
    test_truncated();
    test_wrong_psk();
    test_pinned();
    test_low_order();
    test_turns();
    test_names();
    test_validity();
    test_missing_keys();
    test_nonce_encoding();
    test_transport();
    test_rekey();
    test_split_once();
    return unit_done();
}
