/* SPDX-License-Identifier: ISC */
/*
 * admin_show: the inside of the admin console shared by admin.c (login,
 * protocol, command parsing, process control) and admin_show.c (result sets,
 * the SHOW commands, SHOW STATS averages). Not for other modules.
 *
 * A command writes its answer into the connection's growable output buffer
 * through a struct admin_ctx, which knows which protocol is being spoken:
 * the simple protocol wants RowDescription + DataRows + CommandComplete, an
 * extended-protocol Execute only DataRows + CommandComplete (Describe sent the
 * RowDescription), and a Describe only the RowDescription with no side
 * effects at all.
 */
#ifndef PGMUX_ADMIN_SHOW_H
#define PGMUX_ADMIN_SHOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgmux.h"

/* A growable message buffer; `failed` is sticky (out of memory). */
struct admin_buf {
    uint8_t *data;
    size_t len;       /* bytes written */
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

struct admin_conn;

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
void admin_ctx_error(struct admin_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

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

/* SHOW STATS averages: shift the per-database snapshots every stats_period. */
void admin_stats_tick(double now);

/* admin.c: the console's own database, pool and the login name of a console client. */
struct database *admin_database(void);
struct pool *admin_pool(void);
const char *admin_client_user(const struct pgsock *c);
bool admin_is_suspended(void);

#endif
