/* SPDX-License-Identifier: ISC */
/*
 * scram: SCRAM-SHA-256 (RFC 5802 / RFC 7677) on both sides, as pure functions
 * over caller-owned state structs with fixed buffers: no I/O, no logging, no
 * allocation per exchange. OpenSSL provides HMAC, SHA-256, PBKDF2 and nonces.
 * Derived keys of plain-text passwords are cached so a reconnecting client does
 * not cost PBKDF2 rounds every time.
 */
#ifndef PGMUX_SCRAM_H
#define PGMUX_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_LEN 32
#define SCRAM_MAX_SALT 64
#define SCRAM_MAX_MSG 1024       /* longest SCRAM message we build or keep */
#define SCRAM_MAX_ITERATIONS 1000000 /* a server asking for more is refused */

/* A stored secret "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>". */
struct scram_secret {
    int iterations;
    uint8_t salt[SCRAM_MAX_SALT];
    size_t salt_len;
    uint8_t stored_key[SCRAM_KEY_LEN];
    uint8_t server_key[SCRAM_KEY_LEN];
};

/* Keys kept after a client proved itself, for pass-through (TLS/auth issue). */
struct scram_keys {
    uint8_t client_key[SCRAM_KEY_LEN];
    uint8_t server_key[SCRAM_KEY_LEN];
};

bool scram_parse_secret(const char *text, struct scram_secret *out);

/*
 * The secret pgmux uses to check a client whose auth_file entry is a plain
 * password. Cached per (user, password): the salt is made once at random and
 * PBKDF2 runs only on the first call. Returns NULL only on OpenSSL failure
 * or iterations < 1. The pointer is valid until
 * the next call (the entry may be reused); scram_server_first keeps a copy.
 */
const struct scram_secret *scram_secret_for_plain(const char *user, const char *password,
                                                  int iterations);

/*
 * Does a cleartext password (auth_type = plain) match a SCRAM secret? Runs
 * PBKDF2 with the secret's salt and iteration count, as PostgreSQL does for
 * a password login against a SCRAM verifier. On a match, keys (if not NULL)
 * gets what a SCRAM proof would have given, for pass-through.
 */
bool scram_verify_plain(const struct scram_secret *sec, const char *password,
                        struct scram_keys *keys);

/*
 * A secret for a user that does not exist ("mock auth"): the exchange runs and
 * fails with "password mismatch" like a wrong password. The salt is stable per
 * user name for the life of the process, so probing does not reveal existence.
 */
bool scram_mock_secret(const char *user, int iterations, struct scram_secret *out);

/* Forget (and wipe) every cached plain-password secret and server-login key. */
void scram_cache_reset(void);

/* pgmux as the server: checks a client. Fixed-size state, zero it before first use. */
struct scram_server {
    char client_first_bare[SCRAM_MAX_MSG];
    char server_first[SCRAM_MAX_MSG];
    char nonce[128]; /* client nonce + server nonce */
    int step;
    char cbind_flag;            /* gs2 flag of client-first, 'n' or 'y': decides c= */
    struct scram_secret secret; /* copy taken by scram_server_first, wiped at the end */
};

/*
 * Handle the SASLInitialResponse data (client-first-message). Writes the
 * server-first-message to out. False with *errmsg (a static string for the
 * log, never containing secrets) on malformed input, channel binding
 * requested ('p='), empty nonce, etc.
 */
bool scram_server_first(struct scram_server *st, const struct scram_secret *sec,
                        const uint8_t *msg, size_t len, char *out, size_t cap, size_t *outlen,
                        const char **errmsg);

/*
 * Handle the SASLResponse data (client-final-message): check channel binding
 * "biws"/"eSws", nonce, proof. On success writes server-final "v=..." to out and,
 * if keys is not NULL, the ClientKey/ServerKey for pass-through. False on a bad
 * proof (*errmsg = "password mismatch") or malformed input. sec may be NULL:
 * the proof is checked against the copy of the secret taken by
 * scram_server_first (sec is used instead only if it has the same salt and
 * iterations, i.e. it is what the client was challenged with).
 */
bool scram_server_final(struct scram_server *st, const struct scram_secret *sec,
                        const uint8_t *msg, size_t len, char *out, size_t cap, size_t *outlen,
                        struct scram_keys *keys, const char **errmsg);

/* pgmux as the client: logs in to PostgreSQL. Zero it before first use. */
struct scram_client {
    char nonce[64];
    char client_first_bare[SCRAM_MAX_MSG];
    char server_first[SCRAM_MAX_MSG];
    uint8_t server_key[SCRAM_KEY_LEN];
    char auth_message_tail[SCRAM_MAX_MSG]; /* client-final-without-proof */
    int step;
};

/* client-first-message "n,,n=,r=<nonce>" into out. */
bool scram_client_first(struct scram_client *st, char *out, size_t cap, size_t *outlen);

/*
 * Given the server-first-message, build client-final-message. Uses password
 * (plain text; PBKDF2 result cached per password+salt+iterations) or, when
 * password is NULL, keys (pass-through). Checks the server nonce extends ours
 * and iterations are in 1..SCRAM_MAX_ITERATIONS.
 */
bool scram_client_final(struct scram_client *st, const char *password,
                        const struct scram_keys *keys, const uint8_t *server_first, size_t len,
                        char *out, size_t cap, size_t *outlen, const char **errmsg);

/* Check the server-final-message signature. */
bool scram_client_verify(struct scram_client *st, const uint8_t *server_final, size_t len,
                         const char **errmsg);

/* Base64 helpers (standard alphabet, padded). decode returns -1 on bad input. */
size_t scram_b64_encode(const uint8_t *src, size_t len, char *dst, size_t cap);
long scram_b64_decode(const char *src, size_t len, uint8_t *dst, size_t cap);

#endif
