/* SPDX-License-Identifier: ISC */
/*
 * pool: pools keyed by (database, user), the socket state lists, linking a
 * client to a server and the release rule of each pool mode, and launching
 * server connections (at most one login in progress per pool).
 */
#ifndef PGMUX_POOL_H
#define PGMUX_POOL_H

#include "pgmux.h"

void pool_init(void);

struct pgsock *pool_alloc_client(void);
struct pgsock *pool_alloc_server(struct pool *pool);

/* The only places that assign ->state. */
void pool_change_client_state(struct pgsock *c, enum sock_state st);
void pool_change_server_state(struct pgsock *s, enum sock_state st);

struct pool *pool_get(struct database *db, struct user *user);
/* Empty lists and defaults for a pool the caller owns (pool_get, the admin console's). */
void pool_init_struct(struct pool *p, struct database *db, struct user *user);

/* Effective settings: user > database > global. */
int pool_mode(const struct pool *p);
int pool_size(const struct pool *p);
int pool_min_size(const struct pool *p);
int pool_reserve_size(const struct pool *p);
int pool_server_count(const struct pool *p);

/*
 * A client wants a server. True when linked and ready to forward; false when
 * it was queued or is waiting for a SET on its new server (the client's sbuf
 * is then resumed by whoever completes the link).
 */
bool pool_find_server(struct pgsock *client);

/* A server finished its transaction (or its client left cleanly): unlink and reuse. */
void pool_release_server(struct pgsock *server);

/* server_lifetime (the database's, else the global one) is over for s; always when it is 0. */
bool pool_server_expired(const struct pgsock *s, double now);

/*
 * The transaction ended (server->release_pending): release the server once
 * both streams are between messages, so that the rest of a message of this
 * client (CopyData still coming after a COPY error) or of the server (a
 * notification behind ReadyForQuery) cannot reach PostgreSQL or the next
 * client inside theirs. Called from the FLUSH event of either side.
 */
void pool_release_if_done(struct pgsock *server);

/*
 * A released server that no cancel holds any more: run server_reset_query
 * when the pool mode asks for it, else hand the server to the next client.
 */
void pool_server_returned(struct pgsock *server);

/* A server became usable (login done, check done): hand it to a waiting client. */
void pool_server_ready(struct pgsock *server);

/* Open new server connections where clients wait or min_pool_size asks. */
void pool_launch_if_needed(struct pool *p);

/* Recycle sockets closed during this loop iteration (ev_prepare hook). */
void pool_free_justfree(void);

/* The client (servers false) or server socket cache, for SHOW MEM and SHOW LISTS. */
void pool_cache_stats(bool servers, size_t *size, int *total, int *free_count);

/* Mark every server of p close_needed: idle ones close now, busy ones when released. */
void pool_recycle_servers(struct pool *p, const char *why);

/* Give waiting clients of a pool the server's login error and disconnect them. */
void pool_fail_waiting(struct pool *p, const char *sqlstate, const char *msg);

/* How long a socket has existed, etc. are read from ev_now via loop_now(). */

#endif
