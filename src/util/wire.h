/* Big-endian byte strings, written and read through a cursor that keeps its
 * first failure, so a run of puts or gets needs one check at its end.
 *
 * A str8 is one length byte and that many bytes of text, no terminator. */
#ifndef STS_UTIL_WIRE_H
#define STS_UTIL_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* len counts every byte put, also those that did not fit, so a writer over
 * no buffer (NULL, 0) measures. Once a put does not fit, overflow is set
 * and nothing more is stored: out holds a prefix of what was put. */
struct sts_wire_writer {
    uint8_t *out;
    size_t cap, len;
    int overflow;
};

void sts_wire_writer_init(struct sts_wire_writer *w, uint8_t *out, size_t cap);
void sts_wire_put(struct sts_wire_writer *w, const void *src, size_t n);
void sts_wire_put_u8(struct sts_wire_writer *w, uint8_t v);
void sts_wire_put_u16(struct sts_wire_writer *w, uint16_t v);
void sts_wire_put_u32(struct sts_wire_writer *w, uint32_t v);
void sts_wire_put_u64(struct sts_wire_writer *w, uint64_t v);
/* The NUL-terminated text in s (an array of cap bytes). Text longer than a
 * str8 holds sets overflow. */
void sts_wire_put_str8(struct sts_wire_writer *w, const char *s, size_t cap);

/* err is the first failure: STS_ERR_TRUNCATED when a read wanted more than
 * was left, STS_ERR_INVALID for a bad str8, or what the caller gave
 * sts_wire_fail. From then on nothing is read and every get gives zeros. */
struct sts_wire_reader {
    const uint8_t *in;
    size_t left;
    int err;
};

void sts_wire_reader_init(struct sts_wire_reader *r, const uint8_t *in, size_t len);
/* Records err (an sts_error) unless an earlier failure is recorded. */
void sts_wire_fail(struct sts_wire_reader *r, int err);
void sts_wire_get(struct sts_wire_reader *r, void *dst, size_t n);
uint8_t sts_wire_get_u8(struct sts_wire_reader *r);
uint16_t sts_wire_get_u16(struct sts_wire_reader *r);
uint32_t sts_wire_get_u32(struct sts_wire_reader *r);
uint64_t sts_wire_get_u64(struct sts_wire_reader *r);
/* A str8 into dst (cap >= 1 bytes, NUL-terminated; "" when nothing is read).
 * One of cap bytes or more, or one holding a NUL (which would cut it short
 * and write back differently), fails with STS_ERR_INVALID, which is also
 * returned; otherwise 0, even when the input ran out. */
int sts_wire_get_str8(struct sts_wire_reader *r, char *dst, size_t cap);

#endif
