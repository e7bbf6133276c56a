/* Error codes shared by every layer: 0 is success, failures are negative. */
#ifndef STS_UTIL_ERROR_H
#define STS_UTIL_ERROR_H

enum sts_error {
    STS_OK = 0,
    STS_ERR_INVALID = -1,     /* malformed input or argument */
    STS_ERR_TRUNCATED = -2,   /* input shorter than its format requires */
    STS_ERR_TOO_BIG = -3,     /* input or output over a limit */
    STS_ERR_AUTH = -4,        /* tag or MAC did not verify */
    STS_ERR_CRYPTO = -5,      /* an mbedtls primitive failed */
    STS_ERR_NOMEM = -6,
    STS_ERR_STATE = -7,       /* message not expected in this state */
    STS_ERR_REPLAY = -8,      /* counter already seen or too old */
    STS_ERR_UNSUPPORTED = -9, /* algorithm or version we do not implement */
    STS_ERR_IO = -10,         /* file or system call failed (see errno) */
    STS_ERR_PARSE = -11,      /* text format (PEM, key file, config) not understood */
    STS_ERR_EXPIRED = -12,    /* token or key past its lifetime */
    STS_ERR_KEY = -13,        /* unusable key: low-order point, out of range value */
    STS_ERR_PERM = -14,       /* file permissions too open for a secret */
    STS_ERR_RNG = -15,        /* the random generator failed (seeding or output) */
};

/* A short, static, human-readable description of an error code. */
const char *sts_strerror(int err);

#endif
