/* The loop as scripts see it: sts.run, sts.stop, timers, tasks and futures.
 *
 * Everything runs on the one loop (src/loop). Lua is entered only from it:
 * timer and message callbacks run through stsl_pcall, so an error in a
 * handler is logged with its traceback and the loop goes on. Calls that wait
 * go through futures (see internal.h): they run the loop from the main chunk
 * and yield from a task; from a handler they are an error, never a nested
 * loop.
 *
 * The clean shutdown lives here too: SIGTERM and SIGINT, while the script has
 * no handler of its own for them and the loop runs, or sts.shutdown(), end
 * every session with its KILL, wait (bounded) for what the clients queued at
 * QoS 1/2, disconnect them (so no will fires) and exit 0. systemd hears
 * READY=1 when sts.run first runs the loop and STOPPING=1 as the shutdown
 * begins. SIGHUP, likewise, has every listener read its trust file again. */
#include "lua/internal.h"
#include "lua/group.h"
#include "loop/loop.h"
#include "loop/signals.h"
#include "mqtt/client.h"
#include "util/error.h"
#include "util/log.h"
#include "util/sd_notify.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define CLIENT_MT "sts.client"
/* How long a shutdown waits for the brokers to acknowledge what is queued. */
#define DEFAULT_FLUSH_SECONDS 5.0

#define FUTURE_MT "sts.future"
#define TIMER_MT "sts.timer"
#define WAITER_MT "sts.waiter"

static lua_State *main_thread;
static int stop_requested;
static unsigned long handler_errors;

/* A shutdown asked for (by a signal's default or sts.shutdown), done once the
 * loop's turn has ended, by whichever run of the loop sees it. */
static struct {
    int asked, running;
    const char *why;   /* "SIGTERM", "SIGINT" or "sts.shutdown" */
    double flush;      /* seconds */
} quit;

/* Registry keys (their addresses are unique). */
static const char TASKS = 't';   /* coroutine -> true, for every live task */
static const char READY = 'r';   /* array of tasks to resume on the next turn */
static const char AWAITING = 'a';/* sentinel a task yields when it waits on a future */
static const char SHUTDOWN = 's'; /* userdata whose __gc runs the closing phase at lua_close */

lua_State *stsl_main(void)
{
    return main_thread;
}

static struct sts_loop *loop(void)
{
    return sts_loop_default();
}

/* --- protected calls ------------------------------------------------------- */

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static void report_error(const char *what, const char *trace)
{
    handler_errors++;
    sts_error("error in %s: %s", what, trace);
}

int stsl_pcall(lua_State *L, int nargs, int nresults, const char *what)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    if (rc != LUA_OK) {
        report_error(what, lua_tostring(L, -1));
        lua_pop(L, 2);
        return 0;
    }
    lua_remove(L, base);
    return 1;
}

/* --- tasks ------------------------------------------------------------------ */

static void push_registry_table(lua_State *L, const void *key)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, key);
    }
}

static int is_task(lua_State *L, lua_State *co)
{
    push_registry_table(L, &TASKS);
    lua_pushthread(co);
    lua_xmove(co, L, 1);
    int found = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return found;
}

static void forget_task(lua_State *L, lua_State *co)
{
    push_registry_table(L, &TASKS);
    lua_pushthread(co);
    lua_xmove(co, L, 1);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

static struct sts_timer wake_timer;

static void schedule(lua_State *L, lua_State *co)
{
    push_registry_table(L, &READY);
    lua_pushthread(co);
    lua_xmove(co, L, 1);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
    if (!sts_timer_active(&wake_timer)) sts_timer_start(loop(), &wake_timer, 0, 0);
}

/* Runs a task until it waits, yields or ends. */
static void resume_task(lua_State *L, lua_State *co, int nargs)
{
    int nres = 0;
    int rc = lua_resume(co, L, nargs, &nres);
    if (rc == LUA_YIELD) {
        int awaiting = nres == 1 && lua_touserdata(co, -1) == (void *)&AWAITING;
        lua_pop(co, nres);
        /* A bare coroutine.yield() in a task lets the loop turn once. */
        if (!awaiting) schedule(L, co);
        return;
    }
    if (rc != LUA_OK) {
        luaL_traceback(L, co, lua_tostring(co, -1), 0);
        report_error("task", lua_tostring(L, -1));
        lua_pop(L, 1);
        lua_resetthread(co); /* closes its pending to-be-closed variables */
    }
    forget_task(L, co);
}

static void wake_ready(struct sts_timer *t, void *ud)
{
    lua_State *L = main_thread;
    (void)t;
    (void)ud;
    /* Take the whole queue: tasks it wakes may queue more for the next turn. */
    push_registry_table(L, &READY);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &READY);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_State *co = lua_tothread(L, -1);
        lua_pop(L, 1);
        if (lua_status(co) == LUA_YIELD) resume_task(L, co, 0);
    }
    lua_pop(L, 1);
}

static int l_task(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int nargs = lua_gettop(L) - 1;
    lua_State *co = lua_newthread(L);
    push_registry_table(L, &TASKS);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_insert(L, 1);            /* co, fn, args... */
    lua_xmove(L, co, nargs + 1); /* fn and args move to the task */
    /* Start it at once, as OpenResty's spawn does: it runs until it first waits. */
    resume_task(L, co, nargs);
    return 1;
}

/* --- futures ----------------------------------------------------------------- */

struct future {
    int done;
};

struct waiter {
    struct sts_timer timer;   /* the timeout, when there is one */
    int self_ref;             /* keeps this waiter alive while it waits */
    int active;
};

static struct future *check_future(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, FUTURE_MT);
}

void stsl_future_new(lua_State *L)
{
    struct future *f = lua_newuserdatauv(L, sizeof *f, 1);
    f->done = 0;
    lua_newtable(L); /* { n = count, values..., waiters = { [waiter] = thread } } */
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, FUTURE_MT);
}

/* Wakes a waiting task: its wait then finds the future resolved or not. */
static void release_waiter(lua_State *L, struct waiter *w, lua_State *co)
{
    if (!w->active) return;
    w->active = 0;
    sts_timer_stop(loop(), &w->timer);
    luaL_unref(L, LUA_REGISTRYINDEX, w->self_ref);
    schedule(L, co);
}

void stsl_future_resolve(lua_State *L, int idx, int n)
{
    idx = lua_absindex(L, idx);
    struct future *f = check_future(L, idx);
    if (f->done) {
        lua_pop(L, n);
        return;
    }
    f->done = 1;
    lua_getiuservalue(L, idx, 1);
    lua_insert(L, -n - 1);
    /* Stack: uv, v1..vn; while vi is on top, uv sits just below v1..vi. */
    for (int i = n; i >= 1; i--) lua_rawseti(L, -(i + 1), i);
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    if (lua_getfield(L, -1, "waiters") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            release_waiter(L, lua_touserdata(L, -2), lua_tothread(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 2);
}

static int push_future_values(lua_State *L, int idx)
{
    struct future *f = check_future(L, idx);
    if (!f->done) {
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return 2;
    }
    lua_getiuservalue(L, idx, 1);
    lua_getfield(L, -1, "n");
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n, "too many results");
    for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1);
    return n;
}

static void waiter_timeout(struct sts_timer *t, void *ud)
{
    struct waiter *w = ud;
    lua_State *L = main_thread;
    (void)t;
    /* Find our thread through the registry reference that keeps us alive. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->self_ref);
    lua_getiuservalue(L, -1, 1);
    lua_State *co = lua_tothread(L, -1);
    release_waiter(L, w, co);
    lua_pop(L, 2);
}

static int await_continue(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    return push_future_values(L, (int)ctx);
}

static int await_in_task(lua_State *L, int idx, double timeout)
{
    struct waiter *w = lua_newuserdatauv(L, sizeof *w, 1);
    sts_timer_init(&w->timer, waiter_timeout, w);
    luaL_setmetatable(L, WAITER_MT);
    lua_pushthread(L);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    w->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    w->active = 1;
    if (timeout >= 0 && isfinite(timeout)) sts_timer_start(loop(), &w->timer, timeout, 0);

    lua_getiuservalue(L, idx, 1);
    if (lua_getfield(L, -1, "waiters") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "waiters");
    }
    lua_pushvalue(L, -3);
    lua_pushthread(L);
    lua_rawset(L, -3);
    lua_pop(L, 3);
    lua_pushlightuserdata(L, (void *)&AWAITING);
    return lua_yieldk(L, 1, idx, await_continue);
}

static void shut_down(lua_State *L);

static void notify(const char *state)
{
    int rc = sts_sd_notify(state);
    if (rc < 0) sts_warn("sd_notify %s: NOTIFY_SOCKET=%s: %s", state, getenv("NOTIFY_SOCKET"),
                         rc == STS_ERR_IO ? strerror(errno) : "not an absolute path or @name");
}

/* Runs the loop until *done, the deadline passes, or nothing is left that
 * could make *done true; a failing poll() is an error. A shutdown asked for
 * meanwhile is done here, and does not return. While the loop runs, SIGTERM
 * and SIGINT ask for one (unless the script watches them). ready: say
 * READY=1 first, once the signals are served, since a service manager may
 * send SIGTERM as soon as it reads it. */
static void run_until(lua_State *L, const int *done, double deadline, const char *who, int ready)
{
    int serving = sts_signal_serve_defaults(1);
    if (ready) notify("READY=1");
    while (!*done && !quit.asked) {
        double left = deadline - sts_now();
        if (left <= 0) break;
        int rc = sts_loop_once(loop(), isfinite(left) ? left : -1);
        if (rc == STS_LOOP_EMPTY) break;
        if (rc < 0) {
            sts_signal_serve_defaults(serving);
            luaL_error(L, "%s: the event loop failed: %s", who, rc == STS_ERR_IO ? strerror(errno) : sts_strerror(rc));
        }
    }
    sts_signal_serve_defaults(serving);
    if (quit.asked && !quit.running) shut_down(L);
}

static int await_in_main(lua_State *L, int idx, double timeout)
{
    struct future *f = check_future(L, idx);
    run_until(L, &f->done, sts_now() + (timeout >= 0 ? timeout : INFINITY), "wait", 0);
    return push_future_values(L, idx);
}

int stsl_future_await(lua_State *L, int idx, double timeout)
{
    idx = lua_absindex(L, idx);
    if (check_future(L, idx)->done) return push_future_values(L, idx);
    if (L != main_thread) {
        if (!is_task(L, L))
            return luaL_error(L, "cannot wait in a coroutine that is not an sts.task");
        return await_in_task(L, idx, timeout);
    }
    if (sts_loop_dispatching(loop()))
        return luaL_error(L, "cannot wait inside a handler; use sts.task(fn) to run code that waits");
    return await_in_main(L, idx, timeout);
}

static double opt_timeout(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx)) return -1;
    double t = luaL_checknumber(L, idx);
    luaL_argcheck(L, t >= 0, idx, "timeout must not be negative");
    return t;
}

static int l_future(lua_State *L)
{
    stsl_future_new(L);
    return 1;
}

static int future_set(lua_State *L)
{
    check_future(L, 1);
    stsl_future_resolve(L, 1, lua_gettop(L) - 1);
    return 0;
}

static int future_wait(lua_State *L)
{
    double timeout = opt_timeout(L, 2);
    lua_settop(L, 1);
    return stsl_future_await(L, 1, timeout);
}

static int future_done(lua_State *L)
{
    lua_pushboolean(L, check_future(L, 1)->done);
    return 1;
}

static int waiter_gc(lua_State *L)
{
    struct waiter *w = luaL_checkudata(L, 1, WAITER_MT);
    sts_timer_stop(loop(), &w->timer);
    return 0;
}

/* --- timers --------------------------------------------------------------------- */

struct ltimer {
    struct sts_timer timer;
    int self_ref;   /* LUA_NOREF unless armed: an armed timer is never collected */
};

static void ltimer_disarm(lua_State *L, struct ltimer *t)
{
    sts_timer_stop(loop(), &t->timer);
    luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
    t->self_ref = LUA_NOREF;
}

static void ltimer_fire(struct sts_timer *timer, void *ud)
{
    struct ltimer *t = ud;
    lua_State *L = main_thread;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
    lua_getiuservalue(L, -1, 1);
    if (!sts_timer_active(&t->timer)) ltimer_disarm(L, t); /* one-shot: now collectable */
    (void)timer;
    stsl_pcall(L, 0, 0, "timer callback");
    lua_pop(L, 1);
}

static int start_timer(lua_State *L, double interval)
{
    double delay = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_argcheck(L, delay >= 0 && isfinite(delay), 1, "must be a non-negative number of seconds");
    luaL_argcheck(L, interval >= 0, 1, "interval must be positive");
    struct ltimer *t = lua_newuserdatauv(L, sizeof *t, 1);
    sts_timer_init(&t->timer, ltimer_fire, t);
    t->self_ref = LUA_NOREF;
    luaL_setmetatable(L, TIMER_MT);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    sts_timer_start(loop(), &t->timer, delay, interval);
    lua_pushvalue(L, -1);
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

static int l_after(lua_State *L)
{
    return start_timer(L, 0);
}

static int l_every(lua_State *L)
{
    double interval = luaL_checknumber(L, 1);
    luaL_argcheck(L, interval > 0, 1, "interval must be positive");
    return start_timer(L, interval);
}

static int timer_cancel(lua_State *L)
{
    ltimer_disarm(L, luaL_checkudata(L, 1, TIMER_MT));
    return 0;
}

static int timer_active(lua_State *L)
{
    struct ltimer *t = luaL_checkudata(L, 1, TIMER_MT);
    lua_pushboolean(L, sts_timer_active(&t->timer));
    return 1;
}

/* --- the loop --------------------------------------------------------------------- */


static int l_run(lua_State *L)
{
    static int ready_sent;
    double limit = opt_timeout(L, 1);
    if (L != main_thread || sts_loop_dispatching(loop()))
        return luaL_error(L, "sts.run cannot be called from a handler or a task");
    /* The script has set up what it serves and hands over to the loop. */
    int ready = !ready_sent;
    ready_sent = 1;
    stop_requested = 0;
    run_until(L, &stop_requested, sts_now() + (limit >= 0 ? limit : INFINITY), "sts.run", ready);
    stop_requested = 0;
    return 0;
}

static int l_stop(lua_State *L)
{
    (void)L;
    stop_requested = 1;
    return 0;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, sts_now());
    return 1;
}

static int l_time(lua_State *L)
{
    lua_pushnumber(L, sts_wall_now());
    return 1;
}

static int l_sleep(lua_State *L)
{
    double seconds = luaL_checknumber(L, 1);
    luaL_argcheck(L, seconds >= 0, 1, "must not be negative");
    lua_settop(L, 0);
    stsl_future_new(L); /* never resolved: the wait ends by its timeout */
    return stsl_future_await(L, 1, seconds);
}

static int l_stats(lua_State *L)
{
    lua_createtable(L, 0, 1);
    lua_pushinteger(L, (lua_Integer)handler_errors);
    lua_setfield(L, -2, "handler_errors");
    return 1;
}

/* --- the clean shutdown ---------------------------------------------------------- */

/* Pushes an array of the open objects of metatable `mt`: every one is
 * anchored, so the registry holds them all. */
static int push_anchored(lua_State *L, const char *mt)
{
    int n = 0;
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, LUA_REGISTRYINDEX)) {
        if (luaL_testudata(L, -1, mt)) {
            lua_pushvalue(L, -1);
            lua_rawseti(L, -4, ++n);
        }
        lua_pop(L, 1);
    }
    return n;
}

/* obj:close("shutdown") for each object in the array on top. */
static void close_each(lua_State *L)
{
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
        lua_getfield(L, -1, "close");
        lua_insert(L, -2);
        lua_pushliteral(L, "shutdown");
        stsl_pcall(L, 2, 0, "shutdown");
    }
    lua_pop(L, 2); /* the nil that ended the array, and the array */
}

/* The open clients' sts_mqtt, each in turn, from the array at idx: call
 * with i = 0 first; NULL after the last. */
static struct sts_mqtt *next_mqtt(lua_State *L, int idx, lua_Integer *i)
{
    while (lua_rawgeti(L, idx, ++*i) != LUA_TNIL) {
        struct sts_mqtt *m = stsl_client_mqtt(lua_touserdata(L, -1));
        lua_pop(L, 1);
        if (m) return m;
    }
    lua_pop(L, 1);
    return NULL;
}

/* The QoS 1/2 messages the clients in the array at idx wait to have acknowledged. */
static unsigned long unacked(lua_State *L, int idx)
{
    unsigned long n = 0;
    lua_Integer i = 0;
    for (struct sts_mqtt *m; (m = next_mqtt(L, idx, &i));) n += sts_mqtt_stats(m)->unacked;
    return n;
}

static int drained(lua_State *L, int idx)
{
    lua_Integer i = 0;
    for (struct sts_mqtt *m; (m = next_mqtt(L, idx, &i));)
        if (!sts_mqtt_drained(m)) return 0;
    return 1;
}

/* Runs the loop until the clients have written, and had acknowledged, what
 * they queued, or the deadline; true if they have. */
static int flush_clients(lua_State *L, int clients, double deadline)
{
    while (!drained(L, clients)) {
        double left = deadline - sts_now();
        if (left <= 0 || sts_loop_once(loop(), left) < 0) return 0;
    }
    return 1;
}

static void shut_down(lua_State *L)
{
    quit.running = 1;
    notify("STOPPING=1");
    lua_settop(L, 0); /* we never return to what called */
    /* Closed in this order, before the flush so that what they send is
     * flushed too: each group member leaves (over its session), then each
     * session's peer gets its KILL, saying "shutdown". */
    int ngroups = push_anchored(L, GROUP_MT);
    int nsessions = push_anchored(L, SESSION_MT);
    int nlisteners = push_anchored(L, LISTENER_MT);
    int nclients = push_anchored(L, CLIENT_MT); /* 4 */
    for (int kind = 1; kind <= 3; kind++) {
        lua_pushvalue(L, kind);
        close_each(L);
    }
    sts_info("%s: shutting down: %d sessions, %d listeners, %d groups, %d clients; "
             "%lu QoS 1/2 messages to flush (up to %g s)",
             quit.why, nsessions, nlisteners, ngroups, nclients, unacked(L, 4), quit.flush);
    if (!flush_clients(L, 4, sts_now() + quit.flush))
        sts_warn("%s: %lu QoS 1/2 messages not acknowledged after %g s", quit.why, unacked(L, 4), quit.flush);
    close_each(L); /* DISCONNECT: the brokers publish no will */
    sts_loop_run_closing(loop());
    sts_info("%s: shut down cleanly", quit.why);
    /* As os.exit(0, true): the state closes first, and with it the rest. */
    lua_close(L);
    exit(EXIT_SUCCESS);
}

/* SIGHUP with no handler of the script's own: every listener reads its
 * trust file again; a process with none ends, as SIGHUP's default would. */
static void reload_on_signal(int signo, void *ud)
{
    lua_State *L = main_thread;
    int top = lua_gettop(L);
    (void)ud;
    int n = push_anchored(L, LISTENER_MT);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, top + 1, i);
        if (lua_getfield(L, -1, "reload_trust") == LUA_TFUNCTION) {
            lua_insert(L, -2);
            if (stsl_pcall(L, 1, 2, "SIGHUP reload") && !lua_toboolean(L, -2))
                sts_warn("SIGHUP: a listener kept its trust list: %s", lua_tostring(L, -1));
        }
        lua_settop(L, top + 1);
    }
    lua_settop(L, top);
    if (n > 0) return;
    sts_signal_default(loop(), signo, NULL, NULL);
    raise(signo);
}

static void ask_shutdown(const char *why, double flush)
{
    if (quit.asked) return;
    quit.asked = 1;
    quit.why = why;
    quit.flush = flush;
}

static void shutdown_on_signal(int signo, void *ud)
{
    (void)ud;
    ask_shutdown(signo == SIGTERM ? "SIGTERM" : "SIGINT", DEFAULT_FLUSH_SECONDS);
}

/* sts.shutdown([flush_seconds]): in the main chunk, now; from a handler or a
 * task, once the loop's turn is over. */
static int l_shutdown(lua_State *L)
{
    double flush = luaL_optnumber(L, 1, DEFAULT_FLUSH_SECONDS);
    luaL_argcheck(L, flush >= 0 && isfinite(flush), 1, "must be a non-negative number of seconds");
    ask_shutdown("sts.shutdown", flush);
    if (L == main_thread && !sts_loop_dispatching(loop()) && !quit.running) shut_down(L);
    return 0;
}

/* sts.notify(state) -> true | false (no service manager listens) | nil, message */
static int l_notify(lua_State *L)
{
    int rc = sts_sd_notify(luaL_checkstring(L, 1));
    if (rc < 0)
        return stsl_fail(L, "sd_notify: NOTIFY_SOCKET=%s: %s", getenv("NOTIFY_SOCKET"),
                         rc == STS_ERR_IO ? strerror(errno) : "not an absolute path or @name");
    lua_pushboolean(L, rc > 0);
    return 1;
}

/* At lua_close, what the loop still has to finalize goes before the state;
 * then SIGTERM and SIGINT end the process again. */
static int run_closing_phase(lua_State *L)
{
    (void)L;
    sts_loop_run_closing(loop());
    sts_signal_default(loop(), SIGTERM, NULL, NULL);
    sts_signal_default(loop(), SIGINT, NULL, NULL);
    sts_signal_default(loop(), SIGHUP, NULL, NULL);
    return 0;
}

void stsl_open_loop(lua_State *L)
{
    static const luaL_Reg functions[] = {
        { "run", l_run }, { "stop", l_stop }, { "now", l_now }, { "time", l_time }, { "sleep", l_sleep },
        { "after", l_after }, { "every", l_every }, { "task", l_task },
        { "future", l_future }, { "stats", l_stats }, { "shutdown", l_shutdown }, { "notify", l_notify },
        { NULL, NULL },
    };
    static const luaL_Reg future_methods[] = {
        { "set", future_set }, { "wait", future_wait }, { "done", future_done }, { NULL, NULL },
    };
    static const luaL_Reg timer_methods[] = {
        { "cancel", timer_cancel }, { "active", timer_active }, { NULL, NULL },
    };

    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    main_thread = lua_tothread(L, -1);
    lua_pop(L, 1);
    sts_timer_init(&wake_timer, wake_ready, NULL);
    /* Made first, so finalized last: after every object that may queue. */
    stsl_at_lua_close(L, &SHUTDOWN, run_closing_phase);
    /* 1 (an ignored signal, left so) is not a failure; the others cannot happen here. */
    (void)sts_signal_default(loop(), SIGTERM, shutdown_on_signal, NULL);
    (void)sts_signal_default(loop(), SIGINT, shutdown_on_signal, NULL);
    (void)sts_signal_default(loop(), SIGHUP, reload_on_signal, NULL);
    static const luaL_Reg no_meta[] = { { NULL, NULL } };
    static const luaL_Reg waiter_meta[] = { { "__gc", waiter_gc }, { NULL, NULL } };
    stsl_new_class(L, FUTURE_MT, no_meta, future_methods);
    stsl_new_class(L, TIMER_MT, no_meta, timer_methods);
    stsl_new_class(L, WAITER_MT, waiter_meta, no_meta);
    luaL_setfuncs(L, functions, 0);
}
