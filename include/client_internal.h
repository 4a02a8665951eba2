/* SPDX-License-Identifier: ISC */
/*
 * client_internal: what client.c (accept, startup packet, the logged-in
 * message rules) and client_auth.c (the authentication exchange and joining
 * a pool) share, and no other module sees: the state of a login in
 * progress, owned by the client (c->clogin) from accept until it joins a
 * pool or is closed.
 */
#ifndef PGMUX_CLIENT_INTERNAL_H
#define PGMUX_CLIENT_INTERNAL_H

#include "pgmux.h"
#include "sbuf.h"
#include "scram.h"

enum clogin_step {
    CLOGIN_STARTUP,
    CLOGIN_PASSWORD,
    CLOGIN_MD5,
    CLOGIN_SASL_INIT,
    CLOGIN_SASL_CONT,
    CLOGIN_AUTHQ, /* waiting for auth_query's answer (authq.c) */
};

struct client_login {
    enum clogin_step step;
    char user[MAX_NAME];
    char dbname[MAX_NAME];
    struct database *db;
    bool is_admin; /* asked for the admin console database */
    bool user_known;
    bool from_authq; /* secret came from auth_query, not the auth file */
    bool tls_direct; /* TLS without SSLRequest: ALPN "postgresql" is required */
    int method;      /* the auth_type in force, kept while auth_query runs */
    struct authq_req *aq; /* the running lookup; owned by authq.c */
    char secret[MAX_PASSWORD];
    uint8_t md5_salt[4];
    struct scram_secret scram_secret;
    struct scram_server scram;
    struct login_keys keys; /* what a SCRAM proof (or plain password) gave, see client_login_ok */
};

/*
 * The startup packet was accepted (and throttle.c let it through): pick the
 * method and ask for credentials, or look the user up first. False when c
 * was closed.
 */
bool client_start_auth(struct pgsock *c);

/* End c's login state: wipe it (secret, SCRAM keys and state) and free it. */
void client_login_free(struct pgsock *c);

/* A message of the authentication exchange (password, SASL) while CL_LOGIN. */
enum sbuf_result client_auth_pkt(struct pgsock *c, struct pkt_hdr *hdr);

#endif
