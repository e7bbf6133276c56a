/* The subscriber registry (src/mqtt/registry.c), which routes every message
 * a client or a listener receives: subscribers added and removed, messages
 * delivered, and callbacks that, while a message is delivered, remove
 * themselves or others, add subscribers or deliver another message.
 * Checked against a model (a list of the subscribers in the order they
 * came): a delivery calls exactly the subscribers that were live when it
 * began, match the topic and are still live at their turn, each once;
 * sts_registry_wants, _find and sts_filter_wanted_qos agree with the model;
 * nothing is used after it is freed (ASan). Subscribers are removed as the
 * client does: remove, then collect the filter.
 *
 * Input: records of an op byte and its arguments, strings as a length byte
 * and that many bytes (a NUL ends them early). */
#include "input.h"
#include "mqtt/client.h"
#include "mqtt/registry.h"
#include "mqtt/topic.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SUBS 48
#define MAX_TEXT 24
#define MAX_DEPTH 3

enum action { NOTHING, REMOVE_SELF, REMOVE_OTHER, ADD, DELIVER, ACTIONS };

struct model_sub {
    struct sts_mqtt_sub *sub;
    char filter[MAX_TEXT + 1];
    int qos, removed;
    enum action action;
    uint8_t arg;
    char text[MAX_TEXT + 1]; /* what ADD subscribes to or DELIVER delivers */
};

/* A delivery under way: what was live when it began, who was called. */
struct delivery {
    const struct sts_mqtt_message *msg;
    uint8_t live_before[MAX_SUBS], called[MAX_SUBS];
    size_t calls;
};

static struct sts_registry registry;
static struct model_sub subs[MAX_SUBS];
static size_t nsubs;
static struct delivery deliveries[MAX_DEPTH];
static int depth;

static void fail_if(int bad)
{
    if (bad) abort();
}

/* A string of at most MAX_TEXT bytes, ended early by a NUL. */
static void take_text(struct fuzz_input *in, char out[MAX_TEXT + 1])
{
    size_t len;
    const uint8_t *s = fuzz_take_bytes(in, &len);
    len = len < MAX_TEXT ? len : MAX_TEXT;
    memcpy(out, s, len);
    out[len] = '\0';
}

static void on_message(void *ud, const struct sts_mqtt_message *msg);

static void add(const char *filter, int qos, enum action action, uint8_t arg, const char *text)
{
    if (nsubs == MAX_SUBS) return;
    struct model_sub *m = &subs[nsubs];
    *m = (struct model_sub){ .qos = qos, .action = action, .arg = arg };
    strcpy(m->filter, filter);
    strcpy(m->text, text);
    m->sub = sts_registry_add(&registry, filter, qos, on_message, m);
    fail_if(!m->sub || strcmp(m->sub->filter->text, filter) != 0);
    nsubs++;
}

static void remove_sub(size_t i)
{
    struct model_sub *m = &subs[i];
    if (m->removed) return;
    struct sts_filter *f = m->sub->filter;
    sts_registry_remove(m->sub);
    m->removed = 1; /* its memory may go now: never touched again */
    sts_registry_collect(&registry, f);
}

static void deliver(const char *topic);

static void on_message(void *ud, const struct sts_mqtt_message *msg)
{
    struct model_sub *m = ud;
    size_t i = (size_t)(m - subs);
    struct delivery *d = NULL;
    for (int k = 0; k < depth; k++)
        if (deliveries[k].msg == msg) d = &deliveries[k];
    fail_if(!d || m->removed || !d->live_before[i] || d->called[i]++ ||
            !sts_topic_matches(m->filter, msg->topic));
    d->calls++;
    switch (m->action) {
    case REMOVE_SELF: remove_sub(i); break;
    case REMOVE_OTHER: if (nsubs) remove_sub(m->arg % nsubs); break;
    case ADD: add(m->arg & 1 ? m->filter : m->text, m->arg % 3, NOTHING, 0, ""); break;
    case DELIVER: if (depth < MAX_DEPTH) deliver(m->text); break;
    default: break;
    }
}

static void deliver(const char *topic)
{
    struct sts_mqtt_message msg = { .topic = topic, .payload = "", .len = 0 };
    struct delivery *d = &deliveries[depth++];
    memset(d, 0, sizeof *d);
    d->msg = &msg;
    for (size_t i = 0; i < nsubs; i++) d->live_before[i] = !subs[i].removed;
    static const int not_stopped = 0;
    size_t n = sts_registry_deliver(&registry, &msg, &not_stopped);
    fail_if(n != d->calls);
    for (size_t i = 0; i < nsubs; i++)
        if (d->live_before[i] && !subs[i].removed && sts_topic_matches(subs[i].filter, topic))
            fail_if(d->called[i] != 1);
    depth--;
}

static void check_queries(const char *topic)
{
    int wants = 0;
    void *found = NULL;
    for (size_t i = 0; i < nsubs; i++) {
        if (subs[i].removed) continue;
        wants |= sts_topic_matches(subs[i].filter, topic);
        if (!found && !sts_topic_has_wildcard(subs[i].filter) && strcmp(subs[i].filter, topic) == 0)
            found = &subs[i];
    }
    fail_if(sts_registry_wants(&registry, topic) != wants);
    fail_if(sts_registry_find(&registry, topic) != found);
}

static void check_qos(size_t i)
{
    if (subs[i].removed) return;
    int qos = -1;
    for (size_t j = 0; j < nsubs; j++)
        if (!subs[j].removed && strcmp(subs[j].filter, subs[i].filter) == 0 && subs[j].qos > qos) qos = subs[j].qos;
    fail_if(sts_filter_wanted_qos(subs[i].sub->filter) != qos);
}

static void read_filter(void *ctx, struct sts_filter *f)
{
    *(size_t *)ctx += strlen(f->text) + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = { data, size };
    char text[MAX_TEXT + 1], other[MAX_TEXT + 1];
    size_t seen = 0;

    sts_registry_init(&registry);
    nsubs = 0;
    for (int ops = 0; ops < 200 && in.n > 0; ops++) {
        uint8_t op = fuzz_take_byte(&in);
        switch (op % 6) {
        case 0: {
            uint8_t how = fuzz_take_byte(&in), arg = fuzz_take_byte(&in);
            take_text(&in, text);
            take_text(&in, other);
            add(text, how % 3, (enum action)((how >> 2) % ACTIONS), arg, other);
            break;
        }
        case 1: if (nsubs) remove_sub(fuzz_take_byte(&in) % nsubs); break;
        case 2: take_text(&in, text); deliver(text); break;
        case 3: take_text(&in, text); check_queries(text); break;
        case 4: if (nsubs) check_qos(fuzz_take_byte(&in) % nsubs); break;
        default: sts_registry_each(&registry, read_filter, &seen); break;
        }
    }
    sts_registry_free(&registry);
    return 0;
}
