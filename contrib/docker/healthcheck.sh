#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# pgmux-healthcheck: the image's HEALTHCHECK.
#
# It asks pgmux's own health listener for GET /health/ready over bash's
# /dev/tcp, so the image needs neither curl nor wget (curl alone would pull in
# libcurl and its TLS, LDAP, SSH and HTTP/2 libraries, several MB, for one GET).
# Exit 0 = healthy (HTTP 200), 1 = unhealthy; the first lines of the answer
# are printed, so `docker inspect` shows the reason pgmux gave for a 503.
#
# The port comes from the config in use (the entrypoint links it as
# $PGMUX_RUN_DIR/active.ini): health_listen_port and health_listen_addr of
# its [pgbouncer] section. PGMUX_HEALTH_URL_PORT overrides the port. When the
# health listener is off (port 0) the check falls back to opening a TCP
# connection to listen_port, which proves only that pgmux accepts clients.
# Keys inside %include files are not seen; set PGMUX_HEALTH_URL_PORT then.
set -euo pipefail

RUN_DIR=${PGMUX_RUN_DIR:-/run/pgmux}
TIMEOUT=${PGMUX_HEALTH_TIMEOUT:-3}

config=$RUN_DIR/active.ini
[[ -r $config ]] || config=${PGMUX_CONFIG:-/etc/pgmux/pgmux.ini}

# Last value of key $1 in the [pgbouncer] (or [pgmux]) section of $config.
ini_get() {
    local want=$1 line section='' key value result=''
    [[ -r $config ]] || return 0
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line#"${line%%[![:space:]]*}"}
        case $line in
        '' | ';'* | '#'*) continue ;;
        '['*) section=${line#[}; section=${section%%]*}; continue ;;
        esac
        [[ $section == pgbouncer || $section == pgmux ]] || continue
        [[ $line == *=* ]] || continue
        key=${line%%=*}
        key=${key%"${key##*[![:space:]]}"}
        [[ $key == "$want" ]] || continue
        value=${line#*=}
        value=${value#"${value%%[![:space:]]*}"}
        value=${value%"${value##*[![:space:]]}"}
        result=$value
    done <"$config"
    printf '%s' "$result"
}

# An address to connect to for a listen address: wildcards mean loopback.
connect_addr() {
    case $1 in
    '' | '*' | 0.0.0.0) printf '127.0.0.1' ;;
    '::') printf '::1' ;;
    *) printf '%s' "${1%%,*}" ;;
    esac
}

port=${PGMUX_HEALTH_URL_PORT:-$(ini_get health_listen_port)}
if [[ -n $port && $port != 0 ]]; then
    addr=$(connect_addr "$(ini_get health_listen_addr)")
    if ! exec 3<>"/dev/tcp/$addr/$port"; then
        echo "unhealthy: cannot connect to the health listener at $addr:$port"
        exit 1
    fi
    printf 'GET /health/ready HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$addr" >&3
    status=''
    if ! IFS= read -r -t "$TIMEOUT" status <&3; then
        echo "unhealthy: no answer from $addr:$port within ${TIMEOUT}s"
        exit 1
    fi
    status=${status%$'\r'}
    # Keep the body (the reason for a 503): skip the headers, at most 5 lines.
    body='' in_body=0 n=0
    while ((n < 30)) && IFS= read -r -t "$TIMEOUT" line <&3; do
        n=$((n + 1))
        line=${line%$'\r'}
        if ((in_body)); then
            body+=$line$'\n'
        elif [[ -z $line ]]; then
            in_body=1
        fi
    done
    exec 3<&-
    body=$(printf '%s' "$body" | head -n 5)
    if [[ $status =~ ^HTTP/1\.[01]\ 200 ]]; then
        echo "healthy: $status"
        exit 0
    fi
    echo "unhealthy: $status"
    [[ -z $body ]] || printf '%s\n' "$body"
    exit 1
fi

# No health listener: is the pooler port open?
lport=$(ini_get listen_port)
lport=${lport:-6432}
laddr=$(ini_get listen_addr)
if [[ -z $laddr ]]; then
    echo "healthy: no health listener and no TCP listener to probe (Unix socket only)"
    exit 0
fi
addr=$(connect_addr "$laddr")
if exec 3<>"/dev/tcp/$addr/$lport"; then
    exec 3<&-
    echo "healthy: pooler port $addr:$lport accepts connections (health listener off)"
    exit 0
fi
echo "unhealthy: cannot connect to the pooler port $addr:$lport"
exit 1
