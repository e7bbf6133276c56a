/* The subscriber registry: topic filters, each with the parties that want
 * its messages (C callbacks with their user data; a Lua handler is one kind,
 * a session or a listener another). Several subscribers may share a filter.
 *
 * Exact filters sit in a hash table, found by the message's topic in one
 * lookup; wildcard filters in a list, each tried with the matcher. A
 * subscriber removed while a delivery runs is only marked, and unlinked when
 * the delivery ends, so a callback may add or remove any subscriber, itself
 * included. No libmosquitto here: the client decides what the broker is told. */
#ifndef STS_MQTT_REGISTRY_H
#define STS_MQTT_REGISTRY_H

#include <stddef.h>

struct sts_mqtt_message;
typedef void (*sts_mqtt_message_fn)(void *ud, const struct sts_mqtt_message *msg);

struct sts_filter;

struct sts_mqtt_sub {
    sts_mqtt_message_fn fn;   /* NULL once removed */
    void *ud;
    int qos;
    unsigned long long added; /* its number among the registry's adds: a
                                 delivery skips those added after it began */
    struct sts_filter *filter;
    struct sts_mqtt_sub *next;
};

struct sts_filter {
    char *text;
    int wildcard;
    int asked_qos;            /* what the broker was asked for; -1: not subscribed */
    size_t live;              /* subscribers not removed */
    struct sts_mqtt_sub *subs;
    struct sts_filter *next;  /* in its hash bucket, or in the wildcard list */
};

struct sts_registry {
    struct sts_filter **buckets;
    size_t nbuckets, nexact;
    struct sts_filter *wildcards;
    int delivering;
    int swept;                /* something was removed during a delivery */
    unsigned long long adds;  /* subscribers added so far */
};

void sts_registry_init(struct sts_registry *r);
void sts_registry_free(struct sts_registry *r);

/* Adds a subscriber. NULL when out of memory. */
struct sts_mqtt_sub *sts_registry_add(struct sts_registry *r, const char *filter, int qos,
                                      sts_mqtt_message_fn fn, void *ud);
/* Removes a subscriber: from now on it is never called. Its memory, and its
 * filter's once empty, go at sts_registry_collect (or, if a delivery runs,
 * when it ends): in between, the caller can still read sub->filter to tell
 * the broker. */
void sts_registry_remove(struct sts_mqtt_sub *sub);
void sts_registry_collect(struct sts_registry *r, struct sts_filter *f);

/* The highest QoS its live subscribers ask for; -1 when none is left. */
int sts_filter_wanted_qos(const struct sts_filter *f);

/* Calls every live subscriber whose filter matches msg->topic, until
 * *stop becomes true (the client closed). Returns how many it called. */
size_t sts_registry_deliver(struct sts_registry *r, const struct sts_mqtt_message *msg, const int *stop);

/* The user data of the first live subscriber of the exact filter `topic`,
 * or NULL (a listener finds a topic's session without delivering to it). */
void *sts_registry_find(struct sts_registry *r, const char *topic);

/* Would any live subscriber take a message on `topic`? */
int sts_registry_wants(struct sts_registry *r, const char *topic);

/* Calls fn for every filter (to restore broker subscriptions). */
void sts_registry_each(struct sts_registry *r, void (*fn)(void *ctx, struct sts_filter *f), void *ctx);

#endif
