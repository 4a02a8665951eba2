/* SPDX-License-Identifier: ISC */
/*
 * stats: recording of per-pool counters and histograms (see stats.h).
 */
#include "stats.h"

#include "pgmux.h"

static const uint64_t bounds_us[STATS_BUCKETS] = {
    100,    250,    500,     1000,    2500,    5000,    10000,    25000,    50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
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
