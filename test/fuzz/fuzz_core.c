/* SPDX-License-Identifier: ISC */
/*
 * fuzz_core: the pooler as main() sets it up, with a fixed configuration in
 * the fuzzer's temporary directory:
 *  - auth_type = hba, with rules per user: stats and alice trust, bob md5,
 *    carol scram-sha-256 (her secret is RFC 7677's, so a driver that fixes
 *    the server nonce can replay the RFC exchange), dave password, everyone
 *    else scram-sha-256 (mock authentication of unknown users);
 *  - stats_users = stats, admin_users empty: the console is reachable but
 *    only for SHOW, so no input can pause, suspend, reload or shut down the
 *    process and make later inputs behave differently;
 *  - [databases] db1 points at a Unix socket that does not exist, so every
 *    server connection fails at once and nothing leaves the process;
 *  - the srv* databases point at FUZZ_CORE_SERVER_PORT in the temporary
 *    directory, where only fuzz_server listens (elsewhere the connect fails
 *    as for db1): srv in the global transaction mode, srv_session and
 *    srv_stmt in session and statement mode, srv_cq with a connect_query,
 *    srv_nopw logging in as a user auth_file does not know;
 *  - users for the server-side login, trust towards pgmux: alice (plain
 *    password "secret" in auth_file), erin (md5 hash of "secret"), frank (a
 *    SCRAM secret, so only pass-through could log in);
 *  - stats_auth = alice,carol for the HTTP driver.
 * Logging is off (FATAL only) so the fuzzer's output stays readable.
 */
#include "fuzz_core.h"

#include "fuzz.h"

#include "authfile.h"
#include "client.h"
#include "config.h"
#include "control.h"
#include "hba.h"
#include "log.h"
#include "loop.h"
#include "pgmux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static bool started;

static const char userlist[] =
    "\"stats\" \"statspw\"\n"
    "\"alice\" \"secret\"\n"
    "\"bob\" \"md5d6d49ca2d6b8fb7cbd4e2d4d5d2a8d8e\"\n"
    "\"carol\" \"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\"\n"
    "\"dave\" \"pw\"\n"
    "\"erin\" \"md5afd04d077a4c49e8ea707a36a1aceacf\"\n"
    "\"frank\" \"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\"\n";

static const char hba_rules[] = "host all stats 127.0.0.1/32 trust\n"
                                "host all alice 127.0.0.1/32 trust\n"
                                "host all bob 127.0.0.1/32 md5\n"
                                "host all carol 127.0.0.1/32 scram-sha-256\n"
                                "host all dave 127.0.0.1/32 password\n"
                                "host all erin,frank 127.0.0.1/32 trust\n"
                                "host all all all scram-sha-256\n";

void fuzz_core_init(void)
{
    char ini[8192], err_text[700];
    struct config_error err;
    const char *dir = fuzz_tmpdir();

    if (started)
        return;
    started = true;
    log_setup(true, 0);
    log_level = LOG_LVL_FATAL;

    const char *authfile = fuzz_write_file("core_userlist.txt", userlist, strlen(userlist));
    char authfile_path[PATH_MAX];
    snprintf(authfile_path, sizeof(authfile_path), "%s", authfile);
    const char *hbafile = fuzz_write_file("core_hba.conf", hba_rules, strlen(hba_rules));
    char hba_path[PATH_MAX];
    snprintf(hba_path, sizeof(hba_path), "%s", hbafile);
    int n = snprintf(ini, sizeof(ini),
                     "[pgbouncer]\n"
                     "listen_addr =\n"
                     "listen_port = 1\n"
                     "unix_socket_dir =\n"
                     "auth_type = hba\n"
                     "auth_file = %s\n"
                     "auth_hba_file = %s\n"
                     "stats_users = stats\n"
                     "stats_auth = alice,carol\n"
                     "pool_mode = transaction\n"
                     "ignore_startup_parameters = extra_float_digits\n"
                     "[databases]\n"
                     "db1 = host=%s/nosuchdir port=1 dbname=db1\n"
                     "srv = host=%s port=%d dbname=srv\n"
                     "srv_session = host=%s port=%d dbname=srv pool_mode=session\n"
                     "srv_stmt = host=%s port=%d dbname=srv pool_mode=statement\n"
                     "srv_cq = host=%s port=%d dbname=srv connect_query='SELECT 1'\n"
                     "srv_nopw = host=%s port=%d dbname=srv user=nopw\n",
                     authfile_path, hba_path, dir, dir, FUZZ_CORE_SERVER_PORT, dir,
                     FUZZ_CORE_SERVER_PORT, dir, FUZZ_CORE_SERVER_PORT, dir,
                     FUZZ_CORE_SERVER_PORT, dir, FUZZ_CORE_SERVER_PORT);
    const char *path = fuzz_write_file("core.ini", ini, (size_t)n);

    G.cfg = config_load(path, &err);
    if (!G.cfg) {
        config_error_format(&err, err_text, sizeof(err_text));
        fprintf(stderr, "fuzz_core: %s\n", err_text);
        abort();
    }
    G.authfile = authfile_load(authfile_path, err_text, sizeof(err_text));
    G.hba = hba_load(hba_path, err_text, sizeof(err_text));
    if (!G.authfile || !G.hba) {
        fprintf(stderr, "fuzz_core: %s\n", err_text);
        abort();
    }
    if (!pgmux_setup()) {
        fprintf(stderr, "fuzz_core: pgmux_setup failed\n");
        abort();
    }
    G.start_time = ev_time();
}

int fuzz_core_client(void)
{
    int sv[2];
    struct sockaddr_in sin;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    int sz = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(40000);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    client_accept(sv[0], (struct sockaddr *)&sin, sizeof(sin), false);
    return sv[1];
}

size_t fuzz_core_drain(int fd, const char *who)
{
    static int dump = -1;
    char buf[65536];
    size_t total = 0;
    ssize_t got;

    if (dump < 0)
        dump = getenv("PGMUX_FUZZ_DUMP") != NULL;
    while ((got = read(fd, buf, sizeof(buf))) > 0) {
        if (dump) {
            fprintf(stderr, "\n[pgmux to %s, %zd bytes]\n", who, got);
            fwrite(buf, 1, (size_t)got, stderr);
        }
        total += (size_t)got;
    }
    return total;
}

size_t fuzz_core_spin(int drain_fd, int max_iter)
{
    size_t total = 0;

    for (int i = 0; i < max_iter; i++) {
        ev_run(loop_main, EVRUN_NOWAIT);
        if (drain_fd >= 0)
            total += fuzz_core_drain(drain_fd, "client");
        if (G.client_count == 0 && G.justfree_clients.count == 0 &&
            G.justfree_servers.count == 0 && i > 2)
            break;
    }
    return total;
}
