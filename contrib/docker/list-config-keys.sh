#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# Print the [pgbouncer] key names of src/config.c's key table, one per line.
# The Dockerfile stores this list in the image for the entrypoint, which uses
# it to tell PGMUX_<KEY> settings from unrelated PGMUX_* variables.
#
# Usage: list-config-keys.sh [path/to/src/config.c]
set -euo pipefail

src=${1:-$(dirname "$0")/../../src/config.c}
keys=$(sed -n '/^static const struct config_key config_key_table\[\] = {/,/^};/p' "$src" |
    sed -n 's/^ *[A-Z]\{1,\}( *\([a-z0-9_]\{1,\}\) *,.*/\1/p')
if [[ -z $keys ]]; then
    echo "list-config-keys: no keys found in $src (has the table changed shape?)" >&2
    exit 1
fi
printf '%s\n' "$keys"
