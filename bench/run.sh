#!/usr/bin/env bash
# bench/run.sh — side-by-side benchmark of Berth against CNCF distribution
# (Debian's docker-registry), with nginx serving static files as a reference.
#
#   bench/run.sh                      full run (release build, then 3 rounds of 1 GiB blobs, ~14 min)
#   BENCH_QUICK=1 bench/run.sh        smoke run (64 MiB blobs, 1 round, 2 s wrk)
#   BENCH_PARTS=tls bench/run.sh      only the TLS request rates (any comma-separated subset of the parts)
#
# Parts (BENCH_PARTS, default core,tls,slow,pagination):
#   core        blob push/pull, range pulls, request rates, small blobs, CPU, peak RSS (per round)
#   tls         manifest GET and GET /v2/ over HTTPS vs distribution over TLS vs nginx TLS (per round)
#   slow        peak RSS while 4 rate-limited clients pull a big blob and 2 push one (own rounds)
#   pagination  one page of tags/list and _catalog at 100 / 1,000 / 10,000 tags and images
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
#   BENCH_PARTS       which parts to run (default core,tls,slow,pagination)
#   BENCH_TLS_SECONDS wrk duration of each TLS figure (default 5; 2 when BENCH_QUICK=1)
#   BENCH_SLOW_MIB    blob size of the slow-client scenario (default: BENCH_BLOB_MIB)
#   BENCH_SLOW_RATE   curl --limit-rate of each slow reader (default 50M, i.e. 50 MiB/s)
#   BENCH_SLOW_ROUNDS rounds of the slow-client scenario (default min(2, BENCH_ROUNDS))
#   BENCH_PAGE_TOTALS tag and image totals of the pagination curve (default "100 1000 10000";
#                     "100 1000" when BENCH_QUICK=1)
#   BENCH_PAGE_REQUESTS timed page requests per probe (default 200, each probe at most 5 s)
#   BENCH_WARM_PAGES  1 (default): recycle page cache before each timed blob write (see warm_pages); 0: off
#   BENCH_OUTPUT      results path prefix (default bench/results/latest)
#
# Output: Markdown table on stdout and in bench/results/latest.md, JSON in
# bench/results/latest.json (BENCH_OUTPUT=PREFIX writes PREFIX.md and PREFIX.json instead, e.g.
# for trial runs that should not replace the published results). Progress goes to stderr.
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

PARTS=${BENCH_PARTS:-core,tls,slow,pagination}
part_on() { [[ ",$PARTS," == *",$1,"* ]]; }
# TLS: the same wrk load as the plain figures, shorter (five figures per round).
TLS_SECONDS=${BENCH_TLS_SECONDS:-$([[ $QUICK == 1 ]] && echo 2 || echo 5)}
# Slow clients: readers rate-limited by curl, writers at full speed, all at once.
SLOW_MIB=${BENCH_SLOW_MIB:-$BLOB_MIB}
SLOW_BYTES=$(( SLOW_MIB * 1024 * 1024 ))
SLOW_RATE=${BENCH_SLOW_RATE:-50M}
SLOW_READERS=4
SLOW_WRITERS=2
SLOW_ROUNDS=${BENCH_SLOW_ROUNDS:-$(( ROUNDS < 2 ? ROUNDS : 2 ))}
SLOW_PIDS=()                # background clients of the slow-client scenario, killed on exit
# Pagination: totals grow in place (100, then 900 more, ...); each probe times one page.
PAGE_TOTALS=${BENCH_PAGE_TOTALS:-$([[ $QUICK == 1 ]] && echo "100 1000" || echo "100 1000 10000")}
PAGE_N=100
PAGE_REQUESTS=${BENCH_PAGE_REQUESTS:-200}
PAGE_DEADLINE=$([[ $QUICK == 1 ]] && echo 2 || echo 5)
PAGE_WORKERS=8
PAGE_POPULATE_MAX=600       # seconds allowed for one populate step of one registry
MIB=1048576
CLK_TCK=$(getconf CLK_TCK)
OCTET='Content-Type: application/octet-stream'
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json

# Per-server facts. Berth addresses images as docker-hosted/<image>.
declare -A BASE=() NAME=() PID=() MODE=() LOG=() DEAD=()
declare -A TLS_BASE=() TLS_NAME=() TLS_PID=()   # each server's TLS address, when part tls runs
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
rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || true; }

# Flush dirty pages so one server's writeback is not billed to the next measurement.
settle() { sync; }

# Before each timed blob write (pushes and the dd reference): write a scratch file a little larger than the
# blob into the page cache and delete it, so the write lands in memory the hypervisor already backs. On this
# kind of VM, page-cache pages the guest has not touched lately cost ~2.5 s of kernel CPU per GiB to fault
# in (just-freed ones ~0.3 s), and which case a push hits depends only on what ran before it. A registry
# host in steady state has its memory full of page cache and recycles it the same way. The scratch write is
# not timed and is the same for every server. BENCH_WARM_PAGES=0 turns it off (cold-memory figures).
WARM_PAGES=${BENCH_WARM_PAGES:-1}
warm_pages() {
    ((WARM_PAGES)) || return 0
    local scratch=$TMP/warm-pages.bin
    head -c $(( BLOB_BYTES + BLOB_BYTES / 4 )) /dev/zero >"$scratch" || note "could not write $scratch"
    rm -f "$scratch"
}

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
# One request; response body to $TMP/body ($HTTP_SCRATCH/body when set: for concurrent callers).
# Sets HTTP_CODE, HTTP_US (time, µs) and HTTP_LOCATION. Returns 1 only if curl itself failed
# (status codes are checked by expect).
http() {
    local method=$1 url=$2 out
    shift 2
    local verb=(-X "$method")
    [[ $method == HEAD ]] && verb=(-I)
    HTTP_CODE=000 HTTP_US=0 HTTP_LOCATION=''
    # Expect: disabled — curl would otherwise wait up to 1 s for "100 Continue" on big bodies.
    # --request-target: with -T, curl appends the file name to a URL whose path ends in "/"
    # (".../blobs/uploads/?digest=" would become ".../uploads/mono.bin?digest=").
    local scratch=${HTTP_SCRATCH:-$TMP}
    if ! out=$(curl -sS --noproxy '*' -H 'Expect:' --max-time "${HTTP_MAX_TIME:-$SMALL_MAX_TIME}" \
        --request-target "/${url#*://*/}" "${verb[@]}" -D "$scratch/headers" -o "$scratch/body" -w '%{http_code} %{time_total}' "$@" "$url" 2>&1); then
        LAST_ERROR="curl $method $url: ${out##*curl: }"
        return 1
    fi
    read -r HTTP_CODE HTTP_US <<<"$out"
    HTTP_US=$(seconds_to_us "$HTTP_US")
    HTTP_LOCATION=$(awk 'tolower($1) == "location:" { sub(/\r$/, ""); print $2 }' "$scratch/headers" | tail -n1)
}

# expect CODE WHAT — check the last status; on mismatch set LAST_ERROR with the body's start.
expect() {
    [[ $HTTP_CODE == "$1" ]] && return 0
    LAST_ERROR="$2: HTTP $HTTP_CODE (wanted $1) $(head -c 200 "${HTTP_SCRATCH:-$TMP}/body" 2>/dev/null | tr -d '\r\n')"
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
        log "building Berth (bench/build-berth.sh: release, static Swift runtime)"
        BERTH_BIN=$("$BENCH_DIR/build-berth.sh") || die "Berth release build failed"
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
    # Each core round stores two blobs on each server and keeps two on the client; the slow-client
    # scenario stores one blob to pull plus two per round on each server and keeps three on the client.
    local need_mib=1024 free_mib
    part_on core && need_mib=$(( need_mib + (4 * ROUNDS + 2) * BLOB_MIB ))
    part_on slow && need_mib=$(( need_mib + (2 * (1 + SLOW_WRITERS * SLOW_ROUNDS) + 1 + SLOW_WRITERS) * SLOW_MIB ))
    free_mib=$(df -Pm "$TMP" | awk 'NR == 2 { print $4 }')
    ((free_mib > need_mib)) || die "need ~$need_mib MiB free under $TMP, have $free_mib MiB"
    [[ $(stat -f -c %T "$TMP") != tmpfs ]] || log "warning: $TMP is tmpfs; disk figures will be memory figures"
}

cleanup() {
    local pid i
    for pid in "${SLOW_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
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

# wait_ready NAME URL — poll until the server answers 200, at most ~30 s (-k: the bench's
# self-signed certificate on the TLS listeners).
wait_ready() {
    local name=$1 url=$2 i
    for i in {1..300}; do
        kill -0 "${PID[$name]}" 2>/dev/null || die "$name exited at start-up: $(tail -n 20 "${LOG[$name]}")"
        [[ $(curl -sk --noproxy '*' --max-time 1 -o /dev/null -w '%{http_code}' "$url" || true) == 200 ]] && return 0
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
    part_on tls && start_distribution_tls
    return 0
}

# Distribution listens on one address only: a second process over the same storage serves TLS
# (http.tls). It reads what the plain one stored; its PID is PID[distribution_tls].
start_distribution_tls() {
    local dir=$TMP/distribution port
    port=$(free_port)
    sed -e "s|^  addr: .*|  addr: 127.0.0.1:$port|" "$dir/config.yml" >"$dir/config-tls.yml"
    printf '  tls:\n    certificate: %s\n    key: %s\n' "$TMP/tls/cert.pem" "$TMP/tls/key.pem" >>"$dir/config-tls.yml"
    LOG[distribution_tls]=$dir/log-tls
    docker-registry serve "$dir/config-tls.yml" >"$dir/log-tls" 2>&1 &
    PID[distribution_tls]=$!
    STARTED_PIDS+=("$!")
    TLS_BASE[distribution]=https://127.0.0.1:$port
    TLS_NAME[distribution]=bench/app
    TLS_PID[distribution]=${PID[distribution_tls]}
    wait_ready distribution_tls "${TLS_BASE[distribution]}/v2/"
    log "distribution over TLS: pid ${PID[distribution_tls]}, ${TLS_BASE[distribution]}"
}

start_berth() {
    local dir=$TMP/berth port
    port=$(free_port)
    mkdir -p "$dir/data"
    LOG[berth]=$dir/log
    # Same log level as distribution (warn), where this berth has the option: request logs cost time.
    local level=()
    "$BERTH_BIN" serve --help 2>&1 | grep -q -- '--log-level' && level=(--log-level warning)
    # TLS: a port route with the bench's certificate, bound to docker-hosted (so /v2/bench/app/...
    # on that port is docker-hosted/bench/app). Without part tls, no configuration file at all.
    local config=() tls_port
    if part_on tls; then
        tls_port=$(free_port)
        cat >"$dir/berth.yml" <<EOF
routes:
  - { listen: "127.0.0.1:$tls_port", tls: { cert: "$TMP/tls/cert.pem", key: "$TMP/tls/key.pem" }, repository: docker-hosted }
EOF
        config=(--config "$dir/berth.yml")
        TLS_BASE[berth]=https://127.0.0.1:$tls_port
        TLS_NAME[berth]=bench/app
    fi
    # shellcheck disable=SC2086 # BENCH_BERTH_ARGS is meant to be split into words
    "$BERTH_BIN" serve --listen "127.0.0.1:$port" --data "$dir/data" "${config[@]}" "${level[@]}" ${BENCH_BERTH_ARGS:-} >"$dir/log" 2>&1 &
    PID[berth]=$!
    STARTED_PIDS+=("$!")
    BASE[berth]=http://127.0.0.1:$port
    NAME[berth]=docker-hosted/bench/app
    wait_ready berth "${BASE[berth]}/v2/"
    log "berth: pid ${PID[berth]}, ${BASE[berth]}"
    if part_on tls; then
        TLS_PID[berth]=${PID[berth]}
        wait_ready berth "${TLS_BASE[berth]}/v2/"
        log "berth over TLS: ${TLS_BASE[berth]}"
    fi
}

# One self-signed ECDSA P-256 certificate for every TLS server (Berth, distribution, nginx).
make_cert() {
    mkdir -p "$TMP/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null || die "openssl could not make a certificate"
}

# nginx with its own prefix and config (never /etc/nginx), serving $TMP/www.
start_nginx() {
    local dir=$TMP/nginx port bin tls_port='' tls_server=''
    bin=$(nginx_bin)
    port=$(free_port)
    # Part tls: the same files over TLS, with the bench's certificate (TLS 1.3 spelled out: nginx
    # 1.22's default stops at TLS 1.2, while Berth and distribution negotiate 1.3).
    if part_on tls; then
        tls_port=$(free_port)
        tls_server="    server {
        listen 127.0.0.1:$tls_port ssl;
        ssl_certificate $TMP/tls/cert.pem;
        ssl_certificate_key $TMP/tls/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $TMP/www;
    }"
    fi
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
$tls_server
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
    if part_on tls; then
        TLS_BASE[nginx]=https://127.0.0.1:$tls_port
        wait_ready nginx "${TLS_BASE[nginx]}/ready"
        log "nginx over TLS: ${TLS_BASE[nginx]}"
    fi
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
    meta parts "$PARTS"
    meta tls_seconds "$TLS_SECONDS"
    meta slow_mib "$SLOW_MIB"
    meta slow_rate "$SLOW_RATE"
    meta slow_readers "$SLOW_READERS"
    meta slow_writers "$SLOW_WRITERS"
    meta slow_rounds "$SLOW_ROUNDS"
    meta page_totals "$PAGE_TOTALS"
    meta warm_pages "$WARM_PAGES"
    meta page_n "$PAGE_N"
    meta page_requests "$PAGE_REQUESTS"
    meta page_deadline "$PAGE_DEADLINE"
    meta page_workers "$PAGE_WORKERS"
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

# What this machine charges for putting a blob into a new file: dd copies it into the page cache and fsyncs,
# as a push must, after the same warm_pages as every push. Run after the pushes and deleted at once.
# Recorded in the nginx column.
measure_dd_write() { # ROUND
    local out="$TMP/dd-reference.bin" t0 t1
    sync
    warm_pages
    t0=$(date +%s%N)
    dd if="$TMP/blobs/mono.bin" of="$out" bs=512K conv=fsync status=none || { fail "dd reference write failed"; return 0; }
    t1=$(date +%s%N)
    rm -f "$out"
    record dd_write nginx "$1" "$(mib_per_s "$BLOB_BYTES" $(( (t1 - t0) / 1000 )))"
}

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
    warm_pages
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

# ---------------------------------------------------------------- part tls

# tls_ready SERVER — true if SERVER has a working TLS address whose process is still running
# (distribution's is a second process, distribution_tls).
tls_ready() {
    [[ -n ${TLS_BASE[$1]:-} ]] || return 1
    if [[ $1 == distribution ]]; then alive distribution_tls; else alive "$1"; fi
}

# Untimed, once: every TLS address serves the right bytes; note the negotiated protocol and cipher.
check_tls() {
    local s url proto
    for s in "${SERVERS[@]}" nginx; do
        [[ -n ${TLS_BASE[$s]:-} ]] || continue
        if [[ $s == nginx ]]; then url=${TLS_BASE[nginx]}/manifest.json; else url=${TLS_BASE[$s]}/v2/${TLS_NAME[$s]}/manifests/v1; fi
        if ! curl -sSk --noproxy '*' --max-time "$SMALL_MAX_TIME" -H "Accept: $OCI_MANIFEST" -o "$TMP/body" "$url" 2>/dev/null ||
            ! cmp -s "$TMP/body" "$TMP/image/manifest.json"; then
            fail "$s: GET $url over TLS did not return the manifest; no TLS figures for $s"
            unset "TLS_BASE[$s]"
            continue
        fi
        proto=$(timeout 10 openssl s_client -connect "${TLS_BASE[$s]#https://}" -brief </dev/null 2>&1 |
            awk -F': ' '/^Protocol version/ { p = $2 } /^Ciphersuite/ { c = $2 } END { print p, c }' || true)
        meta "tls_$s" "$proto"
        log "$s over TLS: $proto"
        # Warm-up (not recorded), as for the plain listeners.
        wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d1s "$url" >/dev/null 2>&1 || true
    done
}

# measure_tls ROUND ORDER... — manifest GET and GET /v2/ over TLS per registry, nginx's small
# static file over TLS as the reference (first in odd rounds, last in even ones); peak RSS.
measure_tls() {
    local round=$1 s url
    shift
    local order=("$@")
    if ((round % 2)); then order=(nginx "$@"); else order+=(nginx); fi
    for s in "$@"; do [[ -n ${TLS_PID[$s]:-} ]] && reset_hwm "${TLS_PID[$s]}"; done
    for s in "${order[@]}"; do
        tls_ready "$s" || continue
        if [[ $s == nginx ]]; then
            WRK_SECONDS=$TLS_SECONDS run_wrk tls_static nginx "$round" "${TLS_BASE[nginx]}/manifest.json"
        else
            url="${TLS_BASE[$s]}/v2/${TLS_NAME[$s]}/manifests/v1"
            WRK_SECONDS=$TLS_SECONDS run_wrk tls_manifest_get "$s" "$round" "$url" -H "Accept: $OCI_MANIFEST"
        fi
    done
    for s in "$@"; do
        tls_ready "$s" || continue
        WRK_SECONDS=$TLS_SECONDS run_wrk tls_base "$s" "$round" "${TLS_BASE[$s]}/v2/"
    done
    for s in "$@"; do
        tls_ready "$s" || continue
        record rss_tls "$s" "$round" "$(hwm_mib "${TLS_PID[$s]}")"
    done
}

# ---------------------------------------------------------------- part slow

declare -A SLOW_SKIP=() SLOW_PUT_DIGEST=()

# Once: the blob the slow readers pull, pushed (untimed) to every registry; the client copy goes.
prepare_slow() {
    local dir=$TMP/slow s
    mkdir -p "$dir"
    log "slow clients: generating and pushing a $SLOW_MIB MiB blob to pull"
    random_file "$dir/get.bin" "$SLOW_BYTES" "$$-$(date +%s)-slow-get"
    SLOW_GET_DIGEST=sha256:$(sha256_of "$dir/get.bin")
    for s in "${SERVERS[@]}"; do
        alive "$s" || continue
        if ! HTTP_MAX_TIME=$BIG_MAX_TIME push_file "$s" "$dir/get.bin" "$SLOW_GET_DIGEST"; then
            fail "$s: could not push the slow-client blob, no slow-client figures: $LAST_ERROR"
            SLOW_SKIP[$s]=1
        fi
    done
    rm -f "$dir/get.bin"
}

# Per round: fresh blobs for the writers, the same for both registries.
prepare_slow_round() { # ROUND
    local i
    log "slow clients round $1: generating $SLOW_WRITERS blobs of $SLOW_MIB MiB to push"
    for ((i = 1; i <= SLOW_WRITERS; i++)); do
        random_file "$TMP/slow/put.$i.bin" "$SLOW_BYTES" "$$-$(date +%s)-slow-$1-$i"
        SLOW_PUT_DIGEST[$i]=sha256:$(sha256_of "$TMP/slow/put.$i.bin")
    done
}

# measure_slow SERVER ROUND — SLOW_READERS curls pulling the big blob at SLOW_RATE each, and
# SLOW_WRITERS pushing one big blob each at full speed, all started together. Records the peak
# RSS (VmHWM, reset first), the RSS before the clients start, and the wall time until all finish.
measure_slow() {
    local server=$1 round=$2 pid dir=$TMP/slow/clients i p url start_rss t0 t1 ok=1 code bytes result
    alive "$server" && [[ -z ${SLOW_SKIP[$server]:-} ]] || return 0
    pid=${PID[$server]}
    rm -rf "$dir" && mkdir -p "$dir"
    url=$(blob_url "$server" "$SLOW_GET_DIGEST")
    settle
    reset_hwm "$pid"
    start_rss=$(rss_mib "$pid")
    t0=$(date +%s%N)
    SLOW_PIDS=()
    for ((i = 1; i <= SLOW_READERS; i++)); do
        curl -sS --noproxy '*' --limit-rate "$SLOW_RATE" --max-time "$BIG_MAX_TIME" -o /dev/null \
            -w '%{http_code} %{size_download}' "$url" >"$dir/get.$i" 2>&1 &
        SLOW_PIDS+=("$!")
    done
    for ((i = 1; i <= SLOW_WRITERS; i++)); do
        mkdir -p "$dir/put.$i"
        # A subshell per writer, with its own scratch files for http().
        (
            HTTP_SCRATCH=$dir/put.$i HTTP_MAX_TIME=$BIG_MAX_TIME
            if push_file "$server" "$TMP/slow/put.$i.bin" "${SLOW_PUT_DIGEST[$i]}"; then echo ok; else echo "$LAST_ERROR"; fi >"$dir/put.$i/result"
        ) &
        SLOW_PIDS+=("$!")
    done
    for p in "${SLOW_PIDS[@]}"; do wait "$p" || true; done
    SLOW_PIDS=()
    t1=$(date +%s%N)
    alive "$server" || return 0
    for ((i = 1; i <= SLOW_READERS; i++)); do
        read -r code bytes _ <"$dir/get.$i" || true
        if [[ $code != 200 || $bytes != "$SLOW_BYTES" ]]; then
            fail "$server: slow reader $i in round $round: $(head -c 200 "$dir/get.$i")"
            ok=0
        fi
    done
    for ((i = 1; i <= SLOW_WRITERS; i++)); do
        result=$(cat "$dir/put.$i/result" 2>/dev/null || echo "no result")
        [[ $result == ok ]] || { fail "$server: writer $i in round $round: $result"; ok=0; }
    done
    ((ok)) || return 0
    record rss_slow "$server" "$round" "$(hwm_mib "$pid")"
    record rss_slow_start "$server" "$round" "$start_rss"
    record slow_seconds "$server" "$round" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')"
}

run_slow() {
    local round order s
    prepare_slow
    for ((round = 1; round <= SLOW_ROUNDS; round++)); do
        prepare_slow_round "$round"
        read -ra order <<<"$(round_order "$round")"
        log "slow clients round $round/$SLOW_ROUNDS: order ${order[*]}"
        for s in "${order[@]}"; do measure_slow "$s" "$round"; done
    done
    rm -f "$TMP"/slow/put.*.bin
}

# ---------------------------------------------------------------- part pagination

declare -A PAGE_SKIP=()

# json_fields KEY... <JSON — the values of pagination.py's output, space-separated.
json_fields() {
    python3 -c 'import json, sys; d = json.loads(sys.stdin.read()); print(" ".join(str(d.get(k)) for k in sys.argv[1:]))' "$@"
}

# The image-name prefix on the address the bench uses: docker-hosted/ on Berth's main listener.
page_prefix() { echo "${NAME[$1]%bench/app}"; }

# populate_pages SERVER FROM TO — tags t<FROM>..t<TO-1> on pag/tags, images pag/cat/i<FROM>..i<TO-1>.
populate_pages() {
    local server=$1 from=$2 to=$3 what out secs rate fallback
    for what in tags catalog; do
        alive "$server" || return 1
        if ! out=$(python3 "$BENCH_DIR/pagination.py" populate --base "${BASE[$server]}" --prefix "$(page_prefix "$server")" \
            --what "$what" --start "$from" --stop "$to" --workers "$PAGE_WORKERS" --deadline "$PAGE_POPULATE_MAX" 2>&1); then
            fail "$server: populating $what $from..$to failed, no further pagination figures: $(tail -n 1 <<<"$out")"
            return 1
        fi
        read -r secs rate fallback <<<"$(json_fields seconds requests_per_s fallback_uploads <<<"$out")"
        record "populate_${what}_$to" "$server" 1 "$secs"
        log "  $server: $what $from..$to populated in $secs s ($rate req/s)"
        ((fallback == 0)) || note "$server: $fallback cross-repository mounts were answered 202 and completed by an upload"
    done
}

# probe_page KIND(tags|catalog) SERVER ROUND TOTAL — time GETs of the page centred on the middle
# entry: last = entry number total/2 - n/2 (the first one at a total of 100), so every page is full.
probe_page() {
    local kind=$1 server=$2 round=$3 total=$4 prefix url key out n median p99 entries first
    local idx=$(( total / 2 - PAGE_N / 2 > 0 ? total / 2 - PAGE_N / 2 : 0 )) last want want_entries
    alive "$server" || return 0
    prefix=$(page_prefix "$server")
    last=$(printf '%05d' "$idx")
    want=$(printf '%05d' $((idx + 1)))
    want_entries=$(( total - idx - 1 < PAGE_N ? total - idx - 1 : PAGE_N ))
    if [[ $kind == tags ]]; then
        url="${BASE[$server]}/v2/${prefix}pag/tags/tags/list?n=$PAGE_N&last=t$last" key=tags want=t$want
    else
        # The catalog also holds the bench's other images (bench/app, pag/seed, ...), which sort
        # outside the pag/cat/ run: a page may hold a few of them instead of pag/cat/ entries.
        url="${BASE[$server]}/v2/_catalog?n=$PAGE_N&last=${prefix}pag/cat/i$last" key=repositories
        want=${prefix}pag/cat/i$want want_entries=$PAGE_N
        ((total - idx - 1 >= PAGE_N)) || want_entries=''
    fi
    if ! out=$(python3 "$BENCH_DIR/pagination.py" probe --url "$url" --key "$key" \
        --count "$PAGE_REQUESTS" --deadline "$PAGE_DEADLINE" 2>&1); then
        fail "$server: $kind page at $total failed in round $round: $(tail -n 1 <<<"$out")"
        return 0
    fi
    read -r n median p99 entries first <<<"$(json_fields n median_ms p99_ms entries first <<<"$out")"
    record "page_${kind}_${total}_median" "$server" "$round" "$median"
    record "page_${kind}_${total}_p99" "$server" "$round" "$p99"
    record "page_${kind}_${total}_entries" "$server" "$round" "$entries"
    log "  ($n requests; $entries entries, first $first)"
    if ((round == 1)); then
        if ((entries > PAGE_N)); then
            note "$server ignores n=$PAGE_N on $kind: the page at $total returned $entries entries, starting at $first."
        elif [[ $first != "$want" || ( -n $want_entries && $entries != "$want_entries" ) ]]; then
            note "$server: the $kind page at $total has $entries entries from $first (wanted ${want_entries:-up to $PAGE_N} from $want)."
        fi
    fi
}

run_pagination() {
    local total prev=0 s round order
    for total in $PAGE_TOTALS; do
        ((total > prev && total <= 100000)) || die "BENCH_PAGE_TOTALS must increase and stay <= 100000: $PAGE_TOTALS"
        log "pagination: growing to $total tags and $total images"
        for s in "${SERVERS[@]}"; do
            if [[ -z ${PAGE_SKIP[$s]:-} ]] && ! populate_pages "$s" "$prev" "$total"; then PAGE_SKIP[$s]=1; fi
        done
        settle
        for ((round = 1; round <= ROUNDS; round++)); do
            read -ra order <<<"$(round_order "$round")"
            log "pagination at $total, round $round/$ROUNDS: order ${order[*]}"
            for s in "${order[@]}"; do
                if [[ -z ${PAGE_SKIP[$s]:-} ]]; then probe_page tags "$s" "$round" "$total"; fi
            done
            for s in "${order[@]}"; do
                if [[ -z ${PAGE_SKIP[$s]:-} ]]; then probe_page catalog "$s" "$round" "$total"; fi
            done
        done
        prev=$total
    done
}

run_round() { # ROUND
    local round=$1 order
    read -ra order <<<"$(round_order "$round")"
    log "round $round/$ROUNDS: order ${order[*]}"
    if part_on core; then run_core "$round" "${order[@]}"; fi
    if part_on tls; then
        local t0=$SECONDS
        measure_tls "$round" "${order[@]}"
        PART_SECONDS[tls]=$(( ${PART_SECONDS[tls]:-0} + SECONDS - t0 ))
    fi
}

run_core() { # ROUND ORDER...
    local round=$1 s pull_order t0=$SECONDS
    shift
    local order=("$@")
    # nginx joins the pull rotation, first in odd rounds and last in even ones.
    if ((round % 2)); then pull_order=(nginx "${order[@]}"); else pull_order=("${order[@]}" nginx); fi
    prepare_blobs "$round"

    phase_begin
    for s in "${order[@]}"; do measure_push mono "$s" "$round"; done
    for s in "${order[@]}"; do measure_push chunked "$s" "$round"; done
    phase_end rss_push "$round"
    measure_dd_write "$round"

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
    PART_SECONDS[core]=$(( ${PART_SECONDS[core]:-0} + SECONDS - t0 ))
}

# ---------------------------------------------------------------- main

declare -A PART_SECONDS=()

main() {
    local s round part started=$SECONDS t0
    for part in ${PARTS//,/ }; do
        [[ $part =~ ^(core|tls|slow|pagination)$ ]] || die "unknown part '$part' in BENCH_PARTS (core, tls, slow, pagination)"
    done
    ensure_packages
    make_tmp
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    check_disk
    build_berth
    SERVERS+=(distribution)
    collect_meta
    if part_on core; then measure_sha256; fi
    if part_on tls; then make_cert; fi

    if ((${#SERVERS[@]} == 2)); then start_berth; fi
    start_distribution
    if part_on core || part_on tls; then start_nginx; fi
    warn_if_busy
    make_image
    for s in "${SERVERS[@]}"; do
        detect_upload_mode "$s"
        push_image "$s"
        # Warm-up (not recorded): first connections, lazy initialisation, JIT-free but caches.
        wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d1s "${BASE[$s]}/v2/" >/dev/null 2>&1 || true
    done

    if part_on tls; then check_tls; fi

    if part_on core; then
        note "Manifest HEAD rows use hey, not wrk: Debian's wrk 4.1.0 never completes a HEAD request whose response carries a Content-Length."
    fi
    if part_on core || part_on tls; then
        for ((round = 1; round <= ROUNDS; round++)); do run_round "$round"; done
    fi
    if part_on slow; then
        t0=$SECONDS
        run_slow
        PART_SECONDS[slow]=$((SECONDS - t0))
    fi
    if part_on pagination; then
        t0=$SECONDS
        run_pagination
        PART_SECONDS[pagination]=$((SECONDS - t0))
    fi
    for part in "${!PART_SECONDS[@]}"; do meta "seconds_$part" "${PART_SECONDS[$part]}"; done
    meta seconds_total $((SECONDS - started))

    mkdir -p "$RESULTS_DIR"
    local out=${BENCH_OUTPUT:-$RESULTS_DIR/latest}
    mkdir -p "$(dirname "$out")"
    python3 "$BENCH_DIR/report.py" --raw "$TMP/raw" --md "$out.md" --json "$out.json"
    log "done in $((SECONDS - started)) s; results in $out.{md,json}"
    if ((FAILURES)); then
        for s in "${SERVERS[@]}"; do log "last lines of the $s log:"; tail -n 20 "${LOG[$s]}" >&2; done
        log "$FAILURES measurement(s) failed; see the notes under the table"
        return 1
    fi
}

main "$@"
