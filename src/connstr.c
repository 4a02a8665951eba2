/* SPDX-License-Identifier: ISC */
/*
 * connstr: tokenizer for the "key=value key2='quoted value'" connection
 * strings of [databases], [users] and [peers]. It only splits and unquotes;
 * what a key means is up to the caller (config.c). Parsing is done in place
 * in a caller-owned buffer: a key is NUL-terminated where it ends and a
 * quoted value is unescaped over itself, which is safe because unescaping
 * only ever shortens the text ('' becomes '). The grammar follows PgBouncer's
 * loader so existing pgbouncer.ini files parse the same way, except that
 * junk right after a closing quote is reported instead of silently eaten.
 */
#include "connstr.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const connstr_db_keys[] = {
    "dbname",
    "host",
    "port",
    "user",
    "password",
    "auth_user",
    "auth_query",
    "auth_dbname",
    "pool_size",
    "min_pool_size",
    "reserve_pool",
    "reserve_pool_size",
    "max_db_connections",
    "max_db_client_connections",
    "server_lifetime",
    "pool_mode",
    "query_wait_timeout",
    "load_balance_hosts",
    "connect_query",
    "client_encoding",
    "datestyle",
    "timezone",
    "application_name",
    NULL,
};

const char *const connstr_user_keys[] = {
    "pool_mode",
    "pool_size",
    "reserve_pool_size",
    "max_user_connections",
    "max_user_client_connections",
    "query_timeout",
    "query_wait_timeout",
    "idle_transaction_timeout",
    "transaction_timeout",
    "client_idle_timeout",
    NULL,
};

const char *const connstr_peer_keys[] = {
    "host",
    "port",
    "pool_size",
    NULL,
};

static bool connstr_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char *connstr_skip_blanks(char *p)
{
    while (connstr_is_blank(*p))
        p++;
    return p;
}

static void connstr_fail(struct connstr *cs, struct connstr_error *err, const char *where,
                         const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void connstr_fail(struct connstr *cs, struct connstr_error *err, const char *where,
                         const char *key, const char *fmt, ...)
{
    va_list ap;

    /* Poison the iterator so a caller ignoring the error cannot loop forever. */
    cs->pos = NULL;
    if (!err)
        return;
    err->offset = (size_t)(where - cs->start);
    snprintf(err->key, sizeof(err->key), "%s", key ? key : "");
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

bool connstr_key_known(const char *const *keys, const char *key)
{
    if (!keys)
        return true;
    for (; *keys; keys++) {
        /* Parameter names are case-sensitive, as in PgBouncer. */
        if (strcmp(*keys, key) == 0)
            return true;
    }
    return false;
}

void connstr_init(struct connstr *cs, char *buf, const char *const *keys)
{
    cs->pos = buf;
    cs->start = buf;
    cs->keys = keys;
}

/*
 * Unescape a single-quoted value in place. p points just after the opening
 * quote. Returns the position just after the closing quote, or NULL when the
 * string ends first. The unescaped value is NUL-terminated at its new end.
 */
static char *connstr_unquote(char *p)
{
    char *dst = p;

    for (;;) {
        if (*p == '\0')
            return NULL;
        if (*p == '\'') {
            if (p[1] != '\'')
                break;
            p++; /* '' is one literal quote: keep the second */
        }
        *dst++ = *p++;
    }
    /* p is on the closing quote; it may coincide with dst, so step first. */
    p++;
    *dst = '\0';
    return p;
}

enum connstr_status connstr_next(struct connstr *cs, const char **key, const char **value,
                                 struct connstr_error *err)
{
    char *p, *k, *kend, *v;

    if (!cs->pos) {
        connstr_fail(cs, err, cs->start, NULL, "connection string parser used after an error");
        return CONNSTR_ERROR;
    }
    p = connstr_skip_blanks(cs->pos);
    if (*p == '\0') {
        cs->pos = p;
        return CONNSTR_END;
    }

    k = p;
    while (*p && *p != '=' && !connstr_is_blank(*p))
        p++;
    kend = p;
    if (kend == k) {
        connstr_fail(cs, err, k, NULL,
                     "syntax error in connection string: missing parameter name before '='");
        return CONNSTR_ERROR;
    }
    p = connstr_skip_blanks(p);
    if (*p != '=') {
        char save = *kend;

        *kend = '\0';
        connstr_fail(cs, err, k, k, "syntax error in connection string: expected '=' after \"%s\"",
                     k);
        *kend = save;
        return CONNSTR_ERROR;
    }
    /* Terminating the key may overwrite the '=' itself; that is fine. */
    *kend = '\0';
    p = connstr_skip_blanks(p + 1);

    if (!connstr_key_known(cs->keys, k)) {
        connstr_fail(cs, err, k, k, "unrecognized connection parameter: %s", k);
        return CONNSTR_ERROR;
    }

    if (*p == '\'') {
        char *quote = p;

        v = p + 1;
        p = connstr_unquote(v);
        if (!p) {
            connstr_fail(cs, err, quote, k,
                         "unterminated quoted value for connection parameter: %s", k);
            return CONNSTR_ERROR;
        }
        if (*p != '\0' && !connstr_is_blank(*p)) {
            connstr_fail(cs, err, p, k,
                         "unexpected text after closing quote of connection parameter: %s", k);
            return CONNSTR_ERROR;
        }
        if (*p)
            p++;
    } else {
        v = p;
        while (*p && !connstr_is_blank(*p))
            p++;
        if (*p)
            *p++ = '\0';
    }
    if (*v == '\0') {
        connstr_fail(cs, err, v, k, "empty value for connection parameter: %s", k);
        return CONNSTR_ERROR;
    }

    cs->pos = p;
    *key = k;
    *value = v;
    return CONNSTR_PAIR;
}

bool connstr_parse(const char *str, const char *const *keys, connstr_pair_fn fn, void *arg,
                   struct connstr_error *err)
{
    struct connstr cs;
    struct connstr_error local;
    const char *key, *value;
    enum connstr_status st;
    char *buf;
    bool ok = true;

    if (!err)
        err = &local;
    memset(err, 0, sizeof(*err));
    buf = strdup(str);
    if (!buf) {
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        return false;
    }
    connstr_init(&cs, buf, keys);
    while ((st = connstr_next(&cs, &key, &value, err)) == CONNSTR_PAIR) {
        if (!fn(arg, key, value, err)) {
            if (err->key[0] == '\0')
                snprintf(err->key, sizeof(err->key), "%s", key);
            if (err->offset == 0)
                err->offset = (size_t)(key - buf);
            if (err->msg[0] == '\0')
                snprintf(err->msg, sizeof(err->msg), "invalid value for connection parameter: %s",
                         key);
            ok = false;
            break;
        }
    }
    if (st == CONNSTR_ERROR)
        ok = false;
    free(buf);
    return ok;
}
