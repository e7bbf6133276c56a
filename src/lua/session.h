/* What the session binding files share: lsession_options.c (the options of
 * sts.handshake and sts.listen), lsession.c (the session object and
 * sts.handshake) and llisten.c (sts.listen, one responder for many peers).
 * Private to src/lua. */
#ifndef STS_LUA_SESSION_H
#define STS_LUA_SESSION_H

#include "lua/internal.h"
#include "crypto/keyfile.h"
#include "crypto/sizes.h"
#include "loop/loop.h"
#include "mqtt/client.h"
#include "proto/session.h"
#include "util/backlog.h"

#define SESSION_MT "sts.session"
#define LISTENER_MT "sts.listener"
#define TRUST_MT "sts.trust"

/* The settings a session is made with. */
struct policy {
    struct sts_session_config cfg;
    uint8_t identity[STS_X25519_LEN], identity_pub[STS_X25519_LEN], peer[STS_X25519_LEN];
    int qos;
    double wait;                /* responder: how long to wait for an initiator */
    int trust_any;              /* trust = "any": every authenticated key (the caller authorizes) */
};

struct llistener;
struct lsession;

/* A session userdata's user values. A listener's session has only the first
 * UV_LISTENER_COUNT (its listener holds the client and the trust list): a
 * listener holds thousands. */
enum stsl_session_uv {
    UV_ON_MESSAGE = 1, UV_ON_CLOSE, UV_ON_ESTABLISHED, UV_ON_IDLE,
    UV_INFO,  /* the table handed with every message, made with the first */
    UV_OWNER, /* the listener that made it, else the client it publishes through */
    UV_LISTENER_COUNT = UV_OWNER,
    UV_TRUST, UV_PENDING,
    UV_COUNT = UV_PENDING
};

/* A consumer of a session in C (a group member, the key server): it takes
 * the session's messages instead of the script, and hears when a
 * re-handshake replaces the keys and when the session ends. When `quiet`,
 * the process is finalizing: run no script code. */
struct stsl_session_tap {
    void (*message)(void *ud, struct lsession *ls, const uint8_t *data, size_t len);
    void (*rekeyed)(void *ud, struct lsession *ls);
    void (*ended)(void *ud, struct lsession *ls, const char *why, int quiet);
    void *ud;
};

struct lsession {
    struct sts_session *s;      /* NULL once finalized */
    struct lclient *client;
    const struct sts_trust *trust;
    struct stsl_session_tap tap; /* message == NULL: none */
    struct llistener *listener; /* the listener that made it, or NULL */
    struct sts_mqtt_sub *sub;   /* where its frames come from */
    char *topic_in, *topic_out; /* one allocation, at topic_in */
    /* The engine's next deadline, or the give-up time, or (kept_due) now for
     * kept messages to go to a new handler; */
    struct sts_timer timer;
    double deadline;            /* the time it was last armed for */
    /* Not established by then (0: never), a listener's session is dropped
     * and sts.handshake's responder stops waiting. */
    double give_up;
    struct sts_backlog *kept;   /* messages that came before a message handler, or NULL */
    struct stsl_anchor anchor;
    uint64_t rejections;
    double last_seen;           /* when the last frame that authenticated (or the first handshake message) came */
    uint64_t bytes_in, bytes_out;
    uint8_t peer_key[STS_X25519_LEN]; /* the authenticated peer's static key, once established (not NN) */
    /* The peer key the trust check saw for the frame being read, and why it
     * refused it (an enum stsl_refusal), for the listener's rejections. */
    uint8_t seen_key[STS_X25519_LEN];
    int busy;                   /* inside the engine: a closed listener session's is freed after */
    unsigned qos : 2;
    unsigned trust_any : 1;
    unsigned has_peer_key : 1;
    unsigned has_seen_key : 1;
    unsigned refusal : 2;
    unsigned established : 1;   /* ESTABLISHED was reported once */
    unsigned closing : 1;       /* stsl_session_close has begun */
    unsigned quiet : 1;         /* closing from a finalizer: no script code runs */
    unsigned finalizing : 1;    /* being collected: the engine's events go nowhere */
    unsigned told_end : 1;      /* the end was reported to the script once */
    unsigned kept_due : 1;      /* kept messages wait for the timer */
};

/* Why a trust check refused a key. */
enum stsl_refusal { STSL_REFUSAL_NONE, STSL_REFUSAL_UNTRUSTED, STSL_REFUSAL_NAME, STSL_REFUSAL_BINDING };

/* --- options (lsession_options.c) --- */
extern const char *const stsl_session_options[];
/* Reads the options table at idx into p and pushes the trust list (a TRUST_MT
 * userdata, or nil). Returns 1, or 0 with an error message pushed for a key
 * or trust file that cannot be used (an expected failure). */
int stsl_read_policy(lua_State *L, int idx, struct policy *p, int responder);
const char *stsl_required_topic(lua_State *L, int idx, const char *key);
/* Pushes a trust userdata read from the file at `path` and returns 1, or
 * returns 0 with an error message pushed (naming the file and line). */
int stsl_push_trust_file(lua_State *L, const char *path);
enum sts_role stsl_parse_role(lua_State *L, const char *role);
/* A cipher suite's name ("25519_ChaChaPoly_SHA256"...); an unknown one is an error. */
enum sts_suite stsl_parse_suite(lua_State *L, const char *name);
void stsl_open_trust(lua_State *L);

/* --- sessions (lsession.c) --- */
struct lsession *stsl_check_session(lua_State *L, int idx);
/* Pushes a new session publishing through the client at `client`, trusting
 * the list at `trust` (nil: none). p's identity is wiped. Returns it, or
 * NULL with an error message pushed. */
struct lsession *stsl_session_new(lua_State *L, int client, int trust, struct policy *p,
                                  enum sts_role role, const char *topic_in, const char *topic_out);
/* The settings a listener's responders share, from p (its keys copied). */
int stsl_session_shared(const struct policy *p, struct sts_session_shared **out);
/* Pushes a new responder of the listener li (the userdata at `listener`),
 * with the settings sh made from li's policy p. As stsl_session_new. */
struct lsession *stsl_listener_session_new(lua_State *L, int listener, struct llistener *li, struct lclient *client,
                                           const struct sts_trust *trust, const struct policy *p,
                                           struct sts_session_shared *sh, const char *topic_in,
                                           const char *topic_out);
/* The client a session publishes through is closing (finalizing: being
 * collected, no script code runs): the session at idx ends with it. */
void stsl_session_client_closed(lua_State *L, int idx, int finalizing);
/* A frame for the session, as it came from the broker. */
void stsl_session_receive(struct lsession *ls, const struct sts_mqtt_message *msg);
void stsl_session_close(lua_State *L, int idx, struct lsession *ls, const char *reason);
/* Sends a message from C: 0, STS_ERR_STATE (not established or closed),
 * STS_ERR_IO (the client is not connected at QoS 0), or the engine's error. */
int stsl_session_write(struct lsession *ls, const uint8_t *data, size_t len);
/* Sets (tap NULL: removes) the session's C consumer. */
void stsl_session_tap(struct lsession *ls, const struct stsl_session_tap *tap);

/* --- listeners (llisten.c), told by their sessions --- */
void stsl_listener_established(lua_State *L, int session, struct lsession *ls);
void stsl_listener_forget(struct lsession *ls);
/* A frame or handshake of a listener's session was refused (the engine's reason name). */
void stsl_listener_rejected(struct lsession *ls, const char *reason);
/* May a listener's session answer unauthenticated input with a RESYNC now? */
int stsl_listener_may_resync(struct llistener *li);
/* The refusal, if any, of key entry e (NULL: not in the trust list) on a listener's topic. */
enum stsl_refusal stsl_listener_refusal(const struct llistener *li, const char *topic,
                                        const struct sts_trust_entry *e);
void stsl_open_listener(lua_State *L);

#endif
