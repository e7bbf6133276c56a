#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const names[] = { "debug", "info", "warn", "error", "off" };
static int level = -1;  /* not yet read from the environment */

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
    }
    return (enum sts_log_level)level;
}

void sts_log_set_level(enum sts_log_level l)
{
    level = (int)l;
}

void sts_log(enum sts_log_level l, const char *fmt, ...)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    va_list ap;

    if ((int)l < (int)sts_log_get_level()) return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    /* One fprintf per line keeps lines whole when several processes share stderr. */
    char line[2048];
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03ldZ %-5s %s\n", stamp, ts.tv_nsec / 1000000, names[l], line);
}
