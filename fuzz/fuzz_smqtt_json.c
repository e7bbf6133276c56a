/* The SMQTT JSON join messages and key material texts from arbitrary bytes:
 * a request, a response and a leave are decoded from the same input, and
 * whatever decodes must encode and decode again to the same fields. The
 * input is also tried as key material, which must re-format to a text that
 * parses to the same key and nodes. */
#include "proto/smqtt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t client_key[STS_SMQTT_KEY_LEN] = {
    0xaa, 0xaa, 0xaa, 0xaa, 0xbb, 0xbb, 0xbb, 0xbb, 0xcc, 0xcc, 0xcc, 0xcc, 0xdd, 0xdd, 0xdd, 0xdd,
};

static char json[16384];

static int same_id(const struct sts_smqtt_id *a, const struct sts_smqtt_id *b)
{
    return a->len == b->len && memcmp(a->text, b->text, a->len) == 0 && b->text[b->len] == '\0';
}

static void request(const char *in, size_t len)
{
    struct sts_smqtt_request a, b;
    size_t n;

    if (sts_smqtt_request_decode(&a, in, len, NULL) != 0) return;
    (void)sts_smqtt_request_verify(&a, client_key);
    if (sts_smqtt_request_encode(&a, json, sizeof json, &n) != 0 || sts_smqtt_request_decode(&b, json, n, NULL) != 0)
        abort();
    if (!same_id(&a.member, &b.member) || !same_id(&a.group, &b.group) || a.expires != b.expires || a.seq != b.seq
        || memcmp(a.auth, b.auth, sizeof a.auth) != 0)
        abort();
}

static void response(const char *in, size_t len)
{
    static struct sts_smqtt_response a, b;
    static char material[STS_SMQTT_MATERIAL_MAX];
    size_t n;

    if (sts_smqtt_response_decode(&a, in, len, NULL) != 0) return;
    (void)sts_smqtt_response_open(&a, client_key, material, sizeof material, &n, NULL);
    if (sts_smqtt_response_encode(&a, json, sizeof json, &n) != 0 || sts_smqtt_response_decode(&b, json, n, NULL) != 0)
        abort();
    if (!same_id(&a.member, &b.member) || !same_id(&a.group, &b.group) || a.expires != b.expires
        || a.slot != b.slot || a.depth != b.depth || a.time != b.time || a.seq != b.seq
        || a.ekm.len != b.ekm.len || memcmp(a.ekm.bytes, b.ekm.bytes, a.ekm.len) != 0
        || memcmp(a.auth, b.auth, sizeof a.auth) != 0)
        abort();
}

static void leave(const char *in, size_t len)
{
    struct sts_smqtt_leave a, b;
    size_t n;

    if (sts_smqtt_leave_decode(&a, in, len, NULL) != 0) return;
    (void)sts_smqtt_leave_verify(&a, client_key);
    if (sts_smqtt_leave_encode(&a, json, sizeof json, &n) != 0 || sts_smqtt_leave_decode(&b, json, n, NULL) != 0)
        abort();
    if (!same_id(&a.member, &b.member) || !same_id(&a.group, &b.group) || a.seq != b.seq
        || memcmp(a.auth, b.auth, sizeof a.auth) != 0)
        abort();
}

static void material(const char *in, size_t len)
{
    struct sts_smqtt_node a[STS_SMQTT_COVER_MAX], b[STS_SMQTT_COVER_MAX];
    uint8_t ka[STS_SMQTT_KEY_LEN], kb[STS_SMQTT_KEY_LEN];
    static char text[STS_SMQTT_MATERIAL_MAX];
    size_t na, nb, n;

    if (sts_smqtt_material_parse(in, len, ka, a, &na, NULL) != 0) return;
    if (na == 0) {
        sts_smqtt_material_key(text, ka);
        n = strlen(text);
    } else if (sts_smqtt_material_slotted(text, sizeof text, &n, ka, a, na) != 0) {
        abort();
    }
    if (n != len || sts_smqtt_material_parse(text, n, kb, b, &nb, NULL) != 0 || nb != na
        || memcmp(ka, kb, sizeof ka) != 0)
        abort();
    for (size_t i = 0; i < na; i++)
        if (a[i].depth != b[i].depth || a[i].pos != b[i].pos || memcmp(a[i].key, b[i].key, sizeof a[i].key) != 0)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;

    request(in, size);
    response(in, size);
    leave(in, size);
    material(in, size);
    return 0;
}
