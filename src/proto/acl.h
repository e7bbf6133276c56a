/* The key server's access list: who may join which groups.
 *
 *   # comment
 *   <64 hex digits: the member's X25519 public key> <name> <group>[,<group>...] [r|w|rw]
 *
 * Fields separated by spaces or tabs; the permission defaults to rw (r:
 * receive only, w: send only). Names and groups follow
 * sts_group_name_valid. A key listed twice, a name given to two keys, or a
 * group listed twice on a line is an error. Errors name the file, the line
 * and the field: "acl.txt:3: field 'groups': 'a/b' is not a valid name". */
#ifndef STS_PROTO_ACL_H
#define STS_PROTO_ACL_H

#include "crypto/sizes.h"
#include "proto/group_msg.h"

#include <stddef.h>
#include <stdint.h>

#define STS_ACL_READ 1
#define STS_ACL_WRITE 2
#define STS_ACL_MAX_ENTRIES 100000
#define STS_ACL_MAX_GROUPS 64   /* per line */

struct sts_acl_entry {
    uint8_t pub[STS_X25519_LEN];
    char name[STS_GROUP_NAME_MAX + 1];
    char **groups;
    size_t ngroups;
    int perm;                   /* STS_ACL_READ | STS_ACL_WRITE */
};

struct sts_acl {
    struct sts_acl_entry *entries;
    size_t count;
    /* lookup by key: an open-addressing table of indexes into entries */
    size_t *slots;
    size_t nslots;
};

/* Parses text (len bytes; `file` names it in errors) into acl. 0, or
 * STS_ERR_PARSE with the message in err, STS_ERR_TOO_BIG, STS_ERR_NOMEM.
 * acl needs no initialisation and holds nothing on failure. */
int sts_acl_parse(struct sts_acl *acl, const char *text, size_t len, const char *file,
                  char *err, size_t errlen);
/* Reads and parses the file at path; errors as above, STS_ERR_IO naming the file. */
int sts_acl_load(struct sts_acl *acl, const char *path, char *err, size_t errlen);
/* The entry for a public key, NULL if it is not listed. */
const struct sts_acl_entry *sts_acl_find(const struct sts_acl *acl, const uint8_t pub[STS_X25519_LEN]);
/* The permissions (STS_ACL_READ | STS_ACL_WRITE) entry has on group, 0 when
 * the group is not on its line. */
int sts_acl_perm(const struct sts_acl_entry *e, const char *group);
void sts_acl_free(struct sts_acl *acl);

#endif
