/* SPDX-License-Identifier: ISC */
/*
 * server: the server side: connect, StartupMessage, authentication
 * (cleartext, md5, SCRAM-SHA-256), the ParameterStatus set and BackendKeyData,
 * ReadyForQuery tracking for the release rule, and the queries pgmux runs
 * itself (reset, check, SET of tracked parameters, connect_query).
 */
#ifndef PGMUX_SERVER_H
#define PGMUX_SERVER_H

#include "pgmux.h"

/* Start a new server connection for the pool; false if it could not start. */
bool server_launch(struct pool *p);

/* Address resolution of the pool's database finished: connect waiting servers. */
void server_dns_done(struct database *db);

void server_disconnect(struct pgsock *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Run one of pgmux's own queries on an unlinked or just-linked server. */
bool server_run_internal(struct pgsock *s, enum server_internal kind, const char *sql);

/* Link time: SET the client's tracked parameters if they differ. True if a SET was sent. */
bool server_sync_vars(struct pgsock *s, struct pgsock *client);

#endif
