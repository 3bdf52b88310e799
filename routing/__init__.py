"""Routing catalogue (TAK-style): components, contracts, addresses, endpoints, routes and permissions.

Filled in by the routing issue; uses ``contracts`` at most.
"""

__all__: list[str] = []
