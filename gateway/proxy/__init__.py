"""The proxy data plane: listeners, the downstream connection Protocol, a sans-io HTTP/1
layer, the exchange, and the pure tables they use (forwarding headers, retries, errors)."""
