/* Config files: any bytes parse or fail with a message naming the file.
 * Whatever parses keeps the documented rules: at most 256 keys, each made
 * of key characters and given once, on lines in increasing order; values of
 * at most 512 bytes with no control character but tab. */
#include "proto/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_key(const char *key)
{
    return key[0] != '\0'
           && strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
              == strlen(key);
}

static int is_value(const char *value)
{
    for (; *value != '\0'; value++) {
        unsigned char c = (unsigned char)*value;
        if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
    }
    return 1;
}

static void check_entries(const struct sts_config *cfg)
{
    if (cfg->count > STS_CONFIG_MAX_KEYS) abort();
    for (size_t i = 0; i < cfg->count; i++) {
        const struct sts_config_entry *e = &cfg->entries[i];
        if (!is_key(e->key) || !is_value(e->value)) abort();
        if (strlen(e->value) > STS_CONFIG_MAX_VALUE) abort();
        if (i > 0 && e->line <= cfg->entries[i - 1].line) abort();
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->entries[j].key, e->key) == 0) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sts_config cfg;
    char err[256];

    if (sts_config_parse(&cfg, "fuzz", (const char *)data, size, err, sizeof err) != 0) {
        if (strncmp(err, "fuzz:", 5) != 0 || cfg.count != 0) abort();
        return 0;
    }
    check_entries(&cfg);
    sts_config_free(&cfg);
    return 0;
}
