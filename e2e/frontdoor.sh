#!/usr/bin/env bash
# End-to-end test of Berth's front door: listeners, TLS with SNI, port / host / wildcard /
# subdomain routes, the pull/push split, upstream (reverse-proxy) routes, SIGHUP reloads, and
# `berth proxy-config` for those who keep nginx or Apache httpd in front of Berth.
#
# Real clients and servers only: skopeo (images built with umoci), curl, openssl, Debian's
# docker-registry (CNCF distribution) behind an upstream route, nginx and Apache httpd.
#
#   1. a test CA and certificates (openssl); test host names in /etc/hosts (removed on exit)
#   2. `berth config check` accepts the config and refuses a broken one (exit 2, FILE:LINE:COL:)
#   3. TLS push + pull with matching digests through every access method: port route, exact host,
#      wildcard host, {repo} subdomain, pull/push split, repository path and Nexus path; the
#      certificate picked by SNI (first one by default); upload Locations in the client's terms
#   4. unknown hosts and unknown {repo} subdomains get 404 NAME_UNKNOWN, never other content
#   5. upstream routes: docker-registry behind Berth (push, pull, Location and token realm
#      rewritten), an upstream URL with a path (Nexus-style), 502 + OCI error once it is down
#   6. nginx and Apache httpd in front of a routes-less Berth, with the configuration
#      `berth proxy-config` generates (port, pull/push split and {repo} routes; certificate paths
#      and listen addresses checked) and with hand-written guide-shaped ones
#      (e2e/frontdoor/*.conf.in): multi-layer pushes/pulls and one large monolithic blob each
#   7. SIGHUP reload: a new host route works; a broken file is refused, old routes keep working
#
# Usage:  bash e2e/frontdoor.sh      (as root: edits /etc/hosts, installs missing Debian packages)
# Env:    BERTH_BIN     berth binary (default /work/main/.build/debug/berth)
#         E2E_BIG_MIB   size of the large blob in MiB (default 1024)
#         E2E_KEEP=1    keep the temp dir (it is printed) for post-mortem
# Output: one "ok - ..." / "not ok - ..." line per check, then "N passed, M failed".
set -euo pipefail

# shellcheck source=e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_BIG_MIB=${E2E_BIG_MIB:-1024}
# Read by lib.sh: seconds per skopeo invocation (a hang must not stall CI) and per curl request
# (the large blob included); section and total times; the wording of pull_and_compare's check.
# shellcheck disable=SC2034
SKOPEO_TIMEOUT=300 CURL_TIMEOUT=300 E2E_TIMING=1 PULL_CHECK="pull REF gives identical manifest and blobs"
HOSTS_TAG="# berth-e2e-frontdoor (added by e2e/frontdoor.sh, removed on exit)"
TEST_HOSTS=(project.example.test project-push.example.test anything.wild.example.test
  docker-hosted-project.docker.example.test docker-group-project.docker.example.test
  nope.docker.example.test reload.example.test)
H=docker-hosted-project # the hosted repository
G=docker-group-project  # the "pull" side (groups do not exist yet: a second hosted repository)
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json

# ------------------------------------------------------------- /etc/hosts ---

HOSTS_ADDED=0

hosts_remove() {
  # Rewrite in place (not sed -i: /etc/hosts may be a bind mount); only our tagged lines go.
  local kept
  kept=$(grep -vF -- "$HOSTS_TAG" /etc/hosts || true)
  printf '%s\n' "$kept" >/etc/hosts
}

hosts_add() {
  grep -qF -- "$HOSTS_TAG" /etc/hosts && hosts_remove # left over by a killed run
  HOSTS_ADDED=1
  printf '127.0.0.1 %s %s\n' "${TEST_HOSTS[*]}" "$HOSTS_TAG" >>/etc/hosts
}

# Run by lib.sh's cleanup once every server is stopped.
on_cleanup() {
  if [ "$HOSTS_ADDED" -eq 1 ]; then hosts_remove; fi
}

# ---------------------------------------------------------------- helpers ---

# roundtrip LABEL VARIANT REF MODE: push image VARIANT (a tag of $IMG) to REF and pull it back.
roundtrip() {
  local label=$1 variant=$2 ref=$3 mode=$4
  local digest; digest=$(layout_digest "$IMG" "$variant")
  push "$label: push $ref" "oci:$IMG:$variant" "docker://$ref" "$mode"
  passed || return 0
  pull_and_compare "docker://$ref" "$IMG" "$digest" "$label" "$mode"
}

# refuses LABEL REF MODE: REF cannot be read (skopeo inspect fails).
refuses() {
  if sk inspect "$(tls_flags "$3" "")" --raw "docker://$2" >"$WORK/err" 2>&1; then
    not_ok "$1: docker://$2 must not be readable"
  else
    ok "$1: docker://$2 is not readable ($(grep -o 'manifest unknown\|name unknown\|404[^"]*' "$WORK/err" | head -n 1))"
  fi
}

# expect_error DESCRIPTION STATUS CODES METHOD URL [curl args]: CODES is one OCI error code or
# several separated by "|".
expect_error() {
  local desc=$1 status=$2 code=$3 method=$4 url=$5; shift 5
  http "$method" "$url" "$@"
  local got_code; got_code=$(error_code -)
  if [ "$HTTP_STATUS" = "$status" ] && [[ "|$code|" == *"|$got_code|"* ]]; then
    ok "$desc ($status $got_code)"
  else
    not_ok "$desc (expected $status $code, got $HTTP_STATUS $got_code)"
    show_response "$method $url $*"
  fi
}

# tags_of BASE_URL NAME: comma-joined tags listed at BASE_URL/v2/NAME/tags/list (or "HTTP <status>").
tags_of() {
  http GET "$1/v2/$2/tags/list"
  if [ "$HTTP_STATUS" = 200 ]; then jq -r '.tags // [] | sort | join(",")' "$WORK/resp.body"; else echo "HTTP $HTTP_STATUS"; fi
}

# ---------------------------------------------------------------- images ---

# $IMG: one OCI layout. Tag "base" has two layers; every variant (one per access method, so that
# each push really uploads blobs instead of finding them all in the repository already) adds a
# third layer of its own random bytes.
build_images() {
  IMG="$WORK/src/img"
  mkdir -p "$WORK/src"
  umoci init --layout "$IMG"
  umoci new --image "$IMG:base"
  add_layer "$IMG:base" /etc/os-release:/etc/os-release /etc/debian_version:/etc/debian_version
  add_layer "$IMG:base" "$(command -v jq):/usr/local/bin/jq" "random:2M:/opt/e2e/base.bin"
  umoci config --image "$IMG:base" --config.entrypoint /usr/local/bin/jq --config.cmd=--version
  local v
  for v in "$@"; do
    umoci tag --image "$IMG:base" "$v"
    add_layer "$IMG:$v" "random:3M:/opt/e2e/$v.bin"
  done
  umoci gc --layout "$IMG"
  echo "# built $(($# + 1)) images of 2-3 layers, e.g. port $(layout_digest "$IMG" port)"
}

# ------------------------------------------------------------ certificates ---

# A test CA and three server certificates (RSA, SANs only as modern clients require).
make_certs() {
  local ca="$WORK/ca" fd="$WORK/fd"
  mkdir -p "$ca" "$fd" "$CERTS"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ca/ca.key" -out "$ca/ca.crt" -days 2 \
    -subj "/CN=Berth e2e test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  leaf() { # NAME SANS
    openssl req -new -newkey rsa:2048 -nodes -keyout "$fd/$1.key" -out "$fd/$1.csr" -subj "/CN=$1" 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' "$2" >"$fd/$1.ext"
    openssl x509 -req -in "$fd/$1.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -CAcreateserial \
      -days 2 -extfile "$fd/$1.ext" -out "$fd/$1.crt" 2>/dev/null
    rm -f "$fd/$1.csr" "$fd/$1.ext"
  }
  leaf server "DNS:localhost,IP:127.0.0.1"
  leaf wildcard "DNS:*.docker.example.test,DNS:*.wild.example.test"
  leaf project "DNS:project.example.test,DNS:project-push.example.test,DNS:reload.example.test"
  cp "$ca/ca.crt" "$CERTS/ca.crt" # skopeo --cert-dir: *.crt are CA certificates
  CA_CRT="$ca/ca.crt"
  # shellcheck disable=SC2034 # lib.sh's http, wait_status and await_server verify with the test CA
  CURL_OPTS=(--cacert "$CA_CRT")
  local c
  for c in server wildcard project; do
    openssl verify -CAfile "$CA_CRT" "$fd/$c.crt" >/dev/null || return 1
  done
}

# --------------------------------------------------------------- servers ---

# berth ARGS...: the berth binary, once it is there.
berth() {
  wait_for_binary || { echo "berth binary missing: $BERTH_BIN" >&2; return 127; }
  "$BERTH_BIN" "$@"
}

# Apache httpd with its own config file: start_apache NAME PORT (proxy conf: $WORK/NAME/proxy.conf).
start_apache() {
  local name=$1 port=$2 dir="$WORK/$1" m=/usr/lib/apache2/modules
  mkdir -p "$dir/run" "$dir/lock"
  # Children run as www-data: they must reach the lock folder.
  chmod 711 "$WORK"
  chmod 755 "$dir"
  chown www-data "$dir/lock"
  cat >"$dir/httpd.conf" <<EOF
ServerRoot "$dir"
ServerName 127.0.0.1
PidFile "$dir/httpd.pid"
ErrorLog "$dir/error.log"
LogLevel warn
DefaultRuntimeDir "$dir/run"
Mutex file:$dir/lock default
User www-data
Group www-data
Timeout 300
StartServers 1
LoadModule mpm_event_module $m/mod_mpm_event.so
LoadModule authz_core_module $m/mod_authz_core.so
LoadModule proxy_module $m/mod_proxy.so
LoadModule proxy_http_module $m/mod_proxy_http.so
LoadModule rewrite_module $m/mod_rewrite.so
LoadModule headers_module $m/mod_headers.so
LoadModule ssl_module $m/mod_ssl.so
LogFormat "%h \"%r\" %>s %b %D" e2e
CustomLog "$dir/access.log" e2e
Include "$dir/proxy.conf"
EOF
  if ! apache2 -t -f "$dir/httpd.conf" >"$dir/t.log" 2>&1; then
    sed 's/^/#   /' "$dir/t.log"
    return 1
  fi
  apache2 -f "$dir/httpd.conf" -DFOREGROUND >"$dir/stdout.log" 2>&1 &
  started "$name"
  await_server "$name" "$dir/error.log" "https://127.0.0.1:$port/v2/" 200 20
}

# ------------------------------------------------------------- scenarios ---

# 2. config check
scenario_config_check() {
  local cfg="$WORK/fd/berth.yml" out rc=0
  out=$(berth config check "$cfg" 2>&1) || rc=$?
  check_eq "config check accepts the front-door config (exit 0)" 0 "$rc"
  passed || echo "$out" | sed 's/^/#   /'
  # Broken: a route to an undeclared repository, on a known line.
  local broken="$WORK/fd/broken.yml" line
  cp "$cfg" "$broken"
  echo '  - { host: broken.example.test, repository: docker-undeclared }' >>"$broken"
  line=$(wc -l <"$broken")
  rc=0
  out=$(berth config check "$broken" 2>&1) || rc=$?
  check_eq "config check refuses a route to an undeclared repository with exit 2" 2 "$rc"
  passed || echo "$out" | sed 's/^/#   /'
  if grep -qE "^(berth: )?$broken:$line:[0-9]+: " <<<"$out"; then
    ok "config check names FILE:LINE:COL: of the bad route ($(head -n 1 <<<"$out" | sed "s|$WORK/||"))"
  else
    not_ok "config check names FILE:LINE:COL: of the bad route (expected $broken:$line:COL:)"
    echo "$out" | sed 's/^/#   /' | head -n 5
  fi
}

# 3. every access method, over TLS
scenario_access_methods() {
  local main="http://127.0.0.1:$P_MAIN"

  echo "# port route 127.0.0.1:$P_PUSH -> $H"
  roundtrip "port route" port "127.0.0.1:$P_PUSH/e2e/port:1" tls
  check_eq "port route: push landed in $H" 1 "$(tags_of "$main" "$H/e2e/port")"
  http POST "https://127.0.0.1:$P_PUSH/v2/e2e/loc/blobs/uploads/"
  if check_status "port route: POST blobs/uploads/ starts a session" 202 "POST https://127.0.0.1:$P_PUSH/v2/e2e/loc/blobs/uploads/"; then
    local p; p=$(location_path)
    if [[ $p == /v2/e2e/loc/blobs/uploads/* ]]; then
      ok "port route: upload Location is in the client's terms ($p)"
    else
      not_ok "port route: upload Location is in the client's terms (got $(header Location))"
    fi
  fi

  echo "# exact host project-push.example.test:$P_TLS -> $H"
  roundtrip "exact host" exact "project-push.example.test:$P_TLS/e2e/exact:1" tls
  check_eq "exact host: push landed in $H" 1 "$(tags_of "$main" "$H/e2e/exact")"

  echo "# wildcard host anything.wild.example.test:$P_TLS -> $H"
  roundtrip "wildcard host" wild "anything.wild.example.test:$P_TLS/e2e/wild:1" tls
  check_eq "wildcard host: push landed in $H" 1 "$(tags_of "$main" "$H/e2e/wild")"

  echo "# subdomain $H.docker.example.test:$P_TLS -> $H"
  roundtrip "subdomain" sub "$H.docker.example.test:$P_TLS/e2e/sub:1" tls
  check_eq "subdomain: push landed in $H" 1 "$(tags_of "$main" "$H/e2e/sub")"

  echo "# pull/push split project.example.test:$P_TLS -> pull $G, push $H"
  push "split: push project.example.test:$P_TLS/e2e/split:1" "oci:$IMG:split" "docker://project.example.test:$P_TLS/e2e/split:1" tls
  check_eq "split: push landed in $H" 1 "$(tags_of "$main" "$H/e2e/split")"
  check_eq "split: push did not land in $G" "HTTP 404" "$(tags_of "$main" "$G/e2e/split")"
  refuses "split: reads go to $G" "project.example.test:$P_TLS/e2e/split:1" tls
  expect_error "split: GET manifest of an image only in $H" 404 "NAME_UNKNOWN|MANIFEST_UNKNOWN" GET \
    "https://project.example.test:$P_TLS/v2/e2e/split/manifests/1" -H "Accept: $OCI_MANIFEST"
  roundtrip "port route 127.0.0.1:$P_PULL -> $G" grp "127.0.0.1:$P_PULL/e2e/grp:1" tls
  check_eq "port route $P_PULL: push landed in $G" 1 "$(tags_of "$main" "$G/e2e/grp")"
  pull_and_compare "docker://project.example.test:$P_TLS/e2e/grp:1" "$IMG" "$(layout_digest "$IMG" grp)" "split: image in $G is pullable" tls
  pull_and_compare "docker://$G.docker.example.test:$P_TLS/e2e/grp:1" "$IMG" "$(layout_digest "$IMG" grp)" "subdomain $G" tls

  echo "# repository path and Nexus path on the main listener 127.0.0.1:$P_MAIN"
  roundtrip "repository path" repo "127.0.0.1:$P_MAIN/$H/e2e/repo:1" plain
  local img want
  for img in repo exact; do
    want=$(layout_digest "$IMG" "$img")
    http GET "$main/repository/$H/v2/e2e/$img/manifests/1" -H "Accept: $OCI_MANIFEST"
    if check_status "Nexus path: GET /repository/$H/v2/e2e/$img/manifests/1" 200 "GET $main/repository/$H/v2/e2e/$img/manifests/1"; then
      check_eq "Nexus path: e2e/$img:1 has the pushed digest" "$want" "sha256:$(sha256_of "$WORK/resp.body")"
    fi
  done
  # The main listener keeps repository-path access for any Host.
  http GET "$main/v2/$H/e2e/exact/tags/list" -H 'Host: unrouted.example.test'
  check_status "main listener: unknown Host keeps repository-path access" 200 "GET $main/v2/$H/e2e/exact/tags/list (Host: unrouted.example.test)" || true
}

# 4. unknown hosts on the TLS listener
scenario_unknown_hosts() {
  local host url
  for host in unknown.example.test nope.docker.example.test; do
    url="https://$host:$P_TLS"
    expect_error "unknown host $host: GET /v2/" 404 NAME_UNKNOWN GET "$url/v2/" -k --resolve "$host:$P_TLS:127.0.0.1"
    # Images that exist (e2e/exact in one repository, e2e/grp in the other) must not leak.
    expect_error "unknown host $host: GET manifest of an existing image" 404 NAME_UNKNOWN GET \
      "$url/v2/e2e/exact/manifests/1" -k --resolve "$host:$P_TLS:127.0.0.1" -H "Accept: $OCI_MANIFEST"
    expect_error "unknown host $host: tags/list" 404 NAME_UNKNOWN GET \
      "$url/v2/e2e/grp/tags/list" -k --resolve "$host:$P_TLS:127.0.0.1"
    expect_error "unknown host $host: uploads are refused" 404 NAME_UNKNOWN POST \
      "$url/v2/e2e/leak/blobs/uploads/" -k --resolve "$host:$P_TLS:127.0.0.1"
  done
  check_eq "no upload reached any repository via an unknown host" "HTTP 404,HTTP 404" \
    "$(tags_of "http://127.0.0.1:$P_MAIN" "$H/e2e/leak"),$(tags_of "http://127.0.0.1:$P_MAIN" "$G/e2e/leak")"
}

# 5. upstream route in front of docker-registry
scenario_upstream() {
  local up="127.0.0.1:$P_UP"
  roundtrip "upstream route" upstream "$up/e2e/upstream:1" plain
  check_eq "upstream route: image is on docker-registry itself" "$(layout_digest "$IMG" upstream)" \
    "$(remote_digest "docker://127.0.0.1:$P_DIST/e2e/upstream:1" plain 2>&1)"
  http POST "http://$up/v2/e2e/loc/blobs/uploads/"
  if check_status "upstream route: POST blobs/uploads/" 202 "POST http://$up/v2/e2e/loc/blobs/uploads/"; then
    local loc; loc=$(header Location)
    if [[ $loc != *":$P_DIST"* ]] && { [[ $loc == /* ]] || [[ $loc == "http://$up/"* ]]; }; then
      ok "upstream route: upload Location points at the route, not the upstream ($loc)"
    else
      not_ok "upstream route: upload Location points at the route, not the upstream (got $loc)"
    fi
  fi

  # Token realm of the upstream rewritten to the client's address.
  http GET "http://127.0.0.1:$P_UPT/v2/"
  if check_status "upstream with token auth: GET /v2/ passes the 401 through" 401 "GET http://127.0.0.1:$P_UPT/v2/"; then
    local realm; realm=$(header WWW-Authenticate | grep -o 'realm="[^"]*"' || true)
    check_eq "upstream with token auth: realm points at the route" "realm=\"http://127.0.0.1:$P_UPT/token\"" "$realm"
  fi

  # An upstream URL with a path (an existing Nexus's /repository/<repo>/): Berth's own Nexus path.
  roundtrip "upstream with a path" upnexus "127.0.0.1:$P_UPN/e2e/upnexus:1" plain
  check_eq "upstream with a path: push landed in $H" 1 "$(tags_of "http://127.0.0.1:$P_MAIN" "$H/e2e/upnexus")"
  http POST "http://127.0.0.1:$P_UPN/v2/e2e/loc/blobs/uploads/"
  if check_status "upstream with a path: POST blobs/uploads/" 202 "POST http://127.0.0.1:$P_UPN/v2/e2e/loc/blobs/uploads/"; then
    local lp; lp=$(location_path)
    if [[ $lp == /v2/e2e/loc/blobs/uploads/* ]]; then
      ok "upstream with a path: upload Location loses the upstream's path ($lp)"
    else
      not_ok "upstream with a path: upload Location loses the upstream's path (got $(header Location))"
    fi
  fi

  # An https upstream behind a private CA (ca_file): blob downloads take a TLS connection of their own, the
  # rest the pooled client; both must trust the test CA and check the name.
  roundtrip "https upstream with ca_file" upstls "127.0.0.1:$P_UPS/e2e/upstls:1" plain
  check_eq "https upstream: push landed in $H" 1 "$(tags_of "http://127.0.0.1:$P_MAIN" "$H/e2e/upstls")"
  big_blob "https upstream with ca_file" "http://127.0.0.1:$P_UPS" e2e/upstls
  local path
  for path in /v2/ "/v2/e2e/upstls/blobs/$BIG_DIGEST"; do
    http GET "http://127.0.0.1:$P_UPX$path"
    if [ "$HTTP_STATUS" = 502 ] && grep -q "could not be verified against the system's CAs" "$WORK/resp.body"; then
      ok "https upstream without ca_file: GET $path is a 502 that says the certificate could not be verified"
    else
      not_ok "https upstream without ca_file: GET $path is a 502 that says the certificate could not be verified (got $HTTP_STATUS)"
      show_response "GET http://127.0.0.1:$P_UPX$path"
    fi
  done

  stop_pid distribution || true
  local t0 secs; t0=$(date +%s%N)
  http GET "http://$up/v2/"
  secs=$(( ($(date +%s%N) - t0) / 1000000 ))
  local code; code=$(error_code -)
  if [ "$HTTP_STATUS" = 502 ] && [ "$code" != - ]; then
    ok "upstream down: GET /v2/ answers 502 with an OCI error ($code)"
  else
    not_ok "upstream down: GET /v2/ answers 502 with an OCI error (got $HTTP_STATUS $code)"
    show_response "GET http://$up/v2/"
  fi
  # The upstream's port is closed: the refusal is immediate, so should the answer be.
  if [ "$secs" -le 5000 ]; then
    ok "upstream down: the 502 comes within 5 s ($secs ms)"
  else
    not_ok "upstream down: the 502 comes within 5 s (took $secs ms for a refused connection)"
  fi
}

# 7. SIGHUP reload
scenario_reload() {
  local cfg="$WORK/fd/berth.yml" url="https://reload.example.test:$P_TLS" pid=${PIDS[berth]}
  expect_error "reload: reload.example.test is unknown before the reload" 404 NAME_UNKNOWN GET "$url/v2/"
  cp "$cfg" "$WORK/fd/berth.yml.orig"
  echo "  - { host: reload.example.test, repository: $H }" >>"$cfg"
  berth config check "$cfg" >/dev/null 2>&1 || not_ok "reload: the edited config passes config check"
  kill -HUP "$pid"
  local reloaded=0
  if wait_status "$url/v2/" 200 10 >/dev/null; then
    ok "reload: new host route answers within 10 s of SIGHUP"
    reloaded=1
  else
    not_ok "reload: new host route answers within 10 s of SIGHUP (later reload checks that need it are skipped)"
    grep 'reload' "$WORK/berth.log" | tail -n 3 | sed 's/^/#   log: /'
  fi
  if [ "$reloaded" = 1 ]; then
    grep -q 'configuration reloaded' "$WORK/berth.log" && ok "reload: log says the configuration was reloaded" ||
      not_ok "reload: log says the configuration was reloaded"
    roundtrip "reload: new route" reload "reload.example.test:$P_TLS/e2e/reload:1" tls
    check_eq "reload: push landed in $H" 1 "$(tags_of "http://127.0.0.1:$P_MAIN" "$H/e2e/reload")"
  fi

  # A broken file: refused, the process lives on with the routes it had.
  local refusals; refusals=$(grep -c 'reload refused' "$WORK/berth.log" || true)
  echo "  - { host: broken.example.test, repository: docker-undeclared }" >>"$cfg"
  kill -HUP "$pid"
  local _ seen=0
  for _ in $(seq 1 50); do
    if [ "$(grep -c 'reload refused' "$WORK/berth.log" || true)" -gt "$refusals" ]; then seen=1; break; fi
    sleep 0.2
  done
  if [ "$seen" = 1 ]; then
    ok "reload: broken config is refused ($(grep 'reload refused' "$WORK/berth.log" | tail -n 1 | grep -o 'reason=.*' | cut -c1-160))"
  else
    not_ok "reload: log says the broken config was refused (within 10 s)"; tail -n 5 "$WORK/berth.log" | sed 's/^/#   /'
  fi
  if kill -0 "$pid" 2>/dev/null; then ok "reload: berth keeps running after a broken config"; else bail "reload: berth keeps running after a broken config"; fi
  check_eq "reload: old host route still serves its image" "$(layout_digest "$IMG" exact)" \
    "$(remote_digest "docker://project-push.example.test:$P_TLS/e2e/exact:1" tls 2>&1)"
  if [ "$reloaded" = 1 ]; then
    check_eq "reload: the reloaded route still serves its image after the refused reload" "$(layout_digest "$IMG" reload)" \
      "$(remote_digest "docker://reload.example.test:$P_TLS/e2e/reload:1" tls 2>&1)"
  fi
  expect_error "reload: the broken file's route did not appear" 404 NAME_UNKNOWN GET \
    "https://broken.example.test:$P_TLS/v2/" -k --resolve "broken.example.test:$P_TLS:127.0.0.1"
  cp "$WORK/fd/berth.yml.orig" "$cfg"
}

# big_blob LABEL BASE_URL IMAGE: one monolithic POST ?digest= of $BIG through the proxy (streamed
# with Content-Length), read back through the proxy, then deleted so the next proxy uploads anew.
big_blob() {
  local label=$1 base=$2 image=$3 size t0 rc=0 got
  size=$(stat -c %s "$BIG")
  local url="$base/v2/$image/blobs/uploads/?digest=$BIG_DIGEST"
  t0=$(date +%s)
  HTTP_STATUS=$(curl -sS -X POST -T - -H 'Expect:' -H 'Transfer-Encoding:' -H "Content-Length: $size" \
    -H 'Content-Type: application/octet-stream' --cacert "$CA_CRT" --max-time "$CURL_TIMEOUT" \
    -o "$WORK/resp.body" -D "$WORK/resp.headers" -w '%{http_code}' "$url" <"$BIG" 2>"$WORK/resp.err") || true
  check_status "$label: monolithic POST of a $((size / 1048576)) MiB blob ($(($(date +%s) - t0)) s)" 201 "POST $url (Content-Length: $size)" || return 0
  t0=$(date +%s)
  got=$(set -o pipefail; curl -sS --fail --cacert "$CA_CRT" --max-time "$CURL_TIMEOUT" "$base/v2/$image/blobs/$BIG_DIGEST" 2>"$WORK/resp.err" |
    openssl dgst -sha256 -r | cut -c1-64) || rc=$?
  check_eq "$label: large blob read back has the same sha256 ($(($(date +%s) - t0)) s)" "${BIG_DIGEST#sha256:}" "$got"
  passed || echo "#   curl exit $rc $(cat "$WORK/resp.err")"
  http DELETE "$base/v2/$image/blobs/$BIG_DIGEST"
  if check_status "$label: DELETE the large blob" 202 "DELETE $base/v2/$image/blobs/$BIG_DIGEST"; then
    http HEAD "$base/v2/$image/blobs/$BIG_DIGEST"
    check_status "$label: the deleted blob is gone (the next proxy uploads it anew)" 404 "HEAD $base/v2/$image/blobs/$BIG_DIGEST" || true
  fi
}

# 6a. the configuration `berth proxy-config` generates, in front of the routes-less Berth.
scenario_generated() { # FLAVOR NAME
  local flavor=$1 name=$2 args=()
  [ "$flavor" = apache ] && args=(--backend "127.0.0.1:$P_MAIN2")
  local gen="$WORK/$name/proxy.conf"
  mkdir -p "$WORK/$name"
  if ! berth proxy-config "$flavor" --config "$WORK/fd/routes.yml" "${args[@]}" >"$gen" 2>"$WORK/$name/gen.err"; then
    not_ok "$name: berth proxy-config $flavor"; sed 's/^/#   /' "$WORK/$name/gen.err"; return 0
  fi
  ok "$name: berth proxy-config $flavor --config routes.yml ${args[*]} ($(wc -l <"$gen") lines)"
  check "$name: generated config listens on the routes' address 127.0.0.1, not on every interface" \
    listens_on_loopback "$flavor" "$gen"
  # As a user would run it: next to the config, with a relative --config. The proxy resolves
  # relative certificate paths against its own prefix / ServerRoot, so they must come out absolute.
  local rel="$WORK/$name/proxy-relative.conf"
  if (cd "$WORK/fd" && berth proxy-config "$flavor" --config routes.yml "${args[@]}") >"$rel" 2>&1; then
    check "$name: certificate paths are absolute with a relative --config (cd fd && berth proxy-config $flavor --config routes.yml)" \
      absolute_cert_paths "$flavor" "$rel"
  else
    not_ok "$name: berth proxy-config $flavor with a relative --config"; sed 's/^/#   /' "$rel" | tail -n 5
  fi
  local started=0
  if [ "$flavor" = nginx ]; then start_nginx "$name" "$P_GPORT" && started=1; else start_apache "$name" "$P_GPORT" && started=1; fi
  if [ "$started" = 0 ]; then not_ok "$name: proxy starts with the generated configuration"; return 0; fi
  ok "$name: proxy starts with the generated configuration"
  proxy_flows "$name" "$P_GPORT"

  # Pull/push split on a port.
  local main="http://127.0.0.1:$P_MAIN2"
  push "$name split: push 127.0.0.1:$P_GSPLIT/e2e/$name-split:1" "oci:$IMG:$name-split" "docker://127.0.0.1:$P_GSPLIT/e2e/$name-split:1" tls
  check_eq "$name split: push landed in $H" 1 "$(tags_of "$main" "$H/e2e/$name-split")"
  refuses "$name split: reads go to $G" "127.0.0.1:$P_GSPLIT/e2e/$name-split:1" tls
  push "$name split: seed $G directly (repository path)" "oci:$IMG:$name-grp" "docker://127.0.0.1:$P_MAIN2/$G/e2e/$name-grp:1" plain
  pull_and_compare "docker://127.0.0.1:$P_GSPLIT/e2e/$name-grp:1" "$IMG" "$(layout_digest "$IMG" "$name-grp")" "$name split: image in $G" tls

  # {repo} subdomain on the host listener.
  roundtrip "$name subdomain" "$name-sub" "$H.docker.example.test:$P_GHOST/e2e/$name-sub:1" tls
  check_eq "$name subdomain: push landed in $H" 1 "$(tags_of "$main" "$H/e2e/$name-sub")"
  pull_and_compare "docker://$G.docker.example.test:$P_GHOST/e2e/$name-grp:1" "$IMG" "$(layout_digest "$IMG" "$name-grp")" "$name subdomain $G" tls
  expect_error "$name subdomain: unknown {repo}" 404 NAME_UNKNOWN GET "https://nope.docker.example.test:$P_GHOST/v2/"

  # An https upstream route with ca_file: the generated proxy verifies the certificate by the upstream's name
  # (localhost), not by the name the client used (project.example.test, which the certificate does not carry).
  roundtrip "$name https upstream" "$name-ups" "project.example.test:$P_GUPS/e2e/$name-ups:1" plain
  check_eq "$name https upstream: push landed in $H" 1 "$(tags_of "$main" "$H/e2e/$name-ups")"

  big_blob "$name" "https://127.0.0.1:$P_GPORT" "e2e/$name-big"
  stop_pid "$name" || not_ok "$name: proxy stops on SIGTERM within 20 s"
}

# absolute_cert_paths FLAVOR FILE: every certificate/key path in FILE is absolute and readable.
absolute_cert_paths() {
  local paths p bad=0
  if [ "$1" = nginx ]; then
    paths=$(sed -nE 's/^[[:space:]]*ssl_certificate(_key)?[[:space:]]+([^;]+);.*/\2/p' "$2")
  else
    paths=$(sed -nE 's/^[[:space:]]*SSLCertificate(Key)?File[[:space:]]+"?([^"]+)"?.*/\2/p' "$2")
  fi
  [ -n "$paths" ] || { echo "no certificate lines in $2"; return 1; }
  for p in $paths; do
    if [[ $p != /* ]] || [ ! -r "$p" ]; then echo "not an absolute, readable path: $p"; bad=1; fi
  done
  return $bad
}

# listens_on_loopback FLAVOR FILE: every listen / Listen line binds 127.0.0.1 (as the routes do).
listens_on_loopback() {
  local lines
  if [ "$1" = nginx ]; then lines=$(grep -E '^[[:space:]]*listen[[:space:]]' "$2"); else lines=$(grep -E '^[[:space:]]*Listen[[:space:]]' "$2"); fi
  echo "$lines"
  [ -n "$lines" ] && ! grep -vq '127\.0\.0\.1:' <<<"$lines"
}

# 6b. hand-written guide-shaped configuration (e2e/frontdoor/FLAVOR-guide.conf.in).
scenario_guide() { # FLAVOR NAME
  local flavor=$1 name=$2 port
  free_port port
  mkdir -p "$WORK/$name"
  sed -e "s|@PORT@|$port|g" -e "s|@BERTH@|127.0.0.1:$P_MAIN2|g" -e "s|@REPO@|$H|g" \
    -e "s|@CERT@|$WORK/fd/server.crt|g" -e "s|@KEY@|$WORK/fd/server.key|g" \
    "$HERE/frontdoor/$flavor-guide.conf.in" >"$WORK/$name/proxy.conf"
  local started=0
  if [ "$flavor" = nginx ]; then start_nginx "$name" "$port" && started=1; else start_apache "$name" "$port" && started=1; fi
  if [ "$started" = 0 ]; then not_ok "$name: proxy starts with the hand-written guide-shaped configuration"; return 0; fi
  ok "$name: proxy starts with the hand-written guide-shaped configuration"
  proxy_flows "$name" "$port"
  big_blob "$name" "https://127.0.0.1:$port" "e2e/$name-big"
  stop_pid "$name" || not_ok "$name: proxy stops on SIGTERM within 20 s"
}

# Through a proxy mapping 127.0.0.1:PORT to $H: skopeo push + pull of a 3-layer image.
proxy_flows() { # NAME PORT
  local name=$1 port=$2
  roundtrip "$name" "$name" "127.0.0.1:$port/e2e/$name:1" tls
  check_eq "$name: push landed in $H" 1 "$(tags_of "http://127.0.0.1:$P_MAIN2" "$H/e2e/$name")"
  # One more tag pushed as a manifest only (all blobs are there): the common re-tag case.
  push "$name: push a second tag" "oci:$IMG:$name" "docker://127.0.0.1:$port/e2e/$name:2" tls
  check_eq "$name: tags/list through the proxy" "1,2" "$(tags_of "https://127.0.0.1:$port" "e2e/$name")"
}

# ------------------------------------------------------------------- main ---

write_configs() {
  # Berth with its front door (sections 3, 4, 5, 7).
  cat >"$WORK/fd/berth.yml" <<EOF
# e2e/frontdoor.sh: Berth with every kind of route.
listen: 127.0.0.1:$P_MAIN
trusted_proxies: [127.0.0.1/32]
repositories:
  - { name: $H, type: hosted }
  - { name: $G, type: hosted }
listeners:
  - { listen: 127.0.0.1:$P_TLS, tls: { certificates: [ { cert: wildcard.crt, key: wildcard.key }, { cert: project.crt, key: project.key } ] } }
routes:
  - { listen: 127.0.0.1:$P_PUSH, tls: { cert: server.crt, key: server.key }, repository: $H }
  - { listen: 127.0.0.1:$P_PULL, tls: { cert: server.crt, key: server.key }, repository: $G }
  - { host: project-push.example.test, repository: $H }
  - { host: project.example.test, pull: $G, push: $H }
  - { host: "*.wild.example.test", repository: $H }
  - { host: "{repo}.docker.example.test" }
  - { listen: 127.0.0.1:$P_UP, upstream: "http://127.0.0.1:$P_DIST/" }
  - { listen: 127.0.0.1:$P_UPT, upstream: "http://127.0.0.1:$P_DIST2/" }
  # An upstream with a path, like an existing Nexus: here Berth's own Nexus path.
  - { listen: 127.0.0.1:$P_UPN, upstream: "http://127.0.0.1:$P_MAIN/repository/$H/" }
  # An https upstream with a private CA: Berth's own TLS port route, checked against the test CA; and the same
  # without ca_file, which the system's CAs refuse.
  - { listen: 127.0.0.1:$P_UPS, upstream: "https://localhost:$P_PUSH/", ca_file: $CA_CRT }
  - { listen: 127.0.0.1:$P_UPX, upstream: "https://localhost:$P_PUSH/" }
EOF
  # Routes meant for an external proxy (input of `berth proxy-config`), and the routes-less
  # Berth behind it.
  cat >"$WORK/fd/routes.yml" <<EOF
# e2e/frontdoor.sh: routes translated by berth proxy-config.
listen: 127.0.0.1:$P_MAIN2
trusted_proxies: [127.0.0.1/32]
repositories:
  - { name: $H, type: hosted }
  - { name: $G, type: hosted }
listeners:
  - { listen: 127.0.0.1:$P_GHOST, tls: { certificates: [ { cert: wildcard.crt, key: wildcard.key } ] } }
routes:
  - { listen: 127.0.0.1:$P_GPORT, tls: { cert: server.crt, key: server.key }, repository: $H }
  - { listen: 127.0.0.1:$P_GSPLIT, tls: { cert: server.crt, key: server.key }, pull: $G, push: $H }
  - { host: "{repo}.docker.example.test" }
  # An https upstream behind the test CA (the proxy's own TLS port route above): checked as Berth checks it.
  - { listen: 127.0.0.1:$P_GUPS, upstream: "https://localhost:$P_GPORT/", ca_file: $CA_CRT }
EOF
  cat >"$WORK/fd/backend.yml" <<EOF
# e2e/frontdoor.sh: Berth behind nginx / Apache: the main listener and the repositories only.
listen: 127.0.0.1:$P_MAIN2
trusted_proxies: [127.0.0.1/32]
repositories:
  - { name: $H, type: hosted }
  - { name: $G, type: hosted }
EOF
}

main() {
  ensure_packages skopeo umoci nginx apache2 docker-registry openssl jq curl

  make_work berth-frontdoor
  CERTS="$WORK/certs.d"
  wait_for_binary || bail "berth binary exists at $BERTH_BIN"

  local v
  for v in P_MAIN P_TLS P_PUSH P_PULL P_UP P_UPT P_UPN P_UPS P_UPX P_DIST P_DIST2 P_MAIN2 P_GPORT P_GSPLIT P_GHOST P_GUPS; do
    free_port "$v"
  done

  section "1. certificates and host names"
  check "test CA and server certificates (openssl)" make_certs
  passed || bail "cannot continue without certificates"
  hosts_add
  check_eq "test host names resolve to 127.0.0.1 via /etc/hosts" "127.0.0.1" \
    "$(getent hosts project-push.example.test | awk '{print $1}')"
  write_configs

  section "2. config check"
  scenario_config_check

  section "images"
  local variants=(port exact wild sub split grp repo upstream upnexus upstls reload)
  local n
  for n in nginx-gen apache-gen; do variants+=("$n" "$n-split" "$n-grp" "$n-sub" "$n-ups"); done
  variants+=(nginx-guide apache-guide)
  build_images "${variants[@]}"
  BIG="$WORK/big.bin"
  head -c "${E2E_BIG_MIB}M" /dev/urandom >"$BIG"
  BIG_DIGEST="sha256:$(sha256_of "$BIG")"

  section "Berth with every route (main 127.0.0.1:$P_MAIN, TLS listener $P_TLS)"
  start_distribution distribution "$P_DIST" || bail "docker-registry starts on 127.0.0.1:$P_DIST"
  ok "docker-registry starts on 127.0.0.1:$P_DIST"
  start_distribution distribution-token "$P_DIST2" token || bail "docker-registry with token auth starts on 127.0.0.1:$P_DIST2"
  ok "docker-registry with token auth starts on 127.0.0.1:$P_DIST2"
  start_berth berth "$WORK/fd/berth.yml" "$WORK/data" "$P_MAIN" || bail "berth serve starts with the front-door config"
  ok "berth serve starts with the front-door config"
  local p
  for p in "$P_PUSH" "$P_PULL"; do
    wait_status "https://127.0.0.1:$p/v2/" 200 10 && ok "port route $p answers over TLS" || not_ok "port route $p answers over TLS"
  done
  wait_status "https://project-push.example.test:$P_TLS/v2/" 200 10 && ok "TLS listener $P_TLS answers" ||
    not_ok "TLS listener $P_TLS answers"
  # The certificate is chosen by SNI; the first one is the default.
  local sni cn
  for sni in project.example.test:project project-push.example.test:project x.docker.example.test:wildcard \
    a.wild.example.test:wildcard unknown.example.test:wildcard; do
    cn=$(timeout 10 openssl s_client -connect "127.0.0.1:$P_TLS" -servername "${sni%%:*}" </dev/null 2>/dev/null |
      openssl x509 -noout -subject 2>/dev/null | sed 's/.*CN *= *//' || true)
    check_eq "SNI ${sni%%:*} gets the ${sni#*:} certificate" "${sni#*:}" "$cn"
  done

  section "3. access methods over TLS"
  scenario_access_methods
  section "4. unknown hosts"
  scenario_unknown_hosts
  section "5. upstream route -> docker-registry 127.0.0.1:$P_DIST"
  scenario_upstream
  section "7. SIGHUP reload"
  scenario_reload
  stop_checked berth berth

  section "6. nginx and Apache httpd in front of Berth (main 127.0.0.1:$P_MAIN2)"
  start_berth backend "$WORK/fd/backend.yml" "$WORK/data2" "$P_MAIN2" || bail "berth serve starts with repositories only"
  ok "berth serve starts with repositories only"
  section "6a. nginx, generated by berth proxy-config"
  scenario_generated nginx nginx-gen
  section "6b. nginx, hand-written like the guide"
  scenario_guide nginx nginx-guide
  section "6c. Apache httpd, generated by berth proxy-config"
  scenario_generated apache apache-gen
  section "6d. Apache httpd, hand-written like the guide"
  scenario_guide apache apache-guide
  stop_checked backend "berth (backend)"
  section "done"

  print_summary
  [ "$FAILED" -eq 0 ] || exit 1
}

install_traps
main "$@"
