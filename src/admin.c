/* SPDX-License-Identifier: ISC */
/*
 * admin: the console, a virtual database named "pgbouncer" (also "pgmux").
 *
 * Who: admin_users may run everything, stats_users only SHOW (not SHOW FDS);
 * the user "pgbouncer" connecting over the Unix socket from a process with
 * our own UID gets in as admin without a password, as in PgBouncer. Console
 * clients live in a pool of their own (database and user "pgbouncer") that
 * is listed by SHOW DATABASES/POOLS but is not in G.pools, so the janitor,
 * the launcher and the metrics never see it.
 *
 * Protocol: the simple Query protocol and the extended protocol
 * (Parse/Bind/Describe/Execute/Close/Sync/Flush), so drivers that only speak
 * the latter (psycopg 3, JDBC, Npgsql) can read SHOW output. Every answer is
 * built in a growable per-connection buffer and handed to the kernel; when
 * the socket is full a write watcher finishes the job and the client is not
 * read meanwhile, so a console client that never reads cannot make pgmux
 * buffer without bound. A bad command gets an ErrorResponse, never a closed
 * connection.
 *
 * Commands are parsed and run by admin_cmd.c, SHOW output is built by
 * admin_show.c. PAUSE, WAIT_CLOSE and SUSPEND answer later: the console
 * client stops being read and the janitor (admin_janitor, every 0.2 s)
 * sends the answer when the condition holds.
 */
#include "admin.h"

#include "admin_internal.h"
#include "cancel.h"
#include "client.h"
#include "config.h"
#include "db.h"
#include "iobuf.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "proto.h"
#include "varcache.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Drivers parse server_version: a PostgreSQL-like number first, in the
 * "16.0 (Debian 16.0-1)" shape every driver already meets, then who we are.
 */
#define ADMIN_SERVER_VERSION "16.0 (pgmux " PGMUX_VERSION ")"

#define ADMIN_MAX_NAMED 64    /* prepared statements or portals per console client */
#define ADMIN_KEEP_BUF  65536 /* output buffer kept between answers */

/* A prepared statement or a portal of the extended protocol: its command text. */
struct admin_named {
    struct admin_named *next;
    char *name;
    char *query;
};

static bool admin_ready_done;
static struct list admin_conns;
static struct database admin_db;
static struct pool admin_the_pool;
static struct user admin_fallback_user;
static char admin_str_dbname[] = ADMIN_NAME;
static char admin_str_user[] = ADMIN_NAME;

/*==== Setup and lookups ====*/

/* The console's database and pool exist from the first use on. */
static void admin_setup(void)
{
    if (admin_ready_done)
        return;
    admin_ready_done = true;
    list_init(&admin_conns);

    struct database *db = &admin_db;
    list_init(&db->head);
    snprintf(db->name, sizeof(db->name), "%s", ADMIN_NAME);
    db->dbname = admin_str_dbname;
    db->forced_user = admin_str_user;
    db->port = G.cfg->listen_port;
    db->pool_size = 2;
    db->min_pool_size = 0;
    db->reserve_pool = 0;
    db->pool_mode = POOL_STATEMENT;
    db->max_db_connections = CONFIG_UNSET;
    db->max_db_client_connections = CONFIG_UNSET;
    db->server_lifetime = -1;

    /* PgBouncer lists the console's forced user in SHOW USERS too. */
    struct user *u = db_find_or_add_user(ADMIN_NAME);
    if (!u) {
        u = &admin_fallback_user;
        snprintf(u->name, sizeof(u->name), "%s", ADMIN_NAME);
        u->pool_mode = u->pool_size = u->reserve_pool = CONFIG_UNSET;
        u->max_user_connections = u->max_user_client_connections = CONFIG_UNSET;
        list_init(&u->head);
    }

    struct pool *p = &admin_the_pool;
    pool_init_struct(p, db, u);
    p->welcome_ready = true;
}

struct database *admin_database(void)
{
    admin_setup();
    return &admin_db;
}

struct pool *admin_pool(void)
{
    admin_setup();
    return &admin_the_pool;
}

bool admin_is_admin_db(const char *dbname)
{
    return strcmp(dbname, "pgbouncer") == 0 || strcmp(dbname, "pgmux") == 0;
}

static struct admin_conn *ac_find(const struct pgsock *c)
{
    struct list *item;
    if (!admin_ready_done)
        return NULL;
    for (item = admin_conns.next; item != &admin_conns; item = item->next) {
        struct admin_conn *ac = container_of(item, struct admin_conn, head);
        if (ac->c == c)
            return ac;
    }
    return NULL;
}

const char *admin_client_user(const struct pgsock *c)
{
    const struct admin_conn *ac = ac_find(c);
    return ac ? ac->user : ADMIN_NAME;
}

/* A comma-separated user list (admin_users, stats_users) names user. */
static bool list_has(const char *csv, const char *name)
{
    size_t n = strlen(name);
    const char *p = csv;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - start) == n && memcmp(start, name, n) == 0)
            return true;
    }
    return false;
}

/*==== Output ====*/

static void admin_write_cb(struct ev_loop *loop, ev_io *w, int revents);

static bool ac_pending(const struct admin_conn *ac)
{
    return ac->out.sent < ac->out.len;
}

/*
 * Give the queued answers to the kernel. False when the connection is
 * broken (the caller disconnects the client). When the socket is full the
 * rest waits for the write watcher.
 */
static bool ac_flush(struct admin_conn *ac)
{
    struct admin_buf *b = &ac->out;
    int fd = ac->c->sbuf.fd;
    if (b->failed || fd < 0)
        return false;
    while (b->sent < b->len) {
        /* Through the sbuf: a TLS client gets the bytes encrypted. */
        ssize_t n = sbuf_write(&ac->c->sbuf, b->data + b->sent, b->len - b->sent);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!ev_is_active(&ac->wio)) {
                    ev_io_set(&ac->wio, fd, EV_WRITE);
                    ev_io_start(loop_main, &ac->wio);
                }
                return true;
            }
            return false;
        }
        b->sent += (size_t)n;
    }
    if (ev_is_active(&ac->wio))
        ev_io_stop(loop_main, &ac->wio);
    b->len = b->sent = 0;
    if (b->cap > ADMIN_KEEP_BUF)
        abuf_free(b); /* a big SHOW CLIENTS should not stay allocated */
    return true;
}

static void admin_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct admin_conn *ac = container_of(w, struct admin_conn, wio);
    (void)loop;
    (void)revents;
    if (!ac_flush(ac)) {
        ev_io_stop(loop_main, &ac->wio);
        client_disconnect(ac->c, NULL, "admin console: send failed: %s",
                          ac->out.failed ? "out of memory" : strerror(errno));
        return;
    }
    if (!ac_pending(ac) && ac->wait == AW_NONE)
        sbuf_continue(&ac->c->sbuf);
}

/*==== Login and disconnect ====*/

static bool peer_is_own_uid(const struct pgsock *c)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (!c->is_unix || c->sbuf.fd < 0)
        return false;
    if (getsockopt(c->sbuf.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return false;
    return cred.uid == getuid();
}

bool admin_pre_login(struct pgsock *c, const char *user)
{
    return strcmp(user, ADMIN_NAME) == 0 && peer_is_own_uid(c);
}

static void free_named(struct admin_named **list, int *count)
{
    while (*list) {
        struct admin_named *n = *list;
        *list = n->next;
        free(n->name);
        free(n->query);
        free(n);
    }
    *count = 0;
}

bool admin_login(struct pgsock *c, const char *user)
{
    admin_setup();
    bool own = admin_pre_login(c, user);
    bool is_admin = own || list_has(G.cfg->admin_users, user);
    bool is_stats = list_has(G.cfg->stats_users, user);
    if (!is_admin && !is_stats) {
        client_disconnect(
            c, "28000", "not allowed: user \"%s\" is in neither admin_users nor stats_users", user);
        return false;
    }
    struct admin_conn *ac = calloc(1, sizeof(*ac));
    if (!ac || !cancel_register(c)) {
        free(ac);
        client_disconnect(c, "53200", "out of memory");
        return false;
    }
    ac->c = c;
    snprintf(ac->user, sizeof(ac->user), "%s", user);
    ac->is_admin = is_admin;
    ev_init(&ac->wio, admin_write_cb);
    list_insert_after(admin_conns.prev, &ac->head);

    c->pool = &admin_the_pool;
    pool_change_client_state(c, CL_ACTIVE);
    admin_db.client_count++;
    admin_the_pool.user->client_count++;
    c->admin = true; /* from here on client_disconnect calls admin_client_closing */
    c->request_time = loop_now();
    if (G.cfg->log_connections)
        slog_info(c, "login attempt: db=%s user=%s (%s console%s)", ADMIN_NAME, user,
                  is_admin ? "admin" : "stats", own ? ", own user on the Unix socket" : "");

    struct admin_buf *b = &ac->out;
    abuf_start(b, PqMsg_AuthenticationRequest);
    abuf_put_u32(b, AUTH_REQ_OK);
    abuf_finish(b);
    abuf_param(b, "server_version", ADMIN_SERVER_VERSION);
    abuf_param(b, "server_encoding", "UTF8");
    abuf_param(b, "client_encoding", "UTF8");
    abuf_param(b, "DateStyle", "ISO");
    abuf_param(b, "TimeZone", "GMT");
    abuf_param(b, "IntervalStyle", "postgres");
    abuf_param(b, "integer_datetimes", "on");
    abuf_param(b, "standard_conforming_strings", "on");
    abuf_param(b, "is_superuser", "on"); /* as PgBouncer, for every console user */
    int app = varcache_lookup("application_name");
    const char *app_name = app >= 0 ? varcache_get(&c->vars, app) : NULL;
    abuf_param(b, "application_name", app_name ? app_name : "");
    abuf_start(b, PqMsg_BackendKeyData);
    abuf_put_bytes(b, c->cancel_key, 8);
    abuf_finish(b);
    abuf_ready(b);
    if (!ac_flush(ac)) {
        client_disconnect(c, NULL, "could not send the admin console welcome");
        return false;
    }
    return true;
}

void admin_client_closing(struct pgsock *c)
{
    struct admin_conn *ac = ac_find(c);
    if (!ac)
        return;
    if (ev_is_active(&ac->wio))
        ev_io_stop(loop_main, &ac->wio);
    abuf_free(&ac->out);
    free_named(&ac->stmts, &ac->n_stmts);
    free_named(&ac->portals, &ac->n_portals);
    list_del(&ac->head);
    free(ac);
}

static void ctx_init(struct admin_ctx *x, struct admin_conn *ac)
{
    memset(x, 0, sizeof(*x));
    x->ac = ac;
    x->c = ac->c;
    x->out = &ac->out;
}

/*==== Simple and extended protocol ====*/

/* A simple Query: the answer, then ReadyForQuery unless the answer comes later. */
static bool admin_query(struct admin_conn *ac, const char *q)
{
    struct admin_ctx x;
    struct admin_parsed pc;
    struct admin_plan plan;

    ctx_init(&x, ac);
    x.want_rowdesc = true;
    log_debug("admin query: %s", q);
    if (admin_prepare(&x, q, &pc, &plan))
        admin_run(&x, &pc, &plan);
    if (x.closed)
        return false;
    if (x.deferred)
        ac->wait_simple = true;
    else
        abuf_ready(&ac->out);
    return true;
}

static struct admin_named *named_find(struct admin_named *list, const char *name)
{
    for (; list; list = list->next)
        if (strcmp(list->name, name) == 0)
            return list;
    return NULL;
}

static void named_remove(struct admin_named **list, int *count, const char *name)
{
    for (struct admin_named **pp = list; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            struct admin_named *n = *pp;
            *pp = n->next;
            free(n->name);
            free(n->query);
            free(n);
            (*count)--;
            return;
        }
    }
}

/* Add or (unnamed only) replace; false when out of memory or over the limit. */
static bool named_add(struct admin_named **list, int *count, const char *name, const char *query)
{
    if (!name[0])
        named_remove(list, count, name);
    if (*count >= ADMIN_MAX_NAMED)
        return false;
    struct admin_named *n = calloc(1, sizeof(*n));
    if (!n)
        return false;
    n->name = strdup(name);
    n->query = strdup(query);
    if (!n->name || !n->query) {
        free(n->name);
        free(n->query);
        free(n);
        return false;
    }
    n->next = *list;
    *list = n;
    (*count)++;
    return true;
}

/* An error in the extended protocol: report it and ignore messages until Sync. */
static void ext_fail(struct admin_conn *ac, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ext_fail(struct admin_conn *ac, const char *sqlstate, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    abuf_error(&ac->out, sqlstate, msg);
    ac->ext_error = true;
}

static void ext_parse(struct admin_conn *ac, struct pkt_reader *r)
{
    const char *name, *query;
    uint16_t nparams;
    const uint8_t *oids;
    if (!reader_get_cstring(r, &name) || !reader_get_cstring(r, &query) ||
        !reader_get_u16(r, &nparams) || !reader_get_bytes(r, (size_t)nparams * 4, &oids) ||
        reader_left(r) != 0) {
        ext_fail(ac, "08P01", "invalid Parse message");
        return;
    }
    struct admin_ctx x;
    struct admin_parsed pc;
    struct admin_plan plan;
    ctx_init(&x, ac);
    if (!admin_prepare(&x, query, &pc, &plan)) {
        ac->ext_error = true;
        return;
    }
    if (name[0] && named_find(ac->stmts, name)) {
        ext_fail(ac, "42P05", "prepared statement \"%.100s\" already exists", name);
        return;
    }
    if (!named_add(&ac->stmts, &ac->n_stmts, name, query)) {
        ext_fail(ac, "53400", "too many prepared statements on this admin console connection");
        return;
    }
    abuf_simple(&ac->out, PqMsg_ParseComplete);
}

static void ext_bind(struct admin_conn *ac, struct pkt_reader *r)
{
    const char *portal, *stmt;
    uint16_t nfmt, nparams, nres;
    const uint8_t *skip;
    if (!reader_get_cstring(r, &portal) || !reader_get_cstring(r, &stmt) ||
        !reader_get_u16(r, &nfmt) || !reader_get_bytes(r, (size_t)nfmt * 2, &skip) ||
        !reader_get_u16(r, &nparams)) {
        ext_fail(ac, "08P01", "invalid Bind message");
        return;
    }
    for (uint16_t i = 0; i < nparams; i++) {
        int32_t len;
        if (!reader_get_i32(r, &len) || (len > 0 && !reader_get_bytes(r, (size_t)len, &skip))) {
            ext_fail(ac, "08P01", "invalid Bind message");
            return;
        }
    }
    if (!reader_get_u16(r, &nres)) {
        ext_fail(ac, "08P01", "invalid Bind message");
        return;
    }
    bool binary = false;
    for (uint16_t i = 0; i < nres; i++) {
        uint16_t f;
        if (!reader_get_u16(r, &f)) {
            ext_fail(ac, "08P01", "invalid Bind message");
            return;
        }
        binary |= f != 0;
    }
    if (reader_left(r) != 0) {
        ext_fail(ac, "08P01", "invalid Bind message");
        return;
    }
    struct admin_named *st = named_find(ac->stmts, stmt);
    if (!st) {
        ext_fail(ac, "26000", "prepared statement \"%.100s\" does not exist", stmt);
        return;
    }
    if (nparams != 0) {
        ext_fail(ac, "08P01",
                 "bind message supplies %u parameters, but the admin console takes none",
                 (unsigned)nparams);
        return;
    }
    if (binary) {
        ext_fail(ac, "0A000", "binary result format is not supported by the admin console");
        return;
    }
    if (portal[0] && named_find(ac->portals, portal)) {
        ext_fail(ac, "42P03", "portal \"%.100s\" already exists", portal);
        return;
    }
    if (!named_add(&ac->portals, &ac->n_portals, portal, st->query)) {
        ext_fail(ac, "53400", "too many portals on this admin console connection");
        return;
    }
    abuf_simple(&ac->out, PqMsg_BindComplete);
}

/* RowDescription or NoData for the command text q, with no side effect. */
static void ext_describe_query(struct admin_conn *ac, const char *q)
{
    struct admin_ctx x;
    struct admin_parsed pc;
    struct admin_plan plan;
    ctx_init(&x, ac);
    x.describe = true;
    x.want_rowdesc = true;
    if (!admin_prepare(&x, q, &pc, &plan)) {
        ac->ext_error = true;
        return;
    }
    admin_run(&x, &pc, &plan);
    if (x.error) {
        ac->ext_error = true;
        return;
    }
    if (!x.has_rows)
        abuf_simple(&ac->out, PqMsg_NoData);
}

static void ext_describe(struct admin_conn *ac, struct pkt_reader *r)
{
    uint8_t kind;
    const char *name;
    if (!reader_get_u8(r, &kind) || !reader_get_cstring(r, &name) || reader_left(r) != 0 ||
        (kind != 'S' && kind != 'P')) {
        ext_fail(ac, "08P01", "invalid Describe message");
        return;
    }
    struct admin_named *n = named_find(kind == 'S' ? ac->stmts : ac->portals, name);
    if (!n) {
        if (kind == 'S')
            ext_fail(ac, "26000", "prepared statement \"%.100s\" does not exist", name);
        else
            ext_fail(ac, "34000", "portal \"%.100s\" does not exist", name);
        return;
    }
    if (kind == 'S') {
        /* No parameters: console commands take their arguments inline. */
        abuf_start(&ac->out, PqMsg_ParameterDescription);
        abuf_put_u16(&ac->out, 0);
        abuf_finish(&ac->out);
    }
    ext_describe_query(ac, n->query);
}

static bool ext_execute(struct admin_conn *ac, struct pkt_reader *r)
{
    const char *name;
    int32_t maxrows;
    if (!reader_get_cstring(r, &name) || !reader_get_i32(r, &maxrows) || reader_left(r) != 0) {
        ext_fail(ac, "08P01", "invalid Execute message");
        return true;
    }
    struct admin_named *n = named_find(ac->portals, name);
    if (!n) {
        ext_fail(ac, "34000", "portal \"%.100s\" does not exist", name);
        return true;
    }
    /* Results are small: every row is sent at once, whatever maxrows says. */
    struct admin_ctx x;
    struct admin_parsed pc;
    struct admin_plan plan;
    ctx_init(&x, ac);
    if (admin_prepare(&x, n->query, &pc, &plan))
        admin_run(&x, &pc, &plan);
    if (x.closed)
        return false;
    if (x.error)
        ac->ext_error = true;
    if (x.deferred)
        ac->wait_simple = false;
    return true;
}

static void ext_close(struct admin_conn *ac, struct pkt_reader *r)
{
    uint8_t kind;
    const char *name;
    if (!reader_get_u8(r, &kind) || !reader_get_cstring(r, &name) || reader_left(r) != 0 ||
        (kind != 'S' && kind != 'P')) {
        ext_fail(ac, "08P01", "invalid Close message");
        return;
    }
    if (kind == 'S')
        named_remove(&ac->stmts, &ac->n_stmts, name);
    else
        named_remove(&ac->portals, &ac->n_portals, name);
    abuf_simple(&ac->out, PqMsg_CloseComplete);
}

/* One extended-protocol message; false when the client was disconnected. */
static bool admin_extended(struct admin_conn *ac, struct pkt_hdr *hdr)
{
    struct pkt_reader r;
    reader_init(&r, hdr->data + 5, hdr->len);
    if (hdr->type == PqMsg_Sync) {
        /* End of the implicit transaction: portals go, errors are forgotten. */
        ac->ext_error = false;
        free_named(&ac->portals, &ac->n_portals);
        abuf_ready(&ac->out);
        return true;
    }
    if (ac->ext_error)
        return true; /* PostgreSQL ignores everything until Sync after an error */
    switch (hdr->type) {
    case PqMsg_Parse:
        ext_parse(ac, &r);
        break;
    case PqMsg_Bind:
        ext_bind(ac, &r);
        break;
    case PqMsg_Describe:
        ext_describe(ac, &r);
        break;
    case PqMsg_Execute:
        return ext_execute(ac, &r);
    case PqMsg_Close:
        ext_close(ac, &r);
        break;
    default: /* Flush: everything is sent at once anyway */
        break;
    }
    return true;
}

/* A message too long to be held whole: skip it and say so. */
static enum sbuf_result admin_too_long(struct admin_conn *ac, struct pkt_hdr *hdr)
{
    struct pgsock *c = ac->c;
    sbuf_skip(&c->sbuf, hdr->total);
    switch (hdr->type) {
    case PqMsg_Query:
        abuf_error(&ac->out, "54000", "query too long for the admin console");
        abuf_ready(&ac->out);
        break;
    case PqMsg_Parse:
    case PqMsg_Bind:
    case PqMsg_Describe:
    case PqMsg_Execute:
    case PqMsg_Close:
        if (!ac->ext_error)
            ext_fail(ac, "54000", "message too long for the admin console");
        break;
    default:
        client_disconnect(c, "08P01", "invalid message for the admin console");
        return SBUF_CLOSED;
    }
    if (!ac_flush(ac)) {
        client_disconnect(c, NULL, "admin console: send failed");
        return SBUF_CLOSED;
    }
    return SBUF_OK;
}

enum sbuf_result admin_handle_pkt(struct pgsock *c, struct pkt_hdr *hdr)
{
    struct admin_conn *ac = ac_find(c);
    if (!ac) {
        client_disconnect(c, "08P01", "admin console state lost");
        return SBUF_CLOSED;
    }
    if (hdr->total == 0 || hdr->len > (uint32_t)G.cfg->max_packet_size) {
        client_disconnect(c, "08P01", "invalid message length");
        return SBUF_CLOSED;
    }
    /* An answer is still on its way: read nothing more until it is out. */
    if (ac->wait != AW_NONE || ac_pending(ac))
        return SBUF_PAUSE;
    if (!hdr->complete) {
        if (hdr->total <= iobuf_size())
            return SBUF_NEED_MORE;
        return admin_too_long(ac, hdr);
    }
    c->request_time = loop_now();
    sbuf_skip(&c->sbuf, hdr->total);

    switch (hdr->type) {
    case PqMsg_Query: {
        struct pkt_reader r;
        const char *q;
        reader_init(&r, hdr->data + 5, hdr->len);
        if (ac->ext_error)
            break;
        if (!reader_get_cstring(&r, &q) || reader_left(&r) != 0) {
            abuf_error(&ac->out, "08P01", "invalid Query message");
            abuf_ready(&ac->out);
            break;
        }
        if (!admin_query(ac, q))
            return SBUF_CLOSED;
        break;
    }
    case PqMsg_Parse:
    case PqMsg_Bind:
    case PqMsg_Describe:
    case PqMsg_Execute:
    case PqMsg_Close:
    case PqMsg_Flush:
    case PqMsg_Sync:
        if (!admin_extended(ac, hdr))
            return SBUF_CLOSED;
        break;
    case PqMsg_FunctionCall:
        abuf_error(&ac->out, "0A000", "function calls are not supported by the admin console");
        abuf_ready(&ac->out);
        break;
    case PqMsg_CopyData:
    case PqMsg_CopyDone:
    case PqMsg_CopyFail:
        break; /* outside COPY these are ignored, as PostgreSQL does */
    case PqMsg_Terminate:
        client_disconnect(c, NULL, "client close request");
        return SBUF_CLOSED;
    default:
        client_disconnect(c, "08P01", "invalid frontend message type %d", hdr->type);
        return SBUF_CLOSED;
    }
    if (!ac_flush(ac)) {
        client_disconnect(c, NULL, "admin console: send failed: %s",
                          ac->out.failed ? "out of memory" : strerror(errno));
        return SBUF_CLOSED;
    }
    return SBUF_OK;
}

/*==== Janitor: answers that come later ====*/

/* Send a deferred answer (tag) or error (tag NULL, msg set); resume reading. */
static void finish_wait(struct admin_conn *ac, const char *tag, const char *msg)
{
    struct pgsock *c = ac->c;
    if (tag)
        abuf_complete(&ac->out, tag);
    else
        abuf_error(&ac->out, "08P01", msg);
    if (ac->wait_simple)
        abuf_ready(&ac->out);
    else if (!tag)
        ac->ext_error = true;
    ac->wait = AW_NONE;
    ac->wait_db = NULL;
    if (!ac_flush(ac)) {
        client_disconnect(c, NULL, "admin console: send failed");
        return;
    }
    if (!ac_pending(ac))
        sbuf_continue(&c->sbuf);
}

void admin_janitor(void)
{
    struct list *item, *tmp;
    double now = loop_now();

    admin_setup();
    admin_the_pool.db->port = G.cfg->listen_port;
    admin_stats_tick(now);

    /* The core closes idle servers of a paused database; used ones are closed here. */
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        struct pool *p = container_of(item, struct pool, head);
        if (p->db->paused && !G.paused)
            admin_close_all_servers(&p->used_servers, "pause mode");
    }

    bool suspend_done = admin_is_suspended() && admin_suspend_step(now);

    for (item = admin_conns.next, tmp = item->next; item != &admin_conns;
         item = tmp, tmp = item->next) {
        struct admin_conn *ac = container_of(item, struct admin_conn, head);
        switch (ac->wait) {
        case AW_NONE:
            break;
        case AW_PAUSE:
            if (ac->wait_db ? !ac->wait_db->paused : !G.paused)
                finish_wait(ac, NULL, "PAUSE canceled by RESUME");
            else if (admin_servers_left(ac->wait_db) == 0)
                finish_wait(ac, "PAUSE", NULL);
            break;
        case AW_WAIT_CLOSE:
            if (admin_close_needed_left(ac->wait_db) == 0)
                finish_wait(ac, "WAIT_CLOSE", NULL);
            break;
        case AW_SUSPEND:
            if (!admin_is_suspended())
                finish_wait(ac, NULL, "SUSPEND canceled by RESUME");
            else if (suspend_done)
                finish_wait(ac, "SUSPEND", NULL);
            break;
        }
    }

    if (admin_is_suspended() && list_empty(&admin_conns)) {
        log_info("admin disappeared when suspended, doing RESUME");
        admin_resume_all();
    }
}
