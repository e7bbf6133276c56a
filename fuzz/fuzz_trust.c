/* The trust-file reader (src/crypto/keyfile.c) over arbitrary bytes: the
 * bytes are the file (a memfd, mode 0600, read through its /proc path, so
 * the reader's checks on the file pass and its parser gets them all).
 * Checked: sts_trust_load accepts the file exactly when sts_trust_parse
 * finds no bad line and at least one key, with as many entries as keys, each
 * with a name of at most 64 and a binding of at most 256 bytes, neither
 * holding a blank; every entry is found by its key, and by its name exactly
 * when it has one (its name one byte shorter is found only if an
 * entry has that name too); names agree with
 * sts_trust_parse_named (the sealed gateway's reader), except that for it a
 * first word starting with '#' is a name where sts_trust_load sees a
 * comment (reported, not yet decided); a refusal says "trust: " and names
 * the file; the list is empty after a refusal. */
#include "crypto/keyfile.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail_if(int bad)
{
    if (bad) abort();
}

struct keys {
    size_t n;
    uint8_t (*key)[32];
    char (*name)[STS_TRUST_NAME_MAX + 1];
};

static int count(void *ctx, const uint8_t key[32])
{
    (void)key;
    ((struct keys *)ctx)->n++;
    return 0;
}

/* The first entries' names, to compare with what the loader keeps. */
static int named(void *ctx, const uint8_t key[32], const char *name, size_t namelen)
{
    struct keys *k = ctx;
    if (k->n < 64) {
        memcpy(k->key[k->n], key, 32);
        size_t n = namelen < STS_TRUST_NAME_MAX ? namelen : STS_TRUST_NAME_MAX;
        memcpy(k->name[k->n], name, n);
        k->name[k->n][n] = '\0';
    }
    k->n++;
    return 0;
}

static int has_blank(const char *s)
{
    return strpbrk(s, " \t") != NULL;
}

/* The name index's answer, found the slow way. */
static int some_entry_named(const struct sts_trust *t, const char *name, size_t len)
{
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->entries[i].name) == len && memcmp(t->entries[i].name, name, len) == 0) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("trust", MFD_CLOEXEC);
        fail_if(fd < 0 || fchmod(fd, 0600) != 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    fail_if(ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size);

    int has_nul = memchr(data, 0, size) != NULL;
    struct keys plain = { 0 };
    unsigned line = 0;
    int parsed = sts_trust_parse((const char *)data, size, count, &plain, &line) == 0;

    struct sts_trust t;
    char err[512];
    int rc = sts_trust_load(&t, path, err, sizeof err);
    if (rc != 0) {
        fail_if(t.n != 0 || t.entries != NULL);
        fail_if(strncmp(err, "trust: ", 7) != 0 || !strstr(err, path));
        return 0;
    }
    fail_if(!parsed || plain.n == 0 || t.n != plain.n);

    static uint8_t keys[64][32];
    static char names[64][STS_TRUST_NAME_MAX + 1];
    struct keys by_name = { 0, keys, names };
    fail_if(sts_trust_parse_named((const char *)data, size, named, &by_name, &line) != 0 || by_name.n != t.n);
    for (size_t i = 0; i < t.n; i++) {
        const struct sts_trust_entry *e = &t.entries[i];
        fail_if(strlen(e->name) > STS_TRUST_NAME_MAX || strlen(e->binding) > STS_TRUST_BINDING_MAX);
        /* A NUL in a name ends it early: reported, not yet decided. */
        fail_if(has_blank(e->name) || has_blank(e->binding) || (e->binding[0] && !e->name[0] && !has_nul));
        fail_if(!sts_trust_contains(&t, e->key));
        const struct sts_trust_entry *found = sts_trust_find(&t, e->key);
        fail_if(!found || memcmp(found->key, e->key, 32) != 0);
        if (i < 64) fail_if(memcmp(keys[i], e->key, 32) != 0 || (names[i][0] != '#' && strcmp(names[i], e->name) != 0));
        size_t len = strlen(e->name);
        fail_if(sts_trust_has_name(&t, e->name, len) != (len > 0));
        if (len > 1) fail_if(sts_trust_has_name(&t, e->name, len - 1) != some_entry_named(&t, e->name, len - 1));
    }
    sts_trust_free(&t);
    fail_if(t.n != 0 || t.entries != NULL);
    return 0;
}
