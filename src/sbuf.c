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
 * Resuming a paused socket is deferred to the loop's ev_prepare hook, so a
 * callback never re-enters another socket's processing while that socket is
 * still in the middle of its own.
 */
#include "sbuf.h"

#include "iobuf.h"
#include "loop.h"
#include "proto.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sbuf *cont_head, *cont_tail;

static void sbuf_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void sbuf_process(struct sbuf *sb);

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

bool sbuf_connect(struct sbuf *sb, const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    if (sa->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    }
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
}

void sbuf_skip(struct sbuf *sb, uint32_t total)
{
    sb->pkt_remain = total;
    sb->pkt_skip = 1;
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
    if (!sb->wait_send && !sb->connecting)
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
        if (!sb->closed && !sb->paused && !sb->wait_send && !sb->connecting)
            sbuf_process(sb);
    }
}

bool sbuf_answer(struct sbuf *sb, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (sb->fd < 0 || sb->closed)
        return false;
    while (len > 0) {
        ssize_t n = send(sb->fd, p, len, MSG_NOSIGNAL);
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

bool sbuf_is_empty(const struct sbuf *sb)
{
    return !sb->buf || sb->buf->recv_pos == sb->buf->done_pos;
}

bool sbuf_nothing_pending(const struct sbuf *sb)
{
    return !sb->buf || sb->buf->done_pos == sb->buf->parse_pos;
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
    if (sb->fd >= 0)
        close(sb->fd);
    sb->fd = -1;
    sb->closed = 1;
    sb->wait_send = 0;
    sb->connecting = 0;
    sb->pkt_remain = 0;
    sb->dst = NULL;
    sbuf_release_buf(sb);
    /* A queued continue is dropped when its turn comes (closed is set). */
}

/*
 * Send [done_pos, parse_pos) to the destination. True when all of it went;
 * false when the send blocked (the watcher now waits for the destination) or
 * failed (the owner was told and may have closed us).
 */
static bool sbuf_flush(struct sbuf *sb)
{
    struct iobuf *io = sb->buf;
    while (io->done_pos < io->parse_pos) {
        if (!sb->dst || sb->dst->closed) {
            /* Nobody to give the bytes to: the owner decided to drop them. */
            io->done_pos = io->parse_pos;
            break;
        }
        ssize_t n = send(sb->dst->fd, io->data + io->done_pos, io->parse_pos - io->done_pos,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                sb->wait_send = 1;
                sbuf_watch(sb, sb->dst->fd, EV_WRITE);
                return false;
            }
            sb->proto(sb, SBUF_EV_SEND_FAILED, NULL);
            return false;
        }
        io->done_pos += (uint32_t)n;
        if (io->done_pos < io->parse_pos) {
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

/* Fill hdr from the bytes at parse_pos. False when the header is incomplete. */
static bool sbuf_parse_header(struct sbuf *sb, struct iobuf *io, struct pkt_hdr *hdr)
{
    uint32_t avail = io->recv_pos - io->parse_pos;
    const uint8_t *p = io->data + io->parse_pos;
    uint32_t len;

    if (sb->startup) {
        if (avail < 4)
            return false;
        len = proto_get_u32(p);
        hdr->type = 0;
        hdr->len = len >= 4 ? len - 4 : 0;
        hdr->total = len >= 4 ? len : 0;
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
    if (hdr->complete)
        hdr->avail = hdr->total;
    return true;
}

static void sbuf_process(struct sbuf *sb)
{
    struct iobuf *io = sb->buf;
    bool need_more = false;

    while (io && io->parse_pos < io->recv_pos && !sb->paused) {
        uint32_t avail = io->recv_pos - io->parse_pos;
        if (sb->pkt_remain > 0) {
            uint32_t take = avail < sb->pkt_remain ? avail : sb->pkt_remain;
            if (sb->pkt_skip) {
                /* Bytes before the skipped ones must reach the peer first. */
                if (io->done_pos < io->parse_pos && !sbuf_flush(sb))
                    return;
                io->parse_pos += take;
                io->done_pos = io->parse_pos;
            } else {
                io->parse_pos += take;
            }
            sb->pkt_remain -= take;
            continue;
        }

        struct pkt_hdr hdr;
        if (!sbuf_parse_header(sb, io, &hdr)) {
            need_more = true;
            break;
        }
        enum sbuf_result res = sb->proto(sb, SBUF_EV_PKT, &hdr);
        if (sb->closed || res == SBUF_CLOSED)
            return;
        if (res == SBUF_NEED_MORE) {
            if (hdr.total == 0 || hdr.total > io->cap) {
                sb->proto(sb, SBUF_EV_PKT_TOO_BIG, &hdr);
                return;
            }
            need_more = true;
            break;
        }
        if (res == SBUF_PAUSE) {
            sbuf_pause(sb);
            break;
        }
        /* The owner may have swapped the buffer out (it never does today). */
        io = sb->buf;
    }

    if (!io)
        return;
    if (io->done_pos < io->parse_pos && !sbuf_flush(sb))
        return;
    if (sb->closed)
        return;
    if (io->done_pos == io->recv_pos) {
        /* Everything passed on: give the buffer back, an idle socket holds none. */
        sbuf_release_buf(sb);
        sb->proto(sb, SBUF_EV_FLUSH, NULL);
        return;
    }
    if (need_more || io->recv_pos == io->cap)
        iobuf_compact(io);
}

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
    if (io->recv_pos == io->cap)
        iobuf_compact(io);
    if (io->recv_pos == io->cap) {
        /* Full and nothing can be moved: a message that must be whole is too big. */
        sb->proto(sb, SBUF_EV_PKT_TOO_BIG, NULL);
        return;
    }
    ssize_t n;
    do {
        n = recv(sb->fd, io->data + io->recv_pos, io->cap - io->recv_pos, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (io->recv_pos == io->done_pos)
                sbuf_release_buf(sb);
            return;
        }
        if (n == 0)
            errno = 0;
        sb->proto(sb, SBUF_EV_RECV_FAILED, NULL);
        return;
    }
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
    if (sb->wait_send) {
        if (!sbuf_flush(sb) || sb->closed)
            return;
        /* Drained: carry on with whatever is still buffered. */
        sbuf_process(sb);
        return;
    }
    if (sb->paused) {
        sbuf_unwatch(sb);
        return;
    }
    sbuf_on_read(sb);
}
