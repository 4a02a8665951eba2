#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# contrib/docker/test.sh: build the pgmux image with podman and check it
# against a real PostgreSQL, with no Docker engine.
#
# What it does (see /work/shared/docs/CONTAINERS.md for why each step is so):
#   1. installs podman, buildah, runc, netavark, iptables, catatonit and
#      debootstrap with apt when they are missing (PGMUX_TEST_NO_APT=1: never);
#   2. keeps every bit of podman state in a temporary folder through
#      CONTAINERS_CONF and CONTAINERS_STORAGE_CONF (runc, explicit ulimits);
#   3. pulls debian:bookworm-slim, or, when no registry is reachable, makes it
#      with debootstrap from the apt mirror and imports it;
#   4. builds the Dockerfile (--format docker keeps HEALTHCHECK);
#   5. starts PostgreSQL as a host process (initdb as the postgres user into a
#      temporary folder, free port) and runs the image with --network host:
#        a. config from DB_* / PGMUX_* variables: psql, auth file mode, uid,
#           /health/ready, HEALTHCHECK, /metrics, secrets not in the logs, and
#           a graceful stop during a running query;
#        b. config from DATABASE_URL with awkward user, password and database;
#        c. a mounted pgmux.ini winning over the environment;
#        d. a read-only root filesystem;
#        e. pgmux --version, and the error without any configuration;
#   6. removes everything it made (podman state, PostgreSQL, and the
#      /var/lib/containers, /run/containers, /run/netns and netavark iptables
#      leftovers when this run created them).
#
# Exit status: 0 all checks passed, 1 a check failed, 77 skipped (no root, no
# podman and no way to install it, or podman cannot run containers here).
#
# Environment:
#   PGMUX_TEST_NO_APT=1        never run apt-get; skip when tools are missing
#   PGMUX_TEST_BASE_TAR=FILE   cache of the debootstrapped base image: imported
#                              when it exists, written after debootstrap when not
#   PGMUX_TEST_CONTEXT=head    build from `git archive HEAD` instead of the work tree
#   PGMUX_TEST_KEEP=1          keep the temporary folder (podman state, logs)

# "cond && pass ... || fail ...": pass only prints, so fail runs only when cond is false.
# shellcheck disable=SC2015
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMAGE=localhost/pgmux:test
BASE=docker.io/library/debian:bookworm-slim
T0=$SECONDS

say() { printf '==> %s\n' "$*"; }
skip() {
    printf 'SKIP: %s\n' "$*"
    exit 77
}
fatal() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

PASSED=0 FAILED=0
pass() {
    PASSED=$((PASSED + 1))
    printf '  ok       %s\n' "$*"
}
fail() {
    FAILED=$((FAILED + 1))
    printf '  FAILED   %s\n' "$*"
}

# ---------------------------------------------------------------------------
# Preconditions and tools

[[ $(uname -s) == Linux ]] || skip "podman test needs Linux"
[[ $(id -u) == 0 ]] || skip "needs root (rootful podman; initdb runs as the postgres user)"

PACKAGES=(podman buildah runc netavark iptables catatonit debootstrap)
missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || echo "$p"
    done
}

pg_bindir() {
    local d
    d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    [[ -n $d && -x $d/initdb ]] && printf '%s' "$d"
}

need=()
mapfile -t need < <(missing_packages)
command -v psql >/dev/null || need+=(postgresql-client)
pg_bindir >/dev/null || need+=(postgresql)
if ((${#need[@]})); then
    if [[ ${PGMUX_TEST_NO_APT:-0} == 1 ]] || ! command -v apt-get >/dev/null; then
        skip "missing ${need[*]} (PGMUX_TEST_NO_APT=1 or no apt-get)"
    fi
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || skip "apt-get update failed: cannot install ${need[*]}"
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
        skip "apt-get install ${need[*]} failed"
fi
PGBIN=$(pg_bindir)

# ---------------------------------------------------------------------------
# Podman state in a temporary folder

WORK=$(mktemp -d /tmp/pgmux-ctr.XXXXXX)
PGDIR=''
PG_STARTED=0
CONTAINERS=()
HAD_VAR_LIB_CONTAINERS=0
[[ -e /var/lib/containers ]] && HAD_VAR_LIB_CONTAINERS=1
HAD_RUN_CONTAINERS=0
[[ -e /run/containers ]] && HAD_RUN_CONTAINERS=1
HAD_NETNS_MOUNT=0
mountpoint -q /run/netns 2>/dev/null && HAD_NETNS_MOUNT=1
HAD_NETAVARK_CHAINS=0
iptables -S NETAVARK_FORWARD >/dev/null 2>&1 && HAD_NETAVARK_CHAINS=1

# Remove the (empty) iptables chains netavark may set up, when this run made them.
remove_netavark_chains() {
    local c
    command -v iptables >/dev/null || return 0
    iptables -D FORWARD -m comment --comment "netavark firewall plugin rules" \
        -j NETAVARK_FORWARD 2>/dev/null
    iptables -F NETAVARK_FORWARD 2>/dev/null && iptables -X NETAVARK_FORWARD 2>/dev/null
    for c in PREROUTING OUTPUT; do
        iptables -t nat -D "$c" -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT 2>/dev/null
    done
    iptables -t nat -D POSTROUTING -j NETAVARK-HOSTPORT-MASQ 2>/dev/null
    for c in NETAVARK-HOSTPORT-DNAT NETAVARK-HOSTPORT-MASQ NETAVARK-HOSTPORT-SETMARK; do
        iptables -t nat -F "$c" 2>/dev/null
    done
    for c in NETAVARK-HOSTPORT-DNAT NETAVARK-HOSTPORT-MASQ NETAVARK-HOSTPORT-SETMARK; do
        iptables -t nat -X "$c" 2>/dev/null
    done
    return 0
}

cleanup() {
    local rc=$? c
    set +e
    for c in "${CONTAINERS[@]}"; do
        podman rm -f -t 0 "$c" >/dev/null 2>&1
    done
    if ((PG_STARTED)); then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1
    fi
    [[ -n $PGDIR ]] && rm -rf "$PGDIR"
    if [[ ${PGMUX_TEST_KEEP:-0} == 1 ]]; then
        echo "kept $WORK (podman state: CONTAINERS_CONF=$WORK/containers.conf" \
            "CONTAINERS_STORAGE_CONF=$WORK/storage.conf)"
    else
        podman system reset -f >/dev/null 2>&1
        rm -rf "$WORK"
        # podman makes these even with its storage elsewhere; remove them
        # only when this run created them.
        ((HAD_VAR_LIB_CONTAINERS)) || rm -rf /var/lib/containers
        ((HAD_RUN_CONTAINERS)) || rm -rf /run/containers
        ((HAD_NETAVARK_CHAINS)) || remove_netavark_chains
        # podman bind-mounts /run/netns for network namespaces; undo it when
        # this run made it and no namespace is left in it.
        if ((!HAD_NETNS_MOUNT)) && mountpoint -q /run/netns 2>/dev/null &&
            [[ -z $(ls -A /run/netns 2>/dev/null) ]]; then
            umount /run/netns 2>/dev/null && rmdir /run/netns 2>/dev/null
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

HARD_NOFILE=$(ulimit -Hn)
[[ $HARD_NOFILE == unlimited ]] && HARD_NOFILE=65536
cat >"$WORK/containers.conf" <<EOF
[containers]
# The sandbox cannot raise rlimits: stay within the hard limits.
default_ulimits = ["nofile=$HARD_NOFILE:$HARD_NOFILE", "nproc=32768:32768"]
[engine]
# crun refuses this host's hybrid cgroup layout; runc works.
runtime = "runc"
[network]
network_backend = "netavark"
EOF
cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$WORK/storage"
runroot = "$WORK/run"
EOF
export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf

if ! out=$(podman info 2>&1 >/dev/null); then
    skip "podman cannot run here: ${out:0:400}"
fi

# ---------------------------------------------------------------------------
# Base image: pull, else debootstrap

T_BASE=$SECONDS
debian_mirror() {
    local m=''
    if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
        m=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources | head -n 1 | cut -d' ' -f1)
    fi
    if [[ -z $m && -r /etc/apt/sources.list ]]; then
        m=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
    fi
    printf '%s' "${m:-http://deb.debian.org/debian}"
}

make_base_rootfs() {
    local r=$1 mirror
    mirror=$(debian_mirror)
    say "debootstrap --variant=minbase bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$r" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
        fatal "debootstrap failed; see $WORK/debootstrap.log (PGMUX_TEST_KEEP=1 keeps it)"
    # Make it look like the official slim image: same apt sources as the
    # host, no docs, man pages, locales or apt caches.
    rm -f "$r/etc/apt/sources.list"
    if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
        cp /etc/apt/sources.list.d/debian.sources "$r/etc/apt/sources.list.d/debian.sources"
    else
        printf 'deb %s bookworm main\n' "$mirror" >"$r/etc/apt/sources.list"
    fi
    printf 'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n' >"$r/etc/apt/apt.conf.d/docker-clean"
    echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Acquire::GzipIndexes "true";' >"$r/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'force-unsafe-io' >"$r/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
        'path-exclude /usr/share/locale/*' >"$r/etc/dpkg/dpkg.cfg.d/docker-slim"
    rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/* \
        "${r:?}"/var/log/* "${r:?}"/tmp/* "${r:?}"/dev/*
    find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/*
    mkdir -p "$r/var/lib/apt/lists/partial" "$r/var/log/apt"
    : >"$r/etc/resolv.conf"
    : >"$r/etc/hostname"
}

if [[ -n ${PGMUX_TEST_BASE_TAR:-} && -s $PGMUX_TEST_BASE_TAR ]]; then
    say "importing the cached base image $PGMUX_TEST_BASE_TAR"
    podman import -q --change 'CMD ["bash"]' "$PGMUX_TEST_BASE_TAR" "$BASE" >/dev/null
    BASE_HOW="cached debootstrap tarball"
elif timeout 30 podman pull -q "$BASE" >/dev/null 2>"$WORK/pull.log"; then
    BASE_HOW="pulled from the registry"
else
    say "registry unreachable ($(tail -n 1 "$WORK/pull.log" | cut -c1-120))"
    make_base_rootfs "$WORK/rootfs"
    if [[ -n ${PGMUX_TEST_BASE_TAR:-} ]]; then
        mkdir -p "$(dirname "$PGMUX_TEST_BASE_TAR")"
        tar --numeric-owner -C "$WORK/rootfs" -cf "$PGMUX_TEST_BASE_TAR" .
        podman import -q --change 'CMD ["bash"]' "$PGMUX_TEST_BASE_TAR" "$BASE" >/dev/null
    else
        tar --numeric-owner -C "$WORK/rootfs" -c . |
            podman import -q --change 'CMD ["bash"]' - "$BASE" >/dev/null
    fi
    rm -rf "$WORK/rootfs"
    BASE_HOW="debootstrap + podman import"
fi
podman tag "$BASE" localhost/debian:bookworm-slim
T_BASE=$((SECONDS - T_BASE))

# Can this host run a container at all?
if ! out=$(podman run --rm --network host "$BASE" true 2>&1); then
    skip "podman cannot start containers here: ${out:0:400}"
fi

# ---------------------------------------------------------------------------
# Build

T_BUILD=$SECONDS
CONTEXT=$ROOT
if [[ ${PGMUX_TEST_CONTEXT:-worktree} == head ]]; then
    CONTEXT=$WORK/context
    mkdir -p "$CONTEXT"
    git -C "$ROOT" archive HEAD | tar -x -C "$CONTEXT"
fi
say "podman build ($CONTEXT)"
if ! podman build --pull=never --format docker --layers=false --network host \
    -t "$IMAGE" -f "$CONTEXT/Dockerfile" "$CONTEXT" >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log"
    fatal "podman build failed"
fi
T_BUILD=$((SECONDS - T_BUILD))
IMAGE_SIZE=$(podman image inspect --format '{{.Size}}' "$IMAGE")
BASE_SIZE=$(podman image inspect --format '{{.Size}}' "$BASE")
say "image built in ${T_BUILD}s: $((IMAGE_SIZE / 1000000)) MB (base $((BASE_SIZE / 1000000)) MB)"

# ---------------------------------------------------------------------------
# PostgreSQL on the host

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PGDIR=$(mktemp -d /tmp/pgmux-ctr-pg.XXXXXX)
chown postgres: "$PGDIR"
PGPORT=$(free_port)
APP_PW="app-$RANDOM$RANDOM"
# An awkward role, password and database for the DATABASE_URL case.
ODD_USER='odd-user'
ODD_PW="p@ss:w/o\"rd'%x ?#$RANDOM"
ODD_DB='odd db-1'
say "starting PostgreSQL ($PGBIN) on port $PGPORT"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 >"$WORK/initdb.log" 2>&1 || fatal "initdb failed"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/pg.log" -w \
    -o "-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1" start >/dev/null ||
    fatal "PostgreSQL did not start: $(tail -n 5 "$PGDIR/pg.log")"
PG_STARTED=1
sql_q() { printf "'%s'" "${1//\'/\'\'}"; }
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h "$PGDIR" -p "$PGPORT" -U postgres \
    -d postgres >/dev/null <<EOF
CREATE ROLE app LOGIN PASSWORD $(sql_q "$APP_PW");
CREATE DATABASE app OWNER app;
CREATE ROLE "$ODD_USER" LOGIN PASSWORD $(sql_q "$ODD_PW");
CREATE DATABASE "$ODD_DB" OWNER "$ODD_USER";
EOF

# psql through pgmux: pgq PORT USER PASSWORD DB SQL
pgq() {
    PGPASSWORD=$3 PGCONNECT_TIMEOUT=5 psql -X -A -t -q -h 127.0.0.1 -p "$1" -U "$2" -d "$4" -c "$5"
}

# Wait until psql through pgmux answers, or the container is gone.
wait_ready() {
    local ctr=$1 port=$2 user=$3 pw=$4 db=$5 i
    for i in $(seq 100); do
        if pgq "$port" "$user" "$pw" "$db" 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        if [[ $(podman inspect --format '{{.State.Running}}' "$ctr" 2>/dev/null) != true ]]; then
            echo "  container $ctr is not running; its log:"
            podman logs "$ctr" 2>&1 | sed 's/^/    | /' | tail -n 20
            return 1
        fi
        sleep 0.2
    done
    echo "  no answer on port $port after 20s; the container log:"
    podman logs "$ctr" 2>&1 | sed 's/^/    | /' | tail -n 20
    return 1
}

# GET a path from the host: http_get PORT PATH -> "STATUS\nBODY" (empty when refused).
http_get() {
    local port=$1 path=$2 line status='' body='' in_body=0
    { exec 4<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 0
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&4
    while IFS= read -r -t 5 line <&4; do
        line=${line%$'\r'}
        if [[ -z $status ]]; then
            status=$line
        elif ((in_body)); then
            body+=$line$'\n'
        elif [[ -z $line ]]; then
            in_body=1
        fi
    done
    exec 4<&-
    printf '%s\n%s' "$status" "$body"
}


# ---------------------------------------------------------------------------
# a. Config from DB_* and PGMUX_* variables

echo
say "a. configuration from DB_* / PGMUX_* variables"
T_RUN=$SECONDS
P1=$(free_port) S1=$(free_port) H1=$(free_port)
CONTAINERS+=(pgmux-test-env)
DB_PASSWORD=$APP_PW podman run -d --name pgmux-test-env --network host \
    --health-interval disable --health-cmd '["/usr/local/bin/pgmux-healthcheck"]' \
    -e DB_HOST=127.0.0.1 -e DB_PORT="$PGPORT" -e DB_USER=app -e DB_PASSWORD -e DB_NAME=app \
    -e POOL_MODE=transaction -e DEFAULT_POOL_SIZE=4 -e MAX_CLIENT_CONN=50 \
    -e AUTH_TYPE=scram-sha-256 -e PGMUX_LISTEN_PORT="$P1" -e PGMUX_STATS_LISTEN_PORT="$S1" \
    -e PGMUX_HEALTH_LISTEN_PORT="$H1" -e PGMUX_SERVER_IDLE_TIMEOUT=120 \
    -e PGMUX_PORT=tcp://10.0.0.1:6432 -e PGMUX_SERVICE_HOST=10.0.0.1 \
    "$IMAGE" >/dev/null
if wait_ready pgmux-test-env "$P1" app "$APP_PW" app; then
    T_READY=$((SECONDS - T_RUN))
    pass "psql through pgmux answers (ready after ~${T_READY}s)"
    got=$(pgq "$P1" app "$APP_PW" app 'SELECT current_user || $$/$$ || current_database()' 2>&1)
    [[ $got == app/app ]] && pass "SELECT current_user, current_database() = $got" ||
        fail "SELECT returned: $got"
    got=$(pgq "$P1" app "$APP_PW" app 'BEGIN; CREATE TEMP TABLE t(x int); INSERT INTO t SELECT generate_series(1,1000); SELECT sum(x) FROM t; COMMIT;' 2>&1)
    [[ $got == 500500 ]] && pass "a transaction (temp table, 1000 rows) = $got" ||
        fail "transaction returned: $got"
    ok=1
    for i in $(seq 20); do
        pgq "$P1" app "$APP_PW" app "SELECT $i" >/dev/null 2>&1 || ok=0
    done
    ((ok)) && pass "20 connections in a row" || fail "some of 20 connections failed"
    got=$(pgq "$P1" app wrong-password app 'SELECT 1' 2>&1 || true)
    [[ $got == *"authentication failed"* ]] && pass "a wrong password is refused" ||
        fail "wrong password: $got"
else
    fail "pgmux in the container did not answer psql"
fi

ini=$(podman exec pgmux-test-env cat /run/pgmux/pgmux.ini 2>&1 || true)
for want in 'pool_mode = transaction' 'default_pool_size = 4' 'max_client_conn = 50' \
    'auth_type = scram-sha-256' 'server_idle_timeout = 120' "listen_port = $P1" \
    "app = host='127.0.0.1' port=$PGPORT dbname='app'"; do
    [[ $ini == *"$want"* ]] && pass "generated ini has: $want" || fail "generated ini lacks: $want"
done
[[ $ini != *"$APP_PW"* ]] && pass "the password is not in pgmux.ini" || fail "password in pgmux.ini"
[[ $ini != *10.0.0.1* ]] && pass "Kubernetes service-link variables (PGMUX_PORT...) are ignored" ||
    fail "PGMUX_PORT/PGMUX_SERVICE_HOST leaked into the ini"
got=$(podman exec pgmux-test-env stat -c '%a %U' /run/pgmux/userlist.txt 2>&1 || true)
[[ $got == '600 pgmux' ]] && pass "auth file mode/owner: $got" || fail "auth file mode/owner: $got"
got=$(podman exec pgmux-test-env sh -c 'grep ^Uid: /proc/1/status; cat /proc/1/comm' 2>&1 | tr -s '\t\n' '  ' || true)
[[ $got == 'Uid: 10001 10001 10001 10001 pgmux ' ]] && pass "PID 1 is pgmux running as uid 10001" ||
    fail "PID 1: $got"

# /health/ready from the host, then the image's HEALTHCHECK
resp=$(http_get "$H1" /health/ready)
if [[ ${resp%%$'\n'*} =~ ^HTTP/1\.[01]\ 200 ]]; then
    pass "GET /health/ready: ${resp%%$'\n'*}"
else
    fail "GET /health/ready: ${resp:-connection refused}"
fi
hc=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" 2>/dev/null || true)
[[ $hc == *pgmux-healthcheck* ]] && pass "image HEALTHCHECK: $hc" || fail "image HEALTHCHECK: $hc"
if hcout=$(podman healthcheck run pgmux-test-env 2>&1); then
    pass "podman healthcheck run: healthy"
else
    fail "podman healthcheck run: ${hcout:0:200}"
fi
# Readiness follows PAUSE (SIGUSR1) and RESUME (SIGUSR2), and the image's check sees it.
podman kill --signal USR1 pgmux-test-env >/dev/null
sleep 0.5
got=$(podman exec pgmux-test-env /usr/local/bin/pgmux-healthcheck 2>&1 | tr '\n' ' ' || true)
[[ $got == unhealthy:*503*paused* ]] && pass "paused (SIGUSR1): healthcheck says $got" ||
    fail "paused (SIGUSR1): healthcheck says $got"
podman kill --signal USR2 pgmux-test-env >/dev/null
sleep 0.5
got=$(podman exec pgmux-test-env /usr/local/bin/pgmux-healthcheck 2>&1 | tr '\n' ' ' || true)
[[ $got == healthy:* ]] && pass "resumed (SIGUSR2): healthcheck says $got" ||
    fail "resumed (SIGUSR2): healthcheck says $got"

resp=$(http_get "$S1" /metrics)
if [[ ${resp%%$'\n'*} =~ ^HTTP/1\.[01]\ 200 && $resp == *pgmux_* ]]; then
    pass "GET /metrics: ${resp%%$'\n'*}, $(grep -c '^pgmux_' <<<"$resp") pgmux_ samples"
else
    fail "GET /metrics: ${resp:-connection refused}"
fi

# Graceful stop: a query running when the stop signal arrives must finish.
(pgq "$P1" app "$APP_PW" app "SELECT pg_sleep(2), 'finished'" >"$WORK/slow.out" 2>&1; echo "rc=$?" >>"$WORK/slow.out") &
SLOW_PID=$!
sleep 0.7
T_STOP=$SECONDS
podman stop -t 20 pgmux-test-env >/dev/null 2>&1 || true
T_STOP=$((SECONDS - T_STOP))
wait "$SLOW_PID" || true
got=$(tr '\n' ' ' <"$WORK/slow.out")
[[ $got == *finished*rc=0* ]] && pass "query in flight at stop finished: $got" ||
    fail "query in flight at stop: $got"
code=$(podman inspect --format '{{.State.ExitCode}}' pgmux-test-env)
[[ $code == 0 && $T_STOP -lt 20 ]] && pass "stopped with SIGINT in ~${T_STOP}s, exit code $code" ||
    fail "stop took ${T_STOP}s, exit code $code"
logs=$(podman logs pgmux-test-env 2>&1)
[[ $logs == *SIGINT* ]] && pass "pgmux logged the SIGINT shutdown" || fail "no SIGINT in the log"
[[ $logs != *"$APP_PW"* ]] && pass "the password is not in the container log" ||
    fail "the password appears in the container log"
printf '%s\n' "$logs" >"$WORK/env.log"

# ---------------------------------------------------------------------------
# b. DATABASE_URL with characters that need escaping

echo
say "b. configuration from DATABASE_URL (awkward names and password)"
urlenc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
P2=$(free_port)
CONTAINERS+=(pgmux-test-url)
DATABASE_URL="postgresql://$(urlenc "$ODD_USER"):$(urlenc "$ODD_PW")@127.0.0.1:$PGPORT/$(urlenc "$ODD_DB")?sslmode=disable" \
    podman run -d --name pgmux-test-url --network host --no-healthcheck \
    -e DATABASE_URL -e PGMUX_LISTEN_PORT="$P2" -e PGMUX_HEALTH_LISTEN_PORT=0 \
    -e PGMUX_STATS_LISTEN_PORT=0 "$IMAGE" >/dev/null
if wait_ready pgmux-test-url "$P2" "$ODD_USER" "$ODD_PW" "$ODD_DB"; then
    got=$(pgq "$P2" "$ODD_USER" "$ODD_PW" "$ODD_DB" 'SELECT current_user || $$/$$ || current_database()' 2>&1)
    [[ $got == "$ODD_USER/$ODD_DB" ]] && pass "user, password and database from the URL: $got" ||
        fail "URL case returned: $got"
else
    fail "pgmux configured by DATABASE_URL did not answer"
fi
got=$(podman exec pgmux-test-url /usr/local/bin/pgmux-healthcheck 2>&1 || true)
[[ $got == healthy:* ]] && pass "healthcheck falls back to the pooler port: $got" ||
    fail "healthcheck with the health listener off: $got"
logs=$(podman logs pgmux-test-url 2>&1)
[[ $logs != *"$ODD_PW"* && $logs != *"$(urlenc "$ODD_PW")"* ]] &&
    pass "the password is not in the container log" || fail "the password appears in the log"
podman rm -f -t 0 pgmux-test-url >/dev/null

# ---------------------------------------------------------------------------
# c. A mounted config wins over the environment

echo
say "c. mounted /etc/pgmux (pgmux.ini + userlist.txt) wins over the environment"
P3=$(free_port)
mkdir -p "$WORK/etc"
cat >"$WORK/etc/pgmux.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PGPORT dbname=app

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $P3
unix_socket_dir =
auth_type = md5
auth_file = /etc/pgmux/userlist.txt
pool_mode = session
EOF
printf '"app" "%s"\n' "$APP_PW" >"$WORK/etc/userlist.txt"
chown -R 10001:10001 "$WORK/etc"
chmod 0600 "$WORK/etc/userlist.txt"
chmod 0711 "$WORK"
CONTAINERS+=(pgmux-test-mount)
podman run -d --name pgmux-test-mount --network host --no-healthcheck \
    -v "$WORK/etc:/etc/pgmux:ro" -e DB_HOST=does-not-exist.invalid -e POOL_MODE=statement \
    "$IMAGE" >/dev/null
if wait_ready pgmux-test-mount "$P3" app "$APP_PW" app; then
    pass "psql through pgmux with the mounted config"
else
    fail "pgmux with a mounted config did not answer"
fi
logs=$(podman logs pgmux-test-mount 2>&1)
[[ $logs == *"using the mounted /etc/pgmux/pgmux.ini"* ]] &&
    pass "entrypoint says the environment is ignored" || fail "no notice about ignored variables"
got=$(podman exec pgmux-test-mount /usr/local/bin/pgmux-healthcheck 2>&1 || true)
[[ $got == healthy:* ]] && pass "healthcheck reads the mounted config: $got" ||
    fail "healthcheck with the mounted config: $got"
podman rm -f -t 0 pgmux-test-mount >/dev/null

# ---------------------------------------------------------------------------
# d. Read-only root filesystem (as in the Kubernetes manifests)

echo
say "d. --read-only root filesystem, config from the environment"
P4=$(free_port)
CONTAINERS+=(pgmux-test-ro)
DB_PASSWORD=$APP_PW podman run -d --name pgmux-test-ro --network host --no-healthcheck --read-only \
    -e DB_HOST=127.0.0.1 -e DB_PORT="$PGPORT" -e DB_USER=app -e DB_PASSWORD -e DB_NAME=app \
    -e PGMUX_LISTEN_PORT="$P4" -e PGMUX_HEALTH_LISTEN_PORT=0 -e PGMUX_STATS_LISTEN_PORT=0 \
    "$IMAGE" >/dev/null
if wait_ready pgmux-test-ro "$P4" app "$APP_PW" app; then
    pass "psql through pgmux with a read-only root (config written to the /run tmpfs)"
else
    fail "pgmux with --read-only did not answer"
fi
podman rm -f -t 0 pgmux-test-ro >/dev/null

# ---------------------------------------------------------------------------
# e. Other commands

got=$(podman run --rm --network host --no-healthcheck "$IMAGE" pgmux --version 2>&1)
[[ $got == pgmux\ * ]] && pass "pgmux --version: $got" || fail "pgmux --version: $got"
got=$(podman run --rm --network host --no-healthcheck "$IMAGE" 2>&1 || true)
[[ $got == *"no configuration"* ]] && pass "no config and no variables: clear error" ||
    fail "without any config: $got"
T_RUN=$((SECONDS - T_RUN))

echo
echo "image $IMAGE: $((IMAGE_SIZE / 1000000)) MB ($IMAGE_SIZE bytes); base ($BASE_HOW) $((BASE_SIZE / 1000000)) MB"
echo "time: base image ${T_BASE}s, build ${T_BUILD}s, container checks ${T_RUN}s, total $((SECONDS - T0))s"
echo "result: $PASSED passed, $FAILED failed"
((FAILED == 0))
