/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for src/config.c. Fixtures live in test/unit/data (path from
 * meson as PGMUX_TEST_DATA); small cases are written to a temporary
 * directory so their line numbers can be read right here. %include is
 * relative to the working directory, as in PgBouncer, so each load first
 * changes into the directory that holds the fixture.
 */
#include "config.h"
#include "tap.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PGMUX_TEST_DATA
#error "PGMUX_TEST_DATA must point at test/unit/data"
#endif

static char tmpdir[] = "/tmp/pgmux-unit-config-XXXXXX";
static char written[32][64];
static int n_written;

static void write_tmp_n(const char *name, const char *text, size_t len)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fwrite(text, 1, len, f);
    fclose(f);
    if (n_written < 32)
        snprintf(written[n_written++], sizeof(written[0]), "%s", name);
}

static void write_tmp(const char *name, const char *text)
{
    write_tmp_n(name, text, strlen(text));
}

static struct config *load_in(const char *dir, const char *name, struct config_error *err)
{
    if (chdir(dir) != 0) {
        perror(dir);
        exit(2);
    }
    memset(err, 0x55, sizeof(*err)); /* garbage, so stale fields would show */
    return config_load(name, err);
}

/* Write text as t.ini in the temp dir and load it. */
static struct config *load_text(const char *text, struct config_error *err)
{
    write_tmp("t.ini", text);
    return load_in(tmpdir, "t.ini", err);
}

/* Load text that must fail; check file, line, key and a piece of the message. */
static void expect_error(const char *text, int line, const char *key, const char *msg_part,
                         const char *what)
{
    struct config_error err;
    struct config *cfg = load_text(text, &err);

    TAP_CHECK(cfg == NULL, "%s: load fails", what);
    config_free(cfg);
    TAP_STR_EQ(err.file, "t.ini", what);
    TAP_CHECK(err.line == line, "%s: line %d (got %d)", what, line, err.line);
    TAP_STR_EQ(err.key, key, what);
    TAP_CHECK(strstr(err.msg, msg_part) != NULL, "%s: message has \"%s\" (got \"%s\")", what,
              msg_part, err.msg);
}

static const char *fmt(const struct config *cfg, const char *key)
{
    static char buf[1024];
    const struct config_key *k = config_find_key(key);

    if (!k)
        return "(no such key)";
    config_format(cfg, k, buf, sizeof(buf));
    return buf;
}

/*==== Key table ====*/

/* Every [pgbouncer] key of PGBOUNCER.md 1.5. */
static const char *const pgbouncer_keys[] = {
    "logfile",
    "pidfile",
    "listen_addr",
    "listen_port",
    "unix_socket_dir",
    "unix_socket_mode",
    "unix_socket_group",
    "user",
    "listen_backlog",
    "so_reuseport",
    "peer_id",
    "conffile",
    "job_name",
    "service_name",
    "verbose",
    "pool_mode",
    "max_client_conn",
    "default_pool_size",
    "min_pool_size",
    "reserve_pool_size",
    "reserve_pool_timeout",
    "max_db_connections",
    "max_db_client_connections",
    "max_user_connections",
    "max_user_client_connections",
    "server_round_robin",
    "max_prepared_statements",
    "track_extra_parameters",
    "ignore_startup_parameters",
    "disable_pqexec",
    "application_name_add_host",
    "stats_period",
    "scram_iterations",
    "auth_type",
    "auth_file",
    "auth_hba_file",
    "auth_ident_file",
    "auth_user",
    "auth_query",
    "auth_dbname",
    "auth_ldap_options",
    "admin_users",
    "stats_users",
    "syslog",
    "syslog_ident",
    "syslog_facility",
    "log_connections",
    "log_disconnections",
    "log_pooler_errors",
    "log_stats",
    "server_reset_query",
    "server_reset_query_always",
    "server_check_delay",
    "server_check_query",
    "server_fast_close",
    "server_lifetime",
    "server_idle_timeout",
    "server_connect_timeout",
    "server_login_retry",
    "client_login_timeout",
    "autodb_idle_timeout",
    "pool_idle_timeout",
    "dns_max_ttl",
    "dns_nxdomain_ttl",
    "dns_zone_check_period",
    "resolv_conf",
    "query_wait_notify",
    "login_notify_message",
    "query_timeout",
    "query_wait_timeout",
    "cancel_wait_timeout",
    "client_idle_timeout",
    "idle_transaction_timeout",
    "transaction_timeout",
    "suspend_timeout",
    "pkt_buf",
    "max_packet_size",
    "sbuf_loopcnt",
    "tcp_defer_accept",
    "tcp_socket_buffer",
    "tcp_keepalive",
    "tcp_keepcnt",
    "tcp_keepidle",
    "tcp_keepintvl",
    "tcp_user_timeout",
    "client_tls_sslmode",
    "client_tls_key_file",
    "client_tls_cert_file",
    "client_tls_ca_file",
    "client_tls_protocols",
    "client_tls_ciphers",
    "client_tls13_ciphers",
    "client_tls_ecdhcurve",
    "client_tls_dheparams",
    "server_tls_sslmode",
    "server_tls_ca_file",
    "server_tls_key_file",
    "server_tls_cert_file",
    "server_tls_protocols",
    "server_tls_ciphers",
    "server_tls13_ciphers",
};

static const char *const extension_keys[] = {
    "stats_listen_addr",  "stats_listen_port", "health_listen_addr",
    "health_listen_port", "log_format",        "stats_auth",
    "stats_allow",        "max_client_conn_per_addr", "auth_failure_limit",
    "auth_failure_window", "auth_failure_delay",
};

static const char *const nr_keys[] = {
    "pidfile",          "listen_addr",       "listen_port",  "unix_socket_dir",
    "unix_socket_mode", "unix_socket_group", "user",         "listen_backlog",
    "so_reuseport",     "job_name",          "service_name", "track_extra_parameters",
    "disable_pqexec",   "resolv_conf",       "pkt_buf",
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void test_key_table(void)
{
    size_t n, i, j, missing = 0, unsorted = 0, dup_offsets = 0, wrong_nr = 0, not_found = 0;
    const struct config_key *keys = config_keys(&n);

    TAP_CHECK(N_OF(pgbouncer_keys) == 101, "reference list has PgBouncer's 101 keys");
    TAP_CHECK(n == 112, "table has 101 PgBouncer keys + 11 extensions (got %zu)", n);
    for (i = 1; i < n; i++) {
        if (strcmp(keys[i - 1].name, keys[i].name) >= 0) {
            unsorted++;
            printf("# not sorted: %s >= %s\n", keys[i - 1].name, keys[i].name);
        }
    }
    TAP_CHECK(unsorted == 0, "table is strictly sorted (SHOW CONFIG order, bsearch)");
    for (i = 0; i < n; i++) {
        for (j = i + 1; j < n; j++) {
            if (keys[i].offset == keys[j].offset)
                dup_offsets++;
        }
        if (config_find_key(keys[i].name) != &keys[i])
            not_found++;
    }
    TAP_CHECK(dup_offsets == 0, "every key has its own struct field");
    TAP_CHECK(not_found == 0, "config_find_key finds every key");
    for (i = 0; i < N_OF(pgbouncer_keys); i++) {
        const struct config_key *k = config_find_key(pgbouncer_keys[i]);
        if (!k || k->extension) {
            missing++;
            printf("# missing or flagged extension: %s\n", pgbouncer_keys[i]);
        }
    }
    TAP_CHECK(missing == 0, "every PgBouncer key is in the table, not as an extension");
    missing = 0;
    for (i = 0; i < N_OF(extension_keys); i++) {
        const struct config_key *k = config_find_key(extension_keys[i]);
        if (!k || !k->extension)
            missing++;
    }
    TAP_CHECK(missing == 0, "the 11 pgmux keys are present and flagged as extensions");
    for (i = 0; i < n; i++) {
        bool nr = false;
        for (j = 0; j < N_OF(nr_keys); j++)
            nr = nr || strcmp(nr_keys[j], keys[i].name) == 0;
        if (keys[i].extension && strstr(keys[i].name, "listen_"))
            nr = true; /* our listeners are bound once, like listen_addr */
        if (keys[i].reloadable == nr) {
            wrong_nr++;
            printf("# reloadable flag wrong: %s\n", keys[i].name);
        }
    }
    TAP_CHECK(wrong_nr == 0, "reloadable=false exactly for the NR keys");
    TAP_CHECK(config_find_key("Listen_Port") == NULL, "lookup is case-sensitive");
    TAP_CHECK(config_find_key("nope") == NULL, "unknown key not found");
}

/*==== Defaults ====*/

static void test_defaults(void)
{
    struct config *cfg = config_new_default();
    size_t n, i, bad = 0, nulls = 0;
    const struct config_key *keys = config_keys(&n);

    TAP_CHECK(cfg != NULL, "config_new_default");
    if (!cfg)
        return;
    for (i = 0; i < n; i++) {
        char buf[512];

        config_format(cfg, &keys[i], buf, sizeof(buf));
        if (strcmp(buf, keys[i].def) != 0) {
            bad++;
            printf("# %s: value '%s' default '%s'\n", keys[i].name, buf, keys[i].def);
        }
        if (keys[i].type == CFG_STRING && *(char **)((char *)cfg + keys[i].offset) == NULL)
            nulls++;
    }
    TAP_CHECK(bad == 0, "every value formats exactly as its default column");
    TAP_CHECK(nulls == 0, "no string is NULL");

    TAP_CHECK(cfg->pool_mode == POOL_SESSION, "pool_mode session");
    TAP_CHECK(cfg->auth_type == AUTH_MD5, "auth_type md5");
    TAP_CHECK(cfg->listen_port == 6432, "listen_port 6432");
    TAP_STR_EQ(cfg->listen_addr, "", "listen_addr empty");
    TAP_STR_EQ(cfg->unix_socket_dir, "/tmp", "unix_socket_dir /tmp");
    TAP_CHECK(cfg->unix_socket_mode == 0777, "unix_socket_mode 0777");
    TAP_STR_EQ(cfg->server_check_query, "<empty>", "server_check_query <empty>");
    TAP_STR_EQ(cfg->server_reset_query, "DISCARD ALL", "server_reset_query");
    TAP_STR_EQ(cfg->auth_query,
               "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END "
               "FROM pg_authid WHERE rolname=$1 AND rolcanlogin",
               "auth_query default honours VALID UNTIL");
    TAP_STR_EQ(cfg->track_extra_parameters, "IntervalStyle", "track_extra_parameters");
    TAP_CHECK(cfg->server_tls_sslmode == SSLMODE_PREFER, "server_tls_sslmode prefer");
    TAP_CHECK(cfg->client_tls_sslmode == SSLMODE_DISABLE, "client_tls_sslmode disable");
    TAP_CHECK(cfg->pkt_buf == 4096, "pkt_buf 4096");
    TAP_CHECK(cfg->max_packet_size == 2147483647, "max_packet_size 2147483647");
    TAP_CHECK(cfg->sbuf_loopcnt == 5, "sbuf_loopcnt 5");
    TAP_CHECK(cfg->tcp_keepalive == 1 && cfg->tcp_defer_accept == 1, "tcp_keepalive/defer 1");
    TAP_CHECK(cfg->max_client_conn == 100 && cfg->default_pool_size == 20, "pool limits");
    TAP_CHECK(cfg->server_lifetime == 3600.0 && cfg->server_idle_timeout == 600.0,
              "server lifetimes");
    TAP_CHECK(cfg->query_wait_timeout == 120.0 && cfg->query_timeout == 0.0, "query timeouts");
    TAP_CHECK(cfg->reserve_pool_timeout == 5.0 && cfg->server_check_delay == 30.0,
              "reserve/check timeouts");
    TAP_CHECK(cfg->max_prepared_statements == 200 && cfg->scram_iterations == 4096,
              "prepared statements / scram iterations");
    TAP_CHECK(cfg->log_connections == 1 && cfg->syslog == 0, "logging bools");
    TAP_STR_EQ(cfg->log_format, "text", "log_format text");
    TAP_CHECK(cfg->stats_listen_port == 0 && cfg->health_listen_port == 0,
              "stats/health listeners off");
    TAP_CHECK(cfg->n_dbs == 0 && cfg->n_users == 0 && cfg->n_peers == 0 && cfg->n_files == 0,
              "no sections, no files");
    config_free(cfg);
    config_free(NULL);
    TAP_CHECK(1, "config_free(NULL) is harmless");
}

/*==== The full fixture ====*/

static void test_full(void)
{
    struct config_error err;
    struct config *cfg = load_in(PGMUX_TEST_DATA, "full.ini", &err);
    const struct cfg_db *db;
    const struct cfg_user *u;

    TAP_CHECK(cfg != NULL, "full.ini loads (%s:%d %s %s)", cfg ? "" : err.file, cfg ? 0 : err.line,
              cfg ? "" : err.key, cfg ? "" : err.msg);
    if (!cfg)
        return;
    TAP_STR_EQ(cfg->conffile, "full.ini", "conffile is the path loaded");
    TAP_STR_EQ(cfg->listen_addr, "127.0.0.1,::1", "string");
    TAP_CHECK(cfg->listen_port == 6543, "int");
    TAP_CHECK(cfg->unix_socket_mode == 0750, "octal");
    TAP_STR_EQ(fmt(cfg, "unix_socket_mode"), "0750", "octal formats with a leading 0");
    TAP_CHECK(cfg->pool_mode == POOL_TRANSACTION, "pool_mode, case-insensitive");
    TAP_CHECK(cfg->auth_type == AUTH_SCRAM, "auth_type, case-insensitive");
    TAP_CHECK(cfg->server_tls_sslmode == SSLMODE_VERIFY_FULL, "sslmode, case-insensitive");
    TAP_CHECK(cfg->client_tls_sslmode == SSLMODE_REQUIRE, "client sslmode");
    TAP_CHECK(cfg->server_connect_timeout == 2.5, "time with a fraction");
    TAP_CHECK(cfg->query_wait_timeout == 0.0, "time 0");
    TAP_CHECK(cfg->log_connections == 0 && cfg->tcp_keepalive == 0 && cfg->so_reuseport == 1,
              "bools 0 and 1");
    TAP_CHECK(cfg->max_client_conn == 5000, "max_client_conn");
    TAP_STR_EQ(cfg->server_reset_query, "DISCARD ALL; SELECT 1", "';' inside a value is kept");
    TAP_STR_EQ(cfg->auth_query, "SELECT usename, passwd FROM pg_shadow WHERE usename=$1",
               "'=' inside a value is kept");
    TAP_CHECK(cfg->stats_listen_port == 9127 && cfg->health_listen_port == 8080, "extension ports");
    TAP_STR_EQ(cfg->log_format, "json", "log_format, case-insensitive, stored lowercase");
    TAP_STR_EQ(cfg->ignore_startup_parameters, "extra_float_digits,options", "list string");
    TAP_CHECK(cfg->verbose == 2, "key from the included file");
    TAP_CHECK(cfg->server_lifetime == 1800.5, "time from the included file");
    TAP_STR_EQ(fmt(cfg, "server_lifetime"), "1800.5", "time formats as a plain number");
    TAP_CHECK(cfg->default_pool_size == 9,
              "later key wins: 7 (indented), 8 (include), 9 (after include) -> %d",
              cfg->default_pool_size);
    TAP_CHECK(cfg->n_files == 2, "two files read");
    TAP_STR_EQ(cfg->n_files == 2 ? cfg->files[1] : NULL, "full_include.ini", "include recorded");

    TAP_CHECK(cfg->n_dbs == 6, "6 databases (got %d)", cfg->n_dbs);
    db = config_find_db(cfg, "inc_db");
    TAP_CHECK(db && db->line == 5 && strcmp(db->file, "full_include.ini") == 0,
              "db from include remembers its file and line");
    db = config_find_db(cfg, "app");
    TAP_CHECK(db != NULL, "db app");
    if (db) {
        TAP_STR_EQ(db->host, "127.0.0.1", "app host");
        TAP_CHECK(db->port == 5432, "app port");
        TAP_STR_EQ(db->dbname, "appdb", "app dbname");
        TAP_CHECK(db->pool_size == 10, "app pool_size");
        TAP_CHECK(db->pool_mode == POOL_STATEMENT, "app pool_mode");
        TAP_CHECK(db->min_pool_size == CONFIG_UNSET && db->reserve_pool == CONFIG_UNSET &&
                      db->max_db_connections == CONFIG_UNSET &&
                      db->query_wait_timeout == CONFIG_UNSET,
                  "unset db ints are CONFIG_UNSET");
        TAP_CHECK(db->user == NULL && db->load_balance_hosts == NULL, "unset db strings NULL");
        TAP_CHECK(db->line == 29 && strcmp(db->file, "full.ini") == 0, "app at full.ini:29");
    }
    db = config_find_db(cfg, "weird db\"name");
    TAP_CHECK(db != NULL, "double-quoted db name with \"\" escape");
    TAP_STR_EQ(db ? db->host : NULL, "/var/run/postgresql", "quoted db host");
    db = config_find_db(cfg, "sock");
    TAP_CHECK(db && !db->host && !db->dbname && db->port == 5432,
              "empty value: Unix socket, same name, port 5432");
    db = config_find_db(cfg, "*");
    TAP_CHECK(db && db->port == 6000, "'*' fallback entry");
    db = config_find_db(cfg, "app2");
    TAP_CHECK(db != NULL, "db app2 (a line over 200 bytes)");
    if (db) {
        TAP_STR_EQ(db->user, "u", "user");
        TAP_STR_EQ(db->password, "p'w d", "quoted password");
        TAP_STR_EQ(db->auth_user, "au", "auth_user");
        TAP_STR_EQ(db->auth_query, "SELECT 1", "auth_query");
        TAP_STR_EQ(db->auth_dbname, "adb", "auth_dbname");
        TAP_CHECK(db->min_pool_size == 1 && db->reserve_pool == 2 && db->max_db_connections == 3 &&
                      db->max_db_client_connections == 4 && db->server_lifetime == 5 &&
                      db->query_wait_timeout == 6,
                  "db ints");
        TAP_STR_EQ(db->load_balance_hosts, "disable", "load_balance_hosts lowercased");
        TAP_STR_EQ(db->connect_query, "SET a=1", "connect_query");
        TAP_STR_EQ(db->client_encoding, "UTF8", "client_encoding");
        TAP_STR_EQ(db->datestyle, "ISO", "datestyle");
        TAP_STR_EQ(db->timezone, "UTC", "timezone");
        TAP_STR_EQ(db->application_name, "myapp", "application_name (last key of the line)");
        TAP_CHECK(db->pool_size == CONFIG_UNSET && db->pool_mode == CONFIG_UNSET,
                  "app2 pool_size/pool_mode unset");
    }
    TAP_CHECK(config_find_db(cfg, "nope") == NULL, "unknown db is NULL");

    TAP_CHECK(cfg->n_users == 2, "2 users");
    u = config_find_user(cfg, "alice");
    TAP_CHECK(u != NULL, "user alice");
    if (u) {
        TAP_CHECK(u->pool_mode == POOL_SESSION && u->pool_size == 3 && u->reserve_pool == 1,
                  "user pool settings");
        TAP_CHECK(u->max_user_connections == 10 && u->max_user_client_connections == 20,
                  "user limits");
        TAP_CHECK(u->query_timeout == 1.5 && u->query_wait_timeout == 2 &&
                      u->idle_transaction_timeout == 3 && u->transaction_timeout == 4 &&
                      u->client_idle_timeout == 5,
                  "user timeouts");
    }
    u = config_find_user(cfg, "bob");
    TAP_CHECK(u && u->pool_mode == CONFIG_UNSET && u->pool_size == CONFIG_UNSET &&
                  u->max_user_connections == CONFIG_UNSET && u->query_timeout < 0 &&
                  u->client_idle_timeout < 0 && u->transaction_timeout < 0,
              "empty user entry: everything unset");
    TAP_CHECK(config_find_user(cfg, "carol") == NULL, "unknown user is NULL");

    TAP_CHECK(cfg->n_peers == 2, "2 peers");
    if (cfg->n_peers == 2) {
        TAP_CHECK(cfg->peers[0].peer_id == 1 && cfg->peers[0].port == 6433 &&
                      cfg->peers[0].pool_size == 4 && strcmp(cfg->peers[0].host, "10.0.0.1") == 0,
                  "peer 1");
        TAP_CHECK(cfg->peers[1].peer_id == 2 && cfg->peers[1].port == 6432 &&
                      cfg->peers[1].pool_size == CONFIG_UNSET,
                  "peer 2 defaults: port 6432, pool_size unset");
    }
    config_free(cfg);
}

/*==== %include ====*/

static void test_include_errors(void)
{
    struct config_error err;
    struct config *cfg;
    char line[512];

    cfg = load_in(PGMUX_TEST_DATA, "missing_include.ini", &err);
    TAP_CHECK(cfg == NULL, "missing include file fails");
    TAP_STR_EQ(err.file, "missing_include.ini", "error names the including file");
    TAP_CHECK(err.line == 3, "error at the %%include line (got %d)", err.line);
    TAP_CHECK(strstr(err.msg, "does_not_exist.ini") && strstr(err.msg, "No such file"),
              "message names the missing file: %s", err.msg);

    cfg = load_in(PGMUX_TEST_DATA, "nest_self.ini", &err);
    TAP_CHECK(cfg == NULL, "self-include hits the nesting limit");
    TAP_STR_EQ(err.file, "nest_self.ini", "nesting error file");
    TAP_CHECK(err.line == 2, "nesting error line 2 (got %d)", err.line);
    TAP_CHECK(strstr(err.msg, "nesting too deep") != NULL, "nesting message: %s", err.msg);

    cfg = load_in(PGMUX_TEST_DATA, "err_in_include.ini", &err);
    TAP_CHECK(cfg == NULL, "error inside an included file fails");
    TAP_STR_EQ(err.file, "err_included.ini", "error names the included file");
    TAP_CHECK(err.line == 3, "error at the included file's line 3 (got %d)", err.line);
    TAP_STR_EQ(err.key, "pool_mode", "error names the key");
    config_error_format(&err, line, sizeof(line));
    TAP_STR_EQ(line,
               "err_included.ini:3: pool_mode: invalid pool_mode \"bogus\": expected session, "
               "transaction or statement",
               "config_error_format");

    /* Exactly at the limit: main + 10 nested includes loads. */
    write_tmp("n10.ini", "[pgbouncer]\nlisten_port = 1010\n");
    write_tmp("n9.ini", "%include n10.ini\n");
    write_tmp("n8.ini", "%include n9.ini\n");
    write_tmp("n7.ini", "%include n8.ini\n");
    write_tmp("n6.ini", "%include n7.ini\n");
    write_tmp("n5.ini", "%include n6.ini\n");
    write_tmp("n4.ini", "%include n5.ini\n");
    write_tmp("n3.ini", "%include n4.ini\n");
    write_tmp("n2.ini", "%include n3.ini\n");
    write_tmp("n1.ini", "%include n2.ini\n");
    write_tmp("n0.ini", "; main\n%include n1.ini\nverbose = 1\n");
    cfg = load_in(tmpdir, "n0.ini", &err);
    TAP_CHECK(cfg && cfg->listen_port == 1010 && cfg->verbose == 1 && cfg->n_files == 11,
              "10 nested includes are allowed and parsing resumes after them");
    config_free(cfg);
    write_tmp("n10.ini", "%include n11.ini\n");
    write_tmp("n11.ini", "[pgbouncer]\n");
    cfg = load_in(tmpdir, "n0.ini", &err);
    TAP_CHECK(cfg == NULL && err.line == 1 && strcmp(err.file, "n10.ini") == 0,
              "an 11th nested include is refused at n10.ini:1 (%s:%d)", err.file, err.line);
    config_free(cfg);

    expect_error("[pgbouncer]\n%include   \n", 2, "", "without a file name", "bare %include");
}

/*==== Syntax and value errors with file:line ====*/

static void test_errors(void)
{
    struct config_error err;
    struct config *cfg;

    cfg = load_in(tmpdir, "no_such_file.ini", &err);
    TAP_CHECK(cfg == NULL && strcmp(err.file, "no_such_file.ini") == 0 && err.line == 0 &&
                  strstr(err.msg, "could not open config file"),
              "missing main file: %s", err.msg);

    expect_error("[pgbouncer]\nlisten_port = 6432\nbogus_key = 1\n", 3, "bogus_key",
                 "unknown parameter", "unknown key");
    expect_error("[pgbouncer]\nListen_Port = 6432\n", 2, "Listen_Port", "unknown parameter",
                 "key names are case-sensitive");
    expect_error("[pgbouncer]\n\n; c\nlog_connections = on\n", 4, "log_connections",
                 "invalid boolean \"on\"", "bool 'on'");
    expect_error("[pgbouncer]\nsyslog = true\n", 2, "syslog", "invalid boolean", "bool 'true'");
    expect_error("[pgbouncer]\npool_mode = sessions\n", 2, "pool_mode", "invalid pool_mode",
                 "bad pool_mode");
    expect_error("[pgbouncer]\nauth_type = md4\n", 2, "auth_type", "invalid auth_type",
                 "bad auth_type");
    expect_error("[pgbouncer]\nauth_type = peer\n", 2, "auth_type", "only allowed in auth_hba",
                 "auth_type peer");
    expect_error("[pgbouncer]\nauth_type = pam\n", 2, "auth_type", "not supported",
                 "auth_type pam");
    expect_error("[pgbouncer]\nserver_tls_sslmode = verify\n", 2, "server_tls_sslmode",
                 "invalid sslmode", "bad sslmode");
    expect_error("[pgbouncer]\nlog_format = xml\n", 2, "log_format", "text or json",
                 "bad log_format");
    expect_error("[pgbouncer]\nstats_allow = 127.0.0.1, 10.0.0.0/33\n", 2, "stats_allow",
                 "invalid address", "stats_allow: IPv4 prefix past 32");
    expect_error("[pgbouncer]\nstats_allow = localhost\n", 2, "stats_allow", "invalid address",
                 "stats_allow: names are not addresses");
    expect_error("[pgbouncer]\nlisten_port = 6432 ; comment\n", 2, "listen_port", "invalid integer",
                 "inline ';' is part of the value (as in PgBouncer)");
    expect_error("[pgbouncer]\nlisten_port = 70000\n", 2, "listen_port", "out of range",
                 "port above 65535");
    expect_error("[pgbouncer]\npkt_buf = 256\n", 2, "pkt_buf", "out of range (512..",
                 "pkt_buf below 512");
    expect_error("[pgbouncer]\nmax_client_conn = 0\n", 2, "max_client_conn", "out of range",
                 "max_client_conn 0");
    expect_error("[pgbouncer]\npeer_id = 16384\n", 2, "peer_id", "out of range", "peer_id max");
    expect_error("[pgbouncer]\nunix_socket_mode = 0789\n", 2, "unix_socket_mode", "invalid octal",
                 "octal with 8/9");
    expect_error("[pgbouncer]\nunix_socket_mode = 017777\n", 2, "unix_socket_mode",
                 "out of range (0..07777)", "octal out of range");
    expect_error("[pgbouncer]\nquery_timeout = -1\n", 2, "query_timeout", "invalid time",
                 "negative time");
    expect_error("[pgbouncer]\nquery_timeout = 5s\n", 2, "query_timeout", "invalid time",
                 "time with a unit");
    expect_error("[pgbouncer]\nquery_timeout = inf\n", 2, "query_timeout", "invalid time",
                 "infinite time");
    expect_error("[pgbouncer]\nquery_timeout = 2e12\n", 2, "query_timeout", "out of range",
                 "time above the limit");
    write_tmp_n("nul.ini", "[pgbouncer]\nverbose = 1\0\n", 25);
    cfg = load_in(tmpdir, "nul.ini", &err);
    TAP_CHECK(cfg == NULL && err.line == 2 && strstr(err.msg, "NUL byte"),
              "NUL byte in a line is refused at its line (%d: %s)", err.line, err.msg);
    config_free(cfg);
    expect_error("[pgbouncer]\nlisten_port =\n", 2, "listen_port", "invalid integer", "empty int");
    expect_error("[pgbouncer]\nlisten_port 6432\n", 2, "", "not a comment", "line without '='");
    expect_error("[pgbouncer]\nlisten port = 6432\n", 2, "", "expected '='", "blank inside a name");
    expect_error("[pgbouncer]\n= 6432\n", 2, "", "missing name", "missing name");
    expect_error("[pgbouncer]\n[databases\n", 2, "", "without ']'", "unterminated section");
    expect_error("[pgbouncer]\n[database]\n", 2, "", "unknown section [database]",
                 "unknown section");
    expect_error("[pgbouncer] junk\n", 1, "", "after section header", "junk after section");
    expect_error("listen_port = 1\n[pgbouncer]\n", 1, "listen_port", "outside of any section",
                 "key before any section");
    expect_error("; only a comment\n", 0, "", "main section [pgbouncer] missing",
                 "no [pgbouncer] section");
    expect_error("[pgbouncer]\n%includes x\n", 2, "", "not a comment", "unknown directive");
    expect_error("[pgbouncer]\n\"unterminated = 1\n", 2, "", "unterminated quoted name",
                 "unterminated quoted key");

    expect_error("[pgbouncer]\n[databases]\npgbouncer = host=x\n", 3, "pgbouncer", "reserved",
                 "db name pgbouncer reserved");
    expect_error("[pgbouncer]\n[databases]\npgmux =\n", 3, "pgmux", "reserved",
                 "db name pgmux reserved");
    expect_error("[pgbouncer]\n[databases]\nok = host=x\nbad = host=x force_user=y\n", 4, "bad",
                 "unrecognized connection parameter: force_user", "unknown db connstr key");
    expect_error("[pgbouncer]\n[databases]\nbad = host=x port=\n", 3, "bad",
                 "empty value for connection parameter: port", "empty connstr value");
    expect_error("[pgbouncer]\n[databases]\nbad = port=0\n", 3, "bad", "invalid port", "db port 0");
    expect_error("[pgbouncer]\n[databases]\nbad = pool_size=ten\n", 3, "bad", "integer",
                 "db pool_size not a number");
    expect_error("[pgbouncer]\n[databases]\nbad = pool_mode=txn\n", 3, "bad", "invalid pool_mode",
                 "db pool_mode");
    expect_error("[pgbouncer]\n[databases]\nbad = load_balance_hosts=random\n", 3, "bad",
                 "round-robin or disable", "db load_balance_hosts");
    expect_error("[pgbouncer]\n[databases]\nbad = password='x\n", 3, "bad",
                 "unterminated quoted value", "db unterminated quote");
    expect_error("[pgbouncer]\n[users]\nu = host=x\n", 3, "u",
                 "unrecognized connection parameter: host", "unknown user key");
    expect_error("[pgbouncer]\n[users]\nu = query_timeout=abc\n", 3, "u", "seconds",
                 "bad user time");
    expect_error("[pgbouncer]\n[peers]\nx = host=a\n", 3, "x", "invalid peer id",
                 "peer id not a number");
    expect_error("[pgbouncer]\n[peers]\n1 = dbname=a\n", 3, "1",
                 "unrecognized connection parameter: dbname", "unknown peer key");
}

/*==== Lines, comments, long values ====*/

static void test_lines(void)
{
    struct config_error err;
    struct config *cfg;
    char text[8192], query[1600], quoted[1700];
    const struct cfg_db *db;
    char *s, *d;
    size_t i;

    /* A connect_query far past inih's 200 bytes, with ';', '#' and quotes inside. */
    strcpy(query, "SET application_name = 'x';");
    for (i = 0; i < 40; i++)
        strcat(query, " SELECT 12345678901234567890; -- #");
    /* In a connstr a quote inside a quoted value is written twice. */
    for (s = query, d = quoted; *s; s++) {
        *d++ = *s;
        if (*s == '\'')
            *d++ = '\'';
    }
    *d = '\0';
    snprintf(text, sizeof(text),
             "[pgbouncer]\n[databases]\nlong = host=x connect_query='%s' pool_size=2\n"
             "[pgbouncer]\nauth_query = %s\nlisten_port = 7000\n",
             quoted, query);
    cfg = load_text(text, &err);
    TAP_CHECK(cfg != NULL && strlen(query) > 1000, "lines over 1000 bytes load (%s)",
              cfg ? "" : err.msg);
    if (cfg) {
        db = config_find_db(cfg, "long");
        TAP_STR_EQ(db ? db->connect_query : NULL, query, "long connect_query intact");
        TAP_CHECK(db && db->pool_size == 2, "key after the long value still parsed");
        TAP_STR_EQ(cfg->auth_query, query, "long [pgbouncer] value intact");
        TAP_CHECK(cfg->listen_port == 7000, "line after the long ones parsed");
    }
    config_free(cfg);

    /* The error line number must count through long lines too. */
    snprintf(text, sizeof(text), "[pgbouncer]\nauth_query = %s\n\nverbose = x\n", query);
    expect_error(text, 4, "verbose", "invalid integer", "line numbers count past long lines");

    cfg = load_text("\xEF\xBB\xBF[pgbouncer]\r\n"
                    "\t  listen_port = 7001  \r\n"
                    "   ; indented comment\r\n"
                    "  # another\r\n"
                    "logfile = /var/log/x.log # not a comment\r\n"
                    "admin_users = a, b\r\n"
                    "'stats_users' = c\r\n"
                    "pidfile=\r\n",
                    &err);
    TAP_CHECK(cfg != NULL, "BOM, CRLF, indentation, comments (%s)", cfg ? "" : err.msg);
    if (cfg) {
        TAP_CHECK(cfg->listen_port == 7001, "indented key with trailing blanks");
        TAP_STR_EQ(cfg->logfile, "/var/log/x.log # not a comment",
                   "'#' after a value is part of it");
        TAP_STR_EQ(cfg->admin_users, "a, b", "inner blanks kept, CR stripped");
        TAP_STR_EQ(cfg->stats_users, "c", "single-quoted key name");
        TAP_STR_EQ(cfg->pidfile, "", "empty string value");
    }
    config_free(cfg);

    cfg = load_text("[pgbouncer]\nlog_stats = 0\nlog_stats = 2\nlisten_backlog = 64\n"
                    "syslog = -1\n"
                    "[databases]\nd = host=a\nd = host=b\n[users]\nu = pool_size=1\n"
                    "u = pool_size=2\n[peers]\n7 = port=1\n7 = port=2\n",
                    &err);
    TAP_CHECK(cfg != NULL, "duplicates load (%s)", cfg ? "" : err.msg);
    if (cfg) {
        TAP_CHECK(cfg->log_stats == 1 && cfg->syslog == 1,
                  "non-zero integers are true, stored as 1");
        TAP_CHECK(cfg->listen_backlog == 64, "later key of the same name wins");
        TAP_CHECK(cfg->n_dbs == 1 && strcmp(cfg->dbs[0].host, "b") == 0 && cfg->dbs[0].line == 8,
                  "duplicate db: later wins, one entry, its line");
        TAP_CHECK(cfg->n_users == 1 && cfg->users[0].pool_size == 2, "duplicate user");
        TAP_CHECK(cfg->n_peers == 1 && cfg->peers[0].port == 2, "duplicate peer");
    }
    config_free(cfg);
}

/*==== SET and formatting ====*/

static void test_set_format(void)
{
    struct config *cfg = config_new_default();
    struct config *other;
    struct config_error err;
    char line[512];

    TAP_CHECK(cfg != NULL, "default config for SET");
    if (!cfg)
        return;
    TAP_STR_EQ(fmt(cfg, "server_connect_timeout"), "15", "time 15 prints as 15");
    TAP_STR_EQ(fmt(cfg, "pool_mode"), "session", "enum prints its name");
    TAP_STR_EQ(fmt(cfg, "auth_type"), "md5", "auth_type prints its name");
    TAP_STR_EQ(fmt(cfg, "server_tls_sslmode"), "prefer", "sslmode prints its name");

    TAP_CHECK(config_set(cfg, "query_timeout", "0.25", &err), "SET time");
    TAP_STR_EQ(fmt(cfg, "query_timeout"), "0.25", "0.25 prints as 0.25");
    TAP_CHECK(config_set(cfg, "query_timeout", "15.0", &err), "SET time 15.0");
    TAP_STR_EQ(fmt(cfg, "query_timeout"), "15", "15.0 prints as 15");
    TAP_CHECK(config_set(cfg, "query_timeout", "1234567", &err), "SET big time");
    TAP_STR_EQ(fmt(cfg, "query_timeout"), "1234567", "no exponent for whole numbers");
    TAP_CHECK(config_set(cfg, "query_timeout", "0.1", &err), "SET 0.1");
    TAP_STR_EQ(fmt(cfg, "query_timeout"), "0.1", "0.1 prints shortest");
    TAP_CHECK(config_set(cfg, "query_timeout", "1e-7", &err), "SET 1e-7");
    TAP_STR_EQ(fmt(cfg, "query_timeout"), "1e-07", "tiny value round-trips");

    TAP_CHECK(config_set(cfg, "pool_mode", "TRANSACTION", &err) &&
                  cfg->pool_mode == POOL_TRANSACTION,
              "SET enum, case-insensitive");
    TAP_CHECK(config_set(cfg, "server_reset_query", "RESET ALL; SELECT 1", &err), "SET string");
    TAP_STR_EQ(cfg->server_reset_query, "RESET ALL; SELECT 1", "string stored");
    TAP_CHECK(config_set(cfg, "default_pool_size", "33", &err) && cfg->default_pool_size == 33,
              "SET int");
    TAP_CHECK(config_set(cfg, "log_connections", "0", &err) && cfg->log_connections == 0,
              "SET bool");

    memset(&err, 0, sizeof(err));
    TAP_CHECK(!config_set(cfg, "log_connections", "on", &err), "SET bad bool refused");
    TAP_CHECK(cfg->log_connections == 0, "value unchanged after a refused SET");
    TAP_STR_EQ(err.key, "log_connections", "SET error names the key");
    TAP_CHECK(strstr(err.msg, "invalid boolean") != NULL, "SET bad bool message: %s", err.msg);

    TAP_CHECK(!config_set(cfg, "default_pool_size", "-5", &err) && cfg->default_pool_size == 33,
              "SET out of range refused, unchanged");
    TAP_CHECK(!config_set(cfg, "log_format", "yaml", &err) && strcmp(cfg->log_format, "text") == 0,
              "SET bad string refused, unchanged");
    TAP_CHECK(!config_set(cfg, "pkt_buf", "8192", &err) && cfg->pkt_buf == 4096,
              "SET of a non-reloadable key refused");
    TAP_CHECK(strstr(err.msg, "restart") != NULL && strcmp(err.key, "pkt_buf") == 0,
              "non-reloadable message says restart: %s", err.msg);
    TAP_CHECK(!config_set(cfg, "listen_port", "1", &err), "SET listen_port refused");
    TAP_CHECK(!config_set(cfg, "no_such", "1", &err) && strstr(err.msg, "unknown"),
              "SET unknown key refused");
    config_error_format(&err, line, sizeof(line));
    TAP_STR_EQ(line, "no_such: unknown configuration parameter",
               "error format without file and line");

    /* Two configs at once: nothing is shared. */
    other = config_new_default();
    TAP_CHECK(other && other->default_pool_size == 20 && other->pool_mode == POOL_SESSION,
              "a second config is independent of the first");
    if (other) {
        const struct config_key *k = config_find_key("server_reset_query");
        TAP_CHECK(!config_value_equal(cfg, other, k), "config_value_equal sees the difference");
        TAP_CHECK(config_copy_value(other, cfg, k) && config_value_equal(cfg, other, k),
                  "config_copy_value copies a string");
        k = config_find_key("query_timeout");
        TAP_CHECK(!config_value_equal(cfg, other, k) && config_copy_value(other, cfg, k) &&
                      other->query_timeout == cfg->query_timeout,
                  "config_copy_value copies a time");
    }
    config_free(cfg);
    TAP_STR_EQ(other ? other->server_reset_query : NULL, "RESET ALL; SELECT 1",
               "the copy survives freeing the source");
    config_free(other);

    TAP_STR_EQ(config_pool_mode_name(POOL_STATEMENT), "statement", "pool mode name");
    TAP_STR_EQ(config_pool_mode_name(42), "INVALID", "bad pool mode name");
    TAP_STR_EQ(config_auth_type_name(AUTH_SCRAM), "scram-sha-256", "auth type name");
    TAP_STR_EQ(config_auth_type_name(AUTH_PEER), "peer", "peer auth type name");
    TAP_STR_EQ(config_sslmode_name(SSLMODE_VERIFY_CA), "verify-ca", "sslmode name");
}

static void test_two_loaded(void)
{
    struct config_error err;
    struct config *a, *b;

    a = load_text("[pgbouncer]\nlisten_port = 1111\n[databases]\nx = host=a\n", &err);
    b = load_text("[pgbouncer]\nlisten_port = 2222\n[databases]\ny = host=b\n", &err);
    TAP_CHECK(a && b && a->listen_port == 1111 && b->listen_port == 2222 &&
                  config_find_db(a, "x") && !config_find_db(a, "y") && config_find_db(b, "y"),
              "two loaded configs live side by side");
    config_free(a);
    TAP_CHECK(b && strcmp(b->dbs[0].file, "t.ini") == 0 && b->n_files == 1,
              "the second is intact after freeing the first");
    config_free(b);
}

static void test_example_config(void)
{
    struct config_error err;
    struct config *cfg = load_in(PGMUX_TEST_DATA "/../../../etc", "pgmux.ini", &err);

    TAP_CHECK(cfg != NULL, "etc/pgmux.ini loads (%s:%d %s %s)", cfg ? "" : err.file,
              cfg ? 0 : err.line, cfg ? "" : err.key, cfg ? "" : err.msg);
    if (cfg) {
        const struct cfg_db *db = config_find_db(cfg, "postgres");
        TAP_CHECK(db && db->host && strcmp(db->host, "127.0.0.1") == 0 && db->port == 5432,
                  "example points at 127.0.0.1:5432");
        TAP_CHECK(config_find_db(cfg, "*") == NULL, "example '*' fallback is commented out");
    }
    config_free(cfg);
}

int main(void)
{
    int i;
    char path[300];

    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_key_table();
    test_defaults();
    test_full();
    test_include_errors();
    test_errors();
    test_lines();
    test_set_format();
    test_two_loaded();
    test_example_config();

    for (i = 0; i < n_written; i++) {
        snprintf(path, sizeof(path), "%s/%.63s", tmpdir, written[i]);
        unlink(path);
    }
    if (chdir("/") == 0)
        rmdir(tmpdir);
    return tap_done();
}
