/* What the C benches measure with: the process's CPU time, not wall time,
 * as the machine is shared, and the median of several runs. */
#ifndef STS_BENCH_CPU_H
#define STS_BENCH_CPU_H

#include <stdlib.h>
#include <time.h>

static inline double bench_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static inline int bench_ascending(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of the n values (sorted in place). */
static inline double bench_median(double *values, size_t n)
{
    qsort(values, n, sizeof *values, bench_ascending);
    return values[n / 2];
}

#endif
