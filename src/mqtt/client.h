/* An MQTT client over libmosquitto, driven by the event loop: its socket is
 * a loop source (never libmosquitto's own thread), connects are asynchronous
 * and bounded by a timeout, and a lost connection is re-established with
 * exponential backoff, restoring subscriptions.
 *
 * Messages are routed in C: each subscriber (sts_mqtt_subscribe) is a
 * callback on a filter, several may share one, and the broker is subscribed
 * once per filter (see registry.h). A client closed from inside one of its
 * callbacks is finalized after they return (the loop's closing phase).
 *
 * Errors are libmosquitto's MOSQ_ERR_* codes (mosquitto_strerror). */
#ifndef STS_MQTT_CLIENT_H
#define STS_MQTT_CLIENT_H

#include "loop/loop.h"
#include "mqtt/registry.h"

#include <mosquitto.h>
#include <stddef.h>

struct sts_mqtt;

struct sts_mqtt_options {
    const char *host;
    int port;
    const char *client_id;
    const char *username, *password;
    int keepalive;          /* seconds */
    int clean_session;
    int protocol;           /* MQTT_PROTOCOL_V31, _V311 or _V5 */
    double timeout;         /* seconds for each connect attempt */
    int reconnect;          /* re-establish lost connections */
    double reconnect_min, reconnect_max;
    size_t max_payload;     /* larger publishes and messages are refused */
    struct {
        const char *topic;
        const void *payload;
        size_t len;
        int qos, retain;
    } will;                 /* topic NULL: none */
    struct {
        int enabled;
        const char *cafile, *capath, *certfile, *keyfile, *version;
        const char *psk, *psk_identity;
        int insecure;
    } tls;
};

struct sts_mqtt_message {
    const char *topic;
    const void *payload;
    size_t len;
    int qos, retain;
    const mosquitto_property *props;
};

struct sts_mqtt_handlers {
    /* rc 0: connected (session_present says whether the broker kept our
     * session); otherwise the attempt failed, reason says why. */
    void (*on_connect)(void *ud, int rc, int session_present, const char *reason);
    /* The connection is gone: rc 0 when we asked for it. `reconnecting`
     * tells whether another attempt is scheduled. */
    void (*on_disconnect)(void *ud, int rc, int reconnecting, const char *reason);
    /* After sts_mqtt_watch_drain: everything published so far has been
     * written to the socket and, for QoS 1/2, acknowledged. Fires once. */
    void (*on_drained)(void *ud);
    void *ud;
};

enum sts_mqtt_state {
    STS_MQTT_CONNECTING,    /* TCP/TLS/CONNECT in progress */
    STS_MQTT_CONNECTED,
    STS_MQTT_WAITING,       /* lost; a reconnect is scheduled */
    STS_MQTT_CLOSED         /* disconnected for good */
};

struct sts_mqtt_stats {
    unsigned long connects, disconnects, messages_in, messages_out, oversize_in;
    unsigned long unclaimed_dropped; /* messages no subscriber took in time */
    unsigned long unacked;  /* QoS 1/2 messages published and not yet acknowledged (exact past 65,535) */
    unsigned long redeliveries_dropped; /* QoS 1/2 messages delivered before, sent again: not delivered */
};

/* Creates the client and starts connecting. On failure returns NULL with a
 * message in err. */
struct sts_mqtt *sts_mqtt_new(struct sts_loop *loop, const struct sts_mqtt_options *opts,
                              const struct sts_mqtt_handlers *handlers, char *err, size_t errlen);

/* Adds a subscriber: fn(ud, msg) runs for every message whose topic matches
 * filter, from the loop. The broker is subscribed when the filter's first
 * subscriber comes (at the highest QoS its subscribers ask for) and
 * unsubscribed when the last goes. A message that arrives soon after a
 * connect with no subscriber is kept a while for the first that comes.
 * Returns NULL with *rc set on failure (MOSQ_ERR_INVAL: not a filter). */
struct sts_mqtt_sub *sts_mqtt_subscribe(struct sts_mqtt *m, const char *filter, int qos,
                                        sts_mqtt_message_fn fn, void *ud, int *rc);
/* Removes a subscriber (from anywhere, its own callback included). */
void sts_mqtt_unsubscribe(struct sts_mqtt *m, struct sts_mqtt_sub *sub);
/* QoS 1 and 2 messages published while the connection is down are kept and
 * sent once it is back; QoS 0 ones are refused with MOSQ_ERR_NO_CONN. */
int sts_mqtt_publish(struct sts_mqtt *m, const char *topic, const void *payload, size_t len,
                     int qos, int retain, const mosquitto_property *props);

/* Closes the client: no handler or subscriber is called again; what is
 * queued is written, DISCONNECT is sent, and the memory freed, at once or,
 * inside a callback, when the callbacks have returned. Subscribers go with
 * it. */
void sts_mqtt_close(struct sts_mqtt *m);

/* Has everything published been written and acknowledged? */
int sts_mqtt_drained(const struct sts_mqtt *m);
/* Asks for one on_drained call when sts_mqtt_drained becomes true. */
void sts_mqtt_watch_drain(struct sts_mqtt *m);

enum sts_mqtt_state sts_mqtt_state(const struct sts_mqtt *m);
const char *sts_mqtt_client_id(const struct sts_mqtt *m);
const struct sts_mqtt_stats *sts_mqtt_stats(const struct sts_mqtt *m);

#endif
