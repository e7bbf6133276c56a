#include "util/error.h"

const char *sts_strerror(int err)
{
    switch (err) {
    case STS_OK: return "success";
    case STS_ERR_INVALID: return "invalid input";
    case STS_ERR_TRUNCATED: return "truncated input";
    case STS_ERR_TOO_BIG: return "too large";
    case STS_ERR_AUTH: return "authentication failed";
    case STS_ERR_CRYPTO: return "cryptographic operation failed";
    case STS_ERR_NOMEM: return "out of memory";
    case STS_ERR_STATE: return "unexpected in this state";
    case STS_ERR_REPLAY: return "replayed or too old";
    case STS_ERR_UNSUPPORTED: return "unsupported";
    case STS_ERR_IO: return "input/output error";
    case STS_ERR_PARSE: return "parse error";
    case STS_ERR_EXPIRED: return "expired";
    case STS_ERR_KEY: return "unusable key";
    case STS_ERR_PERM: return "permissions too open";
    case STS_ERR_RNG: return "random generator failed";
    }
    return "unknown error";
}
