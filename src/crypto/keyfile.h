/* Identity key files: X25519 keys as text, trust lists and fingerprints.
 *
 *   sts-key v1 x25519-private        sts-key v1 x25519-public
 *   <64 hex digits>                  <64 hex digits>
 *
 * The first line names the format; the key is hex, so files can be read,
 * diffed and pasted. A trust file lists accepted public keys, one per line
 * (64 hex digits, then an optional comment), with `#` comments, blank lines,
 * and the header lines of pasted .pub files ignored. */
#ifndef STS_CRYPTO_KEYFILE_H
#define STS_CRYPTO_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#define STS_KEY_PRIVATE_HEADER "sts-key v1 x25519-private"
#define STS_KEY_PUBLIC_HEADER "sts-key v1 x25519-public"
/* Header, newline, 64 digits, newline, NUL. */
#define STS_KEY_TEXT_MAX 96
/* "SHA256:" and 43 base64 digits (unpadded) of SHA-256 over the public key, as ssh prints them. */
#define STS_FINGERPRINT_LEN 50
#define STS_KEY_FILE_MAX 4096
#define STS_TRUST_MAX_KEYS 100000
#define STS_TRUST_FILE_MAX (32 * 1024 * 1024)

enum sts_key_kind { STS_KEY_PRIVATE, STS_KEY_PUBLIC };

/* Writes a key's text form into out (STS_KEY_TEXT_MAX bytes). */
void sts_key_format(char *out, const uint8_t key[32], enum sts_key_kind kind);

/* Parses a key's text form. A private key text gives the private key; with
 * kind STS_KEY_PUBLIC, a private key text is refused (keys do not leak into
 * places that expect public ones). Returns 0, STS_ERR_PARSE. */
int sts_key_parse(uint8_t key[32], const char *text, size_t len, enum sts_key_kind kind);

/* Reads a key file: a regular file only (a directory, FIFO or device is
 * refused with STS_ERR_IO, a FIFO never waited on), at most
 * STS_KEY_FILE_MAX bytes (STS_ERR_TOO_BIG), not empty (STS_ERR_PARSE). A
 * private key file another user owns, or that group or others may read or
 * write, is refused with STS_ERR_PERM, as ssh refuses one; so is a public
 * key file everyone may write (anyone could swap the pinned key). Errors
 * name the file and why in err. */
int sts_key_load(uint8_t key[32], const char *path, enum sts_key_kind kind, char *err, size_t errlen);

/* Writes a key file as a new file: never over an existing file, never
 * through a symbolic link. Mode 0600 for a private key, 0644 for a public
 * one (less the umask). With force, whatever is at path (a link itself, not
 * its target) is removed first. The key is on disk (fsync) when it returns
 * 0; on failure no file is left, and STS_ERR_IO is returned with err set. */
int sts_key_save(const char *path, const uint8_t key[32], enum sts_key_kind kind, int force,
                 char *err, size_t errlen);

/* The fingerprint of a public key, NUL-terminated (STS_FINGERPRINT_LEN + 1). */
int sts_key_fingerprint(char *out, const uint8_t pub[32]);

/* Parses a trust list, calling add(ctx, key) for each key. On a bad line,
 * returns STS_ERR_PARSE with *bad_line set (1-based). */
int sts_trust_parse(const char *text, size_t len, int (*add)(void *ctx, const uint8_t key[32]),
                    void *ctx, unsigned *bad_line);

/* As sts_trust_parse, also giving each key its name (namelen 0 when the
 * line has none), pointing into text (not NUL-terminated). The words after a
 * key are read as sts_trust_load reads them: "0123...ef sensor-7 # kitchen"
 * names sensor-7; a line sts_trust_load refuses is refused. */
int sts_trust_parse_named(const char *text, size_t len,
                          int (*add)(void *ctx, const uint8_t key[32], const char *name, size_t namelen),
                          void *ctx, unsigned *bad_line);

/* The longest name and binding a trust line may give. */
#define STS_TRUST_NAME_MAX 64
#define STS_TRUST_BINDING_MAX 256

/* One accepted key and what its trust line says of it:
 *   <64 hex digits> [name [topic-filter]] [# comment]
 * The name is the peer's identity (a listener with bind = "name" requires
 * the wildcard level of the session's topic to equal it); the optional third
 * word binds the key to the topics matching an MQTT filter ('+', '#'). A
 * word starting with '#' starts the comment. */
struct sts_trust_entry {
    uint8_t key[32];
    char name[STS_TRUST_NAME_MAX + 1];       /* "" when the line has none */
    char binding[STS_TRUST_BINDING_MAX + 1]; /* "" when the key is not bound */
};

/* A trust list read into memory: the accepted public keys, and the named
 * entries sorted by name, so that a listener binding topics to names finds
 * one in O(log n) for each handshake it is offered, before any work. */
struct sts_trust {
    struct sts_trust_entry *entries;
    size_t n, cap;
    const struct sts_trust_entry **by_name;
    size_t named;
};

/* Reads a trust file's text, refusing what no trust file may be: not a
 * regular file (a directory, FIFO or device; a FIFO is never waited on:
 * STS_ERR_IO), over STS_TRUST_FILE_MAX bytes (STS_ERR_TOO_BIG), writable by
 * everyone (anyone could add their key: STS_ERR_PERM), or without a key
 * line, i.e. empty or only comments, blank lines and .pub headers
 * (STS_ERR_PARSE: a list that accepts no one is a mistake, such as the
 * wrong or a truncated file, not a policy). Every reader of trust files
 * goes through it. *text (to free()) is NUL-terminated; err names the file
 * and why. Returns 0 or the error; STS_ERR_NOMEM too. */
int sts_trust_read(const char *path, char **text, size_t *len, char *err, size_t errlen);

/* The check of sts_trust_read on a file's status (an sts_file_check, see
 * util/atomic_file.h), for other lists of trusted keys (the key server's
 * ACL): refuses a file everyone may write. ctx is unused. */
struct stat;
int sts_trust_file_check(const struct stat *st, const char *path, void *ctx, char *err, size_t errlen);

/* Reads the trust file at path into t (which need not be initialised), as
 * sts_trust_read reads it. On failure t is empty and err, starting
 * "trust: ", names the file (and the line of a bad key). Returns 0,
 * STS_ERR_IO, STS_ERR_PERM, STS_ERR_PARSE, STS_ERR_TOO_BIG, STS_ERR_NOMEM. */
int sts_trust_load(struct sts_trust *t, const char *path, char *err, size_t errlen);

/* 1 if pub is in t, else 0. Every key is compared, each in constant time,
 * so the time taken tells neither which key matched nor how closely. */
int sts_trust_contains(const struct sts_trust *t, const uint8_t pub[32]);

/* The entry of pub in t, or NULL; compares every key in constant time, as
 * sts_trust_contains does. */
const struct sts_trust_entry *sts_trust_find(const struct sts_trust *t, const uint8_t pub[32]);

/* 1 if an entry of t is named name (len bytes, not NUL-terminated), else 0.
 * Names are not secret (they are topic levels), so the search may stop early. */
int sts_trust_has_name(const struct sts_trust *t, const char *name, size_t len);

/* Frees the keys, leaving t an empty list. */
void sts_trust_free(struct sts_trust *t);

#endif
