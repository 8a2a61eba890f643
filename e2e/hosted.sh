#!/usr/bin/env bash
# End-to-end test of Berth's hosted Docker/OCI repository ("docker-hosted").
#
# Drives a real `berth serve` with real clients (skopeo, curl, nginx) and real
# images built with umoci, for both access methods Berth supports:
#   * repository path:  127.0.0.1:PORT/docker-hosted/<image>     (/v2/docker-hosted/...)
#   * Nexus path:       /repository/docker-hosted/v2/<image>/...  behind nginx, configured
#                       like Sonatype's reverse-proxy guide (which yields "//v2").
# It also checks chunked uploads, persistence across a restart, resuming an
# upload across a restart, and that a SIGKILL in the middle of an upload leaves
# no partial blob behind.
#
# Usage:  bash e2e/hosted.sh          (as root; installs missing Debian packages)
# Env:    BERTH_BIN     berth binary (default /work/main/.build/debug/berth)
#         E2E_BACKEND   "berth" (default) or "distribution": run the same flows
#                       against Debian's docker-registry, to debug this script
#                       itself (no repository prefix, Berth-only checks skipped)
#         E2E_KEEP=1    keep the temp dir (it is printed) for post-mortem
# Output: one "ok - ..." / "not ok - ..." line per check, then "N passed, M failed".
set -euo pipefail

BERTH_BIN=${BERTH_BIN:-/work/main/.build/debug/berth}
E2E_BACKEND=${E2E_BACKEND:-berth}
SKOPEO_TIMEOUT=300 # seconds per skopeo invocation; a hang must not stall CI
CURL_TIMEOUT=180   # seconds per curl request

# ---------------------------------------------------------------- packages ---

# Install missing Debian packages (fresh Debian 12, root, no stdin).
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "# installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}

# ------------------------------------------------------------ reporting ---

PASSED=0
FAILED=0
SUMMARY_PRINTED=0

ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
not_ok() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }

# check DESCRIPTION COMMAND...: passes if COMMAND exits 0; its output goes to
# the log and is shown (tail) only on failure.
check() {
  local desc=$1; shift
  if "$@" >"$WORK/check.out" 2>&1; then
    ok "$desc"
  else
    not_ok "$desc"
    sed 's/^/#   /' "$WORK/check.out" | tail -n 15
  fi
}

# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
  if [ "$2" == "$3" ]; then
    ok "$1"
  else
    not_ok "$1"
    echo "#   expected: $2"
    echo "#   actual:   $3"
  fi
}

print_summary() {
  [ "$SUMMARY_PRINTED" -eq 1 ] && return 0
  SUMMARY_PRINTED=1
  echo "$PASSED passed, $FAILED failed"
}

# Stop here: later scenarios make no sense (e.g. the server does not start).
BAILED=0
bail() {
  not_ok "$*"
  BAILED=1
  exit 1
}

# --------------------------------------------------------------- cleanup ---

WORK=""
BERTH_PID=""
NGINX_PID=""
BG_PIDS=()

cleanup() {
  local rc=$?
  set +e
  trap - EXIT ERR
  local p
  for p in "${BG_PIDS[@]}" "$NGINX_PID" "$BERTH_PID"; do
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null
  done
  for p in "${BG_PIDS[@]}" "$NGINX_PID" "$BERTH_PID"; do
    [ -n "$p" ] || continue
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  if [ "$SUMMARY_PRINTED" -eq 0 ] && [ "$rc" -ne 0 ] && [ "$BAILED" -eq 0 ]; then
    not_ok "script aborted unexpectedly (exit $rc; signal, or see '# error' line above)"
  fi
  print_summary
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "${E2E_KEEP:-0}" = 1 ]; then echo "# kept $WORK"; else rm -rf "$WORK"; fi
  fi
  [ "$FAILED" -eq 0 ] && [ "$rc" -eq 0 ] && exit 0
  exit 1
}

# ---------------------------------------------------------------- helpers ---

is_berth() { [ "$E2E_BACKEND" = berth ]; }

# A loopback TCP port nobody listens on (bounded number of tries).
free_port() {
  local p _
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 30000))
    [ "$p" = "${BERTH_PORT:-}" ] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

sk() { timeout "$SKOPEO_TIMEOUT" skopeo --policy "$WORK/policy.json" "$@"; }

# Digest of the manifest a registry serves for REF (docker://...).
remote_digest() {
  local raw
  raw=$(mktemp "$WORK/raw.XXXXXX")
  sk inspect --tls-verify=false --raw "$1" >"$raw" || return 1
  echo "sha256:$(sha256_of "$raw")"
}

# http METHOD URL [curl args...]: sets HTTP_STATUS, response headers in
# $WORK/resp.headers and body in $WORK/resp.body. Never fails (status 000 on
# transport errors) so callers can check the status.
http() {
  local method=$1 url=$2; shift 2
  local verb=(-X "$method")
  [ "$method" = HEAD ] && verb=(--head)
  : >"$WORK/resp.body"
  HTTP_STATUS=$(curl -sS "${verb[@]}" -H 'Expect:' --max-time "$CURL_TIMEOUT" \
    -o "$([ "$method" = HEAD ] && echo /dev/null || echo "$WORK/resp.body")" -D "$WORK/resp.headers" -w '%{http_code}' "$@" "$url" 2>"$WORK/resp.err") || true
  [ -n "$HTTP_STATUS" ] || HTTP_STATUS=000
}

# Value of response header NAME of the last http call (last occurrence).
header() {
  grep -i "^$1:" "$WORK/resp.headers" | tail -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^[[:space:]]*//;s/[[:space:]]*$//'
}

# Print the last response, for failure diagnostics.
show_response() {
  echo "#   request: $*"
  sed 's/^/#   < /' "$WORK/resp.headers" | tr -d '\r' | head -n 20
  head -c 600 "$WORK/resp.body" | sed 's/^/#   body: /'; echo
  [ -s "$WORK/resp.err" ] && sed 's/^/#   curl: /' "$WORK/resp.err"
  return 0
}

# check_status DESCRIPTION EXPECTED "request description": fails (after
# reporting) if the last response's status is not EXPECTED, so that callers
# can skip steps that depend on it.
check_status() {
  if [ "$HTTP_STATUS" = "$2" ]; then
    ok "$1"
  else
    not_ok "$1 (expected $2, got $HTTP_STATUS)"
    show_response "$3"
    return 1
  fi
}

# Upload URLs may come back absolute or as a path; resolve against BASE.
abs_url() {
  case $2 in
    http://* | https://*) echo "$2" ;;
    /*) echo "$1$2" ;;
    *) echo "$1/$2" ;;
  esac
}

# Absolute URL of the last response's Location; FALLBACK (if given) when the
# response has none.
next_location() {
  local loc; loc=$(header Location)
  if [ -z "$loc" ]; then
    [ -n "${2:-}" ] || return 1
    echo "$2"; return 0
  fi
  abs_url "$1" "$loc"
}

# Append digest=... to an upload URL that may already carry a query.
with_digest() {
  case $1 in
    *\?*) echo "$1&digest=$2" ;;
    *) echo "$1?digest=$2" ;;
  esac
}

# ------------------------------------------------------------ OCI layouts ---

# Digest of the manifest tagged TAG in OCI layout DIR.
layout_digest() {
  jq -r --arg t "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$1/index.json"
}

blob_path() { echo "$1/blobs/${2%%:*}/${2#*:}"; }

# Every blob digest reachable from manifest/index DIGEST in layout DIR
# (the manifest itself, its config and layers; children of an index).
reachable_blobs() {
  local dir=$1 digest=$2 f child
  f=$(blob_path "$dir" "$digest")
  echo "$digest"
  if jq -e '.manifests' "$f" >/dev/null 2>&1; then
    for child in $(jq -r '.manifests[].digest' "$f"); do
      reachable_blobs "$dir" "$child"
    done
  else
    jq -r '.config.digest, .layers[].digest' "$f"
  fi
}

# Pulled-back layout OUT holds exactly the blobs reachable from DIGEST in SRC,
# each byte-identical (its sha256 equals its name).
same_blobs() {
  local src=$1 out=$2 digest=$3 d f
  local expected actual
  expected=$(reachable_blobs "$src" "$digest" | sort -u)
  actual=$(cd "$out/blobs" && find . -type f | sed 's|^\./||; s|/|:|' | sort -u)
  if [ "$expected" != "$actual" ]; then
    echo "blob sets differ:"; diff <(echo "$expected") <(echo "$actual") || true
    return 1
  fi
  for d in $expected; do
    f=$(blob_path "$out" "$d")
    [ "sha256:$(sha256_of "$f")" = "$d" ] || { echo "corrupt blob $f"; return 1; }
  done
}

# ---------------------------------------------------------------- images ---

# Add a layer with the given files to image IMG:TAG (umoci unpack/repack
# cycle, like a Dockerfile step). Remaining args: "src:dest-in-rootfs" pairs,
# or "random:SIZE:dest" for incompressible data.
add_layer() {
  local ref=$1; shift
  local bundle="$WORK/bundle"
  rm -rf "$bundle"
  umoci unpack --rootless --image "$ref" "$bundle" >/dev/null
  local spec src dest size
  for spec in "$@"; do
    case $spec in
      random:*)
        size=$(echo "$spec" | cut -d: -f2); dest=$(echo "$spec" | cut -d: -f3)
        mkdir -p "$bundle/rootfs$(dirname "$dest")"
        head -c "$size" /dev/urandom >"$bundle/rootfs$dest" ;;
      *)
        src=${spec%%:*}; dest=${spec#*:}
        mkdir -p "$bundle/rootfs$(dirname "$dest")"
        cp -a "$src" "$bundle/rootfs$dest" ;;
    esac
  done
  umoci repack --image "$ref" "$bundle" >/dev/null
  rm -rf "$bundle"
}

# $SRC/app: a 3-layer image (tags "small" = 1 layer, "app" = 3 layers +
# entrypoint). $SRC/multi: a layout whose only entry is an OCI index "1" of a
# linux/amd64 and a linux/arm64 image, each with real layers.
build_images() {
  SRC="$WORK/src"
  mkdir -p "$SRC" "$WORK/docs"
  # A handful of real text files from the machine.
  local docs f
  mapfile -t docs < <(find /usr/share/doc -maxdepth 2 -name copyright -type f 2>/dev/null | sort)
  for f in "${docs[@]:0:20}"; do
    cp "$f" "$WORK/docs/$(basename "$(dirname "$f")").copyright"
  done

  local app="$SRC/app"
  umoci init --layout "$app"
  umoci new --image "$app:app"
  add_layer "$app:app" /etc/os-release:/etc/os-release /etc/debian_version:/etc/debian_version
  umoci tag --image "$app:app" small
  add_layer "$app:app" "$WORK/docs:/usr/share/doc/e2e" "random:20M:/opt/e2e/blob.bin"
  add_layer "$app:app" "$(command -v jq):/usr/local/bin/jq" "random:1M:/opt/e2e/extra.bin"
  umoci config --image "$app:app" --config.entrypoint /usr/local/bin/jq --config.cmd=--version
  umoci gc --layout "$app"

  # Two single-platform images, then a hand-written index over them.
  local ms="$WORK/multi-src"
  umoci init --layout "$ms"
  local arch
  for arch in amd64 arm64; do
    umoci new --image "$ms:$arch"
    echo "$arch" >"$WORK/arch.txt"
    add_layer "$ms:$arch" /etc/os-release:/etc/os-release "$WORK/arch.txt:/etc/e2e-arch"
    add_layer "$ms:$arch" "random:3M:/opt/e2e/$arch.bin"
    umoci config --image "$ms:$arch" --architecture "$arch" --os linux
  done
  umoci gc --layout "$ms"

  local idx="$WORK/index.json"
  jq -n --slurpfile l "$ms/index.json" '
    def child($a): $l[0].manifests[]
      | select(.annotations["org.opencontainers.image.ref.name"] == $a)
      | {mediaType, digest, size, platform: {architecture: $a, os: "linux"}};
    {schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
     manifests: [child("amd64"), child("arm64")]}' >"$idx"
  local hex; hex=$(sha256_of "$idx")
  local multi="$SRC/multi"
  mkdir -p "$multi/blobs"
  cp -a "$ms/blobs/sha256" "$multi/blobs/"
  cp "$idx" "$multi/blobs/sha256/$hex"
  cp "$ms/oci-layout" "$multi/oci-layout"
  jq -n --arg d "sha256:$hex" --argjson s "$(stat -c %s "$idx")" '
    {schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.index.v1+json",
      digest: $d, size: $s, annotations: {"org.opencontainers.image.ref.name": "1"}}]}' >"$multi/index.json"

  APP_DIGEST=$(layout_digest "$app" app)
  SMALL_DIGEST=$(layout_digest "$app" small)
  MULTI_DIGEST=$(layout_digest "$multi" 1)
  local arm64_digest
  arm64_digest=$(jq -r '.manifests[] | select(.platform.architecture == "arm64") | .digest' "$idx")
  ARM64_LAYERS=$(jq '.layers | length' "$(blob_path "$multi" "$arm64_digest")")
  APP_LAYERS=$(jq '.layers | length' "$(blob_path "$app" "$APP_DIGEST")")
  echo "# built app $APP_DIGEST ($APP_LAYERS layers), index $MULTI_DIGEST"
}

# --------------------------------------------------------------- servers ---

DATA=""
BERTH_LOG=""

start_berth() {
  : >>"$BERTH_LOG"
  echo "# --- start $(date +%T) ---" >>"$BERTH_LOG"
  if is_berth; then
    "$BERTH_BIN" serve --listen "127.0.0.1:$BERTH_PORT" --data "$DATA" >>"$BERTH_LOG" 2>&1 &
  else
    cat >"$WORK/registry.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem:
    rootdirectory: $DATA
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$BERTH_PORT
  secret: e2e-fixed-secret-so-upload-state-survives-restarts
EOF
    env -u REGISTRY_AUTH_FILE docker-registry serve "$WORK/registry.yml" >>"$BERTH_LOG" 2>&1 &
  fi
  BERTH_PID=$!
  # Wait (<= 30 s) until GET /v2/ answers 200.
  local code _
  for _ in $(seq 1 150); do
    if ! kill -0 "$BERTH_PID" 2>/dev/null; then
      wait "$BERTH_PID" 2>/dev/null || true
      BERTH_PID=""
      echo "# server exited during startup; log:"; tail -n 40 "$BERTH_LOG" | sed 's/^/#   /'
      return 1
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$REG/v2/" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.2
  done
  echo "# GET /v2/ did not answer 200 within 30 s (last: $code); log:"
  tail -n 40 "$BERTH_LOG" | sed 's/^/#   /'
  return 1
}

# SIGTERM and wait (<= 20 s) for the process to exit.
stop_berth() {
  [ -n "$BERTH_PID" ] || return 0
  kill -TERM "$BERTH_PID" 2>/dev/null || true
  local _
  for _ in $(seq 1 100); do kill -0 "$BERTH_PID" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$BERTH_PID" 2>/dev/null; then
    not_ok "server exits within 20 s of SIGTERM"
    kill -KILL "$BERTH_PID" 2>/dev/null || true
  else
    ok "server exits within 20 s of SIGTERM"
  fi
  wait "$BERTH_PID" 2>/dev/null || true
  BERTH_PID=""
}

kill9_berth() {
  kill -KILL "$BERTH_PID" 2>/dev/null || true
  wait "$BERTH_PID" 2>/dev/null || true
  BERTH_PID=""
}

restart_berth() {
  stop_berth
  start_berth || bail "server restarts on the same data dir"
  ok "server restarts on the same data dir"
}

# nginx in front of Berth, shaped like Sonatype's "Docker behind a reverse
# proxy" guide: /v2 is rewritten to /repository/docker-hosted/$request_uri
# (which yields ".../docker-hosted//v2/..."), everything else (notably the
# upload Location paths Berth hands out) is passed through unchanged.
start_nginx() {
  local ng="$WORK/nginx" target
  mkdir -p "$ng/logs" "$ng/tmp"
  if is_berth; then
    target="http://127.0.0.1:$BERTH_PORT/repository/docker-hosted/\$request_uri"
  else
    target="http://127.0.0.1:$BERTH_PORT\$request_uri"
  fi
  local user_line=""
  [ "$(id -u)" = 0 ] && user_line="user root;"
  cat >"$ng/nginx.conf" <<EOF
$user_line
worker_processes 1;
pid $ng/nginx.pid;
error_log $ng/logs/error.log info;
events { worker_connections 256; }
http {
  access_log $ng/logs/access.log;
  client_body_temp_path $ng/tmp/body;
  proxy_temp_path $ng/tmp/proxy;
  fastcgi_temp_path $ng/tmp/fastcgi;
  uwsgi_temp_path $ng/tmp/uwsgi;
  scgi_temp_path $ng/tmp/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_read_timeout 300;
    proxy_send_timeout 300;
    location /v2 {
      proxy_set_header Host \$host:\$server_port;
      proxy_set_header X-Forwarded-Proto http;
      proxy_pass $target;
    }
    location / {
      proxy_set_header Host \$host:\$server_port;
      proxy_set_header X-Forwarded-Proto http;
      proxy_pass http://127.0.0.1:$BERTH_PORT;
    }
  }
}
EOF
  nginx -p "$ng" -e "$ng/logs/error.log" -c "$ng/nginx.conf" -g 'daemon off;' >"$ng/logs/stdout.log" 2>&1 &
  NGINX_PID=$!
  local code _
  for _ in $(seq 1 100); do
    kill -0 "$NGINX_PID" 2>/dev/null || { NGINX_PID=""; cat "$ng/logs/error.log" "$ng/logs/stdout.log"; return 1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$NGINX_PORT/v2/" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.2
  done
  echo "# nginx: GET /v2/ -> $code"; tail -n 20 "$ng/logs/error.log"
  return 1
}

# ----------------------------------------------------- image round trips ---

# Images pushed so far, re-verified after restarts: "REF|LAYOUT|DIGEST".
PUSHED=()

# pull_and_compare REF LAYOUT DIGEST LABEL: the registry serves DIGEST for REF
# and a pull of REF into a fresh OCI layout yields byte-identical blobs.
pull_and_compare() {
  local ref=$1 layout=$2 digest=$3 label=$4
  check_eq "$label: manifest digest of $ref" "$digest" "$(remote_digest "$ref" 2>"$WORK/err" || cat "$WORK/err")"
  local out; out=$(mktemp -d "$WORK/pull.XXXXXX")
  if sk copy --quiet --all --preserve-digests --src-tls-verify=false "$ref" "oci:$out:pulled" >"$WORK/err" 2>&1; then
    check "$label: pulled $ref has identical manifest and blobs" same_blobs "$layout" "$out" "$digest"
  else
    not_ok "$label: pull $ref"; sed 's/^/#   /' "$WORK/err" | tail -n 10
  fi
  rm -rf "$out"
}

push() {
  local src=$1 dest=$2
  check "push $src -> $dest" sk copy --quiet --all --preserve-digests --dest-tls-verify=false "$src" "$dest"
}

# Everything skopeo does against one access method. BASE is what goes after
# docker:// (host:port plus repository prefix), LABEL names the method.
scenario_skopeo() {
  local base=$1 label=$2
  local app="$base/app" multi="$base/multi"

  # Push: one image under 3 tags, a different image (to delete later), an index.
  local t
  for t in 1 2 3; do push "oci:$SRC/app:app" "docker://$app:$t"; done
  push "oci:$SRC/app:small" "docker://$app:old"
  check_eq "$label: manifest digest of $app:old" "$SMALL_DIGEST" "$(remote_digest "docker://$app:old" 2>&1)"
  push "oci:$SRC/multi:1" "docker://$multi:1"

  # Digests round-trip, and pulls give back byte-identical layouts.
  for t in 1 2 3; do
    check_eq "$label: manifest digest of $app:$t" "$APP_DIGEST" "$(remote_digest "docker://$app:$t" 2>&1)"
  done
  pull_and_compare "docker://$app:1" "$SRC/app" "$APP_DIGEST" "$label"
  pull_and_compare "docker://$multi:1" "$SRC/multi" "$MULTI_DIGEST" "$label"
  local child
  for child in $(jq -r '.manifests[].digest' "$(blob_path "$SRC/multi" "$MULTI_DIGEST")"); do
    check_eq "$label: index child $child by digest" "$child" "$(remote_digest "docker://$multi@$child" 2>&1)"
  done
  PUSHED+=("docker://$app:1|$SRC/app|$APP_DIGEST" "docker://$app:3|$SRC/app|$APP_DIGEST"
    "docker://$multi:1|$SRC/multi|$MULTI_DIGEST")

  # skopeo inspect: parsed view of the manifest and config.
  local js
  if js=$(sk inspect --tls-verify=false "docker://$app:1" 2>&1); then
    check_eq "$label: inspect $app:1 layer count" "$APP_LAYERS" "$(jq '.Layers | length' <<<"$js")"
    check_eq "$label: inspect $app:1 digest" "$APP_DIGEST" "$(jq -r .Digest <<<"$js")"
    check_eq "$label: inspect $app:1 tags" "1,2,3,old" "$(jq -r '.RepoTags | sort | join(",")' <<<"$js")"
  else
    not_ok "$label: inspect $app:1"; echo "$js" | sed 's/^/#   /' | tail -n 5
  fi
  if js=$(sk --override-arch arm64 inspect --tls-verify=false "docker://$multi:1" 2>&1); then
    # skopeo reports the index digest as .Digest; the chosen child shows in
    # .Architecture and .Layers.
    check_eq "$label: inspect $multi:1 for arm64 picks the arm64 child" "arm64 $ARM64_LAYERS" \
      "$(jq -r '"\(.Architecture) \(.Layers | length)"' <<<"$js")"
  else
    not_ok "$label: inspect $multi:1 (arm64)"; echo "$js" | sed 's/^/#   /' | tail -n 5
  fi

  # list-tags.
  if js=$(sk list-tags --tls-verify=false "docker://$app" 2>&1); then
    check_eq "$label: list-tags $app" "1,2,3,old" "$(jq -r '.Tags | sort | join(",")' <<<"$js")"
    # The distribution spec asks for lexical order.
    check_eq "$label: list-tags $app is in lexical order" "$(jq -r '.Tags | sort | join(",")' <<<"$js")" \
      "$(jq -r '.Tags | join(",")' <<<"$js")"
  else
    not_ok "$label: list-tags $app"; echo "$js" | sed 's/^/#   /' | tail -n 5
  fi

  # delete: removes the "old" manifest (skopeo deletes by digest), nothing else.
  check "$label: delete $app:old" sk delete --tls-verify=false "docker://$app:old"
  if sk inspect --tls-verify=false --raw "docker://$app:old" >/dev/null 2>&1; then
    not_ok "$label: inspect $app:old fails after delete"
  else
    ok "$label: inspect $app:old fails after delete"
  fi
  if sk inspect --tls-verify=false --raw "docker://$app@$SMALL_DIGEST" >/dev/null 2>&1; then
    not_ok "$label: inspect $app@$SMALL_DIGEST fails after delete"
  else
    ok "$label: inspect $app@$SMALL_DIGEST fails after delete"
  fi
  if js=$(sk list-tags --tls-verify=false "docker://$app" 2>&1); then
    check_eq "$label: list-tags $app after delete" "1,2,3" "$(jq -r '.Tags | sort | join(",")' <<<"$js")"
  else
    not_ok "$label: list-tags $app after delete"; echo "$js" | sed 's/^/#   /' | tail -n 5
  fi
  check_eq "$label: $app:2 survives the delete" "$APP_DIGEST" "$(remote_digest "docker://$app:2" 2>&1)"
}

# ------------------------------------------------------- raw HTTP uploads ---

# Chunked upload (POST, PATCH, PATCH, PUT ?digest) as done by docker/containerd.
# URL_BASE: scheme://host:port the client talks to; API: path up to the image
# name, e.g. /v2/docker-hosted/e2e/chunk; UPLOAD_PATH (optional): the path the
# upload Location must point into (the Nexus path keeps its own prefix, so
# that nginx's "location /" passes it back unchanged).
scenario_chunked_upload() {
  local url_base=$1 api=$2 label=$3 upload_path=${4:-}
  local f="$WORK/chunk-${label// /-}.bin"
  head -c $((5 * 1024 * 1024 + 12345)) /dev/urandom >"$f"
  local size; size=$(stat -c %s "$f")
  local half=$((3 * 1024 * 1024 + 7))
  head -c "$half" "$f" >"$WORK/chunk.1"
  tail -c +$((half + 1)) "$f" >"$WORK/chunk.2"
  local digest; digest="sha256:$(sha256_of "$f")"

  # Monolithic single-request upload first: POST ?digest= with the whole body.
  local m="$WORK/mono.bin" md
  head -c 100000 /dev/urandom >"$m"
  md="sha256:$(sha256_of "$m")"
  http POST "$url_base$api/blobs/uploads/?digest=$md" -H 'Content-Type: application/octet-stream' --data-binary "@$m"
  if check_status "$label: monolithic POST ?digest" 201 "POST $url_base$api/blobs/uploads/?digest=$md"; then
    check_blob "$url_base" "$api" "$md" "$m" "$label: monolithic blob"
  fi

  # Each step uses the Location of the previous response, as clients must;
  # a failed step ends the scenario (the rest would only repeat the failure).
  http POST "$url_base$api/blobs/uploads/"
  check_status "$label: POST $api/blobs/uploads/ starts a session" 202 "POST $url_base$api/blobs/uploads/" || return 0
  local loc
  loc=$(next_location "$url_base") || { not_ok "$label: upload session has a Location"; return 0; }
  if [ -n "$upload_path" ]; then
    local path; path=$(header Location | sed -E 's|^https?://[^/]*||')
    if [[ $path == "$upload_path"* ]]; then
      ok "$label: upload Location is under $upload_path"
    else
      not_ok "$label: upload Location is under $upload_path (got $(header Location))"
    fi
  fi

  http PATCH "$loc" -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: 0-$((half - 1))" --data-binary "@$WORK/chunk.1"
  check_status "$label: PATCH chunk 1" 202 "PATCH $loc (Content-Range 0-$((half - 1)))" || return 0
  check_eq "$label: Range after chunk 1" "0-$((half - 1))" "$(header Range)"
  loc=$(next_location "$url_base" "$loc")

  http PATCH "$loc" -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: $half-$((size - 1))" --data-binary "@$WORK/chunk.2"
  check_status "$label: PATCH chunk 2" 202 "PATCH $loc (Content-Range $half-$((size - 1)))" || return 0
  check_eq "$label: Range after chunk 2" "0-$((size - 1))" "$(header Range)"
  loc=$(next_location "$url_base" "$loc")

  http PUT "$(with_digest "$loc" "$digest")"
  check_status "$label: PUT ?digest completes the upload" 201 "PUT $(with_digest "$loc" "$digest")" || return 0
  check_eq "$label: Docker-Content-Digest of the completed upload" "$digest" "$(header Docker-Content-Digest)"

  check_blob "$url_base" "$api" "$digest" "$f" "$label: chunked blob"
}

# check_blob URL_BASE API DIGEST FILE LABEL: HEAD and GET serve FILE's bytes.
check_blob() {
  local url_base=$1 api=$2 digest=$3 file=$4 label=$5
  http HEAD "$url_base$api/blobs/$digest"
  if check_status "$label: HEAD" 200 "HEAD $url_base$api/blobs/$digest"; then
    check_eq "$label: HEAD Content-Length" "$(stat -c %s "$file")" "$(header Content-Length)"
  fi
  http GET "$url_base$api/blobs/$digest" -L
  if check_status "$label: GET" 200 "GET $url_base$api/blobs/$digest"; then
    check_eq "$label: GET body sha256" "$digest" "sha256:$(sha256_of "$WORK/resp.body")"
  fi
}

# Berth-only: the Nexus path answers directly too, with and without "//".
scenario_nexus_raw() {
  local p
  for p in /repository/docker-hosted/v2/ /repository/docker-hosted//v2/; do
    http GET "$REG$p"
    check_status "nexus path: GET $p" 200 "GET $REG$p" || true
  done
  local accept='application/vnd.oci.image.manifest.v1+json'
  for p in /repository/docker-hosted/v2/nexus/app/manifests/1 /repository/docker-hosted//v2/nexus/app/manifests/1; do
    http GET "$REG$p" -H "Accept: $accept"
    if check_status "nexus path: GET $p" 200 "GET $REG$p"; then
      check_eq "nexus path: $p body digest" "$APP_DIGEST" "sha256:$(sha256_of "$WORK/resp.body")"
    fi
  done
  # Both methods address one repository: what went in via nginx is visible
  # via the repository path, and vice versa.
  check_eq "image pushed via nexus path is readable via repository path" "$APP_DIGEST" \
    "$(remote_digest "docker://127.0.0.1:$BERTH_PORT/docker-hosted/nexus/app:1" 2>&1)"
  check_eq "image pushed via repository path is readable via nexus path" "$APP_DIGEST" \
    "$(remote_digest "docker://127.0.0.1:$NGINX_PORT/direct/app:1" 2>&1)"
}

verify_all_pushed() {
  local label=$1 entry ref layout digest
  for entry in "${PUSHED[@]}"; do
    IFS='|' read -r ref layout digest <<<"$entry"
    pull_and_compare "$ref" "$layout" "$digest" "$label"
  done
}

# Stop (SIGTERM) and start on the same data dir: everything is still there.
scenario_restart_persistence() {
  restart_berth
  verify_all_pushed "after restart"
  local f="$WORK/chunk-repository-path.bin"
  check_blob "$REG" "$API/e2e/chunk" "sha256:$(sha256_of "$f")" "$f" "after restart: chunked blob"
}

# An upload session survives a restart: its offset is reported by GET and it
# can be continued and completed.
scenario_resume_after_restart() {
  local f="$WORK/resume.bin" api="$API/e2e/resume"
  head -c $((30 * 1024 * 1024)) /dev/urandom >"$f"
  local size; size=$(stat -c %s "$f")
  local half=$((size / 2))
  head -c "$half" "$f" >"$WORK/resume.1"
  tail -c +$((half + 1)) "$f" >"$WORK/resume.2"
  local digest; digest="sha256:$(sha256_of "$f")"

  http POST "$REG$api/blobs/uploads/"
  check_status "resume: POST starts a session" 202 "POST $REG$api/blobs/uploads/" || return 0
  local loc
  loc=$(next_location "$REG") || { not_ok "resume: upload session has a Location"; return 0; }
  http PATCH "$loc" -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: 0-$((half - 1))" --data-binary "@$WORK/resume.1"
  check_status "resume: PATCH first half" 202 "PATCH $loc" || return 0
  loc=$(next_location "$REG" "$loc")

  restart_berth

  http GET "$loc"
  check_status "resume: GET upload URL after restart" 204 "GET $loc" || return 0
  check_eq "resume: Range after restart" "0-$((half - 1))" "$(header Range)"
  loc=$(next_location "$REG" "$loc")
  http PATCH "$loc" -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: $half-$((size - 1))" --data-binary "@$WORK/resume.2"
  check_status "resume: PATCH second half" 202 "PATCH $loc (Content-Range $half-$((size - 1)))" || return 0
  loc=$(next_location "$REG" "$loc")
  http PUT "$(with_digest "$loc" "$digest")"
  check_status "resume: PUT ?digest" 201 "PUT $(with_digest "$loc" "$digest")" || return 0
  check_blob "$REG" "$api" "$digest" "$f" "resume: blob"
}

# Every regular file under DATA/blobs is a complete blob: its name is a
# 64-hex sha256 and its content hashes to it. Prints offenders.
blob_store_consistent() {
  local dir="$DATA/blobs" f n=0 bad=0 name
  [ -d "$dir" ] || { echo "no $dir"; return 1; }
  while IFS= read -r -d '' f; do
    name=$(basename "$f")
    if [[ $name =~ ^[0-9a-f]{64}$ ]]; then
      n=$((n + 1))
      [ "$(sha256_of "$f")" = "$name" ] || { echo "content does not match name: $f ($(stat -c %s "$f") bytes)"; bad=1; }
    else
      echo "not a blob: $f ($(stat -c %s "$f") bytes)"; bad=1
    fi
  done < <(find "$dir" -type f -print0)
  echo "$n blobs checked"
  [ "$n" -gt 0 ] && [ "$bad" -eq 0 ]
}

# SIGKILL while a large monolithic upload streams in: after restart the blob
# does not exist, no partial file sits among the blobs, and older images are
# intact.
scenario_sigkill_mid_upload() {
  local f="$WORK/big.bin" api="$API/e2e/big"
  head -c 300M /dev/urandom >"$f"
  local digest; digest="sha256:$(sha256_of "$f")"
  curl -sS -o /dev/null --max-time 60 --limit-rate 20M -H 'Expect:' -X POST \
    -H 'Content-Type: application/octet-stream' --data-binary "@$f" \
    "$REG$api/blobs/uploads/?digest=$digest" >/dev/null 2>&1 &
  local curl_pid=$!
  BG_PIDS+=("$curl_pid")
  sleep 3
  if kill -0 "$curl_pid" 2>/dev/null; then
    ok "sigkill: upload still streaming after 3 s"
  else
    not_ok "sigkill: upload still streaming after 3 s (it finished early, test is void)"
  fi
  kill9_berth
  # curl sees the connection die; bound the wait anyway.
  local _
  for _ in $(seq 1 100); do kill -0 "$curl_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$curl_pid" 2>/dev/null || true
  wait "$curl_pid" 2>/dev/null || true

  start_berth || bail "sigkill: server starts after SIGKILL"
  ok "sigkill: server starts after SIGKILL"
  http HEAD "$REG$api/blobs/$digest"
  check_status "sigkill: interrupted blob does not exist" 404 "HEAD $REG$api/blobs/$digest" || true
  if is_berth; then
    check "sigkill: every file under DATA/blobs is a complete blob named by its sha256" blob_store_consistent
  fi
  verify_all_pushed "after sigkill"
}

# ------------------------------------------------------------------- main ---

main() {
  local pkgs=(skopeo umoci jq curl nginx)
  is_berth || pkgs+=(docker-registry)
  ensure_packages "${pkgs[@]}"

  WORK=$(mktemp -d /tmp/berth-e2e.XXXXXX)
  DATA="$WORK/data"
  BERTH_LOG="$WORK/berth.log"
  mkdir -p "$DATA"
  echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$WORK/policy.json"
  echo '{}' >"$WORK/auth.json"
  export REGISTRY_AUTH_FILE="$WORK/auth.json" # never read the machine's credentials

  if is_berth; then
    [ -x "$BERTH_BIN" ] || bail "berth binary exists at $BERTH_BIN"
    PREFIX="docker-hosted/"
  else
    PREFIX=""
  fi
  BERTH_PORT=$(free_port)
  NGINX_PORT=$(free_port)
  REG="http://127.0.0.1:$BERTH_PORT"
  API="/v2/${PREFIX%/}"
  API=${API%/}

  build_images

  start_berth || bail "server starts and answers GET /v2/"
  ok "server starts and answers GET /v2/"
  start_nginx || bail "nginx (Nexus-style reverse proxy) starts"
  ok "nginx (Nexus-style reverse proxy) starts"

  echo "# --- repository path: 127.0.0.1:$BERTH_PORT/${PREFIX}direct/..."
  scenario_skopeo "127.0.0.1:$BERTH_PORT/${PREFIX}direct" "repository path"
  scenario_chunked_upload "$REG" "$API/e2e/chunk" "repository path" "$API/e2e/chunk/blobs/uploads/"

  echo "# --- nexus path via nginx: 127.0.0.1:$NGINX_PORT/nexus/..."
  scenario_skopeo "127.0.0.1:$NGINX_PORT/nexus" "nexus path"
  local nexus_uploads=/v2/nexus/chunk/blobs/uploads/
  is_berth && nexus_uploads=/repository/docker-hosted/v2/nexus/chunk/blobs/uploads/
  scenario_chunked_upload "http://127.0.0.1:$NGINX_PORT" "/v2/nexus/chunk" "nexus path" "$nexus_uploads"
  if is_berth; then scenario_nexus_raw; fi

  echo "# --- restart persistence"
  scenario_restart_persistence
  echo "# --- upload resume across restart"
  scenario_resume_after_restart
  echo "# --- SIGKILL in the middle of an upload"
  scenario_sigkill_mid_upload

  stop_berth
  print_summary
  if [ "$FAILED" -ne 0 ]; then exit 1; fi
}

trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
# Report where an unexpected failure aborted the script (set -e); failures
# inside $(...) are expected by the checks and are not reported.
set -E
trap 'rc=$?; [ "$BASH_SUBSHELL" -eq 0 ] && echo "# error: line $LINENO: $BASH_COMMAND (exit $rc)" >&2' ERR
main "$@"
