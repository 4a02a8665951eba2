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

/*
 * A run-time parameter name pgmux may put unquoted into a SET: a letter or _,
 * then letters, digits, _ or . (extension names like "app.user"), at most 63.
 */
static inline bool param_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > 63)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
        if (!alpha && (i == 0 || !((ch >= '0' && ch <= '9') || ch == '.')))
            return false;
    }
    return true;
}

#endif
