#!/bin/bash
# contrib/soak/run.sh DURATION  (seconds, or with a unit: 45m, 2h)
#
# Soak test: a mixed workload through one pgmux (pgbench tpcb-like, pgbench -M prepared -S,
# long transactions, COPY in/out, cancels, IDLE_CLIENTS idle clients, garbage connections,
# slow readers: contrib/soak/workload.py) while PostgreSQL is restarted (fast and immediate),
# backends are terminated or SIGKILLed and pgmux reloads its config (SIGHUP) at random
# intervals. At the end it checks: pgbench balances consistent, no client stuck, pgmux RSS
# growth under 1 MB per 10 minutes after warm-up (VmRSS sampled every 10 s), fd count back
# to its baseline; prints a summary and exits 1 if a check failed (2 on a setup error).
#
# Loopback only. Everything it starts (PostgreSQL, pgmux, clients) lives under one temp
# folder and is stopped by PID on exit; the folder is removed (KEEP=1 keeps it).
# Environment: PGMUX_BIN (default: build-soak/pgmux, built if missing), IDLE_CLIENTS (5000),
# PG_BIN (/usr/lib/postgresql/15/bin), SEED (random).
set -u

usage() { echo "usage: $0 DURATION (seconds, or 30m, 1h)" >&2; exit 2; }
[ $# -eq 1 ] || usage
case "$1" in
    *h) DURATION=$(( ${1%h} * 3600 )) ;;
    *m) DURATION=$(( ${1%m} * 60 )) ;;
    *s) DURATION=${1%s} ;;
    *) DURATION=$1 ;;
esac
[[ "$DURATION" =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 60 ] || { echo "DURATION must be >= 60 s" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
IDLE_CLIENTS=${IDLE_CLIENTS:-5000}
SEED=${SEED:-$$}
RANDOM=$SEED
WARMUP=$(( DURATION / 4 < 300 ? DURATION / 4 : 300 ))

log() { printf '%s soak: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 2; }

[ "$(id -u)" -eq 0 ] || die "run as root (PostgreSQL and pgmux run as the postgres user)"

# ---- what it needs
need=()
[ -x "$PG_BIN/initdb" ] || need+=(postgresql-15)
command -v pgbench >/dev/null || need+=(postgresql-client-15)
/usr/bin/python3 -c "import psycopg2" 2>/dev/null || need+=(python3-psycopg2)
command -v meson >/dev/null || need+=(meson ninja-build)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null || die "apt-get failed"
fi
PGBENCH=$PG_BIN/pgbench; [ -x "$PGBENCH" ] || PGBENCH=$(command -v pgbench)
PSQL=$PG_BIN/psql; [ -x "$PSQL" ] || PSQL=$(command -v psql)

PGMUX_BIN=${PGMUX_BIN:-$ROOT/build-soak/pgmux}
if [ ! -x "$PGMUX_BIN" ]; then
    log "building $PGMUX_BIN"
    (cd "$ROOT" && { [ -d build-soak ] || meson setup build-soak -Dcassert=true >/dev/null; } \
        && ninja -C build-soak >/dev/null) || die "build failed"
fi

# Thousands of sockets in pgmux and in the workload (pgmux raises its soft limit to this).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# ---- cleanup: only what we started
WORK=$(mktemp -d /tmp/pgmux-soak.XXXXXX)
chmod 755 "$WORK"
chown postgres: "$WORK"
PIDS=()           # background jobs of this script
PGMUX_PID=""
PG_STARTED=0
finish_cleanup() {
    trap - EXIT INT TERM
    touch "$WORK/stop" 2>/dev/null
    local p c
    for p in "${PIDS[@]}"; do
        # children first (pgbench, psql, python started by the job), then the job itself
        for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do kill "$c" 2>/dev/null; done
        kill "$p" 2>/dev/null
    done
    [ -n "$PGMUX_PID" ] && kill -QUIT "$PGMUX_PID" 2>/dev/null
    for _ in $(seq 50); do
        [ -n "$PGMUX_PID" ] && kill -0 "$PGMUX_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$PGMUX_PID" ] && kill -KILL "$PGMUX_PID" 2>/dev/null
    [ "$PG_STARTED" = 1 ] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg" -m immediate -w stop >/dev/null 2>&1
    wait 2>/dev/null
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap finish_cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

free_port() {
    local p
    for _ in $(seq 200); do
        p=$(( 20000 + RANDOM % 12000 ))
        ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
    die "no free port"
}

# ---- PostgreSQL
PGPORT=$(free_port)
mkdir -p "$WORK/pgsock" && chown postgres: "$WORK/pgsock"
runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync >/dev/null || die "initdb failed"
cat >> "$WORK/pg/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$WORK/pgsock'
max_connections = 150
fsync = off
synchronous_commit = on
full_page_writes = off
shared_buffers = 64MB
log_min_messages = warning
EOF
pgctl() { runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/postgres.log" "$@" >/dev/null 2>&1; }
pgctl -w -t 120 start || die "PostgreSQL did not start"
PG_STARTED=1
pgsql() { "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -h "$WORK/pgsock" -p "$PGPORT" -U postgres "$@"; }
pgsql -c "CREATE ROLE soak LOGIN PASSWORD 'soakpass'" -c "CREATE DATABASE soak OWNER soak" >/dev/null \
    || die "roles"
pgsql -d soak -c "SET ROLE soak" \
    -c "CREATE TABLE soak_long (id int PRIMARY KEY, v int NOT NULL)" \
    -c "INSERT INTO soak_long SELECT g, 0 FROM generate_series(1, 100) g" \
    -c "CREATE TABLE soak_copy (batch int, n int, s text)" >/dev/null || die "tables"
PGPASSWORD=soakpass "$PGBENCH" -i -s 4 -q -h 127.0.0.1 -p "$PGPORT" -U soak soak >/dev/null 2>&1 \
    || die "pgbench -i failed"

# ---- pgmux
PORT=$(free_port)
mkdir -p "$WORK/mux" && chown postgres: "$WORK/mux"
printf '"soak" "soakpass"\n"soakadmin" "adminpass"\n' > "$WORK/mux/userlist.txt"
write_ini() {  # $1: default_pool_size, $2: server_idle_timeout
    cat > "$WORK/mux/pgmux.ini.tmp" <<EOF
[databases]
soak = host=127.0.0.1 port=$PGPORT dbname=soak
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir = $WORK/mux
auth_type = scram-sha-256
auth_file = $WORK/mux/userlist.txt
admin_users = soakadmin
pool_mode = transaction
default_pool_size = $1
reserve_pool_size = 5
max_client_conn = $(( IDLE_CLIENTS + 500 ))
max_prepared_statements = 100
query_wait_timeout = 30
client_login_timeout = 15
server_login_retry = 1
server_idle_timeout = $2
log_connections = 0
log_disconnections = 0
EOF
    chown postgres: "$WORK/mux/pgmux.ini.tmp" "$WORK/mux/userlist.txt"
    mv "$WORK/mux/pgmux.ini.tmp" "$WORK/mux/pgmux.ini"
}
write_ini 20 600
"$PGMUX_BIN" -u postgres "$WORK/mux/pgmux.ini" >> "$WORK/pgmux.log" 2>&1 &
PGMUX_PID=$!
for _ in $(seq 100); do
    ss -Htln "sport = :$PORT" | grep -q . && break
    kill -0 "$PGMUX_PID" 2>/dev/null || die "pgmux exited: $(tail -5 "$WORK/pgmux.log")"
    sleep 0.1
done
admin() { PGPASSWORD=adminpass "$PSQL" -X -A -t -F '|' -h 127.0.0.1 -p "$PORT" -U soakadmin pgbouncer -c "$1" 2>/dev/null; }
nfds() { ls "/proc/$PGMUX_PID/fd" 2>/dev/null | wc -l; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$PGMUX_PID/status" 2>/dev/null; }
BASE_FDS=$(nfds)
log "PostgreSQL on $PGPORT, pgmux (pid $PGMUX_PID) on $PORT, $BASE_FDS fds; ${DURATION}s, warm-up ${WARMUP}s, seed $SEED, work dir $WORK"

T0=$(date +%s)
END=$(( T0 + DURATION ))
FAULTS_END=$(( END - (DURATION / 10 < 60 ? DURATION / 10 : 60) ))
stopping() { [ -e "$WORK/stop" ] || [ "$(date +%s)" -ge "$END" ]; }

# ---- samplers and workload
( while ! stopping; do echo "$(( $(date +%s) - T0 )) $(rss) $(nfds)" >> "$WORK/samples"; sleep 10; done ) &
PIDS+=($!)

pgbench_loop() {  # $1: name, rest: pgbench options
    local name=$1; shift
    local n=0
    while ! stopping; do
        local left=$(( END - $(date +%s) )); [ "$left" -gt 60 ] && left=60
        [ "$left" -lt 5 ] && break
        n=$((n + 1))
        PGPASSWORD=soakpass timeout $(( left + 90 )) "$PGBENCH" "$@" -n -T "$left" -h 127.0.0.1 \
            -p "$PORT" -U soak soak > "$WORK/$name.$n.out" 2>&1
        echo "$?" > "$WORK/$name.$n.rc"
        sleep 1
    done
}
pgbench_loop tpcb -c 16 -j 2 -M simple &
PIDS+=($!)
pgbench_loop tpcbext -c 4 -j 1 -M extended &
PIDS+=($!)
pgbench_loop select -c 8 -j 1 -M prepared -S &
PIDS+=($!)
/usr/bin/python3 "$ROOT/contrib/soak/workload.py" "$PORT" "$DURATION" "$WORK/workload.json" "$IDLE_CLIENTS" \
    2> "$WORK/workload.log" &
WORKLOAD_PID=$!
PIDS+=($WORKLOAD_PID)

# ---- faults
faults() {
    local pool=20 t
    sleep $(( WARMUP / 2 ))
    while ! stopping && [ "$(date +%s)" -lt "$FAULTS_END" ]; do
        sleep $(( 15 + RANDOM % 45 ))
        stopping && break
        [ "$(date +%s)" -ge "$FAULTS_END" ] && break
        t=$(( $(date +%s) - T0 ))
        case $(( RANDOM % 7 )) in
            0) echo "$t restart-fast" >> "$WORK/events"; pgctl -m fast -w -t 120 restart ;;
            1) echo "$t restart-immediate" >> "$WORK/events"; pgctl -m immediate -w -t 120 restart ;;
            2|3) echo "$t terminate-backends" >> "$WORK/events"
               pgsql -c "SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity
                         WHERE usename = 'soak' ORDER BY random() LIMIT 1 + (random() * 4)::int) x" >/dev/null 2>&1 ;;
            4) local victim
               victim=$(pgsql -c "SELECT pid FROM pg_stat_activity WHERE usename = 'soak' ORDER BY random() LIMIT 1" 2>/dev/null)
               if [ -n "$victim" ]; then
                   echo "$t sigkill-backend $victim" >> "$WORK/events"
                   kill -KILL "$victim" 2>/dev/null  # postmaster then restarts every backend
                   sleep 3
               fi ;;
            *) pool=$(( pool == 20 ? 16 : 20 ))
               echo "$t reload default_pool_size=$pool" >> "$WORK/events"
               write_ini "$pool" 600; kill -HUP "$PGMUX_PID" ;;
        esac
        # PostgreSQL must be up again whatever happened
        pgctl status || pgctl -w -t 120 start
    done
}
faults &
PIDS+=($!)

# ---- wait for the end (pgmux must stay up all along)
while [ "$(date +%s)" -lt "$END" ]; do
    kill -0 "$PGMUX_PID" 2>/dev/null || break
    sleep 5
done
log "workload time over; waiting for the clients to finish"
touch "$WORK/stop"
for _ in $(seq 240); do  # workload.py needs up to 2 x its op timeout for its last ops
    kill -0 "$WORKLOAD_PID" 2>/dev/null || break
    sleep 1
done
for p in "${PIDS[@]}"; do
    for _ in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 1; done
done
pgctl status || pgctl -w -t 120 start

# ---- checks
FAIL=0
check() {  # $1: ok (0/1), $2: text
    if [ "$1" = 1 ]; then log "PASS $2"; else log "FAIL $2"; FAIL=1; fi
}
ALIVE=0; kill -0 "$PGMUX_PID" 2>/dev/null && ALIVE=1
check $ALIVE "pgmux alive after ${DURATION}s"
PROBLEMS=$(grep -cE 'Assertion|\bBUG\b|Sanitizer|runtime error' "$WORK/pgmux.log")
check $(( PROBLEMS == 0 )) "pgmux log: $PROBLEMS assertion/BUG/sanitizer lines"

# pgbench: transactions, balances
TXNS=0; RUNS=0; PGB_STUCK=0; PGB_FAILED=0
for f in "$WORK"/tpcb*.out "$WORK"/select.*.out; do
    [ -e "$f" ] || continue
    RUNS=$((RUNS + 1))
    rc=$(cat "${f%.out}.rc" 2>/dev/null || echo 124)
    [ "$rc" = 124 ] && PGB_STUCK=$((PGB_STUCK + 1))
    [ "$rc" != 0 ] && PGB_FAILED=$((PGB_FAILED + 1))
    case "$f" in */select.*) continue ;; esac
    n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$f")
    TXNS=$(( TXNS + ${n:-0} ))
done
SELECT_TXNS=$(cat "$WORK"/select.*.out 2>/dev/null | awk '/^number of transactions actually processed:/ {n += $6} END {print n + 0}')
SUMS=$(pgsql -d soak -F ' ' -c "SELECT (SELECT sum(abalance) FROM pgbench_accounts),
    (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(tbalance) FROM pgbench_tellers),
    (SELECT sum(delta) FROM pgbench_history), (SELECT count(*) FROM pgbench_history)")
read -r SA SB ST SH HCOUNT <<< "$SUMS"
SA=${SA:--1}; SB=${SB:--2}; ST=${ST:--3}; SH=${SH:--4}; HCOUNT=${HCOUNT:--1}
check $(( SA == SB && SB == ST && ST == SH )) "balances: accounts $SA branches $SB tellers $ST history $SH"
# A transaction whose COMMIT went through but whose connection broke before pgbench read the
# answer is in the history without being counted: history >= counted, and the gap is small.
check $(( HCOUNT >= TXNS )) "history rows $HCOUNT >= tpcb transactions pgbench counted $TXNS (gap $(( HCOUNT - TXNS )), from connections lost at COMMIT)"
LONG=$(pgsql -d soak -c "SELECT sum(v) FROM soak_long"); LONG=${LONG:--1}
check $(( LONG == 0 )) "long transactions: soak_long sum $LONG (each adds then subtracts)"

# stuck clients
WL_STUCK=$(python3 -c "import json; print(json.load(open('$WORK/workload.json'))['stuck'])" 2>/dev/null || echo 999)
check $(( WL_STUCK == 0 && PGB_STUCK == 0 )) "no client stuck: workload $WL_STUCK, pgbench runs killed by timeout $PGB_STUCK"
IDLE=$(python3 -c "import json; d=json.load(open('$WORK/workload.json')); r=d['ops']['idle_final_query']; print('%d idle clients, final query: %d ok, %d error, %d closed, %d stuck' % (d['idle_clients'], r['ok'], r['error'], r['closed'], r['stuck']))" 2>/dev/null)
IDLE_OK=$(python3 -c "import json; d=json.load(open('$WORK/workload.json')); r=d['ops']['idle_final_query']; print(int(r['ok'] == d['idle_clients'] and d['idle_clients'] > 0))" 2>/dev/null || echo 0)
check "$IDLE_OK" "idle clients: $IDLE"
LEFT=0
for _ in $(seq 30); do
    LEFT=$(admin "SHOW CLIENTS" | awk -F'|' '$3 == "soak"' | wc -l)
    WAITING=$(admin "SHOW POOLS" | awk -F'|' '$1 == "soak" {w += $4} END {print w + 0}')
    [ "$LEFT" = 0 ] && [ "$WAITING" = 0 ] && break
    sleep 1
done
check $(( LEFT == 0 && WAITING == 0 )) "pgmux clients left: $LEFT, waiting: $WAITING"

# RSS: least-squares slope over the samples after warm-up
RSS_LINE=$(awk -v w="$WARMUP" '$1 >= w && $2 > 0 {n++; sx += $1; sy += $2; sxx += $1*$1; sxy += $1*$2;
    if (n == 1) first = $2; last = $2; if ($2 > max) max = $2}
    END {if (n < 3) {print "0 0 0 0 0"; exit}
         slope = (n*sxy - sx*sy) / (n*sxx - sx*sx);
         printf "%.0f %d %d %d %d\n", slope * 600, first, last, max, n}' "$WORK/samples")
read -r RSS_PER_10MIN RSS_FIRST RSS_LAST RSS_MAX RSS_N <<< "$RSS_LINE"
check $(( RSS_N >= 3 && RSS_PER_10MIN < 1024 )) "RSS after warm-up: $RSS_FIRST -> $RSS_LAST kB (max $RSS_MAX, $RSS_N samples), trend $RSS_PER_10MIN kB per 10 min (limit 1024)"

# fds: let the idle servers go (reload with server_idle_timeout = 1), then back to baseline
write_ini 20 1; kill -HUP "$PGMUX_PID" 2>/dev/null
FDS=0
for _ in $(seq 60); do
    FDS=$(nfds)
    [ "$FDS" -le "$BASE_FDS" ] && break
    sleep 1
done
SERVERS=$(admin "SHOW SERVERS" | grep -c '|')
check $(( FDS <= BASE_FDS )) "fds: $FDS at the end, $BASE_FDS at the start ($SERVERS servers left)"

# ---- summary
ELAPSED=$(( $(date +%s) - T0 ))
{
    echo "==== pgmux soak summary ($(date -u +%FT%TZ), ${ELAPSED}s, seed $SEED) ===="
    echo "duration:           ${DURATION}s (warm-up ${WARMUP}s), pgmux $PGMUX_BIN"
    echo "faults injected:    $(wc -l < "$WORK/events" 2>/dev/null || echo 0) ($(awk '{print $2}' "$WORK/events" 2>/dev/null | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}'))"
    echo "pgbench:            $RUNS runs ($PGB_FAILED ended with errors from the faults), tpcb $TXNS txns, select-only prepared ${SELECT_TXNS:-0} txns"
    echo "balances:           accounts=$SA branches=$SB tellers=$ST history=$SH; history rows $HCOUNT"
    echo "workload ops:       $(python3 -c "import json; d=json.load(open('$WORK/workload.json'))['ops']; print('; '.join('%s %s' % (k, ' '.join('%s=%d' % kv for kv in v.items())) for k, v in sorted(d.items())))" 2>/dev/null)"
    echo "idle clients:       $IDLE"
    echo "stuck clients:      workload $WL_STUCK, pgbench $PGB_STUCK"
    echo "RSS (kB):           start-of-window $RSS_FIRST, end $RSS_LAST, max $RSS_MAX; trend $RSS_PER_10MIN kB/10 min"
    echo "fds:                baseline $BASE_FDS, end $FDS"
    echo "pgmux CPU (s):      $(awk '{printf "%.1f", ($14 + $15) / 100}' "/proc/$PGMUX_PID/stat" 2>/dev/null)"
    echo "result:             $([ $FAIL = 0 ] && echo PASS || echo FAIL)"
} | tee "$WORK/summary.txt"
[ -n "${SOAK_SUMMARY:-}" ] && cp "$WORK/summary.txt" "$SOAK_SUMMARY" && cp "$WORK/samples" "$SOAK_SUMMARY.samples"
exit $FAIL
