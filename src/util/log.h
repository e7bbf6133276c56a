/* Timestamped log lines on stderr, filtered by level. The level comes from
 * the STS_LOG environment variable (debug, info, warn, error, off) at first
 * use, where a value that is none of them is warned about, and can be changed
 * at run time. When stderr is the journal (JOURNAL_STREAM names it, as systemd
 * sets it for a service), a line is "<N>message": its syslog priority and no
 * timestamp, as journald adds its own. Either way a message is one line:
 * its control characters are written as \n, \r, \t or \xNN. */
#ifndef STS_UTIL_LOG_H
#define STS_UTIL_LOG_H

enum sts_log_level { STS_LOG_DEBUG, STS_LOG_INFO, STS_LOG_WARN, STS_LOG_ERROR, STS_LOG_OFF };

enum sts_log_level sts_log_get_level(void);
void sts_log_set_level(enum sts_log_level level);

/* Parses "debug", "info", "warn", "error" or "off"; returns -1 otherwise. */
int sts_log_parse_level(const char *name);
const char *sts_log_level_name(enum sts_log_level level);

/* True when stderr is the journal (decided at first use). */
int sts_log_to_journal(void);

void sts_log(enum sts_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define sts_debug(...) sts_log(STS_LOG_DEBUG, __VA_ARGS__)
#define sts_info(...) sts_log(STS_LOG_INFO, __VA_ARGS__)
#define sts_warn(...) sts_log(STS_LOG_WARN, __VA_ARGS__)
#define sts_error(...) sts_log(STS_LOG_ERROR, __VA_ARGS__)

#endif
