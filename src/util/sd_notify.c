#include "util/sd_notify.h"
#include "util/error.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* The address $NOTIFY_SOCKET names; returns its length, or 0 if unusable. */
static socklen_t notify_address(const char *name, struct sockaddr_un *sa)
{
    size_t len = strlen(name);
    /* Absolute paths and abstract names only, as systemd itself checks. */
    if ((name[0] != '/' && name[0] != '@') || len < 2 || len >= sizeof sa->sun_path) return 0;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, name, len);
    /* An abstract name has no terminating NUL: its length is the address's. */
    if (name[0] == '@') sa->sun_path[0] = '\0';
    else len++;
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
}

int sts_sd_notify(const char *state)
{
    const char *name = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;

    if (!name || !name[0]) return 0;
    socklen_t salen = notify_address(name, &sa);
    if (salen == 0) return STS_ERR_INVALID;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return STS_ERR_IO;
    size_t len = strlen(state);
    ssize_t sent = sendto(fd, state, len, MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
    int saved = errno;
    close(fd);
    errno = saved;
    return sent == (ssize_t)len ? 1 : STS_ERR_IO;
}
