#!/usr/bin/env bash
# GATEWAY_CMD for ../shared/bench/run.sh (see its header for the GW_* contract).
# Two ramparts processes share one SQLite database: the TLS listener (GW_TLS_PORT, plus
# GW_HTTP_PORT) and, since the tls policy (enable_mtls) is per process, the mTLS listener
# (GW_MTLS_PORT). The bench runs this whole process group pinned to one CPU.
# Key exchange groups as nginx and leanref offer them (X25519 first): wrk's OpenSSL sends an
# X25519 key share only, so ramparts' default groups (P-256/P-384/P-521, KrakenD's) would
# cost every handshake a HelloRetryRequest the others never do. bench/extra.py's `groups`
# scenario measures the default beside this (docs/benchmarks.md, issue 10).
# The access log off, as the harness's nginx has it (`access_log off`; leanref and pyref
# write none): with it on, a keep-alive request costs ~10 % more instructions.
TLS_GROUPS="curve_preferences: [29, 23, 24, 25]"
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/ramparts-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
cat >"$work/tls.yaml" <<YAML
database: sqlite:///$work/bench.db
admin_listen: 127.0.0.1:$GW_ADMIN_PORT
proxy_listen: 127.0.0.1:$GW_HTTP_PORT, 127.0.0.1:$GW_TLS_PORT ssl reuseport backlog=4096
ssl_cert: $GW_CERT
ssl_cert_key: $GW_KEY
prefix: $work/prefix
log_level: warn
proxy_access_log: 'off'
tls: {$TLS_GROUPS}
YAML
cat >"$work/mtls.yaml" <<YAML
database: sqlite:///$work/bench.db
admin_listen: 127.0.0.1:$((GW_ADMIN_PORT + 1))
proxy_listen: 127.0.0.1:$GW_MTLS_PORT ssl backlog=4096
ssl_cert: $GW_CERT
ssl_cert_key: $GW_KEY
prefix: $work/prefix-mtls
log_level: warn
proxy_access_log: 'off'
tls: {enable_mtls: true, ca_certs: ["$GW_CLIENT_CA"], disable_system_ca_pool: true, $TLS_GROUPS}
YAML
"$here/.venv/bin/ramparts" migrations up -c "$work/tls.yaml" >/dev/null
"$here/.venv/bin/ramparts" start -c "$work/tls.yaml" &
"$here/.venv/bin/ramparts" start -c "$work/mtls.yaml" &
wait
