#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const names[] = { "debug", "info", "warn", "error", "off" };
/* syslog priorities (sd-daemon(3)): debug 7, info 6, warning 4, err 3. */
static const int priorities[] = { 7, 6, 4, 3 };
static int level = -1;   /* not yet read from the environment */
static int journal = -1; /* not yet known: stderr is the journal */

int sts_log_parse_level(const char *name)
{
    for (int i = 0; i <= STS_LOG_OFF; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

const char *sts_log_level_name(enum sts_log_level l)
{
    return names[l];
}

enum sts_log_level sts_log_get_level(void)
{
    if (level < 0) {
        const char *env = getenv("STS_LOG");
        int parsed = env ? sts_log_parse_level(env) : -1;
        level = parsed >= 0 ? parsed : STS_LOG_INFO;
        if (env && parsed < 0)
            sts_warn("STS_LOG=%s is not a log level (debug, info, warn, error or off); logging at info", env);
    }
    return (enum sts_log_level)level;
}

void sts_log_set_level(enum sts_log_level l)
{
    level = (int)l;
}

/* systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the stream it connects
 * stdout and stderr to (systemd.exec(5)); stderr is the journal only while it
 * is still that stream, not when the service redirected it. */
int sts_log_to_journal(void)
{
    if (journal < 0) {
        const char *env = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        char end;
        journal = env && sscanf(env, "%llu:%llu%c", &dev, &ino, &end) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
                  (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
    }
    return journal;
}

/* The longest continuation a line break becomes: "\n<N>" and an indent. */
#define CONTINUATION_MAX 8

/* Control characters written as \r or \xNN, and a line break as a break
 * followed by cont, so that text from a peer or a script (a KILL reason, a
 * traceback) can never start a line of its own: journald reads each line as
 * an entry with the priority of its <N> (cont repeats the message's), and a
 * reader of plain lines sees continuations indented. Tabs are kept (tracebacks
 * indent with them). out has room for CONTINUATION_MAX + 1 bytes per byte of in. */
static void escape_controls(char *out, const char *in, const char *cont)
{
    for (; *in; in++) {
        unsigned char c = (unsigned char)*in;
        if ((c >= 0x20 && c != 0x7f) || c == '\t') *out++ = (char)c;
        else if (c == '\n') out += sprintf(out, "\n%s", cont);
        else if (c == '\r') out += sprintf(out, "\\r");
        else out += sprintf(out, "\\x%02x", c);
    }
    *out = '\0';
}

void sts_log(enum sts_log_level l, const char *fmt, ...)
{
    va_list ap;

    if ((int)l < (int)sts_log_get_level()) return;
    /* One fprintf per line keeps lines whole when several processes share stderr. */
    char text[2048], line[(CONTINUATION_MAX + 1) * sizeof text], cont[CONTINUATION_MAX + 1];
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (sts_log_to_journal()) {
        /* journald stamps each line itself and reads its priority from <N>. */
        snprintf(cont, sizeof cont, "<%d>  ", priorities[l]);
        escape_controls(line, text, cont);
        fprintf(stderr, "<%d>%s\n", priorities[l], line);
        return;
    }
    escape_controls(line, text, "    ");
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %-5s %s\n", stamp, ts.tv_nsec / 1000000, names[l], line);
}
