/* SPDX-License-Identifier: ISC */
/*
 * tap: a tiny TAP producer for unit tests. Each binary prints "ok N - name" or
 * "not ok N - name" lines and "1..N" at the end, and exits non-zero if any
 * check failed, which is all meson's test() needs (protocol: 'tap').
 */
#ifndef PGMUX_TAP_H
#define PGMUX_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define TAP_CHECK(cond, ...)                                                                       \
    do {                                                                                           \
        tap_n++;                                                                                   \
        if (cond) {                                                                                \
            printf("ok %d - ", tap_n);                                                             \
        } else {                                                                                   \
            tap_failed++;                                                                          \
            printf("not ok %d - %s:%d: ", tap_n, __FILE__, __LINE__);                              \
        }                                                                                          \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
    } while (0)

#define TAP_STR_EQ(a, b, name)                                                                     \
    do {                                                                                           \
        const char *tap_a_ = (a), *tap_b_ = (b);                                                   \
        int tap_ok_ = tap_a_ && tap_b_ && strcmp(tap_a_, tap_b_) == 0;                             \
        TAP_CHECK(tap_ok_, "%s", name);                                                            \
        if (!tap_ok_)                                                                              \
            printf("#   got '%s' expected '%s'\n", tap_a_ ? tap_a_ : "(null)",                     \
                   tap_b_ ? tap_b_ : "(null)");                                                    \
    } while (0)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
