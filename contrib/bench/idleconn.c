/*
 * idleconn CONNINFO N READY_FILE [HOLD_SECONDS]
 *
 * Opens N logged-in libpq connections (at most 64 handshakes in flight, non-blocking), writes
 * "connected=X failed=Y seconds=Z" to READY_FILE, then holds them open and idle until SIGTERM or
 * HOLD_SECONDS (default 120) pass. Used by run.sh to measure a pooler's RSS per idle client.
 * Gives up connecting after 300 s; handshakes still in flight then count as failed.
 */
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define INFLIGHT 64

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s CONNINFO N READY_FILE [HOLD_SECONDS]\n", argv[0]);
		return 2;
	}
	int n = atoi(argv[2]), hold = argc > 4 ? atoi(argv[4]) : 120;
	int started = 0, ok = 0, failed = 0, nfl = 0;
	PGconn **keep = calloc(n, sizeof *keep), *fl[INFLIGHT];
	PostgresPollingStatusType st[INFLIGHT];
	struct pollfd pfd[INFLIGHT];
	double t0 = now();

	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	while ((started < n || nfl > 0) && !stop && now() - t0 < 300) {
		while (started < n && nfl < INFLIGHT) {
			PGconn *c = PQconnectStart(argv[1]);
			started++;
			if (!c || PQstatus(c) == CONNECTION_BAD) {
				if (failed++ == 0)
					fprintf(stderr, "idleconn: %s", c ? PQerrorMessage(c) : "out of memory\n");
				PQfinish(c);
				continue;
			}
			fl[nfl] = c;
			st[nfl++] = PGRES_POLLING_WRITING;
		}
		for (int i = 0; i < nfl; i++) {
			pfd[i].fd = PQsocket(fl[i]);
			pfd[i].events = st[i] == PGRES_POLLING_READING ? POLLIN : POLLOUT;
		}
		if (nfl == 0 || poll(pfd, nfl, 1000) <= 0)
			continue;
		for (int i = nfl - 1; i >= 0; i--) {
			if (!pfd[i].revents)
				continue;
			st[i] = PQconnectPoll(fl[i]);
			if (st[i] != PGRES_POLLING_OK && st[i] != PGRES_POLLING_FAILED)
				continue;
			if (st[i] == PGRES_POLLING_OK) {
				keep[ok++] = fl[i];
			} else {
				if (failed++ == 0)
					fprintf(stderr, "idleconn: %s", PQerrorMessage(fl[i]));
				PQfinish(fl[i]);
			}
			fl[i] = fl[--nfl];      /* order does not matter */
			st[i] = st[nfl];
		}
	}
	failed += nfl + (n - started);

	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", argv[3]);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "connected=%d failed=%d seconds=%.1f\n", ok, failed, now() - t0) < 0 ||
	    fclose(f) != 0 || rename(tmp, argv[3]) != 0) {
		perror(argv[3]);
		return 1;
	}
	for (double t1 = now(); !stop && now() - t1 < hold;)
		sleep(1);
	for (int i = 0; i < ok; i++)
		PQfinish(keep[i]);
	return 0;
}
