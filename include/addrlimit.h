/* SPDX-License-Identifier: ISC */
/*
 * addrlimit: what pgmux remembers about each client IP address: how many TCP
 * connections it has open, and how many of its logins failed recently. Pure:
 * no clock, no config, no logging; callers pass the time and the rules
 * (throttle.c does, for the loop).
 *
 * Memory is bounded. An address with open connections keeps its entry (there
 * are never more of those than client connections), and a caller may hold a
 * pointer to it for as long as it holds a connection. An address whose
 * connections are all gone keeps its entry only while it has failures to
 * remember, in a list of at most idle_max entries: the oldest is forgotten
 * when a new one needs room, so a flood of fresh addresses (IPv6 makes them
 * cheap) cannot grow the table. The hash is keyed with random values, so
 * nobody can choose addresses that all land in one chain.
 */
#ifndef PGMUX_ADDRLIMIT_H
#define PGMUX_ADDRLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct addrlimit;
struct addrlimit_entry;

/* When failed logins throttle an address. limit 0 = never. */
struct addrlimit_rules {
    unsigned limit; /* failures within window that throttle the address */
    double window;  /* seconds */
};

/*
 * A table that keeps at most idle_max addresses without open connections.
 * seed: 16 random bytes for the hash. NULL when out of memory.
 */
struct addrlimit *addrlimit_new(unsigned idle_max, const uint8_t seed[16]);
void addrlimit_free(struct addrlimit *t);

/*
 * One more open connection from addr (family AF_INET: 4 bytes, AF_INET6: 16
 * bytes; an IPv4-mapped IPv6 address counts as its IPv4 address). Returns its
 * entry, valid until the matching addrlimit_conn_close(); NULL for another
 * family or when out of memory (the connection is then simply not counted).
 * rules only serve to drop remembered failures that have expired.
 */
struct addrlimit_entry *addrlimit_conn_open(struct addrlimit *t, int family, const uint8_t *addr,
                                            const struct addrlimit_rules *rules, double now);

/* That connection is gone. The entry may be freed: the caller forgets it. */
void addrlimit_conn_close(struct addrlimit *t, struct addrlimit_entry *e);

/* Open connections counted for the entry's address. */
unsigned addrlimit_conns(const struct addrlimit_entry *e);

/*
 * A login from the entry's address failed. Failures are counted in a window
 * that starts at the first one; once limit of them fall within it, the
 * address is throttled until a whole window passes without a failure (each
 * further failure starts the window again). Returns true when this failure
 * is the one that throttled the address (so the caller logs it once).
 */
bool addrlimit_failed(struct addrlimit_entry *e, const struct addrlimit_rules *rules, double now);

/* Whether logins from the entry's address are throttled now. */
bool addrlimit_throttled(const struct addrlimit_entry *e, const struct addrlimit_rules *rules,
                         double now);

/* Failures remembered for the entry's address (0 once its window expired). */
unsigned addrlimit_failures(const struct addrlimit_entry *e, const struct addrlimit_rules *rules,
                            double now);

/* Entries held, and how many of them are throttled now (a walk: for /metrics). */
size_t addrlimit_size(const struct addrlimit *t);
size_t addrlimit_count_throttled(const struct addrlimit *t, const struct addrlimit_rules *rules,
                                 double now);

/* "192.0.2.1" / "2001:db8::1" of the entry's address, into buf. */
const char *addrlimit_format(const struct addrlimit_entry *e, char *buf, size_t len);

#endif
