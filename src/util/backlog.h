/* A bounded first-in first-out queue of messages kept until somebody wants
 * them: MQTT messages that arrive before any subscriber (a persistent
 * session's backlog comes right after CONNACK), and a session's plaintexts
 * that arrive before the script set a message handler. Items are copies,
 * wiped when freed (they may be plaintext). */
#ifndef STS_UTIL_BACKLOG_H
#define STS_UTIL_BACKLOG_H

#include <stddef.h>
#include <stdint.h>

struct sts_backlog_item {
    struct sts_backlog_item *next;
    double at;             /* when it was kept */
    void *extra;           /* the owner's attachment, freed by free_extra */
    size_t len;            /* of data */
    uint8_t data[];
};

struct sts_backlog {
    struct sts_backlog_item *head, **tail;
    size_t n, max;
    void (*free_extra)(void *extra);
};

void sts_backlog_init(struct sts_backlog *b, size_t max, void (*free_extra)(void *extra));

/* Keeps a copy of head ‖ body, with `extra`. 0, STS_ERR_TOO_BIG when full,
 * STS_ERR_NOMEM; on failure extra is not taken. */
int sts_backlog_push(struct sts_backlog *b, double now, const void *head, size_t head_len,
                     const void *body, size_t body_len, void *extra);

/* Takes every item out, oldest first: the caller hands each on, puts it back
 * with sts_backlog_requeue, or frees it. */
struct sts_backlog_item *sts_backlog_take(struct sts_backlog *b);
void sts_backlog_requeue(struct sts_backlog *b, struct sts_backlog_item *item);
void sts_backlog_item_free(const struct sts_backlog *b, struct sts_backlog_item *item);

void sts_backlog_clear(struct sts_backlog *b);

#endif
