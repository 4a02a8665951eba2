/* SPDX-License-Identifier: ISC */
/*
 * loop: the one libev loop, its ev_prepare hook (deferred frees, resumed
 * sockets, server launches) and the cached clock.
 */
#ifndef PGMUX_LOOP_H
#define PGMUX_LOOP_H

#include <ev.h>

extern struct ev_loop *loop_main;

void loop_init(void);
void loop_run(void);
void loop_stop(void);

/* The clock, read once per loop iteration. */
static inline double loop_now(void)
{
    return ev_now(loop_main);
}

#endif
