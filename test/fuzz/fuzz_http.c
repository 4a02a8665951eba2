/* SPDX-License-Identifier: ISC */
/*
 * fuzz_http: the HTTP request reader of src/http.c (head_length, the request
 * loop conn_process, parse_head, handle_request with stats_auth Basic
 * credentials and the /metrics and /health renderers). http.c keeps these
 * static, so the driver includes the .c file (STYLE.md 7.8); the core
 * library's copy of http.c is then never linked in.
 *
 * Each input is the byte stream of one connection, delivered in up to four
 * chunks (split at FUZZ_SEP), each written to the other end of the
 * connection's socketpair and taken by the real read callback
 * (http_conn_cb) from the libev loop, which runs without blocking; the
 * answers are drained after every iteration. n_conns tells whether http.c
 * closed the connection itself.
 */
#include "../../src/http.c"

#include "fuzz.h"
#include "fuzz_core.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_core_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_part part[4];
    size_t n = fuzz_split(data, size, part, 4);
    int sv[2];
    struct http_conn *c;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->fd = sv[0];
    c->serves = SERVES_METRICS | SERVES_HEALTH;
    struct sockaddr_in *sin = (struct sockaddr_in *)&c->peer;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ev_io_init(&c->io, http_conn_cb, c->fd, EV_READ);
    list_insert_after(&conns, &c->head);
    n_conns++;

    conn_watch(c, EV_READ);

    /* Each chunk is one write; the loop's read callback takes it as a recv would. */
    for (size_t i = 0; i < n && n_conns > 0; i++) {
        fuzz_write_all(sv[1], part[i].p, part[i].len);
        for (int spins = 0; spins < 16 && n_conns > 0; spins++) {
            ev_run(loop_main, EVRUN_NOWAIT);
            fuzz_core_drain(sv[1], "http client");
        }
    }
    /* Still open (keep-alive, or a head not complete yet): close it as the timer would. */
    if (n_conns > 0)
        conn_close(c);
    close(sv[1]);
    return 0;
}
