/* The DH public key parsers (DER, and the same bytes as PEM text) and the
 * parameter parser. Checked: whatever parses writes back as PEM and parses
 * again to the same group and value. */
#include "crypto/dh.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_key(const struct sts_dh_public *a, const struct sts_dh_public *b)
{
    return mbedtls_mpi_cmp_mpi(&a->params.p, &b->params.p) == 0 &&
           mbedtls_mpi_cmp_mpi(&a->params.g, &b->params.g) == 0 &&
           mbedtls_mpi_cmp_mpi(&a->y, &b->y) == 0;
}

static void check_round_trip(const struct sts_dh_public *pub)
{
    struct sts_dh_public again;
    char *pem = NULL;
    size_t len;

    if (sts_dh_public_write_pem(pub, &pem, &len) != 0) abort();
    sts_dh_public_init(&again);
    if (sts_dh_public_parse_pem(&again, pem, len) != 0 || !same_key(pub, &again)) abort();
    sts_dh_public_free(&again);
    free(pem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sts_dh_public pub;
    struct sts_dh_params params;

    sts_dh_public_init(&pub);
    if (sts_dh_public_parse_der(&pub, data, size) == 0) check_round_trip(&pub);
    sts_dh_public_free(&pub);

    sts_dh_public_init(&pub);
    if (sts_dh_public_parse_pem(&pub, (const char *)data, size) == 0) check_round_trip(&pub);
    sts_dh_public_free(&pub);

    sts_dh_params_init(&params);
    (void)sts_dh_params_parse_pem(&params, (const char *)data, size);
    sts_dh_params_free(&params);
    return 0;
}
