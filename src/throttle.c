/* SPDX-License-Identifier: ISC */
/*
 * throttle: the login gate for TCP clients (see throttle.h).
 *
 * Every TCP client is counted in addrlimit's table from accept to close
 * (c->addr_entry), whether or not a limit is set, so that a reload that sets
 * max_client_conn_per_addr sees the connections already open. The gate runs
 * once per connection, after the startup packet: the earliest point where
 * pgmux can answer with an ErrorResponse the client will show (an error sent
 * before a client's SSLRequest is answered is shown by few drivers), and
 * before any authentication work is spent on the client.
 *
 * A held login costs no timer of its own: held clients wait in one queue in
 * the order they are due, and one ev_timer is armed for the first. The delay
 * is normally the same for everyone, so a new client goes at the tail; only
 * a reload that shortens auth_failure_delay makes the insertion walk back.
 * A held client's socket is paused; bytes or EOF it sends meanwhile are seen
 * when it resumes, and client_login_timeout still applies to it (it is in
 * CL_LOGIN, and the janitor closes it through client_disconnect, which calls
 * throttle_client_closing).
 *
 * A successful login does not clear an address's failures: a brute force
 * from a host that also has one valid account (its own) must not be able to
 * wipe the evidence by logging in between guesses. Failures are forgotten
 * only when auth_failure_window passes without a new one.
 */
#include "throttle.h"

#include "addrlimit.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "loop.h"

#include <arpa/inet.h>
#include <openssl/rand.h>

/*
 * Addresses remembered for their failures alone (no open connection): about
 * 100 bytes each, so the table's idle part stays under 2 MB whatever the
 * number of addresses that fail.
 */
#define THROTTLE_IDLE_MAX 16384

static struct addrlimit *table;
static struct statlist held; /* clients whose login waits, in due order (throttle_node) */
static ev_timer held_timer;
static uint64_t n_delayed, n_refused;

static void held_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static struct addrlimit_rules current_rules(void)
{
    struct addrlimit_rules r = {(unsigned)G.cfg->auth_failure_limit, G.cfg->auth_failure_window};
    return r;
}

static struct pgsock *held_sock(struct list *item)
{
    return container_of(item, struct pgsock, throttle_node);
}

/* Point the timer at the first held client, or stop it when none is left. */
static void held_rearm(void)
{
    struct list *first = statlist_first(&held);
    ev_timer_stop(loop_main, &held_timer);
    if (!first)
        return;
    double after = held_sock(first)->throttle_until - loop_now();
    ev_timer_set(&held_timer, after > 0 ? after : 0, 0);
    ev_timer_start(loop_main, &held_timer);
}

static void held_remove(struct pgsock *c)
{
    statlist_remove(&held, &c->throttle_node);
    c->throttle_until = 0;
}

/* Pause c's login for auth_failure_delay. */
static void hold(struct pgsock *c, const struct addrlimit_rules *r)
{
    c->throttle_until = loop_now() + G.cfg->auth_failure_delay;
    struct list *pos = held.head.prev;
    while (pos != &held.head && held_sock(pos)->throttle_until > c->throttle_until)
        pos = pos->prev;
    list_insert_after(pos, &c->throttle_node);
    held.count++;
    sbuf_pause(&c->sbuf);
    n_delayed++;
    slog_debug(c, "login delayed by %g s: %u failed logins from this address recently",
               G.cfg->auth_failure_delay, addrlimit_failures(c->addr_entry, r, loop_now()));
    if (pos == &held.head)
        held_rearm(); /* it is the first due */
}

/*==== Public functions ====*/

bool throttle_init(void)
{
    uint8_t seed[16];
    if (RAND_bytes(seed, sizeof(seed)) != 1)
        return false;
    table = addrlimit_new(THROTTLE_IDLE_MAX, seed);
    statlist_init(&held);
    ev_init(&held_timer, held_timer_cb);
    return table != NULL;
}

void throttle_client_accept(struct pgsock *c)
{
    if (c->is_unix)
        return;
    struct addrlimit_rules r = current_rules();
    /* NULL (out of memory) leaves this one connection uncounted, nothing worse. */
    c->addr_entry = addrlimit_conn_open(table, c->remote.family, c->remote.addr, &r, loop_now());
}

bool throttle_login_gate(struct pgsock *c, bool is_admin)
{
    struct addrlimit_entry *e = c->addr_entry;
    if (!e)
        return true;
    int max = G.cfg->max_client_conn_per_addr;
    /* No exemption for the console over TCP: the database name comes before
     * any password, so anyone could claim it. The Unix socket is not counted. */
    if (max > 0 && addrlimit_conns(e) > (unsigned)max) {
        char ip[INET6_ADDRSTRLEN];
        n_refused++;
        client_disconnect(c, "53300",
                          "client connections exceeded for address %s (max_client_conn_per_addr)",
                          addrlimit_format(e, ip, sizeof(ip)));
        return false;
    }
    /* Over max_client_conn: client_start_auth refuses it at once, which is
     * better than holding a descriptor pgmux has no room for. */
    if (G.client_count > G.cfg->max_client_conn && !is_admin)
        return true;
    struct addrlimit_rules r = current_rules();
    if (G.cfg->auth_failure_delay <= 0 || !addrlimit_throttled(e, &r, loop_now()))
        return true;
    hold(c, &r);
    return false;
}

void throttle_client_closing(struct pgsock *c, const char *sqlstate)
{
    if (c->throttle_until > 0)
        held_remove(c); /* the timer may fire for nobody: it then re-arms for the next */
    struct addrlimit_entry *e = c->addr_entry;
    if (!e)
        return;
    c->addr_entry = NULL;
    if (c->state == CL_LOGIN && sqlstate && sqlstate[0] == '2' && sqlstate[1] == '8' &&
        G.cfg->auth_failure_limit > 0) {
        struct addrlimit_rules r = current_rules();
        if (addrlimit_failed(e, &r, loop_now())) {
            char ip[INET6_ADDRSTRLEN];
            log_warning("login throttling for %s: %u failed logins within %g s "
                        "(auth_failure_limit); each login from it waits %g s until %g s pass "
                        "without a failure",
                        addrlimit_format(e, ip, sizeof(ip)), addrlimit_failures(e, &r, loop_now()),
                        r.window, G.cfg->auth_failure_delay, r.window);
        }
    }
    addrlimit_conn_close(table, e);
}

void throttle_get_stats(struct throttle_stats *st)
{
    struct addrlimit_rules r = current_rules();
    st->logins_delayed = n_delayed;
    st->conns_refused = n_refused;
    st->delayed_now = (unsigned)held.count;
    st->addresses = table ? addrlimit_size(table) : 0;
    st->throttled_addresses = table ? addrlimit_count_throttled(table, &r, loop_now()) : 0;
}

/*==== Timer ====*/

static void held_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    /* The timer runs on the monotonic clock and ev_now() on the wall clock:
     * allow a millisecond so a rounding difference does not re-arm for 0 s. */
    double now = loop_now() + 0.001;
    struct list *item;
    while ((item = statlist_first(&held)) != NULL) {
        struct pgsock *c = held_sock(item);
        if (c->throttle_until > now)
            break;
        held_remove(c);
        client_resume_login(c); /* may close c: it is off the queue already */
    }
    held_rearm();
}
