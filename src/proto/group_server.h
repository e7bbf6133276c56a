/* The key server's core (docs/PROTOCOL.md, "Key server"): groups, their
 * members and keys, and what to send to whom when members join and leave.
 * Pure: it neither owns sockets nor sessions. A member reaches it through a
 * pairwise STS session, known here only as an opaque `peer` handle with the
 * peer's authenticated X25519 public key; one session serves one membership
 * (one member in one group). The core sends through ops->send, ends sessions
 * through ops->end, and reports what happened through ops->event.
 *
 * Time `now` is Unix time in seconds (slots are wall-clock intervals).
 *
 * Nonce safety across restarts: a sender index is never given twice under
 * one key. Indexes come from a per-group counter whose high-water mark is
 * reserved in blocks and persisted (ops->save) before an index of a new
 * block is handed out; epoch keys are persisted before they are sent. */
#ifndef STS_PROTO_GROUP_SERVER_H
#define STS_PROTO_GROUP_SERVER_H

#include "proto/acl.h"
#include "proto/group_msg.h"

#include <stddef.h>
#include <stdint.h>

struct sts_gks_group_config {
    enum sts_group_method method;  /* STATIC by default */
    enum sts_group_alg alg;        /* CHACHAPOLY by default */
    int sign;                      /* members must sign their frames */
    uint16_t grace;                /* seconds a member keeps the previous epoch's key (30) */
    uint32_t slot_seconds;         /* SLOTTED: T (60) */
    uint8_t depth;                 /* SLOTTED: D (20) */
    uint16_t skew;                 /* SLOTTED: receivers' clock-skew allowance, seconds (T/2 rounded up, at least 5) */
    uint32_t grant;                /* SLOTTED: default seconds of access per join (3600) */
    uint32_t max_grant;            /* SLOTTED: most a member may ask for (86400) */
};

struct sts_gks_config {
    struct sts_gks_group_config defaults; /* for every group not defined explicitly */
    double idle;                   /* a membership silent this long has left (90 s; 0: never) */
    double resume;                 /* a membership restored from the state must come back within this (120 s) */
};

/* Fills c with the documented defaults. */
void sts_gks_config_defaults(struct sts_gks_config *c);

enum sts_gks_event {
    STS_GKS_JOINED,    /* a member joined (or resumed) a group */
    STS_GKS_REFUSED,   /* a JOIN refused: text says why */
    STS_GKS_LEFT,      /* a membership ended: LEAVE, session ended, idle, did not resume; text says which */
    STS_GKS_REMOVED,   /* removed by the ACL (SIGHUP) */
    STS_GKS_REKEYED,   /* a group moved to a new epoch; text says why */
    STS_GKS_REJECTED,  /* a malformed or unexpected message from a peer: text says why */
};

struct sts_gks_ops {
    /* Sends msg to peer over its session. Nonzero: the message is lost (logged by the caller). */
    int (*send)(void *ud, void *peer, const uint8_t *msg, size_t len);
    /* Ends peer's session with an authenticated KILL; the core has already forgotten peer. */
    void (*end)(void *ud, void *peer, const char *reason);
    /* Writes the state (sts_gks_save) durably. NULL: no persistence. Nonzero:
     * the change that needed it is not made (the join is refused, the rekey retried). */
    int (*save)(void *ud);
    /* What happened, for logs and counters: group and member name may be NULL. */
    void (*event)(void *ud, enum sts_gks_event ev, void *peer, const char *group, const char *member,
                  const char *text);
};

struct sts_gks;

/* A core with no groups; the ACL is empty until sts_gks_set_acl. NULL on no memory. */
struct sts_gks *sts_gks_new(const struct sts_gks_config *cfg, const struct sts_gks_ops *ops, void *ud);
void sts_gks_free(struct sts_gks *ks);

/* Settings for one group (before or after it has members; a change of
 * method or algorithm rekeys it). 0, STS_ERR_INVALID. */
int sts_gks_define(struct sts_gks *ks, const char *group, const struct sts_gks_group_config *gc, double now);

/* Replaces the ACL (the core takes acl's contents; acl is left empty).
 * Memberships the new ACL no longer allows are removed at once (REMOVED,
 * then their sessions ended) and their groups rekeyed once each. */
void sts_gks_set_acl(struct sts_gks *ks, struct sts_acl *acl, double now);

/* A message from peer, whose session authenticated public key `pub`. Bad
 * input is rejected (event REJECTED) and changes nothing. */
void sts_gks_receive(struct sts_gks *ks, void *peer, const uint8_t pub[STS_X25519_LEN],
                     const uint8_t *msg, size_t len, double now);

/* peer's session ended (KILL, failure, closed): its membership, if any, leaves. */
void sts_gks_detach(struct sts_gks *ks, void *peer, const char *why, double now);

/* A member's MQTT will named client_id: each of its memberships is pinged and
 * leaves unless it answers within 5 seconds. */
void sts_gks_will(struct sts_gks *ks, const char *client_id, double now);

/* A new epoch key for group, sent to every member (the operator's rotation,
 * or STATIC's --rotate). 0, STS_ERR_INVALID for an unknown group. */
int sts_gks_rotate(struct sts_gks *ks, const char *group, double now);

/* Runs what is due by now (idle and unresumed memberships, pings that got
 * no answer). Returns the time of the next deadline, or 0 when none. */
double sts_gks_tick(struct sts_gks *ks, double now);

/* The state file's bytes (format in docs/PROTOCOL.md, "Key server state"):
 * *out is malloc'd, to be wiped and freed by the caller. */
int sts_gks_save(const struct sts_gks *ks, uint8_t **out, size_t *len);
/* Restores a saved state into a core that has no memberships yet. Restored
 * memberships wait `resume` seconds for their members to come back. 0, or
 * STS_ERR_PARSE with the reason in err (a corrupt, truncated or foreign file
 * changes nothing). */
int sts_gks_load(struct sts_gks *ks, const uint8_t *buf, size_t len, double now, char *err, size_t errlen);

struct sts_gks_stats {
    uint64_t joins, refusals, leaves, removals, rekeys, rejected, messages_out;
    size_t groups, members, peers;
};
void sts_gks_stats(const struct sts_gks *ks, struct sts_gks_stats *st);
/* Per group: its epoch (or current slot) and members, for status output. */
int sts_gks_group_info(const struct sts_gks *ks, const char *group, uint32_t *epoch, size_t *members);
/* The name of the i-th group (0-based, in creation order), NULL past the last. */
const char *sts_gks_group_name(const struct sts_gks *ks, size_t i);
size_t sts_gks_memory(const struct sts_gks *ks);

#endif
