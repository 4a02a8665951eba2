/* SPDX-License-Identifier: ISC */
/*
 * main: command line, startup order, pidfile and daemon mode, signals and
 * their PgBouncer (>= 1.23) meanings, reload, and the loop.
 *
 * Startup dies on any error (bad config names file and line); after the loop
 * starts nothing a client, a server or a reload does may end the process.
 * TLS contexts, auth_hba_file and auth_ident_file follow the same rule: a
 * reload that cannot load one of them keeps the running one and says why.
 */
#include "admin.h"
#include "authfile.h"
#include "config.h"
#include "control.h"
#include "db.h"
#include "dns.h"
#include "hba.h"
#include "http.h"
#include "iobuf.h"
#include "janitor.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "pgmux.h"
#include "pool.h"
#include "server.h"
#include "stats.h"
#include "throttle.h"
#include "tls.h"
#include "varcache.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

struct global G;

static ev_signal sig_watchers[6];
static char *pidfile_written;

static void usage(FILE *f)
{
    fprintf(f, "pgmux, a PostgreSQL connection pooler (PgBouncer compatible)\n\n"
               "Usage: pgmux [OPTION]... CONFIG_FILE\n"
               "  -d, --daemon     run in the background (needs pidfile and logfile)\n"
               "  -q, --quiet      log nothing to stderr\n"
               "  -v, --verbose    more logging (repeat for more)\n"
               "  -u, --user=USER  switch to USER after opening the listening sockets\n"
               "  -V, --version    print the version and exit\n"
               "  -h, --help       print this help and exit\n");
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_fatal("%s", msg);
    exit(1);
}

static void remove_pidfile(void)
{
    if (pidfile_written) {
        unlink(pidfile_written);
        free(pidfile_written);
        pidfile_written = NULL;
    }
}

void pgmux_exit_now(void)
{
    listener_close_all();
    remove_pidfile();
    log_close();
    exit(0);
}

static void write_pidfile(const char *path)
{
    if (!path || !path[0])
        return;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("cannot write pidfile %s: %s", path, strerror(errno));
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (write(fd, buf, (size_t)n) != n)
        die("cannot write pidfile %s: %s", path, strerror(errno));
    close(fd);
    pidfile_written = strdup(path);
}

static void change_user(const char *name)
{
    struct passwd *pw = getpwnam(name);
    if (!pw)
        die("could not find user '%s'", name);
    if (setgroups(0, NULL) < 0 && errno != EPERM)
        die("setgroups failed: %s", strerror(errno));
    if (setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
        die("could not switch to user '%s': %s", name, strerror(errno));
}

static void daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork failed: %s", strerror(errno));
    if (pid > 0)
        _exit(0);
    setsid();
    pid = fork();
    if (pid < 0)
        die("fork failed: %s", strerror(errno));
    if (pid > 0)
        _exit(0);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t need = (rlim_t)G.cfg->max_client_conn + 100;
        if (rl.rlim_cur < need)
            log_warning("file descriptor limit %llu is below max_client_conn + 100 = %llu",
                        (unsigned long long)rl.rlim_cur, (unsigned long long)need);
    }
}

/* Give dst the value src has for key k (restart-only keys keep running values). */
static void copy_key(struct config *dst, const struct config *src, const struct config_key *k)
{
    char *d = (char *)dst + k->offset;
    const char *s = (const char *)src + k->offset;
    switch (k->type) {
    case CFG_STRING: {
        char **dp = (char **)d;
        char *const *sp = (char *const *)s;
        char *copy = strdup(*sp ? *sp : "");
        if (!copy)
            return;
        free(*dp);
        *dp = copy;
        break;
    }
    case CFG_TIME:
        memcpy(d, s, sizeof(double));
        break;
    default:
        memcpy(d, s, sizeof(int));
        break;
    }
}

/*
 * What the TLS settings and the auth_hba_file / auth_ident_file keys of a
 * config build. Made whole before it replaces the running set, at startup
 * and on reload, so a file that fails to load changes nothing.
 */
struct auth_set {
    struct tls_ctx *client_tls, *server_tls;
    struct hba *hba;
    struct ident *ident;
};

static void auth_set_free(struct auth_set *a)
{
    tls_ctx_free(a->client_tls);
    tls_ctx_free(a->server_tls);
    hba_free(a->hba);
    ident_free(a->ident);
    memset(a, 0, sizeof(*a));
}

/* Runs as the final user, as reloads do. False with msg set on any error. */
static bool auth_set_load(const struct config *cfg, struct auth_set *a, char *msg, size_t len)
{
    char err[600];
    memset(a, 0, sizeof(*a));
    a->client_tls = tls_client_side_new(cfg, err, sizeof(err));
    if (!a->client_tls && err[0]) {
        snprintf(msg, len, "client TLS: %s", err);
        goto fail;
    }
    a->server_tls = tls_server_side_new(cfg, err, sizeof(err));
    if (!a->server_tls && err[0]) {
        snprintf(msg, len, "server TLS: %s", err);
        goto fail;
    }
    if (cfg->auth_type == AUTH_HBA) {
        if (!cfg->auth_hba_file[0]) {
            snprintf(msg, len, "auth_type = hba needs auth_hba_file");
            goto fail;
        }
        a->hba = hba_load(cfg->auth_hba_file, err, sizeof(err));
        if (!a->hba) {
            snprintf(msg, len, "auth_hba_file: %s", err);
            goto fail;
        }
    }
    if (cfg->auth_ident_file[0]) {
        a->ident = ident_load(cfg->auth_ident_file, err, sizeof(err));
        if (!a->ident) {
            snprintf(msg, len, "auth_ident_file: %s", err);
            goto fail;
        }
    }
    return true;
fail:
    auth_set_free(a);
    return false;
}

/* Put a in force; the set it replaces is freed (live SSL objects keep their context). */
static void auth_set_install(struct auth_set *a)
{
    struct auth_set old = {G.client_tls, G.server_tls, G.hba, G.ident};
    G.client_tls = a->client_tls;
    G.server_tls = a->server_tls;
    G.hba = a->hba;
    G.ident = a->ident;
    memset(a, 0, sizeof(*a));
    auth_set_free(&old);
}

/*
 * Settings that load without error but cannot work as meant. Said at startup
 * and after each reload, from the contexts actually in use (a reload that
 * could not load new TLS files keeps the old ones).
 */
static void warn_unworkable_auth(void)
{
    const struct config *cfg = G.cfg;
    char where[64];
    int line = cfg->auth_type == AUTH_HBA ? hba_method_line(G.hba, HBA_CERT) : 0;
    if (cfg->auth_type == AUTH_CERT)
        snprintf(where, sizeof(where), "auth_type = cert");
    else if (line > 0)
        snprintf(where, sizeof(where), "auth_hba_file line %d (cert)", line);
    else
        where[0] = 0;
    if (where[0] && !G.client_tls)
        log_warning("%s: client TLS is off (client_tls_sslmode, client_tls_key_file, "
                    "client_tls_cert_file), so no client can log in with a certificate",
                    where);
    else if (where[0] && !cfg->client_tls_ca_file[0])
        log_warning("%s: client_tls_ca_file is not set, so pgmux asks for no client "
                    "certificate and no client can log in with one",
                    where);
    if (cfg->auth_failure_limit > 0 && cfg->client_login_timeout > 0 &&
        cfg->auth_failure_delay >= cfg->client_login_timeout)
        log_warning("auth_failure_delay (%g s) is not below client_login_timeout (%g s): "
                    "logins from a throttled address time out instead of being delayed",
                    cfg->auth_failure_delay, cfg->client_login_timeout);
}

/* Close every server connection as soon as it is not in use (server TLS settings changed). */
static void recycle_all_servers(const char *why)
{
    struct list *pi;
    for (pi = G.pools.next; pi != &G.pools; pi = pi->next) {
        struct pool *p = container_of(pi, struct pool, head);
        pool_recycle_servers(p, why);
    }
}

bool pgmux_key_needs_auth_reload(const char *key)
{
    return strcmp(key, "auth_type") == 0 || strcmp(key, "auth_file") == 0 ||
           strcmp(key, "auth_hba_file") == 0 || strcmp(key, "auth_ident_file") == 0 ||
           strstr(key, "_tls_") != NULL;
}

bool pgmux_apply_auth_settings(bool server_tls_changed, char *err, size_t errlen)
{
    struct authfile *naf = NULL;
    if (G.cfg->auth_file[0]) {
        naf = authfile_load(G.cfg->auth_file, err, errlen);
        if (!naf)
            return false;
    }
    struct auth_set set;
    if (!auth_set_load(G.cfg, &set, err, errlen)) {
        if (naf)
            authfile_free(naf);
        return false;
    }
    if (G.authfile)
        authfile_free(G.authfile);
    G.authfile = naf;
    auth_set_install(&set);
    if (server_tls_changed) {
        log_info("server TLS settings changed, recycling server connections");
        recycle_all_servers("server TLS settings changed");
    }
    warn_unworkable_auth();
    return true;
}

/* A reload that cannot be made whole: say why, count it, change nothing. */
static bool reload_failed(const char *msg, char *errbuf, size_t errlen)
{
    log_error("config reload failed, keeping the old configuration: %s", msg);
    stats_reload(false);
    if (errbuf)
        snprintf(errbuf, errlen, "%s", msg);
    return false;
}

/*
 * Parse, validate and load everything the new config names (auth file, TLS
 * files, hba and ident files; files are read again even when the settings
 * are the same: rotated certificates), and only then swap: a bad reload
 * changes nothing. Live connections keep their own SSL objects; servers are
 * recycled only when the server TLS settings changed (PgBouncer >= 1.24).
 */
bool pgmux_reload(char *errbuf, size_t errlen)
{
    struct config_error err;
    char msg[700];
    struct config *ncfg = config_load(G.cfg->conffile, &err);
    if (!ncfg) {
        config_error_format(&err, msg, sizeof(msg));
        return reload_failed(msg, errbuf, errlen);
    }
    struct authfile *naf = NULL;
    if (ncfg->auth_file[0]) {
        char afmsg[680];
        naf = authfile_load(ncfg->auth_file, afmsg, sizeof(afmsg));
        if (!naf) {
            config_free(ncfg);
            snprintf(msg, sizeof(msg), "auth_file: %s", afmsg);
            return reload_failed(msg, errbuf, errlen);
        }
    }
    /* Keys that need a restart keep their running values. */
    size_t n;
    const struct config_key *keys = config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        if (keys[i].reloadable)
            continue;
        char a[512], b[512];
        config_format(G.cfg, &keys[i], a, sizeof(a));
        config_format(ncfg, &keys[i], b, sizeof(b));
        if (strcmp(a, b) != 0) {
            log_warning("%s changed; it takes effect only after a restart", keys[i].name);
            copy_key(ncfg, G.cfg, &keys[i]);
        }
    }
    struct auth_set set;
    if (!auth_set_load(ncfg, &set, msg, sizeof(msg))) {
        config_free(ncfg);
        if (naf)
            authfile_free(naf);
        return reload_failed(msg, errbuf, errlen);
    }
    struct config *old = G.cfg;
    struct authfile *old_af = G.authfile;
    bool server_tls_changed = !tls_settings_equal(old, ncfg, false);
    G.cfg = ncfg;
    G.authfile = naf;
    auth_set_install(&set);
    db_apply_config(ncfg);
    log_configure(ncfg);
    if (server_tls_changed) {
        log_info("server TLS settings changed, recycling server connections");
        recycle_all_servers("server TLS settings changed");
    }
    warn_unworkable_auth();
    config_free(old);
    if (old_af)
        authfile_free(old_af);
    G.launch_needed = true;
    stats_reload(true);
    log_info("configuration reloaded");
    return true;
}

void pgmux_begin_shutdown(int mode, const char *why)
{
    if (G.shutting_down) {
        log_info("%s again: exiting now", why);
        pgmux_exit_now();
    }
    if (admin_is_suspended()) {
        /* Suspended sockets are never read again: nothing could finish. (PgBouncer too.) */
        log_info("%s during SUSPEND: exiting now", why);
        pgmux_exit_now();
    }
    G.shutting_down = true;
    G.shutdown_mode = mode;
    listener_stop(false); /* the Unix socket stays open for the admin console */
    if (mode == 1)
        G.paused = true;
    log_info("%s: shutting down when %s", why,
             mode == 2 ? "all clients are gone" : "all servers are released");
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    switch (w->signum) {
    case SIGHUP:
        log_info("got SIGHUP, reloading the configuration");
        pgmux_reload(NULL, 0);
        break;
    case SIGTERM:
        pgmux_begin_shutdown(2, "got SIGTERM");
        break;
    case SIGINT:
        pgmux_begin_shutdown(1, "got SIGINT");
        break;
    case SIGQUIT:
        log_info("got SIGQUIT, exiting now");
        pgmux_exit_now();
        break;
    case SIGUSR1:
        log_info("got SIGUSR1, pausing");
        G.paused = true;
        break;
    case SIGUSR2:
        if (G.shutting_down) {
            log_info("got SIGUSR2 during shutdown, ignored");
            break;
        }
        log_info("got SIGUSR2, resuming");
        admin_resume(); /* ends PAUSE and SUSPEND alike */
        G.paused = false;
        G.launch_needed = true;
        break;
    default:
        break;
    }
}

static void setup_signals(void)
{
    static const int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2};
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        ev_signal_init(&sig_watchers[i], signal_cb, sigs[i]);
        ev_signal_start(loop_main, &sig_watchers[i]);
    }
}

bool pgmux_setup(void)
{
    varcache_init_names(G.cfg->track_extra_parameters);
    iobuf_set_size((uint32_t)G.cfg->pkt_buf);
    list_init(&G.pools);
    statlist_init(&G.login_clients);
    statlist_init(&G.justfree_clients);
    statlist_init(&G.justfree_servers);
    db_init();
    pool_init();
    loop_init();
    if (!throttle_init())
        return false;
    dns_init();
    db_apply_config(G.cfg);
    return true;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"daemon", no_argument, NULL, 'd'},  {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'}, {"user", required_argument, NULL, 'u'},
        {"version", no_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool daemon_mode = false, quiet = false;
    int verbose = 0, opt;
    const char *run_as = NULL;

    while ((opt = getopt_long(argc, argv, "dqvu:Vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            daemon_mode = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'v':
            verbose++;
            break;
        case 'u':
            run_as = optarg;
            break;
        case 'V':
            printf("pgmux %s\n", PGMUX_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return 1;
    }
    log_setup(quiet, verbose);

    struct config_error err;
    G.cfg = config_load(argv[optind], &err);
    if (!G.cfg) {
        char msg[700];
        config_error_format(&err, msg, sizeof(msg));
        die("%s", msg);
    }
    if (run_as)
        run_as = run_as[0] ? run_as : NULL;
    else if (G.cfg->user[0])
        run_as = G.cfg->user;
    if (getuid() == 0 && !run_as)
        die("pgmux should not run as root: give -u USER or user= in the config");
    if (daemon_mode && (!G.cfg->pidfile[0] || (!G.cfg->logfile[0] && !G.cfg->syslog)))
        die("daemon mode needs pidfile and logfile (or syslog) in the config");

    log_configure(G.cfg);
    if (G.cfg->auth_file[0]) {
        char msg[700];
        G.authfile = authfile_load(G.cfg->auth_file, msg, sizeof(msg));
        if (!G.authfile)
            die("%s", msg);
    }
    if (!pgmux_setup())
        die("could not set up the client address table: out of memory or no random bytes");
    raise_fd_limit();

    if (!listener_open(G.cfg))
        die("could not open the listening sockets");
    if (!http_open(G.cfg))
        die("could not open the stats/health listeners");
    if (run_as)
        change_user(run_as);
    {
        char msg[700];
        struct auth_set set;
        if (!auth_set_load(G.cfg, &set, msg, sizeof(msg))) {
            listener_close_all(); /* no stale Unix socket file behind */
            die("%s", msg);
        }
        auth_set_install(&set);
    }
    warn_unworkable_auth();
    if (daemon_mode)
        daemonize();
    write_pidfile(G.cfg->pidfile);
    atexit(remove_pidfile);

    setup_signals();
    janitor_start();
    listener_start();
    G.start_time = ev_time();
    stats_start();
    http_start();
    log_info("pgmux %s listening on port %d (%s)", PGMUX_VERSION, G.cfg->listen_port,
             G.cfg->listen_addr[0] ? G.cfg->listen_addr : "unix socket only");
    loop_run();
    return 0;
}
