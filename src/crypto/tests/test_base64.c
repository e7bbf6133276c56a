/* Base64 and base64url: the RFC 4648 §10 vectors, the two alphabets, and
 * the strictness the decoders promise. */
#include "crypto/base64.h"
#include "util/error.h"
#include "util/unit.h"

/* RFC 4648 §10. */
static const char *const rfc4648[][2] = {
    { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
};

static void test_rfc4648(void)
{
    for (size_t i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        const char *bin = rfc4648[i][0], *text = rfc4648[i][1];
        char enc[16];
        uint8_t dec[16];
        size_t n = 99;

        CHECK(sts_base64_encoded_len(strlen(bin)) == strlen(text));
        CHECK(sts_base64_encode(enc, sizeof enc, &n, (const uint8_t *)bin, strlen(bin)) == 0);
        CHECK(n == strlen(text) && strcmp(enc, text) == 0);
        CHECK(sts_base64url_encode(enc, sizeof enc, &n, (const uint8_t *)bin, strlen(bin)) == 0);
        CHECK(strcmp(enc, text) == 0);
        CHECK(sts_base64_decode(dec, sizeof dec, &n, text, strlen(text)) == 0);
        CHECK(n == strlen(bin) && memcmp(dec, bin, n) == 0);
        CHECK(sts_base64url_decode(dec, sizeof dec, &n, text, strlen(text)) == 0);
        CHECK(n == strlen(bin) && memcmp(dec, bin, n) == 0);
    }
}

/* 0xfb 0xff encodes to the characters for 62 and 63, which differ. */
static void test_alphabets(void)
{
    static const uint8_t bin[] = { 0xfb, 0xff };
    char enc[8];
    uint8_t dec[4];
    size_t n;

    CHECK(sts_base64_encode(enc, sizeof enc, &n, bin, 2) == 0 && strcmp(enc, "+/8=") == 0);
    CHECK(sts_base64url_encode(enc, sizeof enc, &n, bin, 2) == 0 && strcmp(enc, "-_8=") == 0);
    CHECK(sts_base64url_decode(dec, sizeof dec, &n, "-_8=", 4) == 0 && n == 2 && memcmp(dec, bin, 2) == 0);
    CHECK(sts_base64_decode(dec, sizeof dec, &n, "+/8=", 4) == 0 && n == 2 && memcmp(dec, bin, 2) == 0);
    CHECK(sts_base64url_decode(dec, sizeof dec, &n, "+/8=", 4) == STS_ERR_INVALID);
    CHECK(sts_base64_decode(dec, sizeof dec, &n, "-_8=", 4) == STS_ERR_INVALID);
}

static void test_rejects(void)
{
    static const char *const bad[] = {
        "Zg=", "Zg", "Zm9", "Zg==Zg==", "Z===", "====", "Zm=v", "Zm9v\n", "Zm9v Zg==", "Zh==", "Zm9=",
        "Zm 9v", "Zm9v\r\nZg==", "Zm%v", "Zm9v\0Zg=",
    };
    uint8_t dec[16];
    size_t n;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = i + 1 == sizeof bad / sizeof bad[0] ? 8 : strlen(bad[i]);
        CHECK(sts_base64_decode(dec, sizeof dec, &n, bad[i], len) == STS_ERR_INVALID);
        CHECK(sts_base64url_decode(dec, sizeof dec, &n, bad[i], len) == STS_ERR_INVALID);
    }
    CHECK(sts_base64_decode(dec, 5, &n, "Zm9vYmFy", 8) == STS_ERR_TOO_BIG);
    char small[8];
    CHECK(sts_base64_encode(small, sizeof small, &n, (const uint8_t *)"foobar", 6) == STS_ERR_TOO_BIG);
    CHECK(sts_base64_decoded_max(8) == 6);
}

int main(void)
{
    test_rfc4648();
    test_alphabets();
    test_rejects();
    return unit_done();
}
