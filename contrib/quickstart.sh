#!/usr/bin/env bash
# pgmux quickstart: build pgmux, start a throwaway PostgreSQL and pgmux in front of it (with
# the example config etc/pgmux.ini and etc/userlist.txt), and print how to connect.
#
#   contrib/quickstart.sh           # runs until Ctrl-C, then stops both and cleans up
#   contrib/quickstart.sh --smoke   # same, runs `SELECT 1` through pgmux with psql, exits 0/1
#
# Installs what it needs with apt when missing (Debian/Ubuntu). Run as root (PostgreSQL and
# pgmux then run as the `postgres` user) or as a normal user (they run as you; apt needs sudo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SMOKE=0
for a in "$@"; do
    case "$a" in
    --smoke) SMOKE=1 ;;
    -h | --help)
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "unknown argument: $a (try --help)" >&2
        exit 2
        ;;
    esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

PGVER=15
PGBIN=/usr/lib/postgresql/$PGVER/bin
BUILD="${PGMUX_BUILD_DIR:-$ROOT/build}"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi

# --- dependencies ----------------------------------------------------------------------------
PKGS=(postgresql-$PGVER postgresql-client meson ninja-build gcc pkg-config libev-dev
      libinih-dev libssl-dev)
missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- build -----------------------------------------------------------------------------------
cd "$ROOT"
if [ ! -f "$BUILD/build.ninja" ]; then
    say "configuring $BUILD"
    meson setup "$BUILD" >&2
fi
say "building pgmux"
ninja -C "$BUILD" pgmux >&2
PGMUX="$BUILD/pgmux"

# --- a throwaway folder, owned by whoever runs PostgreSQL and pgmux --------------------------
if [ "$(id -u)" -eq 0 ]; then
    RUNAS=postgres
    as_runner() { runuser -u "$RUNAS" -- "$@"; }
    USER_OPT=(-u "$RUNAS")
else
    RUNAS="$(id -un)"
    as_runner() { "$@"; }
    USER_OPT=()
fi
TMP="$(mktemp -d /tmp/pgmux-quickstart.XXXXXX)"
chmod 755 "$TMP"
[ "$(id -u)" -eq 0 ] && chown "$RUNAS" "$TMP"

PGMUX_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$PGMUX_PID" ] && kill -0 "$PGMUX_PID" 2>/dev/null; then
        kill -QUIT "$PGMUX_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$PGMUX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PGMUX_PID" 2>/dev/null || true
    fi
    if [ -f "$TMP/data/postmaster.pid" ]; then
        as_runner "$PGBIN/pg_ctl" -D "$TMP/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$TMP"
    echo >&2
    say "stopped pgmux and PostgreSQL, removed $TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
    local p=$1
    while ! port_free "$p"; do p=$((p + 1)); done
    echo "$p"
}
PGPORT=$(pick_port 55432)
PORT=$(pick_port 6432)
[ "$PORT" = "$PGPORT" ] && PORT=$(pick_port $((PGPORT + 1)))
PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 16)"

# --- PostgreSQL ------------------------------------------------------------------------------
say "initdb into $TMP/data (PostgreSQL $PGVER on 127.0.0.1:$PGPORT)"
printf '%s\n' "$PASSWORD" >"$TMP/pwfile"
[ "$(id -u)" -eq 0 ] && chown "$RUNAS" "$TMP/pwfile"
as_runner "$PGBIN/initdb" -D "$TMP/data" -U postgres --pwfile="$TMP/pwfile" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
    --no-sync >"$TMP/initdb.log" 2>&1 || { cat "$TMP/initdb.log" >&2; exit 1; }
rm -f "$TMP/pwfile"
cat >>"$TMP/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$TMP'
EOF
as_runner "$PGBIN/pg_ctl" -D "$TMP/data" -l "$TMP/postgres.log" -w start >/dev/null \
    || { cat "$TMP/postgres.log" >&2; exit 1; }

# --- pgmux: the example config, with ports and paths pointed at the temp folder -------------
cp "$ROOT/etc/pgmux.ini" "$TMP/pgmux-example.ini"
# our PostgreSQL superuser with this run's password; the example's other users stay as they are
grep -v '^"postgres"' "$ROOT/etc/userlist.txt" >"$TMP/userlist.txt" || true
printf '"postgres" "%s"\n' "$PASSWORD" >>"$TMP/userlist.txt"
cat >"$TMP/pgmux.ini" <<EOF
;; quickstart overrides: the example config, then what differs for this throwaway setup
%include $TMP/pgmux-example.ini

[databases]
postgres = host=127.0.0.1 port=$PGPORT dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir = $TMP
auth_type = scram-sha-256
auth_file = $TMP/userlist.txt
pidfile = $TMP/pgmux.pid
EOF
chmod 600 "$TMP/userlist.txt"
[ "$(id -u)" -eq 0 ] && chown "$RUNAS" "$TMP"/*.ini "$TMP/userlist.txt"

say "starting pgmux on 127.0.0.1:$PORT (log: $TMP/pgmux.log)"
"$PGMUX" "${USER_OPT[@]}" "$TMP/pgmux.ini" >"$TMP/pgmux.log" 2>&1 &
PGMUX_PID=$!
for _ in $(seq 100); do
    if ! kill -0 "$PGMUX_PID" 2>/dev/null; then
        cat "$TMP/pgmux.log" >&2
        say "pgmux exited during startup"
        exit 1
    fi
    port_free "$PORT" || break
    sleep 0.1
done
port_free "$PORT" && { cat "$TMP/pgmux.log" >&2; say "pgmux is not listening"; exit 1; }

PSQL_LINE="PGPASSWORD=$PASSWORD psql -h 127.0.0.1 -p $PORT -U postgres postgres"

if [ "$SMOKE" -eq 1 ]; then
    say "smoke test: SELECT 1 through pgmux"
    out="$(PGPASSWORD=$PASSWORD PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -At -h 127.0.0.1 \
        -p "$PORT" -U postgres -d postgres -c 'SELECT 1' 2>&1)" || true
    if [ "$out" = "1" ]; then
        say "smoke test passed"
        exit 0
    fi
    echo "psql said: $out" >&2
    echo "--- pgmux log ---" >&2
    cat "$TMP/pgmux.log" >&2
    say "smoke test FAILED"
    exit 1
fi

cat <<EOF

pgmux is running in front of a throwaway PostgreSQL $PGVER.

  connect:   $PSQL_LINE
  pgbench:   PGPASSWORD=$PASSWORD pgbench -h 127.0.0.1 -p $PORT -U postgres -i postgres
  config:    $TMP/pgmux.ini (includes a copy of etc/pgmux.ini)
  pgmux log: $TMP/pgmux.log

Press Ctrl-C to stop both and remove $TMP.
EOF
wait "$PGMUX_PID" || true
say "pgmux exited"
cat "$TMP/pgmux.log" >&2
exit 1
