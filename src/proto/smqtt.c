#include "proto/smqtt.h"
#include "crypto/aes.h"
#include "crypto/base64.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "proto/slot_tree.h"
#include "util/error.h"
#include "util/hex.h"
#include "util/wire.h"

#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define DEC_MAX 20        /* digits of INT64_MAX */
#define NESTING_MAX 32    /* of unknown fields' values */
#define HEX_MAC_LEN (2 * STS_SMQTT_MAC_LEN)
#define KEY_HEX_LEN (2 * STS_SMQTT_KEY_LEN)
#define B64_EKM_MAX (4 * ((STS_SMQTT_EKM_MAX + 2) / 3))
#define NAME_MAX_LEN 32   /* longer field names are none of ours */

/* Records why a call failed (why may be NULL) and returns err. */
static int fail(char *why, int err, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL) {
        va_start(ap, fmt);
        vsnprintf(why, STS_SMQTT_WHY_LEN, fmt, ap);
        va_end(ap);
    }
    return err;
}

int sts_smqtt_id_set(struct sts_smqtt_id *id, const char *text, size_t len)
{
    if (len < 1 || len > STS_SMQTT_ID_MAX)
        return STS_ERR_INVALID;
    memcpy(id->text, text, len);
    id->text[len] = '\0';
    id->len = len;
    return 0;
}

/* ---- The three messages, as tables of fields ----
 * Each table lists the fields in the reference's declaration order, which is
 * both the JSON order and the MAC order. A field is found in its message
 * struct at `offset`. */

enum kind {
    K_NONCE_LEN, /* written as 10, ignored when read, not in the MAC */
    K_ID,        /* struct sts_smqtt_id */
    K_INT,       /* int64_t, required, >= 0 */
    K_OPT_INT,   /* int64_t, -1 when absent */
    K_EKM,       /* struct sts_smqtt_ekm, base64 */
    K_MAC,       /* uint8_t[16], hex; the MAC itself */
};

struct field {
    const char *name;
    enum kind kind;
    size_t offset;
};

struct message {
    const char *mac_prefix; /* domain separation, "" for the reference's */
    const struct field *fields;
    size_t count;
};

#define FIELD(type, name, kind) { #name, kind, offsetof(type, name) }

static const struct field request_fields[] = {
    { "NONCE_LEN", K_NONCE_LEN, 0 },
    FIELD(struct sts_smqtt_request, member, K_ID),
    FIELD(struct sts_smqtt_request, group, K_ID),
    FIELD(struct sts_smqtt_request, expires, K_OPT_INT),
    FIELD(struct sts_smqtt_request, seq, K_INT),
    FIELD(struct sts_smqtt_request, auth, K_MAC),
};

static const struct field response_fields[] = {
    FIELD(struct sts_smqtt_response, member, K_ID),
    FIELD(struct sts_smqtt_response, group, K_ID),
    FIELD(struct sts_smqtt_response, expires, K_OPT_INT),
    FIELD(struct sts_smqtt_response, slot, K_OPT_INT),
    FIELD(struct sts_smqtt_response, depth, K_OPT_INT),
    FIELD(struct sts_smqtt_response, time, K_OPT_INT),
    FIELD(struct sts_smqtt_response, seq, K_INT),
    { "encryptedKeyMaterial", K_EKM, offsetof(struct sts_smqtt_response, ekm) },
    FIELD(struct sts_smqtt_response, auth, K_MAC),
};

static const struct field leave_fields[] = {
    FIELD(struct sts_smqtt_leave, member, K_ID),
    FIELD(struct sts_smqtt_leave, group, K_ID),
    FIELD(struct sts_smqtt_leave, seq, K_INT),
    FIELD(struct sts_smqtt_leave, auth, K_MAC),
};

#define MESSAGE(prefix, fields) { prefix, fields, sizeof fields / sizeof fields[0] }
static const struct message request_msg = MESSAGE("", request_fields);
static const struct message response_msg = MESSAGE("", response_fields);
static const struct message leave_msg = MESSAGE("leave", leave_fields);

#define AT(msg, f, type) ((type *)((char *)(msg) + (f)->offset))
#define AT_CONST(msg, f, type) ((const type *)((const char *)(msg) + (f)->offset))

/* ---- MACs ---- */

static void put_dec(struct sts_wire_writer *w, int64_t v)
{
    char dec[DEC_MAX + 2];
    int n = snprintf(dec, sizeof dec, "%" PRId64, v);
    sts_wire_put(w, dec, (size_t)n);
}

/* The MAC input: the prefix, then every field but the MAC in table order,
 * ids as their bytes, integers in decimal (an absent one not at all), the
 * key material decoded. */
#define MAC_INPUT_MAX (8 + 2 * STS_SMQTT_ID_MAX + 5 * DEC_MAX + STS_SMQTT_EKM_MAX)

static int compute_mac(const struct message *m, const void *msg, const uint8_t key[STS_SMQTT_KEY_LEN],
                       uint8_t mac[STS_SMQTT_MAC_LEN])
{
    uint8_t input[MAC_INPUT_MAX], digest[STS_SHA256_LEN];
    struct sts_wire_writer w;
    int err;

    sts_wire_writer_init(&w, input, sizeof input);
    sts_wire_put(&w, m->mac_prefix, strlen(m->mac_prefix));
    for (size_t i = 0; i < m->count; i++) {
        const struct field *f = &m->fields[i];
        const struct sts_smqtt_id *id = AT_CONST(msg, f, struct sts_smqtt_id);
        const struct sts_smqtt_ekm *ekm = AT_CONST(msg, f, struct sts_smqtt_ekm);
        int64_t v = f->kind == K_INT || f->kind == K_OPT_INT ? *AT_CONST(msg, f, int64_t) : -1;

        if (f->kind == K_ID)
            sts_wire_put(&w, id->text, id->len);
        else if (v >= 0)
            put_dec(&w, v);
        else if (f->kind == K_EKM)
            sts_wire_put(&w, ekm->bytes, ekm->len);
    }
    if (w.overflow)
        return STS_ERR_TOO_BIG;
    err = sts_hmac(STS_SHA256, key, STS_SMQTT_KEY_LEN, input, w.len, digest);
    if (err == 0)
        memcpy(mac, digest, STS_SMQTT_MAC_LEN);
    mbedtls_platform_zeroize(digest, sizeof digest);
    return err;
}

static int verify_mac(const struct message *m, const void *msg, const uint8_t key[STS_SMQTT_KEY_LEN],
                      const uint8_t auth[STS_SMQTT_MAC_LEN])
{
    uint8_t mac[STS_SMQTT_MAC_LEN];
    int err = compute_mac(m, msg, key, mac);

    if (err == 0 && mbedtls_ct_memcmp(mac, auth, STS_SMQTT_MAC_LEN) != 0)
        err = STS_ERR_AUTH;
    mbedtls_platform_zeroize(mac, sizeof mac);
    return err;
}

int sts_smqtt_request_sign(struct sts_smqtt_request *r, const uint8_t key[STS_SMQTT_KEY_LEN])
{
    return compute_mac(&request_msg, r, key, r->auth);
}

int sts_smqtt_request_verify(const struct sts_smqtt_request *r, const uint8_t key[STS_SMQTT_KEY_LEN])
{
    return verify_mac(&request_msg, r, key, r->auth);
}

int sts_smqtt_leave_sign(struct sts_smqtt_leave *l, const uint8_t key[STS_SMQTT_KEY_LEN])
{
    return compute_mac(&leave_msg, l, key, l->auth);
}

int sts_smqtt_leave_verify(const struct sts_smqtt_leave *l, const uint8_t key[STS_SMQTT_KEY_LEN])
{
    return verify_mac(&leave_msg, l, key, l->auth);
}

int sts_smqtt_response_sign(struct sts_smqtt_response *r, const uint8_t key[STS_SMQTT_KEY_LEN])
{
    return compute_mac(&response_msg, r, key, r->auth);
}

int sts_smqtt_response_verify(const struct sts_smqtt_response *r, const uint8_t key[STS_SMQTT_KEY_LEN])
{
    return verify_mac(&response_msg, r, key, r->auth);
}

/* ---- JSON out ---- */

static void put_text(struct sts_wire_writer *w, const char *s)
{
    sts_wire_put(w, s, strlen(s));
}

/* A JSON string: '"', '\' and control characters escaped, other bytes as
 * they are. */
static void put_string(struct sts_wire_writer *w, const char *s, size_t len)
{
    static const char digits[] = "0123456789abcdef";

    sts_wire_put_u8(w, '"');
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)s[i];
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b"
                        : c == '\f' ? "\\f" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                        : c == '\t' ? "\\t" : NULL;
        if (esc != NULL) {
            put_text(w, esc);
        } else if (c < 0x20) {
            char u[7] = { '\\', 'u', '0', '0', digits[c >> 4], digits[c & 15], '\0' };
            put_text(w, u);
        } else {
            sts_wire_put_u8(w, c);
        }
    }
    sts_wire_put_u8(w, '"');
}

static int valid_id(const struct sts_smqtt_id *id)
{
    return id->len >= 1 && id->len <= STS_SMQTT_ID_MAX;
}

/* One field's value (present: encode skips the absent ones). */
static void put_value(struct sts_wire_writer *w, const struct field *f, const void *msg)
{
    char hex[HEX_MAC_LEN + 1];
    char b64[B64_EKM_MAX + 1];
    size_t n;

    switch (f->kind) {
    case K_NONCE_LEN:
        put_text(w, "10");
        break;
    case K_ID:
        put_string(w, AT_CONST(msg, f, struct sts_smqtt_id)->text, AT_CONST(msg, f, struct sts_smqtt_id)->len);
        break;
    case K_INT:
    case K_OPT_INT:
        put_dec(w, *AT_CONST(msg, f, int64_t));
        break;
    case K_EKM:
        if (sts_base64_encode(b64, sizeof b64, &n, AT_CONST(msg, f, struct sts_smqtt_ekm)->bytes,
                              AT_CONST(msg, f, struct sts_smqtt_ekm)->len) != 0)
            w->overflow = 1;
        else
            put_string(w, b64, n);
        break;
    case K_MAC:
        sts_hex_encode(hex, AT_CONST(msg, f, uint8_t), STS_SMQTT_MAC_LEN);
        put_string(w, hex, HEX_MAC_LEN);
        break;
    }
}

/* Fields out of range for the reference: an id not of 1..255 bytes, a
 * negative seq, key material over its bound. */
static int encodable(const struct message *m, const void *msg)
{
    for (size_t i = 0; i < m->count; i++) {
        const struct field *f = &m->fields[i];
        if (f->kind == K_ID && !valid_id(AT_CONST(msg, f, struct sts_smqtt_id)))
            return 0;
        if (f->kind == K_INT && *AT_CONST(msg, f, int64_t) < 0)
            return 0;
        if (f->kind == K_EKM && AT_CONST(msg, f, struct sts_smqtt_ekm)->len > STS_SMQTT_EKM_MAX)
            return 0;
    }
    return 1;
}

static int encode(const struct message *m, const void *msg, char *out, size_t outmax, size_t *outlen)
{
    struct sts_wire_writer w;
    int first = 1;

    *outlen = 0;
    if (!encodable(m, msg))
        return STS_ERR_INVALID;
    sts_wire_writer_init(&w, (uint8_t *)out, outmax);
    sts_wire_put_u8(&w, '{');
    for (size_t i = 0; i < m->count; i++) {
        const struct field *f = &m->fields[i];
        if (f->kind == K_OPT_INT && *AT_CONST(msg, f, int64_t) < 0)
            continue;
        if (!first)
            sts_wire_put_u8(&w, ',');
        first = 0;
        put_string(&w, f->name, strlen(f->name));
        sts_wire_put_u8(&w, ':');
        put_value(&w, f, msg);
    }
    sts_wire_put_u8(&w, '}');
    sts_wire_put_u8(&w, '\0');
    if (w.overflow)
        return STS_ERR_TOO_BIG;
    *outlen = w.len - 1;
    return 0;
}

int sts_smqtt_request_encode(const struct sts_smqtt_request *r, char *out, size_t outmax, size_t *outlen)
{
    return encode(&request_msg, r, out, outmax, outlen);
}

int sts_smqtt_response_encode(const struct sts_smqtt_response *r, char *out, size_t outmax, size_t *outlen)
{
    return encode(&response_msg, r, out, outmax, outlen);
}

int sts_smqtt_leave_encode(const struct sts_smqtt_leave *l, char *out, size_t outmax, size_t *outlen)
{
    return encode(&leave_msg, l, out, outmax, outlen);
}

/* ---- JSON in ----
 * A small recursive-descent reader over [p, end). Every failure is one
 * sts_error (STS_ERR_PARSE) and a reason in why. */

struct reader {
    const char *p, *end;
    char *why;
};

static void skip_ws(struct reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int peek(struct reader *r)
{
    skip_ws(r);
    return r->p < r->end ? (uint8_t)*r->p : -1;
}

static int expect(struct reader *r, char c, const char *what)
{
    if (peek(r) != (uint8_t)c)
        return fail(r->why, STS_ERR_PARSE, r->p < r->end ? "expected %s" : "unexpected end of message, expected %s", what);
    r->p++;
    return 0;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* A string's bytes go to out while they fit in cap; n counts them all. */
struct sink {
    char *out;
    size_t cap, n;
};

static void sink_put(struct sink *s, uint32_t byte)
{
    if (s->n < s->cap)
        s->out[s->n] = (char)byte;
    s->n++;
}

static void sink_utf8(struct sink *s, uint32_t cp)
{
    if (cp < 0x80) {
        sink_put(s, cp);
    } else if (cp < 0x800) {
        sink_put(s, 0xc0 | cp >> 6);
        sink_put(s, 0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        sink_put(s, 0xe0 | cp >> 12);
        sink_put(s, 0x80 | (cp >> 6 & 0x3f));
        sink_put(s, 0x80 | (cp & 0x3f));
    } else {
        sink_put(s, 0xf0 | cp >> 18);
        sink_put(s, 0x80 | (cp >> 12 & 0x3f));
        sink_put(s, 0x80 | (cp >> 6 & 0x3f));
        sink_put(s, 0x80 | (cp & 0x3f));
    }
}

/* "\uXXXX", with a surrogate pair as one code point. r->p is past the 'u'. */
static int read_unicode(struct reader *r, struct sink *s)
{
    int hi, lo;

    if (r->end - r->p < 4 || (hi = hex4(r->p)) < 0)
        return fail(r->why, STS_ERR_PARSE, "bad escape in string");
    r->p += 4;
    if (hi >= 0xdc00 && hi <= 0xdfff)
        return fail(r->why, STS_ERR_PARSE, "bad escape in string");
    if (hi < 0xd800 || hi > 0xdbff) {
        sink_utf8(s, (uint32_t)hi);
        return 0;
    }
    if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' || (lo = hex4(r->p + 2)) < 0
        || lo < 0xdc00 || lo > 0xdfff)
        return fail(r->why, STS_ERR_PARSE, "bad escape in string");
    r->p += 6;
    sink_utf8(s, 0x10000 + (((uint32_t)hi - 0xd800) << 10 | ((uint32_t)lo - 0xdc00)));
    return 0;
}

static int read_escape(struct reader *r, struct sink *s)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *c;

    if (r->p == r->end)
        return fail(r->why, STS_ERR_PARSE, "unterminated string");
    if (*r->p == 'u') {
        r->p++;
        return read_unicode(r, s);
    }
    c = *r->p != '\0' ? strchr(from, *r->p) : NULL;
    if (c == NULL)
        return fail(r->why, STS_ERR_PARSE, "bad escape in string");
    r->p++;
    sink_put(s, (uint8_t)to[c - from]);
    return 0;
}

/* A string at r->p (after whitespace), unescaped into out (room for cap
 * bytes, out NULL to skip it); *len is its whole length, which may exceed
 * cap. */
static int read_string(struct reader *r, char *out, size_t cap, size_t *len)
{
    struct sink s = { out, out ? cap : 0, 0 };
    int err = 0;

    if (peek(r) != '"')
        return fail(r->why, STS_ERR_PARSE, "expected a string");
    r->p++;
    while (err == 0) {
        if (r->p == r->end)
            return fail(r->why, STS_ERR_PARSE, "unterminated string");
        uint8_t c = (uint8_t)*r->p++;
        if (c == '"')
            break;
        if (c == '\\')
            err = read_escape(r, &s);
        else if (c < 0x20)
            err = fail(r->why, STS_ERR_PARSE, "control character in string");
        else
            sink_put(&s, c);
    }
    *len = s.n;
    return err;
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static void skip_digits(struct reader *r)
{
    while (r->p < r->end && is_digit((uint8_t)*r->p))
        r->p++;
}

/* A JSON number of any form, only checked and skipped. */
static int skip_number(struct reader *r)
{
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (r->p == r->end || !is_digit((uint8_t)*r->p))
        return fail(r->why, STS_ERR_PARSE, "bad number");
    if (*r->p == '0')
        r->p++;
    else
        skip_digits(r);
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (r->p == r->end || !is_digit((uint8_t)*r->p))
            return fail(r->why, STS_ERR_PARSE, "bad number");
        skip_digits(r);
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (r->p == r->end || !is_digit((uint8_t)*r->p))
            return fail(r->why, STS_ERR_PARSE, "bad number");
        skip_digits(r);
    }
    return 0;
}

static int skip_literal(struct reader *r)
{
    static const char *const words[] = { "true", "false", "null" };
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(r->end - r->p) >= n && memcmp(r->p, words[i], n) == 0) {
            r->p += n;
            return 0;
        }
    }
    return fail(r->why, STS_ERR_PARSE, r->p < r->end ? "bad value" : "unexpected end of message");
}

static int skip_value(struct reader *r, int nesting);

/* The members of an object or the elements of an array, after its '{' or
 * '['. */
static int skip_container(struct reader *r, int nesting, char close)
{
    size_t len;
    int err;

    if (nesting >= NESTING_MAX)
        return fail(r->why, STS_ERR_PARSE, "nesting too deep");
    if (peek(r) == (uint8_t)close) {
        r->p++;
        return 0;
    }
    for (;;) {
        if (close == '}' && ((err = read_string(r, NULL, 0, &len)) != 0 || (err = expect(r, ':', "':'")) != 0))
            return err;
        if ((err = skip_value(r, nesting + 1)) != 0)
            return err;
        if (peek(r) == (uint8_t)close) {
            r->p++;
            return 0;
        }
        if ((err = expect(r, ',', close == '}' ? "',' or '}'" : "',' or ']'")) != 0)
            return err;
    }
}

static int skip_value(struct reader *r, int nesting)
{
    size_t len;
    int c = peek(r);

    if (c == '"')
        return read_string(r, NULL, 0, &len);
    if (c == '{' || c == '[') {
        r->p++;
        return skip_container(r, nesting, c == '{' ? '}' : ']');
    }
    if (c == '-' || is_digit(c))
        return skip_number(r);
    return skip_literal(r);
}

/* A non-negative decimal integer that fits int64. */
static int read_int(struct reader *r, const char *name, int64_t *out)
{
    int c = peek(r);
    int64_t v = 0;

    if (c != '-' && !is_digit(c))
        return fail(r->why, STS_ERR_PARSE, "wrong type for '%s'", name);
    if (c == '-') {
        const char *start = r->p;
        int err = skip_number(r);
        if (err != 0)
            return err;
        r->p = start;
        return fail(r->why, STS_ERR_PARSE, "negative '%s'", name);
    }
    if (*r->p == '0' && r->end - r->p > 1 && is_digit((uint8_t)r->p[1]))
        return fail(r->why, STS_ERR_PARSE, "bad integer in '%s'", name);
    for (; r->p < r->end && is_digit((uint8_t)*r->p); r->p++) {
        int d = *r->p - '0';
        if (v > (INT64_MAX - d) / 10)
            return fail(r->why, STS_ERR_PARSE, "'%s' out of range", name);
        v = v * 10 + d;
    }
    if (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E'))
        return fail(r->why, STS_ERR_PARSE, "bad integer in '%s'", name);
    *out = v;
    return 0;
}

/* A string field into buf (room for cap): wrong type, or too long. */
static int read_string_field(struct reader *r, const char *name, char *buf, size_t cap, size_t *len)
{
    if (peek(r) != '"')
        return fail(r->why, STS_ERR_PARSE, "wrong type for '%s'", name);
    int err = read_string(r, buf, cap, len);
    if (err == 0 && *len > cap)
        return fail(r->why, STS_ERR_PARSE, "'%s' too long", name);
    return err;
}

static int read_field(struct reader *r, const struct field *f, void *msg)
{
    char buf[B64_EKM_MAX];
    size_t len;
    int err;

    switch (f->kind) {
    case K_NONCE_LEN:
        return skip_value(r, 0);
    case K_INT:
    case K_OPT_INT:
        return read_int(r, f->name, AT(msg, f, int64_t));
    case K_ID: {
        struct sts_smqtt_id *id = AT(msg, f, struct sts_smqtt_id);
        err = read_string_field(r, f->name, id->text, STS_SMQTT_ID_MAX, &len);
        if (err == 0 && len < 1)
            err = fail(r->why, STS_ERR_PARSE, "'%s' must be 1 to %d bytes", f->name, STS_SMQTT_ID_MAX);
        if (err == 0) {
            id->len = len;
            id->text[len] = '\0';
        }
        return err;
    }
    case K_MAC:
        err = read_string_field(r, f->name, buf, sizeof buf, &len);
        if (err == 0 && sts_hex_decode(AT(msg, f, uint8_t), STS_SMQTT_MAC_LEN, buf, len) != STS_SMQTT_MAC_LEN)
            err = fail(r->why, STS_ERR_PARSE, len == HEX_MAC_LEN ? "bad hex in '%s'" : "'%s' is not 16 bytes",
                       f->name);
        return err;
    case K_EKM: {
        struct sts_smqtt_ekm *ekm = AT(msg, f, struct sts_smqtt_ekm);
        err = read_string_field(r, f->name, buf, sizeof buf, &len);
        if (err == 0 && sts_base64_decode(ekm->bytes, sizeof ekm->bytes, &ekm->len, buf, len) != 0)
            err = fail(r->why, STS_ERR_PARSE, "bad base64 in '%s'", f->name);
        return err;
    }
    }
    return STS_ERR_INVALID;
}

/* The field of m named by the len bytes of name, or NULL. */
static const struct field *find_field(const struct message *m, const char *name, size_t len)
{
    for (size_t i = 0; i < m->count; i++)
        if (strlen(m->fields[i].name) == len && memcmp(m->fields[i].name, name, len) == 0)
            return &m->fields[i];
    return NULL;
}

static int read_member(struct reader *r, const struct message *m, void *msg, unsigned *seen)
{
    char name[NAME_MAX_LEN];
    size_t len;
    int err = read_string(r, name, sizeof name, &len);

    if (err == 0)
        err = expect(r, ':', "':'");
    if (err != 0)
        return err;
    const struct field *f = len <= sizeof name ? find_field(m, name, len) : NULL;
    if (f == NULL)
        return skip_value(r, 0);
    unsigned bit = 1u << (f - m->fields);
    if (*seen & bit)
        return fail(r->why, STS_ERR_PARSE, "duplicate field '%s'", f->name);
    *seen |= bit;
    return read_field(r, f, msg);
}

static int check_required(const struct message *m, unsigned seen, char *why)
{
    for (size_t i = 0; i < m->count; i++) {
        enum kind k = m->fields[i].kind;
        if (k != K_NONCE_LEN && k != K_OPT_INT && !(seen & 1u << i))
            return fail(why, STS_ERR_PARSE, "missing field '%s'", m->fields[i].name);
    }
    return 0;
}

static void set_absent(const struct message *m, void *msg)
{
    for (size_t i = 0; i < m->count; i++)
        if (m->fields[i].kind == K_OPT_INT)
            *AT(msg, &m->fields[i], int64_t) = -1;
}

/* The members of the top object, after its '{'. */
static int read_members(struct reader *r, const struct message *m, void *msg, unsigned *seen)
{
    int err;

    if (peek(r) == '}') {
        r->p++;
        return 0;
    }
    for (;;) {
        if ((err = read_member(r, m, msg, seen)) != 0)
            return err;
        if (peek(r) != ',')
            return expect(r, '}', "',' or '}'");
        r->p++;
    }
}

static int decode(const struct message *m, void *msg, size_t size, const char *json, size_t len, char *why)
{
    struct reader r = { json, json + len, why };
    unsigned seen = 0;
    int err;

    memset(msg, 0, size);
    set_absent(m, msg);
    if (len > STS_SMQTT_JSON_MAX)
        return fail(why, STS_ERR_TOO_BIG, "message longer than %d bytes", STS_SMQTT_JSON_MAX);
    if (peek(&r) != '{')
        return fail(why, STS_ERR_PARSE, "not a JSON object");
    r.p++;
    err = read_members(&r, m, msg, &seen);
    if (err == 0 && peek(&r) != -1)
        err = fail(why, STS_ERR_PARSE, "trailing data after the object");
    if (err == 0)
        err = check_required(m, seen, why);
    if (err != 0)
        mbedtls_platform_zeroize(msg, size);
    return err;
}

int sts_smqtt_request_decode(struct sts_smqtt_request *r, const char *json, size_t len, char *why)
{
    return decode(&request_msg, r, sizeof *r, json, len, why);
}

int sts_smqtt_response_decode(struct sts_smqtt_response *r, const char *json, size_t len, char *why)
{
    return decode(&response_msg, r, sizeof *r, json, len, why);
}

int sts_smqtt_leave_decode(struct sts_smqtt_leave *l, const char *json, size_t len, char *why)
{
    return decode(&leave_msg, l, sizeof *l, json, len, why);
}

/* ---- Key material in join responses ---- */

/* IV || AES-128-CBC-PKCS#7(key, in) into out (room for len + 32). */
static int cbc_seal(const uint8_t key[STS_SMQTT_KEY_LEN], const uint8_t *in, size_t len,
                    const uint8_t iv[STS_SMQTT_IV_LEN], uint8_t *out, size_t *outlen)
{
    uint8_t chain[STS_SMQTT_IV_LEN];
    int err = iv != NULL ? 0 : sts_random(chain, sizeof chain);

    if (iv != NULL)
        memcpy(chain, iv, sizeof chain);
    if (err != 0)
        return err;
    memcpy(out, chain, sizeof chain);
    size_t padded = sts_pkcs7_pad(out + STS_SMQTT_IV_LEN, in, len);
    err = sts_aes_cbc(1, key, STS_SMQTT_KEY_LEN, chain, out + STS_SMQTT_IV_LEN, padded,
                      out + STS_SMQTT_IV_LEN);
    if (err != 0)
        mbedtls_platform_zeroize(out, STS_SMQTT_IV_LEN + padded);
    *outlen = err == 0 ? STS_SMQTT_IV_LEN + padded : 0;
    return err;
}

/* Decrypts len bytes of ciphertext after iv in place and unpads: the
 * plaintext length, or STS_ERR_INVALID for bad padding (buf wiped). */
static int cbc_open(const uint8_t key[STS_SMQTT_KEY_LEN], const uint8_t iv[STS_SMQTT_IV_LEN],
                    uint8_t *buf, size_t len)
{
    uint8_t chain[STS_SMQTT_IV_LEN];
    int n;

    memcpy(chain, iv, sizeof chain);
    n = sts_aes_cbc(0, key, STS_SMQTT_KEY_LEN, chain, buf, len, buf);
    if (n == 0)
        n = sts_pkcs7_unpad(buf, len);
    if (n < 0)
        mbedtls_platform_zeroize(buf, len);
    return n;
}

int sts_smqtt_response_seal(struct sts_smqtt_response *r, const uint8_t key[STS_SMQTT_KEY_LEN],
                            const char *material, size_t len, const uint8_t iv[STS_SMQTT_IV_LEN])
{
    if (len > STS_SMQTT_MATERIAL_MAX)
        return STS_ERR_TOO_BIG;
    int err = cbc_seal(key, (const uint8_t *)material, len, iv, r->ekm.bytes, &r->ekm.len);
    return err == 0 ? sts_smqtt_response_sign(r, key) : err;
}

int sts_smqtt_response_open(const struct sts_smqtt_response *r, const uint8_t key[STS_SMQTT_KEY_LEN],
                            char *out, size_t outmax, size_t *outlen, char *why)
{
    uint8_t buf[STS_SMQTT_EKM_MAX];
    size_t ctlen = r->ekm.len - STS_SMQTT_IV_LEN;
    int n;

    *outlen = 0;
    n = verify_mac(&response_msg, r, key, r->auth);
    if (n == STS_ERR_AUTH)
        return fail(why, n, "bad MAC");
    if (n != 0)
        return fail(why, n, "%s", sts_strerror(n));
    if (r->ekm.len < STS_SMQTT_IV_LEN + STS_AES_BLOCK_LEN || r->ekm.len > sizeof buf
        || ctlen % STS_AES_BLOCK_LEN != 0)
        return fail(why, STS_ERR_INVALID, "bad length of 'encryptedKeyMaterial'");
    memcpy(buf, r->ekm.bytes + STS_SMQTT_IV_LEN, ctlen);
    n = cbc_open(key, r->ekm.bytes, buf, ctlen);
    if (n == STS_ERR_INVALID)
        return fail(why, n, "bad padding in 'encryptedKeyMaterial'");
    if (n >= 0 && (size_t)n > outmax)
        n = STS_ERR_TOO_BIG;
    if (n >= 0) {
        memcpy(out, buf, (size_t)n);
        *outlen = (size_t)n;
    }
    mbedtls_platform_zeroize(buf, sizeof buf);
    return n < 0 ? fail(why, n, "%s", sts_strerror(n)) : 0;
}

/* ---- Key material texts ---- */

void sts_smqtt_material_key(char out[KEY_HEX_LEN + 1], const uint8_t gk[STS_SMQTT_KEY_LEN])
{
    sts_hex_encode(out, gk, STS_SMQTT_KEY_LEN);
}

int sts_smqtt_material_slotted(char *out, size_t outmax, size_t *outlen,
                               const uint8_t k2[STS_SMQTT_KEY_LEN],
                               const struct sts_smqtt_node *nodes, size_t count)
{
    char hex[KEY_HEX_LEN + 1], head[2 + 2 * (DEC_MAX + 1)];
    struct sts_wire_writer w;

    *outlen = 0;
    sts_wire_writer_init(&w, (uint8_t *)out, outmax);
    sts_hex_encode(hex, k2, STS_SMQTT_KEY_LEN);
    put_text(&w, hex);
    for (size_t i = 0; i < count; i++) {
        snprintf(head, sizeof head, "&[%u,%" PRIu32 ",", (unsigned)nodes[i].depth, nodes[i].pos);
        sts_hex_encode(hex, nodes[i].key, STS_SMQTT_KEY_LEN);
        put_text(&w, head);
        put_text(&w, hex);
        put_text(&w, "]");
    }
    sts_wire_put_u8(&w, '\0');
    mbedtls_platform_zeroize(hex, sizeof hex);
    if (w.overflow) {
        mbedtls_platform_zeroize(out, outmax);
        return STS_ERR_TOO_BIG;
    }
    *outlen = w.len - 1;
    return 0;
}

/* A decimal in [0, max] without leading zeros, ending at `stop`. */
static int read_node_number(const char **p, const char *end, char stop, uint32_t max, uint32_t *out)
{
    const char *s = *p;
    uint64_t v = 0;

    if (s == end || !is_digit((uint8_t)*s) || (*s == '0' && end - s > 1 && is_digit((uint8_t)s[1])))
        return -1;
    for (; s < end && is_digit((uint8_t)*s); s++) {
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max)
            return -1;
    }
    if (s == end || *s != stop)
        return -1;
    *p = s + 1;
    *out = (uint32_t)v;
    return 0;
}

/* "[depth,pos,hexkey]" at *p, after its '&'. */
static int read_node(const char **p, const char *end, struct sts_smqtt_node *node, char *why)
{
    const char *s = *p;
    uint32_t depth, pos;

    if (s == end || *s++ != '[' || read_node_number(&s, end, ',', STS_SMQTT_DEPTH_MAX, &depth) != 0
        || read_node_number(&s, end, ',', UINT32_MAX, &pos) != 0)
        return fail(why, STS_ERR_PARSE, "bad node in key material");
    if ((uint64_t)pos >= (uint64_t)1 << depth)
        return fail(why, STS_ERR_PARSE, "node out of range in key material");
    if (end - s < KEY_HEX_LEN + 1 || s[KEY_HEX_LEN] != ']')
        return fail(why, STS_ERR_PARSE, "bad node in key material");
    if (sts_hex_decode(node->key, STS_SMQTT_KEY_LEN, s, KEY_HEX_LEN) != STS_SMQTT_KEY_LEN)
        return fail(why, STS_ERR_PARSE, "bad hex in key material");
    node->depth = (uint8_t)depth;
    node->pos = pos;
    *p = s + KEY_HEX_LEN + 1;
    return 0;
}

int sts_smqtt_material_parse(const char *text, size_t len, uint8_t key[STS_SMQTT_KEY_LEN],
                             struct sts_smqtt_node *nodes, size_t *count, char *why)
{
    const char *p = text + KEY_HEX_LEN, *end = text + len;
    size_t n = 0;
    int err = 0;

    *count = 0;
    if (len > STS_SMQTT_MATERIAL_MAX)
        return fail(why, STS_ERR_TOO_BIG, "key material too long");
    if (len < KEY_HEX_LEN || (len > KEY_HEX_LEN && text[KEY_HEX_LEN] != '&'))
        return fail(why, STS_ERR_PARSE, "key material is not a 16-byte hex key");
    if (sts_hex_decode(key, STS_SMQTT_KEY_LEN, text, KEY_HEX_LEN) != STS_SMQTT_KEY_LEN)
        return fail(why, STS_ERR_PARSE, "bad hex in key material");
    while (err == 0 && p < end) {
        if (*p++ != '&')
            err = fail(why, STS_ERR_PARSE, "bad node in key material");
        else if (n == STS_SMQTT_COVER_MAX)
            err = fail(why, STS_ERR_TOO_BIG, "too many nodes in key material");
        else
            err = read_node(&p, end, &nodes[n++], why);
    }
    if (err != 0) {
        mbedtls_platform_zeroize(key, STS_SMQTT_KEY_LEN);
        mbedtls_platform_zeroize(nodes, n * sizeof *nodes);
        return err;
    }
    *count = n;
    return 0;
}

/* ---- Data frames ---- */

static int plaintext_mac(const uint8_t gk[STS_SMQTT_KEY_LEN], const uint8_t *pt, size_t len,
                         uint8_t mac[STS_SMQTT_MAC_LEN])
{
    uint8_t digest[STS_SHA256_LEN];
    int err = sts_hmac(STS_SHA256, gk, STS_SMQTT_KEY_LEN, pt, len, digest);

    if (err == 0)
        memcpy(mac, digest, STS_SMQTT_MAC_LEN);
    mbedtls_platform_zeroize(digest, sizeof digest);
    return err;
}

int sts_smqtt_seal(const uint8_t gk[STS_SMQTT_KEY_LEN], uint16_t index, const uint8_t *pt, size_t len,
                   const uint8_t iv[STS_SMQTT_IV_LEN], uint8_t *out, size_t outmax, size_t *outlen)
{
    size_t body;
    int err;

    *outlen = 0;
    if (len > STS_SMQTT_PLAINTEXT_MAX)
        return STS_ERR_TOO_BIG;
    if (len == 0)
        pt = (const uint8_t *)""; /* memmove and HMAC want a pointer even for nothing */
    size_t total = STS_SMQTT_FRAME_OVERHEAD + len + STS_AES_BLOCK_LEN - len % STS_AES_BLOCK_LEN;
    if (outmax < total)
        return STS_ERR_TOO_BIG;
    out[0] = (uint8_t)(index >> 8);
    out[1] = (uint8_t)index;
    err = cbc_seal(gk, pt, len, iv, out + 2, &body);
    if (err == 0)
        err = plaintext_mac(gk, pt, len, out + 2 + body);
    if (err != 0) {
        mbedtls_platform_zeroize(out, total);
        return err;
    }
    *outlen = total;
    return 0;
}

static uint16_t index_of(const uint8_t *frame)
{
    return (uint16_t)(frame[0] << 8 | frame[1]);
}

int sts_smqtt_frame_index(const uint8_t *frame, size_t len, uint16_t *index)
{
    if (len < STS_SMQTT_FRAME_MIN)
        return STS_ERR_TRUNCATED;
    *index = index_of(frame);
    return 0;
}

int sts_smqtt_open(const uint8_t gk[STS_SMQTT_KEY_LEN], const uint8_t *frame, size_t len,
                   uint8_t *out, size_t outmax, size_t *outlen, uint16_t *index, char *why)
{
    uint8_t mac[STS_SMQTT_MAC_LEN];
    size_t ctlen = len - STS_SMQTT_FRAME_OVERHEAD;
    int n;

    *outlen = 0;
    if (len < STS_SMQTT_FRAME_MIN)
        return fail(why, STS_ERR_TRUNCATED, "truncated frame");
    if (ctlen % STS_AES_BLOCK_LEN != 0)
        return fail(why, STS_ERR_INVALID, "bad length");
    if (ctlen > STS_SMQTT_PLAINTEXT_MAX + STS_AES_BLOCK_LEN)
        return fail(why, STS_ERR_TOO_BIG, "frame too big");
    if (outmax < ctlen)
        return fail(why, STS_ERR_TOO_BIG, "output buffer too small");
    memcpy(out, frame + 2 + STS_SMQTT_IV_LEN, ctlen);
    n = cbc_open(gk, frame + 2, out, ctlen);
    if (n == STS_ERR_INVALID)
        return fail(why, n, "bad padding");
    if (n >= 0) {
        int err = plaintext_mac(gk, out, (size_t)n, mac);
        if (err == 0 && mbedtls_ct_memcmp(mac, frame + len - STS_SMQTT_MAC_LEN, STS_SMQTT_MAC_LEN) != 0)
            err = STS_ERR_AUTH;
        if (err != 0) {
            mbedtls_platform_zeroize(out, ctlen);
            n = err;
        }
    }
    mbedtls_platform_zeroize(mac, sizeof mac);
    if (n < 0)
        return fail(why, n, "%s", n == STS_ERR_AUTH ? "bad MAC" : sts_strerror(n));
    *index = index_of(frame);
    *outlen = (size_t)n;
    return 0;
}

/* ---- The SLOTTED tree ---- */

int sts_smqtt_child(const uint8_t k[STS_SMQTT_KEY_LEN], int bit, uint8_t out[STS_SMQTT_KEY_LEN])
{
    uint8_t in[STS_SMQTT_KEY_LEN], digest[STS_SHA256_LEN];
    int err;

    if (bit != 0 && bit != 1)
        return STS_ERR_INVALID;
    memcpy(in, k, sizeof in);
    in[STS_SMQTT_KEY_LEN - 1] ^= (uint8_t)bit;
    err = sts_hash(STS_SHA256, in, sizeof in, digest);
    if (err == 0)
        memcpy(out, digest, STS_SMQTT_KEY_LEN);
    mbedtls_platform_zeroize(in, sizeof in);
    mbedtls_platform_zeroize(digest, sizeof digest);
    return err;
}

/* The walk is slot_tree.c's; only the depth bound (the 16-bit frame index)
 * and the child function are the SMQTT tree's own. */
static int is_leaf(unsigned depth, uint32_t slot)
{
    return depth >= 1 && depth <= STS_SMQTT_DEPTH_MAX && sts_tree_is_ancestor(0, 0, depth, slot);
}

static int derive(const struct sts_smqtt_node *from, unsigned depth, uint32_t pos,
                  uint8_t out[STS_SMQTT_KEY_LEN])
{
    return sts_tree_derive(sts_smqtt_child, STS_SMQTT_KEY_LEN, from->key, from->depth, from->pos,
                           depth, pos, out);
}

int sts_smqtt_cover(const uint8_t root[STS_SMQTT_KEY_LEN], unsigned depth, uint32_t first, uint32_t last,
                    struct sts_smqtt_node *nodes, size_t *count)
{
    struct sts_tree_pos at[STS_SLOT_COVER_MAX];
    size_t n = 0, done = 0;
    int err = depth > STS_SMQTT_DEPTH_MAX ? STS_ERR_INVALID
                                          : sts_tree_cover_positions(depth, first, last, at, &n);

    *count = 0;
    for (; err == 0 && done < n; done++) {
        nodes[done] = (struct sts_smqtt_node){ .depth = at[done].depth, .pos = at[done].pos };
        err = sts_tree_derive(sts_smqtt_child, STS_SMQTT_KEY_LEN, root, 0, 0, at[done].depth,
                              at[done].pos, nodes[done].key);
    }
    if (err != 0) {
        mbedtls_platform_zeroize(nodes, done * sizeof *nodes);
        return err;
    }
    *count = n;
    return 0;
}

int sts_smqtt_leaf(const struct sts_smqtt_node *nodes, size_t count, unsigned depth, uint32_t slot,
                   uint8_t out[STS_SMQTT_KEY_LEN])
{
    if (!is_leaf(depth, slot))
        return STS_ERR_INVALID;
    for (size_t i = 0; i < count; i++)
        if (sts_tree_is_ancestor(nodes[i].depth, nodes[i].pos, depth, slot))
            return derive(&nodes[i], depth, slot, out);
    return STS_ERR_STATE;
}

int sts_smqtt_grant(int64_t elapsed_ms, int64_t slot_seconds, int64_t expires,
                    int64_t *first, int64_t *last)
{
    if (elapsed_ms < 0 || slot_seconds < 1 || expires < 0 || expires > (INT64_MAX - elapsed_ms) / 1000)
        return STS_ERR_INVALID;
    int64_t from = elapsed_ms / slot_seconds / 1000;
    int64_t to = (elapsed_ms + expires * 1000) / slot_seconds / 1000 - 1;
    if (to < from)
        return STS_ERR_INVALID;
    *first = from;
    *last = to;
    return 0;
}
