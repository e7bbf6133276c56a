/* SHA-2 (FIPS 180-4 "abc"), HMAC (RFC 4231) and HKDF (RFC 5869) vectors. */
#include "crypto/hash.h"
#include "crypto/tests/hexvec.h"
#include "util/error.h"
#include "util/unit.h"

struct hmac_vector { enum sts_hash_alg alg; const char *key, *msg, *mac; };
struct hkdf_vector { const char *ikm, *salt, *info, *okm; };

/* RFC 4231 §4.2-4.8 (test case 5, truncated output, left out) and RFC 5869
 * A.1-A.3, as published in python3-cryptography-vectors. */
static const struct hmac_vector hmac_vectors[] = {
    { STS_SHA256,
        "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        "4869205468657265",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
    { STS_SHA256,
        "4a656665",
        "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
    { STS_SHA256,
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
        "dddddddddddddddddddddddddddd",
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
    { STS_SHA256,
        "0102030405060708090a0b0c0d0e0f10111213141516171819",
        "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
        "cdcdcdcdcdcdcdcdcdcdcdcdcdcd",
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
    { STS_SHA256,
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b65"
        "79202d2048617368204b6579204669727374",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
    { STS_SHA256,
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "5468697320697320612074657374207573696e672061206c6172676572207468616e2062"
        "6c6f636b2d73697a65206b657920616e642061206c6172676572207468616e20626c6f63"
        "6b2d73697a6520646174612e20546865206b6579206e6565647320746f20626520686173"
        "686564206265666f7265206265696e6720757365642062792074686520484d414320616c"
        "676f726974686d2e",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
    { STS_SHA512,
        "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        "4869205468657265",
        "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7"
        "d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854" },
    { STS_SHA512,
        "4a656665",
        "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75"
        "c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737" },
    { STS_SHA512,
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
        "dddddddddddddddddddddddddddd",
        "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e8482"
        "79a722c806b485a47e67c807b946a337bee8942674278859e13292fb" },
    { STS_SHA512,
        "0102030405060708090a0b0c0d0e0f10111213141516171819",
        "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
        "cdcdcdcdcdcdcdcdcdcdcdcdcdcd",
        "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c1"
        "1aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd" },
    { STS_SHA512,
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b65"
        "79202d2048617368204b6579204669727374",
        "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037"
        "e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598" },
    { STS_SHA512,
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "5468697320697320612074657374207573696e672061206c6172676572207468616e2062"
        "6c6f636b2d73697a65206b657920616e642061206c6172676572207468616e20626c6f63"
        "6b2d73697a6520646174612e20546865206b6579206e6565647320746f20626520686173"
        "686564206265666f7265206265696e6720757365642062792074686520484d414320616c"
        "676f726974686d2e",
        "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944b6022cac"
        "3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58" },
};

static const struct hkdf_vector hkdf_vectors[] = {
    { "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        "000102030405060708090a0b0c",
        "f0f1f2f3f4f5f6f7f8f9",
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208"
        "d5b887185865" },
    { "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223"
        "2425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f4041424344454647"
        "48494a4b4c4d4e4f",
        "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f80818283"
        "8485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7"
        "a8a9aaabacadaeaf",
        "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3"
        "d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7"
        "f8f9fafbfcfdfeff",
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99"
        "cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87"
        "c14c01d5c1f3434f1d87" },
    { "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        "",
        "",
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395"
        "faa4b61a96c8" },
};

static void test_sha2(void)
{
    static const char abc256[] =
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    static const char abc512[] =
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";
    uint8_t want[64], got[64];

    CHECK(sts_hash_len(STS_SHA256) == 32);
    CHECK(sts_hash_len(STS_SHA512) == 64);
    CHECK(sts_hash(STS_SHA256, (const uint8_t *)"abc", 3, got) == 0);
    CHECK_MEM(got, want, unhex(want, sizeof want, abc256));
    CHECK(sts_hash(STS_SHA512, (const uint8_t *)"abc", 3, got) == 0);
    CHECK_MEM(got, want, unhex(want, sizeof want, abc512));
    /* The two-part form hashes the concatenation. */
    CHECK(sts_hash2(STS_SHA512, (const uint8_t *)"a", 1, (const uint8_t *)"bc", 2, got) == 0);
    CHECK_MEM(got, want, 64);
    CHECK(sts_hash(99, (const uint8_t *)"abc", 3, got) == STS_ERR_UNSUPPORTED);
}

static void test_hmac(void)
{
    for (size_t i = 0; i < sizeof hmac_vectors / sizeof *hmac_vectors; i++) {
        const struct hmac_vector *v = &hmac_vectors[i];
        uint8_t key[256], msg[256], want[64], got[64];
        size_t keylen = unhex(key, sizeof key, v->key);
        size_t msglen = unhex(msg, sizeof msg, v->msg);
        size_t maclen = unhex(want, sizeof want, v->mac);

        CHECK(maclen == sts_hash_len(v->alg));
        CHECK(sts_hmac(v->alg, key, keylen, msg, msglen, got) == 0);
        CHECK_MEM(got, want, maclen);
    }
}

static void test_hkdf(void)
{
    for (size_t i = 0; i < sizeof hkdf_vectors / sizeof *hkdf_vectors; i++) {
        const struct hkdf_vector *v = &hkdf_vectors[i];
        uint8_t ikm[128], salt[128], info[128], want[128], got[128];
        size_t ikmlen = unhex(ikm, sizeof ikm, v->ikm);
        size_t saltlen = unhex(salt, sizeof salt, v->salt);
        size_t infolen = unhex(info, sizeof info, v->info);
        size_t okmlen = unhex(want, sizeof want, v->okm);

        CHECK(sts_hkdf(STS_SHA256, saltlen ? salt : NULL, saltlen, ikm, ikmlen,
                       infolen ? info : NULL, infolen, got, okmlen) == 0);
        CHECK_MEM(got, want, okmlen);
    }
    {
        uint8_t big[32 * 255 + 1] = { 0 };
        CHECK(sts_hkdf(STS_SHA256, NULL, 0, big, 1, NULL, 0, big, sizeof big) == STS_ERR_TOO_BIG);
    }
}

int main(void)
{
    test_sha2();
    test_hmac();
    test_hkdf();
    return unit_done();
}
