/* SPDX-License-Identifier: ISC */
/*
 * util: small string helpers shared by several modules.
 */
#ifndef PGMUX_UTIL_H
#define PGMUX_UTIL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Walk a comma-separated list ("a, b,c"): each call sets item and len to the
 * next entry with surrounding blanks removed and returns true; false at the
 * end. Empty entries are skipped.
 */
static inline bool csv_next(const char **pos, const char **item, size_t *len)
{
    const char *p = *pos;
    for (;;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p) {
            *pos = p;
            return false;
        }
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && end[-1] == ' ')
            end--;
        if (end > start) {
            *item = start;
            *len = (size_t)(end - start);
            *pos = p;
            return true;
        }
    }
}

#endif
