/* SPDX-License-Identifier: ISC */
/*
 * http: the stats (/metrics) and health (/health/live, /health/ready,
 * /health) listeners, a small HTTP/1.1 server on the same loop: GET and
 * HEAD only, bounded request heads, one timer for every connection's
 * deadline, keep-alive, non-blocking writes.
 */
#ifndef PGMUX_HTTP_H
#define PGMUX_HTTP_H

#include <stdbool.h>

struct config;
struct textbuf;

/* Bind the configured stats/health ports (before dropping root). False = die. */
bool http_open(const struct config *cfg);
void http_start(void);
/* Stop listening and close every HTTP connection. */
void http_stop(void);

/* Append the HTTP server's own metric families (requests by status, connections). */
void http_render_metrics(struct textbuf *tb);

#endif
