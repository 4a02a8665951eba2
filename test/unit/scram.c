/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for src/scram.c: base64, the RFC 7677 example replayed byte for
 * byte on both sides (through the nonce and user-name test hooks), a secret
 * made by PostgreSQL 15, round trips with pgmux on both ends, the caches, the
 * iteration cap, and one case per parsing rule for every message. Each bad
 * input checks the exact error string, so a case only passes if the rule it
 * is about is the one that caught it.
 */
#include "scram.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tap.h"

/* Test hooks defined in src/scram.c. */
void scram_test_set_nonce(const char *nonce);
void scram_test_set_client_user(const char *user);
unsigned long scram_test_pbkdf2_runs(void);

/* RFC 7677 section 3. */
#define RFC_CNONCE       "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE       "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CNONCE
#define RFC_SERVER_FIRST "r=" RFC_CNONCE RFC_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL                                                                           \
    "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/*
 * The stored secret for "pencil" with the RFC salt and count, computed with
 * Python's hashlib (pbkdf2_hmac, hmac, sha256) from RFC 5802's formulas.
 */
#define RFC_SECRET                                                                                 \
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"    \
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

/* Made by PostgreSQL 15.18: CREATE ROLE alice PASSWORD 'pencil' with scram-sha-256. */
#define PG_SECRET                                                                                  \
    "SCRAM-SHA-256$4096:m0udUjLIoDdlMm4grFid+Q==$jsM6lLq/HvTuI/jWjXA3e0S1VWbgMQAwKrJis9EAwUE=:"    \
    "IqD7+8uYLVjCk9va7rq7YiYR72yXyrntpm4OEpH98EU="

static const uint8_t *u8(const char *s)
{
    return (const uint8_t *)s;
}

/*==================================================================
 * Base64
 *==================================================================*/

static void test_base64(void)
{
    static const struct {
        const char *raw, *enc;
    } vec[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    static const char *bad[] = {
        "Zg=",      /* not a multiple of 4 */
        "Zm9v\n",   /* whitespace */
        "Zm9*",     /* character outside the alphabet */
        "Z===",     /* too much padding */
        "Zg==Zm9v", /* padding in the middle */
        "Zh==",     /* non-zero unused bits: not the canonical encoding */
        "Zm9=",     /* same, one pad */
        "=m9v",     /* '=' at the start */
    };
    char enc[64];
    uint8_t dec[64];

    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        size_t rl = strlen(vec[i].raw);
        size_t n = scram_b64_encode(u8(vec[i].raw), rl, enc, sizeof(enc));
        long m = scram_b64_decode(vec[i].enc, strlen(vec[i].enc), dec, sizeof(dec));

        TAP_CHECK(n == strlen(vec[i].enc) && strcmp(enc, vec[i].enc) == 0, "b64 encode '%s'",
                  vec[i].raw);
        TAP_CHECK(m == (long)rl && memcmp(dec, vec[i].raw, rl) == 0, "b64 decode '%s'", vec[i].enc);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        TAP_CHECK(scram_b64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec)) == -1,
                  "b64 rejects bad input #%zu", i);
    TAP_CHECK(scram_b64_decode("Zm9vYmFy", 8, dec, 5) == -1, "b64 decode refuses to overflow");
    /* The length given is what counts, not where the string ends. */
    TAP_CHECK(scram_b64_decode("Zm9vYmFy", 6, dec, sizeof(dec)) == -1,
              "b64 decode: unpadded length (6 of 8 valid chars) refused");
    TAP_CHECK(scram_b64_decode("Zm9vYg==", 4, dec, sizeof(dec)) == 3 && memcmp(dec, "foo", 3) == 0,
              "b64 decode: stops at the given length");
    TAP_CHECK(scram_b64_encode(u8("foobar"), 6, enc, 8) == 0 && enc[0] == '\0',
              "b64 encode refuses to overflow (no room for NUL)");
    TAP_CHECK(scram_b64_encode(u8("foobar"), 6, enc, 9) == 8, "b64 encode fits exactly");
}

/*==================================================================
 * Stored secrets
 *==================================================================*/

static void test_parse_secret(void)
{
    static const char *bad[] = {
        "",
        "md5a8b7d3a0e7a8e53cd0c3c1e4a9e7a8b0",
        "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        /* iterations: zero, sign, not a number, overflow */
        "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$x:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$99999999999:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmt"
        "bsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        /* salt: empty, not base64 */
        "SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6g*==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        /* stored key of 31 bytes */
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4g==:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        /* server key missing, or followed by junk */
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=x",
        /* no iteration separator */
        "SCRAM-SHA-256$4096W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
    };
    static const uint8_t rfc_salt[] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                       0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};
    struct scram_secret sec;

    TAP_CHECK(scram_parse_secret(RFC_SECRET, &sec), "parse RFC 7677 secret");
    TAP_CHECK(sec.iterations == 4096 && sec.salt_len == 16 && memcmp(sec.salt, rfc_salt, 16) == 0,
              "RFC secret: iterations and salt");
    TAP_CHECK(sec.stored_key[0] == 0x58 && sec.server_key[0] == 0xc1, "RFC secret: keys decoded");
    TAP_CHECK(scram_parse_secret(PG_SECRET, &sec) && sec.iterations == 4096 && sec.salt_len == 16,
              "parse secret made by PostgreSQL");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        TAP_CHECK(!scram_parse_secret(bad[i], &sec), "parse_secret rejects bad secret #%zu", i);
}

/*==================================================================
 * RFC 7677 replayed
 *==================================================================*/

static void test_rfc_server(void)
{
    struct scram_server st;
    struct scram_secret sec;
    struct scram_keys keys;
    char out[SCRAM_MAX_MSG];
    size_t outlen = 0;
    const char *err = NULL;
    bool ok;

    memset(&st, 0, sizeof(st));
    if (!scram_parse_secret(RFC_SECRET, &sec))
        memset(&sec, 0, sizeof(sec));
    scram_test_set_nonce(RFC_SNONCE);
    ok = scram_server_first(&st, &sec, u8(RFC_CLIENT_FIRST), strlen(RFC_CLIENT_FIRST), out,
                            sizeof(out), &outlen, &err);
    TAP_CHECK(ok, "RFC server-first accepted (%s)", err ? err : "");
    TAP_STR_EQ(out, RFC_SERVER_FIRST, "RFC server-first-message byte for byte");
    TAP_CHECK(outlen == strlen(RFC_SERVER_FIRST), "RFC server-first length");

    ok = scram_server_final(&st, &sec, u8(RFC_CLIENT_FINAL), strlen(RFC_CLIENT_FINAL), out,
                            sizeof(out), &outlen, &keys, &err);
    TAP_CHECK(ok, "RFC client proof accepted (%s)", err ? err : "");
    TAP_STR_EQ(out, RFC_SERVER_FINAL, "RFC server-final signature byte for byte");
    TAP_CHECK(outlen == strlen(RFC_SERVER_FINAL), "RFC server-final length");
    TAP_CHECK(memcmp(keys.server_key, sec.server_key, SCRAM_KEY_LEN) == 0,
              "pass-through ServerKey handed out");
    {
        /* The ClientKey we recovered must hash to StoredKey. Checked via a replay below. */
        struct scram_client cl;
        char cf[SCRAM_MAX_MSG];
        size_t cflen;

        memset(&cl, 0, sizeof(cl));
        scram_test_set_client_user("user");
        scram_test_set_nonce(RFC_CNONCE);
        ok = scram_client_first(&cl, cf, sizeof(cf), &cflen);
        scram_test_set_client_user(NULL);
        ok = ok && scram_client_final(&cl, NULL, &keys, u8(RFC_SERVER_FIRST),
                                      strlen(RFC_SERVER_FIRST), cf, sizeof(cf), &cflen, &err);
        TAP_CHECK(ok, "pass-through client-final built from recovered keys");
        TAP_STR_EQ(cf, RFC_CLIENT_FINAL, "pass-through client-final equals the RFC one");
        ok = scram_client_verify(&cl, u8(RFC_SERVER_FINAL), strlen(RFC_SERVER_FINAL), &err);
        TAP_CHECK(ok, "pass-through verifies the RFC server signature");
    }
}

static void test_rfc_client(void)
{
    struct scram_client st;
    char out[SCRAM_MAX_MSG];
    size_t outlen = 0;
    const char *err = NULL;
    char bad[] = RFC_SERVER_FINAL;
    bool ok;

    memset(&st, 0, sizeof(st));
    scram_test_set_client_user("user");
    scram_test_set_nonce(RFC_CNONCE);
    ok = scram_client_first(&st, out, sizeof(out), &outlen);
    scram_test_set_client_user(NULL);
    TAP_CHECK(ok, "RFC client-first built");
    TAP_STR_EQ(out, RFC_CLIENT_FIRST, "RFC client-first-message byte for byte");
    TAP_CHECK(outlen == strlen(RFC_CLIENT_FIRST), "RFC client-first length");

    ok = scram_client_final(&st, "pencil", NULL, u8(RFC_SERVER_FIRST), strlen(RFC_SERVER_FIRST),
                            out, sizeof(out), &outlen, &err);
    TAP_CHECK(ok, "RFC client-final built (%s)", err ? err : "");
    TAP_STR_EQ(out, RFC_CLIENT_FINAL, "RFC client-final-message byte for byte");
    TAP_CHECK(outlen == strlen(RFC_CLIENT_FINAL), "RFC client-final length");

    /* A copy of the state, to try a forged signature as well as the real one. */
    {
        struct scram_client forged = st;

        bad[5] = bad[5] == 'A' ? 'B' : 'A';
        TAP_CHECK(!scram_client_verify(&forged, u8(bad), strlen(bad), &err), "forged signature");
        TAP_STR_EQ(err, "SCRAM server signature mismatch", "forged signature: error");
    }
    ok = scram_client_verify(&st, u8(RFC_SERVER_FINAL), strlen(RFC_SERVER_FINAL), &err);
    TAP_CHECK(ok, "RFC server signature verified");
    TAP_CHECK(!scram_client_verify(&st, u8(RFC_SERVER_FINAL), strlen(RFC_SERVER_FINAL), &err),
              "verify cannot be replayed on a finished state");
    TAP_STR_EQ(err, "unexpected SCRAM message", "verify replay: error");

    /* server-final before client-final: there is nothing to verify yet. */
    memset(&st, 0, sizeof(st));
    ok = scram_client_first(&st, out, sizeof(out), &outlen);
    TAP_CHECK(ok && !scram_client_verify(&st, u8(RFC_SERVER_FINAL), strlen(RFC_SERVER_FINAL), &err),
              "verify before client-final refused");
    TAP_STR_EQ(err, "unexpected SCRAM message", "verify before client-final: error");
}

/*==================================================================
 * Round trips, pgmux on both ends
 *==================================================================*/

/*
 * Runs a whole exchange. Returns true if the server accepted; *err is the
 * first error from either side. keys_out, if given, gets the server's keys.
 */
static bool round_trip(const struct scram_secret *sec, const char *password,
                       struct scram_keys *keys_out, const char **err)
{
    struct scram_client cl;
    struct scram_server sv;
    char c1[SCRAM_MAX_MSG], s1[SCRAM_MAX_MSG], c2[SCRAM_MAX_MSG], s2[SCRAM_MAX_MSG];
    size_t c1n, s1n, c2n, s2n;
    struct scram_keys keys;

    memset(&cl, 0, sizeof(cl));
    memset(&sv, 0, sizeof(sv));
    *err = NULL;
    if (!scram_client_first(&cl, c1, sizeof(c1), &c1n)) {
        *err = "client_first failed";
        return false;
    }
    if (!scram_server_first(&sv, sec, u8(c1), c1n, s1, sizeof(s1), &s1n, err))
        return false;
    if (!scram_client_final(&cl, password, NULL, u8(s1), s1n, c2, sizeof(c2), &c2n, err))
        return false;
    if (!scram_server_final(&sv, sec, u8(c2), c2n, s2, sizeof(s2), &s2n, &keys, err))
        return false;
    if (!scram_client_verify(&cl, u8(s2), s2n, err))
        return false;
    if (keys_out != NULL)
        *keys_out = keys;
    return true;
}

static void test_round_trips(void)
{
    const struct scram_secret *plain;
    struct scram_secret pg, mock, mock2;
    const char *err;

    plain = scram_secret_for_plain("alice", "s3cret", 4096);
    TAP_CHECK(plain != NULL, "secret for a plain password");
    TAP_CHECK(plain && round_trip(plain, "s3cret", NULL, &err), "round trip, right password");
    TAP_CHECK(plain && !round_trip(plain, "s3creT", NULL, &err), "round trip, wrong password");
    TAP_STR_EQ(err, "password mismatch", "wrong password: error is 'password mismatch'");

    TAP_CHECK(scram_parse_secret(PG_SECRET, &pg), "PostgreSQL secret parsed");
    TAP_CHECK(round_trip(&pg, "pencil", NULL, &err), "PostgreSQL secret: right password");
    TAP_CHECK(!round_trip(&pg, "pencil ", NULL, &err), "PostgreSQL secret: wrong password");
    TAP_STR_EQ(err, "password mismatch", "PostgreSQL secret: error");

    /* Unknown users: the exchange runs and fails like a wrong password. */
    TAP_CHECK(scram_mock_secret("nobody", 4096, &mock) && scram_mock_secret("nobody", 4096, &mock2),
              "mock secret made");
    TAP_CHECK(mock.salt_len == 16 && memcmp(mock.salt, mock2.salt, 16) == 0,
              "mock salt is stable per user");
    TAP_CHECK(scram_mock_secret("somebody", 4096, &mock2) && memcmp(mock.salt, mock2.salt, 16) != 0,
              "mock salt differs between users");
    TAP_CHECK(!round_trip(&mock, "", NULL, &err), "mock secret: login fails");
    TAP_STR_EQ(err, "password mismatch", "mock secret: error is 'password mismatch'");
}

/*
 * The server must check the proof against the salt it sent, even if the
 * caller's plain-secret entry was re-made with a new salt in between.
 */
static void test_secret_changes_midway(void)
{
    struct scram_client cl;
    struct scram_server sv;
    struct scram_secret first, other;
    char c1[SCRAM_MAX_MSG], s1[SCRAM_MAX_MSG], c2[SCRAM_MAX_MSG], s2[SCRAM_MAX_MSG];
    size_t c1n, s1n, c2n, s2n;
    const char *err = NULL;
    bool ok;

    memset(&cl, 0, sizeof(cl));
    memset(&sv, 0, sizeof(sv));
    ok = scram_parse_secret(PG_SECRET, &first) && scram_client_first(&cl, c1, sizeof(c1), &c1n) &&
         scram_server_first(&sv, &first, u8(c1), c1n, s1, sizeof(s1), &s1n, &err) &&
         scram_client_final(&cl, "pencil", NULL, u8(s1), s1n, c2, sizeof(c2), &c2n, &err);
    /* Same password, other salt: what a re-made cache entry looks like. */
    other = *scram_secret_for_plain("midway", "pencil", 4096);
    ok = ok && scram_server_final(&sv, &other, u8(c2), c2n, s2, sizeof(s2), &s2n, NULL, &err);
    TAP_CHECK(ok, "server_final uses the secret it challenged with (%s)", err ? err : "");
    TAP_CHECK(sv.secret.iterations == 0 && sv.secret.stored_key[0] == 0 &&
                  sv.secret.server_key[0] == 0,
              "server state's secret copy wiped after the exchange");
}

/*
 * A secret with the same salt and count but other keys (the password was
 * changed by hand keeping the salt, and auth_file reloaded mid-exchange) is
 * the current one: the old password's proof must not pass.
 */
static void test_secret_rekeyed_midway(void)
{
    struct scram_client cl;
    struct scram_server sv;
    struct scram_secret old, rekeyed;
    char c1[SCRAM_MAX_MSG], s1[SCRAM_MAX_MSG], c2[SCRAM_MAX_MSG], s2[SCRAM_MAX_MSG];
    size_t c1n = 0, s1n = 0, c2n = 0, s2n = 0;
    uint8_t sp[32], ck[32];
    unsigned int l = 0;
    const char *err = NULL;
    bool ok;

    memset(&cl, 0, sizeof(cl));
    memset(&sv, 0, sizeof(sv));
    ok = scram_parse_secret(PG_SECRET, &old);
    rekeyed = old;
    /* Keys of "newpass" under the same salt, straight from RFC 5802 with OpenSSL. */
    ok = ok &&
         PKCS5_PBKDF2_HMAC("newpass", 7, old.salt, (int)old.salt_len, old.iterations, EVP_sha256(),
                           32, sp) == 1 &&
         HMAC(EVP_sha256(), sp, 32, u8("Client Key"), 10, ck, &l) != NULL &&
         EVP_Digest(ck, 32, rekeyed.stored_key, NULL, EVP_sha256(), NULL) == 1 &&
         HMAC(EVP_sha256(), sp, 32, u8("Server Key"), 10, rekeyed.server_key, &l) != NULL;
    ok = ok && scram_client_first(&cl, c1, sizeof(c1), &c1n) &&
         scram_server_first(&sv, &old, u8(c1), c1n, s1, sizeof(s1), &s1n, &err) &&
         scram_client_final(&cl, "pencil", NULL, u8(s1), s1n, c2, sizeof(c2), &c2n, &err);
    TAP_CHECK(ok, "rekeyed secret: exchange set up");
    ok = scram_server_final(&sv, &rekeyed, u8(c2), c2n, s2, sizeof(s2), &s2n, NULL, &err);
    TAP_CHECK(!ok && err && strcmp(err, "password mismatch") == 0,
              "rekeyed secret (same salt): the caller's current secret is used");
}

/*==================================================================
 * Caches and the iteration cap
 *==================================================================*/

static void test_plain_cache(void)
{
    const struct scram_secret *a, *b;
    struct scram_secret first;
    unsigned long runs;
    char user[32];

    scram_cache_reset();
    runs = scram_test_pbkdf2_runs();
    a = scram_secret_for_plain("bob", "pw1", 4096);
    first = *a;
    b = scram_secret_for_plain("bob", "pw1", 4096);
    TAP_CHECK(scram_test_pbkdf2_runs() == runs + 1, "plain cache: PBKDF2 ran once for two calls");
    TAP_CHECK(a == b && memcmp(b->salt, first.salt, 16) == 0, "plain cache: same entry and salt");
    TAP_CHECK(first.salt_len == 16 && first.iterations == 4096, "plain cache: 16-byte salt");

    b = scram_secret_for_plain("bob", "pw2", 4096);
    TAP_CHECK(scram_test_pbkdf2_runs() == runs + 2, "plain cache: changed password recomputes");
    TAP_CHECK(b != NULL && memcmp(b->salt, first.salt, 16) != 0 &&
                  memcmp(b->stored_key, first.stored_key, SCRAM_KEY_LEN) != 0,
              "plain cache: changed password gets a new salt and keys");
    b = scram_secret_for_plain("bob", "pw2", 8192);
    TAP_CHECK(scram_test_pbkdf2_runs() == runs + 3 && b && b->iterations == 8192,
              "plain cache: changed iteration count recomputes");
    b = scram_secret_for_plain("carol", "pw1", 4096);
    TAP_CHECK(scram_test_pbkdf2_runs() == runs + 4 && b && memcmp(b->salt, first.salt, 16) != 0,
              "plain cache: another user with the same password has its own salt");

    TAP_CHECK(scram_secret_for_plain("bob", "pw1", 0) == NULL &&
                  scram_secret_for_plain("bob", "pw1", -4096) == NULL,
              "plain cache: iteration count below 1 refused");

    /* Fill past the bound: the oldest entry goes, the newest stays. */
    scram_cache_reset();
    a = scram_secret_for_plain("user0", "pw", 1);
    first = *a;
    for (int i = 1; i <= 1024; i++) {
        snprintf(user, sizeof(user), "user%d", i);
        (void)scram_secret_for_plain(user, "pw", 1);
    }
    runs = scram_test_pbkdf2_runs();
    (void)scram_secret_for_plain("user1024", "pw", 1);
    TAP_CHECK(scram_test_pbkdf2_runs() == runs, "plain cache: newest entry still cached");
    b = scram_secret_for_plain("user0", "pw", 1);
    TAP_CHECK(scram_test_pbkdf2_runs() == runs + 1 && memcmp(b->salt, first.salt, 16) != 0,
              "plain cache: oldest entry evicted after 1024 others");
    /* user1 was evicted by user0's return (FIFO), user2 is still there. */
    runs = scram_test_pbkdf2_runs();
    (void)scram_secret_for_plain("user2", "pw", 1);
    TAP_CHECK(scram_test_pbkdf2_runs() == runs, "plain cache: second oldest kept");
    scram_cache_reset();
}

/* Drives a client against a canned server-first; returns client_final's result. */
static bool client_against(const char *password, const char *server_first, const char **err)
{
    struct scram_client st;
    char out[SCRAM_MAX_MSG];
    size_t outlen;

    memset(&st, 0, sizeof(st));
    scram_test_set_nonce("abc");
    if (!scram_client_first(&st, out, sizeof(out), &outlen)) {
        *err = "client_first failed";
        return false;
    }
    return scram_client_final(&st, password, NULL, u8(server_first), strlen(server_first), out,
                              sizeof(out), &outlen, err);
}

static void test_client_cache(void)
{
    const char *err = NULL;
    unsigned long runs;

    scram_cache_reset();
    runs = scram_test_pbkdf2_runs();
    TAP_CHECK(client_against("pw", "r=abcdef,s=QUJDRA==,i=4096", &err),
              "client cache: first login");
    TAP_CHECK(client_against("pw", "r=abcxyz,s=QUJDRA==,i=4096", &err),
              "client cache: second login");
    TAP_CHECK(scram_test_pbkdf2_runs() == runs + 1, "client cache: PBKDF2 ran once for two logins");
    TAP_CHECK(client_against("pw", "r=abcxyz,s=QUJDRQ==,i=4096", &err) &&
                  scram_test_pbkdf2_runs() == runs + 2,
              "client cache: other salt recomputes");
    TAP_CHECK(client_against("pw", "r=abcxyz,s=QUJDRA==,i=4097", &err) &&
                  scram_test_pbkdf2_runs() == runs + 3,
              "client cache: other iteration count recomputes");
    TAP_CHECK(client_against("pw2", "r=abcxyz,s=QUJDRA==,i=4096", &err) &&
                  scram_test_pbkdf2_runs() == runs + 4,
              "client cache: other password recomputes");

    /* The cap is checked before any PBKDF2 round runs. */
    runs = scram_test_pbkdf2_runs();
    TAP_CHECK(!client_against("pw", "r=abcxyz,s=QUJDRA==,i=1000001", &err),
              "iteration cap: SCRAM_MAX_ITERATIONS + 1 refused");
    TAP_STR_EQ(err, "SCRAM iteration count invalid or too high", "iteration cap: error");
    TAP_CHECK(!client_against("pw", "r=abcxyz,s=QUJDRA==,i=4294967297", &err),
              "iteration cap: 2^32 + 1 (wraps in 32 bits) refused");
    TAP_CHECK(!client_against("pw", "r=abcxyz,s=QUJDRA==,i=99999999999999999999999", &err),
              "iteration cap: huge value refused without overflow");
    TAP_CHECK(scram_test_pbkdf2_runs() == runs, "iteration cap: no PBKDF2 ran");
    TAP_CHECK(client_against("pw", "r=abcxyz,s=QUJDRA==,i=1", &err), "iteration count 1 accepted");
    scram_cache_reset();
}

/*==================================================================
 * Malformed input, server side
 *==================================================================*/

static void expect_first_fails(const char *msg, size_t len, const char *want, const char *name)
{
    struct scram_server st;
    struct scram_secret sec;
    char out[SCRAM_MAX_MSG];
    size_t outlen = 0;
    const char *err = NULL;
    bool ok;

    memset(&st, 0, sizeof(st));
    if (!scram_parse_secret(RFC_SECRET, &sec))
        memset(&sec, 0, sizeof(sec));
    ok = scram_server_first(&st, &sec, u8(msg), len, out, sizeof(out), &outlen, &err);
    TAP_CHECK(!ok && err && strcmp(err, want) == 0, "client-first: %s", name);
    if (ok || !err || strcmp(err, want) != 0)
        printf("#   got '%s' expected '%s'\n", ok ? "(accepted)" : err ? err : "(null)", want);
}

static void expect_first_ok(const char *msg, const char *name)
{
    struct scram_server st;
    struct scram_secret sec;
    char out[SCRAM_MAX_MSG];
    size_t outlen = 0;
    const char *err = NULL;

    memset(&st, 0, sizeof(st));
    if (!scram_parse_secret(RFC_SECRET, &sec))
        memset(&sec, 0, sizeof(sec));
    TAP_CHECK(scram_server_first(&st, &sec, u8(msg), strlen(msg), out, sizeof(out), &outlen, &err),
              "client-first accepted: %s (%s)", name, err ? err : "");
}

#define FIRST_FAILS(msg, want, name) expect_first_fails(msg, sizeof(msg) - 1, want, name)

static void test_client_first_malformed(void)
{
    char big[SCRAM_MAX_MSG + 16];
    char longnonce[200];

    expect_first_ok("n,,n=,r=abc", "empty user name");
    expect_first_ok("n,,n=we=2Cird,r=abc", "user name with escapes");
    expect_first_ok("n,,n=\xc3\xa9l\xc3\xa8ve,r=abc", "UTF-8 user name");
    expect_first_ok("y,,n=,r=abc", "gs2 flag 'y'");
    expect_first_ok("n,,n=,r=abc,x=ext", "RFC 5802 extension after the nonce");

    FIRST_FAILS("p=tls-server-end-point,,n=,r=abc",
                "SCRAM channel binding requested, but SCRAM-SHA-256-PLUS was not offered",
                "channel binding 'p=' refused");
    FIRST_FAILS("x,,n=,r=abc", "malformed SCRAM message (bad channel binding flag)",
                "unknown gs2 flag");
    FIRST_FAILS("nn,,n=,r=abc", "malformed SCRAM message (bad gs2 header)",
                "flag not followed by ','");
    FIRST_FAILS("n,a=admin,n=,r=abc", "SCRAM authorization identity is not supported",
                "authzid refused");
    FIRST_FAILS("n,a=,n=,r=abc", "SCRAM authorization identity is not supported",
                "empty authzid attribute refused");
    FIRST_FAILS("n,x,n=,r=abc", "malformed SCRAM message (bad gs2 header)", "junk in authzid slot");
    FIRST_FAILS("n,,m=ext,n=,r=abc", "SCRAM mandatory extension is not supported",
                "reserved-mext refused");
    FIRST_FAILS("n,,r=abc", "malformed SCRAM message (missing user name)", "user name missing");
    FIRST_FAILS("n,,r=abc,n=", "malformed SCRAM message (missing user name)",
                "attributes out of order");
    FIRST_FAILS("n,,n=", "malformed SCRAM message (missing nonce)", "nonce missing");
    FIRST_FAILS("n,,n=,", "malformed SCRAM message (missing nonce)", "nonce missing after ','");
    FIRST_FAILS("n,,n=,x=abc", "malformed SCRAM message (missing nonce)",
                "other attribute for nonce");
    FIRST_FAILS("n,,n=,r=", "malformed SCRAM message (bad nonce)", "empty nonce");
    FIRST_FAILS("n,,n=,r=ab c", "malformed SCRAM message (bad nonce)", "space in nonce");
    FIRST_FAILS("n,,n=,r=ab\x01", "malformed SCRAM message (bad nonce)", "control char in nonce");
    FIRST_FAILS("n,,n=,r=ab\xc3\xa9", "malformed SCRAM message (bad nonce)", "non-ASCII nonce");
    FIRST_FAILS("n,,n=,r=abc\0def", "malformed SCRAM message (NUL byte)", "NUL inside the message");
    FIRST_FAILS("n,,n=,r=abc\0", "malformed SCRAM message (NUL byte)", "trailing NUL");
    FIRST_FAILS("n,,n=,r=abc,", "malformed SCRAM message (garbage after nonce)", "trailing ','");
    FIRST_FAILS("n,,n=,r=abc,x=", "malformed SCRAM message (garbage after nonce)",
                "empty extension value");
    FIRST_FAILS("n,,n=,r=abc,1=x", "malformed SCRAM message (garbage after nonce)",
                "extension name not a letter");
    FIRST_FAILS("", "malformed SCRAM message (empty)", "empty message");

    memset(big, 'a', sizeof(big));
    memcpy(big, "n,,n=,r=", 8);
    expect_first_fails(big, SCRAM_MAX_MSG, "malformed SCRAM message (too long)", "too long");
    memset(longnonce, 'a', sizeof(longnonce));
    memcpy(longnonce, "n,,n=,r=", 8);
    expect_first_fails(longnonce, sizeof(longnonce), "malformed SCRAM message (nonce too long)",
                       "client nonce too long for the state");

    /* The length is what counts: bytes past it are never read. */
    expect_first_fails("n,,n=,r=abc", 8, "malformed SCRAM message (bad nonce)",
                       "length cuts the nonce off");
    {
        struct scram_server st;
        struct scram_secret sec;
        char out[SCRAM_MAX_MSG];
        size_t outlen;
        const char *err = NULL;

        memset(&st, 0, sizeof(st));
        TAP_CHECK(scram_parse_secret(RFC_SECRET, &sec), "secret for order tests");
        TAP_CHECK(!scram_server_first(&st, &sec, u8("n,,n=,r=abc"), 11, out, 10, &outlen, &err),
                  "server-first refuses a small output buffer");
        TAP_STR_EQ(err, "SCRAM output buffer too small", "small output buffer: error");
        memset(&st, 0, sizeof(st));
        TAP_CHECK(
            scram_server_first(&st, &sec, u8("n,,n=,r=abc"), 11, out, sizeof(out), &outlen, &err) &&
                !scram_server_first(&st, &sec, u8("n,,n=,r=abc"), 11, out, sizeof(out), &outlen,
                                    &err),
            "client-first twice refused");
        TAP_STR_EQ(err, "unexpected SCRAM message", "client-first twice: error");
        memset(&st, 0, sizeof(st));
        TAP_CHECK(!scram_server_final(&st, &sec, u8(RFC_CLIENT_FINAL), strlen(RFC_CLIENT_FINAL),
                                      out, sizeof(out), &outlen, NULL, &err),
                  "client-final before client-first refused");
        TAP_STR_EQ(err, "unexpected SCRAM message", "client-final first: error");
        memset(&st, 0, sizeof(st));
        sec.salt_len = 0;
        TAP_CHECK(
            !scram_server_first(&st, &sec, u8("n,,n=,r=abc"), 11, out, sizeof(out), &outlen, &err),
            "secret with no salt refused");
        TAP_CHECK(
            !scram_server_first(&st, NULL, u8("n,,n=,r=abc"), 11, out, sizeof(out), &outlen, &err),
            "NULL secret refused");
    }
}

/*
 * A server state after the RFC client-first and server-first, so that the
 * RFC client-final is valid and mutations of it can be tried one at a time.
 */
static void rfc_server_ready(struct scram_server *st, struct scram_secret *sec, const char *first)
{
    char out[SCRAM_MAX_MSG];
    size_t outlen;
    const char *err;

    memset(st, 0, sizeof(*st));
    if (!scram_parse_secret(RFC_SECRET, sec))
        memset(sec, 0, sizeof(*sec));
    scram_test_set_nonce(RFC_SNONCE);
    if (!scram_server_first(st, sec, u8(first), strlen(first), out, sizeof(out), &outlen, &err))
        printf("# rfc_server_ready: %s\n", err);
}

static void expect_final_fails(const char *msg, size_t len, const char *want, const char *name)
{
    struct scram_server st;
    struct scram_secret sec;
    char out[SCRAM_MAX_MSG];
    size_t outlen = 0;
    const char *err = NULL;
    bool ok;

    rfc_server_ready(&st, &sec, RFC_CLIENT_FIRST);
    ok = scram_server_final(&st, &sec, u8(msg), len, out, sizeof(out), &outlen, NULL, &err);
    TAP_CHECK(!ok && err && strcmp(err, want) == 0, "client-final: %s", name);
    if (ok || !err || strcmp(err, want) != 0)
        printf("#   got '%s' expected '%s'\n", ok ? "(accepted)" : err ? err : "(null)", want);
    TAP_CHECK(st.step != 0 &&
                  !scram_server_final(&st, &sec, u8(RFC_CLIENT_FINAL), strlen(RFC_CLIENT_FINAL),
                                      out, sizeof(out), &outlen, NULL, &err),
              "client-final: state unusable after '%s'", name);
}

#define FINAL_FAILS(msg, want, name) expect_final_fails(msg, sizeof(msg) - 1, want, name)

#define NONCE RFC_CNONCE RFC_SNONCE
#define PROOF "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="

static void test_client_final_malformed(void)
{
    struct scram_server st;
    struct scram_secret sec;
    char out[SCRAM_MAX_MSG];
    size_t outlen;
    const char *err = NULL;

    /* Control: the unmutated message passes with this setup. */
    rfc_server_ready(&st, &sec, RFC_CLIENT_FIRST);
    TAP_CHECK(scram_server_final(&st, &sec, u8(RFC_CLIENT_FINAL), strlen(RFC_CLIENT_FINAL), out,
                                 sizeof(out), &outlen, NULL, &err),
              "client-final control case accepted");

    /* PgBouncer 1.26 CVE: a final message without a nonce. */
    FINAL_FAILS("c=biws,p=" PROOF, "malformed SCRAM message (missing nonce)", "nonce missing");
    FINAL_FAILS("c=biws", "malformed SCRAM message (missing nonce)", "only channel binding");
    FINAL_FAILS("c=biws,", "malformed SCRAM message (missing nonce)", "nothing after c=");
    FINAL_FAILS("r=" NONCE ",p=" PROOF, "malformed SCRAM message (missing channel binding)",
                "channel binding missing");
    FINAL_FAILS("c=eSws,r=" NONCE ",p=" PROOF, "SCRAM channel binding check failed",
                "c= for 'y' after an 'n' header");
    FINAL_FAILS("c=,r=" NONCE ",p=" PROOF, "SCRAM channel binding check failed", "empty c=");
    FINAL_FAILS("c=biwsbiws,r=" NONCE ",p=" PROOF, "SCRAM channel binding check failed",
                "c= with extra bytes");
    FINAL_FAILS("c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=" NONCE ",p=" PROOF,
                "SCRAM channel binding check failed", "c= claiming channel binding data");
    FINAL_FAILS("c=biws,r=" RFC_CNONCE ",p=" PROOF, "SCRAM nonce mismatch",
                "client nonce only (server half missing)");
    FINAL_FAILS("c=biws,r=" NONCE "x,p=" PROOF, "SCRAM nonce mismatch", "nonce with extra byte");
    FINAL_FAILS("c=biws,r=,p=" PROOF, "SCRAM nonce mismatch", "empty nonce");
    FINAL_FAILS("c=biws,r=X" NONCE ",p=" PROOF, "SCRAM nonce mismatch", "different nonce");
    FINAL_FAILS("c=biws,r=" NONCE, "malformed SCRAM message (missing proof)", "proof missing");
    FINAL_FAILS("c=biws,r=" NONCE ",", "malformed SCRAM message (missing proof)",
                "proof missing after ','");
    FINAL_FAILS("c=biws,r=" NONCE ",x=1,p=" PROOF, "SCRAM extensions are not supported",
                "extension before the proof");
    FINAL_FAILS("c=biws,r=" NONCE ",p=" PROOF ",x=1",
                "malformed SCRAM message (garbage after proof)", "attribute after the proof");
    FINAL_FAILS("c=biws,r=" NONCE ",p=" PROOF ",", "malformed SCRAM message (garbage after proof)",
                "trailing ','");
    FINAL_FAILS("c=biws,r=" NONCE ",p=" PROOF "AAAA", "malformed SCRAM message (bad proof)",
                "proof too long (35 bytes)");
    FINAL_FAILS("c=biws,r=" NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndQ==",
                "malformed SCRAM message (bad proof)", "proof too short (31 bytes)");
    FINAL_FAILS("c=biws,r=" NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7And*Q=",
                "malformed SCRAM message (bad proof)", "proof not base64");
    FINAL_FAILS("c=biws,r=" NONCE ",p=", "malformed SCRAM message (bad proof)", "empty proof");
    FINAL_FAILS("c=biws,r=" NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVA=",
                "password mismatch", "proof off by one bit");
    FINAL_FAILS("c=biws,r=" NONCE "\0,p=" PROOF, "malformed SCRAM message (NUL byte)",
                "NUL after the nonce");
    FINAL_FAILS("c=biws,r=" NONCE ",p=" PROOF "\0", "malformed SCRAM message (NUL byte)",
                "trailing NUL");
    FINAL_FAILS("", "malformed SCRAM message (empty)", "empty message");
    FINAL_FAILS("r=" NONCE ",c=biws,p=" PROOF, "malformed SCRAM message (missing channel binding)",
                "attributes out of order");

    /* A 'y' header must be echoed as "eSws", and then "biws" is wrong. */
    {
        static const char yfirst[] = "y,,n=user,r=" RFC_CNONCE;

        rfc_server_ready(&st, &sec, yfirst);
        TAP_CHECK(!scram_server_final(&st, &sec, u8(RFC_CLIENT_FINAL), strlen(RFC_CLIENT_FINAL),
                                      out, sizeof(out), &outlen, NULL, &err),
                  "client-final: 'biws' after a 'y' header refused");
        TAP_STR_EQ(err, "SCRAM channel binding check failed", "'biws' after 'y': error");
    }
    /* Output buffer too small for server-final. */
    rfc_server_ready(&st, &sec, RFC_CLIENT_FIRST);
    TAP_CHECK(!scram_server_final(&st, &sec, u8(RFC_CLIENT_FINAL), strlen(RFC_CLIENT_FINAL), out,
                                  20, &outlen, NULL, &err),
              "server-final refuses a small output buffer");
}

/*
 * A client proof computed straight from RFC 5802 with OpenSSL's one-shot
 * calls, independent of src/scram.c, so a client that said 'y' (and so
 * signs "c=eSws") can be played even though our client always says 'n'.
 */
static bool independent_proof(const char *password, const struct scram_secret *sec,
                              const char *authmsg, char *b64, size_t cap)
{
    uint8_t sp[32], ck[32], stored[32], sig[32], proof[32];
    unsigned int l = 0;

    if (cap < 45 ||
        PKCS5_PBKDF2_HMAC(password, (int)strlen(password), sec->salt, (int)sec->salt_len,
                          sec->iterations, EVP_sha256(), 32, sp) != 1 ||
        HMAC(EVP_sha256(), sp, 32, u8("Client Key"), 10, ck, &l) == NULL ||
        EVP_Digest(ck, 32, stored, NULL, EVP_sha256(), NULL) != 1 ||
        HMAC(EVP_sha256(), stored, 32, u8(authmsg), strlen(authmsg), sig, &l) == NULL)
        return false;
    for (int i = 0; i < 32; i++)
        proof[i] = ck[i] ^ sig[i];
    return EVP_EncodeBlock((unsigned char *)b64, proof, 32) == 44;
}

/* With the 'y' header the exchange works when the client echoes "eSws". */
static void test_y_header_round_trip(void)
{
    static const char first[] = "y,,n=,r=clientnonce";
    struct scram_server sv;
    struct scram_secret sec;
    char s1[SCRAM_MAX_MSG], s2[SCRAM_MAX_MSG], authmsg[3 * SCRAM_MAX_MSG], proof[64];
    char final[SCRAM_MAX_MSG];
    size_t s1n, s2n;
    const char *err = NULL;
    bool ok;

    memset(&sv, 0, sizeof(sv));
    scram_test_set_nonce("servernonce");
    ok = scram_parse_secret(PG_SECRET, &sec) &&
         scram_server_first(&sv, &sec, u8(first), strlen(first), s1, sizeof(s1), &s1n, &err);
    TAP_CHECK(ok, "'y' header: server-first");
    snprintf(authmsg, sizeof(authmsg), "n=,r=clientnonce,%s,c=eSws,r=clientnonceservernonce", s1);
    ok = independent_proof("pencil", &sec, authmsg, proof, sizeof(proof));
    TAP_CHECK(ok, "'y' header: independent proof computed");
    snprintf(final, sizeof(final), "c=eSws,r=clientnonceservernonce,p=%s", proof);
    ok = scram_server_final(&sv, &sec, u8(final), strlen(final), s2, sizeof(s2), &s2n, NULL, &err);
    TAP_CHECK(ok, "'y' header: proof made outside pgmux accepted (%s)", err ? err : "");
}

/*==================================================================
 * Malformed input, client side
 *==================================================================*/

static void expect_sfirst_fails(const char *msg, size_t len, const char *want, const char *name)
{
    struct scram_client st;
    char out[SCRAM_MAX_MSG];
    size_t outlen;
    const char *err = NULL;
    bool ok;

    memset(&st, 0, sizeof(st));
    scram_test_set_nonce("abc");
    ok = scram_client_first(&st, out, sizeof(out), &outlen) &&
         scram_client_final(&st, "pw", NULL, u8(msg), len, out, sizeof(out), &outlen, &err);
    TAP_CHECK(!ok && err && strcmp(err, want) == 0, "server-first: %s", name);
    if (ok || !err || strcmp(err, want) != 0)
        printf("#   got '%s' expected '%s'\n", ok ? "(accepted)" : err ? err : "(null)", want);
}

#define SFIRST_FAILS(msg, want, name) expect_sfirst_fails(msg, sizeof(msg) - 1, want, name)

static void test_server_first_malformed(void)
{
    const char *err = NULL;

    TAP_CHECK(client_against("pw", "r=abcdef,s=QUJDRA==,i=1", &err), "server-first control case");
    SFIRST_FAILS("r=xyzdef,s=QUJDRA==,i=1", "SCRAM server nonce does not extend the client nonce",
                 "nonce not starting with ours");
    SFIRST_FAILS("r=abc,s=QUJDRA==,i=1", "SCRAM server nonce does not extend the client nonce",
                 "nonce equal to ours");
    SFIRST_FAILS("r=ab,s=QUJDRA==,i=1", "SCRAM server nonce does not extend the client nonce",
                 "nonce shorter than ours");
    SFIRST_FAILS("r=abc d,s=QUJDRA==,i=1", "malformed SCRAM message (bad nonce)",
                 "space in server nonce");
    SFIRST_FAILS("s=QUJDRA==,i=1", "malformed SCRAM message (missing nonce)", "nonce missing");
    SFIRST_FAILS("m=x,r=abcdef,s=QUJDRA==,i=1", "SCRAM mandatory extension is not supported",
                 "reserved-mext");
    SFIRST_FAILS("r=abcdef,i=1", "malformed SCRAM message (missing salt)", "salt missing");
    SFIRST_FAILS("r=abcdef,s=,i=1", "malformed SCRAM message (bad salt)", "empty salt");
    SFIRST_FAILS("r=abcdef,s=QUJDRA=,i=1", "malformed SCRAM message (bad salt)", "salt not base64");
    SFIRST_FAILS("r=abcdef,s="
                 "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
                 "QUFBQUE=,i=1",
                 "malformed SCRAM message (bad salt)", "salt longer than SCRAM_MAX_SALT");
    SFIRST_FAILS("r=abcdef,s=QUJDRA==", "malformed SCRAM message (missing iteration count)",
                 "iteration count missing");
    SFIRST_FAILS("r=abcdef,s=QUJDRA==,i=", "SCRAM iteration count invalid or too high",
                 "empty iteration count");
    SFIRST_FAILS("r=abcdef,s=QUJDRA==,i=0", "SCRAM iteration count invalid or too high",
                 "iteration count 0");
    SFIRST_FAILS("r=abcdef,s=QUJDRA==,i=-1", "SCRAM iteration count invalid or too high",
                 "negative iteration count");
    SFIRST_FAILS("r=abcdef,s=QUJDRA==,i=+5", "SCRAM iteration count invalid or too high",
                 "signed iteration count");
    SFIRST_FAILS("r=abcdef,s=QUJDRA==,i=4096x", "SCRAM iteration count invalid or too high",
                 "junk in iteration count");
    SFIRST_FAILS("r=abcdef,s=QUJDRA==,i=1,x=y",
                 "malformed SCRAM message (garbage after iteration count)", "extension at end");
    SFIRST_FAILS("r=abcdef,s=QUJDRA==,i=1,",
                 "malformed SCRAM message (garbage after iteration count)", "trailing ','");
    SFIRST_FAILS("r=abcdef,i=1,s=QUJDRA==", "malformed SCRAM message (missing salt)",
                 "attributes out of order");
    SFIRST_FAILS("r=abcdef,s=QUJDRA==,i=1\0", "malformed SCRAM message (NUL byte)", "trailing NUL");
    SFIRST_FAILS("r=abc\0def,s=QUJDRA==,i=1", "malformed SCRAM message (NUL byte)", "NUL in nonce");
    SFIRST_FAILS("", "malformed SCRAM message (empty)", "empty message");

    {
        struct scram_client st;
        char out[SCRAM_MAX_MSG];
        size_t outlen;

        memset(&st, 0, sizeof(st));
        scram_test_set_nonce("abc");
        TAP_CHECK(scram_client_first(&st, out, sizeof(out), &outlen) &&
                      !scram_client_final(&st, NULL, NULL, u8("r=abcdef,s=QUJDRA==,i=1"), 23, out,
                                          sizeof(out), &outlen, &err),
                  "server-first: neither password nor keys");
        TAP_STR_EQ(err, "no password or SCRAM keys for the server login",
                   "neither password nor keys: error");
        memset(&st, 0, sizeof(st));
        TAP_CHECK(!scram_client_final(&st, "pw", NULL, u8("r=abcdef,s=QUJDRA==,i=1"), 23, out,
                                      sizeof(out), &outlen, &err),
                  "server-first before client-first refused");
        memset(&st, 0, sizeof(st));
        TAP_CHECK(scram_client_first(&st, out, sizeof(out), &outlen) && outlen == 3 + 2 + 3 + 24 &&
                      strncmp(out, "n,,n=,r=", 8) == 0,
                  "client-first: 'n,,n=,r=' and a 24-char random nonce");
        TAP_CHECK(!scram_client_first(&st, out, sizeof(out), &outlen),
                  "client-first twice refused");
        memset(&st, 0, sizeof(st));
        TAP_CHECK(!scram_client_first(&st, out, 20, &outlen), "client-first: small buffer refused");
    }
}

static void expect_sfinal_fails(const char *msg, size_t len, const char *want, const char *name)
{
    struct scram_client st;
    char out[SCRAM_MAX_MSG];
    size_t outlen;
    const char *err = NULL;
    bool ok;

    memset(&st, 0, sizeof(st));
    scram_test_set_client_user("user");
    scram_test_set_nonce(RFC_CNONCE);
    ok = scram_client_first(&st, out, sizeof(out), &outlen);
    scram_test_set_client_user(NULL);
    ok = ok && scram_client_final(&st, "pencil", NULL, u8(RFC_SERVER_FIRST),
                                  strlen(RFC_SERVER_FIRST), out, sizeof(out), &outlen, &err);
    ok = ok && scram_client_verify(&st, u8(msg), len, &err);
    TAP_CHECK(!ok && err && strcmp(err, want) == 0, "server-final: %s", name);
    if (ok || !err || strcmp(err, want) != 0)
        printf("#   got '%s' expected '%s'\n", ok ? "(accepted)" : err ? err : "(null)", want);
}

#define SFINAL_FAILS(msg, want, name) expect_sfinal_fails(msg, sizeof(msg) - 1, want, name)

static void test_server_final_malformed(void)
{
    SFINAL_FAILS("e=invalid-proof", "server reported a SCRAM error", "e= error");
    SFINAL_FAILS(RFC_SERVER_FINAL ",x=1", "malformed SCRAM message (garbage after signature)",
                 "extension after v=");
    SFINAL_FAILS("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
                 "malformed SCRAM message (bad server signature)", "signature not padded");
    SFINAL_FAILS("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95A==",
                 "malformed SCRAM message (bad server signature)", "signature of 31 bytes");
    SFINAL_FAILS("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G0=",
                 "SCRAM server signature mismatch", "signature off in the last byte");
    SFINAL_FAILS("x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
                 "malformed SCRAM message (missing server signature)", "no v=");
    SFINAL_FAILS(RFC_SERVER_FINAL "\0", "malformed SCRAM message (NUL byte)", "trailing NUL");
    SFINAL_FAILS("", "malformed SCRAM message (empty)", "empty message");
}

/* auth_type = plain against stored SCRAM secrets: RFC 7677's and one PostgreSQL made. */
static void test_verify_plain(void)
{
    struct scram_secret rfc, pg;
    TAP_CHECK(scram_parse_secret(RFC_SECRET, &rfc) && scram_parse_secret(PG_SECRET, &pg),
              "verify_plain: secrets parse");
    struct scram_keys keys;
    memset(&keys, 0, sizeof(keys));
    TAP_CHECK(scram_verify_plain(&rfc, "pencil", &keys), "verify_plain: RFC secret, right password");
    /* The keys a SCRAM proof gives: SHA-256(ClientKey) is the StoredKey, ServerKey as stored. */
    uint8_t h[SCRAM_KEY_LEN];
    unsigned int hlen = 0;
    TAP_CHECK(EVP_Digest(keys.client_key, SCRAM_KEY_LEN, h, &hlen, EVP_sha256(), NULL) &&
                  hlen == SCRAM_KEY_LEN && memcmp(h, rfc.stored_key, SCRAM_KEY_LEN) == 0 &&
                  memcmp(keys.server_key, rfc.server_key, SCRAM_KEY_LEN) == 0,
              "verify_plain: the keys match the secret");
    TAP_CHECK(scram_verify_plain(&pg, "pencil", NULL), "verify_plain: PostgreSQL's secret");
    TAP_CHECK(!scram_verify_plain(&rfc, "pencil ", NULL), "verify_plain: wrong password");
    TAP_CHECK(!scram_verify_plain(&pg, "", NULL), "verify_plain: empty password");
    pg.server_key[0] ^= 1;
    TAP_CHECK(!scram_verify_plain(&pg, "pencil", NULL), "verify_plain: ServerKey is checked too");
}

int main(void)
{
    test_base64();
    test_parse_secret();
    test_rfc_server();
    test_rfc_client();
    test_round_trips();
    test_secret_changes_midway();
    test_secret_rekeyed_midway();
    test_plain_cache();
    test_client_cache();
    test_client_first_malformed();
    test_client_final_malformed();
    test_y_header_round_trip();
    test_server_first_malformed();
    test_server_final_malformed();
    test_verify_plain();
    return tap_done();
}
