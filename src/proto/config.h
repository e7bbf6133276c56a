/* Config files of the original STS shell (`start configs/secmaster`), read
 * robustly. The original read "%s %s %s" with fscanf into 128-byte buffers;
 * here:
 *
 *   # a comment line              blank lines are skipped
 *   url = localhost               spaces around '=' are optional
 *   port=1883   # trailing comment (whitespace, then '#')
 *   password = "a b # c \" \\"    double quotes keep spaces and '#';
 *                                 \" and \\ are the only escapes
 *
 * Limits: a line holds at most 1024 bytes, a value 512, a file 256 keys; a
 * key appears once. Keys are letters, digits, '_', '.', '-'. Control
 * characters other than tab are refused anywhere.
 *
 * sts_config_parse is generic: it yields key/value/line triples. What the
 * keys mean is sts_config_check's table. Every error is one line naming the
 * file, the line and (when there is one) the key:
 *   configs/secmaster:7: key 'qso': unknown key */
#ifndef STS_PROTO_CONFIG_H
#define STS_PROTO_CONFIG_H

#include <stddef.h>

#define STS_CONFIG_MAX_LINE 1024
#define STS_CONFIG_MAX_VALUE 512
#define STS_CONFIG_MAX_KEYS 256

struct sts_config_entry {
    char *key;
    char *value; /* unquoted and unescaped, NUL-terminated */
    unsigned line;
};

struct sts_config {
    char *name; /* the file name errors cite */
    size_t count;
    struct sts_config_entry entries[STS_CONFIG_MAX_KEYS];
};

/* Parses len bytes of text; name is only used in messages. On success cfg
 * holds the entries in file order (free it with sts_config_free). On error
 * returns a negative sts_error (STS_ERR_PARSE, STS_ERR_TOO_BIG,
 * STS_ERR_NOMEM), writes the message into err (errlen bytes, truncated to
 * fit) and leaves cfg empty. */
int sts_config_parse(struct sts_config *cfg, const char *name, const char *text, size_t len,
                     char *err, size_t errlen);

/* Frees the entries, wiping the values first (passwords live there). */
void sts_config_free(struct sts_config *cfg);

/* Checks every entry against the STS shell's keys: unknown keys, aliases
 * given twice (url and ip) and values of the wrong type are errors.
 * Returns 0, or STS_ERR_PARSE with the message in err. */
int sts_config_check(const struct sts_config *cfg, char *err, size_t errlen);

/* The value of key, found under its alias too (url = ip), or NULL. */
const char *sts_config_get(const struct sts_config *cfg, const char *key);

/* A boolean value as the check accepts it: true/yes/1 give 1,
 * false/no/0 give 0, anything else STS_ERR_PARSE. */
int sts_config_bool(const char *value);

#endif
