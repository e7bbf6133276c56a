#include "proto/legacy_sts.h"
#include "crypto/aes.h"
#include "crypto/x25519.h"
#include "util/error.h"
#include "util/hex.h"

#include <mbedtls/platform_util.h>
#include <string.h>
#include <time.h>

#define KEY_DIGITS (2 * STS_X25519_LEN) /* a 255-bit u-coordinate in hex, at most */

static const struct {
    int err;
    const char *text;
} reasons[] = {
    [STS_LEGACY_OK] = { 0, "no error" },
    [STS_LEGACY_FRAME_TOO_BIG] = { STS_ERR_TOO_BIG, "frame longer than 2048 bytes" },
    [STS_LEGACY_NO_COLON] = { STS_ERR_PARSE, "handshake frame has no ':' after its header" },
    [STS_LEGACY_UNKNOWN_HEADER] = { STS_ERR_PARSE, "unknown handshake header" },
    [STS_LEGACY_BAD_BODY] = { STS_ERR_PARSE, "unexpected data after the handshake header" },
    [STS_LEGACY_WRONG_STATE] = { STS_ERR_STATE, "handshake frame out of order" },
    [STS_LEGACY_KEY_SYNTAX] = { STS_ERR_PARSE, "KEYREQ is not of the form X<hex>Y" },
    [STS_LEGACY_KEY_LENGTH] = { STS_ERR_PARSE, "KEYREQ public key is not 1 to 64 hex digits" },
    [STS_LEGACY_KEY_HEX] = { STS_ERR_PARSE, "KEYREQ public key has a digit that is not hex" },
    [STS_LEGACY_KEY_Y] = { STS_ERR_UNSUPPORTED,
                           "KEYREQ with a Y coordinate (the older secp256k1 variant) is not supported" },
    [STS_LEGACY_KEY_LOW_ORDER] = { STS_ERR_KEY, "peer public key is a low-order point" },
    [STS_LEGACY_CIPHER_LENGTH] = { STS_ERR_INVALID,
                                   "ciphertext length is not a non-zero multiple of 16" },
    [STS_LEGACY_BAD_PLAINTEXT] = { STS_ERR_INVALID,
                                   "decrypted frame has no ENC:/KILL: prefix (wrong key or corrupted)" },
    [STS_LEGACY_NOT_ESTABLISHED] = { STS_ERR_STATE, "no session yet: the handshake is not complete" },
    [STS_LEGACY_SESSION_CLOSED] = { STS_ERR_STATE, "session closed by KILL" },
    [STS_LEGACY_NOSEC_KILL] = { STS_ERR_UNSUPPORTED, "nosec mode has no KILL" },
    [STS_LEGACY_MESSAGE_TOO_BIG] = { STS_ERR_TOO_BIG, "message too long for one frame or the buffer" },
    [STS_LEGACY_MESSAGE_NUL] = { STS_ERR_INVALID, "message contains a NUL byte" },
    [STS_LEGACY_PEER_LIMIT] = { STS_ERR_TOO_BIG, "message too long for the original's receive limit on its topic" },
    [STS_LEGACY_CRYPTO_FAILED] = { STS_ERR_CRYPTO, "random generator or cipher failed" },
    [STS_LEGACY_RESTART_TOO_SOON] = { STS_ERR_STATE,
                                      "INITREQ in a session restarted less than 3 s ago: ignored" },
};

const char *sts_legacy_reason_text(enum sts_legacy_reason reason)
{
    if ((unsigned)reason >= sizeof reasons / sizeof reasons[0]) return "unknown reason";
    return reasons[reason].text;
}

static int reject(struct sts_legacy *ctx, enum sts_legacy_reason reason)
{
    ctx->reason = reason;
    return reasons[reason].err;
}

/* ---- Handshake frames: "HEADER:body" ---- */

enum header { H_INITREQ, H_INITACK, H_KEYREQ, H_KEYACK, H_COUNT };

static const char *const header_names[H_COUNT] = { "INITREQ", "INITACK", "KEYREQ", "KEYACK" };
/* The one body each header may carry; KEYREQ's is the public key. */
static const char *const fixed_bodies[H_COUNT] = { "request", "", NULL, "" };

static enum sts_legacy_reason split_frame(const uint8_t *frame, size_t len, enum header *h,
                                          const uint8_t **body, size_t *bodylen)
{
    const uint8_t *colon = memchr(frame, ':', len);
    if (colon == NULL) return STS_LEGACY_NO_COLON;
    size_t namelen = (size_t)(colon - frame);
    for (int i = 0; i < H_COUNT; i++) {
        if (strlen(header_names[i]) == namelen && memcmp(frame, header_names[i], namelen) == 0) {
            *h = (enum header)i;
            *body = colon + 1;
            *bodylen = len - namelen - 1;
            return STS_LEGACY_OK;
        }
    }
    return STS_LEGACY_UNKNOWN_HEADER;
}

static int body_is(enum header h, const uint8_t *body, size_t len)
{
    return strlen(fixed_bodies[h]) == len && memcmp(body, fixed_bodies[h], len) == 0;
}

/* The original prints the u-coordinate as a big number (mbedtls_mpi_write_string):
 * big-endian, uppercase, without leading zero bytes. */
size_t sts_legacy_keyreq_format(char *out, const uint8_t pub[STS_X25519_LEN])
{
    static const char digits[] = "0123456789ABCDEF";
    size_t n = 8, top = STS_X25519_LEN - 1;

    while (top > 0 && pub[top] == 0) top--;
    memcpy(out, "KEYREQ:X", 8);
    for (size_t i = top + 1; i-- > 0;) {
        out[n++] = digits[pub[i] >> 4];
        out[n++] = digits[pub[i] & 15];
    }
    out[n++] = 'Y';
    out[n] = '\0';
    return n;
}

/* "X<hex>Y": the hex may have lost its leading zeros (odd length too) and
 * be in either case, but is bounded: 1 to 64 digits, all hex. */
static enum sts_legacy_reason parse_key_body(uint8_t pub[STS_X25519_LEN], const uint8_t *body,
                                             size_t len)
{
    char digits[KEY_DIGITS];
    uint8_t be[STS_X25519_LEN];

    if (len < 2 || body[0] != 'X') return STS_LEGACY_KEY_SYNTAX;
    const uint8_t *y = memchr(body + 1, 'Y', len - 1);
    if (y == NULL) return STS_LEGACY_KEY_SYNTAX;
    size_t ndigits = (size_t)(y - body) - 1;
    if (ndigits == 0 || ndigits > KEY_DIGITS) return STS_LEGACY_KEY_LENGTH;
    if (y + 1 != body + len) return STS_LEGACY_KEY_Y;

    memset(digits, '0', sizeof digits);
    memcpy(digits + KEY_DIGITS - ndigits, body + 1, ndigits);
    if (sts_hex_decode(be, sizeof be, digits, sizeof digits) != (int)sizeof be)
        return STS_LEGACY_KEY_HEX;
    for (size_t i = 0; i < sizeof be; i++) pub[i] = be[sizeof be - 1 - i];
    return STS_LEGACY_OK;
}

int sts_legacy_keyreq_parse(uint8_t pub[STS_X25519_LEN], const uint8_t *frame, size_t len,
                            enum sts_legacy_reason *why)
{
    static const char head[] = "KEYREQ:";
    enum sts_legacy_reason r = STS_LEGACY_KEY_SYNTAX;

    if (len >= sizeof head - 1 && memcmp(frame, head, sizeof head - 1) == 0)
        r = parse_key_body(pub, frame + sizeof head - 1, len - (sizeof head - 1));
    if (why != NULL) *why = r;
    return reasons[r].err;
}

static void emit(struct sts_legacy_output *out, enum header h, const uint8_t pub[STS_X25519_LEN])
{
    char *text = (char *)out->frames[out->nframes].data;
    size_t len;

    if (h == H_KEYREQ) {
        len = sts_legacy_keyreq_format(text, pub);
    } else {
        len = strlen(header_names[h]);
        memcpy(text, header_names[h], len);
        text[len++] = ':';
        memcpy(text + len, fixed_bodies[h], strlen(fixed_bodies[h]));
        len += strlen(fixed_bodies[h]);
    }
    out->frames[out->nframes++].len = len;
}

/* ---- The handshake state machine ---- */

static const struct transition {
    enum sts_legacy_role role;
    enum sts_legacy_state from;
    enum header got;
    enum sts_legacy_state to;
    unsigned nreplies;
    enum header replies[2];
    int restart; /* a new handshake: the keys so far are dropped */
} transitions[] = {
    { STS_LEGACY_MASTER, STS_LEGACY_WAIT_INITACK, H_INITACK, STS_LEGACY_WAIT_KEYACK, 1, { H_KEYREQ }, 0 },
    /* The answer to a repeated INITREQ, after the first: nothing to do. */
    { STS_LEGACY_MASTER, STS_LEGACY_WAIT_KEYACK, H_INITACK, STS_LEGACY_WAIT_KEYACK, 0, { 0 }, 0 },
    { STS_LEGACY_MASTER, STS_LEGACY_WAIT_KEYACK, H_KEYACK, STS_LEGACY_WAIT_KEYREQ, 0, { 0 }, 0 },
    { STS_LEGACY_MASTER, STS_LEGACY_WAIT_KEYREQ, H_KEYREQ, STS_LEGACY_ESTABLISHED, 1, { H_KEYACK }, 0 },
    { STS_LEGACY_SLAVE, STS_LEGACY_WAIT_INITREQ, H_INITREQ, STS_LEGACY_WAIT_KEYREQ, 1, { H_INITACK }, 0 },
    /* A master resending INITREQ before our INITACK reached it: answer again. */
    { STS_LEGACY_SLAVE, STS_LEGACY_WAIT_KEYREQ, H_INITREQ, STS_LEGACY_WAIT_KEYREQ, 1, { H_INITACK }, 0 },
    { STS_LEGACY_SLAVE, STS_LEGACY_WAIT_KEYREQ, H_KEYREQ, STS_LEGACY_WAIT_KEYACK, 2,
      { H_KEYACK, H_KEYREQ }, 0 },
    /* After our KEYREQ a master sends INITREQ only when it starts over
     * (restarted, or its handshake stalled): so do we. */
    { STS_LEGACY_SLAVE, STS_LEGACY_WAIT_KEYACK, H_INITREQ, STS_LEGACY_WAIT_KEYREQ, 1, { H_INITACK }, 1 },
    { STS_LEGACY_SLAVE, STS_LEGACY_WAIT_KEYACK, H_KEYACK, STS_LEGACY_ESTABLISHED, 0, { 0 }, 0 },
    { STS_LEGACY_SLAVE, STS_LEGACY_ESTABLISHED, H_INITREQ, STS_LEGACY_WAIT_KEYREQ, 1, { H_INITACK }, 1 },
};

static const struct transition *find_transition(const struct sts_legacy *ctx, enum header h)
{
    for (size_t i = 0; i < sizeof transitions / sizeof transitions[0]; i++) {
        const struct transition *t = &transitions[i];
        if (t->role == ctx->role && t->from == ctx->state && t->got == h) return t;
    }
    return NULL;
}

/* The AES key is the raw shared secret, whatever bytes it holds; the CBC
 * chain starts at its first half. */
static enum sts_legacy_reason derive_key(struct sts_legacy *ctx, const uint8_t *body, size_t len)
{
    uint8_t peer[STS_X25519_LEN], secret[STS_X25519_LEN];
    enum sts_legacy_reason r = parse_key_body(peer, body, len);

    if (r == STS_LEGACY_OK) {
        int err = sts_x25519_shared(secret, ctx->priv, peer);
        if (err == STS_ERR_KEY) r = STS_LEGACY_KEY_LOW_ORDER;
        else if (err != 0) r = STS_LEGACY_CRYPTO_FAILED;
    }
    if (r == STS_LEGACY_OK) {
        memcpy(ctx->key, secret, sizeof ctx->key);
        memcpy(ctx->iv, secret, sizeof ctx->iv);
    }
    mbedtls_platform_zeroize(secret, sizeof secret);
    return r;
}

/* A fresh key pair, the session key dropped: nothing changes if the DRBG fails. */
static enum sts_legacy_reason new_keys(struct sts_legacy *ctx)
{
    uint8_t priv[STS_X25519_LEN], pub[STS_X25519_LEN];
    enum sts_legacy_reason r = STS_LEGACY_CRYPTO_FAILED;

    if (sts_x25519_keypair(priv, pub) == 0) {
        memcpy(ctx->priv, priv, sizeof priv);
        memcpy(ctx->pub, pub, sizeof pub);
        mbedtls_platform_zeroize(ctx->key, sizeof ctx->key);
        mbedtls_platform_zeroize(ctx->iv, sizeof ctx->iv);
        r = STS_LEGACY_OK;
    }
    mbedtls_platform_zeroize(priv, sizeof priv);
    return r;
}

static double monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An established session's INITREQ may come from anyone on the topic (it is
 * plain text): one restart per interval bounds how often it can be dropped. */
static int restart_too_soon(const struct sts_legacy *ctx, double now)
{
    return ctx->restarts > 0 && now - ctx->restarted_at < STS_LEGACY_RESTART_INTERVAL;
}

static enum sts_legacy_reason handshake_step(struct sts_legacy *ctx, const uint8_t *frame,
                                             size_t len, struct sts_legacy_output *out)
{
    enum header h;
    const uint8_t *body;
    size_t bodylen;
    enum sts_legacy_reason r = split_frame(frame, len, &h, &body, &bodylen);
    if (r != STS_LEGACY_OK) return r;

    const struct transition *t = find_transition(ctx, h);
    if (t == NULL) return STS_LEGACY_WRONG_STATE;
    if (h == H_KEYREQ) r = derive_key(ctx, body, bodylen);
    else if (!body_is(h, body, bodylen)) r = STS_LEGACY_BAD_BODY;
    int session_restart = t->restart && t->from == STS_LEGACY_ESTABLISHED;
    double now = session_restart ? monotonic_now() : 0;
    if (r == STS_LEGACY_OK && session_restart && restart_too_soon(ctx, now)) r = STS_LEGACY_RESTART_TOO_SOON;
    if (r == STS_LEGACY_OK && t->restart) r = new_keys(ctx);
    if (r != STS_LEGACY_OK) return r;

    if (session_restart) {
        ctx->restarts++;
        ctx->restarted_at = now;
    }

    for (unsigned i = 0; i < t->nreplies; i++) emit(out, t->replies[i], ctx->pub);
    ctx->state = t->to;
    if (t->to == STS_LEGACY_ESTABLISHED) out->event = STS_LEGACY_READY;
    if (t->restart) out->event = STS_LEGACY_RESTARTED;
    return STS_LEGACY_OK;
}

/* ---- Encrypted frames ---- */

/* AES-256 under the session key; in CBC mode from iv, left at the last
 * ciphertext block. */
static int run_aes(const struct sts_legacy *ctx, int encrypt, uint8_t iv[STS_AES_BLOCK_LEN],
                   const uint8_t *in, size_t len, uint8_t *out)
{
    if (ctx->mode == STS_LEGACY_CBC)
        return sts_aes_cbc(encrypt, ctx->key, sizeof ctx->key, iv, in, len, out);
    return sts_aes_ecb(encrypt, ctx->key, sizeof ctx->key, in, len, out);
}

/* Zero-pads plain (room for STS_LEGACY_MAX_FRAME) to whole blocks, as the
 * original does (no block is added when the text already fills one), and
 * encrypts it into out. The chain moves only if this succeeds. */
static int encrypt_padded(struct sts_legacy *ctx, uint8_t *plain, size_t len,
                          uint8_t *out, size_t outmax)
{
    size_t padded = (len + STS_AES_BLOCK_LEN - 1) / STS_AES_BLOCK_LEN * STS_AES_BLOCK_LEN;
    uint8_t iv[STS_AES_BLOCK_LEN];
    int n;

    if (padded > ctx->max_frame) return reject(ctx, STS_LEGACY_PEER_LIMIT);
    if (padded > outmax) return reject(ctx, STS_LEGACY_MESSAGE_TOO_BIG);
    memset(plain + len, 0, padded - len);
    memcpy(iv, ctx->iv, sizeof iv);
    if (run_aes(ctx, 1, iv, plain, padded, out) != 0) {
        n = reject(ctx, STS_LEGACY_CRYPTO_FAILED);
    } else {
        memcpy(ctx->iv, iv, sizeof iv);
        n = (int)padded;
    }
    mbedtls_platform_zeroize(plain, padded);
    return n;
}

/* Reads a decrypted frame: "KILL:" or "ENC:" + message + " ", zero-padded. */
static enum sts_legacy_reason read_plaintext(const uint8_t *plain, size_t len,
                                             struct sts_legacy_output *out)
{
    while (len > 0 && plain[len - 1] == 0) len--;
    if (len == 5 && memcmp(plain, "KILL:", 5) == 0) {
        out->event = STS_LEGACY_KILLED;
        return STS_LEGACY_OK;
    }
    if (len < 4 || memcmp(plain, "ENC:", 4) != 0) return STS_LEGACY_BAD_PLAINTEXT;
    len -= 4;
    if (len > 0 && plain[4 + len - 1] == ' ') len--; /* the original's trailing space */
    memcpy(out->msg, plain + 4, len);
    out->msg[len] = '\0';
    out->msglen = len;
    out->event = STS_LEGACY_MESSAGE;
    return STS_LEGACY_OK;
}

static void close_session(struct sts_legacy *ctx)
{
    mbedtls_platform_zeroize(ctx->priv, sizeof ctx->priv);
    mbedtls_platform_zeroize(ctx->key, sizeof ctx->key);
    mbedtls_platform_zeroize(ctx->iv, sizeof ctx->iv);
    ctx->state = STS_LEGACY_CLOSED;
}

/* Decrypts into scratch copies and commits the chain only once the frame is
 * known good, so a stray or forged frame cannot desynchronise the session. */
static enum sts_legacy_reason open_frame(struct sts_legacy *ctx, const uint8_t *frame, size_t len,
                                         struct sts_legacy_output *out)
{
    uint8_t plain[STS_LEGACY_MAX_FRAME], iv[STS_AES_BLOCK_LEN];
    enum sts_legacy_reason r;

    if (len == 0 || len % STS_AES_BLOCK_LEN != 0) {
        enum header h;
        const uint8_t *body;
        size_t bodylen;
        /* A handshake frame now means the peer restarted: say so. */
        return split_frame(frame, len, &h, &body, &bodylen) == STS_LEGACY_OK
                   ? STS_LEGACY_WRONG_STATE : STS_LEGACY_CIPHER_LENGTH;
    }
    memcpy(iv, ctx->iv, sizeof iv);
    r = run_aes(ctx, 0, iv, frame, len, plain) == 0 ? read_plaintext(plain, len, out)
                                                    : STS_LEGACY_CRYPTO_FAILED;
    if (r == STS_LEGACY_OK) memcpy(ctx->iv, iv, sizeof iv);
    if (out->event == STS_LEGACY_KILLED) close_session(ctx);
    mbedtls_platform_zeroize(plain, len);
    return r;
}

static void take_plain(const uint8_t *frame, size_t len, struct sts_legacy_output *out)
{
    memcpy(out->msg, frame, len);
    out->msg[len] = '\0';
    out->msglen = len;
    out->event = STS_LEGACY_MESSAGE;
}

/* ---- The public steps ---- */

int sts_legacy_init(struct sts_legacy *ctx, enum sts_legacy_role role,
                    enum sts_legacy_mode mode, const uint8_t priv[STS_X25519_LEN])
{
    int err;

    mbedtls_platform_zeroize(ctx, sizeof *ctx);
    ctx->role = role;
    ctx->mode = mode;
    ctx->max_frame = STS_LEGACY_MAX_FRAME;
    if ((role != STS_LEGACY_MASTER && role != STS_LEGACY_SLAVE)
        || (mode != STS_LEGACY_NOSEC && mode != STS_LEGACY_ECB && mode != STS_LEGACY_CBC)) {
        ctx->state = STS_LEGACY_CLOSED;
        return STS_ERR_INVALID;
    }
    if (mode == STS_LEGACY_NOSEC) {
        ctx->state = STS_LEGACY_ESTABLISHED;
        return 0;
    }
    ctx->state = role == STS_LEGACY_MASTER ? STS_LEGACY_IDLE : STS_LEGACY_WAIT_INITREQ;
    if (priv != NULL) {
        memcpy(ctx->priv, priv, sizeof ctx->priv);
        err = sts_x25519_public(ctx->pub, ctx->priv);
    } else {
        err = sts_x25519_keypair(ctx->priv, ctx->pub);
    }
    if (err != 0) {
        close_session(ctx);
        ctx->reason = STS_LEGACY_CRYPTO_FAILED;
    }
    return err;
}

void sts_legacy_free(struct sts_legacy *ctx)
{
    mbedtls_platform_zeroize(ctx, sizeof *ctx);
    ctx->state = STS_LEGACY_CLOSED;
}

static void clear_output(struct sts_legacy_output *out)
{
    out->event = STS_LEGACY_NONE;
    out->nframes = 0;
    out->msglen = 0;
    out->msg[0] = '\0';
}

int sts_legacy_start(struct sts_legacy *ctx, struct sts_legacy_output *out)
{
    clear_output(out);
    if (ctx->role != STS_LEGACY_MASTER || ctx->mode == STS_LEGACY_NOSEC) return 0;
    if (ctx->state != STS_LEGACY_IDLE) return reject(ctx, STS_LEGACY_WRONG_STATE);
    emit(out, H_INITREQ, ctx->pub);
    ctx->state = STS_LEGACY_WAIT_INITACK;
    return 0;
}

/* A slave's session ends at a new INITREQ (never ciphertext: 15 bytes). */
static int restarts(const struct sts_legacy *ctx, const uint8_t *frame, size_t len)
{
    static const char initreq[] = "INITREQ:request";
    return ctx->role == STS_LEGACY_SLAVE && ctx->mode != STS_LEGACY_NOSEC && len == sizeof initreq - 1
           && memcmp(frame, initreq, len) == 0;
}

int sts_legacy_restart(struct sts_legacy *ctx, struct sts_legacy_output *out)
{
    clear_output(out);
    if (ctx->mode == STS_LEGACY_NOSEC) return 0;
    enum sts_legacy_reason r = new_keys(ctx);
    if (r != STS_LEGACY_OK) return reject(ctx, r);
    if (ctx->role == STS_LEGACY_SLAVE) {
        ctx->state = STS_LEGACY_WAIT_INITREQ;
        return 0;
    }
    ctx->state = STS_LEGACY_IDLE;
    return sts_legacy_start(ctx, out);
}

int sts_legacy_set_peer_topic(struct sts_legacy *ctx, size_t topic_len)
{
    if (topic_len == 0 || topic_len > 1019 - STS_LEGACY_MAX_HANDSHAKE) return STS_ERR_TOO_BIG;
    size_t limit = STS_LEGACY_ORIGINAL_RECEIVE(topic_len);
    if (ctx->mode != STS_LEGACY_NOSEC) limit -= limit % STS_AES_BLOCK_LEN;
    ctx->max_frame = limit < STS_LEGACY_MAX_FRAME ? limit : STS_LEGACY_MAX_FRAME;
    ctx->topic_len = topic_len;
    return 0;
}

size_t sts_legacy_max_message(const struct sts_legacy *ctx)
{
    return ctx->mode == STS_LEGACY_NOSEC ? ctx->max_frame : ctx->max_frame - 5;
}

int sts_legacy_receive(struct sts_legacy *ctx, const uint8_t *frame, size_t len,
                       struct sts_legacy_output *out)
{
    enum sts_legacy_reason r = STS_LEGACY_OK;

    clear_output(out);
    if (len > STS_LEGACY_MAX_FRAME) r = STS_LEGACY_FRAME_TOO_BIG;
    else if (ctx->state == STS_LEGACY_CLOSED) r = STS_LEGACY_SESSION_CLOSED;
    else if (ctx->state != STS_LEGACY_ESTABLISHED || restarts(ctx, frame, len))
        r = handshake_step(ctx, frame, len, out);
    else if (ctx->mode != STS_LEGACY_NOSEC) r = open_frame(ctx, frame, len, out);
    else take_plain(frame, len, out);
    return r == STS_LEGACY_OK ? 0 : reject(ctx, r);
}

static enum sts_legacy_reason check_established(const struct sts_legacy *ctx)
{
    if (ctx->state == STS_LEGACY_CLOSED) return STS_LEGACY_SESSION_CLOSED;
    if (ctx->state != STS_LEGACY_ESTABLISHED) return STS_LEGACY_NOT_ESTABLISHED;
    return STS_LEGACY_OK;
}

int sts_legacy_check(struct sts_legacy *ctx, const char *msg, size_t len)
{
    enum sts_legacy_reason r = check_established(ctx);

    if (r == STS_LEGACY_OK && len > 0 && memchr(msg, '\0', len) != NULL) r = STS_LEGACY_MESSAGE_NUL;
    if (r == STS_LEGACY_OK && len > sts_legacy_max_message(ctx))
        r = ctx->topic_len ? STS_LEGACY_PEER_LIMIT : STS_LEGACY_MESSAGE_TOO_BIG;
    return r == STS_LEGACY_OK ? 0 : reject(ctx, r);
}

int sts_legacy_seal(struct sts_legacy *ctx, const char *msg, size_t len,
                    uint8_t *out, size_t outmax)
{
    uint8_t plain[STS_LEGACY_MAX_FRAME];
    int rc = sts_legacy_check(ctx, msg, len);

    if (rc != 0) return rc;
    if (ctx->mode == STS_LEGACY_NOSEC) {
        if (len > outmax) return reject(ctx, STS_LEGACY_MESSAGE_TOO_BIG);
        memcpy(out, msg, len);
        return (int)len;
    }
    memcpy(plain, "ENC:", 4);
    memcpy(plain + 4, msg, len);
    plain[4 + len] = ' ';
    return encrypt_padded(ctx, plain, len + 5, out, outmax);
}

int sts_legacy_kill(struct sts_legacy *ctx, uint8_t *out, size_t outmax)
{
    uint8_t plain[STS_AES_BLOCK_LEN] = "KILL:";
    enum sts_legacy_reason r = check_established(ctx);
    int n;

    if (r != STS_LEGACY_OK) return reject(ctx, r);
    if (ctx->mode == STS_LEGACY_NOSEC) return reject(ctx, STS_LEGACY_NOSEC_KILL);
    n = encrypt_padded(ctx, plain, 5, out, outmax);
    if (n >= 0) close_session(ctx);
    return n;
}
