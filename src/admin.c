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
 * Commands are parsed by hand (no regex): CMD [ARG] [;] where words are
 * [A-Za-z0-9_]+ or "quoted" ("" inside a quote stands for one "), and
 * SET key = value | SET key TO value with value a word, "quoted" or
 * 'string' ('' for '). Lengths are bounded as in PgBouncer.
 *
 * PAUSE, WAIT_CLOSE and SUSPEND answer later: the console client stops
 * being read and the janitor (admin_janitor, every 0.2 s) sends the answer
 * when the condition holds.
 */
#include "admin.h"

#include "admin_show.h"
#include "cancel.h"
#include "client.h"
#include "config.h"
#include "control.h"
#include "db.h"
#include "iobuf.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "proto.h"
#include "server.h"
#include "varcache.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define ADMIN_NAME "pgbouncer"
/*
 * Drivers parse server_version: a PostgreSQL-like number first, in the
 * "16.0 (Debian 16.0-1)" shape every driver already meets, then who we are.
 */
#define ADMIN_SERVER_VERSION "16.0 (pgmux " PGMUX_VERSION ")"

#define ADMIN_MAX_ARG 64      /* an argument is at most 63 bytes, like PgBouncer's */
#define ADMIN_MAX_VALUE 1024  /* a SET value */
#define ADMIN_MAX_NAMED 64    /* prepared statements or portals per console client */
#define ADMIN_KEEP_BUF 65536  /* output buffer kept between answers */

enum admin_wait {
    AW_NONE,
    AW_PAUSE,
    AW_SUSPEND,
    AW_WAIT_CLOSE,
};

/* A prepared statement or a portal of the extended protocol: its command text. */
struct admin_named {
    struct admin_named *next;
    char *name;
    char *query;
};

struct admin_conn {
    struct list head;        /* admin_conns */
    struct pgsock *c;        /* not owned; the disconnect hook frees us first */
    char user[MAX_NAME];     /* the login name */
    bool is_admin;           /* admin_users or our own user: every command */
    struct admin_buf out;    /* answers not yet taken by the kernel */
    ev_io wio;               /* armed while out is pending and the socket is full */
    bool ext_error;          /* extended protocol: skip messages until Sync */
    struct admin_named *stmts, *portals;
    int n_stmts, n_portals;
    enum admin_wait wait;    /* an answer the janitor sends later */
    bool wait_simple;        /* ... followed by ReadyForQuery (simple protocol) */
    struct database *wait_db; /* NULL = every database */
};

static bool admin_ready_done;
static struct list admin_conns;
static struct database admin_db;
static struct pool admin_the_pool;
static struct user admin_fallback_user;
static char admin_str_dbname[] = ADMIN_NAME;
static char admin_str_user[] = ADMIN_NAME;

/* SUSPEND: sockets we stopped reading, resumed by RESUME. */
struct admin_susp {
    struct pgsock *s;
    uint64_t id; /* the slab may reuse s: a different id means it is gone */
};
static bool suspended;
static double suspend_start;
static struct admin_susp *susp;
static size_t n_susp, cap_susp;

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
    list_init(&p->head);
    p->db = db;
    p->user = u;
    statlist_init(&p->waiting_login);
    statlist_init(&p->waiting_clients);
    statlist_init(&p->active_clients);
    statlist_init(&p->new_servers);
    statlist_init(&p->idle_servers);
    statlist_init(&p->active_servers);
    statlist_init(&p->used_servers);
    statlist_init(&p->tested_servers);
    statlist_init(&p->canceling_servers);
    p->last_login_ok = true;
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

bool admin_is_suspended(void)
{
    return suspended;
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

/* The database a command names, "pgbouncer"/"pgmux" meaning the console's own. */
static struct database *find_db(const char *name)
{
    struct list *item;
    if (admin_is_admin_db(name))
        return &admin_db;
    for (item = G.databases.next; item != &G.databases; item = item->next) {
        struct database *db = container_of(item, struct database, head);
        if (!db->dead && strcmp(db->name, name) == 0)
            return db;
    }
    return NULL;
}

/* Like find_db, but makes an auto-database from "*" like a login would. */
static struct database *find_or_register_db(const char *name)
{
    if (admin_is_admin_db(name))
        return &admin_db;
    struct database *db = db_find_or_auto(name);
    return db && !db->dead ? db : NULL;
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
        ssize_t n = send(fd, b->data + b->sent, b->len - b->sent, MSG_NOSIGNAL);
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
        client_disconnect(c, "28000",
                          "not allowed: user \"%s\" is in neither admin_users nor stats_users",
                          user);
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
    abuf_param(b, "is_superuser", is_admin ? "on" : "off");
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

/*==== Command parsing ====*/

enum admin_kind {
    AK_EMPTY,   /* nothing but blanks and ';' */
    AK_COMMAND, /* CMD [ARG] */
    AK_SET,     /* SET key = value */
};

enum parse_result {
    PARSE_OK,
    PARSE_SYNTAX,   /* "invalid command ..., use SHOW HELP;" */
    PARSE_BAD_ARGS, /* an argument too long or badly quoted */
};

struct admin_parsed {
    enum admin_kind kind;
    char cmd[16];               /* lower case */
    char arg[ADMIN_MAX_ARG];    /* as written, quotes removed */
    bool has_arg;
    char key[ADMIN_MAX_ARG];    /* SET: lower case */
    char value[ADMIN_MAX_VALUE];
};

enum tok {
    TOK_NONE, /* not there */
    TOK_OK,
    TOK_BAD,  /* too long, unterminated or empty quote */
};

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static bool is_word(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

static const char *skip_blank(const char *p)
{
    while (is_blank(*p))
        p++;
    return p;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* Text between quote characters q, where a doubled q stands for one. */
static enum tok read_quoted(const char **pp, char q, char *dst, size_t cap, bool allow_empty)
{
    const char *p = *pp + 1;
    size_t n = 0;
    for (;;) {
        if (*p == 0)
            return TOK_BAD;
        if (*p == q) {
            if (p[1] != q)
                break;
            p++;
        }
        if (n + 1 >= cap)
            return TOK_BAD;
        dst[n++] = *p++;
    }
    if (n == 0 && !allow_empty)
        return TOK_BAD;
    dst[n] = 0;
    *pp = p + 1;
    return TOK_OK;
}

/* A word or a "quoted identifier". */
static enum tok read_ident(const char **pp, char *dst, size_t cap)
{
    const char *p = *pp;
    size_t n = 0;
    if (*p == '"')
        return read_quoted(pp, '"', dst, cap, false);
    while (is_word(*p)) {
        if (n + 1 >= cap)
            return TOK_BAD;
        dst[n++] = *p++;
    }
    if (n == 0)
        return TOK_NONE;
    dst[n] = 0;
    *pp = p;
    return TOK_OK;
}

/* An unquoted SET value: a word, or a number such as 1.5 or -1. */
static enum tok read_bare_value(const char **pp, char *dst, size_t cap)
{
    const char *p = *pp;
    size_t n = 0;
    while (is_word(*p) || *p == '.' || *p == '-' || *p == '+' || *p == ':' || *p == '/') {
        if (n + 1 >= cap)
            return TOK_BAD;
        dst[n++] = *p++;
    }
    if (n == 0)
        return TOK_NONE;
    dst[n] = 0;
    *pp = p;
    return TOK_OK;
}

/* Blanks, an optional ';', blanks, end. */
static enum parse_result parse_end(const char *p)
{
    p = skip_blank(p);
    if (*p == ';')
        p = skip_blank(p + 1);
    return *p == 0 ? PARSE_OK : PARSE_SYNTAX;
}

static enum parse_result parse_set(const char *p, struct admin_parsed *pc)
{
    const char *before = p;
    enum tok t;
    p = skip_blank(p);
    if (p == before)
        return PARSE_SYNTAX;
    t = read_ident(&p, pc->key, sizeof(pc->key));
    if (t != TOK_OK)
        return t == TOK_NONE ? PARSE_SYNTAX : PARSE_BAD_ARGS;
    lower(pc->key);
    p = skip_blank(p);
    if (*p == '=') {
        p++;
    } else {
        char w[4];
        if (read_ident(&p, w, sizeof(w)) != TOK_OK || strcasecmp(w, "to") != 0)
            return PARSE_SYNTAX;
    }
    p = skip_blank(p);
    if (*p == '\'')
        t = read_quoted(&p, '\'', pc->value, sizeof(pc->value), true);
    else if (*p == '"')
        t = read_quoted(&p, '"', pc->value, sizeof(pc->value), true);
    else
        t = read_bare_value(&p, pc->value, sizeof(pc->value));
    if (t != TOK_OK)
        return t == TOK_NONE ? PARSE_SYNTAX : PARSE_BAD_ARGS;
    pc->kind = AK_SET;
    return parse_end(p);
}

static enum parse_result admin_parse(const char *q, struct admin_parsed *pc)
{
    char word[ADMIN_MAX_ARG];
    const char *p = skip_blank(q);

    memset(pc, 0, sizeof(*pc));
    if (parse_end(p) == PARSE_OK) {
        pc->kind = AK_EMPTY;
        return PARSE_OK;
    }
    if (read_ident(&p, word, sizeof(word)) != TOK_OK || strlen(word) >= sizeof(pc->cmd))
        return PARSE_SYNTAX;
    snprintf(pc->cmd, sizeof(pc->cmd), "%s", word);
    lower(pc->cmd);
    if (strcmp(pc->cmd, "set") == 0)
        return parse_set(p, pc);
    pc->kind = AK_COMMAND;
    const char *before = p;
    p = skip_blank(p);
    if (p != before && (*p == '"' || is_word(*p))) {
        if (read_ident(&p, pc->arg, sizeof(pc->arg)) != TOK_OK)
            return PARSE_BAD_ARGS;
        pc->has_arg = true;
    }
    return parse_end(p);
}

/* The query as it may appear in an error message: printable, at most ~200 bytes. */
static void printable(const char *q, char *buf, size_t len)
{
    size_t n = 0;
    for (; *q && n + 4 < len; q++) {
        unsigned char ch = (unsigned char)*q;
        buf[n++] = ch < 0x20 || ch == 0x7f ? ' ' : ch >= 0x80 ? '?' : (char)ch;
    }
    if (*q) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = 0;
}

/*==== Commands ====*/

typedef void (*admin_cmd_fn)(struct admin_ctx *x, const struct admin_parsed *pc);

#define CMD_ADMIN 1 /* admin_users only */
#define CMD_NOARG 2 /* takes no argument (an argument is a syntax error) */
#define CMD_ROWS 4  /* answers with a result set (SHOW, SELECT) */

struct admin_command {
    const char *name;
    admin_cmd_fn fn;
    int flags;
};

/* What a parsed command will do, known before running it (for Describe). */
struct admin_plan {
    const struct admin_command *cmd; /* NULL for AK_EMPTY and AK_SET */
    bool rows;
};

static void complete(struct admin_ctx *x, const char *tag)
{
    abuf_complete(x->out, tag);
}

static void defer(struct admin_ctx *x, enum admin_wait what, struct database *db)
{
    x->deferred = true;
    x->ac->wait = what;
    x->ac->wait_db = db;
}

static int servers_left(const struct database *db)
{
    int n = 0;
    struct list *item;
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        const struct pool *p = container_of(item, struct pool, head);
        if (!db || p->db == db)
            n += pool_server_count(p);
    }
    return n;
}

static int close_needed_in(const struct statlist *l)
{
    int n = 0;
    struct list *item;
    for (item = l->head.next; item != &l->head; item = item->next)
        n += container_of(item, struct pgsock, head)->close_needed;
    return n;
}

static int close_needed_left(const struct database *db)
{
    int n = 0;
    struct list *item;
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        const struct pool *p = container_of(item, struct pool, head);
        if (db && p->db != db)
            continue;
        n += close_needed_in(&p->active_servers) + close_needed_in(&p->idle_servers) +
             close_needed_in(&p->new_servers) + close_needed_in(&p->tested_servers) +
             close_needed_in(&p->used_servers) + close_needed_in(&p->canceling_servers);
    }
    return n;
}

static void close_all_servers(struct statlist *l, const char *why)
{
    struct list *item;
    while ((item = statlist_first(l)))
        server_disconnect(container_of(item, struct pgsock, head), "%s", why);
}

static void close_all_clients(struct statlist *l, const char *why)
{
    struct list *item;
    while ((item = statlist_first(l)))
        client_disconnect(container_of(item, struct pgsock, head), "08P01", "%s", why);
}

/* Unlinked servers of paused databases go at once; linked ones when released. */
static void close_unused_servers(const struct database *db, const char *why)
{
    struct list *item;
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        struct pool *p = container_of(item, struct pool, head);
        if (db && p->db != db)
            continue;
        close_all_servers(&p->idle_servers, why);
        close_all_servers(&p->used_servers, why);
    }
}

static bool any_db_paused(void)
{
    struct list *item;
    for (item = G.databases.next; item != &G.databases; item = item->next)
        if (container_of(item, struct database, head)->paused)
            return true;
    return false;
}

static void resume_suspended(void)
{
    if (!suspended)
        return;
    suspended = false;
    for (size_t i = 0; i < n_susp; i++) {
        struct pgsock *s = susp[i].s;
        bool alive = s->id == susp[i].id && s->state != CL_FREE && s->state != CL_JUSTFREE &&
                     s->state != SV_FREE && s->state != SV_JUSTFREE && !s->sbuf.closed;
        if (alive)
            sbuf_continue(&s->sbuf);
    }
    n_susp = 0;
    if (!G.shutting_down)
        listener_start();
}

/* RESUME without a database: undo PAUSE, SUSPEND and every per-database pause. */
static void resume_all(void)
{
    struct list *item;
    G.paused = false;
    for (item = G.databases.next; item != &G.databases; item = item->next)
        container_of(item, struct database, head)->paused = false;
    resume_suspended();
    G.launch_needed = true;
}

static void cmd_show(struct admin_ctx *x, const struct admin_parsed *pc)
{
    if (admin_fake_param(pc->arg)) {
        admin_show_fake_param(x, pc->arg);
        return;
    }
    const struct admin_show_entry *e = admin_show_find(pc->arg);
    if (!e) {
        admin_ctx_error(x, "invalid command 'SHOW %s', use SHOW HELP;", pc->arg);
        return;
    }
    if (e->admin_only && !x->ac->is_admin && !x->describe) {
        admin_ctx_error(x, "admin access needed");
        return;
    }
    e->fn(x);
}

static void cmd_select(struct admin_ctx *x, const struct admin_parsed *pc)
{
    if (strcmp(pc->arg, "1") == 0)
        admin_select_one(x);
    else
        cmd_show(x, pc);
}

static void cmd_begin(struct admin_ctx *x, const struct admin_parsed *pc)
{
    /* No transactions here; accepting BEGIN lets non-autocommit drivers read SHOW. */
    complete(x, strcmp(pc->cmd, "start") == 0 ? "START TRANSACTION" : "BEGIN");
}

static void cmd_commit(struct admin_ctx *x, const struct admin_parsed *pc)
{
    complete(x, strcmp(pc->cmd, "rollback") == 0 || strcmp(pc->cmd, "abort") == 0 ? "ROLLBACK"
                                                                                   : "COMMIT");
}

static void cmd_pause(struct admin_ctx *x, const struct admin_parsed *pc)
{
    if (G.paused || suspended) {
        admin_ctx_error(x, "already suspended/paused");
        return;
    }
    if (!pc->has_arg) {
        log_info("PAUSE command issued");
        G.paused = true;
        close_unused_servers(NULL, "pause mode");
        defer(x, AW_PAUSE, NULL);
        return;
    }
    struct database *db = find_or_register_db(pc->arg);
    if (!db) {
        admin_ctx_error(x, "no such database: %s", pc->arg);
        return;
    }
    if (db == &admin_db) {
        admin_ctx_error(x, "cannot pause admin db: %s", pc->arg);
        return;
    }
    log_info("PAUSE '%s' command issued", pc->arg);
    db->paused = true;
    close_unused_servers(db, "pause mode");
    if (servers_left(db) > 0)
        defer(x, AW_PAUSE, db);
    else
        complete(x, "PAUSE");
}

static void cmd_resume(struct admin_ctx *x, const struct admin_parsed *pc)
{
    if (!pc->has_arg) {
        log_info("RESUME command issued");
        if (G.shutting_down) {
            admin_ctx_error(x, "pooler is shutting down");
            return;
        }
        if (!G.paused && !suspended && !any_db_paused()) {
            admin_ctx_error(x, "pooler is not paused/suspended");
            return;
        }
        resume_all();
    } else {
        log_info("RESUME '%s' command issued", pc->arg);
        struct database *db = find_db(pc->arg);
        if (!db) {
            admin_ctx_error(x, "no such database: %s", pc->arg);
            return;
        }
        if (!db->paused) {
            admin_ctx_error(x, "database %s is not paused", pc->arg);
            return;
        }
        db->paused = false;
        G.launch_needed = true;
    }
    complete(x, "RESUME");
}

static void cmd_suspend(struct admin_ctx *x, const struct admin_parsed *pc)
{
    (void)pc;
    if (G.paused || suspended) {
        admin_ctx_error(x, "already suspended/paused");
        return;
    }
    if (any_db_paused()) {
        admin_ctx_error(x, "cannot suspend with paused databases");
        return;
    }
    log_info("SUSPEND command issued");
    suspended = true;
    suspend_start = loop_now();
    n_susp = 0;
    /* The Unix socket stays open so an operator on the host can still RESUME. */
    listener_stop(false);
    defer(x, AW_SUSPEND, NULL);
}

static void cmd_disable(struct admin_ctx *x, const struct admin_parsed *pc)
{
    if (!pc->has_arg) {
        admin_ctx_error(x, "a database is required");
        return;
    }
    log_info("DISABLE '%s' command issued", pc->arg);
    struct database *db = find_or_register_db(pc->arg);
    if (!db) {
        admin_ctx_error(x, "no such database: %s", pc->arg);
        return;
    }
    if (db == &admin_db) {
        admin_ctx_error(x, "cannot disable admin db: %s", pc->arg);
        return;
    }
    db->disabled = true;
    complete(x, "DISABLE");
}

static void cmd_enable(struct admin_ctx *x, const struct admin_parsed *pc)
{
    if (!pc->has_arg) {
        admin_ctx_error(x, "a database is required");
        return;
    }
    log_info("ENABLE '%s' command issued", pc->arg);
    struct database *db = find_db(pc->arg);
    if (!db) {
        admin_ctx_error(x, "no such database: %s", pc->arg);
        return;
    }
    if (db == &admin_db) {
        admin_ctx_error(x, "cannot enable admin db: %s", pc->arg);
        return;
    }
    db->disabled = false;
    complete(x, "ENABLE");
}

/* Every server of the pool is replaced: unused ones now, the others when released. */
static void tag_pool_dirty(struct pool *p)
{
    struct statlist *lists[] = {&p->new_servers, &p->active_servers, &p->tested_servers,
                                &p->canceling_servers, &p->idle_servers, &p->used_servers};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        struct list *item;
        for (item = lists[i]->head.next; item != &lists[i]->head; item = item->next)
            container_of(item, struct pgsock, head)->close_needed = true;
    }
    close_all_servers(&p->idle_servers, "close_needed");
    close_all_servers(&p->used_servers, "close_needed");
}

static void cmd_reconnect(struct admin_ctx *x, const struct admin_parsed *pc)
{
    struct database *db = NULL;
    if (pc->has_arg) {
        log_info("RECONNECT '%s' command issued", pc->arg);
        db = find_or_register_db(pc->arg);
        if (!db) {
            admin_ctx_error(x, "no such database: %s", pc->arg);
            return;
        }
        if (db == &admin_db) {
            admin_ctx_error(x, "cannot reconnect admin db: %s", pc->arg);
            return;
        }
    } else {
        log_info("RECONNECT command issued");
    }
    struct list *item;
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        struct pool *p = container_of(item, struct pool, head);
        if (!db || p->db == db)
            tag_pool_dirty(p);
    }
    G.launch_needed = true;
    complete(x, "RECONNECT");
}

static void kill_pool(struct pool *p)
{
    /* PgBouncer's reason text, so logs read the same. */
    const char *why = "database removed";
    close_all_clients(&p->active_clients, why);
    close_all_clients(&p->waiting_clients, why);
    close_all_clients(&p->waiting_login, why);
    close_all_servers(&p->active_servers, why);
    close_all_servers(&p->tested_servers, why);
    close_all_servers(&p->canceling_servers, why);
    close_all_servers(&p->idle_servers, why);
    close_all_servers(&p->used_servers, why);
    close_all_servers(&p->new_servers, why);
}

static void cmd_kill(struct admin_ctx *x, const struct admin_parsed *pc)
{
    struct list *item;
    if (G.paused || suspended) {
        admin_ctx_error(x, "already suspended/paused");
        return;
    }
    struct database *db = NULL;
    if (pc->has_arg) {
        log_info("KILL '%s' command issued", pc->arg);
        db = find_or_register_db(pc->arg);
        if (!db) {
            admin_ctx_error(x, "no such database: %s", pc->arg);
            return;
        }
        if (db == &admin_db) {
            admin_ctx_error(x, "cannot kill admin db: %s", pc->arg);
            return;
        }
        db->paused = true;
    } else {
        log_info("KILL command issued");
        for (item = G.databases.next; item != &G.databases; item = item->next)
            container_of(item, struct database, head)->paused = true;
    }
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        struct pool *p = container_of(item, struct pool, head);
        if (!db || p->db == db)
            kill_pool(p);
    }
    complete(x, "KILL");
}

static struct pgsock *find_client_in(const struct statlist *l, uint64_t id)
{
    struct list *item;
    for (item = l->head.next; item != &l->head; item = item->next) {
        struct pgsock *c = container_of(item, struct pgsock, head);
        if (c->id == id)
            return c;
    }
    return NULL;
}

static struct pgsock *find_client(uint64_t id)
{
    struct pgsock *c = find_client_in(&admin_the_pool.active_clients, id);
    struct list *item;
    for (item = G.pools.next; item != &G.pools && !c; item = item->next) {
        const struct pool *p = container_of(item, struct pool, head);
        c = find_client_in(&p->active_clients, id);
        if (!c)
            c = find_client_in(&p->waiting_clients, id);
        if (!c)
            c = find_client_in(&p->waiting_login, id);
    }
    return c;
}

static void cmd_kill_client(struct admin_ctx *x, const struct admin_parsed *pc)
{
    const char *s = pc->arg;
    uint64_t id = 0;
    bool ok = pc->has_arg && *s && strlen(s) <= 19;
    for (; ok && *s; s++) {
        if (*s < '0' || *s > '9')
            ok = false;
        else
            id = id * 10 + (uint64_t)(*s - '0');
    }
    if (!ok) {
        admin_ctx_error(x, "invalid client pointer supplied");
        return;
    }
    struct pgsock *c = find_client(id);
    if (!c) {
        admin_ctx_error(x, "client not found");
        return;
    }
    log_info("KILL_CLIENT %llu command issued", (unsigned long long)id);
    if (c == x->c) {
        x->closed = true;
        client_disconnect(c, "08P01", "admin forced disconnect");
        return;
    }
    client_disconnect(c, "08P01", "admin forced disconnect");
    complete(x, "KILL_CLIENT");
}

static void cmd_wait_close(struct admin_ctx *x, const struct admin_parsed *pc)
{
    struct database *db = NULL;
    if (pc->has_arg) {
        log_info("WAIT_CLOSE '%s' command issued", pc->arg);
        db = find_or_register_db(pc->arg);
        if (!db) {
            admin_ctx_error(x, "no such database: %s", pc->arg);
            return;
        }
        if (db == &admin_db) {
            admin_ctx_error(x, "cannot wait in admin db: %s", pc->arg);
            return;
        }
    } else {
        log_info("WAIT_CLOSE command issued");
    }
    if (close_needed_left(db) > 0)
        defer(x, AW_WAIT_CLOSE, db);
    else
        complete(x, "WAIT_CLOSE");
}

static void cmd_reload(struct admin_ctx *x, const struct admin_parsed *pc)
{
    char err[700];
    (void)pc;
    log_info("RELOAD command issued");
    if (!pgmux_reload(err, sizeof(err))) {
        char msg[800];
        snprintf(msg, sizeof(msg), "RELOAD failed: %s", err);
        abuf_error(x->out, "F0000", msg);
        x->error = true;
        return;
    }
    complete(x, "RELOAD");
}

static void cmd_shutdown(struct admin_ctx *x, const struct admin_parsed *pc)
{
    if (!pc->has_arg) {
        /* Like PgBouncer: no answer, the connection ends with the process. */
        log_info("SHUTDOWN command issued");
        pgmux_exit_now();
    }
    int mode = strcasecmp(pc->arg, "wait_for_servers") == 0 ? 1 : 2;
    const char *why = mode == 1 ? "SHUTDOWN WAIT_FOR_SERVERS command issued"
                                : "SHUTDOWN WAIT_FOR_CLIENTS command issued";
    if (G.shutting_down) {
        /* A second SHUTDOWN only changes what to wait for. */
        log_info("%s", why);
        G.shutdown_mode = mode;
        if (mode == 1)
            G.paused = true;
    } else {
        pgmux_begin_shutdown(mode, why);
    }
    complete(x, "SHUTDOWN");
}

static const struct admin_command commands[] = {
    {"abort", cmd_commit, CMD_NOARG},
    {"begin", cmd_begin, 0},
    {"commit", cmd_commit, CMD_NOARG},
    {"disable", cmd_disable, CMD_ADMIN},
    {"enable", cmd_enable, CMD_ADMIN},
    {"end", cmd_commit, CMD_NOARG},
    {"kill", cmd_kill, CMD_ADMIN},
    {"kill_client", cmd_kill_client, CMD_ADMIN},
    {"pause", cmd_pause, CMD_ADMIN},
    {"reconnect", cmd_reconnect, CMD_ADMIN},
    {"reload", cmd_reload, CMD_ADMIN | CMD_NOARG},
    {"resume", cmd_resume, CMD_ADMIN},
    {"rollback", cmd_commit, CMD_NOARG},
    {"select", cmd_select, CMD_ROWS},
    {"show", cmd_show, CMD_ROWS},
    {"shutdown", cmd_shutdown, CMD_ADMIN},
    {"start", cmd_begin, 0},
    {"suspend", cmd_suspend, CMD_ADMIN | CMD_NOARG},
    {"wait_close", cmd_wait_close, CMD_ADMIN},
};

static const struct admin_command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Everything about the command that can be judged without running it. */
static bool admin_resolve(const struct admin_parsed *pc, struct admin_plan *plan)
{
    memset(plan, 0, sizeof(*plan));
    if (pc->kind != AK_COMMAND)
        return true;
    const struct admin_command *cmd = find_command(pc->cmd);
    if (!cmd || ((cmd->flags & CMD_NOARG) && pc->has_arg))
        return false;
    plan->cmd = cmd;
    if (cmd->flags & CMD_ROWS) {
        if (!pc->has_arg)
            return false;
        if (cmd->fn == cmd_select && strcmp(pc->arg, "1") == 0) {
            plan->rows = true;
            return true;
        }
        if (admin_fake_param(pc->arg)) {
            plan->rows = true;
            return true;
        }
        const struct admin_show_entry *e = admin_show_find(pc->arg);
        if (!e)
            return false;
        plan->rows = !e->no_rows;
        return true;
    }
    if (cmd->fn == cmd_shutdown && pc->has_arg)
        return strcasecmp(pc->arg, "wait_for_servers") == 0 ||
               strcasecmp(pc->arg, "wait_for_clients") == 0;
    if (cmd->fn == cmd_begin && pc->has_arg)
        return strcasecmp(pc->arg, "transaction") == 0 || strcasecmp(pc->arg, "work") == 0;
    if (cmd->fn == cmd_begin && strcmp(pc->cmd, "start") == 0)
        return pc->has_arg && strcasecmp(pc->arg, "transaction") == 0;
    return true;
}

/* Parse and resolve q; on failure write PgBouncer's error and return false. */
static bool admin_prepare(struct admin_ctx *x, const char *q, struct admin_parsed *pc,
                          struct admin_plan *plan)
{
    enum parse_result r = admin_parse(q, pc);
    if (r == PARSE_OK && admin_resolve(pc, plan))
        return true;
    if (r == PARSE_BAD_ARGS) {
        admin_ctx_error(x, "bad arguments");
    } else {
        char shown[256];
        printable(q, shown, sizeof(shown));
        admin_ctx_error(x, "invalid command '%s', use SHOW HELP;", shown);
    }
    return false;
}

static void admin_set(struct admin_ctx *x, const struct admin_parsed *pc)
{
    if (admin_fake_param(pc->key)) {
        abuf_notice(x->out, "SET ignored", NULL);
        complete(x, "SET");
        return;
    }
    if (!x->ac->is_admin) {
        admin_ctx_error(x, "admin access needed");
        return;
    }
    struct config_error err;
    memset(&err, 0, sizeof(err));
    if (!config_set(G.cfg, pc->key, pc->value, &err)) {
        admin_ctx_error(x, "SET failed: %s: %s", pc->key, err.msg);
        return;
    }
    log_info("SET %s = '%s' command issued", pc->key, pc->value);
    if (strcmp(pc->key, "logfile") == 0 || strcmp(pc->key, "verbose") == 0 ||
        strncmp(pc->key, "syslog", 6) == 0 || strcmp(pc->key, "log_format") == 0)
        log_configure(G.cfg);
    /* Pool sizes and limits are read live: let waiting clients see the change. */
    G.launch_needed = true;
    char tag[ADMIN_MAX_ARG + ADMIN_MAX_VALUE + 8];
    snprintf(tag, sizeof(tag), "SET %s=%s", pc->key, pc->value);
    complete(x, tag);
}

/*
 * Run a prepared command into x. In a Describe (x->describe) nothing
 * happens but the RowDescription of commands that return rows.
 */
static void admin_run(struct admin_ctx *x, const struct admin_parsed *pc,
                      const struct admin_plan *plan)
{
    switch (pc->kind) {
    case AK_EMPTY:
        if (!x->describe)
            abuf_simple(x->out, PqMsg_EmptyQueryResponse);
        return;
    case AK_SET:
        if (!x->describe)
            admin_set(x, pc);
        return;
    case AK_COMMAND:
        break;
    }
    if (x->describe && !plan->rows)
        return;
    if ((plan->cmd->flags & CMD_ADMIN) && !x->ac->is_admin) {
        admin_ctx_error(x, "admin access needed");
        return;
    }
    plan->cmd->fn(x, pc);
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
        if (!reader_get_i32(r, &len) ||
            (len > 0 && !reader_get_bytes(r, (size_t)len, &skip))) {
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

static void susp_add(struct pgsock *s)
{
    if (n_susp == cap_susp) {
        size_t cap = cap_susp ? cap_susp * 2 : 256;
        struct admin_susp *p = realloc(susp, cap * sizeof(*p));
        if (!p)
            return; /* not resumed by RESUME; its owner resumes it on its next event */
        susp = p;
        cap_susp = cap;
    }
    susp[n_susp].s = s;
    susp[n_susp].id = s->id;
    n_susp++;
}

/*
 * Stop reading one socket once everything it received was passed on.
 * Returns 1 while it still has bytes in flight (or is logging in).
 */
static int suspend_sock(struct pgsock *s, bool force)
{
    struct sbuf *sb = &s->sbuf;
    if (sb->closed)
        return 0;
    if (sb->paused && sbuf_is_empty(sb))
        return 0;
    bool busy = s->state == SV_LOGIN || sb->connecting || sb->wait_send || !sbuf_is_empty(sb);
    if (!busy) {
        sbuf_pause(sb);
        susp_add(s);
        return 0;
    }
    if (!force)
        return 1;
    if (s->is_server)
        server_disconnect(s, "suspend_timeout");
    else
        client_disconnect(s, "08P01", "suspend_timeout");
    return 0;
}

static int suspend_list(struct statlist *l, bool force)
{
    int busy = 0;
    struct list *item, *tmp;
    statlist_foreach_safe(item, tmp, l)
    {
        busy += suspend_sock(container_of(item, struct pgsock, head), force);
    }
    return busy;
}

/* One SUSPEND step: true when every socket is quiet. */
static bool suspend_step(double now)
{
    bool force = G.cfg->suspend_timeout > 0 && now - suspend_start >= G.cfg->suspend_timeout;
    int busy = suspend_list(&G.login_clients, force);
    struct list *item;
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        struct pool *p = container_of(item, struct pool, head);
        int b = suspend_list(&p->active_clients, force) + suspend_list(&p->waiting_clients, force) +
                suspend_list(&p->waiting_login, force);
        /* Servers stop only after their clients: results must reach them first. */
        if (b == 0)
            b = suspend_list(&p->active_servers, force) + suspend_list(&p->idle_servers, force) +
                suspend_list(&p->used_servers, force) + suspend_list(&p->tested_servers, force) +
                suspend_list(&p->canceling_servers, force) + suspend_list(&p->new_servers, force);
        busy += b;
    }
    return busy == 0;
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
            close_all_servers(&p->used_servers, "pause mode");
    }

    bool suspend_done = suspended && suspend_step(now);

    for (item = admin_conns.next, tmp = item->next; item != &admin_conns;
         item = tmp, tmp = item->next) {
        struct admin_conn *ac = container_of(item, struct admin_conn, head);
        switch (ac->wait) {
        case AW_NONE:
            break;
        case AW_PAUSE:
            if (ac->wait_db ? !ac->wait_db->paused : !G.paused)
                finish_wait(ac, NULL, "PAUSE canceled by RESUME");
            else if (servers_left(ac->wait_db) == 0)
                finish_wait(ac, "PAUSE", NULL);
            break;
        case AW_WAIT_CLOSE:
            if (close_needed_left(ac->wait_db) == 0)
                finish_wait(ac, "WAIT_CLOSE", NULL);
            break;
        case AW_SUSPEND:
            if (!suspended)
                finish_wait(ac, NULL, "SUSPEND canceled by RESUME");
            else if (suspend_done)
                finish_wait(ac, "SUSPEND", NULL);
            break;
        }
    }

    if (suspended && list_empty(&admin_conns)) {
        log_info("admin disappeared when suspended, doing RESUME");
        resume_all();
    }
}
