/* SPDX-License-Identifier: ISC */
/*
 * dns: server addresses. Unix sockets and numeric addresses need no lookup;
 * host names are resolved with glibc's getaddrinfo_a, whose completion runs
 * on a glibc helper thread: that thread only queues the finished request
 * under a mutex and wakes the loop with ev_async_send, and everything else
 * happens on the loop thread. Results are cached for dns_max_ttl.
 */
#include "dns.h"

#include "config.h"
#include "log.h"
#include "loop.h"
#include "server.h"

#include <arpa/inet.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

struct dns_req {
    struct gaicb cb;
    struct addrinfo hints;
    struct sigevent sev;
    struct database *db;
    unsigned generation; /* db->generation when asked: a reload may change host or port */
    char host[256];
    char port[16];
    struct dns_req *next;
};

static ev_async dns_async;
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dns_req *done_list;

static void dns_thread_done(union sigval sv)
{
    struct dns_req *req = sv.sival_ptr;
    pthread_mutex_lock(&done_lock);
    req->next = done_list;
    done_list = req;
    pthread_mutex_unlock(&done_lock);
    ev_async_send(loop_main, &dns_async);
}

static void dns_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    pthread_mutex_lock(&done_lock);
    struct dns_req *list = done_list;
    done_list = NULL;
    pthread_mutex_unlock(&done_lock);

    while (list) {
        struct dns_req *req = list;
        list = req->next;
        struct database *db = req->db;
        int err = gai_error(&req->cb);
        struct addrinfo *ai = req->cb.ar_result;
        db->resolving = false;
        if (req->generation != db->generation) {
            /* Host or port changed while this lookup ran: its answer is for the old
             * ones. Drop it; the next connect attempt asks for the new ones. */
        } else if (err == 0 && ai && ai->ai_addrlen <= sizeof(db->addr)) {
            memcpy(&db->addr, ai->ai_addr, ai->ai_addrlen);
            db->addrlen = ai->ai_addrlen;
            db->addr_expires = loop_now() + G.cfg->dns_max_ttl;
            db->dns_error = 0;
        } else {
            log_warning("could not resolve host \"%s\": %s", req->host,
                        err ? gai_strerror(err) : "no address");
            db->dns_error = err ? err : EAI_NONAME;
            db->addrlen = 0;
        }
        if (ai)
            freeaddrinfo(ai);
        free(req);
        server_dns_done(db);
    }
}

void dns_init(void)
{
    ev_async_init(&dns_async, dns_async_cb);
    ev_async_start(loop_main, &dns_async);
}

int dns_prepare(struct database *db)
{
    if (db->addrlen && loop_now() < db->addr_expires)
        return 1;
    const char *host = db->host;
    if (!host || !host[0] || host[0] == '/') {
        struct sockaddr_un *sun = (struct sockaddr_un *)&db->addr;
        const char *dir = host && host[0] ? host : G.cfg->unix_socket_dir;
        memset(sun, 0, sizeof(*sun));
        sun->sun_family = AF_UNIX;
        snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/.s.PGSQL.%d", dir, db->port);
        db->addrlen = sizeof(*sun);
        db->addr_expires = INFINITY;
        return 1;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)&db->addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&db->addr;
    memset(&db->addr, 0, sizeof(db->addr));
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)db->port);
        db->addrlen = sizeof(*sin);
        db->addr_expires = INFINITY;
        return 1;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)db->port);
        db->addrlen = sizeof(*sin6);
        db->addr_expires = INFINITY;
        return 1;
    }
    if (db->resolving)
        return 0;
    struct dns_req *req = calloc(1, sizeof(*req));
    if (!req) {
        db->dns_error = EAI_MEMORY;
        return -1;
    }
    snprintf(req->host, sizeof(req->host), "%s", host);
    snprintf(req->port, sizeof(req->port), "%d", db->port);
    req->db = db;
    req->generation = db->generation;
    req->hints.ai_family = AF_UNSPEC;
    req->hints.ai_socktype = SOCK_STREAM;
    req->cb.ar_name = req->host;
    req->cb.ar_service = req->port;
    req->cb.ar_request = &req->hints;
    req->sev.sigev_notify = SIGEV_THREAD;
    req->sev.sigev_value.sival_ptr = req;
    req->sev.sigev_notify_function = dns_thread_done;
    struct gaicb *list[1] = {&req->cb};
    int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &req->sev);
    if (rc != 0) {
        db->dns_error = rc;
        free(req);
        return -1;
    }
    db->resolving = true;
    return 0;
}
