/* SPDX-License-Identifier: ISC */
/*
 * admin: placeholder until the admin console lands: refuses the login.
 */
#include "admin.h"

#include "client.h"

#include <string.h>

bool admin_is_admin_db(const char *dbname)
{
    return strcmp(dbname, "pgbouncer") == 0 || strcmp(dbname, "pgmux") == 0;
}

bool admin_login(struct pgsock *c, const char *user)
{
    (void)user;
    client_disconnect(c, "08P01", "the admin console is not available yet");
    return false;
}

enum sbuf_result admin_handle_pkt(struct pgsock *c, struct pkt_hdr *hdr)
{
    (void)hdr;
    client_disconnect(c, "08P01", "the admin console is not available yet");
    return SBUF_CLOSED;
}

void admin_janitor(void)
{
}
