/* evil_relay: an "evil broker" for the specs. It listens on 127.0.0.1, and
 * for each client that connects opens a connection to the real broker and
 * relays MQTT packets both ways, mistreating PUBLISH packets as told:
 *
 *   evil_relay --broker PORT [--seed N] [--delay MS] [--dup P] [--reorder P]
 *              [--drop P] [--flip P] [--truncate-after N] [--cut-after N]
 *
 *   --delay MS          every packet is held MS milliseconds (order kept)
 *   --dup P             a PUBLISH is sent twice, with probability P (0..1)
 *   --reorder P         a PUBLISH is held back and sent after the next one
 *   --drop P            a PUBLISH is not sent at all
 *   --flip P            a PUBLISH has the last byte of its payload flipped
 *   --truncate-after N  after N PUBLISH packets, the next is cut in half and
 *                       both connections closed
 *   --cut-after N       after N PUBLISH packets, both connections are closed
 *                       (the counts are per connection pair)
 *   --cut-connections K the cut and the truncation only on the first K
 *                       connection pairs (default: all)
 *   --reuse-mid 1       every QoS 1 PUBLISH to the client carries packet id 1,
 *                       with DUP set after the first, as from a broker that
 *                       reuses ids at once; the client's PUBACKs get the
 *                       broker's ids back, in order
 *
 * It prints "listening PORT" on stdout once it accepts, and on SIGTERM (or
 * when stdin closes, with --stdin) a line of what it did on stderr. Loopback
 * only; a test tool, not part of sts-lua. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAIRS 64
#define MAX_PACKET (2u * 1024 * 1024)

struct opts {
    int broker_port;
    double delay, dup, reorder, drop, flip;
    long truncate_after, cut_after, cut_connections;
    int reuse_mid;
};

/* A packet waiting to go out at `at`. */
struct out {
    struct out *next;
    double at;
    size_t len, sent;
    uint8_t data[];
};

struct dir {
    int from, to;               /* sockets */
    uint8_t *in;                /* bytes read, not yet a whole packet */
    size_t in_len, in_cap;
    struct out *head, *tail;    /* to send, in order */
    struct out *held;           /* a PUBLISH held back to be sent after the next */
};

struct pair {
    int used;
    struct dir up, down;        /* client to broker, broker to client */
    long publishes;             /* both ways */
    int spared;                 /* past --cut-connections: never cut */
    int closing;                /* write what is queued, then close */
    uint16_t mids[65536];       /* --reuse-mid: the broker's ids the client has yet to acknowledge */
    uint16_t mid_head, mid_tail;
    long renumbered;
};

static struct opts o = { .truncate_after = -1, .cut_after = -1, .cut_connections = -1 };
static long connections;
static struct pair pairs[MAX_PAIRS];
static volatile sig_atomic_t stop;
static unsigned long n_dup, n_reorder, n_drop, n_flip, n_truncate, n_cut, n_packets;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int chance(double p)
{
    return p > 0 && (double)random() / RAND_MAX < p;
}

static void nonblocking(int fd)
{
    int one = 1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static struct out *out_new(const uint8_t *data, size_t len, double at)
{
    struct out *x = malloc(sizeof *x + len);
    if (!x) {
        perror("evil_relay: malloc");
        exit(1);
    }
    x->next = NULL;
    x->at = at;
    x->len = len;
    x->sent = 0;
    memcpy(x->data, data, len);
    return x;
}

static void enqueue(struct dir *d, struct out *x)
{
    if (d->tail) d->tail->next = x;
    else d->head = x;
    d->tail = x;
}

/* Remaining length of the packet at p (n bytes): its total length, 0 if
 * not yet known, -1 if malformed. */
static long packet_length(const uint8_t *p, size_t n)
{
    size_t len = 0, i;
    for (i = 1; i < n && i <= 4; i++) {
        len |= (size_t)(p[i] & 0x7f) << (7 * (i - 1));
        if (!(p[i] & 0x80)) return len + i + 1 > MAX_PACKET ? -1 : (long)(len + i + 1);
    }
    return i > 4 ? -1 : 0;
}

static void close_pair(struct pair *p)
{
    struct out *x, *next;
    struct dir *ds[2] = { &p->up, &p->down };
    for (int k = 0; k < 2; k++) {
        for (x = ds[k]->head; x; x = next) {
            next = x->next;
            free(x);
        }
        free(ds[k]->held);
        free(ds[k]->in);
    }
    close(p->up.from);
    close(p->down.from);
    memset(p, 0, sizeof *p);
}

/* A PUBLISH held back goes out after the packet that came next. */
static void release_held(struct dir *d, double at)
{
    if (!d->held) return;
    d->held->at = at;
    enqueue(d, d->held);
    d->held = NULL;
}

/* --reuse-mid (see the top): renumbers a QoS 1 PUBLISH to the client, or
 * gives a PUBACK from it the broker's id back. */
static void reuse_mid(struct pair *p, struct dir *d, uint8_t *pkt, size_t len)
{
    size_t at = 1;
    while (at < len && (pkt[at] & 0x80)) at++;
    at++; /* past the remaining length */
    if (!o.reuse_mid || at + 2 > len) return;
    if (d == &p->down && (pkt[0] & 0xf6) == 0x32) {
        size_t id = at + 2 + ((size_t)pkt[at] << 8 | pkt[at + 1]);
        if (id + 2 > len) return;
        p->mids[p->mid_tail++] = (uint16_t)(pkt[id] << 8 | pkt[id + 1]);
        pkt[id] = 0;
        pkt[id + 1] = 1;
        if (p->renumbered++ > 0) pkt[0] |= 0x08;
    } else if (d == &p->up && pkt[0] == 0x40 && p->mid_head != p->mid_tail) {
        uint16_t mid = p->mids[p->mid_head++];
        pkt[at] = (uint8_t)(mid >> 8);
        pkt[at + 1] = (uint8_t)mid;
    }
}

/* One whole packet read in direction d: mistreat it as told, queue it. */
static void relay_packet(struct pair *p, struct dir *d, const uint8_t *pkt, size_t len)
{
    double at = now() + o.delay / 1000.0;
    int publish = (pkt[0] >> 4) == 3;
    n_packets++;
    if (!publish || p->closing) {
        if (!p->closing) {
            struct out *x = out_new(pkt, len, at);
            reuse_mid(p, d, x->data, len);
            enqueue(d, x);
        }
        release_held(d, at);
        return;
    }
    p->publishes++;
    if (o.cut_after >= 0 && !p->spared && p->publishes > o.cut_after) {
        n_cut++;
        p->closing = 1;
        return;
    }
    if (o.truncate_after >= 0 && !p->spared && p->publishes > o.truncate_after) {
        n_truncate++;
        enqueue(d, out_new(pkt, len / 2, at));
        p->closing = 1;
        return;
    }
    if (chance(o.drop)) {
        n_drop++;
        return;
    }
    struct out *x = out_new(pkt, len, at);
    reuse_mid(p, d, x->data, len);
    if (chance(o.flip)) {
        n_flip++;
        x->data[len - 1] ^= 0x01;
    }
    if (!d->held && chance(o.reorder)) {
        n_reorder++;
        d->held = x;
        return;
    }
    enqueue(d, x);
    if (chance(o.dup)) {
        n_dup++;
        enqueue(d, out_new(x->data, len, at));
    }
    release_held(d, at);
}

/* Reads what is there; returns -1 when the connection is gone. */
static int read_side(struct pair *p, struct dir *d)
{
    uint8_t buf[65536];
    ssize_t n = read(d->from, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return -1;
    if (n < 0) return 0;
    if (d->in_len + (size_t)n > d->in_cap) {
        d->in_cap = (d->in_len + (size_t)n) * 2;
        d->in = realloc(d->in, d->in_cap);
        if (!d->in) {
            perror("evil_relay: realloc");
            exit(1);
        }
    }
    memcpy(d->in + d->in_len, buf, (size_t)n);
    d->in_len += (size_t)n;
    size_t off = 0;
    for (;;) {
        long len = packet_length(d->in + off, d->in_len - off);
        if (len < 0) return -1;
        if (len == 0 || (size_t)len > d->in_len - off) break;
        relay_packet(p, d, d->in + off, (size_t)len);
        off += (size_t)len;
    }
    memmove(d->in, d->in + off, d->in_len - off);
    d->in_len -= off;
    return 0;
}

/* Writes what is due; returns -1 when the connection is gone. */
static int write_side(struct dir *d, double t)
{
    while (d->head && d->head->at <= t) {
        struct out *x = d->head;
        ssize_t n = write(d->to, x->data + x->sent, x->len - x->sent);
        if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
        x->sent += (size_t)n;
        if (x->sent < x->len) return 0;
        d->head = x->next;
        if (!d->head) d->tail = NULL;
        free(x);
    }
    return 0;
}

static int connect_broker(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o.broker_port) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    nonblocking(fd);
    return fd;
}

static void accept_client(int lfd)
{
    int c = accept(lfd, NULL, NULL);
    if (c < 0) return;
    int b = connect_broker();
    struct pair *p = NULL;
    for (int i = 0; i < MAX_PAIRS && !p; i++)
        if (!pairs[i].used) p = &pairs[i];
    if (b < 0 || !p) {
        close(c);
        if (b >= 0) close(b);
        return;
    }
    nonblocking(c);
    memset(p, 0, sizeof *p);
    p->used = 1;
    p->spared = o.cut_connections >= 0 && ++connections > o.cut_connections;
    p->up.from = c;
    p->up.to = b;
    p->down.from = b;
    p->down.to = c;
}

static double parse_probability(const char *s)
{
    double p = strtod(s, NULL);
    return p < 0 ? 0 : p > 1 ? 1 : p;
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--broker")) o.broker_port = atoi(v);
        else if (!strcmp(k, "--seed")) srandom((unsigned)strtoul(v, NULL, 10));
        else if (!strcmp(k, "--delay")) o.delay = strtod(v, NULL);
        else if (!strcmp(k, "--dup")) o.dup = parse_probability(v);
        else if (!strcmp(k, "--reorder")) o.reorder = parse_probability(v);
        else if (!strcmp(k, "--drop")) o.drop = parse_probability(v);
        else if (!strcmp(k, "--flip")) o.flip = parse_probability(v);
        else if (!strcmp(k, "--truncate-after")) o.truncate_after = atol(v);
        else if (!strcmp(k, "--cut-after")) o.cut_after = atol(v);
        else if (!strcmp(k, "--cut-connections")) o.cut_connections = atol(v);
        else if (!strcmp(k, "--reuse-mid")) o.reuse_mid = atoi(v) != 0;
        else {
            fprintf(stderr, "evil_relay: unknown option %s\n", k);
            exit(2);
        }
    }
    if (o.broker_port <= 0) {
        fprintf(stderr, "usage: evil_relay --broker PORT [options] (see the source)\n");
        exit(2);
    }
}

static int listen_any(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        perror("evil_relay: listen");
        exit(1);
    }
    printf("listening %d\n", ntohs(a.sin_port));
    fflush(stdout);
    return fd;
}

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

/* poll() entries: the listener, then both sockets of every pair. */
static int prepare(struct pollfd *fds, int lfd, double t, int *timeout)
{
    int n = 0;
    fds[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
    *timeout = 1000;
    for (int i = 0; i < MAX_PAIRS; i++) {
        struct pair *p = &pairs[i];
        if (!p->used) continue;
        struct dir *ds[2] = { &p->up, &p->down };
        for (int k = 0; k < 2; k++) {
            struct dir *d = ds[k];
            short ev = p->closing ? 0 : POLLIN;
            if (d->head && d->head->at <= t) ev |= POLLOUT;
            else if (d->head) {
                int ms = (int)((d->head->at - t) * 1000) + 1;
                if (ms < *timeout) *timeout = ms;
            }
            /* POLLOUT is for d->to; POLLIN for d->from: up.from is down.to. */
            fds[n++] = (struct pollfd){ .fd = d->from, .events = (short)(ev & POLLIN) };
            fds[n++] = (struct pollfd){ .fd = d->to, .events = (short)(ev & POLLOUT) };
        }
    }
    return n;
}

static void serve(struct pollfd *fds, int lfd, double t)
{
    if (fds[0].revents & POLLIN) accept_client(lfd);
    int n = 1;
    for (int i = 0; i < MAX_PAIRS; i++) {
        struct pair *p = &pairs[i];
        if (!p->used) continue;
        struct dir *ds[2] = { &p->up, &p->down };
        int gone = 0;
        for (int k = 0; k < 2; k++, n += 2) {
            /* Nothing came after a held-back PUBLISH for a while: send it. */
            if (ds[k]->held && t - ds[k]->held->at > 0.05) release_held(ds[k], t);
            if (fds[n].revents & (POLLIN | POLLHUP | POLLERR)) gone |= read_side(p, ds[k]) < 0;
            gone |= write_side(ds[k], t) < 0;
        }
        if (p->closing && !p->up.head && !p->down.head) gone = 1;
        if (gone) close_pair(p);
    }
}

int main(int argc, char **argv)
{
    struct pollfd fds[1 + 4 * MAX_PAIRS];
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    int lfd = listen_any();
    while (!stop) {
        int timeout;
        int n = prepare(fds, lfd, now(), &timeout);
        if (poll(fds, (nfds_t)n, timeout) < 0 && errno != EINTR) break;
        serve(fds, lfd, now());
    }
    fprintf(stderr, "evil_relay: %lu packets, %lu duplicated, %lu reordered, %lu dropped, %lu flipped, %lu truncated, %lu cut\n",
            n_packets, n_dup, n_reorder, n_drop, n_flip, n_truncate, n_cut);
    return 0;
}
