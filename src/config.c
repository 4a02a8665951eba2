/* SPDX-License-Identifier: ISC */
/*
 * config: loads pgbouncer.ini into a fresh struct config. One sorted key
 * table drives defaults, parsing, SET and SHOW CONFIG formatting.
 *
 * The file is parsed by inih, but inih's own line handling does not match
 * PgBouncer's format (200-byte lines, inline ';' comments, continuation lines,
 * no %include, no line numbers in the handler). So inih is fed through
 * ini_parse_stream() with our own reader: the reader keeps a stack of open
 * files for %include, tracks file and line, drops comments and blank lines,
 * and turns every "key = value" line into a tiny placeholder line "k=v" while
 * the real key and raw value (any length, ';' and all) are stashed in the
 * parse context. The handler takes the stash, so it always knows file:line.
 * Because inih only ever sees "[section]" and "k=v", the global switches of
 * Debian's libinih (inline comments, multi-line, max line) cannot matter.
 *
 * Nothing here logs and nothing is global: every error goes into a struct
 * config_error, and two configs can live side by side (reload).
 */
#include "config.h"
#include "connstr.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*==== Key table ====*/

#define R  true  /* reloadable */
#define NR false /* needs a restart: changeable=no in SHOW CONFIG */

#define KEY(name_, type_, def_, rel_, ext_, min_, max_)                                            \
    {                                                                                              \
        .name = #name_, .type = (type_), .offset = offsetof(struct config, name_), .def = (def_),  \
        .reloadable = (rel_), .extension = (ext_), .min = (min_), .max = (max_),                   \
    }
#define INT(n, d, rel, lo, hi)  KEY(n, CFG_INT, d, rel, false, lo, hi)
#define BOOL(n, d, rel)         KEY(n, CFG_BOOL, d, rel, false, 0, 1)
#define TIME(n, d, rel)         KEY(n, CFG_TIME, d, rel, false, 0, 1e12)
#define STR(n, d, rel)          KEY(n, CFG_STRING, d, rel, false, 0, 0)
#define XINT(n, d, rel, lo, hi) KEY(n, CFG_INT, d, rel, true, lo, hi)
#define XSTR(n, d, rel)         KEY(n, CFG_STRING, d, rel, true, 0, 0)

#define CONFIG_DEFAULT_AUTH_QUERY                                                                  \
    "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END "              \
    "FROM pg_authid WHERE rolname=$1 AND rolcanlogin"

/*
 * Sorted by strcmp (SHOW CONFIG order; config_find_key uses bsearch). The
 * defaults are written exactly as config_format prints them, so "value ==
 * default" can be judged on text and the unit test can check every one.
 */
static const struct config_key config_key_table[] = {
    STR(admin_users, "", R),
    BOOL(application_name_add_host, "0", R),
    STR(auth_dbname, "", R),
    KEY(auth_failure_delay, CFG_TIME, "2", R, true, 0, 1e12),
    XINT(auth_failure_limit, "0", R, 0, INT_MAX),
    KEY(auth_failure_window, CFG_TIME, "60", R, true, 0, 1e12),
    STR(auth_file, "", R),
    STR(auth_hba_file, "", R),
    STR(auth_ident_file, "", R),
    STR(auth_ldap_options, "", R),
    STR(auth_query, CONFIG_DEFAULT_AUTH_QUERY, R),
    KEY(auth_type, CFG_AUTH_TYPE, "md5", R, false, 0, 0),
    STR(auth_user, "", R),
    TIME(autodb_idle_timeout, "3600", R),
    TIME(cancel_wait_timeout, "10", R),
    TIME(client_idle_timeout, "0", R),
    TIME(client_login_timeout, "60", R),
    STR(client_tls13_ciphers, "", R),
    STR(client_tls_ca_file, "", R),
    STR(client_tls_cert_file, "", R),
    STR(client_tls_ciphers, "default", R),
    STR(client_tls_dheparams, "auto", R),
    STR(client_tls_ecdhcurve, "auto", R),
    STR(client_tls_key_file, "", R),
    STR(client_tls_protocols, "secure", R),
    KEY(client_tls_sslmode, CFG_SSLMODE, "disable", R, false, 0, 0),
    STR(conffile, "", R),
    INT(default_pool_size, "20", R, 0, INT_MAX),
    BOOL(disable_pqexec, "0", NR),
    TIME(dns_max_ttl, "15", R),
    TIME(dns_nxdomain_ttl, "15", R),
    TIME(dns_zone_check_period, "0", R),
    XSTR(health_listen_addr, "127.0.0.1", NR),
    XINT(health_listen_port, "0", NR, 0, 65535),
    TIME(idle_transaction_timeout, "0", R),
    STR(ignore_startup_parameters, "", R),
    STR(job_name, "pgbouncer", NR),
    STR(listen_addr, "", NR),
    INT(listen_backlog, "128", NR, 1, INT_MAX),
    INT(listen_port, "6432", NR, 0, 65535),
    BOOL(log_connections, "1", R),
    BOOL(log_disconnections, "1", R),
    XSTR(log_format, "text", R),
    BOOL(log_pooler_errors, "1", R),
    BOOL(log_stats, "1", R),
    STR(logfile, "", R),
    STR(login_notify_message, "", R),
    INT(max_client_conn, "100", R, 1, INT_MAX),
    XINT(max_client_conn_per_addr, "0", R, 0, INT_MAX),
    INT(max_db_client_connections, "0", R, 0, INT_MAX),
    INT(max_db_connections, "0", R, 0, INT_MAX),
    INT(max_packet_size, "2147483647", R, 1, INT_MAX),
    INT(max_prepared_statements, "200", R, 0, INT_MAX),
    INT(max_user_client_connections, "0", R, 0, INT_MAX),
    INT(max_user_connections, "0", R, 0, INT_MAX),
    INT(min_pool_size, "0", R, 0, INT_MAX),
    INT(peer_id, "0", R, 0, 16383),
    STR(pidfile, "", NR),
    INT(pkt_buf, "4096", NR, 512, INT_MAX),
    TIME(pool_idle_timeout, "0", R),
    KEY(pool_mode, CFG_POOL_MODE, "session", R, false, 0, 0),
    TIME(query_timeout, "0", R),
    TIME(query_wait_notify, "5", R),
    TIME(query_wait_timeout, "120", R),
    INT(reserve_pool_size, "0", R, 0, INT_MAX),
    TIME(reserve_pool_timeout, "5", R),
    STR(resolv_conf, "", NR),
    INT(sbuf_loopcnt, "5", R, 0, INT_MAX),
    INT(scram_iterations, "4096", R, 1, INT_MAX),
    TIME(server_check_delay, "30", R),
    STR(server_check_query, "<empty>", R),
    TIME(server_connect_timeout, "15", R),
    BOOL(server_fast_close, "0", R),
    TIME(server_idle_timeout, "600", R),
    TIME(server_lifetime, "3600", R),
    TIME(server_login_retry, "15", R),
    STR(server_reset_query, "DISCARD ALL", R),
    BOOL(server_reset_query_always, "0", R),
    BOOL(server_round_robin, "0", R),
    STR(server_tls13_ciphers, "", R),
    STR(server_tls_ca_file, "", R),
    STR(server_tls_cert_file, "", R),
    STR(server_tls_ciphers, "default", R),
    STR(server_tls_key_file, "", R),
    STR(server_tls_protocols, "secure", R),
    KEY(server_tls_sslmode, CFG_SSLMODE, "prefer", R, false, 0, 0),
    STR(service_name, "pgbouncer", NR),
    BOOL(so_reuseport, "0", NR),
    XSTR(stats_allow, "", R),
    XSTR(stats_auth, "", R),
    XSTR(stats_listen_addr, "127.0.0.1", NR),
    XINT(stats_listen_port, "0", NR, 0, 65535),
    INT(stats_period, "60", R, 1, INT_MAX),
    STR(stats_users, "", R),
    TIME(suspend_timeout, "10", R),
    BOOL(syslog, "0", R),
    STR(syslog_facility, "daemon", R),
    STR(syslog_ident, "pgbouncer", R),
    BOOL(tcp_defer_accept, "1", R),
    BOOL(tcp_keepalive, "1", R),
    INT(tcp_keepcnt, "0", R, 0, INT_MAX),
    INT(tcp_keepidle, "0", R, 0, INT_MAX),
    INT(tcp_keepintvl, "0", R, 0, INT_MAX),
    INT(tcp_socket_buffer, "0", R, 0, INT_MAX),
    INT(tcp_user_timeout, "0", R, 0, INT_MAX),
    STR(track_extra_parameters, "IntervalStyle", NR),
    TIME(transaction_timeout, "0", R),
    STR(unix_socket_dir, "/tmp", NR),
    STR(unix_socket_group, "", NR),
    KEY(unix_socket_mode, CFG_OCTAL, "0777", NR, false, 0, 07777),
    STR(user, "", NR),
    INT(verbose, "0", R, 0, INT_MAX),
};

#define CONFIG_N_KEYS (sizeof(config_key_table) / sizeof(config_key_table[0]))

/*==== Enum names ====*/

struct config_name {
    const char *name;
    int value;
};

static const struct config_name config_pool_modes[] = {
    {"session", POOL_SESSION},
    {"transaction", POOL_TRANSACTION},
    {"statement", POOL_STATEMENT},
    {NULL, 0},
};

/* "peer" is only valid inside auth_hba_file, so it is not accepted here. */
static const struct config_name config_auth_types[] = {
    {"any", AUTH_ANY},
    {"trust", AUTH_TRUST},
    {"plain", AUTH_PLAIN},
    {"md5", AUTH_MD5},
    {"scram-sha-256", AUTH_SCRAM},
    {"cert", AUTH_CERT},
    {"hba", AUTH_HBA},
    {NULL, 0},
};

static const struct config_name config_sslmodes[] = {
    {"disable", SSLMODE_DISABLE},
    {"allow", SSLMODE_ALLOW},
    {"prefer", SSLMODE_PREFER},
    {"require", SSLMODE_REQUIRE},
    {"verify-ca", SSLMODE_VERIFY_CA},
    {"verify-full", SSLMODE_VERIFY_FULL},
    {NULL, 0},
};

static bool config_lookup_name(const struct config_name *names, const char *s, int *out)
{
    /* Lookup values are case-insensitive, as in PgBouncer's cf_set_lookup. */
    for (; names->name; names++) {
        if (strcasecmp(names->name, s) == 0) {
            *out = names->value;
            return true;
        }
    }
    return false;
}

static const char *config_value_name(const struct config_name *names, int value)
{
    for (; names->name; names++) {
        if (names->value == value)
            return names->name;
    }
    return "INVALID";
}

const char *config_pool_mode_name(int mode)
{
    return config_value_name(config_pool_modes, mode);
}

const char *config_auth_type_name(int type)
{
    /* peer is a legal value of the enum (hba lines) even if auth_type rejects it. */
    if (type == AUTH_PEER)
        return "peer";
    return config_value_name(config_auth_types, type);
}

const char *config_sslmode_name(int mode)
{
    return config_value_name(config_sslmodes, mode);
}

/*==== Small helpers ====*/

static void config_set_error(struct config_error *err, const char *file, int line, const char *key,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void config_set_error(struct config_error *err, const char *file, int line, const char *key,
                             const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return;
    snprintf(err->file, sizeof(err->file), "%s", file ? file : "");
    err->line = line;
    snprintf(err->key, sizeof(err->key), "%s", key ? key : "");
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

/* Replace *dst with a copy of src. False (and *dst untouched) when out of memory. */
static bool config_replace_string(char **dst, const char *src)
{
    char *copy = strdup(src);

    if (!copy)
        return false;
    free(*dst);
    *dst = copy;
    return true;
}

static void *config_field(struct config *cfg, const struct config_key *k)
{
    return (char *)cfg + k->offset;
}

static const void *config_field_const(const struct config *cfg, const struct config_key *k)
{
    return (const char *)cfg + k->offset;
}

/* Whole string must be an integer in the given base; no partial parses ("5x"). */
static bool config_parse_long(const char *s, int base, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, base);
    if (end == s || *end != '\0' || errno != 0)
        return false;
    *out = v;
    return true;
}

/*
 * Seconds as a float, like PgBouncer's parse_time: no junk, not negative.
 * Infinity and NaN are refused too because every timer would misbehave.
 */
static bool config_parse_seconds(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0)
        return false;
    if (!(v >= 0 && v < HUGE_VAL)) /* also false for NaN */
        return false;
    *out = v;
    return true;
}

/*
 * Print a double the shortest way that reads back to the same value, with no
 * exponent for whole numbers: 15 -> "15", 0.5 -> "0.5", 3600 -> "3600". This
 * is PgBouncer's SHOW CONFIG style ("%g") without %g's rounding to 6 digits.
 */
static void config_format_double(double v, char *buf, size_t len)
{
    int prec;

    if (v > -1e15 && v < 1e15 && v == (double)(long long)v) {
        snprintf(buf, len, "%lld", (long long)v);
        return;
    }
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/*==== Key table access ====*/

const struct config_key *config_keys(size_t *n)
{
    if (n)
        *n = CONFIG_N_KEYS;
    return config_key_table;
}

static int config_key_cmp(const void *name, const void *elem)
{
    return strcmp(name, ((const struct config_key *)elem)->name);
}

const struct config_key *config_find_key(const char *name)
{
    /* Key names are case-sensitive, as in PgBouncer. */
    return bsearch(name, config_key_table, CONFIG_N_KEYS, sizeof(config_key_table[0]),
                   config_key_cmp);
}

/*==== Setting one [pgbouncer] key ====*/

/*
 * stats_allow: a comma list of IPv4/IPv6 addresses, each with an optional
 * "/prefix". True when every entry parses (an empty list is fine).
 */
static bool config_check_addr_list(const char *value, char *msg, size_t msglen)
{
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ')
            p++;
        size_t n = (size_t)(p - start);
        if (n == 0)
            continue;
        char entry[64], *slash;
        unsigned char addr[16];
        bool ok = n < sizeof(entry);
        if (ok) {
            memcpy(entry, start, n);
            entry[n] = 0;
            long bits = -1;
            slash = strchr(entry, '/');
            if (slash) {
                *slash = 0;
                ok = config_parse_long(slash + 1, 10, &bits) && bits >= 0;
            }
            if (ok && inet_pton(AF_INET, entry, addr) == 1)
                ok = bits <= 32;
            else if (ok && inet_pton(AF_INET6, entry, addr) == 1)
                ok = bits <= 128;
            else
                ok = false;
        }
        if (!ok) {
            snprintf(msg, msglen, "invalid address \"%.*s\" in stats_allow: expected "
                     "addresses or networks like 127.0.0.1, 10.0.0.0/8, ::1",
                     (int)(n > 80 ? 80 : n), start);
            return false;
        }
    }
    return true;
}

/* Extra checks for string keys whose values form a closed set. */
static bool config_check_string(const struct config_key *k, const char *value, const char **store,
                                char *msg, size_t msglen)
{
    *store = value;
    if (k->offset == offsetof(struct config, log_format)) {
        if (strcasecmp(value, "text") == 0) {
            *store = "text";
        } else if (strcasecmp(value, "json") == 0) {
            *store = "json";
        } else {
            snprintf(msg, msglen, "invalid log_format \"%.80s\": expected text or json", value);
            return false;
        }
    }
    if (k->offset == offsetof(struct config, stats_allow))
        return config_check_addr_list(value, msg, msglen);
    if (k->offset == offsetof(struct config, track_extra_parameters)) {
        /* The names go unquoted into the SET pgmux sends before a client's transaction. */
        const char *p = value, *item;
        size_t n;
        while (csv_next(&p, &item, &n)) {
            if (!param_name_valid(item, n)) {
                snprintf(msg, msglen, "invalid parameter name \"%.*s\": expected letters, "
                                      "digits, _ and .", (int)(n > 80 ? 80 : n), item);
                return false;
            }
        }
    }
    return true;
}

/*
 * Parse value for key k and store it in cfg. Either the new value is stored
 * or cfg is left exactly as it was and msg explains why.
 */
static bool config_store(struct config *cfg, const struct config_key *k, const char *value,
                         char *msg, size_t msglen)
{
    long l;
    double d;
    int e;
    const char *s;

    switch (k->type) {
    case CFG_BOOL:
        /* PgBouncer reads booleans with strtol, so "on"/"true" are errors. */
        if (!config_parse_long(value, 10, &l)) {
            snprintf(msg, msglen,
                     "invalid boolean \"%.80s\": use 1 (on) or 0 (off); words like on/true "
                     "are not accepted",
                     value);
            return false;
        }
        *(int *)config_field(cfg, k) = l != 0;
        return true;
    case CFG_INT:
    case CFG_OCTAL:
        if (!config_parse_long(value, k->type == CFG_OCTAL ? 8 : 10, &l)) {
            snprintf(msg, msglen, "invalid %s \"%.80s\"",
                     k->type == CFG_OCTAL ? "octal number" : "integer", value);
            return false;
        }
        if ((double)l < k->min || (double)l > k->max) {
            if (k->type == CFG_OCTAL)
                snprintf(msg, msglen, "value \"%.80s\" out of range (%#o..%#o)", value,
                         (unsigned)k->min, (unsigned)k->max);
            else
                snprintf(msg, msglen, "value \"%.80s\" out of range (%.0f..%.0f)", value, k->min,
                         k->max);
            return false;
        }
        *(int *)config_field(cfg, k) = (int)l;
        return true;
    case CFG_TIME:
        if (!config_parse_seconds(value, &d) || d < k->min) {
            snprintf(msg, msglen, "invalid time \"%.80s\": expected a number of seconds >= 0",
                     value);
            return false;
        }
        if (d > k->max) {
            snprintf(msg, msglen, "time \"%.80s\" out of range (at most %.0f seconds)", value,
                     k->max);
            return false;
        }
        *(double *)config_field(cfg, k) = d;
        return true;
    case CFG_STRING:
        if (!config_check_string(k, value, &s, msg, msglen))
            return false;
        if (!config_replace_string(config_field(cfg, k), s)) {
            snprintf(msg, msglen, "out of memory");
            return false;
        }
        return true;
    case CFG_POOL_MODE:
        if (!config_lookup_name(config_pool_modes, value, &e)) {
            snprintf(msg, msglen,
                     "invalid pool_mode \"%.80s\": expected session, transaction or statement",
                     value);
            return false;
        }
        *(int *)config_field(cfg, k) = e;
        return true;
    case CFG_AUTH_TYPE:
        if (!config_lookup_name(config_auth_types, value, &e)) {
            if (strcasecmp(value, "peer") == 0)
                snprintf(msg, msglen, "auth_type peer is only allowed in auth_hba_file");
            else if (strcasecmp(value, "pam") == 0 || strcasecmp(value, "ldap") == 0)
                snprintf(msg, msglen, "auth_type %.80s is not supported by pgmux", value);
            else
                snprintf(msg, msglen,
                         "invalid auth_type \"%.80s\": expected any, trust, plain, md5, "
                         "scram-sha-256, cert or hba",
                         value);
            return false;
        }
        *(int *)config_field(cfg, k) = e;
        return true;
    case CFG_SSLMODE:
        if (!config_lookup_name(config_sslmodes, value, &e)) {
            snprintf(msg, msglen,
                     "invalid sslmode \"%.80s\": expected disable, allow, prefer, require, "
                     "verify-ca or verify-full",
                     value);
            return false;
        }
        *(int *)config_field(cfg, k) = e;
        return true;
    }
    snprintf(msg, msglen, "internal error: unknown key type");
    return false;
}

bool config_set(struct config *cfg, const char *key, const char *value, struct config_error *err)
{
    const struct config_key *k = config_find_key(key);
    char msg[sizeof(err->msg)];

    if (!k) {
        config_set_error(err, NULL, 0, key, "unknown configuration parameter");
        return false;
    }
    if (!k->reloadable) {
        config_set_error(err, NULL, 0, key,
                         "parameter cannot be changed at runtime; edit the config file and "
                         "restart");
        return false;
    }
    if (!config_store(cfg, k, value, msg, sizeof(msg))) {
        config_set_error(err, NULL, 0, key, "%s", msg);
        return false;
    }
    return true;
}

void config_format(const struct config *cfg, const struct config_key *k, char *buf, size_t len)
{
    const void *p = config_field_const(cfg, k);

    if (len == 0)
        return;
    switch (k->type) {
    case CFG_INT:
    case CFG_BOOL:
        snprintf(buf, len, "%d", *(const int *)p);
        return;
    case CFG_OCTAL:
        /* "0777" rather than PgBouncer's decimal 511: readable, and SET takes it back. */
        snprintf(buf, len, "%#o", (unsigned)*(const int *)p);
        return;
    case CFG_TIME:
        config_format_double(*(const double *)p, buf, len);
        return;
    case CFG_STRING:
        snprintf(buf, len, "%s", *(char *const *)p ? *(char *const *)p : "");
        return;
    case CFG_POOL_MODE:
        snprintf(buf, len, "%s", config_pool_mode_name(*(const int *)p));
        return;
    case CFG_AUTH_TYPE:
        snprintf(buf, len, "%s", config_auth_type_name(*(const int *)p));
        return;
    case CFG_SSLMODE:
        snprintf(buf, len, "%s", config_sslmode_name(*(const int *)p));
        return;
    }
    buf[0] = '\0';
}

bool config_value_equal(const struct config *a, const struct config *b, const struct config_key *k)
{
    const void *pa = config_field_const(a, k), *pb = config_field_const(b, k);
    const char *sa, *sb;

    switch (k->type) {
    case CFG_TIME:
        return *(const double *)pa == *(const double *)pb;
    case CFG_STRING:
        sa = *(char *const *)pa;
        sb = *(char *const *)pb;
        return strcmp(sa ? sa : "", sb ? sb : "") == 0;
    default:
        return *(const int *)pa == *(const int *)pb;
    }
}

bool config_copy_value(struct config *dst, const struct config *src, const struct config_key *k)
{
    const void *ps = config_field_const(src, k);
    void *pd = config_field(dst, k);
    const char *s;

    switch (k->type) {
    case CFG_TIME:
        *(double *)pd = *(const double *)ps;
        return true;
    case CFG_STRING:
        s = *(char *const *)ps;
        return config_replace_string(pd, s ? s : "");
    default:
        *(int *)pd = *(const int *)ps;
        return true;
    }
}

void config_error_format(const struct config_error *err, char *buf, size_t len)
{
    char where[300] = "";

    if (err->file[0] && err->line > 0)
        snprintf(where, sizeof(where), "%s:%d: ", err->file, err->line);
    else if (err->file[0])
        snprintf(where, sizeof(where), "%s: ", err->file);
    if (err->key[0])
        snprintf(buf, len, "%s%s: %s", where, err->key, err->msg);
    else
        snprintf(buf, len, "%s%s", where, err->msg);
}

/*==== Whole config: defaults, free, lookups ====*/

struct config *config_new_default(void)
{
    struct config *cfg = calloc(1, sizeof(*cfg));
    char msg[256];
    size_t i;

    if (!cfg)
        return NULL;
    for (i = 0; i < CONFIG_N_KEYS; i++) {
        /* Defaults go through the same parser as the file, so they are checked too. */
        if (!config_store(cfg, &config_key_table[i], config_key_table[i].def, msg, sizeof(msg))) {
            config_free(cfg);
            return NULL;
        }
    }
    return cfg;
}

static void config_db_clear(struct cfg_db *db)
{
    free(db->name);
    free(db->host);
    free(db->dbname);
    free(db->user);
    free(db->password);
    free(db->auth_user);
    free(db->auth_query);
    free(db->auth_dbname);
    free(db->load_balance_hosts);
    free(db->connect_query);
    free(db->client_encoding);
    free(db->datestyle);
    free(db->timezone);
    free(db->application_name);
    memset(db, 0, sizeof(*db));
}

void config_free(struct config *cfg)
{
    size_t i;
    int j;

    if (!cfg)
        return;
    for (i = 0; i < CONFIG_N_KEYS; i++) {
        if (config_key_table[i].type == CFG_STRING)
            free(*(char **)config_field(cfg, &config_key_table[i]));
    }
    for (j = 0; j < cfg->n_dbs; j++)
        config_db_clear(&cfg->dbs[j]);
    free(cfg->dbs);
    for (j = 0; j < cfg->n_users; j++)
        free(cfg->users[j].name);
    free(cfg->users);
    for (j = 0; j < cfg->n_peers; j++)
        free(cfg->peers[j].host);
    free(cfg->peers);
    for (j = 0; j < cfg->n_files; j++)
        free(cfg->files[j]);
    free(cfg->files);
    free(cfg);
}

const struct cfg_db *config_find_db(const struct config *cfg, const char *name)
{
    int i;

    for (i = 0; i < cfg->n_dbs; i++) {
        if (strcmp(cfg->dbs[i].name, name) == 0)
            return &cfg->dbs[i];
    }
    return NULL;
}

const struct cfg_user *config_find_user(const struct config *cfg, const char *name)
{
    int i;

    for (i = 0; i < cfg->n_users; i++) {
        if (strcmp(cfg->users[i].name, name) == 0)
            return &cfg->users[i];
    }
    return NULL;
}

/*==== [databases], [users], [peers] entries ====*/

/* How one connstr key is stored in a cfg_db / cfg_user / cfg_peer. */
enum config_entry_kind {
    ENTRY_STR,       /* char *, replaced */
    ENTRY_INT,       /* int >= 0; -1 accepted and means CONFIG_UNSET */
    ENTRY_PORT,      /* int 1..65535 */
    ENTRY_SECS,      /* double seconds >= 0; -1 accepted and means "use the global" */
    ENTRY_POOL_MODE, /* int enum pool_mode */
    ENTRY_LB,        /* char *: "round-robin" or "disable" */
};

struct config_entry_field {
    const char *key;
    enum config_entry_kind kind;
    size_t offset;
};

#define DBF(key_, kind_, field_)                                                                   \
    {                                                                                              \
        .key = #key_, .kind = kind_, .offset = offsetof(struct cfg_db, field_)                     \
    }
static const struct config_entry_field config_db_fields[] = {
    DBF(dbname, ENTRY_STR, dbname),
    DBF(host, ENTRY_STR, host),
    DBF(port, ENTRY_PORT, port),
    DBF(user, ENTRY_STR, user),
    DBF(password, ENTRY_STR, password),
    DBF(auth_user, ENTRY_STR, auth_user),
    DBF(auth_query, ENTRY_STR, auth_query),
    DBF(auth_dbname, ENTRY_STR, auth_dbname),
    DBF(pool_size, ENTRY_INT, pool_size),
    DBF(min_pool_size, ENTRY_INT, min_pool_size),
    DBF(reserve_pool, ENTRY_INT, reserve_pool),
    DBF(reserve_pool_size, ENTRY_INT, reserve_pool),
    DBF(max_db_connections, ENTRY_INT, max_db_connections),
    DBF(max_db_client_connections, ENTRY_INT, max_db_client_connections),
    DBF(server_lifetime, ENTRY_INT, server_lifetime),
    DBF(pool_mode, ENTRY_POOL_MODE, pool_mode),
    DBF(query_wait_timeout, ENTRY_INT, query_wait_timeout),
    DBF(load_balance_hosts, ENTRY_LB, load_balance_hosts),
    DBF(connect_query, ENTRY_STR, connect_query),
    DBF(client_encoding, ENTRY_STR, client_encoding),
    DBF(datestyle, ENTRY_STR, datestyle),
    DBF(timezone, ENTRY_STR, timezone),
    DBF(application_name, ENTRY_STR, application_name),
    {NULL, ENTRY_STR, 0},
};

#define USF(key_, kind_)                                                                           \
    {                                                                                              \
        .key = #key_, .kind = kind_, .offset = offsetof(struct cfg_user, key_)                     \
    }
static const struct config_entry_field config_user_fields[] = {
    USF(pool_mode, ENTRY_POOL_MODE),
    USF(pool_size, ENTRY_INT),
    {"reserve_pool_size", ENTRY_INT, offsetof(struct cfg_user, reserve_pool)},
    USF(max_user_connections, ENTRY_INT),
    USF(max_user_client_connections, ENTRY_INT),
    USF(query_timeout, ENTRY_SECS),
    USF(query_wait_timeout, ENTRY_SECS),
    USF(idle_transaction_timeout, ENTRY_SECS),
    USF(transaction_timeout, ENTRY_SECS),
    USF(client_idle_timeout, ENTRY_SECS),
    {NULL, ENTRY_STR, 0},
};

#define PEF(key_, kind_)                                                                           \
    {                                                                                              \
        .key = #key_, .kind = kind_, .offset = offsetof(struct cfg_peer, key_)                     \
    }
static const struct config_entry_field config_peer_fields[] = {
    PEF(host, ENTRY_STR),
    PEF(port, ENTRY_PORT),
    PEF(pool_size, ENTRY_INT),
    {NULL, ENTRY_STR, 0},
};

/* Store one connstr pair into the entry at base. False with msg on a bad value. */
static bool config_entry_set(const struct config_entry_field *fields, void *base, const char *key,
                             const char *value, char *msg, size_t msglen)
{
    const struct config_entry_field *f;
    void *p;
    long l;
    double d;
    int e;

    for (f = fields; f->key; f++) {
        if (strcmp(f->key, key) == 0)
            break;
    }
    if (!f->key) {
        /* connstr already refused keys outside the section's list; keep both in sync. */
        snprintf(msg, msglen, "unrecognized connection parameter: %s", key);
        return false;
    }
    p = (char *)base + f->offset;
    switch (f->kind) {
    case ENTRY_STR:
        if (!config_replace_string(p, value)) {
            snprintf(msg, msglen, "out of memory");
            return false;
        }
        return true;
    case ENTRY_INT:
        if (!config_parse_long(value, 10, &l) || l < -1 || l > INT_MAX) {
            snprintf(msg, msglen, "invalid value \"%.80s\" for %s: expected an integer >= 0", value,
                     key);
            return false;
        }
        *(int *)p = (int)l;
        return true;
    case ENTRY_PORT:
        if (!config_parse_long(value, 10, &l) || l < 1 || l > 65535) {
            snprintf(msg, msglen, "invalid port \"%.80s\": expected 1..65535", value);
            return false;
        }
        *(int *)p = (int)l;
        return true;
    case ENTRY_SECS:
        if (strcmp(value, "-1") == 0) {
            *(double *)p = -1;
            return true;
        }
        if (!config_parse_seconds(value, &d)) {
            snprintf(msg, msglen, "invalid value \"%.80s\" for %s: expected seconds >= 0", value,
                     key);
            return false;
        }
        *(double *)p = d;
        return true;
    case ENTRY_POOL_MODE:
        if (!config_lookup_name(config_pool_modes, value, &e)) {
            snprintf(msg, msglen,
                     "invalid pool_mode \"%.80s\": expected session, transaction or statement",
                     value);
            return false;
        }
        *(int *)p = e;
        return true;
    case ENTRY_LB:
        if (strcasecmp(value, "round-robin") == 0)
            value = "round-robin";
        else if (strcasecmp(value, "disable") == 0)
            value = "disable";
        else {
            snprintf(msg, msglen,
                     "invalid load_balance_hosts \"%.80s\": expected round-robin or disable",
                     value);
            return false;
        }
        if (!config_replace_string(p, value)) {
            snprintf(msg, msglen, "out of memory");
            return false;
        }
        return true;
    }
    snprintf(msg, msglen, "internal error: unknown field kind");
    return false;
}

/*
 * Run the connstr in buf (modified in place) through the field table into the
 * entry at base. On error msg says what; the entry may hold partial values,
 * which the caller frees.
 */
static bool config_entry_parse(const struct config_entry_field *fields, const char *const *keys,
                               void *base, char *buf, char *msg, size_t msglen)
{
    struct connstr cs;
    struct connstr_error cerr;
    const char *key, *value;
    enum connstr_status st;

    connstr_init(&cs, buf, keys);
    while ((st = connstr_next(&cs, &key, &value, &cerr)) == CONNSTR_PAIR) {
        if (!config_entry_set(fields, base, key, value, msg, msglen))
            return false;
    }
    if (st == CONNSTR_ERROR) {
        snprintf(msg, msglen, "%s", cerr.msg);
        return false;
    }
    return true;
}

/* Grow an array of n elements of size sz by one; NULL when out of memory. */
static void *config_grow(void *arr, int n, size_t sz)
{
    return realloc(arr, (size_t)(n + 1) * sz);
}

/*==== Parsing: reader, handler, loader ====*/

enum config_section {
    SECT_NONE,
    SECT_PGBOUNCER,
    SECT_DATABASES,
    SECT_USERS,
    SECT_PEERS,
};

static const char *const config_section_names[] = {
    [SECT_NONE] = "",       [SECT_PGBOUNCER] = "pgbouncer", [SECT_DATABASES] = "databases",
    [SECT_USERS] = "users", [SECT_PEERS] = "peers",
};

/* What inih is given for each header: fixed text, so nothing in it can surprise inih. */
static const char *const config_section_lines[] = {
    [SECT_NONE] = "",
    [SECT_PGBOUNCER] = "[pgbouncer]\n",
    [SECT_DATABASES] = "[databases]\n",
    [SECT_USERS] = "[users]\n",
    [SECT_PEERS] = "[peers]\n",
};

struct config_source {
    FILE *fp;
    const char *name; /* points into cfg->files */
    int line;
};

struct config_parse {
    struct config *cfg;
    struct config_error *err;
    struct config_source stack[CONFIG_MAX_INCLUDE_DEPTH + 1]; /* [0] is the main file */
    int depth;                                                /* files open */
    enum config_section sect;
    bool seen_main; /* a [pgbouncer] header was seen */
    bool failed;    /* err is filled; the reader stops feeding inih */

    /* The line being handled, stashed by the reader for the handler. */
    char *line; /* getline buffer; key and value point into it */
    size_t linecap;
    const char *key;
    char *value;
    const char *file;
    int lineno;
};

static void config_parse_fail(struct config_parse *p, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void config_parse_fail(struct config_parse *p, const char *key, const char *fmt, ...)
{
    va_list ap;
    char msg[sizeof(p->err->msg)];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    config_set_error(p->err, p->file, p->lineno, key, "%s", msg);
    p->failed = true;
}

/* Remember a file name in cfg->files (once) and return the stored copy. */
static const char *config_intern_file(struct config *cfg, const char *path)
{
    char **files;
    char *copy;
    int i;

    for (i = 0; i < cfg->n_files; i++) {
        if (strcmp(cfg->files[i], path) == 0)
            return cfg->files[i];
    }
    copy = strdup(path);
    if (!copy)
        return NULL;
    files = config_grow(cfg->files, cfg->n_files, sizeof(*files));
    if (!files) {
        free(copy);
        return NULL;
    }
    cfg->files = files;
    cfg->files[cfg->n_files++] = copy;
    return copy;
}

/*
 * Open path and make it the current file. For the main file (depth 0) a
 * failure is reported against the file itself; for %include against the
 * including line, which p->file/p->lineno describe at that point.
 */
static bool config_push_file(struct config_parse *p, const char *path)
{
    struct config_source *src;
    const char *name;
    FILE *fp;

    if (p->depth > CONFIG_MAX_INCLUDE_DEPTH) {
        config_parse_fail(p, NULL, "%%include nesting too deep (more than %d levels) at \"%s\"",
                          CONFIG_MAX_INCLUDE_DEPTH, path);
        return false;
    }
    name = config_intern_file(p->cfg, path);
    if (!name) {
        config_parse_fail(p, NULL, "out of memory");
        return false;
    }
    fp = fopen(path, "r");
    if (!fp) {
        if (p->depth == 0)
            config_set_error(p->err, path, 0, NULL, "could not open config file: %s",
                             strerror(errno));
        else
            config_parse_fail(p, NULL, "could not open include file \"%s\": %s", path,
                              strerror(errno));
        p->failed = true;
        return false;
    }
    src = &p->stack[p->depth++];
    src->fp = fp;
    src->name = name;
    src->line = 0;
    return true;
}

static void config_close_all(struct config_parse *p)
{
    while (p->depth > 0)
        fclose(p->stack[--p->depth].fp);
}

static char *config_trim(char *s)
{
    size_t n;

    while (isspace((unsigned char)*s))
        s++;
    n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/*
 * Parse the key at the start of s: bare (up to a blank or '='), a
 * double-quoted SQL identifier ("" = one quote) or, as libusual also allows,
 * a single-quoted name. The key is NUL-terminated in place. Returns the
 * position after it, or NULL with the failure recorded.
 */
static char *config_parse_key(struct config_parse *p, char *s, const char **key)
{
    char *dst;
    char q = *s;

    if (q == '"' || q == '\'') {
        dst = s + 1;
        *key = dst;
        s++;
        for (;;) {
            if (*s == '\0') {
                config_parse_fail(p, NULL, "syntax error: unterminated quoted name");
                return NULL;
            }
            if (*s == q) {
                if (q == '"' && s[1] == '"') {
                    s++; /* "" inside a quoted identifier is one quote */
                } else {
                    break;
                }
            }
            *dst++ = *s++;
        }
        /* s is on the closing quote, which dst never passes; step before cutting. */
        s++;
        *dst = '\0';
        if (**key == '\0') {
            config_parse_fail(p, NULL, "syntax error: empty quoted name");
            return NULL;
        }
        return s;
    }
    *key = s;
    while (*s && *s != '=' && !isspace((unsigned char)*s))
        s++;
    if (s == *key) {
        config_parse_fail(p, NULL, "syntax error: missing name before '='");
        return NULL;
    }
    return s;
}

/*
 * Look at one trimmed, non-empty, non-comment line and decide what inih gets.
 * Returns the text to hand over ("[section]" or "k=v"), or NULL when the line
 * was consumed here (%include) or failed.
 */
static const char *config_classify(struct config_parse *p, char *s)
{
    const char *key;
    char *end, *after;
    int i;

    if (strncmp(s, "%include", 8) == 0 && (s[8] == '\0' || s[8] == ' ' || s[8] == '\t')) {
        char *path = config_trim(s + 8);

        if (*path == '\0') {
            config_parse_fail(p, NULL, "%%include without a file name");
            return NULL;
        }
        config_push_file(p, path);
        return NULL;
    }

    if (*s == '[') {
        end = strchr(s, ']');
        if (!end) {
            config_parse_fail(p, NULL, "syntax error: section header without ']'");
            return NULL;
        }
        *end = '\0';
        after = config_trim(end + 1);
        if (*after != '\0' && *after != ';' && *after != '#') {
            config_parse_fail(p, NULL, "syntax error: unexpected text after section header");
            return NULL;
        }
        s = config_trim(s + 1);
        for (i = SECT_PGBOUNCER; i <= SECT_PEERS; i++) {
            if (strcmp(s, config_section_names[i]) == 0) {
                p->sect = (enum config_section)i;
                if (p->sect == SECT_PGBOUNCER)
                    p->seen_main = true;
                return config_section_lines[i];
            }
        }
        config_parse_fail(p, NULL,
                          "unknown section [%.80s]: expected [pgbouncer], [databases], [users] "
                          "or [peers]",
                          s);
        return NULL;
    }

    if (!strchr(s, '=')) {
        config_parse_fail(p, NULL,
                          "syntax error: line is not a comment, a [section] or \"key = value\"");
        return NULL;
    }
    end = config_parse_key(p, s, &key);
    if (!end)
        return NULL;
    after = end;
    while (*after == ' ' || *after == '\t')
        after++;
    if (*after != '=') {
        config_parse_fail(p, NULL, "syntax error: expected '=' after the name");
        return NULL;
    }
    *end = '\0'; /* may overwrite the '=' itself; after still points at it */
    if (p->sect == SECT_NONE) {
        config_parse_fail(p, key, "parameter outside of any section");
        return NULL;
    }
    p->key = key;
    p->value = config_trim(after + 1);
    /* A fixed, short line: inih's 200-byte limit and ';' handling never apply. */
    return "k=v\n";
}

/*
 * inih's fgets-like reader. Feeds inih one synthetic line per section header
 * or key line, reading on through comments, blank lines and %include, and
 * popping finished include files. Returns NULL at the end or after a failure,
 * which makes ini_parse_stream() return.
 */
static char *config_reader(char *str, int num, void *stream)
{
    struct config_parse *p = stream;
    struct config_source *src;
    const char *out;
    ssize_t n;
    char *s;

    while (!p->failed && p->depth > 0) {
        src = &p->stack[p->depth - 1];
        n = getline(&p->line, &p->linecap, src->fp);
        if (n < 0) {
            if (ferror(src->fp)) {
                p->file = src->name;
                p->lineno = src->line;
                config_parse_fail(p, NULL, "read error");
                return NULL;
            }
            fclose(src->fp);
            p->depth--;
            continue;
        }
        src->line++;
        p->file = src->name;
        p->lineno = src->line;
        if (strlen(p->line) != (size_t)n) {
            config_parse_fail(p, NULL, "line contains a NUL byte");
            return NULL;
        }
        s = p->line;
        if (src->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
            s += 3; /* UTF-8 byte order mark written by some editors */
        s = config_trim(s);
        /* Comments only count at the start of a line (after blanks). */
        if (*s == '\0' || *s == ';' || *s == '#')
            continue;
        out = config_classify(p, s);
        if (!out)
            continue; /* %include pushed a file, or failed (loop ends) */
        if ((size_t)num <= strlen(out)) {
            config_parse_fail(p, NULL, "internal error: inih line buffer too small");
            return NULL;
        }
        memcpy(str, out, strlen(out) + 1);
        return str;
    }
    return NULL;
}

static bool config_handle_main(struct config_parse *p)
{
    const struct config_key *k = config_find_key(p->key);
    char msg[sizeof(p->err->msg)];

    if (!k) {
        config_parse_fail(p, p->key, "unknown parameter in [pgbouncer]");
        return false;
    }
    if (!config_store(p->cfg, k, p->value, msg, sizeof(msg))) {
        config_parse_fail(p, p->key, "%s", msg);
        return false;
    }
    return true;
}

static bool config_handle_db(struct config_parse *p)
{
    struct config *cfg = p->cfg;
    struct cfg_db db, *dbs;
    char msg[sizeof(p->err->msg)];
    int i;

    if (strcmp(p->key, "pgbouncer") == 0 || strcmp(p->key, "pgmux") == 0) {
        config_parse_fail(p, p->key,
                          "database name \"%s\" is reserved for the admin console; choose "
                          "another name",
                          p->key);
        return false;
    }
    memset(&db, 0, sizeof(db));
    db.port = 5432;
    db.pool_size = db.min_pool_size = db.reserve_pool = CONFIG_UNSET;
    db.max_db_connections = db.max_db_client_connections = CONFIG_UNSET;
    db.server_lifetime = db.pool_mode = db.query_wait_timeout = CONFIG_UNSET;
    db.file = p->file;
    db.line = p->lineno;
    /* An empty value is fine: Unix socket, same database name. */
    if (!config_entry_parse(config_db_fields, connstr_db_keys, &db, p->value, msg, sizeof(msg))) {
        config_db_clear(&db);
        config_parse_fail(p, p->key, "%s", msg);
        return false;
    }
    db.name = strdup(p->key);
    if (!db.name)
        goto oom;
    /* A later definition of the same name replaces the earlier one, like PgBouncer. */
    for (i = 0; i < cfg->n_dbs; i++) {
        if (strcmp(cfg->dbs[i].name, db.name) == 0) {
            config_db_clear(&cfg->dbs[i]);
            cfg->dbs[i] = db;
            return true;
        }
    }
    dbs = config_grow(cfg->dbs, cfg->n_dbs, sizeof(*dbs));
    if (!dbs)
        goto oom;
    cfg->dbs = dbs;
    cfg->dbs[cfg->n_dbs++] = db;
    return true;
oom:
    config_db_clear(&db);
    config_parse_fail(p, p->key, "out of memory");
    return false;
}

static bool config_handle_user(struct config_parse *p)
{
    struct config *cfg = p->cfg;
    struct cfg_user user, *users;
    char msg[sizeof(p->err->msg)];
    int i;

    memset(&user, 0, sizeof(user));
    user.pool_mode = user.pool_size = user.reserve_pool = CONFIG_UNSET;
    user.max_user_connections = user.max_user_client_connections = CONFIG_UNSET;
    user.query_timeout = user.idle_transaction_timeout = user.transaction_timeout = -1;
    user.client_idle_timeout = user.query_wait_timeout = -1;
    if (!config_entry_parse(config_user_fields, connstr_user_keys, &user, p->value, msg,
                            sizeof(msg))) {
        config_parse_fail(p, p->key, "%s", msg);
        return false;
    }
    user.name = strdup(p->key);
    if (!user.name) {
        config_parse_fail(p, p->key, "out of memory");
        return false;
    }
    for (i = 0; i < cfg->n_users; i++) {
        if (strcmp(cfg->users[i].name, user.name) == 0) {
            free(cfg->users[i].name);
            cfg->users[i] = user;
            return true;
        }
    }
    users = config_grow(cfg->users, cfg->n_users, sizeof(*users));
    if (!users) {
        free(user.name);
        config_parse_fail(p, p->key, "out of memory");
        return false;
    }
    cfg->users = users;
    cfg->users[cfg->n_users++] = user;
    return true;
}

static bool config_handle_peer(struct config_parse *p)
{
    struct config *cfg = p->cfg;
    struct cfg_peer peer, *peers;
    char msg[sizeof(p->err->msg)];
    long id;
    int i;

    if (!config_parse_long(p->key, 10, &id) || id < 1 || id > 65535) {
        config_parse_fail(p, p->key, "invalid peer id: expected an integer 1..65535");
        return false;
    }
    memset(&peer, 0, sizeof(peer));
    peer.peer_id = (int)id;
    peer.port = 6432;
    peer.pool_size = CONFIG_UNSET;
    if (!config_entry_parse(config_peer_fields, connstr_peer_keys, &peer, p->value, msg,
                            sizeof(msg))) {
        free(peer.host);
        config_parse_fail(p, p->key, "%s", msg);
        return false;
    }
    for (i = 0; i < cfg->n_peers; i++) {
        if (cfg->peers[i].peer_id == peer.peer_id) {
            free(cfg->peers[i].host);
            cfg->peers[i] = peer;
            return true;
        }
    }
    peers = config_grow(cfg->peers, cfg->n_peers, sizeof(*peers));
    if (!peers) {
        free(peer.host);
        config_parse_fail(p, p->key, "out of memory");
        return false;
    }
    cfg->peers = peers;
    cfg->peers[cfg->n_peers++] = peer;
    return true;
}

/*
 * inih's handler. name and value are the reader's placeholders; the real
 * ones are in the stash (p->key, p->value) together with file:line. section
 * is the header the reader passed through, the same as p->sect.
 */
static int config_handler(void *user, const char *section, const char *name, const char *value)
{
    struct config_parse *p = user;
    bool ok;

    (void)section;
    (void)name;
    (void)value;
    switch (p->sect) {
    case SECT_PGBOUNCER:
        ok = config_handle_main(p);
        break;
    case SECT_DATABASES:
        ok = config_handle_db(p);
        break;
    case SECT_USERS:
        ok = config_handle_user(p);
        break;
    case SECT_PEERS:
        ok = config_handle_peer(p);
        break;
    default:
        config_parse_fail(p, p->key, "parameter outside of any section");
        ok = false;
        break;
    }
    return ok ? 1 : 0;
}

struct config *config_load(const char *path, struct config_error *err)
{
    struct config_error local;
    struct config_parse p;
    struct config *cfg;
    int rc;

    if (!err)
        err = &local;
    memset(err, 0, sizeof(*err));
    cfg = config_new_default();
    /* conffile is the path loaded unless the file itself sets it (PgBouncer allows that). */
    if (!cfg || !config_replace_string(&cfg->conffile, path)) {
        config_free(cfg);
        config_set_error(err, path, 0, NULL, "out of memory");
        return NULL;
    }

    memset(&p, 0, sizeof(p));
    p.cfg = cfg;
    p.err = err;
    if (!config_push_file(&p, path))
        goto fail;
    rc = ini_parse_stream(config_reader, &p, config_handler, &p);
    config_close_all(&p);
    if (p.failed)
        goto fail;
    if (rc != 0) {
        /* inih only sees lines we wrote, so this means our reader produced garbage. */
        config_set_error(err, path, 0, NULL, "internal error: inih returned %d", rc);
        goto fail;
    }
    if (!p.seen_main) {
        config_set_error(err, path, 0, NULL, "main section [pgbouncer] missing from config file");
        goto fail;
    }
    free(p.line);
    return cfg;
fail:
    config_close_all(&p);
    free(p.line);
    config_free(cfg);
    return NULL;
}
