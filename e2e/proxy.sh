#!/usr/bin/env bash
# End-to-end test of Berth's proxy (pull-through cache) and group repositories.
#
# Real clients and servers only: skopeo and curl against a real `berth serve`, in front of
# Debian's docker-registry (CNCF distribution) as the upstream, images built with umoci.
# Upstream requests are counted from docker-registry's access log (Apache combined format,
# one line per completed request; Berth's requests carry User-Agent "Berth").
#
#   1. an anonymous docker-registry upstream holding a 3-layer umoci image (one ~20 MiB random
#      layer), a two-platform OCI index and a single-layer image with a 200 MiB random layer
#   2. Berth with a hosted, a proxy and a group repository: skopeo pulls through the proxy and
#      through the group give the upstream's digests (manifest, index children, every blob)
#   3. a second pull of a cached image makes no upstream GET of any blob (and, with
#      metadata_max_age 0, only a HEAD of the tag, no manifest GET)
#   4. 10 concurrent GETs of the uncached 200 MiB blob: all get the right bytes, the upstream
#      sees exactly ONE GET of it
#   5. an upstream with htpasswd basic auth: pulls through a proxy with credentials work; a proxy
#      with a wrong password answers a clear OCI error (not 500)
#   7. (run before 6, upstream up) a push to the group lands in its writable member
#      (docker-hosted); pushes and deletes to the proxy, and pushes to a group without a
#      writable member, are refused with 405 UNSUPPORTED
#   6. the anonymous upstream stopped: cached tags still pull (proxy and group, same digests),
#      and quickly even with the default connect_timeout; an uncached tag or blob gets 503
#      UNAVAILABLE; a push through the group still works (its proxy member cannot answer)
#   8. Berth restarted on the same data dir, upstream still down: the cached images still pull
#
# Usage:  bash e2e/proxy.sh          (as root; installs missing Debian packages)
# Env:    BERTH_BIN     berth binary (default /work/main/.build/debug/berth; copied at start,
#                       so an in-place rebuild during the run does not matter)
#         E2E_BIG_MIB   size of the large random blob in MiB (default 200)
#         E2E_KEEP=1    keep the temp dir (it is printed) for post-mortem
# Output: one "ok - ..." / "not ok - ..." line per check, then "N passed, M failed".
set -euo pipefail

# shellcheck source=e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

E2E_BIG_MIB=${E2E_BIG_MIB:-200}
CONCURRENT=10 # concurrent GETs of the uncached large blob
# Read by lib.sh: seconds per skopeo invocation (a hang must not stall CI) and per curl request
# (the large blob included); the wording of pull_and_compare's check.
# shellcheck disable=SC2034
SKOPEO_TIMEOUT=180 CURL_TIMEOUT=180 PULL_CHECK="pulled REF has the upstream's manifest and blobs"

# ---------------------------------------------------------------- helpers ---

# OCI error message and detail of the last response body (first error; empty if not an OCI error).
error_text() { jq -r '.errors[0] | "\(.message // "") \(.detail // "")"' "$WORK/resp.body" 2>/dev/null || true; }

# check_error DESCRIPTION STATUS CODE "request": the last response is STATUS with OCI error CODE.
check_error() {
  local got_code; got_code=$(error_code)
  if [ "$HTTP_STATUS" = "$2" ] && [ "$got_code" = "$3" ]; then
    ok "$1"
    echo "#   $HTTP_STATUS $got_code: $(error_text | cut -c1-200)"
  else
    not_ok "$1 (expected $2 $3, got $HTTP_STATUS ${got_code:-no OCI error code})"
    show_response "$4"
  fi
}

# ---------------------------------------------------------------- images ---

# $SRC/app: tags "app" (3 layers, one 20 MiB random; entrypoint) and "small" (its first layer).
# $SRC/multi: tag "1", an OCI index of a linux/amd64 and a linux/arm64 image.
# $SRC/pushed: tag "pushed", a 2-layer image that only ever goes to Berth (check 7).
# $BIG: a 200 MiB random file, tarred into the layer of the image pushed with curl (build_big).
build_images() {
  build_app_and_multi

  local pushed="$SRC/pushed"
  umoci init --layout "$pushed"
  umoci new --image "$pushed:pushed"
  add_layer "$pushed:pushed" /etc/os-release:/etc/os-release
  add_layer "$pushed:pushed" "random:2M:/opt/e2e/pushed.bin"
  umoci gc --layout "$pushed"

  PUSHED_DIGEST=$(layout_digest "$pushed" pushed)
  APP_BLOBS=$(jq '.layers | length + 1' "$(blob_path "$SRC/app" "$APP_DIGEST")")
  SMALL_CONFIG=$(jq -r '.config.digest' "$(blob_path "$SRC/app" "$SMALL_DIGEST")")
  mapfile -t MULTI_CHILDREN < <(jq -r '.manifests[].digest' "$MULTI_INDEX")
  echo "# built app $APP_DIGEST ($((APP_BLOBS - 1)) layers), index $MULTI_DIGEST, pushed $PUSHED_DIGEST"
}

# The large image as an OCI layout: one uncompressed tar layer holding E2E_BIG_MIB MiB of random
# bytes, a config and a manifest written here (pushed to the upstream with curl, blob by blob).
build_big() {
  BIG="$SRC/big"
  mkdir -p "$BIG/blobs/sha256" "$WORK/bigroot/opt"
  head -c "${E2E_BIG_MIB}M" /dev/urandom >"$WORK/bigroot/opt/big.bin"
  tar -C "$WORK/bigroot" --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$WORK/big.tar" opt
  rm -rf "$WORK/bigroot"
  BIG_LAYER="sha256:$(sha256_of "$WORK/big.tar")"
  BIG_SIZE=$(stat -c %s "$WORK/big.tar")
  mv "$WORK/big.tar" "$(blob_path "$BIG" "$BIG_LAYER")"
  local cfg="$WORK/big-config.json"
  jq -cn --arg d "$BIG_LAYER" '{architecture: "amd64", os: "linux", config: {},
    rootfs: {type: "layers", diff_ids: [$d]}}' >"$cfg"
  BIG_CONFIG="sha256:$(sha256_of "$cfg")"
  mv "$cfg" "$(blob_path "$BIG" "$BIG_CONFIG")"
  local man="$WORK/big-manifest.json"
  jq -cn --arg c "$BIG_CONFIG" --argjson cs "$(stat -c %s "$(blob_path "$BIG" "$BIG_CONFIG")")" \
    --arg l "$BIG_LAYER" --argjson ls "$BIG_SIZE" '
    {schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
     config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
     layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $l, size: $ls}]}' >"$man"
  BIG_DIGEST="sha256:$(sha256_of "$man")"
  mv "$man" "$(blob_path "$BIG" "$BIG_DIGEST")"
  echo "# built big image $BIG_DIGEST, layer $BIG_LAYER ($BIG_SIZE bytes)"
}

# push_blob_curl BASE NAME FILE DIGEST: upload session (POST), then PUT ?digest= with the body.
push_blob_curl() {
  local base=$1 name=$2 file=$3 digest=$4 loc
  http POST "$base/v2/$name/blobs/uploads/"
  [ "$HTTP_STATUS" = 202 ] || { show_response "POST $base/v2/$name/blobs/uploads/"; return 1; }
  loc=$(next_location "$base") || { show_response "POST $base/v2/$name/blobs/uploads/ (no Location)"; return 1; }
  loc=$(with_digest "$loc" "$digest")
  http PUT "$loc" -H 'Content-Type: application/octet-stream' -T "$file"
  [ "$HTTP_STATUS" = 201 ] || { show_response "PUT $loc"; return 1; }
}

# push_big_curl BASE NAME TAG: the large image's blobs and manifest, with curl.
push_big_curl() {
  local base=$1 name=$2 tag=$3
  push_blob_curl "$base" "$name" "$(blob_path "$BIG" "$BIG_LAYER")" "$BIG_LAYER" || return 1
  push_blob_curl "$base" "$name" "$(blob_path "$BIG" "$BIG_CONFIG")" "$BIG_CONFIG" || return 1
  http PUT "$base/v2/$name/manifests/$tag" -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$(blob_path "$BIG" "$BIG_DIGEST")"
  [ "$HTTP_STATUS" = 201 ] || { show_response "PUT $base/v2/$name/manifests/$tag"; return 1; }
}

# --------------------------------------------------------------- servers ---

# Access-log lines of docker-registry NAME for requests Berth made (User-Agent "Berth"), from line
# FROM (1-based) on. Format: 127.0.0.1 - - [date] "GET /v2/... HTTP/1.1" 200 123 "" "Berth"
berth_requests() {
  local from=${2:-1}
  tail -n +"$from" "$WORK/$1/log" | grep -E '^[0-9.]+ - [^ ]+ \[[^]]*\] "[A-Z]+ [^ ]+ HTTP/[0-9.]+" [0-9]{3} .*"Berth"$' || true
}
# Line number after the last line of NAME's log (for berth_requests NAME MARK).
log_mark() { echo $(($(wc -l <"$WORK/$1/log") + 1)); }
# count_requests NAME MARK REGEX: Berth's requests since MARK whose request line matches REGEX.
count_requests() { berth_requests "$1" "$2" | grep -cE "\"$3 HTTP" || true; }
# Waits (<= 10 s) until the log stops growing: access lines are written when a response completes.
settle_log() {
  local n m _
  n=$(wc -l <"$WORK/$1/log")
  for _ in $(seq 1 20); do
    sleep 0.5
    m=$(wc -l <"$WORK/$1/log")
    [ "$m" = "$n" ] && return 0
    n=$m
  done
}
# One comment line: what Berth asked upstream NAME since MARK.
upstream_summary() {
  local name=$1 mark=$2 label=$3
  settle_log "$name"
  echo "# upstream $name, $label: $(berth_requests "$name" "$mark" | wc -l) requests by Berth:" \
    "GET manifests $(count_requests "$name" "$mark" 'GET /v2/[^ ]+/manifests/[^ ]+')," \
    "HEAD manifests $(count_requests "$name" "$mark" 'HEAD /v2/[^ ]+/manifests/[^ ]+')," \
    "GET blobs $(count_requests "$name" "$mark" 'GET /v2/[^ ]+/blobs/[^ ]+')," \
    "HEAD blobs $(count_requests "$name" "$mark" 'HEAD /v2/[^ ]+/blobs/[^ ]+')," \
    "401s $(berth_requests "$name" "$mark" | grep -c '" 401 ' || true)"
}

DATA=""

# docker-hub has connect_timeout: 1 (loopback connects take under a millisecond) because a request
# that has to ask a stopped upstream costs the whole connect timeout (30 s by default); the
# default is kept on docker-hub-default-timeout, whose latency with the upstream down is checked.
write_berth_config() {
  cat >"$WORK/berth.yml" <<EOF
listen: 127.0.0.1:$BERTH_PORT
repositories:
  - { name: docker-hosted, type: hosted }
  - { name: docker-hub, type: proxy, remote: "http://127.0.0.1:$DIST_PORT", metadata_max_age: 0, negative_cache_ttl: 1, auto_block: false, connect_timeout: 1 }
  - { name: docker, type: group, members: [docker-hosted, docker-hub], writable_member: docker-hosted }
  - { name: docker-hub-auth, type: proxy, remote: "http://127.0.0.1:$AUTH_PORT", username: user, password: pass, metadata_max_age: 0, auto_block: false }
  - { name: docker-hub-badauth, type: proxy, remote: "http://127.0.0.1:$AUTH_PORT", username: user, password: wrong, metadata_max_age: 0, auto_block: false }
  - { name: docker-readonly, type: group, members: [docker-hub] }
  - { name: docker-hub-default-timeout, type: proxy, remote: "http://127.0.0.1:$DIST_PORT", metadata_max_age: 0, auto_block: false }
  - { name: docker-hub-slow, type: proxy, remote: "http://127.0.0.1:$SLOW_PORT", auto_block: false, connect_timeout: 1, read_timeout: 5 }
  - { name: docker-hub-limited, type: proxy, remote: "http://127.0.0.1:$LIMIT_PORT", metadata_max_age: 0, auto_block: false }
EOF
}

# An nginx in front of docker-registry that answers 429 (as Docker Hub does past its pull quota) while
# the file $WORK/limited/on exists.
start_rate_limited_upstream() {
  mkdir -p "$WORK/limited"
  cat >"$WORK/limited/proxy.conf" <<EOF
server {
  listen 127.0.0.1:$LIMIT_PORT;
  location / {
    if (-f $WORK/limited/on) { add_header Retry-After 30 always; return 429; }
    proxy_pass http://127.0.0.1:$DIST_PORT;
  }
}
EOF
  start_nginx limited "$LIMIT_PORT" http
}

# Upstream answers 429: cached tags are still served; an uncached one gets TOOMANYREQUESTS, never
# "manifest unknown".
scenario_rate_limited() {
  start_rate_limited_upstream || bail "rate-limiting nginx in front of docker-registry starts on 127.0.0.1:$LIMIT_PORT"
  check_eq "through a rate-limiting upstream (not limiting yet): team/app:1 digest" "$APP_DIGEST" \
    "$(remote_digest "docker://127.0.0.1:$BERTH_PORT/docker-hub-limited/team/app:1")"
  touch "$WORK/limited/on"
  check_eq "upstream answers 429 now" 429 "$(http_code "http://127.0.0.1:$LIMIT_PORT/v2/")"
  check_eq "upstream 429: the cached tag is still served" "$APP_DIGEST" \
    "$(remote_digest "docker://127.0.0.1:$BERTH_PORT/docker-hub-limited/team/app:1")"
  http GET "$REG/v2/docker-hub-limited/team/app/manifests/never-pulled"
  check_status "upstream 429, uncached tag: 429" 429 || true
  check_eq "upstream 429, uncached tag: TOOMANYREQUESTS, not MANIFEST_UNKNOWN" TOOMANYREQUESTS "$(error_code)"
  rm -f "$WORK/limited/on"
  stop_pid limited 5 || true
}

# An nginx between the proxy repository and docker-registry that sends at 20 MB/s, so that an upstream
# transfer can be cut in the middle by stopping it.
start_slow_upstream() {
  mkdir -p "$WORK/slow"
  cat >"$WORK/slow/proxy.conf" <<EOF
server {
  listen 127.0.0.1:$SLOW_PORT;
  location / { proxy_pass http://127.0.0.1:$DIST_PORT; limit_rate 20m; }
}
EOF
  start_nginx slow "$SLOW_PORT" http
}

# A cut upstream transfer is never committed: the client does not get a whole blob, nothing is cached
# (with the upstream gone the proxy has nothing to serve), and a later pull fetches the blob whole.
scenario_cut_transfer() {
  local url="$REG/v2/docker-hub-slow/team/big/blobs/$BIG_LAYER" hex=${BIG_LAYER#sha256:} pid size status
  start_slow_upstream || bail "slow nginx in front of docker-registry starts on 127.0.0.1:$SLOW_PORT"
  curl -sS --max-time "$CURL_TIMEOUT" -o "$WORK/cut.out" "$url" 2>"$WORK/cut.err" &
  pid=$!
  BG_PIDS+=("$pid")
  sleep 2
  stop_pid slow 5 || true
  wait "$pid" 2>/dev/null || true
  BG_PIDS=()
  size=$(stat -c %s "$WORK/cut.out" 2>/dev/null || echo 0)
  check "cut upstream transfer: the client got part of the blob, not all of it ($size of $BIG_SIZE bytes)" \
    test "$size" -gt 0 -a "$size" -lt "$BIG_SIZE"
  status=$(http_code "$url")
  check "cut upstream transfer: nothing was cached (with the upstream down the blob is not served: $status)" test "$status" != 200
  check "cut upstream transfer: no blob file was committed" test ! -e "$DATA/blobs/sha256/${hex:0:2}/$hex"
  start_slow_upstream || bail "slow nginx restarts"
  check_eq "after the cut, a new pull gets the whole blob" "$BIG_LAYER" "sha256:$(curl -sS --max-time "$CURL_TIMEOUT" "$url" | sha256sum | cut -d' ' -f1)"
  stop_pid slow 5 || true
}

# ----------------------------------------------------------------- checks ---

# 1. The anonymous upstream and what it holds; the basic-auth upstream.
scenario_upstreams() {
  start_distribution dist "$DIST_PORT" || bail "docker-registry (anonymous) starts on 127.0.0.1:$DIST_PORT"
  ok "docker-registry (anonymous) starts on 127.0.0.1:$DIST_PORT"
  start_distribution dist-auth "$AUTH_PORT" htpasswd || bail "docker-registry (htpasswd basic auth) starts on 127.0.0.1:$AUTH_PORT"
  ok "docker-registry (htpasswd basic auth) starts on 127.0.0.1:$AUTH_PORT"

  local up="127.0.0.1:$DIST_PORT" d
  check "upstream: push team/app:1 (3 layers)" \
    sk copy --quiet --preserve-digests --dest-tls-verify=false "oci:$SRC/app:app" "docker://$up/team/app:1"
  check "upstream: push team/app:never-pulled" \
    sk copy --quiet --preserve-digests --dest-tls-verify=false "oci:$SRC/app:small" "docker://$up/team/app:never-pulled"
  check "upstream: push team/multi:1 (two-platform OCI index, --all)" \
    sk copy --quiet --all --preserve-digests --dest-tls-verify=false "oci:$SRC/multi:1" "docker://$up/team/multi:1"
  check "upstream: push team/big:1 (a ${E2E_BIG_MIB} MiB layer) with curl" push_big_curl "http://$up" team/big 1
  check_eq "upstream: team/app:1 digest" "$APP_DIGEST" "$(remote_digest "docker://$up/team/app:1" 2>&1)"
  check_eq "upstream: team/app:never-pulled digest" "$SMALL_DIGEST" "$(remote_digest "docker://$up/team/app:never-pulled" 2>&1)"
  check_eq "upstream: team/multi:1 digest" "$MULTI_DIGEST" "$(remote_digest "docker://$up/team/multi:1" 2>&1)"
  for d in "${MULTI_CHILDREN[@]}"; do
    check_eq "upstream: team/multi@$d" "$d" "$(remote_digest "docker://$up/team/multi@$d" 2>&1)"
  done
  check_eq "upstream: team/big:1 digest" "$BIG_DIGEST" "$(remote_digest "docker://$up/team/big:1" 2>&1)"
  http HEAD "http://$up/v2/team/big/blobs/$BIG_LAYER"
  check_eq "upstream: HEAD of the big blob gives its size" "200 $BIG_SIZE" "$HTTP_STATUS $(header Content-Length)"

  local au="127.0.0.1:$AUTH_PORT"
  check "auth upstream: push team/secret:1 with user/pass" \
    sk copy --quiet --preserve-digests --dest-tls-verify=false --dest-creds user:pass "oci:$SRC/app:app" "docker://$au/team/secret:1"
  check_fails "auth upstream: anonymous pull is refused" \
    sk inspect --raw --tls-verify=false --no-creds "docker://$au/team/secret:1"
}

# 2 + 3. Pulls through the proxy and the group; the second pull fetches no blob upstream.
scenario_pull_through() {
  local hub="127.0.0.1:$BERTH_PORT/docker-hub" grp="127.0.0.1:$BERTH_PORT/docker" mark n d

  mark=$(log_mark dist)
  pull_and_compare "docker://$hub/team/app:1" "$SRC/app" "$APP_DIGEST" "proxy, 1st pull"
  settle_log dist
  n=$(count_requests dist "$mark" 'GET /v2/team/app/blobs/sha256:[0-9a-f]{64}')
  check_eq "proxy, 1st pull: each of the $APP_BLOBS blobs (config + layers) fetched upstream exactly once" "$APP_BLOBS" "$n"
  upstream_summary dist "$mark" "1st pull of team/app:1 (inspect --raw + copy)"

  mark=$(log_mark dist)
  pull_and_compare "docker://$grp/team/app:1" "$SRC/app" "$APP_DIGEST" "group, 2nd pull"
  pull_and_compare "docker://$hub/team/app:1" "$SRC/app" "$APP_DIGEST" "proxy, 3rd pull"
  settle_log dist
  check_eq "2nd and 3rd pull of team/app:1: no upstream GET of any blob" 0 \
    "$(count_requests dist "$mark" 'GET /v2/[^ ]+/blobs/[^ ]+')"
  check_eq "2nd and 3rd pull of team/app:1: no upstream GET of a manifest (metadata_max_age 0: HEAD only)" 0 \
    "$(count_requests dist "$mark" 'GET /v2/[^ ]+/manifests/[^ ]+')"
  n=$(count_requests dist "$mark" 'HEAD /v2/team/app/manifests/1')
  if [ "$n" -ge 1 ]; then ok "2nd and 3rd pull of team/app:1: the tag is re-checked upstream with HEAD ($n HEADs)"
  else not_ok "2nd and 3rd pull of team/app:1: the tag is re-checked upstream with HEAD (metadata_max_age 0; saw none)"; fi
  upstream_summary dist "$mark" "2nd + 3rd pull of team/app:1"

  mark=$(log_mark dist)
  pull_and_compare "docker://$hub/team/multi:1" "$SRC/multi" "$MULTI_DIGEST" "proxy, index"
  for d in "${MULTI_CHILDREN[@]}"; do
    check_eq "proxy, index: child $d by digest" "$d" "$(remote_digest "docker://$hub/team/multi@$d" 2>&1)"
  done
  upstream_summary dist "$mark" "1st pull of team/multi:1 (index + 2 children)"
  mark=$(log_mark dist)
  pull_and_compare "docker://$grp/team/multi:1" "$SRC/multi" "$MULTI_DIGEST" "group, index"
  settle_log dist
  check_eq "2nd pull of team/multi:1 (index, via group): no upstream GET of any blob or manifest" 0 \
    "$(count_requests dist "$mark" 'GET /v2/[^ ]+/(blobs|manifests)/[^ ]+')"
  upstream_summary dist "$mark" "2nd pull of team/multi:1"

  # Cache team/app:1 in the proxy with the default connect timeout too (checked in 6).
  http GET "$REG/v2/docker-hub-default-timeout/team/app/manifests/1" -H 'Accept: application/vnd.oci.image.manifest.v1+json'
  check_eq "docker-hub-default-timeout: GET team/app manifest 1 (cached for check 6)" "200 $APP_DIGEST" \
    "$HTTP_STATUS $(header Docker-Content-Digest)"

  # The group merges tags: docker-hosted has none of team/app, the proxy has the upstream's.
  local js
  if js=$(sk list-tags --tls-verify=false "docker://$grp/team/app" 2>&1); then
    check_eq "group: list-tags team/app merges the proxy's (upstream) tags" "1,never-pulled" "$(jq -r '.Tags | sort | join(",")' <<<"$js")"
  else
    not_ok "group: list-tags team/app"; echo "$js" | sed 's/^/#   /' | tail -n 5
  fi
}

# 4. Concurrent GETs of one uncached large blob share ONE upstream GET.
scenario_concurrent_blob() {
  local url="$REG/v2/docker-hub/team/big/blobs/$BIG_LAYER" mark i pids=() start
  mark=$(log_mark dist)
  start=$(date +%s)
  for i in $(seq 1 "$CONCURRENT"); do
    (
      set -o pipefail
      curl -sS --max-time "$CURL_TIMEOUT" -D "$WORK/conc.$i.headers" "$url" 2>"$WORK/conc.$i.err" |
        sha256sum | cut -d' ' -f1 >"$WORK/conc.$i.sha"
    ) &
    pids+=($!)
    BG_PIDS+=($!)
  done
  local good=0 bad=() status sha
  for i in $(seq 1 "$CONCURRENT"); do
    wait "${pids[$((i - 1))]}" 2>/dev/null || true
    status=$(head -n 1 "$WORK/conc.$i.headers" 2>/dev/null | tr -d '\r' | cut -d' ' -f2)
    sha="sha256:$(cat "$WORK/conc.$i.sha" 2>/dev/null)"
    if [ "$status" = 200 ] && [ "$sha" = "$BIG_LAYER" ]; then
      good=$((good + 1))
    else
      bad+=("#$i: HTTP ${status:-none}, $sha $(head -c 200 "$WORK/conc.$i.err" 2>/dev/null)")
    fi
  done
  BG_PIDS=()
  echo "# $CONCURRENT concurrent GETs of $((BIG_SIZE / 1048576)) MiB took $(($(date +%s) - start)) s"
  check_eq "$CONCURRENT concurrent GETs of the uncached ${E2E_BIG_MIB} MiB blob through the proxy: all 200 with the right sha256" \
    "$CONCURRENT" "$good"
  local b; for b in "${bad[@]}"; do echo "#   $b"; done
  settle_log dist
  local gets
  gets=$(count_requests dist "$mark" "GET /v2/team/big/blobs/$BIG_LAYER")
  check_eq "$CONCURRENT concurrent GETs of the uncached blob: exactly ONE upstream GET of it" 1 "$gets"
  if [ "$gets" != 1 ]; then
    echo "#   upstream access lines (status, bytes sent) of GET .../blobs/$BIG_LAYER:"
    berth_requests dist "$mark" | grep -F "\"GET /v2/team/big/blobs/$BIG_LAYER HTTP" |
      sed -E 's/.*\[([^]]*)\].*" ([0-9]{3}) ([0-9]+) .*/#     completed \1: \2, \3 bytes/' || true
  fi
  upstream_summary dist "$mark" "$CONCURRENT concurrent GETs of the big blob"
  # Now cached: one more GET is served without the upstream.
  mark=$(log_mark dist)
  sha=$(curl -sS --max-time "$CURL_TIMEOUT" "$url" | sha256sum | cut -d' ' -f1)
  check_eq "big blob, GET once cached: right sha256" "$BIG_LAYER" "sha256:$sha"
  settle_log dist
  check_eq "big blob, GET once cached: no upstream GET" 0 "$(count_requests dist "$mark" 'GET /v2/[^ ]+/blobs/[^ ]+')"
}

# 5. Upstream with basic auth; a proxy with a wrong password.
scenario_auth_upstream() {
  local mark; mark=$(log_mark dist-auth)
  pull_and_compare "docker://127.0.0.1:$BERTH_PORT/docker-hub-auth/team/secret:1" "$SRC/app" "$APP_DIGEST" "basic-auth proxy"
  upstream_summary dist-auth "$mark" "pull of team/secret:1 through docker-hub-auth"

  local url="$REG/v2/docker-hub-badauth/team/secret/manifests/1"
  http GET "$url" -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json'
  local code text; code=$(error_code); text=$(error_text)
  case $HTTP_STATUS in
    401 | 403 | 502 | 503) ;;
    *) code="" ;;
  esac
  if [ -n "$code" ] && grep -qiE '401|credential|denied|unauthori|refused|password' <<<"$text"; then
    ok "proxy with a wrong password: a clear OCI error, not 500"
    echo "#   $HTTP_STATUS $code: $(cut -c1-200 <<<"$text")"
  else
    not_ok "proxy with a wrong password: a clear OCI error, not 500 (got $HTTP_STATUS)"
    show_response "GET $url"
  fi
  http GET "$REG/v2/docker-hub-badauth/team/secret/blobs/$SMALL_CONFIG"
  if [ "$HTTP_STATUS" != 500 ] && [ "$HTTP_STATUS" != 200 ] && [ -n "$(error_code)" ]; then
    ok "proxy with a wrong password: blob GET answers an OCI error, not 500"
    echo "#   $HTTP_STATUS $(error_code): $(error_text | cut -c1-200)"
  else
    not_ok "proxy with a wrong password: blob GET answers an OCI error, not 500 (got $HTTP_STATUS)"
    show_response "GET $REG/v2/docker-hub-badauth/team/secret/blobs/$SMALL_CONFIG"
  fi
  check_fails "proxy with a wrong password: skopeo copy fails" \
    sk copy --quiet --src-tls-verify=false "docker://127.0.0.1:$BERTH_PORT/docker-hub-badauth/team/secret:1" "oci:$WORK/bad:1"
}

# 6. The anonymous upstream is down: cached content still pulls, uncached tags get 503 UNAVAILABLE.
scenario_upstream_down() {
  stop_pid dist 10 || true
  local code; code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$DIST_PORT/v2/" || true)
  check_eq "anonymous upstream is down" 000 "$code"
  local hub="127.0.0.1:$BERTH_PORT/docker-hub" grp="127.0.0.1:$BERTH_PORT/docker"
  pull_and_compare "docker://$hub/team/app:1" "$SRC/app" "$APP_DIGEST" "upstream down, proxy"
  pull_and_compare "docker://$grp/team/app:1" "$SRC/app" "$APP_DIGEST" "upstream down, group"
  pull_and_compare "docker://$hub/team/multi:1" "$SRC/multi" "$MULTI_DIGEST" "upstream down, proxy, index"
  pull_and_compare "docker://$grp/team/multi:1" "$SRC/multi" "$MULTI_DIGEST" "upstream down, group, index"

  local accept='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json'
  # A cached tag must not wait for the stopped upstream (connection refused) for long, whatever
  # connect_timeout is: docker-hub-default-timeout keeps the default (30 s).
  local t0 t1 url="$REG/v2/docker-hub-default-timeout/team/app/manifests/1"
  t0=$(date +%s%N)
  http GET "$url" -H "Accept: $accept" --max-time 12
  t1=$(date +%s%N)
  local ms=$(((t1 - t0) / 1000000))
  if [ "$HTTP_STATUS $(header Docker-Content-Digest)" = "200 $APP_DIGEST" ] && [ "$ms" -lt 5000 ]; then
    ok "upstream down, default connect_timeout: cached tag served within 5 s ($ms ms)"
  else
    not_ok "upstream down, default connect_timeout: cached tag served within 5 s (HTTP $HTTP_STATUS after $ms ms, curl --max-time 12)"
  fi
  t0=$(date +%s%N)
  http GET "$REG/v2/docker-hub/team/app/manifests/1" -H "Accept: $accept"
  t1=$(date +%s%N)
  echo "# upstream down, connect_timeout 1: GET docker-hub/team/app/manifests/1 -> $HTTP_STATUS in $(((t1 - t0) / 1000000)) ms"

  http GET "$REG/v2/docker-hub/team/app/manifests/never-pulled" -H "Accept: $accept"
  check_error "upstream down, proxy: uncached tag never-pulled gets 503 UNAVAILABLE" 503 UNAVAILABLE \
    "GET $REG/v2/docker-hub/team/app/manifests/never-pulled"
  http GET "$REG/v2/docker/team/app/manifests/never-pulled" -H "Accept: $accept"
  check_error "upstream down, group: uncached tag never-pulled gets 503 UNAVAILABLE" 503 UNAVAILABLE \
    "GET $REG/v2/docker/team/app/manifests/never-pulled"
  http GET "$REG/v2/docker-hub/team/app/blobs/$SMALL_CONFIG"
  check_error "upstream down, proxy: uncached blob gets 503 UNAVAILABLE" 503 UNAVAILABLE \
    "GET $REG/v2/docker-hub/team/app/blobs/$SMALL_CONFIG"
  check_fails "upstream down: skopeo inspect of the uncached tag fails" \
    sk inspect --raw --tls-verify=false "docker://$hub/team/app:never-pulled"
  if grep -qiE '503|unavailable' "$WORK/check.out"; then
    ok "upstream down: skopeo's error names the cause (503 / unavailable)"
  else
    not_ok "upstream down: skopeo's error names the cause (503 / unavailable)"
    sed 's/^/#   /' "$WORK/check.out" | tail -n 3
  fi
}

# 7a (upstream up). Pushes through the group land in docker-hosted; pushes to the proxy, and to a
# group without a writable member, are refused with 405 UNSUPPORTED.
scenario_group_push() {
  local grp="127.0.0.1:$BERTH_PORT/docker" hosted="127.0.0.1:$BERTH_PORT/docker-hosted"
  check "group: push team/pushed:1 through the group" \
    sk copy --quiet --preserve-digests --dest-tls-verify=false "oci:$SRC/pushed:pushed" "docker://$grp/team/pushed:1"
  pull_and_compare "docker://$hosted/team/pushed:1" "$SRC/pushed" "$PUSHED_DIGEST" "group push, via docker-hosted"
  pull_and_compare "docker://$grp/team/pushed:1" "$SRC/pushed" "$PUSHED_DIGEST" "group push, via group"
  http GET "$REG/v2/docker-hub/team/pushed/manifests/1" -H 'Accept: application/vnd.oci.image.manifest.v1+json'
  if [ "$HTTP_STATUS" != 200 ]; then ok "group push did not land in the proxy member (GET there: $HTTP_STATUS $(error_code))"
  else not_ok "group push did not land in the proxy member (GET docker-hub/team/pushed:1 answered 200)"; fi

  check_fails "proxy: skopeo push to docker-hub/team/refused:1 is refused" \
    sk copy --quiet --dest-tls-verify=false "oci:$SRC/pushed:pushed" "docker://127.0.0.1:$BERTH_PORT/docker-hub/team/refused:1"
  if grep -qiE '405|unsupported|not allowed' "$WORK/check.out"; then
    ok "proxy: skopeo's error says why (405 / UNSUPPORTED)"
  else
    not_ok "proxy: skopeo's error says why (405 / UNSUPPORTED)"
  fi
  http POST "$REG/v2/docker-hub/team/refused/blobs/uploads/"
  check_error "proxy: POST blobs/uploads/ gets 405 UNSUPPORTED" 405 UNSUPPORTED "POST $REG/v2/docker-hub/team/refused/blobs/uploads/"
  http PUT "$REG/v2/docker-hub/team/refused/manifests/1" -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$(blob_path "$SRC/pushed" "$PUSHED_DIGEST")"
  check_error "proxy: PUT manifest gets 405 UNSUPPORTED" 405 UNSUPPORTED "PUT $REG/v2/docker-hub/team/refused/manifests/1"
  http DELETE "$REG/v2/docker-hub/team/app/manifests/$APP_DIGEST"
  check_error "proxy: DELETE of a cached manifest gets 405 UNSUPPORTED" 405 UNSUPPORTED "DELETE $REG/v2/docker-hub/team/app/manifests/$APP_DIGEST"
  check_eq "proxy: the cached manifest is still there after the refused DELETE" "$APP_DIGEST" \
    "$(remote_digest "docker://127.0.0.1:$BERTH_PORT/docker-hub/team/app@$APP_DIGEST" 2>&1)"
  http POST "$REG/v2/docker-readonly/team/pushed/blobs/uploads/"
  check_error "group without writable_member: POST blobs/uploads/ gets 405 UNSUPPORTED" 405 UNSUPPORTED \
    "POST $REG/v2/docker-readonly/team/pushed/blobs/uploads/"
}

# 7b (upstream down). A push through the group must not depend on the proxy member's upstream.
scenario_group_push_upstream_down() {
  local grp="127.0.0.1:$BERTH_PORT/docker" hosted="127.0.0.1:$BERTH_PORT/docker-hosted"
  if sk copy --quiet --preserve-digests --dest-tls-verify=false "oci:$SRC/pushed:pushed" "docker://$grp/team/pushed:2" >"$WORK/err" 2>&1; then
    ok "upstream down, group: push team/pushed:2 through the group"
    pull_and_compare "docker://$hosted/team/pushed:2" "$SRC/pushed" "$PUSHED_DIGEST" "upstream down, group push, via docker-hosted"
    pull_and_compare "docker://$grp/team/pushed:2" "$SRC/pushed" "$PUSHED_DIGEST" "upstream down, group push, via group"
  else
    not_ok "upstream down, group: push team/pushed:2 through the group"
    sed 's/^/#   /' "$WORK/err" | tail -n 3
    local blob; blob=$(jq -r '.layers[0].digest' "$(blob_path "$SRC/pushed" "$PUSHED_DIGEST")")
    http HEAD "$REG/v2/docker/team/pushed2/blobs/$blob"
    echo "#   HEAD /v2/docker/team/pushed2/blobs/$blob (a blob no member has) -> $HTTP_STATUS"
  fi
}

# 8. Restart on the same data dir with the upstream still down: the cache survives.
scenario_restart() {
  stop_checked berth berth
  start_berth berth "$WORK/berth.yml" "$DATA" "$BERTH_PORT" || bail "berth restarts on the same data dir"
  ok "berth restarts on the same data dir"
  local hub="127.0.0.1:$BERTH_PORT/docker-hub" grp="127.0.0.1:$BERTH_PORT/docker"
  pull_and_compare "docker://$hub/team/app:1" "$SRC/app" "$APP_DIGEST" "after restart, proxy"
  pull_and_compare "docker://$grp/team/app:1" "$SRC/app" "$APP_DIGEST" "after restart, group"
  pull_and_compare "docker://$hub/team/multi:1" "$SRC/multi" "$MULTI_DIGEST" "after restart, proxy, index"
  pull_and_compare "docker://$grp/team/pushed:1" "$SRC/pushed" "$PUSHED_DIGEST" "after restart, group (hosted member)"
  local sha
  sha=$(curl -sS --max-time "$CURL_TIMEOUT" "$REG/v2/docker-hub/team/big/blobs/$BIG_LAYER" | sha256sum | cut -d' ' -f1)
  check_eq "after restart: cached ${E2E_BIG_MIB} MiB blob still served" "$BIG_LAYER" "sha256:$sha"
  http GET "$REG/v2/docker-hub/team/app/manifests/never-pulled" -H 'Accept: application/vnd.oci.image.manifest.v1+json'
  check_error "after restart: uncached tag still gets 503 UNAVAILABLE" 503 UNAVAILABLE \
    "GET $REG/v2/docker-hub/team/app/manifests/never-pulled"
}

# ------------------------------------------------------------------- main ---

main() {
  local t0; t0=$(date +%s)
  ensure_packages skopeo umoci docker-registry apache2-utils jq curl openssl nginx

  make_work berth-e2e-proxy
  DATA="$WORK/data"

  wait_for_binary || bail "berth binary exists at $BERTH_BIN"
  cp "$BERTH_BIN" "$WORK/berth" || bail "copy $BERTH_BIN"
  BERTH_BIN="$WORK/berth" # the copy: an in-place rebuild during the run does not matter

  free_port BERTH_PORT
  free_port DIST_PORT
  free_port AUTH_PORT
  free_port SLOW_PORT
  free_port LIMIT_PORT
  REG="http://127.0.0.1:$BERTH_PORT"

  build_images
  build_big

  section "1. upstreams: docker-registry on 127.0.0.1:$DIST_PORT (anonymous) and :$AUTH_PORT (basic auth)"
  scenario_upstreams

  write_berth_config
  if "$BERTH_BIN" config check "$WORK/berth.yml" >"$WORK/check.out" 2>&1; then
    ok "berth config check accepts the proxy/group configuration"
  else
    not_ok "berth config check accepts the proxy/group configuration"; sed 's/^/#   /' "$WORK/check.out"
  fi
  start_berth berth "$WORK/berth.yml" "$DATA" "$BERTH_PORT" || bail "berth starts with hosted, proxy and group repositories on 127.0.0.1:$BERTH_PORT"
  ok "berth starts with hosted, proxy and group repositories on 127.0.0.1:$BERTH_PORT"

  section "2+3. pull through the proxy and the group; second pulls stay local"
  scenario_pull_through
  section "4a. an upstream that answers 429"
  scenario_rate_limited
  section "4b. an upstream transfer cut in the middle (before the blob is cached)"
  scenario_cut_transfer
  section "4. $CONCURRENT concurrent GETs of an uncached ${E2E_BIG_MIB} MiB blob"
  scenario_concurrent_blob
  section "5. upstream with basic auth"
  scenario_auth_upstream
  section "7a. push through the group (upstream up)"
  scenario_group_push
  section "6. anonymous upstream down"
  scenario_upstream_down
  section "7b. push through the group (upstream down)"
  scenario_group_push_upstream_down
  section "8. restart with the upstream still down"
  scenario_restart

  stop_checked berth berth
  upstream_summary dist 1 "whole run"
  upstream_summary dist-auth 1 "whole run"
  echo "# runtime $(($(date +%s) - t0)) s"
  print_summary
  if [ "$FAILED" -ne 0 ]; then exit 1; fi
}

install_traps
main "$@"
