#!/usr/bin/env bash
# The external engines the scale-out tests run against, on loopback, in a folder of their own:
# PostgreSQL from Debian (initdb + postgres as a non-root user) and an S3-compatible server (moto).
#
#   scripts/test-services.sh start DIR   starts both, writes DIR/env (BERTH_TEST_POSTGRES_URL,
#                                        BERTH_TEST_S3_ENDPOINT) and prints it; idempotent per DIR
#   scripts/test-services.sh stop DIR    stops both (the data stays in DIR until it is removed)
#
# Installs what is missing: Debian's postgresql, python3-pip, and moto[server] from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:?usage: test-services.sh start|stop DIR}
dir=${2:?usage: test-services.sh start|stop DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# free_port: the end-to-end scripts' picker (loopback, below the kernel's ephemeral range).
# shellcheck source=e2e/lib.sh
. e2e/lib.sh

# Runs a command as the non-root owner of the PostgreSQL data (postgres refuses to run as root).
as_pg_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    return 1
}

start() {
    scripts/install-deps.sh postgresql python3-pip
    if ! python3 -c 'import moto.server, flask_cors' 2>/dev/null; then
        echo "installing moto[server] from PyPI"
        python3 -m pip install -q 'moto[server]' 2>/dev/null \
            || python3 -m pip install -q --break-system-packages 'moto[server]'
    fi
    if [ -f "$dir/env" ]; then cat "$dir/env"; return 0; fi

    local bin pg_port s3_port i
    bin=$(pg_bin) || { echo "PostgreSQL binaries not found" >&2; return 1; }
    free_port pg_port
    mkdir -p "$dir/pgdata"
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir" "$dir/pgdata"
        # The server runs as postgres: it must be able to walk into DIR (a test's private temp folder).
        chmod o+x "$(dirname "$dir")"
    fi
    as_pg_user "$bin/initdb" -D "$dir/pgdata" -U berth --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
    # fsync stays on: the durability the store promises is PostgreSQL's own.
    as_pg_user "$bin/pg_ctl" -D "$dir/pgdata" -l "$dir/postgres.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $pg_port -k $dir -c max_connections=200" start >/dev/null \
        || { cat "$dir/postgres.log" >&2; return 1; }
    as_pg_user "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U berth berth

    free_port s3_port
    (cd "$dir" && exec setsid python3 -m moto.server -H 127.0.0.1 -p "$s3_port" >"$dir/moto.log" 2>&1) &
    echo $! >"$dir/moto.pid"
    for i in $(seq 1 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$s3_port/" 2>/dev/null && break
        [ "$i" = 100 ] && { echo "moto did not start; log:" >&2; cat "$dir/moto.log" >&2; return 1; }
        sleep 0.2
    done

    cat >"$dir/env" <<EOF
export BERTH_TEST_POSTGRES_URL=postgres://berth@127.0.0.1:$pg_port/berth
export BERTH_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
EOF
    cat "$dir/env"
}

stop() {
    local bin
    if [ -f "$dir/moto.pid" ]; then
        kill "$(cat "$dir/moto.pid")" 2>/dev/null || true
        rm -f "$dir/moto.pid"
    fi
    if [ -d "$dir/pgdata" ] && bin=$(pg_bin); then
        as_pg_user "$bin/pg_ctl" -D "$dir/pgdata" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -f "$dir/env"
}

case $cmd in
    start) start ;;
    stop) stop ;;
    *) echo "usage: test-services.sh start|stop DIR" >&2; exit 2 ;;
esac
