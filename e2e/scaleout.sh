#!/usr/bin/env bash
# End-to-end test of scale-out: two stateless Berth nodes sharing one PostgreSQL (metadata) and one
# S3-compatible bucket (moto server, blobs), behind nginx as a round-robin load balancer.
#
#   * both nodes start at once against an empty database: it is migrated once
#   * skopeo pushes and pulls a multi-layer image and a two-platform index through the balancer,
#     so the requests of each upload alternate nodes
#   * a chunked upload whose POST, PATCHes, status GET and PUT go to alternating nodes by hand
#   * a tag pushed through node A is pulled through node B at once, and moved back
#   * node A is SIGKILLed in the middle of a push; the retry through the balancer succeeds on node B,
#     nothing partial is visible, nothing committed is lost; after A restarts both nodes agree
#   * a third node with `redirect: true` answers blob GETs with presigned S3 URLs that skopeo follows
#   * start-up names the engines; /service/rest/v1/status/check reports them, 503 when S3 is down
#
# Usage:  bash e2e/scaleout.sh   (as root on Debian; installs postgresql, moto[server], nginx, skopeo…)
# Env:    BERTH_BIN (default /work/main/.build/debug/berth), E2E_KEEP=1 keeps the temp dir.
set -euo pipefail

# shellcheck source=e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034
SKOPEO_TIMEOUT=300 CURL_TIMEOUT=120

ensure_packages skopeo umoci nginx jq curl openssl postgresql docker-registry
make_work berth-scaleout
install_traps
on_cleanup() { "$HERE/../scripts/test-services.sh" stop "$WORK/services" >/dev/null 2>&1 || true; }

section "engines: PostgreSQL and S3 (moto)"
"$HERE/../scripts/test-services.sh" start "$WORK/services" >"$WORK/services.out" 2>&1 \
  || { sed 's/^/#   /' "$WORK/services.out"; bail "PostgreSQL and moto start"; }
# shellcheck disable=SC1091
. "$WORK/services/env"
ok "PostgreSQL ($BERTH_TEST_POSTGRES_URL) and moto ($BERTH_TEST_S3_ENDPOINT) start"
PG_URL=$BERTH_TEST_POSTGRES_URL
S3=$BERTH_TEST_S3_ENDPOINT
psql_q() { psql -X -A -t -q "$PG_URL" -c "$1"; }

wait_for_binary || bail "berth binary exists at $BERTH_BIN"
free_port PA; free_port PB; free_port PC; free_port LB; free_port PU

# node_config NAME PORT [REDIRECT]: the same storage for every node; credentials come from AWS_* env.
node_config() {
  cat >"$WORK/$1.yml" <<EOF
listen: 127.0.0.1:$2
trusted_proxies: [127.0.0.1/32]
storage:
  blobs: { type: s3, endpoint: "$S3", bucket: berth-e2e, prefix: registry/, region: us-east-1, path_style: true, redirect: ${3:-false} }
  metadata: { type: postgres, url: "$PG_URL", max_connections: 8 }
repositories:
  - { name: docker-hosted, type: hosted }
  - { name: upstream-cache, type: proxy, remote: "http://127.0.0.1:$PU" }
EOF
}
export AWS_ACCESS_KEY_ID=berth-e2e AWS_SECRET_ACCESS_KEY=berth-e2e-secret
node_config a "$PA"
node_config b "$PB"
node_config c "$PC" true

A="http://127.0.0.1:$PA"
B="http://127.0.0.1:$PB"
C="http://127.0.0.1:$PC"

# start_node NAME PORT: start_berth for node NAME with its config and data folder.
start_node() { start_berth "node-$1" "$WORK/$1.yml" "$WORK/data-$1" "$2"; }

section "two nodes start at once against an empty database"
launch_berth node-a "$WORK/a.yml" "$WORK/data-a"
launch_berth node-b "$WORK/b.yml" "$WORK/data-b"
await_server node-a "$WORK/node-a.log" "$A/v2/" || bail "node A starts"
await_server node-b "$WORK/node-b.log" "$B/v2/" || bail "node B starts"
ok "both nodes start and answer /v2/"
migrations=$(psql_q "SELECT count(*) FROM berth_migrations")
check_eq "each migration is recorded once" "3" "$migrations"
applied=$(cat "$WORK/node-a.log" "$WORK/node-b.log" | grep -c 'database migrated' || true)
check_eq "the two nodes applied 3 migrations between them, not 6" "3" "$applied"
check "start-up names the S3 blob store" grep -q "blobs=s3 $S3 bucket berth-e2e prefix registry/ .*storage engines" "$WORK/node-a.log"
check "start-up names the PostgreSQL metadata store" grep -q 'metadata=postgres postgres://berth@127.0.0.1:.*storage engines' "$WORK/node-b.log"
for node in "A $A" "B $B"; do
  n=${node%% *} url=${node#* }
  http GET "$url/service/rest/v1/status/check"
  check_status "node $n: status check is healthy" 200 "GET /service/rest/v1/status/check"
  check_eq "node $n: status check names both stores healthy" "true true" \
    "$(jq -r '[.["blob store"].healthy, .["metadata store"].healthy] | map(tostring) | join(" ")' "$WORK/resp.body")"
done

section "the command line works on the shared database"
check "berth user add with node A's configuration" \
  bash -c "echo e2e-password | '$BERTH_BIN' user add ci-bot --role admin --password-stdin --config '$WORK/a.yml' --data '$WORK/data-a'"
check "berth user list with node B's configuration shows the user" \
  bash -c "'$BERTH_BIN' user list --config '$WORK/b.yml' --data '$WORK/data-b' | grep -q ci-bot"

section "nginx: round-robin load balancer in front of both nodes"
mkdir -p "$WORK/lb"
cat >"$WORK/lb/proxy.conf" <<EOF
upstream berth_nodes {
  server 127.0.0.1:$PA max_fails=1 fail_timeout=5s;
  server 127.0.0.1:$PB max_fails=1 fail_timeout=5s;
}
log_format nodes '\$request_method \$uri \$upstream_addr \$status';
server {
  listen 127.0.0.1:$LB;
  access_log $WORK/lb/logs/nodes.log nodes;
  client_max_body_size 0;
  proxy_request_buffering off;
  proxy_buffering off;
  proxy_read_timeout 900;
  proxy_send_timeout 900;
  location / {
    proxy_pass http://berth_nodes;
    proxy_set_header Host \$http_host;
    proxy_set_header X-Forwarded-Proto http;
    proxy_next_upstream error timeout;
  }
}
EOF
start_nginx lb "$LB" http || bail "nginx starts as the load balancer"
ok "nginx balances 127.0.0.1:$LB over nodes :$PA and :$PB"

section "skopeo through the balancer"
build_app_and_multi
REG="127.0.0.1:$LB/docker-hosted"
push "push the 3-layer image through the balancer" "oci:$SRC/app:app" "docker://$REG/team/app:1"
push "push the two-platform index through the balancer" "oci:$SRC/multi:1" "docker://$REG/team/multi:1"
uploads_on=$(awk '$2 ~ /\/blobs\/uploads\// {print $3}' "$WORK/lb/logs/nodes.log" | sort -u | wc -l)
check_eq "upload requests reached both nodes" "2" "$uploads_on"
pull_and_compare "docker://$REG/team/app:1" "$SRC/app" "$APP_DIGEST" "balancer"
pull_and_compare "docker://$REG/team/multi:1" "$SRC/multi" "$MULTI_DIGEST" "balancer"
pull_and_compare "docker://127.0.0.1:$PA/docker-hosted/team/app:1" "$SRC/app" "$APP_DIGEST" "node A"
pull_and_compare "docker://127.0.0.1:$PB/docker-hosted/team/multi:1" "$SRC/multi" "$MULTI_DIGEST" "node B"

section "a chunked upload whose requests alternate nodes"
API=/v2/docker-hosted/team/chunked
f="$WORK/chunked.bin"
head -c $((6 * 1024 * 1024 + 4321)) /dev/urandom >"$f"
size=$(stat -c %s "$f")
c1=$((2 * 1024 * 1024 + 11)); c2=$((2 * 1024 * 1024 + 13))
head -c "$c1" "$f" >"$WORK/c.1"
head -c $((c1 + c2)) "$f" | tail -c "$c2" >"$WORK/c.2"
tail -c +$((c1 + c2 + 1)) "$f" >"$WORK/c.3"
digest="sha256:$(sha256_of "$f")"
http POST "$A$API/blobs/uploads/"
check_status "node A: POST starts the session" 202 "POST $A$API/blobs/uploads/"
loc=$(location_path)
http PATCH "$B$loc" -H 'Content-Type: application/octet-stream' -H "Content-Range: 0-$((c1 - 1))" --data-binary "@$WORK/c.1"
check_status "node B: PATCH chunk 1" 202 "PATCH $B$loc"
check_eq "node B: Range after chunk 1" "0-$((c1 - 1))" "$(header Range)"
loc=$(location_path)
http GET "$A$loc"
check_status "node A: upload status" 204 "GET $A$loc"
check_eq "node A: sees node B's chunk" "0-$((c1 - 1))" "$(header Range)"
http PATCH "$A$loc" -H 'Content-Type: application/octet-stream' -H "Content-Range: $c1-$((c1 + c2 - 1))" --data-binary "@$WORK/c.2"
check_status "node A: PATCH chunk 2" 202 "PATCH $A$loc"
loc=$(location_path)
http PATCH "$B$loc" -H 'Content-Type: application/octet-stream' -H "Content-Range: 0-10" --data-binary "@$WORK/c.3"
check_status "node B: an out-of-order chunk is refused" 416 "PATCH $B$loc"
http PUT "$B$(with_digest "$loc" "$digest")" -H 'Content-Type: application/octet-stream' --data-binary "@$WORK/c.3"
check_status "node B: PUT with the last chunk completes it" 201 "PUT $B$loc"
http GET "$A$API/blobs/$digest"
check_status "node A: GET the blob" 200 "GET $A$API/blobs/$digest"
check_eq "node A: the blob is byte-identical ($size bytes)" "$digest" "sha256:$(sha256_of "$WORK/resp.body")"
http GET "$B$API/blobs/$digest" -H 'Range: bytes=3000000-3999999'
check_status "node B: a Range of it" 206 "GET $B$API/blobs/$digest"
check_eq "node B: the Range has the right bytes" "$(head -c 4000000 "$f" | tail -c 1000000 | sha256sum | cut -c1-64)" "$(sha256_of "$WORK/resp.body")"

section "a tag pushed through one node is read through the other at once"
manifest_of() { # REF NODE_URL -> digest
  http HEAD "$2/v2/docker-hosted/team/app/manifests/$1" -H 'Accept: application/vnd.oci.image.manifest.v1+json'
  header Docker-Content-Digest
}
small_manifest=$(blob_path "$SRC/app" "$SMALL_DIGEST")
push "push team/app:small's blobs through node A" "oci:$SRC/app:small" "docker://127.0.0.1:$PA/docker-hosted/team/app:small"
for round in 1 2 3; do
  http PUT "$A/v2/docker-hosted/team/app/manifests/moving" -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$small_manifest"
  got_b=$(manifest_of moving "$B")
  http PUT "$B/v2/docker-hosted/team/app/manifests/moving" -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$(blob_path "$SRC/app" "$APP_DIGEST")"
  got_a=$(manifest_of moving "$A")
  check_eq "round $round: moved on A, read on B / moved on B, read on A" "$SMALL_DIGEST $APP_DIGEST" "$got_b $got_a"
done

section "node A is killed (SIGKILL) in the middle of a push; the retry goes through node B"
big="$WORK/big.bin"
head -c $((120 * 1024 * 1024)) /dev/urandom >"$big"
big_digest="sha256:$(sha256_of "$big")"
http POST "$A$API/blobs/uploads/"
loc=$(location_path)
curl -s -o /dev/null --max-time 60 --limit-rate 20M -X PATCH -H 'Content-Type: application/octet-stream' \
  --data-binary "@$big" "$A$loc" &
curl_pid=$!
sleep 2
kill -KILL "${PIDS[node-a]}"
wait "${PIDS[node-a]}" 2>/dev/null || true
unset "PIDS[node-a]"
wait "$curl_pid" 2>/dev/null || true
ok "node A killed while a 120 MiB PATCH was streaming into it"
check_eq "node B: the cut blob is not visible" "404" "$(http_code "$B$API/blobs/$big_digest")"
http GET "$B$loc"
check_status "node B: the cut upload's session is still there" 204 "GET $B$loc"
echo "#   node B reports the session at $(header Range) after the kill"
# The client's retry: a fresh monolithic push of the same blob through the balancer (A is down).
http POST "http://127.0.0.1:$LB$API/blobs/uploads/?digest=$big_digest" -H 'Content-Type: application/octet-stream' --data-binary "@$big"
check_status "the retry through the balancer succeeds" 201 "POST ?digest= through the balancer"
http GET "$B$API/blobs/$big_digest"
check_eq "node B: the retried blob is complete" "$big_digest" "sha256:$(sha256_of "$WORK/resp.body")"
rm -f "$WORK/resp.body"
push "skopeo pushes an image through the balancer while A is down" "oci:$SRC/app:app" "docker://$REG/team/after-kill:1"
pull_and_compare "docker://$REG/team/app:1" "$SRC/app" "$APP_DIGEST" "with A down, nothing committed is lost"

section "node A restarts; both nodes agree"
start_node a "$PA" || bail "node A restarts"
ok "node A restarts"
for path in "/v2/_catalog" "/v2/docker-hosted/team/app/tags/list" "/v2/docker-hosted/team/multi/tags/list" "/v2/docker-hosted/team/after-kill/tags/list"; do
  check_eq "nodes agree on $path" "$(curl -s --max-time 10 "$B$path")" "$(curl -s --max-time 10 "$A$path")"
done
accept='application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json'
for pair in "app $APP_DIGEST" "multi $MULTI_DIGEST"; do
  img=${pair%% *} d=${pair#* }
  check_eq "both nodes serve team/$img@$d" "200 200" \
    "$(http_code "$A/v2/docker-hosted/team/$img/manifests/$d" -H "Accept: $accept") $(http_code "$B/v2/docker-hosted/team/$img/manifests/$d" -H "Accept: $accept")"
done
check_eq "both nodes serve the retried blob" "200 200" "$(http_code "$A$API/blobs/$big_digest" -I) $(http_code "$B$API/blobs/$big_digest" -I)"
pull_and_compare "docker://127.0.0.1:$PA/docker-hosted/team/after-kill:1" "$SRC/app" "$APP_DIGEST" "node A after restart"

section "a proxy repository caching into S3, through both nodes"
start_distribution upstream "$PU" || bail "docker-registry (upstream of the proxy repository) starts"
ok "docker-registry starts as the upstream on 127.0.0.1:$PU"
push "upstream: push team/app:1" "oci:$SRC/app:app" "docker://127.0.0.1:$PU/team/app:1"
pull_and_compare "docker://127.0.0.1:$PA/upstream-cache/team/app:1" "$SRC/app" "$APP_DIGEST" "proxy via node A (cold: streamed while cached in S3)"
pull_and_compare "docker://127.0.0.1:$PB/upstream-cache/team/app:1" "$SRC/app" "$APP_DIGEST" "proxy via node B (cached by A)"
blob_gets=$(grep -c 'GET /v2/team/app/blobs/' "$WORK/upstream/log" || true)
check_eq "the upstream served each of the $(jq '.layers | length + 1' "$(blob_path "$SRC/app" "$APP_DIGEST")") blobs once" \
  "$(jq '.layers | length + 1' "$(blob_path "$SRC/app" "$APP_DIGEST")")" "$blob_gets"

section "a node with redirect: true sends blob GETs to presigned S3 URLs"
start_node c "$PC" || bail "node C (redirect) starts"
http GET "$C$API/blobs/$digest"
check_status "node C: blob GET is a 307" 307 "GET $C$API/blobs/$digest"
loc=$(header Location)
check "node C: the Location is a presigned URL on the S3 endpoint" test "${loc#"$S3"/}" != "$loc" -a -n "$(grep -o 'X-Amz-Signature=' <<<"$loc")"
check_eq "node C: the presigned URL serves the blob" "$digest" "sha256:$(curl -s --max-time 30 "$loc" | sha256sum | cut -c1-64)"
pull_and_compare "docker://127.0.0.1:$PC/docker-hosted/team/app:1" "$SRC/app" "$APP_DIGEST" "node C (redirects)"

section "status check when S3 is down"
kill "$(cat "$WORK/services/moto.pid")" 2>/dev/null || true
sleep 0.5
http GET "$B/service/rest/v1/status/check"
check_status "node B: status check answers 503" 503 "GET /service/rest/v1/status/check"
check_eq "node B: the blob store is unhealthy, the metadata store healthy" "false true" \
  "$(jq -r '[.["blob store"].healthy, .["metadata store"].healthy] | map(tostring) | join(" ")' "$WORK/resp.body")"
