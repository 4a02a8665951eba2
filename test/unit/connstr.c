/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for src/connstr.c: splitting, quoting with '', the error cases
 * (empty value, unknown key, missing '=', unterminated quote, junk after a
 * quote) with their offsets, and the callback wrapper. Each case feeds a
 * literal string and checks the exact pairs or the exact message.
 */
#include "connstr.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PAIRS 16

struct pairs {
    int n;
    char key[MAX_PAIRS][64];
    char value[MAX_PAIRS][256];
};

/* Iterate over a copy of s; returns the final status and fills out/err. */
static enum connstr_status run(const char *s, const char *const *keys, struct pairs *out,
                               struct connstr_error *err)
{
    char *buf = strdup(s);
    struct connstr cs;
    const char *k, *v;
    enum connstr_status st;

    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    connstr_init(&cs, buf, keys);
    while ((st = connstr_next(&cs, &k, &v, err)) == CONNSTR_PAIR && out->n < MAX_PAIRS) {
        snprintf(out->key[out->n], sizeof(out->key[0]), "%s", k);
        snprintf(out->value[out->n], sizeof(out->value[0]), "%s", v);
        out->n++;
    }
    free(buf);
    return st;
}

static void test_basic(void)
{
    struct pairs p;
    struct connstr_error err;
    enum connstr_status st;

    st = run("host=127.0.0.1 port=5432 dbname=app", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_END && p.n == 3, "three plain pairs parse");
    TAP_STR_EQ(p.key[0], "host", "first key");
    TAP_STR_EQ(p.value[0], "127.0.0.1", "first value");
    TAP_STR_EQ(p.key[2], "dbname", "third key");
    TAP_STR_EQ(p.value[2], "app", "third value");

    st = run("", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_END && p.n == 0, "empty string has no pairs");
    st = run("   \t ", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_END && p.n == 0, "blank string has no pairs");

    st = run("  host = db1\tport= 6000   user =bob  ", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_END && p.n == 3, "blanks around '=' and tabs between pairs");
    TAP_STR_EQ(p.value[0], "db1", "value after ' = '");
    TAP_STR_EQ(p.value[1], "6000", "value after '= '");
    TAP_STR_EQ(p.key[2], "user", "key before ' ='");
    TAP_STR_EQ(p.value[2], "bob", "value after ' ='");

    st = run("host=a,b,c port=5432,5433", connstr_db_keys, &p, &err);
    TAP_STR_EQ(p.value[0], "a,b,c", "comma host list is one value");

    st = run("connect_query=SELECT 1", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_ERROR, "unquoted value stops at a blank (then '1' has no '=')");
}

static void test_quoting(void)
{
    struct pairs p;
    struct connstr_error err;
    enum connstr_status st;

    st = run("password='it''s' user=x", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_END && p.n == 2, "quoted value with '' parses");
    TAP_STR_EQ(p.value[0], "it's", "'' is one literal quote");
    TAP_STR_EQ(p.value[1], "x", "pair after a quoted value");

    st = run("connect_query='SELECT 1; SET x = ''a b''' pool_size=3", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_END && p.n == 2, "quoted value with blanks, ';' and '='");
    TAP_STR_EQ(p.value[0], "SELECT 1; SET x = 'a b'", "quoted value content");
    TAP_STR_EQ(p.value[1], "3", "next value");

    st = run("password=''''", connstr_db_keys, &p, &err);
    TAP_STR_EQ(p.value[0], "'", "value that is only an escaped quote");

    st = run("password='x'", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_END && p.n == 1, "quoted value at end of string");
    TAP_STR_EQ(p.value[0], "x", "quoted value at end content");

    st = run("host=a'b", connstr_db_keys, &p, &err);
    TAP_STR_EQ(p.value[0], "a'b", "quote inside an unquoted value is kept");
}

static void test_errors(void)
{
    struct pairs p;
    struct connstr_error err;
    enum connstr_status st;

    st = run("host=x port=", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_ERROR && p.n == 1, "empty value at end is an error");
    TAP_STR_EQ(err.msg, "empty value for connection parameter: port", "empty value message");
    TAP_STR_EQ(err.key, "port", "empty value names the key");
    TAP_CHECK(err.offset == 12, "empty value offset is the end (%zu)", err.offset);

    st = run("password='' host=x", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_ERROR && p.n == 0, "quoted empty value is an error");
    TAP_STR_EQ(err.msg, "empty value for connection parameter: password", "quoted empty msg");

    st = run("host=x bogus=1", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_ERROR && p.n == 1, "unknown key is an error");
    TAP_STR_EQ(err.msg, "unrecognized connection parameter: bogus", "unknown key message");
    TAP_CHECK(err.offset == 7, "unknown key offset (%zu)", err.offset);

    st = run("Host=x", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_ERROR, "keys are case-sensitive");

    st = run("host=x bogus=1", NULL, &p, &err);
    TAP_CHECK(st == CONNSTR_END && p.n == 2, "NULL key list accepts any key");

    st = run("host x=1", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_ERROR, "missing '=' is an error");
    TAP_STR_EQ(err.msg, "syntax error in connection string: expected '=' after \"host\"",
               "missing '=' message");

    st = run("=x", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_ERROR, "missing key is an error");
    TAP_CHECK(strstr(err.msg, "missing parameter name") != NULL, "missing key message: %s",
              err.msg);

    st = run("host=x password='abc", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_ERROR && p.n == 1, "unterminated quote is an error");
    TAP_STR_EQ(err.msg, "unterminated quoted value for connection parameter: password",
               "unterminated quote message");
    TAP_CHECK(err.offset == 16, "unterminated quote offset is the quote (%zu)", err.offset);

    st = run("password='abc'def", connstr_db_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_ERROR, "junk after closing quote is an error");
    TAP_CHECK(strstr(err.msg, "after closing quote") != NULL, "junk message: %s", err.msg);

    st = run("pool_size=5", connstr_peer_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_END && p.n == 1, "peer keys accept pool_size");
    st = run("dbname=x", connstr_peer_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_ERROR, "peer keys refuse dbname");
    st = run("query_timeout=5 pool_mode=transaction", connstr_user_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_END && p.n == 2, "user keys accept query_timeout and pool_mode");
    st = run("host=x", connstr_user_keys, &p, &err);
    TAP_CHECK(st == CONNSTR_ERROR, "user keys refuse host");
}

static void test_after_error(void)
{
    char buf[] = "bogus=1 host=x";
    struct connstr cs;
    struct connstr_error err;
    const char *k, *v;

    connstr_init(&cs, buf, connstr_db_keys);
    TAP_CHECK(connstr_next(&cs, &k, &v, &err) == CONNSTR_ERROR, "first call fails");
    TAP_CHECK(connstr_next(&cs, &k, &v, NULL) == CONNSTR_ERROR,
              "iterator stays failed after an error (and err may be NULL)");
}

struct collect {
    int calls;
    char last[64];
    int stop_at;
};

static bool collect_cb(void *arg, const char *key, const char *value, struct connstr_error *err)
{
    struct collect *c = arg;

    c->calls++;
    snprintf(c->last, sizeof(c->last), "%s=%s", key, value);
    if (c->calls == c->stop_at) {
        snprintf(err->msg, sizeof(err->msg), "stopped at %s", key);
        return false;
    }
    return true;
}

static void test_parse_wrapper(void)
{
    struct collect c = {0, "", 0};
    struct connstr_error err;
    const char *s = "host=h port=1 user='a b'";
    bool ok;

    ok = connstr_parse(s, connstr_db_keys, collect_cb, &c, &err);
    TAP_CHECK(ok && c.calls == 3, "connstr_parse calls back once per pair");
    TAP_STR_EQ(c.last, "user=a b", "callback sees unquoted value");
    TAP_STR_EQ(s, "host=h port=1 user='a b'", "connstr_parse leaves the input alone");

    memset(&c, 0, sizeof(c));
    c.stop_at = 2;
    ok = connstr_parse(s, connstr_db_keys, collect_cb, &c, &err);
    TAP_CHECK(!ok && c.calls == 2, "callback returning false stops parsing");
    TAP_STR_EQ(err.msg, "stopped at port", "callback message kept");
    TAP_STR_EQ(err.key, "port", "key filled in for callback error");
    TAP_CHECK(err.offset == 7, "offset filled in for callback error (%zu)", err.offset);

    memset(&c, 0, sizeof(c));
    ok = connstr_parse("host=h nope=1", connstr_db_keys, collect_cb, &c, &err);
    TAP_CHECK(!ok && c.calls == 1, "parse error stops connstr_parse");
    TAP_STR_EQ(err.msg, "unrecognized connection parameter: nope", "parse error message");

    ok = connstr_parse("host=h", connstr_db_keys, collect_cb, &c, NULL);
    TAP_CHECK(ok, "err may be NULL");
}

static void test_key_lists(void)
{
    TAP_CHECK(connstr_key_known(connstr_db_keys, "reserve_pool") &&
                  connstr_key_known(connstr_db_keys, "reserve_pool_size"),
              "db keys accept reserve_pool and its alias");
    TAP_CHECK(connstr_key_known(connstr_db_keys, "application_name"),
              "db keys accept application_name");
    TAP_CHECK(!connstr_key_known(connstr_db_keys, "force_user"), "db keys refuse force_user");
    TAP_CHECK(connstr_key_known(NULL, "anything"), "NULL list knows every key");
}

int main(void)
{
    test_basic();
    test_quoting();
    test_errors();
    test_after_error();
    test_parse_wrapper();
    test_key_lists();
    return tap_done();
}
