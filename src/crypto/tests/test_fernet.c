/* Fernet: the spec's published vectors (generate, verify, invalid), read
 * from Debian's python3-cryptography-vectors, then round trips, tampering and
 * the time window's edges. */
#include "crypto/base64.h"
#include "crypto/fernet.h"
#include "util/error.h"
#include "util/unit.h"

#include <stdlib.h>
#include <time.h>

#define VECTORS "/usr/lib/python3/dist-packages/cryptography_vectors/fernet/"

/* One vector object; absent fields stay empty or zero. */
struct vector {
    char desc[96], token[256], src[64], secret[64], now[32];
    long long ttl;
    uint8_t iv[16];
};

static void die(const char *why, const char *where)
{
    fprintf(stderr, "unexpected vector file content (%s): %.40s\n", why, where);
    exit(2);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    if (!feof(f)) die("file too big", path);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The text after `"name":`, inside obj only, or NULL. */
static const char *value_of(const char *obj, const char *end, const char *name)
{
    char key[40];
    snprintf(key, sizeof key, "\"%s\"", name);
    const char *p = strstr(obj, key);
    if (!p || p >= end) return NULL;
    p += strlen(key);
    while (*p == ' ') p++;
    if (*p++ != ':') die("no colon", p);
    while (*p == ' ') p++;
    return p;
}

/* The files hold only plain strings: no escapes, so a backslash is refused. */
static void string_field(char *out, size_t max, const char *obj, const char *end, const char *name)
{
    const char *p = value_of(obj, end, name);
    out[0] = '\0';
    if (!p) return;
    if (*p++ != '"') die("not a string", p);
    size_t n = strcspn(p, "\"\\");
    if (p[n] != '"' || n >= max) die("string", p);
    memcpy(out, p, n);
    out[n] = '\0';
}

static void iv_field(uint8_t iv[16], const char *obj, const char *end)
{
    const char *p = value_of(obj, end, "iv");
    if (!p) return;
    if (*p++ != '[') die("iv", p);
    for (int i = 0; i < 16; i++) {
        char *next;
        long v = strtol(p, &next, 10);
        if (next == p || v < 0 || v > 255 || *next != (i == 15 ? ']' : ',')) die("iv", p);
        iv[i] = (uint8_t)v;
        p = next + 1;
    }
}

/* Parses the next object from *cursor; returns 0 when there is none left. */
static int next_vector(const char **cursor, struct vector *v)
{
    const char *obj = strchr(*cursor, '{');
    if (!obj) return 0;
    const char *end = strchr(obj, '}');
    if (!end) die("unclosed object", obj);
    memset(v, 0, sizeof *v);
    string_field(v->desc, sizeof v->desc, obj, end, "desc");
    string_field(v->token, sizeof v->token, obj, end, "token");
    string_field(v->src, sizeof v->src, obj, end, "src");
    string_field(v->secret, sizeof v->secret, obj, end, "secret");
    string_field(v->now, sizeof v->now, obj, end, "now");
    const char *ttl = value_of(obj, end, "ttl_sec");
    v->ttl = ttl ? strtoll(ttl, NULL, 10) : 0;
    iv_field(v->iv, obj, end);
    *cursor = end + 1;
    return 1;
}

/* "1985-10-26T01:20:00-07:00" as seconds since the epoch, through libc. */
static uint64_t epoch_of(const char *iso)
{
    struct tm tm = { 0 };
    int oh, om;
    char sign;
    if (sscanf(iso, "%d-%d-%dT%d:%d:%d%c%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &sign, &oh, &om) != 9)
        die("date", iso);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    long offset = (oh * 3600L + om * 60L) * (sign == '-' ? -1 : 1);
    return (uint64_t)(timegm(&tm) - offset);
}

static void key_of(uint8_t key[32], const struct vector *v)
{
    size_t n = 0;
    if (sts_base64url_decode(key, 32, &n, v->secret, strlen(v->secret)) != 0 || n != 32)
        die("secret", v->secret);
}

static int run_generate(const char *text)
{
    struct vector v;
    int count = 0;
    for (const char *c = text; next_vector(&c, &v); count++) {
        uint8_t key[32];
        char *token = NULL;
        size_t toklen = 0;
        key_of(key, &v);
        CHECK(sts_fernet_encrypt(key, (const uint8_t *)v.src, strlen(v.src), epoch_of(v.now),
                                 v.iv, &token, &toklen) == 0);
        CHECK(token && toklen == strlen(v.token) && strcmp(token, v.token) == 0);
        CHECK(toklen == sts_fernet_token_len(strlen(v.src)));
        free(token);
    }
    return count;
}

static int decrypt_vector(const struct vector *v, uint8_t **pt, size_t *len)
{
    uint8_t key[32];
    key_of(key, v);
    return sts_fernet_decrypt(key, v->token, strlen(v->token), v->ttl, epoch_of(v->now), pt, len);
}

static int run_verify(const char *text)
{
    struct vector v;
    int count = 0;
    for (const char *c = text; next_vector(&c, &v); count++) {
        uint8_t *pt = NULL;
        size_t len = 0;
        CHECK(decrypt_vector(&v, &pt, &len) == 0);
        CHECK(pt && len == strlen(v.src) && memcmp(pt, v.src, len) == 0);
        free(pt);
    }
    return count;
}

/* The error each invalid vector must give, by its description; every one
 * must fail in any case. */
static int expected_error(const char *desc)
{
    static const struct { const char *desc; int err; } table[] = {
        { "incorrect mac", STS_ERR_AUTH },
        { "too short", STS_ERR_TRUNCATED },
        { "invalid base64", STS_ERR_INVALID },
        { "payload size not multiple of block size", STS_ERR_INVALID },
        { "payload padding error", STS_ERR_INVALID },
        { "far-future TS (unacceptable clock skew)", STS_ERR_INVALID },
        { "expired TTL", STS_ERR_EXPIRED },
        { "incorrect IV (causes padding error)", STS_ERR_INVALID },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(desc, table[i].desc) == 0) return table[i].err;
    return 0;
}

static int run_invalid(const char *text)
{
    struct vector v;
    int count = 0;
    for (const char *c = text; next_vector(&c, &v); count++) {
        uint8_t *pt = NULL;
        size_t len = 0;
        int rc = decrypt_vector(&v, &pt, &len), want = expected_error(v.desc);
        CHECK(rc < 0 && pt == NULL);
        if (want && rc != want) fprintf(stderr, "invalid vector \"%s\": got %d, want %d\n", v.desc, rc, want);
        CHECK(want == 0 || rc == want);
    }
    return count;
}

static void test_spec_vectors(void)
{
    static const struct { const char *file; int (*run)(const char *); } files[] = {
        { "generate.json", run_generate }, { "verify.json", run_verify }, { "invalid.json", run_invalid },
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, VECTORS "%s", files[i].file);
        const char *text = slurp(path);
        if (!text) {
            printf("SKIP fernet spec vectors: %s not found (install python3-cryptography-vectors)\n", path);
            continue;
        }
        int n = files[i].run(text);
        printf("fernet %s: %d vectors\n", files[i].file, n);
        CHECK(n > 0);
    }
}

static const uint8_t test_key[32] = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};
#define T0 1700000000u

static char *seal(const char *msg, uint64_t now)
{
    char *token = NULL;
    CHECK(sts_fernet_encrypt(test_key, (const uint8_t *)msg, strlen(msg), now, NULL, &token, NULL) == 0);
    return token;
}

static int open_rc(const char *token, size_t len, int64_t ttl, uint64_t now)
{
    uint8_t *pt = NULL;
    size_t n;
    int rc = sts_fernet_decrypt(test_key, token, len, ttl, now, &pt, &n);
    CHECK((rc == 0) == (pt != NULL));
    free(pt);
    return rc;
}

static void test_round_trips(void)
{
    static const size_t lengths[] = { 0, 1, 15, 16, 17, 64, 1000 };
    uint8_t msg[1000];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 7);

    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        char *token = NULL;
        uint8_t *pt = NULL;
        size_t toklen = 0, n = 99;
        CHECK(sts_fernet_encrypt(test_key, lengths[i] ? msg : NULL, lengths[i], T0, NULL, &token, &toklen) == 0);
        CHECK(token && toklen == strlen(token) && toklen == sts_fernet_token_len(lengths[i]));
        CHECK(sts_fernet_decrypt(test_key, token, toklen, 0, T0, &pt, &n) == 0);
        CHECK(pt && n == lengths[i] && memcmp(pt, msg, n) == 0);
        free(pt);
        free(token);
    }
}

/* Two tokens of one message differ: the IV is fresh each time. */
static void test_fresh_iv(void)
{
    char *a = seal("same", T0), *b = seal("same", T0);
    CHECK(strcmp(a, b) != 0);
    free(a);
    free(b);
}

static void test_tampering(void)
{
    char *token = seal("attack at dawn", T0);
    size_t len = strlen(token);
    uint8_t other[32];
    memcpy(other, test_key, 32);
    other[0] ^= 1;

    CHECK(open_rc(token, len, 0, T0) == 0);
    /* Every changed character fails; the '=' padding at the end is checked by
     * the decoder instead of the MAC. */
    int bad = 0;
    for (size_t i = 0; i < len; i++) {
        char saved = token[i];
        token[i] = token[i] == 'A' ? 'B' : 'A';
        bad += open_rc(token, len, 0, T0) < 0;
        token[i] = saved;
    }
    CHECK(bad == (int)len);
    CHECK(open_rc(token, len - 4, 0, T0) < 0);

    uint8_t *pt = NULL;
    size_t n;
    CHECK(sts_fernet_decrypt(other, token, len, 0, T0, &pt, &n) == STS_ERR_AUTH && pt == NULL);
    free(token);
}

/* A token whose version byte is not 0x80 is refused as such, before the MAC. */
static void test_version(void)
{
    char *token = seal("v", T0);
    uint8_t raw[128];
    size_t n;
    CHECK(sts_base64url_decode(raw, sizeof raw, &n, token, strlen(token)) == 0);
    raw[0] = 0x81;
    char text[256];
    CHECK(sts_base64url_encode(text, sizeof text, &n, raw, n) == 0);
    CHECK(open_rc(text, n, 0, T0) == STS_ERR_UNSUPPORTED);
    free(token);
}

static void test_time_window(void)
{
    char *token = seal("tick", T0);
    size_t len = strlen(token);

    CHECK(open_rc(token, len, 60, T0 + 60) == 0);                   /* stamped + ttl == now */
    CHECK(open_rc(token, len, 60, T0 + 61) == STS_ERR_EXPIRED);
    CHECK(open_rc(token, len, 60, T0 - 60) == 0);                   /* skew at the limit */
    CHECK(open_rc(token, len, 60, T0 - 61) == STS_ERR_INVALID);
    CHECK(open_rc(token, len, 0, T0 + 1000000) == 0);               /* no ttl: no checks */
    CHECK(open_rc(token, len, -1, 0) == 0);
    CHECK(open_rc(token, len, INT64_MAX, T0 + 1000000) == 0);      /* no overflow ... */
    CHECK(open_rc(token, len, INT64_MAX, UINT64_MAX) == STS_ERR_EXPIRED);
    CHECK(open_rc(token, len, 60, 0) == STS_ERR_INVALID);
    free(token);
}

int main(void)
{
    test_spec_vectors();
    test_round_trips();
    test_fresh_iv();
    test_tampering();
    test_version();
    test_time_window();
    return unit_done();
}
