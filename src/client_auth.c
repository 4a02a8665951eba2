/* SPDX-License-Identifier: ISC */
/*
 * client_auth: authenticating a client login, after its startup packet.
 * The method is auth_type, or that of the first matching auth_hba_file line
 * (cert and peer map names through auth_ident_file). A user missing from
 * the auth file is looked up with auth_query first (authq.c answers through
 * client_authq_done/_failed while the login waits in CLOGIN_AUTHQ). Unknown
 * users get the same exchange as known ones, so a failure never tells which
 * it was. A login that passes joins the pool of its database and user (the
 * database's forced user, if any) and is welcomed at once, or when the pool's
 * first server has logged in.
 */
#include "client.h"
#include "client_internal.h"

#include "admin.h"
#include "authq.h"
#include "authfile.h"
#include "cancel.h"
#include "config.h"
#include "db.h"
#include "hba.h"
#include "log.h"
#include "loop.h"
#include "pktbuf.h"
#include "pool.h"
#include "proto.h"
#include "scram.h"
#include "tls.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static bool send_auth(struct pgsock *c, uint32_t code, const void *data, size_t len)
{
    uint8_t mem[SCRAM_MAX_MSG + 64];
    struct pktbuf pb;
    pktbuf_init(&pb, mem, sizeof(mem));
    pktbuf_auth(&pb, code, data, len);
    if (pb.failed || !sbuf_answer(&c->sbuf, pb.buf, pb.len)) {
        client_disconnect(c, NULL, "could not send authentication request");
        return false;
    }
    return true;
}

static void auth_failed(struct pgsock *c)
{
    /* The same text as PostgreSQL, whether the user exists or not. */
    client_disconnect(c, "28P01", "password authentication failed for user \"%s\"",
                      c->clogin->user);
}

static bool client_login_ok(struct pgsock *c);

/*
 * A secret a password can be checked against. An empty one never matches,
 * as in PostgreSQL (which stores no password for '') and PgBouncer, so an
 * auth file or auth_query row with "" cannot let an empty password in.
 */
static bool have_secret(const struct client_login *cl)
{
    return cl->user_known && cl->secret[0] != 0;
}

static bool client_start_scram(struct pgsock *c)
{
    struct client_login *cl = c->clogin;
    bool ok = false;
    if (have_secret(cl)) {
        enum secret_kind k = secret_kind(cl->secret);
        if (k == SECRET_SCRAM) {
            ok = scram_parse_secret(cl->secret, &cl->scram_secret);
        } else if (k == SECRET_PLAIN) {
            const struct scram_secret *sec =
                scram_secret_for_plain(cl->user, cl->secret, G.cfg->scram_iterations);
            if (sec) {
                cl->scram_secret = *sec;
                ok = true;
            }
        }
    }
    if (!ok) {
        /* Unknown user or unusable secret: run the exchange against a mock
         * secret (stable salt per name, no PBKDF2) so the failure looks
         * exactly like a wrong password and probing costs us nothing. */
        scram_mock_secret(cl->user, G.cfg->scram_iterations, &cl->scram_secret);
        cl->user_known = false;
    }
    cl->step = CLOGIN_SASL_INIT;
    static const char mechs[] = "SCRAM-SHA-256\0";
    return send_auth(c, AUTH_REQ_SASL, mechs, sizeof(mechs));
}

/*
 * auth_type = hba: the method of the first auth_hba_file line that matches,
 * as an auth_type, and its map= name. -1 when refused (c is closed), with
 * PostgreSQL's texts for "no line matched" and "a reject line matched".
 */
static int client_hba_method(struct pgsock *c, const char **map)
{
    struct client_login *cl = c->clogin;
    struct sockaddr_storage ss;
    struct hba_client hc;
    char msg[512];
    int line = 0;

    memset(&ss, 0, sizeof(ss));
    if (c->remote.family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, c->remote.addr, 4);
    } else if (c->remote.family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, c->remote.addr, 16);
    } else {
        ss.ss_family = AF_UNIX;
    }
    memset(&hc, 0, sizeof(hc));
    hba_client_set_addr(&hc, (const struct sockaddr *)&ss);
    hc.is_unix = c->is_unix;
    hc.is_tls = c->sbuf.ssl != NULL;
    hc.dbname = cl->dbname;
    hc.user = cl->user;
    switch (hba_match(G.hba, &hc, map, &line)) {
    case HBA_TRUST:
        return AUTH_TRUST;
    case HBA_MD5:
        return AUTH_MD5;
    case HBA_PASSWORD:
        return AUTH_PLAIN;
    case HBA_SCRAM:
        return AUTH_SCRAM;
    case HBA_CERT:
        return AUTH_CERT;
    case HBA_PEER:
        return AUTH_PEER;
    default:
        break;
    }
    hba_reject_message(&hc, line > 0, msg, sizeof(msg));
    client_disconnect(c, "28000", "%s", msg);
    return -1;
}

/*
 * cert: a TLS client certificate verified against client_tls_ca_file whose
 * CN is the user name, or maps to it through the ident map. PostgreSQL's
 * texts; the detail goes to the log only.
 */
static bool client_auth_cert(struct pgsock *c, const char *map)
{
    struct client_login *cl = c->clogin;
    SSL *ssl = c->sbuf.ssl;
    char cn[256];

    if (!ssl || !SSL_get0_peer_certificate(ssl) || SSL_get_verify_result(ssl) != X509_V_OK) {
        client_disconnect(c, "28000", "connection requires a valid client certificate");
        return false;
    }
    if (!tls_peer_cn(ssl, cn, sizeof(cn))) {
        slog_info(c, "certificate authentication failed: no usable common name in the "
                     "client certificate");
        client_disconnect(c, "28000", "certificate authentication failed for user \"%s\"",
                          cl->user);
        return false;
    }
    if (!ident_match(G.ident, map, cn, cl->user)) {
        if (map)
            slog_info(c, "no match in usermap \"%s\" for user \"%s\" authenticated as \"%s\"", map,
                      cl->user, cn);
        else
            slog_info(c, "provided user name (%s) and authenticated user name (%s) do not match",
                      cl->user, cn);
        client_disconnect(c, "28000", "certificate authentication failed for user \"%s\"",
                          cl->user);
        return false;
    }
    return client_login_ok(c);
}

/* peer (Unix socket): the connecting process's OS user is the user name, or maps to it. */
static bool client_auth_peer(struct pgsock *c, const char *map)
{
    struct client_login *cl = c->clogin;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    struct passwd pw, *res = NULL;
    char buf[4096];

    if (!c->is_unix || getsockopt(c->sbuf.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        slog_info(c, "could not get peer credentials: %s",
                  c->is_unix ? strerror(errno) : "not a Unix socket");
        goto failed;
    }
    if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &res) != 0 || !res) {
        slog_info(c, "could not look up local user ID %ld", (long)cred.uid);
        goto failed;
    }
    if (!ident_match(G.ident, map, pw.pw_name, cl->user)) {
        if (map)
            slog_info(c, "no match in usermap \"%s\" for user \"%s\" authenticated as \"%s\"", map,
                      cl->user, pw.pw_name);
        else
            slog_info(c, "provided user name (%s) and authenticated user name (%s) do not match",
                      cl->user, pw.pw_name);
        goto failed;
    }
    return client_login_ok(c);
failed:
    client_disconnect(c, "28000", "Peer authentication failed for user \"%s\"", cl->user);
    return false;
}

static bool client_auth_method(struct pgsock *c, const char *map);

/* Methods that check a secret: a user missing from the auth file is looked up with auth_query. */
static bool method_needs_secret(int method)
{
    return method == AUTH_TRUST || method == AUTH_PLAIN || method == AUTH_MD5 ||
           method == AUTH_SCRAM;
}

bool client_start_auth(struct pgsock *c)
{
    struct client_login *cl = c->clogin;
    const char *secret;
    const char *map = NULL;
    int method;

    cl->is_admin = admin_is_admin_db(cl->dbname);
    if (!cl->is_admin && !cl->db) {
        cl->db = db_find_or_auto(cl->dbname);
        if (cl->db)
            db_login_ref(cl->db); /* let go in client_login_free() */
    }
    if (cl->is_admin) {
        /* no database object: admin_login() decides after authentication */
    } else if (!cl->db || cl->db->dead) {
        client_disconnect(c, "3D000", "no such database: %s", cl->dbname);
        return false;
    }
    if (cl->db && cl->db->disabled) {
        client_disconnect(c, "08P01", "database \"%s\" is disabled", cl->dbname);
        return false;
    }
    if (G.client_count > G.cfg->max_client_conn && !cl->is_admin) {
        client_disconnect(c, "53300", "no more connections allowed (max_client_conn)");
        return false;
    }
    if (G.shutting_down && !cl->is_admin) {
        client_disconnect(c, "57P01", "pooler is shutting down");
        return false;
    }
    /* PgBouncer's special case: our own UID as "pgbouncer" on the Unix socket needs no password. */
    if (cl->is_admin && admin_pre_login(c, cl->user))
        return client_login_ok(c);

    secret = G.authfile ? authfile_lookup(G.authfile, cl->user) : NULL;
    if (secret && strlen(secret) < sizeof(cl->secret)) {
        strcpy(cl->secret, secret);
        cl->user_known = true;
    }

    method = G.cfg->auth_type;
    if (method == AUTH_HBA) {
        method = client_hba_method(c, &map);
        if (method < 0)
            return false;
    }
    cl->method = method;
    if (!cl->user_known && !cl->is_admin && method_needs_secret(method) && authq_user(cl->db)) {
        cl->step = CLOGIN_AUTHQ;
        return authq_start(c, cl->db, cl->user, &cl->aq);
    }
    return client_auth_method(c, map);
}

void client_authq_done(struct pgsock *c, const char *secret)
{
    struct client_login *cl = c->clogin;
    cl->aq = NULL;
    if (cl->db->dead) {
        /* A reload removed the database while the lookup ran. */
        client_disconnect(c, "08P01", "database removed");
        return;
    }
    if (secret && strlen(secret) < sizeof(cl->secret)) {
        strcpy(cl->secret, secret);
        cl->user_known = true;
        cl->from_authq = true;
    }
    if (client_auth_method(c, NULL) && c->sbuf.paused)
        sbuf_continue(&c->sbuf);
}

void client_authq_failed(struct pgsock *c)
{
    c->clogin->aq = NULL;
    /* Not class 28: the client did nothing wrong, so throttling must not count it. */
    client_disconnect(c, "08006", "could not check the password of user \"%s\"",
                      c->clogin->user);
}

/* Ask for (or check) the credentials of the method in force; false when c was closed. */
static bool client_auth_method(struct pgsock *c, const char *map)
{
    struct client_login *cl = c->clogin;
    switch (cl->method) {
    case AUTH_ANY:
        return client_login_ok(c);
    case AUTH_TRUST:
        if (!cl->user_known) {
            auth_failed(c);
            return false;
        }
        return client_login_ok(c);
    case AUTH_PLAIN:
        cl->step = CLOGIN_PASSWORD;
        return send_auth(c, AUTH_REQ_PASSWORD, NULL, 0);
    case AUTH_MD5:
        if (cl->user_known && secret_kind(cl->secret) == SECRET_SCRAM)
            return client_start_scram(c);
        cl->step = CLOGIN_MD5;
        RAND_bytes(cl->md5_salt, 4);
        return send_auth(c, AUTH_REQ_MD5, cl->md5_salt, 4);
    case AUTH_SCRAM:
        return client_start_scram(c);
    case AUTH_CERT:
        return client_auth_cert(c, map);
    case AUTH_PEER:
        return client_auth_peer(c, map);
    default:
        client_disconnect(c, "28000", "auth_type not supported yet by pgmux");
        return false;
    }
}

/*
 * The keys a login against a stored SCRAM secret proved: they let pgmux log
 * in to PostgreSQL as this user without ever knowing the password
 * (client_login_ok files them where the secret came from).
 */
static void keep_scram_keys(struct client_login *cl, const struct scram_keys *keys)
{
    memcpy(cl->keys.client_key, keys->client_key, sizeof(cl->keys.client_key));
    memcpy(cl->keys.server_key, keys->server_key, sizeof(cl->keys.server_key));
    cl->keys.have = true;
}

static bool check_plain_password(struct client_login *cl, const char *pw)
{
    if (!have_secret(cl) || pw[0] == 0)
        return false;
    switch (secret_kind(cl->secret)) {
    case SECRET_PLAIN: {
        size_t a = strlen(cl->secret), b = strlen(pw);
        return a == b && secret_equal(cl->secret, pw, a);
    }
    case SECRET_MD5: {
        char h[36];
        md5_password_hash(pw, cl->user, h);
        return secret_equal(h, cl->secret, 35);
    }
    case SECRET_SCRAM: {
        /* PostgreSQL's own secrets (pg_authid, auth_query) are SCRAM since 14. */
        struct scram_keys keys;
        bool ok = scram_parse_secret(cl->secret, &cl->scram_secret) &&
                  scram_verify_plain(&cl->scram_secret, pw, &keys);
        if (ok)
            keep_scram_keys(cl, &keys);
        OPENSSL_cleanse(&keys, sizeof(keys));
        return ok;
    }
    default:
        return false;
    }
}

enum sbuf_result client_auth_pkt(struct pgsock *c, struct pkt_hdr *hdr)
{
    struct client_login *cl = c->clogin;
    struct pkt_reader r;
    const char *errmsg = NULL;

    if (hdr->type != PqMsg_PasswordMessage) {
        client_disconnect(c, "08P01", "expected password response, got message type %d",
                          hdr->type);
        return SBUF_CLOSED;
    }
    if (hdr->total == 0 || hdr->len > MAX_PASSWORD + 64) {
        client_disconnect(c, "08P01", "invalid password packet length");
        return SBUF_CLOSED;
    }
    if (!hdr->complete)
        return SBUF_NEED_MORE;
    reader_init(&r, hdr->data + 5, hdr->len);
    sbuf_skip(&c->sbuf, hdr->total);

    switch (cl->step) {
    case CLOGIN_PASSWORD: {
        const char *pw;
        if (!reader_get_cstring(&r, &pw) || reader_left(&r) != 0) {
            client_disconnect(c, "08P01", "invalid password packet");
            return SBUF_CLOSED;
        }
        if (!check_plain_password(cl, pw)) {
            auth_failed(c);
            return SBUF_CLOSED;
        }
        return client_login_ok(c) ? SBUF_OK : SBUF_CLOSED;
    }
    case CLOGIN_MD5: {
        const char *resp;
        if (!reader_get_cstring(&r, &resp) || reader_left(&r) != 0) {
            client_disconnect(c, "08P01", "invalid password packet");
            return SBUF_CLOSED;
        }
        if (!have_secret(cl) || !md5_check(cl->secret, cl->user, cl->md5_salt, resp)) {
            auth_failed(c);
            return SBUF_CLOSED;
        }
        return client_login_ok(c) ? SBUF_OK : SBUF_CLOSED;
    }
    case CLOGIN_SASL_INIT: {
        const char *mech;
        int32_t dlen;
        const uint8_t *data;
        if (!reader_get_cstring(&r, &mech) || !reader_get_i32(&r, &dlen) || dlen < 0 ||
            (size_t)dlen != reader_left(&r) || !reader_get_bytes(&r, (size_t)dlen, &data)) {
            client_disconnect(c, "08P01", "malformed SASLInitialResponse");
            return SBUF_CLOSED;
        }
        if (strcmp(mech, "SCRAM-SHA-256") != 0) {
            client_disconnect(c, "28000", "client selected an invalid SASL authentication "
                                          "mechanism");
            return SBUF_CLOSED;
        }
        char out[SCRAM_MAX_MSG];
        size_t olen;
        memset(&cl->scram, 0, sizeof(cl->scram));
        if (!scram_server_first(&cl->scram, &cl->scram_secret, data, (size_t)dlen, out,
                                sizeof(out), &olen, &errmsg)) {
            client_disconnect(c, "08P01", "%s", errmsg ? errmsg : "malformed SCRAM message");
            return SBUF_CLOSED;
        }
        cl->step = CLOGIN_SASL_CONT;
        return send_auth(c, AUTH_REQ_SASL_CONT, out, olen) ? SBUF_OK : SBUF_CLOSED;
    }
    case CLOGIN_SASL_CONT: {
        char out[SCRAM_MAX_MSG];
        size_t olen;
        struct scram_keys keys;
        if (!scram_server_final(&cl->scram, &cl->scram_secret, r.pos, reader_left(&r), out,
                                sizeof(out), &olen, &keys, &errmsg)) {
            if (errmsg && strcmp(errmsg, "password mismatch") == 0) {
                auth_failed(c);
            } else {
                client_disconnect(c, "08P01", "%s",
                                  errmsg ? errmsg : "malformed SCRAM message");
            }
            return SBUF_CLOSED;
        }
        if (!have_secret(cl)) {
            auth_failed(c);
            return SBUF_CLOSED;
        }
        if (secret_kind(cl->secret) == SECRET_SCRAM)
            keep_scram_keys(cl, &keys);
        OPENSSL_cleanse(&keys, sizeof(keys));
        if (!send_auth(c, AUTH_REQ_SASL_FIN, out, olen))
            return SBUF_CLOSED;
        return client_login_ok(c) ? SBUF_OK : SBUF_CLOSED;
    }
    default:
        client_disconnect(c, "08P01", "unexpected password message");
        return SBUF_CLOSED;
    }
}

/* Authentication passed: find the pool and either welcome now or wait for its first server. */
static bool client_login_ok(struct pgsock *c)
{
    struct client_login *cl = c->clogin;
    struct database *db = cl->db;
    if (cl->is_admin) {
        char user[MAX_NAME];
        strcpy(user, cl->user);
        client_login_free(c);
        return admin_login(c, user);
    }
    const char *pool_user = db->forced_user ? db->forced_user : cl->user;
    struct user *u = db_find_or_add_user(pool_user);
    if (!u) {
        client_disconnect(c, "53200", "out of memory");
        return false;
    }
    int max_db = db->max_db_client_connections != CONFIG_UNSET ? db->max_db_client_connections
                                                               : G.cfg->max_db_client_connections;
    if (max_db > 0 && db->client_count >= max_db) {
        client_disconnect(c, "53300", "client connections exceeded (max_db_client_connections)");
        return false;
    }
    int max_user = u->max_user_client_connections != CONFIG_UNSET
                       ? u->max_user_client_connections
                       : G.cfg->max_user_client_connections;
    if (max_user > 0 && u->client_count >= max_user) {
        client_disconnect(c, "53300",
                          "client connections exceeded (max_user_client_connections)");
        return false;
    }
    /* As PgBouncer: SHOW CLIENTS names the user who logged in, but under
     * auth_type=any the name was never checked, so it is the forced user's. */
    struct user *login = u;
    if (db->forced_user && cl->method != AUTH_ANY)
        login = db_find_or_add_user(cl->user);
    struct pool *p = login ? pool_get(db, u) : NULL;
    if (!p || !cancel_register(c)) {
        client_disconnect(c, "53200", "out of memory");
        return false;
    }
    /* What the login used and proved serves pgmux's own server logins as this
     * user: a looked-up secret for this pool only, auth file keys for the user. */
    if (cl->from_authq) {
        if (!db->forced_user) {
            if (!db_pool_set_authq_secret(p, cl->secret)) {
                client_disconnect(c, "53200", "out of memory");
                return false;
            }
            if (cl->keys.have)
                p->authq_keys = cl->keys;
        }
    } else if (cl->keys.have) {
        login->keys = cl->keys;
    }
    c->pool = p;
    c->login_user = login;
    if (G.cfg->log_connections) {
        /* PgBouncer's line, tls= included. */
        char tls[128];
        sbuf_tls_info(&c->sbuf, tls, sizeof(tls));
        slog_info(c, "login attempt: db=%s user=%s tls=%s", cl->dbname, cl->user,
                  tls[0] ? tls : "no");
    }
    client_login_free(c);
    db->client_count++;
    u->client_count++;
    p->stats.client_login_count++;
    if (p->welcome_ready) {
        pool_change_client_state(c, CL_ACTIVE);
        client_welcome(c);
        return c->state == CL_ACTIVE;
    }
    pool_change_client_state(c, CL_WAITING_LOGIN);
    c->wait_start = loop_now();
    pool_launch_if_needed(p);
    return true;
}
