#include "crypto/keyfile.h"
#include "crypto/x25519.h"
#include "util/error.h"
#include "util/unit.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_HEX_1 "0101010101010101010101010101010101010101010101010101010101010101"
#define KEY_HEX_2 "0202020202020202020202020202020202020202020202020202020202020202"

struct collected {
    uint8_t keys[4][32];
    int n;
};

static int collect(void *ctx, const uint8_t key[32])
{
    struct collected *c = ctx;
    if (c->n == 4) return -1;
    memcpy(c->keys[c->n++], key, 32);
    return 0;
}

struct named {
    char names[4][16];
    uint8_t first[4];
    int n;
};

static int collect_named(void *ctx, const uint8_t key[32], const char *name, size_t namelen)
{
    struct named *c = ctx;
    if (c->n == 4 || namelen >= sizeof c->names[0]) return -1;
    memcpy(c->names[c->n], name, namelen);
    c->names[c->n][namelen] = 0;
    c->first[c->n++] = key[0];
    return 0;
}

/* The named parse: the first word of each key's comment, the same lines
 * accepted and refused as by sts_trust_parse. */
static void test_trust_named(void)
{
    struct named c = { .n = 0 };
    unsigned line = 0;
    const char *trust =
        "# sensors\n"
        "sts-key v1 x25519-public\n"
        "0101010101010101010101010101010101010101010101010101010101010101\n"
        "0202020202020202020202020202020202020202020202020202020202020202 \t sensor-7  # kitchen, 2nd floor\r\n"
        "  0303030303030303030303030303030303030303030303030303030303030303\tgw\n"
        "0404040404040404040404040404040404040404040404040404040404040404 ";
    CHECK(sts_trust_parse_named(trust, strlen(trust), collect_named, &c, &line) == 0);
    CHECK(c.n == 4);
    CHECK(c.first[0] == 1 && strcmp(c.names[0], "") == 0);
    CHECK(c.first[1] == 2 && strcmp(c.names[1], "sensor-7") == 0);
    CHECK(c.first[2] == 3 && strcmp(c.names[2], "gw") == 0);
    CHECK(c.first[3] == 4 && strcmp(c.names[3], "") == 0);
    /* '#' starts a comment, never a name; a NUL byte or words after the binding refuse the line. */
    const char *unnamed = "0101010101010101010101010101010101010101010101010101010101010101 #kitchen\n";
    c.n = 0;
    CHECK(sts_trust_parse_named(unnamed, strlen(unnamed), collect_named, &c, &line) == 0);
    CHECK(c.n == 1 && strcmp(c.names[0], "") == 0);
    const char nul[] = "0101010101010101010101010101010101010101010101010101010101010101 sensor\0x\n";
    c.n = 0;
    CHECK(sts_trust_parse_named(nul, sizeof nul - 1, collect_named, &c, &line) == STS_ERR_PARSE && line == 1);
    const char *extra = "0101010101010101010101010101010101010101010101010101010101010101 s-7 a/+ kitchen\n";
    c.n = 0;
    CHECK(sts_trust_parse_named(extra, strlen(extra), collect_named, &c, &line) == STS_ERR_PARSE && line == 1);
    const char *glued = "# ok\n0101010101010101010101010101010101010101010101010101010101010101name\n";
    c.n = 0;
    CHECK(sts_trust_parse_named(glued, strlen(glued), collect_named, &c, &line) == STS_ERR_PARSE && line == 2);
    /* A refusal of the callback is the line's. */
    const char *longname = "0101010101010101010101010101010101010101010101010101010101010101 a-name-of-sixteen\n";
    c.n = 0;
    CHECK(sts_trust_parse_named(longname, strlen(longname), collect_named, &c, &line) == STS_ERR_PARSE && line == 1);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static mode_t file_mode(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 ? st.st_mode : 0;
}

/* Key files are written as new files: private ones 0600, never over an
 * existing file unless forced, never through a symbolic link. */
static void test_save(const char *dir)
{
    uint8_t priv[32], pub[32], back[32];
    char path[128], target[128], err[256];
    CHECK(sts_x25519_keypair(priv, pub) == 0);
    umask(022);

    snprintf(path, sizeof path, "%s/saved.key", dir);
    CHECK(sts_key_save(path, priv, STS_KEY_PRIVATE, 0, err, sizeof err) == 0);
    CHECK((file_mode(path) & 0777) == 0600);
    CHECK(sts_key_load(back, path, STS_KEY_PRIVATE, err, sizeof err) == 0);
    CHECK_MEM(back, priv, 32);

    /* An existing file stays as it is, unless forced. */
    CHECK(sts_key_save(path, pub, STS_KEY_PRIVATE, 0, err, sizeof err) == STS_ERR_IO);
    CHECK(strstr(err, "saved.key: File exists") != NULL);
    CHECK(sts_key_load(back, path, STS_KEY_PRIVATE, err, sizeof err) == 0);
    CHECK_MEM(back, priv, 32);
    CHECK(sts_key_save(path, pub, STS_KEY_PRIVATE, 1, err, sizeof err) == 0);
    CHECK(sts_key_load(back, path, STS_KEY_PRIVATE, err, sizeof err) == 0);
    CHECK_MEM(back, pub, 32);
    unlink(path);

    /* A symbolic link is not followed; forced, the link itself is replaced. */
    snprintf(target, sizeof target, "%s/target", dir);
    snprintf(path, sizeof path, "%s/link.key", dir);
    CHECK(symlink(target, path) == 0);
    CHECK(sts_key_save(path, priv, STS_KEY_PRIVATE, 0, err, sizeof err) == STS_ERR_IO);
    CHECK(access(target, F_OK) != 0);
    CHECK(sts_key_save(path, priv, STS_KEY_PRIVATE, 1, err, sizeof err) == 0);
    CHECK(S_ISREG(file_mode(path)) && access(target, F_OK) != 0);
    unlink(path);

    /* Public key files are readable by all; a missing directory is an error. */
    snprintf(path, sizeof path, "%s/saved.pub", dir);
    CHECK(sts_key_save(path, pub, STS_KEY_PUBLIC, 0, err, sizeof err) == 0);
    CHECK((file_mode(path) & 0777) == 0644);
    CHECK(sts_key_load(back, path, STS_KEY_PUBLIC, err, sizeof err) == 0);
    CHECK_MEM(back, pub, 32);
    unlink(path);
    snprintf(path, sizeof path, "%s/missing/saved.pub", dir);
    CHECK(sts_key_save(path, pub, STS_KEY_PUBLIC, 1, err, sizeof err) == STS_ERR_IO);
    CHECK(strstr(err, "No such file") != NULL);
}

/* Key number i of write_many_keys: zeros, then i big-endian. */
static void nth_key(uint8_t key[32], unsigned i)
{
    memset(key, 0, 32);
    for (int b = 0; b < 4; b++) key[31 - b] = (uint8_t)(i >> (8 * b));
}

/* A trust file of n distinct keys, key i named s<i>, every third unnamed. */
static void write_many_keys(const char *path, unsigned n)
{
    FILE *f = fopen(path, "w");
    for (unsigned i = 0; i < n; i++) fprintf(f, i % 3 ? "%056x%08x s%u\n" : "%056x%08x\n", 0u, i, i);
    fclose(f);
}

/* Trust files read into a list, checked key by key, errors naming file and line. */
static void test_trust_load(const char *dir)
{
    struct sts_trust t;
    char path[128], err[256];
    uint8_t one[32], two[32], three[32], last[32];
    memset(one, 1, 32);
    memset(two, 2, 32);
    memset(three, 3, 32);

    snprintf(path, sizeof path, "%s/ok.trust", dir);
    write_file(path, "# peers\nsts-key v1 x25519-public\n" KEY_HEX_1 "\n\n  " KEY_HEX_2 " sensor-7\n", 0644);
    CHECK(sts_trust_load(&t, path, err, sizeof err) == 0);
    CHECK(t.n == 2);
    CHECK(sts_trust_contains(&t, one) && sts_trust_contains(&t, two) && !sts_trust_contains(&t, three));
    sts_trust_free(&t);
    CHECK(t.n == 0 && t.entries == NULL && !sts_trust_contains(&t, one));

    /* Names and topic bindings; a comment after them starts with '#'. */
    write_file(path, KEY_HEX_1 " gw # the gateway\n" KEY_HEX_2 "\tsensor-7 plant/sensor-7/+ #kitchen\n", 0644);
    CHECK(sts_trust_load(&t, path, err, sizeof err) == 0 && t.n == 2);
    const struct sts_trust_entry *e1 = sts_trust_find(&t, one), *e2 = sts_trust_find(&t, two);
    CHECK(e1 && strcmp(e1->name, "gw") == 0 && strcmp(e1->binding, "") == 0);
    CHECK(e2 && strcmp(e2->name, "sensor-7") == 0 && strcmp(e2->binding, "plant/sensor-7/+") == 0);
    CHECK(sts_trust_find(&t, three) == NULL);
    CHECK(sts_trust_has_name(&t, "gw", 2) && sts_trust_has_name(&t, "sensor-7", 8));
    CHECK(sts_trust_has_name(&t, "sensor-7/x", 8) && !sts_trust_has_name(&t, "sensor-", 7));
    CHECK(!sts_trust_has_name(&t, "sensor-77", 9) && !sts_trust_has_name(&t, "g", 1));
    CHECK(!sts_trust_has_name(&t, "", 0) && !sts_trust_has_name(&t, "a", 1) && !sts_trust_has_name(&t, "z", 1));
    sts_trust_free(&t);
    CHECK(t.by_name == NULL && t.named == 0 && !sts_trust_has_name(&t, "gw", 2));
    write_file(path, KEY_HEX_1 " sensor-7 kitchen, 2nd floor\n", 0644);
    CHECK(sts_trust_load(&t, path, err, sizeof err) == STS_ERR_PARSE && t.n == 0);
    CHECK(strstr(err, "ok.trust:1: words after the topic binding (start a comment with '#')") != NULL);

    unlink(path);

    snprintf(path, sizeof path, "%s/bad.trust", dir);
    write_file(path, "# peers\n" KEY_HEX_1 "\n0101\n", 0644);
    CHECK(sts_trust_load(&t, path, err, sizeof err) == STS_ERR_PARSE && t.n == 0 && t.entries == NULL);
    CHECK(strstr(err, "/bad.trust:3: not a public key (64 hex digits, then an optional name and topic binding)") != NULL);
    unlink(path);
    CHECK(sts_trust_load(&t, path, err, sizeof err) == STS_ERR_IO);
    CHECK(strncmp(err, "trust: ", 7) == 0 && strstr(err, "cannot open ") != NULL && strstr(err, "/bad.trust: No such file") != NULL);

    /* The key limit, and a list that grows past its first allocations. */
    snprintf(path, sizeof path, "%s/many.trust", dir);
    write_many_keys(path, STS_TRUST_MAX_KEYS);
    CHECK(sts_trust_load(&t, path, err, sizeof err) == 0 && t.n == STS_TRUST_MAX_KEYS);
    nth_key(last, STS_TRUST_MAX_KEYS - 1);
    CHECK(sts_trust_contains(&t, last) && !sts_trust_contains(&t, one));
    for (unsigned i = 0; i < STS_TRUST_MAX_KEYS + 2; i += 7) { /* the index against the rule */
        char name[16];
        int n = snprintf(name, sizeof name, "s%u", i);
        if (sts_trust_has_name(&t, name, (size_t)n) != (i < STS_TRUST_MAX_KEYS && i % 3 != 0)) {
            CHECK(!"sts_trust_has_name disagrees with the file");
            break;
        }
    }
    sts_trust_free(&t);
    write_many_keys(path, STS_TRUST_MAX_KEYS + 1);
    CHECK(sts_trust_load(&t, path, err, sizeof err) == STS_ERR_TOO_BIG && t.n == 0);
    CHECK(strstr(err, "many.trust:100001: more than 100000 keys") != NULL);
    unlink(path);
}

/* A trust load that fails with rc, t left empty, and err saying why. */
static void refused_trust(const char *path, int rc, const char *why)
{
    struct sts_trust t;
    char err[512];
    CHECK(sts_trust_load(&t, path, err, sizeof err) == rc && t.n == 0 && t.entries == NULL);
    CHECK(strncmp(err, "trust: ", 7) == 0 && strstr(err, path) != NULL);
    CHECK(strstr(err, why) != NULL);
}

/* What is no trust file: refused with the file and the reason, never
 * waited on, never read past the limit. */
static void test_trust_refused(const char *dir)
{
    struct sts_trust t;
    char path[128], link[160], err[512];

    refused_trust(dir, STS_ERR_IO, "not a regular file (a directory)");
    snprintf(path, sizeof path, "%s/fifo.trust", dir);
    CHECK(mkfifo(path, 0600) == 0);
    refused_trust(path, STS_ERR_IO, "not a regular file (a FIFO)"); /* with no writer: no wait */
    unlink(path);
    refused_trust("/dev/zero", STS_ERR_IO, "not a regular file (a device)");

    snprintf(path, sizeof path, "%s/empty.trust", dir);
    write_file(path, "", 0644);
    refused_trust(path, STS_ERR_PARSE, "empty.trust: empty");
    write_file(path, "# no one yet\n\n   \nsts-key v1 x25519-public\n", 0644);
    refused_trust(path, STS_ERR_PARSE, "empty.trust: no keys, only comments and blank lines");

    /* Anyone may write it: refused whatever it holds; o-w makes it good. */
    write_file(path, KEY_HEX_1 "\n", 0666);
    refused_trust(path, STS_ERR_PERM, "empty.trust: writable by everyone (mode 666)");
    chmod(path, 0664);
    CHECK(sts_trust_load(&t, path, err, sizeof err) == 0 && t.n == 1);
    sts_trust_free(&t);
    /* A link is followed: the checks are the opened file's. */
    snprintf(link, sizeof link, "%s/link.trust", dir);
    CHECK(symlink(path, link) == 0);
    CHECK(sts_trust_load(&t, link, err, sizeof err) == 0 && t.n == 1);
    sts_trust_free(&t);
    chmod(path, 0666);
    refused_trust(link, STS_ERR_PERM, "writable by everyone");
    unlink(link);

    /* Over the limit: refused by its size, before a byte is read. */
    int fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)STS_TRUST_FILE_MAX + 1) == 0);
    close(fd);
    chmod(path, 0644);
    refused_trust(path, STS_ERR_TOO_BIG, "larger than 33554432 bytes");
    unlink(path);

    /* The same reader serves every trust file: the text, or the refusal. */
    char *text;
    size_t len;
    write_file(path, "# a\n" KEY_HEX_2 " b\n", 0644);
    CHECK(sts_trust_read(path, &text, &len, err, sizeof err) == 0 && len == 71 && text[len] == 0);
    free(text);
    write_file(path, "#", 0644);
    CHECK(sts_trust_read(path, &text, &len, err, sizeof err) == STS_ERR_PARSE && strncmp(err, path, strlen(path)) == 0);
    unlink(path);
}

/* A key load that fails with rc and err saying why. */
static void refused_key(const char *path, enum sts_key_kind kind, int rc, const char *why)
{
    uint8_t key[32];
    char err[512];
    CHECK(sts_key_load(key, path, kind, err, sizeof err) == rc);
    CHECK(strstr(err, path) != NULL && strstr(err, why) != NULL);
}

/* Key files: regular, bounded, not empty; a private one ours alone, a
 * public one nobody else may swap. */
static void test_key_refused(const char *dir, const uint8_t priv[32], const uint8_t pub[32])
{
    char path[128], text[STS_KEY_TEXT_MAX];
    uint8_t back[32];

    refused_key(dir, STS_KEY_PRIVATE, STS_ERR_IO, "not a regular file (a directory)");
    snprintf(path, sizeof path, "%s/fifo.key", dir);
    CHECK(mkfifo(path, 0600) == 0);
    refused_key(path, STS_KEY_PRIVATE, STS_ERR_IO, "not a regular file (a FIFO)");
    refused_key(path, STS_KEY_PUBLIC, STS_ERR_IO, "not a regular file (a FIFO)");
    unlink(path);

    snprintf(path, sizeof path, "%s/empty.key", dir);
    write_file(path, "", 0600);
    refused_key(path, STS_KEY_PRIVATE, STS_ERR_PARSE, "empty.key: empty");
    char big[STS_KEY_FILE_MAX + 2];
    memset(big, '\n', sizeof big - 1);
    big[sizeof big - 1] = 0;
    write_file(path, big, 0600);
    refused_key(path, STS_KEY_PRIVATE, STS_ERR_TOO_BIG, "larger than 4096 bytes");
    unlink(path);

    /* A private key someone else owns: refused even at mode 600. Root can
     * give the file away; anyone else reads one of root's. */
    snprintf(path, sizeof path, "%s/theirs.key", dir);
    sts_key_format(text, priv, STS_KEY_PRIVATE);
    write_file(path, text, 0600);
    if (geteuid() == 0) {
        CHECK(chown(path, 65534, 65534) == 0);
        refused_key(path, STS_KEY_PRIVATE, STS_ERR_PERM, "private key is owned by uid 65534, not by this user (uid 0); chown it");
        CHECK(chown(path, 0, 0) == 0);
        CHECK(sts_key_load(back, path, STS_KEY_PRIVATE, text, sizeof text) == 0);
    } else {
        refused_key("/etc/passwd", STS_KEY_PRIVATE, STS_ERR_PERM, "private key is owned by uid 0, not by this user");
    }
    unlink(path);

    /* A pinned public key anyone may write is as good as anyone's. */
    snprintf(path, sizeof path, "%s/peer.pub", dir);
    sts_key_format(text, pub, STS_KEY_PUBLIC);
    write_file(path, text, 0646);
    refused_key(path, STS_KEY_PUBLIC, STS_ERR_PERM, "peer.pub: writable by everyone (mode 646)");
    chmod(path, 0644);
    CHECK(sts_key_load(back, path, STS_KEY_PUBLIC, text, sizeof text) == 0);
    CHECK_MEM(back, pub, 32);
    unlink(path);
}

int main(void)
{
    uint8_t priv[32], pub[32], back[32];
    char text[STS_KEY_TEXT_MAX], err[256];

    CHECK(sts_x25519_keypair(priv, pub) == 0);

    /* Round trips, and a private key never parses as a public one. */
    sts_key_format(text, priv, STS_KEY_PRIVATE);
    CHECK(strncmp(text, STS_KEY_PRIVATE_HEADER "\n", strlen(STS_KEY_PRIVATE_HEADER) + 1) == 0);
    CHECK(sts_key_parse(back, text, strlen(text), STS_KEY_PRIVATE) == 0);
    CHECK_MEM(back, priv, 32);
    CHECK(sts_key_parse(back, text, strlen(text), STS_KEY_PUBLIC) == STS_ERR_PARSE);
    sts_key_format(text, pub, STS_KEY_PUBLIC);
    CHECK(sts_key_parse(back, text, strlen(text), STS_KEY_PUBLIC) == 0);
    CHECK_MEM(back, pub, 32);

    /* Malformed texts. */
    const char *bad[] = {
        "", "sts-key v1 x25519-public", "sts-key v1 x25519-public\n00",
        "sts-key v2 x25519-public\n" "0000000000000000000000000000000000000000000000000000000000000000\n",
        "sts-key v1 x25519-public\n" "000000000000000000000000000000000000000000000000000000000000000g\n",
        "sts-key v1 x25519-public\n" "0000000000000000000000000000000000000000000000000000000000000000\nextra\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(sts_key_parse(back, bad[i], strlen(bad[i]), STS_KEY_PUBLIC) == STS_ERR_PARSE);
    const char *crlf = "sts-key v1 x25519-public\r\n" "0101010101010101010101010101010101010101010101010101010101010101\r\n";
    CHECK(sts_key_parse(back, crlf, strlen(crlf), STS_KEY_PUBLIC) == 0 && back[0] == 1 && back[31] == 1);

    /* Fingerprints: SHA256 of the key, unpadded base64, distinct per key. */
    char fp1[STS_FINGERPRINT_LEN + 1], fp2[STS_FINGERPRINT_LEN + 1];
    uint8_t zero[32] = { 0 };
    CHECK(sts_key_fingerprint(fp1, zero) == 0);
    /* SHA-256 of 32 zero bytes, base64 (python3: base64.b64encode(sha256(bytes(32)))): */
    CHECK(strcmp(fp1, "SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU") == 0);
    CHECK(sts_key_fingerprint(fp2, pub) == 0 && strcmp(fp1, fp2) != 0 && strlen(fp2) == 50);

    /* Files: a private key open to others is refused, as ssh does. */
    char dir[] = "/tmp/sts-keyfile-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof path, "%s/id.key", dir);
    sts_key_format(text, priv, STS_KEY_PRIVATE);
    write_file(path, text, 0644);
    CHECK(sts_key_load(back, path, STS_KEY_PRIVATE, err, sizeof err) == STS_ERR_PERM);
    CHECK(strstr(err, "chmod 600") != NULL);
    chmod(path, 0600);
    CHECK(sts_key_load(back, path, STS_KEY_PRIVATE, err, sizeof err) == 0);
    CHECK_MEM(back, priv, 32);
    unlink(path);
    CHECK(sts_key_load(back, path, STS_KEY_PRIVATE, err, sizeof err) == STS_ERR_IO);
    test_save(dir);
    test_trust_load(dir);
    test_trust_refused(dir);
    test_key_refused(dir, priv, pub);
    CHECK(rmdir(dir) == 0);

    /* Trust lists: comments, blank lines, pasted .pub headers, comments after keys. */
    struct collected c = { .n = 0 };
    unsigned line = 0;
    const char *trust =
        "# gateways\n\n"
        "sts-key v1 x25519-public\n"
        "0101010101010101010101010101010101010101010101010101010101010101\n"
        "  0202020202020202020202020202020202020202020202020202020202020202 sensor-7\n";
    CHECK(sts_trust_parse(trust, strlen(trust), collect, &c, &line) == 0);
    CHECK(c.n == 2 && c.keys[0][0] == 1 && c.keys[1][31] == 2);
    const char *broken = "# ok\n0101\n";
    CHECK(sts_trust_parse(broken, strlen(broken), collect, &c, &line) == STS_ERR_PARSE && line == 2);
    const char *glued = "0101010101010101010101010101010101010101010101010101010101010101x\n";
    CHECK(sts_trust_parse(glued, strlen(glued), collect, &c, &line) == STS_ERR_PARSE && line == 1);
    test_trust_named();
    return unit_done();
}
