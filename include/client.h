/* SPDX-License-Identifier: ISC */
/*
 * client: the client side of the protocol: SSLRequest/GSSENCRequest answers,
 * the startup packet, authentication, the welcome, and then the per-message
 * rules while logged in (link on demand, track Sync/Query for the release
 * rule, Terminate).
 */
#ifndef PGMUX_CLIENT_H
#define PGMUX_CLIENT_H

#include "pgmux.h"

/* A new accepted connection (from listener.c). */
void client_accept(int fd, const struct sockaddr *sa, socklen_t salen, bool is_unix);

/*
 * Log once, tell the client (ErrorResponse FATAL with sqlstate, when
 * sqlstate is not NULL), unlink or close its server as its state requires,
 * and move it to the just-freed list.
 */
void client_disconnect(struct pgsock *c, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Send an ErrorResponse without closing (severity ERROR); false if the send failed. */
bool client_send_error(struct pgsock *c, const char *sqlstate, const char *msg);

/* throttle.c held this login back after its startup packet: authenticate it now. */
void client_resume_login(struct pgsock *c);

/* The pool's first server logged in: finish this client's login. */
void client_welcome(struct pgsock *c);

/* authq.c's answer for a login waiting on auth_query: the secret, or NULL (no such user). */
void client_authq_done(struct pgsock *c, const char *secret);
/* The lookup could not be made: the login fails (the reason is in the log). */
void client_authq_failed(struct pgsock *c);

#endif
