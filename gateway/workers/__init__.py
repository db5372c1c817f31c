"""Processes of a node: the supervisor's hand-off to its children, the status board they
publish on, the proxy worker's life (start, serve, drain)."""
