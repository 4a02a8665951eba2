/* SPDX-License-Identifier: ISC */
/*
 * Unit tests of src/addrlimit.c: connection counts per address (IPv4, IPv6,
 * IPv4-mapped IPv6 as IPv4), the failure window and the throttle that
 * outlasts it, and the bound on remembered addresses (oldest forgotten first,
 * addresses with open connections never).
 */
#include "tap.h"

/* Included, not linked: the chain test looks at the table itself. */
#include "../../src/addrlimit.c"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t seed[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static struct addrlimit_entry *open4(struct addrlimit *t, const char *ip,
                                     const struct addrlimit_rules *r, double now)
{
    uint8_t a[4];
    inet_pton(AF_INET, ip, a);
    return addrlimit_conn_open(t, AF_INET, a, r, now);
}

static struct addrlimit_entry *open6(struct addrlimit *t, const char *ip,
                                     const struct addrlimit_rules *r, double now)
{
    uint8_t a[16];
    inet_pton(AF_INET6, ip, a);
    return addrlimit_conn_open(t, AF_INET6, a, r, now);
}

static void test_counts(void)
{
    struct addrlimit_rules r = {3, 60};
    struct addrlimit *t = addrlimit_new(100, seed);
    char buf[64];

    struct addrlimit_entry *a = open4(t, "192.0.2.1", &r, 0);
    struct addrlimit_entry *b = open4(t, "192.0.2.1", &r, 0);
    struct addrlimit_entry *c = open4(t, "192.0.2.2", &r, 0);
    struct addrlimit_entry *m = open6(t, "::ffff:192.0.2.1", &r, 0);
    struct addrlimit_entry *v6 = open6(t, "2001:db8::1", &r, 0);
    TAP_CHECK(a && a == b && a == m, "same IPv4 address, also as ::ffff:a.b.c.d: one entry");
    TAP_CHECK(addrlimit_conns(a) == 3, "three connections counted (got %u)", addrlimit_conns(a));
    TAP_CHECK(c && c != a && addrlimit_conns(c) == 1, "another address has its own count");
    TAP_CHECK(v6 && v6 != a && v6 != c, "IPv6 address has its own entry");
    TAP_STR_EQ(addrlimit_format(a, buf, sizeof(buf)), "192.0.2.1", "IPv4 formatted");
    TAP_STR_EQ(addrlimit_format(v6, buf, sizeof(buf)), "2001:db8::1", "IPv6 formatted");
    TAP_CHECK(addrlimit_size(t) == 3, "three addresses (got %zu)", addrlimit_size(t));
    uint8_t path[16] = {0};
    TAP_CHECK(addrlimit_conn_open(t, AF_UNIX, path, &r, 0) == NULL, "Unix sockets are not counted");

    addrlimit_conn_close(t, a);
    addrlimit_conn_close(t, b);
    TAP_CHECK(addrlimit_conns(m) == 1, "closing two leaves one");
    addrlimit_conn_close(t, m);
    addrlimit_conn_close(t, c);
    addrlimit_conn_close(t, v6);
    TAP_CHECK(addrlimit_size(t) == 0, "addresses without connections or failures are freed (%zu)",
              addrlimit_size(t));
    addrlimit_free(t);
}

static void test_window(void)
{
    struct addrlimit_rules r = {3, 10};
    struct addrlimit *t = addrlimit_new(100, seed);
    struct addrlimit_entry *e = open4(t, "198.51.100.7", &r, 100);

    TAP_CHECK(!addrlimit_failed(e, &r, 100) && !addrlimit_failed(e, &r, 101),
              "two failures: not throttled yet");
    TAP_CHECK(!addrlimit_throttled(e, &r, 101) && addrlimit_failures(e, &r, 101) == 2,
              "two failures remembered, no throttle");
    /* The counting window started at the first failure (100): at 110 it is over. */
    TAP_CHECK(!addrlimit_failed(e, &r, 110.5), "a failure after the window starts a new count");
    TAP_CHECK(addrlimit_failures(e, &r, 110.5) == 1, "old failures forgotten (got %u)",
              addrlimit_failures(e, &r, 110.5));
    TAP_CHECK(!addrlimit_failed(e, &r, 111), "second failure of the new window");
    TAP_CHECK(addrlimit_failed(e, &r, 112), "the third failure throttles, and says so once");
    TAP_CHECK(addrlimit_throttled(e, &r, 112), "throttled");
    TAP_CHECK(!addrlimit_failed(e, &r, 115), "a further failure does not report it again");
    /* The throttle lasts a whole window after the last failure (115), not the first. */
    TAP_CHECK(addrlimit_throttled(e, &r, 124.9), "still throttled 9.9 s after the last failure");
    TAP_CHECK(!addrlimit_throttled(e, &r, 125.1), "free once a window passed without failures");
    TAP_CHECK(addrlimit_failures(e, &r, 125.1) == 0, "and its failures are forgotten");
    TAP_CHECK(!addrlimit_failed(e, &r, 126), "counting starts again from one");

    /* Reload: a lower limit applies at once; limit 0 turns the throttle off. */
    struct addrlimit_rules lower = {2, 10}, off = {0, 10};
    addrlimit_failed(e, &r, 127);
    TAP_CHECK(!addrlimit_throttled(e, &r, 127) && addrlimit_throttled(e, &lower, 127),
              "the rules are read at each check");
    TAP_CHECK(!addrlimit_throttled(e, &off, 127), "limit 0: never throttled");

    /* The failures outlive the connection, within the window. */
    struct addrlimit_entry *f = open4(t, "198.51.100.8", &r, 200);
    addrlimit_failed(f, &r, 200);
    addrlimit_failed(f, &r, 200);
    addrlimit_failed(f, &r, 200);
    addrlimit_conn_close(t, f);
    f = open4(t, "198.51.100.8", &r, 205);
    TAP_CHECK(f && addrlimit_throttled(f, &r, 205), "reconnecting does not clear the throttle");
    addrlimit_conn_close(t, f);
    addrlimit_conn_close(t, e);
    /* Expired idle entries are dropped on the next open. */
    struct addrlimit_entry *g = open4(t, "203.0.113.1", &r, 500);
    TAP_CHECK(addrlimit_size(t) == 1, "expired addresses pruned (size %zu)", addrlimit_size(t));
    addrlimit_conn_close(t, g);
    addrlimit_free(t);
}

static void test_bound(void)
{
    struct addrlimit_rules r = {3, 1000};
    struct addrlimit *t = addrlimit_new(8, seed);
    char ip[64];

    /* The address under attack: throttled, then disconnected. */
    struct addrlimit_entry *victim = open4(t, "192.0.2.99", &r, 0);
    for (int i = 0; i < 3; i++)
        addrlimit_failed(victim, &r, 0);
    addrlimit_conn_close(t, victim);

    /* Clients that stay connected are never evicted. */
    struct addrlimit_entry *live[20];
    for (int i = 0; i < 20; i++) {
        snprintf(ip, sizeof(ip), "10.0.0.%d", i + 1);
        live[i] = open4(t, ip, &r, 1);
        addrlimit_failed(live[i], &r, 1);
    }

    /* A flood of one-failure IPv6 addresses: the idle list holds 8 at most. */
    for (int i = 0; i < 100000; i++) {
        snprintf(ip, sizeof(ip), "2001:db8:%x:%x::1", i >> 12, i & 0xfff);
        struct addrlimit_entry *e = open6(t, ip, &r, 2 + i * 1e-6);
        if (!e)
            break;
        addrlimit_failed(e, &r, 2);
        addrlimit_conn_close(t, e);
    }
    TAP_CHECK(addrlimit_size(t) == 20 + 8, "size bounded: 20 live + 8 idle (got %zu)",
              addrlimit_size(t));
    for (int i = 0; i < 20; i++)
        if (addrlimit_conns(live[i]) != 1 || addrlimit_failures(live[i], &r, 3) != 1) {
            TAP_CHECK(0, "live entry %d kept", i);
            break;
        }
    TAP_CHECK(1, "live entries kept with their failures");

    /* The oldest idle entry (the victim) was the first one forgotten. */
    victim = open4(t, "192.0.2.99", &r, 3);
    TAP_CHECK(victim && addrlimit_failures(victim, &r, 3) == 0,
              "the oldest idle address was evicted");
    /* The newest idle one is still known. */
    snprintf(ip, sizeof(ip), "2001:db8:%x:%x::1", 99999 >> 12, 99999 & 0xfff);
    struct addrlimit_entry *newest = open6(t, ip, &r, 3);
    TAP_CHECK(newest && addrlimit_failures(newest, &r, 3) == 1, "the newest idle address is kept");

    addrlimit_conn_close(t, victim);
    addrlimit_conn_close(t, newest);
    for (int i = 0; i < 20; i++)
        addrlimit_conn_close(t, live[i]);
    TAP_CHECK(addrlimit_size(t) <= 8, "all idle now, still at most 8 (got %zu)", addrlimit_size(t));
    TAP_CHECK(addrlimit_count_throttled(t, &r, 3) == 0, "nothing throttled");
    addrlimit_free(t);
}

static void test_chains(void)
{
    /* 4096 live IPv4 addresses in one /20 and 4096 in one IPv6 /116: with 256
     * chains, no chain should hold more than a small multiple of the mean. */
    struct addrlimit_rules r = {3, 60};
    struct addrlimit *t = addrlimit_new(0, seed);
    static struct addrlimit_entry *es[8192];
    char ip[64];
    int n = 0;
    for (int i = 0; i < 4096; i++) {
        snprintf(ip, sizeof(ip), "10.1.%d.%d", i >> 8, i & 0xff);
        es[n++] = open4(t, ip, &r, 0);
        snprintf(ip, sizeof(ip), "2001:db8::%x", i);
        es[n++] = open6(t, ip, &r, 0);
    }
    TAP_CHECK(addrlimit_size(t) == 8192, "8192 distinct addresses (got %zu)", addrlimit_size(t));
    size_t longest = 0, empty = 0;
    for (uint32_t b = 0; b <= t->mask; b++) {
        size_t len = 0;
        for (struct list *item = t->buckets[b].next; item != &t->buckets[b]; item = item->next)
            len++;
        longest = len > longest ? len : longest;
        empty += len == 0;
    }
    /* 32 per chain on average; a uniform spread stays well under twice that. */
    TAP_CHECK(t->mask == 255 && longest < 64 && empty == 0,
              "addresses spread over the chains (longest %zu, empty %zu)", longest, empty);
    for (int i = 0; i < n; i++)
        addrlimit_conn_close(t, es[i]);
    TAP_CHECK(addrlimit_size(t) == 0, "all gone");
    addrlimit_free(t);
}

int main(void)
{
    test_counts();
    test_window();
    test_bound();
    test_chains();
    return tap_done();
}
