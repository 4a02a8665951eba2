/* SPDX-License-Identifier: ISC */
/*
 * authfile: loads a PgBouncer userlist.txt into an immutable table and holds
 * the md5 password helpers. The whole file is read into one buffer and each
 * quoted field is unescaped in place (the unescaped text is never longer than
 * the quoted one), so the entries are pointers into that buffer and a file of
 * 100k users costs two allocations beyond it. Lookups go through an open-
 * addressing hash table built once after parsing; a reload builds a new
 * authfile and the caller swaps it in whole. The buffer holds passwords, so it
 * is wiped before it is freed, and no error message quotes any field.
 */
#include "authfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define AUTHFILE_MAX_USER     127        /* PgBouncer: user names shorter than 128 bytes */
#define AUTHFILE_MAX_PASSWORD 65530      /* PgBouncer: passwords shorter than 65531 bytes */
#define AUTHFILE_MAX_SIZE     (1u << 30) /* refuse to slurp anything larger */

struct authfile_entry {
    const char *user;   /* points into authfile.buf */
    const char *secret; /* points into authfile.buf */
    uint64_t hash;
};

struct authfile {
    char *buf; /* the file text, fields unescaped and NUL-terminated in place */
    size_t buflen;
    struct authfile_entry *entries; /* unique users, last line wins */
    size_t count;
    uint32_t *slots; /* open addressing: entry index + 1, 0 = empty */
    size_t mask;     /* number of slots - 1 */
};

/*==================================================================
 * Hash table
 *==================================================================*/

/* FNV-1a: the file is the admin's, not an attacker's, so no keyed hash. */
static uint64_t name_hash(const char *s)
{
    uint64_t h = 14695981039346656037ULL;

    for (; *s != '\0'; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static uint32_t *find_slot(const struct authfile *af, const char *user, uint64_t h)
{
    size_t i = (size_t)h & af->mask;

    for (;;) {
        uint32_t *slot = &af->slots[i];
        const struct authfile_entry *e;

        if (*slot == 0)
            return slot;
        e = &af->entries[*slot - 1];
        if (e->hash == h && strcmp(e->user, user) == 0)
            return slot;
        i = (i + 1) & af->mask;
    }
}

/* Fills the slots from entries[0..n) and compacts duplicates (the later line wins). */
static bool build_table(struct authfile *af, size_t n)
{
    size_t nslots = 16, unique = 0;

    while (nslots < n * 2)
        nslots *= 2;
    af->slots = calloc(nslots, sizeof(*af->slots));
    if (af->slots == NULL)
        return false;
    af->mask = nslots - 1;
    for (size_t i = 0; i < n; i++) {
        struct authfile_entry e = af->entries[i];
        uint32_t *slot = find_slot(af, e.user, e.hash);

        if (*slot != 0) {
            af->entries[*slot - 1].secret = e.secret;
            continue;
        }
        af->entries[unique] = e;
        *slot = (uint32_t)(++unique);
    }
    af->count = unique;
    return true;
}

/*==================================================================
 * Parsing
 *==================================================================*/

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/*
 * Reads a quoted field starting at *pp (which is at the opening quote) and
 * ending before lineend, unescaping "" to " in place and NUL-terminating at
 * the end of the unescaped text. On success *pp is just past the closing
 * quote, *field is the text and *flen its length.
 */
static bool read_quoted(char **pp, char *lineend, char **field, size_t *flen)
{
    char *r = *pp + 1, *w = *pp;

    *field = w;
    while (r < lineend) {
        if (*r == '"') {
            if (r + 1 < lineend && r[1] == '"') {
                *w++ = '"';
                r += 2;
                continue;
            }
            *flen = (size_t)(w - *field);
            *w = '\0';
            *pp = r + 1;
            return true;
        }
        *w++ = *r++;
    }
    return false;
}

/*
 * Parses one line that is neither blank nor a comment. Returns NULL on
 * success with the two fields set, or the reason the line is malformed.
 */
static const char *parse_line(char *p, char *lineend, char **user, char **secret)
{
    size_t ulen, slen;

    if (*p != '"')
        return "expected a double-quoted user name";
    if (!read_quoted(&p, lineend, user, &ulen))
        return "unterminated quoted user name";
    if (p < lineend && !is_blank(*p))
        return "expected white space after the user name";
    while (p < lineend && is_blank(*p))
        p++;
    if (p >= lineend)
        return "missing password";
    if (*p != '"')
        return "expected a double-quoted password";
    if (!read_quoted(&p, lineend, secret, &slen))
        return "unterminated quoted password";
    /* More fields may follow (PgBouncer ignores them), but only after a blank. */
    if (p < lineend && !is_blank(*p))
        return "unexpected text right after the password";
    if (ulen == 0)
        return "empty user name";
    if (ulen > AUTHFILE_MAX_USER)
        return "user name too long";
    if (slen > AUTHFILE_MAX_PASSWORD)
        return "password too long";
    return NULL;
}

static bool add_entry(struct authfile *af, size_t *n, size_t *cap, char *user, char *secret)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 256;
        struct authfile_entry *ne = realloc(af->entries, ncap * sizeof(*ne));

        if (ne == NULL)
            return false;
        af->entries = ne;
        *cap = ncap;
    }
    af->entries[*n].user = user;
    af->entries[*n].secret = secret;
    af->entries[*n].hash = name_hash(user);
    (*n)++;
    return true;
}

/* Reads the whole file into a fresh NUL-terminated buffer. */
static bool read_file(const char *path, char **bufp, size_t *lenp, char *err, size_t errlen)
{
    struct stat stbuf;
    size_t cap, len = 0;
    char *buf = NULL;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return false;
    }
    if (fstat(fd, &stbuf) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(stbuf.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    /* The size may change under us; it is only the first guess. */
    cap = (size_t)stbuf.st_size + 1;
    for (;;) {
        ssize_t got;

        if (buf == NULL || len + 1 >= cap) {
            char *nb;

            if (buf != NULL)
                cap *= 2;
            if (cap > AUTHFILE_MAX_SIZE) {
                snprintf(err, errlen, "%s: file too large", path);
                goto fail;
            }
            nb = malloc(cap);
            if (nb == NULL) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            if (buf != NULL) {
                memcpy(nb, buf, len);
                OPENSSL_cleanse(buf, len);
                free(buf);
            }
            buf = nb;
        }
        got = read(fd, buf + len, cap - 1 - len);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    *bufp = buf;
    *lenp = len;
    return true;
fail:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
    close(fd);
    return false;
}

/*==================================================================
 * Public functions
 *==================================================================*/

/*
 * Loads path. Blank lines and lines whose first non-blank character is ';'
 * or '#' are skipped; every other line must hold two double-quoted fields.
 * Returns NULL with err set to "path:line: reason" (or "path: reason" for
 * I/O) on the first bad line: a half-loaded user list is not a safe one.
 */
struct authfile *authfile_load(const char *path, char *err, size_t errlen)
{
    struct authfile *af;
    size_t n = 0, cap = 0;
    char *p, *end;
    int lineno = 0;

    if (errlen > 0)
        err[0] = '\0';
    if (path == NULL) {
        snprintf(err, errlen, "auth_file is not set");
        return NULL;
    }
    af = calloc(1, sizeof(*af));
    if (af == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (!read_file(path, &af->buf, &af->buflen, err, errlen)) {
        free(af);
        return NULL;
    }
    p = af->buf;
    end = af->buf + af->buflen;
    while (p < end) {
        char *lineend = memchr(p, '\n', (size_t)(end - p));
        char *next, *user, *secret;
        const char *why;

        if (lineend == NULL)
            lineend = end;
        next = lineend < end ? lineend + 1 : end;
        lineno++;
        /* Parsed text is NUL-terminated in place, so a NUL in the file would cut a field. */
        if (memchr(p, '\0', (size_t)(lineend - p)) != NULL) {
            snprintf(err, errlen, "%s:%d: NUL byte in line", path, lineno);
            goto fail;
        }
        while (p < lineend && is_blank(*p))
            p++;
        if (p == lineend || *p == ';' || *p == '#') {
            p = next;
            continue;
        }
        why = parse_line(p, lineend, &user, &secret);
        if (why != NULL) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
            goto fail;
        }
        if (!add_entry(af, &n, &cap, user, secret)) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto fail;
        }
        p = next;
    }
    if (!build_table(af, n)) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    return af;
fail:
    authfile_free(af);
    return NULL;
}

void authfile_free(struct authfile *af)
{
    if (af == NULL)
        return;
    if (af->buf != NULL) {
        OPENSSL_cleanse(af->buf, af->buflen);
        free(af->buf);
    }
    free(af->entries);
    free(af->slots);
    free(af);
}

/* The secret for user, exactly as written in the file; NULL if unknown. */
const char *authfile_lookup(const struct authfile *af, const char *user)
{
    uint32_t *slot;

    if (af == NULL || user == NULL || af->slots == NULL)
        return NULL;
    slot = find_slot(af, user, name_hash(user));
    return *slot != 0 ? af->entries[*slot - 1].secret : NULL;
}

size_t authfile_count(const struct authfile *af)
{
    return af != NULL ? af->count : 0;
}

const char *authfile_user(const struct authfile *af, size_t i)
{
    return af->entries[i].user;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* What kind of stored secret this is, by PostgreSQL's rules for pg_authid. */
enum secret_kind secret_kind(const char *secret)
{
    if (secret == NULL)
        return SECRET_PLAIN;
    if (strncmp(secret, "md5", 3) == 0 && strlen(secret) == 35) {
        size_t i;

        for (i = 3; i < 35 && is_hex(secret[i]); i++)
            ;
        if (i == 35)
            return SECRET_MD5;
    }
    if (strncmp(secret, "SCRAM-SHA-256$", 14) == 0)
        return SECRET_SCRAM;
    return SECRET_PLAIN;
}

/*==================================================================
 * md5
 *==================================================================*/

/*
 * One digest context, reused: the md5 exchange then costs no allocation of
 * ours. pgmux is single-threaded.
 */
static EVP_MD_CTX *md5_ctx;

/* "md5" + lowercase hex of md5(a || b), or "" if OpenSSL fails. */
static bool md5_concat_hex(const void *a, size_t alen, const void *b, size_t blen, char out[36])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;

    out[0] = '\0';
    if (md5_ctx == NULL)
        md5_ctx = EVP_MD_CTX_new();
    if (md5_ctx == NULL || !EVP_DigestInit_ex(md5_ctx, EVP_md5(), NULL) ||
        !EVP_DigestUpdate(md5_ctx, a, alen) || !EVP_DigestUpdate(md5_ctx, b, blen) ||
        !EVP_DigestFinal_ex(md5_ctx, d, &dlen) || dlen != 16)
        return false;
    memcpy(out, "md5", 3);
    for (unsigned int i = 0; i < 16; i++) {
        out[3 + 2 * i] = hex[d[i] >> 4];
        out[4 + 2 * i] = hex[d[i] & 15];
    }
    out[35] = '\0';
    OPENSSL_cleanse(d, sizeof(d));
    return true;
}

/* The pg_authid form of an md5 password. out is "" if OpenSSL fails. */
void md5_password_hash(const char *password, const char *user, char out[36])
{
    if (!md5_concat_hex(password, strlen(password), user, strlen(user), out))
        out[0] = '\0';
}

/*
 * The answer to AuthenticationMD5Password. A SCRAM secret cannot give one:
 * out is then "" (as on OpenSSL failure), which no server accepts.
 */
void md5_salted_response(const char *secret, const char *user, const uint8_t salt[4], char out[36])
{
    char inner[36];

    out[0] = '\0';
    switch (secret_kind(secret)) {
    case SECRET_MD5:
        /* PostgreSQL hashes the lowercase hex; a hand-written secret may not be. */
        memcpy(inner, secret, 36);
        for (int i = 3; i < 35; i++) {
            if (inner[i] >= 'A' && inner[i] <= 'F')
                inner[i] = (char)(inner[i] - 'A' + 'a');
        }
        break;
    case SECRET_PLAIN:
        md5_password_hash(secret, user, inner);
        if (inner[0] == '\0')
            return;
        break;
    case SECRET_SCRAM:
    default:
        return;
    }
    if (!md5_concat_hex(inner + 3, 32, salt, 4, out))
        out[0] = '\0';
    OPENSSL_cleanse(inner, sizeof(inner));
}

bool md5_check(const char *secret, const char *user, const uint8_t salt[4], const char *response)
{
    char want[36];
    bool ok;

    if (secret == NULL || user == NULL || response == NULL)
        return false;
    md5_salted_response(secret, user, salt, want);
    /* The length is public (35 for any real answer); the bytes are compared in constant time. */
    ok = want[0] != '\0' && strnlen(response, 36) == 35 && secret_equal(want, response, 35);
    OPENSSL_cleanse(want, sizeof(want));
    return ok;
}

bool secret_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}
