#!/usr/bin/env bash
# Instructions per proxied keep-alive HTTPS request, counted by valgrind (callgrind), for
# ramparts, the naive uvicorn+aiohttp proxy (pyref) and the protocol-level reference (leanref)
# behind the same nginx origin.
# Unlike req/s on a shared machine, the count does not move with other tenants' load, so it
# shows what a code change saves. User-space instructions only: syscalls and the kernel's
# share are not counted (the wrk runs of `make bench` see those).
#   bench/instructions.sh OUT.md     (N=500 requests after 200 warm-up; ~5 minutes)
#   PROXIES=ramparts bench/instructions.sh   (a subset: ramparts, pyref, leanref)
#   PLUGINS=3 PROXIES=ramparts bench/instructions.sh   (ramparts with 1 to 3 no-op plugins on
#     the route: bench/plugins/ramparts_plugins/noop, noop2, noop3; issue 10's bound is +10 %)
#   PLUGINS=mtls PROXIES=ramparts bench/instructions.sh   (mtls-auth on the route, seed 003's
#     flow: a CA certificate, curl's client certificate signed by it, a consumer credential
#     naming its CN; every request rides one connection, so this is issue 11's keep-alive cost)
#   SCENARIO=d bench/instructions.sh        (HTTPS origin asking for a client certificate)
#   SCENARIO=b bench/instructions.sh        (a new connection and a full TLS handshake per
#     request: curl --no-sessionid, Connection: close; N=200 is plenty. KEY=rsa: RSA-2048
#     instead of ECDSA P-256. CURVES="29, 23, 24, 25": ramparts' tls.curve_preferences, as
#     bench/gateway.sh sets it (X25519 first, like nginx and leanref); unset, its default
#     P-256/P-384/P-521, which costs curl's X25519-only key share a HelloRetryRequest)
#   SCENARIO=b_resume bench/instructions.sh (the same, but curl resumes its TLS session)
#   SCENARIO=c bench/instructions.sh        (mTLS at the proxy: `tls: {enable_mtls: true}`,
#     curl presents a client certificate; leanref's mTLS listener)
#   ROUTES=1000 bench/instructions.sh       (999 more prefix routes, ahead of the one used)
#   PORTS=23000 bench/instructions.sh       (another port range: runs side by side)
#   KEEP=/tmp/prof bench/instructions.sh     (keeps callgrind's files for callgrind_annotate)
#   ACCESS_LOG=off bench/instructions.sh     (no access log, as bench/gateway.sh runs it)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/dev/stdout}
N=${N:-500}
PLUGINS=${PLUGINS:-0}
mtls=
[[ $PLUGINS == mtls ]] && mtls=1 PLUGINS=0
noops=$(for i in $(seq "$PLUGINS"); do [[ $i == 1 ]] && printf noop || printf ", noop%s" "$i"; done)
PORTS=${PORTS:-19000}  # the ports used are PORTS + 1, 80, 443, 543, 643, 644, 999
py=$here/.venv/bin/python
PROXIES=${PROXIES:-ramparts pyref leanref}
pyref=${PYREF:-$here/../shared/bench/proxies/pyref.py}
leanref=${LEANREF:-$here/../shared/bench/proxies/leanref.py}
work=$(mktemp -d /tmp/ramparts-instr.XXXXXX)
cleanup() {  # by PID: every process this script started is listed in $work/pids
  [[ -f $work/pids ]] && while read -r p; do kill "$p" 2>/dev/null || true; done <"$work/pids"
  rm -rf "$work"
}
trap cleanup EXIT
command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null
command -v nginx >/dev/null || apt-get install -y nginx >/dev/null

# one self-signed certificate plays every part: the proxies' and the origin's server
# certificate, the CA that verifies the origin, and the client certificate it requires
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
[[ ${KEY:-ec} == rsa ]] && newkey=(-newkey rsa:2048)
openssl req -x509 "${newkey[@]}" -nodes -days 30 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
client=()
if [[ -n $mtls ]]; then  # a CA and the client certificate it signs (CN=bench-client)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=bench-ca -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj /CN=bench-client -keyout "$work/client.key" -out "$work/client.csr" 2>/dev/null
  openssl x509 -req -in "$work/client.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 30 -out "$work/client.pem" 2>/dev/null
  client=(--cert "$work/client.pem" --key "$work/client.key")
fi
cat >"$work/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 100000;
  server { listen 127.0.0.1:$((PORTS + 999)); location / { return 200 "ok"; } }
  server { listen 127.0.0.1:$((PORTS + 998)) ssl; ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem; ssl_client_certificate $work/cert.pem;
    ssl_verify_client on; location / { return 200 "ok"; } } }
NGINX
# SCENARIO=d: the origin is HTTPS (verified) and asks for a client certificate; /tls/ goes
# there (leanref's convention)
prefix=
[[ ${SCENARIO:-a} == d ]] && prefix=/tls
# SCENARIO=b: each request on a new connection, each connection a full handshake
per_request=() kind="keep-alive HTTPS request" curves=
if [[ ${SCENARIO:-a} == b ]]; then
  per_request=(--no-sessionid -H "Connection: close")
  kind="new-connection HTTPS request (a full handshake, ${KEY:-ec} key, ramparts' groups: ${CURVES:-default})"
elif [[ ${SCENARIO:-a} == b_resume ]]; then
  per_request=(-H "Connection: close")
  kind="new-connection HTTPS request (a resumed session, ramparts' groups: ${CURVES:-default})"
fi
# the node's tls block: CURVES and SCENARIO=c's client-certificate policy in one mapping
tls_opts=()
[[ -n ${CURVES:-} ]] && tls_opts+=("curve_preferences: [$CURVES]")
[[ ${SCENARIO:-a} == c ]] && tls_opts+=("enable_mtls: true, ca_certs: [\"$work/cert.pem\"], disable_system_ca_pool: true")
if (( ${#tls_opts[@]} )); then curves="tls: {$(printf '%s, ' "${tls_opts[@]}" | sed 's/, $//')}"; fi
# SCENARIO=c: every curl presents the (self-signed) certificate as its client certificate
ccert=()
[[ ${SCENARIO:-a} == c ]] && ccert=(--cert "$work/cert.pem" --key "$work/key.pem")
nginx -c "$work/nginx.conf" & echo $! >>"$work/pids"

wait_port() { for _ in $(seq 900); do curl -sk "${ccert[@]}" -o /dev/null "$1" && return 0; sleep 1; done; return 1; }

# count: run "$@" under callgrind, zero the counters after warm-up, dump after N requests
count() {
  local url=$1; shift
  if curl -sk "${ccert[@]}" -o /dev/null "$url/"; then  # another run's proxy would be measured instead
    echo "$url is taken: choose another PORTS=" >&2; return 1
  fi
  rm -f "$work"/callgrind.out.*
  # ramparts runs its proxy in a worker process the supervisor starts: trace the children
  # and count the worker (WORKERS_URL names the Admin API's GET /, which lists its pid)
  PYTHONMALLOC=malloc valgrind --tool=callgrind --cache-sim=no --branch-sim=no \
    --trace-children=yes --callgrind-out-file="$work/callgrind.out.%p" "$@" >"$work/proc.log" 2>&1 &
  local vpid=$!; echo "$vpid" >>"$work/pids"  # count runs in a subshell: a file, not an array
  wait_port "$url/" || { cat "$work/proc.log" >&2; return 1; }
  [[ -n ${SETUP:-} ]] && eval "$SETUP"
  # one path asked for again and again, as wrk asks (curl's [1-N] would make every path new
  # and every request a miss of the router's cache)
  repeat() { for _ in $(seq "$2"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$1"; done; }
  curl -sk "${per_request[@]}" "${ccert[@]}" "${client[@]}" -K <(repeat "$url/w" 200)
  if [[ $(curl -sk "${ccert[@]}" "${client[@]}" -o /dev/null -w "%{http_code}" "$url/w") != 200 ]]; then
    echo "$url/w is not answered with 200" >&2; return 1  # errors would be counted instead
  fi
  local target=$vpid
  if [[ -n ${WORKERS_URL:-} ]]; then
    target=$(curl -sf "$WORKERS_URL" | python3 -c 'import json, sys; print(json.load(sys.stdin)["pids"]["workers"][0])')
  fi
  callgrind_control -z "$target" >/dev/null
  curl -sk "${per_request[@]}" "${ccert[@]}" "${client[@]}" -K <(repeat "$url/m" "$N")
  callgrind_control -d "$target" >/dev/null
  kill "$vpid"; wait "$vpid" 2>/dev/null || true
  # KEEP=DIR keeps the profile for callgrind_annotate
  [[ -n ${KEEP:-} ]] && cp "$work/callgrind.out.$target.1" "$KEEP/callgrind.${url##*:}.out" || true
  local ir
  ir=$(grep -h "^summary" "$work/callgrind.out.$target.1" | awk '{s+=$2} END {print s}')
  echo $((ir / N))
}

cat >"$work/r.yaml" <<YAML
database: sqlite:///$work/r.db
admin_listen: 127.0.0.1:$((PORTS + 1))
proxy_listen: 127.0.0.1:$((PORTS + 80)), 127.0.0.1:$((PORTS + 443)) ssl
ssl_cert: $work/cert.pem
ssl_cert_key: $work/key.pem
prefix: $work/prefix
log_level: warn
plugins: bundled${noops:+, $noops}
plugin_path: $here/bench/plugins
# the configuration poll and the cluster heartbeat run by the clock, not per request; under
# valgrind's ~50x slowdown a 0.1 s poll would be counted against the requests (POLL=0.1 to
# see it)
db_update_frequency: ${POLL:-60}
cluster_heartbeat: ${POLL:-60}
$curves
${ACCESS_LOG:+proxy_access_log: '$ACCESS_LOG'}
YAML
"$here/.venv/bin/ramparts" migrations up -c "$work/r.yaml" >/dev/null
ca_id=0d5a3b4e-0c1f-4c55-9a43-4c1b9f2d7a01 cert_id=6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0
# ROUTES=N: N-1 more prefix routes (/r1/ ... ), all longer than /m, so Kong's order puts every
# one of them before the route the requests take (imported before the node starts)
{
  printf '_format_version: "3.0"\nservices:\n- name: o\n  url: http://127.0.0.1:%d\n  routes:\n' \
    $((PORTS + 999))
  printf '  - name: o\n    paths: [/m, /w]\n'
  [[ -n $noops ]] && printf '    plugins: [%s]\n' "$(sed -E 's/([a-z0-9]+)/{name: \1}/g' <<<"$noops")"
  mtls_ca=8c1d9e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f
  [[ -n $mtls ]] && printf '    plugins: [{name: mtls-auth, config: {ca_certificates: [%s]}}]\n' "$mtls_ca"
  for i in $(seq 1 $((${ROUTES:-1} - 1))); do printf '  - name: r%d\n    paths: [/r%d/]\n' "$i" "$i"; done
  printf -- '- name: d\n  url: https://localhost:%d\n  tls_verify: true\n' $((PORTS + 998))
  printf '  ca_certificates: [%s]\n  client_certificate: %s\n' "$ca_id" "$cert_id"
  printf '  routes:\n  - name: d\n    paths: [/tls]\n'
  printf 'ca_certificates:\n- id: %s\n  cert: |\n' "$ca_id"; sed 's/^/    /' "$work/cert.pem"
  if [[ -n $mtls ]]; then
    printf -- '- id: %s\n  cert: |\n' "$mtls_ca"; sed 's/^/    /' "$work/ca.pem"
    printf 'consumers:\n- username: bench-client\n  mtls_auth_credentials:\n'
    printf '  - subject_name: bench-client\n'
  fi
  printf 'certificates:\n- id: %s\n  cert: |\n' "$cert_id"; sed 's/^/    /' "$work/cert.pem"
  printf '  key: |\n'; sed 's/^/    /' "$work/key.pem"
} >"$work/kong.yml"
"$here/.venv/bin/ramparts" config db_import -c "$work/r.yaml" "$work/kong.yml" >/dev/null
SETUP='for _ in $(seq 100); do [[ $(curl -sk "${ccert[@]}" "${client[@]}" -o /dev/null -w "%{http_code}" https://127.0.0.1:$((PORTS + 443))$prefix/w) == 200 ]] && break; sleep 0.2; done'
ramparts=- pyref_count=- leanref_count=-
wanted() { [[ " $PROXIES " == *" $1 "* ]]; }
if wanted ramparts; then
  ramparts=$(WORKERS_URL=http://127.0.0.1:$((PORTS + 1))/ count "https://127.0.0.1:$((PORTS + 443))$prefix" "$py" "$here/.venv/bin/ramparts" start -c "$work/r.yaml")
fi
SETUP=
export GW_CERT=$work/cert.pem GW_KEY=$work/key.pem GW_CA=$work/cert.pem \
  GW_UPSTREAM_CLIENT_CERT=$work/cert.pem GW_UPSTREAM_CLIENT_KEY=$work/key.pem \
  GW_UPSTREAM_HTTP=http://127.0.0.1:$((PORTS + 999)) GW_CLIENT_CA=$work/cert.pem \
  GW_UPSTREAM_HTTPS=https://127.0.0.1:$((PORTS + 998)) GW_UPSTREAM_TLS_NAME=localhost
if wanted pyref; then
  pyref_count=$(GW_TLS_PORT=$((PORTS + 543)) count "https://127.0.0.1:$((PORTS + 543))$prefix" "$py" "$pyref")
fi
if wanted leanref; then
  lport=$((PORTS + 643))
  [[ ${SCENARIO:-a} == c ]] && lport=$((PORTS + 644))  # leanref's mTLS listener
  leanref_count=$(GW_TLS_PORT=$((PORTS + 643)) GW_MTLS_PORT=$((PORTS + 644)) count "https://127.0.0.1:$lport$prefix" "$py" "$leanref")
fi
ratio() { [[ $1 == - || $2 == - ]] && echo - || awk "BEGIN {printf \"%.2f\", $1 / $2}"; }
cat >"$out" <<MD
## Instructions per $kind (callgrind, user space; $N requests, curl; scenario ${SCENARIO:-a}, ${ROUTES:-1} routes)

| proxy | instructions / request | ÷ leanref | ÷ pyref |
|---|---:|---:|---:|
| leanref | $leanref_count | $(ratio "$leanref_count" "$leanref_count") | $(ratio "$leanref_count" "$pyref_count") |
| pyref | $pyref_count | $(ratio "$pyref_count" "$leanref_count") | $(ratio "$pyref_count" "$pyref_count") |
| ramparts${noops:+ + $noops}${mtls:+ + mtls-auth} | $ramparts | $(ratio "$ramparts" "$leanref_count") | $(ratio "$ramparts" "$pyref_count") |
MD
[[ $out == /dev/stdout ]] || cat "$out"
