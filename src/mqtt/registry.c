#include "mqtt/registry.h"
#include "mqtt/client.h"
#include "mqtt/topic.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void sts_registry_init(struct sts_registry *r)
{
    memset(r, 0, sizeof *r);
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    while (*s) h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

static struct sts_filter **bucket(const struct sts_registry *r, const char *text)
{
    return &r->buckets[hash(text) & (r->nbuckets - 1)];
}

static struct sts_filter *find_exact(const struct sts_registry *r, const char *text)
{
    if (!r->nbuckets) return NULL;
    for (struct sts_filter *f = *bucket(r, text); f; f = f->next)
        if (strcmp(f->text, text) == 0) return f;
    return NULL;
}

static struct sts_filter *find(const struct sts_registry *r, const char *text)
{
    if (!sts_topic_has_wildcard(text)) return find_exact(r, text);
    for (struct sts_filter *f = r->wildcards; f; f = f->next)
        if (strcmp(f->text, text) == 0) return f;
    return NULL;
}

/* Keeps the load factor at most 1, so a lookup is a step or two. */
static int grow_buckets(struct sts_registry *r)
{
    if (r->nexact < r->nbuckets) return 0;
    size_t n = r->nbuckets ? r->nbuckets * 2 : 16;
    struct sts_filter **buckets = calloc(n, sizeof *buckets);
    if (!buckets) return -1;
    struct sts_filter **old = r->buckets;
    size_t oldn = r->nbuckets;
    r->buckets = buckets;
    r->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        for (struct sts_filter *f = old[i], *next; f; f = next) {
            next = f->next;
            struct sts_filter **b = bucket(r, f->text);
            f->next = *b;
            *b = f;
        }
    }
    free(old);
    return 0;
}

/* The text is kept after the filter, in the same allocation: a listener
 * holds one filter per session. */
static struct sts_filter *add_filter(struct sts_registry *r, const char *text)
{
    size_t len = strlen(text) + 1;
    struct sts_filter *f = calloc(1, sizeof *f + len);
    if (!f) return NULL;
    f->text = memcpy(f + 1, text, len);
    f->asked_qos = -1;
    f->wildcard = sts_topic_has_wildcard(text);
    if (f->wildcard) {
        f->next = r->wildcards;
        r->wildcards = f;
        return f;
    }
    if (grow_buckets(r) != 0) {
        free(f);
        return NULL;
    }
    struct sts_filter **b = bucket(r, text);
    f->next = *b;
    *b = f;
    r->nexact++;
    return f;
}

struct sts_mqtt_sub *sts_registry_add(struct sts_registry *r, const char *filter, int qos,
                                      sts_mqtt_message_fn fn, void *ud)
{
    struct sts_filter *f = find(r, filter);
    if (!f && !(f = add_filter(r, filter))) return NULL;
    struct sts_mqtt_sub *sub = malloc(sizeof *sub);
    if (!sub) return NULL; /* a filter left empty goes at the next sweep */
    *sub = (struct sts_mqtt_sub){ .fn = fn, .ud = ud, .qos = qos, .filter = f, .added = r->adds++ };
    /* At the end of the list: subscribers are called in the order they came. */
    struct sts_mqtt_sub **tail = &f->subs;
    while (*tail) tail = &(*tail)->next;
    *tail = sub;
    f->live++;
    return sub;
}

int sts_filter_wanted_qos(const struct sts_filter *f)
{
    int qos = -1;
    for (const struct sts_mqtt_sub *s = f->subs; s; s = s->next)
        if (s->fn && s->qos > qos) qos = s->qos;
    return qos;
}

static void free_filter(struct sts_filter *f)
{
    for (struct sts_mqtt_sub *s = f->subs, *next; s; s = next) {
        next = s->next;
        free(s);
    }
    free(f);
}

/* Unlinks removed subscribers, and filters left with none, from one list. */
static void sweep_list(struct sts_registry *r, struct sts_filter **link, int exact)
{
    while (*link) {
        struct sts_filter *f = *link;
        for (struct sts_mqtt_sub **s = &f->subs; *s;) {
            struct sts_mqtt_sub *sub = *s;
            if (sub->fn) {
                s = &sub->next;
            } else {
                *s = sub->next;
                free(sub);
            }
        }
        if (f->subs) {
            link = &f->next;
            continue;
        }
        *link = f->next;
        free_filter(f);
        r->nexact -= exact;
    }
}

static void sweep(struct sts_registry *r)
{
    r->swept = 0;
    for (size_t i = 0; i < r->nbuckets; i++) sweep_list(r, &r->buckets[i], 1);
    sweep_list(r, &r->wildcards, 0);
}

void sts_registry_remove(struct sts_mqtt_sub *sub)
{
    if (!sub->fn) return;
    sub->fn = NULL;
    sub->filter->live--;
}

void sts_registry_collect(struct sts_registry *r, struct sts_filter *f)
{
    if (r->delivering) {
        r->swept = 1;
        return;
    }
    sweep_list(r, f->wildcard ? &r->wildcards : bucket(r, f->text), !f->wildcard);
}

/* Subscribers added by a callback, to this filter or to one delivered
 * later, are numbered from `adds` on: the message predates them, so they
 * wait for the next one. */
static size_t deliver_to(struct sts_filter *f, const struct sts_mqtt_message *msg, const int *stop,
                         unsigned long long adds)
{
    size_t n = 0;
    for (struct sts_mqtt_sub *s = f->subs; s && !*stop; s = s->next) {
        if (s->fn && s->added < adds) {
            s->fn(s->ud, msg);
            n++;
        }
    }
    return n;
}

size_t sts_registry_deliver(struct sts_registry *r, const struct sts_mqtt_message *msg, const int *stop)
{
    size_t n = 0;
    unsigned long long adds = r->adds;
    r->delivering++;
    struct sts_filter *exact = find_exact(r, msg->topic);
    if (exact) n += deliver_to(exact, msg, stop, adds);
    for (struct sts_filter *f = r->wildcards; f && !*stop; f = f->next)
        if (f->live && sts_topic_matches(f->text, msg->topic)) n += deliver_to(f, msg, stop, adds);
    if (--r->delivering == 0 && r->swept) sweep(r);
    return n;
}

void *sts_registry_find(struct sts_registry *r, const char *topic)
{
    struct sts_filter *exact = find_exact(r, topic);
    for (struct sts_mqtt_sub *sub = exact ? exact->subs : NULL; sub; sub = sub->next)
        if (sub->fn) return sub->ud;
    return NULL;
}

int sts_registry_wants(struct sts_registry *r, const char *topic)
{
    struct sts_filter *exact = find_exact(r, topic);
    if (exact && exact->live) return 1;
    for (struct sts_filter *f = r->wildcards; f; f = f->next)
        if (f->live && sts_topic_matches(f->text, topic)) return 1;
    return 0;
}

void sts_registry_each(struct sts_registry *r, void (*fn)(void *ctx, struct sts_filter *f), void *ctx)
{
    for (size_t i = 0; i < r->nbuckets; i++)
        for (struct sts_filter *f = r->buckets[i]; f; f = f->next) fn(ctx, f);
    for (struct sts_filter *f = r->wildcards; f; f = f->next) fn(ctx, f);
}

void sts_registry_free(struct sts_registry *r)
{
    for (size_t i = 0; i < r->nbuckets; i++) {
        for (struct sts_filter *f = r->buckets[i], *next; f; f = next) {
            next = f->next;
            free_filter(f);
        }
    }
    for (struct sts_filter *f = r->wildcards, *next; f; f = next) {
        next = f->next;
        free_filter(f);
    }
    free(r->buckets);
    memset(r, 0, sizeof *r);
}
