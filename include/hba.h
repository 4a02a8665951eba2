/* SPDX-License-Identifier: ISC */
/*
 * hba: auth_hba_file (PostgreSQL's pg_hba.conf syntax, the subset PgBouncer
 * accepts) and auth_ident_file (pg_ident.conf maps without regular
 * expressions). Both are loaded whole into immutable objects: a reload loads a
 * new one and the caller swaps it in only when the load succeeded, so a bad
 * edit keeps the old rules. Nothing here logs; errors go to the caller's
 * buffer as "path:line: reason".
 *
 * Supported: record types local, host, hostssl, hostnossl; database field
 * all, sameuser, replication, names, "quoted names", @file, comma lists; user
 * field all, names, @file, comma lists; address all, IPv4/IPv6 CIDR, or an
 * address followed by a netmask column; methods trust, reject, md5, password,
 * scram-sha-256, cert, peer; option map=NAME for cert and peer. Refused with
 * a clear error: +group, samerole/samegroup, /regex, samehost/samenet, host
 * names, include directives, the methods pgmux does not implement (ldap,
 * pam, gss, sspi, ident, radius, bsd) and every other option (silently
 * ignoring e.g. clientcert= would loosen access the operator asked for).
 */
#ifndef PGMUX_HBA_H
#define PGMUX_HBA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Same definition as pgmux.h, which this pure module does not include. */
#ifndef MUSTCHECK
#define MUSTCHECK __attribute__((warn_unused_result))
#endif

struct hba;
struct ident;

enum hba_method {
    HBA_REJECT = 0, /* an explicit reject line, or no line matched */
    HBA_TRUST,
    HBA_MD5,
    HBA_PASSWORD,
    HBA_SCRAM, /* scram-sha-256 */
    HBA_CERT,  /* needs a verified client certificate: fail on a non-TLS connection */
    HBA_PEER,  /* only ever returned for Unix-socket clients */
    HBA_METHOD_COUNT
};

/* What hba_match looks at. Strings are borrowed for the duration of the call. */
struct hba_client {
    bool is_unix;       /* Unix socket: only "local" lines apply */
    bool is_tls;        /* TCP with TLS: hostssl lines apply, hostnossl ones do not */
    int family;         /* AF_INET or AF_INET6 (ignored for Unix sockets) */
    uint8_t addr[16];   /* network byte order; the first 4 bytes for AF_INET */
    const char *dbname; /* the startup packet's database */
    const char *user;   /* the startup packet's user */
    bool replication;   /* physical replication (replication=true). A logical one
                         * (replication=database) is matched as a normal
                         * connection to its database, as PostgreSQL does. */
};

/*
 * Load an hba file. @file references are relative to the directory of the
 * file that names them. NULL on error (bad line, unreadable file, out of
 * memory) with err = "path:line: reason" for the innermost file at fault.
 */
MUSTCHECK struct hba *hba_load(const char *path, char *err, size_t errlen);
void hba_free(struct hba *h);
size_t hba_rule_count(const struct hba *h);

/* Line number of the first rule with method m, 0 when none has it (or h is NULL). */
int hba_method_line(const struct hba *h, enum hba_method m);

/*
 * The method of the first line that matches c; HBA_REJECT when none does
 * (h may be NULL: no rules = reject everything). *map_name (optional) gets
 * the line's map= value or NULL; it points into h. *line (optional) gets the
 * matching line number, or 0 when no line matched: then the client must get
 * hba_reject_message(c, false, ...), and a matched reject line gets
 * hba_reject_message(c, true, ...), which are PostgreSQL's two texts.
 */
enum hba_method hba_match(const struct hba *h, const struct hba_client *c, const char **map_name,
                          int *line);

/*
 * Fill is_unix/family/addr from a socket address (AF_UNIX sets is_unix);
 * IPv4-mapped IPv6 (::ffff:a.b.c.d from a dual-stack listener) becomes AF_INET.
 */
void hba_client_set_addr(struct hba_client *c, const struct sockaddr *sa);

/*
 * PostgreSQL's FATAL text (SQLSTATE 28000) for a refused connection:
 * explicit = a reject line matched ("pg_hba.conf rejects connection for host
 * ..."), else "no pg_hba.conf entry for host ...". Host is "[local]" for a
 * Unix socket; replication connections get PostgreSQL's replication wording.
 */
void hba_reject_message(const struct hba_client *c, bool explicit_reject, char *buf, size_t len);

/* "trust", "md5", "scram-sha-256", ... as written in the file. */
const char *hba_method_name(enum hba_method m);

/*
 * Ident maps: "MAPNAME SYSTEM-USER DB-USER" lines, '#' comments, quoted
 * names; DB-USER may be the keyword all. Same error convention as hba_load.
 */
MUSTCHECK struct ident *ident_load(const char *path, char *err, size_t errlen);
void ident_free(struct ident *id);

/*
 * Whether system_user (peer: the OS user; cert: the certificate's CN) may log
 * in as db_user. map_name NULL: only when the two are equal (PostgreSQL's
 * behaviour without map=). With a map name: only when a line of that map
 * allows it; false when id is NULL (no auth_ident_file) or the map has no lines.
 */
bool ident_match(const struct ident *id, const char *map_name, const char *system_user,
                 const char *db_user);

#endif
