/* Sealed one-way readings for scripts (docs/API.md, "Sealed readings"):
 * sts.sealer and sts.send_sealed on a sensor, sts.listen_sealed on its
 * gateway, over the pure frame functions of src/proto/sealed.h.
 *
 * A sender never uses a counter twice, across sleeps, restarts and crashes:
 * its state file holds a bound from which on no counter was handed out, and
 * the sealer moves the bound a block of counters forward on disk before it
 * uses any counter of the block. A gateway keeps one replay window per
 * sender's static key, and writes the windows to its state file before the
 * readings they accepted reach the script, so a restart never lets a
 * delivered reading in again.
 *
 * A sealer is a userdata holding its keys (wiped on close); a listener one
 * with a user value table holding its client and handler. Both state files
 * are encoded and checked by src/proto/sealed_state.h (a magic, a version,
 * a body and a SHA-256 checksum); a file it refuses is left as it is. */
#include "lua/session.h"
#include "crypto/keyfile.h"
#include "crypto/x25519.h"
#include "mqtt/client.h"
#include "mqtt/topic.h"
#include "proto/replay.h"
#include "proto/sealed.h"
#include "proto/sealed_state.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/log.h"

#include <errno.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEALER_MT "sts.sealer"
#define SEALED_LISTENER_MT "sts.sealed_listener"

#define COUNTER_BLOCK 16 /* counters reserved per write of a sealer's state */
#define DEFAULT_MAX_SENDERS 100000
#define MAX_SENDERS_LIMIT 10000000

/* --- state files ---------------------------------------------------------------- */

static int missing(const char *path)
{
    return access(path, F_OK) != 0 && errno == ENOENT;
}

/* Reads a state file of at most max bytes into *buf; "no such state file"
 * for a missing one. */
static int read_state(const char *path, size_t max, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
    if (missing(path)) {
        snprintf(err, errlen, "%s: no such state file; create = true makes a new one", path);
        return STS_ERR_IO;
    }
    return sts_read_file(path, max, buf, len, err, errlen);
}

static int refused(const char *path, const char *why, int rc, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s (refused, left as it is)", path, why);
    return rc;
}

/* --- options both sides share ------------------------------------------------------ */

static enum sts_sealed_pattern parse_pattern(lua_State *L, const char *name)
{
    if (strcmp(name, "K") == 0) return STS_SEALED_K;
    if (strcmp(name, "X") == 0) return STS_SEALED_X;
    if (strcmp(name, "N") == 0) return STS_SEALED_N;
    return luaL_error(L, "option 'pattern' must be \"K\", \"X\" or \"N\", got \"%s\"", name);
}

static const char *pattern_name(uint8_t pattern)
{
    return pattern == STS_SEALED_K ? "K" : pattern == STS_SEALED_X ? "X" : "N";
}

static int opt_qos(lua_State *L, int idx)
{
    lua_Integer qos = stsl_opt_integer(L, idx, "qos", 1);
    if (qos < 0 || qos > 2) luaL_error(L, "option 'qos' must be 0, 1 or 2");
    return (int)qos;
}

/* --- the sealer ---------------------------------------------------------------------- */

struct lsealer {
    uint8_t priv[STS_X25519_LEN], pub[STS_X25519_LEN], peer[STS_X25519_LEN];
    enum sts_sealed_pattern pattern;
    enum sts_suite suite;
    char *state;   /* its state file; NULL once closed */
    uint64_t next;  /* the next counter to use */
    uint64_t bound; /* the state file's: no counter from here on was handed out */
    uint64_t last;  /* the last counter used, if `used` */
    int used;
};

static void sealer_wipe(struct lsealer *s)
{
    free(s->state);
    mbedtls_platform_zeroize(s, sizeof *s);
}

static struct lsealer *check_sealer(lua_State *L, int idx)
{
    struct lsealer *s = luaL_checkudata(L, idx, SEALER_MT);
    if (!s->state) luaL_error(L, "attempt to use a closed sealer");
    return s;
}

static int read_bound(const char *path, uint64_t *bound, char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len;
    const char *why;
    int rc = read_state(path, STS_SEALER_STATE_LEN, &buf, &len, err, errlen);
    /* longer than any sealer state: sts_sealer_state_decode says the same */
    if (rc == STS_ERR_TOO_BIG) return refused(path, "not a sealer state file", rc, err, errlen);
    if (rc != 0) return rc;
    rc = sts_sealer_state_decode(buf, len, bound, &why);
    if (rc != 0) refused(path, why, rc, err, errlen);
    free(buf);
    return rc;
}

static int write_bound(const char *path, uint64_t bound, char *err, size_t errlen)
{
    uint8_t buf[STS_SEALER_STATE_LEN];
    if (sts_sealer_state_encode(bound, buf) != 0) {
        snprintf(err, errlen, "%s: the checksum could not be computed", path);
        return STS_ERR_CRYPTO;
    }
    return sts_write_atomic(path, buf, sizeof buf, 0600, err, errlen);
}

/* Moves the bound on disk a block past the counters handed out, before any
 * of the block is used. The file is read again first: another sealer on it
 * may have gone ahead since. */
static int reserve_block(struct lsealer *s, char *err, size_t errlen)
{
    uint64_t on_disk;
    int rc = read_bound(s->state, &on_disk, err, errlen);
    if (rc != 0) return rc;
    uint64_t from = on_disk > s->next ? on_disk : s->next;
    if (from > UINT64_MAX - COUNTER_BLOCK) {
        snprintf(err, errlen, "%s: the counter is used up", s->state);
        return STS_ERR_STATE;
    }
    if ((rc = write_bound(s->state, from + COUNTER_BLOCK, err, errlen)) != 0) return rc;
    s->next = from;
    s->bound = from + COUNTER_BLOCK;
    return 0;
}

/* A new state file: counters start at the time in ms << 16, above any a
 * sender on an earlier file used unless it sealed 65536 readings a ms. */
static int create_state(struct lsealer *s, char *err, size_t errlen)
{
    double ms = sts_wall_now() * 1000;
    if (!(ms > 0 && ms < 0x1p47)) {
        snprintf(err, errlen, "%s: the clock is unusable for a first counter", s->state);
        return STS_ERR_STATE;
    }
    s->next = (uint64_t)ms << 16;
    s->bound = s->next + COUNTER_BLOCK;
    return write_bound(s->state, s->bound, err, errlen);
}

static const char *const sealer_options[] = { "identity", "peer", "pattern", "suite", "state", "create", NULL };
static const char *const send_options[] = { "identity", "peer", "pattern", "suite", "state", "create", "qos", NULL };

static int load_sealer_keys(lua_State *L, int idx, struct lsealer *s)
{
    lua_getfield(L, idx, "identity");
    if (s->pattern == STS_SEALED_N && !lua_isnil(L, -1))
        luaL_error(L, "pattern N is anonymous: it takes no 'identity'");
    if (s->pattern != STS_SEALED_N) {
        if (lua_isnil(L, -1)) luaL_error(L, "option 'identity' (the sender's private key) is required, unless pattern = \"N\"");
        if (!stsl_check_key(L, -1, s->priv, STS_KEY_PRIVATE, "identity")) return 0;
        if (sts_x25519_public(s->pub, s->priv) != 0) return luaL_error(L, "identity: unusable key");
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "peer");
    if (lua_isnil(L, -1)) luaL_error(L, "option 'peer' (the gateway's public key) is required");
    if (!stsl_check_key(L, -1, s->peer, STS_KEY_PUBLIC, "peer")) return 0;
    lua_pop(L, 1);
    return 1;
}

/* Pushes a sealer made from the options at idx (checked by the caller).
 * Returns it, or NULL with an error message pushed. */
static struct lsealer *new_sealer(lua_State *L, int idx)
{
    char err[512];
    const char *pattern = stsl_opt_string(L, idx, "pattern", "K");
    const char *suite = stsl_opt_string(L, idx, "suite", "25519_ChaChaPoly_SHA256");
    const char *state = stsl_opt_string(L, idx, "state", NULL);
    int create = stsl_opt_boolean(L, idx, "create", 0);
    if (!state || !*state) luaL_error(L, "option 'state' (the file of the sender's counter) is required");

    struct lsealer *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    luaL_setmetatable(L, SEALER_MT);
    s->pattern = parse_pattern(L, pattern);
    s->suite = stsl_parse_suite(L, suite);
    if (!(s->state = strdup(state))) luaL_error(L, "out of memory");
    if (!load_sealer_keys(L, idx, s)) return NULL;
    int rc;
    if (create && missing(state)) rc = create_state(s, err, sizeof err);
    else if ((rc = read_bound(state, &s->bound, err, sizeof err)) == 0) s->next = s->bound;
    if (rc == 0) return s;
    lua_pushstring(L, err);
    return NULL;
}

/* Pushes the frame of one reading, or nil and a message; returns how many. */
static int seal_reading(lua_State *L, struct lsealer *s, const char *pt, size_t ptlen, const char *topic)
{
    char err[512];
    size_t outlen;
    if (ptlen > STS_SEALED_PAYLOAD_MAX) return stsl_fail(L, "seal: a reading holds at most %d bytes", STS_SEALED_PAYLOAD_MAX);
    if (s->next == s->bound && reserve_block(s, err, sizeof err) != 0) return stsl_fail(L, "seal: %s", err);
    size_t cap = ptlen + sts_sealed_overhead(s->pattern);
    luaL_Buffer b;
    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, cap);
    uint64_t counter = s->next++; /* spent whatever happens: never used twice */
    int rc = sts_sealed_seal(s->pattern, s->suite, s->pattern == STS_SEALED_N ? NULL : s->priv,
                             s->pattern == STS_SEALED_N ? NULL : s->pub, s->peer, counter, topic,
                             (const uint8_t *)pt, ptlen, out, cap, &outlen);
    if (rc != 0) return stsl_fail(L, "seal: %s", sts_strerror(rc));
    luaL_pushresultsize(&b, outlen);
    s->last = counter;
    s->used = 1;
    return 1;
}

static const char *check_topic(lua_State *L, int idx)
{
    const char *topic = luaL_checkstring(L, idx);
    if (!*topic || sts_topic_has_wildcard(topic)) luaL_argerror(L, idx, "a topic to publish on (no wildcards)");
    return topic;
}

/* sts.sealer(opts) -> sealer | nil, message */
static int l_sealer(lua_State *L)
{
    stsl_check_options(L, 1, "sts.sealer", sealer_options);
    lua_settop(L, 1);
    if (!new_sealer(L, 1)) return stsl_fail(L, "%s", lua_tostring(L, -1));
    return 1;
}

/* sealer:seal(plaintext, topic) -> frame | nil, message */
static int sealer_seal(lua_State *L)
{
    struct lsealer *s = check_sealer(L, 1);
    size_t len;
    const char *pt = luaL_checklstring(L, 2, &len);
    const char *topic = check_topic(L, 3);
    return seal_reading(L, s, pt, len, topic);
}

/* sealer:close(), also __close and __gc: wipes the keys; twice is harmless. */
static int sealer_close(lua_State *L)
{
    sealer_wipe(luaL_checkudata(L, 1, SEALER_MT));
    return 0;
}

/* Properties, after the methods: sealer.counter (the last used, or nil). */
static int sealer_property(lua_State *L)
{
    const struct lsealer *s = luaL_checkudata(L, 1, SEALER_MT);
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "counter") == 0 && s->used) return lua_pushinteger(L, (lua_Integer)s->last), 1;
    return 0;
}

/* sts.send_sealed(client, topic, plaintext, opts) -> true | nil, message */
static int l_send_sealed(lua_State *L)
{
    size_t len;
    struct lclient *client = stsl_check_client(L, 1);
    const char *topic = check_topic(L, 2);
    const char *pt = luaL_checklstring(L, 3, &len);
    stsl_check_options(L, 4, "sts.send_sealed", send_options);
    int qos = opt_qos(L, 4);
    lua_settop(L, 4);
    if (!stsl_client_mqtt(client)) return stsl_fail(L, "send_sealed: the client is closed");
    struct lsealer *s = new_sealer(L, 4); /* 5 */
    if (!s) return stsl_fail(L, "%s", lua_tostring(L, -1));
    int n = seal_reading(L, s, pt, len, topic); /* 6 */
    sealer_wipe(s);
    if (n != 1) return n;
    size_t flen;
    const char *frame = lua_tolstring(L, 6, &flen);
    int rc = sts_mqtt_publish(stsl_client_mqtt(client), topic, frame, flen, qos, 0, NULL);
    if (rc != MOSQ_ERR_SUCCESS) return stsl_fail(L, "send_sealed: publish: %s", mosquitto_strerror(rc));
    lua_pushboolean(L, 1);
    return 1;
}

static int sealer_tostring(lua_State *L)
{
    const struct lsealer *s = luaL_checkudata(L, 1, SEALER_MT);
    if (s->state) lua_pushfstring(L, "sts.sealer (%s, %s)", pattern_name(s->pattern), s->state);
    else lua_pushliteral(L, "sts.sealer (closed)");
    return 1;
}

/* --- the listener's trust list: keys by key id, with their names -------------------- */

#define NO_SENDER UINT32_MAX

struct trusted {
    uint8_t id[STS_SEALED_KEY_ID_LEN];
    uint8_t pub[STS_X25519_LEN];
    size_t name, name_len; /* in the names buffer; name_len 0: unnamed */
    unsigned line;
    uint32_t sender;       /* its replay window, NO_SENDER until it has one */
};

struct trust_index {
    struct trusted *keys;
    size_t n, cap;
    char *names;
    size_t names_len, names_cap;
    int rc; /* why add refused a key */
};

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need) n *= 2;
    void *bigger = realloc(*p, n * size);
    if (!bigger) return STS_ERR_NOMEM;
    *p = bigger;
    *cap = n;
    return 0;
}

static int index_add(void *ctx, const uint8_t key[32], const char *name, size_t namelen)
{
    struct trust_index *t = ctx;
    if (t->n == STS_TRUST_MAX_KEYS) return t->rc = STS_ERR_TOO_BIG;
    if (grow((void **)&t->keys, &t->cap, t->n + 1, sizeof *t->keys) != 0 ||
        grow((void **)&t->names, &t->names_cap, t->names_len + namelen, 1) != 0)
        return t->rc = STS_ERR_NOMEM;
    struct trusted *k = &t->keys[t->n];
    memcpy(k->pub, key, STS_X25519_LEN);
    if (sts_sealed_key_id(key, k->id) != 0) return t->rc = STS_ERR_CRYPTO;
    if (namelen) memcpy(t->names + t->names_len, name, namelen);
    k->name = t->names_len;
    k->name_len = namelen;
    t->names_len += namelen;
    k->line = (unsigned)++t->n; /* the order of the file, for ties */
    k->sender = NO_SENDER;
    return 0;
}

static int by_id(const void *a, const void *b)
{
    const struct trusted *x = a, *y = b;
    int c = memcmp(x->id, y->id, sizeof x->id);
    if (c == 0) c = memcmp(x->pub, y->pub, sizeof x->pub);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Sorts the keys by key id and drops repeats of one key (its first line's
 * name stays): one key, one replay window. */
static void index_sort(struct trust_index *t, const char *path)
{
    size_t kept = 0;
    if (t->n) qsort(t->keys, t->n, sizeof *t->keys, by_id);
    for (size_t i = 0; i < t->n; i++) {
        if (kept && memcmp(t->keys[kept - 1].pub, t->keys[i].pub, STS_X25519_LEN) == 0) {
            sts_warn("trust: %s: the key of entry %u repeats entry %u; the first is kept", path, t->keys[i].line,
                     t->keys[kept - 1].line);
            continue;
        }
        t->keys[kept++] = t->keys[i];
    }
    t->n = kept;
}

static int index_load(struct trust_index *t, const char *path, char *err, size_t errlen)
{
    char *text;
    size_t len;
    unsigned line = 0;
    int rc = sts_trust_read(path, &text, &len, err, errlen);
    if (rc != 0) return rc;
    rc = sts_trust_parse_named(text, len, index_add, t, &line);
    free(text);
    if (rc == 0) {
        index_sort(t, path);
        return 0;
    }
    if (t->rc == STS_ERR_TOO_BIG) snprintf(err, errlen, "%s:%u: more than %d keys", path, line, STS_TRUST_MAX_KEYS);
    else if (t->rc) snprintf(err, errlen, "%s:%u: %s", path, line, sts_strerror(t->rc));
    else snprintf(err, errlen, "%s:%u: not a public key (64 hex digits, then an optional comment)", path, line);
    return t->rc ? t->rc : rc;
}

static void index_free(struct trust_index *t)
{
    free(t->keys);
    free(t->names);
    memset(t, 0, sizeof *t);
}

/* The first key with this key id (keys of one id follow it), or NULL. */
static struct trusted *index_first(const struct trust_index *t, const uint8_t id[STS_SEALED_KEY_ID_LEN])
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(t->keys[mid].id, id, STS_SEALED_KEY_ID_LEN) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < t->n && memcmp(t->keys[lo].id, id, STS_SEALED_KEY_ID_LEN) == 0 ? &t->keys[lo] : NULL;
}

static int same_id(const struct trust_index *t, const struct trusted *k, const uint8_t id[STS_SEALED_KEY_ID_LEN])
{
    return k < t->keys + t->n && memcmp(k->id, id, STS_SEALED_KEY_ID_LEN) == 0;
}

/* The entry of a static public key, or NULL if it is not trusted. */
static struct trusted *index_find(const struct trust_index *t, const uint8_t pub[STS_X25519_LEN])
{
    uint8_t id[STS_SEALED_KEY_ID_LEN];
    if (sts_sealed_key_id(pub, id) != 0) return NULL;
    for (struct trusted *k = index_first(t, id); k && same_id(t, k, id); k++)
        if (mbedtls_ct_memcmp(k->pub, pub, STS_X25519_LEN) == 0) return k;
    return NULL;
}

/* --- the listener --------------------------------------------------------------------- */

/* Rejections: the frame module's reasons, and the listener's own. */
enum { REJECT_UNBOUND = STS_REASON_COUNT, REJECT_ANONYMOUS, REJECT_SENDERS, REJECT_COUNT };

static const char *rejection_name(int r)
{
    static const char *const own[] = { "unbound", "anonymous", "max_senders" };
    return r < STS_REASON_COUNT ? sts_reason_name((enum sts_reason)r) : own[r - STS_REASON_COUNT];
}

/* An accepted reading, waiting for the state to be written. */
struct reading {
    struct reading *next;
    const struct trusted *sender; /* NULL for N */
    uint64_t counter;
    uint8_t pattern;
    char *topic;                  /* after the data */
    size_t len;
    uint8_t data[];
};

struct lsealed_listener {
    struct lclient *client;
    struct sts_mqtt_sub *sub;
    char *filter, *state; /* state NULL: no replay state file */
    uint8_t priv[STS_X25519_LEN], pub[STS_X25519_LEN];
    struct trust_index trust;
    struct sts_sealed_sender *senders;
    size_t nsenders, senders_cap, max_senders;
    struct reading *batch, **batch_end;
    struct sts_timer flush;       /* writes the state, then delivers the batch */
    int bind, anonymous, qos, dirty, closing;
    uint64_t received, rejected[REJECT_COUNT], rejected_total, state_failures;
    struct stsl_anchor anchor;
};

static struct lsealed_listener *check_listener(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, SEALED_LISTENER_MT);
}

static void free_reading(struct reading *r)
{
    mbedtls_platform_zeroize(r->data, r->len);
    free(r);
}

static void free_batch(struct lsealed_listener *li)
{
    for (struct reading *r = li->batch, *next; r; r = next) {
        next = r->next;
        free_reading(r);
    }
    li->batch = NULL;
    li->batch_end = &li->batch;
}

static void reject(struct lsealed_listener *li, int r, const char *topic)
{
    li->rejected[r]++;
    /* A flood of bad frames must not flood the log: 1st, 2nd, 4th, 8th... */
    uint64_t n = ++li->rejected_total;
    if ((n & (n - 1)) == 0)
        sts_warn("sealed listener %s: rejected a frame on %s: %s (%llu rejected so far)", li->filter, topic,
                 rejection_name(r), (unsigned long long)n);
}

/* --- the replay state file --- */

static int save_state(const struct lsealed_listener *li, char *err, size_t errlen)
{
    size_t len = sts_replay_state_len(li->nsenders);
    uint8_t *buf = malloc(len);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", li->state);
        return STS_ERR_NOMEM;
    }
    int rc = sts_replay_state_encode(li->senders, li->nsenders, buf, len);
    if (rc != 0) snprintf(err, errlen, "%s: the checksum could not be computed", li->state);
    else rc = sts_write_atomic(li->state, buf, len, 0600, err, errlen);
    free(buf);
    return rc;
}

/* Writes the windows if they changed: before the readings they accepted are
 * delivered. A failure is logged and counted; the next batch tries again. */
static void flush_state(struct lsealed_listener *li)
{
    char err[512];
    if (!li->dirty || !li->state) return;
    if (save_state(li, err, sizeof err) == 0) {
        li->dirty = 0;
        return;
    }
    li->state_failures++;
    sts_error("sealed listener %s: the replay state was not saved, readings are delivered anyway: %s", li->filter, err);
}

/* A new window for a sender's key; NO_SENDER when max_senders are there. */
static uint32_t add_sender(struct lsealed_listener *li, const uint8_t pub[STS_X25519_LEN])
{
    if (li->nsenders >= li->max_senders ||
        grow((void **)&li->senders, &li->senders_cap, li->nsenders + 1, sizeof *li->senders) != 0)
        return NO_SENDER;
    struct sts_sealed_sender *s = &li->senders[li->nsenders];
    memcpy(s->pub, pub, STS_X25519_LEN);
    sts_replay_reset(&s->window);
    return (uint32_t)li->nsenders++;
}

/* Restores the windows, each to its trusted key. Those of keys no longer
 * trusted are kept too: the key may come back. */
static int load_state(struct lsealed_listener *li, char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len;
    const char *why;
    int rc = read_state(li->state, sts_replay_state_len(li->max_senders), &buf, &len, err, errlen);
    if (rc == STS_ERR_TOO_BIG)
        snprintf(err, errlen, "%s: too large for a replay state file of at most max_senders = %zu senders", li->state,
                 li->max_senders);
    if (rc != 0) return rc;
    rc = sts_replay_state_decode(buf, len, li->max_senders, &li->senders, &li->nsenders, &why);
    free(buf);
    if (rc != 0) return refused(li->state, why, rc, err, errlen);
    li->senders_cap = li->nsenders;
    for (size_t i = 0; i < li->nsenders; i++) {
        struct trusted *k = index_find(&li->trust, li->senders[i].pub);
        if (k) k->sender = (uint32_t)i; /* one window a key: the decoder refuses a key twice */
    }
    return 0;
}

/* --- frames --- */

/* The topic's level at the filter's first + is the sender's name. */
static int bound_to(const struct lsealed_listener *li, const struct trusted *k, const char *topic)
{
    size_t n = 0;
    if (!k || !k->name_len) return 0;
    const char *level = sts_topic_plus_level(li->filter, topic, &n);
    return level && n == k->name_len && memcmp(level, li->trust.names + k->name, n) == 0;
}

static const struct sts_replay *window_of(const struct lsealed_listener *li, const struct trusted *k)
{
    return k->sender == NO_SENDER ? NULL : &li->senders[k->sender].window;
}

/* K: the key id names the sender's key (keys sharing one id are each
 * tried); a replayed counter is refused before any decryption. */
static int open_k(struct lsealed_listener *li, const struct sts_sealed_header *h, const struct sts_mqtt_message *msg,
                  struct reading *r, struct trusted **who)
{
    int why = STS_REASON_UNTRUSTED;
    for (struct trusted *k = index_first(&li->trust, h->key_id); k && same_id(&li->trust, k, h->key_id); k++) {
        const struct sts_replay *w = window_of(li, k);
        if (w && sts_replay_check(w, h->counter) != 0) {
            why = STS_REASON_REPLAY;
            continue;
        }
        why = sts_sealed_open(li->priv, li->pub, h, msg->payload, msg->len, k->pub, msg->topic, r->data, &r->len, NULL);
        if (why == STS_REASON_NONE) {
            *who = k;
            return why;
        }
    }
    return why;
}

/* X: the sender's key comes out of the frame, then must be trusted. */
static int open_x(struct lsealed_listener *li, const struct sts_sealed_header *h, const struct sts_mqtt_message *msg,
                  struct reading *r, struct trusted **who)
{
    uint8_t pub[STS_X25519_LEN];
    int why = sts_sealed_open(li->priv, li->pub, h, msg->payload, msg->len, NULL, msg->topic, r->data, &r->len, pub);
    if (why != STS_REASON_NONE) return why;
    if (!(*who = index_find(&li->trust, pub))) return STS_REASON_UNTRUSTED;
    const struct sts_replay *w = window_of(li, *who);
    return w && sts_replay_check(w, h->counter) != 0 ? STS_REASON_REPLAY : STS_REASON_NONE;
}

static int open_frame(struct lsealed_listener *li, const struct sts_sealed_header *h,
                      const struct sts_mqtt_message *msg, struct reading *r, struct trusted **who)
{
    *who = NULL;
    switch (h->pattern) {
    case STS_SEALED_K: return open_k(li, h, msg, r, who);
    case STS_SEALED_X: return open_x(li, h, msg, r, who);
    default: /* N, accepted by accept_frame only when anonymous */
        return sts_sealed_open(li->priv, li->pub, h, msg->payload, msg->len, NULL, msg->topic, r->data, &r->len, NULL);
    }
}

/* Records the counter in the sender's window (its first reading gets it one). */
static int mark(struct lsealed_listener *li, struct trusted *k, uint64_t counter)
{
    if (!k) return STS_REASON_NONE; /* N: nothing to mark */
    if (k->sender == NO_SENDER && (k->sender = add_sender(li, k->pub)) == NO_SENDER) {
        sts_warn("sealed listener %s: %zu senders already (max_senders): a new sender is refused", li->filter,
                 li->nsenders);
        return REJECT_SENDERS;
    }
    if (sts_replay_mark(&li->senders[k->sender].window, counter) != 0) return STS_REASON_REPLAY;
    li->dirty = 1;
    return STS_REASON_NONE;
}

static struct reading *new_reading(const struct sts_mqtt_message *msg)
{
    size_t topic_len = strlen(msg->topic);
    struct reading *r = malloc(sizeof *r + msg->len + topic_len + 1);
    if (!r) return NULL;
    memset(r, 0, sizeof *r);
    r->topic = (char *)r->data + msg->len;
    memcpy(r->topic, msg->topic, topic_len + 1);
    return r;
}

/* Checks, opens and marks a frame, queueing its reading; the reason it was
 * refused otherwise. */
static int accept_frame(struct lsealed_listener *li, const struct sts_mqtt_message *msg)
{
    struct sts_sealed_header h;
    struct trusted *who;
    int why = sts_sealed_parse(msg->payload, msg->len, &h);
    if (why != STS_REASON_NONE) return why;
    if (h.pattern == STS_SEALED_N && !li->anonymous) return REJECT_ANONYMOUS;
    struct reading *r = new_reading(msg);
    if (!r) return STS_REASON_INTERNAL;
    why = open_frame(li, &h, msg, r, &who);
    if (why == STS_REASON_NONE && li->bind && !bound_to(li, who, msg->topic)) why = REJECT_UNBOUND;
    if (why == STS_REASON_NONE) why = mark(li, who, h.counter);
    if (why != STS_REASON_NONE) {
        free_reading(r);
        return why;
    }
    r->sender = who;
    r->counter = h.counter;
    r->pattern = h.pattern;
    *li->batch_end = r;
    li->batch_end = &r->next;
    li->received++;
    if (!sts_timer_active(&li->flush)) sts_timer_start(sts_loop_default(), &li->flush, 0, 0);
    return STS_REASON_NONE;
}

static void on_frame(void *ud, const struct sts_mqtt_message *msg)
{
    struct lsealed_listener *li = ud;
    if (li->closing) return;
    int why = accept_frame(li, msg);
    if (why != STS_REASON_NONE) reject(li, why, msg->topic);
}

/* --- delivery --- */

static void push_info(lua_State *L, const struct lsealed_listener *li, const struct reading *r)
{
    char fp[STS_FINGERPRINT_LEN + 1];
    lua_createtable(L, 0, 5);
    if (r->sender && r->sender->name_len) {
        lua_pushlstring(L, li->trust.names + r->sender->name, r->sender->name_len);
        lua_setfield(L, -2, "sender");
    }
    if (r->sender && sts_key_fingerprint(fp, r->sender->pub) == 0) {
        lua_pushstring(L, fp);
        lua_setfield(L, -2, "fingerprint");
    }
    lua_pushinteger(L, (lua_Integer)r->counter);
    lua_setfield(L, -2, "counter");
    lua_pushstring(L, r->topic);
    lua_setfield(L, -2, "topic");
    lua_pushstring(L, pattern_name(r->pattern));
    lua_setfield(L, -2, "pattern");
}

/* Timer: the state goes to disk once for the batch, then the batch goes to
 * the handler (while the listener stays open: a handler may close it). */
static void on_flush(struct sts_timer *t, void *ud)
{
    struct lsealed_listener *li = ud;
    lua_State *L = stsl_main();
    (void)t;
    flush_state(li);
    struct reading *batch = li->batch;
    li->batch = NULL;
    li->batch_end = &li->batch;
    int listener = lua_gettop(L) + 1;
    int open = stsl_anchor_push(L, &li->anchor);
    for (struct reading *r = batch, *next; r; r = next) {
        next = r->next;
        if (open && !li->closing && stsl_get_uv(L, listener, "handler") == LUA_TFUNCTION) {
            lua_pushlstring(L, (const char *)r->data, r->len);
            push_info(L, li, r);
            stsl_pcall(L, 2, 0, "sealed reading handler");
        }
        lua_settop(L, listener);
        free_reading(r);
    }
    lua_settop(L, listener - 1);
}

/* --- the listener object --- */

static int listener_close(lua_State *L)
{
    struct lsealed_listener *li = check_listener(L, 1);
    if (li->closing || li->anchor.ref == LUA_NOREF) return 0;
    li->closing = 1;
    stsl_get_uv(L, 1, "client");
    stsl_client_on_close(L, lua_gettop(L), 1, NULL);
    lua_pop(L, 1);
    struct sts_mqtt *m = stsl_client_mqtt(li->client);
    if (m && li->sub) sts_mqtt_unsubscribe(m, li->sub);
    li->sub = NULL;
    sts_timer_stop(sts_loop_default(), &li->flush);
    /* Readings accepted in this turn stay accepted: their counters are saved,
     * though they are not delivered any more. */
    flush_state(li);
    if (li->batch) sts_warn("sealed listener %s: closed with readings accepted but not delivered", li->filter);
    free_batch(li);
    mbedtls_platform_zeroize(li->priv, sizeof li->priv);
    stsl_anchor_release(&li->anchor);
    return 0;
}

static int listener_client_closed(lua_State *L)
{
    return listener_close(L);
}

static int listener_gc(lua_State *L)
{
    struct lsealed_listener *li = check_listener(L, 1);
    sts_timer_stop(sts_loop_default(), &li->flush);
    free_batch(li);
    index_free(&li->trust);
    free(li->senders);
    free(li->filter);
    free(li->state);
    li->senders = NULL;
    li->filter = li->state = NULL;
    mbedtls_platform_zeroize(li->priv, sizeof li->priv);
    return 0;
}

/* listener:stats() -> { received, rejected = { [reason] = n }, rejected_total, senders, state_failures } */
static int listener_stats(lua_State *L)
{
    const struct lsealed_listener *li = check_listener(L, 1);
    lua_createtable(L, 0, 5);
    stsl_set_count(L, "received", li->received);
    lua_newtable(L);
    for (int r = 1; r < REJECT_COUNT; r++)
        if (li->rejected[r]) stsl_set_count(L, rejection_name(r), li->rejected[r]);
    lua_setfield(L, -2, "rejected");
    stsl_set_count(L, "rejected_total", li->rejected_total);
    stsl_set_count(L, "senders", li->nsenders);
    stsl_set_count(L, "state_failures", li->state_failures);
    return 1;
}

static void read_listener_options(lua_State *L, struct lsealed_listener *li, const char **trust, int *create)
{
    const char *sub = stsl_opt_string(L, 2, "sub", NULL);
    const char *bind = stsl_opt_string(L, 2, "bind", NULL);
    lua_Integer max_senders = stsl_opt_integer(L, 2, "max_senders", DEFAULT_MAX_SENDERS);
    *trust = stsl_opt_string(L, 2, "trust", NULL);
    const char *state = stsl_opt_string(L, 2, "state", NULL);
    *create = stsl_opt_boolean(L, 2, "create", 0);
    li->anonymous = stsl_opt_boolean(L, 2, "anonymous", 0);
    li->qos = opt_qos(L, 2);
    if (!sub || !*sub) luaL_error(L, "option 'sub' (a topic filter) is required");
    if (max_senders < 1 || max_senders > MAX_SENDERS_LIMIT) luaL_error(L, "option 'max_senders' must be from 1 to %d", MAX_SENDERS_LIMIT);
    if (!*trust && !li->anonymous) luaL_error(L, "option 'trust' (a trust file) is required, unless anonymous = true");
    if (state && !*state) luaL_error(L, "option 'state' must name a file");
    if (bind && strcmp(bind, "name") != 0) luaL_error(L, "option 'bind' must be \"name\", got \"%s\"", bind);
    if (bind && (!*trust || sts_topic_count_plus(sub) == 0))
        luaL_error(L, "bind = \"name\" needs a 'trust' file of named keys and a 'sub' filter with a + level");
    if (lua_getfield(L, 2, "identity") == LUA_TNIL) luaL_error(L, "option 'identity' (the gateway's private key) is required");
    lua_pop(L, 1);
    li->bind = bind != NULL;
    li->max_senders = (size_t)max_senders;
    if (!(li->filter = strdup(sub)) || (state && !(li->state = strdup(state)))) luaL_error(L, "out of memory");
}

/* Identity, trust list and replay state: expected failures, message pushed. */
static int load_listener(lua_State *L, struct lsealed_listener *li, const char *trust, int create)
{
    char err[512];
    lua_getfield(L, 2, "identity");
    if (!stsl_check_key(L, -1, li->priv, STS_KEY_PRIVATE, "identity")) return 0;
    lua_pop(L, 1);
    if (sts_x25519_public(li->pub, li->priv) != 0) return luaL_error(L, "identity: unusable key");
    int rc = trust ? index_load(&li->trust, trust, err, sizeof err) : 0;
    if (rc != 0) return lua_pushfstring(L, "trust: %s", err), 0;
    if (!li->state) return 1;
    if (create && missing(li->state)) {
        rc = save_state(li, err, sizeof err);
        if (rc == 0) sts_info("sealed listener %s: a new replay state file %s", li->filter, li->state);
    } else {
        rc = load_state(li, err, sizeof err);
    }
    if (rc != 0) return lua_pushstring(L, err), 0;
    return 1;
}

/* sts.listen_sealed(client, opts, handler) -> listener | nil, message */
static int l_listen_sealed(lua_State *L)
{
    static const char *const known[] = {
        "sub", "identity", "trust", "bind", "state", "create", "anonymous", "qos", "max_senders", NULL,
    };
    const char *trust;
    int create, rc;
    struct lclient *client = stsl_check_client(L, 1);
    stsl_check_options(L, 2, "sts.listen_sealed", known);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    if (!stsl_client_mqtt(client)) return stsl_fail(L, "listen_sealed: the client is closed");

    struct lsealed_listener *li = lua_newuserdatauv(L, sizeof *li, 1); /* 4 */
    memset(li, 0, sizeof *li);
    stsl_anchor_init(&li->anchor);
    sts_timer_init(&li->flush, on_flush, li);
    li->client = client;
    li->batch_end = &li->batch;
    luaL_setmetatable(L, SEALED_LISTENER_MT);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "client");
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "handler");
    lua_setiuservalue(L, 4, 1);
    read_listener_options(L, li, &trust, &create);
    if (!load_listener(L, li, trust, create)) return stsl_fail(L, "%s", lua_tostring(L, -1));
    if (!li->state)
        sts_warn("sealed listener %s: no 'state' file: after a restart, readings delivered before can be replayed", li->filter);
    if (li->anonymous)
        sts_warn("sealed listener %s: anonymous = true: pattern N readings are accepted from anyone, with no "
                 "replay protection (an N sender has no key to keep a window for)", li->filter);
    li->sub = sts_mqtt_subscribe(stsl_client_mqtt(client), li->filter, li->qos, on_frame, li, &rc);
    if (!li->sub) return stsl_fail(L, "listen_sealed: subscribe: %s", mosquitto_strerror(rc));
    stsl_anchor_set(L, 4, &li->anchor);
    stsl_client_on_close(L, 1, 4, listener_client_closed);
    lua_settop(L, 4);
    return 1;
}

static int listener_tostring(lua_State *L)
{
    const struct lsealed_listener *li = check_listener(L, 1);
    lua_pushfstring(L, "sts.sealed_listener (%s)", li->filter ? li->filter : "?");
    return 1;
}

void stsl_open_sealed(lua_State *L)
{
    static const luaL_Reg sealer_meta[] = {
        { "__index", sealer_property }, { "__gc", sealer_close }, { "__close", sealer_close },
        { "__tostring", sealer_tostring }, { NULL, NULL },
    };
    static const luaL_Reg sealer_methods[] = { { "seal", sealer_seal }, { "close", sealer_close }, { NULL, NULL } };
    static const luaL_Reg listener_meta[] = {
        { "__gc", listener_gc }, { "__close", listener_close }, { "__tostring", listener_tostring }, { NULL, NULL },
    };
    static const luaL_Reg listener_methods[] = { { "stats", listener_stats }, { "close", listener_close }, { NULL, NULL } };
    static const luaL_Reg functions[] = {
        { "sealer", l_sealer }, { "send_sealed", l_send_sealed }, { "listen_sealed", l_listen_sealed }, { NULL, NULL },
    };
    stsl_new_class(L, SEALER_MT, sealer_meta, sealer_methods);
    stsl_new_class(L, SEALED_LISTENER_MT, listener_meta, listener_methods);
    luaL_setfuncs(L, functions, 0);
}
