/* SPDX-License-Identifier: ISC */
/*
 * addrlimit: the per-address table (see addrlimit.h for the contract).
 *
 * Entries live in a fixed array of hash chains. An entry is in exactly one
 * of two situations: "live" (conns > 0: pinned, callers hold pointers to
 * it) or "idle" (conns == 0, failures remembered: on the idle list, oldest
 * first, at most idle_max long). An entry with neither connections nor
 * failures is freed at once. Entries come from a slab, so connection churn
 * costs no malloc once warm; the memory is bounded by the peak of live
 * entries plus idle_max.
 *
 * The chain index is NH (the hash of UMAC) over the address's four 32-bit
 * words with random keys, then the top bits of a multiplication: without
 * the keys nobody can pick a set of addresses that share one chain.
 */
#include "addrlimit.h"

#include "list.h"
#include "slab.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Chains: enough that a full idle list plus a few thousand clients stay short. */
#define ADDRLIMIT_MIN_BUCKETS 256

struct addrlimit_entry {
    struct list hnode;     /* in its hash chain */
    struct list inode;     /* in t->idle while conns == 0 */
    uint32_t conns;        /* open connections from this address */
    uint32_t failures;     /* failed logins in the current window */
    double window_start;   /* first failure of the window, or the last one once throttled */
    uint8_t family;        /* AF_INET or AF_INET6 */
    uint8_t addr[16];      /* AF_INET: first 4 bytes, rest zero */
};

struct addrlimit {
    struct list *buckets;
    uint32_t mask;         /* buckets - 1 (a power of two) */
    unsigned shift;        /* 64 - log2(buckets) */
    uint32_t key[4];       /* NH keys */
    struct statlist idle;  /* entries without connections, oldest first */
    unsigned idle_max;
    size_t size;           /* entries in the table */
    struct slab *slab;
};

/*==== Helpers ====*/

/* Fill family/addr of a key; false for anything but IPv4 and IPv6. */
static bool make_key(int family, const uint8_t *addr, uint8_t *kfamily, uint8_t kaddr[16])
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(kaddr, 0, 16);
    if (family == AF_INET6 && memcmp(addr, v4mapped, sizeof(v4mapped)) == 0) {
        /* A dual-stack listener shows IPv4 clients as ::ffff:a.b.c.d: one address. */
        family = AF_INET;
        addr += 12;
    }
    if (family == AF_INET)
        memcpy(kaddr, addr, 4);
    else if (family == AF_INET6)
        memcpy(kaddr, addr, 16);
    else
        return false;
    *kfamily = (uint8_t)family;
    return true;
}

static uint32_t bucket_of(const struct addrlimit *t, uint8_t family, const uint8_t addr[16])
{
    uint32_t w[4];
    memcpy(w, addr, sizeof(w));
    /* NH: sums of 32-bit words and keys, multiplied pairwise into 64 bits. */
    uint64_t h = (uint64_t)(uint32_t)(w[0] + t->key[0]) * (uint32_t)(w[1] + t->key[1]) +
                 (uint64_t)(uint32_t)(w[2] + t->key[2]) * (uint32_t)(w[3] + t->key[3]);
    /* Fibonacci hashing: the top bits of a product depend on every bit of h,
     * so the chain index does too (the low bits of h alone may not vary). */
    h = (h + family) * UINT64_C(0x9e3779b97f4a7c15);
    return (uint32_t)(h >> t->shift);
}

static void entry_free(struct addrlimit *t, struct addrlimit_entry *e)
{
    list_del(&e->hnode);
    t->size--;
    slab_free(t->slab, e);
}

static void idle_remove(struct addrlimit *t, struct addrlimit_entry *e)
{
    statlist_remove(&t->idle, &e->inode);
}

/* Forget the failures of a window that has passed. */
static void expire(struct addrlimit_entry *e, const struct addrlimit_rules *r, double now)
{
    if (e->failures > 0 && now - e->window_start >= r->window)
        e->failures = 0;
}

/*
 * Drop idle entries whose failures expired, oldest first, stopping at the
 * first that still matters: the list is in the order entries went idle,
 * which is close to the order of their last failure, so this does the cheap
 * part of the work without a walk.
 */
static void prune(struct addrlimit *t, const struct addrlimit_rules *r, double now)
{
    struct list *item;
    while ((item = statlist_first(&t->idle)) != NULL) {
        struct addrlimit_entry *e = container_of(item, struct addrlimit_entry, inode);
        expire(e, r, now);
        if (e->failures > 0)
            break;
        idle_remove(t, e);
        entry_free(t, e);
    }
}

/*==== Public functions ====*/

struct addrlimit *addrlimit_new(unsigned idle_max, const uint8_t seed[16])
{
    struct addrlimit *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    uint32_t n = ADDRLIMIT_MIN_BUCKETS;
    while (n < idle_max / 2 && n < (1u << 24))
        n <<= 1;
    t->buckets = calloc(n, sizeof(*t->buckets));
    t->slab = slab_create("addrlimit", sizeof(struct addrlimit_entry));
    if (!t->buckets || !t->slab) {
        free(t->buckets);
        free(t->slab);
        free(t);
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++)
        list_init(&t->buckets[i]);
    t->mask = n - 1;
    t->shift = 64;
    for (uint32_t b = n; b > 1; b >>= 1)
        t->shift--;
    memcpy(t->key, seed, sizeof(t->key));
    statlist_init(&t->idle);
    t->idle_max = idle_max;
    return t;
}

void addrlimit_free(struct addrlimit *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i <= t->mask; i++)
        while (!list_empty(&t->buckets[i]))
            entry_free(t, container_of(t->buckets[i].next, struct addrlimit_entry, hnode));
    slab_destroy(t->slab);
    free(t->buckets);
    free(t);
}

struct addrlimit_entry *addrlimit_conn_open(struct addrlimit *t, int family, const uint8_t *addr,
                                            const struct addrlimit_rules *rules, double now)
{
    uint8_t kfamily, kaddr[16];
    if (!make_key(family, addr, &kfamily, kaddr))
        return NULL;
    prune(t, rules, now);
    struct list *chain = &t->buckets[bucket_of(t, kfamily, kaddr)];
    for (struct list *item = chain->next; item != chain; item = item->next) {
        struct addrlimit_entry *e = container_of(item, struct addrlimit_entry, hnode);
        if (e->family == kfamily && memcmp(e->addr, kaddr, 16) == 0) {
            if (e->conns == 0)
                idle_remove(t, e); /* live again: pinned, not evictable */
            if (e->conns < UINT32_MAX)
                e->conns++;
            return e;
        }
    }
    struct addrlimit_entry *e = slab_alloc(t->slab);
    if (!e)
        return NULL;
    e->family = kfamily;
    memcpy(e->addr, kaddr, 16);
    e->conns = 1;
    list_init(&e->inode);
    list_insert_after(chain, &e->hnode);
    t->size++;
    return e;
}

void addrlimit_conn_close(struct addrlimit *t, struct addrlimit_entry *e)
{
    if (e->conns == 0)
        return; /* not counted (saturated counts never get here in practice) */
    if (--e->conns > 0)
        return;
    if (e->failures == 0) {
        entry_free(t, e);
        return;
    }
    /* Remember its failures, within the idle budget: the oldest goes first. */
    statlist_append(&t->idle, &e->inode);
    while ((unsigned)t->idle.count > t->idle_max) {
        struct addrlimit_entry *old =
            container_of(statlist_first(&t->idle), struct addrlimit_entry, inode);
        idle_remove(t, old);
        entry_free(t, old);
    }
}

unsigned addrlimit_conns(const struct addrlimit_entry *e)
{
    return e->conns;
}

bool addrlimit_failed(struct addrlimit_entry *e, const struct addrlimit_rules *rules, double now)
{
    bool was = addrlimit_throttled(e, rules, now);
    expire(e, rules, now);
    if (e->failures == 0)
        e->window_start = now;
    if (e->failures < UINT32_MAX)
        e->failures++;
    if (rules->limit == 0 || e->failures < rules->limit)
        return false;
    /* Throttled: it stays so until a whole window passes without a failure. */
    e->window_start = now;
    return !was;
}

bool addrlimit_throttled(const struct addrlimit_entry *e, const struct addrlimit_rules *rules,
                         double now)
{
    return rules->limit > 0 && e->failures >= rules->limit && now - e->window_start < rules->window;
}

unsigned addrlimit_failures(const struct addrlimit_entry *e, const struct addrlimit_rules *rules,
                            double now)
{
    return e->failures > 0 && now - e->window_start < rules->window ? e->failures : 0;
}

size_t addrlimit_size(const struct addrlimit *t)
{
    return t->size;
}

size_t addrlimit_count_throttled(const struct addrlimit *t, const struct addrlimit_rules *rules,
                                 double now)
{
    size_t n = 0;
    if (rules->limit == 0)
        return 0;
    for (uint32_t i = 0; i <= t->mask; i++)
        for (struct list *item = t->buckets[i].next; item != &t->buckets[i]; item = item->next)
            if (addrlimit_throttled(container_of(item, struct addrlimit_entry, hnode), rules, now))
                n++;
    return n;
}

const char *addrlimit_format(const struct addrlimit_entry *e, char *buf, size_t len)
{
    if (!inet_ntop(e->family, e->addr, buf, (socklen_t)len))
        snprintf(buf, len, "?");
    return buf;
}
