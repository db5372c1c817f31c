#!/usr/bin/env bash
# GATEWAY_SETUP_CMD: configure the running gateway through its Admin API, as a user would.
set -euo pipefail
admin=http://127.0.0.1:$GW_ADMIN_PORT
for i in $(seq 100); do curl -sf "$admin/status" >/dev/null && break; sleep 0.1; done
id_of() { python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'; }
curl -sf -X PUT "$admin/services/origin" --data "url=$GW_UPSTREAM_HTTP" >/dev/null
curl -sf -X PUT "$admin/routes/all" --data "paths[]=/" --data "service.name=origin" >/dev/null
# scenario d: /tls/ -> the origin over HTTPS, verified, presenting a client certificate
client=$(curl -sf -X POST "$admin/certificates" -F "cert=@$GW_UPSTREAM_CLIENT_CERT" \
  -F "key=@$GW_UPSTREAM_CLIENT_KEY" | id_of)
ca=$(curl -sf -X POST "$admin/ca_certificates" -F "cert=@$GW_CA" | id_of)
curl -sf -X PUT "$admin/services/origin-tls" --data "url=$GW_UPSTREAM_HTTPS" \
  --data "client_certificate.id=$client" --data "ca_certificates[]=$ca" \
  --data "tls_verify=true" >/dev/null
curl -sf -X PUT "$admin/routes/tls" --data "paths[]=/tls/" --data "strip_path=false" \
  --data "service.name=origin-tls" >/dev/null
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
