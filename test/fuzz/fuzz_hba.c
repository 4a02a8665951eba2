/* SPDX-License-Identifier: ISC */
/*
 * fuzz_hba: src/hba.c, auth_hba_file and auth_ident_file. The input is
 *   hba file [FUZZ_SEP names file [FUZZ_SEP ident file]]
 * written to hba.conf, names and ident.conf in the driver's temporary
 * directory. hba.conf may name the second file as @names (or itself). The
 * rules that load are matched against a few clients (Unix socket, IPv4 with
 * and without TLS, IPv6, replication), and the ident maps are queried.
 *
 * An unquoted @file token opens a path relative to the hba file's directory,
 * or any absolute path. So that no path outside the temporary directory is
 * ever opened, every '@' followed by a '/' before the next space, tab or
 * newline is replaced by '_' before the files are written (the token is then
 * an ordinary name). A token ends at least there, so this catches every
 * @file name with a '/' in it.
 */
#include "fuzz.h"

#include "hba.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static const char *write_sanitized(const char *name, struct fuzz_part part)
{
    char *buf = fuzz_strdup(part);
    const char *path;

    for (size_t i = 0; i < part.len; i++) {
        if (buf[i] != '@')
            continue;
        for (size_t k = i + 1; k < part.len; k++) {
            if (buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\n')
                break;
            if (buf[k] == '/') {
                buf[i] = '_';
                break;
            }
        }
    }
    path = fuzz_write_file(name, buf, part.len);
    free(buf);
    return path;
}

static void match_all(const struct hba *h, const struct ident *id)
{
    static const struct {
        bool is_unix, is_tls, replication;
        const char *ip, *db, *user;
    } clients[] = {
        {true, false, false, NULL, "db", "alice"},
        {false, false, false, "10.1.2.3", "db", "alice"},
        {false, true, false, "127.0.0.1", "postgres", "postgres"},
        {false, false, false, "::1", "alice", "alice"},
        {false, true, false, "fe80::1:2", "all", "all"},
        {false, false, true, "192.168.0.1", "replication", "repl"},
        {false, false, false, "0.0.0.0", "", ""},
    };
    char msg[512];

    for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++) {
        struct hba_client c;
        const char *map = NULL;
        int line = 0;

        memset(&c, 0, sizeof(c));
        c.is_unix = clients[i].is_unix;
        c.is_tls = clients[i].is_tls;
        c.replication = clients[i].replication;
        c.dbname = clients[i].db;
        c.user = clients[i].user;
        if (clients[i].ip) {
            c.family = strchr(clients[i].ip, ':') ? AF_INET6 : AF_INET;
            if (inet_pton(c.family, clients[i].ip, c.addr) != 1)
                abort();
        }
        enum hba_method m = hba_match(h, &c, &map, &line);
        if ((int)m < 0 || m >= HBA_METHOD_COUNT)
            abort();
        (void)hba_method_name(m);
        hba_reject_message(&c, m == HBA_REJECT && line > 0, msg, sizeof(msg));
        (void)ident_match(id, map, "alice", c.user);
        (void)ident_match(id, NULL, "alice", c.user);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_part part[3];
    size_t n = fuzz_split(data, size, part, 3);
    struct fuzz_part empty = {data, 0};
    char err[512];

    const char *hba_path = write_sanitized("hba.conf", part[0]);
    write_sanitized("names", n > 1 ? part[1] : empty);
    const char *ident_path = write_sanitized("ident.conf", n > 2 ? part[2] : empty);

    struct hba *h = hba_load(hba_path, err, sizeof(err));
    if (!h && !memchr(err, 0, sizeof(err)))
        abort();
    struct ident *id = ident_load(ident_path, err, sizeof(err));
    if (h)
        (void)hba_rule_count(h);
    match_all(h, id);
    hba_free(h);
    ident_free(id);
    return 0;
}
