"""Documents our users follow, as tests quote them (seed 003: Kong Mutual TLS)."""

from __future__ import annotations

SEED_003_CA_ID = "a4e9ee1a-1f1f-4574-bffd-0583ed32d99a"

# seed 003's declarative example as written (format 2.1): the CA it names is not in it
SEED_003_KONG_YML = f"""_format_version: "2.1"
services:
- name: secure-api
  url: https://internal-api.example.com
  routes:
  - name: secure-route
    paths:
    - /api
    plugins:
    - name: mtls-auth
      config:
        ca_certificates:
        - {SEED_003_CA_ID}
        revocation_check_mode: STRICT
"""
