/*
 * forwarder LISTEN_PORT PG_HOST PG_PORT: the floor for a pooler's CPU per transaction.
 * Each client accepted on 127.0.0.1:LISTEN_PORT gets its own TCP connection to PostgreSQL and
 * bytes are relayed both ways untouched: one thread, level-triggered epoll, one read and one
 * write per chunk; a side is not read while its peer has unsent bytes. No protocol, no pooling.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct side {
	int fd;
	unsigned ev;            /* events registered in epoll */
	char *out;              /* bytes not yet written to fd (or a marker while connecting) */
	size_t len, off;
	struct side *peer;
};

static int ep, ndead;
static struct side *dead[256];  /* pairs closed during this epoll batch, freed after it */
static struct sockaddr_in pg;
static char buf[256 * 1024];

static void want(struct side *s, unsigned ev, int op)
{
	struct epoll_event e = { .events = ev, .data.ptr = s };
	if ((ev != s->ev || op == EPOLL_CTL_ADD) && epoll_ctl(ep, op, s->fd, &e) == 0)
		s->ev = ev;
}
#define UPDATE(s) want(s, ((s)->peer->out ? 0 : EPOLLIN) | ((s)->out ? EPOLLOUT : 0), EPOLL_CTL_MOD)

static void drop(struct side *s)
{
	struct side *a = s < s->peer ? s : s->peer;     /* a pair is one allocation */
	for (int i = 0; i < 2; i++) {
		close(a[i].fd);
		a[i].fd = -1;
		free(a[i].out);
	}
	dead[ndead++] = a;
}

static void on_accept(int lfd)
{
	int one = 1, c, s;
	while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s < 0 || (connect(s, (struct sockaddr *)&pg, sizeof pg) < 0 && errno != EINPROGRESS)) {
			close(c);
			close(s);
			continue;
		}
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct side *p = calloc(2, sizeof *p);
		p[0] = (struct side){ .fd = c, .peer = &p[1] };
		p[1] = (struct side){ .fd = s, .peer = &p[0], .out = malloc(1) };  /* "connecting" */
		want(&p[0], 0, EPOLL_CTL_ADD);          /* client is read once the server is writable */
		want(&p[1], EPOLLOUT, EPOLL_CTL_ADD);
	}
}

static void on_event(struct side *s, unsigned ev)
{
	struct side *d = s->peer;
	if (s->fd < 0)
		return;
	if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && s->out) {
		ssize_t n = s->len > s->off ? write(s->fd, s->out + s->off, s->len - s->off) : 0;
		if (n < 0 && errno != EAGAIN) {
			drop(s);
			return;
		}
		s->off += n > 0 ? n : 0;
		if (s->off == s->len) {
			free(s->out);
			s->out = NULL;
			UPDATE(d);
		}
		UPDATE(s);
	}
	if (!(ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) || d->out)
		return;
	ssize_t n = read(s->fd, buf, sizeof buf), w;
	if (n <= 0) {
		if (n == 0 || errno != EAGAIN)
			drop(s);
		return;
	}
	if ((w = write(d->fd, buf, n)) < 0 && errno != EAGAIN) {
		drop(s);
		return;
	}
	if (w < n) {            /* keep the rest; stop reading s until d drains */
		w = w < 0 ? 0 : w;
		d->len = n - w;
		d->off = 0;
		memcpy(d->out = malloc(d->len), buf + w, d->len);
		UPDATE(d);
		UPDATE(s);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in la = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct epoll_event e = { .events = EPOLLIN }, evs[256];
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	if (argc != 4 || inet_pton(AF_INET, argv[2], &pg.sin_addr) != 1) {
		fprintf(stderr, "usage: %s LISTEN_PORT PG_IPV4_ADDR PG_PORT\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	pg.sin_family = AF_INET;
	pg.sin_port = htons(atoi(argv[3]));
	la.sin_port = htons(atoi(argv[1]));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(lfd, (struct sockaddr *)&la, sizeof la) < 0 || listen(lfd, 4096) < 0) {
		perror("bind/listen");
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);          /* data.ptr NULL = the listener */
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr)
				on_event(evs[i].data.ptr, evs[i].events);
			else
				on_accept(lfd);
		}
		while (ndead > 0)
			free(dead[--ndead]);
	}
}
