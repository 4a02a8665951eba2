/* SPDX-License-Identifier: ISC */
/*
 * sbuf: one socket's byte stream. It owns the fd and one ev_io watcher, which
 * watches the own fd for reading or, while a forward is blocked, the
 * destination's fd for writing: backpressure without a second buffer. It cuts
 * the incoming bytes into protocol messages, asks its owner what to do with
 * each header (forward, skip, handle whole, pause), and forwards in place
 * from the buffer the bytes arrived in.
 *
 * TLS: a socket may carry an SSL object (sbuf_tls_start). Every read and
 * write then goes through OpenSSL instead of recv()/send(); the owner sees
 * the same events and messages either way. The handshake runs from the loop
 * and ends with SBUF_EV_TLS_READY or SBUF_EV_TLS_FAILED.
 */
#ifndef PGMUX_SBUF_H
#define PGMUX_SBUF_H

#include <stdbool.h>
#include <stdint.h>
#include <ev.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <openssl/ssl.h>

struct iobuf;
struct sbuf;

enum sbuf_event {
    SBUF_EV_PKT,          /* a message header is available */
    SBUF_EV_RECV_FAILED,  /* EOF or error on read */
    SBUF_EV_SEND_FAILED,  /* error writing to the destination */
    SBUF_EV_CONNECT_OK,
    SBUF_EV_CONNECT_FAILED,
    SBUF_EV_FLUSH,        /* everything forwarded, buffer empty */
    SBUF_EV_PKT_TOO_BIG,  /* a message that must be seen whole does not fit */
    SBUF_EV_TLS_READY,    /* the TLS handshake finished */
    SBUF_EV_TLS_FAILED,   /* the TLS handshake failed; errno (see sbuf_strerror) says why */
};

/* What the owner decided about a message. */
enum sbuf_result {
    SBUF_OK,        /* the owner called sbuf_forward/sbuf_skip */
    SBUF_NEED_MORE, /* wants the whole message in the buffer: read more */
    SBUF_PAUSE,     /* stop here and keep the bytes; sbuf_continue resumes */
    SBUF_CLOSED,    /* the owner closed the socket: touch nothing */
    SBUF_RETRY,     /* could not act until earlier output drains: call again later */
};

struct pkt_hdr {
    uint8_t type;       /* 0 for startup-phase packets, which have no type byte */
    uint32_t len;       /* body length, without the type byte and length word */
    uint32_t total;     /* whole message size on the wire */
    const uint8_t *data;/* message start (type byte, or length for startup) */
    uint32_t avail;     /* bytes of the message present at data */
    bool complete;      /* avail == total */
    bool collected;     /* too big for the iobuf: data is a heap copy, not in the stream */
};

typedef enum sbuf_result (*sbuf_proto_fn)(struct sbuf *sb, enum sbuf_event ev,
                                          struct pkt_hdr *hdr);

struct sbuf {
    ev_io io;            /* reading own fd, or writing dst's fd while wait_send */
    int fd;              /* owned; -1 when closed */
    struct iobuf *buf;   /* borrowed while bytes are in flight */
    struct sbuf *dst;    /* where forwarded bytes go; not owned */
    sbuf_proto_fn proto;
    uint32_t pkt_remain; /* bytes of the current message still to pass */
    uint8_t pkt_skip;    /* current message is being skipped, not forwarded */
    uint8_t startup;     /* SBUF_STARTUP: headers have no type byte (startup packets);
                          * SBUF_ONE_BYTE: the next message is one bare byte (SSLRequest answer) */
    uint8_t wait_send;   /* io is on dst->fd for EV_WRITE */
    uint8_t paused;      /* not reading: owner asked to pause */
    uint8_t connecting;  /* non-blocking connect in progress */
    uint8_t closed;
    uint8_t tls_io;      /* TLS_IO_*: the watcher serves a handshake step or a read that wants write */
    uint8_t tls_prebuf;  /* OpenSSL reads bytes received before the handshake first */
    uint8_t tls_fatal;   /* OpenSSL failed: no close_notify, no more SSL calls */
    SSL *ssl;            /* owned; NULL for plain TCP and Unix sockets */
    struct sbuf *next_cont; /* queue of sbufs to resume in the ev_prepare hook */
    uint8_t cont_queued;
    uint32_t pkt_then_forward; /* after the skipped part, forward this many bytes */
    /* Bytes pgmux inserts into the forwarded stream at inj_at (owned, heap). */
    uint8_t *inj;
    uint32_t inj_len, inj_sent, inj_cap, inj_at;
    /* A message larger than the iobuf, collected whole for its owner (owned, heap). */
    uint8_t *big;
    uint32_t big_len, big_have;
};

/* Values of sbuf.startup besides 0 (typed messages). */
#define SBUF_STARTUP 1
#define SBUF_ONE_BYTE 2

/* Resume every sbuf queued by sbuf_continue(); called from the ev_prepare hook. */
void sbuf_run_continues(void);

void sbuf_init(struct sbuf *sb, sbuf_proto_fn proto);

/* Take over an accepted fd and start reading. */
bool sbuf_accept(struct sbuf *sb, int fd) __attribute__((warn_unused_result));

/* Start a non-blocking connect; the result comes as CONNECT_OK/FAILED. */
struct config;

/*
 * The TCP options of cfg for a client or server socket: TCP_NODELAY,
 * keepalive (tcp_keepalive, tcp_keepidle, tcp_keepintvl, tcp_keepcnt),
 * tcp_user_timeout and tcp_socket_buffer. Not for Unix sockets.
 */
void sbuf_tune_tcp(int fd, const struct config *cfg);

/* cfg: whose TCP options a TCP socket gets (sbuf_tune_tcp). */
bool sbuf_connect(struct sbuf *sb, const struct sockaddr *sa, socklen_t len,
                  const struct config *cfg)
    __attribute__((warn_unused_result));

/* Decisions, called from the proto callback for the current message. */
void sbuf_forward(struct sbuf *sb, uint32_t total);
void sbuf_skip(struct sbuf *sb, uint32_t total);
/* Drop the first skip bytes of the message, then forward the next fwd bytes. */
void sbuf_skip_forward(struct sbuf *sb, uint32_t skip, uint32_t fwd);

/*
 * Insert bytes into the forwarded stream just before the current message.
 * Call sbuf_inject_ready() first in the callback: when it returns false an
 * earlier insertion is still unsent and the callback must return SBUF_RETRY.
 * A message collected whole (larger than the iobuf) is no longer in the
 * buffer: forwarding it means injecting it, which sbuf does by itself when
 * the owner calls sbuf_forward() on it.
 */
bool sbuf_inject_ready(struct sbuf *sb) __attribute__((warn_unused_result));
bool sbuf_inject(struct sbuf *sb, const void *data, size_t len) __attribute__((warn_unused_result));

/* Stop reading (keep buffered bytes) / resume and reprocess buffered bytes. */
void sbuf_pause(struct sbuf *sb);
void sbuf_continue(struct sbuf *sb);

/*
 * Send bytes pgmux made itself (errors, welcome, SET). They go straight to the
 * kernel: a socket whose send buffer is full gets false and is closed by the
 * caller, which is fine for the few hundred bytes these messages hold.
 */
bool sbuf_answer(struct sbuf *sb, const void *data, size_t len) __attribute__((warn_unused_result));

/* True when nothing is buffered (all received bytes were forwarded or skipped). */
/* (Also false while inserted bytes or a collected message wait.) */
bool sbuf_is_empty(const struct sbuf *sb);

/* True when no parsed bytes are waiting to be forwarded. */
bool sbuf_nothing_pending(const struct sbuf *sb);

/*
 * True while dst's peer has part of a message from sb and is owed the rest:
 * the current message is being forwarded (or will be, after a skipped
 * part), or forwarded bytes still wait to be sent. Then pgmux must neither
 * write a message of its own to that peer nor hand dst to another
 * connection: the rest would land inside someone else's message.
 */
bool sbuf_mid_message(const struct sbuf *sb);

/* Bytes received and not yet parsed, the current message included. */
uint32_t sbuf_unparsed(const struct sbuf *sb);

/*
 * Start TLS on the connected socket. accept: pgmux is the TLS server (a
 * client's connection), else the TLS client (towards PostgreSQL). With
 * take_buffered, the unparsed received bytes are the first TLS bytes (direct
 * TLS: the ClientHello was read as a startup packet): the owner's callback
 * must then return without forward/skip. Otherwise nothing may be buffered
 * (plaintext sent before the handshake is an attack; the caller refuses it).
 * Nothing happens before the caller returns to the loop, so it can still set
 * up the returned SSL (SNI); the result comes as SBUF_EV_TLS_READY or
 * SBUF_EV_TLS_FAILED. NULL when the SSL object could not be made.
 */
SSL *sbuf_tls_start(struct sbuf *sb, SSL_CTX *ctx, bool accept, bool take_buffered)
    __attribute__((warn_unused_result));

/* strerror(), or what OpenSSL said for the last TLS failure (errno EPROTO). */
const char *sbuf_strerror(int err);

/*
 * A non-blocking write of the owner's own queued output (the admin console),
 * through TLS when the socket has it: bytes taken, or -1 with errno (EAGAIN:
 * retry when the socket is writable, with the same bytes for TLS).
 */
ssize_t sbuf_write(struct sbuf *sb, const void *data, size_t len);

/* SHOW CLIENTS/SERVERS tls column: "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519", or "". */
void sbuf_tls_info(const struct sbuf *sb, char *buf, size_t len);

/* Stop the watcher, close the fd, give back the buffer (and free the SSL object). */
void sbuf_close(struct sbuf *sb);

#endif
