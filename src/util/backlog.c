#include "util/backlog.h"
#include "util/error.h"

#include <mbedtls/platform_util.h>
#include <stdlib.h>
#include <string.h>

void sts_backlog_init(struct sts_backlog *b, size_t max, void (*free_extra)(void *extra))
{
    *b = (struct sts_backlog){ .tail = &b->head, .max = max, .free_extra = free_extra };
}

void sts_backlog_requeue(struct sts_backlog *b, struct sts_backlog_item *item)
{
    item->next = NULL;
    *b->tail = item;
    b->tail = &item->next;
    b->n++;
}

int sts_backlog_push(struct sts_backlog *b, double now, const void *head, size_t head_len,
                     const void *body, size_t body_len, void *extra)
{
    if (b->n >= b->max) return STS_ERR_TOO_BIG;
    struct sts_backlog_item *item = malloc(sizeof *item + head_len + body_len);
    if (!item) return STS_ERR_NOMEM;
    item->at = now;
    item->extra = extra;
    item->len = head_len + body_len;
    if (head_len) memcpy(item->data, head, head_len);
    if (body_len) memcpy(item->data + head_len, body, body_len);
    sts_backlog_requeue(b, item);
    return 0;
}

struct sts_backlog_item *sts_backlog_take(struct sts_backlog *b)
{
    struct sts_backlog_item *items = b->head;
    b->head = NULL;
    b->tail = &b->head;
    b->n = 0;
    return items;
}

void sts_backlog_item_free(const struct sts_backlog *b, struct sts_backlog_item *item)
{
    if (item->extra && b->free_extra) b->free_extra(item->extra);
    mbedtls_platform_zeroize(item->data, item->len);
    free(item);
}

void sts_backlog_clear(struct sts_backlog *b)
{
    for (struct sts_backlog_item *it = sts_backlog_take(b), *next; it; it = next) {
        next = it->next;
        sts_backlog_item_free(b, it);
    }
}
