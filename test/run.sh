#!/usr/bin/env bash
# The one test command: install test dependencies (apt), build, run the parts asked for, and end
# with the line "N passed, N failed" (", N skipped" when some were), summed over all parts.
#
#   test/run.sh                 # everything CI runs (.ci/run): all the parts below
#   test/run.sh --quick         # unit + integration tests against build-test/ only
#   test/run.sh --sanitize      # unit + integration tests against build-asan/ (ASan + UBSan,
#                               #   leaks checked) only
#   test/run.sh --valgrind      # unit tests under valgrind memcheck only
#   test/run.sh --fuzz          # the libFuzzer drivers only, FUZZ_SECONDS each
#   test/run.sh -k cancel -x    # extra arguments go to pytest (alone: like --quick)
#
# Modes combine (--quick --fuzz). The parts:
#   unit, integration  build-test/ (cassert, --werror): meson's unit suite (TAP), then the pytest
#                      suite against a real PostgreSQL
#   valgrind           build-test/'s unit binaries under memcheck; any error or definite leak
#                      fails that binary
#   fuzz               test/fuzz/run.sh: build-fuzz/ (clang-14, ASan+UBSan, cassert), each driver
#                      for FUZZ_SECONDS (default 20; 0 skips), FUZZ_JOBS at once (default 2);
#                      one test per driver; a failure prints the reproducer's path
#   sanitize           build-asan/ (cassert, --werror, ASan+UBSan, detect_leaks=1): the unit
#                      suite and the pytest suite; SANITIZE_PYTEST_ARGS narrows the pytest part
#
# Needs root: PostgreSQL (initdb/postgres) and pgmux are run as the `postgres` user.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DO_NORMAL=0
DO_SANITIZE=0
DO_VALGRIND=0
DO_FUZZ=0
MODE_GIVEN=0
PYTEST_ARGS=()
for a in "$@"; do
    case "$a" in
    --quick) DO_NORMAL=1; MODE_GIVEN=1 ;;
    --sanitize) DO_SANITIZE=1; MODE_GIVEN=1 ;;
    --valgrind) DO_VALGRIND=1; MODE_GIVEN=1 ;;
    --fuzz) DO_FUZZ=1; MODE_GIVEN=1 ;;
    *) PYTEST_ARGS+=("$a") ;;
    esac
done
if [ "$MODE_GIVEN" -eq 0 ]; then
    DO_NORMAL=1
    if [ "${#PYTEST_ARGS[@]}" -eq 0 ]; then
        DO_SANITIZE=1
        DO_VALGRIND=1
        DO_FUZZ=1
    fi
fi
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
FUZZ_JOBS="${FUZZ_JOBS:-2}"
if [ "$FUZZ_SECONDS" = "0" ]; then
    DO_FUZZ=0
fi

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
[ "$DO_FUZZ" -eq 1 ] && PKGS+=(clang-14 libfuzzer-14-dev)
[ "$DO_VALGRIND" -eq 1 ] && PKGS+=(valgrind)
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
if [ "$DO_NORMAL" -eq 1 ] || [ "$DO_SANITIZE" -eq 1 ]; then
    test/drivers/setup.sh >&2 || say "test/drivers/setup.sh failed: driver tests will be skipped"
fi

PASS=0
FAIL=0
SKIP=0
PARTS=()   # one "name: N passed, N failed, N skipped (S s)" per part, repeated at the end

count() {  # count NAME PASSED FAILED SKIPPED STARTED
    PASS=$((PASS + $2))
    FAIL=$((FAIL + $3))
    SKIP=$((SKIP + $4))
    local line
    line="$1: $2 passed, $3 failed, $4 skipped ($(($(date +%s) - $5)) s)"
    PARTS+=("$line")
    say "$line"
}

# --- build --------------------------------------------------------------------------------
build() {  # build DIR MESON-OPTIONS...; false when it failed
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        say "reconfiguring $dir"
        meson setup --reconfigure "$dir" "$@" >&2 || {
            rm -rf "$dir"
            meson setup "$dir" "$@" >&2 || return 1
        }
    else
        rm -rf "$dir"
        say "configuring $dir"
        meson setup "$dir" "$@" >&2 || return 1
    fi
    say "building $dir"
    ninja -C "$dir" >&2
}

# --- unit tests ---------------------------------------------------------------------------
# Counts from a meson test log (one JSON object per line).
meson_counts() {
    "$PY" - "$1" <<'PYEOF'
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
}

run_unit() {  # run_unit PART-NAME BUILD [--wrapper=...]
    local name=$1 dir=$2 t0 rc p f s
    shift 2
    t0=$(date +%s)
    say "$name"
    meson test -C "$dir" --suite unit --print-errorlogs --logbase "$name" "$@" >&2
    rc=$?
    # meson adds the wrapper's name to the log's name (valgrind-valgrind.json).
    read -r p f s < <(meson_counts "$(ls -t "$dir/meson-logs/$name"*.json 2>/dev/null | head -1)")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
    fi
    count "$name" "$p" "$f" "$s" "$t0"
}

# --- integration tests --------------------------------------------------------------------
run_pytest() {  # run_pytest PART-NAME BUILD PYTEST-ARGS...
    local name=$1 dir=$2 t0 rc p f s results
    shift 2
    t0=$(date +%s)
    results="$(mktemp /tmp/pgmux-results.XXXXXX)"
    say "$name: pytest against $dir/pgmux"
    PGMUX_BIN="$ROOT/$dir/pgmux" PGMUX_RESULTS_FILE="$results" \
        timeout --signal=INT --kill-after=60 1800 \
        "$PY" -m pytest test/ -p no:cacheprovider -q -rfE "$@" >&2
    rc=$?
    read -r p f s < <("$PY" - "$results" <<'PYEOF'
import json, sys
try:
    with open(sys.argv[1]) as fh:
        d = json.load(fh)
    print(d["passed"], d["failed"], d["skipped"])
except (OSError, ValueError, KeyError):
    print(0, 0, 0)
PYEOF
)
    rm -f "$results"
    # pytest exit codes: 0 ok, 1 failures, 5 nothing collected; anything else is a broken run
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ] && [ "$rc" -ne 5 ]; then
        say "pytest exited with status $rc"
        f=$((f + 1))
    elif [ "$rc" -eq 1 ] && [ "$f" -eq 0 ]; then
        f=1
    fi
    count "$name" "$p" "$f" "$s" "$t0"
}

# --- fuzzing ------------------------------------------------------------------------------
run_fuzz() {
    local t0 p=0 f=0 summary="build-fuzz/fuzz-summary.txt"
    t0=$(date +%s)
    say "fuzz: each driver for $FUZZ_SECONDS s, $FUZZ_JOBS at once"
    rm -f "$summary"
    CC=clang-14 JOBS="$FUZZ_JOBS" test/fuzz/run.sh "$FUZZ_SECONDS" >&2
    if [ ! -s "$summary" ]; then
        say "fuzz: test/fuzz/run.sh ran no driver (build failed?)"
        count fuzz 0 1 0 "$t0"
        return
    fi
    # One line per driver; "ok" at the end, or "FAIL ... reproducer <path>".
    while read -r line; do
        case "$line" in
        *" ok") p=$((p + 1)) ;;
        *) f=$((f + 1)); say "fuzz FAILED: $line" ;;
        esac
    done <"$summary"
    count fuzz "$p" "$f" 0 "$t0"
}

# --- the parts ----------------------------------------------------------------------------
if [ "$DO_NORMAL" -eq 1 ] || [ "$DO_VALGRIND" -eq 1 ]; then
    t0=$(date +%s)
    if build build-test -Dcassert=true --werror; then
        if [ "$DO_NORMAL" -eq 1 ]; then
            run_unit unit build-test
            run_pytest integration build-test ${PYTEST_ARGS[@]+"${PYTEST_ARGS[@]}"}
        fi
        if [ "$DO_VALGRIND" -eq 1 ]; then
            # Exit status 99 on any memcheck error; definite leaks count as errors. The
            # timeout multiplier covers valgrind's slowdown (PBKDF2 in the scram tests).
            run_unit valgrind build-test --timeout-multiplier=20 \
                "--wrapper=valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --track-origins=yes -q"
        fi
    else
        say "build-test: build failed"
        count build-test 0 1 0 "$t0"
    fi
fi

if [ "$DO_FUZZ" -eq 1 ]; then
    run_fuzz
fi

if [ "$DO_SANITIZE" -eq 1 ]; then
    t0=$(date +%s)
    if build build-asan -Dcassert=true --werror -Db_sanitize=address,undefined -Db_lundef=false; then
        SAN_ARGS=()
        if [ "$MODE_GIVEN" -eq 1 ]; then
            SAN_ARGS=(${PYTEST_ARGS[@]+"${PYTEST_ARGS[@]}"})
        elif [ -n "${SANITIZE_PYTEST_ARGS:-}" ]; then
            read -r -a SAN_ARGS <<<"$SANITIZE_PYTEST_ARGS"
        fi
        export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
        export UBSAN_OPTIONS="print_stacktrace=1"
        export LSAN_OPTIONS=""
        PGMUX_SANITIZE=1 run_unit sanitize-unit build-asan
        PGMUX_SANITIZE=1 run_pytest sanitize-integration build-asan ${SAN_ARGS[@]+"${SAN_ARGS[@]}"}
        unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
    else
        say "build-asan: build failed"
        count build-asan 0 1 0 "$t0"
    fi
fi

for line in ${PARTS[@]+"${PARTS[@]}"}; do
    say "$line"
done
if [ "$SKIP" -gt 0 ]; then
    echo "$PASS passed, $FAIL failed, $SKIP skipped"
else
    echo "$PASS passed, $FAIL failed"
fi
[ "$FAIL" -eq 0 ]
