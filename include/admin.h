/* SPDX-License-Identifier: ISC */
/*
 * admin: the console, a virtual database named "pgbouncer" (also "pgmux")
 * that admin_users and stats_users log in to; SHOW commands and process
 * control, PgBouncer's columns exactly, over the simple and the extended
 * query protocol.
 */
#ifndef PGMUX_ADMIN_H
#define PGMUX_ADMIN_H

#include <stdbool.h>

#include "pgmux.h"

bool admin_is_admin_db(const char *dbname);

/*
 * Before authentication, for a client that asked for the admin database:
 * true when it is the user "pgbouncer" on the Unix socket with our own UID,
 * which PgBouncer lets in as admin without a password.
 */
bool admin_pre_login(struct pgsock *c, const char *user);

/*
 * Authentication passed for a client that asked for the admin database.
 * Checks admin_users/stats_users, sends the welcome and makes the client
 * CL_ACTIVE with c->admin set. False if the client was disconnected.
 */
bool admin_login(struct pgsock *c, const char *user);

/* A message from a logged-in admin client. */
enum sbuf_result admin_handle_pkt(struct pgsock *c, struct pkt_hdr *hdr);

/*
 * client_disconnect() of a client with c->admin set, before its socket is
 * closed: frees the console state of that connection.
 */
void admin_client_closing(struct pgsock *c);

/* Called by the janitor every tick (PAUSE/WAIT_CLOSE/SUSPEND completion, SHOW STATS averages). */
void admin_janitor(void);

/*
 * RESUME from PAUSE and SUSPEND, as SIGUSR2 does in PgBouncer (nothing
 * during a shutdown). For main.c's SIGUSR2 handler, which today only clears
 * G.paused and so cannot end a SUSPEND.
 */
void admin_resume(void);

/* SUSPEND is in force (readiness reports it). */
bool admin_is_suspended(void);

/*
 * A CancelRequest carried the key of console client c (Ctrl-C in psql): like
 * PgBouncer, that resumes a PAUSE or SUSPEND. For cancel.c's cancel_handle(),
 * which today ignores a cancel for a client without a server.
 */
void admin_cancel_request(struct pgsock *c);

#endif
