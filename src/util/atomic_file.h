/* Whole files: replaced atomically, read with a limit.
 *
 * sts_write_atomic never leaves a half-written file at path: the data goes to
 * a temporary file in the same directory (path + ".tmp-XXXXXX", made by
 * mkstemp, so never through a symbolic link), which gets its mode before any
 * data, is synced, and is renamed over path; then the directory is synced so
 * the rename itself survives a crash. Readers see the old content or the new,
 * never a mix. */
#ifndef STS_UTIL_ATOMIC_FILE_H
#define STS_UTIL_ATOMIC_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Replaces path with len bytes of data, its permission bits exactly mode (the
 * umask does not apply). Returns 0, or STS_ERR_IO with "path: what failed:
 * why" in err: the temporary file is then gone and path keeps its old
 * content, unless only the final directory sync failed (err says so), when
 * the new content is in place but may not survive a crash. */
int sts_write_atomic(const char *path, const uint8_t *data, size_t len, mode_t mode, char *err, size_t errlen);

/* Reads the whole regular file at path, at most max bytes, into *out (to
 * free(); a NUL follows the *len bytes, for text parsers). Returns 0,
 * STS_ERR_TOO_BIG for a file over max bytes, STS_ERR_NOMEM, or STS_ERR_IO
 * (not there, not readable, not a regular file), with err naming the file.
 * The buffer of a failed read is wiped before it is freed. */
int sts_read_file(const char *path, size_t max, uint8_t **out, size_t *len, char *err, size_t errlen);

/* As sts_read_file, over fd, a file the caller opened (with O_NONBLOCK, so
 * that opening a FIFO did not wait for a writer; it is refused as sts_read_file
 * refuses one), which is closed. check(st, path, ctx, err, errlen), if not
 * NULL, sees the status of the regular file before a byte is read: non-zero
 * refuses it (that error returned, err set by check). The status is the open
 * file's, so the file cannot be swapped between the check and the read. */
struct stat;
typedef int (*sts_file_check)(const struct stat *st, const char *path, void *ctx, char *err, size_t errlen);
int sts_read_fd(int fd, const char *path, size_t max, sts_file_check check, void *ctx, uint8_t **out, size_t *len,
                char *err, size_t errlen);

#endif
