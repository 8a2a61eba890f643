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

# shellcheck source=e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

E2E_BACKEND=${E2E_BACKEND:-berth}
# Read by lib.sh: seconds per skopeo invocation (a hang must not stall CI) and per curl request.
# shellcheck disable=SC2034
SKOPEO_TIMEOUT=300 CURL_TIMEOUT=180

is_berth() { [ "$E2E_BACKEND" = berth ]; }

# ---------------------------------------------------------------- images ---

# $SRC/app: a 3-layer image (tags "small" = 1 layer, "app" = 3 layers +
# entrypoint). $SRC/multi: a layout whose only entry is an OCI index "1" of a
# linux/amd64 and a linux/arm64 image, each with real layers.
build_images() {
  build_app_and_multi
  local arm64_digest
  arm64_digest=$(jq -r '.manifests[] | select(.platform.architecture == "arm64") | .digest' "$MULTI_INDEX")
  ARM64_LAYERS=$(jq '.layers | length' "$(blob_path "$SRC/multi" "$arm64_digest")")
  APP_LAYERS=$(jq '.layers | length' "$(blob_path "$SRC/app" "$APP_DIGEST")")
  echo "# built app $APP_DIGEST ($APP_LAYERS layers), index $MULTI_DIGEST"
}

# --------------------------------------------------------------- servers ---

DATA=""
BERTH_LOG=""

# Berth (or, with E2E_BACKEND=distribution, docker-registry) as server "berth" on
# BERTH_PORT with data in DATA; waits for GET /v2/.
start_server() {
  echo "# --- start $(date +%T) ---" >>"$BERTH_LOG"
  if is_berth; then
    "$BERTH_BIN" serve --listen "127.0.0.1:$BERTH_PORT" --data "$DATA" >>"$BERTH_LOG" 2>&1 &
  else
    write_distribution_config "$WORK/registry.yml" "$DATA" "$BERTH_PORT"
    env -u REGISTRY_AUTH_FILE docker-registry serve "$WORK/registry.yml" >>"$BERTH_LOG" 2>&1 &
  fi
  started berth
  await_server berth "$BERTH_LOG" "$REG/v2/"
}

# SIGTERM and wait (<= 20 s) for the process to exit.
stop_server() { stop_checked berth server; }

kill9_server() {
  kill -KILL "${PIDS[berth]}" 2>/dev/null || true
  wait "${PIDS[berth]}" 2>/dev/null || true
  unset "PIDS[berth]"
}

restart_server() {
  stop_server
  start_server || bail "server restarts on the same data dir"
  ok "server restarts on the same data dir"
}

# nginx in front of Berth, shaped like Sonatype's "Docker behind a reverse
# proxy" guide: /v2 is rewritten to /repository/docker-hosted/$request_uri
# (which yields ".../docker-hosted//v2/..."), everything else (notably the
# upload Location paths Berth hands out) is passed through unchanged.
start_nexus_nginx() {
  local target
  if is_berth; then
    target="http://127.0.0.1:$BERTH_PORT/repository/docker-hosted/\$request_uri"
  else
    target="http://127.0.0.1:$BERTH_PORT\$request_uri"
  fi
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx/proxy.conf" <<CONF
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
CONF
  start_nginx nginx "$NGINX_PORT" http
}

# ----------------------------------------------------- image round trips ---

# Images pushed so far, re-verified after restarts: "REF|LAYOUT|DIGEST".
PUSHED=()

# Everything skopeo does against one access method. BASE is what goes after
# docker:// (host:port plus repository prefix), LABEL names the method.
scenario_skopeo() {
  local base=$1 label=$2
  local app="$base/app" multi="$base/multi"

  # Push: one image under 3 tags, a different image (to delete later), an index.
  local t
  for t in 1 2 3; do push "push oci:$SRC/app:app -> docker://$app:$t" "oci:$SRC/app:app" "docker://$app:$t"; done
  push "push oci:$SRC/app:small -> docker://$app:old" "oci:$SRC/app:small" "docker://$app:old"
  check_eq "$label: manifest digest of $app:old" "$SMALL_DIGEST" "$(remote_digest "docker://$app:old" 2>&1)"
  push "push oci:$SRC/multi:1 -> docker://$multi:1" "oci:$SRC/multi:1" "docker://$multi:1"

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
    local path; path=$(location_path)
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
  restart_server
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

  restart_server

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
  kill9_server
  # curl sees the connection die; bound the wait anyway.
  local _
  for _ in $(seq 1 100); do kill -0 "$curl_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$curl_pid" 2>/dev/null || true
  wait "$curl_pid" 2>/dev/null || true

  start_server || bail "sigkill: server starts after SIGKILL"
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
  local pkgs=(skopeo umoci jq curl nginx openssl)
  is_berth || pkgs+=(docker-registry)
  ensure_packages "${pkgs[@]}"

  make_work berth-e2e
  DATA="$WORK/data"
  BERTH_LOG="$WORK/berth.log"
  mkdir -p "$DATA"

  if is_berth; then
    wait_for_binary || bail "berth binary exists at $BERTH_BIN"
    PREFIX="docker-hosted/"
  else
    PREFIX=""
  fi
  free_port BERTH_PORT
  free_port NGINX_PORT
  REG="http://127.0.0.1:$BERTH_PORT"
  API="/v2/${PREFIX%/}"
  API=${API%/}

  build_images

  start_server || bail "server starts and answers GET /v2/"
  ok "server starts and answers GET /v2/"
  start_nexus_nginx || bail "nginx (Nexus-style reverse proxy) starts"
  ok "nginx (Nexus-style reverse proxy) starts"

  section "repository path: 127.0.0.1:$BERTH_PORT/${PREFIX}direct/..."
  scenario_skopeo "127.0.0.1:$BERTH_PORT/${PREFIX}direct" "repository path"
  scenario_chunked_upload "$REG" "$API/e2e/chunk" "repository path" "$API/e2e/chunk/blobs/uploads/"

  section "nexus path via nginx: 127.0.0.1:$NGINX_PORT/nexus/..."
  scenario_skopeo "127.0.0.1:$NGINX_PORT/nexus" "nexus path"
  local nexus_uploads=/v2/nexus/chunk/blobs/uploads/
  is_berth && nexus_uploads=/repository/docker-hosted/v2/nexus/chunk/blobs/uploads/
  scenario_chunked_upload "http://127.0.0.1:$NGINX_PORT" "/v2/nexus/chunk" "nexus path" "$nexus_uploads"
  if is_berth; then scenario_nexus_raw; fi

  section "restart persistence"
  scenario_restart_persistence
  section "upload resume across restart"
  scenario_resume_after_restart
  section "SIGKILL in the middle of an upload"
  scenario_sigkill_mid_upload

  stop_server
  print_summary
  if [ "$FAILED" -ne 0 ]; then exit 1; fi
}

install_traps
main "$@"
