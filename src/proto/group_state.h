/* The key server core's records, shared by its message logic
 * (group_server.c) and its state file (group_state.c). Private to the two. */
#ifndef STS_PROTO_GROUP_STATE_H
#define STS_PROTO_GROUP_STATE_H

#include "proto/group_server.h"

#define GKS_INDEX_MAX 65535u    /* sender indexes are 1..65535 */
#define GKS_INDEX_BLOCK 256u    /* indexes reserved (and saved) at a time */
#define GKS_CLIENT_ID_MAX 255   /* a JOIN's client id is a str8 */

struct gks_group;

/* One member in one group, over one session (or none while detached). */
struct gks_member {
    struct gks_member *prev, *next; /* in its group, oldest first */
    struct gks_member *peer_next;   /* in the core's peer table bucket */
    struct gks_group *group;
    void *peer;                     /* NULL: restored, waiting for its member */
    uint8_t pub[STS_X25519_LEN];
    char name[STS_GROUP_NAME_MAX + 1];
    uint8_t perm;                   /* STS_ACL_READ | STS_ACL_WRITE */
    uint8_t has_sign_pub;
    uint16_t index;                 /* 0: may not send */
    uint8_t sign_pub[STS_ECDSA_PUB_LEN];
    char client_id[GKS_CLIENT_ID_MAX + 1];
    uint32_t first, last;           /* SLOTTED: the granted slots */
    uint32_t ping_token;
    double last_seen;
    double ping_deadline;           /* 0: no ping pending */
    double resume_deadline;         /* detached: leaves at this time */
};

struct gks_group {
    struct gks_group *next;
    char name[STS_GROUP_NAME_MAX + 1];
    struct sts_gks_group_config gc;
    uint32_t epoch, prev_epoch;     /* prev_epoch 0: no previous key */
    uint8_t key[STS_KEY_LEN], prev_key[STS_KEY_LEN];
    uint8_t root[STS_KEY_LEN];      /* SLOTTED */
    uint64_t origin_ms;             /* SLOTTED: start of slot 0, a multiple of T */
    uint32_t next_index;            /* 1 .. 65536 (65536: none left) */
    uint32_t mark;                  /* indexes below it are reserved in the saved state */
    struct gks_member *members, *last_member;
    size_t nmembers;
    uint8_t rekey_due;              /* a rekey failed to save: retried by tick */
    uint8_t affected;               /* set_acl: lost a member, rekey once */
};

struct sts_gks {
    struct sts_gks_config cfg;
    struct sts_gks_ops ops;
    void *ud;
    struct sts_acl acl;
    struct gks_group *groups, *last_group;
    size_t ngroups, nmembers, npeers;
    struct gks_member **table;      /* attached memberships by peer */
    size_t nbuckets;
    uint8_t *buf;                   /* one encoded message (STS_GMSG_MAX) */
    struct sts_gmsg_roster_entry *entries; /* STS_GMSG_ROSTER_MAX, for decoding and rosters */
    struct sts_gks_stats stats;
    double now;                     /* the latest time given, for group_info */
};

/* Whether a group's settings are in range. */
int gks_config_valid(const struct sts_gks_group_config *gc);
/* Appends g to the core's groups / m to g's members. */
void gks_append_group(struct sts_gks *ks, struct gks_group *g);
void gks_append_member(struct gks_group *g, struct gks_member *m);
/* Wipes and frees g and its members (none may be attached). */
void gks_group_free(struct gks_group *g);

#endif
