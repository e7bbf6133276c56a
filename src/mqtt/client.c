#include "mqtt/client.h"
#include "mqtt/registry.h"
#include "mqtt/resolve.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "util/backlog.h"
#include "util/error.h"
#include "util/hex.h"
#include "util/log.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* Messages no subscriber takes are kept this long after a connect (a
 * persistent session's backlog arrives right after CONNACK, before the script
 * has subscribed again), each for as long again, at most MAX_UNCLAIMED. */
#define CLAIM_WINDOW 10.0
#define MAX_UNCLAIMED 10000

/* Keepalive periods without an acknowledgement before reconnecting, at
 * first and at most (see check_acks). */
#define ACK_PATIENCE 2
#define MAX_ACK_PATIENCE 16

/* libmosquitto numbers every publish with the next of 65,535 message ids,
 * whether or not the last one with that id is still unacknowledged: past
 * 65,535 outstanding publishes ids repeat. And its one publish callback
 * reports both a QoS 1/2 publish acknowledged and a QoS 0 one written. So
 * each id counts what it still owes, per kind: a callback is an
 * acknowledgement when it comes from reading (acks are only read) and the id
 * has no QoS 0 publish waiting to be written, which is written first. */
struct outstanding {
    uint16_t *acks;               /* per id: QoS 1/2 publishes not yet acknowledged */
    uint16_t *writes;             /* per id: QoS 0 publishes not yet written */
    int reading, publishing;      /* inside mosquitto_loop_read, inside mosquitto_publish */
    int written_now;              /* the QoS 0 publish being made was written before its id came back */
};

/* libmosquitto 2.0.11 keeps an incoming QoS 2 message from PUBLISH until
 * PUBREL and delivers it then, but queues a redelivered PUBLISH (DUP, after a
 * reconnect, when the broker never got our PUBREC) behind the copy it holds
 * instead of recognising it (handle__publish; upstream issues #1450, #1751).
 * PUBREL releases the first copy only; the second stays, and the next message
 * the broker sends with that id (65,535 messages later) is delivered as that
 * stale copy while the real one waits for the id's next PUBREL: a duplicate,
 * and a message lost or delivered an id cycle late. Its debug log names every
 * PUBLISH and PUBREL as it reads them, before acting: from it we mirror its
 * queue, deliver only a release of a message the broker has not released
 * before, and when a PUBREL would release a stale copy instead, shut the
 * socket for writing first. libmosquitto then drops that copy undelivered,
 * its PUBCOMP unsent, and the broker repeats the PUBREL after the reconnect,
 * now for the message behind it. Only sessions (clean_session false) see
 * redeliveries, so only they pay for the log. */
enum held_kind { HELD_LIVE, HELD_COPY, HELD_REPEAT };

/* mosquitto 2.0.11 itself, restarted, may send again with DUP a QoS 2
 * PUBLISH whose PUBREL it had sent and we had answered, or a QoS 1 one we had
 * acknowledged (it restores the state it saved before). A DUP PUBLISH of an
 * id delivered fewer than RECENT deliveries ago, not held since, with the
 * same topic and payload as that delivery (a SHA-256 digest of them is kept
 * per id), is such a repeat, answered as libmosquitto does, not delivered. A
 * broker may reuse an id sooner (mosquitto restoring a stale last id, brokers
 * handing out the lowest free one): a new message under it differs, and is
 * delivered. */
#define RECENT 32768u

/* The broker may have at most 65,535 QoS 2 messages unreleased, and has far
 * fewer (mosquitto: max_inflight_messages, 20). A mirror longer than this has
 * lost track, and makes each PUBLISH and PUBREL read a long search. */
#define MAX_HELD 4096

struct held {
    struct { uint16_t mid; uint8_t kind; } *v; /* in libmosquitto's order */
    size_t n, cap;
    int on;                       /* the log is parsed: deliveries are checked */
    int releasing;                /* the id whose PUBREL libmosquitto is handling, 0: none to deliver */
    uint32_t *delivered_at;       /* per id: the value of `delivered` when it was last delivered */
    uint32_t *digest_at;          /* per id: the digest of what was last delivered with it */
    uint32_t delivered;           /* deliveries so far (wraps) */
    int repeat;                   /* the QoS 1 PUBLISH being read may repeat this id */
    int releasing_repeat;         /* the release being handled may repeat a delivery */
    int pubrel_seen;              /* a PUBREL line was read: the log is worded as expected */
    char *prefix;                 /* "Client <id> received " */
};

struct sts_mqtt {
    struct sts_source src;        /* first: the loop hands us back this pointer */
    struct sts_loop *loop;
    struct mosquitto *mosq;
    struct sts_mqtt_handlers handlers;
    enum sts_mqtt_state state;
    char *host, *client_id;
    int port, keepalive;
    double timeout, reconnect_min, reconnect_max, backoff;
    int reconnect;
    size_t max_payload;
    int connected_once, attempted;
    double connected_at;

    struct sts_resolve *resolving;/* the first attempt's name lookup, while it runs */
    int tls;                      /* certificates are checked against host: connect by name */
    struct sts_timer resolve;     /* polls the lookup */
    struct sts_timer tick;        /* keepalive bookkeeping and attempt timeout */
    struct sts_timer retry;       /* the next reconnect attempt */
    double attempt_deadline;

    struct sts_registry registry; /* who wants which messages */
    struct sts_backlog unclaimed; /* messages nobody wanted yet */
    struct sts_timer claim;       /* hands them on, or drops them when too old */

    struct outstanding outstanding; /* what each message id still owes an on_publish call for */
    double acked_at;              /* the last acknowledgement, or when the wait for one began */
    int ack_patience;             /* keepalive periods without one before reconnecting */
    struct held held;             /* libmosquitto's incoming QoS 2 messages, mirrored */

    int watching_drain;           /* on_drained is owed once drained */
    int closing;                  /* closed: finalized in the loop's closing phase */
    struct sts_closing finalizer;
    struct sts_mqtt_stats stats;
};

static int lib_ready;

/* --- broker subscriptions: one per filter, at the highest QoS wanted ------ */

static void warn_rc(const struct sts_mqtt *m, const char *what, const char *filter, int rc)
{
    if (rc != MOSQ_ERR_SUCCESS)
        sts_warn("mqtt %s: %s '%s' failed: %s", m->client_id, what, filter, mosquitto_strerror(rc));
}

/* Tells the broker what the filter's subscribers now want: a SUBSCRIBE when
 * the first comes or asks for more, an UNSUBSCRIBE when the last goes.
 * Returns libmosquitto's code (success while disconnected: the connect
 * restores every filter). */
static int sync_filter(struct sts_mqtt *m, struct sts_filter *f)
{
    int wanted = sts_filter_wanted_qos(f), rc = MOSQ_ERR_SUCCESS;
    if (wanted == f->asked_qos) return rc;
    int was = f->asked_qos;
    f->asked_qos = wanted;
    if (m->state != STS_MQTT_CONNECTED) return rc;
    if (wanted >= 0) rc = mosquitto_subscribe(m->mosq, NULL, f->text, wanted);
    else if (was >= 0) rc = mosquitto_unsubscribe(m->mosq, NULL, f->text);
    return rc;
}

static void resubscribe_filter(void *ctx, struct sts_filter *f)
{
    struct sts_mqtt *m = ctx;
    if (f->asked_qos >= 0) warn_rc(m, "resubscribing to", f->text, mosquitto_subscribe(m->mosq, NULL, f->text, f->asked_qos));
}

/* --- messages nobody wanted yet ------------------------------------------- */

/* A kept message: qos, retain, topic and NUL, then the payload; the MQTT 5
 * properties ride along as the item's extra. */
struct kept {
    int qos, retain;
    const char *topic;
    const uint8_t *payload;
    size_t len;
};

static struct kept unpack_kept(const struct sts_backlog_item *it)
{
    struct kept k = { .qos = it->data[0], .retain = it->data[1], .topic = (const char *)it->data + 2 };
    size_t head = 2 + strlen(k.topic) + 1;
    k.payload = it->data + head;
    k.len = it->len - head;
    return k;
}

static void free_properties(void *props)
{
    mosquitto_property *p = props;
    mosquitto_property_free_all(&p);
}

static void drop_unclaimed(struct sts_mqtt *m, const char *topic, const char *why)
{
    m->stats.unclaimed_dropped++;
    sts_warn("mqtt %s: dropped a message on '%s' that no handler took%s", m->client_id, topic, why);
}

/* Is a message on topic kept, for on_claim to hand over? */
static int kept_on(const struct sts_mqtt *m, const char *topic)
{
    for (const struct sts_backlog_item *it = m->unclaimed.head; it; it = it->next)
        if (strcmp(unpack_kept(it).topic, topic) == 0) return 1;
    return 0;
}

static void keep_unclaimed(struct sts_mqtt *m, const struct sts_mqtt_message *msg)
{
    double now = sts_now();
    uint8_t head[2] = { (uint8_t)msg->qos, (uint8_t)(msg->retain != 0) };
    size_t tlen = strlen(msg->topic) + 1;
    uint8_t *topic_head = malloc(sizeof head + tlen);
    mosquitto_property *props = NULL;
    int rc = topic_head ? 0 : STS_ERR_NOMEM;
    if (rc == 0 && msg->props && mosquitto_property_copy_all(&props, msg->props) != MOSQ_ERR_SUCCESS) rc = STS_ERR_NOMEM;
    if (rc == 0) {
        memcpy(topic_head, head, sizeof head);
        memcpy(topic_head + sizeof head, msg->topic, tlen);
        rc = sts_backlog_push(&m->unclaimed, now, topic_head, sizeof head + tlen, msg->payload, msg->len, props);
    }
    free(topic_head);
    if (rc != 0) {
        free_properties(props);
        drop_unclaimed(m, msg->topic, rc == STS_ERR_TOO_BIG ? " (backlog full)" : " (out of memory)");
        return;
    }
    if (!sts_timer_active(&m->claim)) sts_timer_start(m->loop, &m->claim, CLAIM_WINDOW, 0);
}

/* Hands kept messages to the subscribers that now want them, from the loop
 * (never inside the subscribe call); drops those kept too long. */
static void on_claim(struct sts_timer *t, void *ud)
{
    struct sts_mqtt *m = ud;
    double now = sts_now();
    (void)t;
    for (struct sts_backlog_item *it = sts_backlog_take(&m->unclaimed), *next; it; it = next) {
        next = it->next;
        struct kept k = unpack_kept(it);
        if (!m->closing && sts_registry_wants(&m->registry, k.topic)) {
            struct sts_mqtt_message msg = {
                .topic = k.topic, .payload = k.payload, .len = k.len, .qos = k.qos, .retain = k.retain, .props = it->extra,
            };
            sts_registry_deliver(&m->registry, &msg, &m->closing);
        } else if (!m->closing && now - it->at <= CLAIM_WINDOW) {
            sts_backlog_requeue(&m->unclaimed, it);
            continue;
        } else if (!m->closing) {
            drop_unclaimed(m, k.topic, " in time");
        }
        sts_backlog_item_free(&m->unclaimed, it);
    }
    if (m->unclaimed.head) sts_timer_start(m->loop, &m->claim, m->unclaimed.head->at + CLAIM_WINDOW - now, 0);
}

/* --- what each message id owes (see struct outstanding) ------------------ */

static int outstanding_ready(struct outstanding *o)
{
    if (!o->acks) o->acks = calloc(65536, sizeof *o->acks);
    if (!o->writes) o->writes = calloc(65536, sizeof *o->writes);
    return o->acks && o->writes ? MOSQ_ERR_SUCCESS : MOSQ_ERR_NOMEM;
}

static void outstanding_add(struct sts_mqtt *m, int mid, int qos)
{
    struct outstanding *o = &m->outstanding;
    if (qos > 0) {
        o->acks[mid]++;
        if (m->stats.unacked++ == 0) m->acked_at = sts_now();
    } else if (!o->written_now) {
        o->writes[mid]++;
    }
}

/* A publish callback for mid: settles what it stands for; 1 for an
 * acknowledgement. A QoS 0 publish waiting with the same id is written before
 * anything is acknowledged of the later one; inside mosquitto_publish the
 * callback is the write of the QoS 0 publish being made. */
static int outstanding_settle(struct sts_mqtt *m, int mid)
{
    struct outstanding *o = &m->outstanding;
    if (!o->acks || mid < 1 || mid > 65535) return 0;
    if (o->writes[mid]) {
        o->writes[mid]--;
        return 0;
    }
    if (o->publishing) {
        o->written_now = 1;
        return 0;
    }
    if (!o->reading || !o->acks[mid]) return 0;
    o->acks[mid]--;
    m->stats.unacked--;
    m->acked_at = sts_now();
    m->ack_patience = ACK_PATIENCE;
    return 1;
}

/* libmosquitto drops the packets it had not written when the connection
 * goes: no QoS 0 publish is still to be written. */
static void outstanding_forget_writes(struct outstanding *o)
{
    if (o->writes) memset(o->writes, 0, 65536 * sizeof *o->writes);
}

/* --- incoming QoS 2 messages libmosquitto holds (see struct held) -------- */

/* The first message held with mid; with messages_only, the first that is no
 * stale copy (a repeat may be a new message under a reused id). */
static int held_find(const struct held *h, int mid, int messages_only)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].mid == mid && (!messages_only || h->v[i].kind != HELD_COPY)) return (int)i;
    return -1;
}

/* The first 32 bits of SHA-256(topic, NUL, payload): tells a repeat from a
 * new message under the same id. Returns 0 or a negative sts_error. */
static int message_digest(const struct mosquitto_message *msg, uint32_t *out)
{
    uint8_t d[32] = { 0 };
    int rc = sts_hash2(STS_SHA256, (const uint8_t *)msg->topic, strlen(msg->topic) + 1,
                       msg->payload, (size_t)msg->payloadlen, d);
    *out = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
    return rc;
}

/* A delivery of msg; one whose digest failed is forgotten, never taken for a repeat. */
static void remember(struct held *h, const struct mosquitto_message *msg)
{
    uint32_t digest;
    if (message_digest(msg, &digest) != 0) {
        h->delivered_at[msg->mid] = 0;
        return;
    }
    if (++h->delivered == 0) h->delivered = 1; /* 0 stands for never */
    h->delivered_at[msg->mid] = h->delivered;
    h->digest_at[msg->mid] = digest;
}

/* msg is what was last delivered with its id. */
static int same_as_delivered(const struct held *h, const struct mosquitto_message *msg)
{
    uint32_t digest;
    return h->delivered_at[msg->mid] && message_digest(msg, &digest) == 0 && digest == h->digest_at[msg->mid];
}

static int recently_delivered(const struct held *h, int mid)
{
    uint32_t at = h->delivered_at[mid];
    return at && h->delivered - at < RECENT;
}

static void held_give_up(struct sts_mqtt *m, const char *why)
{
    m->held.on = 0; /* cannot follow its queue any more: deliver as it does */
    sts_warn("mqtt %s: %s: QoS 2 redeliveries are no longer checked", m->client_id, why);
}

/* A QoS 2 PUBLISH libmosquitto is about to queue: a copy when it holds the
 * id unreleased (the sender may not reuse an id before our PUBCOMP). */
static void held_publish(struct sts_mqtt *m, int mid, int dup)
{
    struct held *h = &m->held;
    if (h->n == MAX_HELD) {
        char why[64];
        snprintf(why, sizeof why, "over %d QoS 2 messages held unreleased", MAX_HELD);
        held_give_up(m, why);
        return;
    }
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 32;
        void *v = realloc(h->v, cap * sizeof *h->v);
        if (!v) {
            held_give_up(m, "out of memory");
            return;
        }
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n].mid = (uint16_t)mid;
    h->v[h->n].kind = held_find(h, mid, 1) >= 0             ? HELD_COPY
                      : dup && recently_delivered(h, mid) ? HELD_REPEAT
                                                         : HELD_LIVE;
    h->n++;
}

/* A PUBREL libmosquitto is about to answer: it releases the first message it
 * holds with the id. A stale copy goes undelivered; when a message the PUBREL
 * is for waits behind it, the broker must repeat the PUBREL: the PUBCOMP
 * libmosquitto is about to send must fail. */
static void held_release(struct sts_mqtt *m, int mid)
{
    struct held *h = &m->held;
    int i = held_find(h, mid, 0);
    m->held.releasing = 0;
    if (i < 0) return;
    enum held_kind kind = h->v[i].kind;
    memmove(&h->v[i], &h->v[i + 1], (h->n - (size_t)i - 1) * sizeof *h->v);
    h->n--;
    h->releasing = kind == HELD_COPY ? 0 : mid; /* copies are dropped when delivered */
    h->releasing_repeat = kind == HELD_REPEAT;
    if (kind != HELD_COPY || held_find(h, mid, 1) < 0) return;
    m->stats.redeliveries_dropped++;
    sts_info("mqtt %s: reconnecting to drop a stale copy of QoS 2 message %d", m->client_id, mid);
    shutdown(mosquitto_socket(m->mosq), SHUT_WR);
}

/* A connect that found no session: the broker will release none of the
 * messages held, and sends new ones under their ids, numbered afresh from 1:
 * none of them repeats one delivered before. */
static void held_orphan(struct sts_mqtt *m)
{
    size_t live = 0;
    if (m->held.delivered_at) memset(m->held.delivered_at, 0, 65536 * sizeof *m->held.delivered_at);
    m->held.delivered = 0;
    m->held.repeat = 0;
    for (size_t i = 0; i < m->held.n; i++) {
        live += m->held.v[i].kind == HELD_LIVE;
        m->held.v[i].kind = HELD_COPY;
    }
    if (live)
        sts_warn("mqtt %s: the broker kept no session: %zu QoS 2 messages received and never released are dropped",
                 m->client_id, live);
}

/* Is this delivery a message not delivered before: at QoS 2 the release of
 * a message not released before, at QoS 1 not a repeat? */
static int held_deliverable(struct sts_mqtt *m, const struct mosquitto_message *msg)
{
    struct held *h = &m->held;
    int ok = 1;
    if (!h->on || msg->qos == 0) return 1;
    if (msg->qos == 2 && !h->pubrel_seen) {
        h->on = 0; /* a release we did not see coming: this libmosquitto logs otherwise */
        sts_warn("mqtt %s: libmosquitto's log is not as expected: QoS 2 redeliveries are not checked", m->client_id);
        return 1;
    }
    int maybe_repeat = msg->qos == 2 ? h->releasing_repeat : h->repeat == msg->mid;
    if (msg->qos == 2) ok = h->releasing == msg->mid;
    if (ok && maybe_repeat) ok = !same_as_delivered(h, msg);
    h->releasing = h->releasing_repeat = h->repeat = 0;
    if (ok) remember(h, msg);
    else m->stats.redeliveries_dropped++;
    return ok;
}

static void cb_log(struct mosquitto *mosq, void *ud, int level, const char *line)
{
    struct sts_mqtt *m = ud;
    size_t plen = strlen(m->held.prefix);
    int d, q, r, mid;
    (void)mosq;
    (void)level;
    if (!m->held.on || strncmp(line, m->held.prefix, plen) != 0) return;
    line += plen;
    if (sscanf(line, "PUBLISH (d%d, q%d, r%d, m%d,", &d, &q, &r, &mid) == 4) {
        if (q == 2) held_publish(m, mid, d);
        if (q == 1) m->held.repeat = d && recently_delivered(&m->held, mid) ? mid : 0;
    } else if (sscanf(line, "PUBREL (Mid: %d)", &mid) == 1) {
        m->held.pubrel_seen = 1;
        held_release(m, mid);
    }
}

/* libmosquitto 2.0 words its log lines as parsed above. */
static int held_start(struct sts_mqtt *m)
{
    int major = 0;
    mosquitto_lib_version(&major, NULL, NULL);
    size_t len = sizeof "Client " + strlen(m->client_id) + sizeof " received ";
    if (major != 2) return MOSQ_ERR_SUCCESS;
    m->held.prefix = malloc(len);
    m->held.delivered_at = calloc(65536, sizeof *m->held.delivered_at);
    m->held.digest_at = calloc(65536, sizeof *m->held.digest_at);
    if (!m->held.prefix || !m->held.delivered_at || !m->held.digest_at) return MOSQ_ERR_NOMEM;
    snprintf(m->held.prefix, len, "Client %s received ", m->client_id);
    m->held.on = 1;
    mosquitto_log_callback_set(m->mosq, cb_log);
    return MOSQ_ERR_SUCCESS;
}

/* --- connection life cycle ------------------------------------------------ */

static void schedule_reconnect(struct sts_mqtt *m)
{
    m->state = STS_MQTT_WAITING;
    sts_timer_start(m->loop, &m->retry, m->backoff, 0);
    sts_info("mqtt %s: reconnecting to %s:%d in %.1f s", m->client_id, m->host, m->port, m->backoff);
    m->backoff *= 2;
    if (m->backoff > m->reconnect_max) m->backoff = m->reconnect_max;
}

/* The connection is gone (or never came): tell the user, then retry if we
 * have been connected before and are allowed to. The first connect fails
 * for good, so that sts.connect can report a dead broker. */
static void connection_lost(struct sts_mqtt *m, int rc, const char *reason)
{
    int was_connected = m->state == STS_MQTT_CONNECTED;
    int retry = rc != MOSQ_ERR_SUCCESS && m->reconnect && m->connected_once && !m->closing;

    if (m->state == STS_MQTT_CLOSED || m->state == STS_MQTT_WAITING) return;
    outstanding_forget_writes(&m->outstanding);
    if (retry) schedule_reconnect(m);
    else m->state = STS_MQTT_CLOSED;
    if (was_connected) {
        m->stats.disconnects++;
        if (m->handlers.on_disconnect) m->handlers.on_disconnect(m->handlers.ud, rc, retry, reason);
    } else if (m->handlers.on_connect) {
        m->handlers.on_connect(m->handlers.ud, rc ? rc : MOSQ_ERR_NO_CONN, 0, reason);
    }
}

static void connect_to(struct sts_mqtt *m, const char *address, int first)
{
    int rc = first ? mosquitto_connect_bind_async(m->mosq, address, m->port, m->keepalive, NULL)
                   : mosquitto_reconnect_async(m->mosq);
    if (rc != MOSQ_ERR_SUCCESS) {
        const char *why = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
        sts_debug("mqtt %s: connect to %s:%d failed: %s", m->client_id, m->host, m->port, why);
        connection_lost(m, rc, why);
    }
}

/* The first attempt resolves the host name off the loop, then connects to
 * the address (with TLS, by name: the certificate is checked against it;
 * the name then resolves again in libmosquitto, now known to answer). Later
 * attempts reuse what the first one connected to. */
static void begin_attempt(struct sts_mqtt *m, int first)
{
    m->state = STS_MQTT_CONNECTING;
    m->attempt_deadline = sts_now() + m->timeout;
    if (!first) {
        connect_to(m, NULL, 0);
        return;
    }
    m->resolving = sts_resolve_start(m->host);
    if (!m->resolving) {
        connection_lost(m, MOSQ_ERR_EAI, "cannot start resolving the host name");
        return;
    }
    sts_timer_start(m->loop, &m->resolve, 0, 0.002);
}

static void on_resolve(struct sts_timer *t, void *ud)
{
    struct sts_mqtt *m = ud;
    const char *address = NULL, *error = NULL;
    int rc = sts_resolve_poll(m->resolving, &address, &error);
    if (rc == 0 && sts_now() < m->attempt_deadline) return;
    sts_timer_stop(m->loop, t);
    if (rc == 1) connect_to(m, m->tls ? m->host : address, 1);
    sts_resolve_free(m->resolving);
    m->resolving = NULL;
    if (rc != 1) connection_lost(m, MOSQ_ERR_EAI, rc == 0 ? "host name lookup timed out" : error);
}

static void on_retry(struct sts_timer *t, void *ud)
{
    struct sts_mqtt *m = ud;
    (void)t;
    begin_attempt(m, !m->attempted++);
}

/* A broker that answers PINGREQ (libmosquitto drops the connection when it
 * does not) but acknowledges nothing for ACK_PATIENCE keepalive periods has
 * lost what we sent (MQTT over TCP resends only on a new connection):
 * reconnect, and libmosquitto sends it all again. A broker merely slow would
 * be reconnected to again and again: each such reconnect without an
 * acknowledgement since doubles the wait, up to MAX_ACK_PATIENCE periods. */
static void check_acks(struct sts_mqtt *m)
{
    double now = sts_now(), waited = now - m->acked_at;
    if (m->stats.unacked == 0 || waited < (double)m->ack_patience * m->keepalive) return;
    sts_warn("mqtt %s: no acknowledgement in %.0f s with %lu messages waiting for one: reconnecting to send them again",
             m->client_id, waited, m->stats.unacked);
    m->acked_at = now;
    if (m->ack_patience < MAX_ACK_PATIENCE) m->ack_patience *= 2;
    shutdown(mosquitto_socket(m->mosq), SHUT_RDWR);
}

static void on_tick(struct sts_timer *t, void *ud)
{
    struct sts_mqtt *m = ud;
    (void)t;
    if (m->state == STS_MQTT_CONNECTING && !m->resolving && sts_now() >= m->attempt_deadline) {
        connection_lost(m, MOSQ_ERR_TIMEOUT, "connect timed out");
        mosquitto_disconnect(m->mosq); /* its callback finds the loss already handled */
        return;
    }
    if (m->state == STS_MQTT_CONNECTED) mosquitto_loop_misc(m->mosq); /* PINGREQ and keepalive checks */
    if (m->state == STS_MQTT_CONNECTED) check_acks(m);
}

/* --- libmosquitto callbacks (run inside mosquitto_loop_* calls) ----------- */

static void cb_connect(struct mosquitto *mosq, void *ud, int rc, int flags, const mosquitto_property *props)
{
    struct sts_mqtt *m = ud;
    (void)mosq;
    (void)props;
    if (rc != 0) {
        /* Refused by the broker (bad credentials, ...): retrying will not help. */
        const char *reason = rc < 6 ? mosquitto_connack_string(rc) : mosquitto_reason_string(rc);
        m->reconnect = 0;
        connection_lost(m, MOSQ_ERR_CONN_REFUSED, reason);
        return;
    }
    m->state = STS_MQTT_CONNECTED;
    m->connected_once = 1;
    m->backoff = m->reconnect_min;
    m->stats.connects++;
    m->connected_at = m->acked_at = sts_now();
    if (!(flags & 1)) held_orphan(m);
    sts_debug("mqtt %s: connected to %s:%d", m->client_id, m->host, m->port);
    sts_registry_each(&m->registry, resubscribe_filter, m);
    if (m->handlers.on_connect) m->handlers.on_connect(m->handlers.ud, 0, flags & 1, NULL);
}

static void cb_disconnect(struct mosquitto *mosq, void *ud, int rc, const mosquitto_property *props)
{
    struct sts_mqtt *m = ud;
    (void)mosq;
    (void)props;
    connection_lost(m, rc, rc ? "connection lost" : "disconnected");
}

static void cb_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    struct sts_mqtt *m = ud;
    (void)mosq;
    if (m->closing || !held_deliverable(m, msg)) return;
    if ((size_t)msg->payloadlen > m->max_payload) {
        m->stats.oversize_in++;
        sts_warn("mqtt %s: dropped a %d-byte message on '%s': over max_payload (%zu)",
                 m->client_id, msg->payloadlen, msg->topic, m->max_payload);
        return;
    }
    m->stats.messages_in++;
    struct sts_mqtt_message out = {
        .topic = msg->topic, .payload = msg->payload, .len = (size_t)msg->payloadlen,
        .qos = msg->qos, .retain = msg->retain, .props = props,
    };
    /* Behind messages kept on its topic, which a subscriber that just came
     * gets from the loop, so that it gets them in the order they came. */
    if (kept_on(m, out.topic) && sts_registry_wants(&m->registry, out.topic)) {
        keep_unclaimed(m, &out);
    } else if (sts_registry_deliver(&m->registry, &out, &m->closing) == 0 && !m->closing) {
        if (sts_now() - m->connected_at > CLAIM_WINDOW) drop_unclaimed(m, out.topic, "");
        else keep_unclaimed(m, &out);
    }
}

static void cb_publish(struct mosquitto *mosq, void *ud, int mid, int reason, const mosquitto_property *props)
{
    struct sts_mqtt *m = ud;
    (void)mosq;
    (void)props;
    if (!outstanding_settle(m, mid)) return;
    if (reason >= 0x80)
        sts_warn("mqtt %s: the broker refused a message: %s", m->client_id, mosquitto_reason_string(reason));
}

int sts_mqtt_drained(const struct sts_mqtt *m)
{
    return m->stats.unacked == 0 && !(mosquitto_socket(m->mosq) >= 0 && mosquitto_want_write(m->mosq));
}

void sts_mqtt_watch_drain(struct sts_mqtt *m)
{
    m->watching_drain = 1;
}

static void check_drained(struct sts_mqtt *m)
{
    if (m->watching_drain && !m->closing && sts_mqtt_drained(m)) {
        m->watching_drain = 0;
        if (m->handlers.on_drained) m->handlers.on_drained(m->handlers.ud);
    }
}

/* --- the loop source ------------------------------------------------------- */

static int source_prepare(struct sts_source *src, short *events)
{
    struct sts_mqtt *m = (struct sts_mqtt *)src;
    int fd = mosquitto_socket(m->mosq);
    if (fd < 0 || m->closing || m->state == STS_MQTT_CLOSED || m->state == STS_MQTT_WAITING) return -1;
    *events = POLLIN | (mosquitto_want_write(m->mosq) ? POLLOUT : 0);
    return fd;
}

/* Reads every packet already buffered in the socket, not just one, so a
 * burst costs one poll() rather than one per message. */
static void read_available(struct sts_mqtt *m)
{
#ifdef TCP_QUICKACK
    /* Acknowledge at once, so a broker that leaves Nagle on does not hold its
     * next small packet for our delayed ACK. Linux clears it as it goes. */
    int one = 1;
    setsockopt(mosquitto_socket(m->mosq), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#endif
    for (int i = 0; i < 256; i++) { /* at most 256 a turn, so that a flood cannot hold up the timers */
        int pending = 0;
        m->outstanding.reading = 1;
        int rc = mosquitto_loop_read(m->mosq, 1);
        m->outstanding.reading = 0;
        if (rc != MOSQ_ERR_SUCCESS) return;
        int fd = mosquitto_socket(m->mosq);
        if (fd < 0 || m->closing || ioctl(fd, FIONREAD, &pending) != 0 || pending == 0) return;
    }
}

static void source_dispatch(struct sts_source *src, short revents)
{
    struct sts_mqtt *m = (struct sts_mqtt *)src;

    if (m->closing) return;
    if (revents & (POLLIN | POLLHUP | POLLERR)) read_available(m);
    if ((revents & POLLOUT) && !m->closing && mosquitto_socket(m->mosq) >= 0)
        mosquitto_loop_write(m->mosq, 1);
    check_drained(m);
}

/* --- public API ------------------------------------------------------------ */

static int configure_tls(struct sts_mqtt *m, const struct sts_mqtt_options *o, char *err, size_t errlen)
{
    int rc;
    if (o->tls.psk) {
        rc = mosquitto_tls_psk_set(m->mosq, o->tls.psk, o->tls.psk_identity ? o->tls.psk_identity : m->client_id, NULL);
    } else {
        rc = mosquitto_tls_set(m->mosq, o->tls.cafile, o->tls.capath, o->tls.certfile, o->tls.keyfile, NULL);
    }
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_opts_set(m->mosq, 1, o->tls.version, NULL);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_insecure_set(m->mosq, o->tls.insecure != 0);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errlen, "tls: %s", rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        return rc;
    }
    return MOSQ_ERR_SUCCESS;
}

static char *generated_client_id(void)
{
    uint8_t raw[6];
    char hex[13];
    char *id = malloc(sizeof "sts-" + sizeof hex);
    if (!id || sts_random(raw, sizeof raw) != 0) {
        free(id);
        return NULL;
    }
    sts_hex_encode(hex, raw, sizeof raw);
    sprintf(id, "sts-%s", hex);
    return id;
}

static int configure(struct sts_mqtt *m, const struct sts_mqtt_options *o, char *err, size_t errlen)
{
    int rc = mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, o->protocol);
    /* Telemetry is many small messages: Nagle's algorithm would hold each
     * one behind the peer's delayed ACK (up to 40 ms on Linux). */
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_int_option(m->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    if (rc == MOSQ_ERR_SUCCESS && o->username)
        rc = mosquitto_username_pw_set(m->mosq, o->username, o->password);
    if (rc == MOSQ_ERR_SUCCESS && o->will.topic)
        rc = mosquitto_will_set(m->mosq, o->will.topic, (int)o->will.len, o->will.payload,
                                o->will.qos, o->will.retain != 0);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errlen, "%s", mosquitto_strerror(rc));
        return rc;
    }
    if (o->tls.enabled && configure_tls(m, o, err, errlen) != MOSQ_ERR_SUCCESS) return MOSQ_ERR_TLS;
    if (!o->clean_session && held_start(m) != MOSQ_ERR_SUCCESS) {
        snprintf(err, errlen, "out of memory");
        return MOSQ_ERR_NOMEM;
    }
    mosquitto_connect_v5_callback_set(m->mosq, cb_connect);
    mosquitto_disconnect_v5_callback_set(m->mosq, cb_disconnect);
    mosquitto_message_v5_callback_set(m->mosq, cb_message);
    mosquitto_publish_v5_callback_set(m->mosq, cb_publish);
    return MOSQ_ERR_SUCCESS;
}

struct sts_mqtt *sts_mqtt_new(struct sts_loop *loop, const struct sts_mqtt_options *o,
                              const struct sts_mqtt_handlers *handlers, char *err, size_t errlen)
{
    if (!lib_ready) {
        mosquitto_lib_init();
        lib_ready = 1;
    }
    struct sts_mqtt *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->loop = loop;
    m->handlers = *handlers;
    m->host = strdup(o->host);
    m->client_id = o->client_id ? strdup(o->client_id) : generated_client_id();
    m->port = o->port;
    m->keepalive = o->keepalive;
    m->timeout = o->timeout;
    m->reconnect = o->reconnect;
    m->reconnect_min = m->backoff = o->reconnect_min;
    m->reconnect_max = o->reconnect_max;
    m->ack_patience = ACK_PATIENCE;
    m->max_payload = o->max_payload;
    m->state = STS_MQTT_CLOSED;
    sts_timer_init(&m->tick, on_tick, m);
    sts_timer_init(&m->retry, on_retry, m);
    sts_timer_init(&m->resolve, on_resolve, m);
    sts_timer_init(&m->claim, on_claim, m);
    sts_registry_init(&m->registry);
    sts_backlog_init(&m->unclaimed, MAX_UNCLAIMED, free_properties);
    m->tls = o->tls.enabled && !o->tls.insecure && !o->tls.psk;
    if (!m->host || !m->client_id) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    m->mosq = mosquitto_new(m->client_id, o->clean_session != 0, m);
    if (!m->mosq) {
        snprintf(err, errlen, "mosquitto_new: %s", strerror(errno));
        goto fail;
    }
    if (configure(m, o, err, errlen) != MOSQ_ERR_SUCCESS) goto fail;

    m->src.prepare = source_prepare;
    m->src.dispatch = source_dispatch;
    sts_loop_add_source(loop, &m->src);
    sts_timer_start(loop, &m->tick, 0.25, 0.25);
    /* The first attempt starts from the loop, so that no handler runs
     * before the caller has the client in hand. */
    sts_timer_start(loop, &m->retry, 0, 0);
    m->state = STS_MQTT_CONNECTING;
    m->attempt_deadline = sts_now() + m->timeout;
    return m;
fail:
    if (m->mosq) mosquitto_destroy(m->mosq);
    free(m->held.prefix);
    free(m->held.delivered_at);
    free(m->held.digest_at);
    free(m->host);
    free(m->client_id);
    free(m);
    return NULL;
}

struct sts_mqtt_sub *sts_mqtt_subscribe(struct sts_mqtt *m, const char *filter, int qos,
                                        sts_mqtt_message_fn fn, void *ud, int *rc)
{
    *rc = mosquitto_sub_topic_check(filter) == MOSQ_ERR_SUCCESS ? MOSQ_ERR_SUCCESS : MOSQ_ERR_INVAL;
    if (*rc != MOSQ_ERR_SUCCESS || qos < 0 || qos > 2) {
        *rc = MOSQ_ERR_INVAL;
        return NULL;
    }
    struct sts_mqtt_sub *sub = sts_registry_add(&m->registry, filter, qos, fn, ud);
    if (!sub) {
        *rc = MOSQ_ERR_NOMEM;
        return NULL;
    }
    *rc = sync_filter(m, sub->filter);
    if (*rc != MOSQ_ERR_SUCCESS) {
        sts_mqtt_unsubscribe(m, sub);
        return NULL;
    }
    if (m->unclaimed.head) sts_timer_start(m->loop, &m->claim, 0, 0);
    return sub;
}

void sts_mqtt_unsubscribe(struct sts_mqtt *m, struct sts_mqtt_sub *sub)
{
    if (m->closing) return; /* everything goes with the client */
    struct sts_filter *f = sub->filter;
    sts_registry_remove(sub);
    warn_rc(m, "unsubscribing from", f->text, sync_filter(m, f));
    sts_registry_collect(&m->registry, f);
}

/* libmosquitto 2.0.11 numbers a QoS > 0 publish once it has checked it, and
 * past allocating it queues it in its session store before writing: an error
 * then (not connected, the write failed, the connection reset) is the
 * write's, and the message goes out again after the reconnect, as it does
 * when written. An allocation failure or an oversize packet may come before
 * or after queueing: a failure, as the caller must assume either way. */
static int queued_anyway(int mid, int rc)
{
    return mid != 0 && rc != MOSQ_ERR_NOMEM && rc != MOSQ_ERR_OVERSIZE_PACKET;
}

int sts_mqtt_publish(struct sts_mqtt *m, const char *topic, const void *payload, size_t len,
                     int qos, int retain, const mosquitto_property *props)
{
    if (len > m->max_payload) return MOSQ_ERR_PAYLOAD_SIZE;
    if (m->state == STS_MQTT_CLOSED || m->closing) return MOSQ_ERR_NO_CONN;
    if (m->state != STS_MQTT_CONNECTED && qos == 0) return MOSQ_ERR_NO_CONN;
    int mid = 0;
    if (outstanding_ready(&m->outstanding) != MOSQ_ERR_SUCCESS) return MOSQ_ERR_NOMEM;
    m->outstanding.publishing = 1;
    m->outstanding.written_now = 0;
    int rc = mosquitto_publish_v5(m->mosq, &mid, topic, (int)len, payload, qos, retain != 0, props);
    m->outstanding.publishing = 0;
    if (qos > 0 && queued_anyway(mid, rc)) rc = MOSQ_ERR_SUCCESS;
    if (rc == MOSQ_ERR_SUCCESS) {
        m->stats.messages_out++;
        outstanding_add(m, mid, qos);
    }
    return rc;
}

#define LINGER_SECONDS 1.0

/* A socket closed with unread input is reset, not closed, and a reset makes
 * the broker drop what it had not read yet of ours: the last messages. So
 * after DISCONNECT the socket (a duplicate: libmosquitto closes its own once
 * DISCONNECT is written) is shut for writing and read to its end, which the
 * broker reaches as soon as it has read our DISCONNECT; at most
 * LINGER_SECONDS. */
static void linger(int fd)
{
    char sink[4096];
    double until = sts_now() + LINGER_SECONDS;
    shutdown(fd, SHUT_WR);
    for (;;) {
        int wait = (int)((until - sts_now()) * 1000);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (wait <= 0 || poll(&p, 1, wait) <= 0) break;
        ssize_t n = recv(fd, sink, sizeof sink, 0);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;
    }
    close(fd);
}

/* Ends the connection: what is queued is written, then DISCONNECT. Runs
 * outside every libmosquitto callback (from the closing phase), where
 * writing cannot deadlock on libmosquitto's callback mutex. */
static void say_goodbye(struct sts_mqtt *m)
{
    sts_resolve_free(m->resolving);
    m->resolving = NULL;
    if (m->state == STS_MQTT_CONNECTED) {
        int fd = mosquitto_socket(m->mosq) >= 0 ? dup(mosquitto_socket(m->mosq)) : -1;
        mosquitto_loop_write(m->mosq, 1);
        mosquitto_disconnect(m->mosq);
        mosquitto_loop_write(m->mosq, 1);
        /* libmosquitto closes its socket once DISCONNECT is written; while it
         * has not, output is still queued, and shutting the socket would cut it. */
        if (fd >= 0 && mosquitto_socket(m->mosq) < 0) linger(fd);
        else if (fd >= 0) close(fd);
    } else {
        mosquitto_disconnect(m->mosq);
    }
    m->state = STS_MQTT_CLOSED;
}

static void finalize(struct sts_closing *c)
{
    struct sts_mqtt *m = (struct sts_mqtt *)((char *)c - offsetof(struct sts_mqtt, finalizer));
    say_goodbye(m);
    sts_loop_remove_source(m->loop, &m->src);
    mosquitto_destroy(m->mosq);
    if (m->unclaimed.n)
        sts_warn("mqtt %s: dropped %zu kept messages that no handler took", m->client_id, m->unclaimed.n);
    sts_backlog_clear(&m->unclaimed);
    sts_registry_free(&m->registry);
    free(m->outstanding.acks);
    free(m->outstanding.writes);
    free(m->held.v);
    free(m->held.prefix);
    free(m->held.delivered_at);
    free(m->held.digest_at);
    free(m->host);
    free(m->client_id);
    free(m);
}

void sts_mqtt_close(struct sts_mqtt *m)
{
    if (!m || m->closing) return;
    m->closing = 1;
    m->reconnect = 0;
    m->handlers = (struct sts_mqtt_handlers){ 0 };
    sts_timer_stop(m->loop, &m->tick);
    sts_timer_stop(m->loop, &m->retry);
    sts_timer_stop(m->loop, &m->resolve);
    sts_timer_stop(m->loop, &m->claim);
    sts_loop_close(m->loop, &m->finalizer, finalize);
}

enum sts_mqtt_state sts_mqtt_state(const struct sts_mqtt *m) { return m->closing ? STS_MQTT_CLOSED : m->state; }
const char *sts_mqtt_client_id(const struct sts_mqtt *m) { return m->client_id; }
const struct sts_mqtt_stats *sts_mqtt_stats(const struct sts_mqtt *m) { return &m->stats; }
