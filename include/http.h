/* SPDX-License-Identifier: ISC */
/*
 * http: the stats (/metrics) and health (/health/live, /health/ready,
 * /health) listeners, a small HTTP/1.1 server on the same loop.
 */
#ifndef PGMUX_HTTP_H
#define PGMUX_HTTP_H

#include <stdbool.h>

struct config;

/* Bind the configured stats/health ports (before dropping root). False = die. */
bool http_open(const struct config *cfg);
void http_start(void);
void http_stop(void);

#endif
