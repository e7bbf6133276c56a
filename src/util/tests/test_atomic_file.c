#include "util/atomic_file.h"
#include "util/error.h"
#include "util/unit.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/sts-atomic-XXXXXX";
static char err[512];

static const char *in_dir(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static unsigned mode_of(const char *path)
{
    struct stat st;
    CHECK(stat(path, &st) == 0);
    return (unsigned)(st.st_mode & 07777);
}

/* Whether path holds exactly text. */
static int holds(const char *path, const char *text)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (sts_read_file(path, 1 << 20, &data, &len, err, sizeof err) != 0) return 0;
    int same = len == strlen(text) && memcmp(data, text, len) == 0;
    free(data);
    return same;
}

/* Entries of the test directory whose name has the temporary suffix. */
static int temporaries(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    CHECK(d != NULL);
    while (d && (e = readdir(d))) n += strstr(e->d_name, ".tmp-") != NULL;
    if (d) closedir(d);
    return n;
}

static int write_text(const char *path, const char *text, mode_t mode)
{
    return sts_write_atomic(path, (const uint8_t *)text, strlen(text), mode, err, sizeof err);
}

static void test_write_and_overwrite(void)
{
    const char *path = in_dir("state");
    struct stat before, after;

    CHECK(write_text(path, "first", 0600) == 0);
    CHECK(holds(path, "first"));
    CHECK(mode_of(path) == 0600);
    CHECK(stat(path, &before) == 0);
    CHECK(write_text(path, "the second content", 0600) == 0);
    CHECK(holds(path, "the second content"));
    CHECK(mode_of(path) == 0600);
    CHECK(stat(path, &after) == 0);
    CHECK(before.st_ino != after.st_ino); /* a new file renamed over, not rewritten in place */
    CHECK(temporaries() == 0);

    /* The mode is exactly the one asked: the umask does not narrow it. */
    mode_t mask = umask(077);
    CHECK(write_text(path, "", 0644) == 0);
    umask(mask);
    CHECK(mode_of(path) == 0644);
    CHECK(holds(path, ""));

    /* A bare name is relative to the working directory, whose sync is then needed. */
    char cwd[256];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(dir) == 0);
    CHECK(write_text("bare", "bare name", 0600) == 0);
    CHECK(chdir(cwd) == 0);
    CHECK(holds(in_dir("bare"), "bare name"));
}

static void test_missing_directory(void)
{
    const char *path = in_dir("missing/state");
    CHECK(write_text(path, "x", 0600) == STS_ERR_IO);
    CHECK(strncmp(err, path, strlen(path)) == 0);
    CHECK(strstr(err, ": creating a temporary file: No such file or directory") != NULL);
}

/* A write that fails half way (the file size limit: a short write, then
 * EFBIG) leaves the old content and no temporary file. */
static void test_failed_write(void)
{
    const char *path = in_dir("kept");
    uint8_t big[4096];
    struct rlimit saved, small;

    CHECK(write_text(path, "old", 0600) == 0);
    memset(big, 'n', sizeof big);
    CHECK(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
    CHECK(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    small = saved;
    small.rlim_cur = 100;
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
    int rc = sts_write_atomic(path, big, sizeof big, 0600, err, sizeof err);
    CHECK(setrlimit(RLIMIT_FSIZE, &saved) == 0);
    CHECK(rc == STS_ERR_IO);
    CHECK(strstr(err, ": writing the temporary file: File too large") != NULL);
    CHECK(holds(path, "old"));
    CHECK(temporaries() == 0);
}

/* A rename that fails (over a directory) removes the temporary file. */
static void test_failed_rename(void)
{
    const char *path = in_dir("a-directory");
    CHECK(mkdir(path, 0700) == 0);
    CHECK(write_text(path, "x", 0600) == STS_ERR_IO);
    CHECK(strstr(err, ": renaming the temporary file over it: Is a directory") != NULL);
    CHECK(temporaries() == 0);
    CHECK(rmdir(path) == 0);
}

/* Only where permissions bind: root writes into a read-only directory. */
static void test_read_only_directory(void)
{
    const char *path = in_dir("ro/state");
    char sub[256];
    if (geteuid() == 0) return;
    snprintf(sub, sizeof sub, "%s/ro", dir);
    CHECK(mkdir(sub, 0700) == 0);
    CHECK(write_text(path, "old", 0600) == 0);
    CHECK(chmod(sub, 0500) == 0);
    CHECK(write_text(path, "new", 0600) == STS_ERR_IO);
    CHECK(strstr(err, ": creating a temporary file: Permission denied") != NULL);
    CHECK(holds(path, "old"));
    CHECK(chmod(sub, 0700) == 0);
}

static void test_read_limits(void)
{
    const char *path = in_dir("hundred");
    uint8_t content[100], *data = NULL;
    size_t len = 0;

    for (size_t i = 0; i < sizeof content; i++) content[i] = (uint8_t)(i * 7 + 1);
    CHECK(sts_write_atomic(path, content, sizeof content, 0600, err, sizeof err) == 0);
    CHECK(sts_read_file(path, 100, &data, &len, err, sizeof err) == 0);
    CHECK(len == 100 && data && data[100] == '\0');
    if (data) CHECK_MEM(data, content, sizeof content);
    free(data);

    data = NULL;
    CHECK(sts_read_file(path, 99, &data, &len, err, sizeof err) == STS_ERR_TOO_BIG);
    CHECK(data == NULL);
    CHECK(strncmp(err, path, strlen(path)) == 0 && strstr(err, "larger than 99 bytes") != NULL);

    CHECK(write_text(path, "", 0600) == 0);
    CHECK(sts_read_file(path, 0, &data, &len, err, sizeof err) == 0);
    CHECK(len == 0 && data && data[0] == '\0');
    free(data);

    CHECK(sts_read_file(in_dir("absent"), 10, &data, &len, err, sizeof err) == STS_ERR_IO);
    CHECK(strstr(err, "/absent: opening: No such file or directory") != NULL);
    CHECK(sts_read_file(dir, 10, &data, &len, err, sizeof err) == STS_ERR_IO);
    CHECK(strstr(err, ": not a regular file") != NULL);
    /* A FIFO with no writer: refused at once, not waited on. */
    CHECK(mkfifo(in_dir("fifo"), 0600) == 0);
    CHECK(sts_read_file(in_dir("fifo"), 10, &data, &len, err, sizeof err) == STS_ERR_IO);
    CHECK(strstr(err, ": not a regular file") != NULL);
}

/* A file whose size fstat does not tell (/proc says 0): the buffer grows
 * past its first guess, and the limit still holds. */
static void test_read_unknown_size(void)
{
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK(sts_read_file("/proc/self/smaps", 1 << 26, &data, &len, err, sizeof err) == 0);
    CHECK(len > 4096 && data && data[len] == '\0' && strlen((char *)data) == len);
    free(data);
    CHECK(sts_read_file("/proc/self/smaps", 5000, &data, &len, err, sizeof err) == STS_ERR_TOO_BIG);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_write_and_overwrite();
    test_missing_directory();
    test_failed_write();
    test_failed_rename();
    test_read_only_directory();
    test_read_limits();
    test_read_unknown_size();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return unit_done();
}
