/* SPDX-License-Identifier: ISC */
/*
 * janitor: one timer for every connection: timeouts, pool sizes, server
 * lifetime and idle checks, retry of failed logins, and shutdown progress.
 */
#ifndef PGMUX_JANITOR_H
#define PGMUX_JANITOR_H

void janitor_start(void);

#endif
