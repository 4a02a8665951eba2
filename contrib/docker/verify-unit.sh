#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# Check etc/pgmux.service with systemd-analyze, on hosts without systemd too:
#   systemd-analyze verify              every line it prints is a problem
#   systemd-analyze security --offline  the exposure score must stay <= MAX_EXPOSURE
# When systemd is not installed, the Debian systemd package is fetched
# with `apt-get download` and unpacked into a temporary folder (nothing is
# installed). ExecStart is pointed at an existing binary for the check, since
# pgmux need not be installed where this runs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
UNIT=${1:-$ROOT/etc/pgmux.service}
MAX_EXPOSURE=${MAX_EXPOSURE:-2.5}
TMP=$(mktemp -d /tmp/pgmux-unit.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# The host's systemd-analyze is used only with the host's units next to it
# (verify resolves sysinit.target and friends).
analyze=$(command -v systemd-analyze || true)
unit_path=''
if [[ -n $analyze && ! -e /lib/systemd/system/sysinit.target && ! -e /usr/lib/systemd/system/sysinit.target ]]; then
    analyze=''
fi
if [[ -z $analyze ]]; then
    (cd "$TMP" && apt-get download systemd >/dev/null 2>&1) || {
        echo "SKIP: no systemd-analyze and apt-get download systemd failed"
        exit 77
    }
    dpkg-deb -x "$TMP"/systemd_*.deb "$TMP/root"
    analyze=$TMP/root/usr/bin/systemd-analyze
    unit_path=$TMP/root/lib/systemd/system:
    if ! "$analyze" --version >/dev/null 2>&1; then
        echo "SKIP: the unpacked systemd-analyze does not run here (libsystemd-shared missing?)"
        exit 77
    fi
fi

# /bin/true stands in for pgmux: verify checks that ExecStart can be run.
sed "s|^ExecStart=/usr/local/bin/pgmux|ExecStart=/bin/true|" "$UNIT" >"$TMP/pgmux.service"

# SYSTEMD_UNIT_PATH only for the unpacked package: empty would mean "no units at all".
run_analyze() {
    if [[ -n $unit_path ]]; then
        SYSTEMD_UNIT_PATH=$unit_path "$analyze" "$@"
    else
        "$analyze" "$@"
    fi
}

out=$(run_analyze verify --man=no "$TMP/pgmux.service" 2>&1 |
    grep -v '^Suspicious symlink' || true)
if [[ -n $out ]]; then
    printf 'systemd-analyze verify:\n%s\n' "$out"
    exit 1
fi
score=$(run_analyze security --offline=true "$TMP/pgmux.service" 2>&1 |
    sed -n 's/.*Overall exposure level for pgmux.service: \([0-9.]*\).*/\1/p')
if [[ -z $score ]]; then
    echo "systemd-analyze security printed no exposure level"
    exit 1
fi
echo "systemd-analyze verify: clean; security exposure $score (max $MAX_EXPOSURE)"
awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'
