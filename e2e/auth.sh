#!/usr/bin/env bash
# End-to-end test of Berth's access control with a real client: skopeo logs in over TLS (token realm),
# pushes and pulls under several access methods; identities that may not are refused; a revoked service
# token stops working; and a proxy repository pulls through a second Berth whose realm requires a login
# (the upstream Bearer flow).
#
# Usage: bash e2e/auth.sh   (root; installs missing Debian packages)
# Env:   BERTH_BIN (default: .build/debug/berth of this checkout)
# Output: ok / not ok lines, then "N passed, M failed".
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# shellcheck disable=SC2034 # read by lib.sh
SKOPEO_TIMEOUT=180 CURL_TIMEOUT=60
HOSTS_TAG="# berth-e2e-auth"

# Runs after lib.sh's cleanup stopped the servers: the test host name leaves /etc/hosts.
on_cleanup() { sed -i "/$HOSTS_TAG/d" /etc/hosts 2>/dev/null || true; }

# start_secured NAME CONFIG DATA PORT: like start_berth, but ready when the status endpoint answers
# (with access control on, /v2/ answers 401).
start_secured() {
  launch_berth "$1" "$2" "$3"
  await_server "$1" "$WORK/$1.log" "http://127.0.0.1:$4/service/rest/v1/status"
}

ensure_packages skopeo umoci openssl jq curl podman
make_work berth-e2e-auth
install_traps
cd "$WORK"

# A CA and one certificate for the test names.
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=Berth e2e auth CA" 2>/dev/null
printf 'subjectAltName=DNS:localhost,DNS:project.example.test,IP:127.0.0.1\n' >ext.cnf
openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=project.example.test" 2>/dev/null
openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile ext.cnf 2>/dev/null
mkdir -p certs && cp ca.crt certs/
sed -i "/$HOSTS_TAG/d" /etc/hosts
echo "127.0.0.1 project.example.test $HOSTS_TAG" >>/etc/hosts

# A small image.
umoci init --layout oci >/dev/null
umoci new --image oci:app >/dev/null
umoci unpack --rootless --image oci:app bundle >/dev/null
cp /etc/os-release bundle/rootfs/
head -c 2M /dev/urandom >bundle/rootfs/data
umoci repack --image oci:app bundle >/dev/null
SOURCE_DIGEST=$(sk inspect --raw oci:oci:app | sha256sum | cut -d' ' -f1)

free_port MAIN; free_port TLS; free_port PORT_ROUTE; free_port UP
cat >berth.yml <<YML
listen: 127.0.0.1:$MAIN
repositories:
  - { name: team-a }
  - { name: team-b }
  - { name: public, anonymous_pull: true }
auth: { anonymous_pull: false, throttle_failures: 50 }
roles:
  - { name: a-dev, privileges: [ { repositories: ["team-a"], actions: [read, write] } ] }
  - { name: a-read, privileges: [ { repositories: ["team-a"], actions: [read] } ] }
  - { name: b-dev, privileges: [ { repositories: ["team-b"], actions: [read, write] } ] }
listeners:
  - { listen: 127.0.0.1:$TLS, tls: { cert: srv.crt, key: srv.key } }
routes:
  - { host: project.example.test, repository: team-a }
  - { listen: 127.0.0.1:$PORT_ROUTE, tls: { cert: srv.crt, key: srv.key }, repository: team-a }
YML
start_secured berth "$WORK/berth.yml" "$WORK/data" "$MAIN" || bail "berth did not start"
echo pw-writer | "$BERTH_BIN" user add writer --role a-dev --password-stdin --config berth.yml --data data >/dev/null
echo pw-reader | "$BERTH_BIN" user add reader --role a-read --password-stdin --config berth.yml --data data >/dev/null
echo pw-other | "$BERTH_BIN" user add other --role b-dev --password-stdin --config berth.yml --data data >/dev/null
TOKEN_LINE=$("$BERTH_BIN" token create ci --role a-dev --config berth.yml --data data)
TOKEN_ID=$(awk '{print $2}' <<<"$TOKEN_LINE"); TOKEN_SECRET=$(awk '{print $NF}' <<<"$TOKEN_LINE")
check "the initial admin password is in the data folder" test -s data/admin.password
check "berth user list shows the users" bash -c "'$BERTH_BIN' user list --config berth.yml --data data | grep -q '^writer	a-dev$'"

# --- Login over TLS and push/pull under each access method.
check "skopeo login (token realm over TLS) as writer" sk login --cert-dir certs -u writer -p pw-writer "project.example.test:$TLS"
for target in "project.example.test:$TLS/team/app:1" "localhost:$PORT_ROUTE/team/app:2"; do
    host=${target%%/*}
    sk login --cert-dir certs -u writer -p pw-writer "$host" >/dev/null 2>&1 || true
    check "writer pushes $target" sk copy --dest-cert-dir certs oci:oci:app "docker://$target"
    check_eq "digest of $target" "$SOURCE_DIGEST" "$(sk inspect --cert-dir certs --raw "docker://$target" | sha256sum | cut -d' ' -f1)"
done
check "the repository path reaches the same repository (team-a/team/app:1)" \
    sk inspect --tls-verify=false --creds writer:pw-writer "docker://127.0.0.1:$MAIN/team-a/team/app:1"
sk logout --all >/dev/null 2>&1 || true
check "podman login (token realm over TLS) as reader" timeout 120 podman login --cert-dir certs -u reader -p pw-reader "project.example.test:$TLS"
check_fails "podman login with a wrong password is refused" timeout 120 podman login --cert-dir certs -u reader -p nope "project.example.test:$TLS"
check "podman pulls as reader" timeout 300 podman pull -q --cert-dir certs --creds reader:pw-reader "project.example.test:$TLS/team/app:1"
timeout 60 podman logout --all >/dev/null 2>&1 || true
timeout 60 podman rmi -f "project.example.test:$TLS/team/app:1" >/dev/null 2>&1 || true

# --- Who may not.
check_fails "anonymous pull from team-a is refused" sk inspect --cert-dir certs "docker://project.example.test:$TLS/team/app:1"
check "reader pulls" sk inspect --cert-dir certs --creds reader:pw-reader "docker://project.example.test:$TLS/team/app:1"
check_fails "reader cannot push" sk copy --dest-cert-dir certs --dest-creds reader:pw-reader oci:oci:app "docker://project.example.test:$TLS/team/app:3"
check_fails "the other team cannot pull" sk inspect --cert-dir certs --creds other:pw-other "docker://project.example.test:$TLS/team/app:1"
check_fails "the other team cannot push" sk copy --dest-cert-dir certs --dest-creds other:pw-other oci:oci:app "docker://project.example.test:$TLS/team/app:4"
check_fails "a wrong password is refused" sk inspect --cert-dir certs --creds writer:nope "docker://project.example.test:$TLS/team/app:1"
check "a service token works as a basic-auth password" sk inspect --cert-dir certs --creds "ci:$TOKEN_SECRET" "docker://project.example.test:$TLS/team/app:1"
check "berth token revoke" "$BERTH_BIN" token revoke "$TOKEN_ID" --config berth.yml --data data
check_fails "a revoked token is refused at once" sk inspect --cert-dir certs --creds "ci:$TOKEN_SECRET" "docker://project.example.test:$TLS/team/app:1"
status=$(curl -s -o /dev/null -w '%{http_code}' --cacert ca.crt "https://project.example.test:$TLS/v2/team/app/manifests/1")
www=$(curl -s -D - -o /dev/null --cacert ca.crt "https://project.example.test:$TLS/v2/team/app/manifests/1" | tr -d '\r' | awk 'tolower($1) == "www-authenticate:" { $1 = ""; print substr($0, 2) }')
check_eq "anonymous manifest GET is a 401" 401 "$status"
check_eq "its challenge names the realm on the client's address" \
    "Bearer realm=\"https://project.example.test:$TLS/v2/token\",service=\"berth\",scope=\"repository:team/app:pull\"" "$www"
check "the audit log records the push and the denial" bash -c "grep -q '\"action\":\"push\"' data/audit.log && grep -q '\"result\":\"denied\"' data/audit.log"

# --- Public repository: anonymous pulls, never anonymous pushes.
check_fails "writer cannot push to public (no privilege there)" sk copy --dest-tls-verify=false --dest-creds writer:pw-writer oci:oci:app "docker://127.0.0.1:$MAIN/public/app:3"
check "admin pushes to public" sk copy --dest-tls-verify=false --dest-creds "admin:$(cat data/admin.password)" oci:oci:app "docker://127.0.0.1:$MAIN/public/app:1"
check "anonymous pull from public" sk inspect --tls-verify=false "docker://127.0.0.1:$MAIN/public/app:1"
check_fails "anonymous push to public is refused" sk copy --dest-tls-verify=false oci:oci:app "docker://127.0.0.1:$MAIN/public/app:2"

# --- A proxy repository whose upstream is this Berth with its realm (the upstream Bearer flow).
cat >proxy.yml <<YML
listen: 127.0.0.1:$UP
repositories:
  - { name: upstream-a, type: proxy, remote: "http://127.0.0.1:$MAIN", username: writer, password: pw-writer, auto_block: false }
  - { name: upstream-anon, type: proxy, remote: "http://127.0.0.1:$MAIN", auto_block: false }
YML
start_berth proxy "$WORK/proxy.yml" "$WORK/proxy-data" "$UP" || bail "the proxying berth did not start"
check_eq "pull through a proxy of a Berth with a token realm (credentials)" "$SOURCE_DIGEST" \
    "$(sk inspect --tls-verify=false --raw "docker://127.0.0.1:$UP/upstream-a/team-a/team/app:1" | sha256sum | cut -d' ' -f1)"
check "the proxied image copies whole" sk copy --src-tls-verify=false "docker://127.0.0.1:$UP/upstream-a/team-a/team/app:1" oci:pulled:1
check_fails "the same through a proxy without credentials is refused upstream" sk inspect --tls-verify=false "docker://127.0.0.1:$UP/upstream-anon/team-a/team/app:1"
check "public content pulls through the anonymous proxy" sk inspect --tls-verify=false "docker://127.0.0.1:$UP/upstream-anon/public/app:1"

print_summary
[ "$FAILED" -eq 0 ]
