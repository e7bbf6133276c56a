#include "crypto/keyfile.h"
#include "crypto/x25519.h"
#include "util/error.h"
#include "util/unit.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

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

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
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
    rmdir(dir);

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
    return unit_done();
}
