#!/usr/bin/env bash
# GATEWAY_SETUP_CMD: configure the running gateway through its Admin API, as a user would.
set -euo pipefail
admin=http://127.0.0.1:$GW_ADMIN_PORT
for i in $(seq 100); do curl -sf "$admin/status" >/dev/null && break; sleep 0.1; done
curl -sf -X PUT "$admin/services/origin" --data "url=$GW_UPSTREAM_HTTP" >/dev/null
curl -sf -X PUT "$admin/routes/all" --data "paths[]=/" --data "service.name=origin" >/dev/null
IFS=, read -ra pairs <<<"${GW_SNI_CERTS:-}"
for pair in "${pairs[@]}"; do
  IFS=: read -r name crt key <<<"$pair"
  curl -sf -X PUT "$admin/certificates/$name" -F "cert=@$crt" -F "key=@$key" >/dev/null
done
# both processes poll the shared database; wait until each serves the route
for port in "$GW_TLS_PORT" "$GW_MTLS_PORT"; do
  for i in $(seq 100); do
    code=$(curl -sk -o /dev/null -w '%{http_code}' --cert "$GW_UPSTREAM_CLIENT_CERT" \
      --key "$GW_UPSTREAM_CLIENT_KEY" "https://127.0.0.1:$port/" || true)
    [[ $code == 200 ]] && break
    sleep 0.1
  done
done
