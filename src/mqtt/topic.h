/* Topic algebra: MQTT filter matching and the topic rewriting sessions and
 * listeners do. Pure functions over strings, no libmosquitto. Validity
 * (UTF-8, where # may stand) is libmosquitto's mosquitto_sub_topic_check;
 * these assume valid input and stay safe on any NUL-terminated string. */
#ifndef STS_MQTT_TOPIC_H
#define STS_MQTT_TOPIC_H

#include <stddef.h>

/* Does `topic` match subscription `filter`, with + (one level) and # (this
 * level and every one below)? As MQTT says (4.7.2), a topic starting with $
 * is matched by no filter starting with a wildcard. */
int sts_topic_matches(const char *filter, const char *topic);

/* Does the filter contain + or #? */
int sts_topic_has_wildcard(const char *filter);

/* How many levels of the filter are a lone +. */
size_t sts_topic_count_plus(const char *filter);

/* The level of `topic` that the first lone + of `filter` takes, its length
 * in *len ("plant/+/up", "plant/s7/up" gives "s7..." and 2); NULL when the
 * filter has no + or the topic ends before it. The topic is assumed to
 * match the filter (the broker delivered it under it). */
const char *sts_topic_plus_level(const char *filter, const char *topic, size_t *len);

/* The reply topic for a message on `topic` that matched filter `sub`: `pub`
 * with each of its + levels replaced, in order, by the level the matching +
 * of `sub` took ("plant/+/up", "plant/+/down", "plant/s7/up" gives
 * "plant/s7/down"). Writes at most outlen bytes with the NUL; returns the
 * length, or -1 if it does not fit. */
int sts_topic_reply(char *out, size_t outlen, const char *sub, const char *pub, const char *topic);

#endif
