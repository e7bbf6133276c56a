/* Config files: any bytes parse or fail with a message, and whatever parses
 * goes through the check and the lookups. Checked: an error always comes
 * with a message; a success yields entries within the documented limits. */
#include "proto/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sts_config cfg;
    char err[256];

    if (sts_config_parse(&cfg, "fuzz", (const char *)data, size, err, sizeof err) != 0) {
        if (strncmp(err, "fuzz:", 5) != 0) abort();
        return 0;
    }
    if (cfg.count > STS_CONFIG_MAX_KEYS) abort();
    for (size_t i = 0; i < cfg.count; i++) {
        if (strlen(cfg.entries[i].value) > STS_CONFIG_MAX_VALUE) abort();
        (void)sts_config_bool(cfg.entries[i].value);
        if (sts_config_get(&cfg, cfg.entries[i].key) == NULL) abort();
    }
    if (sts_config_check(&cfg, err, sizeof err) != 0 && strncmp(err, "fuzz:", 5) != 0) abort();
    (void)sts_config_get(&cfg, "url");
    sts_config_free(&cfg);
    return 0;
}
