/* SPDX-License-Identifier: ISC */
/*
 * admin_stats: SHOW STATS, STATS_TOTALS, STATS_AVERAGES and TOTALS.
 *
 * Totals are the per-pool counters of the core summed per database.
 * Averages follow PgBouncer: every stats_period the per-database counters
 * are shifted into "newer" and "older" snapshots (kept here by database
 * name), and an average is (now - older) / (time since the older snapshot),
 * so it covers between one and two periods. Rates are per second; times are
 * per query, per transaction and per server assignment, in microseconds.
 */
#include "admin_internal.h"

#include "config.h"
#include "loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*==== SHOW STATS, STATS_TOTALS, STATS_AVERAGES, TOTALS ====*/

struct counters {
    uint64_t assign, xact, query, recv, sent, xact_us, query_us, wait_us;
    uint64_t client_parse, server_parse, bind, logins;
};

struct stat_snap {
    struct stat_snap *next;
    char name[MAX_NAME];
    struct counters older, newer;
};

static struct stat_snap *snaps;
static double old_stamp, new_stamp;
static bool stats_started;

static void counters_add_pool(struct counters *t, const struct pool *p)
{
    const struct pool_stats *s = &p->stats;
    t->assign += s->server_assignment_count;
    t->xact += s->xact_count;
    t->query += s->query_count;
    t->recv += s->bytes_received;
    t->sent += s->bytes_sent;
    t->xact_us += s->xact_time_us;
    t->query_us += s->query_time_us;
    t->wait_us += s->wait_time_us;
    t->logins += s->client_login_count;
    t->client_parse += s->client_parse_count;
    t->server_parse += s->server_parse_count;
    t->bind += s->bind_count;
}

static void counters_add(struct counters *t, const struct counters *s)
{
    t->assign += s->assign;
    t->xact += s->xact;
    t->query += s->query;
    t->recv += s->recv;
    t->sent += s->sent;
    t->xact_us += s->xact_us;
    t->query_us += s->query_us;
    t->wait_us += s->wait_us;
    t->client_parse += s->client_parse;
    t->server_parse += s->server_parse;
    t->bind += s->bind;
    t->logins += s->logins;
}

static void counters_of_db(const struct database *db, struct counters *t)
{
    memset(t, 0, sizeof(*t));
    if (db == admin_database()) {
        counters_add_pool(t, admin_pool());
        return;
    }
    struct list *item;
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        const struct pool *p = container_of(item, struct pool, head);
        if (p->db == db)
            counters_add_pool(t, p);
    }
}

static struct stat_snap *snap_find(const char *name, bool create)
{
    for (struct stat_snap *s = snaps; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    if (!create)
        return NULL;
    struct stat_snap *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->next = snaps;
    snaps = s;
    return s;
}

static void snap_shift(const struct database *db)
{
    struct stat_snap *s = snap_find(db->name, true);
    if (!s)
        return;
    s->older = s->newer;
    counters_of_db(db, &s->newer);
}

void admin_stats_tick(double now)
{
    if (!stats_started) {
        stats_started = true;
        new_stamp = now;
        old_stamp = now - 1;
        return;
    }
    int period = G.cfg->stats_period > 0 ? G.cfg->stats_period : 60;
    if (now - new_stamp < period)
        return;
    old_stamp = new_stamp;
    new_stamp = now;
    snap_shift(admin_database());
    struct list *item;
    for (item = G.databases.next; item != &G.databases; item = item->next)
        snap_shift(container_of(item, struct database, head));
}

static uint64_t delta(uint64_t cur, uint64_t old)
{
    return cur > old ? cur - old : 0;
}

static uint64_t per_sec(uint64_t d, double secs)
{
    return secs > 0 ? (uint64_t)((double)d / secs) : 0;
}

/* PgBouncer's averages: rates per second, and times per query/transaction/assignment. */
static void counters_avg(struct counters *avg, const struct counters *cur,
                         const struct counters *old)
{
    double dur = loop_now() - old_stamp;
    memset(avg, 0, sizeof(*avg));
    if (dur <= 0)
        return;
    uint64_t q = delta(cur->query, old->query), t = delta(cur->xact, old->xact);
    uint64_t a = delta(cur->assign, old->assign);
    avg->query = per_sec(q, dur);
    avg->xact = per_sec(t, dur);
    avg->assign = per_sec(a, dur);
    avg->recv = per_sec(delta(cur->recv, old->recv), dur);
    avg->sent = per_sec(delta(cur->sent, old->sent), dur);
    if (q)
        avg->query_us = delta(cur->query_us, old->query_us) / q;
    if (t)
        avg->xact_us = delta(cur->xact_us, old->xact_us) / t;
    if (a)
        avg->wait_us = delta(cur->wait_us, old->wait_us) / a;
    avg->client_parse = per_sec(delta(cur->client_parse, old->client_parse), dur);
    avg->server_parse = per_sec(delta(cur->server_parse, old->server_parse), dur);
    avg->bind = per_sec(delta(cur->bind, old->bind), dur);
    avg->logins = per_sec(delta(cur->logins, old->logins), dur);
}

static void db_counters(const struct database *db, struct counters *cur, struct counters *old)
{
    counters_of_db(db, cur);
    struct stat_snap *s = snap_find(db->name, false);
    if (s)
        *old = s->older;
    else
        memset(old, 0, sizeof(*old));
}

/*
 * Databases with at least one pool, sorted by name: PgBouncer prints its
 * statistics per pool, summed per database, so a database nobody has used
 * yet has no row. Caller frees.
 */
static struct database **stats_dbs(size_t *n)
{
    size_t all, kept = 0;
    struct database **dbs = admin_sorted_dbs(&all);
    for (size_t i = 0; dbs && i < all; i++) {
        bool used = dbs[i] == admin_database();
        struct list *item;
        for (item = G.pools.next; item != &G.pools && !used; item = item->next)
            used = container_of(item, struct pool, head)->db == dbs[i];
        if (used)
            dbs[kept++] = dbs[i];
    }
    *n = kept;
    return dbs;
}

/* The twelve values in PgBouncer's order. */
#define COUNTER_ARGS(c)                                                                            \
    (c).assign, (c).xact, (c).query, (c).recv, (c).sent, (c).xact_us, (c).query_us, (c).wait_us,   \
        (c).client_parse, (c).server_parse, (c).bind, (c).logins

/* Which counters a row per database holds: SHOW STATS has both kinds. */
enum stats_view {
    STATS_VIEW_BOTH,
    STATS_VIEW_TOTALS,
    STATS_VIEW_AVERAGES,
};

/* The rows of SHOW STATS, STATS_TOTALS or STATS_AVERAGES, after the caller's header. */
static void stats_rows(struct admin_ctx *x, enum stats_view view)
{
    size_t n;
    struct database **dbs = stats_dbs(&n);
    if (admin_oom(x, dbs))
        return;
    for (size_t i = 0; i < n; i++) {
        struct counters cur, old, avg;
        db_counters(dbs[i], &cur, &old);
        counters_avg(&avg, &cur, &old);
        switch (view) {
        case STATS_VIEW_BOTH:
            rs_row(x, "sNNNNNNNNNNNNNNNNNNNNNNNN", dbs[i]->name, COUNTER_ARGS(cur),
                   COUNTER_ARGS(avg));
            break;
        case STATS_VIEW_TOTALS:
            rs_row(x, "sNNNNNNNNNNNN", dbs[i]->name, COUNTER_ARGS(cur));
            break;
        case STATS_VIEW_AVERAGES:
            rs_row(x, "sNNNNNNNNNNNN", dbs[i]->name, COUNTER_ARGS(avg));
            break;
        }
    }
    free(dbs);
    rs_done(x, "SHOW");
}

void admin_show_stats(struct admin_ctx *x)
{
    if (rs_begin(x, "sNNNNNNNNNNNNNNNNNNNNNNNN", "database", "total_server_assignment_count",
                 "total_xact_count", "total_query_count", "total_received", "total_sent",
                 "total_xact_time", "total_query_time", "total_wait_time",
                 "total_client_parse_count", "total_server_parse_count", "total_bind_count",
                 "total_client_login_count", "avg_server_assignment_count", "avg_xact_count",
                 "avg_query_count", "avg_recv", "avg_sent", "avg_xact_time", "avg_query_time",
                 "avg_wait_time", "avg_client_parse_count", "avg_server_parse_count",
                 "avg_bind_count", "avg_client_login_count"))
        stats_rows(x, STATS_VIEW_BOTH);
}

void admin_show_stats_totals(struct admin_ctx *x)
{
    if (rs_begin(x, "sNNNNNNNNNNNN", "database", "server_assignment_count", "xact_count",
                 "query_count", "bytes_received", "bytes_sent", "xact_time", "query_time",
                 "wait_time", "client_parse_count", "server_parse_count", "bind_count",
                 "client_login_count"))
        stats_rows(x, STATS_VIEW_TOTALS);
}

void admin_show_stats_averages(struct admin_ctx *x)
{
    /* The mix of names with and without avg_ is PgBouncer's. */
    if (rs_begin(x, "sNNNNNNNNNNNN", "database", "server_assignment_count", "xact_count",
                 "query_count", "bytes_received", "bytes_sent", "xact_time", "query_time",
                 "wait_time", "avg_client_parse_count", "avg_server_parse_count",
                 "avg_bind_count", "avg_client_login_count"))
        stats_rows(x, STATS_VIEW_AVERAGES);
}

void admin_show_totals(struct admin_ctx *x)
{
    if (!rs_begin(x, "sN", "name", "value"))
        return;
    struct counters cur, old, avg, c, o;
    memset(&cur, 0, sizeof(cur));
    memset(&old, 0, sizeof(old));
    size_t n;
    struct database **dbs = stats_dbs(&n);
    if (admin_oom(x, dbs))
        return;
    for (size_t i = 0; i < n; i++) {
        db_counters(dbs[i], &c, &o);
        counters_add(&cur, &c);
        counters_add(&old, &o);
    }
    free(dbs);
    counters_avg(&avg, &cur, &old);
    static const char *const names[] = {
        "server_assignment_count",
        "xact_count",
        "query_count",
        "client_bytes",
        "server_bytes",
        "xact_time",
        "query_time",
        "wait_time",
        "ps_client_parse_count",
        "ps_server_parse_count",
        "ps_bind_count",
        "client_login_count",
    };
    const uint64_t tv[] = {COUNTER_ARGS(cur)}, av[] = {COUNTER_ARGS(avg)};
    char name[64];
    for (size_t i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "total_%s", names[i]);
        rs_row(x, "sN", name, tv[i]);
    }
    for (size_t i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "avg_%s", names[i]);
        rs_row(x, "sN", name, av[i]);
    }
    rs_done(x, "SHOW");
}
