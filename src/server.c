/* SPDX-License-Identifier: ISC */
/*
 * server: one PostgreSQL connection seen from pgmux.
 *
 * Life: SV_LOGIN (connect, StartupMessage, authentication, ParameterStatus,
 * BackendKeyData, ReadyForQuery) -> SV_IDLE <-> SV_ACTIVE (linked to a
 * client) with detours through SV_USED/SV_TESTED for the check and reset
 * queries, until it is closed.
 *
 * The release rule: every client Query, Sync and FunctionCall owes one
 * ReadyForQuery (client.c counts them in rfq_expected; Syncs sent while the
 * server is in COPY FROM STDIN are not counted because PostgreSQL ignores
 * them). When a ReadyForQuery with status 'I' arrives and nothing is owed,
 * the transaction is over: the server is released once the bytes reached
 * the client (the sbuf FLUSH event), in transaction and statement mode.
 *
 * TLS (server_tls_sslmode other than disable, TCP only): the connection
 * starts with SSLRequest, whose one-byte answer is read in the sbuf's
 * one-byte mode. 'S' starts the handshake (SNI set; verify-full then checks
 * the host name), 'N' goes on in plain text unless the mode is require or
 * above; any byte behind the answer is refused, since it did not come
 * through TLS. The StartupMessage follows the handshake.
 */
#include "server.h"

#include "authfile.h"
#include "authq.h"
#include "client.h"
#include "config.h"
#include "db.h"
#include "dns.h"
#include "log.h"
#include "loop.h"
#include "pktbuf.h"
#include "pool.h"
#include "prepare.h"
#include "proto.h"
#include "scram.h"
#include "stats.h"
#include "tls.h"
#include "varcache.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The largest message pgmux reads whole from a server (login messages,
 * ParameterStatus, the answers to its own queries, CommandComplete while
 * prepared statements are tracked); what it forwards is not limited. Real
 * ones are a few hundred bytes; libpq refuses most types above 30000.
 */
#define SERVER_MAX_WHOLE_MSG (1024 * 1024)

struct server_login {
    struct scram_client scram;
    bool scram_started;
    bool ssl_requested; /* SSLRequest sent, its one-byte answer not seen yet */
    int tls_mode;       /* server_tls_sslmode of the context the handshake uses */
    uint8_t *params;    /* raw ParameterStatus messages, kept for the pool's welcome */
    size_t params_len, params_cap;
};

static enum sbuf_result server_proto(struct sbuf *sb, enum sbuf_event ev, struct pkt_hdr *hdr);

static struct pgsock *sock_of(struct sbuf *sb)
{
    return container_of(sb, struct pgsock, sbuf);
}

/*==== Connect and login ====*/

static void server_login_failed(struct pgsock *s, const char *sqlstate, const char *msg,
                                bool credentials)
{
    struct pool *p = s->pool;
    double now = loop_now();
    snprintf(p->last_error, sizeof(p->last_error), "%s", msg);
    snprintf(p->last_sqlstate, sizeof(p->last_sqlstate), "%s", sqlstate ? sqlstate : "08006");
    p->last_login_ok = false;
    p->last_error_fatal_auth = credentials;
    stats_server_login(p, false);
    /* Retry soon with a growing delay: PostgreSQL coming back after a restart
     * must be used within a second, not after a fixed lockout. */
    p->backoff = p->backoff > 0 ? p->backoff * 2 : 0.05;
    if (p->backoff > 0.5)
        p->backoff = 0.5;
    p->next_connect = now + p->backoff;
    server_disconnect(s, "server login failed: %s", msg);
    if (credentials) {
        /* The server refused us for good: waiting clients get its error now. */
        pool_fail_waiting(p, sqlstate, msg);
    }
}

static bool server_connect(struct pgsock *s)
{
    struct database *db = s->pool->db;
    if (!sbuf_connect(&s->sbuf, (struct sockaddr *)&db->addr, db->addrlen, G.cfg)) {
        char msg[200];
        snprintf(msg, sizeof(msg), "connect failed: %s", strerror(errno));
        server_login_failed(s, "08006", msg, false);
        return false;
    }
    s->is_unix = db->addr.ss_family == AF_UNIX;
    if (db->addr.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&db->addr;
        s->remote.family = AF_INET;
        s->remote.port = ntohs(sin->sin_port);
        memcpy(s->remote.addr, &sin->sin_addr, 4);
    } else if (db->addr.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&db->addr;
        s->remote.family = AF_INET6;
        s->remote.port = ntohs(sin6->sin6_port);
        memcpy(s->remote.addr, &sin6->sin6_addr, 16);
    } else {
        s->remote.family = AF_UNIX;
        s->remote.port = (uint16_t)db->port;
    }
    return true;
}

bool server_launch(struct pool *p)
{
    struct pgsock *s = pool_alloc_server(p);
    if (!s)
        return false;
    s->slogin = calloc(1, sizeof(struct server_login));
    if (!s->slogin) {
        G.server_count--;
        p->db->server_count--;
        p->user->server_count--;
        /* Never linked anywhere: hand it straight to the just-freed list. */
        s->state = SV_JUSTFREE;
        statlist_append(&G.justfree_servers, &s->head);
        return false;
    }
    sbuf_init(&s->sbuf, server_proto);
    pool_change_server_state(s, SV_LOGIN);
    slog_debug(s, "new server connection");
    int r = dns_prepare(p->db);
    if (r < 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "could not resolve host \"%s\"",
                 p->db->host ? p->db->host : "");
        server_login_failed(s, "08006", msg, false);
        return false;
    }
    if (r == 0)
        return true; /* server_dns_done() connects it */
    return server_connect(s);
}

void server_dns_done(struct database *db)
{
    struct list *item;
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        struct pool *p = container_of(item, struct pool, head);
        if (p->db != db)
            continue;
        struct list *si, *tmp;
        statlist_foreach_safe(si, tmp, &p->new_servers)
        {
            struct pgsock *s = container_of(si, struct pgsock, head);
            if (s->sbuf.fd >= 0 || s->sbuf.closed)
                continue;
            if (db->dns_error) {
                char msg[200];
                snprintf(msg, sizeof(msg), "could not resolve host \"%s\"",
                         db->host ? db->host : "");
                server_login_failed(s, "08006", msg, false);
            } else {
                server_connect(s);
            }
        }
    }
}

static bool server_send_startup(struct pgsock *s)
{
    struct database *db = s->pool->db;
    uint8_t mem[2048];
    struct pktbuf pb;
    pktbuf_init(&pb, mem, sizeof(mem));
    pktbuf_start(&pb, 0);
    pktbuf_put_u32(&pb, PKT_PROTO_V3);
    pktbuf_put_string(&pb, "user");
    pktbuf_put_string(&pb, s->pool->user->name);
    pktbuf_put_string(&pb, "database");
    pktbuf_put_string(&pb, db->dbname);
    if (db->client_encoding) {
        pktbuf_put_string(&pb, "client_encoding");
        pktbuf_put_string(&pb, db->client_encoding);
    }
    if (db->datestyle) {
        pktbuf_put_string(&pb, "datestyle");
        pktbuf_put_string(&pb, db->datestyle);
    }
    if (db->timezone) {
        pktbuf_put_string(&pb, "timezone");
        pktbuf_put_string(&pb, db->timezone);
    }
    if (db->application_name) {
        pktbuf_put_string(&pb, "application_name");
        pktbuf_put_string(&pb, db->application_name);
    }
    pktbuf_put_u8(&pb, 0);
    pktbuf_finish(&pb);
    if (pb.failed)
        return false;
    return sbuf_answer(&s->sbuf, pb.buf, pb.len);
}

/* TLS towards PostgreSQL is on and this is TCP: ask first, the answer is one bare byte. */
static bool server_send_ssl_request(struct pgsock *s)
{
    uint8_t mem[16];
    struct pktbuf pb;
    pktbuf_init(&pb, mem, sizeof(mem));
    pktbuf_start(&pb, 0);
    pktbuf_put_u32(&pb, PKT_SSLREQ);
    pktbuf_finish(&pb);
    s->slogin->ssl_requested = true;
    s->sbuf.startup = SBUF_ONE_BYTE;
    return !pb.failed && sbuf_answer(&s->sbuf, pb.buf, pb.len);
}

/* The answer to SSLRequest: 'S' = handshake, 'N' = plain text if the mode allows it. */
static enum sbuf_result server_ssl_answer(struct pgsock *s, struct pkt_hdr *hdr)
{
    struct server_login *sl = s->slogin;
    int mode = tls_ctx_sslmode(G.server_tls);
    char msg[128];

    sl->ssl_requested = false;
    s->sbuf.startup = 0;
    sbuf_skip(&s->sbuf, hdr->total);
    if (sbuf_unparsed(&s->sbuf) > hdr->total) {
        /* Bytes that did not come through TLS would be read as if they had. */
        server_login_failed(s, "08P01", "received unencrypted data after SSL response", false);
        return SBUF_CLOSED;
    }
    if (hdr->type == 'S') {
        SSL *ssl =
            G.server_tls ? sbuf_tls_start(&s->sbuf, tls_ctx_ssl(G.server_tls), false, false) : NULL;
        if (!ssl || !tls_set_sni(ssl, s->pool->db->host)) {
            server_login_failed(s, "08006", "could not start TLS", false);
            return SBUF_CLOSED;
        }
        sl->tls_mode = mode;
        return SBUF_OK;
    }
    if (hdr->type == 'N') {
        if (mode >= SSLMODE_REQUIRE) {
            server_login_failed(s, "08006", "server does not support SSL, but SSL was required",
                                true);
            return SBUF_CLOSED;
        }
        if (!server_send_startup(s)) {
            server_login_failed(s, "08006", "could not send startup packet", false);
            return SBUF_CLOSED;
        }
        return SBUF_OK;
    }
    snprintf(msg, sizeof(msg), "received invalid response to SSL negotiation: byte %d", hdr->type);
    server_login_failed(s, "08P01", msg, false);
    return SBUF_CLOSED;
}

/* The handshake finished: check the host name for verify-full, then log in. */
static void server_tls_ready(struct pgsock *s)
{
    char err[300];
    if (s->slogin->tls_mode == SSLMODE_VERIFY_FULL &&
        !tls_verify_host(s->sbuf.ssl, s->pool->db->host, err, sizeof(err))) {
        /* A wrong certificate will not fix itself: waiting clients get the error now. */
        server_login_failed(s, "08006", err, true);
        return;
    }
    if (log_level >= LOG_LVL_DEBUG) {
        char info[128];
        sbuf_tls_info(&s->sbuf, info, sizeof(info));
        slog_debug(s, "TLS established: %s", info);
    }
    if (!server_send_startup(s))
        server_login_failed(s, "08006", "could not send startup packet", false);
}

static bool server_send_password(struct pgsock *s, uint8_t type, const void *data, size_t len)
{
    uint8_t mem[MAX_PASSWORD + 64];
    struct pktbuf pb;
    pktbuf_init(&pb, mem, sizeof(mem));
    pktbuf_start(&pb, type);
    pktbuf_put_bytes(&pb, data, len);
    pktbuf_finish(&pb);
    return !pb.failed && sbuf_answer(&s->sbuf, pb.buf, pb.len);
}

/* Handle an AuthenticationRequest during login. False when the login failed (s closed). */
static bool server_handle_auth(struct pgsock *s, struct pkt_reader *r)
{
    struct server_login *sl = s->slogin;
    const char *user = s->pool->user->name;
    uint32_t code;
    const char *errmsg = NULL;
    char msg[256];

    if (!reader_get_u32(r, &code))
        goto bad;
    if (code == AUTH_REQ_OK)
        return true;

    const struct login_keys *lkeys;
    const char *password = db_server_secret(s->pool, &lkeys);
    if (!password) {
        snprintf(msg, sizeof(msg), "no password available in auth_file for user \"%s\"", user);
        server_login_failed(s, "28P01", msg, true);
        return false;
    }
    switch (code) {
    case AUTH_REQ_PASSWORD: {
        if (secret_kind(password) != SECRET_PLAIN) {
            snprintf(msg, sizeof(msg), "server asked for a cleartext password; auth_file "
                                       "holds only a hash for user \"%s\"", user);
            server_login_failed(s, "28P01", msg, true);
            return false;
        }
        if (!server_send_password(s, PqMsg_PasswordMessage, password, strlen(password) + 1))
            goto send_failed;
        return true;
    }
    case AUTH_REQ_MD5: {
        const uint8_t *salt;
        char out[36];
        if (!reader_get_bytes(r, 4, &salt))
            goto bad;
        if (secret_kind(password) == SECRET_SCRAM) {
            snprintf(msg, sizeof(msg), "server asked for md5; auth_file holds a SCRAM secret "
                                       "for user \"%s\"", user);
            server_login_failed(s, "28P01", msg, true);
            return false;
        }
        md5_salted_response(password, user, salt, out);
        if (!server_send_password(s, PqMsg_PasswordMessage, out, strlen(out) + 1))
            goto send_failed;
        return true;
    }
    case AUTH_REQ_SASL: {
        bool have_scram = false;
        const char *mech;
        while (reader_get_cstring(r, &mech) && mech[0])
            if (strcmp(mech, "SCRAM-SHA-256") == 0)
                have_scram = true;
        if (!have_scram) {
            server_login_failed(s, "28000", "server offers no SASL mechanism pgmux supports",
                                true);
            return false;
        }
        if (secret_kind(password) == SECRET_MD5) {
            snprintf(msg, sizeof(msg), "cannot do SCRAM authentication: auth_file holds an md5 "
                                       "hash for user \"%s\"", user);
            server_login_failed(s, "28P01", msg, true);
            return false;
        }
        if (secret_kind(password) == SECRET_SCRAM && !lkeys->have) {
            snprintf(msg, sizeof(msg), "cannot do SCRAM authentication: password is SCRAM "
                                       "secret but client authentication did not provide "
                                       "SCRAM keys");
            server_login_failed(s, "28P01", msg, true);
            return false;
        }
        char first[SCRAM_MAX_MSG];
        size_t flen;
        memset(&sl->scram, 0, sizeof(sl->scram));
        if (!scram_client_first(&sl->scram, first, sizeof(first), &flen))
            goto bad;
        sl->scram_started = true;
        uint8_t mem[SCRAM_MAX_MSG + 64];
        struct pktbuf pb;
        pktbuf_init(&pb, mem, sizeof(mem));
        pktbuf_start(&pb, PqMsg_PasswordMessage);
        pktbuf_put_string(&pb, "SCRAM-SHA-256");
        pktbuf_put_u32(&pb, (uint32_t)flen);
        pktbuf_put_bytes(&pb, first, flen);
        pktbuf_finish(&pb);
        if (pb.failed || !sbuf_answer(&s->sbuf, pb.buf, pb.len))
            goto send_failed;
        return true;
    }
    case AUTH_REQ_SASL_CONT: {
        char out[SCRAM_MAX_MSG];
        size_t olen;
        if (!sl->scram_started)
            goto bad;
        struct scram_keys keys, *kp = NULL;
        const char *pw = password;
        if (secret_kind(password) == SECRET_SCRAM) {
            /* Pass-through: sign with the keys the client's own proof gave us. */
            memcpy(keys.client_key, lkeys->client_key, sizeof(keys.client_key));
            memcpy(keys.server_key, lkeys->server_key, sizeof(keys.server_key));
            kp = &keys;
            pw = NULL;
        }
        bool ok = scram_client_final(&sl->scram, pw, kp, r->pos, reader_left(r), out, sizeof(out),
                                     &olen, &errmsg);
        OPENSSL_cleanse(&keys, sizeof(keys));
        if (!ok) {
            snprintf(msg, sizeof(msg), "SCRAM exchange with server failed: %s",
                     errmsg ? errmsg : "malformed message");
            server_login_failed(s, "28000", msg, true);
            return false;
        }
        if (!server_send_password(s, PqMsg_PasswordMessage, out, olen))
            goto send_failed;
        return true;
    }
    case AUTH_REQ_SASL_FIN:
        if (!sl->scram_started ||
            !scram_client_verify(&sl->scram, r->pos, reader_left(r), &errmsg)) {
            snprintf(msg, sizeof(msg), "server SCRAM signature invalid: %s",
                     errmsg ? errmsg : "malformed message");
            server_login_failed(s, "28000", msg, true);
            return false;
        }
        return true;
    default:
        snprintf(msg, sizeof(msg), "server asked for unsupported authentication method %u",
                 code);
        server_login_failed(s, "28000", msg, true);
        return false;
    }
bad:
    server_login_failed(s, "08P01", "malformed authentication request from server", false);
    return false;
send_failed:
    server_login_failed(s, "08006", "could not send authentication response", false);
    return false;
}

static bool server_keep_param(struct server_login *sl, const uint8_t *msg, size_t len)
{
    if (sl->params_len + len > sl->params_cap) {
        size_t ncap = sl->params_cap ? sl->params_cap * 2 : 1024;
        while (ncap < sl->params_len + len)
            ncap *= 2;
        uint8_t *n = realloc(sl->params, ncap);
        if (!n)
            return false;
        sl->params = n;
        sl->params_cap = ncap;
    }
    memcpy(sl->params + sl->params_len, msg, len);
    sl->params_len += len;
    return true;
}

/* A ParameterStatus: remember tracked values on the server (and on its client). */
static void server_note_param(struct pgsock *s, const uint8_t *body, size_t len)
{
    struct pkt_reader r;
    const char *key, *val;
    reader_init(&r, body, len);
    if (!reader_get_cstring(&r, &key) || !reader_get_cstring(&r, &val))
        return;
    int idx = varcache_lookup(key);
    if (idx < 0)
        return;
    varcache_set(&s->vars, idx, val);
    /* A SET run by the client changes what the client wants from now on. */
    if (s->link && !s->internal)
        varcache_set(&s->link->vars, idx, val);
}

static void server_login_done(struct pgsock *s)
{
    struct pool *p = s->pool;
    struct server_login *sl = s->slogin;

    p->last_login_ok = true;
    stats_server_login(p, true);
    p->backoff = 0;
    p->next_connect = 0;
    p->last_error[0] = 0;
    if (!p->welcome_ready) {
        p->welcome = sl->params;
        p->welcome_len = sl->params_len;
        sl->params = NULL;
        p->welcome_ready = true;
    }
    free(sl->params);
    free(sl);
    s->slogin = NULL;
    slog_debug(s, "login done");
    if (G.cfg->log_connections)
        slog_info(s, "new server connection");

    struct list *item, *tmp;
    statlist_foreach_safe(item, tmp, &p->waiting_login)
    {
        struct pgsock *c = container_of(item, struct pgsock, head);
        client_welcome(c);
    }

    if (p->db->connect_query && p->db->connect_query[0]) {
        pool_change_server_state(s, SV_TESTED);
        if (!server_run_internal(s, SV_INT_CONNECT, p->db->connect_query))
            server_disconnect(s, "connect_query could not be sent");
        return;
    }
    pool_change_server_state(s, SV_TESTED);
    pool_server_ready(s);
    G.launch_needed = true;
}

static enum sbuf_result server_login_pkt(struct pgsock *s, struct pkt_hdr *hdr)
{
    struct pkt_reader r;
    if (s->slogin->ssl_requested)
        return server_ssl_answer(s, hdr);
    if (!hdr->complete)
        return SBUF_NEED_MORE;
    reader_init(&r, hdr->data + 5, hdr->len);
    switch (hdr->type) {
    case PqMsg_AuthenticationRequest:
        if (!server_handle_auth(s, &r))
            return SBUF_CLOSED;
        break;
    case PqMsg_ParameterStatus:
        server_note_param(s, hdr->data + 5, hdr->len);
        if (!server_keep_param(s->slogin, hdr->data, hdr->total)) {
            server_login_failed(s, "53200", "out of memory", false);
            return SBUF_CLOSED;
        }
        break;
    case PqMsg_BackendKeyData: {
        const uint8_t *key;
        if (!reader_get_bytes(&r, 8, &key)) {
            server_login_failed(s, "08P01", "malformed BackendKeyData", false);
            return SBUF_CLOSED;
        }
        memcpy(s->cancel_key, key, 8);
        break;
    }
    case PqMsg_ReadyForQuery:
        sbuf_skip(&s->sbuf, hdr->total);
        server_login_done(s);
        return s->sbuf.closed ? SBUF_CLOSED : SBUF_OK;
    case PqMsg_ErrorResponse: {
        struct pg_error_fields ef;
        char msg[256];
        if (!proto_parse_error(hdr->data + 5, hdr->len, &ef) || !ef.message) {
            server_login_failed(s, "08P01", "malformed error from server", false);
            return SBUF_CLOSED;
        }
        snprintf(msg, sizeof(msg), "%s", ef.message);
        const char *st = ef.sqlstate ? ef.sqlstate : "08006";
        /* Credentials and missing objects will not fix themselves by retrying;
         * "starting up", "shutting down" and "too many clients" will. */
        bool credentials = strncmp(st, "28", 2) == 0 || strcmp(st, "3D000") == 0 ||
                           strcmp(st, "42501") == 0;
        server_login_failed(s, st, msg, credentials);
        return SBUF_CLOSED;
    }
    case PqMsg_NoticeResponse:
    case PqMsg_NegotiateProtocolVersion:
        break;
    default:
        server_login_failed(s, "08P01", "unexpected message from server during login", false);
        return SBUF_CLOSED;
    }
    sbuf_skip(&s->sbuf, hdr->total);
    return SBUF_OK;
}

/*==== pgmux's own queries ====*/

bool server_run_internal(struct pgsock *s, enum server_internal kind, const char *sql)
{
    uint8_t stack[1024];
    uint8_t *mem = stack;
    size_t need = strlen(sql) + 6;
    if (need > sizeof(stack)) {
        mem = malloc(need);
        if (!mem)
            return false;
    }
    struct pktbuf pb;
    pktbuf_init(&pb, mem, need > sizeof(stack) ? need : sizeof(stack));
    pktbuf_query(&pb, sql);
    bool ok = !pb.failed && sbuf_answer(&s->sbuf, pb.buf, pb.len);
    if (mem != stack)
        free(mem);
    if (ok) {
        s->internal = (uint8_t)kind;
        s->rfq_expected = 1;
    }
    return ok;
}

bool server_sync_vars(struct pgsock *s, struct pgsock *client)
{
    char sql[4096];
    int n = varcache_build_set(&client->vars, &s->vars, sql, sizeof(sql));
    if (n == 0)
        return false;
    if (n < 0 || !server_run_internal(s, SV_INT_SETVARS, sql)) {
        /* The server is fine; the client's parameters cannot be applied. */
        client_disconnect(client, "08P01", "could not apply client parameters");
        return true;
    }
    slog_debug(s, "setting client parameters: %s", sql);
    return true;
}

static enum sbuf_result server_internal_pkt(struct pgsock *s, struct pkt_hdr *hdr)
{
    switch (hdr->type) {
    case PqMsg_ParameterStatus:
        if (!hdr->complete)
            return SBUF_NEED_MORE;
        server_note_param(s, hdr->data + 5, hdr->len);
        break;
    case PqMsg_DataRow:
        if (s->internal != SV_INT_AUTHQ)
            break;
        if (!hdr->complete)
            return SBUF_NEED_MORE;
        authq_server_row(s, hdr->data + 5, hdr->len);
        break;
    case PqMsg_ErrorResponse: {
        if (!hdr->complete)
            return SBUF_NEED_MORE;
        struct pg_error_fields ef;
        const char *m = "(malformed)";
        if (proto_parse_error(hdr->data + 5, hdr->len, &ef) && ef.message)
            m = ef.message;
        if (s->internal == SV_INT_AUTHQ) {
            /* The server is fine: its ReadyForQuery follows. */
            authq_server_error(s, m);
            break;
        }
        if (s->internal == SV_INT_CONNECT) {
            slog_warning(s, "connect_query failed: %s", m);
            break;
        }
        if (s->internal == SV_INT_SETVARS && s->link) {
            struct pgsock *c = s->link;
            char msg[300];
            snprintf(msg, sizeof(msg), "invalid server parameter: %s", m);
            sbuf_skip(&s->sbuf, hdr->total);
            client_disconnect(c, "08P01", "%s", msg);
            return SBUF_CLOSED;
        }
        sbuf_skip(&s->sbuf, hdr->total);
        server_disconnect(s, "internal query failed: %s", m);
        return SBUF_CLOSED;
    }
    case PqMsg_ReadyForQuery: {
        if (!hdr->complete)
            return SBUF_NEED_MORE;
        uint8_t kind = s->internal;
        sbuf_skip(&s->sbuf, hdr->total);
        s->internal = SV_INT_NONE;
        s->rfq_expected = 0;
        s->last_status = hdr->data[5];
        if (hdr->data[5] != 'I') {
            if (kind == SV_INT_AUTHQ)
                authq_server_gone(s);
            server_disconnect(s, "server left in a transaction by an internal query");
            return SBUF_CLOSED;
        }
        if (kind == SV_INT_SETVARS) {
            struct pgsock *c = s->link;
            if (c) {
                /* The client adopts the server's canonical spelling, so the
                 * next link does not SET the same value again. */
                varcache_copy(&c->vars, &s->vars);
                sbuf_continue(&c->sbuf);
            }
            return SBUF_OK;
        }
        if (kind == SV_INT_AUTHQ) {
            authq_server_done(s);
            return s->sbuf.closed ? SBUF_CLOSED : SBUF_OK;
        }
        if (kind == SV_INT_RESET)
            ps_server_clear(s); /* the reset query may have been DISCARD ALL */
        pool_server_ready(s);
        if (kind == SV_INT_CONNECT)
            G.launch_needed = true;
        return s->sbuf.closed ? SBUF_CLOSED : SBUF_OK;
    }
    default:
        break;
    }
    sbuf_skip(&s->sbuf, hdr->total);
    return SBUF_OK;
}

/*==== Linked to a client ====*/

/*
 * After an error PostgreSQL skips every message up to the next Sync, so the
 * Parse and Close messages queued ahead of that Sync are never answered:
 * forget them, whether they were queued before the error came or after. A
 * failed Parse also means the statement is not on this server after all.
 */
static void server_ps_drop_skipped(struct pgsock *s)
{
    bool skip;
    struct ps_entry *e;
    uint64_t gen;
    for (;;) {
        uint8_t front = ps_queue_front(s);
        if (front != PSQ_PARSE && front != PSQ_CLOSE)
            break;
        e = NULL;
        ps_queue_pop(s, front, &skip, &e, &gen);
        if (e && front == PSQ_CLOSE) {
            /* An eviction's Close never ran: the statement stays prepared there. */
            if (ps_server_add(s, e))
                ps_server_confirm(s, e);
            ps_entry_put(e);
        } else if (e) {
            ps_server_remove(s, e);
            /* The client's own Parse failed: like PostgreSQL, the name it
             * defined does not exist afterwards. (A Parse pgmux slipped in
             * failing leaves the client's statement in place, as a plan
             * would stay.) */
            if (!skip && s->link)
                ps_client_forget(s->link, gen);
            ps_entry_put(e);
        }
    }
}

/*
 * Prepared statements: answers to Parse and Close that pgmux slipped in are
 * dropped; the server's request queue says which ones those are.
 */
static enum sbuf_result server_ps_pkt(struct pgsock *s, struct pkt_hdr *hdr, bool *handled)
{
    bool skip = false;
    struct ps_entry *e = NULL;
    *handled = false;
    switch (hdr->type) {
    case PqMsg_ParseComplete:
        if (ps_queue_pop(s, PSQ_PARSE, &skip, &e, NULL) && e) {
            ps_server_confirm(s, e);
            ps_entry_put(e);
        }
        break;
    case PqMsg_CloseComplete:
        ps_queue_pop(s, PSQ_CLOSE, &skip, NULL, NULL);
        break;
    case PqMsg_ErrorResponse:
        server_ps_drop_skipped(s);
        break;
    case PqMsg_ReadyForQuery: {
        /* Nothing is popped twice when the message is split across reads. */
        if (hdr->avail < 6)
            return SBUF_NEED_MORE;
        server_ps_drop_skipped(s); /* queued after an error, before the Sync */
        uint8_t front = ps_queue_front(s);
        if (front == PSQ_SYNC || front == PSQ_QUERY || front == PSQ_FUNC)
            ps_queue_pop(s, front, &skip, NULL, NULL);
        skip = false;
        break;
    }
    case PqMsg_CommandComplete: {
        if (!hdr->complete)
            return SBUF_NEED_MORE;
        /* DISCARD ALL and DEALLOCATE ALL drop every statement on the server,
         * and the client expects its own names gone too. */
        const char *tag = (const char *)hdr->data + 5;
        if (hdr->len >= 12 && memchr(tag, 0, hdr->len) &&
            (strcmp(tag, "DISCARD ALL") == 0 || strcmp(tag, "DEALLOCATE ALL") == 0)) {
            ps_server_clear(s);
            if (s->link)
                ps_client_clear_answered(s->link, s);
        }
        break;
    }
    default:
        break;
    }
    if (skip) {
        *handled = true;
        sbuf_skip(&s->sbuf, hdr->total);
    }
    return SBUF_OK;
}

static enum sbuf_result server_active_pkt(struct pgsock *s, struct pkt_hdr *hdr)
{
    struct pgsock *c = s->link;
    struct pool *p = s->pool;

    /* Activity on the server side too: idle_transaction_timeout counts from here. */
    s->request_time = loop_now();

    if (s->ps) {
        bool handled;
        enum sbuf_result res = server_ps_pkt(s, hdr, &handled);
        if (res != SBUF_OK || handled)
            return res;
    }

    switch (hdr->type) {
    case PqMsg_ReadyForQuery: {
        if (hdr->avail < 6)
            return SBUF_NEED_MORE;
        uint8_t status = hdr->data[5];
        s->last_status = status;
        s->idle_tx = status != 'I';
        if (s->rfq_expected > 0)
            s->rfq_expected--;
        stats_query_done(p, (uint64_t)((loop_now() - c->query_start) * 1e6));
        if (status == 'I')
            stats_xact_end(c);
        else if (c->xact_start == 0)
            c->xact_start = loop_now(); /* a BEGIN pipelined behind the last transaction */
        if (s->rfq_expected == 0 && !s->copy_in && c->ext_since_sync == 0) {
            int mode = pool_mode(p);
            if (mode == POOL_STATEMENT && status != 'I') {
                sbuf_skip(&s->sbuf, hdr->total);
                client_disconnect(c, "08P01",
                                  "transaction blocks not allowed in statement pooling mode");
                return SBUF_CLOSED;
            }
            if (mode != POOL_SESSION && status == 'I')
                s->release_pending = true;
        }
        break;
    }
    case PqMsg_ParameterStatus:
        if (!hdr->complete)
            return SBUF_NEED_MORE;
        server_note_param(s, hdr->data + 5, hdr->len);
        break;
    case PqMsg_CopyInResponse:
    case PqMsg_CopyBothResponse:
        s->copy_in = true;
        /* Syncs the client pipelined behind the COPY's Execute are ignored by
         * PostgreSQL while it is in copy-in mode: they owe no ReadyForQuery. */
        if (c->syncs_since_exec > 0) {
            ps_queue_drop_tail(s, PSQ_SYNC, c->syncs_since_exec);
            s->rfq_expected -= c->syncs_since_exec;
            if (s->rfq_expected < 0)
                s->rfq_expected = 0;
            c->syncs_since_exec = 0;
            /* ...so the COPY's implicit transaction still waits for a Sync: until
             * it comes, the server is not free, even after CopyDone. */
            c->ext_since_sync = 1;
        }
        break;
    case PqMsg_ErrorResponse:
        stats_server_error(p, hdr);
        s->copy_in = false;
        break;
    case PqMsg_CommandComplete:
        s->copy_in = false;
        break;
    default:
        break;
    }
    p->stats.bytes_sent += hdr->total;
    sbuf_forward(&s->sbuf, hdr->total);
    return SBUF_OK;
}

/* An unlinked server sent something: only notices and parameter changes are normal. */
static enum sbuf_result server_idle_pkt(struct pgsock *s, struct pkt_hdr *hdr)
{
    if (!hdr->complete)
        return SBUF_NEED_MORE;
    switch (hdr->type) {
    case PqMsg_ParameterStatus:
        server_note_param(s, hdr->data + 5, hdr->len);
        break;
    case PqMsg_NoticeResponse:
    case PqMsg_NotificationResponse:
        break;
    case PqMsg_ErrorResponse: {
        struct pg_error_fields ef;
        const char *m = "(malformed)";
        if (proto_parse_error(hdr->data + 5, hdr->len, &ef) && ef.message)
            m = ef.message;
        sbuf_skip(&s->sbuf, hdr->total);
        server_disconnect(s, "idle server sent an error: %s", m);
        return SBUF_CLOSED;
    }
    default:
        sbuf_skip(&s->sbuf, hdr->total);
        server_disconnect(s, "idle server got dirty");
        return SBUF_CLOSED;
    }
    sbuf_skip(&s->sbuf, hdr->total);
    return SBUF_OK;
}

static enum sbuf_result server_proto(struct sbuf *sb, enum sbuf_event ev, struct pkt_hdr *hdr)
{
    struct pgsock *s = sock_of(sb);

    switch (ev) {
    case SBUF_EV_CONNECT_OK:
        if (G.server_tls && !s->is_unix) {
            if (!server_send_ssl_request(s)) {
                server_login_failed(s, "08006", "could not send SSLRequest", false);
                return SBUF_CLOSED;
            }
            return SBUF_OK;
        }
        if (!server_send_startup(s)) {
            server_login_failed(s, "08006", "could not send startup packet", false);
            return SBUF_CLOSED;
        }
        return SBUF_OK;
    case SBUF_EV_TLS_READY:
        server_tls_ready(s);
        return s->sbuf.closed ? SBUF_CLOSED : SBUF_OK;
    case SBUF_EV_TLS_FAILED: {
        char msg[300];
        snprintf(msg, sizeof(msg), "TLS handshake with server failed: %s", sbuf_strerror(errno));
        /* A certificate that does not verify will not fix itself by retrying. */
        bool cert = s->sbuf.ssl && (SSL_get_verify_mode(s->sbuf.ssl) & SSL_VERIFY_PEER) &&
                    SSL_get_verify_result(s->sbuf.ssl) != X509_V_OK;
        server_login_failed(s, "08006", msg, cert);
        return SBUF_CLOSED;
    }
    case SBUF_EV_CONNECT_FAILED: {
        char msg[200];
        snprintf(msg, sizeof(msg), "connect failed: %s", strerror(errno));
        server_login_failed(s, "08006", msg, false);
        return SBUF_CLOSED;
    }
    case SBUF_EV_RECV_FAILED:
        if (s->state == SV_LOGIN) {
            server_login_failed(s, "08006", "server closed the connection during login", false);
        } else {
            server_disconnect(s, "server closed the connection%s%s", errno ? ": " : "",
                              errno ? sbuf_strerror(errno) : "");
        }
        return SBUF_CLOSED;
    case SBUF_EV_SEND_FAILED:
        /* Forwarding to our client failed: the client is gone. */
        if (s->link)
            client_disconnect(s->link, NULL, "client went away during a transfer: %s",
                              strerror(errno));
        else
            server_disconnect(s, "send failed");
        return SBUF_CLOSED;
    case SBUF_EV_FLUSH:
        pool_release_if_done(s);
        return SBUF_OK;
    case SBUF_EV_PKT_TOO_BIG:
        server_disconnect(s, "message from server too large to handle");
        return SBUF_CLOSED;
    case SBUF_EV_PKT:
        break;
    }

    if (hdr->total == 0) {
        server_disconnect(s, "invalid message length from server");
        return SBUF_CLOSED;
    }
    enum sbuf_result res;
    if (s->state == SV_LOGIN)
        res = server_login_pkt(s, hdr);
    else if (s->internal)
        res = server_internal_pkt(s, hdr);
    else if (s->link)
        res = server_active_pkt(s, hdr);
    else
        res = server_idle_pkt(s, hdr);
    /* A message wanted whole larger than the iobuf is collected on the heap
     * (sbuf.c): its length comes from the server, so bound it. */
    if (res == SBUF_NEED_MORE && hdr->total > SERVER_MAX_WHOLE_MSG) {
        if (s->state == SV_LOGIN)
            server_login_failed(s, "08P01", "message from server too large", false);
        else
            server_disconnect(s, "message from server too large (%u bytes)", hdr->total);
        return SBUF_CLOSED;
    }
    return res;
}

/*==== Disconnect ====*/

void server_disconnect(struct pgsock *s, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    if (s->state == SV_JUSTFREE || s->state == SV_FREE)
        return;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);

    struct pool *p = s->pool;
    struct pgsock *c = s->link;
    if (c) {
        /* The client's transaction is gone with this server: it must not carry
         * on as if it were still inside it, so it is disconnected too. If part
         * of a message already went to the client, an ErrorResponse written
         * now would become the rest of that message: close without one. */
        bool mid_message = sbuf_mid_message(&s->sbuf);
        s->link = NULL;
        c->link = NULL;
        c->sbuf.dst = NULL;
        s->sbuf.dst = NULL;
        if (mid_message)
            client_disconnect(c, NULL, "server connection lost in the middle of a message: %s",
                              reason);
        else
            client_disconnect(c, "08006", "server connection lost: %s", reason);
    }
    if (G.cfg->log_disconnections || s->state == SV_LOGIN)
        slog_info(s, "closing because: %s (age=%.0fs)", reason, loop_now() - s->connect_time);
    if (s->internal == SV_INT_AUTHQ) {
        s->internal = SV_INT_NONE;
        authq_server_gone(s);
    }
    if (s->slogin) {
        free(s->slogin->params);
        free(s->slogin);
        s->slogin = NULL;
    }
    sbuf_close(&s->sbuf);
    G.server_count--;
    p->db->server_count--;
    p->user->server_count--;
    pool_change_server_state(s, SV_JUSTFREE);
    G.launch_needed = true;
}
