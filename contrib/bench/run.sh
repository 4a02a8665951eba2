#!/usr/bin/env bash
# contrib/bench/run.sh [--quick] [--tls] [--out FILE.md]
#
# Benchmarks pgmux against PostgreSQL directly, a bare epoll forwarder (forwarder.c, the CPU
# floor), Debian's PgBouncer and the newest PgBouncer (if built), all on this machine in one run,
# with one pgbouncer.ini/userlist.txt setup. See README.md next to this file.
#
# Needs root (apt-get when something is missing; PostgreSQL and the poolers run as `postgres`).
# Environment (defaults in brackets; --quick changes the ones marked *):
#   BENCH_SECONDS       seconds per pgbench run [15, *5]
#   BENCH_ROUNDS        interleaved rounds per workload [3, *1]
#   BENCH_WARMUP        seconds of warm-up pgbench per target before measuring [3]
#   BENCH_IDLE_CLIENTS  idle logged-in clients for the RSS test, 0 to skip [5000]
#   BENCH_SCALE         pgbench -i scale [10]
#   BENCH_WORKLOADS     space-separated subset of: s20 s100 s500 tpcb50 connect20 prep50
#                       tls_s50 tls_connect20 [all but the tls_ ones; with BENCH_TLS=1 all]
#   BENCH_TLS           1 (or --tls): add the TLS workloads to the default set [0]
#   BENCH_TARGETS       space-separated subset of: direct forwarder pgbouncer-deb pgbouncer-new pgmux
#   PGBOUNCER           newest PgBouncer binary [~/.cache/pgmux-bench/pgbouncer/bin/pgbouncer,
#                       as left by build-pgbouncer.sh, if present]
#   PGMUX               pgmux binary to use instead of building build-bench/pgmux
#   PGBIN               PostgreSQL binaries [/usr/lib/postgresql/15/bin]
# TLS workloads (tls_s50: select-only c=50; tls_connect20: -C c=20) run after all the others, with
# TLS on both sides: PostgreSQL is switched to ssl=on (a reload; the plain workloads ran with
# ssl=off, as without them), every pooler is restarted with client_tls_sslmode=require and
# server_tls_sslmode=require (same auth as the plain runs), and pgbench connects with
# sslmode=require, also straight to PostgreSQL (`direct`); the forwarder is left out. The
# certificates are self-signed ECDSA P-256, made with openssl in the temporary folder. During the
# warm-up and during every TLS run, SHOW CLIENTS/SHOW SERVERS (tls column) and PostgreSQL's
# pg_stat_ssl must show every pgbench client and server connection encrypted; if not, that
# target's TLS rows fail and the script exits with status 1.
# Results: a table on stdout, the same as markdown in FILE.md [contrib/bench/results/latest.md];
# logs of the poolers and of failed runs in FILE-logs/ next to it.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
QUICK=0
TLS=${BENCH_TLS:-0}
OUT=$HERE/results/latest.md

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "[$(date +%T)] $*" >&2; }
usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--tls) TLS=1 ;;
	--out) [ $# -ge 2 ] || die "--out needs a file"; OUT=$2; shift ;;
	--out=*) OUT=${1#--out=} ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || die "run as root (installs packages, runs PostgreSQL and the poolers as postgres)"

if [ $QUICK = 1 ]; then RUN_S=${BENCH_SECONDS:-5}; ROUNDS=${BENCH_ROUNDS:-1}
else RUN_S=${BENCH_SECONDS:-15}; ROUNDS=${BENCH_ROUNDS:-3}; fi
WARMUP=${BENCH_WARMUP:-3}
# The tls_ workloads must stay last: the TLS phase switches PostgreSQL and the poolers to TLS.
WORKLOADS=(
	"s20|select-only c=20|-S -n -c 20"
	"s100|select-only c=100|-S -n -c 100"
	"s500|select-only c=500|-S -n -c 500"
	"tpcb50|tpcb-like c=50|-n -c 50"
	"connect20|select-only, connect per transaction (-C) c=20|-S -n -C -c 20"
	"prep50|select-only, named prepared statements (-M prepared) c=50|-S -n -M prepared -c 50"
	"tls_s50|TLS select-only c=50|-S -n -c 50"
	"tls_connect20|TLS select-only, connect per transaction (-C) c=20|-S -n -C -c 20"
)
want_workload() {
	if [ -n "${BENCH_WORKLOADS:-}" ]; then [[ " $BENCH_WORKLOADS " == *" $1 "* ]]
	else [[ $1 != tls_* ]] || [ "$TLS" = 1 ]; fi
}
TLS_WANTED=0
want_workload tls_s50 && TLS_WANTED=1
want_workload tls_connect20 && TLS_WANTED=1
IDLE_CLIENTS=${BENCH_IDLE_CLIENTS:-5000}
SCALE=${BENCH_SCALE:-10}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PW=bench-$RANDOM$RANDOM
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
LOGDIR=${OUT%.md}-logs
mkdir -p "$LOGDIR" || die "cannot create $LOGDIR"
rm -f "$LOGDIR"/*.log "$LOGDIR"/*.out

# ---------------------------------------------------------------- packages
need=(postgresql-15 postgresql-client-15 pgbouncer gcc libc6-dev pkg-config meson ninja-build
	libev-dev libinih-dev libssl-dev libpq-dev python3)
[ $TLS_WANTED = 0 ] || need+=(openssl)
missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}"; } >"$LOGDIR/apt.log" 2>&1 ||
		die "apt-get failed, see $LOGDIR/apt.log"
fi
for b in initdb pg_ctl postgres psql pgbench; do
	[ -x "$PGBIN/$b" ] || die "$PGBIN/$b missing (set PGBIN)"
done

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d /tmp/pgmux-bench.XXXXXX) || die "mktemp failed"
chmod 755 "$TMP"
PIDS=()          # every background process this script started
PG_STARTED=0
ours() { [ "$(awk '/^PPid:/ {print $2}' "/proc/$1/status" 2>/dev/null)" = "$$" ]; }
stop_pid() {     # stop_pid PID: TERM, then KILL after 5 s; only our own children
	local pid=$1 i
	ours "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 50); do ours "$pid" || break; sleep 0.1; done
	ours "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}
cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	if [ $PG_STARTED = 1 ]; then
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TMP/pg/data" -m immediate -w stop >/dev/null 2>&1
		cp "$TMP/pg/postgres.log" "$LOGDIR/postgres.log" 2>/dev/null
	fi
	rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fds: 5,000 idle clients need as many in the pooler and in the client program
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CLIENTS + 500)) ]; then
	IDLE_CLIENTS=$(( $(ulimit -n) - 500 ))
	say "open files limit is $(ulimit -n): idle-client test reduced to $IDLE_CLIENTS clients"
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
awk '{exit !($1 > 0.5)}' /proc/loadavg &&
	say "warning: load average is $LOAD_START before the start: other work on this machine skews the figures"

# ---------------------------------------------------------------- build
say "building forwarder, idleconn, pgmux"
cc -O2 -o "$TMP/forwarder" "$HERE/forwarder.c" >"$LOGDIR/forwarder-build.log" 2>&1 ||
	die "forwarder build failed, see $LOGDIR/forwarder-build.log"
# shellcheck disable=SC2046
cc -O2 $(pkg-config --cflags libpq) -o "$TMP/idleconn" "$HERE/idleconn.c" $(pkg-config --libs libpq) \
	>"$LOGDIR/idleconn-build.log" 2>&1 || die "idleconn build failed, see $LOGDIR/idleconn-build.log"

declare -A PORT PID LABEL STATUS LOG WHY
ALL_TARGETS=(direct forwarder pgbouncer-deb pgbouncer-new pgmux)
TARGETS=()
for t in ${BENCH_TARGETS:-${ALL_TARGETS[*]}}; do
	[[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "unknown target $t"
	TARGETS+=("$t")
	STATUS[$t]=ok; LOG[$t]=$LOGDIR/$t.log; WHY[$t]=; PID[$t]=
done
has_target() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }
fail_target() { STATUS[$1]=failed; WHY[$1]=$2; say "$1: failed: $2 (see ${LOG[$1]})"; }

BIN_DEB=/usr/sbin/pgbouncer
BIN_NEW=${PGBOUNCER:-${XDG_CACHE_HOME:-$HOME/.cache}/pgmux-bench/pgbouncer/bin/pgbouncer}
pgb_version() { "$1" -V 2>/dev/null | awk 'NR == 1 {print $2}'; }
if has_target pgbouncer-deb; then LABEL[pgbouncer-deb]="pgbouncer $(pgb_version $BIN_DEB)"; fi
if has_target pgbouncer-new; then
	if [ -x "$BIN_NEW" ] && [ -n "$(pgb_version "$BIN_NEW")" ]; then
		LABEL[pgbouncer-new]="pgbouncer $(pgb_version "$BIN_NEW")"
		[ "${LABEL[pgbouncer-new]}" != "${LABEL[pgbouncer-deb]:-}" ] ||
			LABEL[pgbouncer-new]+=" (new)"
	else
		[ -z "${PGBOUNCER:-}" ] || say "PGBOUNCER=$PGBOUNCER is not a working pgbouncer binary"
		say "no newest PgBouncer (set PGBOUNCER or run build-pgbouncer.sh): skipping that target"
		TARGETS=("${TARGETS[@]/pgbouncer-new}")
		read -ra TARGETS <<<"${TARGETS[*]}"
	fi
fi
LABEL[direct]="direct PG"; LABEL[forwarder]="forwarder"; LABEL[pgmux]="pgmux"

PGMUX_BIN=${PGMUX:-$ROOT/build-bench/pgmux}
if has_target pgmux && [ -z "${PGMUX:-}" ]; then
	if { [ -f "$ROOT/build-bench/build.ninja" ] ||
		meson setup "$ROOT/build-bench" "$ROOT" -Dbuildtype=release; } >"$LOGDIR/pgmux-build.log" 2>&1 &&
		ninja -C "$ROOT/build-bench" pgmux >>"$LOGDIR/pgmux-build.log" 2>&1; then
		:
	else
		LOG[pgmux]=$LOGDIR/pgmux-build.log
		fail_target pgmux "build failed"
	fi
fi

# ---------------------------------------------------------------- PostgreSQL
read -r PGPORT PORT[forwarder] PORT[pgbouncer-deb] PORT[pgbouncer-new] PORT[pgmux] \
	<<<"$(python3 "$HERE/benchlib.py" ports 5)"
PORT[direct]=$PGPORT
install -d -o postgres -g postgres -m 700 "$TMP/pg"
install -d -o postgres -g postgres -m 755 "$TMP/run"
mkdir "$TMP/logs"
say "initdb + PostgreSQL on 127.0.0.1:$PGPORT"
runuser -u postgres -- "$PGBIN/initdb" -D "$TMP/pg/data" -U postgres -E UTF8 --locale=C \
	>"$LOGDIR/initdb.log" 2>&1 || die "initdb failed, see $LOGDIR/initdb.log"
cat >>"$TMP/pg/data/postgresql.conf" <<EOF
port = $PGPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$TMP/run'
max_connections = 700
shared_buffers = 128MB
password_encryption = scram-sha-256
# a throwaway cluster: keep the disk out of the figures
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
EOF
# make_cert DIR NAME: a self-signed ECDSA P-256 certificate DIR/NAME.crt for localhost and
# 127.0.0.1, and its key DIR/NAME.key (mode 600); both owned by postgres
make_cert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
		-subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$1/$2.key" -out "$1/$2.crt" >>"$LOGDIR/openssl.log" 2>&1 &&
		chmod 600 "$1/$2.key" && chown postgres:postgres "$1/$2.key" "$1/$2.crt"
}
if [ $TLS_WANTED = 1 ]; then
	# PostgreSQL's own certificate, and the one every pooler shows its clients; PostgreSQL's
	# ssl stays off until the TLS phase (tls_phase), so the plain workloads run as without TLS.
	make_cert "$TMP/pg" server && make_cert "$TMP/run" pooler ||
		die "openssl could not make the certificates, see $LOGDIR/openssl.log"
	cat >>"$TMP/pg/data/postgresql.conf" <<EOF
ssl_cert_file = '$TMP/pg/server.crt'
ssl_key_file = '$TMP/pg/server.key'
EOF
fi
cat >"$TMP/pg/data/pg_hba.conf" <<EOF
local all postgres peer
host  all all 127.0.0.1/32 scram-sha-256
EOF
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/postgres.log" -w -t 60 start \
	>/dev/null 2>&1 || { cp "$TMP/pg/postgres.log" "$LOGDIR/postgres.log"; die "PostgreSQL did not start, see $LOGDIR/postgres.log"; }
PG_STARTED=1
pgsu() { runuser -u postgres -- "$PGBIN/psql" -X -h "$TMP/run" -p "$PGPORT" -d "${2:-postgres}" -v ON_ERROR_STOP=1 -qAt -c "$1"; }
pgsu "CREATE ROLE bench LOGIN PASSWORD '$PW'" >/dev/null && pgsu "CREATE DATABASE bench OWNER bench" >/dev/null ||
	die "cannot create the bench role/database"
export PGPASSWORD=$PW
say "pgbench -i -s $SCALE"
"$PGBIN/pgbench" -h 127.0.0.1 -p "$PGPORT" -U bench -i -s "$SCALE" -q bench >"$LOGDIR/pgbench-init.log" 2>&1 ||
	die "pgbench -i failed, see $LOGDIR/pgbench-init.log"

# ---------------------------------------------------------------- poolers
# One configuration for every pooler; only listen_port differs between the copies.
printf '"bench" "%s"\n' "$PW" >"$TMP/run/userlist.txt"
write_ini() {   # write_ini PORT FILE [tls]
	cat >"$2" <<EOF
;; pgmux bench: the same settings for every pooler (only listen_port differs)
[databases]
bench = host=127.0.0.1 port=$PGPORT dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $1
unix_socket_dir = $TMP/run
auth_type = scram-sha-256
auth_file = $TMP/run/userlist.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 6000
log_connections = 0
log_disconnections = 0
EOF
	[ "${3:-}" = tls ] || return 0
	# the TLS phase: TLS on both sides; bench may run SHOW for the TLS check (tls_check)
	cat >>"$2" <<EOF
client_tls_sslmode = require
client_tls_cert_file = $TMP/run/pooler.crt
client_tls_key_file = $TMP/run/pooler.key
server_tls_sslmode = require
stats_users = bench
EOF
}
CONFIG="auth_type=scram-sha-256 (plain-text userlist), pool_mode=transaction, default_pool_size=20, max_client_conn=6000, log_connections=0; pgbench -j 2, scale $SCALE"
[ $TLS_WANTED = 0 ] || CONFIG+="; tls_ workloads: the same plus client_tls_sslmode=require and server_tls_sslmode=require (other TLS keys at their defaults), PostgreSQL ssl=on, pgbench sslmode=require, self-signed ECDSA P-256 certificates"
chown -R postgres:postgres "$TMP/run"

MODE=plain          # tls once tls_phase has run
INI_SUFFIX=
alive() { [ -n "${PID[$1]}" ] && ours "${PID[$1]}"; }
conninfo() { echo "host=127.0.0.1 port=${PORT[$1]} dbname=bench user=bench connect_timeout=5"; }
start_target() {
	local t=$1 i
	case $t in
	direct) return 0 ;;
	forwarder) "$TMP/forwarder" "${PORT[$t]}" 127.0.0.1 "$PGPORT" >"${LOG[$t]}" 2>&1 & ;;
	pgbouncer-deb | pgbouncer-new | pgmux)
		local bin=$BIN_DEB
		[ $t = pgbouncer-new ] && bin=$BIN_NEW
		[ $t = pgmux ] && bin=$PGMUX_BIN
		[ -x "$bin" ] || { fail_target $t "no binary at $bin"; return 1; }
		local ini=$TMP/run/$t$INI_SUFFIX.ini
		write_ini "${PORT[$t]}" "$ini" "$MODE"
		chown postgres:postgres "$ini"
		"$bin" -u postgres "$ini" >"${LOG[$t]}" 2>&1 &
		;;
	esac
	PID[$t]=$!
	PIDS+=("$!")
	for i in $(seq 40); do
		if ! alive $t; then
			wait "${PID[$t]}"
			fail_target $t "exited at startup with status $?"
			return 1
		fi
		[ "$(timeout 10 "$PGBIN/psql" -X "$(conninfo $t)" -qAtc 'select 1' 2>/dev/null)" = 1 ] && return 0
		sleep 0.25
	done
	fail_target $t "did not answer 'select 1' within 10 s"
	stop_pid "${PID[$t]}"
	return 1
}
for t in "${TARGETS[@]}"; do
	[ "${STATUS[$t]}" = ok ] || continue
	say "starting $t on port ${PORT[$t]}"
	start_target $t
done

# warm up: server connections opened, caches filled
for t in "${TARGETS[@]}"; do
	[ "${STATUS[$t]}" = ok ] || continue
	timeout -k 5 $((WARMUP + 120)) "$PGBIN/pgbench" -h 127.0.0.1 -p "${PORT[$t]}" -U bench -n -S -c 20 -j 2 \
		-T "$WARMUP" bench >"$LOGDIR/warmup-$t.out" 2>&1 ||
		fail_target $t "warm-up pgbench failed (see $LOGDIR/warmup-$t.out)"
	if [ $t != direct ] && ! alive $t; then fail_target $t "exited during warm-up"; fi
done

# ---------------------------------------------------------------- idle clients: RSS
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
idle_test() {
	local t=$1 before after ipid i res
	before=$(rss_kb "${PID[$t]}")
	rm -f "$TMP/ready"
	"$TMP/idleconn" "$(conninfo $t)" "$IDLE_CLIENTS" "$TMP/ready" 120 >"$LOGDIR/idle-$t.log" 2>&1 &
	ipid=$!
	PIDS+=("$ipid")
	for i in $(seq 3300); do [ -f "$TMP/ready" ] || ! ours $ipid && break; sleep 0.1; done
	sleep 2
	after=$(rss_kb "${PID[$t]}")
	res=$(cat "$TMP/ready" 2>/dev/null)
	stop_pid $ipid
	if ! alive $t; then
		fail_target $t "exited during the idle-client test"
		python3 "$HERE/benchlib.py" idle "$TMP/idle.jsonl" target=$t error="exited" log="${LOG[$t]}"
	elif [ -z "$res" ]; then
		python3 "$HERE/benchlib.py" idle "$TMP/idle.jsonl" target=$t error="idleconn gave no result" log="$LOGDIR/idle-$t.log"
	else
		# shellcheck disable=SC2086
		python3 "$HERE/benchlib.py" idle "$TMP/idle.jsonl" target=$t $res rss_before_kb=$before rss_after_kb=$after
		say "$t: $res RSS ${before} -> ${after} KiB"
	fi
	sleep 2         # let the pooler finish closing them
}
if [ "$IDLE_CLIENTS" -gt 0 ]; then
	for t in pgbouncer-deb pgbouncer-new pgmux; do
		has_target $t || continue
		if [ "${STATUS[$t]}" = ok ]; then
			say "$t: $IDLE_CLIENTS idle clients"
			idle_test $t
		else
			python3 "$HERE/benchlib.py" idle "$TMP/idle.jsonl" target=$t error="${WHY[$t]}" log="${LOG[$t]}"
		fi
	done
fi

# ---------------------------------------------------------------- TLS phase
declare -A TLS_DESC  # target -> the TLS versions/ciphers tls_check saw
TLS_BAD=()           # targets where tls_check failed
TLS_TARGETS=()       # the targets of the tls_ workloads: all but the forwarder
for t in "${TARGETS[@]}"; do [ $t = forwarder ] || TLS_TARGETS+=("$t"); done

# adm TARGET QUERY: QUERY on TARGET's admin console, unaligned with "|" and the header line
adm() {
	timeout 15 "$PGBIN/psql" -X -A -F '|' -P footer=off \
		"host=127.0.0.1 port=${PORT[$1]} dbname=pgbouncer user=bench connect_timeout=5" -c "$2"
}

# tls_check TARGET: run while pgbench (application_name bench-TARGET) works through TARGET in the
# TLS phase. For a pooler: in SHOW CLIENTS, its bench clients must have a tls value (none active
# without one); in SHOW SERVERS, every bench server connection; and on PostgreSQL, pg_stat_ssl
# must say ssl for the backends on the pooler's local ports. For direct: pg_stat_ssl for
# pgbench's backends. Prints what it saw on one line; status 1 if anything is unencrypted, 2 if
# no connection was seen (yet).
tls_check() {
	local t=$1 out n=0 s=0 bad=0 cver=- sn=0 ss=0 ports=0 pn=0 ps=0 pver=- where
	if [ $t != direct ]; then
		out=$(adm $t 'SHOW CLIENTS' 2>&1) || { echo "SHOW CLIENTS failed: ${out//$'\n'/ }"; return 1; }
		read -r n s bad cver <<<"$(awk -F'|' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
			$c["database"] == "bench" { n++
				if ($c["tls"] != "") { s++; if (v == "") v = $c["tls"] } else if ($c["state"] == "active") b++ }
			END { print n + 0, s + 0, b + 0, (v == "" ? "-" : v) }' <<<"$out")"
		out=$(adm $t 'SHOW SERVERS' 2>&1) || { echo "SHOW SERVERS failed: ${out//$'\n'/ }"; return 1; }
		read -r sn ss ports <<<"$(awk -F'|' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
			$c["database"] == "bench" && $c["state"] ~ /^(active|idle|used)$/ { n++
				if ($c["tls"] != "") s++; p = p (p == "" ? "" : ",") $c["local_port"] }
			END { print n + 0, s + 0, (p == "" ? "0" : p) }' <<<"$out")"
		where="a.client_port in ($ports)"
	else
		where="a.application_name = 'bench-direct'"
	fi
	IFS='|' read -r pn ps pver <<<"$(pgsu "SELECT count(*), count(*) FILTER (WHERE s.ssl),
		coalesce(max(s.version || '/' || s.cipher), '-') FROM pg_stat_activity a JOIN pg_stat_ssl s
		USING (pid) WHERE a.client_addr = '127.0.0.1' AND $where")"
	out="PostgreSQL backends $ps/$pn ssl ($pver)"
	[ $t = direct ] || out="clients $s/$n tls ($cver), servers $ss/$sn tls, $out"
	echo "$out"
	[ "$ps" = "$pn" ] && [ "$ss" = "$sn" ] && [ "$bad" = 0 ] || return 1
	[ "$pn" -gt 0 ] && { [ $t = direct ] || { [ "$s" -gt 0 ] && [ "$sn" -gt 0 ]; }; } || return 2
}
# tls_verify TARGET: tls_check; while it has seen nothing (clients may still be connecting), up
# to 3 tries 0.5 s apart
tls_verify() {
	local i out rc
	for i in 1 2 3; do
		out=$(tls_check $1)
		rc=$?
		[ $rc = 2 ] && [ $i -lt 3 ] || break
		sleep 0.5
	done
	echo "$out"
	return $rc
}
tls_failed() {   # tls_failed TARGET WHAT: loud, and the target's further runs are skipped
	TLS_BAD+=("$1")
	say "!!! $1: TLS IS NOT IN USE as configured: $2"
	fail_target $1 "TLS check failed: $2"
}

# tls_phase: before the first tls_ workload. PostgreSQL gets ssl=on (a reload), every pooler is
# restarted with the TLS configuration on a new port, libpq clients use sslmode=require from now
# on, and each target gets a TLS warm-up during which tls_check runs.
tls_phase() {
	local t w=$((WARMUP < 2 ? 2 : WARMUP)) wpid desc ports i=0 up=0
	say "TLS phase: PostgreSQL ssl=on, poolers restarted with client/server_tls_sslmode=require"
	pgsu "ALTER SYSTEM SET ssl = on" >/dev/null && pgsu "SELECT pg_reload_conf()" >/dev/null ||
		die "cannot turn ssl on in PostgreSQL"
	export PGSSLMODE=require
	MODE=tls
	INI_SUFFIX=-tls
	for i in $(seq 50); do
		[ "$(timeout 10 "$PGBIN/psql" -X -qAt "host=127.0.0.1 port=$PGPORT dbname=bench user=bench" \
			-c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' 2>/dev/null)" = t ] && { up=1; break; }
		sleep 0.1
	done
	[ $up = 1 ] || die "PostgreSQL does not accept TLS connections after ssl=on (see $TMP/pg/postgres.log)"
	read -ra ports <<<"$(python3 "$HERE/benchlib.py" ports ${#TLS_TARGETS[@]})"
	i=0
	for t in "${TLS_TARGETS[@]}"; do
		i=$((i + 1))
		[ $t != direct ] && [ "${STATUS[$t]}" = ok ] || continue
		stop_pid "${PID[$t]}"
		PORT[$t]=${ports[$((i - 1))]}
		LOG[$t]=$LOGDIR/$t-tls.log
		say "restarting $t with TLS on port ${PORT[$t]}"
		start_target $t
	done
	for t in "${TLS_TARGETS[@]}"; do
		[ "${STATUS[$t]}" = ok ] || continue
		PGAPPNAME=bench-$t timeout -k 5 $((w + 120)) "$PGBIN/pgbench" -h 127.0.0.1 -p "${PORT[$t]}" -U bench \
			-n -S -c 20 -j 2 -T $w bench >"$LOGDIR/warmup-tls-$t.out" 2>&1 &
		wpid=$!
		PIDS+=("$wpid")
		sleep $((w / 2))
		if desc=$(tls_verify $t); then
			TLS_DESC[$t]=$desc
			say "$t: TLS in use: $desc"
		else
			tls_failed $t "$desc"
		fi
		wait $wpid || fail_target $t "TLS warm-up pgbench failed (see $LOGDIR/warmup-tls-$t.out)"
		if [ $t != direct ] && ! alive $t; then fail_target $t "exited during the TLS warm-up"; fi
	done
}

# ---------------------------------------------------------------- workloads
: >"$TMP/workloads.tsv"
for w in "${WORKLOADS[@]}"; do
	IFS='|' read -r wk title args <<<"$w"
	want_workload "$wk" || continue
	printf '%s\t%s\t%s\n' "$wk" "$title" "$args -j 2 -T $RUN_S" >>"$TMP/workloads.tsv"
done

run_one() {     # run_one TARGET WORKLOAD ARGS ROUND
	local t=$1 wk=$2 args=$3 r=$4 spid= rc out=$LOGDIR/pgbench-$2-$1-r$4.out i envs=() chk="" err=""
	if [ $wk = tpcb50 ]; then
		# what pgbench does before a run without -n, done directly on PostgreSQL
		for q in "VACUUM pgbench_branches" "VACUUM pgbench_tellers" "TRUNCATE pgbench_history"; do
			pgsu "$q" bench >/dev/null
		done
	fi
	if [ -n "${PID[$t]}" ]; then
		python3 "$HERE/benchlib.py" sample "${PID[$t]}" "$TMP/samples" &
		spid=$!
		PIDS+=("$spid")
		for i in $(seq 50); do [ -s "$TMP/samples" ] && break; sleep 0.05; done
	fi
	if [[ $wk == tls_* ]]; then
		# TLS must be in use during this very run: checked half-way through
		envs=("PGAPPNAME=bench-$t")
		rm -f "$TMP/tlscheck"
		(sleep $((RUN_S / 2)); tls_verify $t >"$TMP/tlscheck" 2>&1 || echo FAILED >>"$TMP/tlscheck") &
		chk=$!
		PIDS+=("$chk")
	fi
	# shellcheck disable=SC2086
	env "${envs[@]}" timeout -k 5 $((RUN_S + 300)) "$PGBIN/pgbench" -h 127.0.0.1 -p "${PORT[$t]}" -U bench -j 2 -T "$RUN_S" \
		-l --log-prefix="$TMP/logs/tx" $args bench >"$out" 2>&1
	rc=$?
	if [ -n "$spid" ]; then sleep 0.3; stop_pid $spid; fi
	if [ -n "$chk" ]; then
		wait $chk
		if grep -q '^FAILED$' "$TMP/tlscheck" || ! [ -s "$TMP/tlscheck" ]; then
			err="TLS check failed: $(head -1 "$TMP/tlscheck" 2>/dev/null)"
			tls_failed $t "${err#TLS check failed: }"
		fi
	fi
	python3 "$HERE/benchlib.py" analyze "$TMP/results.jsonl" target=$t workload=$wk round=$r out="$out" \
		rc=$rc logs="$TMP/logs/tx" ${spid:+samples="$TMP/samples"} ${err:+error="$err"} | sed "s/^/[$(date +%T)]   $wk r$r $t: /" >&2
	rm -f "$TMP/samples" "$TMP"/logs/tx.*
	if [ $t != direct ] && ! alive $t; then fail_target $t "exited during $wk round $r"; fi
}

while IFS=$'\t' read -r wk title args; do
	tg=("${TARGETS[@]}")
	if [[ $wk == tls_* ]]; then
		[ $MODE = tls ] || tls_phase </dev/null
		tg=("${TLS_TARGETS[@]}")
	fi
	say "workload $title: pgbench $args"
	for r in $(seq "$ROUNDS"); do
		n=${#tg[@]}
		for i in $(seq 0 $((n - 1))); do
			t=${tg[$(((i + r - 1) % n))]}   # rotate the order each round
			[ "${STATUS[$t]}" = ok ] && run_one "$t" "$wk" "${args% -j 2 -T *}" "$r"
		done
	done
done <"$TMP/workloads.tsv"

# ---------------------------------------------------------------- report
PGMUX_REV=$(git -C "$ROOT" log -1 --format='%h %cd' --date=short 2>/dev/null)
git -C "$ROOT" diff --quiet HEAD -- src include meson.build 2>/dev/null || PGMUX_REV+=" (+ uncommitted changes)"
{
	printf 'date\t%s\n' "$(date '+%Y-%m-%d %H:%M %Z')"
	printf 'host\t%s x %s, %s MiB RAM, Linux %s\n' "$(nproc)" "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
		"$(free -m | awk '/^Mem:/ {print $2}')" "$(uname -r)"
	printf 'postgres\t%s: max_connections=700 shared_buffers=128MB fsync=off synchronous_commit=off\n' \
		"$("$PGBIN/postgres" -V)"
	printf 'config\t%s\n' "$CONFIG"
	printf 'load\tload average %s at the start, %s at the end (other work on the machine skews the figures)\n' \
		"$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf 'pgmux\t%s\n' "$PGMUX_REV"
	printf 'seconds\t%s\nrounds\t%s\nidle_clients\t%s\n' "$RUN_S" "$ROUNDS" "$IDLE_CLIENTS"
	if [ ${#TLS_DESC[@]} -gt 0 ]; then
		printf 'tls\t'
		for t in "${TLS_TARGETS[@]}"; do
			[ -z "${TLS_DESC[$t]:-}" ] || printf '%s: %s; ' "${LABEL[$t]}" "${TLS_DESC[$t]}"
		done | sed 's/; $//'
		printf '\n'
	fi
} >"$TMP/meta.tsv"
for t in "${TARGETS[@]}"; do
	printf '%s\t%s\t%s\t%s\t%s\n' "$t" "${LABEL[$t]}" "${STATUS[$t]}" "${LOG[$t]}" "${WHY[$t]}"
done >"$TMP/targets.tsv"
echo
python3 "$HERE/benchlib.py" report "$TMP" "$OUT"
cp "$TMP/results.jsonl" "${OUT%.md}.jsonl" 2>/dev/null
echo
echo "markdown: $OUT   logs: $LOGDIR"
if [ ${#TLS_BAD[@]} -gt 0 ]; then
	echo "bench: TLS WAS NOT IN USE as configured for: $(printf '%s\n' "${TLS_BAD[@]}" | sort -u | tr '\n' ' ')(their TLS rows are failed; see the log above)" >&2
	exit 1
fi
