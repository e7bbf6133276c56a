/* The notification protocol against real AF_UNIX datagram sockets: one at a
 * path, one in the abstract namespace, as systemd makes them. */
#include "util/error.h"
#include "util/sd_notify.h"
#include "util/unit.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int bound_socket(const char *name, socklen_t len)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, name, len);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    CHECK(bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) == 0);
    return fd;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    CHECK(n == (ssize_t)strlen(want));
    if (n < 0) return;
    buf[n] = '\0';
    CHECK(strcmp(buf, want) == 0);
}

int main(void)
{
    char dir[] = "/tmp/sts-notify.XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/notify", dir);

    unsetenv("NOTIFY_SOCKET");
    CHECK(sts_sd_notify("READY=1") == 0); /* no service manager: nothing to do */

    int fd = bound_socket(path, (socklen_t)strlen(path) + 1);
    setenv("NOTIFY_SOCKET", path, 1);
    CHECK(sts_sd_notify("READY=1") == 1);
    expect_datagram(fd, "READY=1");
    CHECK(sts_sd_notify("STOPPING=1\nSTATUS=shutting down") == 1);
    expect_datagram(fd, "STOPPING=1\nSTATUS=shutting down");
    close(fd);
    unlink(path);
    CHECK(sts_sd_notify("READY=1") == STS_ERR_IO); /* nobody listens there any more */

    char abstract[64];
    snprintf(abstract, sizeof abstract, "@sts-notify-test-%ld", (long)getpid());
    char raw[64];
    memcpy(raw, abstract, sizeof raw);
    raw[0] = '\0';
    fd = bound_socket(raw, (socklen_t)strlen(abstract));
    setenv("NOTIFY_SOCKET", abstract, 1);
    CHECK(sts_sd_notify("READY=1") == 1);
    expect_datagram(fd, "READY=1");
    close(fd);

    setenv("NOTIFY_SOCKET", "relative/path", 1);
    CHECK(sts_sd_notify("READY=1") == STS_ERR_INVALID);
    setenv("NOTIFY_SOCKET", "@", 1);
    CHECK(sts_sd_notify("READY=1") == STS_ERR_INVALID);
    rmdir(dir);
    return unit_done();
}
