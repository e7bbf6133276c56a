/* The Noise engine: CipherState, SymmetricState and HandshakeState of spec
 * §5, driven by the token arrays of noise_patterns.c. */
#include "proto/noise.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/x25519.h"
#include "proto/noise_patterns.h"
#include "util/error.h"

#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>

#include <stdlib.h>
#include <string.h>

#define DHLEN STS_NOISE_KEY_LEN
#define MAX_NAME 255

/* Which keys a HandshakeState holds. */
enum {
    HAVE_E = 1,    /* e and e_pub */
    FIXED_E = 2,   /* e was given (test vectors): do not generate one */
    HAVE_RS = 4,   /* rs is the peer's static key, from a pre-message or read */
    PINNED_RS = 8, /* rs holds the key the peer must send */
    HAVE_RE = 16,
};

struct sts_noise_hs {
    struct noise_pattern pat;
    enum sts_hash_alg hash;
    size_t hashlen;
    int party; /* 0 initiator, 1 responder */
    size_t msg; /* the next message of the pattern */
    int failed, split;

    /* SymmetricState */
    uint8_t ck[STS_HASH_MAX_LEN], h[STS_HASH_MAX_LEN];
    struct sts_noise_cipher cs;

    unsigned have;
    uint8_t s[DHLEN], s_pub[DHLEN], e[DHLEN], e_pub[DHLEN], rs[DHLEN], re[DHLEN];
    uint8_t psks[NOISE_MAX_PSKS][STS_KEY_LEN];
    size_t next_psk;
};

/* ---- CipherState (§5.1) ---- */

/* ChaChaPoly: 32 zero bits, then n little-endian; AESGCM: then n big-endian. */
static void nonce_bytes(uint8_t out[STS_AEAD_NONCE_LEN], int alg, uint64_t n)
{
    memset(out, 0, 4);
    for (int i = 0; i < 8; i++) {
        uint8_t byte = (uint8_t)(n >> (8 * i));
        if (alg == STS_AEAD_AESGCM) out[STS_AEAD_NONCE_LEN - 1 - i] = byte;
        else out[4 + i] = byte;
    }
}

static int seal_at(const struct sts_noise_cipher *cs, uint64_t n, const uint8_t *ad,
                   size_t adlen, const uint8_t *pt, size_t len, uint8_t *out)
{
    uint8_t nonce[STS_AEAD_NONCE_LEN];
    nonce_bytes(nonce, cs->alg, n);
    return sts_aead_seal((enum sts_aead_alg)cs->alg, cs->k, nonce, ad, adlen, pt, len, out);
}

int sts_noise_encrypt_at(const struct sts_noise_cipher *cs, uint64_t n,
                         const uint8_t *ad, size_t adlen,
                         const uint8_t *pt, size_t len, uint8_t *out)
{
    if (!cs->has_key) return STS_ERR_STATE;
    if (n == UINT64_MAX || len > STS_NOISE_MAX_MSG - STS_NOISE_TAG_LEN) return STS_ERR_TOO_BIG;
    return seal_at(cs, n, ad, adlen, pt, len, out);
}

int sts_noise_decrypt_at(const struct sts_noise_cipher *cs, uint64_t n,
                         const uint8_t *ad, size_t adlen,
                         const uint8_t *ct, size_t len, uint8_t *out)
{
    uint8_t nonce[STS_AEAD_NONCE_LEN];

    if (!cs->has_key) return STS_ERR_STATE;
    if (n == UINT64_MAX || len > STS_NOISE_MAX_MSG) return STS_ERR_TOO_BIG;
    nonce_bytes(nonce, cs->alg, n);
    return sts_aead_open((enum sts_aead_alg)cs->alg, cs->k, nonce, ad, adlen, ct, len, out);
}

int sts_noise_encrypt(struct sts_noise_cipher *cs, const uint8_t *ad, size_t adlen,
                      const uint8_t *pt, size_t len, uint8_t *out)
{
    int err = sts_noise_encrypt_at(cs, cs->n, ad, adlen, pt, len, out);
    if (err == 0) cs->n++;
    return err;
}

int sts_noise_decrypt(struct sts_noise_cipher *cs, const uint8_t *ad, size_t adlen,
                      const uint8_t *ct, size_t len, uint8_t *out)
{
    int err = sts_noise_decrypt_at(cs, cs->n, ad, adlen, ct, len, out);
    if (err == 0) cs->n++;
    return err;
}

int sts_noise_rekey(struct sts_noise_cipher *cs)
{
    static const uint8_t zeros[STS_KEY_LEN];
    uint8_t out[STS_KEY_LEN + STS_NOISE_TAG_LEN];
    int err;

    if (!cs->has_key) return STS_ERR_STATE;
    err = seal_at(cs, UINT64_MAX, NULL, 0, zeros, sizeof zeros, out);
    if (err == 0) memcpy(cs->k, out, STS_KEY_LEN);
    mbedtls_platform_zeroize(out, sizeof out);
    return err;
}

void sts_noise_cipher_wipe(struct sts_noise_cipher *cs)
{
    mbedtls_platform_zeroize(cs, sizeof *cs);
}

static void cipher_init(struct sts_noise_cipher *cs, int alg, const uint8_t *k)
{
    memcpy(cs->k, k, STS_KEY_LEN); /* SHA-512's longer HASHLEN output is truncated (§5.2) */
    cs->n = 0;
    cs->has_key = 1;
    cs->alg = alg;
}

/* ---- SymmetricState (§5.2) ---- */

static int mix_hash(struct sts_noise_hs *hs, const uint8_t *data, size_t len)
{
    return sts_hash2(hs->hash, hs->h, hs->hashlen, data, len, hs->h);
}

/* §4.3 HKDF(ck, ikm, n) is RFC 5869 HKDF with salt ck and empty info. */
static int hkdf(const struct sts_noise_hs *hs, const uint8_t *ikm, size_t ikmlen,
                uint8_t *out, size_t n)
{
    return sts_hkdf(hs->hash, hs->ck, hs->hashlen, ikm, ikmlen, NULL, 0, out, n * hs->hashlen);
}

static int mix_key(struct sts_noise_hs *hs, const uint8_t *ikm, size_t len)
{
    uint8_t out[2 * STS_HASH_MAX_LEN];
    int err = hkdf(hs, ikm, len, out, 2);

    if (err == 0) {
        memcpy(hs->ck, out, hs->hashlen);
        cipher_init(&hs->cs, hs->cs.alg, out + hs->hashlen);
    }
    mbedtls_platform_zeroize(out, sizeof out);
    return err;
}

static int mix_key_and_hash(struct sts_noise_hs *hs, const uint8_t *ikm, size_t len)
{
    uint8_t out[3 * STS_HASH_MAX_LEN];
    int err = hkdf(hs, ikm, len, out, 3);

    if (err == 0) {
        memcpy(hs->ck, out, hs->hashlen);
        err = mix_hash(hs, out + hs->hashlen, hs->hashlen);
        cipher_init(&hs->cs, hs->cs.alg, out + 2 * hs->hashlen);
    }
    mbedtls_platform_zeroize(out, sizeof out);
    return err;
}

/* Writes len bytes of pt to out, encrypted once there is a key, and hashes
 * what was written. Returns the bytes written or a negative sts_error. */
static int encrypt_and_hash(struct sts_noise_hs *hs, const uint8_t *pt, size_t len, uint8_t *out)
{
    int err = 0;

    if (hs->cs.has_key) {
        err = sts_noise_encrypt(&hs->cs, hs->h, hs->hashlen, pt, len, out);
        len += STS_NOISE_TAG_LEN;
    } else if (len > 0) {
        memmove(out, pt, len);
    }
    if (err == 0) err = mix_hash(hs, out, len);
    return err != 0 ? err : (int)len;
}

/* The inverse, from len bytes of ct (tag included once there is a key);
 * out may equal ct: the new h is computed before decrypting. */
static int decrypt_and_hash(struct sts_noise_hs *hs, const uint8_t *ct, size_t len, uint8_t *out)
{
    uint8_t h[STS_HASH_MAX_LEN];
    int err = sts_hash2(hs->hash, hs->h, hs->hashlen, ct, len, h);

    if (err == 0 && hs->cs.has_key) err = sts_noise_decrypt(&hs->cs, hs->h, hs->hashlen, ct, len, out);
    else if (err == 0 && len > 0) memmove(out, ct, len);
    if (err == 0) memcpy(hs->h, h, hs->hashlen);
    return err;
}

/* ---- HandshakeState (§5.3) ---- */

static void wipe_secrets(struct sts_noise_hs *hs)
{
    mbedtls_platform_zeroize(hs->ck, sizeof hs->ck);
    sts_noise_cipher_wipe(&hs->cs);
    mbedtls_platform_zeroize(hs->s, sizeof hs->s);
    mbedtls_platform_zeroize(hs->e, sizeof hs->e);
    mbedtls_platform_zeroize(hs->psks, sizeof hs->psks);
}

static int fail(struct sts_noise_hs *hs, int err)
{
    wipe_secrets(hs);
    hs->failed = 1;
    return err;
}

/* An ephemeral public key is hashed, and in a psk handshake also mixed into
 * the key (§9.2), so that a psk never encrypts under a key without fresh
 * randomness. */
static int mix_ephemeral(struct sts_noise_hs *hs, const uint8_t pub[DHLEN])
{
    int err = mix_hash(hs, pub, DHLEN);
    if (err == 0 && hs->pat.npsks > 0) err = mix_key(hs, pub, DHLEN);
    return err;
}

/* A DH token: the first letter names the initiator's key, the second the
 * responder's; each side picks its private half and the peer's public one. */
static int mix_dh(struct sts_noise_hs *hs, enum noise_token t)
{
    int first_s = t == NOISE_SE || t == NOISE_SS, second_s = t == NOISE_ES || t == NOISE_SS;
    int local_s = hs->party == 0 ? first_s : second_s;
    int remote_s = hs->party == 0 ? second_s : first_s;
    uint8_t shared[DHLEN];
    int err = sts_x25519_shared(shared, local_s ? hs->s : hs->e, remote_s ? hs->rs : hs->re);

    if (err == 0) err = mix_key(hs, shared, DHLEN);
    mbedtls_platform_zeroize(shared, sizeof shared);
    return err;
}

/* The tokens that are not keys on the wire: DH and psk. */
static int mix_token(struct sts_noise_hs *hs, enum noise_token t)
{
    if (t != NOISE_PSK) return mix_dh(hs, t);
    return mix_key_and_hash(hs, hs->psks[hs->next_psk++], STS_KEY_LEN);
}

/* Bytes the next message adds to its payload: keys and tags. Knowing it up
 * front lets write and read check every length before changing any state. */
static size_t message_overhead(const struct sts_noise_hs *hs)
{
    const uint8_t *toks = hs->pat.tokens[hs->msg];
    int keyed = hs->cs.has_key;
    size_t n = 0;

    for (size_t i = 0; i < hs->pat.ntokens[hs->msg]; i++) {
        if (toks[i] == NOISE_E) {
            n += DHLEN;
            keyed |= hs->pat.npsks > 0;
        } else if (toks[i] == NOISE_S) {
            n += DHLEN + (keyed ? STS_NOISE_TAG_LEN : 0);
        } else {
            keyed = 1; /* DH and psk tokens call MixKey */
        }
    }
    return n + (keyed ? STS_NOISE_TAG_LEN : 0);
}

static int write_token(struct sts_noise_hs *hs, enum noise_token t, uint8_t **p)
{
    int n;

    switch (t) {
    case NOISE_E:
        if (!(hs->have & FIXED_E)) {
            int err = sts_x25519_keypair(hs->e, hs->e_pub);
            if (err != 0) return err;
            hs->have |= HAVE_E;
        }
        memcpy(*p, hs->e_pub, DHLEN);
        *p += DHLEN;
        return mix_ephemeral(hs, hs->e_pub);
    case NOISE_S:
        if ((n = encrypt_and_hash(hs, hs->s_pub, DHLEN, *p)) < 0) return n;
        *p += n;
        return 0;
    default:
        return mix_token(hs, t);
    }
}

static int read_static(struct sts_noise_hs *hs, const uint8_t *ct, size_t len)
{
    uint8_t rs[DHLEN];
    int err = decrypt_and_hash(hs, ct, len, rs);

    if (err == 0 && (hs->have & PINNED_RS) && mbedtls_ct_memcmp(rs, hs->rs, DHLEN) != 0)
        err = STS_ERR_AUTH;
    if (err == 0) {
        memcpy(hs->rs, rs, DHLEN);
        hs->have |= HAVE_RS;
    }
    return err;
}

static int read_token(struct sts_noise_hs *hs, enum noise_token t, const uint8_t **p)
{
    size_t len;
    int err;

    switch (t) {
    case NOISE_E:
        memcpy(hs->re, *p, DHLEN);
        hs->have |= HAVE_RE;
        *p += DHLEN;
        return mix_ephemeral(hs, hs->re);
    case NOISE_S:
        len = DHLEN + (hs->cs.has_key ? STS_NOISE_TAG_LEN : 0);
        err = read_static(hs, *p, len);
        *p += len;
        return err;
    default:
        return mix_token(hs, t);
    }
}

enum sts_noise_action sts_noise_hs_action(const struct sts_noise_hs *hs)
{
    if (hs->failed) return STS_NOISE_FAILED;
    if (hs->msg == hs->pat.nmsgs) return STS_NOISE_SPLIT;
    return (int)(hs->msg % 2) == hs->party ? STS_NOISE_WRITE : STS_NOISE_READ;
}

int sts_noise_hs_write(struct sts_noise_hs *hs, const uint8_t *payload, size_t payload_len,
                       uint8_t *out, size_t out_max, size_t *out_len)
{
    uint8_t *p = out;
    size_t overhead;
    int n;

    if (sts_noise_hs_action(hs) != STS_NOISE_WRITE) return STS_ERR_STATE;
    overhead = message_overhead(hs);
    if (payload_len > STS_NOISE_MAX_MSG - overhead || out_max < overhead + payload_len)
        return fail(hs, STS_ERR_TOO_BIG);
    for (size_t i = 0; i < hs->pat.ntokens[hs->msg]; i++) {
        int err = write_token(hs, hs->pat.tokens[hs->msg][i], &p);
        if (err != 0) return fail(hs, err);
    }
    if ((n = encrypt_and_hash(hs, payload, payload_len, p)) < 0) return fail(hs, n);
    *out_len = (size_t)(p - out) + (size_t)n;
    hs->msg++;
    return 0;
}

int sts_noise_hs_read(struct sts_noise_hs *hs, const uint8_t *msg, size_t msg_len,
                      uint8_t *payload, size_t payload_max, size_t *payload_len)
{
    const uint8_t *p = msg;
    size_t overhead, rest;
    int err;

    if (sts_noise_hs_action(hs) != STS_NOISE_READ) return STS_ERR_STATE;
    overhead = message_overhead(hs);
    if (msg_len > STS_NOISE_MAX_MSG) return fail(hs, STS_ERR_TOO_BIG);
    if (msg_len < overhead) return fail(hs, STS_ERR_TRUNCATED);
    if (payload_max < msg_len - overhead) return fail(hs, STS_ERR_TOO_BIG);
    for (size_t i = 0; i < hs->pat.ntokens[hs->msg]; i++) {
        if ((err = read_token(hs, hs->pat.tokens[hs->msg][i], &p)) != 0) return fail(hs, err);
    }
    rest = msg_len - (size_t)(p - msg);
    if ((err = decrypt_and_hash(hs, p, rest, payload)) != 0) return fail(hs, err);
    *payload_len = rest - (hs->cs.has_key ? STS_NOISE_TAG_LEN : 0);
    hs->msg++;
    return 0;
}

int sts_noise_hs_split(struct sts_noise_hs *hs, struct sts_noise_cipher *send,
                       struct sts_noise_cipher *recv)
{
    uint8_t out[2 * STS_HASH_MAX_LEN];
    struct sts_noise_cipher c[2] = { { { 0 }, 0, 0, 0 } };
    int err;

    if (sts_noise_hs_action(hs) != STS_NOISE_SPLIT || hs->split) return STS_ERR_STATE;
    if ((err = hkdf(hs, NULL, 0, out, 2)) != 0) {
        mbedtls_platform_zeroize(out, sizeof out);
        return fail(hs, err);
    }
    cipher_init(&c[0], hs->cs.alg, out);                   /* initiator to responder */
    if (!noise_pattern_one_way(&hs->pat))
        cipher_init(&c[1], hs->cs.alg, out + hs->hashlen); /* responder to initiator */
    c[1].alg = hs->cs.alg;
    *send = c[hs->party];
    *recv = c[1 - hs->party];
    mbedtls_platform_zeroize(out, sizeof out);
    mbedtls_platform_zeroize(c, sizeof c);
    wipe_secrets(hs);
    hs->split = 1;
    return 0;
}

const uint8_t *sts_noise_hs_hash(const struct sts_noise_hs *hs, size_t *len)
{
    *len = hs->hashlen;
    return hs->h;
}

const uint8_t *sts_noise_hs_remote_static(const struct sts_noise_hs *hs)
{
    return (hs->have & HAVE_RS) ? hs->rs : NULL;
}

const uint8_t *sts_noise_hs_local_ephemeral_public(const struct sts_noise_hs *hs)
{
    return (hs->have & HAVE_E) ? hs->e_pub : NULL;
}

void sts_noise_hs_free(struct sts_noise_hs *hs)
{
    if (!hs) return;
    mbedtls_platform_zeroize(hs, sizeof *hs);
    free(hs);
}

/* ---- creation ---- */

static int field_is(const char *f, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(f, lit, len) == 0;
}

/* Noise_<pattern>_<dh>_<cipher>_<hash> (§8). */
static int parse_protocol_name(struct sts_noise_hs *hs, const char *name)
{
    const char *f[5];
    size_t flen[5], n = 0, len = strnlen(name, MAX_NAME + 1);
    int err;

    if (len > MAX_NAME) return STS_ERR_INVALID;
    for (const char *p = name; n < 5; n++) {
        f[n] = p;
        flen[n] = strcspn(p, "_");
        p += flen[n];
        if (flen[n] == 0 || (*p == '\0' && n < 4) || (*p == '_' && n == 4)) return STS_ERR_INVALID;
        p += *p == '_';
    }
    if (!field_is(f[0], flen[0], "Noise")) return STS_ERR_INVALID;
    if ((err = noise_pattern_from_name(&hs->pat, f[1], flen[1])) != 0) return err;
    if (!field_is(f[2], flen[2], "25519")) return STS_ERR_UNSUPPORTED;
    if (field_is(f[3], flen[3], "ChaChaPoly")) hs->cs.alg = STS_AEAD_CHACHAPOLY;
    else if (field_is(f[3], flen[3], "AESGCM")) hs->cs.alg = STS_AEAD_AESGCM;
    else return STS_ERR_UNSUPPORTED;
    if (field_is(f[4], flen[4], "SHA256")) hs->hash = STS_SHA256;
    else if (field_is(f[4], flen[4], "SHA512")) hs->hash = STS_SHA512;
    else return STS_ERR_UNSUPPORTED;
    hs->hashlen = sts_hash_len(hs->hash);
    return 0;
}

/* Takes the caller's keys, checking that the pattern gets what it needs. */
static int set_keys(struct sts_noise_hs *hs, const struct sts_noise_keys *keys)
{
    const struct noise_pattern *pat = &hs->pat;
    int me = hs->party, peer = 1 - hs->party;
    int err;

    if (((pat->pre[me] & NOISE_KEY_S) || noise_pattern_sends(pat, me, NOISE_S)) && !keys->s)
        return STS_ERR_INVALID;
    if (((pat->pre[me] & NOISE_KEY_E) && !keys->e) || ((pat->pre[peer] & NOISE_KEY_S) && !keys->rs)
        || ((pat->pre[peer] & NOISE_KEY_E) && !keys->re)
        || keys->npsks != pat->npsks || (keys->npsks > 0 && !keys->psks))
        return STS_ERR_INVALID;
    /* A pinned key the peer never sends could never be checked. */
    if (keys->rs && !(pat->pre[peer] & NOISE_KEY_S) && !noise_pattern_sends(pat, peer, NOISE_S))
        return STS_ERR_INVALID;

    if (keys->s) {
        memcpy(hs->s, keys->s, DHLEN);
        if (keys->s_pub) memcpy(hs->s_pub, keys->s_pub, DHLEN);
        else if ((err = sts_x25519_public(hs->s_pub, hs->s)) != 0) return err;
    }
    if (keys->e) {
        memcpy(hs->e, keys->e, DHLEN);
        if ((err = sts_x25519_public(hs->e_pub, hs->e)) != 0) return err;
        hs->have |= HAVE_E | FIXED_E;
    }
    if (keys->rs) {
        memcpy(hs->rs, keys->rs, DHLEN);
        hs->have |= (pat->pre[peer] & NOISE_KEY_S) ? HAVE_RS : PINNED_RS;
    }
    if (keys->re && (pat->pre[peer] & NOISE_KEY_E)) {
        memcpy(hs->re, keys->re, DHLEN);
        hs->have |= HAVE_RE;
    }
    if (keys->npsks > 0) memcpy(hs->psks, keys->psks, keys->npsks * STS_KEY_LEN);
    return 0;
}

/* h = the name, zero-padded, or its hash when longer than HASHLEN; ck = h. */
static int init_symmetric(struct sts_noise_hs *hs, const char *name)
{
    size_t len = strlen(name);
    int err = 0;

    if (len <= hs->hashlen) memcpy(hs->h, name, len);
    else err = sts_hash(hs->hash, (const uint8_t *)name, len, hs->h);
    memcpy(hs->ck, hs->h, hs->hashlen);
    return err;
}

/* The pre-message keys, initiator's first, e before s (§7). */
static int mix_premessages(struct sts_noise_hs *hs)
{
    int err = 0;

    for (int party = 0; party < 2 && err == 0; party++) {
        int mine = party == hs->party;
        if (hs->pat.pre[party] & NOISE_KEY_E) err = mix_ephemeral(hs, mine ? hs->e_pub : hs->re);
        if (err == 0 && (hs->pat.pre[party] & NOISE_KEY_S))
            err = mix_hash(hs, mine ? hs->s_pub : hs->rs, DHLEN);
    }
    return err;
}

int sts_noise_hs_new(struct sts_noise_hs **out, const char *protocol_name, int initiator,
                     const uint8_t *prologue, size_t prologue_len,
                     const struct sts_noise_keys *keys)
{
    static const struct sts_noise_keys no_keys;
    struct sts_noise_hs *hs = calloc(1, sizeof *hs);
    int err;

    *out = NULL;
    if (!hs) return STS_ERR_NOMEM;
    hs->party = initiator ? 0 : 1;
    if ((err = parse_protocol_name(hs, protocol_name)) != 0
        || (err = set_keys(hs, keys ? keys : &no_keys)) != 0
        || (err = init_symmetric(hs, protocol_name)) != 0
        || (err = mix_hash(hs, prologue, prologue_len)) != 0
        || (err = mix_premessages(hs)) != 0) {
        sts_noise_hs_free(hs);
        return err;
    }
    *out = hs;
    return 0;
}
