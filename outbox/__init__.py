"""Durable outbox: store-and-forward delivery to deviation systems and to 1177.

Filled in by the outbox issue; uses ``contracts`` at most.
"""

__all__: list[str] = []
