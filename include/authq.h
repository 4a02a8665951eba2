/* SPDX-License-Identifier: ISC */
/*
 * authq: auth_user / auth_query. A client whose user is missing from the
 * auth file has its password secret looked up in PostgreSQL: auth_query runs
 * with the user name as $1 on a pooled server connection of the
 * (auth database, auth_user) pool. Lookups wait in that pool's queue while no
 * server is free, and a pool with lookups queued opens servers like one with
 * waiting clients. The answer goes back to client_auth.c (client_authq_done or
 * client_authq_failed), which carries on with the login.
 *
 * Nothing is cached across logins: each login asks again, so a changed or
 * revoked password counts from the next login on (PgBouncer does the same).
 * The secret a login used is kept on the user for pgmux's own server logins.
 */
#ifndef PGMUX_AUTHQ_H
#define PGMUX_AUTHQ_H

#include "pgmux.h"

struct authq_req;

/* auth_user of a database (its own, else the global one); NULL when none is set. */
const char *authq_user(const struct database *db);

/*
 * Start looking up user's secret for client c, which logs in to db; *out is
 * set at once, before anything can answer. False when c was closed on the
 * spot: auth_dbname unknown, out of memory, the server failed at once.
 */
bool authq_start(struct pgsock *c, struct database *db, const char *user, struct authq_req **out);

/* The client is leaving: drop its queued lookup or ignore the running one's answer. */
void authq_cancel(struct authq_req *req);

/* pool_server_ready: hand s to the oldest queued lookup of its pool. True when taken. */
bool authq_take_server(struct pgsock *s);

/* server.c, while s runs a lookup (internal SV_INT_AUTHQ). */
void authq_server_row(struct pgsock *s, const uint8_t *body, uint32_t len);
void authq_server_error(struct pgsock *s, const char *msg);
/* ReadyForQuery 'I' came: s goes back to its pool, then the client gets the answer. */
void authq_server_done(struct pgsock *s);
/* s is being closed with a lookup on it. */
void authq_server_gone(struct pgsock *s);

/* The pool's server login failed for good: queued lookups fail. */
void authq_fail_waiting(struct pool *p);

#endif
