/* ACL files: any bytes parse or fail with a message naming the file, and
 * leave nothing allocated. Whatever parses keeps the documented rules: every
 * entry is found by its key, names are valid and given once, groups are
 * valid and listed once per entry, and sts_acl_perm agrees with the line. */
#include "proto/acl.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_entry(const struct sts_acl *acl, const struct sts_acl_entry *e)
{
    if (sts_acl_find(acl, e->pub) != e) abort();
    if (!sts_group_name_valid(e->name, strlen(e->name))) abort();
    if (e->perm < 1 || e->perm > (STS_ACL_READ | STS_ACL_WRITE)) abort();
    if (e->ngroups < 1 || e->ngroups > STS_ACL_MAX_GROUPS) abort();
    for (size_t g = 0; g < e->ngroups; g++) {
        if (!sts_group_name_valid(e->groups[g], strlen(e->groups[g]))) abort();
        if (sts_acl_perm(e, e->groups[g]) != e->perm) abort();
        for (size_t h = 0; h < g; h++)
            if (strcmp(e->groups[h], e->groups[g]) == 0) abort();
    }
    if (sts_acl_perm(e, "") != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sts_acl acl;
    char err[256];

    if (sts_acl_parse(&acl, (const char *)data, size, "fuzz", err, sizeof err) != 0) {
        if (strncmp(err, "fuzz:", 5) != 0 || acl.count != 0 || acl.entries != NULL || acl.slots != NULL)
            abort();
        return 0;
    }
    for (size_t i = 0; i < acl.count; i++) {
        check_entry(&acl, &acl.entries[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(acl.entries[i].name, acl.entries[j].name) == 0) abort();
    }
    sts_acl_free(&acl);
    return 0;
}
