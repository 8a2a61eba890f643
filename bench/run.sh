#!/usr/bin/env bash
# bench/run.sh — side-by-side benchmark of Berth against CNCF distribution
# (Debian's docker-registry), with nginx serving static files as a reference.
#
#   bench/run.sh                      full run (release build, then 3 rounds of 1 GiB blobs, ~8 min)
#   BENCH_QUICK=1 bench/run.sh        smoke run (64 MiB blobs, 1 round, 2 s wrk)
#
# Environment:
#   BENCH_ROUNDS      rounds per figure (default 3; 1 when BENCH_QUICK=1)
#   BENCH_BLOB_MIB    big-blob size in MiB (default 1024; 64 when BENCH_QUICK=1)
#   BENCH_CHUNK_MIB   chunk size for the chunked push (default min(64, blob/4))
#   BENCH_QUICK=1     fast smoke run
#   BENCH_SKIP_BERTH=1  measure distribution and nginx only (no Swift build)
#   BERTH_BIN         use this berth binary instead of building one
#   BENCH_BERTH_ARGS  extra arguments appended to `berth serve ...`
#   BENCH_TMPDIR      where blobs and server data go (default bench/results/tmp;
#                     keep it on a real disk, not tmpfs)
#
# Output: Markdown table on stdout and in bench/results/latest.md, JSON in
# bench/results/latest.json. Progress goes to stderr.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
RESULTS_DIR=$BENCH_DIR/results

# ---------------------------------------------------------------- configuration

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    ROUNDS=${BENCH_ROUNDS:-1}
    BLOB_MIB=${BENCH_BLOB_MIB:-64}
    WRK_SECONDS=2
else
    ROUNDS=${BENCH_ROUNDS:-3}
    BLOB_MIB=${BENCH_BLOB_MIB:-1024}
    WRK_SECONDS=10
fi
# Chunks and range reads of 64 MiB, but never more than a quarter of the blob, so
# small (quick) blobs still take several PATCH requests.
QUARTER_MIB=$(( BLOB_MIB / 4 > 0 ? BLOB_MIB / 4 : 1 ))
CHUNK_MIB=${BENCH_CHUNK_MIB:-$(( QUARTER_MIB < 64 ? QUARTER_MIB : 64 ))}
RANGE_MIB=$(( QUARTER_MIB < 64 ? QUARTER_MIB : 64 ))
RANGE_REPEAT=5              # range pulls are short; time five back to back
WRK_THREADS=2
WRK_CONNS=64
SMALL_COUNT=1000
SMALL_WORKERS=16
SMALL_BYTES=4096
BIG_MAX_TIME=600            # curl --max-time for one big transfer, seconds
SMALL_MAX_TIME=30           # curl --max-time for one small request, seconds

BLOB_BYTES=$(( BLOB_MIB * 1024 * 1024 ))
MIB=1048576
CLK_TCK=$(getconf CLK_TCK)
OCTET='Content-Type: application/octet-stream'
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json

# Per-server facts. Berth addresses images as docker-hosted/<image>.
declare -A BASE=() NAME=() PID=() MODE=() LOG=() DEAD=()
SERVERS=()                  # registries under test: berth and/or distribution
STARTED_PIDS=()             # everything we started, killed on exit
TMP=''
FAILURES=0

# ---------------------------------------------------------------- small helpers

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# A note ends up under the results table (failures, upload modes, caveats).
note() { log "note: $*"; printf '%s\n' "$*" >>"$TMP/raw/notes.txt"; }
fail() { FAILURES=$((FAILURES + 1)); note "$@"; }
meta() { printf '%s\t%s\n' "$1" "$2" >>"$TMP/raw/meta.tsv"; }

# record FIGURE SERVER ROUND VALUE — one sample; report.py aggregates over rounds.
record() {
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$TMP/raw/samples.tsv"
    log "  $1 [$2] = $4"
}

# curl prints time_total as seconds with six decimals; integer microseconds keep the arithmetic in bash.
seconds_to_us() {
    local int=${1%.*} frac=000000
    [[ $1 == *.* ]] && frac="${1#*.}000000"
    echo $((10#$int * 1000000 + 10#${frac:0:6}))
}
mib_per_s() { awk -v b="$1" -v us="$2" 'BEGIN { printf "%.1f", b / 1048576 / (us / 1e6) }'; }
cpu_s_per_gib() { awk -v t="$1" -v hz="$CLK_TCK" -v b="$2" 'BEGIN { printf "%.3f", (t / hz) / (b / 1073741824) }'; }

# utime+stime of a process in clock ticks. Fields after the ")" of comm, which may contain spaces.
cpu_ticks() { { sed 's/.*) //' "/proc/$1/stat" || echo; } 2>/dev/null | awk '{ print $12 + $13 }'; }

# Peak RSS per phase: writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }
hwm_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || true; }

# Flush dirty pages so one server's writeback is not billed to the next measurement.
settle() { sync; }

# nginx lives in /usr/sbin, which a non-root PATH may lack.
nginx_bin() { command -v nginx || echo /usr/sbin/nginx; }

sha256_of() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }

# Incompressible pseudo-random bytes, fast: AES-CTR keystream seeded per blob.
random_file() { # FILE BYTES SEED
    head -c "$2" < <(openssl enc -aes-128-ctr -pbkdf2 -nosalt -pass "pass:$3" </dev/zero 2>/dev/null) >"$1"
    [[ $(stat -c %s "$1") == "$2" ]] || die "could not generate $1"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Berth first in odd rounds, distribution first in even rounds, so neither
# always runs on a cold (or warm) machine.
round_order() {
    local r=$1
    if ((${#SERVERS[@]} == 2 && r % 2 == 0)); then
        echo "${SERVERS[1]} ${SERVERS[0]}"
    else
        echo "${SERVERS[*]}"
    fi
}

# alive SERVER — false once a server has exited; the first time, say so with its log tail.
# A crash mid-run should cost that server's remaining figures, not the whole report.
alive() {
    [[ -z ${DEAD[$1]:-} ]] || return 1
    kill -0 "${PID[$1]}" 2>/dev/null && return 0
    DEAD[$1]=1
    fail "$1 exited during the run; its later figures are missing. Log tail: $(tail -n 5 "${LOG[$1]}" | tr '\n' ' ')"
    return 1
}

# ---------------------------------------------------------------- HTTP helpers

# http METHOD URL [curl args...]
# One request; response body to $TMP/body. Sets HTTP_CODE, HTTP_US (time, µs) and
# HTTP_LOCATION. Returns 1 only if curl itself failed (status codes are checked by expect).
http() {
    local method=$1 url=$2 out
    shift 2
    local verb=(-X "$method")
    [[ $method == HEAD ]] && verb=(-I)
    HTTP_CODE=000 HTTP_US=0 HTTP_LOCATION=''
    # Expect: disabled — curl would otherwise wait up to 1 s for "100 Continue" on big bodies.
    # --request-target: with -T, curl appends the file name to a URL whose path ends in "/"
    # (".../blobs/uploads/?digest=" would become ".../uploads/mono.bin?digest=").
    if ! out=$(curl -sS --noproxy '*' -H 'Expect:' --max-time "${HTTP_MAX_TIME:-$SMALL_MAX_TIME}" \
        --request-target "/${url#*://*/}" "${verb[@]}" -D "$TMP/headers" -o "$TMP/body" -w '%{http_code} %{time_total}' "$@" "$url" 2>&1); then
        LAST_ERROR="curl $method $url: ${out##*curl: }"
        return 1
    fi
    read -r HTTP_CODE HTTP_US <<<"$out"
    HTTP_US=$(seconds_to_us "$HTTP_US")
    HTTP_LOCATION=$(awk 'tolower($1) == "location:" { sub(/\r$/, ""); print $2 }' "$TMP/headers" | tail -n1)
}

# expect CODE WHAT — check the last status; on mismatch set LAST_ERROR with the body's start.
expect() {
    [[ $HTTP_CODE == "$1" ]] && return 0
    LAST_ERROR="$2: HTTP $HTTP_CODE (wanted $1) $(head -c 200 "$TMP/body" 2>/dev/null | tr -d '\r\n')"
    return 1
}

# Location may be absolute, absolute-path or relative: resolve against the request URL.
resolve_location() { # REQUEST_URL LOCATION
    local url=$1 loc=$2
    case $loc in
    http://* | https://*) echo "$loc" ;;
    /*) [[ $url =~ ^(https?://[^/]+) ]] && echo "${BASH_REMATCH[1]}$loc" ;;
    *) local dir=${url%%\?*}; echo "${dir%/*}/$loc" ;;
    esac
}

with_digest() { if [[ $1 == *\?* ]]; then echo "$1&digest=$2"; else echo "$1?digest=$2"; fi; }

uploads_url() { echo "${BASE[$1]}/v2/${NAME[$1]}/blobs/uploads/"; }
blob_url() { echo "${BASE[$1]}/v2/${NAME[$1]}/blobs/$2"; }

# start_session SERVER — POST an empty upload; sets UPLOAD_URL, adds to PUSH_US.
start_session() {
    local url
    url=$(uploads_url "$1")
    http POST "$url" -H 'Content-Length: 0' || return 1
    expect 202 "POST upload session" || return 1
    [[ -n $HTTP_LOCATION ]] || { LAST_ERROR="POST upload session: no Location header"; return 1; }
    UPLOAD_URL=$(resolve_location "$url" "$HTTP_LOCATION")
    PUSH_US=$((PUSH_US + HTTP_US))
}

# push_file SERVER FILE DIGEST — monolithic push in the server's upload mode; sets PUSH_US.
#   monolithic: POST ?digest= with the body (one request, 201)
#   postput:    POST (202) then PUT <location>?digest= with the body (201)
push_file() {
    local server=$1 file=$2 digest=$3
    PUSH_US=0
    if [[ ${MODE[$server]} == monolithic ]]; then
        http POST "$(uploads_url "$server")?digest=$digest" -H "$OCTET" -T "$file" || return 1
        expect 201 "monolithic POST" || return 1
    else
        start_session "$server" || return 1
        http PUT "$(with_digest "$UPLOAD_URL" "$digest")" -H "$OCTET" -T "$file" || return 1
        expect 201 "PUT with body" || return 1
    fi
    PUSH_US=$((PUSH_US + HTTP_US))
}

# push_chunks SERVER CHUNK_DIR DIGEST — POST, one PATCH per chunk file with
# Content-Range, then an empty PUT ?digest=. Sets PUSH_US.
push_chunks() {
    local server=$1 dir=$2 digest=$3 offset=0 size chunk
    PUSH_US=0
    start_session "$server" || return 1
    for chunk in "$dir"/chunk.*; do
        size=$(stat -c %s "$chunk")
        http PATCH "$UPLOAD_URL" -H "$OCTET" -H "Content-Range: $offset-$((offset + size - 1))" -T "$chunk" || return 1
        expect 202 "PATCH at offset $offset" || return 1
        PUSH_US=$((PUSH_US + HTTP_US))
        # Distribution rotates a signed _state token in Location: always follow the latest one.
        [[ -n $HTTP_LOCATION ]] && UPLOAD_URL=$(resolve_location "$UPLOAD_URL" "$HTTP_LOCATION")
        offset=$((offset + size))
    done
    http PUT "$(with_digest "$UPLOAD_URL" "$digest")" -H 'Content-Length: 0' || return 1
    expect 201 "final PUT" || return 1
    PUSH_US=$((PUSH_US + HTTP_US))
}

# pull URL [curl args...] — GET to /dev/null; sets PULL_CODE, PULL_BYTES, PULL_US.
pull() {
    local url=$1 out
    shift
    PULL_CODE=000 PULL_BYTES=0 PULL_US=0
    if ! out=$(curl -sS --noproxy '*' -L --max-time "$BIG_MAX_TIME" -o /dev/null \
        -w '%{http_code} %{size_download} %{time_total}' "$@" "$url" 2>&1); then
        LAST_ERROR="curl GET $url: ${out##*curl: }"
        return 1
    fi
    read -r PULL_CODE PULL_BYTES PULL_US <<<"$out"
    PULL_US=$(seconds_to_us "$PULL_US")
}

# ---------------------------------------------------------------- setup

ensure_packages() {
    local -A need=([docker-registry]=docker-registry [wrk]=wrk [hey]=hey [curl]=curl [python3]=python3
        [openssl]=openssl [split]=coreutils [awk]=mawk)
    local missing=() cmd
    for cmd in "${!need[@]}"; do
        command -v "$cmd" >/dev/null || missing+=("${need[$cmd]}")
    done
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
    ((${#missing[@]} == 0)) && return 0
    [[ $EUID == 0 ]] || die "missing packages (${missing[*]}); run as root or install them"
    log "installing: ${missing[*]}"
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
}

build_berth() {
    if [[ ${BENCH_SKIP_BERTH:-0} == 1 ]]; then
        log "BENCH_SKIP_BERTH=1: measuring distribution and nginx only"
        return 0
    fi
    if [[ -z ${BERTH_BIN:-} ]]; then
        command -v swift >/dev/null || die "swift not found: install a Swift toolchain, or set BENCH_SKIP_BERTH=1"
        log "building Berth (swift build -c release --product berth)"
        (cd "$REPO_DIR" && swift build -c release --product berth) >&2 || die "Berth release build failed"
        BERTH_BIN=$REPO_DIR/.build/release/berth
    fi
    [[ -x $BERTH_BIN ]] || die "no Berth binary at $BERTH_BIN"
    SERVERS+=(berth)
}

make_tmp() {
    local parent=${BENCH_TMPDIR:-$RESULTS_DIR/tmp}
    mkdir -p "$parent"
    TMP=$(mktemp -d "$parent/run.XXXXXX")
    mkdir -p "$TMP/raw" "$TMP/blobs" "$TMP/www"
    : >"$TMP/raw/samples.tsv"
    : >"$TMP/raw/meta.tsv"
    : >"$TMP/raw/notes.txt"
}

check_disk() {
    # Each round stores two blobs on each server and keeps two on the client.
    local need_mib=$(( (4 * ROUNDS + 2) * BLOB_MIB + 1024 )) free_mib
    free_mib=$(df -Pm "$TMP" | awk 'NR == 2 { print $4 }')
    ((free_mib > need_mib)) || die "need ~$need_mib MiB free under $TMP, have $free_mib MiB"
    [[ $(stat -f -c %T "$TMP") != tmpfs ]] || log "warning: $TMP is tmpfs; disk figures will be memory figures"
}

cleanup() {
    local pid i
    for pid in "${STARTED_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${STARTED_PIDS[@]}"; do
        for i in {1..50}; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [[ -n $TMP && -d $TMP ]]; then
        rm -rf "$TMP"
        rmdir "$(dirname "$TMP")" 2>/dev/null || true
    fi
}

# wait_ready NAME URL — poll until the server answers 200, at most ~30 s.
wait_ready() {
    local name=$1 url=$2 i
    for i in {1..300}; do
        kill -0 "${PID[$name]}" 2>/dev/null || die "$name exited at start-up: $(tail -n 20 "${LOG[$name]}")"
        [[ $(curl -s --noproxy '*' --max-time 1 -o /dev/null -w '%{http_code}' "$url" || true) == 200 ]] && return 0
        sleep 0.1
    done
    die "$name did not answer $url within 30 s: $(tail -n 20 "${LOG[$name]}")"
}

start_distribution() {
    local dir=$TMP/distribution port
    port=$(free_port)
    mkdir -p "$dir/data"
    # Access log off: Berth at warn level does not log every request either.
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: berth-bench-not-secret
EOF
    LOG[distribution]=$dir/log
    docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    PID[distribution]=$!
    STARTED_PIDS+=("$!")
    BASE[distribution]=http://127.0.0.1:$port
    NAME[distribution]=bench/app
    wait_ready distribution "${BASE[distribution]}/v2/"
    log "distribution: pid ${PID[distribution]}, ${BASE[distribution]}"
}

start_berth() {
    local dir=$TMP/berth port
    port=$(free_port)
    mkdir -p "$dir/data"
    LOG[berth]=$dir/log
    # Same log level as distribution (warn), where this berth has the option: request logs cost time.
    local level=()
    "$BERTH_BIN" serve --help 2>&1 | grep -q -- '--log-level' && level=(--log-level warning)
    # shellcheck disable=SC2086 # BENCH_BERTH_ARGS is meant to be split into words
    "$BERTH_BIN" serve --listen "127.0.0.1:$port" --data "$dir/data" "${level[@]}" ${BENCH_BERTH_ARGS:-} >"$dir/log" 2>&1 &
    PID[berth]=$!
    STARTED_PIDS+=("$!")
    BASE[berth]=http://127.0.0.1:$port
    NAME[berth]=docker-hosted/bench/app
    wait_ready berth "${BASE[berth]}/v2/"
    log "berth: pid ${PID[berth]}, ${BASE[berth]}"
}

# nginx with its own prefix and config (never /etc/nginx), serving $TMP/www.
start_nginx() {
    local dir=$TMP/nginx port bin
    bin=$(nginx_bin)
    port=$(free_port)
    mkdir -p "$dir/tmp"
    # Workers run as the invoking user so they can read files under a 0700 temp dir.
    # keepalive_requests raised: the 1000 default would make wrk reconnect, unlike the Go/NIO servers.
    cat >"$dir/nginx.conf" <<EOF
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
$([[ $EUID == 0 ]] && echo "user root root;")
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    types { application/json json; }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$port;
        root $TMP/www;
    }
}
EOF
    echo ok >"$TMP/www/ready"
    LOG[nginx]=$dir/error.log
    "$bin" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;' >"$dir/stdout.log" 2>&1 &
    PID[nginx]=$!
    STARTED_PIDS+=("$!")
    BASE[nginx]=http://127.0.0.1:$port
    wait_ready nginx "${BASE[nginx]}/ready"
    log "nginx: pid ${PID[nginx]}, ${BASE[nginx]}"
}

# Distribution 2.x ignores ?digest= on POST and answers 202; Berth should answer 201.
# Probe with a small blob and fall back to POST+PUT where needed.
detect_upload_mode() {
    local server=$1 probe=$TMP/probe.bin digest
    head -c 1024 /dev/urandom >"$probe"
    digest=sha256:$(sha256_of "$probe")
    http POST "$(uploads_url "$server")?digest=$digest" -H "$OCTET" -T "$probe" || die "$server: $LAST_ERROR"
    case $HTTP_CODE in
    201) MODE[$server]=monolithic ;;
    202) MODE[$server]=postput
        note "$server does not complete a monolithic POST (HTTP 202): its monolithic and small-blob pushes use POST + PUT with the body." ;;
    *) die "$server: monolithic POST probe answered HTTP $HTTP_CODE: $(head -c 200 "$TMP/body")" ;;
    esac
    log "$server upload mode: ${MODE[$server]}"
}

# A small but real image: a gzip tar layer, an OCI config naming its diff_id, and a manifest.
make_image() {
    local dir=$TMP/image
    mkdir -p "$dir/rootfs"
    head -c 2048 /dev/urandom | base64 >"$dir/rootfs/hello.txt"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$dir/rootfs" -cf "$dir/layer.tar" .
    gzip -n -c "$dir/layer.tar" >"$dir/layer.tar.gz"
    LAYER_DIGEST=sha256:$(sha256_of "$dir/layer.tar.gz")
    printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"berth bench"}]}' \
        "$(sha256_of "$dir/layer.tar")" >"$dir/config.json"
    CONFIG_DIGEST=sha256:$(sha256_of "$dir/config.json")
    printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
        "$OCI_MANIFEST" "$CONFIG_DIGEST" "$(stat -c %s "$dir/config.json")" \
        "$LAYER_DIGEST" "$(stat -c %s "$dir/layer.tar.gz")" >"$dir/manifest.json"
    MANIFEST_DIGEST=sha256:$(sha256_of "$dir/manifest.json")
    # nginx serves the same bytes as its small static file.
    cp "$dir/manifest.json" "$TMP/www/manifest.json"
}

push_image() {
    local server=$1 dir=$TMP/image murl
    push_file "$server" "$dir/layer.tar.gz" "$LAYER_DIGEST" || die "$server: layer push: $LAST_ERROR"
    push_file "$server" "$dir/config.json" "$CONFIG_DIGEST" || die "$server: config push: $LAST_ERROR"
    murl="${BASE[$server]}/v2/${NAME[$server]}/manifests"
    http PUT "$murl/v1" -H "Content-Type: $OCI_MANIFEST" -T "$dir/manifest.json" || die "$server: $LAST_ERROR"
    expect 201 "PUT manifest" || die "$server: $LAST_ERROR"
    http HEAD "$murl/$MANIFEST_DIGEST" -H "Accept: $OCI_MANIFEST" || die "$server: $LAST_ERROR"
    expect 200 "HEAD manifest by digest" || die "$server: $LAST_ERROR"
    http GET "$murl/v1" -H "Accept: $OCI_MANIFEST" || die "$server: $LAST_ERROR"
    expect 200 "GET manifest by tag" || die "$server: $LAST_ERROR"
    cmp -s "$TMP/body" "$dir/manifest.json" || die "$server: manifest GET returned different bytes"
    http GET "${BASE[$server]}/v2/${NAME[$server]}/tags/list" || die "$server: $LAST_ERROR"
    expect 200 "GET tags/list" || die "$server: $LAST_ERROR"
    grep -q '"v1"' "$TMP/body" || die "$server: tags/list lacks v1: $(head -c 200 "$TMP/body")"
}

collect_meta() {
    meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    meta nproc "$(nproc)"
    meta cpu_model "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    meta kernel "$(uname -r)"
    meta mem_total_mib "$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)"
    meta quick "$QUICK"
    meta rounds "$ROUNDS"
    meta blob_mib "$BLOB_MIB"
    meta chunk_mib "$CHUNK_MIB"
    meta range_mib "$RANGE_MIB"
    meta wrk_threads "$WRK_THREADS"
    meta wrk_connections "$WRK_CONNS"
    meta wrk_seconds "$WRK_SECONDS"
    meta small_count "$SMALL_COUNT"
    meta small_workers "$SMALL_WORKERS"
    meta version_distribution "$(docker-registry --version 2>/dev/null | awk '{ print $NF }')"
    meta version_nginx "$("$(nginx_bin)" -v 2>&1 | sed 's|.*/||')"
    meta version_wrk "$(wrk --version 2>&1 | awk 'NR == 1 { print $2 }')"
    meta version_curl "$(curl --version | awk 'NR == 1 { print $2 }')"
    if [[ " ${SERVERS[*]} " == *" berth "* ]]; then
        local rev
        rev=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo uncommitted)
        [[ -n $(git -C "$REPO_DIR" status --porcelain -- Sources Package.swift 2>/dev/null) ]] && rev+="+dirty"
        meta version_berth "$rev"
    fi
}

# Other work on the machine (a compiler, say) skews every figure; say so in the results.
# Sample system-wide CPU use for 2 s while our servers sit idle (load average would
# still remember the Berth build that just finished).
warn_if_busy() {
    local a b busy
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    sleep 2
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    busy=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ")
        db = y[1] - x[1]; di = y[2] - x[2]; printf "%.0f", (db + di) ? 100 * db / (db + di) : 0 }')
    meta busy_percent_at_start "$busy"
    if ((busy > 10)); then
        note "The machine was not idle at start (${busy}% of all CPUs busy with other work): figures may be noisy."
    fi
}

# One-core sha256 throughput: every byte pushed must be hashed once, so this is a
# ceiling-ish reference for single-stream push speed.
measure_sha256() {
    local out mib
    out=$(openssl speed -evp sha256 -bytes 16384 -seconds 3 2>/dev/null)
    mib=$(awk 'tolower($1) == "sha256" { v = $2; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1048576 }' <<<"$out" | tail -n1)
    [[ -n $mib ]] || { note "could not parse openssl speed output"; return 0; }
    meta sha256_mib_s "$mib"
    log "one-core sha256: $mib MiB/s"
}

# ---------------------------------------------------------------- per-round figures

prepare_blobs() { # ROUND
    local dir=$TMP/blobs seed
    seed="$$-$(date +%s)-$1"
    rm -rf "$dir" && mkdir -p "$dir/chunks"
    log "round $1: generating two $BLOB_MIB MiB random blobs"
    random_file "$dir/mono.bin" "$BLOB_BYTES" "$seed-mono"
    MONO_DIGEST=sha256:$(sha256_of "$dir/mono.bin")
    random_file "$dir/chunked.bin" "$BLOB_BYTES" "$seed-chunked"
    CHUNKED_DIGEST=sha256:$(sha256_of "$dir/chunked.bin")
    split -b "${CHUNK_MIB}M" -d -a 4 "$dir/chunked.bin" "$dir/chunks/chunk."
    rm -f "$dir/chunked.bin"
    # nginx serves the very same bytes (hard link, no copy).
    ln -f "$dir/mono.bin" "$TMP/www/blob.bin"
}

# Peak RSS of a phase: reset every server's high-water mark, run, read it back.
phase_begin() { local s; for s in "${SERVERS[@]}"; do reset_hwm "${PID[$s]}"; done; }
phase_end() { # FIGURE ROUND
    local s
    for s in "${SERVERS[@]}"; do
        alive "$s" || continue
        record "$1" "$s" "$2" "$(hwm_mib "${PID[$s]}")"
    done
}

measure_push() { # KIND(mono|chunked) SERVER ROUND
    local kind=$1 server=$2 round=$3 t0 t1 ok=1
    alive "$server" || return 0
    settle
    t0=$(cpu_ticks "${PID[$server]}")
    if [[ $kind == mono ]]; then
        HTTP_MAX_TIME=$BIG_MAX_TIME push_file "$server" "$TMP/blobs/mono.bin" "$MONO_DIGEST" || ok=0
    else
        HTTP_MAX_TIME=$BIG_MAX_TIME push_chunks "$server" "$TMP/blobs/chunks" "$CHUNKED_DIGEST" || ok=0
    fi
    t1=$(cpu_ticks "${PID[$server]}")
    if ((ok)); then
        record "push_$kind" "$server" "$round" "$(mib_per_s "$BLOB_BYTES" "$PUSH_US")"
        record "cpu_push_$kind" "$server" "$round" "$(cpu_s_per_gib $((t1 - t0)) "$BLOB_BYTES")"
    else
        fail "$server: $kind push failed in round $round: $LAST_ERROR"
    fi
}

# Untimed, once per run: do the servers give back exactly what was pushed?
verify_blobs() {
    local s digest got
    for s in "${SERVERS[@]}"; do
        alive "$s" || continue
        for digest in "$MONO_DIGEST" "$CHUNKED_DIGEST"; do
            got=sha256:$(curl -sS --noproxy '*' -L --max-time "$BIG_MAX_TIME" "$(blob_url "$s" "$digest")" |
                openssl dgst -sha256 -r | cut -d' ' -f1 || true)
            [[ $got == "$digest" ]] || fail "$s: GET $digest returned content with digest $got"
        done
    done
}

measure_pull() { # SERVER ROUND — full GET of this round's monolithic blob
    local server=$1 round=$2 url t0=0 t1=0
    alive "$server" || return 0
    if [[ $server == nginx ]]; then url=${BASE[nginx]}/blob.bin; else url=$(blob_url "$server" "$MONO_DIGEST"); fi
    settle
    [[ $server != nginx ]] && t0=$(cpu_ticks "${PID[$server]}")
    if ! pull "$url"; then fail "$server: pull failed in round $round: $LAST_ERROR"; return; fi
    [[ $server != nginx ]] && t1=$(cpu_ticks "${PID[$server]}")
    if [[ $PULL_CODE != 200 || $PULL_BYTES != "$BLOB_BYTES" ]]; then
        fail "$server: pull in round $round got HTTP $PULL_CODE, $PULL_BYTES bytes"
        return
    fi
    record pull "$server" "$round" "$(mib_per_s "$PULL_BYTES" "$PULL_US")"
    [[ $server != nginx ]] && record cpu_pull "$server" "$round" "$(cpu_s_per_gib $((t1 - t0)) "$PULL_BYTES")"
    return 0
}

measure_range() { # SERVER ROUND — RANGE_REPEAT range GETs from an odd offset
    local server=$1 round=$2 url i bytes=0 us=0
    local start=$(( BLOB_BYTES / 4 + 12345 )) len=$(( RANGE_MIB * MIB ))
    alive "$server" || return 0
    if [[ $server == nginx ]]; then url=${BASE[nginx]}/blob.bin; else url=$(blob_url "$server" "$MONO_DIGEST"); fi
    for ((i = 0; i < RANGE_REPEAT; i++)); do
        if ! pull "$url" -H "Range: bytes=$start-$((start + len - 1))"; then
            fail "$server: range pull failed in round $round: $LAST_ERROR"
            return
        fi
        if [[ $PULL_CODE != 206 || $PULL_BYTES != "$len" ]]; then
            fail "$server: range pull in round $round got HTTP $PULL_CODE, $PULL_BYTES bytes (wanted 206, $len)"
            return
        fi
        bytes=$((bytes + PULL_BYTES)) us=$((us + PULL_US))
    done
    record pull_range "$server" "$round" "$(mib_per_s "$bytes" "$us")"
}

# run_wrk FIGURE SERVER ROUND URL [wrk args...] — records FIGURE_rps and FIGURE_p99.
run_wrk() {
    local fig=$1 server=$2 round=$3 url=$4 out parsed
    shift 4
    alive "$server" || return 0
    if ! out=$(wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WRK_SECONDS}s" --timeout 5s --latency "$@" "$url" 2>&1); then
        fail "$server: wrk $fig failed in round $round: $(tail -n 3 <<<"$out")"
        return
    fi
    # p99 comes as e.g. 812.00us, 3.21ms, 1.02s; normalise to ms. Socket errors count as failed.
    parsed=$(awk '
        /^Requests\/sec:/ { rps = $2 }
        / requests in / { total = $1 }
        /Non-2xx or 3xx responses:/ { bad += $NF }
        /Socket errors:/ { for (i = 3; i < NF; i += 2) { v = $(i + 1); sub(/,/, "", v); bad += v } }
        $1 == "99%" { v = $2; n = v + 0
            if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
            p99 = n }
        END { printf "%s %s %s %s\n", rps + 0, p99 + 0, total + 0, bad + 0 }' <<<"$out")
    # shellcheck disable=SC2086 # four numbers
    record_load "$fig" "$server" "$round" $parsed
}

# run_hey FIGURE SERVER ROUND URL [hey args...] — like run_wrk, with hey. Used for HEAD:
# Debian's wrk 4.1.0 waits for a body after a HEAD response that has a Content-Length,
# so it completes no requests at all.
run_hey() {
    local fig=$1 server=$2 round=$3 url=$4 out parsed
    shift 4
    alive "$server" || return 0
    if ! out=$(hey -z "${WRK_SECONDS}s" -c "$WRK_CONNS" -t 5 "$@" "$url" 2>&1); then
        fail "$server: hey $fig failed in round $round: $(tail -n 3 <<<"$out")"
        return
    fi
    # Status lines look like "  [200]	12345 responses"; error lines like "  [12]	Head ...: EOF".
    parsed=$(awk '
        /Requests\/sec:/ { rps = $2 }
        /^ *99% in / { p99 = $3 * 1000 }
        /^Status code distribution:/ { section = "status"; next }
        /^Error distribution:/ { section = "error"; next }
        section != "" && /^ *\[[0-9]+\]/ {
            code = $1; gsub(/[][]/, "", code); n = $2 + 0
            if (section == "status") { total += n; if (code + 0 >= 400) bad += n }
            else { total += code; bad += code }
        }
        END { printf "%s %s %s %s\n", rps + 0, p99 + 0, total + 0, bad + 0 }' <<<"$out")
    # shellcheck disable=SC2086 # four numbers
    record_load "$fig" "$server" "$round" $parsed
}

# record_load FIGURE SERVER ROUND RPS P99_MS TOTAL BAD — records FIGURE_rps and FIGURE_p99.
record_load() {
    local fig=$1 server=$2 round=$3 rps=$4 p99=$5 total=$6 bad=$7
    # A fast error page is not a result: drop the sample if over 1% of requests failed.
    if ((total == 0 || bad * 100 > total)); then
        fail "$server: $fig in round $round: $bad of $total requests failed or were not 2xx/3xx"
        return
    fi
    ((bad == 0)) || note "$server: $fig round $round: $bad of $total requests failed"
    record "${fig}_rps" "$server" "$round" "$rps"
    record "${fig}_p99" "$server" "$round" "$p99"
}

measure_wrk_endpoints() { # ROUND ORDER...
    local round=$1 s base
    shift
    for s in "$@"; do
        base="${BASE[$s]}/v2/${NAME[$s]}"
        run_wrk wrk_manifest_get "$s" "$round" "$base/manifests/v1" -H "Accept: $OCI_MANIFEST"
    done
    for s in "$@"; do
        base="${BASE[$s]}/v2/${NAME[$s]}"
        run_hey hey_manifest_head "$s" "$round" "$base/manifests/$MANIFEST_DIGEST" -m HEAD -H "Accept: $OCI_MANIFEST"
    done
    for s in "$@"; do run_wrk wrk_tags "$s" "$round" "${BASE[$s]}/v2/${NAME[$s]}/tags/list"; done
    for s in "$@"; do run_wrk wrk_base "$s" "$round" "${BASE[$s]}/v2/"; done
    run_wrk wrk_static nginx "$round" "${BASE[nginx]}/manifest.json"
    run_hey hey_static_head nginx "$round" "${BASE[nginx]}/manifest.json" -m HEAD
}

measure_small() { # SERVER ROUND
    local server=$1 round=$2 out ops t0 t1
    alive "$server" || return 0
    t0=$(cpu_ticks "${PID[$server]}")
    if ! out=$(python3 "$BENCH_DIR/smallblobs.py" --base "${BASE[$server]}" --name "${NAME[$server]%/app}/small" \
        --mode "${MODE[$server]}" --count "$SMALL_COUNT" --workers "$SMALL_WORKERS" --size "$SMALL_BYTES" 2>&1); then
        fail "$server: small-blob pushes failed in round $round: $(tail -n 1 <<<"$out")"
        return
    fi
    t1=$(cpu_ticks "${PID[$server]}")
    ops=$(python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["ops_per_s"])' <<<"$out")
    record small_push "$server" "$round" "$ops"
    record cpu_small "$server" "$round" "$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$SMALL_COUNT" 'BEGIN { printf "%.3f", t / hz * 1000 / n }')"
}

run_round() { # ROUND
    local round=$1 order s pull_order
    read -ra order <<<"$(round_order "$round")"
    # nginx joins the pull rotation, first in odd rounds and last in even ones.
    if ((round % 2)); then pull_order=(nginx "${order[@]}"); else pull_order=("${order[@]}" nginx); fi
    prepare_blobs "$round"
    log "round $round/$ROUNDS: order ${order[*]}"

    phase_begin
    for s in "${order[@]}"; do measure_push mono "$s" "$round"; done
    for s in "${order[@]}"; do measure_push chunked "$s" "$round"; done
    phase_end rss_push "$round"

    ((round == 1)) && verify_blobs

    phase_begin
    for s in "${pull_order[@]}"; do measure_pull "$s" "$round"; done
    for s in "${pull_order[@]}"; do measure_range "$s" "$round"; done
    phase_end rss_pull "$round"

    phase_begin
    measure_wrk_endpoints "$round" "${order[@]}"
    phase_end rss_wrk "$round"

    phase_begin
    for s in "${order[@]}"; do measure_small "$s" "$round"; done
    phase_end rss_small "$round"

    # Client copies are no longer needed; the servers keep theirs.
    rm -rf "$TMP/blobs" "$TMP/www/blob.bin"
}

# ---------------------------------------------------------------- main

main() {
    local s round started=$SECONDS
    ensure_packages
    make_tmp
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    check_disk
    build_berth
    SERVERS+=(distribution)
    collect_meta
    measure_sha256

    ((${#SERVERS[@]} == 2)) && start_berth
    start_distribution
    start_nginx
    warn_if_busy
    make_image
    for s in "${SERVERS[@]}"; do
        detect_upload_mode "$s"
        push_image "$s"
        # Warm-up (not recorded): first connections, lazy initialisation, JIT-free but caches.
        wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d1s "${BASE[$s]}/v2/" >/dev/null 2>&1 || true
    done

    note "Manifest HEAD rows use hey, not wrk: Debian's wrk 4.1.0 never completes a HEAD request whose response carries a Content-Length."
    for ((round = 1; round <= ROUNDS; round++)); do run_round "$round"; done

    mkdir -p "$RESULTS_DIR"
    python3 "$BENCH_DIR/report.py" --raw "$TMP/raw" --md "$RESULTS_DIR/latest.md" --json "$RESULTS_DIR/latest.json"
    log "done in $((SECONDS - started)) s; results in bench/results/latest.{md,json}"
    if ((FAILURES)); then
        for s in "${SERVERS[@]}"; do log "last lines of the $s log:"; tail -n 20 "${LOG[$s]}" >&2; done
        log "$FAILURES measurement(s) failed; see the notes under the table"
        return 1
    fi
}

main "$@"
