/* CPU per AEAD call on the backend this tree is built with (STS_AEAD_BACKEND):
 * seal and open of 64 B, 1 KiB and 16 KiB, both algorithms, with each
 * call's key setup included, as a session pays it. Median of 7 runs of
 * about 50 ms of CPU each; process CPU time, not wall time, since the
 * machine is shared.
 *
 *   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release && cmake --build build-rel --target bench_aead
 *   build-rel/bench/aead */
#include "crypto/aead.h"
#include "crypto/aead_backend.h"

#include "cpu.h"

#include <stdio.h>
#include <stdlib.h>

enum { MAX_LEN = 16384, RUNS = 7 };

static void fail(const char *what)
{
    fprintf(stderr, "bench: %s failed\n", what);
    exit(1);
}

/* One call: a seal of pt into ct, or an open of ct into pt (seal = 0). */
static void call(enum sts_aead_alg alg, int seal, size_t len, uint8_t *pt, uint8_t *ct)
{
    static const uint8_t key[STS_KEY_LEN] = { 7 }, ad[16] = { 1 };
    uint8_t nonce[STS_AEAD_NONCE_LEN] = { 0 };

    if (seal ? sts_aead_seal(alg, key, nonce, ad, sizeof ad, pt, len, ct) != 0
             : sts_aead_open(alg, key, nonce, ad, sizeof ad, ct, len + STS_AEAD_TAG_LEN, pt) != 0)
        fail(seal ? "seal" : "open");
}

/* Median µs per call over RUNS runs of n calls each. */
static double per_call(enum sts_aead_alg alg, int seal, size_t len, uint8_t *pt, uint8_t *ct)
{
    double us[RUNS];
    long n = 1 + (long)(50000 / (0.2 + len / 1024.0)); /* ~50 ms at 1 µs per KiB */

    for (int run = 0; run < RUNS; run++) {
        double t0 = bench_cpu_us();
        for (long i = 0; i < n; i++) call(alg, seal, len, pt, ct);
        us[run] = (bench_cpu_us() - t0) / (double)n;
    }
    return bench_median(us, RUNS);
}

int main(void)
{
    static const struct { enum sts_aead_alg alg; const char *name; } algs[] = {
        { STS_AEAD_CHACHAPOLY, "ChaCha20-Poly1305" }, { STS_AEAD_AESGCM, "AES-256-GCM" },
    };
    static const size_t lens[] = { 64, 1024, MAX_LEN };
    static uint8_t pt[MAX_LEN], ct[MAX_LEN + STS_AEAD_TAG_LEN];

    printf("AEAD backend: %s; CPU µs per call (median of %d), key setup included\n",
           sts_aead_backend_name, RUNS);
    printf("%-18s %7s %9s %9s %10s\n", "algorithm", "bytes", "seal", "open", "seal GB/s");
    for (size_t a = 0; a < sizeof algs / sizeof *algs; a++)
        for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
            double seal, open;

            seal = per_call(algs[a].alg, 1, lens[l], pt, ct);
            open = per_call(algs[a].alg, 0, lens[l], pt, ct); /* opens the last seal */
            printf("%-18s %7zu %9.3f %9.3f %10.2f\n", algs[a].name, lens[l], seal, open,
                   lens[l] / seal / 1e3);
        }
    return 0;
}
