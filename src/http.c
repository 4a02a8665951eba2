/* SPDX-License-Identifier: ISC */
/*
 * http: a small HTTP/1.1 server on the pooler's loop for /metrics and the
 * health endpoints. It is kept apart from the PostgreSQL protocol code and
 * is built so that no HTTP client can slow the pooler down:
 *
 *  - at most HTTP_MAX_CONNS connections; when full, a new one evicts the
 *    reading connection closest to its deadline (a slow or idle one), so a
 *    slowloris crowd cannot lock a scraper out;
 *  - a request head is at most HTTP_HEAD_MAX bytes, read into a fixed
 *    buffer in the connection (431 past that); bodies are refused (400);
 *  - one ev_timer for all connections enforces the deadlines, compared with
 *    the cached loop clock: a request head must arrive within
 *    HTTP_HEADER_TIMEOUT of its first byte (slowloris), an idle keep-alive
 *    connection is closed after HTTP_IDLE_TIMEOUT, and a response must drain
 *    within HTTP_WRITE_TIMEOUT;
 *  - writes are non-blocking: a response goes to the kernel at once and the
 *    connection waits for EV_WRITE only when the socket is full; nothing is
 *    read while a response is pending, so pipelined requests wait in the
 *    fixed buffer and a client that does not read its answers costs one
 *    response buffer until the write deadline;
 *  - rendering /metrics and /health may take at most HTTP_RENDER_BUDGET
 *    seconds of each wall-clock second; once a second's budget is spent,
 *    requests get the last rendered text until the next second. Normal
 *    scraping (a render takes tens of microseconds) never gets near the
 *    budget and always sees fresh numbers; a flood of scrapes costs the
 *    pooler at most that share of its time.
 *
 * Endpoints: a listener for stats_listen_port serves /metrics, one for
 * health_listen_port serves /health/live, /health/ready and /health; when
 * both use the same address and port, one listener serves all. GET and
 * HEAD only (405 otherwise), 404 for other paths, 400 for malformed input.
 * stats_allow (peer address list, 403) and stats_auth (Basic auth of
 * auth_file users, 401) guard /metrics only: probes of the health endpoints
 * come from kubelets and load balancers that cannot easily authenticate.
 */
#include "http.h"

#include "authfile.h"
#include "config.h"
#include "health.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "pgmux.h"
#include "scram.h"
#include "textbuf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HTTP_MAX_LISTENERS  8
#define HTTP_MAX_CONNS      64
#define HTTP_HEAD_MAX       8192 /* request line + headers */
#define HTTP_HEADER_TIMEOUT 10.0 /* from the first byte of a request to its blank line */
#define HTTP_IDLE_TIMEOUT   60.0 /* keep-alive wait for the next request */
#define HTTP_WRITE_TIMEOUT  30.0 /* for a response to drain */
#define HTTP_TICK           1.0
#define HTTP_ACCEPT_BATCH   16
#define HTTP_RENDER_BUDGET  0.05  /* seconds of rendering allowed per second */
#define HTTP_BIG_RESPONSE   65536 /* response buffers past this are freed after use */

enum {
    SERVES_METRICS = 1,
    SERVES_HEALTH = 2,
};

struct http_listener {
    ev_io io;
    int fd;
    unsigned serves; /* SERVES_* */
};

struct http_conn {
    ev_io io;         /* EV_READ, or EV_WRITE while writing */
    struct list head; /* in conns */
    int fd;           /* owned */
    unsigned serves;
    bool writing;     /* a response is waiting for the socket to take it */
    bool close_after; /* close once the response is out */
    double deadline;  /* loop clock after which the timer closes it */
    struct sockaddr_storage peer;
    size_t in_len;      /* bytes in in[] */
    size_t scanned;     /* in[0..scanned) holds no head terminator */
    struct textbuf out; /* the response being sent */
    size_t out_sent;
    char in[HTTP_HEAD_MAX];
};

/* The last rendered document. */
struct body_cache {
    struct textbuf text;
    bool ready; /* /health: the readiness it reported */
    bool valid;
};

static struct http_listener listeners[HTTP_MAX_LISTENERS];
static int n_listeners;
static struct list conns = {&conns, &conns};
static int n_conns;
static ev_timer http_timer;
static bool accept_suspended;
static double suspended_at;
static struct body_cache metrics_cache, health_cache;
static double render_second; /* start of the current budget second (ev_time) */
static double render_spent;  /* seconds spent rendering since render_second */

static const int counted_codes[] = {200, 400, 401, 403, 404, 405, 431, 500, 503, 505};
#define N_CODES (sizeof(counted_codes) / sizeof(counted_codes[0]))
static uint64_t responses_by_code[N_CODES];
static uint64_t conns_timed_out, conns_evicted;

static void http_conn_cb(struct ev_loop *loop, ev_io *w, int revents);

/*==== Connections ====*/

static void conn_close(struct http_conn *c)
{
    ev_io_stop(loop_main, &c->io);
    close(c->fd);
    list_del(&c->head);
    textbuf_free(&c->out);
    free(c);
    n_conns--;
}

static void conn_watch(struct http_conn *c, int events)
{
    ev_io_stop(loop_main, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(loop_main, &c->io);
}

/*
 * Room for one more connection: close the reading connection whose deadline
 * comes first (a trickling head or an idle keep-alive). False if every
 * connection is busy sending a response.
 */
static bool evict_one(void)
{
    struct http_conn *victim = NULL;
    struct list *item;
    for (item = conns.next; item != &conns; item = item->next) {
        struct http_conn *c = container_of(item, struct http_conn, head);
        if (!c->writing && (!victim || c->deadline < victim->deadline))
            victim = c;
    }
    if (!victim)
        return false;
    conns_evicted++;
    conn_close(victim);
    return true;
}

static void suspend_accept(void)
{
    for (int i = 0; i < n_listeners; i++)
        ev_io_stop(loop_main, &listeners[i].io);
    accept_suspended = true;
    suspended_at = loop_now();
}

static void http_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct http_listener *l = container_of(w, struct http_listener, io);
    (void)loop;
    (void)revents;
    for (int i = 0; i < HTTP_ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warning("HTTP accept() failed: %s; not accepting for a while", strerror(errno));
                suspend_accept();
            }
            return;
        }
        if (n_conns >= HTTP_MAX_CONNS && !evict_one()) {
            close(fd);
            continue;
        }
        struct http_conn *c = malloc(sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->serves = l->serves;
        c->writing = false;
        c->close_after = false;
        c->deadline = loop_now() + HTTP_HEADER_TIMEOUT;
        memcpy(&c->peer, &ss, sizeof(ss));
        c->in_len = 0;
        c->scanned = 0;
        textbuf_init(&c->out);
        c->out_sent = 0;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        list_insert_after(conns.prev, &c->head);
        n_conns++;
        ev_io_init(&c->io, http_conn_cb, fd, EV_READ);
        ev_io_start(loop_main, &c->io);
    }
}

/*
 * Send what is left of the response. True while the connection stays open
 * (done, or waiting for EV_WRITE); false when it was closed.
 */
static bool conn_flush(struct http_conn *c)
{
    while (c->out_sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->writing) {
                    c->writing = true;
                    c->deadline = loop_now() + HTTP_WRITE_TIMEOUT;
                    conn_watch(c, EV_WRITE);
                }
                return true;
            }
            conn_close(c);
            return false;
        }
        c->out_sent += (size_t)n;
    }
    if (c->close_after) {
        conn_close(c);
        return false;
    }
    if (c->out.cap > HTTP_BIG_RESPONSE)
        textbuf_free(&c->out);
    else
        textbuf_reset(&c->out);
    c->out_sent = 0;
    if (c->writing) {
        c->writing = false;
        conn_watch(c, EV_READ);
    }
    c->deadline = loop_now() + (c->in_len ? HTTP_HEADER_TIMEOUT : HTTP_IDLE_TIMEOUT);
    return true;
}

/*==== Responses ====*/

static const char *reason_phrase(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* The Date header value, formatted once per second of the loop clock. */
static const char *http_date(void)
{
    static char buf[64];
    static time_t last = -1;
    time_t now = (time_t)loop_now();
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return buf;
}

/*
 * Queue a whole response in c->out. extra holds more header lines, each
 * ending in CRLF, or is NULL. HEAD gets the headers only.
 */
static void respond(struct http_conn *c, int code, const char *ctype, const char *body, size_t blen,
                    bool head_only, const char *extra)
{
    for (size_t i = 0; i < N_CODES; i++)
        if (counted_codes[i] == code)
            responses_by_code[i]++;
    textbuf_printf(&c->out,
                   "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\n%sConnection: %s\r\n\r\n",
                   code, reason_phrase(code), http_date(), ctype, blen, extra ? extra : "",
                   c->close_after ? "close" : "keep-alive");
    if (!head_only)
        textbuf_put(&c->out, body, blen);
    if (c->out.failed) {
        /* Out of memory: nothing sensible can be sent; the connection goes. */
        textbuf_reset(&c->out);
        c->close_after = true;
    }
}

static void respond_text(struct http_conn *c, int code, const char *text, bool head_only,
                         const char *extra)
{
    respond(c, code, "text/plain; charset=utf-8", text, strlen(text), head_only, extra);
}

/* The document, rendered now unless this second's render budget is spent. */
static const struct body_cache *cache_get(struct body_cache *bc, bool metrics)
{
    double t0 = ev_time();
    if (t0 - render_second >= 1.0 || t0 < render_second) {
        render_second = t0;
        render_spent = 0;
    }
    if (bc->valid && render_spent >= HTTP_RENDER_BUDGET)
        return bc;
    textbuf_reset(&bc->text);
    if (metrics)
        metrics_render(&bc->text);
    else
        bc->ready = health_render(&bc->text);
    double t1 = ev_time();
    bc->valid = !bc->text.failed;
    render_spent += t1 > t0 ? t1 - t0 : 0;
    return bc;
}

/*==== Access control for /metrics ====*/

/* The peer's address bytes: 4 for IPv4 (IPv4-mapped IPv6 included), 16 for IPv6, else 0. */
static int peer_bytes(const struct sockaddr_storage *ss, unsigned char out[16])
{
    if (ss->ss_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        return 4;
    }
    if (ss->ss_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) {
            memcpy(out, a + 12, 4);
            return 4;
        }
        memcpy(out, a, 16);
        return 16;
    }
    return 0;
}

static bool prefix_match(const unsigned char *a, const unsigned char *b, long bits)
{
    long whole = bits / 8;
    if (memcmp(a, b, (size_t)whole) != 0)
        return false;
    if (bits % 8 == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));
    return (a[whole] & mask) == (b[whole] & mask);
}

/* stats_allow: empty allows everyone; config.c checked the syntax. */
static bool peer_allowed(const struct sockaddr_storage *ss)
{
    const char *p = G.cfg->stats_allow;
    unsigned char peer[16];
    int plen;
    if (!p[0])
        return true;
    plen = peer_bytes(ss, peer);
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ')
            p++;
        size_t n = (size_t)(p - start);
        char entry[64];
        if (n == 0 || n >= sizeof(entry))
            continue;
        memcpy(entry, start, n);
        entry[n] = 0;
        long bits = -1;
        char *slash = strchr(entry, '/');
        if (slash) {
            *slash = 0;
            bits = strtol(slash + 1, NULL, 10);
        }
        unsigned char net[16];
        if (plen == 4 && inet_pton(AF_INET, entry, net) == 1) {
            if (prefix_match(peer, net, bits < 0 || bits > 32 ? 32 : bits))
                return true;
        } else if (plen == 16 && inet_pton(AF_INET6, entry, net) == 1) {
            if (prefix_match(peer, net, bits < 0 || bits > 128 ? 128 : bits))
                return true;
        }
    }
    return false;
}

static bool csv_has(const char *csv, const char *name)
{
    size_t n = strlen(name);
    const char *p = csv;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ')
            p++;
        if ((size_t)(p - start) == n && n > 0 && memcmp(start, name, n) == 0)
            return true;
    }
    return false;
}

/*
 * A plain password against a SCRAM secret: PBKDF2 gives the salted
 * password, whose ClientKey must hash to the StoredKey.
 */
static bool scram_plain_matches(const char *secret, const char *password)
{
    struct scram_secret sec;
    uint8_t salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
    unsigned int klen = sizeof(client_key);
    if (!scram_parse_secret(secret, &sec))
        return false;
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), sec.salt, (int)sec.salt_len,
                          sec.iterations, EVP_sha256(), sizeof(salted), salted) != 1)
        return false;
    if (!HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *)"Client Key", 10,
              client_key, &klen))
        return false;
    SHA256(client_key, sizeof(client_key), stored);
    return secret_equal(stored, sec.stored_key, SCRAM_KEY_LEN);
}

/*
 * SCRAM checks cost thousands of hash rounds, so the loop must not run them
 * on demand: credentials that passed are remembered by digest (so a
 * scraper's every request costs one SHA-256), and new ones are checked at
 * most every SCRAM_CHECK_SPACING seconds.
 */
#define SCRAM_OK_CACHE      4
#define SCRAM_CHECK_SPACING 0.2

static bool scram_check_cached(const char *user, const char *password, const char *secret)
{
    static uint8_t ok_digests[SCRAM_OK_CACHE][SHA256_DIGEST_LENGTH];
    static int next_slot;
    static double next_check;
    uint8_t digest[SHA256_DIGEST_LENGTH];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(md, user, strlen(user) + 1) == 1 &&
              EVP_DigestUpdate(md, password, strlen(password) + 1) == 1 &&
              EVP_DigestUpdate(md, secret, strlen(secret)) == 1 &&
              EVP_DigestFinal_ex(md, digest, NULL) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return false;
    for (int i = 0; i < SCRAM_OK_CACHE; i++)
        if (secret_equal(ok_digests[i], digest, sizeof(digest)))
            return true;
    double now = ev_time();
    if (now < next_check)
        return false;
    next_check = now + SCRAM_CHECK_SPACING;
    if (!scram_plain_matches(secret, password))
        return false;
    memcpy(ok_digests[next_slot], digest, sizeof(digest));
    next_slot = (next_slot + 1) % SCRAM_OK_CACHE;
    return true;
}

/* stats_auth: the Authorization header (value only, or NULL) names an allowed user. */
static bool auth_ok(const char *value, size_t len)
{
    char decoded[600], *colon;
    if (!G.cfg->stats_auth[0])
        return true;
    if (!value || len < 6 || strncasecmp(value, "Basic ", 6) != 0)
        return false;
    value += 6;
    len -= 6;
    while (len > 0 && *value == ' ') {
        value++;
        len--;
    }
    long n = scram_b64_decode(value, len, (uint8_t *)decoded, sizeof(decoded) - 1);
    if (n <= 0)
        return false;
    decoded[n] = 0;
    colon = strchr(decoded, ':');
    if (!colon || strlen(decoded) != (size_t)n)
        return false;
    *colon = 0;
    const char *user = decoded, *password = colon + 1;
    if (!csv_has(G.cfg->stats_auth, user))
        return false;
    const char *secret = G.authfile ? authfile_lookup(G.authfile, user) : NULL;
    if (!secret)
        return false;
    bool ok = false;
    switch (secret_kind(secret)) {
    case SECRET_PLAIN: {
        size_t a = strlen(secret), b = strlen(password);
        ok = a == b && secret_equal(secret, password, a);
        break;
    }
    case SECRET_MD5: {
        char h[36];
        md5_password_hash(password, user, h);
        ok = strlen(secret) == 35 && secret_equal(h, secret, 35);
        break;
    }
    case SECRET_SCRAM:
        ok = scram_check_cached(user, password, secret);
        break;
    }
    memset(decoded, 0, sizeof(decoded));
    return ok;
}

/*==== Requests ====*/

struct http_request {
    const char *method, *path, *version;
    size_t method_len, path_len, version_len;
    const char *authorization; /* header value, not NUL-terminated */
    size_t authorization_len;
    bool keep_alive_asked, close_asked, has_body;
};

static bool is_token_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool eq_nocase(const char *a, size_t alen, const char *b)
{
    return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

/* Does the comma list in value (len bytes) hold token (case-insensitive)? */
static bool list_has_token(const char *value, size_t len, const char *token)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        size_t start = i;
        while (i < len && value[i] != ',' && value[i] != ' ' && value[i] != '\t')
            i++;
        if (i > start && eq_nocase(value + start, i - start, token))
            return true;
    }
    return false;
}

/*
 * Parse the head in[0..len) (request line, headers, blank line; lines end
 * in LF with an optional CR). False when it is not HTTP.
 */
static bool parse_head(const char *in, size_t len, struct http_request *rq)
{
    const char *p = in, *end = in + len;
    memset(rq, 0, sizeof(*rq));

    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol)
        return false;
    const char *line_end = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
    /* method SP target SP version */
    const char *sp1 = memchr(p, ' ', (size_t)(line_end - p));
    if (!sp1)
        return false;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1));
    if (!sp2)
        return false;
    rq->method = p;
    rq->method_len = (size_t)(sp1 - p);
    rq->path = sp1 + 1;
    rq->path_len = (size_t)(sp2 - sp1 - 1);
    rq->version = sp2 + 1;
    rq->version_len = (size_t)(line_end - sp2 - 1);
    if (rq->method_len == 0 || rq->method_len > 16 || rq->path_len == 0 || rq->version_len == 0)
        return false;
    for (size_t i = 0; i < rq->method_len; i++)
        if (!is_token_char(rq->method[i]))
            return false;
    for (size_t i = 0; i < rq->path_len; i++)
        if ((unsigned char)rq->path[i] <= 0x20 || rq->path[i] == 0x7f)
            return false;
    for (size_t i = 0; i < rq->version_len; i++)
        if ((unsigned char)rq->version[i] <= 0x20)
            return false;

    for (p = eol + 1; p < end;) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            return false;
        line_end = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        if (line_end == p)
            return true; /* the blank line */
        if (*p == ' ' || *p == '\t')
            return false; /* obsolete line folding */
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (!colon || colon == p)
            return false;
        for (const char *q = p; q < colon; q++)
            if (!is_token_char(*q))
                return false;
        const char *v = colon + 1, *vend = line_end;
        while (v < vend && (*v == ' ' || *v == '\t'))
            v++;
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        size_t nlen = (size_t)(colon - p), vlen = (size_t)(vend - v);
        if (eq_nocase(p, nlen, "connection")) {
            rq->close_asked |= list_has_token(v, vlen, "close");
            rq->keep_alive_asked |= list_has_token(v, vlen, "keep-alive");
        } else if (eq_nocase(p, nlen, "content-length")) {
            if (!(vlen == 1 && v[0] == '0'))
                rq->has_body = true;
        } else if (eq_nocase(p, nlen, "transfer-encoding")) {
            rq->has_body = true;
        } else if (eq_nocase(p, nlen, "authorization")) {
            rq->authorization = v;
            rq->authorization_len = vlen;
        }
        p = eol + 1;
    }
    return false;
}

static bool path_is(const struct http_request *rq, size_t plen, const char *want)
{
    return plen == strlen(want) && memcmp(rq->path, want, plen) == 0;
}

/* Answer the request whose head is in[0..len); the head is consumed by the caller. */
static void handle_request(struct http_conn *c, size_t len)
{
    struct http_request rq;
    if (!parse_head(c->in, len, &rq)) {
        c->close_after = true;
        respond_text(c, 400, "bad request\n", false, NULL);
        return;
    }
    bool http11 = rq.version_len == 8 && memcmp(rq.version, "HTTP/1.1", 8) == 0;
    bool http10 = rq.version_len == 8 && memcmp(rq.version, "HTTP/1.0", 8) == 0;
    if (!http11 && !http10) {
        bool looks_http = rq.version_len > 5 && memcmp(rq.version, "HTTP/", 5) == 0;
        c->close_after = true;
        respond_text(c, looks_http ? 505 : 400,
                     looks_http ? "only HTTP/1.0 and HTTP/1.1\n" : "bad request\n", false, NULL);
        return;
    }
    c->close_after = rq.close_asked || (http10 && !rq.keep_alive_asked);
    if (rq.has_body) {
        /* We never read bodies, so the stream could not be trusted after one. */
        c->close_after = true;
        respond_text(c, 400, "request bodies are not accepted\n", false, NULL);
        return;
    }
    bool head_only = rq.method_len == 4 && memcmp(rq.method, "HEAD", 4) == 0;
    bool get = rq.method_len == 3 && memcmp(rq.method, "GET", 3) == 0;
    if (!get && !head_only) {
        respond_text(c, 405, "method not allowed\n", false, "Allow: GET, HEAD\r\n");
        return;
    }
    const char *q = memchr(rq.path, '?', rq.path_len);
    size_t plen = q ? (size_t)(q - rq.path) : rq.path_len;

    if ((c->serves & SERVES_METRICS) && path_is(&rq, plen, "/metrics")) {
        if (!peer_allowed(&c->peer)) {
            respond_text(c, 403, "forbidden\n", head_only, NULL);
            return;
        }
        if (!auth_ok(rq.authorization, rq.authorization_len)) {
            respond_text(c, 401, "authentication required\n", head_only,
                         "WWW-Authenticate: Basic realm=\"pgmux\", charset=\"UTF-8\"\r\n");
            return;
        }
        const struct body_cache *bc = cache_get(&metrics_cache, true);
        if (!bc->valid) {
            respond_text(c, 500, "out of memory\n", head_only, NULL);
            return;
        }
        respond(c, 200, METRICS_CONTENT_TYPE, bc->text.data, bc->text.len, head_only, NULL);
        return;
    }
    if (c->serves & SERVES_HEALTH) {
        if (path_is(&rq, plen, "/health/live")) {
            respond_text(c, 200, "live\n", head_only, NULL);
            return;
        }
        if (path_is(&rq, plen, "/health/ready")) {
            char why[400], body[420];
            bool ready = health_ready(why, sizeof(why));
            snprintf(body, sizeof(body), ready ? "ready\n" : "not ready: %s\n", why);
            respond_text(c, ready ? 200 : 503, body, head_only, NULL);
            return;
        }
        if (path_is(&rq, plen, "/health")) {
            const struct body_cache *bc = cache_get(&health_cache, false);
            if (!bc->valid) {
                respond_text(c, 500, "out of memory\n", head_only, NULL);
                return;
            }
            respond(c, bc->ready ? 200 : 503, "application/json", bc->text.data, bc->text.len,
                    head_only, NULL);
            return;
        }
    }
    respond_text(c, 404, "not found\n", head_only, NULL);
}

/* Length of the head at the start of in[] (through its blank line), or 0 if incomplete. */
static size_t head_length(struct http_conn *c)
{
    size_t i = c->scanned;
    for (; i < c->in_len; i++) {
        if (c->in[i] != '\n')
            continue;
        if (i >= 1 && c->in[i - 1] == '\n')
            return i + 1;
        if (i >= 2 && c->in[i - 1] == '\r' && c->in[i - 2] == '\n')
            return i + 1;
    }
    c->scanned = c->in_len;
    return 0;
}

/*
 * Answer every complete request in the buffer while the answers go straight
 * out; stop when one has to wait for the socket (the flush resumes us).
 */
static void conn_process(struct http_conn *c)
{
    while (!c->writing) {
        /* Empty lines before a request line are allowed (RFC 9112, 2.2). */
        size_t skip = 0;
        while (skip < c->in_len && (c->in[skip] == '\r' || c->in[skip] == '\n'))
            skip++;
        if (skip) {
            memmove(c->in, c->in + skip, c->in_len - skip);
            c->in_len -= skip;
            c->scanned = 0;
        }
        size_t len = head_length(c);
        if (len == 0) {
            if (c->in_len < sizeof(c->in))
                return;
            c->close_after = true;
            respond_text(c, 431, "request head too large\n", false, NULL);
            c->in_len = 0;
        } else {
            handle_request(c, len);
            memmove(c->in, c->in + len, c->in_len - len);
            c->in_len -= len;
        }
        c->scanned = 0;
        if (!conn_flush(c))
            return;
    }
}

static void http_conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct http_conn *c = container_of(w, struct http_conn, io);
    (void)loop;
    (void)revents;
    if (c->writing) {
        if (conn_flush(c) && !c->writing)
            conn_process(c);
        return;
    }
    if (c->in_len == sizeof(c->in))
        return; /* cannot happen: a full buffer is answered with 431 */
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
    if (n == 0) {
        conn_close(c);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_close(c);
        return;
    }
    if (c->in_len == 0)
        c->deadline = loop_now() + HTTP_HEADER_TIMEOUT; /* a request begins */
    c->in_len += (size_t)n;
    conn_process(c);
}

static void http_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    double now = loop_now();
    struct list *item, *tmp;
    (void)loop;
    (void)w;
    (void)revents;
    for (item = conns.next, tmp = item->next; item != &conns; item = tmp, tmp = item->next) {
        struct http_conn *c = container_of(item, struct http_conn, head);
        if (now > c->deadline) {
            conns_timed_out++;
            conn_close(c);
        }
    }
    if (accept_suspended && now - suspended_at >= 1.0) {
        accept_suspended = false;
        for (int i = 0; i < n_listeners; i++)
            ev_io_start(loop_main, &listeners[i].io);
    }
}

/*==== Listeners ====*/

static bool http_listen(const char *addrs, int port, unsigned serves, const char *what)
{
    char *list = strdup(addrs[0] ? addrs : "127.0.0.1");
    char *save = NULL, portstr[16];
    bool ok = list != NULL;
    snprintf(portstr, sizeof(portstr), "%d", port);
    for (char *tok = list ? strtok_r(list, ", ", &save) : NULL; tok && ok;
         tok = strtok_r(NULL, ", ", &save)) {
        struct addrinfo hints, *res, *ai;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE;
        int rc = getaddrinfo(strcmp(tok, "*") == 0 ? NULL : tok, portstr, &hints, &res);
        if (rc != 0) {
            log_error("%s_listen_addr %s: %s", what, tok, gai_strerror(rc));
            ok = false;
            break;
        }
        for (ai = res; ai && ok; ai = ai->ai_next) {
            if (n_listeners >= HTTP_MAX_LISTENERS) {
                log_error("too many %s listen addresses", what);
                ok = false;
                break;
            }
            int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0)
                continue;
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (ai->ai_family == AF_INET6)
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
                log_error("could not listen on %s port %d for %s: %s", tok, port, what,
                          strerror(errno));
                close(fd);
                ok = false;
                break;
            }
            struct http_listener *l = &listeners[n_listeners++];
            l->fd = fd;
            l->serves = serves;
            ev_io_init(&l->io, http_accept_cb, fd, EV_READ);
        }
        freeaddrinfo(res);
    }
    free(list);
    return ok;
}

bool http_open(const struct config *cfg)
{
    bool shared = cfg->stats_listen_port && cfg->stats_listen_port == cfg->health_listen_port &&
                  strcmp(cfg->stats_listen_addr, cfg->health_listen_addr) == 0;
    if (cfg->stats_listen_port &&
        !http_listen(cfg->stats_listen_addr, cfg->stats_listen_port,
                     SERVES_METRICS | (shared ? SERVES_HEALTH : 0), "stats"))
        return false;
    if (cfg->health_listen_port && !shared &&
        !http_listen(cfg->health_listen_addr, cfg->health_listen_port, SERVES_HEALTH, "health"))
        return false;
    return true;
}

void http_start(void)
{
    if (n_listeners == 0)
        return;
    for (int i = 0; i < n_listeners; i++)
        ev_io_start(loop_main, &listeners[i].io);
    ev_timer_init(&http_timer, http_timer_cb, HTTP_TICK, HTTP_TICK);
    ev_timer_start(loop_main, &http_timer);
    health_start();
}

void http_stop(void)
{
    for (int i = 0; i < n_listeners; i++) {
        ev_io_stop(loop_main, &listeners[i].io);
        close(listeners[i].fd);
    }
    n_listeners = 0;
    while (!list_empty(&conns))
        conn_close(container_of(conns.next, struct http_conn, head));
    if (ev_is_active(&http_timer))
        ev_timer_stop(loop_main, &http_timer);
}

/*==== Metrics of the HTTP server itself ====*/

void http_render_metrics(struct textbuf *tb)
{
    textbuf_puts(tb, "# HELP pgmux_http_responses_total HTTP responses of the stats and health "
                     "listeners by status code.\n# TYPE pgmux_http_responses_total counter\n");
    for (size_t i = 0; i < N_CODES; i++)
        textbuf_printf(tb, "pgmux_http_responses_total{code=\"%d\"} %llu\n", counted_codes[i],
                       (unsigned long long)responses_by_code[i]);
    textbuf_puts(tb, "# HELP pgmux_http_connections HTTP connections open.\n"
                     "# TYPE pgmux_http_connections gauge\n");
    textbuf_printf(tb, "pgmux_http_connections %d\n", n_conns);
    textbuf_puts(tb, "# HELP pgmux_http_connections_closed_total HTTP connections pgmux closed "
                     "itself: timeout (header, idle or write deadline) or evicted (connection "
                     "limit).\n# TYPE pgmux_http_connections_closed_total counter\n");
    textbuf_printf(tb, "pgmux_http_connections_closed_total{reason=\"timeout\"} %llu\n",
                   (unsigned long long)conns_timed_out);
    textbuf_printf(tb, "pgmux_http_connections_closed_total{reason=\"evicted\"} %llu\n",
                   (unsigned long long)conns_evicted);
}
