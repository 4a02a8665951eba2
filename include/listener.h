/* SPDX-License-Identifier: ISC */
/*
 * listener: the TCP (v4/v6) and Unix listening sockets and the accept loop,
 * which pauses on EMFILE/ENFILE instead of spinning.
 */
#ifndef PGMUX_LISTENER_H
#define PGMUX_LISTENER_H

#include <stdbool.h>

struct config;

/* Bind and listen; false with a logged reason (before the loop: caller dies). */
bool listener_open(const struct config *cfg);
void listener_start(void);
/* Stop accepting on TCP (shutdown); Unix too when all is true. */
void listener_stop(bool all);
void listener_close_all(void);
/* Called by the janitor: resume accepting after an fd shortage. */
void listener_retry(void);

#endif
