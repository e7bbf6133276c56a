#include "crypto/keyfile.h"
#include "crypto/hash.h"
#include "util/error.h"
#include "util/hex.h"

#include <mbedtls/base64.h>
#include <mbedtls/platform_util.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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

int sts_key_load(uint8_t key[32], const char *path, enum sts_key_kind kind, char *err, size_t errlen)
{
    char text[STS_KEY_FILE_MAX];
    struct stat st;
    int rc = 0;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return STS_ERR_IO;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return STS_ERR_IO;
    }
    if (kind == STS_KEY_PRIVATE && (st.st_mode & 077)) {
        snprintf(err, errlen, "%s: private key is accessible by others (mode %03o); chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
        close(fd);
        return STS_ERR_PERM;
    }
    ssize_t got = read(fd, text, sizeof text);
    close(fd);
    if (got < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        rc = STS_ERR_IO;
    } else if ((size_t)got == sizeof text) {
        snprintf(err, errlen, "%s: too large for a key file", path);
        rc = STS_ERR_TOO_BIG;
    } else if (sts_key_parse(key, text, (size_t)got, kind) != 0) {
        snprintf(err, errlen, "%s: not an sts %s key file (expected '%s' and 64 hex digits)", path,
                 kind == STS_KEY_PRIVATE ? "private" : "public", header(kind));
        rc = STS_ERR_PARSE;
    }
    mbedtls_platform_zeroize(text, sizeof text);
    return rc;
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

int sts_trust_parse(const char *text, size_t len, int (*add)(void *ctx, const uint8_t key[32]),
                    void *ctx, unsigned *bad_line)
{
    const char *pos = text, *end = text + len, *line;
    size_t n;
    unsigned number = 0;

    while ((line = next_line(&pos, end, &n))) {
        number++;
        while (n > 0 && (*line == ' ' || *line == '\t')) line++, n--;
        if (n == 0 || *line == '#' || is_line(line, n, STS_KEY_PUBLIC_HEADER)) continue;
        uint8_t key[32];
        /* 64 hex digits, then the end of the line or white space and a comment. */
        int ok = n >= 64 && sts_hex_decode(key, 32, line, 64) == 32 &&
                 (n == 64 || line[64] == ' ' || line[64] == '\t');
        if (!ok || add(ctx, key) != 0) {
            *bad_line = number;
            return STS_ERR_PARSE;
        }
    }
    return 0;
}
