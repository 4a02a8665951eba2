/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for src/authfile.c: the userlist.txt parser (quotes, escaped
 * quotes, comments, extra fields, CRLF, one case per malformed-line rule with
 * the exact "path:line: reason" text, and a 10,000-user file), secret_kind,
 * and the md5 helpers against values computed outside pgmux. The files are
 * written to a fresh temporary directory, so the binary runs from any cwd.
 */
#include "authfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

static char tmpdir[64];
static int nfiles;

/* Writes len bytes to a new file in tmpdir and returns its path (static storage, rotating). */
static const char *write_file(const void *data, size_t len)
{
    static char paths[8][128];
    char *path = paths[nfiles % 8];
    FILE *f;

    snprintf(path, sizeof(paths[0]), "%s/userlist%d.txt", tmpdir, nfiles++);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        printf("# cannot write %s\n", path);
        return path;
    }
    return path;
}

static const char *write_str(const char *text)
{
    return write_file(text, strlen(text));
}

/*==================================================================
 * Parsing
 *==================================================================*/

static void test_good_file(void)
{
    static const char text[] = "; a comment\n"
                               "# another comment\n"
                               "\n"
                               "   \t\n"
                               "  ; indented comment\n"
                               "\"alice\" \"md5a1b2c3d4e5f60718293a4b5c6d7e8f90\"\n"
                               "\"bob\"\t\"plain pass\" \"extra\" \"fields are ignored\"\n"
                               "\"we\"\"ird\" \"pa\"\"ss\"\"\"\n"
                               "\"crlf\" \"secret\"\r\n"
                               "  \"indented\" \"x\"   \n"
                               "\"empty\" \"\"\n"
                               "\"semi;colon\" \"#hash\"\n"
                               "\"scram\" \"SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB\"\n"
                               "\"last\" \"no newline at end\"";
    char err[256];
    struct authfile *af;

    af = authfile_load(write_str(text), err, sizeof(err));
    TAP_CHECK(af != NULL, "good file loads (%s)", af ? "" : err);
    TAP_CHECK(authfile_count(af) == 9, "good file: 9 users (got %zu)", authfile_count(af));
    TAP_STR_EQ(authfile_lookup(af, "alice"), "md5a1b2c3d4e5f60718293a4b5c6d7e8f90", "md5 entry");
    TAP_STR_EQ(authfile_lookup(af, "bob"), "plain pass", "tab separator, extra fields ignored");
    TAP_STR_EQ(authfile_lookup(af, "we\"ird"), "pa\"ss\"",
               "\"\" is a literal quote in both fields");
    TAP_STR_EQ(authfile_lookup(af, "crlf"), "secret", "CRLF line ending");
    TAP_STR_EQ(authfile_lookup(af, "indented"), "x", "leading and trailing blanks");
    TAP_STR_EQ(authfile_lookup(af, "empty"), "", "empty password kept (auth refuses it later)");
    TAP_STR_EQ(authfile_lookup(af, "semi;colon"), "#hash", "; and # inside quotes are text");
    TAP_STR_EQ(authfile_lookup(af, "last"), "no newline at end", "last line without newline");
    TAP_CHECK(authfile_lookup(af, "scram") != NULL, "SCRAM entry present");
    TAP_CHECK(authfile_lookup(af, "a") == NULL, "unknown user");
    TAP_CHECK(authfile_lookup(af, "Alice") == NULL, "lookup is case-sensitive");
    TAP_CHECK(authfile_lookup(af, "alice ") == NULL, "lookup is exact");
    TAP_CHECK(authfile_lookup(af, "a comment") == NULL, "comments are not users");
    authfile_free(af);

    af = authfile_load(write_str(""), err, sizeof(err));
    TAP_CHECK(af != NULL && authfile_count(af) == 0 && authfile_lookup(af, "x") == NULL,
              "empty file: no users");
    authfile_free(af);
    af = authfile_load(write_str("\"dup\" \"one\"\n\"other\" \"o\"\n\"dup\" \"two\"\n"), err,
                       sizeof(err));
    TAP_CHECK(af != NULL && authfile_count(af) == 2, "duplicate user counted once");
    TAP_STR_EQ(authfile_lookup(af, "dup"), "two", "duplicate user: the later line wins");
    TAP_STR_EQ(authfile_lookup(af, "other"), "o", "duplicate user: others unaffected");
    authfile_free(af);
    TAP_CHECK(authfile_lookup(NULL, "x") == NULL && authfile_count(NULL) == 0,
              "NULL authfile is empty");
}

/* Loads text, expects failure with exactly "path:line: why", and no secret in the message. */
static void expect_bad(const void *text, size_t len, int line, const char *why, const char *name)
{
    char err[256], want[256];
    const char *path = write_file(text, len);
    struct authfile *af = authfile_load(path, err, sizeof(err));

    snprintf(want, sizeof(want), "%s:%d: %s", path, line, why);
    TAP_CHECK(af == NULL && strcmp(err, want) == 0, "bad line: %s", name);
    if (af != NULL || strcmp(err, want) != 0)
        printf("#   got '%s' expected '%s'\n", af ? "(loaded)" : err, want);
    TAP_CHECK(strstr(err, "SECRET") == NULL, "bad line: %s: secret not in error", name);
    authfile_free(af);
}

#define BAD(text, line, why, name) expect_bad(text, sizeof(text) - 1, line, why, name)

static void test_bad_lines(void)
{
    char err[256], want[300];
    struct authfile *af;

    BAD("; ok\n\"a\" \"b\"\nalice SECRET\n", 3, "expected a double-quoted user name",
        "unquoted user name");
    BAD("\"a\" \"b\"\n\n\"alice SECRET\n\"b\" \"c\"\n", 3, "unterminated quoted user name",
        "user name quote not closed on its line");
    BAD("\"alice\"\"SECRET\"\n", 1, "missing password",
        "fields without a blank read as one escaped string");
    BAD("\"alice\"x \"SECRET\"\n", 1, "expected white space after the user name",
        "text right after the user name");
    BAD("\"alice\"\n", 1, "missing password", "password missing");
    BAD("\"alice\"   \r\n", 1, "missing password", "password missing (CRLF)");
    BAD("\"alice\" SECRET\n", 1, "expected a double-quoted password", "unquoted password");
    BAD("\"alice\" \"SECRET\n\"\n", 1, "unterminated quoted password",
        "password quote not closed on its line");
    BAD("\"alice\" \"SECRET\"x\n", 1, "unexpected text right after the password",
        "text right after the password");
    BAD("\"\" \"SECRET\"\n", 1, "empty user name", "empty user name");
    BAD("\"a\" \"b\"\n\"a\0b\" \"SECRET\"\n", 2, "NUL byte in line", "NUL byte");
    BAD("\"a\" \"b\"\n\"c\" \"d\"\n\"e\" \"f\"\n\"g\" \"h\"\n\"i\" \"j\"\n\"k\" \"l\"\n"
        "\"m\" \"n\"\n\"o\" \"p\"\n\"q\" \"r\"\n\"s\" \"t\"\n\"u\" \"v\"\n\"w\" SECRET\n",
        12, "expected a double-quoted password", "line number counts every line");

    {
        /* 127 bytes is the longest user name PgBouncer accepts. */
        char text[512];
        int n;

        n = snprintf(text, sizeof(text), "\"%0127d\" \"pw\"\n", 0);
        af = authfile_load(write_file(text, (size_t)n), err, sizeof(err));
        TAP_CHECK(af != NULL && authfile_count(af) == 1, "127-byte user name accepted");
        authfile_free(af);
        n = snprintf(text, sizeof(text), "\"a\" \"b\"\n\"%0128d\" \"SECRET\"\n", 0);
        expect_bad(text, (size_t)n, 2, "user name too long", "128-byte user name");
    }
    {
        /* PgBouncer: passwords shorter than 65531 bytes. */
        char *text = malloc(65600);

        for (size_t plen = 65530; text != NULL && plen <= 65531; plen++) {
            size_t n = (size_t)sprintf(text, "\"big\" \"");

            memset(text + n, 'S', plen);
            n += plen;
            n += (size_t)sprintf(text + n, "\"\n");
            if (plen == 65531) {
                expect_bad(text, n, 1, "password too long", "65531-byte password");
                continue;
            }
            af = authfile_load(write_file(text, n), err, sizeof(err));
            TAP_CHECK(af != NULL && strlen(authfile_lookup(af, "big")) == plen,
                      "65530-byte password accepted");
            authfile_free(af);
        }
        free(text);
    }

    af = authfile_load("/nonexistent/userlist.txt", err, sizeof(err));
    TAP_CHECK(af == NULL && strncmp(err, "/nonexistent/userlist.txt: ", 27) == 0,
              "missing file: error names the path (%s)", err);
    af = authfile_load(tmpdir, err, sizeof(err));
    snprintf(want, sizeof(want), "%s: not a regular file", tmpdir);
    TAP_STR_EQ(err, want, "directory refused");
    TAP_CHECK(af == NULL, "directory: no authfile");
    af = authfile_load(NULL, err, sizeof(err));
    TAP_CHECK(af == NULL && err[0] != '\0', "NULL path refused");
}

static void test_many_users(void)
{
    const int nusers = 10000;
    size_t cap = (size_t)nusers * 48, n = 0;
    char *text = malloc(cap);
    char user[32], pw[32], err[256];
    struct authfile *af;
    int found = 0;

    if (text == NULL) {
        TAP_CHECK(0, "10,000 users: out of memory");
        return;
    }
    for (int i = 0; i < nusers; i++)
        n += (size_t)snprintf(text + n, cap - n, "\"user%d\" \"pw%d\"\n", i, i * 7);
    af = authfile_load(write_file(text, n), err, sizeof(err));
    free(text);
    TAP_CHECK(af != NULL && authfile_count(af) == (size_t)nusers, "10,000 users loaded");
    for (int i = 0; i < nusers; i++) {
        const char *s;

        snprintf(user, sizeof(user), "user%d", i);
        snprintf(pw, sizeof(pw), "pw%d", i * 7);
        s = authfile_lookup(af, user);
        found += s != NULL && strcmp(s, pw) == 0;
    }
    TAP_CHECK(found == nusers, "10,000 users: each found with its own password (%d)", found);
    TAP_CHECK(authfile_lookup(af, "user10000") == NULL && authfile_lookup(af, "user") == NULL &&
                  authfile_lookup(af, "") == NULL,
              "10,000 users: unknown names not found");
    authfile_free(af);
}

/*==================================================================
 * secret_kind and md5
 *==================================================================*/

static void test_secret_kind(void)
{
    TAP_CHECK(secret_kind("md553f48b7c4b76a86ce72276c5755f217d") == SECRET_MD5, "md5 + 32 hex");
    TAP_CHECK(secret_kind("md553F48B7C4B76A86CE72276C5755F217D") == SECRET_MD5,
              "md5 + 32 uppercase hex");
    TAP_CHECK(secret_kind("md553f48b7c4b76a86ce72276c5755f217") == SECRET_PLAIN, "md5 + 31 hex");
    TAP_CHECK(secret_kind("md553f48b7c4b76a86ce72276c5755f217dd") == SECRET_PLAIN, "md5 + 33 hex");
    TAP_CHECK(secret_kind("md553f48b7c4b76a86ce72276c5755f217g") == SECRET_PLAIN, "md5 + non-hex");
    TAP_CHECK(secret_kind("MD553f48b7c4b76a86ce72276c5755f217d") == SECRET_PLAIN,
              "uppercase MD5 prefix is a password");
    TAP_CHECK(secret_kind("SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB") == SECRET_SCRAM, "SCRAM");
    TAP_CHECK(secret_kind("SCRAM-SHA-256") == SECRET_PLAIN, "SCRAM name without '$'");
    TAP_CHECK(secret_kind("scram-sha-256$x") == SECRET_PLAIN, "lowercase scram prefix");
    TAP_CHECK(secret_kind("") == SECRET_PLAIN && secret_kind("hunter2") == SECRET_PLAIN, "plain");
}

static void test_md5(void)
{
    /* printf '%s' secretpostgres | md5sum */
    static const char hash[] = "md553f48b7c4b76a86ce72276c5755f217d";
    /* Python: hashlib.md5(b"53f48b7c4b76a86ce72276c5755f217d" + bytes([1, 2, 3, 4])) */
    static const char answer[] = "md5bb41a296aab6baccb36ff243a562abff";
    static const uint8_t salt[4] = {1, 2, 3, 4}, salt2[4] = {1, 2, 3, 5};
    char out[36], bad[36];

    md5_password_hash("secret", "postgres", out);
    TAP_STR_EQ(out, hash, "md5_password_hash(secret, postgres) matches md5sum");
    md5_password_hash("secret", "postgre", out);
    TAP_CHECK(strcmp(out, hash) != 0, "md5_password_hash depends on the user");

    md5_salted_response("secret", "postgres", salt, out);
    TAP_STR_EQ(out, answer, "salted response from the plain password");
    md5_salted_response(hash, "ignored", salt, out);
    TAP_STR_EQ(out, answer, "salted response from the md5 secret");
    md5_salted_response("md553F48B7C4B76A86CE72276C5755F217D", "ignored", salt, out);
    TAP_STR_EQ(out, answer, "salted response from an uppercase md5 secret");
    md5_salted_response("SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB", "postgres", salt, out);
    TAP_STR_EQ(out, "", "no md5 response from a SCRAM secret");

    TAP_CHECK(md5_check("secret", "postgres", salt, answer), "md5_check: plain secret, right");
    TAP_CHECK(md5_check(hash, "postgres", salt, answer), "md5_check: md5 secret, right");
    TAP_CHECK(!md5_check("secreT", "postgres", salt, answer), "md5_check: wrong password");
    TAP_CHECK(!md5_check("secret", "postgrex", salt, answer), "md5_check: wrong user");
    TAP_CHECK(!md5_check(hash, "postgres", salt2, answer), "md5_check: other salt");
    memcpy(bad, answer, sizeof(bad));
    bad[34] = bad[34] == '0' ? '1' : '0';
    TAP_CHECK(!md5_check(hash, "postgres", salt, bad), "md5_check: last digit differs");
    TAP_CHECK(!md5_check(hash, "postgres", salt, "md5bb41a296aab6baccb36ff243a562abf"),
              "md5_check: short answer");
    TAP_CHECK(!md5_check(hash, "postgres", salt, "md5bb41a296aab6baccb36ff243a562abffx"),
              "md5_check: long answer");
    TAP_CHECK(!md5_check(hash, "postgres", salt, ""), "md5_check: empty answer");
    TAP_CHECK(!md5_check("SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB", "postgres", salt, ""),
              "md5_check: SCRAM secret never matches (empty answer)");
    TAP_CHECK(!md5_check(hash, "postgres", salt, hash), "md5_check: the secret is not an answer");

    TAP_CHECK(secret_equal("abc", "abc", 3) && !secret_equal("abc", "abd", 3) &&
                  secret_equal("abc", "abd", 2),
              "secret_equal compares exactly n bytes");
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/pgmux-authfile.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        printf("Bail out! mkdtemp failed\n");
        return 1;
    }
    test_good_file();
    test_bad_lines();
    test_many_users();
    test_secret_kind();
    test_md5();
    for (int i = 0; i < nfiles; i++) {
        char path[128];

        snprintf(path, sizeof(path), "%s/userlist%d.txt", tmpdir, i);
        unlink(path);
    }
    rmdir(tmpdir);
    return tap_done();
}
