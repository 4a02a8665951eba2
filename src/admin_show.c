/* SPDX-License-Identifier: ISC */
/*
 * admin_show: the SHOW commands of the admin console (but STATS and TOTALS:
 * admin_stats.c).
 *
 * Every SHOW prints exactly PgBouncer's columns, in PgBouncer's order and
 * with PgBouncer's types (PGBOUNCER.md §2.2), because exporters and scripts
 * parse them by name and position. Lists are printed sorted by database and
 * user name, as PgBouncer keeps its lists sorted. The console's own database
 * and pool ("pgbouncer") are listed like any other.
 *
 * Nothing here is on the data path: building a result allocates freely.
 */
#include "admin_internal.h"

#include "admin.h"
#include "authfile.h"
#include "config.h"
#include "iobuf.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "prepare.h"
#include "proto.h"
#include "varcache.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

/*==== Sorted views of the registries ====*/

static bool db_listed(const struct database *db)
{
    return !db->dead;
}

static int cmp_db(const void *a, const void *b)
{
    const struct database *da = *(const struct database *const *)a;
    const struct database *db = *(const struct database *const *)b;
    return strcmp(da->name, db->name);
}

struct database **admin_sorted_dbs(size_t *n)
{
    size_t count = 1, i = 0;
    struct list *item;
    for (item = G.databases.next; item != &G.databases; item = item->next)
        count++;
    struct database **arr = calloc(count, sizeof(*arr));
    if (!arr) {
        *n = 0;
        return NULL;
    }
    arr[i++] = admin_database();
    for (item = G.databases.next; item != &G.databases; item = item->next) {
        struct database *db = container_of(item, struct database, head);
        if (db_listed(db))
            arr[i++] = db;
    }
    qsort(arr, i, sizeof(*arr), cmp_db);
    *n = i;
    return arr;
}

static int cmp_pool(const void *a, const void *b)
{
    const struct pool *pa = *(const struct pool *const *)a;
    const struct pool *pb = *(const struct pool *const *)b;
    int r = strcmp(pa->db->name, pb->db->name);
    return r ? r : strcmp(pa->user->name, pb->user->name);
}

static int pool_socket_count(const struct pool *p)
{
    return pool_server_count(p) + p->waiting_login.count + p->waiting_clients.count +
           p->active_clients.count;
}

/* Pools to list, sorted by database and user; a dead database's empty pools are left out. */
static struct pool **sorted_pools(size_t *n)
{
    size_t count = 1, i = 0;
    struct list *item;
    for (item = G.pools.next; item != &G.pools; item = item->next)
        count++;
    struct pool **arr = calloc(count, sizeof(*arr));
    if (!arr) {
        *n = 0;
        return NULL;
    }
    arr[i++] = admin_pool();
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        struct pool *p = container_of(item, struct pool, head);
        if (db_listed(p->db) || pool_socket_count(p) > 0)
            arr[i++] = p;
    }
    qsort(arr, i, sizeof(*arr), cmp_pool);
    *n = i;
    return arr;
}

bool admin_oom(struct admin_ctx *x, const void *p)
{
    if (p)
        return false;
    admin_ctx_error(x, "out of memory");
    return true;
}

/*==== Small helpers ====*/

static int db_max_connections(const struct database *db)
{
    return db->max_db_connections != CONFIG_UNSET ? db->max_db_connections
                                                  : G.cfg->max_db_connections;
}

static int db_max_client_connections(const struct database *db)
{
    return db->max_db_client_connections != CONFIG_UNSET ? db->max_db_client_connections
                                                         : G.cfg->max_db_client_connections;
}

/* PgBouncer shows load_balance_hosts only for a database with several hosts. */
static const char *db_load_balance(const struct database *db)
{
    if (db == admin_database() || !db->host || !strchr(db->host, ','))
        return NULL;
    const struct cfg_db *cd = config_find_db(G.cfg, db->is_autodb ? "*" : db->name);
    return cd && cd->load_balance_hosts ? cd->load_balance_hosts : "round-robin";
}

static const char *pool_mode_of(const struct pool *p)
{
    if (p == admin_pool())
        return config_pool_mode_name(POOL_STATEMENT);
    return config_pool_mode_name(pool_mode(p));
}

/* Oldest wait of a pool's waiting clients, in microseconds. */
static uint64_t pool_maxwait_us(const struct pool *p, double now)
{
    double oldest = 0;
    const struct statlist *lists[] = {&p->waiting_clients, &p->waiting_login};
    for (size_t i = 0; i < 2; i++) {
        struct list *first = statlist_first(lists[i]);
        if (!first)
            continue;
        const struct pgsock *c = container_of(first, struct pgsock, head);
        double w = now - c->wait_start;
        if (w > oldest)
            oldest = w;
    }
    return oldest > 0 ? (uint64_t)(oldest * 1e6) : 0;
}

/*==== SHOW HELP, VERSION, STATE ====*/

static void show_help(struct admin_ctx *x)
{
    if (x->describe)
        return;
    abuf_notice(x->out, "Console usage",
                "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION"
                "\n\tSHOW PEERS|PEER_POOLS"
                "\n\tSHOW FDS|SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE"
                "\n\tSHOW DNS_HOSTS|DNS_ZONES"
                "\n\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS"
                "\n\tSET key = arg"
                "\n\tRELOAD"
                "\n\tPAUSE [<db>]"
                "\n\tRESUME [<db>]"
                "\n\tDISABLE <db>"
                "\n\tENABLE <db>"
                "\n\tRECONNECT [<db>]"
                "\n\tKILL [<db>]"
                "\n\tKILL_CLIENT <client_id>"
                "\n\tSUSPEND"
                "\n\tSHUTDOWN"
                "\n\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS"
                "\n\tWAIT_CLOSE [<db>]");
    abuf_complete(x->out, "SHOW");
}

static void show_version(struct admin_ctx *x)
{
    if (!rs_begin(x, "s", "version"))
        return;
    rs_row(x, "s", "pgmux " PGMUX_VERSION);
    rs_done(x, "SHOW");
}

static void show_state(struct admin_ctx *x)
{
    if (!rs_begin(x, "ss", "key", "value"))
        return;
    bool suspended = admin_is_suspended();
    rs_row(x, "ss", "active", !G.paused && !suspended ? "yes" : "no");
    rs_row(x, "ss", "paused", G.paused && !suspended ? "yes" : "no");
    rs_row(x, "ss", "suspended", suspended ? "yes" : "no");
    rs_done(x, "SHOW");
}

/*==== SHOW DATABASES, POOLS, USERS, PEERS, PEER_POOLS ====*/

static void show_databases(struct admin_ctx *x)
{
    if (!rs_begin(x, "ssissiiiissiiiiii", "name", "host", "port", "database", "force_user",
                  "pool_size", "min_pool_size", "reserve_pool_size", "server_lifetime", "pool_mode",
                  "load_balance_hosts", "max_connections", "current_connections",
                  "max_client_connections", "current_client_connections", "paused", "disabled"))
        return;
    size_t n;
    struct database **dbs = admin_sorted_dbs(&n);
    if (admin_oom(x, dbs))
        return;
    for (size_t i = 0; i < n; i++) {
        struct database *db = dbs[i];
        double lifetime = db->server_lifetime >= 0 ? db->server_lifetime : G.cfg->server_lifetime;
        rs_row(x, "ssissiiiissiiiiii", db->name, db->host, db->port, db->dbname, db->forced_user,
               db->pool_size != CONFIG_UNSET ? db->pool_size : G.cfg->default_pool_size,
               db->min_pool_size != CONFIG_UNSET ? db->min_pool_size : G.cfg->min_pool_size,
               db->reserve_pool != CONFIG_UNSET ? db->reserve_pool : G.cfg->reserve_pool_size,
               (int)lifetime,
               db->pool_mode != CONFIG_UNSET ? config_pool_mode_name(db->pool_mode) : NULL,
               db_load_balance(db), db_max_connections(db), db->server_count,
               db_max_client_connections(db), db->client_count, (int)db->paused, (int)db->disabled);
    }
    free(dbs);
    rs_done(x, "SHOW");
}

static void show_pools(struct admin_ctx *x)
{
    if (!rs_begin(x, "ssiiiiiiiiiiiiiss", "database", "user", "cl_active", "cl_waiting",
                  "cl_active_cancel_req", "cl_waiting_cancel_req", "sv_active", "sv_active_cancel",
                  "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait",
                  "maxwait_us", "pool_mode", "load_balance_hosts"))
        return;
    size_t n;
    struct pool **pools = sorted_pools(&n);
    if (admin_oom(x, pools))
        return;
    double now = loop_now();
    for (size_t i = 0; i < n; i++) {
        struct pool *p = pools[i];
        uint64_t wait = pool_maxwait_us(p, now);
        /* Cancel requests are forwarded at once, never queued per pool: those are 0. */
        rs_row(x, "ssiiiiiiiiiiiiiss", p->db->name, p->user->name, p->active_clients.count,
               p->waiting_clients.count + p->waiting_login.count, 0, 0, p->active_servers.count, 0,
               p->canceling_servers.count, p->idle_servers.count, p->used_servers.count,
               p->tested_servers.count, p->new_servers.count, (int)(wait / 1000000),
               (int)(wait % 1000000), pool_mode_of(p), db_load_balance(p->db));
    }
    free(pools);
    rs_done(x, "SHOW");
}

/* A SHOW USERS row: a user pgmux has seen or configured, or a name only the auth file holds. */
struct user_row {
    const char *name;
    const struct user *u; /* NULL: auth file only, every setting is the default */
};

static int cmp_user_row(const void *a, const void *b)
{
    return strcmp(((const struct user_row *)a)->name, ((const struct user_row *)b)->name);
}

static void show_users(struct admin_ctx *x)
{
    if (!rs_begin(x, "ssssiiii", "name", "pool_size", "reserve_pool_size", "pool_mode",
                  "max_user_connections", "current_connections", "max_user_client_connections",
                  "current_client_connections"))
        return;
    size_t count = authfile_count(G.authfile), n = 0;
    struct list *item;
    for (item = G.users.next; item != &G.users; item = item->next)
        count++;
    struct user_row *rows = calloc(count ? count : 1, sizeof(*rows));
    if (admin_oom(x, rows))
        return;
    for (item = G.users.next; item != &G.users; item = item->next) {
        const struct user *u = container_of(item, struct user, head);
        rows[n].name = u->name;
        rows[n++].u = u;
    }
    /* Like PgBouncer, every auth file user is listed, also before its first login. */
    qsort(rows, n, sizeof(*rows), cmp_user_row);
    size_t known = n;
    for (size_t i = 0; i < authfile_count(G.authfile); i++) {
        struct user_row key = {authfile_user(G.authfile, i), NULL};
        if (!bsearch(&key, rows, known, sizeof(*rows), cmp_user_row))
            rows[n++] = key;
    }
    qsort(rows, n, sizeof(*rows), cmp_user_row);
    for (size_t i = 0; i < n; i++) {
        const struct user *u = rows[i].u;
        char ps[16] = "", rs[16] = "";
        if (!u) {
            rs_row(x, "ssssiiii", rows[i].name, ps, rs, NULL, G.cfg->max_user_connections, 0,
                   G.cfg->max_user_client_connections, 0);
            continue;
        }
        /* Text, empty when the user has no setting of its own (PgBouncer's types). */
        if (u->pool_size != CONFIG_UNSET)
            snprintf(ps, sizeof(ps), "%d", u->pool_size);
        if (u->reserve_pool != CONFIG_UNSET)
            snprintf(rs, sizeof(rs), "%d", u->reserve_pool);
        rs_row(x, "ssssiiii", u->name, ps, rs,
               u->pool_mode != CONFIG_UNSET ? config_pool_mode_name(u->pool_mode) : NULL,
               u->max_user_connections != CONFIG_UNSET ? u->max_user_connections
                                                       : G.cfg->max_user_connections,
               u->server_count,
               u->max_user_client_connections != CONFIG_UNSET ? u->max_user_client_connections
                                                              : G.cfg->max_user_client_connections,
               u->client_count);
    }
    free(rows);
    rs_done(x, "SHOW");
}

static bool peer_listed(const struct cfg_peer *pe)
{
    /* PgBouncer ignores the entry with our own peer_id. */
    return pe->peer_id != G.cfg->peer_id;
}

static void show_peers(struct admin_ctx *x)
{
    if (!rs_begin(x, "isii", "peer_id", "host", "port", "pool_size"))
        return;
    for (int i = 0; i < G.cfg->n_peers; i++) {
        const struct cfg_peer *pe = &G.cfg->peers[i];
        if (!peer_listed(pe))
            continue;
        rs_row(x, "isii", pe->peer_id, pe->host, pe->port > 0 ? pe->port : 6432,
               pe->pool_size != CONFIG_UNSET ? pe->pool_size : G.cfg->default_pool_size);
    }
    rs_done(x, "SHOW");
}

static void show_peer_pools(struct admin_ctx *x)
{
    /* pgmux forwards no cancel requests to peers yet: there are no peer pools. */
    if (!rs_begin(x, "iiiii", "peer_id", "cl_active_cancel_req", "cl_waiting_cancel_req",
                  "sv_active_cancel", "sv_login"))
        return;
    rs_done(x, "SHOW");
}

/*==== SHOW CLIENTS, SERVERS, SOCKETS, ACTIVE_SOCKETS ====*/

static void sock_remote(const struct pgsock *s, char *buf, size_t len, int *port)
{
    if (s->remote.family == AF_INET || s->remote.family == AF_INET6) {
        if (!inet_ntop(s->remote.family, s->remote.addr, buf, (socklen_t)len))
            snprintf(buf, len, "?");
        *port = s->remote.port;
    } else {
        snprintf(buf, len, "unix");
        *port = s->is_server ? s->remote.port : G.cfg->listen_port;
    }
}

static void sock_local(const struct pgsock *s, char *buf, size_t len, int *port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    buf[0] = 0;
    *port = 0;
    if (s->sbuf.fd < 0 || getsockname(s->sbuf.fd, (struct sockaddr *)&ss, &sl) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &sin->sin_addr, buf, (socklen_t)len);
        *port = ntohs(sin->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, buf, (socklen_t)len);
        *port = ntohs(sin6->sin6_port);
    } else {
        snprintf(buf, len, "unix");
        *port = s->is_server ? s->remote.port : G.cfg->listen_port;
    }
}

static int sock_remote_pid(const struct pgsock *s)
{
    if (s->is_server) {
        /* PostgreSQL's BackendKeyData starts with the backend's pid. */
        return (int)proto_get_u32(s->cancel_key);
    }
    if (s->remote.family == AF_UNIX && s->sbuf.fd >= 0) {
        struct ucred cred;
        socklen_t cl = sizeof(cred);
        if (getsockopt(s->sbuf.fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
            return (int)cred.pid;
    }
    return 0;
}

/*
 * One row of SHOW CLIENTS/SERVERS (21 columns) or SHOW SOCKETS (28). A
 * socket in an "active" list with no partner shows as idle, as in PgBouncer.
 */
/* The prepared_statements column: a client's names, or what a server has prepared. */
static int ps_count(const struct pgsock *s)
{
    return s->is_server ? ps_server_count(s) : ps_client_count(s);
}

static void socket_row(struct admin_ctx *x, const struct pgsock *s, const char *state, bool debug)
{
    char raddr[64], laddr[64], ptr[32], link[32];
    int rport, lport;
    double now = loop_now();
    uint64_t wait_us = 0;

    sock_remote(s, raddr, sizeof(raddr), &rport);
    sock_local(s, laddr, sizeof(laddr), &lport);
    snprintf(ptr, sizeof(ptr), "%p", (const void *)s);
    link[0] = 0;
    if (s->link)
        snprintf(link, sizeof(link), "%p", (const void *)s->link);
    if (!s->is_server && (s->state == CL_WAITING || s->state == CL_WAITING_LOGIN) &&
        now > s->wait_start)
        wait_us = (uint64_t)((now - s->wait_start) * 1e6);
    if (!s->link && strcmp(state, "active") == 0)
        state = "idle";

    const char *user = "(nouser)", *db = "(nodb)";
    if (s->pool) {
        db = s->pool->db->name;
        user = pgsock_user_name(s);
        if (s->admin)
            user = admin_client_user(s);
    }
    int app_idx = varcache_lookup("application_name");
    const char *app = app_idx >= 0 ? varcache_get(&s->vars, app_idx) : NULL;
    char tls[128];
    sbuf_tls_info(&s->sbuf, tls, sizeof(tls));

    if (!debug) {
        rs_row(x, "ssssssisiTTiiississii", s->is_server ? "S" : "C", user, db, "none", state, raddr,
               rport, laddr, lport, s->connect_time, s->request_time, (int)(wait_us / 1000000),
               (int)(wait_us % 1000000), (int)s->close_needed, ptr, link, sock_remote_pid(s), tls,
               app ? app : "", ps_count(s), (int)s->id);
        return;
    }
    const struct iobuf *io = s->sbuf.buf;
    int recv_pos = io ? (int)io->recv_pos : 0, pkt_pos = io ? (int)io->parse_pos : 0;
    int send_pos = io ? (int)io->done_pos : 0;
    rs_row(x, "ssssssisiTTiiississiiiiiiiii", s->is_server ? "S" : "C", user, db, "none", state,
           raddr, rport, laddr, lport, s->connect_time, s->request_time, (int)(wait_us / 1000000),
           (int)(wait_us % 1000000), (int)s->close_needed, ptr, link, sock_remote_pid(s), tls,
           app ? app : "", ps_count(s), (int)s->id, recv_pos, pkt_pos, (int)s->sbuf.pkt_remain, send_pos, 0,
           recv_pos - pkt_pos, pkt_pos - send_pos);
}

static bool socket_header(struct admin_ctx *x, bool debug)
{
    if (!debug)
        return rs_begin(x, "ssssssisiTTiiississii", "type", "user", "database", "replication",
                        "state", "addr", "port", "local_addr", "local_port", "connect_time",
                        "request_time", "wait", "wait_us", "close_needed", "ptr", "link",
                        "remote_pid", "tls", "application_name", "prepared_statements", "id");
    return rs_begin(x, "ssssssisiTTiiississiiiiiiiii", "type", "user", "database", "replication",
                    "state", "addr", "port", "local_addr", "local_port", "connect_time",
                    "request_time", "wait", "wait_us", "close_needed", "ptr", "link", "remote_pid",
                    "tls", "application_name", "prepared_statements", "id", "recv_pos", "pkt_pos",
                    "pkt_remain", "send_pos", "send_remain", "pkt_avail", "send_avail");
}

/* only_busy: ACTIVE_SOCKETS lists only sockets with bytes in their buffer. */
static void socket_list(struct admin_ctx *x, const struct statlist *l, const char *state,
                        bool debug, bool only_busy)
{
    struct list *item;
    for (item = l->head.next; item != &l->head; item = item->next) {
        const struct pgsock *s = container_of(item, struct pgsock, head);
        if (only_busy && sbuf_is_empty(&s->sbuf))
            continue;
        socket_row(x, s, state, debug);
    }
}

static void show_clients(struct admin_ctx *x)
{
    if (!socket_header(x, false))
        return;
    size_t n;
    struct pool **pools = sorted_pools(&n);
    if (admin_oom(x, pools))
        return;
    for (size_t i = 0; i < n; i++) {
        socket_list(x, &pools[i]->active_clients, "active", false, false);
        socket_list(x, &pools[i]->waiting_clients, "waiting", false, false);
        socket_list(x, &pools[i]->waiting_login, "waiting", false, false);
    }
    free(pools);
    rs_done(x, "SHOW");
}

static void show_servers(struct admin_ctx *x)
{
    if (!socket_header(x, false))
        return;
    size_t n;
    struct pool **pools = sorted_pools(&n);
    if (admin_oom(x, pools))
        return;
    for (size_t i = 0; i < n; i++) {
        struct pool *p = pools[i];
        socket_list(x, &p->active_servers, "active", false, false);
        socket_list(x, &p->idle_servers, "idle", false, false);
        socket_list(x, &p->used_servers, "used", false, false);
        socket_list(x, &p->tested_servers, "tested", false, false);
        socket_list(x, &p->new_servers, "new", false, false);
        socket_list(x, &p->canceling_servers, "being_canceled", false, false);
    }
    free(pools);
    rs_done(x, "SHOW");
}

static void show_sockets_common(struct admin_ctx *x, bool only_busy)
{
    if (!socket_header(x, true))
        return;
    size_t n;
    struct pool **pools = sorted_pools(&n);
    if (admin_oom(x, pools))
        return;
    for (size_t i = 0; i < n; i++) {
        struct pool *p = pools[i];
        socket_list(x, &p->active_clients, "cl_active", true, only_busy);
        socket_list(x, &p->waiting_clients, "cl_waiting", true, only_busy);
        socket_list(x, &p->waiting_login, "cl_waiting", true, only_busy);
        socket_list(x, &p->active_servers, "sv_active", true, only_busy);
        socket_list(x, &p->idle_servers, "sv_idle", true, only_busy);
        socket_list(x, &p->used_servers, "sv_used", true, only_busy);
        socket_list(x, &p->tested_servers, "sv_tested", true, only_busy);
        socket_list(x, &p->new_servers, "sv_login", true, only_busy);
    }
    socket_list(x, &G.login_clients, "cl_login", true, only_busy);
    free(pools);
    rs_done(x, "SHOW");
}

static void show_sockets(struct admin_ctx *x)
{
    show_sockets_common(x, false);
}

static void show_active_sockets(struct admin_ctx *x)
{
    show_sockets_common(x, true);
}

/*
 * SHOW FDS: the takeover list. pgmux has no online restart, so no file
 * descriptor is ever attached (PgBouncer attaches them only for its own
 * user on the Unix socket); the rows are for inspection.
 */
static void fds_list(struct admin_ctx *x, const struct statlist *l)
{
    struct list *item;
    for (item = l->head.next; item != &l->head; item = item->next) {
        const struct pgsock *s = container_of(item, struct pgsock, head);
        char addr[64];
        int port;
        sock_remote(s, addr, sizeof(addr), &port);
        uint64_t key =
            ((uint64_t)proto_get_u32(s->cancel_key) << 32) | proto_get_u32(s->cancel_key + 4);
        int enc = varcache_lookup("client_encoding"),
            ss = varcache_lookup("standard_conforming_strings");
        int ds = varcache_lookup("DateStyle"), tz = varcache_lookup("TimeZone");
        rs_row(x, "issssiqisssssbb", s->sbuf.fd, s->is_server ? "server" : "client",
               pgsock_user_name(s), s->pool ? s->pool->db->name : NULL, addr, port,
               key, s->link ? s->link->sbuf.fd : 0, enc >= 0 ? varcache_get(&s->vars, enc) : NULL,
               ss >= 0 ? varcache_get(&s->vars, ss) : NULL,
               ds >= 0 ? varcache_get(&s->vars, ds) : NULL,
               tz >= 0 ? varcache_get(&s->vars, tz) : NULL, NULL, NULL, NULL);
    }
}

static void show_fds(struct admin_ctx *x)
{
    if (!rs_begin(x, "issssiqisssssbb", "fd", "task", "user", "database", "addr", "port", "cancel",
                  "link", "client_encoding", "std_strings", "datestyle", "timezone", "password",
                  "scram_client_key", "scram_server_key"))
        return;
    fds_list(x, &G.login_clients);
    struct list *item;
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        const struct pool *p = container_of(item, struct pool, head);
        fds_list(x, &p->active_clients);
        fds_list(x, &p->waiting_clients);
        fds_list(x, &p->active_servers);
        fds_list(x, &p->idle_servers);
        fds_list(x, &p->used_servers);
        fds_list(x, &p->tested_servers);
        fds_list(x, &p->new_servers);
    }
    rs_done(x, "SHOW");
}

/*==== SHOW LISTS, MEM, DNS_HOSTS, DNS_ZONES ====*/

/* A server host that needs a DNS lookup (not a Unix socket dir, not a numeric address). */
static bool host_is_name(const char *host)
{
    uint8_t tmp[16];
    if (!host || !host[0] || host[0] == '/')
        return false;
    return inet_pton(AF_INET, host, tmp) != 1 && inet_pton(AF_INET6, host, tmp) != 1;
}

static void dns_counts(int *names, int *pending)
{
    struct list *item;
    *names = *pending = 0;
    for (item = G.databases.next; item != &G.databases; item = item->next) {
        const struct database *db = container_of(item, struct database, head);
        if (db->dead || !host_is_name(db->host))
            continue;
        if (db->addrlen > 0)
            (*names)++;
        if (db->resolving)
            (*pending)++;
    }
}

static void show_lists(struct admin_ctx *x)
{
    if (!rs_begin(x, "si", "list", "items"))
        return;
    int dbs = 1, users = 0, pools = 1, peers = 0;
    struct list *item;
    for (item = G.databases.next; item != &G.databases; item = item->next)
        dbs += db_listed(container_of(item, struct database, head));
    for (item = G.users.next; item != &G.users; item = item->next)
        users++;
    for (item = G.pools.next; item != &G.pools; item = item->next)
        pools++;
    for (int i = 0; i < G.cfg->n_peers; i++)
        peers += peer_listed(&G.cfg->peers[i]);
    size_t size;
    int ctotal, cfree, stotal, sfree, names, pending;
    pool_cache_stats(false, &size, &ctotal, &cfree);
    pool_cache_stats(true, &size, &stotal, &sfree);
    dns_counts(&names, &pending);
    rs_row(x, "si", "databases", dbs);
    rs_row(x, "si", "users", users);
    rs_row(x, "si", "peers", peers);
    rs_row(x, "si", "pools", pools);
    rs_row(x, "si", "peer_pools", 0);
    rs_row(x, "si", "free_clients", cfree);
    rs_row(x, "si", "used_clients", ctotal - cfree);
    rs_row(x, "si", "login_clients", G.login_clients.count);
    rs_row(x, "si", "free_servers", sfree);
    rs_row(x, "si", "used_servers", stotal - sfree);
    rs_row(x, "si", "dns_names", names);
    rs_row(x, "si", "dns_zones", 0);
    rs_row(x, "si", "dns_queries", pending);
    rs_row(x, "si", "dns_pending", pending);
    rs_done(x, "SHOW");
}

static void mem_row(struct admin_ctx *x, const char *name, size_t size, int used, int nfree)
{
    rs_row(x, "siiii", name, (int)size, used, nfree, (int)(size * (size_t)(used + nfree)));
}

static void show_mem(struct admin_ctx *x)
{
    if (!rs_begin(x, "siiii", "name", "size", "used", "free", "memtotal"))
        return;
    size_t size;
    int total, nfree, count;
    struct list *item;

    /* Databases, users and pools are allocated one by one and never freed. */
    count = 1;
    for (item = G.databases.next; item != &G.databases; item = item->next)
        count++;
    mem_row(x, "db_cache", sizeof(struct database), count, 0);
    count = 1;
    for (item = G.pools.next; item != &G.pools; item = item->next)
        count++;
    mem_row(x, "pool_cache", sizeof(struct pool), count, 0);
    count = 0;
    for (item = G.users.next; item != &G.users; item = item->next)
        count++;
    mem_row(x, "user_cache", sizeof(struct user), count, 0);
    pool_cache_stats(false, &size, &total, &nfree);
    mem_row(x, "client_cache", size, total - nfree, nfree);
    pool_cache_stats(true, &size, &total, &nfree);
    mem_row(x, "server_cache", size, total - nfree, nfree);
    iobuf_stats(&total, &nfree);
    mem_row(x, "iobuf_cache", sizeof(struct iobuf) + iobuf_size(), total - nfree, nfree);
    rs_done(x, "SHOW");
}

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
        snprintf(buf, len, "%s:%d", a, ntohs(sin->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
        snprintf(buf, len, "[%s]:%d", a, ntohs(sin6->sin6_port));
    } else {
        buf[0] = 0;
    }
}

static void show_dns_hosts(struct admin_ctx *x)
{
    if (!rs_begin(x, "sqs", "hostname", "ttl", "addrs"))
        return;
    size_t n;
    struct database **dbs = admin_sorted_dbs(&n);
    if (admin_oom(x, dbs))
        return;
    double now = loop_now();
    for (size_t i = 0; i < n; i++) {
        const struct database *db = dbs[i];
        if (db == admin_database() || !host_is_name(db->host) || db->addrlen == 0)
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = dbs[j]->host && strcmp(dbs[j]->host, db->host) == 0 && dbs[j]->addrlen > 0;
        if (seen)
            continue;
        char addrs[128];
        addr_text(&db->addr, addrs, sizeof(addrs));
        uint64_t ttl = db->addr_expires > now ? (uint64_t)(db->addr_expires - now) : 0;
        rs_row(x, "sqs", db->host, ttl, addrs);
    }
    free(dbs);
    rs_done(x, "SHOW");
}

static void show_dns_zones(struct admin_ctx *x)
{
    /* Zone serial polling (dns_zone_check_period) needs c-ares; pgmux does not do it. */
    if (!rs_begin(x, "sqi", "zonename", "serial", "count"))
        return;
    rs_done(x, "SHOW");
}

/*==== SHOW CONFIG ====*/

static void show_config(struct admin_ctx *x)
{
    if (!rs_begin(x, "ssss", "key", "value", "default", "changeable"))
        return;
    size_t n;
    const struct config_key *keys = config_keys(&n);
    char *val = malloc(8192);
    if (admin_oom(x, val))
        return;
    for (size_t i = 0; i < n; i++) {
        config_format(G.cfg, &keys[i], val, 8192);
        rs_row(x, "ssss", keys[i].name, val, keys[i].def, keys[i].reloadable ? "yes" : "no");
    }
    free(val);
    rs_done(x, "SHOW");
}

/*==== Fake parameters and SELECT 1 ====*/

/*
 * Some drivers SHOW or SET these right after connecting. PgBouncer fakes
 * the first five; the last two keep JDBC and friends happy.
 */
static const struct {
    const char *name;
    const char *value;
} fake_params[] = {
    {"client_encoding", "UTF-8"},
    {"default_transaction_isolation", "read committed"},
    {"standard_conforming_strings", "on"},
    {"datestyle", "ISO"},
    {"timezone", "GMT"},
    {"extra_float_digits", "1"},
    {"application_name", ""},
};

bool admin_fake_param(const char *name)
{
    for (size_t i = 0; i < sizeof(fake_params) / sizeof(fake_params[0]); i++)
        if (strcasecmp(name, fake_params[i].name) == 0)
            return true;
    return false;
}

void admin_show_fake_param(struct admin_ctx *x, const char *name)
{
    for (size_t i = 0; i < sizeof(fake_params) / sizeof(fake_params[0]); i++) {
        if (strcasecmp(name, fake_params[i].name) != 0)
            continue;
        if (!rs_begin(x, "s", fake_params[i].name))
            return;
        rs_row(x, "s", fake_params[i].value);
        rs_done(x, "SHOW");
        return;
    }
}

void admin_select_one(struct admin_ctx *x)
{
    if (!rs_begin(x, "i", "?column?"))
        return;
    rs_row(x, "i", 1);
    rs_done(x, "SELECT 1");
}

/*==== The table ====*/

static const struct admin_show_entry show_table[] = {
    {"active_sockets", show_active_sockets, false, false},
    {"clients", show_clients, false, false},
    {"config", show_config, false, false},
    {"databases", show_databases, false, false},
    {"dns_hosts", show_dns_hosts, false, false},
    {"dns_zones", show_dns_zones, false, false},
    {"fds", show_fds, true, false},
    {"help", show_help, false, true},
    {"lists", show_lists, false, false},
    {"mem", show_mem, false, false},
    {"peer_pools", show_peer_pools, false, false},
    {"peers", show_peers, false, false},
    {"pools", show_pools, false, false},
    {"servers", show_servers, false, false},
    {"sockets", show_sockets, false, false},
    {"state", show_state, false, false},
    {"stats", admin_show_stats, false, false},
    {"stats_averages", admin_show_stats_averages, false, false},
    {"stats_totals", admin_show_stats_totals, false, false},
    {"totals", admin_show_totals, false, false},
    {"users", show_users, false, false},
    {"version", show_version, false, false},
};

const struct admin_show_entry *admin_show_find(const char *name)
{
    for (size_t i = 0; i < sizeof(show_table) / sizeof(show_table[0]); i++)
        if (strcasecmp(name, show_table[i].name) == 0)
            return &show_table[i];
    return NULL;
}
