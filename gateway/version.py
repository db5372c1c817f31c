"""Versions: ours, and the Kong Admin API version we are compatible with."""

__version__ = "0.1.0"

# Tools such as decK read `version` from `GET /` to pick Kong's API behaviours.
KONG_COMPAT_VERSION = "3.9.0"
