/* Test helper: published vectors are written as hex strings in the tests. */
#ifndef STS_CRYPTO_TESTS_HEXVEC_H
#define STS_CRYPTO_TESTS_HEXVEC_H

#include "util/hex.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decodes hex into out (room for max bytes); a malformed vector is a bug in
 * the test itself, so it stops the run. */
static inline size_t unhex(uint8_t *out, size_t max, const char *hex)
{
    int n = sts_hex_decode(out, max, hex, strlen(hex));
    if (n < 0) {
        fprintf(stderr, "malformed hex vector: %.32s...\n", hex);
        exit(2);
    }
    return (size_t)n;
}

#endif
