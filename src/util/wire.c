#include "util/wire.h"
#include "util/error.h"

#include <string.h>

#define STR8_MAX 255

void sts_wire_writer_init(struct sts_wire_writer *w, uint8_t *out, size_t cap)
{
    *w = (struct sts_wire_writer){ .out = out, .cap = cap };
}

void sts_wire_put(struct sts_wire_writer *w, const void *src, size_t n)
{
    /* len <= cap holds until the first put that does not fit */
    if (w->overflow || n > w->cap - w->len) w->overflow = 1;
    else if (n > 0) memcpy(w->out + w->len, src, n);
    w->len += n;
}

static void put_be(struct sts_wire_writer *w, uint64_t v, size_t n)
{
    uint8_t b[8];

    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    sts_wire_put(w, b, n);
}

void sts_wire_put_u8(struct sts_wire_writer *w, uint8_t v) { put_be(w, v, 1); }
void sts_wire_put_u16(struct sts_wire_writer *w, uint16_t v) { put_be(w, v, 2); }
void sts_wire_put_u32(struct sts_wire_writer *w, uint32_t v) { put_be(w, v, 4); }
void sts_wire_put_u64(struct sts_wire_writer *w, uint64_t v) { put_be(w, v, 8); }

void sts_wire_put_str8(struct sts_wire_writer *w, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    if (n > STR8_MAX) {
        w->overflow = 1;
        return;
    }
    put_be(w, n, 1);
    sts_wire_put(w, s, n);
}

void sts_wire_reader_init(struct sts_wire_reader *r, const uint8_t *in, size_t len)
{
    *r = (struct sts_wire_reader){ .in = in, .left = len };
}

void sts_wire_fail(struct sts_wire_reader *r, int err)
{
    if (r->err == 0) r->err = err;
}

/* The next n bytes, or NULL once anything failed. */
static const uint8_t *take(struct sts_wire_reader *r, size_t n)
{
    const uint8_t *p = r->in;

    if (r->err != 0) return NULL;
    if (r->left < n) {
        r->err = STS_ERR_TRUNCATED;
        return NULL;
    }
    r->in += n;
    r->left -= n;
    return p;
}

void sts_wire_get(struct sts_wire_reader *r, void *dst, size_t n)
{
    const uint8_t *p = take(r, n);

    if (p != NULL && n > 0) memcpy(dst, p, n);
}

static uint64_t get_be(struct sts_wire_reader *r, size_t n)
{
    const uint8_t *p = take(r, n);
    uint64_t v = 0;

    for (size_t i = 0; p != NULL && i < n; i++)
        v = v << 8 | p[i];
    return v;
}

uint8_t sts_wire_get_u8(struct sts_wire_reader *r) { return (uint8_t)get_be(r, 1); }
uint16_t sts_wire_get_u16(struct sts_wire_reader *r) { return (uint16_t)get_be(r, 2); }
uint32_t sts_wire_get_u32(struct sts_wire_reader *r) { return (uint32_t)get_be(r, 4); }
uint64_t sts_wire_get_u64(struct sts_wire_reader *r) { return get_be(r, 8); }

int sts_wire_get_str8(struct sts_wire_reader *r, char *dst, size_t cap)
{
    size_t n = sts_wire_get_u8(r);
    const uint8_t *p;

    dst[0] = '\0';
    if (n >= cap) { /* checked before the bytes: too long is wrong however many follow */
        sts_wire_fail(r, STS_ERR_INVALID);
        return STS_ERR_INVALID;
    }
    p = take(r, n);
    if (p == NULL) return 0;
    if (memchr(p, '\0', n) != NULL) {
        sts_wire_fail(r, STS_ERR_INVALID);
        return STS_ERR_INVALID;
    }
    memcpy(dst, p, n);
    dst[n] = '\0';
    return 0;
}
