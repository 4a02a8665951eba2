/* SPDX-License-Identifier: ISC */
/*
 * slab: object caches (see slab.h). Objects are allocated one at a time and
 * never returned to malloc; the free list is a singly linked chain threaded
 * through the freed objects themselves.
 */
#include "slab.h"

#include <stdlib.h>
#include <string.h>

struct slab {
    const char *name;
    size_t size;
    void *free_list;
    int total;
    int free_count;
};

struct slab *slab_create(const char *name, size_t size)
{
    struct slab *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->name = name;
    s->size = size < sizeof(void *) ? sizeof(void *) : size;
    return s;
}

void *slab_alloc(struct slab *s)
{
    void *obj = s->free_list;
    if (obj) {
        s->free_list = *(void **)obj;
        s->free_count--;
    } else {
        obj = malloc(s->size);
        if (!obj)
            return NULL;
        s->total++;
    }
    memset(obj, 0, s->size);
    return obj;
}

void slab_free(struct slab *s, void *obj)
{
    *(void **)obj = s->free_list;
    s->free_list = obj;
    s->free_count++;
}

void slab_destroy(struct slab *s)
{
    if (!s)
        return;
    while (s->free_list) {
        void *obj = s->free_list;
        s->free_list = *(void **)obj;
        free(obj);
    }
    free(s);
}

void slab_stats(const struct slab *s, const char **name, size_t *size, int *total, int *free_count)
{
    *name = s->name;
    *size = s->size;
    *total = s->total;
    *free_count = s->free_count;
}
