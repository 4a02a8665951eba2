/* SPDX-License-Identifier: ISC */
/*
 * fuzz_core: set up the whole pooler (minus main(), listeners and signals)
 * inside a fuzzer process, for the drivers that feed the real state machine:
 * fuzz_client, fuzz_admin, fuzz_http, fuzz_server. See fuzz_core.c for the
 * configuration.
 */
#ifndef PGMUX_FUZZ_CORE_H
#define PGMUX_FUZZ_CORE_H

#include <stdbool.h>
#include <stddef.h>

/* The srv* databases are at <fuzz_tmpdir()>/.s.PGSQL.<this port> (a Unix socket). */
#define FUZZ_CORE_SERVER_PORT 2

/* Load the driver config into G and start the loop (once; later calls do nothing). */
void fuzz_core_init(void);

/*
 * A new client connection as listener.c would hand it over: client_accept()
 * gets one end of a non-blocking socketpair, with 127.0.0.1 as the peer.
 * Returns the other end, the test's side, with room in the socket buffers
 * for a whole fuzzer input so that writing it neither blocks nor falls short.
 */
int fuzz_core_client(void);

/*
 * Read and drop whatever is waiting on fd; returns the bytes read. With
 * PGMUX_FUZZ_DUMP=1 in the environment they are printed to stderr, headed
 * by who (for checking seeds by hand).
 */
size_t fuzz_core_drain(int fd, const char *who);

/*
 * Run the loop without blocking until nothing is left to do or max_iter
 * iterations passed. Reads and discards whatever arrives on drain_fd (the
 * test's end of a socketpair; -1 for none) between iterations. Returns the
 * bytes drained.
 */
size_t fuzz_core_spin(int drain_fd, int max_iter);

#endif
