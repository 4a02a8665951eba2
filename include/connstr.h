/* SPDX-License-Identifier: ISC */
/*
 * connstr: the libpq-like "key=value key2='quoted value' ..." strings that
 * make up the values of [databases], [users] and [peers] in pgbouncer.ini.
 *
 * Grammar (PgBouncer's): pairs separated by spaces or tabs; a key runs up to
 * '=' or a blank; blanks may surround '='; a value is either a run of
 * non-blank bytes or a single-quoted string in which '' stands for one quote.
 * A quoted value must be followed by a blank or the end. Empty values (also
 * '') are errors, and so is a key missing from the caller's list of accepted
 * keys ("unrecognized connection parameter: x").
 *
 * The iterator works in place on a buffer the caller owns and may modify (it
 * NUL-terminates keys and unescapes quoted values where they lie), so there is
 * no allocation and no length limit; the returned pointers live as long as
 * that buffer. There is no global state.
 */
#ifndef PGMUX_CONNSTR_H
#define PGMUX_CONNSTR_H

#include <stdbool.h>
#include <stddef.h>

struct connstr_error {
    size_t offset; /* byte offset in the original string where the problem starts */
    char key[64];  /* the parameter concerned, "" when not known */
    char msg[192]; /* complete sentence fragment, e.g. "unrecognized connection parameter: foo" */
};

/* Iterator state; treat as opaque, set up with connstr_init(). */
struct connstr {
    char *pos;               /* next byte to parse */
    char *start;             /* beginning of the buffer, for error offsets */
    const char *const *keys; /* NULL-terminated list of accepted keys; NULL = any key */
};

enum connstr_status {
    CONNSTR_ERROR = -1, /* err filled; the iterator must not be used further */
    CONNSTR_END = 0,    /* no more pairs */
    CONNSTR_PAIR = 1,   /* *key and *value set */
};

/*
 * Start iterating over buf, which is modified in place while parsing. keys is
 * the NULL-terminated list of parameter names accepted (one of the
 * connstr_*_keys lists below), or NULL to accept any name.
 */
void connstr_init(struct connstr *cs, char *buf, const char *const *keys);

/*
 * Parse the next pair. On CONNSTR_PAIR, *key and *value point into the buffer
 * given to connstr_init (value unquoted, never empty). err may be NULL.
 */
enum connstr_status connstr_next(struct connstr *cs, const char **key, const char **value,
                                 struct connstr_error *err);

/*
 * Called once per pair by connstr_parse(). Return false to stop; fill err->msg
 * to explain (err->key and err->offset are filled in by connstr_parse if the
 * callback leaves them empty/zero).
 */
typedef bool (*connstr_pair_fn)(void *arg, const char *key, const char *value,
                                struct connstr_error *err);

/*
 * Convenience wrapper: copy str, iterate over it and call fn for each pair.
 * True when the whole string parsed and every callback returned true. The
 * key/value pointers given to fn are valid only during that call.
 */
bool connstr_parse(const char *str, const char *const *keys, connstr_pair_fn fn, void *arg,
                   struct connstr_error *err);

/* True when key is in the NULL-terminated list keys (NULL list: always true). */
bool connstr_key_known(const char *const *keys, const char *key);

/* Accepted keys per section (PGBOUNCER.md 1.2, 1.3, 1.4). NULL-terminated. */
extern const char *const connstr_db_keys[];
extern const char *const connstr_user_keys[];
extern const char *const connstr_peer_keys[];

#endif
