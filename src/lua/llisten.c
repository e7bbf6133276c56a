/* sts.listen: one responder for many initiators. The listener subscribes
 * one wildcard filter ("plant/+/up"); an INITREQ on a topic it has no session
 * for makes a responder session for that topic, replying on the topic its
 * `pub` pattern gives ("plant/+/down"). Its sessions are found in C: they are
 * subscribers, by exact topic, of a registry of the listener's own, so a
 * frame reaches its session with one hash lookup and no Lua.
 *
 * The listener stands between a hostile broker and the sessions
 * (docs/PROTOCOL.md § Listener defences): it refuses long topics, answers
 * frames for no session with rate-limited RESYNCs, drops replays of INITREQs
 * it has taken, limits the Diffie-Hellman work INITREQs cost with a token
 * bucket, asks for a cookie (a round trip through the broker) when that
 * bucket runs low, and runs the work from a queue a few milliseconds per loop
 * turn, so that timers never wait behind a flood. It reaps closed, idle and
 * never-completed sessions, and counts every refusal by reason and by peer.
 *
 * A listener is a userdata with one user value: a table holding the client,
 * the trust list and the on_session handler. Its sessions are found through
 * its registry (each is kept reachable by its anchor while open), and share
 * one copy of the settings and keys: a listener holds thousands. */
#include "lua/session.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "mqtt/registry.h"
#include "mqtt/topic.h"
#include "util/error.h"
#include "util/log.h"

#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>
#include <mosquitto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_MAX_SESSIONS 10000
#define DEFAULT_MAX_HALF_OPEN 1000
#define DEFAULT_MAX_TOPIC 256
#define DEFAULT_HANDSHAKE_RATE 100.0 /* INITREQs per second given DH work (IK: 5 X25519, ~3-7 ms) */
#define DEFAULT_HANDSHAKE_BURST 50.0
#define DEFAULT_COOKIE_RATE 5000.0   /* COOKIE replies per second */
#define DEFAULT_RESYNC_RATE 100.0    /* RESYNC replies per second */
#define MAX_QUEUED 256               /* INITREQs waiting for their DH work */
#define QUEUE_BEHIND 16              /* this many waiting: ask for cookies */
#define WORK_BUDGET 0.005            /* seconds of handshake work per loop turn */
#define FRAME_BUDGET 0.010           /* CPU seconds per loop turn on frames before DH: past it, INITREQs are dropped unread */
#define SEEN_SLOTS 4096              /* digests of INITREQs taken (replay cache) */
#define SEEN_LEN 16
#define COOKIE_PERIOD 120.0          /* the cookie secret changes this often */
#define MAX_PEERS_COUNTED 64         /* refusals counted by peer key, at most */
#define LOG_RATE 5.0                 /* refusal log lines per second */

/* The listener's own reasons, counted after the engine's (sts_reason). */
enum refusal_reason {
    R_TOPIC_TOO_LONG = STS_REASON_COUNT, R_NO_SESSION, R_SEEN, R_COOKIE, R_RATE, R_QUEUE_FULL,
    R_MAX_SESSIONS, R_MAX_HALF_OPEN, R_NAME, R_BINDING, R_COUNT
};

static const char *refusal_name(int r)
{
    static const char *const names[] = {
        "topic_too_long", "no_session", "replay", "cookie", "rate", "queue_full",
        "max_sessions", "max_half_open", "name", "binding",
    };
    return r < STS_REASON_COUNT ? sts_reason_name((enum sts_reason)r) : names[r - STS_REASON_COUNT];
}

struct bucket {
    double tokens, rate, burst, at;
};

/* An INITREQ waiting for its turn: topic (NUL-terminated), then the frame. */
struct job {
    struct job *next;
    size_t len;
    char data[];
};

struct peer_count {
    uint8_t key[STS_X25519_LEN];
    uint64_t n;
};

struct llistener {
    struct lclient *client;
    struct sts_mqtt_sub *sub;     /* the wildcard filter on the client */
    struct sts_registry sessions; /* exact topic -> its session */
    char *filter, *pub;
    char *trust_path;             /* the trust file, for reload_trust; NULL: none */
    struct policy policy;         /* every session's settings (its private key wiped: see shared) */
    struct sts_session_shared *shared; /* the engine's settings and keys, shared by every session */
    struct stsl_anchor anchor;
    int closing;
    int bind_name;                /* the + level of a topic must be the peer's name */
    const struct sts_trust *trust; /* the list in the uservalue's "trust"; NULL: none */
    size_t nsessions, max_sessions, nhalf_open, max_half_open, max_topic;
    double idle;                  /* > 0: established sessions silent this long are closed */
    struct bucket dh, cookies, resyncs, log;
    struct sts_timer work, sweep;
    struct job *queue, **queue_tail;
    size_t nqueued;
    uint8_t secret[2][32];        /* the cookie secrets: current, previous */
    double secret_at;
    uint8_t (*seen)[SEEN_LEN];    /* SEEN_SLOTS digests */
    uint64_t rejected[R_COUNT], by_peer_other, handshakes, handshake_jobs, cookies_sent, suppressed;
    double work_cpu;              /* CPU seconds spent on queued INITREQs */
    unsigned long turn;           /* the loop turn turn_spent is of */
    double turn_spent;            /* CPU seconds spent in on_frame in it */
    struct peer_count by_peer[MAX_PEERS_COUNTED];
    size_t npeers;
};

static struct llistener *check_listener(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, LISTENER_MT);
}

/* --- limits ------------------------------------------------------------------------- */

/* CPU seconds of the process: what a budget of our own work counts (a turn
 * may also take long because the machine gave the process no CPU, which
 * dropping frames would not help). */
static double cpu_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bucket_init(struct bucket *b, double rate, double burst)
{
    b->rate = rate;
    b->burst = b->tokens = burst;
    b->at = sts_now();
}

static double bucket_level(struct bucket *b, double now)
{
    b->tokens += (now - b->at) * b->rate;
    if (b->tokens > b->burst) b->tokens = b->burst;
    b->at = now;
    return b->tokens;
}

static int bucket_take(struct bucket *b, double now)
{
    if (bucket_level(b, now) < 1) return 0;
    b->tokens -= 1;
    return 1;
}

int stsl_listener_may_resync(struct llistener *li)
{
    return bucket_take(&li->resyncs, sts_now());
}

/* --- refusals: counted by reason and by peer, logged at a bounded rate ------------------ */

static void count_peer(struct llistener *li, const uint8_t key[STS_X25519_LEN])
{
    for (size_t i = 0; i < li->npeers; i++) {
        if (memcmp(li->by_peer[i].key, key, STS_X25519_LEN) == 0) {
            li->by_peer[i].n++;
            return;
        }
    }
    if (li->npeers == MAX_PEERS_COUNTED) {
        li->by_peer_other++;
        return;
    }
    memcpy(li->by_peer[li->npeers].key, key, STS_X25519_LEN);
    li->by_peer[li->npeers++].n = 1;
}

static void refuse(struct llistener *li, int reason, const char *topic, const uint8_t *key)
{
    char fp[STS_FINGERPRINT_LEN + 1] = "an unknown key";
    li->rejected[reason]++;
    if (key) {
        count_peer(li, key);
        if (sts_key_fingerprint(fp, key) != 0) strcpy(fp, "?");
    }
    /* A copy of an INITREQ already taken is a handshake already logged. */
    if (reason == R_SEEN) return;
    if (!bucket_take(&li->log, sts_now())) {
        li->suppressed++;
        return;
    }
    sts_warn("listener %s: refused %.*s from %s: %s (%llu such; %llu lines suppressed)", li->filter, 128, topic,
             fp, refusal_name(reason), (unsigned long long)li->rejected[reason], (unsigned long long)li->suppressed);
    li->suppressed = 0;
}

void stsl_listener_rejected(struct lsession *ls, const char *reason)
{
    int r = STS_REASON_MALFORMED;
    for (int i = 1; i < STS_REASON_COUNT; i++)
        if (strcmp(reason, sts_reason_name((enum sts_reason)i)) == 0) r = i;
    if (r == STS_REASON_UNTRUSTED && ls->refusal == STSL_REFUSAL_NAME) r = R_NAME;
    if (r == STS_REASON_UNTRUSTED && ls->refusal == STSL_REFUSAL_BINDING) r = R_BINDING;
    refuse(ls->listener, r, ls->topic_in, ls->has_seen_key ? ls->seen_key : NULL);
}

static int is_name(const char *level, size_t len, const char *name)
{
    return name[0] && strlen(name) == len && memcmp(level, name, len) == 0;
}

/* Bound by name, a topic whose + level names no trust entry can never get a
 * session: its INITREQ (an XX one is only `e`) is refused before DH. */
static int names_a_peer(const struct llistener *li, const char *topic)
{
    size_t len = 0;
    if (!li->bind_name || !li->trust) return 1;
    const char *level = sts_topic_plus_level(li->filter, topic, &len);
    return level && sts_trust_has_name(li->trust, level, len);
}

enum stsl_refusal stsl_listener_refusal(const struct llistener *li, const char *topic,
                                        const struct sts_trust_entry *e)
{
    size_t len = 0;
    if (!e) return STSL_REFUSAL_UNTRUSTED;
    if (e->binding[0] && !sts_topic_matches(e->binding, topic)) return STSL_REFUSAL_BINDING;
    const char *level = li && li->bind_name ? sts_topic_plus_level(li->filter, topic, &len) : NULL;
    if (li && li->bind_name && !(level && is_name(level, len, e->name))) return STSL_REFUSAL_NAME;
    return STSL_REFUSAL_NONE;
}

/* --- sessions ------------------------------------------------------------------------ */

static void on_session_frame(void *ud, const struct sts_mqtt_message *msg)
{
    stsl_session_receive(ud, msg);
}

/* Makes the session for an INITREQ on a topic not seen before; leaves the
 * stack as it found it. Returns it, or NULL (refused and counted). */
static struct lsession *add_session(lua_State *L, struct llistener *li, const char *topic)
{
    char out[1024];
    if (li->nsessions >= li->max_sessions) return refuse(li, R_MAX_SESSIONS, topic, NULL), NULL;
    if (li->nhalf_open >= li->max_half_open) return refuse(li, R_MAX_HALF_OPEN, topic, NULL), NULL;
    if (sts_topic_reply(out, sizeof out, li->filter, li->pub, topic) < 0)
        return refuse(li, R_TOPIC_TOO_LONG, topic, NULL), NULL;
    if (!stsl_anchor_push(L, &li->anchor)) return NULL;
    int listener = lua_gettop(L);
    struct lsession *ls = stsl_listener_session_new(L, listener, li, li->client, li->trust, &li->policy, li->shared,
                                                    topic, out);
    if (!ls) {
        sts_warn("listener %s: no session for %s: %s", li->filter, topic, lua_tostring(L, -1));
    } else if (!(ls->sub = sts_registry_add(&li->sessions, topic, 0, on_session_frame, ls))) {
        sts_warn("listener %s: no session for %s: out of memory", li->filter, topic);
        stsl_session_close(L, -1, ls, "out of memory");
        ls = NULL;
    } else {
        ls->give_up = sts_now() + 1.5 * li->policy.cfg.handshake_timeout;
        li->nsessions++;
        li->nhalf_open++;
    }
    lua_settop(L, listener - 1);
    return ls;
}

void stsl_listener_established(lua_State *L, int session, struct lsession *ls)
{
    ls->listener->nhalf_open--;
    ls->listener->handshakes++;
    lua_getiuservalue(L, session, UV_OWNER);
    int listener = lua_gettop(L);
    if (stsl_get_uv(L, listener, "on_session") == LUA_TFUNCTION && !ls->quiet) {
        lua_pushvalue(L, session);
        stsl_pcall(L, 1, 0, "listener session handler");
    } else {
        lua_pop(L, 1);
    }
    lua_settop(L, listener - 1);
}

/* A closed session leaves its listener, so that the next handshake on its
 * topic makes a new session rather than reach a closed one. */
void stsl_listener_forget(struct lsession *ls)
{
    struct llistener *li = ls->listener;
    struct sts_filter *f = ls->sub->filter;
    sts_registry_remove(ls->sub);
    sts_registry_collect(&li->sessions, f);
    li->nsessions--;
    if (!ls->established) li->nhalf_open--;
}

/* Calls fn(ctx, ls) for each session in the listener's registry. */
struct each_session {
    void (*fn)(void *ctx, struct lsession *ls);
    void *ctx;
};

static void each_in_filter(void *ctx, struct sts_filter *f)
{
    struct each_session *e = ctx;
    for (struct sts_mqtt_sub *sub = f->subs; sub; sub = sub->next)
        if (sub->fn) e->fn(e->ctx, sub->ud);
}

static void each_session(struct llistener *li, void (*fn)(void *ctx, struct lsession *ls), void *ctx)
{
    struct each_session e = { fn, ctx };
    sts_registry_each(&li->sessions, each_in_filter, &e);
}

typedef int (*session_filter)(const struct llistener *li, const struct lsession *ls);

struct collecting {
    lua_State *L;
    const struct llistener *li;
    session_filter want;
    int table, n;
};

static void collect_session(void *ctx, struct lsession *ls)
{
    struct collecting *c = ctx;
    if ((!c->want || c->want(c->li, ls)) && stsl_anchor_push(c->L, &ls->anchor))
        lua_rawseti(c->L, c->table, ++c->n);
}

/* Pushes an array of the listener's open sessions that `want` (NULL: all),
 * a copy (closing one takes it out of the registry), and returns how many. */
static int push_sessions(lua_State *L, struct llistener *li, session_filter want)
{
    lua_createtable(L, want ? 0 : (int)li->nsessions, 0);
    struct collecting c = { L, li, want, lua_gettop(L), 0 };
    each_session(li, collect_session, &c);
    return c.n;
}

static int is_established(const struct llistener *li, const struct lsession *ls)
{
    (void)li;
    return ls->established;
}

/* --- INITREQs: replay cache, cookies, the work queue ------------------------------------ */

/* Where the digest of an INITREQ (without its cookie) on topic goes; h is
 * its full SHA-256, which its cookie is made of. */
static uint8_t *seen_slot(struct llistener *li, const char *topic, const uint8_t *frame, size_t len,
                          uint8_t digest[SEEN_LEN], uint8_t h[STS_SHA256_LEN])
{
    if (sts_hash2(STS_SHA256, (const uint8_t *)topic, strlen(topic) + 1, frame, len, h) != 0) return NULL;
    memcpy(digest, h, SEEN_LEN);
    return li->seen[((size_t)h[0] << 8 | h[1]) % SEEN_SLOTS];
}

static void rotate_secret(struct llistener *li, double now)
{
    uint8_t fresh[sizeof li->secret[0]];
    if (now - li->secret_at < COOKIE_PERIOD) return;
    /* Into a temporary: a failed generator leaves both secrets as they were. */
    if (sts_random(fresh, sizeof fresh) == 0) {
        memcpy(li->secret[1], li->secret[0], sizeof li->secret[0]);
        memcpy(li->secret[0], fresh, sizeof fresh);
        li->secret_at = now;
    }
    mbedtls_platform_zeroize(fresh, sizeof fresh);
}

/* The cookie of an INITREQ under secret k: HMAC-SHA256(secret, h), cut, h
 * the digest of its topic and its frame (less the cookie, so its `e`): a
 * cookie read off one reply topic admits that INITREQ only, not a flood of
 * fresh ones on the topic. */
static int make_cookie(const struct llistener *li, int k, const uint8_t h[STS_SHA256_LEN],
                       uint8_t out[STS_FRAME_COOKIE_LEN])
{
    uint8_t mac[STS_SHA256_LEN];
    int rc = sts_hmac(STS_SHA256, li->secret[k], sizeof li->secret[k], h, STS_SHA256_LEN, mac);
    memcpy(out, mac, STS_FRAME_COOKIE_LEN);
    mbedtls_platform_zeroize(mac, sizeof mac);
    return rc;
}

static int cookie_valid(const struct llistener *li, const uint8_t h[STS_SHA256_LEN], const uint8_t *cookie)
{
    uint8_t want[STS_FRAME_COOKIE_LEN];
    int ok = 0;
    for (int k = 0; k < 2 && !ok; k++)
        ok = make_cookie(li, k, h, want) == 0 && mbedtls_ct_memcmp(want, cookie, sizeof want) == 0;
    return ok;
}

/* Publishes a COOKIE on the reply topic: stateless, nothing is kept. */
static void send_cookie(struct llistener *li, const char *topic, const uint8_t h[STS_SHA256_LEN], double now)
{
    char out[1024];
    uint8_t frame[STS_FRAME_HEADER_LEN + STS_FRAME_COOKIE_LEN];
    struct sts_mqtt *m = stsl_client_mqtt(li->client);
    if (!m || !bucket_take(&li->cookies, now) || sts_topic_reply(out, sizeof out, li->filter, li->pub, topic) < 0)
        return;
    size_t head = sts_frame_put_header(frame, STS_FRAME_COOKIE);
    if (make_cookie(li, 0, h, frame + head) != 0) return;
    if (sts_mqtt_publish(m, out, frame, sizeof frame, 0, 0, NULL) == MOSQ_ERR_SUCCESS) li->cookies_sent++;
}

static void send_resync(struct llistener *li, const char *topic)
{
    char out[1024];
    uint8_t frame[STS_FRAME_HEADER_LEN];
    struct sts_mqtt *m = stsl_client_mqtt(li->client);
    if (!m || !stsl_listener_may_resync(li) || sts_topic_reply(out, sizeof out, li->filter, li->pub, topic) < 0)
        return;
    sts_mqtt_publish(m, out, frame, sts_frame_put_header(frame, STS_FRAME_RESYNC), li->policy.qos, 0, NULL);
}

/* Under load (the DH bucket below half, or the work queue falling behind),
 * an INITREQ must bring back the cookie of its topic: a sender that cannot
 * read the reply topic never gets DH work. */
static int under_load(struct llistener *li, double now)
{
    return bucket_level(&li->dh, now) < li->dh.burst / 2 || li->nqueued >= QUEUE_BEHIND;
}

static void run_jobs(struct sts_timer *t, void *ud);

static void enqueue(struct llistener *li, const struct sts_mqtt_message *msg, size_t topic_len)
{
    struct job *j = malloc(sizeof *j + topic_len + 1 + (size_t)msg->len);
    if (!j) { refuse(li, STS_REASON_INTERNAL, msg->topic, NULL); return; }
    memcpy(j->data, msg->topic, topic_len + 1);
    memcpy(j->data + topic_len + 1, msg->payload, (size_t)msg->len);
    j->len = (size_t)msg->len;
    j->next = NULL;
    *li->queue_tail = j;
    li->queue_tail = &j->next;
    if (li->nqueued++ == 0) sts_timer_start(sts_loop_default(), &li->work, 0, 0);
}

/* An INITREQ for no session, or for one that would have to do DH work. */
static void admit_initreq(struct llistener *li, const struct sts_mqtt_message *msg, size_t topic_len)
{
    const uint8_t *frame = msg->payload, *cookie;
    double now = sts_now();
    uint8_t digest[SEEN_LEN], h[STS_SHA256_LEN];
    struct sts_frame f;
    enum sts_reason why;
    /* Before hashing, queueing or a DH token: a frame that cannot decode as
     * a handshake (at most STS_FRAME_HANDSHAKE_MAX bytes, a returned cookie
     * included) would otherwise pin up to max_payload in the queue. */
    if (sts_frame_decode(&f, frame, (size_t)msg->len, STS_FRAME_HANDSHAKE_MAX, &why) != 0) {
        refuse(li, why, msg->topic, NULL);
        return;
    }
    if (!names_a_peer(li, msg->topic)) { refuse(li, R_NAME, msg->topic, NULL); return; }
    size_t len = sts_initreq_cookie(frame, (size_t)msg->len, &cookie);
    uint8_t *slot = seen_slot(li, msg->topic, frame, len, digest, h);
    if (!slot) { refuse(li, STS_REASON_INTERNAL, msg->topic, NULL); return; }
    if (memcmp(slot, digest, SEEN_LEN) == 0) { refuse(li, R_SEEN, msg->topic, NULL); return; }
    rotate_secret(li, now);
    if (under_load(li, now) && !(cookie && cookie_valid(li, h, cookie))) {
        send_cookie(li, msg->topic, h, now);
        refuse(li, R_COOKIE, msg->topic, NULL);
        return;
    }
    if (li->nqueued >= MAX_QUEUED) { refuse(li, R_QUEUE_FULL, msg->topic, NULL); return; }
    if (!bucket_take(&li->dh, now)) { refuse(li, R_RATE, msg->topic, NULL); return; }
    memcpy(slot, digest, SEEN_LEN);
    enqueue(li, msg, topic_len);
}

/* A session made for an INITREQ its engine refused keeps no state. */
static void drop_if_refused(lua_State *L, struct lsession *ls)
{
    if (!ls->s || sts_session_state(ls->s) != STS_STATE_IDLE || !stsl_anchor_push(L, &ls->anchor)) return;
    stsl_session_close(L, -1, ls, "refused");
    lua_pop(L, 1);
}

/* Runs queued INITREQs for WORK_BUDGET seconds at most (at least one), then
 * yields the loop to I/O and timers. */
static void run_jobs(struct sts_timer *t, void *ud)
{
    struct llistener *li = ud;
    lua_State *L = stsl_main();
    double start = sts_now(), cpu = cpu_now();
    (void)t;
    while (li->queue && !li->closing && sts_now() - start < WORK_BUDGET) {
        struct job *j = li->queue;
        if (!(li->queue = j->next)) li->queue_tail = &li->queue;
        li->nqueued--;
        struct sts_mqtt_message msg = { .topic = j->data, .payload = j->data + strlen(j->data) + 1, .len = j->len };
        struct lsession *ls = sts_registry_find(&li->sessions, msg.topic);
        int made = !ls;
        if (made) ls = add_session(L, li, msg.topic);
        if (ls) {
            li->handshake_jobs++;
            stsl_session_receive(ls, &msg);
            if (made) drop_if_refused(L, ls);
        }
        free(j);
    }
    li->work_cpu += cpu_now() - cpu;
    if (li->queue && !li->closing) sts_timer_start(sts_loop_default(), &li->work, 0, 0);
}

static void drop_jobs(struct llistener *li)
{
    for (struct job *j = li->queue, *next; j; j = next) {
        next = j->next;
        free(j);
    }
    li->queue = NULL;
    li->queue_tail = &li->queue;
    li->nqueued = 0;
}

static int is_initreq(const struct sts_mqtt_message *msg)
{
    const uint8_t *p = msg->payload;
    return msg->len >= STS_FRAME_HEADER_LEN && p[0] == STS_FRAME_VERSION && p[1] == STS_FRAME_INITREQ;
}

/* Has this loop turn's time for unauthenticated frames run out? The client
 * may read thousands of frames in one turn; past the budget an INITREQ is
 * dropped unread (the initiator retransmits), so a flood never holds up the
 * loop's timers for long. */
static int frame_budget_spent(struct llistener *li)
{
    unsigned long turn = sts_loop_turns(sts_loop_default());
    if (turn != li->turn) {
        li->turn = turn;
        li->turn_spent = 0;
    }
    return li->turn_spent > FRAME_BUDGET;
}

/* Routes a frame to the session of its topic; an INITREQ that needs DH
 * work waits its turn. */
static void route(struct llistener *li, const struct sts_mqtt_message *msg)
{
    size_t topic_len = strnlen(msg->topic, li->max_topic + 1);
    struct lsession *ls = topic_len > li->max_topic ? NULL : sts_registry_find(&li->sessions, msg->topic);
    if (topic_len > li->max_topic) {
        refuse(li, R_TOPIC_TOO_LONG, msg->topic, NULL);
    } else if (is_initreq(msg) && !(ls && ls->s && sts_session_is_retransmission(ls->s, msg->payload, msg->len))) {
        admit_initreq(li, msg, topic_len);
    } else if (ls) {
        stsl_session_receive(ls, msg);
    } else {
        refuse(li, R_NO_SESSION, msg->topic, NULL);
        if (msg->len >= STS_FRAME_HEADER_LEN && ((const uint8_t *)msg->payload)[1] == STS_FRAME_ENC)
            send_resync(li, msg->topic);
    }
}

/* The listener's subscriber. */
static void on_frame(void *ud, const struct sts_mqtt_message *msg)
{
    struct llistener *li = ud;
    if (li->closing) return;
    if (frame_budget_spent(li) && is_initreq(msg)) {
        refuse(li, R_RATE, msg->topic, NULL);
        return;
    }
    double cpu = cpu_now();
    route(li, msg);
    li->turn_spent += cpu_now() - cpu;
}

/* --- idle sessions ----------------------------------------------------------------------- */

static int is_idle(const struct llistener *li, const struct lsession *ls)
{
    return ls->established && sts_now() - ls->last_seen >= li->idle;
}

/* Closes the established sessions nothing authentic came from for `idle`
 * seconds, after their idle handler. */
static void sweep_idle(struct sts_timer *t, void *ud)
{
    struct llistener *li = ud;
    lua_State *L = stsl_main();
    (void)t;
    if (!stsl_anchor_push(L, &li->anchor)) return;
    int listener = lua_gettop(L);
    int n = push_sessions(L, li, is_idle), idle = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, idle, i);
        struct lsession *ls = stsl_check_session(L, -1);
        if (lua_getiuservalue(L, -1, UV_ON_IDLE) == LUA_TFUNCTION) {
            lua_pushvalue(L, -2);
            stsl_pcall(L, 1, 0, "session idle handler");
        } else {
            lua_pop(L, 1);
        }
        stsl_session_close(L, -1, ls, "idle");
        lua_pop(L, 1);
    }
    lua_settop(L, listener - 1);
}

/* --- sts.listen and the listener's methods ------------------------------------------------- */

static int listener_close(lua_State *L);

/* The client closes: its sessions hear it first, as a session of
 * sts.handshake does. */
static int listener_client_closed(lua_State *L)
{
    struct llistener *li = check_listener(L, 1);
    int finalizing = lua_toboolean(L, 2);
    int n = push_sessions(L, li, NULL), sessions = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, sessions, i);
        stsl_session_client_closed(L, -1, finalizing);
        lua_pop(L, 1);
    }
    lua_settop(L, 1);
    return listener_close(L);
}

/* rate = { handshakes = n, burst = n, cookies = n, resyncs = n } */
static void read_rates(lua_State *L, int idx, struct llistener *li)
{
    static const char *const known[] = { "handshakes", "burst", "cookies", "resyncs", NULL };
    double handshakes = DEFAULT_HANDSHAKE_RATE, burst = DEFAULT_HANDSHAKE_BURST;
    double cookies = DEFAULT_COOKIE_RATE, resyncs = DEFAULT_RESYNC_RATE;
    if (stsl_opt_table(L, idx, "rate")) {
        int t = lua_gettop(L);
        stsl_check_options(L, t, "rate", known);
        handshakes = stsl_opt_number(L, t, "handshakes", handshakes);
        burst = stsl_opt_number(L, t, "burst", burst);
        cookies = stsl_opt_number(L, t, "cookies", cookies);
        resyncs = stsl_opt_number(L, t, "resyncs", resyncs);
        lua_pop(L, 1);
    }
    if (!(handshakes > 0) || !(burst >= 1) || !(cookies >= 0) || !(resyncs >= 0))
        luaL_error(L, "option 'rate': handshakes must be positive, burst at least 1, cookies and resyncs not negative");
    bucket_init(&li->dh, handshakes, burst);
    bucket_init(&li->cookies, cookies, cookies > 1 ? cookies : 1);
    bucket_init(&li->resyncs, resyncs, resyncs > 1 ? resyncs : 1);
    bucket_init(&li->log, LOG_RATE, 4 * LOG_RATE);
}

/* bind: "name" (the default with a trust file), or false. With trust = "any"
 * or a pinned peer there is no name to bind to. */
static int read_bind(lua_State *L, int idx, const struct policy *p, const char *sub)
{
    lua_getfield(L, idx, "bind");
    int named_trust = !p->trust_any && !p->cfg.peer_static;
    int bind = lua_isnil(L, -1) ? named_trust : lua_toboolean(L, -1);
    if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "name") != 0)
        luaL_error(L, "option 'bind' must be \"name\" or false");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1) && !lua_isstring(L, -1))
        luaL_error(L, "option 'bind' must be \"name\" or false");
    if (lua_isboolean(L, -1) && bind) luaL_error(L, "option 'bind' must be \"name\" or false");
    if (bind && !named_trust)
        luaL_error(L, "option 'bind': binding by name needs a trust file (trust = \"any\" and peer give no names)");
    if (bind && sts_topic_count_plus(sub) != 1)
        luaL_error(L, "option 'bind': binding by name needs a 'sub' filter with exactly one + level");
    if (!bind && named_trust)
        sts_warn("listener %s: bind = false: any trusted key may take any topic it matches (one peer may speak for another)", sub);
    lua_pop(L, 1);
    return bind;
}

/* sts.listen(client, opts, on_session) -> listener | nil, message */
static int l_listen(lua_State *L)
{
    static const char *const known[] = {
        "pub", "sub", "identity", "peer", "trust", "pattern", "suite", "timeout", "qos", "rekey",
        "retransmit", "max_sessions", "max_half_open", "max_topic", "bind", "idle", "rate", NULL,
    };
    struct policy p;
    int rc;
    struct lclient *client = stsl_check_client(L, 1);
    stsl_check_options(L, 2, "sts.listen", known);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    const char *pub = stsl_required_topic(L, 2, "pub");
    const char *sub = stsl_required_topic(L, 2, "sub");
    lua_Integer max_sessions = stsl_opt_integer(L, 2, "max_sessions", DEFAULT_MAX_SESSIONS);
    lua_Integer max_half_open = stsl_opt_integer(L, 2, "max_half_open", DEFAULT_MAX_HALF_OPEN);
    lua_Integer max_topic = stsl_opt_integer(L, 2, "max_topic", DEFAULT_MAX_TOPIC);
    double idle = stsl_opt_number(L, 2, "idle", 0);
    size_t plus_sub = sts_topic_count_plus(sub);
    if (strchr(sub, '#') || strchr(pub, '#') || plus_sub == 0 || sts_topic_count_plus(pub) > plus_sub)
        luaL_error(L, "sts.listen needs a 'sub' filter with + levels and a 'pub' with at most as many + (no #)");
    if (max_sessions < 1) luaL_error(L, "option 'max_sessions' must be positive");
    if (max_half_open < 1) luaL_error(L, "option 'max_half_open' must be positive");
    if (max_topic < 1 || max_topic > 65535) luaL_error(L, "option 'max_topic' must be from 1 to 65535 (bytes)");
    if (idle < 0) luaL_error(L, "option 'idle' must be positive (seconds)");
    if (!stsl_read_policy(L, 2, &p, 1)) return stsl_fail(L, "%s", lua_tostring(L, -1)); /* 4: trust */
    int bind = read_bind(L, 2, &p, sub);

    struct llistener *li = lua_newuserdatauv(L, sizeof *li, 1); /* 5 */
    memset(li, 0, sizeof *li);
    stsl_anchor_init(&li->anchor);
    sts_registry_init(&li->sessions);
    li->queue_tail = &li->queue;
    li->client = client;
    li->max_sessions = (size_t)max_sessions;
    li->max_half_open = (size_t)max_half_open;
    li->max_topic = (size_t)max_topic;
    li->idle = idle;
    li->bind_name = bind;
    li->trust = lua_touserdata(L, 4);
    rc = stsl_session_shared(&p, &li->shared);
    li->policy = p;
    mbedtls_platform_zeroize(&p, sizeof p);
    /* The shared settings hold the keys now: no pointer to the policy's copy. */
    mbedtls_platform_zeroize(li->policy.identity, sizeof li->policy.identity);
    li->policy.cfg.static_priv = li->policy.cfg.static_pub = li->policy.cfg.peer_static = NULL;
    luaL_setmetatable(L, LISTENER_MT);
    read_rates(L, 2, li);
    sts_timer_init(&li->work, run_jobs, li);
    sts_timer_init(&li->sweep, sweep_idle, li);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "client");
    lua_pushvalue(L, 4);
    lua_setfield(L, -2, "trust");
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "on_session");
    lua_setiuservalue(L, 5, 1);
    if (rc != 0) return stsl_fail(L, "session: %s", sts_strerror(rc));
    li->filter = strdup(sub);
    li->pub = strdup(pub);
    const char *trust_path = lua_isnil(L, 4) ? NULL : stsl_opt_string(L, 2, "trust", NULL);
    if (trust_path && !(li->trust_path = strdup(trust_path))) return luaL_error(L, "out of memory");
    li->seen = calloc(SEEN_SLOTS, sizeof *li->seen);
    if (!li->filter || !li->pub || !li->seen) return luaL_error(L, "out of memory");
    if (sts_random(li->secret[0], sizeof li->secret[0]) != 0 || sts_random(li->secret[1], sizeof li->secret[1]) != 0)
        return stsl_fail(L, "the random generator failed");
    li->secret_at = sts_now();
    li->sub = sts_mqtt_subscribe(stsl_client_mqtt(client), sub, li->policy.qos, on_frame, li, &rc);
    if (!li->sub) return stsl_fail(L, "subscribe: %s", mosquitto_strerror(rc));
    stsl_anchor_set(L, 5, &li->anchor);
    stsl_client_on_close(L, 1, 5, listener_client_closed);
    if (idle > 0) {
        double every = idle / 4 < 1 ? idle / 4 : 1;
        sts_timer_start(sts_loop_default(), &li->sweep, every, every);
    }
    lua_settop(L, 5);
    return 1;
}

/* listener:sessions() -> { [topic] = session } of the established ones */
static int listener_sessions(lua_State *L)
{
    struct llistener *li = check_listener(L, 1);
    int n = push_sessions(L, li, is_established), array = lua_gettop(L);
    lua_createtable(L, 0, n);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, array, i);
        lua_setfield(L, -2, stsl_check_session(L, -1)->topic_in);
    }
    return 1;
}

static void add_count(lua_State *L, const char *name, uint64_t n)
{
    lua_getfield(L, -1, name);
    n += (uint64_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    stsl_set_count(L, name, n);
}

struct memory {
    uint64_t all, half_open;
};

static void add_memory(void *ctx, struct lsession *ls)
{
    struct memory *m = ctx;
    uint64_t n = sizeof *ls + strlen(ls->topic_in) + strlen(ls->topic_out) + 2 + (ls->s ? sts_session_memory(ls->s) : 0);
    m->all += n;
    if (!ls->established) m->half_open += n;
}

/* Bytes the sessions hold (C only: engine, binding, topics, and once the
 * settings they share), in all and the half-open ones. */
static void sum_memory(struct llistener *li, uint64_t *all, uint64_t *half_open)
{
    struct memory m = { 0, 0 };
    each_session(li, add_memory, &m);
    *all = m.all ? m.all + sts_session_shared_memory() : 0;
    *half_open = m.half_open;
}

/* listener:stats() -> counts: sessions by state, handshakes, refusals by
 * reason and by peer fingerprint, the work queue and cookies, memory. */
static int listener_stats(lua_State *L)
{
    struct llistener *li = check_listener(L, 1);
    char fp[STS_FINGERPRINT_LEN + 1];
    uint64_t total = 0, memory, memory_half_open;
    sum_memory(li, &memory, &memory_half_open);
    lua_createtable(L, 0, 14);
    stsl_set_count(L, "memory", memory);
    stsl_set_count(L, "memory_half_open", memory_half_open);
    stsl_set_count(L, "sessions", li->nsessions);
    stsl_set_count(L, "established", li->nsessions - li->nhalf_open);
    stsl_set_count(L, "half_open", li->nhalf_open);
    stsl_set_count(L, "handshakes", li->handshakes);
    stsl_set_count(L, "handshake_jobs", li->handshake_jobs);
    stsl_set_count(L, "queued", li->nqueued);
    stsl_set_count(L, "cookies_sent", li->cookies_sent);
    lua_pushnumber(L, li->work_cpu);
    lua_setfield(L, -2, "handshake_seconds");
    lua_newtable(L);
    for (int r = 1; r < R_COUNT; r++) {
        total += li->rejected[r];
        if (li->rejected[r]) add_count(L, refusal_name(r), li->rejected[r]);
    }
    lua_setfield(L, -2, "rejected");
    stsl_set_count(L, "rejected_total", total);
    lua_newtable(L);
    for (size_t i = 0; i < li->npeers; i++)
        if (sts_key_fingerprint(fp, li->by_peer[i].key) == 0) stsl_set_count(L, fp, li->by_peer[i].n);
    if (li->by_peer_other) stsl_set_count(L, "other", li->by_peer_other);
    lua_setfield(L, -2, "rejected_by_peer");
    return 1;
}

/* Points every session at the trust list on top of the stack, closing the
 * established ones whose peer it no longer accepts on their topic. */
static void retrust_sessions(lua_State *L, struct llistener *li)
{
    int trust = lua_gettop(L);
    const struct sts_trust *t = lua_touserdata(L, trust);
    int all = push_sessions(L, li, NULL), sessions = lua_gettop(L);
    lua_newtable(L); /* the revoked */
    int revoked = lua_gettop(L), n = 0;
    for (int i = 1; i <= all; i++) {
        lua_rawgeti(L, sessions, i);
        struct lsession *ls = stsl_check_session(L, -1);
        ls->trust = t;
        if (ls->established && ls->has_peer_key &&
            stsl_listener_refusal(li, ls->topic_in, sts_trust_find(t, ls->peer_key)) != STSL_REFUSAL_NONE)
            lua_rawseti(L, revoked, ++n);
        else
            lua_pop(L, 1);
    }
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, revoked, i);
        stsl_session_close(L, -1, stsl_check_session(L, -1), "trust revoked");
        lua_pop(L, 1);
    }
    lua_settop(L, trust);
}

/* listener:reload_trust() -> true | nil, message: reads the trust file again;
 * new handshakes use it, and sessions whose peer it no longer accepts close.
 * On an error the old list stays. */
static int listener_reload_trust(lua_State *L)
{
    struct llistener *li = check_listener(L, 1);
    if (!li->trust_path) return stsl_fail(L, "the listener has no trust file");
    if (li->closing || li->anchor.ref == LUA_NOREF) return stsl_fail(L, "the listener is closed");
    if (!stsl_push_trust_file(L, li->trust_path)) return stsl_fail(L, "%s", lua_tostring(L, -1));
    li->trust = lua_touserdata(L, -1);
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "trust");
    lua_pop(L, 1);
    retrust_sessions(L, li);
    sts_info("listener %s: trust list %s reloaded", li->filter, li->trust_path);
    lua_pushboolean(L, 1);
    return 1;
}

static int listener_close(lua_State *L)
{
    struct llistener *li = check_listener(L, 1);
    if (li->closing || li->anchor.ref == LUA_NOREF) return 0;
    li->closing = 1;
    sts_timer_stop(sts_loop_default(), &li->work);
    sts_timer_stop(sts_loop_default(), &li->sweep);
    drop_jobs(li);
    int n = push_sessions(L, li, NULL), copy = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, copy, i);
        stsl_session_close(L, -1, stsl_check_session(L, -1), "listener closed");
        lua_pop(L, 1);
    }
    stsl_get_uv(L, 1, "client");
    stsl_client_on_close(L, lua_gettop(L), 1, NULL);
    struct sts_mqtt *m = stsl_client_mqtt(li->client);
    if (m) sts_mqtt_unsubscribe(m, li->sub);
    stsl_anchor_release(&li->anchor);
    return 0;
}

static int listener_gc(lua_State *L)
{
    struct llistener *li = check_listener(L, 1);
    sts_timer_stop(sts_loop_default(), &li->work);
    sts_timer_stop(sts_loop_default(), &li->sweep);
    drop_jobs(li);
    sts_registry_free(&li->sessions);
    free(li->filter);
    free(li->pub);
    free(li->trust_path);
    free(li->seen);
    li->filter = li->pub = NULL;
    li->seen = NULL;
    sts_session_shared_free(li->shared); /* the sessions still open hold their own references */
    li->shared = NULL;
    mbedtls_platform_zeroize(&li->policy, sizeof li->policy);
    mbedtls_platform_zeroize(li->secret, sizeof li->secret);
    return 0;
}

void stsl_open_listener(lua_State *L)
{
    static const luaL_Reg meta[] = { { "__close", listener_close }, { "__gc", listener_gc }, { NULL, NULL } };
    static const luaL_Reg methods[] = {
        { "sessions", listener_sessions }, { "stats", listener_stats }, { "reload_trust", listener_reload_trust },
        { "close", listener_close }, { NULL, NULL },
    };
    stsl_new_class(L, LISTENER_MT, meta, methods);
    lua_pushcfunction(L, l_listen);
    lua_setfield(L, -2, "listen");
}
