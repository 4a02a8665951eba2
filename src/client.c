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
 * else is refused. Then authentication (client_auth.c), and the welcome
 * (the pool's cached ParameterStatus set with the client's own values, our
 * own BackendKeyData, ReadyForQuery).
 *
 * Logged in (CL_ACTIVE/CL_WAITING): a message that needs a server links one
 * (pool_find_server); until then the client is paused with its bytes kept in
 * its buffer. Query, Sync and FunctionCall are counted as owed
 * ReadyForQuery messages on the server, which is how server.c knows the
 * transaction ended. Everything else is forwarded as it streams in.
 */
#include "client.h"
#include "client_internal.h"

#include "admin.h"
#include "authq.h"
#include "cancel.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "loop.h"
#include "pktbuf.h"
#include "pool.h"
#include "prepare.h"
#include "proto.h"
#include "server.h"
#include "stats.h"
#include "throttle.h"
#include "tls.h"
#include "util.h"
#include "varcache.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

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
    if (!is_unix)
        sbuf_tune_tcp(fd, G.cfg);
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
    /* Neither stream may be inside a message: a message being skipped
     * (Terminate) never reached the server, one being forwarded did. */
    return s->internal == SV_INT_NONE && s->rfq_expected == 0 && !s->copy_in &&
           s->last_status == 'I' && sbuf_is_empty(&s->sbuf) && !sbuf_mid_message(&s->sbuf) &&
           !sbuf_mid_message(&c->sbuf) && c->ext_since_sync == 0;
}

void client_login_free(struct pgsock *c)
{
    if (c->clogin) {
        if (c->clogin->db)
            db_login_unref(c->clogin->db);
        OPENSSL_cleanse(c->clogin, sizeof(*c->clogin));
        free(c->clogin);
        c->clogin = NULL;
    }
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
        /* Half of a server message already went out (query_timeout during a
         * large DataRow): an ErrorResponse now would become its rest. */
        if (!c->link || !sbuf_mid_message(&c->link->sbuf))
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
        client_login_free(c);
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

/* application_name_add_host: "<name, or app> - <address>:<port>", as PgBouncer writes it. */
static void client_add_host_to_appname(struct pgsock *c)
{
    int idx = varcache_lookup("application_name");
    if (idx < 0)
        return;
    const char *name = varcache_get(&c->vars, idx);
    char addr[80], buf[MAX_NAME + 100];
    snprintf(buf, sizeof(buf), "%s - %s", name && name[0] ? name : "app",
             log_addr(c, addr, sizeof(addr)));
    varcache_set(&c->vars, idx, buf);
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
    if (G.cfg->application_name_add_host)
        client_add_host_to_appname(c);
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

/*
 * Names of the form pgmux gives its shared statements on servers are not for
 * clients: a Close, Bind or Describe passed through under such a name would
 * reach a statement other clients use. True when c was closed for it.
 */
static bool ps_reserved_name(struct pgsock *c, const char *name)
{
    if (strncmp(name, PS_SERVER_PREFIX, strlen(PS_SERVER_PREFIX)) != 0)
        return false;
    client_disconnect(c, "08P01", "prepared statement names starting with %s are reserved "
                                  "by pgmux", PS_SERVER_PREFIX);
    return true;
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
    /* The queue item keeps a victim known to be prepared there: if an earlier
     * error makes PostgreSQL skip this Close, the statement is still there and
     * is tracked again. (One whose Parse is still unanswered is in doubt, and
     * is closed again before any later Parse of it anyway.) */
    if (!ps_inject_msg(c, PqMsg_Close, victim->name, 'S', NULL, 0) ||
        !ps_queue_push(s, PSQ_CLOSE, true, ps_server_confirmed(s, victim) ? victim : NULL, 0))
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
/* name_gen: the generation of the client's name when this is its own Parse (skip false). */
static bool ps_inject_parse(struct pgsock *c, struct pgsock *s, struct ps_entry *e, bool skip,
                            uint64_t name_gen)
{
    if (!ps_make_room(c, s) || !ps_inject_msg(c, PqMsg_Close, e->name, 'S', NULL, 0) ||
        !ps_queue_push(s, PSQ_CLOSE, true, NULL, 0) ||
        !ps_inject_msg(c, PqMsg_Parse, e->name, 0, e->body, e->body_len) ||
        !ps_queue_push(s, PSQ_PARSE, skip, e, name_gen) || !ps_server_add(s, e))
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
    bool named = reader_get_cstring(&r, &name) && name[0];
    if (named && ps_reserved_name(c, name))
        return SBUF_CLOSED;
    if (!named) {
        /* Unnamed (or malformed: PostgreSQL will say so): passes through. */
        if (!ps_queue_push(s, PSQ_PARSE, false, NULL, 0))
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
        if ((!ps_server_has(s, old) && !ps_inject_parse(c, s, old, true, 0)) ||
            !ps_inject_msg(c, PqMsg_Parse, old->name, 0, old->body, old->body_len) ||
            !ps_queue_push(s, PSQ_PARSE, false, NULL, 0))
            return ps_fail(c);
        sbuf_skip(&c->sbuf, hdr->total);
        return SBUF_OK;
    }
    struct ps_entry *e = ps_entry_get(r.pos, (uint32_t)reader_left(&r));
    if (!e)
        return ps_fail(c);
    /* Even when the server has it (maybe from another client), Close + Parse
     * gives this client its own ParseComplete without a "already exists". */
    uint64_t gen = ps_client_set(c, name, e);
    bool ok = gen && ps_inject_parse(c, s, e, false, gen);
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
    if (ps_reserved_name(c, stmt))
        return SBUF_CLOSED;
    struct ps_entry *e = stmt[0] ? ps_client_get(c, stmt) : NULL;
    if (!e) {
        /* Unnamed, or unknown: PostgreSQL answers with its own error. */
        sbuf_forward(&c->sbuf, hdr->total);
        return SBUF_OK;
    }
    if (!sbuf_inject_ready(&c->sbuf))
        return c->sbuf.closed ? SBUF_CLOSED : SBUF_RETRY;
    if (!ps_server_has(s, e) && !ps_inject_parse(c, s, e, true, 0))
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
    if (reader_get_u8(&r, &kind) && kind == 'S' && reader_get_cstring(&r, &name) && name[0]) {
        if (ps_reserved_name(c, name))
            return SBUF_CLOSED;
        e = ps_client_get(c, name);
    }
    if (!e) {
        sbuf_forward(&c->sbuf, hdr->total);
        return SBUF_OK;
    }
    if (!sbuf_inject_ready(&c->sbuf))
        return c->sbuf.closed ? SBUF_CLOSED : SBUF_RETRY;
    if ((!ps_server_has(s, e) && !ps_inject_parse(c, s, e, true, 0)) ||
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
    if (reader_get_u8(&r, &kind) && kind == 'S' && reader_get_cstring(&r, &name) && name[0]) {
        if (ps_reserved_name(c, name))
            return SBUF_CLOSED;
        ps_client_remove(c, name);
    }
    if (!ps_queue_push(s, PSQ_CLOSE, false, NULL, 0))
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
        /* PostgreSQL ignores a Sync in copy-in mode: the one it waits for is still owed. */
        if (!s->copy_in)
            c->ext_since_sync = 0;
        break;
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
                !ps_queue_push(s, hdr->type, false, NULL, 0))
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
        /* The end of a message the server's release was waiting for. */
        if (c->link)
            pool_release_if_done(c->link);
        return SBUF_OK;
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
