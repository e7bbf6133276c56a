/* Key server state files: any bytes load or are refused with STS_ERR_PARSE
 * and a message, leaving the core empty. Whatever loads saves to a file
 * that loads again and saves to the same bytes (loading moves the next
 * index to the reservation, so the second round is a fixed point), and the
 * restored core survives its members not coming back. Each input is tried
 * as given and, so that mutations reach the body, with its trailing
 * SHA-256 recomputed. */
#include "crypto/hash.h"
#include "proto/group_server.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int drop(void *ud, void *peer, const uint8_t *msg, size_t len)
{
    (void)ud; (void)peer; (void)msg; (void)len;
    return 0;
}

static const struct sts_gks_ops ops = { drop, NULL, NULL, NULL };

static struct sts_gks *fresh(void)
{
    struct sts_gks_config cfg;
    struct sts_gks *ks;
    sts_gks_config_defaults(&cfg);
    ks = sts_gks_new(&cfg, &ops, NULL);
    if (!ks) abort();
    return ks;
}

static void round_trip(struct sts_gks *ks)
{
    uint8_t *a, *b;
    size_t alen, blen;
    char err[256];
    struct sts_gks *again = fresh();

    if (sts_gks_save(ks, &a, &alen) != 0) abort();
    if (sts_gks_load(again, a, alen, 1000, err, sizeof err) != 0) abort();
    if (sts_gks_save(again, &b, &blen) != 0) abort();
    if (blen != alen || memcmp(a, b, alen) != 0) abort();
    free(a);
    free(b);
    sts_gks_free(again);
}

static void try_load(const uint8_t *buf, size_t len)
{
    struct sts_gks *ks = fresh();
    struct sts_gks_stats st;
    char err[256] = "";

    if (sts_gks_load(ks, buf, len, 1000, err, sizeof err) != 0) {
        sts_gks_stats(ks, &st);
        if (st.groups != 0 || st.members != 0 || err[0] == '\0') abort();
    } else {
        round_trip(ks);
        sts_gks_tick(ks, 1000 + 3600);
        sts_gks_stats(ks, &st);
        if (st.members != 0) abort();
    }
    sts_gks_free(ks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;

    try_load(data, size);
    if (size < STS_SHA256_LEN) return 0;
    copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    if (sts_hash(STS_SHA256, copy, size - STS_SHA256_LEN, copy + size - STS_SHA256_LEN) == 0)
        try_load(copy, size);
    free(copy);
    return 0;
}
