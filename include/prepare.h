/* SPDX-License-Identifier: ISC */
/*
 * prepare: protocol-level named prepared statements in transaction and
 * statement mode. A client's statement names map to shared entries keyed by
 * query text and parameter types; each entry has one server-side name
 * (PGMUX_<id>). Every server keeps an LRU of the entries it has prepared,
 * bounded by max_prepared_statements, and a queue of the Parse/Close/Sync/
 * Query/FunctionCall messages in flight, so the ParseComplete and
 * CloseComplete answers to messages pgmux injected are dropped in order.
 */
#ifndef PGMUX_PREPARE_H
#define PGMUX_PREPARE_H

#include <stdbool.h>
#include <stdint.h>

/* Server-side names of shared statements: PGMUX_<id>. Clients may not use the prefix. */
#define PS_SERVER_PREFIX "PGMUX_"

struct pgsock;

struct ps_entry {
    struct ps_entry *hnext;
    uint64_t id;
    uint32_t hash;
    uint32_t refcnt;
    char name[24];     /* server-side name */
    uint32_t body_len; /* query\0 int16 n, n x int32 type oids */
    uint8_t body[];
};

/* Entry for a Parse body (after the name). Takes a reference; NULL = OOM. */
struct ps_entry *ps_entry_get(const uint8_t *body, uint32_t len);
void ps_entry_put(struct ps_entry *e);

/*
 * Client map: its statement names. ps_client_set returns the name's
 * generation (new on every set, 0 = out of memory), which the queue item of
 * its Parse keeps, so a failed Parse forgets that name only, and only if it
 * was not set again since.
 */
uint64_t ps_client_set(struct pgsock *c, const char *name, struct ps_entry *e);
struct ps_entry *ps_client_get(const struct pgsock *c, const char *name);
void ps_client_remove(struct pgsock *c, const char *name);
void ps_client_clear(struct pgsock *c);
/*
 * DISCARD ALL / DEALLOCATE ALL ran on s: forget every name of c except those
 * whose Parse is still queued on s (it came later in the same pipeline).
 */
void ps_client_clear_answered(struct pgsock *c, const struct pgsock *s);
/* Forget the name set with generation gen, if it still has it (its Parse failed). */
void ps_client_forget(struct pgsock *c, uint64_t gen);
int ps_client_count(const struct pgsock *c);

/* Server cache: which entries are prepared on it (LRU). */
bool ps_server_has(struct pgsock *s, struct ps_entry *e); /* and marks it recently used */
/* Its ParseComplete came: e is prepared on s for sure. */
bool ps_server_confirmed(const struct pgsock *s, struct ps_entry *e);
/* Note a Parse of e just sent to s; ps_server_confirm() when its ParseComplete came. */
bool ps_server_add(struct pgsock *s, struct ps_entry *e);
void ps_server_confirm(struct pgsock *s, struct ps_entry *e);
void ps_server_remove(struct pgsock *s, struct ps_entry *e);
/* The least recently used entry when the cache is at max, else NULL. */
struct ps_entry *ps_server_victim(struct pgsock *s, int max);
void ps_server_clear(struct pgsock *s);
int ps_server_count(const struct pgsock *s);

/* Outstanding requests on a server, in the order they were sent. */
enum ps_q_type {
    PSQ_PARSE = 'P',
    PSQ_CLOSE = 'C',
    PSQ_SYNC = 'S',
    PSQ_QUERY = 'Q',
    PSQ_FUNC = 'F',
};
/* name_gen: for a client's own Parse, the generation of its name; else 0. */
bool ps_queue_push(struct pgsock *s, uint8_t type, bool skip, struct ps_entry *e,
                   uint64_t name_gen);
/* Pop the front if it has this type; *skip tells whether its answer is ours. */
bool ps_queue_pop(struct pgsock *s, uint8_t type, bool *skip, struct ps_entry **e,
                  uint64_t *name_gen);
uint8_t ps_queue_front(const struct pgsock *s); /* 0 when empty */
bool ps_queue_empty(const struct pgsock *s);
void ps_queue_clear(struct pgsock *s);
/* Remove up to n items of this type from the tail (Syncs PostgreSQL ignored during COPY IN). */
void ps_queue_drop_tail(struct pgsock *s, uint8_t type, int n);

/* Everything a socket holds (client map, or server cache and queue). */
void ps_socket_free(struct pgsock *sock);

#endif
