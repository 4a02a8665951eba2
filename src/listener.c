/* SPDX-License-Identifier: ISC */
/*
 * listener: listening sockets. TCP addresses come from listen_addr (comma
 * list, "*" = every IPv4 and IPv6 address), the Unix socket is
 * unix_socket_dir/.s.PGSQL.<listen_port> like PostgreSQL's. accept4() runs
 * in a bounded loop per wakeup; when the process runs out of descriptors,
 * accepting stops until the janitor retries, instead of spinning on a
 * socket that stays readable.
 */
#include "listener.h"

#include "admin.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "pgmux.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_LISTENERS 16
#define ACCEPT_BATCH 64

struct listener {
    ev_io io;
    int fd;
    bool is_unix;
    char path[108];
};

static struct listener listeners[MAX_LISTENERS];
static int n_listeners;
static bool accept_suspended;
static double suspended_at;

static void listener_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct listener *l = (struct listener *)w;
    (void)loop;
    (void)revents;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warning("accept() failed: %s; not accepting for a while", strerror(errno));
                listener_stop(true);
                accept_suspended = true;
                suspended_at = loop_now();
                return;
            }
            log_warning("accept() failed: %s", strerror(errno));
            return;
        }
        client_accept(fd, (struct sockaddr *)&ss, len, l->is_unix);
    }
}

static bool add_listener(int fd, bool is_unix, const char *path)
{
    if (n_listeners >= MAX_LISTENERS) {
        close(fd);
        log_error("too many listen addresses");
        return false;
    }
    struct listener *l = &listeners[n_listeners++];
    l->fd = fd;
    l->is_unix = is_unix;
    snprintf(l->path, sizeof(l->path), "%s", path ? path : "");
    ev_io_init(&l->io, listener_cb, fd, EV_READ);
    return true;
}

static bool listen_tcp(const struct config *cfg, const char *host)
{
    struct addrinfo hints, *res, *ai;
    char port[16];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%d", cfg->listen_port);
    int rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints, &res);
    if (rc != 0) {
        log_error("listen_addr %s: %s", host, gai_strerror(rc));
        return false;
    }
    bool any = false;
    for (ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (cfg->so_reuseport)
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (cfg->tcp_defer_accept) {
            /* Seconds, as PgBouncer passes it: a silent client still reaches
             * us soon enough for client_login_timeout to apply. */
            int secs = cfg->tcp_defer_accept;
            setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, cfg->listen_backlog) < 0) {
            log_error("could not listen on %s port %d: %s", host, cfg->listen_port,
                      strerror(errno));
            close(fd);
            freeaddrinfo(res);
            return false;
        }
        if (!add_listener(fd, false, NULL)) {
            freeaddrinfo(res);
            return false;
        }
        any = true;
    }
    freeaddrinfo(res);
    if (!any)
        log_error("listen_addr %s: no usable address", host);
    return any;
}

static bool listen_unix(const struct config *cfg)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", cfg->unix_socket_dir,
                     cfg->listen_port);
    if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
        log_error("unix_socket_dir too long");
        return false;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    /* A stale socket file from a crashed run would make bind fail. */
    unlink(sun.sun_path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        listen(fd, cfg->listen_backlog) < 0) {
        log_error("could not listen on %s: %s", sun.sun_path, strerror(errno));
        close(fd);
        return false;
    }
    chmod(sun.sun_path, (mode_t)cfg->unix_socket_mode);
    return add_listener(fd, true, sun.sun_path);
}

bool listener_open(const struct config *cfg)
{
    char *addrs = strdup(cfg->listen_addr);
    if (!addrs)
        return false;
    bool ok = true;
    char *save = NULL;
    for (char *tok = strtok_r(addrs, ",", &save); tok && ok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ')
            *--end = 0;
        if (*tok)
            ok = listen_tcp(cfg, tok);
    }
    free(addrs);
    if (ok && cfg->unix_socket_dir[0])
        ok = listen_unix(cfg);
    if (ok && n_listeners == 0) {
        log_error("nothing to listen on: set listen_addr or unix_socket_dir");
        ok = false;
    }
    return ok;
}

void listener_start(void)
{
    for (int i = 0; i < n_listeners; i++)
        if (listeners[i].fd >= 0 && !ev_is_active(&listeners[i].io))
            ev_io_start(loop_main, &listeners[i].io);
}

void listener_stop(bool all)
{
    for (int i = 0; i < n_listeners; i++)
        if ((all || !listeners[i].is_unix) && ev_is_active(&listeners[i].io))
            ev_io_stop(loop_main, &listeners[i].io);
}

void listener_close_all(void)
{
    for (int i = 0; i < n_listeners; i++) {
        if (ev_is_active(&listeners[i].io))
            ev_io_stop(loop_main, &listeners[i].io);
        if (listeners[i].fd >= 0)
            close(listeners[i].fd);
        listeners[i].fd = -1;
        if (listeners[i].is_unix && listeners[i].path[0])
            unlink(listeners[i].path);
    }
}

void listener_retry(void)
{
    if (!accept_suspended || G.shutting_down || admin_is_suspended())
        return;
    if (loop_now() - suspended_at < 1.0)
        return;
    accept_suspended = false;
    listener_start();
}
