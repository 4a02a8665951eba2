/* SPDX-License-Identifier: ISC */
/*
 * fuzz_server: the server message stream through the real state machine
 * (server.c, sbuf.c, pool.c, prepare.c, and client.c for the client the
 * server is linked to). The driver plays PostgreSQL: it listens on the Unix
 * socket of fuzz_core's srv* databases, so pgmux's own connect (sbuf.c) and
 * login code run unchanged, and it plays one client on a socketpair handed
 * to client_accept(), as fuzz_client does. The real libev loop runs without
 * blocking between steps; whatever pgmux sends either way is read and
 * dropped (PGMUX_FUZZ_DUMP=1 prints it).
 *
 * Input: parts separated by FUZZ_SEP.
 *  - Part 0, the scenario: its first byte (modulo the table below) picks the
 *    client's user and database, hence the pool mode, the password pgmux
 *    has for the server login (plain, md5 hash, SCRAM secret, none), a
 *    connect_query, or a client parameter that makes pgmux SET it on the
 *    server before linking. The client's StartupMessage is sent at once.
 *  - Every later part is one step; its first byte says what happens:
 *      'C'  the rest is written by the client;
 *      'X'  the client closes its connection;
 *      'K'  PostgreSQL closes the newest server connection;
 *      any other byte ('S' in the seeds): the rest is written by PostgreSQL
 *           on the newest server connection (dropped if there is none).
 *    After each step the loop runs a few iterations, so the parts are the
 *    points where pgmux has caught up: a seed sends the login messages up
 *    to ReadyForQuery, then a client query, then its answer.
 *
 * So one input covers the login phase (authentication requests: cleartext,
 * md5, SASL with the RFC 7677 client nonce fixed through scram.c's test
 * hook; ParameterStatus, BackendKeyData, ErrorResponse, ReadyForQuery), the
 * linked phase (results, COPY, errors, the answers to the prepared
 * statements pgmux slipped in) and pgmux's internal queries (connect_query,
 * the SET of client parameters, the reset query of session mode).
 *
 * Between inputs the driver closes both sides and runs the loop until every
 * connection is freed; a client still waiting for a server is ended as the
 * janitor's query_wait_timeout would. A connection left behind after that is
 * reported as a crash ("nothing stays linked"). Each input then resets what a pool remembers of earlier logins
 * (the welcome ParameterStatus set, the retry backoff, the last error), so
 * that each input starts with a server login and replays the same way.
 * Inputs asking for between 4097 and 1000000 SCRAM iterations are skipped:
 * they are legal, and only cost PBKDF2 time.
 */
#include "fuzz.h"
#include "fuzz_core.h"
#include "scram_vectors.h"

#include "client.h"
#include "loop.h"
#include "pgmux.h"
#include "proto.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_PARTS 32
#define MAX_SERVERS 8
#define STEP_ITER 8      /* loop iterations after each step */
#define TEARDOWN_ITER 200
#define CHEAP_ITERATIONS 4096

struct scenario {
    const char *user, *db;
    const char *param, *value; /* one more startup parameter, or NULL */
};

static const struct scenario scenarios[] = {
    {"alice", "srv", NULL, NULL},
    {"alice", "srv_session", NULL, NULL},
    {"alice", "srv_stmt", NULL, NULL},
    {"alice", "srv_cq", NULL, NULL},
    {"alice", "srv", "application_name", "fuzz"},
    {"erin", "srv", NULL, NULL},
    {"frank", "srv", NULL, NULL},
    {"alice", "srv_nopw", NULL, NULL},
};

static int listen_fd = -1;
static int client_fd = -1;
static int server_fd[MAX_SERVERS];
static int n_servers;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sockaddr_un sun;

    fuzz_core_init();
    /* As main() does: a write to a peer that hung up fails with EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", fuzz_tmpdir(),
                     FUZZ_CORE_SERVER_PORT);
    if (n < 0 || (size_t)n >= sizeof(sun.sun_path))
        abort();
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        listen(listen_fd, MAX_SERVERS) < 0) {
        perror("fuzz_server: listen");
        abort();
    }
    return 0;
}

/* Take the server connections pgmux opened; the newest one gets the server bytes. */
static void accept_servers(void)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (n_servers == MAX_SERVERS) {
            close(fd);
            continue;
        }
        int sz = 1 << 20;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        server_fd[n_servers++] = fd;
    }
}

static void spin(int iterations)
{
    for (int i = 0; i < iterations; i++) {
        ev_run(loop_main, EVRUN_NOWAIT);
        accept_servers();
        if (client_fd >= 0)
            fuzz_core_drain(client_fd, "client");
        for (int k = 0; k < n_servers; k++)
            if (server_fd[k] >= 0)
                fuzz_core_drain(server_fd[k], "server");
    }
}

static bool all_gone(void)
{
    return G.client_count == 0 && G.server_count == 0 && G.justfree_clients.count == 0 &&
           G.justfree_servers.count == 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Forget what the pools learned from earlier inputs' logins (see the top comment). */
static void reset_pools(void)
{
    struct list *item;
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        struct pool *p = container_of(item, struct pool, head);
        free(p->welcome);
        p->welcome = NULL;
        p->welcome_len = 0;
        p->welcome_ready = false;
        p->backoff = 0;
        p->next_connect = 0;
        p->last_login_ok = true;
        p->last_error_fatal_auth = false;
        p->last_error[0] = 0;
    }
}

static size_t put_cstring(uint8_t *buf, size_t off, const char *s)
{
    size_t n = strlen(s) + 1;
    memcpy(buf + off, s, n);
    return off + n;
}

static void send_startup(const struct scenario *sc)
{
    uint8_t pkt[256];
    size_t len = 8;

    len = put_cstring(pkt, len, "user");
    len = put_cstring(pkt, len, sc->user);
    len = put_cstring(pkt, len, "database");
    len = put_cstring(pkt, len, sc->db);
    if (sc->param) {
        len = put_cstring(pkt, len, sc->param);
        len = put_cstring(pkt, len, sc->value);
    }
    pkt[len++] = 0;
    uint32_t be = htonl((uint32_t)len), code = htonl(PKT_PROTO_V3);
    memcpy(pkt, &be, 4);
    memcpy(pkt + 4, &code, 4);
    fuzz_write_all(client_fd, pkt, len);
}

/* True when the input asks for a SCRAM iteration count that is legal but slow. */
static bool costly_iterations(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i + 3 < size; i++) {
        if (memcmp(data + i, ",i=", 3) != 0)
            continue;
        unsigned long v = 0;
        for (size_t k = i + 3; k < size && data[k] >= '0' && data[k] <= '9' && v <= 1000000;
             k++)
            v = v * 10 + (unsigned long)(data[k] - '0');
        if (v > CHEAP_ITERATIONS && v <= 1000000)
            return true;
    }
    return false;
}

/* For the report of connections left behind: where each one is. */
static void print_list(const char *name, struct statlist *l)
{
    struct list *item, *tmp;
    statlist_foreach_safe(item, tmp, l)
    {
        struct pgsock *s = container_of(item, struct pgsock, head);
        fprintf(stderr, "  %s: id %llu fd %d paused %d wait_send %d link %p\n", name,
                (unsigned long long)s->id, s->sbuf.fd, s->sbuf.paused, s->sbuf.wait_send,
                (void *)s->link);
    }
}

static void print_sockets(void)
{
    struct list *item;
    print_list("login", &G.login_clients);
    for (item = G.pools.next; item != &G.pools; item = item->next) {
        struct pool *p = container_of(item, struct pool, head);
        fprintf(stderr, " pool %s/%s:\n", p->db->name, p->user->name);
        print_list("waiting_login", &p->waiting_login);
        print_list("waiting", &p->waiting_clients);
        print_list("active", &p->active_clients);
        print_list("sv_login", &p->new_servers);
        print_list("sv_idle", &p->idle_servers);
        print_list("sv_active", &p->active_servers);
        print_list("sv_used", &p->used_servers);
        print_list("sv_tested", &p->tested_servers);
        print_list("sv_canceling", &p->canceling_servers);
    }
}

/*
 * A client still waiting for a server after a failed login is not stuck: the
 * pool retries after its backoff and query_wait_timeout ends the wait, but
 * both take real time. Do now what the janitor would do then.
 */
static void timeout_waiting_clients(void)
{
    struct list *item, *tmp, *pi;
    for (pi = G.pools.next; pi != &G.pools; pi = pi->next) {
        struct pool *p = container_of(pi, struct pool, head);
        statlist_foreach_safe(item, tmp, &p->waiting_login)
        {
            client_disconnect(container_of(item, struct pgsock, head), "08006", "fuzz: timeout");
        }
        statlist_foreach_safe(item, tmp, &p->waiting_clients)
        {
            client_disconnect(container_of(item, struct pgsock, head), "08P01", "fuzz: timeout");
        }
    }
}

static void spin_until_gone(void)
{
    for (int i = 0; i < TEARDOWN_ITER && !all_gone(); i++) {
        ev_run(loop_main, EVRUN_NOWAIT);
        accept_servers();
        for (int k = 0; k < n_servers; k++)
            close_fd(&server_fd[k]);
    }
}

static void teardown(void)
{
    close_fd(&client_fd);
    for (int k = 0; k < n_servers; k++)
        close_fd(&server_fd[k]);
    spin_until_gone();
    if (!all_gone() && G.server_count == 0) {
        timeout_waiting_clients();
        spin_until_gone();
    }
    n_servers = 0;
    if (!all_gone()) {
        fprintf(stderr, "fuzz_server: connections left after both peers closed: %d clients, "
                        "%d servers\n", G.client_count, G.server_count);
        print_sockets();
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_part part[MAX_PARTS];

    if (size == 0 || costly_iterations(data, size))
        return 0;
    size_t nparts = fuzz_split(data, size, part, MAX_PARTS);
    const struct scenario *sc =
        &scenarios[(part[0].len ? part[0].p[0] : 0) % (sizeof(scenarios) / sizeof(scenarios[0]))];

    reset_pools();
    client_fd = fuzz_core_client();
    /* A SASL login towards the server uses the RFC client nonce (seeds can then finish it). */
    scram_test_set_nonce(RFC_CNONCE);
    send_startup(sc);
    spin(STEP_ITER);

    for (size_t i = 1; i < nparts; i++) {
        const uint8_t *p = part[i].p;
        size_t len = part[i].len;
        int *srv = n_servers > 0 ? &server_fd[n_servers - 1] : NULL;
        if (len == 0) {
            spin(STEP_ITER); /* an empty step only lets time pass */
            continue;
        }
        switch (p[0]) {
        case 'C':
            if (client_fd >= 0)
                fuzz_write_all(client_fd, p + 1, len - 1);
            break;
        case 'X':
            close_fd(&client_fd);
            break;
        case 'K':
            if (srv)
                close_fd(srv);
            break;
        default:
            if (srv && *srv >= 0)
                fuzz_write_all(*srv, p + 1, len - 1);
            break;
        }
        spin(STEP_ITER);
    }
    teardown();
    /* Also here, so an input frees what it allocated (libFuzzer's leak check). */
    reset_pools();
    scram_test_set_nonce(NULL);
    return 0;
}
