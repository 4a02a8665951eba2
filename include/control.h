/* SPDX-License-Identifier: ISC */
/*
 * control: process-level actions shared by signals and the admin console
 * (implemented in main.c).
 */
#ifndef PGMUX_CONTROL_H
#define PGMUX_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

/* Re-read config and auth_file; on failure nothing changes and err says why. */
bool pgmux_reload(char *err, size_t errlen);

/* mode 1 = WAIT_FOR_SERVERS (SIGINT), 2 = WAIT_FOR_CLIENTS (SIGTERM); a second call exits. */
void pgmux_begin_shutdown(int mode, const char *why);

/* Close listeners, remove the pidfile, exit(0). */
void pgmux_exit_now(void) __attribute__((noreturn));

#endif
