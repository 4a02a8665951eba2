#!/bin/sh
# Installs what test/test_drivers.py needs: Debian packages for the Python and Java drivers and
# the Node drivers from npm (pinned by package-lock.json) into test/drivers/node_modules.
# Idempotent and quiet when everything is already there. Run as root (apt-get).
#
#   test/drivers/setup.sh            install what is missing
#   SKIP_APT=1 test/drivers/setup.sh only the npm part
set -eu

here=$(cd "$(dirname "$0")" && pwd)

# Debian packages: package -> file that proves it is installed.
missing=""
need() {  # need PACKAGE FILE-OR-COMMAND
    if [ ! -e "$2" ] && ! command -v "$2" >/dev/null 2>&1; then
        missing="$missing $1"
    fi
}
need python3-psycopg /usr/lib/python3/dist-packages/psycopg/__init__.py
need python3-psycopg2 /usr/lib/python3/dist-packages/psycopg2/__init__.py
need python3-asyncpg /usr/lib/python3/dist-packages/asyncpg/__init__.py
need python3-pytest /usr/lib/python3/dist-packages/pytest/__init__.py
need libpostgresql-jdbc-java /usr/share/java/postgresql.jar
need openjdk-17-jdk-headless javac
need postgresql-15 /usr/lib/postgresql/15/bin/pgbench
need nodejs node

if [ -n "$missing" ] && [ -z "${SKIP_APT:-}" ]; then
    echo "drivers/setup.sh: apt-get install$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # nodejs may come from another repository (NodeSource); do not fight over it.
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "drivers/setup.sh: npm not found; node-postgres and postgres.js tests will be skipped" >&2
    exit 0
fi

# npm ci only when node_modules is missing or older than the lock file.
stamp="$here/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$here/package-lock.json" -nt "$stamp" ]; then
    echo "drivers/setup.sh: npm ci"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
