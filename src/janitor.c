/* SPDX-License-Identifier: ISC */
/*
 * janitor: one ev_timer serves every connection (libev's "be smart about
 * timeouts", method 3): a few times a second it walks the pools and compares
 * stored timestamps with the cached clock. It enforces the client and server
 * timeouts, keeps min_pool_size, moves long-idle servers to "used" so they
 * are checked before reuse, retries failed server logins, and ends the
 * process when a graceful shutdown has nothing left to wait for.
 */
#include "janitor.h"

#include "admin.h"
#include "cancel.h"
#include "client.h"
#include "config.h"
#include "control.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "pgmux.h"
#include "pool.h"
#include "server.h"
#include "stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define JANITOR_PERIOD 0.2

static ev_timer janitor_timer;

static double user_or(double user_val, double global)
{
    return user_val >= 0 ? user_val : global;
}

static void janitor_clients(struct pool *p, double now)
{
    const struct config *cfg = G.cfg;
    const struct user *u = p->user;
    struct list *item, *tmp;

    double qwt = user_or(u->query_wait_timeout, cfg->query_wait_timeout);
    double qt = user_or(u->query_timeout, cfg->query_timeout);
    statlist_foreach_safe(item, tmp, &p->waiting_clients)
    {
        struct pgsock *c = container_of(item, struct pgsock, head);
        double waited = now - c->wait_start;
        if (qwt > 0 && waited > qwt) {
            stats_timeout(p, STATS_TO_QUERY_WAIT);
            client_disconnect(c, "08P01", "query_wait_timeout");
        } else if (qt > 0 && waited > qt) {
            stats_timeout(p, STATS_TO_QUERY);
            client_disconnect(c, "08P01", "query_timeout");
        } else if (G.shutting_down && G.shutdown_mode == 1) {
            client_disconnect(c, "57P01", "pooler is shutting down");
        }
    }
    statlist_foreach_safe(item, tmp, &p->waiting_login)
    {
        struct pgsock *c = container_of(item, struct pgsock, head);
        double limit = cfg->client_login_timeout;
        if (limit > 0 && now - c->wait_start > limit) {
            if (p->last_error[0])
                client_disconnect(c, p->last_sqlstate[0] ? p->last_sqlstate : "08006",
                                  "server login has been failing: %s", p->last_error);
            else
                client_disconnect(c, "08006", "client_login_timeout (server down)");
        }
    }

    double cit = user_or(u->client_idle_timeout, cfg->client_idle_timeout);
    double itt = user_or(u->idle_transaction_timeout, cfg->idle_transaction_timeout);
    double tt = user_or(u->transaction_timeout, cfg->transaction_timeout);
    statlist_foreach_safe(item, tmp, &p->active_clients)
    {
        struct pgsock *c = container_of(item, struct pgsock, head);
        struct pgsock *s = c->link;
        if (!s) {
            if (cit > 0 && now - c->request_time > cit) {
                stats_timeout(p, STATS_TO_CLIENT_IDLE);
                client_disconnect(c, "08P01", "client_idle_timeout");
            }
            continue;
        }
        if (qt > 0 && s->rfq_expected > 0 && now - c->query_start > qt) {
            stats_timeout(p, STATS_TO_QUERY);
            client_disconnect(c, "57014", "query_timeout");
        } else if (itt > 0 && s->idle_tx && s->rfq_expected == 0 &&
                   now - fmax(c->request_time, s->request_time) > itt) {
            stats_timeout(p, STATS_TO_IDLE_TRANSACTION);
            client_disconnect(c, "25P03", "idle transaction timeout");
        } else if (tt > 0 && s->idle_tx && c->xact_start > 0 && now - c->xact_start > tt) {
            stats_timeout(p, STATS_TO_TRANSACTION);
            client_disconnect(c, "25P04", "transaction timeout");
        }
    }
}

static void janitor_servers(struct pool *p, double now)
{
    const struct config *cfg = G.cfg;
    struct list *item, *tmp;
    int min_size = pool_min_size(p);

    statlist_foreach_safe(item, tmp, &p->new_servers)
    {
        struct pgsock *s = container_of(item, struct pgsock, head);
        if (cfg->server_connect_timeout > 0 && now - s->connect_time > cfg->server_connect_timeout) {
            snprintf(p->last_error, sizeof(p->last_error), "connect timeout");
            p->last_login_ok = false;
            stats_server_login(p, false);
            p->backoff = 0.5;
            p->next_connect = now + p->backoff;
            server_disconnect(s, "connect timeout");
        }
    }
    /* The oldest idle servers are at the tail (LIFO reuse puts fresh ones first). */
    statlist_foreach_safe(item, tmp, &p->idle_servers)
    {
        struct pgsock *s = container_of(item, struct pgsock, head);
        double idle = now - s->request_time;
        if (s->close_needed || p->db->dead || G.paused || p->db->paused) {
            server_disconnect(s, s->close_needed ? "close_needed" : "pause mode");
        } else if (pool_server_expired(s, now)) {
            server_disconnect(s, "server lifetime over");
        } else if (cfg->server_idle_timeout > 0 && idle > cfg->server_idle_timeout &&
                   pool_server_count(p) > min_size) {
            server_disconnect(s, "server idle timeout");
        } else if (cfg->server_check_query[0] && idle > cfg->server_check_delay) {
            pool_change_server_state(s, SV_USED);
        }
    }
    statlist_foreach_safe(item, tmp, &p->used_servers)
    {
        struct pgsock *s = container_of(item, struct pgsock, head);
        double idle = now - s->request_time;
        if (s->close_needed || p->db->dead || G.paused)
            server_disconnect(s, "close_needed");
        else if (pool_server_expired(s, now))
            server_disconnect(s, "server lifetime over");
        else if (cfg->server_idle_timeout > 0 && idle > cfg->server_idle_timeout &&
                 pool_server_count(p) > min_size)
            server_disconnect(s, "server idle timeout");
    }
    /* An auth_query lookup has as long as a login: a server that never
     * answers (a lost network path, a lock) must not hold a pool slot for
     * good. Closing it fails the lookup, and its login, if still there. */
    statlist_foreach_safe(item, tmp, &p->active_servers)
    {
        struct pgsock *s = container_of(item, struct pgsock, head);
        if (s->internal == SV_INT_AUTHQ && cfg->client_login_timeout > 0 &&
            now - s->request_time > cfg->client_login_timeout)
            server_disconnect(s, "auth_query timeout");
    }
    /* Shrink a pool whose size was lowered by a reload. */
    int extra = pool_server_count(p) - pool_size(p) - pool_reserve_size(p);
    while (extra-- > 0) {
        struct list *last = statlist_last(&p->idle_servers);
        if (!last)
            last = statlist_last(&p->used_servers);
        if (!last)
            break;
        server_disconnect(container_of(last, struct pgsock, head), "too many servers in the pool");
    }
}

static void janitor_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    double now = loop_now();
    struct list *item, *tmp;

    statlist_foreach_safe(item, tmp, &G.login_clients)
    {
        struct pgsock *c = container_of(item, struct pgsock, head);
        if (G.cfg->client_login_timeout > 0 && now - c->connect_time > G.cfg->client_login_timeout)
            client_disconnect(c, "08P01", "client_login_timeout");
    }
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        struct pool *p = container_of(item, struct pool, head);
        janitor_clients(p, now);
        janitor_servers(p, now);
        pool_launch_if_needed(p);
    }
    listener_retry();
    admin_janitor();

    if (G.shutting_down) {
        bool done = G.shutdown_mode == 2 ? G.client_count == 0 : G.server_count == 0;
        if (done) {
            log_info("shutdown complete");
            pgmux_exit_now();
        }
    }
}

void janitor_start(void)
{
    ev_timer_init(&janitor_timer, janitor_cb, JANITOR_PERIOD, JANITOR_PERIOD);
    ev_timer_start(loop_main, &janitor_timer);
}
