#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# Static checks of the packaging files, no containers or cluster needed:
#   ShellCheck     contrib/docker/*.sh
#   docker-compose config -q    contrib/docker-compose.yml (Debian: docker-compose)
#   yamllint       compose file, Kubernetes manifests, Grafana provisioning
#   kubectl kustomize + check-manifests.py   the manifests against the typed
#                  Kubernetes API models (python3-kubernetes); kubectl apply
#                  --dry-run=client would need an API server
#   systemd-analyze verify   etc/pgmux.service, when systemd-analyze exists
# A missing tool is reported as SKIP; any problem makes the exit status 1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
failed=0 ran=0 skipped=0

step() {
    local name=$1
    shift
    if "$@"; then
        echo "ok    $name"
        ran=$((ran + 1))
    else
        echo "FAIL  $name"
        failed=$((failed + 1))
    fi
}
skip() {
    echo "SKIP  $1 ($2)"
    skipped=$((skipped + 1))
}
have() { command -v "$1" >/dev/null 2>&1; }

if have shellcheck; then
    step "shellcheck contrib/docker/*.sh" shellcheck contrib/docker/*.sh
else
    skip shellcheck "apt-get install shellcheck"
fi

if have docker-compose; then
    step "docker-compose config" docker-compose -f contrib/docker-compose.yml config -q
else
    skip "docker-compose config" "apt-get install docker-compose"
fi

YAML=(contrib/docker-compose.yml contrib/kubernetes/*.yaml contrib/docker/grafana)
if have yamllint; then
    step "yamllint" yamllint -s -c contrib/docker/yamllint.yml "${YAML[@]}"
else
    skip yamllint "apt-get install yamllint"
fi

manifests() {
    local out rc=0
    out=$(kubectl kustomize contrib/kubernetes) || return 1
    printf '%s\n' "$out" | /usr/bin/python3 contrib/kubernetes/check-manifests.py - || rc=$?
    ((rc == 77)) && return 0
    return "$rc"
}
if have kubectl && /usr/bin/python3 -c 'import kubernetes' 2>/dev/null; then
    step "kubectl kustomize | check-manifests.py" manifests
elif /usr/bin/python3 -c 'import kubernetes' 2>/dev/null; then
    step "check-manifests.py" /usr/bin/python3 contrib/kubernetes/check-manifests.py contrib/kubernetes/*.yaml
else
    skip "manifest schema check" "apt-get install python3-kubernetes"
fi

if [[ -f etc/pgmux.service ]]; then
    if have systemd-analyze || have apt-get; then
        step "systemd-analyze verify etc/pgmux.service" contrib/docker/verify-unit.sh
    else
        skip "systemd-analyze verify" "no systemd-analyze and no apt-get"
    fi
fi

echo "lint: $ran passed, $failed failed, $skipped skipped"
((failed == 0))
