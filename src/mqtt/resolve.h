/* Host names resolved without blocking the loop, through glibc's
 * getaddrinfo_a: a DNS server that is slow or gone costs a timeout, never a
 * stalled process. */
#ifndef STS_MQTT_RESOLVE_H
#define STS_MQTT_RESOLVE_H

struct sts_resolve;

/* Starts resolving host (an address literal completes at once). NULL if the
 * request cannot even start. */
struct sts_resolve *sts_resolve_start(const char *host);

/* 0 while in progress; 1 when done, with *address a numeric address string
 * (valid until sts_resolve_free); -1 on failure, with *error saying why. */
int sts_resolve_poll(struct sts_resolve *r, const char **address, const char **error);

/* Cancels and frees. A request glibc can no longer cancel is left to finish
 * on its own, and its small state is then never freed. */
void sts_resolve_free(struct sts_resolve *r);

#endif
