#!/usr/bin/env bash
# contrib/bench/metrics_overhead.sh [--quick] [--out FILE.md]
#
# What does serving /metrics cost the pooler? Runs pgbench select-only (-S) with 100 clients
# through pgmux (transaction mode, pool of 20) with and without a scraper that fetches /metrics
# every 100 ms over one keep-alive connection (as Prometheus does, only 150 times as often), in
# interleaved rounds, and reports the median TPS of each, the difference, and pgmux's CPU time
# per transaction (from /proc/PID/schedstat) in each. The issue-6 target is a TPS cost within
# 2 %. Run-to-run TPS on a busy or small machine varies more than that, so the script also
# measures the CPU time pgmux spends per scrape directly (SCRAPE_SAMPLES scrapes in a row after
# the runs) and reports the share of pgmux's CPU that one scrape per SCRAPE_INTERVAL takes.
#
# Needs root (PostgreSQL and pgmux run as `postgres`), PostgreSQL 15 and pgbench.
# Environment (defaults in brackets; --quick changes the ones marked *):
#   BENCH_SECONDS   seconds per pgbench run [20, *8]
#   BENCH_ROUNDS    rounds; each runs both variants, in alternating order [5, *2]
#   BENCH_CLIENTS   pgbench clients [100]
#   BENCH_SCALE     pgbench -i scale [10]
#   SCRAPE_INTERVAL seconds between scrapes [0.1]
#   SCRAPE_SAMPLES  scrapes in a row for the direct per-scrape cost [5000]
#   PGMUX           pgmux binary [build/pgmux of this repository, built if missing]
#   PGBIN           PostgreSQL binaries [/usr/lib/postgresql/15/bin]
# Results: a table on stdout and as markdown in FILE.md [contrib/bench/results/metrics-overhead.md].
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
QUICK=0
OUT=$HERE/results/metrics-overhead.md

die() { echo "metrics_overhead: $*" >&2; exit 1; }
say() { echo "[$(date +%T)] $*" >&2; }

while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--out) [ $# -ge 2 ] || die "--out needs a file"; OUT=$2; shift ;;
	--out=*) OUT=${1#--out=} ;;
	-h | --help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL and pgmux run as postgres)"

if [ $QUICK = 1 ]; then RUN_S=${BENCH_SECONDS:-8}; ROUNDS=${BENCH_ROUNDS:-2}
else RUN_S=${BENCH_SECONDS:-20}; ROUNDS=${BENCH_ROUNDS:-5}; fi
CLIENTS=${BENCH_CLIENTS:-100}
SCALE=${BENCH_SCALE:-10}
INTERVAL=${SCRAPE_INTERVAL:-0.1}
SAMPLES=${SCRAPE_SAMPLES:-5000}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
mkdir -p "$(dirname "$OUT")"

for b in initdb pg_ctl pgbench; do
	[ -x "$PGBIN/$b" ] || die "$PGBIN/$b missing (apt-get install postgresql-15, or set PGBIN)"
done
PGMUX=${PGMUX:-$ROOT/build/pgmux}
if [ ! -x "$PGMUX" ]; then
	say "building pgmux"
	{ [ -d "$ROOT/build" ] || meson setup "$ROOT/build" "$ROOT"; } >/dev/null &&
		ninja -C "$ROOT/build" >/dev/null || die "build failed"
fi

TMP=$(mktemp -d /tmp/pgmux-metrics-bench.XXXXXX) || die "mktemp failed"
chmod 755 "$TMP"
chown postgres: "$TMP"
PGMUX_PID=
SCRAPER_PID=
cleanup() {
	[ -n "$SCRAPER_PID" ] && kill "$SCRAPER_PID" 2>/dev/null
	[ -n "$PGMUX_PID" ] && kill -QUIT "$PGMUX_PID" 2>/dev/null
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TMP/data" -m immediate -w stop >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PGPORT=$(free_port)
PORT=$(free_port)
STATS_PORT=$(free_port)

# ---------------------------------------------------------------- PostgreSQL
say "initdb and pgbench -i -s $SCALE"
runuser -u postgres -- "$PGBIN/initdb" -D "$TMP/data" -U postgres --auth=trust --no-sync \
	>"$TMP/initdb.log" 2>&1 || die "initdb failed: $(tail -3 "$TMP/initdb.log")"
cat >>"$TMP/data/postgresql.conf" <<EOF
listen_addresses = ''
port = $PGPORT
unix_socket_directories = '$TMP'
max_connections = 100
fsync = off
synchronous_commit = off
shared_buffers = 128MB
EOF
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TMP/data" -l "$TMP/pg.log" -w start >/dev/null ||
	die "PostgreSQL did not start: $(tail -3 "$TMP/pg.log")"
runuser -u postgres -- "$PGBIN/pgbench" -h "$TMP" -p "$PGPORT" -i -s "$SCALE" -q postgres \
	>"$TMP/pgbench-init.log" 2>&1 || die "pgbench -i failed"

# ---------------------------------------------------------------- pgmux
cat >"$TMP/pgmux.ini" <<EOF
[databases]
bench = host=$TMP port=$PGPORT dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir = $TMP
auth_type = trust
auth_file = $TMP/userlist.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 1000
log_connections = 0
log_disconnections = 0
stats_listen_addr = 127.0.0.1
stats_listen_port = $STATS_PORT
EOF
echo '"postgres" ""' >"$TMP/userlist.txt"
chown postgres: "$TMP/pgmux.ini" "$TMP/userlist.txt"
"$PGMUX" -u postgres "$TMP/pgmux.ini" >"$TMP/pgmux.log" 2>&1 &
PGMUX_PID=$!
for _ in $(seq 50); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null && break
	sleep 0.1
done
kill -0 "$PGMUX_PID" 2>/dev/null || die "pgmux did not start: $(tail -3 "$TMP/pgmux.log")"

# ---------------------------------------------------------------- runs
cpu_ns() { awk '{print $1}' "/proc/$PGMUX_PID/schedstat"; }

start_scraper() {
	# stdout/stderr to a file: run() is called inside $(...), which would wait for it.
	python3 - "$STATS_PORT" "$INTERVAL" "$TMP/scrapes" >"$TMP/scraper.log" 2>&1 <<'EOF' &
import http.client, sys, time
port, interval, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
n = size = 0
next_t = time.monotonic()
try:
    while True:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit("scrape failed: %d" % r.status)
        n += 1
        size = len(body)
        with open(out, "w") as f:
            f.write("%d %d\n" % (n, size))
        next_t += interval
        time.sleep(max(0.0, next_t - time.monotonic()))
finally:
    conn.close()
EOF
	SCRAPER_PID=$!
}

stop_scraper() {
	kill "$SCRAPER_PID" 2>/dev/null # SIGTERM: background jobs of a script ignore SIGINT
	wait "$SCRAPER_PID" 2>/dev/null
	SCRAPER_PID=
}

# run VARIANT: one pgbench run; prints "tps cpu_us_per_tx scrapes pgmux_cpu_us_per_s"
run() {
	local variant=$1 t0 t1 tps
	rm -f "$TMP/scrapes"
	[ "$variant" = scrape ] && start_scraper && sleep 0.5
	t0=$(cpu_ns)
	runuser -u postgres -- "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -S -n -c "$CLIENTS" -j 4 \
		-T "$RUN_S" bench >"$TMP/pgbench.out" 2>&1 || die "pgbench failed: $(tail -3 "$TMP/pgbench.out")"
	t1=$(cpu_ns)
	[ "$variant" = scrape ] && stop_scraper
	tps=$(awk '/^tps = / {print $3; exit}' "$TMP/pgbench.out")
	local scrapes=0
	[ -f "$TMP/scrapes" ] && scrapes=$(awk '{print $1}' "$TMP/scrapes")
	python3 -c "
tps, ns, secs = float('$tps'), $t1 - $t0, float('$RUN_S')
tx = tps * secs
print('%.1f %.3f %s %.0f' % (tps, ns / 1e3 / tx if tx else 0, '$scrapes', ns / 1e3 / secs))"
}

say "warm-up"
run plain >/dev/null
: >"$TMP/results"
for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then order="plain scrape"; else order="scrape plain"; fi
	for v in $order; do
		res=$(run "$v")
		say "round $r $v: tps cpu_us/tx scrapes cpu_us/s = $res"
		echo "$v $res" >>"$TMP/results"
	done
done
size=$(curl -s "http://127.0.0.1:$STATS_PORT/metrics" 2>/dev/null | wc -c)

# The direct cost of a scrape: pgmux CPU time over many scrapes in a row, pgbench idle.
say "direct cost: $SAMPLES scrapes in a row"
per_scrape=$(python3 - "$STATS_PORT" "$SAMPLES" "$PGMUX_PID" <<'EOF'
import http.client, sys
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def ns():
    with open("/proc/%s/schedstat" % pid) as f:
        return int(f.read().split()[0])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
t0 = ns()
for _ in range(n):
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    r.read()
    assert r.status == 200
print("%.2f" % ((ns() - t0) / 1e3 / n))
EOF
) || die "direct scrape measurement failed"
load=$(sed 's/ [0-9]*\/.*//' /proc/loadavg)

python3 - "$TMP/results" "$OUT" "$RUN_S" "$ROUNDS" "$CLIENTS" "$INTERVAL" "$size" "$(nproc)" \
	"$per_scrape" "$SAMPLES" "$load" <<'EOF'
import statistics, sys, time
(path, out, secs, rounds, clients, interval, size, cpus, per_scrape, samples,
 load) = sys.argv[1:]
rows = [l.split() for l in open(path) if l.strip()]
by = {"plain": [], "scrape": []}
for v, tps, cpu, scrapes, busy in rows:
    by[v].append((float(tps), float(cpu), int(scrapes), float(busy)))
tps_p = statistics.median(x[0] for x in by["plain"])
tps_s = statistics.median(x[0] for x in by["scrape"])
cpu_p = statistics.median(x[1] for x in by["plain"])
cpu_s = statistics.median(x[1] for x in by["scrape"])
busy_p = statistics.median(x[3] for x in by["plain"])
diff = (tps_s - tps_p) / tps_p * 100
scrapes = statistics.median(x[2] for x in by["scrape"])
share = float(per_scrape) / float(interval) / busy_p * 100 if busy_p else 0
lines = [
    "# /metrics overhead (contrib/bench/metrics_overhead.sh)",
    "",
    "%s; pgbench -S -c %s -j 4, %s s per run, %s rounds per variant (alternating order), "
    "pgmux transaction mode, pool of 20, %s CPUs (load average %s at the end); scraper: "
    "GET /metrics every %s s on one keep-alive connection (%s scrapes per run, %s bytes each)."
    % (time.strftime("%Y-%m-%d %H:%M"), clients, secs, rounds, cpus, load, interval, scrapes,
       size),
    "",
    "| variant | median TPS | pgmux CPU per transaction | runs (TPS) |",
    "|---|---|---|---|",
    "| no scraper | %.0f | %.2f us | %s |"
    % (tps_p, cpu_p, ", ".join("%.0f" % x[0] for x in by["plain"])),
    "| scraper every %s s | %.0f | %.2f us | %s |"
    % (interval, tps_s, cpu_s, ", ".join("%.0f" % x[0] for x in by["scrape"])),
    "",
    "TPS difference with the scraper: **%+.2f %%** (target: within 2 %%); pgmux CPU per "
    "transaction: %+.2f %%." % (diff, (cpu_s - cpu_p) / cpu_p * 100 if cpu_p else 0),
    "",
    "Direct cost: **%s us** of pgmux CPU per scrape (%s scrapes in a row). One scrape every "
    "%s s is **%.3f %%** of the CPU pgmux used during the runs without scraper (%.0f us per "
    "second): the most it can take from TPS when pgmux is the bottleneck. Run-to-run TPS "
    "varies more than that on a shared or small machine." % (per_scrape, samples, interval,
                                                              share, busy_p),
]
text = "\n".join(lines) + "\n"
print(text)
with open(out, "w") as f:
    f.write(text)
EOF
