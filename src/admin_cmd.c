/* SPDX-License-Identifier: ISC */
/*
 * admin_cmd: parsing and running the console's commands, and SUSPEND.
 *
 * Commands are parsed by hand (no regex): CMD [ARG] [;] where words are
 * [A-Za-z0-9_]+ or "quoted" ("" inside a quote stands for one "), and
 * SET key = value | SET key TO value with value a word, "quoted" or
 * 'string' ('' for '). An argument is at most 63 bytes and a SET value
 * 1023, as in PgBouncer; this is untrusted input, so every copy is bounded
 * and a bad command is an ErrorResponse, never a closed connection.
 *
 * A command is parsed and resolved (is it known, does it take that
 * argument, does it answer with rows) before it runs, so the extended
 * protocol can answer Parse and Describe without running anything.
 * Permissions (admin_users for everything, stats_users for SHOW) are
 * checked when it runs.
 *
 * PAUSE, WAIT_CLOSE and SUSPEND only record what they wait for; admin.c's
 * janitor sends their answer. SUSPEND stops reading every socket once its
 * buffer is empty (clients first, their servers after), and RESUME starts
 * them again.
 */
#include "admin.h"

#include "admin_internal.h"
#include "client.h"
#include "config.h"
#include "control.h"
#include "db.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "proto.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* SUSPEND: sockets we stopped reading, resumed by RESUME. */
struct admin_susp {
    struct pgsock *s;
    uint64_t id; /* the slab may reuse s: a different id means it is gone */
};
static bool suspended;
static double suspend_start;
static struct admin_susp *susp;
static size_t n_susp, cap_susp;

bool admin_is_suspended(void)
{
    return suspended;
}

/*==== Command parsing ====*/

enum parse_result {
    PARSE_OK,
    PARSE_SYNTAX,   /* "invalid command ..., use SHOW HELP;" */
    PARSE_BAD_ARGS, /* an argument too long or badly quoted */
};

enum tok {
    TOK_NONE, /* not there */
    TOK_OK,
    TOK_BAD, /* too long, unterminated or empty quote */
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

/* A word or a "quoted identifier" (no control characters: names end up in the log). */
static enum tok read_ident(const char **pp, char *dst, size_t cap)
{
    const char *p = *pp;
    size_t n = 0;
    if (*p == '"') {
        enum tok t = read_quoted(pp, '"', dst, cap, false);
        for (const char *q = dst; t == TOK_OK && *q; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                t = TOK_BAD;
        return t;
    }
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

/* The database a command names, "pgbouncer"/"pgmux" meaning the console's own. */
static struct database *find_db(const char *name)
{
    struct list *item;
    if (admin_is_admin_db(name))
        return admin_database();
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
        return admin_database();
    struct database *db = db_find_or_auto(name);
    return db && !db->dead ? db : NULL;
}

typedef void (*admin_cmd_fn)(struct admin_ctx *x, const struct admin_parsed *pc);

#define CMD_ADMIN 1 /* admin_users only */
#define CMD_NOARG 2 /* takes no argument (an argument is a syntax error) */
#define CMD_ROWS  4 /* answers with a result set (SHOW, SELECT) */

struct admin_command {
    const char *name;
    admin_cmd_fn fn;
    int flags;
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

int admin_servers_left(const struct database *db)
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

int admin_close_needed_left(const struct database *db)
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

void admin_close_all_servers(struct statlist *l, const char *why)
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
        admin_close_all_servers(&p->idle_servers, why);
        admin_close_all_servers(&p->used_servers, why);
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
void admin_resume_all(void)
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

/*
 * The database a command names (none: all of them, *dbp = NULL), logged as
 * PgBouncer logs the command. False, with the error sent, for a database
 * that does not exist or is the console's own; verb says what cannot be
 * done to it.
 */
static bool cmd_target_db(struct admin_ctx *x, const struct admin_parsed *pc, const char *cmd,
                          const char *verb, struct database **dbp)
{
    *dbp = NULL;
    if (!pc->has_arg) {
        log_info("%s command issued", cmd);
        return true;
    }
    log_info("%s '%s' command issued", cmd, pc->arg);
    struct database *db = find_or_register_db(pc->arg);
    if (!db) {
        admin_ctx_error(x, "no such database: %s", pc->arg);
        return false;
    }
    if (db == admin_database()) {
        admin_ctx_error(x, "cannot %s admin db: %s", verb, pc->arg);
        return false;
    }
    *dbp = db;
    return true;
}

static void cmd_pause(struct admin_ctx *x, const struct admin_parsed *pc)
{
    if (G.paused || suspended) {
        admin_ctx_error(x, "already suspended/paused");
        return;
    }
    struct database *db;
    if (!cmd_target_db(x, pc, "PAUSE", "pause", &db))
        return;
    if (!db) {
        G.paused = true;
        close_unused_servers(NULL, "pause mode");
        defer(x, AW_PAUSE, NULL);
        return;
    }
    db->paused = true;
    close_unused_servers(db, "pause mode");
    if (admin_servers_left(db) > 0)
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
        admin_resume_all();
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

/* DISABLE and ENABLE: refuse or allow new client logins to one database. */
static void set_disabled(struct admin_ctx *x, const struct admin_parsed *pc, bool disable)
{
    const char *cmd = disable ? "DISABLE" : "ENABLE";
    if (!pc->has_arg) {
        admin_ctx_error(x, "a database is required");
        return;
    }
    log_info("%s '%s' command issued", cmd, pc->arg);
    /* DISABLE may name an auto-database not created yet, so that it stays refused. */
    struct database *db = disable ? find_or_register_db(pc->arg) : find_db(pc->arg);
    if (!db) {
        admin_ctx_error(x, "no such database: %s", pc->arg);
        return;
    }
    if (db == admin_database()) {
        admin_ctx_error(x, "cannot %s admin db: %s", disable ? "disable" : "enable", pc->arg);
        return;
    }
    db->disabled = disable;
    complete(x, cmd);
}

static void cmd_disable(struct admin_ctx *x, const struct admin_parsed *pc)
{
    set_disabled(x, pc, true);
}

static void cmd_enable(struct admin_ctx *x, const struct admin_parsed *pc)
{
    set_disabled(x, pc, false);
}

/* Every server of the pool is replaced: unused ones now, the others when released. */
static void tag_pool_dirty(struct pool *p)
{
    struct statlist *lists[] = {&p->new_servers,       &p->active_servers, &p->tested_servers,
                                &p->canceling_servers, &p->idle_servers,   &p->used_servers};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        struct list *item;
        for (item = lists[i]->head.next; item != &lists[i]->head; item = item->next)
            container_of(item, struct pgsock, head)->close_needed = true;
    }
    admin_close_all_servers(&p->idle_servers, "close_needed");
    admin_close_all_servers(&p->used_servers, "close_needed");
}

static void cmd_reconnect(struct admin_ctx *x, const struct admin_parsed *pc)
{
    struct database *db;
    if (!cmd_target_db(x, pc, "RECONNECT", "reconnect", &db))
        return;
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
    admin_close_all_servers(&p->active_servers, why);
    admin_close_all_servers(&p->tested_servers, why);
    admin_close_all_servers(&p->canceling_servers, why);
    admin_close_all_servers(&p->idle_servers, why);
    admin_close_all_servers(&p->used_servers, why);
    admin_close_all_servers(&p->new_servers, why);
}

static void cmd_kill(struct admin_ctx *x, const struct admin_parsed *pc)
{
    struct list *item;
    if (G.paused || suspended) {
        admin_ctx_error(x, "already suspended/paused");
        return;
    }
    struct database *db;
    if (!cmd_target_db(x, pc, "KILL", "kill", &db))
        return;
    if (db) {
        db->paused = true;
    } else {
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
    struct pgsock *c = find_client_in(&admin_pool()->active_clients, id);
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
    struct database *db;
    if (!cmd_target_db(x, pc, "WAIT_CLOSE", "wait in", &db))
        return;
    if (admin_close_needed_left(db) > 0)
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
        /* WAIT_FOR_CLIENTS serves the clients it waits for; WAIT_FOR_SERVERS does not. */
        G.paused = mode == 1;
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

bool admin_prepare(struct admin_ctx *x, const char *q, struct admin_parsed *pc,
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
    const struct config_key *k = config_find_key(pc->key);
    char before[ADMIN_MAX_VALUE + 64] = "";
    if (k)
        config_format(G.cfg, k, before, sizeof(before));
    if (!config_set(G.cfg, pc->key, pc->value, &err)) {
        admin_ctx_error(x, "SET failed: %s: %s", pc->key, err.msg);
        return;
    }
    if (k && pgmux_key_needs_auth_reload(pc->key)) {
        /* Files and TLS contexts are built from these keys: do it now, as
         * PgBouncer does, or the new value would only show in SHOW CONFIG. */
        char after[ADMIN_MAX_VALUE + 64], why[700];
        config_format(G.cfg, k, after, sizeof(after));
        bool server_tls = strncmp(pc->key, "server_tls_", 11) == 0 && strcmp(before, after) != 0;
        if (!pgmux_apply_auth_settings(server_tls, why, sizeof(why))) {
            struct config_error undo;
            if (!config_set(G.cfg, pc->key, before, &undo))
                log_error("SET %s: could not restore the previous value", pc->key);
            admin_ctx_error(x, "SET failed: %s: %s", pc->key, why);
            return;
        }
    }
    char shown[ADMIN_MAX_VALUE];
    snprintf(shown, sizeof(shown), "%s", pc->value);
    admin_clean_text(shown, true);
    log_info("SET %s = '%s' command issued", pc->key, shown);
    if (strcmp(pc->key, "logfile") == 0 || strcmp(pc->key, "verbose") == 0 ||
        strncmp(pc->key, "syslog", 6) == 0 || strcmp(pc->key, "log_format") == 0)
        log_configure(G.cfg);
    /* Pool sizes and limits are read live: let waiting clients see the change. */
    G.launch_needed = true;
    char tag[ADMIN_MAX_ARG + ADMIN_MAX_VALUE + 8];
    snprintf(tag, sizeof(tag), "SET %s=%s", pc->key, shown);
    complete(x, tag);
}

void admin_run(struct admin_ctx *x, const struct admin_parsed *pc, const struct admin_plan *plan)
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

void admin_resume(void)
{
    if (G.shutting_down || (!G.paused && !suspended))
        return;
    log_info("resuming from %s", suspended ? "SUSPEND" : "PAUSE");
    G.paused = false;
    resume_suspended();
    G.launch_needed = true;
}

void admin_cancel_request(struct pgsock *c)
{
    slog_info(c, "cancel request from the admin console: resuming");
    admin_resume();
}

/*==== SUSPEND ====*/

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
        struct pgsock *s = container_of(item, struct pgsock, head);
        /* The Unix socket stays open during SUSPEND so that an operator can
         * log in and RESUME: logins there go on (a client that then joins a
         * pool is suspended with the others). */
        if (l == &G.login_clients && s->is_unix)
            continue;
        busy += suspend_sock(s, force);
    }
    return busy;
}

/* One SUSPEND step: true when every socket is quiet. */
bool admin_suspend_step(double now)
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
