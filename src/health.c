/* SPDX-License-Identifier: ISC */
/*
 * health: readiness and liveness rules, the /health JSON document, and the
 * probes that keep readiness current.
 *
 * Liveness: /health/live answers 200 whenever it is answered at all: the
 * answer comes from the event loop, so an answer proves the loop turns.
 *
 * Readiness, /health/ready: 200 when pgmux accepts clients and every pool's
 * database is reachable; otherwise 503 with the first reason found:
 *   1. "shutting down"  once SIGINT/SIGTERM (or SHUTDOWN) started a shutdown;
 *   2. "paused"         while PAUSE or SIGUSR1 holds (until RESUME/SIGUSR2);
 *   3. "suspended"      while SUSPEND holds (until RESUME/SIGUSR2);
 *   4. "max_client_conn reached" while a new client would be refused;
 *   5. "database D unreachable: ..." for the first pool whose database is
 *      not reachable. A pool's database is reachable when the pool has a
 *      logged-in server connection open, or else when its last server login
 *      succeeded (a pool that never tried counts as fine) and the latest
 *      TCP probe of the database address did not fail. Pools of databases
 *      removed from the config are not counted.
 *
 * Why probes: a pool with no traffic has no server connections and makes no
 * logins, so nothing would notice PostgreSQL going away or coming back.
 * Once a second, for every database none of whose pools holds a server
 * connection, a TCP connect to the database address runs every 2 s and is
 * closed at once without sending a byte (PostgreSQL logs nothing for that).
 * A pool whose last login failed gets a real login retried every 2 s (30 s
 * after an authentication failure) while the address answers, so readiness
 * comes back without waiting for clients that a load balancer would no
 * longer send. A successful retry leaves one idle server in the pool, closed
 * by server_idle_timeout like any other.
 */
#include "health.h"

#include "admin.h"

#include "config.h"
#include "loop.h"
#include "pgmux.h"
#include "pool.h"
#include "server.h"
#include "stats.h"
#include "textbuf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEALTH_TICK           1.0  /* probe timer period */
#define HEALTH_PROBE_INTERVAL 2.0  /* TCP probe and login retry spacing per database */
#define HEALTH_PROBE_TIMEOUT  3.0  /* a TCP probe not connected by then failed */
#define HEALTH_AUTH_RETRY     30.0 /* login retry spacing after an authentication failure */

enum probe_state {
    PROBE_UNKNOWN = 0,
    PROBE_UP,
    PROBE_DOWN,
};

/* Probe state of one database (a database with a pool is never freed: the pointer stays valid). */
struct db_probe {
    ev_io io; /* the TCP probe's connect, while fd >= 0 */
    int fd;   /* owned; -1 when no probe is in flight */
    struct database *db;
    double started;        /* start of the in-flight or last TCP probe */
    double last_login_try; /* last login retry started by health */
    unsigned open_tick;    /* tick in which a pool of the database had a server open */
    enum probe_state state;
    char error[128]; /* why the last probe failed */
    struct db_probe *next;
};

static struct db_probe *probes;
static ev_timer health_timer;
static unsigned tick;

static struct db_probe *probe_find(const struct database *db)
{
    for (struct db_probe *pr = probes; pr; pr = pr->next)
        if (pr->db == db)
            return pr;
    return NULL;
}

static struct db_probe *probe_get(struct database *db)
{
    struct db_probe *pr = probe_find(db);
    if (pr)
        return pr;
    pr = calloc(1, sizeof(*pr));
    if (!pr)
        return NULL;
    pr->fd = -1;
    pr->db = db;
    pr->started = -HEALTH_PROBE_INTERVAL;
    pr->last_login_try = -HEALTH_AUTH_RETRY;
    pr->next = probes;
    probes = pr;
    return pr;
}

/* Logged-in server connections (every state but login). */
static int open_servers(const struct pool *p)
{
    return pool_server_count(p) - p->new_servers.count;
}

/*==== TCP probes ====*/

static void probe_finish(struct db_probe *pr, bool ok, int err)
{
    if (pr->fd >= 0) {
        ev_io_stop(loop_main, &pr->io);
        close(pr->fd);
        pr->fd = -1;
    }
    pr->state = ok ? PROBE_UP : PROBE_DOWN;
    if (ok)
        pr->error[0] = 0;
    else
        snprintf(pr->error, sizeof(pr->error), "%s",
                 err == ETIMEDOUT ? "connect timeout" : strerror(err));
}

static void probe_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct db_probe *pr = container_of(w, struct db_probe, io);
    int err = 0;
    socklen_t len = sizeof(err);
    (void)loop;
    (void)revents;
    if (getsockopt(pr->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    probe_finish(pr, err == 0, err);
}

static void probe_start(struct db_probe *pr, double now)
{
    const struct database *db = pr->db;
    pr->started = now;
    int fd = socket(db->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return; /* our own shortage (EMFILE...) says nothing about the database */
    if (connect(fd, (const struct sockaddr *)&db->addr, db->addrlen) == 0) {
        close(fd);
        probe_finish(pr, true, 0);
        return;
    }
    if (errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        probe_finish(pr, false, err);
        return;
    }
    pr->fd = fd;
    ev_io_init(&pr->io, probe_cb, fd, EV_WRITE);
    ev_io_start(loop_main, &pr->io);
}

static void health_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    double now = loop_now();
    struct list *item;
    struct db_probe *pr;
    (void)loop;
    (void)w;
    (void)revents;

    tick++;
    for (pr = probes; pr; pr = pr->next)
        if (pr->fd >= 0 && now - pr->started > HEALTH_PROBE_TIMEOUT)
            probe_finish(pr, false, ETIMEDOUT);
    if (G.shutting_down)
        return;

    for (item = G.pools.next; item != &G.pools; item = item->next) {
        struct pool *p = container_of(item, struct pool, head);
        if (p->db->dead)
            continue;
        pr = probe_get(p->db);
        if (pr && open_servers(p) > 0)
            pr->open_tick = tick;
    }
    for (pr = probes; pr; pr = pr->next) {
        if (pr->db->dead)
            continue;
        if (pr->open_tick == tick) {
            /* A live server connection says more than a probe could. */
            pr->state = PROBE_UP;
            pr->error[0] = 0;
        } else if (pr->fd < 0 && pr->db->addrlen > 0 &&
                   now - pr->started >= HEALTH_PROBE_INTERVAL) {
            probe_start(pr, now);
        }
    }
    if (G.paused)
        return;
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        struct pool *p = container_of(item, struct pool, head);
        if (p->last_login_ok || p->db->dead || p->db->paused || p->db->disabled ||
            pool_server_count(p) > 0 || now < p->next_connect)
            continue;
        pr = probe_find(p->db);
        if (!pr || pr->state == PROBE_DOWN)
            continue;
        double spacing = p->last_error_fatal_auth ? HEALTH_AUTH_RETRY : HEALTH_PROBE_INTERVAL;
        if (now - pr->last_login_try < spacing)
            continue;
        pr->last_login_try = now;
        server_launch(p);
    }
}

void health_start(void)
{
    ev_timer_init(&health_timer, health_tick, HEALTH_TICK, HEALTH_TICK);
    ev_timer_start(loop_main, &health_timer);
}

/*==== Rules ====*/

bool health_pool_reachable(const struct pool *p, char *why, size_t len)
{
    if (p->db->dead || open_servers(p) > 0)
        return true;
    if (!p->last_login_ok) {
        if (why)
            snprintf(why, len, "database %s (user %s) unreachable: %s", p->db->name, p->user->name,
                     p->last_error[0] ? p->last_error : "server login failed");
        return false;
    }
    const struct db_probe *pr = probe_find(p->db);
    if (pr && pr->state == PROBE_DOWN) {
        if (why)
            snprintf(why, len, "database %s unreachable: %s", p->db->name, pr->error);
        return false;
    }
    return true;
}

bool health_ready(char *why, size_t len)
{
    struct list *item;
    if (G.shutting_down) {
        snprintf(why, len, "shutting down");
        return false;
    }
    if (G.paused) {
        snprintf(why, len, "paused");
        return false;
    }
    if (admin_is_suspended()) {
        snprintf(why, len, "suspended");
        return false;
    }
    if (G.client_count >= G.cfg->max_client_conn) {
        snprintf(why, len, "max_client_conn reached");
        return false;
    }
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        const struct pool *p = container_of(item, struct pool, head);
        if (!health_pool_reachable(p, why, len))
            return false;
    }
    snprintf(why, len, "ready");
    return true;
}

/*==== /health ====*/

static void json_bool(struct textbuf *tb, const char *name, bool v)
{
    textbuf_printf(tb, ",\"%s\":%s", name, v ? "true" : "false");
}

bool health_render(struct textbuf *tb)
{
    char why[400];
    bool ready = health_ready(why, sizeof(why));
    double now = loop_now();
    struct list *item;

    textbuf_printf(tb, "{\"status\":\"%s\",\"reason\":", ready ? "ready" : "not ready");
    textbuf_json_string(tb, ready ? "" : why);
    textbuf_puts(tb, ",\"version\":");
    textbuf_json_string(tb, PGMUX_VERSION);
    textbuf_printf(tb, ",\"uptime_seconds\":%.3f", now > G.start_time ? now - G.start_time : 0);
    json_bool(tb, "paused", G.paused);
    json_bool(tb, "shutting_down", G.shutting_down);
    textbuf_printf(tb, ",\"clients\":%d,\"max_client_conn\":%d,\"servers\":%d,\"pools\":[",
                   G.client_count, G.cfg->max_client_conn, G.server_count);
    bool first = true;
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        const struct pool *p = container_of(item, struct pool, head);
        int idle = p->idle_servers.count + p->used_servers.count;
        int size = pool_size(p);
        textbuf_puts(tb, first ? "{\"database\":" : ",{\"database\":");
        first = false;
        textbuf_json_string(tb, p->db->name);
        textbuf_puts(tb, ",\"user\":");
        textbuf_json_string(tb, p->user->name);
        textbuf_printf(tb, ",\"pool_mode\":\"%s\"", config_pool_mode_name(pool_mode(p)));
        json_bool(tb, "reachable", health_pool_reachable(p, NULL, 0));
        textbuf_printf(tb,
                       ",\"used\":%d,\"idle\":%d,\"max\":%d,\"active_clients\":%d,"
                       "\"waiting\":%d,\"maxwait_seconds\":%.3f,\"last_error\":",
                       pool_server_count(p) - idle, idle, size >= INT_MAX / 2 ? 0 : size,
                       p->active_clients.count, p->waiting_clients.count + p->waiting_login.count,
                       stats_pool_maxwait(p, now));
        textbuf_json_string(tb, p->last_login_ok ? "" : p->last_error);
        textbuf_puts(tb, "}");
    }
    textbuf_puts(tb, "]}\n");
    return ready;
}
