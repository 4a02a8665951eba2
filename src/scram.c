/* SPDX-License-Identifier: ISC */
/*
 * scram: SCRAM-SHA-256 (RFC 5802, RFC 7677) for both roles of pgmux. As the
 * server it checks clients against a stored secret; as the client it logs in
 * to PostgreSQL with a plain password or with the keys a client left behind
 * (pass-through). Every message from the other side is pre-authentication,
 * untrusted input: it is parsed from (pointer, length) with explicit bounds,
 * NUL bytes are refused, and attributes must come in the RFC order with
 * nothing extra where the RFC allows nothing. Nothing here allocates per
 * exchange or logs; a failure returns false and a static string that never
 * quotes the secret or the peer's bytes.
 *
 * Two small fixed tables, filled FIFO and wiped with OPENSSL_cleanse on
 * eviction, keep PBKDF2 off the hot path: plain-password secrets for clients
 * (one per user, re-made when the password or iteration count changes) and
 * derived keys for server logins (per password, salt and iteration count).
 * Their lookup keys are HMACs under a per-process random key, so the tables
 * never hold a fast hash of a password. The module keeps process-wide state
 * (those tables, one reusable HMAC context) and so, like the rest of pgmux,
 * expects a single thread.
 */
#include "scram.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#define SCRAM_NONCE_RAW      18   /* random bytes per nonce, as libpq and PostgreSQL use */
#define SCRAM_PLAIN_SALT_LEN 16   /* same salt length as PostgreSQL's own secrets */
#define SCRAM_CACHE_SIZE     1024 /* entries per cache */
#define SCRAM_CACHE_BUCKETS  2048 /* power of two */
#define SCRAM_PREFIX         "SCRAM-SHA-256$"

/* Values of the `step` field of both state structs. Zero is the start. */
enum scram_step {
    SCRAM_STEP_INIT = 0,
    SCRAM_STEP_FIRST, /* server: server-first sent; client: client-first sent */
    SCRAM_STEP_FINAL, /* client: client-final sent, waiting for server-final */
    SCRAM_STEP_DONE,
    SCRAM_STEP_FAILED, /* any error: the state may not be used again */
};

/*
 * Test hooks. They are not in scram.h because nothing but test/unit/scram.c
 * may call them; that file repeats these declarations.
 */
void scram_test_set_nonce(const char *nonce);
void scram_test_set_client_user(const char *user);
unsigned long scram_test_pbkdf2_runs(void);

/*==================================================================
 * Crypto primitives
 *==================================================================*/

/* A piece of a message that is hashed without being copied together first. */
struct span {
    const void *p;
    size_t len;
};

static EVP_MAC *hmac_alg;     /* fetched once */
static EVP_MAC_CTX *hmac_ctx; /* re-keyed for every use */
static unsigned long pbkdf2_runs;
static const char *test_nonce;
static const char *test_client_user;

static uint8_t process_key[SCRAM_KEY_LEN];
static bool process_key_ready;

/* HMAC-SHA-256 of the concatenated parts. */
static bool hmac_sha256(const uint8_t *key, size_t keylen, const struct span *parts, size_t n,
                        uint8_t out[SCRAM_KEY_LEN])
{
    char digest[] = "SHA256";
    OSSL_PARAM params[2];
    size_t outlen = 0;

    /* EVP_MAC_init() with no key would silently reuse the previous one. */
    if (key == NULL || keylen == 0)
        return false;
    if (hmac_ctx == NULL) {
        if (hmac_alg == NULL)
            hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
        if (hmac_alg == NULL)
            return false;
        hmac_ctx = EVP_MAC_CTX_new(hmac_alg);
        if (hmac_ctx == NULL)
            return false;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!EVP_MAC_init(hmac_ctx, key, keylen, params))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].len > 0 && !EVP_MAC_update(hmac_ctx, parts[i].p, parts[i].len))
            return false;
    }
    if (!EVP_MAC_final(hmac_ctx, out, &outlen, SCRAM_KEY_LEN))
        return false;
    return outlen == SCRAM_KEY_LEN;
}

static bool hmac_str(const uint8_t key[SCRAM_KEY_LEN], const char *text, uint8_t out[SCRAM_KEY_LEN])
{
    struct span s = {text, strlen(text)};

    return hmac_sha256(key, SCRAM_KEY_LEN, &s, 1, out);
}

static bool sha256(const uint8_t *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
    unsigned int outlen = 0;

    if (!EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL))
        return false;
    return outlen == SCRAM_KEY_LEN;
}

/* SaltedPassword = Hi(password, salt, i) of RFC 5802, which is PBKDF2-HMAC-SHA-256. */
static bool salted_password(const char *password, const uint8_t *salt, size_t salt_len,
                            int iterations, uint8_t out[SCRAM_KEY_LEN])
{
    size_t pwlen = strlen(password);

    if (pwlen > INT_MAX || salt_len > INT_MAX || iterations < 1)
        return false;
    pbkdf2_runs++;
    return PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, (int)salt_len, iterations, EVP_sha256(),
                             SCRAM_KEY_LEN, out) == 1;
}

/* ClientKey, StoredKey and ServerKey from SaltedPassword; any output may be NULL. */
static bool derive_keys(const uint8_t sp[SCRAM_KEY_LEN], uint8_t client_key[SCRAM_KEY_LEN],
                        uint8_t stored_key[SCRAM_KEY_LEN], uint8_t server_key[SCRAM_KEY_LEN])
{
    uint8_t ck[SCRAM_KEY_LEN];
    bool ok = hmac_str(sp, "Client Key", ck);

    if (ok && stored_key != NULL)
        ok = sha256(ck, sizeof(ck), stored_key);
    if (ok && server_key != NULL)
        ok = hmac_str(sp, "Server Key", server_key);
    if (ok && client_key != NULL)
        memcpy(client_key, ck, sizeof(ck));
    OPENSSL_cleanse(ck, sizeof(ck));
    return ok;
}

bool scram_verify_plain(const struct scram_secret *sec, const char *password,
                        struct scram_keys *keys)
{
    uint8_t sp[SCRAM_KEY_LEN], client[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
    uint8_t server[SCRAM_KEY_LEN];
    bool ok = salted_password(password, sec->salt, sec->salt_len, sec->iterations, sp) &&
              derive_keys(sp, client, stored, server) &&
              CRYPTO_memcmp(stored, sec->stored_key, SCRAM_KEY_LEN) == 0 &&
              CRYPTO_memcmp(server, sec->server_key, SCRAM_KEY_LEN) == 0;
    if (ok && keys) {
        memcpy(keys->client_key, client, SCRAM_KEY_LEN);
        memcpy(keys->server_key, server, SCRAM_KEY_LEN);
    }
    OPENSSL_cleanse(sp, sizeof(sp));
    OPENSSL_cleanse(client, sizeof(client));
    OPENSSL_cleanse(stored, sizeof(stored));
    OPENSSL_cleanse(server, sizeof(server));
    return ok;
}

/*
 * The key under which cache lookup keys are made. It never leaves the
 * process, so a memory image of the caches says nothing about passwords that
 * PBKDF2 would not already say.
 */
static bool ensure_process_key(void)
{
    if (!process_key_ready) {
        if (RAND_bytes(process_key, sizeof(process_key)) != 1)
            return false;
        process_key_ready = true;
    }
    return true;
}

/* HMAC under the process key. */
static bool keyed_id(const struct span *parts, size_t n, uint8_t out[SCRAM_KEY_LEN])
{
    if (!ensure_process_key())
        return false;
    return hmac_sha256(process_key, sizeof(process_key), parts, n, out);
}

/* A nonce of printable characters into dst, NUL-terminated. */
static bool make_nonce(char *dst, size_t cap)
{
    uint8_t raw[SCRAM_NONCE_RAW];
    size_t n;

    if (test_nonce != NULL) {
        n = strlen(test_nonce);
        if (n + 1 > cap)
            return false;
        memcpy(dst, test_nonce, n + 1);
        test_nonce = NULL;
        return true;
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return false;
    /* The base64 alphabet is all printable and has no ','; 18 bytes need no '='. */
    return scram_b64_encode(raw, sizeof(raw), dst, cap) > 0;
}

/*==================================================================
 * Caches
 *==================================================================*/

struct cache_entry {
    uint8_t key[SCRAM_KEY_LEN];   /* lookup key: keyed HMAC, never a password */
    uint8_t check[SCRAM_KEY_LEN]; /* plain cache: HMAC of (password, iterations) */
    uint32_t next;                /* next entry in the bucket, index + 1, 0 = end */
    bool used;
    union {
        struct scram_secret secret; /* plain cache */
        struct scram_keys keys;     /* client cache */
    } u;
};

/*
 * A fixed table with chained buckets. Entries are reused in insertion order
 * (a ring), so the oldest one is evicted first. Indices are stored plus one
 * so the zeroed static memory is an empty table.
 */
struct cache {
    struct cache_entry entries[SCRAM_CACHE_SIZE];
    uint32_t buckets[SCRAM_CACHE_BUCKETS];
    size_t victim; /* the oldest entry, reused by the next insert */
};

static struct cache plain_cache;  /* scram_secret_for_plain(): one entry per user */
static struct cache client_cache; /* scram_client_final(): per (password, salt, iterations) */

static uint32_t *cache_bucket(struct cache *c, const uint8_t key[SCRAM_KEY_LEN])
{
    uint32_t h;

    /* The key is an HMAC output: any four bytes of it are a fine hash. */
    memcpy(&h, key, sizeof(h));
    return &c->buckets[h & (SCRAM_CACHE_BUCKETS - 1)];
}

static struct cache_entry *cache_find(struct cache *c, const uint8_t key[SCRAM_KEY_LEN])
{
    uint32_t i = *cache_bucket(c, key);

    while (i != 0) {
        struct cache_entry *e = &c->entries[i - 1];

        if (memcmp(e->key, key, SCRAM_KEY_LEN) == 0)
            return e;
        i = e->next;
    }
    return NULL;
}

/* Take the oldest entry, unlink and wipe it, and file it under key. */
static struct cache_entry *cache_insert(struct cache *c, const uint8_t key[SCRAM_KEY_LEN])
{
    struct cache_entry *e = &c->entries[c->victim];
    uint32_t idx = (uint32_t)c->victim + 1;
    uint32_t *link;

    if (e->used) {
        link = cache_bucket(c, e->key);
        while (*link != idx)
            link = &c->entries[*link - 1].next;
        *link = e->next;
    }
    OPENSSL_cleanse(e, sizeof(*e));
    memcpy(e->key, key, SCRAM_KEY_LEN);
    e->used = true;
    link = cache_bucket(c, key);
    e->next = *link;
    *link = idx;
    c->victim = (c->victim + 1) % SCRAM_CACHE_SIZE;
    return e;
}

static void cache_clear(struct cache *c)
{
    OPENSSL_cleanse(c, sizeof(*c));
}

/*==================================================================
 * Base64
 *==================================================================*/

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/*
 * Encodes len bytes and NUL-terminates. Returns the length without the NUL,
 * or 0 (and an empty dst if cap allows) when dst is too small.
 */
size_t scram_b64_encode(const uint8_t *src, size_t len, char *dst, size_t cap)
{
    size_t need, o = 0, i = 0;

    if (len > (SIZE_MAX / 4 - 1) * 3)
        goto fail;
    need = (len + 2) / 3 * 4;
    if (cap < need + 1)
        goto fail;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];

        dst[o++] = b64_alphabet[v >> 18];
        dst[o++] = b64_alphabet[(v >> 12) & 63];
        dst[o++] = b64_alphabet[(v >> 6) & 63];
        dst[o++] = b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;

        dst[o++] = b64_alphabet[v >> 18];
        dst[o++] = b64_alphabet[(v >> 12) & 63];
        dst[o++] = '=';
        dst[o++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;

        dst[o++] = b64_alphabet[v >> 18];
        dst[o++] = b64_alphabet[(v >> 12) & 63];
        dst[o++] = b64_alphabet[(v >> 6) & 63];
        dst[o++] = '=';
    }
    dst[o] = '\0';
    return o;
fail:
    if (cap > 0)
        dst[0] = '\0';
    return 0;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/*
 * Strict decoding: padded to a multiple of 4, '=' only at the end, no
 * whitespace, and the unused bits of the last group zero, so each byte string
 * has exactly one accepted encoding. Returns the decoded length, -1 on bad
 * input or when it does not fit in cap.
 */
long scram_b64_decode(const char *src, size_t len, uint8_t *dst, size_t cap)
{
    size_t pad = 0, outlen, o = 0;

    if (len % 4 != 0 || len / 4 * 3 > LONG_MAX)
        return -1;
    if (len == 0)
        return 0;
    if (src[len - 1] == '=')
        pad = src[len - 2] == '=' ? 2 : 1;
    outlen = len / 4 * 3 - pad;
    if (outlen > cap)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        size_t nchars = last ? 4 - pad : 4;
        uint32_t v = 0;

        /* Past nchars are the pad characters, '=' by how pad was counted. */
        for (size_t j = 0; j < 4; j++) {
            int d = j < nchars ? b64_value(src[i + j]) : 0;

            if (d < 0)
                return -1;
            v = v << 6 | (uint32_t)d;
        }
        if ((pad == 1 && last && (v & 0xff) != 0) || (pad == 2 && last && (v & 0xffff) != 0))
            return -1;
        dst[o++] = (uint8_t)(v >> 16);
        if (nchars > 2)
            dst[o++] = (uint8_t)(v >> 8);
        if (nchars > 3)
            dst[o++] = (uint8_t)v;
    }
    return (long)o;
}

/*==================================================================
 * Message parsing
 *==================================================================*/

/* A read position in a message that is not NUL-terminated. */
struct cursor {
    const char *p;
    const char *end;
};

/* Messages may carry any byte, but a NUL can only be an attack or a bug. */
static bool message_ok(const uint8_t *msg, size_t len, const char **errmsg)
{
    if (msg == NULL || len == 0) {
        *errmsg = "malformed SCRAM message (empty)";
        return false;
    }
    if (len >= SCRAM_MAX_MSG) {
        *errmsg = "malformed SCRAM message (too long)";
        return false;
    }
    if (memchr(msg, '\0', len) != NULL) {
        *errmsg = "malformed SCRAM message (NUL byte)";
        return false;
    }
    return true;
}

static bool cur_at_end(const struct cursor *c)
{
    return c->p >= c->end;
}

static bool cur_peek_attr(const struct cursor *c, char name)
{
    return c->end - c->p >= 2 && c->p[0] == name && c->p[1] == '=';
}

static bool cur_char(struct cursor *c, char ch)
{
    if (cur_at_end(c) || *c->p != ch)
        return false;
    c->p++;
    return true;
}

/*
 * Reads "<name>=<value>" up to the next ',' or the end, without consuming
 * the ','. The value may be empty; callers decide whether that is allowed.
 */
static bool cur_attr(struct cursor *c, char name, const char **val, size_t *vlen)
{
    const char *comma;

    if (!cur_peek_attr(c, name))
        return false;
    c->p += 2;
    comma = memchr(c->p, ',', (size_t)(c->end - c->p));
    if (comma == NULL)
        comma = c->end;
    *val = c->p;
    *vlen = (size_t)(comma - c->p);
    c->p = comma;
    return true;
}

/* RFC 5802 "printable": %x21-2B / %x2D-7E, i.e. visible ASCII except ','. */
static bool nonce_ok(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
            return false;
    }
    return true;
}

/* RFC 5802 attr-val for extensions: ALPHA "=" 1*value-char. */
static bool cur_extension(struct cursor *c)
{
    const char *val;
    size_t vlen;
    char name;

    if (c->end - c->p < 2)
        return false;
    name = c->p[0];
    if (!((name >= 'a' && name <= 'z') || (name >= 'A' && name <= 'Z')))
        return false;
    return cur_attr(c, name, &val, &vlen) && vlen > 0;
}

/* A decimal iteration count in 1..max, digits only, no sign or spaces. */
static bool parse_iterations(const char *s, size_t len, long max, int *out)
{
    long v = 0;

    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
        if (v > max)
            return false;
    }
    if (v < 1)
        return false;
    *out = (int)v;
    return true;
}

/* Copies len bytes plus a NUL into a fixed buffer. */
static bool copy_str(char *dst, size_t cap, const char *src, size_t len)
{
    if (len + 1 > cap)
        return false;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return true;
}

/* Writes a message to the caller's buffer: the bytes, a NUL if room, and the length. */
static bool emit(const char *msg, size_t len, char *out, size_t cap, size_t *outlen)
{
    if (out == NULL || len + 1 > cap)
        return false;
    memcpy(out, msg, len);
    out[len] = '\0';
    *outlen = len;
    return true;
}

/*==================================================================
 * Stored secrets
 *==================================================================*/

/*
 * Parses "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>", the format
 * PostgreSQL keeps in pg_authid and PgBouncer reads from userlist.txt. The
 * iteration count of a stored secret costs only the client, so any positive
 * int is accepted.
 */
bool scram_parse_secret(const char *text, struct scram_secret *out)
{
    const char *p, *colon, *dollar, *end;
    struct scram_secret sec;
    long n;
    bool ok = false;

    memset(&sec, 0, sizeof(sec));
    if (text == NULL || out == NULL || strncmp(text, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) != 0)
        goto done;
    p = text + strlen(SCRAM_PREFIX);
    end = p + strlen(p);

    colon = memchr(p, ':', (size_t)(end - p));
    if (colon == NULL || !parse_iterations(p, (size_t)(colon - p), INT_MAX, &sec.iterations))
        goto done;
    p = colon + 1;

    dollar = memchr(p, '$', (size_t)(end - p));
    if (dollar == NULL)
        goto done;
    n = scram_b64_decode(p, (size_t)(dollar - p), sec.salt, sizeof(sec.salt));
    if (n < 1)
        goto done;
    sec.salt_len = (size_t)n;
    p = dollar + 1;

    colon = memchr(p, ':', (size_t)(end - p));
    if (colon == NULL)
        goto done;
    if (scram_b64_decode(p, (size_t)(colon - p), sec.stored_key, sizeof(sec.stored_key)) !=
        SCRAM_KEY_LEN)
        goto done;
    p = colon + 1;

    /* The server key runs to the end: anything after it fails the decode. */
    if (scram_b64_decode(p, (size_t)(end - p), sec.server_key, sizeof(sec.server_key)) !=
        SCRAM_KEY_LEN)
        goto done;
    *out = sec;
    ok = true;
done:
    OPENSSL_cleanse(&sec, sizeof(sec));
    return ok;
}

/*
 * Looks up or makes the secret for a plain auth_file password. The table is
 * keyed by user; an entry whose password or iteration count no longer matches
 * is made again with a fresh salt. The pointer is valid until the next call,
 * which may reuse the entry: scram_server_first() keeps its own copy.
 * NULL if iterations is below 1 or OpenSSL fails.
 */
const struct scram_secret *scram_secret_for_plain(const char *user, const char *password,
                                                  int iterations)
{
    static const uint8_t tag_user = 'u', tag_cred = 'p';
    uint8_t key[SCRAM_KEY_LEN], check[SCRAM_KEY_LEN], sp[SCRAM_KEY_LEN];
    uint32_t iter = (uint32_t)iterations;
    struct scram_secret sec;
    struct cache_entry *e;
    const struct scram_secret *res = NULL;

    /* No SCRAM_MAX_ITERATIONS here: the count is the admin's scram_iterations, not a peer's. */
    if (user == NULL || password == NULL || iterations < 1)
        return NULL;
    {
        struct span ku[] = {{&tag_user, 1}, {user, strlen(user)}};
        struct span kc[] = {{&tag_cred, 1}, {&iter, sizeof(iter)}, {password, strlen(password)}};

        if (!keyed_id(ku, 2, key) || !keyed_id(kc, 3, check))
            return NULL;
    }
    e = cache_find(&plain_cache, key);
    if (e != NULL && CRYPTO_memcmp(e->check, check, sizeof(check)) == 0)
        return &e->u.secret;

    /* Compute before touching the table, so a failure leaves it as it was. */
    memset(&sec, 0, sizeof(sec));
    sec.iterations = iterations;
    sec.salt_len = SCRAM_PLAIN_SALT_LEN;
    if (RAND_bytes(sec.salt, (int)sec.salt_len) != 1 ||
        !salted_password(password, sec.salt, sec.salt_len, iterations, sp) ||
        !derive_keys(sp, NULL, sec.stored_key, sec.server_key))
        goto done;

    if (e == NULL) {
        e = cache_insert(&plain_cache, key);
    } else {
        /* Same user, new password or iteration count: replace in place. */
        OPENSSL_cleanse(&e->u, sizeof(e->u));
    }
    memcpy(e->check, check, sizeof(check));
    e->u.secret = sec;
    res = &e->u.secret;
done:
    OPENSSL_cleanse(sp, sizeof(sp));
    OPENSSL_cleanse(&sec, sizeof(sec));
    OPENSSL_cleanse(check, sizeof(check));
    return res;
}

/*
 * A secret for a user that does not exist, so that the exchange runs to the
 * end and fails with "password mismatch" exactly as a wrong password does.
 * The salt is derived from the user name under the process key, so asking
 * twice for the same unknown user shows the same salt, as it would for a real
 * one; the keys are random, so no proof can match them.
 */
bool scram_mock_secret(const char *user, int iterations, struct scram_secret *out)
{
    static const uint8_t tag_mock = 'm';
    uint8_t salt[SCRAM_KEY_LEN];
    struct span parts[2];

    if (user == NULL || out == NULL || iterations < 1)
        return false;
    parts[0] = (struct span){&tag_mock, 1};
    parts[1] = (struct span){user, strlen(user)};
    memset(out, 0, sizeof(*out));
    if (!keyed_id(parts, 2, salt))
        return false;
    out->iterations = iterations;
    out->salt_len = SCRAM_PLAIN_SALT_LEN;
    memcpy(out->salt, salt, SCRAM_PLAIN_SALT_LEN);
    return RAND_bytes(out->stored_key, SCRAM_KEY_LEN) == 1 &&
           RAND_bytes(out->server_key, SCRAM_KEY_LEN) == 1;
}

/* Empties both caches, wiping what they held. */
void scram_cache_reset(void)
{
    cache_clear(&plain_cache);
    cache_clear(&client_cache);
}

/*==================================================================
 * Server side: pgmux checks a client
 *==================================================================*/

static bool server_fail(struct scram_server *st, const char **errmsg, const char *why)
{
    st->step = SCRAM_STEP_FAILED;
    OPENSSL_cleanse(&st->secret, sizeof(st->secret));
    *errmsg = why;
    return false;
}

/*
 * client-first-message (RFC 5802 section 7):
 *   gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username "," nonce ["," extensions]
 */
bool scram_server_first(struct scram_server *st, const struct scram_secret *sec, const uint8_t *msg,
                        size_t len, char *out, size_t cap, size_t *outlen, const char **errmsg)
{
    struct cursor c;
    const char *bare, *user, *cnonce;
    size_t ulen, cnlen, snlen;
    char flag, salt_b64[SCRAM_MAX_SALT * 4 / 3 + 4];
    int n;

    if (st->step != SCRAM_STEP_INIT)
        return server_fail(st, errmsg, "unexpected SCRAM message");
    if (sec == NULL || sec->iterations < 1 || sec->salt_len == 0 || sec->salt_len > SCRAM_MAX_SALT)
        return server_fail(st, errmsg, "unusable SCRAM secret");
    if (!message_ok(msg, len, errmsg))
        return server_fail(st, errmsg, *errmsg);
    c.p = (const char *)msg;
    c.end = c.p + len;

    /* gs2 header. */
    flag = *c.p;
    if (flag == 'p')
        return server_fail(
            st, errmsg, "SCRAM channel binding requested, but SCRAM-SHA-256-PLUS was not offered");
    if (flag != 'n' && flag != 'y')
        return server_fail(st, errmsg, "malformed SCRAM message (bad channel binding flag)");
    c.p++;
    if (!cur_char(&c, ','))
        return server_fail(st, errmsg, "malformed SCRAM message (bad gs2 header)");
    if (cur_peek_attr(&c, 'a'))
        return server_fail(st, errmsg, "SCRAM authorization identity is not supported");
    if (!cur_char(&c, ','))
        return server_fail(st, errmsg, "malformed SCRAM message (bad gs2 header)");

    /* client-first-message-bare: kept verbatim, it is part of AuthMessage. */
    bare = c.p;
    if (cur_peek_attr(&c, 'm'))
        return server_fail(st, errmsg, "SCRAM mandatory extension is not supported");
    /* PostgreSQL ignores the SCRAM user name (the startup packet has it): so do we. */
    if (!cur_attr(&c, 'n', &user, &ulen))
        return server_fail(st, errmsg, "malformed SCRAM message (missing user name)");
    if (!cur_char(&c, ',') || !cur_attr(&c, 'r', &cnonce, &cnlen))
        return server_fail(st, errmsg, "malformed SCRAM message (missing nonce)");
    if (!nonce_ok(cnonce, cnlen))
        return server_fail(st, errmsg, "malformed SCRAM message (bad nonce)");
    /* Optional extensions, which we do not use but RFC 5802 allows here. */
    while (!cur_at_end(&c)) {
        if (!cur_char(&c, ',') || !cur_extension(&c))
            return server_fail(st, errmsg, "malformed SCRAM message (garbage after nonce)");
    }

    if (!copy_str(st->client_first_bare, sizeof(st->client_first_bare), bare,
                  (size_t)(c.end - bare)))
        return server_fail(st, errmsg, "malformed SCRAM message (too long)");
    /* Our half of the nonce goes right after the client's. */
    if (!copy_str(st->nonce, sizeof(st->nonce), cnonce, cnlen))
        return server_fail(st, errmsg, "malformed SCRAM message (nonce too long)");
    if (!make_nonce(st->nonce + cnlen, sizeof(st->nonce) - cnlen))
        return server_fail(st, errmsg, "could not make SCRAM nonce");
    snlen = strlen(st->nonce + cnlen);
    if (snlen == 0 || !nonce_ok(st->nonce + cnlen, snlen))
        return server_fail(st, errmsg, "could not make SCRAM nonce");

    if (scram_b64_encode(sec->salt, sec->salt_len, salt_b64, sizeof(salt_b64)) == 0)
        return server_fail(st, errmsg, "unusable SCRAM secret");
    n = snprintf(st->server_first, sizeof(st->server_first), "r=%s,s=%s,i=%d", st->nonce, salt_b64,
                 sec->iterations);
    if (n < 0 || (size_t)n >= sizeof(st->server_first))
        return server_fail(st, errmsg, "malformed SCRAM message (too long)");
    if (!emit(st->server_first, (size_t)n, out, cap, outlen))
        return server_fail(st, errmsg, "SCRAM output buffer too small");

    /* The proof will be made with this salt and count: keep them (see scram_server_final). */
    st->secret = *sec;
    st->cbind_flag = flag;
    st->step = SCRAM_STEP_FIRST;
    return true;
}

/*
 * client-final-message (RFC 5802 section 7):
 *   channel-binding "," nonce ["," extensions] "," proof
 * We take no extensions, so it is exactly "c=...,r=...,p=...".
 */
bool scram_server_final(struct scram_server *st, const struct scram_secret *sec, const uint8_t *msg,
                        size_t len, char *out, size_t cap, size_t *outlen, struct scram_keys *keys,
                        const char **errmsg)
{
    struct cursor c;
    const char *cb, *nonce, *proof_b64;
    const char *expect_cb;
    size_t cblen, nlen, plen, without_proof;
    uint8_t proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];
    uint8_t stored[SCRAM_KEY_LEN], server_sig[SCRAM_KEY_LEN];
    char reply[8 + SCRAM_KEY_LEN * 2];
    const struct scram_secret *use;
    struct span auth[5];
    size_t rlen;
    bool ok = false;

    if (st->step != SCRAM_STEP_FIRST)
        return server_fail(st, errmsg, "unexpected SCRAM message");
    if (!message_ok(msg, len, errmsg))
        return server_fail(st, errmsg, *errmsg);
    c.p = (const char *)msg;
    c.end = c.p + len;

    /* Without channel binding, c= is just the gs2 header the client sent first. */
    expect_cb = st->cbind_flag == 'y' ? "eSws" : "biws";
    if (!cur_attr(&c, 'c', &cb, &cblen))
        return server_fail(st, errmsg, "malformed SCRAM message (missing channel binding)");
    if (cblen != strlen(expect_cb) || memcmp(cb, expect_cb, cblen) != 0)
        return server_fail(st, errmsg, "SCRAM channel binding check failed");
    if (!cur_char(&c, ',') || !cur_attr(&c, 'r', &nonce, &nlen))
        return server_fail(st, errmsg, "malformed SCRAM message (missing nonce)");
    if (nlen != strlen(st->nonce) || memcmp(nonce, st->nonce, nlen) != 0)
        return server_fail(st, errmsg, "SCRAM nonce mismatch");
    without_proof = (size_t)(c.p - (const char *)msg);
    if (!cur_char(&c, ','))
        return server_fail(st, errmsg, "malformed SCRAM message (missing proof)");
    if (!cur_peek_attr(&c, 'p')) {
        if (cur_extension(&c))
            return server_fail(st, errmsg, "SCRAM extensions are not supported");
        return server_fail(st, errmsg, "malformed SCRAM message (missing proof)");
    }
    if (!cur_attr(&c, 'p', &proof_b64, &plen))
        return server_fail(st, errmsg, "malformed SCRAM message (missing proof)");
    if (!cur_at_end(&c))
        return server_fail(st, errmsg, "malformed SCRAM message (garbage after proof)");
    if (scram_b64_decode(proof_b64, plen, proof, sizeof(proof)) != SCRAM_KEY_LEN)
        return server_fail(st, errmsg, "malformed SCRAM message (bad proof)");

    /*
     * The client made its proof with the salt and count of server-first. A
     * caller's secret with the same ones is current (it may have new keys
     * after a reload); one with others (a re-salted cache entry, a reload in
     * between) cannot be what the client used, so the copy is.
     */
    use = &st->secret;
    if (sec != NULL && sec->iterations == st->secret.iterations &&
        sec->salt_len == st->secret.salt_len &&
        memcmp(sec->salt, st->secret.salt, sec->salt_len) == 0)
        use = sec;

    auth[0] = (struct span){st->client_first_bare, strlen(st->client_first_bare)};
    auth[1] = (struct span){",", 1};
    auth[2] = (struct span){st->server_first, strlen(st->server_first)};
    auth[3] = (struct span){",", 1};
    auth[4] = (struct span){msg, without_proof};

    /* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) must be StoredKey. */
    if (!hmac_sha256(use->stored_key, SCRAM_KEY_LEN, auth, 5, sig)) {
        *errmsg = "SCRAM computation failed";
        goto done;
    }
    for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
        client_key[i] = proof[i] ^ sig[i];
    if (!sha256(client_key, sizeof(client_key), stored)) {
        *errmsg = "SCRAM computation failed";
        goto done;
    }
    if (CRYPTO_memcmp(stored, use->stored_key, SCRAM_KEY_LEN) != 0) {
        *errmsg = "password mismatch";
        goto done;
    }
    if (!hmac_sha256(use->server_key, SCRAM_KEY_LEN, auth, 5, server_sig)) {
        *errmsg = "SCRAM computation failed";
        goto done;
    }
    memcpy(reply, "v=", 2);
    rlen = scram_b64_encode(server_sig, sizeof(server_sig), reply + 2, sizeof(reply) - 2);
    if (rlen == 0 || !emit(reply, rlen + 2, out, cap, outlen)) {
        *errmsg = "SCRAM output buffer too small";
        goto done;
    }
    if (keys != NULL) {
        memcpy(keys->client_key, client_key, SCRAM_KEY_LEN);
        memcpy(keys->server_key, use->server_key, SCRAM_KEY_LEN);
    }
    ok = true;
done:
    OPENSSL_cleanse(proof, sizeof(proof));
    OPENSSL_cleanse(sig, sizeof(sig));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(stored, sizeof(stored));
    if (!ok)
        return server_fail(st, errmsg, *errmsg);
    OPENSSL_cleanse(&st->secret, sizeof(st->secret));
    st->step = SCRAM_STEP_DONE;
    return true;
}

/*==================================================================
 * Client side: pgmux logs in to PostgreSQL
 *==================================================================*/

static bool client_fail(struct scram_client *st, const char **errmsg, const char *why)
{
    st->step = SCRAM_STEP_FAILED;
    OPENSSL_cleanse(st->server_key, sizeof(st->server_key));
    *errmsg = why;
    return false;
}

/*
 * "n,,n=,r=<nonce>": no channel binding, and an empty user name, which
 * PostgreSQL ignores in favour of the startup packet's (libpq does the same).
 */
bool scram_client_first(struct scram_client *st, char *out, size_t cap, size_t *outlen)
{
    const char *user = test_client_user != NULL ? test_client_user : "";
    int n;

    if (st->step != SCRAM_STEP_INIT)
        goto fail;
    if (!make_nonce(st->nonce, sizeof(st->nonce)) || !nonce_ok(st->nonce, strlen(st->nonce)))
        goto fail;
    n = snprintf(st->client_first_bare, sizeof(st->client_first_bare), "n=%s,r=%s", user,
                 st->nonce);
    if (n < 0 || (size_t)n >= sizeof(st->client_first_bare) || out == NULL || cap < (size_t)n + 4)
        goto fail;
    memcpy(out, "n,,", 3);
    memcpy(out + 3, st->client_first_bare, (size_t)n + 1);
    *outlen = (size_t)n + 3;
    st->step = SCRAM_STEP_FIRST;
    return true;
fail:
    st->step = SCRAM_STEP_FAILED;
    return false;
}

/*
 * ClientKey and ServerKey for a plain password, from the cache or from
 * PBKDF2. The cache key covers everything PBKDF2 depends on.
 */
static bool client_keys_for_password(const char *password, const uint8_t *salt, size_t salt_len,
                                     int iterations, struct scram_keys *keys)
{
    static const uint8_t tag = 'c';
    uint32_t iter = (uint32_t)iterations, slen = (uint32_t)salt_len;
    struct span parts[5];
    uint8_t key[SCRAM_KEY_LEN], sp[SCRAM_KEY_LEN];
    struct cache_entry *e;
    bool ok = false;

    parts[0] = (struct span){&tag, 1};
    parts[1] = (struct span){&iter, sizeof(iter)};
    parts[2] = (struct span){&slen, sizeof(slen)};
    parts[3] = (struct span){salt, salt_len};
    parts[4] = (struct span){password, strlen(password)};
    if (!keyed_id(parts, 5, key))
        return false;
    e = cache_find(&client_cache, key);
    if (e != NULL) {
        *keys = e->u.keys;
        return true;
    }
    if (!salted_password(password, salt, salt_len, iterations, sp) ||
        !derive_keys(sp, keys->client_key, NULL, keys->server_key))
        goto done;
    e = cache_insert(&client_cache, key);
    e->u.keys = *keys;
    ok = true;
done:
    OPENSSL_cleanse(sp, sizeof(sp));
    return ok;
}

/*
 * server-first-message (RFC 5802 section 7):
 *   [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
 * Like libpq we take no extensions. The iteration count is capped: it is
 * CPU time the server makes us spend.
 */
bool scram_client_final(struct scram_client *st, const char *password,
                        const struct scram_keys *keys, const uint8_t *server_first, size_t len,
                        char *out, size_t cap, size_t *outlen, const char **errmsg)
{
    struct cursor c;
    const char *nonce, *salt_b64, *iter_s;
    size_t nlen, slen, ilen, ourlen, tail_len, plen;
    uint8_t salt[SCRAM_MAX_SALT], stored[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN];
    uint8_t proof[SCRAM_KEY_LEN];
    char proof_b64[SCRAM_KEY_LEN * 2];
    struct scram_keys k;
    struct span auth[5];
    int iterations, n;
    long salt_len;
    bool ok = false;

    if (st->step != SCRAM_STEP_FIRST)
        return client_fail(st, errmsg, "unexpected SCRAM message");
    if (!message_ok(server_first, len, errmsg))
        return client_fail(st, errmsg, *errmsg);
    c.p = (const char *)server_first;
    c.end = c.p + len;

    if (cur_peek_attr(&c, 'm'))
        return client_fail(st, errmsg, "SCRAM mandatory extension is not supported");
    if (!cur_attr(&c, 'r', &nonce, &nlen))
        return client_fail(st, errmsg, "malformed SCRAM message (missing nonce)");
    ourlen = strlen(st->nonce);
    if (nlen <= ourlen || memcmp(nonce, st->nonce, ourlen) != 0)
        return client_fail(st, errmsg, "SCRAM server nonce does not extend the client nonce");
    if (!nonce_ok(nonce, nlen))
        return client_fail(st, errmsg, "malformed SCRAM message (bad nonce)");
    if (!cur_char(&c, ',') || !cur_attr(&c, 's', &salt_b64, &slen))
        return client_fail(st, errmsg, "malformed SCRAM message (missing salt)");
    salt_len = scram_b64_decode(salt_b64, slen, salt, sizeof(salt));
    if (salt_len < 1)
        return client_fail(st, errmsg, "malformed SCRAM message (bad salt)");
    if (!cur_char(&c, ',') || !cur_attr(&c, 'i', &iter_s, &ilen))
        return client_fail(st, errmsg, "malformed SCRAM message (missing iteration count)");
    if (!parse_iterations(iter_s, ilen, SCRAM_MAX_ITERATIONS, &iterations))
        return client_fail(st, errmsg, "SCRAM iteration count invalid or too high");
    if (!cur_at_end(&c))
        return client_fail(st, errmsg, "malformed SCRAM message (garbage after iteration count)");

    /* len < SCRAM_MAX_MSG was checked, so these fit. */
    if (!copy_str(st->server_first, sizeof(st->server_first), (const char *)server_first, len))
        return client_fail(st, errmsg, "malformed SCRAM message (too long)");
    n = snprintf(st->auth_message_tail, sizeof(st->auth_message_tail), "c=biws,r=%.*s", (int)nlen,
                 nonce);
    if (n < 0 || (size_t)n >= sizeof(st->auth_message_tail))
        return client_fail(st, errmsg, "malformed SCRAM message (too long)");
    tail_len = (size_t)n;

    if (password != NULL) {
        if (!client_keys_for_password(password, salt, (size_t)salt_len, iterations, &k)) {
            *errmsg = "SCRAM computation failed";
            goto done;
        }
    } else if (keys != NULL) {
        k = *keys;
    } else {
        *errmsg = "no password or SCRAM keys for the server login";
        goto done;
    }

    auth[0] = (struct span){st->client_first_bare, strlen(st->client_first_bare)};
    auth[1] = (struct span){",", 1};
    auth[2] = (struct span){st->server_first, len};
    auth[3] = (struct span){",", 1};
    auth[4] = (struct span){st->auth_message_tail, tail_len};

    /* ClientProof = ClientKey XOR HMAC(H(ClientKey), AuthMessage). */
    if (!sha256(k.client_key, SCRAM_KEY_LEN, stored) ||
        !hmac_sha256(stored, SCRAM_KEY_LEN, auth, 5, sig)) {
        *errmsg = "SCRAM computation failed";
        goto done;
    }
    for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
        proof[i] = k.client_key[i] ^ sig[i];
    plen = scram_b64_encode(proof, sizeof(proof), proof_b64, sizeof(proof_b64));
    if (out == NULL || plen == 0 || cap < tail_len + 3 + plen + 1) {
        *errmsg = "SCRAM output buffer too small";
        goto done;
    }
    memcpy(out, st->auth_message_tail, tail_len);
    memcpy(out + tail_len, ",p=", 3);
    memcpy(out + tail_len + 3, proof_b64, plen + 1);
    *outlen = tail_len + 3 + plen;
    memcpy(st->server_key, k.server_key, SCRAM_KEY_LEN);
    ok = true;
done:
    OPENSSL_cleanse(&k, sizeof(k));
    OPENSSL_cleanse(stored, sizeof(stored));
    OPENSSL_cleanse(sig, sizeof(sig));
    OPENSSL_cleanse(proof, sizeof(proof));
    if (!ok)
        return client_fail(st, errmsg, *errmsg);
    st->step = SCRAM_STEP_FINAL;
    return true;
}

/* server-final-message: "v=<ServerSignature>", or "e=<error>"; no extensions. */
bool scram_client_verify(struct scram_client *st, const uint8_t *server_final, size_t len,
                         const char **errmsg)
{
    struct cursor c;
    const char *v;
    size_t vlen;
    uint8_t got[SCRAM_KEY_LEN], want[SCRAM_KEY_LEN];
    struct span auth[5];
    bool match;

    if (st->step != SCRAM_STEP_FINAL)
        return client_fail(st, errmsg, "unexpected SCRAM message");
    if (!message_ok(server_final, len, errmsg))
        return client_fail(st, errmsg, *errmsg);
    c.p = (const char *)server_final;
    c.end = c.p + len;

    /* The error text is the server's: do not pass it on, just say what happened. */
    if (cur_peek_attr(&c, 'e'))
        return client_fail(st, errmsg, "server reported a SCRAM error");
    if (!cur_attr(&c, 'v', &v, &vlen))
        return client_fail(st, errmsg, "malformed SCRAM message (missing server signature)");
    if (!cur_at_end(&c))
        return client_fail(st, errmsg, "malformed SCRAM message (garbage after signature)");
    if (scram_b64_decode(v, vlen, got, sizeof(got)) != SCRAM_KEY_LEN)
        return client_fail(st, errmsg, "malformed SCRAM message (bad server signature)");

    auth[0] = (struct span){st->client_first_bare, strlen(st->client_first_bare)};
    auth[1] = (struct span){",", 1};
    auth[2] = (struct span){st->server_first, strlen(st->server_first)};
    auth[3] = (struct span){",", 1};
    auth[4] = (struct span){st->auth_message_tail, strlen(st->auth_message_tail)};
    if (!hmac_sha256(st->server_key, SCRAM_KEY_LEN, auth, 5, want))
        return client_fail(st, errmsg, "SCRAM computation failed");
    match = CRYPTO_memcmp(got, want, SCRAM_KEY_LEN) == 0;
    OPENSSL_cleanse(want, sizeof(want));
    if (!match)
        return client_fail(st, errmsg, "SCRAM server signature mismatch");
    OPENSSL_cleanse(st->server_key, sizeof(st->server_key));
    st->step = SCRAM_STEP_DONE;
    return true;
}

/*==================================================================
 * Test hooks
 *==================================================================*/

/* The next nonce made (client or server half) is this string, once. */
void scram_test_set_nonce(const char *nonce)
{
    test_nonce = nonce;
}

/* The user name sent in client-first (default empty), to replay RFC 7677. */
void scram_test_set_client_user(const char *user)
{
    test_client_user = user;
}

unsigned long scram_test_pbkdf2_runs(void)
{
    return pbkdf2_runs;
}
