#include "util/atomic_file.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_SUFFIX ".tmp-XXXXXX"

static int fail(char *err, size_t errlen, const char *path, const char *what, int why)
{
    snprintf(err, errlen, "%s: %s: %s", path, what, strerror(why));
    return STS_ERR_IO;
}

/* --- writing --------------------------------------------------------------- */

static int write_all(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Fills the temporary file; returns NULL, or what failed (errno says why). */
static const char *fill_temporary(int fd, const uint8_t *data, size_t len, mode_t mode)
{
    /* The mode before the data: nobody mode excludes ever sees a byte. */
    if (fchmod(fd, mode) != 0) return "setting the temporary file's mode";
    if (write_all(fd, data, len) != 0) return "writing the temporary file";
    if (fsync(fd) != 0) return "syncing the temporary file";
    return NULL;
}

/* The directory holding path: "." for a bare name, "/" for one at the root. */
static int open_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (!slash) return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
    return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* A rename is durable once its directory is synced. */
static int sync_parent(const char *path, char *err, size_t errlen)
{
    int fd = open_parent(path);
    if (fd < 0) return fail(err, errlen, path, "opening its directory to sync (the new content is in place)", errno);
    int rc = fsync(fd) == 0 ? 0 : fail(err, errlen, path, "syncing its directory (the new content is in place)", errno);
    close(fd);
    return rc;
}

int sts_write_atomic(const char *path, const uint8_t *data, size_t len, mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_MAX];

    if ((size_t)snprintf(tmp, sizeof tmp, "%s" TMP_SUFFIX, path) >= sizeof tmp)
        return fail(err, errlen, path, "naming a temporary file", ENAMETOOLONG);
    /* mkstemp creates with O_EXCL: a symbolic link planted at the name is refused, never followed. */
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) return fail(err, errlen, path, "creating a temporary file", errno);
    const char *what = fill_temporary(fd, data, len, mode);
    int why = errno;
    if (close(fd) != 0 && !what) {
        what = "closing the temporary file";
        why = errno;
    }
    if (!what && rename(tmp, path) != 0) {
        what = "renaming the temporary file over it";
        why = errno;
    }
    if (what) {
        /* Best effort: the failure reported is the one that matters. */
        (void)unlink(tmp);
        return fail(err, errlen, path, what, why);
    }
    return sync_parent(path, err, errlen);
}

/* --- reading ----------------------------------------------------------------- */

static void wipe_free(uint8_t *buf, size_t cap)
{
    if (!buf) return;
    mbedtls_platform_zeroize(buf, cap);
    free(buf);
}

/* Moves the n bytes read so far to a buffer of cap + 1 bytes; not realloc,
 * which would leave a copy of what may be a secret in freed memory. */
static uint8_t *grow(uint8_t *buf, size_t n, size_t old_cap, size_t cap)
{
    uint8_t *bigger = malloc(cap + 1);
    if (bigger) memcpy(bigger, buf, n);
    wipe_free(buf, old_cap + 1);
    return bigger;
}

/* Reads fd to its end, at most limit bytes, into a buffer with room for a
 * NUL after them. The size from fstat is only the first guess: the file may
 * change meanwhile, and files in /proc say 0. */
static int read_up_to(int fd, size_t limit, size_t guess, uint8_t **out, size_t *len)
{
    size_t cap = guess < 4096 ? 4096 : guess;
    if (cap > limit) cap = limit;
    uint8_t *buf = malloc(cap + 1);
    size_t n = 0;

    while (buf) {
        if (n == cap) {
            if (cap == limit) break;
            size_t next = cap > limit / 2 ? limit : cap * 2;
            buf = grow(buf, n, cap, next);
            cap = next;
            continue;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int why = errno;
            wipe_free(buf, cap + 1);
            errno = why;
            return STS_ERR_IO;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    if (!buf) return STS_ERR_NOMEM;
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* What a file that is not a regular one is, for the refusal. */
static const char *file_type(mode_t mode)
{
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
    if (S_ISSOCK(mode)) return "a socket";
    return "another kind of file";
}

int sts_read_file(const char *path, size_t max, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return fail(err, errlen, path, "opening", errno);
    return sts_read_fd(fd, path, max, NULL, NULL, out, len, err, errlen);
}

int sts_read_fd(int fd, const char *path, size_t max, sts_file_check check, void *ctx, uint8_t **out, size_t *len,
                char *err, size_t errlen)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t n = 0;

    int rc = fstat(fd, &st) == 0 ? 0 : fail(err, errlen, path, "reading its status", errno);
    if (rc == 0 && !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file (%s)", path, file_type(st.st_mode));
        rc = STS_ERR_IO;
    }
    if (rc == 0 && check) rc = check(&st, path, ctx, err, errlen);
    /* One byte over max is read to tell a file of exactly max bytes from a larger one. */
    size_t limit = max < SIZE_MAX - 1 ? max + 1 : SIZE_MAX - 1;
    if (rc == 0 && (uintmax_t)st.st_size > max) rc = STS_ERR_TOO_BIG;
    if (rc == 0) {
        rc = read_up_to(fd, limit, (size_t)st.st_size, &buf, &n);
        if (rc == STS_ERR_IO) fail(err, errlen, path, "reading", errno);
        if (rc == STS_ERR_NOMEM) snprintf(err, errlen, "%s: out of memory", path);
    }
    close(fd);
    if (rc == 0 && n > max) {
        wipe_free(buf, n + 1);
        rc = STS_ERR_TOO_BIG;
    }
    if (rc == STS_ERR_TOO_BIG) snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
    if (rc != 0) return rc;
    *out = buf;
    *len = n;
    return 0;
}
