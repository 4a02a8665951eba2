/* SPDX-License-Identifier: ISC */
/*
 * tls: builds the two OpenSSL contexts from struct config and answers small
 * questions about a finished handshake. Every build step checks its input
 * and reports "key \"value\": what is wrong" naming the ini key, so an
 * operator can fix a reload without reading OpenSSL's error codes. OpenSSL's
 * per-thread error queue is emptied on every failure path here: a stale
 * entry would make a later SSL_get_error() on an unrelated connection report
 * a failure that did not happen.
 *
 * Choices that follow PostgreSQL's server (be-secure-openssl.c) rather than
 * OpenSSL's defaults: no session cache and no session tickets (nothing to
 * invalidate on reload, no ticket key to rotate), no renegotiation, no
 * compression. Buffers are released while a connection is idle
 * (SSL_MODE_RELEASE_BUFFERS), which keeps an idle TLS client at a few
 * hundred bytes of OpenSSL state instead of ~34 KiB.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

struct tls_ctx {
    SSL_CTX *ssl;
    int sslmode;
    bool client_side; /* true: pgmux accepts TLS from clients */
};

/* ALPN protocol list in wire format: length byte + name (PostgreSQL 17). */
static const unsigned char alpn_postgresql[] = {10,  'p', 'o', 's', 't', 'g',
                                                'r', 'e', 's', 'q', 'l'};

#define PROTO_TLS10  0x1u
#define PROTO_TLS11  0x2u
#define PROTO_TLS12  0x4u
#define PROTO_TLS13  0x8u
#define PROTO_ALL    (PROTO_TLS10 | PROTO_TLS11 | PROTO_TLS12 | PROTO_TLS13)
#define PROTO_SECURE (PROTO_TLS12 | PROTO_TLS13)

/* libusual's cipher presets, so a PgBouncer config means the same here. */
static const struct {
    const char *name;
    const char *ciphers;
} cipher_presets[] = {
    {"default", "HIGH+EECDH:HIGH+EDH:!SSLv3:!SHA384:!SHA256:!DSS:!aNULL"},
    {"secure", "HIGH+EECDH:HIGH+EDH:!SSLv3:!SHA384:!SHA256:!DSS:!aNULL"},
    {"normal", "HIGH+EECDH:HIGH+EDH:HIGH+RSA:+SHA384:+SHA256:+SSLv3:+EDH:+RSA:-3DES:3DES+RSA:"
               "!CAMELLIA:!DSS:!aNULL"},
    {"fast", "HIGH+EECDH:HIGH+EDH:HIGH+RSA:+AES256:+SHA256:+SHA384:+SSLv3:+EDH:+RSA:-3DES:"
             "3DES+RSA:!CAMELLIA:!DSS:!aNULL"},
    {"compat", "HIGH:+3DES:!aNULL"},
    {"legacy", "HIGH:+3DES:!aNULL"},
    {"all", "ALL:!aNULL:!eNULL"},
    {"insecure", "ALL:!aNULL:!eNULL"},
};

/*==================================================================
 * Errors
 *==================================================================*/

/* The oldest queued OpenSSL error (the root cause), then an empty queue. */
static void ssl_reason(char *buf, size_t len)
{
    unsigned long e, first = 0;
    const char *r;

    while ((e = ERR_get_error()) != 0) {
        if (first == 0)
            first = e;
    }
    if (first == 0) {
        snprintf(buf, len, "unknown OpenSSL error");
        return;
    }
    r = ERR_reason_error_string(first);
    if (r != NULL)
        snprintf(buf, len, "%s", r);
    else
        ERR_error_string_n(first, buf, len);
}

static bool set_err(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Always false; also empties the OpenSSL error queue. */
static bool set_err(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && len > 0) {
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    ERR_clear_error();
    return false;
}

/* As set_err, with ": <OpenSSL reason>" appended. */
static bool set_ssl_err(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool set_ssl_err(char *err, size_t len, const char *fmt, ...)
{
    char msg[256], reason[256];
    va_list ap;

    ssl_reason(reason, sizeof(reason));
    if (err != NULL && len > 0) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(err, len, "%s: %s", msg, reason);
    }
    return false;
}

/* A readable file, checked first so the message says "No such file" and not "PEM lib". */
static bool check_file(const char *key, const char *path, char *err, size_t len)
{
    if (access(path, R_OK) != 0)
        return set_err(err, len, "%s \"%s\": %s", key, path, strerror(errno));
    return true;
}

/*==================================================================
 * Settings
 *==================================================================*/

/* Parse a protocols value into PROTO_* bits; false with the offending item in bad. */
static bool parse_protocols(const char *value, unsigned *out, char *bad, size_t badlen)
{
    char item[32];
    const char *p = value;
    unsigned protos = 0;
    bool first = true;

    snprintf(bad, badlen, "%s", value);
    for (;;) {
        const char *start, *end;
        bool negate = false;
        unsigned bits;
        size_t n;

        while (*p == ' ' || *p == '\t')
            p++;
        start = p;
        while (*p != '\0' && *p != ',' && *p != ':')
            p++;
        end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (start < end && *start == '!') {
            negate = true;
            start++;
        }
        n = (size_t)(end - start);
        if (n == 0 || n >= sizeof(item)) {
            snprintf(bad, badlen, "%.*s", (int)(n < 60 ? n : 60), start);
            return false;
        }
        memcpy(item, start, n);
        item[n] = '\0';

        if (strcasecmp(item, "all") == 0 || strcasecmp(item, "legacy") == 0 ||
            strcasecmp(item, "tlsv1") == 0)
            bits = PROTO_ALL;
        else if (strcasecmp(item, "secure") == 0 || strcasecmp(item, "default") == 0)
            bits = PROTO_SECURE;
        else if (strcasecmp(item, "tlsv1.0") == 0)
            bits = PROTO_TLS10;
        else if (strcasecmp(item, "tlsv1.1") == 0)
            bits = PROTO_TLS11;
        else if (strcasecmp(item, "tlsv1.2") == 0)
            bits = PROTO_TLS12;
        else if (strcasecmp(item, "tlsv1.3") == 0)
            bits = PROTO_TLS13;
        else {
            snprintf(bad, badlen, "%s", item);
            return false;
        }
        if (negate && first)
            protos = PROTO_ALL;
        if (negate)
            protos &= ~bits;
        else
            protos |= bits;
        first = false;
        if (*p == '\0')
            break;
        p++;
    }
    if (protos == 0) {
        snprintf(bad, badlen, "%s", value);
        return false;
    }
    *out = protos;
    return true;
}

/*
 * OpenSSL takes a version range; a list with a hole (tlsv1.0,tlsv1.2) also
 * gets the SSL_OP_NO_* flag for the missing version.
 */
static bool apply_protocols(SSL_CTX *ctx, const char *key, const char *value, char *err, size_t len)
{
    static const int versions[4] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION};
    static const uint64_t no_flags[4] = {SSL_OP_NO_TLSv1, SSL_OP_NO_TLSv1_1, SSL_OP_NO_TLSv1_2,
                                         SSL_OP_NO_TLSv1_3};
    unsigned protos;
    char bad[64];
    int lo = -1, hi = -1;

    if (!parse_protocols(value, &protos, bad, sizeof(bad)))
        return set_err(err, len,
                       "%s \"%s\": unknown TLS protocol \"%s\" (expected secure, all, "
                       "or a list of tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3)",
                       key, value, bad);
    for (int i = 0; i < 4; i++) {
        if (protos & (1u << i)) {
            if (lo < 0)
                lo = i;
            hi = i;
        }
    }
    if (!SSL_CTX_set_min_proto_version(ctx, versions[lo]) ||
        !SSL_CTX_set_max_proto_version(ctx, versions[hi]))
        return set_ssl_err(err, len, "%s \"%s\"", key, value);
    for (int i = lo + 1; i < hi; i++) {
        if (!(protos & (1u << i)))
            SSL_CTX_set_options(ctx, no_flags[i]);
    }
    return true;
}

static const char *cipher_string(const char *value)
{
    if (value[0] == '\0')
        return cipher_presets[0].ciphers;
    for (size_t i = 0; i < sizeof(cipher_presets) / sizeof(cipher_presets[0]); i++) {
        if (strcasecmp(value, cipher_presets[i].name) == 0)
            return cipher_presets[i].ciphers;
    }
    return value;
}

static bool apply_ciphers(SSL_CTX *ctx, const char *key, const char *value, bool no_ecdhe,
                          char *err, size_t len)
{
    const char *list = cipher_string(value);
    char buf[1024];

    /* ecdhcurve=none: PgBouncer's way of saying "no ECDHE suites" (TLS <= 1.2). */
    if (no_ecdhe) {
        snprintf(buf, sizeof(buf), "%s:!kECDHE", list);
        list = buf;
    }
    if (!SSL_CTX_set_cipher_list(ctx, list))
        return set_ssl_err(err, len, "%s \"%s\"", key, value);
    return true;
}

static bool apply_tls13_ciphers(SSL_CTX *ctx, const char *key, const char *value, char *err,
                                size_t len)
{
    if (value[0] == '\0')
        return true;
    if (!SSL_CTX_set_ciphersuites(ctx, value))
        return set_ssl_err(err, len, "%s \"%s\"", key, value);
    return true;
}

/* Group list with ',' or ':' separators (OpenSSL wants ':'). */
static bool apply_ecdhcurve(SSL_CTX *ctx, const char *value, char *err, size_t len)
{
    char buf[256];

    if (value[0] == '\0' || strcasecmp(value, "auto") == 0 || strcasecmp(value, "none") == 0)
        return true;
    if (strlen(value) >= sizeof(buf))
        return set_err(err, len, "client_tls_ecdhcurve: value too long");
    for (size_t i = 0;; i++) {
        buf[i] = value[i] == ',' ? ':' : value[i];
        if (value[i] == '\0')
            break;
    }
    if (!SSL_CTX_set1_groups_list(ctx, buf))
        return set_ssl_err(err, len, "client_tls_ecdhcurve \"%s\": unknown group", value);
    return true;
}

/* The 1024-bit MODP group of RFC 2409 with generator 2, as an EVP_PKEY. */
static EVP_PKEY *legacy_dh_params(void)
{
    BIGNUM *p = BN_get_rfc2409_prime_1024(NULL), *g = BN_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (p == NULL || g == NULL || bld == NULL || !BN_set_word(g, 2))
        goto done;
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_FFC_P, p) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_FFC_G, g))
        goto done;
    params = OSSL_PARAM_BLD_to_param(bld);
    pctx = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
    if (params == NULL || pctx == NULL || EVP_PKEY_fromdata_init(pctx) <= 0 ||
        EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_KEY_PARAMETERS, params) <= 0)
        pkey = NULL;
done:
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(p);
    BN_free(g);
    return pkey;
}

static bool apply_dheparams(SSL_CTX *ctx, const char *value, char *err, size_t len)
{
    EVP_PKEY *dh;

    if (strcasecmp(value, "none") == 0)
        return true;
    if (value[0] == '\0' || strcasecmp(value, "auto") == 0) {
        SSL_CTX_set_dh_auto(ctx, 1);
        return true;
    }
    if (strcasecmp(value, "legacy") != 0)
        return set_err(err, len, "client_tls_dheparams \"%s\": expected auto, none or legacy",
                       value);
    /* OpenSSL's default security level (2) refuses 1024-bit DH; legacy asks for it. */
    if (SSL_CTX_get_security_level(ctx) > 1)
        SSL_CTX_set_security_level(ctx, 1);
    dh = legacy_dh_params();
    if (dh == NULL)
        return set_ssl_err(err, len, "client_tls_dheparams \"legacy\"");
    if (!SSL_CTX_set0_tmp_dh_pkey(ctx, dh)) {
        EVP_PKEY_free(dh);
        return set_ssl_err(err, len, "client_tls_dheparams \"legacy\"");
    }
    return true;
}

/* Never prompt on the terminal for a passphrase: that would block the loop. */
static int refuse_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

/* Whether a PEM key file is passphrase-protected, to explain the failure. */
static bool key_file_encrypted(const char *path)
{
    char buf[4096];
    size_t n;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, "ENCRYPTED") != NULL;
}

/* key+cert into ctx, checked against each other. keyname/certname are the ini keys. */
static bool load_keypair(SSL_CTX *ctx, const char *keyname, const char *key, const char *certname,
                         const char *cert, char *err, size_t len)
{
    EVP_PKEY *pkey;
    BIO *bio;
    int ok;

    if (!check_file(certname, cert, err, len) || !check_file(keyname, key, err, len))
        return false;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        return set_ssl_err(err, len, "%s \"%s\": could not load certificate", certname, cert);
    /* Parsed apart from the pairing, so "bad file" and "wrong key" get different messages. */
    bio = BIO_new_file(key, "r");
    pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, refuse_passphrase, NULL) : NULL;
    BIO_free(bio);
    if (pkey == NULL) {
        if (key_file_encrypted(key))
            return set_err(err, len,
                           "%s \"%s\": the private key is encrypted; pgmux cannot ask "
                           "for a passphrase, store it decrypted",
                           keyname, key);
        return set_ssl_err(err, len, "%s \"%s\": could not load private key", keyname, key);
    }
    ok = SSL_CTX_use_PrivateKey(ctx, pkey) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(pkey);
    if (!ok)
        return set_ssl_err(err, len, "%s \"%s\" does not match %s \"%s\"", keyname, key, certname,
                           cert);
    return true;
}

/* Settings shared by both roles. */
static SSL_CTX *ctx_new(bool accept_side, const char *side, const char *protocols,
                        const char *ciphers, const char *tls13, bool no_ecdhe, char *err,
                        size_t len)
{
    char key[64];
    SSL_CTX *ctx;

    ERR_clear_error();
    ctx = SSL_CTX_new(accept_side ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL) {
        set_ssl_err(err, len, "could not create a TLS context");
        return NULL;
    }
    SSL_CTX_set_default_passwd_cb(ctx, refuse_passphrase);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /*
     * The socket layer retries SSL_write from a buffer that may have moved
     * (the iobuf is borrowed) and forwards what was written in pieces.
     */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);

    snprintf(key, sizeof(key), "%s_tls_protocols", side);
    if (!apply_protocols(ctx, key, protocols, err, len))
        goto failed;
    snprintf(key, sizeof(key), "%s_tls_ciphers", side);
    if (!apply_ciphers(ctx, key, ciphers, no_ecdhe, err, len))
        goto failed;
    snprintf(key, sizeof(key), "%s_tls13_ciphers", side);
    if (!apply_tls13_ciphers(ctx, key, tls13, err, len))
        goto failed;
    return ctx;

failed:
    SSL_CTX_free(ctx);
    return NULL;
}

/*
 * PostgreSQL 17: if the client offers ALPN it must include "postgresql",
 * else the handshake fails with no_application_protocol. A client that
 * offers no ALPN (older libpq after SSLRequest) never reaches this callback.
 */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel;

    if (SSL_select_next_proto(&sel, outlen, alpn_postgresql, sizeof(alpn_postgresql), in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static struct tls_ctx *wrap(SSL_CTX *ssl, int sslmode, bool client_side, char *err, size_t len)
{
    struct tls_ctx *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL) {
        SSL_CTX_free(ssl);
        set_err(err, len, "out of memory");
        return NULL;
    }
    ctx->ssl = ssl;
    ctx->sslmode = sslmode;
    ctx->client_side = client_side;
    return ctx;
}

/*==================================================================
 * Public: contexts
 *==================================================================*/

struct tls_ctx *tls_client_side_new(const struct config *cfg, char *err, size_t len)
{
    const char *mode = config_sslmode_name(cfg->client_tls_sslmode);
    bool no_ecdhe = strcasecmp(cfg->client_tls_ecdhcurve, "none") == 0;
    SSL_CTX *ssl;

    if (err != NULL && len > 0)
        err[0] = '\0';
    if (cfg->client_tls_sslmode == SSLMODE_DISABLE)
        return NULL;
    if (cfg->client_tls_sslmode < SSLMODE_DISABLE ||
        cfg->client_tls_sslmode > SSLMODE_VERIFY_FULL) {
        set_err(err, len, "client_tls_sslmode: invalid value %d", cfg->client_tls_sslmode);
        return NULL;
    }
    if (cfg->client_tls_key_file[0] == '\0' || cfg->client_tls_cert_file[0] == '\0') {
        set_err(err, len,
                "client_tls_sslmode=%s needs client_tls_key_file and "
                "client_tls_cert_file",
                mode);
        return NULL;
    }
    if (cfg->client_tls_sslmode >= SSLMODE_VERIFY_CA && cfg->client_tls_ca_file[0] == '\0') {
        set_err(err, len, "client_tls_sslmode=%s needs client_tls_ca_file", mode);
        return NULL;
    }

    ssl = ctx_new(true, "client", cfg->client_tls_protocols, cfg->client_tls_ciphers,
                  cfg->client_tls13_ciphers, no_ecdhe, err, len);
    if (ssl == NULL)
        return NULL;
    SSL_CTX_set_options(ssl, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ssl, 0);
    SSL_CTX_set_alpn_select_cb(ssl, alpn_select, NULL);

    if (!load_keypair(ssl, "client_tls_key_file", cfg->client_tls_key_file, "client_tls_cert_file",
                      cfg->client_tls_cert_file, err, len))
        goto failed;
    if (!apply_ecdhcurve(ssl, cfg->client_tls_ecdhcurve, err, len) ||
        !apply_dheparams(ssl, cfg->client_tls_dheparams, err, len))
        goto failed;

    if (cfg->client_tls_ca_file[0] != '\0') {
        const char *ca = cfg->client_tls_ca_file;
        struct stack_st_X509_NAME *names; /* STACK_OF(X509_NAME), spelled out for clang-format */
        int mode_flags = SSL_VERIFY_PEER;

        if (!check_file("client_tls_ca_file", ca, err, len))
            goto failed;
        if (SSL_CTX_load_verify_locations(ssl, ca, NULL) != 1) {
            set_ssl_err(err, len, "client_tls_ca_file \"%s\": could not load CA certificates", ca);
            goto failed;
        }
        /* The CA names sent in CertificateRequest, so clients pick the right certificate. */
        names = SSL_load_client_CA_file(ca);
        if (names == NULL) {
            set_ssl_err(err, len, "client_tls_ca_file \"%s\": no CA certificate found", ca);
            goto failed;
        }
        SSL_CTX_set_client_CA_list(ssl, names);
        if (cfg->client_tls_sslmode >= SSLMODE_VERIFY_CA)
            mode_flags |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ssl, mode_flags, NULL);
    } else {
        SSL_CTX_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    }
    ERR_clear_error();
    return wrap(ssl, cfg->client_tls_sslmode, true, err, len);

failed:
    SSL_CTX_free(ssl);
    return NULL;
}

struct tls_ctx *tls_server_side_new(const struct config *cfg, char *err, size_t len)
{
    const char *key = cfg->server_tls_key_file, *cert = cfg->server_tls_cert_file;
    SSL_CTX *ssl;

    if (err != NULL && len > 0)
        err[0] = '\0';
    if (cfg->server_tls_sslmode == SSLMODE_DISABLE)
        return NULL;
    if (cfg->server_tls_sslmode < SSLMODE_DISABLE ||
        cfg->server_tls_sslmode > SSLMODE_VERIFY_FULL) {
        set_err(err, len, "server_tls_sslmode: invalid value %d", cfg->server_tls_sslmode);
        return NULL;
    }
    if ((key[0] == '\0') != (cert[0] == '\0')) {
        set_err(err, len, "server_tls_key_file and server_tls_cert_file must be set together");
        return NULL;
    }

    ssl = ctx_new(false, "server", cfg->server_tls_protocols, cfg->server_tls_ciphers,
                  cfg->server_tls13_ciphers, false, err, len);
    if (ssl == NULL)
        return NULL;
    /* SSL_CTX_set_alpn_protos returns 0 on success, unlike the rest of OpenSSL. */
    if (SSL_CTX_set_alpn_protos(ssl, alpn_postgresql, sizeof(alpn_postgresql)) != 0) {
        set_ssl_err(err, len, "could not set ALPN");
        goto failed;
    }
    if (key[0] != '\0' &&
        !load_keypair(ssl, "server_tls_key_file", key, "server_tls_cert_file", cert, err, len))
        goto failed;

    if (cfg->server_tls_sslmode >= SSLMODE_VERIFY_CA) {
        const char *ca = cfg->server_tls_ca_file;

        if (ca[0] != '\0') {
            if (!check_file("server_tls_ca_file", ca, err, len))
                goto failed;
            if (SSL_CTX_load_verify_locations(ssl, ca, NULL) != 1) {
                set_ssl_err(err, len, "server_tls_ca_file \"%s\": could not load CA certificates",
                            ca);
                goto failed;
            }
        } else if (SSL_CTX_set_default_verify_paths(ssl) != 1) {
            set_ssl_err(err, len,
                        "server_tls_sslmode=%s: could not load the system's trusted "
                        "CA certificates",
                        config_sslmode_name(cfg->server_tls_sslmode));
            goto failed;
        }
        SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    } else {
        /* allow/prefer/require: encryption without authentication, as libpq. */
        SSL_CTX_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    }
    ERR_clear_error();
    return wrap(ssl, cfg->server_tls_sslmode, false, err, len);

failed:
    SSL_CTX_free(ssl);
    return NULL;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

SSL_CTX *tls_ctx_ssl(struct tls_ctx *ctx)
{
    return ctx ? ctx->ssl : NULL;
}

int tls_ctx_sslmode(const struct tls_ctx *ctx)
{
    return ctx ? ctx->sslmode : SSLMODE_DISABLE;
}

bool tls_reload(struct tls_ctx **slot, const struct config *cfg, bool client_side, char *err,
                size_t len)
{
    char buf[512];
    struct tls_ctx *fresh;

    fresh = client_side ? tls_client_side_new(cfg, buf, sizeof(buf))
                        : tls_server_side_new(cfg, buf, sizeof(buf));
    if (fresh == NULL && buf[0] != '\0') {
        if (err != NULL && len > 0)
            snprintf(err, len, "%s", buf);
        return false;
    }
    tls_ctx_free(*slot);
    *slot = fresh;
    if (err != NULL && len > 0)
        err[0] = '\0';
    return true;
}

static bool str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

bool tls_settings_equal(const struct config *a, const struct config *b, bool client_side)
{
    if (client_side)
        return a->client_tls_sslmode == b->client_tls_sslmode &&
               str_eq(a->client_tls_key_file, b->client_tls_key_file) &&
               str_eq(a->client_tls_cert_file, b->client_tls_cert_file) &&
               str_eq(a->client_tls_ca_file, b->client_tls_ca_file) &&
               str_eq(a->client_tls_protocols, b->client_tls_protocols) &&
               str_eq(a->client_tls_ciphers, b->client_tls_ciphers) &&
               str_eq(a->client_tls13_ciphers, b->client_tls13_ciphers) &&
               str_eq(a->client_tls_ecdhcurve, b->client_tls_ecdhcurve) &&
               str_eq(a->client_tls_dheparams, b->client_tls_dheparams);
    return a->server_tls_sslmode == b->server_tls_sslmode &&
           str_eq(a->server_tls_ca_file, b->server_tls_ca_file) &&
           str_eq(a->server_tls_key_file, b->server_tls_key_file) &&
           str_eq(a->server_tls_cert_file, b->server_tls_cert_file) &&
           str_eq(a->server_tls_protocols, b->server_tls_protocols) &&
           str_eq(a->server_tls_ciphers, b->server_tls_ciphers) &&
           str_eq(a->server_tls13_ciphers, b->server_tls13_ciphers);
}

/*==================================================================
 * Public: per-connection helpers
 *==================================================================*/

/* The name libpq would quote: the first DNS/IP subjectAltName, else the CN; and how many more. */
static void cert_first_name(X509 *cert, char *buf, size_t len, int *others)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int count = 0;

    buf[0] = '\0';
    *others = 0;
    if (sans != NULL) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
            const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);

            if (gn->type == GEN_DNS) {
                if (count++ == 0)
                    snprintf(buf, len, "%.*s", ASN1_STRING_length(gn->d.dNSName),
                             (const char *)ASN1_STRING_get0_data(gn->d.dNSName));
            } else if (gn->type == GEN_IPADD) {
                int alen = ASN1_STRING_length(gn->d.iPAddress);
                char ip[INET6_ADDRSTRLEN];

                if (count++ == 0 && (alen == 4 || alen == 16) &&
                    inet_ntop(alen == 4 ? AF_INET : AF_INET6,
                              ASN1_STRING_get0_data(gn->d.iPAddress), ip, sizeof(ip)) != NULL)
                    snprintf(buf, len, "%s", ip);
            }
        }
        GENERAL_NAMES_free(sans);
    }
    if (count > 0) {
        *others = count - 1;
        return;
    }
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, (int)len) < 0)
        buf[0] = '\0';
}

bool tls_verify_host(SSL *ssl, const char *host, char *err, size_t len)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    unsigned char ip[16];
    char name[256];
    long vr;
    int others, ok;

    if (host == NULL || host[0] == '\0')
        return set_err(err, len, "no host name to verify the server certificate against");
    if (cert == NULL)
        return set_err(err, len, "server did not present a certificate");
    vr = SSL_get_verify_result(ssl);
    if (vr != X509_V_OK)
        return set_err(err, len, "certificate verify failed: %s",
                       X509_verify_cert_error_string(vr));

    if (inet_pton(AF_INET, host, ip) == 1)
        ok = X509_check_ip(cert, ip, 4, 0);
    else if (inet_pton(AF_INET6, host, ip) == 1)
        ok = X509_check_ip(cert, ip, 16, 0);
    else
        ok = X509_check_host(cert, host, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL);
    if (ok == 1) {
        ERR_clear_error();
        return true;
    }

    cert_first_name(cert, name, sizeof(name), &others);
    if (others > 0)
        return set_err(err, len,
                       "server certificate for \"%s\" (and %d other name%s) does not "
                       "match host name \"%s\"",
                       name, others, others == 1 ? "" : "s", host);
    if (name[0] == '\0')
        return set_err(err, len, "could not get server's host name from server certificate");
    return set_err(err, len, "server certificate for \"%s\" does not match host name \"%s\"", name,
                   host);
}

bool tls_set_sni(SSL *ssl, const char *host)
{
    unsigned char ip[16];

    /* RFC 6066: literal IP addresses are not permitted in server_name. */
    if (host == NULL || host[0] == '\0' || host[0] == '/' || inet_pton(AF_INET, host, ip) == 1 ||
        inet_pton(AF_INET6, host, ip) == 1)
        return true;
    if (SSL_set_tlsext_host_name(ssl, host) != 1) {
        ERR_clear_error();
        return false;
    }
    return true;
}

bool tls_alpn_is_postgresql(const SSL *ssl)
{
    const unsigned char *p;
    unsigned int n;

    SSL_get0_alpn_selected(ssl, &p, &n);
    return p != NULL && n == sizeof(alpn_postgresql) - 1 && memcmp(p, alpn_postgresql + 1, n) == 0;
}

bool tls_peer_cn(const SSL *ssl, char *buf, size_t len)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    const ASN1_STRING *data;
    X509_NAME_ENTRY *entry;
    X509_NAME *subject;
    int idx, n;

    if (len == 0)
        return false;
    buf[0] = '\0';
    if (cert == NULL || (subject = X509_get_subject_name(cert)) == NULL)
        return false;
    idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (idx < 0 || (entry = X509_NAME_get_entry(subject, idx)) == NULL ||
        (data = X509_NAME_ENTRY_get_data(entry)) == NULL)
        return false;
    n = ASN1_STRING_length(data);
    if (n <= 0 || (size_t)n >= len || memchr(ASN1_STRING_get0_data(data), '\0', (size_t)n) != NULL)
        return false;
    memcpy(buf, ASN1_STRING_get0_data(data), (size_t)n);
    buf[n] = '\0';
    return true;
}

void tls_info(SSL *ssl, char *buf, size_t len)
{
    const SSL_CIPHER *c;
    char kx[48] = "";
    EVP_PKEY *pk = NULL;
    int nid;

    if (len == 0)
        return;
    buf[0] = '\0';
    if (ssl == NULL || (c = SSL_get_current_cipher(ssl)) == NULL)
        return;
    nid = (int)SSL_get_negotiated_group(ssl);
    if (nid != NID_undef) {
        const char *sn = OBJ_nid2sn(nid);

        if (sn != NULL)
            snprintf(kx, sizeof(kx), "/%s=%s", strncmp(sn, "ffdhe", 5) == 0 ? "DH" : "ECDH", sn);
    } else if ((SSL_get_peer_tmp_key(ssl, &pk) || SSL_get_tmp_key(ssl, &pk)) && pk != NULL) {
        /* TLS 1.2 DHE with explicit parameters has no named group: show its size. */
        if (EVP_PKEY_is_a(pk, "DH"))
            snprintf(kx, sizeof(kx), "/DH=%d", EVP_PKEY_get_bits(pk));
        EVP_PKEY_free(pk);
    }
    ERR_clear_error();
    snprintf(buf, len, "%s/%s%s", SSL_get_version(ssl), SSL_CIPHER_get_name(c), kx);
}

void tls_error_string(const SSL *ssl, int ret, char *buf, size_t len)
{
    int saved_errno = errno; /* before any call that could change it */
    int e = SSL_get_error(ssl, ret);
    long vr = SSL_get_verify_result(ssl);

    if (len == 0) {
        ERR_clear_error();
        return;
    }
    /* OpenSSL records a chain check even when it was not asked to enforce
     * it (sslmode require): blame the certificate only when it was. */
    if (e == SSL_ERROR_SSL && vr != X509_V_OK && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER)) {
        snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
        ERR_clear_error();
        return;
    }
    switch (e) {
    case SSL_ERROR_SSL:
        ssl_reason(buf, len);
        return;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() != 0)
            ssl_reason(buf, len);
        else if (saved_errno != 0)
            snprintf(buf, len, "%s", strerror(saved_errno));
        else
            snprintf(buf, len, "unexpected EOF during TLS");
        return;
    case SSL_ERROR_ZERO_RETURN:
        snprintf(buf, len, "TLS connection closed by peer");
        break;
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        snprintf(buf, len, "TLS operation would block");
        break;
    default:
        snprintf(buf, len, "TLS error %d", e);
        break;
    }
    ERR_clear_error();
}
