#!/bin/sh
# SPDX-License-Identifier: ISC
#
# Build the libFuzzer drivers with clang into build-fuzz and run each one for
# a bounded time.
#
#   test/fuzz/run.sh [--long] [--only NAME[,NAME...]] [SECONDS]
#
# SECONDS per driver: 30 by default, 4 hours with --long. Each driver starts
# from its committed seeds (test/fuzz/corpus/NAME) plus what earlier runs
# found (build-fuzz/corpus/NAME, where new inputs go), with its dictionary.
# A crash, leak, timeout or out-of-memory input is written to
# test/fuzz/crashes/NAME/ and makes the script exit 1 after all drivers ran.
# A summary line per driver (executions, exec/s, coverage) goes to stdout
# and to build-fuzz/fuzz-summary.txt; full logs are in build-fuzz/fuzz-logs/.
#
# Needs clang-14 and libfuzzer-14-dev (apt-get install -y clang-14 libfuzzer-14-dev).
# CC may name another clang. JOBS (default 1) runs that many drivers at once.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build-fuzz"
secs=30
long=0
only=""
while [ $# -gt 0 ]; do
    case "$1" in
    --long) long=1; secs=14400 ;;
    --only) only="$2"; shift ;;
    -h|--help) sed -n '3,17p' "$0"; exit 0 ;;
    *) secs="$1" ;;
    esac
    shift
done

CC=${CC:-clang-14}
# cassert: the fuzzers check pgmux's Assert() invariants too.
if [ ! -f "$build/build.ninja" ]; then
    CC="$CC" meson setup "$build" "$root" -Dfuzz=true -Dcassert=true -Db_lundef=false >/dev/null
else
    meson configure "$build" -Dfuzz=true -Dcassert=true >/dev/null
fi
ninja -C "$build" >/dev/null

drivers=$(find "$build/test/fuzz" -maxdepth 1 -type f -perm -u+x -name 'fuzz_*' | sed 's|.*/fuzz_||' | sort)
if [ -n "$only" ]; then
    drivers=$(echo "$only" | tr ',' ' ')
fi

mkdir -p "$build/fuzz-logs" "$here/crashes"
summary="$build/fuzz-summary.txt"
: >"$summary"
status=0

run_one() {
    name=$1
    exe="$build/test/fuzz/fuzz_$name"
    work="$build/corpus/$name"
    crashes="$here/crashes/$name"
    log="$build/fuzz-logs/$name.log"
    mkdir -p "$work" "$crashes"
    dict=""
    for d in "$here/dict/$name.dict" "$here/dict/$(echo "$name" | sed 's/_.*//').dict"; do
        if [ -f "$d" ]; then dict="-dict=$d"; break; fi
    done
    seeds=""
    [ -d "$here/corpus/$name" ] && seeds="$here/corpus/$name"
    # -timeout: one input taking longer than 10 s is a bug (a hang) too.
    # shellcheck disable=SC2086
    if "$exe" $dict -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 -artifact_prefix="$crashes/" "$work" $seeds >"$log" 2>&1; then
        rc=0
    else
        rc=$?
    fi
    line=$(grep -E '^#[0-9]+' "$log" | tail -1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(echo "$line" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$line" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$line" | sed -n 's/.*corp: \([^ ]*\).*/\1/p')
    if [ "$rc" -ne 0 ]; then
        # libFuzzer names the input it saved: that is the reproducer.
        repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        res="FAIL (exit $rc) reproducer ${repro:-none, see $crashes} log $log"
    else
        res="ok"
    fi
    printf '%-14s %s s  execs %s  exec/s %s  cov %s  ft %s  corp %s  %s\n' "$name" "$secs" \
        "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$res" | tee -a "$summary"
    [ "$rc" -eq 0 ]
}

jobs=${JOBS:-1}
if [ "$jobs" -le 1 ]; then
    for name in $drivers; do
        run_one "$name" || status=1
    done
else
    pids=""
    running=0
    for name in $drivers; do
        ( run_one "$name" ) &
        pids="$pids $!"
        running=$((running + 1))
        if [ "$running" -ge "$jobs" ]; then
            for p in $pids; do wait "$p" || status=1; done
            pids=""
            running=0
        fi
    done
    for p in $pids; do wait "$p" || status=1; done
fi
# Drop the empty per-driver crash directories so a clean run leaves nothing.
find "$here/crashes" -type d -empty -delete 2>/dev/null || true
exit $status
