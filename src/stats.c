/* SPDX-License-Identifier: ISC */
/*
 * stats: recording of per-pool counters and histograms, the process-wide
 * counters, and the periodic stats log line (see stats.h).
 *
 * Transactions are counted where they end, at a ReadyForQuery with status
 * 'I' (stats_xact_end), not where a server is released: in session mode one
 * link carries many transactions, and counting at release would see one per
 * session. A transaction starts at the link (pool.c sets xact_start) or, on
 * a link that outlives transactions, at the client's first query after the
 * previous one ended (client.c sets xact_start when it is 0).
 */
#include "stats.h"

#include "config.h"
#include "log.h"
#include "loop.h"
#include "pgmux.h"
#include "proto.h"
#include "textbuf.h"

#include <stdio.h>
#include <string.h>

struct stats_global stats_global;

static const uint64_t bounds_us[STATS_BUCKETS] = {
    100,    250,    500,    1000,    2500,    5000,    10000,    25000,    50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

/* SQLSTATE classes from PostgreSQL's errcodes table; the slot after the last is "other". */
static const char sqlstate_classes[STATS_SQLSTATE_CLASSES][3] = {
    "00", "01", "02", "03", "08", "09", "0A", "0B", "0F", "0L", "0P", "0Z", "20", "21", "22",
    "23", "24", "25", "26", "27", "28", "2B", "2D", "2F", "34", "38", "39", "3B", "3D", "3F",
    "40", "42", "44", "53", "54", "55", "57", "58", "72", "F0", "HV", "P0", "XX",
};

uint64_t stats_bucket_bound_us(int i)
{
    return bounds_us[i];
}

void stats_hist_add(struct stats_hist *h, uint64_t us)
{
    int lo = 0, hi = STATS_BUCKETS;
    /* First bucket whose bound is >= us; past the last one only count/sum move. */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (bounds_us[mid] < us)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < STATS_BUCKETS)
        h->buckets[lo]++;
    h->count++;
    h->sum_us += us;
}

void stats_query_done(struct pool *p, uint64_t us)
{
    p->stats.query_time_us += us;
    stats_hist_add(&p->stats.query_hist, us);
}

void stats_xact_done(struct pool *p, uint64_t us)
{
    p->stats.xact_count++;
    p->stats.xact_time_us += us;
    stats_hist_add(&p->stats.xact_hist, us);
}

void stats_wait_done(struct pool *p, uint64_t us)
{
    p->stats.wait_time_us += us;
    stats_hist_add(&p->stats.wait_hist, us);
}

void stats_xact_end(struct pgsock *c)
{
    /* Several transactions pipelined on one link: the later ones have no
     * start of their own, so they are timed from their last query. */
    double start = c->xact_start > 0 ? c->xact_start : c->query_start;
    double d = loop_now() - start;
    stats_xact_done(c->pool, d > 0 ? (uint64_t)(d * 1e6) : 0);
    c->xact_start = 0;
}

double stats_pool_maxwait(const struct pool *p, double now)
{
    /* Both wait lists are in arrival order: the first is the oldest. */
    double oldest = now;
    struct list *first = statlist_first(&p->waiting_clients);
    if (first)
        oldest = container_of(first, struct pgsock, head)->wait_start;
    first = statlist_first(&p->waiting_login);
    if (first) {
        double w = container_of(first, struct pgsock, head)->wait_start;
        if (w < oldest)
            oldest = w;
    }
    return now > oldest ? now - oldest : 0;
}

/*==== Errors, logins, timeouts, cancels, reloads ====*/

static int sqlstate_class_index(const char *sqlstate)
{
    if (sqlstate && sqlstate[0] && sqlstate[1]) {
        for (int i = 0; i < STATS_SQLSTATE_CLASSES; i++)
            if (sqlstate_classes[i][0] == sqlstate[0] && sqlstate_classes[i][1] == sqlstate[1])
                return i;
    }
    return STATS_SQLSTATE_CLASSES;
}

const char *stats_sqlstate_class_name(int i)
{
    return i >= 0 && i < STATS_SQLSTATE_CLASSES ? sqlstate_classes[i] : "other";
}

void stats_server_error(struct pool *p, const struct pkt_hdr *hdr)
{
    const char *code = NULL;
    /* The message may still be arriving: look for the 'C' field in what is
     * here. PostgreSQL sends it right after the severities, so it is almost
     * always in the first packet; if not, the error counts as "other". */
    if (hdr->avail > 5) {
        struct pkt_reader r;
        reader_init(&r, hdr->data + 5, hdr->avail - 5);
        for (;;) {
            uint8_t field;
            const char *val;
            if (!reader_get_u8(&r, &field) || field == 0 || !reader_get_cstring(&r, &val))
                break;
            if (field == 'C') {
                code = val;
                break;
            }
        }
    }
    p->stats.extra.server_errors[sqlstate_class_index(code)]++;
}

void stats_client_error(const struct pgsock *c, const char *sqlstate)
{
    if (!sqlstate)
        return;
    if (c->state == CL_LOGIN) {
        bool auth = sqlstate[0] == '2' && sqlstate[1] == '8';
        stats_global.client_login_failures[auth ? STATS_LOGIN_AUTH_FAILED : STATS_LOGIN_REJECTED]++;
        return;
    }
    if (c->pool)
        c->pool->stats.extra.pooler_errors[sqlstate_class_index(sqlstate)]++;
}

void stats_server_login(struct pool *p, bool ok)
{
    if (ok)
        p->stats.extra.server_logins_ok++;
    else
        p->stats.extra.server_logins_failed++;
}

void stats_timeout(struct pool *p, enum stats_timeout which)
{
    p->stats.extra.timeouts[which]++;
}

void stats_cancel(enum stats_cancel result)
{
    stats_global.cancels[result]++;
}

void stats_reload(bool ok)
{
    if (ok) {
        stats_global.reloads_ok++;
        stats_global.last_reload_ok = ev_time();
    } else {
        stats_global.reloads_failed++;
    }
    stats_global.last_reload_failed = !ok;
}

/*==== The periodic stats line ====*/

struct stats_totals {
    uint64_t xacts, queries, bytes_in, bytes_out, xact_us, query_us, wait_us, assignments;
};

static ev_timer stats_timer;
static struct stats_totals last_totals;
static double last_at;

static void stats_sum(struct stats_totals *t)
{
    struct list *item;
    memset(t, 0, sizeof(*t));
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        const struct pool_stats *s = &container_of(item, struct pool, head)->stats;
        t->xacts += s->xact_count;
        t->queries += s->query_count;
        t->bytes_in += s->bytes_received;
        t->bytes_out += s->bytes_sent;
        t->xact_us += s->xact_time_us;
        t->query_us += s->query_time_us;
        t->wait_us += s->wait_time_us;
        t->assignments += s->server_assignment_count;
    }
}

static unsigned long long per_second(uint64_t delta, double secs)
{
    return secs > 0 ? (unsigned long long)((double)delta / secs + 0.5) : 0;
}

static unsigned long long average(uint64_t total, uint64_t n)
{
    return n ? (unsigned long long)(total / n) : 0;
}

/*
 * Every stats_period: the PgBouncer line "stats: N xacts/s, N queries/s, in
 * N B/s, out N B/s, xact N us, query N us, wait N us" over all pools, with
 * the same numbers as JSON fields when log_format = json.
 */
static void stats_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct stats_totals cur;
    double now = loop_now();
    double secs = now - last_at;
    (void)revents;

    stats_sum(&cur);
    if (G.cfg->log_stats) {
        unsigned long long xps = per_second(cur.xacts - last_totals.xacts, secs);
        unsigned long long qps = per_second(cur.queries - last_totals.queries, secs);
        unsigned long long in = per_second(cur.bytes_in - last_totals.bytes_in, secs);
        unsigned long long out = per_second(cur.bytes_out - last_totals.bytes_out, secs);
        unsigned long long xact_us =
            average(cur.xact_us - last_totals.xact_us, cur.xacts - last_totals.xacts);
        unsigned long long query_us =
            average(cur.query_us - last_totals.query_us, cur.queries - last_totals.queries);
        unsigned long long wait_us =
            average(cur.wait_us - last_totals.wait_us, cur.assignments - last_totals.assignments);
        char fields[400];
        snprintf(fields, sizeof(fields),
                 "\"xacts_per_second\":%llu,\"queries_per_second\":%llu,"
                 "\"received_bytes_per_second\":%llu,\"sent_bytes_per_second\":%llu,"
                 "\"avg_xact_us\":%llu,\"avg_query_us\":%llu,\"avg_wait_us\":%llu",
                 xps, qps, in, out, xact_us, query_us, wait_us);
        log_event(LOG_LVL_INFO, "stats", fields,
                  "stats: %llu xacts/s, %llu queries/s, in %llu B/s, out %llu B/s, xact %llu us, "
                  "query %llu us, wait %llu us",
                  xps, qps, in, out, xact_us, query_us, wait_us);
    }
    last_totals = cur;
    last_at = now;
    /* Follow a stats_period changed by a reload. */
    double period = G.cfg->stats_period > 0 ? G.cfg->stats_period : 60;
    if (w->repeat != period) {
        w->repeat = period;
        ev_timer_again(loop, w);
    }
}

void stats_start(void)
{
    double period = G.cfg->stats_period > 0 ? G.cfg->stats_period : 60;
    stats_global.last_reload_ok = ev_time();
    last_at = loop_now();
    ev_timer_init(&stats_timer, stats_timer_cb, period, period);
    ev_timer_start(loop_main, &stats_timer);
}
