/* SPDX-License-Identifier: ISC */
/*
 * client: one application connection seen from pgmux.
 *
 * Login (CL_LOGIN): the startup-phase packets have no type byte (sbuf
 * startup mode). SSLRequest is answered 'S' and followed by the TLS
 * handshake when client TLS is on and this is not a Unix socket (bytes sent
 * behind the SSLRequest are refused: they would be read as if they had come
 * through TLS); a TLS ClientHello instead of a startup packet is
 * PostgreSQL 17's direct TLS (ALPN "postgresql" required). GSSENCRequest is
 * answered 'N', CancelRequest is routed by cancel.c, and a v3
 * StartupMessage is checked parameter by parameter like PgBouncer: tracked
 * parameters are remembered, ignore_startup_parameters are dropped, anything
 * else is refused. Then authentication (auth_type, or the method of the
 * first matching auth_hba_file line; cert and peer through ident maps), and the
 * welcome (the pool's cached ParameterStatus set with the client's own
 * values, our own BackendKeyData, ReadyForQuery).
 *
 * Logged in (CL_ACTIVE/CL_WAITING): a message that needs a server links one
 * (pool_find_server); until then the client is paused with its bytes kept in
 * its buffer. Query, Sync and FunctionCall are counted as owed
 * ReadyForQuery messages on the server, which is how server.c knows the
 * transaction ended. Everything else is forwarded as it streams in.
 */
#include "client.h"

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
#include "prepare.h"
#include "proto.h"
#include "scram.h"
#include "util.h"
#include "server.h"
#include "stats.h"
#include "throttle.h"
#include "tls.h"
#include "varcache.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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
};

static enum sbuf_result client_proto(struct sbuf *sb, enum sbuf_event ev, struct pkt_hdr *hdr);

static struct pgsock *sock_of(struct sbuf *sb)
{
    return container_of(sb, struct pgsock, sbuf);
}

/*==== Accept and disconnect ====*/

void client_accept(int fd, const struct sockaddr *sa, socklen_t salen, bool is_unix)
{
    struct pgsock *c = pool_alloc_client();
    (void)salen;
    if (!c) {
        close(fd);
        return;
    }
    c->clogin = calloc(1, sizeof(struct client_login));
    if (!c->clogin) {
        G.client_count--;
        c->state = CL_JUSTFREE;
        statlist_append(&G.justfree_clients, &c->head);
        close(fd);
        return;
    }
    c->is_unix = is_unix;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        c->remote.family = AF_INET;
        c->remote.port = ntohs(sin->sin_port);
        memcpy(c->remote.addr, &sin->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        c->remote.family = AF_INET6;
        c->remote.port = ntohs(sin6->sin6_port);
        memcpy(c->remote.addr, &sin6->sin6_addr, 16);
    } else {
        c->remote.family = AF_UNIX;
    }
    throttle_client_accept(c);
    if (!is_unix) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (G.cfg->tcp_keepalive)
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    }
    sbuf_init(&c->sbuf, client_proto);
    c->sbuf.startup = 1;
    c->syncs_since_exec = -1;
    pool_change_client_state(c, CL_LOGIN);
    if (!sbuf_accept(&c->sbuf, fd))
        client_disconnect(c, NULL, "accept failed");
}

static bool send_fatal(struct pgsock *c, const char *severity, const char *sqlstate,
                       const char *msg)
{
    uint8_t mem[1200];
    struct pktbuf pb;
    pktbuf_init(&pb, mem, sizeof(mem));
    pktbuf_error(&pb, severity, sqlstate, msg);
    return !pb.failed && sbuf_answer(&c->sbuf, pb.buf, pb.len);
}

bool client_send_error(struct pgsock *c, const char *sqlstate, const char *msg)
{
    return send_fatal(c, "ERROR", sqlstate, msg);
}

/* Can the server go back to the pool as it is, after its client left? */
static bool server_is_clean(const struct pgsock *s, const struct pgsock *c)
{
    /* The server must not hold half of a message from the client: a message
     * being skipped (Terminate) never reached it, one being forwarded did. */
    bool client_mid_message = (c->sbuf.pkt_remain > 0 && !c->sbuf.pkt_skip) ||
                              !sbuf_nothing_pending(&c->sbuf) || c->ext_since_sync > 0;
    return s->internal == SV_INT_NONE && s->rfq_expected == 0 && !s->copy_in &&
           s->last_status == 'I' && sbuf_is_empty(&s->sbuf) && !s->sbuf.wait_send &&
           !client_mid_message;
}

void client_disconnect(struct pgsock *c, const char *sqlstate, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    if (c->state == CL_JUSTFREE || c->state == CL_FREE)
        return;
    if (c->admin)
        admin_client_closing(c); /* stops its watcher before the fd goes */
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);

    if (sqlstate) {
        stats_client_error(c, sqlstate);
        if (G.cfg->log_pooler_errors)
            slog_warning(c, "pooler error: %s", reason);
        send_fatal(c, "FATAL", sqlstate, reason);
    } else if (G.cfg->log_disconnections && c->state != CL_LOGIN) {
        slog_info(c, "closing because: %s (age=%.0fs)", reason, loop_now() - c->connect_time);
    } else {
        slog_debug(c, "closing because: %s", reason);
    }

    struct pgsock *s = c->link;
    if (s) {
        bool clean = server_is_clean(s, c);
        if (clean) {
            pool_release_server(s);
        } else {
            /* Mid-transaction or mid-message: the server cannot be reused. */
            s->link = NULL;
            s->sbuf.dst = NULL;
            c->link = NULL;
            c->sbuf.dst = NULL;
            server_disconnect(s, "client disconnected with queries in progress");
        }
    }
    c->link = NULL;
    cancel_unregister(c);
    throttle_client_closing(c, sqlstate); /* per-address count, failed logins */
    if (c->state == CL_LOGIN) {
        /* (An admin console login has already given up its clogin here.) */
        if (c->clogin && c->clogin->aq)
            authq_cancel(c->clogin->aq);
        if (c->clogin)
            OPENSSL_cleanse(c->clogin->secret, sizeof(c->clogin->secret));
        free(c->clogin);
        c->clogin = NULL;
    } else if (c->pool) {
        c->pool->db->client_count--;
        c->pool->user->client_count--;
    }
    sbuf_close(&c->sbuf);
    G.client_count--;
    pool_change_client_state(c, CL_JUSTFREE);
}

/*==== Startup ====*/

static bool csv_contains(const char *csv, const char *name)
{
    size_t n = strlen(name), len;
    const char *p = csv ? csv : "", *item;
    while (csv_next(&p, &item, &len))
        if (len == n && strncasecmp(item, name, n) == 0)
            return true;
    return false;
}

/* One "key=value" from options: track it, ignore it, or refuse it. */
static bool client_option(struct pgsock *c, char *kv)
{
    char msg[256];
    char *eq = strchr(kv, '=');
    if (!eq) {
        snprintf(msg, sizeof(msg), "unsupported options startup parameter: %.100s", kv);
        client_disconnect(c, "08P01", "%s", msg);
        return false;
    }
    *eq = 0;
    for (char *p = kv; *p; p++)
        if (*p == '-')
            *p = '_';
    int idx = varcache_lookup(kv);
    if (idx >= 0) {
        varcache_set(&c->vars, idx, eq + 1);
        return true;
    }
    if (csv_contains(G.cfg->ignore_startup_parameters, kv) ||
        csv_contains(G.cfg->ignore_startup_parameters, "options"))
        return true;
    client_disconnect(c, "08P01", "unsupported startup parameter in options: %.100s", kv);
    return false;
}

/* "-c a=b --c=d": PostgreSQL's options syntax; each setting is tracked, ignored or refused. */
static bool client_parse_options(struct pgsock *c, const char *opts)
{
    char words[1024];
    int n = proto_split_options(opts, words, sizeof(words));
    if (n < 0) {
        client_disconnect(c, "08P01", "options startup parameter too long");
        return false;
    }
    char *w = words;
    bool want_c = false;
    char *next;
    for (int i = 0; i < n; i++, w = next) {
        /* client_option() cuts the word at '=', so find the next one first. */
        next = w + strlen(w) + 1;
        if (want_c) {
            want_c = false;
            if (!client_option(c, w))
                return false;
        } else if (strcmp(w, "-c") == 0) {
            want_c = true;
        } else if (strncmp(w, "-c", 2) == 0 || strncmp(w, "--", 2) == 0) {
            if (!client_option(c, w + 2))
                return false;
        } else if (!csv_contains(G.cfg->ignore_startup_parameters, "options")) {
            client_disconnect(c, "08P01", "unsupported options startup parameter: %.100s", w);
            return false;
        }
    }
    return true;
}

static bool send_negotiate(struct pgsock *c, const char **names, int n)
{
    uint8_t mem[2048];
    struct pktbuf pb;
    pktbuf_init(&pb, mem, sizeof(mem));
    pktbuf_start(&pb, PqMsg_NegotiateProtocolVersion);
    pktbuf_put_u32(&pb, 0); /* newest minor version we speak: 3.0 */
    pktbuf_put_u32(&pb, (uint32_t)n);
    for (int i = 0; i < n; i++)
        pktbuf_put_string(&pb, names[i]);
    pktbuf_finish(&pb);
    return !pb.failed && sbuf_answer(&c->sbuf, pb.buf, pb.len);
}

static bool client_start_auth(struct pgsock *c);

/* A TLS ClientHello where a startup packet should be: PostgreSQL 17's sslnegotiation=direct. */
static enum sbuf_result client_direct_tls(struct pgsock *c)
{
    if (!G.client_tls || c->is_unix) {
        slog_info(c, "direct TLS connection refused: TLS is not enabled for this listener");
        client_disconnect(c, NULL, "direct TLS connection while TLS is off");
        return SBUF_CLOSED;
    }
    /* The bytes read so far are the start of the ClientHello: OpenSSL gets them. */
    if (!sbuf_tls_start(&c->sbuf, tls_ctx_ssl(G.client_tls), true, true)) {
        client_disconnect(c, NULL, "could not start TLS");
        return SBUF_CLOSED;
    }
    c->clogin->tls_direct = true;
    return SBUF_OK;
}

/* SSLRequest: 'S' and the handshake when client TLS is on (not on Unix sockets), else 'N'. */
static enum sbuf_result client_ssl_request(struct pgsock *c, struct pkt_hdr *hdr)
{
    bool tls = G.client_tls && !c->is_unix;
    sbuf_skip(&c->sbuf, hdr->total);
    if (hdr->total != 8) {
        client_disconnect(c, NULL, "bad SSLRequest/GSSENCRequest");
        return SBUF_CLOSED;
    }
    if (c->sbuf.ssl) {
        client_disconnect(c, "08P01", "SSLRequest on an encrypted connection");
        return SBUF_CLOSED;
    }
    if (tls && sbuf_unparsed(&c->sbuf) > hdr->total) {
        /* They would be taken as if they had come through TLS (CVE-2021-23222). */
        slog_warning(c, "refusing connection: unencrypted data after SSLRequest, "
                        "possible man-in-the-middle attack");
        client_disconnect(c, "08P01", "received unencrypted data after SSL request");
        return SBUF_CLOSED;
    }
    if (!sbuf_answer(&c->sbuf, tls ? "S" : "N", 1)) {
        client_disconnect(c, NULL, "bad SSLRequest/GSSENCRequest");
        return SBUF_CLOSED;
    }
    if (tls && !sbuf_tls_start(&c->sbuf, tls_ctx_ssl(G.client_tls), true, false)) {
        client_disconnect(c, NULL, "could not start TLS");
        return SBUF_CLOSED;
    }
    return SBUF_OK;
}

static enum sbuf_result client_startup(struct pgsock *c, struct pkt_hdr *hdr)
{
    struct client_login *cl = c->clogin;
    struct pkt_reader r;
    uint32_t code;

    /* A TLS handshake record (0x16): no startup packet can start so (length > 369 MB). */
    if (hdr->data[0] == 0x16 && !c->sbuf.ssl)
        return client_direct_tls(c);
    if (hdr->total < 8 || hdr->total > PKT_STARTUP_MAX) {
        client_disconnect(c, "08P01", "invalid startup packet length");
        return SBUF_CLOSED;
    }
    if (!hdr->complete)
        return SBUF_NEED_MORE;
    reader_init(&r, hdr->data + 4, hdr->total - 4);
    if (!reader_get_u32(&r, &code)) {
        client_disconnect(c, "08P01", "invalid startup packet");
        return SBUF_CLOSED;
    }

    if (code == PKT_SSLREQ)
        return client_ssl_request(c, hdr);
    if (code == PKT_GSSENCREQ) {
        sbuf_skip(&c->sbuf, hdr->total);
        if (hdr->total != 8 || !sbuf_answer(&c->sbuf, "N", 1)) {
            client_disconnect(c, NULL, "bad SSLRequest/GSSENCRequest");
            return SBUF_CLOSED;
        }
        return SBUF_OK;
    }
    if (code == PKT_CANCEL) {
        const uint8_t *key;
        if (hdr->total == 16 && reader_get_bytes(&r, 8, &key))
            cancel_handle(key);
        sbuf_skip(&c->sbuf, hdr->total);
        client_disconnect(c, NULL, "cancel request handled");
        return SBUF_CLOSED;
    }
    if ((code >> 16) != 3) {
        client_disconnect(c, "0A000",
                          "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
                          code >> 16, code & 0xffff);
        return SBUF_CLOSED;
    }
    /* client_tls_sslmode require and above: TCP logins need TLS (Unix sockets are exempt). */
    if (!c->sbuf.ssl && !c->is_unix && tls_ctx_sslmode(G.client_tls) >= SSLMODE_REQUIRE) {
        client_disconnect(c, "28000", "SSL required");
        return SBUF_CLOSED;
    }

    const char *pq_names[32];
    int n_pq = 0;
    for (;;) {
        const char *key, *val;
        int rc = proto_startup_next(&r, &key, &val);
        if (rc < 0) {
            client_disconnect(c, "08P01", "invalid startup packet layout");
            return SBUF_CLOSED;
        }
        if (rc == 0)
            break;
        if (strcmp(key, "user") == 0) {
            if (strlen(val) >= MAX_NAME) {
                client_disconnect(c, "08P01", "user name too long");
                return SBUF_CLOSED;
            }
            strcpy(cl->user, val);
        } else if (strcmp(key, "database") == 0) {
            if (strlen(val) >= MAX_NAME) {
                client_disconnect(c, "08P01", "database name too long");
                return SBUF_CLOSED;
            }
            strcpy(cl->dbname, val);
        } else if (strcmp(key, "options") == 0) {
            if (!client_parse_options(c, val))
                return SBUF_CLOSED;
        } else if (strncmp(key, "_pq_.", 5) == 0) {
            if (n_pq < 32)
                pq_names[n_pq++] = key;
        } else if (strcmp(key, "replication") == 0) {
            client_disconnect(c, "08P01", "replication connections are not supported by pgmux");
            return SBUF_CLOSED;
        } else {
            int idx = varcache_lookup(key);
            if (idx >= 0) {
                varcache_set(&c->vars, idx, val);
            } else if (!csv_contains(G.cfg->ignore_startup_parameters, key)) {
                client_disconnect(c, "08P01", "unsupported startup parameter: %.100s", key);
                return SBUF_CLOSED;
            }
        }
    }
    if (!cl->user[0]) {
        client_disconnect(c, "28000", "no PostgreSQL user name specified in startup packet");
        return SBUF_CLOSED;
    }
    if (!cl->dbname[0])
        strcpy(cl->dbname, cl->user);
    if ((code & 0xffff) != 0 || n_pq > 0) {
        if (!send_negotiate(c, pq_names, n_pq)) {
            client_disconnect(c, NULL, "send failed");
            return SBUF_CLOSED;
        }
    }
    sbuf_skip(&c->sbuf, hdr->total);
    c->sbuf.startup = 0;
    /* max_client_conn_per_addr and failed-login throttling may refuse or hold the login. */
    if (!throttle_login_gate(c, admin_is_admin_db(cl->dbname)))
        return c->state == CL_JUSTFREE ? SBUF_CLOSED : SBUF_OK;
    if (!client_start_auth(c))
        return SBUF_CLOSED;
    return SBUF_OK;
}

void client_resume_login(struct pgsock *c)
{
    if (client_start_auth(c))
        sbuf_continue(&c->sbuf);
}

/*==== Authentication ====*/

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

static bool client_start_scram(struct pgsock *c)
{
    struct client_login *cl = c->clogin;
    bool ok = false;
    if (cl->user_known) {
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

static bool client_start_auth(struct pgsock *c)
{
    struct client_login *cl = c->clogin;
    const char *secret;
    const char *map = NULL;
    int method;

    cl->is_admin = admin_is_admin_db(cl->dbname);
    if (!cl->is_admin)
        cl->db = db_find_or_auto(cl->dbname);
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
    client_disconnect(c, "28000", "could not check the password of user \"%s\"",
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

static bool check_plain_password(struct client_login *cl, const char *pw)
{
    if (!cl->user_known)
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
    default:
        return false;
    }
}

static enum sbuf_result client_auth_pkt(struct pgsock *c, struct pkt_hdr *hdr)
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
        if (!cl->user_known || !md5_check(cl->secret, cl->user, cl->md5_salt, resp)) {
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
        if (!cl->user_known) {
            auth_failed(c);
            return SBUF_CLOSED;
        }
        if (secret_kind(cl->secret) == SECRET_SCRAM) {
            /* Keep the proof-derived keys: they let pgmux log in to PostgreSQL
             * as this user without ever knowing the password. */
            struct user *u = db_find_or_add_user(cl->user);
            if (u) {
                memcpy(u->scram_client_key, keys.client_key, sizeof(u->scram_client_key));
                memcpy(u->scram_server_key, keys.server_key, sizeof(u->scram_server_key));
                u->has_scram_keys = true;
            }
        }
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
        free(c->clogin);
        c->clogin = NULL;
        return admin_login(c, user);
    }
    const char *pool_user = db->forced_user ? db->forced_user : cl->user;
    struct user *u = db_find_or_add_user(pool_user);
    if (!u) {
        client_disconnect(c, "53200", "out of memory");
        return false;
    }
    if (cl->from_authq && !db->forced_user && !db_user_set_secret(u, cl->secret)) {
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
    c->pool = p;
    c->login_user = login;
    if (G.cfg->log_connections) {
        /* PgBouncer's line, tls= included. */
        char tls[128];
        sbuf_tls_info(&c->sbuf, tls, sizeof(tls));
        slog_info(c, "login attempt: db=%s user=%s tls=%s", cl->dbname, cl->user,
                  tls[0] ? tls : "no");
    }
    OPENSSL_cleanse(cl->secret, sizeof(cl->secret));
    free(c->clogin);
    c->clogin = NULL;
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

void client_welcome(struct pgsock *c)
{
    struct pool *p = c->pool;
    uint8_t mem[8192];
    struct pktbuf pb;
    struct pkt_reader r;

    pktbuf_init(&pb, mem, sizeof(mem));
    pktbuf_auth(&pb, AUTH_REQ_OK, NULL, 0);
    reader_init(&r, p->welcome, p->welcome_len);
    while (reader_left(&r) >= 5) {
        uint8_t type;
        uint32_t len;
        const uint8_t *body;
        const char *key, *val;
        if (!reader_get_u8(&r, &type))
            break;
        if (!reader_get_u32(&r, &len) || len < 4 || !reader_get_bytes(&r, len - 4, &body))
            break;
        struct pkt_reader br;
        reader_init(&br, body, len - 4);
        if (!reader_get_cstring(&br, &key) || !reader_get_cstring(&br, &val))
            continue;
        int idx = varcache_lookup(key);
        if (idx >= 0) {
            const char *mine = varcache_get(&c->vars, idx);
            if (mine)
                val = mine;
            else
                varcache_set(&c->vars, idx, val);
        }
        pktbuf_param_status(&pb, key, val);
    }
    pktbuf_start(&pb, PqMsg_BackendKeyData);
    pktbuf_put_bytes(&pb, c->cancel_key, 8);
    pktbuf_finish(&pb);
    if (G.cfg->login_notify_message[0])
        pktbuf_notice(&pb, G.cfg->login_notify_message);
    pktbuf_ready(&pb, 'I');
    if (pb.failed || !sbuf_answer(&c->sbuf, pb.buf, pb.len)) {
        client_disconnect(c, NULL, "could not send welcome");
        return;
    }
    if (c->state != CL_ACTIVE)
        pool_change_client_state(c, CL_ACTIVE);
    c->request_time = loop_now();
    /* Anything the client pipelined behind its login is processed now. */
    sbuf_continue(&c->sbuf);
}

/*==== Logged in ====*/

/*==== Prepared statements (transaction and statement mode) ====*/

/*
 * A client's named statements never reach a server under their own names:
 * each maps to a shared entry prepared on servers as PGMUX_<id>. Parse is
 * replaced by a Parse of the entry (preceded by a Close of that name when
 * the server already has it, so PostgreSQL does not complain); Bind and
 * Describe get the server name, after a Parse is slipped in front of them
 * when their server lacks the statement. The answers to what pgmux slipped
 * in are dropped by server.c using the server's request queue. Close of a
 * client name is forwarded unchanged: no server has that name, and
 * PostgreSQL answers CloseComplete for a name it does not know.
 */

static bool ps_active(const struct pgsock *c)
{
    return G.cfg->max_prepared_statements > 0 && pool_mode(c->pool) != POOL_SESSION;
}

static bool ps_inject_msg(struct pgsock *c, uint8_t type, const char *name, uint8_t kind,
                          const uint8_t *body, uint32_t body_len)
{
    uint8_t stack[512];
    size_t need = 1 + 4 + 1 + strlen(name) + 1 + body_len;
    uint8_t *mem = need <= sizeof(stack) ? stack : malloc(need);
    if (!mem)
        return false;
    struct pktbuf pb;
    pktbuf_init(&pb, mem, need);
    pktbuf_start(&pb, type);
    if (kind)
        pktbuf_put_u8(&pb, kind);
    pktbuf_put_string(&pb, name);
    pktbuf_put_bytes(&pb, body, body_len);
    pktbuf_finish(&pb);
    bool ok = !pb.failed && sbuf_inject(&c->sbuf, pb.buf, pb.len);
    if (mem != stack)
        free(mem);
    return ok;
}

/* Close the least recently used statement on s when its cache is full. */
static bool ps_make_room(struct pgsock *c, struct pgsock *s)
{
    struct ps_entry *victim = ps_server_victim(s, G.cfg->max_prepared_statements);
    if (!victim)
        return true;
    if (!ps_inject_msg(c, PqMsg_Close, victim->name, 'S', NULL, 0) ||
        !ps_queue_push(s, PSQ_CLOSE, true, NULL))
        return false;
    ps_server_remove(s, victim);
    return true;
}

/*
 * Slip a Parse of e in front of the current message; its answer is ours when
 * skip. A Close of the same name goes first: after an error in a pipeline
 * PostgreSQL skips messages, so whether a skipped Parse or Close ran cannot
 * be known, and "prepare whatever is there again" is always right.
 */
static bool ps_inject_parse(struct pgsock *c, struct pgsock *s, struct ps_entry *e, bool skip)
{
    if (!ps_make_room(c, s) || !ps_inject_msg(c, PqMsg_Close, e->name, 'S', NULL, 0) ||
        !ps_queue_push(s, PSQ_CLOSE, true, NULL) ||
        !ps_inject_msg(c, PqMsg_Parse, e->name, 0, e->body, e->body_len) ||
        !ps_queue_push(s, PSQ_PARSE, skip, e) || !ps_server_add(s, e))
        return false;
    c->pool->stats.server_parse_count++;
    return true;
}

static enum sbuf_result ps_fail(struct pgsock *c)
{
    client_disconnect(c, "53200", "out of memory while rewriting a prepared statement");
    return SBUF_CLOSED;
}

static enum sbuf_result client_ps_parse(struct pgsock *c, struct pgsock *s, struct pkt_hdr *hdr)
{
    struct pkt_reader r;
    const char *name;
    if (!hdr->complete)
        return SBUF_NEED_MORE;
    reader_init(&r, hdr->data + 5, hdr->len);
    if (!reader_get_cstring(&r, &name) || name[0] == 0) {
        /* Unnamed (or malformed: PostgreSQL will say so): passes through. */
        if (!ps_queue_push(s, PSQ_PARSE, false, NULL))
            return ps_fail(c);
        sbuf_forward(&c->sbuf, hdr->total);
        return SBUF_OK;
    }
    if (!sbuf_inject_ready(&c->sbuf))
        return c->sbuf.closed ? SBUF_CLOSED : SBUF_RETRY;
    struct ps_entry *old = ps_client_get(c, name);
    if (old) {
        /* PostgreSQL refuses to prepare a name twice (42P05) and keeps the
         * first statement. Let it say so: Parse the existing entry under its
         * server name where it is known to exist; the answer is the client's. */
        if ((!ps_server_has(s, old) && !ps_inject_parse(c, s, old, true)) ||
            !ps_inject_msg(c, PqMsg_Parse, old->name, 0, old->body, old->body_len) ||
            !ps_queue_push(s, PSQ_PARSE, false, NULL))
            return ps_fail(c);
        sbuf_skip(&c->sbuf, hdr->total);
        return SBUF_OK;
    }
    struct ps_entry *e = ps_entry_get(r.pos, (uint32_t)reader_left(&r));
    if (!e)
        return ps_fail(c);
    /* Even when the server has it (maybe from another client), Close + Parse
     * gives this client its own ParseComplete without a "already exists". */
    bool ok = ps_client_set(c, name, e) && ps_inject_parse(c, s, e, false);
    ps_entry_put(e);
    if (!ok)
        return ps_fail(c);
    c->pool->stats.client_parse_count++;
    sbuf_skip(&c->sbuf, hdr->total);
    return SBUF_OK;
}

static enum sbuf_result client_ps_bind(struct pgsock *c, struct pgsock *s, struct pkt_hdr *hdr)
{
    struct pkt_reader r;
    const char *portal, *stmt;
    reader_init(&r, hdr->data + 5, hdr->avail - 5);
    if (!reader_get_cstring(&r, &portal) || !reader_get_cstring(&r, &stmt)) {
        if (!hdr->complete)
            return SBUF_NEED_MORE;
        sbuf_forward(&c->sbuf, hdr->total); /* malformed: PostgreSQL will say so */
        return SBUF_OK;
    }
    struct ps_entry *e = stmt[0] ? ps_client_get(c, stmt) : NULL;
    if (!e) {
        /* Unnamed, or unknown: PostgreSQL answers with its own error. */
        sbuf_forward(&c->sbuf, hdr->total);
        return SBUF_OK;
    }
    if (!sbuf_inject_ready(&c->sbuf))
        return c->sbuf.closed ? SBUF_CLOSED : SBUF_RETRY;
    if (!ps_server_has(s, e) && !ps_inject_parse(c, s, e, true))
        return ps_fail(c);

    uint32_t old_prefix = (uint32_t)(r.pos - hdr->data);
    size_t plen = strlen(portal);
    uint32_t new_len = hdr->total - 1 - (uint32_t)strlen(stmt) + (uint32_t)strlen(e->name);
    uint8_t mem[MAX_NAME * 2 + 64];
    struct pktbuf pb;
    pktbuf_init(&pb, mem, sizeof(mem));
    pktbuf_put_u8(&pb, PqMsg_Bind);
    pktbuf_put_u32(&pb, new_len);
    pktbuf_put_bytes(&pb, portal, plen + 1);
    pktbuf_put_string(&pb, e->name);
    if (pb.failed || !sbuf_inject(&c->sbuf, pb.buf, pb.len))
        return ps_fail(c);
    c->pool->stats.bind_count++;
    if (hdr->collected) {
        /* The message left the stream: its tail goes in as inserted bytes too. */
        if (!sbuf_inject(&c->sbuf, hdr->data + old_prefix, hdr->total - old_prefix))
            return ps_fail(c);
        sbuf_skip(&c->sbuf, hdr->total);
    } else {
        sbuf_skip_forward(&c->sbuf, old_prefix, hdr->total - old_prefix);
    }
    return SBUF_OK;
}

static enum sbuf_result client_ps_describe(struct pgsock *c, struct pgsock *s,
                                           struct pkt_hdr *hdr)
{
    struct pkt_reader r;
    uint8_t kind;
    const char *name;
    if (!hdr->complete)
        return SBUF_NEED_MORE;
    reader_init(&r, hdr->data + 5, hdr->len);
    struct ps_entry *e = NULL;
    if (reader_get_u8(&r, &kind) && kind == 'S' && reader_get_cstring(&r, &name) && name[0])
        e = ps_client_get(c, name);
    if (!e) {
        sbuf_forward(&c->sbuf, hdr->total);
        return SBUF_OK;
    }
    if (!sbuf_inject_ready(&c->sbuf))
        return c->sbuf.closed ? SBUF_CLOSED : SBUF_RETRY;
    if ((!ps_server_has(s, e) && !ps_inject_parse(c, s, e, true)) ||
        !ps_inject_msg(c, PqMsg_Describe, e->name, 'S', NULL, 0))
        return ps_fail(c);
    sbuf_skip(&c->sbuf, hdr->total);
    return SBUF_OK;
}

static enum sbuf_result client_ps_close(struct pgsock *c, struct pgsock *s, struct pkt_hdr *hdr)
{
    struct pkt_reader r;
    uint8_t kind;
    const char *name;
    if (!hdr->complete)
        return SBUF_NEED_MORE;
    reader_init(&r, hdr->data + 5, hdr->len);
    if (reader_get_u8(&r, &kind) && kind == 'S' && reader_get_cstring(&r, &name) && name[0])
        ps_client_remove(c, name);
    if (!ps_queue_push(s, PSQ_CLOSE, false, NULL))
        return ps_fail(c);
    sbuf_forward(&c->sbuf, hdr->total);
    return SBUF_OK;
}

static enum sbuf_result client_active_pkt(struct pgsock *c, struct pkt_hdr *hdr)
{
    struct pgsock *s;

    if (hdr->total == 0 || hdr->len > (uint32_t)G.cfg->max_packet_size) {
        client_disconnect(c, "08P01", "invalid message length");
        return SBUF_CLOSED;
    }
    switch (hdr->type) {
    case PqMsg_Terminate:
        sbuf_skip(&c->sbuf, hdr->total);
        client_disconnect(c, NULL, "client close request");
        return SBUF_CLOSED;
    case PqMsg_CopyData:
    case PqMsg_CopyDone:
    case PqMsg_CopyFail:
        if (!c->link) {
            /* COPY data that arrives after the server was released is dropped. */
            sbuf_skip(&c->sbuf, hdr->total);
            return SBUF_OK;
        }
        break;
    case PqMsg_Query:
        if (G.cfg->disable_pqexec) {
            client_disconnect(c, "08P01", "PQexec disallowed");
            return SBUF_CLOSED;
        }
        break;
    case PqMsg_Parse:
    case PqMsg_Bind:
    case PqMsg_Describe:
    case PqMsg_Execute:
    case PqMsg_Close:
    case PqMsg_Sync:
    case PqMsg_Flush:
    case PqMsg_FunctionCall:
        break;
    default:
        client_disconnect(c, "08P01", "invalid frontend message type %d", hdr->type);
        return SBUF_CLOSED;
    }

    if (!c->link) {
        if (c->state == CL_WAITING)
            return SBUF_PAUSE;
        if (!pool_find_server(c)) {
            if (c->state == CL_JUSTFREE)
                return SBUF_CLOSED;
            return SBUF_PAUSE;
        }
    }
    s = c->link;
    if (s->internal)
        return SBUF_PAUSE; /* SET of tracked parameters still running */

    struct pool *p = c->pool;
    /* Extended-protocol messages after the last Sync still owe answers: the
     * server must stay linked past the ReadyForQuery of that Sync. */
    switch (hdr->type) {
    case PqMsg_Parse:
    case PqMsg_Bind:
    case PqMsg_Describe:
    case PqMsg_Execute:
    case PqMsg_Close:
        c->ext_since_sync++;
        break;
    case PqMsg_Sync:
    case PqMsg_Query:
    case PqMsg_FunctionCall:
        c->ext_since_sync = 0;
        break;
    default:
        break;
    }
    if (ps_active(c)) {
        enum sbuf_result res = SBUF_OK;
        bool done = true;
        switch (hdr->type) {
        case PqMsg_Parse:
            res = client_ps_parse(c, s, hdr);
            break;
        case PqMsg_Bind:
            res = client_ps_bind(c, s, hdr);
            break;
        case PqMsg_Describe:
            res = client_ps_describe(c, s, hdr);
            break;
        case PqMsg_Close:
            res = client_ps_close(c, s, hdr);
            break;
        case PqMsg_Sync:
        case PqMsg_Query:
        case PqMsg_FunctionCall:
            /* Sync inside COPY IN is ignored by PostgreSQL: no answer to expect. */
            if ((hdr->type != PqMsg_Sync || !s->copy_in) &&
                !ps_queue_push(s, hdr->type, false, NULL))
                return ps_fail(c);
            done = false;
            break;
        default:
            done = false;
            break;
        }
        if (done) {
            if (res == SBUF_OK) {
                s->release_pending = false;
                c->request_time = loop_now();
                p->stats.bytes_received += hdr->total;
            }
            return res;
        }
    }
    switch (hdr->type) {
    case PqMsg_Query:
        s->rfq_expected++;
        c->syncs_since_exec = -1;
        c->query_start = loop_now();
        if (c->xact_start == 0)
            c->xact_start = c->query_start; /* first query after a ReadyForQuery 'I' */
        p->stats.query_count++;
        break;
    case PqMsg_Execute:
        c->syncs_since_exec = 0;
        c->query_start = loop_now();
        if (c->xact_start == 0)
            c->xact_start = c->query_start;
        p->stats.query_count++;
        break;
    case PqMsg_Sync:
        if (!s->copy_in) {
            s->rfq_expected++;
            if (c->syncs_since_exec >= 0)
                c->syncs_since_exec++;
        }
        break;
    case PqMsg_FunctionCall:
        s->rfq_expected++;
        break;
    case PqMsg_CopyDone:
    case PqMsg_CopyFail:
        s->copy_in = false;
        break;
    default:
        break;
    }
    s->release_pending = false;
    c->request_time = loop_now();
    p->stats.bytes_received += hdr->total;
    sbuf_forward(&c->sbuf, hdr->total);
    return SBUF_OK;
}

static enum sbuf_result client_proto(struct sbuf *sb, enum sbuf_event ev, struct pkt_hdr *hdr)
{
    struct pgsock *c = sock_of(sb);

    switch (ev) {
    case SBUF_EV_RECV_FAILED:
        if (errno)
            client_disconnect(c, NULL, "client connection error: %s", sbuf_strerror(errno));
        else
            client_disconnect(c, NULL, "client unexpected eof");
        return SBUF_CLOSED;
    case SBUF_EV_SEND_FAILED:
        /* Forwarding to our server failed. */
        if (c->link)
            server_disconnect(c->link, "send to server failed: %s", sbuf_strerror(errno));
        else
            client_disconnect(c, NULL, "send failed");
        return SBUF_CLOSED;
    case SBUF_EV_PKT_TOO_BIG:
        client_disconnect(c, "08P01", "message too large for this connection state");
        return SBUF_CLOSED;
    case SBUF_EV_TLS_READY:
        if (c->clogin && c->clogin->tls_direct && !tls_alpn_is_postgresql(c->sbuf.ssl)) {
            slog_info(c, "direct TLS connection without ALPN \"postgresql\" refused");
            client_disconnect(c, NULL, "direct TLS without ALPN");
            return SBUF_CLOSED;
        }
        if (log_level >= LOG_LVL_DEBUG) {
            char info[128];
            sbuf_tls_info(&c->sbuf, info, sizeof(info));
            slog_debug(c, "TLS established: %s", info);
        }
        return SBUF_OK;
    case SBUF_EV_TLS_FAILED:
        slog_info(c, "TLS handshake with client failed: %s", sbuf_strerror(errno));
        client_disconnect(c, NULL, "TLS handshake failed");
        return SBUF_CLOSED;
    case SBUF_EV_FLUSH:
    case SBUF_EV_CONNECT_OK:
    case SBUF_EV_CONNECT_FAILED:
        return SBUF_OK;
    case SBUF_EV_PKT:
        break;
    }

    switch (c->state) {
    case CL_LOGIN:
        if (c->clogin->step == CLOGIN_STARTUP)
            return client_startup(c, hdr);
        if (c->clogin->step == CLOGIN_AUTHQ)
            return SBUF_PAUSE; /* nothing is asked of the client yet */
        return client_auth_pkt(c, hdr);
    case CL_WAITING_LOGIN:
        return SBUF_PAUSE;
    case CL_ACTIVE:
    case CL_WAITING:
        if (c->admin)
            return admin_handle_pkt(c, hdr);
        return client_active_pkt(c, hdr);
    default:
        client_disconnect(c, "08P01", "BUG: client in unexpected state %d", c->state);
        return SBUF_CLOSED;
    }
}
