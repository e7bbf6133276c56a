/* CPU per X25519 operation (mbedtls 2.28's Curve25519): a key pair and a
 * shared secret, the operations a handshake is made of (NN needs 2 per side,
 * XX 4, IK 5), so their cost is most of a handshake's. Median of 7 runs of
 * 100 operations; process CPU time, as the machine is shared.
 *
 *   cmake --build build-rel --target bench_x25519 && build-rel/bench/x25519 */
#include "crypto/x25519.h"

#include "cpu.h"

#include <stdio.h>
#include <stdlib.h>

enum { OPS = 100, RUNS = 7 };

/* The median over RUNS of the CPU ms one operation takes (shared: a DH
 * with a fixed peer; else a fresh key pair). */
static double median_ms(int shared)
{
    uint8_t priv[STS_X25519_LEN], pub[STS_X25519_LEN], peer[STS_X25519_LEN], out[STS_X25519_LEN];
    double runs[RUNS];

    if (sts_x25519_keypair(priv, peer) != 0) exit(1);
    for (int r = 0; r < RUNS; r++) {
        double start = bench_cpu_us();
        for (int i = 0; i < OPS; i++)
            if ((shared ? sts_x25519_shared(out, priv, peer) : sts_x25519_keypair(priv, pub)) != 0) {
                fprintf(stderr, "bench: X25519 failed\n");
                exit(1);
            }
        runs[r] = (bench_cpu_us() - start) / 1e3 / OPS;
    }
    return bench_median(runs, RUNS);
}

int main(void)
{
    printf("X25519, CPU ms per operation (median of %d runs of %d)\n", RUNS, OPS);
    printf("key pair      %.3f\n", median_ms(0));
    printf("shared secret %.3f\n", median_ms(1));
    return 0;
}
