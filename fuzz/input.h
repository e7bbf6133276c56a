/* Reading a fuzz input as a sequence of fields: past its end every byte
 * reads as 0, so any input is a complete sequence. */
#ifndef STS_FUZZ_INPUT_H
#define STS_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

struct fuzz_input {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t fuzz_take_byte(struct fuzz_input *in)
{
    if (in->n == 0) return 0;
    in->n--;
    return *in->p++;
}

/* A length byte, then up to that many bytes (fewer at the end); *len says how many. */
static inline const uint8_t *fuzz_take_bytes(struct fuzz_input *in, size_t *len)
{
    size_t want = fuzz_take_byte(in);
    *len = want < in->n ? want : in->n;
    const uint8_t *s = in->p;
    in->p += *len;
    in->n -= *len;
    return s;
}

#endif
