/* SPDX-License-Identifier: ISC */
/*
 * authq: running auth_query for logins whose user is not in the auth file.
 *
 * A lookup (struct authq_req) is owned by this module from authq_start until
 * its answer is delivered or it is dropped. It sits on its pool's
 * authq_waiting list until a server is free, then on authq_running while the
 * server answers. The client holds only a pointer to cancel it; when the
 * client leaves first, req->client becomes NULL and the answer is thrown
 * away, but the server still finishes the query and goes back to the pool.
 *
 * The query goes out in the extended protocol with the user name as a bound
 * parameter, never pasted into the SQL text, so no user name can change what
 * runs. Its answer: ParseComplete, BindComplete, at most one DataRow
 * (name, secret), CommandComplete, ReadyForQuery; or an ErrorResponse.
 */
#include "authq.h"

#include "client.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "loop.h"
#include "pktbuf.h"
#include "pool.h"
#include "proto.h"
#include "server.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct authq_req {
    struct list head;       /* pool->authq_waiting, or pool->authq_running */
    struct pool *pool;      /* (auth database, auth_user) */
    struct database *db;    /* the client's database: its auth_query applies */
    struct pgsock *client;  /* NULL once the client left */
    struct pgsock *server;  /* while running */
    int rows;
    bool have_secret;       /* a row with a non-NULL secret came */
    bool failed;            /* the query failed (logged where it was seen) */
    char user[MAX_NAME];
    char secret[MAX_PASSWORD];
};

const char *authq_user(const struct database *db)
{
    if (db->auth_user && db->auth_user[0])
        return db->auth_user;
    return G.cfg->auth_user && G.cfg->auth_user[0] ? G.cfg->auth_user : NULL;
}

static const char *authq_query(const struct database *db)
{
    if (db->auth_query && db->auth_query[0])
        return db->auth_query;
    return G.cfg->auth_query;
}

static void req_free(struct authq_req *req)
{
    OPENSSL_cleanse(req->secret, sizeof(req->secret));
    free(req);
}

/* Parse, Bind ($1 = user name, text), Execute, Sync. */
static bool authq_send(struct pgsock *s, struct authq_req *req)
{
    const char *sql = authq_query(req->db);
    size_t cap = strlen(sql) + strlen(req->user) + 64;
    uint8_t *mem = malloc(cap);
    if (!mem)
        return false;
    struct pktbuf pb;
    pktbuf_init(&pb, mem, cap);
    pktbuf_start(&pb, PqMsg_Parse);
    pktbuf_put_string(&pb, "");
    pktbuf_put_string(&pb, sql);
    pktbuf_put_u16(&pb, 0);
    pktbuf_finish(&pb);
    pktbuf_start(&pb, PqMsg_Bind);
    pktbuf_put_string(&pb, "");
    pktbuf_put_string(&pb, "");
    pktbuf_put_u16(&pb, 0); /* parameter formats: all text */
    pktbuf_put_u16(&pb, 1);
    pktbuf_put_u32(&pb, (uint32_t)strlen(req->user));
    pktbuf_put_bytes(&pb, req->user, strlen(req->user));
    pktbuf_put_u16(&pb, 0); /* result formats: all text */
    pktbuf_finish(&pb);
    pktbuf_start(&pb, PqMsg_Execute);
    pktbuf_put_string(&pb, "");
    pktbuf_put_u32(&pb, 0);
    pktbuf_finish(&pb);
    pktbuf_start(&pb, PqMsg_Sync);
    pktbuf_finish(&pb);
    bool ok = !pb.failed && sbuf_answer(&s->sbuf, pb.buf, pb.len);
    free(mem);
    return ok;
}

/* Put req on server s (idle, unlinked). False when s could not take it (s closed). */
static bool authq_run(struct pgsock *s, struct authq_req *req)
{
    struct pool *p = req->pool;
    statlist_remove(&p->authq_waiting, &req->head);
    list_insert_after(&p->authq_running, &req->head);
    req->server = s;
    pool_change_server_state(s, SV_ACTIVE);
    s->internal = SV_INT_AUTHQ;
    s->rfq_expected = 1;
    s->request_time = loop_now();
    if (!authq_send(s, req)) {
        server_disconnect(s, "could not send auth_query");
        return false;
    }
    slog_debug(s, "auth_query for user \"%s\"", req->user);
    return true;
}

bool authq_start(struct pgsock *c, struct database *db, const char *user, struct authq_req **out)
{
    const char *auth_user = authq_user(db);
    const char *dbname = db->auth_dbname && db->auth_dbname[0] ? db->auth_dbname
                                                                : G.cfg->auth_dbname;
    struct database *adb = db;
    *out = NULL;
    if (dbname && dbname[0]) {
        adb = db_find_or_auto(dbname);
        if (!adb || adb->dead) {
            log_warning("auth_dbname \"%s\" is not a database in [databases]", dbname);
            client_disconnect(c, "08P01", "bouncer config error");
            return false;
        }
    }
    struct user *au = db_find_or_add_user(auth_user);
    struct pool *p = au ? pool_get(adb, au) : NULL;
    struct authq_req *req = p ? calloc(1, sizeof(*req)) : NULL;
    if (!req) {
        client_disconnect(c, "53200", "out of memory");
        return false;
    }
    req->pool = p;
    req->db = db;
    req->client = c;
    snprintf(req->user, sizeof(req->user), "%s", user);
    statlist_append(&p->authq_waiting, &req->head);
    *out = req;

    if (!G.paused && !adb->paused) {
        struct list *item = statlist_first(&p->idle_servers);
        if (!item)
            item = statlist_first(&p->used_servers); /* the lookup itself checks it */
        if (item) {
            /* A send failure closes the server, and authq_server_gone closes c. */
            authq_run(container_of(item, struct pgsock, head), req);
            return c->state != CL_JUSTFREE;
        }
    }
    pool_launch_if_needed(p);
    return true;
}

void authq_cancel(struct authq_req *req)
{
    if (req->server) {
        req->client = NULL;
        return;
    }
    statlist_remove(&req->pool->authq_waiting, &req->head);
    req_free(req);
}

bool authq_take_server(struct pgsock *s)
{
    struct list *item = statlist_first(&s->pool->authq_waiting);
    if (!item)
        return false;
    authq_run(s, container_of(item, struct authq_req, head));
    return true;
}

static struct authq_req *req_of_server(struct pgsock *s)
{
    struct list *item;
    for (item = s->pool->authq_running.next; item != &s->pool->authq_running; item = item->next) {
        struct authq_req *req = container_of(item, struct authq_req, head);
        if (req->server == s)
            return req;
    }
    return NULL;
}

/* The operator needs the reason; the client only learns that its login could not be checked. */
static void req_fail(struct pgsock *s, struct authq_req *req, const char *why)
{
    if (req->failed)
        return;
    req->failed = true;
    slog_warning(s, "auth_query for user \"%s\" failed: %s", req->user, why);
}

void authq_server_row(struct pgsock *s, const uint8_t *body, uint32_t len)
{
    struct authq_req *req = req_of_server(s);
    struct pkt_reader r;
    uint16_t ncols;
    int32_t nlen, slen;
    const uint8_t *name, *secret;

    if (!req)
        return;
    if (++req->rows > 1) {
        req_fail(s, req, "it returned more than one row");
        return;
    }
    reader_init(&r, body, len);
    if (!reader_get_u16(&r, &ncols) || ncols < 2 || !reader_get_i32(&r, &nlen) ||
        (nlen > 0 && !reader_get_bytes(&r, (size_t)nlen, &name)) || !reader_get_i32(&r, &slen) ||
        (slen > 0 && !reader_get_bytes(&r, (size_t)slen, &secret))) {
        req_fail(s, req, "it must return two columns: user name and password");
        return;
    }
    (void)name;
    if (slen <= 0)
        return; /* NULL or '': no password (or VALID UNTIL passed): the login fails */
    if ((size_t)slen >= sizeof(req->secret) || memchr(secret, 0, (size_t)slen)) {
        req_fail(s, req, "it returned an unusable password");
        return;
    }
    memcpy(req->secret, secret, (size_t)slen);
    req->secret[slen] = 0;
    req->have_secret = true;
}

void authq_server_error(struct pgsock *s, const char *msg)
{
    struct authq_req *req = req_of_server(s);
    if (req)
        req_fail(s, req, msg);
}

/* Tell the client (if still there) and free req. */
static void req_deliver(struct authq_req *req)
{
    struct pgsock *c = req->client;
    if (c) {
        if (req->failed)
            client_authq_failed(c);
        else
            client_authq_done(c, req->have_secret ? req->secret : NULL);
    }
    req_free(req);
}

void authq_server_done(struct pgsock *s)
{
    struct authq_req *req = req_of_server(s);
    if (req) {
        list_del(&req->head);
        req->server = NULL;
    }
    /* The server first: it may go straight to the next queued lookup, unless
     * its lifetime is over (the janitor only sees servers between uses). */
    if (pool_server_expired(s, loop_now())) {
        s->internal = SV_INT_NONE;
        server_disconnect(s, "server lifetime over");
    } else {
        pool_server_ready(s);
    }
    if (req)
        req_deliver(req);
}

void authq_server_gone(struct pgsock *s)
{
    struct authq_req *req = req_of_server(s);
    if (!req)
        return;
    list_del(&req->head);
    req->server = NULL;
    req_fail(s, req, "the server connection was lost");
    req_deliver(req);
}

void authq_fail_waiting(struct pool *p)
{
    struct list *item;
    while ((item = statlist_first(&p->authq_waiting))) {
        struct authq_req *req = container_of(item, struct authq_req, head);
        struct pgsock *c = req->client;
        statlist_remove(&p->authq_waiting, item);
        req_free(req);
        /* auth_user's own login failed (logged by server.c): no lookup can run. */
        if (c)
            client_authq_failed(c);
    }
}
