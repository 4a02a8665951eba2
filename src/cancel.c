/* SPDX-License-Identifier: ISC */
/*
 * cancel: client cancel keys and CancelRequest forwarding.
 *
 * Every client gets 8 random bytes as its BackendKeyData, indexed in a
 * chained hash. A CancelRequest that names a client which is linked to a
 * server right now is sent, with that server's own key, over a new
 * non-blocking connection to the same PostgreSQL. The server is marked
 * cancel_pending until PostgreSQL closes that connection, so a server
 * released in the meantime waits in SV_BEING_CANCELED instead of letting
 * the cancel hit the next client's query.
 */
#include "cancel.h"

#include "admin.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "proto.h"
#include "server.h"
#include "stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CANCEL_BUCKETS 4096

static struct pgsock *buckets[CANCEL_BUCKETS];

struct cancel_req {
    ev_io io;
    int fd;
    uint8_t pkt[16];
    uint32_t sent;
    struct pgsock *server;
    uint64_t server_id;
    double started;
    struct cancel_req *next;
};

static struct cancel_req *in_flight;
static ev_timer cancel_timer;

static unsigned bucket_of(const uint8_t key[8])
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 8; i++) {
        h ^= key[i];
        h *= 16777619u;
    }
    return h % CANCEL_BUCKETS;
}

static struct pgsock *cancel_find(const uint8_t key[8])
{
    for (struct pgsock *c = buckets[bucket_of(key)]; c; c = c->cancel_next)
        if (memcmp(c->cancel_key, key, 8) == 0)
            return c;
    return NULL;
}

bool cancel_register(struct pgsock *c)
{
    do {
        if (RAND_bytes(c->cancel_key, 8) != 1)
            return false;
        /* PostgreSQL tools treat a negative pid oddly: keep the sign bit clear. */
        c->cancel_key[0] &= 0x7f;
    } while (cancel_find(c->cancel_key));
    unsigned b = bucket_of(c->cancel_key);
    c->cancel_next = buckets[b];
    buckets[b] = c;
    return true;
}

void cancel_unregister(struct pgsock *c)
{
    struct pgsock **pp = &buckets[bucket_of(c->cancel_key)];
    while (*pp) {
        if (*pp == c) {
            *pp = c->cancel_next;
            c->cancel_next = NULL;
            return;
        }
        pp = &(*pp)->cancel_next;
    }
}

/*
 * The request is over. unanswered: it timed out after all of it was sent, so
 * PostgreSQL may still act on it later: the server must then not serve
 * another client (PgBouncer's rule too): closed now if it waits only for
 * this cancel, or when its client releases it.
 */
static void cancel_finish(struct cancel_req *req, bool unanswered)
{
    struct cancel_req **pp = &in_flight;
    while (*pp && *pp != req)
        pp = &(*pp)->next;
    if (*pp)
        *pp = req->next;
    ev_io_stop(loop_main, &req->io);
    close(req->fd);
    struct pgsock *s = req->server;
    /* The server may be gone and its memory reused: the id tells. */
    if (s->id == req->server_id && s->state != SV_JUSTFREE && s->state != SV_FREE) {
        if (s->cancel_pending > 0)
            s->cancel_pending--;
        if (unanswered && req->sent == sizeof(req->pkt)) {
            if (s->state == SV_BEING_CANCELED)
                server_disconnect(s, "cancel request unanswered");
            else
                s->close_needed = true;
        } else if (s->cancel_pending == 0 && s->state == SV_BEING_CANCELED) {
            pool_server_returned(s);
        }
    }
    free(req);
}

static void cancel_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct cancel_req *req = (struct cancel_req *)((char *)w - offsetof(struct cancel_req, io));
    (void)loop;
    if (req->sent < sizeof(req->pkt)) {
        if (!(revents & EV_WRITE))
            return;
        ssize_t n = send(req->fd, req->pkt + req->sent, sizeof(req->pkt) - req->sent,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            log_warning("cancel request could not be sent: %s", strerror(errno));
            cancel_finish(req, false);
            return;
        }
        req->sent += (uint32_t)n;
        if (req->sent == sizeof(req->pkt)) {
            ev_io_stop(loop_main, &req->io);
            ev_io_set(&req->io, req->fd, EV_READ);
            ev_io_start(loop_main, &req->io);
        }
        return;
    }
    /* PostgreSQL closes the connection once it has acted on the request. */
    uint8_t buf[64];
    ssize_t n = recv(req->fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    cancel_finish(req, false);
}

static void cancel_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    double now = loop_now();
    struct cancel_req *req = in_flight;
    while (req) {
        struct cancel_req *next = req->next;
        /* 0 turns the limit off, as in PgBouncer. */
        if (G.cfg->cancel_wait_timeout > 0 && now - req->started > G.cfg->cancel_wait_timeout) {
            log_warning("cancel request timed out after %.0fs", now - req->started);
            cancel_finish(req, true);
        }
        req = next;
    }
    if (!in_flight)
        ev_timer_stop(loop_main, &cancel_timer);
}

/*
 * Where server s is connected: the address it was connected to, not the
 * database's current one, which a DNS refresh or a reload may have changed
 * (or cleared) since. 0 when unknown.
 */
static socklen_t server_address(const struct pgsock *s, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (s->remote.family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(s->remote.port);
        memcpy(&sin->sin_addr, s->remote.addr, 4);
        return sizeof(*sin);
    }
    if (s->remote.family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(s->remote.port);
        memcpy(&sin6->sin6_addr, s->remote.addr, 16);
        return sizeof(*sin6);
    }
    /* A Unix socket: in the database's socket directory, under the server's port. */
    const struct database *db = s->pool->db;
    const char *dir = db->host && db->host[0] == '/' ? db->host : G.cfg->unix_socket_dir;
    struct sockaddr_un *sun = (struct sockaddr_un *)out;
    sun->sun_family = AF_UNIX;
    int n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/.s.PGSQL.%u", dir,
                     (unsigned)s->remote.port);
    if (n < 0 || (size_t)n >= sizeof(sun->sun_path))
        return 0;
    return sizeof(*sun);
}

void cancel_handle(const uint8_t key[8])
{
    struct pgsock *c = cancel_find(key);
    if (!c) {
        stats_cancel(STATS_CANCEL_UNKNOWN_KEY);
        log_debug("cancel request for an unknown key");
        return;
    }
    if (c->admin) {
        /* Ctrl-C on a console resumes a PAUSE or SUSPEND, as in PgBouncer. */
        admin_cancel_request(c);
        return;
    }
    struct pgsock *s = c->link;
    if (!s || s->internal || s->state != SV_ACTIVE) {
        stats_cancel(STATS_CANCEL_IDLE);
        slog_debug(c, "cancel request ignored: no query running on a server");
        return;
    }
    struct sockaddr_storage addr;
    socklen_t addrlen = server_address(s, &addr);
    struct cancel_req *req = calloc(1, sizeof(*req));
    if (!req)
        return;
    req->fd = addrlen ? socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
                      : -1;
    if (req->fd < 0 ||
        (connect(req->fd, (struct sockaddr *)&addr, addrlen) < 0 && errno != EINPROGRESS)) {
        stats_cancel(STATS_CANCEL_FAILED);
        slog_warning(c, "cancel request: connect failed: %s", strerror(errno));
        if (req->fd >= 0)
            close(req->fd);
        free(req);
        return;
    }
    proto_put_u32(req->pkt, 16);
    proto_put_u32(req->pkt + 4, PKT_CANCEL);
    memcpy(req->pkt + 8, s->cancel_key, 8);
    req->server = s;
    req->server_id = s->id;
    req->started = loop_now();
    req->next = in_flight;
    in_flight = req;
    s->cancel_pending++;
    ev_io_init(&req->io, cancel_io_cb, req->fd, EV_WRITE);
    ev_io_start(loop_main, &req->io);
    if (!ev_is_active(&cancel_timer)) {
        ev_timer_init(&cancel_timer, cancel_timer_cb, 1.0, 1.0);
        ev_timer_start(loop_main, &cancel_timer);
    }
    stats_cancel(STATS_CANCEL_FORWARDED);
    slog_info(c, "forwarding cancel request to S-%llu", (unsigned long long)s->id);
}
