/* A minimal unit-test harness for the C tests: CHECK records a failure and
 * goes on, so one run reports every broken case; unit_done prints the closing
 * "N passed, N failed" line that ctest's output is read for. */
#ifndef STS_UTIL_UNIT_H
#define STS_UTIL_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed;

#define CHECK(cond) do { \
    if (cond) unit_passed++; \
    else { unit_failed++; fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECK_MEM(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)

static inline int unit_done(void)
{
    printf("%d passed, %d failed\n", unit_passed, unit_failed);
    return unit_failed ? 1 : 0;
}

#endif
