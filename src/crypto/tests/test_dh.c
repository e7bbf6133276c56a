/* Finite-field DH: parameter and public-key PEM (the RFC groups, the
 * course's example key, a vector made with Python's cryptography), key
 * agreement, secrets with a leading zero byte, and what must be refused. */
#include "crypto/dh.h"
#include "crypto/tests/hexvec.h"
#include "util/error.h"
#include "util/unit.h"

#include <mbedtls/asn1write.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/pem.h>
#include <stdlib.h>

#define EXAMPLE_KEY "../shared/vectors/lab/example_public_key.pem"

/* ---- fixtures ----
 * Parameters made with OpenSSL 3.0: `openssl genpkey -genparam -algorithm DH
 * -pkeyopt group:NAME` for modp_2048 and modp_4096 (RFC 3526 groups 14 and
 * 16), ffdhe2048 and ffdhe4096 (RFC 7919); group 14 again with a
 * privateValueLength of 224, built with `openssl asn1parse -genconf`; and a
 * 1024-bit safe prime from `-pkeyopt dh_paramgen_prime_len:1024`. */
static const char modp2048_pem[] =
    "-----BEGIN DH PARAMETERS-----\n"
    "MIIBCAKCAQEA///////////JD9qiIWjCNMTGYouA3BzRKQJOCIpnzHQCC76mOxOb\n"
    "IlFKCHmONATd75UZs806QxswKwpt8l8UN0/hNW1tUcJF5IW1dmJefsb0TELppjft\n"
    "awv/XLb0Brft7jhr+1qJn6WunyQRfEsf5kkoZlHs5Fs9wgB8uKFjvwWY2kg2HFXT\n"
    "mmkWP6j9JM9fg2VdI9yjrZYcYvNWIIVSu57VKQdwlpZtZww1Tkq8mATxdGwIyhgh\n"
    "fDKQXkYuNs474553LBgOhgObJ4Oi7Aeij7XFXfBvTFLJ3ivL9pVYFxg5lUl86pVq\n"
    "5RXSJhiY+gUQFXKOWoqsqmj//////////wIBAg==\n"
    "-----END DH PARAMETERS-----\n";
static const char modp4096_pem[] =
    "-----BEGIN DH PARAMETERS-----\n"
    "MIICCAKCAgEA///////////JD9qiIWjCNMTGYouA3BzRKQJOCIpnzHQCC76mOxOb\n"
    "IlFKCHmONATd75UZs806QxswKwpt8l8UN0/hNW1tUcJF5IW1dmJefsb0TELppjft\n"
    "awv/XLb0Brft7jhr+1qJn6WunyQRfEsf5kkoZlHs5Fs9wgB8uKFjvwWY2kg2HFXT\n"
    "mmkWP6j9JM9fg2VdI9yjrZYcYvNWIIVSu57VKQdwlpZtZww1Tkq8mATxdGwIyhgh\n"
    "fDKQXkYuNs474553LBgOhgObJ4Oi7Aeij7XFXfBvTFLJ3ivL9pVYFxg5lUl86pVq\n"
    "5RXSJhiY+gUQFXKOWoqqxC2tMxcNBFB6M6hVIavfHLpk7PuFBFjb7wqK6nFXXQYM\n"
    "fbOXD4Wm4eTHq/WujNsJM9cejJTgSiVhnc7j0iYa0u5r8S/6BtmKCGTYdgJzPshq\n"
    "ZFIfKxgXeyAMu+EXV3phXWx3CYjAutlG4gjiT6B05asxQ9tb/OD9EI5LgtEgqSEI\n"
    "ARpyPBKnh+bXiHGaEL26WyaZwycYavTiPBqUaDS2FQvaJYPpyirUTOjbu8LbBN6O\n"
    "+S6O/BQfvsqmKHxZR05rwF2ZspZPoJDDoiM7oYZRW+ftH2EpcM7i16+4G912IXBI\n"
    "HNAGkSfVsFqpk7TqmI2P3cGG/7fckKbAj030Nck0BjGZ//////////8CAQI=\n"
    "-----END DH PARAMETERS-----\n";

static const char ffdhe2048_pem[] =
    "-----BEGIN DH PARAMETERS-----\n"
    "MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz\n"
    "+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a\n"
    "87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7\n"
    "YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi\n"
    "7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD\n"
    "ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==\n"
    "-----END DH PARAMETERS-----\n";

static const char ffdhe4096_pem[] =
    "-----BEGIN DH PARAMETERS-----\n"
    "MIICCAKCAgEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz\n"
    "+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a\n"
    "87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7\n"
    "YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi\n"
    "7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD\n"
    "ssbzSibBsu/6iGtCOGEfz9zeNVs7ZRkDW7w09N75nAI4YbRvydbmyQd62R0mkff3\n"
    "7lmMsPrBhtkcrv4TCYUTknC0EwyTvEN5RPT9RFLi103TZPLiHnH1S/9croKrnJ32\n"
    "nuhtK8UiNjoNq8Uhl5sN6todv5pC1cRITgq80Gv6U93vPBsg7j/VnXwl5B0rZp4e\n"
    "8W5vUsMWTfT7eTDp5OWIV7asfV9C1p9tGHdjzx1VA0AEh/VbpX4xzHpxNciG77Qx\n"
    "iu1qHgEtnmgyqQdgCpGBMMRtx3j5ca0AOAkpmaMzy4t6Gh25PXFAADwqTs6p+Y0K\n"
    "zAqCkc3OyX3Pjsm1Wn+IpGtNtahR9EGC4caKAH5eZV9q//////////8CAQI=\n"
    "-----END DH PARAMETERS-----\n";

static const char modp2048_with_length_pem[] =
    "-----BEGIN DH PARAMETERS-----\n"
    "MIIBDAKCAQEA///////////JD9qiIWjCNMTGYouA3BzRKQJOCIpnzHQCC76mOxOb\n"
    "IlFKCHmONATd75UZs806QxswKwpt8l8UN0/hNW1tUcJF5IW1dmJefsb0TELppjft\n"
    "awv/XLb0Brft7jhr+1qJn6WunyQRfEsf5kkoZlHs5Fs9wgB8uKFjvwWY2kg2HFXT\n"
    "mmkWP6j9JM9fg2VdI9yjrZYcYvNWIIVSu57VKQdwlpZtZww1Tkq8mATxdGwIyhgh\n"
    "fDKQXkYuNs474553LBgOhgObJ4Oi7Aeij7XFXfBvTFLJ3ivL9pVYFxg5lUl86pVq\n"
    "5RXSJhiY+gUQFXKOWoqsqmj//////////wIBAgICAOA=\n"
    "-----END DH PARAMETERS-----\n";

static const char p1024_pem[] =
    "-----BEGIN DH PARAMETERS-----\n"
    "MIGHAoGBAKPVeuRXOMsYfEhiKq4q3Jj6hQd6OWwnBgGr9v5dN4NzJIctMgXlfPkI\n"
    "8qqXs/9FUUhhv/GUAo3YUP6+u0JxjpTzVmoHWxAjnd4g3sNuEaGHDrh19no1s6z4\n"
    "Pw45u/6SAGabsqTosU0mq3Eaweeig6RZe4ToZk5HwQG/THbytVb/AgEC\n"
    "-----END DH PARAMETERS-----\n";


/* RFC 3526 §3: the 2048-bit MODP group's prime as printed there. */
static const char rfc3526_group14_p[] =
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
    "955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";

/* Made with Python's cryptography 48 (OpenSSL 3.0) over group 14: party A's
 * private value, party B's public key as Python wrote it (X9.42 form: OpenSSL
 * knows this prime), and the lab key Python derived from the 256-byte shared
 * secret, which starts with a 0x00 byte: HKDF-SHA256(salt 00, info 00). */
static const char python_a_x[] = "1e95189087c66c40a9243c69e9e021e6159e9d56f043674812dcf3872";
static const char python_b_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIDJjCCAhkGByqGSM4+AgEwggIMAoIBAQD//////////8kP2qIhaMI0xMZii4Dc\n"
    "HNEpAk4IimfMdAILvqY7E5siUUoIeY40BN3vlRmzzTpDGzArCm3yXxQ3T+E1bW1R\n"
    "wkXkhbV2Yl5+xvRMQummN+1rC/9ctvQGt+3uOGv7Womfpa6fJBF8Sx/mSShmUezk\n"
    "Wz3CAHy4oWO/BZjaSDYcVdOaaRY/qP0kz1+DZV0j3KOtlhxi81YghVK7ntUpB3CW\n"
    "lm1nDDVOSryYBPF0bAjKGCF8MpBeRi42zjvjnncsGA6GA5sng6LsB6KPtcVd8G9M\n"
    "UsneK8v2lVgXGDmVSXzqlWrlFdImGJj6BRAVco5aiqyqaP//////////AgECAoIB\n"
    "AH//////////5IftURC0YRpiYzFFwG4OaJSBJwRFM+Y6AQXfUx2JzZEopQQ8xxoC\n"
    "bvfKjNnmnSGNmBWFNvkvihun8Jq2tqjhIvJC2rsxLz9jeiYhdNMb9rWF/65begNb\n"
    "9vccNf2tRM/S10+SCL4lj/MklDMo9nItnuEAPlxQsd+CzG0kGw4q6c00ix/UfpJn\n"
    "r8GyrpHuUdbLDjF5qxBCqV3PapSDuEtLNrOGGqclXkwCeLo2BGUMEL4ZSC8jFxtn\n"
    "HfHPO5YMB0MBzZPB0XYD0Ufa4q74N6YpZO8V5ftKrAuMHMqkvnVKtXKK6RMMTH0C\n"
    "iAq5Ry1FVlU0f/////////8DggEFAAKCAQAHGSWjBY8NewMVMnOljs5aqYYeMy2w\n"
    "w1DTI57DptvjWGRlyppwRUmpWKHWzn6dlgZ47LXknpT1ERN9YWHyFHByVzjZJRBc\n"
    "ThWKjbxJGpvdUVJWJ3Zt8RHTfx0s3FJ7aO23WcPsuj+3canlOmyAz5qY/ARwy7Ft\n"
    "2KqE18J2BFX3Gc8CRT13tr+wNQhqsJnSIYnR/7kjkKuU/Q3DgVEr8l9v/4/mmWva\n"
    "+UgyXIEcGVzGGtVBvdBNtsQehEWlqAVj1o/ieb7vlR+Xa+ghzsA/D1gnKyMh4w1f\n"
    "Txyesz0/UPC0H3aS1/sjiecYTiyF6DgLv99kAc6dNcYT56uSn4ttuV/K\n"
    "-----END PUBLIC KEY-----\n";
static const char python_lab_key[] = "967568ea33ff3c4495e9602a19a6c64c437fb79075d75675244ff4fba3dcae68";

/* ---- helpers ---- */

/* The test's own DER writing: a failure is a bug in the test. */
#define W(acc, call) do { int n_ = (call); if (n_ < 0) abort(); (acc) += (size_t)n_; } while (0)
#define SEQUENCE (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)

static void load_params(struct sts_dh_params *params, const char *pem)
{
    sts_dh_params_init(params);
    if (sts_dh_params_parse_pem(params, pem, strlen(pem)) != 0) {
        fprintf(stderr, "fixture parameters do not parse\n");
        exit(2);
    }
}

static int mpi_is_hex(const mbedtls_mpi *x, const char *hex)
{
    mbedtls_mpi t;
    mbedtls_mpi_init(&t);
    int eq = mbedtls_mpi_read_string(&t, 16, hex) == 0 && mbedtls_mpi_cmp_mpi(x, &t) == 0;
    mbedtls_mpi_free(&t);
    return eq;
}

/* A key pair from a known private value, computed by the test itself. */
static void key_from_x(struct sts_dh_key *key, const struct sts_dh_params *params, const mbedtls_mpi *x)
{
    CHECK(mbedtls_mpi_copy(&key->pub.params.p, &params->p) == 0);
    CHECK(mbedtls_mpi_copy(&key->pub.params.g, &params->g) == 0);
    CHECK(mbedtls_mpi_copy(&key->x, x) == 0);
    CHECK(mbedtls_mpi_exp_mod(&key->pub.y, &params->g, x, &params->p, NULL) == 0);
}

/* The lab key straight from mbedtls's HKDF, independent of crypto/hash.h. */
static void reference_lab_key(uint8_t out[32], const uint8_t *secret, size_t len)
{
    static const uint8_t zero = 0;
    CHECK(mbedtls_hkdf(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), &zero, 1, secret, len,
                       &zero, 1, out, 32) == 0);
}

/* PEM around DER, through mbedtls_pem; the text lives until the next call. */
static const char *pem_of(const unsigned char *der, size_t len, const char *label)
{
    static unsigned char text[4096];
    char header[64], footer[64];
    size_t n;
    snprintf(header, sizeof header, "-----BEGIN %s-----\n", label);
    snprintf(footer, sizeof footer, "-----END %s-----\n", label);
    if (mbedtls_pem_write_buffer(header, footer, der, len, text, sizeof text, &n) != 0) abort();
    return (const char *)text;
}

static const char *params_pem(const mbedtls_mpi *p, const mbedtls_mpi *g)
{
    unsigned char der[1200], *c = der + sizeof der;
    size_t len = 0;
    W(len, mbedtls_asn1_write_mpi(&c, der, g));
    W(len, mbedtls_asn1_write_mpi(&c, der, p));
    W(len, mbedtls_asn1_write_len(&c, der, len));
    W(len, mbedtls_asn1_write_tag(&c, der, SEQUENCE));
    return pem_of(c, len, "DH PARAMETERS");
}

/* ---- parameters ---- */

struct group_fixture {
    const char *name, *pem;
    size_t len;
    const char *second_word; /* RFC 3526 primes continue with pi, RFC 7919 ones with e */
};

static void test_rfc_groups(void)
{
    static const struct group_fixture groups[] = {
        { "modp_2048", modp2048_pem, 256, "C90FDAA22168C234" },
        { "modp_4096", modp4096_pem, 512, "C90FDAA22168C234" },
        { "ffdhe2048", ffdhe2048_pem, 256, "ADF85458A2BB4A9A" },
        { "ffdhe4096", ffdhe4096_pem, 512, "ADF85458A2BB4A9A" },
    };
    static const uint8_t ones[8] = { 255, 255, 255, 255, 255, 255, 255, 255 };

    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        const struct group_fixture *f = &groups[i];
        struct sts_dh_params params;
        uint8_t p[512], word[8];
        sts_dh_params_init(&params);
        CHECK(sts_dh_params_parse_pem(&params, f->pem, strlen(f->pem)) == 0);
        CHECK(sts_dh_params_len(&params) == f->len);
        CHECK(mbedtls_mpi_cmp_int(&params.g, 2) == 0);
        /* Both RFCs fix the top and bottom 64 bits of their primes to 1. */
        CHECK(mbedtls_mpi_write_binary(&params.p, p, f->len) == 0);
        unhex(word, sizeof word, f->second_word);
        CHECK_MEM(p, ones, 8);
        CHECK_MEM(p + f->len - 8, ones, 8);
        CHECK_MEM(p + 8, word, 8);
        sts_dh_params_free(&params);
    }

    struct sts_dh_params params;
    load_params(&params, modp2048_pem);
    CHECK(mpi_is_hex(&params.p, rfc3526_group14_p));
    sts_dh_params_free(&params);
}

static void test_params_with_length(void)
{
    struct sts_dh_params params;
    sts_dh_params_init(&params);
    CHECK(sts_dh_params_parse_pem(&params, modp2048_with_length_pem, strlen(modp2048_with_length_pem)) == 0);
    CHECK(mpi_is_hex(&params.p, rfc3526_group14_p));
    CHECK(mbedtls_mpi_cmp_int(&params.g, 2) == 0);
    sts_dh_params_free(&params);
}

static int parse_params_rc(const char *pem, size_t len)
{
    struct sts_dh_params params;
    sts_dh_params_init(&params);
    int rc = sts_dh_params_parse_pem(&params, pem, len);
    sts_dh_params_free(&params);
    return rc;
}

static void test_params_refused(void)
{
    char text[1024];
    size_t n = strlen(modp2048_pem);

    CHECK(parse_params_rc(p1024_pem, strlen(p1024_pem)) == STS_ERR_KEY);
    CHECK(parse_params_rc(python_b_pem, strlen(python_b_pem)) == STS_ERR_PARSE);
    CHECK(parse_params_rc("", 0) == STS_ERR_PARSE);
    CHECK(parse_params_rc(modp2048_pem, (size_t)(strstr(modp2048_pem, "-----END") - modp2048_pem)) == STS_ERR_PARSE);
    snprintf(text, sizeof text, "junk\n%s", modp2048_pem);
    CHECK(parse_params_rc(text, strlen(text)) == STS_ERR_PARSE);
    snprintf(text, sizeof text, "%sjunk", modp2048_pem);
    CHECK(parse_params_rc(text, strlen(text)) == STS_ERR_PARSE);
    snprintf(text, sizeof text, "\n %s \r\n", modp2048_pem);
    CHECK(parse_params_rc(text, strlen(text)) == 0);
    CHECK(parse_params_rc(modp2048_pem, n - 1) == 0); /* no final newline */
    memcpy(text, modp2048_pem, n);
    text[40] = '*';
    CHECK(parse_params_rc(text, n) == STS_ERR_PARSE);
    text[40] = '\0';
    CHECK(parse_params_rc(text, n) == STS_ERR_PARSE);

    /* Groups built here, each with one fault. */
    struct sts_dh_params good;
    mbedtls_mpi p, g;
    load_params(&good, modp2048_pem);
    mbedtls_mpi_init(&p);
    mbedtls_mpi_init(&g);
    const char *pem;
    CHECK(mbedtls_mpi_copy(&p, &good.p) == 0);
    static const int bad_g[] = { 0, 1 };
    for (size_t i = 0; i < 2; i++) {
        CHECK(mbedtls_mpi_lset(&g, bad_g[i]) == 0);
        pem = params_pem(&p, &g);
        CHECK(parse_params_rc(pem, strlen(pem)) == STS_ERR_KEY);
    }
    CHECK(mbedtls_mpi_sub_int(&g, &p, 1) == 0); /* g = p-1: order 2 */
    pem = params_pem(&p, &g);
    CHECK(parse_params_rc(pem, strlen(pem)) == STS_ERR_KEY);
    CHECK(mbedtls_mpi_copy(&g, &p) == 0);
    pem = params_pem(&p, &g);
    CHECK(parse_params_rc(pem, strlen(pem)) == STS_ERR_KEY);
    CHECK(mbedtls_mpi_lset(&g, 5) == 0); /* control: any g in range */
    pem = params_pem(&p, &g);
    CHECK(parse_params_rc(pem, strlen(pem)) == 0);
    CHECK(mbedtls_mpi_add_int(&p, &p, 1) == 0); /* even "prime" */
    pem = params_pem(&p, &g);
    CHECK(parse_params_rc(pem, strlen(pem)) == STS_ERR_KEY);

    /* A key cannot be made in a group that was never checked. */
    struct sts_dh_key key;
    sts_dh_key_init(&key);
    CHECK(mbedtls_mpi_copy(&good.p, &p) == 0);
    CHECK(sts_dh_key_generate(&key, &good) == STS_ERR_KEY);
    sts_dh_key_free(&key);

    mbedtls_mpi_free(&p);
    mbedtls_mpi_free(&g);
    sts_dh_params_free(&good);
}

/* ---- public keys ---- */

static int parse_pem_rc(const char *pem, size_t len)
{
    struct sts_dh_public pub;
    sts_dh_public_init(&pub);
    int rc = sts_dh_public_parse_pem(&pub, pem, len);
    sts_dh_public_free(&pub);
    return rc;
}

static size_t slurp(const char *path, char *buf, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, max, f);
    fclose(f);
    return n < max ? n : 0;
}

/* The course's published key: it parses, and writing it back gives the very
 * same bytes, so our writer matches Python's. */
static void test_example_key(void)
{
    static char text[8192], crlf[8192];
    size_t n = slurp(EXAMPLE_KEY, text, sizeof text);
    if (n == 0) {
        printf("SKIP example public key: %s not found\n", EXAMPLE_KEY);
        return;
    }
    struct sts_dh_public pub;
    char *pem = NULL;
    size_t len = 0;

    sts_dh_public_init(&pub);
    CHECK(sts_dh_public_parse_pem(&pub, text, n) == 0);
    CHECK(mbedtls_mpi_bitlen(&pub.params.p) == 4096);
    CHECK(mbedtls_mpi_cmp_int(&pub.params.g, 2) == 0);
    CHECK(sts_dh_public_write_pem(&pub, &pem, &len) == 0);
    CHECK(pem && len == n && strlen(pem) == len && memcmp(pem, text, n) == 0);
    free(pem);
    sts_dh_public_free(&pub);

    CHECK(parse_pem_rc(text, n - 1) == 0); /* no final newline */
    size_t m = 0;
    for (size_t i = 0; i < n && m + 2 < sizeof crlf; i++) {
        if (text[i] == '\n') crlf[m++] = '\r';
        crlf[m++] = text[i];
    }
    CHECK(parse_pem_rc(crlf, m) == 0);
}

/* Python's own X9.42 key, and the lab key Python derived with it. */
static void test_python_vector(void)
{
    struct sts_dh_params params;
    struct sts_dh_key a;
    struct sts_dh_public b;
    mbedtls_mpi x;
    uint8_t secret[256], key[32], want[32], ref[32];

    load_params(&params, modp2048_pem);
    sts_dh_key_init(&a);
    sts_dh_public_init(&b);
    mbedtls_mpi_init(&x);
    CHECK(mbedtls_mpi_read_string(&x, 16, python_a_x) == 0);
    key_from_x(&a, &params, &x);
    CHECK(sts_dh_public_parse_pem(&b, python_b_pem, strlen(python_b_pem)) == 0);
    CHECK(sts_dh_derive(&a, &b, secret, sizeof secret) == 0);
    CHECK(secret[0] == 0x00);
    CHECK(sts_dh_derive_lab_key(&a, &b, key) == 0);
    unhex(want, sizeof want, python_lab_key);
    CHECK_MEM(key, want, 32);
    reference_lab_key(ref, secret, sizeof secret);
    CHECK_MEM(ref, want, 32);
    mbedtls_mpi_free(&x);
    sts_dh_public_free(&b);
    sts_dh_key_free(&a);
    sts_dh_params_free(&params);
}

static void test_agreement(void)
{
    struct sts_dh_params params;
    struct sts_dh_key a, b;
    struct sts_dh_public a_seen;
    uint8_t sa[256], sb[256], sc[256], ka[32], kb[32];
    char *pem = NULL;
    size_t len;

    load_params(&params, modp2048_pem);
    sts_dh_key_init(&a);
    sts_dh_key_init(&b);
    sts_dh_public_init(&a_seen);
    CHECK(sts_dh_key_generate(&a, &params) == 0);
    CHECK(sts_dh_key_generate(&b, &params) == 0);
    CHECK(mbedtls_mpi_cmp_mpi(&a.x, &b.x) != 0);
    CHECK(sts_dh_derive(&a, &b.pub, sa, sizeof sa) == 0);
    CHECK(sts_dh_derive(&b, &a.pub, sb, sizeof sb) == 0);
    CHECK_MEM(sa, sb, sizeof sa);
    CHECK(sts_dh_derive_lab_key(&a, &b.pub, ka) == 0);
    CHECK(sts_dh_derive_lab_key(&b, &a.pub, kb) == 0);
    CHECK_MEM(ka, kb, 32);

    /* The same through the wire form. */
    CHECK(sts_dh_public_write_pem(&a.pub, &pem, &len) == 0);
    CHECK(sts_dh_public_parse_pem(&a_seen, pem, len) == 0);
    CHECK(mbedtls_mpi_cmp_mpi(&a_seen.y, &a.pub.y) == 0);
    CHECK(sts_dh_derive(&b, &a_seen, sc, sizeof sc) == 0);
    CHECK_MEM(sc, sa, sizeof sa);
    CHECK(sts_dh_derive(&b, &a_seen, sc, sizeof sc - 1) == STS_ERR_INVALID);

    free(pem);
    sts_dh_public_free(&a_seen);
    sts_dh_key_free(&b);
    sts_dh_key_free(&a);
    sts_dh_params_free(&params);
}

/* About 1 secret in 256 has a zero top byte. Rather than make hundreds of
 * key pairs, step B's private value: (g^(xb+i))^xa = s * ya^i, one modular
 * multiplication per try, until the secret drops below 2^2040. Then both
 * sides must derive the same padded secret and the same key. */
static void test_leading_zero(void)
{
    struct sts_dh_params params;
    struct sts_dh_key a, b;
    mbedtls_mpi s;
    uint8_t sa[256], sb[256], expect[256], ka[32], kb[32], ref[32];
    int steps = 0;

    load_params(&params, modp2048_pem);
    sts_dh_key_init(&a);
    sts_dh_key_init(&b);
    mbedtls_mpi_init(&s);
    CHECK(sts_dh_key_generate(&a, &params) == 0);
    CHECK(sts_dh_key_generate(&b, &params) == 0);
    CHECK(sts_dh_derive(&a, &b.pub, sa, sizeof sa) == 0);
    CHECK(mbedtls_mpi_read_binary(&s, sa, sizeof sa) == 0);
    int ok = 1;
    while (ok && mbedtls_mpi_bitlen(&s) > 2040 && steps < 20000) {
        ok = mbedtls_mpi_mul_mpi(&s, &s, &a.pub.y) == 0 && mbedtls_mpi_mod_mpi(&s, &s, &params.p) == 0;
        steps++;
    }
    CHECK(ok);
    printf("leading zero byte after %d steps\n", steps);
    CHECK(mbedtls_mpi_bitlen(&s) <= 2040);
    /* xb + steps stays below p-1 but for a chance of about 2^-2030. */
    CHECK(mbedtls_mpi_add_int(&b.x, &b.x, steps) == 0);
    CHECK(mbedtls_mpi_exp_mod(&b.pub.y, &params.g, &b.x, &params.p, NULL) == 0);

    CHECK(sts_dh_derive(&a, &b.pub, sa, sizeof sa) == 0);
    CHECK(sts_dh_derive(&b, &a.pub, sb, sizeof sb) == 0);
    CHECK(mbedtls_mpi_write_binary(&s, expect, sizeof expect) == 0);
    CHECK(sa[0] == 0 && expect[0] == 0);
    CHECK_MEM(sa, expect, sizeof sa);
    CHECK_MEM(sb, expect, sizeof sb);
    CHECK(sts_dh_derive_lab_key(&a, &b.pub, ka) == 0);
    CHECK(sts_dh_derive_lab_key(&b, &a.pub, kb) == 0);
    CHECK_MEM(ka, kb, 32);
    reference_lab_key(ref, expect, sizeof expect);
    CHECK_MEM(ka, ref, 32);
    /* Hashing the secret without its zero byte gives another key. */
    reference_lab_key(ref, expect + 1, sizeof expect - 1);
    CHECK(memcmp(ka, ref, 32) != 0);

    mbedtls_mpi_free(&s);
    sts_dh_key_free(&b);
    sts_dh_key_free(&a);
    sts_dh_params_free(&params);
}

/* 0, 1, p-1 and p (and above) are refused, by derive and by the parser. */
static void test_peer_values(void)
{
    struct sts_dh_params params;
    struct sts_dh_key a;
    struct sts_dh_public peer;
    uint8_t secret[256], zeros[256] = { 0 };
    char *pem = NULL;
    size_t len;

    load_params(&params, modp2048_pem);
    sts_dh_key_init(&a);
    sts_dh_public_init(&peer);
    CHECK(sts_dh_key_generate(&a, &params) == 0);
    CHECK(mbedtls_mpi_copy(&peer.params.p, &params.p) == 0);
    CHECK(mbedtls_mpi_copy(&peer.params.g, &params.g) == 0);

    /* y = offset, or p + offset: 0, 1, p-1, p, p+1. */
    static const struct { int plus_p, offset; } bad[] = { { 0, 0 }, { 0, 1 }, { 1, -1 }, { 1, 0 }, { 1, 1 } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(mbedtls_mpi_lset(&peer.y, bad[i].offset) == 0);
        if (bad[i].plus_p) CHECK(mbedtls_mpi_add_mpi(&peer.y, &peer.y, &params.p) == 0);
        memset(secret, 0xaa, sizeof secret);
        CHECK(sts_dh_derive(&a, &peer, secret, sizeof secret) == STS_ERR_KEY);
        CHECK_MEM(secret, zeros, sizeof secret);
        CHECK(sts_dh_public_write_pem(&peer, &pem, &len) == 0);
        CHECK(parse_pem_rc(pem, len) == STS_ERR_KEY);
        free(pem);
    }
    /* The edges of the range are fine. */
    CHECK(mbedtls_mpi_lset(&peer.y, 2) == 0);
    CHECK(sts_dh_derive(&a, &peer, secret, sizeof secret) == 0);
    CHECK(mbedtls_mpi_sub_int(&peer.y, &params.p, 2) == 0);
    CHECK(sts_dh_derive(&a, &peer, secret, sizeof secret) == 0);

    sts_dh_public_free(&peer);
    sts_dh_key_free(&a);
    sts_dh_params_free(&params);
}

static void test_group_mismatch(void)
{
    struct sts_dh_params modp, ffdhe;
    struct sts_dh_key a, b;
    uint8_t secret[256];

    load_params(&modp, modp2048_pem);
    load_params(&ffdhe, ffdhe2048_pem);
    sts_dh_key_init(&a);
    sts_dh_key_init(&b);
    CHECK(sts_dh_key_generate(&a, &modp) == 0);
    CHECK(sts_dh_key_generate(&b, &ffdhe) == 0);
    CHECK(sts_dh_derive(&a, &b.pub, secret, sizeof secret) == STS_ERR_KEY);
    /* Same p, another g. */
    CHECK(mbedtls_mpi_lset(&modp.g, 5) == 0);
    CHECK(sts_dh_key_generate(&b, &modp) == 0);
    CHECK(sts_dh_derive(&a, &b.pub, secret, sizeof secret) == STS_ERR_KEY);
    sts_dh_key_free(&b);
    sts_dh_key_free(&a);
    sts_dh_params_free(&ffdhe);
    sts_dh_params_free(&modp);
}

/* ---- malformed DER ---- */

enum variant {
    PLAIN, WITH_LENGTH, X942, X942_BAD_Q, PADDED_G, UNUSED_BITS, NEGATIVE_Y, LONG_LENGTH,
    TRAILING_BYTE, RSA_OID, VARIANTS
};

/* An SPKI of y = p-2 in group 14, written here with one deliberate quirk. */
static size_t build_spki(unsigned char *buf, size_t size, const struct sts_dh_params *grp,
                         enum variant v, unsigned char **der)
{
    static const unsigned char pkcs3[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x03, 0x01 };
    static const unsigned char x942[] = { 0x2a, 0x86, 0x48, 0xce, 0x3e, 0x02, 0x01 };
    static const unsigned char rsa[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };
    unsigned char *c = buf + size, y[512];
    size_t trail = 0, bits = 0, par = 0, all = 0, plen = sts_dh_params_len(grp);
    mbedtls_mpi t;
    mbedtls_mpi_init(&t);

    if (v == TRAILING_BYTE) W(trail, mbedtls_asn1_write_raw_buffer(&c, buf, (const unsigned char *)"", 1));
    if (mbedtls_mpi_sub_int(&t, &grp->p, 2) != 0 || mbedtls_mpi_write_binary(&t, y, plen) != 0) abort();
    W(bits, mbedtls_asn1_write_raw_buffer(&c, buf, y, plen)); /* top byte 0xff */
    if (v != NEGATIVE_Y) W(bits, mbedtls_asn1_write_raw_buffer(&c, buf, (const unsigned char *)"", 1));
    W(bits, mbedtls_asn1_write_len(&c, buf, bits));
    W(bits, mbedtls_asn1_write_tag(&c, buf, MBEDTLS_ASN1_INTEGER));
    W(bits, mbedtls_asn1_write_raw_buffer(&c, buf, (const unsigned char *)(v == UNUSED_BITS ? "\1" : ""), 1));
    W(bits, mbedtls_asn1_write_len(&c, buf, bits));
    W(bits, mbedtls_asn1_write_tag(&c, buf, MBEDTLS_ASN1_BIT_STRING));

    if (v == WITH_LENGTH) W(par, mbedtls_asn1_write_int(&c, buf, 224));
    if (v == X942 || v == X942_BAD_Q) {
        if (mbedtls_mpi_sub_int(&t, &grp->p, 1) != 0 || mbedtls_mpi_shift_r(&t, 1) != 0) abort();
        if (v == X942_BAD_Q && mbedtls_mpi_add_int(&t, &t, 2) != 0) abort();
        W(par, mbedtls_asn1_write_mpi(&c, buf, &t));
    }
    if (v == PADDED_G) W(par, mbedtls_asn1_write_raw_buffer(&c, buf, (const unsigned char *)"\2\0\2", 3));
    else W(par, mbedtls_asn1_write_mpi(&c, buf, &grp->g));
    if (v == PADDED_G) W(par, mbedtls_asn1_write_raw_buffer(&c, buf, (const unsigned char *)"\0", 1));
    W(par, mbedtls_asn1_write_mpi(&c, buf, &grp->p));
    W(par, mbedtls_asn1_write_len(&c, buf, par));
    W(par, mbedtls_asn1_write_tag(&c, buf, SEQUENCE));
    const unsigned char *oid = v == RSA_OID ? rsa : v == X942 || v == X942_BAD_Q ? x942 : pkcs3;
    size_t oidlen = oid == x942 ? sizeof x942 : sizeof pkcs3;
    W(all, mbedtls_asn1_write_algorithm_identifier(&c, buf, (const char *)oid, oidlen, par));
    all += bits;
    if (v == LONG_LENGTH) {
        const unsigned char padded[4] = { 0x83, 0, (unsigned char)(all >> 8), (unsigned char)all };
        W(all, mbedtls_asn1_write_raw_buffer(&c, buf, padded, 4));
    } else {
        W(all, mbedtls_asn1_write_len(&c, buf, all));
    }
    W(all, mbedtls_asn1_write_tag(&c, buf, SEQUENCE));
    mbedtls_mpi_free(&t);
    *der = c;
    return all + trail;
}

static int parse_der_rc(const uint8_t *der, size_t len)
{
    struct sts_dh_public pub;
    sts_dh_public_init(&pub);
    int rc = sts_dh_public_parse_der(&pub, der, len);
    sts_dh_public_free(&pub);
    return rc;
}

static void test_malformed(void)
{
    static const int expect[VARIANTS] = {
        [PLAIN] = 0, [WITH_LENGTH] = 0, [X942] = 0, [X942_BAD_Q] = STS_ERR_KEY,
        [PADDED_G] = STS_ERR_INVALID, [UNUSED_BITS] = STS_ERR_INVALID,
        [NEGATIVE_Y] = STS_ERR_INVALID, [LONG_LENGTH] = STS_ERR_INVALID,
        [TRAILING_BYTE] = STS_ERR_INVALID, [RSA_OID] = STS_ERR_UNSUPPORTED,
    };
    struct sts_dh_params params;
    unsigned char buf[2048], *der;

    load_params(&params, modp2048_pem);
    for (int v = 0; v < VARIANTS; v++) {
        size_t len = build_spki(buf, sizeof buf, &params, (enum variant)v, &der);
        int rc = parse_der_rc(der, len);
        if (rc != expect[v]) fprintf(stderr, "variant %d: got %d, want %d\n", v, rc, expect[v]);
        CHECK(rc == expect[v]);
        const char *pem = pem_of(der, len, "PUBLIC KEY");
        CHECK(parse_pem_rc(pem, strlen(pem)) == expect[v]);
    }

    /* Every proper prefix of a good key is refused. */
    size_t len = build_spki(buf, sizeof buf, &params, PLAIN, &der);
    int refused = 0;
    for (size_t n = 0; n < len; n++) refused += parse_der_rc(der, n) < 0;
    CHECK(refused == (int)len);

    /* PEM framing around a good key. */
    char text[2048];
    const char *pem = pem_of(der, len, "PUBLIC KEY");
    size_t n = strlen(pem);
    CHECK(parse_pem_rc(pem, n) == 0);
    CHECK(parse_pem_rc(modp2048_pem, strlen(modp2048_pem)) == STS_ERR_PARSE);
    CHECK(parse_pem_rc(pem + 1, n - 1) == STS_ERR_PARSE);
    CHECK(parse_pem_rc(pem, (size_t)(strstr(pem, "-----END") - pem)) == STS_ERR_PARSE);
    snprintf(text, sizeof text, "x%s", pem);
    CHECK(parse_pem_rc(text, strlen(text)) == STS_ERR_PARSE);
    snprintf(text, sizeof text, "%s-", pem);
    CHECK(parse_pem_rc(text, strlen(text)) == STS_ERR_PARSE);
    snprintf(text, sizeof text, "\t\n%s\n\n", pem);
    CHECK(parse_pem_rc(text, strlen(text)) == 0);
    memcpy(text, pem, n);
    text[30] = '*';
    CHECK(parse_pem_rc(text, n) == STS_ERR_PARSE);
    text[30] = '\0';
    CHECK(parse_pem_rc(text, n) == STS_ERR_PARSE);

    sts_dh_params_free(&params);
}

int main(void)
{
    test_rfc_groups();
    test_params_with_length();
    test_params_refused();
    test_example_key();
    test_python_vector();
    test_agreement();
    test_leading_zero();
    test_peer_values();
    test_group_mismatch();
    test_malformed();
    return unit_done();
}
