/* SPDX-License-Identifier: ISC */
/*
 * slab: a cache of equally sized objects whose freed members stay for reuse,
 * so connection churn costs no malloc once warm. Objects come back zeroed.
 */
#ifndef PGMUX_SLAB_H
#define PGMUX_SLAB_H

#include <stddef.h>

struct slab;

struct slab *slab_create(const char *name, size_t size);
void *slab_alloc(struct slab *s); /* zeroed; NULL when out of memory */
void slab_free(struct slab *s, void *obj);
/* Free the cache and its free list; objects still in use remain the caller's to free. */
void slab_destroy(struct slab *s);
void slab_stats(const struct slab *s, const char **name, size_t *size, int *total, int *free_count);

#endif
