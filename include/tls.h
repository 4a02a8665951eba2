/* SPDX-License-Identifier: ISC */
/*
 * tls: OpenSSL contexts built from the config, for both roles. The
 * "client side" context is pgmux acting as the TLS server towards clients
 * (client_tls_* keys); the "server side" context is pgmux acting as a TLS
 * client towards PostgreSQL (server_tls_* keys). A context is immutable once
 * built: a reload builds a new one and swaps it in only if every file loaded,
 * so a bad certificate keeps the old context. Live connections are not
 * affected by a swap: each SSL object holds its own reference to the SSL_CTX
 * it was made from. Also per-connection helpers (host name check, peer CN,
 * ALPN, SHOW CLIENTS text, error text). No I/O and no logging: the handshake
 * loop lives in the socket layer and errors go to the caller's buffer.
 *
 * Accepted values (PgBouncer's, case-insensitive):
 *   *_tls_protocols: list of tlsv1.0 tlsv1.1 tlsv1.2 tlsv1.3, "tlsv1" (all
 *     1.x), "secure"/"default" (1.2 + 1.3), "all"/"legacy"; separated by ','
 *     or ':'; "!name" removes (a list starting with "!" starts from all).
 *   *_tls_ciphers (TLS <= 1.2): "default"/"secure", "normal", "fast",
 *     "compat"/"legacy", "all"/"insecure" (libusual's presets), or an OpenSSL
 *     cipher string. *_tls13_ciphers: "" = OpenSSL's default, or a
 *     TLSv1.3 ciphersuite list.
 *   client_tls_ecdhcurve: "auto" (OpenSSL's groups), "none" (no ECDHE in
 *     TLS <= 1.2; TLS 1.3 always needs a group), or a group list
 *     ("prime256v1", "X25519:P-384").
 *   client_tls_dheparams: "auto" (OpenSSL picks by key size), "none" (no
 *     DHE), "legacy" (1024-bit RFC 2409 group for old Java clients; lowers
 *     the context's security level to 1, which 1024-bit DH needs).
 *
 * Roles of the files: client side needs key+cert unless sslmode=disable;
 * client_tls_ca_file is required for verify-ca/verify-full (a client
 * certificate is then mandatory) and, when set with a lower mode, makes a
 * client certificate optional but verified if sent (PostgreSQL's ssl_ca_file
 * behaviour). Server side: server_tls_ca_file for verify-ca/verify-full
 * (empty = the system's default trust store), optional key+cert sent to
 * PostgreSQL. Encrypted private keys are refused (no passphrase prompt: it
 * would block the loop). Both sides offer/accept ALPN "postgresql"
 * (PostgreSQL 17 direct TLS); a client offering ALPN without it is refused
 * during the handshake, as PostgreSQL 17 does.
 */
#ifndef PGMUX_TLS_H
#define PGMUX_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "config.h"

/* Same definition as pgmux.h, which this pure module does not include. */
#ifndef MUSTCHECK
#define MUSTCHECK __attribute__((warn_unused_result))
#endif

struct tls_ctx;

/*
 * pgmux as the TLS server towards clients. NULL with err[0] == '\0' when
 * client_tls_sslmode is disable (TLS off, not an error); NULL with a message
 * naming the key and the file when anything is wrong.
 */
MUSTCHECK struct tls_ctx *tls_client_side_new(const struct config *cfg, char *err, size_t len);

/* pgmux as a TLS client towards PostgreSQL. Same NULL convention (server_tls_sslmode). */
MUSTCHECK struct tls_ctx *tls_server_side_new(const struct config *cfg, char *err, size_t len);

/* Drops the context's reference; SSL objects made from it stay valid. NULL is fine. */
void tls_ctx_free(struct tls_ctx *ctx);

/* The OpenSSL context, for SSL_new(). */
SSL_CTX *tls_ctx_ssl(struct tls_ctx *ctx);

/* The sslmode the context was built for (enum sslmode). */
int tls_ctx_sslmode(const struct tls_ctx *ctx);

/*
 * Reload: build a new context for one side from cfg. On success the old
 * *slot is freed and replaced (by NULL when the mode is now disable) and
 * true is returned; on failure *slot is untouched and err says why.
 */
MUSTCHECK bool tls_reload(struct tls_ctx **slot, const struct config *cfg, bool client_side,
                          char *err, size_t len);

/*
 * Whether one side's TLS settings (mode, files, protocols, ciphers, curves)
 * are the same in a and b. Servers need recycling after a reload only when
 * the server side changed (PgBouncer >= 1.24); file contents are not compared.
 */
bool tls_settings_equal(const struct config *a, const struct config *b, bool client_side);

/*
 * verify-full towards PostgreSQL: after the handshake, check that the
 * server's certificate names host (DNS name with a leftmost "*." wildcard,
 * or an IP literal against the iPAddress entries) and that the chain was
 * verified. False with libpq's wording ("server certificate for "a" does
 * not match host name "b"") otherwise.
 */
MUSTCHECK bool tls_verify_host(SSL *ssl, const char *host, char *err, size_t len);

/* Set SNI before connecting, as libpq does; IP literals and NULL are skipped. */
MUSTCHECK bool tls_set_sni(SSL *ssl, const char *host);

/* Whether ALPN "postgresql" was negotiated (direct TLS requires it). */
bool tls_alpn_is_postgresql(const SSL *ssl);

/*
 * The peer certificate's CN (cert auth, ident maps). False when there is no
 * certificate, no CN, a CN with a NUL byte, or one that does not fit:
 * truncating could turn one name into another.
 */
MUSTCHECK bool tls_peer_cn(const SSL *ssl, char *buf, size_t len);

/*
 * The tls column of SHOW CLIENTS / SHOW SERVERS, in PgBouncer's form:
 * "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519": protocol, cipher, key
 * exchange group when known ("/DH=2048" for TLS 1.2 DHE seen from the
 * connecting end; the accepting end of a DHE exchange shows no group).
 * "" for NULL.
 */
void tls_info(SSL *ssl, char *buf, size_t len);

/*
 * Describe a failed SSL_do_handshake/SSL_read/SSL_write (ret is its return
 * value): the certificate verification result when that is what failed,
 * else OpenSSL's reason, else errno or "unexpected EOF". Empties OpenSSL's
 * error queue, which must be empty before the next SSL call on any
 * connection (the socket layer should also ERR_clear_error() before each).
 */
void tls_error_string(const SSL *ssl, int ret, char *buf, size_t len);

#endif
