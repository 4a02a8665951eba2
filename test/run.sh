#!/usr/bin/env bash
# The one test command: install test dependencies (apt), build pgmux with cassert and warnings
# as errors, run the C unit tests, then the pytest integration suite against a real
# PostgreSQL, and end with the line "N passed, N failed" (", N skipped" when some were).
#
#   test/run.sh                 # build-test/ (cassert, --werror)
#   test/run.sh --sanitize      # build-asan/ (ASan + UBSan, leaks checked)
#   test/run.sh -k cancel -x    # extra arguments go to pytest
#
# Needs root: PostgreSQL (initdb/postgres) and pgmux are run as the `postgres` user.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SANITIZE=0
PYTEST_ARGS=()
for a in "$@"; do
    case "$a" in
    --sanitize) SANITIZE=1 ;;
    *) PYTEST_ARGS+=("$a") ;;
    esac
done

say() { printf '==> %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo -E "$0" "$@"
    fi
    echo "test/run.sh must run as root (PostgreSQL and pgmux run as the postgres user)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

# --- dependencies -------------------------------------------------------------------------
PKGS=(postgresql-15 postgresql-client python3-pytest python3-psycopg2 python3-psycopg meson
      ninja-build gcc pkg-config libev-dev libinih-dev libssl-dev)
missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2; then
        echo "apt-get install failed" >&2
        echo "0 passed, 1 failed"
        exit 1
    fi
fi
PY=/usr/bin/python3

# Real drivers for the prepared-statement matrix (node-postgres, postgres.js, PgJDBC, asyncpg).
test/drivers/setup.sh >&2 || say "test/drivers/setup.sh failed: driver tests will be skipped"

# --- build --------------------------------------------------------------------------------
if [ "$SANITIZE" -eq 1 ]; then
    BUILD=build-asan
    MESON_OPTS=(-Dcassert=true --werror -Db_sanitize=address,undefined -Db_lundef=false)
else
    BUILD=build-test
    MESON_OPTS=(-Dcassert=true --werror)
fi

build_failed() {
    echo "$1" >&2
    echo "0 passed, 1 failed"
    exit 1
}

if [ -f "$BUILD/build.ninja" ]; then
    say "reconfiguring $BUILD"
    meson setup --reconfigure "$BUILD" "${MESON_OPTS[@]}" >&2 || {
        rm -rf "$BUILD"
        meson setup "$BUILD" "${MESON_OPTS[@]}" >&2 || build_failed "meson setup failed"
    }
else
    rm -rf "$BUILD"
    say "configuring $BUILD"
    meson setup "$BUILD" "${MESON_OPTS[@]}" >&2 || build_failed "meson setup failed"
fi
say "building $BUILD"
ninja -C "$BUILD" >&2 || build_failed "build failed"

if [ "$SANITIZE" -eq 1 ]; then
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
    export UBSAN_OPTIONS="print_stacktrace=1"
    export LSAN_OPTIONS=""
    export PGMUX_SANITIZE=1
fi

# --- unit tests ---------------------------------------------------------------------------
say "unit tests"
meson test -C "$BUILD" --suite unit --print-errorlogs >&2
unit_rc=$?
read -r U_PASS U_FAIL U_SKIP < <("$PY" - "$BUILD/meson-logs/testlog.json" <<'PYEOF'
import json, sys
p = f = s = 0
try:
    with open(sys.argv[1]) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line).get("result", "")
            if r in ("OK", "EXPECTEDFAIL"):
                p += 1
            elif r == "SKIP":
                s += 1
            else:
                f += 1
except OSError:
    f = 1
print(p, f, s)
PYEOF
)
if [ "$unit_rc" -ne 0 ] && [ "$U_FAIL" -eq 0 ]; then
    U_FAIL=1
fi
say "unit: $U_PASS passed, $U_FAIL failed"

# --- integration tests --------------------------------------------------------------------
RESULTS="$(mktemp /tmp/pgmux-results.XXXXXX)"
trap 'rm -f "$RESULTS"' EXIT
say "integration tests against $BUILD/pgmux"
PGMUX_BIN="$ROOT/$BUILD/pgmux" PGMUX_RESULTS_FILE="$RESULTS" \
    timeout --signal=INT --kill-after=60 1800 \
    "$PY" -m pytest test/ -p no:cacheprovider -q -rfE "${PYTEST_ARGS[@]}" >&2
py_rc=$?
read -r I_PASS I_FAIL I_SKIP < <("$PY" - "$RESULTS" <<'PYEOF'
import json, sys
try:
    with open(sys.argv[1]) as fh:
        d = json.load(fh)
    print(d["passed"], d["failed"], d["skipped"])
except (OSError, ValueError, KeyError):
    print(0, 0, 0)
PYEOF
)
# pytest exit codes: 0 ok, 1 failures, 5 nothing collected; anything else is a broken run
if [ "$py_rc" -ne 0 ] && [ "$py_rc" -ne 1 ] && [ "$py_rc" -ne 5 ]; then
    say "pytest exited with status $py_rc"
    I_FAIL=$((I_FAIL + 1))
elif [ "$py_rc" -eq 1 ] && [ "$I_FAIL" -eq 0 ]; then
    I_FAIL=1
fi

PASS=$((U_PASS + I_PASS))
FAIL=$((U_FAIL + I_FAIL))
SKIP=$((U_SKIP + I_SKIP))
if [ "$SKIP" -gt 0 ]; then
    echo "$PASS passed, $FAIL failed, $SKIP skipped"
else
    echo "$PASS passed, $FAIL failed"
fi
[ "$FAIL" -eq 0 ]
