/* SPDX-License-Identifier: ISC */
/*
 * admin_internal: the inside of the admin console, shared by its five
 * files and by no other module: admin.c (login, output, the simple and the
 * extended protocol, the janitor's deferred answers), admin_cmd.c (command
 * parsing, process control, SUSPEND), admin_rs.c (the output buffer and the
 * result-set writers), admin_show.c (the SHOW commands) and admin_stats.c
 * (SHOW STATS and its averages).
 *
 * A command writes its answer into the connection's growable output buffer
 * through a struct admin_ctx, which knows which protocol is being spoken:
 * the simple protocol wants RowDescription + DataRows + CommandComplete, an
 * extended-protocol Execute only DataRows + CommandComplete (Describe sent the
 * RowDescription), and a Describe only the RowDescription with no side
 * effects at all.
 */
#ifndef PGMUX_ADMIN_INTERNAL_H
#define PGMUX_ADMIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgmux.h"

#define ADMIN_NAME      "pgbouncer" /* the console's database and forced user */
#define ADMIN_MAX_ARG   64          /* an argument is at most 63 bytes, like PgBouncer's */
#define ADMIN_MAX_VALUE 1024        /* a SET value */

/* A growable message buffer; `failed` is sticky (out of memory). */
struct admin_buf {
    uint8_t *data;
    size_t len; /* bytes written */
    size_t cap;
    size_t sent;      /* bytes of data already given to the kernel */
    size_t msg_start; /* length word of the message being built */
    bool failed;
};

void abuf_free(struct admin_buf *b);
void abuf_start(struct admin_buf *b, uint8_t type);
void abuf_put_u8(struct admin_buf *b, uint8_t v);
void abuf_put_u16(struct admin_buf *b, uint16_t v);
void abuf_put_u32(struct admin_buf *b, uint32_t v);
void abuf_put_bytes(struct admin_buf *b, const void *p, size_t n);
void abuf_put_str(struct admin_buf *b, const char *s); /* with its NUL */
void abuf_finish(struct admin_buf *b);

/* Whole messages. */
void abuf_error(struct admin_buf *b, const char *sqlstate, const char *msg);
void abuf_notice(struct admin_buf *b, const char *msg, const char *detail);
void abuf_param(struct admin_buf *b, const char *key, const char *val);
void abuf_complete(struct admin_buf *b, const char *tag);
void abuf_ready(struct admin_buf *b);
void abuf_simple(struct admin_buf *b, uint8_t type); /* a message with no body */

/* An answer the janitor sends later. */
enum admin_wait {
    AW_NONE,
    AW_PAUSE,
    AW_SUSPEND,
    AW_WAIT_CLOSE,
};

struct admin_named; /* admin.c: a prepared statement or portal */

/* One console connection (admin.c owns it; freed by admin_client_closing). */
struct admin_conn {
    struct list head;     /* admin.c's list of console connections */
    struct pgsock *c;     /* not owned; the disconnect hook frees us first */
    char user[MAX_NAME];  /* the login name */
    bool is_admin;        /* admin_users or our own user: every command */
    struct admin_buf out; /* answers not yet taken by the kernel */
    ev_io wio;            /* armed while out is pending and the socket is full */
    bool ext_error;       /* extended protocol: skip messages until Sync */
    struct admin_named *stmts, *portals;
    int n_stmts, n_portals;
    enum admin_wait wait;
    bool wait_simple;         /* ... followed by ReadyForQuery (simple protocol) */
    struct database *wait_db; /* NULL = every database */
};

struct admin_ctx {
    struct admin_conn *ac;
    struct pgsock *c;      /* the console client */
    struct admin_buf *out; /* where the answer goes */
    bool describe;         /* only the RowDescription: no side effects, no rows */
    bool want_rowdesc;     /* write RowDescription (simple protocol, Describe) */
    bool has_rows;         /* rs_begin was called: the result has columns */
    bool error;            /* an ErrorResponse was written */
    bool deferred;         /* the answer comes later (PAUSE, WAIT_CLOSE, SUSPEND) */
    bool closed;           /* the console client was disconnected */
};

/*
 * Column types as PgBouncer writes them: 's' text, 'i' int4, 'q' int8,
 * 'N' numeric (uint64 value), 'T' text timestamp (double seconds since the
 * epoch; 0 = NULL), 'b' bytea (always NULL here).
 *
 * rs_begin takes one column name per type character and returns false when
 * the caller must stop (a Describe: no rows wanted). rs_row takes one value
 * per type: const char * for s/b (NULL = SQL NULL), int for i, uint64_t for
 * q and N, double for T.
 */
bool rs_begin(struct admin_ctx *x, const char *types, ...);
void rs_row(struct admin_ctx *x, const char *types, ...);
void rs_done(struct admin_ctx *x, const char *tag);
void admin_ctx_error(struct admin_ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* In place: invalid UTF-8 bytes become '?' and, with controls, control characters ' '. */
void admin_clean_text(char *s, bool controls);

typedef void (*admin_show_fn)(struct admin_ctx *x);

struct admin_show_entry {
    const char *name;
    admin_show_fn fn;
    bool admin_only; /* SHOW FDS */
    bool no_rows;    /* SHOW HELP: a notice, no result set */
};

/* The SHOW subcommand with this name (case-insensitive), or NULL. */
const struct admin_show_entry *admin_show_find(const char *name);

/* Parameters drivers SHOW and SET that the console fakes ("SET ignored"). */
bool admin_fake_param(const char *name);
void admin_show_fake_param(struct admin_ctx *x, const char *name);

/* Fixed answer of SELECT 1 (connection checks of pools and drivers). */
void admin_select_one(struct admin_ctx *x);

/* admin_stats.c: SHOW STATS, STATS_TOTALS, STATS_AVERAGES, TOTALS. */
void admin_show_stats(struct admin_ctx *x);
void admin_show_stats_totals(struct admin_ctx *x);
void admin_show_stats_averages(struct admin_ctx *x);
void admin_show_totals(struct admin_ctx *x);
/* SHOW STATS averages: shift the per-database snapshots every stats_period. */
void admin_stats_tick(double now);

/* admin_show.c: databases to list, sorted by name, the console's own included (caller frees). */
struct database **admin_sorted_dbs(size_t *n);
/* Write "out of memory" and return true when p is NULL. */
bool admin_oom(struct admin_ctx *x, const void *p);

/* admin.c: the console's own database, pool and the login name of a console client. */
struct database *admin_database(void);
struct pool *admin_pool(void);
const char *admin_client_user(const struct pgsock *c);

/*==== admin_cmd.c: parsing and running commands ====*/

enum admin_kind {
    AK_EMPTY,   /* nothing but blanks and ';' */
    AK_COMMAND, /* CMD [ARG] */
    AK_SET,     /* SET key = value */
};

struct admin_parsed {
    enum admin_kind kind;
    char cmd[16];            /* lower case */
    char arg[ADMIN_MAX_ARG]; /* as written, quotes removed */
    bool has_arg;
    char key[ADMIN_MAX_ARG]; /* SET: lower case */
    char value[ADMIN_MAX_VALUE];
};

struct admin_command;

/* What a parsed command will do, known before running it (for Describe). */
struct admin_plan {
    const struct admin_command *cmd; /* NULL for AK_EMPTY and AK_SET */
    bool rows;                       /* it answers with a result set */
};

/* Parse and resolve q; on failure write PgBouncer's error into x and return false. */
bool admin_prepare(struct admin_ctx *x, const char *q, struct admin_parsed *pc,
                   struct admin_plan *plan);

/*
 * Run a prepared command into x. In a Describe (x->describe) nothing
 * happens but the RowDescription of commands that return rows.
 */
void admin_run(struct admin_ctx *x, const struct admin_parsed *pc, const struct admin_plan *plan);

/* Janitor helpers: what deferred answers wait for. */
int admin_servers_left(const struct database *db);      /* db NULL = all */
int admin_close_needed_left(const struct database *db); /* db NULL = all */
void admin_close_all_servers(struct statlist *l, const char *why);

/* SUSPEND: one step (true when every socket is quiet), and RESUME of everything. */
bool admin_suspend_step(double now);
void admin_resume_all(void);

#endif
