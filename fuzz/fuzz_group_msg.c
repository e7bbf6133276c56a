/* Key server messages: a strict, canonical codec. Whatever decodes encodes
 * again, to exactly the bytes it came from; whatever does not is refused
 * with one of the documented errors. */
#include "proto/group_msg.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sts_gmsg_roster_entry entries[STS_GMSG_ROSTER_MAX];
    static uint8_t out[STS_GMSG_MAX];
    struct sts_gmsg m;
    size_t len = 0;
    int rc = sts_gmsg_decode(data, size, &m, entries);

    if (rc != 0) {
        if (rc != STS_ERR_TRUNCATED && rc != STS_ERR_INVALID && rc != STS_ERR_UNSUPPORTED) abort();
        return 0;
    }
    if (sts_gmsg_encode(&m, out, sizeof out, &len) != 0) abort();
    if (len != size || memcmp(out, data, size) != 0) abort();
    /* one byte less does not fit */
    if (sts_gmsg_encode(&m, out, size - 1, &len) != STS_ERR_TOO_BIG) abort();
    return 0;
}
