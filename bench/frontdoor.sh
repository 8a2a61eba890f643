#!/usr/bin/env bash
# bench/frontdoor.sh — what the front door and the proxy repositories cost, side by side in one run:
#   1. routing at scale: Berth with 1 route vs 5,000 host + 500 port routes (start time, req/s, p99,
#      CPU and callgrind instructions per request),
#   2. an `upstream:` route pulling a big blob vs pulling it directly, with nginx's proxy_pass (the
#      guide's settings) and two C processes that only move the bytes (bench/tools/copyproxy.c) as references,
#      and where each pull's CPU goes (distribution, the proxy, curl, idle); and the same pull from distribution
#      over TLS, directly and through an https upstream route (ca_file),
#   3. a proxy repository's cold pull of a big blob: time to first byte vs the whole transfer.
#
#   bench/frontdoor.sh                 release build, 3 rounds, 1 GiB blob
#   BENCH_QUICK=1 bench/frontdoor.sh   64 MiB blob, 1 round, 3 s wrk
# Env: BERTH_BIN (skip the build), BENCH_ROUNDS, BENCH_BLOB_MIB, BENCH_TMPDIR,
#      BENCH_OUTPUT (results file; default bench/results/frontdoor.md, or results/tmp/frontdoor-quick.md
#      for a quick run, so a smoke run never replaces the published table).
# Output: Markdown on stdout and in BENCH_OUTPUT.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
QUICK=${BENCH_QUICK:-0}
ROUNDS=${BENCH_ROUNDS:-$([[ $QUICK == 1 ]] && echo 1 || echo 3)}
BLOB_MIB=${BENCH_BLOB_MIB:-$([[ $QUICK == 1 ]] && echo 64 || echo 1024)}
WRK_SECONDS=$([[ $QUICK == 1 ]] && echo 3 || echo 10)
PIDS=()

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [[ -n ${TMP:-} && -d $TMP ]] && rm -rf "$TMP"
}
trap cleanup EXIT

ensure_packages() {
    local missing=() p
    for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}
ensure_packages docker-registry nginx wrk curl python3 valgrind binutils openssl

if [[ -z ${BERTH_BIN:-} ]]; then
    log "building berth (bench/build-berth.sh: release, static Swift runtime)"
    BERTH_BIN=$("$BENCH_DIR/build-berth.sh")
fi
mkdir -p "$BENCH_DIR/results/tmp"
TMP=$(mktemp -d "${BENCH_TMPDIR:-$BENCH_DIR/results/tmp}/frontdoor.XXXXXX")

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # URL [curl options]
    local i url=$1; shift
    for i in $(seq 1 400); do curl -fsS -o /dev/null --max-time 1 "$@" "$url" 2>/dev/null && return 0; sleep 0.05; done
    log "not ready: $1"; return 1
}
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
wrk_rate() { # URL HOST → "req/s p99ms"
    wrk -t2 -c64 -d"${WRK_SECONDS}s" --latency -H "Host: $2" "$1" 2>/dev/null | awk '
        /Requests\/sec/ { rps = $2 }
        /^ +99%/ { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 }; p99 = v }
        END { printf "%.0f %.2f\n", rps, p99 }'
}

# ---------------------------------------------------------------- 1. routing at scale
DIST_PORT=$(free_port)
mkdir -p "$TMP/dist"
cat >"$TMP/dist.yml" <<YML
version: 0.1
log: { level: warn }
storage: { filesystem: { rootdirectory: $TMP/dist }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$DIST_PORT }
YML
/usr/bin/docker-registry serve "$TMP/dist.yml" >"$TMP/dist.log" 2>&1 & DIST_PID=$!; PIDS+=($!)

one_port=$(free_port); many_port=$(free_port)
{
    echo "listen: 127.0.0.1:$one_port"
    echo "repositories: [{ name: docker-hosted }]"
    echo "routes:"
    echo "  - { host: team0.example.com, repository: docker-hosted }"
} >"$TMP/one.yml"
base_port=$(( 20000 + RANDOM % 20000 ))
{
    echo "listen: 127.0.0.1:$many_port"
    echo "repositories: [{ name: docker-hosted }]"
    echo "routes:"
    for i in $(seq 0 499); do echo "  - { listen: 127.0.0.1:$((base_port + i)), repository: docker-hosted }"; done
    for i in $(seq 0 4999); do echo "  - { host: team$i.example.com, repository: docker-hosted }"; done
} >"$TMP/many.yml"

start_berth() { # NAME CONFIG → pid in LAST_PID; start seconds in LAST_START
    local t0 t1
    t0=$(date +%s.%N)
    "$BERTH_BIN" serve --config "$2" --data "$TMP/$1" --log-level warning >"$TMP/$1.log" 2>&1 & LAST_PID=$!
    PIDS+=("$LAST_PID")
}
start_berth one "$TMP/one.yml"; ONE_PID=$LAST_PID
t0=$(date +%s.%N)
start_berth many "$TMP/many.yml"; MANY_PID=$LAST_PID
wait_ready "http://127.0.0.1:$((base_port + 499))/v2/"
t1=$(date +%s.%N)
MANY_START=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
wait_ready "http://127.0.0.1:$one_port/v2/"
wait_ready "http://127.0.0.1:$DIST_PORT/v2/"
log "5,000 host + 500 port routes: serving on the last port after ${MANY_START} s"

# A small image on both, read through a host route (the last one declared, for the big table).
cfg='{"architecture":"amd64","os":"linux"}'
cfg_digest=sha256:$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$cfg_digest\",\"size\":${#cfg}},\"layers\":[]}"
for port in $one_port $many_port; do
    curl -fsS -o /dev/null -X POST --data-binary "$cfg" "http://127.0.0.1:$port/v2/docker-hosted/bench/app/blobs/uploads/?digest=$cfg_digest"
    curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "$manifest" "http://127.0.0.1:$port/v2/docker-hosted/bench/app/manifests/latest"
done
declare -A RPS P99 LAST CPU_US
# The machine drifts between rounds: each round measures both setups back to back (alternating which goes
# first) and the figure is the median of the rounds' ratios.
route_ratios=""
for round in $(seq 1 "$ROUNDS"); do
    order="one many"; (( round % 2 == 0 )) && order="many one"
    for setup in $order; do
        port=$([[ $setup == one ]] && echo "$one_port" || echo "$many_port")
        host=$([[ $setup == one ]] && echo team0.example.com || echo team4999.example.com)
        pid=$([[ $setup == one ]] && echo "$ONE_PID" || echo "$MANY_PID")
        c0=$(cpu_ticks "$pid")
        read -r rps p99 < <(wrk_rate "http://127.0.0.1:$port/v2/bench/app/manifests/latest" "$host")
        c1=$(cpu_ticks "$pid")
        # Server CPU per request: the route table's cost without the load generator's share of the cores.
        us=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v r="$rps" -v s="$WRK_SECONDS" 'BEGIN { if (r > 0) printf "%.1f", t / hz * 1e6 / (r * s) }')
        RPS[$setup]+="$rps "; P99[$setup]+="$p99 "; CPU_US[$setup]+="$us "; LAST[$setup]=$rps
        log "round $round, $setup route(s): $rps req/s, p99 $p99 ms, $us µs CPU per request"
    done
    route_ratios+="$(awk -v a="${LAST[many]}" -v b="${LAST[one]}" 'BEGIN { if (b > 0) printf "%.3f", a / b }') "
done
r_one=$(tr ' ' '\n' <<<"${RPS[one]}" | grep . | median); r_many=$(tr ' ' '\n' <<<"${RPS[many]}" | grep . | median)
r_ratio=$(tr ' ' '\n' <<<"$route_ratios" | grep . | median)
p_one=$(tr ' ' '\n' <<<"${P99[one]}" | grep . | median); p_many=$(tr ' ' '\n' <<<"${P99[many]}" | grep . | median)
kill "$ONE_PID" "$MANY_PID" 2>/dev/null || true
wait "$ONE_PID" "$MANY_PID" 2>/dev/null || true

# The same request counted in instructions (callgrind), which the machine's noise does not move: each setup
# serves CG_REQUESTS manifest GETs on one connection, instrumented only while they run. Valgrind 3.19 cannot
# read the DWARF 5 of a Swift binary, so it runs a copy without debug sections (symbols kept).
CG_REQUESTS=$([[ $QUICK == 1 ]] && echo 200 || echo 2000)
objcopy --strip-debug "$BERTH_BIN" "$TMP/berth-cg"
callgrind_per_request() { # SETUP PORT HOST → instructions per request
    local out=$TMP/cg.$1.out vp i
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
        "$TMP/berth-cg" serve --config "$TMP/$1.yml" --data "$TMP/$1" --log-level warning >"$TMP/cg-$1.log" 2>&1 & vp=$!
    for i in $(seq 1 600); do curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$2/v2/" 2>/dev/null && break; sleep 0.2; done
    curl -fsS -o /dev/null -H "Host: $3" "http://127.0.0.1:$2/v2/bench/app/manifests/latest?warm=[1-200]"
    callgrind_control -i on "$vp" >/dev/null 2>&1
    curl -fsS -o /dev/null -H "Host: $3" "http://127.0.0.1:$2/v2/bench/app/manifests/latest?n=[1-$CG_REQUESTS]"
    callgrind_control -i off "$vp" >/dev/null 2>&1
    kill "$vp"; wait "$vp" 2>/dev/null || true
    callgrind_annotate "$out" 2>/dev/null | awk -v n="$CG_REQUESTS" '/PROGRAM TOTALS/ { gsub(",", "", $1); printf "%.0f\n", $1 / n }'
}
cg_one=$(callgrind_per_request one "$one_port" team0.example.com)
cg_many=$(callgrind_per_request many "$many_port" team4999.example.com)
log "instructions per manifest GET: $cg_one with 1 route, $cg_many with 5,000 host + 500 port routes"

# ---------------------------------------------------------------- 2. upstream route vs direct
log "preparing a ${BLOB_MIB} MiB blob on distribution"
head -c "$((BLOB_MIB * 1048576))" /dev/urandom >"$TMP/blob"
blob_digest=sha256:$(sha256sum "$TMP/blob" | cut -d' ' -f1)
loc=$(curl -fsS -D - -o /dev/null -X POST "http://127.0.0.1:$DIST_PORT/v2/bench/big/blobs/uploads/" | tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
[[ $loc == /* ]] && loc="http://127.0.0.1:$DIST_PORT$loc"
sep=$([[ $loc == *\?* ]] && echo '&' || echo '?')
curl -fsS -o /dev/null -X PUT -T "$TMP/blob" -H 'Content-Type: application/octet-stream' "${loc}${sep}digest=$blob_digest"

up_port=$(free_port); main_port=$(free_port); ngx_port=$(free_port)
# The same blob from distribution over TLS (a test CA from openssl), directly and through an https upstream
# route that trusts that CA (ca_file).
mkdir -p "$TMP/tls"
(cd "$TMP/tls" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 2 \
        -subj "/CN=Berth bench CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null &&
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
        -subj /CN=localhost 2>/dev/null &&
    printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext &&
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext \
        -out server.crt 2>/dev/null)
DIST_TLS_PORT=$(free_port); ups_port=$(free_port)
cat >"$TMP/dist-tls.yml" <<YML
version: 0.1
log: { level: warn }
storage: { filesystem: { rootdirectory: $TMP/dist } }
http: { addr: 127.0.0.1:$DIST_TLS_PORT, tls: { certificate: $TMP/tls/server.crt, key: $TMP/tls/server.key } }
YML
/usr/bin/docker-registry serve "$TMP/dist-tls.yml" >"$TMP/dist-tls.log" 2>&1 & DIST_TLS_PID=$!; PIDS+=($!)
cat >"$TMP/up.yml" <<YML
listen: 127.0.0.1:$main_port
repositories:
  - { name: docker-hosted }
  - { name: hub, type: proxy, remote: "http://127.0.0.1:$DIST_PORT", auto_block: false }
routes:
  - { listen: 127.0.0.1:$up_port, upstream: "http://127.0.0.1:$DIST_PORT/" }
  - { listen: 127.0.0.1:$ups_port, upstream: "https://localhost:$DIST_TLS_PORT/", ca_file: $TMP/tls/ca.crt }
YML
start_berth up "$TMP/up.yml"; UP_PID=$LAST_PID
mkdir -p "$TMP/nginx/logs"
cat >"$TMP/nginx/nginx.conf" <<NGX
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log;
events { worker_connections 256; }
http {
  access_log off;
  proxy_send_timeout 120; proxy_read_timeout 300; proxy_buffering off; proxy_request_buffering off;
  server {
    listen 127.0.0.1:$ngx_port;
    client_max_body_size 0;
    location / { proxy_set_header Host \$host:\$server_port; proxy_pass http://127.0.0.1:$DIST_PORT; }
  }
}
NGX
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' & NGX_PID=$!; PIDS+=($!)
# The floor under any proxy on this machine: a C process that only moves the bytes (bench/tools/copyproxy.c),
# by read/write through a 1 MiB buffer and by splice(2).
copy_port=$(free_port); splice_port=$(free_port)
"$(command -v cc || command -v clang)" -O2 -o "$TMP/copyproxy" "$BENCH_DIR/tools/copyproxy.c"
"$TMP/copyproxy" "$copy_port" "$DIST_PORT" copy & COPY_PID=$!; PIDS+=($!)
"$TMP/copyproxy" "$splice_port" "$DIST_PORT" splice & SPLICE_PID=$!; PIDS+=($!)
wait_ready "http://127.0.0.1:$up_port/v2/"; wait_ready "http://127.0.0.1:$ngx_port/v2/"
wait_ready "http://127.0.0.1:$copy_port/v2/"; wait_ready "http://127.0.0.1:$splice_port/v2/"
wait_ready "https://localhost:$DIST_TLS_PORT/v2/" --cacert "$TMP/tls/ca.crt"; wait_ready "http://127.0.0.1:$ups_port/v2/"

declare -A SPEED
UP_CPU=""
declare -A PULL_RATIOS LASTSP
# Where the CPU of one pull goes, per path: distribution (the upstream), the proxy in between, curl (the client),
# and what the machine left idle, in CPU-seconds per GiB. It shows how much of this machine is left for a proxy.
declare -A BUDGET_DIST BUDGET_PROXY BUDGET_CURL BUDGET_IDLE BUDGET_SUM
ngx_worker=$(pgrep -P "$NGX_PID" | head -1)
idle_ticks() { awk '/^cpu / { print $5 + $6 }' /proc/stat; }
per_gib() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v mib="$BLOB_MIB" 'BEGIN { printf "%.2f", t / hz * 1024 / mib }'; }
TIMEFORMAT='%U %S'
# As for the routes: each round pulls through every path back to back (the order reversed every other round),
# and a ratio is the median of the rounds' ratios, so drift between rounds cancels out.
for round in $(seq 1 "$ROUNDS"); do
    order="direct berth nginx copy splice direct-tls berth-tls"
    (( round % 2 == 0 )) && order="berth-tls direct-tls splice copy nginx berth direct"
    for via in $order; do
        case $via in
            direct) port=$DIST_PORT; proxy_pid="" ;; berth) port=$up_port; proxy_pid=$UP_PID ;;
            nginx) port=$ngx_port; proxy_pid=$ngx_worker ;;
            copy) port=$copy_port; proxy_pid=$COPY_PID ;; splice) port=$splice_port; proxy_pid=$SPLICE_PID ;;
            direct-tls) port=$DIST_TLS_PORT; proxy_pid="" ;; berth-tls) port=$ups_port; proxy_pid=$UP_PID ;;
        esac
        url="http://127.0.0.1:$port/v2/bench/big/blobs/$blob_digest"; tls_opts=()
        [[ $via == direct-tls ]] && { url="https://localhost:$port/v2/bench/big/blobs/$blob_digest"; tls_opts=(--cacert "$TMP/tls/ca.crt"); }
        dist_pid=$DIST_PID; [[ $via == *-tls ]] && dist_pid=$DIST_TLS_PID
        sync
        d0=$(cpu_ticks "$dist_pid"); p0=$([[ -n $proxy_pid ]] && cpu_ticks "$proxy_pid" || echo 0); i0=$(idle_ticks)
        { time curl -fsS -o /dev/null -w '%{speed_download}' "${tls_opts[@]}" "$url" >"$TMP/pull.out"; } 2>"$TMP/pull.time" ||
            { cat "$TMP/pull.time" >&2; exit 1; }
        d1=$(cpu_ticks "$dist_pid"); p1=$([[ -n $proxy_pid ]] && cpu_ticks "$proxy_pid" || echo 0); i1=$(idle_ticks)
        s=$(cat "$TMP/pull.out")
        mibs=$(awk -v s="$s" 'BEGIN { printf "%.0f", s / 1048576 }')
        SPEED[$via]+="$mibs "; LASTSP[$via]=$mibs
        BUDGET_DIST[$via]+="$(per_gib $((d1 - d0))) "; BUDGET_PROXY[$via]+="$(per_gib $((p1 - p0))) "
        BUDGET_IDLE[$via]+="$(per_gib $((i1 - i0))) "
        curl_cpu=$(awk -v mib="$BLOB_MIB" '{ printf "%.2f", ($1 + $2) * 1024 / mib }' "$TMP/pull.time")
        BUDGET_CURL[$via]+="$curl_cpu "
        BUDGET_SUM[$via]+="$(awk -v c="$curl_cpu" -v d="$(per_gib $((d1 - d0)))" -v p="$(per_gib $((p1 - p0)))" 'BEGIN { printf "%.2f", c + d + p }') "
        [[ $via == berth ]] && UP_CPU+="$(per_gib $((p1 - p0))) "
        log "round $round, pull via $via: $mibs MiB/s"
    done
    for pair in berth/direct nginx/direct copy/direct splice/direct berth/copy berth-tls/direct-tls; do
        PULL_RATIOS[$pair]+="$(awk -v a="${LASTSP[${pair%/*}]}" -v b="${LASTSP[${pair#*/}]}" 'BEGIN { if (b > 0) printf "%.2f", a / b }') "
    done
done
up_rss=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$UP_PID/status")

# ---------------------------------------------------------------- 3. proxy repository: cold pull
declare -A TTFB TOTAL
for round in $(seq 1 "$ROUNDS"); do
    curl -fsS -o /dev/null -X DELETE "http://127.0.0.1:$main_port/service/rest/v1/repositories/hub/cache"
    rm -rf "$TMP/up/blobs/sha256"
    read -r ttfb total < <(curl -fsS -o /dev/null -w '%{time_starttransfer} %{time_total}\n' "http://127.0.0.1:$main_port/v2/hub/bench/big/blobs/$blob_digest")
    TTFB[cold]+="$ttfb "; TOTAL[cold]+="$total "
    log "round $round, proxy cold pull: first byte after $ttfb s, whole blob after $total s"
    read -r ttfb total < <(curl -fsS -o /dev/null -w '%{time_starttransfer} %{time_total}\n' "http://127.0.0.1:$main_port/v2/hub/bench/big/blobs/$blob_digest")
    TTFB[warm]+="$ttfb "; TOTAL[warm]+="$total "
    log "round $round, proxy warm pull: $total s"
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
ms() { awk -v s="$1" 'BEGIN { printf "%.0f", s * 1000 }'; }
sp_direct=$(med "${SPEED[direct]}"); sp_berth=$(med "${SPEED[berth]}"); sp_nginx=$(med "${SPEED[nginx]}")
sp_copy=$(med "${SPEED[copy]}"); sp_splice=$(med "${SPEED[splice]}")
pr() { med "${PULL_RATIOS[$1]}"; } # median of the per-round ratios of a pair
cold_ttfb=$(med "${TTFB[cold]}"); cold_total=$(med "${TOTAL[cold]}"); warm_total=$(med "${TOTAL[warm]}")
out=$(cat <<MD
# Front door and proxy benchmark

- Date: $(date -u +%FT%TZ); machine: $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)
- Berth $(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo '?'), distribution $(dpkg-query -W -f='${Version}' docker-registry), nginx $(dpkg-query -W -f='${Version}' nginx); $ROUNDS round(s), medians; blob ${BLOB_MIB} MiB

| Figure | Value |
|---|---|
| Start with 5,000 host + 500 port routes (until the last port answers) | ${MANY_START} s |
| Manifest GET through a host route, 1 route | ${r_one} req/s, p99 ${p_one} ms |
| Manifest GET through a host route, 5,000 host + 500 port routes | ${r_many} req/s, p99 ${p_many} ms |
| Request rate with many routes / with one (median of per-round ratios: ${route_ratios% }) | $(printf '%.2f' "$r_ratio")× |
| Berth CPU per request, 1 route / 5,000 host + 500 port routes | $(med "${CPU_US[one]}") / $(med "${CPU_US[many]}") µs |
| Instructions per manifest GET (callgrind, ${CG_REQUESTS} requests), 1 route / 5,000 host + 500 port routes | ${cg_one} / ${cg_many} ($(awk -v a="$cg_many" -v b="$cg_one" 'BEGIN { if (b > 0) printf "%.3f", a / b }')×) |
| Blob pull direct from distribution | ${sp_direct} MiB/s |
| Same pull through a Berth \`upstream:\` route | ${sp_berth} MiB/s; $(pr berth/direct)× direct (rounds: ${PULL_RATIOS[berth/direct]% }); Berth CPU $(med "$UP_CPU") s/GiB, peak RSS ${up_rss} MiB |
| Same pull through nginx \`proxy_pass\` (the guide's settings) | ${sp_nginx} MiB/s; $(pr nginx/direct)× direct |
| Same pull through a C process that only copies (read/write, 1 MiB buffer) | ${sp_copy} MiB/s; $(pr copy/direct)× direct (rounds: ${PULL_RATIOS[copy/direct]% }); Berth/copy $(pr berth/copy)× |
| Same pull through a C process that only splices (\`splice(2)\`, no user-space copy) | ${sp_splice} MiB/s; $(pr splice/direct)× direct |
| Blob pull direct from distribution over TLS (curl decrypts) | $(med "${SPEED[direct-tls]}") MiB/s |
| Same pull through an https \`upstream:\` route with \`ca_file\` (Berth decrypts, plain HTTP to curl) | $(med "${SPEED[berth-tls]}") MiB/s; $(pr berth-tls/direct-tls)× direct over TLS (rounds: ${PULL_RATIOS[berth-tls/direct-tls]% }) |
| Proxy repository, cold pull: time to first byte | $(ms "$cold_ttfb") ms |
| Proxy repository, cold pull: whole blob | $(ms "$cold_total") ms (first byte at $(ratio "$cold_ttfb" "$cold_total")× of the transfer) |
| Proxy repository, warm pull (cached): whole blob | $(ms "$warm_total") ms |

Where the CPU of one ${BLOB_MIB} MiB pull goes, in CPU-seconds per GiB (medians; $(nproc) CPUs, so a pull that
takes t seconds has $(nproc)·t CPU-seconds to spend, and what nobody spent is "idle"):

| Path | MiB/s | distribution | proxy | curl | all three | machine idle |
|---|---|---|---|---|---|---|
$(for via in direct berth nginx copy splice direct-tls berth-tls; do
    echo "| $via | $(med "${SPEED[$via]}") | $(med "${BUDGET_DIST[$via]}") | $([[ $via == direct* ]] && echo - || med "${BUDGET_PROXY[$via]}") | $(med "${BUDGET_CURL[$via]}") | $(med "${BUDGET_SUM[$via]}") | $(med "${BUDGET_IDLE[$via]}") |"
done)
MD
)
printf '%s\n' "$out"
OUTPUT=${BENCH_OUTPUT:-$BENCH_DIR/results/$([[ $QUICK == 1 ]] && echo tmp/frontdoor-quick || echo frontdoor).md}
printf '%s\n' "$out" >"$OUTPUT"
log "written to $OUTPUT"
