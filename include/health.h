/* SPDX-License-Identifier: ISC */
/*
 * health: the rules behind /health/live, /health/ready and the /health JSON
 * document, and the light probing that keeps readiness true to the
 * databases' state when no client traffic would show it.
 */
#ifndef PGMUX_HEALTH_H
#define PGMUX_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

struct pool;
struct textbuf;

/*
 * Readiness (see health.c for the rule). True when ready; otherwise false
 * with a short reason in why ("paused", "shutting down", "database p0
 * unreachable: ...").
 */
bool health_ready(char *why, size_t len);

/* Whether one pool's database counts as reachable; why (may be NULL) gets the reason if not. */
bool health_pool_reachable(const struct pool *p, char *why, size_t len);

/* The /health JSON document; returns the readiness verdict it reports. */
bool health_render(struct textbuf *tb);

/* Start the probe timer (http_start calls it when a stats or health port is open). */
void health_start(void);

#endif
