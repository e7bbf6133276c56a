#include "proto/acl.h"
#include "crypto/keyfile.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/hex.h"
#include "util/lines.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (16u << 20) /* 16 MiB */
#define NO_ENTRY SIZE_MAX
#define FIELDS 5 /* key, name, groups, perm and whatever follows: an error */

/* Open addressing with linear probing over indexes into the entries, kept at
 * most half full so a probe always ends on an empty slot. One table finds
 * entries by public key (the ACL's own), another by name while parsing. */
struct table {
    size_t *slots;
    size_t size; /* a power of two, or 0 */
    int by_name;
};

static uint64_t fnv1a(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3u;
    return h;
}

static const void *entry_field(const struct sts_acl_entry *e, int by_name, size_t *len)
{
    *len = by_name ? strlen(e->name) : STS_X25519_LEN;
    return by_name ? (const void *)e->name : (const void *)e->pub;
}

/* The slot holding the entry whose field is k, or the empty slot where it would go. */
static size_t slot_of(const struct table *t, const struct sts_acl_entry *entries, const void *k,
                      size_t klen)
{
    size_t mask = t->size - 1, i = (size_t)fnv1a(k, klen) & mask, flen;

    for (;; i = (i + 1) & mask) {
        if (t->slots[i] == NO_ENTRY) return i;
        const void *f = entry_field(&entries[t->slots[i]], t->by_name, &flen);
        if (flen == klen && memcmp(f, k, klen) == 0) return i;
    }
}

/* The entry whose field is k, or NULL. */
static const struct sts_acl_entry *table_find(const struct table *t,
                                              const struct sts_acl_entry *entries, const void *k,
                                              size_t klen)
{
    if (t->size == 0) return NULL;
    size_t i = t->slots[slot_of(t, entries, k, klen)];
    return i == NO_ENTRY ? NULL : &entries[i];
}

static void table_insert(struct table *t, const struct sts_acl_entry *entries, size_t index)
{
    size_t flen;
    const void *f = entry_field(&entries[index], t->by_name, &flen);
    t->slots[slot_of(t, entries, f, flen)] = index;
}

/* Room for count + 1 entries; entries 0 .. count - 1 rehashed when it grows. */
static int table_reserve(struct table *t, const struct sts_acl_entry *entries, size_t count)
{
    size_t size = t->size ? t->size : 16;
    size_t *slots;

    while (2 * (count + 1) > size) size *= 2;
    if (size == t->size) return 0;
    slots = malloc(size * sizeof *slots);
    if (slots == NULL) return STS_ERR_NOMEM;
    for (size_t i = 0; i < size; i++) slots[i] = NO_ENTRY;
    free(t->slots);
    t->slots = slots;
    t->size = size;
    for (size_t i = 0; i < count; i++) table_insert(t, entries, i);
    return 0;
}

struct span {
    const char *s;
    size_t n;
};

struct parser {
    struct sts_acl *acl;
    struct table keys, names;
    unsigned *lines; /* the line of each entry, for messages about duplicates */
    size_t cap;      /* entries and lines allocated */
    const char *file;
    unsigned line;
    char *err;
    size_t errlen;
};

/* Writes "file:line: [field 'f': ]message" into err and returns code. */
__attribute__((format(printf, 4, 5)))
static int fail(struct parser *ps, const char *field, int code, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (ps->errlen == 0) return code;
    n = field ? snprintf(ps->err, ps->errlen, "%s:%u: field '%s': ", ps->file, ps->line, field)
              : snprintf(ps->err, ps->errlen, "%s:%u: ", ps->file, ps->line);
    if (n >= 0 && (size_t)n < ps->errlen) {
        va_start(ap, fmt);
        vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* A field as quoted in a message: at most 64 bytes, the unprintable ones as '?'. */
static const char *quote(struct span f, char out[72])
{
    size_t n = f.n > STS_GROUP_NAME_MAX ? STS_GROUP_NAME_MAX : f.n;

    for (size_t i = 0; i < n; i++)
        out[i] = f.s[i] >= 0x20 && f.s[i] < 0x7f ? f.s[i] : '?';
    strcpy(out + n, f.n > n ? "..." : "");
    return out;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* The blank-separated fields of a line, up to a comment; at most FIELDS. */
static size_t split_fields(const char *s, size_t n, struct span f[FIELDS])
{
    size_t count = 0, i = 0;

    while (count < FIELDS) {
        while (i < n && is_blank(s[i])) i++;
        if (i == n || s[i] == '#') break;
        size_t start = i;
        while (i < n && !is_blank(s[i])) i++;
        f[count++] = (struct span){ s + start, i - start };
    }
    return count;
}

static int parse_key(struct parser *ps, struct span f, uint8_t pub[STS_X25519_LEN])
{
    const struct sts_acl_entry *first;

    if (f.n != 2 * STS_X25519_LEN || sts_hex_decode(pub, STS_X25519_LEN, f.s, f.n) != STS_X25519_LEN)
        return fail(ps, "key", STS_ERR_PARSE, "expected %d hex digits", 2 * STS_X25519_LEN);
    first = table_find(&ps->keys, ps->acl->entries, pub, STS_X25519_LEN);
    if (first != NULL)
        return fail(ps, "key", STS_ERR_PARSE, "listed twice (first on line %u)",
                    ps->lines[first - ps->acl->entries]);
    return 0;
}

static int parse_name(struct parser *ps, struct span f, char name[STS_GROUP_NAME_MAX + 1])
{
    const struct sts_acl_entry *other;
    char q[72];

    if (!sts_group_name_valid(f.s, f.n))
        return fail(ps, "name", STS_ERR_PARSE, "'%s' is not a valid name", quote(f, q));
    memcpy(name, f.s, f.n);
    name[f.n] = '\0';
    other = table_find(&ps->names, ps->acl->entries, name, f.n);
    if (other != NULL)
        return fail(ps, "name", STS_ERR_PARSE, "'%s' is already the name of the key on line %u",
                    name, ps->lines[other - ps->acl->entries]);
    return 0;
}

/* Splits "a,b,c" into groups (room for STS_ACL_MAX_GROUPS), each valid and given once. */
static int parse_groups(struct parser *ps, struct span f, struct span groups[STS_ACL_MAX_GROUPS],
                        size_t *count)
{
    const char *end = f.s + f.n, *p = f.s;
    char q[72];

    for (*count = 0;; p++) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        struct span g = { p, (size_t)((comma ? comma : end) - p) };
        if (!sts_group_name_valid(g.s, g.n))
            return fail(ps, "groups", STS_ERR_PARSE, "'%s' is not a valid group name", quote(g, q));
        for (size_t i = 0; i < *count; i++)
            if (groups[i].n == g.n && memcmp(groups[i].s, g.s, g.n) == 0)
                return fail(ps, "groups", STS_ERR_PARSE, "'%s' listed twice", quote(g, q));
        if (*count == STS_ACL_MAX_GROUPS)
            return fail(ps, "groups", STS_ERR_TOO_BIG, "more than %d groups", STS_ACL_MAX_GROUPS);
        groups[(*count)++] = g;
        if (comma == NULL) return 0;
        p = comma;
    }
}

static int parse_perm(struct parser *ps, const struct span *f, size_t nfields, int *perm)
{
    char q[72];

    *perm = STS_ACL_READ | STS_ACL_WRITE;
    if (nfields < 4) return 0;
    if (f[3].n == 1 && f[3].s[0] == 'r') *perm = STS_ACL_READ;
    else if (f[3].n == 1 && f[3].s[0] == 'w') *perm = STS_ACL_WRITE;
    else if (!(f[3].n == 2 && memcmp(f[3].s, "rw", 2) == 0))
        return fail(ps, "perm", STS_ERR_PARSE, "unexpected '%s' (expected r, w or rw)", quote(f[3], q));
    if (nfields > 4) return fail(ps, "perm", STS_ERR_PARSE, "unexpected text after the permission");
    return 0;
}

/* The groups as one allocation: the pointers, then the NUL-terminated names. */
static char **copy_groups(const struct span *groups, size_t count)
{
    size_t bytes = count * sizeof(char *);
    char **copy, *s;

    for (size_t i = 0; i < count; i++) bytes += groups[i].n + 1;
    copy = malloc(bytes);
    if (copy == NULL) return NULL;
    s = (char *)(copy + count);
    for (size_t i = 0; i < count; i++) {
        copy[i] = s;
        memcpy(s, groups[i].s, groups[i].n);
        s[groups[i].n] = '\0';
        s += groups[i].n + 1;
    }
    return copy;
}

/* Room for one more entry in the array and both tables. */
static int reserve(struct parser *ps)
{
    struct sts_acl *acl = ps->acl;

    if (acl->count == ps->cap) {
        size_t cap = ps->cap ? 2 * ps->cap : 64;
        struct sts_acl_entry *entries = realloc(acl->entries, cap * sizeof *entries);
        if (entries == NULL) return STS_ERR_NOMEM;
        acl->entries = entries;
        unsigned *lines = realloc(ps->lines, cap * sizeof *lines);
        if (lines == NULL) return STS_ERR_NOMEM;
        ps->lines = lines;
        ps->cap = cap;
    }
    if (table_reserve(&ps->keys, acl->entries, acl->count) != 0
        || table_reserve(&ps->names, acl->entries, acl->count) != 0)
        return STS_ERR_NOMEM;
    return 0;
}

static int add_entry(struct parser *ps, struct sts_acl_entry *e, const struct span *groups)
{
    struct sts_acl *acl = ps->acl;

    if (acl->count == STS_ACL_MAX_ENTRIES)
        return fail(ps, NULL, STS_ERR_TOO_BIG, "more than %d entries", STS_ACL_MAX_ENTRIES);
    if (reserve(ps) != 0 || (e->groups = copy_groups(groups, e->ngroups)) == NULL)
        return fail(ps, NULL, STS_ERR_NOMEM, "out of memory");
    acl->entries[acl->count] = *e;
    ps->lines[acl->count] = ps->line;
    table_insert(&ps->keys, acl->entries, acl->count);
    table_insert(&ps->names, acl->entries, acl->count);
    acl->count++;
    return 0;
}

/* One line without its end of line: blank, a comment, or an entry. */
static int parse_line(struct parser *ps, const char *s, size_t n)
{
    struct span f[FIELDS], groups[STS_ACL_MAX_GROUPS];
    struct sts_acl_entry e = { .groups = NULL };
    size_t nfields = split_fields(s, n, f);
    int rc;

    if (nfields == 0) return 0;
    if ((rc = parse_key(ps, f[0], e.pub)) != 0) return rc;
    if (nfields < 2) return fail(ps, "name", STS_ERR_PARSE, "missing");
    if ((rc = parse_name(ps, f[1], e.name)) != 0) return rc;
    if (nfields < 3) return fail(ps, "groups", STS_ERR_PARSE, "missing");
    if ((rc = parse_groups(ps, f[2], groups, &e.ngroups)) != 0) return rc;
    if ((rc = parse_perm(ps, f, nfields, &e.perm)) != 0) return rc;
    return add_entry(ps, &e, groups);
}

int sts_acl_parse(struct sts_acl *acl, const char *text, size_t len, const char *file,
                  char *err, size_t errlen)
{
    struct parser ps = { .acl = acl, .names.by_name = 1, .file = file, .err = err, .errlen = errlen };
    const char *line;
    size_t pos = 0, n;
    int rc = 0;

    memset(acl, 0, sizeof *acl);
    if (errlen > 0) err[0] = '\0';
    while (rc == 0 && sts_next_line(text, len, &pos, &line, &n)) {
        ps.line++;
        rc = parse_line(&ps, line, n);
    }
    free(ps.names.slots);
    free(ps.lines);
    acl->slots = ps.keys.slots;
    acl->nslots = ps.keys.size;
    if (rc != 0) sts_acl_free(acl);
    return rc;
}

int sts_acl_load(struct sts_acl *acl, const char *path, char *err, size_t errlen)
{
    uint8_t *text = NULL;
    size_t len = 0;

    memset(acl, 0, sizeof *acl);
    /* O_NONBLOCK: opening a FIFO must not wait; sts_read_fd refuses it. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return STS_ERR_IO;
    }
    /* The ACL lists the keys the key server trusts: checked as a trust file is. */
    int rc = sts_read_fd(fd, path, MAX_FILE, sts_trust_file_check, NULL, &text, &len, err, errlen);
    if (rc != 0) return rc;
    rc = sts_acl_parse(acl, (const char *)text, len, path, err, errlen);
    free(text);
    return rc;
}

const struct sts_acl_entry *sts_acl_find(const struct sts_acl *acl, const uint8_t pub[STS_X25519_LEN])
{
    struct table keys = { .slots = acl->slots, .size = acl->nslots };
    return table_find(&keys, acl->entries, pub, STS_X25519_LEN);
}

int sts_acl_perm(const struct sts_acl_entry *e, const char *group)
{
    for (size_t i = 0; i < e->ngroups; i++)
        if (strcmp(e->groups[i], group) == 0) return e->perm;
    return 0;
}

void sts_acl_free(struct sts_acl *acl)
{
    for (size_t i = 0; i < acl->count; i++) free(acl->entries[i].groups);
    free(acl->entries);
    free(acl->slots);
    memset(acl, 0, sizeof *acl);
}
