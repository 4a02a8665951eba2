/* SPDX-License-Identifier: ISC */
/*
 * throttle: the login gate for TCP clients, on top of addrlimit's table of
 * client addresses. Two pgmux extensions live here: max_client_conn_per_addr
 * (a login from an address that already has that many connections is
 * refused), and failed-login throttling (after auth_failure_limit failed
 * logins from one address within auth_failure_window, each further login
 * from it waits auth_failure_delay before pgmux answers). Unix-socket
 * clients are never counted, limited or delayed.
 *
 * client.c calls the hooks below at accept, at the end of the startup
 * packet, and at disconnect; everything else is here.
 */
#ifndef PGMUX_THROTTLE_H
#define PGMUX_THROTTLE_H

#include "pgmux.h"

#include <stddef.h>
#include <stdint.h>

struct throttle_stats {
    uint64_t logins_delayed;    /* logins held back, since start */
    uint64_t conns_refused;     /* logins refused by max_client_conn_per_addr, since start */
    unsigned delayed_now;       /* logins being held back now */
    size_t addresses;           /* client addresses remembered now */
    size_t throttled_addresses; /* of which throttled now */
};

/* Before the loop runs (main.c): the table, its random hash keys, the timer. */
bool throttle_init(void) MUSTCHECK;

/* A new client connection: count it for its address (TCP only). */
void throttle_client_accept(struct pgsock *c);

/*
 * c sent its startup packet; authentication comes next. True: go on now.
 * False: c was refused (max_client_conn_per_addr: c is closed) or is held
 * back (throttled address: its socket is paused, and client_resume_login()
 * runs when the delay is over). The admin console is exempt from
 * max_client_conn_per_addr, as it is from max_client_conn, but not from the
 * delay.
 */
bool throttle_login_gate(struct pgsock *c, bool is_admin) MUSTCHECK;

/*
 * c is being closed, with this SQLSTATE (NULL: no error sent). A SQLSTATE
 * of class 28 (invalid authorization) before the login completed counts as
 * a failed login for its address. Must run while c->state is still the
 * state it was closed in.
 */
void throttle_client_closing(struct pgsock *c, const char *sqlstate);

void throttle_get_stats(struct throttle_stats *st);

#endif
