/* A group member's side of the native group protocol (docs/PROTOCOL.md,
 * "Groups"): what the key server's messages do to the member's keys and
 * roster, and sealing and opening group frames with them.
 *
 * Pure: no sockets, no sessions. The caller hands in the key server's
 * messages (from the member's pairwise session) and the frames seen on the
 * group's topic, and sends what sts_gmember_join/_leave/_control give it to
 * the key server. `now` is Unix time in seconds: slots are wall-clock
 * intervals, corrected by the offset between the key server's clock and ours
 * measured when a grant arrives. */
#ifndef STS_PROTO_GROUP_MEMBER_H
#define STS_PROTO_GROUP_MEMBER_H

#include "crypto/ecdsa.h"
#include "proto/group_frame.h"
#include "proto/group_msg.h"

#include <stddef.h>
#include <stdint.h>

enum sts_gmember_state {
    STS_GMEMBER_JOINING,  /* JOIN sent, no key yet */
    STS_GMEMBER_JOINED,   /* holds a key */
    STS_GMEMBER_REFUSED,  /* the key server refused the JOIN */
    STS_GMEMBER_REMOVED,  /* the key server removed it */
    STS_GMEMBER_LEFT,     /* it left */
};

struct sts_roster;        /* sender index -> name and signing key */

struct sts_gmember {
    char group[STS_GROUP_NAME_MAX + 1];
    char client_id[STS_GROUP_NAME_MAX * 4 + 1];
    enum sts_gmember_state state;
    uint8_t method, alg, flags;
    uint16_t index;               /* our sender index, 0: we may not send */
    uint16_t grace;
    uint32_t epoch;               /* current epoch (STATIC/UPDATE) */
    uint64_t counter;             /* next counter we send under the current key */
    uint32_t counter_epoch;       /* the epoch (or slot) `counter` belongs to */
    struct sts_group_keyring keys;
    struct sts_roster *roster;
    /* SLOTTED */
    uint32_t slot_seconds, first, last, grant;
    uint8_t depth, ncover;
    uint16_t skew;
    uint64_t origin_ms;
    double offset;                /* key server clock - our clock, seconds */
    double granted_at;            /* when the grant arrived (our clock) */
    struct sts_slot_node cover[STS_SLOT_COVER_MAX];
    uint32_t newest_slot;         /* the newest slot whose key was derived, */
    int slot_derived;             /* once one was */
    /* our signing key, sent in every JOIN */
    uint8_t sign_priv[STS_P256_PRIV_LEN], sign_pub[STS_P256_PUB_LEN];
    char reason[STS_GROUP_REASON_MAX + 1]; /* REFUSED/REMOVED text */
};

/* What a key server message changed, for the caller to report. */
struct sts_gmember_change {
    int joined;                   /* the first key arrived */
    int rekeyed;                  /* a new epoch (or a new grant) replaced the keys */
    int refused, removed;         /* state changed so; m->reason says why */
    int roster;                   /* the roster changed */
    size_t replylen;              /* > 0: send reply (a PONG) to the key server */
    uint8_t reply[16];
};

/* Sets up a member of group (client_id: the MQTT client id, for wills; grant:
 * SLOTTED seconds to ask for, 0 for the key server's default) with a new
 * signing key. 0, STS_ERR_INVALID (bad name), STS_ERR_RNG, STS_ERR_CRYPTO. */
int sts_gmember_init(struct sts_gmember *m, const char *group, const char *client_id, uint32_t grant);
/* Wipes every key and frees the roster. */
void sts_gmember_free(struct sts_gmember *m);

/* The JOIN to send (a first join, a renewal, or resuming with the index we
 * hold after the key server restarted). */
int sts_gmember_join(struct sts_gmember *m, uint8_t *out, size_t cap, size_t *outlen);
/* The member leaves: LEFT, its keys wiped. It tells the key server by ending
 * its session (an authenticated KILL), which the key server takes as a
 * leave; no LEAVE is needed, and none is sent. */
void sts_gmember_stop(struct sts_gmember *m);
/* A PING with `token`, for keepalive. */
int sts_gmember_ping(uint32_t token, uint8_t *out, size_t cap, size_t *outlen);

/* A message from the key server. 0, or STS_ERR_INVALID / _TRUNCATED /
 * _UNSUPPORTED for a malformed one, STS_ERR_STATE for one that does not fit
 * (another group, a KEY for a method we do not have): nothing changes then. */
int sts_gmember_control(struct sts_gmember *m, const uint8_t *msg, size_t len, double now,
                        struct sts_gmember_change *ch);

/* When a SLOTTED member should renew its grant (our clock), 0 when never. */
double sts_gmember_renew_at(const struct sts_gmember *m);

/* Seals pt for topic into out (cap bytes, at least ptlen + STS_GROUP_OVERHEAD
 * + STS_GROUP_SIG_LEN). 0, STS_ERR_STATE (no key, or no right to send; for
 * SLOTTED, no key for the current slot: the grant ended), STS_ERR_TOO_BIG,
 * STS_ERR_CRYPTO. */
int sts_gmember_seal(struct sts_gmember *m, const char *topic, const uint8_t *pt, size_t ptlen,
                     double now, uint8_t *out, size_t cap, size_t *outlen);

struct sts_gmember_info {
    const char *sender;           /* the name the key server gave the sender */
    uint32_t epoch;               /* or slot */
    uint16_t index;
    uint64_t counter;
};

/* Opens a frame seen on topic into out (at least len bytes). Returns
 * STS_REASON_NONE and fills info (valid until the roster changes), or why it
 * was refused: the frame's layout (see sts_group_frame_parse), STALE_EPOCH
 * (an epoch or slot we hold no key for: before we joined, after we left,
 * outside the grant or the clock-skew allowance), UNTRUSTED (a sender not in
 * the roster, or our own index), SUITE (unsigned frame in a signed group),
 * AUTH (tag or signature), REPLAY, STATE (no key yet). */
enum sts_reason sts_gmember_open(struct sts_gmember *m, const char *topic, const uint8_t *frame,
                                 size_t len, double now, uint8_t *out, size_t *ptlen,
                                 struct sts_gmember_info *info);

/* Whether frame is one of ours, come back from the broker: not an error,
 * just not delivered. */
int sts_gmember_is_own(const struct sts_gmember *m, const uint8_t *frame, size_t len);

size_t sts_gmember_memory(const struct sts_gmember *m);

#endif
