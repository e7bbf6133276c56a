/* The flooder of scripts/flood: publishes hostile frames at a steady rate to a
 * listener, as a client of a broker on 127.0.0.1, fast enough to reach
 * thousands of frames a second (one plain libmosquitto client, QoS 0, no
 * network thread: batches of publishes between writes, paced every ms).
 *
 *   flood PORT KIND RATE SECONDS PREFIX [REPLAY_TOPIC REPLAY_HEX]
 *
 * KIND is what an attacker without keys can send (docs/PROTOCOL.md §13.1):
 *   random    IK-shaped INITREQs of random bytes, each on a new topic PREFIX/rN/up
 *   replayed  a recorded INITREQ (hex) again and again on its own topic
 *   garbage   28-byte ENC-typed junk, each on a new topic PREFIX/gN/up
 *   longtopic XX-shaped INITREQs on new topics of 16 KiB
 * Loopback only; stops after SECONDS or RATE * SECONDS frames, and prints
 * "sent N in S s". */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LONG_TOPIC 16384

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill_random(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(rand() >> 7);
}

static int unhex(const char *hex, unsigned char *out, size_t max)
{
    size_t n = strlen(hex) / 2;
    if (n > max) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (unsigned char)v;
    }
    return (int)n;
}

/* The frame and topic of the n-th publish of kind. */
static int make(const char *kind, long n, const char *prefix, char *topic, size_t tlen, unsigned char *frame,
                const char *replay_topic, const unsigned char *replay, int replay_len)
{
    if (strcmp(kind, "replayed") == 0) {
        snprintf(topic, tlen, "%s", replay_topic);
        memcpy(frame, replay, (size_t)replay_len);
        return replay_len;
    }
    if (strcmp(kind, "garbage") == 0) {
        snprintf(topic, tlen, "%s/g%ld/up", prefix, n);
        frame[0] = 1, frame[1] = 5;
        fill_random(frame + 2, 26);
        return 28;
    }
    if (strcmp(kind, "longtopic") == 0) {
        int k = snprintf(topic, tlen, "%s/%ld-", prefix, n);
        memset(topic + k, 'x', LONG_TOPIC - (size_t)k);
        strcpy(topic + LONG_TOPIC, "/up");
        frame[0] = 1, frame[1] = 1, frame[2] = 0x21;
        fill_random(frame + 3, 32);
        return 35;
    }
    snprintf(topic, tlen, "%s/r%ld/up", prefix, n); /* random */
    frame[0] = 1, frame[1] = 1, frame[2] = 0x31;
    fill_random(frame + 3, 104);
    return 107;
}

int main(int argc, char **argv)
{
    if (argc < 6 || (strcmp(argv[2], "replayed") == 0 && argc < 8)) {
        fprintf(stderr, "usage: flood PORT random|replayed|garbage|longtopic RATE SECONDS PREFIX [TOPIC HEX]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    const char *kind = argv[2], *prefix = argv[5];
    double rate = atof(argv[3]), seconds = atof(argv[4]);
    unsigned char replay[256], frame[256];
    int replay_len = 0;
    if (argc >= 8 && (replay_len = unhex(argv[7], replay, sizeof replay)) <= 0) {
        fprintf(stderr, "flood: bad replay hex\n");
        return 2;
    }
    static char topic[LONG_TOPIC + 64];
    srand((unsigned)time(NULL));
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(NULL, 1, NULL);
    if (!m || mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "flood: cannot connect to 127.0.0.1:%d\n", port);
        return 1;
    }
    long total = (long)(rate * seconds), sent = 0;
    double start = now(), end = start + seconds;
    while (sent < total && now() < end) {
        /* Catch up to where the rate says we should be, then let the socket drain. */
        long due = (long)((now() - start) * rate) + 1;
        for (; sent < due && sent < total; sent++) {
            int len = make(kind, sent, prefix, topic, sizeof topic, frame, argc >= 8 ? argv[6] : "", replay, replay_len);
            if (mosquitto_publish(m, NULL, topic, len, frame, 0, false) != MOSQ_ERR_SUCCESS) break;
        }
        mosquitto_loop(m, 1, 1);
    }
    for (int i = 0; i < 200 && mosquitto_want_write(m); i++) mosquitto_loop(m, 5, 1);
    printf("sent %ld in %.2f s\n", sent, now() - start);
    mosquitto_disconnect(m);
    mosquitto_loop(m, 10, 1);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    return 0;
}
