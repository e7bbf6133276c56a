#include "crypto/keyfile.h"
#include "crypto/hash.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/hex.h"

#include <mbedtls/base64.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *header(enum sts_key_kind kind)
{
    return kind == STS_KEY_PRIVATE ? STS_KEY_PRIVATE_HEADER : STS_KEY_PUBLIC_HEADER;
}

void sts_key_format(char *out, const uint8_t key[32], enum sts_key_kind kind)
{
    char hex[65];
    sts_hex_encode(hex, key, 32);
    snprintf(out, STS_KEY_TEXT_MAX, "%s\n%s\n", header(kind), hex);
    mbedtls_platform_zeroize(hex, sizeof hex);
}

/* The next line of text (without its end), or NULL at the end. */
static const char *next_line(const char **pos, const char *end, size_t *len)
{
    if (*pos >= end) return NULL;
    const char *line = *pos;
    const char *nl = memchr(line, '\n', (size_t)(end - line));
    *len = (size_t)((nl ? nl : end) - line);
    *pos = nl ? nl + 1 : end;
    if (*len > 0 && line[*len - 1] == '\r') (*len)--;
    return line;
}

static int is_line(const char *line, size_t len, const char *text)
{
    return len == strlen(text) && memcmp(line, text, len) == 0;
}

int sts_key_parse(uint8_t key[32], const char *text, size_t len, enum sts_key_kind kind)
{
    const char *pos = text, *end = text + len, *line;
    size_t n;

    line = next_line(&pos, end, &n);
    if (!line || !is_line(line, n, header(kind))) return STS_ERR_PARSE;
    line = next_line(&pos, end, &n);
    if (!line || n != 64 || sts_hex_decode(key, 32, line, 64) != 32) return STS_ERR_PARSE;
    /* Nothing but blank lines may follow. */
    while ((line = next_line(&pos, end, &n)))
        if (n > 0) return STS_ERR_PARSE;
    return 0;
}

/* What a key or trust file is read as: each asks more of the file. */
enum file_use { TRUST_FILE, PUBLIC_KEY_FILE, PRIVATE_KEY_FILE };

/* Refuses a file its use forbids (sts_file_check): a private key another
 * user owns or others may read, as ssh does; a trust file or public key
 * anyone may write, since anyone could then put their key in it. */
static int check_file(const struct stat *st, const char *path, void *ctx, char *err, size_t errlen)
{
    enum file_use use = *(const enum file_use *)ctx;
    if (use == PRIVATE_KEY_FILE && st->st_uid != geteuid()) {
        snprintf(err, errlen, "%s: private key is owned by uid %u, not by this user (uid %u); chown it",
                 path, (unsigned)st->st_uid, (unsigned)geteuid());
        return STS_ERR_PERM;
    }
    if (use == PRIVATE_KEY_FILE && (st->st_mode & 077)) {
        snprintf(err, errlen, "%s: private key is accessible by others (mode %03o); chmod 600 it",
                 path, (unsigned)(st->st_mode & 0777));
        return STS_ERR_PERM;
    }
    if (use != PRIVATE_KEY_FILE && (st->st_mode & S_IWOTH)) {
        snprintf(err, errlen, "%s: writable by everyone (mode %03o), so anyone could put a key in it; chmod o-w it",
                 path, (unsigned)(st->st_mode & 0777));
        return STS_ERR_PERM;
    }
    return 0;
}

int sts_trust_file_check(const struct stat *st, const char *path, void *ctx, char *err, size_t errlen)
{
    enum file_use use = TRUST_FILE;
    (void)ctx;
    return check_file(st, path, &use, err, errlen);
}

/* Reads a key or trust file: a regular file only (a FIFO or device is
 * refused; O_NONBLOCK, so that opening one never waits), at most max bytes,
 * as its use allows, and not empty. The text of a failed read is wiped. */
static int read_checked(const char *path, enum file_use use, size_t max, char **text, size_t *len,
                        char *err, size_t errlen)
{
    uint8_t *buf;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, use == TRUST_FILE ? "cannot open %s: %s" : "%s: %s", path, strerror(errno));
        return STS_ERR_IO;
    }
    int rc = sts_read_fd(fd, path, max, check_file, &use, &buf, len, err, errlen);
    if (rc != 0) return rc;
    if (*len == 0) {
        free(buf);
        snprintf(err, errlen, "%s: empty", path);
        return STS_ERR_PARSE;
    }
    *text = (char *)buf;
    return 0;
}

int sts_key_load(uint8_t key[32], const char *path, enum sts_key_kind kind, char *err, size_t errlen)
{
    char *text;
    size_t len;
    int rc = read_checked(path, kind == STS_KEY_PRIVATE ? PRIVATE_KEY_FILE : PUBLIC_KEY_FILE, STS_KEY_FILE_MAX,
                          &text, &len, err, errlen);
    if (rc != 0) return rc;
    if (sts_key_parse(key, text, len, kind) != 0) {
        snprintf(err, errlen, "%s: not an sts %s key file (expected '%s' and 64 hex digits)", path,
                 kind == STS_KEY_PRIVATE ? "private" : "public", header(kind));
        rc = STS_ERR_PARSE;
    }
    mbedtls_platform_zeroize(text, len);
    free(text);
    return rc;
}

/* Creates path exclusively; with force, first removes what is there. */
static int create_new(const char *path, mode_t mode, int force)
{
    if (force && unlink(path) != 0 && errno != ENOENT) return -1;
    /* O_EXCL already refuses a symbolic link; O_NOFOLLOW says so twice. */
    return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int sts_key_save(const char *path, const uint8_t key[32], enum sts_key_kind kind, int force,
                 char *err, size_t errlen)
{
    char text[STS_KEY_TEXT_MAX];
    int fd = create_new(path, kind == STS_KEY_PRIVATE ? 0600 : 0644, force);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return STS_ERR_IO;
    }
    sts_key_format(text, key, kind);
    int ok = write_all(fd, text, strlen(text)) == 0 && fsync(fd) == 0;
    int saved = errno;
    mbedtls_platform_zeroize(text, sizeof text);
    if (close(fd) != 0 && ok) ok = 0, saved = errno;
    if (ok) return 0;
    snprintf(err, errlen, "%s: %s", path, strerror(saved));
    /* Best effort: a partial key file must not stay behind; the write error is what matters. */
    (void)unlink(path);
    return STS_ERR_IO;
}

int sts_key_fingerprint(char *out, const uint8_t pub[32])
{
    uint8_t digest[32];
    unsigned char b64[48];
    size_t n = 0;
    if (sts_hash(STS_SHA256, pub, 32, digest) != 0 ||
        mbedtls_base64_encode(b64, sizeof b64, &n, digest, sizeof digest) != 0)
        return STS_ERR_CRYPTO;
    /* Unpadded, as ssh prints fingerprints. */
    while (n > 0 && b64[n - 1] == '=') n--;
    snprintf(out, STS_FINGERPRINT_LEN + 1, "SHA256:%.*s", (int)n, (const char *)b64);
    return 0;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Whether a trust line should hold a key: not blank, a '#' comment or the
 * header of a pasted .pub file. Skips the line's leading blanks. */
static int holds_key(const char **line, size_t *n)
{
    while (*n > 0 && is_blank(**line)) (*line)++, (*n)--;
    return !(*n == 0 || **line == '#' || is_line(*line, *n, STS_KEY_PUBLIC_HEADER));
}

/* Calls add(ctx, key, rest, restlen) for each key line of a trust list,
 * rest being what follows the 64 digits on its line. */
static int parse_trust_lines(const char *text, size_t len,
                             int (*add)(void *ctx, const uint8_t key[32], const char *rest, size_t restlen),
                             void *ctx, unsigned *bad_line)
{
    const char *pos = text, *end = text + len, *line;
    size_t n;
    unsigned number = 0;

    while ((line = next_line(&pos, end, &n))) {
        number++;
        if (!holds_key(&line, &n)) continue;
        uint8_t key[32];
        /* 64 hex digits, then the end of the line or white space and a comment. */
        int ok = n >= 64 && sts_hex_decode(key, 32, line, 64) == 32 && (n == 64 || is_blank(line[64]));
        if (!ok || add(ctx, key, line + 64, n - 64) != 0) {
            *bad_line = number;
            return STS_ERR_PARSE;
        }
    }
    return 0;
}

struct plain_adder {
    int (*add)(void *ctx, const uint8_t key[32]);
    void *ctx;
};

static int add_plain(void *ctx, const uint8_t key[32], const char *rest, size_t restlen)
{
    const struct plain_adder *a = ctx;
    (void)rest, (void)restlen;
    return a->add(a->ctx, key);
}

int sts_trust_parse(const char *text, size_t len, int (*add)(void *ctx, const uint8_t key[32]),
                    void *ctx, unsigned *bad_line)
{
    struct plain_adder a = { add, ctx };
    return parse_trust_lines(text, len, add_plain, &a, bad_line);
}

struct named_adder {
    int (*add)(void *ctx, const uint8_t key[32], const char *name, size_t namelen);
    void *ctx;
};

/* The next word of rest (up to a blank), or none at a '#' comment. */
static size_t next_word(const char **rest, size_t *restlen, const char **word)
{
    const char *p = *rest, *end = *rest + *restlen;
    while (p < end && is_blank(*p)) p++;
    const char *start = p;
    if (p < end && *p == '#') p = end, start = end;
    while (p < end && !is_blank(*p)) p++;
    *word = start;
    *restlen = (size_t)(end - p);
    *rest = p;
    return (size_t)(p - start);
}

/* The words after a key: an optional name and topic binding, then nothing
 * but a '#' comment. NULL, or what is wrong with them. */
static const char *split_words(const char *rest, size_t restlen, const char **name, size_t *namelen,
                               const char **binding, size_t *bindlen)
{
    const char *extra;
    if (memchr(rest, '\0', restlen)) return "a NUL byte in the line";
    *namelen = next_word(&rest, &restlen, name);
    *bindlen = next_word(&rest, &restlen, binding);
    if (next_word(&rest, &restlen, &extra) != 0) return "words after the topic binding (start a comment with '#')";
    return NULL;
}

/* The name, as sts_trust_load reads it (a line it refuses is refused). */
static int add_named(void *ctx, const uint8_t key[32], const char *rest, size_t restlen)
{
    const struct named_adder *a = ctx;
    const char *name, *binding;
    size_t namelen, bindlen;
    if (split_words(rest, restlen, &name, &namelen, &binding, &bindlen)) return -1;
    return a->add(a->ctx, key, name, namelen);
}

int sts_trust_parse_named(const char *text, size_t len,
                          int (*add)(void *ctx, const uint8_t key[32], const char *name, size_t namelen),
                          void *ctx, unsigned *bad_line)
{
    struct named_adder a = { add, ctx };
    return parse_trust_lines(text, len, add_named, &a, bad_line);
}

struct trust_loader {
    struct sts_trust *t;
    int rc;             /* why add refused a key */
    const char *reason; /* what is wrong with a line's words */
};

static int copy_word(char *out, size_t max, const char *word, size_t n)
{
    if (n > max) return -1;
    memcpy(out, word, n);
    out[n] = 0;
    return 0;
}

static int trust_add(void *ctx, const uint8_t key[32], const char *rest, size_t restlen)
{
    struct trust_loader *l = ctx;
    struct sts_trust *t = l->t;
    const char *name, *binding;
    size_t namelen, bindlen;
    struct sts_trust_entry e = { .name = "" };
    memcpy(e.key, key, 32);
    if ((l->reason = split_words(rest, restlen, &name, &namelen, &binding, &bindlen))) return -1;
    if (copy_word(e.name, STS_TRUST_NAME_MAX, name, namelen) != 0) {
        l->reason = "name longer than 64 bytes";
        return -1;
    }
    if (copy_word(e.binding, STS_TRUST_BINDING_MAX, binding, bindlen) != 0) {
        l->reason = "topic binding longer than 256 bytes";
        return -1;
    }
    if (t->n == STS_TRUST_MAX_KEYS) return l->rc = STS_ERR_TOO_BIG;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct sts_trust_entry *entries = realloc(t->entries, cap * sizeof *entries);
        if (!entries) return l->rc = STS_ERR_NOMEM;
        t->entries = entries;
        t->cap = cap;
    }
    t->entries[t->n++] = e;
    return 0;
}

/* Parses text into t, describing a failure in err. */
static int trust_fill(struct sts_trust *t, const char *path, const char *text, size_t len, char *err, size_t errlen)
{
    struct trust_loader l = { t, 0, NULL };
    unsigned line = 0;
    if (parse_trust_lines(text, len, trust_add, &l, &line) == 0) return 0;
    if (l.rc == STS_ERR_TOO_BIG)
        snprintf(err, errlen, "%s:%u: more than %d keys", path, line, STS_TRUST_MAX_KEYS);
    else if (l.rc == STS_ERR_NOMEM)
        snprintf(err, errlen, "%s:%u: out of memory", path, line);
    else if (l.reason)
        snprintf(err, errlen, "%s:%u: %s", path, line, l.reason);
    else
        snprintf(err, errlen, "%s:%u: not a public key (64 hex digits, then an optional name and topic binding)", path, line);
    return l.rc ? l.rc : STS_ERR_PARSE;
}

static int has_key_line(const char *text, size_t len)
{
    const char *pos = text, *end = text + len, *line;
    size_t n;
    while ((line = next_line(&pos, end, &n)))
        if (holds_key(&line, &n)) return 1;
    return 0;
}

int sts_trust_read(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    int rc = read_checked(path, TRUST_FILE, STS_TRUST_FILE_MAX, text, len, err, errlen);
    if (rc == 0 && !has_key_line(*text, *len)) {
        free(*text);
        snprintf(err, errlen, "%s: no keys, only comments and blank lines (a trust file lists at least one key)",
                 path);
        rc = STS_ERR_PARSE;
    }
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const struct sts_trust_entry *const *)a)->name,
                  (*(const struct sts_trust_entry *const *)b)->name);
}

/* The named entries of t, sorted by name (entries no longer move). */
static int index_names(struct sts_trust *t, const char *path, char *err, size_t errlen)
{
    if (t->n == 0) return 0;
    t->by_name = malloc(t->n * sizeof *t->by_name);
    if (!t->by_name) {
        snprintf(err, errlen, "%s: out of memory", path);
        return STS_ERR_NOMEM;
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->entries[i].name[0]) t->by_name[t->named++] = &t->entries[i];
    qsort(t->by_name, t->named, sizeof *t->by_name, by_name);
    return 0;
}

int sts_trust_load(struct sts_trust *t, const char *path, char *err, size_t errlen)
{
    char *text, why[480];
    size_t len;
    *t = (struct sts_trust){ 0 };
    int rc = sts_trust_read(path, &text, &len, why, sizeof why);
    if (rc == 0) {
        rc = trust_fill(t, path, text, len, why, sizeof why);
        free(text);
    }
    if (rc == 0) rc = index_names(t, path, why, sizeof why);
    if (rc == 0) return 0;
    sts_trust_free(t);
    snprintf(err, errlen, "trust: %s", why);
    return rc;
}

const struct sts_trust_entry *sts_trust_find(const struct sts_trust *t, const uint8_t pub[32])
{
    size_t found = SIZE_MAX;
    /* No early exit: the position of a match must not show in the time. */
    for (size_t i = 0; i < t->n; i++) {
        size_t match = (size_t)0 - (size_t)(mbedtls_ct_memcmp(t->entries[i].key, pub, 32) == 0);
        found = (found & ~match) | (i & match);
    }
    return found == SIZE_MAX ? NULL : &t->entries[found];
}

int sts_trust_contains(const struct sts_trust *t, const uint8_t pub[32])
{
    return sts_trust_find(t, pub) != NULL;
}

int sts_trust_has_name(const struct sts_trust *t, const char *name, size_t len)
{
    size_t lo = 0, hi = t->named;
    if (len == 0 || len > STS_TRUST_NAME_MAX) return 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *other = t->by_name[mid]->name;
        size_t olen = strlen(other);
        int c = memcmp(name, other, len < olen ? len : olen); /* strcmp's order */
        if (c == 0) c = (len > olen) - (len < olen);
        if (c == 0) return 1;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return 0;
}

void sts_trust_free(struct sts_trust *t)
{
    free(t->by_name);
    free(t->entries);
    *t = (struct sts_trust){ 0 };
}
