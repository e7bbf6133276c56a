/* The key server's ACL: the syntax, lookups and permissions, every error
 * message, 10,000 entries and the entry limit, and loading files. */
#include "proto/acl.h"
#include "util/error.h"
#include "util/unit.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define K1 "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"
#define K2 "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define K3 "DeadBeefDeadBeefDeadBeefDeadBeefDeadBeefDeadBeefDeadBeefDeadBeef"
#define K4 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char err[512];

static int parse(struct sts_acl *acl, const char *text)
{
    return sts_acl_parse(acl, text, strlen(text), "acl.txt", err, sizeof err);
}

static void hex_key(const char *hex, uint8_t pub[STS_X25519_LEN])
{
    for (int i = 0; i < STS_X25519_LEN; i++) {
        unsigned b;
        sscanf(hex + 2 * i, "%2x", &b);
        pub[i] = (uint8_t)b;
    }
}

static const struct sts_acl_entry *find_hex(const struct sts_acl *acl, const char *hex)
{
    uint8_t pub[STS_X25519_LEN];
    hex_key(hex, pub);
    return sts_acl_find(acl, pub);
}

static int holds_nothing(const struct sts_acl *acl)
{
    return acl->count == 0 && acl->entries == NULL && acl->slots == NULL && acl->nslots == 0;
}

/* text must be refused with exactly this message. */
static void parse_fails(const char *text, int code, const char *message)
{
    struct sts_acl acl;

    CHECK(parse(&acl, text) == code);
    CHECK(strcmp(err, message) == 0);
    if (strcmp(err, message) != 0) fprintf(stderr, "  got: %s\n  want: %s\n", err, message);
    CHECK(holds_nothing(&acl));
}

static void test_syntax(void)
{
    struct sts_acl acl;
    const struct sts_acl_entry *e;
    const char *text =
        "# members of the lab\r\n"
        "\r\n"
        K1 "  alice\tg1,g2\t rw  # the admin\r\n"
        "   \t# an indented comment\n"
        "\t" K2 "\tbob g2 r\n"
        K3 " carol g1,g3 w#not a comment: part of nothing, after a field\n"
        K4 " dave.x-y_Z g4";
    uint8_t unknown[STS_X25519_LEN] = { 0 };

    /* '#' starts a comment only at the start of a field */
    CHECK(parse(&acl, text) == STS_ERR_PARSE);
    CHECK(strcmp(err, "acl.txt:6: field 'perm': unexpected 'w#not' (expected r, w or rw)") == 0);

    text = "# members of the lab\r\n"
           "\r\n"
           K1 "  alice\tg1,g2\t rw  # the admin\r\n"
           "   \t# an indented comment\n"
           "\t" K2 "\tbob g2 r\n"
           K3 " carol g1,g3 w #\n"
           K4 " dave.x-y_Z g4";
    CHECK(parse(&acl, text) == 0);
    CHECK(err[0] == '\0');
    CHECK(acl.count == 4);

    e = find_hex(&acl, K1);
    CHECK(e != NULL && strcmp(e->name, "alice") == 0 && e->ngroups == 2);
    CHECK(e != NULL && strcmp(e->groups[0], "g1") == 0 && strcmp(e->groups[1], "g2") == 0);
    CHECK(e != NULL && sts_acl_perm(e, "g1") == (STS_ACL_READ | STS_ACL_WRITE));
    CHECK(e != NULL && sts_acl_perm(e, "g2") == (STS_ACL_READ | STS_ACL_WRITE));
    CHECK(e != NULL && sts_acl_perm(e, "g3") == 0);
    CHECK(e != NULL && sts_acl_perm(e, "g") == 0);

    e = find_hex(&acl, K2);
    CHECK(e != NULL && strcmp(e->name, "bob") == 0);
    CHECK(e != NULL && sts_acl_perm(e, "g2") == STS_ACL_READ && sts_acl_perm(e, "g1") == 0);

    e = find_hex(&acl, K3);
    CHECK(e != NULL && strcmp(e->name, "carol") == 0 && e->perm == STS_ACL_WRITE);
    CHECK(e != NULL && sts_acl_perm(e, "g1") == STS_ACL_WRITE && sts_acl_perm(e, "g3") == STS_ACL_WRITE);
    CHECK(e != NULL && sts_acl_perm(e, "g2") == 0);

    e = find_hex(&acl, K4);
    CHECK(e != NULL && strcmp(e->name, "dave.x-y_Z") == 0);
    CHECK(e != NULL && sts_acl_perm(e, "g4") == (STS_ACL_READ | STS_ACL_WRITE));
    CHECK(e != NULL && sts_acl_perm(e, "G4") == 0);

    /* the key itself decides: one changed byte is someone else */
    hex_key(K4, unknown);
    unknown[31] ^= 1;
    CHECK(sts_acl_find(&acl, unknown) == NULL);
    sts_acl_free(&acl);
    CHECK(holds_nothing(&acl));
    CHECK(sts_acl_find(&acl, unknown) == NULL);

    /* nothing listed */
    CHECK(parse(&acl, "") == 0 && acl.count == 0);
    CHECK(sts_acl_find(&acl, unknown) == NULL);
    sts_acl_free(&acl);
    CHECK(parse(&acl, "# only\n\n  \t \r\n# comments\n") == 0 && acl.count == 0);
    sts_acl_free(&acl);
}

static void test_groups_limit(void)
{
    char line[64 + 1 + 5 + 1 + 64 * 5 + 16];
    struct sts_acl acl;
    int n = sprintf(line, "%s alice ", K1);

    for (int i = 0; i < STS_ACL_MAX_GROUPS; i++)
        n += sprintf(line + n, "%sg%d", i ? "," : "", i);
    CHECK(parse(&acl, line) == 0);
    CHECK(acl.count == 1 && acl.entries[0].ngroups == STS_ACL_MAX_GROUPS);
    CHECK(sts_acl_perm(&acl.entries[0], "g63") == (STS_ACL_READ | STS_ACL_WRITE));
    sts_acl_free(&acl);
    strcpy(line + n, ",g64");
    parse_fails(line, STS_ERR_TOO_BIG, "acl.txt:1: field 'groups': more than 64 groups");
}

static void test_errors(void)
{
    char text[512];

    parse_fails("abcd alice g1\n", STS_ERR_PARSE, "acl.txt:1: field 'key': expected 64 hex digits");
    parse_fails("\n# x\n" K1 "0 alice g1\n", STS_ERR_PARSE,
                "acl.txt:3: field 'key': expected 64 hex digits");
    parse_fails("\r\n" "0" K1 " alice g1\n", STS_ERR_PARSE,
                "acl.txt:2: field 'key': expected 64 hex digits");
    parse_fails(K1 " alice g1\n" "g" K2 " bob g1\n", STS_ERR_PARSE,
                "acl.txt:2: field 'key': expected 64 hex digits");
    strcpy(text, K2 " bob g1\n");
    text[5] = 'x';
    parse_fails(text, STS_ERR_PARSE, "acl.txt:1: field 'key': expected 64 hex digits");

    parse_fails(K1 "\n", STS_ERR_PARSE, "acl.txt:1: field 'name': missing");
    parse_fails(K1 "   # alice g1\n", STS_ERR_PARSE, "acl.txt:1: field 'name': missing");
    parse_fails(K1 " a/b g1\n", STS_ERR_PARSE, "acl.txt:1: field 'name': 'a/b' is not a valid name");
    parse_fails(K1 " a\x01z g1\n", STS_ERR_PARSE, "acl.txt:1: field 'name': 'a?z' is not a valid name");
    parse_fails(K1 " nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnN g1\n", STS_ERR_PARSE,
                "acl.txt:1: field 'name': "
                "'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...' is not a valid name");

    parse_fails(K1 " alice\n", STS_ERR_PARSE, "acl.txt:1: field 'groups': missing");
    parse_fails(K1 " alice\t# g1\n", STS_ERR_PARSE, "acl.txt:1: field 'groups': missing");
    parse_fails(K1 " alice g1,a/b\n", STS_ERR_PARSE,
                "acl.txt:1: field 'groups': 'a/b' is not a valid group name");
    parse_fails(K1 " alice g1,,g2\n", STS_ERR_PARSE,
                "acl.txt:1: field 'groups': '' is not a valid group name");
    parse_fails(K1 " alice g1,\n", STS_ERR_PARSE, "acl.txt:1: field 'groups': '' is not a valid group name");
    parse_fails(K1 " alice ,g1\n", STS_ERR_PARSE, "acl.txt:1: field 'groups': '' is not a valid group name");
    parse_fails(K1 " alice g1,g2,g1\n", STS_ERR_PARSE, "acl.txt:1: field 'groups': 'g1' listed twice");

    parse_fails(K1 " alice g1 x\n", STS_ERR_PARSE,
                "acl.txt:1: field 'perm': unexpected 'x' (expected r, w or rw)");
    parse_fails(K1 " alice g1 wr\n", STS_ERR_PARSE,
                "acl.txt:1: field 'perm': unexpected 'wr' (expected r, w or rw)");
    parse_fails(K1 " alice g1 R\n", STS_ERR_PARSE,
                "acl.txt:1: field 'perm': unexpected 'R' (expected r, w or rw)");
    parse_fails(K1 " alice g1 rw x\n", STS_ERR_PARSE,
                "acl.txt:1: field 'perm': unexpected text after the permission");
    parse_fails(K1 " alice g1 rw g2 # more\n", STS_ERR_PARSE,
                "acl.txt:1: field 'perm': unexpected text after the permission");

    /* duplicates across lines: the key in either case, the name on another key */
    parse_fails(K1 " alice g1\n# x\n" K2 " bob g1\n"
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f carol g2\n",
                STS_ERR_PARSE, "acl.txt:4: field 'key': listed twice (first on line 1)");
    parse_fails(K1 " alice g1\r\n\r\n" K2 " alice g2\r\n", STS_ERR_PARSE,
                "acl.txt:3: field 'name': 'alice' is already the name of the key on line 1");

    /* the error leaves err for a short buffer truncated, not overrun */
    {
        struct sts_acl acl;
        char small[12];
        CHECK(sts_acl_parse(&acl, K1 "\n", strlen(K1) + 1, "acl.txt", small, sizeof small) == STS_ERR_PARSE);
        CHECK(strcmp(small, "acl.txt:1: ") == 0);
        CHECK(sts_acl_parse(&acl, K1 "\n", strlen(K1) + 1, "acl.txt", NULL, 0) == STS_ERR_PARSE);
    }
}

/* n entries: keys that share most of their bytes, names m00000.., groups by i % 7. */
static char *many_entries(size_t n, size_t *len)
{
    char *text = malloc(n * 100 + 1), *p = text;

    for (size_t i = 0; i < n; i++) {
        uint8_t pub[STS_X25519_LEN];
        for (int j = 0; j < STS_X25519_LEN; j++) pub[j] = (uint8_t)(j < 4 ? i >> (24 - 8 * j) : 0x5a);
        for (int j = 0; j < STS_X25519_LEN; j++) p += sprintf(p, "%02x", pub[j]);
        p += sprintf(p, " m%06zu g%zu,all %s\n", i, i % 7, (const char *[]){ "r", "w", "rw" }[i % 3]);
    }
    *len = (size_t)(p - text);
    return text;
}

static void test_many(void)
{
    static const int perms[] = { STS_ACL_READ, STS_ACL_WRITE, STS_ACL_READ | STS_ACL_WRITE };
    struct sts_acl acl;
    size_t len, missing = 0, wrong = 0;
    char *text = many_entries(10000, &len);

    CHECK(sts_acl_parse(&acl, text, len, "big.acl", err, sizeof err) == 0);
    CHECK(acl.count == 10000);
    for (size_t i = 0; i < 10000; i++) {
        uint8_t pub[STS_X25519_LEN];
        char name[16], group[8];
        memset(pub, 0x5a, sizeof pub);
        for (int j = 0; j < 4; j++) pub[j] = (uint8_t)(i >> (24 - 8 * j));
        const struct sts_acl_entry *e = sts_acl_find(&acl, pub);
        snprintf(name, sizeof name, "m%06zu", i);
        snprintf(group, sizeof group, "g%zu", i % 7);
        if (e == NULL) missing++;
        else if (strcmp(e->name, name) != 0 || sts_acl_perm(e, group) != perms[i % 3]
                 || sts_acl_perm(e, "all") != perms[i % 3] || sts_acl_perm(e, "g7") != 0)
            wrong++;
    }
    CHECK(missing == 0 && wrong == 0);
    {
        uint8_t pub[STS_X25519_LEN];
        memset(pub, 0x5a, sizeof pub);
        pub[2] = 0x27; /* i = 10000 = 0x2710 */
        pub[3] = 0x10;
        CHECK(sts_acl_find(&acl, pub) == NULL);
    }
    sts_acl_free(&acl);
    free(text);

    text = many_entries(STS_ACL_MAX_ENTRIES + 1, &len);
    CHECK(sts_acl_parse(&acl, text, len, "big.acl", err, sizeof err) == STS_ERR_TOO_BIG);
    CHECK(strcmp(err, "big.acl:100001: more than 100000 entries") == 0);
    CHECK(holds_nothing(&acl));
    while (text[len - 2] != '\n') len--; /* without the last line */
    CHECK(sts_acl_parse(&acl, text, len - 1, "big.acl", err, sizeof err) == 0);
    CHECK(acl.count == STS_ACL_MAX_ENTRIES);
    sts_acl_free(&acl);
    free(text);
}

static void write_file(const char *path, const char *text, off_t size)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f == NULL) return;
    fputs(text, f);
    CHECK(fclose(f) == 0);
    if (size > 0) CHECK(truncate(path, size) == 0);
}

static void test_load(void)
{
    char path[] = "/tmp/test_acl.XXXXXX", message[600];
    struct sts_acl acl;
    int fd = mkstemp(path);

    CHECK(fd >= 0);
    close(fd);

    CHECK(sts_acl_load(&acl, "/nonexistent/acl.txt", err, sizeof err) == STS_ERR_IO);
    CHECK(strcmp(err, "/nonexistent/acl.txt: No such file or directory") == 0);
    CHECK(holds_nothing(&acl));

    write_file(path, "# lab\n" K2 " bob g1 r\n", 0);
    CHECK(sts_acl_load(&acl, path, err, sizeof err) == 0);
    CHECK(acl.count == 1 && find_hex(&acl, K2) == &acl.entries[0]);
    sts_acl_free(&acl);

    write_file(path, K2 " bob g1 r\n" K2 " bob g1 r\n", 0);
    CHECK(sts_acl_load(&acl, path, err, sizeof err) == STS_ERR_PARSE);
    snprintf(message, sizeof message, "%s:2: field 'key': listed twice (first on line 1)", path);
    CHECK(strcmp(err, message) == 0);

    /* 16 MiB reach the parser (NUL bytes are no key); one byte more does not */
    write_file(path, "", 16 << 20);
    CHECK(sts_acl_load(&acl, path, err, sizeof err) == STS_ERR_PARSE);
    snprintf(message, sizeof message, "%s:1: field 'key': expected 64 hex digits", path);
    CHECK(strcmp(err, message) == 0);
    write_file(path, "", (16 << 20) + 1);
    CHECK(sts_acl_load(&acl, path, err, sizeof err) == STS_ERR_TOO_BIG);
    snprintf(message, sizeof message, "%s: larger than 16777216 bytes", path);
    CHECK(strcmp(err, message) == 0);
    CHECK(holds_nothing(&acl));

    CHECK(sts_acl_load(&acl, "/tmp", err, sizeof err) == STS_ERR_IO);
    CHECK(strcmp(err, "/tmp: not a regular file (a directory)") == 0);

    /* A FIFO is refused at once, never waited on; so is an ACL anyone may write. */
    char fifo[] = "/tmp/test_acl_fifo_XXXXXX";
    CHECK(mkdtemp(fifo) != NULL);
    char fifo_path[64];
    snprintf(fifo_path, sizeof fifo_path, "%s/acl", fifo);
    CHECK(mkfifo(fifo_path, 0600) == 0);
    CHECK(sts_acl_load(&acl, fifo_path, err, sizeof err) == STS_ERR_IO);
    snprintf(message, sizeof message, "%s: not a regular file (a FIFO)", fifo_path);
    CHECK(strcmp(err, message) == 0);
    unlink(fifo_path);
    rmdir(fifo);
    write_file(path, "# lab\n" K2 " bob g1 r\n", 0);
    CHECK(chmod(path, 0666) == 0);
    CHECK(sts_acl_load(&acl, path, err, sizeof err) == STS_ERR_PERM && holds_nothing(&acl));
    CHECK(strstr(err, "writable by everyone (mode 666)") != NULL);
    unlink(path);
}

int main(void)
{
    test_syntax();
    test_groups_limit();
    test_errors();
    test_many();
    test_load();
    return unit_done();
}
