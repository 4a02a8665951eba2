/* SPDX-License-Identifier: ISC */
/*
 * varcache: tracked parameters as interned strings (see varcache.h).
 *
 * The intern table is an open-addressing hash of reference-counted strings.
 * Values repeat heavily (every client of an app has the same TimeZone), so
 * the table stays small, and comparing two sockets' values never touches the
 * characters.
 */
#include "varcache.h"

#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct vstr {
    uint32_t refcnt;
    uint32_t hash;
    uint32_t len;
    char s[];
};

static const char *const fixed_names[] = {
    "client_encoding", "DateStyle", "TimeZone", "standard_conforming_strings",
    "application_name", "search_path",
};

static char name_store[VAR_MAX][64];
static int name_count;

/* Intern table: power-of-two slots, NULL = empty, TOMB = deleted. */
#define VSTR_TOMB ((struct vstr *)1)
static struct vstr **table;
static uint32_t table_cap, table_used;

void varcache_init_names(const char *track_extra)
{
    name_count = 0;
    for (size_t i = 0; i < sizeof(fixed_names) / sizeof(fixed_names[0]); i++) {
        strncpy(name_store[name_count], fixed_names[i], sizeof(name_store[0]) - 1);
        name_count++;
    }
    const char *p = track_extra ? track_extra : "", *item;
    size_t n;
    while (name_count < VAR_MAX && csv_next(&p, &item, &n)) {
        if (n >= sizeof(name_store[0]) || !param_name_valid(item, n))
            continue; /* config.c refuses these; a name is never quoted in the SET */
        char tmp[64];
        memcpy(tmp, item, n);
        tmp[n] = 0;
        if (varcache_lookup(tmp) >= 0)
            continue;
        memcpy(name_store[name_count], tmp, n + 1);
        name_count++;
    }
}

int varcache_count(void)
{
    return name_count;
}

const char *varcache_name(int idx)
{
    return name_store[idx];
}

int varcache_lookup(const char *name)
{
    for (int i = 0; i < name_count; i++)
        if (strcasecmp(name_store[i], name) == 0)
            return i;
    return -1;
}

static uint32_t hash_str(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

static bool table_grow(void)
{
    uint32_t ncap = table_cap ? table_cap * 2 : 256;
    struct vstr **nt = calloc(ncap, sizeof(*nt));
    if (!nt)
        return false;
    for (uint32_t i = 0; i < table_cap; i++) {
        struct vstr *v = table[i];
        if (!v || v == VSTR_TOMB)
            continue;
        uint32_t j = v->hash & (ncap - 1);
        while (nt[j])
            j = (j + 1) & (ncap - 1);
        nt[j] = v;
    }
    free(table);
    table = nt;
    table_cap = ncap;
    return true;
}

static struct vstr *intern(const char *s)
{
    size_t len = strlen(s);
    uint32_t h = hash_str(s, len);
    if ((table_used + 1) * 2 > table_cap && !table_grow())
        return NULL;
    uint32_t i = h & (table_cap - 1);
    int64_t tomb = -1;
    while (table[i]) {
        struct vstr *v = table[i];
        if (v == VSTR_TOMB) {
            if (tomb < 0)
                tomb = i;
        } else if (v->hash == h && v->len == len && memcmp(v->s, s, len) == 0) {
            v->refcnt++;
            return v;
        }
        i = (i + 1) & (table_cap - 1);
    }
    struct vstr *v = malloc(sizeof(*v) + len + 1);
    if (!v)
        return NULL;
    v->refcnt = 1;
    v->hash = h;
    v->len = (uint32_t)len;
    memcpy(v->s, s, len + 1);
    if (tomb >= 0) {
        table[tomb] = v;
    } else {
        table[i] = v;
        table_used++;
    }
    return v;
}

static void vstr_unref(struct vstr *v)
{
    if (!v || --v->refcnt > 0)
        return;
    uint32_t i = v->hash & (table_cap - 1);
    while (table[i] != v)
        i = (i + 1) & (table_cap - 1);
    table[i] = VSTR_TOMB;
    free(v);
}

bool varcache_set(struct varcache *vc, int idx, const char *val)
{
    struct vstr *nv = intern(val);
    if (!nv)
        return false;
    vstr_unref(vc->v[idx]);
    vc->v[idx] = nv;
    return true;
}

const char *varcache_get(const struct varcache *vc, int idx)
{
    return vc->v[idx] ? vc->v[idx]->s : NULL;
}

void varcache_copy(struct varcache *dst, const struct varcache *src)
{
    for (int i = 0; i < VAR_MAX; i++) {
        if (dst->v[i] == src->v[i])
            continue;
        if (src->v[i])
            src->v[i]->refcnt++;
        vstr_unref(dst->v[i]);
        dst->v[i] = src->v[i];
    }
}

void varcache_clear(struct varcache *vc)
{
    for (int i = 0; i < VAR_MAX; i++) {
        vstr_unref(vc->v[i]);
        vc->v[i] = NULL;
    }
}

bool varcache_same(const struct varcache *a, const struct varcache *b, int idx)
{
    return a->v[idx] == b->v[idx];
}

/*
 * Can a search_path value go into SET as it is? Only a list of plain or
 * double-quoted identifiers may: anything else (a ';', a quote, a backslash)
 * is sent as one string literal, so a client cannot smuggle statements into
 * pgmux's internal SET.
 */
static bool is_identifier_list(const char *s, uint32_t len)
{
    uint32_t i = 0;
    bool want_item = true;
    while (i < len) {
        char ch = s[i];
        if (ch == ' ') {
            i++;
        } else if (ch == ',' && !want_item) {
            want_item = true;
            i++;
        } else if (ch == '"' && want_item) {
            i++;
            for (;;) {
                if (i >= len)
                    return false;
                if (s[i] == '"') {
                    if (i + 1 < len && s[i + 1] == '"') {
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                i++;
            }
            want_item = false;
        } else if (want_item && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                                 ch == '_' || ch == '$' || (unsigned char)ch >= 0x80)) {
            while (i < len && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                               (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '$' ||
                               (unsigned char)s[i] >= 0x80))
                i++;
            want_item = false;
        } else {
            return false;
        }
    }
    return !want_item;
}

int varcache_build_set(const struct varcache *client, struct varcache *server, char *buf,
                       size_t cap)
{
    size_t len = 0;
    int changed[VAR_MAX];
    int n_changed = 0;

    /* Build the whole statement first; the server's cache changes only if it fits. */
    for (int i = 0; i < name_count; i++) {
        struct vstr *cv = client->v[i];
        if (!cv || cv == server->v[i])
            continue;
        const char *name = name_store[i];
        bool raw = strcmp(name, "search_path") == 0 && is_identifier_list(cv->s, cv->len);
        bool backslash = memchr(cv->s, '\\', cv->len) != NULL;
        size_t need = 4 + strlen(name) + 2 + 2 * cv->len + 4;
        if (len + need + 1 > cap)
            return -1;
        len += (size_t)sprintf(buf + len, "SET %s=", name);
        if (raw) {
            memcpy(buf + len, cv->s, cv->len);
            len += cv->len;
        } else {
            /* E'' makes backslashes mean the same whatever
             * standard_conforming_strings the server has. */
            if (backslash)
                buf[len++] = 'E';
            buf[len++] = '\'';
            for (uint32_t k = 0; k < cv->len; k++) {
                if (cv->s[k] == '\'' || (backslash && cv->s[k] == '\\'))
                    buf[len++] = cv->s[k];
                buf[len++] = cv->s[k];
            }
            buf[len++] = '\'';
        }
        buf[len++] = ';';
        changed[n_changed++] = i;
    }
    buf[len] = 0;
    for (int k = 0; k < n_changed; k++) {
        int i = changed[k];
        client->v[i]->refcnt++;
        vstr_unref(server->v[i]);
        server->v[i] = client->v[i];
    }
    return (int)len;
}
