/* SPDX-License-Identifier: ISC */
/*
 * dns: non-blocking resolution of server host names with getaddrinfo_a; the
 * result is handed back to the loop through an ev_async and cached for
 * dns_max_ttl.
 */
#ifndef PGMUX_DNS_H
#define PGMUX_DNS_H

#include "pgmux.h"

void dns_init(void);

/*
 * Fill db->addr for a new connection. Returns 1 when the address is ready,
 * 0 when a lookup is in progress (server_dns_done follows), -1 on failure
 * (db->dns_error set).
 */
int dns_prepare(struct database *db);

#endif
