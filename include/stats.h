/* SPDX-License-Identifier: ISC */
/*
 * stats: per-pool counters and latency histograms that SHOW STATS and
 * /metrics both read. Recording a sample is an array increment: no
 * allocation, no clock read (callers pass durations from the cached clock).
 */
#ifndef PGMUX_STATS_H
#define PGMUX_STATS_H

#include <stdint.h>

struct pool;

/* Log-scale bucket upper bounds from 100 us to 60 s (+Inf is the count). */
#define STATS_BUCKETS 18

struct stats_hist {
    uint64_t buckets[STATS_BUCKETS]; /* not cumulative: one bucket per sample */
    uint64_t count;
    uint64_t sum_us;
};

/* Upper bound of bucket i in microseconds. */
uint64_t stats_bucket_bound_us(int i);

void stats_hist_add(struct stats_hist *h, uint64_t us);

/* Called by the core at the points named. */
void stats_query_done(struct pool *p, uint64_t us);  /* a ReadyForQuery answered a query */
void stats_xact_done(struct pool *p, uint64_t us);   /* a server was released after a transaction */
void stats_wait_done(struct pool *p, uint64_t us);   /* a waiting client got a server */

#endif
