/* The messages between a group member and the key server (docs/PROTOCOL.md,
 * "Key server messages"). They travel only inside the member's pairwise STS
 * session with the key server, which authenticates and encrypts them; this
 * module encodes and strictly decodes them. Every message is
 * version (0x01) || type (1 byte) || fields, integers big-endian, `str8` a
 * 1-byte length then that many bytes, `blob8` likewise; nothing may follow
 * the last field. No cryptography here. */
#ifndef STS_PROTO_GROUP_MSG_H
#define STS_PROTO_GROUP_MSG_H

#include "crypto/sizes.h"
#include "proto/slot_tree.h"

#include <stddef.h>
#include <stdint.h>

#define STS_GMSG_VERSION 0x01
#define STS_GROUP_NAME_MAX 64   /* group and member names: 1..64 bytes of [A-Za-z0-9_.-] */
#define STS_GROUP_REASON_MAX 200
#define STS_ECDSA_PUB_LEN 65    /* uncompressed P-256 point: 0x04 || X || Y */
#define STS_GMSG_MAX 65000      /* fits a session message */
#define STS_GMSG_ROSTER_MAX 400 /* entries per ROSTER message */

enum sts_gmsg_type {
    STS_GMSG_JOIN = 0x20,    /* member -> key server */
    STS_GMSG_LEAVE = 0x21,   /* member -> key server */
    STS_GMSG_PING = 0x22,    /* either way; answered by PONG with the same token */
    STS_GMSG_PONG = 0x23,
    STS_GMSG_KEY = 0x30,     /* key server -> member: a STATIC or UPDATE epoch key */
    STS_GMSG_SLOTS = 0x31,   /* key server -> member: a SLOTTED grant */
    STS_GMSG_ROSTER = 0x32,  /* key server -> member: who the senders are */
    STS_GMSG_REFUSED = 0x33, /* key server -> member: a JOIN refused */
    STS_GMSG_REMOVED = 0x34, /* key server -> member: removed from the group */
};

enum sts_group_method { STS_GROUP_STATIC = 1, STS_GROUP_UPDATE = 2, STS_GROUP_SLOTTED = 3 };
enum sts_group_alg { STS_GROUP_CHACHAPOLY = 1, STS_GROUP_AESGCM = 2 };
#define STS_GFLAG_SIGNED 0x01 /* KEY/SLOTS: frames must be DATA_SIGNED */
#define STS_GFLAG_WRITE 0x02  /* KEY/SLOTS: this member may send */
#define STS_GFLAG_READ 0x04   /* KEY/SLOTS: this member may receive (always set with a key) */
#define STS_GFLAG_REPLACE 0x01 /* ROSTER: forget every entry first */

struct sts_gmsg_join {
    char group[STS_GROUP_NAME_MAX + 1];
    char client_id[STS_GROUP_NAME_MAX * 4 + 1]; /* str8: the member's MQTT client id (for wills), may be empty */
    uint8_t sign_pub[STS_ECDSA_PUB_LEN];        /* blob8: 0 or 65 bytes */
    uint8_t has_sign_pub;
    uint32_t grant;          /* SLOTTED: seconds of access asked for, 0 = the key server's default */
    uint32_t resume_epoch;   /* with resume_index != 0: the epoch and sender index this */
    uint16_t resume_index;   /* member still holds (rejoining after a key server restart) */
};

struct sts_gmsg_key {
    char group[STS_GROUP_NAME_MAX + 1];
    uint8_t method, alg, flags;
    uint32_t epoch;
    uint16_t index;          /* the member's sender index, 0 when it may not send */
    uint16_t grace;          /* seconds the previous epoch's key stays usable */
    uint8_t key[STS_KEY_LEN];
};

struct sts_gmsg_slots {
    char group[STS_GROUP_NAME_MAX + 1];
    uint8_t alg, flags;
    uint16_t index;
    uint32_t slot_seconds;   /* T */
    uint8_t depth;           /* D */
    uint16_t skew;           /* seconds of clock skew a receiver allows */
    uint64_t origin_ms;      /* Unix time (ms) at which slot 0 starts */
    uint64_t now_ms;         /* the key server's clock when it sent this */
    uint32_t first, last;    /* the granted slots */
    uint8_t count;           /* 1 .. STS_SLOT_COVER_MAX */
    struct sts_slot_node nodes[STS_SLOT_COVER_MAX];
};

struct sts_gmsg_roster_entry {
    uint16_t index;
    uint8_t op;              /* 1 add (or replace), 2 remove */
    char name[STS_GROUP_NAME_MAX + 1];
    uint8_t sign_pub[STS_ECDSA_PUB_LEN];
    uint8_t has_sign_pub;
};
#define STS_ROSTER_ADD 1
#define STS_ROSTER_REMOVE 2

struct sts_gmsg_roster {
    char group[STS_GROUP_NAME_MAX + 1];
    uint8_t flags;
    uint16_t count;          /* 0 .. STS_GMSG_ROSTER_MAX */
    struct sts_gmsg_roster_entry *entries; /* decode: points into storage the caller gives */
};

struct sts_gmsg_text {       /* REFUSED, REMOVED, LEAVE (reason empty) */
    char group[STS_GROUP_NAME_MAX + 1];
    char reason[STS_GROUP_REASON_MAX + 1];
};

struct sts_gmsg {
    uint8_t type;            /* enum sts_gmsg_type */
    union {
        struct sts_gmsg_join join;
        struct sts_gmsg_key key;
        struct sts_gmsg_slots slots;
        struct sts_gmsg_roster roster;
        struct sts_gmsg_text text;
        uint32_t token;      /* PING, PONG */
    } u;
};

/* Whether s (len bytes) is a valid group or member name. */
int sts_group_name_valid(const char *s, size_t len);

/* Encodes m into out (cap bytes). 0, STS_ERR_TOO_BIG, STS_ERR_INVALID (a
 * field out of range: bad name, count, depth, empty reason...). */
int sts_gmsg_encode(const struct sts_gmsg *m, uint8_t *out, size_t cap, size_t *outlen);

/* Decodes msg strictly. A ROSTER's entries go to `entries` (room for
 * STS_GMSG_ROSTER_MAX). 0, or STS_ERR_TRUNCATED, STS_ERR_INVALID (bad
 * version, type, name, range, trailing bytes), STS_ERR_UNSUPPORTED (a newer
 * version). Key bytes in m are the caller's to wipe. */
int sts_gmsg_decode(const uint8_t *msg, size_t len, struct sts_gmsg *m,
                    struct sts_gmsg_roster_entry *entries);

#endif
