/* SPDX-License-Identifier: ISC */
/*
 * pgmux.h: the few structs that several modules share: the socket (one struct
 * for both roles), the pool, the database and the user, plus the process-wide
 * state. Each module header declares its own functions; this file declares no
 * functions beyond the global state accessors.
 *
 * Ownership: the sbuf owns its fd and its borrowed iobuf. `link` is a
 * non-owning reference that both sides clear on disconnect. Pool lists own
 * nothing; the slab owns the memory of every socket.
 */
#ifndef PGMUX_H
#define PGMUX_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "list.h"
#include "sbuf.h"
#include "stats.h"
#include "varcache.h"

#ifdef CASSERT
#include <assert.h>
#define Assert(x) assert(x)
#else
#define Assert(x) ((void)0)
#endif

#define MUSTCHECK __attribute__((warn_unused_result))
#define PRINTF(a, b) __attribute__((format(printf, a, b)))

#define MAX_NAME 64     /* PostgreSQL identifiers are at most 63 bytes */
#define MAX_PASSWORD 2048

/*
 * Socket states. Each state is exactly one list: the comment names it. Only
 * pool_change_client_state() and pool_change_server_state() assign ->state.
 */
enum sock_state {
    CL_FREE = 0,      /* slab free list */
    CL_JUSTFREE,      /* G.justfree_clients, recycled in the ev_prepare hook */
    CL_LOGIN,         /* G.login_clients: startup and authentication */
    CL_WAITING_LOGIN, /* pool->waiting_login: authenticated, waiting for the pool's first server */
    CL_WAITING,       /* pool->waiting_clients: wants a server */
    CL_ACTIVE,        /* pool->active_clients: linked, or idle between transactions */
    SV_FREE,          /* slab free list */
    SV_JUSTFREE,      /* G.justfree_servers */
    SV_LOGIN,         /* pool->new_servers: connecting and logging in */
    SV_IDLE,          /* pool->idle_servers: ready to be linked */
    SV_ACTIVE,        /* pool->active_servers: linked to a client, or running an internal query */
    SV_USED,          /* pool->used_servers: idle for server_check_delay, must be checked */
    SV_TESTED,        /* pool->tested_servers: running the reset or check query */
    SV_BEING_CANCELED, /* pool->canceling_servers: released while a cancel is in flight */
    SOCK_STATE_COUNT
};

/* What an unlinked server is doing with the query pgmux sent it itself. */
enum server_internal {
    SV_INT_NONE = 0,
    SV_INT_RESET,   /* server_reset_query after release */
    SV_INT_CHECK,   /* server_check_query before reuse */
    SV_INT_SETVARS, /* SET of tracked parameters before a client's transaction */
    SV_INT_CONNECT, /* connect_query after login */
    SV_INT_AUTHQ,   /* auth_query for a client's login (authq.c) */
};

struct pgaddr {
    sa_family_t family; /* AF_INET, AF_INET6 or AF_UNIX */
    uint16_t port;
    uint8_t addr[16];
};

struct tls_ctx;
struct hba;
struct ident;
struct client_login; /* client_internal.h: startup and auth state, alive only during login */
struct server_login; /* server.c: auth state, alive only during login */
struct pool;
struct ps_state;
struct addrlimit_entry;

struct pgsock {
    struct list head;    /* membership in the list of its state */
    struct sbuf sbuf;    /* owns the fd */
    enum sock_state state;
    bool is_server;
    bool close_needed;   /* server: close at release (reload, lifetime, RECONNECT) */
    bool idle_tx;        /* server: in a transaction (status 'T' or 'E') */
    bool copy_in;        /* server: in COPY FROM STDIN: Sync and Flush are ignored by PG */
    bool release_pending; /* server: release once the forwarded bytes are flushed */
    bool is_unix;        /* came in on / goes out over a Unix socket */
    bool admin;          /* client: of the admin console */
    uint8_t internal;    /* server: enum server_internal */
    uint8_t last_status; /* server: status byte of the last ReadyForQuery */
    int rfq_expected;    /* server: ReadyForQuery messages still owed to the client */
    int syncs_since_exec; /* client: Syncs sent since the last Execute, -1 after a Query */
    int ext_since_sync;  /* client: Parse/Bind/Describe/Execute/Close sent after its last Sync */
    int cancel_pending;  /* server: cancel requests in flight to it */
    uint64_t id;         /* monotonic, for logs and SHOW CLIENTS */
    struct pool *pool;   /* NULL for a client still in startup */
    struct user *login_user; /* client: who logged in; the pool's user can be the db's
                              * forced user instead (users live until exit) */
    struct pgsock *link; /* the paired socket; not owned */
    union {
        struct client_login *clogin; /* client: while CL_LOGIN */
        struct server_login *slogin; /* server: while SV_LOGIN */
    };
    struct pgaddr remote;
    uint8_t cancel_key[8]; /* client: the key pgmux gave it; server: PostgreSQL's */
    double connect_time;   /* ev_now at accept / connect */
    double request_time;   /* last activity */
    double wait_start;     /* client: started waiting for a server */
    double xact_start;     /* client: linked at */
    double query_start;    /* client: last query sent */
    struct pgsock *cancel_next; /* client: chain in the cancel key hash */
    struct varcache vars;  /* tracked parameters (client: wanted; server: current) */
    struct ps_state *ps;   /* prepare.c: client name map, or server cache + queue; owned */
    struct addrlimit_entry *addr_entry; /* client (TCP): its address's entry in throttle.c's
                                         * table, which counts it; not owned */
    struct list throttle_node; /* client: in throttle.c's queue of held logins */
    double throttle_until;     /* client: when its held login goes on; 0 = not held */
};

struct pool_stats {
    uint64_t xact_count, query_count, server_assignment_count;
    uint64_t bytes_received, bytes_sent;
    uint64_t xact_time_us, query_time_us, wait_time_us;
    uint64_t client_login_count;
    uint64_t client_parse_count, server_parse_count, bind_count; /* prepared statements */
    struct stats_hist query_hist, xact_hist, wait_hist;
    struct stats_extra extra; /* stats.h: logins, errors by class, timeouts */
};

struct database {
    struct list head;    /* G.databases */
    char name[MAX_NAME];
    char *host;          /* NULL = Unix socket in unix_socket_dir; "/dir" = Unix socket dir */
    int port;
    char *dbname;        /* the real database name on the server */
    char *forced_user;   /* NULL unless user= given */
    char *forced_password;
    char *connect_query;
    char *auth_user, *auth_query, *auth_dbname; /* NULL = the global setting */
    char *client_encoding, *datestyle, *timezone, *application_name;
    int pool_size, min_pool_size, reserve_pool, pool_mode; /* CONFIG_UNSET = global */
    int max_db_connections, max_db_client_connections;
    double server_lifetime;  /* < 0 = global */
    bool is_autodb;
    int logins;          /* logins in progress that point at it (db_login_ref) */
    bool dead;           /* removed from config: no new logins */
    bool disabled;       /* DISABLE db */
    bool paused;
    int server_count, client_count;
    unsigned generation; /* bumped when connection settings change */
    /* resolved server address (dns.c fills it) */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    double addr_expires;
    bool resolving;
    int dns_error;
};

/* What a client login proved, kept for pgmux's own server logins as that user. */
struct login_keys {
    bool have;            /* the keys below are set */
    uint8_t client_key[32];
    uint8_t server_key[32];
};

struct user {
    struct list head;    /* G.users */
    char name[MAX_NAME];
    int pool_mode, pool_size, reserve_pool; /* from [users]; CONFIG_UNSET otherwise */
    int max_user_connections, max_user_client_connections;
    double query_timeout, idle_transaction_timeout, transaction_timeout; /* < 0 = global */
    double client_idle_timeout, query_wait_timeout;                     /* < 0 = global */
    int server_count, client_count;
    /* SCRAM pass-through: keys recovered from this user's last login against
     * the SCRAM secret of the auth file, used to log in to PostgreSQL with it. */
    struct login_keys keys;
};

struct pool {
    struct list head;    /* G.pools */
    struct database *db;
    struct user *user;   /* the client user, or the db's forced user */
    struct statlist waiting_login;  /* CL_WAITING_LOGIN */
    struct statlist waiting_clients;/* CL_WAITING */
    struct statlist active_clients; /* CL_ACTIVE */
    struct statlist new_servers;    /* SV_LOGIN */
    struct statlist idle_servers;   /* SV_IDLE */
    struct statlist active_servers; /* SV_ACTIVE */
    struct statlist used_servers;   /* SV_USED */
    struct statlist tested_servers; /* SV_TESTED */
    struct statlist canceling_servers; /* SV_BEING_CANCELED */
    struct statlist authq_waiting;  /* authq.c: auth_query lookups waiting for a server */
    struct list authq_running;      /* authq.c: lookups running on a server of this pool */
    /* ParameterStatus set of the first server login, sent to every client at login. */
    uint8_t *welcome;
    size_t welcome_len;
    bool welcome_ready;
    bool last_login_ok;
    double next_connect;     /* no new server connection before this (backoff) */
    double backoff;          /* current retry delay after a failed connect */
    char last_error[256];    /* last server login error, for logs and health */
    char last_sqlstate[6];
    bool last_error_fatal_auth; /* the server refused the credentials */
    /* The secret auth_query gave the last login of this pool's user in this
     * database, and the SCRAM keys it proved, for the server logins of this
     * pool. Per pool, not per user: another database may look the same name
     * up in another cluster (as PgBouncer keeps such users per database). */
    char *authq_secret;
    struct login_keys authq_keys;
    struct pool_stats stats;
};

/* Process-wide state: one loop, one config, one auth file. */
struct global {
    struct ev_loop *loop;
    struct config *cfg;
    struct authfile *authfile;
    struct list databases;
    struct list users;
    struct list pools;
    struct statlist login_clients;     /* CL_LOGIN */
    struct statlist justfree_clients;  /* CL_JUSTFREE */
    struct statlist justfree_servers;  /* SV_JUSTFREE */
    int client_count;   /* all clients, for max_client_conn */
    int server_count;
    uint64_t next_id;
    bool paused;        /* PAUSE / SIGUSR1 */
    bool shutting_down;
    int shutdown_mode;  /* 0 none, 1 wait for servers, 2 wait for clients */
    double start_time;
    bool launch_needed; /* some pool may want a new server: checked in the ev_prepare hook */
    /* Built from the config at startup and on reload (main.c); NULL = off / none. */
    struct tls_ctx *client_tls; /* pgmux as TLS server towards clients */
    struct tls_ctx *server_tls; /* pgmux as TLS client towards PostgreSQL */
    struct hba *hba;            /* auth_hba_file, when auth_type = hba */
    struct ident *ident;        /* auth_ident_file */
};

extern struct global G;

/* The user to name in logs and SHOW lists: a client's login user, else its pool's; NULL before login. */
static inline const char *pgsock_user_name(const struct pgsock *s)
{
    if (s->login_user)
        return s->login_user->name;
    return s->pool ? s->pool->user->name : NULL;
}


#endif
