#include "mqtt/resolve.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct sts_resolve {
    struct gaicb request;
    struct addrinfo hints;
    char address[INET6_ADDRSTRLEN];
    int literal;             /* host was already an address */
    char host[];
};

static int is_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

struct sts_resolve *sts_resolve_start(const char *host)
{
    size_t len = strlen(host);
    struct sts_resolve *r = calloc(1, sizeof *r + len + 1);
    if (!r) return NULL;
    memcpy(r->host, host, len + 1);
    if (is_literal(host) && len < sizeof r->address) {
        memcpy(r->address, host, len + 1);
        r->literal = 1;
        return r;
    }
    r->hints.ai_family = AF_UNSPEC;
    r->hints.ai_socktype = SOCK_STREAM;
    r->request.ar_name = r->host;
    r->request.ar_request = &r->hints;
    struct gaicb *list[1] = { &r->request };
    struct sigevent none = { .sigev_notify = SIGEV_NONE };
    if (getaddrinfo_a(GAI_NOWAIT, list, 1, &none) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

int sts_resolve_poll(struct sts_resolve *r, const char **address, const char **error)
{
    if (r->literal || r->address[0]) {
        *address = r->address;
        return 1;
    }
    int rc = gai_error(&r->request);
    if (rc == EAI_INPROGRESS) return 0;
    if (rc != 0) {
        *error = gai_strerror(rc);
        return -1;
    }
    struct addrinfo *ai = r->request.ar_result;
    rc = ai ? getnameinfo(ai->ai_addr, ai->ai_addrlen, r->address, sizeof r->address, NULL, 0, NI_NUMERICHOST)
            : EAI_NONAME;
    freeaddrinfo(r->request.ar_result);
    r->request.ar_result = NULL;
    if (rc != 0) {
        r->address[0] = '\0';
        *error = gai_strerror(rc);
        return -1;
    }
    *address = r->address;
    return 1;
}

void sts_resolve_free(struct sts_resolve *r)
{
    if (!r) return;
    if (!r->literal && gai_error(&r->request) == EAI_INPROGRESS && gai_cancel(&r->request) != EAI_CANCELED)
        return; /* still owned by glibc's resolver thread */
    if (r->request.ar_result) freeaddrinfo(r->request.ar_result);
    free(r);
}
