#include "crypto/dh.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "util/error.h"

#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/base64.h>
#include <mbedtls/pem.h>
#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEQUENCE (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)

/* 1.2.840.113549.1.3.1: PKCS#3 dhKeyAgreement, what we write. */
static const unsigned char dh_key_agreement_oid[] = {
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x03, 0x01,
};
/* 1.2.840.10046.2.1: X9.42 dhpublicnumber, what OpenSSL 3 (so Python) writes
 * when it recognises the prime as a named group, RFC 3526 or 7919. */
static const unsigned char dh_public_number_oid[] = {
    0x2a, 0x86, 0x48, 0xce, 0x3e, 0x02, 0x01,
};

void sts_dh_params_init(struct sts_dh_params *params)
{
    mbedtls_mpi_init(&params->p);
    mbedtls_mpi_init(&params->g);
}

void sts_dh_params_free(struct sts_dh_params *params)
{
    mbedtls_mpi_free(&params->p);
    mbedtls_mpi_free(&params->g);
}

void sts_dh_public_init(struct sts_dh_public *pub)
{
    sts_dh_params_init(&pub->params);
    mbedtls_mpi_init(&pub->y);
}

void sts_dh_public_free(struct sts_dh_public *pub)
{
    sts_dh_params_free(&pub->params);
    mbedtls_mpi_free(&pub->y);
}

void sts_dh_key_init(struct sts_dh_key *key)
{
    sts_dh_public_init(&key->pub);
    mbedtls_mpi_init(&key->x);
}

void sts_dh_key_free(struct sts_dh_key *key)
{
    sts_dh_public_free(&key->pub);
    mbedtls_mpi_free(&key->x); /* mbedtls_mpi_free wipes the limbs */
}

size_t sts_dh_params_len(const struct sts_dh_params *params)
{
    return mbedtls_mpi_size(&params->p);
}

static int mpi_error(int rc)
{
    if (rc == 0) return 0;
    return rc == MBEDTLS_ERR_MPI_ALLOC_FAILED ? STS_ERR_NOMEM : STS_ERR_CRYPTO;
}

/* ---- checks ---- */

/* 1 < v < p-1: rules out 0, 1 and p-1, the members of the subgroups of
 * order 1 and 2 that would pin the shared secret. */
static int check_range(const mbedtls_mpi *v, const mbedtls_mpi *p)
{
    mbedtls_mpi top;
    mbedtls_mpi_init(&top);
    int rc = mpi_error(mbedtls_mpi_sub_int(&top, p, 1));
    if (rc == 0 && (mbedtls_mpi_cmp_int(v, 1) <= 0 || mbedtls_mpi_cmp_mpi(v, &top) >= 0))
        rc = STS_ERR_KEY;
    mbedtls_mpi_free(&top);
    return rc;
}

static int check_group(const struct sts_dh_params *params)
{
    size_t bits = mbedtls_mpi_bitlen(&params->p);
    if (bits < STS_DH_MIN_BITS || bits > STS_DH_MAX_BITS || mbedtls_mpi_get_bit(&params->p, 0) == 0)
        return STS_ERR_KEY;
    return check_range(&params->g, &params->p);
}

static int same_group(const struct sts_dh_params *a, const struct sts_dh_params *b)
{
    return mbedtls_mpi_cmp_mpi(&a->p, &b->p) == 0 && mbedtls_mpi_cmp_mpi(&a->g, &b->g) == 0;
}

/* ---- DER reading: strict, every length checked against its container ---- */

static size_t der_len_size(size_t len)
{
    size_t n = 1;
    if (len >= 0x80)
        for (; len > 0; len >>= 8) n++;
    return n;
}

/* Reads a tag and its length, which must be in DER's shortest form (mbedtls
 * also takes padded forms such as 81 05); leaves *p at the contents. */
static int der_header(unsigned char **p, const unsigned char *end, int tag, size_t *len)
{
    const unsigned char *start = *p;
    if (mbedtls_asn1_get_tag(p, end, len, tag) != 0) return STS_ERR_INVALID;
    return (size_t)(*p - start) == 1 + der_len_size(*len) ? 0 : STS_ERR_INVALID;
}

/* A non-negative INTEGER in its shortest encoding, no longer than a DH value
 * can be. x NULL: check and skip it. */
static int der_uint(unsigned char **p, const unsigned char *end, mbedtls_mpi *x)
{
    size_t len;
    int rc = der_header(p, end, MBEDTLS_ASN1_INTEGER, &len);
    if (rc != 0) return rc;
    const unsigned char *c = *p;
    if (len == 0 || (c[0] & 0x80) || (len > 1 && c[0] == 0 && !(c[1] & 0x80)))
        return STS_ERR_INVALID;
    if (len > STS_DH_MAX_LEN + 1) return STS_ERR_KEY;
    *p += len;
    return x ? mpi_error(mbedtls_mpi_read_binary(x, c, len)) : 0;
}

/* X9.42's q, the order of g's subgroup: it must divide p - 1. */
static int der_subgroup_order(unsigned char **p, const unsigned char *end, const mbedtls_mpi *prime)
{
    mbedtls_mpi q, r;
    mbedtls_mpi_init(&q);
    mbedtls_mpi_init(&r);
    int rc = der_uint(p, end, &q);
    if (rc == 0 && mbedtls_mpi_cmp_int(&q, 1) <= 0) rc = STS_ERR_KEY;
    if (rc == 0) rc = mpi_error(mbedtls_mpi_sub_int(&r, prime, 1));
    if (rc == 0) rc = mpi_error(mbedtls_mpi_mod_mpi(&r, &r, &q));
    if (rc == 0 && mbedtls_mpi_cmp_int(&r, 0) != 0) rc = STS_ERR_KEY;
    mbedtls_mpi_free(&q);
    mbedtls_mpi_free(&r);
    return rc;
}

enum group_form { PKCS3, X942 };

/* PKCS#3 DHParameter ::= SEQUENCE { prime, base, privateValueLength OPTIONAL }
 * X9.42 DomainParameters ::= SEQUENCE { p, g, q, j OPTIONAL, validationParms OPTIONAL }
 * The trailing INTEGER (OpenSSL writes a length for some groups) is checked
 * and ignored: ours are drawn from the whole range anyway. validationParms,
 * which only parameter generators need, is refused. */
static int der_group(unsigned char **p, const unsigned char *end, struct sts_dh_params *params,
                     enum group_form form)
{
    size_t len;
    int rc = der_header(p, end, SEQUENCE, &len);
    if (rc != 0) return rc;
    const unsigned char *seq_end = *p + len;
    rc = der_uint(p, seq_end, &params->p);
    if (rc == 0) rc = der_uint(p, seq_end, &params->g);
    if (rc == 0 && form == X942) rc = der_subgroup_order(p, seq_end, &params->p);
    if (rc == 0 && *p < seq_end) rc = der_uint(p, seq_end, NULL);
    if (rc == 0 && *p != seq_end) rc = STS_ERR_INVALID;
    return rc;
}

static int oid_is(const unsigned char *oid, size_t len, const unsigned char *want, size_t wantlen)
{
    return len == wantlen && memcmp(oid, want, len) == 0;
}

/* AlgorithmIdentifier ::= SEQUENCE { OID, parameters } for either DH OID. */
static int der_algorithm(unsigned char **p, const unsigned char *end, struct sts_dh_params *params)
{
    size_t len, oidlen;
    int rc = der_header(p, end, SEQUENCE, &len);
    if (rc != 0) return rc;
    const unsigned char *alg_end = *p + len;
    rc = der_header(p, alg_end, MBEDTLS_ASN1_OID, &oidlen);
    if (rc != 0) return rc;
    const unsigned char *oid = *p;
    *p += oidlen;
    if (oid_is(oid, oidlen, dh_key_agreement_oid, sizeof dh_key_agreement_oid))
        rc = der_group(p, alg_end, params, PKCS3);
    else if (oid_is(oid, oidlen, dh_public_number_oid, sizeof dh_public_number_oid))
        rc = der_group(p, alg_end, params, X942);
    else
        rc = STS_ERR_UNSUPPORTED;
    if (rc == 0 && *p != alg_end) rc = STS_ERR_INVALID;
    return rc;
}

/* subjectPublicKey BIT STRING, no unused bits, holding INTEGER y. */
static int der_public_value(unsigned char **p, const unsigned char *end, mbedtls_mpi *y)
{
    size_t len;
    int rc = der_header(p, end, MBEDTLS_ASN1_BIT_STRING, &len);
    if (rc != 0) return rc;
    const unsigned char *bits_end = *p + len;
    if (len == 0 || **p != 0) return STS_ERR_INVALID;
    (*p)++;
    rc = der_uint(p, bits_end, y);
    if (rc == 0 && *p != bits_end) rc = STS_ERR_INVALID;
    return rc;
}

/* SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, BIT STRING },
 * filling the input exactly. */
static int der_spki(unsigned char *p, const unsigned char *end, struct sts_dh_public *pub)
{
    size_t len;
    int rc = der_header(&p, end, SEQUENCE, &len);
    if (rc == 0 && len != (size_t)(end - p)) rc = STS_ERR_INVALID;
    if (rc == 0) rc = der_algorithm(&p, end, &pub->params);
    if (rc == 0) rc = der_public_value(&p, end, &pub->y);
    if (rc == 0 && p != end) rc = STS_ERR_INVALID;
    return rc;
}

/* ---- PEM ---- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int only_space(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_space(s[i])) return 0;
    return 1;
}

/* Decodes a PEM document with the given label into ctx; only whitespace may
 * come before or after it. mbedtls_pem reads NUL-terminated text, hence the
 * copy. */
static int pem_decode(mbedtls_pem_context *ctx, const char *label, const char *pem, size_t len)
{
    char header[48], footer[48];
    size_t lead = 0, used = 0;

    snprintf(header, sizeof header, "-----BEGIN %s-----", label);
    snprintf(footer, sizeof footer, "-----END %s-----", label);
    while (lead < len && is_space(pem[lead])) lead++;
    if (len - lead < strlen(header) || memcmp(pem + lead, header, strlen(header)) != 0 ||
        memchr(pem, '\0', len))
        return STS_ERR_PARSE;
    char *text = malloc(len + 1);
    if (!text) return STS_ERR_NOMEM;
    memcpy(text, pem, len);
    text[len] = '\0';
    int rc = mbedtls_pem_read_buffer(ctx, header, footer, (const unsigned char *)text + lead,
                                     NULL, 0, &used);
    if (rc != 0) rc = rc == MBEDTLS_ERR_PEM_ALLOC_FAILED ? STS_ERR_NOMEM : STS_ERR_PARSE;
    else if (!only_space(text + lead + used, len - lead - used)) rc = STS_ERR_PARSE;
    free(text);
    return rc;
}

int sts_dh_params_parse_pem(struct sts_dh_params *params, const char *pem, size_t len)
{
    mbedtls_pem_context ctx;
    mbedtls_pem_init(&ctx);
    int rc = pem_decode(&ctx, "DH PARAMETERS", pem, len);
    if (rc == 0) {
        unsigned char *p = ctx.buf;
        rc = der_group(&p, ctx.buf + ctx.buflen, params, PKCS3);
        if (rc == 0 && p != ctx.buf + ctx.buflen) rc = STS_ERR_INVALID;
    }
    if (rc == 0) rc = check_group(params);
    mbedtls_pem_free(&ctx);
    return rc;
}

int sts_dh_public_parse_der(struct sts_dh_public *pub, const uint8_t *der, size_t len)
{
    /* mbedtls's reader takes a non-const pointer but does not write. */
    int rc = der_spki((unsigned char *)der, der + len, pub);
    if (rc == 0) rc = check_group(&pub->params);
    if (rc == 0) rc = check_range(&pub->y, &pub->params.p);
    return rc;
}

int sts_dh_public_parse_pem(struct sts_dh_public *pub, const char *pem, size_t len)
{
    mbedtls_pem_context ctx;
    mbedtls_pem_init(&ctx);
    int rc = pem_decode(&ctx, "PUBLIC KEY", pem, len);
    if (rc == 0) rc = sts_dh_public_parse_der(pub, ctx.buf, ctx.buflen);
    mbedtls_pem_free(&ctx);
    return rc;
}

/* ---- writing ---- */

/* SubjectPublicKeyInfo, written backwards to end at *c as mbedtls_asn1_write
 * does. Returns its length or an mbedtls error. */
static int der_write_spki(unsigned char **c, unsigned char *start, const struct sts_dh_public *pub)
{
    static const unsigned char no_unused_bits = 0;
    size_t len = 0, par = 0;
    int ret;

    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_mpi(c, start, &pub->y));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_raw_buffer(c, start, &no_unused_bits, 1));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(c, start, len));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(c, start, MBEDTLS_ASN1_BIT_STRING));

    MBEDTLS_ASN1_CHK_ADD(par, mbedtls_asn1_write_mpi(c, start, &pub->params.g));
    MBEDTLS_ASN1_CHK_ADD(par, mbedtls_asn1_write_mpi(c, start, &pub->params.p));
    MBEDTLS_ASN1_CHK_ADD(par, mbedtls_asn1_write_len(c, start, par));
    MBEDTLS_ASN1_CHK_ADD(par, mbedtls_asn1_write_tag(c, start, SEQUENCE));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_algorithm_identifier(
                                  c, start, (const char *)dh_key_agreement_oid,
                                  sizeof dh_key_agreement_oid, par));

    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(c, start, len));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(c, start, SEQUENCE));
    return (int)len;
}

static int pem_encode(const unsigned char *der, size_t derlen, char **pem, size_t *len)
{
    static const char header[] = "-----BEGIN PUBLIC KEY-----\n";
    static const char footer[] = "-----END PUBLIC KEY-----\n";
    size_t room = 0;

    /* The first call only measures. */
    if (mbedtls_pem_write_buffer(header, footer, der, derlen, NULL, 0, &room) !=
        MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL)
        return STS_ERR_CRYPTO;
    unsigned char *text = malloc(room);
    if (!text) return STS_ERR_NOMEM;
    size_t written = 0;
    if (mbedtls_pem_write_buffer(header, footer, der, derlen, text, room, &written) != 0) {
        free(text);
        return STS_ERR_CRYPTO;
    }
    *pem = (char *)text;
    *len = written - 1; /* mbedtls counts the NUL */
    return 0;
}

int sts_dh_public_write_pem(const struct sts_dh_public *pub, char **pem, size_t *len)
{
    /* Three INTEGERs of at most p's size with headers, and a few bytes of
     * structure and OID. */
    size_t size = 3 * (sts_dh_params_len(&pub->params) + 8) + 32;
    unsigned char *der = malloc(size);
    if (!der) return STS_ERR_NOMEM;
    unsigned char *c = der + size;
    int n = der_write_spki(&c, der, pub);
    int rc = n < 0 ? (n == MBEDTLS_ERR_ASN1_ALLOC_FAILED ? STS_ERR_NOMEM : STS_ERR_CRYPTO)
                   : pem_encode(c, (size_t)n, pem, len);
    free(der);
    return rc;
}

/* ---- key pairs and agreement ---- */

int sts_dh_key_generate(struct sts_dh_key *key, const struct sts_dh_params *params)
{
    const struct sts_dh_params *group = &key->pub.params;
    mbedtls_mpi top;
    mbedtls_mpi_init(&top);

    int rc = check_group(params);
    if (rc == 0) rc = mpi_error(mbedtls_mpi_copy(&key->pub.params.p, &params->p));
    if (rc == 0) rc = mpi_error(mbedtls_mpi_copy(&key->pub.params.g, &params->g));
    if (rc == 0) rc = mpi_error(mbedtls_mpi_sub_int(&top, &group->p, 1));
    /* mbedtls_mpi_random draws from [min, top): here [2, p-2]. */
    if (rc == 0) rc = mpi_error(mbedtls_mpi_random(&key->x, 2, &top, sts_random_rng, NULL));
    if (rc == 0) rc = mpi_error(mbedtls_mpi_exp_mod(&key->pub.y, &group->g, &key->x, &group->p, NULL));
    /* Only a generator of a tiny subgroup could land outside the range. */
    if (rc == 0) rc = check_range(&key->pub.y, &group->p);
    mbedtls_mpi_free(&top);
    return rc;
}

int sts_dh_derive(const struct sts_dh_key *key, const struct sts_dh_public *peer,
                  uint8_t *secret, size_t len)
{
    const struct sts_dh_params *group = &key->pub.params;
    mbedtls_mpi k;
    mbedtls_mpi_init(&k);

    int rc = len == sts_dh_params_len(group) ? 0 : STS_ERR_INVALID;
    if (rc == 0 && !same_group(group, &peer->params)) rc = STS_ERR_KEY;
    if (rc == 0) rc = check_range(&peer->y, &group->p);
    if (rc == 0) rc = mpi_error(mbedtls_mpi_exp_mod(&k, &peer->y, &key->x, &group->p, NULL));
    if (rc == 0 && mbedtls_mpi_cmp_int(&k, 1) == 0) rc = STS_ERR_KEY;
    /* write_binary right-aligns the value in len bytes: the padding that
     * Python applies, without which 1 secret in 256 would hash differently. */
    if (rc == 0) rc = mpi_error(mbedtls_mpi_write_binary(&k, secret, len));
    mbedtls_mpi_free(&k);
    if (rc != 0) mbedtls_platform_zeroize(secret, len);
    return rc;
}

int sts_dh_derive_lab_key(const struct sts_dh_key *key, const struct sts_dh_public *peer,
                          uint8_t out[STS_DH_LAB_KEY_LEN])
{
    static const uint8_t zero = 0;
    uint8_t secret[STS_DH_MAX_LEN];
    size_t len = sts_dh_params_len(&key->pub.params);

    int rc = len <= sizeof secret ? sts_dh_derive(key, peer, secret, len) : STS_ERR_KEY;
    if (rc == 0) rc = sts_hkdf(STS_SHA256, &zero, 1, secret, len, &zero, 1, out, STS_DH_LAB_KEY_LEN);
    mbedtls_platform_zeroize(secret, sizeof secret);
    if (rc != 0) mbedtls_platform_zeroize(out, STS_DH_LAB_KEY_LEN);
    return rc;
}
