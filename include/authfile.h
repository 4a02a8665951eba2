/* SPDX-License-Identifier: ISC */
/*
 * authfile: the userlist.txt format ("user" "secret" [ignored...] per line,
 * "" inside quotes for a literal quote, ';' or '#' comment lines), loaded into
 * an immutable hash table that a reload replaces whole. Also the md5 password
 * helpers, which only need the secrets this file holds.
 */
#ifndef PGMUX_AUTHFILE_H
#define PGMUX_AUTHFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct authfile;

enum secret_kind {
    SECRET_PLAIN,
    SECRET_MD5,   /* "md5" + 32 hex */
    SECRET_SCRAM, /* "SCRAM-SHA-256$..." */
};

/* NULL on error with err = "file:line: what is wrong" (never the secret). */
struct authfile *authfile_load(const char *path, char *err, size_t errlen);
void authfile_free(struct authfile *af);
const char *authfile_lookup(const struct authfile *af, const char *user); /* NULL = unknown */
size_t authfile_count(const struct authfile *af);
/* The i-th user name (i < authfile_count), in no particular order. */
const char *authfile_user(const struct authfile *af, size_t i);

enum secret_kind secret_kind(const char *secret);

/* "md5" + hex(md5(password || user)), 35 chars + NUL. */
void md5_password_hash(const char *password, const char *user, char out[36]);

/*
 * The md5 answer to AuthenticationMD5Password(salt): "md5" + hex(md5(hex_part ||
 * salt)) where hex_part comes from an md5 secret or is computed from a plain one.
 */
void md5_salted_response(const char *secret, const char *user, const uint8_t salt[4],
                         char out[36]);

/* Check a client's md5 answer against a plain or md5 secret, in constant time. */
bool md5_check(const char *secret, const char *user, const uint8_t salt[4],
               const char *response);

/* Constant-time comparison. */
bool secret_equal(const void *a, const void *b, size_t n);

#endif
