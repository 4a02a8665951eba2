/* SPDX-License-Identifier: ISC */
/*
 * metrics: renders /metrics (Prometheus text format 0.0.4) from G, the
 * pools' struct pool_stats and the process-wide counters in stats.c.
 *
 * The text format wants every sample of a metric family together, so each
 * family walks the pool list once. Names follow the Prometheus conventions:
 * base units (seconds, bytes), counters end in _total, histograms are
 * cumulative with le bounds from stats.c. Nothing here changes state; the
 * caller (http.c) decides how often a render may run.
 *
 * Two numbers are derived rather than stored:
 *  - pgmux_client_wait_seconds counts every server assignment: clients
 *    that got a server at once never waited, so they are added to the
 *    lowest bucket (stats.c only records the clients that had to wait);
 *  - pgmux_client_logins_total{result="success"} is the sum of the pools'
 *    login counts (pools are never freed, so the sum only grows).
 */
#include "metrics.h"

#include "config.h"
#include "health.h"
#include "http.h"
#include "loop.h"
#include "pgmux.h"
#include "pool.h"
#include "stats.h"
#include "textbuf.h"
#include "throttle.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define POOLS_FOREACH(item) for ((item) = G.pools.next; (item) != &G.pools; (item) = (item)->next)
#define POOL_OF(item)       container_of(item, struct pool, head)

/*==== Helpers ====*/

static void family(struct textbuf *tb, const char *name, const char *type, const char *help)
{
    textbuf_printf(tb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_pool_labels(struct textbuf *tb, const struct pool *p)
{
    textbuf_puts(tb, "database=\"");
    textbuf_prom_label(tb, p->db->name);
    textbuf_puts(tb, "\",user=\"");
    textbuf_prom_label(tb, p->user->name);
    textbuf_puts(tb, "\"");
}

/* name{database="..",user=".."[,extra]} value */
static void pool_sample(struct textbuf *tb, const char *name, const struct pool *p,
                        const char *extra, unsigned long long v)
{
    textbuf_puts(tb, name);
    textbuf_puts(tb, "{");
    put_pool_labels(tb, p);
    if (extra) {
        textbuf_puts(tb, ",");
        textbuf_puts(tb, extra);
    }
    textbuf_puts(tb, "} ");
    textbuf_put_u64(tb, v);
    textbuf_puts(tb, "\n");
}

/* Microseconds as exact decimal seconds: 1500 -> "0.0015", 60000000 -> "60". */
static void put_seconds_us(struct textbuf *tb, uint64_t us)
{
    char buf[48];
    int n = snprintf(buf, sizeof(buf), "%llu.%06llu", (unsigned long long)(us / 1000000),
                     (unsigned long long)(us % 1000000));
    while (n > 0 && buf[n - 1] == '0')
        n--;
    if (n > 0 && buf[n - 1] == '.')
        n--;
    textbuf_put(tb, buf, (size_t)n);
}

static void global_sample(struct textbuf *tb, const char *name, const char *labels,
                          unsigned long long v)
{
    textbuf_puts(tb, name);
    if (labels)
        textbuf_printf(tb, "{%s}", labels);
    textbuf_puts(tb, " ");
    textbuf_put_u64(tb, v);
    textbuf_puts(tb, "\n");
}

/*==== Families ====*/

static void hist_family(struct textbuf *tb, const char *name, const char *help, int which)
{
    struct list *item;
    char bucket[96], sum[96], count[96];
    snprintf(bucket, sizeof(bucket), "%s_bucket", name);
    snprintf(sum, sizeof(sum), "%s_sum", name);
    snprintf(count, sizeof(count), "%s_count", name);
    family(tb, name, "histogram", help);
    POOLS_FOREACH(item)
    {
        const struct pool *p = POOL_OF(item);
        const struct stats_hist *h;
        uint64_t zero = 0;
        if (which == 0) {
            h = &p->stats.query_hist;
        } else if (which == 1) {
            h = &p->stats.xact_hist;
        } else {
            h = &p->stats.wait_hist;
            if (p->stats.server_assignment_count > h->count)
                zero = p->stats.server_assignment_count - h->count;
        }
        uint64_t cum = zero;
        for (int i = 0; i < STATS_BUCKETS; i++) {
            cum += h->buckets[i];
            textbuf_puts(tb, bucket);
            textbuf_puts(tb, "{");
            put_pool_labels(tb, p);
            textbuf_puts(tb, ",le=\"");
            put_seconds_us(tb, stats_bucket_bound_us(i));
            textbuf_puts(tb, "\"} ");
            textbuf_put_u64(tb, cum);
            textbuf_puts(tb, "\n");
        }
        pool_sample(tb, bucket, p, "le=\"+Inf\"", h->count + zero);
        textbuf_puts(tb, sum);
        textbuf_puts(tb, "{");
        put_pool_labels(tb, p);
        textbuf_puts(tb, "} ");
        put_seconds_us(tb, h->sum_us);
        textbuf_puts(tb, "\n");
        pool_sample(tb, count, p, NULL, h->count + zero);
    }
}

/* Cancel requests in flight for the pool's clients (servers carry the count). */
static int pool_cancels_in_flight(const struct pool *p)
{
    const struct statlist *lists[] = {&p->active_servers, &p->canceling_servers};
    int n = 0;
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        const struct list *item;
        for (item = lists[i]->head.next; item != &lists[i]->head; item = item->next)
            n += container_of(item, const struct pgsock, head)->cancel_pending;
    }
    return n;
}

static void pool_gauges(struct textbuf *tb)
{
    struct list *item;
    double now = loop_now();

    family(tb, "pgmux_pool_client_connections", "gauge",
           "Client connections of the pool by state (PgBouncer's cl_* columns of SHOW POOLS; "
           "waiting_login: authenticated, waiting for the pool's first server login).");
    POOLS_FOREACH(item)
    {
        const struct pool *p = POOL_OF(item);
        pool_sample(tb, "pgmux_pool_client_connections", p, "state=\"active\"",
                    (unsigned)p->active_clients.count);
        pool_sample(tb, "pgmux_pool_client_connections", p, "state=\"waiting\"",
                    (unsigned)p->waiting_clients.count);
        pool_sample(tb, "pgmux_pool_client_connections", p, "state=\"waiting_login\"",
                    (unsigned)p->waiting_login.count);
        pool_sample(tb, "pgmux_pool_client_connections", p, "state=\"active_cancel\"",
                    (unsigned)pool_cancels_in_flight(p));
        /* pgmux never queues a cancel request: it connects for it at once. */
        pool_sample(tb, "pgmux_pool_client_connections", p, "state=\"waiting_cancel\"", 0);
    }
    family(tb, "pgmux_pool_server_connections", "gauge",
           "Server connections of the pool by state (PgBouncer's sv_* columns of SHOW POOLS).");
    POOLS_FOREACH(item)
    {
        const struct pool *p = POOL_OF(item);
        static const char *const names[] = {
            "state=\"active\"", "state=\"idle\"",  "state=\"used\"",
            "state=\"tested\"", "state=\"login\"", "state=\"being_canceled\"",
        };
        const struct statlist *lists[] = {&p->active_servers, &p->idle_servers,
                                          &p->used_servers,   &p->tested_servers,
                                          &p->new_servers,    &p->canceling_servers};
        for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
            pool_sample(tb, "pgmux_pool_server_connections", p, names[i],
                        (unsigned)lists[i]->count);
    }
    family(tb, "pgmux_pool_maxwait_seconds", "gauge",
           "How long the oldest waiting client of the pool has waited for a server.");
    POOLS_FOREACH(item)
    {
        const struct pool *p = POOL_OF(item);
        textbuf_puts(tb, "pgmux_pool_maxwait_seconds{");
        put_pool_labels(tb, p);
        textbuf_printf(tb, "} %.6f\n", stats_pool_maxwait(p, now));
    }
    family(tb, "pgmux_pool_size", "gauge",
           "Server connections the pool may open (pool_size; 0 = no limit).");
    POOLS_FOREACH(item)
    {
        const struct pool *p = POOL_OF(item);
        int size = pool_size(p);
        pool_sample(tb, "pgmux_pool_size", p, NULL, size >= INT_MAX / 2 ? 0u : (unsigned)size);
    }
    family(tb, "pgmux_pool_reserve_size", "gauge",
           "Extra server connections the pool may open for clients that waited "
           "reserve_pool_timeout.");
    POOLS_FOREACH(item)
    {
        const struct pool *p = POOL_OF(item);
        int r = pool_reserve_size(p);
        pool_sample(tb, "pgmux_pool_reserve_size", p, NULL, r > 0 ? (unsigned)r : 0u);
    }
    family(tb, "pgmux_pool_reserve_in_use", "gauge",
           "Server connections of the pool beyond pool_size (taken from the reserve).");
    POOLS_FOREACH(item)
    {
        const struct pool *p = POOL_OF(item);
        int over = pool_server_count(p) - pool_size(p);
        pool_sample(tb, "pgmux_pool_reserve_in_use", p, NULL, over > 0 ? (unsigned)over : 0u);
    }
    family(tb, "pgmux_pool_reachable", "gauge",
           "1 when the pool's database counts as reachable for /health/ready, else 0.");
    POOLS_FOREACH(item)
    {
        const struct pool *p = POOL_OF(item);
        pool_sample(tb, "pgmux_pool_reachable", p, NULL, health_pool_reachable(p, NULL, 0));
    }
}

static void pool_counters(struct textbuf *tb)
{
    struct list *item;
    static const struct {
        const char *name, *help;
        size_t offset;
    } simple[] = {
        {"pgmux_queries_total",
         "Queries (Query and Execute messages) clients sent through the pool.",
         offsetof(struct pool_stats, query_count)},
        {"pgmux_transactions_total",
         "Transactions that ended (ReadyForQuery with status idle), in every pool mode.",
         offsetof(struct pool_stats, xact_count)},
        {"pgmux_server_assignments_total", "Times a server connection was linked to a client.",
         offsetof(struct pool_stats, server_assignment_count)},
        {"pgmux_received_bytes_total", "Bytes received from clients and sent on to servers.",
         offsetof(struct pool_stats, bytes_received)},
        {"pgmux_sent_bytes_total", "Bytes received from servers and sent on to clients.",
         offsetof(struct pool_stats, bytes_sent)},
        {"pgmux_pool_client_logins_total", "Client logins to the pool that passed authentication.",
         offsetof(struct pool_stats, client_login_count)},
    };
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        family(tb, simple[i].name, "counter", simple[i].help);
        POOLS_FOREACH(item)
        {
            const struct pool *p = POOL_OF(item);
            uint64_t v = *(const uint64_t *)((const char *)&p->stats + simple[i].offset);
            pool_sample(tb, simple[i].name, p, NULL, v);
        }
    }

    family(tb, "pgmux_server_connects_total", "counter",
           "Server connection attempts of the pool by result (login done, or failed: connect, "
           "authentication, startup error or timeout).");
    POOLS_FOREACH(item)
    {
        const struct pool *p = POOL_OF(item);
        pool_sample(tb, "pgmux_server_connects_total", p, "result=\"success\"",
                    p->stats.extra.server_logins_ok);
        pool_sample(tb, "pgmux_server_connects_total", p, "result=\"failure\"",
                    p->stats.extra.server_logins_failed);
    }

    family(tb, "pgmux_errors_total", "counter",
           "Errors sent to the pool's clients by SQLSTATE class: source=\"server\" for "
           "ErrorResponse from PostgreSQL, source=\"pgmux\" for FATAL errors of the pooler.");
    POOLS_FOREACH(item)
    {
        const struct pool *p = POOL_OF(item);
        for (int i = 0; i <= STATS_SQLSTATE_CLASSES; i++) {
            char extra[64];
            if (p->stats.extra.server_errors[i]) {
                snprintf(extra, sizeof(extra), "source=\"server\",sqlstate_class=\"%s\"",
                         stats_sqlstate_class_name(i));
                pool_sample(tb, "pgmux_errors_total", p, extra, p->stats.extra.server_errors[i]);
            }
            if (p->stats.extra.pooler_errors[i]) {
                snprintf(extra, sizeof(extra), "source=\"pgmux\",sqlstate_class=\"%s\"",
                         stats_sqlstate_class_name(i));
                pool_sample(tb, "pgmux_errors_total", p, extra, p->stats.extra.pooler_errors[i]);
            }
        }
    }

    static const char *const timeout_labels[STATS_TO_COUNT] = {
        "timeout=\"query_timeout\"",
        "timeout=\"query_wait_timeout\"",
        "timeout=\"idle_transaction_timeout\"",
        "timeout=\"transaction_timeout\"",
        "timeout=\"client_idle_timeout\"",
    };
    family(tb, "pgmux_client_timeouts_total", "counter",
           "Clients of the pool disconnected by a timeout, by the setting that fired.");
    POOLS_FOREACH(item)
    {
        const struct pool *p = POOL_OF(item);
        for (int i = 0; i < STATS_TO_COUNT; i++)
            pool_sample(tb, "pgmux_client_timeouts_total", p, timeout_labels[i],
                        p->stats.extra.timeouts[i]);
    }

    hist_family(tb, "pgmux_query_duration_seconds",
                "Query time: from a client's query to the server's ReadyForQuery.", 0);
    hist_family(tb, "pgmux_transaction_duration_seconds",
                "Transaction time: from its first query to the ReadyForQuery that ended it.", 1);
    hist_family(tb, "pgmux_client_wait_seconds",
                "Time a client waited for a server, per server assignment (0 when one was idle).",
                2);
}

static void global_metrics(struct textbuf *tb)
{
    const struct stats_global *g = &stats_global;
    struct list *item;
    uint64_t logins_ok = 0;
    unsigned pools = 0;
    POOLS_FOREACH(item)
    {
        logins_ok += POOL_OF(item)->stats.client_login_count;
        pools++;
    }

    family(tb, "pgmux_build_info", "gauge", "pgmux build information; the value is always 1.");
    textbuf_puts(tb, "pgmux_build_info{version=\"");
    textbuf_prom_label(tb, PGMUX_VERSION);
    textbuf_puts(tb, "\",openssl=\"");
    textbuf_prom_label(tb, OpenSSL_version(OPENSSL_VERSION));
    textbuf_printf(tb, "\",libev=\"%d.%d\"} 1\n", ev_version_major(), ev_version_minor());

    family(tb, "pgmux_paused", "gauge", "1 while pgmux is paused (PAUSE or SIGUSR1).");
    global_sample(tb, "pgmux_paused", NULL, G.paused);
    family(tb, "pgmux_shutting_down", "gauge", "1 once a shutdown has begun.");
    global_sample(tb, "pgmux_shutting_down", NULL, G.shutting_down);
    family(tb, "pgmux_client_connections", "gauge", "Client connections open, in any state.");
    global_sample(tb, "pgmux_client_connections", NULL, (unsigned)G.client_count);
    family(tb, "pgmux_max_client_connections", "gauge", "The max_client_conn setting.");
    global_sample(tb, "pgmux_max_client_connections", NULL, (unsigned)G.cfg->max_client_conn);
    family(tb, "pgmux_server_connections", "gauge", "Server connections open, in any state.");
    global_sample(tb, "pgmux_server_connections", NULL, (unsigned)G.server_count);
    family(tb, "pgmux_pools", "gauge", "Pools (database, user pairs) known.");
    global_sample(tb, "pgmux_pools", NULL, pools);

    family(tb, "pgmux_client_logins_total", "counter",
           "Client login attempts by result: success (authenticated), auth_failure (SQLSTATE "
           "class 28) or rejected (any other error before the login completed).");
    global_sample(tb, "pgmux_client_logins_total", "result=\"success\"", logins_ok);
    global_sample(tb, "pgmux_client_logins_total", "result=\"auth_failure\"",
                  g->client_login_failures[STATS_LOGIN_AUTH_FAILED]);
    global_sample(tb, "pgmux_client_logins_total", "result=\"rejected\"",
                  g->client_login_failures[STATS_LOGIN_REJECTED]);

    family(tb, "pgmux_cancel_requests_total", "counter",
           "Cancel requests by result: forwarded to the server, idle (no query was running), "
           "unknown_key, failed (could not reach the server).");
    global_sample(tb, "pgmux_cancel_requests_total", "result=\"forwarded\"",
                  g->cancels[STATS_CANCEL_FORWARDED]);
    global_sample(tb, "pgmux_cancel_requests_total", "result=\"idle\"",
                  g->cancels[STATS_CANCEL_IDLE]);
    global_sample(tb, "pgmux_cancel_requests_total", "result=\"unknown_key\"",
                  g->cancels[STATS_CANCEL_UNKNOWN_KEY]);
    global_sample(tb, "pgmux_cancel_requests_total", "result=\"failed\"",
                  g->cancels[STATS_CANCEL_FAILED]);

    struct throttle_stats ts;
    throttle_get_stats(&ts);
    family(tb, "pgmux_client_addresses", "gauge",
           "Client IP addresses remembered: with TCP connections open or recent failed logins.");
    global_sample(tb, "pgmux_client_addresses", NULL, ts.addresses);
    family(tb, "pgmux_throttled_addresses", "gauge",
           "Client addresses whose logins are delayed now (auth_failure_limit).");
    global_sample(tb, "pgmux_throttled_addresses", NULL, ts.throttled_addresses);
    family(tb, "pgmux_delayed_logins", "gauge", "Logins being held back now (auth_failure_delay).");
    global_sample(tb, "pgmux_delayed_logins", NULL, ts.delayed_now);
    family(tb, "pgmux_login_delays_total", "counter",
           "Logins held back because their address had too many failed logins.");
    global_sample(tb, "pgmux_login_delays_total", NULL, ts.logins_delayed);
    family(tb, "pgmux_addr_limit_refusals_total", "counter",
           "Logins refused because their address had max_client_conn_per_addr connections.");
    global_sample(tb, "pgmux_addr_limit_refusals_total", NULL, ts.conns_refused);

    family(tb, "pgmux_config_reloads_total", "counter",
           "Configuration reloads (SIGHUP or RELOAD) by result.");
    global_sample(tb, "pgmux_config_reloads_total", "result=\"success\"", g->reloads_ok);
    global_sample(tb, "pgmux_config_reloads_total", "result=\"failure\"", g->reloads_failed);
    family(tb, "pgmux_config_last_reload_successful", "gauge",
           "1 unless the most recent reload was refused.");
    global_sample(tb, "pgmux_config_last_reload_successful", NULL, !g->last_reload_failed);
    family(tb, "pgmux_config_last_reload_success_timestamp_seconds", "gauge",
           "Unix time of the last successful configuration load (startup included).");
    textbuf_printf(tb, "pgmux_config_last_reload_success_timestamp_seconds %.3f\n",
                   g->last_reload_ok);
}

/*==== Process ====*/

static long read_statm_pages(int field)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    long size = 0, resident = 0;
    if (sscanf(buf, "%ld %ld", &size, &resident) != 2)
        return -1;
    return field == 0 ? size : resident;
}

static long count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void process_metrics(struct textbuf *tb)
{
    struct rusage ru;
    struct rlimit rl;
    long page = sysconf(_SC_PAGESIZE);

    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        family(tb, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
        textbuf_printf(tb, "process_cpu_seconds_total %.6f\n", cpu);
    }
    long rss = read_statm_pages(1), vsz = read_statm_pages(0);
    if (rss >= 0 && page > 0) {
        family(tb, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        textbuf_printf(tb, "process_resident_memory_bytes %ld\n", rss * page);
    }
    if (vsz >= 0 && page > 0) {
        family(tb, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        textbuf_printf(tb, "process_virtual_memory_bytes %ld\n", vsz * page);
    }
    long fds = count_open_fds();
    if (fds >= 0) {
        family(tb, "process_open_fds", "gauge", "Number of open file descriptors.");
        textbuf_printf(tb, "process_open_fds %ld\n", fds);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        family(tb, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        if (rl.rlim_cur == RLIM_INFINITY)
            textbuf_puts(tb, "process_max_fds +Inf\n");
        else
            textbuf_printf(tb, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    family(tb, "process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.");
    textbuf_printf(tb, "process_start_time_seconds %.3f\n", G.start_time);
}

/*==== Entry point ====*/

void metrics_render(struct textbuf *tb)
{
    global_metrics(tb);
    pool_gauges(tb);
    pool_counters(tb);
    http_render_metrics(tb);
    process_metrics(tb);
}
