/* The topic algebra and the subscriber registry, without a broker. */
#include "mqtt/client.h"
#include "mqtt/registry.h"
#include "mqtt/topic.h"
#include "util/unit.h"

#include <stdio.h>

static void test_matching(void)
{
    static const struct { const char *filter, *topic; int match; } cases[] = {
        { "a/b", "a/b", 1 }, { "a/b", "a/c", 0 }, { "a/b", "a/b/c", 0 }, { "a/b/c", "a/b", 0 },
        { "a/+", "a/b", 1 }, { "a/+", "a/", 1 }, { "a/+", "a", 0 }, { "a/+", "a/b/c", 0 },
        { "+/+", "/x", 1 }, { "+", "x", 1 }, { "+", "/x", 0 }, { "a/+/c", "a/b/c", 1 },
        { "#", "a/b/c", 1 }, { "a/#", "a", 1 }, { "a/#", "a/b/c", 1 }, { "a/#", "ab", 0 },
        { "a/b/#", "a/b/", 1 }, { "ab", "a", 0 }, { "a", "ab", 0 }, { "a/+/#", "a/b", 1 },
        { "#", "$SYS/x", 0 }, { "+/x", "$SYS/x", 0 }, { "$SYS/#", "$SYS/x", 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = sts_topic_matches(cases[i].filter, cases[i].topic);
        if (got != cases[i].match) fprintf(stderr, "'%s' ~ '%s'\n", cases[i].filter, cases[i].topic);
        CHECK(got == cases[i].match);
    }
    CHECK(sts_topic_has_wildcard("a/+") && sts_topic_has_wildcard("#") && !sts_topic_has_wildcard("a/b"));
    size_t len = 0;
    const char *level = sts_topic_plus_level("plant/+/up", "plant/s7/up", &len);
    CHECK(level && len == 2 && strncmp(level, "s7", 2) == 0);
    level = sts_topic_plus_level("+/x/+", "a/x/bc", &len);
    CHECK(level && len == 1 && level[0] == 'a');
    level = sts_topic_plus_level("a/+", "a/", &len);
    CHECK(level && len == 0);
    CHECK(sts_topic_plus_level("a/b+/c", "a/b+/c", &len) == NULL && sts_topic_plus_level("a/b/+", "a/b", &len) == NULL);
    CHECK(sts_topic_count_plus("+/a/+/b") == 2 && sts_topic_count_plus("a+/b") == 0 && sts_topic_count_plus("+") == 1);
}

static void test_reply_topics(void)
{
    char out[32];
    CHECK(sts_topic_reply(out, sizeof out, "plant/+/up", "plant/+/down", "plant/s7/up") == 13);
    CHECK(strcmp(out, "plant/s7/down") == 0);
    CHECK(sts_topic_reply(out, sizeof out, "+/x/+", "r/+/+", "a/x/b") == 5 && strcmp(out, "r/a/b") == 0);
    CHECK(sts_topic_reply(out, sizeof out, "+/x/+", "+/fixed", "a/x/b") == 7 && strcmp(out, "a/fixed") == 0);
    CHECK(sts_topic_reply(out, 8, "plant/+/up", "plant/+/down", "plant/s7/up") == -1);
    CHECK(sts_topic_reply(out, sizeof out, "plant/+/up", "plant/+/down", "plant//up") == 11 && strcmp(out, "plant//down") == 0);
}

struct recorder {
    int calls;
    struct sts_registry *r;
    struct sts_mqtt_sub *remove; /* removed by this subscriber's first call */
    struct sts_mqtt_sub *added;
    const char *add_to; /* the filter it then subscribes to (NULL: "x/y") */
};

static void record(void *ud, const struct sts_mqtt_message *msg)
{
    struct recorder *rec = ud;
    (void)msg;
    rec->calls++;
    if (rec->remove) {
        sts_registry_remove(rec->remove);
        sts_registry_collect(rec->r, rec->remove->filter);
        rec->remove = NULL;
        /* Subscribing from inside a delivery is allowed too. */
        rec->added = sts_registry_add(rec->r, rec->add_to ? rec->add_to : "x/y", 0, record, rec);
    }
}

static size_t deliver(struct sts_registry *r, const char *topic)
{
    static const int go_on = 0;
    struct sts_mqtt_message msg = { .topic = topic, .payload = "", .len = 0 };
    return sts_registry_deliver(r, &msg, &go_on);
}

static void test_registry(void)
{
    struct sts_registry r;
    struct recorder a = { .r = &r }, b = { .r = &r }, c = { .r = &r };
    sts_registry_init(&r);
    struct sts_mqtt_sub *sa = sts_registry_add(&r, "x/y", 1, record, &a);
    struct sts_mqtt_sub *sb = sts_registry_add(&r, "x/y", 2, record, &b);
    struct sts_mqtt_sub *sc = sts_registry_add(&r, "x/+", 0, record, &c);
    CHECK(sa && sb && sc && sa->filter == sb->filter && sc->filter != sa->filter);
    CHECK(sts_filter_wanted_qos(sa->filter) == 2);
    CHECK(deliver(&r, "x/y") == 3 && a.calls == 1 && b.calls == 1 && c.calls == 1);
    CHECK(deliver(&r, "x/z") == 1 && c.calls == 2);
    CHECK(deliver(&r, "q") == 0 && !sts_registry_wants(&r, "q") && sts_registry_wants(&r, "x/q"));

    /* a removes b during a delivery: b is not called; a subscribes itself
     * again, and that subscriber waits for the next message. */
    a.remove = sb;
    CHECK(deliver(&r, "x/y") == 2 && a.calls == 2 && b.calls == 1 && a.added);
    CHECK(sts_filter_wanted_qos(sa->filter) == 1);
    CHECK(deliver(&r, "x/y") == 3 && a.calls == 4);

    /* A subscriber added by an exact filter's callback to a wildcard filter
     * delivered after it waits for the next message too. */
    struct recorder d = { .r = &r }, e = { .r = &r, .add_to = "w/#" };
    CHECK(sts_registry_add(&r, "w/#", 0, record, &d) && sts_registry_add(&r, "w/x", 0, record, &e));
    e.remove = sts_registry_add(&r, "spare", 0, record, &e);
    CHECK(deliver(&r, "w/x") == 2 && d.calls == 1 && e.calls == 1 && e.added);
    CHECK(deliver(&r, "w/x") == 3 && d.calls == 2 && e.calls == 3);

    /* Many exact filters: found by hash, each its own. */
    struct recorder many = { .r = &r };
    char topic[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(topic, sizeof topic, "dev/%d/up", i);
        CHECK(sts_registry_add(&r, topic, 0, record, &many) != NULL);
    }
    CHECK(deliver(&r, "dev/517/up") == 1 && many.calls == 1);

    /* The last subscriber of a filter gone: nothing wants it. */
    sts_registry_remove(sc);
    struct sts_filter *f = sc->filter;
    CHECK(sts_filter_wanted_qos(f) == -1);
    sts_registry_collect(&r, f);
    CHECK(!sts_registry_wants(&r, "x/z"));
    sts_registry_free(&r);
}

int main(void)
{
    test_matching();
    test_reply_topics();
    test_registry();
    return unit_done();
}
