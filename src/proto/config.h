/* `key = value` files, such as the STS shell's configs (`start
 * configs/secmaster`), read robustly. The original shell read "%s %s %s"
 * with fscanf into 128-byte buffers; here:
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
 * The parser knows no keys: it yields key/value/line triples, and whoever
 * reads the file decides what the keys mean (the shell's are checked in
 * lua/sts/shell/config.lua). Every error is one line naming the file, the
 * line and (when there is one) the key:
 *   configs/secmaster:7: key 'port': expected '=' after the key, got '1' */
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

#endif
