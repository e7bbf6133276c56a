/* The reference for bench/pubsub.lua: the same exchange between two plain C
 * libmosquitto clients, written the way libmosquitto's own examples are
 * (its network thread, default settings).
 *   mosquitto_pair recv PORT COUNT QOS   prints "received N in S s: R msg/s"
 *   mosquitto_pair send PORT COUNT QOS */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long count, received, acked;
static double first;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)ud;
    (void)msg;
    if (received++ == 0) first = now();
    if (received == count) {
        printf("received %ld in %.3f s: %.0f msg/s\n", received, now() - first, (double)(received - 1) / (now() - first));
        mosquitto_disconnect(m);
    }
}

static void on_publish(struct mosquitto *m, void *ud, int mid)
{
    (void)m;
    (void)ud;
    (void)mid;
    acked++;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s recv|send PORT COUNT QOS\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[2]), qos = atoi(argv[4]);
    count = atol(argv[3]);
    char payload[64];
    memset(payload, 'x', sizeof payload);

    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(NULL, true, NULL);
    mosquitto_message_callback_set(m, on_message);
    mosquitto_publish_callback_set(m, on_publish);
    if (mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "cannot connect\n");
        return 1;
    }
    if (strcmp(argv[1], "recv") == 0) {
        mosquitto_subscribe(m, NULL, "bench/pubsub", qos);
        mosquitto_loop_forever(m, 1000, 1);
    } else {
        mosquitto_loop_start(m);
        for (long i = 0; i < count; i++) {
            while (mosquitto_publish(m, NULL, "bench/pubsub", sizeof payload, payload, qos, false) == MOSQ_ERR_NOMEM)
                usleep(100);
        }
        while (qos > 0 && acked < count) usleep(1000);
        sleep(1);
        mosquitto_disconnect(m);
        mosquitto_loop_stop(m, false);
    }
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    return 0;
}
