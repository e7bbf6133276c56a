#include "proto/config.h"
#include "util/error.h"
#include "util/lines.h"

#include <mbedtls/platform_util.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes "name:line: [key 'k': ]message" into err and returns code. */
__attribute__((format(printf, 7, 8)))
static int fail(char *err, size_t errlen, const char *name, unsigned line, const char *key,
                int code, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (errlen == 0) return code;
    n = key ? snprintf(err, errlen, "%s:%u: key '%s': ", name, line, key)
            : snprintf(err, errlen, "%s:%u: ", name, line);
    if (n >= 0 && (size_t)n < errlen) {
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return code;
}

struct parser {
    struct sts_config *cfg;
    unsigned line;
    const char *key; /* the current line's key, once read */
    char *err;
    size_t errlen;
};

#define PARSE_FAIL(ps, code, ...) \
    fail((ps)->err, (ps)->errlen, (ps)->cfg->name, (ps)->line, (ps)->key, code, __VA_ARGS__)

static int is_blank(char c) { return c == ' ' || c == '\t'; }

static int is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '_' || c == '.' || c == '-';
}

/* A byte quoted in a message: itself if printable, else its code. */
static const char *describe(const char *s, size_t n, size_t i, char out[16])
{
    unsigned char c = i < n ? (unsigned char)s[i] : 0;
    if (i >= n) return "end of line";
    if (c >= 0x20 && c < 0x7f) snprintf(out, 16, "'%c'", c);
    else snprintf(out, 16, "byte 0x%02x", c);
    return out;
}

static size_t skip_blanks(const char *s, size_t n, size_t i)
{
    while (i < n && is_blank(s[i])) i++;
    return i;
}

static char *copy_text(const char *s, size_t n)
{
    char *copy = malloc(n + 1);
    if (copy != NULL) {
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    return copy;
}

/* "..." with \" and \\; after the closing quote only blanks or a comment. */
static int read_quoted(struct parser *ps, const char *s, size_t n, size_t i, char *val, size_t *vlen)
{
    size_t o = 0;

    for (i++; i < n && s[i] != '"'; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            i++;
            if (s[i] != '"' && s[i] != '\\')
                return PARSE_FAIL(ps, STS_ERR_PARSE, "unknown escape '\\%c' in a quoted value "
                                  "(only \\\" and \\\\)", s[i]);
        }
        if (o == STS_CONFIG_MAX_VALUE)
            return PARSE_FAIL(ps, STS_ERR_TOO_BIG, "value longer than %d bytes", STS_CONFIG_MAX_VALUE);
        val[o++] = s[i];
    }
    if (i >= n) return PARSE_FAIL(ps, STS_ERR_PARSE, "unterminated quoted value");
    i = skip_blanks(s, n, i + 1);
    if (i < n && s[i] != '#')
        return PARSE_FAIL(ps, STS_ERR_PARSE, "unexpected text after the quoted value");
    *vlen = o;
    return 0;
}

/* Up to the end of the line or a '#' after a blank, trailing blanks cut. */
static int read_plain(struct parser *ps, const char *s, size_t n, size_t i, char *val, size_t *vlen)
{
    size_t start = i, end = i;

    for (; i < n; i++) {
        if (s[i] == '#' && (i == start || is_blank(s[i - 1]))) break;
        if (!is_blank(s[i])) end = i + 1;
    }
    if (end - start > STS_CONFIG_MAX_VALUE)
        return PARSE_FAIL(ps, STS_ERR_TOO_BIG, "value longer than %d bytes", STS_CONFIG_MAX_VALUE);
    memcpy(val, s + start, end - start);
    *vlen = end - start;
    return 0;
}

static int add_entry(struct parser *ps, const char *value, size_t vlen)
{
    struct sts_config *cfg = ps->cfg;
    struct sts_config_entry *e;

    for (size_t i = 0; i < cfg->count; i++) {
        if (strcmp(cfg->entries[i].key, ps->key) == 0)
            return PARSE_FAIL(ps, STS_ERR_PARSE, "duplicate key (first set on line %u)",
                              cfg->entries[i].line);
    }
    if (cfg->count == STS_CONFIG_MAX_KEYS)
        return PARSE_FAIL(ps, STS_ERR_TOO_BIG, "more than %d keys", STS_CONFIG_MAX_KEYS);
    e = &cfg->entries[cfg->count];
    e->key = copy_text(ps->key, strlen(ps->key));
    e->value = copy_text(value, vlen);
    e->line = ps->line;
    cfg->count++; /* counted even when half made, so free releases it */
    if (e->key == NULL || e->value == NULL) return PARSE_FAIL(ps, STS_ERR_NOMEM, "out of memory");
    return 0;
}

static int check_characters(struct parser *ps, const char *s, size_t n)
{
    if (n > STS_CONFIG_MAX_LINE)
        return PARSE_FAIL(ps, STS_ERR_TOO_BIG, "line longer than %d bytes", STS_CONFIG_MAX_LINE);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return PARSE_FAIL(ps, STS_ERR_PARSE, "control character 0x%02x in the line", c);
    }
    return 0;
}

/* One line without its end of line: blank, a comment, or key = value. */
static int parse_line(struct parser *ps, const char *s, size_t n)
{
    char key[STS_CONFIG_MAX_LINE + 1], val[STS_CONFIG_MAX_VALUE], what[16];
    size_t i, k, vlen = 0;
    int rc;

    ps->key = NULL;
    rc = check_characters(ps, s, n);
    if (rc != 0) return rc;
    i = skip_blanks(s, n, 0);
    if (i == n || s[i] == '#') return 0;
    for (k = i; i < n && is_key_char(s[i]); i++) key[i - k] = s[i];
    key[i - k] = '\0';
    if (i == k)
        return PARSE_FAIL(ps, STS_ERR_PARSE, "expected 'key = value', got %s", describe(s, n, i, what));
    ps->key = key;
    i = skip_blanks(s, n, i);
    if (i == n || s[i] != '=')
        return PARSE_FAIL(ps, STS_ERR_PARSE, "expected '=' after the key, got %s",
                          describe(s, n, i, what));
    i = skip_blanks(s, n, i + 1);
    rc = i < n && s[i] == '"' ? read_quoted(ps, s, n, i, val, &vlen)
                              : read_plain(ps, s, n, i, val, &vlen);
    if (rc == 0) rc = add_entry(ps, val, vlen);
    mbedtls_platform_zeroize(val, sizeof val);
    return rc;
}

int sts_config_parse(struct sts_config *cfg, const char *name, const char *text, size_t len,
                     char *err, size_t errlen)
{
    struct parser ps = { .cfg = cfg, .err = err, .errlen = errlen };
    const char *line;
    size_t pos = 0, n;
    int rc = 0;

    memset(cfg, 0, sizeof *cfg);
    if (errlen > 0) err[0] = '\0';
    cfg->name = copy_text(name, strlen(name));
    if (cfg->name == NULL) return fail(err, errlen, name, 0, NULL, STS_ERR_NOMEM, "out of memory");
    while (rc == 0 && sts_next_line(text, len, &pos, &line, &n)) {
        ps.line++;
        rc = parse_line(&ps, line, n);
    }
    if (rc != 0) sts_config_free(cfg);
    return rc;
}

void sts_config_free(struct sts_config *cfg)
{
    for (size_t i = 0; i < cfg->count; i++) {
        struct sts_config_entry *e = &cfg->entries[i];
        if (e->value != NULL) mbedtls_platform_zeroize(e->value, strlen(e->value));
        free(e->value);
        free(e->key);
    }
    free(cfg->name);
    memset(cfg, 0, sizeof *cfg);
}
