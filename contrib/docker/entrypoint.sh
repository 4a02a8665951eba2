#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# pgmux-entrypoint: the container's entrypoint.
#
# Which configuration is used, first match wins:
#   1. a config file named on the command line (docker run IMAGE pgmux -v /my.ini);
#   2. a mounted file at $PGMUX_CONFIG (default /etc/pgmux/pgmux.ini), or, when
#      PGMUX_CONFIG is not set, a mounted /etc/pgbouncer/pgbouncer.ini;
#   3. otherwise pgmux.ini and the auth file are written into $PGMUX_RUN_DIR
#      (default /run/pgmux) from environment variables:
#        DATABASE_URL          postgres://user:password@host:port/dbname?sslmode=...
#        DB_HOST DB_PORT DB_USER DB_PASSWORD DB_NAME
#                              the same parts one by one; each one set overrides
#                              the matching part of DATABASE_URL
#        POOL_MODE DEFAULT_POOL_SIZE MAX_CLIENT_CONN AUTH_TYPE
#                              shorthands for those [pgbouncer] keys
#        PGMUX_<KEY>           any other [pgbouncer] key, upper-cased
#                              (PGMUX_SERVER_IDLE_TIMEOUT=300 -> server_idle_timeout = 300);
#                              it wins over a shorthand for the same key
#      Without DB_NAME (or a database in the URL) the entry is "*": clients may
#      ask for any database name and it is passed through to the server.
#
# A mounted file always wins: the variables above are then ignored (with a notice).
# Secrets are never printed: the password goes only into the auth file, which
# is created with mode 0600, and nothing here runs with xtrace.
#
# Settings of this script itself (not pgmux keys): PGMUX_CONFIG, PGMUX_RUN_DIR,
# PGMUX_KEYS_FILE (the list of known keys, one per line, made at image build).
#
# The last step is always exec, so pgmux runs as PID 1 and gets the stop signal.
set -euo pipefail

readonly PROG=pgmux-entrypoint
RUN_DIR=${PGMUX_RUN_DIR:-/run/pgmux}
KEYS_FILE=${PGMUX_KEYS_FILE:-/usr/share/pgmux/config-keys}
DEFAULT_CONFIG=/etc/pgmux/pgmux.ini
PGBOUNCER_CONFIG=/etc/pgbouncer/pgbouncer.ini

# Ports the image uses unless told otherwise (see EXPOSE in the Dockerfile).
readonly DEFAULT_LISTEN_PORT=6432
readonly DEFAULT_STATS_PORT=9127
readonly DEFAULT_HEALTH_PORT=8080

note() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

# Names of variables that configure this script and are never pgmux keys.
is_reserved_name() {
    case $1 in
    PGMUX_CONFIG | PGMUX_RUN_DIR | PGMUX_KEYS_FILE) return 0 ;;
    esac
    return 1
}

# Kubernetes adds <SERVICE>_SERVICE_HOST, <SERVICE>_PORT_6432_TCP... for every
# Service; a Service called "pgmux" would look like PGMUX_ settings.
is_service_link_name() {
    [[ $1 =~ ^PGMUX_(SERVICE_HOST|SERVICE_PORT(_.*)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_.*)?)?)$ ]]
}

# The value of the variable named $1, refusing line breaks: one would let a
# value add its own lines (keys, sections) to the generated file.
env_value() {
    local name=$1 v
    v=${!name-}
    if [[ $v == *$'\n'* || $v == *$'\r'* ]]; then
        die "$name contains a line break"
    fi
    printf '%s' "$v"
}

# Percent-decoding for the parts of DATABASE_URL. Every backslash is doubled
# first, so printf %b sees no escapes but the \xHH made from %HH.
url_decode() {
    local s=$1 what=$2 out
    if [[ $s =~ %([^0-9A-Fa-f]|.[^0-9A-Fa-f]|.?$) ]]; then
        die "DATABASE_URL: bad percent-escape in the $what"
    fi
    if [[ $s =~ %00 ]]; then
        die "DATABASE_URL: %00 is not allowed in the $what"
    fi
    s=${s//\\/\\\\}
    s=${s//%/\\x}
    out=$(printf '%b.' "$s")
    out=${out%.} # the dot keeps a trailing newline from $(...) stripping
    if [[ $out == *$'\n'* || $out == *$'\r'* ]]; then
        die "DATABASE_URL: the $what contains a line break"
    fi
    printf '%s' "$out"
}

# A connection-string value: always single-quoted, '' for a quote.
cs_quote() { printf "'%s'" "${1//\'/\'\'}"; }

# An auth_file field: always double-quoted, "" for a quote.
af_quote() { printf '"%s"' "${1//\"/\"\"}"; }

# A [databases] entry name: bare when it is a plain word, else a quoted identifier.
db_entry_name() {
    if [[ $1 == '*' || $1 =~ ^[A-Za-z0-9_]+$ ]]; then
        printf '%s' "$1"
    else
        printf '"%s"' "${1//\"/\"\"}"
    fi
}

# Split DATABASE_URL into URL_USER URL_PASSWORD URL_HOST URL_PORT URL_DBNAME URL_SSLMODE.
URL_USER='' URL_PASSWORD='' URL_HOST='' URL_PORT='' URL_DBNAME='' URL_SSLMODE=''
parse_database_url() {
    local url=$1 rest userinfo hostport path query h hp port item name value
    local -a hosts=() items=()
    if [[ ! $url =~ ^postgres(ql)?:// ]]; then
        die "DATABASE_URL must start with postgres:// or postgresql://"
    fi
    rest=${url#*://}
    rest=${rest%%#*}
    query=''
    if [[ $rest == *\?* ]]; then
        query=${rest#*\?}
        rest=${rest%%\?*}
    fi
    path=''
    if [[ $rest == */* ]]; then
        path=${rest#*/}
        rest=${rest%%/*}
    fi
    hostport=$rest
    if [[ $rest == *@* ]]; then
        userinfo=${rest%@*}
        hostport=${rest##*@}
        if [[ $userinfo == *:* ]]; then
            URL_USER=$(url_decode "${userinfo%%:*}" "user name")
            URL_PASSWORD=$(url_decode "${userinfo#*:}" "password")
        else
            URL_USER=$(url_decode "$userinfo" "user name")
        fi
    fi
    # host[:port] or [v6addr][:port], several separated by commas (one common port).
    IFS=, read -r -a items <<<"$hostport"
    for hp in "${items[@]}"; do
        port=''
        if [[ $hp =~ ^\[([0-9A-Fa-f:.]+)\](:([0-9]*))?$ ]]; then
            h=${BASH_REMATCH[1]}
            port=${BASH_REMATCH[3]}
        elif [[ $hp =~ ^([^:]*)(:([0-9]*))?$ ]]; then
            h=$(url_decode "${BASH_REMATCH[1]}" "host")
            port=${BASH_REMATCH[3]}
        else
            die "DATABASE_URL: cannot read the host part"
        fi
        if [[ -n $h ]]; then
            hosts+=("$h")
        fi
        if [[ -n $port ]]; then
            if [[ -n $URL_PORT && $URL_PORT != "$port" ]]; then
                die "DATABASE_URL: hosts with different ports are not supported; give one port"
            fi
            URL_PORT=$port
        fi
    done
    if ((${#hosts[@]} == 0)); then
        die "DATABASE_URL has no host name"
    fi
    URL_HOST=$(
        IFS=,
        printf '%s' "${hosts[*]}"
    )
    URL_DBNAME=$(url_decode "$path" "database name")
    if [[ -n $query ]]; then
        IFS='&' read -r -a items <<<"$query"
        for item in "${items[@]}"; do
            name=${item%%=*}
            value=''
            [[ $item == *=* ]] && value=$(url_decode "${item#*=}" "parameter $name")
            case $name in
            sslmode) URL_SSLMODE=$value ;;
            '') ;;
            *) note "DATABASE_URL: parameter \"$name\" is not used" ;;
            esac
        done
    fi
}

# Keys the image's pgmux knows, from the list made at build time.
declare -A KNOWN_KEYS=()
load_known_keys() {
    local k
    if [[ -r $KEYS_FILE ]]; then
        while IFS= read -r k; do
            if [[ -n $k ]]; then
                KNOWN_KEYS[$k]=1
            fi
        done <"$KEYS_FILE"
    else
        note "no key list at $KEYS_FILE: every PGMUX_<KEY> is passed on and pgmux checks it"
    fi
}

key_is_known() {
    ((${#KNOWN_KEYS[@]} == 0)) || [[ -n ${KNOWN_KEYS[$1]-} ]]
}

# settings[key] = value for [pgbouncer], written in the order of ORDER.
declare -A SETTINGS=()
ORDER=()
set_key() {
    [[ -n ${SETTINGS[$1]+x} ]] || ORDER+=("$1")
    SETTINGS[$1]=$2
}

# True when the environment carries any variable this script would translate.
env_config_present() {
    local n
    for n in DATABASE_URL DB_HOST DB_PORT DB_USER DB_PASSWORD DB_NAME POOL_MODE \
        DEFAULT_POOL_SIZE MAX_CLIENT_CONN AUTH_TYPE; do
        [[ -n ${!n+x} ]] && return 0
    done
    while IFS= read -r n; do
        is_reserved_name "$n" || is_service_link_name "$n" || return 0
    done < <(compgen -e | grep '^PGMUX_' || true)
    return 1
}

generate_config() {
    local ini=$RUN_DIR/pgmux.ini authfile=$RUN_DIR/userlist.txt
    local host port user password dbname sslmode entry name key value var auth_written=0
    local -a pgmux_vars=()

    # Every $(env_value ...) is a plain assignment, so its die stops the script.
    if [[ -n ${DATABASE_URL+x} ]]; then
        value=$(env_value DATABASE_URL)
        parse_database_url "$value"
    fi
    host=$URL_HOST port=$URL_PORT user=$URL_USER password=$URL_PASSWORD
    dbname=$URL_DBNAME sslmode=$URL_SSLMODE
    [[ -n ${DB_HOST+x} ]] && host=$(env_value DB_HOST)
    [[ -n ${DB_PORT+x} ]] && port=$(env_value DB_PORT)
    [[ -n ${DB_USER+x} ]] && user=$(env_value DB_USER)
    [[ -n ${DB_PASSWORD+x} ]] && password=$(env_value DB_PASSWORD)
    [[ -n ${DB_NAME+x} ]] && dbname=$(env_value DB_NAME)
    [[ $dbname == '*' ]] && dbname=''

    if [[ -z $host ]]; then
        die "no configuration: mount a pgmux.ini (or pgbouncer.ini) at $DEFAULT_CONFIG," \
            "or set DATABASE_URL or DB_HOST (see the image's documentation)"
    fi
    [[ -n $port ]] || port=5432
    if [[ ! $port =~ ^[0-9]+$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
        die "database port must be a number from 1 to 65535"
    fi

    load_known_keys

    # Defaults for a container: listen on every IPv4 address (IPv6 may be
    # disabled in the pod), and turn the HTTP listeners on.
    set_key listen_addr 0.0.0.0
    set_key listen_port "$DEFAULT_LISTEN_PORT"
    set_key unix_socket_dir "$RUN_DIR"
    set_key auth_type md5
    set_key auth_file "$authfile"
    set_key stats_listen_addr 0.0.0.0
    set_key stats_listen_port "$DEFAULT_STATS_PORT"
    set_key health_listen_addr 0.0.0.0
    set_key health_listen_port "$DEFAULT_HEALTH_PORT"
    [[ -n $sslmode ]] && set_key server_tls_sslmode "$sslmode"

    # The four shorthands.
    for var in POOL_MODE DEFAULT_POOL_SIZE MAX_CLIENT_CONN AUTH_TYPE; do
        if [[ -n ${!var+x} ]]; then
            value=$(env_value "$var")
            set_key "${var,,}" "$value"
        fi
    done

    # PGMUX_<KEY> for every other key.
    mapfile -t pgmux_vars < <(compgen -e | grep '^PGMUX_' | LC_ALL=C sort || true)
    for var in "${pgmux_vars[@]}"; do
        is_reserved_name "$var" && continue
        if is_service_link_name "$var"; then
            continue
        fi
        key=${var#PGMUX_}
        key=${key,,}
        if [[ ! $key =~ ^[a-z0-9_]+$ ]] || ! key_is_known "$key"; then
            note "$var: \"$key\" is not a [pgbouncer] key; ignored"
            continue
        fi
        value=$(env_value "$var")
        if [[ -n ${SETTINGS[$key]+x} && ${SETTINGS[$key]} != "$value" ]]; then
            case $key in
            pool_mode | default_pool_size | max_client_conn | auth_type)
                note "$var overrides ${key^^}"
                ;;
            esac
        fi
        set_key "$key" "$value"
    done

    umask 077
    mkdir -p "$RUN_DIR" 2>/dev/null || true
    if [[ ! -d $RUN_DIR || ! -w $RUN_DIR ]]; then
        die "$RUN_DIR is not writable by uid $(id -u): mount a writable volume there" \
            "(emptyDir, tmpfs), or mount a config file at $DEFAULT_CONFIG"
    fi

    # The database entry. The password stays out of this file.
    name=${dbname:-*}
    entry="$(db_entry_name "$name") = host=$(cs_quote "$host") port=$port"
    [[ -n $dbname ]] && entry+=" dbname=$(cs_quote "$dbname")"

    {
        printf ';; Written by %s from environment variables; do not edit.\n' "$PROG"
        printf ';; Mount a file at %s to use your own configuration instead.\n\n' \
            "$DEFAULT_CONFIG"
        printf '[databases]\n%s\n\n[pgbouncer]\n' "$entry"
        for key in "${ORDER[@]}"; do
            printf '%s = %s\n' "$key" "${SETTINGS[$key]}"
        done
    } >"$ini.tmp"
    mv -f "$ini.tmp" "$ini"

    # The auth file, unless auth_file points somewhere else (a mounted secret).
    if [[ ${SETTINGS[auth_file]} == "$authfile" ]]; then
        {
            printf ';; Written by %s from environment variables; mode 0600.\n' "$PROG"
            if [[ -n $user && -n $password ]]; then
                printf '%s %s\n' "$(af_quote "$user")" "$(af_quote "$password")"
                auth_written=1
            fi
        } >"$authfile.tmp"
        chmod 0600 "$authfile.tmp"
        mv -f "$authfile.tmp" "$authfile"
    elif [[ -n $password ]]; then
        note "auth_file is set to ${SETTINGS[auth_file]}; the password from the environment is not used"
    fi
    if [[ -n $user && -z $password && ${SETTINGS[auth_type],,} != trust && ${SETTINGS[auth_type],,} != any ]]; then
        note "no password for user \"$user\": set DB_PASSWORD (or put it in DATABASE_URL)"
    fi

    # Running as root (docker run --user 0): pgmux refuses that without -u,
    # so hand the files to the image's user and switch to it.
    if [[ $(id -u) == 0 ]] && id pgmux >/dev/null 2>&1; then
        chown pgmux: "$RUN_DIR" "$ini" "$authfile" 2>/dev/null || true
    fi

    note "wrote $ini from the environment: database $name -> $host:$port," \
        "user ${user:-(none)}, password $([[ $auth_written == 1 ]] && echo set || echo 'not set')," \
        "listening on ${SETTINGS[listen_addr]}:${SETTINGS[listen_port]}" \
        "(stats ${SETTINGS[stats_listen_port]}, health ${SETTINGS[health_listen_port]})"
}

# True when the pgmux arguments already name a config file.
has_config_arg() {
    local skip=0 a
    for a in "$@"; do
        if ((skip)); then
            skip=0
            continue
        fi
        case $a in
        --user) skip=1 ;;
        --*) ;;
        -*u) skip=1 ;; # -u USER, or -qu USER
        -*) ;;
        *) return 0 ;;
        esac
    done
    return 1
}

# True for -V/--version and -h/--help, which need no config file.
wants_no_config() {
    local a opts skip=0
    for a in "$@"; do
        if ((skip)); then
            skip=0
            continue
        fi
        case $a in
        --version | --help) return 0 ;;
        --user) skip=1 ;;
        --*) ;;
        -?*)
            # A cluster of short options; after "u" comes the user name.
            opts=${a#-}
            while [[ -n $opts ]]; do
                case ${opts:0:1} in
                V | h) return 0 ;;
                u)
                    [[ -n ${opts:1} ]] || skip=1
                    break
                    ;;
                esac
                opts=${opts:1}
            done
            ;;
        esac
    done
    return 1
}

# True when the arguments hold -u/--user (pgmux then switches user itself).
has_user_arg() {
    local a
    for a in "$@"; do
        case $a in
        --user | --user=*) return 0 ;;
        --*) ;;
        -*u*) return 0 ;;
        esac
    done
    return 1
}

main() {
    local config=''
    local -a args

    (($# > 0)) || set -- pgmux
    [[ $1 == -* ]] && set -- pgmux "$@"
    if [[ $1 != pgmux ]]; then
        exec "$@" # any other command: a shell, a one-off check
    fi
    shift
    args=("$@")

    if has_config_arg "${args[@]}" || wants_no_config "${args[@]}"; then
        exec pgmux "${args[@]}"
    fi

    if [[ -n ${PGMUX_CONFIG:-} ]]; then
        [[ -e $PGMUX_CONFIG ]] && config=$PGMUX_CONFIG
    elif [[ -e $DEFAULT_CONFIG ]]; then
        config=$DEFAULT_CONFIG
    elif [[ -e $PGBOUNCER_CONFIG ]]; then
        config=$PGBOUNCER_CONFIG
    fi

    if [[ -n $config ]]; then
        if env_config_present; then
            note "using the mounted $config; DATABASE_URL, DB_* and PGMUX_* variables are ignored"
        fi
        ln -sfn "$config" "$RUN_DIR/active.ini" 2>/dev/null || true
        exec pgmux "${args[@]}" "$config"
    fi

    if [[ -n ${PGMUX_CONFIG:-} ]]; then
        note "PGMUX_CONFIG=$PGMUX_CONFIG does not exist; writing a config from the environment"
    fi
    generate_config
    ln -sfn "$RUN_DIR/pgmux.ini" "$RUN_DIR/active.ini" 2>/dev/null || true
    if [[ $(id -u) == 0 ]] && ! has_user_arg "${args[@]}" && id pgmux >/dev/null 2>&1; then
        args=(-u pgmux "${args[@]}")
    fi
    exec pgmux "${args[@]}" "$RUN_DIR/pgmux.ini"
}

main "$@"
