# shellcheck shell=bash
# e2e/lib.sh: what the end-to-end scripts (hosted.sh, frontdoor.sh, proxy.sh) share. Sourced, not
# run:  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   (after `set -euo pipefail`).
#
# Provides
#   setup       BERTH_BIN default; no proxy from the environment; ensure_packages; make_work
#               ($WORK with a skopeo policy and an empty auth file)
#   reporting   ok, not_ok, passed (LAST_OK: did the latest check pass), check, check_eq,
#               check_fails, bail, section, print_summary ("N passed, M failed")
#   processes   PIDS (servers by name), BG_PIDS (background clients), started, stop_process,
#               stop_pid, stop_checked, await_server, cleanup and install_traps (EXIT/TERM/INT/ERR;
#               cleanup stops every process, then runs the script's on_cleanup function if any)
#   registry    free_port, sha256_of, sk (skopeo), tls_flags, remote_digest, push, pull_and_compare
#   HTTP        http, header, show_response, check_status, error_code, http_code, wait_status,
#               abs_url, next_location, with_digest, location_path
#   OCI layouts layout_digest, blob_path, reachable_blobs, same_blobs
#   images      add_layer, build_app_and_multi ($SRC/app and $SRC/multi)
#   servers     wait_for_binary, start_berth and launch_berth (with a config file), write_distribution_config,
#               start_distribution (Debian's docker-registry), start_nginx
#
# Settings the scripts give (read when a function runs): SKOPEO_TIMEOUT, CURL_TIMEOUT (seconds);
# optional: CURL_OPTS (more curl args for http/http_code, e.g. --cacert), CERTS (skopeo --cert-dir
# for MODE "tls"), CA_CRT (token auth of start_distribution), E2E_TIMING=1 (section and total
# times), PULL_CHECK (wording of pull_and_compare's blob check, REF stands for the reference).

BERTH_BIN=${BERTH_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.build/debug/berth}

# Loopback only: never send test traffic through a proxy from the environment.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY='*' no_proxy='*'

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

# make_work NAME: a fresh temp dir $WORK (/tmp/NAME.XXXXXX) with a skopeo policy that accepts
# anything and an empty auth file (never read the machine's credentials).
make_work() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$WORK/policy.json"
  echo '{}' >"$WORK/auth.json"
  export REGISTRY_AUTH_FILE="$WORK/auth.json"
}

# ------------------------------------------------------------ reporting ---

PASSED=0
FAILED=0
SUMMARY_PRINTED=0
START_TIME=$(date +%s)

# LAST_OK: 1 if the latest check passed (check and check_eq always return 0, so that a failed
# check never stops the script under set -e; callers that depend on it test passed).
LAST_OK=0
ok() { PASSED=$((PASSED + 1)); LAST_OK=1; echo "ok - $*"; }
not_ok() { FAILED=$((FAILED + 1)); LAST_OK=0; echo "not ok - $*"; }
passed() { [ "$LAST_OK" = 1 ]; }

# check DESCRIPTION COMMAND...: passes if COMMAND exits 0; its output goes to $WORK/check.out and
# is shown (tail) only on failure.
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
    echo "#   actual:   $3" | head -n 15
  fi
}

# check_fails DESCRIPTION COMMAND...: passes if COMMAND fails; shows its output (tail) on failure,
# and its last line as a comment on success (the error message a user would see).
check_fails() {
  local desc=$1; shift
  if "$@" >"$WORK/check.out" 2>&1; then
    not_ok "$desc (the command succeeded)"
    sed 's/^/#   /' "$WORK/check.out" | tail -n 5
  else
    ok "$desc"
    tail -n 1 "$WORK/check.out" | cut -c1-300 | sed 's/^/#   error: /'
  fi
}

print_summary() {
  [ "$SUMMARY_PRINTED" -eq 1 ] && return 0
  SUMMARY_PRINTED=1
  [ "${E2E_TIMING:-0}" = 1 ] && echo "# total time: $(($(date +%s) - START_TIME)) s"
  echo "$PASSED passed, $FAILED failed"
}

# section TITLE: a "# --- TITLE" line (with E2E_TIMING=1, after the previous section's time).
SECTION_START=0
section() {
  if [ "${E2E_TIMING:-0}" = 1 ]; then
    [ "$SECTION_START" -gt 0 ] && echo "#   ($(($(date +%s) - SECTION_START)) s)"
    SECTION_START=$(date +%s)
  fi
  echo "# --- $*"
}

# Stop here: later scenarios make no sense (e.g. the server does not start).
BAILED=0
bail() {
  not_ok "$*"
  BAILED=1
  exit 1
}

# ------------------------------------------------------------- processes ---

WORK=""
declare -A PIDS=() # name -> pid of every server a script started
BG_PIDS=()         # background clients

# started NAME: record the last background process ($!) as server NAME.
started() { PIDS[$1]=$!; }

# stop_process PID [SECONDS]: SIGTERM, wait (<= SECONDS, default 20) for it to exit, then SIGKILL;
# reaps it. Returns 1 if SIGKILL was needed.
stop_process() {
  local pid=$1 secs=${2:-20} _ rc=0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((secs * 5))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    rc=1
  fi
  wait "$pid" 2>/dev/null || true
  return $rc
}

# stop_pid NAME [SECONDS]: stop_process on server NAME (if it runs) and forget it.
stop_pid() {
  local name=$1 pid=${PIDS[$1]:-} rc=0
  [ -n "$pid" ] || return 0
  stop_process "$pid" "${2:-20}" || rc=1
  unset "PIDS[$name]"
  return $rc
}

# stop_checked NAME LABEL: stop server NAME (if it runs) and check that it exits within 20 s of
# SIGTERM.
stop_checked() {
  [ -n "${PIDS[$1]:-}" ] || return 0
  if stop_pid "$1"; then ok "$2 exits within 20 s of SIGTERM"; else not_ok "$2 exits within 20 s of SIGTERM"; fi
}

# await_server NAME LOG URL [STATUS] [SECONDS]: wait (<= SECONDS, default 30) until URL answers
# STATUS (default 200) while server NAME runs. On failure it shows LOG's tail and returns 1 (a
# server that exited is reaped and forgotten).
await_server() {
  local name=$1 log=$2 url=$3 want=${4:-200} secs=${5:-30} pid=${PIDS[$1]} code="" _
  for _ in $(seq 1 $((secs * 5))); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      unset "PIDS[$name]"
      echo "# $name exited during startup; log:"; tail -n 40 "$log" | sed 's/^/#   /'
      return 1
    fi
    code=$(http_code "$url")
    [ "$code" = "$want" ] && return 0
    sleep 0.2
  done
  echo "# $name: $url did not answer $want within $secs s (last: $code); log:"
  tail -n 40 "$log" | sed 's/^/#   /'
  return 1
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT ERR
  local pid name
  for pid in "${BG_PIDS[@]}" "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${BG_PIDS[@]}"; do stop_process "$pid"; done
  for name in "${!PIDS[@]}"; do stop_pid "$name"; done
  if declare -F on_cleanup >/dev/null; then on_cleanup; fi
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

# Call right before main.
install_traps() {
  trap cleanup EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
  # Report where an unexpected failure aborted the script (set -e); failures inside $(...) are
  # expected by the checks and are not reported.
  set -E
  trap 'rc=$?; [ "$BASH_SUBSHELL" -eq 0 ] && echo "# error: line $LINENO: $BASH_COMMAND (exit $rc)" >&2' ERR
}

# -------------------------------------------------------------- registry ---

USED_PORTS=" "
# free_port VAR: set VAR to a loopback TCP port nobody listens on and not handed out before
# (bounded number of tries). Not in $(...): the shell must remember the ports it handed out.
# Without VAR it prints the port (then, in $(...), it is not remembered).
# Ports come from below the kernel's ephemeral range: a port inside it can be taken as the source
# port of any outgoing connection between this check and the server's bind (CI saw exactly that).
free_port() {
  local free_port_p _ eph_low
  eph_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "${eph_low:-0}" -gt 12000 ] 2>/dev/null || eph_low=32768
  for _ in $(seq 1 200); do
    free_port_p=$((10000 + RANDOM % (eph_low - 10000)))
    [[ $USED_PORTS == *" $free_port_p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$free_port_p") 2>/dev/null; then
      USED_PORTS+="$free_port_p "
      if [ $# -gt 0 ]; then printf -v "$1" '%s' "$free_port_p"; else echo "$free_port_p"; fi
      return 0
    fi
  done
  return 1
}

sha256_of() { openssl dgst -sha256 -r "$1" | cut -c1-64; }

sk() { timeout "$SKOPEO_TIMEOUT" skopeo --policy "$WORK/policy.json" "$@"; }

# tls_flags MODE [KIND]: skopeo's flag for MODE "tls" (verify with the certificates in $CERTS) or
# "plain" (http); KIND src or dest makes it --src-... / --dest-....
tls_flags() {
  local prefix=${2:+--$2-}
  prefix=${prefix:---}
  if [ "$1" = tls ]; then echo "${prefix}cert-dir=$CERTS"; else echo "${prefix}tls-verify=false"; fi
}

# remote_digest REF [MODE]: digest of the manifest a registry serves for REF (docker://...),
# computed from the raw bytes.
remote_digest() {
  local raw
  raw=$(mktemp "$WORK/raw.XXXXXX")
  sk inspect "$(tls_flags "${2:-plain}" "")" --raw "$1" >"$raw" || return 1
  echo "sha256:$(sha256_of "$raw")"
}

# push DESCRIPTION SRC DEST [MODE]: check that skopeo copies SRC (all of an index) to DEST.
push() {
  check "$1" sk copy --quiet --all --preserve-digests "$(tls_flags "${4:-plain}" dest)" "$2" "$3"
}

# pull_and_compare REF LAYOUT DIGEST LABEL [MODE]: the registry serves DIGEST for REF (raw
# manifest bytes) and a pull of REF (--all: index children too) into a fresh OCI layout yields
# exactly the blobs of LAYOUT reachable from DIGEST, byte-identical.
pull_and_compare() {
  local ref=$1 layout=$2 digest=$3 label=$4 mode=${5:-plain}
  check_eq "$label: manifest digest of $ref" "$digest" "$(remote_digest "$ref" "$mode" 2>"$WORK/err" || cat "$WORK/err")"
  local out; out=$(mktemp -d "$WORK/pull.XXXXXX")
  if sk copy --quiet --all --preserve-digests "$(tls_flags "$mode" src)" "$ref" "oci:$out:pulled" >"$WORK/err" 2>&1; then
    local what=${PULL_CHECK:-"pulled REF has identical manifest and blobs"}
    check "$label: ${what/REF/"$ref"}" same_blobs "$layout" "$out" "$digest"
  else
    not_ok "$label: pull $ref"; sed 's/^/#   /' "$WORK/err" | tail -n 10
  fi
  rm -rf "$out"
}

# ------------------------------------------------------------------ HTTP ---

CURL_OPTS=()

# http METHOD URL [curl args...]: sets HTTP_STATUS, response headers in $WORK/resp.headers and
# body in $WORK/resp.body. Never fails (status 000 on transport errors) so callers can check the
# status.
http() {
  local method=$1 url=$2; shift 2
  local verb=(-X "$method") out="$WORK/resp.body"
  [ "$method" = HEAD ] && { verb=(--head); out=/dev/null; }
  : >"$WORK/resp.body"
  HTTP_STATUS=$(curl -sS "${verb[@]}" -H 'Expect:' --max-time "$CURL_TIMEOUT" "${CURL_OPTS[@]}" \
    -o "$out" -D "$WORK/resp.headers" -w '%{http_code}' "$@" "$url" 2>"$WORK/resp.err") || true
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

# check_status DESCRIPTION EXPECTED "request description": fails (after reporting) if the last
# response's status is not EXPECTED, so that callers can skip steps that depend on it.
check_status() {
  if [ "$HTTP_STATUS" = "$2" ]; then
    ok "$1"
  else
    not_ok "$1 (expected $2, got $HTTP_STATUS)"
    show_response "$3"
    return 1
  fi
}

# error_code [NONE]: OCI error code of the last response body (first error), or NONE (default
# empty) if the body is not an OCI error.
error_code() { jq -r --arg none "${1:-}" '.errors[0].code // $none' "$WORK/resp.body" 2>/dev/null || echo "${1:-}"; }

# http_code URL [curl args]: the status URL answers (000 if none within 2 s).
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${CURL_OPTS[@]}" "${@:2}" "$1" || true; }

# wait_status URL STATUS SECONDS [curl args]: poll until URL answers STATUS.
wait_status() {
  local url=$1 want=$2 secs=$3; shift 3
  local code="" _
  for _ in $(seq 1 $((secs * 5))); do
    code=$(http_code "$url" "$@")
    [ "$code" = "$want" ] && return 0
    sleep 0.2
  done
  echo "# $url answered $code, not $want, within $secs s"
  return 1
}

# abs_url BASE URL: upload URLs may come back absolute or as a path; resolve against BASE.
abs_url() {
  case $2 in
    http://* | https://*) echo "$2" ;;
    /*) echo "$1$2" ;;
    *) echo "$1/$2" ;;
  esac
}

# next_location BASE [FALLBACK]: absolute URL of the last response's Location; FALLBACK (if
# given) when the response has none.
next_location() {
  local loc; loc=$(header Location)
  if [ -z "$loc" ]; then
    [ -n "${2:-}" ] || return 1
    echo "$2"; return 0
  fi
  abs_url "$1" "$loc"
}

# with_digest URL DIGEST: append digest=... to an upload URL that may already carry a query.
with_digest() {
  case $1 in
    *\?*) echo "$1&digest=$2" ;;
    *) echo "$1?digest=$2" ;;
  esac
}

# Location of the last response, as a path (scheme and authority stripped).
location_path() { header Location | sed -E 's|^https?://[^/]*||'; }

# ------------------------------------------------------------ OCI layouts ---

# layout_digest DIR TAG: digest of the manifest tagged TAG in OCI layout DIR.
layout_digest() {
  jq -r --arg t "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$1/index.json"
}

blob_path() { echo "$1/blobs/${2%%:*}/${2#*:}"; }

# reachable_blobs DIR DIGEST: every blob digest reachable from manifest/index DIGEST in layout DIR
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

# same_blobs SRC OUT DIGEST: pulled-back layout OUT (tag "pulled") holds exactly the blobs
# reachable from DIGEST in SRC, each byte-identical (its sha256 equals its name), and its tag
# "pulled" is DIGEST.
same_blobs() {
  local src=$1 out=$2 digest=$3 d f expected actual
  expected=$(reachable_blobs "$src" "$digest" | sort -u)
  actual=$(cd "$out/blobs" && find . -type f | sed 's|^\./||; s|/|:|' | sort -u)
  if [ "$expected" != "$actual" ]; then
    echo "blob sets differ (expected vs pulled):"; diff <(echo "$expected") <(echo "$actual") || true
    return 1
  fi
  for d in $expected; do
    f=$(blob_path "$out" "$d")
    [ "sha256:$(sha256_of "$f")" = "$d" ] || { echo "corrupt blob $f"; return 1; }
  done
  [ "$(layout_digest "$out" pulled)" = "$digest" ] || { echo "pulled manifest is not $digest"; return 1; }
  echo "$(echo "$expected" | wc -l) blobs identical"
}

# ---------------------------------------------------------------- images ---

# add_layer IMG:TAG SPEC...: add a layer with the given files to the image (umoci unpack/repack
# cycle, like a Dockerfile step). SPEC: "src:dest-in-rootfs", or "random:SIZE:dest" for
# incompressible data.
add_layer() {
  local ref=$1; shift
  local bundle="$WORK/bundle" spec src dest size
  rm -rf "$bundle"
  umoci unpack --rootless --image "$ref" "$bundle" >/dev/null
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

# shellcheck disable=SC2034 # the digests are read by the scripts
# build_app_and_multi: SRC=$WORK/src with
#   $SRC/app:   tags "app" (3 layers, one 20 MiB random; entrypoint) and "small" (its first layer)
#   $SRC/multi: tag "1", an OCI index of a linux/amd64 and a linux/arm64 image, each with real
#               layers
# and APP_DIGEST, SMALL_DIGEST, MULTI_DIGEST, MULTI_INDEX (the index's JSON file) set.
build_app_and_multi() {
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
  local ms="$WORK/multi-src" arch
  umoci init --layout "$ms"
  for arch in amd64 arm64; do
    umoci new --image "$ms:$arch"
    echo "$arch" >"$WORK/arch.txt"
    add_layer "$ms:$arch" /etc/os-release:/etc/os-release "$WORK/arch.txt:/etc/e2e-arch"
    add_layer "$ms:$arch" "random:3M:/opt/e2e/$arch.bin"
    umoci config --image "$ms:$arch" --architecture "$arch" --os linux
  done
  umoci gc --layout "$ms"

  MULTI_INDEX="$WORK/index.json"
  jq -n --slurpfile l "$ms/index.json" '
    def child($a): $l[0].manifests[]
      | select(.annotations["org.opencontainers.image.ref.name"] == $a)
      | {mediaType, digest, size, platform: {architecture: $a, os: "linux"}};
    {schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
     manifests: [child("amd64"), child("arm64")]}' >"$MULTI_INDEX"
  local hex; hex=$(sha256_of "$MULTI_INDEX")
  local multi="$SRC/multi"
  mkdir -p "$multi/blobs"
  cp -a "$ms/blobs/sha256" "$multi/blobs/"
  cp "$MULTI_INDEX" "$multi/blobs/sha256/$hex"
  cp "$ms/oci-layout" "$multi/oci-layout"
  jq -n --arg d "sha256:$hex" --argjson s "$(stat -c %s "$MULTI_INDEX")" '
    {schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.index.v1+json",
      digest: $d, size: $s, annotations: {"org.opencontainers.image.ref.name": "1"}}]}' >"$multi/index.json"

  APP_DIGEST=$(layout_digest "$app" app)
  SMALL_DIGEST=$(layout_digest "$app" small)
  MULTI_DIGEST=$(layout_digest "$multi" 1)
}

# --------------------------------------------------------------- servers ---

# Wait for the berth binary (it may be rebuilt in place while we run), <= 3 minutes.
wait_for_binary() {
  local _
  for _ in $(seq 1 90); do
    [ -x "$BERTH_BIN" ] && return 0
    sleep 2
  done
  return 1
}

# start_berth NAME CONFIG DATA MAIN_PORT: start `berth serve` as server NAME (log $WORK/NAME.log)
# and wait for GET /v2/ on its main listener.
start_berth() {
  launch_berth "$1" "$2" "$3"
  await_server "$1" "$WORK/$1.log" "http://127.0.0.1:$4/v2/"
}

# launch_berth NAME CONFIG DATA: start_berth without waiting (to start several at once).
launch_berth() {
  local name=$1 config=$2 data=$3 log="$WORK/$1.log"
  mkdir -p "$data"
  echo "# --- start $(date +%T) ---" >>"$log"
  # cwd elsewhere: certificate paths must resolve relative to the config file's folder.
  (wait_for_binary; cd / && exec "$BERTH_BIN" serve --config "$config" --data "$data") >>"$log" 2>&1 &
  started "$name"
}

# write_distribution_config FILE STORAGE_DIR PORT: configuration of Debian's docker-registry on
# 127.0.0.1:PORT with access log and deletes on; its fixed secret keeps upload state valid across
# restarts.
write_distribution_config() {
  cat >"$1" <<EOF
version: 0.1
log: { level: info, accesslog: { disabled: false } }
storage:
  filesystem: { rootdirectory: $2 }
  delete: { enabled: true }
http:
  addr: 127.0.0.1:$3
  secret: e2e-fixed-secret-so-upload-state-survives-restarts
EOF
}

# start_distribution NAME PORT [token|htpasswd]: docker-registry as server NAME on 127.0.0.1:PORT,
# storage and log ("log") under $WORK/NAME. With "token" it demands Bearer tokens (GET /v2/
# answers 401 with a token realm; CA_CRT is its root certificate bundle); with "htpasswd" HTTP
# basic auth as user/pass.
start_distribution() {
  local name=$1 port=$2 dir="$WORK/$1" want=200
  mkdir -p "$dir/storage"
  write_distribution_config "$dir/config.yml" "$dir/storage" "$port"
  case ${3:-} in
    token)
      want=401
      cat >>"$dir/config.yml" <<EOF
auth:
  token: {realm: "http://127.0.0.1:$port/token", service: e2e-registry, issuer: e2e-issuer, rootcertbundle: $CA_CRT}
EOF
      ;;
    htpasswd)
      want=401
      htpasswd -Bbn user pass >"$dir/htpasswd"
      cat >>"$dir/config.yml" <<EOF
auth: { htpasswd: { realm: basic-realm, path: $dir/htpasswd } }
EOF
      ;;
  esac
  # REGISTRY_* variables override docker-registry's configuration: keep ours out.
  env -u REGISTRY_AUTH_FILE /usr/bin/docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  started "$name"
  await_server "$name" "$dir/log" "http://127.0.0.1:$port/v2/" "$want" 30
}

# start_nginx NAME PORT [SCHEME]: nginx as server NAME with its own prefix $WORK/NAME, serving
# $WORK/NAME/proxy.conf (written by the caller) inside its http block; waits (<= 20 s) for
# GET SCHEME://127.0.0.1:PORT/v2/ (SCHEME default https) to answer 200.
start_nginx() {
  local name=$1 port=$2 scheme=${3:-https} dir="$WORK/$1" user_line=""
  mkdir -p "$dir/logs" "$dir/tmp"
  [ "$(id -u)" = 0 ] && user_line="user root;"
  cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log info;
events { worker_connections 256; }
http {
  access_log $dir/logs/access.log;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  include $dir/proxy.conf;
}
EOF
  if ! nginx -t -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" >"$dir/logs/t.log" 2>&1; then
    sed 's/^/#   /' "$dir/logs/t.log"
    return 1
  fi
  nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" -g 'daemon off;' >"$dir/logs/stdout.log" 2>&1 &
  started "$name"
  await_server "$name" "$dir/logs/error.log" "$scheme://127.0.0.1:$port/v2/" 200 20
}
