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
 * Run the loop without blocking until nothing is left to do or max_iter
 * iterations passed. Reads and discards whatever arrives on drain_fd (the
 * test's end of a socketpair; -1 for none) between iterations. Returns the
 * bytes drained.
 */
size_t fuzz_core_spin(int drain_fd, int max_iter);

#endif
