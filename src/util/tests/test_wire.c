#include "util/error.h"
#include "util/unit.h"
#include "util/wire.h"

static void test_put_bytes(void)
{
    static const uint8_t want[] = {
        0xa5,                                           /* u8 */
        0x12, 0x34,                                     /* u16 */
        0xde, 0xad, 0xbe, 0xef,                         /* u32 */
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, /* u64 */
        0x03, 'a', 'b', 'c',                            /* str8 */
        0x00,                                           /* empty str8 */
        0x02, 'h', 'i',                                 /* str8 cut at cap */
        0x7f, 0x00,                                     /* raw */
    };
    static const uint8_t raw[] = { 0x7f, 0x00 };
    const char hi[2] = { 'h', 'i' }; /* no terminator within cap */
    uint8_t out[sizeof want + 4];
    struct sts_wire_writer w;

    memset(out, 0xee, sizeof out);
    sts_wire_writer_init(&w, out, sizeof out);
    sts_wire_put_u8(&w, 0xa5);
    sts_wire_put_u16(&w, 0x1234);
    sts_wire_put_u32(&w, 0xdeadbeef);
    sts_wire_put_u64(&w, 0x0123456789abcdefu);
    sts_wire_put_str8(&w, "abc", 4);
    sts_wire_put_str8(&w, "", 1);
    sts_wire_put_str8(&w, hi, sizeof hi);
    sts_wire_put(&w, raw, sizeof raw);
    CHECK(!w.overflow);
    CHECK(w.len == sizeof want);
    CHECK_MEM(out, want, sizeof want);
    CHECK(out[sizeof want] == 0xee); /* nothing past len */
}

/* Once a put does not fit, nothing more is stored, even what would fit,
 * and len goes on counting. */
static void test_overflow_sticky(void)
{
    uint8_t out[4];
    struct sts_wire_writer w;

    memset(out, 0xee, sizeof out);
    sts_wire_writer_init(&w, out, sizeof out);
    sts_wire_put_u16(&w, 0x0102);
    sts_wire_put_u32(&w, 0x03040506); /* 2 bytes left: does not fit */
    CHECK(w.overflow);
    sts_wire_put_u8(&w, 0x07); /* would fit */
    CHECK(w.overflow);
    CHECK(w.len == 7);
    CHECK(out[0] == 0x01 && out[1] == 0x02 && out[2] == 0xee && out[3] == 0xee);

    /* exactly full is no overflow */
    sts_wire_writer_init(&w, out, sizeof out);
    sts_wire_put_u32(&w, 0x0a0b0c0d);
    CHECK(!w.overflow && w.len == 4 && out[0] == 0x0a && out[3] == 0x0d);
    sts_wire_put(&w, out, 0);
    CHECK(!w.overflow && w.len == 4);
}

/* A writer over no buffer measures. */
static void test_measure(void)
{
    struct sts_wire_writer w;

    sts_wire_writer_init(&w, NULL, 0);
    sts_wire_put(&w, NULL, 0);
    CHECK(!w.overflow && w.len == 0);
    sts_wire_put_u64(&w, 1);
    sts_wire_put_str8(&w, "name", 5);
    CHECK(w.len == 8 + 1 + 4);
}

static void test_put_str8_limit(void)
{
    char s[257];
    uint8_t out[300];
    struct sts_wire_writer w;

    memset(s, 'x', 255);
    s[255] = '\0';
    sts_wire_writer_init(&w, out, sizeof out);
    sts_wire_put_str8(&w, s, sizeof s);
    CHECK(!w.overflow && w.len == 256 && out[0] == 255 && out[255] == 'x');

    s[255] = 'x';
    s[256] = '\0';
    sts_wire_writer_init(&w, out, sizeof out);
    sts_wire_put_str8(&w, s, sizeof s); /* 256 bytes: no length byte holds it */
    CHECK(w.overflow);
}

static void test_get(void)
{
    static const uint8_t in[] = {
        0xa5, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef,
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
        0x03, 'a', 'b', 'c', 0x00, 0x7f, 0x00,
    };
    struct sts_wire_reader r;
    uint8_t raw[2];
    char s[4] = "zzz", e[1] = "";

    sts_wire_reader_init(&r, in, sizeof in);
    CHECK(sts_wire_get_u8(&r) == 0xa5);
    CHECK(sts_wire_get_u16(&r) == 0x1234);
    CHECK(sts_wire_get_u32(&r) == 0xdeadbeef);
    CHECK(sts_wire_get_u64(&r) == 0x0123456789abcdefu);
    CHECK(sts_wire_get_str8(&r, s, sizeof s) == 0 && strcmp(s, "abc") == 0);
    CHECK(sts_wire_get_str8(&r, e, sizeof e) == 0 && e[0] == '\0');
    sts_wire_get(&r, raw, sizeof raw);
    CHECK(raw[0] == 0x7f && raw[1] == 0x00);
    CHECK(r.err == 0 && r.left == 0);
}

/* A read past the end fails as STS_ERR_TRUNCATED, consumes nothing, and
 * every read after it gives zeros, even one that would fit. */
static void test_short_sticky(void)
{
    static const uint8_t in[] = { 0x11, 0x22, 0x33 };
    struct sts_wire_reader r;
    uint8_t raw[2] = { 0xee, 0xee };
    char s[8] = "zzz";

    sts_wire_reader_init(&r, in, sizeof in);
    CHECK(sts_wire_get_u32(&r) == 0);
    CHECK(r.err == STS_ERR_TRUNCATED && r.left == 3);
    CHECK(sts_wire_get_u8(&r) == 0);
    CHECK(sts_wire_get_u16(&r) == 0);
    CHECK(sts_wire_get_u64(&r) == 0);
    sts_wire_get(&r, raw, sizeof raw);
    CHECK(raw[0] == 0xee && raw[1] == 0xee);
    CHECK(sts_wire_get_str8(&r, s, sizeof s) == 0 && s[0] == '\0');
    sts_wire_fail(&r, STS_ERR_INVALID); /* the first failure stays */
    CHECK(r.err == STS_ERR_TRUNCATED);

    /* a str8 whose bytes run out */
    static const uint8_t cut[] = { 0x04, 'a', 'b' };
    sts_wire_reader_init(&r, cut, sizeof cut);
    CHECK(sts_wire_get_str8(&r, s, sizeof s) == 0 && s[0] == '\0');
    CHECK(r.err == STS_ERR_TRUNCATED);

    sts_wire_reader_init(&r, NULL, 0);
    CHECK(sts_wire_get_u8(&r) == 0 && r.err == STS_ERR_TRUNCATED);
}

static void test_get_str8_limits(void)
{
    static const uint8_t fits[] = { 0x03, 'a', 'b', 'c' };
    static const uint8_t nul[] = { 0x03, 'a', 0x00, 'c', 0x42 };
    static const uint8_t longer[] = { 0x05, 'a' }; /* too long, and cut short too */
    struct sts_wire_reader r;
    char s[4];

    /* cap 4 holds 3 bytes and the terminator; cap 3 does not */
    sts_wire_reader_init(&r, fits, sizeof fits);
    CHECK(sts_wire_get_str8(&r, s, 4) == 0 && strcmp(s, "abc") == 0 && r.left == 0);
    sts_wire_reader_init(&r, fits, sizeof fits);
    CHECK(sts_wire_get_str8(&r, s, 3) == STS_ERR_INVALID && s[0] == '\0');
    CHECK(r.err == STS_ERR_INVALID);
    CHECK(sts_wire_get_u8(&r) == 0); /* nothing read after a failure */

    sts_wire_reader_init(&r, nul, sizeof nul);
    CHECK(sts_wire_get_str8(&r, s, sizeof s) == STS_ERR_INVALID && s[0] == '\0');
    CHECK(r.err == STS_ERR_INVALID && sts_wire_get_u8(&r) == 0);

    /* the length is judged before the bytes are looked for */
    sts_wire_reader_init(&r, longer, sizeof longer);
    CHECK(sts_wire_get_str8(&r, s, sizeof s) == STS_ERR_INVALID);
    CHECK(r.err == STS_ERR_INVALID);
}

static void test_fail(void)
{
    static const uint8_t in[] = { 0x01, 0x02 };
    struct sts_wire_reader r;

    sts_wire_reader_init(&r, in, sizeof in);
    sts_wire_fail(&r, STS_ERR_UNSUPPORTED);
    CHECK(sts_wire_get_u8(&r) == 0 && r.left == 2);
    sts_wire_fail(&r, STS_ERR_INVALID);
    CHECK(r.err == STS_ERR_UNSUPPORTED);
}

int main(void)
{
    test_put_bytes();
    test_overflow_sticky();
    test_measure();
    test_put_str8_limit();
    test_get();
    test_short_sticky();
    test_get_str8_limits();
    test_fail();
    return unit_done();
}
