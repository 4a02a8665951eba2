/* SPDX-License-Identifier: ISC */
/*
 * varcache: the tracked session parameters (client_encoding, DateStyle,
 * TimeZone, ...). Each socket keeps one slot per tracked name holding an
 * interned, reference-counted string, so "does the server match the client"
 * is a pointer comparison per slot and linking a client allocates nothing.
 */
#ifndef PGMUX_VARCACHE_H
#define PGMUX_VARCACHE_H

#include <stdbool.h>
#include <stddef.h>

#define VAR_MAX 16

struct vstr;

struct varcache {
    struct vstr *v[VAR_MAX];
};

/* Fixed names first, then the comma list in track_extra_parameters (deduplicated). */
void varcache_init_names(const char *track_extra);
int varcache_count(void);
const char *varcache_name(int idx);
/* Index of a tracked name (case-insensitive), or -1. */
int varcache_lookup(const char *name);

/* False only when out of memory. */
bool varcache_set(struct varcache *vc, int idx, const char *val);
const char *varcache_get(const struct varcache *vc, int idx); /* NULL = unset */
void varcache_copy(struct varcache *dst, const struct varcache *src);
void varcache_clear(struct varcache *vc);
bool varcache_same(const struct varcache *a, const struct varcache *b, int idx);

/*
 * Append "SET name='value';" for every slot where client has a value that
 * differs from server's, and copy those values into server (the optimistic
 * state; ParameterStatus replies then overwrite them with the canonical
 * form). Returns the length written, 0 when nothing differs, or -1 when cap
 * is too small.
 */
int varcache_build_set(const struct varcache *client, struct varcache *server, char *buf,
                       size_t cap);

#endif
