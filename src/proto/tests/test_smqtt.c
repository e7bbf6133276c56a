/* The SMQTT codec against three captured runs of the Java reference
 * (../shared/vectors/smqtt/, copied here as facts): every join request,
 * join response and data frame of the STATIC, UPDATE and SLOTTED runs
 * verifies, decrypts to what the logs say and re-encodes byte for byte; the
 * logged SLOTTED covers are what ours computes. Then every rejection path:
 * wrong keys, truncations, bad padding, flipped MACs, malformed JSON and key
 * material. */
#include "crypto/aes.h"
#include "crypto/hash.h"
#include "crypto/tests/hexvec.h"
#include "proto/smqtt.h"
#include "util/error.h"
#include "util/unit.h"

#include <stdint.h>
#include <string.h>

/* The reference's client key: the hex-decoded bytes, not the ASCII. */
static const char client_key_hex[] = "aaaaaaaabbbbbbbbccccccccdddddddd";

enum kind { JOIN_REQUEST, JOIN_RESPONSE, DATA };

/* One MQTT message of a run, in wire order: the payload (JSON, or a data
 * frame in hex) and, for a response, the key material the key server's log
 * says it sent. */
struct message {
    enum kind kind;
    const char *payload, *material;
};

/* ---- The captured runs: {static,update,slotted}-wire.txt and the logs ---- */

static const struct message static_run[] = {
    { JOIN_REQUEST,
      "{\"NONCE_LEN\":10,\"member\":\"client-11564\",\"group\":\"test\",\"seq\":0,\"auth\":\"af4b7db7007d2e869"
      "c8208d110897d43\"}",
      NULL },
    { JOIN_RESPONSE,
      "{\"member\":\"client-11564\",\"group\":\"test\",\"seq\":0,\"encryptedKeyMaterial\":\"RYaZwpOvjo20ycXy"
      "zgA4BDsjfqXRLkiGQBiCRf/3BJ/xb6IZERLUUtNR2I9L5jNZFuhqQvzn70suH6/bR6kkew==\",\"auth\":\"32b0ef"
      "1cd714e032d40da4dd906f6b0f\"}",
      "a962a4db05b2b6c7f96479399cbdf55c" },
    { JOIN_REQUEST,
      "{\"NONCE_LEN\":10,\"member\":\"client-75677\",\"group\":\"test\",\"seq\":0,\"auth\":\"618aee5f58fa0370d"
      "cfc9d699bdb7a18\"}",
      NULL },
    { JOIN_RESPONSE,
      "{\"member\":\"client-75677\",\"group\":\"test\",\"seq\":0,\"encryptedKeyMaterial\":\"mqszFCa2TLYFnB9a"
      "/mLJUncp8KBVNM1unIRZqCLTajveOHSc07J2PF+Ee6w6iCe4PDUj0G3F5san9qO+NDVkEA==\",\"auth\":\"a144c3"
      "286658cb36a99baec0619f3c5a\"}",
      "a962a4db05b2b6c7f96479399cbdf55c" },
    { JOIN_REQUEST,
      "{\"NONCE_LEN\":10,\"member\":\"client-87999\",\"group\":\"test\",\"seq\":0,\"auth\":\"3e9b661554532fa9c"
      "f5b187249d345f8\"}",
      NULL },
    { JOIN_RESPONSE,
      "{\"member\":\"client-87999\",\"group\":\"test\",\"seq\":0,\"encryptedKeyMaterial\":\"9sa+D3LYmu9dlt4A"
      "YIf5p/PiRqfpWs0t2sX54RD6KdTek/SusBSV82M/DG7vFL5r7+HqJzlbUopmOZp41/gs/g==\",\"auth\":\"fd22d6"
      "54994edc43b11d8635b1cf8542\"}",
      "a962a4db05b2b6c7f96479399cbdf55c" },
    { DATA, "0000" "6ce30a669f53658d1257b0eaee807ce4"
      "4c64cc32da78f46f543312574073e5ac" "bf85a9d26befbb65078f65028e7f5ccf", NULL },
    { DATA, "0000" "ebafa21a73be1ed6f6e7b9ad6e9a1573"
      "f4a6843c35025a0fb09798d3d0d5d1c1" "018ce15caea925348337c2b2e9b94d04", NULL },
    { DATA, "0000" "b66fe4fc45fa0c0561527845ac786acc"
      "9f1e46467276ac83355be03c5a4a38ee" "37f20856215e39dc6cd627be468db5b6", NULL },
};
static const struct message update_run[] = {
    { JOIN_REQUEST,
      "{\"NONCE_LEN\":10,\"member\":\"client-19433\",\"group\":\"test\",\"seq\":0,\"auth\":\"2b23c0491d3b1deb8"
      "dea194fcdb18721\"}",
      NULL },
    { JOIN_RESPONSE,
      "{\"member\":\"client-19433\",\"group\":\"test\",\"seq\":1,\"encryptedKeyMaterial\":\"+YjKgaen3UfhOomt"
      "9UDuHpBdcOIsA+m0SG6HWgFPQt5l8CzgS5ATl8tBasTHKo3UXUQa5KpjL6W22VDbVMDbbA==\",\"auth\":\"a2ff4e"
      "7261f3ff0ef641ec0df3e6353e\"}",
      "cad5c88c5fdddd5e77a6be6eb5ce4176" },
    { JOIN_REQUEST,
      "{\"NONCE_LEN\":10,\"member\":\"client-51858\",\"group\":\"test\",\"seq\":0,\"auth\":\"eb57547a0ba36c3c7"
      "47429084a99f713\"}",
      NULL },
    { JOIN_RESPONSE,
      "{\"member\":\"client-51858\",\"group\":\"test\",\"seq\":1,\"encryptedKeyMaterial\":\"LbLUd1hv6tmHADqV"
      "M+Ma752F/LsP/JExpY84ubUJ/NjUtkjDVfPeKZ4tU1PRxBuw+f9to6Vh/jm7VKqZ5C0tZg==\",\"auth\":\"acf2f3"
      "f673b9fe32d64764e6052bd642\"}",
      "fc983cae84b1f290d4765cb503f206f1" },
    { JOIN_RESPONSE,
      "{\"member\":\"client-19433\",\"group\":\"test\",\"seq\":2,\"encryptedKeyMaterial\":\"oOFqmUoYlvkPORWO"
      "7G5zR6dTv1vujNfJz98r6ZSqtvwGJJ6o47CcmsOCSA6vt6/hlS1nt89LkpHAy3DY6drpaw==\",\"auth\":\"f23eaa"
      "8bc022ad24cb2b5dbacaefa24d\"}",
      "fc983cae84b1f290d4765cb503f206f1" },
    { JOIN_REQUEST,
      "{\"NONCE_LEN\":10,\"member\":\"client-41092\",\"group\":\"test\",\"seq\":0,\"auth\":\"0a8a6b14ce8b2d895"
      "a707019908bafae\"}",
      NULL },
    { JOIN_RESPONSE,
      "{\"member\":\"client-51858\",\"group\":\"test\",\"seq\":2,\"encryptedKeyMaterial\":\"blGk4ul+xKB6SqJF"
      "Mn1M9gKyh7sVjOn2eT+6VtCSWjnxq5cw8namDsq2C4zuVPAxGRrKbzd5OHUzAsKMhHMueA==\",\"auth\":\"bcc391"
      "17623a19a13a8ddb36df955983\"}",
      "2fc54b124d8e70b2c9cba8d539d3a265" },
    { JOIN_RESPONSE,
      "{\"member\":\"client-19433\",\"group\":\"test\",\"seq\":3,\"encryptedKeyMaterial\":\"SpQaOkyMDLFf87f9"
      "A3jWGaqrtcfGLs1JLbVB/V5JiPNulX1y4REIkwmKod1QOi3ppArc8I+G8Hm30K1adMgVTA==\",\"auth\":\"32cb40"
      "089cbed85df35c54b8bf447bd6\"}",
      "2fc54b124d8e70b2c9cba8d539d3a265" },
    { JOIN_RESPONSE,
      "{\"member\":\"client-41092\",\"group\":\"test\",\"seq\":1,\"encryptedKeyMaterial\":\"HlYX3JnroA21Uk9Y"
      "jwbFm/bEJHB9gD5gAtbM2jZ2PXg8RaFLMfa5GFN3shy92zpp0mPMwLPDndgQCLaffrbJiA==\",\"auth\":\"b5b887"
      "712732b07b8211830c02115504\"}",
      "2fc54b124d8e70b2c9cba8d539d3a265" },
    { DATA, "0000" "b4f40157fb303966ff011007e4eed58a"
      "8254413e084d8fd232d0b61555b5a9fd" "925efd6c9ee9ce5aedaa580e07cadd32", NULL },
    { DATA, "0000" "c54424ed486023d329bf84a6e675e3bd"
      "637426ca6788fb3793d450fe9074dd45" "0a2245a7ffcaacf4e22d4c9d555427e1", NULL },
    { DATA, "0000" "a421dec80c4143de4691d99290de59e0"
      "d09630689dee4cd4e868043896c4d0c3" "163dc776451852075ad2526c3354cecd", NULL },
};
static const struct message slotted_run[] = {
    { JOIN_REQUEST,
      "{\"NONCE_LEN\":10,\"member\":\"client-93862\",\"group\":\"test\",\"expires\":30,\"seq\":0,\"auth\":\"a276"
      "3d970b6d0733fbaf7ebce4b7d7c3\"}",
      NULL },
    { JOIN_RESPONSE,
      "{\"member\":\"client-93862\",\"group\":\"test\",\"expires\":30,\"slot\":3,\"depth\":16,\"time\":3907,\"se"
      "q\":0,\"encryptedKeyMaterial\":\"lWwkN2lrcqv34JDBnO9Xcoh7hVmx9K4d+b8fqpPnQr42luMR6eZfm/TDvuH"
      "PaQlV/wCoqPMYu9e5UX1dMjrf77wQXBxeGvO7SebOLQRxdbn3cXPjhB2HLr66wbHuKFH8kmDwY9biHiu+HD0pLOu"
      "gC3FyndeO7U2yG2cc2A8KUMy5SNaOoi51WXGNN3BgX4pKxztBZV+fYjr7Md4UtKoUeMcWPiTGv/C6kBLLAc2QtYz"
      "QdWopTmFw9M/jIUVOVO7tIJW0VjUiu8Virh2vRST8OiR6LBsu28jr0IznqxYOuSRXsvMkKmU5DVG0pGu0HNC6xU1"
      "AzbPTX5Xr/o8Sk8avmw==\",\"auth\":\"5585693ad7eb5eb7937335109aed7982\"}",
      "dc48590d514e66543f98c027fa55a28c"
      "&[16,1,fdec096a47f097c1c7aaf0afc3a85afb]"
      "&[15,1,fec13c3777f86d661150b20377ee8e12]"
      "&[14,1,1d023b57c92efef07e80885fb45c4ae9]"
      "&[15,4,a14e48682b5d7a3f4398e9a8475148e8]"
      "&[16,10,c1975197e58aca8e91bca4fcda56d634]" },
    { JOIN_REQUEST,
      "{\"NONCE_LEN\":10,\"member\":\"client-31005\",\"group\":\"test\",\"expires\":30,\"seq\":0,\"auth\":\"29c7"
      "9beb342aabd8b595ae083a8f5faa\"}",
      NULL },
    { JOIN_RESPONSE,
      "{\"member\":\"client-31005\",\"group\":\"test\",\"expires\":30,\"slot\":3,\"depth\":16,\"time\":4797,\"se"
      "q\":0,\"encryptedKeyMaterial\":\"oL6BVn2/jeJpQ5JeFw1/33Jw5Ju6hV2G7+hglTf3eDU+UPhiZGj9ufmo3a1"
      "LaKWT2MUlmhZLhunLN2q0o9g06ayFeC4KEx8ACom1dJRtIUsdcUA3QerdOuyOAmN/fxwy6i9c/pvNaXF8dVHWK/H"
      "TUABOc0OqVCLeDmnodcX6B73yfHLCURG4HCfAOhDrTJuDayusI0Mu50AK62IEt7leDBl/p32+z6+8udjEkAI1/Z3"
      "N7dlUsPHgZsTdm7FeZXMCgqrgtOuyG41jpZG+jQK0vYGDUwWcSvgTErpGMAcc+iGabAyHLItaSeh1P2G0uikMsIm"
      "Gf01M6sqEAwqUvRPFMw==\",\"auth\":\"f4b032d829dd4eba1ddba394dc57835f\"}",
      "dc48590d514e66543f98c027fa55a28c"
      "&[16,1,fdec096a47f097c1c7aaf0afc3a85afb]"
      "&[15,1,fec13c3777f86d661150b20377ee8e12]"
      "&[14,1,1d023b57c92efef07e80885fb45c4ae9]"
      "&[15,4,a14e48682b5d7a3f4398e9a8475148e8]"
      "&[16,10,c1975197e58aca8e91bca4fcda56d634]" },
    { JOIN_REQUEST,
      "{\"NONCE_LEN\":10,\"member\":\"client-29735\",\"group\":\"test\",\"expires\":30,\"seq\":0,\"auth\":\"f6d1"
      "9156348566b566daf81c92256505\"}",
      NULL },
    { JOIN_RESPONSE,
      "{\"member\":\"client-29735\",\"group\":\"test\",\"expires\":30,\"slot\":3,\"depth\":16,\"time\":6053,\"se"
      "q\":0,\"encryptedKeyMaterial\":\"a3LDSqvVB5KftrqqbmOyGduI6X0SuoBFwMA6XLf/SOs84THQ4fUlUcv3mom"
      "uP8dzSn4ZkOcdZOzxV3j02E5punKsFrU9GKcH4zIJ1KYl7yJOcgUg4UC/FcDx3JLAn8+DEcV0VQ/M4v8KWkieUaQ"
      "6sDseJvTBwXkmy1OI6fYrlybnjkraj1cT0HVf5qdqfBfDUo1yINx2AKdM4VpJE/Eo+4YEXvgAUssY4ZEJJZ+/eaY"
      "=\",\"auth\":\"3858c764a3fbf1da886922bf7fd9d330\"}",
      "dc48590d514e66543f98c027fa55a28c"
      "&[15,1,fec13c3777f86d661150b20377ee8e12]"
      "&[14,1,1d023b57c92efef07e80885fb45c4ae9]"
      "&[14,2,d43f624dbe9c661021855adfd80491ff]" },
    { DATA, "0002" "4f87f186a262d152e764106b3078c87c"
      "9b1faa0ecef928c924910a36460aac39" "5c5022af704d95facefe4a891dbf9cbc", NULL },
    { DATA, "0002" "3ebbb0010f3346d8ea3b04fe15b861a0"
      "ef966889220962565e07e88c37c275b4" "18687ed787a00cc137c921a39859a153", NULL },
    { DATA, "0003" "8235bfc0b37fc9ca93dfc1b790629d54"
      "ee9cd8900558511f847acd693da8bc7d" "18ade91bd08bc73d1155e64b82f601cc", NULL },
};

#define COUNT(a) (sizeof a / sizeof a[0])

/* The data frames' plaintexts, in order, and the group key each was sent
 * under (static-clientA.log, update-clientA.log: the one group key; for
 * SLOTTED, slotted-clientA.log names the slot key it used per message). */
static const char *const plaintexts[] = { "hello from A", "hello from B", "hello from C" };
static const char *const static_keys[] = { "a962a4db05b2b6c7f96479399cbdf55c", "a962a4db05b2b6c7f96479399cbdf55c",
                                           "a962a4db05b2b6c7f96479399cbdf55c" };
static const char *const update_keys[] = { "2fc54b124d8e70b2c9cba8d539d3a265", "2fc54b124d8e70b2c9cba8d539d3a265",
                                           "2fc54b124d8e70b2c9cba8d539d3a265" };
static const char *const slotted_keys[] = { "217809e0e1c7f348fb8f92e908c0bed7", "217809e0e1c7f348fb8f92e908c0bed7",
                                            "586b3a939e7d7827fcb6b0748f28b8b2" };

/* slotted-keyserver.log: the tree's root, the slot length, the intervals it
 * granted the three members (whose responses carry time = e). */
static const char slotted_root[] = "81a6bf0e8f0d37b431ab1cc4aad1d6ed";
#define SLOTTED_T 3
#define SLOTTED_D 16
static const struct {
    int64_t first, last;
} slotted_grants[] = { { 1, 10 }, { 1, 10 }, { 2, 11 } };

static uint8_t client_key[STS_SMQTT_KEY_LEN];
static char why[STS_SMQTT_WHY_LEN];

static void key_of(uint8_t key[STS_SMQTT_KEY_LEN], const char *hex)
{
    CHECK(unhex(key, STS_SMQTT_KEY_LEN, hex) == STS_SMQTT_KEY_LEN);
}

/* A request decodes, its MAC verifies (and fails under a wrong key), and it
 * encodes back to exactly the bytes the reference sent. */
static void replay_request(const char *json)
{
    struct sts_smqtt_request r;
    uint8_t wrong[STS_SMQTT_KEY_LEN];
    char out[512];
    size_t n;

    CHECK(sts_smqtt_request_decode(&r, json, strlen(json), why) == 0);
    CHECK(sts_smqtt_request_verify(&r, client_key) == 0);
    memcpy(wrong, client_key, sizeof wrong);
    wrong[0] ^= 1;
    CHECK(sts_smqtt_request_verify(&r, wrong) == STS_ERR_AUTH);
    uint8_t logged[STS_SMQTT_MAC_LEN];
    memcpy(logged, r.auth, sizeof logged);
    memset(r.auth, 0, sizeof r.auth);
    CHECK(sts_smqtt_request_sign(&r, client_key) == 0);
    CHECK_MEM(r.auth, logged, sizeof logged);
    CHECK(sts_smqtt_request_encode(&r, out, sizeof out, &n) == 0);
    CHECK(n == strlen(json) && memcmp(out, json, n) == 0);
}

/* A response verifies, decrypts to the logged material, and re-encodes byte
 * for byte given its IV; the material re-formats to the same text. Returns
 * the response's time field (the SLOTTED grant's e). */
static int64_t replay_response(const char *json, const char *material, struct sts_smqtt_node *nodes,
                               size_t *count)
{
    static struct sts_smqtt_response r, again;
    uint8_t wrong[STS_SMQTT_KEY_LEN], key[STS_SMQTT_KEY_LEN];
    char text[STS_SMQTT_MATERIAL_MAX], out[1024];
    size_t n, len;

    CHECK(sts_smqtt_response_decode(&r, json, strlen(json), why) == 0);
    CHECK(sts_smqtt_response_verify(&r, client_key) == 0);
    CHECK(sts_smqtt_response_open(&r, client_key, text, sizeof text, &len, why) == 0);
    CHECK(len == strlen(material) && memcmp(text, material, len) == 0);
    memcpy(wrong, client_key, sizeof wrong);
    wrong[15] ^= 0x80;
    CHECK(sts_smqtt_response_open(&r, wrong, text, sizeof text, &len, why) == STS_ERR_AUTH);
    CHECK(strcmp(why, "bad MAC") == 0 && len == 0);

    again = r;
    memset(&again.ekm, 0, sizeof again.ekm);
    memset(again.auth, 0, sizeof again.auth);
    CHECK(sts_smqtt_response_seal(&again, client_key, material, strlen(material), r.ekm.bytes) == 0);
    CHECK(again.ekm.len == r.ekm.len && memcmp(again.ekm.bytes, r.ekm.bytes, r.ekm.len) == 0);
    CHECK_MEM(again.auth, r.auth, STS_SMQTT_MAC_LEN);
    CHECK(sts_smqtt_response_encode(&again, out, sizeof out, &n) == 0);
    CHECK(n == strlen(json) && memcmp(out, json, n) == 0);

    CHECK(sts_smqtt_material_parse(material, strlen(material), key, nodes, count, why) == 0);
    if (*count == 0) {
        sts_smqtt_material_key(text, key);
        CHECK(strcmp(text, material) == 0);
    } else {
        CHECK(sts_smqtt_material_slotted(text, sizeof text, &len, key, nodes, *count) == 0);
        CHECK(len == strlen(material) && memcmp(text, material, len) == 0);
    }
    return r.time;
}

/* A frame opens under its key to its plaintext, and re-seals byte for byte
 * with its IV. */
static void replay_frame(const char *hex, const uint8_t key[STS_SMQTT_KEY_LEN], const char *plaintext,
                         uint16_t *index)
{
    uint8_t frame[64], pt[64], out[64];
    size_t len = unhex(frame, sizeof frame, hex), ptlen, n;

    CHECK(sts_smqtt_frame_index(frame, len, index) == 0);
    CHECK(sts_smqtt_open(key, frame, len, pt, sizeof pt, &ptlen, index, why) == 0);
    CHECK(ptlen == strlen(plaintext) && memcmp(pt, plaintext, ptlen) == 0);
    CHECK(sts_smqtt_seal(key, *index, pt, ptlen, frame + 2, out, sizeof out, &n) == 0);
    CHECK(n == len && memcmp(out, frame, len) == 0);
}

static void replay_keyed_run(const struct message *run, size_t count, const char *const keys[])
{
    struct sts_smqtt_node nodes[STS_SMQTT_COVER_MAX];
    uint8_t key[STS_SMQTT_KEY_LEN];
    size_t frames = 0, n;
    uint16_t index;

    for (size_t i = 0; i < count; i++) {
        if (run[i].kind == JOIN_REQUEST)
            replay_request(run[i].payload);
        if (run[i].kind == JOIN_RESPONSE) {
            replay_response(run[i].payload, run[i].material, nodes, &n);
            CHECK(n == 0);
        }
        if (run[i].kind == DATA) {
            key_of(key, keys[frames]);
            replay_frame(run[i].payload, key, plaintexts[frames++], &index);
            CHECK(index == 0);
        }
    }
    CHECK(frames == 3);
}

static int same_nodes(const struct sts_smqtt_node *a, const struct sts_smqtt_node *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].depth != b[i].depth || a[i].pos != b[i].pos || memcmp(a[i].key, b[i].key, sizeof a[i].key) != 0)
            return 0;
    return 1;
}

/* SLOTTED: the grants follow from each response's time, the covers from
 * the grants and the logged root, and clientA's slot keys from its cover. */
static void replay_slotted_run(void)
{
    struct sts_smqtt_node logged[STS_SMQTT_COVER_MAX], ours[STS_SMQTT_COVER_MAX], clienta[STS_SMQTT_COVER_MAX];
    uint8_t root[STS_SMQTT_KEY_LEN], key[STS_SMQTT_KEY_LEN], want[STS_SMQTT_KEY_LEN];
    size_t responses = 0, frames = 0, nlogged, nours, nclienta = 0;
    int64_t first, last;
    uint16_t index;

    key_of(root, slotted_root);
    for (size_t i = 0; i < COUNT(slotted_run); i++) {
        const struct message *m = &slotted_run[i];
        if (m->kind == JOIN_REQUEST)
            replay_request(m->payload);
        if (m->kind == JOIN_RESPONSE) {
            int64_t e = replay_response(m->payload, m->material, logged, &nlogged);
            CHECK(sts_smqtt_grant(e, SLOTTED_T, 30, &first, &last) == 0);
            CHECK(first == slotted_grants[responses].first && last == slotted_grants[responses].last);
            CHECK(sts_smqtt_cover(root, SLOTTED_D, (uint32_t)first, (uint32_t)last, ours, &nours) == 0);
            CHECK(nours == nlogged && same_nodes(ours, logged, nlogged));
            if (responses++ == 0) {
                memcpy(clienta, logged, sizeof clienta);
                nclienta = nlogged;
            }
        }
        if (m->kind == DATA) {
            uint8_t frame[64];
            CHECK(sts_smqtt_frame_index(frame, unhex(frame, sizeof frame, m->payload), &index) == 0);
            CHECK(sts_smqtt_leaf(clienta, nclienta, SLOTTED_D, index, key) == 0);
            key_of(want, slotted_keys[frames]);
            CHECK_MEM(key, want, sizeof key);
            replay_frame(m->payload, key, plaintexts[frames++], &index);
        }
    }
    CHECK(responses == 3 && frames == 3);
}

/* The reference's parser matches fields by name: any order, whitespace,
 * unknown fields of any shape, uppercase hex. The MAC still verifies. */
static void test_lenient_parse(void)
{
    static const char json[] =
        " {\n\t\"auth\" : \"AF4B7DB7007D2E869C8208D110897D43\", \"extra\":{\"a\":[1,-2.5e+3,true,null,\"x\\u00e9\"]},"
        "\"seq\":0 ,\"group\":\"test\",\"member\":\"client-11564\",\"NONCE_LEN\":99}\r\n";
    struct sts_smqtt_request r;

    CHECK(sts_smqtt_request_decode(&r, json, strlen(json), why) == 0);
    CHECK(r.member.len == 12 && strcmp(r.member.text, "client-11564") == 0);
    CHECK(r.expires == -1 && r.seq == 0);
    CHECK(sts_smqtt_request_verify(&r, client_key) == 0);
    /* A request's unknown response fields are ignored, not an error. */
    static const char with_slot[] = "{\"member\":\"m\",\"group\":\"g\",\"slot\":\"x\",\"seq\":1,"
                                    "\"auth\":\"00000000000000000000000000000000\"}";
    CHECK(sts_smqtt_request_decode(&r, with_slot, strlen(with_slot), why) == 0);
    CHECK(sts_smqtt_request_verify(&r, client_key) == STS_ERR_AUTH);
}

#define AUTH "\"auth\":\"00000000000000000000000000000000\""

/* Every malformed request is refused with its reason. */
static void test_request_errors(void)
{
    static const struct {
        const char *json, *why;
    } cases[] = {
        { "", "not a JSON object" },
        { "[1]", "not a JSON object" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":0}", "missing field 'auth'" },
        { "{\"member\":\"m\",\"group\":\"g\"," AUTH "}", "missing field 'seq'" },
        { "{\"group\":\"g\",\"seq\":0," AUTH "}", "missing field 'member'" },
        { "{}", "missing field 'member'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":0,\"auth\":\"0000000000000000000000000000000g\"}",
          "bad hex in 'auth'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":0,\"auth\":\"0000\"}", "'auth' is not 16 bytes" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":0,\"auth\":16}", "wrong type for 'auth'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":\"0\"," AUTH "}", "wrong type for 'seq'" },
        { "{\"member\":7,\"group\":\"g\",\"seq\":0," AUTH "}", "wrong type for 'member'" },
        { "{\"member\":\"m\",\"group\":null,\"seq\":0," AUTH "}", "wrong type for 'group'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":9223372036854775808," AUTH "}", "'seq' out of range" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":99999999999999999999999," AUTH "}", "'seq' out of range" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":-1," AUTH "}", "negative 'seq'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"expires\":-30,\"seq\":0," AUTH "}", "negative 'expires'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":1.5," AUTH "}", "bad integer in 'seq'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":1e3," AUTH "}", "bad integer in 'seq'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":01," AUTH "}", "bad integer in 'seq'" },
        { "{\"member\":\"\",\"group\":\"g\",\"seq\":0," AUTH "}", "'member' must be 1 to 255 bytes" },
        { "{\"member\":\"m\",\"member\":\"m\",\"group\":\"g\",\"seq\":0," AUTH "}", "duplicate field 'member'" },
        { "{\"member\":\"m", "unterminated string" },
        { "{\"member\":\"m\\", "unterminated string" },
        { "{\"member\":\"m\\x\",\"group\":\"g\",\"seq\":0," AUTH "}", "bad escape in string" },
        { "{\"member\":\"\\ud800\",\"group\":\"g\",\"seq\":0," AUTH "}", "bad escape in string" },
        { "{\"member\":\"\\udc00\",\"group\":\"g\",\"seq\":0," AUTH "}", "bad escape in string" },
        { "{\"member\":\"\\u12\"}", "bad escape in string" },
        { "{\"member\":\"a\tb\",\"group\":\"g\",\"seq\":0," AUTH "}", "control character in string" },
        { "{\"member\":\"m\" \"group\":\"g\"}", "expected ',' or '}'" },
        { "{\"member\" \"m\"}", "expected ':'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":0," AUTH, "unexpected end of message, expected ',' or '}'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":0," AUTH "}x", "trailing data after the object" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":0," AUTH ",}", "expected a string" },
        { "{\"x\":tru}", "bad value" },
        { "{\"x\":-}", "bad number" },
        { "{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", "nesting too deep" },
    };
    struct sts_smqtt_request r;

    for (size_t i = 0; i < COUNT(cases); i++) {
        why[0] = '\0';
        int err = sts_smqtt_request_decode(&r, cases[i].json, strlen(cases[i].json), why);
        CHECK(err == STS_ERR_PARSE);
        if (strcmp(why, cases[i].why) != 0)
            fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, why, cases[i].why);
        CHECK(strcmp(why, cases[i].why) == 0);
    }
}

/* Bounds: ids of 255 bytes pass, 256 do not; a message over 64 KiB is
 * refused before it is read. */
static void test_bounds(void)
{
    static char json[STS_SMQTT_JSON_MAX + 2];
    struct sts_smqtt_request r;
    char id[STS_SMQTT_ID_MAX + 2];
    int n;

    memset(id, 'a', sizeof id - 1);
    id[STS_SMQTT_ID_MAX] = '\0';
    n = snprintf(json, sizeof json, "{\"member\":\"%s\",\"group\":\"g\",\"seq\":9223372036854775807," AUTH "}", id);
    CHECK(sts_smqtt_request_decode(&r, json, (size_t)n, why) == 0);
    CHECK(r.member.len == STS_SMQTT_ID_MAX && r.seq == INT64_MAX);
    id[STS_SMQTT_ID_MAX] = 'a';
    id[STS_SMQTT_ID_MAX + 1] = '\0';
    n = snprintf(json, sizeof json, "{\"member\":\"%s\",\"group\":\"g\",\"seq\":0," AUTH "}", id);
    CHECK(sts_smqtt_request_decode(&r, json, (size_t)n, why) == STS_ERR_PARSE);
    CHECK(strcmp(why, "'member' too long") == 0);

    memset(json, ' ', sizeof json);
    json[0] = '{';
    CHECK(sts_smqtt_request_decode(&r, json, STS_SMQTT_JSON_MAX + 1, why) == STS_ERR_TOO_BIG);
    CHECK(strcmp(why, "message longer than 65536 bytes") == 0);
}

/* Strings are escaped as JSON requires, and \u escapes (surrogate pairs
 * too) decode to UTF-8. */
static void test_escapes(void)
{
    static const char want[] = "{\"NONCE_LEN\":10,\"member\":\"a\\\"b\\\\c\\n\\u0001\\u001f\xc3\xa9\",\"group\":\"g\","
                               "\"expires\":5,\"seq\":7,\"auth\":\"";
    struct sts_smqtt_request r = { .expires = 5, .seq = 7 }, back;
    char out[256];
    size_t n;

    CHECK(sts_smqtt_id_set(&r.member, "a\"b\\c\n\x01\x1f\xc3\xa9", 10) == 0);
    CHECK(sts_smqtt_id_set(&r.group, "g", 1) == 0);
    CHECK(sts_smqtt_request_sign(&r, client_key) == 0);
    CHECK(sts_smqtt_request_encode(&r, out, sizeof out, &n) == 0);
    CHECK(n > strlen(want) && memcmp(out, want, strlen(want)) == 0);
    CHECK(sts_smqtt_request_decode(&back, out, n, why) == 0);
    CHECK(back.member.len == 10 && memcmp(back.member.text, r.member.text, 10) == 0);
    CHECK(back.expires == 5 && back.seq == 7 && sts_smqtt_request_verify(&back, client_key) == 0);

    static const char esc[] = "{\"member\":\"\\u00e9\\ud83d\\ude00\\/\\b\\u0000\",\"group\":\"g\",\"seq\":0," AUTH "}";
    CHECK(sts_smqtt_request_decode(&back, esc, strlen(esc), why) == 0);
    CHECK(back.member.len == 9 && memcmp(back.member.text, "\xc3\xa9\xf0\x9f\x98\x80/\b\0", 9) == 0);

    /* Out of range for encoding: an empty id, a negative seq, no room. */
    struct sts_smqtt_request bad = r;
    bad.member.len = 0;
    CHECK(sts_smqtt_request_encode(&bad, out, sizeof out, &n) == STS_ERR_INVALID);
    bad = r;
    bad.seq = -1;
    CHECK(sts_smqtt_request_encode(&bad, out, sizeof out, &n) == STS_ERR_INVALID);
    CHECK(sts_smqtt_request_encode(&r, out, 40, &n) == STS_ERR_TOO_BIG && n == 0);
    CHECK(sts_smqtt_id_set(&bad.member, "", 0) == STS_ERR_INVALID);
}

/* Our leave: its MAC is HMAC-SHA256 over "leave" || member || group ||
 * dec(seq), truncated, so a join request's MAC never passes as one. */
static void test_leave(void)
{
    static const char want_prefix[] = "{\"member\":\"client-1\",\"group\":\"test\",\"seq\":12,\"auth\":\"";
    static const char input[] = "leaveclient-1test12";
    struct sts_smqtt_leave l = { .seq = 12 }, back;
    struct sts_smqtt_request r = { .expires = -1, .seq = 12 };
    uint8_t mac[STS_SHA256_LEN];
    char out[256];
    size_t n;

    CHECK(sts_smqtt_id_set(&l.member, "client-1", 8) == 0 && sts_smqtt_id_set(&l.group, "test", 4) == 0);
    CHECK(sts_smqtt_leave_sign(&l, client_key) == 0);
    CHECK(sts_hmac(STS_SHA256, client_key, sizeof client_key, (const uint8_t *)input, strlen(input), mac) == 0);
    CHECK_MEM(l.auth, mac, STS_SMQTT_MAC_LEN);
    CHECK(sts_smqtt_leave_encode(&l, out, sizeof out, &n) == 0);
    CHECK(n == strlen(want_prefix) + 34 && memcmp(out, want_prefix, strlen(want_prefix)) == 0);
    CHECK(sts_smqtt_leave_decode(&back, out, n, why) == 0);
    CHECK(sts_smqtt_leave_verify(&back, client_key) == 0);
    CHECK(back.seq == 12 && back.member.len == 8 && back.group.len == 4);

    r.member = l.member;
    r.group = l.group;
    CHECK(sts_smqtt_request_sign(&r, client_key) == 0);
    memcpy(back.auth, r.auth, sizeof back.auth);
    CHECK(sts_smqtt_leave_verify(&back, client_key) == STS_ERR_AUTH);
    back.auth[0] ^= 1;
    CHECK(sts_smqtt_leave_verify(&back, client_key) == STS_ERR_AUTH);

    static const char missing[] = "{\"member\":\"m\",\"group\":\"g\"," AUTH "}";
    CHECK(sts_smqtt_leave_decode(&back, missing, strlen(missing), why) == STS_ERR_PARSE);
    CHECK(strcmp(why, "missing field 'seq'") == 0);
}

/* Responses: bad base64, key material of a bad length or padding (under a
 * valid MAC, so decryption is reached), a flipped MAC. */
static void test_response_errors(void)
{
    static const struct {
        const char *json, *why;
    } cases[] = {
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":0,\"encryptedKeyMaterial\":\"AAA\"," AUTH "}",
          "bad base64 in 'encryptedKeyMaterial'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":0,\"encryptedKeyMaterial\":\"AA=A\"," AUTH "}",
          "bad base64 in 'encryptedKeyMaterial'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":0,\"encryptedKeyMaterial\":\"A\\nAA\"," AUTH "}",
          "bad base64 in 'encryptedKeyMaterial'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":0,\"encryptedKeyMaterial\":[]," AUTH "}",
          "wrong type for 'encryptedKeyMaterial'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"seq\":0," AUTH "}", "missing field 'encryptedKeyMaterial'" },
        { "{\"member\":\"m\",\"group\":\"g\",\"time\":1.0,\"seq\":0,\"encryptedKeyMaterial\":\"\"," AUTH "}",
          "bad integer in 'time'" },
    };
    static struct sts_smqtt_response r;
    char text[STS_SMQTT_MATERIAL_MAX];
    size_t len;

    for (size_t i = 0; i < COUNT(cases); i++) {
        why[0] = '\0';
        CHECK(sts_smqtt_response_decode(&r, cases[i].json, strlen(cases[i].json), why) == STS_ERR_PARSE);
        CHECK(strcmp(why, cases[i].why) == 0);
    }
    static const char big[] = "{\"member\":\"m\",\"group\":\"g\",\"seq\":0,\"encryptedKeyMaterial\":\"\"," AUTH "}";
    CHECK(sts_smqtt_response_decode(&r, big, strlen(big), why) == 0);
    CHECK(r.ekm.len == 0 && r.expires == -1 && r.slot == -1 && r.depth == -1 && r.time == -1);

    /* Signed, but the material is not IV || whole blocks. */
    for (size_t n = 0; n < 64; n++) {
        if (n >= 32 && n % 16 == 0)
            continue;
        r.ekm.len = n;
        CHECK(sts_smqtt_response_sign(&r, client_key) == 0);
        CHECK(sts_smqtt_response_open(&r, client_key, text, sizeof text, &len, why) == STS_ERR_INVALID);
        CHECK(strcmp(why, "bad length of 'encryptedKeyMaterial'") == 0);
    }
    /* Signed, decrypting to a block of zeros: bad padding. */
    uint8_t iv[16] = { 0 }, zeros[16] = { 0 };
    CHECK(sts_aes_cbc(1, client_key, sizeof client_key, iv, zeros, 16, r.ekm.bytes + 16) == 0);
    memset(r.ekm.bytes, 0, 16);
    r.ekm.len = 32;
    CHECK(sts_smqtt_response_sign(&r, client_key) == 0);
    CHECK(sts_smqtt_response_open(&r, client_key, text, sizeof text, &len, why) == STS_ERR_INVALID);
    CHECK(strcmp(why, "bad padding in 'encryptedKeyMaterial'") == 0 && len == 0);
    /* A good one, then its MAC flipped bit by bit. */
    CHECK(sts_smqtt_response_seal(&r, client_key, "0123", 4, NULL) == 0);
    CHECK(sts_smqtt_response_open(&r, client_key, text, sizeof text, &len, why) == 0);
    CHECK(len == 4 && memcmp(text, "0123", 4) == 0);
    CHECK(sts_smqtt_response_open(&r, client_key, text, 3, &len, why) == STS_ERR_TOO_BIG);
    for (int bit = 0; bit < 8 * STS_SMQTT_MAC_LEN; bit++) {
        r.auth[bit / 8] ^= (uint8_t)(1 << bit % 8);
        CHECK(sts_smqtt_response_open(&r, client_key, text, sizeof text, &len, why) == STS_ERR_AUTH);
        r.auth[bit / 8] ^= (uint8_t)(1 << bit % 8);
    }
    /* Two seals of one material use two random IVs. */
    struct sts_smqtt_response other = r;
    CHECK(sts_smqtt_response_seal(&other, client_key, "0123", 4, NULL) == 0);
    CHECK(memcmp(other.ekm.bytes, r.ekm.bytes, 16) != 0);
    CHECK(sts_smqtt_response_seal(&r, client_key, text, STS_SMQTT_MATERIAL_MAX + 1, NULL) == STS_ERR_TOO_BIG);
}

/* Frames: every truncation, every length off the block grid, bad padding,
 * every MAC bit, a wrong key. The index is not authenticated (as in the
 * reference): a flipped index still opens. */
static void test_frame_errors(void)
{
    static const char pt[] = "forty bytes of plaintext, for two blocks";
    uint8_t gk[STS_SMQTT_KEY_LEN], frame[128], out[128], iv[16] = { 1, 2, 3 };
    size_t len, n;
    uint16_t index;

    key_of(gk, static_keys[0]);
    CHECK(sts_smqtt_seal(gk, 7, (const uint8_t *)pt, 40, iv, frame, sizeof frame, &len) == 0);
    CHECK(len == 2 + 16 + 48 + 16 && frame[0] == 0 && frame[1] == 7 && memcmp(frame + 2, iv, 16) == 0);
    CHECK(sts_smqtt_open(gk, frame, len, out, sizeof out, &n, &index, why) == 0);
    CHECK(n == 40 && memcmp(out, pt, 40) == 0 && index == 7);
    CHECK(sts_smqtt_seal(gk, 7, (const uint8_t *)pt, 40, iv, out, len - 1, &n) == STS_ERR_TOO_BIG);

    for (size_t cut = 0; cut < len; cut++) {
        int err = sts_smqtt_open(gk, frame, cut, out, sizeof out, &n, &index, why);
        if (cut < STS_SMQTT_FRAME_MIN) {
            CHECK(err == STS_ERR_TRUNCATED && strcmp(why, "truncated frame") == 0);
            CHECK(sts_smqtt_frame_index(frame, cut, &index) == STS_ERR_TRUNCATED);
        } else if ((cut - STS_SMQTT_FRAME_OVERHEAD) % 16 != 0) {
            CHECK(err == STS_ERR_INVALID && strcmp(why, "bad length") == 0);
        } else {
            /* One block short: the MAC is read from the ciphertext. */
            CHECK(err == STS_ERR_INVALID || err == STS_ERR_AUTH);
        }
        CHECK(n == 0);
    }
    for (int bit = 0; bit < 8 * STS_SMQTT_MAC_LEN; bit++) {
        frame[len - 16 + bit / 8] ^= (uint8_t)(1 << bit % 8);
        CHECK(sts_smqtt_open(gk, frame, len, out, sizeof out, &n, &index, why) == STS_ERR_AUTH);
        CHECK(strcmp(why, "bad MAC") == 0 && n == 0);
        frame[len - 16 + bit / 8] ^= (uint8_t)(1 << bit % 8);
    }
    frame[20] ^= 0x40; /* a plaintext byte changes: the MAC catches it */
    CHECK(sts_smqtt_open(gk, frame, len, out, sizeof out, &n, &index, why) == STS_ERR_AUTH);
    frame[20] ^= 0x40;
    frame[0] ^= 0x80;
    CHECK(sts_smqtt_open(gk, frame, len, out, sizeof out, &n, &index, why) == 0 && index == 0x8007);
    frame[0] ^= 0x80;
    CHECK(sts_smqtt_open(gk, frame, len, out, 47, &n, &index, why) == STS_ERR_TOO_BIG);
    gk[3] ^= 1;
    CHECK(sts_smqtt_open(gk, frame, len, out, sizeof out, &n, &index, why) < 0 && n == 0);
    gk[3] ^= 1;

    /* Bad padding: a last block decrypting to 16 zeros, and one ending in 17. */
    for (int last = 0; last < 2; last++) {
        uint8_t block[16] = { 0 }, chain[16];
        if (last)
            block[15] = 17;
        memcpy(chain, iv, 16);
        memcpy(frame + 2, iv, 16);
        CHECK(sts_aes_cbc(1, gk, sizeof gk, chain, block, 16, frame + 18) == 0);
        CHECK(sts_smqtt_open(gk, frame, 50, out, sizeof out, &n, &index, why) == STS_ERR_INVALID);
        CHECK(strcmp(why, "bad padding") == 0 && n == 0);
    }
    /* The empty plaintext is one block of padding. */
    CHECK(sts_smqtt_seal(gk, 0, NULL, 0, NULL, frame, sizeof frame, &len) == 0 && len == 50);
    CHECK(sts_smqtt_open(gk, frame, len, out, sizeof out, &n, &index, why) == 0 && n == 0);
}

/* Key material texts: strict, but hex in either case. */
static void test_material_errors(void)
{
#define K "dc48590d514e66543f98c027fa55a28c"
#define N "fdec096a47f097c1c7aaf0afc3a85afb"
    static const struct {
        const char *text, *why;
    } cases[] = {
        { "", "key material is not a 16-byte hex key" },
        { "dc48590d514e66543f98c027fa55a2", "key material is not a 16-byte hex key" },
        { K "00", "key material is not a 16-byte hex key" },
        { "dc48590d514e66543f98c027fa55a2zz", "bad hex in key material" },
        { K "&", "bad node in key material" },
        { K "&[16,1," N, "bad node in key material" },
        { K "&[16,1," N "]&", "bad node in key material" },
        { K "&[16,1," N "]x", "bad node in key material" },
        { K "&[16,1," N "0]", "bad node in key material" },
        { K "&[16,1,fdec096a47f097c1c7aaf0afc3a85afz]", "bad hex in key material" },
        { K "&[016,1," N "]", "bad node in key material" },
        { K "&[-1,1," N "]", "bad node in key material" },
        { K "&[17,1," N "]", "bad node in key material" },
        { K "&[16,99999999999," N "]", "bad node in key material" },
        { K "&[16,65536," N "]", "node out of range in key material" },
        { K "&[0,1," N "]", "node out of range in key material" },
        { K "&[ 16,1," N "]", "bad node in key material" },
    };
    struct sts_smqtt_node nodes[STS_SMQTT_COVER_MAX];
    uint8_t key[STS_SMQTT_KEY_LEN], want[STS_SMQTT_KEY_LEN];
    char text[STS_SMQTT_MATERIAL_MAX + 2];
    size_t count, len;

    for (size_t i = 0; i < COUNT(cases); i++) {
        why[0] = '\0';
        CHECK(sts_smqtt_material_parse(cases[i].text, strlen(cases[i].text), key, nodes, &count, why) < 0);
        if (strcmp(why, cases[i].why) != 0)
            fprintf(stderr, "material case %zu: got \"%s\"\n", i, why);
        CHECK(strcmp(why, cases[i].why) == 0 && count == 0);
    }
    static const char upper[] = "DC48590D514E66543F98C027FA55A28C&[0,0,FDEC096A47F097C1C7AAF0AFC3A85AFB]";
    CHECK(sts_smqtt_material_parse(upper, strlen(upper), key, nodes, &count, why) == 0 && count == 1);
    key_of(want, K);
    CHECK_MEM(key, want, sizeof key);
    CHECK(nodes[0].depth == 0 && nodes[0].pos == 0);
    /* A full cover fits; one node more does not. */
    len = (size_t)snprintf(text, sizeof text, "%s", K);
    for (int i = 0; i < STS_SMQTT_COVER_MAX; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "&[16,65535,%s]", N);
    CHECK(sts_smqtt_material_parse(text, len, key, nodes, &count, why) == 0 && count == STS_SMQTT_COVER_MAX);
    CHECK(nodes[31].depth == 16 && nodes[31].pos == 65535);
    len += (size_t)snprintf(text + len, sizeof text - len, "&[1,1,%s]", N);
    CHECK(sts_smqtt_material_parse(text, len, key, nodes, &count, why) == STS_ERR_TOO_BIG);
    CHECK(strcmp(why, "too many nodes in key material") == 0);
    memset(text, 'a', sizeof text);
    CHECK(sts_smqtt_material_parse(text, STS_SMQTT_MATERIAL_MAX + 1, key, nodes, &count, why) == STS_ERR_TOO_BIG);
    CHECK(sts_smqtt_material_slotted(text, 40, &len, key, nodes, 1) == STS_ERR_TOO_BIG && len == 0);
#undef K
#undef N
}

/* The tree's edges: the whole range is the root, one leaf is itself, out of
 * range intervals and slots are refused. child is SHA-256 with the last
 * byte's low bit as the branch. */
static void test_tree(void)
{
    struct sts_smqtt_node nodes[STS_SMQTT_COVER_MAX];
    uint8_t root[STS_SMQTT_KEY_LEN], k[STS_SMQTT_KEY_LEN], l[STS_SMQTT_KEY_LEN], digest[STS_SHA256_LEN];
    size_t count;

    key_of(root, slotted_root);
    CHECK(sts_smqtt_child(root, 0, k) == 0);
    CHECK(sts_hash(STS_SHA256, root, sizeof root, digest) == 0);
    CHECK_MEM(k, digest, STS_SMQTT_KEY_LEN);
    memcpy(l, root, sizeof l);
    l[15] ^= 1;
    CHECK(sts_hash(STS_SHA256, l, sizeof l, digest) == 0);
    CHECK(sts_smqtt_child(root, 1, k) == 0);
    CHECK_MEM(k, digest, STS_SMQTT_KEY_LEN);
    CHECK(sts_smqtt_child(root, 2, k) == STS_ERR_INVALID);

    CHECK(sts_smqtt_cover(root, 16, 0, 65535, nodes, &count) == 0 && count == 1);
    CHECK(nodes[0].depth == 0 && nodes[0].pos == 0 && memcmp(nodes[0].key, root, sizeof root) == 0);
    CHECK(sts_smqtt_cover(root, 16, 1, 65534, nodes, &count) == 0 && count == 30);
    CHECK(sts_smqtt_cover(root, 16, 5, 5, nodes, &count) == 0 && count == 1 && nodes[0].depth == 16);
    CHECK(sts_smqtt_leaf(nodes, count, 16, 5, k) == 0 && memcmp(k, nodes[0].key, sizeof k) == 0);
    CHECK(sts_smqtt_leaf(nodes, count, 16, 4, k) == STS_ERR_STATE);
    CHECK(sts_smqtt_leaf(nodes, count, 16, 65536, k) == STS_ERR_INVALID);
    CHECK(sts_smqtt_cover(root, 16, 0, 65536, nodes, &count) == STS_ERR_INVALID && count == 0);
    CHECK(sts_smqtt_cover(root, 16, 6, 5, nodes, &count) == STS_ERR_INVALID);
    CHECK(sts_smqtt_cover(root, 0, 0, 0, nodes, &count) == STS_ERR_INVALID);
    CHECK(sts_smqtt_cover(root, 17, 0, 0, nodes, &count) == STS_ERR_INVALID);
    /* Every leaf of a cover of depth 3 is the one derived from the root. */
    struct sts_smqtt_node top = { .depth = 0, .pos = 0 };
    memcpy(top.key, root, sizeof root);
    CHECK(sts_smqtt_cover(root, 3, 1, 6, nodes, &count) == 0 && count == 4);
    for (uint32_t s = 0; s < 8; s++) {
        int err = sts_smqtt_leaf(nodes, count, 3, s, k);
        CHECK(sts_smqtt_leaf(&top, 1, 3, s, l) == 0);
        CHECK(s >= 1 && s <= 6 ? err == 0 && memcmp(k, l, sizeof k) == 0 : err == STS_ERR_STATE);
    }
}

static void test_grant(void)
{
    int64_t first = -5, last = -5;

    CHECK(sts_smqtt_grant(2999, 3, 1, &first, &last) == 0 && first == 0 && last == 0);
    CHECK(sts_smqtt_grant(0, 10, 30, &first, &last) == 0 && first == 0 && last == 2);
    CHECK(sts_smqtt_grant(9999, 10, 10, &first, &last) == 0 && first == 0 && last == 0);
    first = last = -5;
    CHECK(sts_smqtt_grant(2500, 3, 0, &first, &last) == STS_ERR_INVALID && first == -5);
    CHECK(sts_smqtt_grant(1000, 10, 5, &first, &last) == STS_ERR_INVALID);
    CHECK(sts_smqtt_grant(-1, 10, 5, &first, &last) == STS_ERR_INVALID);
    CHECK(sts_smqtt_grant(0, 0, 5, &first, &last) == STS_ERR_INVALID);
    CHECK(sts_smqtt_grant(0, 10, -1, &first, &last) == STS_ERR_INVALID);
    CHECK(sts_smqtt_grant(INT64_MAX, 10, 1, &first, &last) == STS_ERR_INVALID);
    CHECK(sts_smqtt_grant(0, INT64_MAX, INT64_MAX / 1000, &first, &last) == STS_ERR_INVALID);
}

int main(void)
{
    key_of(client_key, client_key_hex);
    replay_keyed_run(static_run, COUNT(static_run), static_keys);
    replay_keyed_run(update_run, COUNT(update_run), update_keys);
    replay_slotted_run();
    test_lenient_parse();
    test_request_errors();
    test_bounds();
    test_escapes();
    test_leave();
    test_response_errors();
    test_frame_errors();
    test_material_errors();
    test_tree();
    test_grant();
    return unit_done();
}
