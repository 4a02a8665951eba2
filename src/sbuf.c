/* SPDX-License-Identifier: ISC */
/*
 * sbuf: one socket's byte stream (see sbuf.h for the contract).
 *
 * The read path is: recv into the borrowed iobuf, cut messages, ask the owner
 * about each header, then send the parsed region [done_pos, parse_pos) to the
 * destination in one send(). When that send would block, the watcher moves
 * from "own fd readable" to "destination writable": the source stops reading
 * until the destination drains, so a slow reader makes the kernel apply
 * backpressure to the sender instead of pgmux buffering without bound.
 *
 * Two detours exist for the few messages pgmux must rewrite (prepared
 * statements): bytes can be inserted into the forwarded stream at one point
 * (inj/inj_at: sent with writev between the bytes before and after that
 * point, so order is kept), and a message larger than the iobuf can be
 * collected whole into a heap buffer (big) for its owner to look at.
 *
 * Resuming a paused socket is deferred to the loop's ev_prepare hook, so a
 * callback never re-enters another socket's processing while that socket is
 * still in the middle of its own.
 *
 * TLS: all socket I/O goes through two pairs of small functions, raw
 * (recv/send, unchanged: no extra syscall or copy) and TLS (SSL_read/
 * SSL_write). Differences the callers handle: OpenSSL may hold decrypted
 * bytes of a record that did not fit our buffer, which libev cannot report,
 * so they are drained whenever the socket is in a state to read
 * (sbuf_tls_drain); SSL_read may need the socket writable and SSL_write may
 * need it readable (the watcher is armed for what OpenSSL asked); a
 * partial-write SSL_write takes at most one record, so a short write does
 * not mean a full socket. A retried SSL_write gets the same bytes again:
 * nothing moves done_pos until it succeeds. The handshake is one more
 * watcher state (tls_io). Bytes received before a direct-TLS handshake (the
 * ClientHello, read as if it were a startup packet) are given to OpenSSL
 * through a memory BIO, replaced by the socket once it is empty.
 */
#include "sbuf.h"

#include "config.h"
#include "iobuf.h"
#include "loop.h"
#include "proto.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>

/* Injection buffers above this size are given back once sent. */
#define SBUF_INJ_KEEP 8192

/* sbuf.tls_io: what the watcher on the own fd is for, besides reading. */
#define TLS_IO_HANDSHAKE        1
#define TLS_IO_READ_WANTS_WRITE 2

/* Reads per drain of OpenSSL's decrypted bytes; a record (16 KiB) needs far fewer. */
#define TLS_DRAIN_MAX 64

static struct sbuf *cont_head, *cont_tail;

/* Why the last TLS call failed (errno is EPROTO then); one loop, one at a time. */
static char tls_err[256];
/* What the last SSL_write that would block waits for: EV_READ or EV_WRITE. */
static int tls_want_ev;

static void sbuf_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void sbuf_process(struct sbuf *sb);
static void sbuf_on_read(struct sbuf *sb);

/*==== Watcher ====*/

/* Point the one watcher at fd/events, touching libev only when it changes. */
static void sbuf_watch(struct sbuf *sb, int fd, int events)
{
    if (ev_is_active(&sb->io)) {
        if (sb->io.fd == fd && (sb->io.events & (EV_READ | EV_WRITE)) == events)
            return;
        ev_io_stop(loop_main, &sb->io);
    }
    if (fd < 0 || !events)
        return;
    ev_io_set(&sb->io, fd, events);
    ev_io_start(loop_main, &sb->io);
}

static void sbuf_unwatch(struct sbuf *sb)
{
    if (ev_is_active(&sb->io))
        ev_io_stop(loop_main, &sb->io);
}

static bool inj_pending(const struct sbuf *sb)
{
    return sb->inj_sent < sb->inj_len;
}

/*==== TLS operations ====*/

/* Keep OpenSSL's reason for sbuf_strerror(); no SSL call may follow on this socket. */
static void tls_failed(struct sbuf *sb, int ret)
{
    tls_error_string(sb->ssl, ret, tls_err, sizeof(tls_err));
    sb->tls_fatal = 1;
    errno = EPROTO;
}

/* SSL_read: bytes, 0 at EOF (errno 0), or -1 with errno (EAGAIN: later). */
static ssize_t sbuf_tls_recv(struct sbuf *sb, void *buf, size_t len)
{
    int n;
    ERR_clear_error();
    n = SSL_read(sb->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0)
        return n;
    switch (SSL_get_error(sb->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        /* OpenSSL must send something first and the socket is full. */
        sb->tls_io = TLS_IO_READ_WANTS_WRITE;
        sbuf_watch(sb, sb->fd, EV_WRITE);
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        sb->tls_fatal = 1; /* close_notify seen: nothing more to say */
        errno = 0;
        return 0;
    case SSL_ERROR_SSL:
        if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            /* TCP closed without close_notify: for us an EOF like any other. */
            ERR_clear_error();
            sb->tls_fatal = 1;
            errno = 0;
            return 0;
        }
        break;
    default:
        break;
    }
    tls_failed(sb, n);
    return -1;
}

/*
 * SSL_write on sb: bytes taken (at most one record: partial writes are on),
 * or -1 with errno; EAGAIN sets tls_want_ev, and the retry must offer the
 * same bytes again.
 */
static ssize_t sbuf_tls_send(struct sbuf *sb, const void *buf, size_t len)
{
    int n;
    if (sb->tls_fatal) {
        errno = EPIPE;
        return -1;
    }
    ERR_clear_error();
    n = SSL_write(sb->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0)
        return n;
    switch (SSL_get_error(sb->ssl, n)) {
    case SSL_ERROR_WANT_WRITE:
        tls_want_ev = EV_WRITE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_READ:
        tls_want_ev = EV_READ;
        errno = EAGAIN;
        return -1;
    default:
        tls_failed(sb, n);
        return -1;
    }
}

/* After the memory BIO with the early bytes ran dry, OpenSSL reads the socket. */
static bool sbuf_tls_socket_rbio(struct sbuf *sb)
{
    BIO *b = BIO_new_socket(sb->fd, BIO_NOCLOSE);
    if (!b)
        return false;
    SSL_set0_rbio(sb->ssl, b); /* frees the memory BIO */
    sb->tls_prebuf = 0;
    return true;
}

/*
 * OpenSSL may hold decrypted bytes of a record that did not fit the buffer.
 * The kernel has nothing more to report, so libev will not wake us: read
 * them now, as long as the socket is in a state to read. A record is at most
 * 16 KiB, so this ends quickly; the bound only guards against an owner that
 * stops consuming without pausing.
 */
static void sbuf_tls_drain(struct sbuf *sb)
{
    for (int i = 0; i < TLS_DRAIN_MAX; i++) {
        if (sb->closed || !sb->ssl || sb->paused || sb->wait_send || sb->connecting || sb->tls_io ||
            sb->tls_fatal || SSL_pending(sb->ssl) <= 0)
            return;
        sbuf_on_read(sb);
    }
}

/* One step of the handshake, from the loop. */
static void sbuf_tls_handshake(struct sbuf *sb)
{
    for (;;) {
        int r;
        ERR_clear_error();
        r = SSL_do_handshake(sb->ssl);
        if (r == 1)
            break;
        int e = SSL_get_error(sb->ssl, r);
        if (e == SSL_ERROR_WANT_READ) {
            if (sb->tls_prebuf) {
                if (!sbuf_tls_socket_rbio(sb)) {
                    snprintf(tls_err, sizeof(tls_err), "out of memory");
                    sb->tls_fatal = 1;
                    errno = EPROTO;
                    goto failed;
                }
                continue;
            }
            sbuf_watch(sb, sb->fd, EV_READ);
            return;
        }
        if (e == SSL_ERROR_WANT_WRITE) {
            sbuf_watch(sb, sb->fd, EV_WRITE);
            return;
        }
        tls_failed(sb, r);
        goto failed;
    }
    if (sb->tls_prebuf) {
        /* The client sent more than its ClientHello before our answer. */
        snprintf(tls_err, sizeof(tls_err), "unexpected data during the TLS handshake");
        sb->tls_fatal = 1;
        errno = EPROTO;
        goto failed;
    }
    sb->tls_io = 0;
    sbuf_watch(sb, sb->fd, EV_READ);
    if (sb->proto(sb, SBUF_EV_TLS_READY, NULL) == SBUF_CLOSED || sb->closed)
        return;
    sbuf_tls_drain(sb);
    return;
failed:
    sbuf_unwatch(sb);
    sb->proto(sb, SBUF_EV_TLS_FAILED, NULL);
}

/*==== Public functions ====*/

void sbuf_init(struct sbuf *sb, sbuf_proto_fn proto)
{
    memset(sb, 0, sizeof(*sb));
    ev_init(&sb->io, sbuf_io_cb);
    sb->fd = -1;
    sb->proto = proto;
}

bool sbuf_accept(struct sbuf *sb, int fd)
{
    sb->fd = fd;
    sb->closed = 0;
    sbuf_watch(sb, fd, EV_READ);
    return true;
}

void sbuf_tune_tcp(int fd, const struct config *cfg)
{
    int one = 1;
    /* Failures leave the system defaults, which still work: nothing to report per socket. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cfg->tcp_keepalive) {
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        if (cfg->tcp_keepidle > 0)
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &cfg->tcp_keepidle, sizeof(int));
        if (cfg->tcp_keepintvl > 0)
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &cfg->tcp_keepintvl, sizeof(int));
        if (cfg->tcp_keepcnt > 0)
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cfg->tcp_keepcnt, sizeof(int));
    }
    if (cfg->tcp_user_timeout > 0)
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &cfg->tcp_user_timeout, sizeof(int));
    if (cfg->tcp_socket_buffer > 0) {
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cfg->tcp_socket_buffer, sizeof(int));
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &cfg->tcp_socket_buffer, sizeof(int));
    }
}

bool sbuf_connect(struct sbuf *sb, const struct sockaddr *sa, socklen_t len,
                  const struct config *cfg)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    if (sa->sa_family != AF_UNIX)
        sbuf_tune_tcp(fd, cfg);
    if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return false;
    }
    sb->fd = fd;
    sb->closed = 0;
    sb->connecting = 1;
    /* Completion, even an immediate one, is reported from the loop. */
    sbuf_watch(sb, fd, EV_WRITE);
    return true;
}

void sbuf_forward(struct sbuf *sb, uint32_t total)
{
    sb->pkt_remain = total;
    sb->pkt_skip = 0;
    sb->pkt_then_forward = 0;
}

void sbuf_skip(struct sbuf *sb, uint32_t total)
{
    sb->pkt_remain = total;
    sb->pkt_skip = 1;
    sb->pkt_then_forward = 0;
}

void sbuf_skip_forward(struct sbuf *sb, uint32_t skip, uint32_t fwd)
{
    sb->pkt_remain = skip;
    sb->pkt_skip = 1;
    sb->pkt_then_forward = fwd;
}

void sbuf_pause(struct sbuf *sb)
{
    /* The watcher stays armed: a paused client usually has nothing more to
     * send, and leaving it saves two epoll_ctl calls per wait. If bytes do
     * arrive while paused, sbuf_io_cb disarms it then (lazy pause). */
    sb->paused = 1;
}

void sbuf_continue(struct sbuf *sb)
{
    if (sb->closed)
        return;
    sb->paused = 0;
    if (!sb->wait_send && !sb->connecting && !sb->tls_io)
        sbuf_watch(sb, sb->fd, EV_READ);
    if (sb->cont_queued)
        return;
    sb->cont_queued = 1;
    sb->next_cont = NULL;
    if (cont_tail)
        cont_tail->next_cont = sb;
    else
        cont_head = sb;
    cont_tail = sb;
}

void sbuf_run_continues(void)
{
    while (cont_head) {
        struct sbuf *sb = cont_head;
        cont_head = sb->next_cont;
        if (!cont_head)
            cont_tail = NULL;
        sb->cont_queued = 0;
        sb->next_cont = NULL;
        if (!sb->closed && !sb->paused && !sb->wait_send && !sb->connecting) {
            sbuf_process(sb);
            if (sb->ssl)
                sbuf_tls_drain(sb);
        }
    }
}

bool sbuf_answer(struct sbuf *sb, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (sb->fd < 0 || sb->closed)
        return false;
    while (len > 0) {
        ssize_t n = sb->ssl ? sbuf_tls_send(sb, p, len) : send(sb->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

ssize_t sbuf_write(struct sbuf *sb, const void *data, size_t len)
{
    if (sb->fd < 0 || sb->closed) {
        errno = EBADF;
        return -1;
    }
    if (sb->ssl)
        return sbuf_tls_send(sb, data, len);
    return send(sb->fd, data, len, MSG_NOSIGNAL);
}

uint32_t sbuf_unparsed(const struct sbuf *sb)
{
    return sb->buf ? sb->buf->recv_pos - sb->buf->parse_pos : 0;
}

const char *sbuf_strerror(int err)
{
    if (err == EPROTO && tls_err[0])
        return tls_err;
    return strerror(err);
}

void sbuf_tls_info(const struct sbuf *sb, char *buf, size_t len)
{
    if (len == 0)
        return;
    buf[0] = '\0';
    if (sb->ssl && SSL_is_init_finished(sb->ssl))
        tls_info(sb->ssl, buf, len);
}

SSL *sbuf_tls_start(struct sbuf *sb, SSL_CTX *ctx, bool accept, bool take_buffered)
{
    uint32_t have = take_buffered ? sbuf_unparsed(sb) : 0;
    BIO *mem = NULL, *sock = NULL;
    SSL *ssl;

    if (sb->ssl || sb->fd < 0 || sb->closed || !ctx)
        return NULL;
    ERR_clear_error();
    ssl = SSL_new(ctx);
    if (!ssl)
        goto failed;
    if (have == 0) {
        if (SSL_set_fd(ssl, sb->fd) != 1)
            goto failed;
    } else {
        mem = BIO_new(BIO_s_mem());
        sock = BIO_new_socket(sb->fd, BIO_NOCLOSE);
        if (!mem || !sock ||
            BIO_write(mem, sb->buf->data + sb->buf->parse_pos, (int)have) != (int)have)
            goto failed;
        BIO_set_mem_eof_return(mem, -1); /* empty = "retry", not EOF */
        SSL_set0_rbio(ssl, mem);
        SSL_set0_wbio(ssl, sock);
        mem = sock = NULL;
        /* Those bytes are OpenSSL's now. */
        sb->buf->recv_pos = sb->buf->parse_pos;
        sb->tls_prebuf = 1;
    }
    if (accept)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
    sb->ssl = ssl;
    sb->tls_io = TLS_IO_HANDSHAKE;
    sb->tls_fatal = 0;
    /* The first step runs from the loop: the socket is writable at once. */
    sbuf_watch(sb, sb->fd, EV_WRITE);
    return ssl;
failed:
    BIO_free(mem);
    BIO_free(sock);
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

bool sbuf_is_empty(const struct sbuf *sb)
{
    return (!sb->buf || sb->buf->recv_pos == sb->buf->done_pos) && !inj_pending(sb) && !sb->big;
}

bool sbuf_nothing_pending(const struct sbuf *sb)
{
    return (!sb->buf || sb->buf->done_pos == sb->buf->parse_pos) && !inj_pending(sb);
}

bool sbuf_mid_message(const struct sbuf *sb)
{
    bool forwarding = sb->pkt_remain > 0 && (!sb->pkt_skip || sb->pkt_then_forward > 0);
    return forwarding || !sbuf_nothing_pending(sb) || sb->wait_send;
}

static void sbuf_release_buf(struct sbuf *sb)
{
    if (sb->buf) {
        iobuf_put(sb->buf);
        sb->buf = NULL;
    }
}

void sbuf_close(struct sbuf *sb)
{
    sbuf_unwatch(sb);
    if (sb->ssl) {
        if (!sb->tls_fatal && sb->fd >= 0 && SSL_is_init_finished(sb->ssl)) {
            /* One close_notify, best effort: the socket is non-blocking. */
            ERR_clear_error();
            SSL_shutdown(sb->ssl);
        }
        ERR_clear_error();
        SSL_free(sb->ssl);
        sb->ssl = NULL;
    }
    sb->tls_io = sb->tls_prebuf = sb->tls_fatal = 0;
    if (sb->fd >= 0)
        close(sb->fd);
    sb->fd = -1;
    sb->closed = 1;
    sb->wait_send = 0;
    sb->connecting = 0;
    sb->pkt_remain = 0;
    sb->pkt_then_forward = 0;
    sb->dst = NULL;
    sbuf_release_buf(sb);
    free(sb->inj);
    sb->inj = NULL;
    sb->inj_len = sb->inj_sent = sb->inj_cap = sb->inj_at = 0;
    free(sb->big);
    sb->big = NULL;
    sb->big_len = sb->big_have = 0;
    /* A queued continue is dropped when its turn comes (closed is set). */
}

/*==== Sending ====*/

/*
 * Send what is owed to the destination: [done_pos, parse_pos) with any
 * inserted bytes at inj_at, in one writev. True when all of it went; false
 * when the send blocked (the watcher now waits for the destination) or
 * failed (the owner was told and may have closed us).
 */
static bool sbuf_flush(struct sbuf *sb)
{
    struct iobuf *io = sb->buf;
    for (;;) {
        uint32_t done = io ? io->done_pos : 0;
        uint32_t parse = io ? io->parse_pos : 0;
        bool injp = inj_pending(sb);
        struct iovec iov[3];
        int n = 0;
        size_t total = 0;

        if (injp) {
            if (done < sb->inj_at) {
                iov[n].iov_base = io->data + done;
                iov[n++].iov_len = sb->inj_at - done;
            }
            iov[n].iov_base = sb->inj + sb->inj_sent;
            iov[n++].iov_len = sb->inj_len - sb->inj_sent;
            if (sb->inj_at < parse) {
                iov[n].iov_base = io->data + sb->inj_at;
                iov[n++].iov_len = parse - sb->inj_at;
            }
        } else if (done < parse) {
            iov[n].iov_base = io->data + done;
            iov[n++].iov_len = parse - done;
        }
        if (n == 0)
            break;
        for (int i = 0; i < n; i++)
            total += iov[i].iov_len;

        if (!sb->dst || sb->dst->closed) {
            /* Nobody to give the bytes to: the owner decided to drop them. */
            if (io)
                io->done_pos = io->parse_pos;
            sb->inj_len = sb->inj_sent = 0;
            break;
        }
        ssize_t r;
        if (sb->dst->ssl) {
            /* One region per SSL_write, at most a record each: a short write
             * does not mean a full socket, so the loop goes on. */
            r = sbuf_tls_send(sb->dst, iov[0].iov_base, iov[0].iov_len);
            if (r > 0)
                total = (size_t)r;
        } else if (n == 1) {
            /* The common case: plain send() is cheaper than sendmsg(). */
            r = send(sb->dst->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
        } else {
            struct msghdr mh;
            memset(&mh, 0, sizeof(mh));
            mh.msg_iov = iov;
            mh.msg_iovlen = (size_t)n;
            r = sendmsg(sb->dst->fd, &mh, MSG_NOSIGNAL);
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                sb->wait_send = 1;
                sbuf_watch(sb, sb->dst->fd, sb->dst->ssl ? tls_want_ev : EV_WRITE);
                return false;
            }
            sb->proto(sb, SBUF_EV_SEND_FAILED, NULL);
            return false;
        }
        size_t left = (size_t)r;
        if (injp) {
            size_t k = done < sb->inj_at ? sb->inj_at - done : 0;
            if (k > left)
                k = left;
            io->done_pos += (uint32_t)k;
            left -= k;
            k = sb->inj_len - sb->inj_sent;
            if (k > left)
                k = left;
            sb->inj_sent += (uint32_t)k;
            left -= k;
            if (sb->inj_sent == sb->inj_len) {
                sb->inj_len = sb->inj_sent = 0;
                if (sb->inj_cap > SBUF_INJ_KEEP) {
                    free(sb->inj);
                    sb->inj = NULL;
                    sb->inj_cap = 0;
                }
            }
        }
        if (io)
            io->done_pos += (uint32_t)left;
        if ((size_t)r < total) {
            sb->wait_send = 1;
            sbuf_watch(sb, sb->dst->fd, EV_WRITE);
            return false;
        }
    }
    if (sb->wait_send) {
        sb->wait_send = 0;
        sbuf_watch(sb, sb->fd, EV_READ);
    }
    return true;
}

bool sbuf_inject_ready(struct sbuf *sb)
{
    uint32_t here = sb->buf ? sb->buf->parse_pos : 0;
    if (!inj_pending(sb) || sb->inj_at == here)
        return true;
    /* An earlier insertion sits at another point: send it on its way first. */
    return sbuf_flush(sb) && !sb->closed;
}

bool sbuf_inject(struct sbuf *sb, const void *data, size_t len)
{
    uint32_t here = sb->buf ? sb->buf->parse_pos : 0;
    if (inj_pending(sb) && sb->inj_at != here)
        return false;
    if (!inj_pending(sb)) {
        sb->inj_len = sb->inj_sent = 0;
        sb->inj_at = here;
    }
    if ((size_t)sb->inj_len + len > UINT32_MAX / 2)
        return false;
    if (sb->inj_len + len > sb->inj_cap) {
        size_t ncap = sb->inj_cap ? sb->inj_cap : 256;
        while (ncap < sb->inj_len + len)
            ncap *= 2;
        uint8_t *n = realloc(sb->inj, ncap);
        if (!n)
            return false;
        sb->inj = n;
        sb->inj_cap = (uint32_t)ncap;
    }
    memcpy(sb->inj + sb->inj_len, data, len);
    sb->inj_len += (uint32_t)len;
    return true;
}

/*==== Parsing ====*/

/* Move unparsed bytes to the front when nothing before them is owed. */
static void sbuf_compact(struct sbuf *sb)
{
    struct iobuf *io = sb->buf;
    uint32_t shift = io->parse_pos;
    if (io->done_pos != io->parse_pos || shift == 0)
        return;
    iobuf_compact(io);
    if (inj_pending(sb))
        sb->inj_at -= shift; /* it sat at parse_pos, which is now 0 */
}

/* Fill hdr from the bytes at parse_pos. False when the header is incomplete. */
static bool sbuf_parse_header(struct sbuf *sb, const uint8_t *p, uint32_t avail,
                              struct pkt_hdr *hdr)
{
    uint32_t len;
    if (sb->startup) {
        if (sb->startup == SBUF_ONE_BYTE) {
            /* The answer to SSLRequest: one byte, no header. */
            hdr->type = p[0];
            hdr->len = 0;
            hdr->total = 1;
            hdr->data = p;
            hdr->avail = 1;
            hdr->complete = true;
            hdr->collected = false;
            return true;
        }
        if (avail < 4)
            return false;
        len = proto_get_u32(p);
        hdr->type = 0;
        hdr->len = len >= 4 ? len - 4 : 0;
        hdr->total = (len >= 4 && len < 0x7fffffffU) ? len : 0;
    } else {
        if (avail < 5)
            return false;
        len = proto_get_u32(p + 1);
        hdr->type = p[0];
        hdr->len = len >= 4 ? len - 4 : 0;
        /* A length below 4, or one that overflows, is reported as total 0. */
        hdr->total = (len >= 4 && len < 0x7fffffffU) ? len + 1 : 0;
    }
    hdr->data = p;
    hdr->avail = avail;
    hdr->complete = hdr->total && avail >= hdr->total;
    hdr->collected = false;
    if (hdr->complete)
        hdr->avail = hdr->total;
    return true;
}

/* Start collecting the message at parse_pos, which does not fit the iobuf. */
static bool sbuf_start_big(struct sbuf *sb, uint32_t total)
{
    struct iobuf *io = sb->buf;
    uint32_t have = io->recv_pos - io->parse_pos;
    sb->big = malloc(total);
    if (!sb->big)
        return false;
    memcpy(sb->big, io->data + io->parse_pos, have);
    sb->big_len = total;
    sb->big_have = have;
    /* Those bytes now live in big: the iobuf ends where the message began. */
    io->recv_pos = io->parse_pos;
    return true;
}

/* The collected message is complete: hand it to the owner. False = stop processing. */
static bool sbuf_process_big(struct sbuf *sb)
{
    struct pkt_hdr hdr;
    sbuf_parse_header(sb, sb->big, sb->big_len, &hdr);
    hdr.collected = true;
    enum sbuf_result res = sb->proto(sb, SBUF_EV_PKT, &hdr);
    if (sb->closed || res == SBUF_CLOSED)
        return false;
    if (res == SBUF_PAUSE) {
        sbuf_pause(sb);
        return false;
    }
    if (res == SBUF_RETRY)
        return false;
    if (res == SBUF_NEED_MORE) {
        sb->proto(sb, SBUF_EV_PKT_TOO_BIG, &hdr);
        return false;
    }
    /* Forwarding a message that left the iobuf means inserting it. */
    if (!sb->pkt_skip && sb->pkt_remain == sb->big_len) {
        if (!sbuf_inject_ready(sb))
            return false;
        if (!sbuf_inject(sb, sb->big, sb->big_len)) {
            sb->proto(sb, SBUF_EV_PKT_TOO_BIG, &hdr);
            return false;
        }
    }
    sb->pkt_remain = 0;
    sb->pkt_skip = 0;
    sb->pkt_then_forward = 0;
    free(sb->big);
    sb->big = NULL;
    sb->big_len = sb->big_have = 0;
    return true;
}

static void sbuf_process(struct sbuf *sb)
{
    struct iobuf *io = sb->buf;
    bool need_more = false;

    if (sb->big) {
        if (sb->big_have < sb->big_len || !sbuf_process_big(sb))
            goto flush;
        io = sb->buf;
    }

    while (io && io->parse_pos < io->recv_pos && !sb->paused) {
        uint32_t avail = io->recv_pos - io->parse_pos;
        if (sb->pkt_remain > 0) {
            uint32_t take = avail < sb->pkt_remain ? avail : sb->pkt_remain;
            if (sb->pkt_skip) {
                /* Bytes before the skipped ones must reach the peer first. */
                if (!sbuf_nothing_pending(sb) && !sbuf_flush(sb))
                    return;
                if (sb->closed)
                    return;
                io->parse_pos += take;
                io->done_pos = io->parse_pos;
            } else {
                io->parse_pos += take;
            }
            sb->pkt_remain -= take;
            if (sb->pkt_remain == 0 && sb->pkt_then_forward) {
                sb->pkt_remain = sb->pkt_then_forward;
                sb->pkt_skip = 0;
                sb->pkt_then_forward = 0;
            }
            continue;
        }

        struct pkt_hdr hdr;
        if (!sbuf_parse_header(sb, io->data + io->parse_pos, avail, &hdr)) {
            need_more = true;
            break;
        }
        enum sbuf_result res = sb->proto(sb, SBUF_EV_PKT, &hdr);
        if (sb->closed || res == SBUF_CLOSED)
            return;
        if (res == SBUF_NEED_MORE) {
            if (hdr.total == 0) {
                sb->proto(sb, SBUF_EV_PKT_TOO_BIG, &hdr);
                return;
            }
            if (hdr.total > io->cap) {
                if (!sbuf_start_big(sb, hdr.total)) {
                    sb->proto(sb, SBUF_EV_PKT_TOO_BIG, &hdr);
                    return;
                }
                break;
            }
            need_more = true;
            break;
        }
        if (res == SBUF_PAUSE) {
            sbuf_pause(sb);
            break;
        }
        if (res == SBUF_RETRY)
            return; /* a flush is waiting for the destination; we come back here */
        io = sb->buf;
    }

flush:
    if (!sbuf_nothing_pending(sb) && !sbuf_flush(sb))
        return;
    if (sb->closed)
        return;
    io = sb->buf;
    if (!io)
        return;
    if (io->done_pos == io->recv_pos && !sb->big) {
        /* Everything passed on: give the buffer back, an idle socket holds none. */
        sbuf_release_buf(sb);
        sb->proto(sb, SBUF_EV_FLUSH, NULL);
        return;
    }
    if (need_more || io->recv_pos == io->cap)
        sbuf_compact(sb);
}

/*==== Events ====*/

static void sbuf_on_connect(struct sbuf *sb)
{
    int err = 0;
    socklen_t len = sizeof(err);
    sb->connecting = 0;
    if (getsockopt(sb->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        errno = err;
        sbuf_unwatch(sb);
        sb->proto(sb, SBUF_EV_CONNECT_FAILED, NULL);
        return;
    }
    sbuf_watch(sb, sb->fd, EV_READ);
    sb->proto(sb, SBUF_EV_CONNECT_OK, NULL);
}

static void sbuf_on_read(struct sbuf *sb)
{
    uint8_t *dst;
    size_t room;

    if (!sb->buf) {
        sb->buf = iobuf_get();
        if (!sb->buf) {
            /* Out of memory closes this one connection, nothing else. */
            errno = ENOMEM;
            sb->proto(sb, SBUF_EV_RECV_FAILED, NULL);
            return;
        }
    }
    struct iobuf *io = sb->buf;
    if (sb->big && sb->big_have < sb->big_len) {
        /* Collecting a large message: read exactly its remaining bytes. */
        dst = sb->big + sb->big_have;
        room = sb->big_len - sb->big_have;
    } else {
        if (io->recv_pos == io->cap)
            sbuf_compact(sb);
        if (io->recv_pos == io->cap) {
            /* Full of bytes not yet looked at (we were resumed but the
             * deferred processing has not run): process them first; a
             * message wanted whole moves to a heap buffer there. */
            sbuf_process(sb);
            return;
        }
        dst = io->data + io->recv_pos;
        room = io->cap - io->recv_pos;
    }
    ssize_t n;
    if (!sb->ssl) {
        do {
            n = recv(sb->fd, dst, room, 0);
        } while (n < 0 && errno == EINTR);
    } else {
        n = sbuf_tls_recv(sb, dst, room);
    }
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (sbuf_is_empty(sb))
                sbuf_release_buf(sb);
            return;
        }
        if (n == 0)
            errno = 0;
        sb->proto(sb, SBUF_EV_RECV_FAILED, NULL);
        return;
    }
    if (sb->big && sb->big_have < sb->big_len)
        sb->big_have += (uint32_t)n;
    else
        io->recv_pos += (uint32_t)n;
    sbuf_process(sb);
}

static void sbuf_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sbuf *sb = (struct sbuf *)((char *)w - offsetof(struct sbuf, io));
    (void)loop;
    (void)revents;

    if (sb->connecting) {
        sbuf_on_connect(sb);
        return;
    }
    if (sb->tls_io) {
        if (sb->tls_io == TLS_IO_HANDSHAKE) {
            sbuf_tls_handshake(sb);
            return;
        }
        if (!sb->wait_send) {
            /* A read that needed the socket writable: it is now, read again. */
            sb->tls_io = 0;
            sbuf_watch(sb, sb->fd, EV_READ);
        }
    }
    if (sb->wait_send) {
        if (!sbuf_flush(sb) || sb->closed)
            return;
        /* Drained: carry on with whatever is still buffered. */
        sbuf_process(sb);
        if (sb->ssl)
            sbuf_tls_drain(sb);
        return;
    }
    if (sb->paused) {
        sbuf_unwatch(sb);
        return;
    }
    sbuf_on_read(sb);
    if (sb->ssl)
        sbuf_tls_drain(sb);
}
