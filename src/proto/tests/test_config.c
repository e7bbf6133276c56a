/* Config files: every syntax rule, every limit, every error message form. */
#include "proto/config.h"
#include "util/error.h"
#include "util/unit.h"

#include <stdlib.h>

static char err[512];

static int parse(struct sts_config *cfg, const char *text)
{
    return sts_config_parse(cfg, "configs/test", text, strlen(text), err, sizeof err);
}

/* text must be refused by the parser with exactly this message. */
static void parse_fails(const char *text, int code, const char *message)
{
    struct sts_config cfg;

    CHECK(parse(&cfg, text) == code);
    CHECK(strcmp(err, message) == 0);
    if (strcmp(err, message) != 0) fprintf(stderr, "  got: %s\n  want: %s\n", err, message);
    CHECK(cfg.count == 0 && cfg.name == NULL);
}

static void expect_entry(const struct sts_config *cfg, size_t i, const char *key,
                         const char *value, unsigned line)
{
    CHECK(i < cfg->count);
    if (i >= cfg->count) return;
    CHECK(strcmp(cfg->entries[i].key, key) == 0);
    CHECK(strcmp(cfg->entries[i].value, value) == 0);
    CHECK(cfg->entries[i].line == line);
}

/* The original shell's own files (its configs/secmaster and an older
 * config_secmaster, broker address changed) read clean; what their keys
 * mean is spec/shell_config_spec.lua's. */
static void test_original_files(void)
{
    struct sts_config cfg;

    CHECK(parse(&cfg, "url  = localhost\nport = 1883\nusername = master\npassword = master\n"
                      "subtop   = s2m\npubtop   = m2s\nclientid = test_master\n"
                      "sts_mode = master\naes      = cbc\n") == 0);
    CHECK(cfg.count == 9);
    CHECK(strcmp(cfg.name, "configs/test") == 0);
    expect_entry(&cfg, 0, "url", "localhost", 1);
    expect_entry(&cfg, 4, "subtop", "s2m", 5);
    expect_entry(&cfg, 8, "aes", "cbc", 9);
    sts_config_free(&cfg);

    CHECK(parse(&cfg, "mqtt_version  = 4\nip   = 127.0.0.1\nport = 1883\nqos = 0\n"
                      "clean_session = 1\nkeep_alive = 0\nis_retained = 0\n"
                      "id_master = m1\nid_slave = s1\nsts_mode = slave\n") == 0);
    CHECK(cfg.count == 10);
    expect_entry(&cfg, 1, "ip", "127.0.0.1", 2);
    expect_entry(&cfg, 9, "sts_mode", "slave", 10);
    sts_config_free(&cfg);
}

static void test_syntax(void)
{
    struct sts_config cfg;
    const char *text =
        "# whole-line comment\n"
        "\n"
        "   \t\n"
        "  url=broker.local\n"                       /* 4: no spaces, leading blanks */
        "port\t=\t1883   # trailing comment\n"        /* 5 */
        "password = \"a b # c \\\" \\\\ d\"  # kept\n" /* 6: quoted */
        "username = pass#word\n"                     /* 7: '#' not after a blank */
        "clientid =\n"                               /* 8: empty */
        "subtop = # only a comment\n"                /* 9: empty too */
        "pubtop = m2s\r\n"                           /* 10: CRLF */
        "    # indented comment\n"
        "id_master = \"\"\n"                         /* 12: empty quoted */
        "id_slave = two  words  ";                    /* 13: no final newline */

    CHECK(parse(&cfg, text) == 0);
    CHECK(cfg.count == 9);
    expect_entry(&cfg, 0, "url", "broker.local", 4);
    expect_entry(&cfg, 1, "port", "1883", 5);
    expect_entry(&cfg, 2, "password", "a b # c \" \\ d", 6);
    expect_entry(&cfg, 3, "username", "pass#word", 7);
    expect_entry(&cfg, 4, "clientid", "", 8);
    expect_entry(&cfg, 5, "subtop", "", 9);
    expect_entry(&cfg, 6, "pubtop", "m2s", 10);
    expect_entry(&cfg, 7, "id_master", "", 12);
    expect_entry(&cfg, 8, "id_slave", "two  words", 13);
    sts_config_free(&cfg);
    CHECK(cfg.count == 0);

    CHECK(parse(&cfg, "") == 0 && cfg.count == 0);
    sts_config_free(&cfg);
    CHECK(parse(&cfg, "\n\n# nothing\n") == 0 && cfg.count == 0);
    sts_config_free(&cfg);
    /* The parser itself knows no keys: any well-formed name is yielded. */
    CHECK(parse(&cfg, "my.key-2_x = v") == 0);
    expect_entry(&cfg, 0, "my.key-2_x", "v", 1);
    sts_config_free(&cfg);
}

static void test_syntax_errors(void)
{
    parse_fails("port 1883\n", STS_ERR_PARSE,
                "configs/test:1: key 'port': expected '=' after the key, got '1'");
    parse_fails("\nport\n", STS_ERR_PARSE,
                "configs/test:2: key 'port': expected '=' after the key, got end of line");
    parse_fails("po!rt = 1\n", STS_ERR_PARSE,
                "configs/test:1: key 'po': expected '=' after the key, got '!'");
    parse_fails("= 1883\n", STS_ERR_PARSE, "configs/test:1: expected 'key = value', got '='");
    parse_fails("\xc3\xa9t\xc3\xa9 = 1\n", STS_ERR_PARSE,
                "configs/test:1: expected 'key = value', got byte 0xc3");
    parse_fails("a = 1\nb = \"open\n", STS_ERR_PARSE,
                "configs/test:2: key 'b': unterminated quoted value");
    parse_fails("b = \"ends in backslash\\\"\n", STS_ERR_PARSE,
                "configs/test:1: key 'b': unterminated quoted value");
    parse_fails("b = \"a\\nb\"\n", STS_ERR_PARSE,
                "configs/test:1: key 'b': unknown escape '\\n' in a quoted value (only \\\" and \\\\)");
    parse_fails("b = \"a\" b\n", STS_ERR_PARSE,
                "configs/test:1: key 'b': unexpected text after the quoted value");
    parse_fails("b = \"a\"# fine\nc = \"x\"y\n", STS_ERR_PARSE,
                "configs/test:2: key 'c': unexpected text after the quoted value");
    parse_fails("port = 1\nurl = x\nport = 2\n", STS_ERR_PARSE,
                "configs/test:3: key 'port': duplicate key (first set on line 1)");
    parse_fails("a = b\x01\n", STS_ERR_PARSE, "configs/test:1: control character 0x01 in the line");
    parse_fails("a = \"b\x7f\"\n", STS_ERR_PARSE, "configs/test:1: control character 0x7f in the line");
    {
        struct sts_config cfg;
        CHECK(sts_config_parse(&cfg, "f", "a = b\0c\n", 8, err, sizeof err) == STS_ERR_PARSE);
        CHECK(strcmp(err, "f:1: control character 0x00 in the line") == 0);
        CHECK(sts_config_parse(&cfg, "f", "a = b\rc\n", 8, err, sizeof err) == STS_ERR_PARSE);
        CHECK(strcmp(err, "f:1: control character 0x0d in the line") == 0);
    }
}

/* Builds "key = <n times c>" with or without quotes. */
static char *line_of(const char *key, size_t n, int quoted)
{
    char *s = malloc(strlen(key) + n + 8);
    size_t k = (size_t)sprintf(s, "%s = %s", key, quoted ? "\"" : "");
    memset(s + k, 'v', n);
    strcpy(s + k + n, quoted ? "\"" : "");
    return s;
}

static void test_limits(void)
{
    struct sts_config cfg;
    char *s;
    size_t len;

    /* Values: 512 bytes fit, 513 do not, quoted or not. */
    for (int quoted = 0; quoted <= 1; quoted++) {
        s = line_of("v", STS_CONFIG_MAX_VALUE, quoted);
        CHECK(parse(&cfg, s) == 0 && strlen(cfg.entries[0].value) == STS_CONFIG_MAX_VALUE);
        sts_config_free(&cfg);
        free(s);
        s = line_of("v", STS_CONFIG_MAX_VALUE + 1, quoted);
        parse_fails(s, STS_ERR_TOO_BIG, "configs/test:1: key 'v': value longer than 512 bytes");
        free(s);
    }
    /* Lines: 1024 bytes (before the end of line) fit, 1025 do not. */
    s = malloc(STS_CONFIG_MAX_LINE + 8);
    memset(s, ' ', STS_CONFIG_MAX_LINE + 1);
    memcpy(s, "k = v", 5);
    strcpy(s + STS_CONFIG_MAX_LINE, "\r\n");
    CHECK(parse(&cfg, s) == 0 && cfg.count == 1);
    sts_config_free(&cfg);
    strcpy(s + STS_CONFIG_MAX_LINE, " \n");
    parse_fails(s, STS_ERR_TOO_BIG, "configs/test:1: line longer than 1024 bytes");
    free(s);
    /* Keys: 256 fit, the 257th does not. */
    s = malloc((STS_CONFIG_MAX_KEYS + 1) * 16);
    len = 0;
    for (int i = 0; i <= STS_CONFIG_MAX_KEYS; i++) len += (size_t)sprintf(s + len, "k%d = %d\n", i, i);
    CHECK(sts_config_parse(&cfg, "many", s, len - strlen("k256 = 256\n"), err, sizeof err) == 0);
    CHECK(cfg.count == STS_CONFIG_MAX_KEYS);
    expect_entry(&cfg, 255, "k255", "255", 256);
    sts_config_free(&cfg);
    CHECK(sts_config_parse(&cfg, "many", s, len, err, sizeof err) == STS_ERR_TOO_BIG);
    CHECK(strcmp(err, "many:257: key 'k256': more than 256 keys") == 0);
    free(s);
}

/* A short buffer gets a truncated message, never an overrun; none at all
 * is allowed too. */
static void test_small_buffers(void)
{
    struct sts_config cfg;
    char tiny[12];

    memset(tiny, 'x', sizeof tiny);
    CHECK(sts_config_parse(&cfg, "configs/test", "port 1", 6, tiny, 8) == STS_ERR_PARSE);
    CHECK(strcmp(tiny, "configs") == 0 && tiny[8] == 'x');
    CHECK(sts_config_parse(&cfg, "configs/test", "port 1", 6, NULL, 0) == STS_ERR_PARSE);
    CHECK(sts_config_parse(&cfg, "configs/test", "qso 1", 5, tiny, sizeof tiny) == STS_ERR_PARSE);
    CHECK(strcmp(tiny, "configs/tes") == 0);
}

int main(void)
{
    test_original_files();
    test_syntax();
    test_syntax_errors();
    test_limits();
    test_small_buffers();
    return unit_done();
}
