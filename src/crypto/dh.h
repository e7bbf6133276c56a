/* Finite-field Diffie-Hellman for the lab protocol, interoperable with
 * Python's cryptography: parameters from PKCS#3 "DH PARAMETERS" PEM, public
 * keys as SubjectPublicKeyInfo "PUBLIC KEY" PEM with OID dhKeyAgreement
 * (1.2.840.113549.1.3.1), and a shared secret left-padded to the length of p.
 *
 * Parameters are the user's own configuration, so they are checked for size
 * and range but not for primality (a test of a 4096-bit prime costs seconds).
 * Any prime of STS_DH_MIN_BITS..STS_DH_MAX_BITS bits is accepted. */
#ifndef STS_CRYPTO_DH_H
#define STS_CRYPTO_DH_H

#include <mbedtls/bignum.h>
#include <stddef.h>
#include <stdint.h>

#define STS_DH_MIN_BITS 2048
#define STS_DH_MAX_BITS MBEDTLS_MPI_MAX_BITS /* 8192: mbedtls's limit */
#define STS_DH_MAX_LEN (STS_DH_MAX_BITS / 8)
#define STS_DH_LAB_KEY_LEN 32

struct sts_dh_params {
    mbedtls_mpi p, g;
};

/* A public key: the group it belongs to and y = g^x mod p. */
struct sts_dh_public {
    struct sts_dh_params params;
    mbedtls_mpi y;
};

/* A key pair; the public half is usable as a struct sts_dh_public. */
struct sts_dh_key {
    struct sts_dh_public pub;
    mbedtls_mpi x;
};

/* Every struct starts with init and ends with free (which wipes), whatever
 * happens between; free after init alone is fine. */
void sts_dh_params_init(struct sts_dh_params *params);
void sts_dh_params_free(struct sts_dh_params *params);
void sts_dh_public_init(struct sts_dh_public *pub);
void sts_dh_public_free(struct sts_dh_public *pub);
void sts_dh_key_init(struct sts_dh_key *key);
void sts_dh_key_free(struct sts_dh_key *key);

/* Reads len bytes of a "-----BEGIN DH PARAMETERS-----" PEM (DER DHParameter
 * SEQUENCE { p, g, [privateValueLength] }; the length is ignored). Returns 0,
 * STS_ERR_PARSE (not such a PEM), STS_ERR_INVALID (bad DER) or STS_ERR_KEY
 * (p under 2048 or over 8192 bits, even, or g outside [2, p-2]). */
int sts_dh_params_parse_pem(struct sts_dh_params *params, const char *pem, size_t len);

/* Byte length of p: the length of every shared secret in this group. */
size_t sts_dh_params_len(const struct sts_dh_params *params);

/* A fresh key pair in params' group (copied into key). The private value x
 * is uniform in [2, p-2], as OpenSSL draws it for parameters without q: a
 * short exponent would be safe only for a safe prime, which is not checked. */
int sts_dh_key_generate(struct sts_dh_key *key, const struct sts_dh_params *params);

/* Parses a public key: SubjectPublicKeyInfo in strict DER, or the same as a
 * "-----BEGIN PUBLIC KEY-----" PEM. Both DH forms are read: PKCS#3
 * dhKeyAgreement { p, g } and X9.42 dhpublicnumber { p, g, q }, which
 * OpenSSL 3 writes for RFC 3526/7919 primes (q must divide p-1; it is
 * otherwise unused). The group passes the checks of sts_dh_params_parse_pem
 * and 1 < y < p-1. Returns 0, STS_ERR_PARSE, STS_ERR_INVALID,
 * STS_ERR_UNSUPPORTED (another algorithm's key) or STS_ERR_KEY. */
int sts_dh_public_parse_der(struct sts_dh_public *pub, const uint8_t *der, size_t len);
int sts_dh_public_parse_pem(struct sts_dh_public *pub, const char *pem, size_t len);

/* Writes pub in the PKCS#3 form, as Python's cryptography does for a prime
 * it does not know (Python reads it for any prime): PEM, base64 lines of 64
 * chars, a newline after the footer. *pem is malloc'd, NUL-terminated, *len chars
 * long (without the NUL); the caller frees it. */
int sts_dh_public_write_pem(const struct sts_dh_public *pub, char **pem, size_t *len);

/* secret (exactly sts_dh_params_len bytes) = peer.y^x mod p, left-padded
 * with zeros to that length, as Python's cryptography returns it. The peer
 * must be in key's group (STS_ERR_KEY otherwise, and for an out-of-range
 * peer value or a secret of 1). On failure secret is zeroed. */
int sts_dh_derive(const struct sts_dh_key *key, const struct sts_dh_public *peer,
                  uint8_t *secret, size_t len);

/* The lab protocol's Fernet key: HKDF-SHA256(salt = 0x00, ikm = the padded
 * secret, info = 0x00, 32 bytes). */
int sts_dh_derive_lab_key(const struct sts_dh_key *key, const struct sts_dh_public *peer,
                          uint8_t out[STS_DH_LAB_KEY_LEN]);

#endif
