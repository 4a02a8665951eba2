/* SPDX-License-Identifier: ISC */
/*
 * metrics: the /metrics document, Prometheus text exposition format 0.0.4,
 * built from the same stats structures SHOW STATS reads. Names start with
 * pgmux_; per-pool series carry the labels database and user.
 */
#ifndef PGMUX_METRICS_H
#define PGMUX_METRICS_H

struct textbuf;

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Append the whole exposition to tb (check tb->failed afterwards). */
void metrics_render(struct textbuf *tb);

#endif
