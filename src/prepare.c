/* SPDX-License-Identifier: ISC */
/*
 * prepare: the data behind named prepared statements in transaction mode
 * (see prepare.h; the message rewriting itself lives in client.c and
 * server.c).
 *
 * Entries are shared: a thousand clients preparing the same query with the
 * same parameter types share one entry, and a server that prepared it once
 * serves them all. Each socket's state (a client's name map, a server's LRU
 * and request queue) is allocated the first time it is needed, so clients
 * that never prepare a statement pay nothing.
 */
#include "prepare.h"

#include "list.h"
#include "pgmux.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ps_cname {
    struct ps_cname *next;
    struct ps_entry *e;
    uint64_t gen; /* set anew by each Parse of the name */
    char name[];
};

struct ps_snode {
    struct ps_snode *next;
    struct list lru; /* head = most recently used */
    struct ps_entry *e;
    bool present;    /* its ParseComplete arrived */
    uint32_t seg;    /* Sync segment its Parse was sent in, while not present */
};

struct ps_qitem {
    uint8_t type;
    uint8_t skip;
    struct ps_entry *e;
    uint64_t name_gen; /* a client's own Parse: the generation of its name */
};

struct ps_state {
    struct ps_cname **cb; /* client: name -> entry */
    uint32_t cb_n;
    int c_count;
    struct ps_snode **sb; /* server: entry id -> node */
    uint32_t sb_n;
    int s_count;
    struct list lru;
    struct ps_qitem *q; /* server: ring of outstanding requests */
    uint32_t q_head, q_len, q_cap;
    uint32_t seg;       /* server: Sync/Query messages sent so far */
};

static struct ps_entry **entries;
static uint32_t entries_n, entries_count;
static uint64_t next_id;
static uint64_t next_name_gen;

static uint32_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 16777619u;
    }
    return h;
}

/*==== Shared entries ====*/

static bool entries_grow(void)
{
    uint32_t nn = entries_n ? entries_n * 2 : 256;
    struct ps_entry **nt = calloc(nn, sizeof(*nt));
    if (!nt)
        return false;
    for (uint32_t i = 0; i < entries_n; i++) {
        struct ps_entry *e = entries[i];
        while (e) {
            struct ps_entry *next = e->hnext;
            e->hnext = nt[e->hash & (nn - 1)];
            nt[e->hash & (nn - 1)] = e;
            e = next;
        }
    }
    free(entries);
    entries = nt;
    entries_n = nn;
    return true;
}

struct ps_entry *ps_entry_get(const uint8_t *body, uint32_t len)
{
    uint32_t h = hash_bytes(body, len);
    if (entries_n) {
        for (struct ps_entry *e = entries[h & (entries_n - 1)]; e; e = e->hnext) {
            if (e->hash == h && e->body_len == len && memcmp(e->body, body, len) == 0) {
                e->refcnt++;
                return e;
            }
        }
    }
    if ((entries_count + 1) > entries_n && !entries_grow())
        return NULL;
    struct ps_entry *e = malloc(sizeof(*e) + len);
    if (!e)
        return NULL;
    e->id = ++next_id;
    e->hash = h;
    e->refcnt = 1;
    e->body_len = len;
    memcpy(e->body, body, len);
    snprintf(e->name, sizeof(e->name), PS_SERVER_PREFIX "%llu", (unsigned long long)e->id);
    e->hnext = entries[h & (entries_n - 1)];
    entries[h & (entries_n - 1)] = e;
    entries_count++;
    return e;
}

void ps_entry_put(struct ps_entry *e)
{
    if (!e || --e->refcnt > 0)
        return;
    struct ps_entry **pp = &entries[e->hash & (entries_n - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    entries_count--;
    free(e);
}

static struct ps_state *state_of(struct pgsock *sock, bool create)
{
    if (!sock->ps && create) {
        sock->ps = calloc(1, sizeof(struct ps_state));
        if (sock->ps)
            list_init(&sock->ps->lru);
    }
    return sock->ps;
}

/*==== Client map ====*/

static struct ps_cname **cname_slot(struct ps_state *st, const char *name)
{
    struct ps_cname **pp = &st->cb[hash_bytes(name, strlen(name)) & (st->cb_n - 1)];
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

static bool cmap_grow(struct ps_state *st)
{
    uint32_t nn = st->cb_n ? st->cb_n * 2 : 16;
    struct ps_cname **nt = calloc(nn, sizeof(*nt));
    if (!nt)
        return false;
    for (uint32_t i = 0; i < st->cb_n; i++) {
        struct ps_cname *c = st->cb[i];
        while (c) {
            struct ps_cname *next = c->next;
            uint32_t b = hash_bytes(c->name, strlen(c->name)) & (nn - 1);
            c->next = nt[b];
            nt[b] = c;
            c = next;
        }
    }
    free(st->cb);
    st->cb = nt;
    st->cb_n = nn;
    return true;
}

uint64_t ps_client_set(struct pgsock *c, const char *name, struct ps_entry *e)
{
    struct ps_state *st = state_of(c, true);
    if (!st)
        return 0;
    if ((uint32_t)st->c_count + 1 > st->cb_n && !cmap_grow(st))
        return 0;
    struct ps_cname **pp = cname_slot(st, name);
    if (*pp) {
        /* The driver reused a name without closing it: the new text wins. */
        e->refcnt++;
        ps_entry_put((*pp)->e);
        (*pp)->e = e;
        (*pp)->gen = ++next_name_gen;
        return (*pp)->gen;
    }
    size_t n = strlen(name);
    struct ps_cname *cn = malloc(sizeof(*cn) + n + 1);
    if (!cn)
        return 0;
    memcpy(cn->name, name, n + 1);
    cn->e = e;
    cn->gen = ++next_name_gen;
    e->refcnt++;
    cn->next = NULL;
    *pp = cn;
    st->c_count++;
    return cn->gen;
}

struct ps_entry *ps_client_get(const struct pgsock *c, const char *name)
{
    struct ps_state *st = c->ps;
    if (!st || !st->cb_n)
        return NULL;
    struct ps_cname **pp = cname_slot(st, name);
    return *pp ? (*pp)->e : NULL;
}

void ps_client_remove(struct pgsock *c, const char *name)
{
    struct ps_state *st = c->ps;
    if (!st || !st->cb_n)
        return;
    struct ps_cname **pp = cname_slot(st, name);
    struct ps_cname *cn = *pp;
    if (!cn)
        return;
    *pp = cn->next;
    ps_entry_put(cn->e);
    free(cn);
    st->c_count--;
}

void ps_client_clear(struct pgsock *c)
{
    struct ps_state *st = c->ps;
    if (!st)
        return;
    for (uint32_t i = 0; i < st->cb_n; i++) {
        struct ps_cname *cn = st->cb[i];
        while (cn) {
            struct ps_cname *next = cn->next;
            ps_entry_put(cn->e);
            free(cn);
            cn = next;
        }
        st->cb[i] = NULL;
    }
    st->c_count = 0;
}

/* Is a Parse that defined the name of generation gen still waiting for its answer on s? */
static bool queued_parse(const struct ps_state *sst, uint64_t gen)
{
    for (uint32_t i = 0; sst && i < sst->q_len; i++) {
        const struct ps_qitem *it = &sst->q[(sst->q_head + i) % sst->q_cap];
        if (it->type == PSQ_PARSE && it->name_gen == gen)
            return true;
    }
    return false;
}

void ps_client_clear_answered(struct pgsock *c, const struct pgsock *s)
{
    struct ps_state *st = c->ps;
    if (!st)
        return;
    for (uint32_t i = 0; i < st->cb_n; i++) {
        struct ps_cname **pp = &st->cb[i];
        while (*pp) {
            struct ps_cname *cn = *pp;
            if (queued_parse(s->ps, cn->gen)) {
                pp = &cn->next;
                continue;
            }
            *pp = cn->next;
            ps_entry_put(cn->e);
            free(cn);
            st->c_count--;
        }
    }
}

void ps_client_forget(struct pgsock *c, uint64_t gen)
{
    struct ps_state *st = c->ps;
    if (!st || !gen)
        return;
    for (uint32_t i = 0; i < st->cb_n; i++) {
        for (struct ps_cname **pp = &st->cb[i]; *pp; pp = &(*pp)->next) {
            struct ps_cname *cn = *pp;
            if (cn->gen == gen) {
                *pp = cn->next;
                ps_entry_put(cn->e);
                free(cn);
                st->c_count--;
                return;
            }
        }
    }
}

int ps_client_count(const struct pgsock *c)
{
    return c->ps ? c->ps->c_count : 0;
}

/*==== Server cache ====*/

static struct ps_snode **snode_slot(struct ps_state *st, const struct ps_entry *e)
{
    struct ps_snode **pp = &st->sb[(uint32_t)e->id & (st->sb_n - 1)];
    while (*pp && (*pp)->e != e)
        pp = &(*pp)->next;
    return pp;
}

static bool smap_grow(struct ps_state *st)
{
    uint32_t nn = st->sb_n ? st->sb_n * 2 : 16;
    struct ps_snode **nt = calloc(nn, sizeof(*nt));
    if (!nt)
        return false;
    for (uint32_t i = 0; i < st->sb_n; i++) {
        struct ps_snode *n = st->sb[i];
        while (n) {
            struct ps_snode *next = n->next;
            uint32_t b = (uint32_t)n->e->id & (nn - 1);
            n->next = nt[b];
            nt[b] = n;
            n = next;
        }
    }
    free(st->sb);
    st->sb = nt;
    st->sb_n = nn;
    return true;
}

bool ps_server_confirmed(const struct pgsock *s, struct ps_entry *e)
{
    struct ps_state *st = s->ps;
    if (!st || !st->sb_n)
        return false;
    const struct ps_snode *n = *snode_slot(st, e);
    return n && n->present;
}

bool ps_server_has(struct pgsock *s, struct ps_entry *e)
{
    struct ps_state *st = s->ps;
    if (!st || !st->sb_n)
        return false;
    struct ps_snode *n = *snode_slot(st, e);
    /* A Parse still in flight counts only inside its own Sync segment: if an
     * earlier error makes PostgreSQL skip it, whatever follows in that segment
     * is skipped too, but a later segment would find nothing. */
    if (!n || (!n->present && n->seg != st->seg))
        return false;
    list_del(&n->lru);
    list_insert_after(&st->lru, &n->lru);
    return true;
}

bool ps_server_add(struct pgsock *s, struct ps_entry *e)
{
    struct ps_state *st = state_of(s, true);
    if (!st)
        return false;
    if ((uint32_t)st->s_count + 1 > st->sb_n && !smap_grow(st))
        return false;
    struct ps_snode **pp = snode_slot(st, e);
    if (*pp) {
        if (!(*pp)->present)
            (*pp)->seg = st->seg;
        return true;
    }
    struct ps_snode *n = malloc(sizeof(*n));
    if (!n)
        return false;
    n->present = false;
    n->seg = st->seg;
    n->e = e;
    e->refcnt++;
    n->next = NULL;
    *pp = n;
    list_insert_after(&st->lru, &n->lru);
    st->s_count++;
    return true;
}

void ps_server_confirm(struct pgsock *s, struct ps_entry *e)
{
    struct ps_state *st = s->ps;
    if (!st || !st->sb_n)
        return;
    struct ps_snode *n = *snode_slot(st, e);
    if (n)
        n->present = true;
}

void ps_server_remove(struct pgsock *s, struct ps_entry *e)
{
    struct ps_state *st = s->ps;
    if (!st || !st->sb_n)
        return;
    struct ps_snode **pp = snode_slot(st, e);
    struct ps_snode *n = *pp;
    if (!n)
        return;
    *pp = n->next;
    list_del(&n->lru);
    ps_entry_put(n->e);
    free(n);
    st->s_count--;
}

struct ps_entry *ps_server_victim(struct pgsock *s, int max)
{
    struct ps_state *st = s->ps;
    if (!st || st->s_count < max || list_empty(&st->lru))
        return NULL;
    return container_of(st->lru.prev, struct ps_snode, lru)->e;
}

void ps_server_clear(struct pgsock *s)
{
    struct ps_state *st = s->ps;
    if (!st)
        return;
    for (uint32_t i = 0; i < st->sb_n; i++) {
        struct ps_snode *n = st->sb[i];
        while (n) {
            struct ps_snode *next = n->next;
            ps_entry_put(n->e);
            free(n);
            n = next;
        }
        st->sb[i] = NULL;
    }
    list_init(&st->lru);
    st->s_count = 0;
}

int ps_server_count(const struct pgsock *s)
{
    return s->ps ? s->ps->s_count : 0;
}

/*==== Request queue ====*/

bool ps_queue_push(struct pgsock *s, uint8_t type, bool skip, struct ps_entry *e,
                   uint64_t name_gen)
{
    struct ps_state *st = state_of(s, true);
    if (!st)
        return false;
    if (st->q_len == st->q_cap) {
        uint32_t ncap = st->q_cap ? st->q_cap * 2 : 16;
        struct ps_qitem *nq = malloc(ncap * sizeof(*nq));
        if (!nq)
            return false;
        for (uint32_t i = 0; i < st->q_len; i++)
            nq[i] = st->q[(st->q_head + i) % st->q_cap];
        free(st->q);
        st->q = nq;
        st->q_cap = ncap;
        st->q_head = 0;
    }
    struct ps_qitem *it = &st->q[(st->q_head + st->q_len) % st->q_cap];
    if (type == PSQ_SYNC || type == PSQ_QUERY || type == PSQ_FUNC)
        st->seg++;
    it->type = type;
    it->skip = skip;
    it->e = e;
    it->name_gen = name_gen;
    if (e)
        e->refcnt++;
    st->q_len++;
    return true;
}

uint8_t ps_queue_front(const struct pgsock *s)
{
    const struct ps_state *st = s->ps;
    if (!st || !st->q_len)
        return 0;
    return st->q[st->q_head].type;
}

bool ps_queue_pop(struct pgsock *s, uint8_t type, bool *skip, struct ps_entry **e,
                  uint64_t *name_gen)
{
    struct ps_state *st = s->ps;
    if (!st || !st->q_len || st->q[st->q_head].type != type)
        return false;
    struct ps_qitem *it = &st->q[st->q_head];
    *skip = it->skip;
    if (name_gen)
        *name_gen = it->name_gen;
    if (e)
        *e = it->e; /* the caller takes over the reference */
    else
        ps_entry_put(it->e);
    st->q_head = (st->q_head + 1) % st->q_cap;
    st->q_len--;
    return true;
}

bool ps_queue_empty(const struct pgsock *s)
{
    return !s->ps || s->ps->q_len == 0;
}

void ps_queue_clear(struct pgsock *s)
{
    struct ps_state *st = s->ps;
    if (!st)
        return;
    while (st->q_len) {
        ps_entry_put(st->q[st->q_head].e);
        st->q_head = (st->q_head + 1) % st->q_cap;
        st->q_len--;
    }
}

void ps_queue_drop_tail(struct pgsock *s, uint8_t type, int n)
{
    struct ps_state *st = s->ps;
    while (st && st->q_len && n > 0) {
        struct ps_qitem *it = &st->q[(st->q_head + st->q_len - 1) % st->q_cap];
        if (it->type != type)
            break;
        ps_entry_put(it->e);
        st->q_len--;
        n--;
    }
}

void ps_socket_free(struct pgsock *sock)
{
    struct ps_state *st = sock->ps;
    if (!st)
        return;
    ps_client_clear(sock);
    ps_server_clear(sock);
    ps_queue_clear(sock);
    free(st->cb);
    free(st->sb);
    free(st->q);
    free(st);
    sock->ps = NULL;
}
