/* Text files read line by line, for the config and access list parsers. */
#ifndef STS_UTIL_LINES_H
#define STS_UTIL_LINES_H

#include <stddef.h>

/* The line of text (len bytes) starting at *pos: *line and *n (without its
 * "\n" or "\r\n"), with *pos moved past its end. 0 when no line is left;
 * a last line without "\n" counts, an empty end after one does not. */
int sts_next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *n);

#endif
