/* SPDX-License-Identifier: ISC */
/*
 * pool: the (database, user) pools and everything that moves a socket
 * between them.
 *
 * Invariants:
 *  - every socket is in exactly the list its state names (pgmux.h), and only
 *    pool_change_client_state()/pool_change_server_state() assign ->state;
 *  - a server is handed to a client only from the idle list, and an idle
 *    server never coexists with a waiting client in the same pool: the
 *    moment a server becomes usable, pool_server_ready() gives it to the
 *    oldest waiter;
 *  - the release rule of each pool mode lives in server.c's ReadyForQuery
 *    handling, which calls pool_release_server(); what happens to a released
 *    server (reuse, reset, close) lives here.
 */
#include "pool.h"

#include "authq.h"
#include "client.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "prepare.h"
#include "loop.h"
#include "server.h"
#include "slab.h"
#include "stats.h"
#include "varcache.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static struct slab *client_slab, *server_slab;

static const char *const state_names[SOCK_STATE_COUNT] = {
    "cl_free",   "cl_justfree", "cl_login", "cl_waiting_login", "cl_waiting", "cl_active",
    "sv_free",   "sv_justfree", "sv_login", "sv_idle",          "sv_active",  "sv_used",
    "sv_tested", "sv_being_canceled",
};

void pool_init(void)
{
    client_slab = slab_create("client", sizeof(struct pgsock));
    server_slab = slab_create("server", sizeof(struct pgsock));
    if (!client_slab || !server_slab) {
        log_fatal("out of memory");
        exit(1);
    }
}

/*==== Allocation ====*/

struct pgsock *pool_alloc_client(void)
{
    struct pgsock *c = slab_alloc(client_slab);
    if (!c)
        return NULL;
    list_init(&c->head);
    c->state = CL_FREE;
    c->id = ++G.next_id;
    c->connect_time = c->request_time = loop_now();
    G.client_count++;
    return c;
}

struct pgsock *pool_alloc_server(struct pool *pool)
{
    struct pgsock *s = slab_alloc(server_slab);
    if (!s)
        return NULL;
    list_init(&s->head);
    s->state = SV_FREE;
    s->is_server = true;
    s->pool = pool;
    s->id = ++G.next_id;
    s->connect_time = s->request_time = loop_now();
    G.server_count++;
    pool->db->server_count++;
    pool->user->server_count++;
    return s;
}

void pool_free_justfree(void)
{
    struct list *item, *tmp;
    statlist_foreach_safe(item, tmp, &G.justfree_clients)
    {
        struct pgsock *c = container_of(item, struct pgsock, head);
        statlist_remove(&G.justfree_clients, item);
        c->state = CL_FREE;
        varcache_clear(&c->vars);
        ps_socket_free(c);
        slab_free(client_slab, c);
    }
    statlist_foreach_safe(item, tmp, &G.justfree_servers)
    {
        struct pgsock *s = container_of(item, struct pgsock, head);
        statlist_remove(&G.justfree_servers, item);
        s->state = SV_FREE;
        varcache_clear(&s->vars);
        ps_socket_free(s);
        slab_free(server_slab, s);
    }
}

void pool_cache_stats(bool servers, size_t *size, int *total, int *free_count)
{
    const char *name;
    slab_stats(servers ? server_slab : client_slab, &name, size, total, free_count);
}

/*==== State changes ====*/

static struct statlist *client_list(struct pgsock *c, enum sock_state st)
{
    switch (st) {
    case CL_FREE:
        return NULL;
    case CL_JUSTFREE:
        return &G.justfree_clients;
    case CL_LOGIN:
        return &G.login_clients;
    case CL_WAITING_LOGIN:
        return &c->pool->waiting_login;
    case CL_WAITING:
        return &c->pool->waiting_clients;
    case CL_ACTIVE:
        return &c->pool->active_clients;
    default:
        log_error("BUG: client %llu in server state %s", (unsigned long long)c->id,
                  state_names[st]);
        Assert(false);
        return NULL;
    }
}

static struct statlist *server_list(struct pgsock *s, enum sock_state st)
{
    struct pool *p = s->pool;
    switch (st) {
    case SV_FREE:
        return NULL;
    case SV_JUSTFREE:
        return &G.justfree_servers;
    case SV_LOGIN:
        return &p->new_servers;
    case SV_IDLE:
        return &p->idle_servers;
    case SV_ACTIVE:
        return &p->active_servers;
    case SV_USED:
        return &p->used_servers;
    case SV_TESTED:
        return &p->tested_servers;
    case SV_BEING_CANCELED:
        return &p->canceling_servers;
    default:
        log_error("BUG: server %llu in client state %s", (unsigned long long)s->id,
                  state_names[st]);
        Assert(false);
        return NULL;
    }
}

void pool_change_client_state(struct pgsock *c, enum sock_state st)
{
    struct statlist *old = client_list(c, c->state);
    struct statlist *nl = client_list(c, st);
    if (old)
        statlist_remove(old, &c->head);
    c->state = st;
    if (nl)
        statlist_append(nl, &c->head);
}

void pool_change_server_state(struct pgsock *s, enum sock_state st)
{
    struct statlist *old = server_list(s, s->state);
    struct statlist *nl = server_list(s, st);
    if (old)
        statlist_remove(old, &s->head);
    s->state = st;
    if (!nl)
        return;
    /* Idle servers are reused LIFO (warm caches, fewer servers stay busy)
     * unless round robin is asked for or the server is on its way out. */
    if (st == SV_IDLE && !G.cfg->server_round_robin && !s->close_needed)
        statlist_prepend(nl, &s->head);
    else
        statlist_append(nl, &s->head);
}

/*==== Pools ====*/

void pool_init_struct(struct pool *p, struct database *db, struct user *user)
{
    list_init(&p->head);
    p->db = db;
    p->user = user;
    statlist_init(&p->waiting_login);
    statlist_init(&p->waiting_clients);
    statlist_init(&p->active_clients);
    statlist_init(&p->new_servers);
    statlist_init(&p->idle_servers);
    statlist_init(&p->active_servers);
    statlist_init(&p->used_servers);
    statlist_init(&p->tested_servers);
    statlist_init(&p->canceling_servers);
    statlist_init(&p->authq_waiting);
    list_init(&p->authq_running);
    p->last_login_ok = true;
}

struct pool *pool_get(struct database *db, struct user *user)
{
    struct list *item;
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        struct pool *p = container_of(item, struct pool, head);
        if (p->db == db && p->user == user)
            return p;
    }
    struct pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    pool_init_struct(p, db, user);
    list_insert_after(G.pools.prev, &p->head);
    return p;
}

int pool_mode(const struct pool *p)
{
    if (p->user->pool_mode != CONFIG_UNSET)
        return p->user->pool_mode;
    if (p->db->pool_mode != CONFIG_UNSET)
        return p->db->pool_mode;
    return G.cfg->pool_mode;
}

int pool_size(const struct pool *p)
{
    int n = G.cfg->default_pool_size;
    if (p->user->pool_size != CONFIG_UNSET)
        n = p->user->pool_size;
    else if (p->db->pool_size != CONFIG_UNSET)
        n = p->db->pool_size;
    return n > 0 ? n : INT_MAX / 2;
}

int pool_min_size(const struct pool *p)
{
    return p->db->min_pool_size != CONFIG_UNSET ? p->db->min_pool_size : G.cfg->min_pool_size;
}

int pool_reserve_size(const struct pool *p)
{
    if (p->user->reserve_pool != CONFIG_UNSET)
        return p->user->reserve_pool;
    if (p->db->reserve_pool != CONFIG_UNSET)
        return p->db->reserve_pool;
    return G.cfg->reserve_pool_size;
}

int pool_server_count(const struct pool *p)
{
    return p->new_servers.count + p->idle_servers.count + p->active_servers.count +
           p->used_servers.count + p->tested_servers.count + p->canceling_servers.count;
}

static bool pool_under_limits(struct pool *p)
{
    int total = pool_server_count(p);
    int size = pool_size(p);
    if (total >= size) {
        /* The reserve opens only when a client has waited reserve_pool_timeout. */
        struct list *first = statlist_first(&p->waiting_clients);
        int reserve = pool_reserve_size(p);
        if (!first || reserve <= 0 || total >= size + reserve)
            return false;
        struct pgsock *c = container_of(first, struct pgsock, head);
        if (loop_now() - c->wait_start < G.cfg->reserve_pool_timeout)
            return false;
        slog_info(c, "taking connection from reserve_pool");
    }
    int max_db = p->db->max_db_connections != CONFIG_UNSET ? p->db->max_db_connections
                                                           : G.cfg->max_db_connections;
    if (max_db > 0 && p->db->server_count >= max_db)
        return false;
    int max_user = p->user->max_user_connections != CONFIG_UNSET
                       ? p->user->max_user_connections
                       : G.cfg->max_user_connections;
    if (max_user > 0 && p->user->server_count >= max_user)
        return false;
    return true;
}

void pool_launch_if_needed(struct pool *p)
{
    if (G.shutting_down && G.shutdown_mode == 1)
        return;
    if (p->db->dead || p->new_servers.count > 0)
        return; /* one login at a time per pool, so a storm does not stampede PostgreSQL */
    if (G.paused || p->db->paused)
        return; /* a new server would be closed at once ("pause mode"): wait for RESUME */
    if (loop_now() < p->next_connect)
        return;
    int waiting = p->waiting_clients.count + p->waiting_login.count + p->authq_waiting.count;
    bool below_min = pool_server_count(p) < pool_min_size(p) &&
                     (p->active_clients.count > 0 || p->db->forced_user) && !G.paused;
    if (waiting == 0 && !below_min)
        return;
    /* Servers already being checked will serve the waiters first. */
    if (waiting > 0 && waiting <= p->tested_servers.count && !below_min)
        return;
    if (!pool_under_limits(p))
        return;
    server_launch(p);
}

/*==== Linking ====*/

static void pool_link(struct pgsock *client, struct pgsock *server)
{
    struct pool *p = client->pool;
    double now = loop_now();
    client->link = server;
    server->link = client;
    client->sbuf.dst = &server->sbuf;
    server->sbuf.dst = &client->sbuf;
    server->rfq_expected = 0;
    server->release_pending = false;
    pool_change_server_state(server, SV_ACTIVE);
    if (client->state == CL_WAITING) {
        stats_wait_done(p, (uint64_t)((now - client->wait_start) * 1e6));
        pool_change_client_state(client, CL_ACTIVE);
    }
    client->xact_start = now;
    p->stats.server_assignment_count++;
}

bool pool_find_server(struct pgsock *client)
{
    struct pool *p = client->pool;
    if (p->db->dead) {
        /* Removed by a reload: the transaction it was in has ended, nothing more runs. */
        client_disconnect(client, "08P01", "database removed");
        return false;
    }
    if (!G.paused && !p->db->paused) {
        struct list *item = statlist_first(&p->idle_servers);
        if (item) {
            struct pgsock *server = container_of(item, struct pgsock, head);
            pool_link(client, server);
            if (server_sync_vars(server, client))
                return false;
            return true;
        }
        item = statlist_first(&p->used_servers);
        if (item && G.cfg->server_check_query[0]) {
            /* Stale idle server: check it, then it goes to the oldest waiter. */
            struct pgsock *server = container_of(item, struct pgsock, head);
            pool_change_server_state(server, SV_TESTED);
            const char *q = G.cfg->server_check_query;
            if (strcmp(q, "<empty>") == 0)
                q = "";
            if (!server_run_internal(server, SV_INT_CHECK, q))
                server_disconnect(server, "check query could not be sent");
        } else if (item) {
            struct pgsock *server = container_of(item, struct pgsock, head);
            pool_link(client, server);
            if (server_sync_vars(server, client))
                return false;
            return true;
        }
    }
    if (client->state != CL_WAITING) {
        client->wait_start = loop_now();
        pool_change_client_state(client, CL_WAITING);
    }
    pool_launch_if_needed(p);
    return false;
}

void pool_server_ready(struct pgsock *server)
{
    struct pool *p = server->pool;
    server->internal = SV_INT_NONE;
    server->request_time = loop_now();
    if (server->close_needed || p->db->dead) {
        server_disconnect(server, "close_needed");
        return;
    }
    /* Logins waiting for auth_query go first: their queries are short, and
     * clients in the middle of a login cannot wait as long as a transaction. */
    if (!G.paused && !p->db->paused && authq_take_server(server))
        return;
    struct list *item = statlist_first(&p->waiting_clients);
    if (item && !G.paused && !p->db->paused) {
        struct pgsock *client = container_of(item, struct pgsock, head);
        pool_link(client, server);
        if (!server_sync_vars(server, client))
            sbuf_continue(&client->sbuf);
        return;
    }
    if (G.paused || p->db->paused) {
        /* PAUSE waits for servers to be released and closes them. */
        server_disconnect(server, "pause mode");
        return;
    }
    pool_change_server_state(server, SV_IDLE);
}

bool pool_server_expired(const struct pgsock *s, double now)
{
    const struct database *db = s->pool->db;
    double lifetime = db->server_lifetime >= 0 ? db->server_lifetime : G.cfg->server_lifetime;
    /* 0: each connection serves once (PgBouncer's meaning). */
    return lifetime <= 0 || now - s->connect_time > lifetime;
}

void pool_release_server(struct pgsock *server)
{
    struct pgsock *client = server->link;
    double now = loop_now();

    if (client) {
        /* Transactions are counted at their ReadyForQuery (stats_xact_end). */
        client->link = NULL;
        client->sbuf.dst = NULL;
    }
    server->link = NULL;
    server->sbuf.dst = NULL;
    server->release_pending = false;
    server->request_time = now;
    ps_queue_clear(server); /* empty after a complete transaction; never carried over */

    if (server->close_needed) {
        server_disconnect(server, "close_needed");
        return;
    }
    if (pool_server_expired(server, now)) {
        server_disconnect(server, "server lifetime over");
        return;
    }
    if (server->cancel_pending > 0) {
        /* A cancel is still on its way: do not let it hit the next client's query.
         * cancel.c calls pool_server_returned() when it is done. */
        pool_change_server_state(server, SV_BEING_CANCELED);
        return;
    }
    pool_server_returned(server);
}

void pool_server_returned(struct pgsock *server)
{
    struct pool *p = server->pool;
    const char *reset = G.cfg->server_reset_query;
    bool want_reset = reset[0] &&
                      (pool_mode(p) == POOL_SESSION || G.cfg->server_reset_query_always);
    if (want_reset) {
        pool_change_server_state(server, SV_TESTED);
        if (!server_run_internal(server, SV_INT_RESET, reset))
            server_disconnect(server, "reset query could not be sent");
        return;
    }
    pool_server_ready(server);
}

void pool_release_if_done(struct pgsock *server)
{
    struct pgsock *client = server->link;
    if (!server->release_pending || !client)
        return;
    if (sbuf_mid_message(&server->sbuf) || sbuf_mid_message(&client->sbuf))
        return;
    pool_release_server(server);
}

void pool_recycle_servers(struct pool *p, const char *why)
{
    struct statlist *lists[] = {&p->new_servers,    &p->active_servers,    &p->used_servers,
                                &p->tested_servers, &p->canceling_servers, &p->idle_servers};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        struct list *item, *tmp;
        statlist_foreach_safe(item, tmp, lists[i])
        {
            struct pgsock *s = container_of(item, struct pgsock, head);
            s->close_needed = true;
            if (s->state == SV_IDLE || s->state == SV_USED)
                server_disconnect(s, "%s", why);
        }
    }
}

void pool_fail_waiting(struct pool *p, const char *sqlstate, const char *msg)
{
    struct list *item, *tmp;
    authq_fail_waiting(p);
    statlist_foreach_safe(item, tmp, &p->waiting_login)
    {
        struct pgsock *c = container_of(item, struct pgsock, head);
        client_disconnect(c, sqlstate, "%s", msg);
    }
    statlist_foreach_safe(item, tmp, &p->waiting_clients)
    {
        struct pgsock *c = container_of(item, struct pgsock, head);
        client_disconnect(c, sqlstate, "%s", msg);
    }
}
