/* SPDX-License-Identifier: ISC */
/*
 * fuzz_client: the client message stream through the real state machine
 * (client.c, sbuf.c, pool.c, admin*.c, scram.c...). Each input is what one
 * client sends on a fresh connection: client_accept gets one end of a
 * non-blocking socketpair as if listener.c had accepted it from 127.0.0.1,
 * the input is written to the other end followed by EOF, and the real libev
 * loop runs (without blocking) until the client is gone or a bounded number
 * of iterations passed; whatever pgmux answers is read and dropped.
 *
 * With fuzz_core's configuration the stream can log in (trust users, the
 * RFC 7677 SCRAM exchange for carol, a plain password for dave), reach the
 * console as the stats user, or ask for db1, whose server never answers
 * (connect fails at once), so server messages are not covered here (fuzz_server does that).
 * SSLRequest is answered 'N' (no TLS configured).
 *
 * Everything persists across inputs as it would across connections in one
 * process (pools per user, caches), which is the point: a connection must
 * not leave state behind that a later one trips on.
 */
#include "fuzz.h"
#include "fuzz_core.h"
#include "scram_vectors.h"

#include <sys/socket.h>
#include <unistd.h>

#define MAX_ITER 200

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_core_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first SCRAM exchange of this connection uses the RFC server nonce. */
    scram_test_set_nonce(RFC_SNONCE);
    int fd = fuzz_core_client();
    fuzz_write_all(fd, data, size);
    shutdown(fd, SHUT_WR);
    fuzz_core_spin(fd, MAX_ITER);
    close(fd);
    /* The peer is gone: let pgmux notice and free everything of this connection. */
    fuzz_core_spin(-1, MAX_ITER);
    scram_test_set_nonce(NULL);
    return 0;
}
