/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for src/tls.c. A throwaway CA, server, client and "other CA"
 * certificates are made with the OpenSSL API in a fresh temporary directory,
 * so nothing depends on the openssl command or the clock of a checked-in
 * file. Contexts are built for every sslmode and protocol setting, every bad
 * input gives its error (missing, mismatched, garbage, encrypted key files;
 * bad CA; unknown protocol; bad cipher strings; bad curves and DH values),
 * and real handshakes run between a client-side and a server-side context
 * over a socketpair: data exchange, ALPN "postgresql", verify-full with
 * matching and non-matching names, client certificates, protocol mismatch,
 * legacy DH, SNI, and a reload that rotates the certificate while a
 * connection made from the old context is still handshaking.
 */
#include "tls.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "tap.h"

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char paths[16][192];
    static int n;
    char *p = paths[n++ % 16];

    snprintf(p, sizeof(paths[0]), "%s/%s", tmpdir, name);
    return p;
}

/*==================================================================
 * Certificates
 *==================================================================*/

struct keycert {
    EVP_PKEY *key;
    X509 *cert;
};

static bool add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    bool ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;

    X509_EXTENSION_free(ext);
    return ok;
}

/* A certificate for key, signed by issuer (self-signed when issuer is NULL). */
static struct keycert make_cert(EVP_PKEY *key, const char *cn, const char *san,
                                const struct keycert *issuer, bool ca, long serial)
{
    struct keycert kc = {key, X509_new()};
    X509 *x = kc.cert;
    X509V3_CTX v3;
    bool ok;

    ok = X509_set_version(x, 2) && ASN1_INTEGER_set(X509_get_serialNumber(x), serial) &&
         X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
         X509_gmtime_adj(X509_getm_notAfter(x), 86400) && X509_set_pubkey(x, key) &&
         X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                    (const unsigned char *)cn, -1, -1, 0) &&
         X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer->cert : x));
    X509V3_set_ctx(&v3, issuer ? issuer->cert : x, x, NULL, NULL, 0);
    ok = ok && add_ext(x, &v3, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    ok = ok && add_ext(x, &v3, NID_subject_key_identifier, "hash");
    if (ca)
        ok = ok && add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
    else
        ok = ok && add_ext(x, &v3, NID_ext_key_usage, "serverAuth,clientAuth");
    if (issuer != NULL)
        ok = ok && add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
    if (san != NULL)
        ok = ok && add_ext(x, &v3, NID_subject_alt_name, san);
    ok = ok && X509_sign(x, issuer ? issuer->key : key, EVP_sha256()) > 0;
    if (!ok) {
        printf("# could not make certificate %s\n", cn);
        ERR_print_errors_fp(stdout);
    }
    return kc;
}

static void write_pem(const char *name, X509 *cert, EVP_PKEY *key, const char *passphrase)
{
    FILE *f = fopen(tmp_path(name), "w");
    bool ok = f != NULL;

    if (ok && cert != NULL)
        ok = PEM_write_X509(f, cert) == 1;
    if (ok && key != NULL && passphrase != NULL)
        ok = PEM_write_PrivateKey(f, key, EVP_aes_128_cbc(), (unsigned char *)passphrase,
                                  (int)strlen(passphrase), NULL, NULL) == 1;
    else if (ok && key != NULL)
        ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    if (f == NULL || fclose(f) != 0 || !ok)
        printf("# could not write %s\n", name);
}

static void write_text(const char *name, const char *text)
{
    FILE *f = fopen(tmp_path(name), "w");

    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        printf("# could not write %s\n", name);
}

static void make_all_certs(void)
{
    struct keycert ca = make_cert(EVP_EC_gen("P-256"), "pgmux test CA", NULL, NULL, true, 1);
    struct keycert other_ca = make_cert(EVP_EC_gen("P-256"), "other CA", NULL, NULL, true, 2);
    struct keycert server =
        make_cert(EVP_EC_gen("P-256"), "localhost",
                  "DNS:localhost,DNS:*.example.test,IP:127.0.0.1,IP:::1", &ca, false, 3);
    struct keycert client = make_cert(EVP_EC_gen("P-256"), "alice", NULL, &ca, false, 4);
    struct keycert other_server =
        make_cert(EVP_EC_gen("P-256"), "localhost", "DNS:localhost", &other_ca, false, 5);
    struct keycert other_client =
        make_cert(EVP_EC_gen("P-256"), "mallory", NULL, &other_ca, false, 6);
    struct keycert rotated = make_cert(EVP_EC_gen("P-256"), "rotated.example.test",
                                       "DNS:rotated.example.test", &ca, false, 7);
    struct keycert cn_only = make_cert(EVP_EC_gen("P-256"), "cnonly.test", NULL, &ca, false, 8);
    struct keycert rsa = make_cert(EVP_RSA_gen(2048), "localhost", "DNS:localhost", &ca, false, 9);
    struct keycert *all[] = {&ca,           &other_ca, &server,  &client, &other_server,
                             &other_client, &rotated,  &cn_only, &rsa};

    write_pem("ca.crt", ca.cert, NULL, NULL);
    write_pem("other_ca.crt", other_ca.cert, NULL, NULL);
    write_pem("server.crt", server.cert, NULL, NULL);
    write_pem("server.key", NULL, server.key, NULL);
    write_pem("server_enc.key", NULL, server.key, "secret");
    write_pem("client.crt", client.cert, NULL, NULL);
    write_pem("client.key", NULL, client.key, NULL);
    write_pem("other_server.crt", other_server.cert, NULL, NULL);
    write_pem("other_server.key", NULL, other_server.key, NULL);
    write_pem("other_client.crt", other_client.cert, NULL, NULL);
    write_pem("other_client.key", NULL, other_client.key, NULL);
    write_pem("rotated.crt", rotated.cert, NULL, NULL);
    write_pem("rotated.key", NULL, rotated.key, NULL);
    write_pem("cn_only.crt", cn_only.cert, NULL, NULL);
    write_pem("cn_only.key", NULL, cn_only.key, NULL);
    write_pem("rsa.crt", rsa.cert, NULL, NULL);
    write_pem("rsa.key", NULL, rsa.key, NULL);
    write_text("garbage.pem", "this is not a certificate\n");
    write_text("empty.pem", "");
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        X509_free(all[i]->cert);
        EVP_PKEY_free(all[i]->key);
    }
}

/*==================================================================
 * Helpers
 *==================================================================*/

static void set(struct config *cfg, const char *key, const char *value)
{
    struct config_error e;

    if (!config_set(cfg, key, value, &e))
        printf("# config_set %s=%s: %s\n", key, value, e.msg);
}

/* A config whose client side is sslmode with the test server's key and cert. */
static struct config *client_cfg(const char *mode)
{
    struct config *cfg = config_new_default();

    set(cfg, "client_tls_sslmode", mode);
    set(cfg, "client_tls_key_file", tmp_path("server.key"));
    set(cfg, "client_tls_cert_file", tmp_path("server.crt"));
    return cfg;
}

static struct config *server_cfg(const char *mode)
{
    struct config *cfg = config_new_default();

    set(cfg, "server_tls_sslmode", mode);
    return cfg;
}

/* Expect tls_client_side_new (or server side) to fail with want in the message. */
static void expect_fail(struct config *cfg, bool client_side, const char *want, const char *desc)
{
    char err[512];
    struct tls_ctx *ctx = client_side ? tls_client_side_new(cfg, err, sizeof(err))
                                      : tls_server_side_new(cfg, err, sizeof(err));

    TAP_CHECK(ctx == NULL && strstr(err, want) != NULL && ERR_peek_error() == 0, "error: %s", desc);
    if (ctx != NULL || strstr(err, want) == NULL)
        printf("#   got '%s'\n#   want '...%s...'\n", ctx ? "(built)" : err, want);
    tls_ctx_free(ctx);
    config_free(cfg);
}

static struct tls_ctx *build(struct config *cfg, bool client_side, const char *desc)
{
    char err[512];
    struct tls_ctx *ctx = client_side ? tls_client_side_new(cfg, err, sizeof(err))
                                      : tls_server_side_new(cfg, err, sizeof(err));

    TAP_CHECK(ctx != NULL, "builds: %s", desc);
    if (ctx == NULL)
        printf("#   %s\n", err);
    return ctx;
}

struct conn {
    SSL *acc; /* the side that accepts: pgmux towards clients */
    SSL *con; /* the side that connects: pgmux towards PostgreSQL, or a raw client */
    int fds[2];
    char err[256];
};

static void conn_close(struct conn *c)
{
    SSL_free(c->acc);
    SSL_free(c->con);
    close(c->fds[0]);
    close(c->fds[1]);
    memset(c, 0, sizeof(*c));
}

static bool conn_open(struct conn *c, SSL_CTX *acc_ctx, SSL_CTX *con_ctx)
{
    memset(c, 0, sizeof(*c));
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, c->fds) != 0)
        return false;
    fcntl(c->fds[0], F_SETFL, O_NONBLOCK);
    fcntl(c->fds[1], F_SETFL, O_NONBLOCK);
    c->acc = SSL_new(acc_ctx);
    c->con = SSL_new(con_ctx);
    if (c->acc == NULL || c->con == NULL)
        return false;
    SSL_set_fd(c->acc, c->fds[0]);
    SSL_set_fd(c->con, c->fds[1]);
    SSL_set_accept_state(c->acc);
    SSL_set_connect_state(c->con);
    return true;
}

/*
 * Drive both ends of a non-blocking handshake in turns until both finish or
 * one fails (c->err then says why, via tls_error_string).
 */
static bool conn_handshake(struct conn *c)
{
    bool acc_done = false, con_done = false;

    for (int i = 0; i < 200 && !(acc_done && con_done); i++) {
        SSL *sides[2] = {c->acc, c->con};
        bool *done[2] = {&acc_done, &con_done};

        for (int s = 0; s < 2; s++) {
            int r, e;

            if (*done[s])
                continue;
            ERR_clear_error();
            r = SSL_do_handshake(sides[s]);
            if (r == 1) {
                *done[s] = true;
                continue;
            }
            e = SSL_get_error(sides[s], r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                snprintf(c->err, sizeof(c->err), "%s: ", s == 0 ? "accept" : "connect");
                tls_error_string(sides[s], r, c->err + strlen(c->err),
                                 sizeof(c->err) - strlen(c->err));
                return false;
            }
        }
    }
    if (!(acc_done && con_done)) {
        snprintf(c->err, sizeof(c->err), "handshake did not finish");
        return false;
    }
    /*
     * In TLS 1.3 the connecting side finishes before the accepting side has
     * checked its certificate; a message round trip proves both accepted.
     */
    {
        char buf[16];
        int n;

        if (SSL_write(c->con, "ping", 4) != 4) {
            snprintf(c->err, sizeof(c->err), "write failed");
            return false;
        }
        ERR_clear_error();
        n = SSL_read(c->acc, buf, sizeof(buf));
        if (n != 4 || memcmp(buf, "ping", 4) != 0) {
            snprintf(c->err, sizeof(c->err), "accept: ");
            tls_error_string(c->acc, n, c->err + strlen(c->err), sizeof(c->err) - 8);
            return false;
        }
        if (SSL_write(c->acc, "pong", 4) != 4) {
            snprintf(c->err, sizeof(c->err), "write back failed");
            return false;
        }
        ERR_clear_error();
        n = SSL_read(c->con, buf, sizeof(buf));
        if (n != 4 || memcmp(buf, "pong", 4) != 0) {
            snprintf(c->err, sizeof(c->err), "connect: ");
            tls_error_string(c->con, n, c->err + strlen(c->err), sizeof(c->err) - 9);
            return false;
        }
    }
    return true;
}

/* Build both contexts, connect, handshake; returns the outcome and leaves c open. */
static bool run(struct tls_ctx *acc, struct tls_ctx *con, struct conn *c)
{
    if (acc == NULL || con == NULL) {
        memset(c, 0, sizeof(*c));
        c->fds[0] = c->fds[1] = -1;
        snprintf(c->err, sizeof(c->err), "context missing");
        return false;
    }
    if (!conn_open(c, tls_ctx_ssl(acc), tls_ctx_ssl(con))) {
        snprintf(c->err, sizeof(c->err), "could not open the socket pair");
        return false;
    }
    return conn_handshake(c);
}

/*==================================================================
 * Context construction
 *==================================================================*/

static void test_disable(void)
{
    struct config *cfg = config_new_default();
    char err[64] = "x";

    TAP_CHECK(tls_client_side_new(cfg, err, sizeof(err)) == NULL && err[0] == '\0',
              "client side disable (the default): NULL and no error");
    set(cfg, "server_tls_sslmode", "disable");
    strcpy(err, "x");
    TAP_CHECK(tls_server_side_new(cfg, err, sizeof(err)) == NULL && err[0] == '\0',
              "server side disable: NULL and no error");
    TAP_CHECK(tls_ctx_ssl(NULL) == NULL && tls_ctx_sslmode(NULL) == SSLMODE_DISABLE,
              "accessors accept NULL");
    tls_ctx_free(NULL);
    config_free(cfg);
}

static void test_client_side_errors(void)
{
    struct config *cfg;

    cfg = config_new_default();
    set(cfg, "client_tls_sslmode", "require");
    expect_fail(cfg, true, "client_tls_sslmode=require needs client_tls_key_file", "no key/cert");

    cfg = client_cfg("require");
    set(cfg, "client_tls_key_file", tmp_path("missing.key"));
    expect_fail(cfg, true, "client_tls_key_file \"", "missing key file: names the key");
    cfg = client_cfg("require");
    set(cfg, "client_tls_key_file", tmp_path("missing.key"));
    expect_fail(cfg, true, "missing.key\": No such file or directory", "missing key file: errno");
    cfg = client_cfg("prefer");
    set(cfg, "client_tls_cert_file", tmp_path("missing.crt"));
    expect_fail(cfg, true, "client_tls_cert_file \"", "missing cert file");

    cfg = client_cfg("require");
    set(cfg, "client_tls_key_file", tmp_path("client.key"));
    expect_fail(cfg, true, "does not match client_tls_cert_file", "key does not match cert");
    cfg = client_cfg("require");
    set(cfg, "client_tls_cert_file", tmp_path("garbage.pem"));
    expect_fail(cfg, true, "could not load certificate", "garbage cert file");
    cfg = client_cfg("require");
    set(cfg, "client_tls_cert_file", tmp_path("empty.pem"));
    expect_fail(cfg, true, "could not load certificate", "empty cert file");
    cfg = client_cfg("require");
    set(cfg, "client_tls_key_file", tmp_path("garbage.pem"));
    expect_fail(cfg, true, "could not load private key", "garbage key file");
    cfg = client_cfg("require");
    set(cfg, "client_tls_key_file", tmp_path("server_enc.key"));
    expect_fail(cfg, true, "the private key is encrypted", "encrypted key: refused, no prompt");

    cfg = client_cfg("verify-ca");
    expect_fail(cfg, true, "client_tls_sslmode=verify-ca needs client_tls_ca_file",
                "verify-ca without CA file");
    cfg = client_cfg("verify-full");
    expect_fail(cfg, true, "client_tls_sslmode=verify-full needs client_tls_ca_file",
                "verify-full without CA file");
    cfg = client_cfg("verify-ca");
    set(cfg, "client_tls_ca_file", tmp_path("garbage.pem"));
    expect_fail(cfg, true, "client_tls_ca_file \"", "garbage CA file");
    cfg = client_cfg("verify-ca");
    set(cfg, "client_tls_ca_file", tmp_path("empty.pem"));
    expect_fail(cfg, true, "client_tls_ca_file \"", "empty CA file");
    cfg = client_cfg("require");
    set(cfg, "client_tls_ca_file", tmp_path("missing_ca.crt"));
    expect_fail(cfg, true, "missing_ca.crt\": No such file", "missing CA file");

    cfg = client_cfg("require");
    set(cfg, "client_tls_protocols", "tlsv1.4");
    expect_fail(cfg, true, "client_tls_protocols \"tlsv1.4\": unknown TLS protocol \"tlsv1.4\"",
                "unknown protocol name");
    cfg = client_cfg("require");
    set(cfg, "client_tls_protocols", "tlsv1.2,sslv3");
    expect_fail(cfg, true, "unknown TLS protocol \"sslv3\"", "unknown name in a list");
    cfg = client_cfg("require");
    set(cfg, "client_tls_protocols", "");
    expect_fail(cfg, true, "unknown TLS protocol", "empty protocols");
    cfg = client_cfg("require");
    set(cfg, "client_tls_protocols", "tlsv1.2,,tlsv1.3");
    expect_fail(cfg, true, "unknown TLS protocol \"\"", "empty list item");
    cfg = client_cfg("require");
    set(cfg, "client_tls_protocols", "!tlsv1.0,!tlsv1.1,!tlsv1.2,!tlsv1.3");
    expect_fail(cfg, true, "unknown TLS protocol", "every protocol removed");

    cfg = client_cfg("require");
    set(cfg, "client_tls_ciphers", "NOSUCHCIPHER");
    expect_fail(cfg, true, "client_tls_ciphers \"NOSUCHCIPHER\"", "bad cipher string");
    cfg = client_cfg("require");
    set(cfg, "client_tls13_ciphers", "TLS_NO_SUCH_SUITE");
    expect_fail(cfg, true, "client_tls13_ciphers \"TLS_NO_SUCH_SUITE\"", "bad TLS 1.3 suite");
    cfg = client_cfg("require");
    set(cfg, "client_tls_ecdhcurve", "nosuchcurve");
    expect_fail(cfg, true, "client_tls_ecdhcurve \"nosuchcurve\"", "bad ECDH curve");
    cfg = client_cfg("require");
    set(cfg, "client_tls_dheparams", "2048");
    expect_fail(cfg, true, "client_tls_dheparams \"2048\": expected auto, none or legacy",
                "bad dheparams");
}

static void check_protocols(const char *value, int lo, int hi, uint64_t no_opts)
{
    struct config *cfg = client_cfg("require");
    struct tls_ctx *ctx;

    set(cfg, "client_tls_protocols", value);
    ctx = build(cfg, true, value);
    if (ctx != NULL) {
        SSL_CTX *s = tls_ctx_ssl(ctx);
        int gotlo = (int)SSL_CTX_get_min_proto_version(s);
        int gothi = (int)SSL_CTX_get_max_proto_version(s);
        uint64_t opts = SSL_CTX_get_options(s) & (SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                                                  SSL_OP_NO_TLSv1_2 | SSL_OP_NO_TLSv1_3);

        TAP_CHECK(gotlo == lo && gothi == hi && opts == no_opts,
                  "protocols \"%s\": range 0x%x-0x%x, holes 0x%llx", value, lo, hi,
                  (unsigned long long)no_opts);
        if (gotlo != lo || gothi != hi || opts != no_opts)
            printf("#   got 0x%x-0x%x holes 0x%llx\n", gotlo, gothi, (unsigned long long)opts);
    }
    tls_ctx_free(ctx);
    config_free(cfg);
}

static void test_client_side_settings(void)
{
    static const char *const modes[] = {"allow", "prefer", "require", "verify-ca", "verify-full"};
    static const char *const presets[] = {
        "default", "secure", "normal",   "fast",   "compat",
        "legacy",  "all",    "insecure", "SECURE", "ECDHE-ECDSA-AES128-GCM-SHA256"};
    static const char *const curves[] = {"auto", "none", "prime256v1", "X25519:P-384",
                                         "secp384r1,prime256v1"};
    static const char *const dhs[] = {"auto", "none", "legacy", "AUTO"};

    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        struct config *cfg = client_cfg(modes[i]);
        struct tls_ctx *ctx;

        set(cfg, "client_tls_ca_file", tmp_path("ca.crt"));
        ctx = build(cfg, true, modes[i]);
        if (ctx != NULL) {
            int vm = SSL_CTX_get_verify_mode(tls_ctx_ssl(ctx));
            int want = i >= 3 ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER;

            TAP_CHECK(vm == want && tls_ctx_sslmode(ctx) == (int)i + 1,
                      "%s with a CA: verify mode 0x%x", modes[i], want);
        }
        tls_ctx_free(ctx);
        config_free(cfg);
    }
    {
        struct config *cfg = client_cfg("require");
        struct tls_ctx *ctx = build(cfg, true, "require without a CA");

        TAP_CHECK(ctx && SSL_CTX_get_verify_mode(tls_ctx_ssl(ctx)) == SSL_VERIFY_NONE,
                  "require without a CA: no client certificate asked");
        TAP_CHECK(ctx && (SSL_CTX_get_options(tls_ctx_ssl(ctx)) & SSL_OP_NO_TICKET) &&
                      SSL_CTX_get_session_cache_mode(tls_ctx_ssl(ctx)) == SSL_SESS_CACHE_OFF,
                  "no session cache, no tickets");
        tls_ctx_free(ctx);
        config_free(cfg);
    }

    check_protocols("secure", TLS1_2_VERSION, TLS1_3_VERSION, 0);
    check_protocols("default", TLS1_2_VERSION, TLS1_3_VERSION, 0);
    check_protocols("all", TLS1_VERSION, TLS1_3_VERSION, 0);
    check_protocols("legacy", TLS1_VERSION, TLS1_3_VERSION, 0);
    check_protocols("tlsv1.3", TLS1_3_VERSION, TLS1_3_VERSION, 0);
    check_protocols("TLSv1.2", TLS1_2_VERSION, TLS1_2_VERSION, 0);
    check_protocols("tlsv1.2,tlsv1.3", TLS1_2_VERSION, TLS1_3_VERSION, 0);
    check_protocols(" tlsv1.3 : tlsv1.2 ", TLS1_2_VERSION, TLS1_3_VERSION, 0);
    check_protocols("!tlsv1.0,!tlsv1.1", TLS1_2_VERSION, TLS1_3_VERSION, 0);
    check_protocols("all,!tlsv1.3", TLS1_VERSION, TLS1_2_VERSION, 0);
    check_protocols("tlsv1.0,tlsv1.2", TLS1_VERSION, TLS1_2_VERSION, SSL_OP_NO_TLSv1_1);
    check_protocols("tlsv1.1,tlsv1.3", TLS1_1_VERSION, TLS1_3_VERSION, SSL_OP_NO_TLSv1_2);

    for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++) {
        struct config *cfg = client_cfg("require");

        set(cfg, "client_tls_ciphers", presets[i]);
        tls_ctx_free(build(cfg, true, presets[i]));
        config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
        struct config *cfg = client_cfg("require");

        set(cfg, "client_tls_ecdhcurve", curves[i]);
        tls_ctx_free(build(cfg, true, curves[i]));
        config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(dhs) / sizeof(dhs[0]); i++) {
        struct config *cfg = client_cfg("require");
        struct tls_ctx *ctx;

        set(cfg, "client_tls_dheparams", dhs[i]);
        ctx = build(cfg, true, dhs[i]);
        if (ctx != NULL && strcmp(dhs[i], "legacy") == 0)
            TAP_CHECK(SSL_CTX_get_security_level(tls_ctx_ssl(ctx)) <= 1,
                      "legacy DH lowers the security level to 1");
        tls_ctx_free(ctx);
        config_free(cfg);
    }
    {
        struct config *cfg = client_cfg("require");

        set(cfg, "client_tls13_ciphers", "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256");
        tls_ctx_free(build(cfg, true, "TLS 1.3 suites"));
        config_free(cfg);
    }
}

static void test_server_side_contexts(void)
{
    struct config *cfg;
    struct tls_ctx *ctx;

    cfg = server_cfg("prefer");
    ctx = build(cfg, false, "server side prefer, no files");
    TAP_CHECK(ctx && SSL_CTX_get_verify_mode(tls_ctx_ssl(ctx)) == SSL_VERIFY_NONE &&
                  tls_ctx_sslmode(ctx) == SSLMODE_PREFER,
              "prefer: no certificate check");
    tls_ctx_free(ctx);
    config_free(cfg);

    cfg = server_cfg("verify-full");
    ctx = build(cfg, false, "server side verify-full with the system trust store");
    TAP_CHECK(ctx && SSL_CTX_get_verify_mode(tls_ctx_ssl(ctx)) == SSL_VERIFY_PEER,
              "verify-full: certificate checked");
    tls_ctx_free(ctx);
    config_free(cfg);

    cfg = server_cfg("require");
    set(cfg, "server_tls_key_file", tmp_path("client.key"));
    set(cfg, "server_tls_cert_file", tmp_path("client.crt"));
    tls_ctx_free(build(cfg, false, "server side with a client certificate"));
    config_free(cfg);

    cfg = server_cfg("verify-ca");
    set(cfg, "server_tls_ca_file", tmp_path("garbage.pem"));
    expect_fail(cfg, false, "server_tls_ca_file \"", "server side garbage CA");
    cfg = server_cfg("verify-ca");
    set(cfg, "server_tls_ca_file", tmp_path("nope.crt"));
    expect_fail(cfg, false, "nope.crt\": No such file", "server side missing CA");
    cfg = server_cfg("require");
    set(cfg, "server_tls_key_file", tmp_path("client.key"));
    expect_fail(cfg, false, "must be set together", "server side key without cert");
    cfg = server_cfg("require");
    set(cfg, "server_tls_key_file", tmp_path("server.key"));
    set(cfg, "server_tls_cert_file", tmp_path("client.crt"));
    expect_fail(cfg, false, "server_tls_key_file", "server side mismatched key");
    cfg = server_cfg("require");
    set(cfg, "server_tls_protocols", "ssl3");
    expect_fail(cfg, false, "server_tls_protocols \"ssl3\": unknown TLS protocol",
                "server side unknown protocol");
    cfg = server_cfg("require");
    set(cfg, "server_tls_ciphers", "BOGUS");
    expect_fail(cfg, false, "server_tls_ciphers \"BOGUS\"", "server side bad ciphers");
    cfg = server_cfg("require");
    set(cfg, "server_tls13_ciphers", "BOGUS");
    expect_fail(cfg, false, "server_tls13_ciphers \"BOGUS\"", "server side bad TLS 1.3 suites");
}

/*==================================================================
 * Handshakes
 *==================================================================*/

static void test_basic_handshake(void)
{
    struct config *ccfg = client_cfg("require"), *scfg = server_cfg("require");
    struct tls_ctx *acc = build(ccfg, true, "accepting side"),
                   *con = build(scfg, false, "connecting side");
    struct conn c;
    char info[128], cn[64];
    bool ok = run(acc, con, &c);

    TAP_CHECK(ok, "handshake require/require with data both ways");
    if (!ok)
        printf("#   %s\n", c.err);
    if (ok) {
        TAP_CHECK(tls_alpn_is_postgresql(c.acc) && tls_alpn_is_postgresql(c.con),
                  "ALPN postgresql negotiated on both ends");
        tls_info(c.acc, info, sizeof(info));
        TAP_CHECK(strncmp(info, "TLSv1.3/TLS_", 12) == 0 && strstr(info, "/ECDH=") != NULL,
                  "info on the accepting side: %s", info);
        tls_info(c.con, info, sizeof(info));
        TAP_CHECK(strncmp(info, "TLSv1.3/TLS_", 12) == 0 && strstr(info, "/ECDH=") != NULL,
                  "info on the connecting side: %s", info);
        TAP_CHECK(!tls_peer_cn(c.acc, cn, sizeof(cn)) && cn[0] == '\0',
                  "no client certificate: no CN");
        TAP_CHECK(tls_peer_cn(c.con, cn, sizeof(cn)) && strcmp(cn, "localhost") == 0,
                  "server certificate CN seen by the connecting side");
        TAP_CHECK(!tls_peer_cn(c.con, cn, 5), "CN that does not fit is refused, not truncated");
    }
    tls_info(NULL, info, sizeof(info));
    TAP_CHECK(info[0] == '\0', "info for no connection is empty");
    conn_close(&c);
    tls_ctx_free(acc);
    tls_ctx_free(con);
    config_free(ccfg);
    config_free(scfg);
}

static void test_verify_full(void)
{
    struct config *ccfg = client_cfg("require"), *scfg = server_cfg("verify-full");
    struct tls_ctx *acc, *con;
    struct conn c;
    char err[256];
    bool ok;

    set(scfg, "server_tls_ca_file", tmp_path("ca.crt"));
    acc = build(ccfg, true, "accepting side");
    con = build(scfg, false, "verify-full connecting side");
    ok = run(acc, con, &c);
    TAP_CHECK(ok, "verify-full handshake with the right CA");
    if (!ok)
        printf("#   %s\n", c.err);
    if (ok) {
        TAP_CHECK(tls_verify_host(c.con, "localhost", err, sizeof(err)), "host localhost matches");
        TAP_CHECK(tls_verify_host(c.con, "LOCALHOST", err, sizeof(err)),
                  "host names compare case-insensitively");
        TAP_CHECK(tls_verify_host(c.con, "db.example.test", err, sizeof(err)),
                  "wildcard *.example.test matches db.example.test");
        TAP_CHECK(!tls_verify_host(c.con, "a.db.example.test", err, sizeof(err)),
                  "wildcard covers one label only");
        TAP_CHECK(!tls_verify_host(c.con, "example.test", err, sizeof(err)),
                  "wildcard does not match the bare domain");
        TAP_CHECK(tls_verify_host(c.con, "127.0.0.1", err, sizeof(err)), "IPv4 SAN matches");
        TAP_CHECK(tls_verify_host(c.con, "::1", err, sizeof(err)), "IPv6 SAN matches");
        TAP_CHECK(!tls_verify_host(c.con, "10.0.0.1", err, sizeof(err)), "other IP refused");
        TAP_CHECK(!tls_verify_host(c.con, "", err, sizeof(err)), "empty host refused");
        err[0] = '\0';
        TAP_CHECK(!tls_verify_host(c.con, "evil.test", err, sizeof(err)),
                  "non-matching host refused");
        TAP_STR_EQ(err,
                   "server certificate for \"localhost\" (and 3 other names) does not match host "
                   "name \"evil.test\"",
                   "libpq's mismatch wording");
        TAP_CHECK(ERR_peek_error() == 0, "OpenSSL error queue left empty");
        TAP_CHECK(!tls_verify_host(c.acc, "localhost", err, sizeof(err)) &&
                      strstr(err, "did not present a certificate") != NULL,
                  "no peer certificate: refused");
    }
    conn_close(&c);
    tls_ctx_free(acc);

    /* A certificate with only a CN. */
    set(ccfg, "client_tls_key_file", tmp_path("cn_only.key"));
    set(ccfg, "client_tls_cert_file", tmp_path("cn_only.crt"));
    acc = build(ccfg, true, "CN-only certificate");
    ok = run(acc, con, &c);
    TAP_CHECK(ok && tls_verify_host(c.con, "cnonly.test", err, sizeof(err)),
              "CN used when there is no subjectAltName");
    TAP_CHECK(ok && !tls_verify_host(c.con, "other.test", err, sizeof(err)) &&
                  strcmp(err, "server certificate for \"cnonly.test\" does not match host name "
                              "\"other.test\"") == 0,
              "CN-only mismatch wording: %s", err);
    conn_close(&c);
    tls_ctx_free(acc);

    /* A server certificate from another CA fails the handshake itself. */
    set(ccfg, "client_tls_key_file", tmp_path("other_server.key"));
    set(ccfg, "client_tls_cert_file", tmp_path("other_server.crt"));
    acc = build(ccfg, true, "certificate from another CA");
    ok = run(acc, con, &c);
    TAP_CHECK(!ok && strstr(c.err, "connect: certificate verify failed") != NULL,
              "wrong CA: handshake fails with a clear reason");
    if (ok || strstr(c.err, "certificate verify failed") == NULL)
        printf("#   got '%s'\n", c.err);
    TAP_CHECK(ERR_peek_error() == 0, "OpenSSL error queue left empty after the failure");
    conn_close(&c);
    tls_ctx_free(acc);
    tls_ctx_free(con);
    config_free(scfg);

    /* verify-ca towards the same server does not care about names, only the chain. */
    scfg = server_cfg("verify-ca");
    set(scfg, "server_tls_ca_file", tmp_path("other_ca.crt"));
    con = build(scfg, false, "verify-ca with the other CA");
    acc = build(ccfg, true, "other server");
    ok = run(acc, con, &c);
    TAP_CHECK(ok, "verify-ca with the matching CA");
    conn_close(&c);
    tls_ctx_free(acc);
    tls_ctx_free(con);
    config_free(scfg);
    config_free(ccfg);
}

static void test_client_certificates(void)
{
    struct config *ccfg = client_cfg("verify-ca"), *scfg = server_cfg("require");
    struct tls_ctx *acc, *con;
    struct conn c;
    char cn[64];
    bool ok;

    set(ccfg, "client_tls_ca_file", tmp_path("ca.crt"));
    acc = build(ccfg, true, "client side verify-ca");
    con = build(scfg, false, "no client certificate");
    ok = run(acc, con, &c);
    TAP_CHECK(!ok, "verify-ca: a client without a certificate is refused (%s)", c.err);
    conn_close(&c);
    tls_ctx_free(con);

    set(scfg, "server_tls_key_file", tmp_path("client.key"));
    set(scfg, "server_tls_cert_file", tmp_path("client.crt"));
    con = build(scfg, false, "client certificate alice");
    ok = run(acc, con, &c);
    TAP_CHECK(ok, "verify-ca: a client certificate from the CA is accepted");
    if (!ok)
        printf("#   %s\n", c.err);
    TAP_CHECK(ok && tls_peer_cn(c.acc, cn, sizeof(cn)) && strcmp(cn, "alice") == 0,
              "client certificate CN is alice");
    conn_close(&c);
    tls_ctx_free(con);

    set(scfg, "server_tls_key_file", tmp_path("other_client.key"));
    set(scfg, "server_tls_cert_file", tmp_path("other_client.crt"));
    con = build(scfg, false, "client certificate from another CA");
    ok = run(acc, con, &c);
    TAP_CHECK(!ok, "verify-ca: a certificate from another CA is refused (%s)", c.err);
    conn_close(&c);
    tls_ctx_free(acc);
    config_free(ccfg);

    /* require + CA file: a certificate is optional, but checked when sent. */
    ccfg = client_cfg("require");
    set(ccfg, "client_tls_ca_file", tmp_path("ca.crt"));
    acc = build(ccfg, true, "client side require with a CA");
    ok = run(acc, con, &c);
    TAP_CHECK(!ok, "require + CA: a bad certificate is still refused");
    conn_close(&c);
    tls_ctx_free(con);
    config_free(scfg);
    scfg = server_cfg("require");
    con = build(scfg, false, "no client certificate");
    ok = run(acc, con, &c);
    TAP_CHECK(ok && !tls_peer_cn(c.acc, cn, sizeof(cn)), "require + CA: no certificate is fine");
    conn_close(&c);
    tls_ctx_free(acc);
    tls_ctx_free(con);
    config_free(ccfg);
    config_free(scfg);
}

static void test_protocol_handshakes(void)
{
    struct config *ccfg = client_cfg("require"), *scfg = server_cfg("require");
    struct tls_ctx *acc, *con;
    struct conn c;
    char info[128];
    bool ok;

    set(ccfg, "client_tls_protocols", "tlsv1.3");
    set(scfg, "server_tls_protocols", "tlsv1.2");
    acc = build(ccfg, true, "TLS 1.3 only");
    con = build(scfg, false, "TLS 1.2 only");
    ok = run(acc, con, &c);
    TAP_CHECK(!ok && strstr(c.err, "protocol") != NULL, "protocol mismatch fails: %s", c.err);
    conn_close(&c);
    tls_ctx_free(acc);

    set(ccfg, "client_tls_protocols", "secure");
    acc = build(ccfg, true, "secure");
    ok = run(acc, con, &c);
    tls_info(c.acc, info, sizeof(info));
    TAP_CHECK(ok && strncmp(info, "TLSv1.2/ECDHE-ECDSA-", 20) == 0 &&
                  strstr(info, "/ECDH=") != NULL,
              "TLS 1.2 handshake: %s", info);
    conn_close(&c);
    tls_ctx_free(acc);

    set(ccfg, "client_tls_ecdhcurve", "secp384r1");
    acc = build(ccfg, true, "secp384r1 only");
    ok = run(acc, con, &c);
    tls_info(c.con, info, sizeof(info));
    TAP_CHECK(ok && strstr(info, "/ECDH=secp384r1") != NULL, "ecdhcurve is used: %s", info);
    conn_close(&c);
    tls_ctx_free(acc);
    tls_ctx_free(con);

    set(ccfg, "client_tls_ecdhcurve", "auto");
    set(ccfg, "client_tls_ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256");
    set(scfg, "server_tls_ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384");
    acc = build(ccfg, true, "one cipher");
    con = build(scfg, false, "another cipher");
    ok = run(acc, con, &c);
    TAP_CHECK(!ok, "no shared TLS 1.2 cipher fails");
    conn_close(&c);
    tls_ctx_free(acc);
    tls_ctx_free(con);
    config_free(ccfg);
    config_free(scfg);
}

/* DHE needs an RSA key; legacy must give a 1024-bit group, auto a bigger one. */
static void test_dhe(void)
{
    static const struct {
        const char *dh;
        const char *want;
    } cases[] = {{"legacy", "/DH=1024"}, {"auto", "/DH=2048"}};

    for (size_t i = 0; i < 2; i++) {
        struct config *ccfg = client_cfg("require"), *scfg = server_cfg("require");
        struct tls_ctx *acc, *con;
        struct conn c;
        char info[128] = "";
        bool ok = false;

        set(ccfg, "client_tls_key_file", tmp_path("rsa.key"));
        set(ccfg, "client_tls_cert_file", tmp_path("rsa.crt"));
        set(ccfg, "client_tls_protocols", "tlsv1.2");
        set(ccfg, "client_tls_ciphers", "DHE-RSA-AES128-GCM-SHA256");
        set(ccfg, "client_tls_dheparams", cases[i].dh);
        set(scfg, "server_tls_protocols", "tlsv1.2");
        set(scfg, "server_tls_ciphers", "DHE-RSA-AES128-GCM-SHA256");
        acc = build(ccfg, true, cases[i].dh);
        con = build(scfg, false, "DHE client");
        if (acc != NULL && con != NULL && conn_open(&c, tls_ctx_ssl(acc), tls_ctx_ssl(con))) {
            SSL_set_security_level(c.con, 1); /* the connecting end would refuse 1024-bit DH */
            ok = conn_handshake(&c);
            tls_info(c.con, info, sizeof(info)); /* the end that sees the server's DH key */
        } else {
            memset(&c, 0, sizeof(c));
            c.fds[0] = c.fds[1] = -1;
        }
        TAP_CHECK(ok && strstr(info, cases[i].want) != NULL &&
                      strncmp(info, "TLSv1.2/DHE-RSA-AES128-GCM-SHA256", 33) == 0,
                  "dheparams %s: %s", cases[i].dh, ok ? info : c.err);
        conn_close(&c);
        tls_ctx_free(acc);
        tls_ctx_free(con);
        config_free(ccfg);
        config_free(scfg);
    }
}

static void test_alpn_and_sni(void)
{
    struct config *ccfg = client_cfg("require");
    struct tls_ctx *acc = build(ccfg, true, "accepting side");
    SSL_CTX *raw = SSL_CTX_new(TLS_client_method());
    static const unsigned char http[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    static const unsigned char both[] = {8,   'h', 't', 't', 'p', '/', '1', '.', '1', 10,
                                         'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};
    struct conn c;
    bool ok;

    ok = acc && raw && conn_open(&c, tls_ctx_ssl(acc), raw) && conn_handshake(&c);
    TAP_CHECK(ok && !tls_alpn_is_postgresql(c.acc) && !tls_alpn_is_postgresql(c.con),
              "client without ALPN is accepted; nothing negotiated");
    conn_close(&c);

    ok = acc && raw && conn_open(&c, tls_ctx_ssl(acc), raw) &&
         SSL_set_alpn_protos(c.con, http, sizeof(http)) == 0 && conn_handshake(&c);
    TAP_CHECK(!ok && strstr(c.err, "no application protocol") != NULL,
              "client offering only http/1.1 is refused: %s", c.err);
    conn_close(&c);

    ok = acc && raw && conn_open(&c, tls_ctx_ssl(acc), raw) &&
         SSL_set_alpn_protos(c.con, both, sizeof(both)) == 0 && conn_handshake(&c);
    TAP_CHECK(ok && tls_alpn_is_postgresql(c.acc), "postgresql picked from a list");
    conn_close(&c);

    ok = acc && raw && conn_open(&c, tls_ctx_ssl(acc), raw) && tls_set_sni(c.con, "localhost") &&
         conn_handshake(&c);
    TAP_CHECK(ok && SSL_get_servername(c.acc, TLSEXT_NAMETYPE_host_name) != NULL &&
                  strcmp(SSL_get_servername(c.acc, TLSEXT_NAMETYPE_host_name), "localhost") == 0,
              "SNI localhost reaches the accepting side");
    conn_close(&c);

    ok = acc && raw && conn_open(&c, tls_ctx_ssl(acc), raw) && tls_set_sni(c.con, "127.0.0.1") &&
         tls_set_sni(c.con, "/var/run/postgresql") && conn_handshake(&c);
    TAP_CHECK(ok && SSL_get_servername(c.acc, TLSEXT_NAMETYPE_host_name) == NULL,
              "no SNI for an IP literal or a socket path");
    conn_close(&c);

    SSL_CTX_free(raw);
    tls_ctx_free(acc);
    config_free(ccfg);
}

static void test_reload(void)
{
    struct config *ccfg = client_cfg("require"), *scfg = server_cfg("require");
    struct tls_ctx *slot = build(ccfg, true, "initial context");
    struct tls_ctx *con = build(scfg, false, "connecting side");
    struct tls_ctx *before = slot;
    struct conn old, fresh;
    char err[512], cn[64];
    bool ok;

    /* A connection made from the old context, handshake not yet run. */
    ok = slot && con && conn_open(&old, tls_ctx_ssl(slot), tls_ctx_ssl(con));
    TAP_CHECK(ok, "connection from the old context opened");

    set(ccfg, "client_tls_key_file", tmp_path("rotated.key")); /* cert still server.crt */
    TAP_CHECK(!tls_reload(&slot, ccfg, true, err, sizeof(err)) && slot == before &&
                  strstr(err, "does not match") != NULL,
              "reload with a bad key pair keeps the old context: %s", err);
    set(ccfg, "client_tls_cert_file", tmp_path("rotated.crt"));
    TAP_CHECK(tls_reload(&slot, ccfg, true, err, sizeof(err)) && slot != NULL && slot != before &&
                  err[0] == '\0',
              "reload with the rotated certificate swaps the context");

    ok = ok && conn_handshake(&old);
    TAP_CHECK(ok && tls_peer_cn(old.con, cn, sizeof(cn)) && strcmp(cn, "localhost") == 0,
              "the old connection still completes with the old certificate");
    ok = run(slot, con, &fresh);
    TAP_CHECK(ok && tls_peer_cn(fresh.con, cn, sizeof(cn)) &&
                  strcmp(cn, "rotated.example.test") == 0,
              "a new connection gets the rotated certificate");
    conn_close(&old);
    conn_close(&fresh);

    set(ccfg, "client_tls_sslmode", "disable");
    TAP_CHECK(tls_reload(&slot, ccfg, true, err, sizeof(err)) && slot == NULL,
              "reload to disable leaves no context");
    set(scfg, "server_tls_protocols", "bogus");
    TAP_CHECK(!tls_reload(&con, scfg, false, NULL, 0) && con != NULL,
              "server side reload failure without an error buffer keeps the context");
    tls_ctx_free(con);
    config_free(ccfg);
    config_free(scfg);
}

static void test_settings_equal(void)
{
    struct config *a = client_cfg("require"), *b = client_cfg("require");

    TAP_CHECK(tls_settings_equal(a, b, true) && tls_settings_equal(a, b, false),
              "same settings are equal");
    set(b, "client_tls_ciphers", "fast");
    TAP_CHECK(!tls_settings_equal(a, b, true) && tls_settings_equal(a, b, false),
              "client cipher change: client side differs, server side not");
    set(b, "server_tls_sslmode", "verify-full");
    TAP_CHECK(!tls_settings_equal(a, b, false), "server sslmode change: server side differs");
    config_free(a);
    config_free(b);
}

static void test_error_string(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    int fds[2];
    char buf[128];

    /* The peer closes before any TLS byte: SSL_ERROR_SYSCALL or an EOF error. */
    if (ssl != NULL && socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0) {
        int r;

        close(fds[0]);
        SSL_set_fd(ssl, fds[1]);
        ERR_clear_error();
        r = SSL_connect(ssl);
        tls_error_string(ssl, r, buf, sizeof(buf));
        TAP_CHECK(r <= 0 && buf[0] != '\0' && ERR_peek_error() == 0,
                  "closed peer described (%s), queue empty", buf);
        close(fds[1]);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
}

int main(void)
{
    /* As in pgmux itself: a write to a closed peer must be an error, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/pgmux_tls_XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    make_all_certs();

    test_disable();
    test_client_side_errors();
    test_client_side_settings();
    test_server_side_contexts();
    test_basic_handshake();
    test_verify_full();
    test_client_certificates();
    test_protocol_handshakes();
    test_dhe();
    test_alpn_and_sni();
    test_reload();
    test_settings_equal();
    test_error_string();

    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            printf("# could not remove %s\n", tmpdir);
    }
    return tap_done();
}
