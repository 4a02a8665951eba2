/* SPDX-License-Identifier: ISC */
/*
 * stats: per-pool counters and latency histograms that SHOW STATS and
 * /metrics both read, the process-wide counters that belong to no pool, and
 * the periodic stats log line. Recording a sample is an array increment: no
 * allocation, no clock read (callers pass durations from the cached clock).
 */
#ifndef PGMUX_STATS_H
#define PGMUX_STATS_H

#include <stdbool.h>
#include <stdint.h>

struct pool;
struct pgsock;
struct pkt_hdr;

/* Log-scale bucket upper bounds from 100 us to 60 s (+Inf is the count). */
#define STATS_BUCKETS 18

struct stats_hist {
    uint64_t buckets[STATS_BUCKETS]; /* not cumulative: one bucket per sample */
    uint64_t count;
    uint64_t sum_us;
};

/*
 * SQLSTATE classes (PostgreSQL documentation, appendix A) counted one by one;
 * any other class is counted in the extra last slot, "other".
 */
#define STATS_SQLSTATE_CLASSES 43

enum stats_timeout {
    STATS_TO_QUERY,            /* query_timeout */
    STATS_TO_QUERY_WAIT,       /* query_wait_timeout */
    STATS_TO_IDLE_TRANSACTION, /* idle_transaction_timeout */
    STATS_TO_TRANSACTION,      /* transaction_timeout */
    STATS_TO_CLIENT_IDLE,      /* client_idle_timeout */
    STATS_TO_COUNT
};

enum stats_cancel {
    STATS_CANCEL_FORWARDED,   /* sent on to the server running the client's query */
    STATS_CANCEL_IDLE,        /* the client had no query running: nothing to do */
    STATS_CANCEL_UNKNOWN_KEY, /* no client has that key */
    STATS_CANCEL_FAILED,      /* could not connect to the server to deliver it */
    STATS_CANCEL_COUNT
};

enum stats_login {
    STATS_LOGIN_AUTH_FAILED, /* FATAL with SQLSTATE class 28 during login */
    STATS_LOGIN_REJECTED,    /* any other FATAL during login (limits, no such db, ...) */
    STATS_LOGIN_COUNT
};

/* Per-pool counters beyond PgBouncer's SHOW STATS columns (in struct pool_stats). */
struct stats_extra {
    uint64_t server_logins_ok;     /* server connections that logged in */
    uint64_t server_logins_failed; /* connect, auth or startup failures, connect timeouts */
    uint64_t timeouts[STATS_TO_COUNT];
    uint64_t server_errors[STATS_SQLSTATE_CLASSES + 1]; /* ErrorResponse from PostgreSQL */
    uint64_t pooler_errors[STATS_SQLSTATE_CLASSES + 1]; /* FATAL errors pgmux sent */
};

/* Counters that belong to no pool. */
struct stats_global {
    uint64_t client_login_failures[STATS_LOGIN_COUNT];
    uint64_t cancels[STATS_CANCEL_COUNT];
    uint64_t reloads_ok, reloads_failed;
    double last_reload_ok;   /* wall clock of the last successful load (startup counts) */
    bool last_reload_failed; /* the most recent reload was refused */
};

extern struct stats_global stats_global;

/* Upper bound of bucket i in microseconds. */
uint64_t stats_bucket_bound_us(int i);

void stats_hist_add(struct stats_hist *h, uint64_t us);

/* Called by the core at the points named. */
void stats_query_done(struct pool *p, uint64_t us); /* a ReadyForQuery answered a query */
void stats_xact_done(struct pool *p, uint64_t us);  /* a transaction ended, lasting us */
void stats_wait_done(struct pool *p, uint64_t us);  /* a waiting client got a server */

/*
 * A ReadyForQuery with status 'I' reached client c: its transaction (an
 * explicit one, or the implicit one of a single statement) is over, in any
 * pool mode. Records it and clears c->xact_start, so the client's next
 * query starts the next transaction.
 */
void stats_xact_end(struct pgsock *c);

/* The ErrorResponse whose header is hdr passes from a server to its client. */
void stats_server_error(struct pool *p, const struct pkt_hdr *hdr);
/* pgmux is sending client c a FATAL error with this SQLSTATE (before it closes it). */
void stats_client_error(const struct pgsock *c, const char *sqlstate);
void stats_server_login(struct pool *p, bool ok);
void stats_timeout(struct pool *p, enum stats_timeout which);
void stats_cancel(enum stats_cancel result);
void stats_reload(bool ok);

/* Seconds the pool's oldest waiting client (for a server or its first login) has waited. */
double stats_pool_maxwait(const struct pool *p, double now);

/* "42", "08", ... for slot i of the SQLSTATE class arrays; "other" for the last. */
const char *stats_sqlstate_class_name(int i);

/* Start the stats_period timer that writes the stats log line (main, before the loop). */
void stats_start(void);

#endif
