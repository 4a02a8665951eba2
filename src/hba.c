/* SPDX-License-Identifier: ISC */
/*
 * hba: loads auth_hba_file and auth_ident_file into immutable rule lists.
 *
 * Each line is first split into fields by a tokenizer that copies the line
 * into a scratch buffer, unescaping quotes in place (the result is never
 * longer than the input), so tokens are pointers into that buffer and carry a
 * "quoted" flag: a quoted keyword ("all") is a plain name, as in PostgreSQL.
 * A field is one token or a comma list; whitespace around the commas is
 * allowed, as PgBouncer allows it. The line is then checked field by field
 * and turned into a rule whose strings it owns. Name lists are sorted once so
 * a match is a binary search; rule addresses are pre-masked so a match is a
 * masked compare.
 *
 * The file is written by people, often under pressure: every malformed line
 * is an error naming the file, the line and the problem, nothing is silently
 * skipped, and no input can make the loader read out of bounds or recurse
 * without limit (@file nesting is capped).
 */
#include "hba.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HBA_MAX_FILE_DEPTH 10 /* @file inside @file; also stops a file naming itself */

#define NAME_ALL         0x01u
#define NAME_SAMEUSER    0x02u /* database field only */
#define NAME_REPLICATION 0x04u /* database field only */

enum hba_conn {
    CONN_LOCAL,
    CONN_HOST,
    CONN_HOSTSSL,
    CONN_HOSTNOSSL,
};

/* A database or user field: keywords as flags plus a sorted, unique name list. */
struct hba_names {
    unsigned flags;
    char **names;
    size_t n, cap;
};

struct hba_rule {
    enum hba_conn conn;
    struct hba_names db;
    struct hba_names user;
    bool addr_all;    /* address "all": any TCP client */
    int family;       /* AF_INET or AF_INET6 unless addr_all or local */
    uint8_t addr[16]; /* already masked */
    uint8_t mask[16];
    enum hba_method method;
    char *map; /* map= option or NULL */
    int line;
};

struct hba {
    struct hba_rule *rules;
    size_t n, cap;
};

struct ident_entry {
    char *map;
    char *sys_user;
    char *db_user; /* NULL = the keyword all */
};

struct ident {
    struct ident_entry *entries;
    size_t n, cap;
};

static const char *const method_names[HBA_METHOD_COUNT] = {
    [HBA_REJECT] = "reject",     [HBA_TRUST] = "trust",         [HBA_MD5] = "md5",
    [HBA_PASSWORD] = "password", [HBA_SCRAM] = "scram-sha-256", [HBA_CERT] = "cert",
    [HBA_PEER] = "peer",
};

/* Methods PostgreSQL knows and pgmux does not implement: named so the error says so. */
static const char *const unsupported_methods[] = {
    "ldap", "pam", "gss", "sspi", "ident", "radius", "bsd", "oauth", "scram-sha-1", NULL,
};

/*==================================================================
 * Errors
 *==================================================================*/

/* Where the error is reported: the innermost file and line being read. */
struct where {
    const char *path;
    int line;
    char *err;
    size_t errlen;
};

static bool fail(const struct where *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Always returns false, so a check can "return fail(...)". */
static bool fail(const struct where *w, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (w->err == NULL || w->errlen == 0)
        return false;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (w->line > 0)
        snprintf(w->err, w->errlen, "%s:%d: %s", w->path, w->line, msg);
    else
        snprintf(w->err, w->errlen, "%s: %s", w->path, msg);
    return false;
}

/*==================================================================
 * Tokenizer
 *==================================================================*/

struct tok {
    const char *s; /* points into tokline.buf */
    bool quoted;   /* some part was in double quotes: never a keyword */
};

struct field {
    size_t first; /* index into tokline.toks */
    size_t n;     /* tokens in the comma list, >= 1 */
};

/* One line split into fields; reused from line to line to keep allocations down. */
struct tokline {
    char *buf;
    size_t bufcap;
    struct tok *toks;
    size_t ntoks, tokcap;
    struct field *fields;
    size_t nfields, fieldcap;
};

static void tokline_free(struct tokline *tl)
{
    free(tl->buf);
    free(tl->toks);
    free(tl->fields);
    memset(tl, 0, sizeof(*tl));
}

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    size_t ncap;
    void *p;

    if (need <= *cap)
        return true;
    ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return false;
        ncap *= 2;
    }
    p = realloc(*arr, ncap * elem);
    if (p == NULL)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static const char *skip_blank(const char *p)
{
    while (is_blank(*p))
        p++;
    return p;
}

/*
 * Split line into fields. '#' outside quotes starts a comment; "" inside
 * quotes is a literal quote (PgBouncer's escape). False with an error on an
 * unterminated quote, an empty quoted string or a dangling comma.
 */
static bool tokenize(struct tokline *tl, const char *line, const struct where *w)
{
    size_t len = strlen(line);
    const char *p = line;
    char *out;

    if (!grow((void **)&tl->buf, &tl->bufcap, len + 1, 1))
        return fail(w, "out of memory");
    out = tl->buf;
    tl->ntoks = tl->nfields = 0;

    for (;;) {
        struct field *f;

        p = skip_blank(p);
        if (*p == '\0' || *p == '#')
            return true;
        if (*p == ',')
            return fail(w, "empty name in comma-separated list");
        if (!grow((void **)&tl->fields, &tl->fieldcap, tl->nfields + 1, sizeof(struct field)))
            return fail(w, "out of memory");
        f = &tl->fields[tl->nfields++];
        f->first = tl->ntoks;
        f->n = 0;

        for (;;) {
            struct tok *t;
            bool in_quote = false, quoted = false;
            char *start = out;
            const char *q;

            while (*p != '\0' && (in_quote || (!is_blank(*p) && *p != ',' && *p != '#'))) {
                if (*p == '"') {
                    if (in_quote && p[1] == '"') {
                        *out++ = '"';
                        p += 2;
                        continue;
                    }
                    in_quote = !in_quote;
                    quoted = true;
                    p++;
                    continue;
                }
                *out++ = *p++;
            }
            if (in_quote)
                return fail(w, "unterminated quoted string");
            *out++ = '\0';
            if (quoted && *start == '\0')
                return fail(w, "empty quoted string");
            if (!grow((void **)&tl->toks, &tl->tokcap, tl->ntoks + 1, sizeof(struct tok)))
                return fail(w, "out of memory");
            t = &tl->toks[tl->ntoks++];
            t->s = start;
            t->quoted = quoted;
            f->n++;

            /* A comma continues the list, with or without blanks around it. */
            q = skip_blank(p);
            if (*q != ',')
                break;
            p = skip_blank(q + 1);
            if (*p == '\0' || *p == '#')
                return fail(w, "comma at end of line");
            if (*p == ',')
                return fail(w, "empty name in comma-separated list");
        }
    }
}

static const struct tok *field_tok(const struct tokline *tl, size_t field, size_t i)
{
    return &tl->toks[tl->fields[field].first + i];
}

static bool is_kw(const struct tok *t, const char *kw)
{
    return !t->quoted && strcmp(t->s, kw) == 0;
}

/*
 * Read a file line by line, calling fn for each. The reader rejects NUL bytes
 * (a truncated string would hide the rest of the line from the parser).
 */
typedef bool (*line_fn)(void *arg, const char *line, struct where *w);

/* from: the line naming this file (an @file reference), so an open failure points there. */
static bool read_lines(const char *path, line_fn fn, void *arg, const struct where *from, char *err,
                       size_t errlen)
{
    struct where w = {path, 0, err, errlen};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    bool ok = true;
    FILE *f;

    f = fopen(path, "r");
    if (f == NULL && from != NULL)
        return fail(from, "could not open file \"%s\": %s", path, strerror(errno));
    if (f == NULL)
        return fail(&w, "could not open file: %s", strerror(errno));
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (w.line == INT_MAX) {
            ok = fail(&w, "too many lines");
            break;
        }
        w.line++;
        if (strlen(line) != (size_t)len) {
            ok = fail(&w, "line contains a NUL byte");
            break;
        }
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (!fn(arg, line, &w)) {
            ok = false;
            break;
        }
    }
    if (ok && ferror(f)) {
        w.line = 0;
        ok = fail(&w, "could not read file: %s", strerror(errno));
    }
    free(line);
    fclose(f);
    return ok;
}

/*==================================================================
 * Name lists and @file
 *==================================================================*/

static void names_free(struct hba_names *nm)
{
    for (size_t i = 0; i < nm->n; i++)
        free(nm->names[i]);
    free(nm->names);
    memset(nm, 0, sizeof(*nm));
}

static bool names_add(struct hba_names *nm, const char *s)
{
    char *copy;

    if (!grow((void **)&nm->names, &nm->cap, nm->n + 1, sizeof(char *)))
        return false;
    copy = strdup(s);
    if (copy == NULL)
        return false;
    nm->names[nm->n++] = copy;
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort and drop duplicates, so matching is a binary search. */
static void names_finish(struct hba_names *nm)
{
    size_t i, j;

    if (nm->n < 2)
        return;
    qsort(nm->names, nm->n, sizeof(char *), cmp_str);
    for (i = 1, j = 0; i < nm->n; i++) {
        if (strcmp(nm->names[i], nm->names[j]) == 0)
            free(nm->names[i]);
        else
            nm->names[++j] = nm->names[i];
    }
    nm->n = j + 1;
}

static bool names_contain(const struct hba_names *nm, const char *s)
{
    return nm->n > 0 && bsearch(&s, nm->names, nm->n, sizeof(char *), cmp_str) != NULL;
}

/* "dir of base" + "/" + rel, or rel itself when it is absolute or base has no dir. */
static char *path_relative_to(const char *base, const char *rel)
{
    const char *slash = strrchr(base, '/');
    size_t dirlen, rellen;
    char *res;

    if (rel[0] == '/' || slash == NULL)
        return strdup(rel);
    dirlen = (size_t)(slash - base) + 1; /* keep the slash ("/x" -> "/") */
    rellen = strlen(rel);
    res = malloc(dirlen + rellen + 1);
    if (res == NULL)
        return NULL;
    memcpy(res, base, dirlen);
    memcpy(res + dirlen, rel, rellen + 1);
    return res;
}

struct name_ctx {
    struct hba_names *nm;
    bool is_db;
    int depth;
};

static bool add_name_token(struct name_ctx *nc, const struct tok *t, struct where *w);

/* One line of an @file: every token of every field is a name. */
static bool namefile_line(void *arg, const char *line, struct where *w)
{
    struct name_ctx *nc = arg;
    struct tokline tl = {0};
    bool ok;

    ok = tokenize(&tl, line, w);
    for (size_t i = 0; ok && i < tl.ntoks; i++)
        ok = add_name_token(nc, &tl.toks[i], w);
    tokline_free(&tl);
    return ok;
}

static bool add_name_token(struct name_ctx *nc, const struct tok *t, struct where *w)
{
    const char *s = t->s;

    if (!t->quoted) {
        if (strcmp(s, "all") == 0) {
            nc->nm->flags |= NAME_ALL;
            return true;
        }
        if (nc->is_db && strcmp(s, "sameuser") == 0) {
            nc->nm->flags |= NAME_SAMEUSER;
            return true;
        }
        if (nc->is_db && strcmp(s, "replication") == 0) {
            nc->nm->flags |= NAME_REPLICATION;
            return true;
        }
        if (nc->is_db && (strcmp(s, "samerole") == 0 || strcmp(s, "samegroup") == 0))
            return fail(w,
                        "database keyword \"%s\" is not supported (pgmux has no role "
                        "membership information)",
                        s);
        if (!nc->is_db && s[0] == '+')
            return fail(w, "group names (\"%.100s\") are not supported", s);
        if (s[0] == '/')
            return fail(w, "regular expressions (\"%.100s\") are not supported", s);
        if (s[0] == '@') {
            struct name_ctx sub = *nc;
            char *path;
            bool ok;

            if (s[1] == '\0')
                return fail(w, "missing file name after \"@\"");
            if (nc->depth >= HBA_MAX_FILE_DEPTH)
                return fail(w, "@file references nested more than %d deep", HBA_MAX_FILE_DEPTH);
            path = path_relative_to(w->path, s + 1);
            if (path == NULL)
                return fail(w, "out of memory");
            sub.depth++;
            ok = read_lines(path, namefile_line, &sub, w, w->err, w->errlen);
            free(path);
            return ok;
        }
    }
    if (!names_add(nc->nm, s))
        return fail(w, "out of memory");
    return true;
}

static bool parse_names(struct hba_names *nm, const struct tokline *tl, size_t field, bool is_db,
                        struct where *w)
{
    struct name_ctx nc = {nm, is_db, 0};

    for (size_t i = 0; i < tl->fields[field].n; i++) {
        if (!add_name_token(&nc, field_tok(tl, field, i), w))
            return false;
    }
    names_finish(nm);
    return true;
}

static bool names_match(const struct hba_names *nm, const char *name)
{
    return (nm->flags & NAME_ALL) || names_contain(nm, name);
}

/*==================================================================
 * Addresses
 *==================================================================*/

static int addr_len(int family)
{
    return family == AF_INET ? 4 : 16;
}

/* A bare IP literal into family/bytes; false if it is not one. */
static bool parse_ip(const char *s, int *family, uint8_t out[16])
{
    memset(out, 0, 16);
    if (inet_pton(AF_INET, s, out) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        *family = AF_INET6;
        return true;
    }
    return false;
}

/* Prefix length: 1-3 digits, nothing else (no sign, no blanks). */
static bool parse_prefix(const char *s, int max, int *bits)
{
    int v = 0;

    if (*s == '\0' || strlen(s) > 3)
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (*s - '0');
    }
    if (v > max)
        return false;
    *bits = v;
    return true;
}

static void prefix_mask(int bits, uint8_t mask[16])
{
    memset(mask, 0, 16);
    for (int i = 0; i < bits / 8; i++)
        mask[i] = 0xff;
    if (bits % 8)
        mask[bits / 8] = (uint8_t)(0xff << (8 - bits % 8));
}

/*
 * The address column, and the netmask column after it when the address has
 * no "/bits". *next is the index of the field after the ones consumed.
 */
static bool parse_address(struct hba_rule *r, const struct tokline *tl, size_t field, size_t *next,
                          struct where *w)
{
    const struct tok *t;
    const char *slash;
    char ip[INET6_ADDRSTRLEN + 8];
    size_t iplen;

    if (field >= tl->nfields)
        return fail(w, "end-of-line before IP address specification");
    if (tl->fields[field].n > 1)
        return fail(w, "multiple values specified for host address");
    t = field_tok(tl, field, 0);
    *next = field + 1;

    if (is_kw(t, "all")) {
        r->addr_all = true;
        return true;
    }
    if (is_kw(t, "samehost") || is_kw(t, "samenet"))
        return fail(w, "address keyword \"%s\" is not supported; use an IP address and mask", t->s);

    slash = strchr(t->s, '/');
    iplen = slash ? (size_t)(slash - t->s) : strlen(t->s);
    if (iplen < sizeof(ip)) {
        memcpy(ip, t->s, iplen);
        ip[iplen] = '\0';
    } else {
        ip[0] = '\0'; /* too long to be an IP literal */
    }
    if (!parse_ip(ip, &r->family, r->addr)) {
        if (slash != NULL)
            return fail(w, "invalid IP address \"%.100s\"", t->s);
        return fail(w,
                    "host names are not supported in the address field (\"%.100s\"); use an "
                    "IP address with a CIDR mask",
                    t->s);
    }

    if (slash != NULL) {
        int bits;

        if (!parse_prefix(slash + 1, addr_len(r->family) * 8, &bits))
            return fail(w, "invalid CIDR mask in address \"%.100s\"", t->s);
        prefix_mask(bits, r->mask);
    } else {
        const struct tok *m;
        int mfamily;

        if (field + 1 >= tl->nfields)
            return fail(w, "end-of-line before netmask specification");
        if (tl->fields[field + 1].n > 1)
            return fail(w, "multiple values specified for netmask");
        m = field_tok(tl, field + 1, 0);
        if (!parse_ip(m->s, &mfamily, r->mask))
            return fail(w, "invalid IP mask \"%.100s\"", m->s);
        if (mfamily != r->family)
            return fail(w, "IP address and mask do not match");
        *next = field + 2;
    }
    /* Host bits set in the address are ignored (PostgreSQL masks both sides). */
    for (int i = 0; i < 16; i++)
        r->addr[i] &= r->mask[i];
    return true;
}

/*==================================================================
 * hba lines
 *==================================================================*/

static void rule_free(struct hba_rule *r)
{
    names_free(&r->db);
    names_free(&r->user);
    free(r->map);
}

static bool parse_method(struct hba_rule *r, const struct tok *t, struct where *w)
{
    for (int m = 0; m < HBA_METHOD_COUNT; m++) {
        if (strcmp(t->s, method_names[m]) == 0) {
            r->method = (enum hba_method)m;
            return true;
        }
    }
    for (int i = 0; unsupported_methods[i] != NULL; i++) {
        if (strcmp(t->s, unsupported_methods[i]) == 0)
            return fail(w, "authentication method \"%s\" is not supported by pgmux", t->s);
    }
    return fail(w, "invalid authentication method \"%.100s\"", t->s);
}

static bool parse_option(struct hba_rule *r, const struct tokline *tl, size_t field,
                         struct where *w)
{
    const struct tok *t;
    const char *eq;

    if (tl->fields[field].n > 1)
        return fail(w, "multiple values specified for an authentication option");
    t = field_tok(tl, field, 0);
    eq = strchr(t->s, '=');
    if (eq == NULL || eq == t->s)
        return fail(w, "authentication option not in name=value format: \"%.100s\"", t->s);
    if ((size_t)(eq - t->s) == 3 && strncmp(t->s, "map", 3) == 0) {
        if (r->method != HBA_CERT && r->method != HBA_PEER)
            return fail(w, "authentication option \"map\" is only valid for authentication "
                           "methods cert and peer");
        if (eq[1] == '\0')
            return fail(w, "empty value for authentication option \"map\"");
        free(r->map);
        r->map = strdup(eq + 1);
        if (r->map == NULL)
            return fail(w, "out of memory");
        return true;
    }
    /* Redundant with cert (which always verifies the full certificate), so harmless. */
    if (r->method == HBA_CERT && strcmp(t->s, "clientcert=verify-full") == 0)
        return true;
    return fail(w, "authentication option \"%.*s\" is not supported by pgmux", (int)(eq - t->s),
                t->s);
}

static bool parse_hba_line(struct hba *h, const struct tokline *tl, struct where *w)
{
    struct hba_rule r;
    const struct tok *t;
    size_t f;

    memset(&r, 0, sizeof(r));
    r.line = w->line;

    if (tl->fields[0].n > 1)
        return fail(w, "multiple values specified for connection type");
    t = field_tok(tl, 0, 0);
    if (is_kw(t, "local"))
        r.conn = CONN_LOCAL;
    else if (is_kw(t, "host"))
        r.conn = CONN_HOST;
    else if (is_kw(t, "hostssl"))
        r.conn = CONN_HOSTSSL;
    else if (is_kw(t, "hostnossl"))
        r.conn = CONN_HOSTNOSSL;
    else if (is_kw(t, "hostgssenc") || is_kw(t, "hostnogssenc"))
        return fail(w, "connection type \"%s\" is not supported (pgmux has no GSSAPI encryption)",
                    t->s);
    else if (is_kw(t, "include") || is_kw(t, "include_if_exists") || is_kw(t, "include_dir"))
        return fail(w, "include directives are not supported");
    else
        return fail(w, "invalid connection type \"%.100s\"", t->s);

    if (tl->nfields < 2)
        return fail(w, "end-of-line before database specification");
    if (tl->nfields < 3)
        return fail(w, "end-of-line before role specification");
    if (!parse_names(&r.db, tl, 1, true, w) || !parse_names(&r.user, tl, 2, false, w))
        goto failed;

    f = 3;
    if (r.conn != CONN_LOCAL && !parse_address(&r, tl, 3, &f, w))
        goto failed;

    if (f >= tl->nfields) {
        fail(w, "end-of-line before authentication method");
        goto failed;
    }
    if (tl->fields[f].n > 1) {
        fail(w, "multiple values specified for authentication type");
        goto failed;
    }
    if (!parse_method(&r, field_tok(tl, f, 0), w))
        goto failed;
    /* As PostgreSQL: these lines could never authenticate anybody. */
    if (r.method == HBA_PEER && r.conn != CONN_LOCAL) {
        fail(w, "peer authentication is only supported on local sockets");
        goto failed;
    }
    if (r.method == HBA_CERT && (r.conn == CONN_LOCAL || r.conn == CONN_HOSTNOSSL)) {
        fail(w, "cert authentication is only supported on host and hostssl lines");
        goto failed;
    }
    for (f++; f < tl->nfields; f++) {
        if (!parse_option(&r, tl, f, w))
            goto failed;
    }

    if (!grow((void **)&h->rules, &h->cap, h->n + 1, sizeof(struct hba_rule))) {
        fail(w, "out of memory");
        goto failed;
    }
    h->rules[h->n++] = r;
    return true;

failed:
    rule_free(&r);
    return false;
}

struct hba_load_ctx {
    struct hba *h;
    struct tokline tl;
};

static bool hba_line(void *arg, const char *line, struct where *w)
{
    struct hba_load_ctx *lc = arg;

    if (!tokenize(&lc->tl, line, w))
        return false;
    if (lc->tl.nfields == 0)
        return true;
    return parse_hba_line(lc->h, &lc->tl, w);
}

/*==================================================================
 * Public: hba
 *==================================================================*/

struct hba *hba_load(const char *path, char *err, size_t errlen)
{
    struct hba_load_ctx lc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (path == NULL || path[0] == '\0') {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "no hba file name given");
        return NULL;
    }
    memset(&lc, 0, sizeof(lc));
    lc.h = calloc(1, sizeof(struct hba));
    if (lc.h == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (!read_lines(path, hba_line, &lc, NULL, err, errlen)) {
        tokline_free(&lc.tl);
        hba_free(lc.h);
        return NULL;
    }
    tokline_free(&lc.tl);
    return lc.h;
}

void hba_free(struct hba *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n; i++)
        rule_free(&h->rules[i]);
    free(h->rules);
    free(h);
}

size_t hba_rule_count(const struct hba *h)
{
    return h ? h->n : 0;
}

int hba_method_line(const struct hba *h, enum hba_method m)
{
    for (size_t i = 0; h && i < h->n; i++)
        if (h->rules[i].method == m)
            return h->rules[i].line;
    return 0;
}

static bool addr_match(const struct hba_rule *r, const struct hba_client *c)
{
    if (r->addr_all)
        return true;
    if (c->family != r->family)
        return false;
    for (int i = 0; i < addr_len(r->family); i++) {
        if ((c->addr[i] & r->mask[i]) != r->addr[i])
            return false;
    }
    return true;
}

static bool db_match(const struct hba_rule *r, const struct hba_client *c)
{
    /* PostgreSQL: a physical replication connection matches only the keyword. */
    if (c->replication)
        return (r->db.flags & NAME_REPLICATION) != 0;
    if (r->db.flags & NAME_ALL)
        return true;
    if ((r->db.flags & NAME_SAMEUSER) && strcmp(c->dbname, c->user) == 0)
        return true;
    return names_contain(&r->db, c->dbname);
}

enum hba_method hba_match(const struct hba *h, const struct hba_client *c, const char **map_name,
                          int *line)
{
    if (map_name != NULL)
        *map_name = NULL;
    if (line != NULL)
        *line = 0;
    if (h == NULL || c == NULL || c->dbname == NULL || c->user == NULL)
        return HBA_REJECT;

    for (size_t i = 0; i < h->n; i++) {
        const struct hba_rule *r = &h->rules[i];

        if (c->is_unix) {
            if (r->conn != CONN_LOCAL)
                continue;
        } else {
            if (r->conn == CONN_LOCAL)
                continue;
            if (r->conn == CONN_HOSTSSL && !c->is_tls)
                continue;
            if (r->conn == CONN_HOSTNOSSL && c->is_tls)
                continue;
            if (!addr_match(r, c))
                continue;
        }
        if (!db_match(r, c) || !names_match(&r->user, c->user))
            continue;
        if (map_name != NULL)
            *map_name = r->map;
        if (line != NULL)
            *line = r->line;
        return r->method;
    }
    return HBA_REJECT;
}

void hba_client_set_addr(struct hba_client *c, const struct sockaddr *sa)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    memset(c->addr, 0, sizeof(c->addr));
    c->family = sa->sa_family;
    c->is_unix = sa->sa_family == AF_UNIX;
    if (sa->sa_family == AF_INET) {
        memcpy(c->addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;

        /* A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; rules say a.b.c.d. */
        if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
            c->family = AF_INET;
            memcpy(c->addr, a + 12, 4);
        } else {
            memcpy(c->addr, a, 16);
        }
    }
}

void hba_reject_message(const struct hba_client *c, bool explicit_reject, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    const char *enc = c->is_tls ? "SSL encryption" : "no encryption";
    const char *user = c->user ? c->user : "";
    const char *db = c->dbname ? c->dbname : "";

    if (c->is_unix || (c->family != AF_INET && c->family != AF_INET6) ||
        inet_ntop(c->family, c->addr, host, sizeof(host)) == NULL)
        snprintf(host, sizeof(host), "[local]");

    if (explicit_reject && c->replication)
        snprintf(buf, len,
                 "pg_hba.conf rejects replication connection for host \"%s\", user "
                 "\"%s\", %s",
                 host, user, enc);
    else if (explicit_reject)
        snprintf(buf, len,
                 "pg_hba.conf rejects connection for host \"%s\", user \"%s\", database "
                 "\"%s\", %s",
                 host, user, db, enc);
    else if (c->replication)
        snprintf(buf, len,
                 "no pg_hba.conf entry for replication connection from host \"%s\", "
                 "user \"%s\", %s",
                 host, user, enc);
    else
        snprintf(buf, len, "no pg_hba.conf entry for host \"%s\", user \"%s\", database \"%s\", %s",
                 host, user, db, enc);
}

const char *hba_method_name(enum hba_method m)
{
    if ((int)m < 0 || m >= HBA_METHOD_COUNT)
        return "INVALID";
    return method_names[m];
}

/*==================================================================
 * Ident maps
 *==================================================================*/

struct ident_load_ctx {
    struct ident *id;
    struct tokline tl;
};

static bool ident_line(void *arg, const char *line, struct where *w)
{
    struct ident_load_ctx *lc = arg;
    struct tokline *tl = &lc->tl;
    struct ident_entry e = {0};
    const struct tok *map, *sys, *db;

    if (!tokenize(tl, line, w))
        return false;
    if (tl->nfields == 0)
        return true;
    for (size_t i = 0; i < tl->nfields; i++) {
        if (tl->fields[i].n > 1)
            return fail(w, "comma lists are not allowed in an ident map line");
    }
    map = field_tok(tl, 0, 0);
    if (is_kw(map, "include") || is_kw(map, "include_if_exists") || is_kw(map, "include_dir"))
        return fail(w, "include directives are not supported");
    if (tl->nfields < 3)
        return fail(w, "missing entry at end of line (expected MAPNAME SYSTEM-USER DB-USER)");
    if (tl->nfields > 3)
        return fail(w, "extra field \"%.100s\" at end of line", field_tok(tl, 3, 0)->s);
    sys = field_tok(tl, 1, 0);
    db = field_tok(tl, 2, 0);
    if (!sys->quoted && sys->s[0] == '/')
        return fail(w, "regular expressions (\"%.100s\") are not supported", sys->s);
    if (!db->quoted && db->s[0] == '+')
        return fail(w, "group names (\"%.100s\") are not supported", db->s);

    if (!grow((void **)&lc->id->entries, &lc->id->cap, lc->id->n + 1, sizeof(e)))
        return fail(w, "out of memory");
    e.map = strdup(map->s);
    e.sys_user = strdup(sys->s);
    e.db_user = is_kw(db, "all") ? NULL : strdup(db->s);
    if (e.map == NULL || e.sys_user == NULL || (e.db_user == NULL && !is_kw(db, "all"))) {
        free(e.map);
        free(e.sys_user);
        free(e.db_user);
        return fail(w, "out of memory");
    }
    lc->id->entries[lc->id->n++] = e;
    return true;
}

struct ident *ident_load(const char *path, char *err, size_t errlen)
{
    struct ident_load_ctx lc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (path == NULL || path[0] == '\0') {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "no ident file name given");
        return NULL;
    }
    memset(&lc, 0, sizeof(lc));
    lc.id = calloc(1, sizeof(struct ident));
    if (lc.id == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (!read_lines(path, ident_line, &lc, NULL, err, errlen)) {
        tokline_free(&lc.tl);
        ident_free(lc.id);
        return NULL;
    }
    tokline_free(&lc.tl);
    return lc.id;
}

void ident_free(struct ident *id)
{
    if (id == NULL)
        return;
    for (size_t i = 0; i < id->n; i++) {
        free(id->entries[i].map);
        free(id->entries[i].sys_user);
        free(id->entries[i].db_user);
    }
    free(id->entries);
    free(id);
}

bool ident_match(const struct ident *id, const char *map_name, const char *system_user,
                 const char *db_user)
{
    if (system_user == NULL || db_user == NULL)
        return false;
    if (map_name == NULL)
        return strcmp(system_user, db_user) == 0;
    if (id == NULL)
        return false;
    for (size_t i = 0; i < id->n; i++) {
        const struct ident_entry *e = &id->entries[i];

        if (strcmp(e->map, map_name) != 0 || strcmp(e->sys_user, system_user) != 0)
            continue;
        if (e->db_user == NULL || strcmp(e->db_user, db_user) == 0)
            return true;
    }
    return false;
}
