/* The options of sts.handshake and sts.listen, read into a struct policy,
 * and trust lists as userdata (the keys stay in C). */
#include "lua/session.h"
#include "crypto/x25519.h"
#include "util/log.h"

#include <mbedtls/platform_util.h>
#include <mosquitto.h>
#include <string.h>

const char *const stsl_session_options[] = {
    "role", "pub", "sub", "identity", "peer", "trust", "pattern", "suite", "timeout", "qos",
    "rekey", "retransmit", "wait", NULL,
};

static int trust_gc(lua_State *L)
{
    sts_trust_free(luaL_checkudata(L, 1, TRUST_MT));
    return 0;
}

void stsl_open_trust(lua_State *L)
{
    static const luaL_Reg meta[] = { { "__gc", trust_gc }, { NULL, NULL } };
    static const luaL_Reg no_methods[] = { { NULL, NULL } };
    stsl_new_class(L, TRUST_MT, meta, no_methods);
}

int stsl_push_trust_file(lua_State *L, const char *path)
{
    char err[512];
    struct sts_trust *t = lua_newuserdatauv(L, sizeof *t, 0);
    memset(t, 0, sizeof *t);
    luaL_setmetatable(L, TRUST_MT);
    if (sts_trust_load(t, path, err, sizeof err) != 0) {
        lua_pushstring(L, err);
        return 0;
    }
    /* A binding that is no filter would match nothing, or not what was meant. */
    for (size_t i = 0; i < t->n; i++) {
        const struct sts_trust_entry *e = &t->entries[i];
        if (e->binding[0] && mosquitto_sub_topic_check(e->binding) != MOSQ_ERR_SUCCESS) {
            lua_pushfstring(L, "%s: the key named '%s': topic binding '%s' is not a valid MQTT filter", path,
                            e->name, e->binding);
            return 0;
        }
    }
    return 1;
}

static enum sts_pattern parse_pattern(lua_State *L, const char *name)
{
    if (strcmp(name, "XX") == 0) return STS_PATTERN_XX;
    if (strcmp(name, "IK") == 0) return STS_PATTERN_IK;
    if (strcmp(name, "NN") == 0) return STS_PATTERN_NN;
    return luaL_error(L, "option 'pattern' must be \"XX\", \"IK\" or \"NN\", got \"%s\"", name);
}

enum sts_suite stsl_parse_suite(lua_State *L, const char *name)
{
    static const char *const names[] = {
        "25519_ChaChaPoly_SHA256", "25519_AESGCM_SHA256", "25519_ChaChaPoly_SHA512", "25519_AESGCM_SHA512", NULL,
    };
    for (int i = 0; names[i]; i++)
        if (strcmp(name, names[i]) == 0) return (enum sts_suite)(i + 1);
    return luaL_error(L, "option 'suite' must be one of 25519_ChaChaPoly_SHA256, 25519_AESGCM_SHA256, "
                         "25519_ChaChaPoly_SHA512, 25519_AESGCM_SHA512");
}

static void read_rekey(lua_State *L, int idx, struct sts_session_config *cfg)
{
    static const char *const known[] = { "messages", "seconds", NULL };
    if (!stsl_opt_table(L, idx, "rekey")) return;
    int t = lua_gettop(L);
    stsl_check_options(L, t, "rekey", known);
    lua_Integer messages = stsl_opt_integer(L, t, "messages", 0);
    double seconds = stsl_opt_number(L, t, "seconds", 0);
    if (messages < 0 || (uint64_t)messages > ((uint64_t)1 << 32)) luaL_error(L, "option 'rekey.messages' must be from 1 to 2^32");
    if (seconds < 0) luaL_error(L, "option 'rekey.seconds' must be positive");
    cfg->rekey_messages = (uint64_t)messages;
    cfg->rekey_seconds = seconds;
    lua_pop(L, 1);
}

/* identity and peer: the keys, read where they are given. */
static int read_keys(lua_State *L, int idx, struct policy *p, enum sts_pattern chosen)
{
    lua_getfield(L, idx, "identity");
    if (!lua_isnil(L, -1)) {
        if (!stsl_check_key(L, -1, p->identity, STS_KEY_PRIVATE, "identity")) return 0;
        if (sts_x25519_public(p->identity_pub, p->identity) != 0) luaL_error(L, "identity: unusable key");
        p->cfg.static_priv = p->identity;
        p->cfg.static_pub = p->identity_pub;
    } else if (chosen != STS_PATTERN_NN) {
        luaL_error(L, "option 'identity' is required (a private key file or text), unless pattern = \"NN\"");
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "peer");
    if (!lua_isnil(L, -1)) {
        if (!stsl_check_key(L, -1, p->peer, STS_KEY_PUBLIC, "peer")) return 0;
        p->cfg.peer_static = p->peer;
    }
    lua_pop(L, 1);
    return 1;
}

int stsl_read_policy(lua_State *L, int idx, struct policy *p, int responder)
{
    memset(p, 0, sizeof *p);
    const char *pattern = stsl_opt_string(L, idx, "pattern", NULL);
    const char *suite = stsl_opt_string(L, idx, "suite", NULL);
    const char *trust = stsl_opt_string(L, idx, "trust", NULL);
    p->qos = (int)stsl_opt_integer(L, idx, "qos", 1);
    p->wait = stsl_opt_number(L, idx, "wait", -1);
    p->cfg.handshake_timeout = stsl_opt_number(L, idx, "timeout", STS_SESSION_HANDSHAKE_TIMEOUT);
    p->cfg.retransmit = stsl_opt_number(L, idx, "retransmit", 0);
    if (p->qos < 0 || p->qos > 2) luaL_error(L, "option 'qos' must be 0, 1 or 2");
    if (p->cfg.handshake_timeout <= 0) luaL_error(L, "option 'timeout' must be positive");
    if (p->cfg.retransmit < 0) luaL_error(L, "option 'retransmit' must be positive");
    read_rekey(L, idx, &p->cfg);

    enum sts_pattern chosen = pattern ? parse_pattern(L, pattern) : 0;
    if (suite) p->cfg.suite = stsl_parse_suite(L, suite);
    if (responder) p->cfg.allowed_patterns = chosen ? STS_ALLOW(chosen) : 0;
    else p->cfg.pattern = chosen;
    if (!read_keys(L, idx, p, chosen)) {
        mbedtls_platform_zeroize(p->identity, sizeof p->identity);
        return 0;
    }
    if (chosen == STS_PATTERN_NN) {
        sts_warn("pattern NN: the session is encrypted but NOT authenticated; anyone on the path can impersonate the peer");
    } else if (!p->cfg.peer_static && !trust) {
        mbedtls_platform_zeroize(p->identity, sizeof p->identity);
        luaL_error(L, "an authenticated session needs option 'peer' (a pinned public key) or 'trust' (a file of accepted keys)");
    }
    if (!trust || (p->trust_any = strcmp(trust, "any") == 0)) {
        lua_pushnil(L);
        return 1;
    }
    if (stsl_push_trust_file(L, trust)) return 1;
    mbedtls_platform_zeroize(p->identity, sizeof p->identity);
    return 0;
}

const char *stsl_required_topic(lua_State *L, int idx, const char *key)
{
    const char *topic = stsl_opt_string(L, idx, key, NULL);
    if (!topic || !*topic) luaL_error(L, "option '%s' (a topic) is required", key);
    return topic;
}

enum sts_role stsl_parse_role(lua_State *L, const char *role)
{
    if (strcmp(role, "initiator") == 0 || strcmp(role, "master") == 0) return STS_ROLE_INITIATOR;
    if (strcmp(role, "responder") == 0 || strcmp(role, "slave") == 0) return STS_ROLE_RESPONDER;
    return luaL_error(L, "option 'role' must be \"initiator\" or \"responder\" (or \"master\"/\"slave\"), got \"%s\"", role);
}
