/* notify-listen SOCKET: the service manager's end of sd_notify, for specs.
 *
 * Binds an AF_UNIX datagram socket at SOCKET (a path, or @name in the
 * abstract namespace, as systemd's NOTIFY_SOCKET), prints "listening", then
 * for every datagram each of its lines as "notify[PID]: LINE", PID being the
 * sender's as the kernel vouches for it (SCM_CREDENTIALS, which systemd's
 * NotifyAccess= checks too). Runs until killed; output is line-buffered. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* struct ucred */
#endif
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int bind_socket(const char *name)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t len = strlen(name);
    if (len < 2 || len >= sizeof sa.sun_path) return -1;
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@') sa.sun_path[0] = '\0';
    else len++;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0 ||
        bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) != 0)
        return -1;
    return fd;
}

/* The sender's pid from the datagram's credentials, or -1. */
static long sender_pid(struct msghdr *msg)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(c), sizeof cred);
            return (long)cred.pid;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET (a path or @name)\n", argv[0]);
        return 2;
    }
    int fd = bind_socket(argv[1]);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("listening");
    for (;;) {
        char buf[4097];
        char control[CMSG_SPACE(sizeof(struct ucred))];
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf - 1 };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                              .msg_controllen = sizeof control };
        ssize_t n = recvmsg(fd, &msg, 0);
        if (n < 0) {
            perror("recvmsg");
            return 1;
        }
        buf[n] = '\0';
        long pid = sender_pid(&msg);
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) printf("notify[%ld]: %s\n", pid, line);
    }
}
