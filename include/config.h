/* SPDX-License-Identifier: ISC */
/*
 * config: the pgbouncer.ini model. One key table (name, type, offset, default,
 * reloadable) drives parsing, defaults, SET and SHOW CONFIG. A config is
 * loaded whole into a fresh struct and only swapped in by the caller after it
 * parsed and validated, so a bad reload changes nothing.
 */
#ifndef PGMUX_CONFIG_H
#define PGMUX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_UNSET (-1) /* per-db / per-user int that falls back to the global */

/* %include nesting allowed below the main file (PgBouncer uses the same limit). */
#define CONFIG_MAX_INCLUDE_DEPTH 10

enum pool_mode {
    POOL_SESSION = 0,
    POOL_TRANSACTION = 1,
    POOL_STATEMENT = 2,
};

enum auth_type {
    AUTH_ANY = 0,
    AUTH_TRUST,
    AUTH_PLAIN,
    AUTH_MD5,
    AUTH_SCRAM,
    AUTH_CERT,
    AUTH_HBA,
    AUTH_PEER,
};

enum sslmode {
    SSLMODE_DISABLE = 0,
    SSLMODE_ALLOW,
    SSLMODE_PREFER,
    SSLMODE_REQUIRE,
    SSLMODE_VERIFY_CA,
    SSLMODE_VERIFY_FULL,
};

/* One [databases] entry; strings are NULL when not given. */
struct cfg_db {
    char *name;            /* the key in [databases]; "*" for the fallback */
    char *host;            /* NULL: Unix socket in unix_socket_dir; "/dir": Unix socket dir */
    int port;              /* default 5432 */
    char *dbname;          /* NULL: same as name (or the client's db for "*") */
    char *user;            /* forced server user */
    char *password;        /* password for the forced user */
    char *auth_user;
    char *auth_query;
    char *auth_dbname;
    int pool_size;         /* CONFIG_UNSET = default_pool_size */
    int min_pool_size;     /* CONFIG_UNSET = global */
    int reserve_pool;      /* reserve_pool / reserve_pool_size; CONFIG_UNSET = global */
    int max_db_connections;        /* CONFIG_UNSET = global */
    int max_db_client_connections; /* CONFIG_UNSET = global */
    int server_lifetime;   /* seconds, CONFIG_UNSET = global */
    int pool_mode;         /* enum pool_mode or CONFIG_UNSET */
    int query_wait_timeout;        /* seconds, CONFIG_UNSET = global */
    char *load_balance_hosts;      /* "round-robin" (default) or "disable" */
    char *connect_query;
    char *client_encoding;
    char *datestyle;
    char *timezone;
    char *application_name;
    const char *file;      /* where it was defined (points into config's file name list) */
    int line;
};

/* One [users] entry. */
struct cfg_user {
    char *name;
    int pool_mode;                   /* CONFIG_UNSET = database/global */
    int pool_size;                   /* CONFIG_UNSET */
    int reserve_pool;                /* reserve_pool_size; CONFIG_UNSET */
    int max_user_connections;        /* CONFIG_UNSET = global */
    int max_user_client_connections; /* CONFIG_UNSET = global */
    double query_timeout;            /* seconds, < 0 = global */
    double idle_transaction_timeout; /* seconds, < 0 = global */
    double transaction_timeout;      /* seconds, < 0 = global */
    double client_idle_timeout;      /* seconds, < 0 = global */
    double query_wait_timeout;       /* seconds, < 0 = global */
};

/* One [peers] entry. */
struct cfg_peer {
    int peer_id;   /* the key in [peers], 1..65535 */
    char *host;    /* NULL: Unix socket in unix_socket_dir; "/dir": Unix socket dir */
    int port;      /* default 6432 */
    int pool_size; /* CONFIG_UNSET = default_pool_size */
};

/*
 * The whole configuration. [pgbouncer] fields are named exactly like the ini
 * keys. Types: int for integers and booleans stored as int (0/1), double for
 * times in seconds, char * for strings (never NULL after load: "" when
 * empty), int for enums (enum pool_mode, enum auth_type, enum sslmode).
 */
struct config {
    /* process / listening */
    char *conffile;
    char *logfile;
    char *pidfile;
    char *listen_addr;
    int listen_port;
    char *unix_socket_dir;
    int unix_socket_mode;  /* parsed as octal */
    char *unix_socket_group;
    char *user;
    int listen_backlog;
    int so_reuseport;
    int peer_id;
    char *job_name;
    char *service_name;
    int verbose;
    int daemon;            /* not an ini key in pgbouncer; set from -d */

    /* pooling & limits */
    int pool_mode;
    int max_client_conn;
    int default_pool_size;
    int min_pool_size;
    int reserve_pool_size;
    double reserve_pool_timeout;
    int max_db_connections;
    int max_db_client_connections;
    int max_user_connections;
    int max_user_client_connections;
    int server_round_robin;
    int max_prepared_statements;
    char *track_extra_parameters;
    char *ignore_startup_parameters;
    int disable_pqexec;
    int application_name_add_host;
    int stats_period;
    int scram_iterations;

    /* authentication */
    int auth_type;
    char *auth_file;
    char *auth_hba_file;
    char *auth_ident_file;
    char *auth_user;
    char *auth_query;
    char *auth_dbname;
    char *auth_ldap_options;
    char *admin_users;
    char *stats_users;

    /* logging */
    int syslog;
    char *syslog_ident;
    char *syslog_facility;
    int log_connections;
    int log_disconnections;
    int log_pooler_errors;
    int log_stats;

    /* server sanity / timeouts */
    char *server_reset_query;
    int server_reset_query_always;
    double server_check_delay;
    char *server_check_query;
    int server_fast_close;
    double server_lifetime;
    double server_idle_timeout;
    double server_connect_timeout;
    double server_login_retry;
    double client_login_timeout;
    double autodb_idle_timeout;
    double pool_idle_timeout;
    double dns_max_ttl;
    double dns_nxdomain_ttl;
    double dns_zone_check_period;
    char *resolv_conf;
    double query_wait_notify;
    char *login_notify_message;

    /* dangerous timeouts */
    double query_timeout;
    double query_wait_timeout;
    double cancel_wait_timeout;
    double client_idle_timeout;
    double idle_transaction_timeout;
    double transaction_timeout;
    double suspend_timeout;

    /* low-level network */
    int pkt_buf;
    int max_packet_size;
    int sbuf_loopcnt;
    int tcp_defer_accept;
    int tcp_socket_buffer;
    int tcp_keepalive;
    int tcp_keepcnt;
    int tcp_keepidle;
    int tcp_keepintvl;
    int tcp_user_timeout;

    /* TLS (used by the TLS issue; parsed and stored now) */
    int client_tls_sslmode;
    char *client_tls_key_file;
    char *client_tls_cert_file;
    char *client_tls_ca_file;
    char *client_tls_protocols;
    char *client_tls_ciphers;
    char *client_tls13_ciphers;
    char *client_tls_ecdhcurve;
    char *client_tls_dheparams;
    int server_tls_sslmode;
    char *server_tls_ca_file;
    char *server_tls_key_file;
    char *server_tls_cert_file;
    char *server_tls_protocols;
    char *server_tls_ciphers;
    char *server_tls13_ciphers;

    /* pgmux extensions (documented as such) */
    char *stats_listen_addr;
    int stats_listen_port;
    char *health_listen_addr;
    int health_listen_port;
    char *log_format; /* "text" or "json" */
    char *stats_auth;  /* auth_file users allowed to read /metrics (Basic auth); "" = no auth */
    char *stats_allow; /* addresses/networks allowed to read /metrics; "" = any */
    int max_client_conn_per_addr; /* TCP client connections per address; 0 = unlimited */
    int auth_failure_limit;       /* failed logins per address that throttle it; 0 = off */
    double auth_failure_window;   /* seconds the failures are counted over */
    double auth_failure_delay;    /* seconds a throttled address's logins wait */

    /* sections */
    struct cfg_db *dbs; /* [databases] in file order, including "*" if present */
    int n_dbs;
    struct cfg_user *users;
    int n_users;
    struct cfg_peer *peers;
    int n_peers;

    char **files; /* every file read (main + %include), owned; cfg_db.file points here */
    int n_files;
};

enum config_type {
    CFG_INT,
    CFG_BOOL,   /* int 0/1; strtol like PgBouncer, so "on"/"true" are rejected */
    CFG_OCTAL,  /* int */
    CFG_TIME,   /* double seconds */
    CFG_STRING, /* char * */
    CFG_POOL_MODE,
    CFG_AUTH_TYPE,
    CFG_SSLMODE,
};

struct config_key {
    const char *name;
    enum config_type type;
    size_t offset;       /* offsetof(struct config, field) */
    const char *def;     /* default as it appears in SHOW CONFIG */
    bool reloadable;     /* false = needs a restart (changeable=no) */
    bool extension;      /* a pgmux key, not a PgBouncer one */
    double min, max;     /* accepted range for CFG_INT/CFG_OCTAL/CFG_TIME (added) */
};

struct config_error {
    char file[256];
    int line;          /* 0 when not tied to a line */
    char key[64];      /* "" when not tied to a key */
    char msg[256];
};

/* Load path (and its %includes) into a new config. NULL on error, with err filled. */
struct config *config_load(const char *path, struct config_error *err);

/* Defaults only: no file read (used by tests and as a base). */
struct config *config_new_default(void);

void config_free(struct config *cfg);

/* The key table, alphabetical (SHOW CONFIG order). */
const struct config_key *config_keys(size_t *n);
const struct config_key *config_find_key(const char *name);

/* Set one [pgbouncer] key from text (SET on the console). False with err->msg on a bad value. */
bool config_set(struct config *cfg, const char *key, const char *value, struct config_error *err);

/*
 * Format a key's current value as SHOW CONFIG prints it. Times print as plain
 * numbers, the shortest text that reads back exactly and without an exponent
 * for whole numbers ("15", "0.5", "3600"), like PgBouncer's "%g"; booleans as
 * 0/1; unix_socket_mode in octal ("0777"); enums by name. The key table's def
 * strings use the same form.
 */
void config_format(const struct config *cfg, const struct config_key *k, char *buf, size_t len);

/* "file:line: key: msg" style one-liner for logs. */
void config_error_format(const struct config_error *err, char *buf, size_t len);

/* Lookups into the loaded sections; NULL when absent. */
const struct cfg_db *config_find_db(const struct config *cfg, const char *name);
const struct cfg_user *config_find_user(const struct config *cfg, const char *name);

const char *config_pool_mode_name(int mode);

/* Additions beyond the first contract. */

/* "md5", "scram-sha-256", ...; "INVALID" for an out-of-range value. */
const char *config_auth_type_name(int type);
/* "disable", ..., "verify-full"; "INVALID" for an out-of-range value. */
const char *config_sslmode_name(int mode);

/*
 * Compare or copy one [pgbouncer] key between two configs. Reload uses these
 * to keep non-reloadable values from the running config (PgBouncer ignores a
 * changed NR key on reload) and to report what changed. config_copy_value
 * returns false only when out of memory (dst is then unchanged).
 */
bool config_value_equal(const struct config *a, const struct config *b,
                        const struct config_key *k);
bool config_copy_value(struct config *dst, const struct config *src, const struct config_key *k);

#endif
