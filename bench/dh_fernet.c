/* Cost of one lab-protocol session's crypto: a DH key pair, the derivation
 * of the Fernet key, and a Fernet round trip of 64 bytes. Not built by CMake;
 * from the project root, after building build-lab:
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc bench/dh_fernet.c build-lab/libstscore.a \
 *      -lmbedtls -lmbedx509 -lmbedcrypto -o /tmp/bench_dh_fernet
 *   openssl genpkey -genparam -algorithm DH -pkeyopt group:modp_4096 -out /tmp/modp4096.pem
 *   /tmp/bench_dh_fernet /tmp/modp4096.pem
 *
 * The peer is a second key pair in the same group. */
#include "crypto/dh.h"
#include "crypto/fernet.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void fail(const char *what)
{
    fprintf(stderr, "bench: %s failed\n", what);
    exit(1);
}

static void load_params(struct sts_dh_params *params, const char *path)
{
    static char text[65536];
    FILE *f = fopen(path, "rb");
    if (!f) fail(path);
    size_t n = fread(text, 1, sizeof text, f);
    fclose(f);
    if (sts_dh_params_parse_pem(params, text, n) != 0) fail("parsing the parameters");
}

static void bench_dh(const struct sts_dh_params *params, int rounds)
{
    struct sts_dh_key peer;
    uint8_t key[STS_DH_LAB_KEY_LEN];
    double generate = 0, derive = 0;

    sts_dh_key_init(&peer);
    if (sts_dh_key_generate(&peer, params) != 0) fail("peer key");
    for (int i = 0; i < rounds; i++) {
        struct sts_dh_key mine;
        sts_dh_key_init(&mine);
        double t0 = now_ms();
        if (sts_dh_key_generate(&mine, params) != 0) fail("key pair");
        double t1 = now_ms();
        if (sts_dh_derive_lab_key(&mine, &peer.pub, key) != 0) fail("derive");
        double t2 = now_ms();
        generate += t1 - t0;
        derive += t2 - t1;
        sts_dh_key_free(&mine);
    }
    sts_dh_key_free(&peer);
    printf("DH %zu-bit: key pair %.1f ms, derive + HKDF %.1f ms (mean of %d)\n",
           sts_dh_params_len(params) * 8, generate / rounds, derive / rounds, rounds);
}

static void bench_fernet(int rounds)
{
    static const uint8_t key[STS_FERNET_KEY_LEN] = { 1 };
    uint8_t msg[64] = { 0 };
    double t0 = now_ms();
    for (int i = 0; i < rounds; i++) {
        char *token;
        size_t toklen, len;
        uint8_t *pt;
        if (sts_fernet_encrypt(key, msg, sizeof msg, 1700000000u, NULL, &token, &toklen) != 0) fail("encrypt");
        if (sts_fernet_decrypt(key, token, toklen, 60, 1700000000u, &pt, &len) != 0) fail("decrypt");
        free(token);
        free(pt);
    }
    printf("Fernet 64 bytes: encrypt + decrypt %.2f us (mean of %d)\n", (now_ms() - t0) * 1e3 / rounds, rounds);
}

int main(int argc, char **argv)
{
    struct sts_dh_params params;
    if (argc != 2) {
        fprintf(stderr, "usage: %s DH-PARAMETERS.pem\n", argv[0]);
        return 2;
    }
    sts_dh_params_init(&params);
    load_params(&params, argv[1]);
    bench_dh(&params, 20);
    bench_fernet(100000);
    sts_dh_params_free(&params);
    return 0;
}
