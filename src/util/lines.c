#include "util/lines.h"

#include <string.h>

int sts_next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *n)
{
    const char *nl;
    size_t end;

    if (*pos >= len) return 0;
    nl = memchr(text + *pos, '\n', len - *pos);
    end = nl ? (size_t)(nl - text) : len;
    *line = text + *pos;
    *n = end - *pos;
    if (*n > 0 && text[end - 1] == '\r') (*n)--;
    *pos = end + 1;
    return 1;
}
