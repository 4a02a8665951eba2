/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for src/hba.c: every record type, database and user matching
 * (keywords, quoting, comma lists, sameuser, replication, @file with nesting),
 * IPv4/IPv6 CIDR edges and the netmask column, hostssl vs hostnossl, first
 * match wins, no match = reject with line 0, PostgreSQL's reject texts, one
 * case per malformed-line error with its exact "path:line: " prefix, a
 * 1,000-line file, random garbage that must never crash the loader, and the
 * ident map file. Fixtures live in data/hba (PGMUX_HBA_DATA); files with
 * errors are written to a fresh temporary directory.
 */
#include "hba.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "tap.h"

#ifndef PGMUX_HBA_DATA
#error "PGMUX_HBA_DATA must name test/unit/data/hba"
#endif

static char tmpdir[64];
static int nfiles;

/* Writes text to a new file in tmpdir; returns its path (static storage, rotating). */
static const char *write_file(const char *name, const void *data, size_t len)
{
    static char paths[8][256];
    char *path = paths[nfiles++ % 8];
    FILE *f;

    if (name != NULL)
        snprintf(path, sizeof(paths[0]), "%s/%s", tmpdir, name);
    else
        snprintf(path, sizeof(paths[0]), "%s/hba%d.conf", tmpdir, nfiles);
    /* A fresh file rather than a truncated one: ext4 flushes truncate-and-rewrite to disk. */
    unlink(path);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        printf("# cannot write %s\n", path);
    return path;
}

static const char *write_str(const char *text)
{
    return write_file(NULL, text, strlen(text));
}

/* Line number of the first line of path containing needle (0 if none). */
static int line_of(const char *path, const char *needle)
{
    char buf[512];
    int n = 0;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return 0;
    while (fgets(buf, sizeof(buf), f) != NULL) {
        n++;
        if (strstr(buf, needle) != NULL) {
            fclose(f);
            return n;
        }
    }
    fclose(f);
    return 0;
}

static struct hba_client tcp(const char *ip, const char *db, const char *user, bool tls)
{
    struct hba_client c;

    memset(&c, 0, sizeof(c));
    c.family = strchr(ip, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(c.family, ip, c.addr) != 1)
        printf("# bad test address %s\n", ip);
    c.is_tls = tls;
    c.dbname = db;
    c.user = user;
    return c;
}

static struct hba_client local(const char *db, const char *user)
{
    struct hba_client c;

    memset(&c, 0, sizeof(c));
    c.is_unix = true;
    c.dbname = db;
    c.user = user;
    return c;
}

static const char *rules_path;
static struct hba *rules;

/* hba_match on the fixture, checking the method and the matched line's text. */
static void expect(struct hba_client c, enum hba_method want, const char *line_text,
                   const char *desc)
{
    const char *map = "unset";
    int line = -1;
    enum hba_method got = hba_match(rules, &c, &map, &line);
    int want_line = line_text ? line_of(rules_path, line_text) : 0;

    TAP_CHECK(got == want && line == want_line, "%s: %s (line %d)", desc, hba_method_name(want),
              want_line);
    if (got != want || line != want_line)
        printf("#   got %s at line %d\n", hba_method_name(got), line);
}

/*==================================================================
 * Matching against the fixture
 *==================================================================*/

static void test_load_fixture(void)
{
    static char path[512];
    char err[512];

    snprintf(path, sizeof(path), "%s/rules.conf", PGMUX_HBA_DATA);
    rules_path = path;
    rules = hba_load(path, err, sizeof(err));
    TAP_CHECK(rules != NULL, "fixture loads");
    if (rules == NULL)
        printf("#   %s\n", err);
    TAP_CHECK(hba_rule_count(rules) == 25, "fixture has 25 rules (got %zu)", hba_rule_count(rules));
    TAP_CHECK(hba_method_line(rules, HBA_CERT) == 13, "first cert rule is line 13 (got %d)",
              hba_method_line(rules, HBA_CERT));
    TAP_CHECK(hba_method_line(rules, HBA_SCRAM) == 16, "first scram rule is line 16 (got %d)",
              hba_method_line(rules, HBA_SCRAM));
    TAP_CHECK(hba_method_line(NULL, HBA_CERT) == 0, "no rules: no cert line");
}

static void test_local(void)
{
    const char *map = NULL;
    struct hba_client c = local("dbpeer", "anyone");

    TAP_CHECK(hba_match(rules, &c, &map, NULL) == HBA_PEER && map && !strcmp(map, "localmap"),
              "local peer line with map=localmap");
    expect(local("other", "userpw"), HBA_PASSWORD, "userpw", "local user list");
    expect(local("quoted db", "x"), HBA_TRUST, "\"quoted db\"", "local quoted db name with space");
    expect(local("quoted", "x"), HBA_MD5, "local      all          all", "partial name no match");
    expect(local("db", "u"), HBA_MD5, "local      all          all", "local all all");
    /* Local lines never match TCP, and host lines never match Unix sockets. */
    expect(tcp("1.2.3.4", "dbpeer", "anyone", false), HBA_REJECT, NULL, "local line not for TCP");
    expect(local("wide", "u"), HBA_MD5, "local      all          all",
           "host 0.0.0.0/0 not for Unix sockets");
}

static void test_ssl_types(void)
{
    const char *map = NULL;
    struct hba_client c = tcp("10.1.1.1", "db", "user", true);

    TAP_CHECK(hba_match(rules, &c, &map, NULL) == HBA_CERT && map && !strcmp(map, "certmap"),
              "hostssl + TLS: cert map=certmap");
    expect(tcp("10.1.1.1", "db", "user", false), HBA_REJECT, NULL, "hostssl without TLS: no match");
    expect(tcp("11.1.1.1", "db", "user", false), HBA_MD5, "11.0.0.0/8",
           "hostnossl without TLS: md5");
    expect(tcp("11.1.1.1", "db", "user", true), HBA_REJECT, NULL, "hostnossl with TLS: no match");
    expect(tcp("127.0.0.2", "db", "user", true), HBA_PASSWORD, "255.255.255.0",
           "host matches with TLS");
    expect(tcp("127.0.0.3", "db", "user", false), HBA_PASSWORD, "255.255.255.0",
           "host matches without TLS");
}

static void test_names(void)
{
    expect(tcp("127.0.1.4", "db1", "x", false), HBA_SCRAM, "db1", "db name, any address");
    expect(tcp("127.0.1.4", "db1x", "x", false), HBA_REJECT, NULL, "db name is not a prefix");
    expect(tcp("127.0.1.4", "DB1", "x", false), HBA_REJECT, NULL, "db names are case-sensitive");
    expect(tcp("16.0.0.1", "anydb", "user1", false), HBA_MD5, "user1,user2", "list: user1");
    expect(tcp("16.0.0.1", "anydb", "user2", false), HBA_MD5, "user1,user2", "list: user2");
    expect(tcp("16.0.0.1", "anydb", "user3", false), HBA_MD5, "user1,user2",
           "list with blanks around comma: user3");
    expect(tcp("16.0.0.1", "anydb", "user4", false), HBA_REJECT, NULL, "list: user4 not in it");
    expect(tcp("20.0.0.1", "bob", "bob", false), HBA_TRUST, "sameuser", "sameuser: db == user");
    expect(tcp("20.0.0.1", "bob", "alice", false), HBA_REJECT, NULL, "sameuser: db != user");
    expect(tcp("22.0.0.2", "x", "y", false), HBA_REJECT, NULL, "quoted \"all\" is not a keyword");
    expect(tcp("22.0.0.2", "all", "all", false), HBA_CERT, "\"all\"        \"all\"",
           "quoted \"all\" matches the name all");
    expect(tcp("22.0.0.2", "q1\"q2", "a , b", false), HBA_TRUST, "q1\"\"q2",
           "doubled quote and comma inside quotes");
}

static void test_at_file(void)
{
    expect(tcp("21.0.0.1", "fromfile1", "fuser1", false), HBA_SCRAM, "@dbs.list", "@file db, user");
    expect(tcp("21.0.0.1", "fromfile2", "fuser2", false), HBA_SCRAM, "@dbs.list",
           "comma list in @file; nested @file relative to its parent");
    expect(tcp("21.0.0.1", "quoted name", "fuser3", false), HBA_SCRAM, "@dbs.list",
           "quoted name in @file");
    expect(tcp("21.0.0.1", "fromfile3", "fuser1", false), HBA_SCRAM, "@dbs.list",
           "name after a quoted one, before a comment");
    expect(tcp("21.0.0.1", "comment", "fuser1", false), HBA_REJECT, NULL,
           "comment words are not names");
    expect(tcp("21.0.0.1", "fromfile1", "nobody", false), HBA_REJECT, NULL, "user not in @file");
}

static void test_cidr(void)
{
    expect(tcp("199.199.199.199", "mdb", "muser", false), HBA_CERT, "/32", "/32 exact");
    expect(tcp("199.199.199.198", "mdb", "muser", false), HBA_REJECT, NULL, "/32 one below");
    expect(tcp("199.199.199.200", "mdb", "muser", false), HBA_REJECT, NULL, "/32 one above");
    expect(tcp("128.1.1.1", "mdb2", "muser", false), HBA_TRUST, "128.0.0.0/9",
           "/9 inside (first match)");
    expect(tcp("128.127.255.255", "mdb2", "muser", false), HBA_TRUST, "128.0.0.0/9",
           "/9 last address");
    expect(tcp("128.128.0.0", "mdb2", "muser", false), HBA_MD5, "128.0.0.0/1",
           "/9 edge + 1 goes to /1");
    expect(tcp("254.1.1.1", "mdb2", "muser", false), HBA_MD5, "128.0.0.0/1", "/1");
    expect(tcp("127.255.255.255", "mdb2", "muser", false), HBA_REJECT, NULL, "/1 edge - 1");
    expect(tcp("0.0.0.0", "wide", "u", false), HBA_TRUST, "wide", "/0 lowest");
    expect(tcp("255.255.255.255", "wide", "u", false), HBA_TRUST, "wide", "/0 highest");
    expect(tcp("::1", "mdb", "muser", false), HBA_TRUST, "::1/128", "/128 exact");
    expect(tcp("::2", "mdb", "muser", false), HBA_REJECT, "::/0", "/128 miss, then ::/0 reject");
    expect(tcp("ff11:2::1", "mdb", "muser", false), HBA_MD5, "ff11::/16", "IPv6 /16");
    expect(tcp("ff12::1", "mdb", "muser", false), HBA_REJECT, "::/0", "IPv6 /16 miss");
    expect(tcp("fe80::abcd:1", "mdb", "muser", false), HBA_PASSWORD, "fe80::1",
           "IPv6 netmask column (host bits in the address ignored)");
    expect(tcp("fe80:0:0:1::1", "mdb", "muser", false), HBA_REJECT, "::/0",
           "IPv6 netmask column miss");
    expect(tcp("::ffff:1.2.3.4", "wide", "u", false), HBA_REJECT, "::/0",
           "IPv4 rule does not match an IPv6 address");
    expect(tcp("1.2.3.4", "other", "u", false), HBA_REJECT, NULL, "::/0 does not match IPv4");
    expect(tcp("1.2.3.4", "mdb3", "u", false), HBA_SCRAM, "mdb3", "address all: IPv4");
    expect(tcp("face::1", "mdb3", "u", true), HBA_SCRAM, "mdb3", "address all: IPv6 + TLS");
    expect(tcp("1.2.3.4", "mdb4", "u", false), HBA_REJECT, "mdb4", "explicit reject line");
}

static void test_replication(void)
{
    struct hba_client c;

    c = local("whatever", "repl");
    c.replication = true;
    expect(c, HBA_TRUST, "local      replication", "replication keyword, physical replication");
    c = local("whatever", "other");
    c.replication = true;
    expect(c, HBA_REJECT, NULL, "all does not match a replication connection");
    expect(local("replication", "repl"), HBA_MD5, "local      all          all",
           "keyword replication does not match a normal connection to db \"replication\"");
    c = tcp("30.1.2.3", "x", "admin", false);
    c.replication = true;
    expect(c, HBA_TRUST, "replication,db2", "replication in a list");
    expect(tcp("30.1.2.3", "db2", "admin", false), HBA_TRUST, "replication,db2",
           "normal db in the same list");
    c = tcp("30.1.2.3", "db2", "admin2", false);
    c.replication = true;
    expect(c, HBA_REJECT, NULL, "replication, wrong user");
}

static void test_first_match_and_no_match(void)
{
    const char *path = write_str("host all all 1.0.0.0/8 md5\n"
                                 "host all all 1.2.0.0/16 trust\n"
                                 "host all bob 1.2.3.4/32 reject\n");
    char err[256];
    struct hba *h = hba_load(path, err, sizeof(err));
    struct hba_client c = tcp("1.2.3.4", "db", "bob", false);
    const char *map = "x";
    int line = -1;

    TAP_CHECK(h != NULL && hba_match(h, &c, NULL, &line) == HBA_MD5 && line == 1,
              "first matching line wins over narrower later lines");
    c = tcp("2.0.0.1", "db", "bob", false);
    TAP_CHECK(hba_match(h, &c, &map, &line) == HBA_REJECT && line == 0 && map == NULL,
              "no match: reject, line 0, map NULL");
    TAP_CHECK(hba_match(NULL, &c, &map, &line) == HBA_REJECT && line == 0, "no hba loaded: reject");
    c.dbname = NULL;
    TAP_CHECK(hba_match(h, &c, NULL, NULL) == HBA_REJECT, "missing db name: reject");
    hba_free(h);

    path = write_str("");
    h = hba_load(path, err, sizeof(err));
    c = tcp("1.2.3.4", "db", "bob", false);
    TAP_CHECK(h != NULL && hba_rule_count(h) == 0 && hba_match(h, &c, NULL, NULL) == HBA_REJECT,
              "empty file loads and rejects everything");
    hba_free(h);

    path = write_str("# only comments\r\n\r\nlocal all all trust\r\nhost all all all md5 # x\r\n");
    h = hba_load(path, err, sizeof(err));
    c = local("db", "u");
    TAP_CHECK(h != NULL && hba_match(h, &c, NULL, NULL) == HBA_TRUST, "CRLF line endings");
    if (h == NULL)
        printf("#   %s\n", err);
    hba_free(h);

    path = write_str("local all all md5"); /* no final newline */
    h = hba_load(path, err, sizeof(err));
    TAP_CHECK(h != NULL && hba_rule_count(h) == 1, "last line without newline");
    TAP_CHECK(hba_method_line(h, HBA_MD5) == 1 && hba_method_line(h, HBA_CERT) == 0,
              "method lines of a one-line file");
    hba_free(h);
}

static void test_messages(void)
{
    char buf[256];
    struct hba_client c = tcp("10.1.2.3", "app", "alice", false);

    hba_reject_message(&c, false, buf, sizeof(buf));
    TAP_STR_EQ(buf,
               "no pg_hba.conf entry for host \"10.1.2.3\", user \"alice\", database \"app\", no "
               "encryption",
               "no-entry text");
    c = tcp("::1", "app", "alice", true);
    hba_reject_message(&c, true, buf, sizeof(buf));
    TAP_STR_EQ(buf,
               "pg_hba.conf rejects connection for host \"::1\", user \"alice\", database \"app\", "
               "SSL encryption",
               "explicit reject text, IPv6, TLS");
    c = local("app", "alice");
    c.replication = true;
    hba_reject_message(&c, false, buf, sizeof(buf));
    TAP_STR_EQ(buf,
               "no pg_hba.conf entry for replication connection from host \"[local]\", user "
               "\"alice\", no encryption",
               "replication no-entry text, Unix socket");
    hba_reject_message(&c, true, buf, sizeof(buf));
    TAP_STR_EQ(buf,
               "pg_hba.conf rejects replication connection for host \"[local]\", user \"alice\", "
               "no encryption",
               "replication explicit reject text");
    TAP_STR_EQ(hba_method_name(HBA_SCRAM), "scram-sha-256", "method name");
    TAP_STR_EQ(hba_method_name((enum hba_method)99), "INVALID", "method name out of range");
}

static void test_set_addr(void)
{
    struct sockaddr_in sin = {0};
    struct sockaddr_in6 sin6 = {0};
    struct sockaddr_un sun = {0};
    struct hba_client c = {0};
    uint8_t want4[4] = {192, 0, 2, 7};

    sin.sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
    hba_client_set_addr(&c, (struct sockaddr *)&sin);
    TAP_CHECK(c.family == AF_INET && !c.is_unix && memcmp(c.addr, want4, 4) == 0, "set_addr IPv4");

    sin6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &sin6.sin6_addr);
    hba_client_set_addr(&c, (struct sockaddr *)&sin6);
    TAP_CHECK(c.family == AF_INET && memcmp(c.addr, want4, 4) == 0,
              "set_addr IPv4-mapped IPv6 becomes IPv4");

    inet_pton(AF_INET6, "2001:db8::5", &sin6.sin6_addr);
    hba_client_set_addr(&c, (struct sockaddr *)&sin6);
    TAP_CHECK(c.family == AF_INET6 && memcmp(c.addr, &sin6.sin6_addr, 16) == 0, "set_addr IPv6");

    sun.sun_family = AF_UNIX;
    hba_client_set_addr(&c, (struct sockaddr *)&sun);
    TAP_CHECK(c.is_unix, "set_addr AF_UNIX sets is_unix");
}

/*==================================================================
 * Malformed lines
 *==================================================================*/

/* Load text (the bad line preceded by `before` blank/comment lines) and check the error. */
static void expect_error(const char *bad_line, const char *want, const char *desc)
{
    char text[1024], err[512], prefix[300];
    const char *path;
    struct hba *h;

    snprintf(text, sizeof(text), "# comment\n\nlocal all all trust\n%s\nlocal all all md5\n",
             bad_line);
    path = write_str(text);
    h = hba_load(path, err, sizeof(err));
    snprintf(prefix, sizeof(prefix), "%s:4: ", path);
    TAP_CHECK(h == NULL && strncmp(err, prefix, strlen(prefix)) == 0 && strstr(err, want) != NULL,
              "error: %s", desc);
    if (h != NULL || strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, want) == NULL)
        printf("#   line '%s'\n#   got '%s'\n#   want '%s%s'\n", bad_line, h ? "(loaded)" : err,
               prefix, want);
    hba_free(h);
}

static void test_errors(void)
{
    static const struct {
        const char *line, *want;
    } cases[] = {
        {"hosts all all 1.2.3.4/32 md5", "invalid connection type \"hosts\""},
        {"\"host\" all all 1.2.3.4/32 md5", "invalid connection type \"host\""},
        {"host", "end-of-line before database specification"},
        {"host all", "end-of-line before role specification"},
        {"host all all", "end-of-line before IP address specification"},
        {"host all all # 1.2.3.4/32 md5", "end-of-line before IP address specification"},
        {"host all all 1.2.3.4/32", "end-of-line before authentication method"},
        {"local all all", "end-of-line before authentication method"},
        {"host all all 1.2.3.4", "end-of-line before netmask specification"},
        {"host all all 1.2.3.4 md5", "invalid IP mask \"md5\""},
        {"host all all 1.2.3.4 ffff:: md5", "IP address and mask do not match"},
        {"host all all 1.2.3.4/33 md5", "invalid CIDR mask in address \"1.2.3.4/33\""},
        {"host all all ::1/129 md5", "invalid CIDR mask in address \"::1/129\""},
        {"host all all 1.2.3.4/ md5", "invalid CIDR mask"},
        {"host all all 1.2.3.4/-1 md5", "invalid CIDR mask"},
        {"host all all 1.2.3.4/8x md5", "invalid CIDR mask"},
        {"host all all 1.2.3.4/0008 md5", "invalid CIDR mask"},
        {"host all all 1.2.3.999/32 md5", "invalid IP address \"1.2.3.999/32\""},
        {"host all all db.example.com md5", "host names are not supported"},
        {"host all all \"all\" md5", "host names are not supported"},
        {"host all all samehost md5", "\"samehost\" is not supported"},
        {"host all all samenet md5", "\"samenet\" is not supported"},
        {"host all all 1.2.3.4/32,5.6.7.8/32 md5", "multiple values specified for host address"},
        {"host all all 1.2.3.4 255.0.0.0,255.0.0.0 md5", "multiple values specified for netmask"},
        {"local all all md5,trust", "multiple values specified for authentication type"},
        {"local,host all all md5", "multiple values specified for connection type"},
        {"host all all all ldap ldapserver=x", "authentication method \"ldap\" is not supported"},
        {"local all all pam", "authentication method \"pam\" is not supported"},
        {"host all all all gss", "authentication method \"gss\" is not supported"},
        {"host all all all sspi", "authentication method \"sspi\" is not supported"},
        {"host all all all ident", "authentication method \"ident\" is not supported"},
        {"host all all all md6", "invalid authentication method \"md6\""},
        {"host all all all MD5", "invalid authentication method \"MD5\""},
        {"host all all all md5 map=x", "\"map\" is only valid for authentication methods cert"},
        {"host all all all cert map=", "empty value for authentication option \"map\""},
        {"host all all all trust foo=bar", "authentication option \"foo\" is not supported"},
        {"hostssl all all all cert clientcert=verify-ca", "option \"clientcert\" is not supported"},
        {"host all all all md5 clientcert=verify-full", "option \"clientcert\" is not supported"},
        {"host all all all trust foo", "not in name=value format: \"foo\""},
        {"host all all all trust =x", "not in name=value format"},
        {"host all all all trust a=1,b=2",
         "multiple values specified for an authentication option"},
        {"host all all all peer", "peer authentication is only supported on local sockets"},
        {"local all all cert", "cert authentication is only supported on host and hostssl"},
        {"hostnossl all all all cert", "cert authentication is only supported on host and hostssl"},
        {"local all +admins md5", "group names (\"+admins\") are not supported"},
        {"local samerole all md5", "\"samerole\" is not supported"},
        {"local samegroup all md5", "\"samegroup\" is not supported"},
        {"local /^db$ all md5", "regular expressions (\"/^db$\") are not supported"},
        {"local all /^u.*$ md5", "regular expressions (\"/^u.*$\") are not supported"},
        {"local @ all md5", "missing file name after \"@\""},
        {"local @no_such.list all md5", "no_such.list\": No such file or directory"},
        {"local \"unterminated all md5", "unterminated quoted string"},
        {"local all all md5 map=\"x", "unterminated quoted string"},
        {"local db,,x all md5", "empty name in comma-separated list"},
        {"local db , , all md5", "empty name in comma-separated list"},
        {"local db, ", "comma at end of line"},
        {"local db,# comment", "comma at end of line"},
        {"local \"\" all md5", "empty quoted string"},
        {"local db, all md5", "end-of-line before authentication method"},
        {"include other.conf", "include directives are not supported"},
        {"include_dir conf.d", "include directives are not supported"},
        {"hostgssenc all all all md5", "\"hostgssenc\" is not supported"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i].line, cases[i].want, cases[i].want);
}

static void test_error_special(void)
{
    char err[512], want[512];
    const char *path;
    struct hba *h;
    static const char nul_text[] = "local all all trust\nlocal all\0all md5\n";

    path = write_file(NULL, nul_text, sizeof(nul_text) - 1);
    h = hba_load(path, err, sizeof(err));
    snprintf(want, sizeof(want), "%s:2: line contains a NUL byte", path);
    TAP_STR_EQ(h ? "(loaded)" : err, want, "NUL byte in a line");
    hba_free(h);

    /* An error inside an @file names that file and its line. */
    path = write_file("bad_users.list", "alice\n+staff\n", 13);
    snprintf(want, sizeof(want), "%s:2: group names (\"+staff\") are not supported", path);
    path = write_str("local all all trust\nlocal all @bad_users.list md5\n");
    h = hba_load(path, err, sizeof(err));
    TAP_STR_EQ(h ? "(loaded)" : err, want, "error inside @file: that file's path and line");
    hba_free(h);

    /* A file that names itself must stop, not recurse forever. */
    path = write_file("loop.list", "a @loop.list\n", 13);
    path = write_str("local @loop.list all md5\n");
    h = hba_load(path, err, sizeof(err));
    TAP_CHECK(h == NULL && strstr(err, "nested more than 10 deep") != NULL,
              "@file naming itself: nesting limit");
    if (h != NULL || strstr(err, "nested more than 10 deep") == NULL)
        printf("#   got '%s'\n", err);
    hba_free(h);

    snprintf(want, sizeof(want), "%s/does_not_exist.conf", tmpdir);
    h = hba_load(want, err, sizeof(err));
    TAP_CHECK(h == NULL &&
                  strstr(err, "does_not_exist.conf: could not open file: No such file") != NULL,
              "missing hba file");
    h = hba_load("", err, sizeof(err));
    TAP_CHECK(h == NULL && err[0] != '\0', "empty hba file name");
    h = hba_load(tmpdir, err, sizeof(err));
    TAP_CHECK(h == NULL && err[0] != '\0', "a directory is not an hba file");

    /* Host bits set beyond the mask are accepted and ignored, as PostgreSQL does. */
    path = write_str("host all all 10.1.2.3/8 md5\nhost all all 2001:db8::1/32 trust\n");
    h = hba_load(path, err, sizeof(err));
    {
        struct hba_client c = tcp("10.200.0.1", "d", "u", false);
        struct hba_client c6 = tcp("2001:db8:ffff::9", "d", "u", false);

        TAP_CHECK(h != NULL && hba_match(h, &c, NULL, NULL) == HBA_MD5 &&
                      hba_match(h, &c6, NULL, NULL) == HBA_TRUST,
                  "host bits beyond the prefix are ignored");
    }
    hba_free(h);
}

/*==================================================================
 * Size and robustness
 *==================================================================*/

static void test_thousand_lines(void)
{
    size_t cap = 1 << 17, used = 0;
    char *text = malloc(cap), err[256];
    const char *path;
    struct hba *h;
    struct hba_client c;
    int line = 0;

    for (int i = 1; i < 1000; i++)
        used +=
            (size_t)snprintf(text + used, cap - used, "host db%d user%d,shared 10.%d.%d.0/24 %s\n",
                             i, i, i / 256, i % 256, i % 2 ? "md5" : "scram-sha-256");
    used += (size_t)snprintf(text + used, cap - used, "hostssl all all all cert map=last\n");
    path = write_file(NULL, text, used);
    h = hba_load(path, err, sizeof(err));
    TAP_CHECK(h != NULL && hba_rule_count(h) == 1000, "1,000-line file loads");
    c = tcp("10.1.244.9", "db500", "user500", false);
    TAP_CHECK(hba_match(h, &c, NULL, &line) == HBA_SCRAM && line == 500, "match on line 500");
    c = tcp("10.3.231.200", "db999", "shared", false);
    TAP_CHECK(hba_match(h, &c, NULL, &line) == HBA_MD5 && line == 999, "match on line 999");
    c = tcp("10.3.231.200", "db998", "shared", true);
    TAP_CHECK(hba_match(h, &c, NULL, &line) == HBA_CERT && line == 1000, "match on line 1,000");
    c.is_tls = false;
    TAP_CHECK(hba_match(h, &c, NULL, &line) == HBA_REJECT && line == 0, "no match in 1,000 lines");
    hba_free(h);

    /* The same line with a mistake at line 777 names line 777. */
    used = 0;
    for (int i = 1; i <= 1000; i++)
        used += (size_t)snprintf(text + used, cap - used, "host db%d all 10.0.0.0/%d md5\n", i,
                                 i == 777 ? 40 : 8);
    path = write_file(NULL, text, used);
    h = hba_load(path, err, sizeof(err));
    TAP_CHECK(h == NULL && strstr(err, ":777: invalid CIDR mask") != NULL,
              "error at line 777 of 1,000");
    hba_free(h);
    free(text);
}

/* Random lines from hostile pieces: the loader must return a result or an error, never crash. */
static void test_garbage(void)
{
    static const char *const pieces[] = {
        "host",
        "local",
        "hostssl",
        "all",
        "md5",
        "cert",
        "peer",
        "map=m",
        "\"",
        "\"\"",
        ",",
        ", ",
        "#",
        "@",
        "@x",
        "/",
        "1.2.3.4",
        "/32",
        "::1",
        "/128",
        "255.255.255.0",
        " ",
        "\t",
        "\r",
        "replication",
        "sameuser",
        "+g",
        "=",
        "trust",
        "reject",
        "\xff\xfe",
        "a",
        "0",
        "/999",
        "ffff::",
        "samehost",
        "\"a\"\"b\"",
        "scram-sha-256",
    };
    int loaded = 0, failed = 0, bad_err = 0;
    char text[4096], err[512];

    srand(4242);
    for (int iter = 0; iter < 3000; iter++) {
        size_t used = 0;
        int lines = 1 + rand() % 4;
        const char *path;
        struct hba *h;

        for (int l = 0; l < lines; l++) {
            int n = rand() % 12;

            for (int k = 0; k < n && used < sizeof(text) - 64; k++) {
                const char *p = pieces[rand() % (int)(sizeof(pieces) / sizeof(pieces[0]))];

                used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s", p,
                                         rand() % 3 ? " " : "");
            }
            text[used++] = '\n';
        }
        path = write_file("garbage.conf", text, used);
        err[0] = '\0';
        h = hba_load(path, err, sizeof(err));
        if (h != NULL) {
            struct hba_client c = tcp("1.2.3.4", "a", "a", iter % 2);

            (void)hba_match(h, &c, NULL, NULL);
            loaded++;
        } else {
            failed++;
            if (strncmp(err, path, strlen(path)) != 0)
                bad_err++;
        }
        hba_free(h);
    }
    TAP_CHECK(bad_err == 0 && loaded > 0 && failed > 0,
              "3,000 random files: %d loaded, %d refused, all errors start with the path", loaded,
              failed);
}

/*==================================================================
 * Ident maps
 *==================================================================*/

static void test_ident(void)
{
    char path[512], err[512];
    struct ident *id;

    snprintf(path, sizeof(path), "%s/ident.conf", PGMUX_HBA_DATA);
    id = ident_load(path, err, sizeof(err));
    TAP_CHECK(id != NULL, "ident fixture loads");
    if (id == NULL)
        printf("#   %s\n", err);
    TAP_CHECK(ident_match(id, "localmap", "postgres", "admin"), "map: postgres -> admin");
    TAP_CHECK(!ident_match(id, "localmap", "postgres", "alice"), "map: postgres -/-> alice");
    TAP_CHECK(ident_match(id, "localmap", "alice", "alice"), "map: alice -> alice");
    TAP_CHECK(!ident_match(id, "certmap", "postgres", "admin"), "other map's line does not apply");
    TAP_CHECK(ident_match(id, "certmap", "CN with space", "bob"), "quoted system user");
    TAP_CHECK(ident_match(id, "certmap", "carol", "anyone") &&
                  ident_match(id, "certmap", "carol", "admin"),
              "db user keyword all");
    TAP_CHECK(ident_match(id, "othermap", "/notregex", "dave"), "quoted leading / is a name");
    TAP_CHECK(ident_match(id, "othermap", "erin", "all") &&
                  !ident_match(id, "othermap", "erin", "bob"),
              "quoted \"all\" is the user named all");
    TAP_CHECK(!ident_match(id, "nomap", "alice", "alice"), "unknown map: no");
    TAP_CHECK(!ident_match(id, "LOCALMAP", "postgres", "admin"), "map names are case-sensitive");
    TAP_CHECK(ident_match(NULL, NULL, "alice", "alice") && !ident_match(NULL, NULL, "alice", "bob"),
              "no map: system user must equal db user");
    TAP_CHECK(!ident_match(NULL, "localmap", "postgres", "admin"),
              "map given but no ident file: no");
    TAP_CHECK(!ident_match(id, "localmap", NULL, "admin"), "NULL system user: no");
    ident_free(id);
    ident_free(NULL);
}

static void expect_ident_error(const char *bad_line, const char *want)
{
    char text[512], err[512], prefix[300];
    const char *path;
    struct ident *id;

    snprintf(text, sizeof(text), "m a b\n# c\n%s\n", bad_line);
    path = write_str(text);
    id = ident_load(path, err, sizeof(err));
    snprintf(prefix, sizeof(prefix), "%s:3: ", path);
    TAP_CHECK(id == NULL && strncmp(err, prefix, strlen(prefix)) == 0 && strstr(err, want) != NULL,
              "ident error: %s", want);
    if (id != NULL || strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, want) == NULL)
        printf("#   got '%s'\n", id ? "(loaded)" : err);
    ident_free(id);
}

static void test_ident_errors(void)
{
    char err[256];

    expect_ident_error("m /^(.*)$ \\1", "regular expressions (\"/^(.*)$\") are not supported");
    expect_ident_error("m sys", "missing entry at end of line");
    expect_ident_error("m", "missing entry at end of line");
    expect_ident_error("m sys db extra", "extra field \"extra\"");
    expect_ident_error("m sys +group", "group names (\"+group\") are not supported");
    expect_ident_error("m a,b c", "comma lists are not allowed");
    expect_ident_error("include other.conf", "include directives are not supported");
    expect_ident_error("m \"sys db", "unterminated quoted string");
    TAP_CHECK(ident_load("/nonexistent/ident.conf", err, sizeof(err)) == NULL &&
                  strstr(err, "could not open file") != NULL,
              "missing ident file");
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/pgmux_hba_XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    test_load_fixture();
    test_local();
    test_ssl_types();
    test_names();
    test_at_file();
    test_cidr();
    test_replication();
    test_first_match_and_no_match();
    test_messages();
    test_set_addr();
    test_errors();
    test_error_special();
    test_thousand_lines();
    test_garbage();
    test_ident();
    test_ident_errors();
    hba_free(rules);

    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            printf("# could not remove %s\n", tmpdir);
    }
    return tap_done();
}
