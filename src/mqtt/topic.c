#include "mqtt/topic.h"

#include <string.h>

static int is_level(const char *s, char c)
{
    return s[0] == c && (s[1] == '/' || s[1] == '\0');
}

int sts_topic_matches(const char *filter, const char *topic)
{
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return 0;
    for (;;) {
        if (is_level(filter, '#')) return 1;
        if (is_level(filter, '+')) {
            filter++;
            topic += strcspn(topic, "/");
        } else {
            size_t n = strcspn(filter, "/");
            if (strncmp(filter, topic, n) != 0 || (topic[n] != '/' && topic[n] != '\0')) return 0;
            filter += n;
            topic += n;
        }
        /* Both stand at the end of a level. */
        if (*filter == '\0') return *topic == '\0';
        if (*topic == '\0') return strcmp(filter, "/#") == 0; /* "a/#" matches "a" */
        filter++;
        topic++;
    }
}

int sts_topic_has_wildcard(const char *filter)
{
    return strpbrk(filter, "+#") != NULL;
}

size_t sts_topic_count_plus(const char *filter)
{
    size_t n = 0;
    for (const char *level = filter;; level++) {
        n += is_level(level, '+');
        level = strchr(level, '/');
        if (!level) return n;
    }
}

const char *sts_topic_plus_level(const char *filter, const char *topic, size_t *len)
{
    for (;;) {
        size_t n = strcspn(topic, "/");
        if (is_level(filter, '+')) return *len = n, topic;
        filter += strcspn(filter, "/");
        if (!*filter || !topic[n]) return NULL;
        filter++;
        topic += n + 1;
    }
}

int sts_topic_reply(char *out, size_t outlen, const char *sub, const char *pub, const char *topic)
{
    size_t len = 0;
    const char *t = topic, *s = sub;
    for (const char *p = pub;; p++) {
        const char *piece = p;
        size_t n = strcspn(p, "/");
        if (is_level(p, '+')) {
            /* Walk sub and topic together to the next + of sub. */
            while (*s && !is_level(s, '+')) {
                s += strcspn(s, "/");
                t += strcspn(t, "/");
                if (*s) s++;
                if (*t) t++;
            }
            if (*s) {
                piece = t;
                n = strcspn(t, "/");
                s += 1 + (s[1] == '/');
                t += n + (t[n] == '/');
            }
        }
        if (len + n + 1 > outlen) return -1;
        memcpy(out + len, piece, n);
        len += n;
        p += strcspn(p, "/");
        if (*p == '\0') break;
        out[len++] = '/';
    }
    out[len] = '\0';
    return (int)len;
}
