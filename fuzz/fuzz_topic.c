/* Topic algebra. Input: a filter, a NUL, a topic, a NUL, a reply pattern.
 * Checked: sts_topic_matches agrees with libmosquitto's matcher on every
 * valid filter and topic; sts_topic_reply never writes past its buffer and
 * always terminates what it wrote; nothing reads out of bounds (ASan). */
#include "mqtt/topic.h"

#include <mosquitto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 3);
    if (!text) abort();
    memcpy(text, data, size);
    memset(text + size, 0, 3);
    const char *filter = text;
    const char *topic = filter + strlen(filter) + 1;
    if (topic > text + size) topic = text + size + 1;
    const char *pub = topic + strlen(topic) + 1;
    if (pub > text + size + 1) pub = text + size + 2;

    bool oracle = false;
    if (mosquitto_sub_topic_check(filter) == MOSQ_ERR_SUCCESS && mosquitto_pub_topic_check(topic) == MOSQ_ERR_SUCCESS &&
        mosquitto_topic_matches_sub(filter, topic, &oracle) == MOSQ_ERR_SUCCESS) {
        if (sts_topic_matches(filter, topic) != (oracle ? 1 : 0)) abort();
    } else {
        (void)sts_topic_matches(filter, topic);
    }

    char out[64];
    memset(out, 'x', sizeof out);
    int n = sts_topic_reply(out, sizeof out - 8, filter, pub, topic);
    if (n >= 0 && ((size_t)n >= sizeof out - 8 || out[n] != '\0')) abort();
    for (size_t i = sizeof out - 8; i < sizeof out; i++)
        if (out[i] != 'x') abort();
    (void)sts_topic_count_plus(filter);
    free(text);
    return 0;
}
